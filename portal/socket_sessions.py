"""Live sockets end with the session they were opened with.

A Socket.IO connection is authenticated once, at connect, from the session cookie of its
handshake (portal/security.load_viewer; never a token), and then stays open for hours. So
that ending a session (logout, a password change or reset, retirement, an admin's "end all
sessions", the timeouts: store/sessions.py) also ends what its sockets receive, every portal
process remembers which of its sockets belongs to which stored session (`SocketSessions`,
filled by portal/live.py's connect and disconnect handlers) and disconnects them:

- at once, on the store's "session.ended" event, which names the sessions ended in any
  process (followed by the live bridge's event consumer, store.consumer, whose companion
  this is: no extra connection, no thread of its own);
- at the latest `interval_s` later, by the sweep (on the bridge consumer's tick, in its
  transaction), which finds the sessions of its sockets
  that were ended or whose user was retired behind the store functions' back (a race
  between a connect and an ending, an UPDATE by hand). The same sweep moves the
  `last_seen_at` of the sessions that have a socket open (an open live page is activity,
  so its session does not idle out under it) and ends the sessions the timeouts end
  (store.sessions.end_expired_sessions: one indexed query; with several processes each
  sweeps, and SKIP LOCKED keeps them from waiting on each other).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from datetime import datetime
from typing import Any

import psycopg

from config.settings import AccountSettings
from store.database import Database
from store.events import Event
from store.sessions import TOPIC, TOUCH_INTERVAL_S, end_expired_sessions, gone_among, touch_sessions

log = logging.getLogger(__name__)


class SocketSessions:
    """This process's sockets by session; `disconnect(sid, namespace)` drops one socket."""

    def __init__(self, database: Database, disconnect: Callable[[str, str], None],
                 rules: Callable[[], AccountSettings], clock: Callable[[], datetime], *,
                 interval_s: float = TOUCH_INTERVAL_S) -> None:
        self.database = database
        self._disconnect = disconnect
        self.rules = rules
        self.clock = clock
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._sockets: dict[str, tuple[str, int]] = {}  # sid -> (namespace, session id)
        self._next_sweep = time.monotonic() + interval_s
        self.disconnected = 0  # sockets dropped because their session ended

    def add(self, sid: str, namespace: str, session_id: int) -> None:
        with self._lock:
            self._sockets[sid] = (namespace, session_id)

    def remove(self, sid: str) -> None:
        with self._lock:
            self._sockets.pop(sid, None)

    def session_ids(self) -> set[int]:
        with self._lock:
            return {session_id for _, session_id in self._sockets.values()}

    def drop(self, session_ids: Iterable[int]) -> int:
        """Disconnect the sockets of `session_ids`; how many."""
        ended = set(session_ids)
        with self._lock:
            doomed = [(sid, namespace) for sid, (namespace, session_id) in self._sockets.items()
                      if session_id in ended]
            for sid, _ in doomed:
                del self._sockets[sid]
        for sid, namespace in doomed:  # outside the lock: the disconnect handler calls remove
            try:
                self._disconnect(sid, namespace)
            except Exception:  # gone meanwhile: nothing left to stop
                log.debug("socket %s was gone already", sid, exc_info=True)
        if doomed:
            self.disconnected += len(doomed)
            log.info("live: %d socket(s) disconnected, their session ended", len(doomed))
        return len(doomed)

    def on_event(self, event: Event) -> None:
        """A "session.ended" event: drop the sockets of the sessions it names."""
        ids = event.payload.get("sessions") or ()
        self.drop(int(i) for i in ids if isinstance(i, int) and not isinstance(i, bool))

    def sweep(self, now: datetime | None = None,
              conn: psycopg.Connection | None = None) -> list[int]:
        """Touch the sessions with a socket open, end those the timeouts end, and drop the
        sockets of sessions that may no longer be used; the session ids dropped. On `conn`
        (in its transaction) when given, else on a connection of the pool."""
        now = now or self.clock()
        ids = self.session_ids()
        rules = self.rules()
        with (nullcontext(conn) if conn is not None
              else self.database.pool.connection()) as conn:
            touch_sessions(conn, ids, now)
            ended = end_expired_sessions(conn, now=now, idle_s=rules.session_idle_timeout_s,
                                         max_age_s=rules.session_max_age_s)
            gone = set(gone_among(conn, ids)) | (set(ended) & ids)
        self.drop(gone)
        return sorted(gone)

    # --- as a companion of the live bridge (portal/live.py) ----------------------------------

    topics = (TOPIC,)  # what the bridge's consumer hands to on_event

    def tick(self, conn: psycopg.Connection) -> None:
        """The bridge consumer's tick: the sweep, every `interval_s` (0: never)."""
        if self.interval_s > 0 and time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + self.interval_s
            self.sweep(conn=conn)


def socket_disconnector(socketio: Any) -> Callable[[str, str], None]:
    """Flask-SocketIO's way to drop one socket from any thread."""
    return lambda sid, namespace: socketio.server.disconnect(sid, namespace=namespace)
