"""Samples: the writer stores exactly what it is given; partitions, metrics, rollup, retention."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import pytest

from config.settings import StoreSettings
from store.features import StoreFeatures, detect_features
from store.timeseries import (
    SampleWriter,
    apply_retention,
    read_samples,
    refresh_rollup_range,
)
from tests.conftest import TEST_TIMESCALEDB

START = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)


def partitions(conn) -> list[str]:
    return [row[0] for row in conn.execute(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'samples'::regclass ORDER BY 1""")]


def chunk_days(conn) -> list[date]:
    """The UTC days of samples' chunks (TimescaleDB: 1-day chunks)."""
    return [row[0].astimezone(UTC).date() for row in conn.execute(
        """SELECT range_start FROM timescaledb_information.chunks
            WHERE hypertable_name = 'samples' ORDER BY 1""")]


def test_features_match_the_server(db):
    with db.pool.connection() as conn:
        features = detect_features(conn)
    if TEST_TIMESCALEDB:  # preloaded (the second pass): a full build enables everything
        assert features == StoreFeatures(timescaledb=True, hypertable=True, compression=True,
                                         retention=True, continuous_aggregates=True)
        assert not features.partitioned
    else:  # plain PostgreSQL, or TimescaleDB installed but not preloaded
        assert features == StoreFeatures()
        assert features.partitioned


def test_writer_round_trips_100000_samples(db):
    metrics = ["if_in_bps", "if_out_bps", "rtt_ms", "loss_pct", "test_brand_new_metric"]
    rows = []
    expected_sums: dict[str, float] = defaultdict(float)
    for n in range(100_000):
        metric = metrics[n % len(metrics)]
        # Multiples of 1/4: exact in binary, so sums are exact in any order.
        value = (n % 9973) * 0.25
        # 100,000 samples 2.5 s apart: 2.9 days from 22:00, i.e. 4 UTC days.
        rows.append((START + timedelta(seconds=2.5 * n), 500 + n % 37, metric, value))
        expected_sums[metric] += value
    special = [
        (START + timedelta(microseconds=123_457), 999_001, "rtt_ms", 123456.789),
        (START + timedelta(days=1), 999_001, "rtt_ms", 1e-300),
        (START + timedelta(days=2), 999_001, "rtt_ms", -0.0),
    ]

    with SampleWriter(db.pool, batch_rows=30_000) as writer:
        writer.add_many(rows)
        assert writer.rows_written == 90_000  # three full batches so far
        for row in special:
            writer.add(*row)
    assert writer.rows_written == 100_003 and writer.pending == 0

    with db.pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM samples").fetchone()[0] == 100_003
        sums = dict(conn.execute(
            """SELECT m.name, sum(s.value) FROM samples s JOIN metrics m ON m.id = s.metric_id
                WHERE s.object_id < 999_000 GROUP BY m.name""").fetchall())
        assert sums == dict(expected_sums)
        got = read_samples(conn, 999_001, "rtt_ms", START, START + timedelta(days=3))
        assert got == [(time, value) for time, _, _, value in special]
        # one sample, read back to the microsecond
        time_0, object_0, metric_0, value_0 = rows[12_345]
        assert read_samples(conn, object_0, metric_0, time_0, time_0 + timedelta(microseconds=1)) \
            == [(time_0, value_0)]
        if detect_features(conn).hypertable:  # chunks, made by TimescaleDB
            assert chunk_days(conn) == [date(2026, 3, day) for day in (1, 2, 3, 4)]
        else:  # daily partitions, made by the writer
            assert partitions(conn) == ["samples_p20260301", "samples_p20260302",
                                        "samples_p20260303", "samples_p20260304"]
        new_metric = conn.execute("SELECT id, unit FROM metrics WHERE name = %s",
                                  ["test_brand_new_metric"]).fetchone()
        assert new_metric is not None and new_metric[1] is None
        assert read_samples(conn, 500, "no_such_metric", START, START + timedelta(days=9)) == []


def test_days_far_apart_make_only_their_partitions(db):
    with SampleWriter(db.pool) as writer:
        writer.add(datetime(2019, 6, 1, 12, tzinfo=UTC), 1, "cpu_pct", 5.0)
        writer.add(datetime(2026, 6, 1, 12, tzinfo=UTC), 1, "cpu_pct", 6.0)
    with db.pool.connection() as conn:
        if detect_features(conn).hypertable:
            assert chunk_days(conn) == [date(2019, 6, 1), date(2026, 6, 1)]
        else:
            assert partitions(conn) == ["samples_p20190601", "samples_p20260601"]


def test_bad_rows_stay_buffered_and_can_be_discarded(db):
    writer = SampleWriter(db.pool)
    with pytest.raises(ValueError, match="no timezone"):
        writer.add(datetime(2026, 1, 1), 1, "cpu_pct", 1.0)
    writer.add_many([(datetime(2026, 1, 1, tzinfo=UTC), 1, "cpu_pct", 1.0),
                     (datetime(2026, 1, 1, 0, 1), 1, "cpu_pct", 2.0)])
    with pytest.raises(ValueError, match="timezone-aware"):
        writer.flush()
    assert writer.pending == 2
    assert len(writer.discard()) == 2 and writer.pending == 0
    with db.pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM samples").fetchone()[0] == 0


def test_retention_drops_old_days_and_writer_recovers(db):
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=10), now - timedelta(hours=1)
    writer = SampleWriter(db.pool)
    writer.add(old, 7, "cpu_pct", 1.0)
    writer.add(recent, 7, "cpu_pct", 2.0)
    writer.flush()

    assert apply_retention(db.pool, StoreSettings(raw_retention_days=5)) == 1
    with db.pool.connection() as conn:
        values = [v for _, v in read_samples(conn, 7, "cpu_pct", old - timedelta(1), now)]
    assert values == [2.0]

    # Late data for the dropped day: the writer makes its partition again.
    writer.add(old, 7, "cpu_pct", 3.0)
    assert writer.flush() == 1
    assert apply_retention(db.pool, StoreSettings(raw_retention_days=5)) == 1


def test_rollup_refresh(db):
    with SampleWriter(db.pool) as writer:
        for second, value in [(0, 1.0), (60, 3.0), (299, 8.0), (300, 100.0)]:
            writer.add(START + timedelta(seconds=second), 42, "rtt_ms", value)
    refresh_rollup_range(db.pool, START, START + timedelta(minutes=10))
    refresh_rollup_range(db.pool, START, START + timedelta(minutes=10))  # idempotent
    with db.pool.connection() as conn:
        rows = conn.execute(
            """SELECT bucket, avg_value, min_value, max_value, sample_count FROM samples_5min
                WHERE object_id = 42 ORDER BY bucket""").fetchall()
    assert rows == [(START, 4.0, 1.0, 8.0, 3),
                    (START + timedelta(minutes=5), 100.0, 100.0, 100.0, 1)]
