"""The ticket service as it runs (sla/service.py): it follows "circuit.state" and "alarm."
events with the store's consumer, on a real store holding the example inventory.

A state stored by the alarm pipeline opens its ticket; a malformed event is skipped (logged)
and does not stop the tickets behind it; a service stopped and started again opens nothing
twice; an engineer acknowledging the incident's root alarm in the alarm console
acknowledges its open tickets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from config.inventory.loader import load_inventory
from keyline.wiring import EXAMPLE_INVENTORY
from sla.service import TicketService
from sla.settings import SlaSettings
from store import alarms as alarm_store
from store.circuit_states import StoredState, record_states
from store.database import Database
from store.events import publish
from store.inventory import apply_inventory

SETTINGS = SlaSettings(tick_interval_s=0.2)


@pytest.fixture
def store(db: Database) -> Iterator[Database]:
    with db.pool.connection() as conn:
        apply_inventory(conn, load_inventory([EXAMPLE_INVENTORY]))
    yield db


def wait_for(check: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"not true within {timeout_s} s")


def fault(store: Database, circuit_key: str) -> int:
    """A circuit down as the pipeline stores it: its service alarm and its state."""
    now = datetime.now(UTC)
    with store.pool.connection() as conn:
        circuit, customer = conn.execute("SELECT id, customer_id FROM circuits WHERE key = %s",
                                         [circuit_key]).fetchone()
        alarm = conn.execute(
            """INSERT INTO alarms (object_kind, object_id, type, severity, state, summary,
                                   first_seen, last_seen)
               VALUES ('circuit', %s, 'service_down', 'critical', 'active', 'down', %s, %s)
               RETURNING id""", [circuit, now, now]).fetchone()[0]
        record_states(conn, [StoredState(circuit, customer, now, "down", "up", None,
                                         "port down", "end_port_down", (), (), alarm)])
    return alarm


def tickets(store: Database) -> list[tuple]:
    with store.pool.connection() as conn:
        return conn.execute("SELECT kind, state FROM tickets ORDER BY kind").fetchall()


def test_states_open_tickets_and_a_malformed_event_is_skipped(store, caplog) -> None:
    with TicketService(store.pool, store.url, SETTINGS) as service:
        with store.pool.connection() as conn:
            publish(conn, "circuit.state", {"states": [{"circuit_id": "not a number"}]})
        fault(store, "HSB-INET-0001")
        found = wait_for(lambda: len(t := tickets(store)) == 2 and t)
        assert found == [("fault", "open"), ("incident", "open")]
        assert service.consumer.stats.errors == 0
    assert "could not handle event" in caplog.text
    # started again: the events it handled are not handled twice
    with TicketService(store.pool, store.url, SETTINGS) as service:
        wait_for(service.idle)
        time.sleep(3 * SETTINGS.tick_interval_s)
        assert len(tickets(store)) == 2


def test_acknowledging_the_root_alarm_acknowledges_the_tickets(store) -> None:
    with TicketService(store.pool, store.url, SETTINGS):
        alarm = fault(store, "HSB-INET-0001")
        wait_for(lambda: len(tickets(store)) == 2)
        with store.pool.connection() as conn:
            alarm_store.acknowledge(conn, alarm, "noc.wang", "on it")
        wait_for(lambda: [s for _, s in tickets(store)] == ["acknowledged", "acknowledged"])
    with store.pool.connection() as conn:
        row = conn.execute("SELECT acknowledged_by FROM tickets WHERE kind = 'fault'"
                           ).fetchone()
    assert row == ("noc.wang",)


def test_quiet_logs_when_all_is_well(store, caplog) -> None:
    caplog.set_level(logging.WARNING)
    with TicketService(store.pool, store.url, SETTINGS):
        fault(store, "JL-INET-0001")
        wait_for(lambda: len(tickets(store)) == 2)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
