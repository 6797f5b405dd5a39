"""Devices' configuration history in the portal: the versions, a version's diff, and the
alarm timeline's "what changed?".

A running configuration says how the operator's network is built, secrets masked or not:
it is the operator's own engineers' (roles engineer, noc, admin: OPERATOR_ROLES). Every other
role, an account manager or a customer, gets 404 for these pages and their REST API, as for
the portal's other operator-only pages (portal.security.roles_required): not 403, which
would confirm that the device exists.

- */devices/ID/configs*: the device's versions, newest first (when each was first fetched,
  last seen unchanged, by whom, its size and digest), and how the last fetch went.
- */devices/ID/configs/N*: version N: its unified diff against the version before it (or
  `?against=M`), and its whole text. The text is the stored one, masked before it was stored
  (collectors/config_history.py).
- REST, under /api/v1 (nested in portal/api.py's blueprint, so in the OpenAPI document):
  `GET /devices/ID/configs` the versions (`?at=TIME`: also which was in force then),
  `GET /devices/ID/configs/N` one version with its text and its diff (`?against=M`).
- "What changed?": an alarm's page and its REST form list, in its timeline, the
  configuration changes made on the devices of its impact path in the hour before it was
  raised (collectors.config_history.what_changed, over the nominal paths of the topology),
  each linking to its diff; only for the roles above (`what_changed_entries` is None for
  any other viewer, so a customer's or an account manager's timeline never has them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from flask import Blueprint, abort, current_app, g, jsonify, render_template, request, url_for
from flask.typing import ResponseReturnValue

from collectors import config_history
from collectors.config_history import ConfigHistoryError, config_diff, what_changed
from portal.params import int_arg, time_arg
from portal.security import OPERATOR_ROLES, current_viewer, login_required, roles_required
from store import configs as config_store
from store.configs import ConfigChange, ConfigVersion
from store.queries import Viewer

blueprint = Blueprint("configs", __name__, url_prefix="/devices")
api_blueprint = Blueprint("config_api", __name__)

# Who may read configurations (module docstring).
CONFIG_ROLES = OPERATOR_ROLES
MAX_VERSIONS = 500
CHANGED_ACTION = "config_changed"


def may_read_configs(viewer: Viewer | None) -> bool:
    return viewer is not None and viewer.role in CONFIG_ROLES


@blueprint.app_template_global("may_read_configs")
def _may_read_configs() -> bool:
    return may_read_configs(g.get("viewer"))


def _database() -> Any:
    return current_app.extensions["keyline.database"]


def _device(conn: Any, device_id: int) -> tuple[int, str, str] | None:
    row = conn.execute("SELECT id, key, platform FROM devices WHERE id = %s",
                       [device_id]).fetchone()
    return (row[0], row[1], row[2]) if row is not None else None


def version_json(version: ConfigVersion) -> dict[str, Any]:
    return {"device_id": version.device_id, "device": version.device_key,
            "version": version.version, "fetched_at": version.fetched_at.isoformat(),
            "last_seen_at": version.last_seen_at.isoformat(),
            "fetched_by": version.fetched_by, "sha256": version.sha256,
            "size_bytes": version.size_bytes,
            "diff_url": url_for("configs.version", device_id=version.device_id,
                                version=version.version)}


def _diff_rows(lines: list[str]) -> list[tuple[str, str]]:
    """Each diff line with its kind for the page: head, hunk, add, del or same."""
    rows = []
    for number, line in enumerate(lines):
        if number < 2 and line.startswith(("---", "+++")):
            kind = "head"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "same"
        rows.append((kind, line))
    return rows


# --- pages ---------------------------------------------------------------------------------


@blueprint.get("/<int:device_id>/configs")
@roles_required(*CONFIG_ROLES)
def versions(device_id: int) -> str:
    with _database().pool.connection() as conn:
        device = _device(conn, device_id)
        if device is None:
            abort(404)
        found = config_store.config_versions(conn, device_id, limit=MAX_VERSIONS)
        attempt = config_store.fetch_states(conn, [device_id]).get(device_id)
    return render_template("devices/configs.html", device_id=device[0], device_key=device[1],
                           platform=device[2], versions=found, attempt=attempt)


@blueprint.get("/<int:device_id>/configs/<int:version>")
@roles_required(*CONFIG_ROLES)
def version(device_id: int, version: int) -> str:
    against = int_arg(request.args, "against", low=1, high=2**31 - 1)
    with _database().pool.connection() as conn:
        device = _device(conn, device_id)
        if device is None:
            abort(404)
        try:
            diff = config_diff(conn, device_id, version=version, against=against)
        except ConfigHistoryError:
            abort(404)
        latest = config_store.config_versions(conn, device_id, limit=1)
    newest = latest[0].version if latest else version
    return render_template("devices/config_version.html", device_id=device[0],
                           device_key=device[1], diff=diff, rows=_diff_rows(diff.lines),
                           newest=newest)


# --- REST ----------------------------------------------------------------------------------


def _fail(status: int, message: str, field: str | None = None) -> NoReturn:
    """The API's one error (portal.api.ApiError): the api blueprint's handler answers it
    for this blueprint too, which is nested in it."""
    from portal.api import ApiError  # portal.api imports this module to nest its blueprint

    raise ApiError(status, message, field)


def _api_device(conn: Any, device_id: int) -> tuple[int, str, str]:
    """The device, for a reader of configurations; 404 for anyone else, as for no device."""
    device = _device(conn, device_id) if may_read_configs(current_viewer()) else None
    if device is None:
        _fail(404, "no such device", "device_id")
    return device


@api_blueprint.get("/devices/<int:device_id>/configs")
@login_required
def api_versions(device_id: int) -> ResponseReturnValue:
    at = time_arg(request.args, "at")
    with _database().pool.connection() as conn:
        device = _api_device(conn, device_id)
        found = config_store.config_versions(conn, device_id, limit=MAX_VERSIONS)
        attempt = config_store.fetch_states(conn, [device_id]).get(device_id)
        in_force = config_store.config_at(conn, device_id, at) if at is not None else None
    body: dict[str, Any] = {
        "device": {"id": device[0], "key": device[1], "platform": device[2]},
        "versions": [version_json(v) for v in found],
        "last_fetch": None if attempt is None else {
            "attempted_at": attempt.attempted_at.isoformat(), "status": attempt.status,
            "reason": attempt.reason, "version": attempt.version}}
    if at is not None:
        body["at"] = at.isoformat()
        body["in_force"] = in_force.version if in_force is not None else None
    return jsonify(body)


@api_blueprint.get("/devices/<int:device_id>/configs/<int:version>")
@login_required
def api_version(device_id: int, version: int) -> ResponseReturnValue:
    against = int_arg(request.args, "against", low=1, high=2**31 - 1)
    with _database().pool.connection() as conn:
        _api_device(conn, device_id)
        if config_store.get_version(conn, device_id, version) is None:
            _fail(404, f"no configuration version {version}", "version")
        try:
            diff = config_diff(conn, device_id, version=version, against=against)
        except ConfigHistoryError as missing:  # the version exists: `against` does not
            _fail(404, str(missing), "against")
    return jsonify({**version_json(diff.new), "text": diff.new.text,
                    "against": diff.old.version if diff.old is not None else None,
                    "diff": diff.lines})


# --- what changed? -------------------------------------------------------------------------


def nominal_paths(conn: Any, alarm: Any) -> Mapping[int, Any]:
    """The nominal paths of the alarm's circuits (collectors.config_history.nominal_paths)
    in the live bridge's topology when it runs, else in the store's."""
    bridge = current_app.extensions.get("keyline.live")
    topology = None
    if bridge is not None and getattr(bridge, "started", False) and bridge.topology is not None:
        with bridge.lock:
            topology = bridge.topology
    return config_history.nominal_paths(conn, topology, alarm=alarm)


def change_entry(change: ConfigChange) -> dict[str, Any]:
    """A configuration change as an alarm timeline entry (JSON; see alarm_access
    .timeline_view): at the time it was found, by the device, with its versions, the time
    after which it was made and its diff's addresses."""
    return {
        "time": change.fetched_at.isoformat(), "action": CHANGED_ACTION,
        "actor": change.device_key, "comment": None, "customer_note": None, "text": None,
        "config_change": {
            "device_id": change.device_id, "device": change.device_key,
            "version": change.version, "previous_version": change.previous_version,
            "changed_after": change.changed_after.isoformat(),
            "fetched_at": change.fetched_at.isoformat(),
            "diff_url": url_for("configs.version", device_id=change.device_id,
                                version=change.version),
            "api_url": url_for("api.config_api.api_version", device_id=change.device_id,
                               version=change.version)}}


def what_changed_for(conn: Any, viewer: Viewer, alarm: Any) -> list[ConfigChange] | None:
    """The alarm's "what changed?" for a reader of configurations; None for any other
    viewer (they never see it)."""
    if not may_read_configs(viewer):
        return None
    return what_changed(conn, alarm, paths=nominal_paths(conn, alarm))


def what_changed_entries(conn: Any, viewer: Viewer, alarm: Any) -> list[dict[str, Any]] | None:
    """`what_changed_for` as timeline entries (JSON)."""
    found = what_changed_for(conn, viewer, alarm)
    return None if found is None else [change_entry(c) for c in found]


def timeline_rows(entries: Iterable[Any],
                  changes: Iterable[ConfigChange]) -> list[tuple[str, Any]]:
    """The alarm page's timeline: ("entry", TimelineEntry) and ("change", ConfigChange)
    rows by time (a change at the time it was found); the alarm's own first at one time."""
    rows = [("entry", e.time, e) for e in entries] + [("change", c.fetched_at, c)
                                                       for c in changes]
    return [(kind, item) for kind, _, item in sorted(rows, key=lambda row: row[1])]

