"""The alarm pipeline end to end on the simulated network: polls and traps into observations
(CollectionService), observations into alarms (AlarmService), against a real store.

A P router taken down (no SNMP, no ping: the simulator's blackhole, which needs root) yields
one device alarm as root cause, its neighbours' link alarms as symptoms and one service alarm
per circuit it leaves without a working path (declared paths through it; computed paths that
cannot reroute around it) with the right customers, and no alarm for the computed circuits
that reroute; bringing it back clears them all, symptoms before the cause. A circuit's end
port down gives exactly one service alarm, for that circuit and its customer. A device whose
SNMP agent refuses the poller (a community changed on the device) while it answers ping is
SNMP-unresponsive, never down: its circuits are unknown. A flapping port yields one flapping
alarm; an alarm inside a maintenance window is suppressed; a service killed mid-incident
restarts with exactly the same active alarms.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import networkx as nx
import pytest

from alarms.model import AlarmType, ObjectKind
from alarms.rules import AlarmSettings
from alarms.service import AlarmService
from collectors.service import CollectionService
from config.inventory.model import Inventory
from lab.sim.network import SimulatedNetwork
from store import alarms as alarm_store
from store.database import Database
from store.events import events_since
from store.topology import current_discovered_links
from tests import test_collection_service as collection_fixtures
from tests.test_collection_service import a_linked_port, make_service, port_id, wait_for
from topology.graph import build_graph, load_snapshot
from topology.paths import compute_paths

# An unreachable device is known after up to an interval and two timeouts (4 s), its
# neighbours' traps at once: the inference that it is isolated waits longer than that.
# the simulated network and a store holding its inventory, as the collection tests make them
inventory = collection_fixtures.inventory
environ = collection_fixtures.environ
trap_port = collection_fixtures.trap_port
network = collection_fixtures.network
store = collection_fixtures.store

SETTINGS = AlarmSettings(raise_after_s=1.0, clear_after_s=2.0, infer_after_s=6.0,
                         flap_max_changes=4,
                         flap_window_s=30, tick_interval_s=0.1, thresholds=[])
P_ROUTER = "p-sh1"


@pytest.fixture
def collection(network: SimulatedNetwork, store: Database, environ: dict[str, str],
               trap_port: int, tmp_path: Path) -> Iterator[CollectionService]:
    service = make_service(store, environ, tmp_path, interval_s=2.0, traps_port=trap_port,
                           timeout_s=1.0, retries=1)
    with service:
        # the starting picture: every device reachable, recorded
        wait_for(lambda: _count(store, "SELECT count(*) FROM device_poll_status"
                                " WHERE status = 'reachable'") == len(network.inventory.devices),
                 timeout_s=20)
        yield service


def _count(store: Database, query: str) -> int:
    with store.pool.connection() as conn:
        return conn.execute(query).fetchone()[0]


def active(store: Database) -> list:
    with store.pool.connection() as conn:
        return alarm_store.active_alarms(conn)


def by_type(alarms: list) -> dict[AlarmType, list]:
    found: dict[AlarmType, list] = {}
    for alarm in alarms:
        found.setdefault(alarm.key.type, []).append(alarm)
    return found


def expected_incident(store: Database, device_key: str) -> tuple[int, set[int], set[int], dict]:
    """(device id, far ports, circuits out of service, circuit -> customer), from the
    topology the service uses (inventory, accepted and discovered links) but independently
    of the alarm code: a circuit is out of service when its declared path crosses the device,
    or when it has a computed path and no route is left once the device is gone (one that
    reroutes around it gets no alarm: alarms.stages)."""
    with store.pool.connection() as conn:
        snapshot = load_snapshot(conn, accepted=True)
        discovered = [link.port_ids for link in current_discovered_links(conn)]
    graph = build_graph(snapshot, discovered=discovered)
    device = snapshot.ids("devices")[device_key]
    far = {d["a_port_id"] if d["z_device_id"] == device else d["z_port_id"]
           for _, _, d in graph.edges(device, data=True)}
    without = nx.Graph(graph)
    without.remove_node(device)
    circuits = set()
    for circuit in snapshot.circuits.values():
        if circuit.hops:
            if any(hop.device_id == device for hop in circuit.hops):
                circuits.add(circuit.id)
            continue
        a = snapshot.ports[circuit.a_port_id].device_id
        z = snapshot.ports[circuit.z_port_id].device_id
        if device in (a, z) or not nx.has_path(without, a, z):
            circuits.add(circuit.id)
    customers = {c: snapshot.circuits[c].customer_id for c in circuits}
    return device, far, circuits, customers


def incident_settled(store: Database, device: int, far: set[int], circuits: set[int]):
    alarms = active(store)
    found = by_type(alarms)
    ok = (
        [a.key.object_id for a in found.get(AlarmType.DEVICE_UNREACHABLE, [])] == [device]
        and {a.key.object_id for a in found.get(AlarmType.LINK_DOWN, [])} == far
        and {a.key.object_id for a in found.get(AlarmType.SERVICE_DOWN, [])} == circuits
        and set(found) == {AlarmType.DEVICE_UNREACHABLE, AlarmType.LINK_DOWN,
                           AlarmType.SERVICE_DOWN}
        and all(a.root_cause_id is not None for a in alarms if a.key.object_id != device))
    return alarms if ok else None


def needs_blackhole(network: SimulatedNetwork) -> None:
    if not network.can_vanish:
        pytest.skip("a simulated device answers ping unless root can blackhole its address "
                    "with nftables: without, it is SNMP-unresponsive, not down")


def circuit_states_now(store: Database) -> dict[str, tuple[str, str]]:
    """circuit key -> (state, cause) as stored (store.circuit_states)."""
    with store.pool.connection() as conn:
        return {key: (state, cause) for key, state, cause in conn.execute(
            """SELECT DISTINCT ON (s.circuit_id) c.key, s.state, s.cause FROM circuit_states s
                 JOIN circuits c ON c.id = s.circuit_id
                ORDER BY s.circuit_id, s.time DESC, s.id DESC""").fetchall()}


def test_a_circuit_end_port_down_gives_exactly_one_service_alarm(
        network: SimulatedNetwork, store: Database, collection: CollectionService) -> None:
    device, port = "ce-hsbank-sh-hq", "GigabitEthernet0/0/5"  # HSB-INET-0001's A end, no link
    port_key = port_id(store, device, port)
    with store.pool.connection() as conn:
        circuit, customer = conn.execute(
            "SELECT id, customer_id FROM circuits WHERE a_port_id = %s OR z_port_id = %s",
            [port_key, port_key]).fetchone()
    with AlarmService(store.pool, store.url, SETTINGS) as service:
        wait_for(lambda: set(v[0] for v in circuit_states_now(store).values()) == {"up"}, 15)
        try:
            network.set_port_status(device, port, "down")
            found = wait_for(lambda: by_type(active(store)).get(AlarmType.SERVICE_DOWN), 10)
            time.sleep(SETTINGS.raise_after_s + 0.5)  # nothing more comes
            alarms = active(store)
            services = by_type(alarms)[AlarmType.SERVICE_DOWN]
            assert [a.key.object_id for a in services] == [circuit] == [
                a.key.object_id for a in found]
            (service_alarm,) = services
            assert service_alarm.impacted_customers == {customer}
            (port_alarm,) = by_type(alarms)[AlarmType.LINK_DOWN]
            assert port_alarm.key.object_id == port_key
            assert service_alarm.root_cause_id == port_alarm.id
            assert port_alarm.impacted_circuits == {circuit}
            assert "down at the A end (CE ce-hsbank-sh-hq)" in service_alarm.summary
            assert circuit_states_now(store)["HSB-INET-0001"][0] == "down"
        finally:
            network.set_port_status(device, port, "up")
        wait_for(lambda: active(store) == [], 10)
        assert circuit_states_now(store)["HSB-INET-0001"][0] == "up"
        assert service.stats.errors == 0


def test_snmp_refused_by_a_live_device_is_unresponsive_and_its_circuits_unknown(
        network: SimulatedNetwork, store: Database, collection: CollectionService) -> None:
    device = "ce-hsbank-bj-dc"
    with store.pool.connection() as conn:
        (device_id,) = conn.execute("SELECT id FROM devices WHERE key = %s",
                                    [device]).fetchone()
        ending = {key for (key,) in conn.execute(
            """SELECT DISTINCT c.key FROM circuits c JOIN ports p
                   ON p.id IN (c.a_port_id, c.z_port_id)
                WHERE p.device_id = %s AND c.retired_at IS NULL""", [device_id])}
    assert ending
    with AlarmService(store.pool, store.url, SETTINGS):
        wait_for(lambda: set(v[0] for v in circuit_states_now(store).values()) == {"up"}, 15)
        try:
            assert network.set_snmp_status(device, "down")  # as a community change does
            silent = wait_for(lambda: by_type(active(store)).get(AlarmType.SNMP_UNRESPONSIVE),
                              20)
            (alarm,) = silent
            assert alarm.key.object_id == device_id
            assert "community" in alarm.detail["hint"] and "ICMP echo" in alarm.detail["reason"]
            states = wait_for(lambda: (lambda s: s if all(
                s[key][0] == "unknown" for key in ending) else None)(circuit_states_now(store)),
                10)
            assert {key for key, (state, _) in states.items() if state != "up"} == ending
            alarms = active(store)
            assert {a.key.type for a in alarms} == {AlarmType.SNMP_UNRESPONSIVE}
            with store.pool.connection() as conn:
                ids = dict(conn.execute("SELECT key, id FROM circuits").fetchall())
            assert alarms[0].impacted_circuits == {ids[key] for key in ending}
        finally:
            network.set_snmp_status(device, "up")
        wait_for(lambda: active(store) == [], 15)
        wait_for(lambda: set(v[0] for v in circuit_states_now(store).values()) == {"up"}, 10)
    with store.pool.connection() as conn:
        kinds = {row[0] for row in conn.execute(
            "SELECT DISTINCT type FROM alarms WHERE object_id = %s", [device_id])}
    assert kinds == {"snmp_unresponsive"}  # never called down


def test_a_p_router_down_is_one_root_cause_and_coming_back_clears_all(
        network: SimulatedNetwork, store: Database, collection: CollectionService) -> None:
    needs_blackhole(network)
    device, far, circuits, customers = expected_incident(store, P_ROUTER)
    assert len(far) >= 3 and circuits
    # some computed circuits ran through the router and reroute: they get no service alarm
    with store.pool.connection() as conn:
        snapshot = load_snapshot(conn, accepted=True)
    graph = build_graph(snapshot)
    through = {c for c, p in compute_paths(graph, snapshot).items()
               if any(h.device_id == device for h in p.hops)}
    assert through - circuits
    with AlarmService(store.pool, store.url, SETTINGS) as service:
        assert active(store) == []
        try:
            assert network.set_device_status(P_ROUTER, "down")
            assert not network.set_device_status(P_ROUTER, "down")
            # the simulator's device fault: silent agent, its ports and the facing ones down
            assert network.down_devices() == [P_ROUTER]
            router_ports = [f"{P_ROUTER}:{p.name}" for p in
                            network.inventory.devices[P_ROUTER].ports]
            assert set(router_ports) <= set(network.down_ports())
            alarms = wait_for(lambda: incident_settled(store, device, far, circuits), 15)
            (root,) = [a for a in alarms if a.key.object_id == device]
            assert root.key.kind is ObjectKind.DEVICE and root.root_cause_id is None
            assert root.impacted_circuits == circuits
            assert root.impacted_customers == set(customers.values())
            for alarm in alarms:
                if alarm is not root:
                    assert alarm.root_cause_id == root.id, alarm
                if alarm.key.type is AlarmType.SERVICE_DOWN:
                    assert alarm.impacted_customers == {customers[alarm.key.object_id]}
            # stable: nothing more is raised while the router stays down
            time.sleep(1.5)
            assert {str(a.key) for a in active(store)} == {str(a.key) for a in alarms}
        finally:
            network.set_device_status(P_ROUTER, "up")
        wait_for(lambda: active(store) == [], 15)
        assert service.stats.errors == 0
        assert network.down_devices() == [] and network.down_ports() == []
    with store.pool.connection() as conn:
        ids = [a.id for a in alarms]
        cleared = dict(conn.execute("SELECT id, cleared_at FROM alarms WHERE id = ANY(%s)",
                                    [ids]).fetchall())
        # every raise was one of these: no transient inferred cause, no duplicate
        others = conn.execute("SELECT type, object_id FROM alarms WHERE NOT id = ANY(%s)",
                              [ids]).fetchall()
    assert others == []
    symptoms_cleared = max(cleared[a.id] for a in alarms if a is not root)
    assert cleared[root.id] >= symptoms_cleared


def test_a_flapping_port_yields_one_flapping_alarm(
        network: SimulatedNetwork, store: Database, collection: CollectionService,
        inventory: Inventory) -> None:
    device, port = a_linked_port(inventory, "PE")
    object_id = port_id(store, device, port)
    with AlarmService(store.pool, store.url, SETTINGS):
        try:
            for n in range(8):  # quicker than the raise delay: only flap detection sees it
                network.set_port_status(device, port, "down" if n % 2 == 0 else "up")
                time.sleep(0.15)
        finally:
            network.set_port_status(device, port, "up")
        alarms = wait_for(lambda: by_type(active(store)).get(AlarmType.FLAPPING), 5)
        time.sleep(SETTINGS.raise_after_s + 0.5)
        with store.pool.connection() as conn:
            raised = conn.execute("SELECT type, object_id FROM alarms WHERE object_id = %s",
                                  [object_id]).fetchall()
    assert [a.key.object_id for a in alarms] == [object_id]
    assert raised == [("flapping", object_id)]


def test_an_alarm_inside_a_maintenance_window_is_suppressed(
        network: SimulatedNetwork, store: Database, collection: CollectionService,
        inventory: Inventory) -> None:
    device, port = a_linked_port(inventory, "PE")
    with store.pool.connection() as conn:
        t = conn.execute("SELECT now()").fetchone()[0]
        window = alarm_store.add_window(
            conn, alarm_store.resolve_scope(conn, [f"device:{device}"]),
            t - timedelta(minutes=5), t + timedelta(hours=1), "optics swap", "alice")
    with AlarmService(store.pool, store.url, SETTINGS):
        try:
            network.set_port_status(device, port, "down")
            alarms = wait_for(lambda: by_type(active(store)).get(AlarmType.LINK_DOWN), 5)
        finally:
            network.set_port_status(device, port, "up")
    (alarm,) = [a for a in alarms if a.key.object_id == port_id(store, device, port)]
    assert alarm.suppressed and alarm.suppressed_by == {window.id}


# An alarm service in a process of its own, to be killed with SIGKILL.
SERVICE_PROCESS = """
import sys, time
from pathlib import Path
from alarms.rules import AlarmSettings
from alarms.service import AlarmService
from store.database import open_database
url, settings, scratch = sys.argv[1], AlarmSettings.model_validate_json(sys.argv[2]), sys.argv[3]
database = open_database(url, Path(scratch), min_size=1, max_size=3)
AlarmService(database.pool, database.url, settings).start()
print("ready", flush=True)
while True:
    time.sleep(1)
