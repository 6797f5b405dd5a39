"""The live portal: Socket.IO rooms fed by the store's events (portal/live.py) and the NOC's
live topology page (portal/noc.py, portal/static/topology.js).

Three kinds of test:

- socket level, with python-socketio's client and a customer's session cookie, on the
  example inventory (tests/test_portal_access.py's fixtures); observations, alarms and
  circuits' service states are recorded straight into the store, as a collector and the
  alarm pipeline would: a customer may join only its own room, and never receives anything
  of another customer's, live or in its snapshot; a circuit's status in the messages is its
  stored service state, never one worked out from the topology. Every join brings a
  snapshot of the room as the store has it now: a page that was away (even across a
  restart of the portal) ends as the store is, the events that arrive while a snapshot is
  made are neither lost nor doubled, and a snapshot's alarms are cut exactly as the live
  messages';
- in Debian's chromium on the same fixtures: the console, the topology and a customer's
  circuits list, their sockets dropped while the store changes, show the store as it is once
  back, each alarm once;
- end to end in Debian's chromium (tests/test_portal_browser.py's fixtures): the simulated
  network, a collection service with traps and the portal share one database; a port taken
  down in the simulated network turns its link red on the page within two seconds, without a
  reload, and a page whose socket was dropped shows what changed meanwhile once back.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from werkzeug.serving import make_server

from alarms.model import (
    PIPELINE_ACTOR,
    Alarm,
    AlarmChange,
    AlarmKey,
    AlarmState,
    AlarmType,
    ObjectKind,
    Severity,
    TimelineEntry,
)
from collectors.model import Observation
from config.inventory.model import Inventory
from config.settings import load_settings
from lab.sim.network import SimulatedNetwork
from portal.app import create_app
from portal.live import LiveBridge, start_live
from store.alarms import alarms_for, save_changes
from store.circuit_states import StoredState, current_states, record_states
from store.database import Database
from store.events import last_event_id, publish
from store.observations import record_observations
from store.queries import Viewer
from store.users import set_password
from tests.test_collection_service import (  # noqa: F401
    a_linked_port,
    environ,
    inventory,
    make_service,
    network,
    observations_of,
    port_id,
    store,
    trap_port,
)
from tests.test_portal_access import (  # noqa: F401
    CUSTOMER_A,
    CUSTOMER_B,
    PASSWORD,
    USER_A,
    USER_B,
    Portal,
    Tenant,
    csrf_token,
    portal,
    set_circuit_states,
)
from tests.test_portal_browser import browser, log_in  # noqa: F401

T = TypeVar("T")

LIVE_WITHIN_S = 2.0


def wait_for(predicate: Callable[[], T], timeout_s: float, interval_s: float = 0.05) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout_s} s")
        time.sleep(interval_s)


@dataclass
class Served:
    url: str
    bridge: LiveBridge


@contextmanager
def serve(app: Any) -> Iterator[Served]:
    """The app with its live bridge started, on a free loopback port, in a thread."""
    bridge = start_live(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{server.server_port}", bridge)
    finally:
        bridge.stop()
        server.shutdown()
        thread.join(10)


def session_cookie(url: str, name: str, password: str = PASSWORD) -> str:
    with requests.Session() as http:
        page = http.get(url + "/login", timeout=10).text
        answer = http.post(url + "/login", data={"name": name, "password": password,
                                                 "csrf_token": csrf_token(page)},
                           allow_redirects=False, timeout=10)
        assert answer.status_code == 302, answer.text
        return f"keyline_session={http.cookies['keyline_session']}"


class Listener:
    """A python-socketio client that records every "status" message: `received` all of
    them in order, `messages` the live ones, `snapshots` those a join sent."""

    def __init__(self, url: str, cookie: str | None) -> None:
        import socketio

        self.received: list[dict[str, Any]] = []
        self.client = socketio.Client(reconnection=False)
        self.client.on("status", self.received.append)
        headers = {"Cookie": cookie} if cookie else {}
        self.client.connect(url, headers=headers, transports=["websocket"], wait_timeout=10)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [m for m in self.received if not m.get("snapshot")]

    @property
    def snapshots(self) -> list[dict[str, Any]]:
        return [m for m in self.received if m.get("snapshot")]

    def join(self, room: str, after: int | None = None) -> dict[str, Any]:
        request: dict[str, Any] = {"room": room}
        if after is not None:
            request["after"] = after
        return self.client.call("join", request, timeout=10)

    def close(self) -> None:
        self.client.disconnect()


def close_all(listeners: Iterable[Listener]) -> None:
    """Disconnect them all at once (each disconnection waits for the server's goodbye)."""
    threads = [threading.Thread(target=listener.close) for listener in listeners
               if listener.client.connected]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)


def mentions(messages: list[dict[str, Any]], tenant: Tenant) -> list[str]:
    """Ids and words of `tenant` that appear anywhere in `messages` (but a message's own
    "id", the event's, which may equal an object's id by chance)."""
    text = repr([{k: v for k, v in m.items() if k != "id"} for m in messages])
    found = sorted(word for word in tenant.words if word in text)
    ids = {int(n) for n in re.findall(r"(?:device|link|circuit|site|port):(\d+)", text)}
    ids |= {int(n) for n in re.findall(r"'(?:id|object_id)': (\d+)", text)}
    own = set().union(*tenant.ids.values())
    return found + sorted(str(i) for i in ids & own)


# --- socket level --------------------------------------------------------------------------


@pytest.fixture
def live(portal: Portal) -> Iterator[Served]:  # noqa: F811
    with serve(portal.app) as served:
        yield served


def ce_port(portal: Portal, customer: str) -> int:  # noqa: F811
    """A port of the customer's CE router that a link uses (its access link)."""
    with portal.database.pool.connection() as conn:
        return conn.execute(
            """SELECT p.id FROM ports p JOIN devices d ON d.id = p.device_id
                 JOIN sites s ON s.id = d.site_id JOIN customers c ON c.id = s.customer_id
                 JOIN links l ON p.id IN (l.a_port_id, l.z_port_id)
                WHERE c.key = %s AND l.retired_at IS NULL ORDER BY p.id LIMIT 1""",
            [customer]).fetchone()[0]


