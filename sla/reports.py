"""SLA reports: a customer's (or an account manager's) month, built from the store, issued
once, and corrected only by a new version.

`build_statement` reads everything a month's figures need from the store: the circuits of
the subject with their contracts, each circuit's service states over its month (the month in
its contract's time zone), the maintenance windows and customer-caused marks that exclude
time, the tickets (never one merged into another), the hourly latency/jitter/loss
measurements and the ranges where samples were dropped, and writes them as a statement
(sla/statement.py) with the figures computed from those inputs alone. The report pages, the
CSV, the PDF and `keyline sla compute` all read that one statement, so they cannot disagree.

A report for a closed month is *issued*: stored with its statement, immutable, version 1.
When something changes the month afterwards (an operator marks customer-caused time), the
month is issued again as version 2, stating what changed against version 1; version 1 is
never edited. On the 1st of each month the report service (sla/service.py) issues the month
before for every customer and account manager, and e-mails each through the notification
outbox.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg

from sla import statement as statements
from sla.availability import CreditStep, Exclusion, Measurement, StateSpan, Terms, TicketFacts
from sla.calendar import calendar_of
from sla.statement import previous_month
from sla.tickets import now_of
from store import sla as sla_store
from store.circuit_states import state_spans
from store.collection import any_dropped_samples, dropped_ranges
from store.inventory import credits_of


def contract_terms(key: str, target: Any, calendar: Mapping[str, Any],
                   credits: Sequence[Mapping[str, Any]], charge: Any, currency: str,
                   spec: Mapping[str, Any], latency: float | None, jitter: float | None,
                   loss: float | None) -> tuple[Terms, dict[str, Any]]:
    """A stored contract as terms, and the calendar spec a statement carries (its dates,
    without where they came from)."""
    calendar_spec = {"timezone": calendar["timezone"], "hours": calendar.get("hours") or [],
                     "holidays": sorted(str(d) for d in calendar.get("holidays") or ()),
                     "working_dates": sorted(str(d) for d in calendar.get("working_dates")
                                             or ())}
    steps = tuple(CreditStep(step.below_pct, step.credit_pct, step.inclusive)
                  for step in credits_of(credits))
    terms = Terms(key, Decimal(str(target)), calendar_of(calendar_spec), steps,
                  Decimal(str(charge)), currency,
                  bool(spec.get("degraded_counts_as_down", False)),
                  str(spec.get("unknown_counts_as") or "excluded"),
                  latency, jitter, loss)
    return terms, calendar_spec


def _tickets_of(spans_start: datetime, spans_end: datetime | None,
                links: Iterable[tuple[int, datetime, datetime | None]]) -> tuple[int, ...]:
    """The tickets whose link to the circuit overlaps the state's span."""
    found = []
    for ticket_id, added_at, restored_at in links:
        if (spans_end is None or added_at < spans_end) and (
                restored_at is None or restored_at > spans_start):
            found.append(ticket_id)
    return tuple(sorted(set(found)))


def build_statement(conn: psycopg.Connection, *, month: str | None = None, as_of: datetime,
                    customer_ids: Sequence[int] | None = None,
                    subject: Mapping[str, Any] | None = None,
                    period: tuple[datetime, datetime] | None = None) -> dict[str, Any]:
    """The statement of `month` for the circuits of `customer_ids` (None: every customer),
    measured up to `as_of`, with its figures. `subject` says who it is about (kind, key,
    name) for the report's heading."""
    if (month is None) == (period is None):
        raise ValueError("give either a month or a period")
    if period is not None:
        for moment in period:
            if moment.tzinfo is None:
                raise ValueError(f"a period's ends are timezone-aware, got {moment}")
        if period[1] <= period[0]:
            raise ValueError(f"the period ends ({period[1].isoformat()}) before it starts"
                             f" ({period[0].isoformat()})")
    with statements.garbage_collector_paused():
        return _build_statement(conn, month=month, as_of=as_of, customer_ids=customer_ids,
                                subject=subject, period=period)


