"""`keyline ticket`: the trouble tickets (sla/tickets.py) seen and worked from a shell.

`ticket list` is the NOC's queue: the active tickets by time to breach (soonest first), each
with its customer, circuits, both deadlines in this terminal's local time with the time left,
and which deadlines are breached; `--state` (repeatable), `--customer KEY` and `--all`
choose others. `ticket show ID` gives everything about one ticket: its facts, circuits,
both clocks' figures and the timeline, internal notes marked. `ticket open` opens one for a
customer on the phone; `ack`, `start`, `pause`, `resume`, `resolve`, `close`, `reopen`,
`comment` and `priority` work it, each recording `--by` (a user key, as `keyline alarm ack`
takes it) in the timeline. The changes go through sla/tickets.py, the one path of the
portal and the REST API too: this module only makes arguments of the options and a line of
a refusal.

Registered on the main command (`main.add_command(ticket)`); the commands use its state
object and error handling: one line on standard error, exit code 2 for bad input (a refused
action names the option at fault: "--comment: comment is required"; a missing ticket is
"no ticket 42"), 1 for a failure.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NoReturn, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["ticket"]

STATES = ("open", "acknowledged", "in_progress", "pending_customer", "resolved", "closed")
PRIORITIES = ("P1", "P2", "P3", "P4")

# An action's field (alarms.actions.ActionError) -> the option a user of this command typed.
_OPTIONS = {"comment": "--comment", "text": "TEXT", "title": "--title",
            "description": "--description", "kind": "--kind", "priority": "--priority",
            "reason": "--reason", "circuit_id": "--circuit", "actor": "--by",
            "internal": "--internal"}


def _command(function: F) -> F:
    """Run a command body inside keyline.cli's error handler, with its state object first;
    a refused action (sla.tickets' ActionError) is bad input."""

    @click.pass_obj
    @functools.wraps(function)
    def wrapper(state: Any, *args: Any, **kwargs: Any) -> Any:
        from keyline.cli import _errors_as_lines
        from sla.tickets import ActionError, Refusal

        if state is None:
            raise click.UsageError("run this through the keyline command")
        with _errors_as_lines(state):
            try:
                return function(state, *args, **kwargs)
            except ActionError as error:
                if error.field == "ticket_id" and error.refusal is Refusal.NOT_FOUND:
                    _bad_input(f"no ticket {kwargs.get('ticket_id')}")
                option = _OPTIONS.get(error.field or "")
                _bad_input(f"{option}: {error.message}" if option else error.message)

    return wrapper  # type: ignore[return-value]


def _bad_input(message: str) -> NoReturn:
    from config.secrets import mask_secrets

    click.echo(f"keyline: error: {mask_secrets(message)}", err=True)
    sys.exit(2)


@contextmanager
def _connection(state: Any) -> Iterator[Any]:
    """A connection to the store, committed when the block ends without an error."""
    from keyline.wiring import open_store

    with open_store(state.settings) as database, database.pool.connection() as conn:
        yield conn


# --- how a ticket reads in a terminal ------------------------------------------------------


def _local(value: datetime | str | None) -> str:
    """A time in this terminal's zone, to the minute ("2026-11-02 09:30")."""
    if value is None:
        return "-"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def _span(seconds: float) -> str:
    """A duration as "2d03h", "1h05m", "4m" ("-12m" once over)."""
    sign = "-" if seconds < 0 else ""
    minutes = int(abs(seconds) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{sign}{days}d{hours:02d}h"
    if hours:
        return f"{sign}{hours}h{minutes:02d}m"
    return f"{sign}{minutes}m"


def _deadline(figures: dict[str, Any]) -> str:
    """One clock in a cell: its deadline and the (business) time left, "met 09:12" once
    met, "paused" while pending the customer."""
    if figures["met_at"]:
        return f"met {_local(figures['met_at'])}"
    if figures["paused"]:
        return f"paused ({_span(figures['remaining_s'])} left)"
    if figures["due_at"] is None:
        return "-"
    return f"{_local(figures['due_at'])} ({_span(figures['remaining_s'])})"


def _breached(figures: dict[str, Any]) -> str:
    flags = [name for name in ("response", "resolution") if figures[name]["breached"]]
    return ",".join(flags) or "-"


# --- ticket --------------------------------------------------------------------------------


@click.group("ticket")
def ticket() -> None:
    """List, show, open and work trouble tickets."""


@ticket.command("list")
@click.option("--state", "states", multiple=True, type=click.Choice(STATES),
              help="Only this state (repeatable). Default: the active ones.")
@click.option("--customer", default=None, help="Only this customer's tickets (its key).")
@click.option("--all", "show_all", is_flag=True, help="Resolved and closed tickets too.")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 10_000))
@_command
def list_command(state: Any, states: tuple[str, ...], customer: str | None, show_all: bool,
                 limit: int) -> None:
    """Tickets by time to breach, soonest first: deadlines in local time with the business
    time left ("-12m": over), and which are breached."""
    from sla.tickets import now_of, ticket_of
    from store.tickets import ACTIVE_STATES, list_tickets, ticket_circuit_ids

    wanted = list(states) or (None if show_all else list(ACTIVE_STATES))
    with _connection(state) as conn:
        customer_id = None
        if customer is not None:
            row = conn.execute("SELECT id FROM customers WHERE key = %s", [customer]).fetchone()
            if row is None:
                _bad_input(f"--customer: no customer {customer!r}")
            customer_id = row[0]
        rows = list_tickets(conn, customer_id=customer_id, states=wanted, limit=limit)
        now = now_of(conn)
        circuit_ids = ticket_circuit_ids(conn, [r.id for r in rows])
        keys = dict(conn.execute("SELECT id, key FROM circuits WHERE id = ANY(%s)",
                                 [sorted({c for ids in circuit_ids.values() for c in ids})]
                                 ).fetchall())
    if not rows:
        click.echo("no active tickets" if wanted == list(ACTIVE_STATES) else "no tickets")
        return
    click.echo(f"{'ID':>6} {'PRI':<3} {'STATE':<16} {'CUSTOMER':<10} {'KIND':<14} "
               f"{'RESPONSE DUE (LEFT)':<26} {'RESOLUTION DUE (LEFT)':<26} {'BREACHED':<19} "
               "TITLE [CIRCUITS]")
    for row in rows:
        figures = ticket_of(row).figures(now)
        circuits = ", ".join(sorted(keys[c] for c in circuit_ids.get(row.id, [])))
        click.echo(f"{row.id:>6} {row.priority:<3} {row.state:<16} "
                   f"{row.customer_key or 'NOC':<10} {row.kind:<14} "
                   f"{_deadline(figures['response']):<26} "
                   f"{_deadline(figures['resolution']):<26} {_breached(figures):<19} "
                   f"{row.title} [{circuits}]")


