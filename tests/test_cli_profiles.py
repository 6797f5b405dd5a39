"""CLI profiles (collectors/cli_profiles.py): the profile sections load and say what the other
parts run; the parsers on real device outputs (the shared folder's device-outputs/, taken
from ntc-templates' tests) give what ntc-templates expects and the readings carry the states
and counters the devices printed; refused and garbled outputs are errors that never quote
the output; running configurations lose every planted secret."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from collectors import cli_profiles
from collectors.cli_profiles import (
    INTERFACE_METRICS,
    KNOWN_METRICS,
    CliParseError,
    CliProfile,
    CliProfileError,
    check_output,
    cli_profile,
    load_cli_profiles,
    mask_config,
    parse_output,
    read_outputs,
)
from collectors.health import DEVICE_METRICS, PORT_METRICS, PROFILES_DIR, load_profiles
from lab.recordings import shared_dir

NO_OUTPUTS = "no device outputs: the shared folder's device-outputs/ is missing"
FOLDERS = {"cisco_ios": ("cisco_ios/show_interfaces", "show interfaces"),
           "huawei_vrp": ("huawei_vrp/display_interface", "display interface"),
           "hp_comware": ("hp_comware/display_interface", "display interface")}


@pytest.fixture(scope="module")
def profiles() -> dict[str, CliProfile]:
    return load_cli_profiles()


def _raw_files() -> list[object]:
    found = [pytest.param(platform, path, id=path.name)
             for platform, (folder, _) in FOLDERS.items()
             for path in sorted((shared_dir() / "device-outputs" / folder).glob("*.raw"))]
    return found or [pytest.param(None, None, marks=pytest.mark.skip(reason=NO_OUTPUTS))]


def _raw(platform: str, name: str) -> str:
    path = shared_dir() / "device-outputs" / FOLDERS[platform][0] / name
    if not path.is_file():
        pytest.skip(NO_OUTPUTS)
    return path.read_text()


def _read(profiles: dict[str, CliProfile], platform: str, name: str):
    command = FOLDERS[platform][1]
    return read_outputs(profiles[platform], {command: _raw(platform, name)})


# --- the profiles --------------------------------------------------------------------------


def test_every_platform_has_the_commands_the_other_parts_run(
        profiles: dict[str, CliProfile]) -> None:
    """The commands the simulated devices (lab/sim/cli_outputs.py) answer and the collector
    (collectors/cli.py) runs, with netmiko's device type."""
    from netmiko.ssh_dispatcher import CLASS_MAPPER

    expected = {
        "cisco_ios": ("cisco_ios", "show interfaces", "show running-config"),
        "cisco_xr": ("cisco_xr", "show interfaces", "show running-config"),
        "huawei_vrp": ("huawei", "display interface", "display current-configuration"),
        "hp_comware": ("hp_comware", "display interface", "display current-configuration"),
        "juniper_junos": ("juniper_junos", "show interfaces", "show configuration"),
        "linux": ("linux", "cat /proc/net/dev", None),
    }
    assert set(profiles) == set(expected)
    for platform, (device_type, command, config_command) in expected.items():
        profile = profiles[platform]
        assert (profile.device_type, profile.command_texts, profile.config_command) == (
            device_type, (command,), config_command), platform
        assert profile.device_type in CLASS_MAPPER
        assert re.fullmatch(r".+/profiles/\w+\.yaml:\d+", profile.source)
        assert cli_profile(platform.upper()) == profile
    assert profiles["linux"].commands[0].parser == "own"
    assert cli_profile("nokia_sros") is None and cli_profile(None) is None


def test_the_health_profiles_load_beside_the_cli_sections() -> None:
    names = {profile.name for profile in load_profiles()}
    assert {"cisco_ios", "huawei_vrp", "hp_comware", "juniper_junos", "generic"} <= names


