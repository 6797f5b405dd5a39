"""The pool's check of a borrowed connection (store.database.IdleCheck): every borrow by
default; in the portal's server process only for a connection idle for a while, so that
one used a moment ago costs no round trip. Checked against a real PostgreSQL whose backend
is killed between two borrows."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from store.database import Database, open_database


def _kill_backend_of_the_pooled_connection(database: Database, url: str) -> None:
    with database.pool.connection() as conn:
        pid = conn.info.backend_pid
    with psycopg.connect(url, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone()[0]


def test_by_default_a_connection_that_died_is_replaced_before_it_is_handed_out(
        empty_db_url: str, tmp_path: Path) -> None:
    with open_database(empty_db_url, tmp_path, min_size=1, max_size=1) as database:
        _kill_backend_of_the_pooled_connection(database, empty_db_url)
        with database.pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_connection_used_within_the_idle_time_is_handed_out_unchecked(
        empty_db_url: str, tmp_path: Path) -> None:
    with open_database(empty_db_url, tmp_path, min_size=1, max_size=1,
                       check_after_idle_s=3600) as database:
        _kill_backend_of_the_pooled_connection(database, empty_db_url)
        with pytest.raises(psycopg.OperationalError), database.pool.connection() as conn:
            conn.execute("SELECT 1")
        # The pool replaced the broken connection: the next borrow works.
        with database.pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_connection_idle_longer_than_the_idle_time_is_checked(
        empty_db_url: str, tmp_path: Path) -> None:
    idle_s = 0.2
    with open_database(empty_db_url, tmp_path, min_size=1, max_size=1,
                       check_after_idle_s=idle_s) as database:
        _kill_backend_of_the_pooled_connection(database, empty_db_url)
        time.sleep(idle_s * 2)  # a loaded machine only sleeps longer
        with database.pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
