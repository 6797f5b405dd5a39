"""SLA figures (sla/availability.py): availability, outages, credits, exact to the microsecond.

Every expected figure is worked out by hand in the comments, from the calendar and the wall
clock (minutes in the month, the fraction, the percentage), never copied from the code's
output. Times are written in the contract's local time. Units: MIN is a minute and S a
second, both in microseconds, since the figures count integer microseconds; availability is
compared as an exact Fraction of a percent and money as Decimal.

The contracts are those of config/example/sla.yaml:
- gold: 24x7 in Asia/Shanghai (UTC+8, no daylight saving), target 99.99 %, credits 10 %
  below 99.99, 25 % below 99.9, 50 % below 99.5, of 28,000 CNY a month;
- silver: 24x7 in Asia/Shanghai, target 99.9 %, credits 10 % below 99.9, 20 % below 99.5,
  40 % below 99.0, of 12,000 CNY;
- bronze: Asia/Shanghai business hours Monday to Friday 08:30-18:00 (570 min), Saturday
  09:00-12:00 (180 min), the 2025 National Day holidays (1 to 8 October) and make-up
  working days (Sunday 28 September, Saturday 11 October, opening with Monday's hours),
  target 99.5 %, credits 5 % below 99.5, 10 % below 99.0, of 4,500 CNY.
A month's edges are local midnights.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sla.availability import (
    NO_HISTORY,
    CreditStep,
    Exclusion,
    StateSpan,
    Terms,
    TicketFacts,
    circuit_figures,
    credit_for,
    percent_text,
    pieces_of,
    ticket_figures,
    totals,
)
from sla.calendar import Calendar, business_microseconds

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
US = 1
S = 1_000_000 * US
MIN = 60 * S
H = 60 * MIN
ONE_US = timedelta(microseconds=1)

GOLD = Terms("gold", Decimal("99.99"), Calendar("Asia/Shanghai"),
             (CreditStep(Decimal("99.99"), Decimal(10)), CreditStep(Decimal("99.9"), Decimal(25)),
              CreditStep(Decimal("99.5"), Decimal(50))),
             Decimal(28000), "CNY")
SILVER_STEPS = (CreditStep(Decimal("99.9"), Decimal(10)), CreditStep(Decimal("99.5"), Decimal(20)),
                CreditStep(Decimal("99.0"), Decimal(40)))
SILVER = Terms("silver", Decimal("99.9"), Calendar("Asia/Shanghai"), SILVER_STEPS,
               Decimal(12000), "CNY")
# (weekday 0=Monday, start minute, end minute): 08:30 is minute 510, 18:00 is 1080
BRONZE_HOURS = (*((day, 510, 1080) for day in range(5)), (5, 540, 720))
GOLDEN_WEEK_2025 = frozenset(date(2025, 10, day) for day in range(1, 9))
MAKE_UP_2025 = frozenset({date(2025, 9, 28), date(2025, 10, 11)})
BRONZE = Terms("bronze", Decimal("99.5"),
               Calendar("Asia/Shanghai", hours=BRONZE_HOURS, holidays=GOLDEN_WEEK_2025,
                        working_dates=MAKE_UP_2025),
               (CreditStep(Decimal("99.5"), Decimal(5)), CreditStep(Decimal("99.0"), Decimal(10))),
               Decimal(4500), "CNY")
# a Berlin contract, 24x7 on the local calendar (daylight saving in its months)
BERLIN_24X7 = Terms("berlin", Decimal("99.9"), Calendar("Europe/Berlin"),
                    (CreditStep(Decimal("99.9"), Decimal(10)),), Decimal(1000), "EUR")


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def berlin(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=BERLIN, fold=fold)


def history(*changes: tuple[datetime, str], until: datetime | None = None) -> list[StateSpan]:
    """Stored states one after the other: each lasts until the next one's start, the last
    until `until` (None: still in force)."""
    ends = [at for at, _state in changes[1:]] + [until]
    return [StateSpan(at, end, state, cause=f"{state} at {at.isoformat()}")
            for (at, state), end in zip(changes, ends, strict=True)]


def outage_history(start: datetime, end: datetime, state: str = "down") -> list[StateSpan]:
    """Up since well before the month, `state` over [start, end), up again after."""
    return history((sh(2024, 1, 1), "up"), (start, state), (end, "up"))


OCT_2026 = (sh(2026, 10, 1), sh(2026, 11, 1))
NOV_2026 = (sh(2026, 11, 1), sh(2026, 12, 1))
AFTER = sh(2027, 1, 1)  # a report issued after the months measured here
OCT_2026_MIN = 31 * 1440  # 44,640 minutes
NOV_2026_MIN = 30 * 1440  # 43,200 minutes


# --- 1. a 45-minute outage in a 31-day month --------------------------------------------------


def test_45_minute_outage_in_a_31_day_month():
    # October 2026 has 31 days: 31 x 1440 = 44,640 minutes, all scheduled on a 24x7 calendar.
    # Down on Wednesday 14 October from 10:00 to 10:45 local: 45 minutes.
    states = outage_history(sh(2026, 10, 14, 10, 0), sh(2026, 10, 14, 10, 45))
    figures = circuit_figures("c1", GOLD, states, [], *OCT_2026, AFTER)
    assert figures.measured_until == sh(2026, 11, 1)
    assert figures.wall_us == figures.scheduled_us == figures.period_scheduled_us \
        == 44_640 * MIN == 2_678_400_000_000
    assert figures.down_us == figures.downtime_us == 45 * MIN == 2_700_000_000
    assert figures.up_us == (44_640 - 45) * MIN  # 44,595 minutes
    assert figures.excluded_us == 0 and figures.monitoring_gap_us == 0
    # availability = 44,595 / 44,640 = 1 - 45/44,640 = 1 - 1/992 (44,640 = 45 x 992)
    #              = 991/992 = 99.899193548... %
    assert figures.availability_pct == Fraction(100 * 991, 992)
    assert figures.availability_pct == 100 * (1 - Fraction(45, 44_640))
    assert figures.outage_count == 1
    assert figures.longest_outage_us == 45 * MIN
    (outage,) = figures.outages
    assert (outage.start, outage.end) == (sh(2026, 10, 14, 10, 0), sh(2026, 10, 14, 10, 45))
    assert outage.downtime_us == outage.wall_us == 45 * MIN and not outage.open
    assert outage.states == ("down",)
    # 99.899 % is below 99.99 (10 %) and below 99.9 (25 %), not below 99.5: the largest, 25 %
    # of 28,000 CNY = 7,000.00 CNY
    assert figures.credit is not None
    assert figures.credit.step == CreditStep(Decimal("99.9"), Decimal(25))
    assert figures.credit.amount == Decimal("7000.00") and figures.credit.currency == "CNY"
    assert figures.target_met is False
    # error budget: (1 - 99.99/100) x 44,640 min = 0.0001 x 44,640 min = 4.464 min
    # = 267.84 s = 267,840,000 us; left: 267,840,000 - 2,700,000,000 = -2,432,160,000 us
    assert figures.budget_us == 267_840_000
    assert figures.budget_left_us == -2_432_160_000
    # shown as 99.8991 (99.89919... rounded down at four places)
    assert percent_text(figures.availability_pct) == "99.8991"


# --- 2. an outage across a month edge -----------------------------------------------------------


def test_outage_across_a_month_edge_gives_each_month_its_share():
    # down from Saturday 31 October 23:30 to Sunday 1 November 00:45 local: 75 minutes, of
    # which 23:30-24:00 (30 min) is October's and 00:00-00:45 (45 min) November's
    states = outage_history(sh(2026, 10, 31, 23, 30), sh(2026, 11, 1, 0, 45))
    october = circuit_figures("c1", GOLD, states, [], *OCT_2026, AFTER)
    november = circuit_figures("c1", GOLD, states, [], *NOV_2026, AFTER)
    assert october.down_us == 30 * MIN
    assert november.down_us == 45 * MIN
    assert october.down_us + november.down_us == 75 * MIN  # nothing lost, nothing twice
    assert [(o.start, o.end, o.downtime_us) for o in october.outages] == [
        (sh(2026, 10, 31, 23, 30), sh(2026, 11, 1), 30 * MIN)]
    assert [(o.start, o.end, o.downtime_us) for o in november.outages] == [
        (sh(2026, 11, 1), sh(2026, 11, 1, 0, 45), 45 * MIN)]
    assert not november.outages[0].open  # it ended at 00:45, long before the report
    # October: 1 - 30/44,640 = 1 - 1/1,488 = 1,487/1,488 = 99.93279... %: below 99.99 only,
    # 10 % of 28,000 = 2,800.00 CNY
    assert october.availability_pct == Fraction(100 * 1487, 1488)
    assert october.credit is not None and october.credit.amount == Decimal("2800.00")
    # November has 30 days = 43,200 min: 1 - 45/43,200 = 1 - 1/960 = 959/960 = 99.89583... %:
    # below 99.9, 25 % = 7,000.00 CNY
    assert november.scheduled_us == NOV_2026_MIN * MIN
    assert november.availability_pct == Fraction(100 * 959, 960)
    assert november.credit is not None and november.credit.amount == Decimal("7000.00")


# --- 3. maintenance, customer-caused time, precedence ---------------------------------------


def test_maintenance_window_over_part_of_an_outage():
    # down on 10 November from 10:00 to 11:30 (90 min); a maintenance window 09:30-10:30.
    # The window removes all of its hour, whatever the state: 09:30-10:00 (up) and
    # 10:00-10:30 (down) are maintenance, excluded; 10:30-11:30 (60 min) is downtime.
    states = outage_history(sh(2026, 11, 10, 10, 0), sh(2026, 11, 10, 11, 30))
    window = Exclusion(sh(2026, 11, 10, 9, 30), sh(2026, 11, 10, 10, 30), "maintenance", ref=7)
    figures = circuit_figures("c1", GOLD, states, [window], *NOV_2026, AFTER)
    assert figures.by_status_us["maintenance"] == 60 * MIN
    assert figures.excluded_us == 60 * MIN
    assert figures.down_us == 60 * MIN
    # up: 43,200 - 60 (maintenance) - 60 (down) = 43,080 min; scheduled counts all three
    assert figures.up_us == 43_080 * MIN
    assert figures.scheduled_us == NOV_2026_MIN * MIN
    # availability = 43,080 / (43,080 + 60) = 43,080/43,140 = 718/719 (both / 60)
    assert figures.availability_pct == Fraction(100 * 718, 719)
    (outage,) = figures.outages
    assert (outage.start, outage.end) == (sh(2026, 11, 10, 10, 30), sh(2026, 11, 10, 11, 30))
    assert outage.downtime_us == 60 * MIN
    # budget: 0.0001 x (43,200 - 60) min = 4.314 min = 258.84 s
    assert figures.budget_us == 258_840_000
    maintained = [p for p in figures.pieces if p.status == "maintenance"]
    assert [(p.start, p.end, p.state, p.exclusion_refs) for p in maintained] == [
        (sh(2026, 11, 10, 9, 30), sh(2026, 11, 10, 10), "up", (7,)),
        (sh(2026, 11, 10, 10), sh(2026, 11, 10, 10, 30), "down", (7,))]
    assert figures.exclusions == (window,)


def test_stored_maintenance_state_and_customer_caused_marks_are_excluded():
    # a stored state "maintenance" on 12 November 02:00-04:00 (120 min), and an outage on
    # 20 November 14:00-15:00 of which an operator marked 14:00-14:40 customer-caused:
    # excluded 120 + 40 = 160 min, down 15:00-14:40 = 20 min, up 43,200 - 180 = 43,020 min
    states = history((sh(2024, 1, 1), "up"), (sh(2026, 11, 12, 2), "maintenance"),
                     (sh(2026, 11, 12, 4), "up"), (sh(2026, 11, 20, 14), "down"),
                     (sh(2026, 11, 20, 15), "up"))
    mark = Exclusion(sh(2026, 11, 20, 14), sh(2026, 11, 20, 14, 40), "customer_caused", ref=3,
                     reason="customer powered off the CPE")
    figures = circuit_figures("c1", GOLD, states, [mark], *NOV_2026, AFTER)
    assert figures.by_status_us["maintenance"] == 120 * MIN
    assert figures.by_status_us["customer_caused"] == 40 * MIN
    assert figures.excluded_us == 160 * MIN
    assert figures.down_us == 20 * MIN
    assert figures.up_us == 43_020 * MIN
    # availability = 43,020 / 43,040 = 2,151/2,152 (both / 20)
    assert figures.availability_pct == Fraction(100 * 2151, 2152)
    (outage,) = figures.outages
    assert (outage.start, outage.end) == (sh(2026, 11, 20, 14, 40), sh(2026, 11, 20, 15))
    # budget: 0.0001 x (43,200 - 160) min = 4.304 min = 258.24 s
    assert figures.budget_us == 258_240_000


def test_precedence_maintenance_then_customer_caused_then_the_state():
    # one day, 10 November 00:00 to 11 November 00:00:
    #   down 10:00-12:00, unknown 12:00-13:00, stored maintenance 13:00-14:00, up otherwise;
    #   a window 09:00-10:30 (ref 1); a customer mark 10:00-13:30 (ref 2).
    # By precedence maintenance > customer_caused > unknown > down > degraded > up:
    #   09:00-10:00 up under the window:            maintenance (1)
    #   10:00-10:30 down under window and mark:     maintenance (1)
    #   10:30-12:00 down under the mark:            customer_caused (2)
    #   12:00-13:00 unknown under the mark:         customer_caused (2)
    #   13:00-13:30 stored maintenance under mark:  maintenance (no window ref)
    #   13:30-14:00 stored maintenance:             maintenance
    # (the last two differ in nothing but their edges: one piece 13:00-14:00)
    states = history((sh(2024, 1, 1), "up"), (sh(2026, 11, 10, 10), "down"),
                     (sh(2026, 11, 10, 12), "unknown"), (sh(2026, 11, 10, 13), "maintenance"),
                     (sh(2026, 11, 10, 14), "up"))
    exclusions = [Exclusion(sh(2026, 11, 10, 9), sh(2026, 11, 10, 10, 30), "maintenance", 1),
                  Exclusion(sh(2026, 11, 10, 10), sh(2026, 11, 10, 13, 30), "customer_caused", 2)]
    pieces = pieces_of(GOLD, states, exclusions, sh(2026, 11, 10), sh(2026, 11, 11))
    assert [(p.start, p.end, p.status, p.state, p.counted_as, p.scheduled_us, p.exclusion_refs)
            for p in pieces] == [
        (sh(2026, 11, 10, 0), sh(2026, 11, 10, 9), "up", "up", "up", 9 * H, ()),
        (sh(2026, 11, 10, 9), sh(2026, 11, 10, 10), "maintenance", "up", "excluded", H, (1,)),
        (sh(2026, 11, 10, 10), sh(2026, 11, 10, 10, 30), "maintenance", "down", "excluded",
         30 * MIN, (1,)),
        (sh(2026, 11, 10, 10, 30), sh(2026, 11, 10, 12), "customer_caused", "down", "excluded",
         90 * MIN, (2,)),
        (sh(2026, 11, 10, 12), sh(2026, 11, 10, 13), "customer_caused", "unknown", "excluded",
         H, (2,)),
        (sh(2026, 11, 10, 13), sh(2026, 11, 10, 14), "maintenance", "maintenance",
         "excluded", H, ()),
        (sh(2026, 11, 10, 14), sh(2026, 11, 11), "up", "up", "up", 10 * H, ()),
    ]
    # nothing counted down: the whole outage was excluded by the window and the mark
    figures = circuit_figures("c1", GOLD, states, exclusions, sh(2026, 11, 10),
                              sh(2026, 11, 11), AFTER)
    assert figures.down_us == 0 and figures.outages == ()
    # up 9 h + 10 h = 19 h of 24 h; excluded 5 h (09:00-14:00)
    assert figures.up_us == 19 * H and figures.excluded_us == 5 * H
    assert figures.availability_pct == 100


# --- 4. business hours with holidays and make-up days -----------------------------------------


def test_business_hours_october_2025_with_golden_week_and_make_up_saturday():
    # October 2025 (1 October is a Wednesday):
    #   weekdays: Wed 1-Fri 3 (3), 6-10, 13-17, 20-24, 27-31 (4 x 5): 23; holidays on weekdays
    #   1, 2, 3, 6, 7, 8 (6): 17 working weekdays x 570 min (08:30-18:00)     = 9,690 min
    #   Saturdays 4, 11, 18, 25: the 4th a holiday; the 11th a make-up working day with
    #   Monday's hours, 570 min; the 18th and 25th 09:00-12:00, 2 x 180      =   930 min
    #   scheduled:                                                              10,620 min
    # Outage A: Tuesday 30 September 17:00 to Thursday 9 October 09:00 local. In October it
    #   runs over nights and the whole Golden Week: only Thursday 9 Oct 08:30-09:00 counts,
    #   30 min (its 17:00-18:00 on 30 September is September's).
    # Outage B: Friday 10 October 17:00 to Saturday 11 October 09:00: Friday 17:00-18:00
    #   (60 min), the night nothing, the make-up Saturday from 08:30 (Monday's hours, not
    #   Saturday's 09:00) to 09:00 (30 min): 90 min.
    # Outage C: Wednesday 15 October 20:00 to 23:00, all night: listed, 0 min of downtime,
    #   not counted as an outage.
    states = history((sh(2025, 9, 1), "up"), (sh(2025, 9, 30, 17), "down"),
                     (sh(2025, 10, 9, 9), "up"), (sh(2025, 10, 10, 17), "down"),
                     (sh(2025, 10, 11, 9), "up"), (sh(2025, 10, 15, 20), "down"),
                     (sh(2025, 10, 15, 23), "up"))
    october = circuit_figures("c1", BRONZE, states, [], sh(2025, 10, 1), sh(2025, 11, 1), AFTER)
    assert october.scheduled_us == october.period_scheduled_us == 10_620 * MIN
    assert october.wall_us == 31 * 1440 * MIN
    assert [(o.start, o.end, o.downtime_us) for o in october.outages] == [
        (sh(2025, 10, 1), sh(2025, 10, 9, 9), 30 * MIN),
        (sh(2025, 10, 10, 17), sh(2025, 10, 11, 9), 90 * MIN),
        (sh(2025, 10, 15, 20), sh(2025, 10, 15, 23), 0)]
    # outage A's wall time in October: 1 Oct 00:00 to 9 Oct 09:00 = 8 days 9 h
    assert october.outages[0].wall_us == (8 * 24 + 9) * H
    assert october.down_us == 120 * MIN and october.up_us == 10_500 * MIN
    assert october.outage_count == 2 and october.longest_outage_us == 90 * MIN
    # availability = 10,500 / 10,620 = 175/177 (both / 60) = 98.870... %: below 99.5 (5 %) and
    # below 99.0 (10 %): 10 % of 4,500 = 450.00 CNY
    assert october.availability_pct == Fraction(100 * 175, 177)
    assert october.credit is not None and october.credit.amount == Decimal("450.00")
    # budget: 0.005 x 10,620 min = 53.1 min = 3,186 s; left 3,186 - 7,200 = -4,014 s
    assert october.budget_us == 3186 * S and october.budget_left_us == -4014 * S

    # September 2025 (1 September a Monday): weekdays 1-5, 8-12, 15-19, 22-26, 29-30 = 22 x 570
    # = 12,540 min; Saturdays 6, 13, 20, 27: 4 x 180 = 720 min; make-up Sunday 28: 570 min;
    # scheduled 13,830 min. Outage A's share: Tuesday 30 Sep 17:00-18:00, 60 min.
    september = circuit_figures("c1", BRONZE, states, [], sh(2025, 9, 1), sh(2025, 10, 1), AFTER)
    assert september.scheduled_us == 13_830 * MIN
    assert september.down_us == 60 * MIN
    # availability = 13,770 / 13,830 = 459/461 (both / 30) = 99.566... %: no step applies
    assert september.availability_pct == Fraction(100 * 459, 461)
    assert september.credit is None and september.target_met is True


# --- 5. daylight saving: the month's real seconds ---------------------------------------------


@pytest.mark.parametrize("calendar", [
    Calendar("Europe/Berlin"),
    # the same with a holiday elsewhere in the year: the calendar's table path, not the plain
    Calendar("Europe/Berlin", holidays=frozenset({date(2026, 12, 25)})),
], ids=["plain", "tables"])
def test_berlin_months_with_a_daylight_saving_change(calendar):
    terms = replace(BERLIN_24X7, calendar=calendar)
    # March 2026: on Sunday 29 March 02:00 CET becomes 03:00 CEST, the month has
    # 31 x 24 - 1 = 743 h = 44,580 min. Down from 01:30 to 03:30 local that night: two hours
    # on the wall clock, one real hour (00:30Z to 01:30Z).
    states = history((berlin(2026, 1, 1), "up"), (berlin(2026, 3, 29, 1, 30), "down"),
                     (berlin(2026, 3, 29, 3, 30), "up"))
    march = circuit_figures("c1", terms, states, [], berlin(2026, 3, 1), berlin(2026, 4, 1),
                            berlin(2027, 1, 1))
    assert march.wall_us == march.scheduled_us == 743 * H
    assert march.down_us == 60 * MIN
    # 1 - 60/44,580 = 1 - 1/743 = 742/743 = 99.8654... %: below 99.9, 10 % of 1,000 EUR
    assert march.availability_pct == Fraction(100 * 742, 743)
    assert march.credit is not None and march.credit.amount == Decimal("100.00")
    assert march.credit.currency == "EUR"
    # budget: 0.001 x 743 h = 0.743 h = 2,674.8 s
    assert march.budget_us == 2_674_800_000

    # October 2026: on Sunday 25 October 03:00 CEST falls back to 02:00 CET, the month has
    # 31 x 24 + 1 = 745 h = 44,700 min. Down from the first 02:30 (CEST, 00:30Z) to the second
    # 02:30 (CET, fold=1, 01:30Z): the same wall time, one real hour.
    states = history((berlin(2026, 1, 1), "up"), (berlin(2026, 10, 25, 2, 30), "down"),
                     (berlin(2026, 10, 25, 2, 30, fold=1), "up"))
    october = circuit_figures("c1", terms, states, [], berlin(2026, 10, 1), berlin(2026, 11, 1),
                              berlin(2027, 1, 1))
    assert october.wall_us == october.scheduled_us == 745 * H
    assert october.down_us == 60 * MIN
    # 1 - 60/44,700 = 1 - 1/745 = 744/745 = 99.8657... %
    assert october.availability_pct == Fraction(100 * 744, 745)
    assert october.outages[0].wall_us == 60 * MIN


# --- 6. an open outage -------------------------------------------------------------------------


def test_open_outage_counts_to_as_of_then_to_the_month_end():
    # down since Tuesday 10 November 08:00 local, not ended (end None)
    states = history((sh(2024, 1, 1), "up"), (sh(2026, 11, 10, 8), "down"))
    # month to date at 09:15 the same day: measured 9 days + 9 h 15 = 12,960 + 555 = 13,515
    # min, of which down 08:00-09:15 = 75 min, up 13,440 min
    as_of = sh(2026, 11, 10, 9, 15)
    now = circuit_figures("c1", GOLD, states, [], *NOV_2026, as_of)
    assert now.measured_until == as_of
    assert now.wall_us == now.scheduled_us == 13_515 * MIN
    assert now.down_us == 75 * MIN and now.up_us == 13_440 * MIN
    (outage,) = now.outages
    assert outage.open and outage.end == as_of and outage.downtime_us == 75 * MIN
    # 13,440 / 13,515 = 896/901 (both / 15)
    assert now.availability_pct == Fraction(100 * 896, 901)
    # the budget is the whole month's: 0.0001 x 43,200 min = 4.32 min = 259.2 s, already
    # overspent by 4,500 - 259.2 = 4,240.8 s
    assert now.period_scheduled_us == NOV_2026_MIN * MIN
    assert now.budget_us == 259_200_000 and now.budget_left_us == -4_240_800_000

    # a report issued after the month: down from 10 Nov 08:00 to 1 Dec 00:00 = 20 days 16 h
    # = 29,760 min; up 43,200 - 29,760 = 13,440 min; 13,440/43,200 = 14/45 = 31.11 %: 50 %
    # credit, 14,000.00 CNY
    issued = circuit_figures("c1", GOLD, states, [], *NOV_2026, sh(2026, 12, 1, 2))
    assert issued.measured_until == sh(2026, 12, 1)
    assert issued.down_us == 29_760 * MIN
    assert issued.outages[0].end == sh(2026, 12, 1)
    assert issued.outages[0].open  # still down when the month ended (and when issued)
    assert issued.availability_pct == Fraction(100 * 14, 45)
    assert issued.credit is not None and issued.credit.amount == Decimal("14000.00")


def test_outage_ended_exactly_at_as_of_is_not_open():
    # down 08:00-09:15 on 10 November, as_of 09:15: 75 min, over
    states = outage_history(sh(2026, 11, 10, 8), sh(2026, 11, 10, 9, 15))
    figures = circuit_figures("c1", GOLD, states, [], *NOV_2026, sh(2026, 11, 10, 9, 15))
    (outage,) = figures.outages
    assert not outage.open and outage.downtime_us == 75 * MIN


def test_nothing_measured_before_the_period_starts():
    # as_of before the month: nothing measured, no availability, the whole month's budget
    figures = circuit_figures("c1", GOLD, outage_history(sh(2026, 11, 10), sh(2026, 11, 11)),
                              [], *NOV_2026, sh(2026, 10, 20))
    assert figures.measured_until == sh(2026, 11, 1)
    assert figures.scheduled_us == 0 and figures.pieces == ()
    assert figures.availability_pct is None and figures.credit is None
    assert percent_text(figures.availability_pct) == "—"
    assert figures.budget_us == 259_200_000  # 0.0001 x 43,200 min


# --- 7. unknown under each setting ------------------------------------------------------------


def unknown_history() -> list[StateSpan]:
    # November 2026: nothing stored before Monday 2 November 00:00 (1 day = 1,440 min
    # unknown), unknown stored on 15 November 12:00-13:00 (60 min), a hole between two
    # stored states on 20 November 00:00-00:30 (30 min): unknown 1,530 min in all
    return [StateSpan(sh(2026, 11, 2), sh(2026, 11, 15, 12), "up"),
            StateSpan(sh(2026, 11, 15, 12), sh(2026, 11, 15, 13), "unknown", "poller down"),
            StateSpan(sh(2026, 11, 15, 13), sh(2026, 11, 20), "up"),
            StateSpan(sh(2026, 11, 20, 0, 30), None, "up")]


def test_unknown_excluded_is_a_monitoring_gap():
    figures = circuit_figures("c1", GOLD, unknown_history(), [], *NOV_2026, AFTER)
    assert figures.monitoring_gap_us == figures.excluded_us == 1530 * MIN
    # up 43,200 - 1,530 = 41,670 min, down 0: 100 %, never "up" for the gap
    assert figures.up_us == 41_670 * MIN and figures.down_us == 0
    assert figures.availability_pct == 100 and figures.outages == () and figures.credit is None
    assert figures.pieces[0].status == "unknown" and figures.pieces[0].cause == NO_HISTORY
    assert figures.pieces[0].end == sh(2026, 11, 2)
    # budget: 0.0001 x (43,200 - 1,530) min = 4.167 min = 250.02 s
    assert figures.budget_us == 250_020_000


def test_unknown_counted_down():
    terms = replace(GOLD, unknown_counts_as="down")
    figures = circuit_figures("c1", terms, unknown_history(), [], *NOV_2026, AFTER)
    assert figures.down_us == 1530 * MIN and figures.up_us == 41_670 * MIN
    assert figures.monitoring_gap_us == 1530 * MIN  # still reported as a gap
    assert figures.excluded_us == 0
    # 41,670 / 43,200 = 1,389/1,440 (both / 30) = 96.458 %: below 99.5, 50 % = 14,000.00
    assert figures.availability_pct == Fraction(100 * 1389, 1440)
    assert figures.credit is not None and figures.credit.amount == Decimal("14000.00")
    assert [o.downtime_us for o in figures.outages] == [1440 * MIN, 60 * MIN, 30 * MIN]
    assert figures.outage_count == 3 and figures.longest_outage_us == 1440 * MIN
    assert figures.outages[0].causes == (NO_HISTORY,)


def test_unknown_counted_up():
    terms = replace(GOLD, unknown_counts_as="up")
    figures = circuit_figures("c1", terms, unknown_history(), [], *NOV_2026, AFTER)
    assert figures.up_us == NOV_2026_MIN * MIN and figures.down_us == 0
    assert figures.monitoring_gap_us == 1530 * MIN and figures.excluded_us == 0
    assert figures.availability_pct == 100
    # budget over the whole month: 259.2 s
    assert figures.budget_us == 259_200_000


def test_unknown_counts_as_is_checked():
    with pytest.raises(ValueError, match="unknown_counts_as"):
        replace(GOLD, unknown_counts_as="exclude")


# --- 8. degraded ------------------------------------------------------------------------------


@pytest.mark.parametrize("as_down", [False, True])
def test_degraded_counts_as_down_only_where_the_contract_says(as_down):
    # degraded on 10 November 10:00-11:30: 90 min
    states = outage_history(sh(2026, 11, 10, 10), sh(2026, 11, 10, 11, 30), "degraded")
    terms = replace(GOLD, degraded_counts_as_down=as_down)
    figures = circuit_figures("c1", terms, states, [], *NOV_2026, AFTER)
    assert figures.by_status_us["degraded"] == 90 * MIN
    if as_down:
        # 1 - 90/43,200 = 1 - 1/480 = 479/480 = 99.79 %: below 99.9, 25 %
        assert figures.down_us == 90 * MIN
        assert figures.availability_pct == Fraction(100 * 479, 480)
        assert [o.states for o in figures.outages] == [("degraded",)]
        assert figures.credit is not None and figures.credit.amount == Decimal("7000.00")
    else:
        assert figures.down_us == 0 and figures.up_us == NOV_2026_MIN * MIN
        assert figures.availability_pct == 100 and figures.outages == ()


# --- 9. credits at, just above and just below each step ---------------------------------------

# Silver, a 30-day month: 30 x 86,400 s = 2,592,000 s. The downtime that gives exactly a
# threshold: 99.9 % -> 0.1 % x 2,592,000 s = 2,592 s (43.2 min); 99.5 % -> 0.5 % = 12,960 s;
# 99.0 % -> 1 % = 25,920 s. One microsecond more is just below the threshold, one less just
# above. "below" (strict) does not apply exactly at the threshold, "at or below" does.
STEP_CASES = [
    # (downtime, availability exactly, credit % strict, credit % inclusive)
    (2592 * S - 1, None, None, None),
    (2592 * S, Fraction(999, 10), None, 10),
    (2592 * S + 1, None, 10, 10),
    (12_960 * S - 1, None, 10, 10),
    (12_960 * S, Fraction(995, 10), 10, 20),
    (12_960 * S + 1, None, 20, 20),
    (25_920 * S - 1, None, 20, 20),
    (25_920 * S, Fraction(99), 20, 40),
    (25_920 * S + 1, None, 40, 40),
]


@pytest.mark.parametrize("inclusive", [False, True], ids=["below", "at-or-below"])
@pytest.mark.parametrize(("downtime_us", "exact", "strict_pct", "inclusive_pct"), STEP_CASES)
def test_credit_at_and_around_each_step(downtime_us, exact, strict_pct, inclusive_pct,
                                        inclusive):
    steps = tuple(replace(step, inclusive=inclusive) for step in SILVER_STEPS)
    terms = replace(SILVER, credits=steps)
    start = sh(2026, 11, 10, 10)
    states = outage_history(start, start + timedelta(microseconds=downtime_us))
    figures = circuit_figures("c1", terms, states, [], *NOV_2026, AFTER)
    assert figures.down_us == downtime_us
    # availability = 100 x (2,592,000 s - downtime) / 2,592,000 s
    assert figures.availability_pct == Fraction(100 * (2_592_000 * S - downtime_us),
                                                2_592_000 * S)
    if exact is not None:
        assert figures.availability_pct == exact
    expected_pct = inclusive_pct if inclusive else strict_pct
    if expected_pct is None:
        assert figures.credit is None
    else:
        # 10 %, 20 %, 40 % of 12,000 CNY: 1,200.00, 2,400.00, 4,800.00
        assert figures.credit is not None
        assert figures.credit.step.credit_pct == expected_pct
        assert figures.credit.amount == Decimal(120 * expected_pct).quantize(Decimal("0.01"))
        assert figures.credit.currency == "CNY"


def test_target_met_exactly_at_the_target():
    # exactly 99.9 % meets a 99.9 % target; one microsecond more downtime does not
    start = sh(2026, 11, 10, 10)
    at = circuit_figures("c1", SILVER, outage_history(start, start + timedelta(seconds=2592)),
                         [], *NOV_2026, AFTER)
    assert at.target_met is True and at.budget_left_us == 0  # 0.001 x 2,592,000 s - 2,592 s
    worse = circuit_figures(
        "c1", SILVER, outage_history(start, start + timedelta(seconds=2592, microseconds=1)),
        [], *NOV_2026, AFTER)
    assert worse.target_met is False and worse.budget_left_us == -1


def test_largest_applicable_credit_wins_whatever_the_order():
    shuffled = replace(SILVER, credits=(SILVER_STEPS[2], SILVER_STEPS[0], SILVER_STEPS[1]))
    # 98 % is below all three: 40 % of 12,000 = 4,800.00
    credit = credit_for(shuffled, Fraction(98))
    assert credit is not None and credit.amount == Decimal("4800.00")
    # an odd schedule that pays more for a small miss: 99.0 is below both, 30 % wins
    odd = replace(SILVER, credits=(CreditStep(Decimal("99.9"), Decimal(30)),
                                   CreditStep(Decimal("99.5"), Decimal(20))))
    credit = credit_for(odd, Fraction(99))
    assert credit is not None and credit.step.credit_pct == 30
    assert credit.amount == Decimal("3600.00")
    # 99.95 is below no step; no availability measured owes nothing
    assert credit_for(SILVER, Fraction(9995, 100)) is None
    assert credit_for(SILVER, None) is None


def test_credit_money_rounds_half_up_to_the_cent():
    # 10 % of 12,345.65 = 1,234.565: half up 1,234.57 (half even would give 1,234.56)
    credit = credit_for(SILVER, Fraction(998, 10), Decimal("12345.65"))
    assert credit is not None and credit.amount == Decimal("1234.57")
    # 10 % of 12,345.64 = 1,234.564: 1,234.56
    assert credit_for(SILVER, Fraction(998, 10), Decimal("12345.64")).amount \
        == Decimal("1234.56")
    # 40 % of 0.05 = 0.02 exactly; 20 % of 0.05 = 0.01; 10 % of 0.05 = 0.005: 0.01
    assert credit_for(SILVER, Fraction(98), Decimal("0.05")).amount == Decimal("0.02")
    assert credit_for(SILVER, Fraction(99), Decimal("0.05")).amount == Decimal("0.01")
    assert credit_for(SILVER, Fraction(998, 10), Decimal("0.05")).amount == Decimal("0.01")
    # the figures pass the charge on: 45 min in October (99.899 %, 25 %) of 1,000.02 CNY =
    # 250.005: 250.01
    figures = circuit_figures("c1", GOLD, outage_history(sh(2026, 10, 14, 10),
                                                         sh(2026, 10, 14, 10, 45)),
                              [], *OCT_2026, AFTER, monthly_charge=Decimal("1000.02"))
    assert figures.credit is not None and figures.credit.amount == Decimal("250.01")


def test_credit_step_given_a_float_reads_it_as_written():
    # the inventory's credit steps are floats (config.inventory.model.CreditStep); a caller
    # that passes one on gets a step that applies at exactly its threshold
    assert not CreditStep(99.9, 10).applies(Fraction(999, 10))


def test_zero_length_state_does_not_depend_on_input_order():
    # up until 10:00 on 1 November, then "down" for no time at all and "up" again at 10:00
    # (as the store keeps two changes in one transaction). Listed in another order (a
    # statement re-sorted in a spreadsheet), the day must still be 24 h up.
    ten = sh(2026, 11, 1, 10)
    spans = [StateSpan(sh(2026, 11, 1), ten, "up"), StateSpan(ten, None, "up"),
             StateSpan(ten, ten, "down")]
    figures = circuit_figures("c1", GOLD, spans, [], sh(2026, 11, 1), sh(2026, 11, 2), AFTER)
    assert figures.up_us == 24 * H and figures.monitoring_gap_us == 0


# --- 10. tickets and totals ---------------------------------------------------------------------


def ticket(id_: int, opened: datetime, ack_after: timedelta | None,
           resolved_after: timedelta | None, response: bool = False,
           resolution: bool = False) -> TicketFacts:
    return TicketFacts(id_, "fault", "P2", opened,
                       None if ack_after is None else opened + ack_after,
                       None if resolved_after is None else opened + resolved_after,
                       response, resolution)


def test_ticket_figures_over_the_tickets_opened_in_the_period():
    tickets = [
        # opened exactly at the month's start: in; acknowledged after 10 min, resolved 2 h
        ticket(1, sh(2026, 11, 1), timedelta(minutes=10), timedelta(hours=2)),
        # acknowledged after 20 min (its response deadline breached), resolved after 4 h
        ticket(2, sh(2026, 11, 15, 12), timedelta(minutes=20), timedelta(hours=4),
               response=True),
        # acknowledged after 15 min and 2 us, not resolved, its resolution deadline breached
        ticket(3, sh(2026, 11, 30, 23), timedelta(minutes=15, microseconds=2), None,
               resolution=True),
        # opened one microsecond before the month, and at the next month's start: out
        ticket(4, sh(2026, 11, 1) - ONE_US, timedelta(minutes=1), timedelta(minutes=2),
               True, True),
        ticket(5, sh(2026, 12, 1), timedelta(minutes=1), timedelta(minutes=2), True, True),
    ]
    figures = ticket_figures(tickets, *NOV_2026)
    assert (figures.opened, figures.acknowledged, figures.resolved) == (3, 3, 2)
    # MTTA = (10 + 20 + 15 min + 2 us) / 3 = 15 min + 2/3 us, rounded down: 15 min
    assert figures.mtta_us == 15 * MIN
    # MTTR = (2 h + 4 h) / 2 = 3 h, over the resolved ones only
    assert figures.mttr_us == 3 * H
    assert (figures.response_breached, figures.resolution_breached) == (1, 1)

    none = ticket_figures(tickets, *OCT_2026)  # only ticket 4, opened 31 Oct 23:59:59.999999
    assert none.opened == 1 and none.mtta_us == 1 * MIN and none.mttr_us == 2 * MIN
    empty = ticket_figures([], *NOV_2026)
    assert empty.opened == 0 and empty.mtta_us is None and empty.mttr_us is None


def test_totals_over_several_circuits():
    # October 2026, four circuits:
    #   a: gold, 45 min down of 44,640 min      -> 25 % of 28,000 = 7,000.00 CNY, below target
    #   b: gold, 30 min down of 44,640 min      -> 10 % of 28,000 = 2,800.00 CNY, below target
    #   c: Berlin 24x7, October 745 h = 44,700 min, 60 min down
    #                                           -> 10 % of 1,000 = 100.00 EUR, below 99.9
    #   d: gold, the whole month in maintenance -> nothing counted, no availability
    a = circuit_figures("a", GOLD, outage_history(sh(2026, 10, 14, 10), sh(2026, 10, 14, 10, 45)),
                        [], *OCT_2026, AFTER)
    b = circuit_figures("b", GOLD, outage_history(sh(2026, 10, 20, 3), sh(2026, 10, 20, 3, 30)),
                        [], *OCT_2026, AFTER)
    c = circuit_figures("c", BERLIN_24X7,
                        history((berlin(2026, 1, 1), "up"), (berlin(2026, 10, 5, 12), "down"),
                                (berlin(2026, 10, 5, 13), "up")),
                        [], berlin(2026, 10, 1), berlin(2026, 11, 1), AFTER)
    d = circuit_figures("d", GOLD, outage_history(sh(2026, 10, 2), sh(2026, 10, 3)),
                        [Exclusion(sh(2026, 9, 1), sh(2026, 12, 1), "maintenance", 9)],
                        *OCT_2026, AFTER)
    assert d.availability_pct is None and d.target_met is None and d.budget_us is None
    total = totals([a, b, c, d])
    assert total.circuits == 4
    # scheduled: 3 x 44,640 + 44,700 = 178,620 min; excluded: d's 44,640 min
    assert total.scheduled_us == 178_620 * MIN
    assert total.excluded_us == 44_640 * MIN and total.monitoring_gap_us == 0
    # up: 44,595 + 44,610 + 44,640 = 133,845 min; down: 45 + 30 + 60 = 135 min
    assert total.up_us == 133_845 * MIN and total.down_us == 135 * MIN
    # the ratio of the sums, not a mean of ratios: 133,845 / 133,980
    assert total.availability_pct == Fraction(100 * 133_845, 133_980)
    assert total.outage_count == 3 and total.longest_outage_us == 60 * MIN
    assert total.credits == {"CNY": Decimal("9800.00"), "EUR": Decimal("100.00")}
    assert total.circuits_below_target == 3
    assert totals([]).availability_pct is None


# --- 11. percentages for people -----------------------------------------------------------------


def test_percent_text_never_rounds_up():
    assert percent_text(Fraction("99.99499999")) == "99.9949"
    assert percent_text(Fraction(99995, 1000)) == "99.9950"
    # exactly 99.9 % minus a trillionth still shows below 99.9
    assert percent_text(Fraction(999, 10) - Fraction(1, 10**12)) == "99.8999"
    assert percent_text(Fraction(100)) == "100.0000"
    assert percent_text(Fraction(0)) == "0.0000"
    assert percent_text(Fraction(200, 3), places=2) == "66.66"  # 66.666...
    assert percent_text(None) == "—"


# --- bad input -------------------------------------------------------------------------------


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="unknown service state 'sideways'"):
        pieces_of(GOLD, [StateSpan(sh(2026, 11, 1), None, "sideways")], [], *NOV_2026)
    with pytest.raises(ValueError, match="unknown exclusion kind 'holiday'"):
        pieces_of(GOLD, [], [Exclusion(sh(2026, 11, 2), sh(2026, 11, 3), "holiday")], *NOV_2026)
    with pytest.raises(ValueError, match="as_of must be timezone-aware"):
        circuit_figures("c1", GOLD, [], [], *NOV_2026, datetime(2026, 11, 5))
    with pytest.raises(ValueError, match=r"ends .* before it starts"):
        circuit_figures("c1", GOLD, [], [], NOV_2026[1], NOV_2026[0], AFTER)


# --- properties over random histories -------------------------------------------------------

RANDOM_START = sh(2025, 9, 20)
RANDOM_CALENDARS = [GOLD.calendar, BRONZE.calendar, BERLIN_24X7.calendar]


@st.composite
def random_case(draw):
    # minutes from RANDOM_START over 40 days (across the Golden Week and a month edge)
    minute = st.integers(0, 40 * 1440)
    changes = sorted(draw(st.lists(st.tuples(minute, st.sampled_from(
        ("up", "down", "degraded", "unknown", "maintenance"))), max_size=12)))
    spans = []
    for index, (at, state) in enumerate(changes):
        following = changes[index + 1][0] if index + 1 < len(changes) else None
        # sometimes a hole before the next stored state, sometimes the last one ends
        end = following if following is not None else draw(st.one_of(st.none(), minute))
        if end is not None and draw(st.booleans()):
            end = max(at, end - draw(st.integers(0, 90)))
        if end is not None and end < at:
            continue
        spans.append(StateSpan(RANDOM_START + timedelta(minutes=at),
                               None if end is None else RANDOM_START + timedelta(minutes=end),
                               state))
    exclusions = []
    for first, length, kind in draw(st.lists(st.tuples(
            minute, st.integers(1, 3000), st.sampled_from(("maintenance", "customer_caused"))),
            max_size=4)):
        exclusions.append(Exclusion(RANDOM_START + timedelta(minutes=first),
                                    RANDOM_START + timedelta(minutes=first + length), kind))
    terms = replace(GOLD, calendar=draw(st.sampled_from(RANDOM_CALENDARS)),
                    unknown_counts_as=draw(st.sampled_from(("excluded", "down", "up"))),
                    degraded_counts_as_down=draw(st.booleans()))
    period_start = RANDOM_START + timedelta(minutes=draw(st.integers(0, 10 * 1440)))
    period_end = period_start + timedelta(minutes=draw(st.integers(1, 30 * 1440)))
    as_of = RANDOM_START + timedelta(minutes=draw(minute), microseconds=draw(
        st.integers(0, 999_999)))
    cut = period_start + timedelta(microseconds=draw(st.integers(
        0, (period_end - period_start) // ONE_US)))
    return terms, spans, exclusions, period_start, period_end, as_of, cut


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_case())
def test_times_add_up_for_random_histories(case):
    terms, spans, exclusions, period_start, period_end, as_of, cut = case
    figures = circuit_figures("c1", terms, spans, exclusions, period_start, period_end, as_of)
    until = figures.measured_until
    assert period_start <= until <= period_end
    # up + down + excluded is the scheduled time, which is the calendar's business time
    # over the measured part, and the pieces' scheduled times add up to it
    assert figures.up_us + figures.down_us + figures.excluded_us == figures.scheduled_us
    assert figures.scheduled_us == business_microseconds(terms.calendar, period_start, until)
    assert sum(p.scheduled_us for p in figures.pieces) == figures.scheduled_us
    assert sum(figures.by_status_us.values()) == figures.scheduled_us
    assert figures.period_scheduled_us == business_microseconds(terms.calendar, period_start,
                                                                period_end)
    # the pieces tile [period_start, measured_until) without gap or overlap
    if figures.pieces:
        assert figures.pieces[0].start == period_start and figures.pieces[-1].end == until
        for before, after in pairwise(figures.pieces):
            assert before.end == after.start and before.start < before.end
    else:
        assert until == period_start
    for piece in figures.pieces:
        assert piece.scheduled_us == business_microseconds(terms.calendar, piece.start,
                                                           piece.end)
    # the outages are the down time, and only it
    assert sum(o.downtime_us for o in figures.outages) == figures.down_us
    assert figures.down_us == sum(p.scheduled_us for p in figures.pieces
                                  if p.counted_as == "down")
    if figures.up_us + figures.down_us:
        assert figures.availability_pct == Fraction(
            100 * figures.up_us, figures.up_us + figures.down_us)
        assert 0 <= figures.availability_pct <= 100
    else:
        assert figures.availability_pct is None
    # a period cut in two at any instant gives the same times as the whole period
    if period_start < cut < period_end:
        first = circuit_figures("c1", terms, spans, exclusions, period_start, cut, as_of)
        second = circuit_figures("c1", terms, spans, exclusions, cut, period_end, as_of)
        for name in ("scheduled_us", "up_us", "down_us", "excluded_us", "monitoring_gap_us"):
            assert getattr(first, name) + getattr(second, name) == getattr(figures, name)
