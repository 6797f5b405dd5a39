"""The CLI collector against OpenSSH sshd in network namespaces, agreeing with SNMP.

tests/test_cli_collector.py meets the simulated CLI (lab.sim.ssh); here netmiko logs in
(device_type linux, key login) to real sshd in the namespace lab (lab.netns) and reads the
kernel's interface counters with the linux profile (`cat /proc/net/dev`, Keyline's own
template), while Keyline's SNMP poller reads the same interfaces from Net-SNMP snmpd on the
same node. Both are the kernel's counters: once the link is quiet and snmpd's interface cache
(about 5 s, LAB-NOTES) has expired, the two must agree. Root and `ip netns` are needed:
without them the module skips with lab.netns.available()'s reason.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collectors.cli import (
    CliSessions,
    CliStatus,
    CliTarget,
    HostKeyBook,
    load_cli_targets,
    poll_cli,
)
from collectors.cli_profiles import cli_profile
from collectors.model import PollStatus, PollTarget, SnmpCredential
from collectors.snmp import SnmpPoller
from config.inventory.loader import load_inventory
from lab.netns import LinkSpec, NamespaceLab, NodeSpec, available
from store.inventory import apply_inventory

REASON = available()
pytestmark = pytest.mark.skipif(
    REASON is not None, reason=f"namespace lab not available: {REASON}")

# snmpd re-reads interface counters about every 5 s (LAB-NOTES); a margin on top
SNMP_CACHE_S = 5.0
QUIET_S = SNMP_CACHE_S + 2.0
PING_PACKETS = 400
PING_BYTES = 1000  # payload per echo: 400 x ~1 KB each way is ~400 KB on the link


@pytest.fixture(scope="module")
def lab() -> Iterator[NamespaceLab]:
    if REASON is not None:
        pytest.skip(REASON)
    with NamespaceLab([NodeSpec("ce1", extra_interfaces=1), NodeSpec("pe1")],
                      [LinkSpec("ce1", "pe1")], sshd=True) as running:
        yield running


def _peer_address(lab: NamespaceLab) -> str:
    """pe1's address on the ce1-pe1 link (the /31's second address)."""
    end = lab.link_ends[0][1]
    return str(end.address).split("/")[0]


def _inventory_targets(lab: NamespaceLab, db, tmp_path: Path,
                       key_file: Path) -> dict[str, CliTarget]:
    """The lab's nodes as inventory devices (platform linux, an ssh credential with a key
    file), imported into the store; their CLI targets as the collector loads them."""
    devices = "\n".join(
        f"  - {{name: {node}, role: CE, platform: linux, management_address: "
        f"{lab.management_address(node)}, snmp_port: 161, snmp_credential: lab-v2c,"
        f" cli_credential: lab-key}}" for node in lab.nodes)
    path = tmp_path / "lab.yaml"
    path.write_text(
        "credentials:\n"
        "  - {id: lab-v2c, kind: snmp_v2c, community: {env: NETNS_COMMUNITY}}\n"
        f"  - {{id: lab-key, kind: ssh, username: root, key_file: {key_file}, port: 22}}\n"
        f"devices:\n{devices}\n")
    inventory = load_inventory([path])
    with db.pool.connection() as conn:
        apply_inventory(conn, inventory)
        targets, problems = load_cli_targets(
            conn, environ={"NETNS_COMMUNITY": lab.community.get_secret_value()})
    assert not problems
    return {target.device_key: target for target in targets}


def _snmp_octets(lab: NamespaceLab, node: str) -> dict[str, tuple[int, int]]:
    target = PollTarget(device_id=1, device_key=node, host=lab.management_address(node),
                        port=161, credential=SnmpCredential(version="v2c",
                                                            community=lab.community),
                        poller_group="netns-lab")

    async def go():
        poller = SnmpPoller(timeout_s=5.0, retries=2)
        try:
            return await poller.poll(target)
        finally:
            poller.close()

    result = asyncio.run(go())
    assert result.status is PollStatus.REACHABLE, result.reason
    octets = {}
    for if_index, reading in result.interfaces.items():
        label = result.interface_labels.get(if_index)
        name = label.if_name or label.if_descr if label else None
        if name and reading.if_hc_in_octets is not None:
            octets[name] = (reading.if_hc_in_octets, reading.if_hc_out_octets)
    return octets


def test_linux_counters_over_ssh_agree_with_snmp(lab: NamespaceLab, db, tmp_path) -> None:
    assert lab.ssh_key_path is not None
    profile = cli_profile("linux")
    assert profile is not None and profile.device_type == "linux"
    interface = lab.interfaces("ce1")[0]
    target = _inventory_targets(lab, db, tmp_path, lab.ssh_key_path)["ce1"]
    assert (target.device_type, target.username, target.port) == ("linux", "root", 22)
    # traffic on the link, then quiet long enough for snmpd's cache to catch up
    lab.exec("ce1", ["ping", "-q", "-i", "0.002", "-c", str(PING_PACKETS), "-s",
                     str(PING_BYTES), _peer_address(lab)], check=False)
    time.sleep(QUIET_S)
    with CliSessions(HostKeyBook(db.pool), workers=2) as sessions:
        first = poll_cli(sessions, target, profile)
        snmp = _snmp_octets(lab, "ce1")
        second = poll_cli(sessions, target, profile)
        opened = sessions.sessions_opened

    for result in (first, second):
        assert result.status is CliStatus.OK, (result.status, result.reason, result.raw_output)
    assert opened == 1  # the session was kept for the second poll
    cli_first = first.reading.interfaces[interface]
    cli_second = second.reading.interfaces[interface]
    snmp_in, snmp_out = snmp[interface]
    # the ping moved ~400 KB each way: a counter that agrees only at zero proves nothing
    assert cli_first.in_octets > PING_PACKETS * PING_BYTES
    assert cli_first.out_octets > PING_PACKETS * PING_BYTES
    # the link was quiet from before the first CLI read to after the second (only stray
    # IPv6 neighbour discovery may cross it): SNMP's reading lies between the two, within
    # a few packets
    slack_bytes = 1500
    assert cli_first.in_octets - slack_bytes <= snmp_in <= cli_second.in_octets + slack_bytes
    assert cli_first.out_octets - slack_bytes <= snmp_out <= cli_second.out_octets + slack_bytes
    # and every interface the kernel prints is one SNMP lists (lo, mgmt0, the link, the ifb)
    assert set(first.reading.interfaces) >= {"lo", "mgmt0", interface, "ifb0"}
    assert set(first.reading.interfaces) <= set(snmp)


def test_a_node_without_the_key_is_auth_failed_and_says_so(lab: NamespaceLab, db,
                                                           tmp_path) -> None:
    """Another key than the lab's: sshd refuses the login; the status says authentication,
    not timeout, and the next device is not held up."""
    import subprocess

    other_key = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)],
                   check=True)
    profile = cli_profile("linux")
    assert profile is not None and lab.ssh_key_path is not None
    targets = _inventory_targets(lab, db, tmp_path, lab.ssh_key_path)
    wrong = dataclasses.replace(targets["pe1"], key_file=str(other_key))
    right = targets["ce1"]
    with CliSessions(HostKeyBook(db.pool), workers=2) as sessions:
        futures = [sessions.submit(target, poll_cli, sessions, target, profile)
                   for target in (wrong, right)]
        failed, passed = (future.result(timeout=120) for future in futures)
    assert failed.status is CliStatus.AUTH_FAILED, (failed.status, failed.reason)
    assert passed.status is CliStatus.OK, (passed.status, passed.reason)
