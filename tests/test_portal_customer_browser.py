"""The circuit page and the admin pages in a real browser (Debian's chromium, Playwright).

Same set-up as tests/test_portal_browser.py (whose fixtures this file uses): the portal in a
thread, the system chromium through `executable_path`, skipped when either is missing. A
week of samples is written straight into the store (store.timeseries.SampleWriter) for the
A end of a customer's circuit; the test then watches the page's own script
(portal/static/customer.js) draw them with chart.js, refetch when another range is chosen,
draw the route with cytoscape, all without a Content-Security-Policy complaint, and the
language switch turn the new pages into Chinese.

Live: the portal runs here with its live bridge started (tests/test_portal_live.py's
`serve`, which also stops it). A customer's circuit page and circuits list join the
customer's room; a P router on the circuit's route is then observed unreachable (an
observation event recorded in the store, as a collector would): within two seconds, without
a reload, the hop turns red in the table and in the drawing, while the circuit's service
state stays what the alarm pipeline last stored; the pipeline's verdict is then stored
(store.circuit_states, as the pipeline records it) and the service state goes down on both
pages, with its cause; then the pipeline raises its alarms (tests/test_portal_alarms.py's
seed_alarms) and the alarm appears in the open-alarms section, naming the router only as
the operator's network.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest

from collectors.model import Observation
from store.collection import record_drops
from store.observations import record_observations
from store.timeseries import SampleWriter, refresh_rollups
from tests.test_portal_access import (  # noqa: F401
    PASSWORD,
    USER_A,
    Portal,
    portal,
    set_circuit_states,
)
from tests.test_portal_alarms import P_ROUTER, seed_alarms
from tests.test_portal_browser import browser, log_in  # noqa: F401
from tests.test_portal_live import LIVE_WITHIN_S, all_up, serve, wait_for

pytestmark = pytest.mark.slow

CIRCUIT = "HSB-L3VPN-0001"


@pytest.fixture
def base_url(portal: Portal) -> Iterator[str]:  # noqa: F811
    """The portal in a thread with its live bridge, stopped afterwards (the pages here open
    sockets, and a bridge left running would outlive the test's database)."""
    with serve(portal.app) as served:
        yield served.url


def _seed_week(portal: Portal) -> tuple[int, int]:  # noqa: F811
    with portal.database.pool.connection() as conn:
        circuit_id, a_port = conn.execute(
            "SELECT id, a_port_id FROM circuits WHERE key = %s", [CIRCUIT]).fetchone()
    now = datetime.now(UTC)
    with SampleWriter(portal.database.pool) as writer:
        for minutes in range(1, 8 * 24 * 60, 15):
            at = now - timedelta(minutes=minutes)
            writer.add(at, a_port, "if_in_bps", 3_000_000.0 + minutes)
            writer.add(at, a_port, "if_out_bps", 1_000_000.0)
            writer.add(at, a_port, "if_in_utilization_pct", 30.0)
    # the week's chart reads the 5-minute rollup: refresh it, as the collector's job does
    refresh_rollups(portal.database.pool, now)
    return circuit_id, a_port


def test_customer_circuit_charts_route_and_chinese(
        browser, base_url: str, portal: Portal):  # noqa: F811
    _circuit_id, a_port = _seed_week(portal)
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text)
            if m.type == "error" and "Failed to load resource" not in m.text else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    requests: list[dict[str, list[str]]] = []
    page.on("request", lambda r: requests.append(parse_qs(urlparse(r.url).query))
            if "/api/v1/samples" in r.url else None)

    # half an hour ago the collector's spool was full and it dropped this device's samples
    with portal.database.pool.connection() as conn:
        a_device = conn.execute("SELECT device_id FROM ports WHERE id = %s",
                                [a_port]).fetchone()[0]
        now = datetime.now(UTC)
        record_drops(conn, [(a_device, "samples", 1200,
                             (now - timedelta(minutes=40)).isoformat(),
                             (now - timedelta(minutes=25)).isoformat())])

    log_in(page, base_url, USER_A, PASSWORD)
    page.wait_for_selector("table.circuits")
    page.click(f"a >> text={CIRCUIT}")
    page.wait_for_selector('canvas#chart-traffic[data-range="1h"]')
    first = int(page.get_attribute("canvas#chart-traffic", "data-points"))
    assert first > 0
    drawn = page.evaluate("Chart.getChart('chart-traffic').data.datasets.map(d => d.data.length)")
    assert all(count > 0 for count in drawn)
    # the dropped range: shaded, the line broken inside it, and a note that says why
    assert page.get_attribute("canvas#chart-traffic", "data-unknown") == "1"
    assert page.evaluate("Chart.getChart('chart-traffic').data.datasets.every("
                         "d => d.data.some(p => p.y === null))")
    note = page.locator("#chart-traffic >> xpath=../../p[contains(@class, 'chart-unknown')]")
    assert note.is_visible() and "Unknown time, not zero traffic" in note.inner_text()
    shade = page.evaluate("""() => {
        const chart = Chart.getChart('chart-traffic');
        const x = chart.scales.x.getPixelForValue(Date.now() - 32 * 60 * 1000);
        const y = (chart.chartArea.top + chart.chartArea.bottom) / 2;
        const ratio = window.devicePixelRatio || 1;
        return Array.from(chart.ctx.getImageData(x * ratio, y * ratio, 1, 1).data);
    }""")
    assert shade[3] > 0, shade  # painted there, not blank canvas
    assert {q["object_id"][0] for q in requests} == {str(a_port)}
    assert {q["metric"][0] for q in requests} >= {"if_in_bps", "if_out_bps"}

    # another range: the charts ask again, over a week, and show more points
    asked_before = len(requests)
    page.click('button[data-range="7d"]')
    page.wait_for_selector('canvas#chart-traffic[data-range="7d"]')
    week = [q for q in requests[asked_before:] if q["metric"][0] == "if_in_bps"]
    assert week
    start = datetime.fromisoformat(week[-1]["start"][0].replace("Z", "+00:00"))
    end = datetime.fromisoformat(week[-1]["end"][0].replace("Z", "+00:00"))
    assert abs((end - start) - timedelta(days=7)) < timedelta(minutes=1)
    assert int(page.get_attribute("canvas#chart-traffic", "data-points")) > first
    assert page.get_attribute("canvas#chart-utilization", "data-points") != "0"
    assert page.is_visible("#chart-errors >> xpath=../../p[contains(@class, 'chart-note')]")

    # the route: a table and a drawing of every hop
    page.wait_for_selector("#route-graph[data-nodes]")
    hops = page.locator("tr[data-hop]").count()
    assert hops >= 2
    assert int(page.get_attribute("#route-graph", "data-nodes")) == hops
    assert "No open alarms." in page.inner_text("#alarms")
    page.wait_for_selector("#live-state[data-state=live]")
    assert not problems, problems

    # Chinese
    page.click("button[name=lang][value=zh_CN]")
    page.wait_for_selector("html[lang=zh-CN]", state="attached")
    page.wait_for_selector('canvas#chart-traffic[data-range="1h"]')
    body = page.inner_text("body")
    for chinese in ("流量图表", "路由", "未关闭的告警", "没有未关闭的告警", "7 天", "设备状态",
                    "业务状态", "正常"):
        assert chinese in body, chinese
    for english in ("Traffic charts", "Open alarms", "Device status", "7 days", "Service state"):
        assert english not in body, english
    assert page.evaluate(
        "Chart.getChart('chart-traffic').data.datasets.map(d => d.label)") == ["入", "出"]
    context.close()


