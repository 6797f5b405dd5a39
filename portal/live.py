"""Live push: Socket.IO rooms per audience, fed by the store's events.

The portal's live pages (the NOC topology, later a customer's circuits) keep a Socket.IO
connection open; this module is its server side. Flask-SocketIO runs on the app
(`init_live` in create_app): in gevent mode in the portal server process that `keyline serve`
runs (portal/server.py, gevent-websocket for the WebSocket transport), in threading mode under
Werkzeug's server (the tests, `keyline --debug serve`; simple-websocket). The bridge's
threads and locks are the standard library's, which gevent's patching turns into greenlets.

**Who may listen.** A socket is authenticated at connect time from the same session
cookie as the pages (portal.security.load_viewer; never an API token): no session, no
socket. It is disconnected when that session ends (portal/socket_sessions.py, a companion
of the bridge: it follows "session.ended" and sweeps on the bridge's consumer). There are
two kinds of rooms:

- ``"noc"``: every status change of every device, link and circuit, and every alarm; for
  staff (store.queries.STAFF_ROLES);
- ``"customer:<id>"``: the changes of that customer's circuits and of the devices and links
  its route view draws (its CE routers and the operator's PE/P routers and links its
  circuits run over: topology.views.customer_view), and the alarms that hit its circuits,
  cut down to its own circuits. A customer user may join only its own; staff may join any.

A client asks with ``emit("join", {"room": "noc", "after": 123})`` and gets an
acknowledgement: ``{"ok": true, "room": ..., "last_id": ...}`` (after its snapshot, below) or
``{"ok": false, "error": "no such room"}`` (and nothing else) for a room it may not join.

**The bridge.** One `LiveBridge` per app holds the network as it is now
(topology.current.Topology), every circuit's service state as the alarm pipeline stored it
(store.circuit_states.current_states at start, then its events), and follows the topics
"observation", "circuit.", "alarm.", "topology." and "inventory." with the store's one event
consumer (store.consumer.Consumer, "live"), without a stored position (`durable=False`): its
state is memory only, loaded whole from one view of the store by the consumer's `recover`,
which tells the consumer the events that load reflects (`Resume`); the consumer's one worker
thread hands it the events that follow, and ticks it (utilization, the companions' sweeps).
After a failure (the store away, a bug) the consumer recovers it: the bridge loads the store
again and sends every room its differences with ``"resync": true``, since events handled
meanwhile may have reached no one. For each event it works out what changed for whom:

- an observation batch updates the latest states and calls `refresh_status`; the devices and
  links whose status changed, the circuits over them (the impact index, before and after a
  reroute) and the devices next to a changed link (an up device with a down link is shown
  "degraded", as topology.views does) are the candidates; each room's statuses are compared
  with what that room was last sent and only the differences go out;
- a "circuit.state" event (the states the alarm pipeline took in one step) updates those
  circuits' states: a circuit's status in a message is always its stored service state
  (docs/service-state.md), never worked out here, so the live pages agree with the alarm
  console and the customer's pages. It goes to "noc" and to the room of the customer whose
  circuit it is, and to no other;
- an alarm event goes whole to "noc", with the alarmed object's name ("label",
  store.alarms.object_labels) and the topology element it shows on ("element"); to each
  customer it impacts goes that customer's cut, exactly the body REST answers that
  customer (portal.alarm_access.alarm_view: its own circuits only, root_cause_id only when
  it may see the root, no internal text, no summary of another customer's object), drawn
  on its view: the alarmed object's element and name only when it is in that view (the
  name never when the object is another customer's): `scoped_alarm`. A room that was shown
  an alarm which stops hitting its customer gets ``{"id", "state": "withdrawn"}`` for it
  (and nothing more). The live alarm console (portal/static/alarms.js) renders its rows
  from these, the summary in the viewer's language from the alarm's "text" (its words as
  data, alarms/texts.py; a customer's only where its summary shows);
- a topology or inventory event reloads the topology; every room gets ``"resync": true``
  (fetch the view again: elements may have come or gone) plus its status differences.

Every message is a ``"status"`` event: ``{"id": <event id>, "topic", "time", "room",
"devices": [{"id": "device:12", "status"}], "links": [{"id": "link:40", "status",
"utilization_pct"}], "circuits": [{"id": "circuit:7", "status", "underlying", "cause",
"cause_text", "since"}], "alarms": [...], "resync": bool}``; element ids are the Cytoscape
ids of topology.views; "room" the room it was sent to (one socket may be in several); a
circuit's "underlying" is what lies beneath its "maintenance" (else None), "cause" its stored
cause in words, "cause_text" the same as data for the viewer's language (alarms/texts.py,
alarm_access.cause_words; None: show the English) and "since" (ISO 8601) when the state
began. Utilization is not an event (samples are
written in bulk, without notifications): the bridge reads the ports' latest utilization
every `utilization_interval_s` (on the consumer's tick) and sends the links whose figure
moved by at least `UTILIZATION_STEP_PCT`, with the id of the last event it processed.

**Joining: a snapshot, then what follows.** On every join (the first and every rejoin:
socket.io-client rejoins on each reconnect) the bridge sends that socket, under its lock,
one message with ``"snapshot": true`` (topic "snapshot"): the *current* state of everything
the room may see, which the page puts in place of its own: every device and link status in
the room's scope (links with their utilization), every circuit's stored service state
(store.circuit_states.current_states), and the room's active alarms read from the store
with the room's audience's scoping (store.alarms.alarms_for: the room's customer, or every
alarm for "noc"), cut and labelled exactly as the live alarm messages are (`alarm_for`,
`scoped_alarm`), oldest first; "alarms_complete" is false when more than
the `live.snapshot_max_alarms` setting are active (the newest are sent). So the catch-up of
a join is bounded and never replays events: one message, whatever "after" says; and a
connection may join each room at most `live.joins_per_window` times in `live.join_window_s`
(`JoinBudget`; config.settings.LiveSettings): a join beyond that gets
``{"ok": false, "error": "too many joins", "reload": true, "retry_after_s": ...}`` and no
snapshot (the page says so and asks to be reloaded). A snapshot's "id" is the highest
event id the snapshot reflects. The socket then enters the room, still under the lock, so
every message it gets after the snapshot is about an event the snapshot does not reflect: no gap, no
duplicate, and the page needs no filtering by id. To make that true, the store is read in
one REPEATABLE READ transaction, and the events committed in it that the bridge has not
processed yet (the consumer's are waiting for the lock; a lower id may commit after a
higher one, store/events.py) are processed first (their messages go to the rooms, which the
joining socket has not entered) and remembered, so that the consumer's later delivery of
them is skipped. A circuit state of the store that differs from the bridge's is taken, and
sent to the rooms as a change. The "after" a client sends (the last event id it saw) only
decides the snapshot's "resync": true when the topology or inventory changed after it (the
page fetches its view again: elements may have come or gone). The snapshot of a room is
reused for the next join while nothing has happened in between.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Flask, g, request
from flask_socketio import SocketIO, join_room

from config.settings import LiveSettings
from portal import alarm_access
from portal.security import OPERATOR_ROLES, load_viewer, utc_now
from portal.socket_sessions import SocketSessions, socket_disconnector
from store.alarms import alarm_from_payload, alarm_payload, alarms_for, object_labels
from store.circuit_states import current_states
from store.consumer import Consumer, Resume
from store.database import Database
from store.events import REORDER_WINDOW_IDS, Event, last_event_id
from store.queries import Viewer, customers_for
from topology.current import Topology, load_topology, refresh_status
from topology.graph import DEGRADED, DOWN, UNKNOWN, UP, LinkKey, edge_data
from topology.views import customer_view

log = logging.getLogger(__name__)

NOC_ROOM = "noc"
CUSTOMER_ROOM = "customer:{}"
TOPICS = ("observation", "circuit.", "alarm.", "topology.", "inventory.")
RELOAD_TOPICS = ("topology.", "inventory.")
# The topics above as SQL (LIKE patterns), for reading events from the table.
_TOPICS_SQL = """(topic = 'observation' OR topic LIKE 'circuit.%%' OR topic LIKE 'alarm.%%'
                  OR topic LIKE 'topology.%%' OR topic LIKE 'inventory.%%')"""
# The state of an alarm in a customer's room message when it stopped hitting that customer:
# the page drops it (REST answers 404 for it from then on).
WITHDRAWN = "withdrawn"
UTILIZATION_STEP_PCT = 1.0
UTILIZATION_MAX_AGE_S = 600
UTILIZATION_METRICS = ("if_in_utilization_pct", "if_out_utilization_pct")
TICK_INTERVAL_S = 1.0  # the consumer's tick: utilization and the companions' sweeps are due

# Element id (Cytoscape's, as topology.views writes it) -> status; a circuit's is
# `circuit_value` of its service state.
Statuses = dict[str, str]
# Circuit id -> its stored service state, as the "circuit.state" events carry it
# (store.circuit_states.StoredState.payload: "state", "underlying", "cause", "time"...).
CircuitStates = dict[int, dict[str, Any]]


def circuit_value(state: dict[str, Any] | None) -> str:
    """A circuit's entry in `Statuses`: its service state, and what lies beneath a
    maintenance after a slash ("maintenance/down"), so that a change beneath is a change to
    send too. None (never judged): unknown."""
    if state is None:
        return UNKNOWN
    underlying = state.get("underlying")
    return f"{state['state']}/{underlying}" if underlying else str(state["state"])


def element_id(kind: str, object_id: Any) -> str:
    """topology.views' ids: "device:12", "link:40", "link:301-302" (a discovered link)."""
    if isinstance(object_id, tuple):
        object_id = "-".join(str(part) for part in object_id)
    return f"{kind}:{object_id}"


