"""The simulated CLI (lab/sim/ssh.py, lab/sim/cli_outputs.py), driven by netmiko as a
collector drives a real router.

One simulated network for the module: a device of each platform (cisco_ios, cisco_xr,
huawei_vrp, hp_comware, juniper_junos, linux) and a Cisco IOS device whose credential has an
enable secret, each with its SSH server on its own loopback address and a free TCP port.
netmiko (paramiko underneath) logs in with the credential, runs the platform's session
preparation and the profile's commands; the outputs must parse with the ntc-templates
template of the platform, show every inventory port with the status the SNMP agent serves,
and carry the same counters as the agent. Each fault mode is checked by what netmiko then
does (an authentication error, a timeout, a prompt it cannot find...).
"""

from __future__ import annotations

import asyncio
import io
import socket
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from config.inventory.loader import load_inventory
from config.inventory.model import Inventory
from lab.sim.access import with_lab_defaults
from lab.sim.cli import main as sim_main
from lab.sim.cli_outputs import PLATFORMS, planted_secrets
from lab.sim.control import ControlError, request
from lab.sim.network import SimulatedNetwork, SimulatorError, snmpsim_available
from lab.sim.ssh import (
    CliDevice,
    CliServers,
    free_tcp_port_on,
    resolve_cli_access,
    with_cli_port,
)
from tests.snmp_agents import free_udp_port_on

netmiko = pytest.importorskip("netmiko", reason="netmiko is not installed (pip install -e .)")
from netmiko import ConnectHandler  # noqa: E402
from netmiko.exceptions import (  # noqa: E402
    NetmikoAuthenticationException,
    NetmikoTimeoutException,
    ReadTimeout,
)

NO_SNMPSIM = "snmpsim is not installed (pip install snmpsim==1.2.2 pysmi==2.0.0)"
COMMUNITY_ENV = "KEYLINE_LAB_SNMP_COMMUNITY"
PASSWORD_ENV = "KEYLINE_LAB_SSH_PASSWORD"
ENABLE_ENV = "KEYLINE_LAB_SSH_ENABLE_SECRET"
IF_HC_IN_OCTETS = "1.3.6.1.2.1.31.1.1.1.6"
# netmiko's own timeouts are tens of seconds; a simulated device on loopback answers in
# milliseconds, so these only bound how long a failing test hangs - except where a test
# waits for a timeout on purpose (hang, unexpected prompt), where they are what it waits.
CONNECT_TIMEOUT_S = 10.0
EXPECTED_TIMEOUT_S = 1.0

