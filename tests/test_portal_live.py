"""The live portal: Socket.IO rooms fed by the store's events (portal/live.py) and the NOC's
live topology page (portal/noc.py, portal/static/topology.js).

Two kinds of test:

- socket level, with python-socketio's client and a customer's session cookie, on the
  example inventory (tests/test_portal_access.py's fixtures); observations, alarms and
  circuits' service states are recorded straight into the store, as a collector and the
  alarm pipeline would: a customer may join only its own room, and never receives anything
  of another customer's, live or replayed; a circuit's status in the messages is its stored
  service state, never one worked out from the topology;
- end to end in Debian's chromium (tests/test_portal_browser.py's fixtures): the simulated
  network, a collection service with traps and the portal share one database; a port taken
  down in the simulated network turns its link red on the page within two seconds, without a
  reload, and a page whose socket was dropped catches up on what changed meanwhile.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from werkzeug.serving import make_server

from collectors.model import Observation
from config.inventory.model import Inventory
from config.settings import load_settings
from lab.sim.network import SimulatedNetwork
from portal.app import create_app
from portal.live import LiveBridge, start_live
from store.circuit_states import StoredState, record_states
from store.database import Database
from store.events import last_event_id, publish
from store.observations import record_observations
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
    """A python-socketio client that records every "status" message."""

    def __init__(self, url: str, cookie: str | None) -> None:
        import socketio

        self.messages: list[dict[str, Any]] = []
        self.client = socketio.Client(reconnection=False)
        self.client.on("status", self.messages.append)
        headers = {"Cookie": cookie} if cookie else {}
        self.client.connect(url, headers=headers, transports=["websocket"], wait_timeout=10)

    def join(self, room: str, after: int | None = None) -> dict[str, Any]:
        request: dict[str, Any] = {"room": room}
        if after is not None:
            request["after"] = after
        return self.client.call("join", request, timeout=10)

    def close(self) -> None:
        self.client.disconnect()


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
        with portal.database.pool.connection() as conn:
            publish(conn, "alarm.raised", {
                "id": 9001, "object_kind": "circuit", "object_id": b_circuit,
                "type": "circuit_down", "severity": "critical", "state": "active",
                "summary": f"{CUSTOMER_B} circuit down", "impacted_circuits": [b_circuit],
                "impacted_customers": [portal.b.customer_id]})
            publish(conn, "alarm.raised", {
                "id": 9002, "object_kind": "device", "object_id": shared_device,
                "type": "device_unreachable", "severity": "critical", "state": "active",
                "summary": "core router unreachable",
                "impacted_circuits": [a_circuit, b_circuit],
                "impacted_customers": [portal.a.customer_id, portal.b.customer_id]})
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
        assert [a["id"] for a in alarms] == [9002]  # the shared one, cut down to A's circuit
        assert alarms[0]["circuits"] == [f"circuit:{a_circuit}"]
        assert {a["id"] for m in noc.messages for a in m["alarms"]} == {9001, 9002}
        assert shared_alarm_event < a_event
        assert not mentions(customer.messages, portal.b), mentions(customer.messages,
                                                                   portal.b)

        # A drops and rejoins from where it was: the catch-up is A's only, and current
        customer.close()
        observe(portal, b_port, "up", "down")
        observe(portal, a_port, "up", "down")
        back_event = set_circuit_states(portal.database, dict.fromkeys(
            portal.a.ids["circuit"] | portal.b.ids["circuit"], "up"))
        wait_for(lambda: live.bridge.last_id >= back_event, LIVE_WITHIN_S)
        again = Listener(live.url, session_cookie(live.url, USER_A))
        try:
            assert again.join(f"customer:{portal.a.customer_id}", after=start_id)["ok"]
            wait_for(lambda: again.messages, LIVE_WITHIN_S)
            catch_up = again.messages[0]
            assert catch_up["topic"] == "catch-up" and catch_up["id"] >= back_event
            assert not catch_up["resync"]
            assert {c["id"] for c in catch_up["circuits"]} == {
                f"circuit:{c}" for c in portal.a.ids["circuit"]}
            assert {c["status"] for c in catch_up["circuits"]} == {"up"}
            assert {x["status"] for x in catch_up["links"]} == {"up"}
            assert [a["id"] for a in catch_up["alarms"]] == [9002]
            assert not mentions(again.messages, portal.b), mentions(again.messages, portal.b)
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
        assert not mentions(customer.messages, portal.b), mentions(customer.messages,
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
            wait_for(lambda: rejoined.messages, LIVE_WITHIN_S)
            (catch_up,) = rejoined.messages
            assert catch_up["topic"] == "catch-up" and not catch_up["resync"]
            assert [(c["id"], c["status"], c["underlying"]) for c in catch_up["circuits"]] == [
                (f"circuit:{a_circuit}", "up", None)]
            assert not mentions(rejoined.messages, portal.b)
        finally:
            rejoined.close()
    finally:
        for listener in (customer, noc):
            if listener.client.connected:
                listener.close()


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
