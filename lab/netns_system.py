"""Root-namespace bookkeeping for the namespace lab: commands, state folders, a lock, leftovers.

Every lab instance has a *prefix* (lowercase letters and digits, at most 12 characters) that
names everything it creates: its namespaces are `PREFIX-NODE` and `PREFIX-mgmt`, its one
interface in the root namespace is `PREFIXm`, and its state folder is
`/run/keyline-netns/PREFIX/` (configuration files, daemon logs, snmpd's persistent folders).

The state folder is written *before* anything is created, and it names its owner (process id
and that process's start time, so a reused pid is not taken for the owner). A lab whose owner
is gone - a test run killed with SIGKILL, a crash - is a leftover: `cleanup_stale()` kills the
processes still running in its namespaces (`ip netns pids`), deletes the namespaces (which
deletes the veth in the root namespace with them) and the state folder. It is called under the
lock at every lab start, so leftovers never pile up and never collide with a new lab.

The shared root-namespace pieces are allocated under an exclusive `flock` on
`/run/keyline-netns/.lock`: the management subnet 169.254.K.0/24 (K unique among live labs and
not overlapping any route the machine already has) and the `unreachable 198.18.0.0/15` route,
which keeps lab addresses learned by discovery from leaving through the default route. The
route is removed when the last lab that needed it stops, and only if a lab added it.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

STATE_ROOT = Path("/run/keyline-netns")
LOCK_PATH = STATE_ROOT / ".lock"
ROUTE_MARK = STATE_ROOT / ".unreachable-route-added"
LAB_UNREACHABLE = "198.18.0.0/15"
PREFIX_RE = re.compile(r"^[a-z0-9]{1,12}$")
# 169.254.169.254 is the cloud metadata address: never shadow it.
RESERVED_SUBNETS = {0, 169, 255}


class LabCommandError(RuntimeError):
    """A command the lab ran failed; the message holds the command and its stderr."""


def run(command: list[str], *, stdin: str | None = None, check: bool = True) -> str:
    """Run a command and return its stdout; raise LabCommandError with stderr when it fails."""
    result = subprocess.run(command, input=stdin, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise LabCommandError(
            f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def ip_batch(lines: list[str], namespace: str | None = None) -> None:
    """Run many `ip` commands in one process (`ip [-n NS] -batch -`): one fork, not hundreds."""
    if not lines:
        return
    command = ["ip"] + (["-n", namespace] if namespace else []) + ["-batch", "-"]
    run(command, stdin="\n".join(lines) + "\n")


def list_namespaces() -> list[str]:
    """Names of the network namespaces (`ip netns list`), without their ids."""
    return [line.split()[0] for line in run(["ip", "netns", "list"]).splitlines() if line.strip()]


def namespace_pids(namespace: str) -> list[int]:
    out = run(["ip", "netns", "pids", namespace], check=False)
    return [int(word) for word in out.split() if word.isdigit()]


def process_start_ticks(pid: int) -> int | None:
    """The start time of a process in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[19])


def owner_alive(owner: dict[str, int]) -> bool:
    pid = owner.get("pid", 0)
    return pid > 0 and process_start_ticks(pid) == owner.get("start_ticks")


