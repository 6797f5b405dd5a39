"""PDF of an SLA report: the report's HTML rendered by WeasyPrint, offline, with CJK fonts.

The PDF is the portal's report page printed, not a second layout: `pdf_of_html` takes the
HTML the report template produced and lays it out with WeasyPrint (Pango for text, so
fontconfig chooses the fonts). A customer's name is often Chinese, and a PDF without a font
that has those glyphs shows empty boxes, which then is issued, immutable, and e-mailed. So a
base stylesheet names a Latin family first and the CJK families after it
(`FONT_FAMILY_CSS`; a template may use the same list), `cjk_font_available` asks fontconfig
which CJK family is installed, and rendering HTML that contains CJK text without one is an
error that says how to install it (`python3 dev.py run` as root installs fonts-wqy-zenhei,
lab/debian-packages.txt). Rendering never reaches the network: WeasyPrint fetches images,
stylesheets and fonts through a URL fetcher, and ours serves only `data:` URLs and files
under the portal's static folder; any other URL (http, https, ftp, a file elsewhere) is
logged and refused, and the PDF is made without it. The report itself, one template for the
portal page, the PDF and the CSV beside it, is the second half of this module (`report_html`,
`report_csv`, `report_pdf`).
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
import zoneinfo
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from sla.messages import KIND_ZH

log = logging.getLogger(__name__)

# The portal's static files (style sheets, images) a report may use; found beside this
# package rather than by importing portal, which sits above sla.
STATIC_DIR = Path(__file__).resolve().parent.parent / "portal" / "static"

# Installed CJK families, the preferred first: WenQuanYi Zen Hei is what lab/
# debian-packages.txt installs (17 MB); Noto / Source Han are the usual ones elsewhere.
CJK_FAMILIES = (
    "WenQuanYi Zen Hei",
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "Noto Sans SC",
    "Droid Sans Fallback",
)
# Latin first so that digits and Latin names keep the Latin face; Pango falls through to the
# CJK family for the glyphs the Latin one lacks.
FONT_FAMILY_CSS = ", ".join(
    ['"DejaVu Sans"', '"Liberation Sans"', "Arial"]
    + [f'"{family}"' for family in CJK_FAMILIES]
    + ["sans-serif"]
)
# A user stylesheet: the template's own rules (author origin) take precedence over it.
BASE_CSS = f"html {{ font-family: {FONT_FAMILY_CSS}; }}"

# Han, kana, Hangul, CJK punctuation and full-width forms: text that needs a CJK font.
_CJK_TEXT = re.compile(
    "[\u2e80-\u2fdf\u3000-\u30ff\u3100-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0003134f]"
)

CJK_FONT_MISSING = (
    "no CJK font is installed (fontconfig lists none for :lang=zh), so Chinese text in the "
    "PDF would print as empty boxes; install one: `python3 dev.py run` as root installs "
    "fonts-wqy-zenhei (lab/debian-packages.txt), or `apt-get install fonts-wqy-zenhei`"
)


class RenderError(RuntimeError):
    """The PDF cannot be made as it should look (a font or a library is missing)."""


@functools.lru_cache(maxsize=1)
def cjk_font_available() -> str | None:
    """The CJK font family fontconfig offers for Chinese (a preferred one if several), or None
    when there is none or fontconfig's `fc-list` is not installed. Cached for the process:
    call `cjk_font_available.cache_clear()` after installing a font."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        log.warning("fc-list (Debian package fontconfig) is missing: cannot find a CJK font")
        return None
    result = subprocess.run(
        [fc_list, ":lang=zh", "family"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        log.warning("fc-list :lang=zh failed (%s): %s", result.returncode, result.stderr.strip())
        return None
    # One line per font: its family names, comma-separated, the English one first.
    families = {
        name.strip()
        for line in result.stdout.splitlines()
        for name in line.split(",")
        if name.strip()
    }
    for family in CJK_FAMILIES:
        if family in families:
            return family
    first_names = sorted(
        filter(None, (line.split(",")[0].strip() for line in result.stdout.splitlines()))
    )
    return first_names[0] if first_names else None


def has_cjk_text(text: str) -> bool:
    """Whether `text` has characters only a CJK font can draw."""
    return _CJK_TEXT.search(text) is not None


def pdf_of_html(html: str, *, base_url: str | None = None) -> bytes:
    """The PDF of `html`, laid out for print by WeasyPrint. Relative URLs resolve against
    `base_url` (e.g. `STATIC_DIR.as_uri() + "/"`); only `data:` URLs and files under
    STATIC_DIR are fetched, anything else is logged and left out. Raises RenderError when
    the HTML has CJK text and no CJK font is installed, or when WeasyPrint cannot load Pango.
    """
    if has_cjk_text(html) and cjk_font_available() is None:
        raise RenderError(CJK_FONT_MISSING)
    weasyprint = _weasyprint()
    fetcher = _local_fetcher_class()()
    stylesheet = weasyprint.CSS(string=BASE_CSS, url_fetcher=fetcher)
    document = weasyprint.HTML(string=html, base_url=base_url, url_fetcher=fetcher)
    pdf: bytes = document.write_pdf(stylesheets=[stylesheet])
    return pdf


def _weasyprint() -> Any:
    # Imported on first use: loading it opens Pango through cffi (slow, and an OSError where
    # Debian's libpango is missing), which the CLI's other commands should not pay for.
    try:
        import weasyprint
    except OSError as error:
        raise RenderError(
            f"WeasyPrint cannot load Pango ({error}): install the Debian packages "
            "libpango-1.0-0 and libpangoft2-1.0-0 (`python3 dev.py run` as root does)"
        ) from error
    return weasyprint


@functools.cache
def _local_fetcher_class() -> type:
    """WeasyPrint's URLFetcher, narrowed to data: URLs and STATIC_DIR's files. Built on first
    use because its base class comes with the lazily imported weasyprint."""
    base = _weasyprint().URLFetcher

    class LocalOnlyFetcher(base):  # type: ignore[misc, valid-type]
        def fetch(self, url: str, headers: dict[str, str] | None = None) -> Any:
            reason = _refusal(url)
            if reason is not None:
                parts = urllib.parse.urlsplit(url)
                # scheme, host and path only: a query may carry a token
                shown = urllib.parse.urlunsplit((*parts[:3], "", ""))[:200]
                log.warning("PDF rendering refused to fetch %s: %s", shown, reason)
                raise ValueError(f"refused ({reason})")
            return super().fetch(url, headers)

    return LocalOnlyFetcher


def _refusal(url: str) -> str | None:
    """Why `url` may not be fetched while rendering, or None when it may."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "data":
        return None
    if scheme != "file":
        return "only data: URLs and the portal's static files are fetched, never the network"
    # file://host/... would make urllib look the host up
    if parts.netloc not in ("", "localhost"):
        return "a file URL naming another host"
    path = Path(urllib.request.url2pathname(parts.path)).resolve()
    if not path.is_relative_to(STATIC_DIR.resolve()):
        return f"a file outside {STATIC_DIR}"
    return None


# --- the report: one template for the page, the PDF and the e-mail ---------------------------
#
# `report_html` renders templates/report.html from a statement alone (sla/statement.py: its
# inputs and `figures`), so the portal page (standalone=False: the body only, inside the
# portal's layout), the PDF (`report_pdf`) and the e-mailed copy are the same markup and can
# disagree with neither each other nor `keyline sla compute`. The template has no `style`
# attribute and no inline script: the portal's Content-Security-Policy allows neither, so the
# style sheet is a file (templates/report.css, `report_css()`: inlined into a standalone page,
# served by the portal for its page) and every drawn size is an SVG attribute. Figures are
# shown as the statement holds them, never rounded up: availability cut to four decimals (as
# sla.availability.percent_text), downtime in minutes rounded *up* to the hundredth, so no
# figure reads better than it is. Times are in each circuit's contract time zone, named.

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
LANGUAGES = ("zh_CN", "en")
CSV_PARTS = ("circuits", "outages")

# The report's words, both languages side by side (as sla/messages.py keeps a notification's):
# a report leaves the system as a PDF, so it is worded when it is rendered, not by the portal's
# gettext catalog.
LABELS: dict[str, dict[str, str]] = {
    "title": {"en": "Monthly SLA report", "zh_CN": "月度SLA报告"},
    "customer": {"en": "Customer", "zh_CN": "客户"},
    "account_manager": {"en": "Account manager", "zh_CN": "客户经理"},
    "network": {"en": "Whole network", "zh_CN": "全网"},
    "month": {"en": "Month", "zh_CN": "月份"},
    "version": {"en": "Version", "zh_CN": "版本"},
    "issued_at": {"en": "Issued", "zh_CN": "发布时间"},
    "not_issued": {"en": "Not issued: figures as of", "zh_CN": "未发布：数据截至"},
    "month_to_date": {"en": "month to date", "zh_CN": "本月至今"},
    "reason": {"en": "Why this version", "zh_CN": "本版原因"},
    "mark_reason": {"en": "Reason", "zh_CN": "原因"},
    "difference": {"en": "Difference from version", "zh_CN": "与第"},
    "difference_tail": {"en": "", "zh_CN": "版的差异"},
    "figure": {"en": "Figure", "zh_CN": "指标"},
    "before": {"en": "Before", "zh_CN": "更正前"},
    "after": {"en": "After", "zh_CN": "更正后"},
    "changes_count": {"en": "{n} figures changed in all: the statement lists each (its"
                            " issued.difference).",
                      "zh_CN": "共 {n} 项数据变化，逐项列于声明文件（issued.difference）。"},
    "summary": {"en": "Summary", "zh_CN": "概要"},
    "availability": {"en": "Availability", "zh_CN": "可用率"},
    "target": {"en": "Target", "zh_CN": "目标"},
    "per_circuit": {"en": "per circuit", "zh_CN": "按电路"},
    "met": {"en": "met", "zh_CN": "达标"},
    "not_met": {"en": "not met", "zh_CN": "未达标"},
    "no_figure": {"en": "no counted time", "zh_CN": "无计入时间"},
    "downtime": {"en": "Downtime", "zh_CN": "中断时长"},
    "outages": {"en": "Outages", "zh_CN": "中断次数"},
    "longest_outage": {"en": "Longest outage", "zh_CN": "最长中断"},
    "monitoring_gap": {"en": "Monitoring gap", "zh_CN": "监控缺失"},
    "excluded": {"en": "Excluded (maintenance, customer-caused)",
                 "zh_CN": "不计时间（维护、客户原因）"},
    "circuits_below": {"en": "Circuits below target", "zh_CN": "未达标电路"},
    "mtta": {"en": "MTTA (mean time to acknowledge)", "zh_CN": "平均响应时间（MTTA）"},
    "mttr": {"en": "MTTR (mean time to resolve)", "zh_CN": "平均修复时间（MTTR）"},
    "tickets_opened": {"en": "Tickets opened", "zh_CN": "工单数"},
    "response_breached": {"en": "Response deadline breached", "zh_CN": "响应超时"},
    "resolution_breached": {"en": "Resolution deadline breached", "zh_CN": "修复超时"},
    "credits": {"en": "Credits", "zh_CN": "服务补偿"},
    "none": {"en": "none", "zh_CN": "无"},
    "min": {"en": "min", "zh_CN": "分钟"},
    "circuits": {"en": "Circuits", "zh_CN": "电路"},
    "circuit": {"en": "Circuit", "zh_CN": "电路"},
    "contract": {"en": "Contract", "zh_CN": "合同"},
    "credit": {"en": "Credit", "zh_CN": "补偿"},
    "timeline": {"en": "Outage timeline", "zh_CN": "中断时间轴"},
    "legend_up": {"en": "up", "zh_CN": "正常"},
    "legend_down": {"en": "outage", "zh_CN": "中断"},
    "legend_excluded": {"en": "maintenance / customer-caused", "zh_CN": "维护／客户原因"},
    "legend_unknown": {"en": "unknown (monitoring gap)", "zh_CN": "未知（监控缺失）"},
    "legend_degraded": {"en": "degraded (not counted down)", "zh_CN": "劣化（不计中断）"},
    "legend_future": {"en": "not yet", "zh_CN": "尚未到来"},
    "times_in": {"en": "times in", "zh_CN": "时区"},
    "outage_list": {"en": "Outages", "zh_CN": "中断记录"},
    "start": {"en": "Start", "zh_CN": "开始"},
    "end": {"en": "End", "zh_CN": "结束"},
    "ongoing": {"en": "ongoing", "zh_CN": "仍在中断"},
    "duration": {"en": "Duration", "zh_CN": "持续时长"},
    "cause": {"en": "Cause", "zh_CN": "原因"},
    "tickets": {"en": "Tickets", "zh_CN": "工单"},
    "no_outages": {"en": "No outage this month.", "zh_CN": "本月无中断。"},
    "ticket_list": {"en": "Tickets", "zh_CN": "工单记录"},
    "ticket": {"en": "Ticket", "zh_CN": "工单"},
    "kind": {"en": "Kind", "zh_CN": "类型"},
    "priority": {"en": "Priority", "zh_CN": "优先级"},
    "opened": {"en": "Opened", "zh_CN": "受理"},
    "acknowledged": {"en": "Acknowledged", "zh_CN": "响应"},
    "resolved": {"en": "Resolved", "zh_CN": "解决"},
    "breached": {"en": "Breached", "zh_CN": "超时"},
    "response": {"en": "response", "zh_CN": "响应"},
    "resolution": {"en": "resolution", "zh_CN": "修复"},
    "no_tickets": {"en": "No ticket this month.", "zh_CN": "本月无工单。"},
    "marks": {"en": "Customer-caused time (excluded)", "zh_CN": "客户原因时间（不计入）"},
    "no_marks": {"en": "No time was marked customer-caused.",
                 "zh_CN": "本月无标记为客户原因的时间。"},
    "measurements": {"en": "Latency, jitter and loss", "zh_CN": "时延、抖动与丢包"},
    "metric": {"en": "Metric", "zh_CN": "指标"},
    "mean": {"en": "Mean", "zh_CN": "平均"},
    "worst_hour": {"en": "Worst hour", "zh_CN": "最差小时"},
    "maximum": {"en": "Maximum", "zh_CN": "最大"},
    "samples": {"en": "Samples", "zh_CN": "样本数"},
    "not_measured": {"en": "not measured", "zh_CN": "未测量"},
    "no_target": {"en": "no target", "zh_CN": "无目标"},
    "rtt_ms": {"en": "Latency (ms)", "zh_CN": "时延（毫秒）"},
    "jitter_ms": {"en": "Jitter (ms)", "zh_CN": "抖动（毫秒）"},
    "loss_pct": {"en": "Loss (%)", "zh_CN": "丢包率（%）"},
    "dropped": {"en": "Samples dropped", "zh_CN": "样本丢失"},
    "dropped_note": {
        "en": "The collector dropped measurement samples in these ranges (it was overloaded or"
              " the store was away): latency, jitter and loss of that time are incomplete.",
        "zh_CN": "以下时段采集器丢失了测量样本（过载或数据库不可用），该时段的时延、抖动与丢包"
                 "数据不完整。"},
    "rows": {"en": "rows", "zh_CN": "条"},
    "no_drops": {"en": "No samples were dropped.", "zh_CN": "无样本丢失。"},
    "status_down": {"en": "down", "zh_CN": "中断"},
    "status_degraded": {"en": "degraded", "zh_CN": "劣化"},
    "status_unknown": {"en": "unknown", "zh_CN": "未知"},
    "footer": {
        "en": "Every figure of this report is recomputable from its statement file (the"
              " report's JSON export: inputs and figures) with: keyline sla compute FILE, or"
              " by hand as docs/sla-statement.md describes. Availability = up / (up + down)"
              " over scheduled time, maintenance and customer-caused time excluded; shown"
              " rounded down, downtime rounded up.",
        "zh_CN": "本报告的全部数据可由其声明文件（报告的JSON导出，含输入与结果）通过命令"
                 " keyline sla compute 文件 复核，或按 docs/sla-statement.md 手工计算。"
                 "可用率 = 正常时间 ÷（正常时间 + 中断时间），按服务时间计算，维护与客户原因"
                 "时间不计入；可用率向下取整显示，中断时长向上取整显示。"},
}


def labels(language: str) -> dict[str, str]:
    """The report's words in `language` (zh_CN or en)."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, got {language!r}")
    return {key: words[language] for key, words in LABELS.items()}


def pct_text(value: str | None) -> str:
    """A statement's availability ("99.993750", six decimals, rounded down) shown with four,
    cut rather than rounded (99.99499 shows 99.9949, as percent_text does)."""
    if value is None:
        return "—"
    whole, _, decimals = str(value).partition(".")
    return f"{whole}.{(decimals + '0000')[:4]}"


def minutes_text(seconds: str | None, *, up: bool = True) -> str:
    """A statement's seconds ("2700.000000") as minutes with two decimals: rounded up by
    default (a downtime never reads shorter than it was)."""
    if seconds is None:
        return "—"
    minutes = Decimal(str(seconds)) / 60
    return str(minutes.quantize(Decimal("0.01"), rounding=ROUND_CEILING if up else ROUND_FLOOR))


def local_text(instant: str | None, zone: str, *, seconds: bool = False) -> str:
    """An instant of the statement (ISO 8601, UTC) in `zone`, "2026-10-12 10:00"."""
    if instant is None:
        return "—"
    moment = datetime.fromisoformat(instant).astimezone(zoneinfo.ZoneInfo(zone))
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _zone_label(zone: str, at: str | None) -> str:
    """"Asia/Shanghai (UTC+08:00)" at the instant given."""
    moment = datetime.fromisoformat(at) if at else datetime.now(UTC)
    offset = moment.astimezone(zoneinfo.ZoneInfo(zone)).strftime("%z")
    return f"{zone} (UTC{offset[:3]}:{offset[3:]})"


def issued_statement(report: Any) -> dict[str, Any]:
    """An issued report's statement (store.sla.ReportRow) with its `issued` block (version,
    issued_at, reason, difference), which the heading of the report shows. `keyline sla
    compute` ignores the block: it checks the figures against the inputs."""
    return {**report.statement, "issued": {
        "report_id": report.id, "kind": report.kind, "subject": report.subject,
        "version": report.version, "issued_at": report.issued_at.astimezone(UTC).isoformat(),
        "issued_by": report.issued_by, "reason": report.reason,
        "difference": report.difference}}


def report_file_name(statement: Mapping[str, Any], extension: str, *,
                     part: str | None = None) -> str:
    """"sla-report-hsbank-2026-10-v2.pdf": subject, month, version when issued (a safe file
    name: anything but letters, digits, dot, dash and underscore becomes "_")."""
    subject = statement.get("subject") or {}
    issued = statement.get("issued") or {}
    name = "-".join(filter(None, [
        "sla-report", str(subject.get("key") or subject.get("kind") or "network"),
        str(statement.get("month") or ""),
        f"v{issued['version']}" if issued.get("version") else "", part or ""]))
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) + "." + extension


# The timeline's colours (SVG attributes: the portal's CSP forbids inline styles).
COLOURS = {"up": "#81c784", "down": "#d32f2f", "excluded": "#616161", "unknown": "#ffb300",
           "degraded": "#fdd835", "future": "#e6e6e6", "target": "#263238"}
TIMELINE_UNITS = 1000  # the SVG's width in user units
MIN_SEGMENT_UNITS = 4  # a 45-minute outage in a month is 1 unit: drawn at least this wide


def _timeline(figures: Mapping[str, Any], zone: str) -> dict[str, Any]:
    """The month as a bar of TIMELINE_UNITS: segments (x, width, colour kind) of the non-up
    intervals, the part not yet measured, and a tick per local day."""
    start = datetime.fromisoformat(figures["period"]["start"])
    end = datetime.fromisoformat(figures["period"]["end"])
    measured = datetime.fromisoformat(figures["measured_until"])
    span_s = (end - start).total_seconds()

    def x(moment: datetime) -> float:
        return round(TIMELINE_UNITS * (moment - start).total_seconds() / span_s, 2)

    segments = []
    for interval in figures.get("intervals") or ():
        first = x(datetime.fromisoformat(interval["start"]))
        last = x(datetime.fromisoformat(interval["end"]))
        if interval["counted_as"] == "down":
            kind = "down"
        elif interval["status"] in ("maintenance", "customer_caused"):
            kind = "excluded"
        elif interval["status"] == "unknown":
            kind = "unknown"
        elif interval["status"] == "degraded":
            kind = "degraded"
        else:
            continue
        width = max(last - first, MIN_SEGMENT_UNITS)
        segments.append({"x": min(first, TIMELINE_UNITS - width), "width": width, "kind": kind,
                         "colour": COLOURS[kind]})
    # the outages on top, so that a short one inside a long gap stays visible
    segments.sort(key=lambda s: s["kind"] == "down")
    ticks = []
    zone_info = zoneinfo.ZoneInfo(zone)
    day = start.astimezone(zone_info).date()
    while True:
        midnight = datetime.combine(day, datetime.min.time(), zone_info)
        if midnight >= end:
            break
        if midnight >= start:
            ticks.append({"x": x(midnight), "day": day.day,
                          "label": day.day == 1 or (day.day % 5 == 0 and day.day < 30)})
        day += timedelta(days=1)
    future = x(measured) if measured < end else None
    return {"segments": segments, "ticks": ticks, "future_x": future,
            "future_width": TIMELINE_UNITS - future if future is not None else 0}


def _bar(availability: str | None, target: str) -> dict[str, Any]:
    """An availability bar on a scale from `floor` to 100 %, where the floor leaves the
    target at nine tenths of the bar (a 99.99 % target: 99.9 to 100 %), so that the
    difference between 99.95 and 99.99 shows."""
    target_value = Decimal(target)
    floor = max(Decimal(0), 100 - 10 * (100 - target_value))
    scale = 100 - floor or Decimal(1)

    def at(value: Decimal) -> float:
        return float(max(Decimal(0), min(Decimal(1), (value - floor) / scale)) * 200)

    value = Decimal(availability) if availability is not None else None
    return {"width": at(value) if value is not None else 0, "target_x": at(target_value),
            "floor": format(floor.normalize(), "f"),
            "colour": COLOURS["up"] if value is not None and value >= target_value
            else COLOURS["down"], "below_floor": value is not None and value < floor}


def _metrics(circuit_figures: Mapping[str, Any], terms: Mapping[str, Any]) -> list[dict]:
    """Latency, jitter and loss of a circuit against its contract's targets ("not measured"
    where there are no samples)."""
    rows = []
    measured = circuit_figures.get("measurements") or {}
    for metric, target_name in (("rtt_ms", "latency_target_ms"),
                                ("jitter_ms", "jitter_target_ms"),
                                ("loss_pct", "loss_target_pct")):
        found = measured.get(metric) or {}
        target = terms.get(target_name)
        rows.append({
            "metric": metric, "target": "—" if target is None else f"{target:g}",
            "measured": bool(found.get("samples")), "samples": found.get("samples") or 0,
            "mean": _number(found.get("mean")), "worst": _number(found.get("worst_hour_mean")),
            "max": _number(found.get("max")), "met": found.get("target_met")})
    return rows


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}".rstrip("0").rstrip(".")


