"""The REST API of trouble tickets: /api/v1/tickets.

This blueprint is nested in the API's (portal/api.py registers it, as it does
portal/alarms_api.py), so its endpoints are "api.ticket_api.*", live under /api/v1, share its
authentication (an API token, or the browser's session) and are checked by the test that
every API route is in the OpenAPI document (portal/openapi.py describes them).

Reading takes the viewer's scope through store.tickets' scoped reads (`get_ticket`,
`list_tickets`): a customer sees its own customer's fault and complaint tickets, never the
NOC's incident and monitoring-gap tickets, and any other ticket id is 404 on every route,
the actions included; an account manager sees its own customers' tickets. A customer's
ticket JSON carries no `master_id`, incident key, child tickets or alarm ids, no internal
timeline entry, and "operator" for the NOC's people (as the alarm API does); its circuits
are its own.

Each ticket carries its clocks' figures (sla.tickets.Ticket.figures) at `server_time`, the
database's now: `due_at`, `remaining_s` (business seconds), `paused`, `breached` and the rest,
so that a browser counts down from the server's figures, never from its own clock.

Writing goes through sla/tickets.py, the one path of the command line and the pages too:
this module only makes arguments of the JSON body and an answer of an ActionError by its
`refusal` (400 with the field at fault, 403, 404, 409), in the same JSON as the rest of the
API, `{"error": "...", "field": "..."}`. Staff open tickets for any customer (with a
priority if they name one), acknowledge, start, pause (pending the customer), resume,
resolve, close, reopen, comment (internal or shared) and change the priority; a customer
opens a fault or a complaint on its own circuit, comments, confirms a resolution (close) or
rejects it (reopen).

CSRF: as for the alarm API, a request authenticated by its bearer token is exempt; one
authenticated by the session cookie must send the CSRF token in the `X-CSRFToken` header.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from flask import Blueprint, current_app, g, jsonify, request
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue

from alarms.actions import ActionError
from portal.alarms_api import REFUSAL_STATUS
from portal.params import BadParameter, int_arg
from portal.security import current_viewer, login_required
from sla import tickets
from sla.settings import SlaSettings
from store import tickets as ticket_store
from store.queries import Viewer

blueprint = Blueprint("ticket_api", __name__)

MAX_LIMIT = 1000
DEFAULT_LIMIT = 200
OPERATOR_ACTOR = "operator"  # a person of the NOC, to a customer (portal.alarm_access's word)

# The state filter's words besides the states themselves.
STATE_GROUPS: dict[str, tuple[str, ...]] = {"active": ticket_store.ACTIVE_STATES,
                                            "all": tickets.STATES}

# The action endpoints: URL word -> (sla.tickets function, whether it reads "internal").
STEPS: dict[str, tuple[Callable[..., tickets.Ticket], bool]] = {
    "acknowledge": (tickets.acknowledge, True),
    "start": (tickets.start_work, True),
    "pause": (tickets.pause, False),
    "resume": (tickets.resume, False),
    "resolve": (tickets.resolve, False),
    "close": (tickets.close, False),
    "reopen": (tickets.reopen, False),
}

# What of a timeline entry's `detail` a customer reads: the facts of its own ticket, never
# the incident or the alarm behind it ("via_incident", "via_alarm").
CUSTOMER_DETAIL = ("circuits", "priority", "impact", "from", "to", "restored", "clock",
                   "level_pct", "due_at", "automatic", "cause")


@blueprint.errorhandler(ActionError)
def _action_refused(error: ActionError) -> ResponseReturnValue:
    return jsonify(error=error.message, field=error.field), REFUSAL_STATUS[error.refusal]


@blueprint.record_once
def _exempt_from_form_csrf(state: BlueprintSetupState) -> None:
    """The app-wide CSRF check runs before the viewer is known; this blueprint does its own
    (`_csrf_unless_token`) once it is."""
    state.app.extensions["csrf"].exempt(blueprint)


@blueprint.before_request
def _csrf_unless_token() -> None:
    """Only a request that the session cookie authenticates needs the CSRF token (see
    portal/alarms_api.py)."""
    if g.get("auth_method") == "session":
        current_app.extensions["csrf"].protect()


def _database() -> Any:
    return current_app.extensions["keyline.database"]


def sla_settings() -> SlaSettings:
    """The `sla` settings the app was made with (reopen window, notifications)."""
    return current_app.extensions["keyline.settings"].sla


# --- parameters --------------------------------------------------------------------------


def _choices(args: Any, name: str, allowed: Sequence[str],
             groups: dict[str, tuple[str, ...]] | None = None) -> list[str]:
    """A repeatable query parameter ("state=open&state=acknowledged", or comma-separated),
    each value one of `allowed` or a group's name."""
    chosen: list[str] = []
    for text in args.getlist(name):
        for value in (v.strip().lower() for v in text.split(",")):
            if value in (groups or {}):
                chosen += (groups or {})[value]
            elif value in allowed:
                chosen.append(value)
            else:
                words = [*(groups or {}), *allowed]
                raise BadParameter(name, f"{name} must be one of {', '.join(words)}")
    return list(dict.fromkeys(chosen))


