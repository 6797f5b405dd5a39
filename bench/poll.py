"""SNMP polling at scale against real agents: Net-SNMP snmpd in network namespaces (root only).

Builds the namespace lab of lab.netns (`--agents` namespaces, each running snmpd with
`--interfaces` entries in its ifTable: lo, mgmt0 and ifb devices), then polls every agent's
IF-MIB ifTable + ifXTable, `--rounds` rounds after one warm-up round, and prints the median of:

    varbinds            varbinds received in one round (20 x 52 with Net-SNMP 5.9: 41,600,
                        22 ifTable and 18 ifXTable columns per interface)
    cpu_s_per_1000_vb   client CPU seconds (user + system) per 1,000 varbinds
    varbinds_per_s      varbinds / wall time of the round
    cycle_s             wall time of one round over every agent
    devices_60s_half    how many such devices (same interface count) one process could poll
                        every 60 s on half a core: 0.5 * 60 s / (CPU seconds per device)

Clients, in the same run against the same agents:

- `snmpbulkwalk` (Net-SNMP, C): one process per agent and table, all at once, `-Cr25`
  (max-repetitions 25). Its CPU is the children's (resource.getrusage(RUSAGE_CHILDREN)). It is
  the client-side limit: LAB-NOTES measured 0.015 CPU s per 1,000 varbinds.
- Keyline's poller (collectors.snmp.SnmpPoller.poll_many over collectors.model.PollTarget), when
  collectors/snmp.py is importable: its `fast` v2c engine, stock pysnmp for v2c, pysnmp for
  v3 authPriv (SHA/AES), and the own codec's SNMPv3 (collectors.usm) for authPriv users of
  several protocols, which every agent of the lab also has: SHA/AES-128 (keyline-v3-sha-aes),
  SHA-256/AES-128, SHA/AES-256 with Reeder's key extension (Cisco's) and with Blumenthal's
  (Net-SNMP's AES-256). Its CPU is this process's (time.process_time). The poller also reads
  the system group, so its varbind count is a few per agent higher. After the table, each
  own-codec v3 row's CPU per 1,000 varbinds against the own v2c engine's (the target: at most
  2x, and at most 0.028 CPU s per 1,000 varbinds).

Device health (collectors.health) is polled too, as the collector does beside the
interface polls: `keyline-health` walks each agent's health profile (the generic one for
Net-SNMP: HOST-RESOURCES processors and storage, ENTITY-SENSOR) and its row gives the same
figures; then the line "with health" says how many devices one process polls every 60 s on
half a core when each also gets a health poll every `--health-interval` seconds (300 by
default: the [health] setting). Last, when the shared folder's real device walks are there
(lab/recordings.py), the cost of one health poll of each, through its vendor's profile
(served by snmpsim on loopback: its CPU is not counted, only the poller's).

Without root (or without snmpd) it says why and stops; bench/poll_engine.py measures the
engines against snmpsim on loopback instead.

    sudo .venv/bin/python bench/poll.py [--agents 20] [--interfaces 52] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import SecretStr

from lab.netns import NamespaceLab, V3User, available, benchmark_lab

IF_TABLE = "1.3.6.1.2.1.2.2"
IF_X_TABLE = "1.3.6.1.2.1.31.1.1"
Round = tuple[int, float, float]  # (varbinds, client CPU s, wall s)


def snmpbulkwalk_round(lab: NamespaceLab, max_repetitions: int) -> Round:
    """Walk ifTable and ifXTable of every agent with snmpbulkwalk, all processes at once."""
    binary = shutil.which("snmpbulkwalk")
    if binary is None:
        raise SystemExit("snmpbulkwalk is not installed: apt-get install snmp")
    env = dict(os.environ, MIBS="", MIBDIRS="/nonexistent")
    community = lab.community.get_secret_value()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall0 = time.monotonic()
    processes = [
        subprocess.Popen(
            [binary, "-v2c", "-c", community, "-On", "-Oq", f"-Cr{max_repetitions}",
             "-t", "5", "-r", "1", lab.management_address(node), table],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for node in lab.nodes for table in (IF_TABLE, IF_X_TABLE)]
    varbinds = 0
    for process in processes:
        stdout, stderr = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"snmpbulkwalk failed: {stderr.decode(errors='replace')}")
        varbinds += stdout.count(b"\n")
    wall_s = time.monotonic() - wall0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return varbinds, cpu_s, wall_s


def run_snmpbulkwalk(lab: NamespaceLab, rounds: int, max_repetitions: int) -> list[Round]:
    snmpbulkwalk_round(lab, max_repetitions)  # warm-up: page cache, agents' caches
    return [snmpbulkwalk_round(lab, max_repetitions) for _ in range(rounds)]


# ---- Keyline's poller, next to snmpbulkwalk in the same run ---------------------------------
# collectors/snmp.py (SnmpPoller) is written by the SNMP poller engineer; everything about it
# lives between these two markers, so that a change of its interface is fixed here only.


def keyline_poller_engines() -> list[str]:
    """The poller's engines to measure, or [] when collectors.snmp is not there yet."""
    try:
        import collectors.snmp  # noqa: F401
    except ImportError:
        return []
    return ["keyline-fast", "keyline-pysnmp", "keyline-pysnmp-v3", *V3_ENGINES]


