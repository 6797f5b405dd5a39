"""Issue 6, end to end: a link taken down in the simulated network turns red on the NOC
topology and appears in the alarm console without a reload, within two seconds.

Everything runs against one database holding the example inventory: the simulated network
(lab.sim), a collection service that polls it and receives its traps, the alarm service
(alarms.service, with short debounce delays), and the portal with its live bridge, served in
a thread (tests/test_portal_live.py). A NOC user has two pages open in Debian's chromium, the
topology and the alarm console; a customer whose circuits do not run over the link has its
own console open. The port goes down: within two seconds of the fault the link is red on the
topology and the alarm is a row of the NOC's console, neither page having navigated. The
port comes back: the row is marked cleared, live. The customer's console heard nothing of it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alarms.rules import AlarmSettings
from alarms.service import AlarmService
from config.inventory.model import Inventory
from config.settings import load_settings
from lab.sim.network import SimulatedNetwork
from portal.app import create_app
from store import alarms as alarm_store
from store.database import Database
from store.users import set_password
from tests.test_collection_service import (  # noqa: F401
    environ,
    inventory,
    make_service,
    network,
    port_id,
    store,
    trap_port,
)
from tests.test_portal_access import PASSWORD
from tests.test_portal_browser import browser, log_in  # noqa: F401
from tests.test_portal_live import LIVE_WITHIN_S, Served, edge_status, link_of, serve, wait_for
from topology.graph import build_graph, load_snapshot
from topology.impact import build_index
from topology.paths import compute_paths

pytestmark = pytest.mark.slow

NOC_USER = "noc.wang"
SETTINGS = AlarmSettings(raise_after_s=0.2, clear_after_s=0.2, infer_after_s=0.2,
                         tick_interval_s=0.1, thresholds=[])


@pytest.fixture
def running(network: SimulatedNetwork, store: Database,  # noqa: F811
            environ: dict[str, str], trap_port: int, tmp_path: Path  # noqa: F811
            ) -> Iterator[Served]:
    settings = load_settings(None, overrides={"data_dir": tmp_path / "data",
                                              "database_url": store.url})
    app = create_app(settings, store)
    with make_service(store, environ, tmp_path, interval_s=300, traps_port=trap_port), \
            AlarmService(store.pool, store.url, SETTINGS), serve(app) as served:
        yield served


def access_link(inventory: Inventory) -> tuple[str, str]:  # noqa: F811
    """(PE, port) of the access link of a single-homed CE router: taken down, it cuts that
    customer's circuits off, so the alarms hit one customer and not the others."""
    ce_links: dict[str, list[tuple[str, str]]] = {}
    for link in sorted(inventory.links.values(), key=lambda link: link.key):
        for end, other in ((link.a, link.z), (link.z, link.a)):
            if (inventory.devices[end.device].role == "CE"
                    and inventory.devices[other.device].role != "CE"):
                ce_links.setdefault(end.device, []).append((other.device, other.port))
    for _ce, ends in sorted(ce_links.items()):
        if len(ends) == 1:
            return ends[0]
    raise AssertionError("no single-homed CE router in the inventory")


def bystander(store: Database, link_id: int) -> tuple[str, int, set[int]]:  # noqa: F811
    """(user, customer id) of a customer user none of whose circuits runs over the link,
    and the customers whose circuits do."""
    with store.pool.connection() as conn:
        snapshot = load_snapshot(conn)
        users = conn.execute(
            "SELECT key, customer_id FROM users WHERE role = 'customer'"
            " AND retired_at IS NULL ORDER BY key").fetchall()
    graph = build_graph(snapshot)
    index = build_index(graph, snapshot, compute_paths(graph, snapshot))
    over = {snapshot.circuits[c].customer_id for c in index.users.get(("link", link_id), ())}
    for user, customer_id in users:
        if customer_id not in over:
            return user, customer_id, over
    raise AssertionError("every customer has a circuit over the link")


def alarms_on(store: Database, objects: set[int], state: str | None = "active"  # noqa: F811
              ) -> list[Any]:
    with store.pool.connection() as conn:
        return [a for a in alarm_store.list_alarms(conn, state=state)
                if a.key.object_id in objects]


def all_alarms(store: Database) -> list[Any]:  # noqa: F811
    with store.pool.connection() as conn:
        return alarm_store.list_alarms(conn, state=None)


def row_state(page: Any, alarm_id: int) -> str | None:
    """The data-state of the alarm's row in the console (None: no row), folded or not."""
    return page.evaluate(
        """(id) => { const row = document.querySelector(`tr.alarm[data-alarm="${id}"]`);
                     return row ? row.dataset.state : null; }""", alarm_id)


def watch(page: Any, errors: list[str]) -> None:
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error"
            and not m.text.startswith("Failed to load resource") else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400
            else None)


def mark(page: Any) -> None:
    """A marker that a navigation (a reload) would wipe out."""
    page.evaluate("window.__keylineNoReload = 'still here'")


def not_reloaded(page: Any) -> bool:
    return page.evaluate("window.__keylineNoReload === 'still here' && "
                         "performance.getEntriesByType('navigation').length === 1")


