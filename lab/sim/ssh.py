"""The simulated devices' CLIs: one SSH server per device, as netmiko meets a real router.

A device of the inventory that names a `cli_credential` (kind ssh) gets an SSH server on its
management address and the credential's TCP port (default 22; the example's `lab-ssh` says
2222 so that no root is needed). It accepts the credential's username with its password
(or the public half of its `key_file`), and its interactive shell (a PTY, which is what
netmiko opens) behaves as the platform's CLI does, as far as a collector can tell: it echoes
what is typed, prints the platform's prompt, answers the paging and width commands netmiko's
driver sends while preparing the session, prints the profile commands' outputs in the
platform's own layout from the simulated network's live state (lab.sim.cli_outputs), asks
for the enable secret on Cisco when the credential has one, and refuses unknown commands in
the platform's words.

What a collector must survive can be injected per device (`set_mode`): `auth-fail` (every
login refused), `hang` (TCP accepted, no SSH banner ever, and live sessions stop
answering), `garbage` (commands answered with noise), `slow` (each answer `delay_s` late),
`low-privilege` (Cisco stays at `host>` and enable is refused; elsewhere the configuration
command gets the platform's permission error), `unexpected-prompt` (a prompt no netmiko
driver recognises); and `rotate_host_key` gives the device a new host key, which is what a
man in the middle looks like to a collector that remembers keys. Mode changes apply to live
sessions at their next command (a collector reuses sessions), host keys to new connections.

Host keys (Ed25519) are generated once per device into the work directory's `ssh/`, so a
restarted lab keeps them and a collector's trust-on-first-use survives a restart.

All servers run on one asyncio loop in a thread of the network's process (`CliServers`),
so they read the network's state directly; connections are accepted here rather than by
asyncssh's listener, so that a `hang` device can take a connection and stay silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import re
import socket
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.utils import CryptographyDeprecationWarning
from pydantic import SecretStr

# asyncssh's own type hints name DSA, which cryptography deprecates with a warning at import:
# ten lines of noise at every demo start for an algorithm these servers never offer
with warnings.catch_warnings():
    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
    import asyncssh

from config.inventory.model import Credential, Device, Inventory
from config.secrets import resolve_secret
from lab.sim.cli_outputs import PLATFORMS, CliPlatform, garbage

log = logging.getLogger(__name__)

DEFAULT_SSH_PORT = 22
CLI_MODES = ("normal", "auth-fail", "hang", "garbage", "slow", "low-privilege",
             "unexpected-prompt")
DEFAULT_SLOW_DELAY_S = 2.0
UNEXPECTED_PROMPT = "{host} (boot-loader) : "  # no '#', '>', '$', '%' nor ']': no driver's
HOST_KEY_DIR = "ssh"
LOGIN_TIMEOUT_S = 30.0
READ_CHUNK = 4096
STOP_TIMEOUT_S = 5.0
HUNG_POLL_S = 0.05
EXIT_COMMANDS = ("exit", "quit", "logout")

# What the shell asks the network for: "interfaces" or "config" of a device.
Answer = Callable[[str, str], str]


class CliError(Exception):
    """The simulated CLI could not start or could not do what was asked."""


@dataclass(frozen=True)
class CliAccess:
    """Who may log in to a simulated device's CLI: its ssh credential, resolved."""

    credential: str
    username: str
    password: SecretStr | None
    enable_secret: SecretStr | None
    port: int
    client_key: str | None  # OpenSSH public key line of the credential's key_file


def resolve_cli_access(credential: Credential,
                       environ: Mapping[str, str] | None = None) -> CliAccess:
    """Resolve an ssh credential's secrets into what the simulated device accepts."""
    if credential.kind != "ssh":
        raise ValueError(f"credential {credential.key} is {credential.kind}, not ssh")
    params = credential.params
    password = enable = None
    if "password" in credential.secrets:
        password = resolve_secret(credential.secrets["password"], environ)
    if "enable_secret" in credential.secrets:
        enable = resolve_secret(credential.secrets["enable_secret"], environ)
    client_key = None
    if params.get("key_file"):
        try:
            key = asyncssh.read_private_key(str(params["key_file"]))
        except (OSError, asyncssh.KeyImportError) as error:
            raise ValueError(f"credential {credential.key}: key_file cannot be read "
                             f"({type(error).__name__})") from None
        client_key = key.export_public_key().decode().strip()
    return CliAccess(credential=credential.key, username=str(params["username"]),
                     password=password, enable_secret=enable,
                     port=int(params.get("port") or DEFAULT_SSH_PORT), client_key=client_key)


