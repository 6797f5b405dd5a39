"""SLA figures: a circuit's month as time up, down and excluded, and what that costs.

A circuit's service state history (up, down, degraded, unknown, maintenance, as the alarm
pipeline stored it) is cut into *pieces* at every change of anything that matters: a state
change, the start or end of a maintenance window or of time an operator marked
customer-caused, the period's edges. Each piece gets one status by precedence, Checkmk's
availability being the model: outside the service period, then maintenance, then
customer-caused (excluded like maintenance), then unknown, down, degraded, up. Only the
piece's *scheduled* time counts: the business microseconds of the contract's service
calendar inside it (sla/calendar.py), so a business-hours contract ignores nights, holidays
and counts make-up working days, and a 24x7 contract counts the month's real seconds (743
hours in a March with a daylight-saving change).

Availability is Zabbix 6's SLI: up / (up + down) over scheduled time, with maintenance and
customer-caused time removed. `degraded` counts as down only where the contract says
`degraded_counts_as_down`; `unknown` (a monitoring gap) counts as the contract's
`unknown_counts_as` says: excluded by default and always reported as a monitoring gap,
never silently up. An outage is a run of pieces counted down; its downtime is its scheduled
time, so an outage across a night on a business-hours contract is one outage with only its
working hours as downtime. A credit step applies when availability is below its threshold
("below", strict) or at or below it ("at or below", as the contract words it); of the steps
that apply the one with the largest credit wins. Every comparison is exact: times are
integer microseconds, ratios are fractions, money is decimal. docs/sla-statement.md
specifies the arithmetic for a customer to redo it; these functions take plain values (no
database), so `keyline sla compute` runs them on an exported statement alone.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from itertools import pairwise

from sla.calendar import Calendar, business_microseconds

STATES = ("up", "down", "degraded", "unknown", "maintenance")
UNKNOWN_COUNTS = ("excluded", "down", "up")
# the statuses a piece may take, by precedence (outside the service period is not a status:
# it is the part of a piece that the calendar does not schedule)
STATUSES = ("maintenance", "customer_caused", "unknown", "down", "degraded", "up")
EXCLUSION_KINDS = ("maintenance", "customer_caused")
NO_HISTORY = "no state recorded"
SAMPLES_DROPPED = "samples dropped: a degradation cannot be ruled out"
_US = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class StateSpan:
    """One stored state of a circuit, from `start` until `end` (None: still in force)."""

    start: datetime
    end: datetime | None
    state: str  # one of STATES
    cause: str = ""
    alarm_id: int | None = None
    ticket_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Exclusion:
    """Time removed from the figures: a maintenance window covering the circuit, or time an
    operator marked customer-caused (with the reason the customer reads)."""

    start: datetime
    end: datetime
    kind: str  # one of EXCLUSION_KINDS
    ref: int | None = None  # the window's or the mark's id
    reason: str = ""


@dataclass(frozen=True)
class CreditStep:
    """Credit `credit_pct` of the monthly charge when availability is below `threshold_pct`
    (or at or below it, when `inclusive`)."""

    threshold_pct: Decimal
    credit_pct: Decimal
    inclusive: bool = False

    def __post_init__(self) -> None:
        # a float threshold (99.9 is 99.900000000000005...) would make "below" wrong at the
        # threshold: every number becomes the decimal it is written as
        object.__setattr__(self, "threshold_pct", _decimal(self.threshold_pct, "threshold_pct"))
        object.__setattr__(self, "credit_pct", _decimal(self.credit_pct, "credit_pct"))

    def applies(self, availability_pct: Fraction) -> bool:
        threshold = Fraction(self.threshold_pct)
        return availability_pct <= threshold if self.inclusive else availability_pct < threshold

    @property
    def wording(self) -> str:
        threshold = format(self.threshold_pct.normalize(), "f")
        return f"{'at or below' if self.inclusive else 'below'} {threshold} %"


@dataclass(frozen=True)
class Terms:
    """What a circuit's contract says about its figures."""

    contract: str  # the contract's key
    availability_target_pct: Decimal
    calendar: Calendar
    credits: tuple[CreditStep, ...] = ()
    monthly_charge: Decimal = Decimal(0)
    currency: str = ""
    degraded_counts_as_down: bool = False
    unknown_counts_as: str = "excluded"
    latency_target_ms: float | None = None
    jitter_target_ms: float | None = None
    loss_target_pct: float | None = None

    def __post_init__(self) -> None:
        if self.unknown_counts_as not in UNKNOWN_COUNTS:
            raise ValueError(f"unknown_counts_as must be one of {', '.join(UNKNOWN_COUNTS)},"
                             f" got {self.unknown_counts_as!r}")
        object.__setattr__(self, "availability_target_pct",
                           _decimal(self.availability_target_pct, "availability_target_pct"))
        object.__setattr__(self, "monthly_charge",
                           _decimal(self.monthly_charge, "monthly_charge"))


