"""A `keyline` process serving the portal (`serve` or `demo`), for the tests that run the real
command: its output read as it comes (an unread pipe that fills up would block the
process), the URL it prints, and a stop by SIGTERM. One helper for tests/test_cli.py,
tests/test_portal_server.py, tests/test_readme_commands.py and tests/test_installed_wheel.py.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from keyline.wiring import EXAMPLE_INVENTORY
from store.database import Database

# How long the command may take to start (imports, inventory, topology, the portal server
# process) on a loaded machine.
START_TIMEOUT_S = 120
# How long it may take to stop after SIGTERM: the server's shutdown grace (20 s) and more.
STOP_TIMEOUT_S = 60


class Portal:
    """A `keyline` process serving the portal; `read_until_url` waits for the URL it prints
    (then `url`, `host`, `port`), `lines`/`output` are what it printed so far."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self.url = ""
        self.host = ""
        self.port = 0
        self._reader: threading.Thread | None = None

    def read_until_url(self, timeout_s: float = START_TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout_s
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            match = re.search(r"Open (http://\S+)", line)
            if match:
                self.url = match.group(1)
                where = urlsplit(self.url)
                self.host, self.port = where.hostname or "", where.port or 80
                self._reader = threading.Thread(target=self._read_rest, daemon=True)
                self._reader.start()
                return self.url
        self.process.kill()
        raise AssertionError("no URL printed:\n" + "".join(self.lines))

    def _read_rest(self) -> None:
        for line in self.process.stdout or ():
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> None:
        """SIGTERM; it must exit 0 within STOP_TIMEOUT_S."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=STOP_TIMEOUT_S)
        if self._reader is not None:
            self._reader.join(5)
        assert self.process.returncode == 0, self.output

    def end(self) -> None:
        """Whatever state it is in: SIGTERM if it still runs, killed if it will not stop."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._reader is not None:
            self._reader.join(5)


def start_portal(*args: str, env_extra: dict[str, str] | None = None) -> tuple[Portal, str]:
    """Start `keyline ARGS` (without the environment's KEYLINE_ settings) and return the
    process and the URL it printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYLINE_")}
    env.update(env_extra or {})
    process = subprocess.Popen([sys.executable, "-m", "keyline", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env)
    portal = Portal(process)
    return portal, portal.read_until_url()


@contextmanager
def serve(db: Database, **server_settings: Any) -> Iterator[Portal]:
    """`keyline serve` on `db` with the example inventory and these [server] settings (as
    KEYLINE_SERVER__NAME), ended on the way out."""
    portal, _ = start_portal(
        "--database-url", db.url, "serve", "--port", "0", "--inventory", str(EXAMPLE_INVENTORY),
        env_extra={f"KEYLINE_SERVER__{name.upper()}": str(value)
                   for name, value in server_settings.items()})
    try:
        yield portal
    finally:
        portal.end()
