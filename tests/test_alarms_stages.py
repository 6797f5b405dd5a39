"""The alarm pipeline's stages, alone and chained, without a database: observe, debounce
(with flapping), dedupe, correlate (root cause on the example network), assess (circuits'
service states and their service alarms over live paths), suppress (maintenance), and
recovery from stored state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import networkx as nx
import pytest

from alarms.model import (
    Alarm,
    AlarmKey,
    AlarmState,
    AlarmType,
    MaintenanceWindow,
    ObjectKind,
    ScopeItem,
    Severity,
)
from alarms.pipeline import AlarmPipeline, scope_index
from alarms.rules import AlarmSettings, ThresholdRule, rule_for
from alarms.stages import (
    DebounceState,
    Signal,
    debounce,
    debounce_due,
    dedupe,
    observe,
)
from collectors.model import Observation
from config.inventory.loader import load_inventory
from keyline.wiring import EXAMPLE_INVENTORY
from topology.current import topology_from
from topology.graph import Element, build_graph, snapshot_from_inventory
from topology.impact import build_index
from topology.paths import compute_paths

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def port_obs(port: int, new: str, seconds: float, old: str | None = "up") -> Observation:
    return Observation(at(seconds), port, "oper_status", old, new, "trap")


def device_obs(device: int, new: str, seconds: float) -> Observation:
    return Observation(at(seconds), device, "reachability", "reachable", new, "poll")


SETTINGS = AlarmSettings(raise_after_s=2, clear_after_s=5, flap_max_changes=4,
                         flap_window_s=60, event_hold_s=30)


# --- observe, rules ------------------------------------------------------------------------


def test_observe_turns_observations_into_signals() -> None:
    (down,) = observe(port_obs(7, "lowerLayerDown", 0))
    assert down.key == AlarmKey(ObjectKind.PORT, 7, AlarmType.LINK_DOWN) and down.active
    (up,) = observe(port_obs(7, "up", 1, old="down"))
    assert not up.active
    assert observe(port_obs(7, "testing", 1)) == []
    signals = observe(device_obs(3, "unreachable", 0))
    assert [(s.key.type, s.active) for s in signals] == [
        (AlarmType.SNMP_UNRESPONSIVE, False), (AlarmType.POLL_FAILED, False),
        (AlarmType.DEVICE_UNREACHABLE, True)]
    assert signals[-1].severity is Severity.CRITICAL
    # SNMP silent while the device answers ping: its own alarm, not "down"
    signals = observe(device_obs(3, "snmp-unresponsive", 0))
    assert [(s.key.type, s.active) for s in signals] == [
        (AlarmType.DEVICE_UNREACHABLE, False), (AlarmType.POLL_FAILED, False),
        (AlarmType.SNMP_UNRESPONSIVE, True)]
    (event,) = observe(Observation(at(0), 3, "agent_restart", None, "restarted", "trap"))
    assert event.event and event.key.qualifier == "agent_restart"


def test_a_below_rule_needs_its_clearing_level_above() -> None:
    with pytest.raises(ValueError, match="clear_above"):
        ThresholdRule(metric="m", raise_at=-25, clear_above=-30, direction="below")
    with pytest.raises(ValueError, match="clear_above"):
        ThresholdRule(metric="m", raise_at=-25, clear_below=-23, direction="below")


def test_threshold_rules_per_class_and_tier() -> None:
    rules = [ThresholdRule(metric="m", raise_at=90, clear_below=80),
             ThresholdRule(metric="m", raise_at=70, clear_below=60, sla_tier="gold"),
             ThresholdRule(metric="m", raise_at=50, clear_below=40, object_class="circuit")]
    assert rule_for(rules, "m", "port", "gold").raise_at == 70
    assert rule_for(rules, "m", "port", "bronze").raise_at == 90
    assert rule_for(rules, "m", "port", None).raise_at == 90
    assert rule_for(rules, "m", "circuit", None).raise_at == 50
    assert rule_for(rules, "other", "port", None) is None
    with pytest.raises(ValueError, match="clear_below"):
        ThresholdRule(metric="m", raise_at=80, clear_below=90)
    with pytest.raises(ValueError, match="severity"):
        ThresholdRule(metric="m", raise_at=80, clear_below=70, severity="fatal")


# --- debounce and dedupe -------------------------------------------------------------------


def signal(active: bool, seconds: float, port: int = 7) -> Signal:
    return Signal(AlarmKey(ObjectKind.PORT, port, AlarmType.LINK_DOWN), active, at(seconds))


def test_debounce_raises_only_after_the_condition_held() -> None:
    state = DebounceState()
    assert debounce(state, signal(True, 0), SETTINGS, at(0)) == []
    assert debounce_due(state, SETTINGS, at(1.9)) == []
    (raised,) = debounce_due(state, SETTINGS, at(2.0))
    assert raised.active and raised.time == at(0)  # the condition's start, not the delay's end
    # a clear that does not last is forgotten
    assert debounce(state, signal(False, 10), SETTINGS, at(10)) == []
    (repeat,) = debounce(state, signal(True, 12), SETTINGS, at(12))
    assert repeat.active  # back before the clear delay: the same alarm, seen again
    assert debounce_due(state, SETTINGS, at(20)) == []
    assert debounce(state, signal(False, 30), SETTINGS, at(30)) == []
    assert debounce_due(state, SETTINGS, at(34.9)) == []
    (cleared,) = debounce_due(state, SETTINGS, at(35))
    assert not cleared.active and cleared.time == at(30)


def test_a_blip_shorter_than_the_raise_delay_raises_nothing() -> None:
    state = DebounceState()
    debounce(state, signal(True, 0), SETTINGS, at(0))
    debounce(state, signal(False, 1), SETTINGS, at(1))
    assert debounce_due(state, SETTINGS, at(100)) == []


def test_a_flapping_port_raises_one_flapping_alarm_instead_of_many() -> None:
    pipeline = AlarmPipeline(SETTINGS)
    changes = []
    for n in range(12):  # down/up every 3 s: each state outlasts the raise delay
        changes += pipeline.process([port_obs(7, "down" if n % 2 == 0 else "up", 3 * n)],
                                    at(3 * n))
        changes += pipeline.tick(at(3 * n + 2.5))
    raised = [c.alarm.key.type for c in changes if c.event == "raised"]
    assert raised.count(AlarmType.FLAPPING) == 1
    assert raised.count(AlarmType.LINK_DOWN) <= 3  # before the fifth change, at most
    assert {k.type for k in pipeline.active} == {AlarmType.FLAPPING}
    # quiet for a window (the port stayed up): flapping clears, nothing else is left
    pipeline.tick(at(33 + 61))
    assert pipeline.active == {}


def test_dedupe_one_active_alarm_per_key_and_repeats_count() -> None:
    from alarms.stages import Transition
    active: dict = {}
    key = AlarmKey(ObjectKind.PORT, 7, AlarmType.LINK_DOWN)
    first = dedupe(active, Transition(key, True, at(0)))
    again = dedupe(active, Transition(key, True, at(5)))
    assert first.event == "raised" and again.event == "updated"
    assert first.alarm is again.alarm and again.alarm.count == 2
    assert again.alarm.last_seen == at(5) and again.alarm.first_seen == at(0)
    gone = dedupe(active, Transition(key, False, at(9)))
    assert gone.event == "cleared" and gone.alarm.state is AlarmState.CLEARED
    assert dedupe(active, Transition(key, False, at(10))) is None
    new = dedupe(active, Transition(key, True, at(11)))
    assert new.event == "raised" and new.alarm is not first.alarm  # a new occurrence


def test_trap_events_raise_at_once_and_clear_after_the_hold() -> None:
    pipeline = AlarmPipeline(SETTINGS)
    (change,) = pipeline.process(
        [Observation(at(0), 3, "agent_restart", None, "restarted", "trap")], at(0))
    assert change.event == "raised" and change.alarm.severity is Severity.WARNING
    assert pipeline.tick(at(29)) == []
    (cleared,) = pipeline.tick(at(30))
    assert cleared.event == "cleared"


# --- correlate on the example network ------------------------------------------------------


@pytest.fixture(scope="module")
def example():
    snapshot = snapshot_from_inventory(load_inventory([EXAMPLE_INVENTORY]))
    graph = build_graph(snapshot)
    paths = compute_paths(graph, snapshot)
    index = build_index(graph, snapshot, paths)
    return snapshot, graph, index


def healthy(snapshot, seconds: float = -30) -> list[Observation]:
    """Every device answering and every port up: the picture before a fault."""
    return ([Observation(at(seconds), d, "reachability", None, "reachable", "poll")
             for d in snapshot.devices]
            + [Observation(at(seconds), p, kind, None, "up", "poll")
               for p in snapshot.ports for kind in ("oper_status", "admin_status")])


def live_pipeline(snapshot) -> AlarmPipeline:
    """A pipeline on the live topology of the example, every device and port up, every
    circuit's state taken as up."""
    pipeline = AlarmPipeline(SETTINGS, topology=topology_from(snapshot))
    pipeline.process(healthy(snapshot), at(-30))
    pipeline.tick(at(-10))
    assert {str(t.verdict.state) for t in pipeline.circuit_states.committed.values()} == {"up"}
    return pipeline


