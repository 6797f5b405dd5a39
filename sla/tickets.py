"""Trouble tickets: a customer's fault as the operator works it, with its SLA clocks.

A key account does not ask "is there an alarm?" but "who is on it, by when, and did you keep
your promise?". A ticket answers that. It opens when a circuit leaves service (the ticket
service hears the alarm pipeline's "circuit.state" events: sla/service.py), when a customer
reports a fault or a complaint from the portal, or when the NOC opens one for a customer on
the phone. One incident (one root cause) gives one ticket per customer it hits, listing that
customer's circuits, and one NOC *incident* ticket that links them; a circuit whose state is
unknown gives the NOC a *monitoring gap* ticket and its customer nothing (unknown is not an
outage). A fault inside a maintenance window opens nothing.

**States.** open -> acknowledged -> in progress -> (pending customer <-> in progress) ->
resolved -> closed; a resolved or closed ticket may be reopened within
`sla.reopen_window_h` of its resolution (a customer rejecting the fix, or the NOC).

**Clocks** (sla/clocks.py, on the contract's service calendar sla/calendar.py, copied into
the ticket when it opens): the response clock is met by the first acknowledgement, the
resolution clock by the resolution; both pause while the ticket is pending the customer and
a reopened ticket's resolution clock resumes where it stopped. Deadlines are recomputed on
the calendar after a pause, never by adding wall time. The targets come from the contract's
priority matrix; the priority from `sla.priority_rules` (sla/settings.py) and the impact.

**The one path.** These functions are every action on a ticket, for the command line, the
REST API, the pages and the ticket service alike: who acts (a portal `Viewer` or a user key
for the command line; a customer may open, comment, confirm and reject on its own
customer's tickets only, and is told "no such ticket" for any other), what the texts may be
(alarms.actions.clean_text), which state allows what. Every change is one row of the
ticket's timeline, written and announced (store/tickets.py) in the caller's transaction,
together with the notifications it causes (store/outbox.py: at least once, never lost).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from alarms.actions import ActionError, Actor, Refusal, authorize, clean_text
from sla import clocks as sla_clocks
from sla.calendar import Calendar, add_business_seconds, calendar_of
from sla.clocks import Clock
from sla.messages import render
from sla.settings import EscalationLevel, SlaSettings
from store import outbox
from store import tickets as ticket_store
from store.circuit_states import current_states
from store.queries import Viewer
from store.tickets import ACTIVE_STATES, CUSTOMER_KINDS, TicketRow

STATES = ("open", "acknowledged", "in_progress", "pending_customer", "resolved", "closed")
KINDS = ("fault", "complaint", "incident", "monitoring_gap")
PRIORITIES = ("P1", "P2", "P3", "P4")
SYSTEM = "keyline"  # the actor of the ticket service's own changes
MAX_TITLE = 200

# action -> (states it may start from, state it leads to)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "acknowledged": (("open",), "acknowledged"),
    "in_progress": (("open", "acknowledged"), "in_progress"),
    "paused": (("open", "acknowledged", "in_progress"), "pending_customer"),
    "resumed": (("pending_customer",), "in_progress"),
    "resolved": (ACTIVE_STATES, "resolved"),
    "closed": (("resolved",), "closed"),
    "reopened": (("resolved", "closed"), "in_progress"),
    "merged": (ACTIVE_STATES, "closed"),
}

# what a customer may do, on its own customer's fault and complaint tickets
CUSTOMER_ACTIONS = ("opened", "commented", "closed", "reopened")


@dataclass(frozen=True)
class Ticket:
    """A stored ticket with its clocks and calendar as domain values."""

    row: TicketRow
    calendar: Calendar
    response: Clock
    resolution: Clock

    @property
    def id(self) -> int:
        return self.row.id

    @property
    def state(self) -> str:
        return self.row.state

    def figures(self, now: datetime) -> dict[str, Any]:
        """Deadlines, time left, time paused and breach of both clocks at `now`: what the
        pages show and count down from."""
        result: dict[str, Any] = {}
        for name, clock in (("response", self.response), ("resolution", self.resolution)):
            due = sla_clocks.due_at(clock, self.calendar)
            result[name] = {
                "target_s": clock.target_s,
                "used_s": round(sla_clocks.used(clock, self.calendar, now), 3),
                "remaining_s": round(sla_clocks.remaining_s(clock, self.calendar, now), 3),
                "due_at": due.isoformat() if due else None,
                "running": clock.running_since is not None,
                "paused": clock.paused_since is not None,
                "paused_s": round(_paused_s(clock, now), 3),
                "met_at": clock.stopped_at.isoformat() if clock.stopped_at else None,
                "breached": sla_clocks.breached(clock, self.calendar, now),
            }
        return result


def _paused_s(clock: Clock, now: datetime) -> float:
    extra = (now - clock.paused_since).total_seconds() if clock.paused_since else 0.0
    return clock.paused_s + max(0.0, extra)


def clock_json(clock: Clock) -> dict[str, Any]:
    def moment(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {"target_s": clock.target_s, "used_s": clock.used_s,
            "running_since": moment(clock.running_since), "stopped_at": moment(clock.stopped_at),
            "paused_since": moment(clock.paused_since), "paused_s": clock.paused_s}


def clock_from_json(data: dict[str, Any]) -> Clock:
    def moment(name: str) -> datetime | None:
        value = data.get(name)
        return datetime.fromisoformat(value) if value else None

    return Clock(int(data["target_s"]), float(data.get("used_s", 0.0)), moment("running_since"),
                 moment("stopped_at"), moment("paused_since"), float(data.get("paused_s", 0.0)))


def ticket_of(row: TicketRow) -> Ticket:
    return Ticket(row, calendar_of(row.calendar), clock_from_json(row.clocks["response"]),
                  clock_from_json(row.clocks["resolution"]))


def _clock_columns(ticket_calendar: Calendar, response: Clock, resolution: Clock,
                   now: datetime) -> dict[str, Any]:
    return {"clocks": {"response": clock_json(response), "resolution": clock_json(resolution)},
            "response_due_at": sla_clocks.due_at(response, ticket_calendar),
            "resolution_due_at": sla_clocks.due_at(resolution, ticket_calendar),
            "response_breached": sla_clocks.breached(response, ticket_calendar, now),
            "resolution_breached": sla_clocks.breached(resolution, ticket_calendar, now)}


# --- terms: the contract a ticket runs on --------------------------------------------------


@dataclass(frozen=True)
class Terms:
    contract_id: int | None
    contract_key: str | None
    calendar: dict[str, Any]  # the stored calendar JSON (sla.calendar.calendar_of reads it)
    times: dict[str, tuple[int, int]]  # priority -> (response_min, resolution_min)
    degraded_is_fault: bool = False


DEFAULT_CALENDAR = {"timezone": "UTC", "hours": [], "holidays": []}


def default_terms(settings: SlaSettings) -> Terms:
    return Terms(None, None, DEFAULT_CALENDAR,
                 {p: (t.response_min, t.resolution_min) for p, t in settings.default_times.items()})


def terms_of_circuits(conn: psycopg.Connection, circuit_ids: Iterable[int],
                      settings: SlaSettings) -> dict[int, Terms]:
    """Each circuit's contract terms (the default terms where it has no contract)."""
    found: dict[int, Terms] = {}
    for circuit_id, contract_id, key, calendar, priorities, spec in conn.execute(
            """SELECT c.id, s.id, s.key, s.calendar, s.priorities, s.spec
                 FROM circuits c LEFT JOIN sla_contracts s ON s.id = c.sla_contract_id
                WHERE c.id = ANY(%s)""", [sorted(set(circuit_ids))]):
        if contract_id is None:
            found[circuit_id] = default_terms(settings)
            continue
        times = {p: (int(v["response_min"]), int(v["resolution_min"]))
                 for p, v in priorities.items()}
        found[circuit_id] = Terms(contract_id, key, calendar, times,
                                  bool((spec or {}).get("degraded_counts_as_down", False)))
    return found


