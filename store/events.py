"""Events between stages: rows in `events`, announced with PostgreSQL LISTEN/NOTIFY.

One stage tells the others that something happened ("inventory.changed", "alarm.raised")
without knowing who listens and without a message broker: `publish()` inserts the event into
the `events` table and calls `pg_notify('keyline_events', ...)` in the same statement, inside
the caller's transaction. PostgreSQL delivers a notification only when that transaction
commits, so a listener never hears of an event that was rolled back, and hears of committed
events in commit order. Processes on other machines listen the same way, over their own
connection to the same database.

A notification is not stored: a listener that is disconnected at that moment misses it. The
row is what makes an event durable. A `Subscriber` remembers the id of the last event it
delivered; after a reconnection it reads the table from there ("catch-up") before listening
again, so nothing is lost. The notification carries the event's id and topic, and its
payload too when that is small (a NOTIFY payload is limited to 8000 bytes); otherwise the
subscriber reads the payload from the table.

Ids come from a sequence, so they are allotted when an event is inserted but become visible
when its transaction commits: a transaction that started earlier can commit a lower id after
a higher one was delivered. Catch-up therefore re-reads a window of recent ids below the last
one delivered and skips the ones already delivered.

    subscriber = Subscriber(database.url)
    subscriber.subscribe("alarm.", on_alarm)      # callback(Event), on the subscriber's thread
    subscriber.start()
    ...
    with database.pool.connection() as conn:
        publish(conn, "alarm.raised", {"alarm_id": 7})   # delivered after the commit
    subscriber.stop()

`Subscriber` is the low-level piece. A service that follows the store (the alarm pipeline,
the ticket service, the portal's live bridge) does not use it directly: it uses
store.consumer.Consumer, the one way to follow events, which subscribes, hands the events to
the service in batches, saves the position in the same transaction as the batch's effects,
and rebuilds the service from the store after a failure.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from store.database import redact_url, scrub

log = logging.getLogger(__name__)

CHANNEL = "keyline_events"

# Above this size (bytes of the JSON payload) the notification carries only id and topic;
# PostgreSQL's limit for a NOTIFY payload is 8000 bytes.
NOTIFY_PAYLOAD_MAX_BYTES = 7000

# How far below the last delivered id a catch-up re-reads, for late commits of lower ids.
REORDER_WINDOW_IDS = 1000
CATCH_UP_BATCH = 1000

_CONNECT_OPTIONS = {"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 30,
                    "keepalives_interval": 10, "keepalives_count": 3}

# One statement: insert the row and queue the notification, atomically in any mode. The
# notification carries the payload only if the whole message stays under the limit.
_PUBLISH = f"""
WITH e AS (
    INSERT INTO events (topic, payload) VALUES (%(topic)s, %(payload)s)
    RETURNING id, time, topic, payload
), note AS (
    SELECT id,
           json_build_object('id', id, 'time', time, 'topic', topic,
                             'payload', payload)::text AS full_note,
           json_build_object('id', id, 'time', time, 'topic', topic)::text AS short_note
      FROM e
)
SELECT id, pg_notify('{CHANNEL}',
        CASE WHEN octet_length(full_note) <= {NOTIFY_PAYLOAD_MAX_BYTES} THEN full_note
             ELSE short_note END)
  FROM note"""
TOPIC_MAX_CHARS = 200


@dataclass(frozen=True)
class Event:
    id: int
    time: datetime
    topic: str
    payload: dict[str, Any]


Callback = Callable[[Event], None]


def publish(conn: psycopg.Connection, topic: str, payload: dict[str, Any]) -> int:
    """Record an event and announce it when the caller's transaction commits; return its id.

    One statement, so it is atomic even on an autocommit connection. On a connection inside a
    transaction, a rollback takes back both the row and the notification."""
    if not topic or len(topic) > TOPIC_MAX_CHARS:
        raise ValueError(f"an event topic must have 1 to {TOPIC_MAX_CHARS} characters")
    row = conn.execute(_PUBLISH, {"topic": topic, "payload": Jsonb(payload)}).fetchone()
    assert row is not None
    return row[0]


def events_since(conn: psycopg.Connection, after_id: int, limit: int = 1000) -> list[Event]:
    """Committed events with id > after_id, oldest first, at most `limit`."""
    rows = conn.execute(
        "SELECT id, time, topic, payload FROM events WHERE id > %s ORDER BY id LIMIT %s",
        [after_id, limit],
    ).fetchall()
    return [Event(*row) for row in rows]


def last_event_id(conn: psycopg.Connection) -> int:
    """The highest event id committed so far (0 when there is none)."""
    row = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()
    return row[0] if row else 0


def prune_events(conn: psycopg.Connection, keep_days: int) -> int:
    """Delete events older than `keep_days` days; return how many went."""
    cursor = conn.execute("DELETE FROM events WHERE time < now() - %s::interval",
                          [timedelta(days=keep_days)])
    return cursor.rowcount


class Subscriber:
    """Delivers events whose topic starts with a subscribed prefix to their callbacks, on a
    thread of its own with a dedicated connection (LISTEN needs one that stays open).

    `after_id`: deliver events after this id (0: every stored event); None (default): only
    events committed after the first connection. Callbacks run one at a time on the
    subscriber's thread; one that raises is logged and does not stop the others.
    """

    def __init__(
        self,
        url: str,
        *,
        after_id: int | None = None,
        poll_interval_s: float = 0.25,
        reconnect_delay_s: float = 1.0,
    ):
        self._url = url
        self._poll_interval_s = poll_interval_s
        self._reconnect_delay_s = reconnect_delay_s
        self._subscriptions: list[tuple[str, Callback]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._thread: threading.Thread | None = None
        # Delivery bookkeeping, touched only by the subscriber's thread.
        self._floor = after_id  # never deliver ids <= floor
        self._last_id = after_id  # highest id delivered (or floor)
        self._delivered: set[int] = set()  # delivered ids within the reorder window
        self.connections = 0  # how many times it (re)connected
        self.backend_pid: int | None = None  # server process of the current connection

    def subscribe(self, topic_prefix: str, callback: Callback) -> None:
        """Call `callback(event)` for every event whose topic starts with `topic_prefix`
        ("" for all). Subscribe before start() to also receive the events caught up at start
        (with `after_id`); a subscription made later sees the events that follow it."""
        with self._lock:
            self._subscriptions.append((topic_prefix, callback))

    def start(self, *, timeout_s: float = 10.0) -> None:
        """Start the thread and return once it listens (or after `timeout_s`, if the
        database is away; it keeps trying in the background)."""
        if self._thread is not None:
            raise RuntimeError("subscriber already started")
        self._thread = threading.Thread(target=self._run, name="keyline-events", daemon=True)
        self._thread.start()
        if not self._listening.wait(timeout_s):
            log.warning("event subscriber not connected yet to %s; retrying in the background",
                        redact_url(self._url))

    def stop(self, *, timeout_s: float = 5.0) -> None:
        """Stop the thread and close its connection. Idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    def __enter__(self) -> Subscriber:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        lost_at: float | None = None  # monotonic time the connection was lost, if it is
        while not self._stop.is_set():
            try:
                # Keepalives: a silently dead network path (no FIN, no RST) would otherwise
                # leave the subscriber waiting on a connection that will never speak again.
                with psycopg.connect(self._url, autocommit=True, **_CONNECT_OPTIONS) as conn:
                    if lost_at is not None:
                        log.info("event subscriber connected again after %.1f s",
                                 time.monotonic() - lost_at)
                        lost_at = None
                    self._listen_on(conn)
            except psycopg.Error as error:
                if self._stop.is_set():
                    break
                reason = scrub(" ".join(str(error).split()), self._url)
                # said once an outage, not at every attempt (one a second while it lasts)
                level = logging.WARNING if lost_at is None else logging.DEBUG
                if lost_at is None:
                    lost_at = time.monotonic()
                log.log(level, "event subscriber lost its connection (%s); reconnecting every"
                        " %.1f s", reason or type(error).__name__, self._reconnect_delay_s)
            except Exception:
                log.exception("event subscriber failed; restarting in %.1f s",
                              self._reconnect_delay_s)
            finally:
                self._listening.clear()
            self._stop.wait(self._reconnect_delay_s)

    def _listen_on(self, conn: psycopg.Connection) -> None:
        # LISTEN first, then read the table: an event committed in between is both read and
        # notified, and the duplicate is skipped; none can fall between the two.
        conn.execute(f"LISTEN {CHANNEL}")
        self.connections += 1
        self.backend_pid = conn.info.backend_pid
        if self._last_id is None:
            self._floor = self._last_id = last_event_id(conn)
        self._catch_up(conn)
        self._listening.set()
        while not self._stop.is_set():
            # Collect first, handle after: the notifies() generator holds the connection, and
            # handling may need it (to read a large payload).
            notes = list(conn.notifies(timeout=self._poll_interval_s, stop_after=1))
            for note in notes:
                self._on_notify(conn, note.payload)
            if conn.closed or conn.broken:
                raise psycopg.OperationalError("connection closed")

    def _catch_up(self, conn: psycopg.Connection) -> None:
        assert self._last_id is not None and self._floor is not None
        after = max(self._floor, self._last_id - REORDER_WINDOW_IDS)
        while True:
            events = events_since(conn, after, CATCH_UP_BATCH)
            for event in events:
                self._deliver(event)
            if len(events) < CATCH_UP_BATCH:
                return
            after = events[-1].id

    def _on_notify(self, conn: psycopg.Connection, text: str) -> None:
        try:
            note = json.loads(text)
            event_id = int(note["id"])
            topic = str(note["topic"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed notification on %s", CHANNEL)
            return
        if self._seen(event_id) or not self._callbacks_for(topic):
            self._mark(event_id)
            return
        if "payload" in note:
            event = Event(event_id, datetime.fromisoformat(note["time"]), topic, note["payload"])
        else:
            row = conn.execute("SELECT id, time, topic, payload FROM events WHERE id = %s",
                               [event_id]).fetchone()
            if row is None:
                return  # pruned already
            event = Event(*row)
        self._deliver(event)

    def _seen(self, event_id: int) -> bool:
        assert self._floor is not None
        return event_id <= self._floor or event_id in self._delivered

    def _mark(self, event_id: int) -> None:
        assert self._last_id is not None
        self._delivered.add(event_id)
        if event_id > self._last_id:
            self._last_id = event_id
        if len(self._delivered) > 4 * REORDER_WINDOW_IDS:
            horizon = self._last_id - REORDER_WINDOW_IDS
            self._delivered = {seen for seen in self._delivered if seen > horizon}

    def _deliver(self, event: Event) -> None:
        if self._seen(event.id):
            return
        self._mark(event.id)
        for callback in self._callbacks_for(event.topic):
            try:
                callback(event)
            except Exception:
                log.exception("event callback %r failed on %s #%d", callback, event.topic,
                              event.id)

    def _callbacks_for(self, topic: str) -> list[Callback]:
        with self._lock:
            return [callback for prefix, callback in self._subscriptions
                    if topic.startswith(prefix)]
