"""The admin's inventory import in Chromium: an import that would retire most of the
inventory stops at a confirmation step that lists what would go, stores nothing, and
imports only when the admin clicks the confirmation button.

Browser and server fixtures as in tests/test_portal_browser.py (Debian's chromium through
Playwright; skipped, saying why, without them).
"""

from __future__ import annotations

import re

import pytest

from keyline.wiring import EXAMPLE_INVENTORY
from tests.test_portal_access import PASSWORD, Portal, portal  # noqa: F401
from tests.test_portal_browser import base_url, browser, log_in  # noqa: F401

pytestmark = pytest.mark.slow


def _active(portal: Portal, table: str) -> int:  # noqa: F811
    with portal.database.pool.connection() as conn:
        return conn.execute(f"SELECT count(*) FROM {table} WHERE retired_at IS NULL"
                            ).fetchone()[0]


def test_import_retiring_most_of_the_inventory_asks_first(
        browser, base_url: str, portal: Portal):  # noqa: F811
    users = (EXAMPLE_INVENTORY / "users.yaml").read_text()
    admin_only = "users:\n" + re.search(r"  - login: admin\n(    .*\n)+", users).group(0)
    circuits = _active(portal, "circuits")
    assert circuits > 0
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    log_in(page, base_url, "admin", PASSWORD)
    page.wait_for_url(re.compile(r".*/noc/"))
    page.goto(base_url + "/admin/inventory")
    page.set_input_files("#import-form input[name=files]", files=[{
        "name": "users.yaml", "mimeType": "application/yaml",
        "buffer": admin_only.encode()}])
    page.click("#import-form button[value=import]")
    page.wait_for_selector("#retire-confirm")
    assert "Nothing has been stored yet." in page.inner_text("#retire-warning")
    listed = page.inner_text("#retiring tr[data-kind=circuits] td.keys")
    assert "HSB-L3VPN-0001" in listed
    assert page.inner_text("#retiring tr[data-kind=circuits] td.count") == str(circuits)
    assert _active(portal, "circuits") == circuits  # asked, not done

    page.click("#confirm-retire")
    page.wait_for_selector("#summary-title")
    assert page.inner_text("#summary-title") == "Imported"
    assert _active(portal, "circuits") == 0
    assert _active(portal, "users") >= 1  # the admin stays
    context.close()
