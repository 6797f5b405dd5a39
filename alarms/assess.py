"""The assess stage: every circuit's service state, its history, and its service alarm.

After correlate has grouped the device, port and link alarms under their root causes, this
stage answers, for every circuit, the question the SLA stands on: is it in service? It
gathers each circuit's facts from the live topology and the latest observed states
(`gather_facts`), asks the one rule (alarms.service_state), and keeps the answer steady the
way debounce keeps alarms steady (`CircuitStates`): a new state is taken only once it has
held for `raise_after_s` (leaving "up") or `clear_after_s` (back to "up"), and it is stamped
with the time its facts became true, not the time it was taken. Maintenance windows start
and end at their own times, with no delay. Each state taken is a `StateChange`: stored with
its time and cause, it is the history the SLA engine reads as intervals.

The service alarm follows the state, so the console and the state never disagree: a circuit
whose state is down (or maintenance with an underlying down) has one active service_down
alarm, raised when the down state began and cleared when it ended. Its root cause is the
active alarm that explains the verdict's elements (an end port's link-down, a dead device, a
cut link), or that alarm's own root; a root cause stays put while it still explains the
state, so a second fault behind the first (a LAN port flapping behind a dead CE uplink) does
not re-root, clear or re-raise the circuit's alarm. A circuit whose end port was shut by an
administrator has a service alarm with no root: nothing in the network failed, yet the
customer has no service. Unknown circuits get no service alarm; they are listed as the
impact of the alarm that made them unknown (a device whose SNMP does not answer), and
degraded circuits as the impact of the threshold or flapping alarm degrading them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from alarms.model import Alarm, AlarmChange, AlarmKey, AlarmType, MaintenanceWindow, ObjectKind
from alarms.service_state import (
    PORT_NOT_UP,
    CircuitFacts,
    Degradation,
    EndFacts,
    PathFacts,
    ServiceState,
    ServiceVerdict,
    service_state,
)
from alarms.stages import ScopeIndex, clear, covering, element_of, entry, reroot
from alarms.texts import TEXT, english, state_words, text
from topology.current import Topology
from topology.graph import DEVICE, DOWN, LINK, PORT, Element, edge_data
from topology.paths import CircuitPath

# (object id, kind) -> (time, state): the latest observed state of every object
States = Mapping[tuple[int, str], tuple[datetime, str]]

DEGRADING_TYPES = frozenset({AlarmType.THRESHOLD, AlarmType.FLAPPING})
# device alarms whose circuits are unknown rather than down
SILENT_TYPES = frozenset({AlarmType.SNMP_UNRESPONSIVE, AlarmType.POLL_FAILED})


@dataclass(frozen=True)
class StateChange:
    """A circuit's service state taken at `time` (see the module docstring)."""

    circuit_id: int
    customer_id: int | None
    time: datetime
    state: ServiceState
    previous: ServiceState | None
    verdict: ServiceVerdict


@dataclass
class Committed:
    verdict: ServiceVerdict
    time: datetime  # when this state began


@dataclass
class CircuitStates:
    """The service state taken for each circuit, and the candidates waiting to be taken."""

    committed: dict[int, Committed] = field(default_factory=dict)
    pending: dict[int, tuple[ServiceVerdict, datetime]] = field(default_factory=dict)

    def state_of(self, circuit_id: int) -> ServiceState | None:
        taken = self.committed.get(circuit_id)
        return taken.verdict.state if taken is not None else None


# --- facts -------------------------------------------------------------------------------


def _state(states: States, object_id: int, kind: str) -> tuple[datetime | None, str | None]:
    seen = states.get((object_id, kind))
    return (seen[0], seen[1]) if seen is not None else (None, None)


def _latest(*times: datetime | None) -> datetime | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


