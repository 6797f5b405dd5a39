"""The SLA pages: a customer's reports, the account managers' and the NOC's dashboards, one
report's page, and the form that marks customer-caused time.

What each audience sees (issue 14, item 6), every figure read from a statement that
sla.reports.build_statement made now or from an issued report (store.sla), so that the pages,
the CSV, the PDF and the REST API (portal/sla_api.py, whose scope helpers these pages share)
print the same numbers:

- *a customer*: on its circuit list (portal/customer.py) each circuit's month-to-date
  availability and error budget left (`month_to_date`); under "SLA reports"
  (/sla/customers/ID/) its issued reports (view, CSV, PDF) and "this month so far", the
  report body of the month built now.
- *an account manager*: /sla/, a dashboard of their customers (availability this month, the
  targets, circuits below target, tickets breached, the credits the month-to-date
  availability would earn), a link to each customer's reports, and the form that marks
  customer-caused time on one of their circuits with a reason, with the month's marks and
  their withdrawal. Nobody else's customers appear: every read takes the viewer's scope.
- *the NOC* (noc, engineer, admin): the same dashboard for every customer, with the
  network's total availability, credits at risk and the worst circuits first.
- */sla/reports/ID*: one issued version inside the portal's layout, the body from
  sla/render.py's `report_html` (the one template the PDF prints too), the downloads (CSV,
  PDF, statement JSON) and the version history with each version's reason and difference;
  */sla/customers/ID/month?month=YYYY-MM*: a month built now, the same way.

Marking and withdrawing go through sla/marks.py, the one path of the command line and the
API too; its ActionError becomes the form's error (the field named in the viewer's
language). Forms carry the CSRF token like every other form. Times are written in UTC, with
"UTC" after them; the report body names its contracts' time zones itself.
"""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction
from typing import Any

import psycopg
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext, lazy_gettext
from markupsafe import Markup

from alarms.actions import MAX_TEXT, ActionError, Refusal
from portal import sla_api
from portal.alarms_views import alarm_time
from portal.i18n import select_locale
from portal.params import BadParameter
from portal.security import OPERATOR_ROLES, current_viewer, login_required
from sla import marks, render, reports
from sla import statement as statements
from store import sla as sla_store
from store.queries import CustomerRow, Viewer, circuits_for, customers_for, get_customer

blueprint = Blueprint("sla", __name__)

WORST_SHOWN = 10  # circuits in the NOC's "worst first" table

# A refused field -> what the mark form says (sla/marks.py's own messages are English).
FIELD_ERRORS = {
    "circuit": lazy_gettext("Choose one of the circuits listed."),
    "start": lazy_gettext("Give the start as a time in UTC, before the end."),
    "end": lazy_gettext("Give the end as a time in UTC: after the start, not in the future,"
                        " at most %(num)d days after the start.", num=marks.MAX_MARK_DAYS),
    "reason": lazy_gettext("Give a reason (at most %(num)d characters): the customer reads"
                           " it in its report.", num=MAX_TEXT),
    "mark_id": lazy_gettext("That mark was withdrawn already."),
}

DIFFERENCE_LABELS = {
    "availability_pct": lazy_gettext("availability %"),
    "down_s": lazy_gettext("downtime (s)"),
    "excluded_s": lazy_gettext("excluded time (s)"),
    "outage_count": lazy_gettext("outages"),
    "credits": lazy_gettext("credits"),
}

KIND_LABELS = {
    "customer": lazy_gettext("customer"),
    "account_manager": lazy_gettext("account manager"),
}


def _database() -> Any:
    return current_app.extensions["keyline.database"]


def may_mark(viewer: Viewer) -> bool:
    return viewer.role in marks.MARKING_ROLES


# --- what the templates print ----------------------------------------------------------------


@blueprint.app_template_filter("sla_minutes")
def sla_minutes(seconds: str | float | None) -> str:
    """A statement's seconds ("2700.000000") as minutes with one decimal: "45.0 min"."""
    if seconds is None or seconds == "":
        return "—"
    return gettext("%(minutes)s min", minutes=f"{float(seconds) / 60:.1f}")