"""


def start_service_process(store: Database, tmp_path: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVICE_PROCESS, store.url, SETTINGS.model_dump_json(),
         str(tmp_path)], stdout=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parent.parent)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def test_killed_mid_incident_the_restarted_service_keeps_the_same_active_alarms(
        network: SimulatedNetwork, store: Database, collection: CollectionService,
        tmp_path: Path) -> None:
    needs_blackhole(network)
    device, far, circuits, _ = expected_incident(store, P_ROUTER)
    processes = [start_service_process(store, tmp_path)]
    try:
        network.set_device_status(P_ROUTER, "down")
        before = wait_for(lambda: incident_settled(store, device, far, circuits), 15)
        processes[0].send_signal(signal.SIGKILL)  # mid-incident, no chance to clean up
        processes[0].wait(5)
        with store.pool.connection() as conn:
            mark = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
        time.sleep(1.5)  # polls and traps go on meanwhile
        processes.append(start_service_process(store, tmp_path))
        time.sleep(SETTINGS.clear_after_s + 2.0)  # longer than any debounce delay
        after = active(store)
        with store.pool.connection() as conn:
            alarm_events = [e for e in events_since(conn, mark, 10_000)
                            if e.topic.startswith("alarm.")]
        assert {a.id for a in after} == {a.id for a in before}
        assert [e.topic for e in alarm_events if e.topic != "alarm.updated"] == []
        processes[1].send_signal(signal.SIGKILL)
        processes[1].wait(5)
        # the router comes back while no alarm service runs: the next one clears everything
        network.set_device_status(P_ROUTER, "up")
        time.sleep(2.5)  # the collector records the recovery
        with AlarmService(store.pool, store.url, SETTINGS) as third:
            wait_for(lambda: active(store) == [], 10)
            assert third.stats.errors == 0
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(5)
        network.set_device_status(P_ROUTER, "up")
