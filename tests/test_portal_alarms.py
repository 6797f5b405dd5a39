"""The alarm console, an alarm's page, engineers' actions and maintenance windows, pages and
REST API, with Flask's test client on a real database (tests/test_portal_access.py's
fixtures: the example inventory, users with passwords).

Alarms are made the way production makes them: observations run through the alarm pipeline
(alarms.pipeline) with the example network's topology, so the root cause, its symptoms and
the impacted circuits and customers are the pipeline's own. `seed_alarms` takes the shared P
router p-bj1 down (one device alarm hitting all three customers, one service alarm per
circuit it leaves without a working path) and one of jinlu's (tenant B's) circuit end ports
down (alarms that hit jinlu only); tests/test_portal_access.py's isolation walk uses it too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest

from alarms.model import AlarmType, ScopeItem
from alarms.pipeline import AlarmPipeline, store_publisher
from alarms.rules import AlarmSettings
from collectors.model import Observation
from store import alarms as alarm_store
from store.users import create_api_token, set_password
from tests.test_portal_access import (  # noqa: F401
    PASSWORD,
    USER_A,
    USER_B,
    Portal,
    csrf_token,
    logged_in,
    portal,
)
from topology.current import load_topology

ENGINEER = "eng.liu"
NOC = "noc.wang"
P_ROUTER = "p-bj1"
SETTINGS = AlarmSettings(raise_after_s=0, clear_after_s=0, thresholds=[])


@dataclass
class Seeded:
    root: int  # p-bj1 unreachable: hits every customer
    symptoms: set[int]  # its service alarms, one per circuit it leaves without a path
    services_a: set[int]  # its symptoms on hsbank's circuits
    services_b: set[int]  # ... on jinlu's
    only_b: set[int]  # the alarms of jinlu's port down: jinlu's alone
    window_b: int  # a future maintenance window on one of jinlu's circuits


def seed_alarms(portal: Portal) -> Seeded:  # noqa: F811
    """Run the pipeline on the example network: p-bj1 unreachable, then a port of one of
    jinlu's circuits down; and declare a maintenance window on a jinlu circuit."""
    database = portal.database
    with database.pool.connection() as conn:
        topology = load_topology(conn)
    snapshot = topology.snapshot
    pipeline = AlarmPipeline(SETTINGS, topology=topology,
                             publisher=store_publisher(database.pool))
    device = snapshot.ids("devices")[P_ROUTER]
    now = datetime.now(UTC)
    before = now - timedelta(seconds=10)  # the network answering, every port up
    pipeline.process([Observation(before, d, "reachability", None, "reachable", "poll")
                      for d in snapshot.devices]
                     + [Observation(before, p, kind, None, "up", "poll")
                        for p in snapshot.ports for kind in ("oper_status", "admin_status")],
                     before)
    pipeline.process([Observation(now, device, "reachability", "reachable", "unreachable",
                                  "poll")], now)
    with database.pool.connection() as conn:
        first = alarm_store.list_alarms(conn, state=None)
        b_circuit = conn.execute(
            "SELECT id, a_port_id, key FROM circuits WHERE customer_id = %s"
            " AND id <> ALL(%s) ORDER BY key LIMIT 1",
            [portal.b.customer_id, [c for a in first for c in a.impacted_circuits]]
        ).fetchone()
    later = now + timedelta(seconds=1)
    pipeline.process([Observation(later, b_circuit[1], "oper_status", "up", "down", "trap")],
                     later)
    with database.pool.connection() as conn:
        everything = alarm_store.list_alarms(conn, state=None)
        window = alarm_store.add_window(
            conn, alarm_store.resolve_scope(conn, [f"circuit:{b_circuit[2]}"]),
            now + timedelta(days=1), now + timedelta(days=1, hours=2), "jinlu fibre work",
            "noc.wang")
    root = next(a for a in everything if a.key.type is AlarmType.DEVICE_UNREACHABLE)
    services = [a for a in everything if a.root_cause_id == root.id]
    seeded = Seeded(
        root=root.id,  # type: ignore[arg-type]
        symptoms={a.id for a in services},  # type: ignore[misc]
        services_a={a.id for a in services if portal.a.customer_id in a.impacted_customers},
        services_b={a.id for a in services if portal.b.customer_id in a.impacted_customers},
        only_b={a.id for a in everything if a.id not in {root.id, *(s.id for s in services)}},
        window_b=window.id)
    assert seeded.services_a and seeded.services_b and seeded.only_b
    with database.pool.connection() as conn:
        for alarm_id in seeded.only_b:
            assert alarm_store.get_alarm(conn, alarm_id).impacted_customers == {
                portal.b.customer_id}
    return seeded


