"""The portal in a real browser: Debian's headless Chromium driven by Playwright.

Playwright's own browser builds are never downloaded (no `playwright install`): the test
launches the system's `chromium` (lab/debian-packages.txt) through `executable_path`, and
skips, saying why, when it or the playwright package is missing. The portal runs in a thread
on a free local port, on the same fixtures as tests/test_portal_access.py.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.test_portal_access import PASSWORD, USER_A, Portal, portal  # noqa: F401

pytestmark = pytest.mark.slow


def chromium_path() -> str | None:
    for candidate in ("/usr/lib/chromium/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture
def browser() -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the playwright package is not installed")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no chromium: install Debian's chromium (lab/debian-packages.txt)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def base_url(portal: Portal) -> Iterator[str]:  # noqa: F811
    server = make_server("127.0.0.1", 0, portal.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        # a page that opened a socket started the live bridge: stop its event subscriber
        portal.app.extensions["keyline.live"].stop()


def log_in(page, base_url: str, name: str, password: str) -> None:
    page.goto(base_url + "/")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("form button[type=submit] >> text=/Log in|登录/")


def test_customer_logs_in_sees_own_circuits_and_switches_to_chinese(
        browser, base_url: str, portal: Portal):  # noqa: F811
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    from datetime import UTC, datetime, timedelta

    now = [datetime.now(UTC)]  # the app's clock: past the failure's wait without sleeping
    portal.app.extensions["keyline.clock"] = lambda: now[0]
    log_in(page, base_url, USER_A, "a wrong password")
    assert page.locator("p.error").inner_text() == "Wrong name or password."

    now[0] += timedelta(seconds=portal.app.extensions["keyline.accounts"].login_backoff_base_s)
    log_in(page, base_url, USER_A, PASSWORD)
    page.wait_for_selector("table.circuits")
    body = page.inner_text("body")
    assert "HSB-L3VPN-0001" in body
    for word in portal.b.words:
        assert word not in page.content()
    assert "My circuits" in body

    page.click("button[name=lang][value=zh_CN]")
    page.wait_for_selector("html[lang=zh-CN]", state="attached")
    body = page.inner_text("body")
    assert "我的电路" in body and "退出登录" in body
    assert "HSB-L3VPN-0001" in body
    assert "My circuits" not in body

    # the choice holds across pages, and logging out keeps it
    page.click("button.logout")
    page.wait_for_selector("input[name=password]")
    assert page.locator("h1").inner_text() == "登录"
    context.close()


def test_browser_language_is_the_default(browser, base_url: str):
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    page.goto(base_url + "/login")
    assert page.locator("h1").inner_text() == "登录"
    context.close()


def test_login_waits_after_failures_then_works(browser, base_url: str,
                                               portal: Portal):  # noqa: F811
    from datetime import UTC, datetime, timedelta

    now = [datetime.now(UTC)]  # the app's clock, moved instead of waiting
    portal.app.extensions["keyline.clock"] = lambda: now[0]
    rules = portal.app.extensions["keyline.accounts"].model_copy(
        update={"login_backoff_base_s": 30.0})
    portal.app.extensions["keyline.accounts"] = rules
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    log_in(page, base_url, USER_A, "a wrong password")
    assert "Wrong name or password." in page.inner_text("p.error")
    log_in(page, base_url, USER_A, PASSWORD)  # at once: even the right password waits
    assert "Try again in 30 seconds" in page.inner_text("p.error")
    assert "HSB-L3VPN-0001" not in page.content()
    now[0] += timedelta(seconds=rules.login_backoff_base_s)
    log_in(page, base_url, USER_A, PASSWORD)  # after the wait: in
    page.wait_for_selector("text=HSB-L3VPN-0001")
    context.close()
