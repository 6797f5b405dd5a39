"""`keyline report` and `keyline sla`: SLA reports and figures (sla/) from a shell.

`report` writes a customer's (or an account manager's) monthly SLA report as PDF, HTML, CSV
(two files: circuits and outages) or JSON, the statement itself, which `keyline sla compute`
reads. A month with an issued report gives its latest issued version (or `--version N`),
saying which on standard error; a month not issued is built now, measured up to the
database's now. `--all` writes every customer's report into a folder, with a progress bar.

`sla compute FILE` recomputes every figure of a statement (JSON or YAML) from its inputs
alone, touching no database, and says whether they match the statement's (exit 0) or how
they differ (exit 1); a malformed statement is exit 2, naming the JSON path at fault.
`sla issue`, `sla reports`, `sla mark`, `sla withdraw`, `sla marks` and `sla figures` issue
and list reports, mark customer-caused time (with a reason, through sla/marks.py, the one
path of the portal too) and show the month-to-date figures.

Registered on the main command as keyline/tickets_cli.py is; its commands use the main
command's state object and error handling: one line on standard error, exit code 2 for bad
input (a refused action names the option at fault), 1 for a failure.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["report", "sla"]

FORMATS = ("pdf", "csv", "html", "json")
LANGUAGES = ("zh_CN", "en")

# A refused action's field (alarms.actions.ActionError) -> the option a user typed.
_OPTIONS = {"circuit": "CIRCUIT", "start": "--start", "end": "--end", "reason": "--reason",
            "actor": "--by", "mark_id": "MARK_ID"}


def _command(function: F) -> F:
    """Run a command body inside keyline.cli's error handler, with its state object first;
    a refused action or an unknown month, customer or manager is bad input (exit 2)."""

    @click.pass_obj
    @functools.wraps(function)
    def wrapper(state: Any, *args: Any, **kwargs: Any) -> Any:
        from alarms.actions import ActionError, Refusal
        from keyline.cli import _errors_as_lines, _fail
        from sla.render import RenderError
        from sla.statement import StatementError

        if state is None:
            raise click.UsageError("run this through the keyline command")
        with _errors_as_lines(state):
            try:
                return function(state, *args, **kwargs)
            except ActionError as error:
                if error.field == "mark_id" and error.refusal is Refusal.NOT_FOUND:
                    _bad_input(f"no customer-caused mark {kwargs.get('mark_id')}")
                option = _OPTIONS.get(error.field or "")
                _bad_input(f"{option}: {error.message}" if option else error.message)
            except StatementError as error:
                _bad_input(f"the statement is not valid: {error}")
            except RenderError as error:  # no CJK font, no Pango: says how to install them
                _fail(f"the PDF cannot be made: {error}")

    return wrapper  # type: ignore[return-value]


def _bad_input(message: str) -> NoReturn:
    from config.secrets import mask_secrets

    click.echo(f"keyline: error: {mask_secrets(message)}", err=True)
    sys.exit(2)


@contextmanager
def _connection(state: Any) -> Iterator[Any]:
    """A connection to the store, committed when the block ends without an error."""
    from keyline.wiring import open_store

    with open_store(state.settings) as database, database.pool.connection() as conn:
        yield conn


def _month(value: str | None, option: str = "--month") -> str | None:
    from sla.statement import month_of

    if value is None:
        return None
    try:
        year, month = month_of(value)
    except ValueError as error:
        _bad_input(f"{option}: {error}")
    return f"{year:04d}-{month:02d}"


def _minutes(seconds: str | None, *, up: bool = True) -> str:
    """Minutes, rounded up (a downtime) or down (a budget left): never better than it is."""
    from sla.render import minutes_text

    return "-" if seconds is None else f"{minutes_text(seconds, up=up)} min"


def _pct(value: str | None) -> str:
    from sla.render import pct_text

    return "-" if value is None else f"{pct_text(value)} %"


# --- keyline report ------------------------------------------------------------------------


def _statement_for(conn: Any, kind: str, key: str, month: str, version: int | None,
                   *, quiet: bool = False) -> dict[str, Any]:
    """The latest issued version of the month's report (or `version`), with its `issued`
    block; else the statement built now, measured to the database's now."""
    from sla import reports
    from sla.render import issued_statement
    from store import sla as sla_store

    issued = [r for r in sla_store.list_reports(conn, month=month, kind=kind)
              if r.subject == key]
    if version is not None:
        chosen = next((r for r in issued if r.version == version), None)
        if chosen is None:
            known = ", ".join(str(r.version) for r in sorted(issued, key=lambda r: r.version))
            _bad_input(f"--version: the {kind.replace('_', ' ')} report {key} {month} has no"
                       f" version {version} (issued: {known or 'none'})")
    else:
        chosen = max(issued, key=lambda r: r.version, default=None)
    if chosen is not None:
        row = sla_store.get_report(conn, chosen.id)
        assert row is not None
        if not quiet:
            click.echo(f"{key} {month}: issued version {row.version} of"
                       f" {row.issued_at:%Y-%m-%d %H:%M:%S %Z}", err=True)
        return issued_statement(row)
    found = reports.subject_of(conn, kind, key)
    if found is None:
        option = "--customer" if kind == "customer" else "--manager"
        _bad_input(f"{option}: no {kind.replace('_', ' ')} {key!r}")
    subject, customer_ids = found
    now = reports.now_of(conn)
    if not quiet:
        click.echo(f"{key} {month}: not issued; figures as of"
                   f" {now:%Y-%m-%d %H:%M:%S %Z} (the database's now)", err=True)
    return reports.build_statement(conn, month=month, as_of=now, customer_ids=customer_ids,
                                   subject=subject)


