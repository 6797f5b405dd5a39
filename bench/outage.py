"""A store outage under a collector's load: what the spool takes, how fast it gives it back.

The collector's write path (collectors/spool.py `SpooledStore`: every batch to disk first,
forwarded to the store by its own thread) is fed what the collection service hands it for
`--devices` devices of `--ports` ports polled every `--interval-s` seconds: per port per poll
the ten samples of collectors/service.py (in/out bit/s, utilization, errors, discards, oper
and admin status), per device its response time, in one batch a second, and now and then an
observation. The store is taken away for `--outage-s` seconds (the scratch database refuses
connections and its sessions are killed, as when the server goes down), then given back.
Printed, medians where there are several figures:

    spooled_samples_per_s   samples written to the spool per second during the outage
                            (what was offered, and whether the spool kept up: "lag" is
                            the number of batches handed over and not yet on disk, at most)
    replay_samples_per_s    samples forwarded per second after the store came back
    store_back_to_live_s    from the store back to the spool empty again (the backlog
                            forwarded and new batches going straight through)
    rss_growth_mib          the process's resident memory at the end of the outage minus at
                            its start (the spool holds the backlog on disk, not in memory)

    .venv/bin/python bench/outage.py [--devices 500] [--ports 10] [--interval-s 10]
                                     [--outage-s 300] [--url postgresql://...]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scratch_database import scratch_database

from collectors.model import Observation, Sample
from collectors.spool import SpooledStore

PORT_METRICS = ("if_in_bps", "if_out_bps", "if_in_utilization_pct", "if_out_utilization_pct",
                "if_in_errors_per_s", "if_out_errors_per_s", "if_in_discards_per_s",
                "if_out_discards_per_s", "if_oper_status", "if_admin_status")


def rss_mib() -> float:
    for line in open("/proc/self/status"):  # noqa: SIM115 (read once, closed by GC)
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def store_away(url: str) -> object:
    """The database refuses connections and its sessions are killed; given back on exit."""
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    admin_url = psycopg.conninfo.make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(
            sql.Identifier(name)))
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                      " WHERE datname = %s AND pid <> pg_backend_pid()", [name])
        try:
            yield
        finally:
            admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(
                sql.Identifier(name)))


class Producer:
    """One batch a second of what the collection service hands the spool."""

    def __init__(self, spool: SpooledStore, devices: int, ports: int, interval_s: float):
        self.spool = spool
        self.devices = devices
        self.ports = ports
        self.interval_s = interval_s
        self.samples = 0
        self.observations = 0
        self.max_lag = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Producer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        second = 0
        while not self._stop.wait(1.0):
            now = datetime.now(UTC)
            # the devices polled in this second: a 1/interval share of them
            share = [d for d in range(self.devices)
                     if d % max(1, int(self.interval_s)) == second % max(1, int(self.interval_s))]
            batch = []
            for device in share:
                base = 1_000_000 + device * 100
                batch.append(Sample(now, base, "snmp_response_ms", 42.0))
                for port in range(1, self.ports + 1):
                    batch.extend(Sample(now, base + port, metric, 1.0)
                                 for metric in PORT_METRICS)
            self.spool.write_samples(batch)
            self.samples += len(batch)
            if second % 5 == 0:
                self.spool.write_observations([Observation(
                    now, 1_000_001, "oper_status", None, "down" if second % 10 else "up",
                    "poll")])
                self.observations += 1
            self.max_lag = max(self.max_lag, self.spool.stats().pending_batches)
            second += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--ports", type=int, default=10)
    parser.add_argument("--interval-s", type=float, default=10.0)
    parser.add_argument("--outage-s", type=float, default=300.0)
    parser.add_argument("--url", help="an admin URL of a server to make the scratch database"
                                      " on (default: an embedded server of the run)")
    args = parser.parse_args()
    with scratch_database(args.url) as scratch:
        print(f"# {scratch.description}; {args.devices} devices x {args.ports} ports every "
              f"{args.interval_s:g} s; outage {args.outage_s:g} s", flush=True)
        spool = SpooledStore(scratch.url, scratch.work_dir / "spool",
                             max_bytes=4 * 1024**3).start()
        producer = Producer(spool, args.devices, args.ports, args.interval_s).start()
        try:
            time.sleep(5)  # steady state, store up
            with store_away(scratch.url):
                rss0, samples0, t0 = rss_mib(), producer.samples, time.monotonic()
                while spool.stats().store_available and time.monotonic() - t0 < 30:
                    time.sleep(0.1)
                time.sleep(max(0.0, args.outage_s - (time.monotonic() - t0)))
                spooled = producer.samples - samples0
                outage_s = time.monotonic() - t0
                spool.flush(30)
                rss1 = rss_mib()
                backlog = spool.stats().spool_bytes
            back = time.monotonic()
            samples_back = producer.samples
            while spool.spooling and time.monotonic() - back < 3600:
                time.sleep(0.2)
            live_s = time.monotonic() - back
            forwarded = spooled + (producer.samples - samples_back)  # the backlog, and more
        finally:
            producer.stop()
            spool.close()
        offered = args.devices / args.interval_s * (1 + args.ports * len(PORT_METRICS))
        print(f"{'spooled_samples_per_s':<24} {spooled / outage_s:>12,.0f}  "
              f"(offered {offered:,.0f}; spool writer lag at most {producer.max_lag} batches)")
        print(f"{'backlog_bytes':<24} {backlog:>12,}")
        print(f"{'replay_samples_per_s':<24} {forwarded / live_s:>12,.0f}")
        print(f"{'store_back_to_live_s':<24} {live_s:>12.1f}")
        print(f"{'rss_growth_mib':<24} {rss1 - rss0:>12.1f}")

if __name__ == "__main__":
    main()
