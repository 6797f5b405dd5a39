"""The topology graph: snapshot from the store and from an Inventory, edges, discovery, status.

`tiny_inventory` and `example_snapshot` are shared by the other test_topology_* modules.
"""

from __future__ import annotations

from datetime import UTC, datetime
from ipaddress import IPv4Address

import pytest

from config.inventory.loader import load_inventory
from config.inventory.model import (
    Circuit,
    Customer,
    Device,
    Hop,
    Inventory,
    Link,
    Port,
    PortRef,
    Site,
    Source,
    Vpn,
)
from keyline.wiring import EXAMPLE_INVENTORY
from store.inventory import apply_inventory
from store.observations import latest_states
from topology.graph import (
    DEGRADED,
    DOWN,
    UNKNOWN,
    UP,
    Element,
    TopologySnapshot,
    apply_status,
    build_graph,
    edge_data,
    edge_status,
    load_snapshot,
    snapshot_from_inventory,
    status_inputs,
)

HERE = Source("test.yaml", 1)

# The tiny network: two customers (acme at two sites, beta at one), PE1 and PE2 each homed
# to P1 and P2, and two parallel links between P1 and PE2 (cost 10 and 20).
TINY_DEVICES = {
    # key: (role, site, ports)
    "ce-a1": ("CE", "acme-a", ("g0", "g8", "g9")),
    "ce-a2": ("CE", "acme-b", ("g0", "g8", "g9")),
    "ce-b1": ("CE", "beta-a", ("g0", "g9")),
    "pe1": ("PE", "pop", ("g1", "g2", "up1", "up2")),
    "pe2": ("PE", "pop", ("g1", "up1", "up2", "up3", "inet")),
    "p1": ("P", "pop", ("d1", "d2", "d3")),
    "p2": ("P", "pop", ("d1", "d2")),
}
TINY_LINKS = (
    ("ce-a1:g0", "pe1:g1", 10), ("ce-b1:g0", "pe1:g2", 10), ("pe1:up1", "p1:d1", 10),
    ("pe1:up2", "p2:d1", 30), ("p1:d2", "pe2:up1", 10), ("p1:d3", "pe2:up3", 20),
    ("p2:d2", "pe2:up2", 10), ("ce-a2:g0", "pe2:g1", 10),
)
VIA_P2 = (("ce-a1", "g8", "g0"), ("pe1", "g1", "up2"), ("p2", "d1", "d2"),
          ("pe2", "up2", "g1"), ("ce-a2", "g0", "g8"))
BROKEN = (("ce-a1", "g8", "g0"), ("pe1", "g1", "up1"), ("p2", "d1", "d2"),  # pe1:up1 is to p1
          ("pe2", "up2", "g1"), ("ce-a2", "g0", "g8"))
TINY_CIRCUITS = (
    # key, customer, a end, z end, declared path
    ("ACME-1", "acme", "ce-a1:g9", "ce-a2:g9", ()),
    ("ACME-2", "acme", "ce-a1:g8", "ce-a2:g8", VIA_P2),
    ("ACME-3", "acme", "ce-a1:g8", "ce-a2:g8", BROKEN),
    ("BETA-1", "beta", "ce-b1:g9", "pe2:inet", ()),
)


def ref(text: str) -> PortRef:
    device, port = text.split(":")
    return PortRef(device, port)


def tiny_inventory(circuits=TINY_CIRCUITS, links=TINY_LINKS) -> Inventory:
    inventory = Inventory()
    for key in ("acme", "beta"):
        inventory.customers[key] = Customer(key, key.title(), None, None, HERE)
    for key, customer in (("pop", None), ("acme-a", "acme"), ("acme-b", "acme"),
                          ("beta-a", "beta")):
        inventory.sites[key] = Site(key, key.upper(), customer, None, None, HERE)
    for n, (key, (role, site, ports)) in enumerate(TINY_DEVICES.items(), 1):
        inventory.devices[key] = Device(
            key, site, role, "cisco_ios", IPv4Address(f"127.0.9.{n}"), "snmp", None, "default",
            161, tuple(Port(key, name, i, 10**10 if role != "CE" else 10**9, None, HERE)
                       for i, name in enumerate(ports, 1)), HERE)
    for a, z, cost in links:
        link = Link(ref(a), ref(z), cost, HERE)
        inventory.links[link.key] = link
    for key, customer, a, z, path in circuits:
        hops = tuple(Hop(device, in_port, out_port, HERE) for device, in_port, out_port in path)
        inventory.circuits[key] = Circuit(key, customer, "e_line", 10**8, ref(a), ref(z), hops,
                                          None, None, None, HERE)
    if {"ACME-1", "ACME-2"} <= set(inventory.circuits):
        inventory.vpns["acme-vpn"] = Vpn("acme-vpn", "acme", "Acme VPN", ("acme-a", "acme-b"),
                                         ("ACME-1", "ACME-2"), HERE)
    return inventory