def _build_statement(conn: psycopg.Connection, *, month: str | None, as_of: datetime,
                     customer_ids: Sequence[int] | None,
                     subject: Mapping[str, Any] | None,
                     period: tuple[datetime, datetime] | None) -> dict[str, Any]:
    if period is not None:
        # any period: the same instants for every circuit, whatever its time zone
        wide_start, wide_end = (moment.astimezone(statements.UTC) for moment in period)
    else:
        statements.month_of(month)
        # every contract's month is within a day of the UTC month: read a day either side
        wide_start, wide_end = statements.month_period(month, "UTC")
        wide_start, wide_end = (wide_start - statements.timedelta(days=1),
                                wide_end + statements.timedelta(days=1))
    rows = sla_store.report_circuits(conn, customer_ids, wide_start, wide_end)
    contracts: dict[str, dict[str, Any]] = {}
    terms_by_key: dict[str, Terms] = {}
    circuits: list[tuple[int, Any, statements.CircuitInputs]] = []
    in_service: dict[int, tuple[datetime, datetime | None]] = {}
    for row in rows:
        in_service[row.id] = (row.created_at, row.retired_at)
        if row.contract_key not in terms_by_key:
            terms, calendar_spec = contract_terms(
                row.contract_key, row.availability_target_pct, row.calendar, row.credits,
                row.contract_charge, row.currency, row.spec or {}, row.latency_target_ms,
                row.jitter_target_ms, row.loss_target_pct)
            terms_by_key[row.contract_key] = terms
            contracts[row.contract_key] = statements.terms_json(terms, calendar_spec)
        start, end = (wide_start, wide_end) if period is not None else \
            statements.month_period(month, row.calendar["timezone"])
        circuits.append((row.id, row.name, statements.CircuitInputs(
            row.key, row.customer_key, row.contract_key, Decimal(str(row.monthly_charge)),
            start, end, (), (), {})))
    ids = [circuit_id for circuit_id, _name, _inputs in circuits]
    histories = state_spans(conn, ids, wide_start, wide_end) if ids else {}
    marks = sla_store.marks_of(conn, ids, wide_start, wide_end) if ids else {}
    tickets = sla_store.tickets_of_circuits(conn, ids, wide_start, wide_end) if ids else []
    window_ids = sorted({w for states in histories.values() for s in states
                         for w in s.windows})
    windows = {w.id: w for w in sla_store.windows_by_id(conn, window_ids)} if window_ids \
        else {}
    hours = sla_store.hourly_measurements(conn, ids, statements.MEASURED_METRICS,
                                          wide_start, wide_end) if ids else []
    links: dict[int, list[tuple[int, datetime, datetime | None]]] = {}
    for ticket in tickets:
        for circuit_id, added_at, restored_at in ticket.circuits:
            links.setdefault(circuit_id, []).append((ticket.id, added_at, restored_at))
    measured: dict[int, dict[str, list[Measurement]]] = {}
    for object_id, metric, hour, count, total, maximum in hours:
        measured.setdefault(object_id, {}).setdefault(metric, []).append(
            Measurement(hour, int(count), float(total), float(maximum)))
    key_of = {circuit_id: inputs.key for circuit_id, _name, inputs in circuits}
    # drops are rare: ask per circuit only when the month has any
    any_drops = bool(ids) and any_dropped_samples(conn, wide_start, wide_end)
    circuit_docs = []
    for circuit_id, name, inputs in circuits:
        # a circuit counts from when it entered service (its import, or its first stored
        # state if that is earlier) to its retirement: before and after, it was nobody's
        # outage, not even a monitoring gap
        created_at, retired_at = in_service[circuit_id]
        history = histories.get(circuit_id, ())
        began = min(created_at, history[0].time) if history else created_at
        start = max(inputs.period_start, began)
        end = min(inputs.period_end, retired_at) if retired_at else inputs.period_end
        if end <= start:
            continue
        spans = tuple(
            StateSpan(s.time, s.until, s.state, s.cause, s.alarm_id,
                      _tickets_of(s.time, s.until, links.get(circuit_id, ())))
            for s in histories.get(circuit_id, ())
            if s.time < end and (s.until is None or s.until > start))
        used_windows = sorted({w for s in histories.get(circuit_id, ()) for w in s.windows
                               if w in windows})
        exclusions = [Exclusion(windows[w].starts_at, windows[w].ends_at, "maintenance", w)
                      for w in used_windows
                      if windows[w].starts_at < end and windows[w].ends_at > start]
        exclusions += [Exclusion(m.starts_at, m.ends_at, "customer_caused", m.id, m.reason)
                       for m in marks.get(circuit_id, ())
                       if m.starts_at < end and m.ends_at > start]
        metrics = {metric: tuple(m for m in values if start <= m.hour < end)
                   for metric, values in sorted(measured.get(circuit_id, {}).items())}
        filled = statements.CircuitInputs(
            inputs.key, inputs.customer, inputs.contract, inputs.monthly_charge, start, end,
            spans, tuple(exclusions), metrics)
        dropped = [{"first": statements.instant_text(d.first_time),
                    "last": statements.instant_text(d.last_time), "rows": d.rows}
                   for d in (dropped_ranges(conn, circuit_id, start, end) if any_drops
                             else ())]
        circuit_docs.append(statements.circuit_json(filled, name=name, samples_dropped=dropped))
    ticket_docs = [statements.ticket_json(TicketFacts(
        t.id, t.kind, t.priority, t.opened_at, t.acknowledged_at, t.resolved_at,
        t.response_breached, t.resolution_breached,
        tuple(sorted(key_of[c] for c, _a, _r in t.circuits if c in key_of))))
        for t in sorted(tickets, key=lambda t: t.id)]
    shown = (wide_start, wide_end) if period is not None else \
        statements.month_period(month, "UTC")
    document: dict[str, Any] = {
        "format": statements.FORMAT,
        "format_version": statements.FORMAT_VERSION,
        "subject": dict(subject or {"kind": "network"}),
        "month": month,
        "period": {"start": statements.instant_text(shown[0]),
                   "end": statements.instant_text(shown[1])},
        "as_of": statements.instant_text(as_of),
        "contracts": contracts,
        "circuits": circuit_docs,
        "tickets": ticket_docs,
    }
    document["figures"] = statements.figures_json(statements.compute(document))
    return document


