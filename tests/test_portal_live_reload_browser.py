"""A live page whose join is answered "reload" (portal/live.py's join budget, the
`live.joins_per_window` setting) tells its user to reload it, in their language, rather
than looking merely offline and reconnecting for ever. In headless Chromium
(tests/test_portal_browser.py), on the example inventory.
"""

from __future__ import annotations

import pytest

from config.settings import load_settings
from portal.app import create_app
from store.users import set_password
from tests.test_portal_access import PASSWORD, USER_A, Portal, portal  # noqa: F401
from tests.test_portal_browser import browser, log_in, pytestmark  # noqa: F401
from tests.test_portal_live import serve

MANAGER = "am.chen"  # manages two customers: the alarm console joins two rooms
NOTICE = {"en-US": "too many reconnects: reload the page", "zh-CN": "重连次数过多：请刷新页面"}
# Loading a page and its first join on a loaded CI machine: generous, never a speed check.
PAGE_TIMEOUT_MS = 30_000


def _app(portal: Portal, tmp_path, **live: object):  # noqa: F811
    settings = load_settings(None, overrides={
        "data_dir": tmp_path / "data", "database_url": portal.database.url, "live": live})
    return create_app(settings, portal.database)


def test_a_manager_console_joins_every_room_within_a_budget_of_one(
        browser, portal: Portal, tmp_path):  # noqa: F811
    """live.joins_per_window = 1: the manager's console joins one room per managed customer
    on one connection, and goes live: the budget counts rejoins of a room, not rooms (a
    manager of more customers than the budget would otherwise never go live)."""
    with portal.database.pool.connection() as conn:
        set_password(conn, MANAGER, PASSWORD)
    app = _app(portal, tmp_path, joins_per_window=1, join_window_s=600)
    with serve(app) as live:
        context = browser.new_context(locale="en-US")
        try:
            page = context.new_page()
            log_in(page, live.url, MANAGER, PASSWORD)
            page.wait_for_selector("nav a[href='/alarms']")
            page.goto(live.url + "/alarms")
            page.wait_for_selector("#live-state[data-state=live]", timeout=PAGE_TIMEOUT_MS)
        finally:
            context.close()
        budget = app.extensions["keyline.live_joins"]
        assert budget.joins == 1
        joined_rooms = {room for _sid, room in budget._times}
        assert len(joined_rooms) == 2  # both customers' rooms, on a budget of one join each


@pytest.mark.parametrize(("user", "path", "locale"), [
    ("noc.wang", "/noc/topology", "en-US"), (USER_A, "/my/", "en-US"),
    (MANAGER, "/alarms", "en-US"), (MANAGER, "/alarms", "zh-CN")])
def test_live_pages_act_on_reload(browser, portal: Portal,  # noqa: F811
                                  tmp_path, user: str, path: str, locale: str):
    """A join answered "reload" makes the page say so, in its user's language, and stop its
    socket instead of reconnecting for ever."""
    with portal.database.pool.connection() as conn:
        set_password(conn, MANAGER, PASSWORD)
    app = _app(portal, tmp_path)
    # every join refused as the budget refuses one
    app.extensions["keyline.live_joins"].allow = lambda sid, room, now=None: (False, 30.0)
    with serve(app) as live:
        context = browser.new_context(locale=locale)
        try:
            page = context.new_page()
            log_in(page, live.url, user, PASSWORD)
            page.wait_for_load_state()
            page.goto(live.url + path)
            page.wait_for_selector("#live-state[data-state=reload]", timeout=PAGE_TIMEOUT_MS)
            assert page.text_content("#live-state") == NOTICE[locale]
            # it stays said: the page stopped its socket instead of reconnecting
            page.wait_for_timeout(1000)
            assert page.get_attribute("#live-state", "data-state") == "reload"
        finally:
            context.close()