def observe(portal: Portal, object_id: int, new: str, old: str | None = "up") -> int:  # noqa: F811
    with portal.database.pool.connection() as conn:
        record_observations(conn, [Observation(datetime.now(UTC), object_id, "oper_status",
                                               old, new, "trap")])
        return last_event_id(conn)


def all_up(portal: Portal) -> int:  # noqa: F811
    """Every port up and every device reachable, as a first poll would find them."""
    with portal.database.pool.connection() as conn:
        ports = [row[0] for row in conn.execute("SELECT id FROM ports")]
        devices = [row[0] for row in conn.execute("SELECT id FROM devices")]
        now = datetime.now(UTC)
        record_observations(conn, [
            *(Observation(now, p, "oper_status", None, "up", "poll") for p in ports),
            *(Observation(now, d, "reachability", None, "reachable", "poll")
              for d in devices)])
        return last_event_id(conn)


ALARM_IDS_FROM = 900_000  # above every object id, so that mentions() never mistakes one


def raise_alarm(database: Database, kind: str, object_id: int, type_: str, *,
                circuits: set[int], customers: set[int], summary: str = "",
                root: Alarm | None = None) -> Alarm:
    """An alarm raised and stored as the alarm pipeline does (store.alarms.save_changes:
    the row and its "alarm.raised" event in one transaction); `id` is set."""
    now = datetime.now(UTC)
    alarm = Alarm(AlarmKey(ObjectKind(kind), object_id, AlarmType(type_)), Severity.CRITICAL,
                  now, now, summary=summary, root_cause=root.key if root else None,
                  impacted_circuits=frozenset(circuits), impacted_customers=frozenset(customers))
    with database.pool.connection() as conn:
        sequence = conn.execute("SELECT pg_get_serial_sequence('alarms', 'id')").fetchone()[0]
        conn.execute(f"SELECT setval('{sequence}', greatest(%s, last_value)) FROM {sequence}",
                     [ALARM_IDS_FROM])
        save_changes(conn, [AlarmChange(alarm, "raised", (TimelineEntry(now, "raised",
                                                                        PIPELINE_ACTOR),))],
                     alarm_for=lambda key: root if root is not None and key == root.key
                     else None)
    assert alarm.id is not None
    return alarm


def clear_alarm(database: Database, alarm: Alarm) -> None:
    """The pipeline clears a stored alarm ("alarm.cleared")."""
    now = datetime.now(UTC)
    alarm.state, alarm.cleared_at, alarm.last_seen = AlarmState.CLEARED, now, now
    with database.pool.connection() as conn:
        save_changes(conn, [AlarmChange(alarm, "cleared", (TimelineEntry(now, "cleared",
                                                                          PIPELINE_ACTOR),))])


@dataclass
class Page:
    """What a live page holds, rebuilt from its messages the way the pages do it: a snapshot
    replaces everything; a live message updates the elements it names, and an alarm by its
    id (a cleared one leaves)."""

    statuses: dict[str, str] = field(default_factory=dict)
    circuits: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    alarms: dict[int, dict[str, Any]] = field(default_factory=dict)

    def apply(self, message: dict[str, Any]) -> Page:
        if message.get("snapshot"):
            self.statuses, self.circuits, self.alarms = {}, {}, {}
        for item in message["devices"] + message["links"]:
            if "status" in item:
                self.statuses[item["id"]] = item["status"]
        for item in message["circuits"]:
            self.circuits[item["id"]] = (item["status"], item["underlying"])
        for alarm in message["alarms"]:
            if alarm["state"] == "active":
                self.alarms[alarm["id"]] = alarm
            else:
                self.alarms.pop(alarm["id"], None)
        return self

    @classmethod
    def of(cls, messages: list[dict[str, Any]]) -> Page:
        page = cls()
        for message in messages:
            page.apply(message)
        return page


def store_now(database: Database, customer_id: int | None
              ) -> tuple[dict[str, tuple[str, str | None]], set[int]]:
    """The circuits' stored states and the active alarms' ids, as the room of `customer_id`
    (None: the NOC's) may see them."""
    with database.pool.connection() as conn:
        circuits = None if customer_id is None else [row[0] for row in conn.execute(
            "SELECT id FROM circuits WHERE customer_id = %s AND retired_at IS NULL",
            [customer_id])]
        states = current_states(conn, circuits)
        viewer = (Viewer("test", "noc") if customer_id is None
                  else Viewer("test", "customer", customer_id=customer_id))
        alarms = {a.id for a in alarms_for(conn, viewer) if a.id is not None}
    return ({f"circuit:{c}": (s.state, s.underlying) for c, s in states.items()}, alarms)


def test_sockets_need_a_session(live: Served):
    import socketio

    with pytest.raises(socketio.exceptions.ConnectionError):
        Listener(live.url, None)
    with pytest.raises(socketio.exceptions.ConnectionError):
        Listener(live.url, "keyline_session=forged.cookie.value")


