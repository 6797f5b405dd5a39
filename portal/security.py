"""Who is asking: the request's viewer, the login and role guards, login throttling.

Every request is served for a `store.queries.Viewer` (login name, role, and for a customer
user the one customer it is bound to), found in this order:

1. an API token (`Authorization: Bearer kl_...`, see store.users.create_api_token), only
   under /api/;
2. the session cookie set at login. Flask keeps the session in the cookie itself, signed
   with the settings' session key, HttpOnly, SameSite=Lax, Secure when the settings say so.
   The session holds only the login name and the login time: the user is read from the store
   again on every request, so a retired user (or a changed role or customer) takes effect at
   once, and a session older than `PERMANENT_SESSION_LIFETIME` is refused.

The viewer is `g.viewer` (None when nobody is logged in). Views hand it to the scoped queries
(store.queries: `circuits_for(conn, viewer)`...), which filter in SQL: a customer asking for
another customer's object gets 404 from the view, never the data and never a "forbidden"
that would confirm the id exists.

`login_required` sends a browser to the login page (an API client gets a JSON 401);
`roles_required("noc", "admin")` answers 404 to the other roles for the same reason.

Login throttling (`LoginThrottle`) counts failed logins per login name and per client
address in a sliding window, in this process's memory: enough for one portal process (the
default); several portal processes behind a balancer each count on their own, so the real
limit is the configured one times the number of processes, and a restart forgets the
counts. A throttled attempt is refused before the password is checked.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from flask import abort, current_app, g, jsonify, redirect, request, session, url_for

from store.queries import STAFF_ROLES, Viewer
from store.users import UserRecord, authenticate_api_token, get_user

F = TypeVar("F", bound=Callable[..., Any])

SESSION_USER = "user"
SESSION_LOGIN_AT = "login_at"


def viewer_for(user: UserRecord) -> Viewer:
    return Viewer(user_key=user.key, role=user.role, customer_id=user.customer_id,
                  customer_key=user.customer_key, full_name=user.full_name)


def start_session(user: UserRecord) -> None:
    """Log `user` in: a fresh session (nothing from before the login survives it, so a
    session planted before login is useless), keeping only the chosen language."""
    language = session.get("lang")
    session.clear()
    session.permanent = True
    session[SESSION_USER] = user.key
    session[SESSION_LOGIN_AT] = int(time.time())
    if language:
        session["lang"] = language


def end_session() -> None:
    language = session.get("lang")
    session.clear()
    if language:
        session["lang"] = language


def load_viewer() -> None:
    """Before each request: set `g.viewer` from the API token or the session."""
    g.viewer = None
    g.auth_method = None
    database = current_app.extensions["keyline.database"]
    header = request.headers.get("Authorization", "")
    if request.path.startswith("/api/") and header.startswith("Bearer "):
        with database.pool.connection() as conn:
            user = authenticate_api_token(conn, header.removeprefix("Bearer ").strip())
        if user is None:
            g.auth_method = "bad-token"
            return
        g.viewer = viewer_for(user)
        g.auth_method = "token"
        return
    key = session.get(SESSION_USER)
    if not key:
        return
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    login_at = session.get(SESSION_LOGIN_AT, 0)
    if not isinstance(login_at, int) or time.time() - login_at > lifetime:
        end_session()
        return
    with database.pool.connection() as conn:
        user = get_user(conn, key)
    if user is None or user.retired or not user.has_password:
        end_session()
        return
    g.viewer = viewer_for(user)
    g.auth_method = "session"


def current_viewer() -> Viewer:
    """The request's viewer (only inside views guarded by `login_required`)."""
    viewer = g.get("viewer")
    if viewer is None:
        abort(401)
    return viewer


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def login_required(view: F) -> F:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if g.get("viewer") is None:
            if _wants_json():
                message = ("invalid or revoked API token" if g.get("auth_method") == "bad-token"
                           else "authentication required")
                response = jsonify(error=message, field=None)
                response.status_code = 401
                response.headers["WWW-Authenticate"] = 'Bearer realm="keyline"'
                return response
            next_path = request.full_path if request.query_string else request.path
            return redirect(url_for("auth.login", next=next_path))
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def roles_required(*roles: str) -> Callable[[F], F]:
    """Only these roles may use the view; the others get 404 (as if it did not exist)."""

    def decorate(view: F) -> F:
        @login_required
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if current_viewer().role not in roles:
                abort(404)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


staff_required = roles_required(*STAFF_ROLES)

# The operator's own staff, who see every customer: account managers are staff too, but see
# only the customers they manage.
OPERATOR_ROLES = ("noc", "engineer", "admin")


def safe_next(target: str | None) -> str | None:
    """A path to go to after login, only if it stays on this site (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


class LoginThrottle:
    """Failed logins per key ("user:NAME", "addr:ADDRESS") within `window_s` seconds; a key
    with `limit` failures in the window is throttled until the oldest one leaves it."""

    def __init__(self, *, per_user: int = 5, per_address: int = 20, window_s: float = 900.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_user = per_user
        self.per_address = per_address
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _keys(self, user: str, address: str) -> list[tuple[str, int]]:
        return [(f"user:{user.lower()}", self.per_user), (f"addr:{address}", self.per_address)]

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    def retry_after(self, user: str, address: str) -> float:
        """Seconds until a login for `user` from `address` may be tried; 0 when it may now."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key, limit in self._keys(user, address):
                failures = self._recent(key, now)
                if len(failures) >= limit:
                    wait = max(wait, failures[len(failures) - limit] + self.window_s - now)
        return wait

    def failed(self, user: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._failures) > 10_000:  # many names tried: drop what left the window
                for key in list(self._failures):
                    self._recent(key, now)
            for key, _limit in self._keys(user, address):
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, user: str) -> None:
        """A right password clears the user's count (not the address's: one good account
        must not reset an address that is guessing others)."""
        with self._lock:
            self._failures.pop(f"user:{user.lower()}", None)


def utc_now() -> datetime:
    return datetime.now(UTC)
