"""Request parameters as every view reads them: ids, times and text, checked in one place.

A bad parameter is the caller's mistake, so it is answered 400 (or 404 for an id that names
nothing) with what is wrong and which field, never a 500 from deeper down: PostgreSQL's
bigint ends at 2^63 - 1 (a larger id is NumericValueOutOfRange), its text refuses NUL,
Python's datetime ends at years 1 and 9999 (an `end` of 0001-01-01 minus an hour is an
OverflowError), and json.loads recurses once per nesting level.

- `IdConverter` is the app's `int` URL converter: an id in a path is 0 .. 2^63 - 1, so a
  larger or negative one matches no route and is 404 like any id that names nothing.
- `int_arg` and `time_arg` read a query string's ids and ISO 8601 times; `BadParameter`
  (400, with the field) is answered by portal/app.py as JSON under /api/ and as the error
  page elsewhere.
- `refuse_bad_text` runs before every view: a NUL in any query, form or JSON text, or JSON
  nested deeper than `MAX_JSON_DEPTH`, is refused naming the field.
- `BoundedJSONProvider` turns a RecursionError of json.loads into the ValueError of any
  other malformed JSON (Flask answers 400).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from flask import request
from flask.json.provider import DefaultJSONProvider
from werkzeug.routing import IntegerConverter

MAX_ID = 2**63 - 1  # PostgreSQL's bigint
MAX_JSON_DEPTH = 64
# The times a query may name: no measurement is older than 1970, and both bounds lie far
# from datetime's ends (years 1 and 9999), so `end - 400 days` and any offset stay inside.
MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2200, 1, 1, tzinfo=UTC)
TIME_EXAMPLE = "2026-01-31T12:00:00Z"
INTEGER = re.compile(r"[+-]?[0-9]{1,20}", re.ASCII)  # int() would also take "1_0" and "١"


class BadParameter(Exception):
    """A request parameter that cannot be used: 400 with the message and the field."""

    def __init__(self, field: str | None, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.status = status


class IdConverter(IntegerConverter):
    """`<int:...>` in a route: a non-negative integer that fits PostgreSQL's bigint."""

    regex = r"[0-9]+"  # werkzeug's \d+ also matches other scripts' digits ("١" is 1)

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def int_arg(args: Any, name: str, *, required: bool = False, low: int = 0,
            high: int = MAX_ID) -> int | None:
    """An integer query parameter in [low, high]; None when absent and not required."""
    text = (args.get(name) or "").strip()
    if not text:
        if required:
            raise BadParameter(name, f"{name} is required")
        return None
    if not INTEGER.fullmatch(text):
        raise BadParameter(name, f"{name} must be an integer between {low} and {high}")
    value = int(text)
    if not low <= value <= high:
        raise BadParameter(name, f"{name} must be between {low} and {high}")
    return value


def time_arg(args: Any, name: str) -> datetime | None:
    """An ISO 8601 time query parameter (`2026-01-31T12:00:00Z`; one without an offset is
    UTC), in UTC and between MIN_TIME and MAX_TIME; None when absent."""
    text = (args.get(name) or "").strip()
    if not text:
        return None
    # An unescaped "+08:00" in a query string arrives as " 08:00".
    text = text.replace(" ", "+").replace("z", "Z").replace("Z", "+00:00")
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadParameter(name, f"{name} must be an ISO 8601 time such as {TIME_EXAMPLE}"
                           ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except (OverflowError, ValueError):
        value = None
    if value is None or not MIN_TIME <= value < MAX_TIME:
        raise BadParameter(name, f"{name} must be between {MIN_TIME.date().isoformat()} and "
                                 f"{MAX_TIME.date().isoformat()}")
    return value


def _nul_free(field: str, value: str) -> None:
    if "\x00" in value:
        raise BadParameter(field, f"{field} must not contain NUL characters")


def _field_name(name: str) -> str:
    return name.replace("\x00", "\\0")[:100]


def refuse_bad_text() -> None:
    """Before each request: refuse NUL in query and form fields (names and values), in the
    path's variables and in a JSON body's strings and keys, and JSON nested deeper than
    MAX_JSON_DEPTH."""
    for values in (request.args, request.form):
        for name, value in values.items(multi=True):
            _nul_free(_field_name(name), name)
            _nul_free(_field_name(name), value)
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str):
            _nul_free(name, value)
    if not request.is_json:
        return
    body = request.get_json(silent=True)  # None when empty or malformed: the view says so
    # iterative: a recursive walk could itself overflow the stack json.loads survived
    pending: list[tuple[str | None, Any, int]] = [(None, body, 0)]
    while pending:
        field, value, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise BadParameter(None, f"the JSON body is nested more than {MAX_JSON_DEPTH} deep")
        if isinstance(value, str):
            _nul_free(field or "body", value)
        elif isinstance(value, dict):
            for key, item in value.items():
                name = _field_name(key if field is None else f"{field}.{key}")
                _nul_free(name, key)
                pending.append((name, item, depth + 1))
        elif isinstance(value, list):
            pending.extend((f"{field or 'body'}[{index}]", item, depth + 1)
                           for index, item in enumerate(value))


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, except that JSON nested too deep for json.loads is malformed JSON."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
