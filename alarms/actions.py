"""People's actions on alarms and maintenance windows, with every rule they obey.

An engineer acknowledges an alarm, takes the acknowledgement back, clears it by hand with a
reason, declares a maintenance window, ends one early. These functions are the one path for
all of them: the command line (keyline/alarms_cli.py), the REST API (portal/alarms_api.py)
and the pages (portal/alarms_views.py) only turn their input into arguments and an
`ActionError` into their own output, so a rule cannot hold in one and not in another. The
rules: who acts (a user key; with a portal `Viewer`, also what it may see and whether its
role may act, in that order, so a refusal never tells a customer that another's alarm
exists); the texts (a clear needs a reason, comments and reasons are bounded); a window's
scope (1 to `MAX_SCOPE_ITEMS` existing objects), its start (not more than
`MAINTENANCE_START_GRACE` before the database's now(), so an outage cannot be turned into
excluded downtime after the fact, and not more than the `alarms.maintenance_max_ahead_days`
setting after it), its end (after the start, and at most `alarms.maintenance_max_days`
later: an end in year 9999 would exclude a circuit from its SLA for ever), and that a
window which is over never changes. store/alarms.py persists; the trigger of
store/migrations/0006_alarms.sql refuses to change a past window even to a caller that
bypasses this module.

Every action carries two texts: the internal note (`comment` of an acknowledgement, `reason`
of a clear or a window; staff only, and the one existing rows hold) and an optional
`customer_note`, the only free text a customer is ever shown (portal/alarm_access.py). An
engineer writes to the NOC in the first and to the customer in the second, so a note naming
another customer or an engineer's guess never reaches a tenant by accident.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import psycopg

from alarms.model import SCOPE_KINDS, Alarm, MaintenanceWindow
from alarms.rules import AlarmSettings
from store import alarms as alarm_store
from store.queries import Viewer
from store.refusals import ActionError, Refusal  # the one error of every action

# The roles that work alarms and maintenance; the others only read.
ACTOR_ROLES = ("engineer", "noc", "admin")

# How far before now a new window may start: the minutes a form takes to fill in, not a way
# to excuse an outage after the fact (the SLA figures exclude maintenance time). "Now" is
# the database's, so that clocks of the machines running the CLI and the portal do not count.
MAINTENANCE_START_GRACE = timedelta(minutes=10)

MAX_TEXT = 2000  # a comment or a reason
MAX_SCOPE_ITEMS = 50
MAX_SCOPE_TEXT = 300
MAX_ACTOR = 200


class EndedWindow(NamedTuple):
    window: MaintenanceWindow
    cancelled: bool  # it had not begun: it was deleted rather than shortened


Actor = Viewer | str  # a portal viewer, or a user key (the command line's --by)


# --- who acts --------------------------------------------------------------------------------


def may_act(actor: Actor) -> bool:
    """Whether the actor's role works alarms and maintenance (a bare user key: the command
    line, run by whoever holds the database, may)."""
    return not isinstance(actor, Viewer) or actor.role in ACTOR_ROLES


def authorize(actor: Actor, doing: str) -> str:
    """The actor's user key, or ActionError (FORBIDDEN for a role that may not act, INVALID
    for a blank key)."""
    if isinstance(actor, Viewer):
        if actor.role not in ACTOR_ROLES:
            raise ActionError(None, f"the role {actor.role} may not {doing}",
                              Refusal.FORBIDDEN)
        key: Any = actor.user_key
    else:
        key = actor
    if not isinstance(key, str) or not key.strip():
        raise ActionError("actor", "say who acts (a user key)")
    if len(key) > MAX_ACTOR or "\x00" in key:
        raise ActionError("actor", f"a user key has at most {MAX_ACTOR} characters and no NUL")
    return key


# --- texts and times -------------------------------------------------------------------------


def clean_text(value: Any, field: str, *, required: bool, max_length: int = MAX_TEXT
               ) -> str | None:
    """A free text: stripped; None when empty and optional."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ActionError(field, f"{field} must be a string")
    value = value.strip()
    if not value:
        if required:
            raise ActionError(field, f"{field} is required")
        return None
    if len(value) > max_length:
        raise ActionError(field, f"{field} may be at most {max_length} characters")
    if "\x00" in value:
        raise ActionError(field, f"{field} must not contain NUL characters")
    return value


