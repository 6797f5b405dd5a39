"""An empty chart, in Chromium: a circuit with no samples (xinhe's: the fixtures give traffic
to the other tenants only) shows its charts with a note saying so, in the viewer's language,
and a value axis that reads sensibly (0 to 1 kbit/s, every tick a different figure), never
"1 bit/s, 1 bit/s" from ticks at fractions of a bit."""

from __future__ import annotations

from typing import Any

import pytest

from store.users import set_password
from tests.test_portal_access import PASSWORD, Portal, portal  # noqa: F401
from tests.test_portal_browser import base_url, browser, log_in  # noqa: F401

pytestmark = pytest.mark.slow

TICKS = """(canvas) => {
  const chart = window.Chart.getChart(canvas);
  return chart.scales.y.ticks.map((tick) => chart.scales.y.options.ticks.callback(tick.value));
}"""


def test_an_empty_chart_says_no_data_in_chinese_with_a_sane_axis(
        browser: Any, base_url: str, portal: Portal):  # noqa: F811
    with portal.database.pool.connection() as conn:
        set_password(conn, "xinhe.it", PASSWORD)
        circuit_id = conn.execute(
            "SELECT ci.id FROM circuits ci JOIN customers cu ON cu.id = ci.customer_id"
            " WHERE cu.key = 'xinhe' ORDER BY ci.key LIMIT 1").fetchone()[0]
        samples = conn.execute(
            "SELECT count(*) FROM samples s JOIN circuits ci"
            " ON s.object_id IN (ci.a_port_id, ci.z_port_id) WHERE ci.id = %s",
            [circuit_id]).fetchone()[0]
    assert samples == 0
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, base_url, "xinhe.it", PASSWORD)
    page.wait_for_selector("nav >> text=我的电路")
    page.goto(f"{base_url}/circuits/{circuit_id}")
    page.wait_for_selector("canvas[data-metric-in][data-points='0']")
    canvases = page.query_selector_all("canvas[data-metric-in]")
    traffic = [c for c in canvases if c.get_attribute("data-unit") == "bit/s"]
    assert traffic
    for canvas in traffic:
        page.wait_for_function("(c) => c.dataset.points === '0'", arg=canvas)
        note = canvas.evaluate("(c) => c.closest('figure').querySelector('.chart-note')")
        assert note is not None
        shown = canvas.evaluate(
            "(c) => { const n = c.closest('figure').querySelector('.chart-note');"
            " return n.hidden ? null : n.textContent; }")
        assert shown == "此时间范围内没有采样数据。"
        ticks = canvas.evaluate(TICKS)
        assert len(ticks) == len(set(ticks)) >= 3, ticks
        assert ticks[0] == "0 bit/s" and ticks[-1] == "1.0 kbit/s", ticks
    context.close()
    assert not errors
