"""The alarm pipeline's sentences in the viewer's language (alarms/texts.py): every one has
its Chinese translation with the same parameters, and an alarm page read in 简体中文 shows
the summary and the pipeline's timeline notes in Chinese, filled in from the code and
parameters stored with them; in English, the sentences the pipeline wrote."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from babel.messages.pofile import read_po

from alarms.model import (
    PIPELINE_ACTOR,
    Alarm,
    AlarmChange,
    AlarmKey,
    AlarmType,
    ObjectKind,
    Severity,
    TimelineEntry,
)
from alarms.pipeline import AlarmPipeline, store_publisher
from alarms.service_state import (
    CircuitFacts,
    Degradation,
    EndFacts,
    PathFacts,
    service_state,
)
from alarms.texts import TEMPLATES, TEXT, english, render, render_value, state_words, text
from collectors.model import Observation
from portal.i18n import TRANSLATIONS
from store.alarms import save_changes
from store.circuit_states import StoredState, current_states, record_states
from tests.test_portal_access import PASSWORD, USER_A, Portal, logged_in, portal  # noqa: F401
from tests.test_portal_alarms import SETTINGS, Seeded, seeded  # noqa: F401
from tests.test_portal_browser import browser, log_in  # noqa: F401
from tests.test_portal_live import LIVE_WITHIN_S, serve, wait_for
from topology.current import load_topology
from topology.graph import Element

CHINESE = {"Accept-Language": "zh-CN"}
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def test_every_sentence_has_its_chinese_with_the_same_parameters():
    with (TRANSLATIONS / "zh_CN" / "LC_MESSAGES" / "messages.po").open("rb") as po_file:
        catalog = read_po(po_file)
    for code, template in TEMPLATES.items():
        message = catalog.get(template)
        assert message is not None and message.string, f"{code}: {template!r} untranslated"
        assert sorted(PLACEHOLDER.findall(message.string)) == \
            sorted(PLACEHOLDER.findall(template)), code
    assert english(text("port_oper", oper="down")) == "port oper status down"


def cells(page: str, css: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(rf'<td class="{css}">(.*?)</td>', page, re.S)]


def test_the_alarm_page_in_chinese(portal: Portal, seeded: Seeded):  # noqa: F811
    client = logged_in(portal.app, "noc.wang")
    root = client.get(f"/alarms/{seeded.root}", headers=CHINESE).get_data(as_text=True)
    assert '<html lang="zh-CN">' in root
    assert "设备宕机：SNMP 与 ICMP 均无应答" in root
    assert "device down: no SNMP and no ICMP answer" not in root
    notes = cells(root, "comment")
    assert "设备宕机：SNMP 与 ICMP 均无应答" in notes  # the "raised" entry
    assert any(re.fullmatch(r"\d+ 条电路，\d+ 个客户", note) for note in notes), notes

    symptom = min(seeded.symptoms)
    page = client.get(f"/alarms/{symptom}", headers=CHINESE).get_data(as_text=True)
    notes = cells(page, "comment")
    assert any(note.startswith("电路中断：") for note in notes), notes
    assert any(note.endswith("的衍生告警") for note in notes), notes
    assert not any(note.startswith(("circuit out of service", "symptom of")) for note in notes)
    assert "circuit out of service" not in page  # the summary too

    english_page = client.get(f"/alarms/{symptom}", headers={"Accept-Language": "en"})
    notes = cells(english_page.get_data(as_text=True), "comment")
    assert any(note.startswith("circuit out of service: ") for note in notes), notes
    assert any(note.startswith("symptom of ") for note in notes), notes


# --- follow-up: service causes, customers, REST, live rows ---------------------------------

ENGLISH_WORDS = re.compile(r"\b(?:down at|path broken|no route|not polled|not seen|"
                           r"in service|in maintenance|circuit out of service|on port)\b")
HAN = re.compile(r"[\u4e00-\u9fff]")


def chinese() -> Callable[[str], str]:
    """gettext of the zh_CN catalog, read from the .po as the portal compiles it."""
    with (TRANSLATIONS / "zh_CN" / "LC_MESSAGES" / "messages.po").open("rb") as po_file:
        catalog = read_po(po_file)
    return lambda template: catalog.get(template).string


def test_every_service_cause_reads_chinese_and_its_english_is_unchanged():
    """Each cause alarms.service_state words, as data: its English is the stored cause (the
    CLI, the logs and the SLA reports read it), its Chinese has no English sentence left,
    and inside "circuit out of service: ..." too."""
    at = datetime(2026, 1, 1, tzinfo=UTC)

    def end(side: str, **facts: Any) -> EndFacts:
        values: dict[str, Any] = {"oper": "up", "admin": "up", "device": "reachable",
                                  "since": at, **facts}
        return EndFacts(side, 10 if side == "A" else 20, f"Gi0/0/{side}", 1 if side == "A"
                        else 2, f"pe-{side.lower()}", "PE", **values)

    def facts(a: EndFacts | None = None, z: EndFacts | None = None,
              path: PathFacts | None = None, **extra: Any) -> CircuitFacts:
        return CircuitFacts(7, (a or end("A"), z or end("Z")),
                            path or PathFacts(declared=True, valid=True), **extra)

    broken = PathFacts(True, True, down=(
        (Element("device", 5), text("cause_path_device_down", device="p-1")),
        (Element("link", 6), text("cause_path_link_down", link="p-1:x–p-2:y"))), since=at)
    hot = Degradation(Element("port", 20), text("port_oper", oper="lowerLayerDown"), at)
    verdicts = [
        service_state(facts(a=end("A", device="unreachable"))),
        service_state(facts(a=end("A", oper="down", admin="down"))),
        service_state(facts(z=end("Z", oper="lowerLayerDown"), path=broken)),  # two reasons
        service_state(facts(path=PathFacts(False, False, down=broken.down))),
        service_state(facts(path=PathFacts(False, False))),
        service_state(facts(a=end("A", device=None))),
        service_state(facts(a=end("A", device="auth-failed"))),
        service_state(facts(z=end("Z", oper=None))),
        service_state(facts(path=PathFacts(True, False))),
        service_state(facts(degradations=(hot,))),
        service_state(facts()),
        service_state(facts(z=end("Z", oper="down"), maintenance=frozenset({3}),
                            maintenance_since=at)),
    ]
    assert len({v.cause_kind for v in verdicts}) >= 10
    zh = chinese()
    for verdict in verdicts:
        assert verdict.cause_text, verdict
        assert render_value(list(verdict.cause_text)) == verdict.cause
        words = text("service_down", cause=verdict.cause_param)
        assert english(words) == f"circuit out of service: {verdict.cause}"
        translated = render(words, zh)
        assert translated.startswith("电路中断："), translated
        assert HAN.search(translated[5:]) and not ENGLISH_WORDS.search(translated), translated
    assert verdicts[2].cause == ("path broken: device p-1 down, link p-1:x–p-2:y down; port "
                                 "Gi0/0/Z lowerLayerDown at the Z end (PE pe-z)")
    assert render(text("service_down", cause=verdicts[2].cause_param), zh) == (
        "电路中断：路径中断：设备 p-1 宕机, 链路 p-1:x–p-2:y 中断; Z 端端口 Gi0/0/Z 状态 "
        "lowerLayerDown（PE pe-z）")
    # the state inside a cause and in the timeline's notes is a word of the catalog too
    assert render(verdicts[-1].cause_text[0], zh).startswith("处于维护窗口 3（中断：")
    assert render(text("circuit_now", state=state_words("up")), zh) == "电路状态：正常"


def rest_rendered(client: Any, body: dict[str, Any]) -> str:
    """An alarm's "text" rendered as a REST client would: with the templates
    /api/v1/alarm-texts gives in the client's language."""
    catalog = client.get("/api/v1/alarm-texts", headers=CHINESE).get_json()
    by_template = {TEMPLATES[code]: template for code, template in catalog["templates"].items()}
    return render(body["text"], by_template.__getitem__)


