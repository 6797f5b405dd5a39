"""Sessions and tokens that end, and login protection that cannot be turned against users
(portal/security.py, store/sessions.py, portal/socket_sessions.py, portal/proxies.py).

Written from the attacker's side, on the example inventory (tests/test_portal_access.py's
fixtures) and a real PostgreSQL: a session cookie saved before logout, a `keyline user
passwd`, an admin's password reset, a retirement (by the admin page or by an inventory
import) or an admin's "end all sessions" is replayed and refused; the idle and absolute
timeouts end a session (the app's clock is moved, nobody sleeps); an API token dies with a
password change unless it is a service token, stays dead when its retired user is restored,
and is refused once expired; a live socket (python-socketio's client against the portal on
a real server, and against `keyline serve` in its own process) is disconnected when its
session ends or its user is retired. Login
protection: failures make the next attempt wait, but the right password after the wait
works; one address is limited; X-Forwarded-For counts only from a trusted proxy; two portal
apps on one database share the counters.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from config.settings import AccountSettings, load_settings
from keyline.wiring import EXAMPLE_INVENTORY, load_inventory_files
from portal.app import create_app
from portal.proxies import is_trusted
from store.database import Database
from store.inventory import apply_inventory
from store.sessions import open_sessions
from store.users import (
    add_local_user,
    create_api_token,
    end_user_sessions,
    list_api_tokens,
    set_local_user_retired,
    set_password,
)
from tests.test_cli import keyline
from tests.test_portal_access import (  # noqa: F401
    PASSWORD,
    USER_A,
    USER_B,
    Portal,
    csrf_token,
    logged_in,
    login,
    portal,
)

ADMIN = "admin"
COOKIE = "keyline_session"
NEW_PASSWORD = "a brand new password 2"
LOCAL_USER = "hsbank.audit"


def cookie_of(client: FlaskClient) -> str:
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None, "no session cookie"
    return cookie.value


def replay(app: Flask, cookie: str) -> FlaskClient:
    """A fresh client (another machine) presenting a saved cookie."""
    client = app.test_client()
    client.set_cookie(COOKIE, cookie)
    return client


def admitted(app: Flask, cookie: str) -> bool:
    """Does a request with this cookie get served (not sent to the login page)?"""
    client = replay(app, cookie)
    page = client.get("/my/")
    if page.status_code == 302 and "/login" in page.headers["Location"]:
        assert client.get("/api/v1/circuits").status_code == 401
        return False
    assert page.status_code in (200, 302), page.status_code
    return True


def post_admin(client: FlaskClient, path: str, **data: str):
    token = csrf_token(client.get("/admin/users").get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **data})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Clock:
    """The app's clock (`keyline.clock`), moved by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def move(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def with_clock(app: Flask) -> Clock:
    clock = Clock()
    app.extensions["keyline.clock"] = clock
    return clock


def with_rules(app: Flask, **changes: object) -> AccountSettings:
    rules = app.extensions["keyline.accounts"].model_copy(update=changes)
    app.extensions["keyline.accounts"] = rules
    return rules


# --- a saved cookie replayed ---------------------------------------------------------------


def test_cookie_replayed_after_logout_is_refused(portal: Portal):  # noqa: F811
    client = logged_in(portal.app, USER_A)
    saved = cookie_of(client)
    assert admitted(portal.app, saved)
    # the cookie holds the session's random secret (and the CSRF token), never who it is
    content = portal.app.session_interface.get_signing_serializer(portal.app).loads(saved)
    assert set(content) <= {"sid", "_permanent", "csrf_token", "lang"}, content
    assert USER_A not in repr(content) and len(content["sid"]) >= 40
    page = client.get("/my/", follow_redirects=True).get_data(as_text=True)
    assert client.post("/logout", data={"csrf_token": csrf_token(page)}).status_code == 302
    assert not admitted(portal.app, saved)
    with portal.database.pool.connection() as conn:
        assert open_sessions(conn, USER_A) == []
        reason = conn.execute("SELECT end_reason FROM sessions").fetchone()[0]
    assert reason == "logout"


