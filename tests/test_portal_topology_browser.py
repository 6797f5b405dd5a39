"""The NOC topology never hides a fault: checked on the drawing Chromium shows.

The example network (the demo's) with its core link p-sh1–p-bj1 down, every other port up:
the test reads what Cytoscape drew (each device's rendered position and size, each link's
rendered end points, midpoint, width and z-index) and checks that no link runs through a
device it does not end at (three devices on one line, as the six on one line of the old
layout), that every down link is stacked above every up one, and that the down link's
midpoint, where the eye reads its colour, is under no other link.

tests/test_portal_layout.py checks the layout itself, without a browser, and that these
checks do fail on a drawing with devices on one line.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from collectors.model import Observation
from portal.layout import segment_distance
from store.observations import record_observations
from store.users import set_password
from tests.test_portal_access import PASSWORD, Portal, portal  # noqa: F401
from tests.test_portal_browser import base_url, browser, log_in  # noqa: F401

pytestmark = pytest.mark.slow

NOC_USER = "noc.wang"
DOWN_LINK = (("p-sh1", "Eth-Trunk2"), ("p-bj1", "Eth-Trunk2"))

DRAWING = """() => {
  const cy = window.keylineTopology.cy;
  const point = (p) => [p.x, p.y];
  return {
    nodes: cy.nodes('[kind = "device"]').map((n) => ({
      id: n.id(), label: n.data('label'), at: point(n.renderedPosition()),
      radius: Math.max(n.renderedOuterWidth(), n.renderedOuterHeight()) / 2 })),
    edges: cy.edges().map((e) => ({
      id: e.id(), source: e.source().id(), target: e.target().id(), status: e.data('status'),
      from: point(e.renderedSourceEndpoint()), to: point(e.renderedTargetEndpoint()),
      middle: point(e.renderedMidpoint()), z: e.numericStyle('z-index'),
      compare: e.style('z-index-compare'),
      width: e.numericStyle('width') * cy.zoom() })),
  };
}"""


def take_down_core_link(portal: Portal) -> str:  # noqa: F811
    """Every device reachable and every port up, but the two ends of p-sh1–p-bj1 down (as
    the pollers would have recorded it); the down link's element id."""
    now = datetime.now(UTC)
    with portal.database.pool.connection() as conn:
        down_ports = {conn.execute(
            "SELECT p.id FROM ports p JOIN devices d ON d.id = p.device_id"
            " WHERE d.key = %s AND p.name = %s", end).fetchone()[0] for end in DOWN_LINK}
        devices = [row[0] for row in conn.execute("SELECT id FROM devices")]
        ports = [row[0] for row in conn.execute("SELECT id FROM ports")]
        record_observations(conn, [
            Observation(now, device, "reachability", None, "reachable", "poll")
            for device in devices] + [
            Observation(now, port, "oper_status", None,
                        "down" if port in down_ports else "up", "poll") for port in ports])
        (link_id,) = conn.execute(
            "SELECT id FROM links WHERE a_port_id = ANY(%(p)s) AND z_port_id = ANY(%(p)s)",
            {"p": list(down_ports)}).fetchone()
    return f"link:{link_id}"


def test_the_down_core_link_is_drawn_clear_and_on_top(
        browser: Any, base_url: str, portal: Portal):  # noqa: F811
    down_link = take_down_core_link(portal)
    context = browser.new_context(locale="en-US", viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, base_url, NOC_USER, PASSWORD)
    page.wait_for_selector("nav >> text=Topology")
    page.goto(base_url + "/noc/topology")
    page.wait_for_function("() => window.keylineTopology && window.keylineTopology.loads > 0")
    drawing = page.evaluate(DRAWING)
    context.close()
    assert not errors

    nodes = {node["id"]: node for node in drawing["nodes"]}
    edges = drawing["edges"]
    assert len(nodes) == 18 and len(edges) >= 27
    statuses = {edge["id"]: edge["status"] for edge in edges}
    assert statuses[down_link] == "down"
    assert sum(status == "down" for status in statuses.values()) == 1
    up = [edge for edge in edges if edge["status"] == "up"]
    assert len(up) == len(edges) - 1

    # no link runs through (or touches) a device it does not end at
    through = []
    for edge in edges:
        for node in nodes.values():
            if node["id"] in (edge["source"], edge["target"]):
                continue
            distance, t = segment_distance(node["at"], edge["from"], edge["to"])
            if 0 < t < 1 and distance < node["radius"] + edge["width"] / 2:
                through.append((nodes[edge["source"]]["label"], nodes[edge["target"]]["label"],
                                node["label"], round(distance, 1)))
    assert not through, f"links drawn through devices: {through}"

    # faults on top: every down link above every up link, in the same stacking order
    down = next(edge for edge in edges if edge["id"] == down_link)
    assert {edge["compare"] for edge in edges} == {"auto"}
    assert all(down["z"] > edge["z"] for edge in up)

    # the down link's midpoint is covered by no other link
    covering = [
        (nodes[edge["source"]]["label"], nodes[edge["target"]]["label"])
        for edge in edges if edge is not down
        and segment_distance(down["middle"], edge["from"], edge["to"])[0]
        < (edge["width"] + down["width"]) / 2 + 2]
    assert not covering, f"links over the down link's midpoint: {covering}"
    # and that midpoint is the drawn link's (straight: bezier curves only parallel links)
    straight_middle = [(a + b) / 2 for a, b in zip(down["from"], down["to"], strict=True)]
    assert math.dist(straight_middle, down["middle"]) < 1.0


def test_an_account_manager_follows_their_customers_view_live(
        browser: Any, base_url: str, portal: Portal):  # noqa: F811
    """am.zhao (xinhe's manager) gets the topology page: xinhe's view drawn, joined to
    xinhe's room (live), and again after choosing one of xinhe's circuits."""
    with portal.database.pool.connection() as conn:
        set_password(conn, "am.zhao", PASSWORD)
        customer_id = conn.execute("SELECT id FROM customers WHERE key = 'xinhe'").fetchone()[0]
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, base_url, "am.zhao", PASSWORD)
    page.wait_for_selector("nav >> text=Topology")
    page.click("nav >> text=Topology")
    page.wait_for_selector("#live-state[data-state=live]", timeout=15_000)
    assert page.evaluate("() => keylineTopology.view.view") == "customer"
    assert page.input_value("#topology-view") == f"customers/{customer_id}"
    assert page.evaluate("() => keylineTopology.cy.nodes('[kind = \"device\"]').length") > 0
    circuit = page.eval_on_selector("#topology-view optgroup:last-child option", "o => o.value")
    page.select_option("#topology-view", circuit)
    page.wait_for_function("() => keylineTopology.view.view === 'circuit'")
    page.wait_for_selector("#live-state[data-state=live]", timeout=15_000)
    context.close()
    assert not errors
