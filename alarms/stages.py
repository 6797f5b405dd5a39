"""The stages of the alarm pipeline, each a plain function over a small state and a clock.

Alarm handling is a short chain of named stages, as in Prometheus Alertmanager (inhibit,
silence, group, notify), so that each can be understood and tested alone:

``observe``
    An observation (port 4711 went down, device 12 became unreachable, utilization crossed
    a rule raising at 90 % and clearing below 80 %: alarms.thresholds) becomes a *signal*:
    "condition K holds" or "condition K is gone", with the time it was seen.
``debounce``
    A signal becomes a *transition* (raise K, clear K) only once it has held for the
    configured time; a port changing state too often in a window becomes one transition
    "raise flapping" and its link-down signals are held back until it calms down.
``dedupe``
    A transition becomes a change of an alarm: a new alarm, a repeat of an active one (last
    seen, count), or a clear. One active alarm per key.
``correlate``
    With the topology's impact index (topology.impact), the active device, port and link
    alarms are grouped under root causes: a device-down alarm becomes the root of its
    neighbours' link-downs, both ends of a cut link are symptoms of one inferred link alarm.
    A device that answered its last poll is never inferred isolated, and a link seen down
    at one end only is that port's alarm, not "down at both ends".
``assess``
    Every circuit's service state (up, down, degraded, unknown, maintenance) by the one rule
    of alarms.service_state, taken once it holds, stored as history, and the circuits'
    service alarms that follow it, rooted at the causes above (alarms.assess).
``suppress``
    Alarms on objects inside an active maintenance window (and the symptoms of such alarms)
    are marked suppressed: shown but not escalated.

Which ports raise alarms: a port alarm needs the port *monitored* (a circuit end, a link
end, or a port marked `monitor: true` in the inventory) and administratively up. Other
ports are polled and sampled silently: an unused access port or a VLAN interface that is
down is no fault, and neither is a port an operator shut.

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
from typing import Any, Protocol

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
from alarms.rules import AlarmSettings
from alarms.texts import TEXT, english, text
from alarms.thresholds import BREACHED, KIND_PREFIX, is_threshold_kind, summary_of
from collectors.model import Observation
from topology.graph import DEVICE, LINK, PORT, Element
from topology.impact import ImpactIndex, root_causes

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


class PortContext(Protocol):
    """What observe needs to know of a port besides the observation: whether it is
    monitored (a circuit end, a link end, or marked `monitor: true`: only those raise port
    alarms) and its latest admin and oper status."""

    def monitored(self, port_id: int) -> bool: ...

    def admin(self, port_id: int) -> str | None: ...

    def oper(self, port_id: int) -> str | None: ...


# reachability verdicts (collectors.reachability) -> the device alarm they raise
_DEVICE_SIGNALS = {  # (type, severity, the summary's code in alarms.texts)
    "unreachable": (AlarmType.DEVICE_UNREACHABLE, Severity.CRITICAL, "device_unreachable"),
    "snmp-unresponsive": (AlarmType.SNMP_UNRESPONSIVE, Severity.MAJOR, "snmp_unresponsive"),
    "auth-failed": (AlarmType.SNMP_UNRESPONSIVE, Severity.MAJOR, "snmp_auth_failed"),
    "error": (AlarmType.POLL_FAILED, Severity.MAJOR, "snmp_unusable"),
}
_DEVICE_TYPES = (AlarmType.DEVICE_UNREACHABLE, AlarmType.SNMP_UNRESPONSIVE,
                 AlarmType.POLL_FAILED)


def observe(observation: Observation, ports: PortContext | None = None) -> list[Signal]:
    """The signals one observation gives (none for a state that is neither fault nor
    recovery, such as a port "testing"). A port raises link-down only when it is monitored
    and its admin status is not down: a port an operator shut is not a fault of the network
    (its circuits still lose service: alarms.service_state). Without `ports` every port is
    monitored and taken as administratively up."""
    o = observation
    source = {"source": o.source, **({"observation_id": o.detail["observation_id"]}
                                     if "observation_id" in o.detail else {})}
    if o.kind == "reachability":
        keys = {kind: AlarmKey(ObjectKind.DEVICE, o.object_id, kind) for kind in _DEVICE_TYPES}
        raised = _DEVICE_SIGNALS.get(o.new)
        signals = [Signal(key, False, o.time, detail=source) for kind, key in keys.items()
                   if raised is None or kind is not raised[0]]
        if raised is not None:
            kind, severity, code = raised
            reason = o.detail.get("reason")
            summary = text(code)
            detail = {**source, "reason": reason, "status": o.new, TEXT: summary,
                      **({"hint": o.detail["hint"]} if o.detail.get("hint") else {})}
            signals.append(Signal(keys[kind], True, o.time, severity, english(summary),
                                  detail))
        return signals
    if o.kind in ("oper_status", "admin_status"):
        if ports is not None and not ports.monitored(o.object_id):
            return []
        key = AlarmKey(ObjectKind.PORT, o.object_id, AlarmType.LINK_DOWN)
        if o.kind == "oper_status":
            oper = o.new
            admin = ports.admin(o.object_id) if ports is not None else None
        else:
            oper = ports.oper(o.object_id) if ports is not None else None
            admin = o.new
        if oper in PORT_DOWN_STATES and admin != "down":
            summary = text("port_oper", oper=oper)
            return [Signal(key, True, o.time, Severity.MAJOR, english(summary),
                           {**source, TEXT: summary})]
        if oper == "up" or (oper in PORT_DOWN_STATES and admin == "down"):
            detail = {**source, **({"reason": "shut down by an administrator"}
                                   if admin == "down" else {})}
            return [Signal(key, False, o.time, detail=detail)]
        return []
    if o.kind == "port_match":
        key = AlarmKey(ObjectKind.PORT, o.object_id, AlarmType.CONFIG_MISMATCH)
        if o.new == "ok":
            return [Signal(key, False, o.time, detail=source)]
        return [Signal(key, True, o.time, Severity.MINOR,
                       str(o.detail.get("message") or f"inventory port {o.new}"),
                       {**source, "problem": o.new})]
    if is_threshold_kind(o.kind):
        return _threshold_signals(o, ports, source)
    if o.kind == "agent_restart":
        key = AlarmKey(ObjectKind.DEVICE, o.object_id, AlarmType.TRAP_EVENT, "agent_restart")
        summary = text("agent_restart")
        return [Signal(key, True, o.time, Severity.WARNING, english(summary),
                       {**source, **o.detail, TEXT: summary}, event=True)]
    return []


def _threshold_signals(o: Observation, ports: PortContext | None,
                       source: dict[str, Any]) -> list[Signal]:
    """A threshold crossing (alarms.thresholds: the collector judged the rule's levels, with
    hysteresis) as the condition of a threshold alarm: "breached" holds it, "ok" ends it.
    Port thresholds raise only on monitored ports, like every port alarm."""
    detail = {**o.detail, **source}
    object_class = detail.pop("object_class", "port")
    kind = ObjectKind.DEVICE if object_class == "device" else (
        ObjectKind.CIRCUIT if object_class == "circuit" else ObjectKind.PORT)
    if kind is ObjectKind.PORT and ports is not None and not ports.monitored(o.object_id):
        return []
    key = AlarmKey(kind, o.object_id, AlarmType.THRESHOLD, o.kind.removeprefix(KIND_PREFIX))
    if o.new != BREACHED:
        return [Signal(key, False, o.time, detail=detail)]
    try:
        severity, summary = Severity.parse(str(detail.get("severity"))), summary_of(detail)
    except (KeyError, TypeError, ValueError):  # not a crossing's detail: the plain words
        severity, summary = Severity.MAJOR, f"{key.qualifier} breached"
    return [Signal(key, True, o.time, severity, summary, detail)]


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
    if (condition.since is not None and signal.active != condition.wanted
            and key not in state.flapping):
        # a pending change that had held long enough before this signal counted, whenever
        # it is processed (a batch replayed late holds the down and the up of one outage)
        out += _confirm_if_due(state, key, condition, settings, signal.time)
        condition = state.conditions.setdefault(key, condition)
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
    summary = text("flapping", changes=len(history), window_s=f"{settings.flap_window_s:g}")
    out = [Transition(flapping_key(key), True, signal.time, Severity.MINOR, english(summary),
                      {"changes": len(history), TEXT: summary})]
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
    return clear(active, alarm, t.time, text("condition_gone"))


def clear(active: dict[AlarmKey, Alarm], alarm: Alarm, time: datetime,
          comment: str | dict[str, Any], actor: str = PIPELINE_ACTOR) -> AlarmChange:
    """Clear an active alarm and take it out of `active`. `comment`: a person's words, or
    the pipeline's as an alarms.texts text."""
    alarm.state = AlarmState.CLEARED
    alarm.cleared_at = time
    active.pop(alarm.key, None)
    if isinstance(comment, dict):
        return AlarmChange(alarm, "cleared", (entry(time, "cleared", english(comment), actor,
                                                    **{TEXT: comment}),))
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
               by_element: Mapping[Element, AlarmKey], index: ImpactIndex) -> AlarmKey:
    if cause in by_element:
        return by_element[cause]
    if cause.kind == DEVICE:
        return AlarmKey(ObjectKind.DEVICE, int(cause.id), AlarmType.DEVICE_ISOLATED)
    if cause.kind == LINK:
        ends = [by_element[Element(PORT, port)] for port in index.link_ports.get(cause.id, ())
                if Element(PORT, port) in by_element]
        if isinstance(cause.id, int) and len(ends) == 2:
            return AlarmKey(ObjectKind.LINK, cause.id, AlarmType.LINK_DOWN)
        if ends:  # one end seen down: that port's alarm is the cause, as it was seen
            return min(ends, key=str)
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


