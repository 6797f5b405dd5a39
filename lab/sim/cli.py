"""Command line of the simulated network: `python -m lab.sim` (`keyline lab sim`).

    python -m lab.sim [run] [--work-dir DIR] [--trap-receiver HOST:PORT] [INVENTORY ...]
        start every device of the inventory (default: the example inventory) and keep
        running until Ctrl-C or SIGTERM
    python -m lab.sim fault [--work-dir DIR] DEVICE PORT down|up
    python -m lab.sim fault [--work-dir DIR] DEVICE --device down|up   # the whole device
    python -m lab.sim fault [--work-dir DIR] DEVICE --snmp down|up     # its SNMP agent only
        set a port of the running network down or up (see control.py)
    python -m lab.sim cli [--work-dir DIR] DEVICE MODE [--delay-s S]
        put a device's simulated CLI (SSH) in a fault mode: normal, auth-fail, hang,
        garbage, slow (each answer S seconds late), low-privilege, unexpected-prompt
    python -m lab.sim host-key [--work-dir DIR] DEVICE
        give a device's SSH server a new host key (a changed key, as a collector sees it)
    python -m lab.sim config [--work-dir DIR] DEVICE [--add LINE]... [--remove LINE]...
        change a device's running configuration (what its CLI shows), or print it
    python -m lab.sim status [--work-dir DIR]
        list the running network's devices, SNMP and SSH endpoints and down ports

The credentials' secrets come from the environment; a KEYLINE_LAB_* variable that is not set
gets its lab value (see access.with_lab_defaults), so the example inventory runs as is.
`run` and `fault` find each other through the work directory, so they need the same
--work-dir, or none. The default is `lab-sim` in Keyline's data directory (the settings'
`data_dir`: `keyline --data-dir`, KEYLINE_DATA_DIR, keyline.toml, else the per-user default),
where `keyline demo` runs its network too: `keyline lab sim fault DEVICE PORT down` reaches
the demo started with the same settings.
Exit codes: 0 done, 1 failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from lab.sim.control import ControlError, request
from lab.sim.ssh import CLI_MODES
from lab.sim.traps import DEFAULT_TRAP_RECEIVER

log = logging.getLogger(__name__)


WORK_DIR_NAME = "lab-sim"


def default_work_dir(data_dir: Path | None = None) -> Path:
    """The network's work directory in Keyline's data directory (default: the settings'),
    where `keyline demo` runs its own: one per data directory, so one per user by default."""
    if data_dir is None:
        from config.settings import load_settings

        data_dir = load_settings().data_dir
    return Path(data_dir) / WORK_DIR_NAME


def _endpoint(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, not {text!r}")
    return host, int(port)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lab.sim",
                                     description="Simulated SNMP network of an inventory.")
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("run", help="start the network and keep it running")
    run.add_argument("inventory", nargs="*", type=Path,
                     help="inventory files or folders (default: the example inventory)")
    run.add_argument("--trap-receiver", type=_endpoint, default=DEFAULT_TRAP_RECEIVER,
                     metavar="HOST:PORT", help="where traps go (default 127.0.0.1:1162)")
    fault = commands.add_parser(
        "fault", help="set a port, a whole device or a device's SNMP agent down or up")
    fault.add_argument("device")
    fault.add_argument("port", nargs="?", help="the port (omit with --device or --snmp)")
    fault.add_argument("status", choices=("down", "up"))
    which = fault.add_mutually_exclusive_group()
    which.add_argument("--device", dest="whole", action="store_true",
                       help="the whole device: no SNMP, no ping, its links down")
    which.add_argument("--snmp", action="store_true",
                       help="only its SNMP agent (as after a community change): it refuses "
                            "the poller, the device works on")
    cli = commands.add_parser("cli", help="put a device's simulated CLI in a fault mode")
    cli.add_argument("device")
    cli.add_argument("mode", choices=CLI_MODES)
    cli.add_argument("--delay-s", type=float, help="for slow: seconds each answer waits")
    host_key = commands.add_parser("host-key", help="give a device a new SSH host key")
    host_key.add_argument("device")
    config = commands.add_parser("config", help="change or show a device's running "
                                                "configuration")
    config.add_argument("device")
    config.add_argument("--add", action="append", default=[], metavar="LINE",
                        help="a line to add before the configuration's end (repeatable)")
    config.add_argument("--remove", action="append", default=[], metavar="LINE",
                        help="a line to remove, exactly as shown (repeatable)")
    commands.add_parser("status", help="show the running network")
    for command in (run, fault, cli, host_key, config, commands.choices["status"]):
        command.add_argument("--work-dir", type=Path,
                             help=f"the network's work directory (default: DATA_DIR/"
                                  f"{WORK_DIR_NAME}, the demo's)")
    return parser


def run_network(inventory_paths: Sequence[Path], work_dir: Path,
                trap_receiver: tuple[str, int] = DEFAULT_TRAP_RECEIVER,
                stop: threading.Event | None = None) -> int:
    """Start the network of the inventory and serve it until `stop` is set (by default: until
    SIGINT or SIGTERM)."""
    from config.inventory.loader import load_inventory
    from lab.sim.access import with_lab_defaults
    from lab.sim.network import SimulatedNetwork

    if not inventory_paths:
        from keyline.wiring import EXAMPLE_INVENTORY

        inventory_paths = [EXAMPLE_INVENTORY]
    inventory = load_inventory(list(inventory_paths))
    network = SimulatedNetwork(inventory, work_dir, trap_receiver=trap_receiver,
                               environ=with_lab_defaults(inventory), cli=True)
    stop = stop or _stop_on_signals()
    with network:
        print(f"Simulated network: {len(inventory.devices)} devices, answering after "
              f"{network.started_in_s:.1f} s; traps to {trap_receiver[0]}:{trap_receiver[1]}")
        for key in sorted(inventory.devices):
            host, port = network.endpoint(key)
            device = inventory.devices[key]
            ssh = ""
            if device.cli_credential:
                cli_host, cli_port = network.cli_endpoint(key)
                ssh = f"  SSH {cli_host}:{cli_port}"
            print(f"  {key:<20} {host + ':' + str(port):<18} SNMPv{network.access(key).version:<3} "
                  f"{device.platform:<14} {len(device.ports)} ports{ssh}")
        print(f"Faults: python -m lab.sim fault --work-dir {work_dir} DEVICE PORT down|up")
        print("Ctrl-C stops.", flush=True)
        stop.wait()
    print("Simulated network stopped.")
    return 0


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    return stop


def set_fault(work_dir: Path, device: str, port: str | None, status: str, *,
              command: str = "port") -> bool:
    """Ask the network running in `work_dir` to set a port ("port"), a whole device
    ("device") or its SNMP agent ("snmp") down or up; True if it changed."""
    answer = request(work_dir, {"command": command, "device": device, "port": port,
                                "status": status})
    return bool(answer["changed"])


def main(argv: Sequence[str] | None = None, data_dir: Path | None = None) -> int:
    """Run a command; `data_dir` (default: the settings') holds the default work directory."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or arguments[0] not in ("run", "fault", "cli", "host-key", "config",
                                             "status", "-h", "--help"):
        arguments.insert(0, "run")
    options = _parser().parse_args(arguments)
    try:
        if options.work_dir is None:
            options.work_dir = default_work_dir(data_dir)
        if options.command == "fault":
            command = "device" if options.whole else "snmp" if options.snmp else "port"
            if (command == "port") != (options.port is not None):
                print("lab sim: name a PORT, or use --device or --snmp", file=sys.stderr)
                return 2
            changed = set_fault(options.work_dir, options.device, options.port,
                                options.status, command=command)
            state = "now" if changed else "already"
            what = {"port": f"{options.device}:{options.port}", "device": options.device,
                    "snmp": f"{options.device}'s SNMP agent"}[command]
            print(f"{what} is {state} {options.status}")
            return 0
        if options.command == "cli":
            answer = request(options.work_dir, {"command": "cli-mode", "device": options.device,
                                                "mode": options.mode,
                                                "delay_s": options.delay_s})
            state = "now" if answer["changed"] else "already"
            print(f"{options.device}'s CLI is {state} {options.mode}")
            return 0
        if options.command == "host-key":
            answer = request(options.work_dir, {"command": "host-key",
                                                "device": options.device})
            print(f"{options.device} has a new SSH host key: {answer['public_key']}")
            return 0
        if options.command == "config":
            answer = request(options.work_dir, {"command": "cli-config",
                                                "device": options.device,
                                                "add": options.add, "remove": options.remove})
            if options.add or options.remove:
                state = "changed" if answer["changed"] else "unchanged"
                print(f"{options.device}'s running configuration is {state}")
            else:
                print(answer["config"], end="")
            return 0
        if options.command == "status":
            answer = request(options.work_dir, {"command": "status"})
            for key, device in answer["devices"].items():
                down = ", ".join(device["down"]) or "-"
                cli = device.get("cli")
                ssh = f"ssh {cli['endpoint']:<22} " if cli else ""
                if cli and cli["mode"] != "normal":
                    ssh += f"cli: {cli['mode']} "
                print(f"{key:<20} {device['endpoint']:<22} {device['snmp']:<4} {ssh}"
                      f"down: {down}")
            return 0
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        # asyncssh tells of every connection at INFO: a collector polling every minute
        # would bury the network's own messages
        logging.getLogger("asyncssh").setLevel(logging.WARNING)
        return run_network(options.inventory, options.work_dir, options.trap_receiver)
    except ControlError as error:
        print(f"lab sim: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        from config.inventory.model import InventoryError
        from config.secrets import SecretError, mask_secrets
        from config.settings import SettingsError
        from lab.sim.network import SimulatorError

        if isinstance(error, InventoryError):
            print(error.report(), file=sys.stderr)
        elif not isinstance(error, SecretError | SettingsError | SimulatorError | ValueError):
            raise
        print(f"lab sim: {mask_secrets(str(error))}", file=sys.stderr)
        return 2 if not isinstance(error, SimulatorError) else 1