def _end(topology: Topology, states: States, side: str, port_id: int) -> EndFacts:
    snapshot = topology.snapshot
    port = snapshot.ports.get(port_id)
    device_id = port.device_id if port is not None else -1
    device = snapshot.devices.get(device_id)
    oper_at, oper = _state(states, port_id, "oper_status")
    admin_at, admin = _state(states, port_id, "admin_status")
    device_at, verdict = _state(states, device_id, "reachability")
    return EndFacts(side, port_id, port.name if port else f"#{port_id}", device_id,
                    device.key if device else f"#{device_id}",
                    device.role if device else "device", oper, admin, verdict,
                    _latest(oper_at, admin_at, device_at))


def _device_words(topology: Topology, device_id: int) -> dict[str, Any]:
    device = topology.snapshot.devices.get(device_id)
    return text("cause_path_device_down",
                device=device.key if device else "#" + str(device_id))


def _link_words(topology: Topology, key: object) -> dict[str, Any]:
    data = edge_data(topology.graph, key)  # type: ignore[arg-type]
    if data is None:
        return text("cause_path_link_down", link=str(key))
    snapshot = topology.snapshot

    def end(port_id: int) -> str:
        port = snapshot.ports.get(port_id)
        device = snapshot.devices.get(port.device_id) if port else None
        return f"{device.key if device else '?'}:{port.name if port else port_id}"

    return text("cause_path_link_down", link=f"{end(data['a_port_id'])}–{end(data['z_port_id'])}")


def _element_time(topology: Topology, states: States, element: Element,
                  down: bool) -> datetime | None:
    """When a device or link of the path last changed: for one that is down, since when it
    has been down (the earliest of the facts keeping it down: a link is down from its first
    end seen down); for one that is up, since when (the latest fact)."""
    if element.kind == DEVICE:
        return _state(states, int(element.id), "reachability")[0]  # type: ignore[arg-type]
    data = edge_data(topology.graph, element.id)  # type: ignore[arg-type]
    if data is None:
        return None
    facts = [(*_state(states, data[p], "oper_status"), PORT_NOT_UP)
             for p in ("a_port_id", "z_port_id")]
    facts += [(*_state(states, data[d], "reachability"), frozenset({"unreachable"}))
              for d in ("a_device_id", "z_device_id")]
    if down:
        return min((at for at, state, bad in facts if at is not None and state in bad),
                   default=None)
    return _latest(*(at for at, _, _ in facts))


def _down_on(topology: Topology, states: States,
             elements: Iterable[Element]) -> tuple[tuple[Element, str], ...]:
    graph = topology.graph
    found = []
    for element in sorted(elements, key=str):
        if element.kind == DEVICE and element.id in graph:
            if graph.nodes[element.id]["status"] == DOWN:
                found.append((element, _device_words(topology, int(element.id))))  # type: ignore[arg-type]
        elif element.kind == LINK:
            data = edge_data(graph, element.id)  # type: ignore[arg-type]
            if data is not None and data["status"] == DOWN:
                found.append((element, _link_words(topology, element.id)))
    return tuple(found)


def _path(topology: Topology, states: States, path: CircuitPath | None,
          nominal: Callable[[], Mapping[int, CircuitPath]], circuit_id: int) -> PathFacts:
    if path is None:
        return PathFacts(declared=False, valid=False)
    if path.declared or path.valid:
        elements = path.elements()
        down = _down_on(topology, states, elements)
        problems = path.problems if path.declared and not path.valid else ()
    else:  # a computed path with no route: what took it away is on its nominal path
        base = nominal().get(circuit_id)
        elements = base.elements() if base is not None else frozenset()
        down = _down_on(topology, states, elements)
        problems = ()
    since = _latest(*(_element_time(topology, states, element, True) for element, _ in down))
    changed = _latest(*(_element_time(topology, states, element, False)
                        for element in elements if element.kind in (DEVICE, LINK)))
    return PathFacts(path.declared, path.valid, down, problems, since, changed)


