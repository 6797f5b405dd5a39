"""Several collectors on one store (store/leases.py, docs/scaling.md).

First the leases alone on a real store: the fair split of a group, a name in use, a dead
collector's devices taken with the wait that keeps one poll per interval, a hand-over, and
the fleet's advisory-lock singleton passing from one holder to the next. Then two real
`keyline collect` processes on one store against the simulated network: they split the
devices, no device is polled twice in one interval, one is killed with SIGKILL and the
other takes its devices over within two intervals, and the observations match the faults
the test made, none lost and none twice.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.sim.network import SimulatedNetwork
from store.database import Database
from store.leases import (
    CollectorInstance,
    FleetSingleton,
    lease_holders,
    register_instance,
    release_leases,
    renew_leases,
)
from tests import test_collection_service as collection_fixtures
from tests.snmp_agents import free_udp_ports
from tests.test_collection_service import wait_for

inventory = collection_fixtures.inventory
environ = collection_fixtures.environ
trap_port = collection_fixtures.trap_port
network = collection_fixtures.network
store = collection_fixtures.store

# A process's start and stop on a loaded CI machine: generous, never a speed check.
PROCESS_TIMEOUT_S = 90.0


def _device_ids(db: Database, group: str | None = None) -> set[int]:
    with db.pool.connection() as conn:
        return {row[0] for row in conn.execute(
            "SELECT id FROM devices WHERE retired_at IS NULL"
            " AND (%(g)s::text IS NULL OR poller_group = %(g)s)", {"g": group})}


def _renew(db: Database, instance: CollectorInstance, *, lease_s: float = 30.0,
           interval_s: float = 60.0, budget_s: float = 5.0):
    with db.pool.connection() as conn:
        return renew_leases(conn, instance, lease_s=lease_s,
                            interval_s_for=lambda group: interval_s, poll_budget_s=budget_s)


# --- the leases alone -------------------------------------------------------------------------


def test_two_collectors_split_each_group_and_a_third_name_twin_is_refused(
        store: Database) -> None:
    a, b = CollectorInstance("a"), CollectorInstance("b")
    with store.pool.connection() as conn:
        assert register_instance(conn, a, 30) is None
        assert register_instance(conn, b, 30) is None
        twin = register_instance(conn, CollectorInstance("a"), 30)
    assert twin is not None and "'a' is in use by pid" in str(twin)
    first_a = _renew(store, a)
    first_b = _renew(store, b)
    # both alive: each takes half of every group, rounded up; nothing overlaps
    assert not set(first_a.held) & set(first_b.held)
    assert set(first_a.held) | set(first_b.held) == _device_ids(store)
    with store.pool.connection() as conn:
        groups = [row[0] for row in conn.execute(
            "SELECT DISTINCT poller_group FROM devices WHERE retired_at IS NULL")]
    for group in groups:
        mine = [d for d, g in first_a.held.items() if g == group]
        theirs = [d for d, g in first_b.held.items() if g == group]
        assert abs(len(mine) - len(theirs)) <= 1, group
    # fresh leases: no wait before the first poll; nothing beyond the fair share
    assert set(first_a.taken.values()) == {0.0} and not first_a.surplus
    assert not first_a.lapsed and not _renew(store, b).surplus


def test_a_collector_of_one_group_takes_only_that_groups_devices_and_shares_it(
        store: Database) -> None:
    everyone, core = CollectorInstance("everyone"), CollectorInstance("core", ("core",))
    with store.pool.connection() as conn:
        register_instance(conn, everyone, 30)
        register_instance(conn, core, 30)
    held_by_core = _renew(store, core).held
    assert set(held_by_core.values()) == {"core"}
    cores = _device_ids(store, "core")
    assert len(held_by_core) == -(-len(cores) // 2)  # half of core, rounded up
    held_by_everyone = _renew(store, everyone).held
    # the other groups are everyone's alone; core is shared
    assert set(held_by_everyone) == _device_ids(store) - set(held_by_core)


def test_a_dead_collectors_devices_are_taken_with_the_wait_that_keeps_one_poll_per_interval(
        store: Database) -> None:
    a, b = CollectorInstance("a"), CollectorInstance("b")
    lease_s, interval_s, budget_s = 2.0, 60.0, 5.0
    with store.pool.connection() as conn:
        register_instance(conn, a, lease_s)
    held_by_a = _renew(store, a, lease_s=lease_s).held
    assert set(held_by_a) == _device_ids(store)
    with store.pool.connection() as conn:
        register_instance(conn, b, 30)
    assert _renew(store, b).held == {}  # a is alive: nothing free
    with store.pool.connection() as conn:
        expires_at, now = conn.execute("SELECT expires_at, now() FROM collector_instances"
                                       " WHERE id = %s", [a.id]).fetchone()
    time.sleep(max(0.0, (expires_at - now).total_seconds()) + 0.2)  # a stops renewing
    taken = _renew(store, b, interval_s=interval_s, budget_s=budget_s)
    assert set(taken.held) == set(held_by_a)
    # a's last poll started at most `budget_s` before its lease expired: b waits until an
    # interval after that
    for wait_s in taken.taken.values():
        assert interval_s - budget_s - 1.0 < wait_s <= interval_s - budget_s
    # a comes back: its instance lapsed, it holds nothing any more
    back = _renew(store, a, lease_s=lease_s)
    assert back.lapsed and back.held == {}


def test_a_collector_back_after_its_name_was_taken_is_told_so_and_takes_nothing(
        store: Database) -> None:
    from store.leases import DEAD_INSTANCE_KEPT_S, LeaseError

    away = CollectorInstance("edge")
    with store.pool.connection() as conn:
        register_instance(conn, away, 30)
    assert set(_renew(store, away).held) == _device_ids(store)
    with store.pool.connection() as conn:  # it was away for longer than its row is kept
        conn.execute("UPDATE collector_instances SET expires_at = now() - make_interval("
                     "secs => %s) WHERE id = %s", [DEAD_INSTANCE_KEPT_S + 60, away.id])
        successor = CollectorInstance("edge")
        assert register_instance(conn, successor, 30) is None  # pruned the old row
    held = set(_renew(store, successor).held)
    with pytest.raises(LeaseError, match=r"collector name 'edge' is in use by pid \d+ on"
                       r" .*another one was started with its name; it polls nothing"):
        _renew(store, away)
    assert set(_renew(store, successor).held) == held == _device_ids(store)


def test_a_hand_over_tells_the_next_holder_when_to_poll(store: Database) -> None:
    a, b = CollectorInstance("a"), CollectorInstance("b")
    with store.pool.connection() as conn:
        register_instance(conn, a, 30)
    held = _renew(store, a).held
    everything = set(held)
    with store.pool.connection() as conn:
        register_instance(conn, b, 30)
    surplus = _renew(store, a).surplus
    # each group's surplus: what it holds beyond half of the group, rounded up
    for group, count in surplus.items():
        in_group = sum(1 for g in held.values() if g == group)
        assert count == in_group - -(-in_group // 2)
    handed = [device_id for group, count in surplus.items()
              for device_id in sorted(d for d, g in held.items() if g == group)[:count]]
    with store.pool.connection() as conn:
        assert release_leases(conn, a, {device_id: 7.5 for device_id in handed}) == len(handed)
    taken = _renew(store, b)
    assert set(taken.held) == set(handed)
    assert all(6.5 < wait_s <= 7.5 for wait_s in taken.taken.values())
    with store.pool.connection() as conn:
        holders = lease_holders(conn)
    assert sorted(holders) == ["a", "b"]
    assert len(holders["a"]) + len(holders["b"]) == len(everything)


def test_the_fleet_singleton_runs_in_one_process_and_passes_on_when_it_stops(
        store: Database) -> None:
    running: list[str] = []
    lock = threading.Lock()

    def singleton(name: str) -> FleetSingleton:
        def acquired() -> None:
            with lock:
                running.append(name)

        def lost() -> None:
            with lock:
                running.remove(name)

        return FleetSingleton(store.url, on_acquired=acquired, on_lost=lost, retry_s=0.2)

    first, second = singleton("first"), singleton("second")
    first.start()
    second.start()
    try:
        assert first.held and not second.held
        time.sleep(1.0)  # several of the second one's attempts
        assert running == ["first"]
        first.stop()
        wait_for(lambda: second.held, timeout_s=10)
        assert running == ["second"]
    finally:
        first.stop()
        second.stop()
    assert running == []


def test_a_collector_that_cannot_renew_stops_polling_before_its_lease_expires(
        network: SimulatedNetwork, store: Database, environ: dict[str, str],
        pg_server: object, tmp_path: Path) -> None:
    from collectors.service import CollectionService
    from tests.test_spool import database_away

    interval_s, lease_s = 3.0, 10.0
    service = CollectionService(
        store.pool, spool_dir=tmp_path / "spool", interval_s_for=lambda group: interval_s,
        environ=environ, timeout_s=0.5, retries=0, traps_enabled=False, icmp_check=False,
        health_interval_s=None, flush_interval_s=0.2, startup_spread_s=1.0,
        instance=CollectorInstance("fenced"), lease_s=lease_s)
    everything = len(network.inventory.devices)

    def polls() -> int:
        return sum(service.stats().polls.values())

    with service:
        assert len(service.plans()) == everything  # alone: it holds every device
        wait_for(lambda: polls() >= everything, 30)
        with database_away(pg_server, store.url):
            away_at = time.monotonic()  # the last renewal was before this
            wait_for(lambda: not service.plans(), lease_s + PROCESS_TIMEOUT_S)
            # stopped before the lease could expire, a poll budget ahead of it
            assert time.monotonic() - away_at < lease_s
            stopped = polls()
            time.sleep(2 * interval_s)
            assert polls() == stopped  # nothing polled without a lease
        # the store is back: the lapsed collector holds its devices again and polls them
        wait_for(lambda: len(service.plans()) == everything, lease_s + PROCESS_TIMEOUT_S)
        wait_for(lambda: polls() >= stopped + everything, 4 * interval_s + PROCESS_TIMEOUT_S)


def test_a_trap_of_a_device_another_collector_holds_is_left_to_that_one(
        network: SimulatedNetwork, store: Database, environ: dict[str, str], trap_port: int,
        tmp_path: Path) -> None:
    """The simulated devices send their traps to one address, the first collector's: it
    counts those of the devices it does not hold, and the holder's poll reports the change,
    once."""
    from collectors.service import CollectionService

    interval_s, lease_s = 4.0, 6.0

    def member(name: str, port: int) -> CollectionService:
        return CollectionService(
            store.pool, spool_dir=tmp_path / name, interval_s_for=lambda group: interval_s,
            environ=environ, timeout_s=0.5, retries=1, trap_port=port, icmp_check=False,
            health_interval_s=None, flush_interval_s=0.2, startup_spread_s=1.0,
            instance=CollectorInstance(name), lease_s=lease_s)

    first, second = member("first", trap_port), member("second", free_udp_ports(1)[0])
    with first, second:
        holders = wait_for(lambda: (lambda h: h if h.get("first") and h.get("second")
                                    else None)(_holders(store)), 6 * lease_s, 0.5)
        device, port = _a_port_of(network, holders["second"][0])
        wait_for(lambda: _port_observations(store, device, port), 4 * interval_s + 30, 0.5)
        try:
            assert network.set_port_status(device, port, "down")
            wait_for(lambda: first.stats().traps_not_held >= 1, 4 * interval_s, 0.2)
            wait_for(lambda: _port_observations(store, device, port)[-1:] == ["down"],
                     4 * interval_s + 30, 0.5)
            assert device in _holders(store)["second"]
        finally:
            network.set_port_status(device, port, "up")
        time.sleep(interval_s)  # a poll or two more: nothing reported again
    rows = collection_fixtures.observations_of(
        store, collection_fixtures.port_id(store, device, port))
    downs = [row for row in rows if row[1] == "down"]
    assert len(downs) == 1 and downs[0][2] == "poll", rows


# --- two `keyline collect` processes ---------------------------------------------------------

INTERVAL_S = 8.0
LEASE_S = 9.0
POLL_TIMEOUT_S = 1.0
POLL_RETRIES = 1
FLUSH_INTERVAL_S = 1.0  # the collection service's
# the poll budget as collectors.service.CollectionService.poll_budget_s computes it (no
# ICMP check here): the tries, two flushes, the fence's check period
BUDGET_S = POLL_TIMEOUT_S * (POLL_RETRIES + 1) + 2 * FLUSH_INTERVAL_S + min(1.0, LEASE_S / 10)
# the latest a dead collector's device is polled again: its lease expires at most LEASE_S
# after the kill, the next renewal of the other collector comes within LEASE_S / 3, and it
# may poll an interval after the dead one's last poll (at most BUDGET_S before expiry)
TAKEOVER_BOUND_S = max(LEASE_S + LEASE_S / 3, LEASE_S + INTERVAL_S - BUDGET_S)
# what a loaded machine adds to that: a start of a process's loop, a late job
LAG_S = 3.0


def _settings_environ(data_dir: Path, trap_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYLINE_")}
    env.update({
        "KEYLINE_DATA_DIR": str(data_dir),
        "KEYLINE_POLL__DEFAULT_INTERVAL_S": str(int(INTERVAL_S)),
        "KEYLINE_POLL__GROUPS": f'{{"key-accounts": {int(INTERVAL_S)}}}',
        "KEYLINE_POLL__TIMEOUT_S": str(POLL_TIMEOUT_S),
        "KEYLINE_POLL__RETRIES": str(POLL_RETRIES),
        "KEYLINE_POLL__ICMP_CHECK": "false",
        "KEYLINE_COLLECTOR__LEASE_S": str(LEASE_S),
        "KEYLINE_COLLECTOR__SINGLETON_RETRY_S": "1",
        "KEYLINE_TRAPS__PORT": str(trap_port),
        "KEYLINE_HEALTH__ENABLED": "false",
        "KEYLINE_CLI__ENABLED": "false",
        "KEYLINE_TOPOLOGY__DISCOVERY_INTERVAL_S": "0",
    })
    return env


class Collector:
    """One `keyline collect` process, its output in files (a pipe nobody reads would fill
    up and stop it)."""

    def __init__(self, name: str, store: Database, root: Path, trap_port: int,
                 *extra: str) -> None:
        self.name = name
        data_dir = root / name
        data_dir.mkdir()
        self.out = data_dir / "out.txt"
        self.err = data_dir / "err.txt"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "keyline", "--database-url", store.url, "collect",
                 "--name", name, *extra],
                env=_settings_environ(data_dir, trap_port), stdout=out, stderr=err,
                cwd=Path(__file__).resolve().parent.parent)

    def output(self) -> str:
        return self.out.read_text() + self.err.read_text()

    def wait_running(self) -> None:
        def running() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} ended: {self.output()}")
            return "Keyline collector is running" in self.out.read_text()

        wait_for(running, PROCESS_TIMEOUT_S, 0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(PROCESS_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def collectors(store: Database, tmp_path: Path) -> Iterator[list[Collector]]:
    started: list[Collector] = []
    yield started
    for collector in started:
        collector.stop()


def _poll_times(db: Database) -> dict[str, list[float]]:
    """Each device's poll start times (epoch s): its response-time samples."""
    with db.pool.connection() as conn:
        rows = conn.execute(
            """SELECT d.key, extract(epoch FROM s.time)::float8 FROM samples s
                 JOIN metrics m ON m.id = s.metric_id JOIN devices d ON d.id = s.object_id
                WHERE m.name = 'snmp_response_ms' ORDER BY d.key, s.time""").fetchall()
    times: dict[str, list[float]] = {}
    for key, at in rows:
        times.setdefault(key, []).append(at)
    return times


