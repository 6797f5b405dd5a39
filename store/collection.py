"""What the collectors could not keep, and how the running services are doing.

**Drops.** What a full spool dropped, recorded as gaps.

When the store is away long enough to fill the collector's sample spool (collectors/spool.py),
something gives, and that must never be silent: every drop is written here as soon as the
store takes writes again, with the device, the kind of data, how many rows, and the time
range of the data lost. That range is monitoring time nobody can vouch for: the SLA figures
count it as unknown time for the device's circuits, `keyline status` and the admin page show
the totals.

**Heartbeats.** Every running service (the collector, the alarm pipeline) writes its figures
every few seconds (`record_heartbeat`): the collector its spool (size, age of the oldest
batch waiting, drops), polls (done, skipped, devices overdue), traps (received, dropped by
the kernel, undecodable); the alarm pipeline the last event it processed. `collection_status`
gathers them with the drops and the event stream's head, for `keyline status` and
/api/v1/health: a heartbeat older than HEARTBEAT_STALE_S is a service that is not running.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from store.consumer import consumer_positions


@dataclass(frozen=True)
class Drop:
    device_id: int | None
    kind: str
    rows: int
    first_time: datetime | None
    last_time: datetime | None
    recorded_at: datetime


def record_drops(conn: psycopg.Connection,
                 rows: Sequence[tuple[int | None, str, int, str | None, str | None]]) -> None:
    """Record drops: (device id or None, kind, rows, first and last time of the data lost,
    ISO 8601 text or None), in the caller's transaction."""
    with conn.cursor() as cursor:
        cursor.executemany(
            """INSERT INTO collection_drops (device_id, kind, rows, first_time, last_time)
               VALUES (%s, %s, %s, %s, %s)""", list(rows))


def drops_since(conn: psycopg.Connection, since: datetime | None = None) -> list[Drop]:
    """The recorded drops (recorded at or after `since`), newest first."""
    rows = conn.execute(
        """SELECT device_id, kind, rows, first_time, last_time, recorded_at
             FROM collection_drops
            WHERE %(since)s::timestamptz IS NULL OR recorded_at >= %(since)s
            ORDER BY recorded_at DESC, id DESC""", {"since": since}).fetchall()
    return [Drop(*row) for row in rows]


def drop_totals(conn: psycopg.Connection) -> dict[str, int]:
    """Rows dropped in all, by kind."""
    return dict(conn.execute(
        "SELECT kind, sum(rows)::bigint FROM collection_drops GROUP BY kind").fetchall())


@dataclass(frozen=True)
class DroppedRange:
    first_time: datetime
    last_time: datetime
    rows: int


def any_dropped_samples(conn: psycopg.Connection, start: datetime, end: datetime) -> bool:
    """Whether samples of any object may have been dropped within [start, end) (drops are
    rare: a caller asks this once before asking `dropped_ranges` object by object)."""
    return bool(conn.execute(
        """SELECT EXISTS (SELECT 1 FROM collection_drops WHERE kind = 'samples'
                             AND first_time < %s AND last_time >= %s)""",
        [end, start]).fetchone()[0])  # type: ignore[index]


def dropped_ranges(conn: psycopg.Connection, object_id: int, start: datetime,
                   end: datetime) -> list[DroppedRange]:
    """The time ranges within [start, end) in which samples of `object_id` (a device, a
    port, or a circuit through its two end ports' devices) may have been dropped, oldest
    first, each with the rows its device lost then. Drops whose device could not be told
    count for every object: unknown is unknown. Not scoped: the caller has checked that the
    viewer may read the object's samples."""
    rows = conn.execute(
        """WITH owners AS (
               SELECT id FROM devices WHERE id = %(obj)s
               UNION SELECT device_id FROM ports WHERE id = %(obj)s
               UNION SELECT p.device_id FROM circuits c
                       JOIN ports p ON p.id IN (c.a_port_id, c.z_port_id)
                      WHERE c.id = %(obj)s)
           SELECT first_time, last_time, sum(rows)::bigint FROM collection_drops
            WHERE kind = 'samples' AND first_time IS NOT NULL AND last_time IS NOT NULL
              AND (device_id IS NULL OR device_id IN (SELECT id FROM owners))
              AND first_time < %(end)s AND last_time >= %(start)s
            GROUP BY first_time, last_time ORDER BY first_time, last_time""",
        {"obj": object_id, "start": start, "end": end}).fetchall()
    return [DroppedRange(*row) for row in rows]


