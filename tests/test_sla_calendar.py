"""Service calendars (sla/calendar.py): business seconds and deadlines, exact to the second.

Every expected value is worked out by hand in the comments, from the calendar's hours and the
wall clock, never copied from the code's output. Times are written in the calendar's local
time and converted to UTC in the comments where a result is UTC.

The bronze-like calendar used here: Asia/Shanghai (UTC+8, no daylight saving), Monday to
Friday 08:30-18:00 (9.5 h = 34,200 s a day), Saturday 09:00-12:00 (3 h).
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from sla.calendar import (
    ALWAYS,
    Calendar,
    add_business_seconds,
    business_seconds,
    calendar_of,
    is_open,
    next_open,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
H = 3600

WEEKDAYS_0830_1800 = tuple((day, 8 * 60 + 30, 18 * 60) for day in range(5))
SATURDAY_0900_1200 = ((5, 9 * 60, 12 * 60),)

# The official 2025 National Day schedule (国务院办公厅 notice, as chinesecalendar 1.11.0 has
# it): October 1 to 8 off, Sunday September 28 and Saturday October 11 worked instead.
GOLDEN_WEEK_2025 = frozenset(date(2025, 10, day) for day in range(1, 9))
MAKE_UP_2025 = frozenset({date(2025, 9, 28), date(2025, 10, 11)})


def bronze(holidays: frozenset[date] = frozenset(),
           working_dates: frozenset[date] = frozenset()) -> Calendar:
    return Calendar("Asia/Shanghai", WEEKDAYS_0830_1800 + SATURDAY_0900_1200,
                    holidays, working_dates)


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- 24x7 ------------------------------------------------------------------------------------


def test_24x7_counts_real_seconds():
    start = utc(2025, 6, 1, 10, 0, 0)
    # around the clock, a business second is a second: 3 days and 90 s later
    assert add_business_seconds(ALWAYS, start, 3 * 86400 + 90) == utc(2025, 6, 4, 10, 1, 30)
    assert business_seconds(ALWAYS, start, utc(2025, 6, 4, 10, 1, 30)) == 3 * 86400 + 90
    assert business_seconds(ALWAYS, utc(2025, 6, 4), start) == 0  # end before start
    assert is_open(ALWAYS, start) and next_open(ALWAYS, start) == start
    # a start given in Shanghai time is the same instant: 18:00+08 is 10:00Z
    assert add_business_seconds(ALWAYS, sh(2025, 6, 1, 18), 60) == utc(2025, 6, 1, 10, 1)


def test_24x7_in_berlin_is_23_hours_on_the_spring_forward_day_and_25_in_autumn():
    always_berlin = Calendar("Europe/Berlin")
    # 2025-03-30: 02:00 CET jumps to 03:00 CEST, the local day lasts 23 h
    assert business_seconds(always_berlin, datetime(2025, 3, 30, tzinfo=BERLIN),
                            datetime(2025, 3, 31, tzinfo=BERLIN)) == 23 * H
    # 2025-10-26: 03:00 CEST falls back to 02:00 CET, the local day lasts 25 h
    assert business_seconds(always_berlin, datetime(2025, 10, 26, tzinfo=BERLIN),
                            datetime(2025, 10, 27, tzinfo=BERLIN)) == 25 * H


def test_24x7_with_a_holiday_skips_the_whole_local_day():
    calendar = Calendar("Europe/Berlin", holidays=frozenset({date(2025, 12, 25)}))
    # from 24 Dec 12:00 CET: 12 h left of the 24th, the 25th closed, then 1 h on the 26th:
    # 26 Dec 01:00 CET = 26 Dec 00:00Z
    start = datetime(2025, 12, 24, 12, tzinfo=BERLIN)
    assert add_business_seconds(calendar, start, 13 * H) == utc(2025, 12, 26, 0, 0)
    assert not is_open(calendar, datetime(2025, 12, 25, 23, 59, tzinfo=BERLIN))
    # 24 Dec 00:00 to 27 Dec 00:00 local: the 24th and the 26th, 48 h
    assert business_seconds(calendar, datetime(2025, 12, 24, tzinfo=BERLIN),
                            datetime(2025, 12, 27, tzinfo=BERLIN)) == 48 * H


# --- business hours ------------------------------------------------------------------------


def test_golden_week_with_its_make_up_working_days():
    calendar = bronze(GOLDEN_WEEK_2025, MAKE_UP_2025)
    # 72 business hours (a P3 resolution) from Friday 26 Sep 16:00:
    #   Fri 26 Sep 16:00-18:00            2 h    (70 left)
    #   Sat 27 Sep 09:00-12:00            3 h    (67 left, an ordinary Saturday)
    #   Sun 28 Sep, make-up day: Monday's 08:30-18:00, 9.5 h (57.5 left)
    #   Mon 29 Sep, Tue 30 Sep         2 x 9.5 h (38.5 left)
    #   Wed 1 Oct .. Wed 8 Oct: holidays, including Saturday 4 Oct's hours
    #   Thu 9 Oct, Fri 10 Oct          2 x 9.5 h (19.5 left)
    #   Sat 11 Oct, make-up day: Monday's hours, 9.5 h not 3 h (10 left)
    #   Sun 12 Oct closed; Mon 13 Oct 9.5 h (0.5 left)
    #   Tue 14 Oct 08:30 + 0:30 = 09:00 CST = 01:00Z
    start = sh(2025, 9, 26, 16, 0)
    assert add_business_seconds(calendar, start, 72 * H) == utc(2025, 10, 14, 1, 0)
    assert business_seconds(calendar, start, sh(2025, 10, 14, 9, 0)) == 72 * H
    # the holiday Saturday is closed although Saturdays have hours
    assert not is_open(calendar, sh(2025, 10, 4, 10, 0))
    # the make-up Saturday runs until 18:00 like a Monday, a plain Saturday closes at 12:00
    assert is_open(calendar, sh(2025, 10, 11, 17, 59, 59))
    assert not is_open(calendar, sh(2025, 10, 18, 12, 0, 0))
    # the make-up Sunday opens at 08:30 sharp
    assert not is_open(calendar, sh(2025, 9, 28, 8, 29, 59))
    assert is_open(calendar, sh(2025, 9, 28, 8, 30, 0))
    # from the last working hour before the break, the next opening is Thursday 9 Oct
    # 08:30 CST = 00:30Z
    assert next_open(calendar, sh(2025, 9, 30, 18, 0)) == utc(2025, 10, 9, 0, 30)


def test_make_up_day_uses_the_first_weekday_with_hours():
    # a calendar open Tuesday to Thursday 10:00-16:00 and Tuesday also 17:00-19:00: a working
    # date takes Tuesday's periods (Monday has none): 6 h + 2 h = 8 h on that Sunday
    calendar = Calendar("Asia/Shanghai",
                        ((1, 600, 960), (1, 1020, 1140), (2, 600, 960), (3, 600, 960)),
                        working_dates=frozenset({date(2025, 9, 28)}))
    assert business_seconds(calendar, sh(2025, 9, 28), sh(2025, 9, 29)) == 8 * H
    assert is_open(calendar, sh(2025, 9, 28, 18, 0))
    assert not is_open(calendar, sh(2025, 9, 28, 16, 30))


def test_holiday_on_a_weekday_with_hours():
    calendar = bronze(frozenset({date(2025, 5, 1)}))  # Thursday
    assert not is_open(calendar, sh(2025, 5, 1, 10, 0))
    # Wed 30 Apr 17:00 + 2 h: 1 h on Wednesday, Thursday closed, Fri 2 May 08:30 + 1 h =
    # 09:30 CST = 01:30Z
    assert add_business_seconds(calendar, sh(2025, 4, 30, 17), 2 * H) == utc(2025, 5, 2, 1, 30)
    # the whole of Thursday counts nothing: Wed 18:00 to Fri 08:30 is 0
    assert business_seconds(calendar, sh(2025, 4, 30, 18), sh(2025, 5, 2, 8, 30)) == 0


def test_opened_outside_business_hours_starts_at_the_next_opening():
    calendar = bronze()
    saturday_afternoon = sh(2025, 11, 15, 14, 0)  # Saturday closes at 12:00, Sunday closed
    assert not is_open(calendar, saturday_afternoon)
    # the next opening is Monday 17 Nov 08:30 CST = 00:30Z
    assert next_open(calendar, saturday_afternoon) == utc(2025, 11, 17, 0, 30)
    # 60 minutes from there: Monday 09:30 CST = 01:30Z
    assert add_business_seconds(calendar, saturday_afternoon, 60 * 60) == utc(2025, 11, 17, 1, 30)
    # zero seconds: the next opening itself, and an open instant is its own next opening
    assert add_business_seconds(calendar, saturday_afternoon, 0) == utc(2025, 11, 17, 0, 30)
    assert next_open(calendar, sh(2025, 11, 17, 10, 0)) == utc(2025, 11, 17, 2, 0)


def test_deadline_crossing_a_month_edge_and_a_year_edge():
    calendar = bronze(frozenset({date(2026, 1, 1)}))
    # Fri 31 Oct 17:30 + 60 min: 30 min on Friday, Sat 1 Nov 09:00 + 30 min = 09:30 CST
    # = 01:30Z on 1 November
    assert add_business_seconds(calendar, sh(2025, 10, 31, 17, 30), 60 * 60) \
        == utc(2025, 11, 1, 1, 30)
    # Wed 31 Dec 2025 17:00 + 2 h: 1 h on the 31st, Thu 1 Jan 2026 a holiday, Fri 2 Jan
    # 08:30 + 1 h = 09:30 CST = 01:30Z
    assert add_business_seconds(calendar, sh(2025, 12, 31, 17), 2 * H) == utc(2026, 1, 2, 1, 30)
    assert business_seconds(calendar, sh(2025, 12, 31, 17), sh(2026, 1, 2, 9, 30)) == 2 * H
    # 24x7 across February of a leap year: 28 Feb 2024 12:00Z + 48 h = 1 Mar 12:00Z
    assert add_business_seconds(ALWAYS, utc(2024, 2, 28, 12), 48 * H) == utc(2024, 3, 1, 12)


def test_berlin_business_hours_across_both_dst_changes():
    every_day_0800_1800 = Calendar("Europe/Berlin", tuple((d, 480, 1080) for d in range(7)))
    # spring: Sat 29 Mar 08:00 CET (07:00Z) to Sun 30 Mar 18:00 CEST (16:00Z) is 33 h of
    # wall time but 10 + 10 business hours: the lost hour was at night
    assert business_seconds(every_day_0800_1800, datetime(2025, 3, 29, 8, tzinfo=BERLIN),
                            datetime(2025, 3, 30, 18, tzinfo=BERLIN)) == 20 * H
    # Sat 29 Mar 17:00 CET (16:00Z) + 2 h: 1 h on Saturday, then Sunday 08:00 CEST + 1 h =
    # 09:00 CEST = 07:00Z (one hour earlier in UTC than the day before)
    assert add_business_seconds(every_day_0800_1800, datetime(2025, 3, 29, 17, tzinfo=BERLIN),
                                2 * H) == utc(2025, 3, 30, 7, 0)
    # autumn: Sat 25 Oct 17:00 CEST (15:00Z) + 2 h: 1 h on Saturday, Sunday 08:00 CET + 1 h
    # = 09:00 CET = 08:00Z
    assert add_business_seconds(every_day_0800_1800, datetime(2025, 10, 25, 17, tzinfo=BERLIN),
                                2 * H) == utc(2025, 10, 26, 8, 0)
    # the 25-hour local day still has exactly 10 business hours
    assert business_seconds(every_day_0800_1800, datetime(2025, 10, 26, tzinfo=BERLIN),
                            datetime(2025, 10, 27, tzinfo=BERLIN)) == 10 * H


def test_naive_datetimes_are_refused_naming_the_argument():
    calendar = bronze()
    with pytest.raises(ValueError, match="start must be timezone-aware"):
        business_seconds(calendar, datetime(2025, 1, 1), sh(2025, 1, 2))
    with pytest.raises(ValueError, match="end must be timezone-aware"):
        business_seconds(calendar, sh(2025, 1, 1), datetime(2025, 1, 2))
    with pytest.raises(ValueError, match="at must be timezone-aware"):
        next_open(calendar, datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="both a holiday and a working date"):
        bronze(frozenset({date(2025, 9, 28)}), frozenset({date(2025, 9, 28)}))


def test_calendar_of_reads_the_stored_json():
    spec = {"timezone": "Asia/Shanghai",
            "hours": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:30",
                       "end": "18:00"},
                      {"days": ["sat"], "start": "09:00", "end": "24:00"}],
            "holidays": ["2025-10-01"], "working_dates": ["2025-09-28"],
            "sources": {"2025-10-01": "sla.yaml:90", "2025-09-28": "chinesecalendar 1.11.0"}}
    calendar = calendar_of(spec)
    assert calendar == Calendar(
        "Asia/Shanghai", (*WEEKDAYS_0830_1800, (5, 540, 1440)),
        frozenset({date(2025, 10, 1)}), frozenset({date(2025, 9, 28)}))
    assert calendar.sources[date(2025, 9, 28)] == "chinesecalendar 1.11.0"
    assert calendar_of(dict(spec)) is calendar  # cached per spec
    # a calendar stored before working dates existed still reads
    assert calendar_of({"timezone": "UTC", "hours": [], "holidays": []}) == ALWAYS


# --- properties --------------------------------------------------------------------------------


def reference_business_seconds(calendar: Calendar, start: datetime, end: datetime) -> float:
    """A slow, independent count: every local date from the day before `start` to the day
    after `end`, each open period converted on its own and intersected with [start, end)."""
    zone = ZoneInfo(calendar.timezone)
    first = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    hours = calendar.hours or tuple((d, 0, 1440) for d in range(7))
    monday = min(day for day, _s, _e in hours)  # "the first weekday that has hours"
    total = 0.0
    day = first
    while day <= last:
        if day in calendar.holidays:
            periods = []
        else:
            weekday = monday if day in calendar.working_dates else day.weekday()
            periods = [(s, e) for d, s, e in hours if d == weekday]
        for start_min, end_min in periods:
            opens = datetime(day.year, day.month, day.day, start_min // 60, start_min % 60,
                             tzinfo=zone)
            if end_min == 1440:
                following = day + timedelta(days=1)
                closes = datetime(following.year, following.month, following.day, tzinfo=zone)
            else:
                closes = opens.replace(hour=end_min // 60, minute=end_min % 60)
            # in UTC: Python subtracts two times of one zone as wall times, DST ignored
            low = max(opens, start).astimezone(UTC)
            high = min(closes, end).astimezone(UTC)
            if high > low:
                total += (high - low).total_seconds()
        day += timedelta(days=1)
    return total


CALENDARS = {
    "24x7": ALWAYS,
    "24x7-berlin-holiday": Calendar("Europe/Berlin", holidays=frozenset({date(2025, 3, 30)})),
    "bronze-golden-week": bronze(GOLDEN_WEEK_2025, MAKE_UP_2025),
    "berlin-business": Calendar("Europe/Berlin", tuple((d, 480, 1080) for d in range(5))),
}


@pytest.mark.parametrize("name", CALENDARS)
def test_add_and_business_seconds_are_inverse_on_random_instants(name: str):
    calendar = CALENDARS[name]
    rng = random.Random(20251001)
    year_start = utc(2025, 1, 1)
    for _ in range(400):
        start = year_start + timedelta(microseconds=rng.randrange(365 * 86400 * 10**6))
        seconds = rng.randrange(1, 30 * 86400 * 10**6) / 10**6
        deadline = add_business_seconds(calendar, start, seconds)
        # the deadline is exactly `seconds` of business time away, and lies in the hours
        # (or at the close of the period in which the last second elapsed)
        assert business_seconds(calendar, start, deadline) == seconds
        assert deadline.tzinfo is UTC
        # an open instant `end`: the business time up to it leads back to it
        end = start + timedelta(microseconds=rng.randrange(40 * 86400 * 10**6))
        used = business_seconds(calendar, start, end)
        if is_open(calendar, end) and used > 0:
            assert add_business_seconds(calendar, start, used) == end
        # additivity and agreement with the slow count (to the microsecond)
        middle = start + (end - start) / 3
        assert used == pytest.approx(business_seconds(calendar, start, middle)
                                     + business_seconds(calendar, middle, end), abs=1e-6)
        assert used == pytest.approx(reference_business_seconds(calendar, start, end), abs=1e-6)


def test_the_example_bronze_contract_through_the_store_json():
    from config.inventory.loader import load_inventory
    from keyline.wiring import EXAMPLE_INVENTORY
    from store.inventory import _jsonable

    contract = load_inventory([EXAMPLE_INVENTORY]).sla_contracts["bronze"]
    calendar = calendar_of(_jsonable(contract.calendar))
    # the same 72 business hours as test_golden_week_with_its_make_up_working_days: the
    # file lists 1 to 8 October as holidays and 28 Sep and 11 Oct as working dates
    assert add_business_seconds(calendar, sh(2025, 9, 26, 16, 0), 72 * H) \
        == utc(2025, 10, 14, 1, 0)
    # 2026 comes from chinesecalendar: Saturday 10 Oct 2026 is worked (until 18:00),
    # Monday 5 Oct 2026 is off
    assert is_open(calendar, sh(2026, 10, 10, 17, 0))
    assert not is_open(calendar, sh(2026, 10, 5, 10, 0))
    assert calendar.sources[date(2026, 10, 10)] == "chinesecalendar 1.11.0"


def test_a_deadline_that_elapses_at_a_closing_is_that_closing():
    # Monday 10 Nov 17:00 + 1 h: the last second elapses at 18:00 CST (10:00Z), the close;
    # the deadline is not moved to Tuesday's opening
    assert add_business_seconds(bronze(), sh(2025, 11, 10, 17), H) == utc(2025, 11, 10, 10, 0)