@pytest.fixture
def seeded(portal: Portal) -> Seeded:  # noqa: F811
    with portal.database.pool.connection() as conn:
        for user in (ENGINEER, "am.chen"):  # the access fixture sets the others'
            set_password(conn, user, PASSWORD)
    return seed_alarms(portal)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_for(portal: Portal, user: str) -> str:  # noqa: F811
    with portal.database.pool.connection() as conn:
        return create_api_token(conn, user, "tests")


def page_csrf(client, path: str = "/alarms") -> str:
    return csrf_token(client.get(path).get_data(as_text=True))


def alarm_ids_in(page: str) -> set[int]:
    return {int(i) for i in re.findall(r'data-alarm="(\d+)"', page)}


# --- the console -----------------------------------------------------------------------------


def test_console_folds_symptoms_under_their_root_cause(portal: Portal, seeded: Seeded):  # noqa: F811
    client = logged_in(portal.app, NOC)
    page = client.get("/alarms").get_data(as_text=True)
    assert f'id="group-{seeded.root}"' in page
    folded = page.split(f'<details class="symptoms" data-root="{seeded.root}">')[1]
    folded = folded.split("</details>")[0]
    assert alarm_ids_in(folded) == seeded.symptoms
    assert f"{len(seeded.symptoms)} symptoms" in folded
    # jinlu's own incident is another group; every alarm is on the page once
    assert alarm_ids_in(page) == {seeded.root} | seeded.symptoms | seeded.only_b
    assert P_ROUTER in page and "device unreachable" in page and "service down" in page


def test_console_filters(portal: Portal, seeded: Seeded):  # noqa: F811
    client = logged_in(portal.app, NOC)
    every = {seeded.root} | seeded.symptoms | seeded.only_b

    def shown(**query: str | int) -> set[int]:
        response = client.get("/alarms", query_string=query)
        assert response.status_code == 200
        return alarm_ids_in(response.get_data(as_text=True))

    assert shown() == every
    assert shown(customer_id=portal.a.customer_id) == {seeded.root} | seeded.services_a
    assert shown(customer_id=portal.b.customer_id) == ({seeded.root} | seeded.services_b
                                                       | seeded.only_b)
    assert shown(severity="critical") >= {seeded.root}
    assert shown(severity="warning") == set()
    assert shown(state="cleared") == set()
    assert shown(acknowledged="true") == set()
    with portal.database.pool.connection() as conn:
        alarm_store.acknowledge(conn, seeded.root, "eng.liu", "on it")
        alarm_store.clear_alarm(conn, min(seeded.only_b), "eng.liu", "false alarm")
    assert shown(acknowledged="true") == {seeded.root}
    assert seeded.root not in shown(acknowledged="false")
    assert shown(state="cleared") == {min(seeded.only_b)}
    assert shown(state="all") == every
    assert client.get("/alarms", query_string={"severity": "bogus"}).status_code == 400


def test_console_shows_the_impact_of_a_selected_alarm(portal: Portal, seeded: Seeded):  # noqa: F811
    client = logged_in(portal.app, NOC)
    page = client.get("/alarms", query_string={"selected": seeded.root}).get_data(as_text=True)
    impact = page.split('<aside class="impact" id="impact">')[1].split("</aside>")[0]
    for name in ("华盛银行", "HSB-L3VPN-0001"):
        assert name in impact or name in page
    with portal.database.pool.connection() as conn:
        root = alarm_store.get_alarm(conn, seeded.root)
        keys = {row[0] for row in conn.execute("SELECT key FROM circuits WHERE id = ANY(%s)",
                                              [sorted(root.impacted_circuits)])}
        names = {row[0] for row in conn.execute("SELECT name FROM customers WHERE id = ANY(%s)",
                                               [sorted(root.impacted_customers)])}
    assert len(names) == 3
    for word in keys | names:
        assert word in impact


# --- actions and the timeline ----------------------------------------------------------------


