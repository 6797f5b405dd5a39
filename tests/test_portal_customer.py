"""A customer's pages (portal/customer.py), with Flask's test client on a real database.

The fixtures are tests/test_portal_access.py's: the example inventory imported, passwords
set, a minute of traffic on every port, every circuit's stored service state "up". Here: the
circuit's service state as the alarm pipeline stored it (store.circuit_states; never worked
out by the page), with its cause, since when and maintenance's underlying state, in English
and Chinese, on both pages and in their JSON; the route hop by hop
(checked against topology.views.circuit_view on the same store), the open alarms (made by
the alarm pipeline: tests/test_portal_alarms.py's seed_alarms), scoped to the customer and
naming only its own objects, the pages' JSON state and live wiring (the room, the event id
the page reflects), the chart data the page's script fetches (/api/v1/samples for the
circuit's end ports, scoped and downsampled), and account managers, who see only the
customers they manage. (That the pages really update live: test_portal_customer_browser.)
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

from collectors.model import Observation
from store import alarms as alarm_store
from store.events import last_event_id
from store.observations import record_observations
from store.timeseries import SampleWriter, refresh_rollups
from store.users import set_password
from tests.test_portal_access import (  # noqa: F401
    CUSTOMER_A,
    CUSTOMER_B,
    PASSWORD,
    USER_A,
    USER_B,
    Portal,
    logged_in,
    portal,
    set_circuit_states,
)
from tests.test_portal_alarms import P_ROUTER, seed_alarms
from topology.current import load_topology
from topology.views import circuit_view

CIRCUIT_A = "HSB-L3VPN-0001"


def _circuit(portal: Portal, key: str) -> tuple[int, int, int]:  # noqa: F811
    with portal.database.pool.connection() as conn:
        return conn.execute("SELECT id, a_port_id, z_port_id FROM circuits WHERE key = %s",
                            [key]).fetchone()


def _hop_rows(page: str) -> list[tuple[str, str, str | None]]:
    """(device, device status, link status) of each row of the route table."""
    rows = []
    for match in re.finditer(r'<tr data-hop="\d+" data-device="([^"]*)">(.*?)</tr>', page, re.S):
        statuses = re.findall(r'class="status status-(\w+)"', match.group(2))
        rows.append((html.unescape(match.group(1)), statuses[0],
                     statuses[1] if len(statuses) > 1 else None))
    return rows


def _service(page: str, circuit_id: int) -> tuple[str, str, str, str]:
    """(state, its label, cause, since) of the circuit's service state in a page."""
    match = re.search(rf'data-service="circuit:{circuit_id}"[^>]*>\s*<span class="status '
                      r'[^"]*" data-status="(\w+)" data-underlying="\w*">([^<]*)</span>'
                      r'\s*<div class="desc service-cause">([^<]*)</div>'
                      r'\s*<div class="muted service-since">([^<]*)</div>', page)
    assert match, page
    return tuple(html.unescape(g) for g in match.groups())  # type: ignore[return-value]


def test_circuit_page_shows_status_charts_route_and_no_alarms(portal: Portal):  # noqa: F811
    circuit_id, a_port, z_port = _circuit(portal, CIRCUIT_A)
    client = logged_in(portal.app, USER_A)
    page = client.get(f"/circuits/{circuit_id}").get_data(as_text=True)
    state, label, cause, since = _service(page, circuit_id)  # as the pipeline stored it
    assert (state, label, cause) == ("up", "up", "in service")
    assert since.startswith("since ") and since.endswith(" UTC")
    # the charts: canvases and the ports and API the script asks
    for chart in ("traffic", "utilization", "errors"):
        assert f'id="chart-{chart}"' in page
    assert f'data-port-a="{a_port}"' in page and f'data-port-z="{z_port}"' in page
    assert 'data-api="/api/v1/samples"' in page
    for code in ("1h", "24h", "7d", "30d"):
        assert f'data-range="{code}"' in page
    assert "/vendor/chart.js/dist/chart.umd.min.js" in page
    assert "/static/customer.js" in page
    # the route, as JSON for the drawing and as a table
    assert 'id="route-data"' in page and _hop_rows(page)
    # alarms: none yet, said so
    assert "Open alarms" in page and "No open alarms." in page
    assert '<p class="empty" id="alarms-empty">' in page  # shown, not hidden
    assert "data-alarm=" not in page
    for word in portal.b.words:
        assert word not in page


