"""The operator's pages: the inventory overview NOC staff start from, and the live topology.

Staff only (noc, engineer, account_manager, admin; see store.queries.STAFF_ROLES): a customer
user asking for these pages gets 404. An account manager gets the same pages narrowed to
the customers they manage: their customers, circuits and counts, their customers' views of
the topology. The overview shows every customer with its circuits,
each circuit's service state (store.circuit_states.current_states: the one the alarm
pipeline decided), its latest traffic at its A end (store.queries.latest_port_traffic) and
how many devices the collectors last found reachable (store.queries.device_reachability).
Until the live Socket.IO pages arrive, the figures refresh with the page.

The topology page (/noc/topology) draws the network with Cytoscape.js
(portal/static/topology.js): the whole network, or one customer's, one VPN's or one
circuit's route, from the JSON views under /api/v1/topology/ (topology.views: elements with
status, utilization and alarms). Each circuit listed carries its service state as the alarm
pipeline stored it (docs/service-state.md), which this module hands the views (`states`:
topology computes no circuit state), with what lies beneath a maintenance ("underlying"),
its cause in words and since when ("since", ISO 8601). The page then joins the Socket.IO
room "noc" (portal/live.py; an account manager: the room of the customer whose view is
shown) and recolours nodes, edges and circuits as status messages arrive, without a reload.

The JSON views are API routes (a blueprint nested in portal/api.py's, so they share its
errors and its OpenAPI check): /global for staff only, /customers/<id>, /vpns/<id> and
/circuits/<id> for staff and for the customer that owns the object (anything else is 404).
Each answer carries `event_id`, the last event its statuses include: a client joins its
room with it as "after" and so misses nothing between the fetch and the join.

**Where nodes stand.** Positions are computed, not stored, by portal/layout.py
(`device_positions`): a deterministic layout from the inventory alone, P routers on the inner
ring, PE routers on the next, customer devices outside, each site's devices together, and no
link drawn through a device or over another link's middle. A device is where it was at the
last visit, in every view (a customer's or a circuit's view uses the same coordinates as the
whole network), and for every user. Dragging a node is allowed but not saved.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, render_template
from flask.typing import ResponseReturnValue

from portal import alarm_access, api, device_cli
from portal.api import ApiError
from portal.layout import device_positions
from portal.live import CircuitStates, LiveBridge, latest_port_utilization, stored_states
from portal.security import (
    OPERATOR_ROLES,
    current_viewer,
    login_required,
    staff_required,
)
from store.circuit_states import current_states
from store.events import last_event_id
from store.queries import (
    circuits_for,
    customers_for,
    device_reachability,
    get_customer,
    inventory_counts,
    latest_port_traffic,
)
from topology.current import Topology, load_topology
from topology.views import circuit_view, customer_view, global_view, vpn_view

blueprint = Blueprint("noc", __name__, url_prefix="/noc")


@blueprint.get("/")
@staff_required
def inventory() -> str:
    viewer = current_viewer()
    database = current_app.extensions["keyline.database"]
    with database.pool.connection() as conn:
        customers = customers_for(conn, viewer)
        circuits = circuits_for(conn, viewer)
        # an account manager counts only their customers' objects
        counts = inventory_counts(conn, manager=viewer.manager)
        traffic = latest_port_traffic(conn, [circuit.a_port_id for circuit in circuits])
        states = current_states(conn, [circuit.id for circuit in circuits]) if circuits else {}
        reachability = device_reachability(conn, manager=viewer.manager)
        cli_problems = device_cli.cli_problems(conn, viewer)  # operators only
    by_customer: dict[str, list[Any]] = {}
    for circuit in circuits:
        by_customer.setdefault(circuit.customer_key, []).append(circuit)
    return render_template(
        "noc/inventory.html", customers=customers, circuits_by_customer=by_customer,
        counts=counts, traffic=traffic, states=states, reachability=reachability,
        cli_problems=cli_problems,
    )


# --- the live topology ---------------------------------------------------------------------

topology_api = Blueprint("topology", __name__, url_prefix="/topology")

Utilization = dict[int, tuple[float | None, float | None]]


def _current() -> tuple[Topology, Utilization, int, CircuitStates]:
    """The network now and the circuits' stored service states: the live bridge's when it
    runs (as of its last event), else read from the store."""
    bridge: LiveBridge | None = current_app.extensions.get("keyline.live")
    if bridge is not None and bridge.started and bridge.topology is not None:
        with bridge.lock:
            return (bridge.topology, bridge.utilization, bridge.last_id,
                    dict(bridge.circuit_states))
    database = current_app.extensions["keyline.database"]
    with database.pool.connection() as conn:
        event_id = last_event_id(conn)  # first: what follows is replayed on join
        return (load_topology(conn), latest_port_utilization(conn), event_id,
                stored_states(conn))


def _states(states: CircuitStates) -> dict[int, str]:
    """What topology.views takes: circuit id -> service state."""
    return {circuit_id: str(state["state"]) for circuit_id, state in states.items()}


@blueprint.get("/topology")
@staff_required
def topology() -> str:
    """Operators choose among the whole network and every customer's views, and follow the
    room "noc"; an account manager among the views of the customers they manage, each
    followed in that customer's room (data-room of each choice)."""
    viewer = current_viewer()
    current, _, _, _ = _current()
    snapshot = current.snapshot
    operator = viewer.role in OPERATOR_ROLES
    if operator:
        mine = set(snapshot.customers)
    else:
        database = current_app.extensions["keyline.database"]
        with database.pool.connection() as conn:
            mine = {row.id for row in customers_for(conn, viewer)}
    customers = sorted((c for c in snapshot.customers.values() if c.id in mine),
                       key=lambda c: c.name)
    vpns = sorted((v for v in snapshot.vpns.values() if v.customer_id in mine),
                  key=lambda v: v.key)
    circuits = sorted((c for c in snapshot.circuits.values() if c.customer_id in mine),
                      key=lambda c: c.key)
    return render_template("noc/topology.html", customers=customers, vpns=vpns,
                           circuits=circuits, whole_network=operator)


