"""The spooling sink: nothing lost while the database is away, order kept, bounded, durable.

The database is made unavailable for real: `ALTER DATABASE ... ALLOW_CONNECTIONS false` and
every backend on it terminated, so the pool's connections die and new ones are refused, as
when a server goes down; allowing connections again is the server coming back.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql
from psycopg_pool import PoolTimeout

from collectors.model import Observation, Sample
from collectors.spool import (
    Outcome,
    SpoolFiles,
    SpoolingSink,
    decode_batch,
    encode_batch,
)
from store.observations import recent_observations

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def samples(first_s: int, count: int = 3, object_id: int = 4711) -> list[Sample]:
    return [Sample(T0 + timedelta(seconds=first_s + n), object_id, "if_in_bps", float(n))
            for n in range(count)]


def observation(at_s: int, new: str) -> Observation:
    return Observation(T0 + timedelta(seconds=at_s), 4711, "oper_status", None, new, "poll",
                       {"if_index": 7})


# --- encoding and files -------------------------------------------------------------------------


def test_batches_round_trip():
    batch = samples(0, 2)
    assert decode_batch(encode_batch("samples", batch)) == ("samples", batch)
    observations = [observation(0, "down")]
    assert decode_batch(encode_batch("observations", observations)) == (
        "observations", observations)
    with pytest.raises(ValueError):
        encode_batch("other", batch)


def test_files_append_read_and_roll_segments(tmp_path):
    files = SpoolFiles(tmp_path, segment_bytes=10)
    for n in range(3):
        files.append(f"line{n}-padding\n".encode())
    assert len(files.segments) == 3 and files.size_bytes == 3 * 14
    line, end = files.next_batch()
    assert line == b"line0-padding\n"
    files.mark_done(end)
    assert len(files.segments) == 2  # replayed segment deleted
    assert files.next_batch()[0] == b"line1-padding\n"


def test_files_cursor_survives_reopen(tmp_path):
    files = SpoolFiles(tmp_path)
    files.append(b"a\n")
    files.append(b"b\n")
    _, end = files.next_batch()
    files.mark_done(end)
    reopened = SpoolFiles(tmp_path)
    assert reopened.next_batch()[0] == b"b\n"


def test_files_cut_a_partial_last_line(tmp_path, caplog):
    files = SpoolFiles(tmp_path)
    files.append(b"whole\n")
    with open(files.segments[-1], "ab") as file:
        file.write(b'{"kind": "sam')  # the process died here
    reopened = SpoolFiles(tmp_path)
    assert reopened.size_bytes == 6
    line, end = reopened.next_batch()
    reopened.mark_done(end)
    assert line == b"whole\n" and reopened.next_batch() is None and reopened.empty


def test_segment_numbers_never_reuse_a_cursor_name(tmp_path):
    (tmp_path / "cursor").write_text("000000000007.jsonl 42\n")
    files = SpoolFiles(tmp_path)
    files.append(b"x\n")
    assert files.segments[0].name == "000000000008.jsonl"
    assert files.next_batch() == (b"x\n", 2)


# --- the sink against a real database -------------------------------------------------------------


@contextmanager
def database_away(pg_server, url: str):
    """Refuse new connections to the database of `url` and kill the open ones; undo after."""
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(pg_server.url_for("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(
            sql.Identifier(name)))
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                      " WHERE datname = %s AND pid <> pg_backend_pid()", [name])
        try:
            yield
        finally:
            admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(
                sql.Identifier(name)))


def stored_samples(db) -> list[tuple[datetime, float]]:
    with db.pool.connection() as conn:
        return conn.execute("SELECT time, value FROM samples ORDER BY time").fetchall()


def until_replayed(sink: SpoolingSink, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while sink.spooling and time.monotonic() < deadline:
        sink.replay()
        time.sleep(0.05)
    assert not sink.spooling, "the spool was not replayed after the database came back"


def sink_for(db, tmp_path, **options) -> SpoolingSink:
    options = {"store_timeout_s": 0.3, "retry_interval_s": 0.1, "max_retry_interval_s": 0.3,
               **options}
    return SpoolingSink(db.pool, tmp_path / "spool", **options)


def test_writes_through_while_the_store_is_up(db, tmp_path):
    sink = sink_for(db, tmp_path)
    assert sink.write_samples(samples(0)) is Outcome.STORED
    assert sink.write_observations([observation(0, "down")]) is Outcome.STORED
    assert len(stored_samples(db)) == 3 and not sink.spooling


def test_nothing_lost_and_order_kept_while_the_database_is_away(db, pg_server, tmp_path,
                                                               monkeypatch):
    sink = sink_for(db, tmp_path)
    assert sink.write_samples(samples(0)) is Outcome.STORED
    with database_away(pg_server, db.url):
        assert sink.write_observations([observation(10, "down")]) is Outcome.SPOOLED
        assert sink.write_samples(samples(20)) is Outcome.SPOOLED
        assert sink.write_observations([observation(30, "up")]) is Outcome.SPOOLED
    stored_order: list[tuple[str, datetime]] = []
    store = sink._store
    monkeypatch.setattr(sink, "_store", lambda kind, items: (
        store(kind, items), stored_order.append((kind, items[0].time))))
    until_replayed(sink)  # as a timer would
    assert sink.write_samples(samples(40)) is Outcome.STORED
    assert [kind for kind, _ in stored_order] == [
        "observations", "samples", "observations", "samples"]
    assert [at for _, at in stored_order] == sorted(at for _, at in stored_order)
    assert [at for at, _ in stored_samples(db)] == [
        T0 + timedelta(seconds=s) for s in (0, 1, 2, 20, 21, 22, 40, 41, 42)]
    with db.pool.connection() as conn:
        stored = recent_observations(conn)
    assert [(o.new, o.id) for o in stored] == [("up", stored[0].id),
                                              ("down", stored[0].id - 1)]
    assert sink.spool_bytes == 0 and sink.dropped_samples == 0


def test_new_data_waits_behind_the_spool(db, pg_server, tmp_path):
    clock = FakeClock()
    sink = sink_for(db, tmp_path, retry_interval_s=60, max_retry_interval_s=60, clock=clock)
    with database_away(pg_server, db.url):
        assert sink.write_samples(samples(0)) is Outcome.SPOOLED
    # the database is back, but the next try is not due yet: new data joins the queue
    assert sink.write_samples(samples(10)) is Outcome.SPOOLED
    assert stored_samples(db) == []
    with db.pool.connection(timeout=10):
        pass  # the pool has reconnected
    clock.now_s += 60
    # the next write replays the spool first, then goes in itself
    assert sink.write_samples(samples(20)) is Outcome.STORED
    assert [at for at, _ in stored_samples(db)] == [
        T0 + timedelta(seconds=s) for s in (0, 1, 2, 10, 11, 12, 20, 21, 22)]
    assert not sink.spooling and sink.replayed_batches == 2


def test_a_new_process_replays_what_the_last_one_spooled(db, pg_server, tmp_path):
    first = sink_for(db, tmp_path)
    with database_away(pg_server, db.url):
        first.write_samples(samples(0))
        first.write_observations([observation(5, "down")])
    assert first.spooling
    second = sink_for(db, tmp_path)  # same spool folder, as after a restart
    until_replayed(second)
    assert len(stored_samples(db)) == 3
    with db.pool.connection() as conn:
        assert [o.new for o in recent_observations(conn)] == ["down"]


class AwayPool:
    """A pool whose database never answers (for the tests of the bound)."""

    def connection(self, timeout: float | None = None):
        raise PoolTimeout("no connection")


def test_full_spool_refuses_and_says_so(tmp_path, caplog):
    sink = SpoolingSink(AwayPool(), tmp_path, max_bytes=1000, retry_interval_s=0)
    outcomes = []
    with caplog.at_level(logging.ERROR, logger="collectors.spool"):
        for n in range(10):
            outcomes.append(sink.write_samples(samples(n * 10, 3)))
    assert Outcome.SPOOLED in outcomes and outcomes[-1] is Outcome.DROPPED
    assert sink.spool_bytes <= 1000
    dropped = outcomes.count(Outcome.DROPPED)
    assert sink.dropped_samples == 3 * dropped
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "DROPPING" in errors[0].getMessage()


class CountingAwayPool(AwayPool):
    def __init__(self, clock):
        self.clock = clock
        self.tries: list[tuple[float, float | None]] = []

    def connection(self, timeout=None):
        self.tries.append((self.clock.now_s, timeout))
        raise psycopg.OperationalError("server closed the connection")


class FakeClock:
    def __init__(self):
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def test_unavailable_store_is_tried_with_backoff(tmp_path):
    clock = FakeClock()
    pool = CountingAwayPool(clock)
    sink = SpoolingSink(pool, tmp_path, retry_interval_s=1, max_retry_interval_s=4,
                        store_timeout_s=0.25, clock=clock)
    for _ in range(40):  # a write every 0.5 s for 20 s
        assert sink.write_samples(samples(0)) is Outcome.SPOOLED
        clock.now_s += 0.5
    assert [at for at, _ in pool.tries] == [0, 1, 3, 7, 11, 15, 19]  # +1, +2, +4, +4...
    assert {timeout for _, timeout in pool.tries} == {0.25}


def test_an_unreadable_batch_is_set_aside_not_blocking(db, tmp_path, caplog):
    files = SpoolFiles(tmp_path / "spool")
    files.append(b'{"kind": "samples", "rows": [["not a time", 1, "m", 1.0]]}\n')
    files.append(encode_batch("samples", samples(0)))
    sink = sink_for(db, tmp_path)
    with caplog.at_level(logging.ERROR, logger="collectors.spool"):
        assert sink.replay() == 1
    assert len(stored_samples(db)) == 3 and sink.rejected_batches == 1
    assert (tmp_path / "spool" / "rejected.jsonl").read_bytes().startswith(b'{"kind"')
    assert "set aside" in caplog.text