@ticket.command("show")
@click.argument("ticket_id", type=int)
@_command
def show_command(state: Any, ticket_id: int) -> None:
    """One ticket: its facts, circuits, both clocks and its timeline (internal notes
    marked)."""
    from sla.tickets import now_of, ticket_of
    from store.tickets import get_ticket, timeline

    with _connection(state) as conn:
        row = get_ticket(conn, ticket_id) if 0 < ticket_id < 2**63 else None
        if row is None:
            _bad_input(f"no ticket {ticket_id}")
        now = now_of(conn)
        entries = timeline(conn, ticket_id, include_internal=True)
    figures = ticket_of(row).figures(now)
    customer = (f"{row.customer_key} ({row.customer_name})" if row.customer_key
                else "none (the NOC's)")
    click.echo(f"ticket {row.id}: {row.title}")
    click.echo(f"kind: {row.kind}, opened by {row.origin}; priority {row.priority}"
               f" (impact {row.impact}); state: {row.state.replace('_', ' ')}")
    click.echo(f"customer: {customer}; contract: {row.contract_key or 'none (defaults)'}")
    if row.description:
        click.echo(f"description: {row.description}")
    click.echo(f"opened: {_local(row.opened_at)} by {row.opened_by}")
    if row.acknowledged_at:
        click.echo(f"acknowledged: {_local(row.acknowledged_at)} by {row.acknowledged_by}")
    if row.resolved_at:
        click.echo(f"resolved: {_local(row.resolved_at)}")
    if row.closed_at:
        click.echo(f"closed: {_local(row.closed_at)}")
    if row.master_id:
        click.echo(f"incident: ticket {row.master_id}")
    if row.children:
        click.echo("customers' tickets: " + ", ".join(map(str, row.children)))
    if row.incident_key:
        click.echo(f"incident key: {row.incident_key}")
    click.echo("circuits:")
    for c in row.circuits:
        back = f", back {_local(c.restored_at)}" if c.restored_at else ""
        alarm = f", alarm {c.alarm_id}" if c.alarm_id else ""
        click.echo(f"  {c.circuit_key}: {c.state} since {_local(c.added_at)}{alarm}{back}")
    click.echo(f"clocks (at {_local(now)}, business time):")
    for name in ("response", "resolution"):
        f = figures[name]
        click.echo(f"  {name}: target {_span(f['target_s'])}, used {_span(f['used_s'])},"
                   f" left {_span(f['remaining_s'])}; {_deadline(f)}"
                   f"{'; paused ' + _span(f['paused_s']) if f['paused_s'] else ''}"
                   f"{'; BREACHED' if f['breached'] else ''}")
    click.echo("timeline:")
    for e in entries:
        change = (f" {e.from_state or '-'} -> {e.to_state}" if e.to_state
                  and e.from_state != e.to_state else "")
        alarm = f" (alarm {e.alarm_id})" if e.alarm_id else ""
        note = "[internal] " if e.internal else ""
        detail = _detail(e.detail)
        click.echo(f"  {_local(e.time)}  {e.action:<14} {e.actor:<12}{change}{alarm}"
                   f"{'  ' + detail if detail else ''}"
                   f"{'  ' + note + e.comment if e.comment else ''}")


