"""The simulated network (lab.sim): the example inventory as live SNMP agents on loopback.

One snmpsim process serves all 18 devices of the example inventory for the whole module.
Each device keeps its own management address (127.0.1.N); only the UDP port is moved to a
free one, so that this test never collides with a demo or another checkout's test using
1161. The checks read the agents the way Keyline's collectors will: pysnmp 7 asyncio
(v3arch hlapi), SNMPv2c for the edge and access routers, SNMPv3 authPriv (SHA/AES) for the
core.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from config.inventory.loader import load_inventory
from config.inventory.model import Inventory
from keyline.wiring import EXAMPLE_INVENTORY
from lab.sim import snmprec
from lab.sim.access import pysnmp_auth, with_lab_defaults
from lab.sim.cli import main as sim_main
from lab.sim.network import SimulatedNetwork, SimulatorError, snmpsim_available
from lab.sim.traffic import CounterSpec
from lab.sim.traps import IF_ADMIN_STATUS, IF_OPER_STATUS, LINK_DOWN, LINK_UP, decode_trap
from tests.snmp_agents import free_udp_port_on

NO_SNMPSIM = "snmpsim is not installed (pip install snmpsim==1.2.2 pysmi==2.0.0)"

IF_INDEX = "1.3.6.1.2.1.2.2.1.1"
IF_TYPE = "1.3.6.1.2.1.2.2.1.3"
IF_OPER = "1.3.6.1.2.1.2.2.1.8"
IF_IN_OCTETS = "1.3.6.1.2.1.2.2.1.10"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
IF_HC_IN_OCTETS = "1.3.6.1.2.1.31.1.1.1.6"
IF_HIGH_SPEED = "1.3.6.1.2.1.31.1.1.1.15"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
LLDP_REM_ENTRY = "1.0.8802.1.1.2.1.4.1.1"
LLDP_REM_MAN_ADDR_ENTRY = "1.0.8802.1.1.2.1.4.2.1"
FAULT_VISIBLE_WITHIN_S = 2.0


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    example = load_inventory([EXAMPLE_INVENTORY])
    port = free_udp_port_on([str(d.management_address) for d in example.devices.values()])
    devices = {key: replace(device, snmp_port=port) for key, device in example.devices.items()}
    return replace(example, devices=devices)


@pytest.fixture(scope="module")
def environ(inventory: Inventory) -> dict[str, str]:
    """The lab values of the example's KEYLINE_LAB_* secrets, as `keyline lab sim` uses."""
    values = with_lab_defaults(inventory, {})
    assert values["KEYLINE_LAB_SNMP_COMMUNITY"] == "keyline-lab-snmp-community"
    return values


@pytest.fixture(scope="module")
def traps() -> Iterator[socket.socket]:
    """A trap receiver on 127.0.0.1, any free port."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(3.0)
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def network(inventory: Inventory, environ: dict[str, str], traps: socket.socket,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedNetwork]:
    if not snmpsim_available():
        pytest.skip(NO_SNMPSIM)  # only the tests that need the running network
    work_dir = tmp_path_factory.mktemp("sim")
    simulated = SimulatedNetwork(inventory, work_dir, environ=environ,
                                 trap_receiver=traps.getsockname())
    simulated.start()
    pid = simulated.pid
    assert pid is not None
    yield simulated
    simulated.stop()
    assert not Path(f"/proc/{pid}").exists(), "snmpsim still running after stop()"
    assert not _processes_mentioning(str(work_dir)), "a process of the network is left over"
    assert not (work_dir / "control.sock").exists()


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@pytest.fixture(scope="module")
def snmp_loop() -> Iterator[asyncio.Runner]:
    """One event loop for the module's SNMP requests, so one pysnmp engine serves them all."""
    with asyncio.Runner() as loop:
        yield loop


@pytest.fixture(scope="module")
def snmp(snmp_loop: asyncio.Runner, network: SimulatedNetwork) -> Iterator[SnmpClient]:
    client = SnmpClient(snmp_loop, network)
    yield client
    client.close()


