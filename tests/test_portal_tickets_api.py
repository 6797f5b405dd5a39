"""The REST API of trouble tickets (portal/tickets_api.py), with Flask's test client on a real
database (tests/test_portal_access.py's fixtures: the example inventory, users with
passwords).

Tickets are made the ways production makes them: by people through the API, and by the
ticket service's step (sla.tickets.on_circuit_states) for an incident that hits hsbank
(tenant A) and jinlu (tenant B), as tests/test_sla_tickets.py's `p_router_incident` stores
it. Expected deadlines come from the example contracts (config/example/sla.yaml, all 24x7):
a reported fault is P3, hsbank-gold P3 = 60 min response and 1440 min resolution.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from sla import tickets
from sla.settings import SlaSettings
from store.users import set_password
from tests.test_portal_access import (  # noqa: F401
    PASSWORD,
    USER_A,
    USER_B,
    Portal,
    logged_in,
    portal,
)
from tests.test_portal_alarms import bearer, page_csrf, token_for
from tests.test_sla_tickets import p_router_incident, state

NOC = "noc.wang"
ENGINEER = "eng.liu"
MANAGER_A = "am.chen"  # hsbank's account manager
MANAGER_X = "am.zhao"  # xinhe's only
STEPS = ("acknowledge", "start", "pause", "resume", "resolve", "close", "reopen")


@pytest.fixture
def api(portal: Portal):  # noqa: F811
    """A test client and a bearer header per user."""
    with portal.database.pool.connection() as conn:
        for user in (ENGINEER, MANAGER_A, MANAGER_X):
            set_password(conn, user, PASSWORD)
    headers = {user: bearer(token_for(portal, user))
               for user in (NOC, ENGINEER, USER_A, USER_B, MANAGER_A, MANAGER_X, "admin")}
    return portal.app.test_client(), headers


def circuit_of(portal: Portal, key: str) -> int:  # noqa: F811
    with portal.database.pool.connection() as conn:
        return conn.execute("SELECT id FROM circuits WHERE key = %s", [key]).fetchone()[0]


def conforms(body: dict[str, Any], schema: str) -> None:
    """The answer matches its schema in the OpenAPI document (portal/openapi.py)."""
    from jsonschema import Draft202012Validator

    from portal.openapi import openapi_document

    document = openapi_document()
    Draft202012Validator({"$ref": f"#/components/schemas/{schema}",
                          "components": document["components"]}).validate(body)


def open_as(client, headers, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/tickets", headers=headers, json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def incident(portal: Portal) -> dict[str, int]:  # noqa: F811
    """A P router down, as the ticket service hears it: hsbank's fault ticket, jinlu's, and
    the NOC's incident linking them; their ids by who owns them."""
    with portal.database.pool.connection() as conn:
        _, changes = p_router_incident(conn, tickets.now_of(conn))
        tickets.on_circuit_states(conn, changes, SlaSettings())
        found = {(kind, customer): ticket_id for ticket_id, kind, customer in conn.execute(
            "SELECT id, kind, customer_id FROM tickets")}
    return {"a": found[("fault", portal.a.customer_id)],
            "b": found[("fault", portal.b.customer_id)], "incident": found[("incident", None)]}


# --- a customer's own tickets, and nobody else's ---------------------------------------------


