"""A device's command line side in the portal: its CLI status, its SSH host keys, and the
engineer's acceptance of a changed host key.

Keyline logs in to devices over SSH (collectors/cli.py). Each device has a *CLI status*, the
outcome of its last run (ok, auth-failed, timeout, host-key-changed, ...) with the reason
and since when it holds (store/cli.py). Its *host key* is trusted on first use; a different
key later is refused before any password is sent and waits, as "offered", until an engineer
who checked it (with the device's owner, on the console) accepts it.

Who sees what: the operator's own staff (noc, engineer, admin: collectors.cli
.CLI_READ_ROLES) see the status and the keys on the device page, its JSON and the REST API;
engineers and admins (HOST_KEY_ROLES) also the raw output of a failed run (bounded and
secrets masked by the collector, masked again here) and the "Accept this host key" form.
Anyone else, an account manager or a customer, sees none of it: `cli_view` is None for
them, so the page has no CLI section and its JSON no "cli" field, and the REST endpoints
answer 404 as for a device that does not exist (as portal/configs.py does).

The acceptance goes through collectors.cli.accept_host_key, the one path of the command line
and the portal: the form and the REST call carry the fingerprint the person saw, and a key
other than that one is never trusted.

- `POST /devices/ID/cli/accept-host-key` (form: fingerprint, CSRF token): back to the
  device page, or the refusal's page (403, 404, 409).
- REST under /api/v1: `GET /devices/ID/cli` the device's CLI view; `POST
  /devices/ID/cli/accept-host-key` with `{"fingerprint": "SHA256:..."}`, the view after.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from flask_babel import gettext, lazy_gettext

from alarms.actions import ActionError, Refusal
from collectors.cli import CLI_READ_ROLES, HOST_KEY_ROLES, CliStatus, accept_host_key
from config.secrets import mask_secrets
from portal.alarms_views import alarm_time
from portal.security import current_viewer, login_required
from store import cli as cli_store
from store.queries import Viewer, get_device

blueprint = Blueprint("device_cli", __name__, url_prefix="/devices")
api_blueprint = Blueprint("device_cli_api", __name__)

REFUSAL_STATUS = {Refusal.INVALID: 400, Refusal.NOT_FOUND: 404, Refusal.FORBIDDEN: 403,
                  Refusal.CONFLICT: 409}

# The page shows at most this much of a failed run's raw output (the collector bounds it
# too, by settings cli.raw_output_max_bytes; this guards the page against an old row).
RAW_OUTPUT_MAX_CHARS = 16_000

# CLI statuses (collectors.cli.CliStatus) -> (label, badge status).
STATUSES = {
    CliStatus.OK: (lazy_gettext("ok"), "up"),
    CliStatus.AUTH_FAILED: (lazy_gettext("authentication failed"), "down"),
    CliStatus.TIMEOUT: (lazy_gettext("timeout"), "down"),
    CliStatus.HOST_KEY_CHANGED: (lazy_gettext("host key changed (refused)"), "down"),
    CliStatus.UNEXPECTED_PROMPT: (lazy_gettext("unexpected prompt"), "degraded"),
    CliStatus.UNPARSEABLE: (lazy_gettext("unparseable output"), "degraded"),
    CliStatus.PRIVILEGE_TOO_LOW: (lazy_gettext("privilege too low"), "degraded"),
    CliStatus.UNREACHABLE: (lazy_gettext("unreachable (connection refused)"), "down"),
    CliStatus.ERROR: (lazy_gettext("error"), "degraded"),
    CliStatus.NO_PROFILE: (lazy_gettext("no CLI profile for this platform"), "unknown"),
}


def may_read_cli(viewer: Viewer | None) -> bool:
    return viewer is not None and viewer.role in CLI_READ_ROLES


def may_accept_host_key(viewer: Viewer | None) -> bool:
    return viewer is not None and viewer.role in HOST_KEY_ROLES


def _database() -> Any:
    return current_app.extensions["keyline.database"]


def status_label(status: str) -> tuple[str, str]:
    """A CLI status in the viewer's words and its badge status."""
    try:
        label, badge = STATUSES[CliStatus(status)]
    except ValueError:
        return status, "unknown"
    return str(label), badge


def _key(row: cli_store.HostKeyRow) -> dict[str, Any]:
    first_use = row.trusted_by == cli_store.FIRST_USE
    return {"key_type": row.key_type, "fingerprint": row.fingerprint, "state": row.state,
            "first_seen_at": row.first_seen_at.isoformat(),
            "first_seen": alarm_time(row.first_seen_at),
            "last_seen_at": row.last_seen_at.isoformat(),
            "last_seen": alarm_time(row.last_seen_at),
            "trusted_by": row.trusted_by, "trusted_on_first_use": first_use,
            "trusted_at": row.trusted_at.isoformat() if row.trusted_at else None,
            "trusted": alarm_time(row.trusted_at) if row.trusted_at else None}


