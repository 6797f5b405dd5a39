"""TicketService: tickets that follow the network, as a running service.

The alarm pipeline stores every service state a circuit takes and announces it as a
"circuit.state" event (store/circuit_states.py). The ticket service follows those events with
the store's one event consumer (store/consumer.py): each batch of state changes opens, joins
or resolves tickets (sla/tickets.py `on_circuit_states`) in the same transaction that saves
the service's position, so a service killed at any moment resumes after the last batch it
committed, opening no ticket twice and missing no fault. When an alarm is raised or re-rooted
(an inferred router failure found behind the cut links that first explained the circuits),
the tickets follow their alarm's new root and those of one incident are merged
(sla/tickets.py `rekey_incidents`). It also hears an engineer acknowledging an alarm by
hand ("alarm.updated" with `manual` and action "acknowledged"):
the open tickets of that alarm's incident are acknowledged with it.

On a timer (`sla.tick_interval_s`) it looks at the running clocks: an escalation level
crossed or a deadline missed is written in the ticket's timeline and notified once
(sla/tickets.py `check_clocks`); a resolved ticket nobody answered is closed. Every
`sla.reports_check_interval_s` it issues the month before's SLA reports once that month is
over (sla/reports.py `issue_due_reports`): on the 1st, for every customer and account
manager, each e-mailed through the outbox. The service
keeps no state in memory: everything it knows is in the store, so recovery is the
consumer's alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
from psycopg_pool import ConnectionPool

from sla.reports import issue_due_reports
from sla.settings import SlaSettings
from sla.tickets import (
    StateChange,
    check_clocks,
    on_alarm_acknowledged,
    on_circuit_states,
    rekey_incidents,
)
from store.circuit_states import TOPIC as CIRCUIT_STATE_TOPIC
from store.consumer import Consumer
from store.database import STORE_UNAVAILABLE
from store.events import Event

log = logging.getLogger(__name__)

NAME = "tickets"
TOPICS = (CIRCUIT_STATE_TOPIC, "alarm.")


def utc_now() -> datetime:
    return datetime.now(UTC)


def handle_events(conn: psycopg.Connection, events: list[Event], settings: SlaSettings
                  ) -> list[int]:
    """One batch: the tickets touched (opened, joined, restored, acknowledged)."""
    touched: list[int] = []
    rooted = False
    for event in events:
        try:
            # a savepoint per event: one the rules cannot take (a bug, a row that breaks a
            # constraint) is logged and skipped, rather than stopping every ticket behind it
            with conn.transaction():
                touched += _handle_one(conn, event, settings)
        except STORE_UNAVAILABLE:
            raise
        except Exception:
            log.exception("ticket service could not handle event #%d (%s); skipped",
                          event.id, event.topic)
        if event.topic.startswith("alarm."):
            rooted = True
    if rooted:  # an alarm raised or re-rooted may join two incidents into one
        touched += rekey_incidents(conn, settings)
    return touched


def _handle_one(conn: psycopg.Connection, event: Event, settings: SlaSettings) -> list[int]:
    if event.topic == CIRCUIT_STATE_TOPIC:
        changes = [StateChange.from_payload(s) for s in event.payload.get("states", ())]
        return on_circuit_states(conn, changes, settings)
    if (event.topic == "alarm.updated" and event.payload.get("manual")
            and event.payload.get("action") == "acknowledged"):
        return on_alarm_acknowledged(conn, int(event.payload["id"]),
                                     str(event.payload.get("by") or "unknown"), settings)
    return []


class TicketService:
    """See the module docstring. `start()` returns once the consumer listens."""

    def __init__(self, pool: ConnectionPool, url: str, settings: SlaSettings | None = None,
                 *, clock: Callable[[], datetime] = utc_now, name: str = NAME):
        self.settings = settings or SlaSettings()
        self.clock = clock
        self.touched = 0
        self.reports_issued = 0
        # when the due reports were last looked for (a throttle only: what is issued is in
        # the store)
        self._reports_checked_at: datetime | None = None
        self.consumer = Consumer(pool, url, name, TOPICS, handle=self._handle, tick=self._tick,
                                 tick_interval_s=self.settings.tick_interval_s)

    def start(self, timeout_s: float = 30.0) -> None:
        self.consumer.start(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        self.consumer.stop(timeout_s)

    def __enter__(self) -> TicketService:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def idle(self) -> bool:
        return self.consumer.idle()

    def _handle(self, conn: psycopg.Connection, events: list[Event]) -> None:
        self.touched += len(handle_events(conn, events, self.settings))

    def _tick(self, conn: psycopg.Connection) -> None:
        now = self.clock()
        self.touched += len(check_clocks(conn, now, self.settings))
        checked = self._reports_checked_at
        if checked is None or (now - checked).total_seconds() >= \
                self.settings.reports_check_interval_s:
            self._reports_checked_at = now
            self.reports_issued += len(self._issue_due_reports(conn, now))

    def _issue_due_reports(self, conn: psycopg.Connection, now: datetime) -> list:
        try:
            # a savepoint: a report that cannot be built never holds up the ticket clocks
            with conn.transaction():
                issued = issue_due_reports(conn, now, self.settings.reports_issue_after_h)
        except STORE_UNAVAILABLE:
            raise
        except Exception:
            log.exception("the monthly SLA reports could not be issued; next try in %g s",
                          self.settings.reports_check_interval_s)
            return []
        for report in issued:
            log.info("SLA report issued: %s %s %s version %d", report.kind, report.subject,
                     report.month, report.version)
        return issued
