"""Topology views: what a portal page draws, as JSON-ready dicts for Cytoscape.js.

A view is a slice of the topology graph for one audience. The NOC watches the whole network
(`global_view`); a key customer sees only its own sites, its CE routers, and the path of each
of its circuits across the operator's PE and P routers (`customer_view`), never another
customer's site, device, link or circuit; a VPN view shows one customer VPN's sites and
circuits (`vpn_view`); a circuit view shows one circuit's route hop by hop (`circuit_view`).

Every view has the same shape: ``{"view", "title", "elements": {"nodes", "edges"},
"circuits"}``, where "elements" is what ``cytoscape({elements})`` takes. Sites are compound
(parent) nodes around their devices; devices are nodes; links are edges (the edge's
provenance is "known_from", because Cytoscape reserves "source" and "target" for its ends).
Each node and edge carries a `status` ("up", "down", "degraded", "unknown"), a
`utilization_pct` (for an edge, the highest of both ports' in and out utilization; for a
device, the highest of its edges in the view; None without data) and `alarms`, the count of
open alarms on its own objects (a device's id; a link's id and its two ports' ids).

A circuit's status is not decided here: it is its service state (up, down, degraded,
unknown, maintenance), which the alarm pipeline decides and stores (docs/service-state.md),
and the caller passes it in as `states` (circuit id -> state); a circuit missing from it is
"unknown". Topology sits below the alarms, so it only shows the answer, and every page that
shows a circuit shows the same one.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import networkx as nx

from topology.graph import DEGRADED, DOWN, UNKNOWN, UP, LinkKey, TopologySnapshot, edge_data
from topology.paths import CircuitPath

# Port id -> (in %, out %) of the latest utilization sample; either may be None.
Utilization = Mapping[int, tuple[float | None, float | None]]
# Circuit id -> its service state ("up", "down", "degraded", "unknown", "maintenance").
CircuitStates = Mapping[int, str]


def aggregate_status(statuses: Collection[str]) -> str:
    """One status for several: all up is up, all down is down, some down or degraded is
    degraded, anything else (or nothing) unknown."""
    values = set(statuses)
    if not values:
        return UNKNOWN
    if values == {UP}:
        return UP
    if values == {DOWN}:
        return DOWN
    if DOWN in values or DEGRADED in values:
        return DEGRADED
    return UNKNOWN


def _port_utilization(utilization: Utilization, port_ids: Collection[int]) -> float | None:
    values = [v for p in port_ids for v in utilization.get(p, (None, None)) if v is not None]
    return max(values) if values else None


def _id(kind: str, object_id: Any) -> str:
    if isinstance(object_id, tuple):
        object_id = "-".join(str(part) for part in object_id)
    return f"{kind}:{object_id}"


def _path_json(snapshot: TopologySnapshot, path: CircuitPath) -> list[dict[str, Any]]:
    def port_name(port_id: int) -> str | None:
        port = snapshot.ports.get(port_id)
        return port.name if port else None

    return [{
        "device": _id("device", h.device_id),
        "device_key": snapshot.devices[h.device_id].key if h.device_id in snapshot.devices
        else None,
        "in_port": port_name(h.in_port_id), "out_port": port_name(h.out_port_id),
        "link": _id("link", h.link_id) if h.link_id is not None else None,
    } for h in path.hops]


def _view(
    kind: str,
    title: str,
    graph: nx.MultiGraph,
    snapshot: TopologySnapshot,
    paths: Mapping[int, CircuitPath],
    devices: Collection[int],
    links: Collection[LinkKey],
    circuits: Collection[int],
    utilization: Utilization | None,
    alarms: Mapping[Any, int] | None,
    states: CircuitStates | None,
    *,
    list_circuits: bool = True,
    extra_sites: Collection[int] = (),
) -> dict[str, Any]:
    utilization = utilization or {}
    alarms = alarms or {}
    states = states or {}
    circuit_links: dict[LinkKey, list[str]] = {}
    for circuit_id in circuits:
        path = paths.get(circuit_id)
        for hop in path.hops if path else ():
            if hop.link_id is not None:
                circuit_links.setdefault(hop.link_id, []).append(
                    snapshot.circuits[circuit_id].key)
    edges: list[dict[str, Any]] = []
    device_edges: dict[int, list[dict[str, Any]]] = {d: [] for d in devices}
    for key in links:
        data = edge_data(graph, key)
        if data is None or not (data["a_device_id"] in device_edges
                                and data["z_device_id"] in device_edges):
            continue
        ports = (data["a_port_id"], data["z_port_id"])
        edge = {
            "id": _id("link", key), "kind": "link",
            "source": _id("device", data["a_device_id"]),
            "target": _id("device", data["z_device_id"]),
            "link_id": data["link_id"], "label": f"{data['a_port_name']} - {data['z_port_name']}",
            "a_port": data["a_port_name"], "z_port": data["z_port_name"],
            "capacity_bps": data["capacity_bps"], "cost": data["cost"],
            "known_from": data["source"], "status": data["status"],
            "utilization_pct": _port_utilization(utilization, ports),
            "alarms": sum(alarms.get(o, 0) for o in (key, *ports)),
        }
        names = circuit_links.get(key, [])
        if list_circuits:
            edge["circuits"] = sorted(names)
        edge["circuit_count"] = len(names)
        edges.append({"data": edge})
        for device in (data["a_device_id"], data["z_device_id"]):
            device_edges[device].append(edge)
    nodes = []
    sites = set(extra_sites)
    for device_id in devices:
        attrs = graph.nodes[device_id]
        device = snapshot.devices[device_id]
        status = attrs["status"]
        mine = device_edges[device_id]
        if status == UP and any(e["status"] in (DOWN, DEGRADED) for e in mine):
            status = DEGRADED
        usage = [e["utilization_pct"] for e in mine if e["utilization_pct"] is not None]
        customer = snapshot.customers.get(attrs["customer"])
        node = {
            "id": _id("device", device_id), "kind": "device", "object_id": device_id,
            "label": device.key, "role": device.role,
            "customer": customer.key if customer else None,
            "status": status, "utilization_pct": max(usage) if usage else None,
            "alarms": alarms.get(device_id, 0),
        }
        if device.site_id in snapshot.sites:
            node["parent"] = _id("site", device.site_id)
            sites.add(device.site_id)
        nodes.append({"data": node})
    children: dict[int, list[str]] = {}
    for node in nodes:
        if "parent" in node["data"]:
            children.setdefault(int(node["data"]["parent"].split(":")[1]), []).append(
                node["data"]["status"])
    for site_id in sorted(sites):
        site = snapshot.sites[site_id]
        customer = snapshot.customers.get(site.customer_id)
        nodes.append({"data": {
            "id": _id("site", site_id), "kind": "site", "object_id": site_id,
            "label": site.name, "customer": customer.key if customer else None,
            "status": aggregate_status(children.get(site_id, [])), "utilization_pct": None,
            "alarms": alarms.get(site_id, 0),
        }})
    summaries = []
    if list_circuits:
        for circuit_id in sorted(circuits, key=lambda c: snapshot.circuits[c].key):
            circuit, path = snapshot.circuits[circuit_id], paths.get(circuit_id)
            summaries.append({
                "id": _id("circuit", circuit_id), "object_id": circuit_id, "key": circuit.key,
                "customer": snapshot.customers[circuit.customer_id].key
                if circuit.customer_id in snapshot.customers else None,
                "service_type": circuit.service_type, "bandwidth_bps": circuit.bandwidth_bps,
                "status": states.get(circuit_id, UNKNOWN), "alarms": alarms.get(circuit_id, 0),
                "declared": bool(path and path.declared), "valid": bool(path and path.valid),
                "problems": list(path.problems) if path else ["no path"],
                "hops": _path_json(snapshot, path) if path else [],
            })
    return {"view": kind, "title": title, "elements": {"nodes": nodes, "edges": edges},
            "circuits": summaries}


def global_view(graph: nx.MultiGraph, snapshot: TopologySnapshot,
                paths: Mapping[int, CircuitPath], *, utilization: Utilization | None = None,
                alarms: Mapping[Any, int] | None = None,
                states: CircuitStates | None = None) -> dict[str, Any]:
    """The whole network, for NOC staff. Edges carry a circuit count, not circuit names, and
    the circuit list is left out (it is long; the circuit view has one circuit's details)."""
    return _view("global", "Network", graph, snapshot, paths, list(graph.nodes),
                 list(graph.graph["edge_ends"]), list(paths), utilization, alarms, states,
                 list_circuits=False)


def _scoped(graph: nx.MultiGraph, snapshot: TopologySnapshot, paths: Mapping[int, CircuitPath],
            customer_id: int, site_ids: Collection[int], circuit_ids: Collection[int],
            ) -> tuple[list[int], list[LinkKey]]:
    """Devices and links a customer may see: the CEs at `site_ids`, the links from them to
    the operator's devices, and the devices and links of `circuit_ids`' paths; never a
    device at another customer's site, nor a link touching one."""

    def allowed(device_id: int) -> bool:
        owner = graph.nodes[device_id]["customer"] if device_id in graph else -1
        return owner is None or owner == customer_id

    devices = {d for d in graph.nodes if graph.nodes[d]["site"] in site_ids}
    links: set[LinkKey] = set()
    for device in list(devices):
        for _, other, key in graph.edges(device, keys=True):
            if allowed(other):
                devices.add(other)
                links.add(key)
    for circuit_id in circuit_ids:
        path = paths.get(circuit_id)
        for hop in path.hops if path else ():
            if allowed(hop.device_id) and hop.device_id in graph:
                devices.add(hop.device_id)
            if hop.link_id is not None:
                ends = graph.graph["edge_ends"].get(hop.link_id)
                if ends and allowed(ends[0]) and allowed(ends[1]):
                    links.add(hop.link_id)
    return sorted(devices), sorted(links, key=str)


def customer_view(graph: nx.MultiGraph, snapshot: TopologySnapshot,
                  paths: Mapping[int, CircuitPath], customer_id: int, *,
                  utilization: Utilization | None = None,
                  alarms: Mapping[Any, int] | None = None,
                  states: CircuitStates | None = None) -> dict[str, Any]:
    """One customer's sites, CE routers and circuits' paths (over the operator's PE and P
    routers), and nothing of any other customer."""
    customer = snapshot.customers[customer_id]
    site_ids = [s.id for s in snapshot.sites.values() if s.customer_id == customer_id]
    circuit_ids = [c.id for c in snapshot.circuits.values() if c.customer_id == customer_id]
    devices, links = _scoped(graph, snapshot, paths, customer_id, site_ids, circuit_ids)
    return _view("customer", customer.name, graph, snapshot, paths, devices, links,
                 circuit_ids, utilization, alarms, states, extra_sites=site_ids)


def vpn_view(graph: nx.MultiGraph, snapshot: TopologySnapshot,
             paths: Mapping[int, CircuitPath], vpn_id: int, *,
             utilization: Utilization | None = None,
             alarms: Mapping[Any, int] | None = None,
             states: CircuitStates | None = None) -> dict[str, Any]:
    """One VPN: its sites, their CE routers and the paths of its circuits."""
    vpn = snapshot.vpns[vpn_id]
    devices, links = _scoped(graph, snapshot, paths, vpn.customer_id, vpn.site_ids,
                             vpn.circuit_ids)
    return _view("vpn", vpn.name, graph, snapshot, paths, devices, links, vpn.circuit_ids,
                 utilization, alarms, states, extra_sites=vpn.site_ids)


def circuit_view(graph: nx.MultiGraph, snapshot: TopologySnapshot,
                 paths: Mapping[int, CircuitPath], circuit_id: int, *,
                 utilization: Utilization | None = None,
                 alarms: Mapping[Any, int] | None = None,
                 states: CircuitStates | None = None) -> dict[str, Any]:
    """One circuit's route: the devices and links of its path, and the path hop by hop
    (with its problems, if it is an invalid declared path)."""
    circuit = snapshot.circuits[circuit_id]
    path = paths.get(circuit_id)
    hops = path.hops if path else ()
    devices = list(dict.fromkeys(h.device_id for h in hops if h.device_id in graph))
    links = [h.link_id for h in hops if h.link_id is not None]
    return _view("circuit", circuit.key, graph, snapshot, paths, devices, links, [circuit_id],
                 utilization, alarms, states)
