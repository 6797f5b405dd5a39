"""People's actions on alarms and maintenance windows (alarms/actions.py), on a real
database: every rule, the refusal naming the field, nothing stored on a refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alarms import actions
from alarms.actions import MAINTENANCE_START_GRACE, ActionError, Refusal
from alarms.model import Alarm, AlarmChange, AlarmKey, AlarmType, ObjectKind, Severity
from alarms.rules import AlarmSettings
from alarms.stages import entry
from store import alarms as alarm_store
from store.queries import Viewer

ENGINEER = Viewer("eng.liu", "engineer")
MANAGER = Viewer("am.chen", "account_manager")


def add_device(conn, key: str) -> int:
    cred = conn.execute(
        "INSERT INTO credentials (key, kind, params, spec, source) VALUES"
        " (%s, 'snmp_v2c', '{}', '{}', 't') RETURNING id", [key + "-cred"]).fetchone()[0]
    return conn.execute(
        "INSERT INTO devices (key, role, platform, management_address, snmp_port,"
        " snmp_credential_id, poller_group, spec, source) VALUES"
        " (%s, 'P', 'x', '127.0.1.1', 161, %s, 'core', '{}', 't') RETURNING id",
        [key, cred]).fetchone()[0]


def add_alarm(conn, object_id: int = 77) -> int:
    now = conn.execute("SELECT now()").fetchone()[0]
    alarm = Alarm(AlarmKey(ObjectKind.PORT, object_id, AlarmType.LINK_DOWN), Severity.MAJOR,
                  now, now, "port oper status down", detail={"source": "trap"})
    alarm_store.save_changes(conn, [AlarmChange(alarm, "raised", (
        entry(now, "raised", alarm.summary, source="trap"),))])
    assert alarm.id is not None
    return alarm.id


def refusal(call, *args, **kwargs) -> ActionError:
    with pytest.raises(ActionError) as caught:
        call(*args, **kwargs)
    return caught.value


def window_count(conn) -> int:
    return conn.execute("SELECT count(*) FROM maintenance_windows").fetchone()[0]


# --- maintenance windows ---------------------------------------------------------------------


def test_a_window_may_start_only_within_the_grace_before_the_databases_now(db) -> None:
    with db.pool.connection() as conn:
        add_device(conn, "p-sh1")
        late = MAINTENANCE_START_GRACE + timedelta(minutes=1)
        error = refusal(actions.declare_maintenance, conn, "alice", ["device:p-sh1"],
                        -late, timedelta(hours=1), "outage, renamed")
        assert (error.field, error.refusal) == ("starts_at", Refusal.INVALID)
        assert str(error) == "starts_at: a window may not start more than 10 minutes in the past"
        assert window_count(conn) == 0
        # the same as an absolute time, an ISO text, a time without offset (UTC)
        now = conn.execute("SELECT now()").fetchone()[0]
        for start in (now - late, (now - late).isoformat(),
                      (now - late).astimezone(UTC).replace(tzinfo=None)):
            assert refusal(actions.declare_maintenance, conn, "alice", ["device:p-sh1"],
                           start, now + timedelta(hours=1), "x").field == "starts_at"
        assert window_count(conn) == 0
        within = actions.declare_maintenance(
            conn, "alice", ["device:p-sh1"], -(MAINTENANCE_START_GRACE - timedelta(minutes=1)),
            timedelta(hours=1), "  line card swap  ")
    assert within.starts_at < now and within.reason == "line card swap"
    assert within.declared_by == "alice" and [i.key for i in within.scope] == ["p-sh1"]
    with db.pool.connection() as conn:
        assert [w.id for w in alarm_store.list_windows(conn)] == [within.id]


def test_a_window_is_bounded_in_length_and_in_how_far_ahead_it_starts(db) -> None:
    """An end in year 9999 (a typo, or a way to exclude a circuit from its SLA for ever) is
    refused, naming the field; the bounds are settings."""
    with db.pool.connection() as conn:
        add_device(conn, "p-sh1")
        for start, end, field, message in (
                (timedelta(0), "9999-12-31T23:59:59Z", "ends_at",
                 "ends_at: a window may last at most 31 days"),
                (timedelta(0), timedelta(days=31, seconds=1), "ends_at",
                 "ends_at: a window may last at most 31 days"),
                ("9999-12-31T00:00:00Z", "9999-12-31T01:00:00Z", "starts_at",
                 "starts_at: a window may start at most 365 days ahead"),
                (timedelta(days=366), timedelta(days=366, hours=1), "starts_at",
                 "starts_at: a window may start at most 365 days ahead")):
            error = refusal(actions.declare_maintenance, conn, "alice", ["device:p-sh1"],
                            start, end, "swap")
            assert (error.field, error.refusal) == (field, Refusal.INVALID)
            assert str(error).startswith(message), str(error)
        assert window_count(conn) == 0
        # at the bounds: accepted
        actions.declare_maintenance(conn, "alice", ["device:p-sh1"], timedelta(days=364),
                                    timedelta(days=395), "long swap")
        # the settings move the bounds
        strict = AlarmSettings(maintenance_max_days=1, maintenance_max_ahead_days=2)
        error = refusal(actions.declare_maintenance, conn, "alice", ["device:p-sh1"],
                        timedelta(0), timedelta(days=1, seconds=1), "swap", rules=strict)
        assert error.field == "ends_at" and "at most 1 days" in str(error)
        error = refusal(actions.declare_maintenance, conn, "alice", ["device:p-sh1"],
                        timedelta(days=3), timedelta(days=3, hours=1), "swap", rules=strict)
        assert error.field == "starts_at" and "at most 2 days ahead" in str(error)
        assert window_count(conn) == 1


@pytest.mark.parametrize(("change", "field"), [
    ({"scope_texts": []}, "scope"),
    ({"scope_texts": [5]}, "scope"),
    ({"scope_texts": {"device": "p-sh1"}}, "scope"),
    ({"scope_texts": ["rack:12"]}, "scope"),
    ({"scope_texts": ["device:"]}, "scope"),
    ({"scope_texts": ["device:nope"]}, "scope"),
    ({"scope_texts": ["device:p-sh1"] * (actions.MAX_SCOPE_ITEMS + 1)}, "scope"),
    ({"scope_texts": ["device:" + "x" * actions.MAX_SCOPE_TEXT]}, "scope"),
    ({"starts_at": "soon"}, "starts_at"),
    ({"starts_at": None}, "starts_at"),
    ({"starts_at": "9999-12-31T23:59:59-05:00"}, "starts_at"),
    ({"ends_at": timedelta(0)}, "ends_at"),
    ({"ends_at": timedelta(minutes=-1)}, "ends_at"),
    ({"ends_at": 12}, "ends_at"),
    ({"reason": ""}, "reason"),
    ({"reason": "   "}, "reason"),
    ({"reason": None}, "reason"),
    ({"reason": "x" * (actions.MAX_TEXT + 1)}, "reason"),
    ({"reason": "x\x00y"}, "reason"),
    ({"actor": ""}, "actor"),
    ({"actor": "a\x00"}, "actor"),
])
def test_every_rule_of_a_new_window_names_its_field(db, change, field) -> None:
    arguments = {"actor": "alice", "scope_texts": ["device:p-sh1"],
                 "starts_at": timedelta(0), "ends_at": timedelta(hours=2), "reason": "swap"}
    with db.pool.connection() as conn:
        add_device(conn, "p-sh1")
        error = refusal(actions.declare_maintenance, conn, **{**arguments, **change})
        assert (error.field, error.refusal) == (field, Refusal.INVALID)
        assert str(error).startswith(f"{field}: ")
        assert window_count(conn) == 0
        actions.declare_maintenance(conn, **arguments)  # the unchanged arguments are fine
        assert window_count(conn) == 1


def test_scope_as_one_text_and_up_to_the_limit(db) -> None:
    with db.pool.connection() as conn:
        add_device(conn, "p-sh1")
        add_device(conn, "p-bj1")
        window = actions.declare_maintenance(conn, "alice", "device:p-sh1, device:p-bj1\n",
                                             timedelta(0), timedelta(hours=1), "swap")
        assert [i.key for i in window.scope] == ["p-sh1", "p-bj1"]
        many = actions.declare_maintenance(
            conn, "alice", ["device:p-sh1"] * actions.MAX_SCOPE_ITEMS, timedelta(0),
            timedelta(hours=1), "swap")
        assert len(many.scope) == actions.MAX_SCOPE_ITEMS


def test_only_acting_roles_declare_and_end(db) -> None:
    with db.pool.connection() as conn:
        add_device(conn, "p-sh1")
        error = refusal(actions.declare_maintenance, conn, MANAGER, ["device:p-sh1"],
                        timedelta(0), timedelta(hours=1), "swap")
        assert (error.field, error.refusal) == (None, Refusal.FORBIDDEN)
        assert window_count(conn) == 0
        window = actions.declare_maintenance(conn, ENGINEER, ["device:p-sh1"],
                                             timedelta(minutes=-1), timedelta(hours=1), "swap")
        assert window.declared_by == "eng.liu"
        noc = Viewer("noc.wang", "noc")
        error = refusal(actions.end_maintenance, conn, MANAGER, window.id)
        # an account manager does not see a window on the operator's own device at all
        assert error.refusal is Refusal.NOT_FOUND
        ended, cancelled = actions.end_maintenance(conn, noc, window.id)
        assert ended.ended_by == "noc.wang" and not cancelled


def test_ending_and_cancelling_and_the_immutable_past(db) -> None:
    with db.pool.connection() as conn:
        add_device(conn, "p-sh1")
        scope = alarm_store.resolve_scope(conn, ["device:p-sh1"])
        now = conn.execute("SELECT now()").fetchone()[0]
        past = alarm_store.add_window(conn, scope, now - timedelta(days=2),
                                      now - timedelta(days=1), "history", "bob")
        future = actions.declare_maintenance(conn, "alice", ["device:p-sh1"],
                                             timedelta(days=1), timedelta(days=1, hours=1),
                                             "later")
    with db.pool.connection() as conn:
        error = refusal(actions.end_maintenance, conn, "carol", past.id)
        assert (error.field, error.refusal) == ("window_id", Refusal.CONFLICT)
        assert "immutable" in error.message
        missing = refusal(actions.end_maintenance, conn, "carol", 999_999)
        assert (missing.field, missing.refusal) == ("window_id", Refusal.NOT_FOUND)
        assert refusal(actions.end_maintenance, conn, "", future.id).field == "actor"
        assert actions.end_maintenance(conn, "carol", future.id).cancelled
        assert [w.id for w in alarm_store.list_windows(conn)] == [past.id]


# --- alarms ----------------------------------------------------------------------------------


def test_acknowledge_unacknowledge_and_clear(db) -> None:
    with db.pool.connection() as conn:
        alarm_id = add_alarm(conn)
        acked = actions.acknowledge(conn, "alice", alarm_id, "  on it ")
        assert (acked.acknowledged_by, acked.ack_comment) == ("alice", "on it")
        actions.unacknowledge(conn, "alice", alarm_id)
        again = refusal(actions.unacknowledge, conn, "alice", alarm_id)
        assert (again.field, again.refusal) == ("alarm_id", Refusal.CONFLICT)
        cleared = actions.clear(conn, "bob", alarm_id, "spliced")
        assert cleared.state == "cleared"
        late = refusal(actions.acknowledge, conn, "carol", alarm_id)
        assert late.refusal is Refusal.CONFLICT and "cannot be acknowledged" in late.message
        missing = refusal(actions.acknowledge, conn, "carol", 999_999)
        assert (missing.field, missing.refusal) == ("alarm_id", Refusal.NOT_FOUND)
        manual = [(e.action, e.actor, e.comment)
                  for e in alarm_store.get_alarm(conn, alarm_id).timeline if e.actor != "pipeline"]
    assert manual == [("acknowledged", "alice", "on it"), ("unacknowledged", "alice", None),
                      ("cleared", "bob", "spliced")]


@pytest.mark.parametrize(("action", "text", "field"), [
    (actions.clear, None, "reason"),
    (actions.clear, "  ", "reason"),
    (actions.clear, "x" * (actions.MAX_TEXT + 1), "reason"),
    (actions.acknowledge, "x" * (actions.MAX_TEXT + 1), "comment"),
    (actions.acknowledge, 5, "comment"),
    (actions.unacknowledge, "a\x00b", "comment"),
])
def test_texts_of_alarm_actions_are_checked(db, action, text, field) -> None:
    with db.pool.connection() as conn:
        alarm_id = add_alarm(conn)
        actions.acknowledge(conn, "alice", alarm_id)
        error = refusal(action, conn, "bob", alarm_id, text)
        assert (error.field, error.refusal) == (field, Refusal.INVALID)
        alarm = alarm_store.get_alarm(conn, alarm_id)
    assert alarm.state == "active" and alarm.acknowledged_by == "alice"
    assert [e.action for e in alarm.timeline] == ["raised", "acknowledged"]


def test_a_viewer_is_refused_not_found_before_forbidden(db) -> None:
    with db.pool.connection() as conn:
        alarm_id = add_alarm(conn)  # hits no customer: not an account manager's to see
        assert refusal(actions.acknowledge, conn, MANAGER, alarm_id).refusal is (
            Refusal.NOT_FOUND)
        conn.execute("INSERT INTO customers (key, name, account_manager, spec, source)"
                     " VALUES ('hsbank', 'HSB', 'am.chen', '{}', 't')")
        customer = conn.execute("SELECT id FROM customers").fetchone()[0]
        conn.execute("UPDATE alarms SET impacted_customers = %s", [[customer]])
        error = refusal(actions.clear, conn, MANAGER, alarm_id, "x")
        assert (error.field, error.refusal) == (None, Refusal.FORBIDDEN)
        assert error.message == "the role account_manager may not change alarms"
        assert actions.acknowledge(conn, ENGINEER, alarm_id).acknowledged_by == "eng.liu"


def test_the_store_no_longer_judges_but_the_database_still_refuses_a_broken_window(db) -> None:
    """store.alarms persists what it is given (the rules are alarms.actions'); the table's
    constraints and trigger stay the last line."""
    import psycopg

    with db.pool.connection() as conn:
        add_device(conn, "p-sh1")
        scope = alarm_store.resolve_scope(conn, ["device:p-sh1"])
        now = datetime.now(UTC)
        with pytest.raises(psycopg.errors.CheckViolation):
            alarm_store.add_window(conn, scope, now, now - timedelta(hours=1), "x", "alice")
    with db.pool.connection() as conn, pytest.raises(psycopg.errors.CheckViolation):
        alarm_store.add_window(conn, scope, now, now + timedelta(hours=1), "", "alice")
