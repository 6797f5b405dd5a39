"""Nothing lost, whatever the store does: every batch to disk first, then to the store.

The collectors never stop: a poll cycle's samples and observations exist whether or not
PostgreSQL is there to take them (restarting for an upgrade, a failover, a full disk, a
server killed). So the spool is not a fallback but the first step of the write path. A
`SpooledStore` stands between the collectors and the store::

    spooled = SpooledStore(database.pool.conninfo, Path("/var/lib/keyline/spool"))
    spooled.start()
    spooled.write_samples(samples)             # collectors.model.Sample: returns at once
    spooled.write_observations(observations)   # collectors.model.Observation
    spooled.flush()                            # wait until all of it is on disk
    spooled.close()                            # on disk, whatever the store does

Two threads, each doing one thing. The *spool writer* takes the batches handed to it, in
order, and appends them to the spool folder, fsynced, before a `flush` waiting on them
returns; it never touches the database, so a store that hangs or is gone never holds up the
collectors (killed at any moment, the collector loses at most the batches of the last few
milliseconds not yet written). The *forwarder* moves spooled batches into the store, oldest
first, each in one transaction (samples with `SampleWriter`'s binary COPY, observations with
`record_observations` and their events, poll statuses and port matches with their upserts),
and marks each done once committed (never lost; a batch forwarded again after a crash
between its commit and the mark is found stored by its id, kept with it: exactly once). It
has a connection of its own, opened with a connect timeout of `store_timeout_s`, and while
the store is away tries again every `retry_interval_s` (never longer than that: the store
back means writing within seconds).
It says so once: a WARNING when the store goes away, an INFO summary when it returns (how
long, batches and rows spooled meanwhile, dropped, forwarded).

Two spools, because they are bounded differently. Observations (and the current-picture
batches: poll statuses, port matches) go to `observations/` and are never dropped: an alarm,
an outage interval, depends on each. Samples go to `samples/`, bounded by `max_bytes`; when
that is full, `when_full` says what gives: "drop_newest" (the default: the oldest data is
what an SLA report needs most) refuses the new batch, "drop_oldest" deletes the oldest
spooled segment of samples to make room. Whatever is dropped is counted per kind and per
device (through `device_of`), kept in `drops.json` in the spool folder (so a crash does not
lose the count), logged at ERROR at most once a minute, and written to the store
(`collection_drops`: device, kind, rows, and the time range of the data lost, which is
monitoring time the SLA figures count as unknown) as soon as it takes writes, exactly once
(each round of counts carries an id stored with it, as a batch does). The forwarder
takes observations first (alarms wait for them), then samples; each spool keeps its own
order, which is the order that matters (a port's "down" never overtakes its "up").

On disk a spool is a folder of *segments*, `000000000001.jsonl`, `...002.jsonl`:
append-only files of JSON lines, one line per batch ({"kind": ..., "rows": [...]}). A new
segment starts when the last one passes `segment_bytes` (the writer keeps it open, and a
flush costs one fsync a spool); a segment is deleted once forwarded and a newer one follows
it (or it passed `segment_bytes`): the last one, forwarded to its end, takes the next
batches. `cursor` records how far forwarding got into the oldest segment (segment name and
byte offset, fsynced once per forwarding round, not per batch: a batch forwarded again after
a crash before that write is found stored by its id, and skipped). A half-written last line
(the process died mid-append) is cut off at start-up; a new process forwards what the
previous one spooled. A spooled batch that can never be stored (an unreadable line, data the
database refuses) is moved to `rejected.jsonl` with an ERROR log rather than blocking
everything behind it.
"""


from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

import psycopg

from collectors.model import Observation, Sample
from store.collection import record_drops
from store.database import STORE_UNAVAILABLE
from store.observations import record_observations, record_poll_statuses, record_port_matches
from store.timeseries import SampleWriter

log = logging.getLogger(__name__)

MIB = 1 << 20
DEFAULT_MAX_BYTES = 256 * MIB
DEFAULT_SEGMENT_BYTES = 16 * MIB
SEGMENT_SUFFIX = ".jsonl"
CURSOR_NAME = "cursor"
ERROR_LOG_INTERVAL_S = 60.0
BATCHES_AT_HAND = 4  # samples batches kept decoded for the forwarder (SpooledStore._write)

KINDS = ("samples", "observations", "poll_statuses", "port_matches")
# the kinds that go to the observation spool, never dropped
KEPT_KINDS = ("observations", "poll_statuses", "port_matches")
WHEN_FULL = ("drop_newest", "drop_oldest")
DROPS_NAME = "drops.json"

