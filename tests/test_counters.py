"""Counters into rates: every wrap and reset case, and the invariants (never negative, never
above what the interface can carry, no rate at all when the interval cannot be trusted)."""

from __future__ import annotations

import dataclasses
import random

import pytest

from collectors.counters import (
    COUNTER32_MODULUS,
    COUNTER64_MODULUS,
    IF_SPEED_SEE_HIGH_SPEED,
    PLAUSIBLE_SPEED_FACTOR,
    TIMETICKS_MODULUS,
    InterfaceRates,
    InterfaceReading,
    SkipCode,
    compute_rates,
    field_out_of_range,
    interface_speed_bps,
)

UP, DOWN, LOWER_LAYER_DOWN = 1, 2, 7
GBIT = 1_000_000_000
RATE_FIELDS = (
    "in_bps", "out_bps", "in_utilization_pct", "out_utilization_pct",
    "in_errors_per_s", "out_errors_per_s", "in_discards_per_s", "out_discards_per_s",
)


def reading(**overrides: object) -> InterfaceReading:
    """A 1 Gbit/s port with every column, ten days into the agent's uptime."""
    values: dict[str, object] = {
        "if_index": 3,
        "sys_uptime_cs": 10 * 86_400 * 100,
        "read_at_s": 50_000.0,
        "if_hc_in_octets": 10**12,
        "if_hc_out_octets": 2 * 10**12,
        "if_in_octets": 1_000_000,
        "if_out_octets": 2_000_000,
        "if_in_errors": 10,
        "if_out_errors": 20,
        "if_in_discards": 30,
        "if_out_discards": 40,
        "if_high_speed_mbps": 1_000,
        "if_speed_bps": GBIT,
        "if_oper_status": UP,
        "if_admin_status": UP,
        "if_counter_discontinuity_time_cs": 0,
    }
    values.update(overrides)
    return InterfaceReading(**values)  # type: ignore[arg-type]


def later(previous: InterfaceReading, seconds: float, **overrides: object) -> InterfaceReading:
    """The next reading, ``seconds`` later on both clocks; counters as given in ``overrides``."""
    values = {
        "read_at_s": previous.read_at_s + seconds,
        "sys_uptime_cs": None if previous.sys_uptime_cs is None
        else (previous.sys_uptime_cs + round(seconds * 100)) % TIMETICKS_MODULUS,
    }
    values.update(overrides)
    return dataclasses.replace(previous, **values)  # type: ignore[arg-type]


def assert_withheld(rates: InterfaceRates, code: SkipCode, *reason_words: str) -> None:
    assert rates.withheld
    assert rates.skipped_code is code
    assert rates.skipped_reason is not None
    for word in reason_words:
        assert word in rates.skipped_reason
    for name in RATE_FIELDS:
        assert getattr(rates, name) is None, name


# --- steady state ---------------------------------------------------------------------------


def test_steady_64_bit_rate_is_exact():
    before = reading()
    after = later(
        before, 60,
        if_hc_in_octets=before.if_hc_in_octets + 7_500_000_000 // 2,  # 500 Mbit/s
        if_hc_out_octets=before.if_hc_out_octets + 750_000_000,  # 100 Mbit/s
        if_in_errors=before.if_in_errors + 120,
        if_out_errors=before.if_out_errors,
        if_in_discards=before.if_in_discards + 60,
        if_out_discards=before.if_out_discards + 30,
    )
    rates = compute_rates(before, after)
    assert rates.skipped_reason is None
    assert not rates.withheld
    assert rates.interval_s == 60
    assert rates.in_bps == 500_000_000
    assert rates.out_bps == 100_000_000
    assert rates.in_utilization_pct == 50
    assert rates.out_utilization_pct == 10
    assert rates.in_errors_per_s == 2
    assert rates.out_errors_per_s == 0
    assert rates.in_discards_per_s == 1
    assert rates.out_discards_per_s == 0.5
    assert rates.speed_bps == GBIT
    assert rates.if_index == 3


