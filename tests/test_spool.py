"""The spooled store: every batch on disk first, forwarded in order; nothing lost while the
database is away; bounded, with every drop counted and recorded; durable across restarts.

The database is made unavailable for real: `ALTER DATABASE ... ALLOW_CONNECTIONS false` and
every backend on it terminated, so the pool's connections die and new ones are refused, as
when a server goes down; allowing connections again is the server coming back.
"""

from __future__ import annotations

import json
import logging
import pathlib
import shutil
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from collectors.model import Observation, Sample
from collectors.spool import SpooledStore, SpoolFiles, decode_batch, encode_batch
from store.observations import PortMatchRow, recent_observations

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
    statuses = [(12, "unreachable", "no answer", T0)]
    assert decode_batch(encode_batch("poll_statuses", statuses)) == ("poll_statuses", statuses)
    matches = [PortMatchRow(4711, 12, None, None, "missing", "not found", T0)]
    assert decode_batch(encode_batch("port_matches", matches)) == ("port_matches", matches)
    with pytest.raises(ValueError):
        encode_batch("other", batch)


def test_samples_name_each_time_and_metric_once_and_older_lines_still_read():
    mixed = [Sample(T0 + timedelta(seconds=s), o, m, 1.5 * o)
             for s in (0, 60) for o in (1, 2) for m in ("if_in_bps", "if_out_bps")]
    line = encode_batch("samples", mixed)
    assert line.count(b"if_in_bps") == 1 and line.count(T0.isoformat().encode()) == 1
    assert decode_batch(line) == ("samples", mixed)
    # a line an older Keyline spooled (every row with its time and metric) before an upgrade
    older = json.dumps({"id": "a" * 32, "kind": "samples", "rows": [
        [s.time.isoformat(), s.object_id, s.metric, s.value] for s in mixed]}).encode()
    assert decode_batch(older) == ("samples", mixed)


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
    assert SpoolFiles(tmp_path).next_batch()[0] == b"a\n"  # not written down yet
    files.save_cursor()
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


def forward_all(files: SpoolFiles) -> list[bytes]:
    """What a forwarding round does with the files: every line, marked done, cursor saved."""
    lines = []
    while (batch := files.next_batch()) is not None:
        lines.append(batch[0])
        files.mark_done(batch[1])
    files.save_cursor()
    return lines


def test_files_keep_appending_to_a_last_segment_forwarded_to_its_end(tmp_path):
    files = SpoolFiles(tmp_path)
    files.append(b"a\n")
    assert forward_all(files) == [b"a\n"] and files.empty
    (segment,) = files.segments
    assert segment.exists() and (tmp_path / "cursor").read_text() == f"{segment.name} 2\n"
    files.append(b"b\n")  # the next round: into the same file, no new one
    assert files.segments == [segment] and not files.empty
    assert forward_all(files) == [b"b\n"]
    assert segment.read_bytes() == b"a\nb\n" and list(tmp_path.glob("*.jsonl")) == [segment]
    reopened = SpoolFiles(tmp_path)  # a restart forwards nothing again
    assert reopened.next_batch() is None and reopened.empty
    reopened.append(b"c\n")
    assert forward_all(reopened) == [b"c\n"] and reopened.segments == [segment]


def test_files_delete_a_forwarded_segment_once_full_or_followed(tmp_path):
    files = SpoolFiles(tmp_path, segment_bytes=20)
    files.append(b"line0-padding\n")
    forward_all(files)
    (first,) = files.segments
    files.append(b"line1-padding\n")  # 14 < 20 bytes: still this segment
    assert files.segments == [first]
    files.append(b"line2-padding\n")  # past 20: a new one, the first still to forward
    assert len(files.segments) == 2
    assert forward_all(files) == [b"line1-padding\n", b"line2-padding\n"]
    (second,) = files.segments  # the first went: forwarded, a newer one follows it
    assert not first.exists() and second.name > first.name
    files.append(b"line3-padding\n")  # the second passes 20 bytes ...
    forward_all(files)
    assert files.segments == [] and not second.exists()  # ... so, forwarded, it goes
    files.append(b"line4-padding\n")
    assert files.segments[0].name > second.name and forward_all(files) == [b"line4-padding\n"]


