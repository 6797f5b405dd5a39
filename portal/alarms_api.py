"""The REST API of alarms and maintenance windows: /api/v1/alarms, /api/v1/maintenance-windows.

This blueprint is nested in the API's (portal/api.py registers it), so its endpoints are
"api.alarm_api.*", live under /api/v1, share its authentication (an API token, or the
browser's session) and are checked by the test that every API route is in the OpenAPI
document (portal/openapi.py describes them).

Reading follows the pages' scoping (store.alarms.alarms_for, get_alarm_for, windows_for):
an alarm belongs to the customers it hits, so a customer's token lists only the alarms
that hit that customer and any other alarm id is 404; the impact lists inside an alarm are
narrowed to the caller's own circuits and customers.

Writing is for the roles that work alarms (`ACTOR_ROLES`: engineer, noc, admin): acknowledge
or take back an acknowledgement with an optional comment, clear with a reason, declare a
maintenance window, end one early. Another role gets 403 for an object it may see (and still
404 for one it may not: the order of the checks never tells a customer another's alarm
exists). The changes go through store.alarms' own functions, which record who, when and why
in the alarm's timeline.

Errors are JSON, `{"error": "...", "field": "the offending parameter or null"}`: 400 for a
bad parameter or body field, 401 without a valid token or session, 403 for a role that may
not act, 404 for an id that is not the caller's, 409 for a change the object's state forbids
(acknowledging a cleared alarm, ending a window that is over: past windows are immutable).

CSRF: a request authenticated by its bearer token is exempt (a script holding a token is
not a browser that a third-party page can drive); a request authenticated by the session
cookie must send the CSRF token in the `X-CSRFToken` header, like any form of the portal.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from flask import Blueprint, current_app, g, jsonify, request
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue

from alarms.model import Alarm, MaintenanceWindow, Severity
from portal.security import current_viewer, login_required
from store import alarms as alarm_store
from store.queries import Viewer, circuits_for, customers_for

blueprint = Blueprint("alarm_api", __name__)

# Who may acknowledge, clear and declare maintenance (the others only read).
ACTOR_ROLES = ("engineer", "noc", "admin")

MAX_COMMENT = 2000
MAX_LIMIT = 1000
DEFAULT_LIMIT = 200
MAX_SCOPE_ITEMS = 50
# How far in the past a new window may start: the minutes a form takes to fill in, not
# a way to excuse an outage after the fact (the SLA figures exclude maintenance time).
START_SLACK = timedelta(minutes=10)


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


# --- parameters --------------------------------------------------------------------------


def clean_text(value: Any, field: str, *, required: bool, max_length: int) -> str | None:
    """A free text from a body or form: stripped; None when empty and optional."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        fail(400, f"{field} must be a string", field)
    value = value.strip()
    if not value:
        if required:
            fail(400, f"{field} is required", field)
        return None
    if len(value) > max_length:
        fail(400, f"{field} may be at most {max_length} characters", field)
    if "\x00" in value:
        fail(400, f"{field} must not contain NUL characters", field)
    return value


def parse_time(value: Any, field: str) -> datetime:
    """An ISO 8601 time (`2026-01-31T12:00:00Z`); a time without offset is taken as UTC."""
    if not isinstance(value, str) or not value.strip():
        fail(400, f"{field} is required, an ISO 8601 time such as 2026-01-31T12:00:00Z",
             field)
    text = value.strip().replace(" ", "T", 1) if "T" not in value else value.strip()
    text = text.replace("z", "Z").replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        fail(400, f"{field} must be an ISO 8601 time such as 2026-01-31T12:00:00Z", field)
    parsed = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        fail(400, f"{field} is out of range", field)


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


def int_arg(args: Any, name: str, *, low: int = 0, high: int = 2**63 - 1) -> int | None:
    text = (args.get(name) or "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        fail(400, f"{name} must be an integer", name)
    if not low <= value <= high:
        fail(400, f"{name} must be between {low} and {high}", name)
    return value


def _body() -> dict[str, Any]:
    if not request.get_data(cache=True):
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        fail(400, "the body must be a JSON object", None)
    return body


# --- JSON forms --------------------------------------------------------------------------


def _visible_impact(conn: Any, viewer: Viewer) -> tuple[set[int], set[int]] | None:
    """The circuit ids and customer ids the viewer may see; None for staff who see all."""
    if viewer.scope is None and viewer.manager is None:
        return None
    return ({c.id for c in circuits_for(conn, viewer)},
            {c.id for c in customers_for(conn, viewer)})


def alarm_json(alarm: Alarm, visible: tuple[set[int], set[int]] | None,
               visible_roots: set[int] | None = None) -> dict[str, Any]:
    """An alarm as the caller may see it: impact narrowed to its circuits and customers,
    the root cause only if the caller may see that alarm too."""
    body = alarm_store.alarm_payload(alarm)
    if visible is not None:
        circuits, customers = visible
        body["impacted_circuits"] = sorted(alarm.impacted_circuits & circuits)
        body["impacted_customers"] = sorted(alarm.impacted_customers & customers)
        if visible_roots is not None and alarm.root_cause_id not in visible_roots:
            body["root_cause_id"] = None
    body["acknowledged_at"] = (alarm.acknowledged_at.isoformat()
                               if alarm.acknowledged_at else None)
    body["ack_comment"] = alarm.ack_comment
    return body


def _roots_visible(conn: Any, viewer: Viewer, alarms: list[Alarm]) -> set[int] | None:
    if viewer.scope is None and viewer.manager is None:
        return None
    roots = {a.root_cause_id for a in alarms if a.root_cause_id is not None}
    return {root for root in roots
            if alarm_store.get_alarm_for(conn, viewer, root, timeline=False) is not None}


def timeline_json(alarm: Alarm) -> list[dict[str, Any]]:
    return [{"time": e.time.isoformat(), "action": e.action, "actor": e.actor,
             "comment": e.comment} for e in alarm.timeline]


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
        "reason": window.reason, "declared_by": window.declared_by,
        "declared_at": window.declared_at.isoformat() if window.declared_at else None,
        "ended_by": window.ended_by, "status": window_status(window, now),
    }


