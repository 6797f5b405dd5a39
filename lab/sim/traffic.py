"""Live counters: how a simulated interface's octet and packet counters grow.

A real interface counter counts since the device booted, grows by the traffic that crossed
the port, stops growing while the port is down, and - for the 32-bit Counter32 objects of the
old ifTable - wraps from 4294967295 back to 0 (at 60 % of 1 Gbit/s, every 76 seconds). The
64-bit ifHC* counters of ifXTable count the same octets and in practice never wrap.

Here a counter's value is a pure function of the wall-clock time, so that any number of
readers see one consistent counter and nothing has to be stored between requests:

    active(t)  = seconds since boot during which the port carried traffic
    value(t)   = R * (a + J * P / 2pi * (cos(phi) - cos(2pi * a / P + phi)))  mod 2**bits
                 with a = active(t)

which is the integral of a rate that wobbles around its mean R by +-J (J < 1, so the counter
never goes backwards) with a period of P seconds. ifInOctets and ifHCInOctets of one port use
the same R, J, P and phi, so the 32-bit counter is exactly the low 32 bits of the 64-bit one,
as on a real device.

The parameters travel in the snmprec file as the value of a record handled by the variation
module `keyline_counter` (lab/sim/variation/), e.g.

    1.3.6.1.2.1.31.1.1.1.6.3|70:keyline_counter|rate=4.1e7,jitter=0.2,period=47,...

`CounterSpec.encode` writes that text and `CounterSpec.decode` reads it back. Why not
snmpsim's own `numeric` module: it wraps at its `max` (2**32 - 1, one off per wrap), its
jitter (`deviation`) either makes a counter go backwards or depends on how often it is
polled, and it caches each record's settings for the life of the process, so a counter
cannot be told to stop while its port is down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class CounterSpec:
    """A counter that is 0 at `boot_epoch_s` and grows at `rate_per_s` on average.

    `paused_s` is the time since boot during which it did not grow (its port was down), and
    `paused_since_epoch_s`, when set, is the moment it stopped growing and has not resumed.
    """

    rate_per_s: float
    boot_epoch_s: float
    bits: int = 64
    jitter_ratio: float = 0.0
    period_s: float = 60.0
    phase_rad: float = 0.0
    paused_s: float = 0.0
    paused_since_epoch_s: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.jitter_ratio < 1.0:
            raise ValueError(f"jitter_ratio must be in [0, 1), not {self.jitter_ratio}")
        if self.period_s <= 0 or self.rate_per_s < 0 or self.bits not in (32, 64):
            raise ValueError(f"bad counter parameters: {self}")

    def active_s(self, now_epoch_s: float) -> float:
        """Seconds since boot during which the counter grew, as of `now_epoch_s`."""
        until = now_epoch_s
        if self.paused_since_epoch_s is not None:
            until = min(until, self.paused_since_epoch_s)
        return max(until - self.boot_epoch_s - self.paused_s, 0.0)

    def value(self, now_epoch_s: float) -> int:
        """The counter as the agent answers it at `now_epoch_s` (wrapped to `bits`)."""
        active = self.active_s(now_epoch_s)
        total = self.rate_per_s * active
        if self.jitter_ratio:
            amplitude = self.jitter_ratio * self.period_s / (2 * math.pi)
            angle = 2 * math.pi * active / self.period_s + self.phase_rad
            total += self.rate_per_s * amplitude * (math.cos(self.phase_rad) - math.cos(angle))
        return int(total) % (2**self.bits)

    def paused(self, since_epoch_s: float) -> CounterSpec:
        """The same counter, no longer growing from `since_epoch_s` on."""
        if self.paused_since_epoch_s is not None:
            return self
        return replace(self, paused_since_epoch_s=since_epoch_s)

    def resumed(self, at_epoch_s: float) -> CounterSpec:
        """The same counter, growing again from `at_epoch_s` on."""
        if self.paused_since_epoch_s is None:
            return self
        stopped_s = max(at_epoch_s - self.paused_since_epoch_s, 0.0)
        return replace(self, paused_s=self.paused_s + stopped_s, paused_since_epoch_s=None)

    def encode(self) -> str:
        """The snmprec value text for the `keyline_counter` variation module."""
        parts = [
            f"rate={self.rate_per_s!r}",
            f"boot={self.boot_epoch_s!r}",
            f"bits={self.bits}",
            f"jitter={self.jitter_ratio!r}",
            f"period={self.period_s!r}",
            f"phase={self.phase_rad!r}",
            f"paused={self.paused_s!r}",
        ]
        if self.paused_since_epoch_s is not None:
            parts.append(f"since={self.paused_since_epoch_s!r}")
        return ",".join(parts)

    @classmethod
    def decode(cls, text: str) -> CounterSpec:
        fields = dict(part.split("=", 1) for part in text.split(",") if part)
        since = fields.get("since")
        return cls(
            rate_per_s=float(fields["rate"]),
            boot_epoch_s=float(fields["boot"]),
            bits=int(fields.get("bits", "64")),
            jitter_ratio=float(fields.get("jitter", "0")),
            period_s=float(fields.get("period", "60")),
            phase_rad=float(fields.get("phase", "0")),
            paused_s=float(fields.get("paused", "0")),
            paused_since_epoch_s=float(since) if since is not None else None,
        )