def strictest(terms: Sequence[Terms], priority: str) -> Terms:
    """Of several circuits' terms, the one promising the fastest resolution at `priority`
    (a ticket over circuits of two contracts keeps the stricter promise)."""
    return min(terms, key=lambda t: (t.times[priority][1], t.times[priority][0],
                                     t.contract_key or ""))


# --- priority ------------------------------------------------------------------------------


def priority_for(settings: SlaSettings, impact: str, contract_key: str | None) -> str:
    """The first rule of `sla.priority_rules` matching the impact and the contract."""
    for rule in settings.priority_rules:
        if rule.impact == impact and (not rule.contracts or contract_key in rule.contracts):
            return rule.priority
    raise ValueError(f"no priority rule for impact {impact}")  # the settings forbid this


def _circuit_sites(conn: psycopg.Connection, customer_id: int
                   ) -> dict[int, frozenset[int | None]]:
    return {row[0]: frozenset((row[1], row[2])) for row in conn.execute(
        """SELECT c.id, da.site_id, dz.site_id
             FROM circuits c
             JOIN ports pa ON pa.id = c.a_port_id JOIN devices da ON da.id = pa.device_id
             JOIN ports pz ON pz.id = c.z_port_id JOIN devices dz ON dz.id = pz.device_id
            WHERE c.customer_id = %s AND c.retired_at IS NULL""", [customer_id])}


def out_of_service(state: str, underlying: str | None, degraded_is_fault: bool) -> bool:
    """Whether a stored state is an outage for ticketing (maintenance: its underlying state;
    that one counts in the SLA figures, but a window's faults open no ticket)."""
    return state == "down" or (state == "degraded" and degraded_is_fault)


def impact_of(conn: psycopg.Connection, customer_id: int, faulty: Iterable[int],
              terms: dict[int, Terms] | None = None) -> str:
    """How much of the customer's service the faulty circuits take (sla/settings.py)."""
    sites = _circuit_sites(conn, customer_id)
    states = current_states(conn, sites)
    down = {c for c, s in states.items()
            if out_of_service(s.state, s.underlying,
                              bool(terms and c in terms and terms[c].degraded_is_fault))}
    down |= set(faulty)
    if sites and all(c in down for c in sites):
        return "all_down"
    for circuit_id in down:
        pair = sites.get(circuit_id)
        backup = [c for c, p in sites.items() if p == pair and c not in down]
        if not backup:
            return "partial_down"
    return "redundancy_lost"


# --- who acts --------------------------------------------------------------------------------


def _actor(actor: Actor, action: str) -> tuple[str, str]:
    """(user key, actor kind) of a person about to act; customers only for their actions."""
    if isinstance(actor, Viewer) and actor.role == "customer":
        if action not in CUSTOMER_ACTIONS:
            raise ActionError(None, f"a customer may not {action.replace('_', ' ')} a ticket",
                              Refusal.FORBIDDEN)
        return actor.user_key, "customer"
    return authorize(actor, "work tickets"), "staff"


def _load(conn: psycopg.Connection, actor: Actor | None, ticket_id: Any) -> Ticket:
    """The ticket, locked, as the actor may see it; NOT_FOUND otherwise (a customer is never
    told that another customer's ticket exists)."""
    if isinstance(ticket_id, bool) or not isinstance(ticket_id, int):
        raise ActionError("ticket_id", "a ticket id is a positive integer")
    if not 0 < ticket_id < 2**63:  # an integer no ticket can have
        raise ActionError("ticket_id", "no such ticket", Refusal.NOT_FOUND)
    customer_id = manager = None
    if isinstance(actor, Viewer):
        customer_id, manager = actor.scope, actor.manager
    row = ticket_store.get_ticket(conn, ticket_id, customer_id=customer_id, manager=manager,
                                  lock=True)
    if row is None:
        raise ActionError("ticket_id", "no such ticket", Refusal.NOT_FOUND)
    return ticket_of(row)


# the actions of the front ends' words (the API's and the pages' steps)
STEP_ACTIONS = {"acknowledge": "acknowledged", "start": "in_progress", "pause": "paused",
                "resume": "resumed", "resolve": "resolved", "close": "closed",
                "reopen": "reopened", "comment": "commented", "priority": "set_priority"}


