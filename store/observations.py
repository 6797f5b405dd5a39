"""Observations in the store: recording changes of state, reading them back, device status.

An *observation* (collectors.model.Observation) is one change of one object's state, seen by
a poll or a trap: port 4711's ifOperStatus went from "up" to "down"; device 12 became
"unreachable"; device 12's agent restarted. The alarm pipeline consumes them. Two things must
hold for that: an observation that was recorded is never missed, and one that was not
recorded is never acted on. So `record_observations` inserts the rows *and* publishes the
event announcing them (store.events.publish, topic "observation") in the caller's
transaction: both commit together or neither does, and a listener hears of observations only
once they are readable::

    with database.pool.connection() as conn:
        ids = record_observations(conn, observations)   # committed when the block ends

Observations are announced in chunks of `EVENT_CHUNK` (one event carries several
observations, with their ids), not one event each: a first poll of 2,000 devices yields tens
of thousands of "initial state" observations and must not cost as many notifications.

`latest_states` reads the last recorded state of every object back, for a collector that
restarts (collectors.observations.StateTracker.seed).

`record_poll_status` keeps `device_poll_status`, one row per device with its latest poll
status (reachable, unreachable, auth-failed, error) and reason; `changed_at` moves only when
the status changes, `last_poll_at` on every poll, so the portal shows "unreachable since
10:05, last tried 10:12" from one row.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb

from store.events import publish

if TYPE_CHECKING:
    from collectors.model import Observation

TOPIC = "observation"

# Observations per published event (see the module docstring).
EVENT_CHUNK = 50

_INSERT = """
INSERT INTO observations (time, object_id, kind, old, new, source, detail)
VALUES (%s, %s, %s, %s, %s, %s, %s)
RETURNING id"""

_UPSERT_STATUS = """
INSERT INTO device_poll_status AS s (device_id, status, reason, changed_at, last_poll_at)
VALUES (%(device_id)s, %(status)s, %(reason)s, %(polled_at)s, %(polled_at)s)
ON CONFLICT (device_id) DO UPDATE SET
    changed_at = CASE WHEN s.status IS DISTINCT FROM EXCLUDED.status
                      THEN EXCLUDED.changed_at ELSE s.changed_at END,
    status = EXCLUDED.status,
    reason = EXCLUDED.reason,
    last_poll_at = EXCLUDED.last_poll_at"""


@dataclass(frozen=True)
class StoredObservation:
    """An observation as read back from the store, with its id."""

    id: int
    time: datetime
    object_id: int
    kind: str
    old: str | None
    new: str
    source: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class DevicePollStatus:
    device_id: int
    status: str
    reason: str | None
    changed_at: datetime
    last_poll_at: datetime


def observation_payload(observation_id: int, observation: Observation) -> dict[str, Any]:
    """The JSON form of one observation in an event's payload."""
    return {
        "id": observation_id,
        "time": observation.time.isoformat(),
        "object_id": observation.object_id,
        "kind": observation.kind,
        "old": observation.old,
        "new": observation.new,
        "source": observation.source,
        "detail": observation.detail,
    }


def record_observations(conn: psycopg.Connection, observations: Sequence[Observation]) -> list[int]:
    """Insert `observations` and publish them as "observation" events, in the caller's
    transaction (its own one on an autocommit connection); return their ids in the order
    given. Nothing is committed here: the caller's `with pool.connection()` does it."""
    if not observations:
        return []
    for observation in observations:
        if observation.time.tzinfo is None:
            raise ValueError(f"observation time {observation.time} has no timezone")
    # On a connection in a transaction (the usual case), statements simply join it: a
    # transaction() block there would commit on its own when no transaction had begun yet.
    atomic = conn.transaction() if conn.autocommit else nullcontext()
    with atomic, conn.cursor() as cursor:
        cursor.executemany(
            _INSERT,
            [(o.time, o.object_id, o.kind, o.old, o.new, o.source, Jsonb(o.detail))
             for o in observations],
            returning=True,
        )
        ids = _returned_ids(cursor)
        for start in range(0, len(observations), EVENT_CHUNK):
            chunk = zip(ids[start:start + EVENT_CHUNK],
                        observations[start:start + EVENT_CHUNK], strict=True)
            publish(conn, TOPIC,
                    {"observations": [observation_payload(i, o) for i, o in chunk]})
    return ids


def _returned_ids(cursor: psycopg.Cursor) -> list[int]:
    ids: list[int] = []
    while True:
        row = cursor.fetchone()
        assert row is not None
        ids.append(row[0])
        if not cursor.nextset():
            return ids