def test_64_bit_preferred_over_32_bit_when_both_readings_have_it():
    before = reading(if_in_octets=0, if_out_octets=0)
    # the 32-bit columns would say something else: they must be ignored
    after = later(
        before, 10,
        if_hc_in_octets=before.if_hc_in_octets + 1_250_000,
        if_hc_out_octets=before.if_hc_out_octets,
        if_in_octets=999_999_999, if_out_octets=999_999_999,
    )
    rates = compute_rates(before, after)
    assert rates.in_bps == 1_000_000
    assert rates.out_bps == 0


def test_64_bit_counter_near_its_top_is_not_a_wrap_problem():
    before = reading(if_hc_in_octets=COUNTER64_MODULUS - 1_000_001)
    after = later(before, 1, if_hc_in_octets=COUNTER64_MODULUS - 1)
    assert compute_rates(before, after).in_bps == 8_000_000


def test_rates_are_averaged_over_the_poller_interval():
    before = reading()
    after = later(before, 300, if_hc_in_octets=before.if_hc_in_octets + 3_750_000_000)
    assert compute_rates(before, after).in_bps == 100_000_000


# --- 32-bit fallback and its wrap -----------------------------------------------------------


@pytest.mark.parametrize(
    ("hc_before", "hc_after"),
    [(None, None), (None, 5), (5, None)],
    ids=["no ifXTable", "HC appeared", "HC vanished"],
)
def test_32_bit_fallback_when_hc_missing_from_either_reading(hc_before, hc_after):
    before = reading(if_hc_in_octets=hc_before, if_hc_out_octets=hc_before)
    after = later(
        before, 10,
        if_hc_in_octets=hc_after, if_hc_out_octets=hc_after,
        if_in_octets=before.if_in_octets + 12_500_000,  # 10 Mbit/s
        if_out_octets=before.if_out_octets + 125_000,  # 100 kbit/s
    )
    rates = compute_rates(before, after)
    assert rates.skipped_reason is None
    assert rates.in_bps == 10_000_000
    assert rates.out_bps == 100_000
    assert rates.in_utilization_pct == 1


def test_hc_chosen_per_direction():
    before = reading(if_hc_out_octets=None)
    after = later(
        before, 10,
        if_hc_in_octets=before.if_hc_in_octets + 1_250_000,
        if_hc_out_octets=None,
        if_out_octets=before.if_out_octets + 2_500_000,
    )
    rates = compute_rates(before, after)
    assert (rates.in_bps, rates.out_bps) == (1_000_000, 2_000_000)


def test_32_bit_single_wrap_gives_the_exact_rate():
    before = reading(if_hc_in_octets=None, if_in_octets=COUNTER32_MODULUS - 1_000)
    after = later(before, 10, if_hc_in_octets=None, if_in_octets=4_000)
    rates = compute_rates(before, after)
    assert rates.skipped_reason is None
    assert rates.in_bps == 5_000 * 8 / 10


def test_32_bit_wrap_at_the_plausible_limit_is_accepted():
    # 100 Mbit/s for 30 s may carry 110 % of line rate: a wrap implying exactly that is kept
    speed_bps = 100_000_000
    octets = int(speed_bps * PLAUSIBLE_SPEED_FACTOR / 8 * 30)
    before = reading(
        if_hc_in_octets=None, if_high_speed_mbps=100, if_speed_bps=speed_bps,
        if_in_octets=COUNTER32_MODULUS - 10,
    )
    after = later(before, 30, if_hc_in_octets=None, if_in_octets=octets - 10)
    rates = compute_rates(before, after)
    assert rates.skipped_reason is None
    assert rates.in_bps == octets * 8 / 30


def test_32_bit_wrap_accepted_when_speed_unknown():
    before = reading(
        if_hc_in_octets=None, if_high_speed_mbps=None, if_speed_bps=0,
        if_in_octets=COUNTER32_MODULUS - 100,
    )
    after = later(before, 10, if_hc_in_octets=None, if_in_octets=900)
    rates = compute_rates(before, after)
    assert rates.in_bps == 800
    assert rates.in_utilization_pct is None
    assert rates.speed_bps is None


