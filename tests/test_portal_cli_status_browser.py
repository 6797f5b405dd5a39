"""A device's CLI side in a real browser (Debian's chromium driven by Playwright, as in
tests/test_portal_browser.py): an engineer opens the P router's page, sees that its CLI
status is host-key-changed with the key trusted before and the key offered, reads the raw
output of the failed run in its collapsed block (secret masked), ticks the confirmation
naming the offered fingerprint and clicks "Accept this host key"; the page then shows the
new key trusted, accepted by them, and the store agrees."""

from __future__ import annotations

from store.cli import FIRST_USE
from tests.test_portal_access import PASSWORD, Portal, portal  # noqa: F401
from tests.test_portal_alarms import ENGINEER
from tests.test_portal_browser import base_url, browser, log_in, pytestmark  # noqa: F401
from tests.test_portal_cli_status import NEW, OLD, SECRET, _keys, changed  # noqa: F401


def test_engineer_accepts_a_changed_host_key_by_clicking(
        browser, base_url: str, portal: Portal, changed: int):  # noqa: F811
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    log_in(page, base_url, ENGINEER, PASSWORD)
    page.goto(f"{base_url}/devices/{changed}")
    page.wait_for_selector("#cli")
    assert page.locator("#cli-status").get_attribute("data-status") == "host-key-changed"
    assert "host key changed (refused)" in page.locator("#cli-status").inner_text()
    assert OLD[2] in page.locator("#cli-trusted-key").inner_text()
    offered = page.locator(f'.offered-key[data-fingerprint="{NEW[2]}"]')
    assert NEW[2] in offered.inner_text()

    raw = page.locator("#cli-raw-output pre")
    assert not raw.is_visible()
    page.click("#cli-raw-output > summary")
    assert raw.is_visible()
    assert "could not read" in raw.inner_text() and SECRET not in page.content()

    button = offered.get_by_role("button", name="Accept this host key")
    button.click()  # the confirmation is not ticked: the browser refuses to send the form
    assert page.url == f"{base_url}/devices/{changed}"
    assert _keys(portal, changed) == {(OLD[2], "trusted", FIRST_USE), (NEW[2], "offered", None)}
    confirm = offered.get_by_label(f"its host key is {NEW[2]}", exact=False)
    confirm.check()
    with page.expect_navigation():
        button.click()
    assert page.url == f"{base_url}/devices/{changed}#cli"
    trusted = page.locator("#cli-trusted-key")
    assert NEW[2] in trusted.inner_text() and f"accepted by {ENGINEER}" in trusted.inner_text()
    assert page.locator(".offered-key").count() == 0
    assert page.locator("#cli-accepted-note").is_visible()
    assert _keys(portal, changed) == {(OLD[2], "retired", FIRST_USE),
                                      (NEW[2], "trusted", ENGINEER)}
    context.close()
