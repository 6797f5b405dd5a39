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

    receiver = TrapReceiver(targets_by_address, host="0.0.0.0", port=1162,
                            communities=["public"], v3_users=[],
                            on_observations=lambda observations: ...)
    await receiver.start()      # in the running event loop; the callback runs on it
    ...
    await receiver.stop()

pysnmp 7's engine does the protocol work (BER, community and USM checks, decryption):
`pysnmp.entity.rfc3413.ntfrcv.NotificationReceiver` calls back with the varbinds of every
notification that passed the checks; two of the engine's observer hooks report the ones that
did not ("rfc2576.processIncomingMsg:writable" sees every v1/v2c community,
"rfc3412.prepareDataElements:sm-failure" every v3 security failure).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr
from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config, engine
from pysnmp.entity.rfc3413 import ntfrcv
from pysnmp.proto import rfc1902

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
RECEIVE_BUFFER_BYTES = 1 << 20  # a burst of traps (a line card failing) must not overflow
WARN_INTERVAL_S = 60.0

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
    """Counters of the receiver, by source address (a string) where it says so."""

    received: int = 0  # notifications that passed the security checks
    observations: int = 0  # observations handed to the callback
    unknown_source: Counter[str] = field(default_factory=Counter)
    wrong_community: Counter[str] = field(default_factory=Counter)
    v3_rejected: Counter[str] = field(default_factory=Counter)
    unmapped_port: Counter[str] = field(default_factory=Counter)  # ifIndex not in inventory
    ignored: Counter[str] = field(default_factory=Counter)  # trap kinds not handled, by OID
    callback_errors: int = 0


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


class RateLimitedWarnings:
    """WARNING logs at most once per `interval_s` per key, saying how many were held back."""

    def __init__(self, logger: logging.Logger, interval_s: float = WARN_INTERVAL_S):
        self._log = logger
        self._interval_s = interval_s
        self._last: dict[tuple[str, str], float] = {}
        self._held: Counter[tuple[str, str]] = Counter()

    def warn(self, reason: str, source: str, message: str, *args: object) -> bool:
        """Log `message % args` for (reason, source) unless logged within the interval;
        return whether it was logged."""
        key = (reason, source)
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._interval_s:
            self._held[key] += 1
            return False
        self._last[key] = now
        held = self._held.pop(key, 0)
        suffix = f" ({held} more since the last warning)" if held else ""
        self._log.warning(message + suffix, *args)
        return True


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
    ):
        self.targets_by_address = dict(targets_by_address)
        self.host = host
        self.port = port
        self._communities = [_secret(c) for c in communities]
        self._v3_users = list(v3_users)
        self._on_observations = on_observations
        self._engine: engine.SnmpEngine | None = None
        self._receiver: ntfrcv.NotificationReceiver | None = None
        self._warnings = RateLimitedWarnings(log)
        self.stats = TrapStats()

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the receiver listens on (the real port once started with port 0)."""
        return self.host, self.port

    async def start(self) -> None:
        """Bind the UDP socket and start receiving, on the running event loop."""
        if self._engine is not None:
            raise RuntimeError("trap receiver already started")
        sock = _bound_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        snmp_engine = engine.SnmpEngine()
        try:
            transport = udp.UdpTransport(loop=asyncio.get_running_loop())
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
        log.info("trap receiver listening on %s:%d (udp)", self.host, self.port)

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

    # --- engine callbacks --------------------------------------------------------------------

    def _on_engine_event(self, snmp_engine: Any, point: str, variables: dict, context: Any):
        if point == "rfc2576.processIncomingMsg:writable":
            _, address = variables["transportInformation"]
            community = str(variables["communityName"])
            if community not in self._communities:
                self._count(self.stats.wrong_community, "wrong community", address[0])
        else:
            address = variables.get("transportAddress") or ("?", 0)
            status = variables.get("statusInformation")
            why = status.get("errorIndication") if hasattr(status, "get") else None
            self._count(self.stats.v3_rejected, f"v3 security failed: {why}", address[0])

    def _on_notification(self, snmp_engine: Any, state_reference: Any, context_engine_id: Any,
                         context_name: Any, varbinds: Any, context: Any) -> None:
        _, address = snmp_engine.message_dispatcher.get_transport_info(state_reference)
        self.stats.received += 1
        source = address[0]
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
        observations = trap_observations(notification, target, datetime.now(UTC), detail)
        if observations is None:
            self._count(self.stats.unmapped_port,
                        f"trap for ifIndex {notification.if_index}, not in the inventory",
                        target.device_key)
            return
        if not observations:
            oid = ".".join(map(str, notification.trap_oid or ()))
            self.stats.ignored[oid or "no snmpTrapOID"] += 1
            return
        self.stats.observations += len(observations)
        try:
            self._on_observations(observations)
        except Exception:
            self.stats.callback_errors += 1
            log.exception("trap observation callback failed")

    def _count(self, counter: Counter[str], reason: str, source: str) -> None:
        counter[source] += 1
        self._warnings.warn(reason, source, "%s: %s (%d so far from it)",
                            reason, source, counter[source])


def _secret(value: str | SecretStr) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _bound_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


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