def test_pages_go_live_in_the_customers_room(portal: Portal):  # noqa: F811
    circuit_id, _a, _z = _circuit(portal, CIRCUIT_A)
    with portal.database.pool.connection() as conn:
        before = last_event_id(conn)
    client = logged_in(portal.app, USER_A)
    room = f'data-room="customer:{portal.a.customer_id}"'
    listing = client.get(f"/customers/{portal.a.customer_id}/").get_data(as_text=True)
    page = client.get(f"/circuits/{circuit_id}").get_data(as_text=True)
    for html_page, state_url in ((listing, f"/customers/{portal.a.customer_id}/status"),
                                 (page, f"/circuits/{circuit_id}/status")):
        assert room in html_page
        assert f'data-state-url="{state_url}"' in html_page
        assert int(re.search(r'data-event-id="(\d+)"', html_page).group(1)) >= before
        assert "/vendor/socket.io-client/dist/socket.io.min.js" in html_page
        assert "/static/customer.js" in html_page
    assert 'http-equiv="refresh"' not in listing  # live now, no more page refresh
    # the JSON state the script fetches: the same statuses as the page
    state = client.get(f"/circuits/{circuit_id}/status").get_json()
    assert state["id"] == f"circuit:{circuit_id}" and state["service"]["status"] == "up"
    assert state["service"]["label"] == "up" and state["service"]["cause"] == "in service"
    assert state["service"]["since"] in page
    assert [(h["device"], h["status"], h["link_status"]) for h in state["hops"]] == _hop_rows(
        page)
    assert state["hops"][0]["node"].startswith("device:")
    assert all(h["link"] and h["link"].startswith("link:") for h in state["hops"][1:])
    nodes = {n["data"]["id"] for n in state["elements"]["nodes"]}
    assert {h["node"] for h in state["hops"]} <= nodes
    assert state["alarms"] == []
    listed = client.get(f"/customers/{portal.a.customer_id}/status").get_json()
    assert {c["key"] for c in listed["circuits"]} == {
        w for w in portal.a.words if w.startswith("HSB-")}
    assert {c["service"]["status"] for c in listed["circuits"]} == {"up"}
    assert all(c["traffic"]["a"] for c in listed["circuits"])
    for answer in (state, listed):
        for word in portal.b.words:
            assert word not in repr(answer)


def _alarm_rows(page: str) -> dict[int, str]:
    """Alarm id -> its row in a page's open-alarms section."""
    section = page.split('id="alarms"', 1)[1].split("</section>", 1)[0]
    return {int(m.group(1)): m.group(2) for m in re.finditer(
        r'<tr data-alarm="(\d+)">(.*?)</tr>', section, re.S)}