def test_metrics_are_the_snmp_sides_names(profiles: dict[str, CliProfile]) -> None:
    from collectors.service import ADMIN_STATUS_METRIC, OPER_STATUS_METRIC, RATE_METRICS

    snmp_side = {*RATE_METRICS.values(), OPER_STATUS_METRIC, ADMIN_STATUS_METRIC,
                 *DEVICE_METRICS, *PORT_METRICS}
    assert snmp_side == KNOWN_METRICS
    assert set(INTERFACE_METRICS.values()) <= KNOWN_METRICS
    cisco = profiles["cisco_ios"]
    assert cisco.wins("if_in_bps") == "snmp" and cisco.wins("optical_rx_dbm") == "snmp"
    assert cisco.wins("if_in_bps", has_snmp=False) == "cli"


def _profile_dir(tmp_path: Path, text: str, name: str = "acme.yaml") -> Path:
    (tmp_path / "templates").mkdir(exist_ok=True)
    shutil.copy(PROFILES_DIR / "templates" / "linux_cat_proc_net_dev.textfsm",
                tmp_path / "templates")
    (tmp_path / name).write_text(text)
    return tmp_path


GOOD = """\
name: acme
cli:
  linux:
    title: test
    device_type: linux
    commands:
      - command: cat /proc/net/dev
        parser: own
        template: linux_cat_proc_net_dev.textfsm
        interfaces:
          in_octets: {field: rx_bytes}
    prefer: {if_in_bps: cli}
"""


def test_a_profile_written_elsewhere_loads_with_its_preferences(tmp_path: Path) -> None:
    profile = load_cli_profiles(_profile_dir(tmp_path, GOOD))["linux"]
    assert profile.wins("if_in_bps") == "cli" and profile.wins("if_out_bps") == "snmp"
    assert profile.wins("if_out_bps", has_snmp=False) == "cli"
    assert profile.source == f"{tmp_path / 'acme.yaml'}:3"


@pytest.mark.parametrize(("change", "line", "message"), [
    ("prefer: {if_in_bps: cli}", "prefer: {if_in_bsp: cli}",
     r"acme.yaml:12: cli.linux.prefer: unknown metric if_in_bsp"),
    ("{field: rx_bytes}", "{field: rx_octets}",
     r"acme.yaml:\d+: cli.linux.commands\[0\]: .*no template of this command has the field "
     r"'rx_octets'"),
    ("{field: rx_bytes}", "{field: rx_bytes, map: {'.': up}}",
     r"acme.yaml:\d+: cli.linux.commands\[0\]: .*a number takes no map"),
    ("template: linux_cat_proc_net_dev.textfsm", "template: missing.textfsm",
     r"acme.yaml:\d+: cli.linux.commands\[0\]: cannot read the template missing.textfsm"),
    ("parser: own\n        template: linux_cat_proc_net_dev.textfsm", "parser: ntc",
     r"acme.yaml:\d+: cli.linux.commands\[0\]: ntc-templates has no template for "
     r"'cat /proc/net/dev' on linux"),
    ("    prefer", "    mask: ['password (\\S+)']\n    prefer",
     r"acme.yaml:\d+: cli.linux.mask\[0\]: a mask rule marks the secret with a group"),
    ("    prefer", "    errors: {rejected: ['(']}\n    prefer",
     r"acme.yaml:\d+: cli.linux.errors.rejected\[0\]: not a valid regular expression"),
    ("in_octets", "in_bytes", r"acme.yaml:\d+: cli.linux.commands\[0\].interfaces.in_bytes"),
])
def test_a_bad_profile_is_named_by_file_line_and_field(tmp_path: Path, change: str,
                                                       line: str, message: str) -> None:
    assert change in GOOD
    folder = _profile_dir(tmp_path, GOOD.replace(change, line))
    with pytest.raises(CliProfileError) as raised:
        load_cli_profiles(folder)
    assert any(re.search(message, problem) for problem in raised.value.problems), \
        raised.value.problems
    assert "CLI profiles have problems" in str(raised.value)


