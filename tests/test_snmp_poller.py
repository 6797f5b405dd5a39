"""The SNMP poller against real agents on loopback, and the fast codec against hostile bytes.

Agents: one snmpsim process for the module (tests/snmp_agents.py: a generated 52-interface
device on three SNMPv2c ports and one SNMPv3 authPriv port, with values known in advance),
and Debian's snmpd (Net-SNMP) on 127.0.0.1 when it is installed. Misbehaviour comes from UDP
relays in front of those real agents: one holds answers past the timeout, others truncate or
corrupt the answer bytes or rewind the walk; cells of the wrong type or range come from
snmpsim serving a generated walk with those lines changed (lab.recordings); a closed port is
a real closed port (the kernel's ICMP port unreachable). Nothing here answers SNMP by hand.

Timing checks compare a device's poll in bad company with the same poll alone: an
unreachable, slow or broken device must not slow the others down.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Iterator
from dataclasses import fields, replace
from pathlib import Path

import pytest
from pydantic import SecretStr

from collectors import snmp_fast
from collectors.counters import compute_rates
from collectors.model import PollResult, PollStatus, PollTarget, SnmpCredential
from collectors.snmp import IF_ENTRY as IF_ENTRY_OID
from collectors.snmp import IF_TABLE_COLUMNS, IF_X_TABLE_COLUMNS, SnmpPoller
from tests.snmp_agents import (
    COMMUNITY,
    SYS_DESCR,
    SYS_NAME,
    SYS_UPTIME_CS,
    V3_AUTH_KEY,
    V3_PRIV_KEY,
    V3_USER,
    NetSnmpAgent,
    Relay,
    SnmpsimAgents,
    expected_row,
    free_udp_port_on,
    free_udp_ports,
    if_indexes,
    snmprec_lines,
    snmpsim_installed,
)

pytestmark = pytest.mark.skipif(not snmpsim_installed(),
                                reason="snmpsim is not installed (pip install snmpsim pysmi)")

INTERFACES = 52
V2C = SnmpCredential(version="v2c", community=SecretStr(COMMUNITY))
V3 = SnmpCredential(version="v3", username=V3_USER, security_level="authPriv",
                    auth_protocol="SHA", auth_key=SecretStr(V3_AUTH_KEY),
                    priv_protocol="AES", priv_key=SecretStr(V3_PRIV_KEY))
SNMPSIM_V3_ENGINE_ID = bytes.fromhex("80001f8805aa00000000000002")  # tests/snmp_agents.py
SNMP_ENGINE_ID_COLUMN = (1, 3, 6, 1, 6, 3, 10, 2, 1, 1)  # snmpEngineID (.0 is the scalar)
COLUMN_OIDS = {column.oid for column in IF_TABLE_COLUMNS + IF_X_TABLE_COLUMNS}
SECRETS = (COMMUNITY, V3_AUTH_KEY, V3_PRIV_KEY, "wrong-community-xyz", "wrong-auth-key-99")


@pytest.fixture(scope="module")
def agents() -> Iterator[SnmpsimAgents]:
    with SnmpsimAgents(interfaces=INTERFACES, v2c_count=3) as running:
        yield running


@pytest.fixture(scope="module")
def netsnmp() -> Iterator[NetSnmpAgent]:
    if NetSnmpAgent.binary() is None:
        pytest.skip("Net-SNMP snmpd is not installed (apt-get install snmpd)")
    with NetSnmpAgent() as agent:
        yield agent


def target(port: int, credential: SnmpCredential = V2C, host: str = "127.0.0.1",
           key: str = "dev") -> PollTarget:
    return PollTarget(device_id=port, device_key=key, host=host, port=port,
                      credential=credential, poller_group="test")


def comparable(result: PollResult) -> dict[str, object]:
    """A result without what differs from poll to poll (times)."""
    values = {f.name: getattr(result, f.name) for f in fields(result)
              if f.name not in ("started_at", "duration_s", "interfaces")}
    values["interfaces"] = {index: {f.name: getattr(reading, f.name) for f in fields(reading)
                                    if f.name != "read_at_s"}
                            for index, reading in result.interfaces.items()}
    return values


def assert_no_secret(result: PollResult) -> None:
    for secret in SECRETS:
        assert secret not in (result.reason or "")


# --- reading a device ------------------------------------------------------------------------


def test_v2c_poll_returns_every_interface_with_its_counters(agents: SnmpsimAgents) -> None:
    async def run() -> PollResult:
        poller = SnmpPoller(timeout_s=1.0, retries=1)
        try:
            return await poller.poll(target(agents.v2c_ports[0]))
        finally:
            poller.close()

    result = asyncio.run(run())
    assert result.status is PollStatus.REACHABLE, result.reason
    assert result.reason is None
    assert result.engine_id is None  # v2c: no engine id to learn
    assert (result.sys_name, result.sys_descr, result.sys_uptime_cs) == (
        SYS_NAME, SYS_DESCR, SYS_UPTIME_CS)
    assert sorted(result.interfaces) == if_indexes(INTERFACES)
    for index, reading in result.interfaces.items():
        expected = expected_row(index)
        label = result.interface_labels[index]
        assert (label.if_name, label.if_descr, label.if_type) == (
            expected.pop("if_name"), expected.pop("if_descr"), expected.pop("if_type"))
        assert reading.sys_uptime_cs == SYS_UPTIME_CS
        for name, value in expected.items():
            assert getattr(reading, name) == value, (index, name)
    columns = len(IF_TABLE_COLUMNS) + len(IF_X_TABLE_COLUMNS)
    assert result.varbind_count == 3 + columns * INTERFACES


class RecordingRelay(Relay):
    """Notes each request's (PDU tag, error-status field, OIDs) on its way to the agent."""

    def __init__(self, agent: tuple[str, int]) -> None:
        super().__init__(agent)
        self.requests: list[tuple[int, int, list[tuple[int, ...]]]] = []

    def datagram_received(self, data: bytes, addr: object) -> None:
        tag, pdu = snmp_fast.decode_message(data)
        self.requests.append((tag, pdu.error_status, [oid for oid, _ in pdu.varbinds]))
        super().datagram_received(data, addr)