def _zone_of(statement: Mapping[str, Any], circuit: Mapping[str, Any]) -> str:
    contract = (statement.get("contracts") or {}).get(circuit.get("contract")) or {}
    return str((contract.get("calendar") or {}).get("timezone") or "UTC")


def report_view(statement: Mapping[str, Any], language: str = "zh_CN") -> dict[str, Any]:
    """What templates/report.html shows, from the statement alone: its texts in `language`,
    times in each circuit's zone, the timeline's and bars' geometry."""
    words = labels(language)
    figures = statement.get("figures")
    if not isinstance(figures, Mapping):
        raise ValueError("the statement has no figures: build it with sla.reports."
                         "build_statement or recompute them with `keyline sla compute`")
    subject = statement.get("subject") or {"kind": "network"}
    kind = subject.get("kind") or "network"
    contracts = statement.get("contracts") or {}
    zones = [_zone_of(statement, c) for c in statement.get("circuits") or ()]
    # tickets may span circuits of several zones: shown in the zone most circuits use
    main_zone = max(set(zones), key=zones.count) if zones else "UTC"
    customers = {c.get("customer") for c in statement.get("circuits") or ()}
    if kind == "customer":
        total = figures["customers"].get(subject.get("key")) or figures["total"]
        tickets = total.get("tickets") or figures["tickets"]
    else:
        total, tickets = figures["total"], figures["tickets"]
    circuits = []
    for circuit in statement.get("circuits") or ():
        key = circuit["key"]
        zone = _zone_of(statement, circuit)
        f = figures["circuits"][key]
        terms = contracts.get(circuit["contract"]) or {}
        credit = f.get("credit")
        circuits.append({
            "key": key, "name": circuit.get("name") or key, "customer": circuit.get("customer"),
            "contract": circuit["contract"], "zone": zone,
            "zone_label": _zone_label(zone, f["period"]["start"]),
            "availability": pct_text(f.get("availability_pct")),
            "target": f["target_pct"], "met": f.get("target_met"),
            "downtime": minutes_text(f["down_s"]), "outage_count": f["outage_count"],
            "longest": minutes_text(f["longest_outage_s"]),
            "gap": minutes_text(f["monitoring_gap_s"]),
            "excluded": minutes_text(f["excluded_s"], up=False),
            "budget_left": minutes_text(f.get("error_budget_left_s"), up=False),
            "credit": None if credit is None else {
                "step": credit["step"], "pct": credit["credit_pct"],
                "amount": credit["amount"], "currency": credit["currency"]},
            "bar": _bar(f.get("availability_pct"), f["target_pct"]),
            "timeline": _timeline(f, zone),
            "outages": [{
                "start": local_text(o["start"], zone), "open": o["open"],
                "end": local_text(o["end"], zone),
                "downtime": minutes_text(o["downtime_s"]),
                "duration": minutes_text(o["duration_s"]),
                "states": [words.get(f"status_{s}", s) for s in o["states"]],
                "causes": o["causes"], "tickets": o["ticket_ids"]} for o in f["outages"]],
            "marks": [{"start": local_text(m["start"], zone), "end": local_text(m["end"], zone),
                       "minutes": minutes_text(str((datetime.fromisoformat(m["end"])
                                                    - datetime.fromisoformat(m["start"]))
                                                   .total_seconds()), up=False),
                       "reason": m.get("reason") or "", "id": m.get("id")}
                      for m in circuit.get("customer_caused") or ()],
            "metrics": _metrics(f, terms),
            "dropped": [{"first": local_text(d.get("first"), zone),
                         "last": local_text(d.get("last"), zone), "rows": d.get("rows")}
                        for d in circuit.get("samples_dropped") or ()],
        })
    ticket_rows = [{
        "id": t["id"], "priority": t.get("priority"),
        "kind": KIND_ZH.get(t.get("kind") or "", t.get("kind")) if language == "zh_CN"
        else t.get("kind"),
        "opened": local_text(t.get("opened_at"), main_zone),
        "acknowledged": local_text(t.get("acknowledged_at"), main_zone),
        "resolved": local_text(t.get("resolved_at"), main_zone),
        "breached": [words[name] for name in ("response", "resolution")
                     if t.get(f"{name}_breached")],
        "circuits": t.get("circuits") or []} for t in statement.get("tickets") or ()]
    targets = {c["target"] for c in circuits}
    issued = statement.get("issued")
    issued_view = None
    if issued:
        difference = issued.get("difference") or {}
        changes = list(difference.get("changes") or ())
        issued_view = {
            "version": issued.get("version"),
            "issued_at": local_text(issued.get("issued_at"), main_zone),
            "reason": issued.get("reason"),
            "previous": (issued.get("version") or 1) - 1,
            # in SUMMARY_LABELS' order (a jsonb column keeps no key order)
            "summary": [{"name": words.get(SUMMARY_LABELS.get(name, ""), name),
                         "before": _change_text(name, change.get("before"), words),
                         "after": _change_text(name, change.get("after"), words)}
                        for name, change in sorted(
                            (difference.get("summary") or {}).items(),
                            key=lambda item: list(SUMMARY_LABELS).index(item[0])
                            if item[0] in SUMMARY_LABELS else len(SUMMARY_LABELS))],
            "circuits": _circuit_changes(changes, words), "changes": len(changes)}
    measured_until = max((figures["circuits"][c["key"]]["measured_until"] for c in circuits),
                         default=figures.get("as_of"))
    period_end = max((figures["circuits"][c["key"]]["period"]["end"] for c in circuits),
                     default=None)
    return {
        "t": words, "language": language, "html_lang": language.replace("_", "-"),
        "kind": kind, "subject_label": words.get(kind, kind),
        "subject_name": subject.get("name") or subject.get("key") or words["network"],
        "subject_key": subject.get("key"), "month": statement.get("month"),
        "as_of": local_text(statement.get("as_of"), main_zone),
        "month_to_date": period_end is not None and measured_until is not None
        and measured_until < period_end,
        "zone": main_zone, "zone_label": _zone_label(main_zone, statement.get("as_of")),
        "several_zones": len(set(zones)) > 1,
        "measured_any": any(m["measured"] for c in circuits for m in c["metrics"]),
        "issued": issued_view, "several_customers": len(customers) > 1,
        "summary": {
            "availability": pct_text(total.get("availability_pct")),
            "target": next(iter(targets)) if len(targets) == 1 else None,
            "met": None if total.get("availability_pct") is None or len(targets) != 1
            else Decimal(total["availability_pct"]) >= Decimal(next(iter(targets))),
            "downtime": minutes_text(total["down_s"]), "outages": total["outage_count"],
            "longest": minutes_text(total["longest_outage_s"]),
            "gap": minutes_text(total["monitoring_gap_s"]),
            "excluded": minutes_text(total["excluded_s"], up=False),
            "below": total.get("circuits_below_target", 0), "circuits": total["circuits"],
            "mtta": minutes_text(tickets.get("mtta_s")),
            "mttr": minutes_text(tickets.get("mttr_s")),
            "opened": tickets.get("opened", 0),
            "response_breached": tickets.get("response_breached", 0),
            "resolution_breached": tickets.get("resolution_breached", 0),
            "credits": sorted((total.get("credits") or {}).items())},
        "circuits": circuits, "tickets": ticket_rows, "colours": COLOURS,
    }


