"""SLA figures' inputs and issued SLA reports in the store: marks, reports, bulk reads.

Persistence only: the arithmetic (outage intervals, availability, credits) and the rules
(who may mark customer-caused time, when a report is issued) live in sla/, which calls
these functions inside its own transaction. A customer-caused mark says that a circuit's
time over [starts_at, ends_at) was its customer's doing and is excluded from its figures;
it is an audit trail (migration 0016): never edited or deleted, only withdrawn once, with
who, when and why. An issued report is immutable and versioned: a correction is the next
version, with its reason and its difference from the version before, never an edit.

Reads of reports take the viewer's scope like store/tickets.py: `customer_id` (a customer
sees its own customer reports only) and `manager` (an account manager sees the reports of
its own customers and its own account-manager reports). The bulk reads (`windows_by_id`,
`tickets_of_circuits`, `hourly_measurements`; `store.circuit_states.state_histories` for the
states) give sla/ a month's inputs for many circuits in a few queries. They return only
what a statement shows: a maintenance window's time and scope, never the operator's
free-text reason, since statements are handed to customers.

Rows are plain frozen dataclasses; the store imports nothing above config/.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from store.timeseries import HOUR, resolution_for, series_source, stored_retention

REPORT_KINDS = ("customer", "account_manager")


class ReportVersionError(ValueError):
    """A report's difference does not fit the version it would be: version 1 has none (nor
    a reason), a later version states its difference from the one before. Raised to an
    issuer that computed its difference against a version that is no longer the latest
    (another issued meanwhile): recompute it and issue again."""


@dataclass(frozen=True)
class MarkRow:
    """An operator's mark of a circuit's time as customer-caused."""

    id: int
    circuit_id: int
    starts_at: datetime
    ends_at: datetime
    reason: str
    marked_by: str
    marked_at: datetime
    withdrawn_at: datetime | None
    withdrawn_by: str | None
    withdraw_reason: str | None

    @property
    def withdrawn(self) -> bool:
        return self.withdrawn_at is not None


@dataclass(frozen=True)
class ReportRow:
    """One issued version of a monthly SLA report. `statement` is None when a listing was
    asked for without the statements' bodies."""

    id: int
    kind: str  # one of REPORT_KINDS
    subject: str  # the customer's key, or the account manager's login
    customer_id: int | None  # None for an account manager's report
    month: str  # "YYYY-MM"
    version: int
    issued_at: datetime
    issued_by: str
    reason: str | None  # why this version (None for version 1)
    statement: dict[str, Any] | None
    difference: dict[str, Any] | None  # the change from the version before (None for 1)


@dataclass(frozen=True)
class WindowRow:
    """A maintenance window's time and scope ([{"kind", "id", "key"}]), without its reason
    and author (operators' words, not for customers' statements)."""

    id: int
    starts_at: datetime
    ends_at: datetime
    scope: list[dict[str, Any]]


@dataclass(frozen=True)
class TicketFigureRow:
    """What the SLA figures read of a ticket: times, deadlines, breaches, and its circuits
    among those asked for as (circuit_id, added_at, restored_at)."""

    id: int
    kind: str
    customer_id: int | None
    priority: str
    state: str
    opened_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    response_due_at: datetime | None
    resolution_due_at: datetime | None
    response_breached: bool
    resolution_breached: bool
    circuits: tuple[tuple[int, datetime, datetime | None], ...]


# --- customer-caused marks -------------------------------------------------------------------

_MARK_COLUMNS = ("id, circuit_id, starts_at, ends_at, reason, marked_by, marked_at,"
                 " withdrawn_at, withdrawn_by, withdraw_reason")


def add_mark(conn: psycopg.Connection, circuit_id: int, starts_at: datetime, ends_at: datetime,
             reason: str, marked_by: str, *, at: datetime | None = None) -> int:
    """Record that the circuit's time over [starts_at, ends_at) was customer-caused; the
    mark's id. `at` is when it was marked (default: the transaction's time)."""
    row = conn.execute(
        """INSERT INTO customer_caused_marks (circuit_id, starts_at, ends_at, reason, marked_by,
                                              marked_at)
           VALUES (%s, %s, %s, %s, %s, coalesce(%s, now())) RETURNING id""",
        [circuit_id, starts_at, ends_at, reason, marked_by, at]).fetchone()
    assert row is not None
    return int(row[0])


