"""Alarms in the store: saving what the pipeline decided, acknowledging, clearing, and
maintenance windows.

The alarm pipeline (alarms.pipeline) decides in memory and saves each step's changes with
`save_changes`: the alarm rows, their timeline entries, the pipeline's read position (the id
of the last "observation" event it processed) and one event per changed alarm
("alarm.raised", "alarm.updated", "alarm.cleared", payload `alarm_payload`), all in one
transaction. So a listener (the portal, the SLA engine) hears of an alarm only once it is
readable, and a pipeline that dies mid-step restarts from a position that matches the alarms
stored.

People change alarms too: `acknowledge`, `unacknowledge` and `clear_alarm` record who, when
and why in the alarm's timeline and announce the change with `"manual": true` in the
payload. The pipeline only ever updates alarms that are still active, and never the
acknowledgement columns, so a person's change and the pipeline's do not overwrite each other.

Maintenance windows (`add_window`, `end_window`, `list_windows`) are immutable once over (a
trigger of 0006_alarms.sql refuses it): the SLA figures of past months depend on them.
Scopes are written as text, `device:KEY`, `port:DEVICE:PORT`, `circuit:KEY`, `customer:KEY`,
and resolved to object ids by `resolve_scope`.

The rules of people's changes (who may act, a clear's reason, a window's scope and times)
are alarms.actions', the one path of the command line and the portal; these functions only
persist, and the table constraints refuse what is not even well-formed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from alarms.model import (
    SCOPE_KINDS,
    Alarm,
    AlarmChange,
    AlarmKey,
    AlarmState,
    AlarmType,
    MaintenanceWindow,
    ObjectKind,
    ScopeItem,
    Severity,
    TimelineEntry,
)
from alarms.texts import TEXT
from store.consumer import save_position, stored_position
from store.events import _PUBLISH, publish
from store.queries import Viewer

TOPIC_PREFIX = "alarm."
MAINTENANCE_TOPIC = "maintenance.changed"
DEFAULT_PIPELINE = "main"


class AlarmStoreError(Exception):
    """An alarm or window that does not exist, or a change that is not allowed."""


_COLUMNS = """a.id, a.object_kind, a.object_id, a.type, a.qualifier, a.severity, a.state,
    a.summary, a.first_seen, a.last_seen, a.count, a.cleared_at, a.acknowledged_by,
    a.acknowledged_at, a.ack_comment, a.root_cause_id, a.impacted_circuits,
    a.impacted_customers, a.suppressed_by, a.detail,
    r.object_kind, r.object_id, r.type, r.qualifier, a.ack_customer_note"""

_SELECT = f"SELECT {_COLUMNS} FROM alarms a LEFT JOIN alarms r ON r.id = a.root_cause_id"


def _alarm(row: Sequence[Any]) -> Alarm:
    (id_, kind, object_id, type_, qualifier, severity, state, summary, first_seen, last_seen,
     count, cleared_at, ack_by, ack_at, ack_comment, root_id, circuits, customers, suppressed,
     detail, r_kind, r_object, r_type, r_qualifier, ack_note) = row
    root = (AlarmKey(ObjectKind(r_kind), r_object, AlarmType(r_type), r_qualifier)
            if r_kind is not None else None)
    return Alarm(
        key=AlarmKey(ObjectKind(kind), object_id, AlarmType(type_), qualifier),
        severity=Severity.parse(severity), first_seen=first_seen, last_seen=last_seen,
        summary=summary, state=AlarmState(state), count=count, cleared_at=cleared_at,
        acknowledged_by=ack_by, acknowledged_at=ack_at, ack_comment=ack_comment,
        root_cause=root, root_cause_id=root_id, impacted_circuits=frozenset(circuits),
        impacted_customers=frozenset(customers), suppressed_by=frozenset(suppressed),
        detail=detail, id=id_, ack_customer_note=ack_note)


def alarm_payload(alarm: Alarm, **extra: Any) -> dict[str, Any]:
    """The JSON form of an alarm in an event: every field, internal notes included (a
    viewer's copy is cut by portal.alarm_access before it leaves the portal)."""
    return {
        "id": alarm.id, "object_kind": str(alarm.key.kind), "object_id": alarm.key.object_id,
        "type": str(alarm.key.type), "qualifier": alarm.key.qualifier,
        "severity": str(alarm.severity), "state": str(alarm.state), "summary": alarm.summary,
        "first_seen": alarm.first_seen.isoformat(), "last_seen": alarm.last_seen.isoformat(),
        "count": alarm.count,
        "cleared_at": alarm.cleared_at.isoformat() if alarm.cleared_at else None,
        "root_cause_id": alarm.root_cause_id,
        "impacted_circuits": sorted(alarm.impacted_circuits),
        "impacted_customers": sorted(alarm.impacted_customers),
        "suppressed": alarm.suppressed, "acknowledged_by": alarm.acknowledged_by,
        "acknowledged_at": alarm.acknowledged_at.isoformat() if alarm.acknowledged_at else None,
        "ack_comment": alarm.ack_comment, "acknowledged": alarm.acknowledged,
        "ack_customer_note": alarm.ack_customer_note,
        # the summary as data (alarms.texts): code and parameters, for the viewer's language
        "text": alarm.detail.get(TEXT), **extra,
    }


def alarm_from_payload(payload: dict[str, Any]) -> Alarm:
    """The alarm an event's payload (`alarm_payload`) describes, for the portal's live path
    to cut it exactly as it cuts a stored one (no root cause key or timeline; of the
    detail, only the summary's words as data)."""
    def moment(name: str) -> datetime | None:
        value = payload.get(name)
        return datetime.fromisoformat(value) if isinstance(value, str) else None

    first_seen = moment("first_seen")
    assert first_seen is not None
    return Alarm(
        key=AlarmKey(ObjectKind(payload["object_kind"]), int(payload["object_id"]),
                     AlarmType(payload["type"]), payload.get("qualifier") or ""),
        severity=Severity.parse(payload["severity"]), first_seen=first_seen,
        last_seen=moment("last_seen") or first_seen, summary=payload.get("summary") or "",
        state=AlarmState(payload["state"]), count=int(payload.get("count") or 1),
        cleared_at=moment("cleared_at"), acknowledged_by=payload.get("acknowledged_by"),
        acknowledged_at=moment("acknowledged_at"), ack_comment=payload.get("ack_comment"),
        root_cause_id=payload.get("root_cause_id"),
        impacted_circuits=frozenset(payload.get("impacted_circuits") or ()),
        impacted_customers=frozenset(payload.get("impacted_customers") or ()),
        # only whether it is suppressed travels: the window ids are not the payload's
        suppressed_by=frozenset({0}) if payload.get("suppressed") else frozenset(),
        id=payload.get("id"), ack_customer_note=payload.get("ack_customer_note"),
        detail={TEXT: payload["text"]} if isinstance(payload.get("text"), dict) else {})


def _atomic(conn: psycopg.Connection) -> Any:
    return conn.transaction() if conn.autocommit else nullcontext()


# --- the pipeline's writes ---------------------------------------------------------------

_INSERT = """
INSERT INTO alarms (object_kind, object_id, type, qualifier, severity, state, summary,
    first_seen, last_seen, count, cleared_at, cleared_by, root_cause_id, impacted_circuits,
    impacted_customers, suppressed_by, detail)
VALUES (%(kind)s, %(object_id)s, %(type)s, %(qualifier)s, %(severity)s, %(state)s,
    %(summary)s, %(first_seen)s, %(last_seen)s, %(count)s, %(cleared_at)s, %(cleared_by)s,
    %(root_cause_id)s, %(circuits)s, %(customers)s, %(suppressed)s, %(detail)s)
RETURNING id"""

_UPDATE = """
UPDATE alarms SET severity = %(severity)s, state = %(state)s, summary = %(summary)s,
    last_seen = %(last_seen)s, count = %(count)s, cleared_at = %(cleared_at)s,
    cleared_by = %(cleared_by)s, root_cause_id = %(root_cause_id)s,
    impacted_circuits = %(circuits)s, impacted_customers = %(customers)s,
    suppressed_by = %(suppressed)s, detail = %(detail)s
 WHERE id = %(id)s AND state = 'active'
RETURNING acknowledged_by, acknowledged_at, ack_comment, ack_customer_note"""

_TIMELINE = """
INSERT INTO alarm_timeline (alarm_id, time, action, actor, comment, detail, customer_note)
VALUES (%s, %s, %s, %s, %s, %s, %s)"""


def _row(alarm: Alarm) -> dict[str, Any]:
    return {
        "id": alarm.id, "kind": str(alarm.key.kind), "object_id": alarm.key.object_id,
        "type": str(alarm.key.type), "qualifier": alarm.key.qualifier,
        "severity": str(alarm.severity), "state": str(alarm.state), "summary": alarm.summary,
        "first_seen": alarm.first_seen, "last_seen": alarm.last_seen, "count": alarm.count,
        "cleared_at": alarm.cleared_at,
        "cleared_by": "pipeline" if alarm.state is AlarmState.CLEARED else None,
        "root_cause_id": alarm.root_cause_id, "circuits": sorted(alarm.impacted_circuits),
        "customers": sorted(alarm.impacted_customers),
        "suppressed": sorted(alarm.suppressed_by), "detail": Jsonb(alarm.detail),
    }


def save_changes(
    conn: psycopg.Connection,
    changes: Sequence[AlarmChange],
    *,
    alarm_for: Callable[[AlarmKey], Alarm | None] = lambda key: None,
    last_event_id: int | None = None,
    pipeline: str = DEFAULT_PIPELINE,
) -> list[Alarm]:
    """Persist one pipeline step in the caller's transaction: insert new alarms (their `id`
    is set), update changed ones, add their timeline entries, record `last_event_id` as the
    pipeline's position, and publish one "alarm.<event>" event per change. `alarm_for` finds
    a root cause outside `changes` by key. Returns the alarms that had been cleared by hand
    meanwhile: they were left alone, and the caller should forget them."""
    by_key = {c.alarm.key: c.alarm for c in changes if c.alarm.active}

    def root_id(alarm: Alarm) -> int | None:
        if alarm.root_cause is None:
            return None
        root = by_key.get(alarm.root_cause) or alarm_for(alarm.root_cause)
        return root.id if root is not None else None

    gone: list[Alarm] = []
    timeline: list[tuple[Any, ...]] = []
    # Clears first, so that an alarm cleared and raised again in one step frees its key
    # before the new occurrence takes it; then new roots, so that a symptom raised in the
    # same step can point at its root's id; then new symptoms; then the other updates. Each
    # group is one executemany: a burst of traps makes steps of hundreds of changes.
    existing = [c for c in changes if c.alarm.id is not None]
    new = [c for c in changes if c.alarm.id is None]
    groups = [
        (_UPDATE, [c for c in existing if not c.alarm.active]),
        (_INSERT, [c for c in new if c.alarm.root_cause is None]),
        (_INSERT, [c for c in new if c.alarm.root_cause is not None]),
        (_UPDATE, [c for c in existing if c.alarm.active]),
    ]
    with _atomic(conn), conn.cursor() as cursor:
        for statement, group in groups:
            for change in group:
                resolved = root_id(change.alarm)
                if resolved is not None or change.alarm.root_cause is None:
                    change.alarm.root_cause_id = resolved
            for change, row in zip(group, _each(cursor, statement,
                                                [_row(c.alarm) for c in group]), strict=True):
                alarm = change.alarm
                if statement is _INSERT:
                    assert row is not None
                    alarm.id = row[0]
                elif row is None:
                    gone.append(alarm)
                    continue
                else:
                    (alarm.acknowledged_by, alarm.acknowledged_at, alarm.ack_comment,
                     alarm.ack_customer_note) = row
                timeline += [(alarm.id, e.time, e.action, e.actor, e.comment, Jsonb(e.detail),
                              e.customer_note) for e in change.entries]
        if timeline:
            cursor.executemany(_TIMELINE, timeline)
        gone_ids = {id(a) for a in gone}
        # store.events.publish, one executemany for the step (same statement, same
        # guarantees: row and notification in this transaction)
        events = [{"topic": TOPIC_PREFIX + c.event, "payload": Jsonb(alarm_payload(c.alarm))}
                  for c in changes if id(c.alarm) not in gone_ids]
        if events:
            cursor.executemany(_PUBLISH, events)
        if last_event_id is not None:
            set_position(conn, last_event_id, pipeline)
    return gone


def _each(cursor: psycopg.Cursor, statement: str,
          rows: list[dict[str, Any]]) -> list[tuple[Any, ...] | None]:
    """Run `statement` for every row in one executemany; the first returned row of each
    (None where it returned none)."""
    if not rows:
        return []
    cursor.executemany(statement, rows, returning=True)
    out = []
    while True:
        out.append(cursor.fetchone())
        if not cursor.nextset():
            return out


def consumer_name(pipeline: str = DEFAULT_PIPELINE) -> str:
    """The event consumer (store.consumer) name of an alarm pipeline: "alarms:main"."""
    return f"alarms:{pipeline}"


def set_position(conn: psycopg.Connection, last_event_id: int,
                 pipeline: str = DEFAULT_PIPELINE) -> None:
    """Record the id of the last event the pipeline has processed (its consumer's
    position, store.consumer)."""
    save_position(conn, consumer_name(pipeline), last_event_id)


def position(conn: psycopg.Connection, pipeline: str = DEFAULT_PIPELINE) -> int | None:
    """The id of the last event the pipeline processed; None if it never ran."""
    return stored_position(conn, consumer_name(pipeline))


# --- reading -----------------------------------------------------------------------------


def active_alarms(conn: psycopg.Connection) -> list[Alarm]:
    """Every active alarm, oldest first (what the pipeline starts from after a restart)."""
    return [_alarm(r) for r in conn.execute(
        f"{_SELECT} WHERE a.state = 'active' ORDER BY a.id").fetchall()]


def list_alarms(conn: psycopg.Connection, *, state: str | None = "active",
                object_id: int | None = None, limit: int = 200) -> list[Alarm]:
    """Alarms newest first: active ones (`state` "active"), cleared ones, or all (None)."""
    rows = conn.execute(
        f"""{_SELECT}
             WHERE (%(state)s::text IS NULL OR a.state = %(state)s)
               AND (%(object)s::bigint IS NULL OR a.object_id = %(object)s)
             ORDER BY a.id DESC LIMIT %(limit)s""",
        {"state": state, "object": object_id, "limit": limit}).fetchall()
    return [_alarm(r) for r in rows]


def get_alarm(conn: psycopg.Connection, alarm_id: int, *, timeline: bool = True) -> Alarm:
    """One alarm with its timeline (AlarmStoreError if there is none with that id)."""
    row = conn.execute(f"{_SELECT} WHERE a.id = %s", [alarm_id]).fetchone()
    if row is None:
        raise AlarmStoreError(f"no alarm {alarm_id}")
    alarm = _alarm(row)
    if timeline:
        alarm.timeline = alarm_timeline(conn, alarm_id)
    return alarm


def alarm_timeline(conn: psycopg.Connection, alarm_id: int) -> list[TimelineEntry]:
    rows = conn.execute(
        "SELECT time, action, actor, comment, detail, customer_note FROM alarm_timeline"
        " WHERE alarm_id = %s ORDER BY id", [alarm_id]).fetchall()
    return [TimelineEntry(*row) for row in rows]


def symptoms_of(conn: psycopg.Connection, alarm_id: int) -> list[Alarm]:
    """The alarms whose root cause is this one."""
    return [_alarm(r) for r in conn.execute(
        f"{_SELECT} WHERE a.root_cause_id = %s ORDER BY a.id", [alarm_id]).fetchall()]


# --- people's changes --------------------------------------------------------------------


def _change_by_hand(conn: psycopg.Connection, alarm_id: int, action: str, by: str,
                    comment: str | None, statement: str, params: dict[str, Any],
                    when: datetime | None, customer_note: str | None = None) -> Alarm:
    with _atomic(conn):
        now = when or conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        row = conn.execute(statement, {"id": alarm_id, "by": by, "comment": comment,
                                       "note": customer_note, "now": now,
                                       **params}).fetchone()
        if row is None:
            alarm = get_alarm(conn, alarm_id, timeline=False)  # raises if it does not exist
            raise AlarmStoreError(f"alarm {alarm_id} is {alarm.state}: it cannot be {action}")
        conn.execute(_TIMELINE, [alarm_id, now, action, by, comment, Jsonb({}),
                                 customer_note])
        alarm = get_alarm(conn, alarm_id, timeline=False)
        event = "cleared" if action == "cleared" else "updated"
        publish(conn, TOPIC_PREFIX + event, alarm_payload(
            alarm, manual=True, action=action, by=by, comment=comment,
            customer_note=customer_note))
    return alarm


def acknowledge(conn: psycopg.Connection, alarm_id: int, by: str, comment: str | None = None,
                *, when: datetime | None = None, customer_note: str | None = None) -> Alarm:
    """Acknowledge an active alarm ("I am on it"), recorded in its timeline: `comment` is
    the internal note, `customer_note` what the customers may read."""
    return _change_by_hand(
        conn, alarm_id, "acknowledged", by, comment,
        """UPDATE alarms SET acknowledged_by = %(by)s, acknowledged_at = %(now)s,
                             ack_comment = %(comment)s, ack_customer_note = %(note)s
            WHERE id = %(id)s AND state = 'active' RETURNING id""", {}, when, customer_note)


def unacknowledge(conn: psycopg.Connection, alarm_id: int, by: str,
                  comment: str | None = None, *, when: datetime | None = None,
                  customer_note: str | None = None) -> Alarm:
    """Take an acknowledgement back, recorded in the timeline."""
    return _change_by_hand(
        conn, alarm_id, "unacknowledged", by, comment,
        """UPDATE alarms SET acknowledged_by = NULL, acknowledged_at = NULL, ack_comment = NULL,
                             ack_customer_note = NULL
            WHERE id = %(id)s AND state = 'active' AND acknowledged_by IS NOT NULL
           RETURNING id""", {}, when, customer_note)


def clear_alarm(conn: psycopg.Connection, alarm_id: int, by: str, reason: str,
                *, when: datetime | None = None, customer_note: str | None = None) -> Alarm:
    """Clear an active alarm by hand with a reason (the internal note). If its condition
    still holds, the pipeline raises it again, as a new occurrence, after its raise delay."""
    return _change_by_hand(
        conn, alarm_id, "cleared", by, reason,
        """UPDATE alarms SET state = 'cleared', cleared_at = %(now)s, cleared_by = %(by)s
            WHERE id = %(id)s AND state = 'active' RETURNING id""", {}, when, customer_note)


# --- maintenance windows -----------------------------------------------------------------

_SCOPE_QUERIES = {
    "device": "SELECT id FROM devices WHERE key = %s AND retired_at IS NULL",
    "circuit": "SELECT id FROM circuits WHERE key = %s AND retired_at IS NULL",
    "customer": "SELECT id FROM customers WHERE key = %s AND retired_at IS NULL",
}


def resolve_scope(conn: psycopg.Connection, texts: Iterable[str]) -> tuple[ScopeItem, ...]:
    """`device:KEY`, `port:DEVICE:PORT`, `circuit:KEY`, `customer:KEY` -> scope items."""
    items = []
    for text in texts:
        kind, _, rest = text.partition(":")
        if kind not in SCOPE_KINDS or not rest:
            raise AlarmStoreError(f"scope {text!r} is not KIND:KEY with KIND one of "
                                  f"{', '.join(SCOPE_KINDS)}")
        if kind == "port":
            device, sep, port = rest.partition(":")
            row = conn.execute(
                "SELECT p.id FROM ports p JOIN devices d ON d.id = p.device_id"
                " WHERE d.key = %s AND p.name = %s AND p.retired_at IS NULL",
                [device, port]).fetchone() if sep else None
        else:
            row = conn.execute(_SCOPE_QUERIES[kind], [rest]).fetchone()
        if row is None:
            raise AlarmStoreError(f"scope {text!r}: no such {kind}")
        items.append(ScopeItem(kind, row[0], rest))
    if not items:
        raise AlarmStoreError("a maintenance window needs a scope")
    return tuple(items)


def _window(row: Sequence[Any]) -> MaintenanceWindow:
    id_, scope, starts, ends, reason, by, declared_at, ended_by, customer_note = row
    return MaintenanceWindow(
        id_, tuple(ScopeItem(i["kind"], i["id"], i.get("key", "")) for i in scope), starts,
        ends, reason, by, declared_at, ended_by, customer_note)


_WINDOW_COLUMNS = ("id, scope, starts_at, ends_at, reason, declared_by, declared_at, "
                   "ended_by, customer_note")


def add_window(conn: psycopg.Connection, scope: Sequence[ScopeItem], starts_at: datetime,
               ends_at: datetime, reason: str, by: str,
               customer_note: str | None = None) -> MaintenanceWindow:
    """Declare a maintenance window (`reason`: the internal note; `customer_note`: what the
    customers may read); announced as "maintenance.changed". The rules of a new window are
    alarms.actions.declare_maintenance's."""
    if starts_at.tzinfo is None or ends_at.tzinfo is None:  # the session's zone would apply
        raise AlarmStoreError("maintenance window times need a timezone")
    with _atomic(conn):
        row = conn.execute(
            f"""INSERT INTO maintenance_windows (scope, starts_at, ends_at, reason, declared_by,
                                                 customer_note)
                VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_WINDOW_COLUMNS}""",
            [Jsonb([{"kind": i.kind, "id": i.object_id, "key": i.key} for i in scope]),
             starts_at, ends_at, reason, by, customer_note]).fetchone()
        window = _window(row)  # type: ignore[arg-type]
        publish(conn, MAINTENANCE_TOPIC, {"id": window.id, "action": "added", "by": by})
    return window


def end_window(conn: psycopg.Connection, window_id: int, by: str,
               *, at: datetime | None = None) -> MaintenanceWindow:
    """End a window now (or at `at`, not in the past); a window not yet begun is shortened
    the same way. A window already over cannot change (AlarmStoreError)."""
    with _atomic(conn):
        now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        current = conn.execute(f"SELECT {_WINDOW_COLUMNS} FROM maintenance_windows"
                               " WHERE id = %s", [window_id]).fetchone()
        if current is None:
            raise AlarmStoreError(f"no maintenance window {window_id}")
        window = _window(current)
        if window.ends_at <= now:
            raise AlarmStoreError(f"maintenance window {window_id} is already over: past "
                                  "windows are immutable")
        end = max(at or now, now)
        if end <= window.starts_at:  # not begun: it becomes an empty, cancelled window
            conn.execute("DELETE FROM maintenance_windows WHERE id = %s", [window_id])
            publish(conn, MAINTENANCE_TOPIC, {"id": window_id, "action": "cancelled",
                                              "by": by})
            return window
        row = conn.execute(
            f"""UPDATE maintenance_windows SET ends_at = %s, ended_by = %s WHERE id = %s
                RETURNING {_WINDOW_COLUMNS}""", [min(end, window.ends_at), by, window_id]
        ).fetchone()
        publish(conn, MAINTENANCE_TOPIC, {"id": window_id, "action": "ended", "by": by})
    return _window(row)  # type: ignore[arg-type]


def list_windows(conn: psycopg.Connection, *, active_at: datetime | None = None,
                 not_ended_before: datetime | None = None) -> list[MaintenanceWindow]:
    """Maintenance windows by start: those active at `active_at`, or those ending after
    `not_ended_before`, or all."""
    rows = conn.execute(
        f"""SELECT {_WINDOW_COLUMNS} FROM maintenance_windows
             WHERE (%(at)s::timestamptz IS NULL OR (starts_at <= %(at)s AND ends_at > %(at)s))
               AND (%(after)s::timestamptz IS NULL OR ends_at > %(after)s)
             ORDER BY starts_at, id""",
        {"at": active_at, "after": not_ended_before}).fetchall()
    return [_window(r) for r in rows]


# --- inputs the pipeline reads -----------------------------------------------------------


@dataclass(frozen=True)
class LatestState:
    object_id: int
    kind: str
    new: str
    time: datetime
    observation_id: int


def latest_states_at(conn: psycopg.Connection) -> list[LatestState]:
    """The last recorded state of every (object, kind), with its time: what the pipeline
    replays after a restart to rebuild its debounce state."""
    rows = conn.execute(
        """SELECT DISTINCT ON (object_id, kind) object_id, kind, new, time, id
             FROM observations
            WHERE kind IN ('reachability', 'oper_status')
            ORDER BY object_id, kind, time DESC, id DESC""").fetchall()
    return [LatestState(*row) for row in rows]


def latest_threshold_states(conn: psycopg.Connection
                            ) -> list[tuple[int, str, datetime, str, dict[str, Any]]]:
    """The last threshold crossing of every series (alarms.thresholds): (object_id, kind,
    time, state, detail), the detail saying which rule and object class; what the alarm
    pipeline restores a breached series from."""
    return conn.execute(
        """SELECT DISTINCT ON (object_id, kind) object_id, kind, time, new, detail
             FROM observations WHERE kind LIKE 'threshold:%'
            ORDER BY object_id, kind, time DESC, id DESC""").fetchall()


def sla_tiers(conn: psycopg.Connection) -> dict[int, str]:
    """The SLA tier (its contract's key) of every active circuit, of the ports it ends on,
    and of the devices of those ports (a device takes the tier of the first circuit on it):
    what a threshold rule narrowed to a tier is chosen by (alarms.thresholds)."""
    tiers: dict[int, str] = {}
    devices: dict[int, str] = {}
    for circuit_id, a_port, z_port, a_device, z_device, tier in conn.execute(
            """SELECT c.id, c.a_port_id, c.z_port_id, pa.device_id, pz.device_id, s.key
                 FROM circuits c JOIN sla_contracts s ON s.id = c.sla_contract_id
                 LEFT JOIN ports pa ON pa.id = c.a_port_id
                 LEFT JOIN ports pz ON pz.id = c.z_port_id
                WHERE c.retired_at IS NULL ORDER BY c.id"""):
        tiers[circuit_id] = tiers[a_port] = tiers[z_port] = tier
        for device_id in (a_device, z_device):
            if device_id is not None:
                devices.setdefault(device_id, tier)
    return {**devices, **tiers}


# --- what a viewer may see (the portal) ---------------------------------------------------
#
# The portal's alarm and maintenance pages read through these, never through the unscoped
# functions above. An alarm belongs to the customers in its `impacted_customers`: a customer
# user sees the alarms that hit its own customer, an account manager those that hit one of
# their customers (store.queries.Viewer.manager), the other staff every alarm. The filters
# are in SQL, like store.queries', so another tenant's alarm is "not found", never
# "forbidden". The impact lists inside an alarm still name every circuit and customer it
# hits: the portal narrows them to the viewer's own (circuits_for, customers_for) before
# showing them.

_VISIBLE = """
    (%(scope)s::bigint IS NULL OR %(scope)s = ANY(a.impacted_customers))
    AND (%(manager)s::text IS NULL OR EXISTS (
        SELECT 1 FROM customers vc WHERE vc.id = ANY(a.impacted_customers)
           AND vc.retired_at IS NULL AND vc.account_manager = %(manager)s))"""


def _viewer_params(viewer: Viewer) -> dict[str, Any]:
    return {"scope": viewer.scope, "manager": viewer.manager}


def alarms_for(conn: psycopg.Connection, viewer: Viewer, *, state: str | None = "active",
               severity: str | None = None, customer_id: int | None = None,
               acknowledged: bool | None = None, root_cause_id: int | None = None,
               limit: int = 500) -> list[Alarm]:
    """The viewer's alarms, newest first, filtered: `state` "active", "cleared" or None
    (both); `severity` a Severity name; `customer_id` only those hitting this customer;
    `acknowledged` True/False; `root_cause_id` only the symptoms of that alarm. Asking for
    a customer the viewer may not see gives nothing (not that customer's share of an alarm
    the viewer sees: that would tell which other customers it hits)."""
    if viewer.scope is not None and customer_id not in (None, viewer.scope):
        return []
    rows = conn.execute(
        f"""{_SELECT}
             WHERE {_VISIBLE}
               AND (%(state)s::text IS NULL OR a.state = %(state)s)
               AND (%(severity)s::text IS NULL OR a.severity = %(severity)s)
               AND (%(customer)s::bigint IS NULL OR %(customer)s = ANY(a.impacted_customers))
               AND (%(customer)s::bigint IS NULL OR %(manager)s::text IS NULL OR EXISTS (
                    SELECT 1 FROM customers mc WHERE mc.id = %(customer)s
                       AND mc.account_manager = %(manager)s))
               AND (%(ack)s::boolean IS NULL OR (a.acknowledged_by IS NOT NULL) = %(ack)s)
               AND (%(root)s::bigint IS NULL OR a.root_cause_id = %(root)s)
             ORDER BY a.id DESC LIMIT %(limit)s""",
        {**_viewer_params(viewer), "state": state, "severity": severity,
         "customer": customer_id, "ack": acknowledged, "root": root_cause_id,
         "limit": limit}).fetchall()
    return [_alarm(r) for r in rows]


def get_alarm_for(conn: psycopg.Connection, viewer: Viewer, alarm_id: int,
                  *, timeline: bool = True) -> Alarm | None:
    """One alarm the viewer may see, with its timeline; None if none such (or not theirs)."""
    row = conn.execute(f"{_SELECT} WHERE a.id = %(id)s AND {_VISIBLE}",
                       {**_viewer_params(viewer), "id": alarm_id}).fetchone()
    if row is None:
        return None
    alarm = _alarm(row)
    if timeline:
        alarm.timeline = alarm_timeline(conn, alarm_id)
    return alarm


def _owned_objects(conn: psycopg.Connection, viewer: Viewer) -> set[int]:
    """Ids of the objects of the viewer's customers: the customers, their circuits and the
    circuits' end ports, the devices at their sites and those devices' ports."""
    rows = conn.execute(
        """WITH mine AS (SELECT id FROM customers
                          WHERE retired_at IS NULL
                            AND (%(scope)s::bigint IS NULL OR id = %(scope)s)
                            AND (%(manager)s::text IS NULL OR account_manager = %(manager)s))
           SELECT id FROM mine
           UNION SELECT ci.id FROM circuits ci WHERE ci.customer_id IN (SELECT id FROM mine)
           UNION SELECT unnest(ARRAY[ci.a_port_id, ci.z_port_id]) FROM circuits ci
                  WHERE ci.customer_id IN (SELECT id FROM mine)
           UNION SELECT d.id FROM devices d JOIN sites s ON s.id = d.site_id
                  WHERE s.customer_id IN (SELECT id FROM mine)
           UNION SELECT p.id FROM ports p JOIN devices d ON d.id = p.device_id
                  JOIN sites s ON s.id = d.site_id WHERE s.customer_id IN (SELECT id FROM mine)""",
        _viewer_params(viewer)).fetchall()
    return {row[0] for row in rows}


def windows_for(conn: psycopg.Connection, viewer: Viewer) -> list[MaintenanceWindow]:
    """The maintenance windows the viewer may see, by start. Staff other than account
    managers see them all; a customer (an account manager) only the windows whose scope
    names one of its (their customers') objects, with the scope narrowed to those objects,
    so the names of other tenants' objects never reach them. A customer gets no internal
    text: the reason (the internal note), who declared and who ended it are None; only the
    customer note is left."""
    windows = list_windows(conn)
    if viewer.scope is None and viewer.manager is None:
        return windows
    owned = _owned_objects(conn, viewer)
    visible = []
    for window in windows:
        scope = tuple(item for item in window.scope if item.object_id in owned)
        if not scope:
            continue
        window = dataclasses.replace(window, scope=scope)
        if not viewer.is_staff:
            window = dataclasses.replace(window, reason=None, declared_by=None,
                                         ended_by=None)
        visible.append(window)
    return visible


def get_window_for(conn: psycopg.Connection, viewer: Viewer,
                   window_id: int) -> MaintenanceWindow | None:
    for window in windows_for(conn, viewer):
        if window.id == window_id:
            return window
    return None


def object_labels(conn: psycopg.Connection,
                  object_ids: Iterable[int]) -> dict[int, tuple[str, int | None]]:
    """What to call the objects alarms are on: id -> (label, the customer owning it, None
    for the operator's own). A device is its key, a port "DEVICE:PORT", a circuit its key, a
    link its key; a link is a customer's when either end is at one of its sites. The portal
    shows a label only to a viewer who may see that customer."""
    rows = conn.execute(
        """SELECT d.id, d.key, s.customer_id FROM devices d
             LEFT JOIN sites s ON s.id = d.site_id WHERE d.id = ANY(%(ids)s)
           UNION ALL
           SELECT p.id, d.key || ':' || p.name, s.customer_id FROM ports p
             JOIN devices d ON d.id = p.device_id LEFT JOIN sites s ON s.id = d.site_id
            WHERE p.id = ANY(%(ids)s)
           UNION ALL
           SELECT ci.id, ci.key, ci.customer_id FROM circuits ci WHERE ci.id = ANY(%(ids)s)
           UNION ALL
           SELECT l.id, l.key, coalesce(sa.customer_id, sz.customer_id) FROM links l
             JOIN ports pa ON pa.id = l.a_port_id JOIN devices da ON da.id = pa.device_id
             LEFT JOIN sites sa ON sa.id = da.site_id
             JOIN ports pz ON pz.id = l.z_port_id JOIN devices dz ON dz.id = pz.device_id
             LEFT JOIN sites sz ON sz.id = dz.site_id
            WHERE l.id = ANY(%(ids)s)""",
        {"ids": sorted(set(object_ids))}).fetchall()
    return {row[0]: (row[1], row[2]) for row in rows}