def test_a_platform_in_two_files_is_refused(tmp_path: Path) -> None:
    folder = _profile_dir(tmp_path, GOOD)
    (folder / "other.yaml").write_text(GOOD.replace("name: acme", "name: other"))
    with pytest.raises(CliProfileError, match=r"other.yaml:3: platform 'linux' has a CLI "
                                              r"profile in .*acme.yaml:3 too"):
        load_cli_profiles(folder)


# --- parsing real outputs ------------------------------------------------------------------


@pytest.mark.parametrize(("platform", "path"), _raw_files())
def test_real_outputs_give_what_ntc_templates_expects(profiles: dict[str, CliProfile],
                                                      platform: str, path: Path) -> None:
    """Every field of the ntc-templates expectation that the profile reads, record by record,
    is what the profile's parser gives (the supplements add counters, never change them)."""
    profile = profiles[platform]
    spec = profile.commands[0]
    used = {spec.key} | {rule.field for rules in spec.fields.values() for rule in rules}
    expected = YAML(typ="safe").load(path.with_suffix(".yml").read_text())["parsed_sample"]
    records = parse_output(profile, spec.command, path.read_text())
    assert len(records) >= len(expected)
    checked = 0
    for got, want in zip(records, expected, strict=False):
        for name in used & set(want):
            assert got[name] == want[name], (got[spec.key], name)
            checked += 1
    assert checked >= len(expected) * 2


@pytest.mark.parametrize(("platform", "path"), _raw_files())
def test_real_outputs_become_interfaces_with_states_and_counters(
        profiles: dict[str, CliProfile], platform: str, path: Path) -> None:
    """Every interface the device printed is read, with both states, and its byte counters
    wherever the output prints a `N bytes` figure in its block."""
    text = path.read_text()
    reading = read_outputs(profiles[platform], {FOLDERS[platform][1]: text})
    expected = YAML(typ="safe").load(path.with_suffix(".yml").read_text())["parsed_sample"]
    names = {record["interface"] for record in expected if not record["interface"].endswith(":")}
    assert names <= set(reading.interfaces)
    for name in names:
        interface = reading.interfaces[name]
        assert interface.admin_status in ("up", "down"), name
        assert interface.oper_status in ("up", "down"), name
    with_bytes = [i for i in reading.interfaces.values() if i.in_octets is not None]
    assert len(with_bytes) >= len(re.findall(r"(?m)^\s*(Input|\d+ packets input).*\d bytes",
                                             text)) // 2
    assert not [p for p in reading.problems if "not a number" in p or "not a known" in p]


def test_cisco_ios_states_and_counters(profiles: dict[str, CliProfile]) -> None:
    """cisco_ios_show_interfaces.raw: "GigabitEthernet0/0 is reset, line protocol is down",
    324 packets / 48614 bytes in, 703 / 62737 out; GigabitEthernet0/2 printed twice (up,
    then administratively down): the later block stands, and is reported."""
    reading = _read(profiles, "cisco_ios", "cisco_ios_show_interfaces.raw")
    gi00 = reading.interfaces["GigabitEthernet0/0"]
    assert (gi00.admin_status, gi00.oper_status) == ("up", "down")
    assert (gi00.in_packets, gi00.in_octets, gi00.out_packets, gi00.out_octets) == (
        324, 48614, 703, 62737)
    assert (gi00.in_errors, gi00.out_errors, gi00.in_bps) == (0, 0, 0.0)
    gi02 = reading.interfaces["GigabitEthernet0/2"]
    assert (gi02.admin_status, gi02.oper_status) == ("down", "down")
    assert reading.problems == ("show interfaces: GigabitEthernet0/2 is printed twice; the "
                                "last kept",)
    gi03 = reading.interfaces["GigabitEthernet0/3"]
    assert (gi03.in_octets, gi03.out_octets, gi03.out_bps) == (1689698, 29060539, 1000.0)
    busy = _read(profiles, "cisco_ios", "cisco_ios_show_interfaces3.raw")
    gi0 = busy.interfaces["GigabitEthernet0/0"]
    assert (gi0.in_octets, gi0.out_octets, gi0.in_bps, gi0.out_bps) == (
        728401053, 917906120, 95000.0, 90000.0)
    # sub-interfaces print no counters: none, not zero
    assert busy.interfaces["GigabitEthernet0/0.6"].in_octets is None


