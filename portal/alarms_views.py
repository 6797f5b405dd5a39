"""The alarm console, one alarm's page, the engineers' actions, and maintenance windows.

What the pages show (issues 5 and 6):

- */alarms*, the console: the alarms the viewer may see, filtered by severity, customer,
  state (active, cleared, or both) and acknowledgement. Alarms explain each other (see
  alarms/model.py): a root cause is listed with its symptoms folded under it (a `<details>`
  element: expand or collapse, no script needed under the Content-Security-Policy); a
  symptom whose root cause is not in the list stands alone and says whose symptom it is.
  Selecting an alarm (`?selected=ID`) shows its impact beside the list: the circuits and
  customers it hits. Every row names the circuits its alarm impacts (in the viewer's scope)
  with each one's service state as the alarm pipeline stored it (`console_circuits`), kept
  current live by portal/static/alarms.js.
- */alarms/ID*: the alarm's facts, its root cause and symptoms, its impact and its timeline,
  every change with when, who or what ("pipeline") and the comment.
- The engineers' actions, for the roles in alarms.actions.ACTOR_ROLES (engineer, noc,
  admin): acknowledge ("I am on it") or take it back, with a comment; clear by hand, with a
  reason. They are forms with a CSRF token, posting to /alarms/ID/acknowledge,
  /unacknowledge, /clear, and change the alarm only through alarms.actions, which holds
  the rules (the same as the command line's and the REST API's) and writes the timeline.
- */maintenance*: windows that are active, future and past; declaring one (a device, port,
  circuit or customer, a start and an end in UTC, a reason) and ending one early (a window
  not yet begun is cancelled). Past windows are read-only: the SLA figures depend on them.

Who sees what: an alarm belongs to the customers it hits (`impacted_customers`). A customer
user sees only the alarms that hit its customer, and another alarm's id is 404 like one
that does not exist; inside an alarm it sees only its own circuits and customer, and the
names of objects that belong to another customer are not shown. Every alarm a page shows is
cut by portal.alarm_access (`_cut`), as the REST API's and the live messages' are: a
customer sees that an alarm is acknowledged and when, never by whom, no internal note
(the acknowledgement's comment, a clear's reason, the pipeline's notes), "operator" for
any person in the timeline, and the notes written for customers; on the maintenance page
no reason and no names. Each form has both fields: the internal note (staff only) and the
note for customers. It sees the maintenance
windows that cover its own objects (narrowed to them) and cannot act. An account manager
reads, scoped to their customers as store.queries scopes them. Every read goes through the
viewer-scoped functions of store.alarms; the REST API (portal/alarms_api.py) shares them.
Declaring and ending a window go through alarms.actions too; its refusal (an ActionError
naming the field) becomes the form's error.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext, lazy_gettext

from alarms import actions
from alarms.actions import ActionError, Refusal
from alarms.model import SCOPE_KINDS, Alarm, MaintenanceWindow
from alarms.texts import TEMPLATES, TEXT, render
from collectors.config_history import WHAT_CHANGED_WINDOW
from portal import alarm_access, configs
from portal.alarms_api import (
    AlarmApiError,
    alarm_filters,
    alarm_settings,
    text_catalog,
    window_status,
)
from portal.live import CUSTOMER_ROOM, NOC_ROOM
from portal.params import BadParameter
from portal.security import OPERATOR_ROLES, current_viewer, login_required, safe_next
from store import alarms as alarm_store
from store.circuit_states import current_states
from store.events import last_event_id
from store.queries import Viewer, circuits_for, customers_for

blueprint = Blueprint("alarms", __name__)

SEVERITY_LABELS = {
    "critical": lazy_gettext("critical"),
    "major": lazy_gettext("major"),
    "minor": lazy_gettext("minor"),
    "warning": lazy_gettext("warning"),
}

STATE_LABELS = {
    "active": lazy_gettext("active"),
    "cleared": lazy_gettext("cleared"),
}

TYPE_LABELS = {
    "device_unreachable": lazy_gettext("device unreachable"),
    "device_isolated": lazy_gettext("device isolated"),
    "poll_failed": lazy_gettext("poll failed"),
    "link_down": lazy_gettext("link down"),
    "flapping": lazy_gettext("flapping"),
    "threshold": lazy_gettext("threshold crossed"),
    "trap_event": lazy_gettext("trap event"),
    "service_down": lazy_gettext("service down"),
    "snmp_unresponsive": lazy_gettext("SNMP unresponsive"),
    "config_mismatch": lazy_gettext("inventory mismatch"),
}

# The timeline's actions (alarms.model.TimelineEntry).
ACTION_LABELS = {
    "raised": lazy_gettext("raised"),
    "repeated": lazy_gettext("repeated"),
    "rooted": lazy_gettext("linked to a root cause"),
    "unrooted": lazy_gettext("unlinked from its root cause"),
    "impact": lazy_gettext("impact changed"),
    "suppressed": lazy_gettext("suppressed (maintenance)"),
    "unsuppressed": lazy_gettext("no longer suppressed"),
    "acknowledged": lazy_gettext("acknowledged"),
    "unacknowledged": lazy_gettext("acknowledgement taken back"),
    "cleared": lazy_gettext("cleared"),
}

KIND_LABELS = {
    "device": lazy_gettext("device"),
    "port": lazy_gettext("port"),
    "link": lazy_gettext("link"),
    "circuit": lazy_gettext("circuit"),
    "customer": lazy_gettext("customer"),
}

WINDOW_SECTIONS = (
    ("active", lazy_gettext("Active windows")),
    ("future", lazy_gettext("Future windows")),
    ("past", lazy_gettext("Past windows")),
)

# A new window's field at fault -> what the form says (the API's own messages are English).
WINDOW_FIELD_ERRORS = {
    "scope": lazy_gettext("Check the scope: the key of an existing device, port "
                          "(DEVICE:PORT), circuit or customer."),
    "starts_at": lazy_gettext("Check the start: a date and time (UTC), not in the past and not"
                              " further ahead than allowed (alarms.maintenance_max_ahead_days)."),
    "ends_at": lazy_gettext("Check the end: a date and time (UTC) after the start, for a window"
                            " no longer than allowed (alarms.maintenance_max_days)."),
    "reason": lazy_gettext("Give a reason (at most 2000 characters)."),
    "customer_note": lazy_gettext("The note for customers may have at most 2000 characters."),
}

CONSOLE_LIMIT = 500


def _database() -> Any:
    return current_app.extensions["keyline.database"]


@blueprint.app_template_filter("alarm_time")
def alarm_time(value: datetime | None) -> str:
    """A time as the NOC reads it, in UTC: 2026-01-31 12:00:05 UTC."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@blueprint.app_template_filter("alarm_text")
