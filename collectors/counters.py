"""Interface counters into rates: wraps, resets, and why no rate beats a wrong rate.

An SNMP agent does not report traffic rates. It reports *counters*: ifHCInOctets is the number
of octets the interface has received since some moment in the past, a number that only ever goes
up. A rate is the difference of two readings divided by the time between them, so every rate
here is a judgement about an *interval*, and the one question is whether the counter counted
continuously through it. Usually it did. Three things break that. A counter has a fixed width
and starts again from zero when it passes its top: a *wrap*. The 64-bit ifHC* counters take
centuries to wrap, but the 32-bit ifInOctets wraps every 2**32 octets, in 34 s at 1 Gbit/s and
3.4 s at 10 Gbit/s; one wrap can be undone (add 2**32), two cannot be told from none. A counter
can also start again from zero for other reasons, a *discontinuity*: the device or its agent
restarted (sysUpTime, the agent's own clock in centiseconds, goes back or falls behind the
poller's clock), someone cleared the counters (ifCounterDiscontinuityTime changes, if the agent
keeps it), a line card was swapped. A counter that went down after a discontinuity looks
exactly like one that wrapped; the difference is that a wrap implies a rate the interface could
have carried and a reset usually implies one it could not.

When an interval cannot be trusted, `compute_rates` returns no rates for it (None) and says why
in `skipped_reason`, words for a person, and `skipped_code`, a stable `SkipCode` number for a
machine (the collector stores a withheld interval as a sample whose value is the code, so a gap
in a chart or a report is explained rather than silent). It never guesses. A missing five
minutes shows in an SLA report as a gap someone can explain; a guessed one shows as a 40 Gbit/s
spike on a 1 Gbit/s circuit, or a negative rate, that a customer will quote back and nobody can
defend. The next interval, between two readings of the fresh counter, is good again.
Operational status passes through regardless: whether a port is up does not depend on counter
arithmetic.

Rules, in the order they are applied (the first that fires names the reason, its `SkipCode` in
brackets; any of them withholds every rate of the interval, since a counter that misbehaved says
the interface's counters as a whole cannot be trusted for it):

1. no previous reading [1 NO_PREVIOUS_READING], or a previous reading of another ifIndex
   [2 OTHER_INTERFACE];
2. interval (``read_at_s`` difference) zero or negative [3 NON_POSITIVE_INTERVAL];
3. sysUpTime inconsistent with the interval: went backwards (restart), advanced less
   (restart hidden inside the interval) [4 AGENT_RESTARTED] or more (clock jump, another
   device answering) [5 CLOCKS_DISAGREE]. A sysUpTime that went backwards but whose 2**32 wrap
   (every 497 days) matches the interval is the TimeTicks wrap, not a restart. Some agents
   serve no sysUpTime.0 (``sys_uptime_cs`` None): when either reading lacks it this rule is
   skipped and the interval is judged by the poller's clock alone, so a restart inside it is seen
   only through rules 4 and 5 (a counter that went back or an implausible rate);
4. ifCounterDiscontinuityTime differs between the readings [6 DISCONTINUITY_TIME_CHANGED];
5. per counter: a 64-bit counter that went backwards [7 COUNTER64_WENT_BACKWARDS]; a 32-bit
   octet counter read over an interval long enough for two wraps at the interface's speed
   [8 COUNTER32_INTERVAL_TOO_LONG]; a 32-bit counter that went down and whose single wrap
   implies more than ``PLAUSIBLE_SPEED_FACTOR`` times the speed [9 COUNTER32_RESET]; any
   counter implying more than that, wrapped or not [10 IMPLAUSIBLE_RATE].

The codes are stable: a stored gap keeps its meaning, so a code is never renumbered nor reused,
and a new rule gets the next number.

Octet counters: 64-bit per direction when both readings have them, else 32-bit. Errors and
discards exist only as Counter32 and use the same wrap rule, with the speed turned into a packet
rate at ``MIN_PACKET_OCTETS`` per packet; they are never withheld for a long interval (four
billion errors in one poll interval is not a thing that happens). A counter absent from either
reading gives None for that rate alone, with no skipped reason.

Pure arithmetic: no I/O, no SNMP library; the poller builds `InterfaceReading` values.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, fields

__all__ = [
    "CLOCK_SKEW_ALLOWANCE_RATIO",
    "CLOCK_SKEW_ALLOWANCE_S",
    "COUNTER32_MODULUS",
    "COUNTER64_MODULUS",
    "IF_SPEED_SEE_HIGH_SPEED",
    "MIN_PACKET_OCTETS",
    "PLAUSIBLE_SPEED_FACTOR",
    "TIMETICKS_MODULUS",
    "InterfaceRates",
    "InterfaceReading",
    "SkipCode",
    "compute_rates",
    "field_out_of_range",
    "interface_speed_bps",
]

COUNTER32_MODULUS = 2**32
COUNTER64_MODULUS = 2**64
TIMETICKS_MODULUS = 2**32
"""sysUpTime and ifCounterDiscontinuityTime are TimeTicks: centiseconds modulo 2**32 (497 days)."""

IF_SPEED_SEE_HIGH_SPEED = 4_294_967_295
"""ifSpeed's "too fast for me, read ifHighSpeed" value (RFC 2863)."""

