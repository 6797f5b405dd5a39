"""Real devices through the whole collector: every recording of the shared folder (real walks
of Huawei, Cisco, Juniper, H3C, Nokia and MikroTik devices, served by snmpsim through
lab/recordings.py with counters and sysUpTime moving) polled by the collection service with
an inventory written the way an operator writes one: ports by name only, no ifIndex, in the
form the device's console shows them, the circuits' ends on ports that are up, and a few
ports an operator would never want alarms from (admin-down ports marked `monitor: true`,
spare ports that are down, VLAN interfaces). The alarm pipeline runs on what is stored.

What must hold, per device: every declared port is matched to the interface of its name
(a port the device does not have is reported, with a minor configuration alarm); traffic
rates come out at the rate the served counters grow (the recordings' 32-bit-only and
no-sysUpTime devices included); health figures are stored where the walk carries them, the
same as a health poll reads them; every circuit is up; and no alarm an operator would call
false is raised: no port alarm at all, and a threshold alarm only where the walk's own value
breaches the threshold.

Skipped, with the reason, where the recordings folder or snmpsim is missing.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from alarms.rules import AlarmSettings
from alarms.service import AlarmService
from collectors.health import choose_profile, load_profiles, poll_health, read_sys_object_id
from collectors.model import PollTarget, SnmpCredential
from collectors.port_names import normalize
from collectors.service import CollectionService
from collectors.snmp import SnmpPoller
from config.inventory.loader import load_inventory
from keyline.wiring import threshold_judge
from lab.recordings import (
    IF_HIGH_SPEED,
    IF_SPEED,
    LOAD_RATIO,
    OCTET_COLUMNS,
    RecordingAgents,
    decoded,
    recording_names,
    recordings_dir,
    table,
)
from store.database import Database
from store.inventory import apply_inventory
from tests.snmp_agents import snmpsim_installed
from tests.test_collection_service import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not snmpsim_installed(),
                       reason="snmpsim is not installed (pip install snmpsim pysmi)"),
    pytest.mark.skipif(not recording_names(),
                       reason=f"no SNMP recordings in {recordings_dir()} (the team's shared "
                              "folder; set KEYLINE_SHARED_DIR to where it is)"),
]

IF_DESCR = (1, 3, 6, 1, 2, 1, 2, 2, 1, 2)
IF_ADMIN = (1, 3, 6, 1, 2, 1, 2, 2, 1, 7)
IF_OPER = (1, 3, 6, 1, 2, 1, 2, 2, 1, 8)
IF_NAME = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1)
IF_TYPE = (1, 3, 6, 1, 2, 1, 2, 2, 1, 3)
PLATFORM = {"comware": "hp_comware", "ios": "cisco_ios", "iosxe": "cisco_ios",
            "iosxr": "cisco_xr", "junos": "juniper_junos", "vrp": "huawei_vrp"}
MISSING_PORT = "GigabitEthernet9/9/99"  # declared on every device, on none of them
# A reading is stamped when the answer carrying sysUpTime came; the 64-bit counters come a
# request or more later (ifXTable after ifTable), and on a loaded machine that gap varies by
# up to ~0.7 s between polls (seen in CI: +36 % on one port over 2 s). Over 5 s the same
# variation stays within the rate check's 30 %. (The poller's own accuracy issue: the closing
# note of 2026-12-07.)
INTERVAL_S = 5.0
HEALTH_INTERVAL_S = 4.0


@dataclass
class Interface:
    if_index: int
    if_name: str | None
    if_descr: str | None
    admin: int | None
    oper: int | None
    speed_bps: int | None
    if_type: int | None
    counted: bool  # the walk has an octet counter for it


def interfaces_of(agents: RecordingAgents, name: str) -> dict[int, Interface]:
    """The interfaces the walk holds, read from the recording file itself."""
    records = agents.records(name)

    def text(column: tuple[int, ...], index: int) -> str | None:
        row = table(records, column).get((index,))
        value = decoded(row) if row is not None else None
        return value.decode("utf-8", "replace").strip() if isinstance(value, bytes) else None

    def number(column: tuple[int, ...], index: int) -> int | None:
        row = table(records, column).get((index,))
        value = decoded(row) if row is not None else None
        return value if isinstance(value, int) else None

    found = {}
    indexes = {i[0] for column in (IF_DESCR, IF_OPER) for i in table(records, column)
               if len(i) == 1}
    counters = {i[0] for column in OCTET_COLUMNS for i in table(records, column)
                if len(i) == 1}
    for index in sorted(indexes):
        high = number(IF_HIGH_SPEED, index)
        speed = high * 1_000_000 if high else number(IF_SPEED, index)
        found[index] = Interface(index, text(IF_NAME, index), text(IF_DESCR, index),
                                 number(IF_ADMIN, index), number(IF_OPER, index),
                                 speed or None, number(IF_TYPE, index), index in counters)
    return found


def console_name(interface: Interface) -> str | None:
    """The name an operator copies from the device's console: the long form, which is
    ifDescr on Cisco (ifName is short there) and ifName elsewhere; None for a name no
    inventory could hold (empty, or two interfaces of one device answering to it)."""
    name = interface.if_name or interface.if_descr
    if interface.if_name and interface.if_descr and len(interface.if_descr) > len(
            interface.if_name) and normalize(interface.if_descr) == normalize(interface.if_name):
        name = interface.if_descr
    return name.strip() if name and name.strip() else None


@dataclass
class Plan:
    """One device of the inventory: the interface each declared port should match."""

    device: str
    ports: dict[str, int]  # declared name -> ifIndex it must match
    circuit_ends: list[str]
    watched_shut: list[str]  # admin down, marked monitor: true: still no alarm


def plan_device(name: str, interfaces: dict[int, Interface]) -> Plan:
    device = name.replace("_", "-").replace(".", "-")
    names: dict[str, list[int]] = {}
    for interface in interfaces.values():
        declared = console_name(interface)
        if declared:
            names.setdefault(normalize(declared), []).append(interface.if_index)
    ports: dict[str, int] = {}
    for interface in interfaces.values():
        declared = console_name(interface)
        # a name several interfaces answer to (an IOS-XE MPLS sub-layer shares its
        # port's ifName) is declared once, by the interface whose ifDescr carries it
        if not declared or declared in ports:
            continue
        if len(names[normalize(declared)]) > 1 and interface.if_descr != declared:
            continue
        ports[declared] = interface.if_index
    # the circuits' ends: Ethernet ports that are up, with a speed and octet counters
    up = [port for port, index in ports.items()
          if interfaces[index].oper == 1 and interfaces[index].admin == 1
          and interfaces[index].if_type == 6 and interfaces[index].speed_bps
          and interfaces[index].counted]
    shut = [port for port, index in ports.items() if interfaces[index].admin == 2][:2]
    return Plan(device, ports, up[:2] if len(up) >= 2 else [], shut)


def inventory_yaml(plans: list[Plan], agents: RecordingAgents) -> str:
    lines = ["customers:", "  - {id: walks, name: Real walks}", "credentials:"]
    for plan in plans:
        lines.append(f"  - {{id: {plan.device}-snmp, kind: snmp_v2c, community: "
                     f"{{env: KEYLINE_TEST_WALK_{_env(plan.device)}}}}}")
    lines.append("devices:")
    for name, plan in zip(agents.names, plans, strict=True):
        host, port = agents.endpoint(name)
        platform = PLATFORM.get(name.split("_")[0], "linux")
        lines += [f"  - name: {plan.device}", "    role: PE", f"    platform: {platform}",
                  f"    management_address: {host}", f"    snmp_port: {port}",
                  f"    snmp_credential: {plan.device}-snmp", "    ports:"]
        for port_name in [*plan.ports, MISSING_PORT]:
            monitor = ", monitor: true" if port_name in plan.watched_shut else ""
            lines.append(f"      - {{name: {_quoted(port_name)}{monitor}}}")
    circuits = [plan for plan in plans if plan.circuit_ends]
    if circuits:
        lines.append("circuits:")
    for plan in circuits:
        a, z = plan.circuit_ends
        lines += [f"  - id: WALK-{plan.device}", "    customer: walks",
                  "    service_type: leased_line", "    bandwidth_bps: 10M",
                  f"    a_end: {{device: {plan.device}, port: {_quoted(a)}}}",
                  f"    z_end: {{device: {plan.device}, port: {_quoted(z)}}}"]
    return "\n".join(lines) + "\n"


def _env(device: str) -> str:
    return device.upper().replace("-", "_")


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.fixture(scope="module")
def agents() -> Iterator[RecordingAgents]:
    with RecordingAgents(recording_names()) as served:
        yield served


def test_every_real_walk_through_the_collector_with_ports_named_as_operators_do(
        agents: RecordingAgents, db: Database, tmp_path: Path) -> None:
    plans = [plan_device(name, interfaces_of(agents, name)) for name in agents.names]
    folder = tmp_path / "inventory"
    folder.mkdir()
    (folder / "walks.yaml").write_text(inventory_yaml(plans, agents))
    inventory = load_inventory([folder])
    environ = {**os.environ, **{f"KEYLINE_TEST_WALK_{_env(plan.device)}": name
                                for name, plan in zip(agents.names, plans, strict=True)}}
    with db.pool.connection() as conn:
        apply_inventory(conn, inventory)
        ids = dict(conn.execute("SELECT d.key || ':' || p.name, p.id FROM ports p"
                                " JOIN devices d ON d.id = p.device_id").fetchall())
        devices = dict(conn.execute("SELECT key, id FROM devices").fetchall())
    settings = AlarmSettings(raise_after_s=1, clear_after_s=1, infer_after_s=1,
                             tick_interval_s=0.2)
    collector = CollectionService(
        db.pool, spool_dir=tmp_path / "spool", interval_s_for=lambda _group: INTERVAL_S,
        environ=environ, timeout_s=3.0, retries=1, traps_enabled=False,
        startup_spread_s=INTERVAL_S, flush_interval_s=0.2,
        health_interval_s=HEALTH_INTERVAL_S, thresholds=threshold_judge(settings.thresholds))
    alarms = AlarmService(db.pool, db.url, settings)
    with collector, alarms:
        wait_for(lambda: all(collector.stats().device_polls[plan.device] >= 3
                             for plan in plans), 60)
        wait_for(lambda: collector.stats().health_polls >= len(plans), 60)
        time.sleep(2 * settings.raise_after_s + 1)  # alarms and states have their turn
        collector.flush()
        wait_for(alarms.idle, 20)
        with db.pool.connection() as conn:
            matches = {row[0]: row[1:] for row in conn.execute(
                "SELECT port_id, if_index, matched_by, problem, message FROM port_matches")}
            rates = dict(conn.execute(
                """SELECT DISTINCT ON (s.object_id) s.object_id, s.value FROM samples s
                     JOIN metrics m ON m.id = s.metric_id WHERE m.name = 'if_in_bps'
                    ORDER BY s.object_id, s.time DESC""").fetchall())
            health = {(o, m): v for o, m, v in conn.execute(
                """SELECT DISTINCT ON (s.object_id, m.name) s.object_id, m.name, s.value
                     FROM samples s JOIN metrics m ON m.id = s.metric_id
                    WHERE m.name IN ('cpu_pct', 'mem_pct', 'temperature_c',
                                     'optical_rx_dbm', 'optical_tx_dbm')
                    ORDER BY s.object_id, m.name, s.time DESC""")}
            active = conn.execute(
                """SELECT object_kind, object_id, type, qualifier, summary, detail
                     FROM alarms WHERE state = 'active'""").fetchall()
            states = dict(conn.execute(
                """SELECT DISTINCT ON (circuit_id) circuit_id, state FROM circuit_states
                    ORDER BY circuit_id, time DESC, id DESC""").fetchall())
    # every declared port matched to the interface of its name; the missing one reported
    for name, plan in zip(agents.names, plans, strict=True):
        for port_name, if_index in plan.ports.items():
            port_id = ids[f"{plan.device}:{port_name}"]
            assert port_id in matches, (name, port_name)
            assert matches[port_id][0] == if_index, (name, port_name, matches[port_id])
            assert matches[port_id][2] is None, (name, port_name, matches[port_id])
        missing = matches[ids[f"{plan.device}:{MISSING_PORT}"]]
        assert missing[0] is None and missing[2] == "missing", (name, missing)
    # traffic on every up port at the rate its counters grow (32-bit-only and
    # no-sysUpTime devices included)
    for name, plan in zip(agents.names, plans, strict=True):
        interfaces = interfaces_of(agents, name)
        for port_name in plan.circuit_ends:
            interface = interfaces[plan.ports[port_name]]
            expected = interface.speed_bps * LOAD_RATIO
            got = rates.get(ids[f"{plan.device}:{port_name}"])
            # a reading is stamped when the system group answered, the counters come a
            # walk later: see INTERVAL_S
            assert got is not None and abs(got - expected) <= 0.3 * expected, (
                name, port_name, got, expected)
    # health as a health poll reads it, on every device whose walk carries it
    polled = asyncio.run(_health_readings(agents, plans))
    carried = 0
    for plan, reading in polled.items():
        device_id = devices[plan]
        for metric in ("cpu_pct", "mem_pct", "temperature_c"):
            value = getattr(reading, metric)
            if value is None:
                assert (device_id, metric) not in health, (plan, metric)
            else:
                carried += 1
                assert health[(device_id, metric)] == pytest.approx(value), (plan, metric)
    assert carried >= 15  # CPU, memory and temperature on most of the ten walks
    # every circuit up; no alarm an operator would call false
    assert len(states) >= 8 and set(states.values()) == {"up"}, states
    port_ids = set(ids.values())
    for kind, object_id, alarm_type, qualifier, summary, detail in active:
        if alarm_type == "config_mismatch":
            assert ids.get(f"{_device_of(object_id, ids)}:{MISSING_PORT}") == object_id
            continue
        assert alarm_type == "threshold", (kind, object_id, alarm_type, summary)
        value, rule_at = detail["value"], detail["raise_at"]
        assert (value >= rule_at if detail["direction"] == "above" else value <= rule_at)
        assert object_id not in port_ids or qualifier.startswith("optical"), summary
    mismatches = [row for row in active if row[2] == "config_mismatch"]
    assert len(mismatches) == len(plans)


def _device_of(port_id: int, ids: dict[str, int]) -> str:
    return next(key.partition(":")[0] for key, value in ids.items() if value == port_id)


async def _health_readings(agents: RecordingAgents, plans: list[Plan]) -> dict[str, Any]:
    profiles = load_profiles()
    poller = SnmpPoller(timeout_s=3.0, retries=1)
    found = {}
    try:
        for number, (name, plan) in enumerate(zip(agents.names, plans, strict=True)):
            host, port = agents.endpoint(name)
            target = PollTarget(number, plan.device, host, port,
                                SnmpCredential("v2c", community=SecretStr(name)), "default")
            profile = choose_profile(profiles, await read_sys_object_id(poller, target), None)
            found[plan.device] = await poll_health(poller, target, profile)
    finally:
        poller.close()
    return found


def test_poll_once_shows_each_port_as_matched_and_what_carries_its_rates(
        agents: RecordingAgents) -> None:
    """What `keyline poll --once` prints for a real Catalyst, its ports declared in the
    short form with no ifIndex, one of them wrong."""
    from collectors.model import PollStatus
    from keyline.wiring import describe_poll

    name = "ios_2960x" if "ios_2960x" in agents.names else agents.names[0]
    interfaces = interfaces_of(agents, name)
    named = [i for i in interfaces.values() if i.if_name][:3]
    host, port = agents.endpoint(name)
    declared = tuple((100 + n, i.if_name, None) for n, i in enumerate(named))
    target = PollTarget(1, "walk", host, port, SnmpCredential("v2c", community=SecretStr(name)),
                        "default", ports=(*declared, (99, MISSING_PORT, None)))

    async def poll() -> Any:
        poller = SnmpPoller(timeout_s=3.0, retries=1)
        try:
            return await poller.poll(target)
        finally:
            poller.close()

    result = asyncio.run(poll())
    assert result.status is PollStatus.REACHABLE
    lines = describe_poll(result)
    for interface in named:
        line = next(line for line in lines if line.strip().startswith(interface.if_name))
        assert f"ifIndex {interface.if_index} " in line and "[by ifName]" in line, line
        assert "admin " in line and "oper " in line and "counters" in line, line
    line = next(line for line in lines if line.strip().startswith(MISSING_PORT))
    assert "NOT MATCHED" in line
    assert any("problem:" in line and "not found on the device" in line for line in lines)
    assert any(line.startswith(f"  not in the inventory ({len(interfaces) - 3})")
               for line in lines), lines[:8]
