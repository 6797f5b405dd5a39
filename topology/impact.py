"""Impact and root cause: which circuits and customers a failure hits, and which failure
best explains what is seen.

*Impact* looks forward. Every circuit's path uses devices, ports and links; the impact index
inverts that, from each element to the circuits using it, and knows each circuit's customer.
A failed P router then names its circuits and customers at once: `impacted(index, failed)`.
It answers "which circuits run over this element now", from the paths it was built with; a
computed path may reroute afterwards (paths.update_paths, then `reindex` with the circuits
that moved, which touches only their entries).

*Root cause* looks backward. When a P router dies, the NOC does not see one event: it sees
the router stop answering, every neighbour's port facing it go down, and every circuit
through it go down. All of these symptoms have one cause. A failure *explains* a set of
elements: a device down explains itself, all its ports' link-downs, the links touching it,
the far-end ports of those links, and the circuits through it; a port down explains its
link, the far-end port and the circuits over them; a link down explains both its end ports'
link-downs and the circuits over it; a circuit explains only itself. `root_causes` looks for
the smallest set of elements whose explanations together cover every symptom. That is the
set-cover problem (NP-hard), so it is solved greedily: repeatedly take the candidate that
explains the most symptoms not yet explained; on a tie, the one that predicts the fewest
failures that were *not* observed (a device whose other ports are all fine is a worse
explanation than the one link between two down ports), then links before ports before
devices before circuits. Greedy cover is within a factor ln(n) of the optimum and exact on
the usual cases (one device, one link); every symptom is explained, at worst by itself.
The alarm pipeline uses the result to mark the other alarms as symptoms of the cause.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

import networkx as nx

from topology.graph import CIRCUIT, DEVICE, LINK, PORT, Element, LinkKey, TopologySnapshot
from topology.paths import CircuitPath

# Tie-break order of candidate causes: the most specific first.
_KIND_RANK = {LINK: 0, PORT: 1, DEVICE: 2, CIRCUIT: 3}


@dataclass(frozen=True)
class ImpactIndex:
    """Element -> circuits using it, circuit -> customer, and the graph's adjacency that root
    cause needs (ports of a device, links of a port, ports of a link)."""

    users: Mapping[Element, frozenset[int]]
    circuit_customer: Mapping[int, int]
    circuit_elements: Mapping[int, frozenset[Element]]
    port_device: Mapping[int, int]
    device_ports: Mapping[int, tuple[int, ...]]
    port_links: Mapping[int, tuple[LinkKey, ...]]
    link_ports: Mapping[LinkKey, tuple[int, int]]


@dataclass(frozen=True)
class Impact:
    circuits: frozenset[int]
    customers: frozenset[int]


@dataclass(frozen=True)
class RootCauses:
    """The causes found and, for each, the symptoms it explains (each symptom once, under
    the cause that took it first)."""

    causes: frozenset[Element]
    explains: Mapping[Element, frozenset[Element]]


def build_index(graph: nx.MultiGraph, snapshot: TopologySnapshot,
                paths: Mapping[int, CircuitPath]) -> ImpactIndex:
    """The impact index of these paths over this graph."""
    users: dict[Element, set[int]] = defaultdict(set)
    circuit_elements: dict[int, frozenset[Element]] = {}
    for circuit_id, path in paths.items():
        elements = path.elements()
        circuit_elements[circuit_id] = elements
        for element in elements:
            users[element].add(circuit_id)
    device_ports: dict[int, list[int]] = defaultdict(list)
    for port in snapshot.ports.values():
        device_ports[port.device_id].append(port.id)
    link_ports = {k: (d["a_port_id"], d["z_port_id"])
                  for _, _, k, d in graph.edges(keys=True, data=True)}
    return ImpactIndex(
        users={e: frozenset(c) for e, c in users.items()},
        circuit_customer={c.id: c.customer_id for c in snapshot.circuits.values()},
        circuit_elements=circuit_elements,
        port_device={p.id: p.device_id for p in snapshot.ports.values()},
        device_ports={d: tuple(p) for d, p in device_ports.items()},
        port_links={p: tuple(k) for p, k in graph.graph["port_links"].items()},
        link_ports=link_ports,
    )


def impacted(index: ImpactIndex, failed_elements: Iterable[Element]) -> Impact:
    """The circuits whose path uses any failed element, and their customers."""
    circuits: set[int] = set()
    for element in failed_elements:
        circuits.update(index.users.get(element, ()))
    customers = {index.circuit_customer[c] for c in circuits if c in index.circuit_customer}
    return Impact(frozenset(circuits), frozenset(customers))


def explained_by(index: ImpactIndex, cause: Element) -> frozenset[Element]:
    """Every element that fails when `cause` fails (see the module docstring), itself
    included."""
    elements, circuits = _explained(index, cause)
    return frozenset(elements | {Element(CIRCUIT, c) for c in circuits})


def _explained(index: ImpactIndex, cause: Element) -> tuple[set[Element], set[int]]:
    """`explained_by` in two parts: the devices, ports and links (and a circuit cause
    itself), and the ids of the circuits over them. A P router is under hundreds of
    circuits: counting them as ids, not as Elements made for each, is what keeps root cause
    quick when it is one of hundreds of candidates."""
    found = {cause}
    if cause.kind == CIRCUIT:
        return found, set()
    if cause.kind == DEVICE:
        ports = index.device_ports.get(cause.id, ())  # type: ignore[arg-type]
    elif cause.kind == PORT:
        ports = (cause.id,)  # type: ignore[assignment]
    else:
        ports = ()
    links = {key for port in ports for key in index.port_links.get(port, ())}
    if cause.kind == LINK:
        links.add(cause.id)
    for port in ports:
        found.add(Element(PORT, port))
    for key in links:
        found.add(Element(LINK, key))
        found.update(Element(PORT, p) for p in index.link_ports.get(key, ()))
    empty: frozenset[int] = frozenset()
    circuits = set().union(*(index.users.get(element, empty) for element in found))
    return found, circuits


def _candidates(index: ImpactIndex, symptom: Element) -> set[Element]:
    """Elements whose failure would explain `symptom`."""
    found = {symptom}
    if symptom.kind == PORT:
        device = index.port_device.get(symptom.id)  # type: ignore[arg-type]
        if device is not None:
            found.add(Element(DEVICE, device))
        for key in index.port_links.get(symptom.id, ()):  # type: ignore[arg-type]
            found.add(Element(LINK, key))
            for port in index.link_ports.get(key, ()):
                found.add(Element(PORT, port))
                if port in index.port_device:
                    found.add(Element(DEVICE, index.port_device[port]))
    elif symptom.kind == LINK:
        for port in index.link_ports.get(symptom.id, ()):
            found.add(Element(PORT, port))
            if port in index.port_device:
                found.add(Element(DEVICE, index.port_device[port]))
    elif symptom.kind == CIRCUIT:
        found.update(index.circuit_elements.get(symptom.id, ()))  # type: ignore[arg-type]
    return found


def root_causes(index: ImpactIndex, symptoms: Iterable[Element],
                excluded: Iterable[Element] = ()) -> RootCauses:
    """The smallest set of elements (greedy set cover, see the module docstring) whose
    failure explains every symptom. Symptoms are Elements: a port that went link-down, a
    device that is unreachable, a link or a circuit that is down. `excluded` are elements
    known to work (a device that answered its last poll): never a cause, though a symptom
    may still stand for itself."""
    wanted = frozenset(symptoms)
    candidates: set[Element] = set()
    for symptom in wanted:
        candidates |= _candidates(index, symptom)
    candidates -= frozenset(excluded) - wanted
    wanted_circuits = {symptom.id for symptom in wanted if symptom.kind == CIRCUIT}
    covers: dict[Element, frozenset[Element]] = {}
    unobserved: dict[Element, int] = {}
    for candidate in candidates:
        elements, circuits = _explained(index, candidate)
        seen_circuits = circuits & wanted_circuits
        covers[candidate] = frozenset(elements & wanted).union(
            Element(CIRCUIT, c) for c in seen_circuits)
        unobserved[candidate] = (len(elements) + len(circuits)
                                 - len(covers[candidate]))
    chosen = greedy_cover(covers, wanted, lambda c: (
        -unobserved[c], -_KIND_RANK[c.kind], str(c.id)))
    return RootCauses(frozenset(chosen), chosen)


class _Backwards:
    """A text that sorts the other way round, for a min-heap that wants the largest first."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __lt__(self, other: _Backwards) -> bool:
        return self.text > other.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Backwards) and self.text == other.text

    __hash__ = None  # type: ignore[assignment]  # compared, never a key


