"""Rollups for years (store/timeseries.py, migration 0019): which resolution a range reads, a
400-day chart and a year of SLA figures from rollups only, late batches rebuilding their
buckets, retention per resolution with policies made once.

Runs on whatever the session's server is: plain PostgreSQL (rollups are tables the refresh
job fills), or with `KEYLINE_TEST_TIMESCALEDB=1` TimescaleDB preloaded (continuous
aggregates); each test asserts the path the store took, found in its store_features."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from pydantic import ValidationError

from config.inventory.loader import load_inventory
from config.settings import StoreSettings
from keyline.wiring import EXAMPLE_INVENTORY
from store.database import Database
from store.features import detect_features
from store.inventory import apply_inventory
from store.queries import Viewer, sample_series
from store.sla import hourly_measurements
from store.timeseries import (
    DAY,
    FIVE_MINUTES,
    HOUR,
    RAW,
    ROLLUPS,
    Retention,
    SampleWriter,
    apply_retention,
    check_retention,
    refresh_rollup_range,
    refresh_rollups,
    resolution_for,
    stored_retention,
)

NOC = Viewer("noc.wang", "noc")
DAYS = range(0, 400, 8)  # the days of test_a_400_day_chart_...'s samples
DEFAULTS = StoreSettings()
ROLLUP_COLUMNS = ["bucket", "object_id", "metric_id", "avg_value", "min_value", "max_value",
                  "sample_count"]


def midnight(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def continuous(db: Database) -> bool:
    with db.pool.connection() as conn:
        return detect_features(conn).continuous_aggregates


def rollup_row(db: Database, table: str, object_id: int, bucket: datetime
               ) -> tuple[float, float, float, int] | None:
    with db.pool.connection() as conn:
        return conn.execute(
            f"""SELECT avg_value, min_value, max_value, sample_count FROM {table}
                 WHERE object_id = %s AND bucket = %s""", [object_id, bucket]).fetchone()


def migrations_up_to(tmp_path: Path, last: str) -> Path:
    """A folder of the released migrations up to `last` (a store as an older Keyline left it)."""
    import shutil

    from store.migrate import MIGRATIONS_DIR

    folder = tmp_path / "migrations"
    folder.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.name <= last:
            shutil.copy(path, folder)
    assert sorted(folder.glob("*.sql"))[-1].name == last
    return folder


def pending(db: Database) -> list[tuple[datetime, datetime]]:
    with db.pool.connection() as conn:
        return conn.execute("SELECT from_ts, to_ts FROM rollup_pending ORDER BY id").fetchall()


# --- choosing the resolution -------------------------------------------------------------------


@pytest.mark.parametrize(("span", "points", "table"), [
    (timedelta(hours=1), 300, "samples"),
    (timedelta(hours=24), 300, "samples"),  # 288 five-minute buckets are too few
    (timedelta(days=2), 300, "samples_5min"),
    (timedelta(days=7), 300, "samples_5min"),
    (timedelta(days=30), 300, "samples_hour"),
    (timedelta(days=60), 300, "samples_hour"),
    (timedelta(days=400), 300, "samples_day"),
    (timedelta(days=400), 1000, "samples_hour"),  # more points: a finer rollup
    (timedelta(days=2), 1000, "samples"),
])
def test_each_range_reads_the_coarsest_resolution_that_serves_it(span, points, table):
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    chosen = resolution_for(now - span, now, now=now, retention=DEFAULTS, points=points)
    assert chosen.table == table


def test_a_range_older_than_a_resolution_is_kept_reads_one_that_still_holds_it():
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    # an hour 100 days ago: raw samples are gone after 90, the 5-minute rollup has it
    start = now - timedelta(days=100)
    assert resolution_for(start, start + timedelta(hours=1), now=now,
                          retention=DEFAULTS) == FIVE_MINUTES
    # a week 3 years ago: only hours and days are kept that long; hours give the points
    start = now - timedelta(days=3 * 365)
    assert resolution_for(start, start + timedelta(days=30), now=now,
                          retention=DEFAULTS) == HOUR
    # beyond everything: the longest kept, whatever is left of it
    start = now - timedelta(days=5000)
    assert resolution_for(start, start + timedelta(days=1), now=now,
                          retention=DEFAULTS) == DAY
    # an hourly report never reads days, however long its period
    year = now - timedelta(days=365)
    assert resolution_for(year, now, now=now, retention=DEFAULTS, points=1,
                          coarsest_s=HOUR.bucket_s) == HOUR
    with pytest.raises(ValueError, match=r"ends \(.*\) before it starts"):
        resolution_for(now, now, now=now, retention=DEFAULTS)


def test_retention_settings_keep_each_rollup_at_least_as_long_as_its_source():
    assert (DEFAULTS.raw_retention_days, DEFAULTS.rollup_5min_retention_days,
            DEFAULTS.rollup_hour_retention_days, DEFAULTS.rollup_day_retention_days) == (
        90, 400, 1830, 3660)
    with pytest.raises(ValidationError, match=r"store\.rollup_hour_retention_days \(300\)"
                                              r" must be at least"
                                              r" store\.rollup_5min_retention_days \(400\)"):
        StoreSettings(rollup_hour_retention_days=300)
    with pytest.raises(ValueError, match="rollup_day_retention_days"):
        check_retention(Retention(90, 400, 1830, 1000))
    with pytest.raises(ValueError, match="raw_retention_days must be at least 1 day"):
        check_retention(Retention(0, 400, 1830, 3660))


# --- the schema on either path -----------------------------------------------------------------


def test_three_rollups_with_the_same_columns_and_what_was_made_recorded(db: Database):
    cagg = continuous(db)
    with db.pool.connection() as conn:
        for rollup in ROLLUPS:
            columns = [row[0] for row in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass"
                " AND attnum > 0 AND NOT attisdropped ORDER BY attnum", [rollup.table])]
            assert columns == ROLLUP_COLUMNS, rollup.table
            kind = conn.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass",
                                [rollup.table]).fetchone()[0]
            assert kind == ("v" if cagg else "r"), rollup.table
        recorded = dict(conn.execute(
            "SELECT feature, detail FROM store_features"
            " WHERE feature IN ('rollups', 'rollup_compression')").fetchall())
        enabled = dict(conn.execute(
            "SELECT feature, enabled FROM store_features"
            " WHERE feature IN ('rollups', 'rollup_compression')").fetchall())
        assert stored_retention(conn) == Retention(90, 400, 1830, 3660)
        if cagg:
            assert recorded["rollups"].startswith("continuous aggregates")
            assert enabled["rollup_compression"] is True
            assert "samples_day after 90 days" in recorded["rollup_compression"]
            # hierarchical: hour on 5 minutes, day on hour, each with its refresh policy
            parents = dict(conn.execute(
                """SELECT c.user_view_name, p.user_view_name
                     FROM _timescaledb_catalog.continuous_agg c
                     LEFT JOIN _timescaledb_catalog.continuous_agg p
                       ON p.mat_hypertable_id = c.raw_hypertable_id""").fetchall())
            assert parents == {"samples_5min": None, "samples_hour": "samples_5min",
                               "samples_day": "samples_hour"}
            policies = {row[0] for row in conn.execute(
                "SELECT hypertable_name FROM timescaledb_information.jobs"
                " WHERE proc_name = 'policy_refresh_continuous_aggregate'")}
            assert len(policies) == 3
        else:
            assert recorded["rollups"] == ("tables samples_5min, samples_hour, samples_day"
                                           " refreshed by the scheduler")
            assert enabled["rollup_compression"] is False


# --- long ranges read rollups only -------------------------------------------------------------


def test_a_400_day_chart_and_a_years_sla_figures_read_rollups_only(db: Database):
    """Four samples a day, every 8th day of 400 (a raw chunk or partition a day costs
    the test's time), rolled up; then every raw sample deleted: the chart and the SLA figures
    still have each of those days and hours."""
    with db.pool.connection() as conn:
        apply_inventory(conn, load_inventory([EXAMPLE_INVENTORY]))
        conn.commit()
        circuit = conn.execute("SELECT min(id) FROM circuits").fetchone()[0]
    today = midnight(datetime.now(UTC))
    first = today - timedelta(days=400)
    with SampleWriter(db.pool) as writer:
        writer.add_many([(first + timedelta(days=day, hours=6 * k), circuit, "rtt_ms",
                          10.0 * day + k) for day in DAYS for k in range(4)])
    # history older than the raw retention (an import): rolled up explicitly, as the job
    # would not (it skips what raw retention no longer holds)
    refresh_rollup_range(db.pool, first, today)
    with db.pool.connection() as conn:
        conn.execute("TRUNCATE samples")
        conn.commit()
        assert conn.execute("SELECT count(*) FROM samples").fetchone()[0] == 0

        series = sample_series(conn, NOC, circuit, "rtt_ms", first, today, 400)
        assert series is not None and series.resolution == DAY
        assert [point.time for point in series.points] == [
            first + timedelta(days=day) for day in DAYS]
        assert [(p.value, p.min_value, p.max_value) for p in series.points] == [
            (10.0 * day + 1.5, 10.0 * day, 10.0 * day + 3) for day in DAYS]

        # a year of hourly SLA figures: every sampled hour, from the hourly rollup
        year = today - timedelta(days=365)
        hours = hourly_measurements(conn, [circuit], ["rtt_ms"], year, today)
        in_year = [day for day in DAYS if day >= 400 - 365]
        assert hours == [(circuit, "rtt_ms", first + timedelta(days=day, hours=6 * k), 1,
                          10.0 * day + k, 10.0 * day + k) for day in in_year for k in range(4)]

        # and a range raw samples hold reads raw samples: nothing there any more
        recent = sample_series(conn, NOC, circuit, "rtt_ms", today - timedelta(hours=1),
                               today, 300)
        assert recent is not None and recent.resolution == RAW and recent.points == []


# --- late batches --------------------------------------------------------------------------------


def test_a_late_batch_rebuilds_the_buckets_it_touches(db: Database, caplog):
    now = datetime.now(UTC)
    bucket = midnight(now) - timedelta(days=2) + timedelta(hours=10)  # a 5-minute bucket
    with SampleWriter(db.pool) as writer:
        writer.add(now, 7, "rtt_ms", 1.0)  # on time: no note
    assert pending(db) == []

    with SampleWriter(db.pool) as writer:
        writer.add_many([(bucket, 7, "rtt_ms", 10.0), (now, 7, "rtt_ms", 1.0),
                         (bucket - timedelta(days=300), 7, "rtt_ms", 1.0)])  # a wrong clock
    # in the batch's transaction: the hours of its late samples, not the days in between
    assert pending(db) == [(bucket - timedelta(days=300), bucket - timedelta(days=299, hours=23)),
                           (bucket, bucket + timedelta(hours=1))]
    refresh_rollups(db.pool, now)
    assert pending(db) == []
    for rollup in ROLLUPS:
        start = datetime.fromtimestamp(bucket.timestamp() // rollup.bucket_s
                                       * rollup.bucket_s, UTC)
        assert rollup_row(db, rollup.table, 7, start) == (10.0, 10.0, 10.0, 1), rollup.table

    if continuous(db):  # old rollup chunks compressed, as their policies do: still rebuilt
        with db.pool.connection() as conn:
            compressed = conn.execute(
                """SELECT count(compress_chunk(c)) FROM (
                       SELECT show_chunks(r) AS c FROM unnest(%s::regclass[]) AS r) AS chunks""",
                [[rollup.table for rollup in ROLLUPS]]).fetchone()[0]
            conn.commit()
        assert compressed >= 3

    # a replayed sample in the same buckets, two days late: recorded, then rebuilt
    with SampleWriter(db.pool) as writer:
        writer.add(bucket + timedelta(minutes=1), 7, "rtt_ms", 20.0)
    assert pending(db) == [(bucket, bucket + timedelta(hours=1))]
    assert rollup_row(db, "samples_5min", 7, bucket) == (10.0, 10.0, 10.0, 1)  # not yet
    assert refresh_rollups(db.pool, datetime.now(UTC)) >= 1
    assert pending(db) == []
    for rollup in ROLLUPS:
        start = datetime.fromtimestamp(bucket.timestamp() // rollup.bucket_s
                                       * rollup.bucket_s, UTC)
        assert rollup_row(db, rollup.table, 7, start) == (15.0, 10.0, 20.0, 2), rollup.table

    # older than the raw samples are kept: not rebuilt (their neighbours' samples are
    # gone, a rebuild would empty the buckets), said so, and the note dropped
    old = midnight(now) - timedelta(days=DEFAULTS.raw_retention_days + 5)
    with SampleWriter(db.pool) as writer:
        writer.add(old, 7, "rtt_ms", 5.0)
    refresh_rollup_range(db.pool, old, old + timedelta(minutes=1))
    with SampleWriter(db.pool) as writer:
        writer.add(old + timedelta(seconds=10), 7, "rtt_ms", 50.0)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="store.timeseries"):
        refresh_rollups(db.pool, datetime.now(UTC))
    assert "older than the raw samples' retention (90 days) skipped" in caplog.text
    assert pending(db) == []
    assert rollup_row(db, "samples_5min", 7, old) == (5.0, 5.0, 5.0, 1)


def test_rollup_tables_catch_up_since_the_last_refresh(db: Database):
    """Rollups that are tables are rebuilt from the last run on, however long ago it was
    (the job did not run while the store was away); continuous aggregates have their
    policies for that."""
    if continuous(db):
        pytest.skip("continuous aggregates are refreshed by their policies")
    now = datetime.now(UTC).replace(microsecond=0)
    refresh_rollups(db.pool, now - timedelta(hours=3))
    at = now - timedelta(hours=2)  # after that run, before this one; written on time
    with db.pool.connection() as conn:  # as if written then: no late note
        conn.execute("SELECT keyline_ensure_sample_partitions(%s, %s)", [at, at])
        conn.execute("INSERT INTO samples VALUES (%s, 8, 1, 3.0)", [at])
        conn.commit()
    refresh_rollups(db.pool, now)
    assert rollup_row(db, "samples_hour", 8, at.replace(minute=0, second=0)) == (
        3.0, 3.0, 3.0, 1)


# --- retention ----------------------------------------------------------------------------------


def retention_jobs(conn: psycopg.Connection) -> dict[str, tuple[int, str]]:
    """The retention policies by table (a continuous aggregate's by its view's name): job id,
    what it keeps."""
    return {name: (job, after) for name, job, after in conn.execute(
        """SELECT j.hypertable_name, j.job_id, j.config ->> 'drop_after'
             FROM timescaledb_information.jobs j
            WHERE j.proc_name = 'policy_retention'""")}


def test_each_resolution_has_its_retention_and_policies_are_made_once(db: Database):
    cagg = continuous(db)
    now = datetime.now(UTC)
    ages = (500, 300, 2000)  # days: past 5-minute retention, within it, past hourly's
    with SampleWriter(db.pool) as writer:
        writer.add_many([(midnight(now) - timedelta(days=age), 9, "cpu_pct", float(age))
                         for age in ages])
    for age in ages:
        day = midnight(now) - timedelta(days=age)
        refresh_rollup_range(db.pool, day, day + timedelta(minutes=5))

    def kept(table: str) -> list[float]:
        column = "value" if table == "samples" else "avg_value"
        with db.pool.connection() as conn:
            return [row[0] for row in conn.execute(
                f"SELECT {column} FROM {table} WHERE object_id = 9 ORDER BY 1")]

    assert kept("samples_5min") == [300.0, 500.0, 2000.0]
    with db.pool.connection() as conn:
        jobs = retention_jobs(conn) if cagg else {}
    dropped = apply_retention(db.pool, DEFAULTS)
    assert dropped >= 3  # the raw days (partitions or chunks), all past 90 days
    assert kept("samples") == []
    assert kept("samples_5min") == [300.0]
    assert kept("samples_hour") == [300.0, 500.0]
    assert kept("samples_day") == [300.0, 500.0, 2000.0]

    with db.pool.connection() as conn:
        before = conn.execute("SELECT name, value, applied_at FROM store_policies"
                              " WHERE name LIKE 'retention:%' ORDER BY name").fetchall()
        if cagg:
            after_first = retention_jobs(conn)
            # the raw policy of 0002 kept (90 days already); the rollups' made once
            assert after_first["samples"] == jobs["samples"]
            assert {name: after for name, (_job, after) in after_first.items()} == {
                "samples": "90 days", "samples_5min": "400 days", "samples_hour": "1830 days",
                "samples_day": "3660 days"}
    apply_retention(db.pool, DEFAULTS)  # the 6-hourly job again: nothing replaced
    with db.pool.connection() as conn:
        assert conn.execute("SELECT name, value, applied_at FROM store_policies"
                            " WHERE name LIKE 'retention:%' ORDER BY name").fetchall() == before
        if cagg:
            assert retention_jobs(conn) == after_first

    shorter = StoreSettings(raw_retention_days=30, rollup_5min_retention_days=200)
    apply_retention(db.pool, shorter)
    with db.pool.connection() as conn:
        assert stored_retention(conn) == Retention(30, 200, 1830, 3660)
        if cagg:
            replaced = retention_jobs(conn)
            assert replaced["samples"][1] == "30 days"
            assert replaced["samples"][0] != after_first["samples"][0]
            assert replaced["samples_hour"] == after_first["samples_hour"]
    assert kept("samples_5min") == []  # 300 days > 200


def test_the_collectors_upkeep_jobs_refresh_and_apply_the_settings(db: Database, tmp_path):
    """The collection service's rollup and retention jobs, built from settings as `keyline
    collect` builds it, run refresh_rollups and apply_retention with every resolution's
    setting."""
    import asyncio

    from collectors.service import CollectionService
    from config.settings import load_settings

    settings = load_settings(None, overrides={
        "data_dir": tmp_path / "data", "database_url": db.url,
        "store": {"raw_retention_days": 30, "rollup_hour_retention_days": 800}})
    service = CollectionService.from_settings(settings, db.pool, environ={})
    late = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    with SampleWriter(db.pool) as writer:
        writer.add(late, 11, "rtt_ms", 6.0)
    try:
        asyncio.run(service._maintain_rollups())
        asyncio.run(service._maintain_retention())
    finally:
        service._writer.shutdown(wait=True)
    assert pending(db) == []
    assert rollup_row(db, "samples_hour", 11, late) == (6.0, 6.0, 6.0, 1)
    with db.pool.connection() as conn:
        assert stored_retention(conn) == Retention(30, 400, 800, 3660)


def test_an_upgraded_store_rolls_its_5_minute_history_into_hours_and_days(
        empty_db_url: str, tmp_path):
    """A store migrated before 0019 has 5-minute history and no hourly or daily rollup:
    the first refresh after the upgrade builds them from it."""
    from store.database import open_database
    from store.migrate import migrate

    before = migrations_up_to(tmp_path, "0018_device_configs.sql")
    day = midnight(datetime.now(UTC)) - timedelta(days=3)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        migrate(conn, directory=before)
        conn.execute("SELECT keyline_ensure_sample_partitions(%s, %s)", [day, day])
        conn.execute("INSERT INTO samples VALUES (%s, 12, 1, 2.0), (%s, 12, 1, 4.0)",
                     [day + timedelta(hours=1), day + timedelta(hours=2, minutes=7)])
        if conn.execute("SELECT relkind FROM pg_class WHERE oid = 'samples_5min'::regclass"
                        ).fetchone()[0] == "v":
            conn.execute("CALL refresh_continuous_aggregate('samples_5min', %s, %s)",
                         [day, day + timedelta(days=1)])
        else:
            conn.execute("SELECT keyline_refresh_samples_5min(%s, %s)",
                         [day, day + timedelta(days=1)])
        migrate(conn)
        assert conn.execute("SELECT from_ts, to_ts, rebuild_from FROM rollup_pending"
                            ).fetchall() == [(day, day + timedelta(days=1), "samples_5min")]
    database = open_database(empty_db_url, tmp_path, min_size=1, max_size=2)
    try:
        refresh_rollups(database.pool, datetime.now(UTC))
        assert pending(database) == []
        assert rollup_row(database, "samples_hour", 12, day + timedelta(hours=2)) == (
            4.0, 4.0, 4.0, 1)
        assert rollup_row(database, "samples_day", 12, day) == (3.0, 2.0, 4.0, 2)
    finally:
        database.close()


def test_one_refresh_function_writes_what_the_three_copies_wrote(empty_db_url: str, tmp_path):
    """Migration 0021 made 0002's and 0019's refresh functions (5-minute from raw samples,
    hourly from 5 minutes, daily from hours) wrappers of one keyline_refresh_rollup: over
    the same samples and the same ragged range they write the same rows, replace the stale
    rows of the range's buckets, keep the rows outside it, and return the same counts; on
    TimescaleDB, where the rollups are continuous aggregates, they do nothing and return 0."""
    from store.migrate import migrate

    before = migrations_up_to(tmp_path, "0020_collectors.sql")
    day = midnight(datetime.now(UTC)) - timedelta(days=3)
    start, end = day + timedelta(minutes=3), day + timedelta(days=1, hours=2, minutes=4)
    outside = day - timedelta(days=10)
    # series 12/1: three samples in one 5-minute bucket, one in the next (the hour's mean
    # weighted by count is 4, the mean of the two means would be 6); 13/2 over two days
    samples = [(day + timedelta(seconds=s), 12, 1, v)
               for s, v in ((10, 1.0), (70, 2.0), (130, 3.0), (420, 10.0))]
    samples += [(day + timedelta(minutes=37 * n), 13, 2, float(n % 7)) for n in range(50)]

    def refresh(conn: psycopg.Connection) -> tuple[dict[str, int], dict[str, list]]:
        written = {rollup.table: conn.execute(
            f"SELECT keyline_refresh_{rollup.table}(%s, %s)", [start, end]).fetchone()[0]
            for rollup in ROLLUPS}
        rows = {table: [tuple(round(v, 9) if isinstance(v, float) else v for v in row)
                        for row in conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3")]
                for table in tables}
        return written, rows

    def spoil(conn: psycopg.Connection) -> None:
        """Rows the next refresh must replace (in its range) or keep (outside it)."""
        for table in tables:
            conn.execute(f"UPDATE {table} SET avg_value = -1 WHERE bucket >= %s", [day])
            conn.execute(f"INSERT INTO {table} VALUES (%s, 99, 1, 5, 5, 5, 1)",
                         [day + timedelta(hours=1)])

    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        migrate(conn, directory=before)
        tables = [rollup.table for rollup in ROLLUPS if conn.execute(
            "SELECT relkind FROM pg_class WHERE oid = %s::regclass", [rollup.table]
        ).fetchone()[0] == "r"]
        assert tables == ([] if detect_features(conn).continuous_aggregates
                          else [rollup.table for rollup in ROLLUPS])
        conn.execute("SELECT keyline_ensure_sample_partitions(%s, %s)",
                     [day, day + timedelta(days=2)])
        with conn.cursor() as cursor:
            cursor.executemany("INSERT INTO samples VALUES (%s, %s, %s, %s)", samples)
        for table in tables:
            conn.execute(f"INSERT INTO {table} VALUES (%s, 99, 1, 7, 7, 7, 1)", [outside])
        spoil(conn)
        copies = refresh(conn)
        migrate(conn)
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == 21
        spoil(conn)
        assert refresh(conn) == copies
    written, rows = copies
    if not tables:
        assert written == {rollup.table: 0 for rollup in ROLLUPS}
        return
    assert all(count > 0 for count in written.values()), written
    for table in tables:
        assert len(rows[table]) == written[table] + 1, table  # + the row outside the range
        assert (outside, 99, 1, 7.0, 7.0, 7.0, 1) in rows[table]
        assert all(row[3] >= 0 for row in rows[table]), table
    assert (day, 12, 1, 4.0, 1.0, 10.0, 4) in rows["samples_hour"]
