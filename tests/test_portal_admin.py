"""The admin's pages (portal/admin.py), with Flask's test client on a real database.

Fixtures from tests/test_portal_access.py (the example inventory imported, passwords set).
Covered: only admins reach the pages (everyone else 404, every form needs its CSRF token);
an upload with a broken file lists each problem with file, line and field and stores
nothing; a valid upload (YAML files or a zip of the folder) can be checked without storing,
then imported; an import that would retire the admin is refused; local users are added,
given a new password, retired and restored; a discovered link is accepted.
"""

from __future__ import annotations

import html
import io
import re
import zipfile
from datetime import UTC, datetime, timedelta

from flask.testing import FlaskClient

from keyline.wiring import EXAMPLE_INVENTORY
from store.topology import declared_links, record_discovery_run
from tests.test_portal_access import (  # noqa: F401
    PASSWORD,
    USER_A,
    Portal,
    csrf_token,
    logged_in,
    login,
    portal,
)

ADMIN = "admin"
NEW_CUSTOMER = """
  - id: nanfeng
    name: 南丰制造 Nanfeng Manufacturing
    account_manager: am.zhao
"""


def example_files(**changes: str) -> dict[str, bytes]:
    """The example inventory's files by name; `changes` replaces a file's text."""
    files = {path.name: path.read_bytes() for path in sorted(EXAMPLE_INVENTORY.glob("*.yaml"))}
    for name, text in changes.items():
        files[name] = text.encode()
    return files


def upload(client: FlaskClient, files: dict[str, bytes], action: str = "import"):
    page = client.get("/admin/inventory").get_data(as_text=True)
    data = {"csrf_token": csrf_token(page), "action": action,
            "files": [(io.BytesIO(content), name) for name, content in files.items()]}
    return client.post("/admin/inventory", data=data, content_type="multipart/form-data")


def customers_yaml(extra: str = "", replace: tuple[str, str] | None = None) -> str:
    text = (EXAMPLE_INVENTORY / "customers.yaml").read_text()
    if replace:
        text = text.replace(*replace, 1)
    return text.replace("\nsites:", extra.rstrip("\n") + "\n\nsites:", 1) if extra else text


def count(portal: Portal, sql: str, *args: object) -> int:  # noqa: F811
    with portal.database.pool.connection() as conn:
        return conn.execute(sql, list(args)).fetchone()[0]


# --- who may ------------------------------------------------------------------------------


def test_only_admins_reach_the_admin_pages(portal: Portal):  # noqa: F811
    rules = [rule for rule in portal.app.url_map.iter_rules() if rule.endpoint.startswith("admin.")]
    assert len(rules) >= 7
    for user in (USER_A, "noc.wang"):
        client = logged_in(portal.app, user)
        token = csrf_token(client.get("/", follow_redirects=True).get_data(as_text=True))
        for rule in rules:
            path = rule.build(dict.fromkeys(rule.arguments, ADMIN))[1]
            if "GET" in rule.methods:
                assert client.get(path).status_code == 404, (user, path)
            if "POST" in rule.methods:
                response = client.post(path, data={"csrf_token": token, "password": PASSWORD * 2,
                                                   "a_port_id": "1", "z_port_id": "2"})
                assert response.status_code == 404, (user, path)
                assert client.post(path).status_code == 400  # no CSRF token
        assert "/admin/" not in client.get("/", follow_redirects=True).get_data(as_text=True)
    anonymous = portal.app.test_client()
    assert "/login" in anonymous.get("/admin/users").headers["Location"]
    admin = logged_in(portal.app, ADMIN)
    assert admin.get("/admin/").status_code == 302
    for path in ("/admin/inventory", "/admin/users", "/admin/topology"):
        assert admin.get(path).status_code == 200, path
    assert 'href="/admin/inventory"' in admin.get("/noc/").get_data(as_text=True)
    assert admin.post("/admin/users", data={"login": "x.y", "role": "noc"}).status_code == 400


# --- inventory import ---------------------------------------------------------------------


def test_broken_import_lists_problems_and_stores_nothing(portal: Portal):  # noqa: F811
    client = logged_in(portal.app, ADMIN)
    runs = count(portal, "SELECT count(*) FROM import_runs")
    broken = customers_yaml(NEW_CUSTOMER, replace=("account_manager: am.chen",
                                                   "account_manager: am.nobody"))
    response = upload(client, example_files(**{"customers.yaml": broken}))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    rows = re.findall(r'<tr class="problem">\s*<td class="file">([^<]*)</td>\s*'
                      r'<td class="line num">(\d+)</td>\s*<td class="field">([^<]*)</td>\s*'
                      r'<td class="message">(.*?)</td>', page, re.S)
    assert ("customers.yaml", "7", "customers[0].account_manager") in [r[:3] for r in rows]
    assert any("am.nobody" in html.unescape(r[3]) for r in rows)
    assert "keyline-upload-" not in page  # no server paths in the page
    assert count(portal, "SELECT count(*) FROM import_runs") == runs
    assert count(portal, "SELECT count(*) FROM customers WHERE key = 'nanfeng'") == 0

    syntax = upload(client, {"bad.yaml": b"customers:\n  - id: [unclosed\n", "notes.txt": b"hi"})
    assert syntax.status_code == 422
    page = html.unescape(syntax.get_data(as_text=True))
    assert "bad.yaml" in page and "(yaml)" in page and "notes.txt" in page


