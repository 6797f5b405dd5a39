"""The trap receiver: pure parsing and mapping, then real v2c and v3 traps over loopback.

The network tests send notifications with pysnmp's own notification originator
(`send_notification`) from sockets bound to 127.0.1.N (each address stands for one device) to
a receiver on 127.0.0.1 at a free port. Everything runs on one event loop in a background
thread for the whole module, so the senders' engines are built (and their MIBs loaded, about
0.8 s) once, not per test.

The flood tests (the last section) send datagrams encoded once, from plain sockets, paced: a
burst the receive-buffer setting promises to hold, junk with real traps inside; the kernel's
drop counter with the receiver's loop held; the buffer granted; memory under a flood from
thousands of source addresses. None floods for more than two seconds, none asserts a speed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyasn1.codec.ber import encoder as ber_encoder
from pydantic import SecretStr, ValidationError
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    send_notification,
    usmAesCfb128Protocol,
    usmHMACSHAAuthProtocol,
)
from pysnmp.proto import api
from pysnmp.proto.rfc1902 import (
    Integer32,
    IpAddress,
    ObjectIdentifier,
    ObjectName,
    OctetString,
    TimeTicks,
)

from collectors.model import Observation, PollStatus, PollTarget, SnmpCredential
from collectors.observations import StateTracker
from collectors.snmp import SnmpPoller
from collectors.traps import (
    COLD_START,
    LINK_DOWN,
    LINK_UP,
    MAX_WARNING_KEYS,
    OTHER_SOURCES,
    RECEIVE_BUFFER_BYTES,
    UNKNOWN_SOURCE_DECODES_PER_S,
    Notification,
    RateLimitedWarnings,
    TrapReceiver,
    V3TrapUser,
    apply_receive_buffer,
    burst_capacity,
    log_receive_buffer,
    looks_like_snmp,
    parse_notification,
    resolve_target,
    trap_observations,
    v2c_trap,
)
from config.settings import TrapSettings
from store.observations import recent_observations, record_observations
from tests import snmp_agents

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
PE1 = PollTarget(device_id=10, device_key="pe1", host="127.0.1.5", port=161,
                 credential=SnmpCredential(version="v2c"), poller_group="default",
                 ports_by_if_index={7: 107, 8: 108})
PE2 = PollTarget(device_id=20, device_key="pe2", host="127.0.1.6", port=161,
                 credential=SnmpCredential(version="v3"), poller_group="default",
                 ports_by_if_index={1: 201})
TARGETS = {PE1.host: PE1, PE2.host: PE2}
PE2_ENGINE_ID = bytes.fromhex("80001f8880a1b2c3d4e5f60718")
V3_USER = V3TrapUser("keyline-trap", PE2_ENGINE_ID, "SHA", SecretStr("auth-secret-1"),
                     "AES", SecretStr("priv-secret-1"))
COMMUNITY = "trap-secret"

TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"


# --- pure functions ------------------------------------------------------------------------


def oid(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_parse_link_down_with_if_mib_columns():
    notification = parse_notification([
        (oid("1.3.6.1.2.1.1.3.0"), TimeTicks(1234)),
        (oid(TRAP_OID), ObjectIdentifier("1.3.6.1.6.3.1.1.5.3")),
        (oid("1.3.6.1.2.1.2.2.1.1.7"), Integer32(7)),
        (oid("1.3.6.1.2.1.2.2.1.7.7"), Integer32(1)),
        (oid("1.3.6.1.2.1.2.2.1.8.7"), Integer32(7)),
        (oid("1.3.6.1.6.3.18.1.3.0"), IpAddress("127.0.1.5")),
    ])
    assert notification == Notification(LINK_DOWN, 1234, "127.0.1.5", 7, 1, 7)


def test_parse_takes_if_index_from_the_status_column_instance():
    notification = parse_notification([(oid(TRAP_OID), ObjectIdentifier(".".join(
        map(str, LINK_UP)))), (oid("1.3.6.1.2.1.2.2.1.8.8"), Integer32(1))])
    assert (notification.if_index, notification.if_oper_status) == (8, 1)


def test_resolve_prefers_known_agent_address():
    assert resolve_target(TARGETS, "127.0.1.99", "127.0.1.5") is PE1
    assert resolve_target(TARGETS, "127.0.1.6", "192.0.2.1") is PE2
    assert resolve_target(TARGETS, "127.0.1.99", None) is None


def test_link_down_becomes_port_down():
    observations = trap_observations(Notification(LINK_DOWN, if_index=7), PE1, T0, {})
    assert [(o.object_id, o.kind, o.old, o.new, o.source) for o in observations] == [
        (107, "oper_status", None, "down", "trap")]
    assert observations[0].detail == {"trap": "linkDown", "if_index": 7, "device_id": 10}


def test_link_up_with_statuses_gives_oper_and_admin():
    observations = trap_observations(
        Notification(LINK_UP, if_index=8, if_admin_status=1, if_oper_status=5), PE1, T0, {})
    assert [(o.kind, o.new) for o in observations] == [
        ("oper_status", "dormant"), ("admin_status", "up")]


def test_cold_start_is_agent_restart_with_start_time():
    (observation,) = trap_observations(Notification(COLD_START, sys_uptime_cs=500), PE1, T0, {})
    assert (observation.object_id, observation.kind, observation.new) == (
        10, "agent_restart", "restarted")
    assert observation.detail["restarted_at"] == (T0 - timedelta(seconds=5)).isoformat()


def test_unmapped_port_and_unhandled_trap():
    assert trap_observations(Notification(LINK_DOWN, if_index=99), PE1, T0, {}) is None
    assert trap_observations(Notification((1, 3, 6, 1, 4, 1, 9, 0, 1)), PE1, T0, {}) == []


def test_rate_limited_warnings(caplog):
    warnings = RateLimitedWarnings(logging.getLogger("test"), interval_s=60)
    with caplog.at_level(logging.WARNING):
        assert warnings.warn("why", "a", "msg %s", 1)
        assert not warnings.warn("why", "a", "msg %s", 2)
        assert warnings.warn("why", "b", "msg %s", 3)
    assert [r.getMessage() for r in caplog.records] == ["msg 1", "msg 3"]


# --- over the network ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def loop():
    event_loop = asyncio.new_event_loop()
    thread = threading.Thread(target=event_loop.run_forever, daemon=True)
    thread.start()
    yield event_loop
    event_loop.call_soon_threadsafe(event_loop.stop)
    thread.join(5)
    event_loop.close()


def run(loop, coroutine, timeout_s: float = 10.0):
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout_s)


class Senders:
    """One pysnmp engine per credential and source address, kept for the module (an engine
    keeps the socket of its first send, so its source address; its first send loads MIBs)."""

    def __init__(self, loop):
        self.loop = loop
        self.engines: dict[str, SnmpEngine] = {}

    def engine(self, key: str, engine_id: bytes | None = None) -> SnmpEngine:
        if key not in self.engines:
            async def make():
                return SnmpEngine(OctetString(engine_id)) if engine_id else SnmpEngine()
            self.engines[key] = run(self.loop, make())
        return self.engines[key]

    def send(self, receiver, source: str, trap: tuple[int, ...], *extra, community=COMMUNITY,
             user: UsmUserData | None = None, engine_id: bytes | None = None,
             notify_type: str = "trap") -> float:
        """Send one trap from `source`; return the monotonic time just before sending."""
        secret = user.authentication_key if user else community
        # an engine that sent to one receiver misses the answer to an inform sent to the next
        # (a quirk of pysnmp's sender, whatever the receiver): informs get an engine of their own
        key = f"{source}:{secret}" + (f":{notify_type}" if notify_type != "trap" else "")
        snmp_engine = self.engine(key, engine_id)
        auth = user or CommunityData(community, mpModel=1)
        varbinds = [
            (ObjectName("1.3.6.1.2.1.1.3.0"), TimeTicks(4200)),
            (ObjectName(TRAP_OID), ObjectIdentifier(".".join(map(str, trap)))),
            *extra,
        ]

        async def send() -> float:
            target = await UdpTransportTarget.create(receiver.address, timeout=1, retries=0)
            target.set_local_address((source, 0))
            sent_at = time.monotonic()
            error, *_ = await send_notification(snmp_engine, auth, target, ContextData(),
                                                notify_type, *varbinds)
            assert error is None, error
            return sent_at

        return run(self.loop, send())


@pytest.fixture(scope="module")
def senders(loop):
    all_senders = Senders(loop)
    yield all_senders

    async def close():
        for snmp_engine in all_senders.engines.values():
            snmp_engine.close_dispatcher()
        await asyncio.sleep(0.01)

    run(loop, close())


@pytest.fixture
def receiver(loop):
    arrived: queue.Queue = queue.Queue()

    def on_observations(observations):
        arrived.put((time.monotonic(), observations))

    trap_receiver = TrapReceiver(TARGETS, host="127.0.0.1", port=0, communities=[COMMUNITY],
                                 v3_users=[V3_USER], on_observations=on_observations)
    run(loop, trap_receiver.start())
    trap_receiver.arrived = arrived
    yield trap_receiver
    run(loop, trap_receiver.stop())


def if_index_varbind(if_index: int):
    return (ObjectName(f"1.3.6.1.2.1.2.2.1.1.{if_index}"), Integer32(if_index))


def wait_for(predicate, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_v2c_link_down_arrives_within_a_second(receiver, senders):
    senders.send(receiver, "127.0.1.5", LINK_UP, if_index_varbind(8))  # warm the sender
    receiver.arrived.get(timeout=5)
    latencies_s = []
    for _ in range(10):
        sent_at = senders.send(receiver, "127.0.1.5", LINK_DOWN, if_index_varbind(7))
        arrived_at, observations = receiver.arrived.get(timeout=2)
        latencies_s.append(arrived_at - sent_at)
    latencies_s.sort()
    print(f"\ntrap latency, send_notification called -> callback, 10 traps: median"
          f" {latencies_s[5] * 1000:.1f} ms, max {latencies_s[-1] * 1000:.1f} ms")
    assert latencies_s[-1] < 1.0
    assert [(o.object_id, o.kind, o.new, o.source) for o in observations] == [
        (107, "oper_status", "down", "trap")]
    assert observations[0].detail["source_address"] == "127.0.1.5"
    assert receiver.stats.received == 11 and receiver.stats.observations == 11


def test_v2c_inform_is_answered_and_observed(receiver, senders):
    """An InformRequest is not the fast path's: pysnmp decodes it and answers it (the
    sender's send_notification waits for that answer, and fails without it)."""
    senders.send(receiver, "127.0.1.5", LINK_DOWN, if_index_varbind(8), notify_type="inform")
    _, observations = receiver.arrived.get(timeout=2)
    assert [(o.object_id, o.new) for o in observations] == [(108, "down")]