HEARTBEAT_STALE_S = 30.0


def record_heartbeat(conn: psycopg.Connection, name: str, started_at: datetime,
                     detail: dict[str, Any]) -> None:
    """This process's heartbeat as service `name`, with its figures."""
    conn.execute(
        """INSERT INTO service_heartbeats (name, host, pid, started_at, updated_at, detail)
           VALUES (%s, %s, %s, %s, now(), %s)
           ON CONFLICT (name) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid,
               started_at = EXCLUDED.started_at, updated_at = now(),
               detail = EXCLUDED.detail""",
        [name, socket.gethostname(), os.getpid(), started_at, Jsonb(detail)])


def collection_status(conn: psycopg.Connection) -> dict[str, Any]:
    """The services' heartbeats (with their age and whether they run), the drops recorded,
    and how far behind the event stream each consumer (store.consumer) is."""
    now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    services = {}
    for name, host, pid, started, updated, detail in conn.execute(
            "SELECT name, host, pid, started_at, updated_at, detail FROM service_heartbeats"
            " ORDER BY name"):
        age_s = (now - updated).total_seconds()
        services[name] = {"host": host, "pid": pid, "started_at": started.isoformat(),
                          "updated_at": updated.isoformat(), "age_s": round(age_s, 1),
                          "running": age_s <= HEARTBEAT_STALE_S, **detail}
    head = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]  # type: ignore[index]
    followers = {name: {"last_event_id": last, "behind": head - last}
                 for name, last in consumer_positions(conn).items()}
    return {"time": now.isoformat(), "services": services, "drops": drop_totals(conn),
            "events": {"head": head, "consumers": followers}}


def forget_service(conn: psycopg.Connection, name: str) -> dict[str, Any]:
    """Forget service `name` (its heartbeat: `keyline status` lists it no more), stopped for
    good: a collector taken out of a fleet, a portal machine decommissioned. Refused
    (store.refusals.ActionError) for a name with no heartbeat, and for one heard from in the
    last HEARTBEAT_STALE_S: a running service would only write its heartbeat again. For a
    collector (`collector:NAME`), its instance rows go too, so its leases are free at once.
    Returns what was forgotten: host, pid, age_s."""
    from store.refusals import ActionError, Refusal

    with conn.transaction():
        row = conn.execute(
            "SELECT host, pid, extract(epoch FROM now() - updated_at) FROM service_heartbeats"
            " WHERE name = %s FOR UPDATE", [name]).fetchone()
        if row is None:
            known = [r[0] for r in conn.execute(
                "SELECT name FROM service_heartbeats ORDER BY name")]
            raise ActionError("service", f"no service named {name!r} has reported (known: "
                              f"{', '.join(known) or 'none'})", Refusal.NOT_FOUND)
        host, pid, age_s = row[0], row[1], float(row[2])
        if age_s <= HEARTBEAT_STALE_S:
            raise ActionError("service", f"{name} is running (heard {age_s:.0f} s ago, pid "
                              f"{pid} on {host}): stop it first", Refusal.CONFLICT)
        conn.execute("DELETE FROM service_heartbeats WHERE name = %s", [name])
        if name.startswith("collector:"):
            conn.execute("DELETE FROM collector_instances WHERE name = %s AND expires_at < now()",
                         [name.removeprefix("collector:")])
    return {"host": host, "pid": pid, "age_s": round(age_s, 1)}


def prune_spool_batches(conn: psycopg.Connection, days: float = 7.0) -> int:
    """Forget the ids of spool batches stored more than `days` ago (a spool never holds a
    batch that long once the store takes writes); how many went."""
    return conn.execute("DELETE FROM spool_batches WHERE stored_at < now() - make_interval("
                        "secs => %s)", [days * 86400]).rowcount
