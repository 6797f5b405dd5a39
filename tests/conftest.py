"""Shared fixtures: one embedded PostgreSQL for the whole session, a fresh database per test.

`pg_server` starts the server once, in a scratch folder under /dev/shm (RAM) when there is
one, else /tmp; never under a home folder, because as root the embedded server opens the
permissions of its parent folders. In RAM, CREATE DATABASE takes about 25 ms instead of about
450 ms on this project's machines' disks (it opens every file of the template one by one).
Its durability settings are turned off: test data need not survive a crash.

TimescaleDB: the session's server does not preload it, so with TimescaleDB installed every
test exercises the migrations' fallback to plain tables. With `KEYLINE_TEST_TIMESCALEDB=1` it
preloads it (`python3 dev.py test` runs the store, chart and SLA tests a second time so), with
TimescaleDB's background workers off: they stay connected to every database that has the
extension, and a database with a session open cannot be copied (the template below).

`db` gives each test its own database with every migration applied, as a `Database` whose
pool is on it. Migrating costs a few hundred milliseconds, so it is done once into the
template database `keyline_template`; each test's database is a copy of it (CREATE DATABASE
... TEMPLATE), which takes a few tens of milliseconds. `empty_db_url` is a fresh database with
nothing in it, for tests of the migrations themselves.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from store.database import Database, open_database
from store.embedded import EmbeddedServer, start_embedded, timescaledb_installed
from store.migrate import migrate

TEMPLATE_DB = "keyline_template"
TEST_TIMESCALEDB = os.environ.get("KEYLINE_TEST_TIMESCALEDB", "") not in ("", "0")
TEST_SERVER_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
TEST_TIMESCALEDB_SETTINGS = {"timescaledb.max_background_workers": "0"}


def pytest_configure(config: pytest.Config) -> None:
    if TEST_TIMESCALEDB and not timescaledb_installed():
        raise pytest.UsageError(
            "KEYLINE_TEST_TIMESCALEDB=1 but TimescaleDB is not installed in the embedded"
            " PostgreSQL: run 'python3 dev.py timescale' first")


def _admin(server: EmbeddedServer, statement: sql.Composable) -> None:
    with psycopg.connect(server.url_for("postgres"), autocommit=True) as conn:
        conn.execute(statement)


def scratch_parent() -> str:
    """Where scratch folders for PostgreSQL data go: RAM if possible, never a home folder."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else "/tmp"


@pytest.fixture
def scratch_dir() -> Iterator[Path]:
    """An empty folder for a test's own embedded server (removed afterwards)."""
    root = Path(tempfile.mkdtemp(prefix="keyline-test-", dir=scratch_parent()))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedServer]:
    """The session's embedded PostgreSQL server (its `keyline` database is left unused)."""
    root = Path(tempfile.mkdtemp(prefix="keyline-test-pg-", dir=scratch_parent()))
    settings = {**TEST_SERVER_SETTINGS, **(TEST_TIMESCALEDB_SETTINGS if TEST_TIMESCALEDB else {})}
    server = start_embedded(root / "data", timescaledb=TEST_TIMESCALEDB, server_settings=settings)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(pg_server: EmbeddedServer) -> str:
    """Name of a database with every migration applied, to copy per test."""
    _admin(pg_server, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE_DB)))
    with psycopg.connect(pg_server.url_for(TEMPLATE_DB)) as conn:
        migrate(conn)
    # A template must have no session open while it is copied: close ours (above) and keep
    # others out (TimescaleDB's background workers connect to every database that has it).
    _admin(pg_server, sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false")
           .format(sql.Identifier(TEMPLATE_DB)))
    return TEMPLATE_DB


@pytest.fixture
def empty_db_url(pg_server: EmbeddedServer) -> Iterator[str]:
    """URL of a new, empty database, dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    _admin(pg_server, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield pg_server.url_for(name)
    finally:
        _admin(pg_server, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


@pytest.fixture
def db(pg_server: EmbeddedServer, template_db: str, tmp_path: Path) -> Iterator[Database]:
    """A new database with the current schema, open as a `Database`; dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    _admin(pg_server, sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
        sql.Identifier(name), sql.Identifier(template_db)))
    database = open_database(pg_server.url_for(name), tmp_path, min_size=1, max_size=4)
    try:
        yield database
    finally:
        database.close()
        _admin(pg_server, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