PLAUSIBLE_SPEED_FACTOR = 1.1
"""A rate above speed x this is not believed (10 % headroom for clock jitter between polls)."""

MIN_PACKET_OCTETS = 64
"""Smallest packet assumed when turning a speed into a packet rate (the Ethernet minimum)."""

CLOCK_SKEW_ALLOWANCE_S = 5.0
CLOCK_SKEW_ALLOWANCE_RATIO = 0.1
"""sysUpTime may differ from the interval by 5 s + 10 % (poll latency, retries, caching)."""

_HIGH_SPEED_ROUNDING_BPS = 500_000
"""ifHighSpeed n means n Mbit/s +- 0.5 Mbit/s (RFC 2863)."""

_COUNTER32_FIELDS = frozenset({
    "if_in_octets", "if_out_octets", "if_in_errors", "if_out_errors",
    "if_in_discards", "if_out_discards", "if_speed_bps", "if_high_speed_mbps",
})


class SkipCode(enum.IntEnum):
    """Why an interval's rates were withheld, as a stable number (see the module docstring:
    rule and code). Never renumbered nor reused; stored as the value of a gap sample."""

    NO_PREVIOUS_READING = 1
    OTHER_INTERFACE = 2
    NON_POSITIVE_INTERVAL = 3
    AGENT_RESTARTED = 4
    CLOCKS_DISAGREE = 5
    DISCONTINUITY_TIME_CHANGED = 6
    COUNTER64_WENT_BACKWARDS = 7
    COUNTER32_INTERVAL_TOO_LONG = 8
    COUNTER32_RESET = 9
    IMPLAUSIBLE_RATE = 10


def field_out_of_range(name: str, value: int) -> str | None:
    """The range `value` must lie in to be the `InterfaceReading` field `name` ("0..4294967295",
    ">= 0") when it lies outside, else None: lets a poller skip one bad cell rather than the
    whole reading."""
    top = _field_top(name)
    if value < 0 or (top is not None and value >= top):
        return f"0..{top - 1}" if top is not None else ">= 0"
    return None


