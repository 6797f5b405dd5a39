"""Circuits' service states in the store: the history the alarm pipeline writes, the current
state the portal shows, the intervals the SLA engine reads.

The alarm pipeline decides each circuit's service state (alarms/service_state.py) and saves
every state it takes with `record_states`, in the same transaction as its alarms and read
position, announcing them as one "circuit.state" event per step (payload: the changes). The
portal's pages and live views read `current_states` (scoped by the caller, like every
portal read) so that the console, the customer's page and the topology show the same state
at the same moment: the one stored. `state_history` gives a circuit's states over a period
as intervals, the start of the SLA engine's arithmetic (`state_histories`: many circuits'
in one query, for a month's figures).

Rows are plain values here (`StoredState`); the domain types live in alarms/ and are
rebuilt there (alarms.pipeline), so the store imports nothing above config/.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from store.events import publish

TOPIC = "circuit.state"


@dataclass(frozen=True)
class StoredState:
    """One state of one circuit, from `time` until the next one (`until`, None while it is
    the current one)."""

    circuit_id: int
    customer_id: int | None
    time: datetime
    state: str
    previous: str | None
    underlying: str | None
    cause: str
    cause_kind: str
    elements: tuple[str, ...]
    windows: tuple[int, ...]
    alarm_id: int | None
    until: datetime | None = None
    # the cause as data, for the reader's language (alarms.texts; None: only the English)
    cause_text: dict[str, Any] | None = None

    def payload(self) -> dict[str, Any]:
        return {"circuit_id": self.circuit_id, "customer_id": self.customer_id,
                "time": self.time.isoformat(), "state": self.state, "previous": self.previous,
                "underlying": self.underlying, "cause": self.cause,
                "cause_text": self.cause_text, "cause_kind": self.cause_kind,
                "alarm_id": self.alarm_id}


_INSERT = """
INSERT INTO circuit_states (circuit_id, customer_id, time, state, previous, underlying, cause,
                            cause_kind, elements, windows, alarm_id, cause_text)
VALUES (%(circuit_id)s, %(customer_id)s, %(time)s, %(state)s, %(previous)s, %(underlying)s,
        %(cause)s, %(cause_kind)s, %(elements)s, %(windows)s, %(alarm_id)s, %(cause_text)s)"""

_COLUMNS = ("circuit_id, customer_id, time, state, previous, underlying, cause, cause_kind, "
            "elements, windows, alarm_id, cause_text")


def record_states(conn: psycopg.Connection, states: Sequence[StoredState]) -> None:
    """Insert the states taken and announce them in one "circuit.state" event, in the
    caller's transaction."""
    if not states:
        return
    with conn.cursor() as cursor:
        cursor.executemany(_INSERT, [{
            "circuit_id": s.circuit_id, "customer_id": s.customer_id, "time": s.time,
            "state": s.state, "previous": s.previous, "underlying": s.underlying,
            "cause": s.cause, "cause_kind": s.cause_kind, "elements": list(s.elements),
            "windows": list(s.windows), "alarm_id": s.alarm_id,
            "cause_text": Jsonb(s.cause_text) if s.cause_text is not None else None}
            for s in states])
    publish(conn, TOPIC, {"states": [s.payload() for s in states]})


def _stored(row: Sequence[Any], until: datetime | None = None) -> StoredState:
    (circuit_id, customer_id, time, state, previous, underlying, cause, cause_kind, elements,
     windows, alarm_id, cause_text) = row
    return StoredState(circuit_id, customer_id, time, state, previous, underlying, cause,
                       cause_kind, tuple(elements), tuple(windows), alarm_id, until,
                       cause_text)


def current_states(conn: psycopg.Connection,
                   circuit_ids: Iterable[int] | None = None) -> dict[int, StoredState]:
    """The latest state of every circuit (or of those named), by circuit id. A circuit the
    pipeline has not judged yet is absent: show it as unknown."""
    ids = None if circuit_ids is None else sorted(set(circuit_ids))
    rows = conn.execute(
        f"""SELECT DISTINCT ON (circuit_id) {_COLUMNS} FROM circuit_states
             WHERE %(ids)s::bigint[] IS NULL OR circuit_id = ANY(%(ids)s)
             ORDER BY circuit_id, time DESC, id DESC""", {"ids": ids}).fetchall()
    return {row[0]: _stored(row) for row in rows}