def test_implausible_32_bit_drop_is_a_reset_not_a_wrap():
    # 100 Mbit/s port: going 3e9 -> 10 in 60 s would need a wrap at ~172 Mbit/s
    before = reading(
        if_hc_in_octets=None, if_high_speed_mbps=100, if_speed_bps=100_000_000,
        if_in_octets=3_000_000_000,
    )
    after = later(before, 60, if_hc_in_octets=None, if_in_octets=10)
    assert_withheld(
        compute_rates(before, after), SkipCode.COUNTER32_RESET,
        "counter reset", "ifInOctets", "went down")


@pytest.mark.parametrize(
    ("speed_mbps", "interval_s", "trusted"),
    [
        (10_000, 5, False),  # wraps every 3.4 s at line rate
        (10_000, 3, True),
        (1_000, 60, False),  # wraps every 34 s
        (1_000, 30, True),
        (100, 300, True),  # wraps every 344 s; 110 % of line rate still fits once
        (100, 320, False),
    ],
)
def test_interval_too_long_for_32_bit_at_speed(speed_mbps, interval_s, trusted):
    before = reading(
        if_hc_in_octets=None, if_high_speed_mbps=speed_mbps, if_speed_bps=IF_SPEED_SEE_HIGH_SPEED,
    )
    # a small, innocent-looking increase: it could be that plus 2**32 (or 2 x 2**32)
    after = later(before, interval_s, if_hc_in_octets=None, if_in_octets=before.if_in_octets + 1)
    rates = compute_rates(before, after)
    if trusted:
        assert rates.skipped_reason is None
        assert rates.in_bps == 8 / interval_s
    else:
        assert_withheld(
            rates, SkipCode.COUNTER32_INTERVAL_TOO_LONG,
            "interval too long", "ifInOctets", "poll faster")


def test_long_interval_is_fine_for_64_bit_at_high_speed():
    before = reading(if_high_speed_mbps=100_000, if_speed_bps=IF_SPEED_SEE_HIGH_SPEED)
    after = later(
        before, 3_600,
        if_hc_in_octets=before.if_hc_in_octets + 40 * GBIT // 8 * 3_600,
        if_hc_out_octets=before.if_hc_out_octets,
    )
    rates = compute_rates(before, after)
    assert rates.in_bps == 40 * GBIT
    assert rates.in_utilization_pct == 40


# --- discontinuities ------------------------------------------------------------------------


def test_first_reading_has_no_rates():
    current = reading(if_oper_status=DOWN, if_admin_status=UP)
    rates = compute_rates(None, current)
    assert_withheld(rates, SkipCode.NO_PREVIOUS_READING, "no previous reading")
    assert rates.interval_s is None
    assert (rates.oper_status, rates.admin_status) == (DOWN, UP)
    assert rates.if_index == 3


def test_previous_reading_of_another_interface():
    rates = compute_rates(reading(if_index=4), later(reading(), 10))
    assert_withheld(rates, SkipCode.OTHER_INTERFACE, "another interface", "ifIndex 4")


@pytest.mark.parametrize("interval_s", [0, -0.001, -300])
def test_zero_or_negative_interval(interval_s):
    before = reading()
    after = dataclasses.replace(
        before, read_at_s=before.read_at_s + interval_s,
        if_hc_in_octets=before.if_hc_in_octets + 1_000,
    )
    rates = compute_rates(before, after)
    assert_withheld(rates, SkipCode.NON_POSITIVE_INTERVAL, "interval is not positive")
    assert rates.interval_s == pytest.approx(interval_s)


def test_sys_uptime_backwards_is_an_agent_restart():
    before = reading()
    after = later(
        before, 300,
        sys_uptime_cs=12_000,  # up 2 minutes
        if_hc_in_octets=before.if_hc_in_octets + 5 * 10**12,  # garbage after the reboot
    )
    rates = compute_rates(before, after)
    assert_withheld(rates, SkipCode.AGENT_RESTARTED, "agent restarted", "sysUpTime went backwards")
    assert rates.interval_s == 300


