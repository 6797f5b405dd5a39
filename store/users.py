"""Users and their passwords.

Who may log in, and as what, comes from the inventory (or `keyline user add` for a local
account that no import will retire). A password is never in a file: it is set from the
command line and stored only as an Argon2id hash (argon2-cffi's defaults, which follow the
RFC 9106 recommendation). A retired user cannot log in, but stays in the history of the
alarms and tickets it touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from config.inventory.model import USER_ROLES
from config.inventory.validate import LOGIN_NAME

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
        customer_id = None
        if customer is not None:
            row = conn.execute(
                "SELECT id FROM customers WHERE key = %s AND retired_at IS NULL", [customer]
            ).fetchone()
            if row is None:
                raise UserError(f"customer {customer!r} does not exist")
            customer_id = row[0]
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
    """Set (or replace) the password of an existing, active user."""
    check_password_strength(password)
    with conn.transaction():
        row = conn.execute(
            "SELECT retired_at IS NOT NULL FROM users WHERE key = %s FOR UPDATE", [key]
        ).fetchone()
        if row is None:
            raise UserError(f"user {key!r} does not exist: declare it in the inventory or use"
                            " 'keyline user add'")
        if row[0]:
            raise UserError(f"user {key!r} is retired")
        conn.execute(
            "UPDATE users SET password_hash = %s, password_set_at = now() WHERE key = %s",
            [hash_password(password), key],
        )


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
