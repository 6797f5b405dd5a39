"""A device's CLI side in the portal (portal/device_cli.py) and the one host key acceptance
(collectors.cli.accept_host_key) behind the page, the REST API and `keyline cli
accept-host-key`, with Flask's test client on a real database holding the example
inventory (tests/test_portal_access.py's fixtures).

The state is put in the store as the collector leaves it (store/cli.py): p-bj1's first key
trusted on first use, then another key offered and refused (host-key-changed), with the
failed run's raw output holding a secret the process knows, which must never reach a page.
The operator's staff see the status and the keys; engineers and admins also the raw output
and the accept form; noc may look but not accept (403); an account manager or a customer
sees none of it and gets 404, as for a device that does not exist.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from alarms.actions import ActionError, Refusal
from collectors.cli import accept_host_key
from config.secrets import register_secret
from store import cli as cli_store
from store.queries import Viewer
from store.users import set_password
from tests.test_portal_access import (  # noqa: F401
    PASSWORD,
    USER_A,
    Portal,
    csrf_token,
    logged_in,
    portal,
)
from tests.test_portal_alarms import ENGINEER, NOC, P_ROUTER, bearer, token_for

MANAGER = "am.chen"  # hsbank's account manager
OLD = ("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIOldOldOldOldOldOldOldOldOldOldOldOldOld1",
       "SHA256:oldOLDoldOLDoldOLDoldOLDoldOLDoldOLDoldOLD1")
NEW = ("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAINewNewNewNewNewNewNewNewNewNewNewNewNew2",
       "SHA256:newNEWnewNEWnewNEWnewNEWnewNEWnewNEWnewNEW2")
SECRET = "planted-ssh-password-7f3a91"
RAW = f"Username: keyline\nPassword: {SECRET}\n\n% garbage the collector could not read\n"
REASON = f"host key changed: the device offers {NEW[2]}, Keyline trusts {OLD[2]}"


def _device_id(portal: Portal, key: str) -> int:  # noqa: F811
    with portal.database.pool.connection() as conn:
        row = conn.execute("SELECT id FROM devices WHERE key = %s", [key]).fetchone()
    assert row is not None
    return row[0]


@pytest.fixture
def changed(portal: Portal) -> int:  # noqa: F811
    """p-bj1: OLD trusted on first use an hour ago, NEW offered and refused since ten
    minutes ago; the last failed run's raw output holds SECRET."""
    register_secret(SECRET)
    now = datetime.now(UTC)
    router = _device_id(portal, P_ROUTER)
    with portal.database.pool.connection() as conn:
        for user in (ENGINEER, MANAGER):
            set_password(conn, user, PASSWORD)
        cli_store.trust_first_host_key(conn, router, *OLD, now - timedelta(hours=1))
        cli_store.record_offered_host_key(conn, router, *NEW, now - timedelta(minutes=10))
        cli_store.record_cli_status(conn, router, "host-key-changed", REASON,
                                    now - timedelta(minutes=10), raw_output=RAW)
    return router


def _keys(portal: Portal, device_id: int) -> set[tuple[str, str, str | None]]:  # noqa: F811
    with portal.database.pool.connection() as conn:
        return {(row.fingerprint, row.state, row.trusted_by)
                for row in cli_store.host_keys(conn, [device_id])}


UNCHANGED = {(OLD[2], "trusted", cli_store.FIRST_USE), (NEW[2], "offered", None)}


# --- who sees what -------------------------------------------------------------------------


def test_engineer_sees_status_keys_raw_output_and_the_form(portal: Portal,  # noqa: F811
                                                           changed: int):
    page = logged_in(portal.app, ENGINEER).get(f"/devices/{changed}").get_data(as_text=True)
    assert 'id="cli"' in page
    assert 'data-status="host-key-changed"' in page and "host key changed (refused)" in page
    assert f"Keyline trusts {OLD[2]}" in page  # the reason
    assert f'data-fingerprint="{OLD[2]}"' in page and "trusted on first use at" in page
    assert f'<div class="offered-key" data-fingerprint="{NEW[2]}">' in page
    assert 'class="action accept-host-key"' in page and 'name="csrf_token"' in page
    assert f'name="fingerprint" value="{NEW[2]}"' in page
    assert f"its host key is {NEW[2]}: trust it from now on." in page  # the confirmation
    assert '<details id="cli-raw-output">' in page
    assert "% garbage the collector could not read" in page
    assert SECRET not in page


