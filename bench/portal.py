"""Portal benchmark: concurrent Socket.IO clients of the portal as `keyline serve` runs it,
event-to-client latency, and REST latency at a steady request rate.

The portal runs as in production: `keyline serve` (its gevent portal server process,
portal/server.py) on a scratch database holding the example inventory. With `--processes 2`
two `keyline serve` run side by side behind nginx on loopback (a generated configuration:
docs/deployment.md's WebSocket-only set-up, `server.websocket_only` on, round robin, no
sticky sessions), each process following the store's events itself. This process then opens
lean asyncio clients (LeanClient: the WebSocket transport spoken by hand, a NOC user's
logged-in session cookie, the Engine.IO v4 and Socket.IO handshakes, each joining the "noc"
room as the pages do and answering pings) in steps (default 200, 500, 1000, 2000; with two
processes 1000, 2000, 4000). At each step it records status changes in the store as a collector does
(store.observations.record_observations: one port flipping up/down, which publishes an
"observation" event), and measures, per event, the time from just before the commit to the
moment each client got the "status" message carrying that event's id. It prints, per step:
clients connected (and refused or failed), p50/p99 of every single delivery, p50/p99 of "all
clients have it" (the slowest client per event), and the portal processes' threads and
resident memory.

Then REST: GET /api/v1/circuits at a fixed rate (default 200 requests/s, open loop: requests
are started on schedule whatever the answers do) for a few seconds, with the last step's
sockets still connected; it prints p50/p99/max latency and errors.

The clients are lean on purpose. python-socketio's asyncio client spent about 0.25 ms of
CPU per client per event (WebSocket frame parsing in aiohttp, Engine.IO and Socket.IO
packet decoding, a full JSON decode, a callback task): with 4,000 of them on the same two
cores the bench used twice the CPU of the two portal processes it measured, and its own
queueing showed up as the portal's latency. A LeanClient does what a page's socket does on
the wire (connect, handshake, join, pong) and recognises each "status" message by its
prefix and the event id at its fixed place, without decoding the rest; the arrival time is
taken as the frame is parsed. They are spread over several client processes
(`--client-procs`, default: one per CPU), each with its own event loop; arrival times are
taken with time.time() (one clock: same machine). They still share the cores with the
portal, so their CPU is part of the figures (a conservative measure), and it is printed
next to the portal's ("client CPU ms/ev": the client processes' user + system time during
the step's events, their waits included, divided by the events; "portal CPU ms/ev" the same
for the portal processes). File descriptor limits are raised to the hard limit in every
process. Only loopback is used.

Every run ends with one line per figure the issue asks for ("verdict": REST p99 < 100 ms at
200 requests/s with the sockets connected, event to all clients p99 < 1 s, none lost).

    python bench/portal.py                          # 200, 500, 1000, 2000 clients
    python bench/portal.py --processes 2            # two processes behind nginx, to 4,000
    python bench/portal.py --steps 100,300 --events 20 --rest-seconds 5
    python bench/portal.py --client-procs 1         # all clients on one event loop
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from scratch_database import scratch_database

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD = "bench portal password 1"
USER = "noc.wang"


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def start_keyline_serve(url: str, data_dir: Path, env: dict[str, str]) -> tuple[
        subprocess.Popen[str], int, int]:
    """`keyline serve` on a free loopback port: (the process, its portal server process's
    pid, its port)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "keyline", "--database-url", url, "--data-dir", str(data_dir),
         "serve", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=env, cwd=ROOT)
    assert process.stdout is not None
    pid = port = None
    for line in process.stdout:
        found = re.search(r"Portal server process (\d+)", line)
        pid = int(found.group(1)) if found else pid
        found = re.search(r"Open http://[^:]+:(\d+)/", line)
        if found:
            port = int(found.group(1))
            break
    if pid is None or port is None:
        process.kill()
        raise SystemExit(f"keyline serve did not start (exit code {process.wait()})")
    # Keep reading its output (warnings), so that a full pipe never blocks it.
    threading.Thread(target=lambda: [print("portal:", line, end="", file=sys.stderr)
                                     for line in process.stdout or ()], daemon=True).start()
    return process, pid, port


