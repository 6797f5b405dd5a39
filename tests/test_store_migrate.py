"""Schema migrations: applied once each, in order, atomically; a newer database is refused."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import psycopg
import pytest

from store.database import StoreError
from store.features import detect_features
from store.migrate import (
    MIGRATIONS_DIR,
    MigrationError,
    SchemaTooNew,
    check_schema,
    load_migrations,
    migrate,
    migration_status,
)

SHIPPED = load_migrations()
NAMES = [m.name for m in SHIPPED]
LATEST = SHIPPED[-1].version


def copy_migrations(target: Path, extra: dict[str, str] | None = None) -> Path:
    """The shipped migration files plus `extra` ({file name: SQL}) in a folder of their own."""
    target.mkdir()
    for path in MIGRATIONS_DIR.glob("*.sql"):
        shutil.copy(path, target / path.name)
    for name, text in (extra or {}).items():
        (target / name).write_text(text)
    return target


def table_exists(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", [name]).fetchone()[0]


def test_empty_database_gets_every_migration(empty_db_url: str):
    with psycopg.connect(empty_db_url) as conn:
        before = migration_status(conn)
        assert (before.current, before.latest, before.pending) == (0, LATEST, NAMES)

        assert migrate(conn) == NAMES

        rows = conn.execute("SELECT version, name, checksum, applied_at IS NOT NULL"
                            " FROM schema_version ORDER BY version").fetchall()
        assert rows == [(m.version, m.name, m.checksum, True) for m in SHIPPED]
        for table in ("samples", "metrics", "samples_5min", "store_features", "events"):
            assert table_exists(conn, table), table
        partitioned, hypertable = conn.execute(
            """SELECT (SELECT count(*) FROM pg_partitioned_table
                        WHERE partrelid = 'samples'::regclass),
                      to_regclass('_timescaledb_catalog.hypertable') IS NOT NULL"""
        ).fetchone()
        if detect_features(conn).hypertable:  # TimescaleDB preloaded (the second pass)
            assert (partitioned, hypertable) == (0, True)
            assert conn.execute("SELECT count(*) FROM _timescaledb_catalog.hypertable"
                                " WHERE table_name = 'samples'").fetchone()[0] == 1
        else:  # plain PostgreSQL, or TimescaleDB installed but not preloaded
            assert (partitioned, hypertable) == (1, False)


def test_current_database_is_a_no_op(db):
    assert migrate(db.pool) == []
    status = migration_status(db.pool)
    assert status.current == status.latest == LATEST
    assert status.pending == [] and status.checksum_mismatches == []
    assert check_schema(db.pool).current == LATEST


def test_pending_migration_reported_then_applied(db, tmp_path: Path):
    folder = copy_migrations(tmp_path / "m", {"9001_extra.sql": "CREATE TABLE extra (id int);"})
    status = migration_status(db.pool, directory=folder)
    assert status.pending == ["9001_extra"] and status.latest == 9001
    with pytest.raises(StoreError, match="run 'keyline db migrate'"):
        check_schema(db.pool, directory=folder)

    assert migrate(db.pool, directory=folder) == ["9001_extra"]
    assert migration_status(db.pool, directory=folder).current == 9001


def test_newer_database_is_refused(db):
    with db.pool.connection() as conn:
        conn.execute("INSERT INTO schema_version (version, name, checksum)"
                     " VALUES (%s, 'future', 'x')", [LATEST + 4])
    expected = (f"database schema is at version {LATEST + 4} but this Keyline knows only up"
                f" to {LATEST}: upgrade Keyline")
    with pytest.raises(SchemaTooNew) as error:
        check_schema(db.pool)
    assert str(error.value) == expected
    with pytest.raises(SchemaTooNew):
        migrate(db.pool)
    assert migration_status(db.pool).too_new


def test_failing_migration_leaves_nothing_half_applied(db, tmp_path: Path):
    folder = copy_migrations(tmp_path / "m", {
        "9001_good.sql": "CREATE TABLE good (id int);",
        "9002_broken.sql": "CREATE TABLE half_done (id int);\nINSERT INTO nowhere VALUES (1);",
    })
    with pytest.raises(MigrationError, match="9002_broken failed and was rolled back"):
        migrate(db.pool, directory=folder)

    with db.pool.connection() as conn:
        assert table_exists(conn, "good")  # the file before it stays applied
        assert not table_exists(conn, "half_done")
    status = migration_status(db.pool, directory=folder)
    assert status.current == 9001 and status.pending == ["9002_broken"]


def test_edited_migration_is_reported(db, tmp_path: Path, caplog):
    folder = copy_migrations(tmp_path / "m")
    edited = folder / f"{NAMES[-1]}.sql"
    edited.write_text(edited.read_text() + "\n-- edited after release\n")

    status = migration_status(db.pool, directory=folder)
    assert status.checksum_mismatches == [NAMES[-1]]
    assert status.pending == []
    check_schema(db.pool, directory=folder)  # a warning, not a refusal
    assert f"migration {NAMES[-1]} was edited" in caplog.text


def test_two_processes_migrating_at_once(empty_db_url: str):
    results: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        try:
            with psycopg.connect(empty_db_url) as conn:
                barrier.wait()
                results.append(migrate(conn))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(results, key=len) == [[], NAMES]


def test_misnamed_file_is_an_error(tmp_path: Path):
    folder = copy_migrations(tmp_path / "m", {"4_oops.sql": "SELECT 1;"})
    with pytest.raises(MigrationError, match=r"4_oops\.sql is not named NNNN_name\.sql"):
        load_migrations(folder)
