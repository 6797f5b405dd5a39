"""The alarm model: what an alarm is, from the first symptom to the last clear.

An *alarm* says that one object is in one abnormal condition: device 12 is unreachable,
port 4711 is link-down, circuit 88 has no service. Its identity is the triple (object kind,
object id, alarm type), the *key*: while an alarm is active, a repeat of the same condition
on the same object updates it (last seen, count) instead of raising another. When the
condition goes away the alarm is *cleared* and stays as history; if the condition comes back,
that is a new *occurrence*: a new alarm, with its own acknowledgement.

Severity follows ITU-T X.733 without "indeterminate": critical (service is down), major
(service is at risk or degraded), minor, warning.

Alarms explain each other. When a P router dies the NOC sees the router stop answering, its
neighbours' ports facing it go link-down, and the circuits through it lose service. One of
them is the *root cause* (the router); the others are its *symptoms* and point at it with
`root_cause`. A root cause carries the circuits and customers it hits; each hit circuit gets
a *service alarm* of its own (type service_down) so the SLA engine can open one outage per
circuit.

An alarm on an object inside an active maintenance window is *suppressed*: shown, but not
escalated (no ticket, no page). An engineer *acknowledges* an alarm ("I am on it"), may take
the acknowledgement back, and may *clear* it by hand with a reason. Every change - raised,
repeated, re-rooted, suppressed, acknowledged, cleared - is an entry of the alarm's
*timeline*, with when, who or what made it (a user key, or "pipeline"), and a comment.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple


class ObjectKind(enum.StrEnum):
    DEVICE = "device"
    PORT = "port"
    LINK = "link"
    CIRCUIT = "circuit"


class AlarmType(enum.StrEnum):
    DEVICE_UNREACHABLE = "device_unreachable"  # proven down: no SNMP and no ICMP answer
    SNMP_UNRESPONSIVE = "snmp_unresponsive"  # SNMP fails, the device answers: not down
    DEVICE_ISOLATED = "device_isolated"  # its neighbours all lost it (inferred)
    POLL_FAILED = "poll_failed"  # answers, but unusably (auth-failed, error)
    LINK_DOWN = "link_down"  # a port's ifOperStatus is down, or a link (inferred)
    FLAPPING = "flapping"  # a port changed state too often in a window
    THRESHOLD = "threshold"  # a metric crossed a configured threshold
    TRAP_EVENT = "trap_event"  # an event with no clear of its own (agent restart)
    SERVICE_DOWN = "service_down"  # a circuit out of service (alarms.service_state)
    CONFIG_MISMATCH = "config_mismatch"  # an inventory port the device does not match


class Severity(enum.IntEnum):
    """Higher is worse, so max() gives the worst."""

    WARNING = 1
    MINOR = 2
    MAJOR = 3
    CRITICAL = 4

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.upper()]
        except KeyError:
            raise ValueError(f"severity must be one of {', '.join(s.name.lower() for s in cls)}"
                             ) from None


class AlarmState(enum.StrEnum):
    ACTIVE = "active"
    CLEARED = "cleared"


PIPELINE_ACTOR = "pipeline"


class AlarmKey(NamedTuple):
    """What makes an alarm the same alarm: one active alarm per key."""

    kind: ObjectKind
    object_id: int
    type: AlarmType
    # a threshold alarm's metric, a trap event's name: "" for the other types
    qualifier: str = ""

    def __str__(self) -> str:
        suffix = f"/{self.qualifier}" if self.qualifier else ""
        return f"{self.type}@{self.kind}:{self.object_id}{suffix}"


@dataclass(frozen=True)
class TimelineEntry:
    """One change of an alarm: `action` is raised, repeated, rooted, unrooted, impact,
    suppressed, unsuppressed, acknowledged, unacknowledged, cleared."""

    time: datetime
    action: str
    actor: str
    comment: str | None = None  # the internal note (staff only), or the pipeline's
    detail: dict[str, Any] = field(default_factory=dict)
    customer_note: str | None = None  # what a person chose to tell the customers


@dataclass
class Alarm:
    """One occurrence of one condition on one object (see the module docstring).

    `id` is None until the alarm is stored. `root_cause` is the key of the alarm this one is a
    symptom of (None: it is a root cause, or stands alone); `root_cause_id` its stored id.
    `impacted_circuits` / `impacted_customers` are object ids. `suppressed_by` holds the ids
    of the maintenance windows the object is in."""

    key: AlarmKey
    severity: Severity
    first_seen: datetime
    last_seen: datetime
    summary: str = ""
    state: AlarmState = AlarmState.ACTIVE
    count: int = 1
    cleared_at: datetime | None = None
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    ack_comment: str | None = None  # the acknowledgement's internal note (staff only)
    root_cause: AlarmKey | None = None
    root_cause_id: int | None = None
    impacted_circuits: frozenset[int] = frozenset()
    impacted_customers: frozenset[int] = frozenset()
    suppressed_by: frozenset[int] = frozenset()
    detail: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
    timeline: list[TimelineEntry] = field(default_factory=list)
    ack_customer_note: str | None = None  # the acknowledgement's note for the customers

    @property
    def active(self) -> bool:
        return self.state is AlarmState.ACTIVE

    @property
    def suppressed(self) -> bool:
        return bool(self.suppressed_by)

    @property
    def acknowledged(self) -> bool:
        # by when as well as by whom: a customer's copy of an alarm has no acknowledger
        # (portal/alarm_access.py)
        return self.acknowledged_by is not None or self.acknowledged_at is not None


@dataclass(frozen=True)
class AlarmChange:
    """What the pipeline did to one alarm in one step, for the publish stage: `event` is
    "raised", "updated" or "cleared" (the event topic's suffix), `entries` the timeline
    entries the step added."""

    alarm: Alarm
    event: str
    entries: tuple[TimelineEntry, ...]


@dataclass(frozen=True)
class ScopeItem:
    """One object a maintenance window covers: kind is device, port, circuit or customer."""

    kind: str
    object_id: int
    key: str = ""


SCOPE_KINDS = ("device", "port", "circuit", "customer")


@dataclass(frozen=True)
class MaintenanceWindow:
    """Planned work: alarms on objects in `scope` between `starts_at` and `ends_at` are
    suppressed, and the SLA engine excludes the time. Past windows are immutable history."""

    id: int
    scope: tuple[ScopeItem, ...]
    starts_at: datetime
    ends_at: datetime
    reason: str
    declared_by: str
    declared_at: datetime | None = None
    ended_by: str | None = None
    customer_note: str | None = None  # `reason` is the internal note (staff only)

    def active_at(self, when: datetime) -> bool:
        return self.starts_at <= when < self.ends_at