def test_customer_joins_only_its_own_room_and_hears_only_its_own(
        live: Served, portal: Portal):  # noqa: F811
    with portal.database.pool.connection() as conn:
        for user in ("noc.wang", USER_A):
            set_password(conn, user, PASSWORD)
    seeded = all_up(portal)
    wait_for(lambda: live.bridge.last_id >= seeded, LIVE_WITHIN_S)
    customer = Listener(live.url, session_cookie(live.url, USER_A))
    noc = Listener(live.url, session_cookie(live.url, "noc.wang"))
    try:
        refused = customer.join(f"customer:{portal.b.customer_id}")
        assert refused == {"ok": False, "error": "no such room"}
        assert customer.join("noc")["ok"] is False
        assert customer.join("customer:999999999")["ok"] is False
        joined = customer.join(f"customer:{portal.a.customer_id}")
        assert joined["ok"] is True
        start_id = joined["last_id"]
        assert noc.join("noc")["ok"] is True

        # B's access link goes down, and the pipeline takes B's circuits down: the NOC hears
        # of both, A hears nothing at all.
        b_port = ce_port(portal, CUSTOMER_B)
        b_event = observe(portal, b_port, "down")
        wait_for(lambda: any(m["id"] >= b_event for m in noc.messages), LIVE_WITHIN_S)
        noc_words = repr(noc.messages)
        assert "'status': 'down'" in noc_words
        assert not any(m["circuits"] for m in noc.messages)  # the topology decides none
        b_event = set_circuit_states(portal.database, dict.fromkeys(portal.b.ids["circuit"],
                                                                    "down"))
        wait_for(lambda: any(m["id"] >= b_event for m in noc.messages), LIVE_WITHIN_S)
        circuits = [c for m in noc.messages for c in m["circuits"]]
        assert {c["id"] for c in circuits} == {f"circuit:{c}" for c in portal.b.ids["circuit"]}
        assert {c["status"] for c in circuits} == {"down"}
        assert all(c["cause"] == "set by the test" and c["since"] for c in circuits)

        # an alarm on B's circuit only; and one on a shared router that hits A and B
        b_circuit = min(portal.b.ids["circuit"])
        a_circuit = min(portal.a.ids["circuit"])
        shared_device = min(portal.shared_device_ids)
        b_alarm = raise_alarm(portal.database, "circuit", b_circuit, "service_down",
                              circuits={b_circuit}, customers={portal.b.customer_id},
                              summary=f"{CUSTOMER_B} circuit down")
        shared_alarm = raise_alarm(portal.database, "device", shared_device,
                                   "device_unreachable", circuits={a_circuit, b_circuit},
                                   customers={portal.a.customer_id, portal.b.customer_id},
                                   summary="core router unreachable")
        with portal.database.pool.connection() as conn:
            shared_alarm_event = last_event_id(conn)

        # A's own access link goes down: A hears of it (so the room works)
        a_port = ce_port(portal, CUSTOMER_A)
        observe(portal, a_port, "down")
        a_event = set_circuit_states(portal.database, dict.fromkeys(portal.a.ids["circuit"],
                                                                    "down"))
        wait_for(lambda: any(m["id"] >= a_event for m in customer.messages), LIVE_WITHIN_S)
        wait_for(lambda: any(m["id"] >= a_event for m in noc.messages), LIVE_WITHIN_S)
        assert all(m["id"] > b_event for m in customer.messages)
        own = repr(customer.messages)
        assert any(f"circuit:{c}" in own for c in portal.a.ids["circuit"])
        alarms = [a for m in customer.messages for a in m["alarms"]]
        # the shared one, cut down to A's circuit
        assert [a["id"] for a in alarms] == [shared_alarm.id]
        assert alarms[0]["circuits"] == [f"circuit:{a_circuit}"]
        assert {a["id"] for m in noc.messages for a in m["alarms"]} == {b_alarm.id,
                                                                        shared_alarm.id}
        assert shared_alarm_event < a_event
        assert not mentions(customer.received, portal.b), mentions(customer.received,
                                                                   portal.b)

        # A drops and rejoins from where it was: its snapshot is A's only, and current
        customer.close()
        observe(portal, b_port, "up", "down")
        observe(portal, a_port, "up", "down")
        back_event = set_circuit_states(portal.database, dict.fromkeys(
            portal.a.ids["circuit"] | portal.b.ids["circuit"], "up"))
        wait_for(lambda: live.bridge.last_id >= back_event, LIVE_WITHIN_S)
        again = Listener(live.url, session_cookie(live.url, USER_A))
        try:
            answer = again.join(f"customer:{portal.a.customer_id}", after=start_id)
            assert answer["ok"]
            (snapshot,) = again.received  # before the acknowledgement, and alone
            assert snapshot["topic"] == "snapshot" and snapshot["id"] >= back_event
            assert answer["last_id"] == snapshot["id"]
            assert snapshot["room"] == f"customer:{portal.a.customer_id}"
            assert not snapshot["resync"] and snapshot["alarms_complete"]
            assert {c["id"] for c in snapshot["circuits"]} == {
                f"circuit:{c}" for c in portal.a.ids["circuit"]}
            assert {c["status"] for c in snapshot["circuits"]} == {"up"}
            assert {x["status"] for x in snapshot["links"]} == {"up"}
            assert [a["id"] for a in snapshot["alarms"]] == [shared_alarm.id]
            assert snapshot["alarms"][0]["circuits"] == [f"circuit:{a_circuit}"]
            assert not mentions(again.received, portal.b), mentions(again.received, portal.b)
        finally:
            again.close()
    finally:
        for listener in (customer, noc):
            if listener.client.connected:
                listener.close()


