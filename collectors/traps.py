"""The trap receiver: a link fault seen within a second, not at the next poll.

An SNMP agent can tell its manager about an event as it happens, by sending a *notification*
(a "trap") to UDP port 162 of the manager: no request, no answer. The ones that matter here
are defined in SNMPv2-MIB / IF-MIB, identified by the snmpTrapOID.0 varbind every v2c/v3
notification carries:

=========== ===================== ==================================================
trap        snmpTrapOID           becomes
=========== ===================== ==================================================
linkDown    1.3.6.1.6.3.1.1.5.3   oper_status of the port (ifIndex varbind): "down",
                                  or the ifOperStatus varbind's value when present
linkUp      1.3.6.1.6.3.1.1.5.4   oper_status of the port: "up" (or the varbind's)
coldStart   1.3.6.1.6.3.1.1.5.1   agent_restart of the device
warmStart   1.3.6.1.6.3.1.1.5.2   agent_restart of the device
=========== ===================== ==================================================

A linkDown/linkUp that carries ifAdminStatus also gives an admin_status observation. The
observations are exactly the ones a poll would produce (collectors.observations), with
source "trap", so the alarm pipeline does not care which saw a change first; a
`StateTracker` shared with the poller keeps the later one from being reported twice.

Which device sent it? The UDP source address, looked up in `targets_by_address` (the
inventory's management addresses). A trap relayed through another box (a trap forwarder,
a NAT) carries the originating agent's address in the snmpTrapAddress.0 varbind
(SNMP-COMMUNITY-MIB, 1.3.6.1.6.3.18.1.3.0): when that names a known device it wins, and the
relay's address goes into the observation's detail. Which port? The ifIndex varbind, through
the target's ``ports_by_if_index``.

Security. A v2c trap is accepted only with one of `communities`; a v3 trap only from a
configured user (`V3TrapUser`) with the right keys. For v3 the *sender* is authoritative (a
trap is not answered, so there is no discovery): the receiver must know each agent's
snmpEngineID to localize the user's keys, hence ``engine_id`` per user and agent, given at
construction or later with `add_v3_user` (the poller learns each v3 agent's engine id from
its answers: `PollResult.engine_id`, and the collection service adds the user then).
A v3 trap from an engine id not configured is counted in ``v3_rejected`` with the reason.

Nothing is dropped silently: traps from unknown sources, with a wrong community, failing v3
security, naming an ifIndex the inventory does not have, or of a kind not handled are
counted per source address in `TrapStats` and logged at WARNING, at most once a minute per
(reason, source) with the number seen since; a community is never logged.

Under a flood (a scan, a misconfigured box, random bytes at thousands a second) the real
traps inside it must still get through, so each datagram costs little before it is known
to matter. A cheap screen counts in ``not_snmp`` what cannot be an SNMP message (not a BER
SEQUENCE starting with version 0, 1 or 3); a v2c SNMPv2-Trap, the common case, is read by the
poller's lean codec (collectors.snmp_fast) in tens of microseconds instead of pysnmp's half
millisecond; what is left for pysnmp (v1, v3, informs), when it comes from neither a known
device nor a relay already seen relaying one, is decoded only within a budget
(`UNKNOWN_SOURCE_DECODES_PER_S`), the rest counted in ``shed``; what pysnmp cannot decode is
counted in ``undecodable`` and logged as one line, never a traceback. The socket's receive
buffer is ``[traps] receive_buffer_bytes``, set with SO_RCVBUFFORCE where the process may
(root, CAP_NET_ADMIN) so net.core.rmem_max does not cap it; the grant is logged at start,
with a WARNING naming the sysctl when it is short. It holds at least `burst_capacity`
datagrams: a burst that size loses nothing however slow the receiver. What the kernel still
dropped (the socket's ``drops`` in /proc/net/udp) is sampled every few seconds into
``kernel_drops`` and logged at WARNING at most once a minute. Per-source counters and
warnings are bounded (`MAX_SOURCES`, `MAX_WARNING_KEYS`): spoofed addresses cannot grow the
process.

    receiver = TrapReceiver(targets_by_address, host="0.0.0.0", port=1162,
                            communities=["public"], v3_users=[],
                            on_observations=lambda observations: ...)
    await receiver.start()      # in the running event loop; the callback runs on it
    ...
    await receiver.stop()

pysnmp 7's engine does the protocol work for all but v2c traps (BER, community and USM
checks, decryption, answering informs), called synchronously for each datagram that passed
the screen: `pysnmp.entity.rfc3413.ntfrcv.NotificationReceiver` calls back with the varbinds
of every notification that passed the checks; two of the engine's observer hooks report the
ones that did not ("rfc2576.processIncomingMsg:writable" sees every v1/v2c community,
"rfc3412.prepareDataElements:sm-failure" every v3 security failure).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr
from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config, engine
from pysnmp.entity.rfc3413 import ntfrcv
from pysnmp.proto import rfc1902

from collectors import snmp_fast
from collectors.model import Observation, PollTarget
from collectors.observations import (
    KIND_ADMIN_STATUS,
    KIND_AGENT_RESTART,
    KIND_OPER_STATUS,
    RESTARTED,
    admin_status_name,
    oper_status_name,
)

log = logging.getLogger(__name__)

DEFAULT_PORT = 1162  # 162 needs root; operators forward 162 to it or run as root with port=162
# Asked of the kernel with SO_RCVBUF(FORCE); the [traps] receive_buffer_bytes default.
RECEIVE_BUFFER_BYTES = 8 << 20
# What the kernel charges a queued datagram against the buffer (its skb "truesize"), at
# most, for a datagram up to 1,400 bytes: 832 bytes for a small one on loopback, 2,304 for
# 1,400 bytes, up to a 4 KiB page on NICs that receive into pages. A floor, hence the most.
KERNEL_BYTES_PER_DATAGRAM = 4096
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux; Python does not export it
WARN_INTERVAL_S = 60.0
DROPS_INTERVAL_S = 5.0  # how often the socket's kernel drop counter is read
MAX_SOURCES = 4096  # distinct sources counted per counter; the rest under OTHER_SOURCES
MAX_WARNING_KEYS = 256  # distinct (reason, source) rate-limited at once; the rest together
OTHER_SOURCES = "(other sources)"
# Datagrams from sources that are no known device (nor a relay of one) that pysnmp decodes
# per second, at most, with bursts of as many: a relay's first traps, and the junk of a scan.
UNKNOWN_SOURCE_DECODES_PER_S = 200.0
MAX_RELAYS = 1024
SNMP_VERSIONS = (0, 1, 3)  # v1, v2c, v3 as the message's first INTEGER
PDU_V2_TRAP = 0xA7  # SNMPv2-Trap-PDU (RFC 3416)

SYS_UPTIME_0 = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SNMP_TRAP_OID_0 = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
SNMP_TRAP_ADDRESS_0 = (1, 3, 6, 1, 6, 3, 18, 1, 3, 0)
IF_INDEX = (1, 3, 6, 1, 2, 1, 2, 2, 1, 1)
IF_ADMIN_STATUS = (1, 3, 6, 1, 2, 1, 2, 2, 1, 7)
IF_OPER_STATUS = (1, 3, 6, 1, 2, 1, 2, 2, 1, 8)

COLD_START = (1, 3, 6, 1, 6, 3, 1, 1, 5, 1)
WARM_START = (1, 3, 6, 1, 6, 3, 1, 1, 5, 2)
LINK_DOWN = (1, 3, 6, 1, 6, 3, 1, 1, 5, 3)
LINK_UP = (1, 3, 6, 1, 6, 3, 1, 1, 5, 4)
TRAP_NAMES = {COLD_START: "coldStart", WARM_START: "warmStart", LINK_DOWN: "linkDown",
              LINK_UP: "linkUp"}

AUTH_PROTOCOLS = {
    None: config.USM_AUTH_NONE, "MD5": config.USM_AUTH_HMAC96_MD5,
    "SHA": config.USM_AUTH_HMAC96_SHA, "SHA224": config.USM_AUTH_HMAC128_SHA224,
    "SHA256": config.USM_AUTH_HMAC192_SHA256, "SHA384": config.USM_AUTH_HMAC256_SHA384,
    "SHA512": config.USM_AUTH_HMAC384_SHA512,
}
PRIV_PROTOCOLS = {
    None: config.USM_PRIV_NONE, "DES": config.USM_PRIV_CBC56_DES,
    "3DES": config.USM_PRIV_CBC168_3DES, "AES": config.USM_PRIV_CFB128_AES,
    "AES192": config.USM_PRIV_CFB192_AES, "AES256": config.USM_PRIV_CFB256_AES,
    "AES192B": config.USM_PRIV_CFB192_AES_BLUMENTHAL,
    "AES256B": config.USM_PRIV_CFB256_AES_BLUMENTHAL,
}

ObservationsCallback = Callable[[list[Observation]], None]


@dataclass(frozen=True)
class V3TrapUser:
    """A v3 user whose traps are accepted from the agent with snmpEngineID `engine_id`
    (one entry per user and agent: the keys are localized to each agent's engine id)."""

    username: str
    engine_id: bytes
    auth_protocol: str | None = "SHA"
    auth_key: SecretStr | None = None
    priv_protocol: str | None = "AES"
    priv_key: SecretStr | None = None


@dataclass
class TrapStats:
    """Counters of the receiver, by source address (a string) where it says so; each
    counts at most `MAX_SOURCES` addresses, the others together under `OTHER_SOURCES`."""

    received: int = 0  # notifications that passed the security checks
    observations: int = 0  # observations handed to the callback
    unknown_source: Counter[str] = field(default_factory=Counter)
    wrong_community: Counter[str] = field(default_factory=Counter)
    v3_rejected: Counter[str] = field(default_factory=Counter)
    unmapped_port: Counter[str] = field(default_factory=Counter)  # ifIndex not in inventory
    ignored: Counter[str] = field(default_factory=Counter)  # trap kinds not handled, by OID
    callback_errors: int = 0
    datagrams: int = 0  # read from the socket, whatever they were
    not_snmp: Counter[str] = field(default_factory=Counter)  # failed the cheap screen
    shed: Counter[str] = field(default_factory=Counter)  # unknown source, over the budget
    undecodable: Counter[str] = field(default_factory=Counter)  # pysnmp could not decode
    kernel_drops: int = 0  # dropped by the kernel, the receive buffer full (all sockets)
    receive_buffer_bytes: int = 0  # as the kernel reports it granted (Linux: twice asked)


@dataclass(frozen=True)
class Notification:
    """The parts of a received notification that matter here, as plain Python values."""

    trap_oid: tuple[int, ...] | None
    sys_uptime_cs: int | None = None
    agent_address: str | None = None  # snmpTrapAddress.0
    if_index: int | None = None
    if_admin_status: int | None = None
    if_oper_status: int | None = None


def parse_notification(varbinds: Iterable[tuple[Any, Any]]) -> Notification:
    """Pick snmpTrapOID, sysUpTime, snmpTrapAddress and the IF-MIB columns out of
    `varbinds` ((oid, value) pairs; oids as tuples or pysnmp ObjectNames)."""
    found: dict[str, Any] = {}
    for name, value in varbinds:
        oid = tuple(name)
        if oid == SNMP_TRAP_OID_0:
            found["trap_oid"] = tuple(value)
        elif oid == SYS_UPTIME_0:
            found["sys_uptime_cs"] = int(value)
        elif oid == SNMP_TRAP_ADDRESS_0:
            found["agent_address"] = _ip_text(value)
        elif oid[:-1] == IF_INDEX:
            found["if_index"] = int(value)
        elif oid[:-1] == IF_ADMIN_STATUS:
            found["if_admin_status"] = int(value)
            found.setdefault("if_index", oid[-1])
        elif oid[:-1] == IF_OPER_STATUS:
            found["if_oper_status"] = int(value)
            found.setdefault("if_index", oid[-1])
    return Notification(trap_oid=found.pop("trap_oid", None), **found)


def _ip_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    raw = bytes(value.asOctets() if hasattr(value, "asOctets") else value)
    return socket.inet_ntoa(raw) if len(raw) == 4 else None


def resolve_target(
    targets_by_address: Mapping[str, PollTarget], source: str, agent_address: str | None
) -> PollTarget | None:
    """The device a trap is from: the snmpTrapAddress one if known, else the source's."""
    if agent_address and agent_address in targets_by_address:
        return targets_by_address[agent_address]
    return targets_by_address.get(source)


def trap_observations(
    notification: Notification, target: PollTarget, now: datetime, detail: dict[str, Any]
) -> list[Observation] | None:
    """The observations a notification from `target` means; None if its ifIndex is not in
    the inventory; [] for a kind of trap not handled."""
    name = TRAP_NAMES.get(notification.trap_oid or ())
    detail = {**detail, "trap": name} if name else detail
    if notification.trap_oid in (COLD_START, WARM_START):
        uptime_s = (notification.sys_uptime_cs or 0) / 100
        restarted_at = now - timedelta(seconds=uptime_s)
        return [Observation(now, target.device_id, KIND_AGENT_RESTART, None, RESTARTED, "trap",
                            {**detail, "how": name, "restarted_at": restarted_at.isoformat()})]
    if notification.trap_oid not in (LINK_DOWN, LINK_UP):
        return []
    port_id = target.ports_by_if_index.get(notification.if_index or -1)
    if port_id is None:
        return None
    detail = {**detail, "if_index": notification.if_index, "device_id": target.device_id}
    oper = oper_status_name(notification.if_oper_status)
    if oper is None:
        oper = "down" if notification.trap_oid == LINK_DOWN else "up"
    observations = [Observation(now, port_id, KIND_OPER_STATUS, None, oper, "trap", detail)]
    admin = admin_status_name(notification.if_admin_status)
    if admin is not None:
        observations.append(
            Observation(now, port_id, KIND_ADMIN_STATUS, None, admin, "trap", dict(detail)))
    return observations


def looks_like_snmp(datagram: bytes) -> bool:
    """Whether `datagram` can be an SNMP message, cheaply: a BER SEQUENCE (0x30) with a
    definite length that fits the datagram, whose first element is the INTEGER version 0
    (v1), 1 (v2c) or 3 (v3). Random bytes pass it about once in a few billion; anything
    pysnmp could decode passes it (trailing bytes after the message are allowed, as pysnmp
    allows them)."""
    return _message_header(datagram) is not None


def _message_header(datagram: bytes) -> tuple[int, int] | None:
    """(version, offset just after it) of an SNMP message; None if it cannot be one."""
    if datagram[:1] != b"\x30":
        return None
    sequence = _ber_length(datagram, 1)
    if sequence is None or sequence[0] + sequence[1] > len(datagram):
        return None
    at = sequence[0]
    if datagram[at:at + 1] != b"\x02":
        return None
    version = _ber_length(datagram, at + 1)
    if version is None or version[1] != 1 or version[0] >= len(datagram):
        return None
    number = datagram[version[0]]
    return (number, version[0] + 1) if number in SNMP_VERSIONS else None


def v2c_trap(datagram: bytes) -> tuple[bytes, list[tuple[tuple[int, ...], Any]]] | None:
    """(community, varbinds) of a v2c SNMPv2-Trap-PDU, decoded by the poller's lean codec
    (collectors.snmp_fast: some 20 times cheaper than pysnmp, whose pyasn1 takes about half a
    millisecond a trap); None for anything else (v1, v3, an InformRequest that wants an
    answer, a message that codec finds malformed), which is left to pysnmp."""
    header = _message_header(datagram)
    if header is None or header[0] != snmp_fast.SNMP_V2C:
        return None
    return _v2c_trap(datagram, header)


def _v2c_trap(datagram: bytes, header: tuple[int, int]
              ) -> tuple[bytes, list[tuple[tuple[int, ...], Any]]] | None:
    try:
        pdu_tag, message = snmp_fast.decode_message(datagram, None, snmp_fast.SNMP_V2C)
    except Exception:  # BerError, or whatever else: pysnmp gets its turn
        return None
    community = _ber_length(datagram, header[1] + 1)
    if pdu_tag != PDU_V2_TRAP or datagram[header[1]:header[1] + 1] != b"\x04" or not community:
        return None
    return datagram[community[0]:community[0] + community[1]], message.varbinds


def _ber_length(data: bytes, at: int) -> tuple[int, int] | None:
    """(where the contents start, their length) of the BER length octets at `at`; None for
    the indefinite form (which SNMP forbids) or a length of more than 3 octets."""
    if at >= len(data):
        return None
    first = data[at]
    if first < 0x80:
        return at + 1, first
    count = first & 0x7F
    if not 1 <= count <= 3 or at + 1 + count > len(data):
        return None
    return at + 1 + count, int.from_bytes(data[at + 1:at + 1 + count], "big")


def burst_capacity(granted_bytes: int) -> int:
    """How many datagrams a receive buffer the kernel reports as `granted_bytes` holds at
    least (Linux reports twice the size asked and charges each datagram its truesize
    against it): the burst no receiver, however slow, loses a datagram of."""
    return granted_bytes // KERNEL_BYTES_PER_DATAGRAM


@dataclass(frozen=True)
class ReceiveBuffer:
    """The receive buffer asked for and what the kernel granted (as getsockopt reports it)."""

    asked_bytes: int
    granted_bytes: int
    forced: bool  # set with SO_RCVBUFFORCE, past net.core.rmem_max
    rmem_max: int | None  # net.core.rmem_max, when readable

    @property
    def short(self) -> bool:
        """Less than asked: Linux reports twice the size asked when it grants it all."""
        expected = 2 * self.asked_bytes if sys.platform.startswith("linux") else self.asked_bytes
        return self.granted_bytes < expected


def apply_receive_buffer(sock: socket.socket, asked_bytes: int, *,
                         force: bool = True) -> ReceiveBuffer:
    """Ask for a receive buffer of `asked_bytes` on `sock`: with SO_RCVBUFFORCE when `force`
    and the process may (root, CAP_NET_ADMIN: not capped by net.core.rmem_max), else
    SO_RCVBUF (capped by it); return what the kernel granted."""
    forced = False
    if force and sys.platform.startswith("linux"):
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, asked_bytes)
            forced = True
        except OSError:  # EPERM without CAP_NET_ADMIN
            pass
    if not forced:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, asked_bytes)
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    return ReceiveBuffer(asked_bytes, granted, forced, _read_int("/proc/sys/net/core/rmem_max"))