def test_open_alarms_are_the_customers_own_and_name_only_its_objects(portal: Portal):  # noqa: F811
    seeded = seed_alarms(portal)  # a P router down (hits everyone), one of jinlu's ports down
    with portal.database.pool.connection() as conn:
        for user in ("am.chen", "am.zhao"):
            set_password(conn, user, PASSWORD)
        alarm_store.acknowledge(conn, seeded.root, "noc.wang", "on it, line card")
        services_a = {a.id: a for a in alarm_store.list_alarms(conn, state=None)
                      if a.id in seeded.services_a}
        keys = dict(conn.execute("SELECT id, key FROM circuits").fetchall())
    client = logged_in(portal.app, USER_A)
    listing = client.get(f"/customers/{portal.a.customer_id}/").get_data(as_text=True)
    rows = _alarm_rows(listing)
    # A's: the shared router's alarm and its service alarms on A's circuits; none of B's
    assert set(rows) == {seeded.root} | seeded.services_a
    root = rows[seeded.root]
    assert "device unreachable" in root and "critical" in root.lower()
    assert "operator network" in root and P_ROUTER not in root  # the router is not named
    assert "acknowledged" in root and "not acknowledged" not in root
    assert "noc.wang" not in listing and "line card" not in listing  # who and why: not shown
    hit = set(re.findall(r'<a href="/circuits/\d+">([^<]+)</a>', root))
    assert hit and hit <= {k for i, k in keys.items() if i in portal.a.ids["circuit"]}
    for alarm_id, alarm in services_a.items():
        (circuit_id,) = alarm.impacted_circuits
        assert keys[circuit_id] in rows[alarm_id]  # A's own circuit: named
        assert "service down" in rows[alarm_id] and "not acknowledged" in rows[alarm_id]
        # its service state, as the pipeline stored it with the alarm: down, and why (its
        # cause names its own route, which the route table shows too)
        state, _label, cause, _since = _service(listing, circuit_id)
        assert state == "down" and cause in alarm.summary
    for word in portal.b.words:
        assert word not in listing
    # every listed alarm's page opens for A; B's alarms stay unseen
    for alarm_id in rows:
        assert f'href="/alarms/{alarm_id}"' in listing
        assert client.get(f"/alarms/{alarm_id}").status_code == 200
    for alarm_id in seeded.services_b | seeded.only_b:
        assert f"/alarms/{alarm_id}" not in listing

    # the circuit page: only the alarms that hit this circuit
    service_id, service = next(iter(services_a.items()))
    (circuit_id,) = service.impacted_circuits
    page = client.get(f"/circuits/{circuit_id}").get_data(as_text=True)
    assert set(_alarm_rows(page)) == {seeded.root, service_id}
    assert "No open alarms." in page and '<p class="empty" id="alarms-empty" hidden>' in page
    state = client.get(f"/circuits/{circuit_id}/status").get_json()
    assert {a["id"] for a in state["alarms"]} == {seeded.root, service_id}
    by_id = {a["id"]: a for a in state["alarms"]}
    assert by_id[seeded.root]["object_label"] == "operator network"
    assert by_id[seeded.root]["summary"] is None and by_id[seeded.root]["acknowledged"]
    assert by_id[service_id]["own"] and by_id[service_id]["object_label"] == keys[circuit_id]
    listed = client.get(f"/customers/{portal.a.customer_id}/status").get_json()
    assert {a["id"] for a in listed["alarms"]} == set(rows)
    # the operator's router's own alarm is not named (the route table, the circuit's service
    # state and its service alarm name the routers it runs over; the router's alarm does not)
    assert P_ROUTER not in _alarm_rows(page)[seeded.root]
    assert by_id[seeded.root]["summary"] is None
    assert P_ROUTER not in repr([a for a in listed["alarms"] if a["id"] == seeded.root])
    for answer in (page, repr(state), repr(listed)):
        assert "noc.wang" not in answer and "line card" not in answer
    for answer in (page, repr(state), repr(listed)):
        for word in portal.b.words:
            assert word not in answer

    # B sees its own (its port down too), not A's service alarms
    b_rows = _alarm_rows(logged_in(portal.app, USER_B).get(
        f"/customers/{portal.b.customer_id}/").get_data(as_text=True))
    assert seeded.root in b_rows and seeded.services_b <= set(b_rows)
    assert not set(b_rows) & seeded.services_a
    assert set(b_rows) & seeded.only_b

    # an account manager sees what the customer sees; another manager nothing of it
    chen = logged_in(portal.app, "am.chen")
    chen_page = chen.get(f"/customers/{portal.a.customer_id}/").get_data(as_text=True)
    assert set(_alarm_rows(chen_page)) == set(rows)
    assert f'data-room="customer:{portal.a.customer_id}"' in chen_page
    zhao = logged_in(portal.app, "am.zhao")
    assert zhao.get(f"/customers/{portal.a.customer_id}/status").status_code == 404
    assert zhao.get(f"/circuits/{circuit_id}/status").status_code == 404


