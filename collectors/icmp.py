"""ICMP echo: is the device there at all, when SNMP says nothing?

An SNMP poll that gets no answer does not tell a dead router from a live one whose agent is
silent: a wrong community, an ACL, an agent that speaks only SNMPv1 or is not running all
look the same as a power cut. Calling such a device *down* would blame the network for a
configuration problem, and turn every circuit on it into an outage that never happened. So a
device is declared down only when it also fails an ICMP echo (ping), the test every NOC
engineer runs first; when it answers the echo, its SNMP is what is broken
(collectors.reachability).

Echo needs either a raw socket (root, or CAP_NET_RAW) or the kernel's unprivileged "ping
sockets" (Linux, for the groups in `net.ipv4.ping_group_range`). `IcmpChecker.open()` finds
which one this process may use, preferring the unprivileged kind, and raises `IcmpUnavailable`
with what to change when neither works; the collector then says so once and never calls a
device down on SNMP silence alone (it cannot prove it). The echoes go through icmplib.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

log = logging.getLogger(__name__)

PING_GROUP_RANGE = "/proc/sys/net/ipv4/ping_group_range"


class IcmpUnavailable(Exception):
    """This process may not send ICMP echoes: the message says what to change."""


@dataclass(frozen=True)
class EchoResult:
    """What an echo check of one address gave: `alive` when any reply came back."""

    address: str
    alive: bool
    sent: int
    received: int
    rtt_ms: float | None = None  # average of the replies
    error: str | None = None  # why the check itself failed (not "no reply")

    def describe(self) -> str:
        if self.error:
            return f"ICMP check of {self.address} failed: {self.error}"
        if self.alive:
            return (f"answers ICMP echo ({self.received}/{self.sent} replies, "
                    f"{self.rtt_ms:.1f} ms)")
        return f"no ICMP echo reply ({self.sent} sent)"


def _ping_groups() -> tuple[int, int] | None:
    try:
        with open(PING_GROUP_RANGE) as stream:
            low, high = stream.read().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return None


def _unprivileged_allowed() -> bool:
    span = _ping_groups()
    if span is None:
        return False
    low, high = span
    return any(low <= group <= high for group in {os.getgid(), *os.getgroups()})


class IcmpChecker:
    """Sends `count` echoes `interval_s` apart and waits `timeout_s` for each reply.
    Construct with `open()`, which settles privileged vs unprivileged sockets once."""

    def __init__(self, *, privileged: bool, count: int = 3, interval_s: float = 0.2,
                 timeout_s: float = 1.0) -> None:
        if count < 1 or interval_s < 0 or timeout_s <= 0:
            raise ValueError("ICMP check: count >= 1, interval_s >= 0 and timeout_s > 0")
        self.privileged = privileged
        self.count = count
        self.interval_s = interval_s
        self.timeout_s = timeout_s

    @classmethod
    def open(cls, *, count: int = 3, interval_s: float = 0.2,
             timeout_s: float = 1.0) -> IcmpChecker:
        """A checker with the kind of socket this process may use; IcmpUnavailable if none."""
        from icmplib import ICMPv4Socket, SocketPermissionError

        for privileged in (False, True):
            if not privileged and not _unprivileged_allowed():
                continue
            try:
                ICMPv4Socket(privileged=privileged).close()
            except (SocketPermissionError, OSError):
                continue
            return cls(privileged=privileged, count=count, interval_s=interval_s,
                       timeout_s=timeout_s)
        span = _ping_groups()
        groups = f"{span[0]} {span[1]}" if span else "unknown"
        raise IcmpUnavailable(
            "ICMP echo is not available to this process: it is not root (no CAP_NET_RAW) and "
            f"net.ipv4.ping_group_range ({groups}) does not include its group {os.getgid()}; "
            "run the collector as root, or allow ping sockets with "
            "`sysctl -w net.ipv4.ping_group_range='0 2147483647'`, or set [poll] icmp_check = "
            "false to call devices down on SNMP silence alone")

    async def check(self, address: str) -> EchoResult:
        """Echo `address`; never raises for what the network does."""
        from icmplib import ICMPLibError, async_ping

        try:
            host = await async_ping(address, count=self.count, interval=self.interval_s,
                                    timeout=self.timeout_s, privileged=self.privileged)
        except (ICMPLibError, OSError) as error:
            return EchoResult(address, False, self.count, 0,
                              error=f"{type(error).__name__}: {error}")
        return EchoResult(address, host.is_alive, host.packets_sent, host.packets_received,
                          host.avg_rtt if host.is_alive else None)