# What "the store refuses" is store.database.STORE_UNAVAILABLE: anything else (a malformed
# sample) is a bug to raise, not to spool: it would fail again on replay and block the spool.
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


def encode_batch(kind: str, items: Sequence[Any], batch_id: str | None = None) -> bytes:
    """One spool line (ending in a newline) for a batch of one kind: samples, observations,
    poll statuses ((device_id, status, reason, polled_at)) or port matches
    (store.observations.PortMatchRow); `batch_id` a new one unless given."""
    batch_id = batch_id or uuid.uuid4().hex
    if kind == "samples":
        return _encode_samples(items, batch_id)
    if kind == "observations":
        rows = [[o.time.isoformat(), o.object_id, o.kind, o.old, o.new, o.source, o.detail]
                for o in items]
    elif kind == "poll_statuses":
        rows = [[device_id, status, reason, at.isoformat()]
                for device_id, status, reason, at in items]
    elif kind == "port_matches":
        rows = [[m.port_id, m.device_id, m.if_index, m.matched_by, m.problem, m.message,
                 m.seen_at.isoformat()] for m in items]
    else:
        raise ValueError(f"unknown batch kind {kind!r}")
    record = {"id": batch_id, "kind": kind, "rows": rows}
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def _encode_samples(samples: Sequence[Sample], batch_id: str) -> bytes:
    """A samples line: a batch's samples share a few times (one per poll) and a dozen metric
    names, so each is written once ("times", "metrics") and a row names them by position:
    [time index, object id, metric index, value]. Half the bytes of naming them in every
    row, and half the CPU to write (every sample of every poll comes through here)."""
    times: dict[datetime, int] = {}
    metrics: dict[str, int] = {}
    rows = []
    for sample in samples:
        time_index = times.get(sample.time)
        if time_index is None:
            time_index = times[sample.time] = len(times)
        metric_index = metrics.get(sample.metric)
        if metric_index is None:
            metric_index = metrics[sample.metric] = len(metrics)
        rows.append((time_index, sample.object_id, metric_index, sample.value))
    record = {"id": batch_id, "kind": "samples",
              "times": [time.isoformat() for time in times], "metrics": list(metrics),
              "rows": rows}
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def decode_batch(line: bytes) -> tuple[str, list[Any]]:
    """The (kind, items) of one spool line."""
    _, kind, items = decode_record(line)
    return kind, items


def decode_record(line: bytes) -> tuple[str | None, str, list[Any]]:
    """The (batch id, kind, items) of one spool line (no id: a line of an older spool)."""
    record = json.loads(line)
    batch_id = record.get("id")
    return batch_id, *_items(record)


def _items(record: dict[str, Any]) -> tuple[str, list[Any]]:
    from store.observations import PortMatchRow

    kind = record["kind"]
    if kind == "samples":
        if "times" in record:  # see _encode_samples
            times = [datetime.fromisoformat(text) for text in record["times"]]
            metrics = record["metrics"]
            return kind, [Sample(times[t], o, metrics[m], v) for t, o, m, v in record["rows"]]
        # a line of an older spool: each row names its time and metric
        texts = {text: datetime.fromisoformat(text) for text in {row[0] for row in record["rows"]}}
        return kind, [Sample(texts[t], o, m, v) for t, o, m, v in record["rows"]]
    if kind == "observations":
        return kind, [Observation(datetime.fromisoformat(t), o, k, old, new, src, detail)
                      for t, o, k, old, new, src, detail in record["rows"]]
    if kind == "poll_statuses":
        return kind, [(device_id, status, reason, datetime.fromisoformat(at))
                      for device_id, status, reason, at in record["rows"]]
    if kind == "port_matches":
        return kind, [PortMatchRow(p, d, i, by, problem, message, datetime.fromisoformat(at))
                      for p, d, i, by, problem, message, at in record["rows"]]
    raise ValueError(f"unknown batch kind {kind!r} in the spool")


# --- the files ---------------------------------------------------------------------------------


@dataclass
class Cursor:
    """How far replay got: `offset` bytes into segment `segment` are done."""

    segment: str = ""
    offset: int = 0


