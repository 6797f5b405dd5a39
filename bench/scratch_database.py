"""A scratch PostgreSQL database for one benchmark run.

A benchmark must not touch anyone's data, yet should measure a real server: it makes its own
database, on the server `--url` names or, by default, on an embedded PostgreSQL started for
the run (store.embedded), applies the migrations, and drops everything it made afterwards.

    with scratch_database(args.url) as scratch:
        print(scratch.description)      # "PostgreSQL 18.6 at ... (embedded, temporary)"
        ...                             # scratch.url, scratch.work_dir
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from store.database import redact_url
from store.migrate import migrate


@dataclass(frozen=True)
class ScratchDatabase:
    url: str  # the migrated scratch database
    description: str  # server version and where, secrets redacted
    work_dir: Path  # a temporary folder of the run, removed with it


@contextmanager
def scratch_database(admin_url: str | None = None) -> Iterator[ScratchDatabase]:
    """A migrated database of its own on `admin_url`'s server (default: an embedded server
    started now); dropped, and the server stopped, on exit."""
    work_dir = Path(tempfile.mkdtemp(prefix="keyline-bench-", dir="/tmp"))
    server = None
    try:
        if admin_url is None:
            from store.embedded import start_embedded

            server = start_embedded(work_dir / "data")
            admin_url = server.url
        name = f"keyline_bench_{os.getpid()}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            version = conn.execute("SHOW server_version").fetchone()[0]
        try:
            url = psycopg.conninfo.make_conninfo(admin_url, dbname=name)
            with psycopg.connect(url) as conn:
                migrate(conn)
            yield ScratchDatabase(
                url, f"PostgreSQL {version} at {redact_url(admin_url)}"
                     f"{' (embedded, temporary)' if server else ''}", work_dir)
        finally:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work_dir, ignore_errors=True)
