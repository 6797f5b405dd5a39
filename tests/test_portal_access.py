"""Portal accounts and tenant isolation, with Flask's test client on a real database.

The fixtures here (the example inventory imported, passwords set, some traffic samples, every
circuit's service state "up" as the alarm pipeline would have stored it) are shared by the
other tests/test_portal_*.py files, which import them; `set_circuit_states` stores other
states, for tests that do not run the pipeline.

The isolation test walks `app.url_map`, so a route added later is covered without editing
it: as a customer of tenant A (hsbank) every route that takes an id is called with each of
tenant B's (jinlu's) ids and with the operator's shared devices, and must answer 404; every
route without ids must not mention any of B's keys or names. A route whose arguments this
test cannot fill makes it fail until it is taught about it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from config.settings import load_settings
from keyline.wiring import EXAMPLE_INVENTORY, import_inventory, load_inventory_files
from portal.app import create_app
from store.circuit_states import StoredState, record_states
from store.database import Database
from store.timeseries import SampleWriter
from store.users import add_local_user, set_password

PASSWORD = "portal test password 1"
CUSTOMER_A = "hsbank"
CUSTOMER_B = "jinlu"
USER_A = "hsbank.ops"
USER_B = "jinlu.it"


@dataclass
class Tenant:
    """A customer's objects as the store has them: ids and the words that name them."""

    customer_id: int
    ids: dict[str, set[int]] = field(default_factory=dict)
    words: set[str] = field(default_factory=set)


@dataclass
class Portal:
    app: Flask
    database: Database
    a: Tenant
    b: Tenant
    shared_device_ids: set[int]


def _tenant(conn, key: str) -> Tenant:
    customer_id, name = conn.execute("SELECT id, name FROM customers WHERE key = %s",
                                     [key]).fetchone()
    tenant = Tenant(customer_id, words={name})
    tenant.ids["customer"] = {customer_id}
    circuits = conn.execute("SELECT id, key, a_port_id, z_port_id FROM circuits"
                            " WHERE customer_id = %s", [customer_id]).fetchall()
    tenant.ids["circuit"] = {row[0] for row in circuits}
    tenant.words |= {row[1] for row in circuits}
    devices = conn.execute(
        "SELECT d.id, d.key FROM devices d JOIN sites s ON s.id = d.site_id"
        " WHERE s.customer_id = %s", [customer_id]).fetchall()
    tenant.ids["device"] = {row[0] for row in devices}
    tenant.words |= {row[1] for row in devices}
    ports = conn.execute("SELECT id FROM ports WHERE device_id = ANY(%s)",
                         [list(tenant.ids["device"])]).fetchall()
    tenant.ids["port"] = {row[0] for row in ports} | {p for r in circuits for p in r[2:]}
    tenant.ids["other"] = {row[0] for row in conn.execute(
        "SELECT id FROM sites WHERE customer_id = %(c)s UNION SELECT id FROM vpns"
        " WHERE customer_id = %(c)s UNION SELECT id FROM users WHERE customer_id = %(c)s",
        {"c": customer_id})}
    return tenant


def set_circuit_states(database: Database, states: dict[int, str], *,
                       cause: str = "set by the test", underlying: str | None = None,
                       at: datetime | None = None) -> int:
    """Store circuits' service states (circuit id -> state) as the alarm pipeline would
    (store.circuit_states.record_states, which also announces them); the event's id."""
    at = at or datetime.now(UTC)
    with database.pool.connection() as conn:
        customers = dict(conn.execute("SELECT id, customer_id FROM circuits").fetchall())
        record_states(conn, [StoredState(
            circuit_id, customers.get(circuit_id), at, state, None,
            underlying if state == "maintenance" else None, cause,
            "in_service" if state == "up" else "test", (), (), None)
            for circuit_id, state in states.items()])
        return conn.execute("SELECT max(id) FROM events").fetchone()[0]


def all_ids(tenant: Tenant) -> set[int]:
    return set().union(*tenant.ids.values())


