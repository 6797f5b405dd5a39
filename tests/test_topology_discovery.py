"""Discovery against the simulated network and real device walks; reconciliation and
acceptance in the store.

One simulated network (lab.sim, the example inventory on loopback, SNMPv2c edge and SNMPv3
authPriv core) serves the first tests; each test has its own database (the `db` fixture) into
which it imports an inventory: the example itself, or a copy of its files in which one
declared link is removed and a wrong one added. Discovery reads the network through
`SnmpPoller.walk`, with the credentials resolved from the lab's defaults as `keyline` does.

The last tests walk real devices: the shared folder's recordings served by snmpsim
(lab.recordings): a Catalyst 2960-X that speaks CDP only (7 neighbours), a Huawei S5720 that
numbers its LLDP ports apart from its ifIndexes (5), a MikroTik CRS317 whose LLDP rows carry
no local port (18), a Catalyst 3850 whose LLDP answers with no neighbour, and two routers
that answer neither protocol. Their inventory writes every port in the short form
(`Gi1/0/3`, `GE0/0/14`, `XGE0/0/1`) while the devices announce the long one.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from collectors.model import PollStatus, PollTarget, SnmpCredential
from collectors.snmp import SnmpPoller
from collectors.targets import load_poll_targets
from config.inventory.loader import load_inventory
from config.inventory.model import Inventory
from keyline.cli import main
from keyline.topology_cli import topology
from keyline.wiring import EXAMPLE_INVENTORY
from lab.recordings import (
    RecordingAgents,
    SnmprecRecord,
    parse_snmprec,
    recording_names,
    recordings_dir,
    write_records,
)
from lab.sim.access import with_lab_defaults
from lab.sim.network import SimulatedNetwork, snmpsim_available
from store.database import Database
from store.inventory import apply_inventory
from store.topology import (
    DeviceEntry,
    PortEntry,
    current_discovered_links,
    declared_links,
    latest_run,
)
from tests.snmp_agents import free_udp_port_on
from topology import discovery as d
from topology.discovery import Discovery, discover, run_discovery
from topology.reconcile import load_diff

EXAMPLE_LINKS = 27
REMOVED = ("  - {a: {device: pe-sh1, port: XGigabitEthernet0/1/1},"
           " z: {device: p-sh2, port: TenGigabitEthernet0/1/1}}\n")
REMOVED_ENDS = ("p-sh2:TenGigabitEthernet0/1/1", "pe-sh1:XGigabitEthernet0/1/1")
WRONG = ("  - {a: {device: ce-hsbank-sh-hq, port: GigabitEthernet0/0/5},"
         " z: {device: ce-xinhe-sh-hq, port: GigabitEthernet1/0/6}}\n")
WRONG_ENDS = ("ce-hsbank-sh-hq:GigabitEthernet0/0/5", "ce-xinhe-sh-hq:GigabitEthernet1/0/6")


def _on_port(inventory: Inventory, port: int) -> Inventory:
    devices = {key: replace(device, snmp_port=port) for key, device in inventory.devices.items()}
    return replace(inventory, devices=devices)


@pytest.fixture(scope="module")
def snmp_port() -> int:
    example = load_inventory([EXAMPLE_INVENTORY])
    return free_udp_port_on([str(dev.management_address) for dev in example.devices.values()])


@pytest.fixture(scope="module")
def inventory(snmp_port: int) -> Inventory:
    return _on_port(load_inventory([EXAMPLE_INVENTORY]), snmp_port)


@pytest.fixture(scope="module")
def environ(inventory: Inventory) -> dict[str, str]:
    return with_lab_defaults(inventory, {})


@pytest.fixture(scope="module")
def network(inventory: Inventory, environ: dict[str, str],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedNetwork]:
    if not snmpsim_available():
        pytest.skip("snmpsim is not installed (pip install snmpsim==1.2.2 pysmi==2.0.0)")
    simulated = SimulatedNetwork(inventory, tmp_path_factory.mktemp("sim"), environ=environ,
                                 trap_receiver=("127.0.0.1", 9))
    simulated.start()
    yield simulated
    simulated.stop()


@pytest.fixture
def edited_files(tmp_path: Path) -> Path:
    """A copy of the example inventory's files, one link removed and a wrong one added."""
    folder = tmp_path / "inventory"
    shutil.copytree(EXAMPLE_INVENTORY, folder)
    network_file = folder / "network.yaml"
    text = network_file.read_text()
    assert REMOVED in text
    network_file.write_text(text.replace(REMOVED, WRONG))
    return folder


