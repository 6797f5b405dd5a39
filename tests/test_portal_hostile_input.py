"""Bad input, from the attacker's side: every route answers 4xx with a clear message, never 5xx.

Two halves, both with Flask's test client on a real database (the example inventory and a
live incident, tests/test_portal_alarms.py's `seed_alarms`):

- the findings of issue 12, each as its own test: the open-redirect forms of `next`, ids of
  2^63 and more, times at the calendar's edges, JSON nested 100,000 deep, NUL in text, a 413
  under /api/ (JSON) and elsewhere (HTML), malformed JSON;
- a generated set per route: `app.url_map` is walked (every rule, every method), and each
  path variable, each query and form field the view reads (found by a first, benign call
  that records which names it asks for) and each JSON field of the OpenAPI document gets
  hostile values (huge and negative ints, NUL, long strings, RTL and zero-width marks, bad
  dates, deep JSON), as an admin and as a customer. No answer may be a 5xx; every answer
  under /api/ is JSON. A route added later is covered without editing this file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask, Request
from flask.testing import FlaskClient
from werkzeug.datastructures import ImmutableMultiDict

from portal.openapi import openapi_document
from tests.test_portal_access import (  # noqa: F401
    PASSWORD,
    USER_A,
    Portal,
    csrf_token,
    logged_in,
    login,
    portal,
)
from tests.test_portal_alarms import seed_alarms

HUGE_IDS = ["9223372036854775808", "18446744073709551616", "9" * 400]
EXTREME_TIMES = ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00", "0001-01-01T00:00:00+14:00",
                 "9999-12-31T23:59:59", "9999-12-31T23:59:59-12:00", "9999-12-31T23:59:59Z",
                 "1900-01-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-01-01T25:00:00"]
# For query, form and JSON text fields.
HOSTILE_TEXT = [
    *HUGE_IDS, "-9223372036854775809", "-1", "1e309", "NaN", "0x10", "1_0", "\u0661\u0662",
    "\x00", "a\x00b", "x" * 20_000, "\u202eevil\u200b", "\u200b", "\U0001f4a9",
    "' OR 1=1 --", "%", "[]", "{}", "../../etc/passwd", "javascript:alert(1)",
    "//evil.example", "/\t/evil.example", "/\n/x", "\r\nSet-Cookie: x=1", *EXTREME_TIMES,
]
# For path variables (written into the URL, so escaped where they must be).
HOSTILE_INT_PATH = [*HUGE_IDS, "-1", "0", "%00", "1%00", "abc", "1.5", "%D9%A1",
                    "%E2%80%AE1", "+1"]
HOSTILE_STR_PATH = ["%00", "a%00b", "..%2F..%2Fetc%2Fpasswd", "x" * 5000, "%E2%80%AE",
                    "%F0%9F%92%A9", "a%0D%0ASet-Cookie:%20x=1", "%E2%80%8B"]
DEEP_JSON = "[" * 100_000 + "]" * 100_000
HOSTILE_JSON_VALUES: list[Any] = [
    *HOSTILE_TEXT[::3], 2**64, -(2**63) - 1, 1e308, -1, 0, None, True, [], {},
    ["\x00"], [{"\x00": 1}], ["circuit:" + "x" * 5000], [[[[[[]]]]]],
]
HOSTILE_BODIES = [DEEP_JSON, '{"comment": "', "nul\x00", "[1, 2", "1" * 5000, '"text"',
                  "{" * 50_000, '{"a": ' * 10_000, json.dumps({"\x00": "x"})]


# --- the findings, one by one ----------------------------------------------------------------


def test_next_cannot_leave_the_site(portal: Portal):  # noqa: F811
    """`/login?next=/%09/evil.example` once sent a logged-in user to //evil.example; a
    newline was a 500."""
    hostile = ["/%09/evil.example", "/%0A/x", "/%0D/evil.example", "/%5C/evil.example",
               "/%5Cevil.example", "//evil.example", "/%E2%80%8B/evil.example",
               "https://evil.example/", "/%09%09/evil.example", "%09//evil.example",
               "/%00/x", "javascript:alert(1)", "/%E2%80%AE/x"]
    client = logged_in(portal.app, USER_A)
    for next_path in hostile:
        response = client.get(f"/login?next={next_path}")
        assert response.status_code in (302, 400), (next_path, response.status_code)
        if response.status_code == 302:
            location = response.headers["Location"]
            assert _same_site(location), (next_path, location)
    for next_path in hostile:  # at login itself, and when changing the language
        fresh = portal.app.test_client()
        page = fresh.get("/login").get_data(as_text=True)
        from urllib.parse import unquote
        response = fresh.post("/login", data={"name": USER_A, "password": PASSWORD,
                                              "csrf_token": csrf_token(page),
                                              "next": unquote(next_path)})
        assert response.status_code in (302, 400), (next_path, response.status_code)
        assert _same_site(response.headers.get("Location", "/")), next_path
        response = client.post("/language", data={"lang": "en", "next": unquote(next_path),
                                                   "csrf_token": csrf_token(page)})
        assert response.status_code < 500
    # a good next still works
    assert client.get("/login?next=/alarms%3Fstate%3Dall").headers["Location"] == (
        "/alarms?state=all")


def _same_site(location: str) -> bool:
    """What a browser would make of a Location: stays on this site (tabs and newlines
    dropped, backslashes read as slashes, as browsers do)."""
    seen = re.sub(r"[\t\n\r]", "", location).replace("\\", "/")
    return seen.startswith("/") and not seen.startswith("//")


def test_ids_beyond_bigint_are_404_in_paths_and_400_in_queries(portal: Portal):  # noqa: F811
    client = logged_in(portal.app, "admin")
    for huge in [*HUGE_IDS, "-1"]:
        for path in (f"/api/v1/circuits/{huge}", f"/api/v1/alarms/{huge}",
                     f"/api/v1/devices/{huge}/ports", f"/circuits/{huge}",
                     f"/customers/{huge}/", f"/devices/{huge}", f"/alarms/{huge}"):
            response = client.get(path)
            assert response.status_code == 404, (path, response.status_code)
            if path.startswith("/api/"):
                assert response.is_json, path
        for name, path, extra in (("object_id", "/api/v1/samples", {"metric": "if_in_bps"}),
                                  ("customer_id", "/api/v1/circuits", {}),
                                  ("customer_id", "/api/v1/alarms", {}),
                                  ("limit", "/api/v1/alarms", {})):
            response = client.get(path, query_string={name: huge, **extra})
            assert response.status_code == 400, (path, name, huge)
            assert response.get_json()["field"] == name
        assert client.get("/alarms", query_string={"customer_id": huge}).status_code == 400


def test_times_at_the_calendars_edges_are_400_naming_the_field(portal: Portal):  # noqa: F811
    client = logged_in(portal.app, "admin")
    port_id = min(portal.a.ids["port"])
    device_id = min(portal.a.ids["device"])
    ports = client.get(f"/api/v1/devices/{device_id}/ports").get_json()["ports"]
    for field in ("end", "start"):
        for moment in EXTREME_TIMES:
            response = client.get("/api/v1/samples", query_string={
                "object_id": port_id, "metric": "if_in_bps", field: moment})
            assert response.status_code == 400, (field, moment, response.status_code)
            body = response.get_json()
            assert body["field"] == field, (field, moment, body)
            assert field in body["error"]
            gaps = client.get(f"/devices/{device_id}/ports/{ports[0]['id']}/gaps",
                              query_string={field: moment})
            assert gaps.status_code == 400, (field, moment, gaps.status_code)
    # a time without an offset is UTC, as documented, when it is inside the calendar
    fine = client.get("/api/v1/samples", query_string={
        "object_id": port_id, "metric": "if_in_bps",
        "end": (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")})
    assert fine.status_code == 200
    assert fine.get_json()["points"]


def test_maintenance_windows_at_the_calendars_edges(portal: Portal):  # noqa: F811
    client = logged_in(portal.app, "admin")
    token = _csrf(client)
    circuit = sorted(portal.a.ids["circuit"])[0]
    with portal.database.pool.connection() as conn:
        key = conn.execute("SELECT key FROM circuits WHERE id = %s", [circuit]).fetchone()[0]
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    for field in ("starts_at", "ends_at"):
        for moment in EXTREME_TIMES:
            body = {"scope": [f"circuit:{key}"], "starts_at": soon.isoformat(),
                    "ends_at": (soon + timedelta(hours=2)).isoformat(), "reason": "fibre",
                    field: moment}
            response = client.post("/api/v1/maintenance-windows", json=body,
                                   headers={"X-CSRFToken": token})
            # the past, not a time at all, or beyond the bounds (alarms.maintenance_max_days,
            # maintenance_max_ahead_days): an end in year 9999 would be for ever
            assert response.status_code == 400, (field, moment, response.status_code)
            assert response.is_json and response.get_json()["field"] == field, (field, moment)


def test_deep_and_malformed_json_is_400_json(portal: Portal):  # noqa: F811
    seeded = seed_alarms(portal)
    client = logged_in(portal.app, "admin")
    token = _csrf(client)
    for path in (f"/api/v1/alarms/{seeded.root}/acknowledge", "/api/v1/maintenance-windows"):
        for body in HOSTILE_BODIES:
            response = client.post(path, data=body, content_type="application/json",
                                   headers={"X-CSRFToken": token})
            assert response.status_code == 400, (path, body[:20], response.status_code)
            assert response.is_json and response.get_json()["error"], path
    nested = {"comment": json.loads("[" * 100 + "]" * 100)}
    response = client.post(f"/api/v1/alarms/{seeded.root}/acknowledge", json=nested,
                           headers={"X-CSRFToken": token})
    assert response.status_code == 400
    assert "nested" in response.get_json()["error"]


def test_nul_in_any_text_is_400_naming_the_field(portal: Portal):  # noqa: F811
    seeded = seed_alarms(portal)
    client = logged_in(portal.app, "admin")
    token = _csrf(client)
    response = client.post(f"/api/v1/alarms/{seeded.root}/acknowledge",
                           json={"comment": "on it\x00"}, headers={"X-CSRFToken": token})
    assert response.status_code == 400
    assert response.get_json()["field"] == "comment"
    response = client.post("/api/v1/maintenance-windows", headers={"X-CSRFToken": token},
                           json={"scope": ["circuit:x\x00"], "starts_at": "2030-01-01T00:00Z",
                                 "ends_at": "2030-01-01T01:00Z", "reason": "r"})
    assert response.status_code == 400
    assert response.get_json()["field"] == "scope[0]"
    response = client.get("/api/v1/samples", query_string={"object_id": "1",
                                                            "metric": "if_in\x00"})
    assert response.status_code == 400
    assert response.get_json() == {"error": "metric must not contain NUL characters",
                                   "field": "metric"}
    response = client.post("/admin/users/no\x00body/password",
                           data={"password": "x" * 20, "csrf_token": token})
    assert response.status_code == 400
    anonymous = portal.app.test_client()
    page = anonymous.get("/login").get_data(as_text=True)
    response = anonymous.post("/login", data={"name": "admin\x00", "password": PASSWORD,
                                              "csrf_token": csrf_token(page)})
    assert response.status_code == 400
    assert "NUL" in response.get_data(as_text=True)


def test_request_too_large_is_413_json_under_api_and_html_elsewhere(portal: Portal):  # noqa: F811
    client = logged_in(portal.app, "admin")
    token = _csrf(client)
    limit = portal.app.config["MAX_CONTENT_LENGTH"]
    portal.app.config["MAX_CONTENT_LENGTH"] = 4096  # the same check, without 40 MiB bodies
    try:
        response = client.post("/api/v1/maintenance-windows", headers={"X-CSRFToken": token},
                               json={"reason": "x" * 10_000})
        assert response.status_code == 413
        assert response.is_json
        assert "too large" in response.get_json()["error"]
        page = client.post("/maintenance", data={"reason": "x" * 10_000, "csrf_token": token})
        assert page.status_code == 413
        assert page.mimetype == "text/html"
        assert "too large" in page.get_data(as_text=True)
    finally:
        portal.app.config["MAX_CONTENT_LENGTH"] = limit


def test_other_http_errors_under_api_are_json(portal: Portal):  # noqa: F811
    client = logged_in(portal.app, "admin")
    response = client.delete("/api/v1/circuits")
    assert response.status_code == 405
    assert response.is_json and response.get_json()["error"]
    response = client.get("/api/v1/circuits/abc")
    assert response.status_code == 404 and response.is_json


# --- generated: every route, every method, hostile values everywhere ---------------------------


class _RecordingArgs(ImmutableMultiDict):
    """Query and form fields that note every name a view asks for (`read`), so that this
    test sends hostile values to exactly the fields each route reads."""

    read: set[str] | None = None

    def _note(self, key: Any) -> None:
        if _RecordingArgs.read is not None and isinstance(key, str):
            _RecordingArgs.read.add(key)

    def get(self, key: Any, default: Any = None, type: Any = None) -> Any:
        self._note(key)
        return super().get(key, default, type)

    def __getitem__(self, key: Any) -> Any:
        self._note(key)
        return super().__getitem__(key)

    def getlist(self, key: Any, type: Any = None) -> list[Any]:
        self._note(key)
        return super().getlist(key, type)

    def __contains__(self, key: object) -> bool:
        self._note(key)
        return super().__contains__(key)


@contextmanager
def _recording(app: Flask) -> Iterator[set[str]]:
    class RecordingRequest(app.request_class):  # type: ignore[name-defined,misc]
        parameter_storage_class = _RecordingArgs

    old: type[Request] = app.request_class
    app.request_class = RecordingRequest
    _RecordingArgs.read = set()
    try:
        yield _RecordingArgs.read
    finally:
        app.request_class = old
        _RecordingArgs.read = None


def _csrf(client: FlaskClient) -> str:
    return csrf_token(client.get("/maintenance").get_data(as_text=True))


def _json_fields() -> dict[tuple[str, str], list[str]]:
    """(method, OpenAPI path) -> the JSON body's fields the document names."""
    found: dict[tuple[str, str], list[str]] = {}
    for path, operations in openapi_document()["paths"].items():
        for method, operation in operations.items():
            content = (operation.get("requestBody") or {}).get("content", {})
            schema = content.get("application/json", {}).get("schema", {})
            if "$ref" in schema:
                name = schema["$ref"].rsplit("/", 1)[1]
                schema = openapi_document()["components"]["schemas"][name]
            found[(method.upper(), path)] = list(schema.get("properties", {}))
    return found