def test_unknown_source_is_counted_and_logged(receiver, senders, caplog):
    with caplog.at_level(logging.WARNING, logger="collectors.traps"):
        senders.send(receiver, "127.0.1.77", LINK_DOWN, if_index_varbind(7))
        assert wait_for(lambda: receiver.stats.unknown_source["127.0.1.77"] == 1)
        # logged on the loop's thread just after counting
        assert wait_for(lambda: "unknown source: 127.0.1.77" in caplog.text)
    assert receiver.arrived.empty()


def test_wrong_community_is_counted_and_logged_without_it(receiver, senders, caplog):
    with caplog.at_level(logging.WARNING, logger="collectors.traps"):
        senders.send(receiver, "127.0.1.5", LINK_DOWN, if_index_varbind(7),
                     community="guessed-community")
        assert wait_for(lambda: receiver.stats.wrong_community["127.0.1.5"] == 1)
        assert wait_for(lambda: "wrong community: 127.0.1.5" in caplog.text)
    time.sleep(0.1)
    assert receiver.arrived.empty() and receiver.stats.received == 0
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "wrong community: 127.0.1.5" in messages and "guessed" not in messages


def test_relayed_trap_maps_by_snmp_trap_address(receiver, senders):
    senders.send(receiver, "127.0.1.9", LINK_DOWN, if_index_varbind(8),
                 (ObjectName("1.3.6.1.6.3.18.1.3.0"), IpAddress("127.0.1.5")))
    _, observations = receiver.arrived.get(timeout=2)
    assert observations[0].object_id == 108
    assert observations[0].detail["relayed_by"] == "127.0.1.9"


