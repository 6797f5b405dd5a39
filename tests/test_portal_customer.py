"""A customer's pages (portal/customer.py), with Flask's test client on a real database.

The fixtures are tests/test_portal_access.py's: the example inventory imported, passwords
set, a minute of traffic on every port. Here: the circuit page's status, route hop by hop
(checked against topology.views.circuit_view on the same store), the alarm placeholder, the
chart data the page's script fetches (/api/v1/samples for the circuit's end ports, scoped
and downsampled), and account managers, who see only the customers they manage.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

from collectors.model import Observation
from store.observations import record_observations
from store.timeseries import SampleWriter
from store.users import set_password
from tests.test_portal_access import (  # noqa: F401
    CUSTOMER_A,
    CUSTOMER_B,
    PASSWORD,
    USER_A,
    Portal,
    logged_in,
    portal,
)
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


def test_circuit_page_shows_status_charts_route_and_alarm_placeholder(portal: Portal):  # noqa: F811
    circuit_id, a_port, z_port = _circuit(portal, CIRCUIT_A)
    client = logged_in(portal.app, USER_A)
    page = client.get(f"/circuits/{circuit_id}").get_data(as_text=True)
    assert 'id="ends-status">up<' in page  # both end ports polled up a moment ago
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
    # alarms: a placeholder that reads nothing
    assert "Open alarms" in page and "No alarm data yet" in page
    for word in portal.b.words:
        assert word not in page


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
    assert 'id="path-status">down<' in page
    listing = client.get(f"/customers/{portal.a.customer_id}/").get_data(as_text=True)
    row = re.search(rf'<tr data-circuit="{CIRCUIT_A}">(.*?)</tr>', listing, re.S).group(1)
    assert re.search(r'class="path"><span class="status status-down">', row)


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
    client = logged_in(portal.app, USER_A)
    end = now.isoformat()
    for span, points in ((timedelta(hours=1), 240), (timedelta(days=7), 240),
                         (timedelta(days=30), 240)):
        start = (now - span).isoformat()
        answer = client.get("/api/v1/samples", query_string={
            "object_id": a_port, "metric": "if_in_utilization_pct", "start": start,
            "end": end, "points": points})
        assert answer.status_code == 200
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


def test_another_customers_circuit_is_404(portal: Portal):  # noqa: F811
    client = logged_in(portal.app, USER_A)
    for circuit_id in portal.b.ids["circuit"]:
        response = client.get(f"/circuits/{circuit_id}")
        assert response.status_code == 404
        assert "No alarm data" not in response.get_data(as_text=True)
    assert client.get(f"/customers/{portal.b.customer_id}/").status_code == 404


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


def test_oper_status_from_the_collectors_metric(portal: Portal):  # noqa: F811
    """The collection service writes IF-MIB's if_oper_status (1 up, 2 down): it counts."""
    circuit_id, a_port, _z = _circuit(portal, CIRCUIT_A)
    with SampleWriter(portal.database.pool) as writer:
        writer.add(datetime.now(UTC) + timedelta(seconds=1), a_port, "if_oper_status", 2.0)
    client = logged_in(portal.app, USER_A)
    page = client.get(f"/circuits/{circuit_id}").get_data(as_text=True)
    assert 'id="ends-status">down<' in page
