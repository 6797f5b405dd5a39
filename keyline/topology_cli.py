"""`keyline topology`: discover the network over LLDP, compare it with the inventory, accept.

Discovery reads what the devices say about their neighbours (topology/discovery.py); the
inventory says what was built. `discover` walks the devices and records what it found;
`diff` shows where the two pictures disagree (topology/reconcile.py); `accept` makes one
discovered link part of the declared topology without editing the inventory files, and a
later import of the files keeps it (the store holds accepted links apart from the
inventory's own).

The group is registered on the main command (`main.add_command(topology)`); its commands use
the main command's state object (settings) and its error handling: one line on standard
error, exit code 2 for bad input, 1 for a failure.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["topology"]


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


def _bad_input(message: str) -> NoReturn:
    from config.secrets import mask_secrets

    click.echo(f"keyline: error: {mask_secrets(message)}", err=True)
    sys.exit(2)


def _port_ref(text: str) -> tuple[str, str]:
    device, sep, port = text.partition(":")
    if not sep or not device or not port:
        _bad_input(f"{text!r} is not DEVICE:PORT (a device key, a colon, a port name)")
    return device, port


@click.group("topology")
def topology() -> None:
    """Topology: discover links over LLDP, compare with the inventory, accept links."""


@topology.command("discover")
@click.argument("devices", nargs=-1)
@_command
def discover_command(state: Any, devices: tuple[str, ...]) -> None:
    """Walk the LLDP tables of DEVICES (default: every active device), place each
    neighbour in the inventory and record the links found."""
    from tqdm import tqdm

    from keyline.wiring import _lab_environ, open_store
    from topology.discovery import run_discovery

    settings = state.settings
    with open_store(settings) as database:
        with database.pool.connection() as conn:
            environ = _lab_environ(conn)
        with tqdm(total=0, unit="dev", desc="Discovering", file=sys.stderr,
                  disable=not sys.stderr.isatty(), leave=False) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.n = done
                bar.refresh()

            discovery = run_discovery(database, environ=environ,
                                      device_keys=list(devices) or None,
                                      timeout_s=settings.poll.timeout_s,
                                      retries=settings.poll.retries, progress=progress)
    for line in discovery.summary():
        click.echo(line)
    click.echo(f"Recorded as discovery run {discovery.run_id};"
               " `keyline topology diff` compares it with the inventory.")


@topology.command("diff")
@click.option("--json", "as_json", is_flag=True, help="Print the diff as JSON.")
@_command
def diff_command(state: Any, as_json: bool) -> None:
    """Show where the declared topology (inventory + accepted links) and the discovered one
    differ. Differences are findings, not failures: the exit code is 0."""
    import json

    from keyline.wiring import open_store
    from topology.reconcile import load_diff

    with open_store(state.settings) as database, database.pool.connection() as conn:
        diff = load_diff(conn)
    click.echo(json.dumps(diff.as_dict(), indent=2) if as_json else diff.report())


@topology.command("accept")
@click.argument("a_end", metavar="A_DEVICE:A_PORT")
@click.argument("z_end", metavar="Z_DEVICE:Z_PORT")
@click.option("--by", "accepted_by", required=True, help="Who accepts the link (a user name).")
@_command
def accept_command(state: Any, a_end: str, z_end: str, accepted_by: str) -> None:
    """Accept a discovered link as declared; inventory imports will keep it."""
    from keyline.wiring import open_store
    from store.topology import (
        accept_link,
        current_discovered_links,
        declared_links,
        find_port,
    )

    a_device, a_port = _port_ref(a_end)
    z_device, z_port = _port_ref(z_end)
    if not accepted_by.strip():
        _bad_input("--by must name who accepts the link")
    if (a_device, a_port) == (z_device, z_port):
        _bad_input("a link needs two different ports")
    with open_store(state.settings) as database, database.pool.connection() as conn:
        ends = []
        for device, port in ((a_device, a_port), (z_device, z_port)):
            end = find_port(conn, device, port)
            if end is None:
                _bad_input(f"{device}:{port} is no active port of an active device")
            ends.append(end)
        pair = tuple(sorted(end.port_id for end in ends))
        for link in declared_links(conn):
            if link.port_ids == pair:
                how = (f"accepted by {link.accepted_by}" if link.origin == "accepted"
                       else f"inventory link {link.key}")
                click.echo(f"{link} is already declared ({how}); nothing to do.")
                return
        if pair not in {link.port_ids for link in current_discovered_links(conn)}:
            _bad_input(f"{a_end} -- {z_end} is not a discovered link: run"
                       " `keyline topology discover` and accept what it found")
        link, _ = accept_link(conn, pair[0], pair[1], accepted_by)
    click.echo(f"Accepted {link} (by {link.accepted_by}); inventory imports keep it.")
