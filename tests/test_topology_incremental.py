"""Incremental path recomputation equals a full one: random link and device up/down
sequences on generated networks, `update_paths` after each step against `compute_paths`.

The networks are small and full of equal-cost alternatives (costs 1-3, parallel links,
chords), so that Dijkstra's tie-breaking is exercised: a recomputation that skipped a
circuit whose path a full run would change, even among equal-cost paths, shows up as a
difference. Some devices are left isolated, so circuits with no route exist and must come
back when a link to them does.
"""

from __future__ import annotations

import itertools
import random

import pytest

from topology.graph import (
    DOWN,
    LINK,
    SnapCircuit,
    SnapCustomer,
    SnapDevice,
    SnapHop,
    SnapLink,
    SnapPort,
    TopologySnapshot,
    apply_status,
    build_graph,
)
from topology.paths import compute_paths, update_paths


def generated(seed: int, devices: int = 30, links: int = 55, circuits: int = 150
              ) -> TopologySnapshot:
    rng = random.Random(seed)
    ids = iter(range(1, 10**6))
    snap = TopologySnapshot()
    customer = next(ids)
    snap.customers[customer] = SnapCustomer(customer, "c", "C")
    nodes = []
    for i in range(devices):
        device_id = next(ids)
        snap.devices[device_id] = SnapDevice(device_id, f"d{i}", "P", None)
        nodes.append(device_id)

    def port(device_id: int) -> int:
        port_id = next(ids)
        snap.ports[port_id] = SnapPort(port_id, device_id, f"if{port_id}", 10**9)
        return port_id

    def link(a: int, z: int, cost: int) -> None:
        link_id = next(ids)
        snap.links[link_id] = SnapLink(link_id, f"l{link_id}", port(a), port(z), cost)

    connected = nodes[:-2]  # the last two devices start with no link at all
    for a, z in itertools.pairwise(connected):
        link(a, z, rng.choice((1, 2, 3)))
    for _ in range(links - len(connected) + 1):
        a, z = rng.sample(connected, 2)
        link(a, z, rng.choice((1, 2, 3)))
    for _ in range(4):  # parallel links, some as cheap as their twin
        existing = rng.choice(list(snap.links.values()))
        link(snap.ports[existing.a_port_id].device_id, snap.ports[existing.z_port_id].device_id,
             existing.cost + rng.choice((0, 0, 1)))
    link(nodes[-1], nodes[-2], 1)  # an island of two...
    link(nodes[-2], nodes[0], 2)  # ...joined by a link that the test starts down
    for i in range(circuits):
        a, z = rng.sample(nodes, 2)
        circuit_id = next(ids)
        hops: tuple[SnapHop, ...] = ()
        if i == 0:  # one declared path, which status never moves
            first = next(iter(snap.links.values()))
            a_dev, z_dev = (snap.ports[first.a_port_id].device_id,
                            snap.ports[first.z_port_id].device_id)
            a_end, z_end = port(a_dev), port(z_dev)
            hops = (SnapHop(a_dev, a_end, first.a_port_id), SnapHop(z_dev, first.z_port_id, z_end))
            snap.circuits[circuit_id] = SnapCircuit(circuit_id, f"C{i}", customer, "e_line",
                                                    10**6, a_end, z_end, hops)
            continue
        snap.circuits[circuit_id] = SnapCircuit(circuit_id, f"C{i}", customer, "e_line", 10**6,
                                                port(a), port(z), hops)
    return snap


@pytest.mark.parametrize("seed", range(6))
def test_incremental_equals_full_on_random_up_down_sequences(seed: int) -> None:
    rng = random.Random(1000 + seed)
    snap = generated(seed)
    link_ports = [link.a_port_id for link in snap.links.values()]
    joining = list(snap.links.values())[-1].a_port_id  # the link to the island: down first
    port_status = {p: "up" for p in snap.ports} | {joining: "down"}
    reachability = {d: "reachable" for d in snap.devices}
    graph = build_graph(snap, port_status=port_status, reachability=reachability)
    paths = compute_paths(graph, snap)
    assert any(not p.valid for p in paths.values())  # circuits to the island: no route
    computed = sum(not c.hops for c in snap.circuits.values())
    gained_steps = recomputed_on_gain = 0
    for _ in range(80):
        roll = rng.random()
        if roll < 0.75:  # one link flips
            port_id = rng.choice(link_ports)
            port_status[port_id] = "down" if port_status[port_id] == "up" else "up"
        elif roll < 0.9:  # a device flips
            device = rng.choice(list(snap.devices))
            reachability[device] = ("unreachable" if reachability[device] == "reachable"
                                    else "reachable")
        else:  # several links at once, some down and some up
            for port_id in rng.sample(link_ports, 4):
                port_status[port_id] = rng.choice(("up", "down", "dormant"))
        changes = apply_status(graph, port_status, reachability)
        incremental, redone = update_paths(graph, snap, paths, changes)
        full = compute_paths(graph, snap)
        assert incremental == full, f"seed {seed}: incremental differs from full recompute"
        if any(e.kind == LINK and old == DOWN and new != DOWN
               for e, (old, new) in changes.items()):
            gained_steps += 1
            recomputed_on_gain += len(redone)
        paths = incremental
    # the point of it: a link coming back recomputes far fewer than every computed path
    assert gained_steps and recomputed_on_gain < 0.6 * gained_steps * computed


def test_a_restored_parallel_link_of_equal_cost_is_taken_as_a_full_run_would() -> None:
    snap = generated(7, devices=8, links=10, circuits=40)
    graph = build_graph(snap, port_status={p: "up" for p in snap.ports})
    paths = compute_paths(graph, snap)
    for link in snap.links.values():
        down = {p: "up" for p in snap.ports} | {link.a_port_id: "down"}
        changes = apply_status(graph, down)
        after, _ = update_paths(graph, snap, paths, changes)
        assert after == compute_paths(graph, snap)
        changes = apply_status(graph, {p: "up" for p in snap.ports})
        again, _ = update_paths(graph, snap, after, changes)
        assert again == paths
