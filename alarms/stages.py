"""The stages of the alarm pipeline, each a plain function over a small state and a clock.

Alarm handling is a short chain of named stages, as in Prometheus Alertmanager (inhibit,
silence, group, notify), so that each can be understood and tested alone:

``observe``
    An observation (port 4711 went down, device 12 became unreachable) or a threshold
    evaluation (utilization 93 % against a rule raising at 90 %, clearing below 80 %) becomes
    a *signal*: "condition K holds" or "condition K is gone", with the time it was seen.
``debounce``
    A signal becomes a *transition* (raise K, clear K) only once it has held for the
    configured time; a port changing state too often in a window becomes one transition
    "raise flapping" and its link-down signals are held back until it calms down.
``dedupe``
    A transition becomes a change of an alarm: a new alarm, a repeat of an active one (last
    seen, count), or a clear. One active alarm per key.
``correlate``
    With the topology's impact index (topology.impact), the active device and link alarms
    are grouped under root causes: a device-down alarm becomes the root of its neighbours'
    link-downs, both ends of a cut link are symptoms of one inferred link alarm, and every
    circuit a cause leaves without a working path gets a service alarm linked to it, with
    its customer (the rule is below).
``suppress``
    Alarms on objects inside an active maintenance window (and the symptoms of such alarms)
    are marked suppressed: shown but not escalated.

*When is a circuit out of service?* When it has no working path. Its path is the one in
the live topology (topology.current: statuses from the latest observations, computed paths
rerouted around what is down now, `LiveStatus`): a declared path is the provisioned one and
never moves; a computed path moves to the cheapest route still up, or has none. Then:

- a circuit gets a service alarm, rooted at a cause C (an active device or port alarm, or an
  inferred cause), when its path crosses C's element and an element C explains is down in
  the live topology (a declared path through a dead router; a computed path that has not
  been rerouted), or when it has a computed path and no route at all and its nominal path
  (the one with every link up) crosses an element C explains that is down;
- a circuit whose computed path was rerouted around the failure gets nothing: no alarm, no
  note (the topology's `rerouted` and the portal's routes show where it runs now). It
  works, and a "rerouted" warning per circuit would bury the NOC during a core outage;
- an existing service alarm is kept while a cause is active on its path (or, with no route,
  on its nominal path), even if the live status says up again: the cause's own clear is
  debounced, and the service alarm clears with it (or as soon as the circuit reroutes clear
  of every active cause). The live status only decides *raising*, so a computed path moving
  back over a router whose alarm has not cleared yet raises nothing;
- the impact of a cause (impacted circuits and customers) is the set of circuits it put out
  of service by this rule, not every circuit whose nominal path touches it.

Without live status (`correlate(..., live=None)`, as when only an impact index is given)
every circuit whose path crosses a cause is counted out of service: the paths are taken as
they are.

The last stage, publish (persist in one transaction, then announce), needs the store and
lives in alarms.pipeline. Times are the observations' own times, not the clock of the
machine running the pipeline, so replaying stored observations after a restart decides
exactly as the first run did; `now` drives the timers only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from alarms.model import (
    PIPELINE_ACTOR,
    Alarm,
    AlarmChange,
    AlarmKey,
    AlarmState,
    AlarmType,
    MaintenanceWindow,
    ObjectKind,
    Severity,
    TimelineEntry,
)
from alarms.rules import AlarmSettings, ThresholdRule
from collectors.model import Observation
from topology.graph import DEVICE, LINK, PORT, Element
from topology.impact import ImpactIndex, explained_by, root_causes

PORT_DOWN_STATES = frozenset({"down", "lowerLayerDown", "notPresent"})
FAULT_TYPES = frozenset({AlarmType.DEVICE_UNREACHABLE, AlarmType.LINK_DOWN})
# alarm types that the correlate stage makes and clears by itself
DERIVED_TYPES = frozenset({AlarmType.DEVICE_ISOLATED, AlarmType.SERVICE_DOWN})


# --- observe -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Signal:
    """Condition `key` holds (`active`) or is gone, as seen at `time`."""

    key: AlarmKey
    active: bool
    time: datetime
    severity: Severity = Severity.MAJOR
    summary: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    event: bool = False  # an event with no clear of its own (raised at once, held, cleared)


def observe(observation: Observation) -> list[Signal]:
    """The signals one observation gives (none for a state that is neither fault nor
    recovery, such as a port "testing")."""
    o = observation
    source = {"source": o.source, **({"observation_id": o.detail["observation_id"]}
                                     if "observation_id" in o.detail else {})}
    if o.kind == "reachability":
        unreachable = AlarmKey(ObjectKind.DEVICE, o.object_id, AlarmType.DEVICE_UNREACHABLE)
        failed = AlarmKey(ObjectKind.DEVICE, o.object_id, AlarmType.POLL_FAILED)
        reason = o.detail.get("reason")
        if o.new == "reachable":
            return [Signal(unreachable, False, o.time, detail=source),
                    Signal(failed, False, o.time, detail=source)]
        if o.new == "unreachable":
            return [Signal(failed, False, o.time, detail=source),
                    Signal(unreachable, True, o.time, Severity.CRITICAL,
                           "device does not answer", {**source, "reason": reason})]
        return [Signal(unreachable, False, o.time, detail=source),
                Signal(failed, True, o.time, Severity.MAJOR, f"device poll failed: {o.new}",
                       {**source, "reason": reason, "status": o.new})]
    if o.kind == "oper_status":
        key = AlarmKey(ObjectKind.PORT, o.object_id, AlarmType.LINK_DOWN)
        if o.new in PORT_DOWN_STATES:
            return [Signal(key, True, o.time, Severity.MAJOR, f"port oper status {o.new}",
                           source)]
        if o.new == "up":
            return [Signal(key, False, o.time, detail=source)]
        return []
    if o.kind == "agent_restart":
        key = AlarmKey(ObjectKind.DEVICE, o.object_id, AlarmType.TRAP_EVENT, "agent_restart")
        return [Signal(key, True, o.time, Severity.WARNING, "SNMP agent restarted",
                       {**source, **o.detail}, event=True)]
    return []


def observe_threshold(rule: ThresholdRule, kind: ObjectKind, object_id: int, value: float,
                      active: bool, time: datetime) -> Signal | None:
    """Hysteresis: raise at or above `rule.raise_at`, clear below `rule.clear_below`; in
    between, no signal (the alarm stays as it is). `active`: whether the condition is held
    now (alarm raised or pending)."""
    key = AlarmKey(kind, object_id, AlarmType.THRESHOLD, rule.metric)
    detail = {"metric": rule.metric, "value": value, "raise_at": rule.raise_at,
              "clear_below": rule.clear_below}
    if value >= rule.raise_at:
        return Signal(key, True, time, rule.level,
                      f"{rule.metric} {value:.1f} >= {rule.raise_at:g}", detail)
    if value < rule.clear_below and active:
        return Signal(key, False, time, detail=detail)
    return None


# --- debounce ----------------------------------------------------------------------------


@dataclass
class Condition:
    """Debounce bookkeeping of one key: what the alarm side has (`confirmed`), what the
    latest signal says (`wanted`), since when they differ (`since`)."""

    confirmed: bool
    wanted: bool
    since: datetime | None
    signal: Signal


@dataclass
class DebounceState:
    conditions: dict[AlarmKey, Condition] = field(default_factory=dict)
    changes: dict[AlarmKey, deque[datetime]] = field(default_factory=dict)  # flap history
    flapping: set[AlarmKey] = field(default_factory=set)  # underlying keys now flapping
    events_until: dict[AlarmKey, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class Transition:
    """Raise (`active`) or clear alarm `key` at `time`."""

    key: AlarmKey
    active: bool
    time: datetime
    severity: Severity = Severity.MAJOR
    summary: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


def _transition(signal: Signal, active: bool, time: datetime) -> Transition:
    return Transition(signal.key, active, time, signal.severity, signal.summary, signal.detail)


def flapping_key(key: AlarmKey) -> AlarmKey:
    return AlarmKey(key.kind, key.object_id, AlarmType.FLAPPING)


def _delay(settings: AlarmSettings, active: bool) -> timedelta:
    return timedelta(seconds=settings.raise_after_s if active else settings.clear_after_s)


def debounce(state: DebounceState, signal: Signal, settings: AlarmSettings,
             now: datetime) -> list[Transition]:
    """Feed one signal; return the transitions due now (see the module docstring)."""
    key = signal.key
    if signal.event:
        state.events_until[key] = signal.time + timedelta(seconds=settings.event_hold_s)
        return [_transition(signal, True, signal.time)]
    condition = state.conditions.get(key)
    if condition is None:
        if not signal.active:
            return []
        condition = state.conditions[key] = Condition(False, False, None, signal)
    out: list[Transition] = []
    if key.type is AlarmType.LINK_DOWN and signal.active != condition.wanted:
        out += _count_change(state, key, signal, settings)
    condition.wanted = signal.active
    condition.signal = signal
    if key in state.flapping:
        return out
    if condition.wanted == condition.confirmed:
        condition.since = None
        if signal.active:
            out.append(_transition(signal, True, signal.time))  # a repeat
        elif key not in state.changes:
            del state.conditions[key]
        return out
    if condition.since is None:
        condition.since = signal.time
    return out + _confirm_if_due(state, key, condition, settings, now)


def _count_change(state: DebounceState, key: AlarmKey, signal: Signal,
                  settings: AlarmSettings) -> list[Transition]:
    history = state.changes.setdefault(key, deque())
    history.append(signal.time)
    horizon = signal.time - timedelta(seconds=settings.flap_window_s)
    while history and history[0] < horizon:
        history.popleft()
    if len(history) <= settings.flap_max_changes or key in state.flapping:
        return []
    state.flapping.add(key)
    out = [Transition(flapping_key(key), True, signal.time, Severity.MINOR,
                      f"port changed state {len(history)} times in "
                      f"{settings.flap_window_s:g} s", {"changes": len(history)})]
    condition = state.conditions[key]
    if condition.confirmed:  # the flapping alarm stands in for the link-down alarm
        condition.confirmed = False
        out.append(Transition(key, False, signal.time, detail={"reason": "flapping"}))
    condition.since = None
    return out


def _confirm_if_due(state: DebounceState, key: AlarmKey, condition: Condition,
                    settings: AlarmSettings, now: datetime) -> list[Transition]:
    assert condition.since is not None
    due = condition.since + _delay(settings, condition.wanted)
    if now < due:
        return []
    # the alarm's times are the condition's own (when it began, when it ended), not when
    # debounce confirmed it: outages are measured from them
    transition = _transition(condition.signal, condition.wanted, condition.since)
    condition.confirmed = condition.wanted
    condition.since = None
    if not condition.confirmed and key not in state.changes:
        del state.conditions[key]
    return [transition]


def debounce_due(state: DebounceState, settings: AlarmSettings,
                 now: datetime) -> list[Transition]:
    """The transitions whose time has come: conditions that held long enough, flapping
    ports quiet for a window, trap events whose hold ran out."""
    out: list[Transition] = []
    window = timedelta(seconds=settings.flap_window_s)
    for key, history in list(state.changes.items()):
        while history and history[0] < now - window:
            history.popleft()
        if history:
            continue
        del state.changes[key]
        if key in state.flapping:
            state.flapping.discard(key)
            out.append(Transition(flapping_key(key), False, now))
            condition = state.conditions.get(key)
            if condition is not None and condition.wanted != condition.confirmed:
                condition.since = now  # debounce the settled state from now on
        condition = state.conditions.get(key)
        if condition is not None and not condition.wanted and not condition.confirmed:
            del state.conditions[key]
    for key, condition in list(state.conditions.items()):
        if condition.since is not None and key not in state.flapping:
            out += _confirm_if_due(state, key, condition, settings, now)
    for key, until in list(state.events_until.items()):
        if until <= now:
            del state.events_until[key]
            out.append(Transition(key, False, until))
    return out


def held(state: DebounceState, key: AlarmKey) -> bool:
    """Whether the condition `key` holds now as far as debounce knows (raised or pending)."""
    condition = state.conditions.get(key)
    return condition is not None and condition.wanted


# --- dedupe ------------------------------------------------------------------------------


def entry(time: datetime, action: str, comment: str | None = None,
          actor: str = PIPELINE_ACTOR, **detail: Any) -> TimelineEntry:
    return TimelineEntry(time, action, actor, comment, detail)


def dedupe(active: dict[AlarmKey, Alarm], transition: Transition) -> AlarmChange | None:
    """Apply a transition to the active alarms: a new alarm, a repeat, or a clear."""
    t = transition
    alarm = active.get(t.key)
    if t.active:
        if alarm is not None:
            alarm.last_seen = max(alarm.last_seen, t.time)
            alarm.count += 1
            alarm.severity = max(alarm.severity, t.severity)
            return AlarmChange(alarm, "updated", (entry(t.time, "repeated", count=alarm.count),))
        alarm = Alarm(key=t.key, severity=t.severity, first_seen=t.time, last_seen=t.time,
                      summary=t.summary, detail=dict(t.detail))
        active[t.key] = alarm
        return AlarmChange(alarm, "raised", (entry(t.time, "raised", t.summary, **t.detail),))
    if alarm is None:
        return None
    return clear(active, alarm, t.time, "condition gone")


def clear(active: dict[AlarmKey, Alarm], alarm: Alarm, time: datetime, comment: str,
          actor: str = PIPELINE_ACTOR) -> AlarmChange:
    """Clear an active alarm and take it out of `active`."""
    alarm.state = AlarmState.CLEARED
    alarm.cleared_at = time
    active.pop(alarm.key, None)
    return AlarmChange(alarm, "cleared", (entry(time, "cleared", comment, actor),))


# --- correlate ---------------------------------------------------------------------------


def element_of(key: AlarmKey) -> Element | None:
    """The topology element an alarm's condition says failed (None for other types)."""
    if key.type is AlarmType.DEVICE_UNREACHABLE:
        return Element(DEVICE, key.object_id)
    if key.type is AlarmType.LINK_DOWN and key.kind is ObjectKind.PORT:
        return Element(PORT, key.object_id)
    return None


