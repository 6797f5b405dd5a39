"""Ticket clocks (sla/clocks.py): pause, resume, stop, reopen, deadlines, breach.

Expected values are derived by hand in the comments. The bronze-like calendar: Asia/Shanghai
(UTC+8), Monday to Friday 08:30-18:00 (9.5 h a day), Saturday 09:00-12:00 (3 h), no holidays
unless a test adds some.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from sla.calendar import ALWAYS, Calendar
from sla.clocks import (
    breached,
    due_at,
    fraction_used,
    pause,
    remaining_s,
    reopen,
    resume,
    start_clock,
    stop,
    used,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
H = 3600
BRONZE = Calendar("Asia/Shanghai",
                  (*((day, 510, 1080) for day in range(5)), (5, 540, 720)))


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_24x7_clock_is_wall_time():
    clock = start_clock(4 * H, utc(2025, 6, 1, 22, 0))
    # around the clock the deadline is 4 h of wall time later, past midnight
    assert due_at(clock, ALWAYS) == utc(2025, 6, 2, 2, 0)
    assert used(clock, ALWAYS, utc(2025, 6, 2, 1, 0)) == 3 * H
    assert remaining_s(clock, ALWAYS, utc(2025, 6, 2, 1, 0)) == 1 * H
    assert fraction_used(clock, ALWAYS, utc(2025, 6, 2, 1, 0)) == 0.75
    assert not breached(clock, ALWAYS, utc(2025, 6, 2, 2, 0))  # at the deadline: not over
    assert breached(clock, ALWAYS, utc(2025, 6, 2, 2, 0, 1))


def test_pause_over_a_night_and_a_weekend_recomputes_the_deadline_on_the_calendar():
    # P2 resolution, 48 business hours, from Thursday 13 Nov 14:00
    clock = start_clock(48 * H, sh(2025, 11, 13, 14, 0))
    # paused at 17:00 the same day: 3 h used
    clock = pause(clock, BRONZE, sh(2025, 11, 13, 17, 0))
    assert clock.used_s == 3 * H
    assert due_at(clock, BRONZE) is None  # a paused clock has no deadline
    # Friday's 9.5 h and Saturday's 3 h pass while paused: nothing is used
    assert used(clock, BRONZE, sh(2025, 11, 16, 12, 0)) == 3 * H
    # resumed Monday 17 Nov 10:00; paused Thu 17:00 -> Mon 10:00 = 3 days 17 h = 89 h wall
    clock = resume(clock, BRONZE, sh(2025, 11, 17, 10, 0))
    assert clock.paused_s == 89 * H
    # 45 h left from Mon 10:00: Mon 8 h (37), Tue 9.5 (27.5), Wed 9.5 (18), Thu 9.5 (8.5),
    # Fri 21 Nov 08:30 + 8.5 h = 17:00 CST = 09:00Z. Adding the 89 h of wall time paused to
    # the original deadline instead would be wrong.
    assert due_at(clock, BRONZE) == utc(2025, 11, 21, 9, 0)
    assert remaining_s(clock, BRONZE, sh(2025, 11, 17, 12, 0)) == 43 * H


def test_reopen_after_resolution_resumes_with_the_used_time():
    # 4 business hours from Monday 10 Nov 09:00; resolved at 11:00: 2 h used, met
    clock = start_clock(4 * H, sh(2025, 11, 10, 9, 0))
    clock = stop(clock, BRONZE, sh(2025, 11, 10, 11, 0))
    assert clock.used_s == 2 * H and clock.stopped_at == sh(2025, 11, 10, 11, 0)
    assert due_at(clock, BRONZE) is None
    assert used(clock, BRONZE, sh(2025, 11, 11, 17, 0)) == 2 * H  # stopped: no time passes
    # reopened Tuesday 10:00: 2 h left, so due Tuesday 12:00 CST = 04:00Z (a restart would
    # say 14:00)
    clock = reopen(clock, BRONZE, sh(2025, 11, 11, 10, 0))
    assert clock.stopped_at is None and clock.used_s == 2 * H
    assert due_at(clock, BRONZE) == utc(2025, 11, 11, 4, 0)
    assert used(clock, BRONZE, sh(2025, 11, 11, 11, 0)) == 3 * H
    # resolved again at 13:00: 2 h + 3 h = 5 h used, over the 4 h target: breached for good
    clock = stop(clock, BRONZE, sh(2025, 11, 11, 13, 0))
    assert clock.used_s == 5 * H
    assert breached(clock, BRONZE, sh(2025, 12, 1, 9, 0))
    assert remaining_s(clock, BRONZE, sh(2025, 12, 1, 9, 0)) == -1 * H


def test_ticket_opened_outside_business_hours():
    # P1 response, 60 minutes, opened Saturday 15 Nov 14:00 (after Saturday's 12:00 close)
    clock = start_clock(60 * 60, sh(2025, 11, 15, 14, 0))
    # nothing is used over the weekend: Sunday is closed
    assert used(clock, BRONZE, sh(2025, 11, 17, 8, 30)) == 0
    # the clock starts at Monday 08:30: due 09:30 CST = 01:30Z
    assert due_at(clock, BRONZE) == utc(2025, 11, 17, 1, 30)
    assert fraction_used(clock, BRONZE, sh(2025, 11, 17, 9, 0)) == 0.5


def test_stop_while_paused_counts_the_pause():
    clock = start_clock(8 * H, sh(2025, 11, 10, 9, 0))
    clock = pause(clock, BRONZE, sh(2025, 11, 10, 10, 0))  # 1 h used
    # resolved while pending the customer, 2 h 30 min of wall time later
    clock = stop(clock, BRONZE, sh(2025, 11, 10, 12, 30))
    assert clock.used_s == 1 * H and clock.paused_s == 2.5 * H
    assert clock.paused_since is None and clock.stopped_at == sh(2025, 11, 10, 12, 30)


def test_berlin_clock_across_the_spring_dst_change():
    weekdays_0800_1800 = Calendar("Europe/Berlin", tuple((d, 480, 1080) for d in range(5)))
    # 4 business hours from Friday 28 Mar 17:00 CET: 1 h on Friday, then Monday 31 Mar
    # (now CEST, UTC+2) 08:00 + 3 h = 11:00 CEST = 09:00Z
    clock = start_clock(4 * H, datetime(2025, 3, 28, 17, tzinfo=BERLIN))
    assert due_at(clock, weekdays_0800_1800) == utc(2025, 3, 31, 9, 0)


def test_impossible_transitions_are_refused():
    running = start_clock(H, utc(2025, 1, 1, 10))
    stopped = stop(running, ALWAYS, utc(2025, 1, 1, 10, 30))
    with pytest.raises(ValueError, match="cannot pause a stopped clock"):
        pause(stopped, ALWAYS, utc(2025, 1, 1, 11))
    with pytest.raises(ValueError, match="cannot resume a running clock"):
        resume(running, ALWAYS, utc(2025, 1, 1, 11))
    with pytest.raises(ValueError, match="cannot stop a stopped clock"):
        stop(stopped, ALWAYS, utc(2025, 1, 1, 11))
    with pytest.raises(ValueError, match="cannot reopen a running clock"):
        reopen(running, ALWAYS, utc(2025, 1, 1, 11))
    with pytest.raises(ValueError, match="before the clock's running_since"):
        pause(running, ALWAYS, utc(2025, 1, 1, 9))
    with pytest.raises(ValueError, match="target_s must be positive"):
        start_clock(0, utc(2025, 1, 1))
    with pytest.raises(ValueError, match="at must be timezone-aware"):
        start_clock(60, datetime(2025, 1, 1))


def test_a_holiday_keeps_a_running_clock_still():
    calendar = Calendar("Asia/Shanghai", BRONZE.hours, holidays=frozenset({date(2025, 5, 1)}))
    # Wed 30 Apr 17:00, 2 h: 1 h on Wednesday, Thursday 1 May a holiday, Friday 2 May
    # 08:30 + 1 h = 09:30 CST = 01:30Z
    clock = start_clock(2 * H, sh(2025, 4, 30, 17, 0))
    assert due_at(clock, calendar) == utc(2025, 5, 2, 1, 30)
    assert used(clock, calendar, sh(2025, 5, 1, 23, 0)) == 1 * H
