"""The collection service end to end: the simulated network polled on schedule into a real
store, traps turned into observations, and misbehaving devices that hold back only themselves.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg import sql

from collectors.counters import InterfaceRates
from collectors.model import Sample
from collectors.schedule import phase_fraction, plan_poll
from collectors.service import CollectionService, rate_samples
from config.inventory.loader import load_inventory
from config.inventory.model import Inventory
from keyline.wiring import EXAMPLE_INVENTORY
from lab.sim.access import with_lab_defaults
from lab.sim.network import SimulatedNetwork, snmpsim_available
from store.database import Database, open_database
from store.inventory import apply_inventory
from tests.snmp_agents import (
    COMMUNITY,
    NetSnmpAgent,
    NetSnmpV1OnlyAgent,
    Relay,
    free_udp_port_on,
    free_udp_ports,
)

T = TypeVar("T")

TRAP_OBSERVATION_WITHIN_S = 2.0


# --- schedule and samples (no network) ---------------------------------------------------------


def test_phases_spread_a_large_group_evenly_over_its_interval() -> None:
    interval_s = 60
    per_second = [0] * interval_s
    for device_id in range(1000, 3000):  # ids as an import hands them out: consecutive
        per_second[int(phase_fraction(device_id) * interval_s)] += 1
    # 2,000 devices over 60 s is 33.3 a second; an even spread stays close to that
    assert max(per_second) <= 40
    assert min(per_second) >= 27


def test_phase_is_stable_and_in_the_interval() -> None:
    for device_id in (1, 2, 77, 10**9):
        assert 0 <= phase_fraction(device_id) < 1
        assert phase_fraction(device_id) == phase_fraction(device_id)


def test_warm_up_polls_give_every_device_a_rate_soon_after_the_start() -> None:
    spread_s = 10.0
    for interval_s in (10.0, 30.0, 60.0, 300.0):
        for device_id in range(1, 400):
            plan = plan_poll(device_id, "pe1", "core", interval_s, startup_spread_s=spread_s)
            polls = sorted([*plan.warmup_delays_s,
                            *(plan.first_delay_s + n * interval_s for n in range(3))])
            # the second poll, which gives the first rate, comes within two and a half
            # spreads (a warm-up poll too close to a regular one gives way to it)
            assert polls[1] <= 2.5 * spread_s, (interval_s, device_id, polls)
            # and no two polls are closer than half a spread: every rate covers real time
            assert all(b - a >= spread_s / 2 for a, b in itertools.pairwise(polls)), polls
    late = next(d for d in range(1, 100) if phase_fraction(d) > 0.9)
    assert len(plan_poll(late, "pe1", "core", 60.0, spread_s).warmup_delays_s) == 2
    # a short interval needs no warm-up: the first regular polls come soon anyway
    assert plan_poll(late, "ce1", "key-accounts", 10.0, spread_s).warmup_delays_s == ()


def test_rate_samples_carry_every_computed_rate_and_the_statuses() -> None:
    now = datetime.now(UTC)
    rates = InterfaceRates(if_index=3, interval_s=10.0, in_bps=8000.0, out_bps=None,
                           in_utilization_pct=0.8, oper_status=1, admin_status=1)
    samples = rate_samples(rates, 42, now)
    assert Sample(now, 42, "if_in_bps", 8000.0) in samples
    assert Sample(now, 42, "if_in_utilization_pct", 0.8) in samples
    assert Sample(now, 42, "if_oper_status", 1.0) in samples
    assert not any(sample.metric == "if_out_bps" for sample in samples)
    withheld = InterfaceRates(if_index=3, interval_s=None, oper_status=2,
                              skipped_reason="sysUpTime went backwards")
    assert [s.metric for s in rate_samples(withheld, 42, now)] == ["if_oper_status"]


# --- against the simulated network -------------------------------------------------------------


def wait_for(predicate: Callable[[], T], timeout_s: float, interval_s: float = 0.05) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout_s} s")
        time.sleep(interval_s)


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    example = load_inventory([EXAMPLE_INVENTORY])
    port = free_udp_port_on([str(d.management_address) for d in example.devices.values()])
    devices = {key: replace(device, snmp_port=port) for key, device in example.devices.items()}
    return replace(example, devices=devices)


@pytest.fixture(scope="module")
def environ(inventory: Inventory) -> dict[str, str]:
    return with_lab_defaults(inventory, {})


@pytest.fixture(scope="module")
def trap_port() -> int:
    return free_udp_ports(1)[0]


@pytest.fixture(scope="module")
def network(inventory: Inventory, environ: dict[str, str], trap_port: int,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedNetwork]:
    if not snmpsim_available():
        pytest.skip("snmpsim is not importable: run python3 dev.py test, which installs it")
    # The v3 core routers send v2c traps with the lab's v2c community (the simulator's
    # default), which the receiver accepts because the inventory polls with it.
    simulated = SimulatedNetwork(
        inventory, tmp_path_factory.mktemp("sim"), environ=environ,
        trap_receiver=("127.0.0.1", trap_port),
        control_socket=False)
    simulated.start()
    yield simulated
    simulated.stop()


@pytest.fixture
def store(pg_server: Any, template_db: str, inventory: Inventory,
          tmp_path: Path) -> Iterator[Database]:
    """A new database holding the example inventory (with the simulated agents' port)."""
    name = f"collect_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.url_for("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template_db)))
    database = open_database(pg_server.url_for(name), tmp_path, min_size=1, max_size=6)
    with database.pool.connection() as conn:
        apply_inventory(conn, inventory)
    try:
        yield database
    finally:
        database.close()
        with psycopg.connect(pg_server.url_for("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def make_service(store: Database, environ: dict[str, str], tmp_path: Path, *,
                 interval_s: float, traps_port: int | None, timeout_s: float = 3.0,
                 retries: int = 1, down_after_failures: int = 2) -> CollectionService:
    # The default timeout is for agents that answer: on a loaded machine the simulated
    # agents are slow, and a test about healthy devices must not see them "unreachable".
    # Tests about silence pass their own, shorter one.
    return CollectionService(
        store.pool, spool_dir=tmp_path / "spool", interval_s_for=lambda group: interval_s,
        environ=environ, timeout_s=timeout_s, retries=retries,
        traps_enabled=traps_port is not None, trap_port=traps_port or 0,
        startup_spread_s=min(interval_s, 2.0), flush_interval_s=0.2,
        down_after_failures=down_after_failures)


def port_id(store: Database, device: str, port: str) -> int:
    with store.pool.connection() as conn:
        return conn.execute(
            "SELECT p.id FROM ports p JOIN devices d ON d.id = p.device_id"
            " WHERE d.key = %s AND p.name = %s", (device, port)).fetchone()[0]


def observations_of(store: Database, object_id: int, kind: str = "oper_status"
                    ) -> list[tuple[str | None, str, str, datetime]]:
    with store.pool.connection() as conn:
        return conn.execute(
            "SELECT old, new, source, time FROM observations WHERE object_id = %s AND kind = %s"
            " ORDER BY id", (object_id, kind)).fetchall()


def a_linked_port(inventory: Inventory, role: str) -> tuple[str, str]:
    """(device, port) of a port at one end of a declared link, on a device of `role`."""
    for link in sorted(inventory.links.values(), key=lambda link: link.key):
        for end in (link.a, link.z):
            if inventory.devices[end.device].role == role:
                return end.device, end.port
    raise AssertionError(f"no linked port on a {role} device")


def test_polls_every_device_into_samples_and_poll_statuses(
        network: SimulatedNetwork, store: Database, environ: dict[str, str],
        tmp_path: Path) -> None:
    with make_service(store, environ, tmp_path, interval_s=1.5, traps_port=None) as service:
        device_keys = {plan.device_key for plan in service.plans()}
        assert device_keys == set(network.inventory.devices)
        # two polls of every device give every linked port a rate
        wait_for(lambda: min(service.stats().device_polls.get(k, 0) for k in device_keys) >= 2,
                 timeout_s=15)
        service.flush()
        stats = service.stats()
    assert stats.polls["reachable"] == sum(stats.device_polls.values())
    assert stats.write_errors == 0 and stats.target_problems == []
    with store.pool.connection() as conn:
        statuses = conn.execute(
            "SELECT d.key, s.status FROM device_poll_status s JOIN devices d ON d.id = s.device_id"
        ).fetchall()
        rates = conn.execute(
            """SELECT count(DISTINCT s.object_id), min(s.value), max(s.value)
                 FROM samples s JOIN metrics m ON m.id = s.metric_id
                 JOIN ports p ON p.id = s.object_id
                WHERE m.name = 'if_in_bps'""").fetchone()
        port_count = conn.execute(
            "SELECT count(*) FROM ports WHERE if_index IS NOT NULL").fetchone()[0]
        response_times = conn.execute(
            """SELECT count(DISTINCT s.object_id) FROM samples s
                 JOIN metrics m ON m.id = s.metric_id WHERE m.name = 'snmp_response_ms'"""
        ).fetchone()[0]
    assert dict(statuses) == dict.fromkeys(device_keys, "reachable")
    ports_with_rate, lowest_bps, highest_bps = rates
    assert ports_with_rate == port_count
    assert lowest_bps >= 0 and highest_bps > 0  # the simulated counters grow
    assert response_times == len(device_keys)


def test_a_link_down_trap_is_an_observation_within_two_seconds(
        network: SimulatedNetwork, store: Database, environ: dict[str, str], trap_port: int,
        inventory: Inventory, tmp_path: Path) -> None:
    # A long interval: only the trap can be this quick.
    with make_service(store, environ, tmp_path, interval_s=300, traps_port=trap_port) as service:
        for role in ("P", "CE"):  # a v3 core router and a v2c customer edge
            device, port = a_linked_port(inventory, role)
            object_id = port_id(store, device, port)
            try:
                assert network.set_port_status(device, port, "down")
                changed_at = time.monotonic()
                seen = wait_for(lambda port=object_id: [
                    row for row in observations_of(store, port) if row[1] == "down"],
                    TRAP_OBSERVATION_WITHIN_S)
                assert time.monotonic() - changed_at <= TRAP_OBSERVATION_WITHIN_S
                assert seen[0][2] == "trap"
            finally:
                network.set_port_status(device, port, "up")
            wait_for(lambda port=object_id: observations_of(store, port)[-1][1] == "up", 2.0)
        assert service.trap_receiver is not None
        assert not service.trap_receiver.stats.unknown_source
        assert not service.trap_receiver.stats.wrong_community


def test_with_traps_disabled_the_next_poll_sees_the_link_down_within_one_interval(
        network: SimulatedNetwork, store: Database, environ: dict[str, str],
        inventory: Inventory, tmp_path: Path) -> None:
    interval_s = 2.0
    device, port = a_linked_port(inventory, "PE")
    object_id = port_id(store, device, port)
    with make_service(store, environ, tmp_path, interval_s=interval_s,
                      traps_port=None) as service:
        assert service.trap_receiver is None
        wait_for(lambda: observations_of(store, object_id), 10)  # the starting picture: up
        assert observations_of(store, object_id)[-1][:3] == (None, "up", "poll")
        try:
            assert network.set_port_status(device, port, "down")
            changed_at = time.monotonic()
            # one interval, plus the time one poll of one device may take
            seen = wait_for(lambda: [row for row in observations_of(store, object_id)
                                     if row[1] == "down"], interval_s + 1.0)
            assert time.monotonic() - changed_at <= interval_s + 1.0
            assert seen[0][:3] == ("up", "down", "poll")
        finally:
            network.set_port_status(device, port, "up")


class RelayThread:
    """Relays (tests.snmp_agents.Relay) on an event loop of their own thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.relays: list[Relay] = []

    def relay(self, agent: tuple[str, int], **options: Any) -> tuple[str, int]:
        relay = asyncio.run_coroutine_threadsafe(Relay(agent, **options).start(),
                                                 self.loop).result(5)
        self.relays.append(relay)
        return relay.address

    def close(self) -> None:
        for relay in self.relays:
            self.loop.call_soon_threadsafe(relay.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def test_unreachable_slow_and_malformed_devices_hold_back_only_themselves(
        network: SimulatedNetwork, store: Database, environ: dict[str, str],
        inventory: Inventory, tmp_path: Path) -> None:
    # a failing poll takes 3 s, more than the interval; a healthy one well under a second,
    # even on a loaded machine
    interval_s, timeout_s, retries = 2.0, 1.5, 1
    v2c = sorted(k for k, d in inventory.devices.items()
                 if inventory.credentials[d.snmp_credential].kind == "snmp_v2c")
    dead, slow, malformed = v2c[:3]
    relays = RelayThread()
    try:
        # a relay that never answers: requests vanish, as into a firewall that drops them
        dead_at = relays.relay(network.endpoint(dead), delay_s=3600.0)
        slow_at = relays.relay(network.endpoint(slow), delay_s=5.0)
        malformed_at = relays.relay(network.endpoint(malformed),
                                    mangle=lambda answer: answer[: len(answer) // 2])
        with store.pool.connection() as conn:
            for key, (host, port) in ((dead, dead_at), (slow, slow_at),
                                      (malformed, malformed_at)):
                conn.execute("UPDATE devices SET management_address = %s, snmp_port = %s"
                             " WHERE key = %s", (host, port, key))
        # one failed poll is enough here: the verdict is tested elsewhere, this is about pace
        with make_service(store, environ, tmp_path, interval_s=interval_s, traps_port=None,
                          timeout_s=timeout_s, retries=retries,
                          down_after_failures=1) as service:
            started = time.monotonic()
            time.sleep(10.0)
            elapsed_s = time.monotonic() - started
            service.flush()
            stats = service.stats()
    finally:
        relays.close()
    healthy = set(inventory.devices) - {dead, slow, malformed}
    # Every healthy device kept its interval: a poll every 2 s (the first one comes at its
    # phase, within the first interval).
    expected_polls = int(elapsed_s / interval_s) - 1
    for key in healthy:
        assert stats.device_polls[key] >= expected_polls, (key, stats.device_polls)
        assert key not in stats.skipped_polls
    # The two that take longer than an interval to fail skipped cycles instead of overlapping.
    for key in (dead, slow):
        assert stats.skipped_polls[key] >= 1
        assert stats.device_polls[key] < expected_polls
    with store.pool.connection() as conn:
        statuses = dict(conn.execute(
            "SELECT d.key, s.status || ': ' || coalesce(s.reason, '') FROM device_poll_status s"
            " JOIN devices d ON d.id = s.device_id").fetchall())
        reachability = conn.execute(
            "SELECT d.key, o.new FROM observations o JOIN devices d ON d.id = o.object_id"
            " WHERE o.kind = 'reachability'").fetchall()
    assert statuses[dead].startswith("unreachable: no answer")
    assert statuses[slow].startswith("unreachable: no answer")
    assert statuses[malformed].startswith("error: ")
    assert all(statuses[key] == "reachable: " for key in healthy)
    # the relays' address answers ping: SNMP-silent, not proven down
    assert (dead, "snmp-unresponsive") in reachability and (malformed, "error") in reachability
    secret = environ["KEYLINE_LAB_SNMP_COMMUNITY"]
    assert not any(secret in text for text in statuses.values())


def test_a_restarted_service_does_not_announce_known_states_again(
        network: SimulatedNetwork, store: Database, environ: dict[str, str],
        tmp_path: Path) -> None:
    def observations(after_id: int = 0) -> list[tuple[int, str, int, str | None, str]]:
        with store.pool.connection() as conn:
            return conn.execute(
                "SELECT id, kind, object_id, old, new FROM observations WHERE id > %s"
                " ORDER BY id", (after_id,)).fetchall()

    # Answers may be slow on a loaded machine: a poll that timed out would be a true new
    # state ("unreachable"), not a known one announced again, so the timeout is generous
    # (the test waits for polls that answered, however long they take).
    def started():
        return make_service(store, environ, tmp_path, interval_s=1.0, traps_port=None,
                            timeout_s=5.0)

    with started() as service:
        wait_for(lambda: min(service.stats().device_polls.values(), default=0) >= 1
                 and len(service.stats().device_polls) == len(network.inventory.devices), 60)
        service.flush()
    first = observations()
    assert first  # the starting picture: every device and port, once
    with started() as service:
        wait_for(lambda: min(service.stats().device_polls.values(), default=0) >= 2
                 and len(service.stats().device_polls) == len(network.inventory.devices), 60)
        service.flush()
    assert observations(after_id=first[-1][0]) == []


def test_the_trap_port_taken_is_a_clear_error(store: Database, environ: dict[str, str],
                                              tmp_path: Path) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        service = make_service(store, environ, tmp_path, interval_s=60,
                               traps_port=taken.getsockname()[1])
        with pytest.raises(OSError, match=r"trap receiver cannot listen on 127\.0\.0\.1:"):
            service.start()
        service.stop()


def test_scheduled_blocking_work_runs_on_the_interval_and_never_twice_at_once(
        store: Database, environ: dict[str, str], tmp_path: Path) -> None:
    runs: list[float] = []
    running = threading.Event()
    overlapped = threading.Event()

    def slow_work() -> None:
        if running.is_set():
            overlapped.set()
        running.set()
        runs.append(time.monotonic())
        time.sleep(0.5)  # longer than the interval: the next run is due while this one runs
        running.clear()

    with make_service(store, environ, tmp_path, interval_s=300, traps_port=None) as service:
        service.schedule_blocking("slow work", 0.2, slow_work)
        wait_for(lambda: len(runs) >= 3, 5)
    assert not overlapped.is_set()
    assert all(b - a >= 0.5 for a, b in itertools.pairwise(runs))


def send_v3_link_down(receiver: tuple[str, int], source: str, engine_id: bytes,
                      user: str, auth_key: str, priv_key: str, if_index: int) -> None:
    """A v3 linkDown as an agent sends it: signed with the agent's own engine id."""
    from pysnmp.hlapi.v3arch.asyncio import (
        ContextData,
        SnmpEngine,
        UdpTransportTarget,
        UsmUserData,
        send_notification,
        usmAesCfb128Protocol,
        usmHMACSHAAuthProtocol,
    )
    from pysnmp.proto.rfc1902 import Integer32, ObjectIdentifier, ObjectName, OctetString, TimeTicks

    async def send() -> None:
        engine = SnmpEngine(OctetString(engine_id))
        try:
            target = await UdpTransportTarget.create(receiver, timeout=1, retries=0)
            target.set_local_address((source, 0))
            error, *_ = await send_notification(
                engine, UsmUserData(user, auth_key, priv_key,
                                    authProtocol=usmHMACSHAAuthProtocol,
                                    privProtocol=usmAesCfb128Protocol),
                target, ContextData(), "trap",
                (ObjectName("1.3.6.1.2.1.1.3.0"), TimeTicks(4200)),
                (ObjectName("1.3.6.1.6.3.1.1.4.1.0"), ObjectIdentifier("1.3.6.1.6.3.1.1.5.3")),
                (ObjectName(f"1.3.6.1.2.1.2.2.1.1.{if_index}"), Integer32(if_index)),
                (ObjectName(f"1.3.6.1.2.1.2.2.1.8.{if_index}"), Integer32(2)))
            assert error is None, error
        finally:
            engine.close_dispatcher()

    asyncio.run(send())


def test_v3_traps_are_accepted_once_a_poll_has_learned_the_agents_engine_id(
        network: SimulatedNetwork, store: Database, environ: dict[str, str], trap_port: int,
        inventory: Inventory, tmp_path: Path) -> None:
    from lab.sim.network import engine_id_hex

    device, port = a_linked_port(inventory, "P")
    credential = inventory.credentials[inventory.devices[device].snmp_credential]
    assert credential.kind == "snmp_v3"
    if_index = next(p.if_index for p in inventory.devices[device].ports if p.name == port)
    object_id = port_id(store, device, port)
    address = str(inventory.devices[device].management_address)
    with make_service(store, environ, tmp_path, interval_s=1.0, traps_port=trap_port) as service:
        wait_for(lambda: service.stats().device_polls[device] >= 1, 10)
        send_v3_link_down(("127.0.0.1", trap_port), address, bytes.fromhex(engine_id_hex(device)),
                          credential.params["username"], environ["KEYLINE_LAB_SNMP_AUTH_KEY"],
                          environ["KEYLINE_LAB_SNMP_PRIV_KEY"], if_index)
        seen = wait_for(lambda: [row for row in observations_of(store, object_id)
                                 if row[1] == "down"], TRAP_OBSERVATION_WITHIN_S)
        assert service.trap_receiver is not None
        rejected = dict(service.trap_receiver.stats.v3_rejected)
    assert seen[0][2] == "trap"
    assert rejected == {}


def test_ports_are_matched_by_name_and_swapped_if_indexes_are_reported(
        network: SimulatedNetwork, store: Database, environ: dict[str, str],
        inventory: Inventory, tmp_path: Path) -> None:
    device = "pe-sh1"
    ports = {p.name: p.if_index for p in inventory.devices[device].ports}
    first, second = "GigabitEthernet0/0/0", "GigabitEthernet0/0/1"
    name_only = "XGigabitEthernet0/1/2"
    with store.pool.connection() as conn:
        # the inventory has two ifIndexes swapped and one port with none, named short
        for name, if_index in ((first, ports[second]), (second, ports[first])):
            conn.execute("UPDATE ports SET if_index = %s WHERE name = %s AND device_id ="
                         " (SELECT id FROM devices WHERE key = %s)", (if_index, name, device))
        conn.execute("UPDATE ports SET if_index = NULL, name = 'XGE0/1/2' WHERE name = %s"
                     " AND device_id = (SELECT id FROM devices WHERE key = %s)",
                     (name_only, device))
    ids = {name: port_id(store, device, name) for name in (first, second, "XGE0/1/2")}
    with make_service(store, environ, tmp_path, interval_s=1.0, traps_port=None) as service:
        wait_for(lambda: service.stats().device_polls[device] >= 2, 10)
        service.flush()
    with store.pool.connection() as conn:
        matches = {row[0]: row[1:] for row in conn.execute(
            "SELECT port_id, if_index, matched_by, problem FROM port_matches"
            " WHERE port_id = ANY(%s)", [list(ids.values())])}
        problems = {row[0]: row[1] for row in conn.execute(
            "SELECT object_id, new FROM observations WHERE kind = 'port_match'"
            " AND object_id = ANY(%s)", [list(ids.values())])}
        rates = {row[0] for row in conn.execute(
            "SELECT DISTINCT s.object_id FROM samples s JOIN metrics m ON m.id = s.metric_id"
            " WHERE m.name = 'if_oper_status' AND s.object_id = ANY(%s)",
            [list(ids.values())])}
    # the name wins over the stale ifIndex, and both are reported
    assert matches[ids[first]] == (ports[first], "ifName", "if_index_name_mismatch")
    assert matches[ids[second]] == (ports[second], "ifName", "if_index_name_mismatch")
    assert problems == {ids[first]: "if_index_name_mismatch",
                        ids[second]: "if_index_name_mismatch"}
    # the short form finds the long name; no problem, its samples stored
    assert matches[ids["XGE0/1/2"]][0] == ports[name_only]
    assert matches[ids["XGE0/1/2"]][2] is None
    assert rates == set(ids.values())


@pytest.mark.skipif(NetSnmpAgent.binary() is None,
                    reason="Net-SNMP snmpd is not installed (lab/debian-packages.txt)")
def test_an_agent_that_speaks_snmpv1_only_is_named_in_the_hint_then_polled_as_v1(
        store: Database, environ: dict[str, str], tmp_path: Path) -> None:
    key = "ce-xinhe-gz-store"  # polled with the lab's v2c credential
    with NetSnmpV1OnlyAgent() as agent, store.pool.connection() as conn:
        conn.execute("UPDATE devices SET retired_at = now() WHERE key <> %s", [key])
        conn.execute("UPDATE devices SET management_address = %s, snmp_port = %s"
                     " WHERE key = %s", (agent.host, agent.port, key))
        conn.commit()
        (device_id,) = conn.execute("SELECT id FROM devices WHERE key = %s", [key]).fetchone()
        env = {**environ, "KEYLINE_LAB_SNMP_COMMUNITY": COMMUNITY}

        def verdict() -> tuple[str, dict] | None:
            row = conn.execute(
                "SELECT new, detail FROM observations WHERE object_id = %s AND kind ="
                " 'reachability' ORDER BY id DESC LIMIT 1", [device_id]).fetchone()
            conn.commit()
            return row

        # polled as v2c: silent, alive (127.0.0.1 answers ping), and the hint says why
        with make_service(store, env, tmp_path / "v2c", interval_s=1.0, traps_port=None,
                          timeout_s=1.0):
            state, detail = wait_for(lambda: (lambda v: v if v and v[0] != "reachable"
                                              else None)(verdict()), 20)
        assert state == "snmp-unresponsive"
        assert "answers SNMPv1 only" in detail["hint"] and "snmp_v1" in detail["hint"]
        assert COMMUNITY not in str(detail)
        # the operator follows the hint: the device is polled, its interfaces read
        conn.execute("UPDATE credentials SET kind = 'snmp_v1' WHERE id ="
                     " (SELECT snmp_credential_id FROM devices WHERE key = %s)", [key])
        conn.commit()
        with make_service(store, env, tmp_path / "v1", interval_s=1.0,
                          traps_port=None) as service:
            wait_for(lambda: (verdict() or ("",))[0] == "reachable", 20)
            wait_for(lambda: service.stats().samples > 0, 10)


def test_a_stepped_wall_clock_keeps_the_schedule_and_the_rates_and_restarts_nothing(
        network: SimulatedNetwork, store: Database, environ: dict[str, str],
        inventory: Inventory, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The service's wall clock stepped an hour back, then an hour forward, mid-run (the
    simulated counters and sysUpTimes follow the real time, which is not stepped): every
    device keeps its interval, a port's utilization stays what the simulator plans, no
    interval is withheld, no agent looks restarted, samples take the new time, and each
    step is logged once and counted."""
    import logging

    from lab.sim.plan import build_plan

    interval_s, phase_s = 1.5, 4.5
    offset_s = 0.0  # the wall clock's step so far
    device, port = a_linked_port(inventory, "PE")
    object_id = port_id(store, device, port)
    planned = build_plan(inventory, time.time()).port(f"{device}:{port}")
    planned_pct = planned.inbound.rate_bytes_per_s * 8 / planned.speed_bps * 100
    # an interval's mean of a rate wobbling +-jitter around its mean, with room for the
    # poll's own timing (the readings are stamped when sysUpTime answered)
    low = planned_pct * (1 - planned.inbound.jitter_ratio) * 0.85
    high = planned_pct * (1 + planned.inbound.jitter_ratio) * 1.15

    def utilization() -> list[tuple[datetime, float]]:
        with store.pool.connection() as conn:
            return conn.execute(
                "SELECT s.time, s.value FROM samples s JOIN metrics m ON m.id = s.metric_id"
                " WHERE m.name = 'if_in_utilization_pct' AND s.object_id = %s ORDER BY s.time",
                [object_id]).fetchall()

    caplog.set_level(logging.WARNING, logger="collectors.service")
    service = CollectionService(
        store.pool, spool_dir=tmp_path / "spool", interval_s_for=lambda group: interval_s,
        environ=environ, timeout_s=1.0, retries=1, traps_enabled=False,
        startup_spread_s=interval_s, flush_interval_s=0.2,
        wall_clock=lambda: time.time() + offset_s)
    phases: list[tuple[float, dict[str, int]]] = []
    with service:
        device_keys = {plan.device_key for plan in service.plans()}
        wait_for(lambda: min(service.stats().device_polls.get(k, 0) for k in device_keys) >= 2,
                 timeout_s=15)
        for step_s in (0.0, -3600.0, 3600.0):
            offset_s += step_s
            before = service.stats().device_polls
            started = time.monotonic()
            time.sleep(phase_s)
            elapsed_s = time.monotonic() - started
            after = service.stats().device_polls
            phases.append((elapsed_s, {key: after[key] - before[key] for key in device_keys}))
        stats = service.stats()
        service.flush()
        # every poll of the device after its first gave the port a rate (none withheld)
        rows = wait_for(lambda: (lambda rows: rows if len(rows) >= stats.device_polls[device] - 1
                                 else None)(utilization()), 10)
    # polls kept their interval through both steps (a wall-clock scheduler stopped for the
    # hour after the step back)
    for elapsed_s, polls in phases:
        expected = int(elapsed_s / interval_s) - 1
        assert all(count >= expected for count in polls.values()), (elapsed_s, polls)
    assert not stats.skipped_polls
    # rates stayed right: no interval withheld (a negative or an hour-long one), every
    # utilization where the simulator puts it, before, during and after the hour back
    assert stats.withheld_intervals == 0
    assert all(low <= value <= high for _, value in rows), (low, high, rows)
    now = datetime.now(UTC)
    stepped_back = [at for at, _ in rows if (now - at).total_seconds() > 1800]
    assert stepped_back, "samples of the hour back are stamped with the new time"
    assert len(rows) - len(stepped_back) >= 4  # before and after it
    with store.pool.connection() as conn:
        gaps = conn.execute(
            "SELECT count(*) FROM samples s JOIN metrics m ON m.id = s.metric_id"
            " WHERE m.name = 'if_rate_gap'").fetchone()[0]
        restarts = conn.execute(
            "SELECT count(*) FROM observations WHERE kind = 'agent_restart'").fetchone()[0]
    assert gaps == 0
    assert restarts == 0
    # each step said once, and counted
    steps = [record.getMessage() for record in caplog.records
             if "the wall clock stepped" in record.getMessage()]
    assert steps == [
        "the wall clock stepped by -3600 s; polling continues on schedule; samples are "
        "stamped with the new time",
        "the wall clock stepped by +3600 s; polling continues on schedule; samples are "
        "stamped with the new time",
    ]
    assert all(record.levelno == logging.WARNING for record in caplog.records
               if "the wall clock stepped" in record.getMessage())
    assert stats.clock_steps == 2


def test_a_late_snmp_answer_at_stop_is_dropped_without_a_traceback(caplog):
    """A datagram that reached a pysnmp engine as it closed (`keyline collect` stopped during
    a poll) is dropped quietly; any other exception in the loop is still reported."""
    import asyncio
    import logging

    from pysnmp.carrier.error import CarrierError

    from collectors.service import drop_late_snmp_answers

    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.DEBUG):
            drop_late_snmp_answers(loop, {"message": "Exception in callback",
                                          "exception": CarrierError("Unregistered transport x")})
            assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
            drop_late_snmp_answers(loop, {"message": "Exception in callback",
                                          "exception": ValueError("something else")})
            assert [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        loop.close()