def recent_observations(
    conn: psycopg.Connection,
    object_id: int | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[StoredObservation]:
    """The newest observations, newest first: of one object if `object_id` is given, with
    time >= `since` if given, at most `limit`."""
    rows = conn.execute(
        """SELECT id, time, object_id, kind, old, new, source, detail
             FROM observations
            WHERE (%(object_id)s::bigint IS NULL OR object_id = %(object_id)s)
              AND (%(since)s::timestamptz IS NULL OR time >= %(since)s)
            ORDER BY time DESC, id DESC
            LIMIT %(limit)s""",
        {"object_id": object_id, "since": since, "limit": limit},
    ).fetchall()
    return [StoredObservation(*row) for row in rows]


def latest_states(conn: psycopg.Connection, object_ids: Sequence[int] | None = None
                  ) -> dict[tuple[int, str], str]:
    """The last recorded state of every (object_id, kind), agent restarts excepted (of the
    objects named, when `object_ids` is given): what a collector's StateTracker starts from
    after a restart, or when it takes devices over from another collector, so that it does
    not announce every port's state again as new."""
    rows = conn.execute(
        """SELECT DISTINCT ON (object_id, kind) object_id, kind, new
             FROM observations
            WHERE kind <> 'agent_restart'
              AND (%(ids)s::bigint[] IS NULL OR object_id = ANY(%(ids)s))
            ORDER BY object_id, kind, time DESC, id DESC""",
        {"ids": list(object_ids) if object_ids is not None else None}).fetchall()
    return {(object_id, kind): new for object_id, kind, new in rows}


def latest_states_timed(
    conn: psycopg.Connection, kinds: Sequence[str] | None = None,
) -> dict[tuple[int, str], tuple[datetime, str]]:
    """The last recorded state of every (object_id, kind) with its time, for the kinds named
    (all state kinds, agent restarts excepted, when None): what the alarm pipeline starts
    from after a restart."""
    rows = conn.execute(
        """SELECT DISTINCT ON (object_id, kind) object_id, kind, time, new
             FROM observations
            WHERE kind <> 'agent_restart'
              AND (%(kinds)s::text[] IS NULL OR kind = ANY(%(kinds)s))
            ORDER BY object_id, kind, time DESC, id DESC""",
        {"kinds": list(kinds) if kinds is not None else None}).fetchall()
    return {(object_id, kind): (time, new) for object_id, kind, time, new in rows}


def record_poll_status(
    conn: psycopg.Connection,
    device_id: int,
    status: str,
    reason: str | None,
    polled_at: datetime,
) -> None:
    """Set a device's latest poll status; `changed_at` moves only if `status` changed."""
    record_poll_statuses(conn, [(device_id, status, reason, polled_at)])


def record_poll_statuses(
    conn: psycopg.Connection,
    statuses: Sequence[tuple[int, str, str | None, datetime]],
) -> None:
    """`record_poll_status` for many devices at once: (device_id, status, reason, polled_at)."""
    with conn.cursor() as cursor:
        cursor.executemany(_UPSERT_STATUS, [
            {"device_id": device_id, "status": status, "reason": reason, "polled_at": at}
            for device_id, status, reason, at in statuses])


def poll_statuses(conn: psycopg.Connection) -> dict[int, DevicePollStatus]:
    """Every device's latest poll status, by device id."""
    rows = conn.execute(
        "SELECT device_id, status, reason, changed_at, last_poll_at FROM device_poll_status"
    ).fetchall()
    return {row[0]: DevicePollStatus(*row) for row in rows}


@dataclass(frozen=True)
class PortMatchRow:
    """How the collector matched one inventory port at the last poll (0008_service_state):
    the interface (`if_index`, None when unmatched), how (`matched_by`: "if_index",
    "ifName", "ifName (normalized)", "ifDescr", "ifDescr (normalized)") and the problem,
    if any (collectors.port_names kinds, with a message naming what to change)."""

    port_id: int
    device_id: int
    if_index: int | None
    matched_by: str | None
    problem: str | None
    message: str | None
    seen_at: datetime


def record_port_matches(conn: psycopg.Connection, rows: Sequence[PortMatchRow]) -> None:
    """Set the current match of these ports (the latest picture, not history)."""
    with conn.cursor() as cursor:
        cursor.executemany(
            """INSERT INTO port_matches AS m (port_id, device_id, if_index, matched_by, problem,
                                             message, seen_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (port_id) DO UPDATE SET device_id = EXCLUDED.device_id,
                   if_index = EXCLUDED.if_index, matched_by = EXCLUDED.matched_by,
                   problem = EXCLUDED.problem, message = EXCLUDED.message,
                   seen_at = EXCLUDED.seen_at""",
            [(r.port_id, r.device_id, r.if_index, r.matched_by, r.problem, r.message,
              r.seen_at) for r in rows])


def port_match_problems(
    conn: psycopg.Connection, device_keys: Sequence[str] | None = None,
) -> list[tuple[str, str, str, str]]:
    """The active inventory ports whose last match had a problem: (device key, port name,
    problem, message), by device and port."""
    return conn.execute(
        """SELECT d.key, p.name, m.problem, m.message
             FROM port_matches m JOIN ports p ON p.id = m.port_id
             JOIN devices d ON d.id = p.device_id
            WHERE m.problem IS NOT NULL AND p.retired_at IS NULL AND d.retired_at IS NULL
              AND (%(keys)s::text[] IS NULL OR d.key = ANY(%(keys)s))
            ORDER BY d.key, p.name""",
        {"keys": list(device_keys) if device_keys is not None else None}).fetchall()
