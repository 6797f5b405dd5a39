"""One circuit, one state: the alarm console, the customer's pages and the NOC topology show
the service state the alarm pipeline stored (docs/service-state.md), the same everywhere.

- With Flask's test client (tests/test_portal_access.py's fixtures, alarms made by the
  pipeline: tests/test_portal_alarms.py's seed_alarms): every alarm row of the console names
  the circuits its alarm impacts, within the viewer's scope, each with its stored state.
- End to end in Debian's chromium (Playwright, `executable_path`; tests/test_portal_browser.py's
  fixture): the simulated network (lab.sim), a collection service polling it and receiving
  its traps, the alarm service and the portal with its live bridge share one database
  (tests/test_portal_e2e_browser.py's set-up, with a short poll interval here because SNMP
  silence is only seen by polling). A NOC user has the alarm console and the topology (the
  customer's view, which lists its circuits) open; the customer has its circuit page and
  circuits list open. The LAN port at the A end of HSB-INET-0001 goes down: all of them show
  that circuit down, then up when the port comes back. Then the CE router's SNMP agent
  goes silent while the router still answers ping: all of them show its circuits unknown,
  the console lists them under the router's `snmp_unresponsive` alarm, and no circuit shows
  down; SNMP back, they are up again. No page reloads; every wait is Playwright's `expect`
  (polling), with timeouts derived from the intervals configured here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alarms.rules import AlarmSettings
from alarms.service import AlarmService
from collectors.service import CollectionService
from config.settings import load_settings
from lab.sim.network import SimulatedNetwork
from portal.app import create_app
from store import alarms as alarm_store
from store.circuit_states import current_states
from store.database import Database
from store.users import set_password
from tests.test_collection_service import (  # noqa: F401
    environ,
    inventory,
    network,
    store,
    trap_port,
)
from tests.test_portal_access import (  # noqa: F401
    PASSWORD,
    USER_A,
    Portal,
    logged_in,
    portal,
)
from tests.test_portal_alarms import seed_alarms
from tests.test_portal_browser import browser, log_in  # noqa: F401
from tests.test_portal_e2e_browser import mark, not_reloaded
from tests.test_portal_live import Served, serve

NOC_USER = "noc.wang"
CUSTOMER_USER = USER_A  # hsbank's
CUSTOMER = "hsbank"
CE = "ce-hsbank-sh-hq"
LAN_PORT = "GigabitEthernet0/0/5"  # the A end of HSB-INET-0001, of no other circuit
CIRCUIT = "HSB-INET-0001"

# The alarm service's short delays (tests/test_portal_e2e_browser.py's).
SETTINGS = AlarmSettings(raise_after_s=0.2, clear_after_s=0.2, infer_after_s=0.2,
                         tick_interval_s=0.1, thresholds=[])
# The collector: a short poll interval, one retry, a quick confirmation poll.
POLL_S = 2.0
SNMP_TIMEOUT_S = 1.0
SNMP_RETRIES = 1
CONFIRM_S = 1.0
ICMP_TIMEOUT_S = 1.0
DOWN_AFTER_FAILURES = 2

# What the waits below allow, derived from the settings above, generously (a loaded machine
# runs all of this at once): a poll that times out in every attempt; the first state of
# every circuit (every device polled once); a port's change (a trap at once, else the next
# poll) through the alarm service's delay; an agent gone silent (the next poll fails, so does
# its confirmation poll, then the ICMP check answers).
SLACK = 3.0
ONE_POLL_S = SNMP_TIMEOUT_S * (SNMP_RETRIES + 1)
PIPELINE_S = SETTINGS.raise_after_s + SETTINGS.clear_after_s + 1.0
FIRST_STATES_S = SLACK * (2 * POLL_S + ONE_POLL_S + PIPELINE_S) + 10
PORT_CHANGE_S = SLACK * (POLL_S + ONE_POLL_S + PIPELINE_S)
SILENT_S = SLACK * (POLL_S + DOWN_AFTER_FAILURES * ONE_POLL_S + CONFIRM_S + ICMP_TIMEOUT_S
                    + PIPELINE_S)


def ms(seconds: float) -> float:
    return seconds * 1000


def watch(page: Any, errors: list[str]) -> None:
    """Collect the page's script errors and failed requests (but the charts' samples of a
    metric nothing measured yet: 400 on "metric", which the page shows as no data)."""
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error"
            and not m.text.startswith("Failed to load resource") else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400
            and not (r.status == 400 and "/api/v1/samples" in r.url) else None)


# --- the console's rows, with the test client -----------------------------------------------


ROW = re.compile(r'<tr class="alarm[^"]*" data-alarm="(\d+)"(.*?)</tr>', re.S)
CIRCUIT_STATE = re.compile(r'data-circuit-state="(\d+)"><code>([^<]+)</code> <span class="status'
                           r'[^"]*" data-status="(\w+)"')


def console_rows(page: str) -> dict[int, list[tuple[int, str, str]]]:
    """Alarm id -> the circuits its row names: (id, key, state)."""
    return {int(m.group(1)): [(int(c), key, state)
                              for c, key, state in CIRCUIT_STATE.findall(m.group(2))]
            for m in ROW.finditer(page)}


def test_console_rows_list_impacted_circuits_with_their_state(portal: Portal):  # noqa: F811
    seeded = seed_alarms(portal)  # a P router down, then one of jinlu's ports
    with portal.database.pool.connection() as conn:
        keys = dict(conn.execute("SELECT id, key FROM circuits").fetchall())
        states = {c: s.state for c, s in current_states(conn).items()}
        alarms = {a.id: a for a in alarm_store.list_alarms(conn, state="active")}
    noc = logged_in(portal.app, NOC_USER).get("/alarms").get_data(as_text=True)
    rows = console_rows(noc)
    assert set(rows) == set(alarms)
    for alarm_id, alarm in alarms.items():  # every impacted circuit, with its stored state
        assert [c for c, _, _ in rows[alarm_id]] == sorted(alarm.impacted_circuits)
        assert all(keys[c] == key and states[c] == state for c, key, state in rows[alarm_id])
    assert {state for c, _, state in rows[seeded.root]} == {"down"}  # the pipeline's verdict
    for service in seeded.symptoms:
        ((circuit_id, _key, state),) = rows[service]
        assert state == "down" and alarms[service].impacted_circuits == {circuit_id}
    listed = json.loads(re.search(r'id="console-circuits">([^<]*)</script>', noc).group(1))
    assert {int(c) for c in listed} == set(keys)

    # a customer: only its own circuits, in the rows and in the page's data
    page = logged_in(portal.app, CUSTOMER_USER).get("/alarms").get_data(as_text=True)
    own = console_rows(page)
    assert own[seeded.root] and {c for c, _, _ in own[seeded.root]} == (
        alarms[seeded.root].impacted_circuits & portal.a.ids["circuit"])
    assert all(c in portal.a.ids["circuit"] for named in own.values() for c, _, _ in named)
    listed = json.loads(re.search(r'id="console-circuits">([^<]*)</script>', page).group(1))
    assert {int(c) for c in listed} == portal.a.ids["circuit"]
    for word in portal.b.words:
        assert word not in page


# --- the real chain, in the browser ----------------------------------------------------------


@pytest.fixture
def chain(network: SimulatedNetwork, store: Database,  # noqa: F811
          environ: dict[str, str], trap_port: int, tmp_path: Path  # noqa: F811
          ) -> Iterator[Served]:
    settings = load_settings(None, overrides={"data_dir": tmp_path / "data",
                                              "database_url": store.url})
    app = create_app(settings, store)
    collector = CollectionService(
        store.pool, spool_dir=tmp_path / "spool", interval_s_for=lambda group: POLL_S,
        environ=environ, timeout_s=SNMP_TIMEOUT_S, retries=SNMP_RETRIES,
        traps_enabled=True, trap_port=trap_port, startup_spread_s=min(POLL_S, 2.0),
        flush_interval_s=0.2, down_after_failures=DOWN_AFTER_FAILURES,
        confirm_after_s=CONFIRM_S, icmp_count=1, icmp_timeout_s=ICMP_TIMEOUT_S,
        health_interval_s=None)
    with collector, AlarmService(store.pool, store.url, SETTINGS), serve(app) as served:
        yield served


@pytest.mark.slow
def test_console_customer_page_and_topology_show_the_same_state(
        browser: Any, chain: Served, network: SimulatedNetwork,  # noqa: F811
        store: Database):  # noqa: F811
    from playwright.sync_api import expect

    served = chain
    with store.pool.connection() as conn:
        for user in (NOC_USER, CUSTOMER_USER):
            set_password(conn, user, PASSWORD)
        customer_id = conn.execute("SELECT id FROM customers WHERE key = %s",
                                   [CUSTOMER]).fetchone()[0]
        circuit_id = conn.execute("SELECT id FROM circuits WHERE key = %s",
                                  [CIRCUIT]).fetchone()[0]
        on_ce = [row[0] for row in conn.execute(
            """SELECT c.id FROM circuits c JOIN ports p ON p.id IN (c.a_port_id, c.z_port_id)
                 JOIN devices d ON d.id = p.device_id WHERE d.key = %s ORDER BY c.id""", [CE])]
    others = [c for c in on_ce if c != circuit_id]
    assert circuit_id in on_ce and others

    errors: list[str] = []
    noc = browser.new_context(locale="en-US")
    customer = browser.new_context(locale="en-US")
    try:
        console = noc.new_page()
        watch(console, errors)
        log_in(console, served.url, NOC_USER, PASSWORD)
        console.wait_for_selector("nav >> text=Alarms")
        console.goto(served.url + "/alarms")
        topology = noc.new_page()
        watch(topology, errors)
        topology.goto(served.url + "/noc/topology")
        expect(topology.locator("#live-state")).to_have_attribute("data-state", "live",
                                                                  timeout=ms(10))
        topology.select_option("#topology-view", f"customers/{customer_id}")  # its circuits
        expect(topology.locator(f'#topology-circuits tr[data-circuit="circuit:{circuit_id}"]')
               ).to_have_count(1, timeout=ms(10))
        circuit_page = customer.new_page()
        watch(circuit_page, errors)
        log_in(circuit_page, served.url, CUSTOMER_USER, PASSWORD)
        circuit_page.wait_for_selector("table.circuits")
        circuit_page.goto(f"{served.url}/circuits/{circuit_id}")
        list_page = customer.new_page()
        watch(list_page, errors)
        list_page.goto(f"{served.url}/customers/{customer_id}/")
        pages = (console, topology, circuit_page, list_page)
        for page in pages:
            expect(page.locator("#live-state")).to_have_attribute("data-state", "live",
                                                                  timeout=ms(10))

        def on_topology(circuit: int) -> Any:
            return topology.locator(f'#topology-circuits tr[data-circuit="circuit:{circuit}"]'
                                    " span.badge")

        def on_customer(page: Any, circuit: int) -> Any:
            return page.locator(f'[data-service="circuit:{circuit}"] span.status')

        def badge(circuit: int, state: str) -> str:
            return f'[data-circuit-state="{circuit}"] span.status[data-status="{state}"]'

        def on_console(circuit: int, state: str) -> Any:
            return console.locator("tr.alarm " + badge(circuit, state))

        def all_show(circuits: list[int], state: str, within_s: float) -> None:
            for circuit in circuits:
                expect(on_topology(circuit)).to_have_attribute("data-status", state,
                                                               timeout=ms(within_s))
                expect(on_customer(list_page, circuit)).to_have_attribute(
                    "data-status", state, timeout=ms(within_s))
            if circuit_id in circuits:
                expect(on_customer(circuit_page, circuit_id)).to_have_attribute(
                    "data-status", state, timeout=ms(within_s))

        # the first polls: every circuit of the CE in service, on every page, live
        all_show(on_ce, "up", FIRST_STATES_S)
        for page in pages:
            mark(page)

        # the LAN port at the circuit's A end goes down: that circuit alone is down
        try:
            assert network.set_port_status(CE, LAN_PORT, "down")
            all_show([circuit_id], "down", PORT_CHANGE_S)
            service_row = console.locator("tr.alarm[data-state=active]").filter(
                has=console.locator("a.alarm-link", has_text="service down")).filter(
                has=console.locator(badge(circuit_id, "down")))
            expect(service_row).to_have_count(1, timeout=ms(PORT_CHANGE_S))
            expect(circuit_page.locator("#service-state .service-cause")).to_contain_text(
                LAN_PORT, timeout=ms(PORT_CHANGE_S))
            all_show(others, "up", PORT_CHANGE_S)  # (the CE's other circuits are fine)
        finally:
            network.set_port_status(CE, LAN_PORT, "up")
        all_show([circuit_id], "up", PORT_CHANGE_S)
        expect(on_console(circuit_id, "up").first).to_be_visible(timeout=ms(PORT_CHANGE_S))
        expect(on_console(circuit_id, "down")).to_have_count(0, timeout=ms(PORT_CHANGE_S))
        expect(service_row).to_have_count(0)  # (its row: marked cleared, its circuit up)

        # the CE's SNMP agent goes silent, the router still answers ping: unknown, not down
        try:
            assert network.set_snmp_status(CE, "down")
            silent_row = console.locator("tr.alarm[data-state=active]").filter(
                has=console.locator("a.alarm-link", has_text="SNMP unresponsive"))
            expect(silent_row).to_have_count(1, timeout=ms(SILENT_S))
            for circuit in on_ce:
                expect(silent_row.locator(f'[data-circuit-state="{circuit}"] span.status')
                       ).to_have_attribute("data-status", "unknown", timeout=ms(SILENT_S))
            all_show(on_ce, "unknown", SILENT_S)
            expect(console.locator('[data-circuit-state] span.status[data-status="down"]')
                   ).to_have_count(0)
            expect(topology.locator('#topology-circuits span.badge[data-status="down"]')
                   ).to_have_count(0)
            for page in (circuit_page, list_page):
                expect(page.locator('[data-service] span.status[data-status="down"]')
                       ).to_have_count(0)
            with store.pool.connection() as conn:
                stored = current_states(conn, on_ce)
            assert {stored[c].state for c in on_ce} == {"unknown"}
        finally:
            network.set_snmp_status(CE, "up")

        # SNMP back: in service again everywhere
        all_show(on_ce, "up", SILENT_S)
        for circuit in on_ce:
            expect(on_console(circuit, "unknown")).to_have_count(0, timeout=ms(SILENT_S))
        expect(silent_row).to_have_count(0, timeout=ms(SILENT_S))
        assert all(not_reloaded(page) for page in pages)
        assert not [e for e in errors if "favicon" not in e], errors
    finally:
        noc.close()
        customer.close()