def kill_pids(pids: list[int], grace_s: float = 1.0) -> None:
    """SIGTERM, wait up to grace_s for them to go, then SIGKILL what is left."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [pid for pid in alive if is_running(pid)]
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def is_running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is gone for our purposes


@contextlib.contextmanager
def root_lock() -> Iterator[None]:
    """Exclusive lock over the root namespace's lab bookkeeping."""
    STATE_ROOT.mkdir(mode=0o711, parents=True, exist_ok=True)
    STATE_ROOT.chmod(0o711)  # setuid lldpcli (_lldpd) must traverse to its control socket
    with open(LOCK_PATH, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_state(prefix: str) -> dict | None:
    try:
        return json.loads((STATE_ROOT / prefix / "state.json").read_text())
    except (OSError, ValueError):
        return None


def write_state(prefix: str, state: dict) -> None:
    folder = STATE_ROOT / prefix
    # Traversable (not listable) by daemons that drop privileges; every file in it is 0600.
    folder.mkdir(mode=0o711, parents=True, exist_ok=True)
    folder.chmod(0o711)
    path = folder / "state.json"
    tmp = folder / "state.json.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(state, handle)
    tmp.replace(path)


def live_labs() -> dict[str, dict]:
    """State of every lab whose owner process is alive, by prefix."""
    labs = {}
    if STATE_ROOT.exists():
        for folder in STATE_ROOT.iterdir():
            state = read_state(folder.name) if folder.is_dir() else None
            if state and owner_alive(state.get("owner", {})):
                labs[folder.name] = state
    return labs


def destroy(prefix: str) -> None:
    """Kill everything running in the lab's namespaces, delete them and its state folder.

    Deleting the management namespace deletes the veth pair whose other end is the lab's one
    interface in the root namespace, and with it the route to the management subnet.
    """
    namespaces = [name for name in list_namespaces() if name.startswith(f"{prefix}-")]
    pids = sorted({pid for name in namespaces for pid in namespace_pids(name)})
    kill_pids(pids)
    ip_batch([f"netns del {name}" for name in namespaces])
    state = read_state(prefix) or {}
    root_veth = state.get("root_veth")
    if root_veth and Path(f"/sys/class/net/{root_veth}").exists():
        run(["ip", "link", "del", root_veth], check=False)
    shutil.rmtree(STATE_ROOT / prefix, ignore_errors=True)


def cleanup_stale() -> list[str]:
    """Destroy every lab whose owner process is gone; return their prefixes. Call under lock."""
    removed = []
    if not STATE_ROOT.exists():
        return removed
    for folder in STATE_ROOT.iterdir():
        if not folder.is_dir():
            continue
        state = read_state(folder.name)
        if state is None or not owner_alive(state.get("owner", {})):
            destroy(folder.name)
            removed.append(folder.name)
    return removed


def used_route_prefixes() -> list[ipaddress.IPv4Network]:
    networks = []
    for line in run(["ip", "-4", "route", "show", "table", "all"]).splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("unreachable", "blackhole", "prohibit", "local", "broadcast", "unicast"):
            word = line.split()[1]
        if word == "default":
            continue
        with contextlib.suppress(ValueError):
            networks.append(ipaddress.IPv4Network(word, strict=False))
    return networks


def allocate_subnet(taken_by_labs: set[int]) -> int:
    """A K for 169.254.K.0/24 that no live lab and no route of the machine uses. Under lock."""
    routes = used_route_prefixes()
    for k in range(1, 255):
        if k in RESERVED_SUBNETS or k in taken_by_labs:
            continue
        subnet = ipaddress.IPv4Network(f"169.254.{k}.0/24")
        # A route that overlaps the subnet (but not a wide default-like one such as a /16 the
        # machine keeps for link-local) makes K unusable.
        if any(route.overlaps(subnet) and route.prefixlen >= 17 for route in routes):
            continue
        return k
    raise LabCommandError("no free 169.254.K.0/24 management subnet left")


def ensure_unreachable_route() -> None:
    """Add `unreachable 198.18.0.0/15` in the root namespace unless a route for it exists."""
    existing = run(["ip", "-4", "route", "show", "exact", LAB_UNREACHABLE])
    if existing.strip():
        return
    run(["ip", "route", "add", "unreachable", LAB_UNREACHABLE])
    ROUTE_MARK.touch(mode=0o600)


def release_unreachable_route(other_live_labs: int) -> None:
    """Remove the route if a lab added it and no other lab is alive. Under lock."""
    if other_live_labs or not ROUTE_MARK.exists():
        return
    run(["ip", "route", "del", "unreachable", LAB_UNREACHABLE], check=False)
    ROUTE_MARK.unlink(missing_ok=True)