def _detail(detail: dict[str, Any]) -> str:
    """The facts of a timeline entry worth a glance."""
    parts = []
    if "from" in detail and "to" in detail:
        parts.append(f"{detail['from']} -> {detail['to']}")
    if "clock" in detail:
        parts.append(f"{detail['clock']} {detail.get('level_pct', '')}%")
    if detail.get("circuits"):
        parts.append(", ".join(map(str, detail["circuits"])))
    return "; ".join(parts)


@ticket.command("open")
@click.option("--circuit", required=True, help="The circuit at fault (its key).")
@click.option("--title", required=True)
@click.option("--description", default=None)
@click.option("--kind", type=click.Choice(("fault", "complaint")), default="fault",
              show_default=True)
@click.option("--priority", type=click.Choice(PRIORITIES), default=None,
              help="Default: the sla.priority_rules rule for a reported fault or complaint.")
@click.option("--by", required=True, help="Who opens it (user key).")
@_command
def open_command(state: Any, circuit: str, title: str, description: str | None, kind: str,
                 priority: str | None, by: str) -> None:
    """Open a ticket for a circuit's customer (the NOC taking a call)."""
    from sla import tickets

    with _connection(state) as conn:
        row = conn.execute("SELECT id FROM circuits WHERE key = %s AND retired_at IS NULL",
                           [circuit]).fetchone()
        if row is None:
            _bad_input(f"--circuit: no circuit {circuit!r}")
        opened = tickets.open_ticket(conn, by, circuit_id=row[0], kind=kind, title=title,
                                     description=description, priority=priority,
                                     settings=state.settings.sla)
        figures = opened.figures(tickets.now_of(conn))
    click.echo(f"ticket {opened.id} opened ({opened.row.priority}) for "
               f"{opened.row.customer_key}: response {_deadline(figures['response'])}, "
               f"resolution {_deadline(figures['resolution'])}")