def test_unmapped_port_is_counted(receiver, senders):
    senders.send(receiver, "127.0.1.5", LINK_DOWN, if_index_varbind(55))
    assert wait_for(lambda: receiver.stats.unmapped_port["pe1"] == 1)
    assert receiver.arrived.empty()


def v3_user(auth_key: str = "auth-secret-1") -> UsmUserData:
    return UsmUserData("keyline-trap", auth_key, "priv-secret-1",
                       authProtocol=usmHMACSHAAuthProtocol, privProtocol=usmAesCfb128Protocol)


def test_v3_auth_priv_cold_start(receiver, senders):
    senders.send(receiver, "127.0.1.6", LINK_UP, if_index_varbind(1), user=v3_user(),
                 engine_id=PE2_ENGINE_ID)  # warm the sender
    receiver.arrived.get(timeout=5)
    sent_at = senders.send(receiver, "127.0.1.6", COLD_START, user=v3_user(),
                           engine_id=PE2_ENGINE_ID)
    arrived_at, observations = receiver.arrived.get(timeout=2)
    assert arrived_at - sent_at < 1.0
    assert [(o.object_id, o.kind, o.new, o.detail["how"]) for o in observations] == [
        (20, "agent_restart", "restarted", "coldStart")]


def test_v3_wrong_key_is_rejected_and_counted(receiver, senders):
    senders.send(receiver, "127.0.1.6", COLD_START, user=v3_user("wrong-secret-9"),
                 engine_id=PE2_ENGINE_ID)
    assert wait_for(lambda: receiver.stats.v3_rejected["127.0.1.6"] == 1)
    assert receiver.arrived.empty()


