"""topology.current: the network as it is now, from the store (inventory, accepted links,
discovered links, latest observations), and status refreshes that reroute computed paths.

Each test imports the example inventory (or a copy with links taken out) into its own
database, as tests/test_topology_graph.py does.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from config.inventory.loader import load_inventory
from config.inventory.model import Inventory
from keyline.wiring import EXAMPLE_INVENTORY
from store.inventory import apply_inventory
from store.observations import latest_states
from store.topology import accept_link, record_discovery_run
from topology.current import load_topology, refresh_status
from topology.graph import DOWN, UP, Element, edge_data, load_snapshot
from topology.impact import build_index, impacted
from topology.paths import compute_paths

ACCEPTED = "p-sh2:TenGigabitEthernet0/1/1--pe-sh1:XGigabitEthernet0/1/1"
DISCOVERED = "p-bj1:XGigabitEthernet0/1/2--pe-gz2:TenGigabitEthernet0/1/1"
CORE = "p-sh1:Eth-Trunk1--p-sh2:Port-channel1"


@pytest.fixture(scope="module")
def example_inventory() -> Inventory:
    return load_inventory([EXAMPLE_INVENTORY])


def _ports(key: str) -> tuple[str, str]:
    a, z = key.split("--")
    return a, z


def _without(inventory: Inventory, *keys: str) -> Inventory:
    return replace(inventory, links={k: v for k, v in inventory.links.items() if k not in keys})


def _observe(conn, rows, at: datetime) -> None:
    for object_id, kind, new in rows:
        conn.execute("INSERT INTO observations (time, object_id, kind, old, new, source, detail)"
                     " VALUES (%s, %s, %s, NULL, %s, 'poll', '{}')", [at, object_id, kind, new])


def test_accepted_link_is_declared_and_a_discovered_one_only_discovered(db, example_inventory):
    with db.pool.connection() as conn:
        apply_inventory(conn, _without(example_inventory, ACCEPTED, DISCOVERED))
        ports = load_snapshot(conn).ids("ports")
        devices = load_snapshot(conn).ids("devices")
        accepted, _ = accept_link(conn, *(ports[p] for p in _ports(ACCEPTED)), "alice")
        # an operator also accepted a link the files declare: it must not appear twice
        accept_link(conn, *(ports[p] for p in _ports(CORE)), "bob")
        now = datetime.now(UTC)
        a, z = (ports[p] for p in _ports(DISCOVERED))
        b, y = (ports[p] for p in _ports(CORE))
        record_discovery_run(conn, started_at=now, finished_at=now, devices_asked=18,
                             walked_device_ids=devices.values(),
                             links=[(a, z, ["p-bj1"]), (b, y, ["p-sh1", "p-sh2"])])
        topology = load_topology(conn)
    graph, snapshot = topology.graph, topology.snapshot
    assert graph.number_of_edges() == 27  # 25 of the files + 1 accepted + 1 discovered
    edge = edge_data(graph, accepted.id)
    assert edge is not None and edge["source"] == "declared" and edge["origin"] == "accepted"
    assert edge["link_id"] == accepted.id and snapshot.links[accepted.id].origin == "accepted"
    assert snapshot.links[accepted.id].key == ACCEPTED
    found = edge_data(graph, (min(a, z), max(a, z)))
    assert found is not None and found["source"] == "discovered" and found["origin"] is None
    assert (min(a, z), max(a, z)) in topology.discovered
    assert not any({link.a_port_id, link.z_port_id} == {a, z} for link in snapshot.links.values())
    core = [k for k, link in snapshot.links.items() if {link.a_port_id, link.z_port_id} == {b, y}]
    assert core == [snapshot.ids("links")[CORE]]  # the inventory's, once
    assert edge_data(graph, core[0])["source"] == "both"
    assert edge_data(graph, core[0])["origin"] == "inventory"
    # the impact index knows the accepted link like any declared one
    assert topology.index.link_ports[accepted.id] == accepted.port_ids
    assert accepted.id in topology.index.port_links[accepted.a.port_id]


def test_port_down_observations_change_edge_status_and_reroute(db, example_inventory):
    at = datetime.now(UTC) - timedelta(minutes=5)
    with db.pool.connection() as conn:
        apply_inventory(conn, example_inventory)
        snapshot = load_snapshot(conn)
        ports, devices, links = (snapshot.ids("ports"), snapshot.ids("devices"),
                                 snapshot.ids("links"))
        _observe(conn, [(p, "oper_status", "up") for p in ports.values()]
                 + [(d, "reachability", "reachable") for d in devices.values()], at)
        topology = load_topology(conn)
        core = links[CORE]
        assert edge_data(topology.graph, core)["status"] == UP
        circuits = snapshot.ids("circuits")
        moved = circuits["HSB-L3VPN-0003"]  # computed, over the core link
        assert Element("link", core) in topology.paths[moved].elements()
        assert moved in impacted(topology.index, [Element("link", core)]).circuits

        _observe(conn, [(ports["p-sh1:Eth-Trunk1"], "oper_status", "down")],
                 at + timedelta(minutes=1))
        down, changed = refresh_status(topology, latest_states(conn))
        assert changed == {Element("link", core): (UP, DOWN)}
        assert edge_data(down.graph, core)["status"] == DOWN
        assert edge_data(topology.graph, core)["status"] == UP  # the old one is untouched
        assert moved in down.rerouted
        assert Element("link", core) not in down.paths[moved].elements()
        assert down.paths[moved].valid and not down.paths[moved].declared
        assert moved not in impacted(down.index, [Element("link", core)]).circuits
        assert moved in impacted(topology.index, [Element("link", core)]).circuits
        # the same as loading it all again
        fresh = load_topology(conn)
        assert down.paths == fresh.paths
        assert dict(down.index.users) == dict(fresh.index.users)
        assert down.index == build_index(down.graph, down.snapshot,
                                         compute_paths(down.graph, down.snapshot))

        again, unchanged = refresh_status(down, latest_states(conn))
        assert again is down and unchanged == {}

        _observe(conn, [(ports["p-sh1:Eth-Trunk1"], "oper_status", "up")],
                 at + timedelta(minutes=2))
        up, changed = refresh_status(down, latest_states(conn))
    assert changed == {Element("link", core): (DOWN, UP)}
    assert up.paths == topology.paths and moved in up.rerouted
    assert dict(up.index.users) == dict(topology.index.users)


def test_unreachable_device_takes_its_links_down(db, example_inventory):
    with db.pool.connection() as conn:
        apply_inventory(conn, example_inventory)
        snapshot = load_snapshot(conn)
        devices = snapshot.ids("devices")
        topology = load_topology(conn)
        _observe(conn, [(devices["p-sh2"], "reachability", "unreachable")], datetime.now(UTC))
        after, changed = refresh_status(topology, latest_states(conn))
    assert changed[Element("device", devices["p-sh2"])][1] == DOWN
    links = {k for _, _, k in after.graph.edges(devices["p-sh2"], keys=True)}
    assert {e.id for e in changed if e.kind == "link"} == links
    assert all(Element("device", devices["p-sh2"]) not in after.paths[c].elements()
               for c in after.rerouted)
    assert after.paths == compute_paths(after.graph, after.snapshot)


def test_accepting_a_link_and_a_discovery_run_announce_a_topology_change(
        db, example_inventory):
    from store.events import events_since, last_event_id

    with db.pool.connection() as conn:
        apply_inventory(conn, _without(example_inventory, ACCEPTED))
        ports = load_snapshot(conn).ids("ports")
        before = last_event_id(conn)
        accept_link(conn, *(ports[p] for p in _ports(ACCEPTED)), "alice")
        accept_link(conn, *(ports[p] for p in _ports(ACCEPTED)), "bob")  # already accepted
        now = datetime.now(UTC)
        run_id = record_discovery_run(conn, started_at=now, finished_at=now, devices_asked=0,
                                      walked_device_ids=[], links=[])
        events = [(e.topic, e.payload) for e in events_since(conn, before)]
    a, z = sorted(ports[p] for p in _ports(ACCEPTED))
    assert events == [("topology.changed", {"accepted_link": [a, z]}),
                      ("topology.changed", {"discovery_run": run_id})]
