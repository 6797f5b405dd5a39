"""Health profiles as data, and the mapping from walked rows to a health reading, without
agents: the profile files load and say clearly what is wrong with a bad one, a device gets
the right profile, and rows as `SnmpPoller.walk` returns them become the right figures
(units, sentinels, entity-to-port mapping, memory pools, states, samples). The same mapping
against every real walk, served by snmpsim, is tests/test_health_profiles.py.
"""

from __future__ import annotations

import math
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from collectors.health import (
    ENT_ALIAS_MAPPING_IDENTIFIER,
    ENT_PHYSICAL_CLASS,
    ENT_PHYSICAL_CONTAINED_IN,
    ENT_PHYSICAL_DESCR,
    ENT_PHYSICAL_NAME,
    IF_DESCR,
    IF_INDEX,
    IF_NAME,
    PROFILES_DIR,
    HealthProfile,
    HealthReading,
    ProfileError,
    choose_profile,
    health_samples,
    interface_names_from_labels,
    load_profiles,
    parse_health,
)
from collectors.model import InterfaceLabel, PollStatus

Rows = dict[tuple[int, ...], dict[tuple[int, ...], Any]]


def oid(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


@pytest.fixture(scope="module")
def profiles() -> dict[str, HealthProfile]:
    return {profile.name: profile for profile in load_profiles()}


def profile_of(sources: list[dict[str, Any]], name: str = "test", **match: Any) -> HealthProfile:
    return HealthProfile.model_validate({"name": name, "title": name, "match": match,
                                         "sources": sources})


def entity_rows(entities: dict[int, tuple[str, str, int, int]],
                aliases: dict[int, int] | None = None) -> Rows:
    """ENTITY-MIB rows: entity -> (name, descr, class, contained in); aliases entity ->
    ifIndex."""
    rows: Rows = {ENT_PHYSICAL_NAME: {}, ENT_PHYSICAL_DESCR: {}, ENT_PHYSICAL_CLASS: {},
                  ENT_PHYSICAL_CONTAINED_IN: {}, ENT_ALIAS_MAPPING_IDENTIFIER: {}}
    for entity, (name, descr, klass, parent) in entities.items():
        rows[ENT_PHYSICAL_NAME][(entity,)] = name.encode()
        rows[ENT_PHYSICAL_DESCR][(entity,)] = descr.encode()
        rows[ENT_PHYSICAL_CLASS][(entity,)] = klass
        rows[ENT_PHYSICAL_CONTAINED_IN][(entity,)] = parent
    for entity, if_index in (aliases or {}).items():
        rows[ENT_ALIAS_MAPPING_IDENTIFIER][(entity, 0)] = (*IF_INDEX, if_index)
    return rows


# --- the profile files ---------------------------------------------------------------------


def test_the_shipped_profiles_load(profiles: dict[str, HealthProfile]) -> None:
    assert set(profiles) == {"generic", "huawei_vrp", "cisco_ios", "juniper_junos",
                             "hp_comware", "nokia_sros", "mikrotik_routeros"}
    for profile in profiles.values():
        assert profile.file and Path(profile.file).name == f"{profile.name}.yaml"
        assert all(source.mib for source in profile.sources)
    # every inventory platform has a profile (config/inventory/model.py PLATFORMS)
    from config.inventory.model import PLATFORMS
    claimed = {p for profile in profiles.values() for p in profile.match.platforms}
    assert set(PLATFORMS) <= claimed


def _profile_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    shutil.copy(PROFILES_DIR / "generic.yaml", tmp_path / "generic.yaml")
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


GOOD_SOURCE = """\
name: acme
title: ACME
match: {sys_object_ids: [1.3.6.1.4.1.99999]}
sources:
  - id: cpu
    metric: cpu
    mib: ACME-MIB::cpu
    value: {column: 1.3.6.1.4.1.99999.1.1, unit: percent}
"""


@pytest.mark.parametrize(("text", "expected"), [
    (GOOD_SOURCE.replace("1.3.6.1.4.1.99999.1.1", "1.3.6.x.1"),
     "acme.yaml:8: sources[0].value.column: not a numeric OID: '1.3.6.x.1'"),
    (GOOD_SOURCE.replace("column:", "colum:"), "acme.yaml:8: sources[0].value.colum:"),
    (GOOD_SOURCE.replace("unit: percent", "unit: celsius"),
     "acme.yaml:5: sources[0]: a cpu value must be in percent, not celsius"),
    (GOOD_SOURCE.replace("metric: cpu", "metric: disk"), "acme.yaml:6: sources[0].metric:"),
    (GOOD_SOURCE.replace("    mib: ACME-MIB::cpu\n", ""), "sources[0].mib: Field required"),
    (GOOD_SOURCE.replace("name: acme", "name: other"), "acme.yaml: name: 'other' differs"),
    (GOOD_SOURCE + "    unless: [later]\n", "unless names 'later', which is not an earlier"),
    (GOOD_SOURCE.replace("{column", "{{column"), "acme.yaml:9: YAML syntax error: expected"),
    (GOOD_SOURCE + "    where: [{column: 1.3.6.1.4.1.99999.1.2, matches: '(unclosed'}]\n",
     "sources[0].where[0].matches: not a valid regular expression"),
    (GOOD_SOURCE.replace("1.3.6.1.4.1.99999]", "1.3.6.1.4.1.8072]"),
     "sysObjectID prefix '1.3.6.1.4.1.8072' is claimed by"),
])
def test_a_bad_profile_is_reported_with_file_line_and_field(tmp_path: Path, text: str,
                                                            expected: str) -> None:
    folder = _profile_dir(tmp_path, {"acme.yaml": text})
    with pytest.raises(ProfileError) as caught:
        load_profiles(folder)
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems
    assert all(str(tmp_path) in problem for problem in caught.value.problems)


def test_every_bad_file_is_reported_at_once_and_generic_is_required(tmp_path: Path) -> None:
    folder = _profile_dir(tmp_path, {
        "acme.yaml": GOOD_SOURCE.replace("percent", "kelvin"),
        "zeta.yaml": GOOD_SOURCE.replace("acme", "zeta").replace("metric: cpu", "metric: x")})
    with pytest.raises(ProfileError) as caught:
        load_profiles(folder)
    assert {Path(p.split(":")[0]).name for p in caught.value.problems} == {"acme.yaml",
                                                                          "zeta.yaml"}
    (folder / "generic.yaml").unlink()
    (folder / "zeta.yaml").unlink()
    (folder / "acme.yaml").write_text(GOOD_SOURCE)
    with pytest.raises(ProfileError, match=r"no generic\.yaml"):
        load_profiles(folder)
    assert [p.name for p in load_profiles(_profile_dir(tmp_path, {}))] == ["acme", "generic"]


def test_the_most_specific_sys_object_id_prefix_wins_then_platform_then_generic(
        profiles: dict[str, HealthProfile]) -> None:
    shipped = list(profiles.values())
    h3c_under_huawei = profile_of([{"id": "c", "metric": "cpu", "mib": "x",
                                    "value": {"column": "1.3.6.1.4.1.2011.10.1",
                                              "unit": "percent"}}],
                                  name="h3c_old", sys_object_ids=["1.3.6.1.4.1.2011.10"],
                                  platforms=["h3c"])
    every = [*shipped, h3c_under_huawei]

    def chosen(sys_object_id: str | None, platform: str | None = None) -> str:
        return choose_profile(every, oid(sys_object_id) if sys_object_id else None,
                              platform).name

    assert chosen("1.3.6.1.4.1.2011.2.23.291") == "huawei_vrp"
    assert chosen("1.3.6.1.4.1.2011.10.1.5") == "h3c_old"  # longer prefix wins
    assert chosen("1.3.6.1.4.1.20110.1") == "generic"  # prefixes match whole components
    assert chosen("1.3.6.1.4.1.9.1.1639", "juniper_junos") == "cisco_ios"  # OID before platform
    assert chosen(None, "CISCO_XR") == "cisco_ios"
    assert chosen("1.3.6.1.4.1.99999.1", "hp_comware") == "hp_comware"
    assert chosen("1.3.6.1.4.1.99999.1", "unknown-os") == "generic"
    assert chosen(None) == "generic"
    with pytest.raises(ValueError, match="generic"):
        choose_profile([h3c_under_huawei], None, None)


# --- values, units and sentinels -----------------------------------------------------------

HW_STATE = "1.3.6.1.4.1.2011.5.25.31.1.1.1.1"
HW_OPTICAL = "1.3.6.1.4.1.2011.5.25.31.1.1.3.1"


def test_huawei_rows_boards_without_the_feature_and_optical_sentinels(
        profiles: dict[str, HealthProfile]) -> None:
    rows = entity_rows({
        1: ("chassis", "", 3, 0), 9: ("MPU Board 0", "", 9, 1), 10: ("LPU 1", "", 9, 1),
        101: ("GigabitEthernet0/0/1", "Port", 10, 9), 102: ("GigabitEthernet0/0/2", "Port", 10, 9),
        103: ("GigabitEthernet0/0/3", "Port", 10, 9), 104: ("100GE0/0/4", "Port", 10, 9),
        105: ("GigabitEthernet0/0/5", "Port", 10, 9)}, aliases={101: 11})
    state = {5: {(9,): 30, (10,): 0, (1,): 0}, 6: {(9,): 90, (10,): 0, (1,): 0},
             7: {(9,): 40, (10,): 50}, 8: {(9,): 90, (10,): 90},
             11: {(9,): 45, (10,): 0, (1,): 2147483647}}
    for column, cells in state.items():
        rows[oid(f"{HW_STATE}.{column}")] = cells
    rows[oid(f"{HW_OPTICAL}.32")] = {(101,): b"-270.19", (102,): b"", (103,): b"-4000",
                                     (104,): b"-150.00,-210.50,-99.10,-300.00", (105,): b"n/a"}
    rows[oid(f"{HW_OPTICAL}.33")] = {(101,): b"-227.60", (102,): b"", (103,): b"250",
                                     (104,): b"100,110,120,130"}
    names = {11: ("GigabitEthernet0/0/1", "GigabitEthernet0/0/1"),
             13: ("GE0/0/3", "GigabitEthernet0/0/3"), 14: ("100GE0/0/4", "100GE0/0/4")}
    reading = parse_health(profiles["huawei_vrp"], rows, names)
    assert reading.cpu_pct == 30  # the LPU's 0 has no threshold: no CPU there
    assert reading.mem_pct == 45  # (40 + 50) / 2: both boards have memory
    assert reading.temperature_c == 45
    assert [(t.entity_index, t.name) for t in reading.temperatures] == [(9, "MPU Board 0")]
    optics = {o.entity_index: o for o in reading.optics}
    assert set(optics) == {101, 103, 104}  # 102: no module; 105: unreadable
    assert (optics[101].if_index, optics[101].rx_dbm, optics[101].tx_dbm) == (
        11, pytest.approx(-2.7019), pytest.approx(-2.276))  # by entAliasMapping
    assert (optics[103].if_index, optics[103].rx_dbm, optics[103].tx_dbm) == (13, None, 2.5)
    lanes = optics[104]
    assert lanes.if_index == 14 and lanes.name == "100GE0/0/4"  # by name
    assert lanes.rx_dbm == pytest.approx(-3.0) and lanes.rx_lanes_dbm == pytest.approx(
        (-1.5, -2.105, -0.991, -3.0))  # the weakest lane
    assert reading.problems == (
        "optical_rx row 105: 1.3.6.1.4.1.2011.5.25.31.1.1.3.1.32: not a number: 'n/a'",)
    assert reading.fans == () and reading.fan_failed_count is None
    # without names at hand, the walked ifName / ifDescr columns name the ports
    walked = {**rows, IF_NAME: {(i,): n.encode() for i, (n, _) in names.items()},
              IF_DESCR: {(i,): d.encode() for i, (_, d) in names.items()}}
    assert parse_health(profiles["huawei_vrp"], walked).optics == reading.optics
    # nor with the labels of the interface poll
    labels = {i: InterfaceLabel(if_name=n, if_descr=d, if_type=6) for i, (n, d) in names.items()}
    assert parse_health(profiles["huawei_vrp"], rows,
                        interface_names_from_labels(labels)).optics == reading.optics


CES = "1.3.6.1.4.1.9.9.91.1.1.1.1"  # CISCO-ENTITY-SENSOR-MIB entSensorValueEntry


def test_entity_sensors_scale_precision_watts_and_the_way_to_the_port(
        profiles: dict[str, HealthProfile]) -> None:
    # IOS-XR shape: sensor -> transceiver module -> slot -> port (alias mapped)
    rows = entity_rows({
        1: ("chassis", "", 3, 0), 2: ("module 0/0/CPU0", "Line Card", 9, 1),
        10: ("TenGigE0/0/2/0", "Ten GigabitEthernet Port", 10, 2),
        11: ("slot mau 0/0/2/0", "", 5, 10), 12: ("module mau 0/0/2/0", "SFP+", 9, 11),
        13: ("power Rx 0/0/2/0", "Transceiver Rx Power Sensor", 8, 12),
        14: ("power Tx 0/0/2/0", "Transceiver Tx Power Sensor", 8, 12),
        15: ("temperature 0/0/2/0", "Transceiver Temperature Sensor", 8, 12),
        16: ("temperature 0/0/CPU0", "Hotspot", 8, 2),
        # IOS shape: sensors under the port entity, port found by its name (no alias)
        20: ("GigabitEthernet1/0/52", "1000BaseSX SFP", 10, 1),
        21: ("Gi1/0/52 Receive Power Sensor", "", 8, 20),
        22: ("Gi1/0/52 Transmit Power Sensor", "", 8, 20),
        23: ("Gi1/0/52 Bias Current Sensor", "", 8, 20),
        24: ("Gi1/0/52 Broken Sensor", "", 8, 20),
        25: ("power Rx 0/0/9/9", "Transceiver Rx Power Sensor", 8, 1)}, aliases={10: 42})
    sensors = {  # entity: (type, scale, precision, value, status)
        13: (6, 8, 4, 2751, 1), 14: (6, 8, 4, -32768, 1), 15: (8, 9, 1, 323, 1),
        16: (8, 9, 1, 405, 1), 21: (14, 9, 1, -47, 1), 22: (14, 9, 1, -50, 2),
        23: (5, 8, 1, 61, 1), 24: (None, None, None, 17, None), 25: (6, 8, 4, 10000, 1)}
    for position in range(5):
        rows[oid(f"{CES}.{position + 1 if position < 4 else 5}")] = {
            (entity,): cells[position] for entity, cells in sensors.items()
            if cells[position] is not None}
    names = {42: ("Te0/0/2/0", "TenGigE0/0/2/0"), 10152: ("Gi1/0/52", "GigabitEthernet1/0/52")}
    reading = parse_health(profiles["cisco_ios"], rows, names)
    optics = {o.if_index: o for o in reading.optics}
    # 0.2751 mW (milli, precision 4): 10 log10(0.2751) dBm; -32768: no reading
    assert optics[42].rx_dbm == pytest.approx(10 * math.log10(0.2751), abs=1e-6)
    assert optics[42].tx_dbm is None and optics[42].name == "Te0/0/2/0"
    # -4.7 dBm; the transmit sensor's status is unavailable(2): no value
    assert optics[10152].rx_dbm == pytest.approx(-4.7) and optics[10152].tx_dbm is None
    # a sensor no port claims is kept without ifIndex: 1 mW = 0 dBm
    assert optics[None].rx_dbm == pytest.approx(0.0) and optics[None].entity_index == 25
    temperatures = {t.entity_index: (t.value, t.if_index) for t in reading.temperatures}
    assert temperatures == {15: (pytest.approx(32.3), 42), 16: (pytest.approx(40.5), None)}
    assert reading.temperature_c == pytest.approx(40.5)  # the transceiver does not count
    assert reading.problems == ("sensor_temperature row 24: no sensor type, so no unit: "
                                "skipped",)


def test_a_bad_cell_is_a_problem_and_the_rest_stands(profiles: dict[str, HealthProfile]) -> None:
    jnx = "1.3.6.1.4.1.2636.3.1.13.1"
    rows: Rows = {
        oid(f"{jnx}.5"): {(9, 1, 0, 0): b"Routing Engine 0", (9, 2, 0, 0): b"Routing Engine 1",
                          (7, 1, 0, 0): b"FPC 0", (4, 1, 0, 0): b"Fan Tray 0",
                          (2, 1, 0, 0): b"PEM 0", (2, 2, 0, 0): b"PEM 1"},
        oid(f"{jnx}.6"): {(4, 1, 0, 0): 6, (2, 1, 0, 0): 2, (2, 2, 0, 0): 99},
        oid(f"{jnx}.7"): {(9, 1, 0, 0): 45, (9, 2, 0, 0): b"hot", (7, 1, 0, 0): 0,
                          (4, 1, 0, 0): 250},
        oid(f"{jnx}.8"): {(9, 1, 0, 0): 10, (9, 2, 0, 0): 0, (7, 1, 0, 0): 80},
        oid(f"{jnx}.11"): {(9, 1, 0, 0): 30, (9, 2, 0, 0): 150, (7, 1, 0, 0): 60},
        oid(f"{jnx}.15"): {(9, 1, 0, 0): 16384, (9, 2, 0, 0): 16384, (7, 1, 0, 0): 2048},
    }
    reading = parse_health(profiles["juniper_junos"], rows, {})
    assert reading.status is PollStatus.REACHABLE
    # the Routing Engines are the route processor; the FPC's 80 % does not count; the backup
    # RE's 0 is a reading (it has memory, so a CPU)
    assert reading.cpu_pct == 5 and {c.name: c.main for c in reading.cpus} == {
        "Routing Engine 0": True, "Routing Engine 1": True, "FPC 0": False}
    assert reading.mem_pct == 30  # RE 1's 150 % is a problem, not a value
    assert reading.temperature_c == 45
    assert [(f.name, f.state, f.raw) for f in reading.fans] == [("Fan Tray 0", "failed", 6)]
    assert [(p.name, p.state) for p in reading.psus] == [("PEM 0", "ok"), ("PEM 1", "unknown")]
    assert reading.fan_failed_count == 1 and reading.psu_failed_count == 0
    assert set(reading.problems) == {
        "operating_buffer row 9.2.0.0: 1.3.6.1.4.1.2636.3.1.13.1.11: implausible 150 percent",
        "operating_temperature row 4.1.0.0: 1.3.6.1.4.1.2636.3.1.13.1.7: implausible 250 "
        "celsius",
        "operating_temperature row 9.2.0.0: 1.3.6.1.4.1.2636.3.1.13.1.7: not a number (bytes)"}


CEMP = "1.3.6.1.4.1.9.9.221.1.1.1.1"
CMP = "1.3.6.1.4.1.9.9.48.1.1.1"


def test_memory_pools_bytes_summed_enhanced_mib_first(profiles: dict[str, HealthProfile]) -> None:
    old_mib: Rows = {oid(f"{CMP}.2"): {(1,): b"Processor", (2,): b"I/O"},
                     oid(f"{CMP}.5"): {(1,): 300, (2,): 900},
                     oid(f"{CMP}.6"): {(1,): 700, (2,): 100}}
    reading = parse_health(profiles["cisco_ios"], old_mib, {})
    assert reading.mem_pct == 30 and [p.name for p in reading.memory_pools] == ["Processor"]
    both = {**old_mib, **entity_rows({5: ("0/RSP0/CPU0", "", 9, 0), 6: ("0/0/CPU0", "", 9, 0)}),
            oid(f"{CEMP}.2"): {(5, 1): 2, (5, 2): 11, (6, 1): 2},
            oid(f"{CEMP}.3"): {(5, 1): b"processor", (5, 2): b"reserved", (6, 1): b"processor"},
            oid(f"{CEMP}.7"): {(5, 1): 1, (5, 2): 100, (6, 1): 1},
            oid(f"{CEMP}.8"): {(5, 1): 1, (5, 2): 0, (6, 1): 3},
            oid(f"{CEMP}.18"): {(5, 1): 100, (5, 2): 100},  # HC on the RSP only
            oid(f"{CEMP}.20"): {(5, 1): 300, (5, 2): 0}}
    reading = parse_health(profiles["cisco_ios"], both, {})
    pools = {p.name: (p.used_bytes, p.total_bytes) for p in reading.memory_pools}
    assert pools == {"0/RSP0/CPU0 processor": (100, 400), "0/0/CPU0 processor": (1, 4)}
    assert reading.mem_pct == pytest.approx(100 * 101 / 404)  # summed, not averaged


def test_states_absent_when_and_unknown_values(profiles: dict[str, HealthProfile]) -> None:
    fan, power = "1.3.6.1.4.1.2011.5.25.31.1.1.10.1", "1.3.6.1.4.1.2011.5.25.31.1.1.18.1"
    rows: Rows = {oid(f"{fan}.6"): {(13, 1): 1, (13, 2): 2, (14, 1): 1},
                  oid(f"{fan}.7"): {(13, 1): 1, (13, 2): 2, (14, 1): 2},
                  oid(f"{power}.5"): {(11, 0): 1, (12, 0): 1},
                  oid(f"{power}.6"): {(11, 0): 3, (12, 0): 7}}
    reading = parse_health(profiles["huawei_vrp"], rows, {})
    assert [(f.name, f.state, f.raw) for f in reading.fans] == [
        ("fan 13.1", "ok", 1), ("fan 13.2", "absent", 2), ("fan 14.1", "failed", 2)]
    assert [(p.index, p.state) for p in reading.psus] == [("11.0", "ok"), ("12.0", "unknown")]
    assert (reading.fan_failed_count, reading.psu_failed_count) == (1, 0)


def test_samples_name_the_device_and_the_ports_they_know(
        profiles: dict[str, HealthProfile]) -> None:
    h3c = "1.3.6.1.4.1.25506.2.70.1.1.1"
    rows: Rows = {oid(f"{h3c}.12"): {(26,): -1045, (27,): 2147483647, (28,): -950},
                  oid(f"{h3c}.9"): {(26,): -540, (27,): 2147483647, (28,): -300},
                  oid("1.3.6.1.4.1.25506.8.35.9.1.2.1.2"): {(1,): 1, (2,): 2}}
    reading = parse_health(profiles["hp_comware"], rows, {26: ("GE1/0/26", None)})
    at = datetime(2025, 3, 1, tzinfo=UTC)
    samples = health_samples(reading, 7, {26: 1026, 27: 1027}, at)
    assert sorted((s.object_id, s.metric, s.value) for s in samples) == [
        (7, "psu_failed_count", 1.0),  # no fan, no temperature, no CPU: no samples of them
        (1026, "optical_rx_dbm", pytest.approx(-10.45)),
        (1026, "optical_tx_dbm", pytest.approx(-5.4))]  # 27: no module; 28: no port id
    assert all(s.time == at for s in samples)
    assert health_samples(HealthReading("x", PollStatus.UNREACHABLE, "no answer"), 7, {},
                          at) == []
