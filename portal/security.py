"""Who is asking: the request's viewer, its session, the login and role guards, and the
login protection.

Every request is served for a `store.queries.Viewer` (login name, role, and for a customer
user the one customer it is bound to), found in this order:

1. an API token (`Authorization: Bearer kl_...`, see store.users.create_api_token), only
   under /api/; an unknown, expired or revoked token, or one whose user is retired, gets a
   JSON 401. A token has no rights of its own: its user is read on every request, so it
   acts with the user's current role and customer (and a change of them through the store
   functions revokes the user's tokens: store/users.py);
2. the session started at login (store/sessions.py). The cookie (Flask's, signed with the
   settings' session key, HttpOnly, SameSite=Lax, Secure when the settings say so) carries
   the session's random secret, beside the CSRF token and the chosen language; never who
   the user is. Each request looks the secret up in the store (`find_session`: only its
   hash is kept there) and is refused, the cookie emptied, when the session was ended
   (logout, a password change or reset, retirement, an admin's "end all sessions") or the
   timeouts end it (`settings.accounts.session_idle_timeout_s` without a request,
   `session_max_age_s` after the login). The user is read again on every request too, so a
   retired user (or a changed role or customer) takes effect at once. Live sockets are
   authenticated the same way, once at connect and at each join, and are disconnected when
   their session ends (portal/socket_sessions.py). A session seen again moves its
   `last_seen_at`, at most once a minute.

The viewer is `g.viewer` (None when nobody is logged in), its session's row id
`g.session_id`. Views hand the viewer to the scoped queries (store.queries:
`circuits_for(conn, viewer)`...), which filter in SQL: a customer asking for another
customer's object gets 404 from the view, never the data and never a "forbidden" that would
confirm the id exists.

`login_required` sends a browser to the login page (an API client gets a JSON 401);
`roles_required("noc", "admin")` answers 404 to the other roles for the same reason.

Login protection (`attempt_login`) must slow a guesser down without letting anyone lock a
user out, so there is no lockout: each failed login for a name makes the next attempt for
that name wait `login_backoff_base_s` seconds, doubled per failure up to
`login_backoff_max_s`; after the wait the right password works (the worst a stranger who
knows a name can do is make its owner wait that long). A client address that fails
`address_max_failures` times waits `address_window_s` after its last failure (one address
guessing many names). An attempt made during a wait is refused before the password is
checked and counts for nothing. The counters are rows in PostgreSQL (store/sessions.py),
shared by every portal process and kept across restarts, and the attempts on one name are
serialised (`lock_login`), so parallel guesses cannot slip in before a failure is counted.
The client address is the connection's, or, for a request from one of
`settings.trusted_proxies`, what they put in X-Forwarded-For (portal/proxies.py).

Times come from `clock()`: the app's `keyline.clock` extension, so that a test moves the
clock instead of sleeping.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import psycopg
from flask import abort, current_app, g, jsonify, redirect, request, session, url_for
from flask_wtf.csrf import generate_csrf

from config.inventory.validate import LOGIN_NAME
from config.settings import AccountSettings
from store.queries import STAFF_ROLES, Viewer
from store.sessions import (
    LOGOUT,
    PASSWORD_CHANGED,
    REPLACED,
    RETIRED,
    LoginFailures,
    clear_login_failures,
    count_login_failure,
    create_session,
    end_sessions,
    find_session,
    lock_login,
    login_failures,
    needs_touch,
    new_session_secret,
    touch_sessions,
)
from store.users import UserRecord, authenticate, authenticate_api_token, get_user

F = TypeVar("F", bound=Callable[..., Any])

# The session cookie's key for the session's secret (store/sessions.py).
SESSION_SECRET = "sid"
BAD_TOKEN_MESSAGE = "invalid, expired or revoked API token"


def viewer_for(user: UserRecord) -> Viewer:
    return Viewer(user_key=user.key, role=user.role, customer_id=user.customer_id,
                  customer_key=user.customer_key, full_name=user.full_name)


def utc_now() -> datetime:
    return datetime.now(UTC)


def clock() -> datetime:
    """Now, by the app's clock (`app.extensions["keyline.clock"]`, which a test may move)."""
    return current_app.extensions.get("keyline.clock", utc_now)()


def accounts() -> AccountSettings:
    return current_app.extensions["keyline.accounts"]


def _database() -> Any:
    return current_app.extensions["keyline.database"]


def _timeouts() -> dict[str, float]:
    rules = accounts()
    return {"idle_s": rules.session_idle_timeout_s, "max_age_s": rules.session_max_age_s}


def start_session(user: UserRecord, address: str | None) -> None:
    """Log `user` in: a new stored session whose secret only this cookie carries. Nothing
    from before the login survives it (a session planted before login is useless; one the
    browser had is ended), but the chosen language."""
    language = session.get("lang")
    previous = session.get(SESSION_SECRET)
    secret = new_session_secret()
    now = clock()
    with _database().pool.connection() as conn, conn.transaction():
        if isinstance(previous, str):
            old = find_session(conn, previous, now=now, **_timeouts())
            if old is not None:
                end_sessions(conn, reason=REPLACED, now=now, session_ids=[old.id])
        create_session(conn, user.id, secret, now=now, address=address,
                       user_agent=request.headers.get("User-Agent"))
    session.clear()
    session.permanent = True
    session[SESSION_SECRET] = secret
    if language:
        session["lang"] = language
    # The CSRF token goes into the login's own cookie, so every response after the login
    # carries the same one as the first page's forms (a fresh one: the request's cached
    # token belonged to the cleared session).
    g.pop("csrf_token", None)
    generate_csrf()