# --- issuing -----------------------------------------------------------------------------------

REPORT_KINDS = ("customer", "account_manager")


def subject_of(conn: psycopg.Connection, kind: str,
               key: str) -> tuple[dict[str, Any], list[int]] | None:
    """Who a report is about (for its heading) and the customer ids it covers; None when
    there is no such customer or account manager."""
    if kind == "customer":
        customer = sla_store.customer_by_key(conn, key)
        if customer is None:
            return None
        return ({"kind": "customer", "key": customer.key, "name": customer.name,
                 "account_manager": customer.account_manager,
                 "language": customer.language}, [customer.id])
    if kind == "account_manager":
        ids = sla_store.managed_customers(conn, key)
        if not ids:
            return None
        full_name, _email = sla_store.user_contact(conn, key)
        return {"kind": "account_manager", "key": key, "name": full_name or key}, ids
    raise ValueError(f"kind must be one of {', '.join(REPORT_KINDS)}, got {kind!r}")


def _comparable(figures: Mapping[str, Any]) -> dict[str, Any]:
    """The figures without the instant they were computed at."""
    return {key: value for key, value in figures.items() if key != "as_of"}


def _difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    old_total, new_total = old["figures"]["total"], new["figures"]["total"]
    summary = {name: {"before": old_total.get(name), "after": new_total.get(name)}
               for name in ("availability_pct", "down_s", "excluded_s", "outage_count",
                            "credits")
               if old_total.get(name) != new_total.get(name)}
    return {"summary": summary,
            "changes": statements.differences(_comparable(old["figures"]),
                                              _comparable(new["figures"]))}


def issue(conn: psycopg.Connection, kind: str, key: str, month: str, *, by: str,
          reason: str | None = None, as_of: datetime | None = None) -> Any | None:
    """Issue the month's report of a customer or an account manager: version 1 when none
    is issued, a new version when the figures changed since the last one (with the
    difference), nothing (None) when they did not or the month is not over. The issued
    row (store.sla.ReportRow)."""
    found = subject_of(conn, kind, key)
    if found is None:
        raise ValueError(f"no {kind.replace('_', ' ')} {key!r}")
    subject, customer_ids = found
    now = now_of(conn)
    as_of = as_of or now
    document = build_statement(conn, month=month, as_of=as_of, customer_ids=customer_ids,
                               subject=subject)
    if document["circuits"] and as_of < max(
            statements._read("end", c["period"]["end"], "instant")
            for c in document["circuits"]):
        return None  # a month is issued once it is over for every circuit
    previous = sla_store.latest_report(conn, kind, key, month)
    difference = None
    if previous is not None:
        if _comparable(previous.statement["figures"]) == _comparable(document["figures"]):
            return None
        difference = _difference(previous.statement, document)
    report = sla_store.issue_report(
        conn, kind=kind, subject=key,
        customer_id=customer_ids[0] if kind == "customer" else None, month=month,
        issued_at=now, issued_by=by, statement=document, difference=difference,
        reason=reason if previous is not None else None)
    _mail_report(conn, report, subject)
    return report


