"""SLA reports from the store: a month's statement built from stored states, recomputed from
the statement alone, issued once, corrected by a new version after a customer-caused mark,
and issued by the scheduler's job on the 1st.

The example inventory's hsbank (华盛银行) holds HSB-L3VPN-0001 on the negotiated hsbank-gold
contract (24x7 Asia/Shanghai, target 99.995 %, credit steps below 99.995 % 10 %, below
99.95 % 30 %, below 99.9 % 60 %, below 99.0 % 100 %, charge 36,000 CNY). Expected figures are
derived in the comments.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import psycopg
import pytest

from config.inventory.loader import load_inventory
from keyline.wiring import EXAMPLE_INVENTORY
from sla import marks, reports, statement
from store import sla as sla_store
from store.circuit_states import StoredState, record_states
from store.database import Database
from store.inventory import apply_inventory

SHANGHAI_OCTOBER = (datetime(2026, 9, 30, 16, tzinfo=UTC), datetime(2026, 10, 31, 16, tzinfo=UTC))
OCTOBER_US = 31 * 86_400 * 1_000_000


@pytest.fixture
def conn(db: Database) -> Iterator[psycopg.Connection]:
    with db.pool.connection() as connection:
        apply_inventory(connection, load_inventory([EXAMPLE_INVENTORY]))
        connection.commit()
        yield connection


def circuit(conn: psycopg.Connection, key: str) -> tuple[int, int]:
    row = conn.execute("SELECT id, customer_id FROM circuits WHERE key = %s", [key]).fetchone()
    assert row is not None
    return row[0], row[1]


def hsbank_circuits(conn: psycopg.Connection) -> list[str]:
    return [row[0] for row in conn.execute(
        """SELECT c.key FROM circuits c JOIN customers cu ON cu.id = c.customer_id
            WHERE cu.key = 'hsbank' AND c.sla_contract_id IS NOT NULL ORDER BY c.key""")]


def states(conn: psycopg.Connection, key: str, *changes: tuple[datetime, str]) -> None:
    circuit_id, customer_id = circuit(conn, key)
    record_states(conn, [StoredState(circuit_id, customer_id, at, state, None, None,
                                     f"test {state}", "test", (), (), None)
                         for at, state in changes])


def every_circuit_up(conn: psycopg.Connection, since: datetime) -> None:
    for key, in conn.execute("SELECT key FROM circuits WHERE retired_at IS NULL").fetchall():
        states(conn, key, (since, "up"))


def test_a_months_statement_from_the_store_recomputes_exactly(
        conn: psycopg.Connection) -> None:
    every_circuit_up(conn, datetime(2026, 9, 1, tzinfo=UTC))
    target = "HSB-L3VPN-0001"  # on hsbank-gold
    cut = datetime(2026, 10, 10, 2, 0, tzinfo=UTC)
    states(conn, target, (cut, "down"), (cut + timedelta(minutes=45), "up"))
    conn.commit()
    document = reports.build_statement(
        conn, month="2026-10", as_of=datetime(2026, 11, 2, tzinfo=UTC),
        customer_ids=[circuit(conn, target)[1]], subject={"kind": "customer", "key": "hsbank"})
    figures = document["figures"]["circuits"][target]
    # October in Shanghai: 31 days of real time; 45 minutes down:
    # availability = 1 - 2700 s / 2,678,400 s = 2,675,700 / 2,678,400 = 99.89919... %
    assert figures["period"] == {"start": SHANGHAI_OCTOBER[0].isoformat(),
                                 "end": SHANGHAI_OCTOBER[1].isoformat()}
    assert figures["down_s"] == "2700.000000"
    assert figures["availability"] == str(Fraction(2_675_700, 2_678_400)).replace(" ", "")
    assert figures["availability_pct"] == "99.899193"  # rounded down
    # below 99.9 % (strict): 60 % of 36,000 CNY
    assert figures["credit"] == {"step": "below 99.9 %", "credit_pct": "60",
                                 "amount": "21600.00", "currency": "CNY"}
    assert figures["outage_count"] == 1
    others = [key for key in hsbank_circuits(conn) if key != target]
    assert others and all(document["figures"]["circuits"][key]["down_s"] == "0.000000"
                          and document["figures"]["circuits"][key]["credit"] is None
                          for key in others)
    # the statement alone, through JSON, gives the same figures
    text = json.dumps(document, ensure_ascii=False)
    computed, differences = statement.check(json.loads(text))
    assert differences == []
    assert computed == document["figures"]
    # and a changed input is found
    changed = json.loads(text)
    for item in changed["circuits"]:
        if item["key"] == target:
            for span in item["states"]:
                if span["state"] == "down":
                    span["end"] = (cut + timedelta(minutes=46)).isoformat()
                elif span["start"] == (cut + timedelta(minutes=45)).isoformat():
                    span["start"] = (cut + timedelta(minutes=46)).isoformat()
    _, differences = statement.check(changed)
    assert any(f"circuits.{target}.down_s" in line and "2760.000000" in line
               for line in differences)
    # states that overlap are refused, naming where
    for item in changed["circuits"]:
        if item["key"] == target:
            item["states"][1]["end"] = (cut + timedelta(minutes=50)).isoformat()
    with pytest.raises(statement.StatementError, match=r"circuits\[\d+\]\.states\[2\]"):
        statement.check(changed)


def test_an_issued_report_is_corrected_by_a_new_version(conn: psycopg.Connection) -> None:
    every_circuit_up(conn, datetime(2026, 9, 1, tzinfo=UTC))
    target = "HSB-L3VPN-0001"  # on hsbank-gold
    cut = datetime(2026, 10, 10, 2, 0, tzinfo=UTC)
    states(conn, target, (cut, "down"), (cut + timedelta(minutes=45), "up"))
    conn.commit()
    issued = reports.issue_due_reports(conn, datetime(2026, 11, 1, 2, tzinfo=UTC), 1.0)
    conn.commit()
    kinds = {(r.kind, r.subject) for r in issued}
    assert ("customer", "hsbank") in kinds and ("account_manager", "am.chen") in kinds
    first = sla_store.latest_report(conn, "customer", "hsbank", "2026-10")
    assert first is not None and first.version == 1
    assert first.statement["figures"]["circuits"][target]["credit"]["amount"] == "21600.00"
    # the scheduler's next look issues nothing more
    assert reports.issue_due_reports(conn, datetime(2026, 11, 1, 3, tzinfo=UTC), 1.0) == []
    # 30 of the 45 minutes were the customer's (its own power work)
    result = marks.mark_customer_caused(
        conn, "am.chen", target, cut.isoformat(), (cut + timedelta(minutes=30)).isoformat(),
        "客户机房断电 power work at the customer's site")
    conn.commit()
    second = sla_store.latest_report(conn, "customer", "hsbank", "2026-10")
    assert second is not None and second.version == 2
    assert any(r.kind == "customer" and r.version == 2 for r in result.reissued)
    assert "customer-caused time marked" in (second.reason or "")
    # 15 minutes down of 31 days minus the 30 excluded minutes:
    # 1 - 900 / (2,678,400 - 1,800) = 2,675,700 / 2,676,600 = 99.96637... %: below 99.995
    # (10 %) but not below 99.95: 3,600.00 CNY
    figures = second.statement["figures"]["circuits"][target]
    assert figures["down_s"] == "900.000000"
    assert figures["excluded_s"] == "1800.000000"
    assert Fraction(figures["availability"]) == Fraction(2_675_700, 2_676_600)
    assert figures["credit"]["amount"] == "3600.00"
    assert second.difference["summary"]["down_s"] == {"before": "2700.000000",
                                                      "after": "900.000000"}
    # version 1 stays as issued
    again = sla_store.get_report(conn, first.id)
    assert again is not None and again.statement == first.statement
    # the mark's reason is in the statement the customer gets
    circuit_doc = next(c for c in second.statement["circuits"] if c["key"] == target)
    assert circuit_doc["customer_caused"][0]["reason"].startswith("客户机房断电")
    # the issued reports were queued for e-mail
    queued = conn.execute(
        "SELECT destination, payload->>'kind' FROM notification_outbox"
        " WHERE payload->>'kind' = 'sla_report'").fetchall()
    assert len(queued) >= 3


def test_marks_are_refused_to_customers_and_to_other_managers(
        conn: psycopg.Connection) -> None:
    from alarms.actions import ActionError, Refusal
    from store.queries import Viewer

    target = "HSB-L3VPN-0001"  # on hsbank-gold
    _circuit_id, customer_id = circuit(conn, target)
    cut = datetime(2026, 10, 10, 2, 0, tzinfo=UTC)
    customer = Viewer("hsbank.ops", "customer", customer_id, "hsbank")
    with pytest.raises(ActionError) as refused:
        marks.mark_customer_caused(conn, customer, target, cut, cut + timedelta(minutes=5),
                                   "mine")
    assert refused.value.refusal is Refusal.FORBIDDEN
    other_manager = Viewer("am.zhao", "account_manager")
    with pytest.raises(ActionError) as refused:
        marks.mark_customer_caused(conn, other_manager, target, cut,
                                   cut + timedelta(minutes=5), "not mine")
    assert refused.value.refusal is Refusal.NOT_FOUND
    manager = Viewer("am.chen", "account_manager")
    for start, end, field in ((cut, cut, "end"), (cut, cut + timedelta(days=400), "end"),
                              ("yesterday", cut, "start")):
        with pytest.raises(ActionError) as refused:
            marks.mark_customer_caused(conn, manager, target, start, end, "why")
        assert refused.value.field == field
    with pytest.raises(ActionError) as refused:
        marks.mark_customer_caused(conn, manager, target, cut, cut + timedelta(minutes=5), " ")
    assert refused.value.field == "reason"


def test_month_edges_follow_the_contracts_time_zone() -> None:
    # Shanghai is UTC+8 all year: October starts at 16:00 UTC on 30 September
    assert statement.month_period("2026-10", "Asia/Shanghai") == SHANGHAI_OCTOBER
    # Berlin's October has 745 hours (summer time ends on the 25th)
    start, end = statement.month_period("2026-10", "Europe/Berlin")
    assert (end - start) == timedelta(hours=745)
    for bad in ("2026-13", "2026-1x", "", "10-2026"):
        with pytest.raises(ValueError, match="YYYY-MM"):
            statement.month_of(bad)
    assert statement.previous_month(datetime(2026, 11, 1, 0, 30, tzinfo=UTC), "UTC") == \
        "2026-10"
    assert statement.previous_month(datetime(2026, 1, 1, tzinfo=UTC), "UTC") == "2025-12"
    assert Decimal(statement.seconds_text(1_500_000)) == Decimal("1.5")


def test_dropped_samples_are_unknown_only_where_degraded_counts(
        conn: psycopg.Connection) -> None:
    from store.collection import record_drops

    every_circuit_up(conn, datetime(2026, 9, 1, tzinfo=UTC))
    # the collector's spool dropped 30 minutes of samples of ce-hsbank-sh-hq, the A end of
    # HSB-L3VPN-0001 (hsbank-gold: degraded counts as down) and of HSB-INET-0001 (gold: it
    # does not)
    device = conn.execute("SELECT id FROM devices WHERE key = 'ce-hsbank-sh-hq'").fetchone()[0]
    lost = datetime(2026, 10, 12, 3, 0, tzinfo=UTC)
    record_drops(conn, [(device, "samples", 1800, lost.isoformat(),
                         (lost + timedelta(minutes=30)).isoformat())])
    conn.commit()
    document = reports.build_statement(conn, month="2026-10",
                                       as_of=datetime(2026, 11, 2, tzinfo=UTC))
    bank = document["figures"]["circuits"]["HSB-L3VPN-0001"]
    # 30 minutes unknown, excluded by default: up is 31 days less 30 minutes, down 0, and
    # availability stays 100 %; the gap is reported
    assert bank["monitoring_gap_s"] == "1800.000000"
    assert bank["up_s"] == f"{31 * 86_400 - 1_800}.000000"
    assert bank["availability"] == "1/1"
    assert [i["cause"] for i in bank["intervals"]] == [
        "samples dropped: a degradation cannot be ruled out"]
    gold = document["figures"]["circuits"]["HSB-INET-0001"]
    assert gold["monitoring_gap_s"] == "0.000000" and gold["up_s"] == f"{31 * 86_400}.000000"
    circuit_doc = next(c for c in document["circuits"] if c["key"] == "HSB-INET-0001")
    assert circuit_doc["samples_dropped"] and circuit_doc["samples_dropped"][0]["rows"] == 1800
    assert statement.check(json.loads(json.dumps(document)))[1] == []
