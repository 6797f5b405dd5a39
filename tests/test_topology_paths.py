"""Circuit paths: declared paths validated (and reported, not replaced), computed paths
shortest by link cost over links that are up, incremental recomputation."""

from __future__ import annotations

import networkx as nx
import pytest

from config.inventory.loader import load_inventory
from config.inventory.model import Inventory
from keyline.wiring import EXAMPLE_INVENTORY
from tests.test_topology_graph import VIA_P2, example_snapshot, tiny_inventory
from topology.graph import (
    Element,
    apply_status,
    build_graph,
    load_snapshot,
    snapshot_from_inventory,
)
from topology.paths import compute_paths, update_paths


@pytest.fixture(scope="module")
def example_inventory() -> Inventory:
    return load_inventory([EXAMPLE_INVENTORY])


def by_key(snapshot, paths):
    return {snapshot.circuits[c].key: p for c, p in paths.items()}


def device_keys(snapshot, path):
    return [snapshot.devices[h.device_id].key for h in path.hops]


def assert_joined(graph, snapshot, circuit, path):
    """Independent structural check: ends on the end ports, consecutive hops joined by the
    link the hop names, between the right ports."""
    assert path.hops[0].in_port_id == circuit.a_port_id
    assert path.hops[-1].out_port_id == circuit.z_port_id
    for before, after in zip(path.hops, path.hops[1:], strict=False):
        ends = {snapshot.ports[p].id for p in (before.out_port_id, after.in_port_id)}
        link = snapshot.links.get(after.link_id)
        assert link is not None and {link.a_port_id, link.z_port_id} == ends


def test_declared_paths_of_the_example_are_valid(db, example_inventory):
    snapshot = example_snapshot(db, example_inventory)
    graph = build_graph(snapshot)
    paths = by_key(snapshot, compute_paths(graph, snapshot))
    declared = {c.key for c in example_inventory.circuits.values() if c.path}
    assert {k for k, p in paths.items() if p.declared} == declared
    assert all(paths[k].valid and not paths[k].problems for k in declared)
    path = paths["HSB-L3VPN-0001"]
    assert device_keys(snapshot, path) == ["ce-hsbank-sh-hq", "pe-sh1", "p-sh1", "p-bj1",
                                           "pe-bj1", "ce-hsbank-bj-dc"]
    assert path.hops[0].link_id is None
    assert path.cost_total == 10 + 10 + 30 + 10 + 10
    for circuit in snapshot.circuits.values():
        assert_joined(graph, snapshot, circuit, paths[circuit.key])


def test_computed_paths_are_shortest_by_cost(db, example_inventory):
    snapshot = example_snapshot(db, example_inventory)
    graph = build_graph(snapshot)
    paths = by_key(snapshot, compute_paths(graph, snapshot))
    # an independent reference: Dijkstra over a plain graph of the snapshot's links
    reference = nx.Graph()
    for link in snapshot.links.values():
        u, v = (snapshot.ports[link.a_port_id].device_id,
                snapshot.ports[link.z_port_id].device_id)
        if not reference.has_edge(u, v) or reference.edges[u, v]["w"] > link.cost:
            reference.add_edge(u, v, w=link.cost)
    computed = [c for c in snapshot.circuits.values() if not c.hops]
    assert len(computed) == 12
    for circuit in computed:
        path = paths[circuit.key]
        assert path.valid and not path.declared
        a, z = (snapshot.ports[circuit.a_port_id].device_id,
                snapshot.ports[circuit.z_port_id].device_id)
        assert path.cost_total == nx.dijkstra_path_length(reference, a, z, weight="w")
        assert_joined(graph, snapshot, circuit, path)
    assert device_keys(snapshot, paths["HSB-L3VPN-0003"]) == [
        "ce-hsbank-bj-dc", "pe-bj1", "p-sh1", "p-sh2", "pe-gz1", "ce-hsbank-gz-br"]
    assert device_keys(snapshot, paths["XH-INET-0001"]) == ["ce-xinhe-sh-hq", "pe-sh1"]


def test_the_paths_of_some_circuits_are_those_of_the_whole_computation(db, example_inventory):
    """An alarm's "what changed?" routes only its circuits: a declared one and a computed
    one give what the whole network's computation gives; unknown ids are left out."""
    snapshot = example_snapshot(db, example_inventory)
    graph = build_graph(snapshot)
    every = compute_paths(graph, snapshot, ignore_status=True)
    declared = next(c.id for c in snapshot.circuits.values() if c.hops)
    computed = next(c.id for c in snapshot.circuits.values() if not c.hops)
    some = compute_paths(graph, snapshot, ignore_status=True,
                         circuit_ids=[declared, computed, -1])
    assert some == {declared: every[declared], computed: every[computed]}


def test_broken_declared_path_is_reported_with_its_hop():
    snapshot = snapshot_from_inventory(tiny_inventory())
    paths = by_key(snapshot, compute_paths(build_graph(snapshot), snapshot))
    broken = paths["ACME-3"]
    assert broken.declared and not broken.valid
    assert len(broken.problems) == 1
    assert broken.problems[0].startswith("hop 3 (p2): no link joins hop 2 (pe1)'s out_port "
                                         "pe1:up1 to this hop's in_port p2:d1")
    # reported, not replaced: the declared hops are still what the path says
    assert device_keys(snapshot, broken) == ["ce-a1", "pe1", "p2", "pe2", "ce-a2"]
    assert broken.cost_total is None
    assert paths["ACME-2"].valid and paths["ACME-2"].cost_total == 60