class _Caller:
    """A logged-in client that logs in again whenever a call ended its session, and
    collects every answer that breaks the rules."""

    def __init__(self, portal: Portal, user: str) -> None:  # noqa: F811
        self.portal = portal
        self.user = user
        self.failures: list[str] = []
        self.calls = 0
        self._login()

    def _login(self) -> None:
        self.client = logged_in(self.portal.app, self.user)
        self.token = _csrf(self.client)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        self.calls += 1
        headers = {"X-CSRFToken": self.token, **kwargs.pop("headers", {})}
        if method == "POST" and "json" not in kwargs and "content_type" not in kwargs:
            kwargs.setdefault("data", {}).setdefault("csrf_token", self.token)
        response = self.client.open(path, method=method, headers=headers, **kwargs)
        sent = {k: v for k, v in kwargs.get("data", {}).items() if k != "csrf_token"} if (
            isinstance(kwargs.get("data"), dict)) else kwargs.get("data")
        where = (f"{self.user}: {method} {path[:120]!r} query={kwargs.get('query_string')!r:.200}"
                 f" data={sent!r:.200} json={kwargs.get('json')!r:.200}")
        if response.status_code >= 500:
            self.failures.append(f"{where} -> {response.status_code}")
        elif path.startswith("/api/") and not response.is_json:
            self.failures.append(f"{where} -> {response.status_code}, not JSON")
        if self.user and (response.status_code == 401 or "/login" in response.headers.get(
                "Location", "")) and self.client.get("/api/v1/customers").status_code == 401:
            self._login()  # that call ended our session (a password reset, say)
        return response