def test_a_customer_opens_reads_comments_and_is_alone_with_its_ticket(
        portal: Portal, api):  # noqa: F811
    client, h = api
    mine = circuit_of(portal, "HSB-L3VPN-0001")
    opened = open_as(client, h[USER_A], circuit_id=mine, title="packet loss to Beijing",
                     description="since 9:00", kind="fault")
    ticket_id = opened["id"]
    assert (opened["origin"], opened["priority"], opened["state"]) == ("customer", "P3", "open")
    assert opened["circuits"][0]["key"] == "HSB-L3VPN-0001"
    assert opened["opened_by"] == USER_A and opened["description"] == "since 9:00"
    assert "master_id" not in opened and "children" not in opened
    # the clocks as a browser counts them down: 24x7, so the business time left is the
    # wall time from server_time to due_at (60 min target, a moment used)
    now = datetime.fromisoformat(opened["server_time"])
    response = opened["clocks"]["response"]
    assert response["target_s"] == 3600 and response["running"] and not response["breached"]
    left = (datetime.fromisoformat(response["due_at"]) - now).total_seconds()
    assert response["remaining_s"] == pytest.approx(left, abs=0.01)
    assert 3500 < left <= 3600
    assert opened["clocks"]["resolution"]["target_s"] == 1440 * 60
    listed = client.get("/api/v1/tickets", headers=h[USER_A]).get_json()
    assert [t["id"] for t in listed["tickets"]] == [ticket_id] and listed["server_time"]
    assert listed["tickets"][0]["clocks"]["response"]["due_at"] == response["due_at"]

    # another customer: 404 on every route, whatever the request carries
    other = h[USER_B]
    missing = client.get(f"/api/v1/tickets/{ticket_id}", headers=other)
    assert missing.status_code == 404
    assert missing.get_json() == {"error": "no such ticket", "field": "ticket_id"}
    for step in STEPS:
        for body in ({"comment": "x"}, {}, None):
            kwargs = {"json": body} if body is not None else {"data": "[1",
                                                              "content_type": "application/json"}
            answer = client.post(f"/api/v1/tickets/{ticket_id}/{step}", headers=other, **kwargs)
            assert answer.status_code == 404, (step, body, answer.get_json())
    assert client.post(f"/api/v1/tickets/{ticket_id}/comments", headers=other,
                       json={"text": "mine?"}).status_code == 404
    assert client.post(f"/api/v1/tickets/{ticket_id}/priority", headers=other,
                       json={"priority": "P1", "reason": "x"}).status_code == 404
    assert client.get("/api/v1/tickets", headers=other).get_json()["tickets"] == []
    # ... and its own customer id in the filter changes nothing
    assert client.get("/api/v1/tickets", headers=other, query_string={
        "customer_id": portal.a.customer_id, "state": "all"}).get_json()["tickets"] == []
    # another customer's circuit does not exist for a customer
    refused = client.post("/api/v1/tickets", headers=other,
                          json={"circuit_id": mine, "title": "slow"})
    assert refused.status_code == 404 and refused.get_json()["field"] == "circuit_id"

    # the customer comments (always shared), but neither acknowledges nor sets priorities
    commented = client.post(f"/api/v1/tickets/{ticket_id}/comments", headers=h[USER_A],
                            json={"text": "still losing packets"})
    assert commented.status_code == 201
    assert commented.get_json()["timeline"][-1] == {
        **commented.get_json()["timeline"][-1], "action": "commented", "actor": USER_A,
        "actor_kind": "customer", "comment": "still losing packets", "internal": False}
    internal = client.post(f"/api/v1/tickets/{ticket_id}/comments", headers=h[USER_A],
                           json={"text": "psst", "internal": True})
    assert internal.status_code == 400 and internal.get_json()["field"] == "internal"
    for step in ("acknowledge", "start", "pause", "resume", "resolve"):
        answer = client.post(f"/api/v1/tickets/{ticket_id}/{step}", headers=h[USER_A],
                             json={"comment": "x"})
        assert answer.status_code == 403, step
    assert client.post(f"/api/v1/tickets/{ticket_id}/priority", headers=h[USER_A],
                       json={"priority": "P1", "reason": "urgent"}).status_code == 403
    named = client.post("/api/v1/tickets", headers=h[USER_A],
                        json={"circuit_id": mine, "title": "x", "priority": "P1"})
    assert named.status_code == 403 and named.get_json()["field"] == "priority"


