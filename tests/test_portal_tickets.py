"""The ticket pages (portal/tickets_views.py) with Flask's test client on a real store holding
the example inventory (tests/test_portal_access.py's fixtures): what each role sees, the 404
of another tenant's ticket and of the NOC's own tickets, the forms' errors, CSRF.

Tickets are made through sla.tickets, the one path the pages, the CLI and the ticket service
share, as the ticket service or a person elsewhere would make them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from flask.testing import FlaskClient

from sla import tickets
from sla.settings import SlaSettings
from sla.tickets import StateChange
from store.queries import Viewer
from store.users import set_password
from tests.test_portal_access import (  # noqa: F401
    PASSWORD,
    USER_A,
    USER_B,
    Portal,
    csrf_token,
    logged_in,
    portal,
)

NOC = "noc.wang"


def circuit_ids(portal: Portal) -> dict[str, int]:  # noqa: F811
    with portal.database.pool.connection() as conn:
        return dict(conn.execute("SELECT key, id FROM circuits").fetchall())


def customer_viewer(portal: Portal, user: str) -> Viewer:  # noqa: F811
    customer = portal.a if user == USER_A else portal.b
    return Viewer(user, "customer", customer.customer_id)


def open_for(portal: Portal, circuit: str, title: str, *, by: Viewer | None = None,  # noqa: F811
             priority: str | None = None, kind: str = "fault") -> int:
    """A ticket opened as the NOC on the phone (or as `by`), committed."""
    with portal.database.pool.connection() as conn:
        ticket = tickets.open_ticket(conn, by or Viewer(NOC, "noc"),
                                     circuit_id=circuit_ids(portal)[circuit], kind=kind,
                                     title=title, priority=priority)
    return ticket.id


def gap_ticket(portal: Portal, circuit: str) -> int:  # noqa: F811
    """The NOC's monitoring-gap ticket for a circuit whose state went unknown."""
    circuit_id = circuit_ids(portal)[circuit]
    with portal.database.pool.connection() as conn:
        customer_id = conn.execute("SELECT customer_id FROM circuits WHERE id = %s",
                                   [circuit_id]).fetchone()[0]
        change = StateChange(circuit_id, customer_id, datetime.now(UTC), "unknown", "up", None,
                             "end device silent", "end_device_silent", None)
        # at once (by default the ticket service waits sla.monitoring_gap_after_s)
        touched = tickets.on_circuit_states(conn, [change],
                                            SlaSettings(monitoring_gap_after_s=0))
    return touched[0]