def _import(db: Database, inventory: Inventory) -> None:
    with db.pool.connection() as conn:
        apply_inventory(conn, inventory)


def _ends(link: object) -> tuple[str, str]:
    return tuple(sorted((str(link.a), str(link.z))))  # type: ignore[attr-defined]


def _keyline(db: Database, *args: str) -> click.testing.Result:
    """`keyline --database-url URL topology ARGS` in-process, the group registered on a
    copy of the main command (keyline.cli itself is left as it is)."""
    wrapper = click.Group(main.name, params=main.params, callback=main.callback,
                          commands={"topology": topology})
    return CliRunner().invoke(wrapper, ["--database-url", db.url, "topology", *args],
                              catch_exceptions=False)


def test_discovery_finds_every_link_of_the_example(network: SimulatedNetwork,
                                                   inventory: Inventory, environ: dict[str, str],
                                                   db: Database) -> None:
    _import(db, inventory)
    calls: list[tuple[int, int]] = []
    found = run_discovery(db, environ=environ, progress=lambda done, total: calls.append(
        (done, total)))
    declared = {tuple(sorted((str(link.a), str(link.z)))) for link in inventory.links.values()}
    assert len(declared) == EXAMPLE_LINKS
    assert {_ends(link) for link in found.links} == declared
    assert all(len(link.seen_by) == 2 for link in found.links)  # both ends report each link
    assert not found.unresolved and not found.failures and not found.renamed
    assert found.walked == tuple(sorted(inventory.devices)) and found.devices_asked == 18
    assert calls[0] == (0, 18) and calls[-1] == (18, 18) and len(calls) == 19
    assert found.run_id is not None
    with db.pool.connection() as conn:
        assert {_ends(link) for link in current_discovered_links(conn)} == declared
        run = latest_run(conn)
        assert run is not None and run.id == found.run_id and len(run.walked_device_ids) == 18
        diff = load_diff(conn)
    assert diff.in_agreement and len(diff.agreeing) == EXAMPLE_LINKS
    assert not diff.not_checked
    assert "Declared and discovered topology agree (27 link(s) confirmed)." in diff.report()


def test_diff_shows_a_removed_and_a_wrong_link(network: SimulatedNetwork, snmp_port: int,
                                               environ: dict[str, str], db: Database,
                                               edited_files: Path) -> None:
    _import(db, _on_port(load_inventory([edited_files]), snmp_port))
    run_discovery(db, environ=environ)
    with db.pool.connection() as conn:
        diff = load_diff(conn)
    assert [_ends(link) for link in diff.seen_not_declared] == [REMOVED_ENDS]
    assert [_ends(link) for link in diff.declared_not_seen] == [WRONG_ENDS]
    assert not diff.different_ports and not diff.renamed
    assert len(diff.agreeing) == EXAMPLE_LINKS - 1
    result = _keyline(db, "diff")
    assert result.exit_code == 0, result.output
    assert "Seen but not declared (1):\n  p-sh2:TenGigabitEthernet0/1/1 --" in result.output
    assert ("Declared but not seen (1):\n  ce-hsbank-sh-hq:GigabitEthernet0/0/5 --"
            " ce-xinhe-sh-hq:GigabitEthernet1/0/6 (inventory") in result.output


