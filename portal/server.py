"""The portal's production HTTP server: gevent's WSGI server, one greenlet per connection.

Werkzeug's threaded development server spends an OS thread per connection (about four per
Socket.IO WebSocket): 2,000 live pages meant 8,000 threads fighting for the GIL and REST
answers in seconds. Here every connection is a greenlet in one OS thread (gevent.pywsgi,
with gevent-websocket's handler for the WebSocket transport; Flask-SocketIO runs with
``async_mode="gevent"`` and psycopg 3 waits cooperatively once gevent has patched the
standard library). The process that runs it must be monkey-patched before anything imports
``socket`` or ``threading``: keyline/portal_process.py is that process's entry.

What the server adds to gevent's (settings: config.settings.PortalServerSettings):

- **a read timeout**: a client has `read_timeout_s` to send a request's line and headers,
  counted from the moment the connection waits for a request (the first and each keep-alive
  one), and may pause no longer than that while sending a body or taking a response; a
  half-sent request is answered 408 and closed. So a slowloris holds a greenlet and a socket
  for `read_timeout_s` at most, and never a thread. An upgraded WebSocket waits up to
  `websocket_timeout_s` (Engine.IO pings every 25 s, so a live client is never that quiet);
- **a connection cap**: beyond `max_connections` open connections (WebSockets included) a
  new one is answered 503 and closed at once, while the open ones go on;
- **no version banner**: no ``Server`` header, whatever the application sets;
- **graceful shutdown** (`drain`): stop accepting (the listening socket is closed), close
  the connections that wait for a request, ask the application to end its long-lived ones
  (the live sockets, which reconnect elsewhere), let the requests in flight finish within
  `shutdown_grace_s`, then close whatever is left.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent.pool import Pool
from gevent.pywsgi import LoggingLogAdapter, WSGIServer
from geventwebsocket.handler import WebSocketHandler

log = logging.getLogger(__name__)
ACCESS_LOG = logging.getLogger("portal.access")


def _plain_response(status: str, body: str, *extra_headers: str) -> bytes:
    """A whole HTTP response, for the answers the server gives without the application."""
    data = body.encode()
    head = [f"HTTP/1.1 {status}", "Connection: close", "Content-Type: text/plain; charset=utf-8",
            f"Content-Length: {len(data)}", *extra_headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


REFUSED_RESPONSE = _plain_response("503 Service Unavailable",
                                   "Too many connections; try again.\n", "Retry-After: 5")
TIMED_OUT_RESPONSE = _plain_response("408 Request Timeout",
                                     "The request took too long to send.\n")
# How long a refused connection may take to accept its 503 (it fits any socket buffer).
REFUSE_SEND_TIMEOUT_S = 1.0
# At most one "connection cap reached" warning per this many seconds.
CAP_WARNING_INTERVAL_S = 10.0


class RequestTimedOut(socket.timeout):
    """The client did not send its request line and headers within the read timeout."""


class PortalHandler(WebSocketHandler):
    """One connection: gevent-websocket's handler with the read timeout, the banner removed
    and the server's draining respected."""

    server: PortalServer

    def handle(self) -> None:
        # Every read and write of this connection waits at most this long (a body sent or a
        # response taken slowly); the whole of a request's head has its own deadline below.
        self.socket.settimeout(self.server.read_timeout_s)
        # A response goes out in several writes (head, body chunks): without this, Nagle's
        # algorithm holds the last one for the client's delayed ACK (~40 ms per request).
        if self.socket.family in (socket.AF_INET, socket.AF_INET6):
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle()

    def handle_one_request(self) -> Any:
        server = self.server
        if server.draining:
            return None  # the response in flight has gone out: close
        # Waiting for a request: such a connection is closed at once when the server drains.
        server.idle[self] = gevent.getcurrent()
        self._head_timer = gevent.Timeout(server.read_timeout_s, RequestTimedOut(
            f"no complete request within {server.read_timeout_s:g} s"))
        self._head_timer.start()
        try:
            return super().handle_one_request()
        finally:
            self._head_timer.close()
            server.idle.pop(self, None)

    def read_request(self, raw_requestline: str) -> Any:
        try:
            return super().read_request(raw_requestline)
        finally:
            # The head is in: from now on the request is in flight, the application's time.
            self._head_timer.close()
            self.server.idle.pop(self, None)

    def _handle_client_error(self, ex: BaseException) -> Any:
        if isinstance(ex, RequestTimedOut):
            log.debug("request from %s timed out: %s", self.client_address, ex)
            return ("408", TIMED_OUT_RESPONSE)
        return super()._handle_client_error(ex)

    def upgrade_connection(self) -> Any:
        result = super().upgrade_connection()
        if getattr(self, "websocket", None) is not None:
            self.socket.settimeout(self.server.websocket_timeout_s)
        return result

    def log_request(self) -> None:
        # gevent's access line, at DEBUG (portal.access), not gevent-websocket's at INFO;
        # formatted only when someone reads it
        if "101" not in str(self.status) and ACCESS_LOG.isEnabledFor(logging.DEBUG):
            self.server.log.write(self.format_request())

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Any:
        headers = [(name, value) for name, value in headers if name.lower() != "server"]
        return super().start_response(status, headers, exc_info)


