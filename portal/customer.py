"""A customer's own pages: its circuits, their service state, traffic and route, one circuit.

A customer user sees exactly one customer, the one its account is bound to; staff may open
customers' pages (the NOC overview links to them), so an account manager sees what the
customer sees, for the customers whose `account_manager` they are. Every read goes through
the viewer-scoped queries (store.queries), and an id outside the viewer's scope is 404 like
an id that does not exist.

**Service state.** Each circuit shows one state, its service state (up, down, degraded,
unknown, maintenance: docs/service-state.md), with its cause in words and since when. The
portal does not work it out: the alarm pipeline decides it and stores it
(store.circuit_states.current_states reads the latest; a circuit not judged yet is shown
unknown), so this page, the NOC's topology and the alarm console show the same state for the
same circuit. A circuit in maintenance shows what lies beneath ("maintenance (down
beneath)"). The cause names only the circuit's own ends and the route it runs over (the
devices and links the route table already shows). The route table keeps its own per-hop
statuses: those are the topology's device and link statuses, not the circuit's.

**Open alarms.** Both pages list the active alarms (store.alarms.alarms_for, so scoped to the
viewer like the alarm console) that hit at least one of this customer's circuits (the circuit
page: that circuit), with severity, since when, whether the operator has acknowledged it (not
who: a customer needs to know someone is on it, not the engineer's login) and a link to the
alarm's page (/alarms/<id>, which get_alarm_for scopes with the same rule, so every listed
alarm may be opened by whoever sees the list). What an alarm is *on* is named only when that
object is the customer's own (its circuits, the devices and ports at its sites, its access
links: store.alarms.object_labels' owner); anything else - a shared P or PE router, a core
link, in principle another customer's object - is shown as "operator network", without its
name or its summary. The route table of the circuit page does name the operator's routers a
circuit runs over, and so does the alarm page (portal/alarms_views.py); the list is stricter
on purpose: it tells the customer that the operator's network is at fault and which of its
circuits suffer (the route table shows which hop), and the owner test alone keeps every other
tenant's names out, whatever the object. (A circuit's service alarm is on the circuit, the
customer's own: its summary is the circuit's cause, which names the hops of its route like
the service state and the route table do.) Only the customer's own circuits are listed as
hit.
The alarms in the live messages are not rendered: a message with alarms makes the page fetch
this list again.

**Live.** Both pages join the customer's Socket.IO room (portal/live.py, "customer:<id>";
account managers and operators join the room of the customer they are looking at, as
room_allowed permits) with the id of the last event the page was rendered from (`event_id`,
read before anything else), so the bridge replays what happened between render and join.
The script applies each "status" message at once (circuits' service states, which the bridge
takes from the pipeline's "circuit.state" events; the route's devices and links: Cytoscape
colours and the hop table), then fetches the page's state again from
/customers/<id>/status or /circuits/<id>/status (JSON, same scoping and the same functions
as the page; labels in the viewer's language): the states' causes, the traffic (from
samples, which are not events), and the open alarms with their labels and acknowledgement.
The state is also fetched every STATE_REFRESH_S seconds, which replaces the list's former
15 s page refresh for those sample-based figures.

**SLA.** The list shows each circuit's availability this month so far and the error budget
its contract leaves (portal/sla_views.month_to_date: the month's statement built now, the
figures the customer's SLA reports print); not live, it is as of the page's load.

**Traffic.** A circuit's traffic at each end is read from the port
store.queries.traffic_ports chooses for the viewer: the end's per-circuit sub-interface
where the inventory names one, else the end port, unless that port is the operator's and
ends another customer's circuit too (a shared PE port carries both customers' traffic: its
samples are staff-only, object_visible); then the line says it is the operator's and the
chart of that end is not offered.

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

from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext, lazy_gettext

from alarms.model import Alarm
from alarms.texts import TEXT
from portal.alarm_access import cause_words, customer_words
from portal.alarms_views import SEVERITY_LABELS, TYPE_LABELS, alarm_text, alarm_time
from portal.app import service_state_label
from portal.live import CUSTOMER_ROOM
from portal.security import current_viewer, login_required
from portal.sla_views import month_to_date
from store import alarms as alarm_store
from store.circuit_states import StoredState, current_states
from store.events import last_event_id
from store.queries import (
    CircuitRow,
    Viewer,
    circuits_for,
    get_circuit,
    get_customer,
    latest_port_traffic,
    traffic_ports,
)
from topology.current import Topology, load_topology
from topology.views import circuit_view

log = logging.getLogger(__name__)

blueprint = Blueprint("customer", __name__)

# Labels of the topology's device and link statuses (the route table's hops).
ELEMENT_STATUS_LABELS = {
    "up": lazy_gettext("up"),
    "down": lazy_gettext("down"),
    "degraded": lazy_gettext("degraded"),
    "unknown": lazy_gettext("unknown"),
}

# The chart ranges the circuit and device pages may offer: code -> (label, seconds); a page
# offers those the store keeps data for (chart_ranges).
CHART_RANGES = {
    "1h": (lazy_gettext("1 hour"), 3600),
    "24h": (lazy_gettext("24 hours"), 86400),
    "7d": (lazy_gettext("7 days"), 7 * 86400),
    "30d": (lazy_gettext("30 days"), 30 * 86400),
    "90d": (lazy_gettext("90 days"), 90 * 86400),
    "1y": (lazy_gettext("1 year"), 365 * 86400),
}


def chart_ranges() -> dict[str, tuple[Any, int]]:
    """The chart ranges to offer: those within what the store keeps (the daily rollup's
    retention, settings store.rollup_day_retention_days), as the samples API allows."""
    from portal.api import max_range

    longest_s = max_range().total_seconds()
    return {code: choice for code, choice in CHART_RANGES.items() if choice[1] <= longest_s}

# The charts of the circuit page: id -> (title, unit, metric of "in", metric of "out").
CHARTS = {
    "traffic": (lazy_gettext("Traffic"), "bit/s", "if_in_bps", "if_out_bps"),
    "utilization": (lazy_gettext("Utilization"), "%", "if_in_utilization_pct",
                    "if_out_utilization_pct"),
    "errors": (lazy_gettext("Errors"), lazy_gettext("packets/s"), "if_in_errors_per_s",
               "if_out_errors_per_s"),
}


# What an alarm's object is called when it is not the customer's own (see the docstring).
OPERATOR_NETWORK = lazy_gettext("operator network")

# An end whose port is shared with another customer's circuit and names no sub-interface:
# its figures are the operator's (store.queries.traffic_ports).
OPERATOR_PORT = lazy_gettext("shared operator port: not shown")

# The cause of a circuit the alarm pipeline has not judged yet (shown unknown).
NOT_ASSESSED = lazy_gettext("not assessed yet")

# How often the pages fetch their state without being told (sample-based figures).
STATE_REFRESH_S = 30


def _database() -> Any:
    return current_app.extensions["keyline.database"]


def _topology(conn: Any) -> Topology | None:
    """The network as it is now, or None (logged) when it cannot be built: the page then
    shows no route rather than failing."""
    try:
        return load_topology(conn)
    except Exception:
        log.exception("could not load the topology for a customer page")
        return None


def _route(topology: Topology | None, circuit: CircuitRow) -> dict[str, Any] | None:
    """The circuit's route for the page: Cytoscape elements and one row per hop, each with
    its device's status and the status of the link it was entered over (the topology's
    statuses of those elements; the circuit's own state is its service state). Only nodes
    of this circuit's customer or of the operator (no customer) are kept, as a second fence
    behind circuit_view's own (a path never runs through another customer's site)."""
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
        link = hop["link"] if hop["link"] in edge_status else None
        hops.append({
            "number": number,
            "node": hop["device"] if visible else None,  # the Cytoscape ids, for live updates
            "link": link,
            "device": hop["device_key"] if visible else None,
            "in_port": hop["in_port"] if visible else None,
            "out_port": hop["out_port"] if visible else None,
            "status": node_status.get(hop["device"], "unknown"),
            "link_status": edge_status.get(link) if link else None,
        })
    for edge in edges:  # the page needs no other circuits' names (there are none: be sure)
        edge["data"].pop("circuits", None)
    return {
        "declared": summary.get("declared", False),
        "valid": summary.get("valid", False),
        "problems": summary.get("problems", []),
        "hops": hops,
        "elements": {"nodes": nodes, "edges": edges},
    }


def _open_alarms(conn: Any, viewer: Viewer, customer_id: int,
                 circuits: Mapping[int, CircuitRow]) -> list[dict[str, Any]]:
    """The viewer's active alarms that hit one of `circuits` (all of one customer, whose id
    is `customer_id`), newest first, as the pages show them (see the module docstring)."""
    alarms: list[Alarm] = [
        a for a in alarm_store.alarms_for(conn, viewer, state="active", customer_id=customer_id)
        if a.impacted_circuits & circuits.keys()]
    labels = alarm_store.object_labels(conn, [a.key.object_id for a in alarms])
    found = []
    for alarm in alarms:
        label, owner = labels.get(alarm.key.object_id, (None, None))
        own = owner == customer_id and label is not None
        hit = [circuits[i] for i in sorted(alarm.impacted_circuits) if i in circuits]
        found.append({
            "id": alarm.id,
            "href": url_for("alarms.alarm", alarm_id=alarm.id),
            "severity": str(alarm.severity),
            "severity_label": str(SEVERITY_LABELS.get(str(alarm.severity), alarm.severity)),
            "type_label": str(TYPE_LABELS.get(str(alarm.key.type), alarm.key.type)),
            "own": own,
            "object_label": label if own else str(OPERATOR_NETWORK),
            # in the viewer's language, from the words a customer may read
            "summary": alarm_text(alarm.summary, {TEXT: customer_words(alarm, hidden=False)})
            if own and alarm.summary else None,
            "since": alarm_time(alarm.first_seen),
            "acknowledged": alarm.acknowledged,
            "acknowledged_at": alarm_time(alarm.acknowledged_at) if alarm.acknowledged
            else None,
            "suppressed": alarm.suppressed,
            "circuits": [{"key": c.key, "href": url_for("customer.circuit", circuit_id=c.id)}
                         for c in hit],
        })
    return found


def service_state(stored: StoredState | None) -> dict[str, Any]:
    """A circuit's stored service state as the pages and their JSON show it: the state, what
    lies beneath a maintenance, its label in the viewer's language, its cause in words (in
    English, and as data for the viewer's language: "cause_text", alarm_access.cause_words)
    and since when ("since": the time in UTC as the pages write it, "since_text": in a
    sentence, "time": ISO 8601). A circuit not judged yet: unknown, "not assessed yet"."""
    if stored is None:
        return {"status": "unknown", "underlying": None, "label": service_state_label("unknown"),
                "cause": str(NOT_ASSESSED), "cause_text": None, "cause_kind": None,
                "since": None, "since_text": None, "time": None}
    since = alarm_time(stored.time)
    return {"status": stored.state, "underlying": stored.underlying,
            "label": service_state_label(stored.state, stored.underlying),
            "cause": stored.cause, "cause_text": cause_words(stored.cause, stored.cause_text),
            "cause_kind": stored.cause_kind, "since": since,
            "since_text": gettext("since %(time)s", time=since),
            "time": stored.time.isoformat()}


def _traffic(traffic: Mapping[int, Any], port_id: int | None) -> str | None:
    if port_id is None:
        return str(OPERATOR_PORT)
    rates = traffic.get(port_id)
    if rates is None:
        return None
    bps = current_app.jinja_env.filters["bps"]
    return f"{bps(rates.in_bps)} / {bps(rates.out_bps)}"


def _list_state(viewer: Viewer, customer_id: int) -> dict[str, Any] | None:
    """Everything the circuits list shows that changes: None if the viewer may not see the
    customer."""
    with _database().pool.connection() as conn:
        event_id = last_event_id(conn)  # first: anything later is replayed on joining
        customer = get_customer(conn, viewer, customer_id)
        if customer is None:
            return None
        rows = circuits_for(conn, viewer, customer_id=customer.id)
        ends = {c.id: traffic_ports(conn, viewer, c) for c in rows}
        traffic = latest_port_traffic(
            conn, [port for pair in ends.values() for port in pair if port is not None])
        stored = current_states(conn, [c.id for c in rows]) if rows else {}
        alarms = _open_alarms(conn, viewer, customer.id, {c.id: c for c in rows})
    return {
        "customer": customer, "rows": rows, "traffic": traffic, "ends": ends,
        "states": {c.id: service_state(stored.get(c.id)) for c in rows},
        "alarms": alarms, "event_id": event_id,
    }


def _circuit_state(viewer: Viewer, circuit_id: int) -> dict[str, Any] | None:
    """Everything the circuit page shows that changes: None if the viewer may not see it."""
    with _database().pool.connection() as conn:
        event_id = last_event_id(conn)
        row = get_circuit(conn, viewer, circuit_id)
        if row is None:
            return None
        customer_id = conn.execute("SELECT customer_id FROM circuits WHERE id = %s",
                                   [row.id]).fetchone()[0]
        ends = traffic_ports(conn, viewer, row)
        traffic = latest_port_traffic(conn, [port for port in ends if port is not None])
        state = service_state(current_states(conn, [row.id]).get(row.id))
        route = _route(_topology(conn), row)
        alarms = _open_alarms(conn, viewer, customer_id, {row.id: row})
    return {"circuit": row, "customer_id": customer_id, "traffic": traffic, "ends": ends,
            "state": state, "route": route, "alarms": alarms, "event_id": event_id}


def _live(room_customer: int, state_endpoint: str, **arguments: Any) -> dict[str, Any]:
    """What the page's script needs to go live: the room, the state's address, how often."""
    return {"room": CUSTOMER_ROOM.format(room_customer),
            "state_url": url_for(state_endpoint, **arguments),
            "refresh_s": STATE_REFRESH_S}


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
    state = _list_state(current_viewer(), customer_id)
    if state is None:
        abort(404)
    customer = state["customer"]
    with _database().pool.connection() as conn:
        sla = month_to_date(conn, current_viewer(), customer)
    return render_template("customer/circuits.html", customer=customer, circuits=state["rows"],
                           sla=sla,
                           traffic=state["traffic"], states=state["states"],
                           ends=state["ends"], operator_port=OPERATOR_PORT,
                           element_labels=ELEMENT_STATUS_LABELS,
                           alarms=state["alarms"], event_id=state["event_id"],
                           live=_live(customer.id, "customer.circuits_state",
                                      customer_id=customer.id))


@blueprint.get("/customers/<int:customer_id>/status")
@login_required
def circuits_state(customer_id: int) -> ResponseReturnValue:
    """The list's state as JSON, for its script (see the module docstring)."""
    state = _list_state(current_viewer(), customer_id)
    if state is None:
        abort(404)
    return jsonify({
        "event_id": state["event_id"],
        "circuits": [{
            "id": f"circuit:{c.id}", "key": c.key,
            "service": state["states"][c.id],
            "traffic": {"a": _traffic(state["traffic"], state["ends"][c.id][0]),
                        "z": _traffic(state["traffic"], state["ends"][c.id][1])},
        } for c in state["rows"]],
        "alarms": state["alarms"],
    })


