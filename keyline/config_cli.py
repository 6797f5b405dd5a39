"""`keyline config`: a device's configuration history (collectors/config_history.py) from a
shell.

`config versions DEVICE` lists the stored versions; `config show DEVICE` prints the version
in force now, or at `--at TIME`, or `--version N`; `config diff DEVICE` the unified diff of
that version against the one before it (or `--from N --to M`); `config fetch DEVICE` fetches
the running configuration now over the CLI and says whether it changed. Every text printed
is the stored one: its secrets were masked before it was stored.

Registered on the main command as keyline/sla_cli.py is; its commands use the main
command's state object and error handling: one line on standard error, exit code 2 for bad
input (an unknown device or version, a malformed time), 1 for a failed fetch.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["config"]

_AT_HELP = ("A time (ISO 8601, no zone means UTC; or 'now', '-2h', '-3d'): the version in"
            " force then.")


def _command(function: F) -> F:
    """Run a command body inside keyline.cli's error handler, with its state object first;
    an unknown device, version or time is bad input (exit 2)."""

    @click.pass_obj
    @functools.wraps(function)
    def wrapper(state: Any, *args: Any, **kwargs: Any) -> Any:
        from collectors.config_history import ConfigHistoryError
        from keyline.cli import _errors_as_lines

        if state is None:
            raise click.UsageError("run this through the keyline command")
        with _errors_as_lines(state):
            try:
                return function(state, *args, **kwargs)
            except ConfigHistoryError as error:
                _bad_input(f"{kwargs.get('device')}: {error}")

    return wrapper  # type: ignore[return-value]


def _bad_input(message: str) -> NoReturn:
    from config.secrets import mask_secrets

    click.echo(f"keyline: error: {mask_secrets(message)}", err=True)
    sys.exit(2)


@contextmanager
def _connection(state: Any) -> Iterator[Any]:
    from keyline.wiring import open_store

    with open_store(state.settings) as database, database.pool.connection() as conn:
        yield conn


def _device(conn: Any, key: str) -> Any:
    from store.configs import find_device

    device = find_device(conn, key)
    if device is None:
        _bad_input(f"DEVICE: no device {key!r} in the inventory")
    return device


def _at(conn: Any, text: str | None) -> datetime | None:
    """--at as a time: ISO 8601, or 'now' / '-N[mhd]' from the database's now."""
    from keyline.alarms_cli import _when

    if text is None:
        return None
    moment = _when(text, "--at")
    if isinstance(moment, timedelta):
        now = conn.execute("SELECT now()").fetchone()[0]
        try:
            return now + moment
        except OverflowError:
            _bad_input(f"--at: {text!r} is too far from now")
    return moment


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@click.group("config")
def config() -> None:
    """Devices' running configurations: versions, show, diff, fetch."""


@config.command("versions")
@click.argument("device")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True,
              help="At most this many, newest first.")
@_command
def versions(state: Any, device: str, limit: int) -> None:
    """List DEVICE's stored configuration versions, newest first."""
    from store.configs import config_versions, fetch_states

    with _connection(state) as conn:
        found = _device(conn, device)
        rows = config_versions(conn, found.id, limit=limit)
        attempt = fetch_states(conn, [found.id]).get(found.id)
    if not rows:
        click.echo(f"{found.key}: no configuration fetched yet")
    for row in rows:
        click.echo(f"v{row.version:<5} first {_time(row.fetched_at)}  last seen"
                   f" {_time(row.last_seen_at)}  {row.size_bytes:>8} bytes"
                   f"  sha256 {row.sha256[:12]}  by {row.fetched_by}")
    if attempt is not None and attempt.status != "ok":
        click.echo(f"last fetch {_time(attempt.attempted_at)} failed: {attempt.status}"
                   + (f" ({attempt.reason})" if attempt.reason else ""))