def test_v3_user_added_while_running(receiver, senders):
    engine_id = bytes.fromhex("80001f8880ffeeddccbbaa9988")
    senders.send(receiver, "127.0.1.6", COLD_START, user=v3_user("auth-secret-2"),
                 engine_id=engine_id)
    assert wait_for(lambda: receiver.stats.v3_rejected["127.0.1.6"] == 1)
    receiver.add_v3_user(V3TrapUser("keyline-trap", engine_id, "SHA",
                                    SecretStr("auth-secret-2"), "AES", SecretStr("priv-secret-1")))
    senders.send(receiver, "127.0.1.6", COLD_START, user=v3_user("auth-secret-2"),
                 engine_id=engine_id)
    _, observations = receiver.arrived.get(timeout=2)
    assert observations[0].kind == "agent_restart"


@pytest.mark.skipif(not snmp_agents.snmpsim_installed(), reason="snmpsim is not installed")
def test_v3_trap_accepted_with_the_engine_id_the_poller_learned(loop, senders):
    """Poll a v3 agent (snmpsim on 127.0.1.7), make its trap user from the poll's engine_id
    and the poll credential, then a linkDown that agent sends with its engine id passes."""
    credential = SnmpCredential(
        version="v3", username=snmp_agents.V3_USER, security_level="authPriv",
        auth_protocol="SHA", auth_key=SecretStr(snmp_agents.V3_AUTH_KEY),
        priv_protocol="AES", priv_key=SecretStr(snmp_agents.V3_PRIV_KEY))
    with snmp_agents.SnmpsimAgents(interfaces=3, host="127.0.1.7") as agent:
        device = PollTarget(device_id=30, device_key="pe3", host="127.0.1.7",
                            port=agent.v3_port, credential=credential,
                            poller_group="default", ports_by_if_index={2: 302})

        async def poll():
            poller = SnmpPoller(timeout_s=1.0, retries=1)
            try:
                return await poller.poll(device)
            finally:
                poller.close()

        result = run(loop, poll())
    assert result.status is PollStatus.REACHABLE, result.reason
    assert result.engine_id == bytes.fromhex("80001f8805aa00000000000002")

    arrived: queue.Queue = queue.Queue()
    trap_receiver = TrapReceiver({device.host: device}, host="127.0.0.1", port=0,
                                 on_observations=arrived.put)
    run(loop, trap_receiver.start())
    try:
        user = UsmUserData(snmp_agents.V3_USER, snmp_agents.V3_AUTH_KEY,
                           snmp_agents.V3_PRIV_KEY, authProtocol=usmHMACSHAAuthProtocol,
                           privProtocol=usmAesCfb128Protocol)
        # before the poll's engine id is configured, the agent's traps are rejected
        senders.send(trap_receiver, device.host, LINK_DOWN, if_index_varbind(2), user=user,
                     engine_id=result.engine_id)
        assert wait_for(lambda: trap_receiver.stats.v3_rejected[device.host] == 1)
        trap_receiver.add_v3_user(V3TrapUser(
            credential.username, result.engine_id, credential.auth_protocol,
            credential.auth_key, credential.priv_protocol, credential.priv_key))
        senders.send(trap_receiver, device.host, LINK_DOWN, if_index_varbind(2), user=user,
                     engine_id=result.engine_id)
        observations = arrived.get(timeout=5)
    finally:
        run(loop, trap_receiver.stop())
    assert [(o.object_id, o.kind, o.new, o.source) for o in observations] == [
        (302, "oper_status", "down", "trap")]
    assert trap_receiver.stats.received == 1 and trap_receiver.stats.v3_rejected[
        device.host] == 1


def test_trap_then_poll_through_tracker_store_one_observation(receiver, senders, db):
    """The trap's change and the poll that later sees the same change go through one
    StateTracker: one observation is stored, the trap's (written as the collector's sink
    writes them, with record_observations)."""
    tracker = StateTracker()
    tracker.apply([Observation(T0, 107, "oper_status", None, "up", "poll")])
    senders.send(receiver, "127.0.1.5", LINK_DOWN, if_index_varbind(7))
    _, from_trap = receiver.arrived.get(timeout=2)
    from_poll = [Observation(T0 + timedelta(seconds=5), 107, "oper_status", "up", "down", "poll")]
    with db.pool.connection() as conn:
        record_observations(conn, tracker.apply(from_trap))
        record_observations(conn, tracker.apply(from_poll))
    with db.pool.connection() as conn:
        stored = recent_observations(conn, object_id=107)
    assert [(o.old, o.new, o.source) for o in stored] == [("up", "down", "trap")]