def test_staff_work_a_ticket_and_the_customer_reads_its_share(portal: Portal, api):  # noqa: F811
    client, h = api
    ticket_id = open_as(client, h[NOC], circuit_id=circuit_of(portal, "HSB-L3VPN-0001"),
                        title="by phone", priority="P2", kind="complaint")["id"]

    def step(who: str, name: str, status: int = 200, **body: Any) -> dict[str, Any]:
        answer = client.post(f"/api/v1/tickets/{ticket_id}/{name}", headers=h[who], json=body)
        assert answer.status_code == status, (name, answer.get_json())
        return answer.get_json()

    acked = step(NOC, "acknowledge", comment="calling the field team", internal=True)
    assert acked["state"] == "acknowledged" and acked["acknowledged_by"] == NOC
    assert acked["clocks"]["response"]["met_at"] == acked["acknowledged_at"]
    step(ENGINEER, "start")
    assert step(ENGINEER, "pause", 400)["field"] == "comment"
    paused = step(ENGINEER, "pause", comment="please power-cycle the CE")
    assert paused["state"] == "pending_customer"
    assert paused["clocks"]["resolution"]["paused"] and paused["clocks"]["resolution"][
        "due_at"] is None
    step(ENGINEER, "pause", 409, comment="again")
    step(ENGINEER, "resume")
    step(NOC, "comments", 201, text="SFP suspected, spare from Pudong", internal=True)
    changed = step(NOC, "priority", priority="P1", reason="the customer's CEO called")
    assert changed["priority"] == "P1"
    # hsbank-gold P1: 10 min response (already met), 180 min resolution
    assert changed["clocks"]["resolution"]["target_s"] == 180 * 60
    assert step(NOC, "priority", 400, priority="P5", reason="x")["field"] == "priority"
    assert step(NOC, "priority", 400, priority="P2")["field"] == "reason"
    resolved = step(ENGINEER, "resolve", comment="SFP replaced")
    assert resolved["clocks"]["resolution"]["met_at"] == resolved["resolved_at"]
    step(ENGINEER, "resolve", 409, comment="again")

    # the account manager of hsbank reads, but does not act; another manager sees nothing
    assert client.get(f"/api/v1/tickets/{ticket_id}", headers=h[MANAGER_A]).status_code == 200
    step(MANAGER_A, "close", 403)
    assert client.get(f"/api/v1/tickets/{ticket_id}",
                      headers=h[MANAGER_X]).status_code == 404
    step(MANAGER_X, "close", 404)
    assert client.get("/api/v1/tickets", headers=h[MANAGER_X],
                      query_string={"state": "all"}).get_json()["tickets"] == []

    # the customer rejects the resolution, then confirms the next one
    assert step(USER_A, "reopen", 400)["field"] == "comment"
    reopened = step(USER_A, "reopen", comment="still broken")
    assert reopened["state"] == "in_progress" and reopened["clocks"]["resolution"]["running"]
    step(ENGINEER, "resolve", comment="cable replaced too")
    closed = step(USER_A, "close", comment="confirmed")
    assert closed["state"] == "closed"
    assert step(USER_A, "comments", 409, text="one more thing")["field"] == "ticket_id"

    staff = client.get(f"/api/v1/tickets/{ticket_id}", headers=h[NOC]).get_json()
    seen = client.get(f"/api/v1/tickets/{ticket_id}", headers=h[USER_A]).get_json()
    conforms(staff, "TicketDetail")
    conforms(seen, "TicketDetail")
    conforms(client.get("/api/v1/tickets", headers=h[USER_A], query_string={
        "state": "all"}).get_json(), "TicketList")
    assert [e["action"] for e in staff["timeline"]] == [
        "opened", "acknowledged", "in_progress", "paused", "resumed", "commented", "priority",
        "resolved", "reopened", "resolved", "closed"]
    assert {e["comment"] for e in staff["timeline"] if e["internal"]} == {
        "calling the field team", "SFP suspected, spare from Pudong"}
    # the customer: no internal entry, the NOC's people as "operator", its own as
    # themselves, and no one's name in acknowledged_by
    assert [e["action"] for e in seen["timeline"]] == [
        "opened", "in_progress", "paused", "resumed", "priority", "resolved", "reopened",
        "resolved", "closed"]
    assert not any(e["internal"] for e in seen["timeline"])
    assert {e["actor"] for e in seen["timeline"]} == {"operator", USER_A}
    body = str(seen)
    for word in (NOC, ENGINEER, "calling the field team", "SFP suspected"):
        assert word not in body
    assert seen["acknowledged_by"] is None and seen["opened_by"] == "operator"
    assert "master_id" not in seen and "incident_key" not in seen and "children" not in seen
    assert staff["master_id"] is None and staff["children"] == []


