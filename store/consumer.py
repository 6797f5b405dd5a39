"""Consumer: the one way a service follows the store's events.

A service that acts on events (the alarm pipeline, the ticket service, the portal's live
bridge) needs the same four things: hear the events of its topics (store.events.Subscriber),
handle them in batches, remember how far it got, and rebuild its in-memory state from the
store when something went wrong. `Consumer` does the four, for one named service:

    consumer = Consumer(pool, url, "tickets", ["alarm.", "circuit."],
                        handle=on_events,       # handle(conn, events), in the batch's transaction
                        recover=load_state,     # recover(conn): rebuild memory from the store
                        tick=escalate, tick_interval_s=1.0)
    consumer.start()     # recover, then subscribe from the saved position; returns once listening
    ...
    consumer.stop()

*One transaction per batch.* Each batch is handled as

    with pool.connection() as conn, conn.transaction():
        handle(conn, events)
        save_position(conn, name, max(event ids))

so the effects of a batch and the position that says it was handled commit together: a
consumer killed at any moment resumes exactly after the last batch it committed, with no event
lost and none handled twice. The position lives in `event_consumers` (migration
0014_event_consumers.sql; the alarm pipeline's former `alarm_pipeline_state`). On the first
run (no row) the consumer starts after the newest event (or `start_after`), and records that.

*Recovery.* `recover(conn)` runs at start and after any failure, inside a transaction: it
rebuilds the service's memory from the store. A failed batch was rolled back, memory and all
(recover rebuilds it), so its events must come again: the consumer drops what it had queued,
and a new Subscriber reads the table again from the position; the events it had already
committed in this process are skipped by id. The store going away (`STORE_UNAVAILABLE`) is
said once per outage, without a traceback, and the consumer retries every `retry_delay_s`
until the store is back; any other exception is a bug: logged with its traceback, then the
same recovery, after a delay that doubles while the failures go on (up to
RETRY_DELAY_MAX_S). A batch that fails every time is not skipped: the consumer stops
advancing there, visibly (`stats.errors`, `stats.last_error`, the log), rather than lose it.

*Without a stored position* (`durable=False`: the live bridge, whose state is memory only and
rebuilt whole at every start), the position is what `recover` loaded: it returns the id of the
last event its load reflects, or a `Resume` when some ids above a floor are reflected and some
not (a lower id can commit after a higher one: store.events.REORDER_WINDOW_IDS).

*Ticks.* `tick(conn)` runs every `tick_interval_s` on the same worker thread, in a transaction
of its own (escalation timers, the alarm pipeline's debounce timers and thresholds). One
worker thread owns handle, tick and recover, so a service needs no lock of its own for them;
the subscriber's thread only queues. Only the standard library's threading is used, which
gevent's patching turns into greenlets (the portal process).

A durable consumer's position is the highest id it handled; an event whose transaction began
before a restart and committed after it with a lower id than that position is not read again
(the Subscriber's reorder window covers late commits while it runs, not across restarts).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import psycopg
from psycopg_pool import ConnectionPool

from store.database import STORE_UNAVAILABLE, scrub
from store.events import REORDER_WINDOW_IDS, Event, Subscriber, last_event_id

log = logging.getLogger(__name__)

RETRY_DELAY_S = 1.0
# A bug that fails every attempt is retried less and less often, up to this.
RETRY_DELAY_MAX_S = 30.0


@dataclass(frozen=True)
class Resume:
    """Where a consumer without a stored position starts: every event id <= `after_id` and
    those in `seen` are reflected in what `recover` loaded; the others follow."""

    after_id: int
    seen: frozenset[int] = frozenset()


Handle = Callable[[psycopg.Connection, list[Event]], None]
# recover(conn): for a durable consumer its result is ignored (the position is stored); for
# one with durable=False it says where to start: an event id, a Resume, or None (the newest).
Recover = Callable[[psycopg.Connection], "int | Resume | None"]
Tick = Callable[[psycopg.Connection], None]


@dataclass
class ConsumerStats:
    events: int = 0  # events handled (committed)
    batches: int = 0
    recoveries: int = 0
    errors: int = 0
    last_error: str | None = None


# --- the stored position -----------------------------------------------------------------


def stored_position(conn: psycopg.Connection, name: str) -> int | None:
    """The id of the last event the consumer `name` handled; None if it never ran."""
    row = conn.execute("SELECT last_event_id FROM event_consumers WHERE name = %s",
                       [name]).fetchone()
    return row[0] if row else None


def save_position(conn: psycopg.Connection, name: str, event_id: int) -> None:
    """Record that the consumer `name` handled the events up to `event_id`, in the caller's
    transaction (a position never moves back)."""
    conn.execute(
        """INSERT INTO event_consumers (name, last_event_id) VALUES (%s, %s)
           ON CONFLICT (name) DO UPDATE SET last_event_id = greatest(
               event_consumers.last_event_id, EXCLUDED.last_event_id), updated_at = now()""",
        [name, event_id])


def consumer_positions(conn: psycopg.Connection) -> dict[str, int]:
    """Every consumer's stored position, by name."""
    return dict(conn.execute(
        "SELECT name, last_event_id FROM event_consumers ORDER BY name").fetchall())