class FirstTryLostRelay(Relay):
    """Loses the first datagram it is sent (the network did): only the retry gets through."""

    def __init__(self, agent: tuple[str, int]) -> None:
        super().__init__(agent)
        self.lost = 0

    def datagram_received(self, data: bytes, addr: object) -> None:
        if not self.lost:
            self.lost = 1
            return
        super().datagram_received(data, addr)


def test_counters_are_read_when_the_answer_with_sysuptime_came(agents: SnmpsimAgents) -> None:
    """The reading's time is the answer's that carries sysUpTime, not the first try's: a
    retry waited out in between would otherwise stretch the interval against the agent's
    clock (and withhold the rates as "clocks disagree")."""
    timeout_s = 1.0

    async def run() -> tuple[float, PollResult]:
        relay = await FirstTryLostRelay(("127.0.0.1", agents.v2c_ports[1])).start()
        poller = SnmpPoller(timeout_s=timeout_s, retries=2)
        try:
            sent_at_s = time.monotonic()
            return sent_at_s, await poller.poll(target(relay.address[1]))
        finally:
            poller.close()
            relay.close()

    sent_at_s, result = asyncio.run(run())
    assert result.status is PollStatus.REACHABLE, result.reason
    assert {reading.read_at_s for reading in result.interfaces.values()} != set()
    assert all(reading.read_at_s >= sent_at_s + timeout_s
               for reading in result.interfaces.values())


@pytest.mark.parametrize("engine", ["fast", "pysnmp"])
def test_the_system_group_rides_in_the_first_getbulk(agents: SnmpsimAgents,
                                                     engine: str) -> None:
    """No GET of its own for sysDescr, sysUpTime and sysName: they are the first GETBULK's
    non-repeaters (GETNEXT of each object), one request less per poll; the values are the
    ones a GET gives."""
    async def run() -> tuple[PollResult, RecordingRelay]:
        relay = await RecordingRelay(("127.0.0.1", agents.v2c_ports[1])).start()
        poller = SnmpPoller(timeout_s=2.0, retries=1, v2c_engine=engine)
        try:
            return await poller.poll(target(relay.address[1])), relay
        finally:
            poller.close()
            relay.close()

    result, relay = asyncio.run(run())
    assert result.status is PollStatus.REACHABLE, result.reason
    assert (result.sys_name, result.sys_descr, result.sys_uptime_cs) == (
        SYS_NAME, SYS_DESCR, SYS_UPTIME_CS)
    assert result.problems == ()
    tags = {tag for tag, _, _ in relay.requests}
    assert tags == {snmp_fast.PDU_GETBULK}, tags  # no GET
    _, non_repeaters, oids = relay.requests[0]
    system_objects = [(1, 3, 6, 1, 2, 1, 1, 1), (1, 3, 6, 1, 2, 1, 1, 3),
                      (1, 3, 6, 1, 2, 1, 1, 5)]
    assert non_repeaters == 3 and oids[:3] == system_objects
    assert all(non_repeaters == 0 for _, non_repeaters, _ in relay.requests[1:])
    columns = len(IF_TABLE_COLUMNS) + len(IF_X_TABLE_COLUMNS)
    assert result.varbind_count == 3 + columns * INTERFACES