def device_cli_access(inventory: Inventory, device: Device,
                      environ: Mapping[str, str] | None = None) -> CliAccess | None:
    """The CLI access of a device, None if it names no CLI credential."""
    if not device.cli_credential:
        return None
    return resolve_cli_access(inventory.credentials[device.cli_credential], environ)


def with_cli_port(inventory: Inventory, port: int) -> Inventory:
    """`inventory` with every ssh credential's port set to `port` (tests and side-by-side
    labs move the simulated CLIs off the example's 2222 this way)."""
    credentials = {
        key: replace(credential, params={**credential.params, "port": port})
        if credential.kind == "ssh" else credential
        for key, credential in inventory.credentials.items()
    }
    return replace(inventory, credentials=credentials)


def free_tcp_port_on(addresses: list[str], candidates: int = 50) -> int:
    """A TCP port free on every one of `addresses` (the simulated devices' loopback
    addresses share one port number); CliError if none of `candidates` tries is."""
    for _ in range(candidates):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as first:
            first.bind((addresses[0], 0))
            port = first.getsockname()[1]
            try:
                for address in addresses[1:]:
                    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                        probe.bind((address, port))
            except OSError:
                continue
        return port
    raise CliError("no TCP port free on every simulated address")


def _secret_equals(given: str, expected: SecretStr | None) -> bool:
    if expected is None:
        return False
    return hmac.compare_digest(given.encode(), expected.get_secret_value().encode())


@dataclass
class CliDevice:
    """One simulated CLI: where it listens, who may log in, and its current fault mode."""

    key: str
    platform: str
    host: str
    access: CliAccess
    mode: str = "normal"
    delay_s: float = 0.0
    down: bool = False  # the whole device is down (SimulatedNetwork.set_device_status)

    @property
    def silent(self) -> bool:
        return self.down or self.mode == "hang"


def load_or_create_host_key(path: Path, *, replace: bool = False) -> asyncssh.SSHKey:
    """The device's Ed25519 host key from `path`, made (owner-only) when missing or when
    `replace` is set."""
    if path.exists() and not replace:
        return asyncssh.read_private_key(str(path))
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = asyncssh.generate_private_key("ssh-ed25519", comment=path.stem)
    temporary = path.with_name(path.name + ".new")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(key.export_private_key())
    os.replace(temporary, path)
    return key


class _Server(asyncssh.SSHServer):
    """Authentication of one connection to one device."""

    def __init__(self, device: CliDevice):
        self.device = device

    def begin_auth(self, username: str) -> bool:
        return True  # every login goes through a check, as on a device

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        device = self.device
        if device.mode == "auth-fail":
            return False
        return (hmac.compare_digest(username.encode(), device.access.username.encode())
                and _secret_equals(password, device.access.password))

    def public_key_auth_supported(self) -> bool:
        return self.device.access.client_key is not None

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        device = self.device
        if device.mode == "auth-fail" or device.access.client_key is None:
            return False
        offered = key.export_public_key().decode().split()[:2]
        return (username == device.access.username
                and offered == device.access.client_key.split()[:2])


class _Closed(Exception):
    """The client went away."""


