"""TimescaleDB for real: installed but not preloaded (the clean fallback), and preloaded (every
feature on, each checked on its own in TimescaleDB's catalog and by what it does).

Each test runs its own embedded server in RAM (started with or without the preload whatever
the session's server does), so both run in every pass of `python3 dev.py test`. They skip
where TimescaleDB is not installed in the venv's embedded PostgreSQL (`python3 dev.py
timescale` builds it from the team's shared folder).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from lab.recordings import shared_dir
from store.embedded import EmbeddedServer, start_embedded, timescaledb_installed
from store.features import FEATURES, StoreFeatures, detect_features
from store.migrate import NOT_PRELOADED_DETAIL, load_migrations, migrate


def _not_installed_reason() -> str:
    source = shared_dir() / "timescaledb" / "tsdb-2.29.2.tar.gz"
    return ("TimescaleDB is not installed in the embedded PostgreSQL: `python3 dev.py timescale`"
            f" builds it from {source}"
            + ("" if source.exists() else " (not there: KEYLINE_SHARED_DIR names the folder)"))


pytestmark = pytest.mark.skipif(not timescaledb_installed(), reason=_not_installed_reason())

DAY = timedelta(days=1)
SETTINGS = {"fsync": "off", "synchronous_commit": "off"}  # test data need not survive a crash


@pytest.fixture
def data_dir(scratch_dir: Path) -> Path:
    return scratch_dir / "data"


@pytest.fixture
def preloaded_server(data_dir: Path) -> Iterator[EmbeddedServer]:
    """TimescaleDB preloaded, its background workers on: as Keyline runs it."""
    server = start_embedded(data_dir, timescaledb=True, server_settings=SETTINGS)
    try:
        yield server
    finally:
        server.stop()


def _new_database(server: EmbeddedServer, name: str) -> str:
    with psycopg.connect(server.url_for("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server.url_for(name)


def _db_status(url: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYLINE_")}
    result = subprocess.run([sys.executable, "-m", "keyline", "--database-url", url, "db",
                             "status"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _feature_lines(status: str) -> dict[str, str]:
    """`keyline db status`'s feature lines: label -> the line."""
    lines = [line.strip() for line in status.splitlines() if line.startswith("  ")]
    return {line[5:].split(":")[0]: line for line in lines}


def test_installed_not_preloaded_migrates_to_plain_tables_and_says_why(data_dir: Path, caplog,
                                                                      request):
    plain_server = start_embedded(data_dir, timescaledb=False, server_settings=SETTINGS)
    request.addfinalizer(plain_server.stop)  # idempotent: also stopped below
    url = _new_database(plain_server, "fallback")
    with psycopg.connect(url, autocommit=True) as conn:
        installed, preload = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'),"
            " current_setting('shared_preload_libraries')").fetchone()
        assert installed and "timescaledb" not in preload  # the case of the issue

        caplog.set_level(logging.WARNING, logger="store.migrate")
        assert migrate(conn) == [m.name for m in load_migrations()]  # no FATAL, all applied
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("not preloaded" in m and "shared_preload_libraries" in m for m in warnings)

        assert detect_features(conn) == StoreFeatures()  # everything off
        assert not conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
        ).fetchone()[0]
        assert conn.execute("SELECT count(*) FROM pg_partitioned_table"
                            " WHERE partrelid = 'samples'::regclass").fetchone()[0] == 1
        assert conn.execute("SELECT relkind FROM pg_class WHERE oid = 'samples_5min'::regclass"
                            ).fetchone()[0] == "r"
        assert conn.execute("SELECT detail FROM store_features WHERE feature = 'timescaledb'"
                            ).fetchone()[0] == NOT_PRELOADED_DETAIL

    status = _db_status(url)
    assert "Server: TimescaleDB 2.29.2 installed but not preloaded" in status
    lines = _feature_lines(status)
    assert lines["TimescaleDB extension"] == (
        f"off  TimescaleDB extension: {NOT_PRELOADED_DETAIL}")
    assert lines["samples as a hypertable (else partitioned by day)"].startswith("off")

    # Started again preloading it (as Keyline does once it is installed): the database keeps
    # its plain tables and works; db status says why TimescaleDB is still off there.
    plain_server.stop()
    server = start_embedded(data_dir, timescaledb=True, server_settings=SETTINGS)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            assert migrate(conn) == []
            assert detect_features(conn) == StoreFeatures()
            conn.execute("SELECT keyline_ensure_sample_partitions(now(), now())")
            conn.execute("INSERT INTO samples VALUES (now(), 1, 1, 1.0)")
        status = _db_status(url)
    finally:
        server.stop()
    assert "Server: TimescaleDB 2.29.2 installed and preloaded" in status
    assert _feature_lines(status)["TimescaleDB extension"] == (
        f"off  TimescaleDB extension: {NOT_PRELOADED_DETAIL}; the server preloads it now, but"
        " this database's time-series tables were made without it and stay plain")