def test_the_symptom_reads_chinese_to_staff_and_rest_carries_its_words(
        portal: Portal, seeded: Seeded):  # noqa: F811
    client = logged_in(portal.app, "noc.wang")
    symptom = min(seeded.symptoms)
    page = client.get(f"/alarms/{symptom}", headers=CHINESE).get_data(as_text=True)
    summary = re.search(r"<dd>(电路中断：.*?)</dd>", page)
    assert summary and not ENGLISH_WORDS.search(summary[1]), summary
    assert "路径中断：设备 p-bj1 宕机" in summary[1]

    body = client.get(f"/api/v1/alarms/{symptom}").get_json()
    assert body["text"]["code"] == "service_down"
    assert english(body["text"]) == body["summary"]
    assert rest_rendered(client, body) == summary[1]
    notes = [entry for entry in body["timeline"] if entry["text"]]
    assert notes and all(english(entry["text"]) == entry["comment"] for entry in notes)
    staff_catalog = client.get("/api/v1/alarm-texts").get_json()["templates"]
    assert staff_catalog["impact"] == TEMPLATES["impact"]  # English without Accept-Language


def store_alarm(portal: Portal, kind: str, object_id: int, type_: str,  # noqa: F811
                words: dict[str, Any], *, circuits: set[int], customers: set[int],
                summary: str | None = None) -> Alarm:
    """An alarm stored as the pipeline stores it: its summary (by default the English of
    `words`) and its words as data in its detail, with its "alarm.raised" event."""
    now = datetime.now(UTC)
    summary = english(words) if summary is None else summary
    alarm = Alarm(AlarmKey(ObjectKind(kind), object_id, AlarmType(type_)), Severity.MAJOR,
                  now, now, summary=summary, impacted_circuits=frozenset(circuits),
                  impacted_customers=frozenset(customers), detail={TEXT: words})
    with portal.database.pool.connection() as conn:
        save_changes(conn, [AlarmChange(alarm, "raised", (TimelineEntry(
            now, "raised", PIPELINE_ACTOR, summary, {TEXT: words}),))])
    assert alarm.id is not None
    return alarm