def test_accepted_link_survives_a_new_import(network: SimulatedNetwork, snmp_port: int,
                                             db: Database, edited_files: Path) -> None:
    edited = _on_port(load_inventory([edited_files]), snmp_port)
    _import(db, edited)
    result = _keyline(db, "discover")  # the CLI resolves the lab secrets itself
    assert result.exit_code == 0, result.output
    assert f"{EXAMPLE_LINKS} link(s) found ({EXAMPLE_LINKS} seen from both ends)" in result.output

    a, z = "pe-sh1:XGigabitEthernet0/1/1", "p-sh2:TenGigabitEthernet0/1/1"
    result = _keyline(db, "accept", a, z, "--by", "alice")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Accepted p-sh2:TenGigabitEthernet0/1/1 --"
                                    " pe-sh1:XGigabitEthernet0/1/1 (by alice)")
    again = _keyline(db, "accept", z, a, "--by", "bob")
    assert again.exit_code == 0 and "already declared (accepted by alice)" in again.output

    _import(db, edited)  # the files still lack the link: the import must not drop it
    with db.pool.connection() as conn:
        accepted = [link for link in declared_links(conn) if link.origin == "accepted"]
        assert [(_ends(link), link.accepted_by) for link in accepted] == [(REMOVED_ENDS, "alice")]
        diff = load_diff(conn)
    assert not diff.seen_not_declared
    assert [_ends(link) for link in diff.declared_not_seen] == [WRONG_ENDS]

    # Once the files declare the link too, it is declared once, as the inventory's.
    _import(db, _on_port(load_inventory([EXAMPLE_INVENTORY]), snmp_port))
    with db.pool.connection() as conn:
        links = [link for link in declared_links(conn) if _ends(link) == REMOVED_ENDS]
        assert [link.origin for link in links] == ["inventory"]
        assert load_diff(conn).in_agreement


def test_accept_refuses_bad_input(network: SimulatedNetwork, inventory: Inventory,
                                  db: Database) -> None:
    _import(db, inventory)
    cases = [
        (("pe-sh1", "p-sh2:TenGigabitEthernet0/1/1"), "is not DEVICE:PORT"),
        (("pe-sh1:NoSuchPort", "p-sh2:TenGigabitEthernet0/1/1"), "is no active port"),
        (("ce-hsbank-sh-hq:GigabitEthernet0/0/5", "ce-xinhe-sh-hq:GigabitEthernet1/0/6"),
         "is not a discovered link"),
    ]
    for (a, z), message in cases:
        result = CliRunner().invoke(
            click.Group(main.name, params=main.params, callback=main.callback,
                        commands={"topology": topology}),
            ["--database-url", db.url, "topology", "accept", a, z, "--by", "alice"])
        assert result.exit_code == 2, (a, z, result.output)
        assert message in result.output
    declared = _keyline(db, "accept", "pe-sh1:XGigabitEthernet0/1/1",
                        "p-sh2:TenGigabitEthernet0/1/1", "--by", "alice")
    assert declared.exit_code == 0 and "already declared (inventory link" in declared.output


def test_v3_walk_of_a_core_router(network: SimulatedNetwork, inventory: Inventory,
                                  environ: dict[str, str], db: Database) -> None:
    _import(db, inventory)
    with db.pool.connection() as conn:
        targets, problems = load_poll_targets(conn, environ=environ, device_keys=["p-sh1"])
    assert not problems and targets[0].credential.version == "v3"
    target = targets[0]
    credential = target.credential
    wrong = replace(target, credential=replace(credential,
                                               auth_key=SecretStr("wrong-auth-key-99")))

    async def walk() -> list:
        poller = SnmpPoller(timeout_s=1.0, retries=0)
        try:
            return [await poller.walk(target, d.LLDP_COLUMNS),
                    await poller.walk(wrong, d.LLDP_COLUMNS)]
        finally:
            poller.close()

    good, bad = asyncio.run(walk())
    assert good.status is PollStatus.REACHABLE, good.reason
    assert good.rows[d.SYS_NAME] == {(0,): b"p-sh1"}
    neighbours = good.rows[d.LLDP_REM_SYS_NAME]
    links = [link for link in inventory.links.values() if "p-sh1" in (link.a.device,
                                                                         link.z.device)]
    assert len(neighbours) == len(links)
    assert all(len(index) == 3 for index in neighbours)  # timeMark, localPortNum, index
    assert good.varbind_count == sum(len(rows) for rows in good.rows.values())
    snapshot = d.parse_lldp("p-sh1", good.rows)
    assert snapshot.chassis_id and len(snapshot.local_ports) == len(
        inventory.devices["p-sh1"].ports)
    assert bad.status is not PollStatus.REACHABLE and not bad.rows
    assert "wrong-auth-key-99" not in (bad.reason or "")
    assert credential.auth_key.get_secret_value() not in (bad.reason or "")


