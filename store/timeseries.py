"""Samples: writing measurements fast, reading a series back, dropping old data.

A sample is one measured value: (time, object_id, metric, value), e.g. (10:05:00Z, port 4711,
"if_in_bps", 8.2e6). Collectors produce them by the hundred thousand, so they are written in
batches with PostgreSQL's COPY in binary format: the rows stream to the server in its own
wire representation, with no SQL to parse per row and no text to convert. `SampleWriter`
buffers rows, turns metric names into the small integer ids the samples table stores
(creating a metric the first time its name is seen), and in plain-table mode makes sure the
daily partitions for the batch's days exist, then COPYs the batch in one transaction::

    with SampleWriter(database.pool) as writer:
        writer.add(now, port_id, "if_in_bps", 8.2e6)
        writer.add_many(rows)          # iterable of (time, object_id, metric, value)
    # leaving the block flushes what is left

Times must be timezone-aware datetimes. Each flush is one transaction: a batch is written
completely or not at all. If a flush fails (database away), its rows stay buffered and the
error is raised; flush again later, or `discard()` them to spool elsewhere.

Whether samples is a TimescaleDB hypertable or a table partitioned by day is read once from
the store's features (store.features); readers do not care, the names are the same.

Rollups keep years of history cheaply: `samples_5min`, `samples_hour` and `samples_day` hold,
per series and bucket, the mean, min, max and count of the samples (continuous aggregates on
TimescaleDB, tables that `refresh_rollups` recomputes otherwise: migration 0019). Each
resolution is kept for its own number of days (`apply_retention`, StoreSettings'
`*_retention_days`), and a reader asks `resolution_for(start, end, ...)` which one serves its
range: the coarsest that still gives the points it wants and still holds `start`, so a
400-day chart reads a few hundred daily rows instead of half a million raw samples. A batch
holding samples older than the refresh job's recent window (a spool replay) records the hours
they fall in in `rollup_pending` in the same transaction, and the next `refresh_rollups`
rebuilds exactly those buckets at every level.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from operator import itemgetter
from types import TracebackType
from typing import Protocol

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from store.features import StoreFeatures, detect_features

log = logging.getLogger(__name__)

SAMPLE_COLUMNS = "time, object_id, metric_id, value"
SAMPLE_TYPES = ("timestamptz", "int8", "int2", "float8")
COPY_SAMPLES = f"COPY samples ({SAMPLE_COLUMNS}) FROM STDIN (FORMAT BINARY)"

# A batch spanning more days than this is unusual (a device with a wrong clock): its
# partitions are made for the days actually present, not for every day in between.
CONTIGUOUS_DAYS_MAX = 3

# The refresh job (every 5 minutes) recomputes the rollups since its last run, from 5 minutes
# before it: a batch whose earliest sample is older than LATE_AFTER may fall in buckets that
# run has already passed, so its range is recorded in rollup_pending for the next run.
LATE_AFTER = timedelta(minutes=5)
REFRESH_OVERLAP = timedelta(minutes=5)

Sample = tuple[datetime, int, str, float]

_time_of = itemgetter(0)
_metric_of = itemgetter(2)


class SampleWriter:
    """Buffers samples and writes them with binary COPY, `batch_rows` at a time."""

    def __init__(self, pool: ConnectionPool, *, batch_rows: int = 50_000):
        if batch_rows < 1:
            raise ValueError("batch_rows must be at least 1")
        self._pool = pool
        self._batch_rows = batch_rows
        self._rows: list[Sample] = []
        self._metric_ids: dict[str, int] = {}
        self._features: StoreFeatures | None = None
        self._days_ready: set[date] = set()
        self.rows_written = 0

    # --- buffering ---------------------------------------------------------------------------

    def add(self, time: datetime, object_id: int, metric: str, value: float) -> None:
        """Buffer one sample; flushes when the buffer holds `batch_rows`."""
        if time.tzinfo is None:
            raise ValueError(f"sample time {time} has no timezone")
        self._rows.append((time, object_id, metric, value))
        if len(self._rows) >= self._batch_rows:
            self.flush()

    def add_many(self, rows: Iterable[Sample]) -> None:
        """Buffer many (time, object_id, metric, value) rows; flushes every `batch_rows`."""
        # self._rows is replaced by each flush: never keep a reference to it across one.
        if isinstance(rows, Sequence):
            start = 0
            while start < len(rows):
                room = self._batch_rows - len(self._rows)
                self._rows.extend(rows[start:start + room])
                start += room
                if len(self._rows) >= self._batch_rows:
                    self.flush()
        else:
            for row in rows:
                self._rows.append(row)
                if len(self._rows) >= self._batch_rows:
                    self.flush()

    @property
    def pending(self) -> int:
        """Rows buffered and not yet written."""
        return len(self._rows)

    def discard(self) -> list[Sample]:
        """Take the buffered rows out of the writer (e.g. to spool them to disk)."""
        rows, self._rows = self._rows, []
        return rows

    # --- writing -----------------------------------------------------------------------------

    def flush(self) -> int:
        """Write the buffered rows in one transaction; return how many were written."""
        rows = self._rows
        if not rows:
            return 0
        with self._pool.connection() as conn:
            if self._features is None:
                self._features = detect_features(conn)
            metric_ids = self._metric_ids_for(conn, set(map(_metric_of, rows)))
            try:
                late = _late_ranges(rows)
                if self._features.partitioned:
                    self._ensure_partitions(conn, rows)
                self._copy(conn, rows, metric_ids, late)
            except psycopg.errors.CheckViolation:
                if not self._features.partitioned:
                    raise
                # "no partition found for row": a partition this writer made was dropped
                # since (retention), and old data arrived for it. Make it again, once.
                self._days_ready.clear()
                self._ensure_partitions(conn, rows)
                self._copy(conn, rows, metric_ids, late)
            except (TypeError, ValueError) as error:
                raise ValueError(
                    f"a sample could not be encoded: {error}"
                    " (times must be timezone-aware datetimes, values numbers)"
                ) from error
        self._rows = []
        self.rows_written += len(rows)
        return len(rows)

    @staticmethod
    def _copy(conn: psycopg.Connection, rows: list[Sample], metric_ids: dict[str, int],
              late: list[tuple[datetime, datetime]]) -> None:
        with conn.transaction(), conn.cursor() as cursor:
            with cursor.copy(COPY_SAMPLES) as copy:
                copy.set_types(SAMPLE_TYPES)
                write = copy.write_row
                for time, object_id, metric, value in rows:
                    write((time, object_id, metric_ids[metric], value))
            if late:
                # in the batch's transaction: its samples and the note that their buckets
                # need rebuilding are stored together or not at all
                cursor.executemany(
                    "INSERT INTO rollup_pending (from_ts, to_ts) VALUES (%s, %s)", late)

    def metric_id(self, name: str) -> int:
        """The id of metric `name`, created if it is new."""
        if name not in self._metric_ids:
            with self._pool.connection() as conn:
                self._metric_ids_for(conn, {name})
        return self._metric_ids[name]

    def _metric_ids_for(self, conn: psycopg.Connection, names: set[str]) -> dict[str, int]:
        unknown = [name for name in names if name not in self._metric_ids]
        if unknown:
            for name in unknown:
                if not isinstance(name, str) or not name:
                    raise ValueError(f"metric name must be a non-empty string, not {name!r}")
            self._metric_ids.update(ensure_metrics(conn, unknown))
        return self._metric_ids

    def _ensure_partitions(self, conn: psycopg.Connection, rows: list[Sample]) -> None:
        first = min(map(_time_of, rows)).astimezone(UTC).date()
        last = max(map(_time_of, rows)).astimezone(UTC).date()
        if (last - first).days <= CONTIGUOUS_DAYS_MAX:
            days = {first + timedelta(days=n) for n in range((last - first).days + 1)}
        else:
            days = {time.astimezone(UTC).date() for time in map(_time_of, rows)}
        missing = sorted(days - self._days_ready)
        if not missing:
            return
        with conn.transaction():
            for start, end in _runs(missing):
                conn.execute(
                    "SELECT keyline_ensure_sample_partitions(%s, %s)",
                    [_utc_midnight(start), _utc_midnight(end)],
                )
        self._days_ready.update(missing)

    # --- context manager ---------------------------------------------------------------------

    def __enter__(self) -> SampleWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.flush()


def _late_ranges(rows: list[Sample]) -> list[tuple[datetime, datetime]]:
    """The [start, end) ranges of whole UTC hours holding the batch's samples older than
    LATE_AFTER, consecutive hours joined: a replay of three days is one range, and a
    device's wrong clock a year back adds an hour, not the year in between."""
    cutoff = datetime.now(UTC) - LATE_AFTER
    if min(map(_time_of, rows)) >= cutoff:
        return []
    hours = sorted({time.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
                    for time in map(_time_of, rows) if time < cutoff})
    ranges: list[tuple[datetime, datetime]] = []
    for hour in hours:
        if ranges and ranges[-1][1] == hour:
            ranges[-1] = (ranges[-1][0], hour + timedelta(hours=1))
        else:
            ranges.append((hour, hour + timedelta(hours=1)))
    return ranges


