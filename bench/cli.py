"""CLI collection against the simulated CLI: sessions, parsing and CPU per device poll.

Builds an inventory of `--devices` devices (platforms in turn from `--platforms`, each with
`--ports` ports, on loopback addresses 127.0.3.N), starts the simulated network for it in a
child process (`python -m lab.sim run`: its SSH servers' CPU is not this process's), imports
the inventory into a scratch database (bench/scratch_database.py: the host keys live there)
and measures the collector side, collectors.cli as the collection service runs it:

    sessions_per_s      new SSH sessions (TCP, key exchange, password login, netmiko's session
                        preparation, one poll) per second with `--workers` workers, every
                        run opening its own session (CliSessions max_open_sessions=0)
    cpu_ms_per_session  this process's CPU (user + system, all threads: paramiko's transport
                        threads included) per such session
    polls_per_s         device polls per second over kept sessions (one command each, parsed
                        by the platform's profile); commands_parsed_per_s the same count of
                        commands
    cpu_ms_per_poll     this process's CPU per device poll over a kept session
    parse_per_s         by platform: commands parsed per second by the profile alone
                        (collectors.cli_profiles.read_outputs on an output captured from the
                        simulated device; one core, no SSH)
    devices_60s_half    how many devices one collector could poll over the CLI every 60 s on
                        half a core at cpu_ms_per_poll: 0.5 * 60 s / CPU s per poll

Each figure is the median of `--rounds` rounds after a warm-up round (the first contact,
which also trusts each device's host key).

    python bench/cli.py [--devices 60] [--ports 12] [--workers 16] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and bench/alarms.py there is
# named like the alarms package: take the folder off.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg_pool import ConnectionPool  # noqa: E402

from bench.scratch_database import scratch_database  # noqa: E402
from collectors.cli import (  # noqa: E402
    CliResult,
    CliSessions,
    CliStatus,
    CliTarget,
    HostKeyBook,
    load_cli_targets,
    poll_cli,
)
from collectors.cli_profiles import cli_profile, read_outputs  # noqa: E402
from config.inventory.loader import load_inventory  # noqa: E402
from lab.sim.access import with_lab_defaults  # noqa: E402
from lab.sim.ssh import free_tcp_port_on  # noqa: E402
from store.inventory import apply_inventory  # noqa: E402
from tests.snmp_agents import free_udp_port_on  # noqa: E402

# How each platform names the ports of a line card
PORT_NAMES = {
    "cisco_ios": "GigabitEthernet0/0/{}",
    "cisco_xr": "GigabitEthernet0/0/0/{}",
    "huawei_vrp": "GigabitEthernet0/0/{}",
    "hp_comware": "GigabitEthernet1/0/{}",
    "juniper_junos": "ge-0/0/{}",
}
DEFAULT_PLATFORMS = "cisco_ios,huawei_vrp,hp_comware,cisco_xr,juniper_junos"


def write_inventory(folder: Path, devices: int, ports: int, platforms: Sequence[str]) -> Path:
    addresses = [f"127.0.3.{number + 1}" for number in range(devices)]
    snmp_port, ssh_port = free_udp_port_on(addresses), free_tcp_port_on(addresses)
    lines = ["credentials:",
             "  - {id: bench-snmp, kind: snmp_v2c, community: {env: KEYLINE_LAB_SNMP_COMMUNITY}}",
             "  - {id: bench-ssh, kind: ssh, username: keyline,"
             f" password: {{env: KEYLINE_LAB_SSH_PASSWORD}}, port: {ssh_port}}}",
             "devices:"]
    for number, address in enumerate(addresses):
        platform = platforms[number % len(platforms)]
        lines += [f"  - name: bench-{number + 1:03d}", "    role: PE",
                  f"    platform: {platform}", f"    management_address: {address}",
                  f"    snmp_port: {snmp_port}", "    snmp_credential: bench-snmp",
                  "    cli_credential: bench-ssh", "    ports:"]
        lines += [f"      - {{name: {PORT_NAMES[platform].format(port)}, speed_bps: 1G}}"
                  for port in range(ports)]
    path = folder / "bench-cli.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_network(inventory_path: Path, work_dir: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "lab.sim", "run", "--work-dir", str(work_dir),
         "--trap-receiver", "127.0.0.1:9", str(inventory_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith("Ctrl-C stops."):
            return process
    raise SystemExit("the simulated network did not start:\n" + "".join(seen[-20:]))


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def poll_round(sessions: CliSessions, targets: Sequence[CliTarget]) -> tuple[float, float,
                                                                              list[CliResult]]:
    """Poll every target once through the sessions' workers: (wall s, CPU s, results)."""
    began_s, began_cpu_s = time.monotonic(), cpu_s()
    futures: list[Future] = [
        sessions.submit(target, poll_cli, sessions, target, cli_profile(target.platform))
        for target in targets]
    results = [future.result(timeout=600) for future in futures]
    return time.monotonic() - began_s, cpu_s() - began_cpu_s, results


