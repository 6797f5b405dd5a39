"""Alarms in the store: one-transaction publish with events, acknowledgement and manual clear
in the timeline, a new occurrence after an acknowledged alarm clears, maintenance windows
whose past is immutable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from alarms.model import AlarmKey, AlarmType, ObjectKind, ScopeItem
from alarms.pipeline import AlarmPipeline, store_publisher
from alarms.rules import AlarmSettings
from collectors.model import Observation
from store import alarms as alarm_store
from store.events import events_since

SETTINGS = AlarmSettings(raise_after_s=0, clear_after_s=0)


def now() -> datetime:
    return datetime.now(UTC)


def port_obs(port: int, new: str, when: datetime) -> Observation:
    return Observation(when, port, "oper_status", None, new, "trap")


def test_publish_saves_alarms_timeline_position_and_events_in_one_transaction(db) -> None:
    pipeline = AlarmPipeline(SETTINGS, publisher=store_publisher(db.pool))
    t = now()
    (change,) = pipeline.process([port_obs(7, "down", t)], t, last_event_id=41)
    alarm_id = change.alarm.id
    assert alarm_id is not None
    with db.pool.connection() as conn:
        stored = alarm_store.get_alarm(conn, alarm_id)
        assert stored.key == AlarmKey(ObjectKind.PORT, 7, AlarmType.LINK_DOWN)
        assert [e.action for e in stored.timeline] == ["raised"]
        assert alarm_store.position(conn) == 41
        events = events_since(conn, 0)
    assert [(e.topic, e.payload["id"]) for e in events] == [("alarm.raised", alarm_id)]
    pipeline.process([port_obs(7, "up", t + timedelta(seconds=1))], t + timedelta(seconds=1),
                     last_event_id=42)
    with db.pool.connection() as conn:
        stored = alarm_store.get_alarm(conn, alarm_id)
        assert stored.state == "cleared" and alarm_store.position(conn) == 42
        assert events_since(conn, 0)[-1].topic == "alarm.cleared"
        assert alarm_store.active_alarms(conn) == []


def test_a_failed_publish_leaves_nothing_behind(db) -> None:
    def failing(changes, _states, last_id, alarm_for):
        with db.pool.connection() as conn:
            alarm_store.save_changes(conn, changes, alarm_for=alarm_for, last_event_id=last_id)
            raise RuntimeError("crash before commit")

    pipeline = AlarmPipeline(SETTINGS, publisher=failing)
    with pytest.raises(RuntimeError):
        pipeline.process([port_obs(7, "down", now())], now(), last_event_id=5)
    with db.pool.connection() as conn:
        assert alarm_store.active_alarms(conn) == []
        assert alarm_store.position(conn) is None
        assert events_since(conn, 0) == []


def test_acknowledge_unacknowledge_and_clear_are_in_the_timeline(db) -> None:
    pipeline = AlarmPipeline(SETTINGS, publisher=store_publisher(db.pool))
    t = now()
    (change,) = pipeline.process([port_obs(7, "down", t)], t)
    alarm_id = change.alarm.id
    with db.pool.connection() as conn:
        acked = alarm_store.acknowledge(conn, alarm_id, "alice", "looking at it")
        assert acked.acknowledged_by == "alice" and acked.ack_comment == "looking at it"
        alarm_store.unacknowledge(conn, alarm_id, "alice", "wrong alarm")
        alarm_store.acknowledge(conn, alarm_id, "bob", "field team sent")
    # the pipeline's own updates do not undo a person's acknowledgement
    pipeline.process([port_obs(7, "down", t)], t)
    with db.pool.connection() as conn:
        assert alarm_store.get_alarm(conn, alarm_id).acknowledged_by == "bob"
        cleared = alarm_store.clear_alarm(conn, alarm_id, "bob", "fibre spliced")
        assert cleared.state == "cleared"
        timeline = alarm_store.get_alarm(conn, alarm_id).timeline
        with pytest.raises(alarm_store.AlarmStoreError, match="cleared"):
            alarm_store.acknowledge(conn, alarm_id, "carol")
        with pytest.raises(alarm_store.AlarmStoreError, match="no alarm"):
            alarm_store.acknowledge(conn, 999_999, "carol")
        manual = [e for e in events_since(conn, 0) if e.payload.get("manual")]
    assert [(e.action, e.actor, e.comment) for e in timeline] == [
        ("raised", "pipeline", "port oper status down"),
        ("acknowledged", "alice", "looking at it"),
        ("unacknowledged", "alice", "wrong alarm"),
        ("acknowledged", "bob", "field team sent"),
        ("repeated", "pipeline", None),
        ("cleared", "bob", "fibre spliced"),
    ]
    assert [e.topic for e in manual][-1] == "alarm.cleared"
    # the pipeline, told (or finding out when it writes), raises a new occurrence next time
    changes = pipeline.process([port_obs(7, "down", t)], t)
    assert pipeline.active == {}  # the write found the alarm cleared by hand, and forgot it
    assert changes and changes[0].alarm.id == alarm_id
    (again,) = pipeline.process([port_obs(7, "down", t)], t)
    assert again.event == "raised" and again.alarm.id != alarm_id


def test_an_acknowledged_alarm_that_clears_and_returns_is_a_new_occurrence(db) -> None:
    pipeline = AlarmPipeline(SETTINGS, publisher=store_publisher(db.pool))
    t = now()
    (first,) = pipeline.process([port_obs(7, "down", t)], t)
    with db.pool.connection() as conn:
        alarm_store.acknowledge(conn, first.alarm.id, "alice", "mine")
    pipeline.process([port_obs(7, "up", t)], t)
    (second,) = pipeline.process([port_obs(7, "down", t)], t)
    assert second.event == "raised" and second.alarm.id != first.alarm.id
    with db.pool.connection() as conn:
        (active,) = alarm_store.active_alarms(conn)
        assert active.id == second.alarm.id and active.acknowledged_by is None
        assert alarm_store.get_alarm(conn, first.alarm.id).acknowledged_by == "alice"


def test_one_active_alarm_per_key_is_enforced_by_the_database(db) -> None:
    a = AlarmPipeline(SETTINGS, publisher=store_publisher(db.pool))
    b = AlarmPipeline(SETTINGS, publisher=store_publisher(db.pool))
    a.process([port_obs(7, "down", now())], now())
    with pytest.raises(psycopg.errors.UniqueViolation):
        b.process([port_obs(7, "down", now())], now())


def insert_device(conn, key: str) -> int:
    cred = conn.execute(
        "INSERT INTO credentials (key, kind, params, spec, source) VALUES"
        " (%s, 'snmp_v2c', '{}', '{}', 't') RETURNING id", [key + "-cred"]).fetchone()[0]
    return conn.execute(
        "INSERT INTO devices (key, role, platform, management_address, snmp_port,"
        " snmp_credential_id, poller_group, spec, source) VALUES"
        " (%s, 'P', 'x', '127.0.1.1', 161, %s, 'core', '{}', 't') RETURNING id",
        [key, cred]).fetchone()[0]


def test_maintenance_windows_and_their_immutable_past(db) -> None:
    with db.pool.connection() as conn:
        device = insert_device(conn, "p-sh1")
        scope = alarm_store.resolve_scope(conn, ["device:p-sh1"])
        assert scope == (ScopeItem("device", device, "p-sh1"),)
        with pytest.raises(alarm_store.AlarmStoreError, match="no such device"):
            alarm_store.resolve_scope(conn, ["device:nope"])
        with pytest.raises(alarm_store.AlarmStoreError, match="KIND:KEY"):
            alarm_store.resolve_scope(conn, ["rack:12"])
        t = conn.execute("SELECT now()").fetchone()[0]
        running = alarm_store.add_window(conn, scope, t - timedelta(hours=1),
                                         t + timedelta(hours=1), "line card swap", "alice")
        future = alarm_store.add_window(conn, scope, t + timedelta(days=1),
                                        t + timedelta(days=1, hours=2), "upgrade", "alice")
        # a past window, as history written by an earlier run
        past_id = conn.execute(
            "INSERT INTO maintenance_windows (scope, starts_at, ends_at, reason, declared_by)"
            " VALUES ('[{\"kind\": \"device\", \"id\": 1}]', %s, %s, 'old', 'bob') RETURNING id",
            [t - timedelta(days=2), t - timedelta(days=1)]).fetchone()[0]
    with db.pool.connection() as conn:
        assert [w.id for w in alarm_store.list_windows(conn, active_at=t)] == [running.id]
        with pytest.raises(psycopg.errors.CheckViolation, match="immutable"):
            conn.execute("UPDATE maintenance_windows SET reason = 'x' WHERE id = %s", [past_id])
    with db.pool.connection() as conn, pytest.raises(psycopg.errors.CheckViolation,
                                                     match="immutable"):
        conn.execute("DELETE FROM maintenance_windows WHERE id = %s", [past_id])
    with db.pool.connection() as conn, pytest.raises(psycopg.errors.CheckViolation,
                                                     match="begun"):
        conn.execute("UPDATE maintenance_windows SET starts_at = starts_at - interval '1h'"
                     " WHERE id = %s", [running.id])
    with db.pool.connection() as conn:
        with pytest.raises(alarm_store.AlarmStoreError, match="already over"):
            alarm_store.end_window(conn, past_id, "carol")
        ended = alarm_store.end_window(conn, running.id, "carol")
        assert ended.ended_by == "carol" and ended.ends_at <= now() + timedelta(seconds=1)
        alarm_store.end_window(conn, future.id, "carol")  # not begun: cancelled
        remaining = {w.id for w in alarm_store.list_windows(conn)}
        topics = [e.topic for e in events_since(conn, 0)]
    assert remaining == {running.id, past_id}
    assert topics.count("maintenance.changed") == 4


def test_a_symptom_cleared_and_raised_again_in_one_step_frees_its_key_first(db) -> None:
    from alarms.model import Alarm, AlarmChange, Severity
    from alarms.stages import clear, entry

    t = now()
    root = Alarm(AlarmKey(ObjectKind.DEVICE, 1, AlarmType.DEVICE_UNREACHABLE),
                 Severity.CRITICAL, t, t)
    old = Alarm(AlarmKey(ObjectKind.PORT, 7, AlarmType.LINK_DOWN), Severity.MAJOR, t, t,
                root_cause=root.key)
    with db.pool.connection() as conn:
        alarm_store.save_changes(conn, [AlarmChange(a, "raised", (entry(t, "raised"),))
                                        for a in (root, old)])
    assert old.root_cause_id == root.id
    active = {root.key: root, old.key: old}
    gone = clear(active, old, t, "condition gone")
    new = Alarm(old.key, Severity.MAJOR, t, t)
    with db.pool.connection() as conn:
        alarm_store.save_changes(conn, [AlarmChange(new, "raised", (entry(t, "raised"),)),
                                        gone], alarm_for=active.get)
        assert {a.id for a in alarm_store.active_alarms(conn)} == {root.id, new.id}


def test_thresholds_from_samples_with_hysteresis_and_the_stored_tiers(db) -> None:
    """The collector's threshold stage (alarms.thresholds) on samples, with the SLA tiers
    read from the store (a gold circuit's end port raises at 70, another port at 90): only
    the crossings become observations, and the pipeline stores their alarms."""
    from alarms.rules import ThresholdRule
    from alarms.thresholds import ThresholdStage
    from collectors.model import Sample
    from collectors.observations import StateTracker
    from config.inventory.loader import load_inventory
    from keyline.wiring import EXAMPLE_INVENTORY
    from store.inventory import apply_inventory

    with db.pool.connection() as conn:
        apply_inventory(conn, load_inventory([EXAMPLE_INVENTORY]))
        tiers = alarm_store.sla_tiers(conn)
        gold_port, gold_device = conn.execute(
            """SELECT p.id, p.device_id FROM circuits c
                 JOIN sla_contracts s ON s.id = c.sla_contract_id
                 JOIN ports p ON p.id = c.a_port_id
                WHERE s.key = 'gold' ORDER BY c.id LIMIT 1""").fetchone()
        plain_port = conn.execute(
            """SELECT p.id FROM ports p WHERE NOT EXISTS (SELECT 1 FROM circuits c
                WHERE p.id IN (c.a_port_id, c.z_port_id)) ORDER BY p.id LIMIT 1""").fetchone()[0]
    assert tiers[gold_port] == "gold" and gold_device in tiers and plain_port not in tiers
    rules = [ThresholdRule(metric="if_in_utilization_pct", raise_at=90, clear_below=80),
             ThresholdRule(metric="if_in_utilization_pct", raise_at=70, clear_below=60,
                           sla_tier="gold")]
    pipeline = AlarmPipeline(AlarmSettings(raise_after_s=0, clear_after_s=0, thresholds=rules),
                             publisher=store_publisher(db.pool))
    tracker = StateTracker()
    stage = ThresholdStage(rules, tracker.state)
    stage.set_objects(lambda _object_id: False, tiers)
    key = AlarmKey(ObjectKind.PORT, plain_port, AlarmType.THRESHOLD, "if_in_utilization_pct")
    gold = key._replace(object_id=gold_port)
    t = now() - timedelta(seconds=30)
    seen, crossings = [], 0
    for step, (plain, golden) in enumerate([(85, 75), (93, 65), (85, 65), (79, 59)]):
        at = t + timedelta(seconds=step)
        changes = tracker.apply(stage.crossings([
            Sample(at, plain_port, "if_in_utilization_pct", plain),
            Sample(at, gold_port, "if_in_utilization_pct", golden)]))
        crossings += len(changes)
        pipeline.process(changes, at)
        seen.append((key in pipeline.active, gold in pipeline.active))
    # the plain port raises at 93, holds at 85, clears at 79; the gold one raises at 75,
    # holds at 65, clears at 59; four crossings in all
    assert seen == [(False, True), (True, True), (True, True), (False, False)]
    assert crossings == 4
    with db.pool.connection() as conn:
        stored = alarm_store.list_alarms(conn, state=None)
    assert sorted((a.key.object_id, a.state) for a in stored) == sorted(
        [(plain_port, "cleared"), (gold_port, "cleared")])
    assert {a.detail["raise_at"] for a in stored} == {90, 70}