@dataclass
class Scope:
    """What one room draws: device ids, link keys, circuit ids (None: everything)."""

    devices: set[int] | None = None
    links: set[LinkKey] | None = None
    circuits: set[int] | None = None
    sent: Statuses = field(default_factory=dict)
    utilization: dict[str, float | None] = field(default_factory=dict)
    customer_id: int | None = None  # whose room this is (None: the NOC's)

    def has_device(self, device_id: int) -> bool:
        return self.devices is None or device_id in self.devices

    def has_link(self, key: LinkKey) -> bool:
        return self.links is None or key in self.links

    def has_circuit(self, circuit_id: int) -> bool:
        return self.circuits is None or circuit_id in self.circuits


@dataclass
class Candidates:
    """Elements whose status may have changed."""

    devices: set[int] = field(default_factory=set)
    links: set[LinkKey] = field(default_factory=set)
    circuits: set[int] = field(default_factory=set)


def latest_port_utilization(conn: Any) -> dict[int, tuple[float | None, float | None]]:
    """Port id -> (in %, out %) of its latest utilization samples within
    UTILIZATION_MAX_AGE_S: the `utilization` argument of topology.views."""
    rows = conn.execute(
        """SELECT DISTINCT ON (s.object_id, s.metric_id) s.object_id, m.name, s.value
             FROM samples s JOIN metrics m ON m.id = s.metric_id
            WHERE m.name = ANY(%(metrics)s)
              AND s.time > now() - make_interval(secs => %(age)s)
            ORDER BY s.object_id, s.metric_id, s.time DESC""",
        {"metrics": list(UTILIZATION_METRICS), "age": UTILIZATION_MAX_AGE_S},
    ).fetchall()
    found: dict[int, list[float | None]] = {}
    for port_id, metric, value in rows:
        entry = found.setdefault(port_id, [None, None])
        entry[UTILIZATION_METRICS.index(metric)] = value
    return {port_id: (entry[0], entry[1]) for port_id, entry in found.items()}