def withdraw_mark(conn: psycopg.Connection, mark_id: int, withdrawn_by: str, reason: str, *,
                  at: datetime | None = None) -> bool:
    """Withdraw a mark (its time counts again), saying who and why; False when there is no
    such mark or it was withdrawn already. `at` defaults to the transaction's time."""
    row = conn.execute(
        """UPDATE customer_caused_marks
              SET withdrawn_at = coalesce(%s, now()), withdrawn_by = %s, withdraw_reason = %s
            WHERE id = %s AND withdrawn_at IS NULL RETURNING id""",
        [at, withdrawn_by, reason, mark_id]).fetchone()
    return row is not None


def get_mark(conn: psycopg.Connection, mark_id: int) -> MarkRow | None:
    row = conn.execute(f"SELECT {_MARK_COLUMNS} FROM customer_caused_marks WHERE id = %s",
                       [mark_id]).fetchone()
    return MarkRow(*row) if row is not None else None


def marks_of(conn: psycopg.Connection, circuit_ids: Iterable[int], start: datetime,
             end: datetime, *, include_withdrawn: bool = False) -> dict[int, list[MarkRow]]:
    """The marks overlapping [start, end) of the circuits named, oldest first, by circuit
    id (every circuit asked for is a key). Withdrawn marks only when asked for (a report's
    audit section shows them; the figures do not count them)."""
    ids = sorted(set(circuit_ids))
    found: dict[int, list[MarkRow]] = {circuit_id: [] for circuit_id in ids}
    for row in conn.execute(
            f"""SELECT {_MARK_COLUMNS} FROM customer_caused_marks
                 WHERE circuit_id = ANY(%s) AND starts_at < %s AND ends_at > %s
                   AND (%s OR withdrawn_at IS NULL)
                 ORDER BY circuit_id, starts_at, id""",
            [ids, end, start, include_withdrawn]):
        found[row[1]].append(MarkRow(*row))
    return found


# --- issued reports --------------------------------------------------------------------------

_REPORT_COLUMNS = ("r.id, r.kind, r.subject, r.customer_id, r.month, r.version, r.issued_at,"
                   " r.issued_by, r.reason")


def issue_report(conn: psycopg.Connection, *, kind: str, subject: str, customer_id: int | None,
                 month: str, issued_at: datetime, issued_by: str, statement: dict[str, Any],
                 difference: dict[str, Any] | None, reason: str | None) -> ReportRow:
    """Issue the next version of the (kind, subject, month) report: 1 when there is none,
    else the latest + 1. Two issuers at once are serialised (a transaction-scoped advisory
    lock on the report's name), so each gets its own version. Raises ReportVersionError
    when `difference` does not fit that version (None for version 1, given for a later
    one) or a version 1 is given a reason, writing nothing. Runs in the caller's
    transaction when there is one (the lock is then held until the caller commits)."""
    if kind not in REPORT_KINDS:
        raise ValueError(f"unknown report kind {kind!r} (kinds: {', '.join(REPORT_KINDS)})")
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                     [f"sla_report\x1f{kind}\x1f{subject}\x1f{month}"])
        latest = conn.execute(
            "SELECT coalesce(max(version), 0) FROM sla_reports WHERE kind = %s"
            " AND subject = %s AND month = %s", [kind, subject, month]).fetchone()
        assert latest is not None
        version = int(latest[0]) + 1
        if version == 1 and (difference is not None or reason is not None):
            raise ReportVersionError(
                f"the {kind} report {subject} {month} has no version yet: version 1 has no"
                " reason and no difference")
        if version > 1 and difference is None:
            raise ReportVersionError(
                f"the {kind} report {subject} {month} has version {version - 1}: version"
                f" {version} needs its difference from version {version - 1}")
        row = conn.execute(
            f"""INSERT INTO sla_reports AS r (kind, subject, customer_id, month, version,
                                              issued_at, issued_by, reason, statement,
                                              difference)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                RETURNING {_REPORT_COLUMNS}, r.statement, r.difference""",
            [kind, subject, customer_id, month, version, issued_at, issued_by, reason,
             Jsonb(statement), Jsonb(difference) if difference is not None else None]
        ).fetchone()
    assert row is not None
    return ReportRow(*row)


