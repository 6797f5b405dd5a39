"""Customer-caused time: an operator's statement that part of a circuit's outage was the
customer's doing, and so counts against nobody.

A customer who powers off its own CE, or asks the operator to hold a repair until its staff
can open a site, has an outage the operator's SLA does not cover. An operator (NOC, engineer,
admin) or the customer's account manager marks that interval customer-caused, always with a
reason: the SLA figures then exclude it like maintenance (sla/availability.py), the reason
is printed in the customer's report and statement, and the mark stays in the audit trail
for good (store/sla.py: a mark is never edited or deleted; it can be withdrawn, with a reason,
which is recorded too). A mark that touches a month whose report is already issued issues
that report again as a new version stating the difference (sla/reports.py); the issued
version is never edited. These functions are the one path for the command line and the
portal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from alarms.actions import ActionError, Actor, Refusal, _moment, clean_text
from sla import reports
from store import sla as sla_store
from store.queries import Viewer

MARKING_ROLES = ("noc", "engineer", "admin", "account_manager")
MAX_MARK_DAYS = 62  # a mark is an outage's part, not a way to excuse a quarter
MAX_MARK_AGE_DAYS = 400  # a late correction, not a rewrite of last year's reports


@dataclass(frozen=True)
class MarkResult:
    mark_id: int
    circuit_key: str
    reissued: tuple[Any, ...]  # the reports issued again (store.sla.ReportRow)


def _who(actor: Actor, doing: str) -> str:
    if isinstance(actor, Viewer):
        if actor.role not in MARKING_ROLES:
            raise ActionError(None, f"the role {actor.role} may not {doing}", Refusal.FORBIDDEN)
        return actor.user_key
    if not isinstance(actor, str) or not actor.strip() or len(actor) > 200 or "\x00" in actor:
        raise ActionError("actor", "say who acts (a user key, at most 200 characters)")
    return actor


def _circuit(conn: psycopg.Connection, actor: Actor, circuit: Any) -> tuple[int, str, int]:
    """(id, key, customer id) of the circuit as the actor may see it; NOT_FOUND otherwise (an
    account manager sees only the circuits of their customers)."""
    if not isinstance(circuit, str) or not circuit.strip() or len(circuit) > 300:
        raise ActionError("circuit", "name the circuit by its key")
    manager = actor.manager if isinstance(actor, Viewer) else None
    found = sla_store.markable_circuit(conn, circuit.strip(), manager)
    if found is None or (isinstance(actor, Viewer) and actor.scope is not None
                         and found[2] != actor.scope):
        # another customer's circuit does not exist, for a customer
        raise ActionError("circuit", f"no circuit {circuit.strip()!r}", Refusal.NOT_FOUND)
    return found


def mark_customer_caused(conn: psycopg.Connection, actor: Actor, circuit: Any, start: Any,
                         end: Any, reason: Any) -> MarkResult:
    """Mark [start, end) of the circuit customer-caused, and issue again the reports of
    issued months it touches. In the caller's transaction."""
    circuit_id, circuit_key, customer_id = _circuit(conn, actor, circuit)
    by = _who(actor, "mark customer-caused time")
    now = reports.now_of(conn)
    starts_at = _moment(start, "start", now)
    ends_at = _moment(end, "end", now)
    if starts_at < now - timedelta(days=MAX_MARK_AGE_DAYS):
        raise ActionError("start", f"a mark starts at most {MAX_MARK_AGE_DAYS} days ago (the"
                                   " reports of older months are settled)")
    if ends_at <= starts_at:
        raise ActionError("end", "the end must be after the start")
    if ends_at > now:
        raise ActionError("end", "customer-caused time is marked after it happened: the end"
                                 " must not be in the future")
    if ends_at - starts_at > timedelta(days=MAX_MARK_DAYS):
        raise ActionError("end", f"a mark covers at most {MAX_MARK_DAYS} days")
    text = clean_text(reason, "reason", required=True)
    mark_id = sla_store.add_mark(conn, circuit_id, starts_at, ends_at, text, by)
    reissued = reports.reissue_touched(
        conn, customer_id, starts_at, ends_at, by=by,
        reason=f"customer-caused time marked on circuit {circuit_key}"
               f" ({starts_at.isoformat()} to {ends_at.isoformat()}): {text}")
    return MarkResult(mark_id, circuit_key, tuple(reissued))


def withdraw_mark(conn: psycopg.Connection, actor: Actor, mark_id: Any,
                  reason: Any) -> MarkResult:
    """Withdraw a mark (it stays in the audit trail, withdrawn), and issue again the reports
    of issued months it touched."""
    if isinstance(mark_id, bool) or not isinstance(mark_id, int):
        raise ActionError("mark_id", "a mark id is a positive integer")
    mark = sla_store.get_mark(conn, mark_id) if 0 < mark_id < 2**63 else None
    if mark is None:
        raise ActionError("mark_id", "no such mark", Refusal.NOT_FOUND)
    # "no such mark" before "not your role": a customer learns nothing of other marks
    _circuit_id, circuit_key, customer_id = _circuit_by_id(conn, actor, mark.circuit_id)
    by = _who(actor, "withdraw a customer-caused mark")
    text = clean_text(reason, "reason", required=True)
    if not sla_store.withdraw_mark(conn, mark_id, by, text):
        raise ActionError("mark_id", f"mark {mark_id} is withdrawn already", Refusal.CONFLICT)
    reissued = reports.reissue_touched(
        conn, customer_id, mark.starts_at, mark.ends_at, by=by,
        reason=f"customer-caused mark {mark_id} on circuit {circuit_key} withdrawn: {text}")
    return MarkResult(mark_id, circuit_key, tuple(reissued))


def _circuit_by_id(conn: psycopg.Connection, actor: Actor,
                   circuit_id: int) -> tuple[int, str, int]:
    key = sla_store.circuit_key(conn, circuit_id)
    if key is None:
        raise ActionError("mark_id", "no such mark", Refusal.NOT_FOUND)
    try:
        return _circuit(conn, actor, key)
    except ActionError:
        raise ActionError("mark_id", "no such mark", Refusal.NOT_FOUND) from None


def marks_of_circuit(conn: psycopg.Connection, actor: Actor, circuit: Any, start: datetime,
                     end: datetime) -> list[Any]:
    """The circuit's marks over [start, end), withdrawn ones included (the audit trail)."""
    circuit_id, _key, _customer = _circuit(conn, actor, circuit)
    return sla_store.marks_of(conn, [circuit_id], start, end,
                              include_withdrawn=True).get(circuit_id, [])
