"""The whole collection service at scale: collector and PostgreSQL CPU per device poll.

Starts agents for `--devices` SNMP devices of `--ports` interfaces each, of one of two kinds
(`--agents`; their CPU is not the collector's):

    snmpsim   tests.snmp_agents: generated IF-MIB data, one UDP port of 127.0.0.1 per device,
              up to 500 devices per snmpsim process. The default, and no root needed; but
              snmpsim spends about 5 ms of its own CPU per request and answers at most 64
              varbinds a GETBULK, so on 2 cores it starves well below 10,000 devices.
    netns     real Net-SNMP snmpd in the namespace lab (lab.netns, root only): `--netns-nodes`
              nodes, each an snmpd answering on many UDP ports (161, 1001, 1002...), one device
              per (node's management address, port), the devices spread evenly over the nodes
              (at most lab.netns.MAX_AGENT_PORTS + 1 a node). A node's ifTable is lo, mgmt0
              and `--ports` - 2 ifb devices, no links. The inventory names these interfaces
              as the agent does and monitors all of them. snmpd's CPU is printed apart
              (agents_ms_poll); every device of a node shares its snmpd, its counters and its
              sysUpTime. SNMPv3 uses the lab's SHA/AES user (one engine per node).

It writes an inventory naming them (snmpsim: every port monitored but the data's down ones;
both kinds' sysUpTime advances as a real agent's does, so the measured window is steady
state, not an agent restart per device poll), imports it into a scratch database
(bench/scratch_database.py) and runs what `keyline collect` runs for polling: the collection
service (collectors.service, from the settings) and the alarm service (alarms.service,
default threshold rules), in this process. Every device is
polled every `--interval-s` seconds; health polls and topology discovery are off (their own
intervals; bench/poll.py measures health), the ticket service and the notifier are left
out (no circuits). Printed, per SNMP version (`--versions`, each its own run):

    start-up            from start until every device had its first regular poll: wall
                        time, collector CPU, PostgreSQL CPU, observations written, skipped
                        polls (a fresh store: every port's first state is new)
    collector_ms_poll   this process's CPU (all its threads) per device poll, over
                        `--intervals` intervals after the start-up; by thread: the loop
                        (polls, rates, samples), the spool (writes to the store), the alarm
                        service (the event consumer's threads), the rest
    postgres_ms_poll    the PostgreSQL server's CPU per device poll (its processes' user +
                        system time from /proc: postmaster, backends, background workers;
                        embedded server only)
    skipped_polls       polls due while the device's previous one still ran
    observations        state changes in the measured window (none on a quiet network;
                        agents starved of CPU make devices SNMP-unresponsive, which the
                        alarm service then correlates: its CPU goes up with them)
    missed_intervals    (device, interval) pairs of the measured window with no poll
    rss_mib             this process's resident memory at the end
    agents_ms_poll      (netns only) the snmpd processes' CPU per device poll, same window

A run that polls interfaces the inventory does not name, or whose inventory ports match no
interface, says so in a WARNING line: its figures are not those of a correct inventory.

Per device poll means the process's whole CPU over the window divided by its polls, so
the per-second work (the flush, the alarm service's ticks, heartbeats) is spread over the
polls: with few devices it weighs more. On a shared machine the absolute figures move with
the load: compare runs of one session (a before and an after), and read the load average
printed with them.

    .venv/bin/python bench/collect.py [--devices 500] [--ports 10] [--interval-s 60]
                                      [--intervals 3] [--versions v2c,v3] [--v3-devices 200]
                                      [--agents snmpsim|netns] [--netns-nodes 40]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and bench/alarms.py there is
# named like the alarms package: take the folder off.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bench.scratch_database import scratch_database  # noqa: E402
from config.inventory.loader import load_inventory  # noqa: E402
from store.inventory import apply_inventory  # noqa: E402
from store.observations import port_match_problems  # noqa: E402
from tests.snmp_agents import (  # noqa: E402
    COMMUNITY,
    V3_AUTH_KEY,
    V3_PRIV_KEY,
    V3_USER,
    SnmpsimAgents,
    free_udp_ports,
    if_indexes,
)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# devices one snmpsim process serves: snmpsim is Python, a few thousand varbinds/s each
DEVICES_PER_AGENT_PROCESS = 500
# the inventory's credential; its secrets come from the environment (Agents.environ)
CREDENTIALS = {
    "v2c": ("  - {{id: bench-snmp, kind: snmp_v2c, community: {{env: KEYLINE_BENCH_COMMUNITY}}}}"),
    "v3": ("  - {{id: bench-snmp, kind: snmp_v3, username: {user},"
           " security_level: authPriv, auth_protocol: SHA,"
           " auth_key: {{env: KEYLINE_BENCH_AUTH_KEY}}, priv_protocol: AES,"
           " priv_key: {{env: KEYLINE_BENCH_PRIV_KEY}}}}"),
}
# the netns backend's extra agent ports per node: four digits (lab.netns_config: snmpd keeps
# 2,559 characters of its agentAddress), from here on
FIRST_EXTRA_AGENT_PORT = 1001
# 10,000 devices on 40 nodes of 250 ports: snmpd spent 1.88 ms of CPU per device poll (3
# requests), on 20 of 500 2.33 ms (one run each): its select() loop walks every socket
DEFAULT_NETNS_NODES = 40


@dataclass
class Agents:
    """The agents of a run: where each device answers, what the inventory says of every
    device (its credential and ports), the secrets that credential names, and for the
    header what they are."""

    described: str
    endpoints: list[tuple[str, int]]  # (management address, UDP port) of each device
    credential: str  # the inventory's credential entry
    ports: list[tuple[str, bool]]  # (interface name, monitored) of every device
    environ: dict[str, str]
    stop: Callable[[], None]
    pids: list[int] = field(default_factory=list)  # agents_ms_poll counts these processes


def start_snmpsim(devices: int, ports: int, version: str) -> Agents:
    """snmpsim processes serving `devices` devices of `ports` interfaces (tests.snmp_agents:
    every device the same data, each on its own UDP port of 127.0.0.1; a v3 device is an
    engine of its own, SHA/AES); their CPU is not this process's."""
    agents: list[SnmpsimAgents] = []
    endpoints: list[int] = []

    def stop() -> None:
        for agent in agents:
            agent.stop()

    try:
        for first in range(0, devices, DEVICES_PER_AGENT_PROCESS):
            count = min(DEVICES_PER_AGENT_PROCESS, devices - first)
            if version == "v2c":
                agent = SnmpsimAgents(interfaces=ports, v2c_count=count, uptime_advances=True)
            else:
                user = (V3_USER, "SHA", V3_AUTH_KEY, "AES", V3_PRIV_KEY)
                agent = SnmpsimAgents(interfaces=ports, v2c_count=1, v3_users=(user,) * count,
                                      uptime_advances=True)
            agents.append(agent.start())
            endpoints += agent.v2c_ports if version == "v2c" else agent.v3_user_ports
    except BaseException:
        stop()
        raise
    # the generated data has every seventh interface down: monitored, each would be a
    # link-down alarm for the whole run; the others are monitored (key-account ports)
    return Agents(
        described=(f"snmpsim, {len(agents)} process{'es' if len(agents) != 1 else ''}"
                   " on 127.0.0.1"),
        endpoints=[("127.0.0.1", port) for port in endpoints],
        credential=CREDENTIALS[version].format(user=V3_USER),
        ports=[(f"GigabitEthernet0/0/{if_index}", if_index % 7 != 0)
               for if_index in if_indexes(ports)],
        environ={"KEYLINE_BENCH_COMMUNITY": COMMUNITY, "KEYLINE_BENCH_AUTH_KEY": V3_AUTH_KEY,
                 "KEYLINE_BENCH_PRIV_KEY": V3_PRIV_KEY},
        stop=stop)


