"""Service calendars: when an SLA clock runs, counted in business seconds.

A contract promises a response or a resolution within so many minutes, but not minutes of
wall time: minutes of its service calendar. The calendar names a time zone and weekly hours
(Monday to Friday 08:30-18:00 local, Saturday 09:00-12:00, or around the clock), minus
holidays. A *business second* is a second of real time that falls inside those hours; a
ticket opened on Friday at 17:30 with 60 business minutes to go is due on Monday at 09:00.
Hours are local wall-clock times, so 08:00-18:00 in Europe/Berlin is ten hours on the day the
clocks change as on any other, while a 24x7 calendar counts real elapsed seconds (23 hours on
the spring-forward day, 25 on the fall-back day). A wall time that does not exist that day
(02:30 on a spring-forward night in Berlin) is read with the offset before the change, so it
falls an hour later (03:30), and one that happens twice (a fall-back night) is the first one
(PEP 495, fold=0).

Holidays close their whole local date, even a weekday with hours. China moves working days
around its public holidays (调休): a Saturday or Sunday next to a Golden Week becomes a working
day to make up for a bridged weekday. A calendar lists such days as `working_dates`; a working
date opens with the hours of the calendar's first working weekday (Monday's hours when Monday
has any, else those of the first weekday that has hours), since the official notice makes it
an ordinary working day, even a Saturday that has shorter hours of its own. A date both a
holiday and a working date is refused by the inventory. Each holiday and working date keeps
where it came from (`sources`: "sla.yaml:87" for a date written in the inventory,
"chinesecalendar 1.11.0" for one filled from that package), for display only.

The arithmetic is exact to the microsecond: instants are integer microseconds since the Unix
epoch, each local year's open intervals are computed once per calendar (as UTC instants, so
daylight-saving changes are in them) together with the business time before each interval,
and a question is then a binary search in that year's table. docs/sla-clocks.md specifies
the clocks built on these functions (sla/clocks.py).
"""

from __future__ import annotations

import json
import zoneinfo
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # as config.inventory.model
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = 1_000_000
_ONE_US = timedelta(microseconds=1)
# A calendar that never opens (every hour a holiday) would make a deadline search endless.
_MAX_YEARS_AHEAD = 200


@dataclass(frozen=True)
class _Year:
    """One local year of a calendar: its open intervals in UTC microseconds, sorted and
    disjoint, and the business microseconds before each interval's start (`before`) and at
    its end (`through`), counted from the year's start."""

    start_us: int  # local midnight of January 1
    starts: list[int]
    ends: list[int]
    before: list[int]
    through: list[int]

    @property
    def total_us(self) -> int:
        return self.through[-1] if self.through else 0

    def position(self, us: int) -> int:
        """Business microseconds of this year before the instant `us`."""
        index = bisect_right(self.starts, us) - 1
        if index < 0:
            return 0
        return self.before[index] + min(us, self.ends[index]) - self.starts[index]

    def instant(self, position: int) -> int:
        """The instant at which `position` (0 < position <= total) business microseconds
        of this year have elapsed."""
        index = bisect_left(self.through, position)
        return self.starts[index] + position - self.before[index]