NETWORK_YAML = """\
devices:
  - name: r-ios
    role: PE
    platform: cisco_ios
    management_address: 127.0.15.1
    snmp_credential: lab-v2c
    cli_credential: lab-ssh
    ports:
      - {name: GigabitEthernet0/0/0, if_index: 1, speed_bps: 1G, description: "to customer LAN"}
      - {name: GigabitEthernet0/0/1, if_index: 2, speed_bps: 1G}
      - {name: TenGigabitEthernet0/1/0, if_index: 3, speed_bps: 10G, description: "to r-vrp"}
      - {name: Port-channel1, if_index: 40, speed_bps: 20G, description: "to r-xr"}
  - name: r-xr
    role: P
    platform: cisco_xr
    management_address: 127.0.15.2
    snmp_credential: lab-v2c
    cli_credential: lab-ssh
    ports:
      - {name: TenGigE0/0/0/0, if_index: 5, speed_bps: 10G, description: "to r-junos"}
      - {name: TenGigE0/0/0/1, if_index: 6, speed_bps: 10G}
      - {name: Bundle-Ether1, if_index: 40, speed_bps: 20G, description: "to r-ios"}
  - name: r-vrp
    role: PE
    platform: huawei_vrp
    management_address: 127.0.15.3
    snmp_credential: lab-v2c
    cli_credential: lab-ssh
    ports:
      - {name: GigabitEthernet0/0/1, if_index: 7, speed_bps: 1G, description: "to r-h3c"}
      - {name: XGigabitEthernet0/1/0, if_index: 8, speed_bps: 10G, description: "to r-ios"}
      - {name: Eth-Trunk1, if_index: 60, speed_bps: 20G}
  - name: r-h3c
    role: CE
    platform: hp_comware
    management_address: 127.0.15.4
    snmp_credential: lab-v2c
    cli_credential: lab-ssh
    ports:
      - {name: GigabitEthernet1/0/1, if_index: 1, speed_bps: 1G, description: "to r-vrp"}
      - {name: Ten-GigabitEthernet1/0/49, if_index: 49, speed_bps: 10G}
  - name: r-junos
    role: P
    platform: juniper_junos
    management_address: 127.0.15.5
    snmp_credential: lab-v2c
    cli_credential: lab-ssh
    ports:
      - {name: xe-0/0/0, if_index: 520, speed_bps: 10G, description: "to r-xr"}
      - {name: ge-0/0/1, if_index: 521, speed_bps: 1G}
      - {name: ae0, if_index: 600, speed_bps: 20G}
  - name: r-linux
    role: server
    platform: linux
    management_address: 127.0.15.6
    snmp_credential: lab-v2c
    cli_credential: lab-ssh
    ports:
      - {name: eth0, if_index: 2, speed_bps: 1G}
      - {name: eth1, if_index: 3, speed_bps: 1G}
  - name: r-enable
    role: CE
    platform: cisco_ios
    management_address: 127.0.15.7
    snmp_credential: lab-v2c
    cli_credential: lab-ssh-enable
    ports:
      - {name: GigabitEthernet0/0/0, if_index: 1, speed_bps: 1G}
  - name: r-nocli
    role: CE
    platform: cisco_ios
    management_address: 127.0.15.8
    snmp_credential: lab-v2c
    ports:
      - {name: GigabitEthernet0/0/0, if_index: 1, speed_bps: 1G}
links:
  - a: {device: r-ios, port: TenGigabitEthernet0/1/0}
    z: {device: r-vrp, port: XGigabitEthernet0/1/0}
  - {a: {device: r-ios, port: Port-channel1}, z: {device: r-xr, port: Bundle-Ether1}}
  - {a: {device: r-xr, port: TenGigE0/0/0/0}, z: {device: r-junos, port: xe-0/0/0}}
  - {a: {device: r-vrp, port: GigabitEthernet0/0/1}, z: {device: r-h3c, port: GigabitEthernet1/0/1}}
"""
CREDENTIALS_YAML = f"""\
credentials:
  - id: lab-v2c
    kind: snmp_v2c
    community: {{env: {COMMUNITY_ENV}}}
  - id: lab-ssh
    kind: ssh
    username: keyline
    password: {{env: {PASSWORD_ENV}}}
    port: 2222
  - id: lab-ssh-enable
    kind: ssh
    username: operator
    password: {{env: {PASSWORD_ENV}}}
    enable_secret: {{env: {ENABLE_ENV}}}
    port: 2222
"""
DEVICE_TYPES = {"cisco_ios": "cisco_ios", "cisco_xr": "cisco_xr", "huawei_vrp": "huawei",
                "hp_comware": "hp_comware", "juniper_junos": "juniper_junos",
                "linux": "linux"}
DEVICE_OF = {"cisco_ios": "r-ios", "cisco_xr": "r-xr", "huawei_vrp": "r-vrp",
             "hp_comware": "r-h3c", "juniper_junos": "r-junos", "linux": "r-linux"}
# each platform's status field in its ntc-templates records, and the word for "up"
STATUS_FIELD = {"cisco_ios": ("link_status", "up"), "cisco_xr": ("link_status", "up"),
                "huawei_vrp": ("link_status", "UP"), "hp_comware": ("line_status", "UP"),
                "juniper_junos": ("link_status", "Up")}
DOWN_WORD = {"cisco_ios": "down", "cisco_xr": "down", "huawei_vrp": "DOWN",
             "hp_comware": "DOWN", "juniper_junos": "Down"}


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Inventory:
    folder = tmp_path_factory.mktemp("inventory")
    (folder / "network.yaml").write_text(NETWORK_YAML)
    (folder / "credentials.yaml").write_text(CREDENTIALS_YAML)
    loaded = load_inventory([folder])
    addresses = [str(device.management_address) for device in loaded.devices.values()]
    snmp_port = free_udp_port_on(addresses)
    loaded = replace(loaded, devices={key: replace(device, snmp_port=snmp_port)
                                      for key, device in loaded.devices.items()})
    return with_cli_port(loaded, free_tcp_port_on(addresses))