class LiveBridge:
    """The events-to-rooms bridge (see the module docstring). `emit(event, data, room)` sends
    one message; in the app it is Flask-SocketIO's emit."""

    def __init__(self, database: Database, emit: Callable[[str, Any, str], None], *,
                 utilization_interval_s: float = 10.0,
                 snapshot_max_alarms: int = LiveSettings().snapshot_max_alarms) -> None:
        self.database = database
        self.snapshot_max_alarms = snapshot_max_alarms
        self._emit = emit
        self.utilization_interval_s = utilization_interval_s
        self.lock = threading.RLock()
        self.topology: Topology | None = None
        self.utilization: dict[int, tuple[float | None, float | None]] = {}
        self.last_id = 0
        self.circuit_states: CircuitStates = {}
        self.noc = Scope()
        self.customers: dict[int, Scope] = {}
        self._latest: dict[tuple[int, str], str] = {}
        self.consumer: Consumer | None = None
        self._starting = threading.Lock()  # one start at a time; a second waits for it
        self._next_utilization = 0.0
        self.sent_messages = 0
        # The events reflected in the bridge's state: every id <= _floor, and those in
        # _processed (a lower id may commit after a higher one: store/events.py).
        self._floor = 0
        self._processed: set[int] = set()
        self.topology_id = 0  # the last topology or inventory event the topology reflects
        self.generation = 0  # bumped at every change of the bridge's state
        self._snapshots: dict[str, tuple[int, dict[str, Any]]] = {}  # room -> (generation, msg)
        self._shown: dict[int, set[int]] = {}  # customer id -> active alarm ids its room saw
        # Fed by the bridge's consumer: `topics` (prefixes) for `on_event(event)`, and
        # `tick(conn)` on its ticks (the sockets' sessions, portal/socket_sessions.py).
        self.companions: list[Any] = []

    # --- life cycle ------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        consumer = self.consumer
        return consumer is not None and consumer.started

    def start(self) -> None:
        """Load the network and its statuses, then follow the events from that moment: those
        the load does not reflect, a late commit of a lower id included. A second call waits
        for the first to finish."""
        with self._starting:
            if self.consumer is not None:
                return
            topics = [*TOPICS, *(t for companion in self.companions
                                 for t in companion.topics)]
            consumer = Consumer(self.database.pool, self.database.url, "live", topics,
                                handle=self._handle, recover=self._recover, tick=self._tick,
                                tick_interval_s=TICK_INTERVAL_S, durable=False)
            consumer.start()
            self.consumer = consumer

    def stop(self) -> None:
        if self.consumer is not None:
            self.consumer.stop()

    def _recover(self, conn: Any) -> Resume:
        """The consumer's recover: load everything from one view of the store, and say
        which events that view reflects. After a failure the rooms are sent what differs,
        with "resync" (what was handled meanwhile may have reached no one)."""
        with self.lock:
            _repeatable_read(conn)  # one view of the store: the events and the state
            last = last_event_id(conn)
            self._floor = max(0, last - REORDER_WINDOW_IDS)
            self._processed = {row[0] for row in conn.execute(
                "SELECT id FROM events WHERE id > %s", [self._floor])}
            self.topology_id = max(self.topology_id, conn.execute(
                "SELECT coalesce(max(id), 0) FROM events"
                " WHERE topic LIKE 'topology.%' OR topic LIKE 'inventory.%'").fetchone()[0])
            if self.topology is None:
                self._load(conn)
            else:
                self.generation += 1
                self.utilization = latest_port_utilization(conn)
                self._reload(conn, Event(last, datetime.now(UTC), "live.recovered", {}))
            self.last_id = max(self.last_id, last)
            return Resume(self._floor, frozenset(self._processed))

    def _handle(self, conn: Any, events: list[Event]) -> None:
        """The consumer's batch: each event to the bridge and to the companions that follow
        its topic."""
        for event in events:
            for companion in self.companions:
                if event.topic.startswith(tuple(companion.topics)):
                    companion.on_event(event)
            if event.topic.startswith(TOPICS):
                self.on_event(event, conn)

    def _tick(self, conn: Any) -> None:
        """The consumer's tick: utilization every `utilization_interval_s` (0: never), and
        the companions' own."""
        if (self.utilization_interval_s > 0
                and time.monotonic() >= self._next_utilization):
            self._next_utilization = time.monotonic() + self.utilization_interval_s
            self.refresh_utilization(conn)
        for companion in self.companions:
            companion.tick(conn)

    def _load(self, conn: Any) -> None:
        self.topology = load_topology(conn)
        self._latest = dict(self.topology.latest)
        self.circuit_states = stored_states(conn)
        self.utilization = latest_port_utilization(conn)
        self.customers = {}
        for customer_id in self.topology.snapshot.customers:
            self._rescope(customer_id)
        self.noc.sent = self.statuses(self.noc, self._everything())
        self.noc.utilization = self._link_utilization(self.noc)

    def _rescope(self, customer_id: int) -> Scope:
        """The elements of the customer's route view (topology.views.customer_view)."""
        topology = self.topology
        assert topology is not None
        view = customer_view(topology.graph, topology.snapshot, topology.paths, customer_id)
        devices = {n["data"]["object_id"] for n in view["elements"]["nodes"]
                   if n["data"]["kind"] == "device"}
        links = {_link_key(e["data"]["id"]) for e in view["elements"]["edges"]}
        circuits = {c["object_id"] for c in view["circuits"]}
        old = self.customers.get(customer_id)
        scope = Scope(devices, links, circuits, sent=old.sent if old else {},
                      utilization=old.utilization if old else {}, customer_id=customer_id)
        if old is None:
            scope.sent = self.statuses(scope, self._everything())
            scope.utilization = self._link_utilization(scope)
        self.customers[customer_id] = scope
        return scope

    def _everything(self) -> Candidates:
        topology = self.topology
        assert topology is not None
        return Candidates(set(topology.graph.nodes),
                          {k for _, _, k in topology.graph.edges(keys=True)},
                          set(topology.snapshot.circuits))

    # --- statuses --------------------------------------------------------------------------

    def device_status(self, scope: Scope, device_id: int) -> str:
        """As topology.views shows it: an up device with a down or degraded link in the
        view is degraded."""
        graph = self.topology.graph  # type: ignore[union-attr]
        status = graph.nodes[device_id]["status"]
        if status == UP:
            for _, _, key, data in graph.edges(device_id, keys=True, data=True):
                if scope.has_link(key) and data["status"] in (DOWN, DEGRADED):
                    return DEGRADED
        return status

    def statuses(self, scope: Scope, candidates: Candidates) -> Statuses:
        """The current status of the candidates in `scope`."""
        topology = self.topology
        assert topology is not None
        graph = topology.graph
        found: Statuses = {}
        for device_id in candidates.devices:
            if device_id in graph and scope.has_device(device_id):
                found[element_id("device", device_id)] = self.device_status(scope, device_id)
        for key in candidates.links:
            data = edge_data(graph, key)
            if data is not None and scope.has_link(key):
                found[element_id("link", key)] = data["status"]
        for circuit_id in candidates.circuits:
            if circuit_id in topology.snapshot.circuits and scope.has_circuit(circuit_id):
                found[element_id("circuit", circuit_id)] = circuit_value(
                    self.circuit_states.get(circuit_id))
        return found

    def _link_utilization(self, scope: Scope) -> dict[str, float | None]:
        graph = self.topology.graph  # type: ignore[union-attr]
        found: dict[str, float | None] = {}
        for _, _, key, data in graph.edges(keys=True, data=True):
            if scope.has_link(key):
                values = [v for port in (data["a_port_id"], data["z_port_id"])
                          for v in self.utilization.get(port, (None, None)) if v is not None]
                found[element_id("link", key)] = round(max(values), 2) if values else None
        return found

    # --- events ----------------------------------------------------------------------------

    def on_event(self, event: Event, conn: Any = None) -> None:
        """One event in, scoped messages out (nothing for an event already processed: at a
        join, or reflected in the load); reading the store on `conn` if given (the
        consumer's), else on a connection of the pool."""
        with self.lock:
            if self.topology is None or self._seen(event.id):
                return
            self._mark(event.id)
            self.generation += 1
            if event.topic == "observation":
                self._on_observations(event)
            elif event.topic.startswith("circuit."):
                self._on_circuit_states(event)
            elif event.topic.startswith("alarm."):
                self._on_alarm(event, conn)
            else:
                with self._connection(conn) as db:
                    self._reload(db, event)
            self.last_id = max(self.last_id, event.id)

    def _seen(self, event_id: int) -> bool:
        return event_id <= self._floor or event_id in self._processed

    def _mark(self, event_id: int) -> None:
        self._processed.add(event_id)
        if len(self._processed) > 4 * REORDER_WINDOW_IDS:
            self._floor = max(self._floor, max(self._processed) - 2 * REORDER_WINDOW_IDS)
            self._processed = {seen for seen in self._processed if seen > self._floor}

    def _on_observations(self, event: Event) -> None:
        topology = self.topology
        assert topology is not None
        for item in event.payload.get("observations", ()):
            if item.get("kind") == "agent_restart":
                continue
            self._latest[(int(item["object_id"]), str(item["kind"]))] = str(item["new"])
        new, changes = refresh_status(topology, self._latest)
        if not changes:
            return
        self.topology = new
        candidates = Candidates()
        for element in changes:
            if element.kind == "device":
                candidates.devices.add(element.id)  # type: ignore[arg-type]
            elif element.kind == "link":
                candidates.links.add(element.id)
        self._widen(candidates, (topology, new))
        for circuit_id in new.rerouted:
            customer_id = new.snapshot.circuits[circuit_id].customer_id
            self._rescope(customer_id)
        self._send_changes(event, candidates, resync_customers={
            new.snapshot.circuits[c].customer_id for c in new.rerouted})

    def _on_circuit_states(self, event: Event) -> None:
        """The service states the alarm pipeline took: to "noc" and to each circuit's own
        customer's room (statuses() keeps every room to its scope)."""
        candidates = Candidates()
        for item in event.payload.get("states", ()):
            circuit_id = int(item["circuit_id"])
            self.circuit_states[circuit_id] = dict(item)
            candidates.circuits.add(circuit_id)
        if candidates.circuits:
            self._send_changes(event, candidates)

    def _widen(self, candidates: Candidates, topologies: Iterable[Topology]) -> None:
        """Add the circuits over the candidates (in any of `topologies`' paths), the
        rerouted circuits, and the devices at either end of a candidate link."""
        for topology in topologies:
            graph = topology.graph
            for key in list(candidates.links):
                data = edge_data(graph, key)
                if data is not None:
                    candidates.devices.update((data["a_device_id"], data["z_device_id"]))
            for device_id in candidates.devices:
                candidates.circuits.update(topology.index.users.get(("device", device_id), ()))
            for key in candidates.links:
                candidates.circuits.update(topology.index.users.get(("link", key), ()))
            candidates.circuits.update(topology.rerouted)

    def _scopes_touching(self, candidates: Candidates) -> list[tuple[str, Scope]]:
        rooms: list[tuple[str, Scope]] = [(NOC_ROOM, self.noc)]
        for customer_id, scope in self.customers.items():
            assert scope.devices is not None and scope.links is not None
            assert scope.circuits is not None
            if (candidates.devices & scope.devices or candidates.links & scope.links
                    or candidates.circuits & scope.circuits):
                rooms.append((CUSTOMER_ROOM.format(customer_id), scope))
        return rooms

    def _send_changes(self, event: Event, candidates: Candidates, *,
                      resync_customers: set[int] | frozenset[int] = frozenset(),
                      resync_all: bool = False) -> None:
        rooms = (self._all_rooms() if resync_all else self._scopes_touching(candidates))
        for customer_id in resync_customers:
            room = CUSTOMER_ROOM.format(customer_id)
            if customer_id in self.customers and all(r != room for r, _ in rooms):
                rooms.append((room, self.customers[customer_id]))
        for room, scope in rooms:
            now = self.statuses(scope, candidates)
            changed = {k: v for k, v in now.items() if scope.sent.get(k) != v}
            scope.sent.update(now)
            resync = resync_all or (room != NOC_ROOM and int(room.split(":")[1])
                                    in resync_customers)
            if changed or resync:
                self.emit(room, self.message(event.id, event.topic, changed, resync=resync))

    def _all_rooms(self) -> list[tuple[str, Scope]]:
        return [(NOC_ROOM, self.noc)] + [(CUSTOMER_ROOM.format(c), s)
                                         for c, s in self.customers.items()]

    def _connection(self, conn: Any) -> Any:
        return nullcontext(conn) if conn is not None else self.database.pool.connection()

    def _reload(self, conn: Any, event: Event) -> None:
        """Load the topology and the circuit states again (a topology or inventory event, a
        recovery); every room gets "resync" and its differences."""
        topology = load_topology(conn)
        self.circuit_states = stored_states(conn)
        self.topology = topology
        self.topology_id = max(self.topology_id, event.id)
        self._latest = dict(topology.latest)
        for customer_id in list(self.customers):
            if customer_id not in topology.snapshot.customers:
                del self.customers[customer_id]
        for customer_id in topology.snapshot.customers:
            self._rescope(customer_id)
        self._send_changes(event, self._everything(), resync_all=True)

    def _on_alarm(self, event: Event, conn: Any = None) -> None:
        alarm = dict(event.payload)
        labels, context = self._labels([alarm], conn)
        self.emit(NOC_ROOM, self.message(event.id, event.topic, {},
                                         alarms=[self.alarm_for(self.noc, alarm, labels)]))
        alarm_id = alarm.get("id")
        impacted = {int(c) for c in alarm.get("impacted_customers") or ()}
        for customer_id in sorted(impacted | {c for c, ids in self._shown.items()
                                              if alarm_id in ids}):
            scope = self.customers.get(customer_id)
            if scope is None:
                continue
            scoped = (self.alarm_for(scope, alarm, labels, context)
                      if customer_id in impacted else None)
            if scoped is None:  # it was shown, and no longer hits this customer
                scoped = {"id": alarm_id, "state": WITHDRAWN, "circuits": [], "customers": []}
            self._note_shown(customer_id, [scoped])
            self.emit(CUSTOMER_ROOM.format(customer_id),
                      self.message(event.id, event.topic, {}, alarms=[scoped]))

    def _note_shown(self, customer_id: int, alarms: Iterable[dict[str, Any]]) -> None:
        """Remember which alarms a customer's room was shown active, so that one that stops
        hitting the customer is withdrawn from its pages (as REST then answers 404)."""
        shown = self._shown.setdefault(customer_id, set())
        for alarm in alarms:
            if alarm.get("state") == "active":
                shown.add(alarm["id"])
            else:
                shown.discard(alarm.get("id"))

    def _labels(self, alarms: list[dict[str, Any]], conn: Any = None
                ) -> tuple[dict[int, tuple[str, int | None]], alarm_access.AlarmContext]:
        """The names of the alarmed objects (store.alarms.object_labels), and what a
        customer's cut needs (portal.alarm_access.alarm_context)."""
        ids = [a["object_id"] for a in alarms if isinstance(a.get("object_id"), int)]
        if not ids:
            return {}, alarm_access.AlarmContext()
        with self._connection(conn) as db:
            return (object_labels(db, ids),
                    alarm_access.alarm_context(db, [alarm_from_payload(a) for a in alarms]))

    def alarm_for(self, scope: Scope, alarm: dict[str, Any],
                  labels: dict[int, tuple[str, int | None]],
                  context: alarm_access.AlarmContext | None = None) -> dict[str, Any] | None:
        """An alarm as the room of `scope` may see it: the NOC's whole, with the alarmed
        object's name and its topology element; a customer's cut exactly as REST cuts it
        for that customer (portal.alarm_access.alarm_view, with `context`), then drawn on
        its view (`scoped_alarm`); None when REST would answer 404."""
        if scope.circuits is None:
            label = labels.get(alarm.get("object_id"))  # type: ignore[arg-type]
            return {**alarm, "label": label[0] if label else None,
                    "element": alarm_element(self.topology, scope, alarm)}
        assert scope.customer_id is not None
        audience = alarm_access.Audience(False, frozenset({scope.customer_id}),
                                         frozenset(scope.circuits))
        view = alarm_access.alarm_view(alarm_from_payload(alarm), audience,
                                       context or alarm_access.AlarmContext())
        if view is None:
            return None
        return scoped_alarm(view, scope, labels=labels, topology=self.topology)

    # --- messages ----------------------------------------------------------------------------

    def message(self, event_id: int, topic: str, statuses: Statuses, *,
                alarms: list[dict[str, Any]] | None = None, resync: bool = False,
                utilization: dict[str, float | None] | None = None,
                circuit_states: CircuitStates | None = None) -> dict[str, Any]:
        """One "status" message; circuits' causes from `circuit_states` (default: the
        bridge's)."""
        details = self.circuit_states if circuit_states is None else circuit_states
        devices, links, circuits = [], [], []
        for key, status in sorted(statuses.items()):
            kind, _, ident = key.partition(":")
            entry: dict[str, Any] = {"id": key, "status": status}
            if kind == "circuit":
                state, _, underlying = status.partition("/")
                stored = details.get(int(ident)) or {}
                entry = {"id": key, "status": state, "underlying": underlying or None,
                         "cause": stored.get("cause"), "since": stored.get("time"),
                         "cause_text": alarm_access.cause_words(stored.get("cause"),
                                                                stored.get("cause_text"))}
            {"device": devices, "link": links, "circuit": circuits}[kind].append(entry)
        for key, value in sorted((utilization or {}).items()):
            found = next((entry for entry in links if entry["id"] == key), None)
            if found is None:
                found = {"id": key}
                links.append(found)
            found["utilization_pct"] = value
        return {"id": event_id, "topic": topic, "time": time.time(), "devices": devices,
                "links": links, "circuits": circuits, "alarms": alarms or [],
                "resync": resync}

    def emit(self, room: str, message: dict[str, Any]) -> None:
        self.sent_messages += 1
        message["room"] = room
        self._emit("status", message, room)

    # --- utilization -----------------------------------------------------------------------

    def refresh_utilization(self, conn: Any = None) -> None:
        """Read the latest utilization and send each room the links that moved."""
        with self._connection(conn) as db:
            utilization = latest_port_utilization(db)
        with self.lock:
            if self.topology is None:
                return
            if utilization != self.utilization:
                self.generation += 1
            self.utilization = utilization
            for room, scope in self._all_rooms():
                now = self._link_utilization(scope)
                moved = {k: v for k, v in now.items() if _moved(scope.utilization.get(k), v)}
                scope.utilization.update(moved)
                if moved:
                    self.emit(room, self.message(self.last_id, "utilization", {},
                                                 utilization=moved))

    # --- joining and catching up -------------------------------------------------------------

    def scope_for(self, room: str) -> Scope | None:
        if room == NOC_ROOM:
            return self.noc
        if room.startswith("customer:") and room[9:].isdigit():
            return self.customers.get(int(room[9:]))
        return None

    def join(self, room: str, after: int | None, send: Callable[[dict[str, Any]], None],
             enter: Callable[[], bool]) -> dict[str, Any]:
        """Send this socket the room's snapshot, then enter the room (`enter` returns False
        when the socket is gone meanwhile), with no live message in between."""
        with self.lock:
            if self.scope_for(room) is None:
                return {"ok": False, "error": "no such room"}
            message = self.snapshot(room, after)
            if message is None:  # the room went with a reload meanwhile
                return {"ok": False, "error": "no such room"}
            if not enter():
                return {"ok": False, "error": "not connected"}
            send(message)
            return {"ok": True, "room": room, "last_id": message["id"]}

    def snapshot(self, room: str, after: int | None = None) -> dict[str, Any] | None:
        """The room's snapshot message (see the module docstring); None if no such room.
        Call it under the lock, and let the socket enter the room before releasing it."""
        with self.lock:
            for _attempt in range(3):
                scope = self.scope_for(room)
                if scope is None:
                    return None
                read = self._read_store(room, scope)
                for event in read.pending:  # in id order; the consumer's copy is skipped
                    self.on_event(event)
                self.last_id = max(self.last_id, read.event_id)
                if not any(e.topic.startswith(RELOAD_TOPICS) for e in read.pending):
                    break  # else the room's scope may have changed: read it again
            scope = self.scope_for(room)
            if scope is None:
                return None
            if read.states is not None:
                self._take_states(read.states, read.circuit_ids, read.event_id)
            cached = self._snapshots.get(room)
            if read.alarms is None and cached is not None and cached[0] == self.generation:
                message = dict(cached[1])
            else:
                message = self._snapshot_message(room, scope, read)
                self._snapshots[room] = (self.generation, message)
                message = dict(message)
            message.update(id=max(message["id"], read.event_id), time=time.time(),
                           resync=after is not None and after < self.topology_id)
            return message

    def _read_store(self, room: str, scope: Scope) -> StoreRead:
        """One view of the store (REPEATABLE READ): the highest event id, the events of
        TOPICS committed that the bridge has not processed, and, unless the room's last
        snapshot still holds (nothing pending, nothing changed since), the circuits' stored
        states in the room's scope and its active alarms with their objects' names."""
        low = max(self._floor, self.last_id - REORDER_WINDOW_IDS)
        with self.database.pool.connection() as conn, conn.transaction():
            _repeatable_read(conn)
            event_id = last_event_id(conn)
            ids = [row[0] for row in conn.execute(
                f"SELECT id FROM events WHERE id > %s AND {_TOPICS_SQL} ORDER BY id",
                [low]).fetchall() if not self._seen(row[0])]
            pending = [Event(*row) for row in conn.execute(
                "SELECT id, time, topic, payload FROM events WHERE id = ANY(%s) ORDER BY id",
                [ids]).fetchall()] if ids else []
            cached = self._snapshots.get(room)
            if not pending and cached is not None and cached[0] == self.generation:
                return StoreRead(event_id)
            circuit_ids = None if scope.circuits is None else sorted(scope.circuits)
            states = ({c: s.payload() for c, s in current_states(conn, circuit_ids).items()}
                      if circuit_ids is None or circuit_ids else {})
            audience = (Viewer("live:noc", "noc") if scope.customer_id is None else
                        Viewer(f"live:{room}", "customer", customer_id=scope.customer_id))
            stored = alarms_for(conn, audience, state="active",
                                limit=self.snapshot_max_alarms + 1)
            alarms = [alarm_payload(a) for a in stored]
            objects = [a["object_id"] for a in alarms if isinstance(a.get("object_id"), int)]
            labels = object_labels(conn, objects) if objects else {}
            context = alarm_access.alarm_context(conn, stored)
        return StoreRead(event_id, pending, states, circuit_ids, alarms, labels, context)

    def _take_states(self, states: CircuitStates, circuit_ids: list[int] | None,
                     event_id: int) -> None:
        """The store's circuit states (of `circuit_ids`, None: all) replace the bridge's;
        those whose status differs are sent to the rooms as a change."""
        changed: set[int] = set()
        for circuit_id in (set(self.circuit_states) | set(states) if circuit_ids is None
                           else circuit_ids):
            old, new = self.circuit_states.get(circuit_id), states.get(circuit_id)
            if old == new:
                continue
            if circuit_value(old) != circuit_value(new):
                changed.add(circuit_id)
            if new is None:
                self.circuit_states.pop(circuit_id, None)
            else:
                self.circuit_states[circuit_id] = new
        if changed:
            log.info("live: %d circuit states differed from the store's; sent again",
                     len(changed))
            self.generation += 1
            self._send_changes(Event(event_id, datetime.now(UTC), "circuit.state", {}),
                               Candidates(circuits=changed))

    def _snapshot_message(self, room: str, scope: Scope, read: StoreRead) -> dict[str, Any]:
        statuses = self.statuses(scope, self._everything())
        stale = {k: v for k, v in statuses.items() if scope.sent.get(k) != v}
        if stale:  # the room was sent something else: tell its sockets too
            scope.sent.update(stale)
            self.generation += 1
            self.emit(room, self.message(read.event_id, "status", stale))
        alarms = sorted(read.alarms or (), key=lambda a: a["id"])
        complete = len(alarms) <= self.snapshot_max_alarms
        scoped = [self.alarm_for(scope, alarm, read.labels or {}, read.context)
                  for alarm in alarms[-self.snapshot_max_alarms:]]
        message = self.message(read.event_id, "snapshot", statuses,
                               alarms=[a for a in scoped if a is not None],
                               utilization=self._link_utilization(scope))
        message.update(room=room, snapshot=True, alarms_complete=complete,
                       topology_id=self.topology_id)
        if scope.customer_id is not None:
            self._note_shown(scope.customer_id, message["alarms"])
        return message


