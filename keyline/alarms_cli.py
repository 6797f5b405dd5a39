"""`keyline alarm` and `keyline maintenance`: look at alarms, acknowledge and clear them,
declare maintenance windows.

An engineer works alarms from here as from the portal: `alarm list` shows the active ones
(root causes with their symptoms indented under them), `alarm show ID` one alarm with its
timeline, `alarm ack` / `alarm unack` / `alarm clear` change it, recording who and why in the
timeline, and `alarm show` says in plain words why the alarm was raised. `maintenance add`
declares planned work on devices, ports, circuits or a whole customer (`--scope
device:p-sh1 --scope circuit:HSB-L3VPN-0001`); alarms inside it are suppressed and the SLA
engine excludes its time. The changes go through alarms.actions, the same rules as the
portal's: a window may not start more than a few minutes in the past (an outage is not
turned into maintenance after the fact), and a window that is over cannot be changed.

The groups are registered on the main command (`main.add_command(alarm)`,
`main.add_command(maintenance)`); their commands use the main command's state object and
error handling: one line on standard error, exit code 2 for bad input (a refused action
names the option at fault: "--start: a window may not start ..."), 1 for a failure.
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


# An action's field (alarms.actions.ActionError) -> the option a user of this command typed.
_OPTIONS = {"starts_at": "--start", "ends_at": "--end", "scope": "--scope",
            "reason": "--reason", "comment": "--comment", "customer_note": "--customer-note",
            "actor": "--by"}

# Every change carries an internal note (staff only: --note; its former names --comment and
# --reason still work) and an optional note for the customers (alarms.actions).
_NOTE_HELP = "Internal note, staff only (also --comment)."
_CUSTOMER_NOTE_HELP = "Note the customers may read (optional)."


def _command(function: F) -> F:
    """Run a command body inside keyline.cli's error handler, with its state object first;
    a refused action (alarms.actions.ActionError: a bad option, no such alarm, a past
    window) or an alarm-store refusal is bad input."""

    @click.pass_obj
    @functools.wraps(function)
    def wrapper(state: Any, *args: Any, **kwargs: Any) -> Any:
        from alarms.actions import ActionError
        from keyline.cli import _errors_as_lines
        from store.alarms import AlarmStoreError

        if state is None:
            raise click.UsageError("run this through the keyline command")
        with _errors_as_lines(state):
            try:
                return function(state, *args, **kwargs)
            except ActionError as error:
                option = _OPTIONS.get(error.field or "")
                _bad_input(f"{option}: {error.message}" if option else error.message)
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


def _when(text: str, option: str) -> datetime | timedelta:
    """ISO 8601 time ("2026-03-01T22:00+08:00"; no zone means UTC), or "now", "+2h" and
    "-30m" as a timedelta from now: the actions add it to the database's now, not this
    machine's."""
    if text == "now":
        return timedelta(0)
    if text[:1] in ("+", "-") and text[-1:] in ("m", "h", "d") and text[1:-1].isdigit():
        unit = {"m": "minutes", "h": "hours", "d": "days"}[text[-1]]
        try:
            delta = timedelta(**{unit: int(text[1:-1])})
        except OverflowError:
            _bad_input(f"{option}: {text!r} is too far from now")
        return delta if text[0] == "+" else -delta
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        _bad_input(f"{option}: {text!r} is not a time (ISO 8601, 'now', '+N[mhd]' or"
                   " '-N[mhd]')")
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


# --- why an alarm was raised -------------------------------------------------------------
#
# From what the alarm stores: its `detail` and its "raised" timeline entry (the signal the
# pipeline confirmed: alarms/stages.py `observe`, `correlate`), and the
# observation they point at (`observation_id`: which trap, which state). Only known fields
# are read, never a whole detail, so nothing a collector kept for itself (addresses, a
# credential's name) is printed; free texts (a poll's reason) pass through mask_secrets.


def _observation_of(conn: Any, alarm: Any) -> Any:
    """The stored observation that raised the alarm, if it is still there."""
    from store.observations import recent_observations

    wanted = _seen(alarm).get("observation_id")
    if not isinstance(wanted, int):
        return None
    # the observation is the confirmed signal's: at or after the condition began (a margin
    # for an alarm the pipeline restored after a restart)
    candidates = recent_observations(conn, object_id=alarm.key.object_id,
                                     since=alarm.first_seen - timedelta(minutes=5), limit=1000)
    return next((o for o in candidates if o.id == wanted), None)


def _seen(alarm: Any) -> dict[str, Any]:
    """What was seen: the "raised" timeline entry's detail over the alarm's own."""
    raised = next((e for e in alarm.timeline if e.action == "raised"), None)
    return {**(alarm.detail or {}), **((raised.detail or {}) if raised else {})}


