"""SimulatedNetwork: one snmpsim process that is every device of an inventory.

snmpsim (`snmpsim-command-responder`) can run several independent SNMP engines in one
process. Each engine has its own engine ID, USM users, data directory and UDP endpoints,
so each simulated device is one engine:

    --v3-engine-id=80001f8805<8 bytes of the device key's hash>   (stable across restarts)
    --v3-user=...  (the device's SNMPv3 user, or an unusable random one for v2c devices, so
                    that snmpsim does not add its well-known default user)
    --data-dir=<work>/data/<nnn>-<device>
    --agent-udpv4-endpoint=127.0.1.N:1161

Inside an engine snmpsim picks the data file by the request: a file's path relative to the
data directory, without `.snmprec`, is an SNMPv2c community (and an SNMPv3 context name).
So a v2c device's data is `<community>.snmprec` and it answers that community only; a v3
device's data is `self.snmprec`, which snmpsim serves to the empty context name that SNMPv3
managers send by default. (Two snmpsim artefacts follow: a v3 device also answers SNMPv2c
with an empty community, and the community appears as a file name in the owner-only work
directory.) Since the whole of 127.0.0.0/8 is the loopback interface on Linux, each device
listens on its own inventory management address with no network setup.

The engine options, secrets included, go to snmpsim in an owner-only file
(`--args-from-file`), not on its command line; snmpsim logs at level "error" only, since at
"info" it prints the keys and every request.

Fault injection (`set_port_status`; `set_device_status` for a whole router) rewrites the
affected devices' data files (atomically, with the mtime moved forward: snmpsim re-indexes a
file whose mtime changed before its next answer, so the change is visible on the very next
request, a few milliseconds) and sends the linkDown/linkUp trap from the device's management
address. A device set down has its data file moved aside: snmpsim has nothing to serve it
from, so its agent is silent, as a dead router is. No restart, no variation module
state.

With `cli=True` the devices that name a CLI credential also get an SSH server each
(lab.sim.ssh), in this process, reading the same state: a port set down shows down in
`show interfaces` too, with the counters the agent serves. Each such device has a running
configuration, generated at start (lab.sim.cli_outputs) and then edited by
`change_cli_config`, and a fault mode (`cli_mode`).

Work directory layout (0700; start() refuses a non-empty directory it did not make):
.keyline-lab-sim (marker), data/ (snmprec files), cache/ (snmpsim's indexes), snmpsim.args
(0600), snmpsim.log, snmpsim.pid, control.sock (see control.py), ssh/ (the devices' host
keys, 0600, kept across restarts).

Restarting the network is a reboot of every device: sysUpTime and the counters start again
from the planned uptime, and ports come back up.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import grp
import hashlib
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import lab
from config.inventory.model import Inventory
from config.secrets import SecretError
from lab.sim import control
from lab.sim.access import AgentAccess, device_access, pysnmp_auth
from lab.sim.agent import device_records, ticks_since
from lab.sim.blackhole import Blackhole
from lab.sim.cli_outputs import PLATFORMS as CLI_PLATFORMS
from lab.sim.cli_outputs import device_view, initial_config, render_config
from lab.sim.plan import NetworkPlan, build_plan, check_simulable
from lab.sim.snmprec import write_snmprec
from lab.sim.ssh import HOST_KEY_DIR, CliDevice, CliError, CliServers, device_cli_access
from lab.sim.state import NetworkState
from lab.sim.traps import DEFAULT_TRAP_RECEIVER, check_loopback, encode_link_trap, send_datagram

log = logging.getLogger(__name__)

VARIATION_DIR = Path(__file__).resolve().parent / "variation"
SYS_UPTIME_OID = "1.3.6.1.2.1.1.3.0"
DEFAULT_START_TIMEOUT_S = 20.0
PROBE_TIMEOUT_S = 0.25
PROBE_PAUSE_S = 0.05
PROBES_IN_FLIGHT = 16
STOP_TIMEOUT_S = 5.0
PORT_STATUSES = ("up", "down")
WORK_DIR_MARKER = ".keyline-lab-sim"
SNMPSIM_PRIV = {"AES192B": "AES192BLMT", "AES256B": "AES256BLMT"}
"""Inventory privacy protocols (Blumenthal's AES-192/256) in snmpsim's words; the rest match."""
# For traps of v3 devices (the simulator sends v2c traps only) when the network has no v2c
# device whose community they could use.
V2C_TRAP_FALLBACK_COMMUNITY = "public"
CONFIG_END_MARKERS = ("end", "return")  # the last line of a Cisco / Huawei and H3C config


class SimulatorError(Exception):
    """The simulated network could not start or could not do what was asked."""


@dataclass(frozen=True)
class AgentFiles:
    """Where one device's engine keeps its data."""

    data_dir: Path
    data_file: Path


def snmpsim_available() -> bool:
    """Whether snmpsim (and pysmi, which it needs) can be imported here."""
    try:
        import pysmi  # noqa: F401
        import snmpsim.commands.responder  # noqa: F401
    except ImportError:
        return False
    return True


def engine_id_hex(device_key: str) -> str:
    """An SNMPv3 engine ID in RFC 3411 format 5 (octets) under enterprise 8072 (Net-SNMP):
    stable per device, so a manager's engine-ID cache survives a restart of the lab."""
    return "80001f8805" + hashlib.sha256(device_key.encode()).hexdigest()[:16]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:60]