def _view_json(view: dict[str, Any], topology: Topology, event_id: int,
               states: CircuitStates) -> ResponseReturnValue:
    positions = device_positions(topology.snapshot, topology.graph)
    for node in view["elements"]["nodes"]:
        data = node["data"]
        if data["kind"] == "device" and data["object_id"] in positions:
            x, y = positions[data["object_id"]]
            node["position"] = {"x": x, "y": y}
    for circuit in view["circuits"]:  # (the view's own circuits: already in its scope)
        state = states.get(circuit["object_id"])
        circuit["underlying"] = state.get("underlying") if state else None
        circuit["cause"] = state.get("cause") if state else None
        circuit["cause_text"] = (alarm_access.cause_words(state.get("cause"),
                                                          state.get("cause_text"))
                                 if state else None)
        circuit["since"] = state.get("time") if state else None
    view["event_id"] = event_id
    return jsonify(view)


def _check_owner(customer_id: int | None, what: str, field: str) -> None:
    """404 unless the viewer may see `customer_id`'s objects: operators see every customer,
    an account manager the customers it manages, a customer user itself."""
    viewer = current_viewer()
    if customer_id is None:
        raise ApiError(404, f"no such {what}", field)
    if viewer.role in OPERATOR_ROLES:
        return
    if viewer.manager is not None:
        database = current_app.extensions["keyline.database"]
        with database.pool.connection() as conn:
            if get_customer(conn, viewer, customer_id) is not None:
                return
    elif viewer.customer_id == customer_id:
        return
    raise ApiError(404, f"no such {what}", field)


@topology_api.get("/global")
@login_required
def global_topology() -> ResponseReturnValue:
    if current_viewer().role not in OPERATOR_ROLES:  # it names every customer's circuits
        raise ApiError(404, "no such endpoint")
    topology, utilization, event_id, states = _current()
    view = global_view(topology.graph, topology.snapshot, topology.paths,
                       utilization=utilization, states=_states(states))
    return _view_json(view, topology, event_id, states)


@topology_api.get("/customers/<int:customer_id>")
@login_required
def customer_topology(customer_id: int) -> ResponseReturnValue:
    topology, utilization, event_id, states = _current()
    customer = topology.snapshot.customers.get(customer_id)
    _check_owner(customer.id if customer else None, "customer", "customer_id")
    view = customer_view(topology.graph, topology.snapshot, topology.paths, customer_id,
                         utilization=utilization, states=_states(states))
    return _view_json(view, topology, event_id, states)


@topology_api.get("/vpns/<int:vpn_id>")
@login_required
def vpn_topology(vpn_id: int) -> ResponseReturnValue:
    topology, utilization, event_id, states = _current()
    vpn = topology.snapshot.vpns.get(vpn_id)
    _check_owner(vpn.customer_id if vpn else None, "VPN", "vpn_id")
    view = vpn_view(topology.graph, topology.snapshot, topology.paths, vpn_id,
                    utilization=utilization, states=_states(states))
    return _view_json(view, topology, event_id, states)


@topology_api.get("/circuits/<int:circuit_id>")
@login_required
def circuit_topology(circuit_id: int) -> ResponseReturnValue:
    topology, utilization, event_id, states = _current()
    circuit = topology.snapshot.circuits.get(circuit_id)
    _check_owner(circuit.customer_id if circuit else None, "circuit", "circuit_id")
    view = circuit_view(topology.graph, topology.snapshot, topology.paths, circuit_id,
                        utilization=utilization, states=_states(states))
    return _view_json(view, topology, event_id, states)


# Nested in the API's blueprint: /api/v1/topology/..., endpoints "api.topology.*", the API's
# JSON errors. Done once, at import, before create_app registers the API blueprint.
api.blueprint.register_blueprint(topology_api)
