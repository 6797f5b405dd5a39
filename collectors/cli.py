"""The CLI source: devices read over SSH with netmiko, beside SNMP, into the same samples.

Some of what an operator needs is only in a device's command line (optical levels where the
MIBs lack them, the running configuration), and some managed CEs answer no SNMP at all. A
*CLI target* is a device with an `ssh` credential (`cli_credential` in the inventory), its
secrets resolved when the targets are built, never stored. Its platform chooses a *CLI
profile* (collectors/cli_profiles.py): the commands to run, how each answer is parsed, and
which metrics the CLI wins over SNMP. A poll runs the commands in one *session* and parses
the answers into a reading; the collection service turns the reading into the same samples
(if_in_bps, optical_rx_dbm...) SNMP gives, for the metrics the profile gives to the CLI.

netmiko is blocking, so sessions run on a bounded pool of worker threads (`CliSessions`), one
session per device at a time: a device that hangs holds one worker, never the others'. A
session is kept open across polls and rebuilt after any error. Every failure is a *status*
named for what an engineer does about it (`CliStatus`): authentication failed, timeout, host
key changed, unexpected prompt, unparseable output (the raw output kept, bounded), privilege
too low, unreachable, error, no profile.

Host keys are trusted on first use: the key a device offers at the first contact is stored
and recorded as such (store/cli.py); afterwards the session is opened with only that key
known and paramiko's RejectPolicy (`ssh_strict`), so a device offering another key (a
replaced device, or a man in the middle) is refused before any password is sent, and the key
it offered is recorded until an engineer accepts it (`keyline cli accept-host-key DEVICE`).
"""

from __future__ import annotations

import enum
import errno
import io
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from pydantic import SecretStr

from collectors.counters import InterfaceReading, compute_rates, field_out_of_range
from collectors.model import Observation, Sample
from collectors.port_names import match_ports
from collectors.targets import TargetProblem
from config.inventory.model import SecretRef
from config.secrets import SecretError, mask_secrets, resolve_secret

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

    from collectors.cli_profiles import CliProfile, CliReading

log = logging.getLogger(__name__)

DEFAULT_SSH_PORT = 22
RESPONSE_TIME_METRIC = "cli_response_ms"  # device: how long one CLI poll took
# IF-MIB ifOperStatus / ifAdminStatus numbers of the status names profiles give
STATUS_NUMBERS = {"up": 1, "down": 2, "testing": 3, "unknown": 4, "dormant": 5,
                  "notPresent": 6, "lowerLayerDown": 7}


class CliStatus(enum.StrEnum):
    """What one CLI run of one device came to; every failure names what to look at."""

    OK = "ok"
    AUTH_FAILED = "auth-failed"  # the device refused the username and password or key
    TIMEOUT = "timeout"  # no TCP connection, SSH banner, login answer or prompt in time
    HOST_KEY_CHANGED = "host-key-changed"  # another key than the trusted one: refused
    UNEXPECTED_PROMPT = "unexpected-prompt"  # logged in, but no prompt the platform prints
    UNPARSEABLE = "unparseable-output"  # answers the profile cannot read (raw output kept)
    PRIVILEGE_TOO_LOW = "privilege-too-low"  # the user may not run a command, enable refused
    UNREACHABLE = "unreachable"  # connection refused, no route to the host
    ERROR = "error"  # anything else, with the reason
    NO_PROFILE = "no-profile"  # no CLI profile for the device's platform


@dataclass(frozen=True)
class CliTarget:
    """One device as a CLI session needs it. Secrets stay SecretStr until the login.
    `ports`: the inventory ports as declared, (port id, name, if_index or None)."""

    device_id: int
    device_key: str
    host: str
    port: int
    platform: str | None
    device_type: str | None  # netmiko's, from the profile; None: no profile
    username: str
    password: SecretStr | None = None
    key_file: str | None = None
    enable_secret: SecretStr | None = None
    ports: tuple[tuple[int, str, int | None], ...] = ()
    credential_key: str = ""


