"""The `keyline` command line.

Each command builds what it needs (settings, store, inventory) through keyline.wiring and
reports failures as one clear line on standard error with a non-zero exit, never a
traceback (unless --debug). Exit codes: 0 done, 1 failed, 2 bad input (settings, inventory,
arguments), 3 an import that needs --allow-retire.
"""

from __future__ import annotations

import getpass
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from config.inventory.model import USER_ROLES, InventoryError
from config.secrets import SecretError, mask_secrets
from config.settings import Settings, SettingsError, load_settings
from keyline import __version__
from keyline.alarms_cli import alarm, maintenance
from keyline.config_cli import config
from keyline.logs import setup_logging
from keyline.notify_cli import notify
from keyline.portal_cli import USER_COMMANDS
from keyline.sla_cli import report, sla
from keyline.tickets_cli import ticket
from keyline.topology_cli import topology

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger("keyline")


class _State:
    def __init__(self, config_file: Path | None, debug: bool, overrides: dict[str, Any]):
        self.config_file = config_file
        self.debug = debug
        self.overrides = overrides
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_file, overrides=self.overrides)
            setup_logging(self._settings.log_level if not self.debug else "DEBUG")
        return self._settings


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"keyline: error: {mask_secrets(message)}", err=True)
    sys.exit(code)


@contextmanager
def _errors_as_lines(state: _State) -> Iterator[None]:
    """Turn the product's known errors into one line and an exit code."""
    from store.database import StoreError
    from store.inventory import RetireNotConfirmed
    from store.users import UserError

    try:
        yield
    except RetireNotConfirmed as error:
        _fail(f"{error}; nothing was written. Is this the right data directory (settings"
              " data_dir, KEYLINE_DATA_DIR)? Import the files with `keyline import"
              " --allow-retire` if they are meant to replace the inventory", 3)
    except InventoryError as error:
        for problem in error.problems:
            click.echo(mask_secrets(str(problem)), err=True)
        _fail(f"{error}; nothing was written", 2)
    except (SettingsError, SecretError) as error:
        _fail(str(error), 2)
    except UserError as error:
        _fail(str(error), 2)
    except StoreError as error:
        _fail(str(error), 1)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except (click.exceptions.Exit, click.ClickException, SystemExit):
        raise
    except Exception as error:
        if state.debug:
            raise
        _fail(f"unexpected {type(error).__name__}: {error} (run with --debug for details)")


def _command(function: F) -> F:
    """Run a command body inside the error handler, with the state object first."""
    import functools

    @click.pass_obj
    @functools.wraps(function)
    def wrapper(state: _State, *args: Any, **kwargs: Any) -> Any:
        with _errors_as_lines(state):
            return function(state, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="keyline")
@click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Settings file (TOML). Default: KEYLINE_CONFIG, else ./keyline.toml.")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Data directory (embedded database, state). Overrides the settings.")
@click.option("--database-url", envvar=None,
              help="PostgreSQL URL. Default: the settings, else the embedded server.")
@click.option("--debug", is_flag=True, help="Debug logging and full tracebacks.")
@click.pass_context
def main(ctx: click.Context, config_file: Path | None, data_dir: Path | None,
         database_url: str | None, debug: bool) -> None:
    """Keyline: circuits, devices and SLAs of a telecom operator's key accounts."""
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if database_url is not None:
        overrides["database_url"] = database_url
    ctx.obj = _State(config_file, debug, overrides)


# --- inventory -----------------------------------------------------------------------------

RETIRED_SHOWN = 200  # per kind, when an import that retires much is refused


@main.command("import")
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@click.option("--check", is_flag=True, help="Validate only; write nothing.")
@click.option("--allow-retire", is_flag=True,
              help="Import even if it retires more than inventory_max_retire_share of the"
                   " inventory (or all of it).")