def write_report(statement: dict[str, Any], fmt: str, output: Path, language: str) -> list[Path]:
    """Write the statement's report in `fmt` to `output`; CSV is two files, the circuits at
    `output` and the outages beside it ("...-outages.csv"). The paths written."""
    from sla import render

    output.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        output.write_text(json.dumps(statement, ensure_ascii=False, indent=1) + "\n",
                          encoding="utf-8")
        return [output]
    if fmt == "html":
        output.write_text(render.report_html(statement, language=language), encoding="utf-8")
        return [output]
    if fmt == "pdf":
        output.write_bytes(render.report_pdf(statement, language=language))
        return [output]
    outages = output.with_name(f"{output.stem}-outages{output.suffix or '.csv'}")
    # newline="": the CSV carries its own CRLF line ends
    with output.open("w", encoding="utf-8", newline="") as file:
        file.write(render.report_csv(statement, "circuits"))
    with outages.open("w", encoding="utf-8", newline="") as file:
        file.write(render.report_csv(statement, "outages"))
    return [output, outages]


def _language(statement: dict[str, Any], language: str | None) -> str:
    if language is not None:
        return language
    wanted = (statement.get("subject") or {}).get("language")
    return wanted if wanted in LANGUAGES else "zh_CN"


@click.command("report")
@click.option("--customer", default=None, help="The customer (its key).")
@click.option("--manager", default=None, help="An account manager (login): their customers.")
@click.option("--all", "every", is_flag=True,
              help="Every customer's report of the month, into --output-dir.")
@click.option("--month", required=True, help="The month, YYYY-MM (in each contract's zone).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="pdf", show_default=True,
              help="json: the statement itself, which `keyline sla compute` reads; csv: two"
                   " files, the circuits and the outages (...-outages.csv).")
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False),
              help="The file (default: sla-report-KEY-MONTH[-vN].EXT here).")
@click.option("--output-dir", type=click.Path(path_type=Path, file_okay=False),
              help="The folder of --all's files (default: here).")
@click.option("--language", type=click.Choice(LANGUAGES),
              help="Default: the customer's language, else zh_CN.")
@click.option("--version", "version", type=click.IntRange(1), default=None,
              help="This issued version (default: the latest issued, else built now).")