def _moment(value: Any, field: str, now: datetime) -> datetime:
    """A time given as a datetime, an ISO 8601 text (`2026-01-31T12:00:00Z`) or a timedelta
    from the database's now; one without offset is UTC."""
    if isinstance(value, timedelta):
        try:
            return now + value
        except OverflowError:
            raise ActionError(field, f"{field} is out of range") from None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        text = text if "T" in text else text.replace(" ", "T", 1)
        text = text.replace("z", "Z").replace("Z", "+00:00")
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ActionError(field, f"{field} must be an ISO 8601 time such as "
                                     "2026-01-31T12:00:00Z") from None
    else:
        raise ActionError(field, f"{field} is required, an ISO 8601 time such as "
                                 "2026-01-31T12:00:00Z")
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ActionError(field, f"{field} is out of range") from None


def _now(conn: psycopg.Connection) -> datetime:
    return conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]


def _grace_text() -> str:
    minutes = MAINTENANCE_START_GRACE.total_seconds() / 60
    return f"{minutes:g} minutes"


# --- alarms ----------------------------------------------------------------------------------


def alarm_to_change(conn: psycopg.Connection, actor: Actor, alarm_id: int) -> str:
    """Check that the alarm exists (and that a viewer may see it), then that the actor may
    act: the actor's key. The actions below start with it; a front end may call it first to
    refuse before it reads the rest of a request."""
    if isinstance(actor, Viewer):
        if alarm_store.get_alarm_for(conn, actor, alarm_id, timeline=False) is None:
            raise ActionError("alarm_id", "no such alarm", Refusal.NOT_FOUND)
    else:
        try:
            alarm_store.get_alarm(conn, alarm_id, timeline=False)
        except alarm_store.AlarmStoreError:
            raise ActionError("alarm_id", f"no alarm {alarm_id}", Refusal.NOT_FOUND) from None
    return authorize(actor, "change alarms")


def _change(change: Any, conn: psycopg.Connection, alarm_id: int, by: str,
            text: str | None, customer_note: Any) -> Alarm:
    note = clean_text(customer_note, "customer_note", required=False)
    try:
        return change(conn, alarm_id, by, text, customer_note=note)
    except alarm_store.AlarmStoreError as error:  # its state changed: cleared, not acked
        raise ActionError("alarm_id", str(error), Refusal.CONFLICT) from None


def acknowledge(conn: psycopg.Connection, actor: Actor, alarm_id: int,
                comment: Any = None, customer_note: Any = None) -> Alarm:
    """Acknowledge an active alarm ("I am on it"), with an optional internal note
    (`comment`) and customer note; acknowledging again replaces both."""
    by = alarm_to_change(conn, actor, alarm_id)
    text = clean_text(comment, "comment", required=False)
    return _change(alarm_store.acknowledge, conn, alarm_id, by, text, customer_note)


def unacknowledge(conn: psycopg.Connection, actor: Actor, alarm_id: int,
                  comment: Any = None, customer_note: Any = None) -> Alarm:
    """Take back the acknowledgement of an active alarm, with optional notes."""
    by = alarm_to_change(conn, actor, alarm_id)
    text = clean_text(comment, "comment", required=False)
    return _change(alarm_store.unacknowledge, conn, alarm_id, by, text, customer_note)


def clear(conn: psycopg.Connection, actor: Actor, alarm_id: int, reason: Any,
          customer_note: Any = None) -> Alarm:
    """Clear an active alarm by hand; the reason (the internal note) is required, a
    customer note optional. If its condition still holds, the pipeline raises it again as a
    new occurrence."""
    by = alarm_to_change(conn, actor, alarm_id)
    text = clean_text(reason, "reason", required=True)
    return _change(alarm_store.clear_alarm, conn, alarm_id, by, text, customer_note)


# --- maintenance windows ---------------------------------------------------------------------