def test_valid_import_checks_then_applies(portal: Portal):  # noqa: F811
    client = logged_in(portal.app, ADMIN)
    files = example_files(**{"customers.yaml": customers_yaml(NEW_CUSTOMER)})
    checked = upload(client, files, action="check")
    assert checked.status_code == 200
    page = checked.get_data(as_text=True)
    assert "nothing was stored" in page
    assert re.search(r'<tr data-kind="customers">.*?class="added"><span class="count">1</span>'
                     r'<div class="desc">nanfeng', page, re.S)
    assert count(portal, "SELECT count(*) FROM customers WHERE key = 'nanfeng'") == 0

    # the same folder as a zip, with junk and a path that tries to escape: both ignored
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for name, content in files.items():
            zipped.writestr(f"inventory/{name}", content)
        zipped.writestr("inventory/.hidden.yaml", b"customers: [oops")
        zipped.writestr("__MACOSX/inventory/._customers.yaml", b"\x00\x01")
        zipped.writestr("../../escape.yaml", b"customers: [oops")
    imported = upload(client, {"inventory.zip": archive.getvalue()})
    assert imported.status_code == 200, imported.get_data(as_text=True)
    page = imported.get_data(as_text=True)
    assert ">Imported<" in page and "inventory/customers.yaml" in page
    assert count(portal, "SELECT count(*) FROM customers WHERE key = 'nanfeng'") == 1
    with portal.database.pool.connection() as conn:
        source = conn.execute("SELECT source FROM customers WHERE key = 'nanfeng'").fetchone()[0]
    assert source.startswith("upload:inventory/customers.yaml:")
    again = upload(client, {"inventory.zip": archive.getvalue()})
    assert "0 added, 0 changed, 0 retired" in again.get_data(as_text=True)


def test_import_that_would_retire_the_admin_is_refused(portal: Portal):  # noqa: F811
    client = logged_in(portal.app, ADMIN)
    users = (EXAMPLE_INVENTORY / "users.yaml").read_text()
    without_admin = re.sub(r"  - login: admin\n(    .*\n)+", "", users)
    assert "login: admin" not in without_admin
    response = upload(client, example_files(**{"users.yaml": without_admin}))
    assert response.status_code == 409
    assert count(portal, "SELECT count(*) FROM users WHERE key = %s AND retired_at IS NULL",
                 ADMIN) == 1
    assert client.get("/admin/users").status_code == 200  # still logged in


# --- users --------------------------------------------------------------------------------


def _token(client: FlaskClient) -> str:
    return csrf_token(client.get("/admin/users").get_data(as_text=True))


def test_admin_manages_local_users(portal: Portal):  # noqa: F811
    client = logged_in(portal.app, ADMIN)
    new_password = "a fresh password 2"
    short = client.post("/admin/users", data={
        "csrf_token": _token(client), "login": "hsbank.audit", "role": "customer",
        "customer": "hsbank", "password": "short", "password_again": "short"})
    assert short.status_code == 400
    assert "password too short" in short.get_data(as_text=True)
    assert 'value="short"' not in short.get_data(as_text=True)
    added = client.post("/admin/users", data={
        "csrf_token": _token(client), "login": "hsbank.audit", "role": "customer",
        "customer": "hsbank", "full_name": "Audit", "password": PASSWORD,
        "password_again": PASSWORD})
    assert added.status_code == 302
    page = client.get("/admin/users").get_data(as_text=True)
    assert "User hsbank.audit added." in page and PASSWORD not in page
    assert 'data-user="hsbank.audit"' in page
    assert login(portal.app.test_client(), "hsbank.audit").status_code == 302

    assert client.post("/admin/users/hsbank.audit/password", data={
        "csrf_token": _token(client), "password": new_password}).status_code == 302
    # a failed login makes the next attempt for that name wait (portal/security.py): the
    # app's clock is moved past each wait instead of sleeping
    now = [datetime.now(UTC)]
    portal.app.extensions["keyline.clock"] = lambda: now[0]
    backoff = timedelta(seconds=portal.app.extensions["keyline.accounts"].login_backoff_base_s)
    assert login(portal.app.test_client(), "hsbank.audit").status_code == 401
    now[0] += backoff
    assert login(portal.app.test_client(), "hsbank.audit", new_password).status_code == 302

    session = logged_in(portal.app, USER_A)  # an inventory user cannot be retired here
    refused = client.post("/admin/users/hsbank.ops/retire", data={"csrf_token": _token(client)})
    assert refused.status_code == 400 and "inventory" in refused.get_data(as_text=True)
    assert session.get("/my/").status_code == 302
    assert "/customers/" in session.get("/my/").headers["Location"]

    auditor = portal.app.test_client()
    login(auditor, "hsbank.audit", new_password)
    assert client.post("/admin/users/hsbank.audit/retire",
                       data={"csrf_token": _token(client)}).status_code == 302
    assert "/login" in auditor.get("/my/").headers["Location"]  # its session ended
    assert login(portal.app.test_client(), "hsbank.audit", new_password).status_code == 401
    now[0] += backoff
    assert client.post("/admin/users/hsbank.audit/restore",
                       data={"csrf_token": _token(client)}).status_code == 302
    assert login(portal.app.test_client(), "hsbank.audit", new_password).status_code == 302

    own = client.post(f"/admin/users/{ADMIN}/retire", data={"csrf_token": _token(client)})
    assert own.status_code == 400


