"""A user's role or customer changes: what it could do before ends at once
(store.users.set_user_role, end_scope_changes; `keyline user role`, the admin page, an
inventory import).

Written from the attacker's side, on the example inventory and a real PostgreSQL, with the
live sockets of python-socketio clients against the portal on a real server: a customer
user moved to another customer keeps neither its open socket in its old customer's room,
nor its saved cookie, nor its tokens; a NOC user demoted to customer hears nothing more of
the noc room and cannot join it again; a token reads its user on every request, so even a
change made behind the store functions' back acts at once.
"""

from __future__ import annotations

import dataclasses

import pytest
import socketio

from keyline.wiring import EXAMPLE_INVENTORY, load_inventory_files
from store.inventory import apply_inventory
from store.sessions import open_sessions
from store.users import (
    UserError,
    add_local_user,
    create_api_token,
    list_api_tokens,
    set_user_role,
)
from tests.test_cli import keyline
from tests.test_portal_access import (  # noqa: F401
    PASSWORD,
    USER_B,
    Portal,
    logged_in,
    portal,
    set_circuit_states,
)
from tests.test_portal_live import Listener, serve, session_cookie, wait_for
from tests.test_portal_sessions import ADMIN, admitted, bearer, cookie_of, post_admin

MOVER = "hsbank.audit"  # a local customer user of hsbank (customer a)
WATCHER = "noc.night"  # a local NOC user
DISCONNECT_WITHIN_S = 30  # the "session.ended" event, or at worst the sweep (60 s) is not waited


def circuit_ids(portal: Portal, token: str) -> set[int]:  # noqa: F811
    answer = portal.app.test_client().get("/api/v1/circuits", headers=bearer(token))
    assert answer.status_code == 200, answer.status_code
    return {c["id"] for c in answer.get_json()["circuits"]}


def test_customer_moved_to_another_customer_loses_socket_cookie_and_tokens(
        portal: Portal):  # noqa: F811
    with portal.database.pool.connection() as conn:
        add_local_user(conn, MOVER, "customer", PASSWORD, customer="hsbank")
        token = create_api_token(conn, MOVER, "erp", service=True)
    old_room = f"customer:{portal.a.customer_id}"
    assert circuit_ids(portal, token) == portal.a.ids["circuit"]
    with serve(portal.app) as live:
        cookie = session_cookie(live.url, MOVER)
        listener = Listener(live.url, cookie)
        assert listener.join(old_room)["ok"]
        bystander = Listener(live.url, session_cookie(live.url, USER_B))
        admin = logged_in(portal.app, ADMIN)
        answer = post_admin(admin, f"/admin/users/{MOVER}/role", role="customer",
                            customer="jinlu")
        assert answer.status_code == 302, answer.get_data(as_text=True)
        # the open socket in the old customer's room is gone at once, not at the next sweep
        wait_for(lambda: not listener.client.connected, timeout_s=DISCONNECT_WITHIN_S)
        assert bystander.client.connected
        with pytest.raises(socketio.exceptions.ConnectionError):  # the cookie is dead
            Listener(live.url, cookie)
        assert not admitted(portal.app, cookie.split("=", 1)[1])
        # even the service token is revoked: it was issued for hsbank's data
        answer = portal.app.test_client().get("/api/v1/circuits", headers=bearer(token))
        assert answer.status_code == 401
        with portal.database.pool.connection() as conn:
            (stored,) = [t for t in list_api_tokens(conn, MOVER)]
            reason = conn.execute(
                "SELECT DISTINCT end_reason FROM sessions s JOIN users u ON u.id = s.user_id"
                " WHERE u.key = %s", [MOVER]).fetchall()
        assert stored.revoke_reason == "role changed" and reason == [("role changed",)]
        # logged in again, it is jinlu's user: hsbank's room is closed to it
        moved = Listener(live.url, session_cookie(live.url, MOVER))
        assert moved.join(old_room)["ok"] is False
        assert moved.join(f"customer:{portal.b.customer_id}")["ok"]
        moved.close()
        bystander.close()


