"""AlarmPipeline: the stages of alarms.stages run in order over one state, then published.

The pipeline holds what the stages need between calls - the active alarms by key, the
debounce timers and flap counts, the maintenance windows, the live topology, the latest
observed state of every object, and every circuit's service state - and runs them in order:

    observe -> debounce -> dedupe -> correlate -> assess -> suppress -> publish

`process(observations, now)` feeds observations (from polls and traps, and the threshold
crossings the collectors judge on their samples: alarms.thresholds); `tick(now)` lets time
pass (debounce timers expire, trap events age out, maintenance windows begin and end, circuit
states wait to be taken).
Each returns the alarm changes it published; the circuit states it took are in
`last_states`. *Publish* hands one step's changes, merged to one per alarm, and its circuit
states to a publisher: `store_publisher(...)` saves them, an "alarm.<raised|updated|cleared>"
event per alarm and a "circuit.state" event in one transaction (store.alarms.save_changes,
store.circuit_states.record_states) - the transaction of the alarm service's event consumer,
which saves its read position with them (alarms.service); without a publisher the changes
are only returned, which is how the stages are tested together.

The topology (`set_topology(topology)`, a topology.current.Topology: the inventory, accepted
and discovered links) is kept live by the pipeline itself: every observation updates the
latest states, and a batch that changes a port's or a device's status refreshes the
topology (topology.current.refresh_status: computed paths rerouted around what is down,
impact index updated). So the correlate stage sees the index of the circuits' current
paths, and the assess stage judges every circuit (alarms.service_state) on the same picture
the portal draws. With only an impact index (`index=...`, no topology), alarms are grouped
under root causes but no circuit is judged: that is how correlation is tested alone.

After a restart `restore(alarms, latest, now, circuit_states)` rebuilds the state from the
store: the active alarms and circuit states as they were, and the last observed state of
every object replayed into debounce, so an alarm whose condition still holds stays as it is
(no duplicate) and one whose condition went away while the pipeline was down clears after
the usual delay. The observations recorded after the stored read position then arrive as
usual (alarms.service).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg_pool import ConnectionPool

from alarms.assess import (
    CircuitStates,
    StateChange,
    assess,
    circuit_objects,
    gather_facts,
    restore_states,
)
from alarms.model import Alarm, AlarmChange, AlarmKey, AlarmType, MaintenanceWindow, ObjectKind
from alarms.rules import AlarmSettings
from alarms.service_state import ServiceState, ServiceVerdict
from alarms.stages import (
    FAULT_TYPES,
    Condition,
    DebounceState,
    ScopeIndex,
    Signal,
    Transition,
    correlate,
    debounce,
    debounce_due,
    dedupe,
    is_inferred,
    merge_changes,
    observe,
    suppress,
)
from alarms.thresholds import is_threshold_kind, threshold_kind
from collectors.model import Observation
from topology.current import Topology, refresh_status
from topology.graph import Element, TopologySnapshot
from topology.impact import ImpactIndex
from topology.paths import CircuitPath, compute_paths

log = logging.getLogger(__name__)

# what refresh_status reads to set the topology's statuses
STATUS_KINDS = frozenset({"oper_status", "reachability"})
# what the pipeline keeps of the observations: statuses, and what observe reads of ports
KEPT_KINDS = STATUS_KINDS | {"admin_status", "port_match"}

# publisher(changes, states, last_event_id, alarm_for) -> alarms cleared by hand meanwhile
Publisher = Callable[[Sequence[AlarmChange], Sequence[StateChange], int | None,
                      Callable[[AlarmKey], Alarm | None]], list[Alarm]]


def stored_state(change: StateChange, alarm_id: int | None) -> object:
    """A StateChange as store.circuit_states stores it."""
    from store.circuit_states import StoredState

    verdict = change.verdict
    return StoredState(
        change.circuit_id, change.customer_id, change.time, str(change.state),
        str(change.previous) if change.previous else None,
        str(verdict.underlying) if verdict.underlying else None, verdict.cause,
        verdict.cause_kind, tuple(str(e) for e in verdict.elements),
        tuple(sorted(verdict.windows)), alarm_id, cause_text=verdict.cause_as_text)


def verdict_of(stored: object) -> ServiceVerdict:
    """A stored state (store.circuit_states.StoredState) as the verdict it recorded."""
    elements = []
    for text in stored.elements:  # type: ignore[attr-defined]
        kind, _, ident = text.partition(":")
        elements.append(Element(kind, int(ident) if ident.lstrip("-").isdigit() else ident))
    return ServiceVerdict(
        ServiceState(stored.state), stored.cause, stored.cause_kind,  # type: ignore[attr-defined]
        tuple(elements), stored.time,  # type: ignore[attr-defined]
        ServiceState(stored.underlying) if stored.underlying else None,  # type: ignore[attr-defined]
        frozenset(stored.windows),  # type: ignore[attr-defined]
        cause_text=stored_reasons(stored.cause_text))  # type: ignore[attr-defined]


def stored_reasons(words: Any) -> tuple[dict[str, Any] | str, ...]:
    """A stored cause_text's reasons (ServiceVerdict.cause_as_text undone); () for none."""
    if isinstance(words, dict) and words.get("code") == "cause_reasons":
        return tuple((words.get("params") or {}).get("reasons") or ())
    return ()


