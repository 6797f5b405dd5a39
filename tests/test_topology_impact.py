"""Impact (which circuits and customers a failure hits) and root cause (the fewest elements
that explain a set of symptoms)."""

from __future__ import annotations

import pytest

from config.inventory.loader import load_inventory
from config.inventory.model import Inventory
from keyline.wiring import EXAMPLE_INVENTORY
from tests.test_topology_graph import example_snapshot, tiny_inventory
from topology.graph import Element, build_graph, snapshot_from_inventory
from topology.impact import build_index, impacted, root_causes
from topology.paths import compute_paths


@pytest.fixture(scope="module")
def example_inventory() -> Inventory:
    return load_inventory([EXAMPLE_INVENTORY])


@pytest.fixture
def example(db, example_inventory):
    snapshot = example_snapshot(db, example_inventory)
    graph = build_graph(snapshot)
    paths = compute_paths(graph, snapshot)
    return snapshot, graph, paths, build_index(graph, snapshot, paths)


def through(snapshot, paths, device_id):
    """Expected circuits through a device, straight from the hops: the declared hops of the
    snapshot (as stored in circuit_hops) or, for the others, the computed hops."""
    found = set()
    for circuit in snapshot.circuits.values():
        hops = circuit.hops or paths[circuit.id].hops
        if any(hop.device_id == device_id for hop in hops):
            found.add(circuit.id)
    return found


def test_a_p_router_down_hits_exactly_the_circuits_through_it(example):
    snapshot, _graph, paths, index = example
    p_sh1 = snapshot.ids("devices")["p-sh1"]
    impact = impacted(index, [Element("device", p_sh1)])
    expected = through(snapshot, paths, p_sh1)
    assert impact.circuits == expected
    keys = {snapshot.circuits[c].key for c in impact.circuits}
    # the declared ones, as circuits.yaml says
    assert {"HSB-L3VPN-0001", "XH-L3VPN-0001", "XH-ELINE-0001"} <= keys
    assert "HSB-L3VPN-0002" not in keys  # over p-sh2 and p-gz1
    assert impact.customers == {snapshot.circuits[c].customer_id for c in expected}


def test_a_ce_down_hits_only_its_customer(example):
    snapshot, _graph, paths, index = example
    ce = snapshot.ids("devices")["ce-jinlu-gz-hub"]
    impact = impacted(index, [Element("device", ce)])
    assert impact.circuits == through(snapshot, paths, ce)
    assert impact.customers == {snapshot.ids("customers")["jinlu"]}


def test_a_link_and_a_port(example):
    snapshot, _graph, _paths, index = example
    link = snapshot.ids("links")["p-bj1:Eth-Trunk2--p-sh1:Eth-Trunk2"]
    impact = impacted(index, [Element("link", link)])
    assert {snapshot.circuits[c].key for c in impact.circuits} == {
        "HSB-L3VPN-0001", "XH-L3VPN-0001"}
    port = snapshot.ids("ports")["pe-sh1:XGigabitEthernet0/1/2"]  # Internet transit
    impact = impacted(index, [Element("port", port)])
    assert {snapshot.circuits[c].key for c in impact.circuits} == {
        "HSB-INET-0001", "XH-INET-0001"}
    assert impacted(index, []).circuits == frozenset()


def test_root_cause_device_down(example):
    snapshot, graph, _paths, index = example
    p_sh1 = snapshot.ids("devices")["p-sh1"]
    own_ports = [p.id for p in snapshot.ports.values() if p.device_id == p_sh1]
    symptoms = {Element("device", p_sh1)} | {Element("port", p) for p in own_ports}
    assert root_causes(index, symptoms).causes == {Element("device", p_sh1)}
    # with its neighbours' ports facing it, and the circuits through it: still one cause
    far = {Element("port", d["a_port_id"] if d["z_device_id"] == p_sh1 else d["z_port_id"])
           for _, _, d in graph.edges(p_sh1, data=True)}
    circuits = {Element("circuit", c) for c in impacted(index, [Element("device", p_sh1)])
                .circuits}
    result = root_causes(index, symptoms | far | circuits)
    assert result.causes == {Element("device", p_sh1)}
    assert result.explains[Element("device", p_sh1)] == symptoms | far | circuits
    # only the neighbours saw it (the device's own ports cannot be polled): still the device
    assert root_causes(index, far).causes == {Element("device", p_sh1)}