@dataclass(frozen=True)
class HostKey:
    """An SSH host key as OpenSSH writes it in known_hosts: type and base64 blob."""

    key_type: str
    base64: str

    @property
    def fingerprint(self) -> str:
        """SHA256:... as `ssh-keygen -l` prints it."""
        import base64
        import hashlib

        digest = hashlib.sha256(base64.b64decode(self.base64)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")

    @classmethod
    def of(cls, key: Any) -> HostKey:
        """From a paramiko PKey."""
        return cls(key.get_name(), key.get_base64())


@dataclass(frozen=True)
class CliRun:
    """What one session run gave: the status, why (every status but ok), each command's
    answer (prompt and echo stripped) and, when something failed, the raw output of the
    run for the engineer (secrets masked, bounded). `prompt` is the device's prompt;
    `privileged` whether the session ran in the platform's privileged mode (None: the
    platform has no such mode or it was not reached)."""

    status: CliStatus
    reason: str | None
    outputs: dict[str, str] = field(default_factory=dict)
    raw_output: str | None = None
    prompt: str | None = None
    privileged: bool | None = None
    offered_key: HostKey | None = None  # host-key-changed: the key the device offered
    reused: bool = False  # the run used a session opened by an earlier run

    @property
    def ok(self) -> bool:
        return self.status is CliStatus.OK


@dataclass(frozen=True)
class CliResult:
    """One CLI poll of one device: status, reason, the parsed reading when ok, the raw
    output when an engineer needs it (bounded), when it started and how long it took."""

    target: CliTarget
    status: CliStatus
    reason: str | None
    reading: CliReading | None
    raw_output: str | None
    started_at: datetime
    duration_s: float


# --- targets --------------------------------------------------------------------------------


def load_cli_targets(
    conn: psycopg.Connection,
    *,
    environ: Mapping[str, str] | None = None,
    device_keys: Sequence[str] | None = None,
    profiles: Mapping[str, CliProfile] | None = None,
) -> tuple[list[CliTarget], list[TargetProblem]]:
    """CLI targets for the active devices with a CLI credential (all, or those named), and
    the devices left out (a secret that cannot be resolved, a device named that has no CLI
    credential). `profiles` by platform (default: collectors.cli_profiles's); a device whose
    platform has none is a target with no device type (its runs are no-profile)."""
    rows = conn.execute(
        """SELECT d.id, d.key, host(d.management_address), d.platform, c.key, c.params,
                  coalesce(jsonb_agg(jsonb_build_array(p.id, p.name, p.if_index)
                                     ORDER BY p.id) FILTER (WHERE p.id IS NOT NULL), '[]')
             FROM devices d
             JOIN credentials c ON c.id = d.cli_credential_id
             LEFT JOIN ports p ON p.device_id = d.id AND p.retired_at IS NULL
            WHERE d.retired_at IS NULL
              AND (%(keys)s::text[] IS NULL OR d.key = ANY(%(keys)s))
            GROUP BY d.id, c.id
            ORDER BY d.key""",
        {"keys": list(device_keys) if device_keys is not None else None},
    ).fetchall()
    targets: list[CliTarget] = []
    problems: list[TargetProblem] = []
    found = set()
    for device_id, key, host, platform, credential_key, params, ports in rows:
        found.add(key)
        refs = {name: SecretRef(ref["source"], ref["name"])
                for name, ref in dict(params.get("secrets") or {}).items()}
        try:
            password, enable_secret = (
                resolve_secret(refs[name], environ) if name in refs else None
                for name in ("password", "enable_secret"))
        except SecretError as error:
            problems.append(TargetProblem(key, f"credential {credential_key}: {error}"))
            continue
        profile = _profile_of(platform, profiles)
        targets.append(CliTarget(
            device_id=device_id, device_key=key, host=host,
            port=int(params.get("port") or DEFAULT_SSH_PORT), platform=platform,
            device_type=profile.device_type if profile is not None else None,
            username=str(params.get("username")), password=password,
            key_file=params.get("key_file"), enable_secret=enable_secret,
            ports=tuple((int(port_id), str(name), None if if_index is None else int(if_index))
                        for port_id, name, if_index in ports),
            credential_key=credential_key))
    for key in device_keys or ():
        if key not in found:
            problems.append(TargetProblem(
                key, "no such active device with a cli_credential in the inventory"))
    return targets, problems


def _profile_of(platform: str | None,
                profiles: Mapping[str, CliProfile] | None) -> CliProfile | None:
    if platform is None:
        return None
    if profiles is not None:
        return profiles.get(platform)
    from collectors.cli_profiles import cli_profile

    return cli_profile(platform)


# --- host keys ------------------------------------------------------------------------------


class HostKeyBook:
    """The store's host keys as sessions use them (store/cli.py): the trusted key of a
    device, trusting a first key, recording an offered one. Thread-safe (a pool)."""

    def __init__(self, pool: ConnectionPool, *, timeout_s: float = 5.0) -> None:
        self._pool = pool
        self._timeout_s = timeout_s

    def trusted(self, device_id: int) -> HostKey | None:
        from store.cli import trusted_host_key

        with self._pool.connection(timeout=self._timeout_s) as conn:
            row = trusted_host_key(conn, device_id)
        return HostKey(row.key_type, row.key_base64) if row is not None else None

    def trust_first(self, device_id: int, key: HostKey) -> HostKey:
        """Trust `key` unless a key is trusted already; the key trusted now."""
        from store.cli import trust_first_host_key

        with self._pool.connection(timeout=self._timeout_s) as conn:
            row = trust_first_host_key(conn, device_id, key.key_type, key.base64,
                                       key.fingerprint, datetime.now(UTC))
        return HostKey(row.key_type, row.key_base64)

    def offered(self, device_id: int, key: HostKey) -> None:
        from store.cli import record_offered_host_key

        with self._pool.connection(timeout=self._timeout_s) as conn:
            record_offered_host_key(conn, device_id, key.key_type, key.base64,
                                    key.fingerprint, datetime.now(UTC))


# --- sessions -------------------------------------------------------------------------------


class _OutputTail(io.BufferedIOBase):
    """netmiko's session log sink: what the device sent, the first `max_bytes` of it (a
    login banner, a prompt, a garbage answer) for a failed run's raw output. netmiko masks
    the password and enable secret in it before writing."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__()
        self.max_bytes = max_bytes
        self._data = bytearray()
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        data = bytes(data)
        room = self.max_bytes - len(self._data)
        self._data += data[:max(room, 0)]
        self.dropped += max(len(data) - max(room, 0), 0)
        return len(data)

    def text(self) -> str:
        return self._data.decode("utf-8", "replace")

    def clear(self) -> None:
        self._data.clear()
        self.dropped = 0


@dataclass
class _Session:
    connection: Any  # a netmiko BaseConnection
    tail: _OutputTail
    target: CliTarget
    privileged: bool | None
    prompt: str
    last_used_s: float = 0.0


class _Failed(Exception):
    """Internal: a run failed with this status; the session is dropped."""

    def __init__(self, status: CliStatus, reason: str, *, offered_key: HostKey | None = None,
                 raw_output: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.offered_key = offered_key
        self.raw_output = raw_output


class CliSessions:
    """SSH sessions to devices, on a bounded pool of worker threads (netmiko blocks).

    `run(target, commands)` runs commands in the device's session (opened, or reused from
    an earlier run) in the calling thread; `submit(target, function, *args)` runs
    `function(*args)` on a worker, one at a time per device (a device's later work waits
    for its earlier work, on the same worker), so a slow device holds one worker at most.
    A session that failed in any way is closed and the next run opens a new one. At most
    `max_open_sessions` idle sessions stay open between runs (0: every run opens its own).
    """

    def __init__(
        self,
        host_keys: HostKeyBook,
        *,
        workers: int = 16,
        max_open_sessions: int = 256,
        connect_timeout_s: float = 10.0,
        banner_timeout_s: float = 15.0,
        auth_timeout_s: float = 15.0,
        read_timeout_s: float = 30.0,
        raw_output_max_bytes: int = 64 * 1024,
    ) -> None:
        self.host_keys = host_keys
        self.workers = workers
        self.max_open_sessions = max_open_sessions
        self.connect_timeout_s = connect_timeout_s
        self.banner_timeout_s = banner_timeout_s
        self.auth_timeout_s = auth_timeout_s
        self.read_timeout_s = read_timeout_s
        self.raw_output_max_bytes = raw_output_max_bytes
        self._executor = ThreadPoolExecutor(max_workers=workers,
                                            thread_name_prefix="keyline-cli")
        self._lock = threading.Lock()
        self._queues: dict[int, deque[tuple[Future, Callable[..., Any], tuple]]] = {}
        self._device_locks: dict[int, threading.Lock] = {}
        self._idle: OrderedDict[int, _Session] = OrderedDict()  # least recently used first
        self._known_hosts_dir = Path(tempfile.mkdtemp(prefix="keyline-known-hosts-"))
        self._closed = False
        self.sessions_opened = 0  # counters for benches and tests
        self.runs = 0

    @classmethod
    def from_settings(cls, settings: Any, pool: ConnectionPool) -> CliSessions:
        """Sessions configured by `settings.cli` (config.settings.CliSettings), host keys in
        the store behind `pool`."""
        cli = settings.cli
        return cls(HostKeyBook(pool), workers=cli.workers,
                   max_open_sessions=cli.max_open_sessions,
                   connect_timeout_s=cli.connect_timeout_s,
                   banner_timeout_s=cli.banner_timeout_s, auth_timeout_s=cli.auth_timeout_s,
                   read_timeout_s=cli.read_timeout_s,
                   raw_output_max_bytes=cli.raw_output_max_bytes)

    # --- the pool -------------------------------------------------------------------------

    def submit(self, target: CliTarget, function: Callable[..., Any], *args: Any) -> Future:
        """Run `function(*args)` on a worker after the device's earlier work; its future."""
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("CLI sessions are closed")
            queue = self._queues.setdefault(target.device_id, deque())
            queue.append((future, function, args))
            if len(queue) > 1:
                return future  # the worker on this device takes it next
        self._executor.submit(self._drain, target.device_id)
        return future

    def _drain(self, device_id: int) -> None:
        while True:
            with self._lock:
                future, function, args = self._queues[device_id][0]
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(function(*args))
                except BaseException as error:
                    future.set_exception(error)
            with self._lock:
                queue = self._queues[device_id]
                queue.popleft()
                if not queue or self._closed:
                    for waiting, _function, _args in queue:
                        waiting.cancel()
                    del self._queues[device_id]
                    return

    def busy_devices(self) -> int:
        """Devices with work running or waiting."""
        with self._lock:
            return len(self._queues)

    def close(self) -> None:
        """Close every session; work waiting is cancelled, work running finishes alone."""
        with self._lock:
            self._closed = True
            idle, self._idle = list(self._idle.values()), OrderedDict()
            waiting = [future for queue in self._queues.values() for future, _, _ in queue]
        for future in waiting:
            future.cancel()  # those running are not cancelled: they finish
        for session in idle:
            _disconnect(session)
        self._executor.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(self._known_hosts_dir, ignore_errors=True)

    def __enter__(self) -> CliSessions:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- runs -----------------------------------------------------------------------------

    def run(self, target: CliTarget, commands: Sequence[str], *,
            privileged: bool = False) -> CliRun:
        """Run `commands` on the device, in the calling thread, one run per device at a
        time. `privileged`: the commands need the platform's privileged mode (a cisco `#`
        prompt): without it the run is privilege-too-low before any command is sent."""
        if target.device_type is None:
            return CliRun(CliStatus.NO_PROFILE,
                          f"no CLI profile for platform {target.platform or '(none)'}")
        with self._device_lock(target.device_id):
            with self._lock:
                self.runs += 1
            session = self._take_idle(target)
            reused = session is not None
            try:
                if session is None:
                    session = self._open(target)
                try:
                    outputs = self._commands(session, commands, privileged)
                except _Failed:
                    raise
                except Exception as error:
                    if not reused or not _session_died(error):
                        raise
                    # a kept session the device closed meanwhile (exec timeout, reload):
                    # once more on a new one
                    _disconnect(session)
                    reused = False
                    session = self._open(target)
                    outputs = self._commands(session, commands, privileged)
            except _Failed as failed:
                if session is not None:
                    _disconnect(session)
                return CliRun(failed.status, mask_secrets(failed.reason),
                              raw_output=failed.raw_output, offered_key=failed.offered_key,
                              reused=reused,
                              prompt=session.prompt if session is not None else None)
            except Exception as error:
                tail = session.tail if session is not None else None
                if session is not None:
                    _disconnect(session)
                status, reason = classify_error(error, "command", tail.text() if tail else "")
                return CliRun(status, mask_secrets(reason), reused=reused,
                              raw_output=self._raw(tail) if tail else None)
            self._keep(session)
            return CliRun(CliStatus.OK, None, outputs, prompt=session.prompt,
                          privileged=session.privileged, reused=reused)

    def _device_lock(self, device_id: int) -> threading.Lock:
        with self._lock:
            return self._device_locks.setdefault(device_id, threading.Lock())

    def _take_idle(self, target: CliTarget) -> _Session | None:
        with self._lock:
            session = self._idle.pop(target.device_id, None)
        if session is None:
            return None
        if session.target != target or not _alive(session):
            _disconnect(session)  # a new address or credential, or closed by the device
            return None
        return session

    def _keep(self, session: _Session) -> None:
        session.last_used_s = time.monotonic()
        evicted = []
        with self._lock:
            if self._closed or self.max_open_sessions == 0:
                evicted.append(session)
            else:
                self._idle[session.target.device_id] = session
                while len(self._idle) > self.max_open_sessions:
                    evicted.append(self._idle.popitem(last=False)[1])
        for old in evicted:
            _disconnect(old)

    def _raw(self, tail: _OutputTail) -> str | None:
        text = mask_secrets(tail.text())
        if not text.strip():
            return None
        return bounded(text, self.raw_output_max_bytes, tail.dropped)

    def _open(self, target: CliTarget) -> _Session:
        """Log in (host key checked first), prepare the session, reach the privileged mode
        when the credential has an enable secret."""
        from netmiko import ConnectHandler

        try:
            trusted = self.host_keys.trusted(target.device_id)
        except Exception as error:  # the store away: no key check, no login
            raise _Failed(CliStatus.ERROR, f"host keys cannot be read from the store:"
                          f" {type(error).__name__}: {error}") from None
        tail = _OutputTail(self.raw_output_max_bytes)
        params: dict[str, Any] = {
            "device_type": target.device_type, "host": target.host, "port": target.port,
            "username": target.username,
            "password": target.password.get_secret_value() if target.password else None,
            "secret": (target.enable_secret.get_secret_value() if target.enable_secret
                       else ""),
            "use_keys": target.key_file is not None, "key_file": target.key_file,
            "allow_agent": False, "conn_timeout": self.connect_timeout_s,
            "banner_timeout": self.banner_timeout_s, "auth_timeout": self.auth_timeout_s,
            "read_timeout_override": self.read_timeout_s, "session_log": tail,
            # never ~/.ssh/known_hosts: the store is the one record of trusted keys
            "system_host_keys": False,
        }
        if trusted is not None:
            params.update(ssh_strict=True, alt_host_keys=True,
                          alt_key_file=str(self._known_hosts(target, trusted)))
        try:
            connection = ConnectHandler(**params)
        except Exception as error:
            status, reason = classify_error(error, "login", tail.text())
            offered = _offered_key(error)
            if status is CliStatus.HOST_KEY_CHANGED and trusted is not None:
                if offered is None:  # it offers no key of the trusted key's type
                    offered = self._probe_key(target)
                reason = _host_key_reason(trusted, offered)
                if offered is not None:
                    try:
                        self.host_keys.offered(target.device_id, offered)
                    except Exception as store_error:
                        log.warning("%s: offered host key not recorded: %s",
                                    target.device_key, store_error)
            raise _Failed(status, reason, offered_key=offered,
                          raw_output=self._raw(tail)) from None
        session = _Session(connection, tail, target, None, "")
        with self._lock:
            self.sessions_opened += 1
        if trusted is None:
            self._trust_first(session)
        try:
            session.prompt = _prompt_of(session)
            session.privileged = self._privileged(session)
            # what the preparation's last commands still send (hp_comware: one more prompt)
            # would otherwise be taken for the first command's end
            connection.clear_buffer(backoff=False)
        except _Failed:
            _disconnect(session)
            raise
        except Exception as error:
            _disconnect(session)
            status, reason = classify_error(error, "enable", tail.text())
            raise _Failed(status, reason, raw_output=self._raw(tail)) from None
        return session

    def _trust_first(self, session: _Session) -> None:
        """First contact: the key the device offered becomes the trusted one (or, when
        another collector trusted one meanwhile, must be that one)."""
        target = session.target
        transport = session.connection.remote_conn_pre.get_transport()
        offered = HostKey.of(transport.get_remote_server_key())
        try:
            trusted = self.host_keys.trust_first(target.device_id, offered)
        except Exception as error:
            _disconnect(session)
            raise _Failed(CliStatus.ERROR, f"host key not recorded in the store:"
                          f" {type(error).__name__}: {error}") from None
        if trusted != offered:
            _disconnect(session)
            self.host_keys.offered(target.device_id, offered)
            raise _Failed(CliStatus.HOST_KEY_CHANGED, _host_key_reason(trusted, offered),
                          offered_key=offered)
        log.info("%s: host key %s %s trusted on first use", target.device_key,
                 offered.key_type, offered.fingerprint)

    def _privileged(self, session: _Session) -> bool | None:
        """Whether the session is in the privileged mode, entering it when the credential
        has an enable secret. None: the platform has no enable mode."""
        connection, target = session.connection, session.target
        if target.device_type not in ENABLE_PLATFORMS:
            return None
        if connection.check_enable_mode():
            return True
        if target.enable_secret is None:
            return False
        session.tail.clear()
        try:
            connection.enable()
        except OSError:
            raise
        except Exception:  # netmiko: ValueError "Failed to enter enable mode", ReadTimeout
            raise _Failed(CliStatus.PRIVILEGE_TOO_LOW,
                          f"enable refused at prompt {connection.base_prompt!r}: the enable"
                          f" secret of credential {target.credential_key} is wrong, or the"
                          " user may not enable", raw_output=self._raw(session.tail)) from None
        session.prompt = connection.find_prompt()
        return True

    def _commands(self, session: _Session, commands: Sequence[str],
                  privileged: bool) -> dict[str, str]:
        if privileged and session.privileged is False:
            raise _Failed(CliStatus.PRIVILEGE_TOO_LOW,
                          f"the session is unprivileged (prompt {session.prompt!r}) and"
                          f" credential {session.target.credential_key} has no enable_secret"
                          if session.target.enable_secret is None else
                          f"the session is unprivileged (prompt {session.prompt!r})")
        outputs: dict[str, str] = {}
        for command in commands:
            session.tail.clear()
            try:
                session.connection.read_channel()  # anything left over, not an answer
                # the prompt as the session met it, not netmiko's find_prompt before every
                # command: a round trip each, and on a device that stopped answering a
                # dozen growing waits (half a minute) that no read timeout bounds
                outputs[command] = session.connection.send_command(
                    command, expect_string=re.escape(session.prompt),
                    read_timeout=self.read_timeout_s)
            except Exception as error:
                status, reason = classify_error(error, f"command {command!r}",
                                                session.tail.text())
                if _session_died(error):
                    raise
                raise _Failed(status, reason, raw_output=self._raw(session.tail)) from None
        return outputs

    def _known_hosts(self, target: CliTarget, key: HostKey) -> Path:
        """A known_hosts file with the device's one trusted key, as OpenSSH names a host on
        a port other than 22 ("[host]:port"), for paramiko."""
        name = target.host if target.port == 22 else f"[{target.host}]:{target.port}"
        path = self._known_hosts_dir / f"{target.device_id}"
        temporary = path.with_suffix(f".{threading.get_ident()}")
        temporary.write_text(f"{name} {key.key_type} {key.base64}\n", encoding="ascii")
        os.replace(temporary, path)
        return path

    def _probe_key(self, target: CliTarget) -> HostKey | None:
        """The key the device offers, read in a key exchange alone (no login)."""
        import paramiko

        try:
            with socket.create_connection((target.host, target.port),
                                          self.connect_timeout_s) as sock:
                transport = paramiko.Transport(sock)
                try:
                    transport.banner_timeout = self.banner_timeout_s
                    transport.start_client(timeout=self.connect_timeout_s)
                    return HostKey.of(transport.get_remote_server_key())
                finally:
                    transport.close()
        except Exception as error:
            log.debug("%s: host key probe failed: %s", target.device_key, error)
            return None


