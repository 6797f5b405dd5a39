"""What the collectors hand on: poll targets, poll results, samples and observations.

A *poll target* is one device as the poller needs it: where to send requests, with which
(resolved) credential, and which inventory port each ifIndex is. A *poll result* is what one
poll of one device gave: its status (reachable, unreachable, auth-failed, error with a reason)
and, when reachable, the system group and a reading of every interface, with the *problems* of
the answer: each cell the poller skipped (a value of the wrong type or out of range, a system
object the agent does not serve) is named there, and the rest of the poll stands. Rates are
computed from two successive readings (collectors.counters) and become *samples*: numbers over time,
one per object and metric. A *change of state* (a port's ifOperStatus went from up to down, a
device stopped answering) becomes an *observation*, whether a poll or a trap saw it first:
the alarm pipeline takes observations, not samples, as its input.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import SecretStr

from collectors.counters import InterfaceReading


class PollStatus(enum.StrEnum):
    REACHABLE = "reachable"
    UNREACHABLE = "unreachable"  # no answer within timeout and retries, or ICMP port unreachable
    AUTH_FAILED = "auth-failed"  # wrong community is indistinguishable from unreachable in v2c;
    # in v3 the agent reports unknown user / wrong digest / decryption error
    ERROR = "error"  # an answer, but unusable: error-status, malformed or truncated PDU


@dataclass(frozen=True)
class SnmpCredential:
    """A resolved SNMP credential. Secrets stay SecretStr until the moment they are used."""

    version: str  # "v1", "v2c" or "v3"
    community: SecretStr | None = None
    username: str | None = None
    security_level: str | None = None  # noAuthNoPriv, authNoPriv, authPriv
    auth_protocol: str | None = None  # SHA, SHA256, ...
    auth_key: SecretStr | None = None
    priv_protocol: str | None = None  # AES, AES256, ...
    priv_key: SecretStr | None = None


@dataclass(frozen=True)
class PollTarget:
    """`ports`: the device's inventory ports as declared, (port id, name, if_index or None);
    `ports_by_if_index`: which port each ifIndex is, as the last poll matched them by
    if_index or by name (collectors.port_names), or from the declared if_index values
    before the first poll."""

    device_id: int
    device_key: str
    host: str
    port: int
    credential: SnmpCredential
    poller_group: str
    ports_by_if_index: dict[int, int] = field(default_factory=dict)  # ifIndex -> port object id
    ports: tuple[tuple[int, str, int | None], ...] = ()
    platform: str | None = None  # the inventory's: cisco_ios, huawei_vrp...


@dataclass(frozen=True)
class InterfaceLabel:
    """What an interface calls itself (IF-MIB ifName, ifDescr, ifType), to match it to a port."""

    if_name: str | None = None
    if_descr: str | None = None
    if_type: int | None = None  # IANAifType: 6 ethernetCsmacd, 24 softwareLoopback, ...


@dataclass(frozen=True)
class PollResult:
    target: PollTarget
    status: PollStatus
    reason: str | None  # why, for every status but reachable
    started_at: datetime
    duration_s: float
    sys_uptime_cs: int | None = None  # None also when a reachable agent does not serve it
    sys_name: str | None = None
    sys_descr: str | None = None
    interfaces: dict[int, InterfaceReading] = field(default_factory=dict)  # by ifIndex
    varbind_count: int = 0
    interface_labels: dict[int, InterfaceLabel] = field(default_factory=dict)  # by ifIndex
    # SNMPv3 only: the agent's snmpEngineID as USM discovery found it (the authoritative
    # engine id of its answers, the one it sends traps with); None for v1 and v2c
    engine_id: bytes | None = None
    # what a reachable poll skipped, one line per cell or object, e.g. "ifName.7: INTEGER
    # where OCTET STRING expected; skipped" or "sysUpTime.0: noSuchInstance; ...": the values
    # named here are None in the result, everything else stands
    problems: tuple[str, ...] = ()


class Sample(NamedTuple):
    """One number of one object at one time. A named tuple: about a hundred are made per
    device poll and again when the spool hands them to the store, and the store's writer
    takes (time, object_id, metric, value) rows as they are (store.timeseries.Sample)."""

    time: datetime
    object_id: int
    metric: str  # e.g. "if_in_bps", "if_in_utilization_pct"
    value: float


@dataclass(frozen=True)
class Observation:
    """A change of state of one object, seen by a poll or a trap."""

    time: datetime
    object_id: int
    kind: str  # "oper_status", "admin_status", "reachability", "agent_restart"
    old: str | None  # None when the previous state is unknown (first poll)
    new: str
    source: str  # "poll" or "trap"
    detail: dict[str, Any] = field(default_factory=dict)