def test_a_late_answer_to_an_older_request_does_not_undo_the_login(
        portal: Portal):  # noqa: F811
    """What a browser does as a user logs in: the login page's own requests (its favicon,
    a script) may be answered after the next page, and a browser stores every cookie it is
    sent, in the order the answers come. Those answers must not put the older cookie back,
    or the page's forms fail their CSRF check (the language button after a login) or the
    login is undone."""
    client = portal.app.test_client()
    page = client.get("/login").get_data(as_text=True)
    before_login = cookie_of(client)
    assert client.post("/login", data={"name": USER_A, "password": PASSWORD,
                                       "csrf_token": csrf_token(page)}).status_code == 302
    after_redirect = cookie_of(client)
    home = client.get("/", follow_redirects=True).get_data(as_text=True)
    form_token = csrf_token(home)
    for older in (before_login, after_redirect):
        for path in ("/favicon.ico", "/static/customer.js", "/login"):
            late = replay(portal.app, older).get(path)
            for header in late.headers.getlist("Set-Cookie"):
                name, _, rest = header.partition("=")
                if name == COOKIE:  # what the browser would store, last answer wins
                    client.set_cookie(COOKIE, rest.split(";", 1)[0])
    answer = client.post("/language", data={"lang": "zh_CN", "csrf_token": form_token,
                                            "next": "/my/"})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    assert 'lang="zh-CN"' in client.get("/my/", follow_redirects=True).get_data(as_text=True)


