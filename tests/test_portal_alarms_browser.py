"""The alarm console in a real browser (Debian's chromium driven by Playwright, as in
tests/test_portal_browser.py): an engineer acknowledges an alarm with a comment from the
console, and the alarm's page shows it in the timeline."""

from __future__ import annotations

from tests.test_portal_access import PASSWORD, Portal, portal  # noqa: F401
from tests.test_portal_alarms import ENGINEER, Seeded, seeded  # noqa: F401
from tests.test_portal_browser import base_url, browser, log_in, pytestmark  # noqa: F401


def test_engineer_acknowledges_from_the_console(
        browser, base_url: str, portal: Portal, seeded: Seeded):  # noqa: F811
    alarm_id = seeded.root
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    log_in(page, base_url, ENGINEER, PASSWORD)
    page.goto(base_url + "/alarms")
    row = page.locator(f'tr.alarm[data-alarm="{alarm_id}"]')
    row.locator("input[name=comment]").fill("fibre cut near Lujiazui, team dispatched")
    row.locator("button[value=acknowledge]").click()
    page.wait_for_selector(f'tr.alarm[data-alarm="{alarm_id}"] .acked')
    assert ENGINEER in page.locator(f'tr.alarm[data-alarm="{alarm_id}"] .acked').inner_text()

    # symptoms fold under the root cause: collapsed until opened
    symptom = page.locator(f'details[data-root="{alarm_id}"] tr.alarm').first
    assert not symptom.is_visible()
    page.click(f'details[data-root="{alarm_id}"] > summary')
    assert symptom.is_visible()

    page.click(f'tr.alarm[data-alarm="{alarm_id}"] a.alarm-link')
    page.wait_for_selector("table.timeline")
    last = page.locator("table.timeline tr.entry.action-acknowledged").last
    assert "fibre cut near Lujiazui, team dispatched" in last.inner_text()
    assert ENGINEER in last.locator("td.actor").inner_text()
    context.close()
