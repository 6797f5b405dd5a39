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
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter
from types import TracebackType

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
                if self._features.partitioned:
                    self._ensure_partitions(conn, rows)
                self._copy(conn, rows, metric_ids)
            except psycopg.errors.CheckViolation:
                if not self._features.partitioned:
                    raise
                # "no partition found for row": a partition this writer made was dropped
                # since (retention), and old data arrived for it. Make it again, once.
                self._days_ready.clear()
                self._ensure_partitions(conn, rows)
                self._copy(conn, rows, metric_ids)
            except (TypeError, ValueError) as error:
                raise ValueError(
                    f"a sample could not be encoded: {error}"
                    " (times must be timezone-aware datetimes, values numbers)"
                ) from error
        self._rows = []
        self.rows_written += len(rows)
        return len(rows)

    @staticmethod
    def _copy(conn: psycopg.Connection, rows: list[Sample], metric_ids: dict[str, int]) -> None:
        with conn.transaction(), conn.cursor() as cursor, cursor.copy(COPY_SAMPLES) as copy:
            copy.set_types(SAMPLE_TYPES)
            write = copy.write_row
            for time, object_id, metric, value in rows:
                write((time, object_id, metric_ids[metric], value))

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


def refresh_samples_5min(pool: ConnectionPool, start: datetime, end: datetime) -> None:
    """Bring the 5-minute rollup up to date over [start, end): refresh the continuous
    aggregate, or recompute the plain rollup table (keyline_refresh_samples_5min)."""
    with pool.connection() as conn:
        features = detect_features(conn)
        if features.continuous_aggregates:
            # A continuous aggregate refresh cannot run inside a transaction block.
            conn.autocommit = True
            try:
                conn.execute("CALL refresh_continuous_aggregate('samples_5min', %s, %s)",
                             [start, end])
            finally:
                conn.autocommit = False
        else:
            conn.execute("SELECT keyline_refresh_samples_5min(%s, %s)", [start, end])


def apply_retention(pool: ConnectionPool, raw_days: int) -> int:
    """Drop raw samples older than `raw_days` days, a whole chunk or daily partition at a
    time (dropping is instant, unlike DELETE); return how many chunks or partitions went.
    With a TimescaleDB retention policy, the policy is also set to `raw_days`."""
    if raw_days < 1:
        raise ValueError("raw_days must be at least 1")
    with pool.connection() as conn:
        features = detect_features(conn)
        if features.hypertable:
            return _drop_chunks(conn, features, raw_days)
        return _drop_partitions(conn, raw_days)


def _drop_chunks(conn: psycopg.Connection, features: StoreFeatures, raw_days: int) -> int:
    keep = timedelta(days=raw_days)
    with conn.transaction():
        if features.retention:
            conn.execute("SELECT remove_retention_policy('samples', if_exists => true)")
            conn.execute("SELECT add_retention_policy('samples', %s::interval)", [keep])
            conn.execute(
                "UPDATE store_features SET detail = %s WHERE feature = 'retention'",
                [f"raw samples kept {raw_days} days"],
            )
        dropped = conn.execute("SELECT drop_chunks('samples', older_than => %s::interval)",
                               [keep]).fetchall()
    log.info("retention: dropped %d chunk(s) of samples older than %d days",
             len(dropped), raw_days)
    return len(dropped)


def _drop_partitions(conn: psycopg.Connection, raw_days: int) -> int:
    """Drop the daily partitions that end at or before now - raw_days."""
    cutoff = datetime.now(UTC) - timedelta(days=raw_days)
    with conn.transaction():
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