def test_acknowledge_unacknowledge_and_clear_are_in_the_timeline(
        portal: Portal, seeded: Seeded):  # noqa: F811
    client = logged_in(portal.app, ENGINEER)
    token = page_csrf(client)
    alarm_id = min(seeded.services_a)
    done = client.post(f"/alarms/{alarm_id}/acknowledge",
                       data={"csrf_token": token, "comment": "field team on the way",
                             "next": "/alarms?state=active"})
    assert done.status_code == 302 and done.headers["Location"] == "/alarms?state=active"
    client.post(f"/alarms/{alarm_id}/unacknowledge",
                data={"csrf_token": token, "comment": "wrong alarm"})
    no_reason = client.post(f"/alarms/{alarm_id}/clear", data={"csrf_token": token})
    assert no_reason.status_code == 400
    assert "Give a reason" in no_reason.get_data(as_text=True)
    cleared = client.post(f"/alarms/{alarm_id}/clear",
                          data={"csrf_token": token, "reason": "fixed by a reboot"})
    assert cleared.headers["Location"] == f"/alarms/{alarm_id}"
    with portal.database.pool.connection() as conn:
        alarm = alarm_store.get_alarm(conn, alarm_id)
    assert alarm.state == "cleared"
    manual = [(e.action, e.actor, e.comment) for e in alarm.timeline if e.actor != "pipeline"]
    assert manual == [("acknowledged", ENGINEER, "field team on the way"),
                      ("unacknowledged", ENGINEER, "wrong alarm"),
                      ("cleared", ENGINEER, "fixed by a reboot")]
    page = client.get(f"/alarms/{alarm_id}").get_data(as_text=True)
    for text in ("field team on the way", "wrong alarm", "fixed by a reboot", ENGINEER,
                 "acknowledgement taken back", "alarm pipeline"):
        assert text in page
    # a cleared alarm offers no action, and a late one is a conflict, not an error
    assert f'action="/alarms/{alarm_id}/acknowledge"' not in page
    late = client.post(f"/alarms/{alarm_id}/acknowledge", data={"csrf_token": token})
    assert late.status_code == 409


def test_actions_need_the_csrf_token_and_an_acting_role(portal: Portal, seeded: Seeded):  # noqa: F811
    engineer = logged_in(portal.app, ENGINEER)
    assert engineer.post(f"/alarms/{seeded.root}/acknowledge").status_code == 400
    with portal.database.pool.connection() as conn:
        assert not alarm_store.get_alarm(conn, seeded.root).acknowledged
    manager = logged_in(portal.app, "am.chen")
    page = manager.get(f"/alarms/{seeded.root}").get_data(as_text=True)
    assert "/acknowledge" not in page
    refused = manager.post(f"/alarms/{seeded.root}/acknowledge",
                           data={"csrf_token": csrf_token(page)})
    assert refused.status_code == 403


# --- scoping -------------------------------------------------------------------------------


def test_customer_sees_only_its_alarms(portal: Portal, seeded: Seeded):  # noqa: F811
    client = logged_in(portal.app, USER_A)
    page = client.get("/alarms", query_string={"state": "all"}).get_data(as_text=True)
    assert alarm_ids_in(page) == {seeded.root} | seeded.services_a
    for word in portal.b.words:
        assert word not in page
    assert 'name="customer_id"' not in page  # no customer filter for a customer
    # the root cause hits every customer; A sees only its own share of the impact
    root = client.get(f"/alarms/{seeded.root}").get_data(as_text=True)
    assert root.count('class="impact-customers"') == 1
    for word in portal.b.words:
        assert word not in root
    assert "HSB-L3VPN-0001" in root or any(w in root for w in portal.a.words)
    for alarm_id in seeded.services_b | seeded.only_b:
        assert client.get(f"/alarms/{alarm_id}").status_code == 404
        assert client.get("/alarms", query_string={"selected": alarm_id}).status_code == 200
        assert f'data-alarm="{alarm_id}"' not in client.get(
            "/alarms", query_string={"selected": alarm_id}).get_data(as_text=True)
    # B's customer id as a filter gives nothing
    assert alarm_ids_in(client.get("/alarms", query_string={
        "customer_id": portal.b.customer_id}).get_data(as_text=True)) == set()