@dataclass
class StoreRead:
    """What a join read from the store in one transaction (LiveBridge._read_store); states
    and alarms None when the room's last snapshot still holds."""

    event_id: int
    pending: list[Event] = field(default_factory=list)
    states: CircuitStates | None = None
    circuit_ids: list[int] | None = None
    alarms: list[dict[str, Any]] | None = None
    labels: dict[int, tuple[str, int | None]] | None = None
    context: alarm_access.AlarmContext | None = None


def _repeatable_read(conn: Any) -> None:
    """Make the transaction just begun see one snapshot of the store throughout, and read
    times in UTC, as the events' payloads carry them (so that a snapshot's alarm is the same
    as the live message's)."""
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    conn.execute("SET LOCAL TimeZone TO 'UTC'")


def stored_states(conn: Any) -> CircuitStates:
    """Every circuit's current service state in the store, as the events carry them."""
    return {circuit_id: state.payload() for circuit_id, state in current_states(conn).items()}


def alarm_element(topology: Topology | None, scope: Scope,
                  alarm: dict[str, Any]) -> str | None:
    """Where the alarm shows on the topology, in `scope`: its device, link or circuit; a
    port's alarm on the port's link (else its device); None if not drawn there."""
    if topology is None:
        return None
    graph = topology.graph
    kind, object_id = alarm.get("object_kind"), alarm.get("object_id")
    if not isinstance(object_id, int):
        return None
    if kind == "device":
        return (element_id("device", object_id)
                if object_id in graph and scope.has_device(object_id) else None)
    if kind == "link":
        return (element_id("link", object_id) if edge_data(graph, object_id) is not None
                and scope.has_link(object_id) else None)
    if kind == "circuit":
        return (element_id("circuit", object_id) if object_id in topology.snapshot.circuits
                and scope.has_circuit(object_id) else None)
    if kind == "port":
        for key in graph.graph.get("port_links", {}).get(object_id, ()):
            if edge_data(graph, key) is not None and scope.has_link(key):
                return element_id("link", key)
        device = topology.index.port_device.get(object_id)
        if device is not None and device in graph and scope.has_device(device):
            return element_id("device", device)
    return None