class SpoolFiles:
    """The spool folder: ordered segments, appends with fsync, a cursor for replay.

    The writer appends to the last segment, kept open, until it passes `segment_bytes`; the
    forwarder reads from the head. A segment goes once fully forwarded and either a newer one
    exists or it passed `segment_bytes`: a last segment forwarded to its end stays, the
    cursor at its end, and the next batch goes into it (no file made and deleted a second).
    `mark_done` moves the cursor in memory; `save_cursor` writes it (once per forwarding
    round: a batch replayed after a crash before that is skipped by its id, see
    SpooledStore._store)."""

    def __init__(self, spool_dir: Path, segment_bytes: int = DEFAULT_SEGMENT_BYTES):
        self.dir = Path(spool_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.reading: str | None = None  # the segment next_batch handed out a line of
        self.segments: list[Path] = sorted(
            path for path in self.dir.glob("*" + SEGMENT_SUFFIX) if path.stem.isdigit())
        self.cursor = self._read_cursor()
        self._saved_cursor = self.cursor  # what the cursor file says
        # Segment numbers only grow, past the cursor's too: a cursor left naming a deleted
        # segment (deleted after the cursor was last written) must never match a new one.
        # So a deleted head needs no cursor write: naming no segment there is, the cursor
        # says "from the start of the oldest", as Cursor() does.
        numbers = [int(path.stem) for path in self.segments]
        if self.cursor.segment.removesuffix(SEGMENT_SUFFIX).isdigit():
            numbers.append(int(self.cursor.segment.removesuffix(SEGMENT_SUFFIX)))
        self._next_number = max(numbers, default=0) + 1
        if self.segments:
            _cut_partial_line(self.segments[-1])
        self._sizes = {path.name: path.stat().st_size for path in self.segments}
        self.size_bytes = sum(self._sizes.values())  # on disk: what max_bytes bounds
        self._appending: BinaryIO | None = None  # the last segment, open for appends

    @property
    def pending_bytes(self) -> int:
        """Bytes spooled and not yet forwarded."""
        return self.size_bytes - self._done_in_head()

    @property
    def empty(self) -> bool:
        """Nothing left to forward."""
        return self.pending_bytes <= 0

    def append(self, line: bytes) -> None:
        """Append one batch line durably (flushed and fsynced)."""
        self.append_many([line])

    def append_many(self, lines: Sequence[bytes]) -> None:
        """Append batch lines in order, durably: each segment written to is fsynced once
        before this returns (one fsync for many batches: what keeps a burst cheap)."""
        try:
            written = False
            for line in lines:
                if (not self.segments
                        or self._sizes[self.segments[-1].name] >= self.segment_bytes):
                    if written:
                        self._sync()
                        written = False
                    self._new_segment()
                file = self._append_file()
                file.write(line)
                self._sizes[self.segments[-1].name] += len(line)
                self.size_bytes += len(line)
                written = True
            if written:
                self._sync()
        except BaseException:
            self._recover()  # nothing half-written left for the next append to follow
            raise

    def close(self) -> None:
        """Close the segment kept open for appends (reopened by the next append)."""
        if self._appending is not None:
            with suppress(OSError):
                self._appending.close()
            self._appending = None

    def drop_oldest_segment(self) -> bytes | None:
        """Delete the oldest segment not being read (the head, when another follows it) and
        return what it held beyond the cursor, for counting; None when there is none to
        drop."""
        candidates = [p for p in self.segments[:-1] if p.name != self.reading]
        if not candidates:
            return None
        oldest = candidates[0]
        offset = self.cursor.offset if self.cursor.segment == oldest.name else 0
        with open(oldest, "rb") as file:
            file.seek(offset)
            data = file.read()
        self._delete(oldest)
        return data

    def next_batch(self) -> tuple[bytes, int] | None:
        """The oldest line not yet replayed and the offset just after it; None when there is
        none. Until `mark_done`, its segment is being read and `drop_oldest_segment` leaves
        it alone."""
        self._drop_forwarded()
        if not self.segments:
            return None
        head = self.segments[0]
        offset = self.cursor.offset if self.cursor.segment == head.name else 0
        if offset >= self._sizes[head.name]:
            return None  # forwarded to the end of the last segment: nothing to read
        with open(head, "rb") as file:
            file.seek(offset)
            line = file.readline()
        if not line.endswith(b"\n") and head == self.segments[-1]:
            return None  # cannot be: appends are whole lines, under the same lock
        # (an older segment ending in half a line: handed out, to be set aside as unreadable)
        self.reading = head.name
        return line, offset + len(line)

    def mark_done(self, end_offset: int) -> None:
        """Record that the segment being read is replayed up to `end_offset` (in memory:
        `save_cursor` writes it down)."""
        name, self.reading = self.reading, None
        if not self.segments or (name is not None and self.segments[0].name != name):
            return
        self.cursor = Cursor(self.segments[0].name, end_offset)
        self._drop_forwarded()

    def save_cursor(self) -> None:
        """Write the cursor down (fsynced), if it moved since it last was."""
        if self.cursor != self._saved_cursor:
            self._write_cursor()
            self._saved_cursor = self.cursor

    def _done_in_head(self) -> int:
        if self.segments and self.cursor.segment == self.segments[0].name:
            return min(self.cursor.offset, self._sizes[self.segments[0].name])
        return 0

    def _drop_forwarded(self) -> None:
        """Delete the head while it is forwarded to its end and a newer segment follows it
        or it passed `segment_bytes` (the next append starts a new one)."""
        while self.segments and self.segments[0].name != self.reading:
            head = self.segments[0]
            size = self._sizes[head.name]
            forwarded = size == 0 or (self.cursor.segment == head.name
                                      and self.cursor.offset >= size)
            if not forwarded or (len(self.segments) == 1 and size < self.segment_bytes):
                return
            self._delete(head)

    def _delete(self, path: Path) -> None:
        if path == self.segments[-1]:
            self.close()
        self.segments.remove(path)
        self.size_bytes -= self._sizes.pop(path.name)
        path.unlink()
        if self.cursor.segment == path.name:
            self.cursor = Cursor()  # on disk too, naming a segment gone (see __init__)

    def _append_file(self) -> BinaryIO:
        if self._appending is None:
            self._appending = open(self.segments[-1], "ab")  # noqa: SIM115 (kept open)
        return self._appending

    def _sync(self) -> None:
        assert self._appending is not None
        self._appending.flush()
        os.fsync(self._appending.fileno())

    def _recover(self) -> None:
        """After a failed append (a full disk): close the file, cut what was half written,
        and count the last segment's bytes from the file again."""
        self.close()
        if self.segments:
            last = self.segments[-1]
            with suppress(OSError):
                _cut_partial_line(last)
                size = last.stat().st_size
                self.size_bytes += size - self._sizes[last.name]
                self._sizes[last.name] = size

    def _new_segment(self) -> None:
        self.close()
        path = self.dir / f"{self._next_number:012d}{SEGMENT_SUFFIX}"
        self._next_number += 1
        path.touch()
        _fsync_dir(self.dir)
        self.segments.append(path)
        self._sizes[path.name] = 0
        self._drop_forwarded()  # the one before, if forwarded to its end

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




# --- the spooled store -------------------------------------------------------------------------


class _OwnConnection:
    """The forwarder's connection, pool-like for SampleWriter: opened on demand with a connect
    timeout; each block one transaction, committed when it ends, rolled back when it fails
    (and the connection closed when the server is gone)."""

    def __init__(self, conninfo: str, connect_timeout_s: float):
        self._conninfo = conninfo
        self._timeout_s = max(2, int(connect_timeout_s + 0.999))  # libpq: whole seconds, >= 2
        self._conn: psycopg.Connection | None = None
        self._depth = 0  # blocks open: only the outermost commits or rolls back

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        if self._depth:  # inside a block: the same transaction
            self._depth += 1
            try:
                assert self._conn is not None
                yield self._conn
            finally:
                self._depth -= 1
            return
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._conninfo, connect_timeout=self._timeout_s)
        conn = self._conn
        self._depth = 1
        try:
            yield conn
            conn.commit()
        except psycopg.OperationalError:
            self.close()
            raise
        except BaseException:
            try:
                conn.rollback()
            except psycopg.Error:
                self.close()
            raise
        finally:
            self._depth = 0

    def close(self) -> None:
        if self._conn is not None:
            with suppress(psycopg.Error):
                self._conn.close()
            self._conn = None