def alarm_text(words: str | None, detail: Mapping[str, Any] | None) -> str:
    """An alarm's summary or a timeline entry's note in the viewer's language, from the
    code and parameters the pipeline stored beside the English (alarms.texts: the template
    is translated, then filled in); a person's words, or an entry from before the texts
    were kept, as written: ``{{ alarm.summary | alarm_text(alarm.detail) }}``."""
    stored = (detail or {}).get(TEXT)
    if isinstance(stored, Mapping) and stored.get("code") in TEMPLATES:
        try:
            return render(stored, gettext)
        except (KeyError, TypeError, ValueError):  # parameters that no longer fit
            pass
    return words or ""


@blueprint.app_template_global("alarm_text_catalog")
def alarm_text_catalog() -> dict[str, Any]:
    """The templates of summaries that `alarm_text` translates, in the viewer's language, for
    a page's scripts to render the summaries of alarms that arrive live the same way (a JSON
    block read by portal/static/alarm_texts.js; /api/v1/alarm-texts gives the same)."""
    return text_catalog(notes=False)


@blueprint.app_context_processor
def alarm_labels() -> dict[str, Any]:
    return {"severity_labels": SEVERITY_LABELS, "alarm_state_labels": STATE_LABELS,
            "alarm_type_labels": TYPE_LABELS, "alarm_action_labels": ACTION_LABELS,
            "object_kind_labels": KIND_LABELS}


def may_act(viewer: Viewer) -> bool:
    return actions.may_act(viewer)