def _read_int(path: str) -> int | None:
    try:
        with open(path) as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def socket_drops(sock_inode: int, family: int = socket.AF_INET) -> int | None:
    """The kernel's count of datagrams dropped on the UDP socket with inode `sock_inode`
    (os.fstat(fd).st_ino), from /proc/net/udp or udp6; None where that is not readable."""
    path = "/proc/net/udp6" if family == socket.AF_INET6 else "/proc/net/udp"
    wanted = str(sock_inode)
    try:
        with open(path) as table:
            next(table, None)  # the header
            for line in table:
                fields = line.split()
                # sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
                if len(fields) >= 13 and fields[9] == wanted:
                    return int(fields[12])
    except (OSError, ValueError):
        return None
    return None


class TokenBucket:
    """`rate_per_s` takes a second on average, bursts of up to `burst`."""

    def __init__(self, rate_per_s: float, burst: float | None = None):
        self._rate = rate_per_s
        self._burst = burst if burst is not None else max(rate_per_s, 1.0)
        self._tokens = self._burst
        self._at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class RateLimitedWarnings:
    """WARNING logs at most once per `interval_s` per key, saying how many were held back.
    At most `max_keys` keys are followed one by one; beyond them, the keys not logged within
    the interval are forgotten, and if that is not enough each reason's further sources
    share one key (so a flood from spoofed addresses logs a bounded number of lines)."""

    def __init__(self, logger: logging.Logger, interval_s: float = WARN_INTERVAL_S,
                 max_keys: int = MAX_WARNING_KEYS):
        self._log = logger
        self._interval_s = interval_s
        self._max_keys = max_keys
        self._last: dict[tuple[str, str], float] = {}
        self._held: Counter[tuple[str, str]] = Counter()

    def warn(self, reason: str, source: str, message: str, *args: object) -> bool:
        """Log `message % args` for (reason, source) unless logged within the interval;
        return whether it was logged."""
        key = (reason, source)
        now = time.monotonic()
        if key not in self._last and len(self._last) >= self._max_keys:
            self._forget_older_than(now - self._interval_s)
            if len(self._last) >= self._max_keys:
                key = (reason, OTHER_SOURCES)
                message = "%s: %s, one of more sources than the %d logged one by one"
                args = (reason, source, self._max_keys)
        last = self._last.get(key)
        if last is not None and now - last < self._interval_s:
            self._held[key] += 1
            return False
        self._last[key] = now
        held = self._held.pop(key, 0)
        suffix = f" ({held} more since the last warning)" if held else ""
        self._log.warning(message + suffix, *args)
        return True

    def _forget_older_than(self, moment: float) -> None:
        for key in [key for key, last in self._last.items() if last < moment]:
            del self._last[key]
            self._held.pop(key, None)