# --- real device walks -----------------------------------------------------------------------

# inventory key -> recording walked for it
WALKED = {"sw-2960x": "ios_2960x", "agg-5720": "vrp_5720", "crs317": "routeros_crs317",
          "pe-x": "vrp_ne8000-m8", "pe-y": "iosxe_asr920", "acc-3850": "iosxe_c3850"}
# Every device of the test inventory with its ports, in the short form where a vendor has
# one; the neighbours as the walks name them (by CDP device id, lldpRemSysName), a few on
# purpose by another name: with a domain, or under another key at the address CDP gives.
INVENTORY: dict[str, tuple[str | None, list[str]]] = {  # key: (address, ports)
    "sw-2960x": (None, ["Gi1/0/1", "Gi1/0/3", "Gi1/0/4", "Gi1/0/5", "Gi1/0/52", "Gi3/0/3",
                        "Gi3/0/4", "Gi3/0/52", "Po1", "Vl1"]),
    # GE0/0/9 is ifIndex 14, the S5720's LLDP port number 14 is GE0/0/14
    "agg-5720": (None, ["GE0/0/9", "GE0/0/14", "XGE0/0/1", "XGE0/0/2", "XGE0/0/4",
                        "MEth0/0/1"]),
    "crs317": (None, [f"sfp-sfpplus{n}" for n in range(13, 17)] + ["ether1"]),
    "pe-x": (None, ["GE0/8/0"]),
    "pe-y": (None, ["Gi0/0/0"]),
    "acc-3850": (None, ["Gi1/0/1"]),
    "acme-fr-ap-011": ("192.0.2.11", ["Gi0"]),
    "ap-13": ("172.27.49.77", ["Gi0"]),  # acme-fr-ap-013, found by its CDP address
    "acme-fr-ap-015.acme.example": ("192.0.2.15", ["Gi0"]),
    "acme-fr-ap-012": ("192.0.2.12", ["Gi0"]),
    "acme-fr-ap-014": ("192.0.2.14", ["Gi0"]),
    "acme-fr-s-001": ("192.0.2.1", ["Gi1/0/3", "Gi3/0/2"]),
    "LNS-Huawei": ("192.0.2.21", ["GE0/0/7"]),
    "CE-NG": ("192.0.2.22", ["10GE1/0/41", "10GE1/0/42"]),
    "Zrih": ("192.0.2.23", ["XGE0/0/1"]),
    "pm-test": ("192.0.2.24", ["GE0/0/1"]),
    "router": ("192.0.2.31", ["Guest", "Phones", "ether4", "ether6"]),
    "server-sw": ("192.0.2.32", ["sfp-sfpplus1"]),
    "shop-sw": ("192.0.2.33", ["sfp-sfpplus1"]),
    "SEP0015FAFE4806": ("192.0.2.34", ["Port 1"]),
    "SEP001795B0F381": ("192.0.2.35", ["SW PORT"]),
    "SEP001930D4A025": ("192.0.2.36", ["SW PORT"]),
    "core-sw.jason.corp.local": ("192.0.2.37", ["sfp-sfpplus14", "ether1"]),
    "ap": ("192.0.2.38", ["bridge"]),
}
CDP_LINKS = {  # what ios_2960x's cdpCacheTable says, placed
    ("sw-2960x:Gi1/0/3", "acme-fr-ap-011:Gi0"), ("sw-2960x:Gi1/0/4", "ap-13:Gi0"),
    ("sw-2960x:Gi1/0/5", "acme-fr-ap-015.acme.example:Gi0"),
    ("sw-2960x:Gi1/0/52", "acme-fr-s-001:Gi1/0/3"), ("sw-2960x:Gi3/0/3", "acme-fr-ap-012:Gi0"),
    ("sw-2960x:Gi3/0/4", "acme-fr-ap-014:Gi0"), ("sw-2960x:Gi3/0/52", "acme-fr-s-001:Gi3/0/2"),
}
HUAWEI_LINKS = {  # vrp_5720's lldpRemTable
    ("agg-5720:GE0/0/14", "LNS-Huawei:GE0/0/7"), ("agg-5720:XGE0/0/1", "CE-NG:10GE1/0/42"),
    ("agg-5720:XGE0/0/2", "Zrih:XGE0/0/1"), ("agg-5720:XGE0/0/4", "CE-NG:10GE1/0/41"),
    ("agg-5720:MEth0/0/1", "pm-test:GE0/0/1"),
}
ROUTEROS_LINKS = {  # routeros_crs317: lldpRemTable row -> mtxrNeighborInterfaceID -> ifName
    ("crs317:sfp-sfpplus15", "router:Guest"), ("crs317:sfp-sfpplus16", "router:Phones"),
    ("crs317:ether1", "router:Phones"), ("crs317:sfp-sfpplus16", "router:ether6"),
    ("crs317:sfp-sfpplus15", "router:ether6"), ("crs317:sfp-sfpplus15", "SEP0015FAFE4806:Port 1"),
    ("crs317:sfp-sfpplus14", "SEP001795B0F381:SW PORT"),
    ("crs317:sfp-sfpplus14", "SEP001930D4A025:SW PORT"), ("crs317:sfp-sfpplus13", "router:ether4"),
    ("crs317:sfp-sfpplus14", "router:Guest"), ("crs317:sfp-sfpplus13", "router:Phones"),
    ("crs317:sfp-sfpplus15", "core-sw.jason.corp.local:sfp-sfpplus14"),
    ("crs317:sfp-sfpplus15", "core-sw.jason.corp.local:ether1"),
    ("crs317:sfp-sfpplus13", "ap:bridge"), ("crs317:sfp-sfpplus15", "ap:bridge"),
}
ROUTEROS_UNPLACED = {  # (local port, reason) of the three rows that cannot be placed
    ("sfp-sfpplus15", "device server-sw (by system name) is heard, but the neighbour"
                      " announces no port"),
    ("sfp-sfpplus15", "device shop-sw (by system name) is heard, but the neighbour announces"
                      " no port"),
    ("sfp-sfpplus13", "matches no inventory device by chassis id, system name or management"
                      " address"),
}
SILENT_LINES = ["  pe-x: no LLDP or CDP neighbours table (neither protocol answers)",
                "  pe-y: no LLDP or CDP neighbours table (neither protocol answers)"]
