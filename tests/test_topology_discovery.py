"""LLDP discovery against the simulated network, reconciliation and acceptance in the store.

One simulated network (lab.sim, the example inventory on loopback, SNMPv2c edge and SNMPv3
authPriv core) serves the module; each test has its own database (the `db` fixture) into
which it imports an inventory: the example itself, or a copy of its files in which one
declared link is removed and a wrong one added. Discovery reads the network through
`SnmpPoller.walk`, with the credentials resolved from the lab's defaults as `keyline` does.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from collectors.model import PollStatus
from collectors.snmp import SnmpPoller
from collectors.targets import load_poll_targets
from config.inventory.loader import load_inventory
from config.inventory.model import Inventory
from keyline.cli import main
from keyline.topology_cli import topology
from keyline.wiring import EXAMPLE_INVENTORY
from lab.sim.access import with_lab_defaults
from lab.sim.network import SimulatedNetwork, snmpsim_available
from store.database import Database
from store.inventory import apply_inventory
from store.topology import current_discovered_links, declared_links, latest_run
from tests.snmp_agents import free_udp_port_on
from topology import discovery as d
from topology.discovery import run_discovery
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
