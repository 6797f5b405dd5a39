"""Tickets from circuit states and people's actions on them (sla/tickets.py), on a real store
holding the example inventory.

The states here are written as the alarm pipeline writes them (store.circuit_states), with
service alarms rooted at one device alarm as the pipeline roots them; the scenario on the
simulated network (tests/test_sla_scenario.py) makes them for real. Expected deadlines are
worked out in the comments from the example contracts (config/example/sla.yaml):
hsbank-gold P2 = 30 min response / 360 min resolution, silver P2 = 60 / 960, all 24x7.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from config.inventory.loader import load_inventory
from keyline.wiring import EXAMPLE_INVENTORY
from sla import tickets
from sla.settings import SlaSettings
from sla.tickets import ActionError, Refusal, StateChange
from store.circuit_states import StoredState, record_states
from store.database import Database
from store.inventory import apply_inventory
from store.queries import Viewer

SETTINGS = SlaSettings()
T0 = datetime(2026, 11, 2, 1, 0, 0, tzinfo=UTC)  # a Monday, 09:00 in Shanghai


@pytest.fixture
def conn(db: Database) -> Iterator[psycopg.Connection]:
    with db.pool.connection() as connection:
        apply_inventory(connection, load_inventory([EXAMPLE_INVENTORY]))
        connection.commit()
        yield connection


def ids(conn: psycopg.Connection, table: str) -> dict[str, int]:
    return dict(conn.execute(f"SELECT key, id FROM {table}").fetchall())


def circuit_customer(conn: psycopg.Connection, circuit_id: int) -> int:
    return conn.execute("SELECT customer_id FROM circuits WHERE id = %s",
                        [circuit_id]).fetchone()[0]


def alarm(conn: psycopg.Connection, kind: str, object_id: int, type_: str, at: datetime,
          root: int | None = None) -> int:
    return conn.execute(
        """INSERT INTO alarms (object_kind, object_id, type, severity, state, summary,
                               first_seen, last_seen, root_cause_id)
           VALUES (%s, %s, %s, 'critical', 'active', %s, %s, %s, %s) RETURNING id""",
        [kind, object_id, type_, f"{type_} on {object_id}", at, at, root]).fetchone()[0]


def state(conn: psycopg.Connection, circuit_id: int, at: datetime, new: str,
          previous: str | None = "up", alarm_id: int | None = None, cause_kind: str = "path_down",
          underlying: str | None = None, elements: tuple[str, ...] = ("device:1",)
          ) -> StateChange:
    stored = StoredState(circuit_id, circuit_customer(conn, circuit_id), at, new, previous,
                         underlying, f"{cause_kind} cause", cause_kind, elements, (), alarm_id)
    record_states(conn, [stored])
    return StateChange.from_payload(stored.payload())


def open_tickets(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        """SELECT t.kind, cu.key, t.priority, t.impact, t.state,
                  array_agg(c.key ORDER BY c.key)
             FROM tickets t LEFT JOIN customers cu ON cu.id = t.customer_id
             JOIN ticket_circuits tc ON tc.ticket_id = t.id JOIN circuits c ON c.id = tc.circuit_id
            GROUP BY t.id, cu.key ORDER BY t.kind, cu.key""").fetchall()


def p_router_incident(conn: psycopg.Connection, at: datetime) -> tuple[int, list[StateChange]]:
    """A P router down: its device alarm is the root of three service alarms (two hsbank
    circuits, one jinlu circuit)."""
    circuits = ids(conn, "circuits")
    devices = ids(conn, "devices")
    root = alarm(conn, "device", devices["p-sh1"], "device_unreachable", at)
    changes = []
    for key in ("HSB-L3VPN-0001", "HSB-L3VPN-0002", "JL-ELINE-0001"):
        service = alarm(conn, "circuit", circuits[key], "service_down", at, root)
        changes.append(state(conn, circuits[key], at, "down", alarm_id=service))
    return root, changes


def test_an_incident_gives_one_ticket_per_customer_and_one_master(conn) -> None:
    _root, changes = p_router_incident(conn, T0)
    tickets.on_circuit_states(conn, changes, SETTINGS)
    # HSB-L3VPN-0001 (sh-hq <-> bj-dc) has HSB-LL-0001 between the same sites still up, but
    # HSB-L3VPN-0002 (sh-hq <-> gz-br) has no other circuit between its sites: partial, P2.
    # JL-ELINE-0001 (gz-hub <-> sh-wh) has JL-L3VPN-0001 between the same sites: redundancy
    # lost, P3. The incident takes the highest of its customers' priorities: P2.
    assert open_tickets(conn) == [
        ("fault", "hsbank", "P2", "partial_down", "open", ["HSB-L3VPN-0001", "HSB-L3VPN-0002"]),
        ("fault", "jinlu", "P3", "redundancy_lost", "open", ["JL-ELINE-0001"]),
        ("incident", None, "P2", "partial_down", "open",
         ["HSB-L3VPN-0001", "HSB-L3VPN-0002", "JL-ELINE-0001"]),
    ]
    master_id, = conn.execute("SELECT id FROM tickets WHERE kind = 'incident'").fetchone()
    children = conn.execute("SELECT count(*) FROM tickets WHERE master_id = %s",
                            [master_id]).fetchone()[0]
    assert children == 2
    row = conn.execute("SELECT response_due_at, resolution_due_at, opened_at FROM tickets"
                       " WHERE customer_id IS NOT NULL ORDER BY customer_id").fetchall()
    # hsbank-gold P2 on 24x7: response 30 min, resolution 360 min after the fault's time
    assert row[0] == (T0 + timedelta(minutes=30), T0 + timedelta(minutes=360), T0)
    # jinlu (silver) P3: 240 / 2880 min
    assert row[1] == (T0 + timedelta(minutes=240), T0 + timedelta(minutes=2880), T0)
    # the same states heard again (a redelivered batch) change nothing
    before = conn.execute("SELECT count(*) FROM ticket_events").fetchone()[0]
    tickets.on_circuit_states(conn, changes, SETTINGS)
    assert conn.execute("SELECT count(*) FROM ticket_events").fetchone()[0] == before
    assert len(open_tickets(conn)) == 3


def test_acknowledging_the_incident_meets_every_response_clock(conn) -> None:
    _root, changes = p_router_incident(conn, T0)
    tickets.on_circuit_states(conn, changes, SETTINGS)
    master_id, = conn.execute("SELECT id FROM tickets WHERE kind = 'incident'").fetchone()
    noc = Viewer("noc.wang", "noc")
    tickets.acknowledge(conn, noc, master_id, "on it")
    rows = conn.execute("SELECT state, acknowledged_by, response_due_at, clocks"
                        " FROM tickets ORDER BY id").fetchall()
    assert {r[0] for r in rows} == {"acknowledged"}
    assert {r[1] for r in rows} == {"noc.wang"}
    for _, _, due, clocks in rows:
        assert due is None and clocks["response"]["stopped_at"] is not None


def test_restored_circuits_resolve_their_tickets_at_the_restoring_time(conn) -> None:
    _root, changes = p_router_incident(conn, T0)
    tickets.on_circuit_states(conn, changes, SETTINGS)
    back = T0 + timedelta(minutes=42, seconds=17)
    restored = [state(conn, c.circuit_id, back, "up", previous="down", cause_kind="in_service")
                for c in changes]
    tickets.on_circuit_states(conn, restored[:1], SETTINGS)
    # one of hsbank's two circuits back: still open
    assert {r[4] for r in open_tickets(conn)} == {"open"}
    tickets.on_circuit_states(conn, restored[1:], SETTINGS)
    rows = conn.execute("SELECT kind, state, resolved_at, clocks FROM tickets").fetchall()
    assert {r[1] for r in rows} == {"resolved"}
    for _kind, _, resolved_at, clocks in rows:
        assert resolved_at == back
        # 24x7: 42 min 17 s = 2537 s used of the resolution clock, stopped at `back`
        assert clocks["resolution"]["used_s"] == pytest.approx(2537.0)
        # not acknowledged by anyone: resolving met the response clock too, late (30 min)
        assert clocks["response"]["stopped_at"] is not None


def test_a_fault_in_maintenance_opens_nothing_and_unknown_opens_a_noc_gap(conn) -> None:
    circuits = ids(conn, "circuits")
    changes = [state(conn, circuits["HSB-L3VPN-0003"], T0, "maintenance", underlying="down",
                     cause_kind="maintenance"),
               state(conn, circuits["JL-ELINE-0002"], T0, "unknown",
                     cause_kind="end_device_silent", elements=("device:77",))]
    tickets.on_circuit_states(conn, changes, SETTINGS)
    # unknown for a moment (a restart) is no gap yet: the tick opens it once it lasted
    assert open_tickets(conn) == []
    gap_after = timedelta(seconds=SETTINGS.monitoring_gap_after_s)
    tickets.check_clocks(conn, T0 + gap_after - timedelta(seconds=1), SETTINGS)
    assert open_tickets(conn) == []
    tickets.check_clocks(conn, T0 + gap_after, SETTINGS)
    tickets.check_clocks(conn, T0 + gap_after + timedelta(seconds=5), SETTINGS)
    assert conn.execute("SELECT opened_at FROM tickets").fetchall() == [(T0,)]
    assert open_tickets(conn) == [
        ("monitoring_gap", None, "P3", "monitoring_gap", "open", ["JL-ELINE-0002"])]
    # the customer does not see the NOC's gap ticket
    jinlu = Viewer("jinlu.it", "customer", ids(conn, "customers")["jinlu"], "jinlu")
    gap_id, = conn.execute("SELECT id FROM tickets").fetchone()
    with pytest.raises(ActionError) as refused:
        tickets.add_comment(conn, jinlu, gap_id, "hello?")
    assert refused.value.refusal is Refusal.NOT_FOUND
    # known again: the gap is resolved
    tickets.on_circuit_states(conn, [state(conn, circuits["JL-ELINE-0002"], T0 + timedelta(
        minutes=6), "up", previous="unknown", cause_kind="in_service")], SETTINGS)
    assert conn.execute("SELECT state FROM tickets").fetchone()[0] == "resolved"


def test_a_customer_reports_pauses_rejects_and_confirms(conn) -> None:
    customers = ids(conn, "customers")
    circuits = ids(conn, "circuits")
    hsbank = Viewer("hsbank.ops", "customer", customers["hsbank"], "hsbank")
    jinlu = Viewer("jinlu.it", "customer", customers["jinlu"], "jinlu")
    noc = Viewer("noc.wang", "noc")
    # another customer's circuit does not exist for hsbank
    with pytest.raises(ActionError) as refused:
        tickets.open_ticket(conn, hsbank, circuit_id=circuits["JL-ELINE-0001"], title="slow")
    assert refused.value.refusal is Refusal.NOT_FOUND and refused.value.field == "circuit_id"
    ticket = tickets.open_ticket(conn, hsbank, circuit_id=circuits["HSB-L3VPN-0001"],
                                 title="packet loss to Beijing", description="since 9:00")
    assert (ticket.row.origin, ticket.row.priority, ticket.row.state) == ("customer", "P3", "open")
    # a customer neither acknowledges nor sees another customer's ticket
    with pytest.raises(ActionError) as refused:
        tickets.acknowledge(conn, hsbank, ticket.id)
    assert refused.value.refusal is Refusal.FORBIDDEN
    with pytest.raises(ActionError) as refused:
        tickets.add_comment(conn, jinlu, ticket.id, "mine?")
    assert refused.value.refusal is Refusal.NOT_FOUND
    with pytest.raises(ActionError) as refused:
        tickets.add_comment(conn, hsbank, ticket.id, "internal?", internal=True)
    assert refused.value.field == "internal"
    tickets.add_comment(conn, hsbank, ticket.id, "still losing packets")
    tickets.start_work(conn, noc, ticket.id)
    paused = tickets.pause(conn, noc, ticket.id, "please power-cycle the CE")
    assert paused.state == "pending_customer"
    assert paused.row.resolution_due_at is None  # no deadline while paused
    resumed = tickets.resume(conn, noc, ticket.id)
    assert resumed.row.resolution_due_at is not None
    resolved = tickets.resolve(conn, noc, ticket.id, "replaced the SFP")
    with pytest.raises(ActionError) as refused:
        tickets.resolve(conn, noc, ticket.id, "again")
    assert refused.value.refusal is Refusal.CONFLICT
    used = resolved.resolution.used_s
    reopened = tickets.reopen(conn, hsbank, ticket.id, "still broken")
    # the resolution clock resumes with the time it had used, it does not restart
    assert reopened.state == "in_progress"
    assert reopened.resolution.used_s == pytest.approx(used)
    assert reopened.resolution.running_since is not None
    tickets.resolve(conn, noc, ticket.id, "replaced the cable too")
    closed = tickets.close(conn, hsbank, ticket.id, "confirmed")
    assert closed.state == "closed"
    actions = [r[0] for r in conn.execute(
        "SELECT action FROM ticket_events WHERE ticket_id = %s ORDER BY id", [ticket.id])]
    assert actions == ["opened", "commented", "in_progress", "paused", "resumed", "resolved",
                       "reopened", "resolved", "closed"]
    # the timeline is history
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("UPDATE ticket_events SET comment = 'x' WHERE ticket_id = %s",
                     [ticket.id])
    conn.rollback()


def test_reopen_only_within_the_window(conn) -> None:
    circuits = ids(conn, "circuits")
    noc = Viewer("noc.wang", "noc")
    ticket = tickets.open_ticket(conn, noc, circuit_id=circuits["HSB-L3VPN-0001"],
                                 title="by phone", priority="P1")
    assert ticket.row.priority == "P1" and ticket.row.origin == "noc"
    tickets.resolve(conn, noc, ticket.id, "done")
    conn.execute("UPDATE tickets SET resolved_at = resolved_at - interval '73 hours'"
                 " WHERE id = %s", [ticket.id])
    with pytest.raises(ActionError) as refused:
        tickets.reopen(conn, noc, ticket.id, "again")
    assert refused.value.refusal is Refusal.CONFLICT and "72" in refused.value.message


def test_escalation_levels_are_crossed_once_and_notified(conn) -> None:
    _root, changes = p_router_incident(conn, T0)
    tickets.on_circuit_states(conn, changes, SETTINGS)
    hsbank_ticket, = conn.execute(
        "SELECT id FROM tickets WHERE customer_id IS NOT NULL AND priority = 'P2'").fetchone()
    # hsbank-gold P2 response: 30 min. At 16 min, 53 % is used: the 50 % level is crossed.
    tickets.check_clocks(conn, T0 + timedelta(minutes=16), SETTINGS)
    tickets.check_clocks(conn, T0 + timedelta(minutes=17), SETTINGS)
    rows = conn.execute(
        "SELECT action, time, detail FROM ticket_events WHERE ticket_id = %s"
        " AND action IN ('escalated', 'breached') ORDER BY id", [hsbank_ticket]).fetchall()
    assert [(r[0], r[2]["clock"], r[2]["level_pct"]) for r in rows] == [
        ("escalated", "response", 50)]
    # the timeline says when the level was crossed: at 15 min exactly, not when it was seen
    assert rows[0][1] == T0 + timedelta(minutes=15)
    tickets.check_clocks(conn, T0 + timedelta(minutes=31), SETTINGS)
    breached = conn.execute("SELECT response_breached, resolution_breached FROM tickets"
                            " WHERE id = %s", [hsbank_ticket]).fetchone()
    assert breached == (True, False)
    levels = [(r[0], r[1]) for r in conn.execute(
        "SELECT action, (detail->>'level_pct')::float FROM ticket_events WHERE ticket_id = %s"
        " AND action IN ('escalated', 'breached') ORDER BY id", [hsbank_ticket])]
    # hsbank-gold's own levels (config/example/sla.yaml): 50, 80, 100
    assert levels == [("escalated", 50), ("escalated", 80), ("breached", 100)]
    # the customer's contact heard of the opening (in Chinese) and of the breach
    mails = conn.execute(
        "SELECT destination, subject FROM notification_outbox WHERE ticket_id = %s"
        " AND channel = 'email' ORDER BY id", [hsbank_ticket]).fetchall()
    to_customer = [s for d, s in mails if d == "noc@hsbank.example"]
    assert len(to_customer) == 2
    assert "已受理" in to_customer[0] and "超时" in to_customer[1]
    # jinlu's contact reads English (config/example/customers.yaml: language en)
    jinlu_mail = conn.execute("SELECT subject FROM notification_outbox"
                              " WHERE destination = 'it-ops@jinlu.example'").fetchall()
    assert len(jinlu_mail) == 1 and jinlu_mail[0][0].startswith("[Keyline] Ticket #")
    # noc.wang (role noc) heard of every level, am.chen (hsbank's manager) from 80 %
    assert sum(d == "wang.lei@operator.example" for d, _ in mails) == 4  # opened + 3 levels
    assert sum(d == "chen.jing@operator.example" for d, _ in mails) == 3  # opened, 75, 100


def test_a_breach_is_recorded_even_without_a_level_at_100(conn) -> None:
    circuits = ids(conn, "circuits")
    noc = Viewer("noc.wang", "noc")
    settings = SlaSettings(escalation=[{"at_pct": 150, "clock": "response",
                                        "notify": ["user:am.chen"]}])
    # JL-INET-0001 runs on silver (24x7); P1 response: 30 min
    ticket = tickets.open_ticket(conn, noc, circuit_id=circuits["JL-INET-0001"], title="x",
                                 priority="P1", settings=settings)
    opened = ticket.row.opened_at
    tickets.check_clocks(conn, opened + timedelta(minutes=29), settings)
    tickets.check_clocks(conn, opened + timedelta(minutes=31), settings)
    tickets.check_clocks(conn, opened + timedelta(minutes=46), settings)
    rows = conn.execute("SELECT action, time, detail->>'clock' FROM ticket_events"
                        " WHERE action IN ('escalated', 'breached') ORDER BY id").fetchall()
    # silver P1: response 30 min, resolution 480 min; the breach of the response at 30 min,
    # the 150 % level at 45 min; the resolution clock (2 % used) is quiet
    assert rows == [("breached", opened + timedelta(minutes=30), "response"),
                    ("escalated", opened + timedelta(minutes=45), "response")]
    assert conn.execute("SELECT response_breached FROM tickets").fetchone()[0] is True


def test_a_tick_closes_a_resolved_ticket_nobody_answered(conn) -> None:
    circuits = ids(conn, "circuits")
    noc = Viewer("noc.wang", "noc")
    ticket = tickets.open_ticket(conn, noc, circuit_id=circuits["HSB-L3VPN-0001"], title="x")
    resolved = tickets.resolve(conn, noc, ticket.id, "done")
    at = resolved.row.resolved_at
    tickets.check_clocks(conn, at + timedelta(hours=71), SETTINGS)
    assert conn.execute("SELECT state FROM tickets").fetchone()[0] == "resolved"
    tickets.check_clocks(conn, at + timedelta(hours=72), SETTINGS)
    assert conn.execute("SELECT state FROM tickets").fetchone()[0] == "closed"