V3_ENGINES = {
    # own-codec SNMPv3 engines: (auth protocol, privacy protocol); the first is the lab's
    # own v3 user, the others are `bench_v3_users()`
    "keyline-v3-sha-aes": ("SHA", "AES"),
    "keyline-v3-sha256-aes": ("SHA256", "AES"),
    "keyline-v3-sha-aes256": ("SHA", "AES256"),
    "keyline-v3-sha-aes256b": ("SHA", "AES256B"),
}
V3_TARGET_RATIO = 2.0
V3_TARGET_CPU_S_PER_1000 = 0.028


def bench_v3_users() -> tuple[V3User, ...]:
    """The lab's extra v3 users, one per own-codec engine but the first (generated keys)."""
    return tuple(V3User(name=engine.removeprefix("keyline-v3-"),
                        auth_key=SecretStr(secrets.token_hex(16)),
                        priv_key=SecretStr(secrets.token_hex(16)),
                        auth_protocol=auth, priv_protocol=priv)
                 for engine, (auth, priv) in list(V3_ENGINES.items())[1:])


def run_keyline_poller(lab: NamespaceLab, engine: str, rounds: int,
                       max_repetitions: int) -> list[Round]:
    from collectors.model import PollStatus, PollTarget, SnmpCredential
    from collectors.snmp import SnmpPoller

    if engine in V3_ENGINES:
        user = next((u for u in lab.more_v3_users
                     if u.name == engine.removeprefix("keyline-v3-")), lab.v3_user)
        credential = SnmpCredential(
            version="v3", username=user.name, security_level="authPriv",
            auth_protocol=user.auth_protocol, auth_key=user.auth_key,
            priv_protocol=user.priv_protocol, priv_key=user.priv_key)
    elif engine.endswith("-v3"):
        user = lab.v3_user
        credential = SnmpCredential(
            version="v3", username=user.name, security_level="authPriv",
            auth_protocol=user.auth_protocol, auth_key=user.auth_key,
            priv_protocol=user.priv_protocol, priv_key=user.priv_key)
    else:
        credential = SnmpCredential(version="v2c", community=lab.community)
    targets = [PollTarget(device_id=n, device_key=node, host=lab.management_address(node),
                          port=161, credential=credential, poller_group="bench")
               for n, node in enumerate(lab.nodes)]

    async def one_round(poller: SnmpPoller) -> Round:
        cpu0, wall0 = time.process_time(), time.monotonic()
        results = await poller.poll_many(targets)
        cpu_s, wall_s = time.process_time() - cpu0, time.monotonic() - wall0
        failed = [r for r in results if r.status is not PollStatus.REACHABLE]
        if failed:
            raise SystemExit(f"{engine}: {len(failed)} polls failed: {failed[0].reason}")
        return sum(r.varbind_count for r in results), cpu_s, wall_s

    async def main() -> list[Round]:
        poller = SnmpPoller(timeout_s=5.0, retries=1, max_in_flight=16,
                            max_repetitions=max_repetitions,
                            v2c_engine="fast" if engine == "keyline-fast" else "pysnmp",
                            v3_engine="fast" if engine in V3_ENGINES else "pysnmp")
        try:
            await one_round(poller)  # warm-up: imports, v3 engine discovery, caches
            return [await one_round(poller) for _ in range(rounds)]
        finally:
            poller.close()

    return asyncio.run(main())