def _forget_session() -> None:
    """Empty the cookie but the chosen language."""
    language = session.get("lang")
    session.clear()
    if language:
        session["lang"] = language


def end_session() -> None:
    """Logout: end the request's stored session (if any) and empty the cookie."""
    session_id = g.get("session_id")
    if session_id is not None:
        with _database().pool.connection() as conn:
            end_sessions(conn, reason=LOGOUT, now=clock(), session_ids=[session_id])
    _forget_session()


def load_viewer() -> None:
    """Before each request (and at a socket's connect and join): set `g.viewer` (and
    `g.session_id`) from the API token or the session."""
    g.viewer = None
    g.auth_method = None
    g.session_id = None
    database = _database()
    header = request.headers.get("Authorization", "")
    if request.path.startswith("/api/") and header.startswith("Bearer "):
        with database.pool.connection() as conn:
            user = authenticate_api_token(conn, header.removeprefix("Bearer ").strip(),
                                          now=clock())
        if user is None:
            g.auth_method = "bad-token"
            return
        g.viewer = viewer_for(user)
        g.auth_method = "token"
        return
    secret = session.get(SESSION_SECRET)
    if not isinstance(secret, str) or not secret:
        if session.get("user"):  # a cookie of the signed-cookie sessions before 0010
            _forget_session()
        return
    now = clock()
    with database.pool.connection() as conn:
        found = find_session(conn, secret, now=now, **_timeouts())
        user = None
        if found is not None and found.ended_at is None:
            user = get_user(conn, found.user_key)
            ended_by = found.expiry or (
                RETIRED if user is None or user.retired
                else PASSWORD_CHANGED if not user.has_password else None)
            if ended_by is not None:
                end_sessions(conn, reason=ended_by, now=now, session_ids=[found.id])
                user = None
            elif needs_touch(found, now):
                touch_sessions(conn, [found.id], now)
    if found is None or user is None:
        _forget_session()
        return
    g.viewer = viewer_for(user)
    g.auth_method = "session"
    g.session_id = found.id


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
                message = (BAD_TOKEN_MESSAGE if g.get("auth_method") == "bad-token"
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
    """A path to go to after login, only if it stays on this site (no open redirect).

    Judged as a browser would read it: browsers drop tabs, newlines and carriage returns
    inside a URL (`/\\t/evil.example` becomes `//evil.example`, another site) and read a
    backslash as a slash, so a target with any control or format character (Unicode Cc,
    Cf: also the zero-width and bidirectional marks that disguise one) or a backslash is
    refused outright, and what is left must be a path with neither scheme nor host."""
    import unicodedata
    from urllib.parse import urlsplit

    if not isinstance(target, str) or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp")
                             for char in target):
        return None
    try:
        parts = urlsplit(target)
    except ValueError:  # e.g. an unbalanced "[" read as an IPv6 host
        return None
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return None
    return target


# --- login protection ------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginAttempt:
    """What `attempt_login` made of one attempt: the user when the password was right, else
    how long to wait before the next attempt may be checked (0: it was checked, wrong)."""

    user: UserRecord | None
    wait_s: float = 0.0


def login_keys(name: str, address: str) -> tuple[str, str]:
    """The failure counters' keys of a name and an address. A name that cannot be a login
    name (a password typed in the name field, say) is never stored: all such share one
    counter, which no real account uses."""
    return (f"user:{name}" if LOGIN_NAME.match(name) else "user:(not a login name)",
            f"addr:{address}")


def backoff_s(failures: int, rules: AccountSettings) -> float:
    """How long the next attempt for a name waits after `failures` failures in a row."""
    if failures <= 0:
        return 0.0
    return min(rules.login_backoff_max_s,
               rules.login_backoff_base_s * 2.0 ** min(failures - 1, 40))


def login_wait_s(user_failures: LoginFailures | None, address_failures: LoginFailures | None,
                 *, now: datetime, rules: AccountSettings) -> float:
    """Seconds until an attempt for this name from this address may be checked; 0: now."""
    wait = timedelta(0)
    if user_failures is not None and (
            now - user_failures.last_failure_at < timedelta(seconds=rules.login_forget_after_s)):
        wait = max(wait, user_failures.last_failure_at
                   + timedelta(seconds=backoff_s(user_failures.failures, rules)) - now)
    if address_failures is not None and address_failures.failures >= rules.address_max_failures:
        wait = max(wait, address_failures.last_failure_at
                   + timedelta(seconds=rules.address_window_s) - now)
    return max(0.0, wait.total_seconds())


def attempt_login(conn: psycopg.Connection, name: str, password: str | None, *, address: str,
                  now: datetime, rules: AccountSettings) -> LoginAttempt:
    """One login attempt for `name` from `address` (see the module docstring): refused
    unchecked during a wait; else the password checked (None: wrong without checking), a
    failure counted for the name and the address, a success clearing the name's streak
    (not the address's: one good account must not reset an address guessing others)."""
    user_key, address_key = login_keys(name, address)
    with conn.transaction():
        lock_login(conn, user_key)
        found = login_failures(conn, [user_key, address_key])
        wait_s = login_wait_s(found.get(user_key), found.get(address_key), now=now,
                              rules=rules)
        if wait_s > 0:
            return LoginAttempt(None, wait_s)
        user = authenticate(conn, name, password) if name and password is not None else None
        if user is None:
            count_login_failure(conn, user_key, now=now,
                                forget_after_s=rules.login_forget_after_s)
            count_login_failure(conn, address_key, now=now,
                                forget_after_s=rules.address_window_s)
        elif user_key in found:
            clear_login_failures(conn, user_key)
        return LoginAttempt(user)
