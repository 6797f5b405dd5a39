"""Keyline's own SNMP poller (collectors.snmp) against Net-SNMP snmpd in network namespaces.

tests/test_snmp_poller.py meets snmpsim and one snmpd on loopback; here the poller crosses a
real (namespaced) network to one snmpd per node of a small lab (lab.netns): v2c and v3
authPriv, the agent's own answers to a wrong key or an unknown user, and an address on the lab's
management network that nobody owns. Root and `ip netns` are needed: without them the module
skips with lab.netns.available()'s reason. One 3-node lab is shared by the module.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from collectors.model import PollResult, PollStatus, PollTarget, SnmpCredential
from collectors.snmp import SnmpPoller
from lab.netns import LinkSpec, NamespaceLab, NodeSpec, available

REASON = available()
pytestmark = pytest.mark.skipif(
    REASON is not None, reason=f"namespace lab not available: {REASON}")

# Keys no lab generates (the lab's are 32 hex digits); long enough that finding one in a
# reason cannot be a coincidence.
WRONG_AUTH_KEY = "wrong-auth-key-do-not-leak-7319"
WRONG_PRIV_KEY = "wrong-priv-key-do-not-leak-4826"


@pytest.fixture(scope="module")
def lab() -> Iterator[NamespaceLab]:
    if REASON is not None:
        pytest.skip(REASON)
    # Interface tables of different shapes per node: ifbs on two, one or two links each.
    nodes = [NodeSpec("ce1", extra_interfaces=2), NodeSpec("pe1"),
             NodeSpec("p1", extra_interfaces=1)]
    with NamespaceLab(nodes, [LinkSpec("ce1", "pe1"), LinkSpec("pe1", "p1")]) as running:
        yield running


def v2c(lab: NamespaceLab) -> SnmpCredential:
    return SnmpCredential(version="v2c", community=lab.community)


def v3(lab: NamespaceLab, **changes: object) -> SnmpCredential:
    user = lab.v3_user
    credential = SnmpCredential(
        version="v3", username=user.name, security_level="authPriv",
        auth_protocol=user.auth_protocol, auth_key=user.auth_key,
        priv_protocol=user.priv_protocol, priv_key=user.priv_key)
    return dataclasses.replace(credential, **changes)  # type: ignore[arg-type]


def target(lab: NamespaceLab, node: str, credential: SnmpCredential,
           host: str | None = None) -> PollTarget:
    return PollTarget(device_id=lab.nodes.index(node) + 1 if node in lab.nodes else 999,
                      device_key=node, host=host or lab.management_address(node), port=161,
                      credential=credential, poller_group="netns-lab")


def poll_many(targets: list[PollTarget], **options: float) -> list[PollResult]:
    async def go() -> list[PollResult]:
        poller = SnmpPoller(**options)  # type: ignore[arg-type]
        try:
            return await poller.poll_many(targets)
        finally:
            poller.close()

    return asyncio.run(go())


def if_names(result: PollResult) -> dict[str, int]:
    """{ifName: ifIndex} of a poll result."""
    return {label.if_name: index for index, label in result.interface_labels.items()
            if label.if_name is not None}


def secrets_of(lab: NamespaceLab) -> list[str]:
    user = lab.v3_user
    return [lab.community.get_secret_value(), user.auth_key.get_secret_value(),
            user.priv_key.get_secret_value(), WRONG_AUTH_KEY, WRONG_PRIV_KEY]


def assert_complete(result: PollResult, lab: NamespaceLab, node: str) -> None:
    assert result.status is PollStatus.REACHABLE, result.reason
    assert result.reason is None
    assert result.sys_name == node
    names = if_names(result)
    # A fresh namespace may hold tunnel devices of loaded kernel modules (tunl0, sit0...):
    # the lab's interfaces must all be there, others may be.
    assert set(lab.all_interfaces(node)) <= names.keys(), sorted(names)
    assert result.interfaces.keys() == result.interface_labels.keys()
    for name in lab.all_interfaces(node):
        reading = result.interfaces[names[name]]
        # Net-SNMP serves ifXTable: every interface has 64-bit octet counters.
        assert reading.if_hc_in_octets is not None and reading.if_hc_out_octets is not None, name
    # The lab's readiness GETs and this poll's requests arrived on mgmt0 before snmpd read its
    # counters: a zero would mean the counters are not the interface's.
    assert result.interfaces[names["mgmt0"]].if_hc_in_octets > 0  # type: ignore[operator]


# -- reachable -----------------------------------------------------------------------------


def test_v2c_poll_of_every_node_gives_its_name_interfaces_and_hc_counters(
        lab: NamespaceLab) -> None:
    results = poll_many([target(lab, node, v2c(lab)) for node in lab.nodes],
                        timeout_s=2.0, retries=1)
    assert [result.target.device_key for result in results] == lab.nodes
    for node, result in zip(lab.nodes, results, strict=True):
        assert_complete(result, lab, node)
    # The nodes really differ: ce1 has two ifbs and one link, pe1 two links and no ifb.
    assert {"ifb0", "ifb1", "eth0"} <= if_names(results[0]).keys()
    assert {"eth0", "eth1"} <= if_names(results[1]).keys()
    assert "ifb0" not in if_names(results[1])


def test_v3_auth_priv_poll_gives_the_same_data_as_v2c(lab: NamespaceLab) -> None:
    targets = [target(lab, node, credential) for node in lab.nodes
               for credential in (v2c(lab), v3(lab))]
    results = poll_many(targets, timeout_s=2.0, retries=1)
    for node, (by_v2c, by_v3) in zip(lab.nodes, zip(results[::2], results[1::2], strict=True),
                                     strict=True):
        assert by_v3.target.credential.version == "v3"
        assert_complete(by_v3, lab, node)
        # Counters move between the two polls; what the device is does not.
        assert (by_v3.sys_name, by_v3.sys_descr) == (by_v2c.sys_name, by_v2c.sys_descr)
        assert by_v3.interface_labels == by_v2c.interface_labels


# -- refused credentials -------------------------------------------------------------------


def test_wrong_v3_auth_key_or_unknown_user_is_auth_failed_without_leaking_keys(
        lab: NamespaceLab) -> None:
    wrong_key, unknown_user = poll_many(
        [target(lab, "pe1", v3(lab, auth_key=SecretStr(WRONG_AUTH_KEY))),
         target(lab, "pe1", v3(lab, username="nobody-here"))],
        timeout_s=1.0, retries=0)
    # snmpd answers both with a USM report (usmStatsWrongDigests, usmStatsUnknownUserNames):
    # an answer, so auth-failed, never a timeout.
    assert wrong_key.status is PollStatus.AUTH_FAILED, wrong_key.reason
    assert "wrongDigest" in (wrong_key.reason or "")
    assert unknown_user.status is PollStatus.AUTH_FAILED, unknown_user.reason
    assert "unknownUserName" in (unknown_user.reason or "")
    for result in (wrong_key, unknown_user):
        assert result.sys_name is None and not result.interfaces
        assert not [secret for secret in secrets_of(lab) if secret in (result.reason or "")]


def test_wrong_v3_priv_key_is_unreachable_and_the_reason_says_a_key_may_be_why(
        lab: NamespaceLab) -> None:
    (result,) = poll_many([target(lab, "pe1", v3(lab, priv_key=SecretStr(WRONG_PRIV_KEY)))],
                          timeout_s=0.5, retries=1)
    # AES-CFB "decrypts" with any key; snmpd finds no valid PDU in the garbage, counts a parse
    # error and sends nothing back. The poller cannot tell this from a dead device, so it says
    # both.
    assert result.status is PollStatus.UNREACHABLE, result.reason
    reason = result.reason or ""
    assert f"no answer from {lab.management_address('pe1')}:161 after 2 tries" in reason
    assert "wrong SNMPv3 privacy key also looks like this" in reason
    assert not [secret for secret in secrets_of(lab) if secret in reason]


# -- an unreachable device among good ones -------------------------------------------------


def test_unreachable_addresses_in_the_lab_network_do_not_delay_the_good_devices(
        lab: NamespaceLab) -> None:
    # .200 and .201 of the management /24: on the lab's bridge, owned by no namespace (nodes
    # are .1 to .3, the root namespace .254), so requests go out and nothing ever answers.
    prefix = lab.management_address("pe1").rsplit(".", 1)[0]
    nobody = [f"{prefix}.200", f"{prefix}.201"]
    assert not set(nobody) & {lab.management_address(node) for node in lab.nodes}
    timeout_s, retries = 1.5, 1
    total_timeout_s = timeout_s * (retries + 1)
    good = [target(lab, node, credential) for node in lab.nodes
            for credential in (v2c(lab), v3(lab))]
    dead = [target(lab, "dead-v2c", v2c(lab), host=nobody[0]),
            target(lab, "dead-v3", v3(lab), host=nobody[1])]
    # The unreachable ones first, so they hold their slots while the good ones are polled.
    batch_started = datetime.now(UTC)
    results = poll_many([*dead, *good], timeout_s=timeout_s, retries=retries)
    dead_results, good_results = results[:2], results[2:]
    for result in dead_results:
        assert result.status is PollStatus.UNREACHABLE, result.reason
        assert "after 2 tries" in (result.reason or "")
        # It really waited out every try: the comparison below means something.
        assert result.duration_s >= 0.9 * total_timeout_s
    for result in good_results:
        assert result.status is PollStatus.REACHABLE, (result.target.device_key, result.reason)
        assert result.sys_name == result.target.device_key
        # A good device waited for nobody: well under one timeout, let alone the dead
        # devices' total of all tries. Generous: a poll alone takes milliseconds, but the
        # first v3 poll builds a pysnmp engine (about 0.1 s of CPU that blocks the loop).
        assert result.duration_s < timeout_s / 2, (result.target.device_key,
                                                   result.duration_s)
        # duration_s starts once poll_many lets the device in: also bound when it finished,
        # counted from the batch's start, so waiting in poll_many's queue counts too.
        finished_s = (result.started_at - batch_started).total_seconds() + result.duration_s
        assert finished_s < timeout_s / 2, (result.target.device_key, finished_s)