# --- the ticket service's tickets ------------------------------------------------------------


def test_an_incidents_tickets_are_scoped_like_alarms(portal: Portal, api):  # noqa: F811
    client, h = api
    ids = incident(portal)
    a_list = client.get("/api/v1/tickets", headers=h[USER_A]).get_json()["tickets"]
    assert [t["id"] for t in a_list] == [ids["a"]]
    for foreign in (ids["b"], ids["incident"]):
        assert client.get(f"/api/v1/tickets/{foreign}", headers=h[USER_A]).status_code == 404
        assert client.post(f"/api/v1/tickets/{foreign}/comments", headers=h[USER_A],
                           json={"text": "x"}).status_code == 404
    mine = client.get(f"/api/v1/tickets/{ids['a']}", headers=h[USER_A]).get_json()
    conforms(mine, "TicketDetail")
    assert {c["key"] for c in mine["circuits"]} == {"HSB-L3VPN-0001", "HSB-L3VPN-0002"}
    assert "master_id" not in mine and all(e["alarm_id"] is None for e in mine["timeline"])
    assert all("alarm_id" not in c for c in mine["circuits"])
    staff = client.get("/api/v1/tickets", headers=h[NOC]).get_json()["tickets"]
    assert {t["id"] for t in staff} == set(ids.values())
    assert client.get("/api/v1/tickets", headers=h[NOC], query_string={
        "kind": "incident"}).get_json()["tickets"][0]["id"] == ids["incident"]
    assert [t["id"] for t in client.get("/api/v1/tickets", headers=h[NOC], query_string={
        "customer_id": portal.b.customer_id}).get_json()["tickets"]] == [ids["b"]]
    conforms(client.get("/api/v1/tickets", headers=h[NOC]).get_json(), "TicketList")
    master = client.get(f"/api/v1/tickets/{ids['incident']}", headers=h[NOC]).get_json()
    conforms(master, "TicketDetail")
    assert sorted(master["children"]) == sorted([ids["a"], ids["b"]])
    assert len(master["circuits"]) == 3 and all("alarm_id" in c for c in master["circuits"])

    # acknowledging the incident acknowledges both customers' tickets; hsbank reads it
    # done by "operator", with nothing of the incident or of jinlu
    acked = client.post(f"/api/v1/tickets/{ids['incident']}/acknowledge", headers=h[NOC],
                        json={"comment": "p-sh1 line card"})
    assert acked.status_code == 200
    mine = client.get(f"/api/v1/tickets/{ids['a']}", headers=h[USER_A]).get_json()
    entry = mine["timeline"][-1]
    assert (entry["action"], entry["actor"], entry["detail"]) == (
        "acknowledged", "operator", {})
    staff_entry = client.get(f"/api/v1/tickets/{ids['a']}",
                             headers=h[NOC]).get_json()["timeline"][-1]
    assert staff_entry["detail"] == {"via_incident": ids["incident"]}
    body = str(mine)
    for word in portal.b.words | {"jinlu", "Incident", "incident", "p-sh1"}:
        assert word not in body, word

    # a circuit of hsbank's whose state is unknown: the NOC's monitoring gap, not hsbank's
    with portal.database.pool.connection() as conn:
        tickets.on_circuit_states(conn, [state(
            conn, circuit_of(portal, "HSB-L3VPN-0003"), tickets.now_of(conn), "unknown",
            cause_kind="end_device_silent")], SlaSettings(monitoring_gap_after_s=0))
        gap = conn.execute("SELECT id FROM tickets WHERE kind = 'monitoring_gap'").fetchone()[0]
    assert gap in {t["id"] for t in client.get("/api/v1/tickets", headers=h[NOC]).get_json()[
        "tickets"]}
    assert client.get(f"/api/v1/tickets/{gap}", headers=h[USER_A]).status_code == 404
    assert client.post(f"/api/v1/tickets/{gap}/comments", headers=h[USER_A],
                       json={"text": "x"}).status_code == 404
    everything = client.get("/api/v1/tickets", headers=h[USER_A],
                            query_string={"state": "all"}).get_json()["tickets"]
    assert [t["id"] for t in everything] == [ids["a"]]