def _engine_options(device_key: str, address: str, port: int, access: AgentAccess,
                    files: AgentFiles) -> list[str]:
    options = [f"--v3-engine-id={engine_id_hex(device_key)}"]
    if access.version == "3":
        assert access.user is not None
        options.append(f"--v3-user={access.user}")
        if access.auth_key is not None:
            options += [f"--v3-auth-key={access.auth_key.get_secret_value()}",
                        f"--v3-auth-proto={access.auth_protocol}"]
        if access.priv_key is not None:
            options += [f"--v3-priv-key={access.priv_key.get_secret_value()}",
                        "--v3-priv-proto="
                        + SNMPSIM_PRIV.get(access.priv_protocol, access.priv_protocol)]
    else:
        options += [f"--v3-user=unused-{secrets.token_hex(8)}",
                    f"--v3-auth-key={secrets.token_hex(16)}", "--v3-auth-proto=SHA",
                    f"--v3-priv-key={secrets.token_hex(16)}", "--v3-priv-proto=AES"]
    options += [f"--data-dir={files.data_dir}", f"--agent-udpv4-endpoint={address}:{port}"]
    return options


def _check_endpoints_free(endpoints: dict[str, tuple[str, int]]) -> None:
    """snmpsim does not fail when it cannot bind an endpoint: find out before starting it,
    or a leftover simulator could answer in its place."""
    busy = []
    for key, (host, port) in sorted(endpoints.items()):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((host, port))
            except OSError as error:
                busy.append(f"{key} {host}:{port} ({error.strerror})")
    if busy:
        raise SimulatorError("UDP endpoints already in use (another simulator running?): "
                             + ", ".join(busy))


