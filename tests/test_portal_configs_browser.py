"""Configuration history in a real browser (Debian's chromium driven by Playwright, as in
tests/test_portal_browser.py): an engineer opens a fault from the alarm console, finds in its
timeline the configuration change made on the P router ten minutes before, follows it to
the diff, and reads the added line and the whole configuration with its secret masked."""

from __future__ import annotations

from tests.test_portal_access import PASSWORD, Portal, portal  # noqa: F401
from tests.test_portal_alarms import ENGINEER, P_ROUTER, Seeded, seeded  # noqa: F401
from tests.test_portal_browser import base_url, browser, log_in, pytestmark  # noqa: F401
from tests.test_portal_configs import SECRET_MASK, history  # noqa: F401


def test_engineer_goes_from_an_alarm_to_the_diff_of_what_changed(
        browser, base_url: str, portal: Portal, seeded: Seeded, history: int):  # noqa: F811
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    log_in(page, base_url, ENGINEER, PASSWORD)
    page.goto(base_url + "/alarms")
    page.click(f'tr.alarm[data-alarm="{seeded.root}"] a.alarm-link')
    page.wait_for_selector("table.timeline")
    change = page.locator(f'tr.action-config-changed[data-device="{P_ROUTER}"]'
                          '[data-version="2"]')
    assert "configuration changed" in change.inner_text()
    assert "v1 to v2" in change.inner_text()
    assert "2 configuration changes" in page.locator("#what-changed").inner_text()

    change.locator("a.config-diff-link").click()
    page.wait_for_selector("#config-diff")
    assert page.url == f"{base_url}/devices/{history}/configs/2"
    added = page.locator("#config-diff .diff-add")
    assert added.all_inner_texts() == ["+ isis cost 5000"]
    assert page.locator("#config-diff .diff-del").count() == 0
    # the added line is set apart from its context as the stylesheet says
    assert added.evaluate("e => getComputedStyle(e).backgroundColor") != page.locator(
        "#config-diff .diff-same").first.evaluate("e => getComputedStyle(e).backgroundColor")

    whole = page.locator("#config-text pre")
    assert not whole.is_visible()
    page.click("#config-text > summary")
    assert whole.is_visible()
    assert SECRET_MASK in whole.inner_text()

    page.click('a[rel="prev"]')
    page.wait_for_selector('#config-version[data-version="1"]')
    assert "The first version" in page.locator("h2").first.inner_text()
    page.click("text=All versions")
    page.wait_for_selector("table.config-versions")
    assert page.locator("table.config-versions tr[data-version]").count() == 3
    context.close()
