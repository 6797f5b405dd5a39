"""Secrets: SNMP communities, v3 keys, SSH passwords, session keys, database passwords.

Keyline never keeps a secret in a file anyone else can read, and never shows one. A secret is
*referenced*: by an environment variable, or by a file that only its owner may read (mode
0600 or 0400, owned by the user running Keyline). Resolving a reference gives a pydantic
`SecretStr`, whose repr and str are masked, and registers the value with the redacting log
filter, so that a secret that slips into a log message by mistake is still masked there.
Errors name the variable or the file, never the value.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from config.inventory.model import SecretRef

MASK = "********"

_known_secrets: set[str] = set()
_known_lock = threading.Lock()


class SecretError(Exception):
    """A secret could not be read. The message never contains the secret itself."""


def register_secret(value: str) -> None:
    """Remember a secret value so that log records containing it are masked."""
    # Very short values would mask ordinary words in every log line.
    if len(value) >= 4:
        with _known_lock:
            _known_secrets.add(value)


def mask_secrets(text: str) -> str:
    """Replace every registered secret value in `text` by the mask."""
    with _known_lock:
        secrets = sorted(_known_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that masks registered secrets in the formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _known_secrets:
            return True
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg = masked
            record.args = None
        return True


def check_owner_only(path: Path) -> None:
    """Refuse a secret file that others can read or that belongs to someone else."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SecretError(f"secret file {path} does not exist") from None
    except PermissionError:
        raise SecretError(f"secret file {path} cannot be read (permission denied)") from None
    if not stat.S_ISREG(info.st_mode):
        raise SecretError(f"secret file {path} is not a regular file")
    if info.st_mode & 0o077:
        raise SecretError(
            f"secret file {path} is readable by others (mode {stat.S_IMODE(info.st_mode):04o}):"
            f" run 'chmod 600 {path}'"
        )
    if info.st_uid != os.geteuid():
        raise SecretError(f"secret file {path} is not owned by the user running Keyline")


def read_secret_file(path: Path) -> SecretStr:
    """Read a secret from an owner-only file; surrounding whitespace is dropped."""
    check_owner_only(path)
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise SecretError(f"secret file {path} is empty")
    register_secret(value)
    return SecretStr(value)


def read_secret_env(name: str, environ: Mapping[str, str] | None = None) -> SecretStr:
    """Read a secret from an environment variable."""
    environ = os.environ if environ is None else environ
    value = environ.get(name)
    if value is None or value == "":
        raise SecretError(f"environment variable {name} is not set")
    register_secret(value)
    return SecretStr(value)


def resolve_secret(ref: SecretRef, environ: Mapping[str, str] | None = None) -> SecretStr:
    """Resolve an inventory secret reference (`{env: NAME}` or `{file: PATH}`)."""
    if ref.source == "env":
        return read_secret_env(ref.name, environ)
    if ref.source == "file":
        return read_secret_file(Path(ref.name))
    raise SecretError(f"unknown secret source {ref.source!r} (use env or file)")
