"""`keyline alarm` and `keyline maintenance` (keyline/alarms_cli.py), on the main command as
keyline/cli.py registers them."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta

import click
import pytest
from click.testing import CliRunner

from alarms.model import (
    Alarm,
    AlarmChange,
    AlarmKey,
    AlarmType,
    ObjectKind,
    Severity,
    TimelineEntry,
)
from alarms.pipeline import AlarmPipeline, store_publisher
from alarms.rules import AlarmSettings
from collectors.model import Observation
from config.secrets import register_secret
from keyline.alarms_cli import alarm, maintenance
from keyline.cli import main
from store import alarms as alarm_store
from store.observations import recent_observations, record_observations
from tests.test_alarms_store import insert_device


@pytest.fixture
def cli(db, monkeypatch):
    for name in list(os.environ):
        if name.startswith("KEYLINE_"):
            monkeypatch.delenv(name)
    group = click.Group("keyline-test", params=main.params, callback=main.callback)
    group.add_command(alarm)
    group.add_command(maintenance)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(group, ["--database-url", db.url, *args])
        assert result.exit_code == code, (result.output, result.exception)
        return result.output

    return run


def test_alarm_list_show_ack_unack_clear(db, cli) -> None:
    pipeline = AlarmPipeline(AlarmSettings(raise_after_s=0), publisher=store_publisher(db.pool))
    now = datetime.now(UTC)
    (change,) = pipeline.process([Observation(now, 77, "oper_status", "up", "down", "trap")],
                                 now)
    alarm_id = str(change.alarm.id)
    assert "link_down" in cli("alarm", "list") and "port:77" in cli("alarm", "list")
    cli("alarm", "ack", alarm_id, "--by", "alice", "--comment", "on it")
    assert " A- " in cli("alarm", "list")
    cli("alarm", "unack", alarm_id, "--by", "alice", "--comment", "handing over")
    cli("alarm", "clear", alarm_id, "--by", "bob", "--reason", "spliced")
    shown = cli("alarm", "show", alarm_id)
    assert "state: cleared" in shown
    for line in ("acknowledged    alice", "on it", "unacknowledged  alice", "handing over",
                 "cleared         bob", "spliced"):
        assert line in shown
    assert "no active alarms" in cli("alarm", "list")
    assert alarm_id in cli("alarm", "list", "--all")
    assert "no alarm 999999" in cli("alarm", "show", "999999", code=2)
    assert "cannot be acknowledged" in cli("alarm", "ack", alarm_id, "--by", "x", code=2)


def test_maintenance_add_list_end(db, cli) -> None:
    with db.pool.connection() as conn:
        insert_device(conn, "p-sh1")
    out = cli("maintenance", "add", "--scope", "device:p-sh1", "--start", "now", "--end", "+2h",
              "--reason", "line card swap", "--by", "alice")
    window_id = re.search(r"maintenance window (\d+):", out).group(1)
    listed = cli("maintenance", "list")
    assert "device:p-sh1" in listed and "line card swap" in listed
    assert f"maintenance window {window_id} ended by bob" in cli(
        "maintenance", "end", window_id, "--by", "bob")
    with db.pool.connection() as conn:
        (window,) = alarm_store.list_windows(conn)
    assert window.ended_by == "bob"
    assert "--scope: scope 'device:nope': no such device" in cli(
        "maintenance", "add", "--scope", "device:nope", "--end", "+1h", "--reason", "x",
        "--by", "a", code=2)
    assert "--end: 'tomorrow' is not a time" in cli(
        "maintenance", "add", "--scope", "device:p-sh1", "--end", "tomorrow", "--reason", "x",
        "--by", "a", code=2)
    assert "--reason: reason is required" in cli(
        "maintenance", "add", "--scope", "device:p-sh1", "--end", "+1h", "--reason", " ",
        "--by", "a", code=2)
    assert "no maintenance window 999" in cli("maintenance", "end", "999", "--by", "bob",
                                              code=2)
    assert "past windows are immutable" in cli("maintenance", "end", window_id, "--by", "bob",
                                               code=2)


def _error_line(output: str) -> str:
    (line,) = [line for line in output.splitlines() if line.startswith("keyline: error: ")]
    return line


def test_maintenance_add_refuses_a_window_starting_in_the_past(db, cli) -> None:
    """An outage is not turned into excluded downtime after the fact: the command line
    keeps the portal's rule (alarms.actions), and stores nothing when it refuses."""
    with db.pool.connection() as conn:
        insert_device(conn, "p-sh1")
        now = conn.execute("SELECT now()").fetchone()[0]
    add = ("maintenance", "add", "--scope", "device:p-sh1", "--end", "+2h",
           "--reason", "fibre cut, renamed", "--by", "alice", "--start")
    for start in ((now - timedelta(hours=3)).isoformat(),
                  (now - timedelta(minutes=11)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")):
        refused = cli(*add, start, code=2)
        assert _error_line(refused) == ("keyline: error: --start: a window may not start more "
                                        "than 10 minutes in the past")
    with db.pool.connection() as conn:
        assert alarm_store.list_windows(conn) == []
    cli(*add, (now - timedelta(minutes=5)).isoformat())
    with db.pool.connection() as conn:
        (window,) = alarm_store.list_windows(conn)
    assert window.declared_by == "alice" and window.starts_at < now
    assert "--end: a window must end after it starts" in cli(
        "maintenance", "add", "--scope", "device:p-sh1", "--start", "+2h", "--end", "+1h",
        "--reason", "x", "--by", "a", code=2)


def test_maintenance_add_refuses_a_window_without_end_in_sight(db, cli, monkeypatch) -> None:
    """An end in year 9999 is a clear error naming the option; the bound is the setting."""
    with db.pool.connection() as conn:
        insert_device(conn, "p-sh1")
    add = ("maintenance", "add", "--scope", "device:p-sh1", "--reason", "swap", "--by", "a")
    refused = cli(*add, "--end", "9999-12-31T23:59:59Z", code=2)
    assert _error_line(refused) == ("keyline: error: --end: a window may last at most 31 days"
                                    " (setting alarms.maintenance_max_days)")
    refused = cli(*add, "--start", "+400d", "--end", "+401d", code=2)
    assert _error_line(refused).startswith(
        "keyline: error: --start: a window may start at most 365 days ahead")
    monkeypatch.setenv("KEYLINE_ALARMS__MAINTENANCE_MAX_DAYS", "2")
    assert "--end: a window may last at most 2 days" in cli(*add, "--end", "+3d", code=2)
    with db.pool.connection() as conn:
        assert alarm_store.list_windows(conn) == []
    cli(*add, "--end", "+2d")


def test_alarm_actions_keep_the_portals_rules(db, cli) -> None:
    pipeline = AlarmPipeline(AlarmSettings(raise_after_s=0), publisher=store_publisher(db.pool))
    now = datetime.now(UTC)
    (change,) = pipeline.process([Observation(now, 77, "oper_status", "up", "down", "trap")],
                                 now)
    alarm_id = str(change.alarm.id)
    too_long = "x" * 2001
    assert "--comment: comment may be at most 2000 characters" in cli(
        "alarm", "ack", alarm_id, "--by", "alice", "--comment", too_long, code=2)
    assert "--reason: reason is required" in cli("alarm", "clear", alarm_id, "--by", "bob",
                                                 "--reason", "  ", code=2)
    assert "--by: say who acts" in cli("alarm", "ack", alarm_id, "--by", "", code=2)
    with db.pool.connection() as conn:
        alarm = alarm_store.get_alarm(conn, int(alarm_id))
    assert alarm.active and not alarm.acknowledged
    assert [e.action for e in alarm.timeline] == ["raised"]


# --- why an alarm was raised ---------------------------------------------------------------


def _example_port(conn) -> tuple[int, int]:
    from config.inventory.loader import load_inventory
    from keyline.wiring import EXAMPLE_INVENTORY
    from store.inventory import apply_inventory

    apply_inventory(conn, load_inventory([EXAMPLE_INVENTORY]))
    return conn.execute(
        "SELECT d.id, p.id FROM ports p JOIN devices d ON d.id = p.device_id"
        " WHERE d.key = 'p-sh1' AND p.name = 'Eth-Trunk1'").fetchone()


def _seen_at(conn, observation_id: int, object_id: int) -> str:
    (stored,) = [o for o in recent_observations(conn, object_id=object_id)
                 if o.id == observation_id]
    return f"{stored.time:%H:%M:%S}"


def test_alarm_show_says_why_a_trap_raised_it(db, cli) -> None:
    now = datetime.now(UTC)
    with db.pool.connection() as conn:
        device_id, port_id = _example_port(conn)
        trap = {"trap": "linkDown", "if_index": 7, "device_id": device_id,
                "source_address": "192.0.2.77"}
        (observation_id,) = record_observations(conn, [Observation(
            now, port_id, "oper_status", "up", "down", "trap", trap)])
    pipeline = AlarmPipeline(AlarmSettings(raise_after_s=0), publisher=store_publisher(db.pool))
    (change,) = pipeline.process([Observation(now, port_id, "oper_status", "up", "down", "trap",
                                              {**trap, "observation_id": observation_id})], now)
    shown = cli("alarm", "show", str(change.alarm.id))
    with db.pool.connection() as conn:
        at = _seen_at(conn, observation_id, port_id)
    assert (f"raised because: port Eth-Trunk1 of p-sh1 went down (seen by a linkDown trap at "
            f"{at})") in shown.splitlines()
    assert "192.0.2.77" not in shown


def _stored_alarm(conn, key: AlarmKey, summary: str, detail: dict,
                  now: datetime | None = None) -> int:
    """An alarm as the pipeline stores one; `now`, when it began (the observation's time)."""
    now = now or conn.execute("SELECT now()").fetchone()[0]
    alarm = Alarm(key, Severity.MAJOR, now, now, summary, detail=detail)
    alarm_store.save_changes(conn, [AlarmChange(alarm, "raised", (
        TimelineEntry(now, "raised", "pipeline", summary, detail),))])
    assert alarm.id is not None
    return alarm.id


def test_alarm_show_says_why_a_poll_failed_without_showing_secrets(db, cli) -> None:
    register_secret("c0mmunity-s3cret")
    now = datetime.now(UTC)
    reason = "unknown user name (tried c0mmunity-s3cret)"
    with db.pool.connection() as conn:
        device_id, _ = _example_port(conn)
        (observation_id,) = record_observations(conn, [Observation(
            now, device_id, "reachability", "reachable", "auth-failed", "poll",
            {"reason": reason})])
        alarm_id = _stored_alarm(
            conn, AlarmKey(ObjectKind.DEVICE, device_id, AlarmType.POLL_FAILED),
            "device poll failed: auth-failed",
            {"source": "poll", "observation_id": observation_id, "reason": reason,
             "status": "auth-failed", "credential": "c0mmunity-s3cret"}, now)
        at = _seen_at(conn, observation_id, device_id)
    shown = cli("alarm", "show", str(alarm_id))
    assert (f"raised because: device poll failed: auth-failed: unknown user name (tried "
            f"********) (seen by a poll at {at})") in shown.splitlines()
    assert "c0mmunity-s3cret" not in shown


def test_alarm_show_says_why_a_threshold_was_crossed(db, cli) -> None:
    with db.pool.connection() as conn:
        _, port_id = _example_port(conn)
        alarm_id = _stored_alarm(
            conn, AlarmKey(ObjectKind.PORT, port_id, AlarmType.THRESHOLD,
                           "if_in_utilization_pct"),
            "if_in_utilization_pct 93.2 >= 90",
            {"metric": "if_in_utilization_pct", "value": 93.24, "raise_at": 90.0,
             "clear_below": 80.0})
    shown = cli("alarm", "show", str(alarm_id))
    assert ("raised because: if_in_utilization_pct 93.2 >= 90 on port Eth-Trunk1 of p-sh1 "
            "(clears below 80)") in shown.splitlines()


def test_alarm_show_says_a_falling_value_crossed_below_its_level(db, cli) -> None:
    with db.pool.connection() as conn:
        _, port_id = _example_port(conn)
        alarm_id = _stored_alarm(
            conn, AlarmKey(ObjectKind.PORT, port_id, AlarmType.THRESHOLD, "optical_rx_dbm"),
            "optical_rx_dbm -27.4 <= -25",
            {"metric": "optical_rx_dbm", "value": -27.42, "raise_at": -25.0,
             "direction": "below", "clear_above": -23.0})
    shown = cli("alarm", "show", str(alarm_id))
    assert ("raised because: optical_rx_dbm -27.4 <= -25 on port Eth-Trunk1 of p-sh1 "
            "(clears above -23)") in shown.splitlines()


def test_alarm_list_names_the_objects_the_inventory_knows(db, cli) -> None:
    from config.inventory.loader import load_inventory
    from keyline.wiring import EXAMPLE_INVENTORY
    from store.inventory import apply_inventory

    with db.pool.connection() as conn:
        apply_inventory(conn, load_inventory([EXAMPLE_INVENTORY]))
        port_id = conn.execute(
            "SELECT p.id FROM ports p JOIN devices d ON d.id = p.device_id"
            " WHERE d.key = 'p-sh1' AND p.name = 'Eth-Trunk1'").fetchone()[0]
    pipeline = AlarmPipeline(AlarmSettings(raise_after_s=0), publisher=store_publisher(db.pool))
    now = datetime.now(UTC)
    pipeline.process([Observation(now, port_id, "oper_status", "up", "down", "trap")], now)
    listed = cli("alarm", "list")
    assert "port p-sh1:Eth-Trunk1" in listed and f"port:{port_id}" not in listed