@_command
def report(state: Any, customer: str | None, manager: str | None, every: bool, month: str,
           fmt: str, output: Path | None, output_dir: Path | None, language: str | None,
           version: int | None) -> None:
    """Write a monthly SLA report: the issued one when the month is issued (its latest
    version, or --version), else built now from the store."""
    from sla.render import report_file_name

    month = _month(month) or month
    if sum(map(bool, (customer, manager, every))) != 1:
        _bad_input("name one of --customer KEY, --manager LOGIN or --all")
    if every and output is not None:
        _bad_input("--output names one file: with --all use --output-dir")
    if every and version is not None:
        _bad_input("--version is a version of one report: not with --all")
    extension = "csv" if fmt == "csv" else fmt
    if not every:
        kind, key = ("customer", customer) if customer else ("account_manager", manager)
        assert key is not None
        with _connection(state) as conn:
            statement = _statement_for(conn, kind, key, month, version)
        target = output or Path(report_file_name(statement, extension))
        for path in write_report(statement, fmt, target, _language(statement, language)):
            click.echo(f"wrote {path}")
        return
    from tqdm import tqdm

    folder = output_dir or Path(".")
    written = []
    with _connection(state) as conn:
        keys = [row[0] for row in conn.execute(
            """SELECT DISTINCT cu.key FROM customers cu JOIN circuits c ON c.customer_id = cu.id
                WHERE cu.retired_at IS NULL AND c.retired_at IS NULL
                  AND c.sla_contract_id IS NOT NULL ORDER BY 1""")]
        for key in tqdm(keys, desc=f"SLA reports {month}", unit="customer", file=sys.stderr,
                        disable=False):
            statement = _statement_for(conn, "customer", key, month, None, quiet=True)
            written += write_report(statement, fmt,
                                    folder / report_file_name(statement, extension),
                                    _language(statement, language))
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"{len(keys)} customers' reports of {month} in {folder}")


# --- keyline sla ---------------------------------------------------------------------------


@click.group("sla")
def sla() -> None:
    """SLA figures and reports: compute, issue, reports, mark, withdraw, marks, figures."""


def read_statement(path: Path) -> Any:
    """A statement file, JSON or YAML (by its content: JSON is YAML too, but read as JSON
    first for exact numbers and clear errors)."""
    text = path.read_text(encoding="utf-8-sig")
    try:
        return json.loads(text)
    except json.JSONDecodeError as json_error:
        if path.suffix.lower() == ".json" or text.lstrip().startswith(("{", "[")):
            _bad_input(f"{path}: not valid JSON: {json_error}")
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        # the safe loader: plain dicts, lists, strings and numbers, no Python objects
        return YAML(typ="safe", pure=True).load(text)
    except YAMLError as error:
        _bad_input(f"{path}: neither JSON nor YAML: {' '.join(str(error).split())}")


@sla.command("compute")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_command
def compute_command(state: Any, file: Path) -> None:
    """Recompute every figure of a statement from its inputs alone (no database): exit 0
    when they match the statement's, 1 with the differences, 2 when it is malformed."""
    from sla import statement as statements

    document = read_statement(file)
    computed, differences = statements.check(document)
    subject = document.get("subject") or {}
    click.echo(f"statement: {subject.get('name') or subject.get('key') or 'network'}"
               f" {document.get('month', '')} as of {computed['as_of']}")
    customer_of = {c["key"]: c.get("customer") for c in document.get("circuits") or ()}
    for customer, total in computed["customers"].items():
        credits = ", ".join(f"{a} {c}" for c, a in total["credits"].items()) or "none"
        click.echo(f"customer {customer}: availability {_pct(total['availability_pct'])},"
                   f" downtime {_minutes(total['down_s'])}, {total['outage_count']} outages,"
                   f" credits {credits}")
        for key, f in computed["circuits"].items():
            if customer_of.get(key) != customer:
                continue
            credit = f["credit"]
            click.echo(f"  {key}: availability {_pct(f['availability_pct'])}"
                       f" (target {f['target_pct']} %), downtime {_minutes(f['down_s'])},"
                       f" {f['outage_count']} outages, credit "
                       + (f"{credit['amount']} {credit['currency']} ({credit['step']})"
                          if credit else "none"))
    if not differences:
        click.echo("every figure matches the statement")
        return
    click.echo(f"{len(differences)} figures differ from the statement:")
    for line in differences:
        click.echo(f"  {line}")
    sys.exit(1)


def _customer_id(conn: Any, key: str) -> int:
    row = conn.execute("SELECT id FROM customers WHERE key = %s", [key]).fetchone()
    if row is None:
        _bad_input(f"--customer: no customer {key!r}")
    return int(row[0])


def _issued_line(report_row: Any) -> str:
    return (f"issued {report_row.kind.replace('_', ' ')} {report_row.subject}"
            f" {report_row.month} version {report_row.version} (report {report_row.id})")


@sla.command("issue")
@click.option("--month", required=True, help="The month, YYYY-MM; it must be over.")
@click.option("--customer", default=None, help="Only this customer (its key).")
@click.option("--manager", default=None, help="Only this account manager's report (login).")
@click.option("--all", "every", is_flag=True,
              help="Every customer and account manager (the scheduler's job on the 1st).")
