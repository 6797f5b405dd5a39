"""What one SNMP engine costs: client CPU seconds per 1,000 varbinds, pysnmp vs the fast path.

Runs the same IF-MIB poll (system group + ifTable/ifXTable columns, as `SnmpPoller` does it)
against the same agents with each engine, several rounds, and prints the median of:

    cpu_s_per_1000_vb   this process's CPU (time.process_time) per 1,000 varbinds received
                        and used; for snmpbulkwalk, its child processes' CPU (getrusage)
    varbinds_per_s      varbinds / wall time of the round (bounded by the agents' speed:
                        snmpsim is itself Python, a few thousand varbinds/s per process)
    cycle_s             wall time of one round over every agent

Engines: `fast` (collectors.snmp_fast, SNMPv2c), `pysnmp` (pysnmp 7 asyncio, numeric OIDs,
lookupMib=False, the same poller code, SNMPv2c), `fast-v3` (SNMPv3 authPriv SHA/AES through
the own codec, collectors.usm: the production path for v3 devices), `pysnmp-v3` (the same
through pysnmp, for DES/3DES privacy), and Net-SNMP's `snmpbulkwalk` when it is installed (one
process per table and agent, as a shell script would; it walks every column of the tables,
which only changes the count, not the per-varbind figure).

Agents: one snmpsim process (tests/snmp_agents.py) serving a generated 52-interface device
on `--agents` ports of 127.0.0.1 (the v3 engine is a single agent, polled `--agents` times a
round). `--snmpd` uses Debian's snmpd on 127.0.0.1 instead (the container's own few
interfaces).

    .venv/bin/python bench/poll_engine.py [--agents 10] [--rounds 5] [--interfaces 52]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import SecretStr

from collectors.model import PollStatus, PollTarget, SnmpCredential
from collectors.snmp import SnmpPoller
from tests.snmp_agents import (
    COMMUNITY,
    V3_AUTH_KEY,
    V3_PRIV_KEY,
    V3_USER,
    NetSnmpAgent,
    SnmpsimAgents,
)

V2C = SnmpCredential(version="v2c", community=SecretStr(COMMUNITY))
V3 = SnmpCredential(version="v3", username=V3_USER, security_level="authPriv",
                    auth_protocol="SHA", auth_key=SecretStr(V3_AUTH_KEY),
                    priv_protocol="AES", priv_key=SecretStr(V3_PRIV_KEY))
TABLES = ("1.3.6.1.2.1.2.2", "1.3.6.1.2.1.31.1.1")


def _targets(ports: list[int], credential: SnmpCredential) -> list[PollTarget]:
    return [PollTarget(device_id=n, device_key=f"bench{n}", host="127.0.0.1", port=port,
                       credential=credential, poller_group="bench")
            for n, port in enumerate(ports)]


async def _poller_round(poller: SnmpPoller, targets: list[PollTarget]) -> tuple[int, float,
                                                                                 float]:
    cpu0, wall0 = time.process_time(), time.monotonic()
    results = await poller.poll_many(targets)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    bad = [r for r in results if r.status is not PollStatus.REACHABLE]
    if bad:
        raise SystemExit(f"{len(bad)} polls failed: {bad[0].reason}")
    return sum(r.varbind_count for r in results), cpu, wall


def run_poller(targets: list[PollTarget], rounds: int, engine: str,
               max_repetitions: int) -> list[tuple[int, float, float]]:
    async def main() -> list[tuple[int, float, float]]:
        poller = SnmpPoller(timeout_s=5.0, retries=1, max_in_flight=16,
                            max_repetitions=max_repetitions,
                            v2c_engine="pysnmp" if engine.startswith("pysnmp") else "fast",
                            v3_engine="pysnmp" if engine.startswith("pysnmp") else "fast")
        try:
            await _poller_round(poller, targets)  # warm-up: imports, v3 discovery, caches
            return [await _poller_round(poller, targets) for _ in range(rounds)]
        finally:
            poller.close()

    return asyncio.run(main())


def run_snmpbulkwalk(binary: str, ports: list[int], rounds: int,
                     max_repetitions: int) -> list[tuple[int, float, float]]:
    env = dict(os.environ, MIBS="", MIBDIRS="/nonexistent")
    out = []
    for _ in range(rounds + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall0 = time.monotonic()
        processes = [subprocess.Popen(
            [binary, "-v2c", "-c", COMMUNITY, "-On", "-Oq", f"-Cr{max_repetitions}",
             "-t", "5", "-r", "1", f"127.0.0.1:{port}", table],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
            for port in ports for table in TABLES]
        count = 0
        for process in processes:
            stdout, _ = process.communicate()
            count += stdout.count(b"\n")
        wall = time.monotonic() - wall0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        out.append((count, cpu, wall))
    return out[1:]


def summarize(name: str, samples: list[tuple[int, float, float]]) -> str:
    varbinds = statistics.median(s[0] for s in samples)
    per_1000 = statistics.median(s[1] * 1000 / s[0] for s in samples)
    rate = statistics.median(s[0] / s[2] for s in samples)
    cycle = statistics.median(s[2] for s in samples)
    return (f"{name:<14} {varbinds:>9.0f} {per_1000:>18.4f} {rate:>15,.0f} {cycle:>9.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--interfaces", type=int, default=52)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-repetitions", type=int, default=25)
    parser.add_argument("--snmpd", action="store_true", help="Net-SNMP snmpd instead of snmpsim")
    parser.add_argument("--engines", default="fast,pysnmp,fast-v3,pysnmp-v3,snmpbulkwalk")
    args = parser.parse_args()
    engines = args.engines.split(",")
    if args.snmpd:
        agent = NetSnmpAgent().start()
        v2c_ports, v3_ports = [agent.port] * args.agents, [agent.port] * args.agents
        setup = f"Net-SNMP snmpd on 127.0.0.1, polled {args.agents} times a round"
        stop = agent.stop
    else:
        sim = SnmpsimAgents(interfaces=args.interfaces, v2c_count=args.agents).start()
        v2c_ports, v3_ports = sim.v2c_ports, [sim.v3_port] * args.agents
        setup = (f"snmpsim, {args.agents} agents x {args.interfaces} interfaces on 127.0.0.1 "
                 f"(v3: one agent polled {args.agents} times)")
        stop = sim.stop
    try:
        print(f"# {setup}; max-repetitions {args.max_repetitions}; median of {args.rounds} "
              f"rounds after a warm-up; {os.cpu_count()} CPUs")
        print(f"{'engine':<14} {'varbinds':>9} {'cpu_s_per_1000_vb':>18} "
              f"{'varbinds_per_s':>15} {'cycle_s':>9}")
        for engine in engines:
            if engine == "snmpbulkwalk":
                binary = shutil.which("snmpbulkwalk")
                if binary is None:
                    print(f"{engine:<14} not installed (apt-get install snmp)")
                    continue
                samples = run_snmpbulkwalk(binary, v2c_ports, args.rounds,
                                           args.max_repetitions)
            else:
                credential, ports = ((V3, v3_ports) if engine.endswith("-v3")
                                     else (V2C, v2c_ports))
                samples = run_poller(_targets(ports, credential), args.rounds, engine,
                                     args.max_repetitions)
            print(summarize(engine, samples), flush=True)
    finally:
        stop()


if __name__ == "__main__":
    main()