def test_noc_sees_status_and_keys_but_neither_raw_output_nor_the_form(
        portal: Portal, changed: int):  # noqa: F811
    client = logged_in(portal.app, NOC)
    page = client.get(f"/devices/{changed}").get_data(as_text=True)
    assert 'data-status="host-key-changed"' in page and NEW[2] in page and OLD[2] in page
    assert "accept-host-key" not in page and "cli-raw-output" not in page
    assert "could not read" not in page and SECRET not in page
    state = client.get(f"/devices/{changed}/status").get_json()
    assert state["cli"]["status"]["status"] == "host-key-changed"
    assert state["cli"]["raw_output"] is None and state["cli"]["may_accept"] is False
    response = client.post(f"/devices/{changed}/cli/accept-host-key", data={
        "fingerprint": NEW[2], "csrf_token": csrf_token(page)})
    assert response.status_code == 403
    assert "Your role may not accept host keys." in response.get_data(as_text=True)
    response = portal.app.test_client().post(
        f"/api/v1/devices/{changed}/cli/accept-host-key", json={"fingerprint": NEW[2]},
        headers=bearer(token_for(portal, NOC)))
    assert response.status_code == 403
    assert _keys(portal, changed) == UNCHANGED


@pytest.mark.parametrize("user", [USER_A, MANAGER])
def test_customers_and_account_managers_never_see_it(portal: Portal, changed: int,  # noqa: F811
                                                     user: str):
    client = logged_in(portal.app, user)
    own = min(portal.a.ids["device"])  # a device at hsbank's own site: they see its page
    with portal.database.pool.connection() as conn:
        cli_store.record_cli_status(conn, own, "auth-failed", "the device refused the login",
                                    datetime.now(UTC), raw_output=RAW)
    page = client.get(f"/devices/{own}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'id="cli"' not in text and "refused the login" not in text and SECRET not in text
    assert "cli" not in client.get(f"/devices/{own}/status").get_json()
    token = token_for(portal, user)
    for device in (own, changed):
        response = portal.app.test_client().get(f"/api/v1/devices/{device}/cli",
                                                headers=bearer(token))
        assert response.status_code == 404
        assert response.get_json() == {"error": "no such device", "field": "device_id"}
        response = portal.app.test_client().post(
            f"/api/v1/devices/{device}/cli/accept-host-key", json={"fingerprint": NEW[2]},
            headers=bearer(token))
        assert response.status_code == 404
        response = client.post(f"/devices/{device}/cli/accept-host-key", data={
            "fingerprint": NEW[2], "csrf_token": csrf_token(text)})
        assert response.status_code == 404
    assert _keys(portal, changed) == UNCHANGED


def test_noc_inventory_lists_cli_problems_to_operators_only(portal: Portal,  # noqa: F811
                                                             changed: int):
    with portal.database.pool.connection() as conn:  # an ok device is no problem
        cli_store.record_cli_status(conn, min(portal.a.ids["device"]), "ok", None,
                                    datetime.now(UTC))
    page = logged_in(portal.app, NOC).get("/noc/").get_data(as_text=True)
    assert 'id="cli-problems"' in page
    assert (f'<a href="/devices/{changed}#cli" data-device="{P_ROUTER}"'
            ' data-status="host-key-changed">') in page
    assert page.count("data-status=\"ok\"") == 0
    page = logged_in(portal.app, MANAGER).get("/noc/").get_data(as_text=True)
    assert 'id="cli-problems"' not in page and "host-key-changed" not in page


# --- accepting -----------------------------------------------------------------------------


def test_engineer_accepts_the_key_seen_on_the_page(portal: Portal, changed: int):  # noqa: F811
    client = logged_in(portal.app, ENGINEER)
    page = client.get(f"/devices/{changed}").get_data(as_text=True)
    path = f"/devices/{changed}/cli/accept-host-key"
    assert client.post(path, data={"fingerprint": NEW[2]}).status_code == 400  # no CSRF
    token = csrf_token(page)
    stale = client.post(path, data={"fingerprint": "SHA256:someOtherKey", "csrf_token": token})
    assert stale.status_code == 409
    assert "no longer offers the key you saw" in stale.get_data(as_text=True)
    missing = client.post(path, data={"csrf_token": token})
    assert missing.status_code == 400
    assert _keys(portal, changed) == UNCHANGED

    accepted = client.post(path, data={"fingerprint": NEW[2], "csrf_token": token})
    assert accepted.status_code == 302
    assert accepted.headers["Location"].endswith(f"/devices/{changed}#cli")
    assert _keys(portal, changed) == {(OLD[2], "retired", cli_store.FIRST_USE),
                                      (NEW[2], "trusted", ENGINEER)}
    page = client.get(f"/devices/{changed}").get_data(as_text=True)
    assert f'data-fingerprint="{NEW[2]}"' in page and f"accepted by {ENGINEER} at" in page
    assert 'id="cli-accepted-note"' in page  # the status is the refused run's until the next
    assert "accept-host-key" not in page  # nothing offered any more
    again = client.post(path, data={"fingerprint": NEW[2], "csrf_token": token})
    assert again.status_code == 409


def test_rest_view_and_acceptance(portal: Portal, changed: int):  # noqa: F811
    client = portal.app.test_client()
    headers = bearer(token_for(portal, ENGINEER))
    view = client.get(f"/api/v1/devices/{changed}/cli", headers=headers).get_json()
    assert view["status"]["status"] == "host-key-changed"
    assert view["status"]["reason"] == REASON
    assert view["trusted_key"]["fingerprint"] == OLD[2]
    assert view["trusted_key"]["trusted_on_first_use"] is True
    assert [key["fingerprint"] for key in view["offered_keys"]] == [NEW[2]]
    assert "could not read" in view["raw_output"] and SECRET not in view["raw_output"]
    path = f"/api/v1/devices/{changed}/cli/accept-host-key"
    for body, status, field in (({}, 400, "fingerprint"),
                                ({"fingerprint": 7}, 400, "fingerprint"),
                                ({"fingerprint": "md5:aa"}, 400, "fingerprint"),
                                ({"fingerprint": "SHA256:other"}, 409, "fingerprint")):
        response = client.post(path, json=body, headers=headers)
        assert (response.status_code, response.get_json()["field"]) == (status, field), body
    assert client.post(path, data="[1]", content_type="application/json",
                       headers=headers).status_code == 400
    assert _keys(portal, changed) == UNCHANGED
    response = client.post(path, json={"fingerprint": NEW[2]}, headers=headers)
    assert response.status_code == 200
    after = response.get_json()
    assert after["trusted_key"]["fingerprint"] == NEW[2]
    assert after["trusted_key"]["trusted_by"] == ENGINEER
    assert after["offered_keys"] == [] and after["accepted_since_last_run"] is True
    nothing = client.post(path, json={"fingerprint": NEW[2]}, headers=headers)
    assert nothing.status_code == 409
    assert nothing.get_json()["error"] == "no host key offered: nothing to accept"


def test_the_rule_refuses_in_order(portal: Portal, changed: int):  # noqa: F811
    """NOT_FOUND (no device, or one the actor may not see) before FORBIDDEN (a role that
    may see but not accept) before the key's own checks."""
    customer = Viewer(USER_A, "customer", portal.a.customer_id, "hsbank")
    own = min(portal.a.ids["device"])
    cases = [
        (Viewer(NOC, "noc"), 10**9, Refusal.NOT_FOUND),
        (Viewer(NOC, "noc"), changed, Refusal.FORBIDDEN),
        (customer, own, Refusal.NOT_FOUND),
        (customer, changed, Refusal.NOT_FOUND),
        (Viewer(MANAGER, "account_manager"), own, Refusal.NOT_FOUND),
        (Viewer(ENGINEER, "engineer"), 10**9, Refusal.NOT_FOUND),
        (NOC, P_ROUTER, Refusal.FORBIDDEN),  # a user key: looked up, role noc
        (USER_A, P_ROUTER, Refusal.NOT_FOUND),
        ("nobody.here", P_ROUTER, Refusal.INVALID),
        ("  ", P_ROUTER, Refusal.INVALID),
    ]
    with portal.database.pool.connection() as conn:
        for actor, device, refusal in cases:
            with pytest.raises(ActionError) as refused:
                accept_host_key(conn, device, actor, NEW[2])
            assert refused.value.refusal is refusal, (actor, device, refused.value)
        with pytest.raises(ActionError, match=r"offers SHA256:new.*not SHA256:stale"):
            accept_host_key(conn, P_ROUTER, ENGINEER, "SHA256:stale")
        with pytest.raises(ActionError, match="fingerprint is required"):
            accept_host_key(conn, changed, Viewer("admin", "admin"), None,
                            fingerprint_required=True)
    assert _keys(portal, changed) == UNCHANGED
    with portal.database.pool.connection() as conn:
        accepted = accept_host_key(conn, changed, Viewer("admin", "admin"), NEW[2])
    assert (accepted.fingerprint, accepted.trusted_by) == (NEW[2], "admin")


# --- the command line ----------------------------------------------------------------------


def test_the_command_looks_up_the_user_and_its_role(portal: Portal, changed: int,  # noqa: F811
                                                    monkeypatch):
    from keyline.cli import main

    for name in list(os.environ):
        if name.startswith("KEYLINE_"):
            monkeypatch.delenv(name)
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(main, ["--database-url", portal.database.url, "cli",
                                      "accept-host-key", P_ROUTER, *args])
        assert "Traceback" not in result.output
        return result.exit_code, result.output

    code, output = run("--by", "nobody.here")
    assert code == 2 and "--by: no such user: nobody.here" in output
    code, output = run("--by", NOC)
    assert code == 2 and "the role noc may not accept host keys" in output
    code, output = run("--by", USER_A)
    assert code == 2 and f"no such active device in the inventory: {P_ROUTER}" in output
    code, output = run("--by", ENGINEER, "--fingerprint", "SHA256:stale")
    assert code == 2 and "--fingerprint: the device offers" in output
    assert _keys(portal, changed) == UNCHANGED
    code, output = run("--by", ENGINEER, "--fingerprint", NEW[2])
    assert code == 0, output
    assert f"{P_ROUTER}: host key ssh-ed25519 {NEW[2]} trusted, accepted by {ENGINEER}" in output
    assert _keys(portal, changed) == {(OLD[2], "retired", cli_store.FIRST_USE),
                                      (NEW[2], "trusted", ENGINEER)}