def _body() -> dict[str, Any]:
    if not request.get_data(cache=True):
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadParameter(None, "the body must be a JSON object")
    return body


def _visible(conn: psycopg.Connection, viewer: Viewer, ticket_id: int
             ) -> ticket_store.TicketRow:
    """The ticket in the viewer's scope, or 404: asked before a body is read, so that
    another customer's ticket is 404 whatever the request carries."""
    row = ticket_store.get_ticket(conn, ticket_id, customer_id=viewer.scope,
                                  manager=viewer.manager)
    if row is None:
        raise BadParameter("ticket_id", "no such ticket", 404)
    return row


# --- JSON forms --------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def circuits_of(conn: psycopg.Connection, ticket_ids: Sequence[int]
                ) -> dict[int, list[tuple[int, str, int | None]]]:
    """(circuit id, key, customer id) of each ticket's circuits, by key."""
    found: dict[int, list[tuple[int, str, int | None]]] = {}
    for ticket_id, circuit_id, key, customer_id in conn.execute(
            """SELECT tc.ticket_id, c.id, c.key, c.customer_id
                 FROM ticket_circuits tc JOIN circuits c ON c.id = tc.circuit_id
                WHERE tc.ticket_id = ANY(%s) ORDER BY tc.ticket_id, c.key""",
            [list(ticket_ids)]):
        found.setdefault(ticket_id, []).append((circuit_id, key, customer_id))
    return found


def _person(name: str | None, kind: str, viewer: Viewer) -> str | None:
    """Who did something, as the viewer may read it: a customer reads "operator" for the
    NOC's people and the names of its own users."""
    if name is None or viewer.is_staff or kind != "staff":
        return name
    return OPERATOR_ACTOR


def ticket_json(ticket: tickets.Ticket, viewer: Viewer, now: datetime,
                circuits: Sequence[tuple[int, str, int | None]]) -> dict[str, Any]:
    """One ticket as the list gives it, cut for the viewer."""
    row = ticket.row
    staff = viewer.is_staff
    opener_kind = ("system" if row.origin == "alarm"
                   else "customer" if row.origin == "customer" else "staff")
    body: dict[str, Any] = {
        "id": row.id, "kind": row.kind, "origin": row.origin, "priority": row.priority,
        "impact": row.impact, "state": row.state, "title": row.title,
        "customer_id": row.customer_id, "customer_key": row.customer_key,
        "customer_name": row.customer_name, "contract_key": row.contract_key,
        "opened_at": row.opened_at.isoformat(),
        "opened_by": _person(row.opened_by, opener_kind, viewer),
        "acknowledged_at": _iso(row.acknowledged_at),
        "acknowledged_by": row.acknowledged_by if staff else None,
        "resolved_at": _iso(row.resolved_at), "closed_at": _iso(row.closed_at),
        "updated_at": row.updated_at.isoformat(),
        "clocks": ticket.figures(now),
        "circuits": [{"id": c[0], "key": c[1]} for c in circuits
                     if staff or c[2] == viewer.customer_id],
    }
    if staff:
        body.update(master_id=row.master_id, incident_key=row.incident_key)
    return body


def _entry_json(entry: ticket_store.TicketEventRow, viewer: Viewer) -> dict[str, Any]:
    staff = viewer.is_staff
    detail = entry.detail if staff else {
        k: v for k, v in (entry.detail or {}).items() if k in CUSTOMER_DETAIL}
    return {"id": entry.id, "time": entry.time.isoformat(),
            "actor": _person(entry.actor, entry.actor_kind, viewer),
            "actor_kind": entry.actor_kind, "action": entry.action,
            "from_state": entry.from_state, "to_state": entry.to_state,
            "comment": entry.comment, "internal": entry.internal,
            "alarm_id": entry.alarm_id if staff else None, "detail": detail}


def ticket_detail(conn: psycopg.Connection, viewer: Viewer, ticket_id: int) -> dict[str, Any]:
    """One ticket with its circuits, clocks and timeline as the viewer may read them (404
    when it is not in the viewer's scope)."""
    row = _visible(conn, viewer, ticket_id)
    now = tickets.now_of(conn)
    ticket = tickets.ticket_of(row)
    body = ticket_json(ticket, viewer, now, [])
    body["description"] = row.description
    body["circuits"] = [
        {"id": c.circuit_id, "key": c.circuit_key, "state": c.state,
         "added_at": c.added_at.isoformat(), "restored_at": _iso(c.restored_at),
         **({"alarm_id": c.alarm_id} if viewer.is_staff else {})}
        for c in row.circuits if viewer.is_staff or c.customer_id == viewer.scope]
    body["timeline"] = [_entry_json(e, viewer) for e in ticket_store.timeline(
        conn, ticket_id, include_internal=viewer.is_staff)]
    if viewer.is_staff:
        body["children"] = list(row.children)
    body["server_time"] = now.isoformat()
    return body


