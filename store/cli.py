"""CLI collection's records: each device's latest CLI status, and the SSH host keys trusted.

A device's *CLI status* is the current picture of its last CLI run (collectors/cli.py
statuses: ok, auth-failed, timeout, host-key-changed...), with the reason, since when it
holds, and for an engineer who must read the device's own words (unparseable output, an
unexpected prompt) the raw output, bounded by the collector. See 0017_cli.sql.

*Host keys* follow trust on first use: the first key a device offers is trusted and recorded
as such; a different key later is recorded as offered and refused until an engineer accepts
it, which retires the key trusted before. The rows are never deleted: who trusted which key
when stays readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

FIRST_USE = "first-use"  # trusted_by of a key trusted because it was the first one seen

_UPSERT_STATUS = """
INSERT INTO device_cli_status AS s (device_id, status, reason, changed_at, last_run_at,
                                    raw_output)
VALUES (%(device_id)s, %(status)s, %(reason)s, %(at)s, %(at)s, %(raw_output)s)
ON CONFLICT (device_id) DO UPDATE SET
    changed_at = CASE WHEN s.status IS DISTINCT FROM EXCLUDED.status
                      THEN EXCLUDED.changed_at ELSE s.changed_at END,
    status = EXCLUDED.status,
    reason = EXCLUDED.reason,
    last_run_at = EXCLUDED.last_run_at,
    raw_output = EXCLUDED.raw_output"""


@dataclass(frozen=True)
class CliStatusRow:
    device_id: int
    status: str
    reason: str | None
    changed_at: datetime
    last_run_at: datetime
    raw_output: str | None


def record_cli_status(conn: psycopg.Connection, device_id: int, status: str,
                      reason: str | None, at: datetime, raw_output: str | None = None) -> None:
    """Set a device's latest CLI status; `changed_at` moves only if the status changed."""
    record_cli_statuses(conn, [(device_id, status, reason, at, raw_output)])


def record_cli_statuses(
    conn: psycopg.Connection,
    rows: Sequence[tuple[int, str, str | None, datetime, str | None]],
) -> None:
    """`record_cli_status` for many devices: (device_id, status, reason, at, raw_output)."""
    with conn.cursor() as cursor:
        cursor.executemany(_UPSERT_STATUS, [
            {"device_id": device_id, "status": status, "reason": reason, "at": at,
             "raw_output": raw_output}
            for device_id, status, reason, at, raw_output in rows])


def cli_statuses(conn: psycopg.Connection,
                 device_ids: Sequence[int] | None = None) -> dict[int, CliStatusRow]:
    """The latest CLI status of every device (or of those named), by device id."""
    rows = conn.execute(
        """SELECT device_id, status, reason, changed_at, last_run_at, raw_output
             FROM device_cli_status
            WHERE %(ids)s::bigint[] IS NULL OR device_id = ANY(%(ids)s)""",
        {"ids": list(device_ids) if device_ids is not None else None}).fetchall()
    return {row[0]: CliStatusRow(*row) for row in rows}


# --- host keys ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostKeyRow:
    device_id: int
    device_key: str
    key_type: str  # "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256"...
    key_base64: str
    fingerprint: str  # "SHA256:..." as OpenSSH prints it
    state: str  # trusted, offered, retired
    first_seen_at: datetime
    last_seen_at: datetime
    trusted_by: str | None
    trusted_at: datetime | None


class HostKeyError(Exception):
    """An engineer's host key action that cannot be done; the message says why."""


_HOST_KEY_COLUMNS = """k.device_id, d.key, k.key_type, k.key_base64, k.fingerprint, k.state,
                       k.first_seen_at, k.last_seen_at, k.trusted_by, k.trusted_at"""


def host_keys(conn: psycopg.Connection, device_ids: Sequence[int] | None = None, *,
              states: Sequence[str] | None = None) -> list[HostKeyRow]:
    """Host keys (of every device, or those named; of any state, or those named), by device
    key, the trusted one first, then newest first."""
    rows = conn.execute(
        f"""SELECT {_HOST_KEY_COLUMNS}
              FROM device_host_keys k JOIN devices d ON d.id = k.device_id
             WHERE (%(ids)s::bigint[] IS NULL OR k.device_id = ANY(%(ids)s))
               AND (%(states)s::text[] IS NULL OR k.state = ANY(%(states)s))
             ORDER BY d.key, k.state <> 'trusted', k.last_seen_at DESC, k.id DESC""",
        {"ids": list(device_ids) if device_ids is not None else None,
         "states": list(states) if states is not None else None}).fetchall()
    return [HostKeyRow(*row) for row in rows]


