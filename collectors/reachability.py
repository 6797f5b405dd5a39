"""Is a device down? Proven, not assumed: the verdict on a device's polls.

A poll that gets no answer is evidence, not proof. One lost poll on a busy machine is not an
outage; and a device whose SNMP agent is silent (a wrong community, an ACL, an agent that
speaks only SNMPv1, an agent that crashed) still forwards its customers' traffic. Calling it
*down* would raise a critical alarm on a healthy router and open outages on every circuit
through it. So the collector keeps, per device, a *verdict* that changes only on enough
evidence:

================== ===================================================================
verdict            when
================== ===================================================================
reachable          the last poll was answered (at once: an answer is proof)
unreachable        ``down_after_failures`` polls in a row got no answer AND the device
                   does not answer ICMP echo either: the device is down
snmp-unresponsive  as many polls got no answer, but the device answers ICMP echo (or
                   the host refused the SNMP port, which only a live host does), or ICMP
                   cannot be checked here: the device is up, its SNMP is not usable
auth-failed        an SNMPv3 agent rejected the credential (at once: the agent spoke)
error              the answers were unusable (malformed, error-status, a looping walk)
================== ===================================================================

Before ``down_after_failures`` failures the verdict stays what it was. Each of the last
three carries a *hint* naming the likely causes, in the order an engineer checks them, so the
alarm says what to do rather than only that something is wrong. The circuits of a device
that is not proven down are *unknown* (alarms.service_state), never down.

`judge` is a pure function of the previous verdict, the count of failures in a row, the poll
and the ICMP check; the collection service (collectors.service) keeps the counts, runs the
ICMP check (collectors.icmp) only when a poll got no answer, and turns a changed verdict into
a "reachability" observation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from collectors.icmp import EchoResult
from collectors.model import PollResult, PollStatus

REACHABLE = "reachable"
UNREACHABLE = "unreachable"
SNMP_UNRESPONSIVE = "snmp-unresponsive"
AUTH_FAILED = "auth-failed"
ERROR = "error"
VERDICTS = (REACHABLE, UNREACHABLE, SNMP_UNRESPONSIVE, AUTH_FAILED, ERROR)
# verdicts of a device that is up but whose SNMP cannot be used: its circuits are unknown
SNMP_FAILED = frozenset({SNMP_UNRESPONSIVE, AUTH_FAILED, ERROR})

DEFAULT_DOWN_AFTER_FAILURES = 2

# what the poll reason says when the host answered "port unreachable" (collectors.snmp)
PORT_REFUSED_MARK = "ICMP port unreachable"

SILENT_HINT = ("SNMP does not answer but the device is up: check the community or the "
               "SNMPv3 credential, an ACL or SNMP view on the device that excludes the "
               "poller, the SNMP version the agent speaks, and that the SNMP agent runs")
REFUSED_HINT = ("the device refused the SNMP port: no SNMP agent listens there; check that "
                "the agent runs and the inventory's snmp_port")
AUTH_HINT = ("the agent rejected the credential: check the SNMPv3 user name, the "
             "authentication and privacy protocols and keys, and the security level")
ERROR_HINT = ("the agent answers but its answers cannot be used: see the reason; a software "
              "bug of the agent or a view that hides the interface tables are the usual causes")
NO_ICMP_HINT = ("ICMP echo cannot be checked from this collector, so the device cannot be "
                "proven down: ")


@dataclass(frozen=True)
class Verdict:
    """A device's verdict, why (`reason`: the poll's reason and the ICMP result), what to
    check (`hint`), and the evidence as data (`detail`)."""

    state: str
    reason: str | None = None
    hint: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def judge(previous: str | None, failures_in_row: int, poll: PollResult,
          echo: EchoResult | None, *, down_after_failures: int = DEFAULT_DOWN_AFTER_FAILURES,
          icmp_enabled: bool = True, extra_hint: str | None = None,
          alive_in_row: int | None = None) -> Verdict | None:
    """The device's verdict after `poll`, or None when the evidence is not enough to change
    `previous` (see the module docstring). `failures_in_row` counts this poll; `echo` is the
    ICMP check made after a poll with no answer (None: not made, because ICMP is off or not
    available here, `icmp_enabled` says which); `extra_hint` is a diagnosis found by other
    means (an agent that answers SNMPv1 only); `alive_in_row`, how many failed polls in a
    row were followed by an echo reply (this one included): a device proven down is
    SNMP-unresponsive only once as many as `down_after_failures` say so, since a device
    coming back answers ping a moment before its agent answers a poll."""
    if poll.status is PollStatus.REACHABLE:
        return Verdict(REACHABLE)
    reason = poll.reason
    if poll.status is PollStatus.AUTH_FAILED:
        return Verdict(AUTH_FAILED, reason, AUTH_HINT, {"poll_status": poll.status.value})
    if poll.status is PollStatus.ERROR:
        return Verdict(ERROR, reason, ERROR_HINT, {"poll_status": poll.status.value})
    # no answer
    detail: dict[str, Any] = {"poll_status": poll.status.value, "failures": failures_in_row}
    if reason and PORT_REFUSED_MARK in reason:
        return Verdict(SNMP_UNRESPONSIVE, reason, _hint(REFUSED_HINT, extra_hint),
                       {**detail, "refused": True})
    if failures_in_row < down_after_failures:
        return None
    polls = f"no SNMP answer in {failures_in_row} polls in a row"
    if echo is None:
        if icmp_enabled:  # wanted but impossible: cannot prove down
            return Verdict(SNMP_UNRESPONSIVE, f"{polls}; {reason}",
                           _hint(NO_ICMP_HINT + SILENT_HINT, extra_hint),
                           {**detail, "icmp": "unavailable"})
        return Verdict(UNREACHABLE, f"{polls} (ICMP checks are off); {reason}", None,
                       {**detail, "icmp": "off"})
    detail["icmp"] = {"alive": echo.alive, "sent": echo.sent, "received": echo.received,
                      "rtt_ms": echo.rtt_ms, "error": echo.error}
    if echo.alive:
        if (previous == UNREACHABLE and alive_in_row is not None
                and alive_in_row < down_after_failures):
            return None  # coming back: the next poll will tell
        return Verdict(SNMP_UNRESPONSIVE, f"{polls}, but {echo.describe()}",
                       _hint(SILENT_HINT, extra_hint), detail)
    return Verdict(UNREACHABLE, f"{polls} and {echo.describe()}", None, detail)


def _hint(base: str, extra: str | None) -> str:
    return f"{extra}. {base}" if extra else base