def test_cookie_replayed_after_keyline_user_passwd_is_refused(portal: Portal):  # noqa: F811
    saved = [cookie_of(logged_in(portal.app, USER_A)) for _ in range(2)]
    other = cookie_of(logged_in(portal.app, USER_B))
    result = keyline("user", "passwd", USER_A, "--password-stdin", url=portal.database.url,
                     stdin=NEW_PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    assert NEW_PASSWORD not in result.stdout + result.stderr
    assert not any(admitted(portal.app, cookie) for cookie in saved)
    assert admitted(portal.app, other)  # another user's session is not touched
    assert login(portal.app.test_client(), USER_A, NEW_PASSWORD).status_code == 302


def test_cookie_replayed_after_an_admin_reset_is_refused(portal: Portal):  # noqa: F811
    saved = cookie_of(logged_in(portal.app, USER_A))
    admin = logged_in(portal.app, ADMIN)
    answer = post_admin(admin, f"/admin/users/{USER_A}/password", password=NEW_PASSWORD)
    assert answer.status_code == 302
    assert not admitted(portal.app, saved)
    assert admitted(portal.app, cookie_of(admin))


def test_cookie_replayed_after_retirement_is_refused(portal: Portal):  # noqa: F811
    with portal.database.pool.connection() as conn:
        add_local_user(conn, LOCAL_USER, "customer", PASSWORD, customer="hsbank")
    saved = cookie_of(logged_in(portal.app, LOCAL_USER))
    admin = logged_in(portal.app, ADMIN)
    assert post_admin(admin, f"/admin/users/{LOCAL_USER}/retire").status_code == 302
    assert not admitted(portal.app, saved)
    # restoring the user brings back no old session: it logs in again
    assert post_admin(admin, f"/admin/users/{LOCAL_USER}/restore").status_code == 302
    assert not admitted(portal.app, saved)
    assert login(portal.app.test_client(), LOCAL_USER).status_code == 302


def test_inventory_import_that_retires_a_user_ends_its_sessions_and_tokens(
        portal: Portal):  # noqa: F811
    saved = cookie_of(logged_in(portal.app, USER_B))
    with portal.database.pool.connection() as conn:
        token = create_api_token(conn, USER_B, "erp", service=True)
    inventory = load_inventory_files([EXAMPLE_INVENTORY])
    without = dataclasses.replace(inventory, users={
        key: user for key, user in inventory.users.items() if key != USER_B})
    with portal.database.pool.connection() as conn:
        summary = apply_inventory(conn, without)
    assert USER_B in summary.kinds["users"].retired
    assert not admitted(portal.app, saved)
    client = portal.app.test_client()
    assert client.get("/api/v1/circuits", headers=bearer(token)).status_code == 401
    with portal.database.pool.connection() as conn:
        apply_inventory(conn, inventory)  # back in the files: restored, with nothing old
    assert not admitted(portal.app, saved)
    assert client.get("/api/v1/circuits", headers=bearer(token)).status_code == 401


def test_admin_ends_all_sessions_of_a_user(portal: Portal):  # noqa: F811
    saved = [cookie_of(logged_in(portal.app, USER_A)) for _ in range(3)]
    admin = logged_in(portal.app, ADMIN)
    page = admin.get("/admin/users").get_data(as_text=True)
    assert f'action="/admin/users/{USER_A}/end-sessions"' in page
    answer = post_admin(admin, f"/admin/users/{USER_A}/end-sessions")
    assert answer.status_code == 302
    assert f"Sessions of {USER_A} ended: 3." in admin.get("/admin/users").get_data(as_text=True)
    assert not any(admitted(portal.app, cookie) for cookie in saved)
    assert admitted(portal.app, cookie_of(admin))
    # the same from the command line
    again = cookie_of(logged_in(portal.app, USER_A))
    result = keyline("user", "end-sessions", USER_A, url=portal.database.url)
    assert result.returncode == 0, result.stderr
    assert "1 session(s)" in result.stdout
    assert not admitted(portal.app, again)
    unknown = keyline("user", "end-sessions", "nobody.here", url=portal.database.url)
    assert unknown.returncode == 2 and "does not exist" in unknown.stderr


# --- timeouts ------------------------------------------------------------------------------


def test_idle_timeout_ends_a_session_nobody_uses(portal: Portal):  # noqa: F811
    clock = with_clock(portal.app)
    rules = with_rules(portal.app, session_idle_timeout_s=600, session_max_age_s=3600)
    client = logged_in(portal.app, USER_A)
    saved = cookie_of(client)
    clock.move(rules.session_idle_timeout_s - 60)
    assert admitted(portal.app, saved)  # used: its idle time starts again
    clock.move(rules.session_idle_timeout_s - 60)
    assert admitted(portal.app, saved)
    clock.move(rules.session_idle_timeout_s + 1)
    assert not admitted(portal.app, saved)
    clock.move(-rules.session_idle_timeout_s)  # ended for good, not only "too old"
    assert not admitted(portal.app, saved)


def test_absolute_timeout_ends_even_a_busy_session(portal: Portal):  # noqa: F811
    clock = with_clock(portal.app)
    rules = with_rules(portal.app, session_idle_timeout_s=600, session_max_age_s=3600)
    saved = cookie_of(logged_in(portal.app, USER_A))
    for _ in range(rules.session_max_age_s // 500):
        clock.move(500)
        assert admitted(portal.app, saved)
    clock.move(rules.session_max_age_s % 500 + 1)
    assert not admitted(portal.app, saved)


def test_the_sweep_ends_expired_sessions(portal: Portal):  # noqa: F811
    clock = with_clock(portal.app)
    rules = with_rules(portal.app, session_idle_timeout_s=600)
    logged_in(portal.app, USER_A)
    logged_in(portal.app, USER_B)
    sockets = portal.app.extensions["keyline.socket_sessions"]
    assert sockets.sweep(clock.now) == []
    with portal.database.pool.connection() as conn:
        assert len(open_sessions(conn)) == 2
    sockets.sweep(clock.now + timedelta(seconds=rules.session_idle_timeout_s + 1))
    with portal.database.pool.connection() as conn:
        assert open_sessions(conn) == []
        reasons = {row[0] for row in conn.execute("SELECT end_reason FROM sessions")}
    assert reasons == {"idle"}


# --- API tokens ----------------------------------------------------------------------------


def test_token_dies_with_a_password_change_but_a_service_token_survives(
        portal: Portal):  # noqa: F811
    client = portal.app.test_client()
    with portal.database.pool.connection() as conn:
        personal = create_api_token(conn, USER_A, "my script")
        service = create_api_token(conn, USER_A, "erp sync", service=True)
    for token in (personal, service):
        assert client.get("/api/v1/circuits", headers=bearer(token)).status_code == 200
    with portal.database.pool.connection() as conn:
        set_password(conn, USER_A, NEW_PASSWORD)
    refused = client.get("/api/v1/circuits", headers=bearer(personal))
    assert refused.status_code == 401
    assert refused.get_json() == {"error": "invalid, expired or revoked API token",
                                  "field": None}
    assert client.get("/api/v1/circuits", headers=bearer(service)).status_code == 200
    with portal.database.pool.connection() as conn:
        reasons = {t.label: t.revoke_reason for t in list_api_tokens(conn, USER_A)}
    assert reasons == {"my script": "password changed", "erp sync": None}


def test_restored_user_gets_no_old_token_back(portal: Portal):  # noqa: F811
    client = portal.app.test_client()
    with portal.database.pool.connection() as conn:
        add_local_user(conn, LOCAL_USER, "customer", PASSWORD, customer="hsbank")
        tokens = [create_api_token(conn, LOCAL_USER, "script"),
                  create_api_token(conn, LOCAL_USER, "erp", service=True)]
        set_local_user_retired(conn, LOCAL_USER, True)
        set_local_user_retired(conn, LOCAL_USER, False)
    for token in tokens:
        assert client.get("/api/v1/circuits", headers=bearer(token)).status_code == 401
    assert logged_in(portal.app, LOCAL_USER).get("/my/").status_code == 302


def test_expired_token_is_refused(portal: Portal):  # noqa: F811
    clock = with_clock(portal.app)
    client = portal.app.test_client()
    with portal.database.pool.connection() as conn:
        token = create_api_token(conn, USER_A, "short-lived", expires_days=2, now=clock.now)
    assert client.get("/api/v1/circuits", headers=bearer(token)).status_code == 200
    clock.move(2 * 86_400 - 60)
    assert client.get("/api/v1/circuits", headers=bearer(token)).status_code == 200
    clock.move(61)
    expired = client.get("/api/v1/circuits", headers=bearer(token))
    assert expired.status_code == 401 and expired.is_json
    assert "expired" in expired.get_json()["error"]


def test_token_commands_expiry_and_service(portal: Portal):  # noqa: F811
    url = portal.database.url
    made = keyline("user", "token", USER_B, "--label", "erp sync", "--service",
                   "--expires-days", "30", url=url)
    assert made.returncode == 0, made.stderr
    token = made.stdout.splitlines()[0]
    assert "Service token" in made.stderr
    listing = keyline("user", "tokens", USER_B, url=url)
    line = next(line for line in listing.stdout.splitlines() if "erp sync" in line)
    expires = (datetime.now(UTC) + timedelta(days=30)).date()
    assert "service" in line and "active" in line and token not in listing.stdout
    assert any(str(expires + timedelta(days=d)) in line for d in (-1, 0, 1))
    too_long = keyline("user", "token", USER_B, "--label", "x", "--expires-days", "99999",
                       url=url)
    assert too_long.returncode == 2 and "--expires-days" in too_long.stderr
    revoked = keyline("user", "revoke-token", line.split()[0], url=url)
    assert revoked.returncode == 0, revoked.stderr
    relisted = keyline("user", "tokens", url=url).stdout.splitlines()
    assert "revoked" in next(line for line in relisted if "erp sync" in line)
    assert portal.app.test_client().get("/api/v1/circuits",
                                        headers=bearer(token)).status_code == 401
    huge = keyline("user", "revoke-token", str(2**63), url=url)
    assert huge.returncode == 2 and "no active token" in huge.stderr


def test_admin_lists_and_revokes_tokens(portal: Portal):  # noqa: F811
    with portal.database.pool.connection() as conn:
        token = create_api_token(conn, USER_A, "wallboard script")
        token_id = list_api_tokens(conn, USER_A)[0].id
    admin = logged_in(portal.app, ADMIN)
    page = admin.get("/admin/users").get_data(as_text=True)
    assert "wallboard script" in page and token[:9] in page and token not in page
    assert post_admin(admin, "/admin/tokens/revoke", token_id=str(token_id)).status_code == 302
    client = portal.app.test_client()
    assert client.get("/api/v1/circuits", headers=bearer(token)).status_code == 401
    again = post_admin(admin, "/admin/tokens/revoke", token_id=str(token_id))
    assert again.status_code == 400 and "no active token" in again.get_data(as_text=True)
    assert post_admin(admin, "/admin/tokens/revoke", token_id="x").status_code == 400


# --- live sockets --------------------------------------------------------------------------


def test_live_socket_is_disconnected_when_its_session_ends(portal: Portal):  # noqa: F811
    import socketio

    from tests.test_portal_live import Listener, serve, session_cookie, wait_for

    with portal.database.pool.connection() as conn:
        add_local_user(conn, LOCAL_USER, "customer", PASSWORD, customer="hsbank")
    room = f"customer:{portal.a.customer_id}"
    with serve(portal.app) as live:
        sockets = portal.app.extensions["keyline.socket_sessions"]
        # an admin ends the user's sessions: every socket of them goes, others stay
        cookie = session_cookie(live.url, USER_A)
        first, second = Listener(live.url, cookie), Listener(live.url, cookie)
        bystander = Listener(live.url, session_cookie(live.url, USER_B))
        assert first.join(room)["ok"]
        with portal.database.pool.connection() as conn:
            assert len(end_user_sessions(conn, USER_A)) == 1
        wait_for(lambda: not first.client.connected and not second.client.connected,
                 timeout_s=30)
        assert bystander.client.connected
        with pytest.raises(socketio.exceptions.ConnectionError):  # the cookie is dead
            Listener(live.url, cookie)
        # a retired user's socket stops streaming
        retiree = Listener(live.url, session_cookie(live.url, LOCAL_USER))
        assert retiree.join(room)["ok"]
        with portal.database.pool.connection() as conn:
            set_local_user_retired(conn, LOCAL_USER, True)
        wait_for(lambda: not retiree.client.connected, timeout_s=30)
        # retired behind the store functions' back: the sweep finds it
        sneaky = Listener(live.url, session_cookie(live.url, USER_B))
        with portal.database.pool.connection() as conn:
            conn.execute("UPDATE users SET retired_at = now() WHERE key = %s", [USER_B])
        assert sockets.sweep()
        wait_for(lambda: not sneaky.client.connected and not bystander.client.connected,
                 timeout_s=30)
        assert sockets.disconnected >= 5


def test_open_live_page_keeps_its_session_alive(portal: Portal):  # noqa: F811
    from tests.test_portal_live import Listener, serve, session_cookie

    clock = with_clock(portal.app)
    rules = with_rules(portal.app, session_idle_timeout_s=600)
    with serve(portal.app) as live:
        sockets = portal.app.extensions["keyline.socket_sessions"]
        cookie = session_cookie(live.url, USER_A)
        listener = Listener(live.url, cookie)
        idle = session_cookie(live.url, USER_B)  # logged in, then nothing
        clock.move(rules.session_idle_timeout_s - 60)
        assert sockets.sweep() == []  # the socket's session is touched, nobody is dropped
        clock.move(rules.session_idle_timeout_s - 60)
        assert sockets.sweep() == []
        assert listener.client.connected
        with portal.database.pool.connection() as conn:
            assert [s.user_key for s in open_sessions(conn)] == [USER_A]
        assert not admitted(portal.app, idle.split("=", 1)[1])
        listener.close()


# --- login protection ----------------------------------------------------------------------


def attempt(app: Flask, name: str, password: str, address: str = "192.0.2.10",
            forwarded_for: str | None = None):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    page = client.get("/login", headers=headers).get_data(as_text=True)
    return client.post("/login", headers=headers,
                       data={"name": name, "password": password,
                             "csrf_token": csrf_token(page)})


def test_backoff_makes_the_next_attempt_wait_but_never_locks_out(portal: Portal):  # noqa: F811
    clock = with_clock(portal.app)
    rules = with_rules(portal.app, login_backoff_base_s=2.0, login_backoff_max_s=16.0)
    waits = []
    for _ in range(6):
        assert attempt(portal.app, USER_A, "a wrong password").status_code == 401
        refused = attempt(portal.app, USER_A, PASSWORD)  # at once: even the right one waits
        assert refused.status_code == 429
        assert "Too many failed logins" in refused.get_data(as_text=True)
        waits.append(int(refused.headers["Retry-After"]))
        clock.move(waits[-1] / 2)  # hammering during the wait counts for nothing
        assert attempt(portal.app, USER_A, "another wrong one").status_code == 429
        clock.move(waits[-1] / 2)
    assert waits == [2, 4, 8, 16, 16, 16]  # grows per failure, up to the cap
    assert rules.login_backoff_max_s == waits[-1]
    assert attempt(portal.app, USER_A, PASSWORD).status_code == 302  # after the wait: in
    # the streak is cleared: the next failure waits the base time again
    assert attempt(portal.app, USER_A, "a wrong password").status_code == 401
    assert int(attempt(portal.app, USER_A, PASSWORD).headers["Retry-After"]) == 2
    # another account is not slowed by this one's failures
    assert attempt(portal.app, USER_B, PASSWORD).status_code == 302


def test_one_address_guessing_many_names_is_limited(portal: Portal):  # noqa: F811
    clock = with_clock(portal.app)
    rules = with_rules(portal.app, address_max_failures=3, address_window_s=300)
    for name in ("noc.wang", ADMIN, "nobody.here"):
        assert attempt(portal.app, name, "a wrong password").status_code == 401
    refused = attempt(portal.app, USER_B, PASSWORD)
    assert refused.status_code == 429
    assert "5 minutes" in refused.get_data(as_text=True)
    assert attempt(portal.app, USER_B, PASSWORD, address="192.0.2.99").status_code == 302
    clock.move(rules.address_window_s + 1)
    assert attempt(portal.app, USER_B, PASSWORD).status_code == 302


def test_forwarded_for_is_ignored_from_an_untrusted_address(portal: Portal):  # noqa: F811
    with_clock(portal.app)
    with_rules(portal.app, address_max_failures=3)
    for number, name in enumerate(("noc.wang", ADMIN, "nobody.here")):
        answer = attempt(portal.app, name, "a wrong password",
                         forwarded_for=f"198.51.100.{number}")
        assert answer.status_code == 401
    # every header named another address: all counted against the real one all the same
    assert attempt(portal.app, USER_B, PASSWORD,
                   forwarded_for="198.51.100.200").status_code == 429
    with portal.database.pool.connection() as conn:
        keys = {row[0] for row in conn.execute("SELECT key FROM login_failures")}
    assert "addr:192.0.2.10" in keys and not any("198.51.100" in key for key in keys)


def test_forwarded_for_is_honoured_from_a_trusted_proxy(
        portal: Portal, tmp_path: Path):  # noqa: F811
    settings = load_settings(None, overrides={
        "data_dir": tmp_path / "proxied", "database_url": portal.database.url,
        "trusted_proxies": ["192.0.2.0/28"],
        "accounts": {"address_max_failures": 3}})
    app = create_app(settings, portal.database)
    with_clock(app)
    proxy = "192.0.2.5"
    for number, name in enumerate(("noc.wang", ADMIN, "nobody.here")):  # three clients
        answer = attempt(app, name, "a wrong password", address=proxy,
                         forwarded_for=f"198.51.100.{number}")
        assert answer.status_code == 401
    assert attempt(app, USER_B, PASSWORD, address=proxy,
                   forwarded_for="198.51.100.200").status_code == 302
    for name in ("ghost.one", "ghost.two"):  # one client behind the proxy, guessing
        attempt(app, name, "a wrong password", address=proxy, forwarded_for="198.51.100.0")
    assert attempt(app, USER_A, PASSWORD, address=proxy,
                   forwarded_for="198.51.100.0").status_code == 429
    # a client that claims the proxy's role from outside it is taken at its own address
    assert attempt(app, USER_A, PASSWORD, address="203.0.113.7",
                   forwarded_for="198.51.100.0").status_code == 302
    with portal.database.pool.connection() as conn:
        addresses = {row[0] for row in conn.execute("SELECT address FROM sessions")}
    assert addresses == {"198.51.100.200", "203.0.113.7"}


def test_counters_are_shared_by_two_portals_on_one_database(
        portal: Portal, tmp_path: Path):  # noqa: F811
    # a second process: the same database and data folder (so the same session key)
    settings = load_settings(None, overrides={"data_dir": tmp_path / "data",
                                              "database_url": portal.database.url})
    second = create_app(settings, portal.database)
    clock = with_clock(portal.app)
    second.extensions["keyline.clock"] = clock  # one clock for both, as on one machine
    assert attempt(portal.app, USER_A, "a wrong password").status_code == 401
    assert attempt(second, USER_A, PASSWORD).status_code == 429
    assert attempt(second, USER_A, "still wrong", address="192.0.2.77").status_code == 429
    clock.move(second.extensions["keyline.accounts"].login_backoff_base_s)
    assert attempt(second, USER_A, PASSWORD).status_code == 302
    # and a session begun on one is ended on the other
    client = logged_in(second, USER_B)
    saved = cookie_of(client)
    assert admitted(portal.app, saved)
    page = client.get("/my/", follow_redirects=True).get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf_token(page)})
    assert not admitted(portal.app, saved)