# netmiko device types whose sessions have an enable (privileged) mode worth reaching
ENABLE_PLATFORMS = frozenset({"cisco_ios", "cisco_xe", "cisco_nxos", "cisco_asa"})


def _prompt_of(session: _Session) -> str:
    """The device's whole prompt (`<pe-sh1>`, `pe-sh2#`; netmiko keeps it without its
    marks, cut at 16 characters on Cisco): the last line the session's preparation read,
    which is the prompt netmiko found, else asked for once more."""
    connection = session.connection
    base = connection.base_prompt or ""
    lines = [line.strip() for line in session.tail.text().splitlines() if line.strip()]
    if base and lines and base in lines[-1] and lines[-1].endswith(_PROMPT_ENDS):
        return lines[-1]
    return connection.find_prompt()


def _alive(session: _Session) -> bool:
    try:
        transport = session.connection.remote_conn.get_transport()
        return bool(transport is not None and transport.is_active())
    except Exception:
        return False


def _disconnect(session: _Session) -> None:
    """Close the SSH connection at once. netmiko's graceful `disconnect` first asks the
    device whether it is in configuration mode and waits for the answer: a second or more
    per session, and the read timeout on a device that stopped answering; closing the
    channel ends the device's session just the same."""
    connection = session.connection
    try:
        connection.paramiko_cleanup()
    except Exception:  # closing a broken session: nothing left to save
        log.debug("closing the session of %s failed", session.target.device_key,
                  exc_info=True)
    try:
        connection.disconnect()  # with no transport left: its session log and log filter
    except Exception:
        log.debug("releasing the session of %s failed", session.target.device_key,
                  exc_info=True)