class _Shell:
    """One interactive session: reads lines, echoes them, answers as the platform does."""

    def __init__(self, servers: CliServers, device: CliDevice,
                 process: asyncssh.SSHServerProcess[str]):
        self.servers = servers
        self.device = device
        self.process = process
        self.platform: CliPlatform = PLATFORMS[device.platform]
        self.privileged = (device.access.enable_secret is None
                           and device.mode != "low-privilege")
        self.pending = ""
        self.after_cr = False
        self.answers = 0

    # --- output ------------------------------------------------------------------------

    def write(self, text: str) -> None:
        self.process.stdout.write(text.replace("\n", "\r\n"))

    def prompt(self) -> str:
        if self.device.mode == "unexpected-prompt":
            pattern = UNEXPECTED_PROMPT
        elif not self.privileged and self.platform.low_prompt:
            pattern = self.platform.low_prompt
        else:
            pattern = self.platform.prompt
        return pattern.format(host=self.device.key, user=self.device.access.username)

    # --- input -------------------------------------------------------------------------

    async def read_line(self, echo: bool = True) -> str:
        """The next line typed, echoed as typed (CR, LF and CR LF all end a line)."""
        line = ""
        while True:
            shown = []
            while self.pending:
                char, self.pending = self.pending[0], self.pending[1:]
                if char == "\n" and self.after_cr:
                    self.after_cr = False
                    continue
                self.after_cr = char == "\r"
                if char in "\r\n":
                    self.write("".join(shown) + "\n")  # a password's line break shows too
                    return line
                if char in "\x7f\b":
                    if line:
                        line = line[:-1]
                        if echo:
                            shown.append("\b \b")
                elif char == "\x03":  # Ctrl-C drops the line
                    line = ""
                    shown.append("^C\n")
                elif char.isprintable():
                    line += char
                    if echo:
                        shown.append(char)
            if shown:
                self.write("".join(shown))
            try:
                data = await self.process.stdin.read(READ_CHUNK)
            except (asyncssh.BreakReceived, asyncssh.SignalReceived,
                    asyncssh.TerminalSizeChanged):
                continue
            if not data:
                raise _Closed
            self.pending += data

    # --- the session -------------------------------------------------------------------

    async def run(self) -> None:
        with contextlib.suppress(_Closed, asyncssh.Error, ConnectionError, BrokenPipeError):
            if self.process.command:  # `ssh host command`: one answer, then exit
                self.write(await self.answer(" ".join(self.process.command.split())))
                self.process.exit(0)
                return
            await self.wait_while_silent()
            self.write(self.prompt())
            while True:
                line = await self.read_line()
                command = " ".join(line.split())
                await self.wait_while_silent()
                if command in EXIT_COMMANDS:
                    break
                if command and self._is(command, "enable") and self.platform.low_prompt:
                    await self.enable()
                    continue
                if command:
                    if self.device.mode == "slow":  # an empty line still gets its prompt
                        await asyncio.sleep(self.device.delay_s)
                    self.write(await self.answer(command))
                self.write(self.prompt())
        with contextlib.suppress(Exception):
            self.process.exit(0)

    async def wait_while_silent(self) -> None:
        """A hung or dead device answers nothing until it recovers."""
        while self.device.silent and not self.servers.stopping:
            await asyncio.sleep(HUNG_POLL_S)
        if self.servers.stopping:
            raise _Closed

    async def enable(self) -> None:
        """Cisco's enable: a password prompt (no echo), then `#` or `% Access denied`."""
        if self.privileged:
            self.write(self.prompt())
            return
        self.write("Password: ")
        secret = await self.read_line(echo=False)
        if (self.device.mode != "low-privilege"
                and _secret_equals(secret, self.device.access.enable_secret)):
            self.privileged = True
        else:
            self.write("% Access denied\n\n")
        self.write(self.prompt())

    @staticmethod
    def _is(typed: str, command: str) -> bool:
        """Whether `typed` is `command`, each word possibly abbreviated (`sh int`)."""
        words, full = typed.lower().split(), command.split()
        return len(words) == len(full) and all(
            f.startswith(w) for w, f in zip(words, full, strict=True))

    def _known(self) -> list[str]:
        platform = self.platform
        known = [*platform.session, platform.interfaces_command]
        if platform.config_command:
            known.append(platform.config_command)
        if platform.low_prompt:
            known.append("enable")
        return known + list(EXIT_COMMANDS)

    async def answer(self, command: str) -> str:
        platform = self.platform
        for session_command, reply in platform.session.items():
            if self._is(command, session_command):
                return reply
        self.answers += 1
        if self.device.mode == "garbage":
            return garbage(self.device.key, command, self.answers)
        loop = asyncio.get_running_loop()
        if self._is(command, platform.interfaces_command):
            return await loop.run_in_executor(None, self.servers.answer, self.device.key,
                                              "interfaces")
        if platform.config_command and self._is(command, platform.config_command):
            if self.device.mode == "low-privilege" or not self.privileged:
                return self.refuse(command, denied=True)
            return await loop.run_in_executor(None, self.servers.answer, self.device.key,
                                              "config")
        return self.refuse(command)

    def refuse(self, command: str, *, denied: bool = False) -> str:
        """The platform's error for a command it does not know (or may not run): the caret
        goes under the first word no known command continues with."""
        words = command.split()
        matched = 0
        for known in self._known():
            full = known.split()
            count = 0
            for typed, word in zip(words, full, strict=False):
                if not word.startswith(typed.lower()):
                    break
                count += 1
            matched = max(matched, count)
        if denied and self.platform.low_prompt:
            matched = min(matched, 1)  # IOS user EXEC: `show` exists, `running-config` not
        column = len(self.prompt())
        if matched < len(words):
            column += len(" ".join(words[:matched])) + (1 if matched else 0)
        else:
            column += len(command)
        text = self.platform.denied if denied else self.platform.unknown
        return text.replace("{caret}", " " * column + "^").replace("{word}", words[0])


