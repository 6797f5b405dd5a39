"""The notification outbox: the e-mails and webhook calls Keyline owes, as rows.

Persistence only; what a notification says and how it travels is sla/notify.py's. A rule
that decides someone must be told (a ticket opened, escalated, resolved) calls `enqueue` on
its own connection, inside the transaction that makes the change: the row exists exactly
when the change was committed, and a rollback takes both back. Each row carries an
idempotency key, unique in the table: queuing the same notification twice (a retried
transaction, a replayed event) keeps one row.

A row's life: 'pending' until due (`next_attempt_at`); `claim_due` takes due rows with
FOR UPDATE SKIP LOCKED (two notifiers never take the same row) and marks them 'sending',
with `next_attempt_at` moved to the end of a lease, all in one short transaction: no lock is
held while the notifier talks to the network. Then `mark_sent`, or `mark_retry` (back to
'pending', due later), or `mark_failed` after the last attempt (kept, visible, publishes
"notification.failed"; `retry` makes it due again by hand). A notifier killed while sending
leaves its rows 'sending': they are due again when their lease ends, and are sent again
(at least once: the receiver gets the same idempotency key each time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from config.secrets import mask_secrets
from store.events import publish

CHANNELS = ("email", "webhook")
STATES = ("pending", "sending", "sent", "failed")
FAILED_TOPIC = "notification.failed"
# last_error is one line for an operator, bounded like the column (0015_notification_outbox)
ERROR_MAX_CHARS = 1000
DESTINATION_MAX_CHARS = 320
KEY_MAX_CHARS = 500

_COLUMNS = ("id, created_at, channel, destination, subject, body, payload, language,"
            " idempotency_key, ticket_id, state, attempts, next_attempt_at, last_error,"
            " sent_at")
_O_COLUMNS = ", ".join("o." + name.strip() for name in _COLUMNS.split(","))
# no control characters (a line break would end a mail or HTTP header it travels in)
_KEY = re.compile(rf"[^\x00-\x1f\x7f]{{1,{KEY_MAX_CHARS}}}")


class OutboxError(Exception):
    """A notification cannot be queued or changed as asked; the message says why."""


@dataclass(frozen=True)
class OutboxRow:
    id: int
    created_at: datetime
    channel: str
    destination: str
    subject: str
    body: str
    payload: dict[str, Any]
    language: str | None
    idempotency_key: str
    ticket_id: int | None
    state: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    sent_at: datetime | None


def bounded_error(text: str) -> str:
    """An error as stored in last_error: one line, registered secrets masked, bounded."""
    line = mask_secrets(" ".join(str(text).split()))
    return line if len(line) <= ERROR_MAX_CHARS else line[:ERROR_MAX_CHARS - 1] + "…"


def enqueue(conn: psycopg.Connection, channel: str, destination: str, subject: str,
            body: str, payload: dict[str, Any], idempotency_key: str, *,
            language: str | None = None, ticket_id: int | None = None) -> int | None:
    """Queue a notification in the caller's transaction; its id, or None when a notification
    with this idempotency key is queued already (nothing changes then)."""
    if channel not in CHANNELS:
        raise OutboxError(f"channel: {channel!r} is not one of {', '.join(CHANNELS)}")
    if not destination or len(destination) > DESTINATION_MAX_CHARS:
        raise OutboxError(f"destination: 1 to {DESTINATION_MAX_CHARS} characters")
    if "://" in destination:
        # a webhook is named, never addressed: its URL may carry a token (settings only)
        raise OutboxError("destination: name the webhook of the [notify] settings, not a URL")
    if not _KEY.fullmatch(idempotency_key):
        raise OutboxError(f"idempotency_key: 1 to {KEY_MAX_CHARS} characters, no control"
                          " characters")
    row = conn.execute(
        "INSERT INTO notification_outbox (channel, destination, subject, body, payload,"
        " language, idempotency_key, ticket_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        [channel, destination, subject, body, Jsonb(payload), language, idempotency_key,
         ticket_id]).fetchone()
    return row[0] if row else None


def claim_due(conn: psycopg.Connection, limit: int, now: datetime, *,
              lease_until: datetime) -> list[OutboxRow]:
    """Take up to `limit` rows due at `now` (pending, or sending with their lease over),
    oldest due first: each becomes 'sending', one attempt more, leased until `lease_until`.
    Rows another transaction holds are skipped. Commit at once: the lease, not a lock,
    keeps other notifiers off the rows while they are sent."""
    cursor = conn.cursor(row_factory=class_row(OutboxRow))
    return cursor.execute(
        "WITH due AS (SELECT id FROM notification_outbox"
        "  WHERE state IN ('pending', 'sending') AND next_attempt_at <= %(now)s"
        "  ORDER BY next_attempt_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
        " UPDATE notification_outbox o SET state = 'sending', attempts = o.attempts + 1,"
        "  next_attempt_at = %(lease_until)s FROM due WHERE o.id = due.id"
        f" RETURNING {_O_COLUMNS}",
        {"now": now, "limit": limit, "lease_until": lease_until}).fetchall()


def mark_sent(conn: psycopg.Connection, row_id: int, sent_at: datetime) -> bool:
    """The row was delivered; False when it is no longer being sent (a notifier whose lease
    ran out, while another sent it too)."""
    done = conn.execute(
        "UPDATE notification_outbox SET state = 'sent', sent_at = %s, last_error = NULL"
        " WHERE id = %s AND state = 'sending'", [sent_at, row_id])
    return done.rowcount == 1


def mark_retry(conn: psycopg.Connection, row_id: int, error: str,
               next_attempt_at: datetime) -> bool:
    """The attempt failed: pending again, due at `next_attempt_at`, with the error kept."""
    done = conn.execute(
        "UPDATE notification_outbox SET state = 'pending', next_attempt_at = %s,"
        " last_error = %s WHERE id = %s AND state = 'sending'",
        [next_attempt_at, bounded_error(error), row_id])
    return done.rowcount == 1


def mark_failed(conn: psycopg.Connection, row_id: int, error: str) -> bool:
    """The row gives up after its last attempt: 'failed', kept with its error, and the event
    "notification.failed" published (in the same transaction)."""
    row = conn.execute(
        "UPDATE notification_outbox SET state = 'failed', last_error = %s"
        " WHERE id = %s AND state = 'sending'"
        " RETURNING channel, destination, ticket_id, attempts",
        [bounded_error(error), row_id]).fetchone()
    if row is None:
        return False
    channel, destination, ticket_id, attempts = row
    publish(conn, FAILED_TOPIC, {"id": row_id, "channel": channel, "destination": destination,
                                 "ticket_id": ticket_id, "attempts": attempts})
    return True


def retry(conn: psycopg.Connection, row_id: int) -> OutboxRow:
    """Make a failed (or waiting) row due now, by hand: one more attempt; if it fails, the
    row is 'failed' again. Raises OutboxError for an unknown row or one already sent."""
    cursor = conn.cursor(row_factory=class_row(OutboxRow))
    row = cursor.execute(
        "UPDATE notification_outbox SET state = 'pending', next_attempt_at = now()"
        f" WHERE id = %s AND state IN ('failed', 'pending') RETURNING {_COLUMNS}",
        [row_id]).fetchone()
    if row is not None:
        return row
    found = conn.execute("SELECT state FROM notification_outbox WHERE id = %s",
                         [row_id]).fetchone()
    if found is None:
        raise OutboxError(f"no notification {row_id}")
    raise OutboxError(f"notification {row_id} is {found[0]}: only a failed or waiting"
                      " notification can be retried")


def get(conn: psycopg.Connection, row_id: int) -> OutboxRow | None:
    cursor = conn.cursor(row_factory=class_row(OutboxRow))
    return cursor.execute(f"SELECT {_COLUMNS} FROM notification_outbox WHERE id = %s",
                          [row_id]).fetchone()


def list_recent(conn: psycopg.Connection, states: tuple[str, ...] | list[str] = STATES,
                limit: int = 100, *, with_errors: bool = False) -> list[OutboxRow]:
    """The newest rows in `states`, newest first; `with_errors`: only rows whose last
    attempt failed (the failed ones and those waiting for a retry)."""
    unknown = set(states) - set(STATES)
    if unknown:
        raise OutboxError(f"states: {', '.join(sorted(unknown))} not one of {', '.join(STATES)}")
    cursor = conn.cursor(row_factory=class_row(OutboxRow))
    return cursor.execute(
        f"SELECT {_COLUMNS} FROM notification_outbox WHERE state = ANY(%s)"
        f"{' AND last_error IS NOT NULL' if with_errors else ''}"
        " ORDER BY created_at DESC, id DESC LIMIT %s", [list(states), limit]).fetchall()


def counts(conn: psycopg.Connection) -> dict[str, int]:
    """How many rows are in each state (every state named, 0 when none)."""
    found = dict(conn.execute(
        "SELECT state, count(*) FROM notification_outbox GROUP BY state").fetchall())
    return {state: found.get(state, 0) for state in STATES}