@blueprint.get("/circuits/<int:circuit_id>")
@login_required
def circuit(circuit_id: int) -> str:
    state = _circuit_state(current_viewer(), circuit_id)
    if state is None:
        abort(404)
    row = state["circuit"]
    return render_template("customer/circuit.html", circuit=row, traffic=state["traffic"],
                           ends=state["ends"], operator_port=OPERATOR_PORT,
                           service=state["state"], route=state["route"],
                           element_labels=ELEMENT_STATUS_LABELS, ranges=chart_ranges(),
                           charts=CHARTS, alarms=state["alarms"], event_id=state["event_id"],
                           live=_live(state["customer_id"], "customer.circuit_state",
                                      circuit_id=row.id))


@blueprint.get("/circuits/<int:circuit_id>/status")
@login_required
def circuit_state(circuit_id: int) -> ResponseReturnValue:
    """The circuit page's state as JSON, for its script (see the module docstring)."""
    state = _circuit_state(current_viewer(), circuit_id)
    if state is None:
        abort(404)
    row, route = state["circuit"], state["route"]
    hops = None
    if route is not None:
        hops = [{**hop,
                 "status_label": str(ELEMENT_STATUS_LABELS.get(hop["status"], hop["status"])),
                 "link_label": str(ELEMENT_STATUS_LABELS.get(hop["link_status"],
                                                             hop["link_status"]))
                 if hop["link_status"] else None} for hop in route["hops"]]
    return jsonify({
        "event_id": state["event_id"],
        "id": f"circuit:{row.id}",
        "service": state["state"],
        "traffic": {"a": _traffic(state["traffic"], state["ends"][0]),
                    "z": _traffic(state["traffic"], state["ends"][1])},
        "hops": hops,
        "elements": route["elements"] if route is not None else None,
        "alarms": state["alarms"],
    })
