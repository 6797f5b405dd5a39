"""When each device is polled: poll groups, intervals, and start times spread over the interval.

Every device belongs to a *poll group* (the inventory's ``poller_group``) and the group sets its
interval: key accounts' edge devices every 10 s, the core every 60 s (settings ``[poll]``).
Each device is its own scheduled job, so a device that answers slowly, or not at all, holds
back only itself: its next poll is *skipped and counted* while the previous one still runs
(a cycle never overlaps itself), and every other device keeps its interval.

If every device of a group started at the same instant, the collector would send a burst of
requests each interval and the agents' and the machine's UDP buffers would drop some (see
LAB-NOTES). So each device gets a fixed *phase* inside its interval, derived from its id:
2,000 devices in a 60 s group are polled about 33 a second, evenly, and a device is polled at
the same phase each interval, which keeps its rate intervals regular. The phase comes from a
multiplicative hash rather than the id's position in a list, so adding a device does not move
everyone else's phase.
"""

from __future__ import annotations

from dataclasses import dataclass

# Knuth's multiplicative hashing constant (2**32 / golden ratio): consecutive ids land far
# apart in [0, 1), so devices imported together do not bunch up.
_GOLDEN_32 = 2_654_435_769


def phase_fraction(device_id: int) -> float:
    """A stable number in [0, 1) for a device: where in its interval it is polled."""
    return ((device_id * _GOLDEN_32) & 0xFFFF_FFFF) / 2**32


def plan_poll(device_id: int, device_key: str, poll_group: str, interval_s: float,
              startup_spread_s: float) -> PollPlan:
    """The device's schedule: its regular polls at its phase of the interval and up to two
    *warm-up* polls within the first ``2 * startup_spread_s``.

    Rates need two readings: without warm-up, a 60 s device would show its first traffic
    numbers up to two minutes after the collector started; with it, within
    ``2.5 * startup_spread_s`` (25 s by default). A
    warm-up poll is kept only when it comes at least ``startup_spread_s / 2`` away from every
    other poll, so that every rate covers a real stretch of time, never a few milliseconds
    (and a short interval, whose regular polls come soon anyway, gets none)."""
    phase = phase_fraction(device_id)
    first_delay_s = phase * interval_s
    horizon_s = 2 * startup_spread_s + interval_s
    regular_s = [first_delay_s + n * interval_s
                 for n in range(int(horizon_s // interval_s) + 2)]
    warmups: list[float] = []
    for delay_s in (phase * startup_spread_s, (phase + 1) * startup_spread_s):
        if all(abs(delay_s - other_s) >= startup_spread_s / 2
               for other_s in (*regular_s, *warmups)):
            warmups.append(delay_s)
    return PollPlan(device_id, device_key, poll_group, interval_s, first_delay_s,
                    tuple(warmups))


@dataclass(frozen=True)
class PollPlan:
    """One device's schedule: its group's interval, the delay of its first regular poll (its
    phase), and the delays of its warm-up polls (none when the first poll comes soon)."""

    device_id: int
    device_key: str
    poll_group: str
    interval_s: float
    first_delay_s: float
    warmup_delays_s: tuple[float, ...]
