"""The alarm pipeline's sentences in the viewer's language (alarms/texts.py): every one has
its Chinese translation with the same parameters, and an alarm page read in 简体中文 shows
the summary and the pipeline's timeline notes in Chinese, filled in from the code and
parameters stored with them; in English, the sentences the pipeline wrote."""

from __future__ import annotations

import re

from babel.messages.pofile import read_po

from alarms.texts import TEMPLATES, english, text
from portal.i18n import TRANSLATIONS
from tests.test_portal_access import Portal, logged_in, portal  # noqa: F401
from tests.test_portal_alarms import Seeded, seeded  # noqa: F401

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
