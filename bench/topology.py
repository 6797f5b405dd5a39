"""Topology benchmark: graph, circuit paths, impact index and queries on a generated network.

The network is generated (deterministic seed): a core of P routers in a ring with random
chords, PE routers each homed to two P routers, and CE routers at customers' sites homed to
one PE (some to two). Circuits join two CEs of one customer; a share of them declare their
path (the computed one, declared hop by hop) so that validation is measured too. Every port
is up. Figures are medians over `--rounds` rounds; peak memory is measured in a separate
pass under tracemalloc (it slows the code down, so it is not timed), and the process's
maximum resident size is printed at the end.

    python bench/topology.py                      # 2,000 devices, 10,000 circuits
    python bench/topology.py --devices 500 --circuits 2000 --rounds 5
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path, and this file is named like
# the package it measures: take the folder off so that `topology` is the package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # tests/ (the textbook cover) is not an installed package
    sys.path.insert(0, str(ROOT))

from topology.graph import (  # noqa: E402
    Element,
    SnapCircuit,
    SnapCustomer,
    SnapDevice,
    SnapHop,
    SnapLink,
    SnapPort,
    SnapSite,
    TopologySnapshot,
    apply_status,
    build_graph,
)
from topology.impact import build_index, impacted, root_causes  # noqa: E402
from topology.paths import compute_paths, update_paths  # noqa: E402


class _Ids:
    def __init__(self) -> None:
        self.next = 1

    def __call__(self) -> int:
        self.next += 1
        return self.next - 1


def generate(devices: int, circuits: int, declared_share: float, seed: int) -> TopologySnapshot:
    """A network of about `devices` devices (2 % P, 8 % PE, the rest CE) and `circuits`
    circuits between CEs of one customer (6 sites each)."""
    rng = random.Random(seed)
    new_id = _Ids()
    snap = TopologySnapshot()
    n_p, n_pe = max(4, devices // 50), max(4, devices // 12)
    n_ce = devices - n_p - n_pe
    pop = new_id()
    snap.sites[pop] = SnapSite(pop, "pop", "POP", None)

    def device(key: str, role: str, site: int) -> int:
        device_id = new_id()
        snap.devices[device_id] = SnapDevice(device_id, key, role, site)
        return device_id

    def port(device_id: int, speed_bps: int) -> int:
        port_id = new_id()
        snap.ports[port_id] = SnapPort(port_id, device_id, f"if{port_id}", speed_bps)
        return port_id

    def link(a: int, z: int, speed_bps: int, cost: int) -> None:
        link_id = new_id()
        a_port, z_port = port(a, speed_bps), port(z, speed_bps)
        snap.links[link_id] = SnapLink(link_id, f"l{link_id}", a_port, z_port, cost)

    ps = [device(f"p{i}", "P", pop) for i in range(n_p)]
    for i, p in enumerate(ps):
        link(p, ps[(i + 1) % n_p], 100 * 10**9, 10)
    for _ in range(n_p):
        a, z = rng.sample(ps, 2)
        link(a, z, 100 * 10**9, rng.choice((20, 30, 50)))
    pes = [device(f"pe{i}", "PE", pop) for i in range(n_pe)]
    for pe in pes:
        first, second = rng.sample(ps, 2)
        link(pe, first, 10 * 10**9, 10)
        link(pe, second, 10 * 10**9, 20)
    ces_of: dict[int, list[int]] = {}
    for i in range(n_ce):
        customer_index = i // 6
        if i % 6 == 0:
            customer_id = new_id()
            snap.customers[customer_id] = SnapCustomer(customer_id, f"c{customer_index}",
                                                       f"Customer {customer_index}")
            ces_of[customer_id] = []
        site = new_id()
        snap.sites[site] = SnapSite(site, f"s{i}", f"Site {i}", customer_id)
        ce = device(f"ce{i}", "CE", site)
        ces_of[customer_id].append(ce)
        for pe in rng.sample(pes, 2 if rng.random() < 0.2 else 1):
            link(ce, pe, 10**9, 10)
    customers = list(ces_of)
    for i in range(circuits):
        customer_id = rng.choice(customers)
        a, z = rng.sample(ces_of[customer_id], 2) if len(ces_of[customer_id]) > 1 else (
            ces_of[customer_id][0], ces_of[customer_id][0])
        circuit_id = new_id()
        snap.circuits[circuit_id] = SnapCircuit(circuit_id, f"C{i}", customer_id, "e_line",
                                                10**8, port(a, 10**9), port(z, 10**9), ())
    # declare a share of the circuits on the path they would be computed on
    graph = build_graph(snap)
    paths = compute_paths(graph, snap)
    for circuit_id in rng.sample(list(snap.circuits), int(circuits * declared_share)):
        hops = tuple(SnapHop(h.device_id, h.in_port_id, h.out_port_id)
                     for h in paths[circuit_id].hops)
        snap.circuits[circuit_id] = replace(snap.circuits[circuit_id], hops=hops)
    return snap


def timed(rounds: int, action: Callable[[], Any]) -> tuple[float, Any]:
    """Median seconds of `rounds` runs of `action`, and its last result."""
    times, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--storm", type=int, default=500,
                        help="unrelated port faults of the alarm-storm root cause")
    parser.add_argument("--circuits", type=int, default=10_000)
    parser.add_argument("--declared-share", type=float, default=0.3,
                        help="share of circuits with a declared path (default 0.3)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    snap = generate(args.devices, args.circuits, args.declared_share, args.seed)
    print(f"network: {len(snap.devices)} devices, {len(snap.ports)} ports, "
          f"{len(snap.links)} links, {len(snap.circuits)} circuits "
          f"({sum(bool(c.hops) for c in snap.circuits.values())} declared), "
          f"{len(snap.customers)} customers; generated in {time.perf_counter() - started:.1f} s")
    port_status = {p: "up" for p in snap.ports}
    reachability = {d: "reachable" for d in snap.devices}

    def build():
        return build_graph(snap, port_status=port_status, reachability=reachability)

    t_graph, graph = timed(args.rounds, build)
    t_paths, paths = timed(args.rounds, lambda: compute_paths(graph, snap))
    invalid = sum(not p.valid for p in paths.values())
    t_index, index = timed(args.rounds, lambda: build_index(graph, snap, paths))

    # the busiest P router goes down
    p_router = max((d for d in snap.devices.values() if d.role == "P"),
                   key=lambda d: len(index.users.get(Element("device", d.id), ())))
    failed = Element("device", p_router.id)
    t_impact, impact = timed(args.rounds, lambda: impacted(index, [failed]))
    neighbour_ports = {
        Element("port", data["a_port_id"] if data["z_device_id"] == p_router.id
                else data["z_port_id"]) for _, _, data in graph.edges(p_router.id, data=True)}
    symptoms = ({failed} | neighbour_ports
                | {Element("circuit", c) for c in impact.circuits})
    t_root, causes = timed(args.rounds, lambda: root_causes(index, symptoms))

    # an alarm storm of unrelated faults: the access ports of `--storm` circuits' A ends
    # down (each its own cause), against the textbook greedy cover that recounts every
    # candidate's gain every round (topology.impact.greedy_cover is the lazy one)
    import topology.impact as impact_module
    from tests.test_topology_impact import naive_greedy_cover

    storm = {Element("port", circuit.a_port_id)
             for circuit in list(snap.circuits.values())[:args.storm]}
    t_storm, storm_causes = timed(args.rounds, lambda: root_causes(index, storm))
    lazy = impact_module.greedy_cover
    impact_module.greedy_cover = naive_greedy_cover
    try:
        t_storm_naive, naive_causes = timed(args.rounds, lambda: root_causes(index, storm))
    finally:
        impact_module.greedy_cover = lazy
    assert naive_causes == storm_causes

    # incremental recomputation: one core link down, then up again
    core_key = next(k for _, _, k, d in graph.edges(p_router.id, keys=True, data=True))
    core = graph.graph["edge_ends"][core_key]
    core_data = graph.edges[core[0], core[1], core_key]

    def flap() -> tuple[int, int]:
        down = port_status | {core_data["a_port_id"]: "down"}
        after, redone_down = update_paths(graph, snap, paths, apply_status(graph, down,
                                                                           reachability))
        _, redone_up = update_paths(graph, snap, after,
                                    apply_status(graph, port_status, reachability))
        return len(redone_down), len(redone_up)

    def link_down_only() -> int:
        down = port_status | {core_data["a_port_id"]: "down"}
        _, redone = update_paths(graph, snap, paths, apply_status(graph, down, reachability))
        apply_status(graph, port_status, reachability)
        return len(redone)

    t_down, redone_down = timed(args.rounds, link_down_only)
    t_flap, (_, redone_up) = timed(args.rounds, flap)

    print(f"build graph:            {t_graph * 1000:9.1f} ms")
    print(f"compute all paths:      {t_paths * 1000:9.1f} ms  ({invalid} invalid)")
    print(f"build impact index:     {t_index * 1000:9.1f} ms  ({len(index.users)} elements)")
    print(f"impact of {p_router.key} down:  {t_impact * 1000:9.3f} ms  "
          f"({len(impact.circuits)} circuits, {len(impact.customers)} customers)")
    print(f"root cause of it:       {t_root * 1000:9.1f} ms  ({len(symptoms)} symptoms -> "
          f"{', '.join(sorted(str(c) for c in causes.causes))})")
    print(f"root cause of a storm:  {t_storm * 1000:9.1f} ms  ({len(storm)} unrelated port "
          f"faults -> {len(storm_causes.causes)} causes; the textbook greedy cover: "
          f"{t_storm_naive * 1000:.1f} ms, {t_storm_naive / t_storm:.1f}x)")
    print(f"a core link down:       {t_down * 1000:9.1f} ms  (status + {redone_down} paths "
          "recomputed)")
    computed = sum(not c.hops for c in snap.circuits.values())
    print(f"...down and up again:   {t_flap * 1000:9.1f} ms  (coming up recomputes "
          f"{redone_up} of {computed} computed paths)")

    tracemalloc.start()
    graph = build()
    paths = compute_paths(graph, snap)
    index = build_index(graph, snap, paths)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(f"peak traced memory (graph + paths + index): {peak / 2**20:.1f} MiB; "
          f"process max RSS {max_rss / 1024:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