def circuit_objects(topology: Topology, circuit_id: int) -> frozenset[tuple[str, int]]:
    """The objects a maintenance window may name to cover the circuit: the circuit, its
    customer, and the devices and ports of its ends and of its current path."""
    circuit = topology.snapshot.circuits[circuit_id]
    objects: set[tuple[str, int]] = {("circuit", circuit_id), ("customer", circuit.customer_id)}
    for port_id in (circuit.a_port_id, circuit.z_port_id):
        objects.add(("port", port_id))
        port = topology.snapshot.ports.get(port_id)
        if port is not None:
            objects.add(("device", port.device_id))
    path = topology.paths.get(circuit_id)
    for element in path.elements() if path is not None else ():
        if element.kind in (DEVICE, PORT):
            objects.add((element.kind, int(element.id)))  # type: ignore[arg-type]
    return frozenset(objects)


def gather_facts(topology: Topology, states: States, active: Mapping[AlarmKey, Alarm],
                 windows: Iterable[MaintenanceWindow], scope: ScopeIndex, now: datetime,
                 nominal: Callable[[], Mapping[int, CircuitPath]]) -> dict[int, CircuitFacts]:
    """Every circuit's facts (alarms.service_state) from the live topology, the latest
    states, the active alarms and the maintenance windows active at `now` (covering the
    circuit as the suppress stage sees it: alarms.stages.covering with `scope`)."""
    windows = [w for w in windows if w.active_at(now)]
    by_id = {w.id: w for w in windows}
    degrading: dict[Element, list[Alarm]] = {}
    for key, alarm in active.items():
        if key.type in DEGRADING_TYPES and key.kind in (ObjectKind.PORT, ObjectKind.CIRCUIT):
            degrading.setdefault(Element(str(key.kind), key.object_id), []).append(alarm)
    facts: dict[int, CircuitFacts] = {}
    for circuit_id, circuit in topology.snapshot.circuits.items():
        ends = (_end(topology, states, "A", circuit.a_port_id),
                _end(topology, states, "Z", circuit.z_port_id))
        path = _path(topology, states, topology.paths.get(circuit_id), nominal, circuit_id)
        degradations = []
        for element in (Element("circuit", circuit_id), Element(PORT, circuit.a_port_id),
                        Element(PORT, circuit.z_port_id)):
            for alarm in degrading.get(element, ()):
                what = alarm.detail.get(TEXT) or alarm.summary
                words = what if element.kind == "circuit" else text(
                    "cause_on_port", what=what,
                    port=next(e.port_name for e in ends if e.port_id == element.id))
                degradations.append(Degradation(element, words, alarm.first_seen))
        covering_windows: frozenset[int] = frozenset()
        since = None
        if windows:
            covering_windows = covering(windows, AlarmKey(
                ObjectKind.CIRCUIT, circuit_id, AlarmType.SERVICE_DOWN), scope, now)
            since = max((by_id[w].starts_at for w in covering_windows), default=None)
        facts[circuit_id] = CircuitFacts(circuit_id, ends, path, tuple(degradations),
                                         covering_windows, since)
    return facts


# --- taking states -----------------------------------------------------------------------


def _same(a: ServiceVerdict, b: ServiceVerdict) -> bool:
    return a.state == b.state and a.underlying == b.underlying


def _delay(old: ServiceVerdict | None, new: ServiceVerdict, raise_after_s: float,
           clear_after_s: float) -> float:
    if ServiceState.MAINTENANCE in (new.state, old.state if old else None):
        return 0.0  # windows begin and end at their own times
    if new.state is ServiceState.UP:
        return clear_after_s
    return raise_after_s