class SnmpClient:
    """GET and WALK against the simulated agents, each with its device's credential."""

    def __init__(self, runner: asyncio.Runner, network: SimulatedNetwork):
        from pysnmp.hlapi.v3arch.asyncio import SnmpEngine

        self.runner = runner
        self.network = network
        self.engine = runner.run(self._engine(SnmpEngine))

    @staticmethod
    async def _engine(factory):
        return factory()

    def close(self) -> None:
        self.engine.close_dispatcher()

    def get(self, device: str, *oids: str, auth=None, timeout_s: float = 2.0) -> list:
        from pysnmp.hlapi.v3arch.asyncio import (
            ContextData,
            ObjectIdentity,
            ObjectType,
            UdpTransportTarget,
            get_cmd,
        )

        async def run():
            target = await UdpTransportTarget.create(self.network.endpoint(device),
                                                     timeout=timeout_s, retries=0)
            error, status, _, varbinds = await get_cmd(
                self.engine, auth or pysnmp_auth(self.network.access(device)), target,
                ContextData(), *(ObjectType(ObjectIdentity(oid)) for oid in oids))
            if error or status:
                raise AssertionError(f"GET {device}: {error or status.prettyPrint()}")
            return [value for _, value in varbinds]

        return self.runner.run(run())

    def walk(self, device: str, oid: str) -> dict[tuple[int, ...], object]:
        """Every object under `oid`, keyed by the sub-identifiers after `oid`."""
        from pysnmp.hlapi.v3arch.asyncio import (
            ContextData,
            ObjectIdentity,
            ObjectType,
            UdpTransportTarget,
            bulk_walk_cmd,
        )

        prefix = tuple(int(part) for part in oid.split("."))

        async def run():
            target = await UdpTransportTarget.create(self.network.endpoint(device),
                                                     timeout=2.0, retries=0)
            found = {}
            async for error, status, _, varbinds in bulk_walk_cmd(
                    self.engine, pysnmp_auth(self.network.access(device)), target,
                    ContextData(), 0, 25, ObjectType(ObjectIdentity(oid)),
                    lexicographicMode=False):
                if error or status:
                    raise AssertionError(f"WALK {device} {oid}: {error or status}")
                for name, value in varbinds:
                    found[tuple(name)[len(prefix):]] = value
            return found

        return self.runner.run(run())


def _receive_trap(receiver: socket.socket) -> tuple[str, object]:
    datagram, (source, _) = receiver.recvfrom(65535)
    return source, decode_trap(datagram)


def _drain(receiver: socket.socket) -> None:
    receiver.setblocking(False)
    try:
        while True:
            receiver.recv(65535)
    except BlockingIOError:
        pass
    finally:
        receiver.settimeout(3.0)


# --- the data, without a network ---------------------------------------------------------


def test_counter_is_monotonic_wraps_at_32_bits_and_pauses() -> None:
    boot = 1_000_000.0
    wide = CounterSpec(rate_per_s=1.25e9, boot_epoch_s=boot, bits=64, jitter_ratio=0.3,
                       period_s=20.0, phase_rad=1.0)
    narrow = replace(wide, bits=32)
    previous = -1
    for step in range(2000):  # 10 days in steps of about 7 minutes
        now = boot + step * 433.7
        value = wide.value(now)
        assert value > previous
        assert narrow.value(now) == value % 2**32  # the low 32 bits of the 64-bit counter
        previous = value
    stopped = wide.paused(boot + 100.0)
    assert stopped.value(boot + 100.0) == stopped.value(boot + 500.0) == wide.value(boot + 100.0)
    resumed = stopped.resumed(boot + 500.0)
    assert resumed.value(boot + 500.0) == wide.value(boot + 100.0)  # no jump on resume
    assert resumed.value(boot + 510.0) > resumed.value(boot + 500.0)
    assert CounterSpec.decode(resumed.encode()) == resumed


def test_snmprec_lines_are_sorted_by_numeric_oid() -> None:
    records = [
        snmprec.integer(snmprec.oid("1.3.6.1.2.1.2.2.1.10", 1), 5),
        snmprec.integer(snmprec.oid("1.3.6.1.2.1.2.2.1.9", 1), 4),
        snmprec.octet_string(snmprec.oid("1.3.6.1.2.1.1.1.0"), "VRP\r\nHuawei"),
        snmprec.octet_string(snmprec.oid("1.3.6.1.2.1.1.5.0"), "pe1"),
    ]
    assert snmprec.render(records).splitlines() == [
        "1.3.6.1.2.1.1.1.0|4x|" + b"VRP\r\nHuawei".hex(),
        "1.3.6.1.2.1.1.5.0|4|pe1",
        "1.3.6.1.2.1.2.2.1.9.1|2|4",
        "1.3.6.1.2.1.2.2.1.10.1|2|5",
    ]
    with pytest.raises(ValueError, match="duplicate OID"):
        snmprec.render(records + records[:1])


