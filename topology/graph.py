"""The topology graph: devices as nodes, links as edges, with what each edge can carry and
whether it is up.

A network's topology is a graph. Each managed device is a node; each link (a cable or a
logical adjacency joining one port of a device to one port of another) is an edge. Two
devices may be joined by several links (two uplinks, a bundle plus a spare), so the graph is
a `networkx.MultiGraph` and each edge has a key: the link's object id for a link the inventory
declares, or the sorted pair of its port ids for one that only LLDP discovery saw. An edge
carries the two ports it joins, the capacity of the slower port (`capacity_bps`), a routing
`cost` (what a circuit path computation minimises), where it is known from (`source`:
"declared", "discovered" or "both") and a `status` derived from the two ports' operational
status and the two devices' reachability: both ends up is "up", any end down is "down", a
port in "testing" or "dormant" makes it "degraded", anything else is "unknown".

The graph is built from a `TopologySnapshot`: plain frozen dataclasses of the active
inventory objects, read either from the store (`load_snapshot`) or from an `Inventory` object
(`snapshot_from_inventory`, with synthetic ids, for tests and benches without a database).

*Declared* means what people stated: the inventory's links, and also the links an operator
accepted from discovery (store.topology's `accepted_links`, which inventory imports never
touch). `load_snapshot(conn, accepted=True)` adds the accepted links to the snapshot's
`links` (`with_declared_links`), so paths, impact and views treat them like inventory links;
each `SnapLink` says which it is in `origin` ("inventory" or "accepted"), and so does each
edge (attribute "origin"; None for a link only discovery knows). A link the inventory declares
is never added twice, whatever else accepted it. topology.current.load_topology builds the
graph of the network as it is now this way.
Node ids are device object ids; every id of the store comes from one sequence, so a device,
a port, a link and a circuit never share an id, and the synthetic ids keep that property.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import NamedTuple, Protocol

import networkx as nx
import psycopg

from config.inventory.model import Inventory

# Edge status values, worst first where an order is needed.
UP, DOWN, DEGRADED, UNKNOWN = "up", "down", "degraded", "unknown"
STATUSES = (UP, DOWN, DEGRADED, UNKNOWN)

# Cost of a link that only discovery knows (the inventory's default link cost is 10).
DEFAULT_DISCOVERED_COST = 10
# Cost of a link accepted from discovery (accepted_links has no cost column): the same.
DEFAULT_ACCEPTED_COST = 10

# SnapLink.origin values: declared in the inventory files, or accepted from discovery.
INVENTORY, ACCEPTED = "inventory", "accepted"

# IF-MIB ifOperStatus names (collectors.observations) and device poll statuses, as edge status.
_PORT_STATUS = {
    "up": UP, "down": DOWN, "lowerLayerDown": DOWN, "notPresent": DOWN,
    "testing": DEGRADED, "dormant": DEGRADED,
}
_DEVICE_STATUS = {"reachable": UP, "unreachable": DOWN}

# A link's edge key: a declared link's object id, or (low port id, high port id) when only
# discovery knows it.
LinkKey = int | tuple[int, int]

DEVICE, PORT, LINK, CIRCUIT = "device", "port", "link", "circuit"


class Element(NamedTuple):
    """One thing that can fail or be used by a circuit: a device, a port, a link (id: its
    LinkKey) or a circuit. Used by paths, impact and root cause alike. A named tuple rather
    than a dataclass: impact indexes hold hundreds of thousands of them, and tuples are
    several times cheaper to make and hash."""

    kind: str  # DEVICE, PORT, LINK or CIRCUIT
    id: LinkKey

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True)
class SnapCustomer:
    id: int
    key: str
    name: str


@dataclass(frozen=True)
class SnapSite:
    id: int
    key: str
    name: str
    customer_id: int | None  # None: one of the operator's points of presence


@dataclass(frozen=True)
class SnapDevice:
    id: int
    key: str
    role: str  # PE, P, CE, ...
    site_id: int | None


@dataclass(frozen=True)
class SnapPort:
    id: int
    device_id: int
    name: str
    speed_bps: int | None
    monitor: bool = False  # the inventory asks for its alarms (see alarms.stages)


@dataclass(frozen=True)
class SnapLink:
    """A declared link. `origin` is INVENTORY, or ACCEPTED for a link accepted from
    discovery (its `id` is then the accepted_links row's, from the same id sequence, and its
    `key` is "device:port--device:port" like an inventory link's)."""

    id: int
    key: str
    a_port_id: int
    z_port_id: int
    cost: int
    origin: str = INVENTORY


@dataclass(frozen=True)
class SnapHop:
    """A declared hop: the circuit enters `device_id` on `in_port_id`, leaves on `out_port_id`."""

    device_id: int
    in_port_id: int
    out_port_id: int


@dataclass(frozen=True)
class SnapCircuit:
    id: int
    key: str
    customer_id: int
    service_type: str
    bandwidth_bps: int
    a_port_id: int
    z_port_id: int
    hops: tuple[SnapHop, ...]  # the declared path; empty: computed from the topology


@dataclass(frozen=True)
class SnapVpn:
    id: int
    key: str
    customer_id: int
    name: str
    site_ids: tuple[int, ...]
    circuit_ids: tuple[int, ...]


@dataclass(frozen=True)
class TopologySnapshot:
    """The active inventory objects topology needs, each kind by object id."""

    customers: dict[int, SnapCustomer] = field(default_factory=dict)
    sites: dict[int, SnapSite] = field(default_factory=dict)
    devices: dict[int, SnapDevice] = field(default_factory=dict)
    ports: dict[int, SnapPort] = field(default_factory=dict)
    links: dict[int, SnapLink] = field(default_factory=dict)
    circuits: dict[int, SnapCircuit] = field(default_factory=dict)
    vpns: dict[int, SnapVpn] = field(default_factory=dict)

    def device_customer(self, device_id: int) -> int | None:
        """The customer whose site the device stands at; None for the operator's own."""
        site = self.sites.get(self.devices[device_id].site_id or -1)
        return site.customer_id if site else None

    def ids(self, kind: str) -> dict[str, int]:
        """Natural key -> id for one kind ("devices", "circuits", ...); ports by "dev:port"."""
        if kind == "ports":
            return {f"{self.devices[p.device_id].key}:{p.name}": p.id
                    for p in self.ports.values()}
        return {obj.key: obj.id for obj in getattr(self, kind).values()}


# --- loading -------------------------------------------------------------------------------

def load_snapshot(conn: psycopg.Connection, *, accepted: bool = False) -> TopologySnapshot:
    """The active (not retired) topology objects of the store. A port, link, hop or VPN
    member that refers to a retired object is left out with it. With `accepted`, the links
    accepted from discovery join the inventory's (store.topology.declared_links,
    `with_declared_links`)."""
    customers = {r[0]: SnapCustomer(*r) for r in conn.execute(
        "SELECT id, key, name FROM customers WHERE retired_at IS NULL")}
    sites = {r[0]: SnapSite(*r) for r in conn.execute(
        "SELECT id, key, name, customer_id FROM sites WHERE retired_at IS NULL")}
    devices = {r[0]: SnapDevice(*r) for r in conn.execute(
        "SELECT id, key, role, site_id FROM devices WHERE retired_at IS NULL")}
    ports = {r[0]: SnapPort(*r) for r in conn.execute(
        """SELECT p.id, p.device_id, p.name, p.speed_bps, p.monitor
             FROM ports p JOIN devices d ON d.id = p.device_id
            WHERE p.retired_at IS NULL AND d.retired_at IS NULL""")}
    links = {r[0]: SnapLink(*r) for r in conn.execute(
        "SELECT id, key, a_port_id, z_port_id, cost FROM links WHERE retired_at IS NULL")
        if r[2] in ports and r[3] in ports}
    hops: dict[int, list[SnapHop]] = {}
    for circuit_id, device_id, in_port, out_port in conn.execute(
            """SELECT h.circuit_id, h.device_id, h.in_port_id, h.out_port_id
                 FROM circuit_hops h JOIN circuits c ON c.id = h.circuit_id
                WHERE c.retired_at IS NULL ORDER BY h.circuit_id, h.seq"""):
        hops.setdefault(circuit_id, []).append(SnapHop(device_id, in_port, out_port))
    circuits = {r[0]: SnapCircuit(*r, hops=tuple(hops.get(r[0], ()))) for r in conn.execute(
        """SELECT id, key, customer_id, service_type, bandwidth_bps, a_port_id, z_port_id
             FROM circuits WHERE retired_at IS NULL""")}
    members: dict[int, tuple[list[int], list[int]]] = {}
    for vpn_id, site_id in conn.execute("SELECT vpn_id, site_id FROM vpn_sites ORDER BY 1, 2"):
        if site_id in sites:
            members.setdefault(vpn_id, ([], []))[0].append(site_id)
    for vpn_id, circuit_id in conn.execute(
            "SELECT vpn_id, circuit_id FROM vpn_circuits ORDER BY 1, 2"):
        if circuit_id in circuits:
            members.setdefault(vpn_id, ([], []))[1].append(circuit_id)
    vpns = {}
    for vpn_id, key, customer_id, name in conn.execute(
            "SELECT id, key, customer_id, name FROM vpns WHERE retired_at IS NULL"):
        site_ids, circuit_ids = members.get(vpn_id, ([], []))
        vpns[vpn_id] = SnapVpn(vpn_id, key, customer_id, name, tuple(site_ids),
                               tuple(circuit_ids))
    snapshot = TopologySnapshot(customers, sites, devices, ports, links, circuits, vpns)
    if accepted:
        from store.topology import declared_links

        snapshot = with_declared_links(snapshot, declared_links(conn))
    return snapshot


class DeclaredLink(Protocol):
    """What `with_declared_links` needs of a link: store.topology.StoredLink has it."""

    @property
    def port_ids(self) -> tuple[int, int]: ...

    id: int | None
    origin: str


def with_declared_links(snapshot: TopologySnapshot, links: Iterable[DeclaredLink], *,
                        cost: int = DEFAULT_ACCEPTED_COST) -> TopologySnapshot:
    """The snapshot with these declared links added to its `links` (typically
    store.topology.declared_links(conn): inventory links, then accepted ones).

    A link is skipped when the snapshot already has a link between the same two ports (so
    an inventory link is never duplicated, whichever end it is named from), when it has no
    id or its id is taken, or when one of its ports is not in the snapshot (retired). The
    added links get `cost` and keep their `origin` ("accepted"). The snapshot given is not
    changed; if nothing is added it is returned as it is."""
    pairs = {frozenset((link.a_port_id, link.z_port_id)) for link in snapshot.links.values()}
    added: dict[int, SnapLink] = {}
    for link in links:
        a_port, z_port = sorted(link.port_ids)
        pair = frozenset((a_port, z_port))
        if (link.id is None or link.id in snapshot.links or link.id in added or pair in pairs
                or a_port == z_port or a_port not in snapshot.ports
                or z_port not in snapshot.ports):
            continue
        pairs.add(pair)
        names = sorted(f"{snapshot.devices[snapshot.ports[p].device_id].key}:"
                       f"{snapshot.ports[p].name}" for p in (a_port, z_port))
        added[link.id] = SnapLink(link.id, "--".join(names), a_port, z_port, cost,
                                  link.origin or ACCEPTED)
    if not added:
        return snapshot
    return replace(snapshot, links={**snapshot.links, **added})


def snapshot_from_inventory(inventory: Inventory, *, first_id: int = 1) -> TopologySnapshot:
    """The snapshot of an `Inventory` object, with synthetic ids from one counter (so ids of
    different kinds never collide, as in the store). Ids follow the inventory's order.
    A reference to an object the inventory lacks raises KeyError, as the store's foreign keys
    would refuse it."""
    counter = itertools.count(first_id)
    customer_ids = {key: next(counter) for key in inventory.customers}
    site_ids = {key: next(counter) for key in inventory.sites}
    device_ids = {key: next(counter) for key in inventory.devices}
    port_ids = {port.key: next(counter)
                for device in inventory.devices.values() for port in device.ports}
    customers = {customer_ids[c.key]: SnapCustomer(customer_ids[c.key], c.key, c.name)
                 for c in inventory.customers.values()}
    sites = {site_ids[s.key]: SnapSite(site_ids[s.key], s.key, s.name,
                                       customer_ids[s.customer] if s.customer else None)
             for s in inventory.sites.values()}
    devices = {device_ids[d.key]: SnapDevice(device_ids[d.key], d.key, d.role,
                                             site_ids[d.site] if d.site else None)
               for d in inventory.devices.values()}
    ports = {port_ids[p.key]: SnapPort(port_ids[p.key], device_ids[p.device], p.name,
                                       p.speed_bps, bool(getattr(p, "monitor", False)))
             for d in inventory.devices.values() for p in d.ports}
    links = {}
    for link in inventory.links.values():
        link_id = next(counter)
        links[link_id] = SnapLink(link_id, link.key, port_ids[str(link.a)], port_ids[str(link.z)],
                                  link.cost)
    circuits = {}
    for c in inventory.circuits.values():
        circuit_id = next(counter)
        hops = tuple(SnapHop(device_ids[h.device], port_ids[f"{h.device}:{h.in_port}"],
                             port_ids[f"{h.device}:{h.out_port}"]) for h in c.path)
        circuits[circuit_id] = SnapCircuit(
            circuit_id, c.key, customer_ids[c.customer], c.service_type, c.bandwidth_bps,
            port_ids[str(c.a_end)], port_ids[str(c.z_end)], hops)
    circuit_ids = {c.key: c.id for c in circuits.values()}
    vpns = {}
    for v in inventory.vpns.values():
        vpn_id = next(counter)
        vpns[vpn_id] = SnapVpn(vpn_id, v.key, customer_ids[v.customer], v.name,
                               tuple(site_ids[s] for s in v.sites),
                               tuple(circuit_ids[c] for c in v.circuits))
    return TopologySnapshot(customers, sites, devices, ports, links, circuits, vpns)


# --- status --------------------------------------------------------------------------------

def status_inputs(
    latest: Mapping[tuple[int, str], str],
) -> tuple[dict[int, str], dict[int, str]]:
    """Split store.observations.latest_states() into (port id -> oper status, device id ->
    reachability), the two status inputs of `build_graph`."""
    port_status = {obj: new for (obj, kind), new in latest.items() if kind == "oper_status"}
    reachability = {obj: new for (obj, kind), new in latest.items() if kind == "reachability"}
    return port_status, reachability


def device_status(reachability: str | None) -> str:
    """A device's status from its reachability observation: up, down or unknown."""
    return _DEVICE_STATUS.get(reachability or "", UNKNOWN)


def edge_status(a_oper: str | None, z_oper: str | None,
                a_device: str = UNKNOWN, z_device: str = UNKNOWN) -> str:
    """A link's status from its ports' oper status names and its devices' statuses: down if
    either device is down or either port is down; up if both ports are up; degraded if a port
    is in testing/dormant; unknown otherwise (no observation, or an unusual value)."""
    if DOWN in (a_device, z_device):
        return DOWN
    ends = (_PORT_STATUS.get(a_oper or "", UNKNOWN), _PORT_STATUS.get(z_oper or "", UNKNOWN))
    if DOWN in ends:
        return DOWN
    if ends == (UP, UP):
        return UP
    if DEGRADED in ends:
        return DEGRADED
    return UNKNOWN


def apply_status(
    graph: nx.MultiGraph,
    port_status: Mapping[int, str] | None = None,
    reachability: Mapping[int, str] | None = None,
) -> dict[Element, tuple[str | None, str]]:
    """Set every node's and edge's `status` from new status inputs, in place. Returns what
    changed: element -> (old status, new status), for `paths.update_paths`."""
    port_status = port_status or {}
    reachability = reachability or {}
    changed: dict[Element, tuple[str | None, str]] = {}
    for node, data in graph.nodes(data=True):
        status = device_status(reachability.get(node))
        if data.get("status") != status:
            changed[Element(DEVICE, node)] = (data.get("status"), status)
            data["status"] = status
    def oper(port: int, device: int) -> str | None:
        # a port's last state counts only while its device answers polls: the ports of a
        # device that is down or whose SNMP is silent are old news
        return port_status.get(port) if reachability.get(device) in (None, "reachable") else None

    for u, v, key, data in graph.edges(keys=True, data=True):
        a_device = data["a_device_id"]
        z_device = v if a_device == u else u
        status = edge_status(oper(data["a_port_id"], a_device), oper(data["z_port_id"], z_device),
                             graph.nodes[a_device]["status"], graph.nodes[z_device]["status"])
        if data.get("status") != status:
            changed[Element(LINK, key)] = (data.get("status"), status)
            data["status"] = status
    return changed


# --- building ------------------------------------------------------------------------------

def _capacity(snapshot: TopologySnapshot, a_port: int, z_port: int) -> int | None:
    speeds = [s for s in (snapshot.ports[a_port].speed_bps, snapshot.ports[z_port].speed_bps)
              if s is not None]
    return min(speeds) if speeds else None


def _edge_attributes(snapshot: TopologySnapshot, key: LinkKey, a_port: int, z_port: int,
                     cost: int, source: str, origin: str | None = None) -> dict:
    a, z = snapshot.ports[a_port], snapshot.ports[z_port]
    return {
        "link_id": key if isinstance(key, int) else None,
        "a_device_id": a.device_id, "z_device_id": z.device_id,
        "a_port_id": a_port, "z_port_id": z_port,
        "a_port_name": a.name, "z_port_name": z.name,
        "capacity_bps": _capacity(snapshot, a_port, z_port),
        "cost": cost, "source": source, "origin": origin, "status": UNKNOWN,
    }


def build_graph(
    snapshot: TopologySnapshot,
    *,
    discovered: Iterable[tuple[int, int]] = (),
    port_status: Mapping[int, str] | None = None,
    reachability: Mapping[int, str] | None = None,
    discovered_cost: int = DEFAULT_DISCOVERED_COST,
) -> nx.MultiGraph:
    """The MultiGraph of the snapshot's devices and links, plus discovered links.

    `discovered` holds unordered pairs of port ids that LLDP saw joined: a pair that is a
    declared link marks that edge source "both"; any other becomes an edge of its own, source
    "discovered", keyed by its sorted port pair, with cost `discovered_cost`. A pair naming a
    port the snapshot lacks is ignored. `port_status` maps port id -> ifOperStatus name and
    `reachability` maps device id -> poll status ("reachable", "unreachable", ...); see
    `status_inputs`. Accepted links are declared links: add them to the snapshot
    (`with_declared_links`, or `load_snapshot(conn, accepted=True)`) before building.

    Three indexes ride along in `graph.graph` (build a new graph rather than adding edges by
    hand, or they go stale): "port_links" (port id -> its link keys), "edge_ends" (link key
    -> its two device ids) and "link_by_ports" (frozenset of two port ids -> link key).
    """
    graph = nx.MultiGraph()
    for device in snapshot.devices.values():
        site = snapshot.sites.get(device.site_id) if device.site_id is not None else None
        graph.add_node(device.id, key=device.key, role=device.role,
                       site=site.id if site else None,
                       customer=site.customer_id if site else None, status=UNKNOWN)
    by_ports: dict[frozenset[int], int] = {}
    port_links: dict[int, list[LinkKey]] = {}
    for link in snapshot.links.values():
        a, z = snapshot.ports[link.a_port_id], snapshot.ports[link.z_port_id]
        graph.add_edge(a.device_id, z.device_id, key=link.id, **_edge_attributes(
            snapshot, link.id, link.a_port_id, link.z_port_id, link.cost, "declared",
            link.origin))
        by_ports[frozenset((link.a_port_id, link.z_port_id))] = link.id
        port_links.setdefault(link.a_port_id, []).append(link.id)
        port_links.setdefault(link.z_port_id, []).append(link.id)
    for pair in discovered:
        a_port, z_port = sorted(pair)
        if a_port == z_port or a_port not in snapshot.ports or z_port not in snapshot.ports:
            continue
        declared = by_ports.get(frozenset((a_port, z_port)))
        a, z = snapshot.ports[a_port], snapshot.ports[z_port]
        if declared is not None:
            graph.edges[a.device_id, z.device_id, declared]["source"] = "both"
            continue
        key = (a_port, z_port)
        if graph.has_edge(a.device_id, z.device_id, key):
            continue
        graph.add_edge(a.device_id, z.device_id, key=key, **_edge_attributes(
            snapshot, key, a_port, z_port, discovered_cost, "discovered"))
        port_links.setdefault(a_port, []).append(key)
        port_links.setdefault(z_port, []).append(key)
    graph.graph["port_links"] = port_links
    graph.graph["edge_ends"] = {k: (u, v) for u, v, k in graph.edges(keys=True)}
    graph.graph["link_by_ports"] = {frozenset((d["a_port_id"], d["z_port_id"])): k
                                    for _, _, k, d in graph.edges(keys=True, data=True)}
    apply_status(graph, port_status, reachability)
    return graph


def edge_data(graph: nx.MultiGraph, key: LinkKey) -> dict | None:
    """The attributes of the edge with this link key, or None if the graph has none."""
    ends = graph.graph["edge_ends"].get(key)
    return None if ends is None else graph.edges[ends[0], ends[1], key]
