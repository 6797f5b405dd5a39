"""`keyline user token|tokens|revoke-token|end-sessions`: API tokens and portal sessions.

A token lets a script call /api/v1 as a user, with that user's role and customer scope
(portal/api.py). `keyline user token NAME --label WHAT` prints a new token once; the store
keeps only its hash (store.users.create_api_token), so a lost token is revoked and replaced,
never recovered. It expires after `--expires-days` (default: the `accounts.token_expiry_days`
setting); a password change revokes it unless it was made with `--service` (for a system,
not a person). `keyline user tokens [NAME]` lists tokens by id, label, first characters,
expiry and state; `keyline user revoke-token ID` revokes one. `keyline user end-sessions
NAME` ends every portal session of a user at once (a stolen laptop, a departing colleague),
live pages included.

The commands are registered on the `user` group of the main command:

    for command in USER_COMMANDS:
        user_group.add_command(command)

and run with its state object (settings) and error handling: one line on standard error,
exit code 2 for bad input (store.users.UserError), 1 for a failure.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["USER_COMMANDS", "end_sessions_command", "revoke_token_command", "token_command",
           "tokens_command"]


def _command(function: F) -> F:
    """Run a command body inside keyline.cli's error handler, with its state object first
    (imported when the command runs, so that keyline.cli may import this module)."""

    @click.pass_obj
    @functools.wraps(function)
    def wrapper(state: Any, *args: Any, **kwargs: Any) -> Any:
        from keyline.cli import _errors_as_lines

        if state is None:
            raise click.UsageError("run this through the keyline command")
        with _errors_as_lines(state):
            return function(state, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


@click.command("token")
@click.argument("name")
@click.option("--label", required=True, help="What will use the token (a script, a system).")
@click.option("--expires-days", type=int,
              help="Days until it expires (default: the accounts.token_expiry_days setting).")
@click.option("--service", is_flag=True,
              help="A service token: a password change of its user does not revoke it.")
@_command
def token_command(state: Any, name: str, label: str, expires_days: int | None,
                  service: bool) -> None:
    """Create an API token acting as user NAME and print it (only this once)."""
    from keyline.wiring import open_store
    from store.users import create_api_token, list_api_tokens

    days = state.settings.accounts.token_expiry_days if expires_days is None else expires_days
    with open_store(state.settings) as database, database.pool.connection() as conn:
        token = create_api_token(conn, name, label, expires_days=days, service=service)
        made = next(t for t in reversed(list_api_tokens(conn, name))
                    if token.startswith(t.prefix))
    click.echo(token)
    kind = "Service token" if service else "API token"
    click.echo(f"{kind} {made.id} for {name} ({label}), expires"
               f" {made.expires_at:%Y-%m-%d %H:%M %Z}. It is shown only now: keep it secret;"
               " send it as 'Authorization: Bearer TOKEN'.", err=True)


@click.command("tokens")
@click.argument("name", required=False)
@_command
def tokens_command(state: Any, name: str | None) -> None:
    """List API tokens (of user NAME, or all): id, user, first characters, label, kind,
    expiry, state and last use."""
    from datetime import UTC, datetime

    from keyline.wiring import open_store
    from store.users import list_api_tokens

    with open_store(state.settings) as database, database.pool.connection() as conn:
        tokens = list_api_tokens(conn, name)
    now = datetime.now(UTC)
    for token in tokens:
        used = token.last_used_at.strftime("%Y-%m-%d %H:%M") if token.last_used_at else "never"
        kind = "service" if token.service else "personal"
        click.echo(f"{token.id:<5} {token.user_key:<20} {token.prefix}...  {token.label}"
                   f"  ({kind}, expires {token.expires_at:%Y-%m-%d}, {token.state(now)},"
                   f" last used {used})")


@click.command("revoke-token")
@click.argument("token_id", type=int)
@_command
def revoke_token_command(state: Any, token_id: int) -> None:
    """Revoke the API token TOKEN_ID (see `keyline user tokens`)."""
    from keyline.wiring import open_store
    from store.users import revoke_api_token

    with open_store(state.settings) as database, database.pool.connection() as conn:
        revoke_api_token(conn, token_id)
    click.echo(f"Token {token_id} revoked.")


@click.command("end-sessions")
@click.argument("name")
@_command
def end_sessions_command(state: Any, name: str) -> None:
    """End every portal session of user NAME (its live pages are disconnected too)."""
    from keyline.wiring import open_store
    from store.users import end_user_sessions

    with open_store(state.settings) as database, database.pool.connection() as conn:
        ended = end_user_sessions(conn, name)
    click.echo(f"{len(ended)} session(s) of {name} ended.")


USER_COMMANDS = (token_command, tokens_command, revoke_token_command, end_sessions_command)