def _utc_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _runs(days: list[date]) -> list[tuple[date, date]]:
    """Sorted days as runs of consecutive days: [(first, last), ...]."""
    runs: list[tuple[date, date]] = []
    for day in days:
        if runs and day - runs[-1][1] == timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def ensure_metrics(conn: psycopg.Connection, names: Iterable[str]) -> dict[str, int]:
    """Ids of the metrics `names`, creating the missing ones (unit and description empty)."""
    names = sorted(set(names))
    with conn.transaction():
        conn.execute(
            "INSERT INTO metrics (name) SELECT unnest(%s::text[]) ON CONFLICT (name) DO NOTHING",
            [names],
        )
        rows = conn.execute("SELECT name, id FROM metrics WHERE name = ANY(%s)",
                            [names]).fetchall()
    return dict(rows)


def read_samples(
    conn: psycopg.Connection, object_id: int, metric: str, start: datetime, end: datetime
) -> list[tuple[datetime, float]]:
    """The (time, value) samples of one series with start <= time < end, oldest first."""
    return conn.execute(
        """SELECT s.time, s.value
             FROM samples s JOIN metrics m ON m.id = s.metric_id
            WHERE m.name = %s AND s.object_id = %s AND s.time >= %s AND s.time < %s
            ORDER BY s.time""",
        [metric, object_id, start, end],
    ).fetchall()