def test_circuit_states_go_to_their_own_customers_room_only(
        live: Served, portal: Portal):  # noqa: F811
    """One "circuit.state" event naming circuits of A and B: the NOC hears both, A only its
    own (maintenance with what lies beneath); after a reconnect A catches up on the state
    the store has now."""
    with portal.database.pool.connection() as conn:
        set_password(conn, "noc.wang", PASSWORD)
    a_circuit, b_circuit = min(portal.a.ids["circuit"]), min(portal.b.ids["circuit"])
    customer = Listener(live.url, session_cookie(live.url, USER_A))
    noc = Listener(live.url, session_cookie(live.url, "noc.wang"))
    try:
        start_id = customer.join(f"customer:{portal.a.customer_id}")["last_id"]
        assert noc.join("noc")["ok"]
        with portal.database.pool.connection() as conn:
            customers = dict(conn.execute("SELECT id, customer_id FROM circuits").fetchall())
            now = datetime.now(UTC)
            record_states(conn, [
                StoredState(a_circuit, customers[a_circuit], now, "maintenance", "up", "down",
                            "in maintenance window 7 (down: port Gi0/0/5 down)",
                            "maintenance", ("port:1",), (7,), 42),
                StoredState(b_circuit, customers[b_circuit], now, "down", "up", None,
                            f"{CUSTOMER_B} port down", "end_port_down", (), (), 43)])
            event = last_event_id(conn)
        wait_for(lambda: any(m["id"] >= event for m in noc.messages), LIVE_WITHIN_S)
        wait_for(lambda: any(m["id"] >= event for m in customer.messages), LIVE_WITHIN_S)
        heard = {c["id"]: c for m in noc.messages for c in m["circuits"]}
        assert {k: (c["status"], c["underlying"]) for k, c in heard.items()} == {
            f"circuit:{a_circuit}": ("maintenance", "down"),
            f"circuit:{b_circuit}": ("down", None)}
        (own,) = [c for m in customer.messages for c in m["circuits"]]
        assert own["id"] == f"circuit:{a_circuit}" and own["status"] == "maintenance"
        assert own["underlying"] == "down" and own["cause"].startswith("in maintenance")
        assert not mentions(customer.received, portal.b), mentions(customer.received,
                                                                   portal.b)
        assert live.bridge.circuit_states[a_circuit]["state"] == "maintenance"

        # the same state again changes nothing: nothing is sent
        sent = len(customer.messages)
        again = set_circuit_states(portal.database, {a_circuit: "maintenance"},
                                   underlying="down")
        wait_for(lambda: live.bridge.last_id >= again, LIVE_WITHIN_S)
        assert len(customer.messages) == sent

        # A away; its circuit back in service, B's too: the catch-up reads the store's state
        customer.close()
        back = set_circuit_states(portal.database, {a_circuit: "up", b_circuit: "up"})
        wait_for(lambda: live.bridge.last_id >= back, LIVE_WITHIN_S)
        rejoined = Listener(live.url, session_cookie(live.url, USER_A))
        try:
            assert rejoined.join(f"customer:{portal.a.customer_id}", after=start_id)["ok"]
            (snapshot,) = rejoined.received
            assert snapshot["topic"] == "snapshot" and not snapshot["resync"]
            assert {c["id"]: (c["status"], c["underlying"]) for c in snapshot["circuits"]} == {
                f"circuit:{c}": ("up", None) for c in portal.a.ids["circuit"]}
            assert not mentions(rejoined.received, portal.b)
        finally:
            rejoined.close()
    finally:
        for listener in (customer, noc):
            if listener.client.connected:
                listener.close()


