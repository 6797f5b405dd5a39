"""LLDP resolution on hand-made tables, and the declared-vs-discovered diff, without a network.

The rows are built the way `SnmpPoller.walk` returns them ({column OID: {index suffix:
value}}), with the quirks real agents have: port IDs of each subtype (interfaceName, a MAC
address found through the neighbour's lldpLocPortTable, local as an ifIndex or a name), a
neighbour known only by its management address, a neighbour that is not in the inventory,
a port that matches nothing, a stale row under an older timeMark.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from ipaddress import IPv4Address
from typing import Any

from store.topology import DeviceEntry, LinkEnd, PortEntry, StoredLink
from topology import discovery as d
from topology.discovery import parse_lldp, resolve
from topology.reconcile import reconcile

MAC_R1 = bytes.fromhex("02000000a001")
MAC_R2 = bytes.fromhex("02000000b002")
MAC_R2_ETH1 = bytes.fromhex("02000000b00b")

DEVICES = [
    DeviceEntry(1, "r1", "127.0.1.1", (
        PortEntry(11, "Gi0/0", 1), PortEntry(12, "Gi0/1", 2), PortEntry(13, "Gi0/2", 3),
        PortEntry(14, "Gi0/3", 4), PortEntry(15, "Gi0/4", 5))),
    DeviceEntry(2, "r2", "127.0.1.2", (
        PortEntry(21, "eth0", 10), PortEntry(22, "eth1", 11), PortEntry(23, "eth2", 12),
        PortEntry(24, "ge-0/0/3", 13))),
    DeviceEntry(3, "r3", "127.0.1.3", (PortEntry(31, "xe-0/0/0", 501),)),
]


def lldp_rows(*, sys_name: str, loc_sys_name: str, chassis: bytes,
              local_ports: dict[int, tuple[int, bytes]],
              neighbours: list[dict[str, Any]]) -> dict[tuple[int, ...], dict]:
    """LLDP-MIB columns as a walk returns them. Each neighbour: time_mark, local, index,
    chassis (subtype, bytes) or None, port (subtype, bytes), name, address."""
    rows: dict[tuple[int, ...], dict] = {column: {} for column in d.LLDP_COLUMNS}
    rows[d.SYS_NAME][(0,)] = sys_name.encode()
    rows[d.LLDP_LOC_SYS_NAME][(0,)] = loc_sys_name.encode()
    rows[d.LLDP_LOC_CHASSIS_ID_SUBTYPE][(0,)] = d.CHASSIS_MAC_ADDRESS
    rows[d.LLDP_LOC_CHASSIS_ID][(0,)] = chassis
    for number, (subtype, port_id) in local_ports.items():
        rows[d.LLDP_LOC_PORT_ID_SUBTYPE][(number,)] = subtype
        rows[d.LLDP_LOC_PORT_ID][(number,)] = port_id
    for n in neighbours:
        index = (n.get("time_mark", 100), n["local"], n.get("index", 1))
        if n.get("chassis"):
            rows[d.LLDP_REM_CHASSIS_ID_SUBTYPE][index] = n["chassis"][0]
            rows[d.LLDP_REM_CHASSIS_ID][index] = n["chassis"][1]
        rows[d.LLDP_REM_PORT_ID_SUBTYPE][index] = n["port"][0]
        rows[d.LLDP_REM_PORT_ID][index] = n["port"][1]
        if n.get("name"):
            rows[d.LLDP_REM_SYS_NAME][index] = n["name"].encode()
        if n.get("address"):
            packed = IPv4Address(n["address"]).packed
            rows[d.LLDP_REM_MAN_ADDR_IF_SUBTYPE][(*index, 1, 4, *packed)] = 1
    return rows


def snapshots() -> dict[str, d.LldpSnapshot]:
    name, mac, local = d.PORT_INTERFACE_NAME, d.PORT_MAC_ADDRESS, d.PORT_LOCAL
    r1 = lldp_rows(
        sys_name="r1.example.net", loc_sys_name="r1", chassis=MAC_R1,
        local_ports={n: (name, f"Gi0/{n - 1}".encode()) for n in range(1, 6)},
        neighbours=[
            # by chassis id, port by interfaceName
            {"local": 1, "chassis": (4, MAC_R2), "port": (name, b"eth0"), "name": "r2"},
            # unknown chassis, by system name with a domain and other case; port by MAC
            # through r2's lldpLocPortTable
            {"local": 2, "chassis": (4, b"\x02\x99\x99\x99\x99\x99"),
             "port": (mac, MAC_R2_ETH1), "name": "R2.example.net"},
            # r3 is not walked: found by management address; port local = ifIndex
            {"local": 3, "port": (local, b"501"), "name": "r3-new-name",
             "address": "127.0.1.3"},
            # not in the inventory at all
            {"local": 4, "chassis": (4, b"\x0a\x0b\x0c\x0d\x0e\x0f"), "port": (name, b"x1"),
             "name": "stranger", "address": "192.0.2.9"},
            # r2 by chassis, but no such port
            {"local": 5, "chassis": (4, MAC_R2), "port": (name, b"eth9")},
            # a local port number the inventory does not know
            {"local": 99, "chassis": (4, MAC_R2), "port": (name, b"eth2")},
        ])
    r2 = lldp_rows(
        sys_name="r2", loc_sys_name="r2", chassis=MAC_R2,
        local_ports={10: (name, b"eth0"), 11: (mac, MAC_R2_ETH1), 12: (name, b"eth2"),
                     13: (local, b"13")},
        neighbours=[
            {"local": 10, "chassis": (4, MAC_R1), "port": (name, b"Gi0/0"), "name": "r1"},
            # an old row of the same neighbour under an earlier timeMark: superseded
            {"local": 13, "time_mark": 5, "chassis": (4, MAC_R1), "port": (name, b"Gi0/2")},
            # local port by subtype local (its ifIndex as text); remote port local as a name
            {"local": 13, "time_mark": 900, "chassis": (4, MAC_R1), "port": (local, b"Gi0/4")},
        ])
    return {"r1": parse_lldp("r1", r1), "r2": parse_lldp("r2", r2)}


def test_parse_lldp_reads_local_and_remote_tables() -> None:
    r1 = snapshots()["r1"]
    assert (r1.sys_name, r1.lldp_sys_name, r1.chassis_id) == ("r1.example.net", "r1", MAC_R1)
    assert r1.local_ports[1] == (d.PORT_INTERFACE_NAME, b"Gi0/0")
    assert len(r1.neighbours) == 6
    third = next(n for n in r1.neighbours if n.local_port_num == 3)
    assert third.management_addresses == ("127.0.1.3",) and third.chassis_id is None
    r2 = snapshots()["r2"]
    assert [(n.local_port_num, n.port_id) for n in r2.neighbours] == [
        (10, b"Gi0/0"), (13, b"Gi0/4")]  # the newest timeMark only


def test_resolution_of_every_port_id_subtype() -> None:
    found = resolve(DEVICES, snapshots())
    assert [(link.a, link.z, link.seen_by) for link in found.links] == [
        ("r1:Gi0/0", "r2:eth0", ("r1", "r2")),  # interfaceName, seen from both ends
        ("r1:Gi0/1", "r2:eth1", ("r1",)),  # macAddress via r2's lldpLocPortTable
        ("r1:Gi0/2", "r3:xe-0/0/0", ("r1",)),  # local = ifIndex, device by address
        ("r1:Gi0/4", "r2:ge-0/0/3", ("r2",)),  # local as a name; local port by subtype local
    ]
    assert [(link.a_port_id, link.z_port_id) for link in found.links] == [
        (11, 21), (12, 22), (13, 31), (15, 24)]
    assert found.walked == ("r1", "r2") and found.devices_asked == 2


def test_unresolved_neighbours_are_reported_with_a_reason() -> None:
    found = resolve(DEVICES, snapshots())
    reasons = {(u.device, u.local_port): u for u in found.unresolved}
    assert set(reasons) == {("r1", "Gi0/3"), ("r1", "Gi0/4"), ("r1", "port number 99")}
    stranger = reasons[("r1", "Gi0/3")]
    assert "matches no inventory device" in stranger.reason
    assert "'stranger'" in stranger.neighbour and "192.0.2.9" in stranger.neighbour
    assert "0a:0b:0c:0d:0e:0f (macAddress)" in stranger.neighbour
    no_port = reasons[("r1", "Gi0/4")].reason
    assert no_port == ("device r2 (by chassis id) has no port matching port id"
                       " 'eth9' (interfaceName)")
    assert "local port number 99 is no port of r1" in reasons[("r1", "port number 99")].reason


def test_devices_answering_with_another_name() -> None:
    found = resolve(DEVICES, snapshots())
    assert [(r.device, r.name, r.source) for r in found.renamed] == [
        ("r1", "r1.example.net", "sysName"),
        ("r3", "r3-new-name", "lldpRemSysName seen by r1"),
    ]
    lines = found.summary()
    assert lines[0].startswith("Discovery: 2 of 2 device(s) walked, 4 link(s) found"
                               " (1 seen from both ends), 3 neighbour(s) unresolved")


def test_system_name_resolves_when_chassis_ids_are_unknown() -> None:
    """A neighbour with no chassis match and no address is found by its name alone."""
    rows = lldp_rows(sys_name="r1", loc_sys_name="r1", chassis=MAC_R1, local_ports={},
                     neighbours=[{"local": 1, "port": (d.PORT_INTERFACE_NAME, b"ETH2"),
                                  "name": "r2"}])
    found = resolve(DEVICES, {"r1": parse_lldp("r1", rows)})
    assert [(link.a, link.z) for link in found.links] == [("r1:Gi0/0", "r2:eth2")]
    assert not found.unresolved and not found.renamed


# --- reconciliation --------------------------------------------------------------------------


def link(a: tuple[int, str, str], z: tuple[int, str, str], origin: str = "inventory",
         **extra: Any) -> StoredLink:
    first, second = sorted((LinkEnd(*a), LinkEnd(*z)))
    return StoredLink(first, second, origin, **extra)


R1_0, R1_1, R1_2 = (11, "r1", "Gi0/0"), (12, "r1", "Gi0/1"), (13, "r1", "Gi0/2")
R2_0, R2_1, R2_2 = (21, "r2", "eth0"), (22, "r2", "eth1"), (23, "r2", "eth2")
R3_0, R4_0, R5_0 = (31, "r3", "xe-0/0/0"), (41, "r4", "p1"), (51, "r5", "p1")


def test_reconcile_sorts_every_kind_of_difference() -> None:
    seen_at = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    declared = [
        link(R1_0, R2_0, key="r1:Gi0/0--r2:eth0"),  # agrees
        link(R1_1, R2_1, key="r1:Gi0/1--r2:eth1"),  # r1-r2 seen on Gi0/1 -- eth2 instead
        link(R1_2, R3_0, origin="accepted", accepted_by="alice"),  # not seen
        link(R4_0, R5_0, key="r4:p1--r5:p1"),  # neither end walked
    ]
    discovered = [
        link(R1_0, R2_0, origin="discovered", seen_by=("r1", "r2"), last_seen=seen_at),
        link(R1_1, R2_2, origin="discovered", seen_by=("r2",), last_seen=seen_at),
        link(R2_1, R3_0, origin="discovered", seen_by=("r2",), last_seen=seen_at),
    ]
    diff = reconcile(declared, discovered, walked_devices={"r1", "r2", "r3"},
                     renamed=[{"device": "r1", "name": "r1.example.net", "source": "sysName"}],
                     run={"id": 7, "started_at": seen_at, "finished_at": seen_at})
    assert [str(x) for x in diff.declared_not_seen] == ["r1:Gi0/2 -- r3:xe-0/0/0"]
    assert [str(x) for x in diff.seen_not_declared] == ["r2:eth1 -- r3:xe-0/0/0"]
    assert [(str(p.declared), str(p.seen)) for p in diff.different_ports] == [
        ("r1:Gi0/1 -- r2:eth1", "r1:Gi0/1 -- r2:eth2")]
    assert [str(x) for x in diff.not_checked] == ["r4:p1 -- r5:p1"]
    assert [str(x) for x in diff.agreeing] == ["r1:Gi0/0 -- r2:eth0"]
    assert not diff.in_agreement
    report = diff.report()
    assert "Declared but not seen (1):\n  r1:Gi0/2 -- r3:xe-0/0/0 (accepted by alice)" in report
    assert "Seen but not declared (1):\n  r2:eth1 -- r3:xe-0/0/0 (reported by r2)" in report
    assert ("Linked on other ports than declared (1):\n"
            "  declared r1:Gi0/1 -- r2:eth1, seen r1:Gi0/1 -- r2:eth2") in report
    assert "r1 answers as 'r1.example.net' (sysName)" in report
    assert "Not checked (no end device walked) (1):\n  r4:p1 -- r5:p1" in report
    data = json.loads(json.dumps(diff.as_dict()))
    assert data["in_agreement"] is False and data["run"]["id"] == 7
    assert data["seen_not_declared"][0]["a"] == {"port_id": 22, "device": "r2", "port": "eth1"}
    assert data["seen_not_declared"][0]["last_seen"] == seen_at.isoformat()
    assert data["different_ports"][0]["seen"]["z"]["port"] == "eth2"
    assert data["declared_not_seen"][0]["accepted_by"] == "alice"


def test_reconcile_in_agreement_and_pairing_prefers_a_shared_port() -> None:
    declared = [link(R1_0, R2_0), link(R1_1, R2_1)]
    # r1-r2 seen on Gi0/0--eth1 and Gi0/1--eth0 (cables swapped at r2): each declared link
    # pairs with the seen link that shares its r1 port
    discovered = [link(R1_0, R2_1, origin="discovered"), link(R1_1, R2_0, origin="discovered")]
    diff = reconcile(declared, discovered)
    assert [(str(p.declared), str(p.seen)) for p in diff.different_ports] == [
        ("r1:Gi0/0 -- r2:eth0", "r1:Gi0/0 -- r2:eth1"),
        ("r1:Gi0/1 -- r2:eth1", "r1:Gi0/1 -- r2:eth0")]
    assert not diff.declared_not_seen and not diff.seen_not_declared
    same = reconcile(declared, [link(R2_0, R1_0, origin="discovered"),
                                link(R1_1, R2_1, origin="discovered")],
                     run={"id": 1, "started_at": datetime.now(UTC),
                          "finished_at": datetime.now(UTC)})
    assert same.in_agreement
    assert same.report().endswith("Declared and discovered topology agree (2 link(s) confirmed).")
