"""Talking to a running simulated network from another process (`keyline lab sim fault`).

The network listens on a Unix socket, `control.sock` in its work directory. A Unix socket
rather than a control file: the caller gets an answer - done, or why not (no such device, no
such port) - and the network acts the moment the request arrives instead of polling a file.
Only the owner of the work directory (mode 0700) can reach it, and nothing leaves the
machine.

The protocol is one JSON object per line each way:

    -> {"command": "port", "device": "pe1", "port": "Gi0/0/1", "status": "down"}
    <- {"ok": true, "changed": true}
    -> {"command": "cli-mode", "device": "pe1", "mode": "slow", "delay_s": 2.0}
    -> {"command": "cli-config", "device": "pe1", "add": ["..."], "remove": ["..."]}
    <- {"ok": true, "changed": true, "config": "...the running configuration..."}
    -> {"command": "host-key", "device": "pe1"}
    <- {"ok": true, "changed": true, "public_key": "ssh-ed25519 AAAA... pe1"}
    -> {"command": "status"}
    <- {"ok": true, "devices": {"pe1": {"endpoint": "127.0.1.1:1161", "down": [...]}, ...}}
    <- {"ok": false, "error": "device pe9 is not in the simulated network"}
"""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CONTROL_SOCKET = "control.sock"
MAX_UNIX_PATH_BYTES = 107  # sun_path holds 108 bytes with the terminating NUL

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class ControlError(Exception):
    """The running network could not be reached, or refused the request."""


def socket_path(work_dir: Path) -> Path:
    path = Path(work_dir).absolute() / CONTROL_SOCKET
    if len(str(path).encode()) > MAX_UNIX_PATH_BYTES:
        raise ControlError(f"work directory path too long for a Unix socket: {path}")
    return path


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, handler: Handler):
        self.handler = handler
        super().__init__(path, _RequestHandler)


class _RequestHandler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        line = self.rfile.readline(64 * 1024)
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
            answer = self.server.handler(request)
        except Exception as error:  # every failure goes back to the caller, not a log
            answer = {"ok": False, "error": str(error)}
        self.wfile.write(json.dumps(answer).encode() + b"\n")


def serve(work_dir: Path, handler: Handler) -> Callable[[], None]:
    """Answer control requests with `handler` in a background thread until the returned
    function is called. A stale socket file from a dead network is replaced."""
    path = socket_path(work_dir)
    path.unlink(missing_ok=True)
    server = _Server(str(path), handler)
    path.chmod(0o600)
    thread = threading.Thread(target=server.serve_forever, name="lab-sim-control", daemon=True)
    thread.start()

    def close() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        path.unlink(missing_ok=True)

    return close


def request(work_dir: Path, message: dict[str, Any], *,
            timeout_s: float = 10.0) -> dict[str, Any]:
    """Send one request to the network running in `work_dir` and return its answer;
    ControlError if none runs there or it refused."""
    path = socket_path(work_dir)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise ControlError(
                f"no simulated network is running in {work_dir} (`keyline demo` and `keyline "
                "lab sim` run theirs in DATA_DIR/lab-sim: use the same settings as the one "
                "running, or name its --work-dir)") from None
        sock.sendall(json.dumps(message).encode() + b"\n")
        with sock.makefile("rb") as stream:
            line = stream.readline()
    if not line:
        raise ControlError("the simulated network closed the connection without answering")
    answer = json.loads(line)
    if not answer.get("ok"):
        raise ControlError(answer.get("error", "refused"))
    return answer
