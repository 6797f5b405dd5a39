"""The topology layout (portal/layout.py), without a browser: the example network is drawn in
tiers by role, each site together, the same whatever the database ids, and with no link
through a device or over another link's middle; and the check finds what the old layout
drew (six devices on one line)."""

from __future__ import annotations

import math

from keyline.wiring import EXAMPLE_INVENTORY, load_inventory_files
from portal.layout import device_positions, layout_conflicts
from topology.graph import build_graph, snapshot_from_inventory


def example(first_id: int = 1):
    snapshot = snapshot_from_inventory(load_inventory_files([EXAMPLE_INVENTORY]),
                                       first_id=first_id)
    return snapshot, build_graph(snapshot)


def by_key(snapshot, positions):
    return {snapshot.devices[d].key: xy for d, xy in positions.items()}


def test_the_example_network_has_no_conflict_and_stands_in_tiers():
    snapshot, graph = example()
    positions = device_positions(snapshot, graph)
    assert set(positions) == set(snapshot.devices)
    assert layout_conflicts(positions, graph.edges()) == []
    radius = {d: math.hypot(*xy) for d, xy in positions.items()}
    tiers = {role: [radius[d] for d, device in snapshot.devices.items() if device.role == role]
             for role in ("P", "PE", "CE")}
    assert max(tiers["P"]) < min(tiers["PE"]) and max(tiers["PE"]) < min(tiers["CE"])


def test_a_sites_devices_stand_together_on_their_ring():
    """pop-gz-tianhe's two PEs are neighbours on the PE ring: no other PE between them."""
    snapshot, graph = example()
    positions = by_key(snapshot, device_positions(snapshot, graph))
    pes = sorted((math.atan2(y, x) % (2 * math.pi), key)
                 for key, (x, y) in positions.items() if key.startswith("pe-"))
    order = [key for _, key in pes]
    i, j = order.index("pe-gz1"), order.index("pe-gz2")
    assert abs(i - j) in (1, len(order) - 1), order


def test_the_same_inventory_is_drawn_the_same_whatever_its_ids():
    first, first_graph = example(1)
    other, other_graph = example(5000)
    assert by_key(first, device_positions(first, first_graph)) == \
        by_key(other, device_positions(other, other_graph))


def test_the_check_finds_devices_on_one_line():
    """The old layout's line: xinhe CE, p-sh1, pe-sh1, p-bj1, pe-bj1, hsbank CE on y = 0,
    with p-sh1–p-bj1 drawn through pe-sh1 and across the other diagonal's middle."""
    line = {"ce-x": (-364.0, 0.0), "p-sh1": (-191.0, 0.0), "pe-sh1": (-121.0, 0.0),
            "p-bj1": (121.0, 0.0), "pe-bj1": (191.0, 0.0), "ce-h": (364.0, 0.0),
            "p-sh2": (0.0, -156.0), "p-gz1": (0.0, 156.0)}
    edges = [("ce-x", "pe-sh1"), ("p-sh1", "pe-sh1"), ("p-sh1", "p-bj1"),
             ("p-bj1", "pe-bj1"), ("pe-bj1", "ce-h"), ("p-sh2", "p-gz1"),
             ("p-sh1", "p-sh2"), ("p-bj1", "p-gz1")]
    found = {(c.kind, c.device, c.edge, c.other) for c in layout_conflicts(line, edges)}
    assert ("through", "pe-sh1", ("p-bj1", "p-sh1"), None) in found
    assert ("through", "p-sh1", ("ce-x", "pe-sh1"), None) in found
    assert ("midpoint", None, ("p-gz1", "p-sh2"), ("p-bj1", "p-sh1")) in found
