"""The device page (portal/devices.py) with Flask's test client on a real database.

The example inventory is imported (tests/test_portal_access.py's `portal` fixture); then a
customer's CE router gets what a collector would have stored, through the store's own
writers: a verdict (a "reachability" observation made by collectors.observations
.verdict_observation: SNMP-unresponsive, with its reason and hint), port states
(record_observations), how each port matched an interface (record_port_matches: by
if_index, by ifName, a port missing, an if_index of another name, one never matched), health
and optics samples, and withheld intervals (`if_rate_gap` samples, the value a
collectors.counters.SkipCode). The page and its JSON must show them in words; the gaps
endpoint names each reason; another tenant's device, a shared router and an unmanaged
customer's device are 404 like an id that does not exist. Times are relative to the test's
own clock and nothing asserts on durations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from collectors.counters import SkipCode
from collectors.model import Observation
from collectors.observations import verdict_observation
from collectors.reachability import SILENT_HINT
from portal.devices import GAP_REASONS
from store.observations import PortMatchRow, record_observations, record_port_matches
from store.timeseries import SampleWriter, refresh_rollups
from store.users import set_password
from tests.test_portal_access import (  # noqa: F401
    PASSWORD,
    USER_A,
    USER_B,
    Portal,
    logged_in,
    portal,
)

DEVICE = "ce-hsbank-sh-hq"
OTHER_DEVICE = "ce-hsbank-bj-dc"
REASON = "no SNMP answer in 2 polls in a row, but 127.0.1.10 answers ping (2/2, 0.4 ms)"
MISSING_MESSAGE = "GigabitEthernet0/0/2: no interface of this name: check the name"
MISMATCH_MESSAGE = ("GigabitEthernet0/0/3: if_index 4 is GigabitEthernet0/0/9 on the device;"
                    " matched by name to ifIndex 12: correct the inventory's if_index")


@dataclass
class Seeded:
    device_id: int
    ports: dict[str, int]  # port name -> id
    other_port: int  # a port of another device of the same customer
    gap_times: list[datetime]  # of GigabitEthernet0/0/0, within the last 24 hours
    verdict_at: datetime


def seed_device(portal: Portal, *, history: bool = False) -> Seeded:  # noqa: F811
    """Store what a collector would have stored about DEVICE (see the module docstring);
    `history`: also a day of health and traffic every 5 minutes, for the charts."""
    database = portal.database
    with database.pool.connection() as conn:
        device_id = conn.execute("SELECT id FROM devices WHERE key = %s", [DEVICE]).fetchone()[0]
        ports = dict(conn.execute("SELECT name, id FROM ports WHERE device_id = %s",
                                  [device_id]).fetchall())
        other_port = conn.execute(
            "SELECT p.id FROM ports p JOIN devices d ON d.id = p.device_id WHERE d.key = %s"
            " LIMIT 1", [OTHER_DEVICE]).fetchone()[0]
    now = datetime.now(UTC)
    verdict_at = now - timedelta(minutes=12)
    first, second, third, fourth = (ports[f"GigabitEthernet0/0/{n}"] for n in range(4))
    with database.pool.connection() as conn:
        record_observations(conn, [
            Observation(now - timedelta(hours=3), device_id, "reachability", None,
                        "reachable", "poll"),
            verdict_observation(device_id, "reachable", "snmp-unresponsive", verdict_at,
                                reason=REASON, hint=SILENT_HINT, detail={"failures": 2}),
            Observation(now - timedelta(hours=2), first, "admin_status", None, "up", "poll"),
            Observation(now - timedelta(hours=2), first, "oper_status", None, "up", "poll"),
            Observation(now - timedelta(hours=2), second, "admin_status", None, "up", "poll"),
            Observation(now - timedelta(hours=2), second, "oper_status", None, "up", "poll"),
            Observation(now - timedelta(minutes=40), second, "oper_status", "up",
                        "lowerLayerDown", "trap"),
        ])
        record_port_matches(conn, [
            PortMatchRow(first, device_id, 1, "if_index", None, None, verdict_at),
            PortMatchRow(second, device_id, 2, "ifName (normalized)", None, None, verdict_at),
            PortMatchRow(third, device_id, None, None, "missing", MISSING_MESSAGE, verdict_at),
            PortMatchRow(fourth, device_id, 12, "ifName", "if_index_name_mismatch",
                         MISMATCH_MESSAGE, verdict_at),
        ])
    gap_times = [now - timedelta(hours=6, seconds=30), now - timedelta(hours=20, seconds=30)]
    with SampleWriter(database.pool) as writer:
        at = now - timedelta(minutes=2)
        for metric, value in (("cpu_pct", 37.5), ("mem_pct", 61.5), ("temperature_c", 48.0),
                              ("fan_failed_count", 1.0), ("psu_failed_count", 0.0),
                              ("snmp_response_ms", 420.0)):
            writer.add(at, device_id, metric, value)
        writer.add(at, first, "optical_rx_dbm", -3.25)
        writer.add(at, first, "optical_tx_dbm", -2.5)
        writer.add(gap_times[0], first, "if_rate_gap", float(SkipCode.AGENT_RESTARTED))
        writer.add(gap_times[1], first, "if_rate_gap", float(SkipCode.COUNTER32_RESET))
        # older than 24 hours: not counted in the table
        writer.add(now - timedelta(hours=30), first, "if_rate_gap",
                   float(SkipCode.IMPLAUSIBLE_RATE))
        writer.add(now - timedelta(hours=1), second, "if_rate_gap",
                   float(SkipCode.OTHER_INTERFACE))
        if history:
            for minutes in range(5, 24 * 60, 5):
                at = now - timedelta(minutes=minutes)
                writer.add(at, device_id, "cpu_pct", 30.0 + minutes % 17)
                writer.add(at, device_id, "mem_pct", 60.0)
                writer.add(at, device_id, "temperature_c", 45.0)
                # none in the 5-minute buckets next to a gap: its marker stands alone
                if all(abs((at - gap).total_seconds()) > 600 for gap in gap_times):
                    writer.add(at, first, "if_in_bps", 5_000_000.0 + minutes)
                    writer.add(at, first, "if_out_bps", 2_500_000.0)
    if history:  # the rollups a day's chart reads, as the refresh job makes them
        refresh_rollups(database.pool, datetime.now(UTC))
    return Seeded(device_id, ports, other_port, gap_times, verdict_at)


def _port(state: dict, name: str) -> dict:
    (found,) = [port for port in state["ports"] if port["name"] == name]
    return found


def test_device_page_and_state_show_verdict_health_and_ports(portal: Portal):  # noqa: F811
    seeded = seed_device(portal)
    client = logged_in(portal.app, USER_A)
    state = client.get(f"/devices/{seeded.device_id}/status").get_json()
    assert state["key"] == DEVICE and state["role"] == "CE"
    assert state["platform"] == "cisco_ios" and state["site"] == "hsbank-sh-hq"
    assert state["management_address"] == "127.0.1.10"

    verdict = state["verdict"]
    assert verdict["state"] == "snmp-unresponsive" and verdict["status"] == "degraded"
    assert verdict["label"] == "SNMP-unresponsive (answers ping)"
    assert verdict["reason"] == REASON and verdict["hint"] == SILENT_HINT
    assert datetime.fromisoformat(verdict["time"]) == seeded.verdict_at
    assert verdict["since_text"] == "since " + seeded.verdict_at.strftime(
        "%Y-%m-%d %H:%M:%S UTC")
    assert state["ports_stale"] is True

    health = {metric: figure["reading"] for metric, figure in state["health"].items()}
    assert health["cpu_pct"]["value"] == 37.5 and health["cpu_pct"]["text"] == "37.5 %"
    assert health["mem_pct"]["text"] == "61.5 %"
    assert health["temperature_c"]["text"] == "48.0 °C"
    assert health["fan_failed_count"]["text"] == "1"
    assert health["psu_failed_count"]["text"] == "0"
    assert health["snmp_response_ms"]["text"] == "420 ms"

    assert [p["name"] for p in state["ports"]] == [
        f"GigabitEthernet0/0/{n}" for n in range(6)]
    first = _port(state, "GigabitEthernet0/0/0")
    assert first["match"]["text"] == "ifIndex 1, by if_index"
    assert first["match"]["problem"] is None
    assert first["admin"]["label"] == "up" and first["oper"]["label"] == "up"
    assert first["rx_dbm"]["text"] == "-3.25 dBm" and first["tx_dbm"]["text"] == "-2.50 dBm"
    assert first["in_bps"]["text"] == "1 Mbit/s" and first["out_bps"]["text"] == "2 Mbit/s"
    assert first["gaps_24h"] == 2  # the third is older than 24 hours
    second = _port(state, "GigabitEthernet0/0/1")
    assert second["match"]["text"] == "ifIndex 2, by ifName (normalized)"
    assert second["oper"]["value"] == "lowerLayerDown"
    assert second["oper"]["label"] == "lower layer down"
    assert second["oper"]["status"] == "down"
    assert second["rx_dbm"] is None and second["gaps_24h"] == 1
    missing = _port(state, "GigabitEthernet0/0/2")
    assert missing["match"]["if_index"] is None
    assert missing["match"]["text"] == "no interface matched"
    assert missing["match"]["problem_label"] == "no interface of this name on the device"
    assert missing["match"]["message"] == MISSING_MESSAGE
    assert missing["admin"] is None and missing["gaps_24h"] == 0
    mismatch = _port(state, "GigabitEthernet0/0/3")
    assert mismatch["match"]["text"] == "ifIndex 12, by ifName"
    assert mismatch["match"]["problem_label"] == (
        "the inventory's if_index is an interface of another name")
    unmatched = _port(state, "GigabitEthernet0/0/4")
    assert unmatched["match"]["text"] == "not matched yet (no poll)"

    page = client.get(f"/devices/{seeded.device_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "script-src" not in page.headers["Content-Security-Policy"]  # self only
    assert "<script>" not in html  # no inline script: data in a JSON block
    assert '<script type="application/json" id="device-config">' in html
    for text in ("SNMP-unresponsive (answers ping)", REASON, "check the community or the",
                 "since " + verdict["since"], "127.0.1.10", "cisco_ios", "hsbank-sh-hq",
                 "37.5 %", "48.0 °C", "420 ms", "-3.25 dBm", "ifIndex 1, by if_index",
                 "ifIndex 2, by ifName (normalized)", "no interface of this name on the device",
                 "not matched yet (no poll)", "lower layer down", "the port statuses are as last",
                 'data-field="gaps_24h">2<', 'id="chart-cpu" data-metric="cpu_pct"',
                 'id="chart-temperature" data-metric="temperature_c"'):
        assert text in html, text
    assert html.count("ifIndex") >= 3


def test_gaps_are_listed_with_their_reasons(portal: Portal):  # noqa: F811
    seeded = seed_device(portal)
    client = logged_in(portal.app, USER_A)
    first = seeded.ports["GigabitEthernet0/0/0"]
    url = f"/devices/{seeded.device_id}/ports/{first}/gaps"
    day = client.get(url).get_json()  # the last 24 hours by default
    assert [datetime.fromisoformat(g["time"]) for g in day["gaps"]] == sorted(seeded.gap_times)
    assert [(g["code"], g["reason"]) for g in day["gaps"]] == [
        (9, "a 32-bit counter was reset"), (4, "the SNMP agent restarted")]
    assert day["truncated"] is False
    end = datetime.now(UTC)
    week = client.get(url, query_string={"start": (end - timedelta(days=7)).isoformat(),
                                         "end": end.isoformat()}).get_json()
    assert [g["code"] for g in week["gaps"]] == [10, 9, 4]
    assert week["gaps"][0]["reason"] == "implausible rate (above the interface speed)"
    assert client.get(url, query_string={"start": "yesterday"}).status_code == 400
    # a port of another device, and a device id that is a port
    assert client.get(f"/devices/{seeded.device_id}/ports/{seeded.other_port}/gaps"
                      ).status_code == 404
    assert client.get(f"/devices/{first}").status_code == 404
    assert client.get(f"/devices/{first}/status").status_code == 404
    # every reason code has its words
    assert set(GAP_REASONS) == set(SkipCode)


def test_another_tenants_device_is_not_found(portal: Portal):  # noqa: F811
    seeded = seed_device(portal)
    first = seeded.ports["GigabitEthernet0/0/0"]
    paths = (f"/devices/{seeded.device_id}", f"/devices/{seeded.device_id}/status",
             f"/devices/{seeded.device_id}/ports/{first}/gaps")
    with portal.database.pool.connection() as conn:
        for user in ("am.zhao", "am.chen"):
            set_password(conn, user, PASSWORD)
        shared = conn.execute("SELECT id FROM devices WHERE key = 'p-sh1'").fetchone()[0]
    for user in (USER_B, "am.zhao"):  # jinlu's user; the manager of xinhe only
        client = logged_in(portal.app, user)
        for path in paths:
            response = client.get(path)
            assert response.status_code == 404, (user, path)
            body = response.get_data(as_text=True)
            assert DEVICE not in body and REASON not in body
    for user in (USER_A, "am.chen", "noc.wang"):  # the owner, its manager, the NOC
        client = logged_in(portal.app, user)
        for path in paths:
            assert client.get(path).status_code == 200, (user, path)
    # the operator's shared routers: staff only
    assert logged_in(portal.app, USER_A).get(f"/devices/{shared}").status_code == 404
    assert logged_in(portal.app, "am.chen").get(f"/devices/{shared}").status_code == 404
    noc = logged_in(portal.app, "noc.wang")
    page = noc.get(f"/devices/{shared}")
    assert page.status_code == 200
    assert "not polled yet" in page.get_data(as_text=True)
    assert noc.get("/devices/999999999").status_code == 404
    assert portal.app.test_client().get(paths[0]).status_code == 302  # to the login page


def test_reachable_device_and_chinese(portal: Portal):  # noqa: F811
    seeded = seed_device(portal)
    with portal.database.pool.connection() as conn:
        record_observations(conn, [verdict_observation(
            seeded.device_id, "snmp-unresponsive", "reachable", datetime.now(UTC))])
    client = logged_in(portal.app, USER_A)
    state = client.get(f"/devices/{seeded.device_id}/status").get_json()
    assert state["verdict"]["state"] == "reachable" and state["verdict"]["hint"] is None
    assert state["ports_stale"] is False
    with client.session_transaction() as session:
        session["lang"] = "zh_CN"
    html = client.get(f"/devices/{seeded.device_id}").get_data(as_text=True)
    for chinese in ("设备", "可达", "当前健康状况", "端口", "设备上没有此名称的接口",
                    "按 if_index 匹配", "管理状态"):
        assert chinese in html, chinese
    for english in ("Health now", "Interface matched", "Withheld (24 h)"):
        assert english not in html, english
    gaps = client.get(f"/devices/{seeded.device_id}/ports/"
                      f"{seeded.ports['GigabitEthernet0/0/0']}/gaps").get_json()
    assert gaps["gaps"][-1]["reason"] == "SNMP 代理重启"


def test_noc_inventory_links_device_names(portal: Portal):  # noqa: F811
    """The circuits' ends on the NOC overview link their devices' pages, for the devices
    the viewer may open: an account manager's customers' CEs, not the shared PE."""
    with portal.database.pool.connection() as conn:
        ids = dict(conn.execute("SELECT key, id FROM devices").fetchall())
        set_password(conn, "am.chen", PASSWORD)
    noc = logged_in(portal.app, "noc.wang").get("/noc/").get_data(as_text=True)
    link = '<a href="/devices/{}">{}</a>:'
    for key in (DEVICE, "pe-sh1"):
        assert link.format(ids[key], key) in noc, key
    chen = logged_in(portal.app, "am.chen").get("/noc/").get_data(as_text=True)
    assert link.format(ids[DEVICE], DEVICE) in chen
    assert f'href="/devices/{ids["pe-sh1"]}"' not in chen
    assert "<td>pe-sh1:XGigabitEthernet0/1/2</td>" in chen


def test_data_a_full_spool_dropped_is_a_gap_on_the_ports_charts(portal: Portal):  # noqa: F811
    from store.collection import record_drops

    seeded = seed_device(portal)
    end = datetime.now(UTC)
    first_lost, last_lost = end - timedelta(hours=3), end - timedelta(hours=2)
    with portal.database.pool.connection() as conn:
        record_drops(conn, [(seeded.device_id, "samples", 5000, first_lost.isoformat(),
                             last_lost.isoformat())])
    client = logged_in(portal.app, USER_A)
    first = seeded.ports["GigabitEthernet0/0/0"]
    day = client.get(f"/devices/{seeded.device_id}/ports/{first}/gaps").get_json()
    dropped = [g for g in day["gaps"] if g["code"] == 0]
    assert [datetime.fromisoformat(g["time"]) for g in dropped] == [first_lost, last_lost]
    assert "spool was full" in dropped[0]["reason"] and "5000" in dropped[0]["reason"]
    times = [g["time"] for g in day["gaps"]]
    assert times == sorted(times)
