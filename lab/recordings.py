"""Real device walks served by snmpsim: what the collectors' tests and benches poll besides
the simulated network.

A *recording* is an `.snmprec` file holding one SNMP walk of a real device (the shared
folder's `snmp-recordings/`, LibreNMS test captures of Huawei, Cisco, Juniper, H3C, Nokia and
MikroTik devices). Served as they are, they are one frozen moment: counters never move and
sysUpTime stands still, which a poller reads as "no traffic" and "the agent restarted". So
`RecordingAgents` serves a derived copy: sysUpTime grows with the wall clock from the value
recorded, and the octet counters of every interface whose ifOperStatus is up grow at a
steady rate (a fixed share of the interface's speed), both through the simulated network's
`keyline_counter` variation module (lab/sim/variation). Everything else is served exactly as
recorded, bad values included: that is the point of using them.

One snmpsim process serves every recording asked for, each as its own device: snmpsim
answers every endpoint from every data file and tells them apart by community, so device N
listens on 127.0.5.N (same UDP port for all) with the recording's file name (without
`.snmprec`) as its community, like the shared README's command line.

    with RecordingAgents(["vrp_5720", "ios_2960x"]) as agents:
        host, port = agents.endpoint("vrp_5720")     # community "vrp_5720"

`parse_snmprec` reads a recording back as (OID, tag, value) records, and `decoded` turns a
record's value into what an agent sends (int, bytes, OID tuple), so that tests can check what
the collector stored against the walk itself.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import lab
from lab.sim.snmprec import COUNTER32, COUNTER64, TIMETICKS
from lab.sim.traffic import CounterSpec

ROOT = Path(lab.__file__).resolve().parent.parent
VARIATION_DIR = ROOT / "lab" / "sim" / "variation"
COUNTER_MODULE = "keyline_counter"
HOST_PREFIX = "127.0.5."

SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
IF_ENTRY = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IF_X_ENTRY = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
IF_OPER_STATUS = (*IF_ENTRY, 8)
IF_SPEED = (*IF_ENTRY, 5)
IF_HIGH_SPEED = (*IF_X_ENTRY, 15)
# the octet counters that move: ifInOctets, ifOutOctets, ifHCInOctets, ifHCOutOctets
OCTET_COLUMNS = {(*IF_ENTRY, 10): 32, (*IF_ENTRY, 16): 32, (*IF_X_ENTRY, 6): 64,
                 (*IF_X_ENTRY, 10): 64}
# share of an up interface's speed its simulated traffic averages
LOAD_RATIO = 0.05
DEFAULT_SPEED_BPS = 100_000_000


def shared_dir() -> Path:
    """The team's shared folder: $KEYLINE_SHARED_DIR, else `../shared` beside the checkout."""
    return Path(os.environ.get("KEYLINE_SHARED_DIR") or ROOT.parent / "shared")


def recordings_dir() -> Path:
    return shared_dir() / "snmp-recordings"


def recording_names() -> list[str]:
    """Every recording of the shared folder (file names without `.snmprec`), sorted."""
    folder = recordings_dir()
    return sorted(path.stem for path in folder.glob("*.snmprec")) if folder.is_dir() else []


@dataclass(frozen=True)
class SnmprecRecord:
    oid: tuple[int, ...]
    tag: str  # as written: "4", "4x", "65", "70:keyline_counter"...
    value: str


def parse_snmprec(path: Path) -> list[SnmprecRecord]:
    """The records of an `.snmprec` file, in file order (OID|TAG|VALUE per line)."""
    records = []
    for line in path.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        oid_text, tag, value = line.split("|", 2)
        records.append(SnmprecRecord(tuple(int(p) for p in oid_text.split(".")), tag, value))
    return records


def decoded(record: SnmprecRecord) -> int | bytes | tuple[int, ...] | None:
    """A record's value as an agent sends it: int for the numeric types, bytes for strings
    (hex `x` tags decoded), an OID tuple, None for NULL."""
    tag = record.tag.split(":", 1)[0]
    hexadecimal = tag.endswith("x")
    number = int(tag.rstrip("x"))
    if number in (4, 64, 68):  # OCTET STRING, IpAddress, Opaque
        if hexadecimal:
            return bytes.fromhex(record.value)
        if number == 64 and record.value.count(".") == 3:
            return bytes(int(part) for part in record.value.split("."))
        return record.value.encode("utf-8", errors="surrogateescape")
    if number == 6:
        return tuple(int(part) for part in record.value.split(".") if part)
    if number == 5:
        return None
    return int(record.value)


def table(records: Iterable[SnmprecRecord],
          column: Sequence[int]) -> dict[tuple[int, ...], SnmprecRecord]:
    """The rows of one column: index suffix -> record."""
    prefix = tuple(column)
    return {r.oid[len(prefix):]: r for r in records
            if r.oid[:len(prefix)] == prefix and len(r.oid) > len(prefix)}


def _speed_bps(records: list[SnmprecRecord], if_index: int) -> int:
    for column, scale in ((IF_HIGH_SPEED, 1_000_000), (IF_SPEED, 1)):
        row = table(records, column).get((if_index,))
        if row is not None:
            try:
                speed = int(row.value) * scale
            except ValueError:
                continue
            if speed > 0:
                return speed
    return DEFAULT_SPEED_BPS