def _cause_key(cause: Element, symptoms: Iterable[Element],
               by_element: Mapping[Element, AlarmKey]) -> AlarmKey:
    if cause in by_element:
        return by_element[cause]
    if cause.kind == DEVICE:
        return AlarmKey(ObjectKind.DEVICE, int(cause.id), AlarmType.DEVICE_ISOLATED)
    if cause.kind == LINK and isinstance(cause.id, int):
        return AlarmKey(ObjectKind.LINK, cause.id, AlarmType.LINK_DOWN)
    # a discovered link (no object id) or anything else: the first symptom stands for it
    return min((by_element[s] for s in symptoms if s in by_element), key=str)


def is_inferred(key: AlarmKey) -> bool:
    """Whether correlate made this alarm as a cause nobody observed directly."""
    return key.type is AlarmType.DEVICE_ISOLATED or (
        key.type is AlarmType.LINK_DOWN and key.kind is ObjectKind.LINK)


_DERIVED = {
    AlarmType.DEVICE_ISOLATED: (Severity.CRITICAL, "every neighbour lost the device"),
    AlarmType.LINK_DOWN: (Severity.MAJOR, "link down at both ends"),
}


@dataclass(frozen=True)
class LiveStatus:
    """What the service rule (module docstring) needs of the live topology besides its
    impact index: `down`, the devices and links whose status is down now; `unrouted`, the
    circuits with a computed path and no route now, each with the elements of its nominal
    path (every link up), which says which failure took its routes away."""

    down: frozenset[Element] = frozenset()
    unrouted: Mapping[int, frozenset[Element]] = field(default_factory=dict)