def _decimal(value: Decimal | float | int | str, name: str) -> Decimal:
    """A number as the decimal it is written as (a float through its shortest text)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or not isinstance(value, float | int | str):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        return Decimal(str(value))
    except ArithmeticError:
        raise ValueError(f"{name} must be a number, got {value!r}") from None


@dataclass(frozen=True)
class Piece:
    """A stretch of wall time with one status; `scheduled_us` of it falls inside the service
    calendar. Pieces that are not up are the circuit's outage intervals (issue's item 1)."""

    start: datetime
    end: datetime
    status: str  # one of STATUSES
    state: str  # the stored state underneath (the status may be maintenance over a down)
    counted_as: str  # "up", "down" or "excluded"
    scheduled_us: int
    cause: str
    alarm_id: int | None
    ticket_ids: tuple[int, ...]
    exclusion_refs: tuple[int, ...] = ()


@dataclass(frozen=True)
class Outage:
    """A run of pieces counted down. `open`: it was still going at the time measured to."""

    start: datetime
    end: datetime
    open: bool
    downtime_us: int
    wall_us: int
    states: tuple[str, ...]
    causes: tuple[str, ...]
    alarm_ids: tuple[int, ...]
    ticket_ids: tuple[int, ...]


@dataclass(frozen=True)
class Credit:
    step: CreditStep
    amount: Decimal  # in the contract's currency, to the cent (half up)
    currency: str


@dataclass(frozen=True)
class CircuitFigures:
    """A circuit's figures for a period, measured up to `measured_until` (the period's end,
    or "now" for the month to date)."""

    circuit: str
    terms: Terms
    period_start: datetime
    period_end: datetime
    measured_until: datetime
    wall_us: int
    scheduled_us: int  # of the measured part
    period_scheduled_us: int  # of the whole period, for the error budget
    by_status_us: dict[str, int]  # scheduled time of each status
    up_us: int  # counted as up: up, degraded or unknown by the contract
    down_us: int  # counted as down
    availability_pct: Fraction | None  # None: nothing counted (all excluded or unscheduled)
    pieces: tuple[Piece, ...]
    outages: tuple[Outage, ...]
    credit: Credit | None
    budget_us: Fraction | None  # downtime the target allows in the whole period
    exclusions: tuple[Exclusion, ...] = ()

    @property
    def downtime_us(self) -> int:
        return self.down_us

    @property
    def monitoring_gap_us(self) -> int:
        return self.by_status_us["unknown"]

    @property
    def excluded_us(self) -> int:
        return self.scheduled_us - self.up_us - self.down_us

    @property
    def outage_count(self) -> int:
        return sum(1 for outage in self.outages if outage.downtime_us > 0)

    @property
    def longest_outage_us(self) -> int:
        return max((outage.downtime_us for outage in self.outages), default=0)

    @property
    def target_met(self) -> bool | None:
        if self.availability_pct is None:
            return None
        return self.availability_pct >= Fraction(self.terms.availability_target_pct)

    @property
    def budget_left_us(self) -> Fraction | None:
        return None if self.budget_us is None else self.budget_us - self.down_us


# --- the pieces ----------------------------------------------------------------------------


def _aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is UTC:  # the common case, and a month holds many instants
        return moment
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got the naive {moment.isoformat()}")
    return moment.astimezone(UTC)


def _in_utc(states: Iterable[StateSpan]) -> list[StateSpan]:
    """The spans with UTC instants: Python compares two times of one time zone by their wall
    clock, ignoring `fold`, so 02:30 CEST and the 02:30 CET an hour later would be equal."""
    return [span if span.start.tzinfo is UTC and (span.end is None or span.end.tzinfo is UTC)
            else replace(span, start=_aware(span.start, "state start"),
                         end=None if span.end is None else _aware(span.end, "state end"))
            for span in states]


def counted_as(status: str, terms: Terms) -> str:
    """How a status counts under the contract: "up", "down" or "excluded"."""
    if status in ("maintenance", "customer_caused"):
        return "excluded"
    if status == "unknown":
        return terms.unknown_counts_as
    if status == "degraded":
        return "down" if terms.degraded_counts_as_down else "up"
    return status


def _covering(intervals: Sequence[tuple[datetime, datetime, int | None]], start: datetime,
              end: datetime) -> tuple[int, ...] | None:
    """The refs of the intervals covering [start, end) (None: none does). Pieces are cut at
    every interval edge, so an interval covers a piece wholly or not at all."""
    refs = [ref for first, last, ref in intervals if first <= start and end <= last]
    if not refs:
        return None
    return tuple(ref for ref in refs if ref is not None)


def pieces_of(terms: Terms, states: Sequence[StateSpan], exclusions: Sequence[Exclusion],
              start: datetime, end: datetime, *,
              sample_gaps: Sequence[tuple[datetime, datetime]] = ()) -> list[Piece]:
    """The circuit's wall time [start, end) cut into pieces of one status each, oldest
    first. Time before the first stored state is `unknown` (never judged). `sample_gaps`
    are ranges whose samples were dropped (the collector's spool was full): under a contract
    that counts degraded as down, `up` there is `unknown`, since a degradation (a threshold
    crossed by the lost samples) cannot be ruled out; a state seen through observations
    (down, degraded, maintenance) is never lost, and stays."""
    start, end = _aware(start, "start"), _aware(end, "end")
    if end <= start:
        return []
    # a span of no length (two changes in one transaction's instant) holds no time, and
    # must not hide the span that starts at the same instant
    spans = sorted((span for span in _in_utc(states)
                    if span.end is None or span.end > span.start),
                   key=lambda span: span.start)
    for span in spans:
        if span.state not in STATES:
            raise ValueError(f"unknown service state {span.state!r} at {span.start.isoformat()}"
                             f" (states: {', '.join(STATES)})")
    for before, after in pairwise(spans):
        if before.end is None or before.end > after.start:
            raise ValueError(f"the states overlap: {before.state} from"
                             f" {before.start.isoformat()} and {after.state} from"
                             f" {after.start.isoformat()}")
    maintenance = [(e.start, e.end, e.ref) for e in exclusions if e.kind == "maintenance"]
    customer = [(e.start, e.end, e.ref) for e in exclusions if e.kind == "customer_caused"]
    for exclusion in exclusions:
        if exclusion.kind not in EXCLUSION_KINDS:
            raise ValueError(f"unknown exclusion kind {exclusion.kind!r}")
        if exclusion.end <= exclusion.start:
            raise ValueError(f"the {exclusion.kind} interval {exclusion.ref} ends"
                             f" ({exclusion.end.isoformat()}) before it starts"
                             f" ({exclusion.start.isoformat()})")
    edges = {start, end}
    for span in spans:
        edges.add(_aware(span.start, "state start"))
        if span.end is not None:
            edges.add(_aware(span.end, "state end"))
    for exclusion in exclusions:
        edges.add(_aware(exclusion.start, "exclusion start"))
        edges.add(_aware(exclusion.end, "exclusion end"))
    gaps = [(_aware(first, "gap start"), _aware(last, "gap end"), None)
            for first, last in sample_gaps if last > first] \
        if terms.degraded_counts_as_down else []
    for first, last, _ref in gaps:
        edges.update((first, last))
    cuts = sorted(edge for edge in edges if start <= edge <= end)
    span_starts = [span.start for span in spans]
    pieces: list[Piece] = []
    for first, last in pairwise(cuts):
        index = bisect_right(span_starts, first) - 1
        span = spans[index] if index >= 0 else None
        if span is not None and span.end is not None and span.end <= first:
            span = None  # a hole between stored states: nothing was judged then
        state = span.state if span is not None else "unknown"
        in_window = _covering(maintenance, first, last)
        marked = _covering(customer, first, last)
        if state == "maintenance" or in_window is not None:
            status, refs = "maintenance", in_window or ()
        elif marked is not None:
            status, refs = "customer_caused", marked
        else:
            status, refs = state, ()
        cause = span.cause if span is not None else NO_HISTORY
        if status == "up" and gaps and _covering(gaps, first, last) is not None:
            status, cause = "unknown", SAMPLES_DROPPED
        pieces.append(Piece(
            first, last, status, state, counted_as(status, terms),
            business_microseconds(terms.calendar, first, last),
            cause,
            span.alarm_id if span is not None else None,
            span.ticket_ids if span is not None else (), refs))
    return _joined(pieces)


def _joined(pieces: list[Piece]) -> list[Piece]:
    """Neighbouring pieces that differ in nothing but their edges, as one."""
    joined: list[Piece] = []
    for piece in pieces:
        last = joined[-1] if joined else None
        if (last is not None and last.end == piece.start and last.status == piece.status
                and last.state == piece.state and last.cause == piece.cause
                and last.alarm_id == piece.alarm_id and last.ticket_ids == piece.ticket_ids
                and last.exclusion_refs == piece.exclusion_refs):
            joined[-1] = Piece(last.start, piece.end, last.status, last.state, last.counted_as,
                               last.scheduled_us + piece.scheduled_us, last.cause,
                               last.alarm_id, last.ticket_ids, last.exclusion_refs)
        else:
            joined.append(piece)
    return joined


def outages_of(pieces: Sequence[Piece], *, still_going: bool) -> list[Outage]:
    """The runs of pieces counted down. `still_going`: the state of the last piece had not
    ended at the time measured to, so an outage ending there is open (it counts up to
    then)."""
    outages: list[Outage] = []
    run: list[Piece] = []

    def close(is_last: bool) -> None:
        if not run:
            return
        outages.append(Outage(
            run[0].start, run[-1].end, is_last and still_going,
            sum(p.scheduled_us for p in run),
            _micros(run[-1].end) - _micros(run[0].start),
            _unique(p.state for p in run), _unique(p.cause for p in run if p.cause),
            _unique(p.alarm_id for p in run if p.alarm_id is not None),
            _unique(t for p in run for t in p.ticket_ids)))
        run.clear()

    for piece in pieces:
        if piece.counted_as == "down" and (not run or run[-1].end == piece.start):
            run.append(piece)
        else:
            close(False)
            if piece.counted_as == "down":
                run.append(piece)
    close(True)
    return outages


def _unique(values: Iterable) -> tuple:
    return tuple(dict.fromkeys(values))


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _ONE_US


# --- the figures ---------------------------------------------------------------------------


def credit_for(terms: Terms, availability_pct: Fraction | None,
               monthly_charge: Decimal | None = None) -> Credit | None:
    """The credit the contract owes for this availability (None: none owed). Of the steps
    that apply, the one with the largest credit."""
    if availability_pct is None:
        return None
    applying = [step for step in terms.credits if step.applies(availability_pct)]
    if not applying:
        return None
    step = max(applying, key=lambda s: (s.credit_pct, -s.threshold_pct))
    charge = terms.monthly_charge if monthly_charge is None else monthly_charge
    amount = (charge * step.credit_pct / 100).quantize(_CENT, rounding=ROUND_HALF_UP)
    return Credit(step, amount, terms.currency)


def circuit_figures(circuit: str, terms: Terms, states: Sequence[StateSpan],
                    exclusions: Sequence[Exclusion], period_start: datetime,
                    period_end: datetime, as_of: datetime, *,
                    monthly_charge: Decimal | None = None,
                    sample_gaps: Sequence[tuple[datetime, datetime]] = ()) -> CircuitFigures:
    """A circuit's figures over [period_start, period_end), measured up to `as_of` when that
    is earlier (the month to date): what is after `as_of` has not happened and counts
    nowhere, except in the error budget, which is the whole period's."""
    period_start = _aware(period_start, "period_start")
    period_end = _aware(period_end, "period_end")
    as_of = _aware(as_of, "as_of")
    if period_end <= period_start:
        raise ValueError(f"the period ends ({period_end.isoformat()}) before it starts"
                         f" ({period_start.isoformat()})")
    measured_until = max(period_start, min(period_end, as_of))
    states = _in_utc(states)
    pieces = pieces_of(terms, states, exclusions, period_start, measured_until,
                       sample_gaps=sample_gaps)
    by_status = dict.fromkeys(STATUSES, 0)
    up_us = down_us = 0
    for piece in pieces:
        by_status[piece.status] += piece.scheduled_us
        if piece.counted_as == "up":
            up_us += piece.scheduled_us
        elif piece.counted_as == "down":
            down_us += piece.scheduled_us
    scheduled_us = sum(by_status.values())
    availability = Fraction(100 * up_us, up_us + down_us) if up_us + down_us else None
    # open: the state under the outage's end had not ended at the time measured to (an
    # outage cut by the month's end in a report issued later is not open: it ended)
    still_going = any(span.start < measured_until
                      and (span.end is None or span.end > as_of) for span in states)
    outages = outages_of(pieces, still_going=still_going)
    period_scheduled = business_microseconds(terms.calendar, period_start, period_end)
    excluded_us = scheduled_us - up_us - down_us
    budget = (1 - Fraction(terms.availability_target_pct) / 100) * (period_scheduled
                                                                     - excluded_us)
    credit = credit_for(terms, availability, monthly_charge)
    return CircuitFigures(
        circuit, terms, period_start, period_end, measured_until,
        _micros(measured_until) - _micros(period_start), scheduled_us, period_scheduled,
        by_status, up_us, down_us, availability, tuple(pieces), tuple(outages), credit,
        budget if period_scheduled - excluded_us > 0 else None,
        tuple(e for e in exclusions if e.start < measured_until and e.end > period_start))


# --- several circuits ------------------------------------------------------------------------


@dataclass(frozen=True)
class TicketFacts:
    """What the figures read of a ticket (fault or complaint, never one merged into another:
    those count in no figure)."""

    id: int
    kind: str
    priority: str
    opened_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    response_breached: bool
    resolution_breached: bool
    circuits: tuple[str, ...] = ()


@dataclass(frozen=True)
class TicketFigures:
    """Tickets opened in the period: how many, how fast they were acknowledged (MTTA) and
    resolved (MTTR) in wall time, and how many breached a deadline."""

    opened: int
    acknowledged: int
    resolved: int
    mtta_us: int | None
    mttr_us: int | None
    response_breached: int
    resolution_breached: int


def ticket_figures(tickets: Iterable[TicketFacts], start: datetime,
                   end: datetime) -> TicketFigures:
    """Figures of the tickets opened in [start, end). MTTA and MTTR are means over those
    acknowledged (resolved) by now, rounded down to the microsecond."""
    start, end = _aware(start, "start"), _aware(end, "end")
    chosen = [t for t in tickets if start <= _aware(t.opened_at, "opened_at") < end]
    acknowledge_us = [_micros(t.acknowledged_at) - _micros(t.opened_at)
                      for t in chosen if t.acknowledged_at is not None]
    resolve_us = [_micros(t.resolved_at) - _micros(t.opened_at)
                  for t in chosen if t.resolved_at is not None]
    return TicketFigures(
        len(chosen), len(acknowledge_us), len(resolve_us),
        sum(acknowledge_us) // len(acknowledge_us) if acknowledge_us else None,
        sum(resolve_us) // len(resolve_us) if resolve_us else None,
        sum(1 for t in chosen if t.response_breached),
        sum(1 for t in chosen if t.resolution_breached))


@dataclass(frozen=True)
class Totals:
    """Figures of several circuits together: times add up, availability is the ratio of the
    sums (a long circuit month weighs more than a short one), credits add up per currency."""

    circuits: int
    scheduled_us: int
    up_us: int
    down_us: int
    monitoring_gap_us: int
    excluded_us: int
    availability_pct: Fraction | None
    outage_count: int
    longest_outage_us: int
    credits: dict[str, Decimal] = field(default_factory=dict)
    circuits_below_target: int = 0


def totals(figures: Iterable[CircuitFigures]) -> Totals:
    items = list(figures)
    up = sum(f.up_us for f in items)
    down = sum(f.down_us for f in items)
    credits: dict[str, Decimal] = {}
    for f in items:
        if f.credit is not None:
            credits[f.credit.currency] = credits.get(f.credit.currency, Decimal(0)) \
                + f.credit.amount
    return Totals(
        len(items), sum(f.scheduled_us for f in items), up, down,
        sum(f.monitoring_gap_us for f in items), sum(f.excluded_us for f in items),
        Fraction(100 * up, up + down) if up + down else None,
        sum(f.outage_count for f in items),
        max((f.longest_outage_us for f in items), default=0), credits,
        sum(1 for f in items if f.target_met is False))


@dataclass(frozen=True)
class Measurement:
    """One hour of a measured metric of a circuit (from the hourly rollup)."""

    hour: datetime
    count: int
    total: float
    maximum: float


@dataclass(frozen=True)
class MetricFigures:
    metric: str  # rtt_ms, jitter_ms, loss_pct
    target: float | None
    samples: int
    mean: float | None
    worst_hour_mean: float | None
    maximum: float | None

    @property
    def target_met(self) -> bool | None:
        if self.target is None or self.mean is None:
            return None
        return self.mean <= self.target


METRIC_TARGETS = {"rtt_ms": "latency_target_ms", "jitter_ms": "jitter_target_ms",
                  "loss_pct": "loss_target_pct"}


def metric_figures(terms: Terms, metric: str, hours: Sequence[Measurement]) -> MetricFigures:
    """A metric's month: the mean of every sample (sum of sums over sum of counts), the
    worst hour's mean and the highest sample, against the contract's target."""
    target = getattr(terms, METRIC_TARGETS[metric]) if metric in METRIC_TARGETS else None
    count = sum(h.count for h in hours)
    if not count:
        return MetricFigures(metric, target, 0, None, None, None)
    return MetricFigures(
        metric, target, count, sum(h.total for h in hours) / count,
        max(h.total / h.count for h in hours if h.count),
        max(h.maximum for h in hours))


def percent_text(value: Fraction | None, places: int = 4) -> str:
    """A percentage for people, rounded *down* at `places` decimals so that a figure shown
    never reads better than it is (99.99499 % shows 99.9949, not 99.9950)."""
    if value is None:
        return "—"
    scale = 10 ** places
    floored = Fraction(int(value * scale // 1), scale)
    return f"{Decimal(floored.numerator) / Decimal(floored.denominator):.{places}f}"