def tenant_alarms(portal: Portal) -> dict[str, Alarm]:  # noqa: F811
    """A's circuit down at its own CE port; the PE port A shares with xinhe down (its words
    name no object); jinlu's router said to hit A (another customer's object: hidden); and
    an alarm on A's circuit whose words name jinlu's router though its summary does not."""
    a, b = portal.a, portal.b
    with portal.database.pool.connection() as conn:
        down = {row[0] for row in conn.execute(
            "SELECT object_id FROM alarms WHERE state = 'active' AND type = 'service_down'")}
        free = sorted(a.ids["circuit"] - down)  # circuits with no service alarm yet
        a_circuit, other_circuit = free[0], free[-1]
        ce_port, ce, ce_role = conn.execute(
            "SELECT p.name, d.key, d.role FROM circuits c JOIN ports p ON p.id = c.a_port_id"
            " JOIN devices d ON d.id = p.device_id WHERE c.id = %s", [a_circuit]).fetchone()
        (shared_port,) = conn.execute(
            "SELECT p.id FROM ports p JOIN devices d ON d.id = p.device_id"
            " WHERE d.key = 'pe-sh1' AND p.name = 'XGigabitEthernet0/1/2'").fetchone()
        b_router, b_router_key = conn.execute(
            "SELECT id, key FROM devices WHERE id = %s", [min(b.ids["device"])]).fetchone()
    own = text("service_down", cause=[text("cause_port_down", port=ce_port, oper="down",
                                           side="A", role=ce_role, device=ce)])
    other = text("service_down", cause=[text("cause_device_down", device=b_router_key,
                                             side="Z", role="CE")])
    return {
        "own": store_alarm(portal, "circuit", a_circuit, "service_down", own,
                           circuits={a_circuit}, customers={a.customer_id}),
        "shared_port": store_alarm(portal, "port", shared_port, "link_down",
                                   text("port_oper", oper="lowerLayerDown"),
                                   circuits={a_circuit}, customers={a.customer_id}),
        "b_router": store_alarm(portal, "device", b_router, "device_unreachable",
                                text("cause_path_device_down", device=b_router_key),
                                circuits={a_circuit, min(b.ids["circuit"])},
                                customers={a.customer_id, b.customer_id}),
        "naming_b": store_alarm(portal, "circuit", other_circuit, "service_down",
                                other, circuits={other_circuit},
                                customers={a.customer_id},
                                summary="circuit out of service"),
    }