def test_32_bit_octet_counters_are_asked_only_while_some_interface_lacks_64_bit_ones(
        tmp_path: Path) -> None:
    """A device whose every interface had ifHCInOctets and ifHCOutOctets is not asked its
    ifInOctets/ifOutOctets again (its rates come from the 64-bit ones); a device without
    them is asked every time, and its rates come from the 32-bit counters."""
    from lab.recordings import RecordingAgents

    hc = ".".join(map(str, IF_X_TABLE_COLUMNS[1].oid)), ".".join(
        map(str, IF_X_TABLE_COLUMNS[2].oid))
    assert [column.name for column in IF_X_TABLE_COLUMNS[1:3]] == ["ifHCInOctets",
                                                                    "ifHCOutOctets"]
    with_hc = tmp_path / "withhc.snmprec"
    with_hc.write_text("".join(f"{line}\n" for line in snmprec_lines(4)))
    without_hc = tmp_path / "nohc.snmprec"
    without_hc.write_text("".join(f"{line}\n" for line in snmprec_lines(4)
                                  if not line.startswith(tuple(f"{oid}." for oid in hc))))
    octets32 = {(*IF_ENTRY_OID, 10), (*IF_ENTRY_OID, 16)}

    with RecordingAgents([with_hc, without_hc], moving=True) as served:
        async def run(name: str) -> tuple[list[PollResult], RecordingRelay]:
            relay = await RecordingRelay(served.endpoint(name)).start()
            poller = SnmpPoller(timeout_s=2.0, retries=1)
            device = PollTarget(device_id=1, device_key=name, host=relay.address[0],
                                port=relay.address[1], poller_group="test",
                                credential=SnmpCredential(version="v2c",
                                                          community=SecretStr(name)))
            try:
                results = []
                for _ in range(3):
                    results.append(await poller.poll(device))
                    relay.requests.append((-1, 0, []))  # between polls
                return results, relay
            finally:
                poller.close()
                relay.close()

        for name, spared in (("withhc", True), ("nohc", False)):
            results, relay = asyncio.run(run(name))
            assert all(r.status is PollStatus.REACHABLE and not any(
                "Octets" in problem for problem in r.problems) for r in results), [
                (r.reason, r.problems) for r in results]
            asked: list[set[tuple[int, ...]]] = [set()]
            for tag, _, oids in relay.requests:
                if tag == -1:
                    asked.append(set())
                else:
                    asked[-1].update(oid[:-1] if oid[:-1] in octets32 else oid for oid in oids)
            assert octets32 <= asked[0], name  # the first poll asks everything
            for later, result in zip(asked[1:3], results[1:], strict=True):
                assert bool(octets32 & later) is not spared, name
                for reading in result.interfaces.values():
                    assert (reading.if_in_octets is None) is spared
                    assert (reading.if_hc_in_octets is None) is not spared
            # rates come either way
            previous, current = results[1], results[2]
            rates = [compute_rates(previous.interfaces[index], reading)
                     for index, reading in current.interfaces.items()]
            assert rates and all(rate.in_bps is not None for rate in rates), (
                name, [rate.skipped_reason for rate in rates])


def test_an_agent_whose_uptime_advances_counts_on_like_a_real_one() -> None:
    """`uptime_advances` (bench/collect.py's agents): sysUpTime counts on from SYS_UPTIME_CS
    with the clock, as a real agent's does, so polls at intervals measure steady state; the
    default agent's stands still, which a poller minutes later reads as a restart."""
    async def run() -> tuple[PollResult, PollResult]:
        poller = SnmpPoller(timeout_s=2.0, retries=1)
        try:
            first = await poller.poll(target(advancing.v2c_ports[0]))
            await asyncio.sleep(1.0)
            return first, await poller.poll(target(advancing.v2c_ports[0]))
        finally:
            poller.close()

    with SnmpsimAgents(interfaces=3, uptime_advances=True) as advancing:
        first, second = asyncio.run(run())
    assert first.status is PollStatus.REACHABLE, first.reason
    assert second.status is PollStatus.REACHABLE, second.reason
    assert first.sys_uptime_cs is not None and second.sys_uptime_cs is not None
    assert SYS_UPTIME_CS <= first.sys_uptime_cs < second.sys_uptime_cs
    # the agent's clock advanced by the poller's interval, give or take each poll's own
    # duration (when in it the agent read its clock) and a tick at each end
    advanced_s = (second.sys_uptime_cs - first.sys_uptime_cs) / 100
    interval_s = second.interfaces[1].read_at_s - first.interfaces[1].read_at_s
    assert abs(advanced_s - interval_s) <= first.duration_s + second.duration_s + 0.02


def test_fast_and_pysnmp_engines_give_identical_results(agents: SnmpsimAgents) -> None:
    async def run() -> list[PollResult]:
        results = []
        for engine in ("fast", "pysnmp"):
            poller = SnmpPoller(timeout_s=1.0, retries=1, v2c_engine=engine, max_repetitions=10)
            try:
                results.append(await poller.poll(target(agents.v2c_ports[1])))
            finally:
                poller.close()
        return results

    fast, pysnmp = asyncio.run(run())
    assert fast.status is PollStatus.REACHABLE, fast.reason
    assert comparable(fast) == comparable(pysnmp)


def test_v3_auth_priv_poll_and_rejected_credentials(agents: SnmpsimAgents) -> None:
    wrong_key = SnmpCredential(**{**V3.__dict__, "auth_key": SecretStr("wrong-auth-key-99")})
    unknown_user = SnmpCredential(**{**V3.__dict__, "username": "nobody-here"})

    async def run() -> list[PollResult]:
        poller = SnmpPoller(timeout_s=1.0, retries=1)
        try:
            return await poller.poll_many([target(agents.v3_port, credential)
                                           for credential in (V3, wrong_key, unknown_user)])
        finally:
            poller.close()

    good, wrong, unknown = asyncio.run(run())
    assert good.status is PollStatus.REACHABLE, good.reason
    assert sorted(good.interfaces) == if_indexes(INTERFACES)
    assert good.interfaces[3].if_hc_in_octets == expected_row(3)["if_hc_in_octets"]
    # the engine id USM discovery found: the one snmpsim's v3 engine is configured with
    # (snmpsim does not serve snmpEngineID.0 itself)
    assert good.engine_id == SNMPSIM_V3_ENGINE_ID
    assert wrong.engine_id is None and unknown.engine_id is None
    assert wrong.status is PollStatus.AUTH_FAILED and "wrongDigest" in wrong.reason
    assert unknown.status is PollStatus.AUTH_FAILED and "unknownUserName" in unknown.reason
    for result in (wrong, unknown):
        assert_no_secret(result)


