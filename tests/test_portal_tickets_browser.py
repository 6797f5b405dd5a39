"""Tickets live in a real browser (Debian's chromium driven by Playwright, the portal served
on a local port as in tests/test_portal_browser.py, its live bridge following the store).

Two customers are logged in at once, each with its ticket list open. The NOC opens a fault
ticket for hsbank (through sla.tickets.open_ticket on the store, as the ticket service or the
NOC's command line would): it appears in hsbank's list without a reload, its deadlines
counting down. hsbank's user opens it, writes a comment by typing and clicking, and sees the
NOC's acknowledgement (sla.tickets.acknowledge) appear on the page live; an internal note the
NOC wrote before never reaches it. jinlu's user sees nothing of any of it: its list stays as
it was, its socket gets no message about the ticket (while it does get one about its own
ticket opened afterwards, so the silence is not a dead socket), and the ticket's URL is 404.
"""

from __future__ import annotations

from typing import Any

from sla import tickets
from store.queries import Viewer
from tests.test_portal_access import PASSWORD, USER_A, USER_B, Portal, portal  # noqa: F401
from tests.test_portal_browser import base_url, browser, log_in, pytestmark  # noqa: F401

NOC = Viewer("noc.wang", "noc")
# How long a change may take to show: the bridge hears the event through LISTEN (or its
# 0.25 s poll), the page fetches itself once. Generous for a loaded CI machine; a change
# that never shows still fails.
LIVE_TIMEOUT_MS = 30_000

# The browser's wall clock an hour fast: the countdowns must not depend on it.
SKEWED_CLOCK = """
(() => {
  const RealDate = Date;
  const skew = 3600 * 1000;
  class SkewedDate extends RealDate {
    constructor(...args) {
      if (args.length) { super(...args); } else { super(RealDate.now() + skew); }
    }
    static now() { return RealDate.now() + skew; }
  }
  window.Date = SkewedDate;
})();
"""


def circuit_id(portal: Portal, key: str) -> int:  # noqa: F811
    with portal.database.pool.connection() as conn:
        return conn.execute("SELECT id FROM circuits WHERE key = %s", [key]).fetchone()[0]


def open_live(browser: Any, base_url: str, user: str, *, skewed: bool = False) -> Any:  # noqa: F811
    context = browser.new_context(locale="en-US")
    if skewed:
        context.add_init_script(SKEWED_CLOCK)
    page = context.new_page()
    log_in(page, base_url, user, PASSWORD)
    page.goto(base_url + "/tickets")
    page.wait_for_selector('#live-state[data-state="live"]', timeout=LIVE_TIMEOUT_MS)
    return page


def messages_about(page: Any, ticket_id: int) -> list[dict[str, Any]]:
    return page.evaluate("(id) => window.keylineTickets.messages.filter("
                         "(m) => m.ticket_id === id)", ticket_id)


def left_s(page: Any, selector: str) -> int:
    return int(page.get_attribute(selector, "data-left"))


def test_a_customer_follows_its_ticket_live_and_another_sees_nothing(
        browser, base_url: str, portal: Portal):  # noqa: F811
    hsbank = open_live(browser, base_url, USER_A, skewed=True)
    jinlu = open_live(browser, base_url, USER_B)
    jinlu_rows_before = jinlu.locator("tr.ticket").count()

    # the NOC opens a fault ticket for hsbank on the phone
    with portal.database.pool.connection() as conn:
        ticket = tickets.open_ticket(conn, NOC, circuit_id=circuit_id(portal, "HSB-L3VPN-0001"),
                                     title="Beijing branch unreachable", priority="P2")
        target_s = ticket.response.target_s
    row = f'tr.ticket[data-ticket="{ticket.id}"]'
    hsbank.wait_for_selector(row, timeout=LIVE_TIMEOUT_MS)
    assert "Beijing branch unreachable" in hsbank.inner_text(row)
    assert hsbank.evaluate("window.keylineTickets.refreshes") >= 1

    # its response deadline counts down from the server's figures, whatever the browser's
    # clock says (an hour fast here): a little under the target, and decreasing
    countdown = f'{row} .countdown[data-clock="response"]'
    hsbank.wait_for_selector(f"{countdown}[data-left]")
    first = left_s(hsbank, countdown)
    assert target_s - 120 < first <= target_s, (first, target_s)
    hsbank.wait_for_function(
        "([selector, first]) => Number(document.querySelector(selector).dataset.left) < first",
        arg=[countdown, first], timeout=LIVE_TIMEOUT_MS)
    assert left_s(hsbank, countdown) < first

    # the customer opens it and comments, as a person does
    hsbank.click(f"{row} a.ticket-link")
    hsbank.wait_for_selector("#ticket-page")
    hsbank.click("#comment-form textarea")
    hsbank.keyboard.type("Users in Beijing cannot reach the core banking system.")
    hsbank.click("#comment-form button[type=submit]")
    hsbank.wait_for_selector("table.timeline tr.entry.action-commented")
    assert "cannot reach the core banking system" in hsbank.inner_text("table.timeline")
    assert hsbank.inner_text("#ticket-state") == "open"

    # the NOC writes an internal note, then acknowledges: the page shows the acknowledgement
    # without a reload (the marker survives), never the note
    hsbank.evaluate("window.keylineMarker = 'same page'")
    with portal.database.pool.connection() as conn:
        note = tickets.add_comment(conn, NOC, ticket.id, "vendor case 4711, do not tell",
                                   internal=True)
    with portal.database.pool.connection() as conn:
        tickets.acknowledge(conn, NOC, ticket.id, "engineer dispatched to Beijing")
    hsbank.wait_for_selector('#ticket-state [data-state="acknowledged"]', timeout=LIVE_TIMEOUT_MS)
    hsbank.wait_for_selector("table.timeline tr.entry.action-acknowledged")
    assert "engineer dispatched to Beijing" in hsbank.inner_text("table.timeline")
    assert hsbank.evaluate("window.keylineMarker") == "same page"
    assert "vendor case 4711" not in hsbank.content()
    heard = messages_about(hsbank, ticket.id)
    assert heard and all(set(m) == {"ticket_id", "state", "entry_id"} for m in heard)
    assert note not in [m["entry_id"] for m in heard]
    # the response clock is met: it no longer counts down
    assert hsbank.get_attribute('.clock-response .countdown', "data-mode") == "met"

    # jinlu's own ticket reaches jinlu's page: its socket is alive ...
    with portal.database.pool.connection() as conn:
        own = tickets.open_ticket(conn, NOC, circuit_id=circuit_id(portal, "JL-ELINE-0001"),
                                  title="Guangzhou hub slow")
    jinlu.wait_for_selector(f'tr.ticket[data-ticket="{own.id}"]', timeout=LIVE_TIMEOUT_MS)
    # ... and heard nothing of hsbank's, whose row never showed
    assert messages_about(jinlu, ticket.id) == []
    assert jinlu.locator(f'tr.ticket[data-ticket="{ticket.id}"]').count() == 0
    assert jinlu.locator("tr.ticket").count() == jinlu_rows_before + 1
    assert "Beijing branch unreachable" not in jinlu.content()
    response = jinlu.goto(f"{base_url}/tickets/{ticket.id}")
    assert response.status == 404
    assert "Beijing branch unreachable" not in jinlu.content()
