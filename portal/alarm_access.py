"""What of an alarm a viewer may see: one rule for the REST API, the pages, the live
messages and the Socket.IO catch-up.

An alarm belongs to the customers it hits (`impacted_customers`, the same rule as
store.alarms' SQL filter): a viewer whose audience holds none of them may not see it at all
(None here, 404 on the API, absent from a room). What a viewer sees of an alarm it may see
is cut by `viewer_alarm`:

- the impact lists are narrowed to the viewer's own circuits and customers: "6 circuits,
  2 customers" is staff-only knowledge, a customer sees its own impacted circuits only;
- `root_cause_id` is kept only when the viewer may see the root cause alarm too (else None);
- the internal texts are staff-only: who acknowledged (a customer sees *that* it is
  acknowledged and when), the acknowledgement's internal note, the people in the timeline
  (shown as "operator"), every timeline comment (internal notes, and the pipeline's own
  notes such as the impact counts); what a person wrote for the customers
  (`customer_note`, alarms.actions) is what is left;
- the alarmed object's summary, qualifier and id are left out for a customer when the
  object belongs to another customer (a device or port at its site, or a port ending only
  its circuits, even on the operator's PE); of the detail, a customer keeps only the
  summary's words as data (`customer_words`, for its language), where the summary shows.

`alarm_view` is the JSON form of that cut (REST's body, and the fields of a live message:
portal/live.py adds only where the alarm shows on the topology). A live room
``customer:<id>`` is that customer's audience (`customer_audience`), whoever joins it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from alarms.model import PIPELINE_ACTOR, Alarm, AlarmKey, TimelineEntry
from alarms.texts import TEXT, english
from store import alarms as alarm_store
from store.queries import Viewer, circuits_for, customers_for

# Who a customer is told acted, for any person's change.
OPERATOR_ACTOR = "operator"


@dataclass(frozen=True)
class Audience:
    """Who an alarm is cut for: `staff` reads internal texts; `customers` and `circuits`
    are the ids it may see (None: every one, for staff not narrowed to accounts)."""

    staff: bool
    customers: frozenset[int] | None = None
    circuits: frozenset[int] | None = None

    def may_see(self, impacted_customers: Iterable[int]) -> bool:
        return self.customers is None or not self.customers.isdisjoint(impacted_customers)


STAFF = Audience(staff=True)


def audience_for(conn: Any, viewer: Viewer) -> Audience:
    """The viewer's audience (store.queries' scoping: a customer, an account manager's
    accounts, or everything)."""
    if viewer.scope is None and viewer.manager is None:
        return Audience(staff=viewer.is_staff)
    return Audience(viewer.is_staff,
                    frozenset(c.id for c in customers_for(conn, viewer)),
                    frozenset(c.id for c in circuits_for(conn, viewer)))


def customer_audience(conn: Any, customer_id: int) -> Audience:
    """A customer's own audience: its live room's, whoever joined it."""
    return audience_for(conn, Viewer(f"live:customer:{customer_id}", "customer",
                                     customer_id=customer_id))


@dataclass
class AlarmContext:
    """What the cut needs besides the alarms: the customers each root cause hits, and the
    customers each alarmed object belongs to (empty: the operator's own)."""

    roots: dict[int, frozenset[int]] = field(default_factory=dict)
    owners: dict[int, frozenset[int]] = field(default_factory=dict)


def alarm_context(conn: Any, alarms: Iterable[Alarm]) -> AlarmContext:
    """Read the context of `alarms` (two queries)."""
    alarms = list(alarms)
    root_ids = sorted({a.root_cause_id for a in alarms if a.root_cause_id is not None})
    object_ids = sorted({a.key.object_id for a in alarms})
    roots = {row[0]: frozenset(row[1]) for row in conn.execute(
        "SELECT id, impacted_customers FROM alarms WHERE id = ANY(%s)", [root_ids])
    } if root_ids else {}
    return AlarmContext(roots, object_owners(conn, object_ids) if object_ids else {})


def object_owners(conn: Any, object_ids: Iterable[int]) -> dict[int, frozenset[int]]:
    """Object id -> the customers it belongs to: a device or port at a customer's site, a
    circuit, a port (or named sub-interface) that ends circuits (their customers), a link
    with an end at a customer's site. Objects of the operator alone are absent."""
    found: dict[int, set[int]] = {}
    for object_id, customer_id in conn.execute(
            """SELECT d.id, s.customer_id FROM devices d JOIN sites s ON s.id = d.site_id
                WHERE d.id = ANY(%(ids)s) AND s.customer_id IS NOT NULL
               UNION SELECT p.id, s.customer_id FROM ports p
                 JOIN devices d ON d.id = p.device_id JOIN sites s ON s.id = d.site_id
                WHERE p.id = ANY(%(ids)s) AND s.customer_id IS NOT NULL
               UNION SELECT ci.id, ci.customer_id FROM circuits ci WHERE ci.id = ANY(%(ids)s)
               UNION SELECT e.port, ci.customer_id FROM circuits ci
                 CROSS JOIN LATERAL unnest(ARRAY[ci.a_port_id, ci.z_port_id, ci.a_sub_port_id,
                                                 ci.z_sub_port_id]) AS e(port)
                WHERE e.port = ANY(%(ids)s) AND ci.retired_at IS NULL
               UNION SELECT l.id, s.customer_id FROM links l
                 JOIN ports p ON p.id IN (l.a_port_id, l.z_port_id)
                 JOIN devices d ON d.id = p.device_id JOIN sites s ON s.id = d.site_id
                WHERE l.id = ANY(%(ids)s) AND s.customer_id IS NOT NULL""",
            {"ids": sorted(set(object_ids))}).fetchall():
        found.setdefault(object_id, set()).add(customer_id)
    return {object_id: frozenset(owners) for object_id, owners in found.items()}


def object_hidden(alarm: Alarm, audience: Audience, context: AlarmContext) -> bool:
    """Whether the alarmed object is another customer's, for this (non-staff) audience."""
    if audience.staff or audience.customers is None:
        return False
    owners = context.owners.get(alarm.key.object_id, frozenset())
    return bool(owners) and owners.isdisjoint(audience.customers)


def customer_entry(entry: TimelineEntry) -> TimelineEntry:
    """A timeline entry as a customer reads it: what happened and when, "operator" for a
    person, and only the note written for customers."""
    actor = entry.actor if entry.actor == PIPELINE_ACTOR else OPERATOR_ACTOR
    return TimelineEntry(entry.time, entry.action, actor, None, {}, entry.customer_note)


def viewer_alarm(alarm: Alarm, audience: Audience, context: AlarmContext) -> Alarm | None:
    """The alarm as `audience` may see it (module docstring); None when it may not."""
    if not audience.may_see(alarm.impacted_customers):
        return None
    if audience.customers is None:
        return alarm if audience.staff else _customer_texts(alarm, hidden=False)
    root_visible = (alarm.root_cause_id is not None
                    and audience.may_see(context.roots.get(alarm.root_cause_id, ())))
    cut = dataclasses.replace(
        alarm,
        impacted_circuits=alarm.impacted_circuits & (audience.circuits or frozenset()),
        impacted_customers=alarm.impacted_customers & audience.customers,
        root_cause_id=alarm.root_cause_id if root_visible else None,
        root_cause=alarm.root_cause if root_visible else None)
    if audience.staff:
        return cut
    return _customer_texts(cut, hidden=object_hidden(alarm, audience, context))


def _customer_texts(alarm: Alarm, *, hidden: bool) -> Alarm:
    key = alarm.key
    words = customer_words(alarm, hidden=hidden)
    return dataclasses.replace(
        alarm, acknowledged_by=None, ack_comment=None,
        detail={"object_hidden": hidden, **({TEXT: words} if words is not None else {})},
        suppressed_by=frozenset({0}) if alarm.suppressed_by else frozenset(),
        summary="" if hidden else alarm.summary,
        key=AlarmKey(key.kind, key.object_id, key.type, "") if hidden else key,
        timeline=[customer_entry(e) for e in alarm.timeline])


def customer_words(alarm: Alarm, *, hidden: bool) -> dict[str, Any] | None:
    """The summary's words as data (alarms.texts), as a customer may read them: only where
    the summary itself is shown (not `hidden`), and only when they say exactly what it says
    (their English is the summary). So the translation tells a customer nothing the English
    would not: the names among the parameters (a cause's devices, ports and links) are the
    summary's, which the hiding rule above vetted; words that differ (an older sentence, or
    parameters naming anything else) are dropped and the summary shows as written."""
    words = alarm.detail.get(TEXT)
    if hidden or not isinstance(words, Mapping):
        return None
    try:
        return dict(words) if english(words) == alarm.summary else None
    except (KeyError, TypeError, ValueError):  # an unknown code, parameters that do not fit
        return None


def cause_words(cause: str | None, words: Any) -> dict[str, Any] | None:
    """A circuit state's cause as data (store.circuit_states' `cause_text`) as every viewer of
    its English `cause` may read it: only when it says exactly that English, by the rule of
    `customer_words`. A customer reads its circuits' causes as they are (they name the
    circuit's own ends and the route the route table shows: portal/customer.py), so the
    translation's parameters name nothing more; words that differ are dropped and the English
    shows."""
    if not isinstance(words, Mapping) or cause is None:
        return None
    try:
        return dict(words) if english(words) == cause else None
    except (KeyError, TypeError, ValueError):  # an unknown code, parameters that do not fit
        return None


def alarm_view(alarm: Alarm, audience: Audience, context: AlarmContext
               ) -> dict[str, Any] | None:
    """The JSON form of `viewer_alarm`: store.alarms.alarm_payload's fields, with the
    object's id, summary and qualifier None where they are hidden."""
    cut = viewer_alarm(alarm, audience, context)
    if cut is None:
        return None
    body = alarm_store.alarm_payload(cut)
    if cut.detail.get("object_hidden"):
        body.update(object_id=None, summary=None, qualifier=None, text=None)
    return body


def timeline_view(alarm: Alarm,
                  changes: Iterable[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """The (already cut) alarm's timeline as JSON; with `changes`, the "what changed?"
    entries (portal.configs.what_changed_entries: configuration changes, staff only, never
    given for a customer) merged in by time."""
    entries = [{"time": e.time.isoformat(), "action": e.action, "actor": e.actor,
                "comment": e.comment, "customer_note": e.customer_note,
                "text": e.detail.get(TEXT)} for e in alarm.timeline]
    added = [dict(change) for change in changes]
    if not added:
        return entries
    # a stable sort: entries of one time keep their order, the alarm's own first
    return sorted([*entries, *added], key=lambda entry: datetime.fromisoformat(entry["time"]))


def views(conn: Any, alarms: Iterable[Alarm], audience: Audience,
          context: AlarmContext | None = None) -> list[dict[str, Any]]:
    """`alarm_view` of each alarm the audience may see, in order."""
    alarms = list(alarms)
    context = context if context is not None else alarm_context(conn, alarms)
    return [view for view in (alarm_view(a, audience, context) for a in alarms)
            if view is not None]