def facing_ports(graph, device_id: int) -> list[int]:
    return sorted(d["a_port_id"] if d["z_device_id"] == device_id else d["z_port_id"]
                  for _, _, d in graph.edges(device_id, data=True))


def test_a_p_router_down_is_one_root_cause_with_symptoms_and_service_alarms(example) -> None:
    snapshot, graph, _index = example
    p_sh1 = snapshot.ids("devices")["p-sh1"]
    far = facing_ports(graph, p_sh1)
    pipeline = live_pipeline(snapshot)
    pipeline.process([port_obs(p, "down", 0) for p in far], at(0))
    pipeline.process([device_obs(p_sh1, "unreachable", 1)], at(1))
    pipeline.tick(at(5))
    root = pipeline.active[AlarmKey(ObjectKind.DEVICE, p_sh1, AlarmType.DEVICE_UNREACHABLE)]
    by_type: dict = {}
    for alarm in pipeline.active.values():
        by_type.setdefault(alarm.key.type, []).append(alarm)
    assert set(by_type) == {AlarmType.DEVICE_UNREACHABLE, AlarmType.LINK_DOWN,
                            AlarmType.SERVICE_DOWN}
    assert root.root_cause is None
    assert sorted(a.key.object_id for a in by_type[AlarmType.LINK_DOWN]) == far
    assert all(a.root_cause == root.key for a in by_type[AlarmType.LINK_DOWN])
    through = {c.id for c in snapshot.circuits.values()
               if any(h.device_id == p_sh1 for h in c.hops)}
    services = {a.key.object_id: a for a in by_type[AlarmType.SERVICE_DOWN]}
    assert through <= set(services) == set(root.impacted_circuits)
    for circuit_id, alarm in services.items():
        assert alarm.root_cause == root.key
        assert alarm.impacted_customers == {snapshot.circuits[circuit_id].customer_id}
    assert root.impacted_customers == {snapshot.circuits[c].customer_id for c in services}
    # while only the neighbours had seen it, the device was inferred; now it is the real one
    assert AlarmKey(ObjectKind.DEVICE, p_sh1, AlarmType.DEVICE_ISOLATED) not in pipeline.active
    # it comes back: everything clears, the service alarms before the root cause
    cleared = pipeline.process([device_obs(p_sh1, "reachable", 60)]
                               + [port_obs(p, "up", 60, old="down") for p in far], at(60))
    cleared += pipeline.tick(at(66))
    assert pipeline.active == {}
    order = [c.alarm.key.type for c in cleared if c.event == "cleared"]
    assert order.index(AlarmType.DEVICE_UNREACHABLE) > max(
        i for i, t in enumerate(order) if t is AlarmType.SERVICE_DOWN)