def check(results: Sequence[CliResult]) -> None:
    failed = [f"{result.target.device_key}: {result.status} {result.reason}"
              for result in results if result.status is not CliStatus.OK]
    if failed:
        raise SystemExit("polls failed:\n  " + "\n  ".join(failed[:10]))


def parse_rates(sessions: CliSessions, targets: Sequence[CliTarget],
                seconds: float) -> dict[str, float]:
    """Commands parsed per second by each platform's profile alone, on a real output."""
    rates = {}
    for platform in sorted({target.platform for target in targets}):
        target = next(target for target in targets if target.platform == platform)
        profile = cli_profile(platform)
        run = sessions.run(target, profile.command_texts)
        if not run.ok:
            raise SystemExit(f"{target.device_key}: {run.status} {run.reason}")
        count, began = 0, time.process_time()
        while time.process_time() - began < seconds:
            read_outputs(profile, run.outputs)
            count += 1
        rates[platform] = count * len(profile.command_texts) / (time.process_time() - began)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=60)
    parser.add_argument("--ports", type=int, default=12)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--platforms", default=DEFAULT_PLATFORMS)
    parser.add_argument("--url", help="PostgreSQL server for the scratch database "
                                      "(default: an embedded one started for the run)")
    args = parser.parse_args()
    platforms = [name.strip() for name in args.platforms.split(",") if name.strip()]
    work = Path(tempfile.mkdtemp(prefix="keyline-bench-cli-", dir="/tmp"))
    inventory_path = write_inventory(work, args.devices, args.ports, platforms)
    inventory = load_inventory([inventory_path])
    environ = with_lab_defaults(inventory, {})
    os.environ.update({key: value for key, value in environ.items()
                       if key.startswith("KEYLINE_LAB_")})
    network = start_network(inventory_path, work / "lab-sim")
    try:
        with scratch_database(args.url) as scratch:
            with psycopg.connect(scratch.url) as conn:
                apply_inventory(conn, inventory)
                targets, problems = load_cli_targets(conn, environ=environ)
            if problems:
                raise SystemExit("\n".join(map(str, problems)))
            pool = ConnectionPool(scratch.url, min_size=1, max_size=4, open=True)
            try:
                measure(pool, targets, args)
            finally:
                pool.close()
    finally:
        network.terminate()
        network.wait(30)


def measure(pool: ConnectionPool, targets: Sequence[CliTarget],
            args: argparse.Namespace) -> None:
    print(f"{len(targets)} devices ({args.platforms}), {args.ports} ports each, "
          f"{args.workers} workers, median of {args.rounds} rounds; this process's CPU")
    with CliSessions(HostKeyBook(pool), workers=args.workers, max_open_sessions=0) as fresh:
        check(poll_round(fresh, targets)[2])  # warm-up: first contact, host keys trusted
        rounds = []
        for _ in range(args.rounds):
            opened = fresh.sessions_opened
            wall_s, used_s, results = poll_round(fresh, targets)
            check(results)
            rounds.append((fresh.sessions_opened - opened, wall_s, used_s))
    sessions_per_s = statistics.median(count / wall_s for count, wall_s, _ in rounds)
    cpu_per_session_ms = statistics.median(1000 * used / count for count, _, used in rounds)
    print(f"  new sessions     sessions_per_s {sessions_per_s:8.1f}   "
          f"cpu_ms_per_session {cpu_per_session_ms:7.1f}")
    with CliSessions(HostKeyBook(pool), workers=args.workers,
                     max_open_sessions=len(targets)) as kept:
        check(poll_round(kept, targets)[2])  # opens the sessions the rounds reuse
        rounds = []
        for _ in range(args.rounds):
            opened = kept.sessions_opened
            wall_s, used_s, results = poll_round(kept, targets)
            check(results)
            if kept.sessions_opened != opened:
                print(f"  (a round reopened {kept.sessions_opened - opened} sessions)")
            commands = sum(len(cli_profile(target.platform).command_texts)
                           for target in targets)
            rounds.append((len(results), commands, wall_s, used_s))
        polls_per_s = statistics.median(polls / wall_s for polls, _, wall_s, _ in rounds)
        commands_per_s = statistics.median(commands / wall_s for _, commands, wall_s, _
                                           in rounds)
        cpu_per_poll_ms = statistics.median(1000 * used / polls for polls, _, _, used
                                            in rounds)
        print(f"  kept sessions    polls_per_s {polls_per_s:11.1f}   "
              f"commands_parsed_per_s {commands_per_s:7.1f}   "
              f"cpu_ms_per_poll {cpu_per_poll_ms:6.1f}")
        print(f"  devices_60s_half {0.5 * 60 / (cpu_per_poll_ms / 1000):8.0f}  "
              "(devices one collector polls over the CLI every 60 s on half a core)")
        for platform, rate in parse_rates(kept, targets, 1.0).items():
            print(f"  parse only       {platform:<14} parse_per_s {rate:8.0f}  "
                  f"({args.ports} ports)")


if __name__ == "__main__":
    main()