class Scope:
    """What of the inventory one viewer may see, for narrowing alarms' impact and labels:
    None for staff who see everything."""

    def __init__(self, conn: Any, viewer: Viewer) -> None:
        self.all = viewer.scope is None and viewer.manager is None
        self.circuits = {c.id: c for c in circuits_for(conn, viewer)}
        self.customers = {c.id: c for c in customers_for(conn, viewer)}

    def impact(self, alarm: Alarm) -> dict[str, list[Any]]:
        return {"circuits": [self.circuits[i] for i in sorted(alarm.impacted_circuits)
                             if i in self.circuits],
                "customers": [self.customers[i] for i in sorted(alarm.impacted_customers)
                              if i in self.customers]}

    def labels(self, conn: Any, alarms: list[Alarm]) -> dict[int, str]:
        """Object id -> its name, leaving out objects of customers the viewer may not see."""
        found = alarm_store.object_labels(conn, [a.key.object_id for a in alarms])
        return {object_id: label for object_id, (label, owner) in found.items()
                if self.all or owner is None or owner in self.customers}


def _cut(conn: Any, viewer: Viewer, alarms: list[Alarm], optional: list[Alarm | None]
         ) -> tuple[list[Alarm], list[Alarm | None]]:
    """`alarms` and `optional` as the viewer may see them (portal.alarm_access, the REST
    API's and the live messages' cut): the first without those it may not see, the second
    with None in their place."""
    audience = alarm_access.audience_for(conn, viewer)
    known = [a for a in (*alarms, *optional) if a is not None]
    context = alarm_access.alarm_context(conn, known)
    cut = [alarm_access.viewer_alarm(a, audience, context) for a in alarms]
    return ([a for a in cut if a is not None],
            [alarm_access.viewer_alarm(a, audience, context) if a is not None else None
             for a in optional])


def _groups(alarms: list[Alarm]) -> list[tuple[Alarm, list[Alarm]]]:
    """Root causes (and lone alarms) in list order, each with its symptoms in the list."""
    listed = {a.id for a in alarms}
    symptoms: dict[int, list[Alarm]] = {}
    for alarm in alarms:
        if alarm.root_cause_id is not None and alarm.root_cause_id in listed:
            symptoms.setdefault(alarm.root_cause_id, []).append(alarm)
    return [(a, symptoms.get(a.id, []) if a.id is not None else []) for a in alarms
            if a.root_cause_id is None or a.root_cause_id not in listed]


# --- the console and one alarm -------------------------------------------------------------


@blueprint.get("/alarms")
@login_required
def console() -> ResponseReturnValue:
    viewer = current_viewer()
    try:
        filters = alarm_filters(request.args)
    except AlarmApiError as bad:  # the message names the filter at fault
        raise BadParameter(bad.field, bad.message) from None
    selected_id = _selected(request.args.get("selected"))
    with _database().pool.connection() as conn:
        live_after = last_event_id(conn)  # first: a later change is replayed on joining
        scope = Scope(conn, viewer)
        if filters["customer_id"] is not None and filters["customer_id"] not in scope.customers:
            alarms: list[Alarm] = []
        else:
            alarms = alarm_store.alarms_for(conn, viewer, limit=CONSOLE_LIMIT, **filters)
        selected = (alarm_store.get_alarm_for(conn, viewer, selected_id, timeline=False)
                    if selected_id is not None else None)
        alarms, (selected,) = _cut(conn, viewer, alarms, [selected])
        labels = scope.labels(conn, alarms + ([selected] if selected else []))
        states = current_states(conn, scope.circuits) if scope.circuits else {}
    return render_template(
        "alarms/console.html", groups=_groups(alarms), count=len(alarms), filters=filters,
        console_circuits=console_circuits(scope, states),
        listed_ids={a.id for a in alarms},
        state_filter=request.args.get("state") or "active",
        acknowledged_filter=(request.args.get("acknowledged") or "").lower(),
        customers=list(scope.customers.values()), show_customers=viewer.scope is None,
        selected=selected, impact=scope.impact(selected) if selected else None,
        labels=labels, may_act=may_act(viewer), limit=CONSOLE_LIMIT,
        query={k: v for k, v in request.args.items() if k != "selected"},
        live_after=live_after, live_rooms=live_rooms(viewer, scope, filters["customer_id"]))


