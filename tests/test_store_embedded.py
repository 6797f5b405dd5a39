"""The embedded server and opening the database: start, reuse, stop; passwords never shown."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import psycopg
import pytest

from store.database import StoreError, open_database, redact_url
from store.embedded import start_embedded


@pytest.fixture
def data_dir(scratch_dir: Path) -> Path:
    # Not pytest's tmp_path: as root that is under /root (see store.embedded).
    return scratch_dir / "data"


def server_running(data_dir: Path) -> bool:
    return (data_dir / "postgres" / "postmaster.pid").exists()


def test_embedded_start_reuse_and_stop(data_dir: Path, caplog):
    caplog.set_level(logging.INFO, logger="store")
    with open_database(None, data_dir) as database:
        assert database.embedded
        assert "embedded PostgreSQL" in caplog.text and str(data_dir) in caplog.text
        assert (data_dir.stat().st_mode & 0o077) in (0, 0o055)  # 0700, or o+rx added as root
        with database.pool.connection() as conn:
            assert conn.execute("SELECT current_database()").fetchone()[0] == "keyline"
            conn.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
        # a second user in the same process shares the server...
        second = start_embedded(data_dir)
        assert second.url == database.url
    # ...and keeps it running after the first one closed
    assert server_running(data_dir)
    second.stop()
    second.stop()  # idempotent
    assert not server_running(data_dir)

    with open_database(None, data_dir) as database, database.pool.connection() as conn:
        assert conn.execute("SELECT n FROM kept").fetchone()[0] == 42
    assert not server_running(data_dir)


def test_server_failure_shows_its_log(data_dir: Path):
    pgdata = data_dir / "postgres"
    pgdata.mkdir(parents=True)
    (pgdata / "PG_VERSION").write_text("18\n")  # looks initialised, is not: the start fails
    with pytest.raises(StoreError) as error:
        start_embedded(data_dir)
    message = str(error.value)
    assert message.startswith(f"embedded PostgreSQL failed to start in {pgdata}")
    assert "\n" not in message
    assert f"last lines of {pgdata / 'log'}" in message


def test_data_dir_that_cannot_be_created(tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot create data dir"):
        open_database(None, blocker / "data")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root is kept out of home folders")
def test_root_keeps_data_out_of_home_folders():
    target = Path("/root/keyline-test-should-not-exist")
    with pytest.raises(StoreError, match="inside a home folder"):
        start_embedded(target)
    assert not target.exists()


def test_password_never_in_errors_or_logs(tmp_path: Path, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "hunter2-very-secret"
    url = f"postgresql://keyline:{secret}@/keyline?host={tmp_path}/no-such-socket"
    with pytest.raises(StoreError) as error:
        open_database(url, tmp_path)
    message = str(error.value)
    assert message.startswith("cannot connect to PostgreSQL at postgresql://keyline:********@")
    assert secret not in message
    assert secret not in caplog.text


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql://keyline:s3cret@db.example:5432/keyline",
     "postgresql://keyline:********@db.example:5432/keyline"),
    ("postgresql://keyline@db/keyline?password=s3cret&sslmode=require",
     "postgresql://keyline@db/keyline?password=********&sslmode=require"),
    ("host=db user=keyline password='s3 cret' dbname=keyline",
     "host=db user=keyline password=******** dbname=keyline"),
    ("postgresql://postgres:@/keyline?host=/tmp/x", "postgresql://postgres:@/keyline?host=/tmp/x"),
])
def test_redact_url(url: str, expected: str):
    assert redact_url(url) == expected


def _postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])


def _wait(predicate, timeout_s: float) -> bool:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _answers(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.Error:
        return False


def test_a_killed_server_is_started_again_then_the_supervisor_gives_up(data_dir: Path,
                                                                       caplog):
    import signal

    # a setting of Keyline's keyline.conf (as the TimescaleDB preload is): kept by restarts
    server = start_embedded(data_dir, server_settings={"work_mem": "7MB"})
    given_up: list[str] = []
    try:
        supervisor = server.supervise(given_up.append, interval_s=0.2, max_restarts=2,
                                      window_s=600)
        for n in range(2):  # killed twice: started again each time, same socket and URL
            killed = _postmaster_pid(server.pgdata)
            os.kill(killed, signal.SIGKILL)
            assert _wait(lambda n=n: len(supervisor.restarts) == n + 1, 10)
            assert _wait(lambda: _answers(server.url), 30)
            assert _postmaster_pid(server.pgdata) != killed
            with psycopg.connect(server.url) as conn:
                assert conn.execute("SHOW work_mem").fetchone()[0] == "7MB"
        assert len(supervisor.restarts) == 2 and given_up == []
        with caplog.at_level(logging.CRITICAL, logger="store.embedded"):
            os.kill(_postmaster_pid(server.pgdata), signal.SIGKILL)
            assert _wait(lambda: given_up, 10)  # the third time: a clear stop, no loop
        assert "stopped 3 times" in given_up[0] and "not restarting" in given_up[0]
        assert any(r.levelno == logging.CRITICAL for r in caplog.records)
        assert not supervisor.running()
    finally:
        server.stop()
