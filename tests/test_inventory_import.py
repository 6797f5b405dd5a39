"""Importing an inventory into the store: one transaction, idempotent, retire not delete."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from config.inventory.loader import load_inventory
from config.inventory.model import Customer, Inventory, Source
from keyline.wiring import EXAMPLE_INVENTORY
from store.inventory import apply_inventory, credits_of
from store.timeseries import SampleWriter, read_samples
from store.users import add_local_user, authenticate, set_password

TABLES = ("customers", "sites", "credentials", "sla_contracts", "users", "devices", "ports",
          "links", "circuits", "circuit_hops", "vpns", "vpn_sites", "vpn_circuits")


@pytest.fixture(scope="module")
def example() -> Inventory:
    return load_inventory([EXAMPLE_INVENTORY])


def copy_of(inventory: Inventory) -> Inventory:
    return Inventory(**{name: dict(getattr(inventory, name)) for name in (
        "customers", "sites", "credentials", "devices", "links", "circuits", "vpns",
        "sla_contracts", "users")})


def snapshot(conn) -> dict[str, list[tuple]]:
    """Every row of every inventory table, for 'nothing changed' assertions."""
    return {table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            for table in TABLES}


def test_first_import_adds_everything(db, example):
    steps: list[int] = []
    with db.pool.connection() as conn:
        summary = apply_inventory(conn, example, progress=steps.append)
        assert summary.totals()["added"] == example.object_count()
        assert sum(steps) == example.object_count()  # the progress bar reaches 100 %
        for kind, expected in (("customers", example.customers), ("devices", example.devices),
                               ("ports", example.ports), ("links", example.links),
                               ("circuits", example.circuits), ("vpns", example.vpns),
                               ("sla_contracts", example.sla_contracts)):
            count = conn.execute(f"SELECT count(*) FROM {kind}").fetchone()[0]
            assert count == len(expected), kind
        declared_hops = sum(len(c.path) for c in example.circuits.values())
        assert conn.execute("SELECT count(*) FROM circuit_hops").fetchone()[0] == declared_hops
        assert conn.execute("SELECT count(*) FROM import_runs").fetchone()[0] == 1


def test_second_import_changes_nothing(db, example):
    with db.pool.connection() as conn:
        apply_inventory(conn, example)
        before = snapshot(conn)
        summary = apply_inventory(conn, example)
        assert not summary.changed_anything
        assert summary.report().startswith("Inventory unchanged")
        assert summary.totals()["unchanged"] == example.object_count()
        assert snapshot(conn) == before
        assert conn.execute("SELECT count(*) FROM import_runs").fetchone()[0] == 1


def test_changed_import_summary_and_retirement(db, example):
    changed = copy_of(example)
    circuit_keys = sorted(changed.circuits)
    faster, removed = circuit_keys[0], circuit_keys[1]
    # a VPN may name the removed circuit: drop it there too so the inventory stays consistent
    for key, vpn in list(changed.vpns.items()):
        if removed in vpn.circuits:
            kept = tuple(c for c in vpn.circuits if c != removed)
            changed.vpns[key] = replace(vpn, circuits=kept)
    changed.circuits[faster] = replace(changed.circuits[faster],
                                       bandwidth_bps=changed.circuits[faster].bandwidth_bps * 2)
    del changed.circuits[removed]
    changed.customers["newco"] = Customer("newco", "NewCo", None, None, Source("x.yaml", 1))

    with db.pool.connection() as conn:
        apply_inventory(conn, example)
        removed_id = conn.execute("SELECT id FROM circuits WHERE key = %s", [removed]).fetchone()[0]
        when = datetime(2026, 11, 1, tzinfo=UTC)
    with SampleWriter(db.pool) as writer:
        writer.add(when, removed_id, "if_in_bps", 1234.5)

    with db.pool.connection() as conn:
        summary = apply_inventory(conn, changed)
        assert summary.kinds["customers"].added == ["newco"]
        assert summary.kinds["circuits"].changed == [faster]
        assert summary.kinds["circuits"].retired == [removed]
        report = summary.report()
        assert "customers: 1 added (newco)" in report
        assert f"circuits: 1 changed ({faster}); 1 retired ({removed})" in report

        # retired, not deleted: the row, its id and its samples stay readable
        row = conn.execute("SELECT id, retired_at FROM circuits WHERE key = %s",
                           [removed]).fetchone()
        assert row[0] == removed_id and row[1] is not None
        samples = read_samples(conn, removed_id, "if_in_bps", when, when.replace(day=2))
        assert [value for _, value in samples] == [1234.5]

        # it comes back on the same row
        summary = apply_inventory(conn, example)
        assert removed in summary.kinds["circuits"].added
        assert "newco" in summary.kinds["customers"].retired
        row = conn.execute("SELECT id, retired_at FROM circuits WHERE key = %s",
                           [removed]).fetchone()
        assert row == (removed_id, None)


def test_moved_lines_are_not_changes(db, example):
    moved = copy_of(example)
    key = sorted(moved.customers)[0]
    customer = moved.customers[key]
    moved.customers[key] = replace(customer, source=Source(customer.source.file,
                                                           customer.source.line + 40))
    with db.pool.connection() as conn:
        apply_inventory(conn, example)
        summary = apply_inventory(conn, moved)
        assert not summary.changed_anything
        source = conn.execute("SELECT source FROM customers WHERE key = %s", [key]).fetchone()[0]
        assert source.endswith(f":{customer.source.line + 40}")


def test_moved_calendar_dates_are_not_changes_but_their_lines_follow(db, example):
    moved = copy_of(example)
    bronze = moved.sla_contracts["bronze"]
    sources = {day: where.replace("sla.yaml:", "sla.yaml:1") if "sla.yaml:" in where else where
               for day, where in bronze.calendar.sources.items()}  # line 99 -> 199
    moved.sla_contracts["bronze"] = replace(bronze, calendar=replace(bronze.calendar,
                                                                     sources=sources))
    with db.pool.connection() as conn:
        apply_inventory(conn, example)
        summary = apply_inventory(conn, moved)
        assert not summary.changed_anything
        stored = conn.execute("SELECT calendar FROM sla_contracts WHERE key = 'bronze'"
                              ).fetchone()[0]
        assert stored["sources"]["2025-10-01"] == sources["2025-10-01"]
        assert stored["sources"]["2025-10-01"] != bronze.calendar.sources["2025-10-01"]
        assert stored["sources"]["2026-10-10"] == "chinesecalendar 1.11.0"
        # a contract without working dates keeps the spec it had before they existed
        spec = conn.execute("SELECT spec FROM sla_contracts WHERE key = 'gold'").fetchone()[0]
        assert set(spec["calendar"]) == {"timezone", "hours", "holidays"}


def test_failure_midway_writes_nothing(db, example):
    with db.pool.connection() as conn:
        apply_inventory(conn, example)
        before = snapshot(conn)
        changed = copy_of(example)
        for key in sorted(changed.circuits)[:3]:
            del changed.circuits[key]
            for vpn_key, vpn in list(changed.vpns.items()):
                changed.vpns[vpn_key] = replace(
                    vpn, circuits=tuple(c for c in vpn.circuits if c != key))
        processed = 0

        def explode(step: int) -> None:
            nonlocal processed
            processed += step
            if processed > changed.object_count() - 2:
                raise RuntimeError("disk full")

        with pytest.raises(RuntimeError, match="disk full"):
            apply_inventory(conn, changed, progress=explode)
        assert snapshot(conn) == before


def test_import_keeps_passwords_and_local_users(db, example):
    with db.pool.connection() as conn:
        apply_inventory(conn, example)
        inventory_user = sorted(example.users)[0]
        set_password(conn, inventory_user, "a long enough password")
        add_local_user(conn, "local.ops", "noc", "another long password")
        summary = apply_inventory(conn, example)
        assert not summary.changed_anything
        assert authenticate(conn, inventory_user, "a long enough password") is not None
        assert authenticate(conn, "local.ops", "another long password") is not None
        assert authenticate(conn, "local.ops", "wrong password!!") is None

        # a user removed from the files is retired and can no longer log in
        fewer = copy_of(example)
        del fewer.users[inventory_user]
        for key, customer in list(fewer.customers.items()):
            if customer.account_manager == inventory_user:
                fewer.customers[key] = replace(customer, account_manager=None)
        summary = apply_inventory(conn, fewer)
        assert summary.kinds["users"].retired == [inventory_user]
        assert authenticate(conn, inventory_user, "a long enough password") is None
        assert authenticate(conn, "local.ops", "another long password") is not None


def test_import_announces_changes(db, example):
    from store.events import events_since

    with db.pool.connection() as conn:
        apply_inventory(conn, example)
        apply_inventory(conn, example)
        events = [e for e in events_since(conn, 0, 100) if e.topic == "inventory.changed"]
        assert len(events) == 1
        assert events[0].payload["totals"]["added"] == example.object_count()


def test_credit_wording_and_unknown_rule_round_trip(db, example):
    with db.pool.connection() as conn:
        apply_inventory(conn, example)
        # the steps as written before the wording existed (and as strict steps are still
        # written): no `inclusive`, no `unknown_counts_as` in a contract that does not say it
        credits, spec = conn.execute("SELECT credits, spec FROM sla_contracts"
                                     " WHERE key = 'silver'").fetchone()
        written = [{"below_pct": 99.9, "credit_pct": 10.0}, {"below_pct": 99.5,
                                                              "credit_pct": 20.0},
                   {"below_pct": 99.0, "credit_pct": 40.0}]
        assert credits == spec["credits"] == written
        assert "unknown_counts_as" not in spec and "degraded_counts_as_down" not in spec
        assert credits_of(credits) == example.sla_contracts["silver"].credits
        assert all(not step.inclusive for step in credits_of(credits))

        worded = copy_of(example)
        silver = worded.sla_contracts["silver"]
        worded.sla_contracts["silver"] = replace(
            silver, unknown_counts_as="down",
            credits=(silver.credits[0], replace(silver.credits[1], inclusive=True),
                     silver.credits[2]))
        summary = apply_inventory(conn, worded)
        assert summary.kinds["sla_contracts"].changed == ["silver"]
        credits, spec = conn.execute("SELECT credits, spec FROM sla_contracts"
                                     " WHERE key = 'silver'").fetchone()
        assert credits[1] == {"at_or_below_pct": 99.5, "credit_pct": 20.0}
        assert credits == spec["credits"] and spec["unknown_counts_as"] == "down"
        assert credits_of(credits) == worded.sla_contracts["silver"].credits
        assert not apply_inventory(conn, worded).changed_anything