def test_trusted_proxy_addresses():
    import ipaddress

    networks = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]
    assert is_trusted("10.1.2.3", networks)
    assert is_trusted("::ffff:10.1.2.3", networks)
    assert is_trusted("fd00::1", networks)
    assert not is_trusted("11.0.0.1", networks)
    assert not is_trusted("", networks) and not is_trusted(None, networks)
    assert not is_trusted("unix:/run/keyline.sock", networks)


def test_keyline_serve_disconnects_the_sockets_of_an_ended_session(db: Database):
    """The same through `keyline serve` (the gevent portal server, another process): the
    "session.ended" event crosses from this process's store call to that one's sockets."""
    import socketio

    from tests.portal_process import serve as keyline_serve
    from tests.test_portal_live import wait_for
    from tests.test_portal_server import PASSWORD as SERVE_PASSWORD
    from tests.test_portal_server import USER as SERVE_USER
    from tests.test_portal_server import set_user_password

    with keyline_serve(db) as served:
        set_user_password(db)
        client = served.url.rstrip("/")
        with requests.Session() as http:
            page = http.get(client + "/login", timeout=10).text
            answer = http.post(client + "/login", timeout=10, allow_redirects=False,
                               data={"name": SERVE_USER, "password": SERVE_PASSWORD,
                                     "csrf_token": csrf_token(page)})
            assert answer.status_code == 302, answer.text
            cookie = f"{COOKIE}={http.cookies[COOKIE]}"
        listener = socketio.Client(reconnection=False)
        listener.connect(client, headers={"Cookie": cookie}, transports=["websocket"],
                         wait_timeout=10)
        try:
            assert listener.call("join", {"room": "noc"}, timeout=30)["ok"]
            with db.pool.connection() as conn:
                assert len(end_user_sessions(conn, SERVE_USER)) == 1
            wait_for(lambda: not listener.connected, timeout_s=30)
            with pytest.raises(socketio.exceptions.ConnectionError):
                socketio.Client(reconnection=False).connect(
                    client, headers={"Cookie": cookie}, transports=["websocket"],
                    wait_timeout=10)
        finally:
            if listener.connected:
                listener.disconnect()
