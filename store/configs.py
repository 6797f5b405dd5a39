"""Configuration history in the store: each device's running configuration, version by
version, and what changed when.

A device's configuration is fetched on a schedule and on demand (collectors/
config_history.py). `record_config` keeps a new version only when the text differs from the
device's latest version; the same text again only moves that version's `last_seen_at`, so
the history holds changes, not fetches. The text arrives already normalised and masked
(every secret replaced by its platform's rules): this module never sees a secret, and
refuses text that is not storable (a NUL character, more than MAX_CONFIG_BYTES) rather than
storing part of it.

A new version publishes "config.changed" (payload: device id and key, the new version, the
previous one or None for the first, the times) in the same transaction, so a listener hears
of a version only once it is readable. A change happened somewhere between the previous
version's `last_seen_at` (`changed_after`) and the new version's `fetched_at`: `config_changes`
returns the changes whose interval meets a period, which is what the alarm timeline's "what
changed?" asks (collectors.config_history.what_changed). Versions are history: the table's
trigger refuses to change them (only the latest's `last_seen_at` moves, forward).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from store.events import publish

CONFIG_CHANGED = "config.changed"

# The largest configuration text stored (UTF-8 bytes); the biggest real routers' are a few MB.
MAX_CONFIG_BYTES = 16 * 1024 * 1024


class ConfigStoreError(Exception):
    """A configuration text that cannot be stored as it is, or a device that does not exist."""


@dataclass(frozen=True)
class ConfigVersion:
    """One stored version. `text` is None where a listing left it out."""

    device_id: int
    device_key: str
    version: int
    fetched_at: datetime
    last_seen_at: datetime
    fetched_by: str
    sha256: str
    size_bytes: int
    text: str | None = None


@dataclass(frozen=True)
class ConfigChange:
    """A version that replaced another: made after `changed_after` (the previous version's
    last sighting) and by `fetched_at` (when it was first fetched)."""

    device_id: int
    device_key: str
    version: int
    previous_version: int
    changed_after: datetime
    fetched_at: datetime
    size_bytes: int


@dataclass(frozen=True)
class FetchState:
    """A device's last fetch attempt: "ok" or the CLI status that stopped it, and why."""

    device_id: int
    attempted_at: datetime
    status: str
    reason: str | None
    version: int | None


def mask_key(conn: psycopg.Connection) -> bytes:
    """The installation's key for masking secrets in configurations before they are stored
    (collectors.cli_profiles.mask_config), made at first use: one key per store, so every
    collector masks a secret alike and an unchanged configuration stays one version."""
    row = conn.execute("SELECT key FROM config_mask_key").fetchone()
    if row is None:
        conn.execute("INSERT INTO config_mask_key (key) VALUES (%s) ON CONFLICT DO NOTHING",
                     [secrets.token_bytes(32)])
        row = conn.execute("SELECT key FROM config_mask_key").fetchone()
    return bytes(row[0])


