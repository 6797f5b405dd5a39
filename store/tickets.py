"""Trouble tickets in the store: rows, their circuits, their timeline, scoped reads.

Persistence only: the rules (who may do what, when a fault opens a ticket, how the clocks
run) live in sla/tickets.py, which calls these functions inside its own transaction. Every
change is written with its timeline entry (`ticket_events`, immutable) and announced as a
"ticket.<action>" event (store.events.publish) in the same transaction, so the portal's
live rooms and the notifier hear of a change only once it is committed.

Reads take the viewer's scope: `customer_id` (a customer sees the tickets of its own
customer, never the NOC's incident and monitoring-gap tickets) and `manager` (an account
manager sees its own accounts' tickets). The staff's NOC tickets have no customer.

Rows come back as `TicketRow` (plain values, the clocks as their JSON); sla/tickets.py makes
the domain type of them, so the store imports nothing above config/.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from store.events import publish

TOPIC_PREFIX = "ticket."
ACTIVE_STATES = ("open", "acknowledged", "in_progress", "pending_customer")
CUSTOMER_KINDS = ("fault", "complaint")

_COLUMNS = ("id, kind, origin, customer_id, master_id, merged_into, incident_key,"
            " sla_contract_id, priority, impact, state, title, description, opened_at,"
            " opened_by, acknowledged_at,"
            " acknowledged_by, resolved_at, closed_at, calendar, clocks, response_due_at,"
            " resolution_due_at, response_breached, resolution_breached, escalated,"
            " updated_at")


@dataclass(frozen=True)
class TicketCircuitRow:
    circuit_id: int
    circuit_key: str
    customer_id: int | None
    added_at: datetime
    state: str
    alarm_id: int | None
    restored_at: datetime | None


@dataclass(frozen=True)
class TicketEventRow:
    id: int
    ticket_id: int
    time: datetime
    actor: str
    actor_kind: str
    action: str
    from_state: str | None
    to_state: str | None
    alarm_id: int | None
    comment: str | None
    internal: bool
    detail: dict[str, Any]


@dataclass(frozen=True)
class TicketRow:
    id: int
    kind: str
    origin: str
    customer_id: int | None
    master_id: int | None
    merged_into: int | None
    incident_key: str | None
    sla_contract_id: int | None
    priority: str
    impact: str
    state: str
    title: str
    description: str
    opened_at: datetime
    opened_by: str
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    closed_at: datetime | None
    calendar: dict[str, Any]
    clocks: dict[str, Any]
    response_due_at: datetime | None
    resolution_due_at: datetime | None
    response_breached: bool
    resolution_breached: bool
    escalated: dict[str, Any]
    updated_at: datetime
    circuits: tuple[TicketCircuitRow, ...] = ()
    customer_key: str | None = None
    customer_name: str | None = None
    contract_key: str | None = None
    children: tuple[int, ...] = field(default=())

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


# --- writes ----------------------------------------------------------------------------------


def insert_ticket(conn: psycopg.Connection, values: dict[str, Any]) -> int:
    """Insert a ticket (every column but id and updated_at given in `values`); its id."""
    columns = [c.strip() for c in _COLUMNS.split(",") if c.strip() not in ("id", "updated_at")]
    row = conn.execute(
        f"INSERT INTO tickets ({', '.join(columns)}) VALUES"
        f" ({', '.join(f'%({c})s' for c in columns)}) RETURNING id",
        {c: _adapt(c, values[c]) for c in columns}).fetchone()
    assert row is not None
    return int(row[0])


def update_ticket(conn: psycopg.Connection, ticket_id: int, values: dict[str, Any]) -> None:
    """Set the named columns of a ticket (and updated_at)."""
    if not values:
        return
    assignments = ", ".join(f"{name} = %({name})s" for name in values)
    conn.execute(f"UPDATE tickets SET {assignments}, updated_at = now() WHERE id = %(id)s",
                 {**{k: _adapt(k, v) for k, v in values.items()}, "id": ticket_id})


def add_circuit(conn: psycopg.Connection, ticket_id: int, circuit_id: int, added_at: datetime,
                state: str, alarm_id: int | None) -> bool:
    """Put a circuit on a ticket; False when it is there already (then it is marked out of
    service again if it had been restored)."""
    row = conn.execute(
        """INSERT INTO ticket_circuits (ticket_id, circuit_id, added_at, state, alarm_id)
           VALUES (%s, %s, %s, %s, %s)
           ON CONFLICT (ticket_id, circuit_id) DO UPDATE
              SET restored_at = NULL, state = EXCLUDED.state,
                  alarm_id = coalesce(EXCLUDED.alarm_id, ticket_circuits.alarm_id)
           RETURNING (xmax = 0)""",
        [ticket_id, circuit_id, added_at, state, alarm_id]).fetchone()
    return bool(row and row[0])


def merge_into(conn: psycopg.Connection, from_id: int, into_id: int) -> list[int]:
    """Move a ticket's circuits (and child tickets) to another; the circuits added."""
    added = [row[0] for row in conn.execute(
        """INSERT INTO ticket_circuits (ticket_id, circuit_id, added_at, state, alarm_id,
                                        restored_at)
           SELECT %s, circuit_id, added_at, state, alarm_id, restored_at
             FROM ticket_circuits WHERE ticket_id = %s
           ON CONFLICT (ticket_id, circuit_id) DO NOTHING RETURNING circuit_id""",
        [into_id, from_id])]
    conn.execute("UPDATE tickets SET master_id = %s WHERE master_id = %s", [into_id, from_id])
    conn.execute("UPDATE tickets SET merged_into = %s WHERE id = %s", [into_id, from_id])
    return added


