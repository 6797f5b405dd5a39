"""The ticket pages: the NOC's queue, a customer's tickets and its reports, one ticket's page.

A ticket (sla/tickets.py) is what a key account asks about: who is on it, by when, and was
the promise kept. These pages show it and turn the people's clicks into the actions of
sla/tickets.py, the one path the command line and the REST API take too: a page only makes
arguments of the form's fields and the form's error of an ActionError (the field at fault
named in the viewer's language).

- */tickets*: for staff the queue, active tickets by time to breach (store.tickets'
  order), filtered by state and customer, and a "resolved and closed" tab; an account
  manager sees its own customers' tickets only. A customer sees its own fault and
  complaint tickets (never the NOC's incident and monitoring-gap tickets) and reports a
  fault or a complaint on one of its circuits (投诉及故障受理); the NOC opens one for a
  customer on the phone with the same form.
- */tickets/ID*: the facts, the circuits, both clocks (deadline, time left, time paused,
  breach), the timeline (who, when, what, from which alarm; internal notes for staff only,
  marked as such; a customer reads "operator" for the NOC's people, as on the alarm pages),
  the comment form and the steps the viewer's role allows in the ticket's state. Another
  customer's ticket, or a NOC ticket, is 404 to a customer, like a missing one.

Every read goes through store.tickets' scoped reads with the viewer's scope (customer or
account manager). Deadlines count down in the browser (portal/static/tickets.js) from the
figures the server computed at `server_time` (the database's now, sla.tickets.now_of), never
from the browser's clock; the pages stay current through Socket.IO (portal/live_tickets.py):
a small message names a changed ticket and the page fetches itself again through these same
routes, so what a viewer sees live is exactly what it may read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext, lazy_gettext

from alarms.actions import MAX_TEXT, ActionError, Refusal
from config.settings import Settings
from portal.alarms_views import Scope, alarm_time, live_rooms
from portal.live import CUSTOMER_ROOM, NOC_ROOM
from portal.params import BadParameter
from portal.security import OPERATOR_ROLES, current_viewer, login_required
from sla import tickets
from sla.settings import SlaSettings
from store import tickets as ticket_store
from store.queries import Viewer, circuits_for

blueprint = Blueprint("tickets", __name__)

STATE_LABELS = {
    "open": lazy_gettext("open"),
    "acknowledged": lazy_gettext("acknowledged"),
    "in_progress": lazy_gettext("in progress"),
    "pending_customer": lazy_gettext("pending customer"),
    "resolved": lazy_gettext("resolved"),
    "closed": lazy_gettext("closed"),
}

KIND_LABELS = {
    "fault": lazy_gettext("fault"),
    "complaint": lazy_gettext("complaint"),
    "incident": lazy_gettext("incident"),
    "monitoring_gap": lazy_gettext("monitoring gap"),
}

# The timeline's actions (store.tickets.add_event, sla/tickets.py).
ACTION_LABELS = {
    "opened": lazy_gettext("opened"),
    "acknowledged": lazy_gettext("acknowledged"),
    "in_progress": lazy_gettext("work started"),
    "paused": lazy_gettext("pending customer (clocks paused)"),
    "resumed": lazy_gettext("resumed"),
    "resolved": lazy_gettext("resolved"),
    "closed": lazy_gettext("closed"),
    "reopened": lazy_gettext("reopened"),
    "commented": lazy_gettext("comment"),
    "priority": lazy_gettext("priority changed"),
    "circuit_added": lazy_gettext("circuit added"),
    "escalated": lazy_gettext("escalated"),
    "breached": lazy_gettext("deadline breached"),
}

CLOCK_LABELS = {
    "response": lazy_gettext("Response"),
    "resolution": lazy_gettext("Resolution"),
}

TABS = {"active": ticket_store.ACTIVE_STATES, "done": ("resolved", "closed")}

# The steps of the ticket page: URL word -> (sla.tickets function, comment required).
STEPS: dict[str, tuple[Any, bool]] = {
    "acknowledge": (tickets.acknowledge, False),
    "start": (tickets.start_work, False),
    "pause": (tickets.pause, True),
    "resume": (tickets.resume, False),
    "resolve": (tickets.resolve, True),
    "close": (tickets.close, False),
    "reopen": (tickets.reopen, True),
}

# The step's button, and the states in which staff see it (sla.tickets.TRANSITIONS).
STEP_LABELS = {
    "acknowledge": lazy_gettext("Acknowledge"),
    "start": lazy_gettext("Start work"),
    "pause": lazy_gettext("Pending customer"),
    "resume": lazy_gettext("Resume"),
    "resolve": lazy_gettext("Resolve"),
    "close": lazy_gettext("Close"),
    "reopen": lazy_gettext("Reopen"),
}
_STEP_ACTION = {"acknowledge": "acknowledged", "start": "in_progress", "pause": "paused",
                "resume": "resumed", "resolve": "resolved", "close": "closed",
                "reopen": "reopened"}

# A refused field -> what the form says (sla.tickets' own messages are English).
FIELD_ERRORS = {
    "comment": lazy_gettext("This step needs a comment (at most %(num)d characters).",
                            num=MAX_TEXT),
    "text": lazy_gettext("Write a comment (at most %(num)d characters).", num=MAX_TEXT),
    "reason": lazy_gettext("Give a reason for the new priority (at most %(num)d characters).",
                           num=MAX_TEXT),
    "internal": lazy_gettext("A customer's comment is always shared with the NOC."),
    "title": lazy_gettext("Give a title (at most %(num)d characters).", num=tickets.MAX_TITLE),
    "description": lazy_gettext("The description may have at most %(num)d characters.",
                                num=MAX_TEXT),
    "circuit_id": lazy_gettext("Choose one of the circuits listed."),
    "kind": lazy_gettext("Choose fault or complaint."),
    "priority": lazy_gettext("Choose a priority, P1 to P4."),
}

LIST_LIMIT = 200


def _database() -> Any:
    return current_app.extensions["keyline.database"]


def sla_settings() -> SlaSettings:
    settings: Settings | None = current_app.extensions.get("keyline.settings")
    return settings.sla if settings is not None else SlaSettings()


@blueprint.app_template_filter("ticket_time")
def ticket_time(value: datetime | str | None) -> str:
    """A time (or its ISO 8601 text, as Ticket.figures gives deadlines) as the pages write
    every time: in UTC (portal.alarms_views.alarm_time)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return alarm_time(value)