def test_files_drop_oldest_leaves_the_last_segment_alone(tmp_path):
    files = SpoolFiles(tmp_path, segment_bytes=10)
    files.append(b"old-batch-0\n")
    forward_all(files)
    assert files.drop_oldest_segment() is None  # the one there is takes the appends
    files.append(b"new-batch-1\n")  # a new segment; the forwarded one goes
    files.append(b"new-batch-2\n")
    assert len(files.segments) == 2 and files.size_bytes == 24
    assert files.drop_oldest_segment() == b"new-batch-1\n"
    assert files.size_bytes == 12 and forward_all(files) == [b"new-batch-2\n"]


def test_files_start_on_an_older_versions_spool(tmp_path):
    """The same format as before: segments and a cursor into the oldest one."""
    (tmp_path / "000000000003.jsonl").write_bytes(b"done\nthree\n")
    (tmp_path / "000000000004.jsonl").write_bytes(b"four\n")
    (tmp_path / "cursor").write_text("000000000003.jsonl 5\n")
    files = SpoolFiles(tmp_path)
    assert files.pending_bytes == 11 and forward_all(files) == [b"three\n", b"four\n"]
    assert [path.name for path in files.segments] == ["000000000004.jsonl"]
    files.append(b"five\n")
    assert files.segments[-1].name == "000000000004.jsonl"


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


def spooled(db, tmp_path, **options) -> SpooledStore:
    options = {"store_timeout_s": 2.0, "retry_interval_s": 0.1, **options}
    return SpooledStore(db.url, tmp_path / "spool", **options).start()


def test_every_batch_is_stored_through_the_spool(db, tmp_path):
    with spooled(db, tmp_path) as store:
        store.write_samples(samples(0))
        store.write_observations([observation(0, "down")])
        store.write_poll_statuses([(12, "reachable", None, T0)])
        store.write_port_matches([PortMatchRow(4711, 12, 7, "ifName", None, None, T0)])
        assert store.drain(10)
        stats = store.stats()
    assert len(stored_samples(db)) == 3
    with db.pool.connection() as conn:
        assert [o.new for o in recent_observations(conn)] == ["down"]
        assert conn.execute("SELECT status FROM device_poll_status").fetchall() == [
            ("reachable",)]
        assert conn.execute("SELECT if_index FROM port_matches").fetchall() == [(7,)]
    assert stats.forwarded_batches == 4 and stats.spool_bytes == 0


def test_nothing_lost_and_order_kept_while_the_database_is_away(db, pg_server, tmp_path,
                                                               caplog):
    with caplog.at_level(logging.INFO, logger="collectors.spool"), \
            spooled(db, tmp_path) as store:
        store.write_samples(samples(0))
        assert store.drain(10)
        with database_away(pg_server, db.url):
            store.write_observations([observation(10, "down")])
            store.write_samples(samples(20))
            store.write_observations([observation(30, "up")])
            assert store.flush(5)  # on disk at once, whatever the store does
            deadline = time.monotonic() + 10
            while store.stats().store_available and time.monotonic() < deadline:
                store.write_samples(samples(25, 1))
                time.sleep(0.1)
            assert not store.stats().store_available and store.spooling
        assert store.drain(15)
        stats = store.stats()
    times = [at for at, _ in stored_samples(db)]
    assert times[:6] == [T0 + timedelta(seconds=s) for s in (0, 1, 2, 20, 21, 22)]
    assert len(times) == 6 + stats.spooled_rows - 8  # the probes too, nothing twice
    with db.pool.connection() as conn:
        stored = recent_observations(conn)
    assert [o.new for o in stored] == ["up", "down"] and stored[0].id > stored[1].id
    assert stats.dropped == {} and stats.outages == 1
    warnings = [r for r in caplog.records
                if r.levelno == logging.WARNING and r.name == "collectors.spool"]
    assert len(warnings) == 1 and "store unavailable" in warnings[0].getMessage()
    assert any("store back after" in r.getMessage() for r in caplog.records)


def test_closing_while_the_store_is_away_returns_within_its_timeout(db, pg_server, tmp_path):
    store = spooled(db, tmp_path)
    with database_away(pg_server, db.url):
        store.write_samples(samples(0))
        started = time.monotonic()
        store.close(timeout_s=3.0)
        closed_in_s = time.monotonic() - started
        assert store.spooling  # kept on disk for the next start
    assert closed_in_s < 6.0  # bounded by the timeout given, whatever the store does
    again = spooled(db, tmp_path)  # a new process forwards what the last one spooled
    try:
        assert again.drain(15)
    finally:
        again.close()
    assert len(stored_samples(db)) == 3


