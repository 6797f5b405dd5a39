"""The device page in a real browser (Debian's chromium, Playwright), as a customer sees it.

Same set-up as tests/test_portal_customer_browser.py: the portal in a thread, the system
chromium through `executable_path` (tests/test_portal_browser.py's fixtures, skipped when
either is missing). A customer's CE router gets a day of health and traffic and two withheld
intervals on its first port (tests/test_portal_devices.py's seed_device, through the store's
own writers); the test then watches the page's own script (portal/static/device.js) draw the
CPU chart, open the port's traffic chart on a click, break both lines at each withheld
interval, and name the reason in the tooltip of the interval's marker, all without a
Content-Security-Policy complaint.
"""

from __future__ import annotations

import pytest

from collectors.reachability import SILENT_HINT
from tests.test_portal_access import PASSWORD, USER_A, Portal, portal  # noqa: F401
from tests.test_portal_browser import base_url, browser  # noqa: F401
from tests.test_portal_devices import seed_device

pytestmark = pytest.mark.slow

TRAFFIC = "chart-port-traffic"


def _marker(page, index: int) -> dict[str, float]:
    """Where the withheld interval number `index` (oldest first) is drawn, in page pixels."""
    point = page.evaluate(
        """([id, index]) => { const e = Chart.getChart(id).getDatasetMeta(2).data[index];
                              return {x: e.x, y: e.y}; }""", [TRAFFIC, index])
    box = page.locator(f"#{TRAFFIC}").bounding_box()
    return {"x": box["x"] + point["x"], "y": box["y"] + point["y"]}


def _tooltip(page) -> list[str]:
    page.wait_for_function(
        """(id) => { const t = Chart.getChart(id).tooltip;
                     return t.opacity > 0 && t.body && t.body.length > 0; }""", arg=TRAFFIC)
    return page.evaluate(
        "(id) => Chart.getChart(id).tooltip.body.flatMap((b) => b.lines)", TRAFFIC)


def test_device_page_draws_health_and_a_ports_traffic_with_its_gaps(
        browser, base_url: str, portal: Portal):  # noqa: F811
    seeded = seed_device(portal, history=True)
    first = seeded.ports["GigabitEthernet0/0/0"]
    second = seeded.ports["GigabitEthernet0/0/1"]
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text)
            if m.type == "error" and "Failed to load resource" not in m.text else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    # straight to the device page through the login form (its "next"), so that no page
    # with a live socket opens on the way
    page.goto(f"{base_url}/devices/{seeded.device_id}")
    page.fill("input[name=name]", USER_A)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit] >> text=/Log in|登录/")
    page.wait_for_selector("#device")

    # the verdict and the health charts
    assert "SNMP-unresponsive" in page.inner_text("#verdict")
    assert page.inner_text("#verdict-hint") == SILENT_HINT
    page.wait_for_selector('canvas#chart-cpu[data-range="24h"]')
    assert int(page.get_attribute("canvas#chart-cpu", "data-points")) > 200
    drawn = page.evaluate(
        "Chart.getChart('chart-cpu').data.datasets[0].data.filter((p) => p.y !== null).length")
    assert drawn > 200
    assert int(page.get_attribute("canvas#chart-temperature", "data-points")) > 200
    assert page.is_hidden("#port-traffic")

    # a port's row opens its traffic, with a marker per withheld interval
    page.click(f'tr[data-port="{first}"] a[data-open-port]')
    page.wait_for_selector(f'canvas#{TRAFFIC}[data-port="{first}"]')
    assert page.is_visible("#port-traffic")
    assert page.inner_text("#port-traffic-name") == "GigabitEthernet0/0/0"
    assert page.get_attribute(f"canvas#{TRAFFIC}", "data-gaps") == "2"
    assert int(page.get_attribute(f"canvas#{TRAFFIC}", "data-points")) > 400
    gap_ms = sorted(int(t.timestamp() * 1000) for t in seeded.gap_times)
    markers = page.evaluate(
        f"Chart.getChart('{TRAFFIC}').data.datasets[2].data.map((p) => [p.x, p.code])")
    assert markers == [[gap_ms[0], 9], [gap_ms[1], 4]]
    # both lines are broken at each withheld interval: a null point at its time
    breaks = page.evaluate(
        f"""Chart.getChart('{TRAFFIC}').data.datasets.slice(0, 2)
              .map((d) => d.data.filter((p) => p.y === null).map((p) => p.x))""")
    for line in breaks:
        assert set(gap_ms) <= set(line)

    # the tooltip of each marker names its reason
    at = _marker(page, 1)
    page.mouse.move(at["x"], at["y"])
    assert "rates withheld: the SNMP agent restarted" in _tooltip(page)
    page.mouse.move(0, 0)
    at = _marker(page, 0)
    page.mouse.move(at["x"], at["y"])
    page.wait_for_function(
        """(id) => { const t = Chart.getChart(id).tooltip;
                     return t.body && t.body.some((b) => b.lines.join().includes('32-bit')); }""",
        arg=TRAFFIC)
    assert "rates withheld: a 32-bit counter was reset" in _tooltip(page)
    listed = page.inner_text("#gaps-table")
    assert "the SNMP agent restarted" in listed and "a 32-bit counter was reset" in listed

    # another port: the chart follows it
    page.click(f'tr[data-port="{second}"] a[data-open-port]')
    page.wait_for_selector(f'canvas#{TRAFFIC}[data-port="{second}"]')
    assert page.get_attribute(f"canvas#{TRAFFIC}", "data-gaps") == "1"
    assert "another interface" in page.inner_text("#gaps-table")

    # the page's state, fetched again, redraws the same figures
    page.evaluate("window.keylineDevice.refresh()")
    page.wait_for_selector("#device[data-refreshes]")
    assert page.inner_text(f'tr[data-port="{first}"] td[data-field="gaps_24h"]') == "2"
    assert "no interface of this name" in page.inner_text("#ports-table")
    assert not problems, problems
    context.close()