def test_a_customer_reads_its_summaries_in_chinese_and_no_other_tenants_names(
        portal: Portal, seeded: Seeded):  # noqa: F811
    mine = tenant_alarms(portal)
    customer = logged_in(portal.app, USER_A)
    jinlu = [word for word in portal.b.words if word.isascii()]
    catalog = customer.get("/api/v1/alarm-texts", headers=CHINESE).get_json()
    assert "impact" not in catalog["templates"]  # the staff's notes' forms stay with staff
    assert catalog["templates"]["port_oper"] == "端口运行状态 %(oper)s"

    listed = {a["id"]: a for a in customer.get("/api/v1/alarms").get_json()["alarms"]}
    assert set(listed) >= {a.id for a in mine.values()} | seeded.services_a
    for alarm_id in seeded.services_a | {mine["own"].id, mine["shared_port"].id}:
        body = listed[alarm_id]
        assert body["text"] and english(body["text"]) == body["summary"], body
        assert HAN.search(rest_rendered(customer, body))
        assert customer.get(f"/api/v1/alarms/{alarm_id}").get_json()["text"] == body["text"]
    assert rest_rendered(customer, listed[mine["shared_port"].id]) == \
        "端口运行状态 lowerLayerDown"
    # jinlu's router: hidden object, no summary, no words; words naming more than the
    # summary says: dropped, the summary as written
    assert listed[mine["b_router"].id]["summary"] is None
    assert listed[mine["b_router"].id]["text"] is None
    assert listed[mine["naming_b"].id]["text"] is None
    assert listed[mine["naming_b"].id]["summary"] == "circuit out of service"
    everything = json.dumps(listed, ensure_ascii=False)
    assert not [word for word in jinlu if word in everything]

    for alarm in (mine["own"], min(seeded.services_a)):
        alarm_id = alarm if isinstance(alarm, int) else alarm.id
        page = customer.get(f"/alarms/{alarm_id}", headers=CHINESE).get_data(as_text=True)
        summary = re.search(r"<dd>(电路中断：.*?)</dd>", page)
        assert summary and not ENGLISH_WORDS.search(summary[1]), (alarm_id, summary)
    console = customer.get("/alarms", headers=CHINESE).get_data(as_text=True)
    assert "端口运行状态 lowerLayerDown" in console
    assert "A 端端口" in console and "circuit out of service: port" not in console
    assert not [word for word in jinlu if word in console]
    # the customer's own dashboard lists them the same way
    dashboard = customer.get(f"/customers/{portal.a.customer_id}/",
                             headers=CHINESE).get_data(as_text=True)
    assert "A 端端口" in dashboard
    assert not [word for word in jinlu if word in dashboard]

    staff = logged_in(portal.app, "noc.wang").get(
        f"/api/v1/alarms/{mine['naming_b'].id}").get_json()
    assert staff["text"]["code"] == "service_down"  # staff keep the words as stored


def row_summary(page: Any, alarm_id: int) -> str | None:
    return page.evaluate("""(id) => { const row = document.querySelector(
                              `tr.alarm[data-alarm="${id}"]`);
                            if (!row) { return null; }
                            const desc = row.children[1].querySelector(
                              ":scope > .desc:not(.impacted-circuits)");
                            return desc ? desc.textContent : ""; }""", alarm_id)