# --- rollups: resolutions, refresh, retention -----------------------------------------------


@dataclass(frozen=True)
class Resolution:
    """Where a time range's figures are read: `table` (raw samples or a rollup) and the
    length of its buckets in seconds (0 for raw samples: one row per poll)."""

    table: str
    bucket_s: int


RAW = Resolution("samples", 0)
FIVE_MINUTES = Resolution("samples_5min", 300)
HOUR = Resolution("samples_hour", 3600)
DAY = Resolution("samples_day", 86_400)
ROLLUPS = (FIVE_MINUTES, HOUR, DAY)  # finest first: each is built from the one before
RESOLUTIONS = (RAW, *ROLLUPS)


class RetentionSettings(Protocol):
    """How many days each resolution is kept: config.settings.StoreSettings, or the
    Retention recorded in the store (stored_retention)."""

    @property
    def raw_retention_days(self) -> int: ...
    @property
    def rollup_5min_retention_days(self) -> int: ...
    @property
    def rollup_hour_retention_days(self) -> int: ...
    @property
    def rollup_day_retention_days(self) -> int: ...


@dataclass(frozen=True)
class Retention:
    """The retention applied to each resolution, in days (see RetentionSettings)."""

    raw_retention_days: int
    rollup_5min_retention_days: int
    rollup_hour_retention_days: int
    rollup_day_retention_days: int


RETENTION_FIELDS = {RAW.table: "raw_retention_days",
                    FIVE_MINUTES.table: "rollup_5min_retention_days",
                    HOUR.table: "rollup_hour_retention_days",
                    DAY.table: "rollup_day_retention_days"}


def retention_days(retention: RetentionSettings, resolution: Resolution) -> int:
    """How many days `retention` keeps `resolution`."""
    return int(getattr(retention, RETENTION_FIELDS[resolution.table]))


def check_retention(retention: RetentionSettings) -> None:
    """Raise ValueError unless every resolution is kept at least a day, and each at least as
    long as the finer one it is built from (a rollup rebuilt where its source is gone would
    be emptied)."""
    kept = [(resolution, retention_days(retention, resolution)) for resolution in RESOLUTIONS]
    for resolution, days in kept:
        if days < 1:
            raise ValueError(f"{RETENTION_FIELDS[resolution.table]} must be at least 1 day")
    for (finer, finer_days), (coarser, coarser_days) in pairwise(kept):
        if coarser_days < finer_days:
            raise ValueError(
                f"{RETENTION_FIELDS[coarser.table]} ({coarser_days}) must be at least"
                f" {RETENTION_FIELDS[finer.table]} ({finer_days}): {coarser.table} is built"
                f" from {finer.table}")