def test_only_loopback_addresses_are_simulated(inventory: Inventory, tmp_path: Path) -> None:
    key = next(iter(inventory.devices))
    elsewhere = replace(inventory.devices[key], management_address=IPv4Address("192.0.2.1"))
    outside = replace(inventory, devices={**inventory.devices, key: elsewhere})
    with pytest.raises(ValueError, match="loopback"):
        SimulatedNetwork(outside, tmp_path, environ={})
    with pytest.raises(ValueError, match="loopback"):
        SimulatedNetwork(inventory, tmp_path, trap_receiver=("192.0.2.9", 162))


def test_refuses_a_work_dir_it_did_not_make(inventory: Inventory, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("someone's files")
    with pytest.raises(SimulatorError, match="not empty"):
        SimulatedNetwork(inventory, tmp_path, environ={}).start()
    assert (tmp_path / "notes.txt").exists()


# --- the running network -----------------------------------------------------------------


def test_data_files_are_sorted(network: SimulatedNetwork) -> None:
    files = sorted((network.work_dir / "data").rglob("*.snmprec"))
    assert len(files) == len(network.inventory.devices)
    for path in files:
        oids = [tuple(int(part) for part in line.split("|", 1)[0].split("."))
                for line in path.read_text().splitlines()]
        assert oids == sorted(set(oids)), path


@pytest.mark.parametrize("device", ["pe-sh1", "p-sh1"])  # SNMPv2c, SNMPv3 authPriv
def test_interfaces_match_the_inventory(snmp: SnmpClient, network: SimulatedNetwork,
                                        device: str) -> None:
    ports = network.inventory.devices[device].ports
    indexes = snmp.walk(device, IF_INDEX)
    names = snmp.walk(device, IF_NAME)
    assert {index[0]: int(value) for index, value in indexes.items()} == {
        port.if_index: port.if_index for port in ports}
    assert {index[0]: str(value) for index, value in names.items()} == {
        port.if_index: port.name for port in ports}
    assert {int(v) for v in snmp.walk(device, IF_TYPE).values()} == {6}
    speeds = {index[0]: int(value) for index, value in snmp.walk(device, IF_HIGH_SPEED).items()}
    assert speeds == {port.if_index: port.speed_bps // 1_000_000 for port in ports}
    assert str(snmp.get(device, SYS_NAME)[0]) == device


def test_each_agent_answers_only_its_own_credential(snmp: SnmpClient,
                                                    network: SimulatedNetwork) -> None:
    from pysnmp.hlapi.v3arch.asyncio import CommunityData

    v2c = pysnmp_auth(network.access("pe-sh1"))
    assert str(snmp.get("pe-sh1", SYS_NAME, auth=v2c)[0]) == "pe-sh1"
    with pytest.raises(AssertionError, match="No SNMP response"):
        snmp.get("p-sh1", SYS_NAME, auth=v2c, timeout_s=0.3)  # a v3 device
    with pytest.raises(AssertionError, match="No SNMP response"):
        snmp.get("pe-sh1", SYS_NAME, auth=CommunityData("not-the-community"), timeout_s=0.3)


def test_counters_grow_within_the_port_speed(snmp: SnmpClient,
                                             network: SimulatedNetwork) -> None:
    device = "pe-sh1"
    port = max(network.inventory.devices[device].ports, key=lambda p: p.speed_bps or 0)
    oids = (f"{IF_HC_IN_OCTETS}.{port.if_index}", f"{IF_IN_OCTETS}.{port.if_index}")
    first_hc, first_32 = (int(v) for v in snmp.get(device, *oids))
    first_at = time.monotonic()
    time.sleep(1.5)
    second_hc, _ = (int(v) for v in snmp.get(device, *oids))
    elapsed_s = time.monotonic() - first_at
    rate_bps = (second_hc - first_hc) * 8 / elapsed_s
    assert 0.05 * port.speed_bps < rate_bps <= port.speed_bps
    # one GET computes both within microseconds: ifInOctets is ifHCInOctets mod 2**32
    apart = min((first_hc - first_32) % 2**32, (first_32 - first_hc) % 2**32)
    assert apart <= rate_bps / 8 * 0.01


def _neighbours(snmp: SnmpClient, network: SimulatedNetwork,
                device: str) -> dict[str, tuple[str, str, str]]:
    """LLDP as a discovery reads it: local port name -> (neighbour name, neighbour port ID,
    neighbour management address)."""
    port_by_index = {p.if_index: p.name for p in network.inventory.devices[device].ports}
    rows = snmp.walk(device, LLDP_REM_ENTRY)
    addresses = {}  # the address is in the row index: ...subtype.length.address
    for column, *index in snmp.walk(device, LLDP_REM_MAN_ADDR_ENTRY):
        if column == 3:  # lldpRemManAddrIfSubtype, one per row
            remote_row, (subtype, length, *address) = tuple(index[:3]), index[3:]
            assert (subtype, length) == (1, 4)  # IPv4
            addresses[remote_row] = ".".join(map(str, address))
    found = {}
    for (column, *index) in rows:
        if column != 9:  # lldpRemSysName
            continue
        key = tuple(index)
        assert int(rows[(6, *key)]) == 5  # port ID subtype interfaceName
        assert int(rows[(4, *key)]) == 4  # chassis ID subtype macAddress
        found[port_by_index[key[1]]] = (str(rows[(9, *key)]), str(rows[(7, *key)]),
                                        addresses[key])
    return found


def test_lldp_tables_reveal_every_link(snmp: SnmpClient, network: SimulatedNetwork) -> None:
    inventory = network.inventory
    discovered = set()
    for device in inventory.devices:
        for local_port, (peer, peer_port, address) in _neighbours(snmp, network,
                                                                  device).items():
            assert address == str(inventory.devices[peer].management_address)
            discovered.add(frozenset({f"{device}:{local_port}", f"{peer}:{peer_port}"}))
    declared = {frozenset({str(link.a), str(link.z)}) for link in inventory.links.values()}
    assert discovered == declared


def _v2c_link(network: SimulatedNetwork) -> tuple[str, str, str, str]:
    for link in network.inventory.links.values():
        ends = (link.a.device, link.z.device)
        if all(network.access(device).version == "2c" for device in ends):
            return link.a.device, link.a.port, link.z.device, link.z.port
    raise AssertionError("the example has no link between two SNMPv2c devices")


def test_port_down_and_up(snmp: SnmpClient, network: SimulatedNetwork,
                          traps: socket.socket) -> None:
    device, port_name, peer, peer_port = _v2c_link(network)
    port = next(p for p in network.inventory.devices[device].ports if p.name == port_name)
    oper = f"{IF_OPER}.{port.if_index}"
    octets = f"{IF_HC_IN_OCTETS}.{port.if_index}"
    community = network.access(device).community.get_secret_value()
    _drain(traps)

    started = time.monotonic()
    assert network.set_port_status(device, port_name, "down") is True
    while int(snmp.get(device, oper)[0]) != 2:
        assert time.monotonic() - started < FAULT_VISIBLE_WITHIN_S, "ifOperStatus still up"
        time.sleep(0.05)
    source, trap = _receive_trap(traps)
    assert source == str(network.inventory.devices[device].management_address)
    assert trap.trap_oid == LINK_DOWN and trap.community == community
    assert trap.value(IF_OPER_STATUS, port.if_index) == 2
    assert trap.value(IF_ADMIN_STATUS, port.if_index) == 1
    assert port_name not in _neighbours(snmp, network, device)
    assert peer_port not in _neighbours(snmp, network, peer)
    frozen = int(snmp.get(device, octets)[0])
    time.sleep(0.3)
    assert int(snmp.get(device, octets)[0]) == frozen  # no traffic on a down link
    assert network.set_port_status(device, port_name, "down") is False  # already down

    assert network.set_port_status(device, port_name, "up") is True
    assert int(snmp.get(device, oper)[0]) == 1
    source, trap = _receive_trap(traps)
    assert trap.trap_oid == LINK_UP and trap.value(IF_OPER_STATUS, port.if_index) == 1
    assert _neighbours(snmp, network, device)[port_name][:2] == (peer, peer_port)
    assert _neighbours(snmp, network, peer)[peer_port][:2] == (device, port_name)
    time.sleep(0.2)
    assert int(snmp.get(device, octets)[0]) > frozen  # traffic resumes where it stopped


def test_fault_command_reaches_the_running_network(network: SimulatedNetwork,
                                                   traps: socket.socket,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    device, port_name, _, _ = _v2c_link(network)
    work_dir = str(network.work_dir)
    assert sim_main(["fault", "--work-dir", work_dir, device, port_name, "down"]) == 0
    assert network.port_status(device, port_name) == "down"
    assert sim_main(["status", "--work-dir", work_dir]) == 0
    assert sim_main(["fault", "--work-dir", work_dir, device, port_name, "up"]) == 0
    assert network.port_status(device, port_name) == "up"
    assert sim_main(["fault", "--work-dir", work_dir, "no-such-device", "x", "down"]) == 1
    output = capsys.readouterr()
    assert f"{device}:{port_name} is now down" in output.out
    assert f"down: {port_name}" in output.out
    assert "no-such-device is not in the simulated network" in output.err
    _drain(traps)


def test_lab_sim_finds_the_network_in_the_data_dir(network: SimulatedNetwork,
                                                    tmp_path: Path) -> None:
    """`keyline lab sim status` with no --work-dir reaches the network running in the data
    directory's lab-sim folder, where `keyline demo` runs its own (KEYLINE_DATA_DIR here)."""
    import subprocess
    import sys

    (tmp_path / "lab-sim").symlink_to(network.work_dir)
    env = {key: value for key, value in os.environ.items() if not key.startswith("KEYLINE_")}
    found = subprocess.run([sys.executable, "-m", "keyline", "lab", "sim", "status"],
                           env=dict(env, KEYLINE_DATA_DIR=str(tmp_path)), capture_output=True,
                           text=True, timeout=60)
    assert found.returncode == 0, found.stderr
    assert all(key in found.stdout for key in network.inventory.devices)
    elsewhere = subprocess.run([sys.executable, "-m", "keyline", "lab", "sim", "status"],
                               env=dict(env, KEYLINE_DATA_DIR=str(tmp_path / "other")),
                               capture_output=True, text=True, timeout=60)
    assert elsewhere.returncode == 1
    assert f"no simulated network is running in {tmp_path / 'other' / 'lab-sim'}" in (
        elsewhere.stderr)


def test_a_second_network_in_a_running_ones_work_dir_is_refused(
        network: SimulatedNetwork, inventory: Inventory, environ: dict[str, str]) -> None:
    pid = network.pid
    second = SimulatedNetwork(inventory, network.work_dir, environ=environ)
    with pytest.raises(SimulatorError, match="already running in"):
        second.start()
    assert network.running and network.pid == pid  # not taken for a left-over and stopped


def test_start_timing_is_recorded(network: SimulatedNetwork) -> None:
    assert network.started_in_s is not None and network.started_in_s < 15
    assert os.stat(network.args_file).st_mode & 0o077 == 0  # secrets are owner-only


def test_keyline_poll_once_reads_the_simulated_network(network: SimulatedNetwork, inventory,
                                                       tmp_path: Path, pg_server) -> None:
    """`keyline poll --once DEVICE` against the running simulated network: the inventory in a
    store, the secrets from the lab defaults, one block per device."""
    import subprocess
    import sys

    import psycopg

    from store.inventory import apply_inventory
    from store.migrate import migrate

    name = f"poll_once_{os.getpid()}"
    with psycopg.connect(pg_server.url_for("postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = pg_server.url_for(name)
    with psycopg.connect(url) as conn:
        migrate(conn)
        apply_inventory(conn, inventory)
    device = sorted(inventory.devices)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYLINE_")}
    result = subprocess.run(
        [sys.executable, "-m", "keyline", "--database-url", url, "poll", "--once", device,
         "no-such-device"], capture_output=True, text=True, env=env, timeout=120)
    # the known device is polled and shown; the unknown one makes it bad input
    assert result.returncode == 2, result.stderr
    assert "no such active device in the inventory: no-such-device" in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "device no-such-device: no such active device in the inventory: not polled"
    assert lines[1].startswith(f"{device} ({inventory.devices[device].management_address}:")
    assert ": reachable in " in lines[1]
    assert f"sysName {device}," in lines[2]
    for port in inventory.devices[device].ports:
        line = next(line for line in lines if line.strip().startswith(port.name))
        assert f"ifIndex {port.if_index} " in line and "admin up, oper up" in line, line
        assert "[by if_index]" in line and "Mbit/s from" in line, line