def test_route_table_gives_every_hops_status(portal: Portal):  # noqa: F811
    circuit_id, _a, _z = _circuit(portal, CIRCUIT_A)
    with portal.database.pool.connection() as conn:
        topology = load_topology(conn)
        hops = topology.paths[circuit_id].hops
        assert len(hops) >= 3
        broken = hops[1].device_id
        now = datetime.now(UTC)
        record_observations(conn, [
            Observation(now, device_id, "reachability", None,
                        "unreachable" if device_id == broken else "reachable", "poll")
            for device_id in topology.snapshot.devices])
        topology = load_topology(conn)
    expected = circuit_view(topology.graph, topology.snapshot, topology.paths, circuit_id)
    nodes = {n["data"]["id"]: n["data"] for n in expected["elements"]["nodes"]}
    edges = {e["data"]["id"]: e["data"] for e in expected["elements"]["edges"]}
    want = [(hop["device_key"], nodes[hop["device"]]["status"],
             edges[hop["link"]]["status"] if hop["link"] else None)
            for hop in expected["circuits"][0]["hops"]]

    client = logged_in(portal.app, USER_A)
    page = client.get(f"/circuits/{circuit_id}").get_data(as_text=True)
    rows = _hop_rows(page)
    assert rows == want
    assert rows[1][1] == "down"  # the unreachable device
    assert rows[1][2] == "down"  # and the link into it
    assert rows[0][1] == "degraded"  # reachable, but its link to the broken device is down
    # the circuit's own state is the one stored, not worked out from the route: until the
    # alarm pipeline says otherwise it is what it was
    assert _service(page, circuit_id)[0] == "up"
    cause = f"path broken: device {P_ROUTER} down"
    set_circuit_states(portal.database, {circuit_id: "down"}, cause=cause)
    page = client.get(f"/circuits/{circuit_id}").get_data(as_text=True)
    assert _service(page, circuit_id)[:3] == ("down", "down", cause)
    assert _hop_rows(page) == want
    listing = client.get(f"/customers/{portal.a.customer_id}/").get_data(as_text=True)
    assert _service(listing, circuit_id)[:3] == ("down", "down", cause)


def test_chart_data_is_scoped_and_downsampled(portal: Portal):  # noqa: F811
    _circuit_id, a_port, _z = _circuit(portal, CIRCUIT_A)
    foreign_port = min(portal.b.ids["port"])
    now = datetime.now(UTC).replace(microsecond=0)
    with SampleWriter(portal.database.pool) as writer:
        for port_id in (a_port, foreign_port):
            for minutes in range(0, 7 * 24 * 60, 10):  # a week, every 10 minutes
                at = now - timedelta(minutes=minutes, seconds=30)
                writer.add(at, port_id, "if_in_utilization_pct", 40.0)
                writer.add(at, port_id, "if_in_bps", 5_000_000.0)
    refresh_rollups(portal.database.pool, datetime.now(UTC))  # the rollups, as the job does
    client = logged_in(portal.app, USER_A)
    end = now.isoformat()
    # each range from the coarsest rollup that still gives the points (store.timeseries)
    for span, points, resolution_s in ((timedelta(hours=1), 240, 0),
                                       (timedelta(days=7), 240, 300),
                                       (timedelta(days=30), 240, 3600)):
        start = (now - span).isoformat()
        answer = client.get("/api/v1/samples", query_string={
            "object_id": a_port, "metric": "if_in_utilization_pct", "start": start,
            "end": end, "points": points})
        assert answer.status_code == 200
        assert answer.get_json()["resolution_s"] == resolution_s
        series = answer.get_json()["points"]
        assert 0 < len(series) <= points
        assert all(abs(p["value"] - 40.0) < 1e-9 for p in series)
    week = client.get("/api/v1/samples", query_string={
        "object_id": a_port, "metric": "if_in_utilization_pct",
        "start": (now - timedelta(days=7)).isoformat(), "end": end, "points": 240})
    assert len(week.get_json()["points"]) == 240  # 1008 samples averaged into 240 buckets
    refused = client.get("/api/v1/samples", query_string={
        "object_id": foreign_port, "metric": "if_in_bps", "start": (now - timedelta(days=7))
        .isoformat(), "end": end})
    assert refused.status_code == 404
    # a metric nothing measured yet: 400 on "metric", which the script shows as no data
    unknown = client.get("/api/v1/samples", query_string={
        "object_id": a_port, "metric": "if_in_errors_per_s"})
    assert unknown.status_code == 400 and unknown.get_json()["field"] == "metric"


