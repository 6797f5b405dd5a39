"""`keyline user token|tokens|revoke-token`: API tokens for the portal's REST API.

A token lets a script call /api/v1 as a user, with that user's role and customer scope
(portal/api.py). `keyline user token NAME --label WHAT` prints a new token once; the store
keeps only its hash (store.users.create_api_token), so a lost token is revoked and replaced,
never recovered. `keyline user tokens [NAME]` lists tokens by id, label and first characters;
`keyline user revoke-token ID` revokes one.

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

__all__ = ["USER_COMMANDS", "revoke_token_command", "token_command", "tokens_command"]


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
@_command
def token_command(state: Any, name: str, label: str) -> None:
    """Create an API token acting as user NAME and print it (only this once)."""
    from keyline.wiring import open_store
    from store.users import create_api_token

    with open_store(state.settings) as database, database.pool.connection() as conn:
        token = create_api_token(conn, name, label)
    click.echo(token)
    click.echo(f"API token for {name} ({label}). It is shown only now: keep it secret; send it"
               " as 'Authorization: Bearer TOKEN'.", err=True)


@click.command("tokens")
@click.argument("name", required=False)
@_command
def tokens_command(state: Any, name: str | None) -> None:
    """List API tokens (of user NAME, or all): id, user, label, first characters, use."""
    from keyline.wiring import open_store
    from store.users import list_api_tokens

    with open_store(state.settings) as database, database.pool.connection() as conn:
        tokens = list_api_tokens(conn, name)
    for token in tokens:
        used = token.last_used_at.strftime("%Y-%m-%d %H:%M") if token.last_used_at else "never"
        status = "revoked" if token.revoked else f"last used {used}"
        click.echo(f"{token.id:<5} {token.user_key:<20} {token.prefix}...  {token.label}"
                   f"  ({status})")


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


USER_COMMANDS = (token_command, tokens_command, revoke_token_command)
