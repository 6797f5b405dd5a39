"""Observations and device poll status in the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from collectors.model import Observation
from store import observations as store_observations
from store.events import events_since
from store.observations import (
    latest_states,
    poll_statuses,
    recent_observations,
    record_observations,
    record_poll_status,
)

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def obs(object_id: int, at_s: float = 0, new: str = "down", source: str = "poll"):
    return Observation(T0 + timedelta(seconds=at_s), object_id, "oper_status", "up", new, source,
                       {"if_index": 3})


def test_record_returns_ids_in_order_and_publishes(db):
    with db.pool.connection() as conn:
        ids = record_observations(conn, [obs(1), obs(2, 1), obs(1, 2, "up", "trap")])
    assert ids == sorted(ids) and len(ids) == 3
    with db.pool.connection() as conn:
        events = events_since(conn, 0)
    assert [e.topic for e in events] == ["observation"]
    payload = events[0].payload["observations"]
    assert [p["id"] for p in payload] == ids
    assert payload[2] == {"id": ids[2], "time": (T0 + timedelta(seconds=2)).isoformat(),
                          "object_id": 1, "kind": "oper_status", "old": "up", "new": "up",
                          "source": "trap", "detail": {"if_index": 3}}


def test_many_observations_are_announced_in_chunks(db, monkeypatch):
    monkeypatch.setattr(store_observations, "EVENT_CHUNK", 2)
    with db.pool.connection() as conn:
        record_observations(conn, [obs(n) for n in range(5)])
        events = events_since(conn, 0)
    assert [len(e.payload["observations"]) for e in events] == [2, 2, 1]


def test_rollback_takes_back_rows_and_events(db):
    with pytest.raises(RuntimeError), db.pool.connection() as conn:
        record_observations(conn, [obs(1)])
        raise RuntimeError("caller failed later in its transaction")
    with db.pool.connection() as conn:
        assert recent_observations(conn) == []
        assert events_since(conn, 0) == []


def test_naive_time_refused(db):
    naive = Observation(datetime(2026, 1, 1), 1, "oper_status", None, "up", "poll")
    with db.pool.connection() as conn, pytest.raises(ValueError, match="timezone"):
        record_observations(conn, [naive])


def test_empty_is_a_no_op(db):
    with db.pool.connection() as conn:
        assert record_observations(conn, []) == []
        assert events_since(conn, 0) == []


def test_recent_observations_filters_newest_first(db):
    with db.pool.connection() as conn:
        record_observations(conn, [obs(1, 0), obs(2, 1), obs(1, 2), obs(1, 3)])
        assert [o.time for o in recent_observations(conn, object_id=1, limit=2)] == [
            T0 + timedelta(seconds=3), T0 + timedelta(seconds=2)]
        assert len(recent_observations(conn, since=T0 + timedelta(seconds=1))) == 3
        latest = recent_observations(conn, limit=1)[0]
    assert (latest.object_id, latest.kind, latest.old, latest.new, latest.detail) == (
        1, "oper_status", "up", "down", {"if_index": 3})


def test_poll_status_changed_at_moves_only_on_change(db):
    with db.pool.connection() as conn:
        record_poll_status(conn, 7, "reachable", None, T0)
        record_poll_status(conn, 7, "reachable", None, T0 + timedelta(seconds=60))
        record_poll_status(conn, 7, "unreachable", "timeout", T0 + timedelta(seconds=120))
        record_poll_status(conn, 7, "unreachable", "timeout", T0 + timedelta(seconds=180))
        status = poll_statuses(conn)[7]
    assert (status.status, status.reason) == ("unreachable", "timeout")
    assert status.changed_at == T0 + timedelta(seconds=120)
    assert status.last_poll_at == T0 + timedelta(seconds=180)


def test_autocommit_connection_gets_its_own_transaction(db):
    with db.pool.connection() as conn:
        conn.autocommit = True
        try:
            assert len(record_observations(conn, [obs(1), obs(2)])) == 2
        finally:
            conn.autocommit = False
        assert len(recent_observations(conn)) == 2


def test_latest_states_are_the_newest_per_object_and_kind(db):
    restart = Observation(T0, 9, "agent_restart", None, "restarted", "trap")
    with db.pool.connection() as conn:
        record_observations(conn, [obs(1, 0, "down"), obs(1, 5, "up"), obs(2, 1, "down"),
                                   restart])
        assert latest_states(conn) == {(1, "oper_status"): "up", (2, "oper_status"): "down"}