def test_root_cause_single_link(example):
    snapshot, _graph, _paths, index = example
    link = snapshot.ids("links")["p-bj1:Eth-Trunk2--p-sh1:Eth-Trunk2"]
    ports = snapshot.ids("ports")
    symptoms = {Element("port", ports["p-bj1:Eth-Trunk2"]),
                Element("port", ports["p-sh1:Eth-Trunk2"])}
    assert root_causes(index, symptoms).causes == {Element("link", link)}
    # plus the two circuits over it
    circuits = {Element("circuit", c) for c in impacted(index, [Element("link", link)]).circuits}
    assert root_causes(index, symptoms | circuits).causes == {Element("link", link)}


def test_root_cause_two_independent_faults(example):
    snapshot, _graph, _paths, index = example
    ports, devices, links = snapshot.ids("ports"), snapshot.ids("devices"), snapshot.ids("links")
    ce = devices["ce-xinhe-bj-dc"]
    symptoms = {
        Element("port", ports["p-bj1:Eth-Trunk2"]), Element("port", ports["p-sh1:Eth-Trunk2"]),
        Element("device", ce), Element("port", ports["pe-bj1:GigabitEthernet0/0/2"]),
    }
    assert root_causes(index, symptoms).causes == {
        Element("link", links["p-bj1:Eth-Trunk2--p-sh1:Eth-Trunk2"]), Element("device", ce)}


def test_circuit_symptoms_only():
    snapshot = snapshot_from_inventory(tiny_inventory())
    graph = build_graph(snapshot)
    paths = compute_paths(graph, snapshot)
    index = build_index(graph, snapshot, paths)
    circuits, devices = snapshot.ids("circuits"), snapshot.ids("devices")
    # ACME-1 (via p1) and BETA-1 (via p1) down, ACME-2 (via p2) fine: p1's side is to blame,
    # and the one element both share that predicts the fewest unseen failures
    result = root_causes(index, {Element("circuit", circuits["ACME-1"]),
                                 Element("circuit", circuits["BETA-1"])})
    assert len(result.causes) == 1
    (cause,) = result.causes
    assert cause in paths[circuits["ACME-1"]].elements() & paths[circuits["BETA-1"]].elements()
    assert cause != Element("device", devices["pe1"])  # pe1 would take ACME-2 down too


def naive_greedy_cover(covers, wanted, tie):
    """The textbook greedy cover, every gain recounted every round: what greedy_cover must
    choose, in the same order."""
    uncovered, chosen, left = set(wanted), {}, dict(covers)
    while uncovered:
        best = max(left, key=lambda c: (len(left[c] & uncovered), *tie(c)))
        chosen[best] = frozenset(left.pop(best) & uncovered)
        uncovered -= chosen[best]
    return chosen


def test_the_lazy_greedy_cover_chooses_what_the_textbook_one_does():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from topology.impact import greedy_cover

    kinds = ("link", "port", "device", "circuit")
    elements = st.builds(Element, st.sampled_from(kinds), st.integers(0, 30))

    @settings(max_examples=300, deadline=None)
    @given(st.dictionaries(elements, st.frozensets(st.integers(0, 40), max_size=12),
                           min_size=1, max_size=40),
           st.dictionaries(elements, st.integers(0, 3)))
    def check(covers_by_number, unobserved):
        covers = {c: frozenset(Element("port", n) for n in cover)
                  for c, cover in covers_by_number.items()}
        wanted = frozenset().union(*covers.values())

        def tie(c):
            return (-unobserved.get(c, 0), -kinds.index(c.kind), str(c.id))

        lazy = greedy_cover(covers, wanted, tie)
        assert list(lazy.items()) == list(naive_greedy_cover(covers, wanted, tie).items())
        assert frozenset().union(*lazy.values(), frozenset()) == wanted

    check()


def test_root_cause_is_the_textbook_greedy_over_what_each_element_explains(example):
    """root_causes counts a candidate's circuits as ids and covers lazily: on random sets of
    symptoms of the example network it must choose what the plain definition gives, every
    candidate's `explained_by` covered greedily, gains recounted every round."""
    import random

    from topology.impact import _KIND_RANK, _candidates, explained_by

    snapshot, _graph, _paths, index = example
    elements = sorted(set(index.users) | {Element("circuit", c) for c in snapshot.circuits})
    pick = random.Random(16)
    for _ in range(100):
        symptoms = frozenset(pick.sample(elements, pick.randint(1, 25)))
        excluded = frozenset(pick.sample(elements, pick.randint(0, 4)))
        candidates = set().union(*(_candidates(index, s) for s in symptoms)) - (
            excluded - symptoms)
        explained = {c: explained_by(index, c) for c in candidates}
        expected = naive_greedy_cover(
            {c: e & symptoms for c, e in explained.items()}, symptoms,
            lambda c, e=explained, s=symptoms: (-len(e[c] - s), -_KIND_RANK[c.kind], str(c.id)))
        assert dict(root_causes(index, symptoms, excluded).explains) == expected