def test_stop_releases_the_port(loop):
    trap_receiver = TrapReceiver({}, host="127.0.0.1", port=0, on_observations=print)
    run(loop, trap_receiver.start())
    port = trap_receiver.port
    run(loop, trap_receiver.stop())
    again = TrapReceiver({}, host="127.0.0.1", port=port, on_observations=print)
    run(loop, again.start())
    run(loop, again.stop())


# --- under a flood ---------------------------------------------------------------------------
#
# Datagrams here are encoded once with pysnmp's message API and sent from plain sockets bound
# to their source address, so a test sends thousands in well under a second, paced.

KNOWN = PE1.host
UNKNOWN = "127.0.1.200"
# A v2c trap whose varbind uses the indefinite length form: the fast path leaves it to pysnmp,
# whose decoder raises IndexError inside its dispatcher callback (found by mutating a trap).
PYSNMP_RAISES = bytes.fromhex(
    "3051020101040562656e6368a745020101020100020100303a308006082b06010201010300430210683017"
    "060a2b06010603010104010006092b0601060301010503300f060a2b060102010202010107020107")


def v2c_link_down(community: str = COMMUNITY, request_id: int = 1, if_index: int = 7) -> bytes:
    v2c = api.v2c
    pdu = v2c.TrapPDU()
    v2c.apiTrapPDU.set_defaults(pdu)
    v2c.apiTrapPDU.set_request_id(pdu, request_id)
    v2c.apiTrapPDU.set_varbinds(pdu, [
        (oid("1.3.6.1.2.1.1.3.0"), v2c.TimeTicks(4200)),
        (oid(TRAP_OID), v2c.ObjectIdentifier(LINK_DOWN)),
        (oid(f"1.3.6.1.2.1.2.2.1.1.{if_index}"), v2c.Integer(if_index)),
    ])
    return _message(v2c, pdu, community)


def v1_link_down(community: str = COMMUNITY, if_index: int = 7) -> bytes:
    """A v1 Trap-PDU, generic-trap linkDown (2): pysnmp turns it into its v2 form."""
    v1 = api.v1
    pdu = v1.TrapPDU()
    v1.apiTrapPDU.set_defaults(pdu)
    v1.apiTrapPDU.set_enterprise(pdu, oid("1.3.6.1.4.1.8072.3.2.10"))
    v1.apiTrapPDU.set_agent_address(pdu, v1.IpAddress(KNOWN))
    v1.apiTrapPDU.set_generic_trap(pdu, 2)
    v1.apiTrapPDU.set_varbinds(pdu, [
        (oid(f"1.3.6.1.2.1.2.2.1.1.{if_index}"), v1.Integer(if_index))])
    return _message(v1, pdu, community)


def _message(proto, pdu, community: str) -> bytes:
    message = proto.Message()
    proto.apiMessage.set_defaults(message)
    proto.apiMessage.set_community(message, community)
    proto.apiMessage.set_pdu(message, pdu)
    return ber_encoder.encode(message)


def snmp_shaped_junk(rng: random.Random) -> bytes:
    """Junk behind a valid SEQUENCE / version 1 header: passes the screen, pysnmp fails."""
    body = b"\x02\x01\x01" + rng.randbytes(rng.randint(20, 100))
    return b"\x30" + bytes([len(body)]) + body


def sender(source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    return sock


@pytest.fixture
def udp_from():
    """A UDP socket bound to a source address, closed after the test."""
    opened: list[socket.socket] = []

    def make(source: str) -> socket.socket:
        opened.append(sender(source))
        return opened[-1]

    yield make
    for sock in opened:
        sock.close()


def send_paced(sends: Iterable[tuple[socket.socket, bytes]], count: int, address,
               seconds: float) -> None:
    """Send the `count` (socket, datagram) of `sends` in order, spread evenly over `seconds`."""
    start = time.perf_counter()
    for number, (sock, datagram) in enumerate(sends):
        sock.sendto(datagram, address)
        if number % 50 == 49:
            ahead = start + (number + 1) * seconds / count - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)


def vm_rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


class HeldLoop:
    """Blocks the event loop's thread while in the `with`, so nothing is read meanwhile."""

    def __init__(self, loop):
        self.loop = loop
        self.held = threading.Event()
        self.release = threading.Event()

    def _hold(self):
        self.held.set()
        self.release.wait(10)

    def __enter__(self):
        self.loop.call_soon_threadsafe(self._hold)
        assert self.held.wait(5)
        return self

    def __exit__(self, *exc_info):
        self.release.set()


def sample_drops(loop, trap_receiver) -> int:
    async def sample():
        return trap_receiver.sample_drops()
    return run(loop, sample())