def test_restart_hidden_inside_the_interval():
    # previous reading 60 s after boot; device rebooted again; now 100 s up, 300 s later:
    # sysUpTime went up (6000 -> 10000 cs) but far less than the poller's clock
    before = reading(sys_uptime_cs=6_000, if_hc_in_octets=1_000)
    after = later(before, 300, sys_uptime_cs=10_000, if_hc_in_octets=5_000)
    assert_withheld(
        compute_rates(before, after), SkipCode.AGENT_RESTARTED, "agent restarted", "advanced 40 s")


def test_sys_uptime_far_ahead_of_the_pollers_clock():
    # e.g. another device now answers at that address (the poller's clock is monotonic: a
    # step of the wall clock does not reach it)
    before = reading()
    after = later(before, 60, sys_uptime_cs=before.sys_uptime_cs + 3_600 * 100)
    assert_withheld(compute_rates(before, after), SkipCode.CLOCKS_DISAGREE, "clocks disagree")


@pytest.mark.parametrize("skew_s", [-5, -2, 0, 3, 11])
def test_small_disagreement_between_clocks_is_tolerated(skew_s):
    # 60 s interval: 5 s + 10 % = 11 s allowed either way (poll latency, retries)
    before = reading()
    after = later(
        before, 60,
        sys_uptime_cs=before.sys_uptime_cs + (60 + skew_s) * 100,
        if_hc_in_octets=before.if_hc_in_octets + 750_000,
    )
    rates = compute_rates(before, after)
    assert rates.skipped_reason is None
    assert rates.in_bps == 100_000


def test_sys_uptime_timeticks_wrap_at_497_days_is_not_a_restart():
    before = reading(sys_uptime_cs=TIMETICKS_MODULUS - 1_000)  # 10 s before the wrap
    after = later(before, 60, if_hc_in_octets=before.if_hc_in_octets + 7_500_000)
    assert after.sys_uptime_cs == 5_000
    rates = compute_rates(before, after)
    assert rates.skipped_reason is None
    assert rates.in_bps == 1_000_000


def test_sys_uptime_backwards_near_the_wrap_but_inconsistent_is_a_restart():
    before = reading(sys_uptime_cs=TIMETICKS_MODULUS - 1_000)
    after = later(before, 60, sys_uptime_cs=50_000)  # would be a 510 s wrap in a 60 s interval
    assert_withheld(compute_rates(before, after), SkipCode.AGENT_RESTARTED, "agent restarted")


@pytest.mark.parametrize(
    ("before_cs", "after_cs"),
    [(0, 123_456), (123_456, 123_999), (None, 0), (0, None)],
    ids=["cleared", "cleared again", "now reported", "no longer reported"],
)
def test_discontinuity_time_changed(before_cs, after_cs):
    before = reading(if_counter_discontinuity_time_cs=before_cs)
    after = later(
        before, 60, if_counter_discontinuity_time_cs=after_cs,
        if_hc_in_octets=before.if_hc_in_octets + 1_000,
    )
    assert_withheld(
        compute_rates(before, after), SkipCode.DISCONTINUITY_TIME_CHANGED,
        "ifCounterDiscontinuityTime changed")


def test_discontinuity_time_unchanged_or_never_reported_is_fine():
    for value in (None, 0, 777):
        before = reading(if_counter_discontinuity_time_cs=value)
        after = later(before, 60)
        assert compute_rates(before, after).skipped_reason is None


@pytest.mark.parametrize("field", ["if_hc_in_octets", "if_hc_out_octets"])
def test_64_bit_counter_backwards_is_a_reset(field):
    before = reading()
    after = later(before, 60, **{field: getattr(before, field) - 1})
    name = {"if_hc_in_octets": "ifHCInOctets", "if_hc_out_octets": "ifHCOutOctets"}[field]
    assert_withheld(
        compute_rates(before, after), SkipCode.COUNTER64_WENT_BACKWARDS,
        "counter reset", name, "went backwards")