def test_customer_cannot_act(portal: Portal, seeded: Seeded):  # noqa: F811
    client = logged_in(portal.app, USER_A)
    page = client.get(f"/alarms/{min(seeded.services_a)}").get_data(as_text=True)
    assert "/acknowledge" not in page and 'name="reason"' not in page
    token = csrf_token(page)
    for action in ("acknowledge", "unacknowledge", "clear"):
        own = client.post(f"/alarms/{min(seeded.services_a)}/{action}",
                          data={"csrf_token": token, "reason": "x", "comment": "x"})
        assert own.status_code == 403
        foreign = client.post(f"/alarms/{min(seeded.only_b)}/{action}",
                              data={"csrf_token": token, "reason": "x", "comment": "x"})
        assert foreign.status_code == 404
    with portal.database.pool.connection() as conn:
        assert all(a.acknowledged_by is None for a in alarm_store.list_alarms(conn, state=None))
        assert len(alarm_store.active_alarms(conn)) == len(
            {seeded.root} | seeded.symptoms | seeded.only_b)


def test_api_is_scoped_like_the_pages(portal: Portal, seeded: Seeded):  # noqa: F811
    client = portal.app.test_client()
    a = bearer(token_for(portal, USER_A))
    listed = client.get("/api/v1/alarms", headers=a).get_json()["alarms"]
    assert {x["id"] for x in listed} == {seeded.root} | seeded.services_a
    root = next(x for x in listed if x["id"] == seeded.root)
    assert root["impacted_customers"] == [portal.a.customer_id]
    assert set(root["impacted_circuits"]) <= portal.a.ids["circuit"]
    detail = client.get(f"/api/v1/alarms/{seeded.root}", headers=a).get_json()
    assert set(detail["symptoms"]) == seeded.services_a
    assert detail["timeline"][0]["action"] == "raised"
    for alarm_id in seeded.services_b | seeded.only_b:
        missing = client.get(f"/api/v1/alarms/{alarm_id}", headers=a)
        assert missing.status_code == 404
        assert missing.get_json() == {"error": "no such alarm", "field": "alarm_id"}
        for action in ("acknowledge", "unacknowledge", "clear"):
            assert client.post(f"/api/v1/alarms/{alarm_id}/{action}", headers=a,
                               json={"reason": "x"}).status_code == 404
    for action in ("acknowledge", "unacknowledge", "clear"):
        refused = client.post(f"/api/v1/alarms/{seeded.root}/{action}", headers=a,
                              json={"reason": "x"})
        assert refused.status_code == 403 and refused.get_json()["error"]
    windows = client.get("/api/v1/maintenance-windows", headers=a).get_json()["windows"]
    assert windows == []
    b = bearer(token_for(portal, USER_B))
    windows = client.get("/api/v1/maintenance-windows", headers=b).get_json()["windows"]
    assert [w["id"] for w in windows] == [seeded.window_b]
    assert client.post(f"/api/v1/maintenance-windows/{seeded.window_b}/end",
                       headers=b).status_code == 403
    assert client.post(f"/api/v1/maintenance-windows/{seeded.window_b}/end",
                       headers=a).status_code == 404
    assert client.post("/api/v1/maintenance-windows", headers=b, json={
        "scope": ["customer:jinlu"], "starts_at": "2030-01-01T00:00:00Z",
        "ends_at": "2030-01-01T01:00:00Z", "reason": "x"}).status_code == 403


def test_api_actions_with_token_need_no_csrf_but_sessions_do(
        portal: Portal, seeded: Seeded):  # noqa: F811
    client = portal.app.test_client()
    engineer = bearer(token_for(portal, ENGINEER))
    acked = client.post(f"/api/v1/alarms/{seeded.root}/acknowledge", headers=engineer,
                        json={"comment": "looking"})
    assert acked.status_code == 200, acked.get_json()
    body = acked.get_json()
    assert body["acknowledged_by"] == ENGINEER and body["ack_comment"] == "looking"
    assert body["timeline"][-1] == {**body["timeline"][-1], "action": "acknowledged",
                                    "actor": ENGINEER, "comment": "looking"}
    again = client.post(f"/api/v1/alarms/{seeded.root}/acknowledge", headers=engineer)
    assert again.status_code == 200  # acknowledging again is allowed (a new comment)
    assert client.post(f"/api/v1/alarms/{seeded.root}/unacknowledge",
                       headers=engineer).status_code == 200
    assert client.post(f"/api/v1/alarms/{seeded.root}/unacknowledge",
                       headers=engineer).status_code == 409
    no_reason = client.post(f"/api/v1/alarms/{seeded.root}/clear", headers=engineer, json={})
    assert no_reason.status_code == 400 and no_reason.get_json()["field"] == "reason"
    bad_comment = client.post(f"/api/v1/alarms/{seeded.root}/acknowledge", headers=engineer,
                              json={"comment": 5})
    assert bad_comment.get_json() == {"error": "comment must be a string", "field": "comment"}
    not_json = client.post(f"/api/v1/alarms/{seeded.root}/acknowledge", headers=engineer,
                           data="[1]", content_type="application/json")
    assert not_json.status_code == 400

    session = logged_in(portal.app, ENGINEER)
    no_token = session.post(f"/api/v1/alarms/{seeded.root}/acknowledge", json={})
    assert no_token.status_code == 400 and "error" in no_token.get_json()
    with portal.database.pool.connection() as conn:
        assert not alarm_store.get_alarm(conn, seeded.root).acknowledged
    with_token = session.post(f"/api/v1/alarms/{seeded.root}/acknowledge", json={},
                              headers={"X-CSRFToken": page_csrf(session)})
    assert with_token.status_code == 200
    cleared = client.post(f"/api/v1/alarms/{seeded.root}/clear", headers=engineer,
                          json={"reason": "router replaced"})
    assert cleared.get_json()["state"] == "cleared"
    assert client.post("/api/v1/alarms/1/acknowledge").status_code == 401