def test_noc_user_demoted_to_customer_hears_no_more_of_the_noc_room(
        portal: Portal):  # noqa: F811
    with portal.database.pool.connection() as conn:
        add_local_user(conn, WATCHER, "noc", PASSWORD)
    b_circuit = min(portal.b.ids["circuit"])
    with serve(portal.app) as live:
        cookie = session_cookie(live.url, WATCHER)
        listener = Listener(live.url, cookie)
        assert listener.join("noc")["ok"]
        heard = set_circuit_states(portal.database, {b_circuit: "down"})
        wait_for(lambda: any(m["id"] >= heard for m in listener.messages), timeout_s=30)
        result = keyline("user", "role", WATCHER, "--role", "customer", "--customer",
                         "hsbank", url=portal.database.url)
        assert result.returncode == 0, result.stderr
        assert "sessions ended" in result.stdout
        wait_for(lambda: not listener.client.connected, timeout_s=DISCONNECT_WITHIN_S)
        count = len(listener.received)
        later = set_circuit_states(portal.database, {b_circuit: "up"})
        wait_for(lambda: live.bridge.last_id >= later, timeout_s=30)
        assert len(listener.received) == count  # another customer's circuit: nothing more
        with pytest.raises(socketio.exceptions.ConnectionError):
            Listener(live.url, cookie)
        again = Listener(live.url, session_cookie(live.url, WATCHER))
        assert again.join("noc")["ok"] is False
        again.close()


def test_a_token_acts_with_its_users_current_rights(portal: Portal):  # noqa: F811
    """Behind the store functions' back (plain SQL: no revocation), a token still acts with
    the user's new scope on the very next request, never the old one."""
    with portal.database.pool.connection() as conn:
        add_local_user(conn, MOVER, "customer", PASSWORD, customer="hsbank")
        token = create_api_token(conn, MOVER, "erp")
    assert circuit_ids(portal, token) == portal.a.ids["circuit"]
    with portal.database.pool.connection() as conn:
        conn.execute("UPDATE users SET customer_id = %s WHERE key = %s",
                     [portal.b.customer_id, MOVER])
    assert circuit_ids(portal, token) == portal.b.ids["circuit"]


def test_inventory_import_that_moves_a_user_ends_its_sessions_and_tokens(
        portal: Portal):  # noqa: F811
    saved = cookie_of(logged_in(portal.app, USER_B))
    untouched = cookie_of(logged_in(portal.app, "noc.wang"))
    with portal.database.pool.connection() as conn:
        token = create_api_token(conn, USER_B, "erp", service=True)
    inventory = load_inventory_files([EXAMPLE_INVENTORY])
    moved = dataclasses.replace(inventory, users={
        key: dataclasses.replace(user, customer="hsbank") if key == USER_B else user
        for key, user in inventory.users.items()})
    with portal.database.pool.connection() as conn:
        summary = apply_inventory(conn, moved)
    assert USER_B in summary.kinds["users"].changed
    assert not admitted(portal.app, saved)
    assert admitted(portal.app, untouched)
    assert portal.app.test_client().get(
        "/api/v1/circuits", headers=bearer(token)).status_code == 401
    # a change of the user's name only keeps its sessions
    kept = cookie_of(logged_in(portal.app, USER_B))
    renamed = dataclasses.replace(moved, users={
        key: dataclasses.replace(user, full_name="IT") if key == USER_B else user
        for key, user in moved.users.items()})
    with portal.database.pool.connection() as conn:
        assert USER_B in apply_inventory(conn, renamed).kinds["users"].changed
    assert admitted(portal.app, kept)


def test_role_changes_are_refused_where_they_do_not_belong(portal: Portal):  # noqa: F811
    with portal.database.pool.connection() as conn:
        add_local_user(conn, MOVER, "customer", PASSWORD, customer="hsbank")
        with pytest.raises(UserError, match="comes from the inventory"):
            set_user_role(conn, USER_B, "noc")
        with pytest.raises(UserError, match="must name its customer"):
            set_user_role(conn, MOVER, "customer")
        with pytest.raises(UserError, match="does not exist"):
            set_user_role(conn, MOVER, "customer", "nobody")
        assert open_sessions(conn, MOVER) == []
    admin = logged_in(portal.app, ADMIN)
    refused = post_admin(admin, f"/admin/users/{ADMIN}/role", role="customer",
                         customer="hsbank")
    assert refused.status_code == 400
    assert "own role" in refused.get_data(as_text=True)
    refused = post_admin(admin, f"/admin/users/{MOVER}/role", role="wizard")
    assert refused.status_code == 400 and "is not one of" in refused.get_data(as_text=True)
    result = keyline("user", "role", USER_B, "--role", "noc", url=portal.database.url)
    assert result.returncode == 2 and "comes from the inventory" in result.stderr