def ticket_to_change(conn: psycopg.Connection, actor: Actor, ticket_id: Any,
                     step: str) -> Ticket:
    """Check that the ticket exists for the actor, then that the actor may take this step
    (a key of STEP_ACTIONS): a front end calls it before it reads the rest of a request, so
    a refusal is "no such ticket" before "not your role" before a bad argument."""
    ticket = _load(conn, actor, ticket_id)
    _actor(actor, STEP_ACTIONS[step])
    return ticket


def now_of(conn: psycopg.Connection) -> datetime:
    """The database's now: the clocks of the machines running the CLI and the portal do not
    count."""
    return conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]


# --- changes -------------------------------------------------------------------------------


def _apply(conn: psycopg.Connection, ticket: Ticket, action: str, at: datetime, *,
           actor: str, actor_kind: str, comment: str | None = None, internal: bool = False,
           alarm_id: int | None = None, detail: dict[str, Any] | None = None,
           settings: SlaSettings) -> Ticket:
    """Move the ticket by `action` (TRANSITIONS) at `at`, run its clocks accordingly, write
    the timeline entry and the notifications; the ticket as it is now."""
    sources, target = TRANSITIONS[action]
    if ticket.state not in sources:
        raise ActionError("ticket_id", f"ticket {ticket.id} is {ticket.state.replace('_', ' ')}:"
                          f" it cannot be {action.replace('_', ' ')}", Refusal.CONFLICT)
    calendar = ticket.calendar
    response, resolution = ticket.response, ticket.resolution
    values: dict[str, Any] = {"state": target}
    if action in ("acknowledged", "in_progress", "resolved") and response.stopped_at is None:
        response = sla_clocks.stop(response, calendar, at)
        values.update(acknowledged_at=at, acknowledged_by=actor)
    if action == "paused":
        response = _pause(response, calendar, at)
        resolution = _pause(resolution, calendar, at)
    elif action == "resumed":
        response = _resume(response, calendar, at)
        resolution = _resume(resolution, calendar, at)
    elif action == "resolved":
        resolution = sla_clocks.stop(resolution, calendar, at)
        values["resolved_at"] = at
    elif action == "closed":
        values["closed_at"] = at
    elif action == "merged":
        response = _stop_if_open(response, calendar, at)
        resolution = _stop_if_open(resolution, calendar, at)
        values["closed_at"] = at
    elif action == "reopened":
        if ticket.row.resolved_at is None or (
                at - ticket.row.resolved_at > timedelta(hours=settings.reopen_window_h)):
            raise ActionError("ticket_id", f"ticket {ticket.id} was resolved more than"
                              f" {settings.reopen_window_h:g} hours ago: open a new ticket",
                              Refusal.CONFLICT)
        resolution = sla_clocks.reopen(resolution, calendar, at)
        values.update(resolved_at=None, closed_at=None)
    values.update(_clock_columns(calendar, response, resolution, at))
    ticket_store.update_ticket(conn, ticket.id, values)
    row = ticket_store.get_ticket(conn, ticket.id)
    assert row is not None
    entry = ticket_store.add_event(
        conn, row, time=at, actor=actor, actor_kind=actor_kind, action=action,
        from_state=ticket.state, to_state=target, alarm_id=alarm_id, comment=comment,
        internal=internal, detail=detail)
    changed = ticket_of(row)
    if action == "resolved":
        notify(conn, changed, "resolved", settings.notify_resolved, entry, settings)
    elif action == "reopened":
        notify(conn, changed, "reopened", ["role:noc"], entry, settings)
    return changed


def _stop_if_open(clock: Clock, calendar: Calendar, at: datetime) -> Clock:
    return clock if clock.stopped_at is not None else sla_clocks.stop(clock, calendar, at)


def _pause(clock: Clock, calendar: Calendar, at: datetime) -> Clock:
    return sla_clocks.pause(clock, calendar, at) if clock.running_since is not None else clock


def _resume(clock: Clock, calendar: Calendar, at: datetime) -> Clock:
    return sla_clocks.resume(clock, calendar, at) if clock.paused_since is not None else clock


def _propagate(conn: psycopg.Connection, master: Ticket, action: str, at: datetime,
               actor: str, settings: SlaSettings) -> None:
    """An incident's acknowledgement, start of work or resolution applies to its customers'
    tickets that still allow it."""
    for child_id in master.row.children:
        child = _load(conn, None, child_id)
        if child.state in TRANSITIONS[action][0]:
            _apply(conn, child, action, at, actor=actor, actor_kind="staff",
                   detail={"via_incident": master.id}, settings=settings)


def _act(conn: psycopg.Connection, actor: Actor, ticket_id: Any, action: str,
         comment: Any, settings: SlaSettings, *, comment_required: bool = False,
         internal: Any = False) -> Ticket:
    ticket = _load(conn, actor, ticket_id)
    key, kind = _actor(actor, action)
    text = clean_text(comment, "comment", required=comment_required)
    internal_note = _internal(internal, kind)
    at = now_of(conn)
    changed = _apply(conn, ticket, action, at, actor=key, actor_kind=kind,
                     comment=text, internal=internal_note, settings=settings)
    if ticket.row.kind == "incident" and action in ("acknowledged", "in_progress", "resolved"):
        _propagate(conn, changed, action, at, key, settings)
    return changed


def _internal(value: Any, actor_kind: str) -> bool:
    if not isinstance(value, bool):
        raise ActionError("internal", "internal is true or false")
    if value and actor_kind == "customer":
        raise ActionError("internal", "a customer's comment is always shared")
    return value


def acknowledge(conn: psycopg.Connection, actor: Actor, ticket_id: Any, comment: Any = None,
                settings: SlaSettings | None = None, *, internal: Any = False) -> Ticket:
    """"We are on it": meets the response clock."""
    return _act(conn, actor, ticket_id, "acknowledged", comment, settings or SlaSettings(),
                internal=internal)