def test_huawei_vrp_states_and_counters(profiles: dict[str, CliProfile]) -> None:
    reading = _read(profiles, "huawei_vrp", "huawei_vrp_display_interface_gigabitethernet.raw")
    ge2 = reading.interfaces["GigabitEthernet0/0/2"]
    assert (ge2.admin_status, ge2.oper_status) == ("up", "up")
    assert (ge2.in_packets, ge2.in_octets, ge2.in_errors, ge2.in_bps) == (6460, 768740, 0,
                                                                          488.0)
    # "GigabitEthernet0/0/4 current state : UP" / "Line protocol current state : DOWN"
    ge4 = reading.interfaces["GigabitEthernet0/0/4"]
    assert (ge4.admin_status, ge4.oper_status) == ("up", "down")
    mixed = _read(profiles, "huawei_vrp", "huawei_vrp_display_interface.raw")
    # a dialer's bound channel: "Input packets:396,  39552 bytes", no protocol line of its own
    dialer = mixed.interfaces["Dialer1:0"]
    assert (dialer.in_packets, dialer.in_octets, dialer.out_packets, dialer.out_octets) == (
        396, 39552, 560, 41892)
    assert dialer.oper_status == "up"
    # a tunnel: "0 packets input,  0 bytes" / "0 input error", rates without "Last"
    tunnel = mixed.interfaces["Tunnel0/0/2"]
    assert (tunnel.in_octets, tunnel.in_errors, tunnel.out_errors, tunnel.in_bps) == (0, 0, 0,
                                                                                      0.0)
    big = _read(profiles, "huawei_vrp", "huawei_vrp_display_interface2.raw")
    ge01 = big.interfaces["GigabitEthernet0/0/01"]
    assert (ge01.in_packets, ge01.in_octets, ge01.in_bps, ge01.out_bps) == (
        12345678, 1234567890, 123.0, 1234.0)
    assert big.interfaces["NULL0"].oper_status == "up"  # "UP (spoofing)"


def test_hp_comware_states_and_counters(profiles: dict[str, CliProfile]) -> None:
    reading = _read(profiles, "hp_comware", "hp_comware_display_interface.raw")
    bagg = reading.interfaces["Bridge-Aggregation20"]
    assert (bagg.in_packets, bagg.in_octets, bagg.out_packets, bagg.out_octets) == (
        80274398, 24384580165, 110103849, 90115617821)
    # "Last 300 seconds input:  3143 packets/sec 929430 bytes/sec": bytes x 8
    assert (bagg.in_bps, bagg.out_bps) == (929430 * 8.0, 5945156 * 8.0)
    vlan = reading.interfaces["Vlan-interface2000"]
    # "input rate: 7 bytes/sec, 56 bits/sec": the bits win
    assert (vlan.in_bps, vlan.out_bps, vlan.in_errors) == (56.0, 128.0, None)
    old = _read(profiles, "hp_comware", "hp_comware_display_interface9.raw")
    ge = old.interfaces["GigabitEthernet0/0/0"]
    assert (ge.admin_status, ge.oper_status, ge.in_octets, ge.out_octets, ge.in_bps) == (
        "up", "down", 2754557243319, 13897729745246, 20421624.0)
    assert old.interfaces["Tunnel100"].out_octets == 516083014949
    stp = _read(profiles, "hp_comware", "hp_comware_display_interface_stp-down_jumbo.raw")
    assert {i.admin_status for i in stp.interfaces.values()} == {"up"}
    # ntc-templates' template takes a lone "Output:" line for the interface's name: that
    # record is reported and left out, the counters keep their real name
    release = _read(profiles, "hp_comware", "hp_comware_display_interface_release_0615P16.raw")
    assert list(release.interfaces) == ["Eth-channel2/0:0"]
    assert release.interfaces["Eth-channel2/0:0"].in_octets == 1399338825
    assert release.problems == ("display interface: 'Output:' is not an interface name; its "
                                "record is left out",)