def test_wrong_v2c_community_is_unreachable(agents: SnmpsimAgents) -> None:
    wrong = SnmpCredential(version="v2c", community=SecretStr("wrong-community-xyz"))

    async def run() -> PollResult:
        poller = SnmpPoller(timeout_s=0.3, retries=1)
        try:
            return await poller.poll(target(agents.v2c_ports[0], wrong))
        finally:
            poller.close()

    result = asyncio.run(run())
    assert result.status is PollStatus.UNREACHABLE
    assert result.reason == (f"no answer from 127.0.0.1:{agents.v2c_ports[0]} after 2 tries "
                             f"(0.3 s each)")
    assert_no_secret(result)


# --- one bad device does not slow the others -------------------------------------------------


async def _alone_s(poller: SnmpPoller, good: PollTarget) -> float:
    """The best of three polls of `good` alone: its normal time."""
    times = []
    for _ in range(3):
        result = await poller.poll(good)
        assert result.status is PollStatus.REACHABLE, result.reason
        times.append(result.duration_s)
    return min(times)


def _assert_kept_pace(result: PollResult, alone_s: float) -> None:
    assert result.status is PollStatus.REACHABLE, result.reason
    assert result.duration_s < 3 * alone_s + 0.25, (result.duration_s, alone_s)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A UDP port of 127.0.9.9 where a socket is bound and never answers: a host that drops
    SNMP (a closed port would answer ICMP port unreachable, which ends a poll at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.9.9", 0))
        yield sock.getsockname()[1]


def test_unreachable_device_does_not_delay_a_reachable_one(agents: SnmpsimAgents,
                                                           silent_port: int) -> None:
    silent = target(silent_port, host="127.0.9.9", key="silent")
    good = target(agents.v2c_ports[0])

    async def run() -> tuple[float, list[PollResult], float]:
        poller = SnmpPoller(timeout_s=0.5, retries=2)
        try:
            alone_s = await _alone_s(poller, good)
            started = time.monotonic()
            results = await poller.poll_many([silent, good])
            return alone_s, results, time.monotonic() - started
        finally:
            poller.close()

    alone_s, (dead, alive), total_s = asyncio.run(run())
    _assert_kept_pace(alive, alone_s)
    assert dead.status is PollStatus.UNREACHABLE
    assert dead.reason.startswith(f"no answer from 127.0.9.9:{silent.port} after 3 tries "
                                  f"(0.5 s each")
    assert 1.4 < dead.duration_s < 2.5 and total_s < 2.5


def test_slow_and_malformed_agents_get_their_status_and_others_keep_pace(
        agents: SnmpsimAgents) -> None:
    real = ("127.0.0.1", agents.v2c_ports[2])
    good = target(agents.v2c_ports[0], key="good")

    def truncate(answer: bytes) -> bytes:
        return answer[: len(answer) // 2]

    def bad_value_tag(answer: bytes) -> bytes:
        # the first varbind's value: after its OID (06 len ...), put a tag no SNMP type has
        at = answer.index(b"\x06", answer.index(b"\x30", 20) + 2)
        at += 2 + answer[at + 1]
        return answer[:at] + b"\x1f" + answer[at + 1:]

    async def run() -> tuple[float, list[PollResult]]:
        # Timeouts generous enough for a loaded machine's snmpsim to answer the good device;
        # the slow relay answers after them all the same.
        relays = [await Relay(real, delay_s=2.5).start(), await Relay(real, mangle=truncate)
                  .start(), await Relay(real, mangle=bad_value_tag).start()]
        poller = SnmpPoller(timeout_s=1.0, retries=1)
        try:
            alone_s = await _alone_s(poller, good)
            bad = [target(relay.address[1], key=f"bad{n}") for n, relay in enumerate(relays)]
            return alone_s, await poller.poll_many([*bad, good])
        finally:
            poller.close()
            for relay in relays:
                relay.close()

    alone_s, (slow, truncated, corrupt, fine) = asyncio.run(run())
    _assert_kept_pace(fine, alone_s)
    assert slow.status is PollStatus.UNREACHABLE and "after 2 tries (1.0 s each)" in slow.reason
    assert truncated.status is PollStatus.ERROR and "malformed answer: truncated" in (
        truncated.reason)
    assert corrupt.status is PollStatus.ERROR and "unknown value tag 0x1f" in corrupt.reason
    for result in (slow, truncated, corrupt):
        assert_no_secret(result)


def _patch_pdu(message: bytes, rewrite: dict[str, int] | None = None,
               rewind: bool = False) -> bytes:
    """Re-encode a v2c message: error-status / error-index changed, or OIDs cut back to their
    column (so the agent walks the column again from its start)."""
    tag, pdu = snmp_fast.decode_message(message)
    if rewind and tag == snmp_fast.PDU_GETBULK:
        oids = [oid[:-1] if oid[:-1] in COLUMN_OIDS else oid for oid, _ in pdu.varbinds]
        return snmp_fast.encode_request(COMMUNITY.encode(), pdu.request_id, oids,
                                        max_repetitions=pdu.error_index)
    if rewrite is None or tag != snmp_fast.PDU_RESPONSE:
        return message
    body = message.replace(b"\x02\x01\x00\x02\x01\x00", bytes(
        (2, 1, rewrite["status"], 2, 1, rewrite["index"])), 1)
    return body


class RewindingRelay(Relay):
    """Sends every GETBULK after the first of a walk back to the start of its columns."""

    def datagram_received(self, data: bytes, addr: object) -> None:
        tag, pdu = snmp_fast.decode_message(data)
        if tag == snmp_fast.PDU_GETBULK and any(oid[:-1] in COLUMN_OIDS
                                                for oid, _ in pdu.varbinds):
            data = _patch_pdu(data, rewind=True)
        super().datagram_received(data, addr)


def test_error_status_and_a_looping_walk_are_errors(agents: SnmpsimAgents) -> None:
    real = ("127.0.0.1", agents.v2c_ports[2])

    async def run() -> list[PollResult]:
        relays = [await Relay(real, mangle=lambda m: _patch_pdu(
                      m, rewrite={"status": 5, "index": 2})).start(),
                  await RewindingRelay(real).start()]
        poller = SnmpPoller(timeout_s=2.0, retries=0, max_repetitions=10)
        try:
            return await poller.poll_many([target(relay.address[1]) for relay in relays])
        finally:
            poller.close()
            for relay in relays:
                relay.close()

    gen_err, looping = asyncio.run(run())
    assert gen_err.status is PollStatus.ERROR
    assert gen_err.reason == "agent answered error-status genErr (5) at sysUpTime.0"
    assert looping.status is PollStatus.ERROR and "OID not increasing" in looping.reason


def test_poll_many_bounded_many_devices(agents: SnmpsimAgents) -> None:
    targets = [target(port, key=f"d{n}-{port}") for n in range(3) for port in agents.v2c_ports]

    async def run() -> list[PollResult]:
        poller = SnmpPoller(timeout_s=2.0, retries=1, max_in_flight=4)
        try:
            return await poller.poll_many(targets)
        finally:
            poller.close()

    results = asyncio.run(run())
    assert [r.target for r in results] == targets
    assert all(r.status is PollStatus.REACHABLE and len(r.interfaces) == INTERFACES
               for r in results)


# --- answers partly wrong: each bad cell is skipped and named, the poll stands ---------------

BAD_CELLS = {  # OID -> the snmprec TAG|VALUE served instead of the generated one (None: absent)
    "1.3.6.1.2.1.1.3.0": None,  # no sysUpTime.0
    "1.3.6.1.2.1.1.5.0": "2|7",  # sysName as INTEGER
    "1.3.6.1.2.1.31.1.1.1.1.3": "2|42",  # ifName.3 as INTEGER
    "1.3.6.1.2.1.2.2.1.10.4": "2|-5",  # ifInOctets.4 negative
    "1.3.6.1.2.1.2.2.1.8.2": "6|1.3.6.1",  # ifOperStatus.2 as an OID
    "1.3.6.1.2.1.31.1.1.1.6.200": "4|not-a-number",  # ifHCInOctets.200 as a string
    "1.3.6.1.2.1.2.2.1.2.5.1": "4|odd",  # an ifDescr cell with a two-part index
}
BAD_CELLS_SKIPPED = {  # ifIndex -> fields the poll leaves out
    3: {"if_name"}, 4: {"if_in_octets"}, 2: {"if_oper_status"}, 200: {"if_hc_in_octets"}}


def bad_cells_snmprec(folder: Path, interfaces: int = 6) -> Path:
    records = {line.split("|", 1)[0]: line.split("|", 1)[1]
               for line in snmprec_lines(interfaces)}
    for oid, served in BAD_CELLS.items():
        if served is None:
            records.pop(oid)
        else:
            records[oid] = served
    path = folder / "badcells.snmprec"
    path.write_text("".join(f"{oid}|{records[oid]}\n" for oid in sorted(
        records, key=lambda oid: tuple(map(int, oid.split("."))))))
    return path


@pytest.mark.parametrize(("engine", "version"),
                         [("fast", "v2c"), ("pysnmp", "v2c"), ("fast", "v1"), ("pysnmp", "v1")])
def test_bad_cells_are_skipped_and_named_and_the_rest_stands(
        tmp_path: Path, engine: str, version: str) -> None:
    from lab.recordings import RecordingAgents

    with RecordingAgents([bad_cells_snmprec(tmp_path)], moving=False) as served:
        host, port = served.endpoint("badcells")

        async def run() -> PollResult:
            poller = SnmpPoller(timeout_s=2.0, retries=1, v2c_engine=engine)
            try:
                return await poller.poll(PollTarget(
                    device_id=1, device_key="badcells", host=host, port=port,
                    credential=SnmpCredential(version=version,
                                              community=SecretStr("badcells")),
                    poller_group="test"))
            finally:
                poller.close()

        result = asyncio.run(run())
    assert result.status is PollStatus.REACHABLE, result.reason
    missing = "noSuchName" if version == "v1" else "noSuchInstance"
    expected = {
        f"sysUpTime.0: {missing}; skipped: agent restarts go unseen and rates are judged by "
        f"the wall clock alone",
        "sysName.0: INTEGER where OCTET STRING expected; skipped",
        "ifName.3: INTEGER where OCTET STRING expected; skipped",
        "ifInOctets.4: -5 out of range 0..4294967295; skipped",
        "ifOperStatus.2: OBJECT IDENTIFIER where INTEGER expected; skipped",
        "ifDescr.5.1: not a one-part index; skipped",
    }
    if version == "v2c":  # SNMPv1 has no Counter64: those columns are not asked for
        expected.add("ifHCInOctets.200: OCTET STRING where Counter64 expected; skipped")
    assert sorted(result.problems) == sorted(expected)
    assert (result.sys_uptime_cs, result.sys_name, result.sys_descr) == (None, None, SYS_DESCR)
    assert sorted(result.interfaces) == if_indexes(6)
    for index, reading in result.interfaces.items():
        wanted = expected_row(index)
        label = result.interface_labels[index]
        skipped = BAD_CELLS_SKIPPED.get(index, set())
        if version == "v1":
            skipped = skipped | {"if_hc_in_octets", "if_hc_out_octets"}
        for name in ("if_name", "if_descr", "if_type"):
            assert getattr(label, name) == (None if name in skipped else wanted[name])
        assert reading.sys_uptime_cs is None
        for name, value in wanted.items():
            if name not in ("if_name", "if_descr", "if_type"):
                assert getattr(reading, name) == (None if name in skipped else value), (
                    index, name)


# --- ICMP port unreachable: nobody listens, no point waiting --------------------------------


@pytest.mark.parametrize("version", ["v2c", "v1"])
def test_closed_port_is_unreachable_at_the_first_try(version: str) -> None:
    port = free_udp_ports(1)[0]  # nothing listens: the kernel answers ICMP port unreachable
    closed = target(port, SnmpCredential(version=version, community=SecretStr(COMMUNITY)))

    async def run() -> tuple[PollResult, object, str | None, int]:
        poller = SnmpPoller(timeout_s=2.0, retries=4)  # five tries configured
        try:
            polled = await poller.poll(closed)
            walked = await poller.walk(closed, [(1, 3, 6, 1, 2, 1, 1)])
            sent = poller.requests_sent
            return polled, walked, await poller.diagnose_silence(closed), sent
        finally:
            poller.close()

    polled, walked, hint, sent = asyncio.run(run())
    reason = f"127.0.0.1:{port} refused: no SNMP agent listening (ICMP port unreachable)"
    for result in (polled, walked):
        assert result.status is PollStatus.UNREACHABLE
        assert result.reason == reason
    assert sent == 2  # one try each for the poll and the walk, of the five configured
    assert hint is None
    assert_no_secret(polled)


class _ScriptedAgent(asyncio.DatagramProtocol):
    """A UDP "agent" on loopback that answers the `answer_at`-th datagram it receives (1 is
    the first; 0: never) with a Response to the *first* datagram's request: a late answer."""

    def __init__(self, answer_at: int) -> None:
        self.answer_at = answer_at
        self.received: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append(data)
        if len(self.received) == self.answer_at and self.transport is not None:
            # the request itself, its GET tag turned into Response's: the names echoed, NULL
            first = self.received[0]
            at = snmp_fast.decode_message(first, COMMUNITY.encode())[1].pdu_offset
            self.transport.sendto(first[:at] + bytes((0xA2,)) + first[at + 1:], addr)


@pytest.mark.parametrize(("answer_at", "tries", "expect_sent"), [
    (1, 3, 1),  # answered at once: no retry follows, however long we wait
    (2, 3, 2),  # the retry's arrival releases the first try's answer: taken, no third try
    (0, 3, 3),  # silent: every try sent, then NoAnswer
])
def test_exchange_retries_on_timeouts_and_takes_a_late_answer(answer_at: int, tries: int,
                                                              expect_sent: int) -> None:
    async def run() -> tuple[object, int, int]:
        loop = asyncio.get_running_loop()
        transport, agent = await loop.create_datagram_endpoint(
            lambda: _ScriptedAgent(answer_at), local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        session = snmp_fast.V2cSession("127.0.0.1", port, COMMUNITY.encode())
        await session.open()
        try:
            # a try the agent answers waits long enough for a loopback answer on a loaded
            # machine (2 s); a try it ignores is short. Answered at the first try, we wait
            # past that try's timeout: a retry still armed would be sent meanwhile.
            timeouts_s = {1: (2.0,) * tries, 2: (0.3,) + (2.0,) * (tries - 1),
                          0: (0.3,) * tries}[answer_at]
            try:
                outcome: object = await session.request([(1, 3, 6, 1, 2, 1, 1, 3, 0)],
                                                        timeouts_s)
            except snmp_fast.NoAnswer as error:
                outcome = error
            await asyncio.sleep(timeouts_s[0] + 0.5)
            return outcome, session.sent, len(agent.received)
        finally:
            session.close()
            transport.close()

    outcome, sent, received = asyncio.run(run())
    assert sent == expect_sent and received == expect_sent
    if answer_at:
        assert isinstance(outcome, snmp_fast.Response)
        assert outcome.varbinds == [((1, 3, 6, 1, 2, 1, 1, 3, 0), None)]
    else:
        assert isinstance(outcome, snmp_fast.NoAnswer)


# --- the simulated network (lab.sim) ---------------------------------------------------------


def test_polls_every_device_of_the_simulated_network(tmp_path: Path) -> None:
    """The example inventory as `keyline lab sim` runs it: SNMPv2c edges, SNMPv3 core."""
    try:
        from config.inventory.loader import load_inventory
        from keyline.wiring import EXAMPLE_INVENTORY
        from lab.sim.access import with_lab_defaults
        from lab.sim.network import SimulatedNetwork, engine_id_hex
    except ImportError as error:
        pytest.skip(f"lab.sim is not usable here: {error}")
    example = load_inventory([EXAMPLE_INVENTORY])
    port = free_udp_port_on([str(d.management_address) for d in example.devices.values()])
    inventory = replace(example, devices={key: replace(device, snmp_port=port)
                                          for key, device in example.devices.items()})
    with SimulatedNetwork(inventory, tmp_path / "sim",
                          environ=with_lab_defaults(inventory, {})) as network:
        targets = []
        for number, key in enumerate(sorted(inventory.devices)):
            host, agent_port = network.endpoint(key)
            access = network.access(key)
            credential = (
                SnmpCredential(version="v2c", community=access.community)
                if access.version == "2c" else
                SnmpCredential(version="v3", username=access.user,
                               security_level="authPriv" if access.priv_key else "authNoPriv",
                               auth_protocol=access.auth_protocol, auth_key=access.auth_key,
                               priv_protocol=access.priv_protocol, priv_key=access.priv_key))
            targets.append(PollTarget(device_id=number, device_key=key, host=host,
                                      port=agent_port, credential=credential,
                                      poller_group="sim"))

        async def run() -> list[PollResult]:
            poller = SnmpPoller(timeout_s=2.0, retries=1)
            try:
                return await poller.poll_many(targets)
            finally:
                poller.close()

        results = asyncio.run(run())
    assert {r.target.credential.version for r in results} == {"v2c", "v3"}
    for result in results:
        assert result.status is PollStatus.REACHABLE, (result.target.device_key, result.reason)
        if result.target.credential.version == "v3":  # lab.sim's engine id per device
            assert result.engine_id == bytes.fromhex(engine_id_hex(result.target.device_key))
        else:
            assert result.engine_id is None
        assert result.interfaces, result.target.device_key
        assert all(r.if_hc_in_octets is not None for r in result.interfaces.values())


# --- Net-SNMP snmpd ------------------------------------------------------------------------


def test_netsnmp_v2c_and_v3_auth_priv(netsnmp: NetSnmpAgent) -> None:
    wrong_key = SnmpCredential(**{**V3.__dict__, "auth_key": SecretStr("wrong-auth-key-99")})
    wrong_priv = SnmpCredential(**{**V3.__dict__, "priv_key": SecretStr("wrong-priv-key-99")})

    async def run() -> list[PollResult]:
        out = []
        for engine in ("fast", "pysnmp"):
            poller = SnmpPoller(timeout_s=0.5, retries=1, v2c_engine=engine)
            try:
                out.append(await poller.poll(target(netsnmp.port)))
                if engine == "pysnmp":
                    out += await poller.poll_many([target(netsnmp.port, credential)
                                                   for credential in (V3, wrong_key)])
                    out.append(await poller.poll(target(netsnmp.port, wrong_priv)))
            finally:
                poller.close()
        return out

    fast, slow, v3, wrong, wrong_priv_result = asyncio.run(run())
    assert fast.status is PollStatus.REACHABLE, fast.reason
    assert fast.sys_name == SYS_NAME and fast.interfaces
    assert all(r.if_hc_in_octets is not None and r.if_oper_status in (1, 2, 7)
               for r in fast.interfaces.values())
    # counters move between polls on a live agent; the shape must be the same
    assert slow.status is PollStatus.REACHABLE and sorted(slow.interfaces) == sorted(
        fast.interfaces)
    assert v3.status is PollStatus.REACHABLE, v3.reason
    assert sorted(v3.interfaces) == sorted(fast.interfaces)
    assert wrong.status is PollStatus.AUTH_FAILED and "wrongDigest" in wrong.reason
    # a wrong privacy key: Net-SNMP 5.9 drops what it cannot decrypt (no report), so the
    # reason says what silence may mean
    assert wrong_priv_result.status is PollStatus.AUTH_FAILED or (
        wrong_priv_result.status is PollStatus.UNREACHABLE
        and "wrong SNMPv3 privacy key" in wrong_priv_result.reason)
    for result in (wrong, wrong_priv_result):
        assert_no_secret(result)


def test_netsnmp_v3_poll_learns_the_engine_id_the_agent_reports(netsnmp: NetSnmpAgent) -> None:
    """snmpd generates its snmpEngineID at start; a v3 poll's engine_id (from USM discovery)
    is what the agent itself serves as snmpEngineID.0, over v2c and over v3."""
    async def run() -> tuple[PollResult, PollResult, list]:
        poller = SnmpPoller(timeout_s=0.5, retries=1)
        try:
            v3, v2c = await poller.poll_many([target(netsnmp.port, V3), target(netsnmp.port)])
            reported = [await poller.walk(target(netsnmp.port, credential),
                                          [SNMP_ENGINE_ID_COLUMN]) for credential in (V2C, V3)]
            return v3, v2c, reported
        finally:
            poller.close()

    v3, v2c, reported = asyncio.run(run())
    assert v3.status is PollStatus.REACHABLE, v3.reason
    assert v2c.status is PollStatus.REACHABLE and v2c.engine_id is None
    for walked in reported:
        assert walked.status is PollStatus.REACHABLE, walked.reason
        assert walked.rows[SNMP_ENGINE_ID_COLUMN] == {(0,): v3.engine_id}
    assert v3.engine_id is not None and 5 <= len(v3.engine_id) <= 32


# --- the codec -------------------------------------------------------------------------------


def _real_answers(agents: SnmpsimAgents) -> list[bytes]:
    """Real GET and GETBULK answers of the snmpsim agent, as bytes."""
    community = COMMUNITY.encode()
    requests = [
        snmp_fast.encode_request(community, 7, [(1, 3, 6, 1, 2, 1, 1, 1, 0),
                                                (1, 3, 6, 1, 2, 1, 1, 3, 0)]),
        snmp_fast.encode_request(community, 8, [c.oid for c in IF_TABLE_COLUMNS],
                                 max_repetitions=3),
        snmp_fast.encode_request(community, 9, [(1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6, 199)],
                                 max_repetitions=3),
        snmp_fast.encode_request(community, 10, [(1, 3, 6, 1, 2, 1, 1, 99, 0)]),
        snmp_fast.encode_request(community, 11, [(1, 3, 6, 1, 9)], max_repetitions=2),
    ]
    answers = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2.0)
        for request in requests:
            sock.sendto(request, ("127.0.0.1", agents.v2c_ports[0]))
            answers.append(sock.recvfrom(65535)[0])
    return answers


def test_codec_decodes_real_answers(agents: SnmpsimAgents) -> None:
    system, bulk, high, missing, end = (snmp_fast.decode_response(a, COMMUNITY.encode())
                                        for a in _real_answers(agents))
    assert system.request_id == 7 and system.varbinds == [
        ((1, 3, 6, 1, 2, 1, 1, 1, 0), SYS_DESCR.encode()),
        ((1, 3, 6, 1, 2, 1, 1, 3, 0), SYS_UPTIME_CS)]
    assert len(bulk.varbinds) == 3 * len(IF_TABLE_COLUMNS)
    assert bulk.varbinds[0] == ((1, 3, 6, 1, 2, 1, 2, 2, 1, 1, 1), 1)
    assert high.varbinds[0] == ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6, 200), 2**64 - 1000)
    assert high.varbinds[1] == ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6, 70000),
                                expected_row(70000)["if_hc_in_octets"])
    assert missing.varbinds[0][1] in (snmp_fast.NO_SUCH_OBJECT, snmp_fast.NO_SUCH_INSTANCE)
    assert end.varbinds[0][1] is snmp_fast.END_OF_MIB_VIEW
    with pytest.raises(snmp_fast.BerError, match="community"):
        snmp_fast.decode_response(_real_answers(agents)[0], b"other")