def start_work(conn: psycopg.Connection, actor: Actor, ticket_id: Any, comment: Any = None,
               settings: SlaSettings | None = None, *, internal: Any = False) -> Ticket:
    """In progress (acknowledges too, if nobody had)."""
    return _act(conn, actor, ticket_id, "in_progress", comment, settings or SlaSettings(),
                internal=internal)


def pause(conn: psycopg.Connection, actor: Actor, ticket_id: Any, comment: Any,
          settings: SlaSettings | None = None) -> Ticket:
    """Pending the customer (access to a site, a test from their side): both clocks stop
    counting. The comment says what the customer is asked for, and the customer reads it."""
    return _act(conn, actor, ticket_id, "paused", comment, settings or SlaSettings(),
                comment_required=True)


def resume(conn: psycopg.Connection, actor: Actor, ticket_id: Any, comment: Any = None,
           settings: SlaSettings | None = None) -> Ticket:
    return _act(conn, actor, ticket_id, "resumed", comment, settings or SlaSettings())


def resolve(conn: psycopg.Connection, actor: Actor, ticket_id: Any, comment: Any,
            settings: SlaSettings | None = None) -> Ticket:
    """Resolved, with what was done (the customer reads it and confirms or rejects)."""
    return _act(conn, actor, ticket_id, "resolved", comment, settings or SlaSettings(),
                comment_required=True)


def close(conn: psycopg.Connection, actor: Actor, ticket_id: Any, comment: Any = None,
          settings: SlaSettings | None = None) -> Ticket:
    """Closed: the customer confirms the resolution (or the NOC closes it)."""
    return _act(conn, actor, ticket_id, "closed", comment, settings or SlaSettings())


def reopen(conn: psycopg.Connection, actor: Actor, ticket_id: Any, comment: Any,
           settings: SlaSettings | None = None) -> Ticket:
    """The resolution is rejected: the ticket is worked again and its resolution clock
    resumes where it stopped (within `sla.reopen_window_h` of the resolution)."""
    return _act(conn, actor, ticket_id, "reopened", comment, settings or SlaSettings(),
                comment_required=True)


def add_comment(conn: psycopg.Connection, actor: Actor, ticket_id: Any, text: Any, *,
                internal: Any = False, settings: SlaSettings | None = None) -> int:
    """A comment (text only; a customer's is always shared, staff may keep one internal);
    the timeline entry's id."""
    ticket = _load(conn, actor, ticket_id)
    key, kind = _actor(actor, "commented")
    body = clean_text(text, "text", required=True)
    internal_note = _internal(internal, kind)
    if ticket.state == "closed":
        raise ActionError("ticket_id", f"ticket {ticket.id} is closed", Refusal.CONFLICT)
    return ticket_store.add_event(conn, ticket.row, time=now_of(conn), actor=key,
                                  actor_kind=kind, action="commented", comment=body,
                                  internal=internal_note)


def set_priority(conn: psycopg.Connection, actor: Actor, ticket_id: Any, priority: Any,
                 reason: Any, settings: SlaSettings | None = None) -> Ticket:
    """Staff change a ticket's priority, with a reason; the clocks keep the time used and
    take the new priority's targets from the ticket's contract."""
    settings = settings or SlaSettings()
    ticket = _load(conn, actor, ticket_id)
    key, kind = _actor(actor, "set_priority")
    if priority not in PRIORITIES:
        raise ActionError("priority", "priority is one of " + ", ".join(PRIORITIES))
    text = clean_text(reason, "reason", required=True)
    return _reprioritise(conn, ticket, priority, now_of(conn), actor=key, actor_kind=kind,
                         comment=text, settings=settings)


def _reprioritise(conn: psycopg.Connection, ticket: Ticket, priority: str, at: datetime, *,
                  actor: str, actor_kind: str, comment: str | None,
                  settings: SlaSettings, impact: str | None = None) -> Ticket:
    terms = _terms_of_ticket(conn, ticket, settings)
    response_min, resolution_min = terms.times[priority]
    response = _retarget(ticket.response, response_min * 60)
    resolution = _retarget(ticket.resolution, resolution_min * 60)
    values: dict[str, Any] = {"priority": priority,
                              **_clock_columns(ticket.calendar, response, resolution, at)}
    if impact is not None:
        values["impact"] = impact
    ticket_store.update_ticket(conn, ticket.id, values)
    row = ticket_store.get_ticket(conn, ticket.id)
    assert row is not None
    ticket_store.add_event(conn, row, time=at, actor=actor, actor_kind=actor_kind,
                           action="priority", comment=comment,
                           detail={"from": ticket.row.priority, "to": priority,
                                   "impact": impact or ticket.row.impact})
    return ticket_of(row)


def _retarget(clock: Clock, target_s: int) -> Clock:
    return Clock(target_s, clock.used_s, clock.running_since, clock.stopped_at,
                 clock.paused_since, clock.paused_s)


def _terms_of_ticket(conn: psycopg.Connection, ticket: Ticket, settings: SlaSettings) -> Terms:
    circuits = [c.circuit_id for c in ticket.row.circuits]
    terms = list(terms_of_circuits(conn, circuits, settings).values())
    if not terms:
        return default_terms(settings)
    return strictest(terms, ticket.row.priority)


# --- opening -------------------------------------------------------------------------------


def _insert(conn: psycopg.Connection, *, kind: str, origin: str, customer_id: int | None,
            master_id: int | None, incident_key: str | None, terms: Terms, priority: str,
            impact: str, title: str, description: str, opened_at: datetime,
            opened_by: str) -> int:
    calendar = calendar_of(terms.calendar)
    response_min, resolution_min = terms.times[priority]
    response = sla_clocks.start_clock(response_min * 60, opened_at)
    resolution = sla_clocks.start_clock(resolution_min * 60, opened_at)
    return ticket_store.insert_ticket(conn, {
        "kind": kind, "origin": origin, "customer_id": customer_id, "master_id": master_id,
        "merged_into": None,
        "incident_key": incident_key, "sla_contract_id": terms.contract_id,
        "priority": priority, "impact": impact, "state": "open", "title": title[:MAX_TITLE],
        "description": description, "opened_at": opened_at, "opened_by": opened_by,
        "acknowledged_at": None, "acknowledged_by": None, "resolved_at": None,
        "closed_at": None, "calendar": terms.calendar, "escalated": {},
        **_clock_columns(calendar, response, resolution, opened_at)})


