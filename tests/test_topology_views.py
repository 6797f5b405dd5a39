"""Topology views for the portal: Cytoscape.js elements, scoped per customer; circuits'
states are the ones passed in (the alarm pipeline's), never worked out here."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from config.inventory.loader import load_inventory
from config.inventory.model import Inventory
from keyline.wiring import EXAMPLE_INVENTORY
from tests.test_topology_graph import example_snapshot
from topology.graph import build_graph
from topology.paths import compute_paths
from topology.views import circuit_view, customer_view, global_view, vpn_view


@pytest.fixture(scope="module")
def example_inventory() -> Inventory:
    return load_inventory([EXAMPLE_INVENTORY])


@pytest.fixture
def example(db, example_inventory):
    snapshot = example_snapshot(db, example_inventory)
    graph = build_graph(snapshot)
    return snapshot, graph, compute_paths(graph, snapshot)


def nodes(view, kind="device"):
    return {n["data"]["label"]: n["data"] for n in view["elements"]["nodes"]
            if n["data"]["kind"] == kind}


def check_well_formed(view):
    json.dumps(view)  # JSON-ready
    ids = {n["data"]["id"] for n in view["elements"]["nodes"]}
    for node in view["elements"]["nodes"]:
        assert node["data"].get("parent", next(iter(ids))) in ids
        assert {"status", "utilization_pct", "alarms"} <= set(node["data"])
    for edge in view["elements"]["edges"]:
        assert edge["data"]["source"] in ids and edge["data"]["target"] in ids
        assert {"status", "utilization_pct", "alarms"} <= set(edge["data"])


def test_global_view(example):
    snapshot, graph, paths = example
    view = global_view(graph, snapshot, paths)
    check_well_formed(view)
    assert len(nodes(view)) == 18 and len(nodes(view, "site")) == 13
    assert len(view["elements"]["edges"]) == 27
    assert sum(e["data"]["circuit_count"] for e in view["elements"]["edges"]) == sum(
        len(p.hops) - 1 for p in paths.values())


@pytest.mark.parametrize("customer", ["hsbank", "jinlu", "xinhe"])
def test_customer_view_is_strictly_scoped(example, customer):
    snapshot, graph, paths = example
    customer_id = snapshot.ids("customers")[customer]
    view = customer_view(graph, snapshot, paths, customer_id)
    check_well_formed(view)
    own_circuits = {c.key for c in snapshot.circuits.values() if c.customer_id == customer_id}
    assert {c["key"] for c in view["circuits"]} == own_circuits
    prefix = {"hsbank": "ce-hsbank-", "jinlu": "ce-jinlu-", "xinhe": "ce-xinhe-"}[customer]
    for label, node in nodes(view).items():
        assert node["customer"] in (None, customer), label
        assert node["role"] in ("P", "PE") or label.startswith(prefix), label
    own_ces = {d.key for d in snapshot.devices.values()
               if snapshot.device_customer(d.id) == customer_id}
    assert own_ces <= set(nodes(view))
    for label, site in nodes(view, "site").items():
        assert site["customer"] in (None, customer), label
    text = json.dumps(view, ensure_ascii=False)
    for other in {"hsbank", "jinlu", "xinhe"} - {customer}:
        assert other not in text
    for edge in view["elements"]["edges"]:
        assert set(edge["data"]["circuits"]) <= own_circuits
    # every device and link of its circuits' paths is there
    shown_links = {e["data"]["id"] for e in view["elements"]["edges"]}
    for circuit in view["circuits"]:
        for hop in circuit["hops"]:
            assert hop["device_key"] in nodes(view)
            assert hop["link"] is None or hop["link"] in shown_links


def test_vpn_and_circuit_views(example):
    snapshot, graph, paths = example
    vpn_id = snapshot.ids("vpns")["hsbank-branch"]
    view = vpn_view(graph, snapshot, paths, vpn_id)
    check_well_formed(view)
    assert [c["key"] for c in view["circuits"]] == ["HSB-L3VPN-0002", "HSB-L3VPN-0003"]
    assert "jinlu" not in json.dumps(view) and "xinhe" not in json.dumps(view)
    circuit_id = snapshot.ids("circuits")["HSB-L3VPN-0001"]
    view = circuit_view(graph, snapshot, paths, circuit_id)
    check_well_formed(view)
    assert list(nodes(view)) == ["ce-hsbank-sh-hq", "pe-sh1", "p-sh1", "p-bj1", "pe-bj1",
                                 "ce-hsbank-bj-dc"]
    assert len(view["elements"]["edges"]) == 5
    (circuit,) = view["circuits"]
    # no state given for it: unknown, whatever its path looks like
    assert circuit["declared"] and circuit["valid"] and circuit["status"] == "unknown"


def test_status_utilization_and_alarms(example):
    snapshot, _graph, paths = example
    ports, links, devices = snapshot.ids("ports"), snapshot.ids("links"), snapshot.ids("devices")
    trunk = links["p-bj1:Eth-Trunk2--p-sh1:Eth-Trunk2"]
    a, z = ports["p-bj1:Eth-Trunk2"], ports["p-sh1:Eth-Trunk2"]
    up = {p.id: "up" for p in snapshot.ports.values()}
    graph = build_graph(snapshot, port_status=up | {z: "down"},
                        reachability={d: "reachable" for d in snapshot.devices})
    circuit_id = snapshot.ids("circuits")["HSB-L3VPN-0001"]
    view = circuit_view(graph, snapshot, paths, circuit_id,
                        utilization={a: (12.5, 40.0), z: (55.0, None)},
                        alarms={trunk: 1, z: 2, devices["p-sh1"]: 3},
                        states={circuit_id: "down"})
    edge = next(e["data"] for e in view["elements"]["edges"] if e["data"]["link_id"] == trunk)
    assert (edge["status"], edge["utilization_pct"], edge["alarms"]) == ("down", 55.0, 3)
    p_sh1 = nodes(view)["p-sh1"]
    assert (p_sh1["status"], p_sh1["utilization_pct"], p_sh1["alarms"]) == ("degraded", 55.0, 3)
    assert nodes(view)["pe-bj1"]["status"] == "up"
    assert view["circuits"][0]["status"] == "down"


def test_circuit_status_is_the_state_given(example):
    """Every view lists each circuit with the state it was handed (circuit id -> state),
    not one of its own: an all-up network with a circuit in maintenance says maintenance;
    a circuit left out is unknown."""
    snapshot, _graph, paths = example
    up = {p.id: "up" for p in snapshot.ports.values()}
    graph = build_graph(snapshot, port_status=up,
                        reachability={d: "reachable" for d in snapshot.devices})
    ids = snapshot.ids("circuits")
    hsbank = snapshot.ids("customers")["hsbank"]
    own = [c for c in snapshot.circuits.values() if c.customer_id == hsbank]
    states = {ids["HSB-L3VPN-0001"]: "maintenance", ids["HSB-L3VPN-0002"]: "degraded"}
    states |= {c.id: "up" for c in own if c.key not in ("HSB-L3VPN-0001", "HSB-L3VPN-0002",
                                                       "HSB-L3VPN-0003")}
    view = customer_view(graph, snapshot, paths, hsbank, states=states)
    shown = {c["key"]: c["status"] for c in view["circuits"]}
    assert shown["HSB-L3VPN-0001"] == "maintenance" and shown["HSB-L3VPN-0002"] == "degraded"
    assert shown["HSB-L3VPN-0003"] == "unknown"
    assert {shown[c.key] for c in own if c.id in states and states[c.id] == "up"} <= {"up"}
    vpn = vpn_view(graph, snapshot, paths, snapshot.ids("vpns")["hsbank-branch"],
                   states=states)
    assert [c["status"] for c in vpn["circuits"]] == ["degraded", "unknown"]
    (circuit,) = circuit_view(graph, snapshot, paths, ids["HSB-L3VPN-0001"],
                              states=states)["circuits"]
    assert circuit["status"] == "maintenance"
    # (the devices and links keep the topology's own statuses)
    assert {n["data"]["status"] for n in view["elements"]["nodes"]
            if n["data"]["kind"] == "device"} == {"up"}
    assert global_view(graph, snapshot, paths, states=states)["circuits"] == []


def test_topology_decides_no_circuit_state():
    """Topology sits below the alarms: it imports nothing that decides or stores a
    circuit's service state (the portal passes the states in)."""
    root = Path(__file__).resolve().parent.parent / "topology"
    for path in sorted(root.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith(("alarms", "store.circuit_states", "portal")), (
                    path.name, name)