def _mail_report(conn: psycopg.Connection, report: Any, subject: Mapping[str, Any]) -> None:
    """Queue the issued report's e-mail (the customer's contact, or the account manager)
    in the issuing transaction; the notifier attaches the PDF and the CSV."""
    from store import outbox

    if subject["kind"] == "customer":
        customer = sla_store.customer_by_key(conn, subject["key"])
        address = customer.contact_email if customer else None
    else:
        _name, address = sla_store.user_contact(conn, subject["key"])
    if not address:
        return
    language = subject.get("language") or "zh_CN"
    title, body = report_mail_text(report, subject, language)
    outbox.enqueue(conn, "email", address, title, body,
                   {"kind": "sla_report", "report_id": report.id,
                    "attachments": ["pdf", "csv"]},
                   f"sla-report:{report.id}:{address}", language=language)


def report_mail_text(report: Any, subject: Mapping[str, Any],
                     language: str) -> tuple[str, str]:
    total = report.statement["figures"]["total"]
    availability = total.get("availability_pct") or "—"
    credits = ", ".join(f"{amount} {currency}" for currency, amount
                        in (total.get("credits") or {}).items()) or "0"
    name = subject.get("name") or subject["key"]
    if language == "zh_CN":
        title = f"{name} {report.month} 月度SLA报告（第{report.version}版）"
        lines = [f"{name} {report.month} 月度SLA报告已发布（第{report.version}版）。",
                 f"可用率：{availability} %", f"服务补偿：{credits}"]
        if report.reason:
            lines.append(f"更正原因：{report.reason}")
        lines.append("报告的PDF与CSV见附件；附带的声明文件可用 keyline sla compute 复核。")
    else:
        title = f"{name}: SLA report {report.month} (version {report.version})"
        lines = [f"The SLA report of {name} for {report.month} is issued"
                 f" (version {report.version}).", f"Availability: {availability} %",
                 f"Credits: {credits}"]
        if report.reason:
            lines.append(f"Why this version: {report.reason}")
        lines.append("The report is attached as PDF and CSV.")
    return title, "\n".join(lines)


def issue_month(conn: psycopg.Connection, month: str, *, by: str = "keyline",
                only_missing: bool = False) -> list[Any]:
    """Issue `month` for every customer with circuits under contract and every account
    manager of such customers (a subject whose figures did not change issues nothing).
    `only_missing`: only the subjects without an issued report of the month, the
    scheduler's way: corrections come from the actions that change a month."""
    issued = []
    for kind, key in sla_store.report_subjects(conn, statements.month_period(month, "UTC")[1]):
        if only_missing and sla_store.latest_report(conn, kind, key, month) is not None:
            continue
        report = issue(conn, kind, key, month, by=by)
        if report is not None:
            issued.append(report)
    return issued


def issue_due_reports(conn: psycopg.Connection, now: datetime,
                      issue_after_h: float) -> list[Any]:
    """The scheduler's job: once the month before `now` is over (in UTC, plus
    `issue_after_h` for late data such as a spool replay), issue its reports that are not
    issued yet. A circuit whose time zone's month ends later is issued at a later call (its
    subject's report waits until the month is over for every circuit)."""
    month = previous_month(now, "UTC")
    _start, end = statements.month_period(month, "UTC")
    if now < end + statements.timedelta(hours=issue_after_h):
        return []
    return issue_month(conn, month, by="keyline", only_missing=True)


def months_touched(start: datetime, end: datetime) -> list[str]:
    """The months (YYYY-MM) that [start, end) touches in any time zone (a day either side
    of the UTC months)."""
    first = (start - statements.timedelta(days=1)).astimezone(statements.UTC)
    last = (end + statements.timedelta(days=1)).astimezone(statements.UTC)
    months, year, month = [], first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = year + (month == 12), month % 12 + 1
    return months


def reissue_touched(conn: psycopg.Connection, customer_id: int, start: datetime,
                    end: datetime, *, by: str, reason: str) -> list[Any]:
    """After a change to [start, end) of a customer's circuits: issue again every issued
    report of the customer (and of its account manager) whose month it touches and whose
    figures it changed."""
    customer = sla_store.customer_by_id(conn, customer_id)
    if customer is None:
        return []
    key, manager = customer.key, customer.account_manager
    reissued = []
    for month in months_touched(start, end):
        for kind, subject in (("customer", key), ("account_manager", manager)):
            if subject is None or sla_store.latest_report(conn, kind, subject, month) is None:
                continue
            report = issue(conn, kind, subject, month, by=by, reason=reason)
            if report is not None:
                reissued.append(report)
    return reissued
