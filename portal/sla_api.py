"""The REST API of SLA figures, issued reports and customer-caused marks: /api/v1/sla.

Nested in the API's blueprint like portal/tickets_api.py (endpoints "api.sla_api.*", under
/api/v1, the same token or session authentication, described in portal/openapi.py). The
figures are sla/'s: every answer is, or is cut from, a statement that
sla.reports.build_statement made (or an issued report stored), so the API, the pages, the
CSV, the PDF and `keyline sla compute` cannot disagree.

Scope, as for tickets: a customer reads its own customer only, an account manager their own
customers only, the operators (noc, engineer, admin) every customer; a customer or a report
outside the viewer's scope is 404, never 403, like one that does not exist. Issued reports
are read through store.sla's scoped reads (`list_reports`, `get_report`).

- `GET /sla/figures?month=YYYY-MM[&customer=KEY]`: the statement's `figures` (per circuit,
  per customer, all together), month to date by default (with each circuit's error budget
  left); `customer` narrows to one customer of the viewer's.
- `GET /sla/statement?customer=KEY&month=YYYY-MM`: one customer's month built now, the whole
  statement (what `keyline sla compute` reads).
- `GET /sla/reports`, `/sla/reports/ID` and its downloads `.csv`, `.pdf` and `.json` (the
  bare statement).
- `GET /sla/marks?circuit=KEY&month=M`, `POST /sla/marks`, `POST /sla/marks/ID/withdraw`:
  through sla/marks.py, the one path of the command line too; its ActionError becomes 400
  (with the field), 403, 404 or 409 in the API's JSON, `{"error": ..., "field": ...}`.

A month is `YYYY-MM` between 1970-01 and 2199-12 and not after the current one; anything
else is 400 naming `month`. The current month is the one the database's now falls in, in
the time zone of most of the circuits' contracts in scope (`current_month`). CSRF: a
session-authenticated write sends `X-CSRFToken`, a token-authenticated one need not.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from flask import Blueprint, Response, current_app, g, jsonify, request
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue

from alarms.actions import ActionError, Refusal
from portal.alarms_api import REFUSAL_STATUS
from portal.i18n import LANGUAGES, select_locale
from portal.params import MAX_TIME, MIN_TIME, BadParameter
from portal.security import current_viewer, login_required
from sla import marks, render, reports
from sla import statement as statements
from store import sla as sla_store
from store.queries import CustomerRow, Viewer, circuits_for, customers_for

blueprint = Blueprint("sla_api", __name__)

MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])", re.ASCII)
MONTH_RULE = (f"month must be YYYY-MM between {MIN_TIME.year}-01 and {MAX_TIME.year - 1}-12,"
              " e.g. 2026-10")
OPERATOR_ACTOR = "operator"  # the NOC's people, to a customer (as in the ticket API)
SYSTEM_ACTOR = "keyline"  # the report service issuing on the 1st (sla.reports.issue_month)


@blueprint.errorhandler(ActionError)
def _action_refused(error: ActionError) -> ResponseReturnValue:
    return jsonify(error=error.message, field=error.field), REFUSAL_STATUS[error.refusal]


@blueprint.record_once
def _exempt_from_form_csrf(state: BlueprintSetupState) -> None:
    """The app-wide CSRF check runs before the viewer is known; `_csrf_unless_token` does
    it once it is (see portal/alarms_api.py)."""
    state.app.extensions["csrf"].exempt(blueprint)


@blueprint.before_request
def _csrf_unless_token() -> None:
    if g.get("auth_method") == "session":
        current_app.extensions["csrf"].protect()


def _database() -> Any:
    return current_app.extensions["keyline.database"]


# --- months and scope (shared with portal/sla_views.py) -----------------------------------


def current_month(conn: psycopg.Connection, now: datetime,
                  customer_ids: Sequence[int] | None) -> str:
    """The month `now` falls in, in the time zone of most contracts of the customers'
    circuits (UTC when they have none): a customer in Shanghai is in December from its
    own midnight, not from the UTC one."""
    row = conn.execute(
        """SELECT s.calendar->>'timezone' AS zone, count(*) FROM circuits c
             JOIN sla_contracts s ON s.id = c.sla_contract_id
            WHERE c.retired_at IS NULL
              AND (%(ids)s::bigint[] IS NULL OR c.customer_id = ANY(%(ids)s))
            GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1""",
        {"ids": None if customer_ids is None else list(customer_ids)}).fetchone()
    zone = row[0] if row and row[0] else "UTC"
    local = now.astimezone(zoneinfo.ZoneInfo(zone))
    return f"{local.year:04d}-{local.month:02d}"


def month_arg(args: Any, default: str, name: str = "month") -> str:
    """The `month` query parameter (YYYY-MM, 1970-01 .. 2199-12, not after `default`, the
    current month); `default` when absent."""
    text = (args.get(name) or "").strip()
    if not text:
        return default
    if not MONTH.fullmatch(text) or not MIN_TIME.year <= int(text[:4]) < MAX_TIME.year:
        raise BadParameter(name, MONTH_RULE)
    if text > default:
        raise BadParameter(name, f"{name} {text} has not begun (the current month is"
                                 f" {default})")
    return text


def customer_in_scope(conn: psycopg.Connection, viewer: Viewer, key: str | None
                      ) -> CustomerRow | None:
    """The customer named by key if the viewer may see it; None when no key is given.
    One the viewer may not see is 404 (field `customer`), like one that does not exist."""
    if key is None or not key.strip():
        return None
    for row in customers_for(conn, viewer):
        if row.key == key.strip():
            return row
    raise BadParameter("customer", "no such customer", 404)


def scope_ids(conn: psycopg.Connection, viewer: Viewer,
              customer: CustomerRow | None) -> list[int] | None:
    """The customer ids a statement for the viewer covers: the one named, else the viewer's
    own (a customer: its customer; an account manager: theirs), None for every customer."""
    if customer is not None:
        return [customer.id]
    if viewer.scope is not None:
        return [viewer.scope]
    if viewer.manager is not None:
        return [row.id for row in customers_for(conn, viewer)]
    return None


def subject_for(conn: psycopg.Connection, viewer: Viewer,
                customer: CustomerRow | None) -> dict[str, Any]:
    """Who a statement built for the viewer is about, for its heading."""
    if customer is not None or viewer.scope is not None:
        key = customer.key if customer is not None else viewer.customer_key
        found = reports.subject_of(conn, "customer", str(key))
        if found is not None:
            return found[0]
    if viewer.manager is not None:
        found = reports.subject_of(conn, "account_manager", viewer.manager)
        if found is not None:
            return found[0]
        return {"kind": "account_manager", "key": viewer.manager,
                "name": viewer.full_name or viewer.manager}
    return {"kind": "network"}


def statement_for(conn: psycopg.Connection, viewer: Viewer, customer: CustomerRow | None,
                  month: str, now: datetime) -> dict[str, Any]:
    """The month's statement for the viewer's scope (or one customer of it), built now."""
    return reports.build_statement(conn, month=month, as_of=now,
                                   customer_ids=scope_ids(conn, viewer, customer),
                                   subject=subject_for(conn, viewer, customer))


def report_json(row: sla_store.ReportRow, viewer: Viewer,
                names: dict[int, str] | None = None) -> dict[str, Any]:
    """An issued report's facts (without its statement), as the viewer may read them."""
    body: dict[str, Any] = {
        "id": row.id, "kind": row.kind, "subject": row.subject,
        "subject_name": (names or {}).get(row.customer_id or -1),
        "month": row.month, "version": row.version,
        "issued_at": row.issued_at.isoformat(), "reason": row.reason,
    }
    if viewer.is_staff:
        body["issued_by"] = row.issued_by
    return body