def _object_name(kind: str, object_id: int, labels: dict[int, tuple[str, int | None]]) -> str:
    """"port Gi0/0/1 of pe-sh1", "device pe-sh1", "circuit HSB-L3VPN-0001", or by id."""
    label = labels.get(object_id)
    if label is None:
        return f"{kind} {object_id}"
    if kind == "port" and ":" in label[0]:
        device, _, port = label[0].partition(":")
        return f"port {port} of {device}"
    return f"{kind} {label[0]}"


def _why(alarm: Any, labels: dict[int, tuple[str, int | None]], observation: Any,
         root: Any) -> list[str]:
    """Why the alarm was raised, in plain words: "raised because: ...", and what to check
    when the collector left a hint."""
    from config.secrets import mask_secrets

    key, seen = alarm.key, _seen(alarm)

    def text_of(field: str) -> str | None:
        value = seen.get(field)
        return value.strip() or None if isinstance(value, str) else None

    name = _object_name(str(key.kind), key.object_id, labels)
    reason, status = text_of("reason"), text_of("status")
    kind = str(key.type)
    if kind == "link_down" and str(key.kind) == "link":
        text = f"{name} is down at both ends (inferred from its ports' alarms)"
    elif kind == "link_down":
        state = (observation.new if observation is not None
                 else alarm.summary.removeprefix("port oper status ").strip() or "down")
        text = f"{name} went {state}"
    elif str(key.kind) == "device" and status is not None:  # a poll's verdict on the device
        text = f"device poll failed: {status}" + (f": {reason}" if reason else "")
    elif kind == "device_unreachable":
        text = f"{name} stopped answering polls" + (f": {reason}" if reason else "")
    elif kind == "threshold" and all(isinstance(seen.get(f), int | float)
                                     for f in ("value", "raise_at")):
        from alarms.thresholds import summary_of

        text = f"{summary_of({**seen, 'metric': text_of('metric') or key.qualifier})} on {name}"
        # a rule on a falling value (optical power) clears above its level, not below
        clears = (("clear_below", "below") if seen.get("direction", "above") == "above"
                  else ("clear_above", "above"))
        if isinstance(seen.get(clears[0]), int | float):
            text += f" (clears {clears[1]} {seen[clears[0]]:g})"
    elif kind == "flapping":
        text = f"{name} is flapping: {alarm.summary.removeprefix('port ')}"
    elif kind == "trap_event" and key.qualifier == "agent_restart":
        text = f"the SNMP agent of {name} restarted"
        if text_of("restarted_at"):
            text += f" at {seen['restarted_at'][:19].replace('T', ' ')}"
        if text_of("how") == "sysUpTime went back":
            text += " (its sysUpTime went back)"
    elif kind == "device_isolated":
        text = f"every neighbour of {name} lost it (inferred from their alarms)"
    elif kind == "service_down":
        text = f"{name} is out of service"
        if root is not None:
            cause = _object_name(str(root.key.kind), root.key.object_id, labels)
            text += f": alarm {root.id}, {root.key.type} on {cause}, takes its path down"
    else:
        text = f"{name}: {alarm.summary or kind}"
    lines = [f"raised because: {text}{_seen_by(alarm, seen, observation)}"]
    if text_of("hint"):
        lines.append(f"what to check: {text_of('hint')}")
    return [mask_secrets(line) for line in lines]


