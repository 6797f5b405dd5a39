"""SNMPv1 against real agents: polls and walks by GETNEXT through both engines, the end of a
column as error-status noSuchName, and a v1-only agent told apart from a dead device.

Agents: snmpsim serving the generated device of tests/snmp_agents.py (it answers v1 and v2c on
the same port, so a v1 poll can be checked against a v2c one), and Debian's snmpd whose access
rules admit the community under the v1 security model only (`NetSnmpV1OnlyAgent`): silent to
v2c, like an old CPE that speaks nothing else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import fields

import pytest
from pydantic import SecretStr

from collectors import snmp_fast
from collectors.model import PollResult, PollStatus, PollTarget, SnmpCredential
from collectors.snmp import IF_TABLE_COLUMNS, IF_X_TABLE_COLUMNS, SnmpPoller, WalkResult
from tests.snmp_agents import (
    COMMUNITY,
    SYS_DESCR,
    SYS_NAME,
    SYS_UPTIME_CS,
    NetSnmpV1OnlyAgent,
    Relay,
    SnmpsimAgents,
    expected_row,
    if_indexes,
    snmpsim_installed,
)

INTERFACES = 12
V1 = SnmpCredential(version="v1", community=SecretStr(COMMUNITY))
V2C = SnmpCredential(version="v2c", community=SecretStr(COMMUNITY))
V1_HINT = "the agent answers SNMPv1 only: set the credential's kind to snmp_v1"
IF_DESCR = (1, 3, 6, 1, 2, 1, 2, 2, 1, 2)
IF_COUNTER_DISCONTINUITY_TIME = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 19)  # ifXTable's last column
SYS_NAME_COLUMN = (1, 3, 6, 1, 2, 1, 1, 5)


@pytest.fixture(scope="module")
def snmpsim() -> Iterator[SnmpsimAgents]:
    if not snmpsim_installed():
        pytest.skip("snmpsim is not installed (pip install snmpsim pysmi)")
    with SnmpsimAgents(interfaces=INTERFACES, v2c_count=1) as running:
        yield running


@pytest.fixture(scope="module")
def v1_only() -> Iterator[NetSnmpV1OnlyAgent]:
    if NetSnmpV1OnlyAgent.binary() is None:
        pytest.skip("Net-SNMP snmpd is not installed (apt-get install snmpd)")
    with NetSnmpV1OnlyAgent() as agent:
        yield agent


def target(port: int, credential: SnmpCredential, host: str = "127.0.0.1") -> PollTarget:
    return PollTarget(device_id=port, device_key="dev", host=host, port=port,
                      credential=credential, poller_group="test")


def comparable(result: PollResult) -> dict[str, object]:
    values = {f.name: getattr(result, f.name) for f in fields(result)
              if f.name not in ("started_at", "duration_s", "interfaces", "target")}
    values["interfaces"] = {index: {f.name: getattr(reading, f.name) for f in fields(reading)
                                    if f.name != "read_at_s"}
                            for index, reading in result.interfaces.items()}
    return values


# --- snmpsim: v1 reads what v2c reads, but the 64-bit counters --------------------------------


def test_v1_poll_reads_what_v2c_reads_without_counter64(snmpsim: SnmpsimAgents) -> None:
    port = snmpsim.v2c_ports[0]

    async def run() -> list[PollResult]:
        results = []
        for engine in ("fast", "pysnmp"):
            poller = SnmpPoller(timeout_s=2.0, retries=1, v2c_engine=engine)
            try:
                results.append(await poller.poll(target(port, V1)))
            finally:
                poller.close()
        poller = SnmpPoller(timeout_s=2.0, retries=1)
        try:
            results.append(await poller.poll(target(port, V2C)))
        finally:
            poller.close()
        return results

    fast, pysnmp, v2c = asyncio.run(run())
    for result in (fast, pysnmp, v2c):
        assert result.status is PollStatus.REACHABLE, result.reason
        assert result.problems == ()
    assert comparable(fast) == comparable(pysnmp)
    assert (fast.sys_name, fast.sys_descr, fast.sys_uptime_cs) == (
        SYS_NAME, SYS_DESCR, SYS_UPTIME_CS)
    assert sorted(fast.interfaces) == if_indexes(INTERFACES)
    assert fast.interface_labels == v2c.interface_labels
    for index, reading in fast.interfaces.items():
        wanted = expected_row(index)
        for name in ("if_name", "if_descr", "if_type"):
            wanted.pop(name)
        # no Counter64 in SNMPv1 (RFC 2576): traffic comes from the 32-bit counters
        assert (reading.if_hc_in_octets, reading.if_hc_out_octets) == (None, None)
        for name, value in wanted.items():
            if not name.startswith("if_hc_"):
                assert getattr(reading, name) == value, (index, name)
    hc_cells = 2 * INTERFACES
    assert fast.varbind_count == v2c.varbind_count - hc_cells


def test_v1_walk_matches_the_v2c_walk(snmpsim: SnmpsimAgents) -> None:
    port = snmpsim.v2c_ports[0]
    columns = [IF_DESCR, SYS_NAME_COLUMN, IF_COUNTER_DISCONTINUITY_TIME]

    async def run() -> list[WalkResult]:
        poller = SnmpPoller(timeout_s=2.0, retries=1)
        try:
            return [await poller.walk(target(port, credential), columns)
                    for credential in (V1, V2C)]
        finally:
            poller.close()

    v1, v2c = asyncio.run(run())
    assert v1.status is v2c.status is PollStatus.REACHABLE, (v1.reason, v2c.reason)
    assert v1.rows == v2c.rows
    assert v1.rows[SYS_NAME_COLUMN] == {(0,): SYS_NAME.encode()}
    assert sorted(v1.rows[IF_DESCR]) == [(i,) for i in if_indexes(INTERFACES)]


# --- Net-SNMP answering v1 only --------------------------------------------------------------


class AnswerSpy:
    """Relay `mangle` that notes each answer's error-status and passes it on unchanged."""

    def __init__(self) -> None:
        self.error_statuses: list[int] = []

    def __call__(self, answer: bytes) -> bytes:
        _, response = snmp_fast.decode_message(answer, version=None)
        self.error_statuses.append(response.error_status)
        return answer