def console_circuits(scope: Scope, states: dict[int, Any]) -> dict[int, dict[str, Any]]:
    """The viewer's circuits as the console's rows name them: circuit id -> key, page and
    stored service state (store.circuit_states; a circuit not judged yet is unknown)."""
    found = {}
    for circuit_id, circuit in scope.circuits.items():
        state = states.get(circuit_id)
        found[circuit_id] = {
            "id": circuit_id, "key": circuit.key,
            "href": url_for("customer.circuit", circuit_id=circuit_id),
            "status": state.state if state is not None else "unknown",
            "underlying": state.underlying if state is not None else None}
    return found


def live_rooms(viewer: Viewer, scope: Scope, customer_id: int | None) -> list[str]:
    """The Socket.IO rooms (portal/live.py) the console listens to: "noc" for operators,
    the customer's own room for a customer user, the rooms of the customers an account
    manager manages (only the one filtered on, if any)."""
    if viewer.role in OPERATOR_ROLES:
        return [NOC_ROOM]
    if viewer.customer_id is not None:
        return [CUSTOMER_ROOM.format(viewer.customer_id)]
    ids = sorted(scope.customers) if customer_id is None else [
        c for c in scope.customers if c == customer_id]
    return [CUSTOMER_ROOM.format(c) for c in ids]


def _selected(text: str | None) -> int | None:
    try:
        value = int(text or "")
    except ValueError:
        return None
    return value if 0 <= value < 2**63 else None