@pytest.fixture
def make_receiver(loop):
    """Start a receiver of TARGETS with the settings' defaults but for `kwargs`; each is
    stopped after the test. Its observations go to its `arrived` queue, a list per trap."""
    started = []

    def make(**kwargs) -> TrapReceiver:
        arrived: queue.Queue = queue.Queue()
        trap_receiver = TrapReceiver(TARGETS, host="127.0.0.1", port=0,
                                     communities=[COMMUNITY], on_observations=arrived.put,
                                     **kwargs)
        run(loop, trap_receiver.start())
        started.append(trap_receiver)
        trap_receiver.arrived = arrived
        return trap_receiver

    yield make
    for trap_receiver in started:
        run(loop, trap_receiver.stop())


def test_screen_accepts_snmp_messages_and_rejects_junk():
    assert looks_like_snmp(v2c_link_down()) and looks_like_snmp(v1_link_down())
    assert looks_like_snmp(PYSNMP_RAISES)
    assert looks_like_snmp(bytes.fromhex("3081050201030400"))  # long-form length, v3
    assert looks_like_snmp(v2c_link_down() + b"\x00")  # trailing bytes, as pysnmp allows
    for junk in (b"", b"\x30", b"GET / HTTP/1.1\r\n\r\n", b"\x30\x05\x02\x01\x02\x04\x00",
                 b"\x30\x10\x02\x01\x01\x04\x00", b"\x30\x80\x02\x01\x01\x00\x00",
                 v2c_link_down()[:-1]):
        assert not looks_like_snmp(junk), junk
    rng = random.Random(1)
    assert not any(looks_like_snmp(rng.randbytes(rng.randint(1, 200))) for _ in range(10_000))


def test_fast_path_reads_a_v2c_trap_as_pysnmp_does():
    community, varbinds = v2c_trap(v2c_link_down("c1"))
    assert community == b"c1"
    assert parse_notification(varbinds) == Notification(LINK_DOWN, 4200, None, 7)
    # v1, informs and what the lean codec cannot read are pysnmp's
    assert v2c_trap(v1_link_down()) is None and v2c_trap(PYSNMP_RAISES) is None
    inform = bytearray(v2c_link_down())
    inform[inform.index(0xA7)] = 0xA6
    assert v2c_trap(bytes(inform)) is None


def test_rate_limited_warnings_follow_a_bounded_number_of_sources(caplog):
    warnings = RateLimitedWarnings(logging.getLogger("test"), interval_s=60, max_keys=3)
    with caplog.at_level(logging.WARNING):
        logged = [warnings.warn("why", f"10.0.0.{n}", "why: %s", n) for n in range(10)]
    assert logged == [True, True, True, True] + [False] * 6
    assert caplog.records[-1].getMessage() == (
        "why: 10.0.0.3, one of more sources than the 3 logged one by one")
    assert len(warnings._last) == 4  # three sources and the shared key


def test_flood_of_junk_with_real_traps_inside(loop, make_receiver, udp_from, caplog):
    """The promise of the settings: a burst of `burst_capacity(granted)` datagrams (4,096
    with the default 8 MiB, as root) is held by the kernel whatever the receiver's speed, so
    that many, sent within one second (4,096/s), lose nothing: every real trap inside becomes
    an observation, and every piece of junk is counted, logged as one line at most once per
    reason and source, never with a traceback."""
    flood_receiver = make_receiver()
    capacity = burst_capacity(flood_receiver.stats.receive_buffer_bytes)
    traps = 20
    rng = random.Random(11)
    noise, device = udp_from(UNKNOWN), udp_from(KNOWN)
    junk_kinds = [
        lambda: rng.randbytes(rng.randint(1, 200)),  # random bytes
        lambda: b"\x30" + rng.randbytes(rng.randint(1, 200)),  # random behind a SEQUENCE tag
        lambda: b"GET / HTTP/1.1\r\nHost: keyline\r\n\r\n",
        lambda: snmp_shaped_junk(rng),  # through the unknown-source budget, then shed
        lambda: v2c_link_down("guessed", request_id=rng.randrange(1 << 30)),
    ]
    junk = capacity - traps - 2
    sends = [(noise, junk_kinds[n % len(junk_kinds)]()) for n in range(junk)]
    step = len(sends) // traps
    for number in range(traps):  # v2c (the fast path) and v1 (pysnmp) in turn
        trap = v2c_link_down(request_id=number) if number % 2 else v1_link_down()
        sends.insert(number * (step + 1), (device, trap))
    sends += [(device, PYSNMP_RAISES), (device, snmp_shaped_junk(rng))]
    with caplog.at_level(logging.DEBUG):
        send_paced(sends, len(sends), flood_receiver.address, seconds=1.0)
        assert wait_for(lambda: flood_receiver.stats.datagrams == len(sends), timeout_s=10)
        sample_drops(loop, flood_receiver)
    stats = flood_receiver.stats
    observations = []
    while not flood_receiver.arrived.empty():
        observations.extend(flood_receiver.arrived.get())
    print(f"\nflood: {len(sends)} datagrams in 1 s (the promised burst), {traps} traps:"
          f" {len(observations)} observations; not SNMP {stats.not_snmp[UNKNOWN]}, shed"
          f" {stats.shed[UNKNOWN]}, undecodable {sum(stats.undecodable.values())}, wrong"
          f" community {stats.wrong_community[UNKNOWN]}, kernel drops {stats.kernel_drops}")
    assert [(o.object_id, o.new) for o in observations] == [(107, "down")] * traps
    assert stats.received == traps and stats.kernel_drops == 0
    of_kind = Counter(n % len(junk_kinds) for n in range(junk))
    assert stats.not_snmp[UNKNOWN] == of_kind[0] + of_kind[1] + of_kind[2]
    assert stats.wrong_community[UNKNOWN] == of_kind[4]  # read by the fast path
    assert stats.shed[UNKNOWN] + stats.undecodable[UNKNOWN] == of_kind[3]
    if of_kind[3] > UNKNOWN_SOURCE_DECODES_PER_S * 2:  # more than the budget lets through
        assert stats.shed[UNKNOWN] > 0
    assert stats.undecodable[KNOWN] == 2
    records = [r for r in caplog.records if r.name in ("collectors.traps", "asyncio")]
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    warnings = [r.getMessage() for r in records if r.levelno >= logging.WARNING]
    assert len(warnings) <= 8, warnings  # one per (reason, source), not one per datagram
    assert any("undecodable SNMP message (IndexError): 127.0.1.5" in w for w in warnings)


