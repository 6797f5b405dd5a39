"""A circuit's service state: the one answer to "was this circuit in service?".

Every SLA figure stands on this answer, and the NOC's console, the customer's page and the
topology views all show it, so it is decided here, once, by one function (`service_state`),
from facts gathered by the alarm pipeline (alarms.stages.assess); docs/service-state.md
states the rule for people. The states, and what puts a circuit in each, in the order the
rule tries them:

``maintenance``
    An active maintenance window covers the circuit: the circuit itself, its customer, or a
    device or port it runs over (its end ports and devices included). The state it would
    otherwise have is kept beside it (`underlying`): an outage inside a window is recorded,
    and excluded from the SLA, not hidden.
``down``
    Proven out of service: an end device is proven down (no SNMP and no ICMP answer,
    collectors.reachability); an end port is not operationally up (down, lowerLayerDown,
    notPresent), whether it failed or someone shut it (a circuit end shut outside a
    maintenance window is still an outage for its customer; the port raises no fault alarm,
    the circuit does); or the circuit has no working path: its declared path crosses a
    device or link that is down, or its computed path found no route.
``unknown``
    Not proven down, but the evidence that would tell is missing: an end device does not
    answer SNMP (SNMP-unresponsive, rejected credentials, unusable answers) though it is not
    proven down, or has never been polled; an end port was never seen (not matched on the
    device); the declared path does not fit the inventory. Unknown is never counted as down.
``degraded``
    In service, but a threshold on the circuit is breached: an active threshold alarm on the
    circuit or on one of its end ports (utilization, errors, discards, later latency and
    loss), or an end port flapping.
``up``
    Everything above is false.

The verdict carries its cause in words ("port GigabitEthernet0/0/1 down at the Z end
(pe-sh1)"), the same as data for the reader's language (`cause_text`: each reason an
alarms.texts code with its parameters), as a code (`cause_kind`), and as the topology
elements that caused it, which the pipeline turns into the root cause of the circuit's
service alarm. `since` is when the
facts behind the verdict became true (an observation's own time, not when the pipeline ran),
so the state history the SLA engine reads starts each interval when the fault began.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from alarms.texts import english, render_value, state_words, text
from topology.graph import Element


class ServiceState(enum.StrEnum):
    UP = "up"
    DOWN = "down"
    DEGRADED = "degraded"
    UNKNOWN = "unknown"
    MAINTENANCE = "maintenance"


# ifOperStatus values that mean "carries no traffic" (IF-MIB names, collectors.observations)
PORT_NOT_UP = frozenset({"down", "lowerLayerDown", "notPresent"})
# device verdicts (collectors.reachability) that mean "up, but its SNMP says nothing usable"
DEVICE_SILENT = frozenset({"snmp-unresponsive", "auth-failed", "error"})
DEVICE_DOWN = "unreachable"
DEVICE_REACHABLE = "reachable"

# cause_kind values
END_DEVICE_DOWN = "end_device_down"
END_PORT_DOWN = "end_port_down"
END_PORT_SHUT = "end_port_shut"
NO_PATH = "no_path"
PATH_DOWN = "path_down"
END_DEVICE_SILENT = "end_device_silent"
END_DEVICE_UNPOLLED = "end_device_unpolled"
END_PORT_UNSEEN = "end_port_unseen"
PATH_INVALID = "path_invalid"
THRESHOLD = "threshold"
IN_MAINTENANCE = "maintenance"
IN_SERVICE = "in_service"


@dataclass(frozen=True)
class EndFacts:
    """What is known of one end of a circuit: its port and the device the port is on.

    `oper` / `admin`: the port's latest ifOperStatus / ifAdminStatus names (None: never
    seen); `device`: the device's verdict (None: never polled); `since`: when the latest of
    these last changed."""

    side: str  # "A" or "Z"
    port_id: int
    port_name: str
    device_id: int
    device_key: str
    device_role: str
    oper: str | None
    admin: str | None
    device: str | None
    since: datetime | None = None

    def words(self, code: str, **params: Any) -> dict[str, Any]:
        """A reason about this end (an alarms.texts cause code), naming where it is."""
        return text(code, device=self.device_key, side=self.side, role=self.device_role,
                    **params)


@dataclass(frozen=True)
class PathFacts:
    """The circuit's path as the live topology has it. `declared`: provisioned hop by hop;
    `valid`: False for a declared path that does not fit the inventory, or a computed path
    with no route; `down`: the devices and links of the path (with no route: of the path
    it would take with every link up) that are down now, each with words naming it (an
    alarms.texts "cause_path_device_down" or "cause_path_link_down" text);
    `problems`: why a declared path does not fit; `since`: when the newest of `down` went
    down; `changed`: when any device or link of the path last changed (a path back up is
    up since then)."""

    declared: bool
    valid: bool
    down: tuple[tuple[Element, dict[str, Any] | str], ...] = ()
    problems: tuple[str, ...] = ()
    since: datetime | None = None
    changed: datetime | None = None  # when a device or link of the path last changed


@dataclass(frozen=True)
class Degradation:
    """An active condition that degrades the circuit: a threshold alarm or a flapping end
    port, with words (an alarms.texts text, or the alarm's summary as written) and the time
    it began."""

    element: Element
    words: dict[str, Any] | str
    since: datetime


@dataclass(frozen=True)
class CircuitFacts:
    circuit_id: int
    ends: tuple[EndFacts, EndFacts]
    path: PathFacts
    degradations: tuple[Degradation, ...] = ()
    maintenance: frozenset[int] = frozenset()  # ids of the windows covering it now
    maintenance_since: datetime | None = None


@dataclass(frozen=True)
class ServiceVerdict:
    """A circuit's state and why (see the module docstring). `cause` is the English of
    `cause_text`, the reasons as alarms.texts texts that the portal shows in the viewer's
    language (empty for a verdict rebuilt from a stored state written before the store kept
    them: store.circuit_states' `cause_text`)."""

    state: ServiceState
    cause: str
    cause_kind: str
    elements: tuple[Element, ...] = ()
    since: datetime | None = None
    underlying: ServiceState | None = None  # with maintenance: the state it would have
    windows: frozenset[int] = field(default_factory=frozenset)
    cause_text: tuple[dict[str, Any] | str, ...] = ()

    @property
    def cause_param(self) -> list[dict[str, Any] | str] | str:
        """The cause as an alarms.texts parameter: its reasons, else the English alone."""
        return list(self.cause_text) or self.cause

    @property
    def cause_as_text(self) -> dict[str, Any] | None:
        """The whole cause as one alarms.texts text (how store.circuit_states keeps it for the
        portal), None without reasons as data."""
        return text("cause_reasons", reasons=list(self.cause_text)) if self.cause_text else None


def _verdict(state: ServiceState, reasons: Sequence[dict[str, Any] | str], kind: str,
             elements: tuple[Element, ...] = (), since: datetime | None = None,
             **more: Any) -> ServiceVerdict:
    """A verdict whose cause is `reasons` (texts), in English and as data."""
    return ServiceVerdict(state, cause_words(reasons), kind, elements, since,
                          cause_text=tuple(reasons), **more)


def cause_words(reasons: Sequence[dict[str, Any] | str]) -> str:
    """A cause's reasons in English, joined as alarms.texts joins a list."""
    return str(render_value(list(reasons)))


_NEVER = datetime.max.replace(tzinfo=UTC)


def _latest(times: Sequence[datetime | None]) -> datetime | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


def _down(facts: CircuitFacts) -> ServiceVerdict | None:
    """Down, with every reason that holds (not only the first): a second fault behind the
    first (a LAN port flapping behind a dead uplink) adds to the cause and leaves the
    earliest reason, and the time the circuit went down, as they were."""
    reasons: list[tuple[str, dict[str, Any], tuple[Element, ...], datetime | None]] = []
    for end in facts.ends:
        if end.device == DEVICE_DOWN:
            reasons.append((END_DEVICE_DOWN, end.words("cause_device_down"),
                            (Element("device", end.device_id),), end.since))
    # a port's last state counts only while its device answers: a silent device's port
    # states are old news
    for end in facts.ends:
        if end.device != DEVICE_REACHABLE or end.oper not in PORT_NOT_UP:
            continue
        if end.admin == "down":
            reasons.append((END_PORT_SHUT, end.words("cause_port_shut", port=end.port_name),
                            (Element("port", end.port_id),), end.since))
        else:
            reasons.append((END_PORT_DOWN, end.words("cause_port_down", port=end.port_name,
                                                     oper=end.oper),
                            (Element("port", end.port_id),), end.since))
    path = facts.path
    if path.down:
        names = _comma_list([words for _, words in path.down])
        elements = tuple(element for element, _ in path.down)
        if path.declared or path.valid:
            reasons.append((PATH_DOWN, text("cause_path_broken", elements=names), elements,
                            path.since))
        else:
            reasons.append((NO_PATH, text("cause_no_route_via", elements=names), elements,
                            path.since))
    elif not path.declared and not path.valid:
        reasons.append((NO_PATH, text("cause_no_route"), (), path.since))
    if not reasons:
        return None
    # the earliest reason first: it is the one the circuit went down for
    reasons.sort(key=lambda r: (r[3] or _NEVER, english(r[1])))
    elements = tuple(dict.fromkeys(e for _, _, found, _ in reasons for e in found))
    known = [since for *_, since in reasons if since is not None]
    return _verdict(ServiceState.DOWN, [words for _, words, _, _ in reasons], reasons[0][0],
                    elements, min(known) if known else None)


def _comma_list(items: list[dict[str, Any] | str]) -> dict[str, Any]:
    """Texts read as one, joined by ", " (a path's down devices and links)."""
    return text("comma_list", items=items)


def _unknown(facts: CircuitFacts) -> ServiceVerdict | None:
    for end in facts.ends:
        if end.device is None:
            return _verdict(ServiceState.UNKNOWN, [end.words("cause_unpolled")],
                            END_DEVICE_UNPOLLED, (Element("device", end.device_id),), end.since)
        if end.device in DEVICE_SILENT:
            return _verdict(ServiceState.UNKNOWN, [end.words("cause_silent",
                                                             verdict=end.device)],
                            END_DEVICE_SILENT, (Element("device", end.device_id),), end.since)
    for end in facts.ends:
        if end.oper is None:
            return _verdict(ServiceState.UNKNOWN,
                            [end.words("cause_port_unseen", port=end.port_name)],
                            END_PORT_UNSEEN, (Element("port", end.port_id),), end.since)
    if facts.path.declared and not facts.path.valid:
        # topology.paths words each problem (hop numbers and port names) in English
        problems = list(facts.path.problems) or [text("cause_path_unfit")]
        return _verdict(ServiceState.UNKNOWN, [text("cause_path_invalid", problems=problems)],
                        PATH_INVALID, (), facts.path.since)
    return None


def _degraded(facts: CircuitFacts) -> ServiceVerdict | None:
    if not facts.degradations:
        return None
    ordered = sorted(facts.degradations, key=lambda d: (d.since, cause_words([d.words])))
    return _verdict(ServiceState.DEGRADED, [d.words for d in ordered], THRESHOLD,
                    tuple(d.element for d in ordered), ordered[-1].since)


def underlying_state(facts: CircuitFacts) -> ServiceVerdict:
    """The state leaving maintenance aside: down, unknown, degraded or up."""
    for rule in (_down, _unknown, _degraded):
        verdict = rule(facts)
        if verdict is not None:
            return verdict
    since = _latest([facts.ends[0].since, facts.ends[1].since, facts.path.since,
                     facts.path.changed])
    return _verdict(ServiceState.UP, [text("cause_in_service")], IN_SERVICE, (), since)


def service_state(facts: CircuitFacts) -> ServiceVerdict:
    """The circuit's service state (see the module docstring)."""
    verdict = underlying_state(facts)
    if facts.maintenance:
        windows = ", ".join(str(w) for w in sorted(facts.maintenance))
        # in maintenance since the window began, or since what lies beneath changed in it
        since = _latest([facts.maintenance_since, verdict.since])
        return _verdict(ServiceState.MAINTENANCE,
                        [text("cause_maintenance", windows=windows,
                              state=state_words(verdict.state),
                              cause=verdict.cause_param)],
                        IN_MAINTENANCE, verdict.elements, since, underlying=verdict.state,
                        windows=facts.maintenance)
    return verdict