QUIET_LINE = "  acc-3850: LLDP answers, no neighbour heard"


def _needs_recordings(names: Sequence[str]) -> None:
    missing = [name for name in names if name not in recording_names()]
    if missing:
        pytest.skip(f"no SNMP recording {', '.join(missing)} in {recordings_dir()}"
                    " (the shared folder's snmp-recordings/)")
    if not snmpsim_available():
        pytest.skip("snmpsim is not installed (pip install snmpsim==1.2.2 pysmi==2.0.0)")


@pytest.fixture(scope="module")
def recorded() -> Iterator[RecordingAgents]:
    _needs_recordings(list(WALKED.values()))
    with RecordingAgents(list(WALKED.values()), moving=False) as agents:
        yield agents


def _entries(agents: RecordingAgents, inventory: dict[str, tuple[str | None, list[str]]],
             walked: dict[str, str]) -> list[DeviceEntry]:
    """The inventory as discovery reads it from the store: no port has an if_index."""
    devices, port_id = [], 0
    for number, (key, (address, ports)) in enumerate(inventory.items(), start=1):
        entries = []
        for name in ports:
            port_id += 1
            entries.append(PortEntry(port_id, name, None))
        host = agents.endpoint(walked[key])[0] if key in walked else address
        devices.append(DeviceEntry(number, key, str(host), tuple(entries)))
    return devices