def open_ticket(conn: psycopg.Connection, actor: Actor, *, circuit_id: Any, kind: Any = "fault",
                title: Any, description: Any = None, priority: Any = None,
                settings: SlaSettings | None = None) -> Ticket:
    """A fault or complaint a person reports on one circuit: a customer on its own circuit
    from the portal, or the NOC for a customer on the phone. The priority is the rule's for
    a reported fault or a complaint unless staff name one."""
    settings = settings or SlaSettings()
    if kind not in CUSTOMER_KINDS:
        raise ActionError("kind", "kind is fault or complaint")
    key, actor_kind = _actor(actor, "opened")
    if isinstance(circuit_id, bool) or not isinstance(circuit_id, int) or not (
            0 < circuit_id < 2**63):
        raise ActionError("circuit_id", "a circuit id is a positive integer")
    scope = actor.scope if isinstance(actor, Viewer) else None
    manager = actor.manager if isinstance(actor, Viewer) else None
    row = conn.execute(
        """SELECT c.id, c.customer_id, c.key FROM circuits c
             JOIN customers cu ON cu.id = c.customer_id
            WHERE c.id = %s AND c.retired_at IS NULL
              AND (%s::bigint IS NULL OR c.customer_id = %s)
              AND (%s::text IS NULL OR cu.account_manager = %s)""",
        [circuit_id, scope, scope, manager, manager]).fetchone()
    if row is None:
        raise ActionError("circuit_id", "no such circuit", Refusal.NOT_FOUND)
    _, customer_id, circuit_key = row
    title_text = clean_text(title, "title", required=True, max_length=MAX_TITLE)
    assert title_text is not None
    body = clean_text(description, "description", required=False) or ""
    impact = "reported" if kind == "fault" else "complaint"
    terms = terms_of_circuits(conn, [circuit_id], settings)[circuit_id]
    if priority is None:
        chosen = priority_for(settings, impact, terms.contract_key)
    elif actor_kind == "customer":
        raise ActionError("priority", "the NOC sets the priority of a reported fault",
                          Refusal.FORBIDDEN)
    elif priority not in PRIORITIES:
        raise ActionError("priority", "priority is one of " + ", ".join(PRIORITIES))
    else:
        chosen = priority
    at = now_of(conn)
    ticket_id = _insert(conn, kind=kind, origin="customer" if actor_kind == "customer" else "noc",
                        customer_id=customer_id, master_id=None, incident_key=None, terms=terms,
                        priority=chosen, impact=impact, title=title_text, description=body,
                        opened_at=at, opened_by=key)
    ticket_store.add_circuit(conn, ticket_id, circuit_id, at, "reported", None)
    ticket = _load(conn, None, ticket_id)
    entry = ticket_store.add_event(conn, ticket.row, time=at, actor=key, actor_kind=actor_kind,
                                   action="opened", to_state="open", comment=body or None,
                                   detail={"circuits": [circuit_key], "priority": chosen,
                                           "impact": impact})
    notify(conn, ticket, "opened", [*settings.notify_opened, "role:noc"], entry, settings)
    return ticket


# --- the ticket service's side: faults in, tickets out ---------------------------------------


@dataclass(frozen=True)
class StateChange:
    """A circuit's new service state as a "circuit.state" event carries it."""

    circuit_id: int
    customer_id: int | None
    time: datetime
    state: str
    previous: str | None
    underlying: str | None
    cause: str
    cause_kind: str
    alarm_id: int | None

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> StateChange:
        return cls(int(data["circuit_id"]), data.get("customer_id"),
                   datetime.fromisoformat(data["time"]), data["state"], data.get("previous"),
                   data.get("underlying"), data.get("cause") or "", data.get("cause_kind") or "",
                   data.get("alarm_id"))


def root_alarm(conn: psycopg.Connection, alarm_id: int) -> int:
    """The alarm at the top of the root-cause chain of this one (itself when unrooted)."""
    row = conn.execute(
        """WITH RECURSIVE chain(id, root, depth) AS (
               SELECT id, root_cause_id, 0 FROM alarms WHERE id = %s
               UNION ALL
               SELECT a.id, a.root_cause_id, chain.depth + 1
                 FROM alarms a JOIN chain ON a.id = chain.root WHERE chain.depth < 20)
           SELECT id FROM chain ORDER BY depth DESC LIMIT 1""", [alarm_id]).fetchone()
    return int(row[0]) if row else alarm_id


def incident_key_of(conn: psycopg.Connection, change: StateChange, gap: bool) -> str:
    if gap:
        return f"gap:{change.cause_kind}:{_first_element(conn, change.circuit_id)}"
    if change.alarm_id is not None:
        return f"alarm:{root_alarm(conn, change.alarm_id)}"
    return f"circuit:{change.circuit_id}:{change.cause_kind}"


def _first_element(conn: psycopg.Connection, circuit_id: int) -> str:
    row = conn.execute(
        """SELECT elements FROM circuit_states WHERE circuit_id = %s
            ORDER BY time DESC, id DESC LIMIT 1""", [circuit_id]).fetchone()
    elements = row[0] if row else []
    return elements[0] if elements else f"circuit:{circuit_id}"


def on_circuit_states(conn: psycopg.Connection, changes: Sequence[StateChange],
                      settings: SlaSettings) -> list[int]:
    """The ticket service's step: open, join or restore tickets for a batch of circuit state
    changes, in the caller's transaction; the ids of the tickets touched."""
    touched: list[int] = []
    terms = terms_of_circuits(conn, [c.circuit_id for c in changes], settings)
    for change in changes:
        circuit_terms = terms.get(change.circuit_id)
        if circuit_terms is None:
            continue  # retired meanwhile
        faulty = out_of_service(change.state, change.underlying, circuit_terms.degraded_is_fault)
        if change.state == "maintenance":
            continue  # a window's faults open nothing; the state underneath is recorded
        if faulty:
            touched += _fault(conn, change, circuit_terms, settings)
        elif change.state == "unknown" and settings.monitoring_gap_after_s == 0:
            touched += _gap(conn, change, settings)  # else the tick opens it (check_gaps)
        restored_from = ("gap",) if faulty else (("fault",) if change.state == "unknown"
                                                else ("fault", "gap"))
        touched += _restore(conn, change, restored_from, settings)
    return touched


