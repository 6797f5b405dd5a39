"""The circuit page and the admin pages in a real browser (Debian's chromium, Playwright).

Same set-up as tests/test_portal_browser.py (whose fixtures this file uses): the portal in a
thread, the system chromium through `executable_path`, skipped when either is missing. A
week of samples is written straight into the store (store.timeseries.SampleWriter) for the
A end of a customer's circuit; the test then watches the page's own script
(portal/static/customer.js) draw them with chart.js, refetch when another range is chosen,
draw the route with cytoscape, all without a Content-Security-Policy complaint, and the
language switch turn the new pages into Chinese.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest

from store.timeseries import SampleWriter
from tests.test_portal_access import PASSWORD, USER_A, Portal, portal  # noqa: F401
from tests.test_portal_browser import base_url, browser, log_in  # noqa: F401

pytestmark = pytest.mark.slow

CIRCUIT = "HSB-L3VPN-0001"


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

    log_in(page, base_url, USER_A, PASSWORD)
    page.wait_for_selector("table.circuits")
    page.click(f"a >> text={CIRCUIT}")
    page.wait_for_selector('canvas#chart-traffic[data-range="1h"]')
    first = int(page.get_attribute("canvas#chart-traffic", "data-points"))
    assert first > 0
    drawn = page.evaluate("Chart.getChart('chart-traffic').data.datasets.map(d => d.data.length)")
    assert all(count > 0 for count in drawn)
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
    assert "No alarm data yet" in page.inner_text("#alarms")
    assert not problems, problems

    # Chinese
    page.click("button[name=lang][value=zh_CN]")
    page.wait_for_selector("html[lang=zh-CN]", state="attached")
    page.wait_for_selector('canvas#chart-traffic[data-range="1h"]')
    body = page.inner_text("body")
    for chinese in ("流量图表", "路由", "未关闭的告警", "尚无告警数据", "7 天", "设备状态"):
        assert chinese in body, chinese
    for english in ("Traffic charts", "Open alarms", "Device status", "7 days"):
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