def test_linux_proc_net_dev_of_this_machine(profiles: dict[str, CliProfile]) -> None:
    """The real /proc/net/dev of the machine running the tests: lo's counters, which only
    grow, are at most what sysfs says a moment later."""
    text = Path("/proc/net/dev").read_text()
    statistics = Path("/sys/class/net/lo/statistics")
    if not statistics.is_dir():
        pytest.skip("no /sys/class/net/lo/statistics on this machine")
    reading = read_outputs(profiles["linux"], {"cat /proc/net/dev": text})
    lo = reading.interfaces["lo"]
    for attribute, counter in (("in_octets", "rx_bytes"), ("out_packets", "tx_packets")):
        later = int((statistics / counter).read_text())
        value = getattr(lo, attribute)
        assert value is not None and 0 <= value <= later
    assert lo.oper_status is None  # the file has no state
    assert set(reading.interfaces) == set(re.findall(r"(?m)^\s*([^\s:|]+):", text))


# --- outputs that are not readings ---------------------------------------------------------


@pytest.mark.parametrize(("platform", "answer", "kind"), [
    ("cisco_ios", "                ^\n% Invalid input detected at '^' marker.\n", "rejected"),
    ("cisco_xr", "% This command is not authorized\n", "privilege"),
    ("huawei_vrp", "                 ^\nError: Unrecognized command found at '^' position.\n",
     "rejected"),
    ("huawei_vrp", "Error: You do not have permission to run the command or the command is "
                   "incomplete.\n", "privilege"),
    ("hp_comware", "                  ^\n % Unrecognized command found at '^' position.\n",
     "rejected"),
    ("hp_comware", "% Permission denied.\n", "privilege"),
    ("juniper_junos", "                   ^\nsyntax error, expecting <command>.\n", "rejected"),
    ("juniper_junos", "error: permission denied\n", "privilege"),
    ("linux", "cat: /proc/net/dev: Permission denied\n", "privilege"),
    ("linux", "cat: /proc/net/dev: No such file or directory\n", "rejected"),
])
def test_error_answers_are_errors_of_their_kind(profiles: dict[str, CliProfile],
                                                platform: str, answer: str,
                                                kind: str) -> None:
    profile = profiles[platform]
    command = profile.command_texts[0]
    with pytest.raises(CliParseError) as raised:
        read_outputs(profile, {command: answer})
    assert (raised.value.command, raised.value.kind) == (command, kind)
    if profile.config_command:
        with pytest.raises(CliParseError):
            check_output(profile, profile.config_command, answer)


GARBAGE = "xq7 zzkz\n!!@@ 4711 plorp\nTRUNCATED-SECRET-TEXT\n"


@pytest.mark.parametrize("platform", ["cisco_ios", "cisco_xr", "huawei_vrp", "hp_comware",
                                      "juniper_junos", "linux"])
def test_garbage_and_empty_outputs_are_unparseable_without_quoting_them(
        profiles: dict[str, CliProfile], platform: str) -> None:
    profile = profiles[platform]
    command = profile.command_texts[0]
    for text in (GARBAGE, "", "\n\n"):
        with pytest.raises(CliParseError) as raised:
            read_outputs(profile, {command: text})
        assert raised.value.kind == "unparseable"
        assert "TRUNCATED" not in str(raised.value) and "plorp" not in str(raised.value)
        assert str(raised.value).startswith(f"{command}: ")
    with pytest.raises(CliParseError, match="no output for this command"):
        read_outputs(profile, {})