def test_both_ends_of_a_link_down_is_one_inferred_link_alarm(example) -> None:
    snapshot, _graph, _index = example
    ports, links = snapshot.ids("ports"), snapshot.ids("links")
    a, z = ports["p-bj1:Eth-Trunk2"], ports["p-sh1:Eth-Trunk2"]
    pipeline = live_pipeline(snapshot)
    pipeline.process([port_obs(a, "down", 0), port_obs(z, "down", 0)], at(0))
    pipeline.tick(at(2))
    link_key = AlarmKey(ObjectKind.LINK, links["p-bj1:Eth-Trunk2--p-sh1:Eth-Trunk2"],
                        AlarmType.LINK_DOWN)
    assert link_key not in pipeline.active  # an inference waits infer_after_s (2 s)
    pipeline.tick(at(3.9))
    assert link_key not in pipeline.active
    pipeline.tick(at(4))
    link = pipeline.active[link_key]
    assert {snapshot.circuits[c].key for c in link.impacted_circuits} == {
        "HSB-L3VPN-0001", "XH-L3VPN-0001"}
    for port in (a, z):
        assert pipeline.active[AlarmKey(ObjectKind.PORT, port, AlarmType.LINK_DOWN)
                               ].root_cause == link_key


# --- service alarms over live paths ----------------------------------------------------------