def test_a_killed_writer_left_its_batches_for_the_next_start(db, pg_server, tmp_path):
    first = spooled(db, tmp_path, start_forwarding=False)  # as a process killed mid-outage
    first.write_samples(samples(0))
    first.write_observations([observation(5, "down")])
    assert first.flush(5)
    assert first.pending_observations() == [observation(5, "down")]
    first.close()
    with spooled(db, tmp_path) as second:
        assert second.drain(10)
    assert len(stored_samples(db)) == 3
    with db.pool.connection() as conn:
        assert [o.new for o in recent_observations(conn)] == ["down"]


class NoStore:
    """A store address nothing listens on: the forwarder never gets through."""

    url = "postgresql://keyline@127.0.0.1:9/nowhere"


def test_a_full_spool_drops_the_newest_samples_counts_them_and_records_them(
        db, tmp_path, caplog):
    spool_dir = tmp_path / "full"
    with caplog.at_level(logging.ERROR, logger="collectors.spool"):
        away = SpooledStore(NoStore.url, spool_dir, max_bytes=1000, retry_interval_s=60,
                            device_of=lambda object_id: 12 if object_id == 4711 else None,
                            start_forwarding=False).start()
        for n in range(10):
            away.write_samples(samples(n * 10, 3))
        away.write_observations([observation(200, "down")])  # never dropped
        assert away.flush(5)
        stats = away.stats()
        away.close()
    assert stats.dropped["samples"] > 0 and "observations" not in stats.dropped
    assert stats.spool_bytes <= 1000 + len(encode_batch("observations",
                                                        [observation(200, "down")]))
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "DROPPING" in errors[0].getMessage()
    # the counts survive the process, and reach the store once it answers
    with SpooledStore(db.url, spool_dir, retry_interval_s=0.1).start() as back:
        assert back.drain(10)
    with db.pool.connection() as conn:
        drops = conn.execute("SELECT device_id, kind, rows, first_time, last_time"
                             " FROM collection_drops").fetchall()
    (device, kind, rows, first, last), = drops
    assert (device, kind, rows) == (12, "samples", stats.dropped["samples"])
    kept = {at for at, _ in stored_samples(db)}
    assert first > max(kept) and last == T0 + timedelta(seconds=92)  # the newest went


def drops_counted_while_away(spool_dir: pathlib.Path) -> int:
    """A spool whose store is away drops samples; how many rows it counted."""
    away = SpooledStore(NoStore.url, spool_dir, max_bytes=1000, retry_interval_s=60,
                        device_of=lambda object_id: 12, start_forwarding=False).start()
    for n in range(10):
        away.write_samples(samples(n * 10, 3))
    assert away.flush(5)
    dropped = away.stats().dropped["samples"]
    away.close()
    assert dropped > 0
    return dropped


def recorded_drops(db) -> list[tuple[int, str, int]]:
    with db.pool.connection() as conn:
        return conn.execute("SELECT device_id, kind, rows FROM collection_drops").fetchall()


def test_drop_counts_stored_but_not_forgotten_are_not_stored_twice(db, tmp_path):
    """Killed after the drop counts' commit, before drops.json was rewritten: the next start
    finds the round's id stored, and only forgets the counts."""
    from collectors.spool import pending_drop_rows

    spool_dir = tmp_path / "spool"
    dropped = drops_counted_while_away(spool_dir)
    counted = json.loads((spool_dir / "drops.json").read_text())
    assert counted["forwarding"] is None and pending_drop_rows(spool_dir / "drops.json") == dropped
    with spooled(db, tmp_path) as back:
        assert back.drain(10)
    assert recorded_drops(db) == [(12, "samples", dropped)]
    assert pending_drop_rows(spool_dir / "drops.json") == 0
    with db.pool.connection() as conn:
        (round_id,), = conn.execute(
            "SELECT id FROM spool_batches WHERE id LIKE 'drops-%'").fetchall()
    # drops.json as the killed process left it: the round written, its commit done
    (spool_dir / "drops.json").write_text(json.dumps(
        {"counts": {}, "forwarding": {"id": round_id, "counts": counted["counts"]}}))
    assert pending_drop_rows(spool_dir / "drops.json") == dropped  # `keyline status` says so
    with spooled(db, tmp_path) as again:
        assert again.drain(10)
    assert recorded_drops(db) == [(12, "samples", dropped)]  # once, not twice
    assert pending_drop_rows(spool_dir / "drops.json") == 0


