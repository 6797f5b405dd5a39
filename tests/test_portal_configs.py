"""Configuration history in the portal (portal/configs.py): the versions page, a version's
diff, their REST API, and the alarm timeline's "what changed?", with Flask's test client on
a real database holding the example inventory (tests/test_portal_access.py's fixtures).

The operator's engineers (engineer, noc, admin) read configurations; a customer user and an
account manager get 404 for every configuration page and endpoint, even of a device at
their own site, and never see a configuration change in an alarm's timeline. The alarms are
the pipeline's own (tests/test_portal_alarms.py `seed_alarms`: p-bj1 unreachable, its
service alarms on the circuits it carries); p-bj1's configuration changed ten minutes
before, so the root cause and its symptoms on circuits routed across p-bj1 show the change.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from store import alarms as alarm_store
from store import configs as config_store
from tests.test_portal_access import (  # noqa: F401
    USER_A,
    Portal,
    logged_in,
    portal,
)
from tests.test_portal_alarms import (  # noqa: F401
    ENGINEER,
    NOC,
    P_ROUTER,
    Seeded,
    bearer,
    seed_alarms,
    seeded,
    token_for,
)

MANAGER = "am.chen"  # hsbank's and jinlu's account manager
SECRET_MASK = "<masked sha256:5e884898>"
V1 = f"""sysname {P_ROUTER}
#
local-user admin password irreversible-cipher {SECRET_MASK}
#
interface GigabitEthernet0/0/1
 description to pe-sh1
 isis enable 1
#
return
"""
V2 = V1.replace(" isis enable 1\n", " isis enable 1\n isis cost 5000\n")
V3 = V2.replace("description to pe-sh1", "description to pe-sh1 (rerouted)")


def device_id(portal: Portal, key: str) -> int:  # noqa: F811
    with portal.database.pool.connection() as conn:
        found = config_store.find_device(conn, key)
    assert found is not None
    return found.id


@pytest.fixture
def history(portal: Portal) -> int:  # noqa: F811
    """p-bj1 fetched two hours ago, unchanged until 40 minutes ago, changed by 10 minutes
    ago (v2), changed again a minute ago by an engineer's fetch (v3)."""
    now = datetime.now(UTC)
    router = device_id(portal, P_ROUTER)
    with portal.database.pool.connection() as conn:
        config_store.record_config(conn, router, V1, at=now - timedelta(hours=2))
        config_store.record_config(conn, router, V1, at=now - timedelta(minutes=40))
        config_store.record_config(conn, router, V2, at=now - timedelta(minutes=10))
        config_store.record_config(conn, router, V3, at=now - timedelta(minutes=1),
                                   by=ENGINEER)
        config_store.record_fetch(conn, router, at=now, status="auth-failed",
                                  reason="the device refused the login")
    return router


# --- pages ---------------------------------------------------------------------------------


@pytest.mark.parametrize("user", [ENGINEER, NOC, "admin"])
def test_operators_read_versions_and_diffs(portal: Portal, seeded: Seeded, history: int,  # noqa: F811
                                           user: str):
    client = logged_in(portal.app, user)
    page = client.get(f"/devices/{history}/configs").get_data(as_text=True)
    assert re.findall(r'data-version="(\d+)"', page) == ["3", "2", "1"]
    assert 'data-status="auth-failed"' in page and "the device refused the login" in page
    assert ENGINEER in page  # who fetched v3
    response = client.get(f"/devices/{history}/configs/2")
    assert response.status_code == 200
    diff = response.get_data(as_text=True)
    assert '<span class="diff-add">+ isis cost 5000</span>' in diff
    assert "diff-del" not in diff
    assert SECRET_MASK.replace("<", "&lt;").replace(">", "&gt;") in diff  # the whole text
    assert 'rel="prev"' in diff and 'rel="next"' in diff
    against = client.get(f"/devices/{history}/configs/3",
                         query_string={"against": 1}).get_data(as_text=True)
    assert "+ isis cost 5000" in against and "(rerouted)" in against
    first = client.get(f"/devices/{history}/configs/1").get_data(as_text=True)
    assert 'rel="prev"' not in first and "diff-add" in first
    assert client.get(f"/devices/{history}/configs/4").status_code == 404
    assert client.get(f"/devices/{history}/configs/2",
                      query_string={"against": 9}).status_code == 404
    assert client.get(f"/devices/{10**12}/configs").status_code == 404
    device_page = client.get(f"/devices/{history}").get_data(as_text=True)
    assert f'href="/devices/{history}/configs"' in device_page


def test_versions_page_of_a_device_never_fetched(portal: Portal, seeded: Seeded):  # noqa: F811
    client = logged_in(portal.app, NOC)
    page = client.get(f"/devices/{device_id(portal, 'pe-sh1')}/configs").get_data(as_text=True)
    assert "No configuration fetched yet." in page and 'id="last-fetch"' not in page


@pytest.mark.parametrize("user", [USER_A, MANAGER])
def test_customers_and_account_managers_get_404(portal: Portal, seeded: Seeded,  # noqa: F811
                                                history: int, user: str):
    client = logged_in(portal.app, user)
    own = min(portal.a.ids["device"])  # a device at hsbank's own site
    token = token_for(portal, user)
    for device in (history, own):
        for path in (f"/devices/{device}/configs", f"/devices/{device}/configs/1"):
            assert client.get(path).status_code == 404, path
        for path in (f"/api/v1/devices/{device}/configs",
                     f"/api/v1/devices/{device}/configs/1"):
            response = portal.app.test_client().get(path, headers=bearer(token))
            assert response.status_code == 404, path
            assert response.get_json() == {"error": "no such device", "field": "device_id"}
    page = client.get(f"/devices/{own}").get_data(as_text=True)
    assert "/configs" not in page