def test_64_bit_jump_beyond_the_interface_speed_is_not_a_spike():
    # the classic false 40 Gbit/s spike on a 1 Gbit/s circuit
    before = reading()
    after = later(before, 60, if_hc_in_octets=before.if_hc_in_octets + 40 * GBIT // 8 * 60)
    assert_withheld(
        compute_rates(before, after), SkipCode.IMPLAUSIBLE_RATE,
        "implausible rate", "ifHCInOctets", "40 Gbit/s")


def test_one_bad_counter_withholds_the_whole_interval():
    before = reading()
    after = later(
        before, 60,
        if_hc_in_octets=before.if_hc_in_octets + 1_000,  # fine
        if_hc_out_octets=before.if_hc_out_octets - 5,  # reset
    )
    assert_withheld(
        compute_rates(before, after), SkipCode.COUNTER64_WENT_BACKWARDS, "ifHCOutOctets")


# --- agents without sysUpTime (some IOS-XE walks serve none) ---------------------------------


@pytest.mark.parametrize(("uptime_before", "uptime_after"),
                         [(None, None), (None, 12_000), (12_000, None)])
def test_without_sys_uptime_the_pollers_clock_alone_judges(uptime_before, uptime_after):
    before = reading(sys_uptime_cs=uptime_before)
    # the agent clock (had there been one) would say "restarted": rule 3 is not applied
    after = later(before, 60, sys_uptime_cs=uptime_after,
                  if_hc_in_octets=before.if_hc_in_octets + 60 * 1_000_000)
    rates = compute_rates(before, after)
    assert rates.skipped_reason is None and rates.skipped_code is None
    assert rates.in_bps == 8_000_000


def test_without_sys_uptime_a_restart_still_shows_in_the_counters():
    before = reading(sys_uptime_cs=None)
    after = later(before, 300, sys_uptime_cs=None, if_hc_in_octets=1_000, if_hc_out_octets=50)
    assert_withheld(compute_rates(before, after), SkipCode.COUNTER64_WENT_BACKWARDS,
                    "ifHCInOctets", "went backwards")


def test_a_reading_may_lack_sys_uptime():
    assert InterfaceReading(if_index=1, read_at_s=0.0).sys_uptime_cs is None


# --- reason codes -----------------------------------------------------------------------------


def test_skip_codes_are_stable_numbers():
    """Stored gaps keep their meaning: a code is never renumbered (add new ones at the end)."""
    assert {code.name: int(code) for code in SkipCode} == {
        "NO_PREVIOUS_READING": 1, "OTHER_INTERFACE": 2, "NON_POSITIVE_INTERVAL": 3,
        "AGENT_RESTARTED": 4, "CLOCKS_DISAGREE": 5, "DISCONTINUITY_TIME_CHANGED": 6,
        "COUNTER64_WENT_BACKWARDS": 7, "COUNTER32_INTERVAL_TOO_LONG": 8, "COUNTER32_RESET": 9,
        "IMPLAUSIBLE_RATE": 10,
    }


def test_a_trusted_interval_has_no_code():
    before = reading()
    rates = compute_rates(before, later(before, 60))
    assert not rates.withheld and rates.skipped_code is None


@pytest.mark.parametrize(
    ("field", "value", "limit"),
    [("if_in_octets", -5, "0..4294967295"), ("if_in_octets", COUNTER32_MODULUS, "0..4294967295"),
     ("if_hc_in_octets", COUNTER64_MODULUS, f"0..{COUNTER64_MODULUS - 1}"),
     ("if_oper_status", -1, ">= 0"), ("if_counter_discontinuity_time_cs", -1, "0..4294967295"),
     ("if_in_octets", 0, None), ("if_hc_in_octets", COUNTER64_MODULUS - 1, None),
     ("if_oper_status", 7, None)],
)
def test_field_out_of_range_names_the_range(field, value, limit):
    assert field_out_of_range(field, value) == limit
    if limit is not None:
        with pytest.raises(ValueError, match=f"{field} must be {limit}"):
            reading(**{field: value})


# --- speed and utilization ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("high_speed_mbps", "speed_bps", "expected_bps"),
    [
        (10_000, IF_SPEED_SEE_HIGH_SPEED, 10 * GBIT),  # ifHighSpeed when ifSpeed saturates
        (10_000, 10 * GBIT % 2**32, 10 * GBIT),  # buggy agent: ifSpeed wrapped, ifHighSpeed wins
        (1_000, GBIT, GBIT),
        (2, 1_544_000, 1_544_000),  # T1: ifSpeed is exact, ifHighSpeed rounded
        (2, 2_048_000, 2_048_000),  # E1
        (2, 5_000_000, 2_000_000),  # disagreeing ifSpeed loses to ifHighSpeed
        (5, None, 5_000_000),
        (None, 64_000, 64_000),  # no ifXTable: ifSpeed
        (0, 64_000, 64_000),  # ifHighSpeed 0 below 0.5 Mbit/s: ifSpeed
        (None, IF_SPEED_SEE_HIGH_SPEED, None),  # "see ifHighSpeed", but there is none
        (0, 0, None),
        (None, None, None),
    ],
)
def test_interface_speed(high_speed_mbps, speed_bps, expected_bps):
    current = reading(if_high_speed_mbps=high_speed_mbps, if_speed_bps=speed_bps)
    assert interface_speed_bps(current) == expected_bps