@blueprint.app_template_filter("sla_pct")
def sla_pct(value: str | None) -> str:
    """A statement's percentage ("99.993055", rounded down already) as the pages show it:
    four decimals, still rounded down (a figure shown never reads better than it is)."""
    if value is None:
        return "—"
    whole, _, decimals = str(value).partition(".")
    return f"{whole}.{(decimals + '0000')[:4]} %"


@blueprint.app_template_filter("sla_credits")
def sla_credits(credits: dict[str, str] | None) -> str:
    if not credits:
        return "0"
    return ", ".join(f"{amount} {currency}" for currency, amount in sorted(credits.items()))


@blueprint.app_template_filter("sla_time")
def sla_time(value: datetime | str | None) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return alarm_time(value)


@blueprint.app_context_processor
def sla_labels() -> dict[str, Any]:
    return {"sla_kind_labels": KIND_LABELS, "sla_difference_labels": DIFFERENCE_LABELS}


def report_body(statement: dict[str, Any], language: str) -> Markup:
    """The report's body for a page: sla/render.py's `report_html`, the one template the PDF
    prints too (autoescaped there), without its page around it."""
    return Markup(render.report_html(statement, language=language,
                                     standalone=False))


@blueprint.get("/sla/report.css")
def report_css() -> ResponseReturnValue:
    """The report body's style sheet, as a file: the portal's CSP allows no inline style."""
    return Response(render.report_css(), mimetype="text/css")


def _fraction(text: str | None) -> Fraction | None:
    return Fraction(text) if text else None


def circuit_rows(document: dict[str, Any], names: dict[str, str]) -> list[dict[str, Any]]:
    """Each circuit of a statement with its customer and figures, worst availability first
    (circuits with nothing counted last)."""
    rows = []
    for circuit in document["circuits"]:
        figures = document["figures"]["circuits"][circuit["key"]]
        rows.append({"key": circuit["key"], "name": circuit.get("name"),
                     "customer": names.get(circuit["customer"], circuit["customer"]),
                     "figures": figures})
    return sorted(rows, key=lambda r: (_fraction(r["figures"]["availability"]) is None,
                                       _fraction(r["figures"]["availability"]) or 0, r["key"]))


def customer_rows(document: dict[str, Any],
                  customers: list[CustomerRow]) -> list[dict[str, Any]]:
    """Each customer of the statement with its month's figures and its circuits' targets."""
    figures = document["figures"]["customers"]
    targets: dict[str, set[str]] = {}
    for circuit in document["circuits"]:
        target = document["figures"]["circuits"][circuit["key"]]["target_pct"]
        targets.setdefault(circuit["customer"], set()).add(target)
    rows = []
    for customer in customers:
        found = figures.get(customer.key)
        shown = sorted(targets.get(customer.key, ()), key=Fraction)
        rows.append({"customer": customer, "figures": found,
                     "targets": " / ".join(f"{t} %" for t in shown) or "—",
                     "breached": (found["tickets"]["response_breached"]
                                  + found["tickets"]["resolution_breached"]) if found else 0})
    return rows


def month_to_date(conn: psycopg.Connection, viewer: Viewer,
                  customer: CustomerRow) -> dict[str, dict[str, Any]]:
    """Each circuit's month-to-date figures (by circuit key) for the customer's circuit
    list: availability, target, error budget left."""
    now = reports.now_of(conn)
    month = sla_api.current_month(conn, now, [customer.id])
    document = sla_api.statement_for(conn, viewer, customer, month, now)
    return document["figures"]["circuits"]


# --- the dashboard -----------------------------------------------------------------------------