def _session_died(error: BaseException) -> bool:
    """The transport under a kept session is gone (the device closed it), as opposed to a
    device that answers badly."""
    if isinstance(error, (EOFError, BrokenPipeError, ConnectionResetError)):
        return True
    text = str(error)
    return isinstance(error, OSError) and ("Socket is closed" in text or "closed" in text)


# --- classification -------------------------------------------------------------------------


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error and what it was raised from or during (netmiko wraps paramiko's)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _offered_key(error: BaseException) -> HostKey | None:
    from paramiko.ssh_exception import BadHostKeyException

    for item in _chain(error):
        if isinstance(item, BadHostKeyException):
            return HostKey.of(item.key)
    return None


def _host_key_reason(trusted: HostKey, offered: HostKey | None) -> str:
    offers = (f"offers {offered.key_type} {offered.fingerprint}" if offered is not None
              else f"offers no {trusted.key_type} key")
    return (f"host key changed: the device {offers}, the trusted key is {trusted.key_type}"
            f" {trusted.fingerprint}; refused before logging in. If the device was"
            " replaced or re-keyed, accept it: keyline cli accept-host-key DEVICE")


_PROMPT_PROBLEMS = re.compile(r"prompt", re.IGNORECASE)


def classify_error(error: BaseException, phase: str, received: str = "") -> tuple[
        CliStatus, str]:
    """The status and reason of a failed login or command. `phase`: "login", "enable" or
    "command 'show ...'"; `received`: what the device sent in that phase (tells a prompt
    nobody recognises from silence)."""
    from netmiko.exceptions import (
        NetmikoAuthenticationException,
        NetmikoTimeoutException,
        ReadTimeout,
    )
    from paramiko.ssh_exception import (
        AuthenticationException,
        BadHostKeyException,
        NoValidConnectionsError,
        SSHException,
    )

    chain = list(_chain(error))
    for item in chain:
        if isinstance(item, BadHostKeyException):
            return CliStatus.HOST_KEY_CHANGED, "host key changed"
        if isinstance(item, SSHException) and "not found in known_hosts" in str(item):
            return CliStatus.HOST_KEY_CHANGED, "host key changed (another key type)"
    for item in chain:
        if isinstance(item, (NetmikoAuthenticationException, AuthenticationException)):
            return (CliStatus.AUTH_FAILED,
                    "authentication failed: the device refused the username and"
                    " password or key")
    if any("Error reading SSH protocol banner" in str(item) for item in chain):
        return CliStatus.TIMEOUT, "TCP connected but no SSH banner within the banner timeout"
    for item in chain:
        if isinstance(item, NoValidConnectionsError):
            codes = {getattr(e, "errno", None) for e in item.errors.values()}
            if codes <= {errno.ECONNREFUSED}:
                return CliStatus.UNREACHABLE, "connection refused (no SSH server listening)"
            return CliStatus.UNREACHABLE, f"cannot connect: {item}"
        if isinstance(item, ConnectionRefusedError):
            return CliStatus.UNREACHABLE, "connection refused (no SSH server listening)"
        if isinstance(item, OSError) and item.errno in (errno.EHOSTUNREACH,
                                                        errno.ENETUNREACH):
            return CliStatus.UNREACHABLE, f"cannot connect: {os.strerror(item.errno)}"
        if isinstance(item, (TimeoutError, socket.timeout)) and phase == "login":
            return CliStatus.TIMEOUT, "no TCP connection within the connect timeout"
    # after the login: the session's preparation or a command waited for a prompt
    waited = (isinstance(error, ReadTimeout)
              or (isinstance(error, ValueError) and _PROMPT_PROBLEMS.search(str(error)))
              or (isinstance(error, NetmikoTimeoutException)
                  and "Timed out waiting for data" in str(error)))
    if waited and phase == "login":
        if received.strip() and not _has_prompt(received):
            return (CliStatus.UNEXPECTED_PROMPT,
                    f"logged in, but the device's prompt is not one the platform prints"
                    f" (last line {_last_line(received)!r})")
        if received.strip():
            return (CliStatus.TIMEOUT, "logged in, but the device did not answer the session's"
                    " preparation within the read timeout")
        return CliStatus.TIMEOUT, "logged in, but no prompt within the read timeout"
    if waited:
        return CliStatus.TIMEOUT, f"no prompt after {phase} within the read timeout"
    if isinstance(error, NetmikoTimeoutException):
        return CliStatus.TIMEOUT, f"{phase}: {_first_line(str(error))}"
    if isinstance(error, (TimeoutError, socket.timeout)):
        return CliStatus.TIMEOUT, f"{phase}: timed out"
    return CliStatus.ERROR, f"{phase}: {type(error).__name__}: {_first_line(str(error))}"


# how every prompt netmiko's drivers recognise ends: cisco/juniper `#` `>`, huawei/comware
# `>` `]`, linux `$` `#`, some `%`
_PROMPT_ENDS = ("#", ">", "$", "]", "%")


def _has_prompt(received: str) -> bool:
    """Whether a line the device sent ends the way a prompt of some platform does."""
    return any(line.rstrip().endswith(_PROMPT_ENDS) for line in received.splitlines())


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")[:300]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][-120:] if lines else ""


def bounded(text: str, max_bytes: int, dropped_bytes: int = 0) -> str:
    """`text` cut to at most `max_bytes` of UTF-8, saying how much was left out."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes and not dropped_bytes:
        return text
    note = "\n[... {} bytes left out]\n"
    keep = max(0, max_bytes - len(note.format(10**12)))
    head = data[:keep].decode("utf-8", "ignore")
    return head + note.format(len(data) - len(head.encode("utf-8")) + dropped_bytes)


# --- polls and configurations ---------------------------------------------------------------


def poll_cli(sessions: CliSessions, target: CliTarget, profile: CliProfile | None,
             *, raw_output_max_bytes: int | None = None) -> CliResult:
    """Run the profile's commands on the device and parse the answers (blocking: call it
    through `sessions.submit`). Unusable answers are unparseable-output, or
    privilege-too-low when the device said the user may not run a command; the raw output
    is kept for both, bounded."""
    from collectors.cli_profiles import CliParseError, read_outputs

    started_at, started_s = datetime.now(UTC), time.monotonic()
    limit = raw_output_max_bytes or sessions.raw_output_max_bytes

    def result(status: CliStatus, reason: str | None, reading: Any = None,
               raw: str | None = None) -> CliResult:
        return CliResult(target, status, reason, reading, raw, started_at,
                         time.monotonic() - started_s)

    if profile is None or target.device_type is None:
        return result(CliStatus.NO_PROFILE,
                      f"no CLI profile for platform {target.platform or '(none)'}")
    run = sessions.run(target, profile.command_texts)
    if not run.ok:
        return result(run.status, run.reason, raw=run.raw_output)
    try:
        reading = read_outputs(profile, run.outputs)
    except CliParseError as error:
        raw = bounded(mask_secrets(_joined(run.outputs)), limit)
        return result(_parse_status(error, run), mask_secrets(str(error)), raw=raw)
    return result(CliStatus.OK, None, reading)


def fetch_running_config(sessions: CliSessions, target: CliTarget,
                         profile: CliProfile | None, *,
                         mask_key: bytes | None = None) -> tuple[CliRun, str | None]:
    """The device's running configuration, secrets masked by the platform's rules
    (collectors.cli_profiles.mask_config, fingerprinted with `mask_key`: the store's
    store.configs.mask_key for text that is kept) before it leaves this function: (run,
    masked text), the text None when the run failed. The run carries the masked text only."""
    from collectors.cli_profiles import CliParseError, check_output, mask_config

    if profile is None or profile.config_command is None or target.device_type is None:
        return CliRun(CliStatus.NO_PROFILE,
                      f"no CLI configuration command for platform"
                      f" {target.platform or '(none)'}"), None
    command = profile.config_command
    run = sessions.run(target, (command,), privileged=True)
    if not run.ok:  # what the device sent before failing may be half a configuration
        return replace(run, raw_output=mask_config(profile, run.raw_output, key=mask_key)
                       if run.raw_output else None), None
    text = mask_config(profile, run.outputs.get(command, ""), key=mask_key)
    run = replace(run, outputs={command: text})
    try:
        check_output(profile, command, text)
    except CliParseError as error:
        return replace(run, status=_parse_status(error, run), reason=str(error),
                       raw_output=bounded(text, sessions.raw_output_max_bytes)), None
    if not text.strip():
        return replace(run, status=CliStatus.UNPARSEABLE,
                       reason=f"{command!r} answered nothing"), None
    return run, text


def _parse_status(error: Any, run: CliRun) -> CliStatus:
    kind = getattr(error, "kind", "unparseable")
    if kind == "privilege" or (kind == "rejected" and run.privileged is False):
        return CliStatus.PRIVILEGE_TOO_LOW
    return CliStatus.UNPARSEABLE


def _joined(outputs: Mapping[str, str]) -> str:
    return "".join(f"### {command}\n{text}\n" for command, text in outputs.items())


# --- samples --------------------------------------------------------------------------------

# CliInterface attribute -> InterfaceReading field: a CLI counter is read as the 64-bit
# octet counter (devices print the full count) and the 32-bit error counters
_COUNTERS = {"in_octets": "if_hc_in_octets", "out_octets": "if_hc_out_octets",
             "in_errors": "if_in_errors", "out_errors": "if_out_errors"}


def cli_readings(reading: CliReading, ports: Iterable[tuple[int, str, int | None]],
                 read_at_s: float) -> tuple[dict[int, InterfaceReading], dict[int, Any],
                                            tuple[str, ...]]:
    """The CLI interfaces matched to the inventory ports by name (collectors.port_names):
    (port id -> InterfaceReading keyed by the port id, port id -> CliInterface, problems)."""
    names = sorted(reading.interfaces)
    interfaces = {number: (name, None) for number, name in enumerate(names, 1)}
    declared = [(port_id, name, None) for port_id, name, _if_index in ports]
    match = match_ports(declared, interfaces)
    readings: dict[int, InterfaceReading] = {}
    printed: dict[int, Any] = {}
    for number, port_id in match.by_if_index.items():
        interface = reading.interfaces[names[number - 1]]
        values: dict[str, Any] = {}
        for attribute, name in _COUNTERS.items():
            value = getattr(interface, attribute, None)
            if value is not None and field_out_of_range(name, int(value)) is None:
                values[name] = int(value)
        values["if_oper_status"] = STATUS_NUMBERS.get(str(interface.oper_status or ""))
        values["if_admin_status"] = STATUS_NUMBERS.get(str(interface.admin_status or ""))
        readings[port_id] = InterfaceReading(if_index=port_id, read_at_s=read_at_s, **values)
        printed[port_id] = interface
    return readings, printed, tuple(problem.message for problem in match.problems)


def cli_samples(result: CliResult, profile: CliProfile, previous: Mapping[int, InterfaceReading],
                read_at_s: float, time_: datetime | None = None,
                ) -> tuple[list[Sample], dict[int, InterfaceReading]]:
    """The samples of an ok poll for the metrics the profile gives to the CLI (rates from
    two successive readings, collectors.counters; the rate the device prints when it prints
    no counter; statuses; optical levels; device metrics), the response time, and the
    readings to keep for the next poll's rates."""
    from collectors.service import rate_samples

    now = time_ or result.started_at
    device_id = result.target.device_id
    samples = [Sample(now, device_id, RESPONSE_TIME_METRIC, result.duration_s * 1000.0)]
    if result.status is not CliStatus.OK or result.reading is None:
        return samples, dict(previous)
    readings, printed, _problems = cli_readings(result.reading, result.target.ports,
                                                read_at_s)
    for port_id, reading in readings.items():
        interface = printed[port_id]
        rates = compute_rates(previous.get(port_id), reading)
        port_samples = {sample.metric: sample for sample in rate_samples(rates, port_id, now)}
        for metric, attribute in (("if_in_bps", "in_bps"), ("if_out_bps", "out_bps"),
                                  ("optical_rx_dbm", "optical_rx_dbm"),
                                  ("optical_tx_dbm", "optical_tx_dbm")):
            value = getattr(interface, attribute, None)
            if metric not in port_samples and value is not None:
                port_samples[metric] = Sample(now, port_id, metric, float(value))
        samples.extend(sample for metric, sample in port_samples.items()
                       if profile.wins(metric) == "cli")
    samples.extend(Sample(now, device_id, metric, float(value))
                   for metric, value in result.reading.device.items()
                   if profile.wins(metric) == "cli")
    return samples, readings


