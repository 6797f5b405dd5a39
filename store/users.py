"""Users and their passwords.

Who may log in, and as what, comes from the inventory (or `keyline user add` for a local
account that no import will retire). A password is never in a file: it is set from the
command line and stored only as an Argon2id hash (argon2-cffi's defaults, which follow the
RFC 9106 recommendation). A retired user cannot log in, but stays in the history of the
alarms and tickets it touched.

API clients authenticate with tokens (`create_api_token`): random strings shown once, of
which only a SHA-256 hash is stored (migration 0007). A token expires (`expires_days`,
migration 0010) and can be revoked; a password change or reset revokes the user's tokens
except *service* tokens (made for a system, not a person), and retirement revokes them all,
so restoring a retired user gives none of them back. The same changes end the user's portal
sessions (store/sessions.py), in the same transaction: there is no moment at which the new
password is set and an old session still works.

A change of a user's role or customer (`set_user_role` for a local user, an inventory
import for the inventory's: `end_scope_changes`) ends its sessions and live sockets too
(reason "role changed"), and revokes every one of its tokens, service tokens too. A token
never carries rights of its own: each request reads its user again
(`authenticate_api_token`), so even a change made behind these functions' back acts at
once, with the new rights. Revoking still matters: a token was handed to a script for a
purpose under the old scope (a customer's ERP reading customer 1), and must not go on
working as the user's new scope (customer 2, or admin) without a person issuing it again.

The demo's login (`reset_demo_user`) is a local admin whose random password is printed once
when the demo starts.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from config.inventory.model import USER_ROLES
from config.inventory.validate import LOGIN_NAME
from config.settings import DEFAULT_TOKEN_EXPIRY_DAYS
from store.sessions import ENDED_BY_ADMIN, PASSWORD_CHANGED, RETIRED, ROLE_CHANGED, end_sessions

MIN_PASSWORD_LENGTH = 10

_hasher = PasswordHasher()


class UserError(Exception):
    """A user could not be added or changed; the message says why (never the password)."""


@dataclass(frozen=True)
class UserRecord:
    id: int
    key: str
    role: str
    customer_id: int | None
    customer_key: str | None
    full_name: str | None
    origin: str
    has_password: bool
    retired: bool


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password too short: at least {MIN_PASSWORD_LENGTH} characters")
    if password.strip() != password:
        raise UserError("password must not start or end with spaces")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


_SELECT = """
    SELECT u.id, u.key, u.role, u.customer_id, c.key, u.full_name, u.origin,
           u.password_hash IS NOT NULL, u.retired_at IS NOT NULL
      FROM users u LEFT JOIN customers c ON c.id = u.customer_id