def config_digest(text: str) -> str:
    """The sha256 (hex) of a configuration text's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_storable(text: str) -> None:
    """Raise ConfigStoreError naming what is wrong with a text PostgreSQL cannot keep whole."""
    if not isinstance(text, str):
        raise ConfigStoreError(f"a configuration must be text, not {type(text).__name__}")
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise ConfigStoreError(f"the configuration has a NUL character on line {line}: "
                               "not a configuration text, nothing was stored")
    size = len(text.encode("utf-8"))
    if size > MAX_CONFIG_BYTES:
        raise ConfigStoreError(f"the configuration has {size} bytes, more than the "
                               f"{MAX_CONFIG_BYTES} stored at most: nothing was stored")


_VERSION_COLUMNS = """c.device_id, d.key, c.version, c.fetched_at, c.last_seen_at,
    c.fetched_by, c.sha256, c.size_bytes"""


def _version(row: Sequence[Any], *, with_text: bool) -> ConfigVersion:
    return ConfigVersion(*row[:8], text=row[8] if with_text else None)


def record_config(conn: psycopg.Connection, device_id: int, text: str, *, at: datetime,
                  by: str = "schedule") -> tuple[ConfigVersion, bool]:
    """Record a fetch of the device's (normalised, masked) configuration made at `at` by
    `by` ("schedule" or a person's login): a new version when the text differs from the
    latest (then "config.changed" is published), else the latest's `last_seen_at` moved.
    Returns the version in force and whether it is new. Two fetches of one device at once
    are serialised (a transaction-scoped advisory lock); runs in the caller's transaction
    when there is one. A fetch older than the latest version is not a newer configuration:
    ConfigStoreError, nothing written."""
    check_storable(text)
    if not by:
        raise ConfigStoreError("a fetch needs who made it (\"schedule\" or a login)")
    digest = config_digest(text)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                     [f"device_configs\x1f{device_id}"])
        device = conn.execute("SELECT key FROM devices WHERE id = %s",
                              [device_id]).fetchone()
        if device is None:
            raise ConfigStoreError(f"no device {device_id}")
        latest = conn.execute(
            f"""SELECT {_VERSION_COLUMNS} FROM device_configs c
                  JOIN devices d ON d.id = c.device_id
                 WHERE c.device_id = %s ORDER BY c.version DESC LIMIT 1""",
            [device_id]).fetchone()
        if latest is not None and latest[6] == digest:
            row = conn.execute(
                f"""UPDATE device_configs c SET last_seen_at = greatest(c.last_seen_at, %s)
                      FROM devices d WHERE d.id = c.device_id
                       AND c.device_id = %s AND c.version = %s
                    RETURNING {_VERSION_COLUMNS}""",
                [at, device_id, latest[2]]).fetchone()
            assert row is not None
            return _version(row, with_text=False), False
        if latest is not None and at < latest[4]:
            raise ConfigStoreError(
                f"a fetch of {device[0]} made at {at.isoformat()} is older than its version"
                f" {latest[2]} (last seen {latest[4].isoformat()}): nothing was stored")
        version = 1 if latest is None else latest[2] + 1
        row = conn.execute(
            """INSERT INTO device_configs AS c (device_id, version, fetched_at, last_seen_at,
                                                 fetched_by, sha256, size_bytes, text)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                RETURNING c.device_id, %s::text, c.version, c.fetched_at, c.last_seen_at,
                          c.fetched_by, c.sha256, c.size_bytes""",
            [device_id, version, at, at, by, digest, len(text.encode("utf-8")), text,
             device[0]]).fetchone()
        assert row is not None
        recorded = _version(row, with_text=False)
        publish(conn, CONFIG_CHANGED, {
            "device_id": device_id, "device": device[0], "version": version,
            "previous_version": latest[2] if latest is not None else None,
            "changed_after": latest[4].isoformat() if latest is not None else None,
            "fetched_at": at.isoformat(), "sha256": digest, "by": by})
    return recorded, True


def record_fetch(conn: psycopg.Connection, device_id: int, *, at: datetime, status: str,
                 reason: str | None = None, version: int | None = None) -> None:
    """Remember the device's last fetch attempt: "ok" (with the version in force) or the
    status that stopped it and why (never the device's output: it may hold secrets)."""
    conn.execute(
        """INSERT INTO device_config_fetches (device_id, attempted_at, status, reason, version)
           VALUES (%s, %s, %s, %s, %s)
           ON CONFLICT (device_id) DO UPDATE SET attempted_at = excluded.attempted_at,
               status = excluded.status, reason = excluded.reason,
               version = excluded.version""",
        [device_id, at, status, reason, version])


def fetch_states(conn: psycopg.Connection,
                 device_ids: Iterable[int] | None = None) -> dict[int, FetchState]:
    """The last fetch attempt of each device (of `device_ids`, or all) that had one."""
    ids = sorted(set(device_ids)) if device_ids is not None else None
    rows = conn.execute(
        """SELECT device_id, attempted_at, status, reason, version FROM device_config_fetches
            WHERE %(ids)s::bigint[] IS NULL OR device_id = ANY(%(ids)s)""",
        {"ids": ids}).fetchall()
    return {row[0]: FetchState(*row) for row in rows}


def config_versions(conn: psycopg.Connection, device_id: int, *,
                    limit: int | None = None) -> list[ConfigVersion]:
    """The device's versions, newest first, without their text."""
    rows = conn.execute(
        f"""SELECT {_VERSION_COLUMNS} FROM device_configs c
              JOIN devices d ON d.id = c.device_id
             WHERE c.device_id = %s ORDER BY c.version DESC LIMIT %s""",
        [device_id, limit]).fetchall()
    return [_version(row, with_text=False) for row in rows]


def get_version(conn: psycopg.Connection, device_id: int,
                version: int) -> ConfigVersion | None:
    """One version with its text; None if the device has no such version."""
    row = conn.execute(
        f"""SELECT {_VERSION_COLUMNS}, c.text FROM device_configs c
              JOIN devices d ON d.id = c.device_id
             WHERE c.device_id = %s AND c.version = %s""", [device_id, version]).fetchone()
    return _version(row, with_text=True) if row is not None else None


def config_at(conn: psycopg.Connection, device_id: int,
              at: datetime | None = None) -> ConfigVersion | None:
    """The version in force at `at` (the latest first fetched by then; None: the latest),
    with its text; None if none was fetched by then."""
    row = conn.execute(
        f"""SELECT {_VERSION_COLUMNS}, c.text FROM device_configs c
              JOIN devices d ON d.id = c.device_id
             WHERE c.device_id = %(device)s
               AND (%(at)s::timestamptz IS NULL OR c.fetched_at <= %(at)s)
             ORDER BY c.version DESC LIMIT 1""", {"device": device_id, "at": at}).fetchone()
    return _version(row, with_text=True) if row is not None else None


def config_changes(conn: psycopg.Connection, device_ids: Iterable[int], start: datetime,
                   end: datetime) -> list[ConfigChange]:
    """The changes on these devices that may have been made in [start, end]: versions after
    the first whose interval (previous version last seen, first fetched] meets it. Oldest
    first (by `fetched_at`, then device key)."""
    rows = conn.execute(
        """SELECT c.device_id, d.key, c.version, p.version, p.last_seen_at, c.fetched_at,
                  c.size_bytes
             FROM device_configs c
             JOIN device_configs p ON p.device_id = c.device_id AND p.version = c.version - 1
             JOIN devices d ON d.id = c.device_id
            WHERE c.device_id = ANY(%(ids)s)
              AND c.fetched_at >= %(start)s AND p.last_seen_at <= %(end)s
            ORDER BY c.fetched_at, d.key, c.version""",
        {"ids": sorted(set(device_ids)), "start": start, "end": end}).fetchall()
    return [ConfigChange(*row) for row in rows]


def path_devices(conn: psycopg.Connection, object_id: int,
                 circuit_ids: Iterable[int]) -> set[int]:
    """The devices an alarm's impact path names in the inventory: the alarmed object's own
    (a device itself, a port's device, both ends of a link, a circuit's), and for each
    circuit (the alarmed one and those in `circuit_ids`) its end ports' devices and its
    declared hops. A computed path's middle is the topology's (collectors.config_history
    adds it)."""
    circuits = sorted({object_id, *circuit_ids})
    rows = conn.execute(
        """SELECT id FROM devices WHERE id = %(object)s
           UNION SELECT device_id FROM ports WHERE id = %(object)s
           UNION SELECT p.device_id FROM links l JOIN ports p ON p.id IN (l.a_port_id, l.z_port_id)
                  WHERE l.id = %(object)s
           UNION SELECT p.device_id FROM circuits ci
                   JOIN ports p ON p.id IN (ci.a_port_id, ci.z_port_id)
                  WHERE ci.id = ANY(%(circuits)s)
           UNION SELECT h.device_id FROM circuit_hops h WHERE h.circuit_id = ANY(%(circuits)s)""",
        {"object": object_id, "circuits": circuits}).fetchall()
    return {row[0] for row in rows}


@dataclass(frozen=True)
class ConfigDevice:
    id: int
    key: str
    platform: str


def find_device(conn: psycopg.Connection, key: str) -> ConfigDevice | None:
    """An active device by its key; None if there is none."""
    row = conn.execute("SELECT id, key, platform FROM devices WHERE key = %s"
                       " AND retired_at IS NULL", [key]).fetchone()
    return ConfigDevice(*row) if row is not None else None
