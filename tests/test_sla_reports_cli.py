"""`keyline report` and `keyline sla` (keyline/sla_cli.py), the report's HTML, CSV and PDF
(sla/render.py) and the issued report's e-mail with its attachments (sla/notify.py), against a
real store holding the example inventory, a real SMTP server and poppler's tools.

October 2026 of the example's hsbank (华盛银行 Huasheng Bank), every circuit up from 1
September: HSB-L3VPN-0001 (hsbank-gold: 24x7 Asia/Shanghai, target 99.995 %, credit below
99.9 % 60 % of 36,000 CNY) is down 45 minutes from 2026-10-10 02:00 UTC (10:00 in Shanghai).
October in Shanghai is 31 days = 2,678,400 s; availability = 1 - 2,700 / 2,678,400 =
99.899193...%, shown 99.8991 (cut, never rounded up), credit 60 % = 21,600.00 CNY.
HSB-L3VPN-0002 is unknown for 30 minutes from 2026-10-20 03:00 UTC (a monitoring gap,
excluded by default: still 100 %). Marking 30 of the 45 minutes customer-caused leaves 15
minutes down: 1 - 900 / (2,678,400 - 1,800) = 2,675,700 / 2,676,600 = 99.966375...%, below
99.995 % but not below 99.95 %: credit 10 % = 3,600.00 CNY.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import markupsafe
import psycopg
import pytest
from click.testing import CliRunner

from config.inventory.loader import load_inventory
from keyline.cli import main
from keyline.sla_cli import report, sla
from keyline.wiring import EXAMPLE_INVENTORY
from sla import render, statement
from store.circuit_states import StoredState, record_states
from store.database import Database
from store.inventory import apply_inventory
from store.timeseries import SampleWriter, refresh_rollup_range

HSBANK = "华盛银行 Huasheng Bank"
CUT = datetime(2026, 10, 10, 2, 0, tzinfo=UTC)
GAP = datetime(2026, 10, 20, 3, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parent.parent
ARTEFACTS = REPO / "var" / "test-artefacts"

needs_poppler = pytest.mark.skipif(
    shutil.which("pdftotext") is None or shutil.which("pdftoppm") is None,
    reason="pdftotext/pdftoppm missing: Debian package poppler-utils "
    "(python3 dev.py test as root installs it)")
needs_cjk_font = pytest.mark.skipif(
    render.cjk_font_available() is None,
    reason="no CJK font in fontconfig: Debian package fonts-wqy-zenhei "
    "(python3 dev.py test as root installs it)")


def states(conn: psycopg.Connection, key: str, *changes: tuple[datetime, str]) -> None:
    circuit_id, customer_id = conn.execute(
        "SELECT id, customer_id FROM circuits WHERE key = %s", [key]).fetchone()
    record_states(conn, [StoredState(circuit_id, customer_id, at, state, None, None,
                                     f"test {state}: fibre cut Pudong", "test", (), (), None)
                         for at, state in changes])


def october(conn: psycopg.Connection, pool: Any) -> None:
    for key, in conn.execute("SELECT key FROM circuits WHERE retired_at IS NULL").fetchall():
        states(conn, key, (datetime(2026, 9, 1, tzinfo=UTC), "up"))
    states(conn, "HSB-L3VPN-0001", (CUT, "down"), (CUT + timedelta(minutes=45), "up"))
    states(conn, "HSB-L3VPN-0002", (GAP, "unknown"), (GAP + timedelta(minutes=30), "up"))
    # an hour of latency samples on HSB-L3VPN-0001: 12 buckets of 10 samples, mean 12 ms
    # (buckets of mean 11, 12, 13 ms, each from 9 to 20 ms), read from the hourly rollup
    circuit_id = conn.execute("SELECT id FROM circuits WHERE key = 'HSB-L3VPN-0001'").fetchone()
    hour = datetime(2026, 10, 15, 4, tzinfo=UTC)
    rows = []
    for bucket in range(12):
        mean = 11.0 + (bucket % 3)
        values = [9.0, 20.0] + [(10 * mean - 29.0) / 8] * 8
        rows += [(hour + timedelta(minutes=5 * bucket, seconds=30 * i), circuit_id[0],
                  "rtt_ms", value) for i, value in enumerate(values)]
    with SampleWriter(pool) as writer:
        writer.add_many(rows)
    refresh_rollup_range(pool, hour, hour + timedelta(hours=1))
    conn.commit()


@pytest.fixture
def cli(db: Database, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in list(os.environ):
        if name.startswith("KEYLINE_"):
            monkeypatch.delenv(name)
    with db.pool.connection() as conn:
        apply_inventory(conn, load_inventory([EXAMPLE_INVENTORY]))
        conn.commit()
        october(conn, db.pool)
    group = click.Group("keyline-test", params=main.params, callback=main.callback)
    group.add_command(report)
    group.add_command(sla)
    runner = CliRunner()

    def run(*args: str, code: int = 0, database: bool = True) -> Any:
        prefix = ["--database-url", db.url] if database else []
        result = runner.invoke(group, [*prefix, *args])
        assert result.exit_code == code, (result.output, result.exception)
        return result

    return run


def text_of_pdf(path: Path) -> str:
    return subprocess.run(["pdftotext", "-enc", "UTF-8", "-layout", str(path), "-"],
                          capture_output=True, text=True, check=True).stdout


def test_report_in_every_format_for_a_chinese_customer(cli: Any, tmp_path: Path) -> None:
    out = cli("report", "--customer", "hsbank", "--month", "2026-10", "--format", "json",
              "--output", str(tmp_path / "hsbank.json"))
    assert "not issued; figures as of" in out.stderr
    document = json.loads((tmp_path / "hsbank.json").read_text(encoding="utf-8"))
    assert document["subject"]["name"] == HSBANK
    figures = document["figures"]["circuits"]["HSB-L3VPN-0001"]
    assert (figures["down_s"], figures["availability_pct"]) == ("2700.000000", "99.899193")

    cli("report", "--customer", "hsbank", "--month", "2026-10", "--format", "html",
        "--output", str(tmp_path / "hsbank.html"))
    page = (tmp_path / "hsbank.html").read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and HSBANK in page
    assert "月度SLA报告" in page and "99.8991 %" in page and "99.8992" not in page
    # the outage in the contract's zone, the zone named; the credit; the monitoring gap
    assert "2026-10-10 10:00" in page and "2026-10-10 10:45" in page
    assert "Asia/Shanghai (UTC+08:00)" in page
    assert "21600.00 CNY" in page and "30.00 分钟" in page
    assert "fibre cut Pudong" in page
    assert "未测量" in page  # jitter and loss were not measured; latency was
    # latency of HSB-L3VPN-0001: 120 samples, mean 12 ms against hsbank-gold's 25 ms
    assert re.search(r'<span class="ok">12</span>\s*<span class="small muted">/ 目标 25</span>',
                     page), "latency: mean 12 ms, target 25 ms"
    assert 'style="' not in page, "no inline style: the portal's CSP forbids it"
    english = cli("report", "--customer", "hsbank", "--month", "2026-10", "--format", "html",
                  "--language", "en", "--output", str(tmp_path / "en.html"))
    assert "wrote" in english.stdout
    assert "Monthly SLA report" in (tmp_path / "en.html").read_text(encoding="utf-8")
    body = render.report_html(document, language="en", standalone=False)
    assert body.lstrip().startswith('<div class="sla-report"') and "<html" not in body
    assert "<style" not in body  # the portal links report.css (render.report_css)

    cli("report", "--customer", "hsbank", "--month", "2026-10", "--format", "csv",
        "--output", str(tmp_path / "hsbank.csv"))
    raw = (tmp_path / "hsbank.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "a BOM, so that Excel reads UTF-8"
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    row = next(r for r in rows if r["circuit"] == "HSB-L3VPN-0001")
    assert (row["customer"], row["down_min"], row["availability_pct"], row["credit_amount"],
            row["currency"], row["target_met"]) == (
        "hsbank", "45.000000", "99.899193", "21600.00", "CNY", "no")
    assert row["circuit_name"] and row["time_zone"] == "Asia/Shanghai"
    assert next(r for r in rows if r["circuit"] == "HSB-L3VPN-0002")["monitoring_gap_min"] \
        == "30.000000"
    outages = list(csv.DictReader(io.StringIO(
        (tmp_path / "hsbank-outages.csv").read_bytes().decode("utf-8-sig"))))
    assert [(o["circuit"], o["start"], o["end"], o["downtime_min"]) for o in outages] == [
        ("HSB-L3VPN-0001", "2026-10-10T10:00:00+08:00", "2026-10-10T10:45:00+08:00",
         "45.000000")]


def test_sla_compute_checks_an_exported_statement_without_a_database(
        cli: Any, tmp_path: Path) -> None:
    exported = tmp_path / "statement.json"
    cli("report", "--customer", "hsbank", "--month", "2026-10", "--format", "json",
        "--output", str(exported))
    # no database: a URL where nothing listens, a data folder that does not exist
    nowhere = ["--database-url", "postgresql://keyline@127.0.0.1:9/nowhere",
               "--data-dir", str(tmp_path / "no-such-folder")]
    out = cli(*nowhere, "sla", "compute", str(exported), database=False).stdout
    assert "every figure matches the statement" in out
    assert "HSB-L3VPN-0001: availability 99.8991 % (target 99.995 %), downtime 45.00 min" in out
    assert "21600.00 CNY" in out
    assert not (tmp_path / "no-such-folder").exists()

    # the same statement as YAML
    from ruamel.yaml import YAML

    as_yaml = tmp_path / "statement.yaml"
    with as_yaml.open("w", encoding="utf-8") as file:
        YAML(typ="safe", pure=True).dump(json.loads(exported.read_text("utf-8")), file)
    assert "every figure matches" in cli(*nowhere, "sla", "compute", str(as_yaml),
                                         database=False).stdout

    # one state's end moved a minute later: 46 minutes down, not 45
    changed = json.loads(exported.read_text("utf-8"))
    circuit = next(c for c in changed["circuits"] if c["key"] == "HSB-L3VPN-0001")
    later = (CUT + timedelta(minutes=46)).isoformat()
    for span in circuit["states"]:
        if span["state"] == "down":
            span["end"] = later
        elif span["start"] == (CUT + timedelta(minutes=45)).isoformat():
            span["start"] = later
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(changed), encoding="utf-8")
    out = cli(*nowhere, "sla", "compute", str(edited), code=1, database=False).stdout
    assert "figures differ from the statement" in out
    assert re.search(r"figures\.circuits\.HSB-L3VPN-0001\.down_s: the statement says"
                     r" '2700\.000000', recomputed '2760\.000000'", out), out

    # a malformed statement: the JSON path at fault, exit 2
    del circuit["contract"]
    index = changed["circuits"].index(circuit)
    edited.write_text(json.dumps(changed), encoding="utf-8")
    out = cli(*nowhere, "sla", "compute", str(edited), code=2, database=False).output
    assert f"$.circuits[{index}].contract: is missing" in out
    # a statement of no circuits still renders (no figure shown as 100 %)
    empty = json.loads(exported.read_text("utf-8"))
    empty["circuits"], empty["tickets"] = [], []
    empty["figures"] = statement.figures_json(statement.compute(empty))
    page = render.report_html(empty, language="en")
    assert "— %" not in page and "No outage this month." in page
    assert render.report_csv(empty).count("\r\n") == 1  # the header only
    edited.write_text("{not json", encoding="utf-8")
    assert "not valid JSON" in cli(*nowhere, "sla", "compute", str(edited), code=2,
                                   database=False).output


def test_all_writes_one_file_per_customer_with_a_progress_bar(cli: Any, tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    result = cli("report", "--all", "--month", "2026-10", "--format", "html",
                 "--output-dir", str(folder))
    assert sorted(p.name for p in folder.iterdir()) == [
        "sla-report-hsbank-2026-10.html", "sla-report-jinlu-2026-10.html",
        "sla-report-xinhe-2026-10.html"]
    assert "金路物流 Jinlu Logistics" in (folder / "sla-report-jinlu-2026-10.html").read_text(
        "utf-8")
    assert "3/3" in result.stderr and "SLA reports 2026-10" in result.stderr
    assert "3 customers' reports of 2026-10" in result.stdout
    # an account manager's report: their customers' circuits, with a customer column
    cli("report", "--manager", "am.chen", "--month", "2026-10", "--format", "html",
        "--output", str(tmp_path / "chen.html"))
    page = (tmp_path / "chen.html").read_text("utf-8")
    assert "陈静 Chen Jing" in page and "客户经理" in page
    assert "HSB-L3VPN-0001" in page and "JL-ELINE-0001" in page and "XH-" not in page
    assert "<th>客户</th>" in page
    cli("report", "--all", "--month", "2026-10", "--output", "x.pdf", code=2)
    cli("report", "--month", "2026-10", code=2)  # nobody named
    assert "--customer: no customer 'nobody'" in cli(
        "report", "--customer", "nobody", "--month", "2026-10", code=2).output
    assert "--month: month must be YYYY-MM" in cli(
        "report", "--customer", "hsbank", "--month", "October", code=2).output


def test_issue_then_mark_issues_version_2_and_version_1_stays(cli: Any, tmp_path: Path) -> None:
    out = cli("sla", "issue", "--month", "2026-10", "--customer", "hsbank").stdout
    assert re.search(r"issued customer hsbank 2026-10 version 1 \(report \d+\)", out), out
    assert "unchanged (version 1 stands)" in cli(
        "sla", "issue", "--month", "2026-10", "--customer", "hsbank").stdout
    assert "not issued (the month is not over)" in cli(
        "sla", "issue", "--month", "2026-12", "--customer", "hsbank").stdout

    reason = "客户机房断电 power cut at the customer's site"
    out = cli("sla", "mark", "HSB-L3VPN-0001", "--start", "2026-10-10T10:00:00+08:00",
              "--end", "2026-10-10T10:30:00+08:00", "--reason", reason, "--by", "am.chen").stdout
    mark_id = int(re.search(r"mark (\d+) on HSB-L3VPN-0001 by am.chen", out).group(1))
    assert "issued customer hsbank 2026-10 version 2" in out
    assert "--end: the end must be after the start" in cli(
        "sla", "mark", "HSB-L3VPN-0001", "--start", "2026-10-10T10:30:00+08:00", "--end",
        "2026-10-10T10:00:00+08:00", "--reason", "x", "--by", "am.chen", code=2).output
    assert "CIRCUIT: no circuit 'NOPE'" in cli(
        "sla", "mark", "NOPE", "--start", "2026-10-10T10:00:00+08:00", "--end",
        "2026-10-10T10:30:00+08:00", "--reason", "x", "--by", "am.chen", code=2).output
    marks = cli("sla", "marks", "HSB-L3VPN-0001", "--month", "2026-10").stdout
    assert f"{mark_id:>6} 2026-10-10 02:00:00+00:00 - 2026-10-10 02:30:00+00:00" in marks
    assert reason in marks

    listed = cli("sla", "reports", "--customer", "hsbank").stdout.splitlines()
    assert [line.split()[1:5] for line in listed[1:]] == [
        ["customer", "hsbank", "2026-10", "2"], ["customer", "hsbank", "2026-10", "1"]]
    assert "customer-caused time marked on circuit HSB-L3VPN-0001" in listed[1]

    first = cli("report", "--customer", "hsbank", "--month", "2026-10", "--format", "json",
                "--version", "1", "--output", str(tmp_path / "v1.json"))
    assert "issued version 1" in first.stderr
    latest = cli("report", "--customer", "hsbank", "--month", "2026-10", "--format", "json",
                 "--output", str(tmp_path / "v2.json"))
    assert "issued version 2" in latest.stderr
    v1 = json.loads((tmp_path / "v1.json").read_text("utf-8"))
    v2 = json.loads((tmp_path / "v2.json").read_text("utf-8"))
    one, two = (v["figures"]["circuits"]["HSB-L3VPN-0001"] for v in (v1, v2))
    assert (one["down_s"], one["availability_pct"], one["credit"]["amount"]) == (
        "2700.000000", "99.899193", "21600.00")
    # 15 minutes down of 2,676,600 s counted: 99.966375 %, credit 10 %
    assert (two["down_s"], two["excluded_s"], two["availability_pct"]) == (
        "900.000000", "1800.000000", "99.966375")
    assert two["credit"] == {"step": "below 99.995 %", "credit_pct": "10",
                             "amount": "3600.00", "currency": "CNY"}
    assert (v1["issued"]["version"], v2["issued"]["version"]) == (1, 2)
    assert v1["issued"]["difference"] is None and v2["issued"]["reason"].endswith(reason)
    summary = v2["issued"]["difference"]["summary"]
    assert summary["down_s"] == {"before": "2700.000000", "after": "900.000000"}
    cli("report", "--customer", "hsbank", "--month", "2026-10", "--version", "3", code=2)

    # the issued statements recompute, and the v2 page states the difference and the mark
    assert "every figure matches" in cli("sla", "compute", str(tmp_path / "v2.json")).stdout
    page = render.report_html(v2, language="en")
    assert "Difference from version 1" in page
    assert str(markupsafe.escape(reason)) in page
    assert "45.00 min" in page and "15.00 min" in page and "Version" in page

    out = cli("sla", "withdraw", str(mark_id), "--reason", "the site had power",
              "--by", "am.chen").stdout
    assert "withdrawn by am.chen" in out and "version 3" in out
    assert "withdrawn" in cli("sla", "marks", "HSB-L3VPN-0001", "--month", "2026-10").stdout
    assert f"no customer-caused mark {mark_id + 1000}" in cli(
        "sla", "withdraw", str(mark_id + 1000), "--reason", "x", "--by", "am.chen",
        code=2).output


def test_figures_show_the_month_to_date_and_the_budget_left(cli: Any) -> None:
    out = cli("sla", "figures", "--customer", "hsbank").stdout
    lines = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert set(lines) >= {"HSB-L3VPN-0001", "HSB-L3VPN-0002"}
    # nothing went down this month: 100 %, the budget untouched
    assert "100.0000 %" in lines["HSB-L3VPN-0001"] and "0.0 %" in lines["HSB-L3VPN-0001"]
    october_figures = cli("sla", "figures", "--customer", "hsbank", "--month", "2026-10").stdout
    line = next(x for x in october_figures.splitlines() if x.startswith("HSB-L3VPN-0001"))
    # the budget of 0.005 % of 2,678,400 s is 133.92 s = 2.232 min; 45 min used
    assert "99.8991 %" in line and "-42.77 min" in line, line


def test_figures_of_any_past_period(cli: Any) -> None:
    # a day around the cut: 45 minutes down of 24 hours = 1 - 2,700 / 86,400
    # = 83,700 / 86,400 = 96.875 % exactly
    start = CUT.replace(hour=0, minute=0)
    out = cli("sla", "figures", "--customer", "hsbank", "--from", start.isoformat(),
              "--to", (start + timedelta(days=1)).isoformat()).stdout
    line = next(x for x in out.splitlines() if x.startswith("HSB-L3VPN-0001"))
    assert "96.8750 %" in line and "45.00 min" in line, line
    assert out.splitlines()[0].startswith(f"{start:%Y-%m-%d} 00:00:00 UTC to ")
    cli("sla", "figures", "--from", start.isoformat(), "--month", "2026-10", code=2)
    cli("sla", "figures", "--to", start.isoformat(), code=2)
    cli("sla", "figures", "--from", start.isoformat(), "--to", start.isoformat(), code=2)


@needs_poppler
@needs_cjk_font
def test_the_pdf_has_the_chinese_name_as_text_and_looks_right(cli: Any, tmp_path: Path) -> None:
    cli("sla", "issue", "--month", "2026-10", "--customer", "hsbank")
    cli("sla", "mark", "HSB-L3VPN-0001", "--start", "2026-10-10T10:00:00+08:00",
        "--end", "2026-10-10T10:30:00+08:00", "--reason", "客户机房断电 customer's power cut",
        "--by", "am.chen")
    pdf = tmp_path / "hsbank.pdf"
    cli("report", "--customer", "hsbank", "--month", "2026-10", "--output", str(pdf))
    assert pdf.read_bytes().startswith(b"%PDF-")
    text = text_of_pdf(pdf)
    for expected in (HSBANK, "月度SLA报告", "99.9663 %", "客户机房断电", "3600.00 CNY",
                     "keyline sla compute"):
        assert expected in text, expected
    subprocess.run(["pdftoppm", "-r", "50", "-png", "-f", "1", "-l", "1", "-singlefile",
                    str(pdf), str(tmp_path / "page1")], check=True)
    png = tmp_path / "page1.png"
    assert png.stat().st_size > 5_000
    if ARTEFACTS.parent.is_dir():
        ARTEFACTS.mkdir(exist_ok=True)
        shutil.copyfile(png, ARTEFACTS / "sla-report-page1.png")
        shutil.copyfile(pdf, ARTEFACTS / "sla-report.pdf")
    print(f"page 1 of the report: {png}")


# --- the e-mail of an issued report ------------------------------------------------------------


@needs_cjk_font
def test_an_issued_reports_email_carries_its_pdf_and_csv(cli: Any, db: Database,
                                                         tmp_path: Path) -> None:
    from sla.notify import Notifier
    from store import outbox
    from tests.test_sla_notify import MailServer, settings_for

    cli("sla", "issue", "--month", "2026-10", "--customer", "hsbank")
    with db.pool.connection() as conn:
        payload, language = conn.execute(
            """SELECT payload, language FROM notification_outbox
                WHERE payload->>'kind' = 'sla_report'""").fetchone()
        # a notification naming a report that is not there: retried, never sent bare
        missing = outbox.enqueue(conn, "email", "audit@hsbank.example", "report", "report",
                                 {"kind": "sla_report", "report_id": 987654,
                                  "attachments": ["pdf", "csv"]}, "sla-report:missing")
    assert payload["attachments"] == ["pdf", "csv"] and language == "zh_CN"
    mail = MailServer().start()
    try:
        done = Notifier(db.pool, settings_for(mail=mail)).run_once()
    finally:
        mail.stop()
    assert (done.sent, done.retried) == (1, 1)
    with db.pool.connection() as conn:
        bare = outbox.get(conn, missing)
    assert bare.state == "pending" and "SLA report 987654: no such issued report" in (
        bare.last_error or "")
    assert len(mail.messages) == 1
    message = mail.messages[0]
    assert message["To"] == "noc@hsbank.example"
    assert "华盛银行" in message["Subject"]
    assert "可用率" in message.get_body(("plain",)).get_content()
    files = {part.get_filename(): part for part in message.iter_attachments()}
    assert sorted(files) == ["sla-report-hsbank-2026-10-v1-outages.csv",
                             "sla-report-hsbank-2026-10-v1.csv",
                             "sla-report-hsbank-2026-10-v1.pdf"]
    pdf = files["sla-report-hsbank-2026-10-v1.pdf"]
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_content().startswith(b"%PDF-")
    table = files["sla-report-hsbank-2026-10-v1.csv"].get_content()
    table = table.decode("utf-8") if isinstance(table, bytes) else table
    rows = list(csv.DictReader(io.StringIO(table.lstrip("\ufeff"))))
    assert {r["circuit"]: r["availability_pct"] for r in rows}["HSB-L3VPN-0001"] == "99.899193"
    if shutil.which("pdftotext"):
        (tmp_path / "mailed.pdf").write_bytes(pdf.get_content())
        assert HSBANK in text_of_pdf(tmp_path / "mailed.pdf")