def _alarm_page(alarm_id: int, *, error: str | None = None, status: int = 200
                ) -> ResponseReturnValue:
    viewer = current_viewer()
    with _database().pool.connection() as conn:
        alarm = alarm_store.get_alarm_for(conn, viewer, alarm_id)
        (alarm,) = _cut(conn, viewer, [], [alarm])[1]
        if alarm is None:
            abort(404)
        scope = Scope(conn, viewer)
        root = (alarm_store.get_alarm_for(conn, viewer, alarm.root_cause_id, timeline=False)
                if alarm.root_cause_id is not None else None)
        symptoms = alarm_store.alarms_for(conn, viewer, state=None, root_cause_id=alarm_id)
        symptoms, (root,) = _cut(conn, viewer, symptoms, [root])
        labels = scope.labels(conn, [alarm, *symptoms, *([root] if root else [])])
        # "what changed?": configuration changes before it, for the operator's engineers
        # only (portal/configs.py; None for anyone else)
        changes = configs.what_changed_for(conn, viewer, alarm)
    return render_template("alarms/alarm.html", alarm=alarm, root=root, symptoms=symptoms,
                           impact=scope.impact(alarm), labels=labels,
                           may_act=may_act(viewer), error=error, what_changed=changes,
                           timeline=configs.timeline_rows(alarm.timeline, changes or ()),
                           what_changed_window_min=int(
                               WHAT_CHANGED_WINDOW.total_seconds() // 60)), status


@blueprint.get("/alarms/<int:alarm_id>")
@login_required
def alarm(alarm_id: int) -> ResponseReturnValue:
    return _alarm_page(alarm_id)


def _act(alarm_id: int, action: str) -> ResponseReturnValue:
    viewer = current_viewer()
    text = request.form.get("reason" if action == "clear" else "comment")
    customer_note = request.form.get("customer_note")
    try:
        with _database().pool.connection() as conn:
            if action == "acknowledge":
                actions.acknowledge(conn, viewer, alarm_id, text, customer_note)
            elif action == "unacknowledge":
                actions.unacknowledge(conn, viewer, alarm_id, text, customer_note)
            else:
                actions.clear(conn, viewer, alarm_id, text, customer_note)
    except ActionError as refused:
        if refused.refusal is Refusal.NOT_FOUND:
            abort(404)
        if refused.refusal is Refusal.FORBIDDEN:
            return render_template("error.html", code=403, message=lazy_gettext(
                "Your role may not change alarms.")), 403
        if refused.refusal is Refusal.INVALID:
            message = (lazy_gettext("The note for customers may have at most 2000 "
                                    "characters.") if refused.field == "customer_note" else
                       lazy_gettext("Give a reason (at most 2000 characters).")
                       if action == "clear" else
                       lazy_gettext("The comment may have at most 2000 characters."))
            return _alarm_page(alarm_id, error=str(message), status=400)
        conflict = str(lazy_gettext(
            "The alarm changed meanwhile (cleared, or acknowledged by someone else): "
            "reload and look again."))
        return _alarm_page(alarm_id, error=conflict, status=409)
    target = safe_next(request.form.get("next"))
    return redirect(target or url_for("alarms.alarm", alarm_id=alarm_id))


@blueprint.post("/alarms/<int:alarm_id>/acknowledge")
@login_required
def acknowledge(alarm_id: int) -> ResponseReturnValue:
    return _act(alarm_id, "acknowledge")


@blueprint.post("/alarms/<int:alarm_id>/unacknowledge")
@login_required
def unacknowledge(alarm_id: int) -> ResponseReturnValue:
    return _act(alarm_id, "unacknowledge")


@blueprint.post("/alarms/<int:alarm_id>/clear")
@login_required
def clear(alarm_id: int) -> ResponseReturnValue:
    return _act(alarm_id, "clear")


# --- maintenance windows -------------------------------------------------------------------


def _maintenance_page(*, form: dict[str, str] | None = None, error_field: str | None = None,
                      error: str | None = None, status: int = 200) -> ResponseReturnValue:
    viewer = current_viewer()
    with _database().pool.connection() as conn:
        now = conn.execute("SELECT now()").fetchone()[0]
        windows = alarm_store.windows_for(conn, viewer)
    sections: dict[str, list[MaintenanceWindow]] = {"active": [], "future": [], "past": []}
    for window in windows:
        sections[window_status(window, now)].append(window)
    sections["past"].reverse()  # the latest first
    return render_template("maintenance/windows.html", sections=sections,
                           section_titles=WINDOW_SECTIONS, may_act=may_act(viewer),
                           show_internal=viewer.is_staff,
                           scope_kinds=SCOPE_KINDS, form=form or {}, error_field=error_field,
                           error=error), status


@blueprint.get("/maintenance")
@login_required
def maintenance() -> ResponseReturnValue:
    return _maintenance_page()


@blueprint.post("/maintenance")
@login_required
def declare() -> ResponseReturnValue:
    viewer = current_viewer()
    if not may_act(viewer):
        return render_template("error.html", code=403, message=lazy_gettext(
            "Your role may not declare maintenance.")), 403
    form = {name: request.form.get(name, "") for name in
            ("kind", "key", "starts_at", "ends_at", "reason", "customer_note")}
    kind = form["kind"] if form["kind"] in SCOPE_KINDS else ""
    scope = [f"{kind}:{form['key'].strip()}"] if kind and form["key"].strip() else []
    try:
        with _database().pool.connection() as conn:
            actions.declare_maintenance(conn, viewer, scope, form["starts_at"],
                                        form["ends_at"], form["reason"],
                                        form["customer_note"], rules=alarm_settings())
    except ActionError as failure:
        field = failure.field or "scope"
        return _maintenance_page(form=form, error_field=field,
                                 error=str(WINDOW_FIELD_ERRORS.get(field, lazy_gettext(
                                     "The window could not be declared."))), status=400)
    return redirect(url_for("alarms.maintenance"))


@blueprint.post("/maintenance/<int:window_id>/end")
@login_required
def end(window_id: int) -> ResponseReturnValue:
    viewer = current_viewer()
    try:
        with _database().pool.connection() as conn:
            actions.end_maintenance(conn, viewer, window_id)
    except ActionError as failure:
        if failure.refusal is Refusal.NOT_FOUND:
            abort(404)
        if failure.refusal is Refusal.FORBIDDEN:
            return render_template("error.html", code=403, message=lazy_gettext(
                "Your role may not end maintenance.")), 403
        return _maintenance_page(error=str(lazy_gettext(
            "That window is over: past windows cannot change.")), status=409)
    return redirect(url_for("alarms.maintenance"))
