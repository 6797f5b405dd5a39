"""The SLA store (store/sla.py, migration 0016): customer-caused marks as an audit trail,
issued reports as immutable versions with scoped reads, and the bulk reads a month's figures
start from, on a real store holding the example inventory.

Example customers: hsbank and jinlu are looked after by am.chen, xinhe by am.zhao.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb

from config.inventory.loader import load_inventory
from keyline.wiring import EXAMPLE_INVENTORY
from store import sla as store
from store.circuit_states import StoredState, record_states, state_histories, state_history
from store.database import Database
from store.inventory import apply_inventory
from store.timeseries import SampleWriter, refresh_rollup_range

T0 = datetime(2026, 10, 1, tzinfo=UTC)


@pytest.fixture
def conn(db: Database) -> Iterator[psycopg.Connection]:
    with db.pool.connection() as connection:
        apply_inventory(connection, load_inventory([EXAMPLE_INVENTORY]))
        connection.commit()
        yield connection


def ids(conn: psycopg.Connection, table: str) -> dict[str, int]:
    return dict(conn.execute(f"SELECT key, id FROM {table}").fetchall())


def circuits_of(conn: psycopg.Connection, customer: str) -> list[int]:
    return [row[0] for row in conn.execute(
        "SELECT c.id FROM circuits c JOIN customers cu ON cu.id = c.customer_id"
        " WHERE cu.key = %s ORDER BY c.id", [customer])]


# --- customer-caused marks ---------------------------------------------------------------------


def test_marks_are_an_audit_trail(conn: psycopg.Connection) -> None:
    circuit = circuits_of(conn, "hsbank")[0]
    mark = store.add_mark(conn, circuit, T0 + timedelta(hours=1), T0 + timedelta(hours=2),
                          "power cut at the customer's premises", "am.chen")
    conn.commit()
    row = store.get_mark(conn, mark)
    assert row is not None and not row.withdrawn
    assert (row.circuit_id, row.reason, row.marked_by) == (
        circuit, "power cut at the customer's premises", "am.chen")

    # never deleted, never edited
    for statement, message in (
            ("DELETE FROM customer_caused_marks WHERE id = %s", "withdraw it instead"),
            ("UPDATE customer_caused_marks SET ends_at = ends_at + interval '1 hour'"
             " WHERE id = %s", "only its withdrawal may be recorded"),
            ("UPDATE customer_caused_marks SET reason = 'something else' WHERE id = %s",
             "only its withdrawal may be recorded"),
            ("UPDATE customer_caused_marks SET withdrawn_at = now(), withdrawn_by = 'x',"
             " withdraw_reason = '' WHERE id = %s", "needs its time, who withdrew it"),
    ):
        with pytest.raises(psycopg.errors.CheckViolation, match=message):
            conn.execute(statement, [mark])
        conn.rollback()

    # withdrawn once, with who and why; a second withdrawal changes nothing
    at = T0 + timedelta(days=3)
    assert store.withdraw_mark(conn, mark, "noc.wu", "the customer's UPS was fine", at=at)
    conn.commit()
    assert not store.withdraw_mark(conn, mark, "noc.wu", "again")
    assert not store.withdraw_mark(conn, mark + 1000, "noc.wu", "no such mark")
    row = store.get_mark(conn, mark)
    assert row is not None and row.withdrawn
    assert (row.withdrawn_at, row.withdrawn_by, row.withdraw_reason) == (
        at, "noc.wu", "the customer's UPS was fine")
    with pytest.raises(psycopg.errors.CheckViolation, match="was withdrawn at"):
        conn.execute("UPDATE customer_caused_marks SET withdrawn_at = NULL, withdrawn_by = NULL,"
                     " withdraw_reason = NULL WHERE id = %s", [mark])
    conn.rollback()

    # an empty reason or an empty interval is refused
    with pytest.raises(psycopg.errors.CheckViolation):
        store.add_mark(conn, circuit, T0, T0 + timedelta(hours=1), "", "am.chen")
    conn.rollback()
    with pytest.raises(psycopg.errors.CheckViolation):
        store.add_mark(conn, circuit, T0, T0, "zero length", "am.chen")
    conn.rollback()


def test_marks_of_overlap_and_withdrawn(conn: psycopg.Connection) -> None:
    one, two, three = circuits_of(conn, "hsbank")[:3]
    hour = timedelta(hours=1)
    start, end = T0, T0 + timedelta(days=31)
    before = store.add_mark(conn, one, start - 2 * hour, start, "ends at start", "am.chen")
    spans = store.add_mark(conn, one, start - hour, start + hour, "spans start", "am.chen")
    later = store.add_mark(conn, one, start + 5 * hour, start + 6 * hour, "inside", "am.chen")
    inside = store.add_mark(conn, one, start + 2 * hour, start + 3 * hour, "inside", "am.chen")
    at_end = store.add_mark(conn, one, end, end + hour, "begins at end", "am.chen")
    gone = store.add_mark(conn, two, start + hour, start + 2 * hour, "withdrawn", "am.chen")
    store.withdraw_mark(conn, gone, "am.chen", "marked the wrong circuit")
    other = store.add_mark(conn, three, start + hour, start + 2 * hour, "other", "am.chen")
    conn.commit()

    found = store.marks_of(conn, [one, two], start, end)
    # [start, end) overlaps: not the one ending at start nor the one beginning at end;
    # oldest first
    assert {k: [m.id for m in v] for k, v in found.items()} == {
        one: [spans, inside, later], two: []}
    withdrawn = store.marks_of(conn, [two], start, end, include_withdrawn=True)
    assert [m.id for m in withdrawn[two]] == [gone]
    assert {before, at_end, other}.isdisjoint(m.id for m in found[one])


# --- issued reports ----------------------------------------------------------------------------


def issue(conn: psycopg.Connection, kind: str, subject: str, customer_id: int | None,
          month: str = "2026-10", **kwargs) -> store.ReportRow:
    values = {"issued_at": T0 + timedelta(days=31), "issued_by": "scheduler",
              "statement": {"subject": subject, "availability_pct": 99.95},
              "difference": None, "reason": None, **kwargs}
    report = store.issue_report(conn, kind=kind, subject=subject, customer_id=customer_id,
                                month=month, **values)
    conn.commit()
    return report


def test_reports_are_versioned_and_immutable(conn: psycopg.Connection) -> None:
    customers = ids(conn, "customers")
    first = issue(conn, "customer", "hsbank", customers["hsbank"])
    assert (first.version, first.reason, first.difference) == (1, None, None)
    assert first.statement == {"subject": "hsbank", "availability_pct": 99.95}

    with pytest.raises(store.ReportVersionError, match="version 2 needs its difference"):
        issue(conn, "customer", "hsbank", customers["hsbank"], reason="figures changed")
    conn.rollback()
    second = issue(conn, "customer", "hsbank", customers["hsbank"],
                   statement={"subject": "hsbank", "availability_pct": 99.99},
                   difference={"availability_pct": [99.95, 99.99]},
                   reason="customer-caused time marked on circuit HSB-1")
    assert second.version == 2 and second.difference == {"availability_pct": [99.95, 99.99]}
    latest = store.latest_report(conn, "customer", "hsbank", "2026-10")
    assert latest == second
    # a later version without a reason still states what changed
    third = issue(conn, "customer", "hsbank", customers["hsbank"], difference={})
    assert (third.version, third.reason) == (3, None)
    assert store.latest_report(conn, "customer", "hsbank", "2026-10") == third
    assert store.latest_report(conn, "customer", "hsbank", "2026-09") is None
    # another month and another kind count their own versions
    assert issue(conn, "customer", "hsbank", customers["hsbank"], month="2026-11").version == 1
    assert issue(conn, "account_manager", "am.chen", None).version == 1
    with pytest.raises(store.ReportVersionError, match="has no version yet"):
        issue(conn, "customer", "jinlu", customers["jinlu"], difference={}, reason="why")
    conn.rollback()

    # version 1 stays as issued
    for statement in ("UPDATE sla_reports SET statement = '{}' WHERE id = %s",
                      "DELETE FROM sla_reports WHERE id = %s"):
        with pytest.raises(psycopg.errors.CheckViolation,
                           match="issued reports are immutable: issue a new version"):
            conn.execute(statement, [first.id])
        conn.rollback()
    assert store.get_report(conn, first.id) == first
    # the month's shape is checked
    with pytest.raises(psycopg.errors.CheckViolation):
        issue(conn, "customer", "hsbank", customers["hsbank"], month="2026-13")
    conn.rollback()


def test_two_issuers_at_once_get_their_own_versions(db: Database,
                                                    conn: psycopg.Connection) -> None:
    customer = ids(conn, "customers")["hsbank"]
    issue(conn, "customer", "hsbank", customer)
    correction = {"difference": {"credit": [0, 2800]}, "reason": "late mark"}
    results: list[int] = []
    with db.pool.connection() as first, db.pool.connection() as second:
        second_pid = second.info.backend_pid

        def issue_second() -> None:
            results.append(store.issue_report(
                second, kind="customer", subject="hsbank", customer_id=customer,
                month="2026-10", issued_at=T0, issued_by="noc.wu", statement={},
                **correction).version)

        thread = threading.Thread(target=issue_second)
        # the first issuer's transaction stays open after it inserted version 2
        with first.transaction():
            report = store.issue_report(first, kind="customer", subject="hsbank",
                                        customer_id=customer, month="2026-10", issued_at=T0,
                                        issued_by="am.chen", statement={}, **correction)
            assert report.version == 2
            thread.start()
            # the second waits for the first's lock: without it, it would read version 1
            # as the latest (version 2 is not committed yet) and collide on version 2
            waiting = False
            while not waiting and thread.is_alive():
                waiting = conn.execute(
                    "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
                    [second_pid]).fetchone()[0]
                conn.rollback()
                time.sleep(0.01)
            assert waiting, "the second issuer did not wait for the first"
        thread.join()
    assert results == [3]
    versions = [r.version for r in store.list_reports(conn, customer_id=customer)]
    assert versions == [3, 2, 1]


def test_reports_are_scoped_to_their_reader(conn: psycopg.Connection) -> None:
    customers = ids(conn, "customers")
    hsbank = issue(conn, "customer", "hsbank", customers["hsbank"])
    jinlu = issue(conn, "customer", "jinlu", customers["jinlu"])
    xinhe = issue(conn, "customer", "xinhe", customers["xinhe"])
    chen = issue(conn, "account_manager", "am.chen", None)
    zhao = issue(conn, "account_manager", "am.zhao", None)
    older = issue(conn, "customer", "hsbank", customers["hsbank"], month="2026-09")

    def listed(**scope) -> list[int]:
        return [r.id for r in store.list_reports(conn, **scope)]

    # a customer reads its own customer reports, never another's nor a manager's
    assert listed(customer_id=customers["hsbank"]) == [hsbank.id, older.id]
    assert store.get_report(conn, hsbank.id, customer_id=customers["hsbank"]) == hsbank
    for other in (jinlu, xinhe, chen, zhao):
        assert store.get_report(conn, other.id, customer_id=customers["hsbank"]) is None
    # a manager reads its customers' reports and its own
    assert set(listed(manager="am.chen")) == {hsbank.id, jinlu.id, chen.id, older.id}
    assert set(listed(manager="am.zhao")) == {xinhe.id, zhao.id}
    assert store.get_report(conn, xinhe.id, manager="am.chen") is None
    assert store.get_report(conn, zhao.id, manager="am.chen") is None
    assert store.get_report(conn, chen.id, manager="am.chen") == chen
    # the staff read everything; filters by month and kind; newest month first
    assert set(listed()) == {hsbank.id, jinlu.id, xinhe.id, chen.id, zhao.id, older.id}
    assert listed(month="2026-09") == [older.id]
    assert set(listed(kind="account_manager")) == {chen.id, zhao.id}
    assert listed()[-1] == older.id
    # listings are light unless asked
    assert all(r.statement is None for r in store.list_reports(conn))
    assert store.list_reports(conn, customer_id=customers["xinhe"],
                              with_statement=True)[0].statement == xinhe.statement


# --- bulk reads --------------------------------------------------------------------------------


def test_state_histories_agree_with_state_history(conn: psycopg.Connection) -> None:
    circuits = circuits_of(conn, "hsbank") + circuits_of(conn, "jinlu")
    customer_of = dict(conn.execute("SELECT id, customer_id FROM circuits").fetchall())
    rng = random.Random(14)
    start, end = T0, T0 + timedelta(days=31)
    states = []
    for circuit in circuits[:-1]:  # the last one was never judged
        moments = [start - timedelta(days=2), start, end, end + timedelta(hours=1)]
        moments += [start + timedelta(minutes=rng.randrange(0, 31 * 24 * 60))
                    for _ in range(rng.randrange(0, 40))]
        moments.append(moments[-1])  # two states at the same moment: id decides
        for moment in moments:
            state = rng.choice(["up", "down", "degraded", "unknown"])
            states.append(StoredState(circuit, customer_of[circuit], moment, state, None, None,
                                      "test", "test", (), (), None))
    rng.shuffle(states)  # ids in no particular time order
    record_states(conn, states)
    conn.commit()
    for window in ((start, end), (start + timedelta(days=3), start + timedelta(days=4)),
                   (start - timedelta(days=5), start - timedelta(days=3))):
        bulk = state_histories(conn, circuits, *window)
        assert set(bulk) == set(circuits)
        assert bulk[circuits[-1]] == []
        for circuit in circuits:
            assert bulk[circuit] == state_history(conn, circuit, *window), circuit
    assert state_histories(conn, [], start, end) == {}


def ticket(conn: psycopg.Connection, customer_id: int, circuits: list[int], opened: datetime,
           resolved: datetime | None, *, kind: str = "fault", merged_into: int | None = None
           ) -> int:
    ticket_id = conn.execute(
        """INSERT INTO tickets (kind, origin, customer_id, merged_into, priority, impact, state,
                                title, opened_at, opened_by, acknowledged_at, resolved_at,
                                calendar, clocks, response_due_at, resolution_due_at,
                                response_breached)
           VALUES (%s, 'alarm', %s, %s, 'P2', 'down', %s, 'circuit down', %s, 'tickets', %s, %s,
                   %s, '{}', %s, %s, true) RETURNING id""",
        [kind, customer_id, merged_into, "resolved" if resolved else "open", opened,
         opened + timedelta(minutes=5), resolved, Jsonb({"timezone": "Asia/Shanghai"}),
         opened + timedelta(minutes=30), opened + timedelta(hours=6)]).fetchone()[0]
    for circuit in circuits:
        conn.execute("INSERT INTO ticket_circuits (ticket_id, circuit_id, added_at, state,"
                     " restored_at) VALUES (%s, %s, %s, 'down', %s)",
                     [ticket_id, circuit, opened, resolved])
    return ticket_id


def test_tickets_of_circuits(conn: psycopg.Connection) -> None:
    customers = ids(conn, "customers")
    hsbank = customers["hsbank"]
    one, two, three = circuits_of(conn, "hsbank")[:3]
    other = circuits_of(conn, "jinlu")[0]
    start, end = T0, T0 + timedelta(days=31)
    hour = timedelta(hours=1)
    both = ticket(conn, hsbank, [one, three], start + hour, start + 2 * hour)
    still_open = ticket(conn, hsbank, [two], start - 2 * hour, None, kind="complaint")
    resolved_at_start = ticket(conn, hsbank, [one], start - 2 * hour, start)
    ticket(conn, hsbank, [one], start - 2 * hour, start - hour)  # over before the month
    ticket(conn, hsbank, [one], end, None)  # opened at the end: the next month's
    ticket(conn, hsbank, [one], start + hour, None, merged_into=both)  # counts in `both`
    ticket(conn, hsbank, [three], start + hour, None)  # a circuit not asked for
    ticket(conn, customers["jinlu"], [other], start + hour, None)  # another customer's
    conn.execute(
        """INSERT INTO tickets (kind, origin, priority, impact, state, title, opened_at,
                                opened_by, calendar, clocks)
           VALUES ('incident', 'alarm', 'P1', 'down', 'open', 'P router down', %s, 'tickets',
                   '{}', '{}')""", [start + hour])  # the NOC's, no customer
    conn.commit()

    found = store.tickets_of_circuits(conn, [one, two], start, end)
    assert [t.id for t in found] == [still_open, resolved_at_start, both]
    by_id = {t.id: t for t in found}
    # only the circuits asked for
    assert by_id[both].circuits == ((one, start + hour, start + 2 * hour),)
    assert by_id[still_open].kind == "complaint" and by_id[still_open].resolved_at is None
    row = by_id[both]
    assert (row.customer_id, row.priority, row.state, row.opened_at, row.acknowledged_at,
            row.response_due_at, row.resolution_due_at, row.response_breached,
            row.resolution_breached) == (
        hsbank, "P2", "resolved", start + hour, start + hour + timedelta(minutes=5),
        start + hour + timedelta(minutes=30), start + 7 * hour, True, False)


def test_windows_by_id_leave_out_the_operators_words(conn: psycopg.Connection) -> None:
    circuit = circuits_of(conn, "hsbank")[0]
    scope = [{"kind": "circuit", "id": circuit, "key": "HSB"}]
    window_ids = [conn.execute(
        "INSERT INTO maintenance_windows (scope, starts_at, ends_at, reason, declared_by)"
        " VALUES (%s, %s, %s, 'swap the card the bank complained about', 'noc.wu')"
        " RETURNING id", [Jsonb(scope), T0 + timedelta(hours=h), T0 + timedelta(hours=h + 1)]
    ).fetchone()[0] for h in (1, 5, 9)]
    conn.commit()
    found = store.windows_by_id(conn, [window_ids[2], window_ids[0], 999_999])
    assert [(w.id, w.starts_at, w.ends_at, w.scope) for w in found] == [
        (window_ids[0], T0 + timedelta(hours=1), T0 + timedelta(hours=2), scope),
        (window_ids[2], T0 + timedelta(hours=9), T0 + timedelta(hours=10), scope)]
    assert [f.name for f in dataclasses.fields(store.WindowRow)] == [
        "id", "starts_at", "ends_at", "scope"]


def test_hourly_measurements(db: Database, conn: psycopg.Connection) -> None:
    circuit, other = circuits_of(conn, "hsbank")[:2]
    at = T0 + timedelta(hours=10)
    minute = timedelta(minutes=1)
    with SampleWriter(db.pool) as writer:
        writer.add_many([
            (at, circuit, "rtt_ms", 10.0), (at + minute, circuit, "rtt_ms", 20.0),
            (at + 7 * minute, circuit, "rtt_ms", 40.0), (at + 59 * minute, circuit, "rtt_ms", 5.0),
            (at + 60 * minute, circuit, "rtt_ms", 100.0),  # the next hour, after `end`
            (at - minute, circuit, "rtt_ms", 1000.0),  # before `start`
            (at, circuit, "loss_pct", 0.5), (at + 30 * minute, circuit, "loss_pct", 1.5),
            (at, circuit, "if_in_bps", 1e6),  # a metric not asked for
            (at, other, "rtt_ms", 3.0),  # an object not asked for
        ])
    refresh_rollup_range(db.pool, at - timedelta(hours=1), at + timedelta(hours=2))
    rows = store.hourly_measurements(conn, [circuit], ["rtt_ms", "loss_pct", "jitter_ms"], at,
                                     at + 60 * minute)
    # rtt: buckets 10:00 (10, 20), 10:05 (40), 10:55 (5) -> 4 samples, sum 75, max 40
    # loss: buckets 10:00 (0.5), 10:30 (1.5) -> 2 samples, sum 2.0, max 1.5
    assert rows == [(circuit, "loss_pct", at, 2, 2.0, 1.5), (circuit, "rtt_ms", at, 4, 75.0, 40.0)]
