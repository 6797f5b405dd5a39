"""AlarmPipeline: the stages of alarms.stages run in order over one state, then published.

The pipeline holds what the stages need between calls - the active alarms by key, the
debounce timers and flap counts, the maintenance windows, the topology's impact index - and
runs them in order:

    observe -> debounce -> dedupe -> correlate -> suppress -> publish

`process(observations, now)` feeds observations (from polls and traps); `tick(now)` lets time
pass (debounce timers expire, trap events age out, maintenance windows begin and end);
`evaluate_thresholds(samples, now)` feeds the latest metric values. Each returns the changes
it published. *Publish* hands one step's changes, merged to one per alarm, to a publisher:
`store_publisher(pool)` saves them, the pipeline's read position and an "alarm.<raised|
updated|cleared>" event per alarm in one transaction (store.alarms.save_changes); without a
publisher the changes are only returned, which is how the stages are tested together.

The topology comes with its live status (`set_topology(index, scope, live)`, made by
`live_topology` from a topology.current.Topology that alarms.service keeps refreshed with
the observations it processes): the index is that of the circuits' *current* paths, computed
ones rerouted around what is down. A service alarm is raised for a circuit with no working
path - its declared path crosses a failed element, or its computed path could not be
rerouted - and a circuit rerouted successfully gets no alarm at all; alarms.stages says the
rule in full.

After a restart `restore(alarms, latest_states, now)` rebuilds the state from the store: the
active alarms as they were, and the last observed state of every object replayed into
debounce, so an alarm whose condition still holds stays as it is (no duplicate) and one
whose condition went away while the pipeline was down clears after the usual delay. The
observations recorded after the stored read position then arrive as usual (alarms.service).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from psycopg_pool import ConnectionPool

from alarms.model import Alarm, AlarmChange, AlarmKey, AlarmType, MaintenanceWindow, ObjectKind
from alarms.rules import AlarmSettings, rule_for
from alarms.stages import (
    FAULT_TYPES,
    Condition,
    DebounceState,
    LiveStatus,
    ScopeIndex,
    Signal,
    Transition,
    correlate,
    debounce,
    debounce_due,
    dedupe,
    held,
    is_inferred,
    merge_changes,
    observe,
    observe_threshold,
    suppress,
)
from collectors.model import Observation
from topology.current import Topology
from topology.graph import DEVICE, DOWN, LINK, Element, TopologySnapshot
from topology.impact import ImpactIndex
from topology.paths import CircuitPath

log = logging.getLogger(__name__)

# publisher(changes, last_event_id, alarm_for) -> alarms cleared by hand meanwhile
Publisher = Callable[[Sequence[AlarmChange], int | None, Callable[[AlarmKey], Alarm | None]],
                     list[Alarm]]


def store_publisher(pool: ConnectionPool, pipeline: str = "main") -> Publisher:
    """A publisher that saves each step in one transaction (store.alarms.save_changes)."""
    from store.alarms import save_changes

    def publish(changes: Sequence[AlarmChange], last_event_id: int | None,
                alarm_for: Callable[[AlarmKey], Alarm | None]) -> list[Alarm]:
        if not changes and last_event_id is None:
            return []
        with pool.connection() as conn:
            return save_changes(conn, changes, alarm_for=alarm_for,
                                last_event_id=last_event_id, pipeline=pipeline)

    return publish


def scope_index(snapshot: TopologySnapshot, index: ImpactIndex | None = None) -> ScopeIndex:
    """What the suppress stage needs of the inventory."""
    return ScopeIndex(
        port_device={p.id: p.device_id for p in snapshot.ports.values()},
        device_customer={d: snapshot.device_customer(d) for d in snapshot.devices},
        circuit_customer={c.id: c.customer_id for c in snapshot.circuits.values()},
        link_ports=dict(index.link_ports) if index is not None else {
            link.id: (link.a_port_id, link.z_port_id) for link in snapshot.links.values()})


def live_status(topology: Topology,
                nominal: Callable[[], Mapping[int, CircuitPath]] | None = None) -> LiveStatus:
    """The LiveStatus of a live Topology (topology.current), for `AlarmPipeline.set_topology`
    with `topology.index`: the devices and links down now, and the circuits with a computed
    path and no route, each with the elements of its path in `nominal()` - the paths with
    every link up (paths.compute_paths(..., ignore_status=True)), only asked for when some
    circuit has no route."""
    graph = topology.graph
    down = {Element(DEVICE, node) for node, status in graph.nodes(data="status")
            if status == DOWN}
    down.update(Element(LINK, key)
                for _, _, key, status in graph.edges(keys=True, data="status")
                if status == DOWN)
    unrouted = [c for c, path in topology.paths.items() if not path.declared and not path.valid]
    base = nominal() if unrouted and nominal is not None else {}
    return LiveStatus(frozenset(down), {
        c: base[c].elements() if c in base else frozenset() for c in unrouted})


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
                 index: ImpactIndex | None = None, scope: ScopeIndex | None = None,
                 live: LiveStatus | None = None, publisher: Publisher | None = None,
                 tier_of: Mapping[int, str] | None = None):
        self.settings = settings or AlarmSettings()
        self.index = index
        self.live = live
        self.scope = scope or ScopeIndex()
        self.publisher = publisher
        self.tier_of = dict(tier_of or {})
        self.active: dict[AlarmKey, Alarm] = {}
        self.debounce = DebounceState()
        self.windows: list[MaintenanceWindow] = []
        self.observations_processed = 0
        self._correlate_due = False
        self._inferring: dict[AlarmKey, datetime] = {}  # inferred causes not yet raised

    # --- inputs ----------------------------------------------------------------------------

    def set_topology(self, index: ImpactIndex | None, scope: ScopeIndex | None = None,
                     live: LiveStatus | None = None) -> None:
        """A new impact index (inventory changed, or status moved computed paths) and the
        live status it goes with (None: every circuit over a fault is out of service, see
        alarms.stages): correlation is redone at the next step."""
        self.index = index
        self.live = live
        if scope is not None:
            self.scope = scope
        self._correlate_due = True

    def set_windows(self, windows: Iterable[MaintenanceWindow]) -> None:
        self.windows = list(windows)

    def process(self, observations: Iterable[Observation], now: datetime, *,
                last_event_id: int | None = None) -> list[AlarmChange]:
        """Run observations through every stage; `last_event_id` (the event that carried
        them) is saved with the result as the pipeline's read position."""
        transitions: list[Transition] = []
        for observation in observations:
            self.observations_processed += 1
            for signal in observe(observation):
                transitions += debounce(self.debounce, signal, self.settings, now)
        return self._step(transitions, now, last_event_id)

    def tick(self, now: datetime) -> list[AlarmChange]:
        """Let time pass: expired debounce timers, aged trap events, windows that began or
        ended."""
        return self._step(debounce_due(self.debounce, self.settings, now), now, None)

    def evaluate_thresholds(self, samples: Iterable[tuple[int, str, datetime, float]],
                            now: datetime) -> list[AlarmChange]:
        """Feed the latest value of each series, (object_id, metric, time, value), through
        the threshold rules (hysteresis), then debounce and the rest."""
        transitions: list[Transition] = []
        for object_id, metric, _time, value in samples:
            kind, object_class = self._object_class(object_id)
            rule = rule_for(self.settings.thresholds, metric, object_class,
                            self.tier_of.get(object_id))
            if rule is None:
                continue
            key = AlarmKey(kind, object_id, AlarmType.THRESHOLD, metric)
            signal = observe_threshold(rule, kind, object_id, value,
                                       held(self.debounce, key) or key in self.active, now)
            if signal is not None:
                transitions += debounce(self.debounce, signal, self.settings, now)
        return self._step(transitions, now, None)

    def _object_class(self, object_id: int) -> tuple[ObjectKind, str]:
        if object_id in self.scope.circuit_customer:
            return ObjectKind.CIRCUIT, "circuit"
        if object_id in self.scope.device_customer:
            return ObjectKind.DEVICE, "device"
        return ObjectKind.PORT, "port"

    # --- the steps -------------------------------------------------------------------------

    def _step(self, transitions: Sequence[Transition], now: datetime,
              last_event_id: int | None) -> list[AlarmChange]:
        changes: list[AlarmChange] = []
        cleared: dict[AlarmKey, datetime] = {}
        for transition in transitions:
            change = dedupe(self.active, transition)
            if change is None:
                continue
            changes.append(change)
            if change.event == "cleared" and change.alarm.cleared_at is not None:
                cleared[change.alarm.key] = change.alarm.cleared_at
            if change.event != "updated" and change.alarm.key.type in FAULT_TYPES:
                self._correlate_due = True
        if self._correlate_due:
            self._correlate_due = False
            changes += correlate(self.active, self.index, now, cleared,
                                 self._inferring, self.settings.infer_after_s, self.live)
            self._correlate_due = bool(self._inferring)  # look again until they mature
        changes += suppress(self.active, self.windows, self.scope, now)
        merged = _clears_last(merge_changes(changes))
        if self.publisher is not None and (merged or last_event_id is not None):
            gone = self.publisher(merged, last_event_id, self.active.get)
            for alarm in gone:
                self.forget(alarm.key, alarm.id, now)
        return merged

    # --- people and restarts ---------------------------------------------------------------

    def forget(self, key: AlarmKey, alarm_id: int | None = None,
               now: datetime | None = None) -> bool:
        """Drop an alarm cleared by hand (only if `alarm_id` matches, when given). If its
        condition still holds as far as the pipeline knows, it is raised again, as a new
        occurrence, once it has held for the raise delay from `now`; a clear by hand is for
        an alarm whose clear was missed, not a way to silence a fault (that is maintenance)."""
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
        return True

    def forget_id(self, alarm_id: int, now: datetime | None = None) -> bool:
        for key, alarm in self.active.items():
            if alarm.id == alarm_id:
                return self.forget(key, alarm_id, now)
        return False

    def restore(self, alarms: Iterable[Alarm], latest: Iterable[Observation],
                now: datetime) -> None:
        """Rebuild the state after a restart (see the module docstring): `alarms` are the
        stored active alarms, `latest` the last observation of every object's state."""
        self.active = {alarm.key: alarm for alarm in alarms}
        self.debounce = DebounceState()
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
            for signal in observe(observation):
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
