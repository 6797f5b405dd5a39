"""`keyline notify`: the notification outbox (sla/notify.py) seen and nudged from a shell.

`notify list` shows the newest notifications with their state, attempts and last error
(`--failed`: only those that gave up, or wait for a retry after a failed attempt); `notify
retry ID` makes a failed notification due now, as the admin page's "Retry now" button does:
the running notifier (`keyline serve --collect`, `collect`, `demo`) sends it at its next look.

Registered on the main command (`main.add_command(notify)`); the commands use its state
object and error handling: one line on standard error, exit code 2 for bad input (an unknown
or already sent notification), 1 for a failure.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["notify"]


def _command(function: F) -> F:
    """Run a command body inside keyline.cli's error handler; an outbox refusal is bad input."""

    @click.pass_obj
    @functools.wraps(function)
    def wrapper(state: Any, *args: Any, **kwargs: Any) -> Any:
        from config.secrets import mask_secrets
        from keyline.cli import _errors_as_lines
        from store.outbox import OutboxError

        if state is None:
            raise click.UsageError("run this through the keyline command")
        with _errors_as_lines(state):
            try:
                return function(state, *args, **kwargs)
            except OutboxError as error:
                click.echo(f"keyline: error: {mask_secrets(str(error))}", err=True)
                sys.exit(2)

    return wrapper  # type: ignore[return-value]


@click.group("notify")
def notify() -> None:
    """Notifications (e-mail, webhooks): list the outbox, retry a failed one."""


def _line(row: Any) -> str:
    ticket = f" ticket {row.ticket_id}" if row.ticket_id is not None else ""
    when = (f"sent {row.sent_at:%Y-%m-%d %H:%M:%S}" if row.sent_at
            else f"next {row.next_attempt_at:%Y-%m-%d %H:%M:%S}" if row.state == "pending"
            else "")
    line = (f"{row.id:>7} {row.created_at:%Y-%m-%d %H:%M:%S} {row.state:<7}"
            f" {row.channel:<7} {row.destination}{ticket}  attempts {row.attempts}"
            f"{'  ' + when if when else ''}")
    return line + (f"\n        last error: {row.last_error}" if row.last_error else "")


@notify.command("list")
@click.option("--failed", is_flag=True,
              help="Only failed notifications and those waiting for a retry.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@_command
def list_command(state: Any, failed: bool, limit: int) -> None:
    """The newest notifications, with state, attempts and last error; and the counts."""
    from keyline.wiring import open_store
    from store.outbox import STATES, counts, list_recent

    with open_store(state.settings) as database, database.pool.connection() as conn:
        rows = (list_recent(conn, ("failed", "pending"), limit, with_errors=True) if failed
                else list_recent(conn, STATES, limit))
        totals = counts(conn)
    for row in rows:
        click.echo(_line(row))
    if not rows:
        click.echo("no failed or retrying notifications" if failed else "no notifications")
    click.echo(", ".join(f"{count} {name}" for name, count in totals.items()))


@notify.command("retry")
@click.argument("notification_id", type=int)
@_command
def retry_command(state: Any, notification_id: int) -> None:
    """Make a failed notification due now: the running notifier sends it next."""
    from keyline.wiring import open_store
    from store.outbox import retry

    with open_store(state.settings) as database, database.pool.connection() as conn:
        row = retry(conn, notification_id)
    click.echo(f"notification {row.id} ({row.channel} {row.destination}) is due now:"
               " the running notifier sends it next")