# observation kind (collectors.observations) -> the metric whose source says who reports it
STATE_METRICS = {"oper_status": "if_oper_status", "admin_status": "if_admin_status"}


def cli_observations(result: CliResult, profile: CliProfile) -> list[Observation]:
    """The port states of an ok poll for the kinds the profile gives to the CLI, as
    observations (source "poll", detail via "cli") for the state tracker, which passes on
    only the changes."""
    kinds = [kind for kind, metric in STATE_METRICS.items() if profile.wins(metric) == "cli"]
    if result.status is not CliStatus.OK or result.reading is None or not kinds:
        return []
    _readings, printed, _problems = cli_readings(result.reading, result.target.ports, 0.0)
    detail = {"device_id": result.target.device_id, "via": "cli"}
    return [Observation(result.started_at, port_id, kind, None, value, "poll", dict(detail))
            for port_id, interface in sorted(printed.items()) for kind in kinds
            if (value := getattr(interface, kind, None)) is not None]


# --- engineer actions -----------------------------------------------------------------------

# Who sees a device's CLI side (its status, host keys): the operator's own staff, as for
# configurations (portal/configs.py); an account manager or a customer never does.
CLI_READ_ROLES = ("noc", "engineer", "admin")
# Who may accept a changed host key, and read a failed run's raw output: engineers.
HOST_KEY_ROLES = ("engineer", "admin")
MAX_FINGERPRINT = 200


