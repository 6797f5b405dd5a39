"""No loss while the database is away: write through, spool to disk, replay in order.

The collectors never stop: a poll cycle's samples and observations exist whether or not
PostgreSQL is there to take them (restarting for an upgrade, a failover, a full disk). A
`SpoolingSink` stands between them and the store::

    sink = SpoolingSink(database.pool, Path("/var/lib/keyline/spool"))
    sink.write_samples(samples)             # collectors.model.Sample
    sink.write_observations(observations)   # collectors.model.Observation
    sink.replay()                           # also call it now and then (a timer): see below

Each call is one *batch*. While the store accepts writes, a batch goes straight in (samples
with `SampleWriter`'s binary COPY, observations with `record_observations`, each batch one
transaction). When the store refuses (the pool has no connection within
`store_timeout_s`, the server closed the connection: psycopg.OperationalError,
psycopg_pool.PoolTimeout), the batch is appended to the *spool* instead, and from then on
every batch goes to the spool too, behind the ones already there: the store must receive
batches in the order they were made (an observation "port down" must not overtake the
"port up" spooled before it), so new data never jumps the queue.

While it is away the store is tried again after `retry_interval_s`, doubling after each
failure up to `max_retry_interval_s` (a dead server must not cost every write a connection
timeout of `store_timeout_s`); when it answers, the spool is *replayed*: oldest batch
first, samples and observations interleaved as they came, each batch removed from the spool
once it is committed. A batch is committed then marked done, so a crash between the two
writes that one batch twice on replay (at-least-once); a batch is never lost. A spooled batch
that can never be stored (an unreadable line, data the database refuses) is moved to
`rejected.jsonl` with an ERROR log rather than blocking everything behind it. Replay happens
on the next write, or on `replay()`, which a timer should call so a quiet collector empties
its spool too.

On disk the spool is a folder of *segments*, `000000000001.jsonl`, `...002.jsonl`: append-only
files of JSON lines, one line per batch ({"kind": "samples"|"observations", "rows": [...]}),
each append flushed and fsynced before the write call returns. A new segment starts when the
last one passes `segment_bytes`; a segment is deleted once replayed. `cursor` records how far
replay got into the oldest segment (segment name and byte offset, fsynced after each batch).
A half-written last line (the process died mid-append) is cut off at start-up. Because it is
all on disk, a new process replays what the previous one spooled.

The spool is bounded by `max_bytes` (256 MiB by default: about 2.5 million samples). A batch
that would take it past the bound is refused: counted in `dropped_samples` /
`dropped_observations`, and logged at ERROR at most once a minute, saying how much was dropped
since. It never grows past the bound and never deletes what it holds to make room: the oldest
data is what an SLA report needs most.

Calls are serialised by a lock and block (database writes, fsync): from asyncio code, run
them in a thread (`await asyncio.to_thread(sink.write_samples, samples)`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from collectors.model import Observation, Sample
from store.observations import record_observations
from store.timeseries import SampleWriter

log = logging.getLogger(__name__)

MIB = 1 << 20
DEFAULT_MAX_BYTES = 256 * MIB
DEFAULT_SEGMENT_BYTES = 16 * MIB
SEGMENT_SUFFIX = ".jsonl"
CURSOR_NAME = "cursor"
ERROR_LOG_INTERVAL_S = 60.0

# What "the store refuses" means: the database is away or too busy to hand out a connection.
# Anything else (a malformed sample, a schema problem) is a bug to raise, not to spool: it
# would fail again on replay and block the spool.
STORE_UNAVAILABLE = (psycopg.OperationalError, PoolTimeout)
# A spooled batch that can never be stored (an unreadable line, data the database refuses) is
# set aside in REJECTED_NAME, not retried for ever in front of everything spooled after it.
BATCH_REJECTED = (ValueError, KeyError, TypeError, psycopg.DataError, psycopg.IntegrityError)
REJECTED_NAME = "rejected.jsonl"


class Outcome(StrEnum):
    """What happened to a batch."""

    STORED = "stored"
    SPOOLED = "spooled"
    DROPPED = "dropped"  # spool full


# --- encoding ------------------------------------------------------------------------------


def encode_batch(kind: str, items: Sequence[Sample] | Sequence[Observation]) -> bytes:
    """One spool line (ending in a newline) for a batch of samples or observations."""
    if kind == "samples":
        rows: list[Any] = [[s.time.isoformat(), s.object_id, s.metric, s.value] for s in items]
    elif kind == "observations":
        rows = [[o.time.isoformat(), o.object_id, o.kind, o.old, o.new, o.source, o.detail]
                for o in items]
    else:
        raise ValueError(f"unknown batch kind {kind!r}")
    return json.dumps({"kind": kind, "rows": rows}, separators=(",", ":")).encode() + b"\n"


def decode_batch(line: bytes) -> tuple[str, list[Sample] | list[Observation]]:
    """The (kind, items) of one spool line."""
    record = json.loads(line)
    kind = record["kind"]
    if kind == "samples":
        return kind, [Sample(datetime.fromisoformat(t), o, m, v) for t, o, m, v in record["rows"]]
    if kind == "observations":
        return kind, [Observation(datetime.fromisoformat(t), o, k, old, new, src, detail)
                      for t, o, k, old, new, src, detail in record["rows"]]
    raise ValueError(f"unknown batch kind {kind!r} in the spool")


# --- the files ---------------------------------------------------------------------------------


@dataclass
class Cursor:
    """How far replay got: `offset` bytes into segment `segment` are done."""

    segment: str = ""
    offset: int = 0


class SpoolFiles:
    """The spool folder: ordered segments, appends with fsync, a cursor for replay."""

    def __init__(self, spool_dir: Path, segment_bytes: int = DEFAULT_SEGMENT_BYTES):
        self.dir = Path(spool_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.segments: list[Path] = sorted(
            path for path in self.dir.glob("*" + SEGMENT_SUFFIX) if path.stem.isdigit())
        self.cursor = self._read_cursor()
        # Segment numbers only grow, past the cursor's too: a cursor left naming a deleted
        # segment (crash between delete and cursor update) must never match a new one.
        numbers = [int(path.stem) for path in self.segments]
        if self.cursor.segment.removesuffix(SEGMENT_SUFFIX).isdigit():
            numbers.append(int(self.cursor.segment.removesuffix(SEGMENT_SUFFIX)))
        self._next_number = max(numbers, default=0) + 1
        if self.segments:
            _cut_partial_line(self.segments[-1])
        self.size_bytes = sum(path.stat().st_size for path in self.segments)

    @property
    def empty(self) -> bool:
        return not self.segments

    def append(self, line: bytes) -> None:
        """Append one batch line durably (flushed and fsynced)."""
        if not self.segments or self.segments[-1].stat().st_size >= self.segment_bytes:
            self._new_segment()
        with open(self.segments[-1], "ab") as file:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())
        self.size_bytes += len(line)

    def next_batch(self) -> tuple[bytes, int] | None:
        """The oldest line not yet replayed and the offset just after it; None when empty.
        Deletes segments that are fully replayed on the way."""
        while self.segments:
            head = self.segments[0]
            offset = self.cursor.offset if self.cursor.segment == head.name else 0
            with open(head, "rb") as file:
                file.seek(offset)
                line = file.readline()
            if line.endswith(b"\n"):
                return line, offset + len(line)
            self._drop_head()
        return None

    def mark_done(self, end_offset: int) -> None:
        """Record that the head segment is replayed up to `end_offset`."""
        self.cursor = Cursor(self.segments[0].name, end_offset)
        self._write_cursor()
        if end_offset >= self.segments[0].stat().st_size:
            self._drop_head()

    def _drop_head(self) -> None:
        head = self.segments.pop(0)
        self.size_bytes -= head.stat().st_size
        head.unlink()
        self.cursor = Cursor()
        self._write_cursor()

    def _new_segment(self) -> None:
        path = self.dir / f"{self._next_number:012d}{SEGMENT_SUFFIX}"
        self._next_number += 1
        path.touch()
        _fsync_dir(self.dir)
        self.segments.append(path)

    def _read_cursor(self) -> Cursor:
        try:
            name, offset = (self.dir / CURSOR_NAME).read_text().split()
            return Cursor("" if name == "-" else name, int(offset))
        except (FileNotFoundError, ValueError):
            return Cursor()

    def _write_cursor(self) -> None:
        temporary = self.dir / (CURSOR_NAME + ".tmp")
        with open(temporary, "w") as file:
            file.write(f"{self.cursor.segment or '-'} {self.cursor.offset}\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.dir / CURSOR_NAME)


def _cut_partial_line(path: Path) -> None:
    """Truncate `path` after its last newline (a crash can leave half a line)."""
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1
    if keep < len(data):
        log.warning("spool segment %s ends in a partial batch (%d bytes); cut off",
                    path.name, len(data) - keep)
        with open(path, "r+b") as file:
            file.truncate(keep)
            os.fsync(file.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- the sink ------------------------------------------------------------------------------


class _ShortWaitPool:
    """The pool as SampleWriter sees it, but waiting at most `timeout_s` for a connection."""

    def __init__(self, pool: ConnectionPool, timeout_s: float):
        self._pool = pool
        self._timeout_s = timeout_s

    def connection(self) -> AbstractContextManager[psycopg.Connection]:
        return self._pool.connection(timeout=self._timeout_s)


class SpoolingSink:
    """Writes samples and observations to the store, spooling them while it is away."""

    def __init__(
        self,
        pool: ConnectionPool,
        spool_dir: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        segment_bytes: int | None = None,
        store_timeout_s: float = 2.0,
        retry_interval_s: float = 1.0,
        max_retry_interval_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._pool = _ShortWaitPool(pool, store_timeout_s)
        # One write_samples call is one COPY transaction, however large: a batch half
        # written before a failure would be written twice after spooling.
        self._writer = SampleWriter(self._pool, batch_rows=2**62)  # type: ignore[arg-type]
        self.max_bytes = max_bytes
        self._files = SpoolFiles(spool_dir, segment_bytes or min(DEFAULT_SEGMENT_BYTES,
                                                                 max(max_bytes // 8, 1)))
        self.retry_interval_s = retry_interval_s
        self.max_retry_interval_s = max(max_retry_interval_s, retry_interval_s)
        self._clock = clock
        self._retry_at = 0.0  # clock time before which the store is not tried
        self._failures = 0  # consecutive failed attempts (for the backoff)
        self._lock = threading.Lock()
        self._last_error_log = -ERROR_LOG_INTERVAL_S
        self._dropped_since_log = 0
        self.dropped_samples = 0
        self.dropped_observations = 0
        self.spooled_batches = 0
        self.replayed_batches = 0
        self.rejected_batches = 0
        if not self._files.empty:
            log.info("spool %s holds %d bytes from before; replaying when the store answers",
                     self._files.dir, self._files.size_bytes)

    @property
    def spool_bytes(self) -> int:
        """Bytes the spool holds on disk (replayed parts of a segment included)."""
        return self._files.size_bytes

    @property
    def spooling(self) -> bool:
        """True while batches wait in the spool."""
        return not self._files.empty

    def write_samples(self, samples: Sequence[Sample]) -> Outcome:
        """Store `samples` (one transaction), or spool them; see the module docstring."""
        return self._write("samples", samples)

    def write_observations(self, observations: Sequence[Observation]) -> Outcome:
        """Store `observations` (one transaction, with their events), or spool them."""
        return self._write("observations", observations)

    def replay(self) -> int:
        """Replay spooled batches while the store takes them; return how many went in."""
        with self._lock:
            if self._files.empty or self._clock() < self._retry_at:
                return 0
            return self._replay()

    # --- internals ---------------------------------------------------------------------------

    def _write(self, kind: str, items: Sequence[Any]) -> Outcome:
        if not items:
            return Outcome.STORED
        with self._lock:
            if not self._files.empty and self._clock() >= self._retry_at:
                self._replay()
            if self._files.empty and self._clock() >= self._retry_at:
                try:
                    self._store(kind, items)
                except STORE_UNAVAILABLE as error:
                    self._store_failed(error)
                else:
                    self._failures = 0
                    return Outcome.STORED
            return self._spool(kind, items)

    def _store(self, kind: str, items: Sequence[Any]) -> None:
        if kind == "samples":
            self._writer.discard()
            self._writer.add_many([(s.time, s.object_id, s.metric, s.value) for s in items])
            try:
                self._writer.flush()
            finally:
                self._writer.discard()  # on failure the batch is spooled, not kept here
        else:
            with self._pool.connection() as conn:
                record_observations(conn, items)

    def _store_failed(self, error: Exception) -> None:
        self._failures += 1
        delay_s = min(self.retry_interval_s * 2 ** (self._failures - 1),
                      self.max_retry_interval_s)
        self._retry_at = self._clock() + delay_s
        log.warning("store unavailable (%s); spooling to %s, next try in %.1f s",
                    " ".join(str(error).split()) or type(error).__name__, self._files.dir,
                    delay_s)

    def _replay(self) -> int:
        replayed = 0
        while (batch := self._files.next_batch()) is not None:
            line, end_offset = batch
            try:
                kind, items = decode_batch(line)
                self._store(kind, items)
            except STORE_UNAVAILABLE as error:
                self._store_failed(error)
                break
            except BATCH_REJECTED as error:
                self._set_aside(line, error)
            else:
                replayed += 1
            self._failures = 0
            self._files.mark_done(end_offset)
        self.replayed_batches += replayed
        if replayed and self._files.empty:
            log.info("spool replayed (%d batches); writing through again", replayed)
        return replayed

    def _set_aside(self, line: bytes, error: Exception) -> None:
        """Move a batch that can never be stored (unreadable, refused by the database for its
        data) to `rejected.jsonl`, so it does not block the spool; loudly."""
        path = self._files.dir / REJECTED_NAME
        with open(path, "ab") as file:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())
        self.rejected_batches += 1
        log.error("a spooled batch cannot be stored (%s: %s); set aside in %s",
                  type(error).__name__, " ".join(str(error).split())[:200], path)

    def _spool(self, kind: str, items: Sequence[Any]) -> Outcome:
        line = encode_batch(kind, items)
        if self._files.size_bytes + len(line) > self.max_bytes:
            self._refuse(kind, len(items))
            return Outcome.DROPPED
        self._files.append(line)
        self.spooled_batches += 1
        return Outcome.SPOOLED

    def _refuse(self, kind: str, count: int) -> None:
        if kind == "samples":
            self.dropped_samples += count
        else:
            self.dropped_observations += count
        self._dropped_since_log += count
        now = self._clock()
        if now - self._last_error_log >= ERROR_LOG_INTERVAL_S:
            log.error(
                "spool %s is full (%d of %d bytes) and the store is still away: DROPPING"
                " data, %d items since the last message (%d samples, %d observations in all)",
                self._files.dir, self._files.size_bytes, self.max_bytes,
                self._dropped_since_log, self.dropped_samples, self.dropped_observations)
            self._last_error_log = now
            self._dropped_since_log = 0