@blueprint.app_template_filter("ticket_duration")
def ticket_duration(seconds: float | None) -> str:
    """Seconds as a countdown reads them: "1:05:09", "2 d 03:00:00"; a negative figure (a
    clock over its target) as "overdue by 0:03:02". portal/static/tickets.js writes the
    same."""
    if seconds is None:
        return "-"
    whole = int(abs(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}" if days else f"{hours}:{minutes:02d}:{secs:02d}"
    text = gettext("%(num)d d", num=days) + " " + clock if days else clock
    return gettext("overdue by %(time)s", time=text) if seconds < 0 else text


@blueprint.app_context_processor
def ticket_labels() -> dict[str, Any]:
    return {"ticket_state_labels": STATE_LABELS, "ticket_kind_labels": KIND_LABELS,
            "ticket_action_labels": ACTION_LABELS, "clock_labels": CLOCK_LABELS}


def may_work(viewer: Viewer) -> bool:
    """Whether the viewer's role works tickets (the operators; an account manager reads)."""
    return viewer.role in OPERATOR_ROLES


def may_report(viewer: Viewer) -> bool:
    """Whether the viewer may open a ticket: a customer user on its circuits, an operator
    for any customer."""
    return viewer.customer_id is not None or may_work(viewer)


def _text(value: Any) -> str:
    return str(value) if value is not None else ""


def _clock_view(figures: dict[str, Any]) -> dict[str, Any]:
    """One clock as the pages draw it: its figures and what its countdown does ("running",
    "paused", "met" or "idle")."""
    if figures["met_at"]:
        mode = "met"
    elif figures["paused"]:
        mode = "paused"
    elif figures["running"]:
        mode = "running"
    else:
        mode = "idle"
    return {**figures, "mode": mode}


def _row_view(ticket: tickets.Ticket, now: datetime, circuits: dict[int, Any],
              circuit_ids: list[int]) -> dict[str, Any]:
    figures = ticket.figures(now)
    return {"row": ticket.row,
            "clocks": {name: _clock_view(figures[name]) for name in ("response", "resolution")},
            "circuits": [circuits[c] for c in circuit_ids if c in circuits]}


# --- the list ------------------------------------------------------------------------------


def _filters(viewer: Viewer, scope: Scope) -> dict[str, Any]:
    tab = request.args.get("tab") or "active"
    if tab not in TABS:
        raise BadParameter("tab", "tab is active or done")
    state = request.args.get("state") or ""
    if state and state not in TABS[tab]:
        raise BadParameter("state", "state is one of " + ", ".join(TABS[tab]))
    customer_id: int | None = None
    text = request.args.get("customer_id") or ""
    if text and viewer.customer_id is None:
        try:
            customer_id = int(text)
        except ValueError:
            raise BadParameter("customer_id", "customer_id is a number") from None
        if customer_id not in scope.customers:
            customer_id = -1  # none of the viewer's: an empty list, as for a missing one
    return {"tab": tab, "state": state, "customer_id": customer_id}


def _list_page(*, form: dict[str, str] | None = None, error: str | None = None,
               error_field: str | None = None, status: int = 200) -> ResponseReturnValue:
    viewer = current_viewer()
    with _database().pool.connection() as conn:
        now = tickets.now_of(conn)
        scope = Scope(conn, viewer)
        filters = _filters(viewer, scope)
        states = [filters["state"]] if filters["state"] else list(TABS[filters["tab"]])
        customer_id = viewer.customer_id if viewer.customer_id is not None else (
            filters["customer_id"])
        rows = ([] if customer_id == -1 else ticket_store.list_tickets(
            conn, customer_id=customer_id, manager=viewer.manager, states=states,
            limit=LIST_LIMIT))
        circuit_ids = ticket_store.ticket_circuit_ids(conn, [r.id for r in rows])
        circuits = {c.id: c for c in circuits_for(conn, viewer)}
    listed = [_row_view(tickets.ticket_of(r), now, circuits, circuit_ids.get(r.id, []))
              for r in rows]
    return render_template(
        "tickets/list.html", tickets=listed, filters=filters, tabs=TABS, now=now,
        customers=list(scope.customers.values()), show_customers=viewer.customer_id is None,
        report_circuits=list(circuits.values()) if may_report(viewer) else [],
        may_work=may_work(viewer), form=form or {}, error=error, error_field=error_field,
        limit=LIST_LIMIT, live_rooms=live_rooms(viewer, scope, None)), status


@blueprint.get("/tickets")
@login_required
def queue() -> ResponseReturnValue:
    return _list_page()


@blueprint.post("/tickets")
@login_required
def report() -> ResponseReturnValue:
    """A fault or a complaint reported on one circuit (a customer's own; staff: any, with a
    priority if they name one)."""
    viewer = current_viewer()
    form = {name: request.form.get(name, "") for name in
            ("circuit_id", "kind", "title", "description", "priority")}
    if not may_report(viewer):
        return render_template("error.html", code=403, message=lazy_gettext(
            "Your role may not open tickets.")), 403
    try:
        circuit_id: Any = int(form["circuit_id"])
    except ValueError:
        circuit_id = form["circuit_id"]  # sla.tickets names the field
    priority = (form["priority"] or None) if may_work(viewer) else None
    try:
        with _database().pool.connection() as conn:
            ticket = tickets.open_ticket(conn, viewer, circuit_id=circuit_id,
                                         kind=form["kind"], title=form["title"],
                                         description=form["description"], priority=priority,
                                         settings=sla_settings())
    except ActionError as refused:
        if refused.refusal is Refusal.FORBIDDEN and refused.field != "priority":
            return render_template("error.html", code=403, message=lazy_gettext(
                "Your role may not open tickets.")), 403
        field = refused.field or "circuit_id"
        return _list_page(form=form, error_field=field, status=400, error=str(
            FIELD_ERRORS.get(field, lazy_gettext("The ticket could not be opened."))))
    return redirect(url_for("tickets.ticket", ticket_id=ticket.id))


# --- one ticket ----------------------------------------------------------------------------


def _actor_label(entry: ticket_store.TicketEventRow, viewer: Viewer) -> dict[str, Any]:
    """Who made a timeline entry, as this viewer may read it: a customer reads "operator"
    for the NOC's people (as on the alarm pages) and the names of its own users."""
    if entry.actor_kind == "system":
        return {"name": None, "system": True}
    if entry.actor_kind == "staff" and not viewer.is_staff:
        return {"name": None, "system": False}
    return {"name": entry.actor, "system": False}


def _steps(viewer: Viewer, row: ticket_store.TicketRow) -> list[dict[str, Any]]:
    """The steps this viewer may take on the ticket in its state: staff every step its
    state allows; a customer confirms a resolution (close) or rejects it (reopen)."""
    if may_work(viewer):
        allowed = [step for step, action in _STEP_ACTION.items()
                   if row.state in tickets.TRANSITIONS[action][0]]
    elif viewer.customer_id is not None and row.kind in ticket_store.CUSTOMER_KINDS:
        allowed = [s for s in ("close", "reopen") if row.state in
                   tickets.TRANSITIONS[_STEP_ACTION[s]][0]]
    else:
        allowed = []
    labels = dict(STEP_LABELS)
    if viewer.customer_id is not None:
        labels.update(close=lazy_gettext("Confirm the resolution"),
                      reopen=lazy_gettext("Reject the resolution"))
    return [{"step": s, "label": labels[s], "comment_required": STEPS[s][1]} for s in allowed]


def _ticket_page(ticket_id: int, *, error: str | None = None, error_form: str | None = None,
                 form: dict[str, str] | None = None, status: int = 200) -> ResponseReturnValue:
    viewer = current_viewer()
    with _database().pool.connection() as conn:
        row = ticket_store.get_ticket(conn, ticket_id, customer_id=viewer.scope,
                                      manager=viewer.manager)
        if row is None:
            abort(404)
        now = tickets.now_of(conn)
        entries = ticket_store.timeline(conn, ticket_id, include_internal=viewer.is_staff)
        visible_circuits = {c.id for c in circuits_for(conn, viewer)}
    ticket = tickets.ticket_of(row)
    figures = ticket.figures(now)
    circuits = [c for c in row.circuits if c.circuit_id in visible_circuits]
    timeline = [{"entry": e, "actor": _actor_label(e, viewer),
                 "alarm_id": e.alarm_id if viewer.is_staff else None} for e in entries]
    if viewer.customer_id is not None:
        rooms = [CUSTOMER_ROOM.format(viewer.customer_id)]
    elif viewer.role in OPERATOR_ROLES:
        rooms = [NOC_ROOM]
    else:  # an account manager: the room of the ticket's customer (one it manages)
        rooms = [CUSTOMER_ROOM.format(row.customer_id)] if row.customer_id is not None else []
    return render_template(
        "tickets/ticket.html", ticket=row, now=now, timeline=timeline, circuits=circuits,
        clocks={name: _clock_view(figures[name]) for name in ("response", "resolution")},
        steps=_steps(viewer, row), may_work=may_work(viewer),
        may_comment=(may_work(viewer) or viewer.customer_id is not None)
        and row.state != "closed",
        show_internal=viewer.is_staff, priorities=tickets.PRIORITIES,
        error=error, error_form=error_form, form=form or {}, live_rooms=rooms), status


@blueprint.get("/tickets/<int:ticket_id>")
@login_required
def ticket(ticket_id: int) -> ResponseReturnValue:
    return _ticket_page(ticket_id)


def _refused(ticket_id: int, refused: ActionError, form_name: str, form: dict[str, str],
             step: str | None = None) -> ResponseReturnValue:
    """An ActionError as the ticket page's answer: 404, 403, or the page again with the
    form's error (400 for a bad field, 409 when the ticket's state forbids the step)."""
    if refused.refusal is Refusal.NOT_FOUND and refused.field == "ticket_id":
        abort(404)
    if refused.refusal is Refusal.FORBIDDEN:
        return render_template("error.html", code=403, message=lazy_gettext(
            "Your role may not change this ticket.")), 403
    if refused.refusal is Refusal.CONFLICT:
        message = (lazy_gettext("The resolution is too old to reject: report a new fault.")
                   if step == "reopen" and "hours ago" in refused.message else
                   lazy_gettext("The ticket changed meanwhile and does not allow this step in"
                                " its state: look again."))
        return _ticket_page(ticket_id, error=str(message), error_form=form_name, form=form,
                            status=409)
    field = refused.field or ""
    message = FIELD_ERRORS.get(field, lazy_gettext("Check what you entered."))
    return _ticket_page(ticket_id, error=str(message), error_form=form_name, form=form,
                        status=400)


@blueprint.post("/tickets/<int:ticket_id>/comment")
@login_required
def comment(ticket_id: int) -> ResponseReturnValue:
    viewer = current_viewer()
    form = {"text": request.form.get("text", ""), "internal": request.form.get("internal", "")}
    try:
        with _database().pool.connection() as conn:
            tickets.add_comment(conn, viewer, ticket_id, form["text"],
                                internal=bool(form["internal"]), settings=sla_settings())
    except ActionError as refused:
        return _refused(ticket_id, refused, "comment", form)
    return redirect(url_for("tickets.ticket", ticket_id=ticket_id) + "#timeline")


@blueprint.post("/tickets/<int:ticket_id>/priority")
@login_required
def priority(ticket_id: int) -> ResponseReturnValue:
    viewer = current_viewer()
    form = {"priority": request.form.get("priority", ""), "reason": request.form.get("reason", "")}
    try:
        with _database().pool.connection() as conn:
            tickets.set_priority(conn, viewer, ticket_id, form["priority"], form["reason"],
                                 settings=sla_settings())
    except ActionError as refused:
        return _refused(ticket_id, refused, "priority", form)
    return redirect(url_for("tickets.ticket", ticket_id=ticket_id))


@blueprint.post("/tickets/<int:ticket_id>/<any(" + ",".join(STEPS) + "):step>")
@login_required
def step(ticket_id: int, step: str) -> ResponseReturnValue:
    viewer = current_viewer()
    action, _ = STEPS[step]
    form = {"comment": request.form.get("comment", ""), "step": step}
    try:
        with _database().pool.connection() as conn:
            action(conn, viewer, ticket_id, form["comment"] or None, settings=sla_settings())
    except ActionError as refused:
        return _refused(ticket_id, refused, step, form, step)
    return redirect(url_for("tickets.ticket", ticket_id=ticket_id))