def test_a_configuration_mentioning_an_error_further_down_is_not_an_error(
        profiles: dict[str, CliProfile]) -> None:
    config = ("Building configuration...\n\nCurrent configuration : 1234 bytes\n!\n"
              "hostname pe1\n!\nbanner motd ^C\n% Invalid input detected is what you get\n^C\n")
    check_output(profiles["cisco_ios"], "show running-config", config)


# --- masking -------------------------------------------------------------------------------

CISCO_IOS = """\
hostname pe1
enable secret 9 $9$nhEmQVczB7dqsO$X.HsgL6x1il0RxkOSSvyQYwucySCt7qFm4v7pqCxkKM
enable password Pl4inEnable
username noc privilege 15 secret 5 $1$mERr$hx5rVt7rPNoS4wqbXKX7m0
username backup password 7 0822455D0A16544541
username spaced password 0 two words here
service password-encryption
line vty 0 4
 password 7 045802150C2E1D1C5A
 transport input ssh
snmp-server community Publ1cRO RO
snmp-server community s3cr3tRW RW 10
snmp-server host 192.0.2.10 version 2c TrapC0mm
snmp-server user monitor grp v3 auth sha AuthPa55 priv aes 128 PrivPa55
tacacs-server host 192.0.2.20 key 7 1511021F0725
radius-server key RadKey9
tacacs server TAC1
 address ipv4 192.0.2.21
 key 7 00071A150754
key chain OSPF
 key 1
  key-string 7 110A1016141D
interface GigabitEthernet0/1
 description to pe2
 ip ospf authentication-key 7 0110050D5D
 ip ospf message-digest-key 1 md5 7 14141B180F0B
router bgp 65000
 neighbor 192.0.2.1 password 7 02050D480809
crypto isakmp key IkeS3cret address 198.51.100.1
ntp authentication-key 1 md5 NtpS3cret 7
"""
CISCO_SECRETS = [
    "$9$nhEmQVczB7dqsO$X.HsgL6x1il0RxkOSSvyQYwucySCt7qFm4v7pqCxkKM", "Pl4inEnable",
    "$1$mERr$hx5rVt7rPNoS4wqbXKX7m0", "0822455D0A16544541", "two words here",
    "045802150C2E1D1C5A", "Publ1cRO",
    "s3cr3tRW", "TrapC0mm", "AuthPa55", "PrivPa55", "1511021F0725", "RadKey9",
    "00071A150754", "110A1016141D", "0110050D5D", "14141B180F0B", "02050D480809", "IkeS3cret",
    "NtpS3cret"]
CISCO_XR = """\
hostname P1
username admin
 group root-lr
 secret 10 $6$Xr1Sa$Lt.u9ahV6Ws1CmLE1gu6DBSFw4n0Dbl9SGt9hCFU1zh
!
tacacs-server host 192.0.2.20 port 49
 key 7 060506324F41584B56
!
snmp-server community XrC0mmun1ty RO
line template VTY
 password encrypted 13061E010803
"""
XR_SECRETS = ["$6$Xr1Sa$Lt.u9ahV6Ws1CmLE1gu6DBSFw4n0Dbl9SGt9hCFU1zh", "060506324F41584B56",
              "XrC0mmun1ty", "13061E010803"]