# --- tickets -------------------------------------------------------------------------------


@blueprint.get("/tickets")
@login_required
def list_tickets() -> ResponseReturnValue:
    viewer = current_viewer()
    args = request.args
    states = _choices(args, "state", tickets.STATES, STATE_GROUPS) or list(
        ticket_store.ACTIVE_STATES)
    kinds = _choices(args, "kind", tickets.KINDS) or None
    customer_id = int_arg(args, "customer_id")
    limit = int_arg(args, "limit", low=1, high=MAX_LIMIT) or DEFAULT_LIMIT
    before = int_arg(args, "before", low=1)
    with _database().pool.connection() as conn:
        now = tickets.now_of(conn)
        if viewer.scope is not None and customer_id not in (None, viewer.scope):
            rows = []  # another customer's: nothing, as for one that does not exist
        else:
            rows = ticket_store.list_tickets(
                conn, customer_id=viewer.scope if viewer.scope is not None else customer_id,
                manager=viewer.manager, states=states, kinds=kinds, limit=limit,
                before_id=before)
        circuits = circuits_of(conn, [r.id for r in rows])
    return jsonify(tickets=[ticket_json(tickets.ticket_of(r), viewer, now,
                                        circuits.get(r.id, [])) for r in rows],
                   server_time=now.isoformat())


@blueprint.get("/tickets/<int:ticket_id>")
@login_required
def get_ticket(ticket_id: int) -> ResponseReturnValue:
    with _database().pool.connection() as conn:
        return jsonify(ticket_detail(conn, current_viewer(), ticket_id))


@blueprint.post("/tickets")
@login_required
def open_ticket() -> ResponseReturnValue:
    viewer = current_viewer()
    body = _body()
    with _database().pool.connection() as conn:
        ticket = tickets.open_ticket(
            conn, viewer, circuit_id=body.get("circuit_id"), kind=body.get("kind", "fault"),
            title=body.get("title"), description=body.get("description"),
            priority=body.get("priority"), settings=sla_settings())
        return jsonify(ticket_detail(conn, viewer, ticket.id)), 201


def _step(ticket_id: int, step: str) -> ResponseReturnValue:
    viewer = current_viewer()
    action, reads_internal = STEPS[step]
    with _database().pool.connection() as conn:
        tickets.ticket_to_change(conn, viewer, ticket_id, step)
        body = _body()
        extra = {"internal": body.get("internal", False)} if reads_internal else {}
        action(conn, viewer, ticket_id, body.get("comment"), settings=sla_settings(), **extra)
        return jsonify(ticket_detail(conn, viewer, ticket_id))


@blueprint.post("/tickets/<int:ticket_id>/acknowledge")
@login_required
def acknowledge(ticket_id: int) -> ResponseReturnValue:
    return _step(ticket_id, "acknowledge")


@blueprint.post("/tickets/<int:ticket_id>/start")
@login_required
def start(ticket_id: int) -> ResponseReturnValue:
    return _step(ticket_id, "start")


@blueprint.post("/tickets/<int:ticket_id>/pause")
@login_required
def pause(ticket_id: int) -> ResponseReturnValue:
    return _step(ticket_id, "pause")


@blueprint.post("/tickets/<int:ticket_id>/resume")
@login_required
def resume(ticket_id: int) -> ResponseReturnValue:
    return _step(ticket_id, "resume")


@blueprint.post("/tickets/<int:ticket_id>/resolve")
@login_required
def resolve(ticket_id: int) -> ResponseReturnValue:
    return _step(ticket_id, "resolve")


@blueprint.post("/tickets/<int:ticket_id>/close")
@login_required
def close(ticket_id: int) -> ResponseReturnValue:
    return _step(ticket_id, "close")


@blueprint.post("/tickets/<int:ticket_id>/reopen")
@login_required
def reopen(ticket_id: int) -> ResponseReturnValue:
    return _step(ticket_id, "reopen")


@blueprint.post("/tickets/<int:ticket_id>/comments")
@login_required
def comment(ticket_id: int) -> ResponseReturnValue:
    viewer = current_viewer()
    with _database().pool.connection() as conn:
        tickets.ticket_to_change(conn, viewer, ticket_id, "comment")
        body = _body()
        tickets.add_comment(conn, viewer, ticket_id, body.get("text"),
                            internal=body.get("internal", False), settings=sla_settings())
        return jsonify(ticket_detail(conn, viewer, ticket_id)), 201


@blueprint.post("/tickets/<int:ticket_id>/priority")
@login_required
def priority(ticket_id: int) -> ResponseReturnValue:
    viewer = current_viewer()
    with _database().pool.connection() as conn:
        tickets.ticket_to_change(conn, viewer, ticket_id, "priority")
        body = _body()
        tickets.set_priority(conn, viewer, ticket_id, body.get("priority"), body.get("reason"),
                             settings=sla_settings())
        return jsonify(ticket_detail(conn, viewer, ticket_id))
