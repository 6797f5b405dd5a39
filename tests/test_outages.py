"""Nothing lost, every time true: the collector and the alarm pipeline through store outages.

The simulated network is polled (traps on) while the database goes away for real (new
connections refused, every session killed: tests.test_spool.database_away), and a circuit's
end port goes down and up again during the outage. Afterwards the store holds every sample
and observation the collector produced, once each; the port's alarm, the circuit's service
alarm and its down interval carry the times of the observations themselves (what a run
without the outage would record), not the time of the replay. A small spool that fills
during the outage drops the newest samples, never an observation, and records each drop with
its device and time range. A collector process killed during an outage leaves its spool to
the next one, which forwards it all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from alarms.rules import AlarmSettings
from alarms.service import AlarmService
from collectors.service import CollectionService
from collectors.spool import SpooledStore
from lab.sim.network import SimulatedNetwork
from store.database import Database
from tests import test_collection_service as collection_fixtures
from tests.test_collection_service import port_id, wait_for
from tests.test_spool import database_away

inventory = collection_fixtures.inventory
environ = collection_fixtures.environ
trap_port = collection_fixtures.trap_port
network = collection_fixtures.network
store = collection_fixtures.store

SETTINGS = AlarmSettings(raise_after_s=1.0, clear_after_s=1.0, infer_after_s=2.0,
                         tick_interval_s=0.1, thresholds=[])
DEVICE, PORT = "ce-hsbank-sh-hq", "GigabitEthernet0/0/5"  # HSB-INET-0001's A end, no link


def collector(store: Database, environ: dict[str, str], tmp_path: Path, trap_port: int,
              **options: object) -> CollectionService:
    return CollectionService(
        store.pool, spool_dir=tmp_path / "spool", interval_s_for=lambda _group: 1.0,
        environ=environ, timeout_s=1.0, retries=1, trap_port=trap_port,
        startup_spread_s=1.0, flush_interval_s=0.2, health_interval_s=None,
        **options)  # type: ignore[arg-type]


def leftover(store: Database, tmp_path: Path) -> None:
    """Forward what a stopped collector left in its spool (its last batches, written to
    disk by stop() and not yet taken by the store)."""
    with SpooledStore(store.url, tmp_path / "spool", retry_interval_s=0.1) as spool:
        assert spool.drain(15)


def count(store: Database, query: str, *params: object) -> int:
    with store.pool.connection() as conn:
        return conn.execute(query, params).fetchone()[0]


def observations(store: Database, object_id: int) -> list[tuple[str, datetime]]:
    with store.pool.connection() as conn:
        return conn.execute("SELECT new, time FROM observations WHERE object_id = %s AND kind"
                            " = 'oper_status' ORDER BY time, id", [object_id]).fetchall()


def test_an_outage_loses_nothing_and_the_replay_keeps_every_time(
        network: SimulatedNetwork, store: Database, environ: dict[str, str], trap_port: int,
        pg_server: object, tmp_path: Path) -> None:
    port = port_id(store, DEVICE, PORT)
    with store.pool.connection() as conn:
        (circuit,) = conn.execute("SELECT id FROM circuits WHERE key = 'HSB-INET-0001'"
                                  ).fetchone()
    service = collector(store, environ, tmp_path, trap_port)
    with service, AlarmService(store.pool, store.url, SETTINGS) as alarms:
        wait_for(lambda: count(store, "SELECT count(*) FROM circuit_states WHERE circuit_id"
                                      " = %s AND state = 'up'", circuit), 20)
        with database_away(pg_server, store.url):
            wait_for(lambda: not service.spool_stats().store_available, 10)
            assert network.set_port_status(DEVICE, PORT, "down")
            time.sleep(4.0)  # longer than every debounce delay: a real outage of the port
            assert network.set_port_status(DEVICE, PORT, "up")
            time.sleep(2.0)
            spooled = service.spool_stats()
            assert spooled.spool_bytes > 0 and spooled.dropped == {}
        assert service.drain(30)
        wait_for(lambda: count(store, "SELECT count(*) FROM alarms WHERE state = 'cleared'"
                                      " AND type = 'service_down' AND object_id = %s",
                               circuit), 30)
        wait_for(alarms.idle, 10)
        service.stop()
        produced = service.stats()
        leftover(store, tmp_path)
    # every sample and observation handed over is in the store, once
    assert count(store, "SELECT count(*) FROM samples") == produced.samples
    assert count(store, "SELECT count(*) FROM observations") == produced.observations
    seen = observations(store, port)
    down_at = next(at for state, at in seen if state == "down")
    up_at = next(at for state, at in seen if state == "up" and at > down_at)
    assert timedelta(seconds=3) < up_at - down_at < timedelta(seconds=6)
    with store.pool.connection() as conn:
        alarm_times = {kind: (first, cleared) for kind, first, cleared in conn.execute(
            "SELECT type, first_seen, cleared_at FROM alarms WHERE object_id IN (%s, %s)",
            [port, circuit]).fetchall()}
        intervals = conn.execute(
            "SELECT state, time FROM circuit_states WHERE circuit_id = %s ORDER BY time, id",
            [circuit]).fetchall()
    # the times are the observations' own, as a run without the outage records them
    assert alarm_times["link_down"] == (down_at, up_at)
    assert alarm_times["service_down"] == (down_at, up_at)
    assert [state for state, _ in intervals][-2:] == ["down", "up"]
    assert [at for _, at in intervals][-2:] == [down_at, up_at]


def test_a_small_spool_drops_the_newest_samples_never_observations_and_records_it(
        network: SimulatedNetwork, store: Database, environ: dict[str, str], trap_port: int,
        pg_server: object, tmp_path: Path) -> None:
    port = port_id(store, DEVICE, PORT)
    service = collector(store, environ, tmp_path, trap_port, spool_max_bytes=64 * 1024)
    with service:
        wait_for(lambda: service.stats().samples > 0, 20)
        service.flush()
        with database_away(pg_server, store.url):
            wait_for(lambda: service.spool_stats().dropped.get("samples", 0) > 0, 60)
            assert network.set_port_status(DEVICE, PORT, "down")
            wait_for(lambda: service.stats().observations > 0
                     and service.spool_stats().pending_batches == 0, 10)
            time.sleep(1.0)
            assert network.set_port_status(DEVICE, PORT, "up")
            time.sleep(1.0)
        assert service.drain(60)
        service.stop()
        produced, spool = service.stats(), service.spool_stats()
        leftover(store, tmp_path)
    dropped = spool.dropped["samples"]
    assert "observations" not in spool.dropped
    assert count(store, "SELECT count(*) FROM samples") + dropped == produced.samples
    assert count(store, "SELECT count(*) FROM observations") == produced.observations
    assert [state for state, _ in observations(store, port)][-2:] == ["down", "up"]
    with store.pool.connection() as conn:
        drops = conn.execute("SELECT device_id, kind, rows, first_time, last_time"
                             " FROM collection_drops").fetchall()
        devices = {row[0] for row in conn.execute("SELECT id FROM devices")}
    assert sum(rows for _, _, rows, _, _ in drops) == dropped
    assert {kind for _, kind, _, _, _ in drops} == {"samples"}
    assert {device for device, _, _, _, _ in drops} <= devices  # each drop is a device's
    assert all(first <= last for _, _, _, first, last in drops)


COLLECTOR_PROCESS = """
import sys, time
from pathlib import Path
from collectors.service import CollectionService
from collectors.spool import SpooledStore
from store.database import open_database
url, spool, environ_file = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
environ = dict(line.split("=", 1) for line in open(environ_file).read().splitlines())
database = open_database(url, spool.parent, min_size=1, max_size=4)
service = CollectionService(database.pool, spool_dir=spool,
                            interval_s_for=lambda _group: 1.0, environ=environ,
                            timeout_s=1.0, retries=1, traps_enabled=False, startup_spread_s=1.0,
                            flush_interval_s=0.2, health_interval_s=None)
