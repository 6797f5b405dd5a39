"""Alarm pipeline benchmark: a burst of 10,000 link traps through the whole pipeline.

The example inventory is imported into a scratch database and an AlarmService runs on it,
as in production: observations recorded with their "observation" events (what the collector
does with each trap it receives), the service's subscriber hears them, every stage runs
(observe, debounce, dedupe, correlate against the example topology, suppress) and the
result is saved and announced as "alarm.*" events in one transaction per step. A second
subscriber, standing for the portal, timestamps every alarm event as it arrives.

The burst sets ports down and up in turn across every linked port of the example network,
as fast as the store takes them (batches of `--batch` observations, as the collector
flushes). Debounce delays are 0 and flap detection is off, so every trap must produce an
alarm change; the figures are:

- observations processed per second: traps in the burst / time from the first trap recorded
  to the last alarm event received;
- trap-to-alarm latency (p50, p99): from a trap's arrival (the observation's timestamp, taken
  when it is handed to the store) to the arrival at the listener of the first alarm event for
  its port whose state time is at or after it (changes of one port within one pipeline step
  are merged into one event);
- for comparison, the pipeline's in-memory stages alone (no store) over the same burst.

    python bench/alarms.py                 # embedded PostgreSQL in a temporary dir under /tmp
    python bench/alarms.py --url URL       # a server of yours: uses a scratch database on it
"""

from __future__ import annotations

import argparse
import bisect
import logging
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from scratch_database import scratch_database

# Run as a script, this file's folder comes first on sys.path, and this file is named like
# the package it measures: take the folder off so that `alarms` is the package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

from alarms.pipeline import AlarmPipeline, scope_index
from alarms.rules import AlarmSettings
from alarms.service import AlarmService
from collectors.model import Observation
from config.inventory.loader import load_inventory
from keyline.wiring import EXAMPLE_INVENTORY
from store.database import open_database
from store.events import Event, Subscriber
from store.inventory import apply_inventory
from store.observations import record_observations
from topology.graph import build_graph, load_snapshot
from topology.impact import build_index
from topology.paths import compute_paths

SETTINGS = AlarmSettings(raise_after_s=0, clear_after_s=0, infer_after_s=0,
                         flap_max_changes=1000, flap_window_s=1, tick_interval_s=0.05,
                         thresholds=[])


def burst(ports: list[int], count: int) -> list[tuple[int, str]]:
    """(port, new state) for `count` traps: each port goes down, then up, in turn."""
    states: dict[int, str] = {}
    out = []
    for n in range(count):
        port = ports[n % len(ports)]
        new = "down" if states.get(port, "up") == "up" else "up"
        states[port] = new
        out.append((port, new))
    return out


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def in_memory(snapshot, index, traps: list[tuple[int, str]], batch: int) -> float:
    """Observations per second through the stages alone, no store."""
    pipeline = AlarmPipeline(SETTINGS, index=index, scope=scope_index(snapshot, index))
    started = time.perf_counter()
    for start in range(0, len(traps), batch):
        now = datetime.now(UTC)
        pipeline.process([Observation(now, port, "oper_status", None, new, "trap")
                          for port, new in traps[start:start + batch]], now)
    return len(traps) / (time.perf_counter() - started)


def run(url: str, traps_count: int, batch: int) -> None:
    inventory = load_inventory([EXAMPLE_INVENTORY])
    with open_database(url, Path(tempfile.gettempdir()), max_size=4) as database:
        with database.pool.connection() as conn:
            apply_inventory(conn, inventory)
            snapshot = load_snapshot(conn)
        graph = build_graph(snapshot)
        index = build_index(graph, snapshot, compute_paths(graph, snapshot))
        ports = sorted(p for p in snapshot.ports if p in graph.graph["port_links"])
        traps = burst(ports, traps_count)
        print(f"{traps_count:,} traps over {len(ports)} linked ports of the example network "
              f"({len(snapshot.devices)} devices, {len(snapshot.circuits)} circuits), "
              f"batches of {batch}\n")

        received: dict[int, list[tuple[datetime, float]]] = defaultdict(list)
        lock = threading.Lock()

        def on_alarm(event: Event) -> None:
            arrived = time.time()
            p = event.payload
            if p.get("object_kind") != "port" or p.get("type") != "link_down":
                return
            state_time = max(datetime.fromisoformat(t) for t in
                             (p["first_seen"], p["last_seen"], p["cleared_at"]) if t)
            with lock:
                received[p["object_id"]].append((state_time, arrived))

        listener = Subscriber(database.url)
        listener.subscribe("alarm.", on_alarm)
        listener.start()
        service = AlarmService(database.pool, database.url, SETTINGS)
        service.start()
        sent: list[tuple[int, datetime]] = []
        try:
            started = time.time()
            with database.pool.connection() as conn:
                for start in range(0, len(traps), batch):
                    now = datetime.now(UTC)
                    chunk = [Observation(now, port, "oper_status", None, new, "trap")
                             for port, new in traps[start:start + batch]]
                    record_observations(conn, chunk)
                    conn.commit()
                    sent += [(o.object_id, o.time) for o in chunk]
            recorded_s = time.time() - started
            deadline = time.monotonic() + 120
            latencies: list[float] = []
            while time.monotonic() < deadline:
                with lock:
                    events = {k: sorted(v) for k, v in received.items()}
                latencies = []
                for port, at in sent:
                    seen = events.get(port, [])
                    i = bisect.bisect_left(seen, (at, 0.0))
                    if i == len(seen):
                        break
                    latencies.append(min(arrived for _, arrived in seen[i:]) - at.timestamp())
                if len(latencies) == len(sent):
                    break
                time.sleep(0.1)
            finished = max(arrived for v in received.values() for _, arrived in v)
        finally:
            service.stop()
            listener.stop()
        if len(latencies) < len(sent):
            print(f"only {len(latencies):,} of {len(sent):,} traps led to an alarm event "
                  "within 120 s", file=sys.stderr)
            sys.exit(1)
        total_s = finished - started
        print(f"recorded (observations + events):  {traps_count / recorded_s:>10,.0f} traps/s")
        print(f"through the whole pipeline:        {traps_count / total_s:>10,.0f} "
              f"observations/s ({total_s:.2f} s for the burst, {service.stats.steps:,} steps)")
        print(f"trap to alarm event, p50:          {statistics.median(latencies) * 1000:>10,.1f}"
              " ms")
        print(f"trap to alarm event, p99:          {percentile(latencies, 99) * 1000:>10,.1f} ms")
        print(f"trap to alarm event, max:          {max(latencies) * 1000:>10,.1f} ms")
        print(f"stages alone, in memory:           "
              f"{in_memory(snapshot, index, traps, batch):>10,.0f} observations/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="PostgreSQL server to use (a scratch database is made)")
    parser.add_argument("--traps", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=50,
                        help="observations per store transaction, as the collector flushes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with scratch_database(args.url) as scratch:
        print(scratch.description)
        run(scratch.url, args.traps, args.batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
