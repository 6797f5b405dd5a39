"""A circuit's service state: the rule alone (alarms.service_state), and the assess stage
on the example network (alarms.assess through AlarmPipeline): end ports, admin shutdown,
unmonitored ports, devices proven down or only SNMP-silent, reachable devices never blamed
by isolation, a root cause that stays put, maintenance and degradation."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from alarms.model import AlarmKey, AlarmType, MaintenanceWindow, ObjectKind, ScopeItem
from alarms.pipeline import AlarmPipeline
from alarms.rules import AlarmSettings, rule_for
from alarms.service_state import (
    CircuitFacts,
    Degradation,
    EndFacts,
    PathFacts,
    ServiceState,
    service_state,
)
from alarms.thresholds import BREACHED, rule_detail, threshold_kind
from collectors.model import Observation
from config.inventory.loader import load_inventory
from keyline.wiring import EXAMPLE_INVENTORY
from topology.current import topology_from
from topology.graph import Element, SnapPort, snapshot_from_inventory

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
SETTINGS = AlarmSettings(raise_after_s=2, clear_after_s=5, flap_max_changes=4,
                         flap_window_s=60, event_hold_s=30)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# --- the rule ------------------------------------------------------------------------------


def end(side: str, *, oper: str | None = "up", admin: str | None = "up",
        device: str | None = "reachable") -> EndFacts:
    return EndFacts(side, 10 if side == "A" else 20, f"Gi0/0/{side}", 1 if side == "A" else 2,
                    "ce-1" if side == "A" else "pe-1", "CE" if side == "A" else "PE", oper,
                    admin, device, at(0))


def facts(a: EndFacts | None = None, z: EndFacts | None = None,
          path: PathFacts | None = None, **extra) -> CircuitFacts:
    return CircuitFacts(7, (a or end("A"), z or end("Z")),
                        path or PathFacts(declared=True, valid=True), **extra)


def test_the_rule_in_order() -> None:
    assert service_state(facts()).state is ServiceState.UP
    # an end port down: down, and the words say which end and where
    verdict = service_state(facts(z=end("Z", oper="down")))
    assert verdict.state is ServiceState.DOWN and verdict.cause_kind == "end_port_down"
    assert verdict.cause == "port Gi0/0/Z down at the Z end (PE pe-1)"
    assert verdict.elements == (Element("port", 20),)
    # shut by an operator: still an outage for the customer
    verdict = service_state(facts(a=end("A", oper="down", admin="down")))
    assert (verdict.state, verdict.cause_kind) == (ServiceState.DOWN, "end_port_shut")
    # the end device proven down
    verdict = service_state(facts(a=end("A", device="unreachable")))
    assert (verdict.state, verdict.cause_kind) == (ServiceState.DOWN, "end_device_down")
    # SNMP silent, device alive: unknown, never down, even with a stale "down" port
    for silent in ("snmp-unresponsive", "auth-failed", "error"):
        verdict = service_state(facts(a=end("A", oper="down", device=silent)))
        assert verdict.state is ServiceState.UNKNOWN, silent
    assert service_state(facts(a=end("A", device=None))).state is ServiceState.UNKNOWN
    assert service_state(facts(z=end("Z", oper=None))).state is ServiceState.UNKNOWN
    # ...but proof from the other end wins over missing evidence
    verdict = service_state(facts(a=end("A", device="snmp-unresponsive"),
                                  z=end("Z", oper="lowerLayerDown")))
    assert verdict.state is ServiceState.DOWN
    # no working path
    broken = PathFacts(declared=True, valid=True,
                       down=((Element("link", 5), "link a:x–b:y down"),), since=at(3))
    verdict = service_state(facts(path=broken))
    assert (verdict.state, verdict.cause) == (ServiceState.DOWN,
                                              "path broken: link a:x–b:y down")
    assert service_state(facts(path=PathFacts(False, False))).cause_kind == "no_path"
    assert service_state(facts(path=PathFacts(True, False, problems=("hop 2: no link",)))
                         ).state is ServiceState.UNKNOWN
    # degraded, and maintenance over everything, keeping what lies beneath
    hot = Degradation(Element("port", 20), "if_out_utilization_pct 95.0 >= 90", at(4))
    assert service_state(facts(degradations=(hot,))).state is ServiceState.DEGRADED
    verdict = service_state(facts(z=end("Z", oper="down"), maintenance=frozenset({3}),
                                  maintenance_since=at(1)))
    assert (verdict.state, verdict.underlying) == (ServiceState.MAINTENANCE, ServiceState.DOWN)
    assert verdict.since == at(1)


# --- the assess stage on the example network ------------------------------------------------


@pytest.fixture(scope="module")
def snapshot():
    return snapshot_from_inventory(load_inventory([EXAMPLE_INVENTORY]))


def obs(object_id: int, kind: str, new: str, seconds: float) -> Observation:
    return Observation(at(seconds), object_id, kind, None, new, "poll")


def start(snapshot, windows=()) -> AlarmPipeline:
    pipeline = AlarmPipeline(SETTINGS, topology=topology_from(snapshot))
    pipeline.set_windows(windows)
    pipeline.process([obs(d, "reachability", "reachable", -30) for d in snapshot.devices]
                     + [obs(p, kind, "up", -30) for p in snapshot.ports
                        for kind in ("oper_status", "admin_status")], at(-30))
    pipeline.tick(at(-10))
    return pipeline


def run(pipeline: AlarmPipeline, observations, seconds: float, until: float) -> list:
    """Process at `seconds`, tick every half second to `until`: the changes, and the
    circuit states taken meanwhile (pipeline.taken)."""
    taken = []
    changes = pipeline.process(observations, at(seconds))
    taken += pipeline.last_states
    t = seconds
    while t < until:
        t += 0.5
        changes += pipeline.tick(at(t))
        taken += pipeline.last_states
    pipeline.taken = taken  # type: ignore[attr-defined]
    return changes


def service_keys(pipeline: AlarmPipeline) -> dict[int, AlarmKey]:
    return {k.object_id: k for k in pipeline.active if k.type is AlarmType.SERVICE_DOWN}


def test_an_end_port_down_gives_one_service_alarm_for_its_circuit(snapshot) -> None:
    circuits, ports = snapshot.ids("circuits"), snapshot.ids("ports")
    inet = circuits["HSB-INET-0001"]
    a_end = ports["ce-hsbank-sh-hq:GigabitEthernet0/0/5"]  # a LAN port: no link
    pipeline = start(snapshot)
    run(pipeline, [obs(a_end, "oper_status", "down", 0)], 0, 10)
    assert set(service_keys(pipeline)) == {inet}  # that circuit alone
    alarm = pipeline.active[service_keys(pipeline)[inet]]
    port_alarm = AlarmKey(ObjectKind.PORT, a_end, AlarmType.LINK_DOWN)
    assert alarm.root_cause == port_alarm and alarm.first_seen == at(0)
    assert "GigabitEthernet0/0/5 down at the A end (CE ce-hsbank-sh-hq)" in alarm.summary
    assert alarm.impacted_customers == {snapshot.circuits[inet].customer_id}
    assert pipeline.active[port_alarm].impacted_circuits == {inet}
    (change,) = pipeline.taken
    assert (change.circuit_id, change.state, change.previous, change.time) == (
        inet, ServiceState.DOWN, ServiceState.UP, at(0))
    # back up: the state returns to up at the port's own time, the alarms clear
    run(pipeline, [obs(a_end, "oper_status", "up", 30)], 30, 40)
    assert pipeline.active == {}
    (change,) = pipeline.taken
    assert (change.state, change.time) == (ServiceState.UP, at(30))


def test_a_pe_end_port_shared_by_two_circuits_gives_each_its_alarm(snapshot) -> None:
    ports = snapshot.ids("ports")
    transit = ports["pe-sh1:XGigabitEthernet0/1/2"]  # Internet transit: two customers' Z end
    ending = {c.id for c in snapshot.circuits.values() if transit in (c.a_port_id, c.z_port_id)}
    assert len({snapshot.circuits[c].customer_id for c in ending}) == 2
    pipeline = start(snapshot)
    run(pipeline, [obs(transit, "oper_status", "down", 0)], 0, 10)
    assert set(service_keys(pipeline)) == ending
    port_alarm = pipeline.active[AlarmKey(ObjectKind.PORT, transit, AlarmType.LINK_DOWN)]
    assert port_alarm.impacted_circuits == ending
    for circuit in ending:
        alarm = pipeline.active[service_keys(pipeline)[circuit]]
        assert alarm.root_cause == port_alarm.key
        assert alarm.impacted_customers == {snapshot.circuits[circuit].customer_id}
        assert "at the Z end (PE pe-sh1)" in alarm.summary


def test_a_shut_end_port_is_an_outage_without_a_network_fault(snapshot) -> None:
    circuits, ports = snapshot.ids("circuits"), snapshot.ids("ports")
    port = ports["ce-hsbank-sh-hq:GigabitEthernet0/0/5"]
    pipeline = start(snapshot)
    run(pipeline, [obs(port, "admin_status", "down", 0), obs(port, "oper_status", "down", 0)],
        0, 10)
    assert {k.type for k in pipeline.active} == {AlarmType.SERVICE_DOWN}
    alarm = pipeline.active[service_keys(pipeline)[circuits["HSB-INET-0001"]]]
    assert alarm.root_cause is None and "shut down (admin down)" in alarm.summary


def test_only_monitored_ports_raise(snapshot) -> None:
    # two ports more on a CE: one spare (ends no circuit and no link), one the inventory
    # marks `monitor: true`; a VLAN interface is a spare port like any other
    ce = snapshot.ids("devices")["ce-hsbank-sh-hq"]
    spare, watched = 9001, 9002
    ports = {**snapshot.ports, spare: SnapPort(spare, ce, "Vlanif100", None),
             watched: SnapPort(watched, ce, "GigabitEthernet0/0/7", None, monitor=True)}
    pipeline = start(replace(snapshot, ports=ports))
    changes = run(pipeline, [obs(spare, "oper_status", "down", 0),
                             obs(watched, "oper_status", "down", 0)], 0, 10)
    assert [c.alarm.key for c in changes] == [
        AlarmKey(ObjectKind.PORT, watched, AlarmType.LINK_DOWN)]
    assert pipeline.taken == []  # no circuit ends on either
    # shut by an operator: not a fault, the alarm goes
    run(pipeline, [obs(watched, "admin_status", "down", 20)], 20, 30)
    assert pipeline.active == {}


def test_an_snmp_silent_end_device_makes_its_circuits_unknown_not_down(snapshot) -> None:
    devices = snapshot.ids("devices")
    ce = devices["ce-hsbank-bj-dc"]
    ends_there = {c.id for c in snapshot.circuits.values()
                  if snapshot.ports[c.a_port_id].device_id == ce
                  or snapshot.ports[c.z_port_id].device_id == ce}
    pipeline = start(snapshot)
    run(pipeline, [obs(ce, "reachability", "snmp-unresponsive", 0)], 0, 10)
    assert service_keys(pipeline) == {}
    silent = pipeline.active[AlarmKey(ObjectKind.DEVICE, ce, AlarmType.SNMP_UNRESPONSIVE)]
    assert silent.impacted_circuits == ends_there
    assert {c.circuit_id: c.state for c in pipeline.taken} == {
        c: ServiceState.UNKNOWN for c in ends_there}
    # proven down: the same circuits are down, rooted at the device
    run(pipeline, [obs(ce, "reachability", "unreachable", 20)], 20, 30)
    assert set(service_keys(pipeline)) == ends_there
    root = AlarmKey(ObjectKind.DEVICE, ce, AlarmType.DEVICE_UNREACHABLE)
    assert {pipeline.active[k].root_cause for k in service_keys(pipeline).values()} == {root}
    assert AlarmKey(ObjectKind.DEVICE, ce, AlarmType.SNMP_UNRESPONSIVE) not in pipeline.active


def test_a_reachable_device_is_never_blamed_by_isolation(snapshot) -> None:
    # the core link p-sh1–p-bj1 down at both ends: its link alarm is the cause, and the PE
    # on the way (pe-sh1, answering every poll) is no root cause of anything
    ports, circuits, links = (snapshot.ids(k) for k in ("ports", "circuits", "links"))
    a, z = ports["p-sh1:Eth-Trunk2"], ports["p-bj1:Eth-Trunk2"]
    pipeline = start(snapshot)
    run(pipeline, [obs(a, "oper_status", "down", 0), obs(z, "oper_status", "down", 0)], 0, 10)
    assert not any(k.type is AlarmType.DEVICE_ISOLATED for k in pipeline.active)
    link = AlarmKey(ObjectKind.LINK, links["p-bj1:Eth-Trunk2--p-sh1:Eth-Trunk2"],
                    AlarmType.LINK_DOWN)
    service = pipeline.active[service_keys(pipeline)[circuits["HSB-L3VPN-0001"]]]
    assert service.root_cause == link
    assert "path broken: link" in service.summary


def test_one_end_of_a_link_seen_down_is_that_port_not_both_ends(snapshot) -> None:
    ports = snapshot.ids("ports")
    port = ports["pe-bj1:GigabitEthernet0/0/0"]  # towards ce-hsbank-bj-dc
    ce = snapshot.ids("devices")["ce-hsbank-bj-dc"]
    pipeline = start(snapshot)
    run(pipeline, [obs(port, "oper_status", "down", 0),
                   obs(ce, "reachability", "snmp-unresponsive", 0)], 0, 10)
    assert not any(k.kind is ObjectKind.LINK for k in pipeline.active)
    assert not any("both ends" in a.summary for a in pipeline.active.values())
    roots = {pipeline.active[k].root_cause for k in service_keys(pipeline).values()}
    assert roots == {AlarmKey(ObjectKind.PORT, port, AlarmType.LINK_DOWN)}


def test_the_root_cause_stays_while_a_lan_port_flaps_behind_a_dead_uplink(snapshot) -> None:
    ports, circuits = snapshot.ids("ports"), snapshot.ids("circuits")
    uplink_ce = ports["ce-hsbank-gz-br:GigabitEthernet1/0/1"]
    uplink_pe = ports["pe-gz1:GigabitEthernet1/0/1"]
    lan = ports["ce-hsbank-gz-br:GigabitEthernet1/0/4"]  # HSB-ELINE-0001's Z end
    eline = circuits["HSB-ELINE-0001"]
    pipeline = start(snapshot)
    run(pipeline, [obs(uplink_ce, "oper_status", "down", 0),
                   obs(uplink_pe, "oper_status", "down", 0)], 0, 10)
    service = service_keys(pipeline)[eline]
    alarm = pipeline.active[service]
    root = alarm.root_cause
    assert root is not None and root.kind is ObjectKind.LINK
    changes = []
    for n in range(8):
        changes += run(pipeline, [obs(lan, "oper_status", "down" if n % 2 == 0 else "up",
                                      20 + 3 * n)], 20 + 3 * n, 22 + 3 * n)
    assert pipeline.active[service] is alarm and alarm.root_cause == root
    touched = [c for c in changes if c.alarm is alarm]
    assert all(c.event == "updated" for c in touched)
    assert not any(e.action in ("rooted", "unrooted") for c in touched for e in c.entries)


def test_maintenance_on_a_path_device_covers_the_circuit_and_keeps_the_truth(snapshot) -> None:
    devices, circuits, ports = (snapshot.ids(k) for k in ("devices", "circuits", "ports"))
    p_sh1 = devices["p-sh1"]
    window = MaintenanceWindow(4, (ScopeItem("device", p_sh1, "p-sh1"),), at(5), at(60),
                               "line card swap", "alice")
    pipeline = start(snapshot, [window])
    hsb = circuits["HSB-L3VPN-0001"]  # declared over p-sh1
    run(pipeline, [], 0, 6)
    state = pipeline.circuit_states.committed[hsb]
    assert (state.verdict.state, state.time) == (ServiceState.MAINTENANCE, at(5))
    assert state.verdict.underlying is ServiceState.UP
    # the work takes the router's trunk down: recorded beneath, the alarm suppressed
    a, z = ports["p-sh1:Eth-Trunk2"], ports["p-bj1:Eth-Trunk2"]
    run(pipeline, [obs(a, "oper_status", "down", 10), obs(z, "oper_status", "down", 10)],
        10, 20)
    state = pipeline.circuit_states.committed[hsb]
    assert (state.verdict.state, state.verdict.underlying) == (ServiceState.MAINTENANCE,
                                                               ServiceState.DOWN)
    assert pipeline.active[service_keys(pipeline)[hsb]].suppressed_by == {4}
    # the window ends with the trunk still down: the outage counts from then on
    run(pipeline, [], 20, 61)
    state = pipeline.circuit_states.committed[hsb]
    assert (state.verdict.state, state.time) == (ServiceState.DOWN, at(60))


def test_a_threshold_on_an_end_port_degrades_the_circuit(snapshot) -> None:
    circuits, ports = snapshot.ids("circuits"), snapshot.ids("ports")
    inet = circuits["HSB-INET-0001"]
    port = ports["pe-sh1:XGigabitEthernet0/1/2"]
    pipeline = start(snapshot)
    rule = rule_for(pipeline.settings.thresholds, "if_out_utilization_pct", "port", None)
    pipeline.process([Observation(at(0), port, threshold_kind("if_out_utilization_pct"), None,
                                  BREACHED, "poll", rule_detail(rule, "port", 97.0))], at(0))
    for t in range(1, 10):
        pipeline.tick(at(t))
    state = pipeline.circuit_states.committed[inet]
    assert state.verdict.state is ServiceState.DEGRADED
    assert "if_out_utilization_pct 97.0 >= 90" in state.verdict.cause
    # the transit port ends two customers' circuits: both are degraded, and no other
    ending = {c.id for c in snapshot.circuits.values() if port in (c.a_port_id, c.z_port_id)}
    threshold = AlarmKey(ObjectKind.PORT, port, AlarmType.THRESHOLD, "if_out_utilization_pct")
    assert pipeline.active[threshold].impacted_circuits == ending
    assert {c for c, t in pipeline.circuit_states.committed.items()
            if t.verdict.state is ServiceState.DEGRADED} == ending


def test_a_replayed_batch_gives_the_same_alarms_and_intervals_as_live(snapshot) -> None:
    """The same observations, once as they happen (processed at their time, the clock
    ticking between) and once all in one batch ten minutes later (a spool replayed after an
    outage): the same alarms raised and cleared at the same times, the same circuit states
    at the same times; a port down and up again inside the batch still leaves its interval."""
    ports, devices = snapshot.ids("ports"), snapshot.ids("devices")
    lan = ports["ce-hsbank-sh-hq:GigabitEthernet0/0/5"]
    trunk_a, trunk_z = ports["p-sh1:Eth-Trunk2"], ports["p-bj1:Eth-Trunk2"]
    stream = [obs(lan, "oper_status", "down", 0), obs(trunk_a, "oper_status", "down", 20),
              obs(trunk_z, "oper_status", "down", 21), obs(lan, "oper_status", "up", 60),
              obs(trunk_a, "oper_status", "up", 90), obs(trunk_z, "oper_status", "up", 90),
              obs(devices["ce-jinlu-sh-wh"], "reachability", "snmp-unresponsive", 100),
              obs(devices["ce-jinlu-sh-wh"], "reachability", "reachable", 130)]

    def history(pipeline: AlarmPipeline, changes: list) -> tuple[set, list]:
        alarms = {(str(c.alarm.key), c.alarm.first_seen, c.alarm.cleared_at)
                  for c in changes if c.event == "cleared"}
        return alarms, sorted((c.circuit_id, c.time, str(c.state)) for c in pipeline.taken)

    live = start(snapshot)
    changes: list = []
    taken: list = []
    for observation in stream:
        t = (observation.time - T0).total_seconds()
        changes += live.process([observation], at(t))
        taken += live.last_states
        for step in range(1, 20):
            changes += live.tick(at(t + step * 0.5))
            taken += live.last_states
    changes += live.tick(at(200))
    taken += live.last_states
    live.taken = taken  # type: ignore[attr-defined]
    replayed = start(snapshot)
    replayed.tick(at(590))  # its clock ran on while the observations were held up
    batch = replayed.process(stream, at(600))
    replayed.taken = list(replayed.last_states)  # type: ignore[attr-defined]
    batch += replayed.tick(at(601))
    replayed.taken += replayed.last_states  # type: ignore[attr-defined]
    live_alarms, live_states = history(live, changes)
    batch_alarms, batch_states = history(replayed, batch)
    assert live_alarms and live_states
    assert any(key.startswith("service_down") for key, _, _ in live_alarms)
    assert batch_alarms == live_alarms
    assert batch_states == live_states
    assert live.active == {} and replayed.active == {}
