"""The portal's production server (portal/server.py), as `keyline serve` runs it.

Each test starts the real thing: `python -m keyline serve` on a free loopback port, on a
database of the session's embedded PostgreSQL holding the example inventory, with its
[server] settings in the environment; the portal then runs in its gevent portal server
process. From outside, as a client or an attacker would, the tests check: no version
banner; 200 half-sent requests (a slowloris) held open while a normal request still answers
in under a second (the issue's figure); a half-sent request answered 408 and closed after
the read timeout, not before; connections beyond the cap refused while the open ones go on;
SIGTERM with a request in flight: no new connection accepted, the request finished, exit 0;
a Socket.IO client connected through it gets a live event.
"""

from __future__ import annotations

import re
import select
import signal
import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any

import requests

from collectors.model import Observation
from store.database import Database
from store.events import last_event_id
from store.observations import record_observations
from store.users import set_password
from tests.portal_process import Portal, serve

USER, PASSWORD = "noc.wang", "portal server test password"


def set_user_password(db: Database) -> None:
    with db.pool.connection() as conn:
        set_password(conn, USER, PASSWORD)


def half_sent(served: Portal) -> socket.socket:
    """A connection that sent a request line and one header, never the blank line."""
    sock = socket.create_connection((served.host, served.port), timeout=10)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: keyline\r\n")
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Has the server answered or closed this connection (without waiting)?"""
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


def read_all(sock: socket.socket, timeout_s: float) -> bytes:
    sock.settimeout(timeout_s)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, TimeoutError):
        pass
    return b"".join(chunks)


def test_no_version_banner_and_live_events_through_socketio(db: Database):
    """Also with `server.websocket_only`: polling refused, the pages told so."""
    import socketio

    with serve(db, websocket_only="true") as served:
        set_user_password(db)
        answer = requests.get(served.url + "healthz", timeout=10)
        assert answer.status_code == 200
        banner = answer.headers.get("Server", "")
        for word in ("werkzeug", "python", "gevent", "/"):
            assert word not in banner.lower(), banner
        assert re.search(r"Portal server process \d+ \(gevent\)", served.output)
        # websocket_only: the pages are told so, and Engine.IO's long-polling is refused
        login_page = requests.get(served.url + "login", timeout=10).text
        assert '<meta name="keyline-socket-transports" content="websocket">' in login_page
        polling = requests.get(served.url + "socket.io/?EIO=4&transport=polling", timeout=10)
        assert polling.status_code == 400

        with requests.Session() as http:
            page = http.get(served.url + "login", timeout=10).text
            token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
            login = http.post(served.url + "login", timeout=10, allow_redirects=False,
                              data={"name": USER, "password": PASSWORD, "csrf_token": token})
            assert login.status_code == 302, login.text
            cookie = f"keyline_session={http.cookies['keyline_session']}"
        received: list[dict[str, Any]] = []
        got = threading.Event()
        client = socketio.Client(reconnection=False)

        @client.on("status")
        def on_status(message: dict[str, Any]) -> None:
            received.append(message)
            got.set()

        client.connect(served.url, headers={"Cookie": cookie}, transports=["websocket"],
                       wait_timeout=10)
        try:
            joined = client.call("join", {"room": "noc"}, timeout=30)
            assert joined["ok"], joined
            with db.pool.connection() as conn:
                port_id = conn.execute("SELECT a_port_id FROM links WHERE retired_at IS NULL"
                                       " ORDER BY id LIMIT 1").fetchone()[0]
                record_observations(conn, [Observation(datetime.now(UTC), port_id,
                                                       "oper_status", "up", "down", "trap")])
                conn.commit()
                event_id = last_event_id(conn)
            deadline = time.monotonic() + 30
            while (not any(m["id"] == event_id and not m.get("snapshot") for m in received)
                   and time.monotonic() < deadline):
                got.wait(0.5)
                got.clear()
            live = [m for m in received if m["id"] == event_id and not m.get("snapshot")]
            assert live, received
            assert any(link["status"] == "down" for link in live[0]["links"]), live
        finally:
            client.disconnect()


def test_slowloris_does_not_starve_requests_and_half_sent_requests_time_out(
        db: Database):
    read_timeout_s = 8.0  # long enough to open 200 connections well within it
    with serve(db, read_timeout_s=read_timeout_s, max_connections=1000) as served:
        sent_at = time.monotonic()
        attackers = [half_sent(served) for _ in range(200)]
        try:
            started = time.monotonic()
            answer = requests.get(served.url + "healthz", timeout=10)
            took_s = time.monotonic() - started
            assert answer.status_code == 200
            # The figure: a normal request answers in < 1 s during the slowloris,
            # all 200 half-sent requests still held open meanwhile.
            assert took_s < 1.0, f"{took_s:.2f} s with 200 half-sent requests open"
            if time.monotonic() - sent_at < read_timeout_s * 0.75:
                assert not any(closed_by_server(sock) for sock in attackers)
            # After the read timeout each is answered 408 and closed; not long before it.
            answers = [read_all(sock, read_timeout_s + 30) for sock in attackers]
            closed_after_s = time.monotonic() - sent_at
        finally:
            for sock in attackers:
                sock.close()
        assert closed_after_s >= read_timeout_s
        assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), {a[:40] for a in answers}
        # the server still serves
        assert requests.get(served.url + "healthz", timeout=10).status_code == 200


def test_half_sent_request_is_kept_until_the_read_timeout(db: Database):
    read_timeout_s = 6.0
    with serve(db, read_timeout_s=read_timeout_s) as served:
        sock = half_sent(served)
        sent_at = time.monotonic()
        try:
            time.sleep(read_timeout_s / 2)
            assert not closed_by_server(sock)
            sock.sendall(b"X-Slow: 1\r\n")  # trickling does not extend the deadline
            answer = read_all(sock, read_timeout_s + 30)
            closed_after_s = time.monotonic() - sent_at
        finally:
            sock.close()
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
        assert read_timeout_s <= closed_after_s < read_timeout_s * 2 + 10, closed_after_s


def test_connection_cap_and_graceful_shutdown_on_sigterm(db: Database):
    cap = 20
    with serve(db, max_connections=cap, read_timeout_s=60,
               shutdown_grace_s=30) as served:
        holders = [half_sent(served) for _ in range(cap)]
        try:
            # accepted after the holders (the kernel's queue is first in, first out)
            extra = socket.create_connection((served.host, served.port), timeout=10)
            refused = read_all(extra, 30)
            extra.close()
            assert refused.startswith(b"HTTP/1.1 503 "), refused[:80]
            # the open connections go on: one finishes its request and is answered
            holders[0].sendall(b"Connection: close\r\n\r\n")
            answer = read_all(holders[0], 30)
            assert answer.startswith(b"HTTP/1.1 200 "), answer[:80]
        finally:
            for sock in holders:
                sock.close()

        # A request in flight: the application is reading its body (gevent answers
        # "100 Continue" when it starts to) when SIGTERM comes.
        body = b"name=x&password=y&csrf_token=z"
        deadline = time.monotonic() + 30
        while True:  # the holders' slots free up as the server sees them closed
            flight = socket.create_connection((served.host, served.port), timeout=30)
            flight.sendall(b"POST /login HTTP/1.1\r\nHost: keyline\r\nExpect: 100-continue\r\n"
                           b"Content-Type: application/x-www-form-urlencoded\r\n"
                           b"Connection: close\r\n"
                           b"Content-Length: %d\r\n\r\n" % len(body))
            flight.settimeout(30)
            first = flight.recv(4096)
            if first.startswith(b"HTTP/1.1 100 "):
                break
            flight.close()
            assert first.startswith(b"HTTP/1.1 503 ") and time.monotonic() < deadline, first
            time.sleep(0.2)
        served.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while True:  # the listening socket goes away: new connections are refused
            try:
                socket.create_connection((served.host, served.port), timeout=5).close()
            except ConnectionRefusedError:
                break
            assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
            time.sleep(0.1)
        assert served.process.poll() is None  # still finishing the request in flight
        flight.sendall(body)
        answer = read_all(flight, 30)
        flight.close()
        assert re.match(rb"HTTP/1\.1 [234]\d\d ", answer), answer[:80]
        assert served.process.wait(60) == 0, served.output
