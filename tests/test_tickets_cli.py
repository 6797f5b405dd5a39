"""`keyline ticket` (keyline/tickets_cli.py), on the main command as keyline/cli.py registers
it, against a real store holding the example inventory.

Expected deadlines come from the example contracts (config/example/sla.yaml, all 24x7): a
reported fault is P3 by the default priority rules; hsbank's circuits are on hsbank-gold
(P3: 60 min response, 1440 min resolution; P1: 10 / 180).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import click
import pytest
from click.testing import CliRunner

from config.inventory.loader import load_inventory
from keyline.cli import main
from keyline.tickets_cli import PRIORITIES, STATES, ticket
from keyline.wiring import EXAMPLE_INVENTORY
from sla import tickets
from sla.settings import SlaSettings
from store.inventory import apply_inventory
from tests.test_sla_tickets import state


@pytest.fixture
def cli(db, monkeypatch):
    for name in list(os.environ):
        if name.startswith("KEYLINE_"):
            monkeypatch.delenv(name)
    with db.pool.connection() as conn:
        apply_inventory(conn, load_inventory([EXAMPLE_INVENTORY]))
    group = click.Group("keyline-test", params=main.params, callback=main.callback)
    group.add_command(ticket)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(group, ["--database-url", db.url, *args])
        assert result.exit_code == code, (result.output, result.exception)
        return result.output

    return run


@pytest.fixture
def shanghai_terminal(monkeypatch) -> Iterator[ZoneInfo]:
    """This process's local zone is Asia/Shanghai (UTC+8, no DST), as a terminal's TZ."""
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield ZoneInfo("Asia/Shanghai")
    monkeypatch.undo()
    time.tzset()


def opened_id(output: str) -> int:
    match = re.search(r"ticket (\d+) opened", output)
    assert match, output
    return int(match.group(1))


def row_of(db, ticket_id: int) -> tuple:
    with db.pool.connection() as conn:
        return conn.execute(
            "SELECT state, priority, response_due_at, resolution_due_at, acknowledged_by"
            " FROM tickets WHERE id = %s", [ticket_id]).fetchone()


def test_the_cli_offers_the_domains_states_and_priorities() -> None:
    assert STATES == tickets.STATES and PRIORITIES == tickets.PRIORITIES


def test_open_list_and_work_a_ticket(db, cli, shanghai_terminal) -> None:
    out = cli("ticket", "open", "--circuit", "HSB-L3VPN-0001", "--title", "packet loss",
              "--description", "since 9:00, by phone", "--by", "noc.wang")
    assert "(P3) for hsbank" in out
    ticket_id = opened_id(out)
    _, priority, response_due, resolution_due, _ = row_of(db, ticket_id)
    assert priority == "P3"
    listed = cli("ticket", "list")
    line = next(x for x in listed.splitlines() if x.split()[0] == str(ticket_id))
    # the deadlines in the terminal's zone (UTC+8), to the minute, with the time left:
    # 24x7 hsbank-gold P3 is 60 min to respond and 1440 min (1 day) to resolve, so a
    # moment after opening about 59 min and 23 h 59 min are left
    local = response_due.astimezone(shanghai_terminal).strftime("%Y-%m-%d %H:%M")
    assert f"{local} (59m)" in line or f"{local} (1h00m)" in line, line
    local = resolution_due.astimezone(shanghai_terminal).strftime("%Y-%m-%d %H:%M")
    assert f"{local} (23h59m)" in line or f"{local} (1d00h)" in line, line
    for word in ("P3", "open", "hsbank", "fault", "packet loss [HSB-L3VPN-0001]"):
        assert word in line
    assert re.search(r"\)\s+-\s+packet loss", line), line  # nothing breached

    cli("ticket", "ack", str(ticket_id), "--by", "noc.wang", "--comment", "on it")
    assert row_of(db, ticket_id)[0] == "acknowledged"
    assert row_of(db, ticket_id)[4] == "noc.wang"
    cli("ticket", "start", str(ticket_id), "--by", "eng.liu")
    assert "--comment: comment is required" in cli(
        "ticket", "pause", str(ticket_id), "--by", "eng.liu", code=2)
    out = cli("ticket", "pause", str(ticket_id), "--by", "eng.liu", "--comment",
              "please power-cycle the CE")
    assert "now pending customer" in out
    assert "paused (" in cli("ticket", "list")
    cli("ticket", "resume", str(ticket_id), "--by", "eng.liu")
    cli("ticket", "comment", str(ticket_id), "SFP suspected", "--internal", "--by", "eng.liu")
    cli("ticket", "comment", str(ticket_id), "we are replacing a part", "--by", "eng.liu")
    out = cli("ticket", "priority", str(ticket_id), "P1", "--reason", "VIP", "--by", "noc.wang")
    assert "is P1 now" in out
    assert "--comment: comment is required" in cli(
        "ticket", "resolve", str(ticket_id), "--by", "eng.liu", code=2)
    cli("ticket", "resolve", str(ticket_id), "--by", "eng.liu", "--comment", "SFP replaced")
    assert "no active tickets" in cli("ticket", "list")
    cli("ticket", "reopen", str(ticket_id), "--by", "noc.wang", "--comment", "flapping again")
    cli("ticket", "resolve", str(ticket_id), "--by", "eng.liu", "--comment", "cable too")
    cli("ticket", "close", str(ticket_id), "--by", "noc.wang")
    assert row_of(db, ticket_id)[0] == "closed"
    assert str(ticket_id) in cli("ticket", "list", "--all")
    assert str(ticket_id) in cli("ticket", "list", "--state", "closed")
    assert "no tickets" in cli("ticket", "list", "--state", "open")

    shown = cli("ticket", "show", str(ticket_id))
    for text in ("packet loss", "customer: hsbank", "contract: hsbank-gold",
                 "description: since 9:00, by phone", "HSB-L3VPN-0001: reported",
                 "state: closed", "P3 -> P1", "[internal] SFP suspected",
                 "we are replacing a part", "please power-cycle the CE", "flapping again"):
        assert text in shown, text
    internal = next(x for x in shown.splitlines() if "SFP suspected" in x)
    shared = next(x for x in shown.splitlines() if "we are replacing a part" in x)
    assert "[internal]" not in shared and "commented" in internal
    actions = [x.split()[2] for x in shown.split("timeline:")[1].strip().splitlines()]
    assert actions == ["opened", "acknowledged", "in_progress", "paused", "resumed",
                       "commented", "commented", "priority", "resolved", "reopened",
                       "resolved", "closed"]
    # the clocks: response met at the acknowledgement, resolution met at the resolution
    clocks = shown.split("clocks")[1].split("timeline:")[0]
    assert "response: target 10m" in clocks and "resolution: target 3h00m" in clocks
    assert clocks.count("met ") == 2


def test_refusals_are_one_line_naming_the_option(db, cli) -> None:
    ticket_id = opened_id(cli("ticket", "open", "--circuit", "HSB-L3VPN-0001", "--title", "x",
                              "--by", "noc.wang"))
    assert "no ticket 999999" in cli("ticket", "show", "999999", code=2)
    assert "no ticket 999999" in cli("ticket", "ack", "999999", "--by", "noc.wang", code=2)
    assert "no ticket 0" in cli("ticket", "show", "0", code=2)
    assert "--by: say who acts" in cli("ticket", "ack", str(ticket_id), "--by", " ", code=2)
    assert "--circuit: no circuit 'NOPE'" in cli(
        "ticket", "open", "--circuit", "NOPE", "--title", "x", "--by", "a", code=2)
    assert "--title: title is required" in cli(
        "ticket", "open", "--circuit", "HSB-L3VPN-0001", "--title", " ", "--by", "a", code=2)
    assert "--title: title may be at most 200" in cli(
        "ticket", "open", "--circuit", "HSB-L3VPN-0001", "--title", "x" * 201, "--by", "a",
        code=2)
    assert "--customer: no customer 'nope'" in cli("ticket", "list", "--customer", "nope",
                                                   code=2)
    assert "TEXT: text is required" in cli("ticket", "comment", str(ticket_id), " ", "--by",
                                           "a", code=2)
    assert "--reason: reason is required" in cli("ticket", "priority", str(ticket_id), "P2",
                                                 "--reason", "", "--by", "a", code=2)
    assert "cannot be closed" in cli("ticket", "close", str(ticket_id), "--by", "a", code=2)
    assert "cannot be resumed" in cli("ticket", "resume", str(ticket_id), "--by", "a", code=2)
    assert "Error" in cli("ticket", "priority", str(ticket_id), "P9", "--reason", "x",
                          "--by", "a", code=2)  # click's own check of the choice
    # nothing was changed by the refusals
    assert row_of(db, ticket_id)[:2] == ("open", "P3")


def test_list_scopes_by_customer_and_shows_the_nocs_tickets_and_breaches(db, cli) -> None:
    with db.pool.connection() as conn:
        circuits = dict(conn.execute("SELECT key, id FROM circuits").fetchall())
        now = tickets.now_of(conn)
        # JL-ELINE-0002's state unknown: a monitoring gap, the NOC's ticket
        tickets.on_circuit_states(conn, [state(conn, circuits["JL-ELINE-0002"], now, "unknown",
                                               cause_kind="end_device_silent")],
                                  SlaSettings(monitoring_gap_after_s=0))
    hsbank = opened_id(cli("ticket", "open", "--circuit", "HSB-L3VPN-0002", "--title", "slow",
                           "--kind", "complaint", "--by", "noc.wang"))
    with db.pool.connection() as conn:
        gap, = conn.execute("SELECT id FROM tickets WHERE kind = 'monitoring_gap'").fetchone()
        # the complaint's clocks started four days ago: both deadlines are behind it
        at = datetime.now(UTC) - timedelta(days=4)
        conn.execute(
            """UPDATE tickets SET clocks = jsonb_set(jsonb_set(clocks,
                 '{response,running_since}', to_jsonb(%(at)s::text)),
                 '{resolution,running_since}', to_jsonb(%(at)s::text)),
                 response_due_at = %(at)s::timestamptz + interval '4 hours',
                 resolution_due_at = %(at)s::timestamptz + interval '3 days'
               WHERE id = %(id)s""", {"at": at.isoformat(), "id": hsbank})
    listed = cli("ticket", "list")
    lines = {int(x.split()[0]): x for x in listed.splitlines() if x.split()[:1] != ["ID"]
             and x.strip().split(" ")[0].isdigit()}
    assert set(lines) == {gap, hsbank}
    assert " NOC " in lines[gap] and "monitoring_gap" in lines[gap]
    assert "[JL-ELINE-0002]" in lines[gap]
    assert "response,resolution" in lines[hsbank]
    # hsbank-gold P4 (a complaint): 240 min to respond and 4320 min (3 days) to resolve,
    # four days ago: 4d - 4h = 3d20h and 4d - 3d = 1d over
    assert "(-3d20h)" in lines[hsbank] and "(-1d00h)" in lines[hsbank]
    # the queue is by time to breach: the breached complaint first
    assert list(lines) == [hsbank, gap]
    only = cli("ticket", "list", "--customer", "hsbank")
    assert str(hsbank) in only and "JL-ELINE" not in only
    assert "no active tickets" in cli("ticket", "list", "--customer", "jinlu")
