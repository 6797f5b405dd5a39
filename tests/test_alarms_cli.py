"""`keyline alarm` and `keyline maintenance` (keyline/alarms_cli.py), on the main command as
keyline/cli.py registers them."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime

import click
import pytest
from click.testing import CliRunner

from alarms.pipeline import AlarmPipeline, store_publisher
from alarms.rules import AlarmSettings
from collectors.model import Observation
from keyline.alarms_cli import alarm, maintenance
from keyline.cli import main
from store import alarms as alarm_store
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
    cli("maintenance", "end", window_id, "--by", "bob")
    with db.pool.connection() as conn:
        (window,) = alarm_store.list_windows(conn)
    assert window.ended_by == "bob"
    assert "no such device" in cli("maintenance", "add", "--scope", "device:nope", "--end",
                                   "+1h", "--reason", "x", "--by", "a", code=2)
    assert "not a time" in cli("maintenance", "add", "--scope", "device:p-sh1", "--end",
                               "tomorrow", "--reason", "x", "--by", "a", code=2)


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