async def _health_rounds(targets: list, poller, rounds: int) -> tuple[list[Round], list[str]]:
    """Choose each target's profile as the collector does (sysObjectID), then one warm-up
    and `rounds` rounds of health polls of every target at once: (rounds, profile names)."""
    from collectors.health import choose_profile, load_profiles, poll_health, read_sys_object_id
    from collectors.model import PollStatus

    profiles = load_profiles()
    chosen = [choose_profile(profiles, await read_sys_object_id(poller, target), None)
              for target in targets]

    async def one_round() -> Round:
        cpu0, wall0 = time.process_time(), time.monotonic()
        readings = await asyncio.gather(*(poll_health(poller, target, profile)
                                          for target, profile in zip(targets, chosen,
                                                                     strict=True)))
        cpu_s, wall_s = time.process_time() - cpu0, time.monotonic() - wall0
        failed = [r for r in readings if r.status is not PollStatus.REACHABLE]
        if failed:
            raise SystemExit(f"health: {len(failed)} polls failed: {failed[0].reason}")
        return sum(r.varbind_count for r in readings), cpu_s, wall_s

    await one_round()  # warm-up
    return [await one_round() for _ in range(rounds)], [profile.name for profile in chosen]


def run_keyline_health(lab: NamespaceLab, rounds: int) -> tuple[list[Round], str]:
    """Health polls of every agent (v2c, fast engine): the rounds and the profile used."""
    from collectors.model import PollTarget, SnmpCredential
    from collectors.snmp import SnmpPoller

    credential = SnmpCredential(version="v2c", community=lab.community)
    targets = [PollTarget(device_id=n, device_key=node, host=lab.management_address(node),
                          port=161, credential=credential, poller_group="bench")
               for n, node in enumerate(lab.nodes)]

    async def main() -> tuple[list[Round], list[str]]:
        poller = SnmpPoller(timeout_s=5.0, retries=1, max_in_flight=16)
        try:
            return await _health_rounds(targets, poller, rounds)
        finally:
            poller.close()

    samples, names = asyncio.run(main())
    return samples, ", ".join(sorted(set(names)))


def recording_health_costs(rounds: int) -> list[str]:
    """One health poll of each real device walk of the shared folder (lab.recordings),
    through its profile: lines of (recording, profile, varbinds, poller CPU ms, wall ms)."""
    from pydantic import SecretStr

    from collectors.model import PollTarget, SnmpCredential
    from collectors.snmp import SnmpPoller
    from lab.recordings import RecordingAgents, recording_names

    names = recording_names()
    if not names:
        return ["# no real device walks (set KEYLINE_SHARED_DIR): health on recordings skipped"]
    lines = [f"{'recording':<26} {'profile':<18} {'varbinds':>9} {'cpu_ms':>8} {'wall_ms':>8}"]

    async def measure(name: str, host: str, port: int) -> str:
        poller = SnmpPoller(timeout_s=5.0, retries=1)
        try:
            target = PollTarget(device_id=1, device_key=name, host=host, port=port,
                                credential=SnmpCredential("v2c", community=SecretStr(name)),
                                poller_group="bench")
            samples, (profile,) = await _health_rounds([target], poller, rounds)
        finally:
            poller.close()
        return (f"{name:<26} {profile:<18} {statistics.median(s[0] for s in samples):>9.0f} "
                f"{statistics.median(s[1] for s in samples) * 1000:>8.1f} "
                f"{statistics.median(s[2] for s in samples) * 1000:>8.1f}")

    with RecordingAgents(names) as agents:
        for name in names:
            lines.append(asyncio.run(measure(name, *agents.endpoint(name))))
    return lines


# ---- end of the Keyline poller's part -------------------------------------------------------


def summarize(name: str, samples: list[Round], agents: int) -> str:
    varbinds = statistics.median(s[0] for s in samples)
    cpu_per_1000 = statistics.median(s[1] * 1000 / s[0] for s in samples)
    rate = statistics.median(s[0] / s[2] for s in samples)
    cycle_s = statistics.median(s[2] for s in samples)
    cpu_per_device_s = statistics.median(s[1] for s in samples) / agents
    devices = 0.5 * 60 / cpu_per_device_s if cpu_per_device_s > 0 else float("inf")
    return (f"{name:<24} {varbinds:>9.0f} {cpu_per_1000:>18.4f} {rate:>15,.0f} "
            f"{cycle_s:>9.3f} {devices:>17,.0f}")


def cpu_per_1000(samples: list[Round]) -> float:
    """Median client CPU seconds per 1,000 varbinds of `samples`."""
    return statistics.median(s[1] * 1000 / s[0] for s in samples)


