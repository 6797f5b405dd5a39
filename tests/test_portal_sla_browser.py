"""The SLA pages in a real browser (Debian's chromium driven by Playwright, the portal served
on a local port as in tests/test_portal_browser.py), clicking as a person would.

An account manager (am.chen) logs in, opens "SLA reports" from the top bar, sees its
customers' month, and marks an hour of HSB-L3VPN-0001 customer-caused with a reason through
the form; the mark is then listed with that reason. A customer (hsbank) logs in, sees this
month's availability on its circuit list, goes to "SLA reports" and opens its issued report
of last month. Screenshots of the three pages are kept in the test's tmp_path (printed with
-s) to be looked at.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from pathlib import Path

from sla import reports
from sla import statement as statements
from store.users import set_password
from tests.test_portal_access import (  # noqa: F401
    PASSWORD,
    USER_A,
    Portal,
    portal,
    set_circuit_states,
)
from tests.test_portal_browser import base_url, browser, log_in, pytestmark  # noqa: F401

MANAGER = "am.chen"


def _issue_last_month(portal: Portal) -> tuple[int, str]:  # noqa: F811
    """hsbank's circuits up since before last month, HSB-L3VPN-0001 down 45 minutes in it,
    and its report of that month issued: (report id, month)."""
    with portal.database.pool.connection() as conn:
        now = reports.now_of(conn)
        circuits = dict(conn.execute("SELECT key, id FROM circuits").fetchall())
    month = statements.previous_month(now, "Asia/Shanghai")
    start, _end = statements.month_period(month, "Asia/Shanghai")
    set_circuit_states(portal.database, dict.fromkeys(circuits.values(), "up"),
                       at=start - timedelta(days=1))
    outage = start + timedelta(days=3)
    set_circuit_states(portal.database, {circuits["HSB-L3VPN-0001"]: "down"}, at=outage)
    set_circuit_states(portal.database, {circuits["HSB-L3VPN-0001"]: "up"},
                       at=outage + timedelta(minutes=45))
    with portal.database.pool.connection() as conn:
        report = reports.issue(conn, "customer", "hsbank", month, by="keyline")
        set_password(conn, MANAGER, PASSWORD)
    assert report is not None
    return report.id, month


def test_a_manager_marks_customer_caused_time_and_a_customer_reads_its_report(
        browser, base_url: str, portal: Portal, tmp_path: Path):  # noqa: F811
    report_id, month = _issue_last_month(portal)
    with portal.database.pool.connection() as conn:
        now = reports.now_of(conn).astimezone(UTC)
    start = (now - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")
    end = (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")

    manager = browser.new_context(locale="en-US").new_page()
    log_in(manager, base_url, MANAGER, PASSWORD)
    manager.click("header nav >> text=SLA reports")
    manager.wait_for_selector("#sla-dashboard")
    assert manager.locator('tr[data-customer="hsbank"]').count() == 1
    assert manager.locator('tr[data-customer="xinhe"]').count() == 0  # am.zhao's
    manager.select_option("#mark-form select[name=circuit]", "HSB-L3VPN-0001")
    manager.click("#mark-form input[name=start]")
    manager.fill("#mark-form input[name=start]", start)
    manager.fill("#mark-form input[name=end]", end)
    manager.click("#mark-form textarea[name=reason]")
    manager.keyboard.type("Customer switched off its router for a site move")
    manager.click("#mark-form button[type=submit]")
    manager.wait_for_selector("table.sla-mark-list tr.mark")
    row = manager.inner_text("table.sla-mark-list tr.mark")
    assert "HSB-L3VPN-0001" in row and "switched off its router" in row and MANAGER in row
    assert "UTC" in row
    manager.screenshot(path=str(tmp_path / "sla-dashboard.png"), full_page=True)

    customer = browser.new_context(locale="en-US").new_page()
    log_in(customer, base_url, USER_A, PASSWORD)
    customer.goto(base_url + "/my/")
    customer.wait_for_selector('td[data-sla="HSB-L3VPN-0001"]')
    cell = customer.inner_text('td[data-sla="HSB-L3VPN-0001"]')
    assert "%" in cell and "budget left" in cell
    customer.screenshot(path=str(tmp_path / "sla-circuits.png"), full_page=True)
    customer.click("header nav >> text=SLA reports")
    customer.wait_for_selector("#month-to-date")
    customer.click(f'tr[data-report="{report_id}"] a.report-link')
    customer.wait_for_selector("#sla-report-page")
    page = customer.inner_text("#sla-report-page")
    assert month in page and "HSB-L3VPN-0001" in page
    assert customer.get_attribute("a.download-pdf", "href").endswith(f"/{report_id}.pdf")
    customer.screenshot(path=str(tmp_path / "sla-report.png"), full_page=True)
    print("screenshots:", *sorted(tmp_path.glob("sla-*.png")))