def test_codec_names_value_types_and_checks_the_version(agents: SnmpsimAgents) -> None:
    system, bulk, _high, missing, end = _real_answers(agents)
    assert [snmp_fast.value_type_name(system, i) for i in range(2)] == [
        "OCTET STRING", "TimeTicks"]
    assert [snmp_fast.value_type_name(bulk, i) for i in range(6)] == [
        "INTEGER", "OCTET STRING", "INTEGER", "Gauge32", "INTEGER", "INTEGER"]
    assert snmp_fast.value_type_name(end, 0) == "endOfMibView"
    assert snmp_fast.value_type_name(missing, 0) in ("noSuchObject", "noSuchInstance")
    assert snmp_fast.value_type_name(system, 9) == "an unknown type"
    with pytest.raises(snmp_fast.BerError, match=r"version 1, expected 0 \(SNMPv1\)"):
        snmp_fast.decode_response(system, version=snmp_fast.SNMP_V1)
    assert snmp_fast.decode_response(system, version=None).request_id == 7
    with pytest.raises(ValueError, match="GETBULK is SNMPv2c only"):
        snmp_fast.encode_request(b"c", 1, [(1, 3)], max_repetitions=5,
                                 version=snmp_fast.SNMP_V1)
    get_next = snmp_fast.encode_request(b"c", 1, [(1, 3)], get_next=True,
                                        version=snmp_fast.SNMP_V1)
    assert snmp_fast.decode_message(get_next, version=snmp_fast.SNMP_V1)[0] == (
        snmp_fast.PDU_GETNEXT)