def test_drop_counts_of_an_older_spool_still_reach_the_store(db, tmp_path):
    """drops.json as spools wrote it before rounds had ids: the counts alone."""
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    (spool_dir / "drops.json").write_text(json.dumps(
        {"12|samples": [7, "2026-01-01T00:00:00+00:00", "2026-01-01T00:01:00+00:00"]}))
    with spooled(db, tmp_path) as back:
        assert back.drain(10)
    assert recorded_drops(db) == [(12, "samples", 7)]


def test_drop_oldest_makes_room_by_deleting_the_oldest_samples(db, tmp_path):
    spool_dir = tmp_path / "oldest"
    away = SpooledStore(NoStore.url, spool_dir, max_bytes=1000, segment_bytes=200,
                        when_full="drop_oldest", retry_interval_s=60,
                        start_forwarding=False).start()
    for n in range(10):
        away.write_samples(samples(n * 10, 3))
    assert away.flush(5)
    stats = away.stats()
    away.close()
    assert stats.dropped["samples"] > 0
    with SpooledStore(db.url, spool_dir, retry_interval_s=0.1).start() as back:
        assert back.drain(10)
    kept = sorted(at for at, _ in stored_samples(db))
    assert kept[-1] == T0 + timedelta(seconds=92)  # the newest kept
    assert kept[0] > T0  # the oldest went
    assert len(kept) + stats.dropped["samples"] == 30


def test_an_unreadable_batch_is_set_aside_not_blocking(db, tmp_path, caplog):
    files = SpoolFiles(tmp_path / "spool" / "samples")
    files.append(b'{"kind": "samples", "rows": [["not a time", 1, "m", 1.0]]}\n')
    files.append(encode_batch("samples", samples(0)))
    with caplog.at_level(logging.ERROR, logger="collectors.spool"), \
            spooled(db, tmp_path) as store:
        assert store.drain(10)
        stats = store.stats()
    assert len(stored_samples(db)) == 3 and stats.rejected_batches == 1
    assert (tmp_path / "spool" / "rejected.jsonl").read_bytes().startswith(b'{"kind"')
    assert "set aside" in caplog.text


def test_a_batch_stored_but_not_marked_done_is_not_stored_twice(db, tmp_path):
    """The commit went through but the confirmation was lost (the connection dropped right
    then): the batch is still in the spool and is tried again; its id says it is stored."""
    with spooled(db, tmp_path) as store:
        store.write_samples(samples(0))
        store.write_observations([observation(1, "down")])
        assert store.drain(10)
    line_samples = encode_batch("samples", samples(0))
    kept = SpoolFiles(tmp_path / "spool" / "samples")
    # the same batches, as if never marked done: their ids are those stored
    with db.pool.connection() as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM spool_batches")]
    assert len(ids) == 2
    record = json.loads(line_samples)
    for batch_id in ids:
        record["id"] = batch_id
        kept.append(json.dumps(record).encode() + b"\n")
    with spooled(db, tmp_path) as store:
        assert store.drain(10)
        stats = store.stats()
    assert len(stored_samples(db)) == 3  # not 6, not 9
    assert stats.forwarded_batches == 2  # tried, found stored, skipped


def spool_segments(tmp_path, kind: str) -> list[str]:
    return sorted(path.name for path in (tmp_path / "spool" / kind).glob("*.jsonl"))


