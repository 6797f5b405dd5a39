"""The network as it is now: one call that joins inventory, discovery and status.

The topology modules each answer one question: graph.py what is linked to what and whether
it is up, paths.py which way each circuit runs, impact.py which circuits and customers a
failure hits. The alarm pipeline and the portal need all the answers at once and consistent
with each other, so they call `load_topology(conn)` and get a `Topology`:

- its *snapshot* holds the active inventory objects plus the links an operator accepted from
  discovery (store.topology.declared_links): accepted links are declared links, used by
  paths like the inventory's, each with `origin` "accepted" (an accepted link that the files
  also declare is the inventory's, once);
- its *graph* adds what LLDP discovery currently sees (store.topology
  .current_discovered_links): a declared link also seen has edge source "both", a link
  only seen is an edge of its own with source "discovered";
- every node and edge has the status that the latest observations give
  (store.observations.latest_states, through graph.status_inputs);
- its *paths* are every circuit's path on that graph, and its *index* the impact index of
  those paths.

Status moves much more often than the inventory or discovery. `refresh_status(topology,
latest)` applies new observations: it copies the graph, sets the new statuses, recomputes
only the computed paths the changes can move (paths.update_paths: a link down moves the
circuits over it, a link back up only those it offers a path at least as cheap) and updates
the index entries of the circuits whose path moved (impact.reindex). It returns a new
`Topology` and leaves the old one as it was, so a reader holding the old one (a portal
request half-way through a page) never sees a graph and paths that disagree. After an
inventory import, a discovery run or an accepted link, call `load_topology` again::

    with database.pool.connection() as conn:
        topology = load_topology(conn)
    ...
    with database.pool.connection() as conn:
        topology, changed = refresh_status(topology, latest_states(conn))
    for circuit_id in topology.rerouted: ...
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import networkx as nx
import psycopg

from store.observations import latest_states
from store.topology import current_discovered_links
from topology.graph import (
    Element,
    TopologySnapshot,
    apply_status,
    build_graph,
    load_snapshot,
    status_inputs,
)
from topology.impact import ImpactIndex, build_index, reindex
from topology.paths import CircuitPath, compute_paths, update_paths

__all__ = ["Topology", "load_topology", "refresh_status", "topology_from"]

# (object id, kind) -> latest state, as store.observations.latest_states returns it.
LatestStates = Mapping[tuple[int, str], str]


@dataclass(frozen=True)
class Topology:
    """The network at one moment: see the module docstring. Treat every part as read-only
    (the graph is a networkx graph and could be changed in place: do not);
    `refresh_status` makes a new Topology rather than changing this one.

    `discovered`: the discovered port pairs the graph was built with; `latest`: the
    observations its statuses come from; `rerouted`: the circuits whose path differs from
    the Topology this one was refreshed from (empty for a freshly loaded one)."""

    snapshot: TopologySnapshot
    graph: nx.MultiGraph
    paths: Mapping[int, CircuitPath]
    index: ImpactIndex
    discovered: tuple[tuple[int, int], ...] = ()
    latest: LatestStates = field(default_factory=dict)
    rerouted: frozenset[int] = frozenset()


def topology_from(
    snapshot: TopologySnapshot,
    discovered: tuple[tuple[int, int], ...] = (),
    latest: LatestStates | None = None,
) -> Topology:
    """A Topology from parts already at hand (no database): graph, paths and index built."""
    latest = dict(latest or {})
    port_status, reachability = status_inputs(latest)
    graph = build_graph(snapshot, discovered=discovered, port_status=port_status,
                        reachability=reachability)
    paths = compute_paths(graph, snapshot)
    return Topology(snapshot, graph, paths, build_index(graph, snapshot, paths),
                    tuple(discovered), latest)


def load_topology(conn: psycopg.Connection) -> Topology:
    """The network as it is now, from the store: active inventory plus accepted links,
    current discovered links, latest observed statuses; paths and impact index computed."""
    snapshot = load_snapshot(conn, accepted=True)
    discovered = tuple(link.port_ids for link in current_discovered_links(conn))
    return topology_from(snapshot, discovered, latest_states(conn))


def refresh_status(
    topology: Topology, latest: LatestStates,
) -> tuple[Topology, dict[Element, tuple[str | None, str]]]:
    """Apply new observations: (the new Topology, what changed status: element -> (old
    status, new status), devices and links). `latest` is the whole of
    store.observations.latest_states(), not only what is new: an object missing from it
    has status "unknown". With no status change, the same Topology is returned."""
    graph = topology.graph.copy()  # new attribute dicts: the old topology's stay as they are
    port_status, reachability = status_inputs(latest)
    changes = apply_status(graph, port_status, reachability)
    if not changes:
        return topology, {}
    paths, redone = update_paths(graph, topology.snapshot, topology.paths, changes)
    moved = frozenset(c for c in redone if paths[c] != topology.paths.get(c))
    index = reindex(topology.index, paths, moved) if moved else topology.index
    return replace(topology, graph=graph, paths=paths, index=index, latest=dict(latest),
                   rerouted=moved), changes
