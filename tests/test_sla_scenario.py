"""Tickets end to end on the simulated network: polls and traps into observations
(CollectionService), observations into alarms and circuit states (AlarmService), states into
tickets (TicketService), against a real store.

A circuit's end port down opens one ticket for its customer and one NOC incident;
acknowledging the incident meets both response clocks; the port back up resolves both at the
moment the circuit was back in service. A P router down (root: the simulator's blackhole)
opens one ticket per impacted customer with exactly its impacted circuits, and one incident
listing them all. A fault inside a maintenance window opens nothing.

The expected circuits come from the topology, worked out independently of the ticket code
(tests/test_alarms_scenarios.py `expected_incident`); the expected deadlines from the
contracts' priority matrix in the example inventory, counted on each contract's calendar
(bronze runs on business hours in Shanghai).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from alarms.service import AlarmService
from lab.sim.network import SimulatedNetwork
from sla import tickets
from sla.calendar import add_business_seconds, calendar_of
from sla.service import TicketService
from sla.settings import SlaSettings
from store import alarms as alarm_store
from store.database import Database
from store.queries import Viewer
from tests import test_collection_service as collection_fixtures
from tests.test_alarms_scenarios import (
    SETTINGS as ALARM_SETTINGS,
)
from tests.test_alarms_scenarios import (
    circuit_states_now,
    expected_incident,
    needs_blackhole,
)
from tests.test_collection_service import make_service, wait_for

inventory = collection_fixtures.inventory
environ = collection_fixtures.environ
trap_port = collection_fixtures.trap_port
network = collection_fixtures.network
store = collection_fixtures.store

SLA_SETTINGS = SlaSettings(tick_interval_s=0.5)
PORT = ("ce-hsbank-sh-hq", "GigabitEthernet0/0/5")  # HSB-INET-0001's A end, no link


@pytest.fixture
def services(network: SimulatedNetwork, store: Database, environ: dict[str, str],
             trap_port: int, tmp_path: Path) -> Iterator[TicketService]:
    collection = make_service(store, environ, tmp_path, interval_s=2.0, traps_port=trap_port,
                              timeout_s=1.0, retries=1)
    with collection, AlarmService(store.pool, store.url, ALARM_SETTINGS), \
            TicketService(store.pool, store.url, SLA_SETTINGS) as ticket_service:
        wait_for(lambda: set(v[0] for v in circuit_states_now(store).values()) == {"up"}, 30)
        yield ticket_service
        assert ticket_service.consumer.stats.errors == 0


def ticket_rows(store: Database) -> list[tuple]:
    """(kind, customer key, state, circuit keys, opened_at, response due, resolution due,
    acknowledged_at, resolved_at, priority, contract key, id) of every ticket, by kind and
    customer; not those merged into another (the evidence of a router failure comes in
    pieces: the circuits' first root causes are the cut links, re-rooted under the router
    seconds later, and their tickets merged then: sla/tickets.py `rekey_incidents`)."""
    with store.pool.connection() as conn:
        return conn.execute(
            """SELECT t.kind, cu.key, t.state,
                      (SELECT array_agg(c.key ORDER BY c.key) FROM ticket_circuits tc
                         JOIN circuits c ON c.id = tc.circuit_id WHERE tc.ticket_id = t.id),
                      t.opened_at, t.response_due_at, t.resolution_due_at, t.acknowledged_at,
                      t.resolved_at, t.priority, sc.key, t.id
                 FROM tickets t LEFT JOIN customers cu ON cu.id = t.customer_id
                 LEFT JOIN sla_contracts sc ON sc.id = t.sla_contract_id
                WHERE t.merged_into IS NULL
                ORDER BY t.kind, cu.key""").fetchall()


def expected_deadlines(store: Database, contract: str, priority: str, opened_at: datetime
                       ) -> tuple[datetime, datetime]:
    """The contract's matrix minutes for the priority, counted on its service calendar from
    the opening (sla.calendar, whose arithmetic tests/test_sla_calendar.py checks by hand)."""
    with store.pool.connection() as conn:
        times, calendar = conn.execute(
            "SELECT priorities -> %s, calendar FROM sla_contracts WHERE key = %s",
            [priority, contract]).fetchone()
    calendar = calendar_of(calendar)
    return (add_business_seconds(calendar, opened_at, times["response_min"] * 60),
            add_business_seconds(calendar, opened_at, times["resolution_min"] * 60))


def state_time(store: Database, circuit_key: str, state: str):
    with store.pool.connection() as conn:
        return conn.execute(
            """SELECT s.time FROM circuit_states s JOIN circuits c ON c.id = s.circuit_id
                WHERE c.key = %s AND s.state = %s ORDER BY s.time DESC LIMIT 1""",
            [circuit_key, state]).fetchone()[0]


def test_an_end_port_down_opens_acknowledges_and_resolves(
        network: SimulatedNetwork, store: Database, services: TicketService) -> None:
    try:
        network.set_port_status(*PORT, "down")
        rows = wait_for(lambda: len(found := ticket_rows(store)) == 2 and found, 20)
        fault, incident = rows
        assert fault[:4] == ("fault", "hsbank", "open", ["HSB-INET-0001"])
        assert incident[:4] == ("incident", None, "open", ["HSB-INET-0001"])
        down_at = state_time(store, "HSB-INET-0001", "down")
        # the ticket opens when the fault began (the stored state's time), not when the
        # service heard of it; HSB-INET-0001 runs on contract gold, 24x7: the deadlines
        # are the opening plus the matrix's minutes for the priority the rules gave
        assert fault[4] == down_at and fault[10] == "gold"
        assert (fault[5], fault[6]) == expected_deadlines(store, "gold", fault[9], down_at)
        with store.pool.connection() as conn:
            gold = conn.execute("SELECT priorities -> %s FROM sla_contracts"
                                " WHERE key = 'gold'", [fault[9]]).fetchone()[0]
        assert fault[5] == down_at + timedelta(minutes=gold["response_min"])
        with store.pool.connection() as conn:
            acknowledged = tickets.acknowledge(conn, Viewer("noc.wang", "noc"), incident[11],
                                               "optics team dispatched")
        assert acknowledged.row.acknowledged_by == "noc.wang"
        rows = ticket_rows(store)
        assert [r[2] for r in rows] == ["acknowledged", "acknowledged"]
        assert rows[0][7] == rows[1][7] is not None
    finally:
        network.set_port_status(*PORT, "up")
    def all_resolved() -> list[tuple] | None:
        found = ticket_rows(store)
        return found if found and all(r[2] == "resolved" for r in found) else None

    rows = wait_for(all_resolved, 20)
    up_at = state_time(store, "HSB-INET-0001", "up")
    assert [r[8] for r in rows] == [up_at, up_at]


def test_a_p_router_down_opens_one_ticket_per_customer_and_one_incident(
        network: SimulatedNetwork, store: Database, services: TicketService) -> None:
    needs_blackhole(network)
    _device, _, circuits, customers = expected_incident(store, "p-sh1")
    with store.pool.connection() as conn:
        keys = dict(conn.execute("SELECT id, key FROM circuits").fetchall())
        customer_keys = dict(conn.execute("SELECT id, key FROM customers").fetchall())
    expected: dict[str, list[str]] = {}
    for circuit in circuits:
        expected.setdefault(customer_keys[customers[circuit]], []).append(keys[circuit])
    try:
        network.set_device_status("p-sh1", "down")

        def settled() -> list[tuple] | None:
            rows = ticket_rows(store)
            faults = {r[1]: r[3] for r in rows if r[0] == "fault"}
            masters = [r for r in rows if r[0] == "incident"]
            done = (faults == {c: sorted(v) for c, v in expected.items()} and len(masters) == 1
                    and masters[0][3] == sorted(keys[c] for c in circuits))
            return rows if done else None

        rows = wait_for(settled, 30)
        for row in rows:
            if row[0] != "fault":
                continue
            assert (row[5], row[6]) == expected_deadlines(store, row[10], row[9], row[4])
    finally:
        network.set_device_status("p-sh1", "up")
    wait_for(lambda: all(r[2] == "resolved" for r in ticket_rows(store)), 30)


def test_a_fault_inside_a_maintenance_window_opens_nothing(
        network: SimulatedNetwork, store: Database, services: TicketService) -> None:
    with store.pool.connection() as conn:
        now = conn.execute("SELECT now()").fetchone()[0]
        scope = alarm_store.resolve_scope(conn, [f"port:{PORT[0]}:{PORT[1]}"])
        alarm_store.add_window(conn, scope,
                               now - timedelta(minutes=1), now + timedelta(hours=1),
                               "fibre work", "eng.liu")
    try:
        wait_for(lambda: circuit_states_now(store)["HSB-INET-0001"][0] == "maintenance", 20)
        network.set_port_status(*PORT, "down")
        # the circuit's service alarm is stored with its (maintenance) state, in one step
        wait_for(lambda: service_down_active(store), 20)
        wait_for(services.idle, 10)
    finally:
        network.set_port_status(*PORT, "up")
    assert ticket_rows(store) == []


def service_down_active(store: Database) -> bool:
    with store.pool.connection() as conn:
        return any(a.key.type == "service_down" for a in alarm_store.active_alarms(conn))