# --- topology -----------------------------------------------------------------------------


def test_admin_accepts_a_discovered_link(portal: Portal):  # noqa: F811
    with portal.database.pool.connection() as conn:
        linked = {link.devices for link in declared_links(conn)}
        # the first ports of two devices that no declared link joins
        ports = conn.execute(
            """SELECT DISTINCT ON (d.key) d.key, d.id, p.id
                 FROM ports p JOIN devices d ON d.id = p.device_id
                WHERE p.retired_at IS NULL ORDER BY d.key, p.id""").fetchall()
        (dev_a, id_a, port_a), (dev_b, id_b, port_b) = next(
            (a, b) for a in ports for b in ports
            if a[0] < b[0] and frozenset((a[0], b[0])) not in linked)
        now = datetime.now(UTC)
        record_discovery_run(conn, started_at=now, finished_at=now, devices_asked=2,
                             walked_device_ids=[id_a, id_b],
                             links=[(port_a, port_b, [dev_a, dev_b])])
    client = logged_in(portal.app, ADMIN)
    page = client.get("/admin/topology").get_data(as_text=True)
    low, high = sorted((port_a, port_b))
    assert f'data-ports="{low}-{high}"' in page and "Seen but not declared" in page
    token = csrf_token(page)
    forged = client.post("/admin/topology/accept", data={
        "csrf_token": token, "a_port_id": low, "z_port_id": high + 1000})
    assert forged.status_code == 400
    accepted = client.post("/admin/topology/accept", data={
        "csrf_token": token, "a_port_id": high, "z_port_id": low})
    assert accepted.status_code == 302
    with portal.database.pool.connection() as conn:
        row = conn.execute("SELECT accepted_by FROM accepted_links WHERE a_port_id = %s"
                           " AND z_port_id = %s", [low, high]).fetchone()
    assert row == (ADMIN,)
    page = client.get("/admin/topology").get_data(as_text=True)
    assert "accepted." in page
    assert f'data-ports="{low}-{high}"' not in page  # declared now


def test_an_oversized_request_is_refused_before_it_is_read(portal):  # noqa: F811
    from portal.app import MAX_REQUEST_BYTES

    client = portal.app.test_client()
    response = client.post("/login", data=b"x" * (MAX_REQUEST_BYTES + 1),
                           content_type="application/octet-stream")
    assert response.status_code == 413


def test_collection_health_shows_the_services_and_what_was_dropped(
        portal: Portal):  # noqa: F811
    from datetime import UTC, datetime, timedelta

    from store.collection import record_drops, record_heartbeat

    now = datetime.now(UTC)
    with portal.database.pool.connection() as conn:
        device_id, device_key = conn.execute("SELECT id, key FROM devices ORDER BY key"
                                             " LIMIT 1").fetchone()
        record_heartbeat(conn, "collector", now, {
            "devices": 18, "polls": {"reachable": 40}, "skipped_polls": 0,
            "devices_overdue": 0, "spool": {"bytes": 0, "store_available": True,
                                            "outages": 1}, "traps": {}})
        record_drops(conn, [(device_id, "samples", 120, (now - timedelta(minutes=5))
                             .isoformat(), now.isoformat())])
    page = logged_in(portal.app, ADMIN).get("/admin/health")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'data-service="collector"' in text and "18 devices" in text
    assert device_key in text and ">120<" in text