@pytest.fixture
def portal(db: Database, tmp_path: Path) -> Iterator[Portal]:
    inventory = load_inventory_files([EXAMPLE_INVENTORY])
    import_inventory(db, inventory, [EXAMPLE_INVENTORY])
    with db.pool.connection() as conn:
        for user in (USER_A, USER_B, "noc.wang", "admin"):
            set_password(conn, user, PASSWORD)
        a, b = _tenant(conn, CUSTOMER_A), _tenant(conn, CUSTOMER_B)
        shared = {row[0] for row in conn.execute(
            "SELECT d.id FROM devices d JOIN sites s ON s.id = d.site_id"
            " WHERE s.customer_id IS NULL")}
    # a minute of traffic on every port, so a leak of samples would show
    now = datetime.now(UTC)
    with SampleWriter(db.pool) as writer:
        for port_id in a.ids["port"] | b.ids["port"]:
            for seconds in range(0, 60, 10):
                at = now - timedelta(seconds=seconds)
                writer.add(at, port_id, "if_in_bps", 1_000_000.0 + seconds)
                writer.add(at, port_id, "if_out_bps", 2_000_000.0 + seconds)
                writer.add(at, port_id, "if_oper_up", 1.0)
    # every circuit in service, as the alarm pipeline judged it a moment ago
    with db.pool.connection() as conn:
        circuits = [row[0] for row in conn.execute("SELECT id FROM circuits")]
    set_circuit_states(db, dict.fromkeys(circuits, "up"), cause="in service",
                       at=now - timedelta(minutes=5))
    settings = load_settings(None, overrides={"data_dir": tmp_path / "data",
                                              "database_url": db.url})
    app = create_app(settings, db)
    app.config["TESTING"] = True
    yield Portal(app, db, a, b, shared)