service.start()
print("ready", flush=True)
while True:
    time.sleep(0.5)
    print(service.stats().samples, flush=True)
"""


def start_collector(store: Database, environ: dict[str, str],
                    tmp_path: Path) -> subprocess.Popen[str]:
    environ_file = tmp_path / "environ"
    environ_file.write_text("\n".join(f"{k}={v}" for k, v in environ.items()
                                      if k.startswith("KEYLINE_") and "\n" not in v))
    environ_file.chmod(0o600)
    process = subprocess.Popen(
        [sys.executable, "-c", COLLECTOR_PROCESS, store.url, str(tmp_path / "spool"),
         str(environ_file)], stdout=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parent.parent)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def forwarded_past(spool: Path, segment: str, offset: int) -> bool:
    """Whether the spool's forwarder got past `offset` bytes into `segment` (its cursor says
    so, or the segment went: segments go once forwarded)."""
    if not (spool / segment).exists():
        return True
    cursor = spool / "cursor"
    if not cursor.exists():
        return False  # nothing forwarded yet
    name, at = cursor.read_text().split()
    return name != "-" and (name, int(at)) >= (segment, offset)


def test_a_collector_killed_during_an_outage_leaves_its_spool_to_the_next(
        network: SimulatedNetwork, store: Database, environ: dict[str, str],
        pg_server: object, tmp_path: Path) -> None:
    first = start_collector(store, environ, tmp_path)
    second = None
    try:
        with database_away(pg_server, store.url):
            time.sleep(3.0)  # polls go on, into the spool
            assert first.stdout is not None
            produced = 0
            while produced == 0:
                produced = int(first.stdout.readline())
            first.send_signal(signal.SIGKILL)  # mid-outage, no chance to clean up
            first.wait(5)
            spool = tmp_path / "spool" / "samples"
            spooled = [path for path in spool.glob("*.jsonl") if path.stat().st_size]
            assert spooled, "the killed collector's samples are on disk"
            last = max(spooled)
            end = (last.name, last.stat().st_size)  # where the killed one's batches end
        second = start_collector(store, environ, tmp_path)
        wait_for(lambda: forwarded_past(spool, *end), 30)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(5)
    # what the first one produced before it was killed reached the store after all
    assert count(store, "SELECT count(*) FROM samples") >= produced
    assert os.path.exists(tmp_path / "spool" / "observations")


def test_keyline_status_tells_what_runs_and_when_the_store_is_away(
        network: SimulatedNetwork, store: Database, environ: dict[str, str], trap_port: int,
        pg_server: object, tmp_path: Path) -> None:
    from tests.test_cli import keyline

    env = {"KEYLINE_DATA_DIR": str(tmp_path)}
    service = collector(store, environ, tmp_path, trap_port)
    with service, AlarmService(store.pool, store.url, SETTINGS):
        wait_for(lambda: count(store, "SELECT count(*) FROM service_heartbeats") == 2, 20)
        wait_for(lambda: count(store, "SELECT count(*) FROM service_heartbeats WHERE"
                                      " (detail->'polls'->>'reachable')::int > 0"), 20)
        result = keyline("status", url=store.url, env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "store: reachable" in result.stdout and "all is well" in result.stdout
        assert "collector: running" in result.stdout
        assert "alarms:main: running" in result.stdout
        assert "0 skipped" in result.stdout and "store available" in result.stdout
        with database_away(pg_server, store.url):
            wait_for(lambda: not service.spool_stats().store_available, 10)
            away = keyline("status", url=store.url, env=env)
            assert away.returncode == 1
            assert "store: UNREACHABLE" in away.stdout
            assert "NOT all is well" in away.stdout
            assert "spool" in away.stdout


def test_the_embedded_server_killed_mid_collection_is_restarted_and_nothing_is_lost(
        network: SimulatedNetwork, environ: dict[str, str], inventory: object,
        scratch_dir: Path, tmp_path: Path) -> None:
    from store.database import open_database
    from store.inventory import apply_inventory
    from store.migrate import migrate

    database = open_database(None, scratch_dir / "data", min_size=1, max_size=4)
    try:
        with database.pool.connection() as conn:
            migrate(conn)
        with database.pool.connection() as conn:
            apply_inventory(conn, inventory)
        given_up: list[str] = []
        database.supervise(given_up.append)
        pgdata = scratch_dir / "data" / "postgres"
        service = CollectionService(
            database.pool, spool_dir=tmp_path / "spool", interval_s_for=lambda _group: 1.0,
            environ=environ, timeout_s=1.0, retries=1, traps_enabled=False,
            startup_spread_s=1.0, flush_interval_s=0.2, health_interval_s=None)
        with service:
            wait_for(lambda: service.stats().samples > 0, 20)
            killed = int((pgdata / "postmaster.pid").read_text().split()[0])
            os.kill(killed, signal.SIGKILL)  # the server dies under the collector
            wait_for(lambda: not service.spool_stats().store_available, 15)
            wait_for(lambda: (pgdata / "postmaster.pid").exists() and int(
                (pgdata / "postmaster.pid").read_text().split()[0]) != killed, 30)
            wait_for(lambda: service.spool_stats().store_available, 30)
            assert service.drain(30)
            service.stop()
            produced = service.stats()
        with SpooledStore(database.url, tmp_path / "spool", retry_interval_s=0.1) as spool:
            assert spool.drain(15)
        with database.pool.connection() as conn:
            stored = conn.execute("SELECT count(*) FROM samples").fetchone()[0]
            observed = conn.execute("SELECT count(*) FROM observations").fetchone()[0]
        # exactly once: a batch whose commit the dying server never confirmed is sent
        # again, and its id, committed with it, keeps it from being stored twice
        assert stored == produced.samples
        assert observed == produced.observations
        assert given_up == []
    finally:
        database.close()