def _step(name: str, function_name: str, done: str, *, comment_required: bool,
          internal: bool, help_text: str) -> None:
    """Register `ticket NAME ID [--comment C] --by USER`, calling sla.tickets' function."""
    comment_help = ("Required" if comment_required else "Optional") + (
        "; shared with the customer unless --internal." if internal
        else "; the customer reads it.")

    def command(state: Any, ticket_id: int, comment: str | None, by: str,
                **options: Any) -> None:
        from sla import tickets

        with _connection(state) as conn:
            changed = getattr(tickets, function_name)(conn, by, ticket_id, comment,
                                                      settings=state.settings.sla, **options)
        click.echo(f"ticket {ticket_id} {done} by {by}: now {changed.state.replace('_', ' ')}")

    command.__doc__ = help_text
    decorated = click.option("--by", required=True, help="Who acts (user key).")(
        _command(command))
    if internal:
        decorated = click.option("--internal", is_flag=True,
                                 help="Keep the comment from the customer.")(decorated)
    decorated = click.option("--comment", default=None, help=comment_help)(decorated)
    ticket.command(name)(click.argument("ticket_id", type=int)(decorated))


_step("ack", "acknowledge", "acknowledged", comment_required=False, internal=True,
      help_text="Acknowledge: meets the response clock.")
_step("start", "start_work", "in progress", comment_required=False, internal=True,
      help_text="Start work (acknowledges too if nobody had).")
_step("pause", "pause", "pending the customer", comment_required=True, internal=False,
      help_text="Pending the customer: both clocks pause; --comment says what is asked.")
_step("resume", "resume", "resumed", comment_required=False, internal=False,
      help_text="Resume a ticket pending the customer.")
_step("resolve", "resolve", "resolved", comment_required=True, internal=False,
      help_text="Resolved; --comment says what was done.")
_step("close", "close", "closed", comment_required=False, internal=False,
      help_text="Close a resolved ticket.")
_step("reopen", "reopen", "reopened", comment_required=True, internal=False,
      help_text="Reopen a resolved or closed ticket (within sla.reopen_window_h of its"
                " resolution): the resolution clock resumes.")


@ticket.command("comment")
@click.argument("ticket_id", type=int)
@click.argument("text")
@click.option("--internal", is_flag=True, help="Keep it from the customer.")
@click.option("--by", required=True, help="Who writes it (user key).")
@_command
def comment_command(state: Any, ticket_id: int, text: str, internal: bool, by: str) -> None:
    """Add a comment to a ticket's timeline."""
    from sla import tickets

    with _connection(state) as conn:
        entry = tickets.add_comment(conn, by, ticket_id, text, internal=internal,
                                    settings=state.settings.sla)
    click.echo(f"ticket {ticket_id}: {'internal ' if internal else ''}comment {entry} by {by}")


@ticket.command("priority")
@click.argument("ticket_id", type=int)
@click.argument("priority", type=click.Choice(PRIORITIES))
@click.option("--reason", required=True)
@click.option("--by", required=True, help="Who changes it (user key).")
@_command
def priority_command(state: Any, ticket_id: int, priority: str, reason: str, by: str) -> None:
    """Change a ticket's priority: the clocks keep the time used and take the new
    priority's targets."""
    from sla import tickets

    with _connection(state) as conn:
        changed = tickets.set_priority(conn, by, ticket_id, priority, reason,
                                       settings=state.settings.sla)
        figures = changed.figures(tickets.now_of(conn))
    click.echo(f"ticket {ticket_id} is {priority} now: response "
               f"{_deadline(figures['response'])}, resolution "
               f"{_deadline(figures['resolution'])}")