"""


def get_user(conn: psycopg.Connection, key: str) -> UserRecord | None:
    row = conn.execute(_SELECT + " WHERE u.key = %s", [key]).fetchone()
    return UserRecord(*row) if row else None


def list_users(conn: psycopg.Connection) -> list[UserRecord]:
    return [UserRecord(*row) for row in conn.execute(_SELECT + " ORDER BY u.key")]


def add_local_user(
    conn: psycopg.Connection,
    key: str,
    role: str,
    password: str,
    *,
    customer: str | None = None,
    full_name: str | None = None,
) -> UserRecord:
    """Create a user that the inventory does not declare, with its password."""
    if not LOGIN_NAME.match(key):
        raise UserError(
            f"login name {key!r} is not valid: lower-case letters, digits, '.', '_', '-',"
            " starting with a letter"
        )
    if role not in USER_ROLES:
        raise UserError(f"role {role!r} is not one of {', '.join(USER_ROLES)}")
    if (role == "customer") != (customer is not None):
        raise UserError("a customer user must name its customer (--customer), other roles must not")
    check_password_strength(password)
    with conn.transaction():
        if get_user(conn, key) is not None:
            raise UserError(f"user {key!r} exists already: use 'keyline user passwd {key}'")
        customer_id = _customer_id(conn, role, customer)
        conn.execute(
            """INSERT INTO users (key, role, customer_id, full_name, password_hash,
                                  password_set_at, origin, spec, source)
               VALUES (%s, %s, %s, %s, %s, now(), 'local', '{}', 'keyline user add')""",
            [key, role, customer_id, full_name, hash_password(password)],
        )
    record = get_user(conn, key)
    assert record is not None
    return record


def set_password(conn: psycopg.Connection, key: str, password: str) -> None:
    """Set (or replace) the password of an existing, active user; in the same transaction,
    end its sessions and revoke its personal API tokens (service tokens stay)."""
    check_password_strength(password)
    with conn.transaction():
        row = conn.execute(
            "SELECT id, retired_at IS NOT NULL FROM users WHERE key = %s FOR UPDATE", [key]
        ).fetchone()
        if row is None:
            raise UserError(f"user {key!r} does not exist: declare it in the inventory or use"
                            " 'keyline user add'")
        if row[1]:
            raise UserError(f"user {key!r} is retired")
        conn.execute(
            "UPDATE users SET password_hash = %s, password_set_at = now() WHERE id = %s",
            [hash_password(password), row[0]],
        )
        end_sessions(conn, reason=PASSWORD_CHANGED, user_ids=[row[0]])
        _revoke_tokens(conn, [row[0]], TOKEN_PASSWORD_CHANGED, service_too=False)


def end_user_sessions(conn: psycopg.Connection, key: str) -> list[int]:
    """An admin's "end all sessions" of user `key`: the ids of the sessions ended (their
    live sockets are disconnected by every portal process, store/sessions.py)."""
    with conn.transaction():
        row = conn.execute("SELECT id FROM users WHERE key = %s", [key]).fetchone()
        if row is None:
            raise UserError(f"user {key!r} does not exist")
        return end_sessions(conn, reason=ENDED_BY_ADMIN, user_ids=[row[0]])


def cut_off_users(conn: psycopg.Connection, user_ids: Iterable[int]) -> None:
    """What retiring users does besides `retired_at` (inside the caller's transaction): end
    their sessions and revoke every one of their API tokens, service tokens too. Called by
    `set_local_user_retired` and by an inventory import that retires users."""
    ids = list(user_ids)
    if ids:
        end_sessions(conn, reason=RETIRED, user_ids=ids)
        _revoke_tokens(conn, ids, TOKEN_USER_RETIRED, service_too=True)


def _customer_id(conn: psycopg.Connection, role: str, customer: str | None) -> int | None:
    """The id of `customer` for a user of `role` (checked: a customer user names an active
    customer, the other roles none)."""
    if role not in USER_ROLES:
        raise UserError(f"role {role!r} is not one of {', '.join(USER_ROLES)}")
    if (role == "customer") != (customer is not None):
        raise UserError("a customer user must name its customer (--customer), other roles must not")
    if customer is None:
        return None
    row = conn.execute(
        "SELECT id FROM customers WHERE key = %s AND retired_at IS NULL", [customer]
    ).fetchone()
    if row is None:
        raise UserError(f"customer {customer!r} does not exist")
    return row[0]


def user_scopes(conn: psycopg.Connection) -> dict[int, tuple[str, int | None]]:
    """Every user's (role, customer id) by user id: what `end_scope_changes` compares."""
    return {row[0]: (row[1], row[2])
            for row in conn.execute("SELECT id, role, customer_id FROM users")}


def end_scope_changes(conn: psycopg.Connection,
                      before: dict[int, tuple[str, int | None]]) -> list[int]:
    """Inside the caller's transaction: for every user whose role or customer is no longer
    what `before` (`user_scopes`) says, end its sessions and revoke all its tokens (see the
    module docstring). The ids of those users."""
    changed = [user_id for user_id, scope in user_scopes(conn).items()
               if user_id in before and before[user_id] != scope]
    if changed:
        end_sessions(conn, reason=ROLE_CHANGED, user_ids=changed)
        _revoke_tokens(conn, changed, TOKEN_ROLE_CHANGED, service_too=True)
    return changed


def set_user_role(conn: psycopg.Connection, key: str, role: str,
                  customer: str | None = None) -> UserRecord:
    """Give the local user `key` another role (and, for role customer, its customer). When
    that changes anything, its sessions end and its tokens are revoked in the same
    transaction (`end_scope_changes`). Only local users: the inventory's users change in
    the inventory files (an import would undo a change made here)."""
    with conn.transaction():
        row = conn.execute("SELECT origin FROM users WHERE key = %s FOR UPDATE",
                           [key]).fetchone()
        if row is None:
            raise UserError(f"user {key!r} does not exist")
        if row[0] != "local":
            raise UserError(f"user {key!r} comes from the inventory: change it there")
        customer_id = _customer_id(conn, role, customer)
        before = user_scopes(conn)
        conn.execute("UPDATE users SET role = %s, customer_id = %s, updated_at = now()"
                     " WHERE key = %s", [role, customer_id, key])
        end_scope_changes(conn, before)
    record = get_user(conn, key)
    assert record is not None
    return record


def set_local_user_retired(conn: psycopg.Connection, key: str, retired: bool) -> UserRecord:
    """Retire (disable) or restore a local user. A retired user cannot log in, its sessions
    end and its API tokens are revoked at once (`cut_off_users`; restoring it gives none
    back); its row stays, for the history it is part of. Only local users: the inventory's
    users are retired and restored by the inventory files (an import would undo a change
    made here)."""
    with conn.transaction():
        row = conn.execute(
            "SELECT origin, retired_at IS NOT NULL FROM users WHERE key = %s FOR UPDATE", [key]
        ).fetchone()
        if row is None:
            raise UserError(f"user {key!r} does not exist")
        if row[0] != "local":
            raise UserError(f"user {key!r} comes from the inventory: retire it there")
        if row[1] != retired:
            user_id = conn.execute(
                "UPDATE users SET retired_at = CASE WHEN %s THEN now() END, updated_at = now()"
                " WHERE key = %s RETURNING id", [retired, key]).fetchone()[0]
            if retired:
                cut_off_users(conn, [user_id])
    record = get_user(conn, key)
    assert record is not None
    return record


def authenticate(conn: psycopg.Connection, key: str, password: str) -> UserRecord | None:
    """The user if the password is right and the user is active; None otherwise."""
    row = conn.execute(
        "SELECT password_hash FROM users WHERE key = %s AND retired_at IS NULL", [key]
    ).fetchone()
    if row is None or row[0] is None:
        # Spend the same time as a real check, so timing does not tell which names exist.
        password_matches(_DUMMY_HASH, password)
        return None
    if not password_matches(row[0], password):
        return None
    return get_user(conn, key)


_DUMMY_HASH = hash_password("not a real password, only for timing")


# --- API tokens ----------------------------------------------------------------------------

TOKEN_PREFIX = "kl_"
TOKEN_MAX_EXPIRY_DAYS = 3650

# Why a token was revoked, as revoke_reason stores it.
TOKEN_REVOKED = "revoked"
TOKEN_PASSWORD_CHANGED = "password changed"
TOKEN_USER_RETIRED = "user retired"
TOKEN_ROLE_CHANGED = ROLE_CHANGED


@dataclass(frozen=True)
class ApiToken:
    id: int
    user_key: str
    label: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool
    expires_at: datetime
    service: bool
    revoke_reason: str | None
    revoked_at: datetime | None

    def state(self, now: datetime) -> str:
        """"active", "expired", "revoked" or "revoked (why)", as the listings say it."""
        if self.revoked:
            reason = self.revoke_reason or TOKEN_REVOKED
            return "revoked" if reason == TOKEN_REVOKED else f"revoked ({reason})"
        return "expired" if self.expires_at <= now else "active"


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_token(conn: psycopg.Connection, user_key: str, label: str, *,
                     expires_days: int = DEFAULT_TOKEN_EXPIRY_DAYS, service: bool = False,
                     now: datetime | None = None) -> str:
    """Create an API token acting as `user_key`, valid for `expires_days` days from `now`
    (default: the database's clock); a `service` token outlives its user's password changes.
    Return it (the only time it is known: the store keeps its hash)."""
    label = label.strip()
    if not label:
        raise UserError("a token needs a label (what will use it)")
    if not 1 <= expires_days <= TOKEN_MAX_EXPIRY_DAYS:
        raise UserError(f"--expires-days must be 1 to {TOKEN_MAX_EXPIRY_DAYS},"
                        f" not {expires_days}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with conn.transaction():
        row = conn.execute(
            "SELECT id FROM users WHERE key = %s AND retired_at IS NULL", [user_key]
        ).fetchone()
        if row is None:
            raise UserError(f"user {user_key!r} does not exist or is retired")
        conn.execute(
            """INSERT INTO api_tokens (user_id, label, prefix, token_hash, created_at,
                                       expires_at, service)
               VALUES (%(user)s, %(label)s, %(prefix)s, %(hash)s, coalesce(%(now)s, now()),
                       coalesce(%(now)s, now()) + %(lifetime)s, %(service)s)""",
            {"user": row[0], "label": label, "prefix": token[:len(TOKEN_PREFIX) + 6],
             "hash": _token_hash(token), "now": now,
             "lifetime": timedelta(days=expires_days), "service": service},
        )
    return token


def list_api_tokens(conn: psycopg.Connection, user_key: str | None = None) -> list[ApiToken]:
    rows = conn.execute(
        """SELECT t.id, u.key, t.label, t.prefix, t.created_at, t.last_used_at,
                  t.revoked_at IS NOT NULL, t.expires_at, t.service, t.revoke_reason,
                  t.revoked_at
             FROM api_tokens t JOIN users u ON u.id = t.user_id
            WHERE %(user)s::text IS NULL OR u.key = %(user)s ORDER BY u.key, t.id""",
        {"user": user_key},
    )
    return [ApiToken(*row) for row in rows]


def revoke_api_token(conn: psycopg.Connection, token_id: int) -> None:
    if not 0 < token_id < 2**63:  # not a bigint: no such token, and no database error
        raise UserError(f"no active token with id {token_id}")
    with conn.transaction():
        done = conn.execute(
            "UPDATE api_tokens SET revoked_at = now(), revoke_reason = %s"
            " WHERE id = %s AND revoked_at IS NULL",
            [TOKEN_REVOKED, token_id],
        ).rowcount
    if not done:
        raise UserError(f"no active token with id {token_id}")


def _revoke_tokens(conn: psycopg.Connection, user_ids: list[int], reason: str, *,
                   service_too: bool) -> int:
    return conn.execute(
        """UPDATE api_tokens SET revoked_at = now(), revoke_reason = %s
            WHERE user_id = ANY(%s) AND revoked_at IS NULL AND (%s OR NOT service)""",
        [reason, user_ids, service_too]).rowcount


def authenticate_api_token(conn: psycopg.Connection, token: str, *,
                           now: datetime | None = None) -> UserRecord | None:
    """The user a presented token acts as at `now` (default: the database's clock), or None
    (unknown, revoked, expired, user retired)."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    with conn.transaction():
        row = conn.execute(
            """UPDATE api_tokens t SET last_used_at = coalesce(%(now)s, now())
                 FROM users u
                WHERE t.token_hash = %(hash)s AND t.revoked_at IS NULL
                  AND t.expires_at > coalesce(%(now)s, now())
                  AND u.id = t.user_id AND u.retired_at IS NULL
            RETURNING u.key""",
            {"hash": _token_hash(token), "now": now},
        ).fetchone()
    return get_user(conn, row[0]) if row else None


# --- the demo's login ----------------------------------------------------------------------

DEMO_USER = "demo"


def reset_demo_user(conn: psycopg.Connection) -> tuple[str, str]:
    """Create (or reset) the local admin `demo` with a new random password; return the login
    name and the password, which the demo prints once at start and nothing else keeps."""
    password = secrets.token_urlsafe(12)
    existing = get_user(conn, DEMO_USER)
    if existing is None:
        add_local_user(conn, DEMO_USER, "admin", password, full_name="Keyline demo")
    elif existing.origin != "local":
        raise UserError(f"the inventory declares a user {DEMO_USER!r}: the demo will not reset it")
    else:
        with conn.transaction():
            scopes = user_scopes(conn)
            conn.execute("UPDATE users SET retired_at = NULL, role = 'admin', customer_id = NULL"
                         " WHERE key = %s", [DEMO_USER])
            end_scope_changes(conn, scopes)
        set_password(conn, DEMO_USER, password)
    return DEMO_USER, password