def test_utilization_from_if_high_speed():
    before = reading(if_high_speed_mbps=10_000, if_speed_bps=IF_SPEED_SEE_HIGH_SPEED)
    after = later(before, 10, if_hc_in_octets=before.if_hc_in_octets + 3_125_000_000)
    rates = compute_rates(before, after)
    assert rates.in_bps == 2_500_000_000
    assert rates.in_utilization_pct == 25
    assert rates.out_utilization_pct == 0


def test_utilization_from_if_speed():
    before = reading(if_high_speed_mbps=None, if_speed_bps=2_048_000, if_hc_in_octets=None)
    after = later(before, 10, if_hc_in_octets=None, if_in_octets=before.if_in_octets + 1_280_000)
    rates = compute_rates(before, after)
    assert rates.in_bps == 1_024_000
    assert rates.in_utilization_pct == 50


@pytest.mark.parametrize(
    ("high_speed_mbps", "speed_bps"),
    [(None, IF_SPEED_SEE_HIGH_SPEED), (0, 0), (None, None)],
)
def test_utilization_unknown_but_rates_still_given(high_speed_mbps, speed_bps):
    before = reading(if_high_speed_mbps=high_speed_mbps, if_speed_bps=speed_bps)
    after = later(before, 10, if_hc_in_octets=before.if_hc_in_octets + 12_500_000_000)
    rates = compute_rates(before, after)
    assert rates.skipped_reason is None
    assert rates.in_bps == 10 * GBIT  # no speed: nothing to judge plausibility against
    assert rates.in_utilization_pct is None
    assert rates.out_utilization_pct is None
    assert rates.speed_bps is None


def test_speed_change_during_the_interval_uses_the_faster_speed():
    # renegotiated 1 Gbit/s -> 100 Mbit/s; the traffic before the change was real
    before = reading()
    after = later(
        before, 10, if_high_speed_mbps=100, if_speed_bps=100_000_000,
        if_hc_in_octets=before.if_hc_in_octets + 500_000_000,  # 400 Mbit/s average
    )
    rates = compute_rates(before, after)
    assert rates.in_bps == 400_000_000
    assert rates.speed_bps == GBIT
    assert rates.in_utilization_pct == 40


# --- errors and discards (Counter32 only) ---------------------------------------------------


@pytest.mark.parametrize(
    ("field", "rate_field"),
    [
        ("if_in_errors", "in_errors_per_s"),
        ("if_out_errors", "out_errors_per_s"),
        ("if_in_discards", "in_discards_per_s"),
        ("if_out_discards", "out_discards_per_s"),
    ],
)
def test_errors_and_discards_single_wrap_exact(field, rate_field):
    before = reading(**{field: COUNTER32_MODULUS - 50})
    after = later(before, 10, **{field: 150})
    rates = compute_rates(before, after)
    assert rates.skipped_reason is None
    assert getattr(rates, rate_field) == 20


@pytest.mark.parametrize("field", ["if_in_errors", "if_out_discards"])
def test_errors_and_discards_implausible_drop_is_a_reset(field):
    # 2 Mbit/s line: a wrap from 1000 to 5 means 4e9 errors in 60 s, far above line rate
    before = reading(if_high_speed_mbps=2, if_speed_bps=2_048_000, **{field: 1_000})
    after = later(before, 60, **{field: 5})
    assert_withheld(
        compute_rates(before, after), SkipCode.COUNTER32_RESET, "counter reset", "packets/s")