def _fault(conn: psycopg.Connection, change: StateChange, terms: Terms,
           settings: SlaSettings) -> list[int]:
    if change.customer_id is None:
        return []
    key = incident_key_of(conn, change, gap=False)
    impact = ("degraded" if change.state == "degraded"
              else impact_of(conn, change.customer_id, [change.circuit_id]))
    priority = priority_for(settings, impact, terms.contract_key)
    touched = []
    master_id = _join_or_open(conn, None, "incident", key, change, terms, priority, impact,
                              None, settings)
    touched.append(master_id)
    ticket_id = _join_or_open(conn, change.customer_id, "fault", key, change, terms, priority,
                              impact, master_id, settings)
    touched.append(ticket_id)
    _master_priority(conn, master_id, settings)
    return touched


def _gap(conn: psycopg.Connection, change: StateChange, settings: SlaSettings) -> list[int]:
    key = incident_key_of(conn, change, gap=True)
    terms = default_terms(settings)
    priority = priority_for(settings, "monitoring_gap", None)
    return [_join_or_open(conn, None, "monitoring_gap", key, change, terms, priority,
                          "monitoring_gap", None, settings)]


def _join_or_open(conn: psycopg.Connection, customer_id: int | None, kind: str, key: str,
                  change: StateChange, terms: Terms, priority: str, impact: str,
                  master_id: int | None, settings: SlaSettings) -> int:
    circuit_key = conn.execute("SELECT key FROM circuits WHERE id = %s",
                               [change.circuit_id]).fetchone()[0]  # type: ignore[index]
    existing = ticket_store.open_ticket_for(conn, customer_id, kind, key)
    if existing is None:
        title = _title(conn, kind, change, circuit_key)
        ticket_id = _insert(conn, kind=kind, origin="alarm", customer_id=customer_id,
                            master_id=master_id, incident_key=key, terms=terms,
                            priority=priority, impact=impact, title=title,
                            description=change.cause, opened_at=change.time,
                            opened_by=SYSTEM)
        ticket_store.add_circuit(conn, ticket_id, change.circuit_id, change.time, change.state,
                                 change.alarm_id)
        ticket = _load(conn, None, ticket_id)
        entry = ticket_store.add_event(
            conn, ticket.row, time=change.time, actor=SYSTEM, actor_kind="system",
            action="opened", to_state="open", alarm_id=change.alarm_id,
            detail={"circuits": [circuit_key], "priority": priority, "impact": impact,
                    "cause": change.cause, "cause_kind": change.cause_kind})
        recipients = (settings.notify_opened if kind in CUSTOMER_KINDS else []) + ["role:noc"]
        notify(conn, ticket, "opened", recipients, entry, settings)
        return ticket_id
    added = ticket_store.add_circuit(conn, existing, change.circuit_id, change.time,
                                     change.state, change.alarm_id)
    ticket = _load(conn, None, existing)
    if added:
        ticket_store.add_event(conn, ticket.row, time=change.time, actor=SYSTEM,
                               actor_kind="system", action="circuit_added",
                               alarm_id=change.alarm_id,
                               detail={"circuits": [circuit_key], "cause": change.cause})
    if PRIORITIES.index(priority) < PRIORITIES.index(ticket.row.priority):
        # more of the customer's service is lost: the priority rises (never falls by itself)
        _reprioritise(conn, ticket, priority, change.time, actor=SYSTEM, actor_kind="system",
                      comment=None, settings=settings, impact=impact)
    return existing


def _master_priority(conn: psycopg.Connection, master_id: int, settings: SlaSettings) -> None:
    """An incident takes the highest priority of its customers' tickets."""
    master = _load(conn, None, master_id)
    priorities = [row[0] for row in conn.execute(
        "SELECT priority FROM tickets WHERE master_id = %s", [master_id])]
    if not priorities:
        return
    top = min(priorities, key=PRIORITIES.index)
    if PRIORITIES.index(top) < PRIORITIES.index(master.row.priority):
        _reprioritise(conn, master, top, now_of(conn), actor=SYSTEM, actor_kind="system",
                      comment=None, settings=settings)


def _title(conn: psycopg.Connection, kind: str, change: StateChange, circuit_key: str) -> str:
    if kind == "monitoring_gap":
        return f"Monitoring gap: {circuit_key} state unknown ({change.cause_kind})"
    if kind == "incident" and change.alarm_id is not None:
        row = conn.execute("SELECT summary FROM alarms WHERE id = %s",
                           [root_alarm(conn, change.alarm_id)]).fetchone()
        if row and row[0]:
            return f"Incident: {row[0]}"
    return f"{circuit_key} out of service"


def _restore(conn: psycopg.Connection, change: StateChange, kinds: Sequence[str],
             settings: SlaSettings) -> list[int]:
    """The circuit is back (in service, or no longer unknown): mark it restored on its
    active tickets of these kinds; a ticket all of whose circuits are back is resolved at
    that moment (the incident when all its customers' tickets are)."""
    touched = []
    wanted = {"fault": ("fault", "incident"), "gap": ("monitoring_gap",)}
    kinds_wanted = {k for group in kinds for k in wanted[group]}
    for ticket_id in ticket_store.active_tickets_of_circuit(conn, change.circuit_id):
        ticket = _load(conn, None, ticket_id)
        if ticket.row.kind not in kinds_wanted:
            continue
        ticket_store.restore_circuit(conn, ticket_id, change.circuit_id, change.time)
        touched.append(ticket_id)
        ticket = _load(conn, None, ticket_id)
        if all(c.restored_at is not None for c in ticket.row.circuits):
            circuits = [c.circuit_key for c in ticket.row.circuits]
            _apply(conn, ticket, "resolved", change.time, actor=SYSTEM, actor_kind="system",
                   detail={"circuits": circuits, "restored": True}, settings=settings)
    return touched