class CliServers:
    """Every simulated CLI of a network, on one asyncio loop in a background thread.

    `answer(device_key, what)` renders "interfaces" or "config" for a device (the
    network's). Use start()/stop(); the other methods may be called from any thread.
    """

    def __init__(self, devices: list[CliDevice], key_dir: Path, answer: Answer):
        self.devices = {device.key: device for device in devices}
        self.key_dir = Path(key_dir)
        self.answer = answer
        self.stopping = False
        self._keys: dict[str, asyncssh.SSHKey] = {}
        self._options: dict[str, asyncssh.SSHServerConnectionOptions] = {}
        self._listeners: dict[str, socket.socket] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._held: set[socket.socket] = set()
        self._connections: set[asyncssh.SSHServerConnection] = set()

    # --- lifetime ----------------------------------------------------------------------

    def start(self) -> None:
        """Load or make the host keys, bind every device's address and port (CliError
        naming those already taken), and start serving."""
        for key in sorted(self.devices):
            self._keys[key] = load_or_create_host_key(self._key_path(key))
        busy = []
        for key, device in sorted(self.devices.items()):
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                listener.bind((device.host, device.access.port))
            except OSError as error:
                listener.close()
                busy.append(f"{key} {device.host}:{device.access.port} ({error.strerror})")
                continue
            listener.listen(64)
            listener.setblocking(False)
            self._listeners[key] = listener
        if busy:
            self._close_listeners()
            raise CliError("SSH endpoints not available (another simulator running, or a "
                           "port below 1024 without root?): " + ", ".join(busy))
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="lab-sim-ssh",
                                        daemon=True)
        self._thread.start()
        ready.wait(STOP_TIMEOUT_S)

    def _run(self, ready: threading.Event) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)

        async def main() -> None:
            for key in sorted(self.devices):
                self._options[key] = await self._build_options(key)
            for key, listener in self._listeners.items():
                self._spawn(self._accept(key, listener))
            ready.set()

        loop.run_until_complete(main())
        loop.run_forever()
        # stop() asked the loop to stop: cancel what still runs, then close
        tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()

    def stop(self) -> None:
        """Close every listener and session; safe to call twice."""
        self.stopping = True
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            with contextlib.suppress(Exception):  # a loop already gone has nothing to close
                asyncio.run_coroutine_threadsafe(self._close_all(), loop).result(
                    STOP_TIMEOUT_S)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(STOP_TIMEOUT_S)
        self._close_listeners()
        self._loop = self._thread = None

    async def _close_all(self) -> None:
        """On the loop: end every session (as a device reboot does) and stop accepting."""
        connections = list(self._connections)
        for connection in connections:
            connection.close()
        tasks = [task for task in self._tasks if task is not asyncio.current_task()]
        for task in tasks:  # the accept loops, silent holds and serving tasks
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for connection in connections:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.wait_closed(), STOP_TIMEOUT_S / 2)
        for held in list(self._held):
            with contextlib.suppress(OSError):
                held.close()
        self._held.clear()
        self._close_listeners()

    def _close_listeners(self) -> None:
        for listener in self._listeners.values():
            with contextlib.suppress(OSError):
                listener.close()
        self._listeners = {}

    # --- control -----------------------------------------------------------------------

    def endpoint(self, device_key: str) -> tuple[str, int]:
        device = self._device(device_key)
        return device.host, device.access.port

    def set_mode(self, device_key: str, mode: str, delay_s: float | None = None) -> bool:
        """Put a device's CLI in a fault mode (CLI_MODES); `delay_s` for `slow` (default
        DEFAULT_SLOW_DELAY_S). Returns False if nothing changed."""
        if mode not in CLI_MODES:
            raise ValueError(f"CLI mode must be one of {', '.join(CLI_MODES)}, not {mode!r}")
        if delay_s is not None and not 0 <= delay_s <= 3600:
            raise ValueError(f"delay_s must be between 0 and 3600 seconds, not {delay_s}")
        device = self._device(device_key)
        delay = (delay_s if delay_s is not None else DEFAULT_SLOW_DELAY_S) \
            if mode == "slow" else 0.0
        if device.mode == mode and device.delay_s == delay:
            return False
        device.mode, device.delay_s = mode, delay
        return True

    def set_down(self, device_key: str, down: bool) -> None:
        """A device that is down takes TCP connections (without root nothing else refuses
        them) but never answers, like a hung one."""
        self._device(device_key).down = down

    def public_key(self, device_key: str) -> str:
        """The device's current host key, OpenSSH public key format ("ssh-ed25519 AAAA...")."""
        self._device(device_key)
        return self._keys[device_key].export_public_key().decode().strip()

    def rotate_host_key(self, device_key: str) -> str:
        """Give the device a new host key (new connections present it); returns its public
        key line."""
        self._device(device_key)
        key = load_or_create_host_key(self._key_path(device_key), replace=True)
        self._keys[device_key] = key
        loop = self._loop
        if loop is not None:
            future = asyncio.run_coroutine_threadsafe(self._build_options(device_key), loop)
            self._options[device_key] = future.result(STOP_TIMEOUT_S)
        log.info("%s has a new SSH host key", device_key)
        return self.public_key(device_key)

    # --- internals ---------------------------------------------------------------------

    def _device(self, device_key: str) -> CliDevice:
        try:
            return self.devices[device_key]
        except KeyError:
            raise CliError(f"device {device_key} has no simulated CLI (no cli_credential, "
                           "or not in the simulated network)") from None

    def _key_path(self, device_key: str) -> Path:
        return self.key_dir / (re.sub(r"[^A-Za-z0-9_.-]", "_", device_key) + ".key")

    async def _build_options(self, device_key: str) -> asyncssh.SSHServerConnectionOptions:
        device = self.devices[device_key]

        async def shell(process: asyncssh.SSHServerProcess[str]) -> None:
            await _Shell(self, device, process).run()

        return await asyncssh.SSHServerConnectionOptions.construct(
            server_factory=lambda: _Server(device),
            server_host_keys=[self._keys[device_key]],
            process_factory=shell,
            encoding="utf-8",
            line_editor=False,  # the shell echoes and edits itself, as the device does
            login_timeout=LOGIN_TIMEOUT_S,
            keepalive_interval=0,
            agent_forwarding=False,
            x11_forwarding=False,
            allow_scp=False,
        )

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, device_key: str, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        device = self.devices[device_key]
        while not self.stopping:
            try:
                connection, _ = await loop.sock_accept(listener)
            except OSError:
                return
            if device.silent:
                self._spawn(self._hold(connection))
            else:
                self._spawn(self._serve(device_key, connection))

    async def _hold(self, connection: socket.socket) -> None:
        """Keep a connection open and say nothing (no SSH banner) until the client leaves."""
        loop = asyncio.get_running_loop()
        self._held.add(connection)
        try:
            while await loop.sock_recv(connection, READ_CHUNK):
                pass
        except OSError:
            pass
        finally:
            self._held.discard(connection)
            connection.close()

    async def _serve(self, device_key: str, connection: socket.socket) -> None:
        try:
            ssh = await asyncssh.run_server(connection, options=self._options[device_key])
        except (TimeoutError, asyncssh.Error, OSError) as error:
            # a refused login, a client that gave up: the device's business, not ours
            log.debug("%s: SSH connection ended: %s", device_key, type(error).__name__)
            return
        self._connections.add(ssh)
        try:
            await ssh.wait_closed()
        finally:
            self._connections.discard(ssh)