def test_errors_above_the_packet_rate_of_the_line_are_implausible():
    before = reading(if_high_speed_mbps=None, if_speed_bps=64_000, if_hc_in_octets=None)
    after = later(before, 10, if_hc_in_octets=None, if_in_errors=before.if_in_errors + 1_000_000)
    assert_withheld(
        compute_rates(before, after), SkipCode.IMPLAUSIBLE_RATE, "implausible rate", "ifInErrors")


def test_errors_are_not_withheld_for_long_intervals_at_high_speed():
    before = reading(if_high_speed_mbps=100_000, if_speed_bps=IF_SPEED_SEE_HIGH_SPEED)
    after = later(before, 900, if_in_errors=before.if_in_errors + 900)
    rates = compute_rates(before, after)
    assert rates.skipped_reason is None
    assert rates.in_errors_per_s == 1


def test_missing_counters_give_none_for_that_rate_only():
    before = reading(if_in_errors=None, if_out_discards=None)
    after = later(
        before, 10, if_in_errors=5, if_hc_out_octets=None, if_out_octets=None,
        if_in_discards=before.if_in_discards + 10,
    )
    rates = compute_rates(before, after)
    assert rates.skipped_reason is None
    assert rates.in_errors_per_s is None
    assert rates.out_discards_per_s is None
    assert rates.out_bps is None
    assert rates.out_utilization_pct is None
    assert rates.in_bps == 0
    assert rates.in_discards_per_s == 1


# --- status passthrough ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("oper", "admin"), [(UP, UP), (DOWN, UP), (DOWN, DOWN), (LOWER_LAYER_DOWN, UP), (None, None)]
)
def test_status_passes_through_with_or_without_rates(oper, admin):
    before = reading()
    good = later(before, 10, if_oper_status=oper, if_admin_status=admin)
    restarted = later(before, 10, sys_uptime_cs=500, if_oper_status=oper, if_admin_status=admin)
    for rates, withheld in ((compute_rates(before, good), False),
                            (compute_rates(before, restarted), True),
                            (compute_rates(None, good), True)):
        assert rates.withheld is withheld
        assert (rates.oper_status, rates.admin_status) == (oper, admin)


# --- readings are validated and immutable ---------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("if_in_octets", COUNTER32_MODULUS),
        ("if_in_errors", -1),
        ("if_hc_in_octets", COUNTER64_MODULUS),
        ("sys_uptime_cs", TIMETICKS_MODULUS),
        ("sys_uptime_cs", -1),
        ("if_counter_discontinuity_time_cs", TIMETICKS_MODULUS),
        ("if_speed_bps", COUNTER32_MODULUS),
        ("if_high_speed_mbps", -1),
        ("read_at_s", float("nan")),
        ("read_at_s", float("inf")),
    ],
)
def test_out_of_range_values_are_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        reading(**{field: value})


def test_readings_and_rates_are_frozen():
    current = reading()
    with pytest.raises(dataclasses.FrozenInstanceError):
        current.if_in_octets = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        compute_rates(None, current).in_bps = 5.0  # type: ignore[misc]


# --- invariants over many random intervals --------------------------------------------------


COUNTER_FIELDS = {
    "if_hc_in_octets": COUNTER64_MODULUS, "if_hc_out_octets": COUNTER64_MODULUS,
    "if_in_octets": COUNTER32_MODULUS, "if_out_octets": COUNTER32_MODULUS,
    "if_in_errors": COUNTER32_MODULUS, "if_out_errors": COUNTER32_MODULUS,
    "if_in_discards": COUNTER32_MODULUS, "if_out_discards": COUNTER32_MODULUS,
}
SPEEDS = [(None, None), (0, 0), (None, 64_000), (2, 2_048_000), (100, 100_000_000),
          (1_000, GBIT), (10_000, IF_SPEED_SEE_HIGH_SPEED), (100_000, 10 * GBIT % 2**32)]


