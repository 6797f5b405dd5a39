"""Events: published on one connection, delivered to a Subscriber on another; none lost, none
announced that was rolled back, catch-up after the subscriber's connection is killed."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from store.events import Event, Subscriber, events_since, publish


class Inbox:
    """Collects delivered events; wait_for() blocks until a predicate holds."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = threading.Condition()

    def __call__(self, event: Event) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def wait_for(self, predicate, timeout_s: float = 10.0) -> list[Event]:
        with self._changed:
            assert self._changed.wait_for(lambda: predicate(self.events), timeout_s), \
                f"timed out; got {[(e.id, e.topic) for e in self.events]}"
            return list(self.events)

    def topics(self) -> list[str]:
        return [event.topic for event in self.events]


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


def test_event_reaches_a_subscriber_on_another_connection(db, inbox: Inbox):
    with Subscriber(db.url) as subscriber:
        subscriber.subscribe("alarm.", inbox)
        with db.pool.connection() as conn:
            publish(conn, "poll.done", {"ignored": True})
            event_id = publish(conn, "alarm.raised", {"alarm_id": 7, "text": "link down"})
        events = inbox.wait_for(lambda events: len(events) >= 1)
    assert [(e.id, e.topic, e.payload) for e in events] == \
        [(event_id, "alarm.raised", {"alarm_id": 7, "text": "link down"})]
    assert events[0].time.tzinfo is not None


def test_rolled_back_event_is_never_delivered(db, inbox: Inbox):
    with Subscriber(db.url) as subscriber:
        subscriber.subscribe("", inbox)
        with db.pool.connection() as conn, conn.transaction(force_rollback=True):
            publish(conn, "alarm.raised", {"alarm_id": 1})
        with db.pool.connection() as conn:
            publish(conn, "alarm.cleared", {"alarm_id": 2})
        # Notifications arrive in commit order: once the later one is here, the rolled-back
        # one would have been too.
        inbox.wait_for(lambda events: "alarm.cleared" in [e.topic for e in events])
        time.sleep(0.3)
    assert inbox.topics() == ["alarm.cleared"]
    with db.pool.connection() as conn:
        assert [e.topic for e in events_since(conn, 0, 10)] == ["alarm.cleared"]


def test_large_payload_is_read_from_the_table(db, inbox: Inbox):
    payload = {"ports": [f"port-{n:05d}" for n in range(2_000)]}  # about 24 kB of JSON
    with Subscriber(db.url) as subscriber:
        subscriber.subscribe("topology.", inbox)
        with db.pool.connection() as conn:
            publish(conn, "topology.changed", payload)
        events = inbox.wait_for(lambda events: len(events) == 1)
    assert events[0].payload == payload


def test_catch_up_after_the_connection_is_killed(db, inbox: Inbox):
    subscriber = Subscriber(db.url, reconnect_delay_s=1.0)
    subscriber.subscribe("t.", inbox)
    subscriber.start()
    try:
        with db.pool.connection() as conn:
            first = publish(conn, "t.first", {})
        inbox.wait_for(lambda events: len(events) == 1)

        # An event whose transaction began before the kill and commits during the outage,
        # with an id lower than one already delivered: catch-up must still find it.
        slow = psycopg.connect(db.url)
        late = publish(slow, "t.late", {"n": 0})
        with db.pool.connection() as conn:
            second = publish(conn, "t.second", {})
        inbox.wait_for(lambda events: len(events) == 2)
        assert late < second

        with psycopg.connect(db.url, autocommit=True) as admin:
            # The second argument waits (ms) until the backend has really gone.
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", [subscriber.backend_pid])
        slow.commit()
        slow.close()
        with db.pool.connection() as conn:
            missed = [publish(conn, "t.missed", {"n": n}) for n in range(3)]
            publish(conn, "other.topic", {})

        inbox.wait_for(lambda events: len(events) == 6)
        time.sleep(0.3)  # nothing delivered twice either
    finally:
        subscriber.stop()
    assert [e.id for e in inbox.events] == [first, second, late, *missed]
    assert subscriber.connections == 2


def test_late_subscriber_reads_stored_events(db, inbox: Inbox):
    with db.pool.connection() as conn:
        ids = [publish(conn, "inventory.changed", {"n": n}) for n in range(3)]
    subscriber = Subscriber(db.url, after_id=ids[0])
    subscriber.subscribe("inventory.", inbox)  # before start(): catch-up runs at start
    subscriber.start()
    try:
        events = inbox.wait_for(lambda events: len(events) == 2)
    finally:
        subscriber.stop()
    assert [e.id for e in events] == ids[1:]
    assert [e.payload for e in events] == [{"n": 1}, {"n": 2}]