# --- REST ----------------------------------------------------------------------------------


def test_rest_versions_and_a_version_with_its_diff(portal: Portal, seeded: Seeded,  # noqa: F811
                                                   history: int):
    client = portal.app.test_client()
    headers = bearer(token_for(portal, ENGINEER))
    body = client.get(f"/api/v1/devices/{history}/configs", headers=headers).get_json()
    assert body["device"]["key"] == P_ROUTER
    assert [v["version"] for v in body["versions"]] == [3, 2, 1]
    assert body["versions"][0]["fetched_by"] == ENGINEER
    assert body["versions"][0]["diff_url"] == f"/devices/{history}/configs/3"
    assert body["last_fetch"]["status"] == "auth-failed"
    assert "text" not in body["versions"][0]
    v2_at = body["versions"][1]["fetched_at"]
    at = client.get(f"/api/v1/devices/{history}/configs", headers=headers,
                    query_string={"at": v2_at}).get_json()
    assert at["in_force"] == 2
    early = client.get(f"/api/v1/devices/{history}/configs", headers=headers,
                       query_string={"at": "2000-01-01T00:00:00Z"}).get_json()
    assert early["in_force"] is None
    bad = client.get(f"/api/v1/devices/{history}/configs", headers=headers,
                     query_string={"at": "yesterday"})
    assert bad.status_code == 400 and bad.get_json()["field"] == "at"
    one = client.get(f"/api/v1/devices/{history}/configs/2", headers=headers).get_json()
    assert one["text"] == V2 and one["against"] == 1
    assert "+ isis cost 5000" in one["diff"]
    assert one["sha256"] == config_store.config_digest(V2)
    back = client.get(f"/api/v1/devices/{history}/configs/1", headers=headers,
                      query_string={"against": 3}).get_json()
    assert "- isis cost 5000" in back["diff"]
    missing = client.get(f"/api/v1/devices/{history}/configs/9", headers=headers)
    assert missing.status_code == 404 and missing.get_json()["field"] == "version"
    missing = client.get(f"/api/v1/devices/{history}/configs/2", headers=headers,
                         query_string={"against": 9})
    assert missing.status_code == 404 and missing.get_json()["field"] == "against"
    bad = client.get(f"/api/v1/devices/{history}/configs/2", headers=headers,
                     query_string={"against": "v1"})
    assert bad.status_code == 400 and bad.get_json()["field"] == "against"


# --- what changed? -------------------------------------------------------------------------


def test_alarm_timeline_shows_what_changed_to_operators(portal: Portal, seeded: Seeded,  # noqa: F811
                                                        history: int):
    client = logged_in(portal.app, ENGINEER)
    page = client.get(f"/alarms/{seeded.root}").get_data(as_text=True)
    rows = re.findall(r'<tr class="entry action-config-changed" data-device="([^"]+)"'
                      r' data-version="(\d+)"', page)
    # v2 made 40 to 10 minutes before the alarm, v3 10 to 1 minutes before it
    assert rows == [(P_ROUTER, "2"), (P_ROUTER, "3")]
    assert f'href="/devices/{history}/configs/2"' in page
    assert 'id="what-changed" data-count="2"' in page
    # a symptom: a service alarm on a circuit routed across p-bj1
    with portal.database.pool.connection() as conn:
        symptom = alarm_store.get_alarm(conn, min(seeded.services_a))
    page = client.get(f"/alarms/{symptom.id}").get_data(as_text=True)
    assert f'data-device="{P_ROUTER}" data-version="2"' in page
    headers = bearer(token_for(portal, NOC))
    body = portal.app.test_client().get(f"/api/v1/alarms/{seeded.root}",
                                        headers=headers).get_json()
    changes = [e for e in body["timeline"] if e["action"] == "config_changed"]
    assert [c["config_change"]["version"] for c in changes] == [2, 3]
    assert changes[0]["actor"] == P_ROUTER
    assert changes[0]["config_change"]["previous_version"] == 1
    assert changes[0]["config_change"]["diff_url"] == f"/devices/{history}/configs/2"
    times = [datetime.fromisoformat(e["time"]) for e in body["timeline"]]
    assert times == sorted(times)
    assert body["timeline"][-1]["action"] != "config_changed"  # raised after the changes


def test_alarm_without_changes_says_so(portal: Portal, seeded: Seeded):  # noqa: F811
    page = logged_in(portal.app, NOC).get(f"/alarms/{seeded.root}").get_data(as_text=True)
    assert 'id="what-changed" data-count="0"' in page
    assert "action-config-changed" not in page


@pytest.mark.parametrize("user", [USER_A, MANAGER])
def test_customers_and_account_managers_never_see_what_changed(
        portal: Portal, seeded: Seeded, history: int, user: str):  # noqa: F811
    client = logged_in(portal.app, user)
    token = token_for(portal, user)
    for alarm_id in (seeded.root, min(seeded.services_a)):
        page = client.get(f"/alarms/{alarm_id}")
        assert page.status_code == 200
        text = page.get_data(as_text=True)
        assert "action-config-changed" not in text and "what-changed" not in text
        assert "/configs" not in text
        body = portal.app.test_client().get(f"/api/v1/alarms/{alarm_id}",
                                            headers=bearer(token)).get_json()
        assert all(e["action"] != "config_changed" and "config_change" not in e
                   for e in body["timeline"])