@click.option("--by", default="keyline", show_default=True, help="Who issues (user key).")
@_command
def issue_command(state: Any, month: str, customer: str | None, manager: str | None,
                  every: bool, by: str) -> None:
    """Issue a month's report: version 1, or a new version when the figures changed since
    the last one; "unchanged" otherwise. Issued reports are e-mailed through the outbox."""
    from sla import reports
    from store import sla as sla_store

    month = _month(month) or month
    if sum(map(bool, (customer, manager, every))) != 1:
        _bad_input("name one of --customer KEY, --manager LOGIN or --all")
    with _connection(state) as conn:
        if every:
            issued = reports.issue_month(conn, month, by=by)
            for row in issued:
                click.echo(_issued_line(row))
            click.echo(f"{len(issued)} reports issued for {month}" if issued
                       else f"{month}: unchanged (nothing to issue)")
            return
        kind, key = ("customer", customer) if customer else ("account_manager", manager)
        assert key is not None
        try:
            row = reports.issue(conn, kind, key, month, by=by)
        except ValueError as error:
            _bad_input(f"{'--customer' if customer else '--manager'}: {error}")
        if row is not None:
            click.echo(_issued_line(row))
            return
        latest = sla_store.latest_report(conn, kind, key, month)
        if latest is None:
            click.echo(f"{key} {month}: not issued (the month is not over)")
        else:
            click.echo(f"{key} {month}: unchanged (version {latest.version} stands)")


@sla.command("reports")
@click.option("--customer", default=None, help="Only this customer's reports (its key).")
@click.option("--month", default=None, help="Only this month (YYYY-MM).")
@_command
def reports_command(state: Any, customer: str | None, month: str | None) -> None:
    """Issued reports, newest first, every version."""
    from store import sla as sla_store

    month = _month(month)
    with _connection(state) as conn:
        customer_id = _customer_id(conn, customer) if customer else None
        rows = sla_store.list_reports(conn, customer_id=customer_id, month=month)
    if not rows:
        click.echo("no issued reports")
        return
    click.echo(f"{'ID':>6} {'KIND':<16} {'SUBJECT':<12} {'MONTH':<8} {'VER':>3} "
               f"{'ISSUED AT':<25} REASON")
    for row in rows:
        click.echo(f"{row.id:>6} {row.kind:<16} {row.subject:<12} {row.month:<8}"
                   f" {row.version:>3} {row.issued_at.isoformat(timespec='seconds'):<25}"
                   f" {row.reason or '-'}")


@sla.command("mark")
@click.argument("circuit")
@click.option("--start", required=True,
              help="ISO 8601 (2026-10-10T10:00:00+08:00; no zone: UTC), or '-N[mhd]' ago.")
@click.option("--end", required=True, help="As --start, or 'now'; not in the future.")
@click.option("--reason", required=True, help="Why it was the customer's doing (shown to it).")
@click.option("--by", required=True, help="Who marks it (user key).")
@_command
def mark_command(state: Any, circuit: str, start: str, end: str, reason: str,
                 by: str) -> None:
    """Mark a circuit's time customer-caused: excluded from its figures like maintenance;
    issued reports of the months it touches are issued again as a new version."""
    from keyline.alarms_cli import _when
    from sla import marks

    starts, ends = _when(start, "--start"), _when(end, "--end")
    with _connection(state) as conn:
        result = marks.mark_customer_caused(conn, by, circuit, starts, ends, reason)
    click.echo(f"mark {result.mark_id} on {result.circuit_key} by {by}")
    for row in result.reissued:
        click.echo(_issued_line(row))


@sla.command("withdraw")
@click.argument("mark_id", type=int)
@click.option("--reason", required=True)
@click.option("--by", required=True, help="Who withdraws it (user key).")
@_command
def withdraw_command(state: Any, mark_id: int, reason: str, by: str) -> None:
    """Withdraw a customer-caused mark (it stays in the audit trail); issued reports of the
    months it touched are issued again."""
    from sla import marks

    with _connection(state) as conn:
        result = marks.withdraw_mark(conn, by, mark_id, reason)
    click.echo(f"mark {result.mark_id} on {result.circuit_key} withdrawn by {by}")
    for row in result.reissued:
        click.echo(_issued_line(row))