def _scope_clause(customer_id: int | None, manager: str | None) -> tuple[str, dict[str, Any]]:
    clauses = []
    params: dict[str, Any] = {}
    if customer_id is not None:
        clauses.append("r.kind = 'customer' AND r.customer_id = %(scope)s")
        params["scope"] = customer_id
    if manager is not None:
        clauses.append("((r.kind = 'customer' AND r.customer_id IN (SELECT id FROM customers"
                       " WHERE account_manager = %(manager)s))"
                       " OR (r.kind = 'account_manager' AND r.subject = %(manager)s))")
        params["manager"] = manager
    return (" AND ".join(clauses) or "true"), params


def latest_report(conn: psycopg.Connection, kind: str, subject: str,
                  month: str) -> ReportRow | None:
    """The latest issued version of a report, or None when it was never issued (unscoped:
    for the issuer, not for a viewer's request)."""
    row = conn.execute(
        f"""SELECT {_REPORT_COLUMNS}, r.statement, r.difference FROM sla_reports r
             WHERE r.kind = %s AND r.subject = %s AND r.month = %s
             ORDER BY r.version DESC LIMIT 1""", [kind, subject, month]).fetchone()
    return ReportRow(*row) if row is not None else None


def get_report(conn: psycopg.Connection, report_id: int, *, customer_id: int | None = None,
               manager: str | None = None) -> ReportRow | None:
    """One issued report with its statement, or None when there is none in the scope given."""
    scope, params = _scope_clause(customer_id, manager)
    row = conn.execute(
        f"""SELECT {_REPORT_COLUMNS}, r.statement, r.difference FROM sla_reports r
             WHERE r.id = %(id)s AND {scope}""", {**params, "id": report_id}).fetchone()
    return ReportRow(*row) if row is not None else None


def list_reports(conn: psycopg.Connection, *, customer_id: int | None = None,
                 manager: str | None = None, month: str | None = None, kind: str | None = None,
                 with_statement: bool = False) -> list[ReportRow]:
    """Issued reports in the scope, newest first (by month, then version), every version;
    without their statements unless `with_statement` (differences are always there)."""
    scope, params = _scope_clause(customer_id, manager)
    body = "r.statement" if with_statement else "NULL::jsonb"
    rows = conn.execute(
        f"""SELECT {_REPORT_COLUMNS}, {body}, r.difference FROM sla_reports r
             WHERE {scope}
               AND (%(month)s::text IS NULL OR r.month = %(month)s)
               AND (%(kind)s::text IS NULL OR r.kind = %(kind)s)
             ORDER BY r.month DESC, r.kind, r.subject, r.version DESC""",
        {**params, "month": month, "kind": kind}).fetchall()
    return [ReportRow(*row) for row in rows]


# --- a month's inputs, in bulk ----------------------------------------------------------------


def windows_by_id(conn: psycopg.Connection, ids: Iterable[int]) -> list[WindowRow]:
    """The maintenance windows named (the ids circuit states carry), by id, without their
    reasons and authors."""
    rows = conn.execute(
        "SELECT id, starts_at, ends_at, scope FROM maintenance_windows WHERE id = ANY(%s)"
        " ORDER BY id", [sorted(set(ids))]).fetchall()
    return [WindowRow(*row) for row in rows]


