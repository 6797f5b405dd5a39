"""LLDP discovery against real agents: snmpd + lldpd (LLDP-MIB through AgentX) in network
namespaces (lab.netns), root only.

One 3-node lab serves the module: ce1 - pe1 - p1, each node a device of an inventory built
here (device key = node hostname, management address = the node's, ports = its link
interfaces with their ifIndex, an SNMPv2c credential whose community comes from an
environment variable given to discovery, never from a file). Each test imports that
inventory into its own database (the `db` fixture).

Discovery must find exactly the lab's links and agree with the inventory; with one link
taken down (`ip link set down`), lldpd drops the neighbour it no longer hears and a new
discovery run reports the link as declared but not seen. Without root or `ip netns` the
tests skip with lab.netns.available()'s reason.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest

from config.inventory.model import (
    Credential,
    Device,
    Inventory,
    Link,
    Port,
    PortRef,
    SecretRef,
    Source,
)
from lab.netns import LinkSpec, NamespaceLab, NodeSpec, available
from store.database import Database
from store.inventory import apply_inventory
from store.topology import current_discovered_links
from topology.discovery import run_discovery
from topology.reconcile import load_diff

REASON = available()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"namespace lab: {REASON}")

HERE = Source("test_topology_netns", 1)
COMMUNITY_VARIABLE = "KEYLINE_TEST_NETNS_COMMUNITY"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
# lldpd transmits every 5 s (lab.netns_config) and holds a neighbour 4 intervals (TTL 20 s)
# if it is not told the link went down; a dead neighbour is gone within about 25 s at worst.
LLDP_FORGET_S = 60


@pytest.fixture(scope="module")
def lab() -> Iterator[NamespaceLab]:
    if REASON is not None:
        pytest.skip(REASON)
    nodes = [NodeSpec("ce1"), NodeSpec("pe1"), NodeSpec("p1")]
    links = [LinkSpec("ce1", "pe1"), LinkSpec("pe1", "p1")]
    with NamespaceLab(nodes, links, lldp=True, snmp_v3=False) as running:
        yield running


def _if_indexes(lab: NamespaceLab, node: str) -> dict[str, int]:
    """ifDescr -> ifIndex of a node, walked with the Net-SNMP tools."""
    out = subprocess.run(
        ["snmpbulkwalk", "-v2c", "-c", lab.community.get_secret_value(), "-On", "-OQ",
         "-t", "1", "-r", "2", lab.management_address(node), IF_DESCR],
        capture_output=True, text=True, check=True).stdout
    indexes = {}
    for line in out.splitlines():
        if " = " in line:
            oid, name = line.split(" = ", 1)
            indexes[name.strip().strip('"')] = int(oid.strip().rsplit(".", 1)[1])
    return indexes


def lab_inventory(lab: NamespaceLab) -> Inventory:
    """The lab as an inventory: its nodes, their link interfaces, its links."""
    inventory = Inventory()
    inventory.credentials["lab-v2c"] = Credential(
        "lab-v2c", "snmp_v2c", {}, {"community": SecretRef("env", COMMUNITY_VARIABLE)}, HERE)
    for node in lab.nodes:
        indexes = _if_indexes(lab, node)
        ports = tuple(Port(node, name, indexes[name], 10**10, None, HERE)
                      for name in lab.interfaces(node))
        inventory.devices[node] = Device(
            node, None, "P" if node != "ce1" else "CE", "linux",
            IPv4Address(lab.management_address(node)), "lab-v2c", None, "default", 161, ports,
            HERE)
    for a, z in lab.link_ends:
        link = Link(PortRef(a.node, a.ifname), PortRef(z.node, z.ifname), 10, HERE)
        inventory.links[link.key] = link
    return inventory


def lab_links(lab: NamespaceLab) -> set[tuple[str, str]]:
    """The lab's real adjacencies, as sorted ("device:port", "device:port") pairs."""
    return {tuple(sorted((f"{a.node}:{a.ifname}", f"{z.node}:{z.ifname}")))  # type: ignore[misc]
            for a, z in lab.link_ends}


def _ends(link: object) -> tuple[str, str]:
    return tuple(sorted((str(link.a), str(link.z))))  # type: ignore[attr-defined, return-value]


@pytest.fixture
def imported(lab: NamespaceLab, db: Database) -> dict[str, str]:
    """The lab's inventory in the test's database; returns the environment for discovery."""
    with db.pool.connection() as conn:
        apply_inventory(conn, lab_inventory(lab))
    return {COMMUNITY_VARIABLE: lab.community.get_secret_value()}


def _discover_until(db: Database, environ: dict[str, str], done, timeout_s: float):
    """Discovery rounds (each recorded) until `done(discovery)` or the deadline; the last."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = run_discovery(db, environ=environ, timeout_s=1.0, retries=2)
        if done(found) or time.monotonic() > deadline:
            return found
        time.sleep(2)


def test_discovery_finds_the_real_adjacencies(lab: NamespaceLab, db: Database,
                                              imported: dict[str, str]) -> None:
    expected = lab_links(lab)
    assert expected == {("ce1:eth0", "pe1:eth0"), ("p1:eth0", "pe1:eth1")}
    # lldpd announces within a few seconds of the lab's start: wait for both ends' tables
    found = _discover_until(db, imported, lambda f: {_ends(link) for link in f.links}
                            == expected and all(len(link.seen_by) == 2 for link in f.links),
                            timeout_s=LLDP_FORGET_S)
    assert not found.failures and not found.unresolved and not found.renamed, found.summary()
    assert {_ends(link) for link in found.links} == expected
    assert all(len(link.seen_by) == 2 for link in found.links)  # both ends report each
    assert found.walked == ("ce1", "p1", "pe1")
    with db.pool.connection() as conn:
        assert {_ends(link) for link in current_discovered_links(conn)} == expected
        diff = load_diff(conn)
    assert diff.in_agreement and len(diff.agreeing) == 2 and not diff.not_checked, diff.report()


def test_a_link_taken_down_is_declared_but_not_seen(lab: NamespaceLab, db: Database,
                                                    imported: dict[str, str]) -> None:
    expected = lab_links(lab)
    found = _discover_until(db, imported, lambda f: {_ends(link) for link in f.links}
                            == expected, timeout_s=LLDP_FORGET_S)
    assert {_ends(link) for link in found.links} == expected
    lab.set_link("pe1", "eth1", up=False)
    try:
        began = time.monotonic()
        found = _discover_until(db, imported, lambda f: ("p1:eth0", "pe1:eth1") not in {
            _ends(link) for link in f.links}, timeout_s=LLDP_FORGET_S)
        forgot_after_s = time.monotonic() - began
        assert {_ends(link) for link in found.links} == {("ce1:eth0", "pe1:eth0")}, (
            f"lldpd still reports the link {forgot_after_s:.0f} s after it went down")
        with db.pool.connection() as conn:
            diff = load_diff(conn)
        assert [_ends(link) for link in diff.declared_not_seen] == [("p1:eth0", "pe1:eth1")]
        assert not diff.seen_not_declared and not diff.different_ports
        assert [_ends(link) for link in diff.agreeing] == [("ce1:eth0", "pe1:eth0")]
        assert "Declared but not seen (1):\n  pe1:eth1 -- p1:eth0 (inventory" in diff.report()
    finally:
        lab.set_link("pe1", "eth1", up=True)