def store_publisher(source: ConnectionPool | Callable[[], Any],
                    pipeline: str = "main") -> Publisher:
    """A publisher that saves each step in one transaction (store.alarms.save_changes and
    store.circuit_states.record_states): a connection borrowed from the pool `source` for
    the step, or the connection `source()` returns, in whose transaction the step is saved
    (alarms.service: the event consumer's batch, which commits it with its position)."""
    from store.alarms import save_changes
    from store.circuit_states import record_states

    def connection() -> Any:
        if isinstance(source, ConnectionPool):
            return source.connection()
        return nullcontext(source())

    def publish(changes: Sequence[AlarmChange], states: Sequence[StateChange],
                last_event_id: int | None,
                alarm_for: Callable[[AlarmKey], Alarm | None]) -> list[Alarm]:
        if not changes and not states and last_event_id is None:
            return []
        with connection() as conn:
            gone = save_changes(conn, changes, alarm_for=alarm_for,
                                last_event_id=last_event_id, pipeline=pipeline)
            stored = []
            for change in states:
                alarm = alarm_for(AlarmKey(ObjectKind.CIRCUIT, change.circuit_id,
                                           AlarmType.SERVICE_DOWN))
                stored.append(stored_state(change, alarm.id if alarm is not None else None))
            record_states(conn, stored)  # type: ignore[arg-type]
            return gone

    return publish


def scope_index(snapshot: TopologySnapshot, index: ImpactIndex | None = None,
                topology: Topology | None = None) -> ScopeIndex:
    """What the suppress stage (and the assess stage's maintenance) needs of the inventory."""
    return ScopeIndex(
        port_device={p.id: p.device_id for p in snapshot.ports.values()},
        device_customer={d: snapshot.device_customer(d) for d in snapshot.devices},
        circuit_customer={c.id: c.customer_id for c in snapshot.circuits.values()},
        link_ports=dict(index.link_ports) if index is not None else {
            link.id: (link.a_port_id, link.z_port_id) for link in snapshot.links.values()},
        circuit_objects={c: circuit_objects(topology, c) for c in snapshot.circuits}
        if topology is not None else {})


def monitored_ports(topology: Topology) -> frozenset[int]:
    """The ports that raise port alarms: circuit ends, ends of links (declared, accepted or
    discovered) and ports the inventory marks `monitor: true`."""
    ports = {p for c in topology.snapshot.circuits.values() for p in (c.a_port_id, c.z_port_id)}
    for _, _, data in topology.graph.edges(data=True):
        ports.update((data["a_port_id"], data["z_port_id"]))
    ports.update(p.id for p in topology.snapshot.ports.values() if p.monitor)
    return frozenset(ports)


@dataclass
class _Ports:
    """alarms.stages.PortContext over the pipeline's latest states."""

    states: dict[tuple[int, str], tuple[datetime, str]]
    watched: frozenset[int] | None  # None: every port (no topology to say otherwise)

    def monitored(self, port_id: int) -> bool:
        return self.watched is None or port_id in self.watched

    def admin(self, port_id: int) -> str | None:
        seen = self.states.get((port_id, "admin_status"))
        return seen[1] if seen else None

    def oper(self, port_id: int) -> str | None:
        seen = self.states.get((port_id, "oper_status"))
        return seen[1] if seen else None


def _clears_last(changes: list[AlarmChange]) -> list[AlarmChange]:
    """Raises and updates first; then clears, service alarms before other symptoms before
    root causes, so that nobody sees a symptom outlive its cause."""
    def rank(change: AlarmChange) -> int:
        if change.event != "cleared":
            return 0
        if change.alarm.key.type is AlarmType.SERVICE_DOWN:
            return 1
        return 2 if change.alarm.root_cause is not None else 3
    return sorted(changes, key=rank)


