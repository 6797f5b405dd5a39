"""`keyline alarm` and `keyline maintenance`: look at alarms, acknowledge and clear them,
declare maintenance windows.

An engineer works alarms from here as from the portal: `alarm list` shows the active ones
(root causes with their symptoms indented under them), `alarm show ID` one alarm with its
timeline, `alarm ack` / `alarm unack` / `alarm clear` change it, recording who and why in the
timeline. `maintenance add` declares planned work on devices, ports, circuits or a whole
customer (`--scope device:p-sh1 --scope circuit:HSB-L3VPN-0001`); alarms inside it are
suppressed and the SLA engine excludes its time. A window that is over cannot be changed.

The groups are registered on the main command (`main.add_command(alarm)`,
`main.add_command(maintenance)`); their commands use the main command's state object and
error handling: one line on standard error, exit code 2 for bad input, 1 for a failure.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["alarm", "maintenance"]


def _command(function: F) -> F:
    """Run a command body inside keyline.cli's error handler, with its state object first;
    an alarm-store refusal (no such alarm, a past window) is bad input."""

    @click.pass_obj
    @functools.wraps(function)
    def wrapper(state: Any, *args: Any, **kwargs: Any) -> Any:
        from keyline.cli import _errors_as_lines
        from store.alarms import AlarmStoreError

        if state is None:
            raise click.UsageError("run this through the keyline command")
        with _errors_as_lines(state):
            try:
                return function(state, *args, **kwargs)
            except AlarmStoreError as error:
                _bad_input(str(error))

    return wrapper  # type: ignore[return-value]


def _bad_input(message: str) -> NoReturn:
    from config.secrets import mask_secrets

    click.echo(f"keyline: error: {mask_secrets(message)}", err=True)
    sys.exit(2)


def _connection(state: Any) -> Any:
    from contextlib import ExitStack

    from keyline.wiring import open_store

    stack = ExitStack()
    database = stack.enter_context(open_store(state.settings))
    conn = stack.enter_context(database.pool.connection())
    return stack, conn


def _when(text: str | None, default: datetime | None = None) -> datetime:
    """ISO 8601 time ("2026-03-01T22:00+08:00"; no zone means UTC), "now", or "+2h"."""
    if text is None:
        assert default is not None
        return default
    now = datetime.now(UTC)
    if text == "now":
        return now
    if text.startswith("+") and text[-1] in "mhd" and text[1:-1].isdigit():
        unit = {"m": "minutes", "h": "hours", "d": "days"}[text[-1]]
        return now + timedelta(**{unit: int(text[1:-1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        _bad_input(f"{text!r} is not a time (ISO 8601, 'now' or '+N[mhd]')")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _line(alarm: Any, labels: dict[int, tuple[str, int | None]] | None = None) -> str:
    """One alarm as a line; the object by name when `labels` (store.alarms.object_labels)
    knows it, else by kind and id."""
    flags = "".join([
        "A" if alarm.acknowledged else "-", "S" if alarm.suppressed else "-"])
    label = (labels or {}).get(alarm.key.object_id)
    name = f"{alarm.key.kind} {label[0]}" if label else f"{alarm.key.kind}:{alarm.key.object_id}"
    return (f"{alarm.id:>7} {alarm.severity!s:<8} {flags} {alarm.key.type:<18} "
            f"{name}"
            f"{'/' + alarm.key.qualifier if alarm.key.qualifier else ''}  "
            f"since {alarm.first_seen:%Y-%m-%d %H:%M:%S}  x{alarm.count}  {alarm.summary}")


# --- alarm -------------------------------------------------------------------------------


@click.group("alarm")
def alarm() -> None:
    """List, show, acknowledge and clear alarms."""


@alarm.command("list")
@click.option("--all", "show_all", is_flag=True, help="Cleared alarms too.")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 10_000))
@_command
def list_command(state: Any, show_all: bool, limit: int) -> None:
    """Alarms, root causes first with their symptoms indented (flags: A acknowledged,
    S suppressed by maintenance)."""
    from store.alarms import list_alarms, object_labels

    stack, conn = _connection(state)
    with stack:
        alarms = list_alarms(conn, state=None if show_all else "active", limit=limit)
        labels = object_labels(conn, {a.key.object_id for a in alarms})
    ids = {a.id for a in alarms}
    roots = [a for a in alarms if a.root_cause_id not in ids]
    for root in roots:
        click.echo(_line(root, labels))
        for symptom in alarms:
            if symptom.root_cause_id == root.id:
                click.echo("  " + _line(symptom, labels))
    if not alarms:
        click.echo("no active alarms" if not show_all else "no alarms")


@alarm.command("show")
@click.argument("alarm_id", type=int)
@_command
def show_command(state: Any, alarm_id: int) -> None:
    """One alarm, its impact and its timeline."""
    from store.alarms import get_alarm, object_labels

    stack, conn = _connection(state)
    with stack:
        found = get_alarm(conn, alarm_id)
        labels = object_labels(conn, [found.key.object_id])
    click.echo(_line(found, labels))
    click.echo(f"state: {found.state}"
               + (f" at {found.cleared_at:%Y-%m-%d %H:%M:%S}" if found.cleared_at else ""))
    if found.root_cause_id:
        click.echo(f"root cause: alarm {found.root_cause_id} ({found.root_cause})")
    if found.acknowledged:
        click.echo(f"acknowledged by {found.acknowledged_by} at "
                   f"{found.acknowledged_at:%Y-%m-%d %H:%M:%S}: {found.ack_comment or ''}")
    if found.impacted_circuits:
        click.echo(f"impacted circuits: {', '.join(map(str, sorted(found.impacted_circuits)))}")
        click.echo("impacted customers: "
                   + ", ".join(map(str, sorted(found.impacted_customers))))
    if found.suppressed:
        click.echo("suppressed by maintenance window "
                   + ", ".join(map(str, sorted(found.suppressed_by))))
    click.echo("timeline:")
    for entry in found.timeline:
        click.echo(f"  {entry.time:%Y-%m-%d %H:%M:%S}  {entry.action:<15} {entry.actor:<12} "
                   f"{entry.comment or ''}")


@alarm.command("ack")
@click.argument("alarm_id", type=int)
@click.option("--by", required=True, help="Who acknowledges (user key).")
@click.option("--comment", default=None)
@_command
def ack_command(state: Any, alarm_id: int, by: str, comment: str | None) -> None:
    """Acknowledge an active alarm."""
    from store.alarms import acknowledge

    stack, conn = _connection(state)
    with stack:
        acknowledge(conn, alarm_id, by, comment)
    click.echo(f"alarm {alarm_id} acknowledged by {by}")


@alarm.command("unack")
@click.argument("alarm_id", type=int)
@click.option("--by", required=True)
@click.option("--comment", default=None)
@_command
def unack_command(state: Any, alarm_id: int, by: str, comment: str | None) -> None:
    """Take an acknowledgement back."""
    from store.alarms import unacknowledge

    stack, conn = _connection(state)
    with stack:
        unacknowledge(conn, alarm_id, by, comment)
    click.echo(f"alarm {alarm_id} no longer acknowledged")


@alarm.command("clear")
@click.argument("alarm_id", type=int)
@click.option("--by", required=True)
@click.option("--reason", required=True)
@_command
def clear_command(state: Any, alarm_id: int, by: str, reason: str) -> None:
    """Clear an active alarm by hand (raised again if its condition still holds)."""
    from store.alarms import clear_alarm

    stack, conn = _connection(state)
    with stack:
        clear_alarm(conn, alarm_id, by, reason)
    click.echo(f"alarm {alarm_id} cleared by {by}")


# --- maintenance -------------------------------------------------------------------------


@click.group("maintenance")
def maintenance() -> None:
    """Declare, list and end maintenance windows."""


@maintenance.command("add")
@click.option("--scope", "scopes", multiple=True, required=True,
              help="device:KEY, port:DEVICE:PORT, circuit:KEY or customer:KEY (repeatable).")
@click.option("--start", default="now", show_default=True,
              help="ISO 8601 time, 'now' or '+N[mhd]'.")
@click.option("--end", required=True, help="ISO 8601 time or '+N[mhd]'.")
@click.option("--reason", required=True)
@click.option("--by", required=True, help="Who declares it (user key).")
@_command
def add_command(state: Any, scopes: tuple[str, ...], start: str, end: str, reason: str,
                by: str) -> None:
    """Declare a maintenance window."""
    from store.alarms import add_window, resolve_scope

    starts_at, ends_at = _when(start), _when(end)
    stack, conn = _connection(state)
    with stack:
        window = add_window(conn, resolve_scope(conn, scopes), starts_at, ends_at, reason, by)
    click.echo(f"maintenance window {window.id}: {window.starts_at:%Y-%m-%d %H:%M} to "
               f"{window.ends_at:%Y-%m-%d %H:%M} UTC")


@maintenance.command("list")
@click.option("--all", "show_all", is_flag=True, help="Past windows too.")
@_command
def list_windows_command(state: Any, show_all: bool) -> None:
    """Current and future maintenance windows (with --all, the past ones too)."""
    from store.alarms import list_windows

    stack, conn = _connection(state)
    with stack:
        windows = list_windows(conn, not_ended_before=None if show_all else datetime.now(UTC))
    for w in windows:
        scope = " ".join(f"{i.kind}:{i.key or i.object_id}" for i in w.scope)
        ended = f" (ended by {w.ended_by})" if w.ended_by else ""
        click.echo(f"{w.id:>5} {w.starts_at:%Y-%m-%d %H:%M} .. {w.ends_at:%Y-%m-%d %H:%M}  "
                   f"{scope}  {w.reason}  by {w.declared_by}{ended}")
    if not windows:
        click.echo("no maintenance windows")


@maintenance.command("end")
@click.argument("window_id", type=int)
@click.option("--by", required=True)
@_command
def end_command(state: Any, window_id: int, by: str) -> None:
    """End a running window now (a future one is cancelled)."""
    from store.alarms import end_window

    stack, conn = _connection(state)
    with stack:
        end_window(conn, window_id, by)
    click.echo(f"maintenance window {window_id} ended by {by}")