def test_a_failed_event_is_recovered_and_every_room_told_to_resync(
        portal: Portal, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    """The bridge follows the events with the store's consumer (durable=False): an event
    whose handling fails is not lost for the pages; the bridge loads the store again and
    sends every room its differences with "resync" (what failed may have reached no one)."""
    sent: list[tuple[str, dict[str, Any]]] = []
    bridge = LiveBridge(portal.database, lambda event, data, room: sent.append((room, data)),
                        utilization_interval_s=0)
    bridge.start()
    try:
        consumer = bridge.consumer
        assert consumer is not None and consumer.stats.recoveries == 1
        handled = bridge._on_circuit_states
        failures = {"left": 1}

        def failing(event: Any) -> None:
            if failures["left"]:
                failures["left"] -= 1
                raise RuntimeError("a bug in the bridge")
            handled(event)

        monkeypatch.setattr(bridge, "_on_circuit_states", failing)
        a_circuit = min(portal.a.ids["circuit"])
        went_down = set_circuit_states(portal.database, {a_circuit: "down"})
        # after the consumer's retry delay (1 s) and a load of the store: not a speed figure
        wait_for(lambda: consumer.stats.recoveries == 2 and consumer.idle(), 30)
        assert consumer.stats.errors == 1
        assert bridge.circuit_states[a_circuit]["state"] == "down"
        told = {room: m for room, m in sent if m["resync"] and m["id"] >= went_down}
        assert set(told) == {"noc", *(f"customer:{c}" for c in bridge.customers)}
        own = told[f"customer:{portal.a.customer_id}"]["circuits"]
        assert [(c["id"], c["status"]) for c in own] == [(f"circuit:{a_circuit}", "down")]
        # and it goes on: the next event is handled as usual
        back = set_circuit_states(portal.database, {a_circuit: "up"})
        wait_for(lambda: bridge.last_id >= back and consumer.idle(), LIVE_WITHIN_S)
        assert bridge.circuit_states[a_circuit]["state"] == "up"
    finally:
        bridge.stop()


# --- joining: a snapshot, then what follows ----------------------------------------------


def test_a_rejoin_after_a_restart_shows_the_store_as_it_is_now(
        portal: Portal, tmp_path: Path):  # noqa: F811
    """Issue 11 item 7, as measured: pages away while circuits went down, an alarm was
    raised and another cleared, and the portal restarted. Rejoining with the id they last
    saw, they show the store as it is now: the down circuits down, the cleared alarm gone,
    each active alarm once."""
    database = portal.database
    a = portal.a
    a_room = f"customer:{a.customer_id}"
    circuits = sorted(a.ids["circuit"])
    shared_device = min(portal.shared_device_ids)
    all_up(portal)
    leaving = raise_alarm(database, "device", shared_device, "device_unreachable",
                          circuits={circuits[0]}, customers={a.customer_id},
                          summary="core router unreachable")
    staying = raise_alarm(database, "circuit", circuits[1], "service_down",
                          circuits={circuits[1]}, customers={a.customer_id})
    with serve(portal.app) as first:
        customer = Listener(first.url, session_cookie(first.url, USER_A))
        noc = Listener(first.url, session_cookie(first.url, "noc.wang"))
        customer_id = customer.join(a_room)["last_id"]
        noc_id = noc.join("noc")["last_id"]
        before = {"customer": list(customer.received), "noc": list(noc.received)}
        for listener in (customer, noc):
            (snapshot,) = listener.snapshots
            assert {leaving.id, staying.id} <= {x["id"] for x in snapshot["alarms"]}
            listener.close()
        # away: three circuits down, their CE's access link down (the first bridge hears)
        down = circuits[2:5]
        a_port = ce_port(portal, CUSTOMER_A)
        observe(portal, a_port, "down")
        went_down = set_circuit_states(database, dict.fromkeys(down, "down"),
                                       cause="access link down")
        wait_for(lambda: first.bridge.last_id >= went_down, LIVE_WITHIN_S)
    # ...and while no bridge runs: an alarm raised, another cleared
    raised = raise_alarm(database, "circuit", down[0], "service_down", circuits=set(down),
                         customers={a.customer_id}, summary="access link down")
    clear_alarm(database, leaving)
    settings = load_settings(None, overrides={"data_dir": tmp_path / "restarted",
                                              "database_url": database.url})
    with serve(create_app(settings, database)) as second:
        customer = Listener(second.url, session_cookie(second.url, USER_A))
        noc = Listener(second.url, session_cookie(second.url, "noc.wang"))
        try:
            assert customer.join(a_room, after=customer_id)["ok"]
            assert noc.join("noc", after=noc_id)["ok"]
            for name, listener, customer_scope in (("customer", customer, a.customer_id),
                                                   ("noc", noc, None)):
                (snapshot,) = listener.received
                ids = [x["id"] for x in snapshot["alarms"]]
                assert len(ids) == len(set(ids)), ids  # each alarm once
                page = Page.of(before[name] + listener.received)
                states, alarms = store_now(database, customer_scope)
                assert page.circuits == states
                assert {page.circuits[f"circuit:{c}"] for c in down} == {("down", None)}
                assert set(page.alarms) == alarms
                assert raised.id in alarms and staying.id in alarms
                assert leaving.id not in alarms
                link = f"link:{link_of(database, a_port)}"
                assert page.statuses[link] == "down"
            assert not mentions(customer.received, portal.b)
        finally:
            customer.close()
            noc.close()


def test_events_during_a_join_are_neither_lost_nor_doubled(
        live: Served, portal: Portal, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    """Circuit states and alarms keep coming, from another thread, while sockets join (the
    snapshot is read slowly, so that events commit before, during and after its read): each
    page ends as the store is, and no event reaches a socket twice or reflected in its
    snapshot too."""
    database = portal.database
    bridge = live.bridge
    read_store = bridge._read_store
    pending: list[int] = []

    def slow_read(room: str, scope: Any) -> Any:
        time.sleep(0.1)  # events commit; the subscriber waits for the lock
        read = read_store(room, scope)
        pending.append(len(read.pending))
        time.sleep(0.1)  # more commit after the read, before the socket enters the room
        return read

    monkeypatch.setattr(bridge, "_read_store", slow_read)
    a, b = portal.a, portal.b
    circuits = sorted(a.ids["circuit"] | b.ids["circuit"])
    owner = {c: a.customer_id if c in a.ids["circuit"] else b.customer_id for c in circuits}
    stop = threading.Event()
    failures: list[BaseException] = []

    def storm() -> None:
        step, raised = 0, {}
        try:
            while not stop.is_set():
                step += 1
                circuit = circuits[step % len(circuits)]
                state = "down" if (step // len(circuits)) % 2 == 0 else "up"
                set_circuit_states(database, {circuit: state})
                if step % 3 == 0 and circuit not in raised:
                    raised[circuit] = raise_alarm(database, "circuit", circuit,
                                                  "service_down", circuits={circuit},
                                                  customers={owner[circuit]})
                if step % 5 == 0 and raised:
                    clear_alarm(database, raised.pop(next(iter(raised))))
                time.sleep(0.005)
        except BaseException as error:
            failures.append(error)

    listeners: list[tuple[Listener, str, int | None]] = []
    thread = threading.Thread(target=storm, daemon=True)
    thread.start()
    try:
        for _ in range(3):
            for user, room, scope in (("noc.wang", "noc", None),
                                      (USER_A, f"customer:{a.customer_id}", a.customer_id),
                                      (USER_B, f"customer:{b.customer_id}", b.customer_id)):
                listener = Listener(live.url, session_cookie(live.url, user))
                listeners.append((listener, room, scope))
                assert listener.join(room)["ok"]
    finally:
        stop.set()
        thread.join(10)
    try:
        assert not failures, failures
        assert any(pending), pending  # some joins processed events first
        # a last change every room hears: every socket has had everything before it
        marker = set_circuit_states(database, {min(a.ids["circuit"]): "maintenance",
                                               min(b.ids["circuit"]): "maintenance"},
                                    underlying="up")
        for listener, _room, _scope in listeners:
            wait_for(lambda listener=listener: any(m["id"] >= marker
                                                   for m in listener.messages), LIVE_WITHIN_S)
        for listener, room, scope in listeners:
            (snapshot,) = listener.snapshots
            assert listener.received[0] is snapshot
            after = listener.received[1:]
            assert all(m["room"] == room for m in listener.received)
            # nothing the snapshot reflects comes again (the events commit in id order
            # here), and no event comes twice
            assert all(m["id"] > snapshot["id"] for m in after), (snapshot["id"], after)
            ids = [m["id"] for m in after]
            assert len(ids) == len(set(ids))
            page = Page.of(listener.received)
            states, alarms = store_now(database, scope)
            assert page.circuits == states, room
            assert set(page.alarms) == alarms, room
            other = b if scope == a.customer_id else a if scope == b.customer_id else None
            if other is not None:
                assert not mentions(listener.received, other)
    finally:
        close_all([listener for listener, _room, _scope in listeners])


def test_snapshots_are_scoped_and_cut_like_the_live_messages(
        live: Served, portal: Portal):  # noqa: F811
    """A customer's snapshot holds its own circuits, the devices and links of its view and
    its alarms cut to its own circuits, nothing of another tenant's; each alarm in it is
    the very dict the live message carried (fields, root_cause_id, labels)."""
    database = portal.database
    a, b = portal.a, portal.b
    all_up(portal)
    a_circuit, b_circuit = min(a.ids["circuit"]), min(b.ids["circuit"])
    shared_device = min(portal.shared_device_ids)
    b_device = min(b.ids["device"])
    rooms = {"noc": ("noc.wang", None), f"customer:{a.customer_id}": (USER_A, a),
             f"customer:{b.customer_id}": (USER_B, b)}
    heard = {room: Listener(live.url, session_cookie(live.url, user))
             for room, (user, _) in rooms.items()}
    try:
        for room, listener in heard.items():
            assert listener.join(room)["ok"]
        root = raise_alarm(database, "device", shared_device, "device_unreachable",
                           circuits={a_circuit, b_circuit},
                           customers={a.customer_id, b.customer_id},
                           summary="core router unreachable")
        symptom = raise_alarm(database, "circuit", a_circuit, "service_down",
                              circuits={a_circuit}, customers={a.customer_id}, root=root)
        b_only = raise_alarm(database, "circuit", b_circuit, "service_down",
                             circuits={b_circuit}, customers={b.customer_id},
                             summary=f"{CUSTOMER_B} circuit down")
        # B's own router, said to hit one of A's circuits too: A sees it without its name
        b_router = raise_alarm(database, "device", b_device, "device_unreachable",
                               circuits={a_circuit, b_circuit},
                               customers={a.customer_id, b.customer_id},
                               summary=f"{CUSTOMER_B} router unreachable")
        with database.pool.connection() as conn:
            last = last_event_id(conn)
        wait_for(lambda: live.bridge.last_id >= last, LIVE_WITHIN_S)
        time.sleep(0.2)
        joined = {room: Listener(live.url, session_cookie(live.url, user))
                  for room, (user, _) in rooms.items()}
        try:
            snapshots = {}
            for room, listener in joined.items():
                assert listener.join(room)["ok"]
                (snapshots[room],) = listener.received
            for room, snapshot in snapshots.items():
                said = {x["id"]: x for m in heard[room].messages for x in m["alarms"]}
                shown = {x["id"]: x for x in snapshot["alarms"]}
                assert shown == said, room  # the same alarms, field for field
            a_room, b_room = f"customer:{a.customer_id}", f"customer:{b.customer_id}"
            assert set(snapshots["noc"]["alarms"][0]) >= {"impacted_customers", "label"}
            assert {x["id"] for x in snapshots["noc"]["alarms"]} == {
                root.id, symptom.id, b_only.id, b_router.id}
            assert {x["id"] for x in snapshots[a_room]["alarms"]} == {root.id, symptom.id,
                                                                     b_router.id}
            assert {x["id"] for x in snapshots[b_room]["alarms"]} == {root.id, b_only.id,
                                                                     b_router.id}
            mine = {x["id"]: x for x in snapshots[a_room]["alarms"]}
            assert mine[symptom.id]["root_cause_id"] == root.id
            assert mine[root.id]["circuits"] == [f"circuit:{a_circuit}"]
            assert mine[b_router.id]["label"] is None and mine[b_router.id]["object"] is None
            assert mine[b_router.id]["summary"] is None
            for room, (_, tenant) in rooms.items():
                if tenant is None:
                    continue
                snapshot = snapshots[room]
                scope = live.bridge.customers[tenant.customer_id]
                assert {x["id"] for x in snapshot["circuits"]} == {
                    f"circuit:{c}" for c in tenant.ids["circuit"]}
                assert {x["id"] for x in snapshot["devices"]} == {
                    f"device:{d}" for d in scope.devices or ()}
                assert len(snapshot["links"]) == len(scope.links or ())
                other = b if tenant is a else a
                assert not mentions(joined[room].received, other), mentions(
                    joined[room].received, other)
                assert not mentions(heard[room].received, other)
        finally:
            close_all(joined.values())
    finally:
        close_all(heard.values())


def test_the_snapshot_asks_for_the_view_again_after_a_topology_change(
        live: Served, portal: Portal):  # noqa: F811
    noc = Listener(live.url, session_cookie(live.url, "noc.wang"))
    try:
        seen = noc.join("noc")["last_id"]
        with portal.database.pool.connection() as conn:
            changed = publish(conn, "topology.changed", {"reason": "a link accepted"})
        wait_for(lambda: live.bridge.last_id >= changed, 5)
        noc.close()
        noc = Listener(live.url, session_cookie(live.url, "noc.wang"))
        now = noc.join("noc", after=seen)["last_id"]
        assert noc.snapshots[-1]["resync"] and noc.snapshots[-1]["topology_id"] == changed
        assert not noc.snapshots[0]["alarms"] or noc.snapshots[0]["alarms_complete"]
        noc.join("noc", after=now)
        assert not noc.snapshots[-1]["resync"]
        noc.join("noc")  # no view to fetch again
        assert not noc.snapshots[-1]["resync"]
    finally:
        noc.close()


def test_a_socket_gone_before_its_join_is_handled_is_no_error(
        live: Served, portal: Portal, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    """The page closes (or reconnects) while its join waits: the handler answers "not
    connected" to no one, raises nothing, and leaves nothing behind in the rooms."""
    errors: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", errors.append)
    bridge = live.bridge
    read_store = bridge._read_store

    def slow_read(room: str, scope: Any) -> Any:
        time.sleep(0.4)
        return read_store(room, scope)

    monkeypatch.setattr(bridge, "_read_store", slow_read)
    cookie = session_cookie(live.url, "noc.wang")
    bystander = None
    # alone in the namespace (join_room's ValueError), then with another socket (KeyError)
    for _ in range(2):
        leaving = Listener(live.url, cookie)
        leaving.client.emit("join", {"room": "noc"})
        time.sleep(0.15)
        leaving.close()
        time.sleep(0.6)
        assert not leaving.received
        if bystander is None:
            bystander = Listener(live.url, cookie)
    try:
        assert bystander is not None and bystander.join("noc")["ok"]
        assert not errors, errors
        socketio = portal.app.extensions["keyline.socketio"]
        members = {sid for room, sids in socketio.server.manager.rooms["/"].items()
                   if room == "noc" for sid in sids}
        assert len(members) == 1
    finally:
        bystander.close()  # type: ignore[union-attr]

    # and at the bridge itself: the socket gone at its entry, nothing is sent
    sent: list[Any] = []
    answer = bridge.join("noc", None, send=sent.append, enter=lambda: False)
    assert answer == {"ok": False, "error": "not connected"} and not sent


def test_topology_views_are_scoped(portal: Portal):  # noqa: F811
    from tests.test_portal_access import logged_in

    with portal.database.pool.connection() as conn:
        set_password(conn, USER_A, PASSWORD)
        set_password(conn, "noc.wang", PASSWORD)
    staff = logged_in(portal.app, "noc.wang")
    whole = staff.get("/api/v1/topology/global").get_json()
    assert whole["view"] == "global" and whole["event_id"] >= 0
    devices = [n for n in whole["elements"]["nodes"] if n["data"]["kind"] == "device"]
    assert devices and all("position" in n for n in devices)
    # the same place in every view, and at every visit
    again = staff.get("/api/v1/topology/global").get_json()
    assert [n.get("position") for n in again["elements"]["nodes"]] == [
        n.get("position") for n in whole["elements"]["nodes"]]
    circuit = min(portal.a.ids["circuit"])
    route = staff.get(f"/api/v1/topology/circuits/{circuit}").get_json()
    where = {n["data"]["id"]: n["position"] for n in devices}
    for node in route["elements"]["nodes"]:
        if node["data"]["kind"] == "device":
            assert node["position"] == where[node["data"]["id"]]
    page = staff.get("/noc/topology").get_data(as_text=True)
    assert "cytoscape.min.js" in page and "topology.js" in page

    customer = logged_in(portal.app, USER_A)
    assert customer.get("/api/v1/topology/global").status_code == 404
    assert customer.get("/noc/topology").status_code == 404
    own = customer.get(f"/api/v1/topology/customers/{portal.a.customer_id}")
    assert own.status_code == 200
    assert customer.get(f"/api/v1/topology/circuits/{circuit}").status_code == 200
    for path in (f"customers/{portal.b.customer_id}",
                 f"circuits/{min(portal.b.ids['circuit'])}"):
        assert customer.get(f"/api/v1/topology/{path}").status_code == 404


# --- in the browser, against the simulated network -----------------------------------------


@pytest.fixture
def live_network(network: SimulatedNetwork, store: Database,  # noqa: F811
                 environ: dict[str, str], trap_port: int, tmp_path: Path  # noqa: F811
                 ) -> Iterator[tuple[Served, Any]]:
    with store.pool.connection() as conn:
        set_password(conn, "noc.wang", PASSWORD)
    settings = load_settings(None, overrides={"data_dir": tmp_path / "data",
                                              "database_url": store.url})
    app = create_app(settings, store)
    with make_service(store, environ, tmp_path, interval_s=300,
                      traps_port=trap_port) as service, serve(app) as served:
        yield served, service


def link_of(store: Database, port: int) -> int:  # noqa: F811
    with store.pool.connection() as conn:
        return conn.execute("SELECT id FROM links WHERE %s IN (a_port_id, z_port_id)"
                            " AND retired_at IS NULL", [port]).fetchone()[0]


def edge_status(page: Any, element: str) -> str | None:
    return page.evaluate(
        """(id) => { const t = window.keylineTopology;
                     if (!t || !t.cy) return null;
                     const e = t.cy.getElementById(id);
                     return e.length ? e.data('status') : null; }""", element)


@pytest.mark.slow
def test_a_link_down_turns_red_live_and_a_dropped_socket_catches_up(
        browser: Any, live_network: tuple[Served, Any],  # noqa: F811
        network: SimulatedNetwork, store: Database, inventory: Inventory):  # noqa: F811
    served, _service = live_network
    device, port = a_linked_port(inventory, "P")
    object_id = port_id(store, device, port)
    link = f"link:{link_of(store, object_id)}"
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # (a failed load is reported by the response handler below, with its address)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error"
            and not m.text.startswith("Failed to load resource") else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400
            else None)
    try:
        log_in(page, served.url, "noc.wang", PASSWORD)
        page.wait_for_selector("nav >> text=Topology")
        page.goto(served.url + "/noc/topology")
        page.wait_for_selector("#live-state[data-state=live]", timeout=10_000)
        # the first polls give every port its state, pushed to the page as they come
        wait_for(lambda: edge_status(page, link) == "up", 15)
        colour = page.evaluate(
            "(id) => keylineTopology.cy.getElementById(id).style('line-color')", link)
        assert colour == "rgb(22,163,74)"

        try:
            assert network.set_port_status(device, port, "down")
            changed_at = time.monotonic()
            wait_for(lambda: edge_status(page, link) == "down", LIVE_WITHIN_S)
            assert time.monotonic() - changed_at <= LIVE_WITHIN_S
            colour = page.evaluate(
                "(id) => keylineTopology.cy.getElementById(id).style('line-color')", link)
            assert colour == "rgb(220,38,38)"

            # drop the socket; the link comes back while the page is not listening
            page.evaluate("keylineTopology.socket.disconnect()")
            page.wait_for_selector("#live-state[data-state=offline]")
        finally:
            network.set_port_status(device, port, "up")
        wait_for(lambda: observations_of(store, object_id)[-1][1] == "up", LIVE_WITHIN_S)
        with store.pool.connection() as conn:
            up_event = last_event_id(conn)
        wait_for(lambda: served.bridge.last_id >= up_event, LIVE_WITHIN_S)
        time.sleep(0.3)
        assert edge_status(page, link) == "down"  # it heard nothing while disconnected
        page.evaluate("keylineTopology.socket.connect()")
        wait_for(lambda: edge_status(page, link) == "up", LIVE_WITHIN_S)
        assert page.evaluate("keylineTopology.lastId") >= up_event
        assert not [e for e in errors if "favicon" not in e], errors
    finally:
        context.close()


def rows_of(page: Any, selector: str) -> dict[int, int]:
    """Alarm id -> how many rows show it."""
    ids = page.evaluate("""(selector) => Array.from(document.querySelectorAll(selector))
                           .map((row) => Number(row.dataset.alarm))""", selector)
    return {i: ids.count(i) for i in ids}


@pytest.mark.slow
def test_pages_that_were_away_take_the_snapshot(
        browser: Any, portal: Portal):  # noqa: F811
    """The NOC's console and topology and a customer's circuits list lose their sockets;
    meanwhile three circuits go down, an alarm is raised and another cleared. Back, without
    a reload, each shows the store as it is: the circuits down, each active alarm once, the
    cleared one gone; a message applied twice changes nothing."""
    database = portal.database
    a = portal.a
    circuits = sorted(a.ids["circuit"])
    shared_device = min(portal.shared_device_ids)
    all_up(portal)
    leaving = raise_alarm(database, "device", shared_device, "device_unreachable",
                          circuits={circuits[0]}, customers={a.customer_id},
                          summary="core router unreachable")
    staying = raise_alarm(database, "circuit", circuits[1], "service_down",
                          circuits={circuits[1]}, customers={a.customer_id})
    errors: list[str] = []

    def watch(page: Any) -> Any:
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error"
                and not m.text.startswith("Failed to load resource") else None)
        return page

    with serve(portal.app) as served:
        noc = browser.new_context(locale="en-US")
        theirs = browser.new_context(locale="en-US")
        try:
            console = watch(noc.new_page())
            log_in(console, served.url, "noc.wang", PASSWORD)
            console.wait_for_selector("nav >> text=Topology")
            console.goto(served.url + "/alarms")
            topology = watch(noc.new_page())
            topology.goto(served.url + "/noc/topology")
            listing = watch(theirs.new_page())
            log_in(listing, served.url, USER_A, PASSWORD)
            listing.wait_for_selector("table.circuits")
            listing.goto(f"{served.url}/customers/{a.customer_id}/")
            for page in (console, topology, listing):
                page.wait_for_selector("#live-state[data-state=live]", timeout=10_000)
                page.evaluate("window.__keylineNoReload = 'still here'")
            # the customer's view: its circuits are listed with their service states
            topology.select_option("#topology-view", f"customers/{a.customer_id}")
            topology.wait_for_selector(f'tr[data-circuit="circuit:{circuits[2]}"]')
            assert rows_of(console, "tr.alarm") == {leaving.id: 1, staying.id: 1}
            wait_for(lambda: listing.evaluate("keylineCustomer.refreshes") >= 1, 5)
            assert rows_of(listing, "#alarms-table tbody tr") == {leaving.id: 1,
                                                                  staying.id: 1}
            loads = topology.evaluate("keylineTopology.loads")
            console.evaluate("keylineAlarms.socket.disconnect()")
            topology.evaluate("keylineTopology.socket.disconnect()")
            listing.evaluate("keylineCustomer.socket.disconnect()")
            for page in (console, topology, listing):
                page.wait_for_selector("#live-state[data-state=offline]")

            down = circuits[2:5]
            set_circuit_states(database, dict.fromkeys(down, "down"), cause="access link down")
            raised = raise_alarm(database, "circuit", down[0], "service_down",
                                 circuits=set(down), customers={a.customer_id})
            clear_alarm(database, leaving)
            with database.pool.connection() as conn:
                last = last_event_id(conn)
            wait_for(lambda: served.bridge.last_id >= last, LIVE_WITHIN_S)
            time.sleep(0.3)
            assert leaving.id in rows_of(console, "tr.alarm")  # it heard nothing

            console.evaluate("keylineAlarms.socket.connect()")
            topology.evaluate("keylineTopology.socket.connect()")
            listing.evaluate("keylineCustomer.socket.connect()")
            for page in (console, topology, listing):
                page.wait_for_selector("#live-state[data-state=live]", timeout=10_000)
            expected = {staying.id: 1, raised.id: 1}
            wait_for(lambda: rows_of(console, "tr.alarm") == expected, LIVE_WITHIN_S)
            wait_for(lambda: rows_of(listing, "#alarms-table tbody tr") == expected,
                     LIVE_WITHIN_S)
            assert console.inner_text("#alarm-count") == "2 alarms"
            for circuit in down:
                wait_for(lambda circuit=circuit: topology.evaluate(
                    """(id) => { const row = document.querySelector(
                                   `tr[data-circuit="${id}"] .service-state span`);
                                 return row && row.dataset.status; }""",
                    f"circuit:{circuit}") == "down", LIVE_WITHIN_S)
                wait_for(lambda circuit=circuit: listing.get_attribute(
                    f'[data-service="circuit:{circuit}"] span.status', "data-status")
                    == "down", LIVE_WITHIN_S)
            assert console.evaluate("keylineAlarms.snapshots") == 2
            assert topology.evaluate("keylineTopology.snapshots") == 2
            assert listing.evaluate("keylineCustomer.snapshots") == 2
            assert topology.evaluate("keylineTopology.loads") == loads  # the view holds

            # every message again, twice (as a second room or a replay would): nothing moves
            for page, name in ((console, "keylineAlarms"), (topology, "keylineTopology")):
                page.evaluate("""(name) => {
                    const socket = window[name].socket;
                    window.__heard = [];
                    socket.on("status", (m) => window.__heard.push(m));
                }""", name)
            raise_alarm(database, "circuit", down[1], "service_down", circuits={down[1]},
                        customers={a.customer_id})
            wait_for(lambda: len(rows_of(console, "tr.alarm")) == 3, LIVE_WITHIN_S)
            for page, name in ((console, "keylineAlarms"), (topology, "keylineTopology")):
                page.evaluate("""(name) => {
                    const apply = window[name].socket.listeners("status")[0];
                    window.__heard.forEach((m) => { apply(m); apply(m); });
                }""", name)
            assert set(rows_of(console, "tr.alarm").values()) == {1}
            assert len(rows_of(console, "tr.alarm")) == 3
            assert all(page.evaluate("window.__keylineNoReload === 'still here'")
                       for page in (console, topology, listing))
            assert not errors, errors
        finally:
            noc.close()
            theirs.close()


def test_room_rules_for_every_role() -> None:
    from portal.live import room_allowed
    from store.queries import Viewer

    everyone = [1, 2, 3]
    noc = Viewer("noc.wang", "noc")
    manager = Viewer("am.zhao", "account_manager")
    customer = Viewer("it.hsbank", "customer", customer_id=1, customer_key="hsbank")
    assert room_allowed(noc, "noc", everyone) and room_allowed(noc, "customer:2", everyone)
    # an account manager: the rooms of the customers it manages, never the whole NOC's
    assert not room_allowed(manager, "noc", everyone, managed_ids=[3])
    assert room_allowed(manager, "customer:3", everyone, managed_ids=[3])
    assert not room_allowed(manager, "customer:1", everyone, managed_ids=[3])
    assert room_allowed(customer, "customer:1", everyone)
    assert not room_allowed(customer, "customer:2", everyone)
    assert not room_allowed(customer, "noc", everyone)