@pytest.mark.slow
def test_live_rows_read_chinese(browser: Any, portal: Portal):  # noqa: F811
    """The NOC's console and a customer's, read in 简体中文, are open when the alarms arrive
    over Socket.IO: each new row's summary is in Chinese, exactly as the page renders it
    after a reload; the customer's rows show nothing of jinlu's."""
    errors: list[str] = []
    jinlu = [word for word in portal.b.words if word.isascii()]
    with serve(portal.app) as served:
        pages = {}
        contexts = []
        for user in ("noc.wang", USER_A):
            context = browser.new_context(locale="zh-CN")
            contexts.append(context)
            page = context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            log_in(page, served.url, user, PASSWORD)
            page.wait_for_selector("nav")
            page.goto(served.url + "/alarms")
            page.wait_for_selector("#live-state[data-state=live]", timeout=10_000)
            pages[user] = page
        try:
            mine = tenant_alarms(portal)
            noc, customer = pages["noc.wang"], pages[USER_A]
            for page in (noc, customer):
                wait_for(lambda page=page: all(row_summary(page, a.id) is not None
                                               for a in mine.values()), LIVE_WITHIN_S * 5)
            live = {user: {name: row_summary(page, alarm.id) for name, alarm in mine.items()}
                    for user, page in pages.items()}
            for seen in live.values():
                assert seen["own"].startswith("电路中断：A 端端口 "), seen
                assert not ENGLISH_WORDS.search(seen["own"]), seen
                assert seen["shared_port"] == "端口运行状态 lowerLayerDown"
            assert live["noc.wang"]["b_router"].startswith("设备 ce-jinlu")
            assert live[USER_A]["b_router"] == ""  # another customer's object: no summary
            assert live[USER_A]["naming_b"] == "circuit out of service"  # as written
            assert not [w for w in jinlu if w in customer.inner_text("#alarm-list")]
            # the page as the server renders it says the same
            for user, page in pages.items():
                page.reload()
                page.wait_for_selector(f'tr.alarm[data-alarm="{mine["own"].id}"]')
                assert {name: row_summary(page, alarm.id)
                        for name, alarm in mine.items()} == live[user], user
        finally:
            for context in contexts:
                context.close()
    assert not errors, errors


# --- circuits' service state causes ---------------------------------------------------------


def cause_line(page: str) -> str:
    found = re.search(r'<div class="desc service-cause">(.*?)</div>', page, re.S)
    assert found, "no cause line"
    return found[1]


def down_state(portal: Portal) -> StoredState:  # noqa: F811
    """One of hsbank's circuits the seeded pipeline run took down (p-bj1 unreachable)."""
    with portal.database.pool.connection() as conn:
        states = current_states(conn, portal.a.ids["circuit"])
    return next(s for _, s in sorted(states.items()) if s.state == "down")


def test_circuit_causes_read_chinese_on_the_customer_page_and_the_noc_inventory(
        portal: Portal, seeded: Seeded):  # noqa: F811
    stored = down_state(portal)
    assert stored.cause_text is not None and english(stored.cause_text) == stored.cause
    jinlu = [word for word in portal.b.words if word.isascii()]

    customer = logged_in(portal.app, USER_A)
    page = customer.get(f"/circuits/{stored.circuit_id}", headers=CHINESE).get_data(
        as_text=True)
    line = cause_line(page)
    assert "路径中断：设备 p-bj1 宕机" in line and not ENGLISH_WORDS.search(line), line
    assert 'id="alarm-texts"' in page and "alarm_texts.js" in page
    state = customer.get(f"/circuits/{stored.circuit_id}/status").get_json()["service"]
    assert state["cause_text"] == stored.cause_text and state["cause"] == stored.cause
    assert not [word for word in jinlu if word in page]
    listing = customer.get(f"/customers/{portal.a.customer_id}/",
                           headers=CHINESE).get_data(as_text=True)
    assert "路径中断：设备 p-bj1 宕机" in listing and stored.cause not in listing

    staff = logged_in(portal.app, "noc.wang")
    inventory = staff.get("/noc/", headers=CHINESE).get_data(as_text=True)
    title = re.search(rf'data-service="circuit:{stored.circuit_id}"><span [^>]*title="([^"]*)"',
                      inventory)
    assert title and title[1].startswith("路径中断：设备 p-bj1 宕机"), title
    assert not ENGLISH_WORDS.search(title[1]), title[1]
    assert stored.cause not in inventory
    view = staff.get(f"/api/v1/topology/customers/{portal.a.customer_id}").get_json()
    entry = next(c for c in view["circuits"] if c["object_id"] == stored.circuit_id)
    assert entry["cause_text"] == stored.cause_text and entry["cause"] == stored.cause