def tickets_of_circuits(conn: psycopg.Connection, circuit_ids: Iterable[int], start: datetime,
                        end: datetime) -> list[TicketFigureRow]:
    """The fault and complaint tickets (not merged into another) on any of the circuits,
    open at some time in [start, end): opened before `end` and not resolved before
    `start`. Each carries only its circuits among those asked for. Oldest first."""
    ids = sorted(set(circuit_ids))
    rows = conn.execute(
        """SELECT t.id, t.kind, t.customer_id, t.priority, t.state, t.opened_at,
                  t.acknowledged_at, t.resolved_at, t.response_due_at, t.resolution_due_at,
                  t.response_breached, t.resolution_breached,
                  array_agg(tc.circuit_id ORDER BY tc.circuit_id),
                  array_agg(tc.added_at ORDER BY tc.circuit_id),
                  array_agg(tc.restored_at ORDER BY tc.circuit_id)
             FROM tickets t JOIN ticket_circuits tc ON tc.ticket_id = t.id
            WHERE tc.circuit_id = ANY(%(ids)s)
              AND t.kind IN ('fault', 'complaint') AND t.merged_into IS NULL
              AND t.opened_at < %(end)s
              AND (t.resolved_at IS NULL OR t.resolved_at >= %(start)s)
            GROUP BY t.id
            ORDER BY t.opened_at, t.id""", {"ids": ids, "start": start, "end": end}).fetchall()
    return [TicketFigureRow(*row[:12], circuits=tuple(zip(row[12], row[13], row[14],
                                                          strict=True)))
            for row in rows]


def hourly_measurements(conn: psycopg.Connection, object_ids: Iterable[int],
                        metric_names: Iterable[str], start: datetime, end: datetime
                        ) -> list[tuple[int, str, datetime, int, float, float]]:
    """Hourly figures of the objects' metrics (e.g. "rtt_ms", "jitter_ms", "loss_pct") over
    [start, end): (object_id, metric name, hour start in UTC, sample count, sum of the
    values, highest value), ordered by those first three. Read from the hourly rollup (a
    year's report reads 8,760 rows a series, never raw samples; a period under an hour from
    a finer resolution: store.timeseries.resolution_for). The sum is each bucket's average
    times its count, so sum / count is the hour's true mean."""
    resolution = resolution_for(start, end, now=datetime.now(UTC),
                                retention=stored_retention(conn), points=1,
                                coarsest_s=HOUR.bucket_s)
    rows = conn.execute(sql.SQL(
        """SELECT s.object_id, m.name, date_trunc('hour', s.bucket, 'UTC') AS hour,
                  sum(s.sample_count)::bigint, sum(s.avg_value * s.sample_count),
                  max(s.max_value)
             FROM {source} s JOIN metrics m ON m.id = s.metric_id
            WHERE s.object_id = ANY(%s) AND m.name = ANY(%s)
              AND s.bucket >= %s AND s.bucket < %s
            GROUP BY 1, 2, 3
            ORDER BY 1, 2, 3""").format(source=series_source(resolution)),
        [sorted(set(object_ids)), sorted(set(metric_names)), start, end]).fetchall()
    return [(int(o), str(n), h, int(c), float(total), float(top))
            for o, n, h, c, total, top in rows]


# --- what a report is about --------------------------------------------------------------------


@dataclass(frozen=True)
class ReportCircuitRow:
    """A circuit under contract as a report reads it, with its contract's stored terms."""

    id: int
    created_at: datetime
    retired_at: datetime | None
    key: str
    name: str
    customer_key: str
    customer_name: str
    monthly_charge: Any  # the circuit's own, else its contract's
    contract_key: str
    availability_target_pct: Any
    calendar: dict[str, Any]
    credits: list[dict[str, Any]]
    contract_charge: Any
    currency: str
    spec: dict[str, Any]
    latency_target_ms: float | None
    jitter_target_ms: float | None
    loss_target_pct: float | None