# a difference's summary figure (sla/reports.py) -> its label
SUMMARY_LABELS = {"availability_pct": "availability", "down_s": "downtime",
                  "excluded_s": "excluded", "outage_count": "outages", "credits": "credits"}
# one changed leaf of a difference ("figures.circuits.K.down_s: the statement says '2700.0',
# recomputed '900.0'", sla.statement.differences)
_CHANGE = re.compile(r"^figures\.circuits\.(?P<key>.+?)\.(?P<name>availability_pct|down_s"
                     r"|credit(?:\.amount)?): the statement says (?P<before>.+), recomputed"
                     r" (?P<after>.+)$")


def _change_text(name: str, value: Any, words: Mapping[str, str]) -> str:
    if value is None:
        return "—"
    if name == "availability_pct":
        return f"{pct_text(value)} %"
    if name.endswith("_s"):
        return f"{minutes_text(value)} {words['min']}"
    if isinstance(value, Mapping):
        return ", ".join(f"{amount} {currency}" for currency, amount in value.items()) \
            or words["none"]
    return str(value)


def _circuit_changes(changes: list[str], words: Mapping[str, str]) -> list[dict[str, Any]]:
    """Per circuit, availability, downtime and credit before and after, from the lines of a
    difference; the other lines (intervals, budgets) stay in the statement."""
    import ast

    found: dict[str, dict[str, Any]] = {}
    for line in changes:
        match = _CHANGE.match(line)
        if match is None:
            continue
        try:
            before = ast.literal_eval(match["before"])
            after = ast.literal_eval(match["after"])
        except (ValueError, SyntaxError):
            continue
        name = match["name"]
        row = found.setdefault(match["key"], {"key": match["key"]})
        if name == "credit":  # a credit that appeared or went: None on one side
            before = before and before.get("amount")
            after = after and after.get("amount")
            name = "credit.amount"
        shown = {"availability_pct": lambda v: f"{pct_text(v)} %" if v else "—",
                 "down_s": lambda v: f"{minutes_text(v)} {words['min']}" if v else "—",
                 "credit.amount": lambda v: v or words["none"]}[name]
        row[name.replace(".amount", "")] = (shown(before), shown(after))
    return sorted(found.values(), key=lambda row: row["key"])