def test_dropped_samples_are_unknown_ranges_of_the_circuits_charts(portal: Portal):  # noqa: F811
    """What a full spool dropped (store.collection) comes with the samples as "unknown"
    ranges, for the port, its device and the circuit it ends; never another device's."""
    from store.collection import record_drops

    circuit_id, a_port, z_port = _circuit(portal, CIRCUIT_A)
    foreign_port = min(portal.b.ids["port"])
    now = datetime.now(UTC).replace(microsecond=0)
    with portal.database.pool.connection() as conn:
        a_device, z_device, foreign_device = (conn.execute(
            "SELECT device_id FROM ports WHERE id = %s", [port]).fetchone()[0]
            for port in (a_port, z_port, foreign_port))
        assert foreign_device not in (a_device, z_device)
        first, last = now - timedelta(minutes=50), now - timedelta(minutes=20)
        record_drops(conn, [
            (a_device, "samples", 900, first.isoformat(), last.isoformat()),
            (foreign_device, "samples", 77, (now - timedelta(minutes=10)).isoformat(),
             (now - timedelta(minutes=5)).isoformat()),
            # an older outage, outside the hour asked for
            (a_device, "samples", 5, (now - timedelta(hours=5)).isoformat(),
             (now - timedelta(hours=4)).isoformat())])
    with SampleWriter(portal.database.pool) as writer:
        writer.add(now - timedelta(minutes=55), a_port, "if_in_bps", 1.0)
    client = logged_in(portal.app, USER_A)

    def unknown(object_id: int, hours: float = 1) -> list[tuple[datetime, datetime]]:
        answer = client.get("/api/v1/samples", query_string={
            "object_id": object_id, "metric": "if_in_bps", "end": now.isoformat(),
            "start": (now - timedelta(hours=hours)).isoformat()})
        assert answer.status_code == 200, answer.get_json()
        return [(datetime.fromisoformat(r["start"]), datetime.fromisoformat(r["end"]))
                for r in answer.get_json()["unknown"]]

    assert unknown(a_port) == [(first, last)]
    assert unknown(circuit_id) == [(first, last)]  # through its A end's device
    if z_device != a_device:
        assert unknown(z_port) == []
    # a range reaching before the start is cut at the start
    assert unknown(a_port, hours=0.5) == [(now - timedelta(minutes=30), last)]
    assert len(unknown(a_port, hours=6)) == 2
    # another customer's drops are neither shown nor hinted at
    refused = client.get("/api/v1/samples", query_string={
        "object_id": foreign_port, "metric": "if_in_bps"})
    assert refused.status_code == 404 and "unknown" not in refused.get_json()