def _one_alarm(conn: Any, viewer: Viewer, alarm_id: int) -> dict[str, Any]:
    alarm = alarm_store.get_alarm_for(conn, viewer, alarm_id)
    if alarm is None:
        fail(404, "no such alarm", "alarm_id")
    body = alarm_json(alarm, _visible_impact(conn, viewer), _roots_visible(conn, viewer, [alarm]))
    body["timeline"] = timeline_json(alarm)
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
        visible = _visible_impact(conn, viewer)
        roots = _roots_visible(conn, viewer, alarms)
    return jsonify(alarms=[alarm_json(a, visible, roots) for a in alarms])


@blueprint.get("/alarms/<int:alarm_id>")
@login_required
def get_alarm(alarm_id: int) -> ResponseReturnValue:
    with _database().pool.connection() as conn:
        return jsonify(_one_alarm(conn, current_viewer(), alarm_id))


def _act(alarm_id: int, action: str) -> ResponseReturnValue:
    viewer = current_viewer()
    with _database().pool.connection() as conn:
        if alarm_store.get_alarm_for(conn, viewer, alarm_id, timeline=False) is None:
            fail(404, "no such alarm", "alarm_id")
        if viewer.role not in ACTOR_ROLES:
            fail(403, f"the role {viewer.role} may not change alarms", None)
        body = _body()
        try:
            if action == "clear":
                reason = clean_text(body.get("reason"), "reason", required=True,
                                    max_length=MAX_COMMENT)
                assert reason is not None
                alarm_store.clear_alarm(conn, alarm_id, viewer.user_key, reason)
            else:
                comment = clean_text(body.get("comment"), "comment", required=False,
                                     max_length=MAX_COMMENT)
                change = (alarm_store.acknowledge if action == "acknowledge"
                          else alarm_store.unacknowledge)
                change(conn, alarm_id, viewer.user_key, comment)
        except alarm_store.AlarmStoreError as error:
            fail(409, str(error), None)
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


def declare_window(conn: Any, viewer: Viewer, scope: Any, starts_at: Any, ends_at: Any,
                   reason: Any) -> MaintenanceWindow:
    """Check a new window's fields (AlarmApiError naming the field) and declare it. Shared
    with the maintenance page's form."""
    if isinstance(scope, str):
        scope = [part for part in scope.replace(",", "\n").splitlines() if part.strip()]
    if (not isinstance(scope, list) or not scope
            or not all(isinstance(item, str) for item in scope)):
        fail(400, "scope must be a list of KIND:KEY texts (device:KEY, port:DEVICE:PORT, "
                  "circuit:KEY, customer:KEY)", "scope")
    if len(scope) > MAX_SCOPE_ITEMS:
        fail(400, f"scope may name at most {MAX_SCOPE_ITEMS} objects", "scope")
    texts = [clean_text(item, "scope", required=True, max_length=300) for item in scope]
    start = parse_time(starts_at, "starts_at")
    end = parse_time(ends_at, "ends_at")
    text = clean_text(reason, "reason", required=True, max_length=MAX_COMMENT)
    now = _now(conn)
    if start < now - START_SLACK:
        fail(400, "a window may not start in the past", "starts_at")
    if end <= start:
        fail(400, "a window must end after it starts", "ends_at")
    try:
        items = alarm_store.resolve_scope(conn, [t for t in texts if t])
    except alarm_store.AlarmStoreError as error:
        fail(400, str(error), "scope")
    assert text is not None
    try:
        return alarm_store.add_window(conn, items, start, end, text, viewer.user_key)
    except alarm_store.AlarmStoreError as error:
        fail(400, str(error), None)


@blueprint.post("/maintenance-windows")
@login_required
def create_window() -> ResponseReturnValue:
    viewer = current_viewer()
    if viewer.role not in ACTOR_ROLES:
        fail(403, f"the role {viewer.role} may not declare maintenance", None)
    body = _body()
    with _database().pool.connection() as conn:
        window = declare_window(conn, viewer, body.get("scope"), body.get("starts_at"),
                                body.get("ends_at"), body.get("reason"))
        now = _now(conn)
    return jsonify(window_json(window, now)), 201


def end_window_for(conn: Any, viewer: Viewer, window_id: int) -> tuple[MaintenanceWindow, bool]:
    """End (or cancel, if not begun) a window the viewer may see and change: (the window,
    whether it was cancelled). Shared with the maintenance page."""
    window = alarm_store.get_window_for(conn, viewer, window_id)
    if window is None:
        fail(404, "no such maintenance window", "window_id")
    if viewer.role not in ACTOR_ROLES:
        fail(403, f"the role {viewer.role} may not end maintenance", None)
    now = _now(conn)
    if window.ends_at <= now:
        fail(409, "the window is over: past windows are immutable", "window_id")
    try:
        ended = alarm_store.end_window(conn, window_id, viewer.user_key)
    except alarm_store.AlarmStoreError as error:
        fail(409, str(error), "window_id")
    return ended, window.starts_at > now


@blueprint.post("/maintenance-windows/<int:window_id>/end")
@login_required
def end_window(window_id: int) -> ResponseReturnValue:
    with _database().pool.connection() as conn:
        window, cancelled = end_window_for(conn, current_viewer(), window_id)
        body = window_json(window, _now(conn))
    if cancelled:
        body["status"] = "cancelled"
    return jsonify(body)