def rekey_incidents(conn: psycopg.Connection, settings: SlaSettings) -> list[int]:
    """Follow the alarm pipeline's re-rooting: a ticket was opened for the root cause known
    at the time (a cut link), and that alarm has since been put under another (the router
    behind it). Every active ticket takes the key of its alarm's current root; tickets of
    one customer (or the NOC's) that now share a key are merged into the oldest, so one
    incident stays one ticket per customer and one NOC incident, whatever order the
    evidence came in. The ids of the tickets changed."""
    groups: dict[tuple[int | None, str, str], list[tuple[int, str]]] = {}
    for ticket_id, customer_id, kind, key in ticket_store.alarm_keyed_tickets(conn):
        current = f"alarm:{root_alarm(conn, int(key.split(':', 1)[1]))}"
        groups.setdefault((customer_id, kind, current), []).append((ticket_id, key))
    touched: list[int] = []
    # the NOC's incidents first, so customers' tickets already point at surviving ones
    for (_, kind, current), members in sorted(groups.items(),
                                              key=lambda item: item[0][1] != "incident"):
        if len(members) == 1 and members[0][1] == current:
            continue
        survivor = min(ticket_id for ticket_id, _ in members)
        at = now_of(conn)
        for ticket_id, _ in members:
            if ticket_id == survivor:
                continue
            added = ticket_store.merge_into(conn, ticket_id, survivor)
            merged = _load(conn, None, ticket_id)
            _apply(conn, merged, "merged", at, actor=SYSTEM, actor_kind="system",
                   detail={"merged_into": survivor}, settings=settings)
            target = _load(conn, None, survivor)
            ticket_store.add_event(conn, target.row, time=at, actor=SYSTEM,
                                   actor_kind="system", action="circuit_added",
                                   detail={"merged_from": ticket_id, "circuits": sorted(
                                       c.circuit_key for c in target.row.circuits
                                       if c.circuit_id in added)})
            touched.append(ticket_id)
        ticket_store.update_ticket(conn, survivor, {"incident_key": current})
        touched.append(survivor)
        survivor_ticket = _load(conn, None, survivor)
        if kind == "incident":
            _master_priority(conn, survivor, settings)
        elif survivor_ticket.row.customer_id is not None:
            faulty = [c.circuit_id for c in survivor_ticket.row.circuits if c.restored_at is None]
            impact = impact_of(conn, survivor_ticket.row.customer_id, faulty)
            terms = _terms_of_ticket(conn, survivor_ticket, settings)
            priority = priority_for(settings, impact, terms.contract_key)
            if PRIORITIES.index(priority) < PRIORITIES.index(survivor_ticket.row.priority):
                _reprioritise(conn, survivor_ticket, priority, at, actor=SYSTEM,
                              actor_kind="system", comment=None, settings=settings,
                              impact=impact)
            if survivor_ticket.row.master_id is not None:
                _master_priority(conn, survivor_ticket.row.master_id, settings)
    return touched


def on_alarm_acknowledged(conn: psycopg.Connection, alarm_id: int, by: str,
                          settings: SlaSettings) -> list[int]:
    """Acknowledging an incident's root alarm acknowledges its open tickets (the NOC's
    "I am on it" is the same promise to the customer)."""
    key = f"alarm:{root_alarm(conn, alarm_id)}"
    touched = []
    for (ticket_id,) in conn.execute(
            "SELECT id FROM tickets WHERE incident_key = %s AND state = 'open' ORDER BY id",
            [key]).fetchall():
        ticket = _load(conn, None, ticket_id)
        _apply(conn, ticket, "acknowledged", now_of(conn), actor=by, actor_kind="staff",
               alarm_id=alarm_id, detail={"via_alarm": alarm_id}, settings=settings)
        touched.append(ticket_id)
    return touched


# --- escalation and automatic close ----------------------------------------------------------


def check_clocks(conn: psycopg.Connection, now: datetime, settings: SlaSettings) -> list[int]:
    """The ticket service's tick: escalation levels crossed and deadlines breached since the
    last look (each once per ticket, clock and level, in the timeline and notified), and
    resolved tickets nobody answered closed."""
    touched = check_gaps(conn, now, settings)
    for ticket_id in ticket_store.tickets_to_check(conn, now):
        ticket = _load(conn, None, ticket_id)
        if ticket.state == "resolved":
            resolved_at = ticket.row.resolved_at
            if resolved_at and now - resolved_at >= timedelta(hours=settings.auto_close_after_h):
                _apply(conn, ticket, "closed", now, actor=SYSTEM, actor_kind="system",
                       detail={"automatic": True}, settings=settings)
                touched.append(ticket_id)
            continue
        if _escalate(conn, ticket, now, settings):
            touched.append(ticket_id)
    return touched


def check_gaps(conn: psycopg.Connection, now: datetime, settings: SlaSettings) -> list[int]:
    """Open the NOC's monitoring-gap tickets of circuits unknown for at least
    `sla.monitoring_gap_after_s` and on no active gap ticket yet; the ticket opens at the
    time the circuit became unknown."""
    since = now - timedelta(seconds=settings.monitoring_gap_after_s)
    touched = []
    for row in conn.execute(
            """SELECT s.circuit_id, s.customer_id, s.time, s.state, s.previous, s.underlying,
                      s.cause, s.cause_kind, s.alarm_id
                 FROM circuits c
                 -- each circuit's latest state by its index, not the whole history per tick
                 CROSS JOIN LATERAL (
                     SELECT * FROM circuit_states WHERE circuit_id = c.id
                      ORDER BY time DESC, id DESC LIMIT 1) s
                WHERE c.retired_at IS NULL AND s.state = 'unknown' AND s.time <= %s
                  AND NOT EXISTS (
                      SELECT 1 FROM ticket_circuits tc JOIN tickets t ON t.id = tc.ticket_id
                       WHERE tc.circuit_id = s.circuit_id AND tc.restored_at IS NULL
                         AND t.kind = 'monitoring_gap'
                         AND t.state NOT IN ('resolved', 'closed'))
                ORDER BY s.circuit_id""", [since]).fetchall():
        touched += _gap(conn, StateChange(*row), settings)
    return touched