def scoped_alarm(view: dict[str, Any], scope: Scope, *,
                 labels: dict[int, tuple[str, int | None]] | None = None,
                 topology: Topology | None = None) -> dict[str, Any]:
    """A customer's cut of an alarm (portal.alarm_access.alarm_view: exactly REST's body for
    that customer) drawn on the customer's view: every field of `view`, plus the alarmed
    object's element id ("object"), name ("label") and topology element ("element") when the
    object is in the customer's view and not hidden as another customer's, and its own
    impacted circuits as element ids ("circuits") and its own id ("customers")."""
    assert scope.circuits is not None
    kind, object_id = view.get("object_kind"), view.get("object_id")
    element = alarm_element(topology, scope, view) if object_id is not None else None
    visible = object_id is not None and (
        (kind == "circuit" and object_id in scope.circuits)
        or (kind == "device" and scope.has_device(object_id))
        or (kind == "link" and scope.has_link(object_id))
        or (kind == "port" and element is not None))
    label, owner = (labels or {}).get(object_id, (None, None))  # type: ignore[arg-type]
    if not visible or (owner is not None and owner != scope.customer_id):
        label = None
    circuits = sorted(set(view.get("impacted_circuits") or ()) & scope.circuits)
    return {
        **view,
        "object": element_id(str(kind), object_id) if visible else None,
        "label": label, "element": element if visible else None,
        "circuits": [element_id("circuit", c) for c in circuits],
        "customers": [scope.customer_id] if scope.customer_id is not None else [],
    }