@_command
def import_command(state: _State, paths: tuple[Path, ...], check: bool,
                   allow_retire: bool) -> None:
    """Import inventory files (YAML files or folders of them).

    Every problem is reported with file, line and field; nothing is written unless the whole
    inventory is valid. A second import of the same files changes nothing. An import that
    would retire more than the `inventory_max_retire_share` setting of the inventory (20 %
    by default), or all of it, lists what it would retire and writes nothing unless
    --allow-retire is given (exit code 3).
    """
    from keyline.wiring import import_inventory, load_inventory_files
    from store.inventory import RetireNotConfirmed

    inventory = load_inventory_files(paths)
    if check:
        click.echo(f"Inventory valid: {inventory.object_count()} objects.")
        return
    with _database(state) as database:
        try:
            summary = import_inventory(
                database, inventory, paths, allow_retire=allow_retire,
                max_retire_share=state.settings.inventory_max_retire_share)
        except RetireNotConfirmed as refused:
            click.echo("This import would retire:", err=True)
            for kind, part in refused.summary.kinds.items():
                if part.retired:
                    shown = ", ".join(part.retired[:RETIRED_SHOWN])
                    more = len(part.retired) - RETIRED_SHOWN
                    click.echo(f"  {kind} ({len(part.retired)}): {shown}"
                               + (f" and {more} more" if more > 0 else ""), err=True)
            _fail(f"{refused}; nothing was written. Check the files, or run again with"
                  " --allow-retire to retire them", 3)
    click.echo(summary.report())


# --- database ------------------------------------------------------------------------------


@contextmanager
def _database(state: _State, *, migrate: bool = True) -> Iterator[Any]:
    from keyline.wiring import open_store

    with open_store(state.settings, migrate=migrate) as database:
        yield database


@main.group("db")
def db_group() -> None:
    """Database schema: migrate, status."""