def _holders(db: Database) -> dict[str, list[str]]:
    with db.pool.connection() as conn:
        return lease_holders(conn)


def _store_now(db: Database) -> float:
    with db.pool.connection() as conn:
        return conn.execute("SELECT extract(epoch FROM now())::float8").fetchone()[0]


def _port_observations(db: Database, device: str, port: str) -> list[str]:
    port_id = collection_fixtures.port_id(db, device, port)
    return [new for _old, new, _source, _time in
            collection_fixtures.observations_of(db, port_id)]


def _repeated_states(db: Database) -> list[tuple[int, str, str]]:
    """(object, kind, state) recorded twice in a row: an observation duplicated."""
    with db.pool.connection() as conn:
        rows = conn.execute(
            "SELECT object_id, kind, new FROM observations WHERE kind <> 'agent_restart'"
            " ORDER BY object_id, kind, time, id").fetchall()
    return [row for previous, row in itertools.pairwise(rows)
            if previous[:2] == row[:2] and previous[2] == row[2]]


def test_two_collector_processes_split_the_devices_and_one_takes_over_when_the_other_dies(
        network: SimulatedNetwork, store: Database, tmp_path: Path,
        collectors: list[Collector]) -> None:
    assert TAKEOVER_BOUND_S <= 2 * INTERVAL_S  # the settings keep the promise
    everything = sorted(network.inventory.devices)
    trap_a, trap_b = free_udp_ports(2)
    a = Collector("a", store, tmp_path, trap_a)
    collectors.append(a)
    a.wait_running()
    groups = sorted({device.poller_group for device in network.inventory.devices.values()})
    b = Collector("b", store, tmp_path, trap_b, *itertools.chain.from_iterable(
        ("--group", group) for group in groups))
    collectors.append(b)
    b.wait_running()

    # split: each holds about half of every group, together all of them, and both poll
    def split() -> dict[str, list[str]] | None:
        holders = _holders(store)
        held = sorted(holders.get("a", []) + holders.get("b", []))
        return holders if (held == everything and holders.get("a") and holders.get("b")
                           and abs(len(holders["a"]) - len(holders["b"])) <= len(groups)
                           ) else None

    holders = wait_for(split, 6 * LEASE_S, 0.5)
    assert "collector a" in a.output() and "collector b" in b.output()
    # every device polled a few times since the split, by whichever holds it
    settled_at = _store_now(store)
    wait_for(lambda: all(len([t for t in _poll_times(store).get(key, []) if t > settled_at])
                         >= 2 for key in everything), 4 * INTERVAL_S + PROCESS_TIMEOUT_S, 0.5)
    # exactly one of them runs the alarm pipeline and the other singletons
    running = [c.name for c in (a, b) if "Alarm pipeline running" in c.out.read_text()]
    assert running == ["a"], (a.output(), b.output())

    # a fault the first collector sees, then SIGKILL it
    device_a, port_a = _a_port_of(network, holders["a"][0])
    assert network.set_port_status(device_a, port_a, "down")
    wait_for(lambda: _port_observations(store, device_a, port_a)[-1:] == ["down"],
             4 * INTERVAL_S, 0.5)
    killed_at = _store_now(store)
    a.process.send_signal(signal.SIGKILL)
    a.process.wait(PROCESS_TIMEOUT_S)
    # faults while nobody polls the first collector's devices: seen once b has them
    device_b, port_b = _a_port_of(network, holders["a"][-1], skip=(device_a, port_a))
    assert network.set_port_status(device_b, port_b, "down")
    assert network.set_port_status(device_a, port_a, "up")

    wait_for(lambda: _holders(store).get("b") == everything, 3 * LEASE_S, 0.5)
    wait_for(lambda: (_port_observations(store, device_a, port_a)[-1:] == ["up"]
                      and _port_observations(store, device_b, port_b)[-1:] == ["down"]),
             TAKEOVER_BOUND_S + 2 * INTERVAL_S + PROCESS_TIMEOUT_S, 0.5)
    # b runs the singletons now
    wait_for(lambda: "Alarm pipeline running" in b.out.read_text(), 6 * LEASE_S, 0.5)
    # a few more intervals of b polling everything
    taken_at = _store_now(store)
    wait_for(lambda: all(len([t for t in _poll_times(store).get(key, []) if t > taken_at])
                         >= 2 for key in everything), 4 * INTERVAL_S + PROCESS_TIMEOUT_S, 0.5)
    b.stop()
    assert b.process.returncode == 0, b.output()
    assert "Traceback" not in b.output(), b.output()

    times = _poll_times(store)
    # none polled twice in one interval, before, during and after the takeover
    for key in everything:
        gaps = [later - earlier for earlier, later in itertools.pairwise(times[key])]
        assert min(gaps) >= INTERVAL_S - LAG_S, (key, gaps)
    # the dead collector's devices were polled again within two intervals
    for key in holders["a"]:
        before = max(t for t in times[key] if t <= killed_at)
        after = min(t for t in times[key] if t > killed_at)
        assert after - killed_at <= TAKEOVER_BOUND_S + LAG_S, (key, after - killed_at,
                                                              b.output()[-4000:])
        assert after - before >= INTERVAL_S - LAG_S
    # every fault observed once, in order; no state recorded twice in a row anywhere
    assert _port_observations(store, device_a, port_a)[-2:] == ["down", "up"]
    assert _port_observations(store, device_a, port_a).count("down") == 1
    assert _port_observations(store, device_b, port_b).count("down") == 1
    assert _repeated_states(store) == []


def _a_port_of(network: SimulatedNetwork, device_key: str,
               skip: tuple[str, str] | None = None) -> tuple[str, str]:
    """A port of the inventory on `device_key`, other than `skip`."""
    return next((port.device, port.name) for port in sorted(
        network.inventory.ports.values(), key=lambda port: (port.device, port.name))
        if port.device == device_key and (port.device, port.name) != skip)


def test_keyline_collect_refuses_a_lease_shorter_than_its_poll_budget(
        store: Database, tmp_path: Path) -> None:
    env = _settings_environ(tmp_path, free_udp_ports(1)[0])
    env["KEYLINE_COLLECTOR__LEASE_S"] = "3"
    done = subprocess.run([sys.executable, "-m", "keyline", "--database-url", store.url,
                           "collect", "--name", f"x{uuid.uuid4().hex[:6]}"],
                          env=env, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "collector.lease_s (3 s) must exceed" in done.stderr
    assert "Traceback" not in done.stderr
