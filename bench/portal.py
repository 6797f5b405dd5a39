"""Portal benchmark: concurrent Socket.IO clients of one portal process, event-to-client
latency, and REST latency at a steady request rate.

One portal process (a child process: `create_app` + the live bridge + Werkzeug's threaded
server, as `keyline serve` runs it) on a scratch database holding the example inventory.
This process then opens asyncio python-socketio clients (WebSocket transport, a NOC user's
session cookie, each joining the "noc" room) in steps (default 200, 500, 1000, 2000). At each
step it records status changes in the store as a collector does (store.observations
.record_observations: one port flipping up/down, which publishes an "observation" event), and
measures, per event, the time from just before the commit to the moment each client got the
"status" message carrying that event's id. It prints, per step: clients connected (and
refused or failed), p50/p99 of every single delivery, p50/p99 of "all clients have it" (the
slowest client per event), and the portal's threads and resident memory.

Then REST: GET /api/v1/circuits at a fixed rate (default 200 requests/s, open loop: requests
are started on schedule whatever the answers do) for a few seconds, with the last step's
sockets still connected; it prints p50/p99/max latency and errors.

The clients are spread over several client processes (`--client-procs`, default: one per
CPU), each with its own asyncio event loop; arrival times are taken with time.time() in the
client processes (one clock: same machine). With all 2,000 clients on one event loop, the
bench's own decoding of 2,000 messages (WebSocket inflate, Engine.IO/Socket.IO/JSON decode,
one after another on one core) made up a large part of "all clients have it", although the
machine had CPU to spare; spread over processes, the clients decode in parallel, as real
browsers do. They still run on the same cores as the portal, so their decoding is still part
of the figures (a conservative measure), and the clients' CPU per event is printed in its
own column ("client CPU ms/ev": the client processes' user + system time during the step's
events, divided by the events). `--client-procs 1` measures as before. File descriptor limits
are raised to the hard limit in every process. Only loopback is used.

    python bench/portal.py                          # 200, 500, 1000, 2000 clients
    python bench/portal.py --steps 100,300 --events 20 --rest-seconds 5
    python bench/portal.py --client-procs 1         # all clients on one event loop
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing
import os
import re
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from scratch_database import scratch_database

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PASSWORD = "bench portal password 1"
USER = "noc.wang"


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def serve_portal(url: str, data_dir: str, ports: Any) -> None:
    """The portal process: what `keyline serve` runs, on a free loopback port."""
    raise_fd_limit()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from werkzeug.serving import make_server

    from config.settings import load_settings
    from portal.app import create_app
    from portal.live import start_live
    from store.database import open_database

    database = open_database(url, Path(data_dir), min_size=2, max_size=16)
    settings = load_settings(None, overrides={"data_dir": Path(data_dir),
                                              "database_url": url})
    app = create_app(settings, database)
    start_live(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    server.daemon_threads = True
    ports.put(server.server_port)
    server.serve_forever()


def process_figures(pid: int) -> str:
    status = Path(f"/proc/{pid}/status").read_text()
    threads = re.search(r"Threads:\s+(\d+)", status)
    rss = re.search(r"VmRSS:\s+(\d+) kB", status)
    return (f"{threads.group(1) if threads else '?'} threads, "
            f"{int(rss.group(1)) / 1024:.0f} MiB resident" if rss else "?")


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


class Clients:
    """Many asyncio Socket.IO clients; `received[event id]` = arrival times."""

    def __init__(self, base: str, cookie: str) -> None:
        self.base = base
        self.cookie = cookie
        self.clients: list[Any] = []
        self.received: dict[int, list[float]] = {}
        self.failed = 0

    async def _one(self) -> None:
        import socketio

        client = socketio.AsyncClient(reconnection=False)

        async def on_status(message: dict[str, Any]) -> None:
            self.received.setdefault(message["id"], []).append(time.time())

        client.on("status", on_status)
        try:
            await client.connect(self.base, headers={"Cookie": self.cookie},
                                 transports=["websocket"], wait_timeout=30)
            answer = await client.call("join", {"room": "noc"}, timeout=30)
            if not answer.get("ok"):
                raise RuntimeError(answer)
            self.clients.append(client)
        except Exception:
            self.failed += 1
            with contextlib.suppress(Exception):
                await client.disconnect()

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
        await asyncio.gather(*(c.disconnect() for c in self.clients), return_exceptions=True)


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


async def run(args: argparse.Namespace, base: str, url: str, portal_pid: int,
              port_id: int) -> None:
    cookie = await login_cookie(base)
    latencies, errors = await rest_load(base, cookie, args.rest_rate, args.rest_seconds)
    print(f"REST /api/v1/circuits at {args.rest_rate:g}/s for {args.rest_seconds:g} s, "
          f"no sockets: p50 {pct(latencies, 50) * 1000:.1f} ms, "
          f"p99 {pct(latencies, 99) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms, "
          f"{errors} errors of {int(args.rest_rate * args.rest_seconds)}")
    print()
    print(f"{'clients':>8} {'failed':>6} {'connect s':>9} {'events':>6} {'lost':>5} "
          f"{'each p50 ms':>11} {'each p99 ms':>11} {'all p50 ms':>10} {'all p99 ms':>10}"
          f" {'client CPU ms/ev':>16}  portal process")
    clients = ClientPool(base, cookie, args.client_procs)
    try:
        for step in args.steps:
            took = await clients.grow(step)
            await asyncio.sleep(1.0)
            cpu_before = await clients.cpu_seconds()
            single, slowest, missing = await measure_events(clients, url, port_id,
                                                            args.events)
            client_cpu = (await clients.cpu_seconds() - cpu_before) / args.events
            print(f"{clients.count:>8} {clients.failed:>6} {took:>9.1f} "
                  f"{args.events:>6} {missing:>5} {pct(single, 50) * 1000:>11.1f} "
                  f"{pct(single, 99) * 1000:>11.1f} {pct(slowest, 50) * 1000:>10.1f} "
                  f"{pct(slowest, 99) * 1000:>10.1f} {client_cpu * 1000:>16.1f}  "
                  f"{process_figures(portal_pid)}",
                  flush=True)
            if clients.count < step:
                print(f"stopped: only {clients.count} of {step} clients connected")
                break
        print()
        latencies, errors = await rest_load(base, cookie, args.rest_rate, args.rest_seconds)
        print(f"REST /api/v1/circuits at {args.rest_rate:g}/s for {args.rest_seconds:g} s, "
              f"{clients.count} sockets connected: "
              f"p50 {pct(latencies, 50) * 1000:.1f} ms, p99 {pct(latencies, 99) * 1000:.1f} ms,"
              f" max {max(latencies or [0]) * 1000:.1f} ms, "
              f"{errors} errors of {int(args.rest_rate * args.rest_seconds)}")
    finally:
        await clients.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="200,500,1000,2000",
                        type=lambda text: [int(n) for n in text.split(",")])
    parser.add_argument("--events", type=int, default=30, help="events measured per step")
    parser.add_argument("--rest-rate", type=float, default=200.0)
    parser.add_argument("--rest-seconds", type=float, default=10.0)
    parser.add_argument("--client-procs", type=int, default=os.cpu_count() or 1,
                        help="client processes the Socket.IO clients are spread over")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    limit = raise_fd_limit()

    from keyline.wiring import EXAMPLE_INVENTORY, import_inventory, load_inventory_files
    from store.database import open_database
    from store.users import set_password

    portal = None
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
            ports: Any = multiprocessing.get_context("spawn").Queue()
            portal = multiprocessing.get_context("spawn").Process(
                target=serve_portal, args=(url, str(scratch.work_dir / "portal"), ports),
                daemon=True)
            portal.start()
            base = f"http://127.0.0.1:{ports.get(timeout=60)}"
            print(f"portal pid {portal.pid} at {base}; open files limit {limit}; "
                  f"{os.cpu_count()} CPUs; example inventory; "
                  f"clients in {args.client_procs} process(es)")
            asyncio.run(run(args, base, url, portal.pid or 0, port_id))
        finally:
            if portal is not None:
                portal.terminate()
                portal.join(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