def take_states(keeper: CircuitStates, verdicts: Mapping[int, ServiceVerdict],
                customers: Mapping[int, int], now: datetime, *, raise_after_s: float,
                clear_after_s: float,
                window_end: Callable[[Iterable[int]], datetime | None] = lambda _ids: None,
                ) -> list[StateChange]:
    """Feed the current verdicts; return the states taken now (see the module docstring).
    Circuits missing from `verdicts` (retired) are forgotten. `window_end(ids)`: when the
    last of these maintenance windows ended (None if one still runs): a circuit leaving
    maintenance takes its next state from then, not from when its facts began."""
    for gone in [c for c in keeper.committed if c not in verdicts]:
        del keeper.committed[gone]
        keeper.pending.pop(gone, None)
    changes: list[StateChange] = []
    for circuit_id, verdict in verdicts.items():
        taken = keeper.committed.get(circuit_id)
        pending = keeper.pending.get(circuit_id)
        if pending is not None and not _same(pending[0], verdict) and verdict.since:
            # the candidate had held long enough before this verdict's facts came (a batch
            # replayed late holds the down and the up of one outage): it was the state
            earlier, began = pending
            if verdict.since - began >= timedelta(seconds=_delay(
                    taken.verdict if taken else None, earlier, raise_after_s, clear_after_s)):
                keeper.committed[circuit_id] = Committed(earlier, began)
                changes.append(StateChange(circuit_id, customers.get(circuit_id), began,
                                           earlier.state,
                                           taken.verdict.state if taken else None, earlier))
                taken = keeper.committed[circuit_id]
                pending = None
                del keeper.pending[circuit_id]
        if taken is not None and _same(taken.verdict, verdict):
            taken.verdict = verdict  # same state, the newest words for it
            keeper.pending.pop(circuit_id, None)
            continue
        if pending is None or not _same(pending[0], verdict):
            since = min(verdict.since or now, now)
            if taken is not None:
                since = max(since, taken.time)
                if (taken.verdict.state is ServiceState.MAINTENANCE
                        and verdict.state is not ServiceState.MAINTENANCE):
                    ended = window_end(taken.verdict.windows)
                    since = max(since, min(ended or now, now))
            pending = keeper.pending[circuit_id] = (verdict, since)
        else:
            pending = keeper.pending[circuit_id] = (verdict, pending[1])
        candidate, since = pending
        delay = _delay(taken.verdict if taken else None, candidate, raise_after_s,
                       clear_after_s)
        if now - since < timedelta(seconds=delay):
            continue
        del keeper.pending[circuit_id]
        keeper.committed[circuit_id] = Committed(candidate, since)
        changes.append(StateChange(circuit_id, customers.get(circuit_id), since,
                                   candidate.state, taken.verdict.state if taken else None,
                                   candidate))
    return changes


def restore_states(keeper: CircuitStates,
                   stored: Iterable[tuple[int, datetime, ServiceVerdict]]) -> None:
    """Start from the stored states ((circuit, since, verdict)), as after a restart."""
    keeper.committed = {circuit: Committed(verdict, since) for circuit, since, verdict in stored}
    keeper.pending = {}


# --- service alarms and impact -----------------------------------------------------------


def _explaining(active: Mapping[AlarmKey, Alarm],
                index_link_ports: Mapping[object, tuple[int, int]],
                elements: Iterable[Element]) -> list[AlarmKey]:
    """The active alarms on the verdict's elements, each replaced by its root cause."""
    by_element: dict[Element, list[AlarmKey]] = {}
    for key in active:
        element = element_of(key)
        if element is not None:
            by_element.setdefault(element, []).append(key)
        elif key.kind is ObjectKind.LINK and key.type is AlarmType.LINK_DOWN:
            by_element.setdefault(Element(LINK, key.object_id), []).append(key)
        elif key.kind is ObjectKind.PORT and key.type is AlarmType.FLAPPING:
            by_element.setdefault(Element(PORT, key.object_id), []).append(key)
    found: list[AlarmKey] = []
    for element in elements:
        keys = list(by_element.get(element, ()))
        if element.kind == LINK and not keys:
            for port in index_link_ports.get(element.id, ()):
                keys += by_element.get(Element(PORT, port), [])
        for key in sorted(keys, key=str):
            root = active[key].root_cause
            chosen = root if root is not None and root in active else key
            if chosen not in found:
                found.append(chosen)
    return found