def stored_retention(conn: psycopg.Connection) -> Retention:
    """The retention last applied to the store (store_policies, seeded by migration 0019
    with the settings' defaults): how far back each resolution really goes."""
    recorded = dict(conn.execute(
        "SELECT name, value FROM store_policies WHERE name LIKE 'retention:%'").fetchall())
    return Retention(**{field: int(recorded[f"retention:{table}"])
                        for table, field in RETENTION_FIELDS.items()})


def resolution_for(start: datetime, end: datetime, *, now: datetime,
                   retention: RetentionSettings, points: int = 300,
                   coarsest_s: int | None = None) -> Resolution:
    """The resolution to read [start, end) from: the coarsest that still gives at least
    `points` buckets over the range and still holds `start` (kept for long enough before
    `now`); of those holding `start` but too coarse for `points`, the finest; when none
    holds `start` any more, the longest kept. `coarsest_s` caps the bucket (an hourly
    report can use nothing coarser than hours). Raw samples always count as enough points:
    nothing is finer."""
    if end <= start:
        raise ValueError(f"the range ends ({end.isoformat()}) before it starts"
                         f" ({start.isoformat()})")
    usable = [r for r in RESOLUTIONS if coarsest_s is None or r.bucket_s <= coarsest_s]
    holding = [r for r in usable
               if start >= now - timedelta(days=retention_days(retention, r))]
    if not holding:
        return max(usable, key=lambda r: retention_days(retention, r))
    span_s = (end - start).total_seconds()
    enough = [r for r in holding if r.bucket_s == 0 or span_s / r.bucket_s >= points]
    return enough[-1] if enough else holding[0]


def series_source(resolution: Resolution) -> sql.Composable:
    """A FROM item with the rollups' columns (bucket, object_id, metric_id, avg_value,
    min_value, max_value, sample_count) over `resolution`; raw samples read as buckets of
    one sample each, so one query serves every resolution."""
    if resolution == RAW:
        return sql.SQL(
            "(SELECT time AS bucket, object_id, metric_id, value AS avg_value,"
            " value AS min_value, value AS max_value, 1::bigint AS sample_count"
            " FROM samples)")
    if resolution not in ROLLUPS:
        raise ValueError(f"no such resolution: {resolution}")
    return sql.Identifier(resolution.table)


