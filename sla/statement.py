"""SLA statements: a report's figures together with every input they come from.

A statement is one JSON document (docs/sla-statement.md is its specification): who it is
about and for which period, the contract terms of each circuit (target, calendar, credit
steps, charge, how degraded and unknown count), each circuit's stored service states over
its period, the maintenance windows and customer-caused marks that exclude time, the tickets
behind MTTA/MTTR and breaches, hourly latency/jitter/loss measurements where they exist,
and the figures the report printed. `compute` recomputes every figure from the inputs alone
with the same functions the report used (sla/availability.py), so `keyline sla compute FILE`
checks a report without a database, and so can a customer with a spreadsheet. Every figure
in the JSON is exact: durations as seconds with six decimals (microseconds), availability
as its exact fraction beside the percentage rounded down, money as decimal strings.

`build` reads the inputs of a customer's (or an account manager's) month from the store;
`figures_json` turns computed figures into the statement's `figures`.
"""

from __future__ import annotations

import gc
import zoneinfo
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from itertools import pairwise
from typing import Any

from sla import availability as figures
from sla.availability import (
    CircuitFigures,
    CreditStep,
    Exclusion,
    Measurement,
    StateSpan,
    Terms,
    TicketFacts,
)
from sla.calendar import calendar_of

FORMAT = "keyline-sla-statement"
FORMAT_VERSION = 1
MEASURED_METRICS = ("rtt_ms", "jitter_ms", "loss_pct")


class StatementError(ValueError):
    """The statement is not valid; the message names the place (a JSON path)."""

    def __init__(self, where: str, message: str):
        self.where = where
        super().__init__(f"{where}: {message}")


# --- periods ------------------------------------------------------------------------------------


def month_of(text: str) -> tuple[int, int]:
    """(year, month) of "YYYY-MM"; a clear error otherwise."""
    try:
        year, month = (int(part) for part in str(text).split("-"))
        date(year, month, 1)
    except ValueError:
        raise ValueError(f"month must be YYYY-MM (e.g. 2026-10), got {text!r}") from None
    return year, month


def month_period(month: str, timezone: str) -> tuple[datetime, datetime]:
    """The month's [start, end) in UTC: from local midnight of its 1st to the next month's."""
    year, number = month_of(month)
    zone = zoneinfo.ZoneInfo(timezone)
    following = (year + (number == 12), number % 12 + 1)
    return (datetime(year, number, 1, tzinfo=zone).astimezone(UTC),
            datetime(*following, 1, tzinfo=zone).astimezone(UTC))


def previous_month(now: datetime, timezone: str) -> str:
    """The month before the one `now` falls in, in the time zone."""
    local = now.astimezone(zoneinfo.ZoneInfo(timezone))
    first = local.date().replace(day=1) - timedelta(days=1)
    return f"{first.year:04d}-{first.month:02d}"


# --- JSON values --------------------------------------------------------------------------------