def v3_against_v2c(v2c: list[Round], v3_rows: dict[str, list[Round]]) -> list[str]:
    """Each own-codec SNMPv3 row against the own v2c engine, with the targets."""
    base = cpu_per_1000(v2c)
    lines = []
    for engine, samples in v3_rows.items():
        auth, priv = V3_ENGINES[engine]
        cost = cpu_per_1000(samples)
        ratio = cost / base if base > 0 else float("inf")
        verdict = ("within" if ratio <= V3_TARGET_RATIO and cost <= V3_TARGET_CPU_S_PER_1000
                   else "OVER")
        lines.append(f"# v3 authPriv {auth}/{priv}: {cost:.4f} CPU s per 1,000 varbinds, "
                     f"{ratio:.2f}x own v2c ({base:.4f}); {verdict} the targets "
                     f"(<= {V3_TARGET_RATIO:g}x, <= {V3_TARGET_CPU_S_PER_1000})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--interfaces", type=int, default=52)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-repetitions", type=int, default=25)
    parser.add_argument("--health-interval", type=float, default=300.0,
                        help="seconds between health polls of a device (the [health] setting)")
    parser.add_argument("--clients", default="",
                        help="comma-separated subset of: snmpbulkwalk, keyline-fast, "
                             "keyline-pysnmp, keyline-pysnmp-v3, " + ", ".join(V3_ENGINES)
                             + " (default: all available)")
    args = parser.parse_args()
    reason = available()
    if reason is not None:
        raise SystemExit(f"bench/poll.py needs the namespace lab: {reason}")
    clients = ["snmpbulkwalk", *keyline_poller_engines()]
    if args.clients:
        clients = [c for c in args.clients.split(",") if c in clients]
    lab = benchmark_lab(args.agents, args.interfaces, more_v3_users=bench_v3_users())
    lab.start()
    try:
        print(f"# {args.agents} Net-SNMP snmpd agents x {args.interfaces} interfaces in network "
              f"namespaces; ifTable + ifXTable; max-repetitions {args.max_repetitions}; median "
              f"of {args.rounds} rounds after a warm-up; {os.cpu_count()} CPUs")
        print(f"# lab start {lab.start_duration_s:.2f} s")
        print(f"{'client':<24} {'varbinds':>9} {'cpu_s_per_1000_vb':>18} "
              f"{'varbinds_per_s':>15} {'cycle_s':>9} {'devices_60s_half':>17}")
        fast: list[Round] | None = None
        v3_rows: dict[str, list[Round]] = {}
        for client in clients:
            if client == "snmpbulkwalk":
                samples = run_snmpbulkwalk(lab, args.rounds, args.max_repetitions)
            else:
                samples = run_keyline_poller(lab, client, args.rounds, args.max_repetitions)
                if client == "keyline-fast":
                    fast = samples
                elif client in V3_ENGINES:
                    v3_rows[client] = samples
            print(summarize(client, samples, args.agents), flush=True)
        if fast is not None:
            for line in v3_against_v2c(fast, v3_rows):
                print(line, flush=True)
        if fast is not None:
            health, profiles = run_keyline_health(lab, args.rounds)
            print(summarize("keyline-health", health, args.agents), flush=True)
            poll_cpu_s = statistics.median(s[1] for s in fast) / args.agents
            health_cpu_s = statistics.median(s[1] for s in health) / args.agents
            health_vb = statistics.median(s[0] for s in health) / args.agents
            per_60s = poll_cpu_s + health_cpu_s * 60 / args.health_interval
            print(f"# health poll per device (profile {profiles}): {health_vb:.0f} varbinds, "
                  f"{health_cpu_s * 1000:.2f} ms CPU, against {poll_cpu_s * 1000:.2f} ms for "
                  f"its interface poll")
            print(f"# with health every {args.health_interval:g} s: "
                  f"{0.5 * 60 / per_60s:,.0f} devices per 60 s on half a core "
                  f"(interfaces alone: {0.5 * 60 / poll_cpu_s:,.0f})")
    finally:
        lab.stop()
    print(f"# lab stop {lab.stop_duration_s:.2f} s")
    print("# one health poll of each real device walk, its vendor's profile (median of "
          f"{args.rounds}; snmpsim serves, its CPU is not counted)")
    for line in recording_health_costs(args.rounds):
        print(line, flush=True)


if __name__ == "__main__":
    main()