def netns_problem(devices: int, ports: int, nodes: int) -> str | None:
    """Why the netns agents cannot serve this run, or None."""
    from lab.netns import MAX_AGENT_PORTS, available

    reason = available()
    if reason is not None:
        return f"the namespace lab cannot run here: {reason}"
    if ports < 2:
        return f"--ports {ports}: a lab node has at least 2 interfaces (lo, mgmt0)"
    if not 1 <= nodes <= 253:
        return f"--netns-nodes {nodes}: a lab has 1 to 253 nodes"
    if -(-devices // nodes) > MAX_AGENT_PORTS + 1:
        return (f"{devices} devices on {nodes} nodes: one snmpd serves at most "
                f"{MAX_AGENT_PORTS + 1} (--netns-nodes {-(-devices // (MAX_AGENT_PORTS + 1))} "
                "or more)")
    return None


def start_netns(devices: int, ports: int, version: str, nodes: int) -> Agents:
    """The namespace lab (lab.netns): `nodes` snmpd agents of `ports` interfaces, each on
    enough UDP ports for its share of `devices` (device i is node i mod nodes)."""
    from lab.netns import benchmark_lab

    nodes = min(nodes, devices)
    per_node = -(-devices // nodes)
    lab = benchmark_lab(
        nodes, ports, agent_ports=tuple(range(FIRST_EXTRA_AGENT_PORT,
                                              FIRST_EXTRA_AGENT_PORT + per_node - 1)),
        snmp_v3=version == "v3", start_timeout_s=60.0)
    lab.start()
    names = lab.nodes
    endpoints = [(lab.management_address(names[i % nodes]),
                  lab.agent_ports(names[i % nodes])[i // nodes]) for i in range(devices)]
    user = lab.v3_user
    return Agents(
        described=(f"Net-SNMP snmpd, {nodes} namespace nodes x up to {per_node} UDP ports"
                   f" ({lab.start_duration_s:.1f} s to start)"),
        endpoints=endpoints,
        credential=CREDENTIALS[version].format(user=user.name),
        ports=[(name, True) for name in lab.all_interfaces(names[0])],
        environ={"KEYLINE_BENCH_COMMUNITY": lab.community.get_secret_value(),
                 "KEYLINE_BENCH_AUTH_KEY": user.auth_key.get_secret_value(),
                 "KEYLINE_BENCH_PRIV_KEY": user.priv_key.get_secret_value()},
        stop=lab.stop,
        pids=[pid for _, daemon, pid in lab.processes() if daemon == "snmpd"])


def write_inventory(folder: Path, agents: Agents, version: str) -> Path:
    lines = ["credentials:", agents.credential, "devices:"]
    ports = [f"      - {{name: {name}, speed_bps: 1G, monitor: {'true' if on else 'false'}}}"
             for name, on in agents.ports]
    for number, (address, port) in enumerate(agents.endpoints):
        lines += [f"  - name: bench-{number + 1:04d}", "    role: PE",
                  "    platform: cisco_ios", f"    management_address: {address}",
                  f"    snmp_port: {port}", "    snmp_credential: bench-snmp", "    ports:",
                  *ports]
    path = folder / f"bench-collect-{version}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


# --- what the processes used ----------------------------------------------------------------


def _stat_fields(path: str) -> list[str]:
    with open(path) as stat:
        text = stat.read()
    return text[text.rindex(")") + 2:].split()  # after "pid (comm) "


def thread_cpu_s() -> Counter[str]:
    """This process's CPU seconds so far by thread group: the collector's loop, the spool,
    the alarm service, the rest (threads that ended count in none)."""
    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    used: Counter[str] = Counter()
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = _stat_fields(f"/proc/self/task/{tid}/stat")
        except OSError:
            continue
        name = names.get(int(tid), "")
        group = ("loop" if name == "keyline-collector"
                 else "spool" if name in ("keyline-spool-writer", "keyline-forwarder")
                 else "alarms" if name.startswith(("keyline-alarms", "keyline-events"))
                 else "rest")
        used[group] += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return used


def postgres_cpu_s(work_dir: Path) -> float | None:
    """The embedded server's CPU seconds so far: the postmaster's own and its reaped
    children's, plus its live children's. None when no embedded server is found."""
    found = list(work_dir.glob("**/postmaster.pid"))
    if not found:
        return None
    postmaster = int(found[0].read_text().split()[0])
    fields = _stat_fields(f"/proc/{postmaster}/stat")
    total = sum(int(fields[i]) for i in (11, 12, 13, 14))
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            child = _stat_fields(f"/proc/{pid}/stat")
        except OSError:
            continue
        if int(child[1]) == postmaster:
            total += int(child[11]) + int(child[12])
    return total / CLOCK_TICKS


def processes_cpu_s(pids: list[int]) -> float | None:
    """CPU seconds so far of these processes (user + system); None without any."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = _stat_fields(f"/proc/{pid}/stat")
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS if pids else None


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Mark:
    at: float
    process_s: float
    threads: Counter[str]
    postgres_s: float | None
    agents_s: float | None
    polls: Counter[str]
    statuses: Counter[str]
    skipped: int
    observations: int
    alarm_observations: int

    @classmethod
    def take(cls, service: object, alarms: object, work_dir: Path, agents: Agents) -> Mark:
        stats = service.stats()  # type: ignore[attr-defined]
        return cls(time.monotonic(), time.process_time(), thread_cpu_s(),
                   postgres_cpu_s(work_dir), processes_cpu_s(agents.pids),
                   stats.device_polls, stats.polls,
                   sum(stats.skipped_polls.values()), stats.observations,
                   alarms.stats.observations)  # type: ignore[attr-defined]


def run(version: str, args: argparse.Namespace, work: Path) -> None:
    from alarms.service import AlarmService
    from collectors.service import CollectionService
    from config.settings import Settings
    from store.database import open_database

    devices = args.devices if version == "v2c" else min(args.devices, args.v3_devices)
    if args.agents == "netns":
        agents = start_netns(devices, args.ports, version, args.netns_nodes)
    else:
        agents = start_snmpsim(devices, args.ports, version)
    environ = {**os.environ, **agents.environ}
    try:
        inventory = load_inventory([write_inventory(work, agents, version)])
        with scratch_database(args.url) as scratch:
            with psycopg.connect(scratch.url) as conn:
                apply_inventory(conn, inventory)
            settings = Settings(
                database_url=scratch.url, data_dir=scratch.work_dir / "keyline",
                poll={"default_interval_s": args.interval_s, "groups": {}},
                health={"enabled": False}, topology={"discovery_interval_s": 0},
                traps={"port": free_udp_ports(1)[0]})
            database = open_database(scratch.url, settings.data_dir,
                                     min_size=settings.store.pool_min_size,
                                     max_size=settings.store.pool_max_size)
            try:
                measure(version, devices, settings, database, environ, scratch.work_dir, args,
                        CollectionService, AlarmService, agents)
            finally:
                database.close()
    finally:
        agents.stop()


def measure(version: str, count: int, settings: object, database: object, environ: dict[str, str],
            work_dir: Path, args: argparse.Namespace, service_class: type,
            alarm_class: type, agents: Agents) -> None:
    interval_s = float(args.interval_s)
    alarms = alarm_class(database.pool, database.url, settings.alarms)  # type: ignore[attr-defined]
    from keyline.wiring import threshold_judge  # the [alarms] rules, as `keyline collect`

    service = service_class.from_settings(  # type: ignore[attr-defined]
        settings, database.pool, environ,
        thresholds=threshold_judge(settings.alarms.thresholds))  # type: ignore[attr-defined]
    before = Mark(time.monotonic(), time.process_time(), thread_cpu_s(),
                  postgres_cpu_s(work_dir), processes_cpu_s(agents.pids), Counter(), Counter(),
                  0, 0, 0)
    alarms.start()
    service.start()
    try:
        # start-up: until every device had a regular poll (its phase is within one
        # interval; warm-ups come within 2.5 spreads)
        deadline = before.at + max(interval_s, 2.5 * service.startup_spread_s) + 1.0
        while time.monotonic() < deadline:
            time.sleep(0.5)
        while not alarms.idle() and time.monotonic() < deadline + interval_s:
            time.sleep(0.2)
        started = Mark.take(service, alarms, work_dir, agents)
        marks = [started]
        for _ in range(args.intervals):
            time.sleep(max(0.0, marks[-1].at + interval_s - time.monotonic()))
            marks.append(Mark.take(service, alarms, work_dir, agents))
        service.drain(30)
        end = marks[-1]
        rss = rss_mib()
        unmapped = service.stats().unmapped_interfaces
        with database.pool.connection() as conn:  # type: ignore[attr-defined]
            match_problems = port_match_problems(conn)
    finally:
        service.stop()
        alarms.stop()
    devices = [f"bench-{n + 1:04d}" for n in range(count)]
    missed = sum(1 for a, b in itertools.pairwise(marks) for key in devices
                 if b.polls[key] - a.polls[key] == 0)
    polls = sum(end.polls.values()) - sum(started.polls.values())
    load = os.getloadavg()
    print(f"## {version}: {count} devices x {args.ports} ports every {interval_s:g} s;"
          f" load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; {os.cpu_count()} CPUs;"
          f" agents: {agents.described}", flush=True)
    if unmapped or match_problems:
        print(f"  WARNING: {unmapped} polled interfaces the inventory does not name,"
              f" {len(match_problems)} inventory ports not matched"
              + (f" (first: {' '.join(map(str, match_problems[0]))})" if match_problems
                 else ""))
    pg = (f"{started.postgres_s - before.postgres_s:.1f} s"
          if started.postgres_s is not None and before.postgres_s is not None else "n/a")
    print(f"  start-up          {started.at - before.at:6.1f} s wall, collector "
          f"{started.process_s - before.process_s:.1f} s CPU (alarms "
          f"{started.threads['alarms'] - before.threads['alarms']:.1f} s), postgres {pg}; "
          f"{started.observations} observations, {started.alarm_observations} through the"
          f" alarm pipeline; {started.skipped} skipped polls")
    if polls == 0:
        print("  no polls in the measured window")
        return
    statuses = ", ".join(f"{n} {status}" for status, n
                         in sorted((end.statuses - started.statuses).items()))
    per_poll = {group: 1000 * (end.threads[group] - started.threads[group]) / polls
                for group in ("loop", "spool", "alarms", "rest")}
    print(f"  collector_ms_poll {1000 * (end.process_s - started.process_s) / polls:6.2f}"
          f"  (loop {per_poll['loop']:.2f}, spool {per_poll['spool']:.2f}, alarms "
          f"{per_poll['alarms']:.2f}, rest {per_poll['rest']:.2f}); {polls} device polls in"
          f" {end.at - started.at:.0f} s ({statuses})")
    if end.postgres_s is not None and started.postgres_s is not None:
        print(f"  postgres_ms_poll  {1000 * (end.postgres_s - started.postgres_s) / polls:6.2f}")
    else:
        print("  postgres_ms_poll     n/a (not an embedded server)")
    print(f"  skipped_polls     {end.skipped - started.skipped:6d}")
    print(f"  observations      {end.observations - started.observations:6d}  (state changes in "
          "the window: agents too slow to answer make devices SNMP-unresponsive, and the "
          "alarm pipeline correlates)")
    print(f"  missed_intervals  {missed:6d}  (of {count * args.intervals})")
    print(f"  rss_mib           {rss:6.0f}", flush=True)
    if end.agents_s is not None and started.agents_s is not None:
        print(f"  agents_ms_poll    {1000 * (end.agents_s - started.agents_s) / polls:6.2f}"
              f"  ({len(agents.pids)} snmpd processes)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--ports", type=int, default=10)
    parser.add_argument("--interval-s", type=int, default=60)
    parser.add_argument("--intervals", type=int, default=3)
    parser.add_argument("--versions", default="v2c,v3")
    parser.add_argument("--v3-devices", type=int, default=200,
                        help="at most this many v3 devices (each its own snmpsim engine)")
    parser.add_argument("--url", help="PostgreSQL server for the scratch database "
                                      "(default: an embedded one started for the run)")
    parser.add_argument("--agents", choices=("snmpsim", "netns"), default="snmpsim",
                        help="snmpsim on loopback, or Net-SNMP snmpd in the namespace lab "
                             "(root)")
    parser.add_argument("--netns-nodes", type=int, default=DEFAULT_NETNS_NODES,
                        help="--agents netns: lab nodes (snmpd processes) the devices share")
    args = parser.parse_args()
    if args.agents == "netns":
        problem = netns_problem(args.devices, args.ports, args.netns_nodes)
        if problem is not None:
            parser.exit(2, f"bench/collect.py --agents netns: {problem}\n")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for version in args.versions.split(","):
        # The run's inventory, spool and agents' data: gone with the run.
        with tempfile.TemporaryDirectory(prefix="keyline-bench-collect-", dir="/tmp",
                                         ignore_cleanup_errors=True) as work:
            run(version.strip(), args, Path(work))


if __name__ == "__main__":
    main()