# --- authentication, CSRF, bad input ---------------------------------------------------------


def test_tokens_need_no_csrf_but_sessions_do(portal: Portal, api):  # noqa: F811
    client, h = api
    ticket_id = open_as(client, h[NOC], circuit_id=circuit_of(portal, "HSB-L3VPN-0001"),
                        title="x")["id"]
    assert client.get("/api/v1/tickets").status_code == 401
    assert client.post(f"/api/v1/tickets/{ticket_id}/acknowledge").status_code == 401
    assert client.post("/api/v1/tickets", json={"circuit_id": 1, "title": "x"}
                       ).status_code == 401
    session = logged_in(portal.app, NOC)
    assert session.get("/api/v1/tickets").status_code == 200
    refused = session.post(f"/api/v1/tickets/{ticket_id}/acknowledge", json={})
    assert refused.status_code == 400 and refused.is_json
    with portal.database.pool.connection() as conn:
        assert conn.execute("SELECT state FROM tickets WHERE id = %s",
                            [ticket_id]).fetchone()[0] == "open"
    done = session.post(f"/api/v1/tickets/{ticket_id}/acknowledge", json={},
                        headers={"X-CSRFToken": page_csrf(session)})
    assert done.status_code == 200 and done.get_json()["state"] == "acknowledged"
    assert session.post("/api/v1/tickets", json={"circuit_id": 1, "title": "x"}
                        ).status_code == 400


@pytest.mark.parametrize(("body", "field"), [
    ({"circuit_id": 2**63, "title": "x"}, "circuit_id"),
    ({"circuit_id": 2**64, "title": "x"}, "circuit_id"),
    ({"circuit_id": "1", "title": "x"}, "circuit_id"),
    ({"circuit_id": 1.5, "title": "x"}, "circuit_id"),
    ({"circuit_id": True, "title": "x"}, "circuit_id"),
    ({"circuit_id": None, "title": "x"}, "circuit_id"),
    ({"circuit_id": "CIRCUIT"}, "title"),
    ({"circuit_id": "CIRCUIT", "title": "  "}, "title"),
    ({"circuit_id": "CIRCUIT", "title": "a\x00b"}, "title"),
    ({"circuit_id": "CIRCUIT", "title": "x" * 201}, "title"),
    ({"circuit_id": "CIRCUIT", "title": ["x"]}, "title"),
    ({"circuit_id": "CIRCUIT", "title": "x", "description": 5}, "description"),
    ({"circuit_id": "CIRCUIT", "title": "x", "kind": "incident"}, "kind"),
    ({"circuit_id": "CIRCUIT", "title": "x", "priority": "urgent"}, "priority"),
])
def test_bad_bodies_name_the_field_and_write_nothing(
        portal: Portal, api, body, field):  # noqa: F811
    client, h = api
    if body.get("circuit_id") == "CIRCUIT":
        body = {**body, "circuit_id": circuit_of(portal, "HSB-L3VPN-0001")}
    answer = client.post("/api/v1/tickets", headers=h[NOC], json=body)
    assert answer.status_code == 400, answer.get_json()
    assert answer.get_json()["field"] == field and answer.get_json()["error"]
    with portal.database.pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM tickets").fetchone()[0] == 0


