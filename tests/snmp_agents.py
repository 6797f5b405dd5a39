"""Real SNMP agents on loopback for the poller's tests and benchmark, and relays that misbehave.

`SnmpsimAgents` starts one snmpsim process (PyPI snmpsim, a pysnmp-based agent) with two
engines: an SNMPv2c engine listening on `v2c_count` UDP ports of 127.0.0.1, every port the
same device (`interfaces` IF-MIB rows from generated `.snmprec` data, full ifTable and
ifXTable as Net-SNMP serves them), and an SNMPv3 engine (user with SHA auth, AES privacy)
serving the same data on one more port. Values are static and known (`expected_row`), so a
test can check every counter the poller read. The ifIndex values include multi-byte
sub-identifiers (200, 70000) and a Counter64 near 2**64. sysUpTime is `SYS_UPTIME_CS` too,
standing still, unless `uptime_advances`: then it counts on from `SYS_UPTIME_CS` at the start
as a real agent's does (lab/sim's `keyline_counter` variation module), so that polls at
intervals do not see an agent restart each time (bench/collect.py measures steady state).

`Relay` sits in front of a real agent and changes what comes back: `delay_s` holds every
answer (a slow agent), `mangle` rewrites the answer bytes (a malformed or truncated one).

`NetSnmpAgent` runs Debian's snmpd (Net-SNMP) on 127.0.0.1 on a high port with a v2c
community and a v3 authPriv user, when `snmpd` is installed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

COMMUNITY = "keyline-test-ro"
V3_USER = "keyline-poller"
V3_AUTH_KEY = "auth-key-for-tests-1"
V3_PRIV_KEY = "priv-key-for-tests-1"
SYS_DESCR = "Keyline test router (snmpsim)"
SYS_NAME = "pe-test-1"
SYS_UPTIME_CS = 123_456_789

IF_ENTRY = "1.3.6.1.2.1.2.2.1"
IF_X_ENTRY = "1.3.6.1.2.1.31.1.1.1"


def if_indexes(interfaces: int) -> list[int]:
    """ifIndex values of a generated device: 1..n-2, then 200 and 70000 (multi-byte)."""
    if interfaces < 3:
        return list(range(1, interfaces + 1))
    return [*range(1, interfaces - 1), 200, 70000]


def expected_row(if_index: int) -> dict[str, Any]:
    """The InterfaceReading fields (and labels) the generated data holds for `if_index`."""
    big = 2**64 - 1000 if if_index == 200 else if_index * 1_000_000_007
    return {
        "if_name": f"Gi0/0/{if_index}",
        "if_descr": f"GigabitEthernet0/0/{if_index}",
        "if_type": 6,
        "if_speed_bps": 1_000_000_000,
        "if_admin_status": 1,
        "if_oper_status": 2 if if_index % 7 == 0 else 1,
        "if_in_octets": (if_index * 7_654_321) % 2**32,
        "if_in_discards": if_index % 5,
        "if_in_errors": if_index % 3,
        "if_out_octets": (if_index * 1_234_567) % 2**32,
        "if_out_discards": if_index % 4,
        "if_out_errors": if_index % 2,
        "if_hc_in_octets": big,
        "if_hc_out_octets": if_index * 3_000_000_019,
        "if_high_speed_mbps": 1000,
        "if_counter_discontinuity_time_cs": 0,
    }


def snmprec_lines(interfaces: int, boot_epoch_s: float | None = None) -> list[str]:
    """A device's data in snmpsim's OID|TAG|VALUE format, sorted by OID. With `boot_epoch_s`
    sysUpTime counts from that moment (lab/sim's `keyline_counter` variation module, which
    the agent must load); without it, it stands still at `SYS_UPTIME_CS`."""
    records: list[tuple[tuple[int, ...], str, str]] = []

    def add(oid: str, tag: int | str, value: object) -> None:
        records.append((tuple(int(p) for p in oid.split(".")), str(tag), str(value)))

    add("1.3.6.1.2.1.1.1.0", 4, SYS_DESCR)
    add("1.3.6.1.2.1.1.2.0", 6, "1.3.6.1.4.1.8072.3.2.10")
    if boot_epoch_s is None:
        add("1.3.6.1.2.1.1.3.0", 67, SYS_UPTIME_CS)
    else:
        from lab.sim.agent import COUNTER_MODULE
        from lab.sim.traffic import CounterSpec

        uptime = CounterSpec(rate_per_s=100.0, boot_epoch_s=boot_epoch_s, bits=32)
        add("1.3.6.1.2.1.1.3.0", f"67:{COUNTER_MODULE}", uptime.encode())
    add("1.3.6.1.2.1.1.5.0", 4, SYS_NAME)
    add("1.3.6.1.2.1.2.1.0", 2, len(if_indexes(interfaces)))
    for i in if_indexes(interfaces):
        row = expected_row(i)
        for column, tag, value in (
            (1, 2, i), (2, 4, row["if_descr"]), (3, 2, 6), (4, 2, 1500),
            (5, 66, row["if_speed_bps"]), (6, "4x", f"02004c4f{i % 65536:04x}"),
            (7, 2, 1), (8, 2, row["if_oper_status"]), (9, 67, 1000 + i),
            (10, 65, row["if_in_octets"]), (11, 65, i * 11), (12, 65, i * 12),
            (13, 65, row["if_in_discards"]), (14, 65, row["if_in_errors"]), (15, 65, 0),
            (16, 65, row["if_out_octets"]), (17, 65, i * 17), (18, 65, i * 18),
            (19, 65, row["if_out_discards"]), (20, 65, row["if_out_errors"]), (21, 66, 0),
            (22, 6, "0.0"),
        ):
            add(f"{IF_ENTRY}.{column}.{i}", tag, value)
        for column, tag, value in (
            (1, 4, row["if_name"]), (2, 65, i * 2), (3, 65, i * 3), (4, 65, i * 4),
            (5, 65, i * 5), (6, 70, row["if_hc_in_octets"]), (7, 70, i * 7), (8, 70, i * 8),
            (9, 70, i * 9), (10, 70, row["if_hc_out_octets"]), (11, 70, i * 11),
            (12, 70, i * 12), (13, 70, i * 13), (14, 2, 1), (15, 66, 1000), (16, 2, 2),
            (17, 2, 1), (18, 4, f"customer circuit {i}"), (19, 67, 0),
        ):
            add(f"{IF_X_ENTRY}.{column}.{i}", tag, value)
    records.sort()
    return [f"{'.'.join(map(str, oid))}|{tag}|{value}" for oid, tag, value in records]


def free_udp_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    sockets, ports = [], []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((host, 0))
            sockets.append(sock)
            ports.append(sock.getsockname()[1])
    finally:
        for sock in sockets:
            sock.close()
    return ports


def free_udp_port_on(addresses: list[str]) -> int:
    """A UDP port free on every one of `addresses` (the simulated devices' loopback
    addresses share one port number)."""
    for port in free_udp_ports(50, addresses[0]):
        try:
            for address in addresses:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                    probe.bind((address, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no UDP port free on every simulated address")


def _sysuptime_get(community: bytes) -> bytes:
    from collectors.snmp_fast import encode_request

    return encode_request(community, 1, [(1, 3, 6, 1, 2, 1, 1, 3, 0)])


def wait_answering(host: str, port: int, deadline_s: float, alive: Callable[[], bool],
                   community: bytes = COMMUNITY.encode()) -> bool:
    """Send v2c GETs until the agent answers; False if it never does before the deadline."""
    request = _sysuptime_get(community)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        while time.monotonic() < deadline_s and alive():
            try:
                sock.sendto(request, (host, port))
                sock.recvfrom(65535)
                return True
            except OSError:
                time.sleep(0.05)
    return False


class SnmpsimAgents:
    """snmpsim serving a generated device on `v2c_count` v2c ports and one v3 port.

    `v3_users`: more SNMPv3 engines, one per (user, auth protocol, auth key, priv protocol,
    priv key) in snmpsim's protocol names ("SHA256", "AES256BLMT", "NONE"...), each on its
    own port (`v3_user_ports`, same order) with engine id `v3_user_engine_id(i)`.
    `uptime_advances`: sysUpTime counts on from `SYS_UPTIME_CS` at start (else it stands
    still there)."""

    def __init__(self, interfaces: int = 52, v2c_count: int = 1, host: str = "127.0.0.1",
                 max_var_binds: int = 2000,
                 v3_users: tuple[tuple[str, str, str, str, str], ...] = (),
                 uptime_advances: bool = False) -> None:
        self.interfaces = interfaces
        self.uptime_advances = uptime_advances
        self.host = host
        self.max_var_binds = max_var_binds
        self.v3_users = v3_users
        ports = free_udp_ports(v2c_count + 1 + len(v3_users), host)
        self.v3_user_ports = ports[v2c_count + 1:]
        ports = ports[:v2c_count + 1]
        self.v2c_ports, self.v3_port = ports[:-1], ports[-1]
        self._dir = Path(tempfile.mkdtemp(prefix="keyline-snmpsim-", dir="/tmp"))
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> SnmpsimAgents:
        boot_epoch_s = time.time() - SYS_UPTIME_CS / 100 if self.uptime_advances else None
        lines = "\n".join(snmprec_lines(self.interfaces, boot_epoch_s)) + "\n"
        v2c_dir, v3_dir = self._dir / "v2c", self._dir / "v3"
        v2c_dir.mkdir()
        v3_dir.mkdir()
        (v2c_dir / f"{COMMUNITY}.snmprec").write_text(lines)
        (v3_dir / "self.snmprec").write_text(lines)
        args = [
            "--v3-engine-id=80001f8805aa00000000000001", "--v3-user=unused-v2c-only",
            "--v3-auth-key=unused-auth-key-123", "--v3-auth-proto=SHA",
            "--v3-priv-key=unused-priv-key-123", "--v3-priv-proto=AES",
            f"--data-dir={v2c_dir}",
            *(f"--agent-udpv4-endpoint={self.host}:{port}" for port in self.v2c_ports),
            "--v3-engine-id=80001f8805aa00000000000002", f"--v3-user={V3_USER}",
            f"--v3-auth-key={V3_AUTH_KEY}", "--v3-auth-proto=SHA",
            f"--v3-priv-key={V3_PRIV_KEY}", "--v3-priv-proto=AES",
            f"--data-dir={v3_dir}", f"--agent-udpv4-endpoint={self.host}:{self.v3_port}",
        ]
        for number, ((user, auth, auth_key, priv, priv_key), port) in enumerate(
                zip(self.v3_users, self.v3_user_ports, strict=True)):
            args += [f"--v3-engine-id={self.v3_user_engine_id(number).hex()}",
                     f"--v3-user={user}",
                     *([f"--v3-auth-proto={auth}", f"--v3-auth-key={auth_key}"]
                       if auth != "NONE" else []),
                     *([f"--v3-priv-proto={priv}", f"--v3-priv-key={priv_key}"]
                       if priv != "NONE" else []),
                     f"--data-dir={v3_dir}", f"--agent-udpv4-endpoint={self.host}:{port}"]
        args_file = self._dir / "snmpsim.args"
        args_file.write_text("\n".join(args) + "\n")
        args_file.chmod(0o600)
        import grp
        import pwd

        command = [
            sys.executable, "-m", "snmpsim.commands.responder",
            f"--process-user={pwd.getpwuid(os.getuid()).pw_name}",
            f"--process-group={grp.getgrgid(os.getgid()).gr_name}",
            "--log-level=error", f"--cache-dir={self._dir / 'cache'}",
            f"--max-var-binds={self.max_var_binds}", f"--args-from-file={args_file}",
        ]
        env = dict(os.environ, HOME=str(self._dir))
        if self.uptime_advances:
            # the variation module imports lab.sim.traffic from this checkout
            root = Path(__file__).resolve().parent.parent
            command.append(f"--variation-modules-dir={root / 'lab' / 'sim' / 'variation'}")
            env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(root),
                                                              env.get("PYTHONPATH"))))
        with open(self._dir / "snmpsim.log", "wb") as log:
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, env=env,
                                             start_new_session=True)
        deadline = time.monotonic() + 30
        alive = lambda: self._process is not None and self._process.poll() is None  # noqa: E731
        for port in self.v2c_ports:
            if not wait_answering(self.host, port, deadline, alive):
                log_text = (self._dir / "snmpsim.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"snmpsim did not answer on {self.host}:{port}: {log_text}")
        return self

    @staticmethod
    def v3_user_engine_id(number: int) -> bytes:
        return bytes.fromhex(f"80001f8805bb{number:016x}")

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

    def __enter__(self) -> SnmpsimAgents:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def snmpsim_installed() -> bool:
    try:
        import pysmi  # noqa: F401
        import snmpsim  # noqa: F401
    except ImportError:
        return False
    return True


class NetSnmpAgent:
    """Debian's snmpd on 127.0.0.1:<high port>: v2c community and a v3 SHA/AES user.
    `extra_conf`: more snmpd.conf lines (more v3 users, for instance)."""

    def __init__(self, host: str = "127.0.0.1", extra_conf: str = "") -> None:
        self.host = host
        self.extra_conf = extra_conf
        self.port = free_udp_ports(1, host)[0]
        self._dir = Path(tempfile.mkdtemp(prefix="keyline-snmpd-", dir="/tmp"))
        self._process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def binary() -> str | None:
        return shutil.which("snmpd") or (
            "/usr/sbin/snmpd" if Path("/usr/sbin/snmpd").exists() else None)

    def start(self) -> NetSnmpAgent:
        binary = self.binary()
        if binary is None:
            raise RuntimeError("snmpd is not installed")
        conf = self._dir / "snmpd.conf"
        conf.write_text(
            f"agentAddress udp:{self.host}:{self.port}\n"
            f"rocommunity {COMMUNITY} 127.0.0.1\n"
            f'createUser {V3_USER} SHA "{V3_AUTH_KEY}" AES "{V3_PRIV_KEY}"\n'
            f"rouser {V3_USER} priv\n"
            f"sysName {SYS_NAME}\n"
            "master no\n"
            + self.extra_conf
        )
        conf.chmod(0o600)
        env = dict(os.environ, SNMP_PERSISTENT_DIR=str(self._dir / "persist"), MIBS="")
        self._process = subprocess.Popen(
            [binary, "-f", "-C", "-c", str(conf), "-Lf", str(self._dir / "snmpd.log"),
             "-p", str(self._dir / "snmpd.pid"), "-I", "-smux,mteTrigger,mteTriggerConf"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=env, start_new_session=True)
        deadline = time.monotonic() + 10
        alive = lambda: self._process is not None and self._process.poll() is None  # noqa: E731
        if not wait_answering(self.host, self.port, deadline, alive):
            log = (self._dir / "snmpd.log")
            text = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            self.stop()
            raise RuntimeError(f"snmpd did not answer on {self.host}:{self.port}: {text}")
        return self

    def stop(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(5)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._process = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> NetSnmpAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Relay(asyncio.DatagramProtocol):
    """A UDP relay on 127.0.0.1 in front of a real agent, run on the current event loop.

    Requests pass through unchanged; each answer is held `delay_s` (a slow agent) and/or
    rewritten by `mangle` (bytes -> bytes: a malformed or truncated agent) on its way back."""

    def __init__(self, agent: tuple[str, int], *, delay_s: float = 0.0,
                 mangle: Callable[[bytes], bytes] | None = None) -> None:
        self.agent = agent
        self.delay_s = delay_s
        self.mangle = mangle
        self.address: tuple[str, int] = ("127.0.0.1", 0)
        self._transport: asyncio.DatagramTransport | None = None
        self._upstreams: dict[Any, asyncio.DatagramTransport] = {}

    async def start(self) -> Relay:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self,
                                                           local_addr=("127.0.0.1", 0))
        self._transport = transport
        self.address = transport.get_extra_info("sockname")[:2]
        return self

    def close(self) -> None:
        for upstream in self._upstreams.values():
            upstream.close()
        if self._transport is not None:
            self._transport.close()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        asyncio.get_running_loop().create_task(self._forward(data, addr))

    async def _forward(self, data: bytes, client: Any) -> None:
        upstream = self._upstreams.get(client)
        if upstream is None:
            relay = self

            class Back(asyncio.DatagramProtocol):
                def datagram_received(self, answer: bytes, addr: Any) -> None:
                    asyncio.get_running_loop().create_task(relay._back(answer, client))

            loop = asyncio.get_running_loop()
            upstream, _ = await loop.create_datagram_endpoint(Back, remote_addr=self.agent)
            self._upstreams[client] = upstream
        upstream.sendto(data)

    async def _back(self, answer: bytes, client: Any) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.mangle is not None:
            answer = self.mangle(answer)
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(answer, client)


class NetSnmpV1OnlyAgent(NetSnmpAgent):
    """Debian's snmpd answering SNMPv1 only: its access rules (VACM) admit `COMMUNITY` under
    the v1 security model alone, so a v2c request with the right community is dropped in
    silence, as an agent that speaks v1 only (or is configured so) drops it. Its view is the
    system group, ifTable and ifXTable and nothing else, so a GETNEXT walk of ifXTable ends
    at the end of the view: error-status noSuchName, SNMPv1's endOfMibView."""

    def start(self) -> NetSnmpV1OnlyAgent:
        binary = self.binary()
        if binary is None:
            raise RuntimeError("snmpd is not installed")
        conf = self._dir / "snmpd.conf"
        conf.write_text(
            f"agentAddress udp:{self.host}:{self.port}\n"
            f"com2sec keylineV1 127.0.0.1 {COMMUNITY}\n"
            "group keylineV1Group v1 keylineV1\n"
            "view keylineAll included .1.3.6.1.2.1.1\n"
            "view keylineAll included .1.3.6.1.2.1.2\n"
            "view keylineAll included .1.3.6.1.2.1.31.1.1\n"
            'access keylineV1Group "" v1 noauth exact keylineAll none none\n'
            f"sysName {SYS_NAME}\n"
            "master no\n"
        )
        conf.chmod(0o600)
        env = dict(os.environ, SNMP_PERSISTENT_DIR=str(self._dir / "persist"), MIBS="")
        self._process = subprocess.Popen(
            [binary, "-f", "-C", "-c", str(conf), "-Lf", str(self._dir / "snmpd.log"),
             "-p", str(self._dir / "snmpd.pid"), "-I", "-smux,mteTrigger,mteTriggerConf"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=env, start_new_session=True)
        deadline = time.monotonic() + 10
        from collectors.snmp_fast import SNMP_V1, encode_request

        request = encode_request(COMMUNITY.encode(), 1, [(1, 3, 6, 1, 2, 1, 1, 3, 0)],
                                 version=SNMP_V1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.2)
            while time.monotonic() < deadline and self._process.poll() is None:
                try:
                    sock.sendto(request, (self.host, self.port))
                    sock.recvfrom(65535)
                    return self
                except OSError:
                    time.sleep(0.05)
        log = self._dir / "snmpd.log"
        text = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        self.stop()
        raise RuntimeError(f"snmpd (v1 only) did not answer on {self.host}:{self.port}: {text}")

    def __enter__(self) -> NetSnmpV1OnlyAgent:
        return self.start()