def service_alarms(active: dict[AlarmKey, Alarm], keeper: CircuitStates,
                   customers: Mapping[int, int], link_ports: Mapping[object, tuple[int, int]],
                   now: datetime, cleared: Mapping[AlarmKey, datetime] | None = None,
                   ) -> list[AlarmChange]:
    """Raise, re-root and clear the circuits' service alarms so that exactly the circuits
    whose taken state is down (or maintenance over a down) have one; then set every alarm's
    impact (module docstring)."""
    from alarms.model import Severity

    cleared = cleared or {}
    changes: list[AlarmChange] = []
    wanted: dict[AlarmKey, Committed] = {}
    for circuit_id, taken in keeper.committed.items():
        verdict = taken.verdict
        down = verdict.state is ServiceState.DOWN or (
            verdict.state is ServiceState.MAINTENANCE
            and verdict.underlying is ServiceState.DOWN)
        if down:
            wanted[AlarmKey(ObjectKind.CIRCUIT, circuit_id, AlarmType.SERVICE_DOWN)] = taken
    for key, alarm in list(active.items()):
        if key.type is AlarmType.SERVICE_DOWN and key not in wanted:
            taken = keeper.committed.get(key.object_id)
            when = taken.time if taken is not None else now
            changes.append(clear(active, alarm, max(when, alarm.first_seen),
                                 text("circuit_now_because",
                                      state=state_words(taken.verdict.state),
                                      cause=taken.verdict.cause_param) if taken
                                 else text("circuit_gone")))
    impact: dict[AlarmKey, set[int]] = {}
    for key, taken in wanted.items():
        verdict = taken.verdict
        words = text("service_down", cause=verdict.cause_param)
        summary = english(words)
        candidates = _explaining(active, link_ports, verdict.elements)
        alarm = active.get(key)
        root = (alarm.root_cause if alarm is not None and alarm.root_cause in candidates
                else candidates[0] if candidates else None)
        if alarm is None:
            customer = customers.get(key.object_id)
            alarm = active[key] = Alarm(
                key, Severity.CRITICAL, taken.time, taken.time, summary,
                impacted_circuits=frozenset({key.object_id}),
                impacted_customers=frozenset({customer} if customer is not None else ()),
                detail={"cause_kind": verdict.cause_kind, "cause": verdict.cause,
                        "cause_elements": [str(e) for e in verdict.elements], TEXT: words})
            changes.append(AlarmChange(alarm, "raised", (entry(
                taken.time, "raised", summary, cause_kind=verdict.cause_kind,
                **{TEXT: words}),)))
        elif alarm.summary != summary and (root != alarm.root_cause or not set(
                alarm.detail.get("cause_elements", ())) <= {str(e) for e in verdict.elements}):
            # the words follow the cause; a second fault that leaves the first in place
            # (same root, its elements still there) does not rewrite them
            alarm.summary = summary
            alarm.detail = {**alarm.detail, "cause_kind": verdict.cause_kind,
                            "cause": verdict.cause,
                            "cause_elements": [str(e) for e in verdict.elements], TEXT: words}
            changes.append(AlarmChange(alarm, "updated", (entry(
                now, "cause", summary, cause_kind=verdict.cause_kind, **{TEXT: words}),)))
        changes += reroot(alarm, root, now)
        if root is not None:
            impact.setdefault(root, set()).add(key.object_id)
    # unknown and degraded circuits: the impact of what made them so
    for circuit_id, taken in keeper.committed.items():
        verdict = taken.verdict
        state = verdict.underlying if verdict.state is ServiceState.MAINTENANCE else verdict.state
        if state is ServiceState.UNKNOWN:
            for element in verdict.elements:
                if element.kind == DEVICE:
                    for kind in SILENT_TYPES:
                        key = AlarmKey(ObjectKind.DEVICE, int(element.id), kind)  # type: ignore[arg-type]
                        if key in active:
                            impact.setdefault(key, set()).add(circuit_id)
        elif state is ServiceState.DEGRADED:
            for key in active:
                if key.type in DEGRADING_TYPES and Element(str(key.kind), key.object_id) in \
                        verdict.elements:
                    impact.setdefault(key, set()).add(circuit_id)
    for key, alarm in active.items():
        if key.type is AlarmType.SERVICE_DOWN:
            continue
        circuits = frozenset(impact.get(key, ()))
        customers_hit = frozenset(customers[c] for c in circuits if c in customers)
        if (circuits, customers_hit) != (alarm.impacted_circuits, alarm.impacted_customers):
            alarm.impacted_circuits, alarm.impacted_customers = circuits, customers_hit
            note = text("impact", circuits=len(circuits), customers=len(customers_hit))
            changes.append(AlarmChange(alarm, "updated", (entry(
                now, "impact", english(note), circuits=sorted(circuits),
                customers=sorted(customers_hit), **{TEXT: note}),)))
    return changes


