"""A customer's own pages: its circuits, their status, traffic and route, one circuit.

A customer user sees exactly one customer, the one its account is bound to; staff may open
customers' pages (the NOC overview links to them), so an account manager sees what the
customer sees, for the customers whose `account_manager` they are. Every read goes through
the viewer-scoped queries (store.queries), and an id outside the viewer's scope is 404 like
an id that does not exist.

Two statuses are shown for a circuit, because they answer different questions:

- *ends*: its two end ports' latest operational status (store.queries.latest_port_oper):
  up when both ends are up, down when either is down, unknown when an end has no recent
  poll;
- *path*: the status of its route through the network, from the topology (topology.current
  .load_topology, then topology.views.circuit_status): down when anything on the route is
  down or it has no route, degraded, up, or unknown.

(The alarm pipeline will later give the authoritative state, with maintenance and root cause;
until it lands the alarm sections say there is no alarm data yet and read nothing.)

The circuit page draws, in the browser (portal/static/customer.js, with chart.js and
cytoscape from /vendor):

- traffic charts of one end port (in/out bit/s, utilization %, errors per second) over 1 h,
  24 h, 7 d or 30 d, fetched from the REST API's /api/v1/samples, which averages the samples
  into at most `points` buckets and applies the same viewer scoping as these pages;
- the route: `circuit_view` from topology/views.py as Cytoscape elements, embedded in the
  page as JSON (a `<script type="application/json">` block, which the Content-Security-Policy
  allows because it is data, not code), next to a table of every hop with its status.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, abort, current_app, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext

from portal.security import current_viewer, login_required
from store.queries import (
    CircuitRow,
    circuit_status,
    circuits_for,
    get_circuit,
    get_customer,
    latest_port_oper,
    latest_port_traffic,
)
from topology.current import Topology, load_topology
from topology.views import circuit_status as path_status
from topology.views import circuit_view

log = logging.getLogger(__name__)

blueprint = Blueprint("customer", __name__)

# Labels of the topology's statuses (the ends' statuses use the app's `status_labels`).
PATH_STATUS_LABELS = {
    "up": lazy_gettext("up"),
    "down": lazy_gettext("down"),
    "degraded": lazy_gettext("degraded"),
    "unknown": lazy_gettext("unknown"),
}

# The chart ranges the circuit page offers: code -> (label, seconds).
CHART_RANGES = {
    "1h": (lazy_gettext("1 hour"), 3600),
    "24h": (lazy_gettext("24 hours"), 86400),
    "7d": (lazy_gettext("7 days"), 7 * 86400),
    "30d": (lazy_gettext("30 days"), 30 * 86400),
}

# The charts of the circuit page: id -> (title, unit, metric of "in", metric of "out").
CHARTS = {
    "traffic": (lazy_gettext("Traffic"), "bit/s", "if_in_bps", "if_out_bps"),
    "utilization": (lazy_gettext("Utilization"), "%", "if_in_utilization_pct",
                    "if_out_utilization_pct"),
    "errors": (lazy_gettext("Errors"), lazy_gettext("packets/s"), "if_in_errors_per_s",
               "if_out_errors_per_s"),
}


def _database() -> Any:
    return current_app.extensions["keyline.database"]


def _topology(conn: Any) -> Topology | None:
    """The network as it is now, or None (logged) when it cannot be built: the page then
    shows the path as unknown rather than failing."""
    try:
        return load_topology(conn)
    except Exception:
        log.exception("could not load the topology for a customer page")
        return None


def _path_statuses(topology: Topology | None, circuits: list[CircuitRow]) -> dict[int, str]:
    if topology is None:
        return {c.id: "unknown" for c in circuits}
    return {c.id: path_status(topology.graph, topology.paths.get(c.id))
            if c.id in topology.snapshot.circuits else "unknown" for c in circuits}


def _route(topology: Topology | None, circuit: CircuitRow) -> dict[str, Any] | None:
    """The circuit's route for the page: Cytoscape elements and one row per hop, each with
    its device's status and the status of the link it was entered over. Only nodes of this
    circuit's customer or of the operator (no customer) are kept, as a second fence behind
    circuit_view's own (a path never runs through another customer's site)."""
    if topology is None or circuit.id not in topology.snapshot.circuits:
        return None
    view = circuit_view(topology.graph, topology.snapshot, topology.paths, circuit.id)
    allowed = {None, circuit.customer_key}
    nodes = [n for n in view["elements"]["nodes"] if n["data"].get("customer") in allowed]
    node_ids = {n["data"]["id"] for n in nodes}
    edges = [e for e in view["elements"]["edges"]
             if e["data"]["source"] in node_ids and e["data"]["target"] in node_ids]
    node_status = {n["data"]["id"]: n["data"]["status"] for n in nodes}
    edge_status = {e["data"]["id"]: e["data"]["status"] for e in edges}
    summary: Mapping[str, Any] = view["circuits"][0] if view["circuits"] else {}
    hops = []
    for number, hop in enumerate(summary.get("hops", []), start=1):
        visible = hop["device"] in node_ids
        hops.append({
            "number": number,
            "device": hop["device_key"] if visible else None,
            "in_port": hop["in_port"] if visible else None,
            "out_port": hop["out_port"] if visible else None,
            "status": node_status.get(hop["device"], "unknown"),
            "link_status": edge_status.get(hop["link"]) if hop["link"] else None,
        })
    for edge in edges:  # the page needs no other circuits' names (there are none: be sure)
        edge["data"].pop("circuits", None)
    return {
        "status": summary.get("status", "unknown"),
        "declared": summary.get("declared", False),
        "valid": summary.get("valid", False),
        "problems": summary.get("problems", []),
        "hops": hops,
        "elements": {"nodes": nodes, "edges": edges},
    }


@blueprint.get("/my/")
@login_required
def home() -> ResponseReturnValue:
    viewer = current_viewer()
    if viewer.customer_id is None:
        return redirect(url_for("noc.inventory"))
    return redirect(url_for("customer.circuits", customer_id=viewer.customer_id))


@blueprint.get("/customers/<int:customer_id>/")
@login_required
def circuits(customer_id: int) -> str:
    viewer = current_viewer()
    with _database().pool.connection() as conn:
        customer = get_customer(conn, viewer, customer_id)
        if customer is None:
            abort(404)
        rows = circuits_for(conn, viewer, customer_id=customer.id)
        ports = [port for c in rows for port in (c.a_port_id, c.z_port_id)]
        traffic = latest_port_traffic(conn, ports)
        oper = latest_port_oper(conn, ports)
        paths = _path_statuses(_topology(conn), rows) if rows else {}
    status = {c.id: circuit_status(c, oper) for c in rows}
    return render_template("customer/circuits.html", customer=customer, circuits=rows,
                           traffic=traffic, status=status, paths=paths,
                           path_labels=PATH_STATUS_LABELS)


@blueprint.get("/circuits/<int:circuit_id>")
@login_required
def circuit(circuit_id: int) -> str:
    viewer = current_viewer()
    with _database().pool.connection() as conn:
        row = get_circuit(conn, viewer, circuit_id)
        if row is None:
            abort(404)
        ports = [row.a_port_id, row.z_port_id]
        traffic = latest_port_traffic(conn, ports)
        oper = latest_port_oper(conn, ports)
        route = _route(_topology(conn), row)
    return render_template("customer/circuit.html", circuit=row, traffic=traffic,
                           status=circuit_status(row, oper), route=route,
                           path_labels=PATH_STATUS_LABELS, ranges=CHART_RANGES, charts=CHARTS)