@dataclass(frozen=True)
class Calendar:
    """When an SLA clock runs. `hours` holds (weekday 0=Monday..6, start minute, end minute)
    in local wall time (end 1440 is midnight); empty means around the clock. `sources` says
    where each holiday and working date came from (display only: not compared)."""

    timezone: str
    hours: tuple[tuple[int, int, int], ...] = ()
    holidays: frozenset[date] = frozenset()
    working_dates: frozenset[date] = frozenset()
    sources: dict[date, str] = field(default_factory=dict, compare=False, hash=False)
    # derived once per calendar (not compared): see _build_year
    _zone: zoneinfo.ZoneInfo = field(init=False, repr=False, compare=False, hash=False)
    _plain: bool = field(init=False, repr=False, compare=False, hash=False)
    _years: dict[int, _Year] = field(init=False, repr=False, compare=False, hash=False)
    _year_starts: dict[int, int] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        both = self.holidays & self.working_dates
        if both:
            raise ValueError(f"{min(both)} is both a holiday and a working date")
        for weekday, start, end in self.hours:
            if not (0 <= weekday <= 6 and 0 <= start < end <= 1440):
                raise ValueError(f"bad service hours ({weekday}, {start}, {end}): weekday 0..6,"
                                 " 0 <= start minute < end minute <= 1440")
        # a frozen dataclass sets its derived fields through object.__setattr__
        object.__setattr__(self, "_zone", zoneinfo.ZoneInfo(self.timezone))
        object.__setattr__(self, "_years", {})
        object.__setattr__(self, "_year_starts", {})
        object.__setattr__(self, "_plain", not self.hours and not self.holidays)

    # --- the tables ------------------------------------------------------------------------

    def _year_start(self, year: int) -> int:
        start = self._year_starts.get(year)
        if start is None:
            start = _micros(datetime(year, 1, 1, tzinfo=self._zone))
            self._year_starts[year] = start
        return start

    def _year_of(self, us: int, guess: int) -> int:
        """The local year holding the instant `us` (`guess` is within a year of it)."""
        year = guess
        while us < self._year_start(year):
            year -= 1
        while us >= self._year_start(year + 1):
            year += 1
        return year

    def _year(self, year: int) -> _Year:
        table = self._years.get(year)
        if table is None:
            table = self._build_year(year)
            self._years[year] = table
        return table

    def _periods_by_weekday(self) -> list[list[tuple[int, int]]]:
        by_day: list[list[tuple[int, int]]] = [[] for _ in WEEKDAYS]
        for weekday, start, end in self.hours or [(d, 0, 1440) for d in range(7)]:
            by_day[weekday].append((start, end))
        return [sorted(periods) for periods in by_day]

    def _build_year(self, year: int) -> _Year:
        zone = self._zone
        by_day = self._periods_by_weekday()
        # a working date opens like "a Monday": the first weekday that has hours
        make_up = next((periods for periods in by_day if periods), [])
        starts: list[int] = []
        ends: list[int] = []
        day = date(year, 1, 1)
        while day.year == year:
            if day in self.holidays:
                periods: list[tuple[int, int]] = []
            elif day in self.working_dates:
                periods = make_up
            else:
                periods = by_day[day.weekday()]
            for start_min, end_min in periods:
                start = _micros(_local(zone, day, start_min))
                end = _micros(_local(zone, day, end_min))
                if end <= start:  # a period inside a skipped hour (spring forward)
                    continue
                if ends and start <= ends[-1]:  # touching or overlapping: one interval
                    ends[-1] = max(ends[-1], end)
                else:
                    starts.append(start)
                    ends.append(end)
            day += timedelta(days=1)
        before: list[int] = []
        through: list[int] = []
        elapsed = 0
        for start, end in zip(starts, ends, strict=True):
            before.append(elapsed)
            elapsed += end - start
            through.append(elapsed)
        return _Year(self._year_start(year), starts, ends, before, through)

    def _locate(self, us: int, guess: int) -> tuple[int, _Year]:
        year = self._year_of(us, guess)
        return year, self._year(year)


def _local(zone: zoneinfo.ZoneInfo, day: date, minute: int) -> datetime:
    if minute == 1440:
        day, minute = day + timedelta(days=1), 0
    return datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=zone)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _ONE_US