def out_of_service(index: ImpactIndex, cause: Element, live: LiveStatus | None,
                   alarmed: Callable[[int], bool] = lambda _circuit: False) -> frozenset[int]:
    """The circuits that `cause` leaves without a working path (module docstring);
    `alarmed(circuit)`: whether the circuit already has an active service alarm."""
    over = index.users.get(cause, frozenset())
    if live is None:
        return frozenset(over)
    explained = explained_by(index, cause)
    broken = live.down & explained
    hit = {c for c in over
           if alarmed(c) or index.circuit_elements.get(c, frozenset()) & broken}
    hit.update(c for c, nominal in live.unrouted.items()
               if nominal & explained and (alarmed(c) or nominal & broken))
    return frozenset(hit)


def correlate(active: dict[AlarmKey, Alarm], index: ImpactIndex | None,
              now: datetime, cleared: Mapping[AlarmKey, datetime] | None = None,
              pending: dict[AlarmKey, datetime] | None = None, infer_after_s: float = 0.0,
              live: LiveStatus | None = None) -> list[AlarmChange]:
    """Recompute root causes, inferred cause alarms, service alarms and impact over the
    active alarms (see the module docstring); return the changes, clears of service alarms
    first and of inferred causes last. `cleared`: the alarms cleared just before, with
    their times: a service alarm whose cause cleared ends when its cause did, one made for
    a cause begins when the cause began.

    An inferred cause (a device all of whose neighbours lost it, a link down at both ends)
    is raised only once the inference has held for `infer_after_s`: symptoms arrive one by
    one (a trap from each neighbour, then the poll that finds the device silent), and the
    picture half-way would otherwise raise and clear causes nobody needs to see. `pending`
    keeps, between calls, since when each inference has held; until then its symptoms stand
    alone. `live`: the live topology's status, for the service rule (module docstring)."""
    cleared = cleared or {}
    pending = {} if pending is None else pending
    waiting: set[AlarmKey] = set()
    latest_clear = min(max(cleared.values()), now) if cleared else now
    by_element = {e: k for k in active if (e := element_of(k)) is not None}
    wanted_root: dict[AlarmKey, AlarmKey] = {}
    wanted_derived: dict[AlarmKey, tuple[Severity, str]] = {}
    wanted_service: dict[AlarmKey, tuple[AlarmKey, int | None]] = {}
    impact_of: dict[AlarmKey, tuple[frozenset[int], frozenset[int]]] = {}
    if index is not None and by_element:
        found = root_causes(index, by_element)
        for cause in sorted(found.causes, key=str):
            explained = found.explains[cause]
            cause_key = _cause_key(cause, explained, by_element)
            if is_inferred(cause_key):
                if cause_key not in active:
                    since = pending.setdefault(cause_key, now)
                    if (now - since).total_seconds() < infer_after_s:
                        waiting.add(cause_key)
                        continue
                wanted_derived[cause_key] = _DERIVED[cause_key.type]
            for symptom in explained:
                key = by_element.get(symptom)
                if key is not None and key != cause_key:
                    wanted_root[key] = cause_key
            circuits = out_of_service(index, cause, live, lambda c: AlarmKey(
                ObjectKind.CIRCUIT, c, AlarmType.SERVICE_DOWN) in active)
            impact_of[cause_key] = (circuits, frozenset(
                index.circuit_customer[c] for c in circuits if c in index.circuit_customer))
            for circuit in sorted(circuits):
                service = AlarmKey(ObjectKind.CIRCUIT, circuit, AlarmType.SERVICE_DOWN)
                if service not in wanted_service:
                    wanted_service[service] = (cause_key, index.circuit_customer.get(circuit))
    for key in list(pending):
        if key not in waiting:
            del pending[key]
    changes: list[AlarmChange] = []
    clears_first: list[AlarmChange] = []
    clears_last: list[AlarmChange] = []
    for key, alarm in list(active.items()):
        if key.type is AlarmType.SERVICE_DOWN and key not in wanted_service:
            when = cleared.get(alarm.root_cause, now) if alarm.root_cause else now
            gone = alarm.root_cause is None or alarm.root_cause not in active
            clears_first.append(clear(active, alarm, max(when, alarm.first_seen),
                                      "root cause cleared" if gone else
                                      "circuit rerouted clear of the fault"))
        elif is_inferred(key) and key not in wanted_derived:
            clears_last.append(clear(active, alarm, max(latest_clear, alarm.first_seen),
                                     "no longer inferred"))
    for key, (severity, summary) in wanted_derived.items():
        if key not in active:
            alarm = active[key] = Alarm(key, severity, now, now, summary)
            changes.append(AlarmChange(alarm, "raised", (entry(now, "raised", summary,
                                                               inferred=True),)))
    for key, (cause_key, customer) in wanted_service.items():
        if key not in active:
            cause = active.get(cause_key)
            began = min(cause.first_seen, now) if cause is not None else now
            alarm = active[key] = Alarm(
                key, Severity.CRITICAL, began, began, "circuit out of service",
                impacted_circuits=frozenset({key.object_id}),
                impacted_customers=frozenset({customer} if customer is not None else ()))
            changes.append(AlarmChange(alarm, "raised", (entry(began, "raised",
                                                               "circuit out of service"),)))
        wanted_root[key] = cause_key
    for key, alarm in active.items():
        entries: list[TimelineEntry] = []
        root = wanted_root.get(key)
        if root != alarm.root_cause:
            alarm.root_cause = root
            entries.append(entry(now, "rooted" if root else "unrooted",
                                 f"symptom of {root}" if root else "no longer a symptom",
                                 root_cause=str(root) if root else None))
        if key in impact_of or key.type is not AlarmType.SERVICE_DOWN:
            circuits, customers = impact_of.get(key, (frozenset(), frozenset()))
            if (circuits, customers) != (alarm.impacted_circuits, alarm.impacted_customers):
                alarm.impacted_circuits, alarm.impacted_customers = circuits, customers
                entries.append(entry(now, "impact", f"{len(circuits)} circuits, "
                                     f"{len(customers)} customers",
                                     circuits=sorted(circuits), customers=sorted(customers)))
        if entries:
            changes.append(AlarmChange(alarm, "updated", tuple(entries)))
    return clears_first + changes + clears_last