def greedy_cover(covers: Mapping[Element, frozenset[Element]], wanted: Iterable[Element],
                 tie: Callable[[Element], tuple[int, int, str]]
                 ) -> dict[Element, frozenset[Element]]:
    """Greedy set cover: repeatedly the candidate (a key of `covers`) covering the most of
    `wanted` not yet covered, on a tie the largest `tie(candidate)`; each chosen candidate
    with what it was chosen for. Every wanted element must be covered by some candidate.

    Lazily (Minoux's accelerated greedy): a candidate's gain only shrinks as the cover grows,
    so the gain it was last seen with is an upper bound, and a candidate on top of the heap
    whose gain is still that bound is the best; the others are not recounted. A storm of
    hundreds of alarms, each its own cause, takes one pass rather than one per alarm."""
    uncovered = set(wanted)
    heap = []
    for order, (candidate, cover) in enumerate(covers.items()):
        if cover:
            first, second, text = tie(candidate)
            heap.append((-len(cover), -first, -second, _Backwards(text), order, candidate))
    heapq.heapify(heap)
    chosen: dict[Element, frozenset[Element]] = {}
    while uncovered and heap:
        bound, first, second, text, order, candidate = heapq.heappop(heap)
        took = covers[candidate] & uncovered
        if len(took) == -bound:
            chosen[candidate] = frozenset(took)
            uncovered -= took
        elif took:
            heapq.heappush(heap, (-len(took), first, second, text, order, candidate))
    return chosen


def reindex(index: ImpactIndex, paths: Mapping[int, CircuitPath],
            circuit_ids: Iterable[int]) -> ImpactIndex:
    """The index after the paths of `circuit_ids` changed (to their entries in `paths`; a
    circuit missing there leaves the index): what `build_index` would give for `paths`, at
    the cost of the changed circuits only. The index given is not changed."""
    users = dict(index.users)
    circuit_elements = dict(index.circuit_elements)
    removed: dict[Element, set[int]] = defaultdict(set)
    added: dict[Element, set[int]] = defaultdict(set)
    for circuit_id in set(circuit_ids):
        old = circuit_elements.pop(circuit_id, frozenset())
        new = paths[circuit_id].elements() if circuit_id in paths else frozenset()
        if circuit_id in paths:
            circuit_elements[circuit_id] = new
        for element in old - new:
            removed[element].add(circuit_id)
        for element in new - old:
            added[element].add(circuit_id)
    for element in removed.keys() | added.keys():
        circuits = (users.get(element, frozenset()) - removed.get(element, set())) | added.get(
            element, set())
        if circuits:
            users[element] = frozenset(circuits)
        else:
            users.pop(element, None)
    return replace(index, users=users, circuit_elements=circuit_elements)