def _dashboard(*, form: dict[str, str] | None = None, error: str | None = None,
               error_field: str | None = None, status: int = 200) -> ResponseReturnValue:
    viewer = current_viewer()
    with _database().pool.connection() as conn:
        now = reports.now_of(conn)
        customers = customers_for(conn, viewer)
        month = sla_api.current_month(conn, now, sla_api.scope_ids(conn, viewer, None))
        document = sla_api.statement_for(conn, viewer, None, month, now)
        circuits = circuits_for(conn, viewer)
        # this month's marks and last month's: a late correction of an issued month is
        # the usual one
        start = statements.month_period(statements.previous_month(now, "UTC"), "UTC")[0]
        end = statements.month_period(month, "UTC")[1]
        found = sla_store.marks_of(conn, [c.id for c in circuits], start, end,
                                   include_withdrawn=True) if circuits else {}
        # the account managers' own monthly reports (an account manager: theirs)
        manager_reports = sla_store.list_reports(conn, manager=viewer.manager,
                                                 kind="account_manager")
    keys = {c.id: c.key for c in circuits}
    names = {c.key: c.name for c in customers}
    month_marks = sorted(((keys[circuit_id], mark) for circuit_id, rows in found.items()
                          for mark in rows), key=lambda item: item[1].starts_at, reverse=True)
    operator = viewer.role in OPERATOR_ROLES
    return render_template(
        "sla/dashboard.html", month=month, now=now, document=document,
        total=document["figures"]["total"], operator=operator,
        customers=customer_rows(document, customers),
        worst=circuit_rows(document, names)[:WORST_SHOWN] if operator else [],
        circuits=circuits, marks=month_marks, manager_reports=manager_reports,
        may_mark=may_mark(viewer), form=form or {},
        error=error, error_field=error_field, max_text=MAX_TEXT), status


@blueprint.get("/sla/")
@login_required
def overview() -> ResponseReturnValue:
    viewer = current_viewer()
    if viewer.customer_id is not None:
        return redirect(url_for("sla.customer", customer_id=viewer.customer_id))
    return _dashboard()


def _mark_refused(refused: ActionError, form: dict[str, str]) -> ResponseReturnValue:
    if refused.refusal is Refusal.FORBIDDEN:
        return render_template("error.html", code=403, message=lazy_gettext(
            "Your role may not mark customer-caused time.")), 403
    if refused.refusal is Refusal.NOT_FOUND and refused.field == "mark_id":
        abort(404)
    field = refused.field or "circuit"
    status = 409 if refused.refusal is Refusal.CONFLICT else (
        404 if refused.refusal is Refusal.NOT_FOUND else 400)
    return _dashboard(form=form, error_field=field, status=status, error=str(
        FIELD_ERRORS.get(field, lazy_gettext("Check what you entered."))))


@blueprint.post("/sla/marks")
@login_required
def mark() -> ResponseReturnValue:
    """Mark [start, end) of one of the viewer's circuits customer-caused, with a reason."""
    viewer = current_viewer()
    form = {name: request.form.get(name, "") for name in ("circuit", "start", "end",
                                                          "reason")}
    try:
        start, end = form["start"], form["end"]
        if may_mark(viewer):
            start = sla_api.checked_time(start, "start")
            end = sla_api.checked_time(end, "end")
        with _database().pool.connection() as conn:
            result = marks.mark_customer_caused(conn, viewer, form["circuit"], start, end,
                                                form["reason"])
    except ActionError as refused:
        return _mark_refused(refused, form)
    return redirect(url_for("sla.overview", marked=result.mark_id) + "#marks")


@blueprint.post("/sla/marks/<int:mark_id>/withdraw")
@login_required
def withdraw(mark_id: int) -> ResponseReturnValue:
    viewer = current_viewer()
    form = {"withdraw_reason": request.form.get("reason", ""), "mark_id": str(mark_id)}
    try:
        with _database().pool.connection() as conn:
            sla_api.visible_mark(conn, viewer, mark_id)
            marks.withdraw_mark(conn, viewer, mark_id, form["withdraw_reason"])
    except ActionError as refused:
        if refused.field == "reason":
            return _dashboard(form=form, error_field="withdraw_reason", status=400,
                              error=str(FIELD_ERRORS["reason"]))
        return _mark_refused(refused, form)
    return redirect(url_for("sla.overview") + "#marks")


# --- a customer's reports, and one report --------------------------------------------------


def _customer(conn: psycopg.Connection, viewer: Viewer, customer_id: int) -> CustomerRow:
    customer = get_customer(conn, viewer, customer_id)
    if customer is None:
        abort(404)
    return customer