def alarm_keyed_tickets(conn: psycopg.Connection) -> list[tuple[int, int | None, str, str]]:
    """(id, customer id, kind, incident key) of the active tickets the ticket service opened
    for an alarm's incident, oldest first."""
    return [(row[0], row[1], row[2], row[3]) for row in conn.execute(
        """SELECT id, customer_id, kind, incident_key FROM tickets
            WHERE origin = 'alarm' AND incident_key LIKE 'alarm:%%'
              AND state NOT IN ('resolved', 'closed')
            ORDER BY id""")]


def restore_circuit(conn: psycopg.Connection, ticket_id: int, circuit_id: int,
                    restored_at: datetime) -> None:
    conn.execute("UPDATE ticket_circuits SET restored_at = %s"
                 " WHERE ticket_id = %s AND circuit_id = %s AND restored_at IS NULL",
                 [restored_at, ticket_id, circuit_id])


def add_event(conn: psycopg.Connection, ticket: TicketRow, *, time: datetime, actor: str,
              actor_kind: str, action: str, from_state: str | None = None,
              to_state: str | None = None, alarm_id: int | None = None,
              comment: str | None = None, internal: bool = False,
              detail: dict[str, Any] | None = None) -> int:
    """Write one timeline entry and announce it as "ticket.<action>" (the payload names the
    ticket and its audience, never the comment: readers fetch what their scope allows)."""
    row = conn.execute(
        """INSERT INTO ticket_events (ticket_id, time, actor, actor_kind, action, from_state,
                                      to_state, alarm_id, comment, internal, detail)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        [ticket.id, time, actor, actor_kind, action, from_state, to_state, alarm_id, comment,
         internal, Jsonb(detail or {})]).fetchone()
    assert row is not None
    publish(conn, TOPIC_PREFIX + action, {
        "ticket_id": ticket.id, "entry_id": row[0], "kind": ticket.kind,
        "customer_id": ticket.customer_id if ticket.kind in CUSTOMER_KINDS else None,
        "master_id": ticket.master_id, "state": to_state or ticket.state,
        "internal": internal, "time": time.isoformat()})
    return int(row[0])


# --- reads -----------------------------------------------------------------------------------


def _scope_clause(customer_id: int | None, manager: str | None) -> tuple[str, dict[str, Any]]:
    clauses = []
    params: dict[str, Any] = {}
    if customer_id is not None:
        clauses.append("t.customer_id = %(scope)s AND t.kind IN ('fault', 'complaint')")
        params["scope"] = customer_id
    if manager is not None:
        clauses.append("t.customer_id IN (SELECT id FROM customers"
                       " WHERE account_manager = %(manager)s)")
        params["manager"] = manager
    return (" AND ".join(clauses) or "true"), params


def _row(values: Sequence[Any]) -> TicketRow:
    return TicketRow(*values[:27], customer_key=values[27], customer_name=values[28],
                     contract_key=values[29])


_SELECT = f"""
SELECT {', '.join('t.' + c.strip() for c in _COLUMNS.split(','))},
       cu.key, cu.name, sc.key
  FROM tickets t
  LEFT JOIN customers cu ON cu.id = t.customer_id
  LEFT JOIN sla_contracts sc ON sc.id = t.sla_contract_id"""


def get_ticket(conn: psycopg.Connection, ticket_id: int, *, customer_id: int | None = None,
               manager: str | None = None, lock: bool = False) -> TicketRow | None:
    """One ticket with its circuits and child tickets, or None when there is none in the
    scope given."""
    scope, params = _scope_clause(customer_id, manager)
    row = conn.execute(
        f"{_SELECT} WHERE t.id = %(id)s AND {scope}"
        + (" FOR UPDATE OF t" if lock else ""), {**params, "id": ticket_id}).fetchone()
    if row is None:
        return None
    ticket = _row(row)
    circuits = tuple(TicketCircuitRow(*r) for r in conn.execute(
        """SELECT tc.circuit_id, c.key, c.customer_id, tc.added_at, tc.state, tc.alarm_id,
                  tc.restored_at
             FROM ticket_circuits tc JOIN circuits c ON c.id = tc.circuit_id
            WHERE tc.ticket_id = %s ORDER BY c.key""", [ticket_id]))
    children = tuple(r[0] for r in conn.execute(
        "SELECT id FROM tickets WHERE master_id = %s ORDER BY id", [ticket_id]))
    return TicketRow(**{**ticket.__dict__, "circuits": circuits, "children": children})


def list_tickets(conn: psycopg.Connection, *, customer_id: int | None = None,
                 manager: str | None = None, states: Sequence[str] | None = None,
                 kinds: Sequence[str] | None = None, limit: int = 200,
                 before_id: int | None = None) -> list[TicketRow]:
    """Tickets in the scope, the active ones by time to breach (soonest first), then the
    others newest first. Circuits are not loaded (get_ticket has them)."""
    scope, params = _scope_clause(customer_id, manager)
    rows = conn.execute(
        f"""{_SELECT}
             WHERE {scope}
               AND (%(states)s::text[] IS NULL OR t.state = ANY(%(states)s))
               AND (%(kinds)s::text[] IS NULL OR t.kind = ANY(%(kinds)s))
               AND (%(before)s::bigint IS NULL OR t.id < %(before)s)
             ORDER BY (t.state IN ('resolved', 'closed')),
                      least(coalesce(t.response_due_at, 'infinity'),
                            coalesce(t.resolution_due_at, 'infinity')),
                      t.id DESC
             LIMIT %(limit)s""",
        {**params, "states": list(states) if states else None,
         "kinds": list(kinds) if kinds else None, "before": before_id, "limit": limit})
    return [_row(row) for row in rows]


def ticket_circuit_ids(conn: psycopg.Connection, ticket_ids: Sequence[int]
                       ) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for ticket_id, circuit_id in conn.execute(
            "SELECT ticket_id, circuit_id FROM ticket_circuits WHERE ticket_id = ANY(%s)"
            " ORDER BY ticket_id, circuit_id", [list(ticket_ids)]):
        found.setdefault(ticket_id, []).append(circuit_id)
    return found


def timeline(conn: psycopg.Connection, ticket_id: int, *, include_internal: bool
             ) -> list[TicketEventRow]:
    rows = conn.execute(
        """SELECT id, ticket_id, time, actor, actor_kind, action, from_state, to_state,
                  alarm_id, comment, internal, detail
             FROM ticket_events WHERE ticket_id = %s AND (%s OR NOT internal)
            ORDER BY time, id""", [ticket_id, include_internal]).fetchall()
    return [TicketEventRow(*row) for row in rows]


def open_ticket_for(conn: psycopg.Connection, customer_id: int | None, kind: str,
                    incident_key: str) -> int | None:
    """The id of the open ticket of this customer (None: the NOC's) and kind for this
    incident, locked for the caller's transaction."""
    row = conn.execute(
        """SELECT id FROM tickets
            WHERE coalesce(customer_id, 0) = coalesce(%s, 0) AND kind = %s
              AND incident_key = %s AND state NOT IN ('resolved', 'closed')
            FOR UPDATE""", [customer_id, kind, incident_key]).fetchone()
    return int(row[0]) if row else None


def active_tickets_of_circuit(conn: psycopg.Connection, circuit_id: int) -> list[int]:
    """Active tickets on which the circuit is still out of service."""
    return [row[0] for row in conn.execute(
        """SELECT t.id FROM tickets t JOIN ticket_circuits tc ON tc.ticket_id = t.id
            WHERE tc.circuit_id = %s AND tc.restored_at IS NULL
              AND t.state NOT IN ('resolved', 'closed') AND t.origin = 'alarm'
            ORDER BY t.id""", [circuit_id])]


def tickets_to_check(conn: psycopg.Connection, now: datetime) -> list[int]:
    """Tickets whose clocks may have crossed an escalation level or a deadline by `now`
    (every active one with a running clock, breached ones too: a contract may escalate
    beyond 100 %; the caller works out the exact levels), and resolved ones that may be due
    for automatic close."""
    return [row[0] for row in conn.execute(
        """SELECT id FROM tickets
            WHERE (state NOT IN ('resolved', 'closed')
                   AND (response_due_at IS NOT NULL OR resolution_due_at IS NOT NULL))
               OR state = 'resolved'
            ORDER BY id""")]


def customer_contact(conn: psycopg.Connection, customer_id: int
                     ) -> tuple[str | None, str | None, str | None]:
    """The customer's contact e-mail, its account manager's login and its language."""
    row = conn.execute("SELECT contact_email, account_manager, language FROM customers"
                       " WHERE id = %s", [customer_id]).fetchone()
    return (row[0], row[1], row[2]) if row else (None, None, None)


def user_emails(conn: psycopg.Connection, *, role: str | None = None,
                keys: Sequence[str] = ()) -> list[str]:
    """E-mail addresses of active users with this role, or with these logins."""
    return [row[0] for row in conn.execute(
        """SELECT DISTINCT email FROM users
            WHERE retired_at IS NULL AND email IS NOT NULL AND email <> ''
              AND (role = %s OR key = ANY(%s)) ORDER BY email""", [role, list(keys)])]


def _adapt(name: str, value: Any) -> Any:
    if name in ("calendar", "clocks", "escalated", "detail"):
        return Jsonb(value)
    return value