def _discover(agents: RecordingAgents, devices: list[DeviceEntry],
              walked: dict[str, str]) -> Discovery:
    ids = {device.key: device.id for device in devices}
    targets = [PollTarget(ids[key], key, *agents.endpoint(recording),
                          SnmpCredential("v2c", community=SecretStr(recording)), "default")
               for key, recording in walked.items()]

    async def run() -> Discovery:
        poller = SnmpPoller(timeout_s=2.0, retries=1)
        try:
            return await discover(targets, devices, poller)
        finally:
            poller.close()

    return asyncio.run(run())


def _pairs(found: Discovery, protocol: str | None = None) -> set[tuple[str, str]]:
    """The links as (walked end, other end), of one protocol when given."""
    pairs = set()
    for link in found.links:
        if protocol is None or link.protocols == (protocol,):
            a, z = str(link.a), str(link.z)
            pairs.add((a, z) if a.split(":")[0] in WALKED else (z, a))
    return pairs


def test_cdp_and_lldp_neighbours_of_real_walks(recorded: RecordingAgents) -> None:
    devices = _entries(recorded, INVENTORY, WALKED)
    found = _discover(recorded, devices, WALKED)
    assert not found.failures and found.walked == tuple(sorted(WALKED))
    tables = {t.device: (t.lldp, t.cdp, t.neighbours) for t in found.tables}
    assert tables == {"sw-2960x": (False, True, 7), "agg-5720": (True, False, 5),
                      "crs317": (True, False, 18), "pe-x": (False, False, 0),
                      "pe-y": (False, False, 0), "acc-3850": (True, False, 0)}
    assert _pairs(found, "cdp") == CDP_LINKS
    assert _pairs(found, "lldp") == HUAWEI_LINKS | ROUTEROS_LINKS
    assert _pairs(found) == CDP_LINKS | HUAWEI_LINKS | ROUTEROS_LINKS
    assert all(link.seen_by in (("sw-2960x",), ("agg-5720",), ("crs317",))
               for link in found.links)
    assert {(u.device, u.local_port, u.reason) for u in found.unresolved} == {
        ("crs317", port, reason) for port, reason in ROUTEROS_UNPLACED}
    renamed = {(r.device, r.name, r.source) for r in found.renamed}
    assert {("ap-13", "acme-fr-ap-013", "cdpCacheDeviceId seen by sw-2960x"),
            ("router", "router.jason.corp.local", "lldpRemSysName seen by crs317"),
            ("pe-x", "<private>", "sysName")} <= renamed
    assert found.silent == ("pe-x", "pe-y")
    lines = found.summary()
    assert lines[0] == ("Discovery: 6 of 6 device(s) walked, 27 link(s) found (0 seen from"
                        " both ends), 3 neighbour(s) unresolved, 0 device(s) failed.")
    assert lines[1:4] == [*SILENT_LINES, QUIET_LINE]


