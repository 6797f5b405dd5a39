"""Consumer (store/consumer.py) against the real store: a batch's effects and its position in
one transaction, a failed batch rolled back and delivered again after recovery, a consumer
killed mid-batch resumed exactly after its last commit, a store outage said once, ticks, and a
consumer without a stored position starting from what its recovery loaded."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from store.consumer import Consumer, Resume, stored_position
from store.database import Database
from store.events import Event, last_event_id, publish
from tests.test_spool import database_away

ROOT = Path(__file__).resolve().parent.parent
# How long a test waits for what a running consumer does: generous, CI runs loaded.
WAIT_S = 30.0


def wait_for(predicate: Callable[[], object], timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def effects(db: Database) -> Database:
    """A table the handlers write their effects to (one row per event handled)."""
    with db.pool.connection() as conn:
        conn.execute("CREATE TABLE consumer_effects (event_id bigint NOT NULL, n int)")
    return db


def effect_ids(db: Database) -> list[int]:
    with db.pool.connection() as conn:
        return [row[0] for row in conn.execute(
            "SELECT event_id FROM consumer_effects ORDER BY event_id")]


def publish_many(db: Database, topic: str, count: int) -> list[int]:
    with db.pool.connection() as conn:
        return [publish(conn, topic, {"n": n}) for n in range(count)]


def write_effects(conn: psycopg.Connection, events: list[Event]) -> None:
    with conn.cursor() as cursor:
        cursor.executemany("INSERT INTO consumer_effects VALUES (%s, %s)",
                           [(e.id, e.payload.get("n")) for e in events])


def test_a_failed_batch_is_rolled_back_and_delivered_again_after_recovery(effects, caplog):
    db = effects
    recoveries: list[int] = []
    failing = {"left": 1}

    def handle(conn: psycopg.Connection, events: list[Event]) -> None:
        write_effects(conn, events)  # written, then rolled back with the failure
        if failing["left"] and any(e.payload.get("n") == 3 for e in events):
            failing["left"] -= 1
            raise RuntimeError("a bug in the handler")

    def recover(conn: psycopg.Connection) -> None:
        recoveries.append(conn.execute("SELECT count(*) FROM consumer_effects").fetchone()[0])

    consumer = Consumer(db.pool, db.url, "test", ["t."], handle=handle, recover=recover,
                        retry_delay_s=0.1)
    with consumer:
        with db.pool.connection() as conn:
            assert stored_position(conn, "test") == consumer.position  # first run: recorded
        ids = publish_many(db, "t.x", 6)
        publish_many(db, "other.topic", 2)
        wait_for(lambda: consumer.position == ids[-1] and consumer.idle())
    assert effect_ids(db) == ids  # each once: the failed batch's writes went back
    assert consumer.stats.errors == 1 and "RuntimeError" in consumer.stats.last_error
    assert len(recoveries) == 2  # at start, and after the failure
    assert consumer.stats.events == len(ids)
    with db.pool.connection() as conn:
        assert stored_position(conn, "test") == ids[-1]
    assert any(r.exc_info for r in caplog.records if "rebuilding" in r.getMessage())


def test_a_new_consumer_resumes_after_the_last_committed_batch(effects):
    db = effects
    before = publish_many(db, "t.x", 2)  # before the first run: not for this consumer
    first = Consumer(db.pool, db.url, "test", ["t."], handle=write_effects)
    with first:
        ids = publish_many(db, "t.x", 3)
        wait_for(lambda: first.position == ids[-1] and first.idle())
    missed = publish_many(db, "t.x", 3)  # while no consumer runs
    second = Consumer(db.pool, db.url, "test", ["t."], handle=write_effects)
    with second:
        assert second.position == ids[-1]
        later = publish_many(db, "t.x", 2)
        wait_for(lambda: second.position == later[-1] and second.idle())
    assert effect_ids(db) == ids + missed + later
    assert not set(before) & set(effect_ids(db))


KILLED_CHILD = """
import sys, time
from psycopg_pool import ConnectionPool
from store.consumer import Consumer

url = sys.argv[1]

def handle(conn, events):
    conn.execute("INSERT INTO consumer_effects SELECT unnest(%s::bigint[]), 0",
                 [[e.id for e in events]])
    if any(e.payload.get("hang") for e in events):
        print("in the batch", flush=True)
        time.sleep(600)  # killed here, its writes not committed

with ConnectionPool(url, min_size=1, max_size=2) as pool:
    consumer = Consumer(pool, url, "test", ["t."], handle=handle, batch_max=1)
    consumer.start()
    print("started", flush=True)
    time.sleep(600)