def visible_report(conn: psycopg.Connection, viewer: Viewer,
                   report_id: int) -> sla_store.ReportRow:
    """The issued report in the viewer's scope, or 404."""
    row = sla_store.get_report(conn, report_id, customer_id=viewer.scope,
                               manager=viewer.manager)
    if row is None:
        raise BadParameter("report_id", "no such report", 404)
    return row


def versions_of(conn: psycopg.Connection, viewer: Viewer,
                row: sla_store.ReportRow) -> list[sla_store.ReportRow]:
    """Every issued version of the report's (kind, subject, month), oldest first."""
    return sorted((r for r in sla_store.list_reports(
        conn, customer_id=viewer.scope, manager=viewer.manager, month=row.month,
        kind=row.kind) if r.subject == row.subject), key=lambda r: r.version)


# --- downloads -------------------------------------------------------------------------------


def language_arg() -> str:
    chosen = request.args.get("language") or ""
    if chosen and chosen not in LANGUAGES:
        raise BadParameter("language", "language is one of " + ", ".join(LANGUAGES))
    return chosen or select_locale()


def part_arg() -> str:
    chosen = request.args.get("part") or "circuits"
    if chosen not in render.CSV_PARTS:
        raise BadParameter("part", "part is one of " + ", ".join(render.CSV_PARTS))
    return chosen