def _built(customer_id: int, default_month: bool = True
           ) -> tuple[CustomerRow, dict[str, Any], str]:
    """A customer's month (the `month` parameter, default the current one) built now."""
    viewer = current_viewer()
    with _database().pool.connection() as conn:
        customer = _customer(conn, viewer, customer_id)
        now = reports.now_of(conn)
        current = sla_api.current_month(conn, now, [customer.id])
        month = sla_api.month_arg(request.args, current) if default_month else current
        document = sla_api.statement_for(conn, viewer, customer, month, now)
    return customer, document, current


@blueprint.get("/sla/customers/<int:customer_id>/")
@login_required
def customer(customer_id: int) -> ResponseReturnValue:
    viewer = current_viewer()
    customer, document, month = _built(customer_id, default_month=False)
    with _database().pool.connection() as conn:
        issued = [r for r in sla_store.list_reports(
            conn, customer_id=customer.id if viewer.scope is None else viewer.scope,
            manager=viewer.manager, kind="customer") if r.customer_id == customer.id]
    return render_template("sla/customer.html", customer=customer, reports=issued,
                           month=month, document=document,
                           body=report_body(document, select_locale()))


@blueprint.get("/sla/customers/<int:customer_id>/month")
@login_required
def month(customer_id: int) -> ResponseReturnValue:
    customer, document, current = _built(customer_id)
    return render_template(
        "sla/report_page.html", document=document, customer=customer, report=None,
        versions=[], current=document["month"] == current,
        downloads={**{fmt: url_for(f"sla.month_{fmt}", customer_id=customer.id,
                                   month=document["month"]) for fmt in ("csv", "pdf", "json")},
                   "outages": url_for("sla.month_csv", customer_id=customer.id,
                                      month=document["month"], part="outages")},
        body=report_body(document, select_locale()))


@blueprint.get("/sla/customers/<int:customer_id>/month.csv")
@login_required
def month_csv(customer_id: int) -> ResponseReturnValue:
    part = sla_api.part_arg()
    _customer_row, document, _current = _built(customer_id)
    return sla_api.csv_download(document, part)


@blueprint.get("/sla/customers/<int:customer_id>/month.pdf")
@login_required
def month_pdf(customer_id: int) -> ResponseReturnValue:
    language = sla_api.language_arg()
    _customer_row, document, _current = _built(customer_id)
    return sla_api.pdf_download(document, language)


@blueprint.get("/sla/customers/<int:customer_id>/month.json")
@login_required
def month_json(customer_id: int) -> ResponseReturnValue:
    _customer_row, document, _current = _built(customer_id)
    return sla_api.json_download(document)


@blueprint.get("/sla/reports/<int:report_id>")
@login_required
def report(report_id: int) -> ResponseReturnValue:
    viewer = current_viewer()
    with _database().pool.connection() as conn:
        try:
            row = sla_api.visible_report(conn, viewer, report_id)
        except BadParameter:
            abort(404)
        versions = sla_api.versions_of(conn, viewer, row)
        customer = get_customer(conn, viewer, row.customer_id) \
            if row.customer_id is not None else None
    document = sla_api.issued_for(row, viewer)
    return render_template(
        "sla/report_page.html", document=document, customer=customer, report=row,
        versions=versions, current=False,
        downloads={**{fmt: url_for(f"api.sla_api.report_{name}", report_id=row.id)
                      for fmt, name in (("csv", "csv"), ("pdf", "pdf"),
                                        ("json", "statement"))},
                   "outages": url_for("api.sla_api.report_csv", report_id=row.id,
                                      part="outages")},
        body=report_body(document, select_locale()))


def difference_lines(difference: dict[str, Any] | None) -> list[str]:
    """A version's difference from the one before, one line per total that changed."""
    if not difference:
        return []
    lines = []
    for name, change in (difference.get("summary") or {}).items():
        before, after = change.get("before"), change.get("after")
        if isinstance(before, dict) or isinstance(after, dict):
            before, after = sla_credits(before), sla_credits(after)
        lines.append(f"{DIFFERENCE_LABELS.get(name, name)}: {before} → {after}")
    return lines


blueprint.add_app_template_global(difference_lines, "sla_difference_lines")