HUAWEI = """\
sysname CE1
aaa
 local-user admin password irreversible-cipher $1a$O`zN9k$6_6M8%p]T!$
 local-user admin service-type ssh
 local-user ops password cipher %^%#Xj)cG5a[b~Q8p}E(3Fsq~9Z%^%#
radius-server template R1
 radius-server shared-key cipher %^%#rAd1uS%^%#
hwtacacs-server template T1
 hwtacacs-server shared-key cipher %^%#tAcAcS%^%#
snmp-agent community read cipher %^%#C0mmR34d%^%#
snmp-agent community write Wr1teC0mm
snmp-agent usm-user v3 nms authentication-mode sha cipher %^%#uSmAuTh%^%#
user-interface con 0
 set authentication password cipher %^%#ConS0le%^%#
interface GigabitEthernet0/0/1
 description to CE2
 ospf authentication-mode md5 1 cipher %^%#0sPf%^%#
ike peer p1
 pre-shared-key cipher %^%#Ik3Pe3r%^%#
"""
HUAWEI_SECRETS = ["$1a$O`zN9k$6_6M8%p]T!$", "%^%#Xj)cG5a[b~Q8p}E(3Fsq~9Z%^%#", "%^%#rAd1uS%^%#",
                  "%^%#tAcAcS%^%#", "%^%#C0mmR34d%^%#", "Wr1teC0mm", "%^%#uSmAuTh%^%#",
                  "%^%#ConS0le%^%#", "%^%#0sPf%^%#", "%^%#Ik3Pe3r%^%#"]
COMWARE = """\
 sysname SW1
 snmp-agent community read simple Publ1cH3c
 snmp-agent community write cipher $c$3$Wr1t3H3c==
 snmp-agent usm-user v3 nms grp simple authentication-mode sha AuthH3c privacy-mode aes128 PrivH3c
 super password role network-admin hash $h$6$SuP3r$h4sh==
local-user admin class manage
 password hash $h$6$Adm1n$h4sh==
 service-type ssh
local-user old class manage
 password simple Pl41nOld
radius scheme rs1
 key authentication cipher $c$3$R4d1us==
 key accounting simple R4dAcct
ike keychain k1
 pre-shared-key address 198.51.100.1 key cipher $c$3$1keK3y==
"""
COMWARE_SECRETS = ["Publ1cH3c", "$c$3$Wr1t3H3c==", "AuthH3c", "PrivH3c", "$h$6$SuP3r$h4sh==",
                   "$h$6$Adm1n$h4sh==", "Pl41nOld", "$c$3$R4d1us==", "R4dAcct",
                   "$c$3$1keK3y=="]
JUNOS = """\
## Last commit: 2026-12-01 10:00:00 UTC by noc
version 21.4R3;
system {
    host-name mx1;
    root-authentication {
        encrypted-password "$6$Jun0s$R00tHa5h"; ## SECRET-DATA
    }
    login {
        user noc {
            class super-user;
            authentication {
                encrypted-password "$6$N0c$UserHa5h"; ## SECRET-DATA
            }
        }
    }
    tacplus-server {
        192.0.2.20 secret "$9$T4cPlu5"; ## SECRET-DATA
    }
}
snmp {
    community Jun0sC0mm {
        authorization read-only;
    }
}
protocols {
    ospf {
        area 0.0.0.0 {
            interface ge-0/0/0.0 {
                authentication {
                    md5 1 key "$9$0spfK3y"; ## SECRET-DATA
                }
            }
        }
    }
}
policy-options {
    community CUSTOMER-A members 65000:100;
}
"""
JUNOS_SECRETS = ["$6$Jun0s$R00tHa5h", "$6$N0c$UserHa5h", "$9$T4cPlu5", "Jun0sC0mm",
                 "$9$0spfK3y"]
CONFIGS = {"cisco_ios": (CISCO_IOS, CISCO_SECRETS), "cisco_xr": (CISCO_XR, XR_SECRETS),
           "huawei_vrp": (HUAWEI, HUAWEI_SECRETS), "hp_comware": (COMWARE, COMWARE_SECRETS),
           "juniper_junos": (JUNOS, JUNOS_SECRETS)}
