"""Schema migrations: numbered plain SQL files, applied once each, in order.

The schema of the database is built by the files in `store/migrations/`, named
`NNNN_name.sql` (`0002_timeseries.sql`): the number is the version that file brings the
schema to. `migrate()` applies, in order, every file whose version the database has not
recorded yet, each in its own transaction together with its row in `schema_version`
(version, name, checksum, applied_at); so a file that fails leaves nothing behind, and the
ones before it stay applied. A file is never edited once released: the SHA-256 checksum of
each applied file is recorded, and `migration_status()` reports the files whose text no
longer matches (a new migration is the way to change a schema).

Two processes starting at once (a portal and a collector) must not both migrate: the work is
done under a PostgreSQL advisory lock, and the second one, once it gets the lock, finds
nothing left to do. A database whose schema is newer than this code knows (a newer Keyline
migrated it) is refused by `check_schema()` and by `migrate()`: an older program must not
write into a schema it does not understand.

Migrations are plain SQL so that an operator can read exactly what will run; anything that
depends on the server (is TimescaleDB there?) is decided inside the SQL itself (see
0002_timeseries.sql).

*TimescaleDB installed but not preloaded.* 0002 creates the extension when the server lists it
in `pg_available_extensions`. A server that has the files but does not name `timescaledb` in
`shared_preload_libraries` answers `CREATE EXTENSION` with a FATAL error that ends the
connection, so 0002's own fallback never runs. Released files are never edited, so the check
is made here: on such a server `migrate()` hides the extension from the migrations (a
temporary view of the same name shadows the catalog's for this session only, dropped before
each transaction ends), logs a warning that says what to change, and records the reason in
`store_features`; 0002 then takes its plain-table path.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg_pool import ConnectionPool

from store.database import StoreError
from store.features import timescaledb_preloaded

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

# Session advisory lock serialising migrations (an arbitrary constant: "kmig" in ASCII).
MIGRATION_LOCK_ID = 0x6B6D6967
LOCK_WAIT_S = 120.0

SCHEMA_VERSION_DDL = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


class SchemaTooNew(StoreError):
    """The database was migrated by a newer Keyline than this one."""


class MigrationError(StoreError):
    """A migration file could not be applied (or the set of files is inconsistent)."""


@dataclass(frozen=True)
class Migration:
    """One migration file: `name` is the file name without `.sql` (`0002_timeseries`)."""

    version: int
    name: str
    path: Path
    sql: str
    checksum: str


@dataclass(frozen=True)
class MigrationStatus:
    current: int  # highest version applied in the database (0: none)
    latest: int  # highest version this code has a file for
    pending: list[str] = field(default_factory=list)  # names to apply, in order
    checksum_mismatches: list[str] = field(default_factory=list)  # applied, file since edited
    applied: list[str] = field(default_factory=list)  # names recorded in the database

    @property
    def too_new(self) -> bool:
        return self.current > self.latest


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """The migration files of `directory` (default: store/migrations), in version order."""
    directory = directory or MIGRATIONS_DIR
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = MIGRATION_FILE.match(path.name)
        if not match:
            raise MigrationError(f"migration file {path.name} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in migrations:
            raise MigrationError(
                f"two migration files for version {version}: {migrations[version].path.name}"
                f" and {path.name}"
            )
        data = path.read_bytes()
        migrations[version] = Migration(
            version=version,
            name=path.stem,
            path=path,
            sql=data.decode("utf-8"),
            checksum=hashlib.sha256(data).hexdigest(),
        )
    return [migrations[version] for version in sorted(migrations)]


def migrate(
    pool_or_conn: ConnectionPool | psycopg.Connection, *, directory: Path | None = None
) -> list[str]:
    """Apply every pending migration in version order; return the names applied (empty when
    the schema was already current). Raises SchemaTooNew if the database is ahead of the
    code, MigrationError (nothing of that file kept) if a file fails."""
    migrations = load_migrations(directory)
    with _connection(pool_or_conn, idle=True) as conn, _migration_lock(conn):
        with conn.transaction():
            conn.execute(SCHEMA_VERSION_DDL)
        applied = _applied(conn)
        status = _status(migrations, applied)
        if status.too_new:
            raise _too_new(status)
        done: list[str] = []
        hide_timescaledb = (bool(status.pending)
                            and timescaledb_preload_problem(conn) is not None)
        if hide_timescaledb:
            log.warning("%s: the time-series tables are created as plain PostgreSQL tables."
                        " To use TimescaleDB, add it to shared_preload_libraries, restart the"
                        " server and migrate a new database", timescaledb_preload_problem(conn))
        for migration in migrations:
            if migration.version in applied:
                continue
            log.info("applying migration %s", migration.name)
            started = time.perf_counter()
            try:
                with conn.transaction():
                    if hide_timescaledb:
                        conn.execute(HIDE_TIMESCALEDB)
                    # No parameters: the file goes as one simple query, several statements.
                    conn.execute(migration.sql.encode("utf-8"))
                    if hide_timescaledb:
                        conn.execute(UNHIDE_TIMESCALEDB)
                    conn.execute(
                        "INSERT INTO schema_version (version, name, checksum)"
                        " VALUES (%s, %s, %s)",
                        [migration.version, migration.name, migration.checksum],
                    )
            except psycopg.Error as error:
                raise MigrationError(
                    f"migration {migration.name} failed and was rolled back:"
                    f" {' '.join(str(error).split())}"
                ) from error
            log.info("applied migration %s in %.2f s", migration.name,
                     time.perf_counter() - started)
            done.append(migration.name)
        return done


# The temporary schema is searched before pg_catalog for relation names, so for this session
# `pg_available_extensions` is the view below, which leaves TimescaleDB out.
HIDE_TIMESCALEDB = """
CREATE TEMPORARY VIEW pg_available_extensions AS
    SELECT * FROM pg_catalog.pg_available_extensions WHERE name <> 'timescaledb'"""
NOT_PRELOADED_DETAIL = "installed but not preloaded (shared_preload_libraries)"
UNHIDE_TIMESCALEDB = f"""
DROP VIEW pg_temp.pg_available_extensions;
DO $record$ BEGIN
    IF to_regclass('store_features') IS NOT NULL THEN
        UPDATE store_features SET detail = '{NOT_PRELOADED_DETAIL}'
         WHERE feature = 'timescaledb' AND NOT enabled AND detail = 'extension not available';
    END IF;