@functools.cache
def _environment() -> Any:
    import jinja2

    # a plain environment (the PDF and the CLI have no Flask app), autoescaped: names and
    # reasons are customers' and operators' text
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def report_css() -> str:
    """The report's style sheet (templates/report.css): inlined into a standalone report,
    served as a file by the portal for its page (its CSP allows no inline style)."""
    return (TEMPLATES_DIR / "report.css").read_text(encoding="utf-8")


def report_html(statement: Mapping[str, Any], *, language: str = "zh_CN",
                standalone: bool = True) -> str:
    """The report of a statement as HTML: a whole page with its style sheet (standalone), or
    the report's body only (`<div class="sla-report">`) for the portal's layout, which links
    report.css itself."""
    view = report_view(statement, language)
    return _environment().get_template("report.html").render(
        **view, standalone=standalone, css=report_css() if standalone else "",
        font_family=FONT_FAMILY_CSS)


def report_pdf(statement: Mapping[str, Any], *, language: str = "zh_CN") -> bytes:
    """The report as PDF: report_html laid out by WeasyPrint (pdf_of_html)."""
    return pdf_of_html(report_html(statement, language=language))


CIRCUIT_COLUMNS = (
    "customer", "circuit", "circuit_name", "contract", "time_zone", "period_start",
    "period_end", "measured_until", "scheduled_min", "up_min", "down_min", "excluded_min",
    "monitoring_gap_min", "availability_pct", "target_pct", "target_met", "outages",
    "longest_outage_min", "credit_step", "credit_pct", "credit_amount", "currency")