def test_another_customers_circuit_is_404(portal: Portal):  # noqa: F811
    client = logged_in(portal.app, USER_A)
    for circuit_id in portal.b.ids["circuit"]:
        response = client.get(f"/circuits/{circuit_id}")
        assert response.status_code == 404
        assert "Open alarms" not in response.get_data(as_text=True)
        assert client.get(f"/circuits/{circuit_id}/status").status_code == 404
    assert client.get(f"/customers/{portal.b.customer_id}/").status_code == 404
    assert client.get(f"/customers/{portal.b.customer_id}/status").status_code == 404


def _xinhe(portal: Portal) -> tuple[int, set[int]]:  # noqa: F811
    with portal.database.pool.connection() as conn:
        customer_id = conn.execute("SELECT id FROM customers WHERE key = 'xinhe'").fetchone()[0]
        circuits = {row[0] for row in conn.execute(
            "SELECT id FROM circuits WHERE customer_id = %s", [customer_id])}
    return customer_id, circuits


def test_account_manager_sees_only_the_customers_they_manage(portal: Portal):  # noqa: F811
    """am.chen manages hsbank and jinlu, am.zhao manages xinhe (config/example)."""
    with portal.database.pool.connection() as conn:
        for user in ("am.chen", "am.zhao"):
            set_password(conn, user, PASSWORD)
    xinhe_id, xinhe_circuits = _xinhe(portal)
    chen = logged_in(portal.app, "am.chen")
    overview = chen.get("/noc/").get_data(as_text=True)
    assert "HSB-L3VPN-0001" in overview and "JL-L3VPN-0001" in overview
    assert "xinhe" not in overview and "XH-" not in overview
    assert chen.get(f"/customers/{portal.a.customer_id}/").status_code == 200
    assert chen.get(f"/customers/{portal.b.customer_id}/").status_code == 200
    assert chen.get(f"/customers/{xinhe_id}/").status_code == 404
    for circuit_id in xinhe_circuits:
        assert chen.get(f"/circuits/{circuit_id}").status_code == 404
        assert chen.get(f"/api/v1/circuits/{circuit_id}").status_code == 404
        assert chen.get("/api/v1/samples", query_string={
            "object_id": circuit_id, "metric": "if_in_bps"}).status_code == 404
    assert chen.get(f"/circuits/{min(portal.a.ids['circuit'])}").status_code == 200
    keys = {c["customer_key"] for c in chen.get("/api/v1/circuits").get_json()["circuits"]}
    assert keys == {CUSTOMER_A, CUSTOMER_B}
    devices = chen.get("/api/v1/devices").get_json()["devices"]
    assert devices and {d["customer_key"] for d in devices} <= {CUSTOMER_A, CUSTOMER_B}

    zhao = logged_in(portal.app, "am.zhao")
    customers = zhao.get("/api/v1/customers").get_json()["customers"]
    assert [c["key"] for c in customers] == ["xinhe"]
    for circuit_id in portal.a.ids["circuit"]:
        assert zhao.get(f"/circuits/{circuit_id}").status_code == 404
    assert zhao.get(f"/circuits/{min(xinhe_circuits)}").status_code == 200