@pytest.fixture(scope="module")
def environ(inventory: Inventory) -> dict[str, str]:
    values = with_lab_defaults(inventory, {})
    assert values[ENABLE_ENV] != values[PASSWORD_ENV]
    return values


@pytest.fixture(scope="module")
def network(inventory: Inventory, environ: dict[str, str],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedNetwork]:
    if not snmpsim_available():
        pytest.skip(NO_SNMPSIM)
    traps = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    traps.bind(("127.0.0.1", 0))
    simulated = SimulatedNetwork(inventory, tmp_path_factory.mktemp("sim"), environ=environ,
                                 trap_receiver=traps.getsockname(), cli=True)
    simulated.start()
    yield simulated
    simulated.stop()
    traps.close()
    for key in ("r-ios", "r-vrp"):  # nothing listens after stop()
        with pytest.raises(OSError), socket.create_connection(
                (str(inventory.devices[key].management_address),
                 inventory.credentials["lab-ssh"].params["port"]), timeout=2):
            pass


@pytest.fixture(autouse=True)
def normal_cli(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test leaves the CLIs it touched in normal mode and its ports up."""
    yield
    if "network" not in request.fixturenames:
        return
    network: SimulatedNetwork = request.getfixturevalue("network")
    for key in DEVICE_OF.values():
        network.cli_mode(key, "normal")
    for port in network.down_ports():
        device, _, name = port.partition(":")
        network.set_port_status(device, name, "up")


def connect(network: SimulatedNetwork, environ: dict[str, str], device_key: str,
            **options: Any) -> Any:
    host, port = network.cli_endpoint(device_key)
    platform = network.inventory.devices[device_key].platform
    options.setdefault("conn_timeout", CONNECT_TIMEOUT_S)
    options.setdefault("username", network.inventory.credentials[
        network.inventory.devices[device_key].cli_credential or ""].params["username"])
    return ConnectHandler(device_type=DEVICE_TYPES[platform], host=host, port=port,
                          password=environ[PASSWORD_ENV], **options)


def parse(platform: str, command: str, text: str) -> list[dict[str, Any]]:
    from ntc_templates.parse import parse_output

    return parse_output(platform=platform, command=command, data=text)


# --- every platform ------------------------------------------------------------------------


@pytest.mark.parametrize("platform", sorted(set(DEVICE_OF) - {"linux"}))
def test_netmiko_logs_in_and_the_interfaces_parse(network: SimulatedNetwork,
                                                  environ: dict[str, str],
                                                  platform: str) -> None:
    key = DEVICE_OF[platform]
    facts = PLATFORMS[platform]
    with connect(network, environ, key) as session:
        prompt = session.find_prompt()
        interfaces = session.send_command(facts.interfaces_command)
        config = session.send_command(facts.config_command)
    assert prompt.strip() == facts.prompt.format(host=key, user="keyline").strip()
    records = parse(platform, facts.interfaces_command, interfaces)
    field, up = STATUS_FIELD[platform]
    statuses = {record["interface"]: record[field] for record in records}
    ports = [port.name for port in network.inventory.devices[key].ports]
    assert statuses == dict.fromkeys(ports, up)
    assert f"{key}" in config
    for secret in planted_secrets(key):  # the configuration carries secrets to mask
        assert secret[:12] in config
    assert prompt not in interfaces and facts.interfaces_command not in interfaces


def test_linux_proc_net_dev_lists_every_port(network: SimulatedNetwork,
                                             environ: dict[str, str]) -> None:
    with connect(network, environ, "r-linux") as session:
        assert session.find_prompt() == "keyline@r-linux:~$"
        text = session.send_command("cat /proc/net/dev")
        refused = session.send_command("show interfaces")
    lines = text.splitlines()
    assert lines[0].startswith("Inter-|") and "|bytes" in lines[1]
    rows = {line.split(":")[0].strip(): line.split(":")[1].split() for line in lines[2:]}
    assert sorted(rows) == ["eth0", "eth1"]
    assert all(len(values) == 16 and all(v.isdigit() for v in values)
               for values in rows.values())
    assert refused == "-bash: show: command not found"
    template = Path(__file__).resolve().parent.parent / "collectors" / "profiles" / \
        "templates" / "linux_cat_proc_net_dev.textfsm"
    if not template.exists():
        pytest.skip("no TextFSM template for `cat /proc/net/dev` yet "
                    f"({template.relative_to(template.parents[3])}, part A of issue 15)")
    import textfsm

    with template.open() as stream:
        parsed = textfsm.TextFSM(stream).ParseTextToDicts(text)
    assert len(parsed) == 2


def test_cli_counters_are_the_snmp_agents_counters(network: SimulatedNetwork,
                                                   environ: dict[str, str]) -> None:
    """A monotonic counter read over SNMP before and after the CLI read brackets it."""
    port = network.inventory.devices["r-ios"].ports[2]  # TenGigabitEthernet0/1/0
    with connect(network, environ, "r-ios") as session:
        before = snmp_get(network, "r-ios", f"{IF_HC_IN_OCTETS}.{port.if_index}")
        text = session.send_command("show interfaces")
        after = snmp_get(network, "r-ios", f"{IF_HC_IN_OCTETS}.{port.if_index}")
    record = next(r for r in parse("cisco_ios", "show interfaces", text)
                  if r["interface"] == port.name)
    block = text.split(f"{port.name} is ")[1].split(" is up, line protocol")[0]
    octets = int(block.split(" packets input, ")[1].split(" bytes")[0])
    assert before < after, "the link's counter should be growing"
    assert before <= octets <= after
    assert int(record["input_packets"]) > 0


def snmp_get(network: SimulatedNetwork, device_key: str, oid: str) -> int:
    from pysnmp.hlapi.v3arch.asyncio import (
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        get_cmd,
    )

    from lab.sim.access import pysnmp_auth

    async def get() -> int:
        engine = SnmpEngine()
        try:
            target = await UdpTransportTarget.create(network.endpoint(device_key), timeout=2,
                                                     retries=2)
            error, status, _, binds = await get_cmd(
                engine, pysnmp_auth(network.access(device_key)), target, ContextData(),
                ObjectType(ObjectIdentity(oid)))
        finally:
            engine.close_dispatcher()
        assert not error and not status, (error, status)
        return int(binds[0][1])

    return asyncio.run(get())


@pytest.mark.parametrize("platform", ["cisco_ios", "huawei_vrp", "juniper_junos"])
def test_a_port_set_down_shows_down(network: SimulatedNetwork, environ: dict[str, str],
                                    platform: str) -> None:
    key = DEVICE_OF[platform]
    facts = PLATFORMS[platform]
    port = network.inventory.devices[key].ports[1].name
    field, up = STATUS_FIELD[platform]
    with connect(network, environ, key) as session:
        network.set_port_status(key, port, "down")
        down = parse(platform, facts.interfaces_command,
                     session.send_command(facts.interfaces_command))
        network.set_port_status(key, port, "up")
        again = parse(platform, facts.interfaces_command,
                      session.send_command(facts.interfaces_command))
    assert {r["interface"]: r[field] for r in down}[port] == DOWN_WORD[platform]
    assert sum(r[field] == up for r in down) == len(down) - 1
    assert {r["interface"]: r[field] for r in again}[port] == up


@pytest.mark.parametrize(("platform", "words"), [
    ("cisco_ios", "% Invalid input detected at '^' marker."),
    ("cisco_xr", "% Invalid input detected at '^' marker."),
    ("huawei_vrp", "Error: Unrecognized command found at '^' position."),
    ("hp_comware", "% Unrecognized command found at '^' position."),
    ("juniper_junos", "unknown command."),
])
def test_unknown_commands_are_refused_in_the_platforms_words(
        network: SimulatedNetwork, environ: dict[str, str], platform: str,
        words: str) -> None:
    key = DEVICE_OF[platform]
    with connect(network, environ, key) as session:
        answer = session.send_command("show bogus-thing")
    caret, message = answer.splitlines()[:2]
    assert message.strip() == words
    # the caret stands under the first word the device does not know, counting the prompt
    typed = PLATFORMS[platform].prompt.format(host=key, user="keyline") + "show bogus-thing"
    unknown = "show" if platform in ("huawei_vrp", "hp_comware") else "bogus-thing"
    assert caret.strip() == "^"
    assert typed[caret.index("^"):].startswith(unknown)


# --- running configuration ------------------------------------------------------------------


def test_a_configuration_change_shows_in_the_running_configuration(
        network: SimulatedNetwork, environ: dict[str, str]) -> None:
    planted = "username backdoor privilege 15 secret 5 $1$mERr$hx5rVt7rPNoS4wqbXKX7m0"
    removed = " description to customer LAN"
    with connect(network, environ, "r-ios") as session:
        first = session.send_command("show running-config")
        assert network.change_cli_config("r-ios", add=[planted], remove=[removed])
        second = session.send_command("show running-config")
        # through the control socket, as `keyline lab sim` users and other processes do
        answer = request(network.work_dir, {"command": "cli-config", "device": "r-ios",
                                            "remove": [planted], "add": [removed]})
        third = session.send_command("show running-config")
    assert answer["changed"] is True
    assert planted not in first and removed in first
    assert planted in second and removed not in second
    assert second.rstrip().endswith("end")
    assert "Last configuration change at" in second
    assert planted not in third and removed in third


def test_a_bad_configuration_change_changes_nothing(network: SimulatedNetwork) -> None:
    before = network.cli_config("r-vrp")
    with pytest.raises(ControlError, match="no line 'interface Bogus0/0/0'"):
        request(network.work_dir, {"command": "cli-config", "device": "r-vrp",
                                   "add": ["sysname other"],
                                   "remove": ["interface Bogus0/0/0"]})
    with pytest.raises(SimulatorError, match="one line"):
        network.change_cli_config("r-vrp", add=["a\nb"])
    with pytest.raises(SimulatorError, match="r-nocli has no simulated CLI"):
        network.change_cli_config("r-nocli", add=["x"])
    assert network.cli_config("r-vrp") == before


# --- fault modes --------------------------------------------------------------------------------


def test_auth_fail_refuses_every_login(network: SimulatedNetwork,
                                       environ: dict[str, str]) -> None:
    network.cli_mode("r-vrp", "auth-fail")
    with pytest.raises(NetmikoAuthenticationException):
        connect(network, environ, "r-vrp")
    network.cli_mode("r-vrp", "normal")
    with connect(network, environ, "r-vrp") as session:
        assert session.find_prompt() == "<r-vrp>"
    with pytest.raises(NetmikoAuthenticationException):
        connect(network, {PASSWORD_ENV: "not-the-password"}, "r-vrp")


def test_hang_accepts_tcp_and_never_sends_a_banner(network: SimulatedNetwork,
                                                   environ: dict[str, str]) -> None:
    host, port = network.cli_endpoint("r-ios")
    live = connect(network, environ, "r-ios")
    network.cli_mode("r-ios", "hang")
    with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S) as raw:
        raw.settimeout(EXPECTED_TIMEOUT_S)
        with pytest.raises(TimeoutError):
            raw.recv(64)  # a normal SSH server speaks first: "SSH-2.0-..."
    with pytest.raises(NetmikoTimeoutException):
        connect(network, environ, "r-ios", banner_timeout=EXPECTED_TIMEOUT_S,
                auth_timeout=EXPECTED_TIMEOUT_S)
    with pytest.raises(ReadTimeout):  # a live session stops answering too
        # (expect_string and no echo check: else netmiko first hunts for the prompt with
        # its own growing pauses, tens of seconds)
        live.send_command("show interfaces", expect_string="r-ios#", cmd_verify=False,
                          read_timeout=EXPECTED_TIMEOUT_S)
    network.cli_mode("r-ios", "normal")
    live.disconnect()
    with connect(network, environ, "r-ios") as session:
        assert session.find_prompt() == "r-ios#"


def test_a_device_set_down_hangs_its_cli(network: SimulatedNetwork,
                                         environ: dict[str, str]) -> None:
    network.set_device_status("r-h3c", "down")
    try:
        with pytest.raises(NetmikoTimeoutException):
            # as root the address is blackholed (no TCP at all), else TCP without a banner
            connect(network, environ, "r-h3c", conn_timeout=EXPECTED_TIMEOUT_S,
                    banner_timeout=EXPECTED_TIMEOUT_S, auth_timeout=EXPECTED_TIMEOUT_S)
    finally:
        network.set_device_status("r-h3c", "up")
    with connect(network, environ, "r-h3c") as session:
        assert session.find_prompt() == "<r-h3c>"


def test_garbage_answers_commands_with_noise(network: SimulatedNetwork,
                                             environ: dict[str, str]) -> None:
    with connect(network, environ, "r-ios") as session:
        network.cli_mode("r-ios", "garbage")  # a live session: the next command
        text = session.send_command("show interfaces")
    assert text.strip()
    assert parse("cisco_ios", "show interfaces", text) == []
    assert not any(port.name in text for port in network.inventory.devices["r-ios"].ports)
    with connect(network, environ, "r-ios") as session:  # the session commands still work
        assert session.find_prompt() == "r-ios#"
        assert parse("cisco_ios", "show interfaces", session.send_command("show int")) == []


def test_slow_delays_every_answer(network: SimulatedNetwork, environ: dict[str, str]) -> None:
    delay_s = 1.0
    with connect(network, environ, "r-vrp") as session:
        request(network.work_dir, {"command": "cli-mode", "device": "r-vrp", "mode": "slow",
                                   "delay_s": delay_s})
        # the answer cannot come before the delay, however fast the machine
        started = time.monotonic()
        text = session.send_command("display interface", read_timeout=delay_s * 30)
        assert time.monotonic() - started >= delay_s
    assert len(parse("huawei_vrp", "display interface", text)) == 3
    network.cli_mode("r-vrp", "normal")
    with connect(network, environ, "r-vrp") as session:
        network.cli_mode("r-vrp", "slow", delay_s=delay_s)
        with pytest.raises(ReadTimeout):
            session.send_command("display interface", read_timeout=delay_s / 4)


def test_low_privilege_cisco_stays_unprivileged(network: SimulatedNetwork,
                                                environ: dict[str, str]) -> None:
    network.cli_mode("r-ios", "low-privilege")
    with connect(network, environ, "r-ios", secret="anything") as session:
        assert session.find_prompt() == "r-ios>"
        with pytest.raises(ValueError, match="Failed to enter enable mode"):
            session.enable()
        refused = session.send_command("show running-config")
        interfaces = session.send_command("show interfaces")
    assert "% Invalid input detected at '^' marker." in refused
    assert len(parse("cisco_ios", "show interfaces", interfaces)) == 4


@pytest.mark.parametrize(("platform", "words"), [
    ("huawei_vrp", "Error: You do not have permission to run the command or the command is "
                   "incomplete."),
    ("hp_comware", "% Permission denied."),
])
def test_low_privilege_refuses_the_configuration(network: SimulatedNetwork,
                                                 environ: dict[str, str], platform: str,
                                                 words: str) -> None:
    key = DEVICE_OF[platform]
    network.cli_mode(key, "low-privilege")
    with connect(network, environ, key) as session:
        refused = session.send_command(PLATFORMS[platform].config_command)
        interfaces = session.send_command(PLATFORMS[platform].interfaces_command)
    assert refused.strip() == words
    assert parse(platform, PLATFORMS[platform].interfaces_command, interfaces)


def test_enable_with_the_credentials_secret(network: SimulatedNetwork,
                                            environ: dict[str, str]) -> None:
    with connect(network, environ, "r-enable", secret=environ[ENABLE_ENV]) as session:
        assert session.find_prompt() == "r-enable>"
        assert "% Invalid input" in session.send_command("show running-config")
        session.enable()
        assert session.find_prompt() == "r-enable#"
        assert "hostname r-enable" in session.send_command("show running-config")
    with connect(network, environ, "r-enable", secret="wrong-secret") as session, \
            pytest.raises(ValueError, match="Failed to enter enable mode"):
        session.enable()


def test_unexpected_prompt_defeats_netmikos_prompt_detection(
        network: SimulatedNetwork, environ: dict[str, str]) -> None:
    network.cli_mode("r-xr", "unexpected-prompt")
    with pytest.raises((ReadTimeout, NetmikoTimeoutException)):
        connect(network, environ, "r-xr", read_timeout_override=EXPECTED_TIMEOUT_S)
    network.cli_mode("r-xr", "normal")
    with connect(network, environ, "r-xr") as session:
        assert session.find_prompt() == "RP/0/RSP0/CPU0:r-xr#"


def test_a_rotated_host_key_is_refused_by_a_client_that_knew_the_old_one(
        network: SimulatedNetwork, environ: dict[str, str], tmp_path: Path) -> None:
    import paramiko

    host, port = network.cli_endpoint("r-junos")
    old = network.cli_host_key("r-junos")
    assert offered_key(host, port) == old.split()[:2]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[{host}]:{port} {' '.join(old.split()[:2])}\n")
    with connect(network, environ, "r-junos", ssh_strict=True, system_host_keys=False,
                 alt_host_keys=True, alt_key_file=str(known_hosts)) as session:
        assert session.find_prompt() == "keyline@r-junos>"
    new = request(network.work_dir, {"command": "host-key", "device": "r-junos"})["public_key"]
    assert new == network.cli_host_key("r-junos") and new.split()[1] != old.split()[1]
    assert offered_key(host, port) == new.split()[:2]
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.BadHostKeyException):
        client.connect(host, port, username="keyline", password=environ[PASSWORD_ENV],
                       look_for_keys=False, allow_agent=False, timeout=CONNECT_TIMEOUT_S)
    client.close()


def offered_key(host: str, port: int) -> list[str]:
    """The (type, base64) of the host key the server shows, read before any login."""
    import paramiko

    with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S) as sock:
        transport = paramiko.Transport(sock)
        try:
            transport.start_client(timeout=CONNECT_TIMEOUT_S)
            key = transport.get_remote_server_key()
        finally:
            transport.close()
    return [key.get_name(), key.get_base64()]


# --- control and command line --------------------------------------------------------------------


def test_status_lists_the_ssh_endpoints(network: SimulatedNetwork) -> None:
    answer = request(network.work_dir, {"command": "status"})
    host, port = network.cli_endpoint("r-vrp")
    assert answer["devices"]["r-vrp"]["cli"] == {"endpoint": f"{host}:{port}",
                                                 "platform": "huawei_vrp", "mode": "normal"}
    assert "cli" not in answer["devices"]["r-nocli"]
    with pytest.raises(ControlError, match="CLI mode must be one of"):
        request(network.work_dir, {"command": "cli-mode", "device": "r-vrp", "mode": "sulk"})
    with pytest.raises(ControlError, match="delay_s is a number of seconds, not 'soon'"):
        request(network.work_dir, {"command": "cli-mode", "device": "r-vrp", "mode": "slow",
                                   "delay_s": "soon"})
    with pytest.raises(ControlError, match="delay_s must be between 0 and 3600"):
        request(network.work_dir, {"command": "cli-mode", "device": "r-vrp", "mode": "slow",
                                   "delay_s": -1})
    printed = io.StringIO()
    with redirect_stdout(printed):
        assert sim_main(["status", "--work-dir", str(network.work_dir)]) == 0
    assert f"ssh {host}:{port}" in printed.getvalue()
    cli_port = network.inventory.credentials["lab-ssh"].params["port"]
    assert sim_main(["cli", "--work-dir", str(network.work_dir), "r-vrp", "garbage"]) == 0
    assert network.cli_mode("r-vrp", "normal") is True
    assert port == cli_port


def test_host_keys_survive_a_restart(network: SimulatedNetwork, environ: dict[str, str],
                                     tmp_path: Path) -> None:
    """Kept owner-only in the work folder's ssh/, and presented again after a restart (the
    servers alone here, on an address of their own: the module's network is running)."""
    key_file = network.work_dir / "ssh" / "r-ios.key"
    assert key_file.exists() and key_file.stat().st_mode & 0o077 == 0
    address = "127.0.15.9"
    access = replace(resolve_cli_access(network.inventory.credentials["lab-ssh"], environ),
                     port=free_tcp_port_on([address]))
    device = CliDevice("r-ios", "cisco_ios", address, access)
    offered = []
    for _ in range(2):
        servers = CliServers([device], tmp_path / "ssh", lambda key, what: "")
        servers.start()
        try:
            offered.append(offered_key(address, access.port))
        finally:
            servers.stop()
        with pytest.raises(OSError):  # stopped means not listening
            socket.create_connection((address, access.port), timeout=CONNECT_TIMEOUT_S)
    assert offered[0] == offered[1]