def moving_copy(records: list[SnmprecRecord], now_s: float) -> list[SnmprecRecord]:
    """The records with sysUpTime and the octet counters of up interfaces growing from `now_s`
    on (see the module docstring); every other record as it is."""
    up = set()
    for index, record in table(records, IF_OPER_STATUS).items():
        if len(index) == 1 and record.tag == "2" and record.value.strip() == "1":
            up.add(index[0])
    out = []
    for record in records:
        base = record.tag.split(":", 1)[0]
        if record.oid == SYS_UPTIME and base == TIMETICKS:
            ticks = int(record.value)
            spec = CounterSpec(rate_per_s=100.0, boot_epoch_s=now_s - ticks / 100, bits=32)
            out.append(SnmprecRecord(record.oid, f"{TIMETICKS}:{COUNTER_MODULE}", spec.encode()))
            continue
        column, index = record.oid[:-1], record.oid[-1]
        bits = OCTET_COLUMNS.get(column)
        if bits is not None and index in up and base == (COUNTER32 if bits == 32 else COUNTER64):
            rate = _speed_bps(records, index) * LOAD_RATIO / 8
            # the counter reads its recorded value now and grows from there
            start = int(record.value)
            spec = CounterSpec(rate_per_s=rate, boot_epoch_s=now_s - start / rate, bits=bits)
            out.append(SnmprecRecord(record.oid, f"{base}:{COUNTER_MODULE}", spec.encode()))
            continue
        out.append(record)
    return out


def write_records(path: Path, records: Iterable[SnmprecRecord]) -> None:
    path.write_text("".join(f"{'.'.join(map(str, r.oid))}|{r.tag}|{r.value}\n"
                            for r in records), encoding="utf-8", errors="surrogateescape")


class RecordingAgents:
    """One snmpsim process serving recordings as devices (see the module docstring).

    `names` are recording names of the shared folder, or paths of `.snmprec` files;
    `moving` False serves them frozen, exactly as recorded."""

    def __init__(self, names: Sequence[str | Path], *, moving: bool = True,
                 port: int | None = None) -> None:
        if not names:
            raise ValueError("no recording to serve")
        self.paths = [Path(n) if str(n).endswith(".snmprec") else recordings_dir() / f"{n}.snmprec"
                      for n in names]
        for path in self.paths:
            if not path.is_file():
                raise FileNotFoundError(f"no recording {path}")
        self.names = [path.stem for path in self.paths]
        if len(set(self.names)) != len(self.names):
            raise ValueError("two recordings with one name: each name is a community")
        if len(self.names) > 250:
            raise ValueError("at most 250 recordings at once (127.0.5.1-250)")
        self.moving = moving
        self.hosts = {name: f"{HOST_PREFIX}{number}" for number, name in
                      enumerate(self.names, start=1)}
        self.port = port or _free_port_on(list(self.hosts.values()))
        self._dir = Path(tempfile.mkdtemp(prefix="keyline-recordings-", dir="/tmp"))
        self._process: subprocess.Popen[bytes] | None = None

    def endpoint(self, name: str) -> tuple[str, int]:
        """(host, port) of a served recording; its community is `name`."""
        return self.hosts[name], self.port

    def records(self, name: str) -> list[SnmprecRecord]:
        """The recording as recorded (not the moving copy)."""
        return parse_snmprec(self.paths[self.names.index(name)])

    def start(self, timeout_s: float = 60.0) -> RecordingAgents:
        data = self._dir / "data"
        data.mkdir(parents=True)
        now_s = time.time()
        for name, path in zip(self.names, self.paths, strict=True):
            records = parse_snmprec(path)
            if self.moving:
                records = moving_copy(records, now_s)
            write_records(data / f"{name}.snmprec", records)
        command = [
            sys.executable, "-m", "snmpsim.commands.responder",
            f"--process-user={pwd.getpwuid(os.getuid()).pw_name}",
            f"--process-group={grp.getgrgid(os.getgid()).gr_name}",
            "--log-level=error", f"--cache-dir={self._dir / 'cache'}",
            f"--variation-modules-dir={VARIATION_DIR}", f"--data-dir={data}",
            *(f"--agent-udpv4-endpoint={host}:{self.port}" for host in self.hosts.values()),
        ]
        env = dict(os.environ, HOME=str(self._dir))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH"))))
        log_path = self._dir / "snmpsim.log"
        with open(log_path, "wb") as log:
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, env=env, cwd=self._dir,
                                             start_new_session=True)
        deadline = time.monotonic() + timeout_s
        for name in self.names:
            if not self._answers(name, deadline):
                text = log_path.read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"snmpsim did not answer for {name}: {text}")
        return self

    def _answers(self, name: str, deadline: float) -> bool:
        from collectors.snmp_fast import encode_request

        request = encode_request(name.encode(), 1, [SYS_UPTIME])
        host, port = self.endpoint(name)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.3)
            while time.monotonic() < deadline:
                if self._process is None or self._process.poll() is not None:
                    return False
                try:
                    sock.sendto(request, (host, port))
                    sock.recvfrom(65535)
                    return True
                except OSError:
                    time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                os.killpg(self._process.pid, signal.SIGTERM)
                try:
                    self._process.wait(5)
                except subprocess.TimeoutExpired:
                    os.killpg(self._process.pid, signal.SIGKILL)
                    self._process.wait()
            self._process = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RecordingAgents:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)


def _free_port_on(addresses: list[str]) -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as first:
            first.bind((addresses[0], 0))
            port = first.getsockname()[1]
            try:
                for address in addresses[1:]:
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                        probe.bind((address, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no UDP port free on every recording address")