def _process_is_ours(pid: int, marker: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return marker.encode() in cmdline


async def _probe_agents(targets: dict[str, tuple[str, int, object]],
                        deadline_monotonic_s: float,
                        alive: Callable[[], bool]) -> list[str]:
    """GET sysUpTime from every target until each answers, the deadline passes or `alive()`
    turns false; returns the keys of those that never answered."""
    from pysnmp.hlapi.v3arch.asyncio import (
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        get_cmd,
    )

    engine = SnmpEngine()
    limit = asyncio.Semaphore(PROBES_IN_FLIGHT)

    async def probe(host: str, port: int, auth: Any) -> bool:
        target = await UdpTransportTarget.create((host, port), timeout=PROBE_TIMEOUT_S,
                                                 retries=0)
        while time.monotonic() < deadline_monotonic_s and alive():
            async with limit:
                error, status, _, _ = await get_cmd(
                    engine, auth, target, ContextData(),
                    ObjectType(ObjectIdentity(SYS_UPTIME_OID)))
            if not error and not status:
                return True
            await asyncio.sleep(PROBE_PAUSE_S)
        return False

    try:
        keys = list(targets)
        answered = await asyncio.gather(*(probe(*targets[key]) for key in keys))
    finally:
        engine.close_dispatcher()
    return [key for key, ok in zip(keys, answered, strict=True) if not ok]


class SimulatedNetwork:
    """Every device of an inventory as an SNMP agent on its management address.

    `environ` resolves the credentials' `env:` secrets (default: the process environment).
    Traps go to `trap_receiver` with `trap_community` (default: the device's own SNMPv2c
    community; for SNMPv3 devices, which the simulator lets send v2c traps, the community of
    the network's first v2c device by key, so that a receiver configured from the inventory
    accepts them). With `cli`, each device that names a CLI credential also answers SSH on
    its management address (lab.sim.ssh: the credential's port, its platform's CLI, fault
    modes, running configuration). Use as a context manager, or start()/stop().
    """

    def __init__(self, inventory: Inventory, work_dir: Path | str, *,
                 environ: Mapping[str, str] | None = None,
                 trap_receiver: tuple[str, int] = DEFAULT_TRAP_RECEIVER,
                 trap_community: str | None = None,
                 start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
                 control_socket: bool = True,
                 cli: bool = False):
        check_loopback(trap_receiver, "trap receiver")
        check_simulable(inventory)
        self.inventory = inventory
        self.work_dir = Path(work_dir).absolute()
        self.trap_receiver = trap_receiver
        self.trap_community = trap_community
        self.start_timeout_s = start_timeout_s
        self.control_socket = control_socket
        self.cli = cli
        self._environ = environ
        self._lock = threading.RLock()
        self._process: subprocess.Popen[bytes] | None = None
        self._plan: NetworkPlan | None = None
        self._state: NetworkState | None = None
        self._access: dict[str, AgentAccess] = {}
        self._files: dict[str, AgentFiles] = {}
        self._down_devices: set[str] = set()
        self._silent_agents: set[str] = set()  # SNMP refused, device alive (set_snmp_status)
        self._blackhole: Blackhole | None = None
        self._close_control: Any = None
        self._cli: CliServers | None = None
        self._configs: dict[str, list[str]] = {}  # device key -> running configuration
        self._config_changed_epoch_s: dict[str, float] = {}
        self.started_in_s: float | None = None  # wall time start() took, for the curious

    # --- lifetime ----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def args_file(self) -> Path:
        return self.work_dir / "snmpsim.args"

    @property
    def log_file(self) -> Path:
        return self.work_dir / "snmpsim.log"

    @property
    def pid_file(self) -> Path:
        return self.work_dir / "snmpsim.pid"

    def start(self) -> None:
        """Write every device's data, start snmpsim, and return once every agent answers
        a GET of sysUpTime with its own credentials (SimulatorError after
        `start_timeout_s`)."""
        with self._lock:
            if self.running:
                raise SimulatorError("the simulated network is already running")
            began = time.monotonic()
            self._prepare_work_dir()
            self._refuse_if_running()
            self._stop_stale_process()
            self._access = {key: device_access(self.inventory, device, self._environ)
                            for key, device in self.inventory.devices.items()}
            self._plan = build_plan(self.inventory, time.time())
            self._state = NetworkState.initial(self._plan)
            self._down_devices = set()
            self._silent_agents = set()
            _check_endpoints_free({key: self.endpoint(key) for key in self.inventory.devices})
            self._write_all()
            self._spawn()
            try:
                self._wait_until_answering(began + self.start_timeout_s)
                if self.cli:
                    self._start_cli()
                if self.control_socket:
                    self._close_control = control.serve(self.work_dir, self._on_control)
            except BaseException:
                self.stop()
                raise
            atexit.register(self.stop)
            self.started_in_s = time.monotonic() - began
            log.info("simulated network of %d devices answering after %.1f s",
                     len(self._plan.devices), self.started_in_s)

    def stop(self) -> None:
        """Stop snmpsim and the control socket; safe to call twice."""
        with self._lock:
            atexit.unregister(self.stop)
            if self._cli is not None:
                self._cli.stop()
                self._cli = None
            if self._close_control is not None:
                self._close_control()
                self._close_control = None
            if self._blackhole is not None:
                self._blackhole.close()
                self._blackhole = None
            process, self._process = self._process, None
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=STOP_TIMEOUT_S)
            self.pid_file.unlink(missing_ok=True)

    def __enter__(self) -> SimulatedNetwork:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    # --- what it serves ----------------------------------------------------------------

    def endpoint(self, device_key: str) -> tuple[str, int]:
        """The (host, port) where the device's agent answers."""
        device = self._device(device_key)
        return str(device.management_address), device.snmp_port

    def access(self, device_key: str) -> AgentAccess:
        """The resolved credential the device's agent accepts (after start())."""
        self._device(device_key)
        if device_key not in self._access:
            raise SimulatorError("the simulated network has not been started")
        return self._access[device_key]

    def port_status(self, device_key: str, port_name: str) -> str:
        state = self._require_state()
        return "up" if state.oper_up[self._port_key(device_key, port_name)] else "down"

    def down_ports(self) -> list[str]:
        """Keys ("device:port") of the ports set down, sorted."""
        state = self._require_state()
        return sorted(key for key, up in state.oper_up.items() if not up)

    # --- fault injection ---------------------------------------------------------------

    def set_port_status(self, device_key: str, port_name: str, status: str) -> bool:
        """Set a port's ifOperStatus to "down" or "up" (ifAdminStatus stays up: a fault, not
        a shutdown). Its counters, and its link peer's, stop or resume; for a link, both
        ends' LLDP entries for each other disappear or come back; the device sends a
        linkDown/linkUp trap from its management address. Returns False, and sends nothing,
        if the port already had that status."""
        if status not in PORT_STATUSES:
            raise ValueError(f"port status must be one of {', '.join(PORT_STATUSES)}")
        with self._lock:
            if not self.running:
                raise SimulatorError("the simulated network is not running")
            state = self._require_state()
            plan = self._plan
            assert plan is not None
            port_key = self._port_key(device_key, port_name)
            now = time.time()
            changed = state.set_port(plan, port_key, status == "up", now)
            for key in sorted(changed):
                self._write_device(key)
            if changed:
                self._send_link_trap(device_key, port_name, status == "up", now)
        if changed:
            log.info("%s:%s is now %s", device_key, port_name, status)
        return bool(changed)

    def set_device_status(self, device_key: str, status: str) -> bool:
        """Fail a whole device ("down") or bring it back ("up"), as a real router failure
        looks from outside: while down its agent answers nothing (its data file is moved
        aside, so snmpsim has nothing to serve and requests time out), it answers no ping
        either (with root: lab.sim.blackhole; without, the kernel still answers for its
        loopback address and the device looks SNMP-silent, not dead), its own ports are down
        without a trap (a dead router sends none), and each neighbour's port facing it goes
        down with a linkDown trap from the neighbour. Back up, its ports come up again with
        linkUp traps from the device and from its neighbours. Returns False if the device
        already had that status."""
        if status not in PORT_STATUSES:
            raise ValueError(f"device status must be one of {', '.join(PORT_STATUSES)}")
        up = status == "up"
        with self._lock:
            if not self.running:
                raise SimulatorError("the simulated network is not running")
            state = self._require_state()
            plan = self._plan
            assert plan is not None
            device = self._device(device_key)
            if (device_key not in self._down_devices) == up:
                return False
            now = time.time()
            own = [f"{device_key}:{port.name}" for port in device.ports]
            far = [plan.peer_of[key] for key in own if key in plan.peer_of]
            changed: set[str] = set()
            if not up:
                self._down_devices.add(device_key)
            else:
                self._down_devices.discard(device_key)
            for key in own + far:
                changed |= state.set_port(plan, key, up, now)
            for key in sorted(changed | {device_key}):
                self._write_device(key)
            self._vanish(device_key, not up)
            if self._cli is not None and device_key in self._cli.devices:
                self._cli.set_down(device_key, not up)
            traps = far if not up else own + far
            for key in traps:
                owner, _, name = key.partition(":")
                self._send_link_trap(owner, name, up, now)
        log.info("%s is now %s", device_key, status)
        return True

    def down_devices(self) -> list[str]:
        """Keys of the devices set down, sorted."""
        return sorted(self._down_devices)

    @property
    def can_vanish(self) -> bool:
        """Whether a device set down also stops answering ping (root and nftables)."""
        with self._lock:
            if self._blackhole is None:
                self._blackhole = Blackhole.open()
            return self._blackhole is not None

    def set_snmp_status(self, device_key: str, status: str) -> bool:
        """Make a device's SNMP agent refuse the poller ("down") or accept it again ("up"),
        the device itself carrying on: what a community changed on the device, an ACL or a
        crashed agent look like from outside (no answer, while ping and the ports work).
        Returns False if the agent already had that status."""
        if status not in PORT_STATUSES:
            raise ValueError(f"SNMP status must be one of {', '.join(PORT_STATUSES)}")
        with self._lock:
            if not self.running:
                raise SimulatorError("the simulated network is not running")
            self._device(device_key)
            if (device_key not in self._silent_agents) == (status == "up"):
                return False
            if status == "down":
                self._silent_agents.add(device_key)
            else:
                self._silent_agents.discard(device_key)
            self._write_device(device_key)
        log.info("%s's SNMP agent is now %s", device_key, status)
        return True

    # --- the devices' CLIs (lab.sim.ssh) --------------------------------------------------

    def cli_endpoint(self, device_key: str) -> tuple[str, int]:
        """The (host, port) where the device's SSH server listens (after start(), cli=True)."""
        return self._require_cli(device_key).endpoint(device_key)

    def cli_host_key(self, device_key: str) -> str:
        """The device's current SSH host key as an OpenSSH public key line."""
        return self._require_cli(device_key).public_key(device_key)

    def cli_mode(self, device_key: str, mode: str, delay_s: float | None = None) -> bool:
        """Put a device's CLI in a fault mode (lab.sim.ssh.CLI_MODES: normal, auth-fail,
        hang, garbage, slow with `delay_s`, low-privilege, unexpected-prompt); live sessions
        follow at their next command. Returns False if it already was in that mode."""
        with self._lock:
            changed = self._require_cli(device_key).set_mode(device_key, mode, delay_s)
        if changed:
            log.info("%s's CLI is now %s", device_key, mode)
        return changed

    def rotate_host_key(self, device_key: str) -> str:
        """Give a device a new SSH host key, as a changed key (or a man in the middle) looks
        to a collector; returns the new public key line."""
        with self._lock:
            return self._require_cli(device_key).rotate_host_key(device_key)

    def cli_config(self, device_key: str) -> str:
        """The device's running configuration as its configuration command prints it."""
        with self._lock:
            self._require_cli(device_key)
            device = self._device(device_key)
            return render_config(device.platform, self._configs[device_key],
                                 self._config_changed_epoch_s[device_key])

    def change_cli_config(self, device_key: str, add: Sequence[str] = (),
                          remove: Sequence[str] = ()) -> bool:
        """Edit a device's running configuration as an engineer would: each line of
        `remove` (exactly as the configuration shows it, indentation included) goes, then
        the lines of `add` are inserted before the configuration's end marker (`end`,
        `return`) or appended. All or nothing: a line to remove that is not there, or a line
        with a line break, is refused (SimulatorError) and nothing changes. Returns False
        if the configuration did not change."""
        for line in (*add, *remove):
            if not isinstance(line, str) or "\n" in line or "\r" in line:
                raise SimulatorError(f"a configuration line must be one line of text, not "
                                     f"{line!r}")
        with self._lock:
            self._require_cli(device_key)
            lines = list(self._configs[device_key])
            for line in remove:
                try:
                    lines.remove(line.rstrip())
                except ValueError:
                    raise SimulatorError(f"device {device_key}'s running configuration has "
                                         f"no line {line.rstrip()!r}") from None
            end = len(lines)
            if lines and lines[-1] in CONFIG_END_MARKERS:
                end -= 1
            lines[end:end] = [line.rstrip() for line in add]
            if lines == self._configs[device_key]:
                return False
            self._configs[device_key] = lines
            self._config_changed_epoch_s[device_key] = time.time()
        log.info("%s's running configuration changed (%d lines added, %d removed)",
                 device_key, len(add), len(remove))
        return True

    def _require_cli(self, device_key: str) -> CliServers:
        """The CLI servers, once `device_key` is known to have one (SimulatorError if not)."""
        self._device(device_key)
        if self._cli is None:
            raise SimulatorError("the simulated network serves no CLI (start it with cli=True)")
        if device_key not in self._cli.devices:
            raise SimulatorError(f"device {device_key} has no simulated CLI (it names no "
                                 "cli_credential)")
        return self._cli

    def _start_cli(self) -> None:
        assert self._plan is not None and self._state is not None
        devices = []
        now = time.time()
        for key in sorted(self.inventory.devices):
            device = self.inventory.devices[key]
            try:
                access = device_cli_access(self.inventory, device, self._environ)
            except (ValueError, SecretError) as error:
                raise SimulatorError(f"device {key}: {error}") from None
            if access is None:
                continue
            devices.append(CliDevice(key, device.platform, str(device.management_address),
                                     access))
            view = device_view(self._plan, self._state, key, now)
            self._configs[key] = initial_config(view)
            self._config_changed_epoch_s[key] = self._plan.devices[key].boot_epoch_s
        cli = CliServers(devices, self.work_dir / HOST_KEY_DIR, self._cli_answer)
        try:
            cli.start()
        except CliError as error:
            raise SimulatorError(str(error)) from None
        self._cli = cli

    def _cli_answer(self, device_key: str, what: str) -> str:
        """What a device's CLI prints for "interfaces" or "config" (called by lab.sim.ssh)."""
        if what == "config":
            return self.cli_config(device_key)
        with self._lock:
            assert self._plan is not None
            view = device_view(self._plan, self._require_state(), device_key, time.time())
        platform = CLI_PLATFORMS[view.platform]
        assert platform.render_interfaces is not None
        return platform.render_interfaces(view)

    def _vanish(self, device_key: str, gone: bool) -> None:
        if not self.can_vanish:
            if gone:
                log.warning("%s is down but still answers ping (not root, or no nftables):"
                            " it will look SNMP-silent, not dead", device_key)
            return
        assert self._blackhole is not None
        address = str(self._device(device_key).management_address)
        if gone:
            self._blackhole.block(address)
        else:
            self._blackhole.unblock(address)

    # --- internals ---------------------------------------------------------------------

    def _device(self, device_key: str) -> Any:
        try:
            return self.inventory.devices[device_key]
        except KeyError:
            raise SimulatorError(
                f"device {device_key} is not in the simulated network") from None

    def _port_key(self, device_key: str, port_name: str) -> str:
        device = self._device(device_key)
        if not any(port.name == port_name for port in device.ports):
            raise SimulatorError(f"device {device_key} has no port {port_name!r}")
        return f"{device_key}:{port_name}"

    def _require_state(self) -> NetworkState:
        if self._state is None:
            raise SimulatorError("the simulated network has not been started")
        return self._state

    def _write_all(self) -> None:
        data_root = self.work_dir / "data"
        shutil.rmtree(data_root, ignore_errors=True)
        shutil.rmtree(self.work_dir / "cache", ignore_errors=True)
        self._files = {}
        for number, key in enumerate(sorted(self.inventory.devices), start=1):
            access = self._access[key]
            data_dir = data_root / f"{number:03d}-{_slug(key)}"
            if access.version == "2c":
                assert access.community is not None
                name = access.community.get_secret_value()
            else:
                name = "self"
            self._files[key] = AgentFiles(data_dir, data_dir / f"{name}.snmprec")
            self._write_device(key)

    def _write_device(self, device_key: str) -> None:
        assert self._plan is not None and self._state is not None
        data_file = self._files[device_key].data_file
        aside = data_file.with_name(data_file.name + ".down")  # not served: no .snmprec
        if device_key in self._down_devices or device_key in self._silent_agents:
            write_snmprec(aside, device_records(self._plan, self._state, device_key))
            data_file.unlink(missing_ok=True)
            return
        write_snmprec(data_file, device_records(self._plan, self._state, device_key))
        aside.unlink(missing_ok=True)

    def _spawn(self) -> None:
        options: list[str] = []
        for key in sorted(self.inventory.devices):
            host, port = self.endpoint(key)
            options += _engine_options(key, host, port, self._access[key], self._files[key])
        descriptor = os.open(self.args_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as stream:
            stream.write("\n".join(options) + "\n")
        os.chmod(self.args_file, 0o600)
        user = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(os.getgid()).gr_name
        command = [
            sys.executable, "-m", "snmpsim.commands.responder",
            f"--process-user={user}", f"--process-group={group}",
            "--log-level=error",
            f"--cache-dir={self.work_dir / 'cache'}",
            f"--variation-modules-dir={VARIATION_DIR}",
            "--force-index-rebuild",
            f"--args-from-file={self.args_file}",
        ]
        environment = dict(os.environ)
        environment.setdefault("HOME", str(self.work_dir))  # snmpsim's defaults need one
        # the variation module imports lab.sim.traffic, wherever this checkout is
        project_root = str(Path(lab.__file__).resolve().parent.parent)
        environment["PYTHONPATH"] = os.pathsep.join(
            filter(None, (project_root, environment.get("PYTHONPATH"))))
        with open(self.log_file, "wb") as log_stream:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log_stream,
                stderr=subprocess.STDOUT, cwd=self.work_dir, env=environment,
                start_new_session=True,  # a Ctrl-C in the terminal is ours to handle
            )
        self.pid_file.write_text(f"{self._process.pid}\n")

    def _prepare_work_dir(self) -> None:
        """Create the work directory (owner-only), or reuse one this simulator made: never a
        directory holding anything else, since start() clears its data/ and cache/."""
        marker = self.work_dir / WORK_DIR_MARKER
        if self.work_dir.is_symlink():
            raise SimulatorError(f"work directory {self.work_dir} is a symbolic link")
        if self.work_dir.exists():
            if self.work_dir.stat().st_uid != os.getuid():
                raise SimulatorError(f"work directory {self.work_dir} belongs to another user")
            if any(self.work_dir.iterdir()) and not marker.exists():
                raise SimulatorError(f"work directory {self.work_dir} is not empty and was not "
                                     "made by the simulator: choose another")
        self.work_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.work_dir.chmod(0o700)
        marker.write_text("Work directory of Keyline's simulated network (lab.sim).\n")

    def _refuse_if_running(self) -> None:
        """A network already answering in this work directory (the demo's, say) belongs to
        another process: starting here would stop its snmpsim as if it were left over."""
        try:
            control.request(self.work_dir, {"command": "status"}, timeout_s=STOP_TIMEOUT_S)
        except (control.ControlError, OSError, ValueError):
            return
        raise SimulatorError(f"a simulated network is already running in {self.work_dir}: "
                             "stop it first, or use another work directory (--work-dir, or "
                             "another data directory)")

    def _stop_stale_process(self) -> None:
        """Stop an snmpsim left running in this work directory by a process that died."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        if _process_is_ours(pid, str(self.args_file)):
            log.warning("stopping snmpsim process %d left over in %s", pid, self.work_dir)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                time.sleep(0.05)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)

    def _wait_until_answering(self, deadline_monotonic_s: float) -> None:
        targets = {key: (*self.endpoint(key), pysnmp_auth(self._access[key]))
                   for key in self.inventory.devices}
        process = self._process
        assert process is not None
        # pysnmp needs an event loop: run one in a thread of its own, so that start() also
        # works when called from code that already runs a loop
        with ThreadPoolExecutor(max_workers=1) as pool:
            silent = pool.submit(asyncio.run, _probe_agents(
                targets, deadline_monotonic_s, lambda: process.poll() is None)).result()
        if process.poll() is not None:
            raise SimulatorError(f"snmpsim exited at start:\n{self._log_tail()}")
        if silent:
            raise SimulatorError(
                f"agents not answering after {self.start_timeout_s:.0f} s: "
                f"{', '.join(sorted(silent))}\n{self._log_tail()}")

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no snmpsim log)"
        return "\n".join(text.splitlines()[-lines:])

    def _send_link_trap(self, device_key: str, port_name: str, up: bool,
                        now_epoch_s: float) -> None:
        assert self._plan is not None
        device = self._plan.devices[device_key]
        access = self._access[device_key]
        community = self.trap_community
        if community is None:
            community = (access.community.get_secret_value() if access.community
                         else self._shared_v2c_community())
        payload = encode_link_trap(
            community=community, up=up,
            uptime_ticks=ticks_since(device.boot_epoch_s, now_epoch_s),
            if_index=device.port(port_name).if_index,
            request_id=secrets.randbelow(2**31),
        )
        try:
            send_datagram(payload, source_host=str(device.address), receiver=self.trap_receiver)
        except OSError as error:  # no receiver is not a failure of the network
            log.warning("trap from %s not sent: %s", device_key, error)

    def _shared_v2c_community(self) -> str:
        for key in sorted(self._access):
            community = self._access[key].community
            if community is not None:
                return community.get_secret_value()
        return V2C_TRAP_FALLBACK_COMMUNITY

    def _on_control(self, request: dict[str, Any]) -> dict[str, Any]:
        command = request.get("command")
        if command == "port":
            changed = self.set_port_status(str(request.get("device")), str(request.get("port")),
                                           str(request.get("status")))
            return {"ok": True, "changed": changed}
        if command == "device":
            changed = self.set_device_status(str(request.get("device")),
                                             str(request.get("status")))
            return {"ok": True, "changed": changed}
        if command == "snmp":
            changed = self.set_snmp_status(str(request.get("device")),
                                           str(request.get("status")))
            return {"ok": True, "changed": changed}
        if command == "cli-mode":
            delay = request.get("delay_s")
            if delay is not None and (isinstance(delay, bool)
                                      or not isinstance(delay, int | float)):
                raise SimulatorError(f"cli-mode: delay_s is a number of seconds, not {delay!r}")
            changed = self.cli_mode(str(request.get("device")), str(request.get("mode")),
                                    float(delay) if delay is not None else None)
            return {"ok": True, "changed": changed}
        if command == "cli-config":
            add, remove = request.get("add") or [], request.get("remove") or []
            if not isinstance(add, list) or not isinstance(remove, list):
                raise SimulatorError("cli-config: add and remove are lists of lines")
            changed = self.change_cli_config(str(request.get("device")), add, remove)
            return {"ok": True, "changed": changed,
                    "config": self.cli_config(str(request.get("device")))}
        if command == "host-key":
            return {"ok": True, "changed": True,
                    "public_key": self.rotate_host_key(str(request.get("device")))}
        if command == "status":
            down = self.down_ports()
            devices = {}
            for key in sorted(self.inventory.devices):
                host, port = self.endpoint(key)
                devices[key] = {
                    "endpoint": f"{host}:{port}",
                    "snmp": "v" + self._access[key].version,
                    "down": [p.partition(":")[2] for p in down if p.startswith(key + ":")],
                }
                if self._cli is not None and key in self._cli.devices:
                    cli_host, cli_port = self._cli.endpoint(key)
                    devices[key]["cli"] = {"endpoint": f"{cli_host}:{cli_port}",
                                           "platform": self._cli.devices[key].platform,
                                           "mode": self._cli.devices[key].mode}
            return {"ok": True, "devices": devices, "pid": self.pid}
        raise SimulatorError(f"unknown command {command!r} (port, device, snmp, cli-mode, "
                             "cli-config, host-key, status)")