def test_codec_oid_encoding_round_trip() -> None:
    for oid in [(1, 3, 6, 1, 2, 1, 2, 2, 1, 10, 70000), (2, 999, 3), (0, 39),
                (1, 3, 6, 1, 4, 1, 2**32 - 1, 128, 127, 16384)]:
        encoded = snmp_fast.encode_oid(oid)
        assert snmp_fast._oid(encoded, 2, len(encoded)) == oid


def test_codec_fuzz_mutations_and_truncations_raise_only_ber_error(
        agents: SnmpsimAgents) -> None:
    """Seeded: 3,000 mutated, truncated or spliced real answers. Each decodes or raises
    BerError (never IndexError, never hangs), within a few milliseconds."""
    answers = _real_answers(agents)
    rng = random.Random(20261123)
    outcomes = {"decoded": 0, "rejected": 0}
    started = time.monotonic()
    for case in range(3000):
        data = bytearray(rng.choice(answers))
        kind = case % 4
        if kind == 0:  # truncate
            data = data[: rng.randrange(len(data))]
        elif kind == 1:  # flip random bytes
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 2:  # damage a length byte near a tag
            at = rng.randrange(len(data) - 1)
            data[at + 1] = rng.choice((0x00, 0x7F, 0x80, 0x81, 0x84, 0x85, 0xFF))
        else:  # insert or delete a run of bytes
            at = rng.randrange(len(data))
            if rng.random() < 0.5:
                del data[at: at + rng.randint(1, 8)]
            else:
                data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        try:
            snmp_fast.decode_response(bytes(data))
            outcomes["decoded"] += 1
        except snmp_fast.BerError as error:
            assert str(error)
            outcomes["rejected"] += 1
    assert outcomes["rejected"] > 1500
    assert time.monotonic() - started < 5.0
    for answer in answers:  # every strict prefix of a real answer is rejected
        for cut in range(len(answer)):
            with pytest.raises(snmp_fast.BerError):
                snmp_fast.decode_response(answer[:cut])