def _field_top(name: str) -> int | None:
    """The modulus the `InterfaceReading` field `name` lies below (None: no upper bound)."""
    if name.startswith("if_hc_"):
        return COUNTER64_MODULUS
    if name in _COUNTER32_FIELDS or name.endswith("_cs"):
        return COUNTER32_MODULUS
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class InterfaceReading:
    """One poll of one interface: the IF-MIB columns a rate needs, as the agent returned them.

    Counters are raw values (Counter32 0..2**32-1, Counter64 0..2**64-1); None means the agent
    did not return the column (no ifXTable, noSuchInstance). ``read_at_s`` is the poller's
    *monotonic* clock (``time.monotonic()``) when the reading was taken, for interval
    arithmetic only: the wall clock can be stepped (NTP, an operator), and a step inside an
    interval would make a wrong rate or a false restart. The wall-clock time a sample is
    stamped with is the poll's (``PollResult.started_at``), not the reading's.
    ``sys_uptime_cs`` is the agent's clock, sysUpTime in TimeTicks (centiseconds), None when
    the agent does not serve it (the poller's clock alone judges the interval then).
    Speeds: ifHighSpeed in Mbit/s, ifSpeed in bit/s (Gauge32; 4294967295 means "see
    ifHighSpeed"). Statuses are the IF-MIB integers (1 up, 2 down, 3 testing, ...).
    """

    if_index: int
    sys_uptime_cs: int | None = None
    read_at_s: float
    if_hc_in_octets: int | None = None
    if_hc_out_octets: int | None = None
    if_in_octets: int | None = None
    if_out_octets: int | None = None
    if_in_errors: int | None = None
    if_out_errors: int | None = None
    if_in_discards: int | None = None
    if_out_discards: int | None = None
    if_high_speed_mbps: int | None = None
    if_speed_bps: int | None = None
    if_oper_status: int | None = None
    if_admin_status: int | None = None
    if_counter_discontinuity_time_cs: int | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.read_at_s):
            raise ValueError(f"read_at_s must be a finite number of seconds, not {self.read_at_s}")
        # every interface of every poll comes through here: the ranges are worked out once
        # (_READING_TOPS), the check is the one field_out_of_range makes
        for name, top in _READING_TOPS:
            value = getattr(self, name)
            if value is not None and (value < 0 or (top is not None and value >= top)):
                raise ValueError(f"{name} must be {field_out_of_range(name, value)}, "
                                 f"not {value}")


_READING_TOPS: tuple[tuple[str, int | None], ...] = tuple(
    (field.name, _field_top(field.name)) for field in fields(InterfaceReading)
    if field.name != "read_at_s")
