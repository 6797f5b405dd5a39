"""Health profiles against real device walks: every recording of the shared folder served by
snmpsim (lab/recordings.py, one agent per recording on 127.0.5.N, community = its name),
its sysObjectID read and its profile chosen as the collector does, its health polled with
`poll_health`. The expected figures are computed here from the walk file itself, each with
the rule its profile documents (which rows count, the unit, the sentinels), not typed in from
reading it: the walk is the truth, and a profile that reads it wrongly fails.

Skipped, with the reason, where the recordings folder or snmpsim is missing.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from statistics import mean
from typing import Any

import pytest
from pydantic import SecretStr

from collectors.health import (
    HealthProfile,
    HealthReading,
    choose_profile,
    health_samples,
    interface_names_from_rows,
    load_profiles,
    parse_health,
    poll_health,
    read_sys_object_id,
)
from collectors.model import PollStatus, PollTarget, SnmpCredential
from collectors.snmp import SnmpPoller
from lab.recordings import (
    RecordingAgents,
    SnmprecRecord,
    decoded,
    recording_names,
    recordings_dir,
    table,
)
from tests.snmp_agents import snmpsim_installed

pytestmark = [
    pytest.mark.skipif(not snmpsim_installed(),
                       reason="snmpsim is not installed (pip install snmpsim pysmi)"),
    pytest.mark.skipif(not recording_names(),
                       reason=f"no SNMP recordings in {recordings_dir()} (the team's shared "
                              "folder; set KEYLINE_SHARED_DIR to where it is)"),
]

EXPECTED_PROFILE = {
    "comware_a5500": "hp_comware",
    "ios_2960x": "cisco_ios",
    "iosxe_asr920": "cisco_ios",
    "iosxe_c3850": "cisco_ios",
    "iosxr_asr9001": "cisco_ios",
    "junos_qfx5130-32cd-evo": "juniper_junos",
    "routeros_crs317": "mikrotik_routeros",
    "timos_ixr": "nokia_sros",
    "vrp_5720": "huawei_vrp",
    "vrp_ne8000-m8": "huawei_vrp",
}
SYS_OBJECT_ID_0 = (1, 3, 6, 1, 2, 1, 1, 2, 0)
IF_INDEX_COLUMN = (1, 3, 6, 1, 2, 1, 2, 2, 1, 1)
ENT = "1.3.6.1.2.1.47.1.1.1.1"  # entPhysicalEntry
ENT_ALIAS = "1.3.6.1.2.1.47.1.3.2.1.2"  # entAliasMappingIdentifier


@dataclass(frozen=True)
class Polled:
    name: str
    records: list[SnmprecRecord]
    sys_object_id: tuple[int, ...] | None
    profile: HealthProfile
    reading: HealthReading


def target_for(agents: RecordingAgents, name: str, device_id: int,
               community: str | None = None) -> PollTarget:
    host, port = agents.endpoint(name)
    return PollTarget(device_id, name, host, port,
                      SnmpCredential("v2c", community=SecretStr(community or name)), "default")


@pytest.fixture(scope="module")
def agents() -> Iterator[RecordingAgents]:
    with RecordingAgents(recording_names(), moving=False) as served:
        yield served


@pytest.fixture(scope="module")
def polled(agents: RecordingAgents) -> dict[str, Polled]:
    """Every recording read as the collector reads a device: sysObjectID, profile, health."""
    profiles = load_profiles()

    async def one(poller: SnmpPoller, number: int, name: str) -> Polled:
        target = target_for(agents, name, number)
        sys_object_id = await read_sys_object_id(poller, target)
        profile = choose_profile(profiles, sys_object_id, None)
        reading = await poll_health(poller, target, profile)
        return Polled(name, agents.records(name), sys_object_id, profile, reading)

    async def every() -> list[Polled]:
        poller = SnmpPoller(timeout_s=2.0, retries=1)
        try:
            return list(await asyncio.gather(*(one(poller, number, name) for number, name
                                               in enumerate(agents.names, start=1))))
        finally:
            poller.close()

    return {result.name: result for result in asyncio.run(every())}


# --- reading the walk files ----------------------------------------------------------------


def oid(dotted: str) -> tuple[int, ...]:
    return tuple(int(part) for part in dotted.split("."))


def column(records: list[SnmprecRecord], dotted: str) -> dict[tuple[int, ...], Any]:
    return {index: decoded(record) for index, record in table(records, oid(dotted)).items()}


def scalar(records: list[SnmprecRecord], dotted: str) -> Any:
    return next((decoded(r) for r in records if r.oid == oid(dotted)), None)


def text(value: Any) -> str:
    return value.decode("utf-8", "replace").strip() if isinstance(value, bytes) else ""


def interface_names(records: list[SnmprecRecord]) -> dict[int, tuple[str | None, str | None]]:
    rows = {oid(c): column(records, c) for c in ("1.3.6.1.2.1.31.1.1.1.1", "1.3.6.1.2.1.2.2.1.2")}
    return interface_names_from_rows(rows)


def aliases(records: list[SnmprecRecord]) -> dict[int, int]:
    """entPhysicalIndex -> ifIndex, as entAliasMappingIdentifier says."""
    return {index[0]: value[-1] for index, value in column(records, ENT_ALIAS).items()
            if isinstance(value, tuple) and value[:-1] == IF_INDEX_COLUMN}


def by_if_name(records: list[SnmprecRecord]) -> dict[str, int]:
    found: dict[str, int] = {}
    for if_index, names in interface_names(records).items():
        for name in names:
            if name:
                found[name.lower()] = if_index
    return found


def dbm_of_milliwatts(milliwatts: float) -> float:
    return 10 * math.log10(milliwatts)


def optics_of(reading: HealthReading) -> dict[int | None, tuple[float | None, float | None]]:
    return {o.if_index: (o.rx_dbm, o.tx_dbm) for o in reading.optics}


def approx(values: dict[Any, Any]) -> dict[Any, Any]:
    return {key: tuple(pytest.approx(v, abs=1e-4) if v is not None else None for v in value)
            if isinstance(value, tuple) else pytest.approx(value, abs=1e-4)
            for key, value in values.items()}


# --- every recording -----------------------------------------------------------------------


def test_every_recording_gets_its_profile_by_sys_object_id(polled: dict[str, Polled]) -> None:
    unknown = set(polled) - set(EXPECTED_PROFILE)
    assert not unknown, f"new recordings {unknown}: add their profile to EXPECTED_PROFILE"
    for name, result in polled.items():
        assert result.sys_object_id == scalar(result.records, "1.3.6.1.2.1.1.2.0"), name
        assert result.profile.name == EXPECTED_PROFILE[name], name
        assert result.reading.status is PollStatus.REACHABLE, (name, result.reading.reason)
        assert result.reading.reason is None and result.reading.profile == result.profile.name
        assert result.reading.varbind_count > 0 and result.reading.duration_s > 0


def test_the_polled_reading_is_what_the_walk_file_gives(polled: dict[str, Polled]) -> None:
    """What came over SNMP equals the same mapping on the file's own rows: nothing lost or
    changed on the way (types, multi-part indexes, text, negative numbers)."""
    for name, result in polled.items():
        columns = result.profile.columns(interface_names=True)
        rows = {c: {i: decoded(r) for i, r in table(result.records, c).items()} for c in columns}
        expected = parse_health(result.profile, rows)
        got = result.reading
        assert (got.cpu_pct, got.mem_pct, got.temperature_c) == (
            expected.cpu_pct, expected.mem_pct, expected.temperature_c), name
        assert (got.cpus, got.memory_pools, got.temperatures, got.fans, got.psus, got.optics,
                got.problems) == (expected.cpus, expected.memory_pools, expected.temperatures,
                                  expected.fans, expected.psus, expected.optics,
                                  expected.problems), name


def test_a_device_without_health_tables_gives_an_empty_reading(
        polled: dict[str, Polled]) -> None:
    reading = polled["iosxe_asr920"].reading  # the ASR-920 capture has no health data
    assert reading.status is PollStatus.REACHABLE and reading.is_empty
    assert (reading.cpu_pct, reading.mem_pct, reading.temperature_c) == (None, None, None)
    assert reading.problems == ()
    assert health_samples(reading, 1, {}, datetime.now(UTC)) == []


# --- per vendor, from the walk file --------------------------------------------------------

HW_STATE = "1.3.6.1.4.1.2011.5.25.31.1.1.1.1"  # hwEntityStateEntry
HW_OPTICAL = "1.3.6.1.4.1.2011.5.25.31.1.1.3.1"  # hwOpticalModuleInfoEntry


@pytest.mark.parametrize("name", ["vrp_5720", "vrp_ne8000-m8"])
def test_huawei(polled: dict[str, Polled], name: str) -> None:
    if name not in polled:
        pytest.skip(f"no recording {name}")
    records, reading = polled[name].records, polled[name].reading

    def where_set(value_column: int, threshold_column: int) -> list[int]:
        """hwEntityStateTable values of the entities whose threshold column is set."""
        thresholds = column(records, f"{HW_STATE}.{threshold_column}")
        return [v for i, v in column(records, f"{HW_STATE}.{value_column}").items()
                if thresholds.get(i, 0) != 0]

    assert reading.cpu_pct == pytest.approx(mean(where_set(5, 6)))
    assert reading.mem_pct == pytest.approx(mean(where_set(7, 8)))
    temperatures = {i[0]: v for i, v in column(records, f"{HW_STATE}.11").items()
                    if v not in (0, 2147483647)}
    assert reading.temperature_c == max(temperatures.values())
    assert {t.entity_index: t.value for t in reading.temperatures} == temperatures

    # optics: the lane columns, 0.01 dBm as text; empty without a module, -40 dBm: no light
    alias, names = aliases(records), by_if_name(records)
    entity_names = {i[0]: text(v) for i, v in column(records, f"{ENT}.7").items()}

    def dbm(value: Any) -> float | None:
        number = float(text(value)) / 100 if text(value) else None
        return number if number is not None and number > -40 else None

    rx, tx = column(records, f"{HW_OPTICAL}.32"), column(records, f"{HW_OPTICAL}.33")
    expected = {}
    for (entity,), value in rx.items():
        pair = (dbm(value), dbm(tx.get((entity,))))
        if pair != (None, None):
            port = alias.get(entity, names.get(entity_names[entity].lower()))
            expected[entity] = (port, *pair)
    assert expected, "the walk has optical modules"
    assert {o.entity_index: (o.if_index, o.rx_dbm, o.tx_dbm) for o in reading.optics} == {
        entity: (port, pytest.approx(r) if r is not None else None,
                 pytest.approx(t) if t is not None else None)
        for entity, (port, r, t) in expected.items()}
    for optics in reading.optics:
        if optics.if_index is not None:
            if_name, if_descr = interface_names(records)[optics.if_index]
            assert optics.name == (if_name or if_descr)
    if name == "vrp_ne8000-m8":
        # modules in GigabitEthernet0/7/x, a card the ifTable does not list: kept, no port
        unmapped = [o.name for o in reading.optics if o.if_index is None]
        assert unmapped and all(n.startswith("GigabitEthernet0/7/") for n in unmapped)
        fans = column(records, "1.3.6.1.4.1.2011.5.25.31.1.1.10.1.7")
        supplies = column(records, "1.3.6.1.4.1.2011.5.25.31.1.1.18.1.6")
        assert [(f.raw, f.state) for f in reading.fans] == [(v, {1: "ok", 2: "failed"}[v])
                                                            for v in fans.values()]
        assert [p.raw for p in reading.psus] == list(supplies.values())
        assert reading.psu_failed_count == sum(v == 2 for v in supplies.values())


CPM = "1.3.6.1.4.1.9.9.109.1.1.1.1"  # cpmCPUTotalEntry
ENVMON = "1.3.6.1.4.1.9.9.13.1"
CES = "1.3.6.1.4.1.9.9.91.1.1.1.1"  # entSensorValueEntry
ENVMON_STATES = {1: "ok", 2: "failed", 3: "failed", 4: "failed", 5: "absent", 6: "failed"}


def envmon_temperatures(records: list[SnmprecRecord]) -> dict[int, int]:
    states = column(records, f"{ENVMON}.3.1.6")
    return {i[0]: v for i, v in column(records, f"{ENVMON}.3.1.3").items()
            if states.get(i) not in (5, 6)}


def processor_pool_pct(records: list[SnmprecRecord]) -> float:
    names = column(records, "1.3.6.1.4.1.9.9.48.1.1.1.2")
    (processor,) = [i for i, v in names.items() if text(v) == "Processor"]
    used = column(records, "1.3.6.1.4.1.9.9.48.1.1.1.5")[processor]
    free = column(records, "1.3.6.1.4.1.9.9.48.1.1.1.6")[processor]
    return 100 * used / (used + free)


def test_cisco_catalyst_2960x(polled: dict[str, Polled]) -> None:
    if "ios_2960x" not in polled:
        pytest.skip("no recording ios_2960x")
    records, reading = polled["ios_2960x"].records, polled["ios_2960x"].reading
    five_s, one_min, five_min = (column(records, f"{CPM}.{c}") for c in (6, 7, 8))
    assert len(five_min) == 1  # one CPU for the stack
    (cpu,) = reading.cpus
    assert cpu.value == five_min[(1,)] and reading.cpu_pct == five_min[(1,)]
    assert cpu.extra == {"pct_5s": five_s[(1,)], "pct_1min": one_min[(1,)]}
    assert reading.mem_pct == pytest.approx(processor_pool_pct(records))
    temperatures = envmon_temperatures(records)
    assert reading.temperature_c == max(temperatures.values())
    fans, supplies = column(records, f"{ENVMON}.4.1.3"), column(records, f"{ENVMON}.5.1.3")
    assert len(fans) == len(supplies) == 3  # a stack of three
    assert [(f.entity_index, f.state) for f in reading.fans] == [
        (i[0], ENVMON_STATES[v]) for i, v in fans.items()]
    assert [(p.entity_index, p.state) for p in reading.psus] == [
        (i[0], ENVMON_STATES[v]) for i, v in supplies.items()]
    assert reading.fan_failed_count == 0 and reading.psu_failed_count == 0

    # transceiver sensors: dBm(14), value / 10^precision, under the port entity
    types, precisions, values = (column(records, f"{CES}.{c}") for c in (1, 3, 4))
    parents = column(records, f"{ENT}.4")
    entity_names = column(records, f"{ENT}.7")
    alias = aliases(records)
    expected: dict[int, list[float | None]] = {}
    for index, kind in types.items():
        if kind == 14:
            port = alias[parents[index]]
            slot = 0 if b"Receive" in entity_names[index] else 1
            expected.setdefault(port, [None, None])[slot] = values[index] / 10 ** precisions[index]
    assert len(expected) == 2
    assert optics_of(reading) == approx({port: tuple(pair) for port, pair in expected.items()})
    # the transceivers' own temperatures belong to their ports, not to the device figure
    on_ports = {t.if_index for t in reading.temperatures if t.if_index is not None}
    assert on_ports == set(expected)


def test_cisco_catalyst_3850(polled: dict[str, Polled]) -> None:
    if "iosxe_c3850" not in polled:
        pytest.skip("no recording iosxe_c3850")
    records, reading = polled["iosxe_c3850"].records, polled["iosxe_c3850"].reading
    assert reading.cpu_pct == pytest.approx(mean(column(records, f"{CPM}.8").values()))
    assert reading.mem_pct == pytest.approx(processor_pool_pct(records))
    assert reading.temperature_c == max(envmon_temperatures(records).values())
    supplies = column(records, f"{ENVMON}.5.1.3")
    assert sorted(p.state for p in reading.psus) == sorted(ENVMON_STATES[v]
                                                          for v in supplies.values())
    assert [p.state for p in reading.psus].count("absent") == 2  # "Power Supply B, NotExist"
    assert reading.psu_failed_count == 0
    # this capture has entSensorValue without entSensorType / Scale / Precision: no unit, so
    # no optical value (never a guess), and a problem says why
    assert column(records, f"{CES}.4") and not column(records, f"{CES}.1")
    assert reading.optics == ()
    assert any("no sensor type" in problem for problem in reading.problems)


def test_cisco_asr9001_ios_xr(polled: dict[str, Polled]) -> None:
    if "iosxr_asr9001" not in polled:
        pytest.skip("no recording iosxr_asr9001")
    records, reading = polled["iosxr_asr9001"].records, polled["iosxr_asr9001"].reading
    assert reading.cpu_pct == pytest.approx(mean(column(records, f"{CPM}.8").values()))
    cemp = "1.3.6.1.4.1.9.9.221.1.1.1.1"
    kinds, used, free = (column(records, f"{cemp}.{c}") for c in (2, 18, 20))
    processor = [i for i, kind in kinds.items() if kind == 2]
    assert len(processor) == 2  # the RSP's and the line card's
    assert reading.mem_pct == pytest.approx(
        100 * sum(used[i] for i in processor) / sum(used[i] + free[i] for i in processor))

    types, scales, precisions, values = (column(records, f"{CES}.{c}") for c in (1, 2, 3, 4))
    descrs, names = column(records, f"{ENT}.2"), column(records, f"{ENT}.7")

    def reading_of(index: tuple[int, ...]) -> float | None:
        if values[index] == -32768:
            return None
        return values[index] * 10.0 ** (3 * (scales[index] - 9)) / 10 ** precisions[index]

    def port_of(index: tuple[int, ...]) -> int:
        """The Ethernet interface named like the sensor's location: "power Rx 0/0/2/0" is on
        TenGigE0/0/2/0, not on the controller dwdm0/0/2/0 (a rule independent of ENTITY-MIB
        containment)."""
        location = text(names[index]).split()[-1]
        (port,) = [if_index for if_index, (if_name, _) in interface_names(records).items()
                   if re.fullmatch(rf"[A-Za-z]*(GigE|Ethernet){re.escape(location)}",
                                   if_name or "")]
        return port

    transceiver = {i for i in types if text(descrs.get(i)).startswith("Transceiver")}
    chassis = [reading_of(i) for i, kind in types.items() if kind == 8 and i not in transceiver]
    assert reading.temperature_c == pytest.approx(max(v for v in chassis if v is not None))
    assert {t.if_index for t in reading.temperatures if t.if_index} == {
        port_of(i) for i in transceiver if types[i] == 8 and reading_of(i) is not None}
    # optical power in watts (milli scale, precision 4), converted to dBm
    expected: dict[int, list[float | None]] = {}
    for index, kind in types.items():
        label = text(descrs.get(index))
        if kind == 6 and label in ("Transceiver Rx Power Sensor", "Transceiver Tx Power Sensor"):
            watts = reading_of(index)
            slot = 0 if "Rx" in label else 1
            expected.setdefault(port_of(index), [None, None])[slot] = (
                dbm_of_milliwatts(watts * 1000) if watts else None)
    expected = {port: pair for port, pair in expected.items() if pair != [None, None]}
    assert len(expected) == 4
    assert optics_of(reading) == approx({port: tuple(pair) for port, pair in expected.items()})
    assert [p.state for p in reading.psus] == ["ok", "ok"]  # FRU power status on(2)
    assert reading.fans == ()  # fan speeds only, no fan state in this capture


JNX = "1.3.6.1.4.1.2636.3.1.13.1"  # jnxOperatingEntry


def test_juniper_qfx5130(polled: dict[str, Polled]) -> None:
    name = "junos_qfx5130-32cd-evo"
    if name not in polled:
        pytest.skip(f"no recording {name}")
    records, reading = polled[name].records, polled[name].reading
    descr = {i: text(v) for i, v in column(records, f"{JNX}.5").items()}
    engines = [i for i, d in descr.items() if d.startswith("Routing Engine")]
    assert engines
    assert reading.cpu_pct == mean(column(records, f"{JNX}.8")[i] for i in engines)
    assert reading.mem_pct == mean(column(records, f"{JNX}.11")[i] for i in engines)
    temperatures = [v for v in column(records, f"{JNX}.7").values() if v != 0]
    assert reading.temperature_c == max(temperatures)
    states = column(records, f"{JNX}.6")
    fans = [i for i, d in descr.items() if re.search(r"\bFan\b", d)]
    supplies = [i for i, d in descr.items() if d.startswith("PSM")]
    assert len(reading.fans) == len(fans) and len(reading.psus) == len(supplies)
    assert reading.fan_failed_count == sum(states[i] == 6 for i in fans)
    assert reading.psu_failed_count == sum(states[i] == 6 for i in supplies)
    # JUNIPER-DOM is indexed by ifIndex; every power reads 0 in this capture (no DOM data):
    # no optical values, never 0 dBm
    dom = [*column(records, "1.3.6.1.4.1.2636.3.60.1.1.1.1.5").values(),
           *column(records, "1.3.6.1.4.1.2636.3.60.1.1.1.1.7").values()]
    assert dom and set(dom) == {0}
    assert reading.optics == ()


H3C_STATE = "1.3.6.1.4.1.25506.2.6.1.1.1.1"  # hh3cEntityExtStateEntry
H3C_TRANSCEIVER = "1.3.6.1.4.1.25506.2.70.1.1.1"  # hh3cTransceiverInfoEntry


def test_hp_comware_a5500(polled: dict[str, Polled]) -> None:
    if "comware_a5500" not in polled:
        pytest.skip("no recording comware_a5500")
    records, reading = polled["comware_a5500"].records, polled["comware_a5500"].reading
    assert reading.cpu_pct == mean(v for v in column(records, f"{H3C_STATE}.6").values() if v)
    assert reading.mem_pct == mean(v for v in column(records, f"{H3C_STATE}.8").values() if v)
    classes = column(records, f"{ENT}.5")
    temperatures = {i[0]: v for i, v in column(records, f"{H3C_STATE}.12").items()
                    if classes.get(i) in (8, 9) and v not in (0, 65535)}  # sensor, module
    assert {t.entity_index: t.value for t in reading.temperatures} == temperatures
    assert reading.temperature_c == max(temperatures.values())
    rx, tx = column(records, f"{H3C_TRANSCEIVER}.12"), column(records, f"{H3C_TRANSCEIVER}.9")
    expected = {i[0]: (rx[i] / 100, tx[i] / 100) for i in rx if rx[i] != 2147483647}
    assert expected and set(expected) <= set(interface_names(records))
    assert optics_of(reading) == approx(expected)
    fan_states = {1: "ok", 2: "failed", 3: "absent", 4: "unknown"}
    supplies = column(records, "1.3.6.1.4.1.25506.8.35.9.1.2.1.2")
    assert [p.state for p in reading.psus] == [fan_states[v] for v in supplies.values()]
    assert "absent" in [p.state for p in reading.psus]  # PSU 2 not installed


TMNX_HW = "1.3.6.1.4.1.6527.3.1.2.2.1.8.1"  # tmnxHwEntry
TMNX_DDM = "1.3.6.1.4.1.6527.3.1.2.2.4.31.1"  # tmnxDigitalDiagMonitorEntry


def test_nokia_7250_ixr(polled: dict[str, Polled]) -> None:
    if "timos_ixr" not in polled:
        pytest.skip("no recording timos_ixr")
    records, reading = polled["timos_ixr"].records, polled["timos_ixr"].reading
    assert reading.cpu_pct == scalar(records, "1.3.6.1.4.1.6527.3.1.2.1.1.1.0")  # sgiCpuUsage
    # sgiKbMemoryUsed (.9) is not in this capture, only sgiKbMemoryAvailable: no memory figure
    assert scalar(records, "1.3.6.1.4.1.6527.3.1.2.1.1.9.0") is None
    assert scalar(records, "1.3.6.1.4.1.6527.3.1.2.1.1.10.0") is not None
    assert reading.mem_pct is None and reading.memory_pools == ()
    has_sensor = column(records, f"{TMNX_HW}.17")
    temperatures = [v for i, v in column(records, f"{TMNX_HW}.18").items()
                    if has_sensor.get(i) == 1 and v not in (-1, -128)]
    assert reading.temperature_c == max(temperatures)
    classes, states = column(records, f"{TMNX_HW}.7"), column(records, f"{TMNX_HW}.16")
    assert [f.raw for f in reading.fans] == [states[i] for i, c in classes.items() if c == 6]
    assert [p.raw for p in reading.psus] == [states[i] for i, c in classes.items() if c == 5]
    # DDM in 0.1 µW, index (chassis, port ID = ifIndex); 0: no module or no light
    rx, tx = column(records, f"{TMNX_DDM}.21"), column(records, f"{TMNX_DDM}.16")
    expected = {i[1]: (dbm_of_milliwatts(rx[i] / 10000) if rx[i] else None,
                       dbm_of_milliwatts(tx[i] / 10000) if tx.get(i) else None)
                for i in rx if rx[i] or tx.get(i)}
    assert expected and set(expected) <= set(interface_names(records))
    assert optics_of(reading) == approx(expected)


def test_mikrotik_crs317(polled: dict[str, Polled]) -> None:
    if "routeros_crs317" not in polled:
        pytest.skip("no recording routeros_crs317")
    records, reading = polled["routeros_crs317"].records, polled["routeros_crs317"].reading
    assert reading.cpu_pct == mean(column(records, "1.3.6.1.2.1.25.3.3.1.2").values())
    storage = "1.3.6.1.2.1.25.2.3.1"
    kinds, used, size = (column(records, f"{storage}.{c}") for c in (2, 6, 5))
    ram = [i for i, kind in kinds.items() if kind == oid("1.3.6.1.2.1.25.2.1.2")]
    assert reading.mem_pct == pytest.approx(100 * sum(used[i] for i in ram)
                                            / sum(size[i] for i in ram))
    assert reading.temperature_c == scalar(records, "1.3.6.1.4.1.14988.1.1.3.11.0") / 10
    assert [p.state for p in reading.psus] == ["ok", "ok"]
    optical = [*column(records, "1.3.6.1.4.1.14988.1.1.19.1.1.9").values(),
               *column(records, "1.3.6.1.4.1.14988.1.1.19.1.1.10").values()]
    assert optical and set(optical) == {0}  # no module reports: no optical values
    assert reading.optics == ()


# --- samples and failures ------------------------------------------------------------------


def test_samples_of_a_polled_device(polled: dict[str, Polled]) -> None:
    if "ios_2960x" not in polled:
        pytest.skip("no recording ios_2960x")
    reading = polled["ios_2960x"].reading
    ports = {if_index: 100_000 + if_index for if_index in interface_names(
        polled["ios_2960x"].records)}
    at = datetime(2025, 3, 1, 12, tzinfo=UTC)
    samples = health_samples(reading, 42, ports, at)
    device = {s.metric: s.value for s in samples if s.object_id == 42}
    assert device == {"cpu_pct": reading.cpu_pct, "mem_pct": reading.mem_pct,
                      "temperature_c": reading.temperature_c, "fan_failed_count": 0.0,
                      "psu_failed_count": 0.0}
    port_samples = {(s.object_id, s.metric): s.value for s in samples if s.object_id != 42}
    assert port_samples == {
        (ports[o.if_index], metric): value for o in reading.optics if o.if_index
        for metric, value in (("optical_rx_dbm", o.rx_dbm), ("optical_tx_dbm", o.tx_dbm))}
    assert all(s.time == at for s in samples)


def test_interface_names_from_the_poll_spare_the_walk(agents: RecordingAgents,
                                                      polled: dict[str, Polled]) -> None:
    name = "vrp_5720" if "vrp_5720" in polled else next(iter(polled))
    result = polled[name]
    names = interface_names(result.records)

    async def poll() -> HealthReading:
        poller = SnmpPoller(timeout_s=2.0, retries=1)
        try:
            return await poll_health(poller, target_for(agents, name, 1), result.profile, names)
        finally:
            poller.close()

    reading = asyncio.run(poll())
    assert reading.optics == result.reading.optics and reading.cpus == result.reading.cpus
    assert reading.varbind_count < result.reading.varbind_count  # no ifName / ifDescr walk


def test_a_device_that_does_not_answer_is_a_status_not_an_exception(
        agents: RecordingAgents) -> None:
    name = agents.names[0]
    target = target_for(agents, name, 1, community="wrong-community-xyz")  # snmpsim: silence
    profile = choose_profile(load_profiles(), None, None)

    async def poll() -> tuple[tuple[int, ...] | None, HealthReading]:
        poller = SnmpPoller(timeout_s=0.3, retries=0)
        try:
            return (await read_sys_object_id(poller, target),
                    await poll_health(poller, target, profile))
        finally:
            poller.close()

    sys_object_id, reading = asyncio.run(poll())
    assert sys_object_id is None
    assert reading.status is PollStatus.UNREACHABLE and "no answer" in (reading.reason or "")
    assert "wrong-community-xyz" not in (reading.reason or "")
    assert reading.is_empty and health_samples(reading, 1, {}, datetime.now(UTC)) == []