def test_the_store_appends_to_one_segment_round_after_round(db, tmp_path):
    with spooled(db, tmp_path) as store:
        for round_n in range(3):  # a flush a second, the store keeping up
            store.write_samples(samples(10 * round_n))
            store.write_poll_statuses([(12, "reachable", None, T0 + timedelta(seconds=round_n))])
            assert store.flush(5) and store.drain(10)
            if round_n == 0:
                first = (spool_segments(tmp_path, "samples"),
                         spool_segments(tmp_path, "observations"))
            assert (spool_segments(tmp_path, "samples"),
                    spool_segments(tmp_path, "observations")) == first
        stats = store.stats()
    assert len(first[0]) == len(first[1]) == 1 and stats.spool_bytes == 0
    segment = tmp_path / "spool" / "samples" / first[0][0]
    assert (tmp_path / "spool" / "samples" / "cursor").read_text() == (
        f"{segment.name} {segment.stat().st_size}\n")  # the whole segment forwarded
    assert stored_samples(db) == [(s.time, s.value) for n in range(3) for s in samples(10 * n)]


def test_a_crash_between_the_commits_and_the_cursor_write_stores_nothing_twice(db, tmp_path):
    """Killed after its batches' commits, before the cursor was written: the next start
    forwards them again, and each kind's batch is found stored by its id and skipped."""
    spool_dir = tmp_path / "spool"
    with spooled(db, tmp_path, start_forwarding=False) as first:
        first.write_samples(samples(0))
        first.write_observations([observation(1, "down")])
        first.write_poll_statuses([(12, "reachable", None, T0)])
        first.write_port_matches([PortMatchRow(4711, 12, 7, "ifName", None, None, T0)])
        assert first.flush(5)
    before_forwarding = tmp_path / "before"
    shutil.copytree(spool_dir, before_forwarding)
    with spooled(db, tmp_path) as second:
        assert second.drain(10)
    # the spool as the killed process left it: all committed, no cursor moved
    shutil.rmtree(spool_dir)
    shutil.copytree(before_forwarding, spool_dir)
    earlier = T0 - timedelta(days=1)  # what a replayed upsert would set back to T0
    with db.pool.connection() as conn:
        conn.execute("UPDATE device_poll_status SET last_poll_at = %s", [earlier])
        conn.execute("UPDATE port_matches SET seen_at = %s", [earlier])
    with spooled(db, tmp_path) as third:
        assert third.drain(10)
        stats = third.stats()
    assert stats.forwarded_batches == 4  # tried again, all four found stored
    assert len(stored_samples(db)) == 3
    with db.pool.connection() as conn:
        assert [o.new for o in recent_observations(conn)] == ["down"]
        assert conn.execute("SELECT last_poll_at FROM device_poll_status").fetchall() == [
            (earlier,)]
        assert conn.execute("SELECT seen_at FROM port_matches").fetchall() == [(earlier,)]


def test_a_restart_forwards_exactly_what_was_not_yet_forwarded(db, tmp_path):
    with spooled(db, tmp_path) as first:
        first.write_samples(samples(0))
        assert first.flush(5) and first.drain(10)
    with spooled(db, tmp_path, start_forwarding=False) as second:  # the store away
        second.write_samples(samples(10))
        assert second.flush(5)
    assert len(spool_segments(tmp_path, "samples")) == 1  # appended to the forwarded one
    with spooled(db, tmp_path) as third:
        assert third.drain(10)
        stats = third.stats()
    assert stats.forwarded_batches == 1  # the first round's batch not even tried again
    assert [at for at, _ in stored_samples(db)] == [
        T0 + timedelta(seconds=s) for s in (0, 1, 2, 10, 11, 12)]


def test_status_counts_only_what_waits_past_the_cursor(tmp_path: pathlib.Path) -> None:
    """`keyline status` reads the spool folder: a last segment kept after it was forwarded to
    its end is not "bytes waiting" (nor an old spool), what lies past the cursor is."""
    from keyline.wiring import _spool_on_disk

    files = SpoolFiles(tmp_path / "samples")
    files.append_many([b'{"kind": "samples", "rows": []}\n', b'{"kind": "samples"}\n'])
    assert _spool_on_disk(tmp_path)["bytes"] == files.pending_bytes > 0
    _, end = files.next_batch()
    files.mark_done(end)
    files.save_cursor()
    assert _spool_on_disk(tmp_path)["bytes"] == files.pending_bytes == 20
    _, end = files.next_batch()
    files.mark_done(end)
    files.save_cursor()
    files.close()
    assert list((tmp_path / "samples").glob("*.jsonl"))  # the segment stays for the next
    report = _spool_on_disk(tmp_path)
    assert (report["bytes"], report["oldest_s"]) == (0, None)
