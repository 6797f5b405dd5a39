"""Ingest benchmark: samples/s through SampleWriter next to raw binary COPY of the same rows.

Both paths write the same rows into the same `samples` table of the same database, in the
same batches (one transaction per `--batch-rows`), in alternating order over several rounds
(the table is emptied before each run); the medians are compared. The raw path is the
fastest plain use of psycopg: rows already carrying metric ids, `copy.write_row` in a loop.
The writer path starts from rows with metric *names*, as a collector produces them, and does
everything SampleWriter does: map names to ids, make the day's partitions, COPY, commit.

    python bench/ingest.py                 # embedded PostgreSQL in a temporary dir under /tmp
    python bench/ingest.py --url URL       # a server of yours: uses a scratch database on it

With --url, a database `keyline_bench_<pid>` is created on that server (the role needs
CREATEDB) and dropped at the end; nothing else on the server is touched.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg
from scratch_database import scratch_database

from store.database import open_database
from store.timeseries import COPY_SAMPLES, SAMPLE_TYPES, SampleWriter

METRICS = ("if_in_bps", "if_out_bps", "if_in_errors_ps", "if_out_errors_ps", "if_in_discards_ps",
           "if_out_discards_ps", "if_oper_up", "rtt_ms", "jitter_ms", "loss_pct")


def make_rows(count: int, objects: int) -> list[tuple[datetime, int, str, float]]:
    """`count` samples as a poller makes them: every object x metric, once a minute, today."""
    rng = random.Random(42)
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start += timedelta(minutes=1)
    per_round = objects * len(METRICS)
    rows = []
    for n in range(count):
        round_number, rest = divmod(n, per_round)
        object_index, metric_index = divmod(rest, len(METRICS))
        rows.append((start + timedelta(seconds=60 * round_number), 1_000_000 + object_index,
                     METRICS[metric_index], rng.random() * 1e9))
    return rows


def run_raw(url: str, rows: list[tuple], batch_rows: int) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) to COPY `rows` (with metric ids)."""
    with psycopg.connect(url) as conn:
        started, cpu_started = time.perf_counter(), time.process_time()
        for start in range(0, len(rows), batch_rows):
            with conn.transaction(), conn.cursor() as cursor, \
                    cursor.copy(COPY_SAMPLES) as copy:
                copy.set_types(SAMPLE_TYPES)
                for row in rows[start:start + batch_rows]:
                    copy.write_row(row)
        return time.perf_counter() - started, time.process_time() - cpu_started


def run_writer(pool, rows: list[tuple], batch_rows: int) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) to write `rows` (with metric names)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    with SampleWriter(pool, batch_rows=batch_rows) as writer:
        writer.add_many(rows)
    return time.perf_counter() - started, time.process_time() - cpu_started


def reset(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE samples")
        # So that a checkpoint does not land inside a timed run (needs the privilege).
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="PostgreSQL server to use (a scratch database is made)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--objects", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-rows", type=int, default=50_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with scratch_database(args.url) as scratch:
        url = scratch.url
        named_rows = make_rows(args.rows, args.objects)
        with open_database(url, scratch.work_dir, max_size=2) as database:
            with database.pool.connection() as conn:
                ids = dict(conn.execute("SELECT name, id FROM metrics").fetchall())
                # The raw path needs the day's partitions too (plain-table mode).
                conn.execute("SELECT keyline_ensure_sample_partitions(%s, %s)",
                             [named_rows[0][0], named_rows[-1][0]])
            id_rows = [(t, o, ids[m], v) for t, o, m, v in named_rows]
            print(scratch.description)
            print(f"{args.rows:,} rows per run, batches of {args.batch_rows:,},"
                  f" {args.rounds} rounds alternating\n")
            print(f"{'round':>5}  {'raw COPY rows/s':>16}  {'SampleWriter rows/s':>20}"
                  f"  {'client CPU us/row raw, writer':>30}")
            raw_rates, writer_rates, raw_cpu, writer_cpu = [], [], [], []
            for round_number in range(1, args.rounds + 1):
                order = ("raw", "writer") if round_number % 2 else ("writer", "raw")
                for path in order:
                    reset(url)
                    if path == "raw":
                        wall_s, cpu_s = run_raw(url, id_rows, args.batch_rows)
                        raw_rates.append(args.rows / wall_s)
                        raw_cpu.append(cpu_s / args.rows * 1e6)
                    else:
                        wall_s, cpu_s = run_writer(database.pool, named_rows, args.batch_rows)
                        writer_rates.append(args.rows / wall_s)
                        writer_cpu.append(cpu_s / args.rows * 1e6)
                print(f"{round_number:>5}  {raw_rates[-1]:>16,.0f}  {writer_rates[-1]:>20,.0f}"
                      f"  {raw_cpu[-1]:>24.2f}, {writer_cpu[-1]:.2f}")
            with database.pool.connection() as conn:
                stored = conn.execute("SELECT count(*) FROM samples").fetchone()[0]
            assert stored == args.rows, f"expected {args.rows} rows stored, found {stored}"
        raw_median = statistics.median(raw_rates)
        writer_median = statistics.median(writer_rates)
        print(f"\nmedian raw binary COPY: {raw_median:>12,.0f} samples/s")
        print(f"median SampleWriter:    {writer_median:>12,.0f} samples/s")
        print(f"ratio writer / raw:     {writer_median / raw_median:>12.2f}")
        print(f"client CPU per row:     raw {statistics.median(raw_cpu):.2f} us,"
              f" writer {statistics.median(writer_cpu):.2f} us (the rest is the server)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