def test_admin_pages_in_chinese(browser, base_url: str):  # noqa: F811
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    log_in(page, base_url, "admin", PASSWORD)
    page.click("nav >> text=管理")
    page.wait_for_selector("#import-form")
    assert "导入资源清单" in page.inner_text("body")
    page.click("nav.tabs >> text=用户与角色")
    page.wait_for_selector("#users")
    body = page.inner_text("body")
    assert "添加本地用户" in body and "hsbank.ops" in body and "Add a local user" not in body
    page.click("nav.tabs >> text=拓扑核对")
    page.wait_for_selector("h1 >> text=拓扑核对")
    assert "尚未运行过拓扑发现" in page.inner_text("body")
    context.close()


def _hop_status(page, node: str) -> str | None:
    return page.evaluate(
        """(node) => { const cell = document.querySelector(`td[data-node="${node}"] span.status`);
                       return cell ? cell.dataset.status || cell.className : null; }""", node)


def test_circuit_page_and_list_update_live_when_a_hop_goes_down(
        browser, base_url: str, portal: Portal):  # noqa: F811
    seeded_up = all_up(portal)
    with portal.database.pool.connection() as conn:
        circuit_id = conn.execute("SELECT id FROM circuits WHERE key = %s",
                                  [CIRCUIT]).fetchone()[0]
        router = conn.execute("SELECT id FROM devices WHERE key = %s", [P_ROUTER]).fetchone()[0]
    node = f"device:{router}"
    context = browser.new_context(locale="en-US")
    problems: list[str] = []
    circuit_page = context.new_page()
    circuit_page.on("console", lambda m: problems.append(m.text)
                    if m.type == "error" and "Failed to load resource" not in m.text else None)
    circuit_page.on("pageerror", lambda e: problems.append(str(e)))
    log_in(circuit_page, base_url, USER_A, PASSWORD)
    circuit_page.wait_for_selector("table.circuits")
    list_page = context.new_page()
    list_page.on("pageerror", lambda e: problems.append(str(e)))
    list_page.goto(f"{base_url}/customers/{portal.a.customer_id}/")
    circuit_page.goto(f"{base_url}/circuits/{circuit_id}")
    for page in (circuit_page, list_page):
        page.wait_for_selector("#live-state[data-state=live]", timeout=10_000)
        assert int(page.get_attribute("#live-state", "data-event-id")) >= seeded_up
        page.evaluate("window.__sameDocument = true")
    circuit_page.wait_for_selector("#route-graph[data-nodes]")
    assert "up" in _hop_status(circuit_page, node)
    assert circuit_page.inner_text("#alarm-count") == "(0)"
    service = f'[data-service="circuit:{circuit_id}"] span.status'
    for page in (circuit_page, list_page):
        assert page.get_attribute(service, "data-status") == "up"

    # the P router on the route stops answering
    with portal.database.pool.connection() as conn:
        record_observations(conn, [Observation(datetime.now(UTC), router, "reachability",
                                               "reachable", "unreachable", "poll")])
    changed_at = time.monotonic()
    wait_for(lambda: _hop_status(circuit_page, node) == "down", LIVE_WITHIN_S)
    assert time.monotonic() - changed_at <= LIVE_WITHIN_S + 0.5
    drawn = circuit_page.evaluate(
        """(id) => { const e = keylineCustomer.cy.getElementById(id);
                     return [e.data('status'), e.style('background-color')]; }""", node)
    assert drawn == ["down", "rgb(185,28,28)"]
    hop = circuit_page.locator(f'td[data-node="{node}"]').locator("xpath=..")
    assert "down" in hop.locator("td[data-link] span.status").get_attribute("class")
    for page in (circuit_page, list_page):  # the pipeline has not said otherwise yet
        assert page.get_attribute(service, "data-status") == "up"

    # the alarm pipeline's verdict: the circuit's service state goes down, with its cause
    cause = f"path broken: device {P_ROUTER} down"
    set_circuit_states(portal.database, {circuit_id: "down"}, cause=cause)
    for page in (circuit_page, list_page):
        page.wait_for_selector(f'{service}[data-status="down"]', timeout=LIVE_WITHIN_S * 1000)
        cell = page.locator(f'[data-service="circuit:{circuit_id}"]')
        wait_for(lambda cell=cell: cause in cell.inner_text(), LIVE_WITHIN_S)
        assert "since " in cell.inner_text()

    # the alarm pipeline raises the router's alarm: it shows on both pages, the router
    # unnamed (the circuit's own service alarm and state name its route's hops)
    seeded = seed_alarms(portal)
    raised_at = time.monotonic()
    for page in (circuit_page, list_page):
        page.wait_for_selector(f'#alarms tr[data-alarm="{seeded.root}"]',
                               timeout=LIVE_WITHIN_S * 1000)
    assert time.monotonic() - raised_at <= LIVE_WITHIN_S + 0.5
    row = circuit_page.inner_text(f'#alarms tr[data-alarm="{seeded.root}"]')
    assert "device unreachable" in row and "operator network" in row
    assert "not acknowledged" in row and P_ROUTER not in row
    assert circuit_page.is_hidden("#alarms-empty")
    listed = list_page.inner_text("#alarms")
    assert CIRCUIT in listed
    assert P_ROUTER not in list_page.inner_text(f'#alarms tr[data-alarm="{seeded.root}"]')
    for word in portal.b.words:
        assert word not in list_page.content() and word not in circuit_page.content()
    for page in (circuit_page, list_page):
        assert page.evaluate("window.__sameDocument === true")  # no reload
    assert not problems, problems
    context.close()