# --- suppress ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ScopeIndex:
    """What maintenance scope needs to know of the inventory: a port's device, a device's
    and a circuit's customer, a link's ports."""

    port_device: Mapping[int, int] = field(default_factory=dict)
    device_customer: Mapping[int, int | None] = field(default_factory=dict)
    circuit_customer: Mapping[int, int] = field(default_factory=dict)
    link_ports: Mapping[Any, tuple[int, int]] = field(default_factory=dict)


def covering(windows: Iterable[MaintenanceWindow], key: AlarmKey, scope: ScopeIndex,
             now: datetime) -> frozenset[int]:
    """Ids of the windows active at `now` whose scope covers the alarm's object: a device
    covers its ports (and a link touching them), a customer its circuits and the devices at
    its sites."""
    objects: set[tuple[str, int]] = set()

    def add_device(device: int | None) -> None:
        if device is None:
            return
        objects.add(("device", device))
        customer = scope.device_customer.get(device)
        if customer is not None:
            objects.add(("customer", customer))

    def add_port(port: int) -> None:
        objects.add(("port", port))
        add_device(scope.port_device.get(port))

    if key.kind is ObjectKind.DEVICE:
        add_device(key.object_id)
    elif key.kind is ObjectKind.PORT:
        add_port(key.object_id)
    elif key.kind is ObjectKind.LINK:
        for port in scope.link_ports.get(key.object_id, ()):
            add_port(port)
    elif key.kind is ObjectKind.CIRCUIT:
        objects.add(("circuit", key.object_id))
        customer = scope.circuit_customer.get(key.object_id)
        if customer is not None:
            objects.add(("customer", customer))
    return frozenset(w.id for w in windows if w.active_at(now)
                     and any((item.kind, item.object_id) in objects for item in w.scope))