def test_v1_only_agent_polled_as_v2c_is_silent_and_diagnosed(v1_only: NetSnmpV1OnlyAgent) -> None:
    async def run() -> tuple[PollResult, str | None]:
        poller = SnmpPoller(timeout_s=0.5, retries=1)
        try:
            silent = target(v1_only.port, V2C)
            return await poller.poll(silent), await poller.diagnose_silence(silent)
        finally:
            poller.close()

    result, hint = asyncio.run(run())
    assert result.status is PollStatus.UNREACHABLE
    assert result.reason == f"no answer from 127.0.0.1:{v1_only.port} after 2 tries (0.5 s each)"
    assert hint == V1_HINT


def test_v1_only_agent_polled_as_v1(v1_only: NetSnmpV1OnlyAgent) -> None:
    spy = AnswerSpy()

    async def run() -> tuple[PollResult, PollResult, WalkResult, str | None]:
        relay = await Relay(("127.0.0.1", v1_only.port), mangle=spy).start()
        poller = SnmpPoller(timeout_s=1.0, retries=1)
        try:
            direct = await poller.poll(target(v1_only.port, V1))
            relayed = await poller.poll(target(relay.address[1], V1))
            walked = await poller.walk(target(v1_only.port, V1),
                                       [SYS_NAME_COLUMN, IF_COUNTER_DISCONTINUITY_TIME])
            # the v1 credential works: nothing to diagnose
            return direct, relayed, walked, await poller.diagnose_silence(
                target(v1_only.port, V1))
        finally:
            poller.close()
            relay.close()

    direct, relayed, walked, hint = asyncio.run(run())
    for result in (direct, relayed):
        assert result.status is PollStatus.REACHABLE, result.reason
        assert result.problems == ()
        assert result.sys_name == SYS_NAME and result.sys_uptime_cs is not None
        assert result.engine_id is None
        labels = {label.if_name for label in result.interface_labels.values()}
        assert "lo" in labels
        assert set(result.interfaces) == set(result.interface_labels)
        for reading in result.interfaces.values():
            assert reading.if_oper_status in (1, 2, 7)
            assert reading.if_hc_in_octets is None and reading.if_in_octets is not None
    assert sorted(relayed.interfaces) == sorted(direct.interfaces)
    # ifXTable is the end of the agent's view: its last column ended in noSuchName
    assert 2 in spy.error_statuses
    assert walked.status is PollStatus.REACHABLE, walked.reason
    assert walked.rows[SYS_NAME_COLUMN] == {(0,): SYS_NAME.encode()}
    assert set(walked.rows[IF_COUNTER_DISCONTINUITY_TIME]) == {
        (index,) for index in direct.interfaces}
    assert hint is None


def test_wrong_community_is_not_diagnosed_as_a_version(v1_only: NetSnmpV1OnlyAgent) -> None:
    """A wrong community stays silent in every version: nothing to tell (the collector pairs
    this with an ICMP check)."""
    wrong = SnmpCredential(version="v2c", community=SecretStr("wrong-community-xyz"))

    async def run() -> str | None:
        poller = SnmpPoller(timeout_s=0.5, retries=0)
        try:
            return await poller.diagnose_silence(target(v1_only.port, wrong))
        finally:
            poller.close()

    assert asyncio.run(run()) is None


def test_if_mib_columns_have_a_syntax() -> None:
    """Every IF-MIB column the poller reads says what it should be, for the bad-cell text."""
    for column in IF_TABLE_COLUMNS + IF_X_TABLE_COLUMNS:
        assert column.syntax and column.kind in (int, bytes), column.name