@dataclass
class Outage:
    """What happened while the store was away: for the summary when it returns."""

    since_s: float  # monotonic
    reason: str
    spooled_batches: int = 0
    spooled_rows: int = 0
    dropped_rows: int = 0


@dataclass(frozen=True)
class SpoolStats:
    spooled_batches: int
    spooled_rows: int
    forwarded_batches: int
    rejected_batches: int
    dropped: dict[str, int]  # by kind
    spool_bytes: int
    pending_batches: int  # handed over, not yet on disk
    oldest_spooled_s: float | None  # age of the oldest batch waiting for the store
    store_available: bool
    outages: int


class SpooledStore:
    """Every batch to disk first, then into the store (see the module docstring)."""

    def __init__(
        self,
        conninfo: str,
        spool_dir: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        when_full: str = "drop_newest",
        segment_bytes: int | None = None,
        store_timeout_s: float = 2.0,
        retry_interval_s: float = 1.0,
        device_of: Callable[[int], int | None] = lambda _object_id: None,
        clock: Callable[[], float] = time.monotonic,
        start_forwarding: bool = True,
    ):
        if when_full not in WHEN_FULL:
            raise ValueError(f"when_full must be one of {', '.join(WHEN_FULL)}")
        self.dir = Path(spool_dir)
        self.max_bytes = max_bytes
        self.when_full = when_full
        self.retry_interval_s = retry_interval_s
        self.device_of = device_of
        self._clock = clock
        segment = segment_bytes or min(DEFAULT_SEGMENT_BYTES, max(max_bytes // 8, 1))
        self._kept = SpoolFiles(self.dir / "observations", segment)
        self._samples = SpoolFiles(self.dir / "samples", segment)
        self._files_lock = threading.Lock()
        self._connection = _OwnConnection(conninfo, store_timeout_s)
        self._writer = SampleWriter(self._connection, batch_rows=2**62)  # type: ignore[arg-type]
        self._queue: queue.Queue[tuple[str, Sequence[Any], float] | None] = queue.Queue()
        self._written = threading.Condition()
        self._handed = 0  # batches handed over
        self._on_disk = 0  # of those, on disk (or dropped)
        self._wake = threading.Event()  # the forwarder: something new, or stop
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._start_forwarding = start_forwarding
        self._stats_lock = threading.Lock()
        self._spooled_batches = self._spooled_rows = 0
        self._forwarded_batches = self._rejected_batches = 0
        self._dropped: dict[str, int] = {}
        self._store_available = True
        self._outage: Outage | None = None
        self._outages = 0
        self._last_drop_log = -ERROR_LOG_INTERVAL_S
        self._dropped_since_log = 0
        # (device, kind) -> [rows, first time, last time]: counted, not yet being forwarded;
        # and the round being forwarded: (its id, its counts), stored with its id (below).
        self._drops, self._drops_forwarding = read_drops(self.dir / DROPS_NAME)
        # The writer counts drops while the forwarder stores and forgets them: both change
        # the table and rewrite drops.json, so they take turns.
        self._drops_lock = threading.Lock()
        # The samples batches just spooled, by their line: the forwarder, finding the same
        # line in the spool, takes them as they are instead of decoding it (a sample
        # decoded costs what it cost to encode). A few: the store keeping up, it is one.
        self._at_hand: dict[bytes, tuple[str, Sequence[Sample]]] = {}
        self._oldest_at: float | None = None
        waiting = self._kept.pending_bytes + self._samples.pending_bytes
        if waiting:
            self._oldest_at = clock()
            log.info("spool %s holds %d bytes from before; forwarding them to the store",
                     self.dir, waiting)

    # --- lifetime --------------------------------------------------------------------------

    def start(self) -> SpooledStore:
        """Start the spool writer and the forwarder (once: a started store is returned as
        it is)."""
        if self._threads:
            return self
        writer = threading.Thread(target=self._write_loop, name="keyline-spool-writer",
                                  daemon=True)
        self._threads = [writer]
        if self._start_forwarding:
            self._threads.append(threading.Thread(target=self._forward_loop,
                                                  name="keyline-forwarder", daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def close(self, timeout_s: float = 5.0) -> None:
        """Put what was handed over on disk and stop, within `timeout_s` whatever the store
        does (what the store has not taken stays in the spool for the next start)."""
        deadline = self._clock() + timeout_s
        self._queue.put(None)
        self._stopping.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(max(0.0, deadline - self._clock()))
        self._connection.close()
        with self._files_lock:  # a writer still running reopens what it appends to
            self._kept.close()
            self._samples.close()

    def __enter__(self) -> SpooledStore:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- handing over (any thread; returns at once) -------------------------------------------

    def write_samples(self, samples: Sequence[Sample]) -> None:
        self._hand("samples", samples)

    def write_observations(self, observations: Sequence[Observation]) -> None:
        self._hand("observations", observations)

    def write_poll_statuses(self, statuses: Sequence[tuple[int, str, str | None, datetime]]
                            ) -> None:
        """Devices' latest poll statuses: (device_id, status, reason, polled_at)."""
        self._hand("poll_statuses", statuses)

    def write_port_matches(self, matches: Sequence[Any]) -> None:
        """Ports' current matches (store.observations.PortMatchRow)."""
        self._hand("port_matches", matches)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything handed over so far is on disk (or dropped); False if that
        took longer than `timeout_s`."""
        with self._written:
            target = self._handed
            return self._written.wait_for(lambda: self._on_disk >= target, timeout_s)

    def drain(self, timeout_s: float = 30.0) -> bool:
        """Wait until everything handed over so far is in the store; False on timeout."""
        deadline = self._clock() + timeout_s
        if not self.flush(timeout_s):
            return False
        while self._clock() < deadline:
            with self._files_lock:
                if (self._kept.empty and self._samples.empty and not self._drops
                        and self._drops_forwarding is None):
                    return True
            self._wake.set()
            time.sleep(0.02)
        return False

    @property
    def spooling(self) -> bool:
        """True while batches wait on disk for the store."""
        with self._files_lock:
            return not (self._kept.empty and self._samples.empty)

    def pending_observations(self) -> list[Observation]:
        """The observations spooled and not yet in the store, oldest first: a restarted
        collector applies them on top of the store's last states, which do not have them."""
        found: list[Observation] = []
        with self._files_lock:
            for files in (self._kept,):
                for segment in files.segments:
                    offset = (files.cursor.offset if files.cursor.segment == segment.name
                              else 0)
                    with open(segment, "rb") as stream:
                        stream.seek(offset)
                        for line in stream:
                            if not line.endswith(b"\n"):
                                break
                            with suppress(*BATCH_REJECTED, json.JSONDecodeError):
                                kind, items = decode_batch(line)
                                if kind == "observations":
                                    found.extend(items)
        return found

    def stats(self) -> SpoolStats:
        # the files' lock first, as the writer takes them (it counts a drop, under the
        # stats' lock, while it holds the files'): the other order deadlocked the heartbeat
        # against a full spool's writer
        with self._files_lock, self._stats_lock:
            oldest = (self._clock() - self._oldest_at if self._oldest_at is not None
                      and not (self._kept.empty and self._samples.empty) else None)
            return SpoolStats(
                self._spooled_batches, self._spooled_rows, self._forwarded_batches,
                self._rejected_batches, dict(self._dropped),
                self._kept.pending_bytes + self._samples.pending_bytes,
                self._handed - self._on_disk, oldest, self._store_available, self._outages)

    def _hand(self, kind: str, items: Sequence[Any]) -> None:
        if not items:
            return
        if kind not in KINDS:
            raise ValueError(f"unknown batch kind {kind!r}")
        with self._written:
            self._handed += 1
        self._queue.put((kind, list(items), self._clock()))

    # --- the spool writer ------------------------------------------------------------------

    def _write_loop(self) -> None:
        stop = False
        while not stop:
            batch = self._queue.get()
            batches = []
            if batch is None:
                stop = True
            else:
                batches.append(batch)
            while True:  # everything waiting, in one go: one fsync per spool
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                else:
                    batches.append(more)
            if batches:
                try:
                    self._write(batches)
                except Exception:
                    log.exception("spool writer failed to write %d batches", len(batches))
                with self._written:
                    self._on_disk += len(batches)
                    self._written.notify_all()
                self._wake.set()

    def _write(self, batches: list[tuple[str, Sequence[Any], float]]) -> None:
        kept = [encode_batch(kind, items) for kind, items, _ in batches if kind in KEPT_KINDS]
        samples = []
        for kind, items, _ in batches:
            if kind == "samples":
                batch_id = uuid.uuid4().hex
                samples.append((encode_batch(kind, items, batch_id), items, batch_id))
        with self._files_lock:
            if kept:
                self._kept.append_many(kept)
            taken: list[bytes] = []
            appended = 0
            for line, items, batch_id in samples:
                if not self._room_for(line, taken):
                    if self.when_full == "drop_newest":
                        self._count_drop("samples", items)
                        continue
                    if taken:  # what this round took goes first, then the oldest can go
                        self._samples.append_many(taken)
                        appended += len(taken)
                        taken = []
                    while (not self._room_for(line, taken)
                           and (data := self._samples.drop_oldest_segment()) is not None):
                        for old in data.splitlines():
                            with suppress(*BATCH_REJECTED, json.JSONDecodeError):
                                self._count_drop("samples", decode_batch(old)[1])
                    if not self._room_for(line, taken):
                        self._count_drop("samples", items)  # nothing older left to drop
                        continue
                taken.append(line)
                if len(self._at_hand) < BATCHES_AT_HAND:
                    self._at_hand[line] = (batch_id, items)
            if taken:
                self._samples.append_many(taken)
                appended += len(taken)
            if self._oldest_at is None and (kept or appended):
                self._oldest_at = min(handed for _, _, handed in batches)
        rows = sum(len(items) for _, items, _ in batches)
        with self._stats_lock:
            self._spooled_batches += len(kept) + appended
            self._spooled_rows += rows
            if self._outage is not None:
                self._outage.spooled_batches += len(kept) + appended
                self._outage.spooled_rows += rows

    def _room_for(self, line: bytes, taken: Sequence[bytes]) -> bool:
        return (self._samples.size_bytes + sum(map(len, taken)) + len(line)
                <= self.max_bytes)

    def _count_drop(self, kind: str, items: Sequence[Any]) -> None:
        """Count what a full spool dropped, per device and kind, durably (drops.json)."""
        with self._drops_lock:
            for item in items:
                device = self.device_of(item.object_id) if kind == "samples" else None
                entry = self._drops.setdefault(f"{device}|{kind}", [0, None, None])
                entry[0] += 1
                stamp = item.time.isoformat()
                entry[1] = min(entry[1] or stamp, stamp)
                entry[2] = max(entry[2] or stamp, stamp)
            self._write_drops()
        with self._stats_lock:
            self._dropped[kind] = self._dropped.get(kind, 0) + len(items)
            if self._outage is not None:
                self._outage.dropped_rows += len(items)
        self._dropped_since_log += len(items)
        now = self._clock()
        if now - self._last_drop_log >= ERROR_LOG_INTERVAL_S:
            log.error("spool %s is full (%d of %d bytes) and the store is still away: "
                      "DROPPING %s (%s), %d rows since the last message; the gaps are "
                      "recorded as unknown time", self.dir, self._samples.size_bytes,
                      self.max_bytes, kind, "newest first" if self.when_full == "drop_newest"
                      else "oldest first", self._dropped_since_log)
            self._last_drop_log = now
            self._dropped_since_log = 0

    def _write_drops(self) -> None:
        """Rewrite drops.json from the counts and the round being forwarded, in one file
        replaced at once (the caller holds `_drops_lock`)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        temporary = self.dir / (DROPS_NAME + ".tmp")
        forwarding = self._drops_forwarding
        with open(temporary, "w") as file:
            json.dump({"counts": self._drops, "forwarding": None if forwarding is None
                       else {"id": forwarding[0], "counts": forwarding[1]}}, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.dir / DROPS_NAME)

    # --- the forwarder ---------------------------------------------------------------------

    def _forward_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()  # before looking: a batch written meanwhile wakes the wait
            try:
                moved = self._forward_some()
            except Exception:  # a bug: say it, keep the data, try again later
                log.exception("forwarding the spool failed")
                moved = False
            if not moved:
                self._wake.wait(self.retry_interval_s if not self._store_available else 1.0)

    def _forward_some(self) -> bool:
        """Forward what waits (drop counts, then observations, then samples, up to a time
        budget so that new observations are not stuck behind a long sample backlog);
        whether anything moved."""
        moved = False
        budget_end = self._clock() + 1.0
        try:
            if self._drops or self._drops_forwarding is not None:
                self._forward_drops()
                moved = True
            for files in (self._kept, self._samples):
                try:
                    moved = self._forward_spool(files, budget_end) or moved
                finally:
                    # once a round, not per batch: replayed after a crash before this, a
                    # batch is found stored by its id and skipped (see _store)
                    with self._files_lock:
                        files.save_cursor()
        except STORE_UNAVAILABLE as error:
            self._went_away(error)
            return False
        self._came_back()
        with self._files_lock:
            if self._kept.empty and self._samples.empty:
                self._oldest_at = None
                self._at_hand.clear()  # what is left was dropped or set aside
        return moved

    def _forward_spool(self, files: SpoolFiles, budget_end: float) -> bool:
        """Forward one spool's batches, oldest first, until it is empty or the budget is
        spent; whether any moved. The cursor moves in memory (the caller writes it)."""
        moved = False
        while self._clock() < budget_end and not self._stopping.is_set():
            with self._files_lock:
                batch = files.next_batch()
            if batch is None:
                break
            line, end_offset = batch
            batch_id = None
            rejected = False
            try:
                known = self._at_hand.pop(line, None) if files is self._samples else None
                if known is not None:
                    kind, (batch_id, items) = "samples", known
                else:
                    batch_id, kind, items = decode_record(line)
                self._store(kind, items, batch_id)
            except BATCH_REJECTED as error:
                self._set_aside(line, error)
                rejected = True
            else:
                with self._stats_lock:
                    self._forwarded_batches += 1
            with self._files_lock:
                files.mark_done(end_offset)
                if rejected or batch_id is None:
                    # no id to be found stored by: replayed, it would be set aside, or
                    # stored (a line of an older spool), twice
                    files.save_cursor()
            moved = True
            if files is self._samples:
                with self._files_lock:
                    observations_came = not self._kept.empty
                if observations_came:
                    break  # observations came meanwhile: they go first
        return moved

    def _store(self, kind: str, items: Sequence[Any], batch_id: str | None = None) -> None:
        """One batch in one transaction, with its id: a batch whose commit the store
        confirmed too late to be marked done (the connection lost right then) is found
        stored when tried again, and skipped: exactly once."""
        with self._connection.connection() as conn:
            if batch_id is not None and not _first_time_stored(conn, batch_id):
                return
            if kind == "samples":
                self._writer.discard()
                self._writer.add_many(items)  # Samples are (time, object, metric, value)
                try:
                    self._writer.flush()
                finally:
                    self._writer.discard()
            elif kind == "observations":
                record_observations(conn, items)
            elif kind == "poll_statuses":
                record_poll_statuses(conn, items)
            else:
                record_port_matches(conn, items)

    def _forward_drops(self) -> None:
        """Store the drop counts exactly once: the counts so far become a round with an id
        (written to drops.json before the store is tried), stored in one transaction with
        that id in spool_batches, and forgotten after. Killed between the commit and the
        rewrite, the next start finds the round's id stored and only forgets it; drops
        counted meanwhile wait for the next round."""
        with self._drops_lock:
            if self._drops_forwarding is None:
                if not self._drops:
                    return
                self._drops_forwarding = ("drops-" + uuid.uuid4().hex, self._drops)
                self._drops = {}
                self._write_drops()
            round_id, drops = self._drops_forwarding
        rows = []
        for key, (count, first, last) in drops.items():
            device, _, kind = key.partition("|")
            rows.append((None if device == "None" else int(device), kind, count,
                         first, last))
        with self._connection.connection() as conn:
            if _first_time_stored(conn, round_id):
                record_drops(conn, rows)
        with self._drops_lock:
            self._drops_forwarding = None
            self._write_drops()

    def _went_away(self, error: Exception) -> None:
        self._connection.close()
        if self._store_available:
            self._store_available = False
            with self._stats_lock:
                self._outages += 1
                self._outage = Outage(self._clock(), " ".join(str(error).split())
                                      or type(error).__name__)
            log.warning("store unavailable (%s): spooling to %s, trying again every %g s",
                        self._outage.reason, self.dir, self.retry_interval_s)

    def _came_back(self) -> None:
        if self._store_available:
            return
        self._store_available = True
        with self._stats_lock:
            outage, self._outage = self._outage, None
        if outage is not None:
            with self._files_lock:
                waiting = self._kept.pending_bytes + self._samples.pending_bytes
            log.info("store back after %.1f s: %d batches (%d rows) spooled meanwhile, %d rows"
                     " dropped; forwarding the backlog (%d bytes left)",
                     self._clock() - outage.since_s, outage.spooled_batches,
                     outage.spooled_rows, outage.dropped_rows, waiting)

    def _set_aside(self, line: bytes, error: Exception) -> None:
        """Move a batch that can never be stored (unreadable, refused by the database for its
        data) to `rejected.jsonl`, so it does not block the spool; loudly."""
        path = self.dir / REJECTED_NAME
        with open(path, "ab") as file:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())
        with self._stats_lock:
            self._rejected_batches += 1
        log.error("a spooled batch cannot be stored (%s: %s); set aside in %s",
                  type(error).__name__, " ".join(str(error).split())[:200], path)


def _first_time_stored(conn: psycopg.Connection, batch_id: str) -> bool:
    """Note `batch_id` as stored, in the caller's transaction; False when it already was."""
    return conn.execute("INSERT INTO spool_batches (id) VALUES (%s) ON CONFLICT DO NOTHING"
                        " RETURNING id", [batch_id]).fetchone() is not None


def read_drops(path: Path) -> tuple[dict[str, list[Any]], tuple[str, dict[str, list[Any]]] | None]:
    """drops.json: the drop counts not yet forwarded, and the round being forwarded (its id
    and counts) or None. A missing or unreadable file is no drops; an older spool's file
    (the counts alone, no round) still reads."""
    try:
        content = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}, None
    if not isinstance(content, dict):
        return {}, None
    if "counts" not in content:  # before rounds had ids: {"device|kind": [rows, ...]}
        return content, None
    forwarding = content.get("forwarding")
    return (content["counts"] or {},
            None if not forwarding else (forwarding["id"], forwarding["counts"]))


def pending_drop_rows(path: Path) -> int:
    """Rows counted as dropped in drops.json and not yet in the store."""
    counts, forwarding = read_drops(path)
    waiting = [counts, forwarding[1] if forwarding else {}]
    return sum(entry[0] for table in waiting for entry in table.values())