@config.command("show")
@click.argument("device")
@click.option("--at", "at_text", metavar="TIME", help=_AT_HELP)
@click.option("--version", "version", type=click.IntRange(1), help="This version.")
@_command
def show(state: Any, device: str, at_text: str | None, version: int | None) -> None:
    """Print DEVICE's configuration (secrets masked): the version in force now or at --at,
    or --version N. Which version it is goes to standard error."""
    from collectors.config_history import ConfigHistoryError, version_label
    from store.configs import config_at, get_version

    if at_text is not None and version is not None:
        _bad_input("--at and --version: give one of them")
    with _connection(state) as conn:
        found = _device(conn, device)
        at = _at(conn, at_text)
        shown = (get_version(conn, found.id, version) if version is not None
                 else config_at(conn, found.id, at))
    if shown is None:
        raise ConfigHistoryError(
            f"no configuration version {version}" if version is not None else
            "no configuration fetched" + (f" by {_time(at)}" if at else " yet"))
    click.echo(f"{version_label(shown)}, last seen {_time(shown.last_seen_at)}", err=True)
    click.echo(shown.text, nl=False)


@config.command("diff")
@click.argument("device")
@click.option("--at", "at_text", metavar="TIME", help=_AT_HELP + " Diffed against the one"
              " before it.")
@click.option("--from", "from_version", type=click.IntRange(1), help="Old version.")
@click.option("--to", "to_version", type=click.IntRange(1), help="New version.")
@_command
def diff(state: Any, device: str, at_text: str | None, from_version: int | None,
         to_version: int | None) -> None:
    """Print the unified diff of DEVICE's configuration: the version in force now (or at
    --at, or --to N) against the one before it (or --from N)."""
    from collectors.config_history import config_diff

    if at_text is not None and to_version is not None:
        _bad_input("--at and --to: give one of them")
    with _connection(state) as conn:
        found = _device(conn, device)
        result = config_diff(conn, found.id, version=to_version, at=_at(conn, at_text),
                             against=from_version)
    if not result.lines:
        click.echo(f"{found.key}: v{result.old.version if result.old else 0} and"
                   f" v{result.new.version} are the same", err=True)
    for line in result.lines:
        click.echo(line)


@config.command("fetch")
@click.argument("device")
@click.option("--by", default=None, help="Who asks (default: this login).")
@_command
def fetch(state: Any, device: str, by: str | None) -> None:
    """Fetch DEVICE's running configuration now over the CLI; store it as a new version if
    it changed. Exit 1 when the fetch failed (the reason is printed)."""
    import getpass

    from keyline.cli import _fail

    outcome = fetch_now(state.settings, device, by=by or getpass.getuser())
    if not outcome.ok:
        _fail(f"{outcome.device_key}: fetch failed: {outcome.status}"
              + (f" ({outcome.reason})" if outcome.reason else ""))
    if outcome.changed:
        before = (f" (was v{outcome.previous_version})" if outcome.previous_version
                  else " (the first)")
        click.echo(f"{outcome.device_key}: new version v{outcome.version}{before}")
    else:
        click.echo(f"{outcome.device_key}: unchanged, v{outcome.version}")


def fetch_now(settings: Any, device_key: str, *, by: str) -> Any:
    """Fetch one device's configuration now, as the collection service's `config:` job does
    (collectors.config_history.fetch_and_record over collectors.cli's sessions, host keys
    checked and trusted on first use the same way); the fetch's outcome. A device that is
    not in the inventory, or has no CLI credential, is bad input."""
    from collectors.cli import CliSessions, load_cli_targets
    from collectors.cli_profiles import load_cli_profiles
    from collectors.config_history import fetch_and_record
    from keyline.wiring import _lab_environ, open_store

    profiles = load_cli_profiles()
    with open_store(settings) as database:
        with database.pool.connection() as conn:
            _device(conn, device_key)
            targets, problems = load_cli_targets(conn, environ=_lab_environ(conn),
                                                 device_keys=[device_key], profiles=profiles)
        if not targets:
            _bad_input(f"DEVICE: {problems[0].message}" if problems else
                       f"DEVICE: {device_key} cannot be reached over the CLI")
        (target,) = targets
        with CliSessions.from_settings(settings, database.pool) as sessions:
            return fetch_and_record(sessions, target, profiles.get(target.platform or ""),
                                    database.pool, by=by)