class AlarmPipeline:
    """See the module docstring. Not thread-safe: one thread drives it (alarms.service)."""

    def __init__(self, settings: AlarmSettings | None = None, *,
                 topology: Topology | None = None, index: ImpactIndex | None = None,
                 scope: ScopeIndex | None = None, publisher: Publisher | None = None):
        self.settings = settings or AlarmSettings()
        self._threshold_kinds = frozenset(threshold_kind(rule.metric)
                                          for rule in self.settings.thresholds)
        self.index = index
        self.scope = scope or ScopeIndex()
        self.publisher = publisher
        self.active: dict[AlarmKey, Alarm] = {}
        self.debounce = DebounceState()
        self.windows: list[MaintenanceWindow] = []
        self.observations_processed = 0
        # (object id, kind) -> (time, state) of the newest observation seen
        self.states: dict[tuple[int, str], tuple[datetime, str]] = {}
        self.circuit_states = CircuitStates()
        self.last_states: list[StateChange] = []
        self.topology: Topology | None = None
        self._nominal: dict[int, CircuitPath] | None = None
        self._ports = _Ports(self.states, None)
        self._correlate_due = False
        self._assess_due = False
        self._active_windows: frozenset[int] = frozenset()
        # the latest time the stages ran at: observations' own times, or the caller's now
        self._clock = datetime.min.replace(tzinfo=UTC)
        self._inferring: dict[AlarmKey, datetime] = {}  # inferred causes not yet raised
        if topology is not None:
            self.set_topology(topology)

    # --- inputs ----------------------------------------------------------------------------

    def set_topology(self, topology: Topology | ImpactIndex | None,
                     scope: ScopeIndex | None = None) -> None:
        """A new topology (inventory changed, a discovery ran, a link was accepted), made
        live with the pipeline's latest states; or, for correlation alone, a bare impact
        index (and its scope). Correlation and assessment are redone at the next step."""
        if isinstance(topology, Topology):
            topology, _ = refresh_status(topology, self._status_states())
            self.topology = topology
            self.index = topology.index
            self.scope = scope_index(topology.snapshot, topology.index, topology)
            self._ports.watched = monitored_ports(topology)
            self._nominal = None
        else:
            self.topology = None
            self.index = topology
            if scope is not None:
                self.scope = scope
            self._ports.watched = None
        self._correlate_due = True
        self._assess_due = True

    def set_windows(self, windows: Iterable[MaintenanceWindow]) -> None:
        self.windows = list(windows)
        self._assess_due = True

    def note(self, observations: Iterable[Observation]) -> bool:
        """Take the observations' states into the latest states (older ones than what is
        known are ignored); refresh the topology if a status changed. Whether anything
        changed."""
        changed = status_changed = False
        for o in observations:
            if o.kind not in KEPT_KINDS:
                continue
            key = (o.object_id, o.kind)
            seen = self.states.get(key)
            if seen is not None and seen[0] > o.time:
                continue
            if seen is None or seen[1] != o.new:
                changed = True
                status_changed = status_changed or o.kind in STATUS_KINDS
            self.states[key] = (o.time, o.new)
        if status_changed and self.topology is not None:
            topology, moved = refresh_status(self.topology, self._status_states())
            if moved:
                self.topology = topology
                self.index = topology.index
                if topology.rerouted:
                    self.scope = scope_index(topology.snapshot, topology.index, topology)
                self._correlate_due = True
        if changed:
            self._assess_due = True
        return changed

    def _status_states(self) -> dict[tuple[int, str], str]:
        return {key: state for key, (_, state) in self.states.items() if key[1] in STATUS_KINDS}

    def process(self, observations: Iterable[Observation], now: datetime, *,
                last_event_id: int | None = None) -> list[AlarmChange]:
        """Run observations through every stage; `last_event_id` (the event that carried
        them) is saved with the result as the pipeline's read position.

        Observations are taken in the order of their own times, each on the pipeline's
        clock set to that time: the timers of debounce, inference and circuit states run
        in between as they would have live. So a batch that arrives late (replayed from a
        spool after an outage, read after a restart) gives the same alarms, with the same
        times, as the same observations arriving one by one: a port down and up again
        inside one batch still leaves its alarm and its outage interval. Everything the
        batch caused is published in one step."""
        ordered = sorted(observations, key=lambda o: o.time)
        changes: list[AlarmChange] = []
        states: list[StateChange] = []
        group: list[Observation] = []
        seen: set[tuple[int, str]] = set()
        for observation in ordered:
            key = (observation.object_id, observation.kind)
            if group and (key in seen or self._due_by(observation.time)):
                self._take(group, min(group[-1].time, now), changes, states)
                group, seen = [], set()
            group.append(observation)
            seen.add(key)
        if group:
            self._take(group, min(group[-1].time, now), changes, states)
        more, taken = self._compute(debounce_due(self.debounce, self.settings, now), now)
        return self._publish(changes + more, states + taken, now, last_event_id)

    def _due_by(self, when: datetime) -> bool:
        """Whether a timer (debounce, flapping, trap event, inference, circuit state,
        maintenance window) falls due at or before `when`: the observations up to then must
        not be taken together with the ones after."""
        settings = self.settings
        for condition in self.debounce.conditions.values():
            if condition.since is not None and condition.since + timedelta(
                    seconds=settings.raise_after_s if condition.wanted
                    else settings.clear_after_s) <= when:
                return True
        if any(until <= when for until in self.debounce.events_until.values()):
            return True
        window = timedelta(seconds=settings.flap_window_s)
        if any(history and history[-1] + window <= when
               for history in self.debounce.changes.values()):
            return True
        infer = timedelta(seconds=settings.infer_after_s)
        if any(since + infer <= when for since in self._inferring.values()):
            return True
        longest = timedelta(seconds=max(settings.raise_after_s, settings.clear_after_s))
        if any(since + longest <= when for _, since in self.circuit_states.pending.values()):
            return True
        return any(self._clock < edge <= when for w in self.windows
                   for edge in (w.starts_at, w.ends_at))

    def _take(self, group: list[Observation], at: datetime, changes: list[AlarmChange],
              states: list[StateChange]) -> None:
        """One group of observations of one moment, on the clock set to `at` (the
        observations' own time, even when the pipeline's clock ran past it while they were
        held up): first what fell due before it, then the group itself."""
        due = debounce_due(self.debounce, self.settings, at)
        if due or self.circuit_states.pending or self._inferring:
            more, taken = self._compute(due, at)
            changes += more
            states += taken
        self._clock = max(self._clock, at)
        self.note(group)
        transitions: list[Transition] = []
        for observation in group:
            self.observations_processed += 1
            for signal in self._signals(observation):
                transitions += debounce(self.debounce, signal, self.settings, at)
        more, taken = self._compute(transitions, at)
        changes += more
        states += taken

    def _signals(self, observation: Observation) -> list[Signal]:
        """The observe stage on the pipeline's ports; a threshold crossing counts only for
        a metric the pipeline's own rules name (thresholds = [] turns them off here too)."""
        if (is_threshold_kind(observation.kind)
                and observation.kind not in self._threshold_kinds):
            return []
        return observe(observation, self._ports)

    def tick(self, now: datetime) -> list[AlarmChange]:
        """Let time pass: expired debounce timers, aged trap events, windows that began or
        ended, circuit states that held long enough."""
        self._clock = max(self._clock, now)
        return self._step(debounce_due(self.debounce, self.settings, now), now, None)

    def _nominal_paths(self) -> dict[int, CircuitPath]:
        """Every circuit's path with every link up (which failure left one without a
        route), computed once per topology, when first needed."""
        if self._nominal is None:
            assert self.topology is not None
            self._nominal = compute_paths(self.topology.graph, self.topology.snapshot,
                                          ignore_status=True)
        return self._nominal

    def _window_end(self, ids: Iterable[int]) -> datetime | None:
        """When the last of these windows ended; None if one still runs or is unknown."""
        ends = [w.ends_at for w in self.windows if w.id in set(ids)]
        return max(ends) if ends else None

    def _reachable(self, device_id: int) -> bool:
        seen = self.states.get((device_id, "reachability"))
        return seen is not None and seen[1] == "reachable"

    # --- the steps -------------------------------------------------------------------------

    def _step(self, transitions: Sequence[Transition], now: datetime,
              last_event_id: int | None) -> list[AlarmChange]:
        changes, states = self._compute(transitions, now)
        return self._publish(changes, states, now, last_event_id)

    def _compute(self, transitions: Sequence[Transition],
                 now: datetime) -> tuple[list[AlarmChange], list[StateChange]]:
        """Every stage after debounce, at `now`: the alarm changes and circuit states."""
        changes: list[AlarmChange] = []
        cleared: dict[AlarmKey, datetime] = {}
        for transition in transitions:
            change = dedupe(self.active, transition)
            if change is None:
                continue
            changes.append(change)
            self._assess_due = True
            if change.event == "cleared" and change.alarm.cleared_at is not None:
                cleared[change.alarm.key] = change.alarm.cleared_at
            if change.event != "updated" and change.alarm.key.type in FAULT_TYPES:
                self._correlate_due = True
        if self._correlate_due:
            self._correlate_due = False
            changes += correlate(self.active, self.index, now, cleared,
                                 self._inferring, self.settings.infer_after_s, self._reachable)
            self._correlate_due = bool(self._inferring)  # look again until they mature
        windows = frozenset(w.id for w in self.windows if w.active_at(now))
        if windows != self._active_windows:
            self._active_windows = windows
            self._assess_due = True
        states: list[StateChange] = []
        if self.topology is not None and (self._assess_due or self.circuit_states.pending
                                          or changes):
            facts = None
            if self._assess_due:
                self._assess_due = False
                facts = gather_facts(self.topology, self.states, self.active, self.windows,
                                     self.scope, now, self._nominal_paths)
            states, service = assess(
                self.circuit_states, facts, self.active, self.scope.circuit_customer,
                self.scope.link_ports, now, raise_after_s=self.settings.raise_after_s,
                clear_after_s=self.settings.clear_after_s, window_end=self._window_end)
            changes += service
        changes += suppress(self.active, self.windows, self.scope, now)
        return changes, states

    def _publish(self, changes: list[AlarmChange], states: list[StateChange], now: datetime,
                 last_event_id: int | None) -> list[AlarmChange]:
        merged = _clears_last(merge_changes(changes))
        self.last_states = states
        if self.publisher is not None and (merged or states or last_event_id is not None):
            gone = self.publisher(merged, states, last_event_id, self.active.get)
            for alarm in gone:
                self.forget(alarm.key, alarm.id, now)
        return merged

    # --- people and restarts ---------------------------------------------------------------

    def forget(self, key: AlarmKey, alarm_id: int | None = None,
               now: datetime | None = None) -> bool:
        """Drop an alarm cleared by hand (only if `alarm_id` matches, when given). If its
        condition still holds as far as the pipeline knows, it is raised again, as a new
        occurrence, once it has held for the raise delay from `now`; a clear by hand is for
        an alarm whose clear was missed, not a way to silence a fault (that is maintenance).
        A service alarm comes back at the next step while its circuit is still down."""
        alarm = self.active.get(key)
        if alarm is None or (alarm_id is not None and alarm.id != alarm_id):
            return False
        del self.active[key]
        condition = self.debounce.conditions.get(key)
        if condition is not None and condition.confirmed:
            condition.confirmed = False
            if condition.wanted:
                condition.since = now or alarm.last_seen
            else:
                del self.debounce.conditions[key]
        self._correlate_due = True
        self._assess_due = True
        return True

    def forget_id(self, alarm_id: int, now: datetime | None = None) -> bool:
        for key, alarm in self.active.items():
            if alarm.id == alarm_id:
                return self.forget(key, alarm_id, now)
        return False

    def restore(self, alarms: Iterable[Alarm], latest: Iterable[Observation],
                now: datetime,
                circuit_states: Iterable[tuple[int, datetime, ServiceVerdict]] = ()) -> None:
        """Rebuild the state after a restart (see the module docstring): `alarms` are the
        stored active alarms, `latest` the last observation of every object's state,
        `circuit_states` the circuits' current stored states (circuit, since, verdict)."""
        self.active = {alarm.key: alarm for alarm in alarms}
        self.debounce = DebounceState()
        latest = list(latest)
        self.states.clear()
        self.note(latest)
        restore_states(self.circuit_states, circuit_states)
        hold = timedelta(seconds=self.settings.event_hold_s)
        for key, alarm in self.active.items():
            signal = Signal(key, True, alarm.last_seen, alarm.severity, alarm.summary,
                            alarm.detail)
            if key.type is AlarmType.TRAP_EVENT:
                self.debounce.events_until[key] = alarm.last_seen + hold
            elif key.type is AlarmType.FLAPPING:
                underlying = AlarmKey(key.kind, key.object_id, AlarmType.LINK_DOWN)
                self.debounce.flapping.add(underlying)
                self.debounce.changes.setdefault(underlying, deque([alarm.last_seen]))
            elif key.type is not AlarmType.SERVICE_DOWN and not is_inferred(key):
                self.debounce.conditions[key] = Condition(True, True, None, signal)
        for observation in latest:
            for signal in self._signals(observation):
                condition = self.debounce.conditions.get(signal.key)
                if condition is None:
                    if signal.active:
                        self.debounce.conditions[signal.key] = Condition(
                            False, True, signal.time, signal)
                elif signal.key not in self.debounce.flapping:
                    if condition.wanted != signal.active:
                        condition.since = signal.time
                    condition.wanted, condition.signal = signal.active, signal
        self._correlate_due = True
        self._assess_due = True