def correlate(active: dict[AlarmKey, Alarm], index: ImpactIndex | None,
              now: datetime, cleared: Mapping[AlarmKey, datetime] | None = None,
              pending: dict[AlarmKey, datetime] | None = None, infer_after_s: float = 0.0,
              reachable: Callable[[int], bool] = lambda _device: False) -> list[AlarmChange]:
    """Group the active device, port and link alarms under root causes, raising and
    clearing the inferred ones (see the module docstring); return the changes, clears of
    inferred causes last. `cleared`: the alarms cleared just before, with their times (an
    inferred cause ends when the last of its symptoms did). Service alarms are the assess
    stage's (alarms.assess): they are left alone here.

    An inferred cause (a device all of whose neighbours lost it, a link down at both ends)
    is raised only once the inference has held for `infer_after_s`: symptoms arrive one by
    one (a trap from each neighbour, then the poll that finds the device silent), and the
    picture half-way would otherwise raise and clear causes nobody needs to see. `pending`
    keeps, between calls, since when each inference has held; until then its symptoms stand
    alone. A device `reachable` says answered its last poll is never inferred isolated: the
    faults around it are its links'. A link is inferred down only when both its ends are
    seen down; with one end seen, that port's own alarm is the cause, and says so."""
    cleared = cleared or {}
    pending = {} if pending is None else pending
    waiting: set[AlarmKey] = set()
    latest_clear = min(max(cleared.values()), now) if cleared else now
    by_element = {e: k for k in active if (e := element_of(k)) is not None}
    wanted_root: dict[AlarmKey, AlarmKey] = {}
    wanted_derived: dict[AlarmKey, tuple[Severity, str]] = {}
    began: dict[AlarmKey, datetime] = {}
    if index is not None and by_element:
        excluded = frozenset(
            Element(DEVICE, device) for device in index.device_ports
            if Element(DEVICE, device) not in by_element and reachable(device))
        found = root_causes(index, by_element, excluded=excluded)
        for cause in sorted(found.causes, key=str):
            explained = found.explains[cause]
            cause_key = _cause_key(cause, explained, by_element, index)
            if is_inferred(cause_key):
                if cause_key not in active:
                    since = pending.setdefault(cause_key, now)
                    if (now - since).total_seconds() < infer_after_s:
                        waiting.add(cause_key)
                        continue
                wanted_derived[cause_key] = _DERIVED[cause_key.type]
                # it began when the last of the symptoms it stands for was seen, not when
                # this step ran (a replay after an outage runs much later)
                began[cause_key] = max((active[by_element[s]].first_seen for s in explained
                                        if s in by_element), default=now)
            for symptom in explained:
                key = by_element.get(symptom)
                if key is not None and key != cause_key:
                    wanted_root[key] = cause_key
    for key in list(pending):
        if key not in waiting:
            del pending[key]
    changes: list[AlarmChange] = []
    clears_last: list[AlarmChange] = []
    for key, alarm in list(active.items()):
        if is_inferred(key) and key not in wanted_derived:
            clears_last.append(clear(active, alarm, max(latest_clear, alarm.first_seen),
                                     "no longer inferred"))
    for key, (severity, summary) in wanted_derived.items():
        if key not in active:
            at = min(began.get(key, now), now)
            alarm = active[key] = Alarm(key, severity, at, at, summary)
            changes.append(AlarmChange(alarm, "raised", (entry(at, "raised", summary,
                                                               inferred=True),)))
    for key, alarm in active.items():
        if key.type is not AlarmType.SERVICE_DOWN:
            changes += reroot(alarm, wanted_root.get(key), now)
    return changes + clears_last