END $record$"""


def timescaledb_preload_problem(conn: psycopg.Connection) -> str | None:
    """Why creating the TimescaleDB extension would end the connection on this server, or
    None: it is installed (its files are there) but `shared_preload_libraries` does not name
    it, and it is not already created in this database."""
    with conn.transaction():
        available, created, preload = conn.execute(
            """SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions
                               WHERE name = 'timescaledb'),
                      EXISTS (SELECT 1 FROM pg_catalog.pg_extension
                               WHERE extname = 'timescaledb'),
                      current_setting('shared_preload_libraries')"""
        ).fetchone()
    if not available or created or timescaledb_preloaded(conn):
        return None
    return ("TimescaleDB is installed on this PostgreSQL server but not preloaded"
            f" (shared_preload_libraries = {preload!r})")


def migration_status(
    pool_or_conn: ConnectionPool | psycopg.Connection, *, directory: Path | None = None
) -> MigrationStatus:
    """Where the database's schema stands relative to this code's migration files. Reads
    only: works on a database that was never migrated (current 0, everything pending)."""
    migrations = load_migrations(directory)
    with _connection(pool_or_conn) as conn:
        applied = _applied(conn)
    return _status(migrations, applied)


def check_schema(
    pool_or_conn: ConnectionPool | psycopg.Connection, *, directory: Path | None = None
) -> MigrationStatus:
    """Refuse a database this code must not use: raise SchemaTooNew if its schema is newer
    than this code knows, StoreError if migrations are pending. Returns the status."""
    status = migration_status(pool_or_conn, directory=directory)
    if status.too_new:
        raise _too_new(status)
    if status.pending:
        raise StoreError(
            f"database schema is at version {status.current} but this Keyline needs"
            f" {status.latest}: run 'keyline db migrate'"
        )
    for name in status.checksum_mismatches:
        log.warning("migration %s was edited after it was applied to this database", name)
    return status


def _too_new(status: MigrationStatus) -> SchemaTooNew:
    return SchemaTooNew(
        f"database schema is at version {status.current} but this Keyline knows only up to"
        f" {status.latest}: upgrade Keyline"
    )


def _status(migrations: list[Migration], applied: dict[int, tuple[str, str]]) -> MigrationStatus:
    known = {migration.version: migration for migration in migrations}
    return MigrationStatus(
        current=max(applied, default=0),
        latest=max(known, default=0),
        pending=[m.name for m in migrations if m.version not in applied],
        checksum_mismatches=[
            m.name for m in migrations
            if m.version in applied and applied[m.version][1] != m.checksum
        ],
        applied=[applied[version][0] for version in sorted(applied)],
    )


def _applied(conn: psycopg.Connection) -> dict[int, tuple[str, str]]:
    """version -> (name, checksum) of the migrations recorded in the database."""
    with conn.transaction():
        exists = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return {}
        rows = conn.execute("SELECT version, name, checksum FROM schema_version").fetchall()
    return {version: (name, checksum) for version, name, checksum in rows}


@contextmanager
def _connection(
    pool_or_conn: ConnectionPool | psycopg.Connection, *, idle: bool = False
) -> Iterator[psycopg.Connection]:
    """A connection from the pool, or the one given (which must not be inside a transaction
    if `idle`: migrating commits one transaction per file)."""
    if isinstance(pool_or_conn, psycopg.Connection):
        idle_status = psycopg.pq.TransactionStatus.IDLE
        if idle and pool_or_conn.info.transaction_status != idle_status:
            raise StoreError("migrations need a connection that is not inside a transaction")
        yield pool_or_conn
    else:
        with pool_or_conn.connection() as conn:
            yield conn


@contextmanager
def _migration_lock(conn: psycopg.Connection) -> Iterator[None]:
    """Hold the migration advisory lock (session level, so it spans the per-file
    transactions); wait up to LOCK_WAIT_S for another process to finish."""
    deadline = time.monotonic() + LOCK_WAIT_S
    waited = False
    while True:
        with conn.transaction():
            got = conn.execute("SELECT pg_try_advisory_lock(%s)", [MIGRATION_LOCK_ID]).fetchone()
        if got and got[0]:
            break
        if time.monotonic() > deadline:
            raise StoreError(
                f"another process has been migrating this database for over {LOCK_WAIT_S:.0f} s"
            )
        if not waited:
            log.info("waiting for another process to finish migrating")
            waited = True
        time.sleep(0.2)
    try:
        yield
    finally:
        if not conn.closed:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_ID])