def _escalate(conn: psycopg.Connection, ticket: Ticket, now: datetime,
              settings: SlaSettings) -> bool:
    escalated = {name: list(levels) for name, levels in (ticket.row.escalated or {}).items()}
    changed = False
    levels = escalation_levels(conn, ticket.row.sla_contract_id, settings)
    for name, clock in (("response", ticket.response), ("resolution", ticket.resolution)):
        if clock.stopped_at is not None:
            continue
        used_pct = 100.0 * sla_clocks.fraction_used(clock, ticket.calendar, now)
        own = [level for level in levels if level.clock in (name, "both")]
        if not any(level.at_pct == 100 for level in own):
            # the breach itself is always recorded (and the NOC told), levels or none
            own.append(EscalationLevel(at_pct=100, clock=name, notify=["role:noc"]))
        for level in sorted(own, key=lambda level: level.at_pct):
            if used_pct < level.at_pct:
                continue
            if level.at_pct in escalated.get(name, []):
                continue
            escalated.setdefault(name, []).append(level.at_pct)
            changed = True
            at = _crossing_time(ticket, clock, level.at_pct, now)
            ticket_store.update_ticket(conn, ticket.id, {
                "escalated": escalated,
                **_clock_columns(ticket.calendar, ticket.response, ticket.resolution, now)})
            row = ticket_store.get_ticket(conn, ticket.id)
            assert row is not None
            action = "breached" if level.at_pct == 100 else "escalated"
            entry = ticket_store.add_event(
                conn, row, time=at, actor=SYSTEM, actor_kind="system", action=action,
                detail={"clock": name, "level_pct": level.at_pct,
                        "due_at": _iso(sla_clocks.due_at(clock, ticket.calendar))})
            notify(conn, ticket_of(row), action, level.notify, entry, settings,
                   detail={"clock": name, "level_pct": level.at_pct})
    return changed


def escalation_levels(conn: psycopg.Connection, contract_id: int | None,
                      settings: SlaSettings) -> list[EscalationLevel]:
    """The contract's own escalation levels, or the settings' when it has none."""
    if contract_id is not None:
        row = conn.execute("SELECT spec -> 'escalation' FROM sla_contracts WHERE id = %s",
                           [contract_id]).fetchone()
        if row and row[0]:
            return [EscalationLevel(**step) for step in row[0]]
    return list(settings.escalation)


def _crossing_time(ticket: Ticket, clock: Clock, pct: float, now: datetime) -> datetime:
    """When the clock reached `pct` of its target (the timeline says when it happened, not
    when the tick noticed)."""
    if clock.running_since is None:
        return now
    needed = clock.target_s * pct / 100.0 - clock.used_s
    at = add_business_seconds(ticket.calendar, clock.running_since, max(0.0, needed))
    return min(at, now)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# --- notifications -------------------------------------------------------------------------


def notify(conn: psycopg.Connection, ticket: Ticket, event: str, recipients: Sequence[str],
           entry_id: int, settings: SlaSettings, *, detail: dict[str, Any] | None = None
           ) -> int:
    """Queue the messages of one ticket event to its recipients (store.outbox, in the
    caller's transaction: at least once, never lost); how many were queued. The customer's
    contact hears only of its own fault and complaint tickets, in its language."""
    queued = 0
    customer_ticket = ticket.row.kind in CUSTOMER_KINDS and ticket.row.customer_id is not None
    contact = manager = customer_language = None
    if ticket.row.customer_id is not None:
        contact, manager, customer_language = ticket_store.customer_contact(
            conn, ticket.row.customer_id)
    now = now_of(conn)
    for recipient in dict.fromkeys(recipients):
        language = "en"
        if recipient == "customer":
            if not customer_ticket or not contact:
                continue
            addresses, audience = [contact], "customer"
            language = customer_language or settings.customer_language
        elif recipient == "account_manager":
            if not manager:
                continue
            addresses, audience = ticket_store.user_emails(conn, keys=[manager]), "staff"
        elif recipient.startswith("role:"):
            addresses = ticket_store.user_emails(conn, role=recipient[5:])
            audience = "staff"
        elif recipient.startswith("user:"):
            addresses, audience = ticket_store.user_emails(conn, keys=[recipient[5:]]), "staff"
        elif recipient.startswith("webhook:"):
            payload = webhook_payload(ticket, event, now, detail)
            subject, body = render(event, ticket, now, "en", audience="staff", detail=detail)
            if outbox.enqueue(conn, "webhook", recipient[8:], subject, body, payload,
                              f"ticket:{ticket.id}:{entry_id}:{recipient}",
                              language="en", ticket_id=ticket.id) is not None:
                queued += 1
            continue
        else:
            continue
        for address in addresses:
            subject, body = render(event, ticket, now, language, audience=audience,
                                   detail=detail)
            if outbox.enqueue(conn, "email", address, subject, body,
                              webhook_payload(ticket, event, now, detail),
                              f"ticket:{ticket.id}:{entry_id}:email:{address}",
                              language=language, ticket_id=ticket.id) is not None:
                queued += 1
    return queued


def webhook_payload(ticket: Ticket, event: str, now: datetime,
                    detail: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON a webhook receiver gets: the ticket's facts, no free text."""
    row = ticket.row
    return {"event": f"ticket.{event}", "ticket_id": row.id, "kind": row.kind,
            "customer": row.customer_key, "priority": row.priority, "state": row.state,
            "title": row.title, "opened_at": row.opened_at.isoformat(),
            "circuits": [c.circuit_key for c in row.circuits],
            "clocks": ticket.figures(now), **({"detail": detail} if detail else {}),
            "time": now.astimezone(UTC).isoformat()}