def test_bad_requests_on_a_ticket_name_the_field(portal: Portal, api):  # noqa: F811
    client, h = api
    ticket_id = open_as(client, h[NOC], circuit_id=circuit_of(portal, "HSB-L3VPN-0001"),
                        title="x")["id"]
    base = f"/api/v1/tickets/{ticket_id}"
    for path in (f"/api/v1/tickets/{2**63}", "/api/v1/tickets/-1", "/api/v1/tickets/abc",
                 f"/api/v1/tickets/{2**63}/acknowledge", "/api/v1/tickets/0/acknowledge",
                 "/api/v1/tickets/999999"):
        method = client.post if path.endswith("acknowledge") else client.get
        answer = method(path, headers=h[NOC])
        assert answer.status_code == 404 and answer.is_json, path
    cases = [
        ("comments", {"text": ""}, "text"), ("comments", {}, "text"),
        ("comments", {"text": "a\x00b"}, "text"), ("comments", {"text": 5}, "text"),
        ("comments", {"text": "x", "internal": "yes"}, "internal"),
        ("acknowledge", {"comment": ["x"]}, "comment"),
        ("acknowledge", {"internal": 1}, "internal"),
        ("resolve", {"comment": "x" * 2001}, "comment"),
        ("priority", {"priority": None, "reason": "x"}, "priority"),
    ]
    for step, body, field in cases:
        answer = client.post(f"{base}/{step}", headers=h[NOC], json=body)
        assert answer.status_code == 400, (step, body, answer.get_json())
        assert answer.get_json()["field"] == field, (step, body)
    not_object = client.post(f"{base}/acknowledge", headers=h[NOC], data="[1]",
                             content_type="application/json")
    assert not_object.status_code == 400 and not_object.get_json()["field"] is None
    with portal.database.pool.connection() as conn:
        assert conn.execute("SELECT state, priority FROM tickets").fetchone() == ("open", "P3")
        assert conn.execute("SELECT count(*) FROM ticket_events").fetchone()[0] == 1


@pytest.mark.parametrize(("query", "field"), [
    ({"state": "bogus"}, "state"),
    ({"state": "open,nope"}, "state"),
    ({"kind": "outage"}, "kind"),
    ({"customer_id": "x"}, "customer_id"),
    ({"customer_id": str(2**63)}, "customer_id"),
    ({"limit": 0}, "limit"),
    ({"limit": 1001}, "limit"),
    ({"before": "abc"}, "before"),
    ({"before": "\x00"}, "before"),
])
def test_list_filters_name_the_field(portal: Portal, api, query, field):  # noqa: F811
    client, h = api
    answer = client.get("/api/v1/tickets", headers=h[NOC], query_string=query)
    assert answer.status_code == 400 and answer.get_json()["field"] == field


def test_list_filters_and_pages(portal: Portal, api):  # noqa: F811
    client, h = api
    circuit = circuit_of(portal, "HSB-L3VPN-0001")
    made = [open_as(client, h[NOC], circuit_id=circuit, title=f"t{n}")["id"] for n in range(4)]
    for ticket_id in made[:3]:
        assert client.post(f"/api/v1/tickets/{ticket_id}/resolve", headers=h[NOC],
                           json={"comment": "done"}).status_code == 200

    def ids(**query: Any) -> list[int]:
        answer = client.get("/api/v1/tickets", headers=h[NOC], query_string=query)
        assert answer.status_code == 200, answer.get_json()
        return [t["id"] for t in answer.get_json()["tickets"]]

    assert ids() == [made[3]]  # active by default
    assert ids(state="resolved") == made[2::-1]  # newest first
    assert ids(state="all") == [made[3], *made[2::-1]]
    assert ids(state=["open", "resolved"]) == ids(state="open,resolved") == ids(state="all")
    first = ids(state="resolved", limit=2)
    assert first == [made[2], made[1]]
    assert ids(state="resolved", limit=2, before=first[-1]) == [made[0]]
    assert ids(kind="complaint", state="all") == []
