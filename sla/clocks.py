"""Ticket clocks: how much of a promised time a ticket has used, and when it falls due.

A ticket has two clocks on its contract's service calendar (sla/calendar.py): the response
clock, stopped by the first acknowledgement, and the resolution clock, stopped when the
ticket is resolved. A clock counts business seconds, not wall time: it runs only inside the
calendar's hours. While the ticket waits for the customer ("pending customer") both clocks
pause; the time paused is kept in wall seconds for display. A ticket reopened after its
resolution resumes its clocks with the time already used: a reopen does not grant a new
target. A deadline is therefore never stored as "opened + N minutes": it is recomputed on
the calendar from the moment the clock last started running and the business time left.

A clock is a frozen value and each transition (start_clock, pause, resume, stop, reopen) a
pure function returning the next value; an impossible transition (pausing a stopped clock,
resuming a running one, going back in time) raises ValueError. docs/sla-clocks.md gives the
rules with worked examples.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sla.calendar import Calendar, add_business_seconds, business_seconds


@dataclass(frozen=True)
class Clock:
    """One SLA clock. `used_s` is the business time consumed before `running_since`;
    `running_since` is None while the clock does not run (paused, stopped, not started)."""

    target_s: int  # business seconds allowed (the contract's minutes * 60)
    used_s: float = 0.0
    running_since: datetime | None = None
    stopped_at: datetime | None = None  # when it was met (acknowledged, resolved)
    paused_since: datetime | None = None
    paused_s: float = 0.0  # wall seconds spent paused

    @property
    def state(self) -> str:
        """"running", "paused", "stopped" or "idle" (never started)."""
        if self.stopped_at is not None:
            return "stopped"
        if self.running_since is not None:
            return "running"
        if self.paused_since is not None:
            return "paused"
        return "idle"


def _not_before(at: datetime, since: datetime | None, what: str) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"at must be timezone-aware, got the naive {at.isoformat()}")
    if since is not None and at < since:
        raise ValueError(f"at {at.isoformat()} is before the clock's {what}"
                         f" {since.isoformat()}")


def _refuse(clock: Clock, action: str) -> ValueError:
    return ValueError(f"cannot {action} a {clock.state} clock")


def start_clock(target_s: int, at: datetime) -> Clock:
    """A clock of `target_s` business seconds running from `at` (outside the calendar's
    hours it counts nothing until the next opening)."""
    if target_s <= 0:
        raise ValueError(f"target_s must be positive, got {target_s}")
    _not_before(at, None, "start")
    return Clock(target_s=target_s, running_since=at)


def pause(clock: Clock, calendar: Calendar, at: datetime) -> Clock:
    """Pause a running clock at `at` (the ticket waits for its customer)."""
    if clock.state != "running":
        raise _refuse(clock, "pause")
    _not_before(at, clock.running_since, "running_since")
    used = clock.used_s + business_seconds(calendar, clock.running_since, at)  # type: ignore[arg-type]
    return replace(clock, used_s=used, running_since=None, paused_since=at)


def resume(clock: Clock, calendar: Calendar, at: datetime) -> Clock:
    """Run a paused clock again from `at`; the pause counts as wall time paused only."""
    if clock.state != "paused":
        raise _refuse(clock, "resume")
    _not_before(at, clock.paused_since, "paused_since")
    paused = clock.paused_s + (at - clock.paused_since).total_seconds()  # type: ignore[operator]
    return replace(clock, paused_s=paused, paused_since=None, running_since=at)


def stop(clock: Clock, calendar: Calendar, at: datetime) -> Clock:
    """The clock's goal was met at `at` (acknowledged, resolved); a paused clock stops from
    its pause, which counts as paused time up to `at`."""
    state = clock.state
    if state == "stopped":
        raise _refuse(clock, "stop")
    if state == "running":
        _not_before(at, clock.running_since, "running_since")
        used = clock.used_s + business_seconds(calendar, clock.running_since, at)  # type: ignore[arg-type]
        return replace(clock, used_s=used, running_since=None, stopped_at=at)
    if state == "paused":
        _not_before(at, clock.paused_since, "paused_since")
        paused = clock.paused_s + (at - clock.paused_since).total_seconds()  # type: ignore[operator]
        return replace(clock, paused_s=paused, paused_since=None, stopped_at=at)
    _not_before(at, None, "start")
    return replace(clock, stopped_at=at)


def reopen(clock: Clock, calendar: Calendar, at: datetime) -> Clock:
    """A stopped clock runs again from `at` with the time it had used: it resumes, it does
    not restart."""
    if clock.state != "stopped":
        raise _refuse(clock, "reopen")
    _not_before(at, clock.stopped_at, "stopped_at")
    return replace(clock, stopped_at=None, running_since=at)


def used(clock: Clock, calendar: Calendar, now: datetime) -> float:
    """Business seconds used up to `now`."""
    if clock.running_since is None:
        return clock.used_s
    return clock.used_s + business_seconds(calendar, clock.running_since, now)


def due_at(clock: Clock, calendar: Calendar) -> datetime | None:
    """When a running clock reaches its target (UTC); None when it is paused, stopped or
    idle: a clock that does not run has no deadline. A clock that resumed already over its
    target is due at once (its next running instant)."""
    if clock.running_since is None:
        return None
    left = max(clock.target_s - clock.used_s, 0.0)
    return add_business_seconds(calendar, clock.running_since, left)


def remaining_s(clock: Clock, calendar: Calendar, now: datetime) -> float:
    """Business seconds left at `now`; negative once over the target."""
    return clock.target_s - used(clock, calendar, now)


def breached(clock: Clock, calendar: Calendar, now: datetime) -> bool:
    """Whether more than the target has been used (a clock stopped late stays breached)."""
    return used(clock, calendar, now) > clock.target_s


def fraction_used(clock: Clock, calendar: Calendar, now: datetime) -> float:
    """Used time over the target (0.5, 0.75, 1.0 are the usual escalation levels)."""
    return used(clock, calendar, now) / clock.target_s
