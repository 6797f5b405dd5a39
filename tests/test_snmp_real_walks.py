"""The poller against walks of real devices (the shared folder's snmp-recordings, served by
snmpsim through lab.recordings): every recording polls reachable with every ifTable row it
carries, what the walk leaves out or gets wrong is named in the result's problems, and a
device without sysUpTime (two IOS-XE walks) still gives rates.

The recordings live outside the repository (`../shared/snmp-recordings`, or
$KEYLINE_SHARED_DIR): without them these tests are skipped, saying so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from collectors.counters import compute_rates
from collectors.model import PollResult, PollStatus, PollTarget, SnmpCredential
from collectors.snmp import IF_TABLE_COLUMNS, SnmpPoller
from lab.recordings import (
    IF_ENTRY,
    IF_X_ENTRY,
    SYS_UPTIME,
    RecordingAgents,
    SnmprecRecord,
    decoded,
    parse_snmprec,
    recording_names,
    recordings_dir,
    table,
)
from tests.snmp_agents import snmpsim_installed

NAMES = recording_names()
pytestmark = [
    pytest.mark.skipif(not snmpsim_installed(),
                       reason="snmpsim is not installed (pip install snmpsim pysmi)"),
    pytest.mark.skipif(not NAMES, reason=f"no SNMP recordings in {recordings_dir()} (the "
                                         f"shared folder's snmp-recordings; set "
                                         f"KEYLINE_SHARED_DIR to find them elsewhere)"),
]

SYS_DESCR = (1, 3, 6, 1, 2, 1, 1, 1, 0)
SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)
NO_UPTIME = ("sysUpTime.0: noSuchInstance; skipped: agent restarts go unseen and rates are "
             "judged by the wall clock alone")
# columns whose recorded values the moving copy serves unchanged (counters grow; these don't)
STEADY = {(*IF_ENTRY, 7): "if_admin_status", (*IF_ENTRY, 8): "if_oper_status",
          (*IF_ENTRY, 14): "if_in_errors", (*IF_ENTRY, 20): "if_out_errors",
          (*IF_X_ENTRY, 15): "if_high_speed_mbps"}


def target(agents: RecordingAgents, name: str, number: int = 1) -> PollTarget:
    host, port = agents.endpoint(name)
    return PollTarget(device_id=number, device_key=name, host=host, port=port,
                      credential=SnmpCredential(version="v2c", community=SecretStr(name)),
                      poller_group="recordings")


def if_table_rows(records: list[SnmprecRecord]) -> set[int]:
    """Every ifIndex the walk has an ifTable cell for."""
    rows: set[int] = set()
    for column in IF_TABLE_COLUMNS:
        rows.update(index[0] for index in table(records, column.oid) if len(index) == 1)
    return rows


@pytest.fixture(scope="module")
def agents() -> Iterator[RecordingAgents]:
    with RecordingAgents(NAMES) as running:
        yield running


@pytest.fixture(scope="module")
def polled(agents: RecordingAgents) -> dict[str, PollResult]:
    """One poll of every recording, all at once, as a collector cycle does."""
    async def run() -> list[PollResult]:
        poller = SnmpPoller(timeout_s=3.0, retries=2)
        try:
            return await poller.poll_many([target(agents, name, number)
                                           for number, name in enumerate(agents, start=1)])
        finally:
            poller.close()

    return {result.target.device_key: result for result in asyncio.run(run())}


def test_the_two_ios_xe_walks_without_sys_uptime_are_among_them() -> None:
    for name in ("iosxe_asr920", "iosxe_c3850"):
        if name in NAMES:
            records = parse_snmprec(recordings_dir() / f"{name}.snmprec")
            assert SYS_UPTIME not in {record.oid for record in records}, name


@pytest.mark.parametrize("name", NAMES)
def test_recording_polls_reachable_with_every_if_table_row(
        agents: RecordingAgents, polled: dict[str, PollResult], name: str) -> None:
    result = polled[name]
    records = agents.records(name)
    assert result.status is PollStatus.REACHABLE, result.reason
    assert result.reason is None
    rows = if_table_rows(records)
    assert rows and set(result.interfaces) == rows == set(result.interface_labels)

    # what the walk serves, the result holds
    by_oid = {record.oid: record for record in records}
    assert result.sys_descr == decoded(by_oid[SYS_DESCR]).decode("utf-8", errors="replace")
    assert result.sys_name == decoded(by_oid[SYS_NAME]).decode("utf-8", errors="replace")
    for column, field in STEADY.items():
        for index, record in table(records, column).items():
            assert getattr(result.interfaces[index[0]], field) == decoded(record), (
                name, field, index)
    for column, label in (((*IF_X_ENTRY, 1), "if_name"), ((*IF_ENTRY, 2), "if_descr")):
        for index, record in table(records, column).items():
            assert getattr(result.interface_labels[index[0]], label) == decoded(
                record).decode("utf-8", errors="replace")
    with_hc = {index[0] for index in table(records, (*IF_X_ENTRY, 6))}
    assert {i for i, r in result.interfaces.items() if r.if_hc_in_octets is not None} == with_hc

    # what it leaves out is a problem, and only that
    if SYS_UPTIME in by_oid:
        assert result.problems == ()
        assert result.sys_uptime_cs is not None
        assert all(r.sys_uptime_cs == result.sys_uptime_cs for r in result.interfaces.values())
    else:
        assert result.problems == (NO_UPTIME,)
        assert result.sys_uptime_cs is None
        assert all(r.sys_uptime_cs is None for r in result.interfaces.values())


@pytest.mark.parametrize("name", [n for n in ("iosxe_asr920", "iosxe_c3850") if n in NAMES])
def test_a_device_without_sys_uptime_still_gives_rates(agents: RecordingAgents,
                                                       name: str) -> None:
    """Two polls of a walk without sysUpTime: the wall clock alone judges the interval."""
    async def run() -> tuple[PollResult, PollResult]:
        poller = SnmpPoller(timeout_s=3.0, retries=2)
        try:
            first = await poller.poll(target(agents, name))
            await asyncio.sleep(1.0)  # let the served counters grow
            return first, await poller.poll(target(agents, name))
        finally:
            poller.close()

    first, second = asyncio.run(run())
    assert first.status is second.status is PollStatus.REACHABLE, (first.reason, second.reason)
    moving = [index for index, reading in second.interfaces.items()
              if reading.if_oper_status == 1 and (reading.if_hc_in_octets is not None
                                                  or reading.if_in_octets is not None)]
    assert moving, "the walk has no up interface with octet counters"
    for index in moving:
        rates = compute_rates(first.interfaces[index], second.interfaces[index])
        assert not rates.withheld, (index, rates.skipped_reason)
        assert rates.in_bps is not None and rates.in_bps > 0, index