def assess(keeper: CircuitStates, facts: Mapping[int, CircuitFacts] | None,
           active: dict[AlarmKey, Alarm], customers: Mapping[int, int],
           link_ports: Mapping[object, tuple[int, int]], now: datetime, *,
           raise_after_s: float, clear_after_s: float,
           window_end: Callable[[Iterable[int]], datetime | None] = lambda _ids: None,
           ) -> tuple[list[StateChange], list[AlarmChange]]:
    """The stage: verdicts from `facts` (None: nothing changed since the last call, only
    pending states may become due), states taken, service alarms and impact."""
    if facts is not None:
        verdicts = {c: service_state(f) for c, f in facts.items()}
    else:
        verdicts = {c: p[0] for c, p in keeper.pending.items()}
        for circuit_id, taken in keeper.committed.items():
            verdicts.setdefault(circuit_id, taken.verdict)
    states = take_states(keeper, verdicts, customers, now, raise_after_s=raise_after_s,
                         clear_after_s=clear_after_s, window_end=window_end)
    passed = _passing_outages(active, states, customers, link_ports)
    return states, passed + service_alarms(active, keeper, customers, link_ports, now)


def _is_down(verdict: ServiceVerdict) -> bool:
    return verdict.state is ServiceState.DOWN or (
        verdict.state is ServiceState.MAINTENANCE and verdict.underlying is ServiceState.DOWN)


def _passing_outages(active: dict[AlarmKey, Alarm], states: list[StateChange],
                     customers: Mapping[int, int],
                     link_ports: Mapping[object, tuple[int, int]]) -> list[AlarmChange]:
    """Service alarms for the down states that began and ended within one step (a batch
    replayed late holds a whole outage): each raised at its start and cleared at its end,
    so the record has it; the state a circuit ends the step in is `service_alarms`' work."""
    from alarms.model import Severity

    by_circuit: dict[int, list[StateChange]] = {}
    for change in states:
        by_circuit.setdefault(change.circuit_id, []).append(change)
    changes: list[AlarmChange] = []
    for circuit_id, sequence in by_circuit.items():
        key = AlarmKey(ObjectKind.CIRCUIT, circuit_id, AlarmType.SERVICE_DOWN)
        for change, following in pairwise(sequence):
            ended = following.time
            if not _is_down(change.verdict):
                if key in active:  # an outage from before the step ended in it
                    changes.append(clear(active, active[key], max(ended, active[key].first_seen),
                                         text("circuit_now", state=state_words(following.state))))
                continue
            if key in active:
                continue  # the outage goes on: service_alarms keeps its alarm
            verdict = change.verdict
            words = text("service_down", cause=verdict.cause_param)
            summary = english(words)
            candidates = _explaining(active, link_ports, verdict.elements)
            customer = customers.get(circuit_id)
            alarm = Alarm(key, Severity.CRITICAL, change.time, change.time, summary,
                          root_cause=candidates[0] if candidates else None,
                          impacted_circuits=frozenset({circuit_id}),
                          impacted_customers=frozenset({customer} if customer is not None
                                                       else ()),
                          detail={"cause_kind": verdict.cause_kind, "cause": verdict.cause,
                                  "cause_elements": [str(e) for e in verdict.elements],
                                  TEXT: words})
            if not _is_down(following.verdict):
                active[key] = alarm
                changes.append(AlarmChange(alarm, "raised", (entry(
                    change.time, "raised", summary, cause_kind=verdict.cause_kind,
                    **{TEXT: words}),)))
                changes.append(clear(active, alarm, ended,
                                     text("circuit_now", state=state_words(following.state))))
    return changes