def test_service_state_maintenance_unknown_and_chinese(portal: Portal):  # noqa: F811
    """Maintenance shows what lies beneath; a circuit the pipeline never judged is unknown;
    the pages and their JSON say the same, in the viewer's language."""
    circuit_id, _a, _z = _circuit(portal, CIRCUIT_A)
    other = min(portal.a.ids["circuit"] - {circuit_id})
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)  # after "up"
    at = since.strftime("%Y-%m-%d %H:%M:%S UTC")
    set_circuit_states(portal.database, {circuit_id: "maintenance"}, underlying="down",
                       cause="in maintenance window 4 (down: port Gi0/0/5 down)", at=since)
    with portal.database.pool.connection() as conn:
        conn.execute("DELETE FROM circuit_states WHERE circuit_id = %s", [other])
    client = logged_in(portal.app, USER_A)
    page = client.get(f"/circuits/{circuit_id}").get_data(as_text=True)
    assert _service(page, circuit_id) == (
        "maintenance", "maintenance (down beneath)",
        "in maintenance window 4 (down: port Gi0/0/5 down)", f"since {at}")
    assert 'class="status status-maintenance status-down"' in page  # coloured by beneath
    state = client.get(f"/circuits/{circuit_id}/status").get_json()["service"]
    assert state == {"status": "maintenance", "underlying": "down",
                     "label": "maintenance (down beneath)",
                     "cause": "in maintenance window 4 (down: port Gi0/0/5 down)",
                     "cause_text": None,  # stored without words as data: the English
                     "cause_kind": "test", "since": at, "since_text": f"since {at}",
                     "time": since.isoformat()}
    listing = client.get(f"/customers/{portal.a.customer_id}/").get_data(as_text=True)
    assert _service(listing, other)[:3] == ("unknown", "unknown", "not assessed yet")
    listed = {c["id"]: c["service"] for c in client.get(
        f"/customers/{portal.a.customer_id}/status").get_json()["circuits"]}
    assert listed[f"circuit:{circuit_id}"] == state
    assert listed[f"circuit:{other}"]["status"] == "unknown"
    assert listed[f"circuit:{other}"]["since"] is None

    client.post("/language", data={"lang": "zh_CN", "csrf_token": _csrf(client)})
    page = client.get(f"/circuits/{circuit_id}").get_data(as_text=True)
    assert _service(page, circuit_id)[:2] == ("maintenance", "维护（实际：中断）")
    assert "业务状态" in page
    assert client.get(f"/circuits/{circuit_id}/status").get_json()["service"]["label"] == (
        "维护（实际：中断）")
    listing = client.get(f"/customers/{portal.a.customer_id}/").get_data(as_text=True)
    assert _service(listing, other)[:3] == ("unknown", "未知", "尚未评估")


def _csrf(client) -> str:
    page = client.get("/my/", follow_redirects=True).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_chart_ranges_are_what_the_store_keeps(portal: Portal):  # noqa: F811
    """The range buttons and the samples API stop at the longest retention (the daily
    rollup's, settings store.*_retention_days): no 400 days offered on 60 days kept."""
    from config.settings import StoreSettings

    circuit_id, a_port, _z = _circuit(portal, CIRCUIT_A)
    client = logged_in(portal.app, USER_A)
    end = datetime.now(UTC).replace(microsecond=0)

    def samples(days: int):
        return client.get("/api/v1/samples", query_string={
            "object_id": a_port, "metric": "if_in_bps", "end": end.isoformat(),
            "start": (end - timedelta(days=days)).isoformat()})

    page = client.get(f"/circuits/{circuit_id}").get_data(as_text=True)
    for code in ("1h", "24h", "7d", "30d", "90d", "1y"):  # the defaults keep 10 years
        assert f'data-range="{code}"' in page
    assert samples(400).status_code == 200
    settings = portal.app.extensions["keyline.settings"]
    portal.app.extensions["keyline.settings"] = settings.model_copy(update={
        "store": StoreSettings(raw_retention_days=7, rollup_5min_retention_days=30,
                               rollup_hour_retention_days=60, rollup_day_retention_days=60)})
    try:
        page = client.get(f"/circuits/{circuit_id}").get_data(as_text=True)
        assert [code for code in ("1h", "24h", "7d", "30d", "90d", "1y")
                if f'data-range="{code}"' in page] == ["1h", "24h", "7d", "30d"]
        assert samples(60).status_code == 200
        refused = samples(61)
        assert refused.status_code == 400
        assert refused.get_json() == {"error": "the range may span at most 60 days",
                                      "field": "start"}
    finally:
        portal.app.extensions["keyline.settings"] = settings