def cli_view(conn: Any, viewer: Viewer, device_id: int) -> dict[str, Any] | None:
    """The device's CLI side as `viewer` may see it (module docstring); None when they may
    see none of it, or the device is not theirs to see."""
    if not may_read_cli(viewer) or get_device(conn, viewer, device_id) is None:
        return None
    engineer = may_accept_host_key(viewer)
    row = cli_store.cli_statuses(conn, [device_id]).get(device_id)
    keys = cli_store.host_keys(conn, [device_id], states=["trusted", "offered"])
    trusted = next((key for key in keys if key.state == "trusted"), None)
    offered = [key for key in keys if key.state == "offered"]
    status = None
    raw_output = None
    if row is not None:
        label, badge = status_label(row.status)
        status = {"status": row.status, "label": label, "badge": badge,
                  "reason": mask_secrets(row.reason) if row.reason else None,
                  "since_at": row.changed_at.isoformat(), "since": alarm_time(row.changed_at),
                  "last_run_at": row.last_run_at.isoformat(),
                  "last_run": alarm_time(row.last_run_at)}
        if engineer and row.status != CliStatus.OK and row.raw_output:
            raw_output = mask_secrets(row.raw_output)[-RAW_OUTPUT_MAX_CHARS:]
    # accepted after the run that refused it: the next run uses it
    accepted_since = (status is not None and trusted is not None
                      and row.status == CliStatus.HOST_KEY_CHANGED
                      and trusted.trusted_at is not None
                      and trusted.trusted_at > row.last_run_at)
    return {
        "device_id": device_id, "status": status,
        "trusted_key": _key(trusted) if trusted is not None else None,
        "offered_keys": [_key(key) for key in offered],
        "accepted_since_last_run": accepted_since,
        "raw_output": raw_output,
        "may_accept": engineer,
        "accept_url": url_for("device_cli.accept", device_id=device_id),
    }


def cli_problems(conn: Any, viewer: Viewer) -> list[dict[str, Any]]:
    """For the NOC's inventory page: the active devices whose last CLI run failed, by key,
    each with its status and since when (empty for a viewer who may not see the CLI side;
    the operator's staff see every device)."""
    if not may_read_cli(viewer):
        return []
    rows = conn.execute(
        """SELECT d.id, d.key, s.status, s.changed_at
             FROM device_cli_status s JOIN devices d ON d.id = s.device_id
            WHERE d.retired_at IS NULL AND s.status <> %s
            ORDER BY d.key""", [str(CliStatus.OK)]).fetchall()
    found = []
    for device_id, key, status, changed_at in rows:
        label, badge = status_label(status)
        found.append({"device_id": device_id, "device": key, "status": status,
                      "label": label, "badge": badge, "since": alarm_time(changed_at),
                      "url": url_for("devices.device", device_id=device_id) + "#cli"})
    return found


def _refusal_page(error: ActionError) -> ResponseReturnValue:
    code = REFUSAL_STATUS[error.refusal]
    if error.refusal is Refusal.NOT_FOUND:
        abort(404)
    if error.refusal is Refusal.FORBIDDEN:
        message = gettext("Your role may not accept host keys.")
    elif error.refusal is Refusal.CONFLICT and error.field == "fingerprint":
        message = gettext("The device no longer offers the key you saw: nothing was "
                          "accepted. Look at the device page again.")
    elif error.refusal is Refusal.CONFLICT:
        message = gettext("The device offers no other host key now: nothing to accept.")
    else:
        message = gettext("Give the fingerprint of the key you checked (SHA256:...).")
    return render_template("error.html", code=code, message=message), code


@blueprint.post("/<int:device_id>/cli/accept-host-key")
@login_required
def accept(device_id: int) -> ResponseReturnValue:
    try:
        with _database().pool.connection() as conn:
            # the form always names the key the person saw
            accept_host_key(conn, device_id, current_viewer(), request.form.get("fingerprint"),
                            fingerprint_required=True)
    except ActionError as refused:
        return _refusal_page(refused)
    return redirect(url_for("devices.device", device_id=device_id) + "#cli")


# --- REST ----------------------------------------------------------------------------------


@api_blueprint.record_once
def _exempt_from_form_csrf(state: BlueprintSetupState) -> None:
    """As portal/alarms_api.py: the CSRF token is checked once the viewer is known, and only
    for a request its session cookie authenticates (`_csrf_unless_token`)."""
    state.app.extensions["csrf"].exempt(api_blueprint)


@api_blueprint.before_request
def _csrf_unless_token() -> None:
    if g.get("auth_method") == "session":
        current_app.extensions["csrf"].protect()


@api_blueprint.errorhandler(ActionError)
def _action_refused(error: ActionError) -> ResponseReturnValue:
    return jsonify(error=error.message, field=error.field), REFUSAL_STATUS[error.refusal]


def _api_view(conn: Any, device_id: int) -> dict[str, Any]:
    view = cli_view(conn, current_viewer(), device_id)
    if view is None:
        raise ActionError("device_id", "no such device", Refusal.NOT_FOUND)
    return view


@api_blueprint.get("/devices/<int:device_id>/cli")
@login_required
def api_cli(device_id: int) -> ResponseReturnValue:
    with _database().pool.connection() as conn:
        return jsonify(_api_view(conn, device_id))


@api_blueprint.post("/devices/<int:device_id>/cli/accept-host-key")
@login_required
def api_accept(device_id: int) -> ResponseReturnValue:
    body = request.get_json(silent=True) if request.get_data(cache=True) else {}
    with _database().pool.connection() as conn:
        _api_view(conn, device_id)  # 404 before anything about the body
        if not isinstance(body, dict):
            raise ActionError(None, "the body must be a JSON object")
        accept_host_key(conn, device_id, current_viewer(), body.get("fingerprint"),
                        fingerprint_required=True)
        return jsonify(_api_view(conn, device_id))