def instant_text(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def seconds_text(us: int | Fraction | None) -> str | None:
    """Microseconds as seconds with six decimals, exactly (a Fraction is rounded down)."""
    if us is None:
        return None
    whole = us.numerator // us.denominator if isinstance(us, Fraction) else us
    sign = "-" if whole < 0 else ""
    whole = abs(whole)
    return f"{sign}{whole // 1_000_000}.{whole % 1_000_000:06d}"


def decimal_text(value: Decimal) -> str:
    """A decimal without trailing zeros or exponent: 25.0 -> "25", 99.90 -> "99.9"."""
    return format(value.normalize(), "f")


def fraction_text(value: Fraction | None) -> str | None:
    return None if value is None else f"{value.numerator}/{value.denominator}"


def _read(where: str, value: Any, kind: str) -> Any:
    try:
        if kind == "instant":
            moment = datetime.fromisoformat(str(value))
            if moment.tzinfo is None:
                raise ValueError("no time zone offset")
            return moment.astimezone(UTC)
        if kind == "decimal":
            return Decimal(str(value))
        if kind == "float":
            return float(value)
        if kind == "int":
            if isinstance(value, bool) or int(value) != value:
                raise ValueError("not an integer")
            return int(value)
    except (ValueError, TypeError, InvalidOperation) as error:
        raise StatementError(where, f"{value!r} is not a valid {kind} ({error})") from None
    raise AssertionError(kind)


def _field(data: Mapping[str, Any], name: str, where: str, kind: str | None = None,
           *, required: bool = True, default: Any = None) -> Any:
    if not isinstance(data, Mapping):
        raise StatementError(where, f"must be an object, got {type(data).__name__}")
    if name not in data or data[name] is None:
        if required:
            raise StatementError(f"{where}.{name}", "is missing")
        return default
    value = data[name]
    return _read(f"{where}.{name}", value, kind) if kind else value


# --- inputs <-> JSON ----------------------------------------------------------------------------


def terms_json(terms: Terms, calendar_spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "availability_target_pct": decimal_text(terms.availability_target_pct),
        "calendar": dict(calendar_spec),
        "degraded_counts_as_down": terms.degraded_counts_as_down,
        "unknown_counts_as": terms.unknown_counts_as,
        "credits": [{("at_or_below_pct" if step.inclusive else "below_pct"):
                     decimal_text(step.threshold_pct),
                     "credit_pct": decimal_text(step.credit_pct)}
                    for step in terms.credits],
        "monthly_charge": str(terms.monthly_charge),
        "currency": terms.currency,
        "latency_target_ms": terms.latency_target_ms,
        "jitter_target_ms": terms.jitter_target_ms,
        "loss_target_pct": terms.loss_target_pct,
    }


def terms_of_json(key: str, data: Mapping[str, Any], where: str) -> Terms:
    calendar_spec = _field(data, "calendar", where)
    try:
        calendar = calendar_of(calendar_spec)
    except (KeyError, ValueError, TypeError, zoneinfo.ZoneInfoNotFoundError) as error:
        raise StatementError(f"{where}.calendar", f"not a valid calendar ({error})") from None
    steps = []
    for index, step in enumerate(_field(data, "credits", where, default=[], required=False)):
        at = f"{where}.credits[{index}]"
        inclusive = "at_or_below_pct" in step
        threshold = _field(step, "at_or_below_pct" if inclusive else "below_pct", at,
                           "decimal")
        steps.append(CreditStep(threshold, _field(step, "credit_pct", at, "decimal"),
                                inclusive))
    unknown = _field(data, "unknown_counts_as", where, required=False, default="excluded")
    if unknown not in figures.UNKNOWN_COUNTS:
        raise StatementError(f"{where}.unknown_counts_as",
                             f"{unknown!r} is not one of {', '.join(figures.UNKNOWN_COUNTS)}")
    return Terms(
        key, _field(data, "availability_target_pct", where, "decimal"), calendar,
        tuple(steps), _field(data, "monthly_charge", where, "decimal", required=False,
                             default=Decimal(0)),
        _field(data, "currency", where, required=False, default=""),
        bool(_field(data, "degraded_counts_as_down", where, required=False, default=False)),
        unknown,
        _field(data, "latency_target_ms", where, "float", required=False),
        _field(data, "jitter_target_ms", where, "float", required=False),
        _field(data, "loss_target_pct", where, "float", required=False))


@dataclass(frozen=True)
class CircuitInputs:
    """One circuit's inputs as the statement holds them."""

    key: str
    customer: str
    contract: str
    monthly_charge: Decimal
    period_start: datetime
    period_end: datetime
    states: tuple[StateSpan, ...]
    exclusions: tuple[Exclusion, ...]
    measurements: dict[str, tuple[Measurement, ...]]
    sample_gaps: tuple[tuple[datetime, datetime], ...] = ()


def circuit_json(inputs: CircuitInputs, *, name: str | None = None,
                 samples_dropped: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    return {
        "key": inputs.key, "name": name, "customer": inputs.customer,
        "contract": inputs.contract, "monthly_charge": str(inputs.monthly_charge),
        "period": {"start": instant_text(inputs.period_start),
                   "end": instant_text(inputs.period_end)},
        "states": [{"start": instant_text(s.start), "end": instant_text(s.end),
                    "state": s.state, "cause": s.cause, "alarm_id": s.alarm_id,
                    "ticket_ids": list(s.ticket_ids)} for s in inputs.states],
        "maintenance": [{"id": e.ref, "start": instant_text(e.start),
                         "end": instant_text(e.end)}
                        for e in inputs.exclusions if e.kind == "maintenance"],
        "customer_caused": [{"id": e.ref, "start": instant_text(e.start),
                             "end": instant_text(e.end), "reason": e.reason}
                            for e in inputs.exclusions if e.kind == "customer_caused"],
        "measurements": {metric: [{"hour": instant_text(m.hour), "count": m.count,
                                   "sum": m.total, "max": m.maximum} for m in hours]
                         for metric, hours in inputs.measurements.items()},
        "samples_dropped": [dict(item) for item in samples_dropped],
    }


def circuit_of_json(data: Mapping[str, Any], where: str) -> CircuitInputs:
    period = _field(data, "period", where)
    states = []
    for index, item in enumerate(_field(data, "states", where, default=[], required=False)):
        at = f"{where}.states[{index}]"
        state = _field(item, "state", at)
        if state not in figures.STATES:
            raise StatementError(f"{at}.state",
                                 f"{state!r} is not one of {', '.join(figures.STATES)}")
        states.append(StateSpan(
            _field(item, "start", at, "instant"),
            _field(item, "end", at, "instant", required=False),
            state, str(item.get("cause") or ""),
            _field(item, "alarm_id", at, "int", required=False),
            tuple(_read(f"{at}.ticket_ids", t, "int") for t in item.get("ticket_ids") or ())))
    for index, (before, after) in enumerate(pairwise(states)):
        if after.start < before.start or before.end is None or before.end > after.start:
            raise StatementError(f"{where}.states[{index + 1}]",
                                 "states must be in time order without overlapping: this one"
                                 f" starts at {after.start.isoformat()}, before the one before"
                                 " it ends")
    exclusions = []
    for kind in figures.EXCLUSION_KINDS:
        for index, item in enumerate(_field(data, kind, where, default=[], required=False)):
            at = f"{where}.{kind}[{index}]"
            start = _field(item, "start", at, "instant")
            end = _field(item, "end", at, "instant")
            if end <= start:
                raise StatementError(at, "ends before it starts")
            exclusions.append(Exclusion(start, end, kind,
                                        _field(item, "id", at, "int", required=False),
                                        str(item.get("reason") or "")))
    measurements: dict[str, tuple[Measurement, ...]] = {}
    for metric, hours in (_field(data, "measurements", where, default={}, required=False)
                          or {}).items():
        at = f"{where}.measurements.{metric}"
        measurements[metric] = tuple(
            Measurement(_field(h, "hour", f"{at}[{i}]", "instant"),
                        _field(h, "count", f"{at}[{i}]", "int"),
                        _field(h, "sum", f"{at}[{i}]", "float"),
                        _field(h, "max", f"{at}[{i}]", "float"))
            for i, h in enumerate(hours))
    gaps = []
    for index, item in enumerate(_field(data, "samples_dropped", where, default=[],
                                        required=False)):
        at = f"{where}.samples_dropped[{index}]"
        gaps.append((_field(item, "first", at, "instant"), _field(item, "last", at, "instant")))
    start = _field(period, "start", f"{where}.period", "instant")
    end = _field(period, "end", f"{where}.period", "instant")
    if end <= start:
        raise StatementError(f"{where}.period", "ends before it starts")
    return CircuitInputs(
        _field(data, "key", where), str(data.get("customer") or ""),
        _field(data, "contract", where),
        _field(data, "monthly_charge", where, "decimal"), start, end,
        tuple(states), tuple(exclusions), measurements, tuple(gaps))


def ticket_json(ticket: TicketFacts) -> dict[str, Any]:
    return {"id": ticket.id, "kind": ticket.kind, "priority": ticket.priority,
            "opened_at": instant_text(ticket.opened_at),
            "acknowledged_at": instant_text(ticket.acknowledged_at),
            "resolved_at": instant_text(ticket.resolved_at),
            "response_breached": ticket.response_breached,
            "resolution_breached": ticket.resolution_breached,
            "circuits": list(ticket.circuits)}


def ticket_of_json(data: Mapping[str, Any], where: str) -> TicketFacts:
    return TicketFacts(
        _field(data, "id", where, "int"), str(data.get("kind") or "fault"),
        str(data.get("priority") or ""), _field(data, "opened_at", where, "instant"),
        _field(data, "acknowledged_at", where, "instant", required=False),
        _field(data, "resolved_at", where, "instant", required=False),
        bool(data.get("response_breached")), bool(data.get("resolution_breached")),
        tuple(str(c) for c in data.get("circuits") or ()))


# --- figures -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportFigures:
    """Every figure of a statement: per circuit, per customer, all together."""

    period_start: datetime  # the earliest circuit period start
    period_end: datetime
    as_of: datetime
    circuits: dict[str, CircuitFigures]
    customers: dict[str, figures.Totals]
    total: figures.Totals
    tickets: figures.TicketFigures
    tickets_by_customer: dict[str, figures.TicketFigures]
    measurements: dict[str, dict[str, figures.MetricFigures]]


@contextmanager
def garbage_collector_paused() -> Iterator[None]:
    """A month's figures are many small objects, all in use until the end: the cyclic
    garbage collector would walk them over and over for nothing (a third of the time)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def compute(statement: Mapping[str, Any]) -> ReportFigures:
    """Recompute every figure from the statement's inputs alone."""
    with garbage_collector_paused():
        return _compute(statement)


def _compute(statement: Mapping[str, Any]) -> ReportFigures:
    if not isinstance(statement, Mapping):
        raise StatementError("$", "a statement is a JSON object")
    if statement.get("format") != FORMAT:
        raise StatementError("$.format", f"not a Keyline SLA statement (format must be"
                             f" {FORMAT!r}, got {statement.get('format')!r})")
    version = statement.get("format_version")
    if version != FORMAT_VERSION:
        raise StatementError("$.format_version", f"version {version!r} is not supported"
                             f" (this Keyline reads version {FORMAT_VERSION})")
    as_of = _field(statement, "as_of", "$", "instant")
    contracts = {key: terms_of_json(key, value, f"$.contracts.{key}")
                 for key, value in (_field(statement, "contracts", "$") or {}).items()}
    circuit_figures: dict[str, CircuitFigures] = {}
    measured: dict[str, dict[str, figures.MetricFigures]] = {}
    customer_of: dict[str, str] = {}
    for index, item in enumerate(_field(statement, "circuits", "$")):
        where = f"$.circuits[{index}]"
        inputs = circuit_of_json(item, where)
        terms = contracts.get(inputs.contract)
        if terms is None:
            raise StatementError(f"{where}.contract",
                                 f"no contract {inputs.contract!r} in $.contracts")
        if inputs.key in circuit_figures:
            raise StatementError(f"{where}.key", f"circuit {inputs.key!r} is listed twice")
        circuit_figures[inputs.key] = figures.circuit_figures(
            inputs.key, terms, inputs.states, inputs.exclusions, inputs.period_start,
            inputs.period_end, as_of, monthly_charge=inputs.monthly_charge,
            sample_gaps=inputs.sample_gaps)
        measured[inputs.key] = {metric: figures.metric_figures(terms, metric, hours)
                                for metric, hours in inputs.measurements.items()}
        customer_of[inputs.key] = inputs.customer
    tickets = [ticket_of_json(item, f"$.tickets[{index}]")
               for index, item in enumerate(statement.get("tickets") or [])]
    if circuit_figures:
        start = min(f.period_start for f in circuit_figures.values())
        end = max(f.period_end for f in circuit_figures.values())
    else:
        period = _field(statement, "period", "$")
        start = _field(period, "start", "$.period", "instant")
        end = _field(period, "end", "$.period", "instant")
    customers = sorted(set(customer_of.values()))
    by_customer = {customer: figures.totals(f for key, f in circuit_figures.items()
                                            if customer_of[key] == customer)
                   for customer in customers}
    customer_circuits = {customer: {key for key, c in customer_of.items() if c == customer}
                         for customer in customers}
    tickets_by_customer = {
        customer: figures.ticket_figures(
            [t for t in tickets if set(t.circuits) & customer_circuits[customer]], start, end)
        for customer in customers}
    return ReportFigures(start, end, as_of, circuit_figures, by_customer,
                         figures.totals(circuit_figures.values()),
                         figures.ticket_figures(tickets, start, end), tickets_by_customer,
                         measured)


def _totals_json(total: figures.Totals) -> dict[str, Any]:
    return {
        "circuits": total.circuits,
        "scheduled_s": seconds_text(total.scheduled_us),
        "up_s": seconds_text(total.up_us),
        "down_s": seconds_text(total.down_us),
        "excluded_s": seconds_text(total.excluded_us),
        "monitoring_gap_s": seconds_text(total.monitoring_gap_us),
        "availability": fraction_text(total.availability_pct and total.availability_pct / 100),
        "availability_pct": figures.percent_text(total.availability_pct, 6)
        if total.availability_pct is not None else None,
        "outage_count": total.outage_count,
        "longest_outage_s": seconds_text(total.longest_outage_us),
        "credits": {currency: str(amount) for currency, amount in sorted(total.credits.items())},
        "circuits_below_target": total.circuits_below_target,
    }


def _tickets_json(tickets: figures.TicketFigures) -> dict[str, Any]:
    return {"opened": tickets.opened, "acknowledged": tickets.acknowledged,
            "resolved": tickets.resolved, "mtta_s": seconds_text(tickets.mtta_us),
            "mttr_s": seconds_text(tickets.mttr_us),
            "response_breached": tickets.response_breached,
            "resolution_breached": tickets.resolution_breached}


def circuit_figures_json(f: CircuitFigures) -> dict[str, Any]:
    credit = f.credit
    return {
        "contract": f.terms.contract,
        "period": {"start": instant_text(f.period_start), "end": instant_text(f.period_end)},
        "measured_until": instant_text(f.measured_until),
        "scheduled_s": seconds_text(f.scheduled_us),
        "period_scheduled_s": seconds_text(f.period_scheduled_us),
        "by_status_s": {status: seconds_text(us) for status, us in f.by_status_us.items()},
        "up_s": seconds_text(f.up_us),
        "down_s": seconds_text(f.down_us),
        "excluded_s": seconds_text(f.excluded_us),
        "monitoring_gap_s": seconds_text(f.monitoring_gap_us),
        "availability": fraction_text(f.availability_pct and f.availability_pct / 100),
        "availability_pct": figures.percent_text(f.availability_pct, 6)
        if f.availability_pct is not None else None,
        "target_pct": decimal_text(f.terms.availability_target_pct),
        "target_met": f.target_met,
        "outage_count": f.outage_count,
        "longest_outage_s": seconds_text(f.longest_outage_us),
        "outages": [{"start": instant_text(o.start), "end": instant_text(o.end),
                     "open": o.open, "downtime_s": seconds_text(o.downtime_us),
                     "duration_s": seconds_text(o.wall_us), "states": list(o.states),
                     "causes": list(o.causes), "alarm_ids": list(o.alarm_ids),
                     "ticket_ids": list(o.ticket_ids)} for o in f.outages],
        "intervals": [{"start": instant_text(p.start), "end": instant_text(p.end),
                       "status": p.status, "state": p.state, "counted_as": p.counted_as,
                       "scheduled_s": seconds_text(p.scheduled_us), "cause": p.cause,
                       "alarm_id": p.alarm_id, "ticket_ids": list(p.ticket_ids)}
                      for p in f.pieces if p.status != "up"],
        "error_budget_s": seconds_text(f.budget_us),
        "error_budget_left_s": seconds_text(f.budget_left_us),
        "credit": None if credit is None else {
            "step": credit.step.wording, "credit_pct": decimal_text(credit.step.credit_pct),
            "amount": str(credit.amount), "currency": credit.currency},
    }


def figures_json(report: ReportFigures) -> dict[str, Any]:
    """The statement's `figures`: what `keyline sla compute` compares, key by key."""
    return {
        "as_of": instant_text(report.as_of),
        "period": {"start": instant_text(report.period_start),
                   "end": instant_text(report.period_end)},
        "total": _totals_json(report.total),
        "tickets": _tickets_json(report.tickets),
        "customers": {key: {**_totals_json(total),
                            "tickets": _tickets_json(report.tickets_by_customer[key])}
                      for key, total in report.customers.items()},
        "circuits": {key: {**circuit_figures_json(f), "measurements": {
            metric: {"target": m.target, "samples": m.samples, "mean": m.mean,
                     "worst_hour_mean": m.worst_hour_mean, "max": m.maximum,
                     "target_met": m.target_met}
            for metric, m in report.measurements.get(key, {}).items()}}
            for key, f in report.circuits.items()},
    }


def differences(stated: Any, computed: Any, where: str = "figures") -> list[str]:
    """Where two figure trees differ, one line per leaf ("figures.total.down_s: the
    statement says 2700.000000, recomputed 2760.000000")."""
    if isinstance(stated, Mapping) and isinstance(computed, Mapping):
        found: list[str] = []
        for key in sorted(set(stated) | set(computed), key=str):
            if key not in computed:
                found.append(f"{where}.{key}: in the statement only")
            elif key not in stated:
                found.append(f"{where}.{key}: recomputed only ({computed[key]!r})")
            else:
                found.extend(differences(stated[key], computed[key], f"{where}.{key}"))
        return found
    if isinstance(stated, list) and isinstance(computed, list) and len(stated) == len(computed):
        return [line for index, (a, b) in enumerate(zip(stated, computed, strict=True))
                for line in differences(a, b, f"{where}[{index}]")]
    if stated != computed and not _same_number(stated, computed):
        return [f"{where}: the statement says {stated!r}, recomputed {computed!r}"]
    return []


def _same_number(stated: Any, computed: Any) -> bool:
    """A figure a YAML file holds as a number (an unquoted 2700.000000) against the decimal
    text Keyline writes: the same when equal as written."""
    if isinstance(stated, bool) or not isinstance(stated, int | float) \
            or not isinstance(computed, str):
        return False
    try:
        return Decimal(str(stated)) == Decimal(computed)
    except InvalidOperation:
        return False


def check(statement: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The recomputed figures, and how they differ from the statement's own (empty: the
    statement's figures are exactly what its inputs give)."""
    computed = figures_json(compute(statement))
    stated = statement.get("figures")
    if stated is None:
        return computed, ["figures: the statement has no figures to compare with"]
    return computed, differences(stated, computed)
