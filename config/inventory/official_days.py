"""Official days off and make-up working days of a year, from a package, for service calendars.

China publishes each year, usually in November for the next, which days are off around its
public holidays and which weekend days are worked instead (调休). A service calendar may ask
for them (`official_days` in the inventory) rather than list them by hand. Two sources:

- `chinesecalendar`: the days off (weekend days inside a break included) and the make-up
  working days for the years it carries (2004 to 2026 in 1.11.0). A year it does not carry
  is refused, never guessed.
- `holidays` with a country code: public holidays of any country it knows; for China the
  statutory days and the weekdays bridged by 调休 (weekend days inside a break are not
  listed: they are closed anyway when the calendar has no weekend hours) and the make-up
  working days. A Chinese year without make-up days there is one whose dates the package
  only computed by rule (the schedule was not published when it was released): refused.

Every date keeps the package and version it came from ("chinesecalendar 1.11.0").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from importlib import metadata
from typing import Any

CHINESECALENDAR = "chinesecalendar"
HOLIDAYS = "holidays"
INSTALL_HINT = {
    CHINESECALENDAR: "install it (pip install chinesecalendar==1.11.0)",
    HOLIDAYS: "install it (pip install holidays==0.108)",
}


class OfficialDaysError(Exception):
    """A request the source cannot answer: not installed, unknown country, year not carried."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class YearDays:
    """One year's official days off and make-up working days, and where they came from."""

    holidays: frozenset[date]
    working_dates: frozenset[date]
    source: str  # "chinesecalendar 1.11.0"


def source_label(source: str) -> str:
    """The package and its installed version, as shown next to each date it filled."""
    try:
        return f"{source} {metadata.version(source)}"
    except metadata.PackageNotFoundError:
        raise OfficialDaysError(f"the package {source!r} is not installed",
                                INSTALL_HINT.get(source)) from None


def year_days(source: str, year: int, country: str | None = None) -> YearDays:
    """The official days of `year` from `source` (OfficialDaysError when not known)."""
    label = source_label(source)
    if source == CHINESECALENDAR:
        return _from_chinesecalendar(year, label)
    if source == HOLIDAYS:
        return _from_holidays(year, country or "", label)
    raise OfficialDaysError(f"unknown source {source!r}",
                            f"allowed: {CHINESECALENDAR}, {HOLIDAYS}")


def _from_chinesecalendar(year: int, label: str) -> YearDays:
    import chinese_calendar
    from chinese_calendar import constants

    carried = sorted({day.year for day in constants.holidays})
    try:
        chinese_calendar.is_holiday(date(year, 1, 1))
    except NotImplementedError:
        raise OfficialDaysError(
            f"{label} has no official days for {year} (it carries {carried[0]}-{carried[-1]})",
            "list that year's holidays and working_dates by hand, or use a newer package"
        ) from None
    return YearDays(frozenset(day for day in constants.holidays if day.year == year),
                    frozenset(day for day in constants.workdays if day.year == year), label)


def _from_holidays(year: int, country: str, label: str) -> YearDays:
    import holidays

    try:
        days: Any = holidays.country_holidays(country, years=year)
    except NotImplementedError:
        raise OfficialDaysError(f"{label} does not know the country {country!r}",
                                "an ISO 3166 code the package supports, e.g. CN") from None
    start, end = getattr(days, "start_year", None), getattr(days, "end_year", None)
    if (start is not None and year < start) or (end is not None and year > end):
        raise OfficialDaysError(f"{label} has no holidays of {country} for {year}"
                                f" (it carries {start}-{end})")
    make_up = frozenset(day for day in getattr(days, "weekend_workdays", ()) if day.year == year)
    if country.upper() == "CN" and not make_up:
        raise OfficialDaysError(
            f"{label} has no official make-up working days of CN for {year}: its dates for"
            " that year are computed by rule, not the published schedule",
            "list that year's holidays and working_dates by hand, or use a newer package")
    return YearDays(frozenset(days), make_up, label)