def _floor(moment: datetime, bucket_s: int) -> datetime:
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    return epoch + timedelta(seconds=(moment - epoch).total_seconds() // bucket_s * bucket_s)


def _ceil(moment: datetime, bucket_s: int) -> datetime:
    floor = _floor(moment, bucket_s)
    return floor if floor == moment else floor + timedelta(seconds=bucket_s)


def _continuous(conn: psycopg.Connection) -> dict[str, bool]:
    """Which rollups are continuous aggregates (views) rather than tables."""
    rows = conn.execute(
        "SELECT c.relname, c.relkind = 'v' FROM pg_class c"
        " WHERE c.oid = ANY(ARRAY[%s, %s, %s]::regclass[])",
        [r.table for r in ROLLUPS]).fetchall()
    return dict(rows)


def refresh_rollup_range(pool: ConnectionPool, start: datetime, end: datetime) -> None:
    """Rebuild every rollup's buckets overlapping [start, end) from the level below: a
    continuous aggregate by refresh_continuous_aggregate over whole buckets, a table by its
    keyline_refresh_samples_* function; finest first, each level from the one just
    rebuilt."""
    with pool.connection() as conn:
        _refresh_range(conn, _continuous(conn), start, end)


def _refresh_range(conn: psycopg.Connection, continuous: dict[str, bool], start: datetime,
                   end: datetime, rollups: Sequence[Resolution] = ROLLUPS) -> None:
    for rollup in rollups:
        bucket_from, bucket_to = _floor(start, rollup.bucket_s), _ceil(end, rollup.bucket_s)
        if bucket_to == bucket_from:
            bucket_to += timedelta(seconds=rollup.bucket_s)
        if continuous.get(rollup.table):
            # A continuous aggregate's refresh cannot run inside a transaction block.
            conn.commit()
            conn.autocommit = True
            try:
                conn.execute(
                    sql.SQL("CALL refresh_continuous_aggregate({}, %s, %s)").format(
                        sql.Literal(rollup.table)), [bucket_from, bucket_to])
            finally:
                conn.autocommit = False
        else:
            with conn.transaction():
                conn.execute(sql.SQL("SELECT {}(%s, %s)").format(
                    sql.Identifier(f"keyline_refresh_{rollup.table}")),
                    [bucket_from, bucket_to])


def refresh_rollups(pool: ConnectionPool, now: datetime) -> int:
    """The rollups' refresh job (every 5 minutes): rebuild the buckets of the late batches
    recorded in rollup_pending, and, for rollups that are tables, everything since the
    last run (5 minutes of overlap; continuous aggregates have their own policies for
    that). Ranges older than the raw samples' retention are skipped: their samples are
    gone, and a rebuild would empty those buckets (likewise for a rebuild from the
    5-minute rollup, migration 0019's history). Returns how many ranges were rebuilt."""
    with pool.connection() as conn:
        with conn.transaction():
            continuous = _continuous(conn)
            retention = stored_retention(conn)
            pending = conn.execute(
                "SELECT id, from_ts, to_ts, rebuild_from FROM rollup_pending ORDER BY id"
            ).fetchall()
            last = conn.execute(
                "SELECT value FROM store_policies WHERE name = 'refresh:rollups_to'").fetchone()
        history = [(first, end) for _id, first, end, source in pending
                   if source == FIVE_MINUTES.table]
        kept_5min = _ceil(now - timedelta(days=retention.rollup_5min_retention_days),
                          DAY.bucket_s)
        for first, end in _merged([(max(first, kept_5min), end) for first, end in history
                                   if end > kept_5min]):
            _refresh_range(conn, continuous, first, end, ROLLUPS[1:])
        # whole UTC days after the cutoff: daily partitions and chunks go a day at a time
        oldest = _ceil(now - timedelta(days=retention.raw_retention_days), DAY.bucket_s)
        ranges = [(first, end) for _id, first, end, source in pending if source == RAW.table]
        if not all(continuous.get(r.table) for r in ROLLUPS):
            since = datetime.fromisoformat(last[0]) if last else now - 3 * REFRESH_OVERLAP
            ranges.append((min(since, now) - REFRESH_OVERLAP, now))
        skipped = [r for r in ranges if r[1] <= oldest]
        if skipped:
            log.warning("rollups: %d late range(s) older than the raw samples' retention"
                        " (%d days) skipped, from %s", len(skipped),
                        retention.raw_retention_days, min(r[0] for r in skipped).isoformat())
        merged = _merged([(max(first, oldest), end) for first, end in ranges if end > oldest])
        for first, end in merged:
            _refresh_range(conn, continuous, first, end)
        with conn.transaction():
            conn.execute("DELETE FROM rollup_pending WHERE id = ANY(%s)",
                         [[row[0] for row in pending]])
            conn.execute(
                """INSERT INTO store_policies (name, value) VALUES ('refresh:rollups_to', %s)
                   ON CONFLICT (name) DO UPDATE SET value = excluded.value,
                                                    applied_at = now()""",
                [now.isoformat()])
    if pending:
        log.info("rollups: rebuilt the buckets of %d late batch(es)", len(pending))
    return len(merged)


def _merged(ranges: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Overlapping or touching [start, end) ranges joined, sorted."""
    merged: list[tuple[datetime, datetime]] = []
    for first, end in sorted(ranges):
        if merged and first <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((first, end))
    return merged


def apply_retention(pool: ConnectionPool, retention: RetentionSettings) -> int:
    """Drop what is older than each resolution's retention: raw samples a whole chunk or
    daily partition at a time (dropping is instant, unlike DELETE), rollups by chunk
    (continuous aggregates) or by DELETE (tables). TimescaleDB retention policies are
    created, or replaced only when the days they keep differ from the setting; the days
    applied are recorded in store_policies (stored_retention). Returns how many chunks or
    partitions of raw samples went."""
    check_retention(retention)
    with pool.connection() as conn:
        features = detect_features(conn)
        with conn.transaction():
            recorded = dict(conn.execute(
                "SELECT name, value FROM store_policies WHERE name LIKE 'retention:%'"
            ).fetchall())
        continuous = _continuous(conn)
        raw_days = retention_days(retention, RAW)
        with conn.transaction():
            if features.hypertable:
                if features.retention and _policy_keeps(conn, RAW.table) != raw_days:
                    _replace_retention_policy(conn, RAW.table, raw_days)
                    conn.execute(
                        "UPDATE store_features SET detail = %s WHERE feature = 'retention'",
                        [f"raw samples kept {raw_days} days"])
                dropped = _drop_chunks(conn, RAW.table, raw_days)
            else:
                dropped = _drop_partitions(conn, raw_days)
            _record_retention(conn, recorded, RAW.table, raw_days)
        for rollup in ROLLUPS:
            days = retention_days(retention, rollup)
            with conn.transaction():
                if continuous.get(rollup.table):
                    if _policy_keeps(conn, rollup.table) != days:
                        _replace_retention_policy(conn, rollup.table, days)
                    gone = _drop_chunks(conn, rollup.table, days)
                    what = "chunk(s)"
                else:
                    gone = conn.execute(
                        sql.SQL("DELETE FROM {} WHERE bucket < now() - %s::interval").format(
                            sql.Identifier(rollup.table)), [timedelta(days=days)]).rowcount
                    what = "row(s)"
                _record_retention(conn, recorded, rollup.table, days)
            if gone:
                log.info("retention: dropped %d %s of %s older than %d days", gone, what,
                         rollup.table, days)
    return dropped


def _record_retention(conn: psycopg.Connection, recorded: dict[str, str], table: str,
                      days: int) -> None:
    if recorded.get(f"retention:{table}") == str(days):
        return
    conn.execute(
        """INSERT INTO store_policies (name, value) VALUES (%s, %s)
           ON CONFLICT (name) DO UPDATE SET value = excluded.value, applied_at = now()""",
        [f"retention:{table}", str(days)])
    log.info("retention: %s now kept %d days", table, days)


def _policy_keeps(conn: psycopg.Connection, table: str) -> int | None:
    """The days a TimescaleDB retention policy on `table` (a hypertable or a continuous
    aggregate) keeps; None when it has none (or one not in whole days)."""
    row = conn.execute(
        """SELECT j.config ->> 'drop_after' FROM timescaledb_information.jobs j
            WHERE j.proc_name = 'policy_retention'
              AND j.hypertable_name IN (  -- a continuous aggregate's: by view or by table
                  %(table)s, (SELECT materialization_hypertable_name
                                FROM timescaledb_information.continuous_aggregates
                               WHERE view_name = %(table)s))""", {"table": table}).fetchone()
    text = row[0] if row else None
    if text is None or not text.endswith(" days") or not text[:-5].isdigit():
        return None
    return int(text[:-5])


def _replace_retention_policy(conn: psycopg.Connection, table: str, days: int) -> None:
    conn.execute("SELECT remove_retention_policy(%s, if_exists => true)", [table])
    conn.execute("SELECT add_retention_policy(%s, %s::interval)",
                 [table, timedelta(days=days)])


def _drop_chunks(conn: psycopg.Connection, table: str, days: int) -> int:
    dropped = conn.execute("SELECT drop_chunks(%s, older_than => %s::interval)",
                           [table, timedelta(days=days)]).fetchall()
    if table == RAW.table:
        log.info("retention: dropped %d chunk(s) of samples older than %d days",
                 len(dropped), days)
    return len(dropped)


def _drop_partitions(conn: psycopg.Connection, raw_days: int) -> int:
    """Drop the daily partitions that end at or before now - raw_days (inside the caller's
    transaction)."""
    cutoff = datetime.now(UTC) - timedelta(days=raw_days)
    names = [row[0] for row in conn.execute(
        r"""SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'samples'::regclass AND c.relname ~ '^samples_p\d{8}$'
             ORDER BY c.relname""").fetchall()]
    old = [name for name in names
           if _utc_midnight(_partition_day(name)) + timedelta(days=1) <= cutoff]
    for name in old:
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
    log.info("retention: dropped %d daily partition(s) of samples older than %d days",
             len(old), raw_days)
    return len(old)


def _partition_day(name: str) -> date:
    digits = name.removeprefix("samples_p")
    return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