def test_declared_path_broken_by_a_retired_link(db, example_inventory):
    with db.pool.connection() as conn:
        example_snapshot(db, example_inventory)
        conn.execute("UPDATE links SET retired_at = now() WHERE key = %s",
                     ["p-bj1:Eth-Trunk2--p-sh1:Eth-Trunk2"])
        snapshot = load_snapshot(conn)
    paths = by_key(snapshot, compute_paths(build_graph(snapshot), snapshot))
    path = paths["HSB-L3VPN-0001"]
    assert not path.valid and path.declared
    assert path.problems == ("hop 4 (p-bj1): no link joins hop 3 (p-sh1)'s out_port "
                             "p-sh1:Eth-Trunk2 to this hop's in_port p-bj1:Eth-Trunk2",)
    assert path.hops[3].link_id is None
    # the other declared path over that link is reported too; computed paths route around it
    assert {k for k, p in paths.items() if not p.valid} == {"HSB-L3VPN-0001", "XH-L3VPN-0001"}


def test_end_port_must_be_on_the_first_and_last_hop():
    wrong_end = (("ACME-9", "acme", "ce-a2:g9", "ce-a2:g8", VIA_P2),)
    snapshot = snapshot_from_inventory(tiny_inventory(circuits=wrong_end))
    path = next(iter(compute_paths(build_graph(snapshot), snapshot).values()))
    assert not path.valid
    assert path.problems == ("the A end port ce-a2:g9 is not on hop 1 (ce-a1)",)


def test_computed_path_takes_the_cheaper_parallel_link_and_avoids_down_links():
    snapshot = snapshot_from_inventory(tiny_inventory())
    ports, links = snapshot.ids("ports"), snapshot.ids("links")
    graph = build_graph(snapshot)
    paths = by_key(snapshot, compute_paths(graph, snapshot))
    assert device_keys(snapshot, paths["ACME-1"]) == ["ce-a1", "pe1", "p1", "pe2", "ce-a2"]
    assert paths["ACME-1"].hops[3].link_id == links["p1:d2--pe2:up1"]  # cost 10, not 20
    assert paths["ACME-1"].cost_total == 40
    # the cheap parallel link goes down: the other one is taken
    graph = build_graph(snapshot, port_status={ports["p1:d2"]: "down"})
    paths = by_key(snapshot, compute_paths(graph, snapshot))
    assert paths["ACME-1"].hops[3].link_id == links["p1:d3--pe2:up3"]
    assert paths["ACME-1"].cost_total == 50
    # ignoring status, the down link is used again
    ignoring = by_key(snapshot, compute_paths(graph, snapshot, ignore_status=True))
    assert ignoring["ACME-1"].cost_total == 40
    # PE1's uplink to P1 down: ACME-1 goes over P2
    graph = build_graph(snapshot, port_status={ports["pe1:up1"]: "down"})
    paths = by_key(snapshot, compute_paths(graph, snapshot))
    assert device_keys(snapshot, paths["ACME-1"]) == ["ce-a1", "pe1", "p2", "pe2", "ce-a2"]
    # the declared ACME-2 does not move, whatever the status
    assert device_keys(snapshot, paths["ACME-2"]) == ["ce-a1", "pe1", "p2", "pe2", "ce-a2"]


def test_no_route():
    snapshot = snapshot_from_inventory(tiny_inventory())
    devices = snapshot.ids("devices")
    graph = build_graph(snapshot, reachability={devices["pe2"]: "unreachable"})
    paths = by_key(snapshot, compute_paths(graph, snapshot))
    assert not paths["BETA-1"].valid and paths["BETA-1"].hops == ()
    assert paths["BETA-1"].problems == ("no route between the A and Z end devices",)


def test_update_paths_recomputes_only_what_a_change_touches(db, example_inventory):
    snapshot = example_snapshot(db, example_inventory)
    graph = build_graph(snapshot)
    before = compute_paths(graph, snapshot)
    ports, links = snapshot.ids("ports"), snapshot.ids("links")
    core = links["p-sh1:Eth-Trunk1--p-sh2:Port-channel1"]
    users = {c for c, p in before.items() if Element("link", core) in p.elements()}
    assert users  # HSB-L3VPN-0003 and HSB-ELINE-0001 run over it
    status = {ports["p-sh1:Eth-Trunk1"]: "down"}
    changes = apply_status(graph, status)
    after, redone = update_paths(graph, snapshot, before, changes)
    assert redone == users
    assert after == compute_paths(graph, snapshot)
    assert all(Element("link", core) not in after[c].elements() for c in users)
    # the link comes back: only circuits it can carry at no higher cost are reconsidered
    # (those that left it among them), and they return
    changes = apply_status(graph, {ports["p-sh1:Eth-Trunk1"]: "up"})
    again, redone = update_paths(graph, snapshot, after, changes)
    assert users <= redone < {c.id for c in snapshot.circuits.values() if not c.hops}
    assert again == before