def reroot(alarm: Alarm, root: AlarmKey | None, now: datetime) -> list[AlarmChange]:
    """Make `root` the alarm's root cause (None: it stands alone), with a timeline entry;
    nothing when it already is."""
    if root == alarm.root_cause:
        return []
    alarm.root_cause = root
    note = text("symptom_of", root=str(root)) if root else text("no_longer_symptom")
    return [AlarmChange(alarm, "updated", (entry(
        now, "rooted" if root else "unrooted", english(note),
        root_cause=str(root) if root else None, **{TEXT: note}),))]


# --- suppress ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ScopeIndex:
    """What maintenance scope needs to know of the inventory: a port's device, a device's
    and a circuit's customer, a link's ports, and the devices and ports a circuit runs over
    (its ends' and its path's: `circuit_objects`, as (kind, id) pairs)."""

    port_device: Mapping[int, int] = field(default_factory=dict)
    device_customer: Mapping[int, int | None] = field(default_factory=dict)
    circuit_customer: Mapping[int, int] = field(default_factory=dict)
    link_ports: Mapping[Any, tuple[int, int]] = field(default_factory=dict)
    circuit_objects: Mapping[int, frozenset[tuple[str, int]]] = field(default_factory=dict)


def covering(windows: Iterable[MaintenanceWindow], key: AlarmKey, scope: ScopeIndex,
             now: datetime) -> frozenset[int]:
    """Ids of the windows active at `now` whose scope covers the alarm's object: a device
    covers its ports (and a link touching them), a customer its circuits and the devices at
    its sites, and a device or port covers the circuits that run over it."""
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
        objects.update(scope.circuit_objects.get(key.object_id, ()))
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
            note = (text("in_maintenance", windows=", ".join(map(str, sorted(wanted[key]))))
                    if wanted[key] else text("maintenance_over"))
            changes.append(AlarmChange(alarm, "updated", (entry(
                now, action, english(note), windows=sorted(wanted[key] or was),
                **{TEXT: note}),)))
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