def report_circuits(conn: psycopg.Connection, customer_ids: Iterable[int] | None,
                    start: datetime, end: datetime) -> list[ReportCircuitRow]:
    """The circuits under contract of these customers (None: every customer) in service at
    some time of [start, end): imported before its end or judged before it, not retired
    before its start. By customer key, then circuit key."""
    return [ReportCircuitRow(*row) for row in conn.execute(
        """SELECT c.id, c.created_at, c.retired_at, c.key, coalesce(c.description, c.key),
                  cu.key, cu.name, coalesce(c.monthly_charge, s.monthly_charge), s.key,
                  s.availability_target_pct, s.calendar, s.credits, s.monthly_charge,
                  s.currency, s.spec, s.latency_target_ms, s.jitter_target_ms,
                  s.loss_target_pct
             FROM circuits c
             JOIN customers cu ON cu.id = c.customer_id
             JOIN sla_contracts s ON s.id = c.sla_contract_id
            WHERE (%(ids)s::bigint[] IS NULL OR c.customer_id = ANY(%(ids)s))
              AND (c.created_at < %(end)s OR EXISTS (
                       SELECT 1 FROM circuit_states cs
                        WHERE cs.circuit_id = c.id AND cs.time < %(end)s))
              AND (c.retired_at IS NULL OR c.retired_at > %(start)s)
            ORDER BY cu.key, c.key""",
        {"ids": None if customer_ids is None else sorted(set(customer_ids)), "start": start,
         "end": end}).fetchall()]


@dataclass(frozen=True)
class CustomerRow:
    id: int
    key: str
    name: str
    account_manager: str | None
    contact_email: str | None
    language: str | None


def customer_by_key(conn: psycopg.Connection, key: str) -> CustomerRow | None:
    """An active customer (not retired)."""
    row = conn.execute(
        """SELECT id, key, name, account_manager, contact_email, language FROM customers
            WHERE key = %s AND retired_at IS NULL""", [key]).fetchone()
    return CustomerRow(*row) if row else None


def customer_by_id(conn: psycopg.Connection, customer_id: int) -> CustomerRow | None:
    row = conn.execute(
        """SELECT id, key, name, account_manager, contact_email, language FROM customers
            WHERE id = %s""", [customer_id]).fetchone()
    return CustomerRow(*row) if row else None


def managed_customers(conn: psycopg.Connection, manager: str) -> list[int]:
    """The ids of the active customers whose account manager is `manager`, by key."""
    return [row[0] for row in conn.execute(
        """SELECT id FROM customers WHERE account_manager = %s AND retired_at IS NULL
            ORDER BY key""", [manager])]


def user_contact(conn: psycopg.Connection, key: str) -> tuple[str | None, str | None]:
    """(full name, e-mail) of an active user; (None, None) when there is none."""
    row = conn.execute("SELECT full_name, email FROM users WHERE key = %s"
                       " AND retired_at IS NULL", [key]).fetchone()
    return (row[0], row[1]) if row else (None, None)


def report_subjects(conn: psycopg.Connection, month_end: datetime) -> list[tuple[str, str]]:
    """(kind, key) of every active customer with a circuit under contract in service in the
    month ending at `month_end` (UTC), then of their account managers."""
    rows = conn.execute(
        """SELECT DISTINCT cu.key, cu.account_manager FROM customers cu
             JOIN circuits c ON c.customer_id = cu.id
            WHERE cu.retired_at IS NULL AND c.sla_contract_id IS NOT NULL
              AND (c.created_at < %(end)s + interval '1 day' OR EXISTS (
                       SELECT 1 FROM circuit_states cs
                        WHERE cs.circuit_id = c.id AND cs.time < %(end)s))
              AND (c.retired_at IS NULL OR c.retired_at > %(end)s - interval '32 days')
            ORDER BY 1""", {"end": month_end}).fetchall()
    customers = [("customer", key) for key, _manager in rows]
    managers = sorted({("account_manager", manager) for _key, manager in rows if manager})
    return customers + managers


def markable_circuit(conn: psycopg.Connection, key: str,
                     manager: str | None) -> tuple[int, str, int] | None:
    """(id, key, customer id) of an active circuit, among `manager`'s customers' when
    given."""
    row = conn.execute(
        """SELECT c.id, c.key, c.customer_id FROM circuits c
             JOIN customers cu ON cu.id = c.customer_id
            WHERE c.key = %(key)s AND c.retired_at IS NULL
              AND (%(manager)s::text IS NULL OR cu.account_manager = %(manager)s)""",
        {"key": key, "manager": manager}).fetchone()
    return (row[0], row[1], row[2]) if row else None


def circuit_key(conn: psycopg.Connection, circuit_id: int) -> str | None:
    row = conn.execute("SELECT key FROM circuits WHERE id = %s", [circuit_id]).fetchone()
    return row[0] if row else None