def _seen_by(alarm: Any, seen: dict[str, Any], observation: Any) -> str:
    """" (seen by a linkDown trap at 10:05:03)", or "" when no collector saw it."""
    source = observation.source if observation is not None else seen.get("source")
    if source not in ("trap", "poll"):
        return ""
    trap = ((observation.detail if observation is not None else {}).get("trap")
            or seen.get("trap"))
    what = f"{trap} trap" if source == "trap" and isinstance(trap, str) else source
    when = observation.time if observation is not None else alarm.first_seen
    shown = f"{when:%H:%M:%S}" if when.date() == alarm.first_seen.date() else (
        f"{when:%Y-%m-%d %H:%M:%S}")
    return f" (seen by a {what} at {shown})"


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
    """One alarm, why it was raised, its impact and its timeline."""
    from collectors.config_history import WHAT_CHANGED_WINDOW, nominal_paths, what_changed
    from store.alarms import get_alarm, object_labels

    stack, conn = _connection(state)
    with stack:
        found = get_alarm(conn, alarm_id)
        root = (get_alarm(conn, found.root_cause_id, timeline=False)
                if found.root_cause_id else None)
        labels = object_labels(conn, [found.key.object_id]
                               + ([root.key.object_id] if root else []))
        seen = _observation_of(conn, found)
        changes = what_changed(conn, found, paths=nominal_paths(conn, alarm=found))
    click.echo(_line(found, labels))
    click.echo(f"state: {found.state}"
               + (f" at {found.cleared_at:%Y-%m-%d %H:%M:%S}" if found.cleared_at else ""))
    for line in _why(found, labels, seen, root):
        click.echo(line)
    if found.root_cause_id:
        click.echo(f"root cause: alarm {found.root_cause_id} ({found.root_cause})")
    if found.acknowledged:
        click.echo(f"acknowledged by {found.acknowledged_by} at "
                   f"{found.acknowledged_at:%Y-%m-%d %H:%M:%S}: {found.ack_comment or ''}"
                   + (f" (to customers: {found.ack_customer_note})"
                      if found.ack_customer_note else ""))
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
                   f"{entry.comment or ''}"
                   + (f" (to customers: {entry.customer_note})" if entry.customer_note else ""))
    minutes = int(WHAT_CHANGED_WINDOW.total_seconds() // 60)
    click.echo(f"what changed (configuration changes on its impact path in the {minutes}"
               " minutes before it was raised):" + ("" if changes else " none"))
    for change in changes:
        click.echo(f"  {change.fetched_at:%Y-%m-%d %H:%M:%S}  {change.device_key}"
                   f" v{change.previous_version} -> v{change.version} (changed after"
                   f" {change.changed_after:%Y-%m-%d %H:%M:%S}): keyline config diff"
                   f" {change.device_key} --to {change.version}")


@alarm.command("ack")
@click.argument("alarm_id", type=int)
@click.option("--by", required=True, help="Who acknowledges (user key).")
@click.option("--note", "--comment", "comment", default=None, help=_NOTE_HELP)
@click.option("--customer-note", default=None, help=_CUSTOMER_NOTE_HELP)
@_command
def ack_command(state: Any, alarm_id: int, by: str, comment: str | None,
                customer_note: str | None) -> None:
    """Acknowledge an active alarm."""
    from alarms import actions

    stack, conn = _connection(state)
    with stack:
        actions.acknowledge(conn, by, alarm_id, comment, customer_note)
    click.echo(f"alarm {alarm_id} acknowledged by {by}")


@alarm.command("unack")
@click.argument("alarm_id", type=int)
@click.option("--by", required=True)
@click.option("--note", "--comment", "comment", default=None, help=_NOTE_HELP)
@click.option("--customer-note", default=None, help=_CUSTOMER_NOTE_HELP)
@_command
def unack_command(state: Any, alarm_id: int, by: str, comment: str | None,
                  customer_note: str | None) -> None:
    """Take an acknowledgement back."""
    from alarms import actions

    stack, conn = _connection(state)
    with stack:
        actions.unacknowledge(conn, by, alarm_id, comment, customer_note)
    click.echo(f"alarm {alarm_id} no longer acknowledged")


@alarm.command("clear")
@click.argument("alarm_id", type=int)
@click.option("--by", required=True)
@click.option("--note", "--reason", "reason", required=True,
              help="Why, internal note, staff only (also --reason).")
@click.option("--customer-note", default=None, help=_CUSTOMER_NOTE_HELP)
@_command
def clear_command(state: Any, alarm_id: int, by: str, reason: str,
                  customer_note: str | None) -> None:
    """Clear an active alarm by hand (raised again if its condition still holds)."""
    from alarms import actions

    stack, conn = _connection(state)
    with stack:
        actions.clear(conn, by, alarm_id, reason, customer_note)
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
@click.option("--note", "--reason", "reason", required=True,
              help="Why, internal note, staff only (also --reason).")
@click.option("--customer-note", default=None, help=_CUSTOMER_NOTE_HELP)
@click.option("--by", required=True, help="Who declares it (user key).")
@_command
def add_command(state: Any, scopes: tuple[str, ...], start: str, end: str, reason: str,
                customer_note: str | None, by: str) -> None:
    """Declare a maintenance window. It may not start in the past, beyond a few minutes'
    grace (alarms.actions.MAINTENANCE_START_GRACE): planned work is declared before."""
    from alarms import actions

    starts_at, ends_at = _when(start, "--start"), _when(end, "--end")
    stack, conn = _connection(state)
    with stack:
        window = actions.declare_maintenance(conn, by, scopes, starts_at, ends_at, reason,
                                             customer_note, rules=state.settings.alarms)
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
    from alarms import actions

    stack, conn = _connection(state)
    with stack:
        ended = actions.end_maintenance(conn, by, window_id)
    click.echo(f"maintenance window {window_id} {'cancelled' if ended.cancelled else 'ended'}"
               f" by {by}")