def page(client: FlaskClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return response.get_data(as_text=True)


def ticket_ids_listed(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr class="ticket[^"]*" data-ticket="(\d+)"', html)]


def state_of(portal: Portal, ticket_id: int) -> str:  # noqa: F811
    with portal.database.pool.connection() as conn:
        return conn.execute("SELECT state FROM tickets WHERE id = %s", [ticket_id]).fetchone()[0]


def test_a_customer_reports_a_fault_on_its_own_circuit(portal: Portal):  # noqa: F811
    client = logged_in(portal.app, USER_A)
    html = page(client, "/tickets")
    assert "Report a fault or a complaint" in html
    assert "HSB-L3VPN-0001" in html  # its circuits are offered
    for word in portal.b.words:
        assert word not in html
    circuits = circuit_ids(portal)
    response = client.post("/tickets", data={
        "csrf_token": csrf_token(html), "circuit_id": circuits["HSB-L3VPN-0001"],
        "kind": "complaint", "title": "packet loss to Beijing",
        "description": "since 9:00, about 3 %"})
    assert response.status_code == 302
    ticket_id = int(response.headers["Location"].rsplit("/", 1)[1])
    ticket = page(client, f"/tickets/{ticket_id}")
    assert "packet loss to Beijing" in ticket and "since 9:00, about 3 %" in ticket
    assert 'data-state="open"' in ticket and "complaint" in ticket
    # both clocks run: their countdowns carry the server's figures
    assert re.search(r'class="countdown mode-running" data-clock="response"', ticket)
    assert 'data-server-time="' in ticket
    with portal.database.pool.connection() as conn:
        origin, opened_by, kind = conn.execute(
            "SELECT origin, opened_by, kind FROM tickets WHERE id = %s", [ticket_id]).fetchone()
    assert (origin, opened_by, kind) == ("customer", USER_A, "complaint")
    assert ticket_id in ticket_ids_listed(page(client, "/tickets"))

    # the other customer sees nothing of it: not in its list, 404 like a missing one
    other = logged_in(portal.app, USER_B)
    assert ticket_id not in ticket_ids_listed(page(other, "/tickets"))
    assert "packet loss to Beijing" not in page(other, "/tickets")
    missing = other.get("/tickets/999999")
    foreign = other.get(f"/tickets/{ticket_id}")
    assert foreign.status_code == missing.status_code == 404
    assert "packet loss" not in foreign.get_data(as_text=True)
    # nor may it act on it: every step and the comment are 404 too
    token = csrf_token(page(other, "/tickets"))
    for path in (f"/tickets/{ticket_id}/comment", f"/tickets/{ticket_id}/close",
                 f"/tickets/{ticket_id}/reopen"):
        assert other.post(path, data={"csrf_token": token, "text": "mine?",
                                      "comment": "mine?"}).status_code == 404
    assert state_of(portal, ticket_id) == "open"


def test_the_report_form_names_what_is_wrong_and_stores_nothing(portal: Portal):  # noqa: F811
    client = logged_in(portal.app, USER_A)
    token = csrf_token(page(client, "/tickets"))
    circuits = circuit_ids(portal)

    def count() -> int:
        with portal.database.pool.connection() as conn:
            return conn.execute("SELECT count(*) FROM tickets").fetchone()[0]

    cases = [
        ({"circuit_id": circuits["JL-ELINE-0001"], "title": "theirs"},
         "Choose one of the circuits listed."),  # another customer's circuit
        ({"circuit_id": "not a number", "title": "x"}, "Choose one of the circuits listed."),
        ({"circuit_id": circuits["HSB-L3VPN-0001"], "title": "   "},
         "Give a title (at most 200 characters)."),
        ({"circuit_id": circuits["HSB-L3VPN-0001"], "title": "x" * 201},
         "Give a title (at most 200 characters)."),
        ({"circuit_id": circuits["HSB-L3VPN-0001"], "title": "x", "kind": "incident"},
         "Choose fault or complaint."),
        ({"circuit_id": circuits["HSB-L3VPN-0001"], "title": "x", "description": "d" * 2001},
         "The description may have at most 2000 characters."),
    ]
    for fields, message in cases:
        response = client.post("/tickets", data={"csrf_token": token, "kind": "fault", **fields})
        assert response.status_code == 400, fields
        html = response.get_data(as_text=True)
        assert message in html, (fields, message)
        assert "JL-ELINE-0001" not in html
    assert count() == 0
    # the typed title is kept for the next try
    response = client.post("/tickets", data={"csrf_token": token, "kind": "fault",
                                             "circuit_id": "", "title": "keep me"})
    assert 'value="keep me"' in response.get_data(as_text=True)
    # without the CSRF token: refused before anything is read
    refused = client.post("/tickets", data={"kind": "fault", "title": "no token",
                                            "circuit_id": circuits["HSB-L3VPN-0001"]})
    assert refused.status_code == 400
    assert count() == 0


def test_the_noc_queue_is_sorted_by_time_to_breach_and_filtered(portal: Portal):  # noqa: F811
    slow = open_for(portal, "JL-ELINE-0001", "slow at night", priority="P4")
    urgent = open_for(portal, "HSB-L3VPN-0001", "Beijing unreachable", priority="P1")
    gap = gap_ticket(portal, "HSB-LL-0001")
    client = logged_in(portal.app, NOC)
    html = page(client, "/tickets")
    listed = ticket_ids_listed(html)
    # P1's deadlines come first, then the gap's (P3), the P4 last: store.tickets' order
    assert listed.index(urgent) < listed.index(gap) < listed.index(slow)
    assert "monitoring gap" in html and "Open a ticket for a customer" in html
    # filters: one customer's tickets (never the NOC's own, which have no customer)
    only_a = ticket_ids_listed(page(client, f"/tickets?customer_id={portal.a.customer_id}"))
    assert only_a == [urgent]
    assert ticket_ids_listed(page(client, "/tickets?state=acknowledged")) == []
    assert client.get("/tickets?state=nonsense").status_code == 400
    assert client.get("/tickets?tab=nonsense").status_code == 400
    # resolved and closed tickets are on their own tab
    with portal.database.pool.connection() as conn:
        tickets.resolve(conn, Viewer(NOC, "noc"), slow, "ONU replaced")
    assert slow not in ticket_ids_listed(page(client, "/tickets"))
    assert ticket_ids_listed(page(client, "/tickets?tab=done")) == [slow]
    # staff open one for a customer on the phone, naming the priority
    token = csrf_token(html)
    response = client.post("/tickets", data={
        "csrf_token": token, "circuit_id": circuit_ids(portal)["JL-L3VPN-0001"],
        "kind": "fault", "title": "customer called: no traffic", "priority": "P2"})
    assert response.status_code == 302
    new_id = int(response.headers["Location"].rsplit("/", 1)[1])
    with portal.database.pool.connection() as conn:
        assert conn.execute("SELECT origin, priority FROM tickets WHERE id = %s",
                            [new_id]).fetchone() == ("noc", "P2")


def test_customers_and_account_managers_see_only_their_scope(portal: Portal):  # noqa: F811
    mine = open_for(portal, "HSB-L3VPN-0001", "hsbank's fault")
    theirs = open_for(portal, "JL-ELINE-0001", "jinlu's fault")
    gap = gap_ticket(portal, "HSB-L3VPN-0002")  # on hsbank's circuit, but the NOC's ticket
    client = logged_in(portal.app, USER_A)
    html = page(client, "/tickets")
    assert ticket_ids_listed(html) == [mine]
    assert "jinlu's fault" not in html and "monitoring gap" not in html
    for hidden in (theirs, gap):
        assert client.get(f"/tickets/{hidden}").status_code == 404
    # an account manager: its own customers' tickets only, and it reads without acting
    with portal.database.pool.connection() as conn:
        set_password(conn, "am.zhao", PASSWORD)
        set_password(conn, "am.chen", PASSWORD)
    zhao = logged_in(portal.app, "am.zhao")  # manages xinhe only
    assert ticket_ids_listed(page(zhao, "/tickets")) == []
    for hidden in (mine, theirs, gap):
        assert zhao.get(f"/tickets/{hidden}").status_code == 404
    chen = logged_in(portal.app, "am.chen")  # manages hsbank and jinlu
    assert sorted(ticket_ids_listed(page(chen, "/tickets"))) == sorted([mine, theirs])
    assert chen.get(f"/tickets/{gap}").status_code == 404
    ticket = page(chen, f"/tickets/{mine}")
    assert "Acknowledge" not in ticket and 'id="comment-form"' not in ticket
    refused = chen.post(f"/tickets/{mine}/acknowledge", data={"csrf_token": csrf_token(ticket)})
    assert refused.status_code == 403
    assert state_of(portal, mine) == "open"


def test_a_cookie_saved_before_logout_gets_no_ticket(portal: Portal):  # noqa: F811
    mine = open_for(portal, "HSB-L3VPN-0001", "hsbank's fault")
    client = logged_in(portal.app, USER_A)
    ticket = page(client, f"/tickets/{mine}")
    token = csrf_token(ticket)
    saved = client.get_cookie("keyline_session").value
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    replayed = portal.app.test_client()
    replayed.set_cookie("keyline_session", saved)
    for path in ("/tickets", f"/tickets/{mine}"):
        answer = replayed.get(path)
        assert answer.status_code == 302 and "/login" in answer.headers["Location"], path
    for path in ("/api/v1/tickets", f"/api/v1/tickets/{mine}"):
        assert replayed.get(path).status_code == 401, path
    answer = replayed.post(f"/tickets/{mine}/comment", data={"csrf_token": token,
                                                            "text": "after logout"})
    assert answer.status_code in (302, 400, 401, 403)
    with portal.database.pool.connection() as conn:
        comments = conn.execute("SELECT count(*) FROM ticket_events WHERE ticket_id = %s"
                                " AND action = 'commented'", [mine]).fetchone()[0]
    assert comments == 0


def test_the_steps_of_a_ticket_by_role_and_state(portal: Portal):  # noqa: F811
    ticket_id = open_for(portal, "HSB-L3VPN-0001", "link flaps",
                         by=customer_viewer(portal, USER_A))
    noc = logged_in(portal.app, NOC)
    customer = logged_in(portal.app, USER_A)
    path = f"/tickets/{ticket_id}"
    staff_page = page(noc, path)
    token = csrf_token(staff_page)
    assert 'value="acknowledge"' in staff_page and 'value="resolve"' in staff_page
    customer_page = page(customer, path)
    # a customer comments; it may neither acknowledge nor resolve
    assert 'value="acknowledge"' not in customer_page
    assert 'name="internal"' not in customer_page
    assert customer.post(f"{path}/acknowledge",
                         data={"csrf_token": csrf_token(customer_page)}).status_code == 403

    # staff acknowledge with a comment, then ask the customer (a comment is required)
    assert noc.post(f"{path}/acknowledge", data={"csrf_token": token,
                                                  "comment": "looking"}).status_code == 302
    assert state_of(portal, ticket_id) == "acknowledged"
    refused = noc.post(f"{path}/pause", data={"csrf_token": token, "comment": " "})
    assert refused.status_code == 400
    assert "This step needs a comment" in refused.get_data(as_text=True)
    assert state_of(portal, ticket_id) == "acknowledged"
    assert noc.post(f"{path}/pause", data={"csrf_token": token,
                                            "comment": "please power-cycle the CE"}
                    ).status_code == 302
    paused = page(customer, path)
    assert "please power-cycle the CE" in paused and "paused" in paused
    # a step the state does not allow: 409, the page says so
    conflict = noc.post(f"{path}/acknowledge", data={"csrf_token": token})
    assert conflict.status_code == 409
    assert "does not allow this step" in conflict.get_data(as_text=True)

    # an internal note: staff see it marked, the customer does not see it at all
    assert noc.post(f"{path}/comment", data={"csrf_token": token, "internal": "1",
                                             "text": "vendor case 4711 opened"}
                    ).status_code == 302
    assert "vendor case 4711" in page(noc, path)
    assert "internal (staff only)" in page(noc, path)
    assert "vendor case 4711" not in page(customer, path)
    # a customer's comment is always shared: ticking "internal" by hand is refused
    refused = customer.post(f"{path}/comment", data={"csrf_token": csrf_token(paused),
                                                     "text": "hidden?", "internal": "1"})
    assert refused.status_code == 400
    assert "always shared" in refused.get_data(as_text=True)
    blank = customer.post(f"{path}/comment", data={"csrf_token": csrf_token(paused),
                                                   "text": "  "})
    assert blank.status_code == 400 and "Write a comment" in blank.get_data(as_text=True)
    assert customer.post(f"{path}/comment", data={"csrf_token": csrf_token(paused),
                                                  "text": "done, it is back"}
                         ).status_code == 302

    # the customer reads "operator" for the NOC's people, staff read the name
    customer_page = page(customer, path)
    assert NOC not in customer_page and "operator" in customer_page
    assert NOC in page(noc, path)

    # priority with a reason; resolve with what was done
    assert noc.post(f"{path}/priority", data={"csrf_token": token, "priority": "P2",
                                              "reason": ""}).status_code == 400
    assert noc.post(f"{path}/priority", data={"csrf_token": token, "priority": "P2",
                                              "reason": "VIP site"}).status_code == 302
    assert noc.post(f"{path}/resume", data={"csrf_token": token}).status_code == 302
    assert noc.post(f"{path}/resolve", data={"csrf_token": token,
                                              "comment": "CE replaced"}).status_code == 302
    resolved = page(customer, path)
    assert 'value="close"' in resolved and "Confirm the resolution" in resolved
    assert "Reject the resolution" in resolved
    # rejecting needs a reason; then the ticket is worked again, and confirmed at last
    token_c = csrf_token(resolved)
    assert customer.post(f"{path}/reopen", data={"csrf_token": token_c}).status_code == 400
    assert state_of(portal, ticket_id) == "resolved"
    assert customer.post(f"{path}/reopen", data={"csrf_token": token_c,
                                                 "comment": "still flapping"}
                         ).status_code == 302
    assert state_of(portal, ticket_id) == "in_progress"
    assert noc.post(f"{path}/resolve", data={"csrf_token": token,
                                              "comment": "optic replaced"}).status_code == 302
    assert customer.post(f"{path}/close", data={"csrf_token": token_c}).status_code == 302
    assert state_of(portal, ticket_id) == "closed"
    closed = page(customer, path)
    assert 'id="comment-form"' not in closed  # a closed ticket takes no comment
    # every step is in the timeline, in order
    actions = re.findall(r'<tr class="entry action-(\w+)', page(noc, path))
    assert actions == ["opened", "acknowledged", "paused", "commented", "commented",
                       "priority", "resumed", "resolved", "reopened", "resolved", "closed"]


def test_the_timeline_links_alarms_for_staff_only(portal: Portal):  # noqa: F811
    circuit_id = circuit_ids(portal)["HSB-L3VPN-0001"]
    now = datetime.now(UTC)
    with portal.database.pool.connection() as conn:
        alarm_id = conn.execute(
            """INSERT INTO alarms (object_kind, object_id, type, severity, state, summary,
                                   first_seen, last_seen)
               VALUES ('circuit', %s, 'service_down', 'critical', 'active', 'down', %s, %s)
               RETURNING id""", [circuit_id, now, now]).fetchone()[0]
        change = StateChange(circuit_id, portal.a.customer_id, now, "down", "up", None,
                             "path down", "path_down", alarm_id)
        tickets.on_circuit_states(conn, [change], SlaSettings())
        ticket_id = conn.execute("SELECT id FROM tickets WHERE kind = 'fault'").fetchone()[0]
        incident = conn.execute("SELECT id FROM tickets WHERE kind = 'incident'").fetchone()[0]
    staff = page(logged_in(portal.app, NOC), f"/tickets/{ticket_id}")
    assert f'href="/alarms/{alarm_id}"' in staff
    assert f'href="/tickets/{incident}"' in staff  # its NOC incident
    customer = logged_in(portal.app, USER_A)
    mine = page(customer, f"/tickets/{ticket_id}")
    assert "/alarms/" not in mine and f"/tickets/{incident}" not in mine
    assert customer.get(f"/tickets/{incident}").status_code == 404
    # the circuit links to its page
    assert f'href="/circuits/{circuit_id}"' in mine


def test_the_pages_speak_chinese(portal: Portal):  # noqa: F811
    ticket_id = open_for(portal, "HSB-L3VPN-0001", "丢包")
    client = logged_in(portal.app, USER_A)
    client.post("/language", data={"csrf_token": csrf_token(page(client, "/tickets")),
                                   "lang": "zh_CN"})
    html = page(client, "/tickets")
    assert "报告故障或投诉" in html and "工单" in html
    ticket = page(client, f"/tickets/{ticket_id}")
    assert "时间线" in ticket and "响应" in ticket


@pytest.mark.parametrize("seconds, text", [
    (0, "0:00:00"), (59.9, "0:00:59"), (3725, "1:02:05"), (90061, "1 d 01:01:01"),
    (-182, "overdue by 0:03:02")])
def test_durations_read_as_countdowns(portal: Portal, seconds: float, text: str):  # noqa: F811
    from portal.tickets_views import ticket_duration

    with portal.app.test_request_context("/"):
        assert ticket_duration(seconds) == text


def test_live_messages_go_to_the_rooms_that_may_know():
    """portal/live_tickets.py: the NOC hears of every ticket; a customer's room only of its
    own fault and complaint tickets' shared entries; no message carries text."""
    from portal.live_tickets import ticket_messages

    base = {"ticket_id": 7, "entry_id": 70, "kind": "fault", "customer_id": 3,
            "master_id": None, "state": "acknowledged", "internal": False,
            "time": "2026-12-06T10:00:00+00:00"}
    message = {"ticket_id": 7, "state": "acknowledged", "entry_id": 70}
    assert ticket_messages(base) == [("noc", message), ("customer:3", message)]
    # an internal note: the NOC only (the customer is not told one was written)
    assert ticket_messages({**base, "internal": True}) == [("noc", message)]
    # the NOC's own tickets (their events name no customer), whatever else the payload says
    for kind in ("incident", "monitoring_gap"):
        assert ticket_messages({**base, "kind": kind, "customer_id": None}) == [
            ("noc", message)]
        assert ticket_messages({**base, "kind": kind}) == [("noc", message)]
    assert ticket_messages({**base, "customer_id": None}) == [("noc", message)]
    assert ticket_messages({"ticket_id": "7"}) == []  # not a ticket's event: nothing