def test_kernel_drops_are_read_and_reported_once_a_minute(loop, make_receiver, udp_from,
                                                          caplog):
    """With the smallest buffer the setting allows and the receiver's loop held, a burst
    overflows the socket: the kernel's own drop counter (/proc/net/udp) is sampled into
    kernel_drops, exactly what was sent and never read, and logged at WARNING; a second
    overflow within the minute is counted, not logged again."""
    smallest = 64 * 1024
    with pytest.raises(ValidationError):
        TrapSettings(receive_buffer_bytes=smallest - 1)
    flood_receiver = make_receiver(
        receive_buffer_bytes=TrapSettings(receive_buffer_bytes=smallest).receive_buffer_bytes,
        drops_interval_s=0.1)
    noise = udp_from(UNKNOWN)
    burst = 4 * burst_capacity(flood_receiver.stats.receive_buffer_bytes) + 500
    sent = 0
    with caplog.at_level(logging.WARNING, logger="collectors.traps"):
        for _ in range(2):
            with HeldLoop(loop):
                for _ in range(burst):
                    noise.sendto(b"junk " * 20, flood_receiver.address)
                sent += burst
            # the periodic sample (every 0.1 s here) finds what the kernel dropped
            assert wait_for(lambda sent=sent: flood_receiver.stats.datagrams
                            + flood_receiver.stats.kernel_drops == sent)
        stats = flood_receiver.stats
        print(f"\nkernel drops: {stats.kernel_drops} of {sent} sent in two bursts into a"
              f" buffer of {stats.receive_buffer_bytes} bytes granted ({stats.datagrams} read)")
        assert stats.kernel_drops > burst  # both bursts overflowed
    drop_warnings = [r.getMessage() for r in caplog.records if "kernel dropped" in r.getMessage()]
    assert len(drop_warnings) == 1
    assert drop_warnings[0].startswith("trap receiver: the kernel dropped ")
    assert "receive_buffer_bytes" in drop_warnings[0] and "net.core.rmem_max" in drop_warnings[0]


def test_receive_buffer_setting_is_applied_and_the_grant_reported(loop, caplog):
    """The default setting, applied: as root with SO_RCVBUFFORCE (net.core.rmem_max does not
    cap it, and the kernel reports twice the size asked), else capped by rmem_max; the grant
    is in the stats and logged once at INFO."""
    asked = TrapSettings().receive_buffer_bytes
    assert asked == RECEIVE_BUFFER_BYTES
    trap_receiver = TrapReceiver({}, host="127.0.0.1", port=0, on_observations=print,
                                 receive_buffer_bytes=asked)
    with caplog.at_level(logging.INFO, logger="collectors.traps"):
        run(loop, trap_receiver.start())
        run(loop, trap_receiver.stop())
    rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
    granted = trap_receiver.stats.receive_buffer_bytes
    assert granted == (2 * asked if os.geteuid() == 0 else 2 * min(asked, rmem_max))
    (info,) = [r.getMessage() for r in caplog.records if "receive buffer: asked" in
               r.getMessage()]
    assert f"asked {asked} bytes, the kernel granted {granted}" in info
    assert ("SO_RCVBUFFORCE" in info) == (os.geteuid() == 0)