def test_local_ports_follow_names_not_numbers(recorded: RecordingAgents) -> None:
    """The 2960-X's inventory swaps two ifIndexes and gives a third that the device does
    not have: CDP rows, indexed by ifIndex, still land on the ports the device names. The
    S5720's LLDP port numbers are not ifIndexes: a port missing from the inventory is
    reported, not taken for the interface whose ifIndex has that number."""
    devices = _entries(recorded, INVENTORY, WALKED)
    stale = {"Gi1/0/3": 10104, "Gi1/0/4": 10103, "Gi1/0/52": 99999}
    devices = [replace(device, ports=tuple(replace(port, if_index=stale.get(port.name))
                                           for port in device.ports))
               if device.key == "sw-2960x" else device for device in devices]
    found = _discover(recorded, devices, {"sw-2960x": "ios_2960x"})
    assert _pairs(found) == CDP_LINKS and not found.unresolved
    # Without GE0/0/14 in the inventory, the S5720's LLDP port 14 (GigabitEthernet0/0/14)
    # is no port of it: not ifIndex 14 (GE0/0/9), the number taken for an ifIndex.
    devices = [replace(device, ports=tuple(p for p in device.ports if p.name != "GE0/0/14"))
               if device.key == "agg-5720" else device for device in devices]
    found = _discover(recorded, devices, {"agg-5720": "vrp_5720"})
    assert _pairs(found) == HUAWEI_LINKS - {("agg-5720:GE0/0/14", "LNS-Huawei:GE0/0/7")}
    [unplaced] = found.unresolved
    assert (unplaced.local_port, unplaced.reason) == (
        "port number 14 (GigabitEthernet0/0/14)",
        "local port number 14 is no port of agg-5720 in the inventory")


def _derived(tmp_path: Path, recording: str, name: str,
             extra: list[tuple[str, str, str]]) -> Path:
    """A copy of a recording with rows added, served under another name (community)."""
    records = parse_snmprec(recordings_dir() / f"{recording}.snmprec")
    records += [SnmprecRecord(tuple(int(p) for p in oid.split(".")), tag, value)
                for oid, tag, value in extra]
    path = tmp_path / f"{name}.snmprec"
    write_records(path, sorted(records, key=lambda record: record.oid))
    return path


LLDP_REM = "1.0.8802.1.1.2.1.4.1.1"
CDP_CACHE = "1.3.6.1.4.1.9.9.23.1.2.1.1"


def test_one_link_whichever_protocol_and_end_reports_it(tmp_path: Path) -> None:
    """The 2960-X hears acme-fr-s-001 on Gi1/0/52 over CDP and, in this copy, over LLDP
    too; acme-fr-s-001 (a copy of the 3850 walk) hears the 2960-X back over CDP. One link,
    seen from both ends with both protocols; the other CDP link of the pair stays one-sided."""
    _needs_recordings(["ios_2960x", "iosxe_c3850"])
    switch = _derived(tmp_path, "ios_2960x", "sw-2960x", [
        (f"{LLDP_REM}.4.0.10152.1", "2", "4"),
        (f"{LLDP_REM}.5.0.10152.1", "4x", "02ac0e000001"),
        (f"{LLDP_REM}.6.0.10152.1", "2", "5"),
        (f"{LLDP_REM}.7.0.10152.1", "4", "Gi1/0/3"),
        (f"{LLDP_REM}.9.0.10152.1", "4", "acme-fr-s-001.acme.example"),
    ])
    far = _derived(tmp_path, "iosxe_c3850", "acme-fr-s-001", [  # its ifIndex 10 is Gi1/0/3
        (f"{CDP_CACHE}.3.10.1", "2", "1"),
        (f"{CDP_CACHE}.4.10.1", "4x", "7f000501"),
        (f"{CDP_CACHE}.6.10.1", "4", "sw-2960x.acme.example(FOC1234X0AB)"),
        (f"{CDP_CACHE}.7.10.1", "4", "GigabitEthernet1/0/52"),
        (f"{CDP_CACHE}.8.10.1", "4", "cisco WS-C2960X-48FPD-L"),
    ])
    walked = {"sw-2960x": "sw-2960x", "acme-fr-s-001": "acme-fr-s-001"}
    inventory = {key: INVENTORY[key] for key in ("sw-2960x", "acme-fr-s-001")}
    with RecordingAgents([switch, far], moving=False) as agents:
        found = _discover(agents, _entries(agents, inventory, walked), walked)
    by_ends = {frozenset((str(link.a), str(link.z))): link for link in found.links}
    assert set(by_ends) == {frozenset(("sw-2960x:Gi1/0/52", "acme-fr-s-001:Gi1/0/3")),
                            frozenset(("sw-2960x:Gi3/0/52", "acme-fr-s-001:Gi3/0/2"))}
    both = by_ends[frozenset(("sw-2960x:Gi1/0/52", "acme-fr-s-001:Gi1/0/3"))]
    assert both.seen_by == ("acme-fr-s-001", "sw-2960x") and both.protocols == ("cdp", "lldp")
    one = by_ends[frozenset(("sw-2960x:Gi3/0/52", "acme-fr-s-001:Gi3/0/2"))]
    assert one.seen_by == ("sw-2960x",) and one.protocols == ("cdp",)
    tables = {t.device: str(t) for t in found.tables}
    assert tables["acme-fr-s-001"] == "acme-fr-s-001: LLDP and CDP answer, 1 neighbour(s)"
    # the five APs are not in this inventory: reported, not guessed
    assert len(found.unresolved) == 5
    assert all("matches no inventory device by CDP device id or address" in u.reason
               for u in found.unresolved)
    assert found.summary()[0].startswith("Discovery: 2 of 2 device(s) walked, 2 link(s) found"
                                         " (1 seen from both ends)")