def csrf_token(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF token in the page"
    return match.group(1)


def login(client: FlaskClient, name: str, password: str = PASSWORD, **extra: str):
    page = client.get("/login").get_data(as_text=True)
    return client.post("/login", data={"name": name, "password": password,
                                       "csrf_token": csrf_token(page), **extra})


def logged_in(app: Flask, name: str) -> FlaskClient:
    client = app.test_client()
    response = login(client, name)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


# --- accounts ------------------------------------------------------------------------------


def test_pages_need_login(portal: Portal):
    client = portal.app.test_client()
    for path in ("/", "/noc/", "/my/", f"/customers/{portal.a.customer_id}/"):
        response = client.get(path)
        assert response.status_code == 302
        assert "/login" in response.headers["Location"]
    api = client.get("/api/v1/circuits")
    assert api.status_code == 401
    assert api.get_json() == {"error": "authentication required", "field": None}


def test_login_sets_a_safe_cookie_and_logout_ends_it(portal: Portal):
    client = portal.app.test_client()
    response = login(client, USER_A)
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # not configured here
    assert PASSWORD not in cookie
    assert client.get("/my/").status_code == 302
    page = client.get("/my/", follow_redirects=True).get_data(as_text=True)
    assert "HSB-L3VPN-0001" in page
    assert PASSWORD not in page
    logout = client.post("/logout", data={"csrf_token": csrf_token(page)})
    assert logout.status_code == 302
    assert "/login" in client.get("/my/").headers["Location"]


def test_secure_cookie_is_configurable(portal: Portal, monkeypatch, tmp_path: Path):
    monkeypatch.setenv("KEYLINE_SECURE_COOKIES", "1")
    settings = load_settings(None, overrides={"data_dir": tmp_path / "secure"})
    app = create_app(settings, portal.database)
    response = login(app.test_client(), USER_A)
    assert "Secure" in response.headers["Set-Cookie"]


def test_forms_without_csrf_token_are_refused(portal: Portal):
    client = portal.app.test_client()
    refused = client.post("/login", data={"name": USER_A, "password": PASSWORD})
    assert refused.status_code == 400
    assert client.get("/my/").headers["Location"].endswith("/login?next=/my/")
    logged = logged_in(portal.app, USER_A)
    assert logged.post("/logout").status_code == 400  # no token: still logged in
    assert logged.get("/my/").status_code == 302
    assert "/customers/" in logged.get("/my/").headers["Location"]


def test_wrong_password_and_unknown_user_look_the_same(portal: Portal):
    client = portal.app.test_client()
    wrong = login(client, USER_A, "not the password at all")
    unknown = login(client, "nobody.here", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong name or password." in wrong.get_data(as_text=True)
    assert "Wrong name or password." in unknown.get_data(as_text=True)


# Login protection (backoff, per-address limit, shared counters, proxies): see
# tests/test_portal_sessions.py.


def test_retired_user_loses_its_session(portal: Portal):
    client = logged_in(portal.app, USER_A)
    assert client.get("/my/").status_code == 302
    with portal.database.pool.connection() as conn:
        conn.execute("UPDATE users SET retired_at = now() WHERE key = %s", [USER_A])
    assert "/login" in client.get("/my/").headers["Location"]


def test_next_only_goes_to_this_site(portal: Portal):
    client = portal.app.test_client()
    response = login(client, USER_A, next="//evil.example/")
    assert response.headers["Location"] == "/"
    client = portal.app.test_client()
    response = login(client, USER_A, next="/api/v1/circuits")
    assert response.headers["Location"] == "/api/v1/circuits"


def test_customer_user_needs_its_customer():
    from store.queries import Viewer

    with pytest.raises(ValueError):
        Viewer("x", "customer")
    with pytest.raises(ValueError):
        Viewer("x", "noc", customer_id=1)


# --- audiences -----------------------------------------------------------------------------


def test_staff_see_every_customer_and_traffic(portal: Portal):
    client = logged_in(portal.app, "noc.wang")
    page = client.get("/", follow_redirects=True).get_data(as_text=True)
    for word in portal.a.words | portal.b.words:
        if not word.startswith("ce-"):  # devices are not listed on the overview
            assert word in page
    assert "1 Mbit/s / 2 Mbit/s" in page
    assert "Topology" in page and "SLA reports" in page


def test_customer_sees_only_its_circuits(portal: Portal):
    client = logged_in(portal.app, USER_A)
    page = client.get("/", follow_redirects=True).get_data(as_text=True)
    assert "HSB-L3VPN-0001" in page
    assert 'class="status status-up"' in page
    for word in portal.b.words:
        assert word not in page
    assert client.get("/noc/").status_code == 404


def test_local_customer_user_is_bound_to_its_customer(portal: Portal):
    with portal.database.pool.connection() as conn:
        add_local_user(conn, "jinlu.extra", "customer", PASSWORD, customer=CUSTOMER_B)
    client = logged_in(portal.app, "jinlu.extra")
    page = client.get("/", follow_redirects=True).get_data(as_text=True)
    assert "JL-L3VPN-0001" in page
    assert "HSB-L3VPN-0001" not in page


# --- isolation -----------------------------------------------------------------------------

# Routes that take no object id in their path (static files, vendored packages, the API's
# catch-all for unknown paths): called with a harmless value, checked for B's words.
NO_ID_ARGUMENTS = {
    "static": {"filename": "keyline.css"},
    "vendor.vendor_file": {"package": "socket.io-client", "path": "dist/socket.io.min.js"},
    "api.unknown": {"anything": "nothing-here"},
}

# Routes that take an object id in their query string.
QUERY_IDS = {
    "api.samples": ("object_id", {"metric": "if_in_bps"}),
    "api.circuits": ("customer_id", {}),
    "api.alarm_api.list_alarms": ("customer_id", {"state": "all"}),
    "alarms.console": ("selected", {"state": "all"}),
}


def _routes(app: Flask):
    for rule in app.url_map.iter_rules():
        if "GET" in rule.methods:
            yield rule


def test_customer_never_sees_another_customers_objects(portal: Portal):
    from tests.test_portal_alarms import seed_alarms

    seeded = seed_alarms(portal)  # B's alarms and maintenance window exist too
    client = logged_in(portal.app, USER_A)
    foreign = all_ids(portal.b) | portal.shared_device_ids
    # arguments that are not inventory ids: the ids of B's that must stay unseen
    foreign_for = {"alarm_id": seeded.services_b | seeded.only_b,
                   "selected": seeded.services_b | seeded.only_b}
    checked_with_ids = 0
    for rule in _routes(portal.app):
        arguments = set(rule.arguments)
        if rule.endpoint in NO_ID_ARGUMENTS:
            values = NO_ID_ARGUMENTS[rule.endpoint]
            assert set(values) == arguments, f"{rule}: update NO_ID_ARGUMENTS"
            response = client.get(rule.build(values)[1], follow_redirects=True)
            _assert_no_words(response, portal.b.words, rule.rule)
            continue
        int_arguments = {name for name in arguments
                         if type(rule._converters[name]).__name__ in (
                             "IntegerConverter", "IdConverter")}  # portal/params.py
        assert int_arguments == arguments, f"{rule}: teach this test its arguments"
        if not arguments:
            path = rule.build({})[1]
            response = client.get(path, follow_redirects=True)
            _assert_no_words(response, portal.b.words, path)
            if rule.endpoint in QUERY_IDS:
                name, extra = QUERY_IDS[rule.endpoint]
                for object_id in foreign_for.get(name, foreign):
                    response = client.get(path, query_string={name: object_id, **extra})
                    _assert_no_words(response, portal.b.words, f"{path}?{name}={object_id}")
                    if rule.endpoint == "api.samples":
                        assert response.status_code == 404, (path, object_id)
                        assert response.get_json()["field"] == "object_id"
                    elif rule.endpoint == "api.circuits":
                        assert response.get_json() == {"circuits": []}
                    elif rule.endpoint == "api.alarm_api.list_alarms":
                        assert response.get_json() == {"alarms": []}
                    else:
                        assert f'data-alarm="{object_id}"' not in response.get_data(
                            as_text=True)
            continue
        (argument,) = arguments if len(arguments) == 1 else (None,)
        for object_id in foreign_for.get(argument, foreign):  # type: ignore[arg-type]
            path = rule.build(dict.fromkeys(arguments, object_id))[1]
            response = client.get(path, follow_redirects=True)
            assert response.status_code == 404, (path, response.status_code)
            _assert_no_words(response, portal.b.words, path)
            checked_with_ids += 1
    assert checked_with_ids >= 3 * len(foreign)  # customer pages, circuit page, API


def operator_ports(portal: Portal) -> set[int]:
    """The ports of the operator's routers (a PE port may end several customers' circuits)."""
    with portal.database.pool.connection() as conn:
        return {row[0] for row in conn.execute(
            "SELECT id FROM ports WHERE device_id = ANY(%s)",
            [sorted(portal.shared_device_ids)])}


def test_customer_reaches_its_own_objects(portal: Portal):
    """The positive half of isolation: A's ids answer 200 on the routes B's ids were 404."""
    client = logged_in(portal.app, USER_A)
    circuit_id = min(portal.a.ids["circuit"])
    device_id = min(portal.a.ids["device"])
    # a port of A's own router (a PE port that also ends another customer's circuit is
    # the operator's: tests/test_portal_tenant_text.py)
    port_id = min(portal.a.ids["port"] - operator_ports(portal))
    assert client.get(f"/customers/{portal.a.customer_id}/").status_code == 200
    assert client.get(f"/circuits/{circuit_id}").status_code == 200
    assert client.get(f"/api/v1/circuits/{circuit_id}").status_code == 200
    assert client.get(f"/api/v1/devices/{device_id}/ports").status_code == 200
    series = client.get("/api/v1/samples", query_string={"object_id": port_id,
                                                          "metric": "if_in_bps"})
    assert series.status_code == 200
    assert series.get_json()["points"]


def _assert_no_words(response, words: set[str], where: str) -> None:
    body = response.get_data(as_text=True)
    leaked = sorted(word for word in words if word in body)
    assert not leaked, f"{where} shows another customer's {leaked}"


def test_account_manager_never_sees_other_managers_customers(portal: Portal):
    """An account manager is staff narrowed to the customers whose `account_manager` names
    them (store.queries.Viewer.manager): am.zhao manages xinhe only, so every route that
    takes an id answers 404 for hsbank's and jinlu's objects, and the pages and API lists
    without ids name neither of them."""
    with portal.database.pool.connection() as conn:
        set_password(conn, "am.zhao", PASSWORD)
    client = logged_in(portal.app, "am.zhao")
    foreign = all_ids(portal.a) | all_ids(portal.b)
    words = {w for w in portal.a.words | portal.b.words if not w.startswith("ce-")}
    checked = 0
    for rule in _routes(portal.app):
        arguments = set(rule.arguments)
        if rule.endpoint in NO_ID_ARGUMENTS:
            continue
        if not arguments:
            path = rule.build({})[1]
            _assert_no_words(client.get(path, follow_redirects=True), words, path)
            continue
        for object_id in foreign:
            path = rule.build(dict.fromkeys(arguments, object_id))[1]
            response = client.get(path, follow_redirects=True)
            assert response.status_code == 404, (path, response.status_code)
            checked += 1
    assert checked >= 3 * len(foreign)


# --- live rooms (portal/live.py) -----------------------------------------------------------


def test_socket_rooms_follow_the_same_scopes(portal: Portal):
    """Socket.IO rooms are the live counterpart of the routes above: a customer user may join
    only its own customer's room, staff the NOC's and any customer's. (What each room is sent
    is tested with real sockets in tests/test_portal_live.py.)"""
    from portal.live import room_allowed
    from store.queries import Viewer

    customers = [portal.a.customer_id, portal.b.customer_id]
    a = Viewer(USER_A, "customer", customer_id=portal.a.customer_id, customer_key=CUSTOMER_A)
    staff = Viewer("noc.wang", "noc")
    assert room_allowed(a, f"customer:{portal.a.customer_id}", customers)
    for room in ("noc", f"customer:{portal.b.customer_id}", "customer:", "customer:999",
                 f"customer:{portal.a.customer_id} ", ""):
        assert not room_allowed(a, room, customers), room
    assert room_allowed(staff, "noc", customers)
    assert room_allowed(staff, f"customer:{portal.b.customer_id}", customers)
    assert not room_allowed(staff, "customer:999", customers)
