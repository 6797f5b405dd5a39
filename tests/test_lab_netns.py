"""The root-only namespace lab (lab.netns): real snmpd, lldpd and sshd in network namespaces.

Without root, `ip netns` or snmpd the lab tests skip with lab.netns.available()'s reason; the
configuration renderers are tested everywhere. One 3-node lab (ce1 - pe1 - p1, with lldpd,
link traps and sshd) is shared by the module; stop() and leftover cleanup use labs of their own.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from pyasn1.codec.ber import decoder
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    get_cmd,
    usmAesCfb128Protocol,
    usmHMACSHAAuthProtocol,
)
from pysnmp.proto import errind
from pysnmp.proto.api import v2c

from lab import netns_system
from lab.netns import MAX_AGENT_PORTS, LinkSpec, NamespaceLab, NodeSpec, available
from lab.netns_config import SnmpdFacts, render_lldpd_conf, render_snmpd_conf

REPO = Path(__file__).resolve().parent.parent
SYS_NAME = "1.3.6.1.2.1.1.5.0"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.8"
LLDP_REM_PORT_ID = "1.0.8802.1.1.2.1.4.1.1.7"
LLDP_REM_SYS_NAME = "1.0.8802.1.1.2.1.4.1.1.9"
LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
SNMP_IN_ASN_PARSE_ERRS = "1.3.6.1.2.1.11.6.0"
REASON = available()
T = TypeVar("T")
needs_lab = pytest.mark.skipif(REASON is not None, reason=REASON or "")


# -- helpers -----------------------------------------------------------------------------


def snmp_get(host: str, oid: str, auth: CommunityData | UsmUserData,
             port: int = 161) -> tuple[object, str | None]:
    """(errorIndication, value as text) of one GET with pysnmp."""
    return snmp_get_all([(host, oid, auth)], port)[0]


def snmp_get_all(
    requests: list[tuple[str, str, CommunityData | UsmUserData]], port: int = 161,
) -> list[tuple[object, str | None]]:
    """GETs one after the other on one pysnmp engine (an engine costs about a second), to
    UDP `port` of each host."""

    async def one(engine: SnmpEngine, host: str, oid: str,
                  auth: CommunityData | UsmUserData) -> tuple[object, str | None]:
        target = await UdpTransportTarget.create((host, port), timeout=1, retries=0)
        error, status, _, varbinds = await get_cmd(
            engine, auth, target, ContextData(), ObjectType(ObjectIdentity(oid)))
        if error or status:
            return error or status, None
        return None, varbinds[0][1].prettyPrint()

    async def go() -> list[tuple[object, str | None]]:
        engine = SnmpEngine()
        try:
            return [await one(engine, *request) for request in requests]
        finally:
            engine.close_dispatcher()

    return asyncio.run(go())


def v3(lab: NamespaceLab, auth_key: str | None = None, priv_key: str | None = None) -> UsmUserData:
    user = lab.v3_user
    return UsmUserData(
        user.name, auth_key or user.auth_key.get_secret_value(),
        priv_key or user.priv_key.get_secret_value(),
        authProtocol=usmHMACSHAAuthProtocol, privProtocol=usmAesCfb128Protocol)


def walk(lab: NamespaceLab, node: str, oid: str) -> dict[str, str]:
    """snmpbulkwalk over v2c: {index suffix: value}."""
    out = subprocess.run(
        ["snmpbulkwalk", "-v2c", "-c", lab.community.get_secret_value(), "-On", "-OQ", "-Oe",
         "-t", "1", "-r", "1", lab.management_address(node), oid],
        capture_output=True, text=True, check=True).stdout
    result = {}
    for line in out.splitlines():
        if " = " in line:
            name, value = line.split(" = ", 1)
            result[name.strip().lstrip(".").removeprefix(oid + ".")] = value.strip().strip('"')
    return result


def if_index(lab: NamespaceLab, node: str, ifname: str) -> str:
    return next(index for index, name in walk(lab, node, IF_DESCR).items() if name == ifname)


def wait_until(predicate: Callable[[], T], timeout_s: float, interval_s: float = 0.5) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval_s)


def lab_pids(prefix: str) -> list[int]:
    return [pid for name in netns_system.list_namespaces() if name.startswith(f"{prefix}-")
            for pid in netns_system.namespace_pids(name)]


# -- the shared 3-node lab ---------------------------------------------------------------


@pytest.fixture(scope="module")
def trap_socket() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", 0))
    sock.settimeout(0.2)
    yield sock
    sock.close()


@pytest.fixture(scope="module")
def lab(trap_socket: socket.socket) -> Iterator[NamespaceLab]:
    if REASON is not None:
        pytest.skip(REASON)
    # ce1 reaches the pe1 - p1 link through pe1: a static route the kernel drops on link down.
    nodes = [NodeSpec("ce1", extra_interfaces=2,
                      routes=(("198.18.0.2/31", "198.18.0.1", "eth0"),)),
             NodeSpec("pe1", extra_interfaces=2), NodeSpec("p1")]
    links = [LinkSpec("ce1", "pe1"), LinkSpec("pe1", "p1")]
    with NamespaceLab(nodes, links, lldp=True, sshd=True,
                      traps_to=trap_socket.getsockname()[1]) as running:
        yield running


@needs_lab
def test_every_snmpd_answers_v2c_and_v3_auth_priv(lab: NamespaceLab) -> None:
    assert lab.start_duration_s is not None and lab.start_duration_s < 10
    community = CommunityData(lab.community.get_secret_value())
    hosts = [lab.management_address(node) for node in lab.nodes]
    assert all(host.startswith("169.254.") for host in hosts)
    answers = snmp_get_all([(host, SYS_NAME, auth) for host in hosts
                            for auth in (community, v3(lab))])
    assert answers == [(None, node) for node in lab.nodes for _ in range(2)]


@needs_lab
def test_wrong_v3_keys_are_refused_by_the_agent(lab: NamespaceLab) -> None:
    host = lab.management_address("pe1")
    community = CommunityData(lab.community.get_secret_value())
    wrong_auth, parse_errors_before, wrong_priv, parse_errors_after = snmp_get_all([
        (host, SYS_NAME, v3(lab, auth_key="wrong-auth-key-123")),
        (host, SNMP_IN_ASN_PARSE_ERRS, community),
        (host, SYS_NAME, v3(lab, priv_key="wrong-priv-key-123")),
        (host, SNMP_IN_ASN_PARSE_ERRS, community),
    ])
    # A wrong authentication key: snmpd answers with a usmStatsWrongDigests report.
    assert wrong_auth[1] is None and isinstance(wrong_auth[0], errind.WrongDigest), wrong_auth
    # A wrong privacy key: AES-CFB "decrypts" to garbage, so snmpd finds no valid PDU, counts
    # snmpInASNParseErrs and sends no report: the client sees a timeout, not decryptionError.
    assert wrong_priv[1] is None
    assert isinstance(wrong_priv[0], errind.RequestTimedOut | errind.DecryptionError), wrong_priv
    if isinstance(wrong_priv[0], errind.RequestTimedOut):
        assert int(parse_errors_after[1] or 0) > int(parse_errors_before[1] or 0)


@needs_lab
def test_lldp_remote_table_of_pe1_shows_its_neighbours(lab: NamespaceLab) -> None:
    def neighbours() -> set[tuple[str, str, str]]:
        names = walk(lab, "pe1", LLDP_REM_SYS_NAME)
        ports = walk(lab, "pe1", LLDP_REM_PORT_ID)
        # index: timeMark.localPortNum.remIndex; lldpd's localPortNum is the ifIndex
        local = walk(lab, "pe1", IF_DESCR)
        # an entry may be half-built while lldpd and snmpd settle: it simply does not match yet
        return {(local.get(index.split(".")[1], "?"), name, ports.get(index, ""))
                for index, name in names.items()}

    expected = {("eth0", "ce1", "eth0"), ("eth1", "p1", "eth0")}
    assert wait_until(lambda: neighbours() == expected, timeout_s=10), neighbours()


@needs_lab
def test_set_link_down_is_seen_on_both_ends_by_poll_and_trap(
        lab: NamespaceLab, trap_socket: socket.socket) -> None:
    ends = [("pe1", if_index(lab, "pe1", "eth1")), ("p1", if_index(lab, "p1", "eth0"))]

    def oper(node: str, index: str) -> str:
        return walk(lab, node, IF_OPER_STATUS)[index]

    assert [oper(node, index) for node, index in ends] == ["1", "1"]
    while True:  # drop the coldStart traps of the start
        try:
            trap_socket.recvfrom(65535)
        except TimeoutError:
            break
    # The trap monitors take their first sample (no trap) one interval after snmpd starts.
    time.sleep(max(0.0, lab.started_at + 3 - time.monotonic()))
    lab.set_link("pe1", "eth1", up=False)
    began = time.monotonic()
    senders: set[str] = set()
    while time.monotonic() - began < 8 and len(senders) < 2:
        try:
            data, (sender, _) = trap_socket.recvfrom(65535)
        except TimeoutError:
            continue
        message, _ = decoder.decode(data, asn1Spec=v2c.Message())
        varbinds = v2c.apiPDU.get_varbinds(v2c.apiMessage.get_pdu(message))
        if any(str(value) == LINK_DOWN for _, value in varbinds):
            senders.add(sender)
    trap_delay_s = time.monotonic() - began
    assert senders == {lab.management_address("pe1"), lab.management_address("p1")}
    assert trap_delay_s < 5
    # snmpd caches interface data for about 5 s: poll until both ends say down(2).
    assert wait_until(lambda: [oper(n, i) for n, i in ends] == ["2", "2"], timeout_s=10)
    lab.set_link("pe1", "eth1", up=True)
    assert wait_until(lambda: [oper(n, i) for n, i in ends] == ["1", "1"], timeout_s=10)


@needs_lab
def test_sshd_has_the_node_hostname_and_accepts_the_lab_key(lab: NamespaceLab) -> None:
    assert lab.ssh_key_path is not None and lab.ssh_key_path.stat().st_mode & 0o077 == 0
    out = subprocess.run(
        ["ssh", "-i", str(lab.ssh_key_path), "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
         "-o", "ConnectTimeout=5", f"root@{lab.management_address('ce1')}", "hostname"],
        capture_output=True, text=True, timeout=20)
    assert out.stdout.strip() == "ce1", out.stderr


@needs_lab
def test_set_link_up_puts_back_the_static_routes_link_down_flushed(lab: NamespaceLab) -> None:
    def routes() -> str:
        return lab.exec("ce1", ["ip", "-4", "route", "show", "198.18.0.2/31"])

    assert "via 198.18.0.1 dev eth0" in routes()
    lab.set_link("ce1", "eth0", up=False)
    assert routes().strip() == ""
    lab.set_link("ce1", "eth0", up=True)
    assert "via 198.18.0.1 dev eth0" in routes()


@needs_lab
def test_secret_files_are_owner_only(lab: NamespaceLab) -> None:
    conf = lab.folder / "pe1" / "snmpd.conf"
    assert conf.stat().st_mode & 0o777 == 0o600
    assert lab.community.get_secret_value() in conf.read_text()
    assert lab.community.get_secret_value() not in repr(lab.community)


# -- one snmpd as many devices (bench/collect.py) ------------------------------------------


@needs_lab
def test_a_node_with_the_most_extra_agent_ports_answers_on_each_of_them() -> None:
    ports = tuple(range(1001, 1001 + MAX_AGENT_PORTS))
    with NamespaceLab([NodeSpec("m1", extra_interfaces=1, agent_ports=ports)]) as lab:
        host = lab.management_address("m1")
        assert lab.agent_ports("m1") == [161, *ports]
        assert lab.all_interfaces("m1") == ["lo", "mgmt0", "ifb0"]
        community = CommunityData(lab.community.get_secret_value())
        for port in (161, ports[0], ports[len(ports) // 2], ports[-1]):
            assert snmp_get(host, SYS_NAME, community, port) == (None, "m1"), port
        assert snmp_get(host, SYS_NAME, v3(lab), ports[-1]) == (None, "m1")
        # a port next to them that nobody configured: no answer
        assert snmp_get(host, SYS_NAME, community, ports[-1] + 1)[1] is None
        assert lab.start_duration_s is not None and lab.start_duration_s < 10


# -- stop and leftovers ------------------------------------------------------------------


@needs_lab
def test_stop_leaves_no_namespace_process_route_or_file() -> None:
    lab = NamespaceLab([NodeSpec("a"), NodeSpec("b", extra_interfaces=3)],
                       [LinkSpec("a", "b")], lldp=True, sshd=True, traps_to=1162)
    lab.start()
    pids = [pid for _, _, pid in lab.processes()]
    assert len(pids) == 6
    assert lab_pids(lab.prefix)
    lab.stop()
    lab.stop()  # idempotent
    assert not [n for n in netns_system.list_namespaces() if n.startswith(f"{lab.prefix}-")]
    assert not [pid for pid in pids if netns_system.is_running(pid)]
    assert not Path(f"/sys/class/net/{lab.root_veth}").exists()
    assert f"169.254.{lab.subnet_k}." not in netns_system.run(["ip", "-4", "route"])
    assert not lab.folder.exists()
    assert lab.stop_duration_s is not None and lab.stop_duration_s < 5
    if not netns_system.live_labs():
        assert "198.18.0.0/15" not in netns_system.run(["ip", "route"])


@needs_lab
def test_leftovers_of_a_killed_run_are_removed_by_the_next_start() -> None:
    prefix = "klt" + secrets.token_hex(3)
    script = (
        "import os, signal\n"
        "from lab.netns import NamespaceLab, NodeSpec\n"
        f"NamespaceLab([NodeSpec('x'), NodeSpec('y')], prefix={prefix!r}).start()\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n")
    crashed = subprocess.run([sys.executable, "-c", script], cwd=REPO, timeout=60)
    assert crashed.returncode == -signal.SIGKILL
    orphans = lab_pids(prefix)
    assert orphans, "the killed run should have left its snmpd processes behind"
    with NamespaceLab([NodeSpec("x")], prefix=prefix) as lab:
        assert not [pid for pid in orphans if netns_system.is_running(pid)]
        assert sorted(n for n in netns_system.list_namespaces()
                      if n.startswith(f"{prefix}-")) == [f"{prefix}-mgmt", f"{prefix}-x"]
        assert snmp_get(lab.management_address("x"), SYS_NAME,
                        CommunityData(lab.community.get_secret_value())) == (None, "x")
    assert not lab_pids(prefix)


# -- no root needed ----------------------------------------------------------------------


def test_available_gives_a_reason_or_none() -> None:
    reason = available()
    assert reason is None or reason
    if os.geteuid() != 0:
        assert reason == "not root"


def test_prefix_and_names_are_validated() -> None:
    with pytest.raises(ValueError, match="prefix"):
        NamespaceLab([NodeSpec("a")], prefix="Bad-Prefix")
    with pytest.raises(ValueError, match="unique"):
        NamespaceLab([NodeSpec("a"), NodeSpec("a")])
    first, second = NamespaceLab([NodeSpec("a")]), NamespaceLab([NodeSpec("a")])
    assert first.prefix != second.prefix
    assert first.community.get_secret_value() != second.community.get_secret_value()


def test_snmpd_conf_has_v2c_v3_agentx_and_fast_link_traps() -> None:
    facts = SnmpdFacts(
        node="pe1", management_ip="169.254.7.2", community="c0mm", v3_user="keyline",
        v3_auth_key="authkey123", v3_priv_key="privkey123", engine_id_hex="80001f8804aa",
        agentx_master=True, trap_sink=("169.254.7.254", 1162), internal_auth_key="ia123456",
        internal_priv_key="ip123456")
    conf = render_snmpd_conf(facts)
    for line in [
        "agentAddress udp:169.254.7.2:161,udp:127.0.0.1:161",
        "rocommunity c0mm default",
        'createUser keyline SHA "authkey123" AES "privkey123"',
        "rouser keyline priv",
        "sysName pe1",
        "master agentx",
        "agentXSocket tcp:127.0.0.1:705",
        "trap2sink 169.254.7.254:1162 c0mm",
        "iquerySecName kliquery",
        'monitor -S -r 2 -e keylineLinkDown "linkDown" 1.3.6.1.2.1.2.2.1.8 == 2',
    ]:
        assert line in conf.splitlines()
    with pytest.raises(ValueError):
        render_snmpd_conf(SnmpdFacts(**{**facts.__dict__, "v3_auth_key": 'x"y'}))


def test_extra_agent_ports_are_bare_ports_of_the_agent_address_within_snmpds_limit() -> None:
    facts = SnmpdFacts(
        node="m1", management_ip="169.254.253.253", community="c0mm", v3_user="keyline",
        v3_auth_key="authkey123", v3_priv_key="privkey123", engine_id_hex="80001f8804aa",
        agent_ports=(1001, 1002))
    assert ("agentAddress udp:169.254.253.253:161,udp:127.0.0.1:161,1001,1002"
            in render_snmpd_conf(facts).splitlines())
    # the most a node may have, of four digits, fit in the 2,559 characters snmpd keeps
    most = tuple(range(1001, 1001 + MAX_AGENT_PORTS))
    render_snmpd_conf(SnmpdFacts(**{**facts.__dict__, "agent_ports": most}))
    with pytest.raises(ValueError, match="snmpd keeps 2559"):
        render_snmpd_conf(SnmpdFacts(**{**facts.__dict__, "agent_ports": tuple(
            range(10001, 10001 + MAX_AGENT_PORTS))}))


def test_agent_ports_are_validated() -> None:
    for ports in ((161,), (1001, 1001), (0,), (65536,),
                  tuple(range(1001, 1002 + MAX_AGENT_PORTS))):
        with pytest.raises(ValueError, match="agent ports of node a"):
            NamespaceLab([NodeSpec("a", agent_ports=ports)])


def test_lldpd_conf_reports_interface_names() -> None:
    conf = render_lldpd_conf("pe1", "169.254.7.2", ["eth0", "eth1"])
    assert "configure lldp portidsubtype ifname" in conf
    assert "configure lldp tx-interval 5" in conf
    assert "configure system interface pattern eth0,eth1" in conf
