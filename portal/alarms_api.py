"""The REST API of alarms and maintenance windows: /api/v1/alarms, /api/v1/maintenance-windows.

This blueprint is nested in the API's (portal/api.py registers it), so its endpoints are
"api.alarm_api.*", live under /api/v1, share its authentication (an API token, or the
browser's session) and are checked by the test that every API route is in the OpenAPI
document (portal/openapi.py describes them).

Reading follows the pages' scoping (store.alarms.alarms_for, get_alarm_for, windows_for):
an alarm belongs to the customers it hits, so a customer's token lists only the alarms
that hit that customer and any other alarm id is 404; each alarm is cut by
portal.alarm_access (the same cut as the live messages and the Socket.IO catch-up): impact
narrowed to the caller's own circuits and customers, a root cause id only if the caller
may see that alarm, and for a customer no internal text (who acknowledged, internal notes,
the people in the timeline) and no name of another customer's object. A customer's
maintenance windows carry no reason, declared_by or ended_by (null): only customer_note.

An alarm's "text" (and a staff timeline entry's) is its summary as data, a code and its
parameters (alarms/texts.py); /api/v1/alarm-texts gives the templates in the caller's
language (Accept-Language; a customer gets those of summaries only), so a client shows the
summary in its reader's language.

Each change carries an internal note, "note" (staff only; its former names "comment" for an
acknowledgement and "reason" for a clear or a window are still read), and an optional
"customer_note", the only free text a customer is shown.

Writing is for the roles that work alarms (alarms.actions.ACTOR_ROLES: engineer, noc,
admin): acknowledge or take back an acknowledgement with an optional comment, clear with a
reason, declare a maintenance window, end one early. Every change goes through
alarms.actions, which holds the rules (the same for the command line and the pages) and
records who, when and why: another role gets 403 for an object it may see (and still 404 for
one it may not: the order of the checks never tells a customer another's alarm exists).

Errors are JSON, `{"error": "...", "field": "the offending parameter or null"}`: 400 for a
bad parameter or body field, 401 without a valid token or session, 403 for a role that may
not act, 404 for an id that is not the caller's, 409 for a change the object's state forbids
(acknowledging a cleared alarm, ending a window that is over: past windows are immutable).
An alarms.actions.ActionError becomes one of these by its `refusal`.

CSRF: a request authenticated by its bearer token is exempt (a script holding a token is
not a browser that a third-party page can drive); a request authenticated by the session
cookie must send the CSRF token in the `X-CSRFToken` header, like any form of the portal.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NoReturn

from flask import Blueprint, current_app, g, jsonify, request
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from alarms import actions
from alarms.actions import ActionError, Refusal
from alarms.model import MaintenanceWindow, Severity
from alarms.rules import AlarmSettings
from alarms.texts import LIST_SEPARATOR, LIST_SEPARATORS, NOTE_CODES, TEMPLATES
from portal import alarm_access, configs
from portal.params import int_arg
from portal.security import current_viewer, login_required
from store import alarms as alarm_store
from store.queries import Viewer

blueprint = Blueprint("alarm_api", __name__)

MAX_LIMIT = 1000
DEFAULT_LIMIT = 200

# An action's refusal -> the HTTP status (the same mapping for every endpoint).
REFUSAL_STATUS = {Refusal.INVALID: 400, Refusal.NOT_FOUND: 404, Refusal.FORBIDDEN: 403,
                  Refusal.CONFLICT: 409}


class AlarmApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def fail(status: int, message: str, field: str | None = None) -> NoReturn:
    raise AlarmApiError(status, message, field)


@blueprint.errorhandler(AlarmApiError)
def _api_error(error: AlarmApiError) -> ResponseReturnValue:
    return jsonify(error=error.message, field=error.field), error.status


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
    """Only a request that the session cookie authenticates needs the CSRF token: one
    authenticated by its bearer token does not, and one with neither (or a bad token) is
    refused with 401 by login_required before it can change anything."""
    if g.get("auth_method") == "session":
        current_app.extensions["csrf"].protect()


def _database() -> Any:
    return current_app.extensions["keyline.database"]


def alarm_settings() -> AlarmSettings:
    """The `alarms` settings the app was made with (a window's bounds)."""
    return current_app.extensions["keyline.settings"].alarms


# --- parameters --------------------------------------------------------------------------


def alarm_filters(args: Any) -> dict[str, Any]:
    """The list filters of the console and of GET /alarms, checked: state (active, cleared,
    all), severity, customer_id, acknowledged (true, false), limit."""
    state = (args.get("state") or "active").strip().lower()
    if state not in ("active", "cleared", "all"):
        fail(400, "state must be active, cleared or all", "state")
    severity = (args.get("severity") or "").strip().lower() or None
    if severity is not None and severity not in {str(s) for s in Severity}:
        fail(400, "severity must be critical, major, minor or warning", "severity")
    acknowledged_text = (args.get("acknowledged") or "").strip().lower()
    acknowledged = {"": None, "true": True, "yes": True, "1": True,
                    "false": False, "no": False, "0": False}.get(acknowledged_text, "bad")
    if acknowledged == "bad":
        fail(400, "acknowledged must be true or false", "acknowledged")
    return {"state": None if state == "all" else state, "severity": severity,
            "customer_id": int_arg(args, "customer_id"), "acknowledged": acknowledged}


def _notes(body: dict[str, Any], former: str) -> tuple[Any, Any]:
    """The internal note ("note"; the former name `former`, "comment" or "reason", is
    still read) and the customer note ("customer_note") of a change's body."""
    return body.get("note", body.get(former)), body.get("customer_note")


def _body() -> dict[str, Any]:
    if not request.get_data(cache=True):
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        fail(400, "the body must be a JSON object", None)
    return body


# --- JSON forms --------------------------------------------------------------------------


def window_status(window: MaintenanceWindow, now: datetime) -> str:
    if window.ends_at <= now:
        return "past"
    return "active" if window.starts_at <= now else "future"


def window_json(window: MaintenanceWindow, now: datetime) -> dict[str, Any]:
    return {
        "id": window.id,
        "scope": [{"kind": i.kind, "key": i.key, "object_id": i.object_id}
                  for i in window.scope],
        "starts_at": window.starts_at.isoformat(), "ends_at": window.ends_at.isoformat(),
        "reason": window.reason, "customer_note": window.customer_note,
        "declared_by": window.declared_by,
        "declared_at": window.declared_at.isoformat() if window.declared_at else None,
        "ended_by": window.ended_by, "status": window_status(window, now),
    }


def _one_alarm(conn: Any, viewer: Viewer, alarm_id: int) -> dict[str, Any]:
    alarm = alarm_store.get_alarm_for(conn, viewer, alarm_id)
    audience = alarm_access.audience_for(conn, viewer)
    context = alarm_access.alarm_context(conn, [alarm] if alarm is not None else [])
    cut = (alarm_access.viewer_alarm(alarm, audience, context)
           if alarm is not None else None)
    if alarm is None or cut is None:
        fail(404, "no such alarm", "alarm_id")
    body = alarm_access.alarm_view(alarm, audience, context)
    assert body is not None
    # the configuration changes before it ("what changed?"): for the operator's engineers
    # only (portal/configs.py), None for anyone else
    changes = configs.what_changed_entries(conn, viewer, alarm)
    body["timeline"] = alarm_access.timeline_view(cut, changes or ())
    assert alarm.id is not None
    body["symptoms"] = [a.id for a in alarm_store.alarms_for(
        conn, viewer, state=None, root_cause_id=alarm.id)]
    return body


# --- alarms ------------------------------------------------------------------------------


@blueprint.get("/alarms")
@login_required
def list_alarms() -> ResponseReturnValue:
    viewer = current_viewer()
    filters = alarm_filters(request.args)
    limit = int_arg(request.args, "limit", low=1, high=MAX_LIMIT) or DEFAULT_LIMIT
    with _database().pool.connection() as conn:
        alarms = alarm_store.alarms_for(conn, viewer, limit=limit, **filters)
        found = alarm_access.views(conn, alarms, alarm_access.audience_for(conn, viewer))
    return jsonify(alarms=found)


@blueprint.get("/alarms/<int:alarm_id>")
@login_required
def get_alarm(alarm_id: int) -> ResponseReturnValue:
    with _database().pool.connection() as conn:
        return jsonify(_one_alarm(conn, current_viewer(), alarm_id))


def text_catalog(*, notes: bool) -> dict[str, Any]:
    """The alarm pipeline's sentence templates (alarms.texts) in the reader's language, and
    how lists join: what a client needs to show an alarm's "text" as the portal does
    (portal/static/alarm_texts.js reads the same from its page). Without `notes`, only the
    templates a summary uses (alarms.texts.NOTE_CODES are the timeline's, staff-only)."""
    return {"templates": {code: gettext(template) for code, template in TEMPLATES.items()
                          if notes or code not in NOTE_CODES},
            "separator": LIST_SEPARATOR, "separators": dict(LIST_SEPARATORS)}


@blueprint.get("/alarm-texts")
@login_required
def alarm_texts() -> ResponseReturnValue:
    return jsonify(text_catalog(notes=current_viewer().is_staff))


def _act(alarm_id: int, action: str) -> ResponseReturnValue:
    viewer = current_viewer()
    with _database().pool.connection() as conn:
        actions.alarm_to_change(conn, viewer, alarm_id)  # its 404 and 403 before the body's 400
        body = _body()
        note, customer_note = _notes(body, "reason" if action == "clear" else "comment")
        if action == "clear":
            actions.clear(conn, viewer, alarm_id, note, customer_note)
        elif action == "acknowledge":
            actions.acknowledge(conn, viewer, alarm_id, note, customer_note)
        else:
            actions.unacknowledge(conn, viewer, alarm_id, note, customer_note)
        return jsonify(_one_alarm(conn, viewer, alarm_id))


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


# --- maintenance windows -----------------------------------------------------------------


def _now(conn: Any) -> datetime:
    return conn.execute("SELECT now()").fetchone()[0]


@blueprint.get("/maintenance-windows")
@login_required
def list_windows() -> ResponseReturnValue:
    status = (request.args.get("status") or "").strip().lower() or None
    if status not in (None, "active", "future", "past"):
        fail(400, "status must be active, future or past", "status")
    with _database().pool.connection() as conn:
        now = _now(conn)
        windows = alarm_store.windows_for(conn, current_viewer())
    found = [window_json(w, now) for w in windows]
    return jsonify(windows=[w for w in found if status is None or w["status"] == status])


@blueprint.post("/maintenance-windows")
@login_required
def create_window() -> ResponseReturnValue:
    viewer = current_viewer()
    actions.authorize(viewer, "declare maintenance")  # 403 before the body's 400
    body = _body()
    with _database().pool.connection() as conn:
        note, customer_note = _notes(body, "reason")
        window = actions.declare_maintenance(conn, viewer, body.get("scope"),
                                             body.get("starts_at"), body.get("ends_at"),
                                             note, customer_note, rules=alarm_settings())
        now = _now(conn)
    return jsonify(window_json(window, now)), 201


@blueprint.post("/maintenance-windows/<int:window_id>/end")
@login_required
def end_window(window_id: int) -> ResponseReturnValue:
    with _database().pool.connection() as conn:
        window, cancelled = actions.end_maintenance(conn, current_viewer(), window_id)
        body = window_json(window, _now(conn))
    if cancelled:
        body["status"] = "cancelled"
    return jsonify(body)