def _moment(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _aware(moment: datetime, name: str) -> int:
    if not isinstance(moment, datetime):
        raise ValueError(f"{name} must be a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got the naive {moment.isoformat()}")
    return _micros(moment)


ALWAYS = Calendar("UTC")
"""Around the clock in UTC, without holidays: business seconds are real seconds."""


# --- reading the stored calendar -------------------------------------------------------------


def _minute(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _dates(values: Any) -> frozenset[date]:
    return frozenset(date.fromisoformat(str(value)) for value in values or ())


@lru_cache(maxsize=256)
def _calendar_of_text(text: str) -> Calendar:
    spec = json.loads(text)
    hours = tuple(
        (WEEKDAYS.index(day), _minute(period["start"]), _minute(period["end"]))
        for period in spec.get("hours") or ()
        for day in period["days"]
    )
    sources = {date.fromisoformat(day): str(where)
               for day, where in (spec.get("sources") or {}).items()}
    return Calendar(spec["timezone"], hours, _dates(spec.get("holidays")),
                    _dates(spec.get("working_dates")), sources)


def calendar_of(spec: Mapping[str, Any]) -> Calendar:
    """The calendar of a contract's stored calendar JSON (store/inventory.py writes
    `sla_contracts.calendar` from config.inventory.model.ServiceCalendar): `timezone`,
    `hours` as [{days: [mon..sun], start: "HH:MM", end: "HH:MM"}], `holidays` and
    `working_dates` as ISO dates, `sources` as {ISO date: where}. Cached per spec, so that
    the year tables are built once per contract."""
    return _calendar_of_text(json.dumps(spec, sort_keys=True, default=str))


# --- questions ---------------------------------------------------------------------------------


def is_open(calendar: Calendar, at: datetime) -> bool:
    """Whether the calendar's clock runs at `at`."""
    us = _aware(at, "at")
    if calendar._plain:
        return True
    _year, table = calendar._locate(us, at.year)
    index = bisect_right(table.starts, us) - 1
    return index >= 0 and us < table.ends[index]


def _next_open_us(calendar: Calendar, us: int, guess: int) -> int:
    year, table = calendar._locate(us, guess)
    index = bisect_right(table.starts, us) - 1
    if index >= 0 and us < table.ends[index]:
        return us
    for _ in range(_MAX_YEARS_AHEAD):
        if index + 1 < len(table.starts):
            return table.starts[index + 1]
        year += 1
        table, index = calendar._year(year), -1
    raise ValueError(f"the calendar never opens within {_MAX_YEARS_AHEAD} years")


def next_open(calendar: Calendar, at: datetime) -> datetime:
    """The first instant at or after `at` when the clock runs (`at` itself when open), UTC."""
    us = _aware(at, "at")
    if calendar._plain:
        return at.astimezone(UTC)
    return _moment(_next_open_us(calendar, us, at.year))


def business_microseconds(calendar: Calendar, start: datetime, end: datetime) -> int:
    """Microseconds of [start, end) inside the calendar's hours, exactly; 0 when
    end <= start. The SLA figures add these up (sla/availability.py), so that a month's
    parts sum to the month without rounding."""
    start_us = _aware(start, "start")
    end_us = _aware(end, "end")
    if end_us <= start_us:
        return 0
    if calendar._plain:
        return end_us - start_us
    first, first_table = calendar._locate(start_us, start.year)
    last, last_table = calendar._locate(end_us, end.year)
    if first == last:
        return last_table.position(end_us) - first_table.position(start_us)
    total = first_table.total_us - first_table.position(start_us)
    for year in range(first + 1, last):
        total += calendar._year(year).total_us
    return total + last_table.position(end_us)


def business_seconds(calendar: Calendar, start: datetime, end: datetime) -> float:
    """Seconds of [start, end) inside the calendar's hours; 0 when end <= start."""
    return business_microseconds(calendar, start, end) / _US


def add_business_seconds(calendar: Calendar, start: datetime, seconds: float) -> datetime:
    """The instant (UTC) at which `seconds` business seconds after `start` have elapsed;
    with 0 seconds, the next opening at or after `start`. Exact to the microsecond: for an
    instant `end` inside the hours, add_business_seconds(c, s, business_seconds(c, s, end))
    is `end`."""
    start_us = _aware(start, "start")
    if seconds < 0:
        raise ValueError(f"seconds must not be negative, got {seconds}")
    wanted = round(seconds * _US)
    if calendar._plain:
        return _moment(start_us + wanted)
    if wanted == 0:
        return _moment(_next_open_us(calendar, start_us, start.year))
    year, table = calendar._locate(start_us, start.year)
    position = table.position(start_us) + wanted
    for _ in range(_MAX_YEARS_AHEAD):
        if position <= table.total_us:
            return _moment(table.instant(position))
        position -= table.total_us
        year += 1
        table = calendar._year(year)
    raise ValueError(f"{seconds} business seconds do not elapse within {_MAX_YEARS_AHEAD} years")