def trusted_host_key(conn: psycopg.Connection, device_id: int) -> HostKeyRow | None:
    found = host_keys(conn, [device_id], states=["trusted"])
    return found[0] if found else None


def trust_first_host_key(conn: psycopg.Connection, device_id: int, key_type: str,
                         key_base64: str, fingerprint: str, at: datetime) -> HostKeyRow:
    """Trust this key on first use unless the device has a trusted key already (another
    collector got there first): either way, the key trusted now."""
    with conn.transaction():
        # serialise first contacts of one device between collectors
        conn.execute("SELECT id FROM devices WHERE id = %s FOR UPDATE", [device_id])
        trusted = trusted_host_key(conn, device_id)
        if trusted is not None:
            return trusted
        conn.execute(
            """INSERT INTO device_host_keys AS k (device_id, key_type, key_base64, fingerprint,
                   state, first_seen_at, last_seen_at, trusted_by, trusted_at)
               VALUES (%(device)s, %(type)s, %(key)s, %(fp)s, 'trusted', %(at)s, %(at)s,
                       %(by)s, %(at)s)
               ON CONFLICT (device_id, key_type, key_base64) DO UPDATE SET
                   state = 'trusted', last_seen_at = EXCLUDED.last_seen_at,
                   trusted_by = EXCLUDED.trusted_by, trusted_at = EXCLUDED.trusted_at""",
            {"device": device_id, "type": key_type, "key": key_base64, "fp": fingerprint,
             "at": at, "by": FIRST_USE})
        trusted = trusted_host_key(conn, device_id)
        assert trusted is not None
        return trusted


def record_offered_host_key(conn: psycopg.Connection, device_id: int, key_type: str,
                            key_base64: str, fingerprint: str, at: datetime) -> None:
    """A key the device offered that is not the trusted one: kept as offered (refused) until
    an engineer accepts it. A key seen before keeps its first sighting."""
    with conn.transaction():
        conn.execute(
            """INSERT INTO device_host_keys AS k (device_id, key_type, key_base64, fingerprint,
                   state, first_seen_at, last_seen_at)
               VALUES (%(device)s, %(type)s, %(key)s, %(fp)s, 'offered', %(at)s, %(at)s)
               ON CONFLICT (device_id, key_type, key_base64) DO UPDATE SET
                   last_seen_at = EXCLUDED.last_seen_at,
                   state = CASE WHEN k.state = 'trusted' THEN 'trusted' ELSE 'offered' END,
                   trusted_by = CASE WHEN k.state = 'trusted' THEN k.trusted_by END,
                   trusted_at = CASE WHEN k.state = 'trusted' THEN k.trusted_at END""",
            {"device": device_id, "type": key_type, "key": key_base64, "fp": fingerprint,
             "at": at})


def accept_host_key(conn: psycopg.Connection, device_id: int, accepted_by: str, at: datetime,
                    fingerprint: str | None = None) -> HostKeyRow:
    """An engineer's acceptance of the key a device offers now: the newest offered key (or
    the one with `fingerprint`) becomes the trusted one, the key trusted before is retired.
    HostKeyError when there is no such offered key."""
    if not accepted_by.strip():
        raise HostKeyError("who accepts the host key must be named")
    with conn.transaction():
        conn.execute("SELECT id FROM devices WHERE id = %s FOR UPDATE", [device_id])
        offered = [row for row in host_keys(conn, [device_id], states=["offered"])
                   if fingerprint is None or row.fingerprint == fingerprint]
        if not offered:
            raise HostKeyError(
                "no host key offered" + (f" with fingerprint {fingerprint}" if fingerprint
                                         else "") + ": nothing to accept")
        chosen = offered[0]
        conn.execute("UPDATE device_host_keys SET state = 'retired'"
                     " WHERE device_id = %s AND state = 'trusted'", [device_id])
        conn.execute(
            """UPDATE device_host_keys SET state = 'trusted', trusted_by = %s, trusted_at = %s
                WHERE device_id = %s AND key_type = %s AND key_base64 = %s""",
            [accepted_by, at, device_id, chosen.key_type, chosen.key_base64])
        trusted = trusted_host_key(conn, device_id)
        assert trusted is not None
        return trusted