def test_a_link_down_is_red_and_in_the_console_live_within_two_seconds(
        browser: Any, running: Served, network: SimulatedNetwork,  # noqa: F811
        store: Database, inventory: Inventory):  # noqa: F811
    served = running
    device, port = access_link(inventory)
    port_object = port_id(store, device, port)
    link_id = link_of(store, port_object)
    link = f"link:{link_id}"
    with store.pool.connection() as conn:
        far_port = conn.execute("SELECT CASE WHEN a_port_id = %s THEN z_port_id ELSE a_port_id"
                                " END FROM links WHERE id = %s",
                                [port_object, link_id]).fetchone()[0]
    customer_user, customer_id, hit = bystander(store, link_id)
    assert hit  # the alarms hit a customer: the bystander's console must not hear of them
    with store.pool.connection() as conn:
        for user in (NOC_USER, customer_user):
            set_password(conn, user, PASSWORD)

    errors: list[str] = []
    noc = browser.new_context(locale="en-US")
    customer = browser.new_context(locale="en-US")
    try:
        topology = noc.new_page()
        watch(topology, errors)
        log_in(topology, served.url, NOC_USER, PASSWORD)
        topology.wait_for_selector("nav >> text=Topology")
        topology.goto(served.url + "/noc/topology")
        topology.wait_for_selector("#live-state[data-state=live]", timeout=10_000)
        # the first polls give every port its state, pushed to the page as they come
        wait_for(lambda: edge_status(topology, link) == "up", 15)

        console = noc.new_page()
        watch(console, errors)
        console.goto(served.url + "/alarms")
        console.wait_for_selector("#live-state[data-state=live]", timeout=10_000)
        theirs = customer.new_page()
        watch(theirs, errors)
        log_in(theirs, served.url, customer_user, PASSWORD)
        theirs.wait_for_selector("nav >> text=Alarms")
        theirs.goto(served.url + "/alarms")
        theirs.wait_for_selector("#live-state[data-state=live]", timeout=10_000)
        assert not all_alarms(store)
        for page in (topology, console, theirs):
            mark(page)

        try:
            assert network.set_port_status(device, port, "down")
            fault_at = time.monotonic()
            wait_for(lambda: edge_status(topology, link) == "down", LIVE_WITHIN_S)
            raised = wait_for(lambda: alarms_on(store, {port_object, far_port, link_id}),
                              LIVE_WITHIN_S)
            shown = wait_for(lambda: [a for a in alarms_on(store, {port_object, far_port,
                                                                   link_id})
                                      if row_state(console, a.id) == "active"],
                             LIVE_WITHIN_S - (time.monotonic() - fault_at))
            elapsed = time.monotonic() - fault_at
            assert elapsed <= LIVE_WITHIN_S, elapsed
            colour = topology.evaluate(
                "(id) => keylineTopology.cy.getElementById(id).style('line-color')", link)
            assert colour == "rgb(220,38,38)"
            assert all(not_reloaded(page) for page in (topology, console))

            # the row says what and where, from the live message
            alarm = next(a for a in shown if a.key.object_id == port_object) if any(
                a.key.object_id == port_object for a in shown) else shown[0]
            row = console.locator(f'tr.alarm[data-alarm="{alarm.id}"]')
            words = row.evaluate("(row) => row.textContent")
            assert "link down" in words
            if alarm.key.object_id == port_object:
                assert f"{device}:{port}" in words
            assert console.locator("p.empty").is_hidden()
            assert all(a.key.object_id in {port_object, far_port, link_id} for a in raised)
            # the impact follows (correlation): the customer on the link is hit, not the other
            everything = wait_for(lambda: (lambda found: found if any(
                hit & a.impacted_customers for a in found) else None)(all_alarms(store)), 5)
            assert not any(customer_id in a.impacted_customers for a in everything)
            # the port's alarm folds under its root cause (the link down at both ends), live
            roots = {a.root_cause_id for a in all_alarms(store)
                     if a.key.object_id == port_object and a.root_cause_id}
            for root in roots:
                wait_for(lambda root=root: console.locator(
                    f'details.symptoms[data-root="{root}"] tr.alarm[data-alarm="{alarm.id}"]'
                ).count() == 1, LIVE_WITHIN_S)
                assert console.locator(
                    f'tbody.alarm-group > tr.alarm[data-alarm="{root}"]').count() == 1
        finally:
            network.set_port_status(device, port, "up")

        # back up: the link turns green and the alarm is marked cleared, live
        wait_for(lambda: edge_status(topology, link) == "up", LIVE_WITHIN_S)
        wait_for(lambda: row_state(console, alarm.id) == "cleared", 5)
        assert console.locator(f'tr.alarm[data-alarm="{alarm.id}"] .state-cleared').count() == 1
        assert console.locator(
            f'tr.alarm[data-alarm="{alarm.id}"] button[value=acknowledge]').count() == 0
        assert all(not_reloaded(page) for page in (topology, console, theirs))

        # the other tenant's console heard nothing of it
        every = {a.id for a in all_alarms(store)}
        time.sleep(0.3)
        heard = theirs.evaluate("Object.keys(keylineAlarms.alarms).map(Number)")
        assert not set(heard) & every, heard
        assert all(row_state(theirs, a) is None for a in every)
        assert theirs.locator("#live-state").get_attribute("data-state") == "live"
        assert not [e for e in errors if "favicon" not in e], errors
    finally:
        noc.close()
        customer.close()