OUTAGE_COLUMNS = (
    "customer", "circuit", "contract", "time_zone", "start", "end", "open", "downtime_min",
    "duration_min", "states", "causes", "alarm_ids", "ticket_ids")


def _csv_minutes(seconds: str | None) -> str:
    """Exact seconds as minutes to six decimals (about 0.06 s; the statement has the exact
    seconds), for a spreadsheet to add up."""
    if seconds is None:
        return ""
    return str((Decimal(str(seconds)) / 60).quantize(Decimal("0.000001"),
                                                      rounding=ROUND_HALF_UP))


def report_csv(statement: Mapping[str, Any], part: str = "circuits") -> str:
    """The report as CSV, one table per file: `part` "circuits" (a row per circuit with its
    figures) or "outages" (a row per outage). Two files rather than two sections in one,
    because a spreadsheet filters, sorts and sums a file as one table; the e-mail and
    `keyline report --format csv` give both. Times are ISO 8601 in the circuit's contract
    time zone (with its offset, and the zone named in a column), durations in minutes.
    The text starts with a byte-order mark: Excel opens a CSV without one in the machine's
    ANSI code page (GBK on a Chinese Windows, cp1252 elsewhere) and garbles UTF-8 Chinese
    names; with it, Excel reads UTF-8, and other readers skip it."""
    if part not in CSV_PARTS:
        raise ValueError(f"part must be one of {', '.join(CSV_PARTS)}, got {part!r}")
    figures = statement.get("figures")
    if not isinstance(figures, Mapping):
        raise ValueError("the statement has no figures")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CIRCUIT_COLUMNS if part == "circuits" else OUTAGE_COLUMNS)

    def local(instant: str | None, zone: str) -> str:
        if instant is None:
            return ""
        return datetime.fromisoformat(instant).astimezone(zoneinfo.ZoneInfo(zone)).isoformat()

    for circuit in statement.get("circuits") or ():
        f = figures["circuits"][circuit["key"]]
        zone = _zone_of(statement, circuit)
        if part == "outages":
            for o in f["outages"]:
                writer.writerow([
                    circuit.get("customer"), circuit["key"], circuit["contract"], zone,
                    local(o["start"], zone), local(o["end"], zone), "yes" if o["open"] else "no",
                    _csv_minutes(o["downtime_s"]), _csv_minutes(o["duration_s"]),
                    " ".join(o["states"]), "; ".join(o["causes"]),
                    " ".join(map(str, o["alarm_ids"])), " ".join(map(str, o["ticket_ids"]))])
            continue
        credit = f.get("credit") or {}
        met = f.get("target_met")
        writer.writerow([
            circuit.get("customer"), circuit["key"], circuit.get("name") or "",
            circuit["contract"], zone, local(f["period"]["start"], zone),
            local(f["period"]["end"], zone), local(f["measured_until"], zone),
            _csv_minutes(f["scheduled_s"]), _csv_minutes(f["up_s"]), _csv_minutes(f["down_s"]),
            _csv_minutes(f["excluded_s"]), _csv_minutes(f["monitoring_gap_s"]),
            f.get("availability_pct") or "", f["target_pct"],
            "" if met is None else ("yes" if met else "no"), f["outage_count"],
            _csv_minutes(f["longest_outage_s"]), credit.get("step", ""),
            credit.get("credit_pct", ""), credit.get("amount", ""), credit.get("currency", "")])
    return "\ufeff" + out.getvalue()