class TrapReceiver:
    """Receives v2c and v3 notifications on UDP and hands observations to a callback."""

    def __init__(
        self,
        targets_by_address: Mapping[str, PollTarget],
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        communities: Iterable[str | SecretStr] = (),
        v3_users: Sequence[V3TrapUser] = (),
        on_observations: ObservationsCallback,
        receive_buffer_bytes: int = RECEIVE_BUFFER_BYTES,
        drops_interval_s: float = DROPS_INTERVAL_S,
        max_sources: int = MAX_SOURCES,
    ):
        self.targets_by_address = dict(targets_by_address)
        self.host = host
        self.port = port
        self.receive_buffer_bytes = receive_buffer_bytes
        self.drops_interval_s = drops_interval_s
        self.max_sources = max_sources
        self._communities = [_secret(c) for c in communities]
        self._community_bytes = {form for community in self._communities
                                 for form in _community_forms(community)}
        self._v3_users = list(v3_users)
        self._on_observations = on_observations
        self._engine: engine.SnmpEngine | None = None
        self._receiver: ntfrcv.NotificationReceiver | None = None
        self._warnings = RateLimitedWarnings(log)
        self._unknown_budget = TokenBucket(UNKNOWN_SOURCE_DECODES_PER_S)
        self._relays: set[str] = set()  # unknown addresses seen relaying a known device's trap
        self._accounted = False  # the datagram being decoded was counted somewhere
        self._socket_inode: int | None = None
        self._socket_family = socket.AF_INET
        self._socket_drops = 0  # the socket's drop counter at the last sample
        self._drops_reported = 0  # stats.kernel_drops at the last drop warning
        self._drops_warned_at: float | None = None
        self._drops_timer: asyncio.TimerHandle | None = None
        self.stats = TrapStats()

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the receiver listens on (the real port once started with port 0)."""
        return self.host, self.port

    async def start(self) -> None:
        """Bind the UDP socket and start receiving, on the running event loop."""
        if self._engine is not None:
            raise RuntimeError("trap receiver already started")
        sock, buffer = _bound_socket(self.host, self.port, self.receive_buffer_bytes)
        self.port = sock.getsockname()[1]
        self._socket_inode = os.fstat(sock.fileno()).st_ino
        self._socket_family = sock.family
        self._socket_drops = socket_drops(self._socket_inode, sock.family) or 0
        self._drops_reported = self.stats.kernel_drops  # stats may come from a predecessor
        snmp_engine = engine.SnmpEngine()
        try:
            loop = asyncio.get_running_loop()
            transport = _ScreenedUdpTransport(self._on_datagram, self._on_datagram_error,
                                              loop=loop)
            config.add_transport(snmp_engine, udp.DOMAIN_NAME,
                                 transport.open_server_mode(sock=sock))
            for number, community in enumerate(self._communities):
                config.add_v1_system(snmp_engine, f"keyline-{number}", community)
            for user in self._v3_users:
                _add_v3_user(snmp_engine, user)
            snmp_engine.observer.register_observer(
                self._on_engine_event,
                "rfc2576.processIncomingMsg:writable",
                "rfc3412.prepareDataElements:sm-failure",
            )
            self._receiver = ntfrcv.NotificationReceiver(snmp_engine, self._on_notification)
        except BaseException:
            sock.close()
            snmp_engine.close_dispatcher()
            raise
        self._engine = snmp_engine
        self.stats.receive_buffer_bytes = buffer.granted_bytes
        log.info("trap receiver listening on %s:%d (udp)", self.host, self.port)
        log_receive_buffer(buffer)
        self._drops_timer = loop.call_later(self.drops_interval_s, self._sample_drops)

    def add_v3_user(self, user: V3TrapUser) -> None:
        """Accept v3 traps from `user` at the agent with `user.engine_id`, from now on (also
        while running: the poller learns agents' engine ids, snmpEngineID.0, as it polls)."""
        if self._engine is not None:
            _add_v3_user(self._engine, user)
        self._v3_users.append(user)

    async def stop(self) -> None:
        """Stop receiving and close the socket. Idempotent."""
        snmp_engine, self._engine = self._engine, None
        if snmp_engine is None:
            return
        if self._drops_timer is not None:
            self._drops_timer.cancel()
            self._drops_timer = None
        self.sample_drops()  # the last word on this socket, in the stats
        if self._receiver is not None:
            self._receiver.close(snmp_engine)
            self._receiver = None
        snmp_engine.observer.unregister_observer()
        snmp_engine.close_dispatcher()
        await asyncio.sleep(0)  # let the transport's close run

    async def __aenter__(self) -> TrapReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # --- kernel drops --------------------------------------------------------------------------

    def sample_drops(self) -> int:
        """Read the socket's kernel drop counter into ``stats.kernel_drops``; log a WARNING
        with the drops since the last one, at most once per `WARN_INTERVAL_S`. Return the
        drops this sample found (on the receiver's loop, or after it stopped)."""
        if self._socket_inode is None:
            return 0
        drops = socket_drops(self._socket_inode, self._socket_family)
        if drops is None:
            return 0
        new = max(drops - self._socket_drops, 0)
        self._socket_drops = drops
        self.stats.kernel_drops += new
        unreported = self.stats.kernel_drops - self._drops_reported
        now = time.monotonic()
        if unreported > 0 and (self._drops_warned_at is None
                               or now - self._drops_warned_at >= WARN_INTERVAL_S):
            since = ("since start" if self._drops_warned_at is None else
                     f"in the last {now - self._drops_warned_at:.0f} s")
            log.warning("trap receiver: the kernel dropped %d datagrams %s (%d in all), its"
                        " receive buffer full (%d bytes granted): traps among them are lost."
                        " Raise [traps] receive_buffer_bytes (and, unless running as root,"
                        " sysctl net.core.rmem_max), or find the flood's source",
                        unreported, since, self.stats.kernel_drops,
                        self.stats.receive_buffer_bytes)
            self._drops_reported = self.stats.kernel_drops
            self._drops_warned_at = now
        return new

    def _sample_drops(self) -> None:
        self._drops_timer = None
        if self._engine is None:
            return
        try:
            self.sample_drops()
        finally:
            self._drops_timer = asyncio.get_running_loop().call_later(
                self.drops_interval_s, self._sample_drops)

    # --- the screen in front of pysnmp ---------------------------------------------------------

    def _on_datagram(self, transport: _ScreenedUdpTransport, datagram: bytes,
                     address: tuple[Any, ...]) -> None:
        """Every datagram read, in order: the cheap screen; a v2c trap through the fast
        path; the rest (v1, v3, informs, what the fast path cannot read) through pysnmp,
        synchronously, within the unknown-source budget, its failures counted and logged as
        one line (pysnmp raises on some garbage, and asyncio would log each with its
        traceback)."""
        stats = self.stats
        stats.datagrams += 1
        source = address[0]
        header = _message_header(datagram)
        if header is None:
            self._count(stats.not_snmp, "datagram that is not an SNMP message", source)
            return
        fast = _v2c_trap(datagram, header) if header[0] == snmp_fast.SNMP_V2C else None
        if fast is not None:
            community, varbinds = fast
            if community in self._community_bytes:
                self._on_varbinds(varbinds, source)
            else:
                self._count(stats.wrong_community, "wrong community", source)
            return
        if (source not in self.targets_by_address and source not in self._relays
                and not self._unknown_budget.take()):
            self._count(stats.shed, "SNMP message from an unknown source not decoded (more"
                        f" than {UNKNOWN_SOURCE_DECODES_PER_S:.0f}/s from such sources)", source)
            return
        self._accounted = False
        try:
            transport.deliver(datagram, address)
        except Exception as error:  # pysnmp and pyasn1 raise many kinds on garbage
            self._count(stats.undecodable, "undecodable SNMP message"
                        f" ({type(error).__name__})", source)
            return
        if not self._accounted:  # pysnmp dropped it quietly: a parse error, not a trap...
            self._count(stats.undecodable, "SNMP message that is no notification pysnmp"
                        " accepts (malformed, unsupported, or another PDU)", source)

    def _on_datagram_error(self, error: Exception, address: tuple[Any, ...]) -> None:
        """A datagram the receiver's own code failed on (a bug): counted, logged as one line
        at most once a minute per source, and the receiver goes on."""
        self._count(self.stats.undecodable, "trap receiver failed on a datagram"
                    f" ({type(error).__name__}: {error})", address[0])

    # --- engine callbacks --------------------------------------------------------------------

    def _on_engine_event(self, snmp_engine: Any, point: str, variables: dict, context: Any):
        if point == "rfc2576.processIncomingMsg:writable":
            _, address = variables["transportInformation"]
            community = str(variables["communityName"])
            if community not in self._communities:
                self._accounted = True
                self._count(self.stats.wrong_community, "wrong community", address[0])
        else:
            self._accounted = True
            address = variables.get("transportAddress") or ("?", 0)
            status = variables.get("statusInformation")
            why = status.get("errorIndication") if hasattr(status, "get") else None
            self._count(self.stats.v3_rejected, f"v3 security failed: {why}", address[0])

    def _on_notification(self, snmp_engine: Any, state_reference: Any, context_engine_id: Any,
                         context_name: Any, varbinds: Any, context: Any) -> None:
        self._accounted = True
        _, address = snmp_engine.message_dispatcher.get_transport_info(state_reference)
        self._on_varbinds(varbinds, address[0])

    def _on_varbinds(self, varbinds: Iterable[tuple[Any, Any]], source: str) -> None:
        """A notification that passed the security checks (pysnmp's, or the v2c fast path's
        community check)."""
        self.stats.received += 1
        try:
            notification = parse_notification(varbinds)
        except (TypeError, ValueError) as error:
            self._count(self.stats.ignored, f"malformed notification ({error})", source)
            return
        self._handle(notification, source)

    def _handle(self, notification: Notification, source: str) -> None:
        target = resolve_target(self.targets_by_address, source, notification.agent_address)
        if target is None:
            key = source if not notification.agent_address else (
                f"{notification.agent_address} via {source}")
            self._count(self.stats.unknown_source, "trap from an unknown source", key)
            return
        detail: dict[str, Any] = {"source_address": source}
        if target.host != source:
            detail["relayed_by"] = source
            if (source not in self.targets_by_address and source not in self._relays
                    and len(self._relays) < MAX_RELAYS):
                self._relays.add(source)  # its traps are decoded first from now on
        observations = trap_observations(notification, target, datetime.now(UTC), detail)
        if observations is None:
            self._count(self.stats.unmapped_port,
                        f"trap for ifIndex {notification.if_index}, not in the inventory",
                        target.device_key)
            return
        if not observations:
            oid = ".".join(map(str, notification.trap_oid or ()))
            self._bump(self.stats.ignored, oid or "no snmpTrapOID")
            return
        self.stats.observations += len(observations)
        try:
            self._on_observations(observations)
        except Exception:
            self.stats.callback_errors += 1
            log.exception("trap observation callback failed")

    def _count(self, counter: Counter[str], reason: str, source: str) -> None:
        seen = self._bump(counter, source)
        self._warnings.warn(reason, source, "%s: %s (%d so far from it)", reason, source, seen)

    def _bump(self, counter: Counter[str], key: str) -> int:
        """Count one for `key`, or for OTHER_SOURCES once `counter` has `max_sources` keys."""
        if key not in counter and len(counter) >= self.max_sources:
            key = OTHER_SOURCES
        counter[key] += 1
        return counter[key]


class _ScreenedUdpTransport(udp.UdpAsyncioTransport):
    """pysnmp's asyncio UDP transport, handing each datagram to `screen` as it is read
    instead of queueing a call of pysnmp's dispatcher per datagram on the loop; `screen`
    calls `deliver` for the ones worth decoding."""

    def __init__(self, screen: Callable[[_ScreenedUdpTransport, bytes, Any], None],
                 on_error: Callable[[Exception, Any], None], loop: asyncio.AbstractEventLoop):
        super().__init__(loop=loop)
        self._screen = screen
        self._on_error = on_error

    def datagram_received(self, datagram: bytes, transportAddress: Any) -> None:
        if self._callback_function is None:  # closed
            return
        try:
            self._screen(self, datagram, transportAddress)
        except Exception as error:  # never out: asyncio would close the transport
            self._on_error(error, transportAddress)

    def deliver(self, datagram: bytes, address: Any) -> None:
        """Decode and dispatch `datagram` through the engine, now."""
        self._callback_function(self, address, datagram)


def _secret(value: str | SecretStr) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _community_forms(community: str) -> set[bytes]:
    """The bytes a configured community matches on the wire in the fast v2c path: its UTF-8
    (how agents' configurations are written) and, as pysnmp encodes a str, its Latin-1."""
    forms = {community.encode("utf-8")}
    with suppress(UnicodeEncodeError):
        forms.add(community.encode("latin-1"))
    return forms


def _bound_socket(host: str, port: int,
                  receive_buffer_bytes: int) -> tuple[socket.socket, ReceiveBuffer]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        buffer = apply_receive_buffer(sock, receive_buffer_bytes)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock, buffer


def log_receive_buffer(buffer: ReceiveBuffer) -> None:
    """Log the grant once at INFO, and a WARNING naming the sysctl when it is short."""
    how = (f"with SO_RCVBUFFORCE, as root (CAP_NET_ADMIN): net.core.rmem_max"
           f" ({buffer.rmem_max}) does not cap it" if buffer.forced else
           f"with SO_RCVBUF, capped by net.core.rmem_max ({buffer.rmem_max})")
    log.info("trap receive buffer: asked %d bytes, the kernel granted %d (%s; Linux reports"
             " twice the size asked, half for its bookkeeping): a burst of at least %d"
             " datagrams is held while the receiver is busy",
             buffer.asked_bytes, buffer.granted_bytes, how, burst_capacity(buffer.granted_bytes))
    if buffer.short:
        log.warning("trap receive buffer: the kernel granted %d bytes, less than the %d asked"
                    " ([traps] receive_buffer_bytes; Linux would report %d): bursts of traps"
                    " beyond about %d datagrams may be dropped. Raise the kernel's limit,"
                    " `sysctl -w net.core.rmem_max=%d` (and in /etc/sysctl.d/ to keep it), or"
                    " run the collector as root (SO_RCVBUFFORCE)",
                    buffer.granted_bytes, buffer.asked_bytes, 2 * buffer.asked_bytes,
                    burst_capacity(buffer.granted_bytes), buffer.asked_bytes)


def _add_v3_user(snmp_engine: engine.SnmpEngine, user: V3TrapUser) -> None:
    try:
        auth = AUTH_PROTOCOLS[user.auth_protocol.upper() if user.auth_protocol else None]
        priv = PRIV_PROTOCOLS[user.priv_protocol.upper() if user.priv_protocol else None]
    except KeyError as error:
        raise ValueError(f"v3 trap user {user.username}: unknown protocol {error}") from None
    config.add_v3_user(
        snmp_engine, user.username,
        auth, _secret(user.auth_key) if user.auth_key else None,
        priv, _secret(user.priv_key) if user.priv_key else None,
        securityEngineId=rfc1902.OctetString(user.engine_id),
    )