def test_a_cause_whose_words_say_more_than_its_english_shows_the_english(
        portal: Portal, seeded: Seeded):  # noqa: F811
    """A stored cause whose words name what its English does not (here jinlu's router): a
    customer gets the English alone, never the words."""
    stored = down_state(portal)
    with portal.database.pool.connection() as conn:
        (b_router,) = conn.execute("SELECT key FROM devices WHERE id = %s",
                                   [min(portal.b.ids["device"])]).fetchone()
        record_states(conn, [dataclasses.replace(
            stored, time=datetime.now(UTC), cause="circuit down", alarm_id=None,
            cause_text=text("cause_reasons", reasons=[
                text("cause_path_device_down", device=b_router)]))])
    customer = logged_in(portal.app, USER_A)
    page = customer.get(f"/circuits/{stored.circuit_id}", headers=CHINESE).get_data(
        as_text=True)
    assert cause_line(page) == "circuit down"
    state = customer.get(f"/circuits/{stored.circuit_id}/status").get_json()["service"]
    assert state["cause_text"] is None and state["cause"] == "circuit down"
    assert b_router not in page and b_router not in json.dumps(state)


def take_port_down(portal: Portal, port_id: int) -> None:  # noqa: F811
    """The alarm pipeline, as the service runs it: the network answering with every port
    up, then `port_id` down (its states stored and announced as "circuit.state")."""
    with portal.database.pool.connection() as conn:
        topology = load_topology(conn)
    snapshot = topology.snapshot
    pipeline = AlarmPipeline(SETTINGS, topology=topology,
                             publisher=store_publisher(portal.database.pool))
    now = datetime.now(UTC)
    before = now - timedelta(seconds=10)
    pipeline.process([Observation(before, d, "reachability", None, "reachable", "poll")
                      for d in snapshot.devices]
                     + [Observation(before, p, kind, None, "up", "poll")
                        for p in snapshot.ports for kind in ("oper_status", "admin_status")],
                     before)
    pipeline.process([Observation(now, port_id, "oper_status", "up", "down", "trap")], now)


@pytest.mark.slow
def test_a_live_circuit_state_reads_chinese(browser: Any, portal: Portal):  # noqa: F811
    """A customer's circuit page and the NOC's topology (the customer's circuits table), read
    in 简体中文, are open when the circuit's port goes down: both cause lines turn to the
    Chinese cause (the topology's straight from the live "circuit.state" message, the
    customer's page from its state fetched on it), as the page renders it after a reload."""
    errors: list[str] = []
    with portal.database.pool.connection() as conn:
        circuit_id, port_id = conn.execute(
            "SELECT id, a_port_id FROM circuits WHERE customer_id = %s ORDER BY key LIMIT 1",
            [portal.a.customer_id]).fetchone()
    row = f'tr[data-circuit="circuit:{circuit_id}"] .service-cause'
    with serve(portal.app) as served:
        contexts = [browser.new_context(locale="zh-CN") for _ in range(2)]
        try:
            page, noc = (context.new_page() for context in contexts)
            for one, user in ((page, USER_A), (noc, "noc.wang")):
                one.on("pageerror", lambda error: errors.append(str(error)))
                log_in(one, served.url, user, PASSWORD)
                one.wait_for_selector("nav")
            page.goto(f"{served.url}/circuits/{circuit_id}")
            noc.goto(f"{served.url}/noc/topology")
            for one in (page, noc):
                one.wait_for_selector("#live-state[data-state=live]", timeout=10_000)
            noc.select_option("#topology-view", f"customers/{portal.a.customer_id}")
            noc.wait_for_selector(row)
            assert "A 端端口" not in page.inner_text(".service-cause")
            take_port_down(portal, port_id)

            def chinese_cause(one: Any, css: str) -> str:
                return wait_for(lambda: (lambda t: t if "A 端端口" in t else None)(
                    one.inner_text(css)), LIVE_WITHIN_S * 5)

            cause = chinese_cause(page, ".service-cause")
            assert not ENGLISH_WORDS.search(cause), cause
            assert chinese_cause(noc, row) == cause
            page.reload()
            page.wait_for_selector(".service-cause")
            assert page.inner_text(".service-cause") == cause
        finally:
            for context in contexts:
                context.close()
    assert not errors, errors