def accept_host_key(conn: psycopg.Connection, device: str | int, actor: Any,
                    fingerprint: str | None = None, *,
                    fingerprint_required: bool = False) -> Any:
    """An engineer accepts the host key a device offers now (after a replacement or a
    re-keying): the next session trusts it and the key trusted before is retired. The one
    path for the command line (`keyline cli accept-host-key DEVICE --by USER`) and the
    portal, with one rule, checked in this order so a refusal never tells anyone of a device
    they may not see:

    - who acts: a portal `Viewer`, or a user key (the command line's --by) looked up in the
      users, so that a name that is no user, a retired one or a role that may not act is
      refused there as here (store.refusals.ActionError, field "actor", INVALID);
    - the device (its key or id): an active device the actor may see, and only for the
      roles that see the CLI side (CLI_READ_ROLES), else NOT_FOUND as for no device;
    - the role: engineer or admin (HOST_KEY_ROLES), else FORBIDDEN;
    - the key: `fingerprint`, when given, is the key the person saw, and must be one the
      device offers now, else CONFLICT naming what it offers (their page was stale: a
      different key than the one they checked must never be trusted); without it the
      newest offered key, unless `fingerprint_required` (the portal's forms, which always
      show one: INVALID). CONFLICT too when nothing is offered.

    Returns the store's row of the key trusted now (store.cli.HostKeyRow)."""
    from store import cli as cli_store
    from store.queries import Viewer, get_device
    from store.refusals import ActionError, Refusal
    from store.users import get_user

    if isinstance(actor, Viewer):
        viewer = actor
    else:
        name = actor.strip() if isinstance(actor, str) else ""
        if not name:
            raise ActionError("actor", "say who accepts the host key (a user key)")
        user = get_user(conn, name)
        if user is None or user.retired:
            raise ActionError("actor", f"no such user: {name}")
        viewer = Viewer(user.key, user.role, user.customer_id, user.customer_key,
                        user.full_name)
    if isinstance(device, int):
        row = conn.execute("SELECT id, key FROM devices WHERE id = %s AND retired_at IS NULL",
                           [device]).fetchone()
    else:
        row = conn.execute("SELECT id, key FROM devices WHERE key = %s AND retired_at IS NULL",
                           [device]).fetchone()
    if (row is None or viewer.role not in CLI_READ_ROLES
            or get_device(conn, viewer, row[0]) is None):
        raise ActionError("device", f"no such active device in the inventory: {device}",
                          Refusal.NOT_FOUND)
    device_id, device_key = row
    if viewer.role not in HOST_KEY_ROLES:
        raise ActionError(None, f"the role {viewer.role} may not accept host keys",
                          Refusal.FORBIDDEN)
    if fingerprint is None or fingerprint == "":
        if fingerprint_required:
            raise ActionError("fingerprint", "fingerprint is required: the SHA256 fingerprint"
                                             " of the offered key you checked")
        fingerprint = None
    else:
        if not isinstance(fingerprint, str):
            raise ActionError("fingerprint", "fingerprint must be a string")
        fingerprint = fingerprint.strip()
        if (not fingerprint.startswith("SHA256:") or len(fingerprint) > MAX_FINGERPRINT
                or not fingerprint.isprintable()):
            raise ActionError("fingerprint", "fingerprint must be a key's SHA256 fingerprint"
                                             " as shown (SHA256:...)")
    offered = cli_store.host_keys(conn, [device_id], states=["offered"])
    if not offered:
        raise ActionError(None, "no host key offered: nothing to accept", Refusal.CONFLICT)
    if fingerprint is not None and fingerprint not in {key.fingerprint for key in offered}:
        raise ActionError("fingerprint", (
            f"the device offers {', '.join(key.fingerprint for key in offered)}, not"
            f" {fingerprint}: nothing accepted; look at the key again"), Refusal.CONFLICT)
    try:
        accepted = cli_store.accept_host_key(conn, device_id, viewer.user_key,
                                             datetime.now(UTC), fingerprint)
    except cli_store.HostKeyError as error:  # accepted by someone else meanwhile
        raise ActionError(None, str(error), Refusal.CONFLICT) from None
    log.warning("%s: host key %s %s accepted by %s", device_key, accepted.key_type,
                accepted.fingerprint, viewer.user_key)
    return accepted
