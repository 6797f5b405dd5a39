"""Deriving observations from polls, and the tracker that says each change once."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from collectors.counters import InterfaceReading
from collectors.model import Observation, PollResult, PollStatus, PollTarget, SnmpCredential
from collectors.observations import (
    StateTracker,
    admin_status_name,
    agent_restarted,
    observe_poll,
    observe_poll_counted,
    oper_status_name,
    poll_elapsed_s,
    restart_observation,
    verdict_observation,
)

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
TARGET = PollTarget(
    device_id=10, device_key="pe1", host="127.0.1.1", port=161,
    credential=SnmpCredential(version="v2c"), poller_group="default",
    ports_by_if_index={1: 101, 2: 102},
)


def reading(if_index: int, oper: int = 1, admin: int = 1, uptime_cs: int = 100_000):
    return InterfaceReading(if_index=if_index, sys_uptime_cs=uptime_cs, read_at_s=0.0,
                            if_oper_status=oper, if_admin_status=admin)


def poll(at_s: float = 0, status: PollStatus = PollStatus.REACHABLE, uptime_cs: int = 100_000,
         interfaces=None, reason=None, wall_step_s: float = 0.0) -> PollResult:
    """A poll `at_s` seconds into the run: its readings stamped `at_s` on the monotonic clock
    (as the poller does: one stamp for every reading of a poll), its `started_at` on the wall
    clock, which `wall_step_s` steps."""
    if interfaces is None and status is PollStatus.REACHABLE:
        interfaces = {1: reading(1), 2: reading(2)}
    interfaces = {index: replace(r, read_at_s=float(at_s))
                  for index, r in (interfaces or {}).items()}
    return PollResult(target=TARGET, status=status, reason=reason,
                      started_at=T0 + timedelta(seconds=at_s + wall_step_s), duration_s=0.1,
                      sys_uptime_cs=uptime_cs if status is PollStatus.REACHABLE else None,
                      interfaces=interfaces)


def kinds(observations):
    return [(o.object_id, o.kind, o.old, o.new) for o in observations]


def test_status_names_follow_if_mib():
    assert [oper_status_name(n) for n in range(1, 8)] == [
        "up", "down", "testing", "unknown", "dormant", "notPresent", "lowerLayerDown"]
    assert admin_status_name(2) == "down"
    assert oper_status_name(None) is None and oper_status_name(42) == "42"


def test_first_poll_reports_every_state_with_old_unknown():
    observations = observe_poll(None, poll(), T0)
    assert kinds(observations) == [
        (101, "oper_status", None, "up"), (101, "admin_status", None, "up"),
        (102, "oper_status", None, "up"), (102, "admin_status", None, "up"),
    ]
    assert all(o.source == "poll" and o.time == T0 for o in observations)
    assert observations[0].detail == {"if_index": 1, "device_id": 10}


def test_unchanged_poll_reports_nothing():
    assert observe_poll(poll(0), poll(60, uptime_cs=106_000), T0) == []


def test_port_going_down_is_one_oper_status_change():
    current = poll(60, uptime_cs=106_000,
                   interfaces={1: reading(1, oper=2), 2: reading(2, oper=7, admin=2)})
    assert kinds(observe_poll(poll(0), current, T0)) == [
        (101, "oper_status", "up", "down"),
        (102, "oper_status", "up", "lowerLayerDown"),
        (102, "admin_status", "up", "down"),
    ]


def test_ports_not_in_inventory_are_skipped_and_counted():
    current = poll(interfaces={1: reading(1), 9: reading(9)})
    observed = observe_poll_counted(None, current, T0)
    assert observed.unmapped_if_indexes == [9]
    assert {o.object_id for o in observed.observations} == {101}


@pytest.mark.parametrize("status", [PollStatus.UNREACHABLE, PollStatus.AUTH_FAILED,
                                    PollStatus.ERROR])
def test_a_failed_poll_says_nothing_of_ports_nor_reachability(status):
    # reachability is the device's verdict (collectors.reachability), not a poll's status
    assert observe_poll(poll(0), poll(60, status=status, reason="why"), T0) == []


def test_device_coming_back_reports_its_ports_as_new():
    back = observe_poll(poll(0, status=PollStatus.UNREACHABLE), poll(60, uptime_cs=106_000), T0)
    assert (101, "oper_status", None, "up") in kinds(back)


def test_verdict_observation_carries_reason_and_hint():
    observation = verdict_observation(10, "reachable", "snmp-unresponsive", T0,
                                      reason="no answer", hint="check the community")
    assert kinds([observation]) == [(10, "reachability", "reachable", "snmp-unresponsive")]
    assert observation.detail == {"reason": "no answer", "hint": "check the community"}


@pytest.mark.parametrize(("previous_cs", "current_cs", "elapsed_s", "restarted"), [
    (100_000, 106_000, 60, False),        # normal
    (100_000, 105_000, 60, False),        # 10 s behind: within the slack
    (100_000, 500, 60, True),             # went back
    (100_000, 3_000, 60, True),           # went back, hidden in the interval
    (2**32 - 1_000, 5_000, 60, False),    # TimeTicks wrap
    (2**32 - 1_000, 100, 3600, True),     # went back across the top: not the wrap
])
def test_agent_restarted(previous_cs, current_cs, elapsed_s, restarted):
    assert agent_restarted(previous_cs, current_cs, elapsed_s) is restarted


def test_restart_observation_estimates_start_time():
    observation = restart_observation(poll(0), poll(60, uptime_cs=2_000), T0)
    assert observation is not None
    assert (observation.object_id, observation.kind, observation.new) == (
        10, "agent_restart", "restarted")
    assert observation.detail["restarted_at"] == (T0 + timedelta(seconds=40)).isoformat()
    assert restart_observation(None, poll(60), T0) is None


def test_restart_comes_out_of_observe_poll():
    observations = observe_poll(poll(0), poll(60, uptime_cs=2_000), T0)
    assert kinds(observations) == [(10, "agent_restart", None, "restarted")]


@pytest.mark.parametrize("wall_step_s", [3600.0, 30.0, -3600.0, -5.0])
def test_a_stepped_wall_clock_is_no_restart(wall_step_s):
    # 60 s on the monotonic clock, sysUpTime 60 s on: the wall clock's step is not the agent's
    assert restart_observation(poll(0), poll(60, uptime_cs=106_000, wall_step_s=wall_step_s),
                               T0) is None
    assert poll_elapsed_s(poll(0), poll(60, wall_step_s=wall_step_s)) == 60.0


@pytest.mark.parametrize("wall_step_s", [3600.0, -3600.0])
def test_a_restart_is_seen_whatever_the_wall_clock_did(wall_step_s):
    observation = restart_observation(
        poll(0), poll(60, uptime_cs=2_000, wall_step_s=wall_step_s), T0)
    assert observation is not None and observation.kind == "agent_restart"
    # the estimate of when is a stamp: on the wall clock, the new time
    assert observation.detail["restarted_at"] == (
        T0 + timedelta(seconds=40 + wall_step_s)).isoformat()


def test_without_readings_the_wall_clock_is_the_fallback():
    # a poll that brought no interface has no monotonic stamp: started_at judges
    previous, current = poll(0, interfaces={}), poll(60, interfaces={}, uptime_cs=2_000)
    assert not previous.interfaces and poll_elapsed_s(previous, current) == 60.0
    assert restart_observation(previous, current, T0) is not None
    assert restart_observation(previous, poll(60, interfaces={}, uptime_cs=106_000), T0) is None


def obs(object_id, kind, old, new, source="poll", **detail):
    return Observation(T0, object_id, kind, old, new, source, detail)


def test_tracker_passes_first_and_drops_repeats():
    tracker = StateTracker()
    assert len(tracker.apply([obs(101, "oper_status", None, "up")])) == 1
    assert tracker.apply([obs(101, "oper_status", None, "up")]) == []
    assert tracker.duplicates == 1
    assert tracker.state(101, "oper_status") == "up"


def test_trap_then_poll_of_same_change_is_one_observation():
    tracker = StateTracker()
    tracker.apply([obs(101, "oper_status", None, "up")])
    from_trap = tracker.apply([obs(101, "oper_status", None, "down", source="trap")])
    from_poll = tracker.apply([obs(101, "oper_status", "up", "down")])
    assert kinds(from_trap) == [(101, "oper_status", "up", "down")]  # old filled in
    assert from_trap[0].source == "trap"
    assert from_poll == []


def test_tracker_rewrites_old_to_what_it_knew():
    tracker = StateTracker()
    tracker.apply([obs(101, "oper_status", None, "down")])
    # a poll after the device's outage has no previous reading: old None
    assert kinds(tracker.apply([obs(101, "oper_status", None, "up")])) == [
        (101, "oper_status", "down", "up")]


def test_tracker_matches_restarts_by_start_time():
    tracker = StateTracker()
    at = T0.isoformat()
    later = (T0 + timedelta(seconds=20)).isoformat()
    much_later = (T0 + timedelta(hours=1)).isoformat()
    assert len(tracker.apply([obs(10, "agent_restart", None, "restarted", "trap",
                                  restarted_at=at)])) == 1
    assert tracker.apply([obs(10, "agent_restart", None, "restarted", restarted_at=later)]) == []
    assert len(tracker.apply([obs(10, "agent_restart", None, "restarted",
                                  restarted_at=much_later)])) == 1


def test_tracker_forget():
    tracker = StateTracker()
    tracker.apply([obs(101, "oper_status", None, "up")])
    tracker.forget(101)
    assert tracker.state(101, "oper_status") is None


def test_seeded_tracker_does_not_repeat_known_states():
    tracker = StateTracker()
    tracker.seed({(101, "oper_status"): "up", (10, "reachability"): "reachable"})
    first_poll = observe_poll(None, poll(interfaces={1: reading(1, oper=2)}), T0)
    assert kinds(tracker.apply(first_poll)) == [
        (101, "oper_status", "up", "down"), (101, "admin_status", None, "up")]
