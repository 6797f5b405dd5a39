"""The REST API, version 1: the inventory and its measurements as JSON, under /api/v1.

Clients authenticate with an API token (`keyline user token NAME` prints one) sent as
`Authorization: Bearer kl_...`; a browser that is logged in may call it with its session
too. A token acts as its user: a customer's token sees that customer's objects only, with
the same scoped queries as the pages (store.queries), and an object of another customer is
404 like one that does not exist.

Errors are JSON: `{"error": "what is wrong", "field": "the parameter at fault or null"}`
with status 400 (bad parameter), 401 (no or bad token), 404 (no such object for you).
The document at /api/v1/openapi.json (portal/openapi.py) describes every endpoint; it needs
no authentication.

The alarm and maintenance endpoints (portal/alarms_api.py) and the ticket endpoints
(portal/tickets_api.py), nested in this blueprint, also write: a session-authenticated
caller must send the CSRF token (`X-CSRFToken`), a token-authenticated one need not; a role
that may not act gets 403.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from flask import Blueprint, abort, current_app, jsonify, make_response, request
from flask.typing import ResponseReturnValue

from portal.openapi import openapi_document
from portal.params import int_arg, time_arg
from portal.security import current_viewer, login_required
from store.collection import collection_status, dropped_ranges
from store.queries import (
    CircuitRow,
    circuits_for,
    customers_for,
    devices_for,
    get_circuit,
    get_device,
    metric_names,
    ports_for_device,
    sample_series,
)

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")

DEFAULT_POINTS = 300
MAX_POINTS = 5000
DEFAULT_RANGE = timedelta(hours=1)


def max_range() -> timedelta:
    """The longest range a chart may ask for: as long as the store keeps anything (the
    daily rollup's retention, StoreSettings), not beyond."""
    return timedelta(days=current_app.extensions["keyline.settings"].store
                     .rollup_day_retention_days)


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def _fail(status: int, message: str, field: str | None = None) -> NoReturn:
    raise ApiError(status, message, field)


@blueprint.errorhandler(ApiError)
def _api_error(error: ApiError) -> ResponseReturnValue:
    return jsonify(error=error.message, field=error.field), error.status


def _database() -> Any:
    return current_app.extensions["keyline.database"]


def _circuit_json(row: CircuitRow) -> dict[str, Any]:
    return {
        "id": row.id, "key": row.key, "customer_key": row.customer_key,
        "customer_name": row.customer_name, "service_type": row.service_type,
        "bandwidth_bps": row.bandwidth_bps, "a_end": row.a_end, "z_end": row.z_end,
        "a_port_id": row.a_port_id, "z_port_id": row.z_port_id,
        "sla_contract": row.sla_contract, "hop_count": row.hop_count,
        "description": row.description,
    }


@blueprint.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    return jsonify(openapi_document())


@blueprint.get("/customers")
@login_required
def customers() -> ResponseReturnValue:
    with _database().pool.connection() as conn:
        rows = customers_for(conn, current_viewer())
    return jsonify(customers=[asdict(row) for row in rows])


@blueprint.get("/circuits")
@login_required
def circuits() -> ResponseReturnValue:
    customer_id = _int_arg("customer_id", required=False)
    with _database().pool.connection() as conn:
        rows = circuits_for(conn, current_viewer(), customer_id=customer_id)
    return jsonify(circuits=[_circuit_json(row) for row in rows])


@blueprint.get("/circuits/<int:circuit_id>")
@login_required
def circuit(circuit_id: int) -> ResponseReturnValue:
    with _database().pool.connection() as conn:
        row = get_circuit(conn, current_viewer(), circuit_id)
    if row is None:
        _fail(404, "no such circuit", "circuit_id")
    return jsonify(_circuit_json(row))


@blueprint.get("/devices")
@login_required
def devices() -> ResponseReturnValue:
    with _database().pool.connection() as conn:
        rows = devices_for(conn, current_viewer())
    return jsonify(devices=[asdict(row) for row in rows])


@blueprint.get("/devices/<int:device_id>/ports")
@login_required
def device_ports(device_id: int) -> ResponseReturnValue:
    viewer = current_viewer()
    with _database().pool.connection() as conn:
        device = get_device(conn, viewer, device_id)
        ports = ports_for_device(conn, viewer, device_id) if device is not None else None
    if device is None or ports is None:
        _fail(404, "no such device", "device_id")
    return jsonify(device=asdict(device), ports=[asdict(port) for port in ports])


@blueprint.get("/health")
@login_required
def health() -> ResponseReturnValue:
    """How collection is doing (store.collection.collection_status): the running services'
    last reports, drops, events processed. The operator's (noc, engineer, admin): it names
    hosts and processes, nothing a customer or an account manager needs."""
    from portal.security import OPERATOR_ROLES

    viewer = current_viewer()
    if viewer.role not in OPERATOR_ROLES:
        _fail(403, f"the role {viewer.role} may not read the collection's health", None)
    with _database().pool.connection() as conn:
        report = collection_status(conn)
    services = report["services"]
    report["healthy"] = bool(services) and all(s["running"] for s in services.values())
    return jsonify(report)


@blueprint.get("/samples")
@login_required
def samples() -> ResponseReturnValue:
    object_id = _int_arg("object_id", required=True)
    assert object_id is not None
    metric = request.args.get("metric", "").strip()
    if not metric:
        _fail(400, "metric is required", "metric")
    end = _time_arg("end") or datetime.now(UTC)
    start = _time_arg("start") or end - DEFAULT_RANGE
    if start >= end:
        _fail(400, "start must be before end", "start")
    longest = max_range()
    if end - start > longest:
        _fail(400, f"the range may span at most {longest.days} days", "start")
    points = _int_arg("points", required=False)
    points = DEFAULT_POINTS if points is None else points
    if not 1 <= points <= MAX_POINTS:
        _fail(400, f"points must be between 1 and {MAX_POINTS}", "points")
    with _database().pool.connection() as conn:
        if metric not in metric_names(conn):
            _fail(400, f"unknown metric {metric!r}", "metric")
        series = sample_series(conn, current_viewer(), object_id, metric, start, end, points)
        # asked only once the viewer may read the object (sample_series said so)
        dropped = dropped_ranges(conn, object_id, start, end) if series is not None else []
    if series is None:
        _fail(404, "no such object", "object_id")
    return jsonify(
        object_id=object_id, metric=metric, start=start.isoformat(), end=end.isoformat(),
        resolution_s=series.resolution.bucket_s,
        points=[{"time": p.time.isoformat(), "value": p.value, "min": p.min_value,
                 "max": p.max_value} for p in series.points],
        unknown=[{"start": max(d.first_time, start).isoformat(),
                  "end": min(d.last_time, end).isoformat()} for d in dropped],
    )


@blueprint.route("/<path:anything>")
def unknown(anything: str) -> ResponseReturnValue:
    abort(make_response(jsonify(error="no such endpoint", field=None), 404))


def _int_arg(name: str, *, required: bool) -> int | None:
    return int_arg(request.args, name, required=required)


def _time_arg(name: str) -> datetime | None:
    """An ISO 8601 time (`2026-01-31T12:00:00Z`); a time without offset is taken as UTC."""
    return time_arg(request.args, name)


# Alarms and maintenance windows (portal/alarms_api.py): nested here so that they share this
# blueprint's /api/v1 prefix and the OpenAPI completeness test ("api." endpoints).
from portal import alarms_api  # noqa: E402

blueprint.register_blueprint(alarms_api.blueprint)

# Trouble tickets (portal/tickets_api.py), nested the same way.
from portal import tickets_api  # noqa: E402

blueprint.register_blueprint(tickets_api.blueprint)

# SLA figures, issued reports and customer-caused marks (portal/sla_api.py), nested the same way.
from portal import sla_api  # noqa: E402

blueprint.register_blueprint(sla_api.blueprint)

# Devices' configuration history (portal/configs.py), nested the same way.
from portal import configs  # noqa: E402

blueprint.register_blueprint(configs.api_blueprint)

# Devices' CLI status and host keys (portal/device_cli.py), nested the same way.
from portal import device_cli  # noqa: E402

blueprint.register_blueprint(device_cli.api_blueprint)