# the http block's own part (lab.nginx writes the rest of nginx.conf)
NGINX_PROXY = """
map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
upstream keyline {{
{servers}
    keepalive 64;
}}
server {{
    listen 127.0.0.1:{port};
    location / {{
        proxy_pass http://keyline;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_read_timeout 1h;
    }}
}}
"""


def start_nginx(work: Path, ports: list[int]) -> tuple[subprocess.Popen[bytes], int]:
    """nginx on a free loopback port in front of the portal processes on `ports`, with
    docs/deployment.md's WebSocket-only configuration (round robin, no stickiness)."""
    from lab.nginx import nginx_binary, write_nginx_conf

    nginx = nginx_binary()
    if nginx is None:
        raise SystemExit("--processes needs nginx (lab/debian-packages.txt: python3 dev.py test"
                         " installs it as root, or apt-get install nginx)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    work.mkdir(parents=True, exist_ok=True)
    servers = "\n".join(f"    server 127.0.0.1:{p};" for p in ports)
    files = raise_fd_limit()  # nginx inherits it; each client is two of its connections
    main = write_nginx_conf(work, NGINX_PROXY.format(servers=servers, port=port),
                            worker_connections=files // 2, worker_rlimit_nofile=files)
    process = subprocess.Popen([nginx, "-p", str(work), "-c", str(main)])
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("nginx did not start") from None
            time.sleep(0.1)


def process_figures(pid: int) -> str:
    status = Path(f"/proc/{pid}/status").read_text()
    threads = re.search(r"Threads:\s+(\d+)", status)
    rss = re.search(r"VmRSS:\s+(\d+) kB", status)
    return (f"{threads.group(1) if threads else '?'} threads, "
            f"{int(rss.group(1)) / 1024:.0f} MiB resident" if rss else "?")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used so far."""
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def login_cookie(base: str) -> str:
    import aiohttp
    from yarl import URL

    # unsafe=True: keep cookies of an IP address (127.0.0.1), which aiohttp drops by default
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(base + "/login") as answer:
            page = await answer.text()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token
        async with http.post(base + "/login", allow_redirects=False, data={
                "name": USER, "password": PASSWORD, "csrf_token": token.group(1)}) as answer:
            assert answer.status == 302, answer.status
        cookie = http.cookie_jar.filter_cookies(URL(base)).get("keyline_session")
        assert cookie is not None
        return f"keyline_session={cookie.value}"


STATUS_PREFIX = b'42["status",{"id":'
WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _masked_frame(text: bytes) -> bytes:
    """A client's WebSocket text frame (RFC 6455: a client masks what it sends)."""
    mask = os.urandom(4)
    length = len(text)
    if length < 126:
        head = bytes([0x81, 0x80 | length])
    elif length < 1 << 16:
        head = bytes([0x81, 0x80 | 126]) + length.to_bytes(2, "big")
    else:
        head = bytes([0x81, 0x80 | 127]) + length.to_bytes(8, "big")
    key = int.from_bytes(mask * (length // 4 + 1), "big") >> (8 * (4 - length % 4))
    return head + mask + (int.from_bytes(text, "big") ^ key).to_bytes(length, "big")


class LeanClient(asyncio.Protocol):
    """One page's live connection, spoken by hand: an HTTP Upgrade to WebSocket on
    /socket.io/?EIO=4&transport=websocket with the user's session cookie (the accept key
    checked), Engine.IO v4's open packet, Socket.IO's namespace connect ("40"), then
    ``join`` {"room": ...} with an acknowledgement id, as the pages do; it answers each
    Engine.IO ping ("2") with a pong ("3") and WebSocket pings with pongs. A "status"
    message is recognised by its prefix and its event id read from the fixed place the
    portal puts it (``42["status",{"id":123,...``), without decoding the rest of the JSON:
    the arrival time is taken when the frame is parsed."""

    def __init__(self, host: str, cookie: str, room: str,
                 received: dict[int, list[float]]) -> None:
        self.host = host
        self.cookie = cookie
        self.room = room
        self.received = received
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.key = base64.b64encode(os.urandom(16))
        self.joined: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.fragments = bytearray()
        self.unrecognised = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
            b"Host: " + self.host.encode() + b"\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: " + self.key + b"\r\n"
            b"Sec-WebSocket-Version: 13\r\nCookie: " + self.cookie.encode() + b"\r\n\r\n")

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.joined.done():
            self.joined.set_exception(ConnectionError(f"connection closed: {exc}"))

    def send(self, text: bytes) -> None:
        if self.transport is not None:
            self.transport.write(_masked_frame(text))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).decode("latin-1")
            del buffer[:end + 4]
            accept = base64.b64encode(hashlib.sha1(self.key + WEBSOCKET_GUID).digest())
            if (not head.startswith("HTTP/1.1 101")
                    or accept.decode() not in head):
                self.joined.set_exception(ConnectionError(head.splitlines()[0]))
                self.close()
                return
            self.upgraded = True
        while len(buffer) >= 2:
            first, length = buffer[0], buffer[1] & 0x7F
            start = 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, start = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, start = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < start + length:
                return
            payload = bytes(buffer[start:start + length])
            del buffer[:start + length]
            opcode = first & 0x0F
            if opcode == 0x9:  # WebSocket ping: pong with the same payload
                if self.transport is not None:
                    mask = b"\0\0\0\0"  # masked with a zero key: the payload unchanged
                    self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + mask + payload)
                continue
            if opcode == 0x8:
                self.close()
                return
            if opcode in (0x0, 0x1, 0x2) and not first & 0x80:
                self.fragments += payload  # a fragment: wait for the final one
                continue
            if opcode == 0x0:
                payload, self.fragments = bytes(self.fragments) + payload, bytearray()
            if opcode in (0x0, 0x1):
                self.on_message(payload, now)

    def on_message(self, payload: bytes, now: float) -> None:
        if payload.startswith(STATUS_PREFIX):
            digits = payload[len(STATUS_PREFIX):payload.find(b",", len(STATUS_PREFIX))]
            self.received.setdefault(int(digits), []).append(now)
        elif payload == b"2":
            self.send(b"3")
        elif payload.startswith(b"0{"):  # Engine.IO open: connect the default namespace
            self.send(b"40")
        elif payload.startswith(b"40"):  # Socket.IO connected: join as the pages do
            self.send(b'420["join",' + json.dumps({"room": self.room}).encode() + b"]")
        elif payload.startswith(b"430"):
            answer = json.loads(payload[3:])
            if not self.joined.done():
                if answer and answer[0].get("ok"):
                    self.joined.set_result(None)
                else:
                    self.joined.set_exception(RuntimeError(f"join refused: {answer}"))
        elif payload.startswith(b"42") or payload.startswith(b"44"):
            self.unrecognised += 1  # another event, or a connect error


class Clients:
    """Many LeanClient connections on one event loop; `received[event id]` = arrival
    times."""

    def __init__(self, base: str, cookie: str) -> None:
        parts = urlsplit(base)
        self.address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.host = parts.netloc
        self.cookie = cookie
        self.clients: list[LeanClient] = []
        self.received: dict[int, list[float]] = {}
        self.failed = 0

    async def _one(self) -> None:
        loop = asyncio.get_running_loop()
        client = LeanClient(self.host, self.cookie, "noc", self.received)
        try:
            await loop.create_connection(lambda: client, *self.address)
            await asyncio.wait_for(client.joined, 30)
            self.clients.append(client)
        except Exception as error:
            if not self.failed:
                print(f"bench client: {error!r}", file=sys.stderr)
            self.failed += 1
            client.close()

    async def grow(self, total: int, batch: int = 50) -> float:
        started = time.monotonic()
        while len(self.clients) < total:
            need = min(batch, total - len(self.clients))
            failed_before = self.failed
            await asyncio.gather(*(self._one() for _ in range(need)))
            if self.failed - failed_before == need:
                break  # every one of a batch failed: the server holds no more
        return time.monotonic() - started

    async def close(self) -> None:
        for client in self.clients:
            client.close()
        await asyncio.sleep(0.1)


def client_worker(base: str, cookie: str, pipe: Any) -> None:
    """A client process: Clients on its own event loop, driven by commands on `pipe`:
    ("grow", n) -> (connected, failed, seconds); ("collect", event id, timeout s) -> the
    arrival times of that event's message once every client has it (or at the timeout);
    ("cpu",) -> this process's user + system CPU seconds; ("close",) -> None, then exit."""
    raise_fd_limit()
    logging.basicConfig(level=logging.ERROR)

    async def serve() -> None:
        clients = Clients(base, cookie)
        loop = asyncio.get_running_loop()
        try:
            while True:
                command = await loop.run_in_executor(None, pipe.recv)
                if command[0] == "grow":
                    took = await clients.grow(command[1])
                    pipe.send((len(clients.clients), clients.failed, took))
                elif command[0] == "collect":
                    _, event_id, timeout_s = command
                    deadline = time.monotonic() + timeout_s
                    while (len(clients.received.get(event_id, ())) < len(clients.clients)
                           and time.monotonic() < deadline):
                        await asyncio.sleep(0.005)
                    pipe.send(clients.received.pop(event_id, []))
                elif command[0] == "cpu":
                    usage = resource.getrusage(resource.RUSAGE_SELF)
                    pipe.send(usage.ru_utime + usage.ru_stime)
                else:
                    break
        finally:
            await clients.close()
            pipe.send(None)

    asyncio.run(serve())


class ClientPool:
    """`procs` client processes (client_worker) holding the bench's Socket.IO clients."""

    def __init__(self, base: str, cookie: str, procs: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Any] = []
        self.workers: list[Any] = []
        for _ in range(procs):
            mine, theirs = context.Pipe()
            worker = context.Process(target=client_worker, args=(base, cookie, theirs),
                                     daemon=True)
            worker.start()
            self.pipes.append(mine)
            self.workers.append(worker)
        self.connected = [0] * procs
        self.failed = 0

    @property
    def count(self) -> int:
        return sum(self.connected)

    async def _ask_all(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        for pipe, command in zip(self.pipes, commands, strict=True):
            pipe.send(command)
        return [await asyncio.to_thread(pipe.recv) for pipe in self.pipes]

    async def grow(self, total: int) -> float:
        """Spread `total` clients evenly over the processes; the slowest one's seconds."""
        procs = len(self.pipes)
        shares = [total // procs + (1 if n < total % procs else 0) for n in range(procs)]
        answers = await self._ask_all([("grow", share) for share in shares])
        self.connected = [connected for connected, _, _ in answers]
        self.failed = sum(failed for _, failed, _ in answers)
        return max(took for _, _, took in answers)

    async def arrivals(self, event_id: int, timeout_s: float) -> list[float]:
        answers = await self._ask_all([("collect", event_id, timeout_s)] * len(self.pipes))
        return [t for answer in answers for t in answer]

    async def cpu_seconds(self) -> float:
        return sum(await self._ask_all([("cpu",)] * len(self.pipes)))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._ask_all([("close",)] * len(self.pipes)), 60)
        for worker in self.workers:
            worker.join(10)
            if worker.is_alive():
                worker.terminate()


async def measure_events(clients: ClientPool, url: str, port_id: int, events: int,
                         timeout_s: float = 15.0) -> tuple[list[float], list[float], int]:
    from collectors.model import Observation
    from store.events import last_event_id
    from store.observations import record_observations

    single: list[float] = []
    slowest: list[float] = []
    missing = 0
    states = ["down", "up"]
    with psycopg.connect(url) as conn:
        for n in range(events):
            new, old = states[n % 2], states[(n + 1) % 2]
            sent_at = time.time()
            record_observations(conn, [Observation(datetime.now(UTC), port_id, "oper_status",
                                                   old, new, "trap")])
            conn.commit()
            event_id = last_event_id(conn)
            conn.commit()
            arrivals = await clients.arrivals(event_id, timeout_s)
            missing += clients.count - len(arrivals)
            single.extend(t - sent_at for t in arrivals)
            if arrivals:
                slowest.append(max(arrivals) - sent_at)
            await asyncio.sleep(0.2)
    return single, slowest, missing


async def rest_load(base: str, cookie: str, rate: float, seconds: float) -> tuple[
        list[float], int]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=400)
    async with aiohttp.ClientSession(connector=connector,
                                     headers={"Cookie": cookie}) as http:
        async def one() -> None:
            nonlocal errors
            started = time.perf_counter()
            try:
                async with http.get(base + "/api/v1/circuits",
                                    timeout=aiohttp.ClientTimeout(total=30)) as answer:
                    await answer.read()
                    if answer.status != 200:
                        errors += 1
                        return
            except Exception:
                errors += 1
                return
            latencies.append(time.perf_counter() - started)

        tasks = []
        start = time.perf_counter()
        for n in range(int(rate * seconds)):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return latencies, errors


async def run(args: argparse.Namespace, base: str, url: str, portal_pids: list[int],
              port_id: int) -> bool:
    """The measurements; True when every figure meets the issue's bar."""
    cookie = await login_cookie(base)
    latencies, errors = await rest_load(base, cookie, args.rest_rate, args.rest_seconds)
    print(f"REST /api/v1/circuits at {args.rest_rate:g}/s for {args.rest_seconds:g} s, "
          f"no sockets: p50 {pct(latencies, 50) * 1000:.1f} ms, "
          f"p99 {pct(latencies, 99) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms, "
          f"{errors} errors of {int(args.rest_rate * args.rest_seconds)}")
    print()
    print(f"{'clients':>8} {'failed':>6} {'connect s':>9} {'events':>6} {'lost':>5} "
          f"{'each p50 ms':>11} {'each p99 ms':>11} {'all p50 ms':>10} {'all p99 ms':>10}"
          f" {'client CPU ms/ev':>16} {'portal CPU ms/ev':>16} {'load':>5}"
          f"  portal process(es)")
    clients = ClientPool(base, cookie, args.client_procs)
    all_p99 = float("nan")
    lost = 0
    rest_p99: list[float] = []
    rest_errors = 0
    try:
        for step in args.steps:
            took = await clients.grow(step)
            await asyncio.sleep(1.0)
            cpu_before = await clients.cpu_seconds()
            portal_cpu_before = cpu_seconds(portal_pids)
            single, slowest, missing = await measure_events(clients, url, port_id,
                                                            args.events)
            client_cpu = (await clients.cpu_seconds() - cpu_before) / args.events
            portal_cpu = (cpu_seconds(portal_pids) - portal_cpu_before) / args.events
            all_p99, lost = pct(slowest, 99), missing
            figures = "; ".join(process_figures(pid) for pid in portal_pids)
            print(f"{clients.count:>8} {clients.failed:>6} {took:>9.1f} "
                  f"{args.events:>6} {missing:>5} {pct(single, 50) * 1000:>11.1f} "
                  f"{pct(single, 99) * 1000:>11.1f} {pct(slowest, 50) * 1000:>10.1f} "
                  f"{all_p99 * 1000:>10.1f} {client_cpu * 1000:>16.1f}"
                  f" {portal_cpu * 1000:>16.1f} {os.getloadavg()[0]:>5.1f}  {figures}",
                  flush=True)
            if clients.count < step:
                print(f"stopped: only {clients.count} of {step} clients connected")
                break
        print()
        for _ in range(args.rest_runs):
            cpu_before, wall_before = cpu_seconds(portal_pids), time.monotonic()
            latencies, errors = await rest_load(base, cookie, args.rest_rate,
                                                args.rest_seconds)
            cpu = cpu_seconds(portal_pids) - cpu_before
            wall = time.monotonic() - wall_before
            rest_p99.append(pct(latencies, 99))
            rest_errors += errors
            # The portal's CPU per request does not depend on the machine's load; the share
            # of a core it got does (a process starved of CPU queues its requests).
            print(f"REST /api/v1/circuits at {args.rest_rate:g}/s for {args.rest_seconds:g} s,"
                  f" {clients.count} sockets connected: "
                  f"p50 {pct(latencies, 50) * 1000:.1f} ms, p99 {rest_p99[-1] * 1000:.1f} ms,"
                  f" max {max(latencies or [0]) * 1000:.1f} ms, "
                  f"{errors} errors of {int(args.rest_rate * args.rest_seconds)}; portal CPU"
                  f" {cpu / max(1, len(latencies)) * 1000:.1f} ms per request,"
                  f" {cpu / wall * 100:.0f} % of a core; load average"
                  f" {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        await clients.close()
    wanted = args.steps[-1]
    rest_median = statistics.median(rest_p99) if rest_p99 else float("nan")
    verdicts = [
        (f"{clients.count} of {wanted} sockets connected", clients.count >= wanted),
        (f"REST p99 at {args.rest_rate:g}/s with them (median of {len(rest_p99)} runs):"
         f" {rest_median * 1000:.1f} ms < 100 ms, {rest_errors} errors",
         rest_median < 0.1 and rest_errors == 0),
        (f"event to all clients p99: {all_p99 * 1000:.0f} ms < 1 s", all_p99 < 1.0),
        (f"events lost: {lost}", lost == 0),
    ]
    print()
    for text, ok in verdicts:
        print(f"verdict: {'ok  ' if ok else 'MISS'} {text}")
    return all(ok for _, ok in verdicts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, choices=(1, 2), default=1,
                        help="portal processes (2: behind nginx)")
    parser.add_argument("--steps", default=None,
                        type=lambda text: [int(n) for n in text.split(",")],
                        help="clients at each step (default 200,500,1000,2000; with two"
                             " processes 1000,2000,4000)")
    parser.add_argument("--events", type=int, default=30, help="events measured per step")
    parser.add_argument("--rest-rate", type=float, default=200.0)
    parser.add_argument("--rest-seconds", type=float, default=10.0)
    parser.add_argument("--rest-runs", type=int, default=3,
                        help="REST runs with the sockets connected (the median is judged)")
    parser.add_argument("--client-procs", type=int, default=os.cpu_count() or 1,
                        help="client processes the Socket.IO clients are spread over")
    args = parser.parse_args()
    if args.steps is None:
        args.steps = [200, 500, 1000, 2000] if args.processes == 1 else [1000, 2000, 4000]
    logging.basicConfig(level=logging.ERROR)
    limit = raise_fd_limit()

    from keyline.wiring import EXAMPLE_INVENTORY, import_inventory, load_inventory_files
    from store.database import open_database
    from store.users import set_password

    started: list[subprocess.Popen[Any]] = []
    ok = False
    with scratch_database() as scratch:
        try:
            url = scratch.url
            with open_database(url, scratch.work_dir, max_size=2) as database:
                import_inventory(database, load_inventory_files([EXAMPLE_INVENTORY]),
                                 [EXAMPLE_INVENTORY])
                with database.pool.connection() as conn:
                    set_password(conn, USER, PASSWORD)
                    port_id = conn.execute(
                        "SELECT a_port_id FROM links WHERE retired_at IS NULL ORDER BY id"
                        " LIMIT 1").fetchone()[0]
            env = {k: v for k, v in os.environ.items() if not k.startswith("KEYLINE_")}
            env.update(KEYLINE_LOG_LEVEL="WARNING", KEYLINE_SERVER__MAX_CONNECTIONS="10000")
            if args.processes > 1:
                env["KEYLINE_SERVER__WEBSOCKET_ONLY"] = "true"
            pids, ports = [], []
            for _ in range(args.processes):
                process, pid, port = start_keyline_serve(url, scratch.work_dir / "portal", env)
                started.append(process)
                pids.append(pid)
                ports.append(port)
            where = f"portal process {pids[0]} (keyline serve)"
            if args.processes > 1:
                nginx, port = start_nginx(scratch.work_dir / "nginx", ports)
                started.append(nginx)
                where = (f"portal processes {', '.join(map(str, pids))} (keyline serve) behind"
                         f" nginx")
            base = f"http://127.0.0.1:{port}"
            load = ", ".join(f"{n:.2f}" for n in os.getloadavg())
            print(f"{where} at {base}; open files limit {limit}; {os.cpu_count()} CPUs;"
                  f" load average {load}; example inventory;"
                  f" clients in {args.client_procs} process(es)", flush=True)
            ok = asyncio.run(run(args, base, url, pids, port_id))
            load = ", ".join(f"{n:.2f}" for n in os.getloadavg())
            print(f"load average at the end: {load}")
        finally:
            for process in reversed(started):
                process.send_signal(signal.SIGTERM)
            for process in reversed(started):
                try:
                    process.wait(60)
                except subprocess.TimeoutExpired:
                    process.kill()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