"""The integer fields of an `InterfaceReading` and the modulus each lies below."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InterfaceRates:
    """What one interval between two readings of an interface says, or why it says nothing.

    Rates are averages over ``interval_s`` (the poller's clock between the readings): bit/s,
    percent of ``speed_bps``, errors and discards in packets per second. When the interval
    cannot be trusted every rate is None, ``skipped_reason`` says why in words and
    ``skipped_code`` as a `SkipCode`; a rate can also be None alone when the agent did not
    return its counter (no reason nor code then). Statuses are the current reading's.
    """

    if_index: int
    interval_s: float | None
    in_bps: float | None = None
    out_bps: float | None = None
    in_utilization_pct: float | None = None
    out_utilization_pct: float | None = None
    in_errors_per_s: float | None = None
    out_errors_per_s: float | None = None
    in_discards_per_s: float | None = None
    out_discards_per_s: float | None = None
    speed_bps: int | None = None
    oper_status: int | None = None
    admin_status: int | None = None
    skipped_reason: str | None = None
    skipped_code: SkipCode | None = None

    @property
    def withheld(self) -> bool:
        """True when the interval was judged untrustworthy and no rate is given."""
        return self.skipped_reason is not None


class _Untrusted(Exception):
    """Internal: the interval cannot be trusted; the message is the skipped reason."""

    def __init__(self, code: SkipCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def interface_speed_bps(reading: InterfaceReading) -> int | None:
    """The interface's speed in bit/s, or None when the agent does not know it.

    ifHighSpeed (Mbit/s) when present and non-zero, else ifSpeed (bit/s) unless it is 0
    (unknown) or 4294967295 ("see ifHighSpeed"). One refinement: when ifSpeed is valid and
    agrees with ifHighSpeed within ifHighSpeed's rounding, ifSpeed is used because it is exact
    (a 1.544 Mbit/s T1 reports ifHighSpeed 2; a 2.048 Mbit/s E1 reports 2). An ifSpeed that
    disagrees (agents that report 10 Gbit/s as 10**10 mod 2**32) loses to ifHighSpeed.
    """
    if_speed = reading.if_speed_bps
    if if_speed in (0, IF_SPEED_SEE_HIGH_SPEED):
        if_speed = None
    high = reading.if_high_speed_mbps
    if high:
        high_bps = high * 1_000_000
        if if_speed is not None and abs(if_speed - high_bps) <= _HIGH_SPEED_ROUNDING_BPS:
            return if_speed
        return high_bps
    return if_speed


def compute_rates(previous: InterfaceReading | None, current: InterfaceReading) -> InterfaceRates:
    """Rates for the interval from ``previous`` to ``current``, or none with the reason.

    See the module docstring for the rules. ``previous`` is None for the first reading of an
    interface (no rates). The result's statuses are always ``current``'s.
    """
    speed_bps = _interval_speed_bps(previous, current)
    if previous is None:
        return _withhold(current, None, speed_bps, SkipCode.NO_PREVIOUS_READING,
                         "no previous reading")
    if previous.if_index != current.if_index:
        return _withhold(
            current, None, speed_bps,
            SkipCode.OTHER_INTERFACE,
            f"previous reading is of another interface "
            f"(ifIndex {previous.if_index}, now {current.if_index})",
        )
    interval_s = current.read_at_s - previous.read_at_s
    if interval_s <= 0:
        return _withhold(current, interval_s, speed_bps, SkipCode.NON_POSITIVE_INTERVAL,
                         f"interval is not positive ({interval_s:g} s)")
    try:
        _check_agent_clock(previous, current, interval_s)
        _check_discontinuity_time(previous, current)
        return _rates(previous, current, interval_s, speed_bps)
    except _Untrusted as untrusted:
        return _withhold(current, interval_s, speed_bps, untrusted.code, str(untrusted))


def _interval_speed_bps(previous: InterfaceReading | None, current: InterfaceReading) -> int | None:
    """The fastest the interface was during the interval (a renegotiation can change it)."""
    speeds = [interface_speed_bps(current)]
    if previous is not None and previous.if_index == current.if_index:
        speeds.append(interface_speed_bps(previous))
    known = [speed for speed in speeds if speed is not None]
    return max(known) if known else None


def _check_agent_clock(
    previous: InterfaceReading, current: InterfaceReading, interval_s: float
) -> None:
    """sysUpTime must have advanced by the interval (allowing its 497-day wrap); an agent
    without sysUpTime (None in either reading) is not judged here: the poller's clock alone."""
    if previous.sys_uptime_cs is None or current.sys_uptime_cs is None:
        return
    allowance_s = CLOCK_SKEW_ALLOWANCE_S + CLOCK_SKEW_ALLOWANCE_RATIO * interval_s
    advanced_cs = current.sys_uptime_cs - previous.sys_uptime_cs
    if advanced_cs < 0:
        wrapped_s = (advanced_cs + TIMETICKS_MODULUS) / 100
        if abs(wrapped_s - interval_s) > allowance_s:
            raise _Untrusted(
                SkipCode.AGENT_RESTARTED,
                f"agent restarted (sysUpTime went backwards: "
                f"{_uptime(previous.sys_uptime_cs)} -> {_uptime(current.sys_uptime_cs)})"
            )
        return  # the TimeTicks wrap, consistent with the interval
    advanced_s = advanced_cs / 100
    if advanced_s < interval_s - allowance_s:
        raise _Untrusted(
            SkipCode.AGENT_RESTARTED,
            f"agent restarted (sysUpTime advanced {advanced_s:g} s "
            f"in a {interval_s:g} s interval; now {_uptime(current.sys_uptime_cs)})"
        )
    if advanced_s > interval_s + allowance_s:
        raise _Untrusted(
            SkipCode.CLOCKS_DISAGREE,
            f"clocks disagree (sysUpTime advanced {advanced_s:g} s "
            f"in a {interval_s:g} s interval)"
        )


def _check_discontinuity_time(previous: InterfaceReading, current: InterfaceReading) -> None:
    before = previous.if_counter_discontinuity_time_cs
    after = current.if_counter_discontinuity_time_cs
    if before != after:
        raise _Untrusted(
            SkipCode.DISCONTINUITY_TIME_CHANGED,
            f"counter discontinuity (ifCounterDiscontinuityTime changed: {before} -> {after})"
        )


def _rates(
    previous: InterfaceReading,
    current: InterfaceReading,
    interval_s: float,
    speed_bps: int | None,
) -> InterfaceRates:
    """The interval's rates (one frozen object per interface and poll: built once, here)."""
    max_octets_per_s = None if speed_bps is None else speed_bps * PLAUSIBLE_SPEED_FACTOR / 8
    max_packets_per_s = None if max_octets_per_s is None else max_octets_per_s / MIN_PACKET_OCTETS
    in_octets_per_s = _octets_per_s(
        previous.if_hc_in_octets, current.if_hc_in_octets, previous.if_in_octets,
        current.if_in_octets, "if_hc_in_octets", "if_in_octets", interval_s, speed_bps,
        max_octets_per_s)
    out_octets_per_s = _octets_per_s(
        previous.if_hc_out_octets, current.if_hc_out_octets, previous.if_out_octets,
        current.if_out_octets, "if_hc_out_octets", "if_out_octets", interval_s, speed_bps,
        max_octets_per_s)
    in_bps = None if in_octets_per_s is None else in_octets_per_s * 8
    out_bps = None if out_octets_per_s is None else out_octets_per_s * 8
    return InterfaceRates(
        if_index=current.if_index,
        interval_s=interval_s,
        speed_bps=speed_bps,
        oper_status=current.if_oper_status,
        admin_status=current.if_admin_status,
        in_bps=in_bps,
        out_bps=out_bps,
        in_utilization_pct=_utilization_pct(in_bps, speed_bps),
        out_utilization_pct=_utilization_pct(out_bps, speed_bps),
        in_errors_per_s=_packets_per_s(previous.if_in_errors, current.if_in_errors,
                                       "if_in_errors", interval_s, max_packets_per_s),
        out_errors_per_s=_packets_per_s(previous.if_out_errors, current.if_out_errors,
                                        "if_out_errors", interval_s, max_packets_per_s),
        in_discards_per_s=_packets_per_s(previous.if_in_discards, current.if_in_discards,
                                         "if_in_discards", interval_s, max_packets_per_s),
        out_discards_per_s=_packets_per_s(previous.if_out_discards, current.if_out_discards,
                                          "if_out_discards", interval_s, max_packets_per_s),
    )


# Every interface of every poll comes through the two below: a counter that went up by a
# plausible amount (nearly always) is worked out in place; a wrap, a reset or an implausible
# rate goes to `_per_s`, which judges it.


def _octets_per_s(hc_before: int | None, hc_after: int | None, before: int | None,
                  after: int | None, hc_field: str, field: str, interval_s: float,
                  speed_bps: int | None, max_per_s: float | None) -> float | None:
    """Octets per second from the 64-bit counters when both readings have them, else from
    the 32-bit ones (None without either)."""
    if hc_before is not None and hc_after is not None:
        delta = hc_after - hc_before
        if delta >= 0:
            per_s = delta / interval_s
            if max_per_s is None or per_s <= max_per_s:
                return per_s
        return _per_s(_mib_name(hc_field), hc_before, hc_after, COUNTER64_MODULUS, interval_s,
                      max_per_s, octets=True)
    if before is None or after is None:
        return None
    if speed_bps is not None:
        _check_single_wrap_window(_mib_name(field), speed_bps, interval_s)
    return _per_s(_mib_name(field), before, after, COUNTER32_MODULUS, interval_s, max_per_s,
                  octets=True)


def _packets_per_s(before: int | None, after: int | None, field: str, interval_s: float,
                   max_per_s: float | None) -> float | None:
    if before is None or after is None:
        return None
    delta = after - before
    if delta >= 0:
        per_s = delta / interval_s
        if max_per_s is None or per_s <= max_per_s:
            return per_s
    return _per_s(_mib_name(field), before, after, COUNTER32_MODULUS, interval_s, max_per_s,
                  octets=False)


def _check_single_wrap_window(name: str, speed_bps: int, interval_s: float) -> None:
    """A 32-bit octet counter is ambiguous once a plausible rate could wrap it twice."""
    if speed_bps * PLAUSIBLE_SPEED_FACTOR / 8 * interval_s >= COUNTER32_MODULUS:
        wraps_in_s = COUNTER32_MODULUS * 8 / speed_bps
        raise _Untrusted(
            SkipCode.COUNTER32_INTERVAL_TOO_LONG,
            f"interval too long for 32-bit {name}: at {_format_bps(speed_bps)} it can wrap "
            f"every {wraps_in_s:.3g} s, the interval was {interval_s:g} s "
            f"(poll faster, or use ifHC counters)"
        )


def _per_s(
    name: str,
    before: int,
    after: int,
    modulus: int,
    interval_s: float,
    max_per_s: float | None,
    *,
    octets: bool,
) -> float:
    """The counter's increase per second, or `_Untrusted` when it cannot be believed."""
    delta = after - before
    wrapped = delta < 0
    if wrapped:
        if modulus == COUNTER64_MODULUS:
            raise _Untrusted(SkipCode.COUNTER64_WENT_BACKWARDS,
                             f"counter reset ({name} went backwards: {before} -> {after})")
        delta += modulus
    per_s = delta / interval_s
    if max_per_s is not None and per_s > max_per_s:
        shown, limit = (
            (_format_bps(per_s * 8), _format_bps(max_per_s * 8))
            if octets
            else (f"{per_s:.4g} packets/s", f"{max_per_s:.4g} packets/s")
        )
        if wrapped:
            raise _Untrusted(
                SkipCode.COUNTER32_RESET,
                f"counter reset ({name} went down {before} -> {after}; one 32-bit wrap would "
                f"mean {shown}, above the plausible {limit})"
            )
        raise _Untrusted(SkipCode.IMPLAUSIBLE_RATE,
                         f"implausible rate ({name} implies {shown}, above the plausible {limit})")
    return per_s


def _utilization_pct(bps: float | None, speed_bps: int | None) -> float | None:
    if bps is None or not speed_bps:
        return None
    return bps * 100.0 / speed_bps


def _withhold(current: InterfaceReading, interval_s: float | None, speed_bps: int | None,
              code: SkipCode, reason: str) -> InterfaceRates:
    """No rates for the interval to `current`, and why (statuses are `current`'s)."""
    return InterfaceRates(
        if_index=current.if_index,
        interval_s=interval_s,
        speed_bps=speed_bps,
        oper_status=current.if_oper_status,
        admin_status=current.if_admin_status,
        skipped_reason=reason,
        skipped_code=code,
    )


_MIB_NAMES = {
    "if_hc_in_octets": "ifHCInOctets",
    "if_hc_out_octets": "ifHCOutOctets",
    "if_in_octets": "ifInOctets",
    "if_out_octets": "ifOutOctets",
    "if_in_errors": "ifInErrors",
    "if_out_errors": "ifOutErrors",
    "if_in_discards": "ifInDiscards",
    "if_out_discards": "ifOutDiscards",
}


def _mib_name(field: str) -> str:
    return _MIB_NAMES[field]


def _format_bps(bps: float) -> str:
    for unit, scale in (("Tbit/s", 1e12), ("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bps >= scale:
            return f"{bps / scale:.4g} {unit}"
    return f"{bps:.4g} bit/s"


def _uptime(ticks_cs: int) -> str:
    seconds = ticks_cs // 100
    days, seconds = divmod(seconds, 86_400)
    hours, seconds = divmod(seconds, 3_600)
    minutes, seconds = divmod(seconds, 60)
    return f"{days}d {hours:02d}:{minutes:02d}:{seconds:02d}"