def _scope_texts(scope: Any) -> list[str]:
    """KIND:KEY texts, from a list of them or one text (items separated by commas or lines),
    checked for shape and number; not yet looked up."""
    if isinstance(scope, str):
        scope = [part for part in scope.replace(",", "\n").splitlines() if part.strip()]
    if (not isinstance(scope, Sequence) or isinstance(scope, str) or not scope
            or not all(isinstance(item, str) for item in scope)):
        raise ActionError("scope", "scope must be a list of KIND:KEY texts (device:KEY, "
                                   "port:DEVICE:PORT, circuit:KEY, customer:KEY)")
    if len(scope) > MAX_SCOPE_ITEMS:
        raise ActionError("scope", f"scope may name at most {MAX_SCOPE_ITEMS} objects")
    texts = []
    for item in scope:
        text = clean_text(item, "scope", required=True, max_length=MAX_SCOPE_TEXT)
        assert text is not None
        kind, _, rest = text.partition(":")
        if kind not in SCOPE_KINDS or not rest:
            raise ActionError("scope", f"scope {text!r} is not KIND:KEY with KIND one of "
                                       f"{', '.join(SCOPE_KINDS)}")
        texts.append(text)
    return texts


def declare_maintenance(conn: psycopg.Connection, actor: Actor, scope_texts: Any,
                        starts_at: Any, ends_at: Any, reason: Any,
                        customer_note: Any = None, *,
                        rules: AlarmSettings | None = None) -> MaintenanceWindow:
    """Declare a maintenance window on `scope_texts` (`device:KEY`, `port:DEVICE:PORT`,
    `circuit:KEY`, `customer:KEY`; a list, or one text of comma-separated items) from
    `starts_at` to `ends_at` (datetimes, ISO 8601 texts, or timedeltas from the database's
    now; no offset means UTC), `reason` the internal note, `customer_note` optional, within
    the bounds of `rules` (the `alarms` settings; default: their defaults). Nothing is
    stored unless every rule holds (module docstring)."""
    rules = rules or AlarmSettings()
    by = authorize(actor, "declare maintenance")
    texts = _scope_texts(scope_texts)
    now = _now(conn)
    start = _moment(starts_at, "starts_at", now)
    end = _moment(ends_at, "ends_at", now)
    text = clean_text(reason, "reason", required=True)
    assert text is not None
    note = clean_text(customer_note, "customer_note", required=False)
    if start < now - MAINTENANCE_START_GRACE:
        raise ActionError("starts_at", "a window may not start more than "
                                       f"{_grace_text()} in the past")
    if start > now + timedelta(days=rules.maintenance_max_ahead_days):
        raise ActionError("starts_at", "a window may start at most "
                                       f"{rules.maintenance_max_ahead_days:g} days ahead (setting"
                                       " alarms.maintenance_max_ahead_days)")
    if end <= start:
        raise ActionError("ends_at", "a window must end after it starts")
    if end - start > timedelta(days=rules.maintenance_max_days):
        raise ActionError("ends_at", "a window may last at most "
                                     f"{rules.maintenance_max_days:g} days (setting"
                                     " alarms.maintenance_max_days)")
    try:
        items = alarm_store.resolve_scope(conn, texts)
    except alarm_store.AlarmStoreError as error:
        raise ActionError("scope", str(error)) from None
    return alarm_store.add_window(conn, items, start, end, text, by, note)


def end_maintenance(conn: psycopg.Connection, actor: Actor, window_id: int) -> EndedWindow:
    """End a running window now, or cancel one not yet begun. A window that is over is
    history and cannot change (CONFLICT); a viewer must be able to see the window (else
    NOT_FOUND, before its role is looked at)."""
    if isinstance(actor, Viewer):
        window = alarm_store.get_window_for(conn, actor, window_id)
    else:
        window = next((w for w in alarm_store.list_windows(conn) if w.id == window_id), None)
    if window is None:
        raise ActionError("window_id", f"no maintenance window {window_id}",
                          Refusal.NOT_FOUND)
    by = authorize(actor, "end maintenance")
    now = _now(conn)
    if window.ends_at <= now:
        raise ActionError("window_id", f"maintenance window {window_id} is over: past "
                                       "windows are immutable", Refusal.CONFLICT)
    try:
        ended = alarm_store.end_window(conn, window_id, by)
    except alarm_store.AlarmStoreError as error:
        raise ActionError("window_id", str(error), Refusal.CONFLICT) from None
    except psycopg.errors.CheckViolation as error:  # the trigger: it ended meanwhile
        raise ActionError("window_id", str(error.diag.message_primary or error),
                          Refusal.CONFLICT) from None
    return EndedWindow(ended, window.starts_at > now)