def _random_value(rng: random.Random, modulus: int) -> int:
    pick = rng.random()
    if pick < 0.3:
        return rng.randrange(1_000)  # just reset
    if pick < 0.6:
        return modulus - 1 - rng.randrange(10**6)  # near the top
    return rng.randrange(modulus)


def _random_pair(rng: random.Random) -> tuple[InterfaceReading, InterfaceReading]:
    """Mostly a sensible next reading, with any part of it replaced by garbage now and then."""
    high, speed = rng.choice(SPEEDS)
    has_hc = rng.random() < 0.7
    before = InterfaceReading(
        if_index=1,
        sys_uptime_cs=rng.choice([rng.randrange(TIMETICKS_MODULUS), TIMETICKS_MODULUS - 500]),
        read_at_s=rng.uniform(0, 10**6),
        **{name: _random_value(rng, modulus) if has_hc or "hc" not in name else None
           for name, modulus in COUNTER_FIELDS.items()},
        if_high_speed_mbps=high, if_speed_bps=speed,
        if_oper_status=UP, if_admin_status=UP, if_counter_discontinuity_time_cs=0,
    )
    interval_s = rng.choice([-1.0, 0.0, 0.5, 3.0, 10.0, 30.0, 60.0, 60.0, 300.0, 300.0, 3_600.0])
    changes: dict[str, object] = {
        "read_at_s": before.read_at_s + interval_s,
        "sys_uptime_cs": (before.sys_uptime_cs + round(interval_s * 100)) % TIMETICKS_MODULUS,
        "if_oper_status": rng.choice([UP, DOWN]),
        "if_admin_status": rng.choice([UP, DOWN]),
    }
    line_rate_octets = (interface_speed_bps(before) or 10 * GBIT) / 8 * max(interval_s, 0)
    for name, modulus in COUNTER_FIELDS.items():
        value = getattr(before, name)
        if value is not None:
            per_unit = 1 if name.endswith("octets") else 64 * rng.choice([1, 1_000])  # packets
            step = int(rng.uniform(0, 1.3) * line_rate_octets / per_unit)
            changes[name] = (value + step) % modulus
    if rng.random() < 0.3:  # something goes wrong
        garbage = rng.choice(["counter", "counter", "uptime", "index", "discontinuity", "speed"])
        if garbage == "counter":
            name = rng.choice(list(COUNTER_FIELDS))
            if changes.get(name) is not None:
                changes[name] = _random_value(rng, COUNTER_FIELDS[name])
        elif garbage == "uptime":
            changes["sys_uptime_cs"] = rng.randrange(TIMETICKS_MODULUS)
        elif garbage == "index":
            changes["if_index"] = 2
        elif garbage == "discontinuity":
            changes["if_counter_discontinuity_time_cs"] = 99
        else:
            changes["if_high_speed_mbps"], changes["if_speed_bps"] = rng.choice(SPEEDS)
    return before, dataclasses.replace(before, **changes)  # type: ignore[arg-type]


def test_never_negative_never_above_plausible_and_all_or_nothing():
    rng = random.Random(20240607)
    computed = 0
    for _ in range(6_000):
        before, after = _random_pair(rng)
        rates = compute_rates(before, after)
        values = {name: getattr(rates, name) for name in RATE_FIELDS}
        assert all(value is None or value >= 0 for value in values.values()), (before, after)
        assert (rates.skipped_code is None) is (rates.skipped_reason is None)
        if rates.withheld:
            assert all(value is None for value in values.values())
            continue
        computed += 1
        if rates.speed_bps is not None:
            ceiling_bps = rates.speed_bps * PLAUSIBLE_SPEED_FACTOR * (1 + 1e-9)
            for name in ("in_bps", "out_bps"):
                assert values[name] is None or values[name] <= ceiling_bps, (before, after)
            for name in ("in_utilization_pct", "out_utilization_pct"):
                assert values[name] is None or values[name] <= 110 * (1 + 1e-9)
        assert (rates.oper_status, rates.admin_status) == (
            after.if_oper_status, after.if_admin_status
        )
    assert 1_000 < computed < 5_000  # the sweep exercised both accepting and withholding