@pytest.fixture(scope="session")
def example_inventory() -> Inventory:
    return load_inventory([EXAMPLE_INVENTORY])


def example_snapshot(db, inventory: Inventory) -> TopologySnapshot:
    """The example inventory imported into the test's database and loaded back."""
    with db.pool.connection() as conn:
        apply_inventory(conn, inventory)
        return load_snapshot(conn)


def test_load_snapshot_of_the_example(db, example_inventory):
    snapshot = example_snapshot(db, example_inventory)
    assert (len(snapshot.devices), len(snapshot.links), len(snapshot.circuits),
            len(snapshot.vpns), len(snapshot.customers)) == (18, 27, 22, 4, 3)
    assert len(snapshot.ports) == len(example_inventory.ports)
    declared = {c.key: len(c.path) for c in example_inventory.circuits.values()}
    assert {c.key: len(c.hops) for c in snapshot.circuits.values()} == declared
    # hop order is the declared order
    circuit = next(c for c in snapshot.circuits.values() if c.key == "HSB-L3VPN-0001")
    assert [snapshot.devices[h.device_id].key for h in circuit.hops] == [
        "ce-hsbank-sh-hq", "pe-sh1", "p-sh1", "p-bj1", "pe-bj1", "ce-hsbank-bj-dc"]
    vpn = next(v for v in snapshot.vpns.values() if v.key == "hsbank-branch")
    assert sorted(snapshot.circuits[c].key for c in vpn.circuit_ids) == [
        "HSB-L3VPN-0002", "HSB-L3VPN-0003"]
    assert len(vpn.site_ids) == 3
    # the store's snapshot and the inventory's describe the same network
    other = snapshot_from_inventory(example_inventory)
    assert sorted(d.key for d in other.devices.values()) == sorted(
        d.key for d in snapshot.devices.values())
    assert sorted(link.key for link in other.links.values()) == sorted(
        link.key for link in snapshot.links.values())


def test_load_snapshot_leaves_retired_objects_out(db, example_inventory):
    with db.pool.connection() as conn:
        apply_inventory(conn, example_inventory)
        conn.execute("UPDATE links SET retired_at = now() WHERE key LIKE %s",
                     ["ce-xinhe-gz-store:%"])
        conn.execute("UPDATE circuits SET retired_at = now() WHERE key = 'XH-INET-0003'")
        snapshot = load_snapshot(conn)
    assert len(snapshot.links) == 26
    assert "XH-INET-0003" not in snapshot.ids("circuits")
    vpn = next(v for v in snapshot.vpns.values() if v.key == "xinhe-pos")
    assert len(vpn.circuit_ids) == 3


def test_graph_of_the_example(db, example_inventory):
    snapshot = example_snapshot(db, example_inventory)
    graph = build_graph(snapshot)
    assert graph.number_of_nodes() == 18 and graph.number_of_edges() == 27
    devices, customers = snapshot.ids("devices"), snapshot.ids("customers")
    ce = graph.nodes[devices["ce-jinlu-gz-hub"]]
    assert (ce["key"], ce["role"], ce["customer"]) == ("ce-jinlu-gz-hub", "CE",
                                                       customers["jinlu"])
    assert graph.nodes[devices["p-sh1"]]["customer"] is None
    assert graph.nodes[devices["p-sh1"]]["site"] == snapshot.ids("sites")["pop-sh-lujiazui"]
    links = snapshot.ids("links")
    trunk = edge_data(graph, links["p-sh1:Eth-Trunk1--p-sh2:Port-channel1"])
    assert trunk["capacity_bps"] == 20 * 10**9 and trunk["cost"] == 10
    assert (trunk["a_port_name"], trunk["z_port_name"]) == ("Eth-Trunk1", "Port-channel1")
    access = edge_data(graph, links["ce-hsbank-sh-hq:GigabitEthernet0/0/0--pe-sh1:"
                                   "GigabitEthernet0/0/0"])
    assert access["capacity_bps"] == 10**9  # min of the two ports (both 1G here)
    assert {d["source"] for _, _, d in graph.edges(data=True)} == {"declared"}
    assert {d["status"] for _, _, d in graph.edges(data=True)} == {UNKNOWN}