def suppress(active: dict[AlarmKey, Alarm], windows: Iterable[MaintenanceWindow],
             scope: ScopeIndex, now: datetime) -> list[AlarmChange]:
    """Mark the alarms inside active maintenance windows, or symptoms of such an alarm, as
    suppressed; unmark those no longer inside one."""
    windows = [w for w in windows if w.active_at(now)]
    wanted = {key: covering(windows, key, scope, now) if windows else frozenset()
              for key in active}
    for key, alarm in active.items():  # a symptom of work under maintenance is too
        if not wanted[key] and alarm.root_cause in wanted:
            wanted[key] = wanted[alarm.root_cause]
    changes = []
    for key, alarm in active.items():
        if wanted[key] != alarm.suppressed_by:
            was = alarm.suppressed_by
            alarm.suppressed_by = wanted[key]
            action = "suppressed" if wanted[key] else "unsuppressed"
            comment = (f"in maintenance window {', '.join(map(str, sorted(wanted[key])))}"
                       if wanted[key] else "maintenance over")
            changes.append(AlarmChange(alarm, "updated", (entry(
                now, action, comment, windows=sorted(wanted[key] or was)),)))
    return changes


def merge_changes(changes: Iterable[AlarmChange]) -> list[AlarmChange]:
    """One change per alarm, in first-seen order: "cleared" wins over "raised" wins over
    "updated" (the event says where the alarm ended up); timeline entries concatenated."""
    rank = {"updated": 0, "raised": 1, "cleared": 2}
    merged: dict[int, AlarmChange] = {}
    for change in changes:
        seen = merged.get(id(change.alarm))
        if seen is None:
            merged[id(change.alarm)] = change
        else:
            event = max(seen.event, change.event, key=rank.__getitem__)
            merged[id(change.alarm)] = replace(seen, event=event,
                                               entries=seen.entries + change.entries)
    return list(merged.values())