@pytest.mark.parametrize(("query", "field"), [
    ({"state": "open"}, "state"),
    ({"severity": "huge"}, "severity"),
    ({"acknowledged": "maybe"}, "acknowledged"),
    ({"customer_id": "x"}, "customer_id"),
    ({"limit": 0}, "limit"),
])
def test_api_list_filters_name_the_field(portal: Portal, query, field):  # noqa: F811
    client = portal.app.test_client()
    response = client.get("/api/v1/alarms", query_string=query,
                          headers=bearer(token_for(portal, NOC)))
    assert response.status_code == 400 and response.get_json()["field"] == field


def test_api_lists_with_filters(portal: Portal, seeded: Seeded):  # noqa: F811
    client = portal.app.test_client()
    noc = bearer(token_for(portal, NOC))

    def ids(**query: str | int) -> set[int]:
        response = client.get("/api/v1/alarms", query_string=query, headers=noc)
        assert response.status_code == 200
        return {x["id"] for x in response.get_json()["alarms"]}

    assert ids(customer_id=portal.a.customer_id) == {seeded.root} | seeded.services_a
    assert ids(state="cleared") == set()
    assert ids(acknowledged="false", limit=1) == {max(ids())}


# --- maintenance windows -------------------------------------------------------------------


def _local(moment: datetime) -> str:
    """A time as a datetime-local field sends it (UTC, minutes)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def test_declare_list_and_end_a_window_on_the_page(portal: Portal, seeded: Seeded):  # noqa: F811
    client = logged_in(portal.app, ENGINEER)
    token = page_csrf(client, "/maintenance")
    now = datetime.now(UTC)
    form = {"csrf_token": token, "kind": "device", "key": P_ROUTER,
            "starts_at": _local(now), "ends_at": _local(now + timedelta(hours=2)),
            "reason": "line card swap"}
    assert client.post("/maintenance", data=form).status_code == 302
    bad = client.post("/maintenance", data={**form, "key": "no-such-router"})
    assert bad.status_code == 400 and 'data-field="scope"' in bad.get_data(as_text=True)
    backwards = client.post("/maintenance", data={**form, "ends_at": _local(now - timedelta(
        hours=1))})
    assert backwards.status_code == 400
    assert 'data-field="ends_at"' in backwards.get_data(as_text=True)
    page = client.get("/maintenance").get_data(as_text=True)
    active = page.split('class="windows windows-active"')[1].split("</table>")[0]
    assert "line card swap" in active and P_ROUTER in active
    future = page.split('class="windows windows-future"')[1].split("</table>")[0]
    assert "jinlu fibre work" in future
    with portal.database.pool.connection() as conn:
        window = next(w for w in alarm_store.list_windows(conn) if w.reason == "line card swap")
    assert window.declared_by == ENGINEER
    assert client.post(f"/maintenance/{window.id}/end",
                       data={"csrf_token": token}).status_code == 302
    with portal.database.pool.connection() as conn:
        ended = next(w for w in alarm_store.list_windows(conn) if w.id == window.id)
    assert ended.ended_by == ENGINEER and ended.ends_at <= datetime.now(UTC)
    page = client.get("/maintenance").get_data(as_text=True)
    past = page.split('class="windows windows-past"')[1].split("</table>")[0]
    assert "line card swap" in past and f'/maintenance/{window.id}/end' not in past
    assert "ended early by eng.liu" in past
    # past windows are immutable: ending again is refused and changes nothing
    again = client.post(f"/maintenance/{window.id}/end", data={"csrf_token": token})
    assert again.status_code == 409
    with portal.database.pool.connection() as conn:
        assert next(w for w in alarm_store.list_windows(conn) if w.id == window.id) == ended
    # a future window is cancelled
    assert client.post(f"/maintenance/{seeded.window_b}/end",
                       data={"csrf_token": token}).status_code == 302
    with portal.database.pool.connection() as conn:
        assert seeded.window_b not in {w.id for w in alarm_store.list_windows(conn)}


def test_past_windows_are_immutable_in_the_api(portal: Portal):  # noqa: F811
    now = datetime.now(UTC)
    with portal.database.pool.connection() as conn:
        past = alarm_store.add_window(conn, (ScopeItem("customer", portal.a.customer_id,
                                                       "hsbank"),),
                                      now - timedelta(days=2), now - timedelta(days=1),
                                      "last week's upgrade", "noc.wang")
    client = portal.app.test_client()
    noc = bearer(token_for(portal, NOC))
    refused = client.post(f"/api/v1/maintenance-windows/{past.id}/end", headers=noc)
    assert refused.status_code == 409 and refused.get_json()["field"] == "window_id"
    listed = client.get("/api/v1/maintenance-windows", headers=noc,
                        query_string={"status": "past"}).get_json()["windows"]
    assert [w["id"] for w in listed] == [past.id]
    # the customer sees the window on its own customer
    a = bearer(token_for(portal, USER_A))
    mine = client.get("/api/v1/maintenance-windows", headers=a).get_json()["windows"]
    assert [(w["id"], w["status"]) for w in mine] == [(past.id, "past")]
    # ... but not the operator's reason (an internal note) nor who declared it
    assert (mine[0]["reason"], mine[0]["declared_by"]) == (None, None)
    page = logged_in(portal.app, USER_A).get("/maintenance").get_data(as_text=True)
    assert f'data-window="{past.id}"' in page and "Declare a window" not in page
    assert "last week&#39;s upgrade" not in page and "noc.wang" not in page


GRACE_REFUSAL = "a window may not start more than 10 minutes in the past"


def test_a_window_starting_in_the_past_is_refused_by_the_api_and_the_page(
        portal: Portal):  # noqa: F811
    """The rule of alarms.actions, the same as the command line's (tests/test_alarms_cli.py):
    a start more than the grace before now is refused, naming the field, and nothing is
    stored; a start within the grace is accepted."""
    client = portal.app.test_client()
    noc = bearer(token_for(portal, NOC))
    now = datetime.now(UTC)
    body = {"scope": [f"device:{P_ROUTER}"], "ends_at": (now + timedelta(hours=2)).isoformat(),
            "reason": "fibre cut, renamed"}
    late = client.post("/api/v1/maintenance-windows", headers=noc,
                       json={**body, "starts_at": (now - timedelta(minutes=11)).isoformat()})
    assert late.status_code == 400
    assert late.get_json() == {"error": GRACE_REFUSAL, "field": "starts_at"}
    page = logged_in(portal.app, NOC)
    form = {"csrf_token": page_csrf(page, "/maintenance"), "kind": "device", "key": P_ROUTER,
            "ends_at": _local(now + timedelta(hours=2)), "reason": "fibre cut, renamed"}
    refused = page.post("/maintenance", data={**form, "starts_at": _local(
        now - timedelta(minutes=11))})
    assert refused.status_code == 400
    text = refused.get_data(as_text=True)
    assert 'data-field="starts_at"' in text and "Check the start" in text
    with portal.database.pool.connection() as conn:
        assert alarm_store.list_windows(conn) == []
    within = client.post("/api/v1/maintenance-windows", headers=noc,
                         json={**body, "starts_at": (now - timedelta(minutes=5)).isoformat()})
    assert within.status_code == 201 and within.get_json()["status"] == "active"
    assert page.post("/maintenance", data={**form, "starts_at": _local(
        now - timedelta(minutes=5))}).status_code == 302
    with portal.database.pool.connection() as conn:
        windows = alarm_store.list_windows(conn)
    assert [w.declared_by for w in windows] == [NOC, NOC]


# a window's start in the API tests: ahead, within alarms.maintenance_max_ahead_days
SOON = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)


@pytest.mark.parametrize(("change", "field"), [
    ({"scope": []}, "scope"),
    ({"scope": "device:p-sh1"}, "scope"),
    ({"scope": ["router:p-sh1"]}, "scope"),
    ({"scope": ["device:nope"]}, "scope"),
    ({"scope": {"device": "p-sh1"}}, "scope"),
    ({"scope": ["device:p-sh1"] * 51}, "scope"),
    ({"starts_at": "soon"}, "starts_at"),
    ({"starts_at": "2001-01-01T00:00:00Z"}, "starts_at"),
    ({"starts_at": (SOON + timedelta(days=366)).isoformat()}, "starts_at"),
    ({"ends_at": (SOON - timedelta(days=1)).isoformat()}, "ends_at"),
    ({"ends_at": (SOON + timedelta(days=31, seconds=1)).isoformat()}, "ends_at"),
    ({"ends_at": "9999-12-31T23:59:59Z"}, "ends_at"),
    ({"reason": ""}, "reason"),
    ({"reason": "x\u0000y"}, "reason"),
    ({"reason": "x" * 2001}, "reason"),
])
def test_api_window_errors_name_the_field(portal: Portal, change, field):  # noqa: F811
    client = portal.app.test_client()
    body = {"scope": ["device:p-sh1"], "starts_at": SOON.isoformat(),
            "ends_at": (SOON + timedelta(hours=2)).astimezone(timezone(timedelta(hours=8)))
            .isoformat(), "reason": "planned"}
    noc = bearer(token_for(portal, NOC))
    assert client.post("/api/v1/maintenance-windows", headers=noc,
                       json=body).status_code == 201
    response = client.post("/api/v1/maintenance-windows", headers=noc,
                           json={**body, **change})
    if change == {"scope": "device:p-sh1"}:  # a single text is taken as one item
        assert response.status_code == 201
        return
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["field"] == field


def test_api_refuses_a_window_without_end_in_sight(portal: Portal):  # noqa: F811
    """Year 9999 as the end is a 400 naming the field; the app's setting is the bound."""
    client = portal.app.test_client()
    noc = bearer(token_for(portal, NOC))
    body = {"scope": ["device:p-sh1"], "starts_at": SOON.isoformat(),
            "ends_at": "9999-12-31T23:59:59Z", "reason": "planned"}
    response = client.post("/api/v1/maintenance-windows", headers=noc, json=body)
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "a window may last at most 31 days (setting alarms.maintenance_max_days)",
        "field": "ends_at"}
    settings = portal.app.extensions["keyline.settings"]
    portal.app.extensions["keyline.settings"] = settings.model_copy(update={
        "alarms": settings.alarms.model_copy(update={"maintenance_max_days": 1.0})})
    try:
        body["ends_at"] = (SOON + timedelta(days=2)).isoformat()
        response = client.post("/api/v1/maintenance-windows", headers=noc, json=body)
        assert response.status_code == 400 and response.get_json()["field"] == "ends_at"
        assert "at most 1 days" in response.get_json()["error"]
    finally:
        portal.app.extensions["keyline.settings"] = settings
    assert client.post("/api/v1/maintenance-windows", headers=noc,
                       json=body).status_code == 201


def test_account_manager_reads_only_their_customers_alarms(
        portal: Portal, seeded: Seeded):  # noqa: F811
    """am.zhao manages xinhe only: the root cause (it hits xinhe too) and xinhe's service
    alarms, nothing of jinlu's own incident, and no action."""
    with portal.database.pool.connection() as conn:
        set_password(conn, "am.zhao", PASSWORD)
    client = logged_in(portal.app, "am.zhao")
    page = client.get("/alarms").get_data(as_text=True)
    shown = alarm_ids_in(page)
    assert seeded.root in shown
    assert not shown & (seeded.services_a | seeded.services_b | seeded.only_b)
    assert shown - {seeded.root} and shown <= {seeded.root} | seeded.symptoms
    assert "/acknowledge" not in page
    assert client.get(f"/alarms/{min(seeded.only_b)}").status_code == 404
    assert client.get("/maintenance").status_code == 200
    assert "jinlu fibre work" not in client.get("/maintenance").get_data(as_text=True)
