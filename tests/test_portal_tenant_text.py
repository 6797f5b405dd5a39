"""Customer-facing and internal text kept apart, the live catch-up cut exactly as REST, and a
shared operator port's traffic kept from customers (portal/alarm_access.py, portal/live.py,
store.queries.object_visible and traffic_ports), written from the attacker's side: a
customer of tenant A (hsbank) with its own session, socket and API calls.

On the example inventory (tests/test_portal_access.py's fixtures) with the portal served for
real (tests/test_portal_live.py's `live`): alarms stored as the pipeline stores them, staff
acting through the REST API and the pages, a python-socketio client joining the customer's
room with an old "after". Every alarm the customer's socket receives, in its catch-up or
live, must be one REST shows that customer, field for field; nothing staff wrote as an
internal note, nobody's login, no maintenance reason and no other tenant's impact may reach
the customer by any of its pages, its REST calls, its live messages or its catch-up.
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alarms.model import AlarmState, TimelineEntry
from config.settings import LiveSettings, load_settings
from keyline.wiring import EXAMPLE_INVENTORY, import_inventory, load_inventory_files
from portal.app import create_app
from store.alarms import save_changes
from store.events import last_event_id
from store.timeseries import SampleWriter
from tests.test_portal_access import (  # noqa: F401
    PASSWORD,
    USER_A,
    Portal,
    csrf_token,
    logged_in,
    portal,
)
from tests.test_portal_live import (  # noqa: F401
    LIVE_WITHIN_S,
    Listener,
    Served,
    live,
    raise_alarm,
    serve,
    session_cookie,
    wait_for,
)

NOC = "noc.wang"
USER_C = "xinhe.it"  # xinhe shares pe-sh1's internet port with hsbank
# Texts staff write for staff only: none may ever reach a customer.
INTERNAL_ACK = "INTERNAL-ACK jinlu fibre cut, blame their contractor"
INTERNAL_CLEAR = "INTERNAL-CLEAR spliced by 张工 for jinlu"
INTERNAL_WINDOW = "INTERNAL-WINDOW swap the jinlu line card too"
CUSTOMER_ACK = "We are working on it"
CUSTOMER_CLEAR = "Service restored"
CUSTOMER_WINDOW = "Planned upgrade of the access router"
SECRETS = (INTERNAL_ACK, INTERNAL_CLEAR, INTERNAL_WINDOW, NOC, "jinlu", "circuits, ")
TIME_FIELDS = ("first_seen", "last_seen", "cleared_at", "acknowledged_at")


def ids_of(portal: Portal, sql: str, *args: Any) -> list[int]:  # noqa: F811
    with portal.database.pool.connection() as conn:
        return [row[0] for row in conn.execute(sql, list(args)).fetchall()]


def port_id(portal: Portal, device: str, port: str) -> int:  # noqa: F811
    (found,) = ids_of(portal, "SELECT p.id FROM ports p JOIN devices d ON d.id = p.device_id"
                              " WHERE d.key = %s AND p.name = %s", device, port)
    return found


def circuit_id(portal: Portal, key: str) -> int:  # noqa: F811
    (found,) = ids_of(portal, "SELECT id FROM circuits WHERE key = %s", key)
    return found


def api(client: Any, method: str, path: str, **body: Any) -> Any:
    """A REST call with the session's CSRF token, as the portal's own scripts make it."""
    token = csrf_token(client.get("/alarms").get_data(as_text=True))
    answer = client.open(path, method=method, json=body, headers={"X-CSRFToken": token})
    assert answer.status_code < 300, answer.get_data(as_text=True)
    return answer.get_json()


def comparable(alarm: dict[str, Any]) -> dict[str, Any]:
    """REST's fields of an alarm, times as instants (REST and the socket may write the same
    instant in different zones)."""
    return {k: (datetime.fromisoformat(v) if k in TIME_FIELDS and v else v)
            for k, v in alarm.items() if k not in ("timeline", "symptoms")}


def assert_like_rest(client: Any, shown: dict[int, dict[str, Any]]) -> None:
    """Every alarm a socket was shown is what REST shows that viewer, field for field."""
    listed = {a["id"]: a for a in client.get("/api/v1/alarms").get_json()["alarms"]}
    assert set(shown) == set(listed), (sorted(shown), sorted(listed))
    for alarm_id, alarm in shown.items():
        rest = comparable(client.get(f"/api/v1/alarms/{alarm_id}").get_json())
        assert comparable({k: alarm[k] for k in rest}) == rest, alarm_id
        assert comparable(listed[alarm_id]) == rest


def never_mentioned(text: str, *more: str) -> None:
    for secret in (*SECRETS, *more):
        assert secret not in text, secret


@pytest.fixture
def alarms(portal: Portal) -> dict[str, Any]:  # noqa: F811
    """Alarms as the pipeline stores them: one on the operator's PE that hits A and B, its
    symptom on A's circuit, one on jinlu's access port on its PE (B only), A's symptom of
    that B-only root (its root cause id is B's business), one that hits nobody on the PE
    port A shares with xinhe, and one on B's own router said to hit A too."""
    a, b = portal.a, portal.b
    a_circuit, b_circuit = min(a.ids["circuit"]), min(b.ids["circuit"])
    shared_pe = ids_of(portal, "SELECT id FROM devices WHERE key = 'pe-sh1'")[0]
    b_pe_port = port_id(portal, "pe-gz1", "Ten-GigabitEthernet1/0/51")  # jinlu's internet
    shared_port = port_id(portal, "pe-sh1", "XGigabitEthernet0/1/2")
    database = portal.database
    found: dict[str, Any] = {}
    found["shared"] = raise_alarm(database, "device", shared_pe, "device_unreachable",
                                  circuits={a_circuit, b_circuit},
                                  customers={a.customer_id, b.customer_id},
                                  summary="pe-sh1 unreachable")
    found["symptom"] = raise_alarm(database, "circuit", a_circuit, "service_down",
                                   circuits={a_circuit}, customers={a.customer_id},
                                   root=found["shared"])
    found["b_port"] = raise_alarm(database, "port", b_pe_port, "link_down",
                                  circuits={b_circuit}, customers={b.customer_id},
                                  summary="jinlu internet access port down")
    found["b_rooted"] = raise_alarm(database, "circuit", max(a.ids["circuit"]),
                                    "service_down", circuits={max(a.ids["circuit"])},
                                    customers={a.customer_id}, root=found["b_port"])
    found["nobody"] = raise_alarm(database, "port", shared_port, "link_down", circuits=set(),
                                  customers=set(), summary="transit port flapping")
    found["b_router"] = raise_alarm(database, "device", min(b.ids["device"]),
                                    "device_unreachable", circuits={a_circuit, b_circuit},
                                    customers={a.customer_id, b.customer_id},
                                    summary="jinlu router unreachable")
    # the pipeline's own note of the impact: staff-only counts
    with database.pool.connection() as conn:
        alarm = found["shared"]
        save_changes(conn, [_impact_change(alarm)])
    return found


def _impact_change(alarm: Any) -> Any:
    from alarms.model import PIPELINE_ACTOR, AlarmChange

    now = datetime.now(UTC)
    alarm.last_seen = now
    return AlarmChange(alarm, "updated", (TimelineEntry(now, "impact", PIPELINE_ACTOR,
                                                        "6 circuits, 2 customers"),))


def test_catch_up_with_an_old_after_is_exactly_what_rest_shows(
        live: Served, portal: Portal, alarms: dict[str, Any]):  # noqa: F811
    noc = logged_in(portal.app, NOC)
    api(noc, "POST", f"/api/v1/alarms/{alarms['shared'].id}/acknowledge", note=INTERNAL_ACK,
        customer_note=CUSTOMER_ACK)
    with portal.database.pool.connection() as conn:
        last = last_event_id(conn)
    wait_for(lambda: live.bridge.last_id >= last, LIVE_WITHIN_S)
    customer = Listener(live.url, session_cookie(live.url, USER_A))
    try:
        assert customer.join(f"customer:{portal.a.customer_id}", after=1)["ok"]
        (snapshot,) = customer.received
        shown = {x["id"]: x for x in snapshot["alarms"]}
    finally:
        customer.close()
    client = logged_in(portal.app, USER_A)
    assert_like_rest(client, shown)
    # what REST answers 404 for never came: B's port on its PE, an alarm hitting nobody
    for name in ("b_port", "nobody"):
        assert alarms[name].id not in shown
        assert client.get(f"/api/v1/alarms/{alarms[name].id}").status_code == 404
    assert shown[alarms["symptom"].id]["root_cause_id"] == alarms["shared"].id
    assert shown[alarms["b_rooted"].id]["root_cause_id"] is None  # its root is B's alarm
    mine = shown[alarms["shared"].id]
    assert mine["impacted_customers"] == [portal.a.customer_id]
    assert set(mine["impacted_circuits"]) <= portal.a.ids["circuit"]
    assert mine["acknowledged"] is True and mine["acknowledged_at"]
    assert mine["acknowledged_by"] is None and mine["ack_comment"] is None
    assert mine["ack_customer_note"] == CUSTOMER_ACK
    b_router = shown[alarms["b_router"].id]  # another tenant's object: no name, no summary
    assert b_router["object_id"] is None and b_router["summary"] is None
    assert b_router["label"] is None and b_router["object"] is None
    never_mentioned(repr(snapshot), "jinlu router", "jinlu internet")


def test_live_messages_are_cut_like_rest(live: Served, portal: Portal,  # noqa: F811
                                         alarms: dict[str, Any]):
    customer = Listener(live.url, session_cookie(live.url, USER_A))
    try:
        assert customer.join(f"customer:{portal.a.customer_id}")["ok"]
        noc = logged_in(portal.app, NOC)
        shared, symptom = alarms["shared"].id, alarms["symptom"].id
        api(noc, "POST", f"/api/v1/alarms/{shared}/acknowledge", note=INTERNAL_ACK,
            customer_note=CUSTOMER_ACK)
        api(noc, "POST", f"/api/v1/alarms/{symptom}/clear", note=INTERNAL_CLEAR,
            customer_note=CUSTOMER_CLEAR)
        api(noc, "POST", f"/api/v1/alarms/{alarms['b_port'].id}/acknowledge",
            note=INTERNAL_ACK)
        with portal.database.pool.connection() as conn:
            last = last_event_id(conn)
        wait_for(lambda: any(m["id"] >= last for m in customer.messages)
                 or live.bridge.last_id >= last, LIVE_WITHIN_S)
        time.sleep(0.3)  # anything else on its way
        heard = [a for m in customer.messages for a in m["alarms"]]
    finally:
        customer.close()
    assert {a["id"] for a in heard} == {shared, symptom}  # not B's port
    client = logged_in(portal.app, USER_A)
    latest = {a["id"]: a for a in heard}
    rest = {a["id"]: a for a in client.get("/api/v1/alarms?state=all").get_json()["alarms"]}
    for alarm_id, alarm in latest.items():
        assert comparable({k: alarm[k] for k in rest[alarm_id]}) == comparable(rest[alarm_id])
    assert latest[shared]["acknowledged"] and latest[shared]["acknowledged_by"] is None
    never_mentioned(repr(customer.received))


def test_an_alarm_that_stops_hitting_a_customer_is_withdrawn_live(
        live: Served, portal: Portal, alarms: dict[str, Any]):  # noqa: F811
    """The live page agrees with REST when an alarm's impact shrinks away from it."""
    from alarms.model import PIPELINE_ACTOR, AlarmChange

    shared = alarms["shared"]
    customer = Listener(live.url, session_cookie(live.url, USER_A))
    try:
        assert customer.join(f"customer:{portal.a.customer_id}")["ok"]
        assert shared.id in {a["id"] for a in customer.snapshots[0]["alarms"]}
        now = datetime.now(UTC)
        shared.impacted_circuits = frozenset({min(portal.b.ids["circuit"])})
        shared.impacted_customers = frozenset({portal.b.customer_id})
        shared.last_seen = now
        with portal.database.pool.connection() as conn:
            save_changes(conn, [AlarmChange(shared, "updated", (TimelineEntry(
                now, "impact", PIPELINE_ACTOR, "1 circuits, 1 customers"),))])
            last = last_event_id(conn)
        wait_for(lambda: any(m["id"] >= last for m in customer.messages), LIVE_WITHIN_S)
        said = [a for m in customer.messages for a in m["alarms"]]
    finally:
        customer.close()
    assert said == [{"id": shared.id, "state": "withdrawn", "circuits": [], "customers": []}]
    client = logged_in(portal.app, USER_A)
    assert client.get(f"/api/v1/alarms/{shared.id}").status_code == 404


def test_joins_are_bounded_per_connection(live: Served, portal: Portal,  # noqa: F811
                                          alarms: dict[str, Any]):
    """A client replaying its catch-up again and again gets a bounded snapshot each time,
    then a "reload" answer and nothing more."""
    room = f"customer:{portal.a.customer_id}"
    joins = LiveSettings().joins_per_window  # the default of the live.joins_per_window setting
    assert portal.app.extensions["keyline.live_joins"].joins == joins
    customer = Listener(live.url, session_cookie(live.url, USER_A))
    try:
        answers = [customer.join(room, after=0) for _ in range(joins + 5)]
        assert all(a["ok"] for a in answers[:joins])
        for refused in answers[joins:]:
            assert refused["ok"] is False and refused["reload"] is True
            assert refused["error"] == "too many joins" and refused["retry_after_s"] > 0
        time.sleep(0.3)
        assert len(customer.snapshots) == joins
        assert all(len(s["alarms"]) <= 2000 for s in customer.snapshots)
    finally:
        customer.close()
    # another connection has its own budget
    other = Listener(live.url, session_cookie(live.url, USER_A))
    try:
        assert other.join(room)["ok"]
    finally:
        other.close()


def test_the_live_settings_bound_snapshots_and_joins(portal: Portal, tmp_path,  # noqa: F811
                                                     alarms: dict[str, Any]):
    """`live.snapshot_max_alarms` and `live.joins_per_window` (KEYLINE_LIVE__...) are what
    an app made with them enforces."""
    settings = load_settings(None, overrides={
        "data_dir": tmp_path / "data", "database_url": portal.database.url,
        "live": {"snapshot_max_alarms": 2, "joins_per_window": 3}})
    app = create_app(settings, portal.database)
    with serve(app) as served:
        noc = Listener(served.url, session_cookie(served.url, "noc.wang"))
        try:
            answers = [noc.join("noc", after=0) for _ in range(4)]
            time.sleep(0.3)
            snapshots = list(noc.snapshots)
        finally:
            noc.close()
    assert [a["ok"] for a in answers] == [True, True, True, False]
    assert answers[3]["reload"] is True
    assert len(snapshots) == 3
    assert all(len(s["alarms"]) == 2 and s["alarms_complete"] is False for s in snapshots)


def test_internal_notes_and_names_stay_with_staff(portal: Portal,  # noqa: F811
                                                 alarms: dict[str, Any]):
    noc = logged_in(portal.app, NOC)
    shared, symptom = alarms["shared"].id, alarms["symptom"].id
    api(noc, "POST", f"/api/v1/alarms/{shared}/acknowledge", note=INTERNAL_ACK,
        customer_note=CUSTOMER_ACK)
    # the page's form: both fields
    page = noc.get(f"/alarms/{symptom}").get_data(as_text=True)
    assert 'name="customer_note"' in page
    answer = noc.post(f"/alarms/{symptom}/clear", data={
        "csrf_token": csrf_token(page), "reason": INTERNAL_CLEAR,
        "customer_note": CUSTOMER_CLEAR})
    assert answer.status_code == 302
    a_circuit = min(portal.a.ids["circuit"])
    with portal.database.pool.connection() as conn:
        circuit_key = conn.execute("SELECT key FROM circuits WHERE id = %s",
                                   [a_circuit]).fetchone()[0]
    start = datetime.now(UTC) + timedelta(hours=1)
    window = api(noc, "POST", "/api/v1/maintenance-windows", scope=[f"circuit:{circuit_key}"],
                 starts_at=start.isoformat(), ends_at=(start + timedelta(hours=1)).isoformat(),
                 note=INTERNAL_WINDOW, customer_note=CUSTOMER_WINDOW)
    assert window["reason"] == INTERNAL_WINDOW and window["customer_note"] == CUSTOMER_WINDOW

    # staff read everything
    staff = noc.get(f"/api/v1/alarms/{shared}").get_json()
    assert staff["ack_comment"] == INTERNAL_ACK and staff["acknowledged_by"] == NOC
    assert staff["impacted_customers"] == sorted({portal.a.customer_id, portal.b.customer_id})
    assert INTERNAL_CLEAR in noc.get(f"/alarms/{symptom}").get_data(as_text=True)
    assert INTERNAL_WINDOW in noc.get("/maintenance").get_data(as_text=True)

    customer = logged_in(portal.app, USER_A)
    texts = []
    for path in (f"/alarms/{shared}", f"/alarms/{symptom}", "/alarms",
                 f"/alarms?selected={shared}", "/alarms?state=all", "/maintenance",
                 f"/customers/{portal.a.customer_id}/", f"/circuits/{a_circuit}",
                 f"/api/v1/alarms/{shared}", f"/api/v1/alarms/{symptom}",
                 "/api/v1/alarms?state=all", "/api/v1/maintenance-windows"):
        answer = customer.get(path)
        assert answer.status_code == 200, path
        texts.append(answer.get_data(as_text=True))
        never_mentioned(texts[-1])
    everything = "\n".join(texts)
    for note in (CUSTOMER_ACK, CUSTOMER_CLEAR, CUSTOMER_WINDOW):
        assert note in everything, note
    detail = customer.get(f"/api/v1/alarms/{shared}").get_json()
    assert detail["acknowledged"] is True and detail["acknowledged_by"] is None
    assert detail["impacted_customers"] == [portal.a.customer_id]
    assert set(detail["impacted_circuits"]) <= portal.a.ids["circuit"]
    assert all(e["comment"] is None and e["actor"] in ("pipeline", "operator")
               for e in detail["timeline"])
    (mine,) = customer.get("/api/v1/maintenance-windows").get_json()["windows"]
    assert mine["reason"] is None and mine["declared_by"] is None
    assert mine["customer_note"] == CUSTOMER_WINDOW
    cleared = customer.get(f"/api/v1/alarms/{symptom}").get_json()
    assert cleared["state"] == str(AlarmState.CLEARED)
    assert [e["customer_note"] for e in cleared["timeline"] if e["action"] == "cleared"] == [
        CUSTOMER_CLEAR]


def test_cli_notes(portal: Portal, alarms: dict[str, Any], monkeypatch):  # noqa: F811
    """The command line's --note (internal) and --customer-note reach the same columns."""
    import os

    import click
    from click.testing import CliRunner

    from keyline.alarms_cli import alarm
    from keyline.cli import main

    for name in list(os.environ):
        if name.startswith("KEYLINE_"):
            monkeypatch.delenv(name)
    group = click.Group("keyline-test", params=main.params, callback=main.callback)
    group.add_command(alarm)
    shared = alarms["shared"].id
    result = CliRunner().invoke(group, [
        "--database-url", portal.database.url, "alarm", "ack", str(shared), "--by", "eng.liu",
        "--note", INTERNAL_ACK, "--customer-note", CUSTOMER_ACK])
    assert result.exit_code == 0, (result.output, result.exception)
    customer = logged_in(portal.app, USER_A).get(f"/api/v1/alarms/{shared}").get_json()
    assert customer["ack_customer_note"] == CUSTOMER_ACK and customer["ack_comment"] is None
    staff = logged_in(portal.app, NOC).get(f"/api/v1/alarms/{shared}").get_json()
    assert staff["ack_comment"] == INTERNAL_ACK and staff["acknowledged_by"] == "eng.liu"


# --- a shared operator port ------------------------------------------------------------------

SHARED_BPS = 777_000_000.0  # what the shared PE port carries: hsbank's and xinhe's traffic
SUB_BPS = 33_000_000.0  # hsbank's own sub-interface


def _write(portal: Portal, port: int, bps: float) -> None:  # noqa: F811
    now = datetime.now(UTC)
    with SampleWriter(portal.database.pool) as writer:
        for seconds in (0, 10, 20):
            writer.add(now - timedelta(seconds=seconds), port, "if_in_bps", bps)
            writer.add(now - timedelta(seconds=seconds), port, "if_out_bps", bps)


def _samples(client: Any, port: int) -> Any:
    end = datetime.now(UTC) + timedelta(minutes=1)
    return client.get("/api/v1/samples", query_string={
        "object_id": port, "metric": "if_in_bps",
        "start": (end - timedelta(hours=1)).isoformat(), "end": end.isoformat()})


def _z_traffic(page: str) -> str:
    start = page.index('data-traffic="z"')
    return page[start:page.index("</dd>", start)]


def test_a_shared_pe_port_is_staff_only(portal: Portal):  # noqa: F811
    shared = port_id(portal, "pe-sh1", "XGigabitEthernet0/1/2")
    inet = circuit_id(portal, "HSB-INET-0001")
    _write(portal, shared, SHARED_BPS)
    with portal.database.pool.connection() as conn:
        from store.users import set_password

        set_password(conn, USER_C, PASSWORD)
    for user in (USER_A, USER_C):  # both customers whose circuits end there
        assert _samples(logged_in(portal.app, user), shared).status_code == 404, user
    staff = _samples(logged_in(portal.app, NOC), shared)
    assert staff.status_code == 200 and staff.get_json()["points"]
    customer = logged_in(portal.app, USER_A)
    page = customer.get(f"/circuits/{inet}").get_data(as_text=True)
    z = _z_traffic(page)
    assert "777 Mbit/s" not in page and 'data-port=""' in z
    assert 'data-port-z=""' in page
    state = customer.get(f"/circuits/{inet}/status").get_json()
    assert "777" not in state["traffic"]["z"]
    listing = customer.get(f"/customers/{portal.a.customer_id}/").get_data(as_text=True)
    assert "777 Mbit/s" not in listing
    # the A end, on hsbank's own router, is still its own
    a_port = ids_of(portal, "SELECT a_port_id FROM circuits WHERE id = %s", inet)[0]
    assert _samples(customer, a_port).status_code == 200


def test_a_named_sub_interface_gives_the_customer_its_own_traffic(
        portal: Portal, tmp_path: Path):  # noqa: F811
    folder = tmp_path / "inventory"
    shutil.copytree(EXAMPLE_INVENTORY, folder)
    network = folder / "network.yaml"
    text = network.read_text()
    line = ('      - {name: XGigabitEthernet0/1/2, if_index: 7, speed_bps: 10G,'
            ' description: "Internet transit (CHINANET upstream)"}\n')
    assert text.count(line) == 1
    network.write_text(text.replace(line, line + (
        '      - {name: XGigabitEthernet0/1/2.101, if_index: 1101,'
        ' description: "HSB-INET-0001"}\n')))
    circuits = folder / "circuits.yaml"
    text = circuits.read_text()
    end = "    z_end: {device: pe-sh1, port: XGigabitEthernet0/1/2}\n"
    first = text.index(end, text.index("id: HSB-INET-0001"))
    circuits.write_text(text[:first] + (
        "    z_end: {device: pe-sh1, port: XGigabitEthernet0/1/2,"
        " sub_interface: XGigabitEthernet0/1/2.101}\n") + text[first + len(end):])
    inventory = load_inventory_files([folder])
    import_inventory(portal.database, inventory, [folder])
    shared = port_id(portal, "pe-sh1", "XGigabitEthernet0/1/2")
    sub = port_id(portal, "pe-sh1", "XGigabitEthernet0/1/2.101")
    inet = circuit_id(portal, "HSB-INET-0001")
    assert ids_of(portal, "SELECT z_sub_port_id FROM circuits WHERE id = %s", inet) == [sub]
    _write(portal, shared, SHARED_BPS)
    _write(portal, sub, SUB_BPS)
    customer = logged_in(portal.app, USER_A)
    assert _samples(customer, shared).status_code == 404
    assert _samples(customer, sub).get_json()["points"]
    page = customer.get(f"/circuits/{inet}").get_data(as_text=True)
    z = _z_traffic(page)
    assert f'data-port="{sub}"' in z and "33 Mbit/s" in z
    assert "777 Mbit/s" not in page and f'data-port-z="{sub}"' in page
    with portal.database.pool.connection() as conn:
        from store.users import set_password

        set_password(conn, USER_C, PASSWORD)
    assert _samples(logged_in(portal.app, USER_C), sub).status_code == 404


def test_the_inventory_checks_a_sub_interface(tmp_path: Path):
    from config.inventory.model import InventoryError

    folder = tmp_path / "inventory"
    shutil.copytree(EXAMPLE_INVENTORY, folder)
    circuits = folder / "circuits.yaml"
    text = circuits.read_text()
    end = "    z_end: {device: pe-sh1, port: XGigabitEthernet0/1/2}\n"
    first = text.index(end, text.index("id: HSB-INET-0001"))
    circuits.write_text(text[:first] + (
        "    z_end: {device: pe-sh1, port: XGigabitEthernet0/1/2,"
        " sub_interface: XGigabitEthernet0/1/2.999}\n") + text[first + len(end):])
    with pytest.raises(InventoryError) as raised:
        load_inventory_files([folder])
    report = raised.value.report()
    assert "z_end.sub_interface" in report and "XGigabitEthernet0/1/2.999" in report
    assert "circuits.yaml" in report


def test_the_example_inventory_still_loads():
    assert load_inventory_files([EXAMPLE_INVENTORY]).circuits