@db_group.command("migrate")
@_command
def db_migrate(state: _State) -> None:
    """Apply pending migrations."""
    from store.migrate import migrate

    with _database(state, migrate=False) as database:
        applied = migrate(database.pool)
    if applied:
        click.echo(f"Applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        click.echo("Database schema is current; nothing to apply.")


@db_group.command("status")
@_command
def db_status(state: _State) -> None:
    """Show the schema version, pending migrations and the store's features in force."""
    from store.database import StoreError, redact_url
    from store.features import describe_features, server_timescaledb
    from store.migrate import migration_status

    with _database(state, migrate=False) as database:
        status = migration_status(database.pool)
        click.echo(f"Database: {redact_url(database.url)}"
                   + (" (embedded)" if database.embedded else ""))
        with database.pool.connection() as conn:
            server = server_timescaledb(conn)
            try:
                features = describe_features(conn)
            except StoreError:  # not migrated yet: said by "Pending" below
                features = []
    click.echo(f"Schema version: {status.current} (this Keyline knows up to {status.latest})")
    if status.pending:
        click.echo("Pending: " + ", ".join(status.pending))
    else:
        click.echo("Pending: none")
    for name in status.checksum_mismatches:
        click.echo(f"Warning: migration {name} changed after it was applied")
    click.echo(f"Server: {server}")
    if features:
        click.echo("Store features (on: in force; off: why not):")
    for feature in features:
        click.echo(f"  {'on ' if feature.in_force else 'off'}  {feature.label}: {feature.detail}")


# --- users ---------------------------------------------------------------------------------


def _read_new_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("New password: ")
    second = getpass.getpass("Repeat it: ")
    if first != second:
        _fail("the two passwords differ", 2)
    return first


@main.group("user")
def user_group() -> None:
    """Portal users: add, passwd, list; API tokens and sessions."""


@user_group.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(USER_ROLES), required=True)
@click.option("--customer", help="The customer a customer user belongs to (its id).")
@click.option("--full-name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@_command
def user_add(state: _State, name: str, role: str, customer: str | None,
             full_name: str | None, password_stdin: bool) -> None:
    """Add a local user (one the inventory does not declare) with a password."""
    from store.users import add_local_user

    password = _read_new_password(password_stdin)
    with _database(state) as database, database.pool.connection() as conn:
        add_local_user(conn, name, role, password, customer=customer, full_name=full_name)
    click.echo(f"User {name} added ({role}).")


@user_group.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@_command
def user_passwd(state: _State, name: str, password_stdin: bool) -> None:
    """Set a user's password (users declared in the inventory start without one)."""
    from store.users import set_password

    password = _read_new_password(password_stdin)
    with _database(state) as database, database.pool.connection() as conn:
        set_password(conn, name, password)
    click.echo(f"Password of {name} set; its sessions ended and its personal API tokens"
               " revoked (service tokens stay).")


@user_group.command("role")
@click.argument("name")
@click.option("--role", type=click.Choice(USER_ROLES), required=True)
@click.option("--customer", help="The customer a customer user belongs to (its key).")
@_command
def user_role(state: _State, name: str, role: str, customer: str | None) -> None:
    """Give a local user another role or customer: its sessions end and all its API tokens
    are revoked at once."""
    from store.users import set_user_role

    with _database(state) as database, database.pool.connection() as conn:
        set_user_role(conn, name, role, customer)
    click.echo(f"User {name} is now {role}" + (f" of customer {customer}" if customer else "")
               + "; its sessions ended and its API tokens revoked.")


@user_group.command("list")
@_command
def user_list(state: _State) -> None:
    """List users, their roles and whether they can log in."""
    from store.users import list_users

    with _database(state) as database, database.pool.connection() as conn:
        users = list_users(conn)
    for user in users:
        status = "retired" if user.retired else ("ok" if user.has_password else "no password")
        customer = f" customer={user.customer_key}" if user.customer_key else ""
        click.echo(f"{user.key:<20} {user.role:<16} {user.origin:<9} {status}{customer}")


# --- collection -----------------------------------------------------------------------------


@main.command("status")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@click.option("--forget", "forget", metavar="SERVICE",
              help="Forget a service stopped for good (a collector taken out of a fleet:"
              " collector:NAME), so that it no longer counts as NOT RUNNING; refused while it"
              " runs.")
@_command
def status(state: _State, as_json: bool, forget: str | None) -> None:
    """Is all well? The store, the spool, the running services' last reports (polls,
    traps, drops, events processed). Exit code 0 when all is well, 1 otherwise."""
    import json

    from keyline.wiring import status_report

    if forget is not None:
        from keyline.wiring import open_store
        from store.collection import forget_service
        from store.refusals import ActionError

        try:
            with open_store(state.settings) as database, database.pool.connection() as conn:
                gone = forget_service(conn, forget)
        except ActionError as error:
            _fail(f"--forget: {error.message}", 2)
        click.echo(f"forgot {forget} (pid {gone['pid']} on {gone['host']}, last heard"
                   f" {gone['age_s']:.0f} s ago)")
        return
    report, healthy = status_report(state.settings)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        for line in _status_lines(report):
            click.echo(line)
        click.echo("all is well" if healthy else "NOT all is well: see above")
    if not healthy:
        sys.exit(1)


def _status_lines(report: dict[str, Any]) -> list[str]:
    store = report["store"]
    lines = [f"store: reachable ({store['url']})" if store["reachable"]
             else f"store: UNREACHABLE: {store['reason']}"]
    spool = report["spool"]
    waiting = (f"{spool['bytes']} bytes waiting, the oldest {spool['oldest_s']} s old"
               if spool["bytes"] else "empty")
    lines.append(f"spool ({spool['directory']}): {waiting}"
                 + (f"; {spool['drops_not_yet_recorded']} dropped rows not yet recorded"
                    if spool["drops_not_yet_recorded"] else ""))
    for name, service in report.get("services", {}).items():
        state = ("running" if service["running"]
                 else f"NOT RUNNING (last heard {service['age_s']} s ago)")
        lines.append(f"{name}: {state}, pid {service['pid']} on {service['host']}")
        if "polls" in service:
            polls = ", ".join(f"{n} {k}" for k, n in sorted(service["polls"].items()))
            lines.append(f"  {service['devices']} devices; polls: {polls or 'none yet'};"
                         f" {service['skipped_polls']} skipped; {service['devices_overdue']}"
                         " overdue")
            spooled = service["spool"]
            lines.append(f"  spool: {spooled['bytes']} bytes, store "
                         f"{'available' if spooled['store_available'] else 'AWAY'}, dropped "
                         f"{spooled['dropped'] or 'nothing'}, {spooled['outages']} outages")
            if service.get("traps"):
                traps = service["traps"]
                lines.append(f"  traps: {traps['received']} received, "
                             f"{traps['kernel_drops']} dropped by the kernel, "
                             f"{traps['undecodable']} undecodable")
            if (service.get("cli") or {}).get("devices"):
                cli = service["cli"]
                polls = ", ".join(f"{n} {k}" for k, n in sorted(cli["polls"].items()))
                lines.append(f"  cli: {cli['devices']} devices; polls: {polls or 'none yet'};"
                             f" {cli['skipped_polls']} skipped")
        if "active_alarms" in service:
            lines.append(f"  {service['active_alarms']} active alarms, {service['errors']}"
                         " errors")
    if report.get("store", {}).get("reachable") and not report.get("services"):
        lines.append("no service has reported: is the collector running?")
    for name, follower in report.get("events", {}).get("consumers", {}).items():
        lines.append(f"event consumer {name}: {follower['behind']} events behind")
    for kind, rows in (report.get("drops") or {}).items():
        lines.append(f"dropped in all (recorded as unknown time): {rows} {kind}")
    return lines


@main.command("poll")
@click.argument("devices", nargs=-1)
@click.option("--once", is_flag=True, required=True,
              help="Poll once and print what the devices answered.")
@click.option("--via", type=click.Choice(["snmp", "cli"]), default="snmp", show_default=True,
              help="SNMP, or the devices' command line over SSH (their CLI profiles).")
@_command
def poll(state: _State, devices: tuple[str, ...], once: bool, via: str) -> None:
    """Poll DEVICES (default: every active device) once and print what they said."""
    from keyline.wiring import poll_once

    lines = poll_once(state.settings, devices, via=via)
    for line in lines:
        click.echo(line)
    unknown = [key for key in devices
               if any(line.startswith(f"device {key}: no such active device")
                      for line in lines)]
    if unknown:
        what = "device" if via == "snmp" else "device with a cli_credential"
        _fail(f"no such active {what} in the inventory: {', '.join(unknown)}", 2)


@main.group("cli")
def cli_group() -> None:
    """The devices' command line over SSH: host keys trusted on first use."""


@cli_group.command("host-keys")
@click.argument("devices", nargs=-1)
@_command
def cli_host_keys(state: _State, devices: tuple[str, ...]) -> None:
    """List the SSH host keys of DEVICES (default: all): trusted (on first use, or by whom),
    offered and refused, retired."""
    from keyline.wiring import open_store
    from store.cli import host_keys

    with open_store(state.settings) as database, database.pool.connection() as conn:
        rows = [row for row in host_keys(conn) if not devices or row.device_key in devices]
    if not rows:
        click.echo("no host keys recorded")
    for row in rows:
        how = (f"trusted by {row.trusted_by} at {row.trusted_at:%Y-%m-%d %H:%M:%S %Z}"
               if row.state == "trusted" else
               f"offered, refused (last seen {row.last_seen_at:%Y-%m-%d %H:%M:%S %Z}):"
               f" keyline cli accept-host-key {row.device_key} --by NAME"
               if row.state == "offered" else "retired")
        click.echo(f"{row.device_key}  {row.key_type}  {row.fingerprint}  {how}")


@cli_group.command("accept-host-key")
@click.argument("device")
@click.option("--by", required=True, help="Who accepts the key (a portal user of role"
              " engineer or admin).")
@click.option("--fingerprint", help="The offered key's SHA256 fingerprint, as you checked it"
              " (default: the newest offered).")
@_command
def cli_accept_host_key(state: _State, device: str, by: str, fingerprint: str | None) -> None:
    """Accept the SSH host key DEVICE offers now (it was replaced or re-keyed): the next
    session trusts it and the key trusted before is retired. The portal's rule
    (collectors.cli.accept_host_key): --by must be a user whose role may accept."""
    from alarms.actions import ActionError
    from collectors.cli import accept_host_key
    from keyline.wiring import open_store

    try:
        with open_store(state.settings) as database, database.pool.connection() as conn:
            accepted = accept_host_key(conn, device, by, fingerprint)
    except ActionError as error:
        option = {"actor": "--by", "fingerprint": "--fingerprint"}.get(error.field or "")
        _fail(f"{device}: " + (f"{option}: " if option else "") + error.message, 2)
    click.echo(f"{device}: host key {accepted.key_type} {accepted.fingerprint} trusted,"
               f" accepted by {by}")


# --- lab ------------------------------------------------------------------------------------


@main.group("calendar")
def calendar_group() -> None:
    """SLA service calendars: hours, holidays, make-up working days."""


def _hours_text(periods: list[dict[str, Any]]) -> str:
    """Stored weekly hours as "mon-fri 08:30-18:00; sat 09:00-12:00" ("24x7" when none)."""
    from sla.calendar import WEEKDAYS

    parts = []
    for period in periods:
        runs: list[list[int]] = []
        for day in sorted(WEEKDAYS.index(name) for name in period["days"]):
            if runs and runs[-1][-1] == day - 1:
                runs[-1].append(day)
            else:
                runs.append([day])
        days = ",".join(WEEKDAYS[run[0]] + (f"-{WEEKDAYS[run[-1]]}" if len(run) > 1 else "")
                        for run in runs)
        parts.append(f"{days} {period['start']}-{period['end']}")
    return "; ".join(parts) or "24x7"


@calendar_group.command("show")
@click.argument("contract")
@click.option("--year", type=click.IntRange(1900, 2200),
              help="The year whose dates to list (default: this year in the calendar's zone).")
@_command
def calendar_show(state: _State, contract: str, year: int | None) -> None:
    """Show a contract's time zone, weekly hours, and each holiday and working date of a
    year with where it came from (file:line, or the package that filled it)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from sla.calendar import calendar_of
    from store.queries import contract_calendars

    with _database(state) as database, database.pool.connection() as conn:
        contracts = contract_calendars(conn)
    if contract not in contracts:
        known = ", ".join(contracts) or "none (import an inventory first)"
        _fail(f"no SLA contract {contract!r}; contracts: {known}", 2)
    name, spec = contracts[contract]
    calendar = calendar_of(spec)
    if year is None:
        year = datetime.now(ZoneInfo(calendar.timezone)).year
    click.echo(f"Contract: {contract} ({name})")
    click.echo(f"Time zone: {calendar.timezone}")
    click.echo(f"Hours: {_hours_text(spec.get('hours') or [])}")
    dates = sorted(day for day in calendar.holidays | calendar.working_dates if day.year == year)
    if not dates:
        click.echo(f"No holidays or working dates in {year}.")
        return
    click.echo(f"Holidays and working dates in {year}:")
    for day in dates:
        kind = "holiday" if day in calendar.holidays else "working date"
        click.echo(f"  {day.isoformat()} {day:%a}  {kind:<12}  "
                   f"{calendar.sources.get(day, 'unknown source')}")


@main.group("lab")
def lab_group() -> None:
    """The simulated network the demo and the tests poll."""


@lab_group.command(
    "sim",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def lab_sim(state: _State, arguments: tuple[str, ...]) -> None:
    """Run the simulated network: `keyline lab sim [run] [INVENTORY...]`,
    `keyline lab sim fault DEVICE PORT down|up` (or `DEVICE --device|--snmp down|up`),
    `keyline lab sim status`
    (`keyline lab sim --help` for the options). Its work directory is `lab-sim` in the data
    directory, as the demo's: the same settings reach the demo's network."""
    from lab.sim.cli import main as sim_main

    with _errors_as_lines(state):
        data_dir = state.settings.data_dir
    sys.exit(sim_main(list(arguments), data_dir=data_dir))


# --- serving -------------------------------------------------------------------------------


@contextmanager
def _stopped_by_sigterm(what: str) -> Iterator[None]:
    """SIGTERM at any moment of a long-running command is a clean stop, exit code 0
    (keyline.wiring.sigterm_unwinds); while starting, one line says so."""
    import threading

    from keyline.wiring import Terminated, sigterm_unwinds

    received = threading.Event()
    try:
        with sigterm_unwinds(received):
            yield
    except Terminated:
        click.echo(f"{what} stopped (SIGTERM).")
    except Exception:
        if not received.is_set():
            raise
        # Terminated, wrapped by a library on its way out (e.g. pydantic serializing the
        # settings for the portal process): still the stop that was asked for.
        click.echo(f"{what} stopped (SIGTERM).")


@main.command("serve")
@click.option("--host", help="Listen address (default: the settings' listen_host).")
@click.option("--port", type=int, help="Listen port (default: the settings' listen_port).")
@click.option("--inventory", "inventory_paths", multiple=True,
              type=click.Path(exists=True, path_type=Path),
              help="Import these inventory files before serving.")
@click.option("--collect", is_flag=True,
              help="Also poll the devices and receive traps in this process.")
@_command
def serve(state: _State, host: str | None, port: int | None,
          inventory_paths: tuple[Path, ...], collect: bool) -> None:
    """Start the store, apply migrations and serve the portal.

    The portal runs in a portal server process (gevent: read timeout, connection cap,
    graceful shutdown on SIGTERM; settings [server]); with `keyline --debug serve`, on
    Werkzeug's development server instead."""
    from keyline.wiring import run_portal

    with _stopped_by_sigterm("Keyline"):
        settings = state.settings
        paths = inventory_paths or tuple(settings.inventory)
        run_portal(settings, host=host or settings.listen_host,
                   port=settings.listen_port if port is None else port,
                   inventory_paths=paths, collect=collect, dev_server=state.debug)


@main.command("collect")
@click.option("--group", "groups", multiple=True, metavar="NAME",
              help="A poller group to serve, the others left to other collectors (repeat"
                   " for several; default: the settings' [collector] groups, else all).")
@click.option("--name", metavar="NAME",
              help="This collector's name, unique among the running ones (default: the"
                   " settings' [collector] name, else the host's name and process id).")
@_command
def collect(state: _State, groups: tuple[str, ...], name: str | None) -> None:
    """Poll the devices on their group's interval and receive traps, into the store.

    Several collectors may share one store (docs/scaling.md): the collectors serving a
    poller group split its devices by leases in the store and take over the devices of
    one that stops; the fleet's singleton jobs run in one of them at a time."""
    from keyline.wiring import run_collector

    chosen: dict[str, Any] = {}
    if groups:
        chosen["groups"] = list(groups)
    if name is not None:
        chosen["name"] = name
    if chosen:
        state.overrides["collector"] = {**state.overrides.get("collector", {}), **chosen}
    with _stopped_by_sigterm("Keyline collector"):
        run_collector(state.settings)


@main.command("demo")
@click.option("--port", type=int, help="Listen port (default: the settings' listen_port).")
@click.option("--lab-snmp-port", type=click.IntRange(1, 65535),
              help="UDP port of the simulated agents (default: the example inventory's, 1161).")
@click.option("--lab-ssh-port", type=click.IntRange(1, 65535),
              help="TCP port of the simulated devices' SSH servers (default: the example"
                   " inventory's, 2222).")
@_command
def demo(state: _State, port: int | None, lab_snmp_port: int | None,
         lab_ssh_port: int | None) -> None:
    """Run Keyline on its embedded defaults: the example inventory as a simulated network,
    polled live, and the portal."""
    from keyline.wiring import EXAMPLE_INVENTORY, run_portal

    with _stopped_by_sigterm("Keyline"):
        settings = state.settings
        run_portal(settings, host=settings.listen_host,
                   port=settings.listen_port if port is None else port,
                   inventory_paths=(EXAMPLE_INVENTORY,), demo=True,
                   lab_snmp_port=lab_snmp_port, lab_ssh_port=lab_ssh_port,
                   dev_server=state.debug)


main.add_command(topology)
main.add_command(alarm)
main.add_command(maintenance)
main.add_command(notify)
main.add_command(ticket)
main.add_command(report)
main.add_command(sla)
main.add_command(config)
for _command in USER_COMMANDS:
    user_group.add_command(_command)


if __name__ == "__main__":
    main()