def _ticket_of_a(portal: Portal) -> int:  # noqa: F811
    """A ticket of tenant A's, opened by the NOC (sla.tickets), for the ticket routes."""
    from sla.tickets import open_ticket
    from store.queries import Viewer

    with portal.database.pool.connection() as conn:
        return open_ticket(conn, Viewer("noc.wang", "noc"), title="benign",
                           circuit_id=min(portal.a.ids["circuit"])).id


def _benign(portal: Portal, seeded: Any) -> dict[str, Any]:  # noqa: F811
    now = datetime.now(UTC)
    return {
        "customer_id": portal.a.customer_id, "circuit_id": min(portal.a.ids["circuit"]),
        "device_id": min(portal.a.ids["device"]), "port_id": min(portal.a.ids["port"]),
        "alarm_id": min(seeded.services_a), "window_id": seeded.window_b, "vpn_id": 1,
        "ticket_id": _ticket_of_a(portal), "step": "acknowledge",  # a ticket page's step
        "report_id": 1, "mark_id": 1,  # SLA reports and marks (none issued: 404 is benign)
        "version": 1,  # a configuration version (none fetched: 404 is benign)
        "customer": "hsbank", "circuit": "HSB-L3VPN-0001",
        "key": "noc.wang", "package": "socket.io-client", "path": "dist/socket.io.min.js",
        "filename": "keyline.css", "anything": "nothing-here",
        # query and form fields
        "object_id": min(portal.a.ids["port"]), "metric": "if_in_bps",
        "start": (now - timedelta(hours=1)).isoformat(), "end": now.isoformat(),
        "points": "10", "state": "all", "severity": "critical", "acknowledged": "false",
        "limit": "10", "selected": str(min(seeded.services_a)), "status": "active",
        "next": "/my/", "lang": "en", "comment": "looking", "reason": "fibre work",
        "kind": "circuit", "starts_at": (now + timedelta(days=3)).isoformat(),
        "ends_at": (now + timedelta(days=3, hours=1)).isoformat(),
    }