def _month_bounds(conn: Any, month: str | None) -> tuple[Any, Any, str]:
    """[start, end) of `month` (default: this month, by the database's now) in UTC, a day
    either side so that every contract's zone is in."""
    from datetime import timedelta

    from sla import reports
    from sla.statement import month_period

    if month is None:
        month = f"{reports.now_of(conn):%Y-%m}"
    start, end = month_period(month, "UTC")
    return start - timedelta(days=1), end + timedelta(days=1), month


@sla.command("marks")
@click.argument("circuit")
@click.option("--month", default=None, help="YYYY-MM (default: this month).")
@_command
def marks_command(state: Any, circuit: str, month: str | None) -> None:
    """A circuit's customer-caused marks, withdrawn ones too (the audit trail)."""
    from sla import marks

    month = _month(month)
    with _connection(state) as conn:
        start, end, month = _month_bounds(conn, month)
        rows = marks.marks_of_circuit(conn, "keyline-cli", circuit, start, end)
    if not rows:
        click.echo(f"no customer-caused marks on {circuit} around {month}")
        return
    for m in rows:
        click.echo(f"{m.id:>6} {m.starts_at.isoformat(' ', 'seconds')}"
                   f" - {m.ends_at.isoformat(' ', 'seconds')}"
                   f" by {m.marked_by}: {m.reason}"
                   + (f"  [withdrawn {m.withdrawn_at:%Y-%m-%d %H:%M} by {m.withdrawn_by}:"
                      f" {m.withdraw_reason}]" if m.withdrawn else ""))


@sla.command("figures")
@click.option("--customer", default=None, help="Only this customer (its key).")
@click.option("--month", default=None,
              help="YYYY-MM (default: this month, to date by the database's now).")
@click.option("--from", "start", default=None,
              help="Any period instead of a month: its start (ISO 8601, no zone: UTC; or"
                   " '-N[mhd]' ago).")
@click.option("--to", "end", default=None,
              help="The period's end (as --from, or 'now'; default: now).")
@_command
def figures_command(state: Any, customer: str | None, month: str | None, start: str | None,
                    end: str | None) -> None:
    """Availability and the error budget left per circuit, for the month to date, a past
    month, or any period (--from, --to)."""
    from datetime import timedelta

    from keyline.alarms_cli import _when
    from sla import reports

    month = _month(month)
    if start is None and end is not None:
        _bad_input("--to: give --from too")
    if start is not None and month is not None:
        _bad_input("--from: give either --month or --from/--to, not both")
    with _connection(state) as conn:
        now = reports.now_of(conn)
        period = None
        if start is not None:
            moments = [_when(text, option) for text, option
                       in ((start, "--from"), (end or "now", "--to"))]
            period = tuple(now + m if isinstance(m, timedelta) else m for m in moments)
            if period[1] <= period[0]:
                _bad_input("--to: the period must end after it starts")
        else:
            month = month or f"{now:%Y-%m}"
        subject = None
        customer_ids = None
        if customer is not None:
            found = reports.subject_of(conn, "customer", customer)
            if found is None:
                _bad_input(f"--customer: no customer {customer!r}")
            subject, customer_ids = found
        document = reports.build_statement(conn, month=month, as_of=now,
                                           customer_ids=customer_ids, subject=subject,
                                           period=period)
    figures = document["figures"]["circuits"]
    what = month if period is None else \
        f"{period[0]:%Y-%m-%d %H:%M:%S %Z} to {period[1]:%Y-%m-%d %H:%M:%S %Z}"
    if not figures:
        click.echo(f"no circuits under contract in {what}")
        return
    click.echo(f"{what}, measured to {now:%Y-%m-%d %H:%M:%S %Z}")
    click.echo(f"{'CIRCUIT':<20} {'CUSTOMER':<10} {'AVAILABILITY':>13} {'TARGET':>9}"
               f" {'DOWNTIME':>13} {'BUDGET LEFT':>14} {'BUDGET USED':>11}")
    for item in document["circuits"]:
        f = figures[item["key"]]
        budget, left = f["error_budget_s"], f["error_budget_left_s"]
        used = "-"
        if budget is not None and Fraction(budget) > 0:
            used = f"{float((1 - Fraction(left) / Fraction(budget)) * 100):.1f} %"
        click.echo(f"{item['key']:<20} {item['customer']:<10}"
                   f" {_pct(f['availability_pct']):>13} {f['target_pct'] + ' %':>9}"
                   f" {_minutes(f['down_s']):>13} {_minutes(left, up=False):>14} {used:>11}")