"""


def test_a_consumer_killed_mid_batch_resumes_exactly_after_its_last_commit(effects):
    db = effects
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KILLED_CHILD), db.url],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "started"
        done = publish_many(db, "t.x", 3)
        with db.pool.connection() as conn:
            hang = publish(conn, "t.x", {"hang": True})
        assert child.stdout.readline().strip() == "in the batch"
        with db.pool.connection() as conn:
            assert stored_position(conn, "test") == done[-1]
        child.send_signal(signal.SIGKILL)
        child.wait(WAIT_S)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    later = publish_many(db, "t.x", 2)
    with Consumer(db.pool, db.url, "test", ["t."], handle=write_effects) as consumer:
        wait_for(lambda: consumer.position == later[-1] and consumer.idle())
    assert effect_ids(db) == [*done, hang, *later]  # each once: none lost, none twice


def test_a_store_outage_is_said_once_and_nothing_is_lost(effects, pg_server, caplog):
    db = effects
    caplog.set_level(logging.DEBUG, logger="store.consumer")
    ticks = threading.Event()
    # a pool that says it has no connection after 1 s (the default waits 30 s)
    pool = ConnectionPool(db.url, min_size=1, max_size=2, timeout=1.0, open=True)
    consumer = Consumer(pool, db.url, "test", ["t."], handle=write_effects,
                        tick=lambda conn: ticks.set(), tick_interval_s=0.1,
                        retry_delay_s=0.2)
    with pool, consumer:
        ids = publish_many(db, "t.x", 2)
        wait_for(lambda: consumer.position == ids[-1])
        with database_away(pg_server, db.url):
            wait_for(lambda: consumer.stats.errors >= 3)  # retried, every retry_delay_s
        more = publish_many(db, "t.x", 2)
        wait_for(lambda: consumer.position == more[-1] and consumer.idle())
        ticks.clear()
        assert ticks.wait(WAIT_S)  # ticking again
    assert effect_ids(db) == ids + more
    said = [r for r in caplog.records if r.levelno >= logging.WARNING
            and r.name == "store.consumer"]
    assert len(said) == 1 and "waits for the store" in said[0].getMessage()
    assert said[0].exc_info is None
    assert any("working again" in r.getMessage() for r in caplog.records)


def test_tick_runs_in_its_own_transaction_on_the_worker(effects):
    db = effects
    threads: set[str] = set()
    calls = {"n": 0}

    def tick(conn: psycopg.Connection) -> None:
        threads.add(threading.current_thread().name)
        calls["n"] += 1
        conn.execute("INSERT INTO consumer_effects VALUES (-1, %s)", [calls["n"]])
        if calls["n"] == 2:
            raise RuntimeError("the second tick fails: its insert goes back")

    def handle(conn: psycopg.Connection, events: list[Event]) -> None:
        threads.add(threading.current_thread().name)

    with Consumer(db.pool, db.url, "test", ["t."], handle=handle, tick=tick,
                  tick_interval_s=0.05, retry_delay_s=0.05) as consumer:
        publish_many(db, "t.x", 1)
        wait_for(lambda: calls["n"] >= 4 and consumer.stats.batches == 1)
    assert threads == {"keyline-test"}  # the worker's, and only it
    assert consumer.stats.errors == 1
    with db.pool.connection() as conn:
        ticks = [row[0] for row in conn.execute(
            "SELECT n FROM consumer_effects WHERE event_id = -1 ORDER BY n")]
    assert ticks[:3] == [1, 3, 4]


def test_without_a_stored_position_it_starts_from_what_recover_loaded(effects):
    db = effects
    ids = publish_many(db, "t.x", 4)

    def recover(conn: psycopg.Connection) -> Resume:
        # The load reflects every event up to ids[0], and ids[2] (committed early).
        return Resume(ids[0], frozenset({ids[2]}))

    with Consumer(db.pool, db.url, "live", ["t."], handle=write_effects, recover=recover,
                  durable=False) as consumer:
        later = publish_many(db, "t.x", 1)
        wait_for(lambda: consumer.position == later[-1] and consumer.idle())
    assert effect_ids(db) == [ids[1], ids[3], *later]
    with db.pool.connection() as conn:
        assert stored_position(conn, "live") is None


def test_without_a_stored_position_a_failure_resumes_from_the_new_load(effects):
    """durable=False: after a failed batch, recover loads again, and the events its load
    reflects are not handed over again (the live bridge's state is memory only)."""
    db = effects
    loads: list[int] = []
    failing = {"left": 1}

    def recover(conn: psycopg.Connection) -> int:
        loads.append(last_event_id(conn))
        return loads[-1]

    def handle(conn: psycopg.Connection, events: list[Event]) -> None:
        write_effects(conn, events)
        if failing["left"]:
            failing["left"] -= 1
            raise RuntimeError("a bug")

    # overlapping prefixes: each event is queued once all the same
    with Consumer(db.pool, db.url, "live", ["t.", "t.x"], handle=handle, recover=recover,
                  durable=False, retry_delay_s=0.05) as consumer:
        failed = publish_many(db, "t.x", 1)
        wait_for(lambda: len(loads) == 2 and consumer.idle())
        later = publish_many(db, "t.x", 2)
        wait_for(lambda: consumer.position == later[-1] and consumer.idle())
    assert loads[1] >= failed[-1]  # the second load reflects the failed event
    assert effect_ids(db) == later


def test_an_install_upgraded_keeps_the_alarm_pipelines_position(empty_db_url, tmp_path):
    """0014_event_consumers.sql: the alarm pipeline's former table and rows become the
    consumers', named "alarms:<pipeline>"."""
    from store.alarms import position
    from store.migrate import MIGRATIONS_DIR, migrate

    older = tmp_path / "older"
    older.mkdir()
    for path in MIGRATIONS_DIR.glob("*.sql"):
        if int(path.name[:4]) < 14:
            (older / path.name).write_text(path.read_text())
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        migrate(conn, directory=older)
        conn.execute("INSERT INTO alarm_pipeline_state (name, last_event_id) VALUES"
                     " ('main', 42), ('lab', 7)")
        assert "0014_event_consumers" in migrate(conn)
        assert stored_position(conn, "alarms:main") == 42
        assert position(conn) == 42 and position(conn, "lab") == 7
        assert conn.execute("SELECT to_regclass('alarm_pipeline_state')").fetchone() == (None,)
