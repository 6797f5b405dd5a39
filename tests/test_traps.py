"""The trap receiver: pure parsing and mapping, then real v2c and v3 traps over loopback.

The network tests send notifications with pysnmp's own notification originator
(`send_notification`) from sockets bound to 127.0.1.N (each address stands for one device) to
a receiver on 127.0.0.1 at a free port. Everything runs on one event loop in a background
thread for the whole module, so the senders' engines are built (and their MIBs loaded, about
0.8 s) once, not per test.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
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
from collectors.spool import SpoolingSink
from collectors.traps import (
    COLD_START,
    LINK_DOWN,
    LINK_UP,
    Notification,
    RateLimitedWarnings,
    TrapReceiver,
    V3TrapUser,
    parse_notification,
    resolve_target,
    trap_observations,
)
from store.observations import recent_observations
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
             user: UsmUserData | None = None, engine_id: bytes | None = None) -> float:
        """Send one trap from `source`; return the monotonic time just before sending."""
        secret = user.authentication_key if user else community
        key = f"{source}:{secret}"
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
                                                "trap", *varbinds)
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


def test_trap_then_poll_through_tracker_and_sink_store_one_observation(
        receiver, senders, db, tmp_path):
    tracker = StateTracker()
    sink = SpoolingSink(db.pool, tmp_path / "spool")
    tracker.apply([Observation(T0, 107, "oper_status", None, "up", "poll")])
    senders.send(receiver, "127.0.1.5", LINK_DOWN, if_index_varbind(7))
    _, from_trap = receiver.arrived.get(timeout=2)
    sink.write_observations(tracker.apply(from_trap))
    from_poll = [Observation(T0 + timedelta(seconds=5), 107, "oper_status", "up", "down", "poll")]
    sink.write_observations(tracker.apply(from_poll))
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
