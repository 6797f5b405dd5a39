"""The words of ticket notifications, in the reader's language.

A notification is read far from the portal (a mailbox, a DingTalk group), so it is rendered
when it is queued, in the language of whoever reads it: a customer's contact in the
customer's language (`sla.customer_language`), staff in English. The portal translates its
pages from its gettext catalog at request time; a message leaves the system once, so its
two languages are kept here side by side, one template per event and language, each filled
with the ticket's facts. A customer's message names its own ticket, circuits and deadlines
only: never the NOC's incident, another customer, or an internal note.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from sla.tickets import Ticket

SUBJECTS: dict[str, dict[str, str]] = {
    "opened": {"en": "[Keyline] Ticket #{id} opened ({priority}): {title}",
               "zh_CN": "[Keyline] 工单 #{id} 已受理（{priority}）：{title}"},
    "escalated": {"en": "[Keyline] Ticket #{id} escalated: {pct}% of the {clock} time used",
                  "zh_CN": "[Keyline] 工单 #{id} 已升级：{clock_zh}时限已用 {pct}%"},
    "breached": {"en": "[Keyline] Ticket #{id}: {clock} deadline missed",
                 "zh_CN": "[Keyline] 工单 #{id}：{clock_zh}时限已超时"},
    "resolved": {"en": "[Keyline] Ticket #{id} resolved: {title}",
                 "zh_CN": "[Keyline] 工单 #{id} 已解决：{title}"},
    "reopened": {"en": "[Keyline] Ticket #{id} reopened: {title}",
                 "zh_CN": "[Keyline] 工单 #{id} 已重新打开：{title}"},
}

BODIES: dict[str, str] = {
    "en": ("Ticket #{id} ({kind}, priority {priority}) is {state}.\n"
           "Circuits: {circuits}\n"
           "Opened: {opened}\n"
           "Response due: {response_due}\n"
           "Resolution due: {resolution_due}\n"),
    "zh_CN": ("工单 #{id}（{kind_zh}，优先级 {priority}）当前状态：{state_zh}。\n"
              "电路：{circuits}\n"
              "受理时间：{opened}\n"
              "响应时限：{response_due}\n"
              "修复时限：{resolution_due}\n"),
}

STATE_ZH = {"open": "已受理", "acknowledged": "已响应", "in_progress": "处理中",
            "pending_customer": "等待客户", "resolved": "已解决", "closed": "已关闭"}
KIND_ZH = {"fault": "故障", "complaint": "投诉", "incident": "重大事件",
           "monitoring_gap": "监控缺失"}
CLOCK_ZH = {"response": "响应", "resolution": "修复"}


def render(event: str, ticket: Ticket, now: datetime, language: str, *, audience: str,
           detail: dict[str, Any] | None = None) -> tuple[str, str]:
    """(subject, body) of a ticket event's message for one reader."""
    language = language if language in BODIES else "en"
    row = ticket.row
    zone = ZoneInfo(ticket.calendar.timezone)
    figures = ticket.figures(now)

    def when(value: str | datetime | None) -> str:
        if value is None:
            return "—" if language != "en" else "none (clock stopped)"
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")

    clock = (detail or {}).get("clock", "resolution")
    facts = {"id": row.id, "priority": row.priority, "title": row.title, "kind": row.kind,
             "kind_zh": KIND_ZH.get(row.kind, row.kind), "state": row.state.replace("_", " "),
             "state_zh": STATE_ZH.get(row.state, row.state),
             "circuits": ", ".join(c.circuit_key for c in row.circuits) or "—",
             "opened": when(row.opened_at), "response_due": when(figures["response"]["due_at"]),
             "resolution_due": when(figures["resolution"]["due_at"]),
             "clock": clock, "clock_zh": CLOCK_ZH.get(clock, clock),
             "pct": f"{(detail or {}).get('level_pct', 0):g}"}
    subject = SUBJECTS[event][language].format(**facts)
    body = BODIES[language].format(**facts)
    if audience == "staff" and row.customer_key:
        body += f"Customer: {row.customer_name or row.customer_key}\n"
    return subject, body