def _link_key(cytoscape_id: str) -> LinkKey:
    text = cytoscape_id.split(":", 1)[1]
    if "-" in text:
        low, high = text.split("-", 1)
        return (int(low), int(high))
    return int(text)


def _moved(old: float | None, new: float | None) -> bool:
    if old is None or new is None:
        return old is not new
    return abs(old - new) >= UTILIZATION_STEP_PCT


# --- Flask-SocketIO ------------------------------------------------------------------------


class JoinBudget:
    """How many times each connection (socket id) joined each room in the last `window_s`:
    `allow` says whether one more join of that room may be served now, else after how many
    seconds. Counted per room because one page joins several rooms on one connection (an
    account manager's console joins one per managed customer, however many); what the
    budget stops is the same catch-up replayed again and again, and a viewer may only join
    the rooms it is allowed. Entries quiet for a window are dropped as others join, so the
    table stays small without a disconnect hook."""

    def __init__(self, joins: int = LiveSettings().joins_per_window,
                 window_s: float = LiveSettings().join_window_s) -> None:
        self.joins = joins
        self.window_s = window_s
        self._lock = threading.Lock()
        self._times: dict[tuple[str, str], list[float]] = {}
        self._pruned_at = 0.0

    def allow(self, sid: str, room: str, now: float | None = None) -> tuple[bool, float]:
        """(allowed, seconds until the next join of `room` would be allowed)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if now - self._pruned_at > self.window_s:
                self._pruned_at = now
                self._times = {k: v for k, v in self._times.items()
                               if v and now - v[-1] < self.window_s}
            key = (sid, room)
            times = [t for t in self._times.get(key, ()) if now - t < self.window_s]
            if len(times) >= self.joins:
                self._times[key] = times
                return False, round(self.window_s - (now - times[0]), 1)
            times.append(now)
            self._times[key] = times
            return True, 0.0


def room_allowed(viewer: Viewer, room: str, customer_ids: Iterable[int],
                 managed_ids: Iterable[int] = ()) -> bool:
    """May `viewer` join `room`? Operators (noc, engineer, admin): "noc" and any customer's
    room; an account manager: the rooms of the customers it manages (`managed_ids`); a
    customer user: only "customer:<its id>"."""
    if viewer.role in OPERATOR_ROLES:
        return room == NOC_ROOM or room in {CUSTOMER_ROOM.format(c) for c in customer_ids}
    if viewer.manager is not None:
        return room in {CUSTOMER_ROOM.format(c) for c in managed_ids}
    return viewer.customer_id is not None and room == CUSTOMER_ROOM.format(viewer.customer_id)


def init_live(app: Flask, database: Database, *, async_mode: str = "threading",
              websocket_only: bool = False, live: LiveSettings | None = None) -> SocketIO:
    """Put Flask-SocketIO on the app and create its (not yet started) bridge:
    app.extensions["keyline.live"]. `start_live(app)` starts following the events.
    `async_mode`: "threading" (Werkzeug's server) or "gevent" (portal/server.py);
    `websocket_only` refuses Engine.IO's long-polling transport (no sticky sessions needed
    behind a proxy: docs/deployment.md); `live` bounds the joins and their snapshots."""
    live = live or LiveSettings()
    socketio = SocketIO(app, async_mode=async_mode, manage_session=False,
                        logger=False, engineio_logger=False,
                        transports=["websocket"] if websocket_only else None)
    bridge = LiveBridge(database, lambda event, data, room: socketio.emit(event, data, to=room),
                        snapshot_max_alarms=live.snapshot_max_alarms)
    budget = JoinBudget(live.joins_per_window, live.join_window_s)
    app.extensions["keyline.live"] = bridge
    app.extensions["keyline.live_joins"] = budget
    app.extensions["keyline.socketio"] = socketio
    sockets = SocketSessions(database, socket_disconnector(socketio),
                             lambda: app.extensions["keyline.accounts"],
                             lambda: app.extensions.get("keyline.clock", utc_now)())
    bridge.companions.append(sockets)
    app.extensions["keyline.socket_sessions"] = sockets

    def socket_viewer() -> Viewer | None:
        load_viewer()  # the session cookie of the handshake; the user read again now
        return g.get("viewer")

    @socketio.on("connect")
    def on_connect(auth: Any = None) -> bool:
        # Refused without a session; the client sees a connect_error and nothing else.
        if socket_viewer() is None or g.get("session_id") is None:
            return False
        sockets.add(request.sid, request.namespace, g.session_id)  # type: ignore[attr-defined]
        return True

    @socketio.on("disconnect")
    def on_disconnect(*reason: Any) -> None:
        sockets.remove(request.sid)  # type: ignore[attr-defined]

    @socketio.on("join")
    def on_join(data: Any = None) -> dict[str, Any]:
        viewer = socket_viewer()
        if viewer is None:
            return {"ok": False, "error": "authentication required"}
        data = data if isinstance(data, dict) else {}
        room = str(data.get("room", ""))
        after = data.get("after")
        after = after if isinstance(after, int) and not isinstance(after, bool) else None
        if not bridge.started:
            bridge.start()
        managed: list[int] = []
        if viewer.manager is not None:
            with database.pool.connection() as conn:
                managed = [row.id for row in customers_for(conn, viewer)]
        if not room_allowed(viewer, room, bridge.customers, managed):
            return {"ok": False, "error": "no such room"}
        sid = request.sid  # type: ignore[attr-defined]
        allowed, retry_after_s = budget.allow(sid, room)
        if not allowed:
            return {"ok": False, "error": "too many joins", "reload": True,
                    "retry_after_s": retry_after_s}
        namespace = request.namespace  # type: ignore[attr-defined]
        manager = socketio.server.manager

        def enter() -> bool:
            # A socket that went away before its join is handled is no longer in the
            # manager's rooms: join_room raises (ValueError when no socket is left in the
            # namespace, KeyError when others are). It has nothing to join.
            if not manager.is_connected(sid, namespace):
                return False
            try:
                join_room(room, sid=sid, namespace=namespace)
            except (KeyError, ValueError):
                return False
            return True

        if not manager.is_connected(sid, namespace):
            return {"ok": False, "error": "not connected"}
        return bridge.join(room, after,
                           send=lambda message: socketio.emit("status", message, to=sid,
                                                              namespace=namespace),
                           enter=enter)

    return socketio


def start_live(app: Flask) -> LiveBridge:
    """Start the app's bridge (load the topology, follow the events); idempotent."""
    bridge: LiveBridge = app.extensions["keyline.live"]
    bridge.start()
    return bridge