def _attachment(body: bytes | str, mimetype: str, name: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def csv_download(statement: dict[str, Any], part: str) -> Response:
    """The report's CSV (sla/render.py: one table, its circuits or its outages)."""
    return _attachment(render.report_csv(statement, part), "text/csv; charset=utf-8",
                       render.report_file_name(statement, "csv", part=part))


def pdf_download(statement: dict[str, Any], language: str) -> Response:
    """The report's PDF (sla/render.py, printed from the page's template); 503 naming the
    reason when it cannot be made here (WeasyPrint's Pango or a CJK font missing)."""
    try:
        body = render.report_pdf(statement, language=language)
    except render.RenderError as error:
        raise BadParameter(None, f"the PDF cannot be made: {error}", 503) from None
    return _attachment(body, "application/pdf", render.report_file_name(statement, "pdf"))


def json_download(statement: dict[str, Any]) -> Response:
    """The statement as a file: what `keyline sla compute FILE` reads."""
    response = jsonify(statement)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{render.report_file_name(statement, "json")}"')
    return response


# --- figures and statements ------------------------------------------------------------------


@blueprint.get("/sla/figures")
@login_required
def figures() -> ResponseReturnValue:
    viewer = current_viewer()
    with _database().pool.connection() as conn:
        customer = customer_in_scope(conn, viewer, request.args.get("customer"))
        now = reports.now_of(conn)
        month = month_arg(request.args, current_month(
            conn, now, scope_ids(conn, viewer, customer)))
        document = statement_for(conn, viewer, customer, month, now)
    return jsonify(month=month, as_of=document["as_of"], subject=document["subject"],
                   figures=document["figures"])


@blueprint.get("/sla/statement")
@login_required
def statement() -> ResponseReturnValue:
    viewer = current_viewer()
    with _database().pool.connection() as conn:
        customer = customer_in_scope(conn, viewer, request.args.get("customer"))
        if customer is None and viewer.scope is None:
            raise BadParameter("customer", "customer is required: the customer's key")
        now = reports.now_of(conn)
        month = month_arg(request.args, current_month(
            conn, now, scope_ids(conn, viewer, customer)))
        document = statement_for(conn, viewer, customer, month, now)
    return jsonify(document)


# --- issued reports --------------------------------------------------------------------------


@blueprint.get("/sla/reports")
@login_required
def list_reports() -> ResponseReturnValue:
    viewer = current_viewer()
    month = None
    with _database().pool.connection() as conn:
        if request.args.get("month"):
            month = month_arg(request.args, f"{MAX_TIME.year - 1}-12")
        rows = sla_store.list_reports(conn, customer_id=viewer.scope, manager=viewer.manager,
                                      month=month)
        names = {c.id: c.name for c in customers_for(conn, viewer)}
    return jsonify(reports=[report_json(r, viewer, names) for r in rows])


@blueprint.get("/sla/reports/<int:report_id>")
@login_required
def get_report(report_id: int) -> ResponseReturnValue:
    viewer = current_viewer()
    with _database().pool.connection() as conn:
        row = visible_report(conn, viewer, report_id)
        names = {c.id: c.name for c in customers_for(conn, viewer)}
    return jsonify({**report_json(row, viewer, names), "statement": row.statement,
                    "difference": row.difference})


def issued_for(row: sla_store.ReportRow, viewer: Viewer) -> dict[str, Any]:
    """The issued report's statement with its `issued` block (version, reason, difference)
    as the viewer may read it: a customer reads "operator" for the NOC's people."""
    document = render.issued_statement(row)
    if not viewer.is_staff and document["issued"].get("issued_by") != SYSTEM_ACTOR:
        document["issued"]["issued_by"] = OPERATOR_ACTOR
    return document


def _issued(report_id: int) -> dict[str, Any]:
    """The issued report's statement for the viewer, or 404."""
    viewer = current_viewer()
    with _database().pool.connection() as conn:
        return issued_for(visible_report(conn, viewer, report_id), viewer)


@blueprint.get("/sla/reports/<int:report_id>.json")
@login_required
def report_statement(report_id: int) -> ResponseReturnValue:
    return json_download(_issued(report_id))


@blueprint.get("/sla/reports/<int:report_id>.csv")
@login_required
def report_csv(report_id: int) -> ResponseReturnValue:
    part = part_arg()
    return csv_download(_issued(report_id), part)


@blueprint.get("/sla/reports/<int:report_id>.pdf")
@login_required
def report_pdf(report_id: int) -> ResponseReturnValue:
    language = language_arg()
    return pdf_download(_issued(report_id), language)


# --- customer-caused marks -------------------------------------------------------------------


def _body() -> dict[str, Any]:
    if not request.get_data(cache=True):
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadParameter(None, "the body must be a JSON object")
    return body


def checked_time(value: Any, field: str) -> Any:
    """A mark's time as given, unless it parses to a time outside MIN_TIME .. MAX_TIME
    (sla/marks.py reads it; a year-1 time would overflow the month arithmetic there)."""
    if isinstance(value, str) and value.strip():
        text = value.strip().replace("z", "Z").replace("Z", "+00:00")
        try:
            moment = datetime.fromisoformat(text if "T" in text else text.replace(" ", "T", 1))
        except ValueError:
            return value  # sla/marks.py names the field and the format
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        try:
            inside = MIN_TIME <= moment < MAX_TIME
        except OverflowError:
            inside = False
        if not inside:
            raise ActionError(field, f"{field} must be between {MIN_TIME.date().isoformat()}"
                                     f" and {MAX_TIME.date().isoformat()}")
    return value


def mark_json(mark: sla_store.MarkRow, circuit_key: str, viewer: Viewer) -> dict[str, Any]:
    """A mark as the viewer may read it: a customer reads "operator" for who marked."""
    def who(name: str | None) -> str | None:
        return name if name is None or viewer.is_staff else OPERATOR_ACTOR

    return {"id": mark.id, "circuit": circuit_key, "start": mark.starts_at.isoformat(),
            "end": mark.ends_at.isoformat(), "reason": mark.reason,
            "marked_by": who(mark.marked_by), "marked_at": mark.marked_at.isoformat(),
            "withdrawn": mark.withdrawn,
            "withdrawn_at": mark.withdrawn_at.isoformat() if mark.withdrawn_at else None,
            "withdrawn_by": who(mark.withdrawn_by), "withdraw_reason": mark.withdraw_reason}


def circuit_timezone(conn: psycopg.Connection, circuit_key: str) -> str:
    row = conn.execute(
        """SELECT s.calendar->>'timezone' FROM circuits c
             LEFT JOIN sla_contracts s ON s.id = c.sla_contract_id WHERE c.key = %s""",
        [circuit_key]).fetchone()
    return row[0] if row and row[0] else "UTC"


@blueprint.get("/sla/marks")
@login_required
def list_marks() -> ResponseReturnValue:
    viewer = current_viewer()
    key = (request.args.get("circuit") or "").strip()
    if not key:
        raise BadParameter("circuit", "circuit is required: the circuit's key")
    with _database().pool.connection() as conn:
        if not any(c.key == key for c in circuits_for(conn, viewer)):
            raise BadParameter("circuit", "no such circuit", 404)
        now = reports.now_of(conn)
        zone = circuit_timezone(conn, key)
        month = month_arg(request.args, current_month(conn, now, scope_ids(conn, viewer,
                                                                           None)))
        start, end = statements.month_period(month, zone)
        found = marks.marks_of_circuit(conn, viewer, key, start, end)
    return jsonify(circuit=key, month=month, marks=[mark_json(m, key, viewer) for m in found])


@blueprint.post("/sla/marks")
@login_required
def add_mark() -> ResponseReturnValue:
    viewer = current_viewer()
    body = _body()
    start, end = body.get("start"), body.get("end")
    if viewer.role in marks.MARKING_ROLES:  # the others are refused 403 by sla/marks.py
        start, end = checked_time(start, "start"), checked_time(end, "end")
    with _database().pool.connection() as conn:
        result = marks.mark_customer_caused(conn, viewer, body.get("circuit"), start, end,
                                            body.get("reason"))
        mark = sla_store.get_mark(conn, result.mark_id)
    assert mark is not None
    return jsonify({**mark_json(mark, result.circuit_key, viewer),
                    "reissued": [r.id for r in result.reissued]}), 201


def visible_mark(conn: psycopg.Connection, viewer: Viewer, mark_id: int) -> None:
    """404 unless the mark is on one of the viewer's circuits: asked before the role, so
    that a mark the viewer cannot see is 404 to everyone, as for tickets."""
    mark = sla_store.get_mark(conn, mark_id)
    if mark is None or mark.circuit_id not in {c.id for c in circuits_for(conn, viewer)}:
        raise ActionError("mark_id", "no such mark", Refusal.NOT_FOUND)


@blueprint.post("/sla/marks/<int:mark_id>/withdraw")
@login_required
def withdraw_mark(mark_id: int) -> ResponseReturnValue:
    viewer = current_viewer()
    with _database().pool.connection() as conn:
        visible_mark(conn, viewer, mark_id)
        body = _body()
        result = marks.withdraw_mark(conn, viewer, mark_id, body.get("reason"))
        mark = sla_store.get_mark(conn, mark_id)
    assert mark is not None
    return jsonify({**mark_json(mark, result.circuit_key, viewer),
                    "reissued": [r.id for r in result.reissued]})