KEPT = {"cisco_ios": ["hostname pe1", "service password-encryption", " key 1",
                      " description to pe2", "key chain OSPF"],
        "cisco_xr": ["hostname P1", " group root-lr"],
        "huawei_vrp": ["sysname CE1", " local-user admin service-type ssh"],
        "hp_comware": [" sysname SW1", " service-type ssh"],
        "juniper_junos": ["    host-name mx1;", "    community CUSTOMER-A members 65000:100;"]}


def _masked_token(secret: str) -> str:
    import hashlib
    return f"<masked sha256:{hashlib.sha256(secret.encode()).hexdigest()[:8]}>"


@pytest.mark.parametrize("platform", sorted(CONFIGS))
def test_every_planted_secret_is_masked(profiles: dict[str, CliProfile],
                                        platform: str) -> None:
    config, secrets = CONFIGS[platform]
    for secret in secrets:
        assert secret in config
    masked = mask_config(profiles[platform], config)
    for secret in secrets:
        assert secret not in masked, secret
        assert _masked_token(secret) in masked, secret
    # the lines stay (a diff shows which one changed), the rest byte for byte
    assert len(masked.splitlines()) == len(config.splitlines())
    assert masked.endswith("\n")
    for line in KEPT[platform]:
        assert line in masked.splitlines()
    assert mask_config(profiles[platform], masked) == masked  # masking twice: no change
    assert mask_config(platform, config) == masked  # by platform name


def test_a_changed_secret_changes_its_mask_and_nothing_else(
        profiles: dict[str, CliProfile]) -> None:
    before = mask_config(profiles["cisco_ios"], CISCO_IOS)
    after = mask_config(profiles["cisco_ios"], CISCO_IOS.replace("RadKey9", "RadKey10"))
    changed = [(old, new) for old, new in zip(before.splitlines(), after.splitlines(),
                                              strict=True) if old != new]
    assert changed == [(f"radius-server key {_masked_token('RadKey9')}",
                        f"radius-server key {_masked_token('RadKey10')}")]


def test_an_unknown_platform_is_masked_with_every_rule() -> None:
    for config, secrets in CONFIGS.values():
        masked = mask_config("unknown_os", config)
        assert not [secret for secret in secrets if secret in masked]
    assert mask_config(None, CISCO_IOS) == mask_config("mistyped", CISCO_IOS)
    assert "sysname CE1" in mask_config(None, HUAWEI)


def test_the_module_masks_with_the_profile_files_rules() -> None:
    """No masking rule lives in code: a platform without `mask` rules keeps its text."""
    linux = cli_profile("linux")
    assert linux is not None and linux.mask_rules == ()
    assert mask_config(linux, "password Plain\n") == "password Plain\n"
    assert cli_profiles.MASK_PREFIX == "<masked "


def test_a_stored_mask_is_keyed_so_a_weak_secret_cannot_be_guessed_from_it() -> None:
    """With the installation's key, a secret's fingerprint is HMAC-SHA256(key, secret): the
    plain hash of `public` (a word list's first guess) is not on the page, another key gives
    another fingerprint, the same key the same one (an unchanged configuration stays one
    version), and masking keyed text again changes nothing."""
    import hashlib
    import hmac

    config = "snmp-server community public RO\nenable secret 0 cisco\n"
    key, other_key = b"k" * 32, b"o" * 32
    masked = mask_config("cisco_ios", config, key=key)
    assert "public" not in masked and "cisco" not in masked.replace("cisco_ios", "")
    assert _masked_token("public") not in masked
    expected = hmac.new(key, b"public", hashlib.sha256).hexdigest()[:8]
    assert f"snmp-server community <masked hmac:{expected}> RO" in masked.splitlines()
    assert mask_config("cisco_ios", config, key=key) == masked
    assert mask_config("cisco_ios", config, key=other_key) != masked
    assert mask_config("cisco_ios", masked, key=key) == masked
    assert mask_config("cisco_ios", masked) == masked  # an unkeyed pass keeps a keyed mask