def test_capacity_is_the_slower_port_and_parallel_links_are_kept():
    snapshot = snapshot_from_inventory(tiny_inventory())
    graph = build_graph(snapshot)
    devices = snapshot.ids("devices")
    assert graph.number_of_edges(devices["p1"], devices["pe2"]) == 2
    access = edge_data(graph, snapshot.ids("links")["ce-a1:g0--pe1:g1"])
    assert access["capacity_bps"] == 10**9  # CE port 1G, PE port 10G


def test_discovered_links():
    snapshot = snapshot_from_inventory(tiny_inventory())
    ports, links = snapshot.ids("ports"), snapshot.ids("links")
    graph = build_graph(snapshot, discovered=[
        (ports["p1:d1"], ports["pe1:up1"]),  # a declared link, seen from the other side
        (ports["p2:d1"], ports["ce-b1:g9"]),  # a cable nobody declared
        (ports["p2:d1"], 999_999),  # a port the inventory does not know: ignored
    ], discovered_cost=99)
    assert edge_data(graph, links["p1:d1--pe1:up1"])["source"] == "both"
    new_key = tuple(sorted((ports["p2:d1"], ports["ce-b1:g9"])))
    new = edge_data(graph, new_key)
    assert new is not None and new["source"] == "discovered" and new["cost"] == 99
    assert new["link_id"] is None
    assert graph.number_of_edges() == len(TINY_LINKS) + 1


@pytest.mark.parametrize(("a", "z", "a_device", "expected"), [
    ("up", "up", UP, UP),
    ("up", "down", UP, DOWN),
    ("lowerLayerDown", "up", UP, DOWN),
    ("up", None, UP, UNKNOWN),
    ("up", "dormant", UP, DEGRADED),
    ("up", "up", DOWN, DOWN),  # an unreachable device takes its links down
    ("up", "up", UNKNOWN, UP),
])
def test_edge_status(a, z, a_device, expected):
    assert edge_status(a, z, a_device, UP) == expected


def test_status_from_observations_in_the_store(db, example_inventory):
    snapshot = example_snapshot(db, example_inventory)
    ports, devices, links = snapshot.ids("ports"), snapshot.ids("devices"), snapshot.ids("links")
    now = datetime.now(UTC)
    rows = [(ports["p-sh1:Eth-Trunk1"], "oper_status", "down"),
            (ports["p-sh2:Port-channel1"], "oper_status", "up"),
            (ports["pe-sh1:XGigabitEthernet0/1/0"], "oper_status", "up"),
            (ports["p-sh1:XGigabitEthernet0/1/1"], "oper_status", "up"),
            (devices["ce-xinhe-bj-dc"], "reachability", "unreachable")]
    with db.pool.connection() as conn:
        for object_id, kind, new in rows:
            conn.execute("INSERT INTO observations (time, object_id, kind, old, new, source,"
                         " detail) VALUES (%s, %s, %s, NULL, %s, 'poll', '{}')",
                         [now, object_id, kind, new])
        port_status, reachability = status_inputs(latest_states(conn))
    graph = build_graph(snapshot, port_status=port_status, reachability=reachability)
    assert edge_data(graph, links["p-sh1:Eth-Trunk1--p-sh2:Port-channel1"])["status"] == DOWN
    assert edge_data(graph, links["p-sh1:XGigabitEthernet0/1/1--pe-sh1:XGigabitEthernet0/1/0"]
                     )["status"] == UP
    assert edge_data(graph, links["ce-xinhe-bj-dc:GigabitEthernet0/0/0--pe-bj1:"
                                  "GigabitEthernet0/0/2"])["status"] == DOWN
    assert graph.nodes[devices["ce-xinhe-bj-dc"]]["status"] == DOWN
    # a change of status reports exactly what changed
    port_status[ports["p-sh1:Eth-Trunk1"]] = "up"
    changes = apply_status(graph, port_status, reachability)
    assert changes == {Element("link", links["p-sh1:Eth-Trunk1--p-sh2:Port-channel1"]):
                       (DOWN, UP)}