def test_a_buffer_smaller_than_asked_is_warned_about(caplog):
    """Without SO_RCVBUFFORCE, asking for more than net.core.rmem_max gets rmem_max: the
    WARNING says which sysctl to raise."""
    rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        buffer = apply_receive_buffer(sock, 2 * rmem_max, force=False)
    assert not buffer.forced and buffer.short and buffer.granted_bytes == 2 * rmem_max
    with caplog.at_level(logging.INFO, logger="collectors.traps"):
        log_receive_buffer(buffer)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"the kernel granted {2 * rmem_max} bytes, less than the {2 * rmem_max} asked" in (
        warning)
    assert f"sysctl -w net.core.rmem_max={2 * rmem_max}" in warning


def test_memory_stays_bounded_under_a_flood_from_many_sources(make_receiver):
    """40,000 datagrams of junk in 2 s from 4,096 (spoofed-like) source addresses: the
    per-source counters keep at most `max_sources` addresses, the rate-limited warnings a
    bounded number of keys, and the process's resident memory grows by less than 16 MiB.

    Why so generous a margin: VmRSS moves with things that are not leaks (the allocator's
    arenas, pages first touched by the sender's sockets, the logging of the first warnings),
    by a few MiB from run to run; a warm-up flood first takes the one-time growth. What the
    margin still catches is anything kept per datagram: at 40,000 datagrams, 420 bytes each
    (one bytes object with its tuple of address) is 16 MiB. The exact bounds are the
    counters' sizes, asserted first."""
    flood_receiver = make_receiver(max_sources=256, drops_interval_s=0.1)
    rng = random.Random(5)
    junk = [snmp_shaped_junk(rng) if n % 2 else rng.randbytes(rng.randint(20, 200))
            for n in range(1024)]  # reused: the test's own data must not grow either

    def flood(first_source: int, datagrams: int, seconds: float) -> None:
        sockets = [sender(f"127.1.{(first_source + n) >> 8}.{(first_source + n) & 255}")
                   for n in range(4096)]
        try:
            sends = ((sockets[n % len(sockets)], junk[n % len(junk)])
                     for n in range(datagrams))
            expected = flood_receiver.stats.datagrams + flood_receiver.stats.kernel_drops
            send_paced(sends, datagrams, flood_receiver.address, seconds)
            expected += datagrams
            assert wait_for(lambda: flood_receiver.stats.datagrams
                            + flood_receiver.stats.kernel_drops >= expected, timeout_s=10)
        finally:
            for sock in sockets:
                sock.close()

    flood(256, 10_000, 0.5)  # warm-up: new sources, warnings, the shed path
    before = vm_rss_bytes()
    flood(256 + 4096, 40_000, 2.0)  # 4,096 more sources never seen
    grown = vm_rss_bytes() - before
    stats = flood_receiver.stats
    print(f"\nRSS grew by {grown / 2**20:.1f} MiB over a flood of 40,000 datagrams from 4,096"
          f" sources ({stats.datagrams} read, {stats.kernel_drops} dropped by the kernel)")
    for counter in (stats.not_snmp, stats.shed, stats.undecodable):
        assert len(counter) <= 256 + 1  # and OTHER_SOURCES
    assert stats.not_snmp[OTHER_SOURCES] > 0
    assert len(flood_receiver._warnings._last) <= MAX_WARNING_KEYS + 3
    assert grown < 16 * 2**20


def test_a_relay_is_learned_and_its_traps_decoded_beyond_the_unknown_source_budget(
        make_receiver, udp_from):
    """A v1 trap relayed by an address that is no device (its agent-addr, snmpTrapAddress.0
    in the v2 form, names pe1) is observed; from then on that relay's datagrams are decoded
    like a device's, not shed with the junk of unknown sources once their budget is spent."""
    trap_receiver = make_receiver()
    relay = udp_from("127.0.1.9")
    relay.sendto(v1_link_down(if_index=8), trap_receiver.address)
    observations = trap_receiver.arrived.get(timeout=2)
    assert observations[0].object_id == 108 and observations[0].detail["relayed_by"] == (
        "127.0.1.9")
    rng = random.Random(3)
    burst = int(UNKNOWN_SOURCE_DECODES_PER_S) * 2
    for _ in range(burst):
        relay.sendto(snmp_shaped_junk(rng), trap_receiver.address)
    relay.sendto(v1_link_down(if_index=7), trap_receiver.address)
    observations = trap_receiver.arrived.get(timeout=5)
    assert observations[0].object_id == 107
    stats = trap_receiver.stats
    assert stats.shed["127.0.1.9"] == 0 and stats.undecodable["127.0.1.9"] == burst