def _crosses(circuit, a_port: int, z_port: int) -> bool:
    """Whether a circuit's declared hops cross the link between these two ports."""
    return any({prev.out_port_id, hop.in_port_id} == {a_port, z_port}
               for prev, hop in zip(circuit.hops, circuit.hops[1:], strict=False))


def _expected_out_of_service(snapshot, graph, a_port: int, z_port: int) -> set[int]:
    """Independently of the code under test: the declared circuits over the link, and the
    computed ones with no route at all once the link is gone (networkx, structure only)."""
    without = graph.copy()
    for u, v, key, data in graph.edges(keys=True, data=True):
        if {data["a_port_id"], data["z_port_id"]} == {a_port, z_port}:
            without.remove_edge(u, v, key)
    expected = set()
    for circuit in snapshot.circuits.values():
        if circuit.hops:
            if _crosses(circuit, a_port, z_port):
                expected.add(circuit.id)
            continue
        a = snapshot.ports[circuit.a_port_id].device_id
        z = snapshot.ports[circuit.z_port_id].device_id
        if not nx.has_path(without, a, z):
            expected.add(circuit.id)
    return expected


def _link_down_and_back(example, link_name: str) -> tuple[dict, list, AlarmPipeline]:
    """Both ends of a link go down at 0 and come back at 60 (the pipeline keeps its
    topology live): (the active alarms while down: key -> (root cause, impacted circuits),
    every change, the pipeline)."""
    snapshot, _graph, _ = example
    ports = snapshot.ids("ports")
    a, z = (ports[name] for name in link_name.split("--"))
    pipeline = live_pipeline(snapshot)
    changes = pipeline.process([port_obs(a, "down", 0), port_obs(z, "down", 0)], at(0))
    for second in (2, 4, 10):
        changes += pipeline.tick(at(second))
    down = {k: (a.root_cause, a.impacted_circuits) for k, a in pipeline.active.items()}
    # back up: computed paths move back over the link at once, its alarm clears 5 s later
    changes += pipeline.process([port_obs(a, "up", 60, "down"), port_obs(z, "up", 60, "down")],
                                at(60))
    for second in (62, 65, 66):
        changes += pipeline.tick(at(second))
    return down, changes, pipeline


def _services(active: dict) -> set[int]:
    return {key.object_id for key in active if key.type is AlarmType.SERVICE_DOWN}


def test_a_computed_circuit_rerouted_around_a_failed_link_is_not_out_of_service(
        example) -> None:
    snapshot, graph, index = example
    name = "p-sh1:XGigabitEthernet0/1/1--pe-sh1:XGigabitEthernet0/1/0"
    ports, circuits = snapshot.ids("ports"), snapshot.ids("circuits")
    a, z = (ports[p] for p in name.split("--"))
    rerouted, declared = circuits["XH-LL-0001"], circuits["XH-L3VPN-0001"]
    # before the failure both run over the link: one computed, one declared
    link = snapshot.ids("links")[name]
    assert {rerouted, declared} <= index.users[Element("link", link)]
    assert not snapshot.circuits[rerouted].hops and _crosses(snapshot.circuits[declared], a, z)
    expected = _expected_out_of_service(snapshot, graph, a, z)
    assert declared in expected and rerouted not in expected
    down, changes, pipeline = _link_down_and_back(example, name)
    assert _services(down) == expected
    raised = {c.alarm.key.object_id for c in changes
              if c.event == "raised" and c.alarm.key.type is AlarmType.SERVICE_DOWN}
    assert raised == expected  # nothing for the rerouted one, not even when it moves back
    assert pipeline.active == {}
    link_key = AlarmKey(ObjectKind.LINK, link, AlarmType.LINK_DOWN)
    assert down[link_key] == (None, expected)  # the cause's impact: what it put out of service
    assert {down[AlarmKey(ObjectKind.CIRCUIT, c, AlarmType.SERVICE_DOWN)][0]
            for c in expected} == {link_key}