def test_preloaded_every_feature_on_and_working(preloaded_server: EmbeddedServer):
    url = _new_database(preloaded_server, "timescale")
    now = datetime.now(UTC).replace(microsecond=0)
    # autocommit: TimescaleDB's jobs and refreshes commit as they go (no transaction block)
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        features = detect_features(conn)
        assert {name: getattr(features, name) for name in FEATURES} == dict.fromkeys(
            FEATURES, True)

        # One by one, in TimescaleDB's own catalog.
        assert conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
                            ).fetchone()[0] == "2.29.2"
        assert conn.execute("SHOW timescaledb.telemetry_level").fetchone()[0] == "off"
        assert conn.execute("SELECT count(*) FROM timescaledb_information.hypertables"
                            " WHERE hypertable_name = 'samples'").fetchone()[0] == 1
        segment_by = conn.execute(
            "SELECT array_agg(attname ORDER BY segmentby_column_index)"
            "  FROM timescaledb_information.compression_settings"
            " WHERE hypertable_name = 'samples' AND segmentby_column_index IS NOT NULL"
        ).fetchone()[0]
        assert segment_by == ["object_id", "metric_id"]
        jobs = dict(conn.execute(
            "SELECT proc_name, job_id FROM timescaledb_information.jobs"
            " WHERE hypertable_name = 'samples'").fetchall())
        assert set(jobs) == {"policy_compression", "policy_retention"}
        assert conn.execute(
            "SELECT view_name FROM timescaledb_information.continuous_aggregates"
            " WHERE view_name = 'samples_5min'").fetchone()[0] == "samples_5min"

        # What they do: samples of 100 days ago, 10 days ago and now (one series).
        times = [now - 100 * DAY, now - 10 * DAY, now - timedelta(minutes=10)]
        with conn.cursor().copy(
                "COPY samples (time, object_id, metric_id, value) FROM STDIN") as copy:
            for start in times:
                for n in range(10):  # one sample a second: 10 in one 5-minute bucket
                    copy.write_row((start + timedelta(seconds=n), 7, 1, float(n)))
        assert _chunks(conn) == 3

        conn.execute("CALL run_job(%s)", [jobs["policy_compression"]])  # older than 7 days
        compressed = conn.execute(
            "SELECT count(*) FROM timescaledb_information.chunks"
            " WHERE hypertable_name = 'samples' AND is_compressed").fetchone()[0]
        assert compressed == 2
        assert conn.execute("SELECT count(*), sum(value) FROM samples").fetchone() == (30, 135.0)

        conn.execute("CALL run_job(%s)", [jobs["policy_retention"]])  # older than 90 days
        assert _chunks(conn) == 2
        assert conn.execute("SELECT min(time) FROM samples").fetchone()[0] == times[1]

        conn.execute("CALL refresh_continuous_aggregate('samples_5min', %s, %s)",
                     [now - 20 * DAY, now])
        rows = conn.execute(
            "SELECT avg_value, min_value, max_value, sample_count FROM samples_5min"
            " WHERE object_id = 7 ORDER BY bucket").fetchall()
    # the 10-day-old batch (from a compressed chunk) and the recent one; each may straddle
    # a bucket boundary, so compare totals
    assert sum(row[3] for row in rows) == 20
    assert min(row[1] for row in rows) == 0.0 and max(row[2] for row in rows) == 9.0

    status = _db_status(url)
    assert "Server: TimescaleDB 2.29.2 installed and preloaded" in status
    lines = _feature_lines(status)
    for feature in ("TimescaleDB extension", "compression of old samples",
                    "samples as a hypertable (else partitioned by day)",
                    "retention policy on samples (else old partitions dropped by Keyline)",
                    "samples_5min as a continuous aggregate (else a table)"):
        assert lines[feature].startswith("on "), status


def _chunks(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM show_chunks('samples')").fetchone()[0]