class PortalServer(WSGIServer):
    """gevent's WSGI server with the connection cap and `drain` (see the module docstring).
    `listener` is a bound, listening socket (or an address to bind)."""

    handler_class = PortalHandler

    def __init__(self, listener: Any, application: Any, *, read_timeout_s: float,
                 max_connections: int, websocket_timeout_s: float) -> None:
        super().__init__(
            listener, application, spawn=Pool(),
            log=LoggingLogAdapter(ACCESS_LOG, logging.DEBUG),
            error_log=LoggingLogAdapter(logging.getLogger("portal.server"), logging.INFO))
        # gevent-websocket's handler logs through `server.logger` (else a logger of its own
        # with its own stream handler): ours, so its lines go through the redacting filter.
        self.logger = logging.getLogger("portal.server")
        self.read_timeout_s = read_timeout_s
        self.max_connections = max_connections
        self.websocket_timeout_s = websocket_timeout_s
        self.draining = False
        self.connections = 0  # open now, refused ones aside
        self.idle: dict[PortalHandler, gevent.Greenlet] = {}
        self.refused = 0
        self._warned_at = 0.0

    def handle(self, sock: Any, address: Any) -> None:
        # Counted here, in the order of acceptance (the pool's size would also count the
        # greenlets of a batch accepted at once that have not run yet).
        if self.connections >= self.max_connections:
            self._refuse(sock, address)
            return
        self.connections += 1
        try:
            super().handle(sock, address)
        finally:
            self.connections -= 1

    def _refuse(self, sock: Any, address: Any) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self._warned_at >= CAP_WARNING_INTERVAL_S:
            self._warned_at = now
            log.warning("connection cap reached (%d open): refusing new connections (%d so far)"
                        "; raise server.max_connections if this is real load",
                        self.max_connections, self.refused)
        try:
            sock.settimeout(REFUSE_SEND_TIMEOUT_S)
            sock.sendall(REFUSED_RESPONSE)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            sock.close()

    def drain(self, grace_s: float, end_long_lived: Callable[[], None] = lambda: None) -> None:
        """Stop accepting, close the connections waiting for a request, call
        `end_long_lived` (the application ends its WebSockets and long polls), wait up to
        `grace_s` for the requests in flight, then close what is left. Blocks the calling
        greenlet; idempotent."""
        if self.draining:
            return
        self.draining = True
        self.close()  # the listening socket: new connections are refused by the kernel
        started = time.monotonic()
        waiting = list(self.idle.values())
        gevent.killall(waiting, block=False)

        def end() -> None:
            try:
                end_long_lived()
            except Exception:
                log.exception("ending the live connections failed")

        # Beside the grace period, not before it: Engine.IO closes its sockets one by one,
        # waiting for each one's writer, and one whose client went away at that moment has
        # none left (2,000 clients closing as the server drained blocked it for good).
        ending = gevent.spawn(end)
        left = max(0.0, grace_s - (time.monotonic() - started))
        self.pool.join(timeout=left)
        ending.kill(block=False)
        if self.pool:
            log.warning("%d requests still running after %g s: closing them", len(self.pool),
                        grace_s)
            self.pool.kill(block=True, timeout=1)
        log.info("portal server stopped in %.1f s", time.monotonic() - started)