def state_history(conn: psycopg.Connection, circuit_id: int, start: datetime,
                  end: datetime) -> list[StoredState]:
    """The circuit's states over [start, end) as intervals, oldest first: the state in
    force at `start` (its `time` may be earlier) and every later one, each with `until`
    set to the next one's time (None for the last: it is still in force at `end`)."""
    rows = conn.execute(
        f"""(SELECT {_COLUMNS}, id FROM circuit_states
              WHERE circuit_id = %(c)s AND time <= %(start)s
              ORDER BY time DESC, id DESC LIMIT 1)
            UNION ALL
            (SELECT {_COLUMNS}, id FROM circuit_states
              WHERE circuit_id = %(c)s AND time > %(start)s AND time < %(end)s)
            ORDER BY 3, 13""", {"c": circuit_id, "start": start, "end": end}).fetchall()
    return [_stored(row[:-1], rows[i + 1][2] if i + 1 < len(rows) else None)
            for i, row in enumerate(rows)]


def state_histories(conn: psycopg.Connection, circuit_ids: Iterable[int], start: datetime,
                    end: datetime) -> dict[int, list[StoredState]]:
    """`state_history` of many circuits in one query: each circuit's states over
    [start, end) as intervals, oldest first, by circuit id (every circuit asked for is a
    key; one never judged has an empty list). For figures over many circuits and a month,
    `state_spans` reads only what the figures need, several times faster."""
    ids = sorted(set(circuit_ids))
    histories: dict[int, list[StoredState]] = {circuit_id: [] for circuit_id in ids}
    if not ids:
        return histories
    prefixed = ", ".join(f"s.{name.strip()}" for name in _COLUMNS.split(","))
    rows = conn.execute(
        f"""SELECT {prefixed}, s.id {_HISTORIES_FROM}""",
        {"ids": ids, "start": start, "end": end}).fetchall()
    for row, until in _with_until(rows, time_index=2):
        histories[row[0]].append(_stored(row[:-1], until))
    return histories


# Both halves walk the (circuit_id, time DESC, id DESC) index per circuit: the state in force
# at `start` is the first entry at or before it, the later ones a range scan.
_HISTORIES_FROM = """
      FROM unnest(%(ids)s::bigint[]) AS c(circuit_id)
      CROSS JOIN LATERAL (
           (SELECT * FROM circuit_states
             WHERE circuit_id = c.circuit_id AND time <= %(start)s
             ORDER BY time DESC, id DESC LIMIT 1)
           UNION ALL
           (SELECT * FROM circuit_states
             WHERE circuit_id = c.circuit_id AND time > %(start)s AND time < %(end)s
             ORDER BY time DESC, id DESC)) AS s"""


def _with_until(rows: list[Any], time_index: int) -> Iterator[tuple[Any, datetime | None]]:
    """Each row (circuit id first, id last) with the time of the same circuit's next row
    (None for its last), oldest first."""
    # the index gives each circuit's rows newest first; sorting them oldest first is then
    # a reversal of runs (linear)
    rows.sort(key=lambda row: (row[0], row[time_index], row[-1]))
    last = len(rows) - 1
    for i, row in enumerate(rows):
        following = rows[i + 1] if i < last else None
        yield row, (following[time_index] if following is not None
                    and following[0] == row[0] else None)


@dataclass(frozen=True)
class StateSpan:
    """What the SLA figures read of a stored state: from `time` until `until` (None: still
    in force), with its cause, service alarm and maintenance windows."""

    time: datetime
    until: datetime | None
    state: str
    cause: str
    alarm_id: int | None
    windows: tuple[int, ...]


def state_spans(conn: psycopg.Connection, circuit_ids: Iterable[int], start: datetime,
                end: datetime) -> dict[int, list[StateSpan]]:
    """`state_histories` reduced to what the SLA figures need (no elements, no cause data
    to decode), for a month of many circuits: by circuit id, oldest first."""
    ids = sorted(set(circuit_ids))
    spans: dict[int, list[StateSpan]] = {circuit_id: [] for circuit_id in ids}
    if not ids:
        return spans
    rows = conn.execute(
        f"""SELECT s.circuit_id, s.time, s.state, s.cause, s.alarm_id, s.windows, s.id
            {_HISTORIES_FROM}""", {"ids": ids, "start": start, "end": end}).fetchall()
    collecting = gc.isenabled()
    gc.disable()  # a month of states is many objects, all in use: no cycles to look for
    try:
        for row, until in _with_until(rows, time_index=1):
            spans[row[0]].append(StateSpan(row[1], until, row[2], row[3], row[4],
                                           tuple(row[5])))
    finally:
        if collecting:
            gc.enable()
    return spans