def test_a_computed_circuit_that_cannot_reroute_is_out_of_service(example) -> None:
    snapshot, graph, _ = example
    name = "ce-xinhe-bj-dc:GigabitEthernet0/0/0--pe-bj1:GigabitEthernet0/0/2"
    ports, circuits = snapshot.ids("ports"), snapshot.ids("circuits")
    a, z = (ports[p] for p in name.split("--"))
    expected = _expected_out_of_service(snapshot, graph, a, z)
    # the site's only uplink: its computed circuits have no route left, the declared one
    # runs over it
    assert {circuits["XH-INET-0003"], circuits["XH-LL-0001"],
            circuits["XH-L3VPN-0001"]} <= expected
    down, changes, pipeline = _link_down_and_back(example, name)
    assert _services(down) == expected
    link_key = AlarmKey(ObjectKind.LINK, snapshot.ids("links")[name], AlarmType.LINK_DOWN)
    service_alarms = [c.alarm for c in changes if c.alarm.key.type is AlarmType.SERVICE_DOWN]
    assert {a.key.object_id for a in service_alarms} == expected
    assert all(a.root_cause == link_key for a in service_alarms)
    assert all(a.impacted_customers == {snapshot.circuits[a.key.object_id].customer_id}
               for a in service_alarms)
    assert pipeline.active == {}
    cleared = [c.alarm.key for c in changes if c.event == "cleared"]
    assert cleared.index(link_key) > max(cleared.index(a.key) for a in service_alarms)


# --- suppress --------------------------------------------------------------------------------


def test_alarms_inside_a_maintenance_window_are_suppressed_with_their_symptoms(example) -> None:
    snapshot, graph, index = example
    p_sh1 = snapshot.ids("devices")["p-sh1"]
    pipeline = AlarmPipeline(SETTINGS, index=index, scope=scope_index(snapshot, index))
    window = MaintenanceWindow(1, (ScopeItem("device", p_sh1, "p-sh1"),), at(10), at(100),
                               "line card swap", "alice")
    pipeline.set_windows([window])
    pipeline.process([device_obs(p_sh1, "unreachable", 0)], at(0))
    pipeline.process([port_obs(p, "down", 0) for p in facing_ports(graph, p_sh1)], at(0))
    pipeline.tick(at(5))
    assert not any(a.suppressed for a in pipeline.active.values())  # not begun yet
    changes = pipeline.tick(at(10))
    assert all(a.suppressed_by == {1} for a in pipeline.active.values())
    assert any(e.action == "suppressed" for c in changes for e in c.entries)
    pipeline.tick(at(100))
    assert not any(a.suppressed for a in pipeline.active.values())


# --- recovery --------------------------------------------------------------------------------


def test_restore_keeps_true_alarms_and_clears_those_gone_meanwhile() -> None:
    still = AlarmKey(ObjectKind.PORT, 7, AlarmType.LINK_DOWN)
    gone = AlarmKey(ObjectKind.PORT, 8, AlarmType.LINK_DOWN)
    alarms = [Alarm(still, Severity.MAJOR, at(0), at(0), id=1),
              Alarm(gone, Severity.MAJOR, at(0), at(0), id=2)]
    latest = [port_obs(7, "down", 0), port_obs(8, "up", 50, old="down"),
              port_obs(9, "down", 59)]  # 9 went down just before the restart
    pipeline = AlarmPipeline(SETTINGS)
    pipeline.restore(alarms, latest, at(60))
    changes = pipeline.tick(at(60))
    assert [(c.alarm.key.object_id, c.event) for c in changes] == [(8, "cleared")]
    changes = pipeline.tick(at(61))
    assert [(c.alarm.key.object_id, c.event) for c in changes] == [(9, "raised")]
    assert set(pipeline.active) == {still, AlarmKey(ObjectKind.PORT, 9, AlarmType.LINK_DOWN)}
    assert pipeline.active[still].count == 1


def test_an_alarm_cleared_by_hand_whose_condition_holds_comes_back_as_a_new_one() -> None:
    pipeline = AlarmPipeline(SETTINGS)
    pipeline.process([port_obs(7, "down", 0)], at(0))
    (raised,) = pipeline.tick(at(2))
    raised.alarm.id = 41  # as stored
    assert pipeline.forget_id(41, at(10))
    assert pipeline.active == {} and pipeline.tick(at(11)) == []
    (again,) = pipeline.tick(at(12))
    assert again.event == "raised" and again.alarm is not raised.alarm
    # one whose condition had gone (its clear pending) is simply dropped
    pipeline.process([port_obs(7, "up", 20, old="down")], at(20))
    again.alarm.id = 42
    assert pipeline.forget_id(42, at(21))
    assert pipeline.tick(at(40)) == [] and pipeline.debounce.conditions == {}
