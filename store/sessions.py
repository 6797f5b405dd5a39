"""Portal sessions and failed-login counters, kept in PostgreSQL so that every portal process
sees the same ones.

A *session* is one login of one user in one browser. The browser's cookie carries a random
secret (`new_session_secret`); the store keeps only its SHA-256 hash, the user, when it began
and was last seen, and from which address and user agent. A session is open until it is
*ended*: by logout, by its idle or absolute timeout, and, for every session of a user at
once, by a password change or reset, retirement, a change of its role or customer, or an
admin's "end all sessions"
(store/users.py calls `end_sessions` inside those changes' own transactions). Ending
sessions records one "session.ended" event naming their row ids (never their secrets), so
that every portal process disconnects the live sockets opened with them
(portal/socket_sessions.py). The timeouts are one SQL rule (`_EXPIRY`), used both when a
request presents its session and by the periodic sweep that ends the sessions nobody
presents any more.

`last_seen_at` moves at most once per `TOUCH_INTERVAL_S` (a write per request would cost
more than the request), so the idle timeout is exact to that interval.

*Login failures* are counted per key ("user:NAME", "addr:ADDRESS") in `login_failures`:
how many in the current streak and when the first and the last happened. The rules that
read them (the backoff, the per-address limit) are portal/security.py's; `lock_login`
serialises the attempts on one name across processes, so parallel guesses cannot slip in
before a failure is counted.

Times are the caller's (`now`), so that a test can move a clock instead of waiting.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from store.events import publish

TOPIC = "session.ended"
TOUCH_INTERVAL_S = 60
USER_AGENT_MAX_CHARS = 300

# Why a session ends, as end_reason stores it.
LOGOUT = "logout"
IDLE = "idle"
EXPIRED = "expired"
PASSWORD_CHANGED = "password changed"
RETIRED = "retired"
ENDED_BY_ADMIN = "ended by an admin"
ROLE_CHANGED = "role changed"
REPLACED = "replaced by a new login"

# The timeouts: NULL while the session may go on, else why it may not (%(now)s, %(idle_s)s
# and %(max_age_s)s are parameters of the query that uses it).
_EXPIRY = """CASE WHEN s.created_at <= %(now)s - make_interval(secs => %(max_age_s)s)
                  THEN 'expired'
                  WHEN s.last_seen_at <= %(now)s - make_interval(secs => %(idle_s)s)
                  THEN 'idle' END"""


@dataclass(frozen=True)
class Session:
    id: int
    user_id: int
    user_key: str
    created_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None
    end_reason: str | None
    address: str | None
    user_agent: str | None
    # Why the timeouts end it now (IDLE, EXPIRED), None while it may go on; only from
    # find_session.
    expiry: str | None = None


def new_session_secret() -> str:
    return secrets.token_urlsafe(32)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_session(conn: psycopg.Connection, user_id: int, secret: str, *, now: datetime,
                   address: str | None, user_agent: str | None) -> int:
    """Record a new open session for `secret` (only its hash is kept); its row id."""
    row = conn.execute(
        """INSERT INTO sessions (user_id, secret_hash, created_at, last_seen_at, address,
                                 user_agent)
           VALUES (%s, %s, %s, %s, %s, %s) RETURNING id""",
        [user_id, _hash(secret), now, now, address,
         (user_agent or "")[:USER_AGENT_MAX_CHARS] or None],
    ).fetchone()
    assert row is not None
    return row[0]


_COLUMNS = """s.id, s.user_id, u.key, s.created_at, s.last_seen_at, s.ended_at, s.end_reason,
              s.address, s.user_agent"""


def find_session(conn: psycopg.Connection, secret: str, *, now: datetime, idle_s: float,
                 max_age_s: float) -> Session | None:
    """The session whose secret this is (open or ended), with `expiry` set when the timeouts
    end it at `now`; None for an unknown secret."""
    row = conn.execute(
        f"""SELECT {_COLUMNS}, {_EXPIRY}
              FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.secret_hash = %(hash)s""",
        {"hash": _hash(secret), "now": now, "idle_s": idle_s, "max_age_s": max_age_s},
    ).fetchone()
    return Session(*row) if row else None


def touch_sessions(conn: psycopg.Connection, session_ids: Iterable[int], now: datetime) -> None:
    """The sessions were used at `now`: move their `last_seen_at` (if open and older than
    TOUCH_INTERVAL_S; never backwards)."""
    ids = list(session_ids)
    if ids:
        conn.execute(
            """UPDATE sessions SET last_seen_at = %(now)s
                WHERE id = ANY(%(ids)s) AND ended_at IS NULL
                  AND last_seen_at <= %(now)s - make_interval(secs => %(touch)s)""",
            {"ids": ids, "now": now, "touch": TOUCH_INTERVAL_S})


def needs_touch(session: Session, now: datetime) -> bool:
    return now - session.last_seen_at >= timedelta(seconds=TOUCH_INTERVAL_S)


def end_sessions(conn: psycopg.Connection, *, reason: str, now: datetime | None = None,
                 user_ids: Iterable[int] = (), session_ids: Iterable[int] = ()) -> list[int]:
    """End the open sessions of `user_ids` and the open sessions `session_ids`; return the
    ids ended, announced in one "session.ended" event (in the caller's transaction)."""
    rows = conn.execute(
        """UPDATE sessions SET ended_at = coalesce(%(now)s, now()), end_reason = %(reason)s
            WHERE ended_at IS NULL AND (user_id = ANY(%(users)s) OR id = ANY(%(ids)s))
        RETURNING id""",
        {"now": now, "reason": reason, "users": list(user_ids), "ids": list(session_ids)},
    ).fetchall()
    ended = sorted(row[0] for row in rows)
    if ended:
        publish(conn, TOPIC, {"sessions": ended, "reason": reason})
    return ended


def end_expired_sessions(conn: psycopg.Connection, *, now: datetime, idle_s: float,
                         max_age_s: float) -> list[int]:
    """End every open session the timeouts end at `now` (idle, or too old); their ids."""
    ended: list[int] = []
    with conn.transaction():
        rows = conn.execute(
            f"""SELECT s.id, {_EXPIRY} FROM sessions s
                 WHERE s.ended_at IS NULL AND {_EXPIRY} IS NOT NULL
                 FOR UPDATE SKIP LOCKED""",
            {"now": now, "idle_s": idle_s, "max_age_s": max_age_s}).fetchall()
        for reason in (IDLE, EXPIRED):
            ids = [session_id for session_id, why in rows if why == reason]
            if ids:
                ended += end_sessions(conn, reason=reason, now=now, session_ids=ids)
    return sorted(ended)


def gone_among(conn: psycopg.Connection, session_ids: Iterable[int]) -> list[int]:
    """Those of `session_ids` that may no longer be used: ended, or their user retired (a
    retirement made behind the store functions' back, by plain SQL, included)."""
    ids = list(session_ids)
    if not ids:
        return []
    rows = conn.execute(
        """SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id
            WHERE s.id = ANY(%s) AND (s.ended_at IS NOT NULL OR u.retired_at IS NOT NULL)
            ORDER BY s.id""", [ids]).fetchall()
    return [row[0] for row in rows]


def open_sessions(conn: psycopg.Connection, user_key: str | None = None) -> list[Session]:
    """The open sessions (of one user, or everyone's), newest first."""
    rows = conn.execute(
        f"""SELECT {_COLUMNS} FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.ended_at IS NULL AND (%(user)s::text IS NULL OR u.key = %(user)s)
             ORDER BY s.created_at DESC, s.id DESC""",
        {"user": user_key}).fetchall()
    return [Session(*row) for row in rows]


# --- failed logins -------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginFailures:
    failures: int
    first_failure_at: datetime
    last_failure_at: datetime


def lock_login(conn: psycopg.Connection, key: str) -> None:
    """Serialise login attempts on `key` until the caller's transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                 ["keyline.login:" + key])


def login_failures(conn: psycopg.Connection, keys: Iterable[str]) -> dict[str, LoginFailures]:
    rows = conn.execute(
        "SELECT key, failures, first_failure_at, last_failure_at FROM login_failures"
        " WHERE key = ANY(%s)", [list(keys)]).fetchall()
    return {row[0]: LoginFailures(*row[1:]) for row in rows}


def count_login_failure(conn: psycopg.Connection, key: str, *, now: datetime,
                        forget_after_s: float) -> LoginFailures:
    """One more failure for `key` at `now`; a streak whose last failure is `forget_after_s`
    old starts again at 1. Rows forgotten that long ago are deleted on the way."""
    conn.execute("DELETE FROM login_failures"
                 " WHERE last_failure_at < %s - make_interval(secs => %s)",
                 [now, max(forget_after_s, 86_400)])
    row = conn.execute(
        """INSERT INTO login_failures AS f (key, failures, first_failure_at, last_failure_at)
           VALUES (%(key)s, 1, %(now)s, %(now)s)
           ON CONFLICT (key) DO UPDATE SET
               failures = CASE WHEN f.last_failure_at <= %(now)s - %(forget)s THEN 1
                               ELSE f.failures + 1 END,
               first_failure_at = CASE WHEN f.last_failure_at <= %(now)s - %(forget)s
                                       THEN %(now)s ELSE f.first_failure_at END,
               last_failure_at = greatest(f.last_failure_at, %(now)s)
        RETURNING failures, first_failure_at, last_failure_at""",
        {"key": key, "now": now, "forget": timedelta(seconds=forget_after_s)},
    ).fetchone()
    assert row is not None
    return LoginFailures(*row)


def clear_login_failures(conn: psycopg.Connection, key: str) -> None:
    conn.execute("DELETE FROM login_failures WHERE key = %s", [key])