def test_discover_command_tells_devices_without_neighbour_tables(
        recorded: RecordingAgents, db: Database, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`keyline topology discover` over an imported inventory of the recorded devices."""
    credentials, devices = [], []
    for number, recording in enumerate(WALKED.values(), start=1):
        variable = f"KEYLINE_TEST_RECORDING_COMMUNITY_{number}"
        monkeypatch.setenv(variable, recording)
        credentials.append({"id": f"rec-{number}", "kind": "snmp_v2c",
                            "community": {"env": variable}})
    for key, (address, ports) in INVENTORY.items():
        recording = WALKED.get(key)
        device: dict[str, object] = {
            "name": key, "role": "switch", "platform": "cisco_ios",
            "management_address": recorded.endpoint(recording)[0] if recording else address,
            "snmp_credential": (f"rec-{list(WALKED).index(key) + 1}" if recording
                                else "rec-1"),
            "ports": [{"name": port} for port in ports]}
        if recording:
            device["snmp_port"] = recorded.port
        devices.append(device)
    path = tmp_path / "inventory.yaml"  # JSON is YAML
    path.write_text(json.dumps({"credentials": credentials, "devices": devices}))
    _import(db, load_inventory([path]))
    result = _keyline(db, "discover", *WALKED)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == ("Discovery: 6 of 6 device(s) walked, 27 link(s) found (0 seen from"
                        " both ends), 3 neighbour(s) unresolved, 0 device(s) failed.")
    assert lines[1:4] == [*SILENT_LINES, QUIET_LINE]
    with db.pool.connection() as conn:
        stored = {frozenset((str(link.a), str(link.z))) for link in current_discovered_links(conn)}
    assert stored == {frozenset(pair) for pair in CDP_LINKS | HUAWEI_LINKS | ROUTEROS_LINKS}


def test_cdp_device_ids_and_their_names() -> None:
    """A CDP device ID is a hostname, often with its domain, or a hostname and a serial
    number, one in parentheses: each is tried as a name."""
    def names(device_id: str | None) -> list[str]:
        return d.CdpNeighbour(1, 1, device_id, "Gi0").names()

    assert names("acme-fr-s-001") == ["acme-fr-s-001"]
    assert names("N5K-1(SSI1234567)") == ["N5K-1(SSI1234567)", "N5K-1", "SSI1234567"]
    assert names("FOC1234X0AB (sw-1.example.net)") == [
        "FOC1234X0AB (sw-1.example.net)", "FOC1234X0AB", "sw-1.example.net"]
    assert names(None) == [] and names("") == []