# --- the consumer ------------------------------------------------------------------------


class Consumer:
    """Follows the store's events for one named service: see the module docstring.

    `name`: the row of `event_consumers` (durable); also the worker thread's name and the
    log's. `topics`: prefixes ("alarm." matches "alarm.raised"; "" every topic).
    `handle(conn, events)`: up to `batch_max` events, in delivery order, inside the batch's
    transaction; raising rolls the batch back (and the position with it). `recover(conn)`:
    see `Recover`. `tick(conn)`: every `tick_interval_s`, in its own transaction.
    `start_after`: where a durable consumer's first run starts (default: the newest event),
    or one without a stored position when `recover` says nothing. All three callbacks run on
    the one worker thread (the first `recover` on the thread that calls start())."""

    def __init__(self, pool: ConnectionPool, url: str, name: str, topics: Sequence[str], *,
                 handle: Handle,
                 recover: Recover | None = None,
                 tick: Tick | None = None,
                 tick_interval_s: float = 1.0,
                 batch_max: int = 200,
                 durable: bool = True,
                 start_after: int | None = None,
                 retry_delay_s: float = RETRY_DELAY_S) -> None:
        if not topics:
            raise ValueError("a consumer needs at least one topic prefix")
        self.pool = pool
        self.url = url
        self.name = name
        self.topics = tuple(topics)
        self.handle = handle
        self.recover = recover
        self.tick = tick
        self.tick_interval_s = tick_interval_s
        self.batch_max = batch_max
        self.durable = durable
        self.start_after = start_after
        self.retry_delay_s = retry_delay_s
        self.stats = ConsumerStats()
        self.position = 0  # last event id handled (committed)
        self._queue: queue.Queue[Event] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._subscriber: Subscriber | None = None
        self._last_queued = 0  # the subscriber calls back once per matching prefix
        # The events handled: every id <= _floor, and those in _handled (store/events.py:
        # a lower id may commit after a higher one). Touched by the worker only, after start.
        self._floor = 0
        self._handled: set[int] = set()
        self._broken = False  # a failure happened; the worker recovers before going on
        self._store_lost_at: float | None = None

    # --- lifetime ----------------------------------------------------------------------------

    def start(self, timeout_s: float = 30.0) -> None:
        """Recover, then subscribe from the position; return once the subscriber listens (or
        after `timeout_s`; it keeps trying). Errors of the first recovery are raised."""
        if self._thread is not None:
            raise RuntimeError(f"consumer {self.name} already started")
        self._recover(None)  # before the worker exists: no one else touches the state yet
        self._subscribe(timeout_s)
        self._thread = threading.Thread(target=self._run, name=f"keyline-{self.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the subscriber and the worker (after the batch it is handling). Idempotent."""
        self._stop.set()
        subscriber = self._subscriber
        if subscriber is not None:
            subscriber.stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def listening(self) -> bool:
        subscriber = self._subscriber
        return subscriber is not None and subscriber.listening

    def idle(self) -> bool:
        """Whether every event received so far has been handled (none queued, none being
        handled, no recovery pending)."""
        return self._queue.unfinished_tasks == 0 and not self._broken

    def __enter__(self) -> Consumer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- recovery ----------------------------------------------------------------------------

    def _recover(self, failed: list[Event] | None) -> None:
        """Run `recover` and set where to read on from, in one transaction. `failed`: the
        batch whose commit failed (None at start)."""
        with self.pool.connection() as conn, conn.transaction():
            loaded = self.recover(conn) if self.recover is not None else None
            if self.durable:
                stored = stored_position(conn, self.name)
                if stored is None:
                    stored = (self.start_after if self.start_after is not None
                              else last_event_id(conn))
                    save_position(conn, self.name, stored)
                resume = Resume(stored)
            elif isinstance(loaded, Resume):
                resume = loaded
            elif isinstance(loaded, int) and not isinstance(loaded, bool):
                resume = Resume(loaded)
            elif failed is not None or self._thread is not None:
                resume = None  # nothing loaded: keep what was handled
            else:
                resume = Resume(self.start_after if self.start_after is not None
                                else last_event_id(conn))
        self.stats.recoveries += 1
        if failed and self.durable and resume is not None:
            # A commit that failed on a lost connection may have happened all the same: the
            # position, saved in the same transaction, tells.
            top = max(event.id for event in failed)
            if top > self.position and resume.after_id >= top:
                self._mark(event.id for event in failed)
        if resume is None:
            return
        if self.durable and self._thread is not None:
            # Keep the ids committed in this process: a restarted subscriber reads again from
            # the floor, and what was handled is skipped.
            self.position = max(self.position, resume.after_id)
            return
        self._floor = resume.after_id
        self._handled = {i for i in resume.seen if i > resume.after_id}
        self.position = max([resume.after_id, *self._handled])

    def _subscribe(self, timeout_s: float) -> None:
        subscriber = Subscriber(self.url, after_id=self._floor)
        for prefix in self.topics:
            subscriber.subscribe(prefix, self._enqueue)
        self._subscriber = subscriber
        subscriber.start(timeout_s=timeout_s)

    def _enqueue(self, event: Event) -> None:
        if event.id != self._last_queued:  # one callback per matching prefix: queue it once
            self._last_queued = event.id
            self._queue.put(event)

    def _restart(self, failed: list[Event] | None) -> None:
        """After a failure: a new subscriber from the floor (the old one's queue dropped),
        memory rebuilt by `recover`."""
        if self._subscriber is not None:
            self._subscriber.stop()
            self._subscriber = None
        self._drain()
        self._last_queued = 0
        self._recover(failed)
        if not self._stop.is_set():
            self._subscribe(timeout_s=10.0)
        self._broken = False

    def _drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return
            self._queue.task_done()

    # --- the worker --------------------------------------------------------------------------

    def _run(self) -> None:
        next_tick = time.monotonic() + (self.tick_interval_s if self.tick else 0.0)
        failed: list[Event] | None = None
        bugs = 0  # failures in a row that were not the store's
        while not self._stop.is_set():
            batch: list[Event] = []
            try:
                if self._broken:
                    self._restart(failed)
                    failed = None
                timeout = (max(0.0, next_tick - time.monotonic()) if self.tick is not None
                           else 0.5)
                batch = self._take(timeout)
                if batch:
                    self._handle_batch(batch)
                if self.tick is not None and time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + self.tick_interval_s
                    with self.pool.connection() as conn, conn.transaction():
                        self.tick(conn)
                if self._store_lost_at is not None:
                    log.info("%s working again after %.1f s without the store", self.name,
                             time.monotonic() - self._store_lost_at)
                    self._store_lost_at = None
                bugs = 0
            except STORE_UNAVAILABLE as error:
                # the store went away: said once an outage, no traceback; rebuilt when back
                self._failed(error)
                if self._store_lost_at is None:
                    self._store_lost_at = time.monotonic()
                    log.warning("%s waits for the store (%s); it rebuilds from the store when"
                                " it is back", self.name,
                                scrub(" ".join(str(error).split()), self.url)[:200])
                else:
                    log.debug("%s: store still unavailable: %s", self.name, error)
                self._broken, failed = True, failed or batch or None
                self._stop.wait(self.retry_delay_s)
            except Exception as error:  # a bug: start again clean
                self._failed(error)
                bugs += 1
                delay_s = min(self.retry_delay_s * 2 ** (bugs - 1),
                              max(self.retry_delay_s, RETRY_DELAY_MAX_S))
                log.exception("%s failed; rebuilding from the store in %.1f s", self.name,
                              delay_s)
                self._broken, failed = True, failed or batch or None
                self._stop.wait(delay_s)
            finally:
                for _ in batch:
                    self._queue.task_done()
        if self._subscriber is not None:  # one started by a recovery while stop() ran
            self._subscriber.stop()

    def _failed(self, error: BaseException) -> None:
        self.stats.errors += 1
        self.stats.last_error = scrub(f"{type(error).__name__}: {error}", self.url)

    def _take(self, timeout_s: float) -> list[Event]:
        """Up to batch_max events not handled yet (waiting up to `timeout_s` for the first);
        the ones handled already are marked done at once."""
        events: list[Event] = []
        wait: float | None = timeout_s
        while len(events) < self.batch_max:
            try:
                event = (self._queue.get(timeout=wait) if wait else self._queue.get_nowait())
            except queue.Empty:
                break
            if self._seen(event.id):
                self._queue.task_done()
                continue
            events.append(event)
            wait = None
        return events

    def _handle_batch(self, events: list[Event]) -> None:
        with self.pool.connection() as conn, conn.transaction():
            self.handle(conn, events)
            if self.durable:
                save_position(conn, self.name, max(event.id for event in events))
        self._mark(event.id for event in events)
        self.stats.events += len(events)
        self.stats.batches += 1

    def _seen(self, event_id: int) -> bool:
        return event_id <= self._floor or event_id in self._handled

    def _mark(self, ids: Iterable[int]) -> None:
        self._handled.update(ids)
        if self._handled:
            self.position = max(self.position, max(self._handled))
        if len(self._handled) > 4 * REORDER_WINDOW_IDS:
            self._floor = max(self._floor, self.position - 2 * REORDER_WINDOW_IDS)
            self._handled = {i for i in self._handled if i > self._floor}
