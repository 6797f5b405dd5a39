"""SIGTERM while `keyline serve`, `keyline demo` or `keyline collect` is still starting is a
clean stop, exit code 0 (keyline.wiring.sigterm_unwinds), not a death by signal (-15)
that leaves a half-started portal server process or embedded database behind.

To catch the command surely in its start-up, its database is a loopback "black hole": a
TCP server that accepts the connection and never answers, so the command waits in its
store's connect for as long as the test needs; the signal is sent once the black hole has
a connection. A second case signals `keyline serve` after its store is open and while it
imports the inventory (the first line it prints), before its serve loop takes SIGTERM
over.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from keyline.wiring import EXAMPLE_INVENTORY
from store.database import Database

# The command's own start and stop on a loaded CI machine: generous, never a speed check.
EXIT_TIMEOUT_S = 60


class BlackHole:
    """A loopback TCP server that accepts connections and never says a word."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = threading.Event()
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(connection)
            self.accepted.set()

    def close(self) -> None:
        self.listener.close()
        for connection in self.connections:
            connection.close()


def _start(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYLINE_")}
    return subprocess.Popen([sys.executable, "-m", "keyline", *args], text=True, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _stopped(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    process.send_signal(signal.SIGTERM)
    try:
        out, err = process.communicate(timeout=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"no exit after SIGTERM:\n{out}\n{err}") from None
    return process.returncode, out, err


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["collect"]])
def test_sigterm_while_connecting_to_the_store_is_a_clean_exit(command, tmp_path: Path):
    hole = BlackHole()
    try:
        process = _start("--data-dir", str(tmp_path),
                         "--database-url", f"postgresql://keyline@127.0.0.1:{hole.port}/x",
                         *command)
        if not hole.accepted.wait(EXIT_TIMEOUT_S):
            process.kill()
            raise AssertionError("the command never connected: " + process.communicate()[1])
        assert process.poll() is None  # still starting: waiting for the store's answer
        code, out, err = _stopped(process)
    finally:
        hole.close()
    assert code == 0, (code, out, err)
    assert "stopped (SIGTERM)" in out
    assert "Traceback" not in err, err


def test_sigterm_while_importing_the_inventory_is_a_clean_exit(db: Database):
    process = _start("--database-url", db.url, "serve", "--port", "0",
                     "--inventory", str(EXAMPLE_INVENTORY))
    assert process.stdout is not None
    first = process.stdout.readline()  # the import's summary: the portal is not served yet
    assert "Open http" not in first, first
    code, out, err = _stopped(process)
    assert code == 0, (code, first, out, err)
    assert "stopped" in first + out
    assert "Traceback" not in err, err


def test_a_portal_process_whose_parent_stopped_before_handing_over_exits_quietly():
    """SIGTERM can reach `keyline serve` after it started its portal server process and
    before it wrote the settings to that process's stdin: the child then reads nothing (or
    a cut-off text) and must end without a traceback."""
    for stdin, code in (("", 0), ('{"settings": {"data_di', 2)):
        done = subprocess.run([sys.executable, "-m", "keyline.portal_process"], input=stdin,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == code, done.stderr
        assert "Traceback" not in done.stderr
        assert done.stderr.count("\n") <= 1, done.stderr


def test_sigterm_wrapped_by_a_library_is_still_the_stop(capsys):
    """pydantic's serializers wrap an exception raised inside them (the CI saw SIGTERM land
    while the settings were serialized for the portal process): the stop that was asked for
    is still a clean stop, not "unexpected PydanticSerializationError"."""
    from pydantic import BaseModel, field_serializer

    from keyline.cli import _stopped_by_sigterm

    class Settings(BaseModel):
        data_dir: Path

        @field_serializer("data_dir")
        def ser_path(self, value: Path) -> str:
            os.kill(os.getpid(), signal.SIGTERM)
            return str(value)

    with _stopped_by_sigterm("Keyline"):
        Settings(data_dir=Path("/x")).model_dump_json()
    assert "Keyline stopped (SIGTERM)." in capsys.readouterr().out