def _path(rule: Any, values: dict[str, str]) -> str:
    """The rule's URL with raw (already escaped) text in its variables."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: values[m.group(1)], rule.rule)


def _rules(app: Flask) -> Iterator[tuple[Any, str]]:
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def _explore(caller: _Caller, rule: Any, method: str, benign: dict[str, Any],
             json_fields: dict[tuple[str, str], list[str]], seen: set[str]) -> int:
    """Call one route with hostile values in each place it reads; the number of calls."""
    app = caller.portal.app
    calls = caller.calls
    valid_path = {name: quote(str(benign[name]), safe="/") for name in rule.arguments}
    path = _path(rule, valid_path)
    # which query and form fields the route reads, from a benign call
    with _recording(app) as read:
        caller.call(method, path, query_string={
            k: v for k, v in benign.items() if k not in rule.arguments})
    read.discard("csrf_token")
    seen |= read
    # path variables
    for name in rule.arguments:
        converter = type(rule._converters[name]).__name__
        for value in HOSTILE_INT_PATH if converter == "IdConverter" else HOSTILE_STR_PATH:
            response = caller.call(method, _path(rule, {**valid_path, name: value}))
            if converter == "IdConverter" and response.status_code not in (400, 404, 405):
                caller.failures.append(f"{rule.rule} {name}={value!r} -> "
                                       f"{response.status_code}, not 404")
    # query (and, for POST, form) fields, one at a time, the others benign
    base = {k: str(benign[k]) for k in read if k in benign}
    for name in sorted(read):
        for value in HOSTILE_TEXT:
            fields = {**base, name: value}
            if method == "POST":
                caller.call(method, path, data=fields)
            else:
                caller.call(method, path, query_string=fields)
    # JSON bodies of the API's writes
    openapi_path = "/" + re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}",
                                rule.rule).removeprefix("/api/v1/")
    fields = json_fields.get((method, openapi_path))
    if fields is not None:
        body = {f: benign.get(f, "x") for f in fields}
        for field in fields:
            for value in HOSTILE_JSON_VALUES:
                caller.call(method, path, json={**body, field: value})
        for raw in HOSTILE_BODIES:
            caller.call(method, path, data=raw, content_type="application/json")
    return caller.calls - calls


@pytest.mark.slow
def test_no_route_answers_5xx_to_hostile_input(portal: Portal):  # noqa: F811
    seeded = seed_alarms(portal)
    benign = _benign(portal, seeded)
    # a view's exception becomes the 500 a client would get, so that every one is listed
    portal.app.config["PROPAGATE_EXCEPTIONS"] = False
    json_fields = _json_fields()
    assert json_fields, "the OpenAPI document names no request bodies"
    failures: list[str] = []
    explored = 0
    seen: set[str] = set()  # the query and form fields the routes were seen to read
    for user in ("admin", USER_A):
        caller = _Caller(portal, user)
        for rule, method in _rules(portal.app):
            if rule.endpoint in ("auth.login", "auth.logout"):
                continue  # below, without a session to lose
            explored += 1
            _explore(caller, rule, method, benign, json_fields, seen)
        failures += caller.failures
        assert caller.calls > 1000
    # logging in and out, anonymously: last, so that failed logins throttle nobody above
    anonymous = _Caller.__new__(_Caller)
    anonymous.portal, anonymous.user, anonymous.failures, anonymous.calls = (
        portal, "", [], 0)
    anonymous.client = portal.app.test_client()
    anonymous.token = csrf_token(anonymous.client.get("/login").get_data(as_text=True))
    for rule, method in _rules(portal.app):
        if rule.endpoint in ("auth.login", "auth.logout"):
            for value in HOSTILE_TEXT:
                for name in ("name", "password", "next"):
                    anonymous.call(method, rule.rule, data={"name": "admin",
                                                            "password": "x", name: value})
                anonymous.call(method, rule.rule, query_string={"next": value})
    failures += anonymous.failures
    assert explored >= 40
    assert {"object_id", "metric", "start", "end", "customer_id", "limit", "selected",
            "comment", "reason", "starts_at", "password", "a_port_id"} <= seen, seen
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:40])
