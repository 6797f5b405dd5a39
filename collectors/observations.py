"""From polls and traps to observations: what changed, said once.

A poll result is a snapshot ("port 7 is down, sysUpTime is 1234 s"); the alarm pipeline wants
*changes* ("port 7 went from up to down at 10:05:03"). `observe_poll` compares two successive
poll results of one device and returns the changes as observations (collectors.model):

============== =============== ========================================================
kind           object          values
============== =============== ========================================================
reachability   the device      its verdict (collectors.reachability): "reachable",
                               "unreachable", "snmp-unresponsive", "auth-failed", "error"
oper_status    a port          ifOperStatus by name: "up", "down", "testing", "unknown",
                               "dormant", "notPresent", "lowerLayerDown"
admin_status   a port          ifAdminStatus by name: "up", "down", "testing"
port_match     a port          how the inventory port matched an interface: "ok", or the
                               problem (collectors.port_names): "missing", "ambiguous",
                               "if_index_name_mismatch", "duplicate"
agent_restart  the device      "restarted" (detail: how it was seen, ``restarted_at``)
============== =============== ========================================================

Reachability is not a poll's status but the device's verdict, which changes only on enough
evidence (failed polls in a row, an ICMP check): the collection service judges it and makes
the observation with `verdict_observation`.

With no previous result (the first poll) every state is new: each comes out with ``old``
None, which is how the pipeline learns the starting picture (a port already down when
Keyline starts). Interfaces are identified by ifIndex and turned into inventory port ids with
the target's ``ports_by_if_index``; an interface the inventory does not know is skipped and
counted (``ObservedPoll.unmapped_if_indexes``), not guessed. A device that stopped answering
says nothing about its ports: their states are kept as last seen, not turned to "unknown".

An agent restart is an event, not a state: sysUpTime (the agent's clock, centiseconds since
it started) advanced clearly less than the poller's clock between two polls, so the agent
started again in between. The poller's clock is the monotonic stamp of the polls' readings
(``InterfaceReading.read_at_s``, taken when sysUpTime was read), not the difference of the
wall-clock ``started_at``s: a wall clock stepped an hour forward would otherwise make every
device look restarted. Its one legitimate way to go backwards, the 32-bit TimeTicks wrap
every 497 days, is recognised and not reported.

The same change is often seen twice: a linkDown trap at 10:05:03, then the next poll at
10:05:10 finds the port down. `StateTracker` holds the last known state of every object and
lets through only real changes, whichever source saw them first; it also rewrites ``old`` to
the state it knew (a poll after an outage of the device has no previous interface readings,
but the tracker remembers). Restarts are matched by their estimated start time
(``restarted_at``), so a coldStart trap and the poll that sees sysUpTime go back are one
restart. One tracker serves the poller and the trap receiver together; it is thread-safe. A
collector that restarts seeds it with the last stored states (store.observations
.latest_states) so that its first poll does not announce every port again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from collectors.model import Observation, PollResult, PollStatus

OPER_STATUS_NAMES = {
    1: "up", 2: "down", 3: "testing", 4: "unknown", 5: "dormant", 6: "notPresent",
    7: "lowerLayerDown",
}
ADMIN_STATUS_NAMES = {1: "up", 2: "down", 3: "testing"}

KIND_REACHABILITY = "reachability"
KIND_OPER_STATUS = "oper_status"
KIND_ADMIN_STATUS = "admin_status"
KIND_AGENT_RESTART = "agent_restart"
KIND_PORT_MATCH = "port_match"
RESTARTED = "restarted"

TIMETICKS_MODULUS = 2**32  # sysUpTime is TimeTicks: centiseconds modulo 2**32
# How much less than the wall clock sysUpTime may advance before it counts as a restart: polls
# are timestamped when they start, and retries can delay the actual reading by seconds.
RESTART_SLACK_S = 15.0
# Two restart observations of one device whose estimated start times are this close are the
# same restart (a trap's and a poll's estimates differ by the trap's delay and the poll jitter).
SAME_RESTART_S = 60.0


def oper_status_name(value: int | None) -> str | None:
    """The IF-MIB name of an ifOperStatus integer ("up" for 1); None for None; an integer
    outside the MIB's range keeps its number ("9")."""
    if value is None:
        return None
    return OPER_STATUS_NAMES.get(value, str(value))


def admin_status_name(value: int | None) -> str | None:
    """The IF-MIB name of an ifAdminStatus integer ("down" for 2)."""
    if value is None:
        return None
    return ADMIN_STATUS_NAMES.get(value, str(value))


@dataclass
class ObservedPoll:
    """What `observe_poll_counted` found: the observations, and the ifIndexes skipped
    because the inventory has no port for them."""

    observations: list[Observation] = field(default_factory=list)
    unmapped_if_indexes: list[int] = field(default_factory=list)


def observe_poll(
    previous: PollResult | None, current: PollResult, now: datetime
) -> list[Observation]:
    """The changes between two successive polls of one device, as observations at `now`
    (`previous` None: the first poll, every state is new)."""
    return observe_poll_counted(previous, current, now).observations


def observe_poll_counted(
    previous: PollResult | None, current: PollResult, now: datetime
) -> ObservedPoll:
    """`observe_poll`, also returning the ifIndexes the inventory does not know."""
    result = ObservedPoll()
    if current.status is not PollStatus.REACHABLE:
        return result
    restart = restart_observation(previous, current, now)
    if restart is not None:
        result.observations.append(restart)
    before = previous.interfaces if previous and previous.status is PollStatus.REACHABLE else {}
    ports = current.target.ports_by_if_index
    for if_index, reading in sorted(current.interfaces.items()):
        port_id = ports.get(if_index)
        if port_id is None:
            result.unmapped_if_indexes.append(if_index)
            continue
        old = before.get(if_index)
        detail = {"if_index": if_index, "device_id": current.target.device_id}
        for kind, name_of, attribute in (
            (KIND_OPER_STATUS, oper_status_name, "if_oper_status"),
            (KIND_ADMIN_STATUS, admin_status_name, "if_admin_status"),
        ):
            new_value = name_of(getattr(reading, attribute))
            old_value = name_of(getattr(old, attribute)) if old is not None else None
            if new_value is not None and new_value != old_value:
                result.observations.append(Observation(
                    now, port_id, kind, old_value, new_value, "poll", dict(detail)))
    return result


def verdict_observation(device_id: int, old: str | None, new: str, time: datetime, *,
                        reason: str | None = None, hint: str | None = None,
                        detail: dict | None = None) -> Observation:
    """The "reachability" observation of a device whose verdict changed (or is first
    known, `old` None), with why and what to check."""
    extra = {**(detail or {}), **({"reason": reason} if reason else {}),
             **({"hint": hint} if hint else {})}
    return Observation(time, device_id, KIND_REACHABILITY, old, new, "poll", extra)


def agent_restarted(previous_cs: int, current_cs: int, elapsed_s: float) -> bool:
    """Whether sysUpTime going from `previous_cs` to `current_cs` over `elapsed_s` seconds of
    the poller's monotonic clock means the agent restarted: it advanced more than
    RESTART_SLACK_S less than that clock, unless that is the TimeTicks wrap (2**32 cs)."""
    expected_cs = previous_cs + elapsed_s * 100
    slack_cs = RESTART_SLACK_S * 100
    if current_cs >= expected_cs - slack_cs:
        return False
    # Wrapped: the unwrapped reading lands where the poller's clock says it should.
    return abs(current_cs + TIMETICKS_MODULUS - expected_cs) > slack_cs


def poll_elapsed_s(previous: PollResult, current: PollResult) -> float:
    """Seconds between two polls of a device on the poller's monotonic clock: the stamps of
    their readings, taken when sysUpTime was read (every reading of a poll has the same).
    A poll that brought no interface readings has no such stamp; the wall-clock
    ``started_at``s are the fallback then, the one case a step of the wall clock can still
    reach."""
    before = next(iter(previous.interfaces.values()), None)
    after = next(iter(current.interfaces.values()), None)
    if before is not None and after is not None:
        return after.read_at_s - before.read_at_s
    return (current.started_at - previous.started_at).total_seconds()


def restart_observation(
    previous: PollResult | None, current: PollResult, now: datetime
) -> Observation | None:
    """An agent_restart observation if sysUpTime says the agent restarted between two
    reachable polls (over `poll_elapsed_s`); None otherwise (or when either poll lacks
    sysUpTime)."""
    if previous is None or previous.status is not PollStatus.REACHABLE:
        return None
    if previous.sys_uptime_cs is None or current.sys_uptime_cs is None:
        return None
    elapsed_s = poll_elapsed_s(previous, current)
    if not agent_restarted(previous.sys_uptime_cs, current.sys_uptime_cs, elapsed_s):
        return None
    restarted_at = current.started_at - timedelta(seconds=current.sys_uptime_cs / 100)
    detail = {
        "how": "sysUpTime went back",
        "previous_sys_uptime_cs": previous.sys_uptime_cs,
        "sys_uptime_cs": current.sys_uptime_cs,
        "restarted_at": restarted_at.isoformat(),
    }
    return Observation(now, current.target.device_id, KIND_AGENT_RESTART, None, RESTARTED,
                       "poll", detail)


class StateTracker:
    """The last known state of every (object, kind); passes on only real changes.

    `apply(observations)` returns the observations that change what the tracker knew, with
    ``old`` set to the state it knew, and remembers their new states. Observations that
    repeat the known state are dropped (and counted in ``duplicates``). Restarts are
    dropped when one of the same device with a start time within SAME_RESTART_S was already
    passed on. Safe to call from several threads.
    """

    def __init__(self) -> None:
        self._states: dict[tuple[int, str], str] = {}
        self._last_restart: dict[int, datetime] = {}
        self._lock = threading.Lock()
        self.duplicates = 0

    def apply(self, observations: Iterable[Observation]) -> list[Observation]:
        """The observations that are real changes (see the class docstring)."""
        changes: list[Observation] = []
        with self._lock:
            for observation in observations:
                change = self._apply_one(observation)
                if change is None:
                    self.duplicates += 1
                else:
                    changes.append(change)
        return changes

    def seed(self, states: Mapping[tuple[int, str], str]) -> None:
        """Start from known states ((object_id, kind) -> state), e.g. the store's
        `latest_states` after a restart, so unchanged states are not reported again."""
        with self._lock:
            self._states.update(states)

    def state(self, object_id: int, kind: str) -> str | None:
        """The last known state of one object's `kind`, None if never seen."""
        with self._lock:
            return self._states.get((object_id, kind))

    def forget(self, object_id: int) -> None:
        """Drop everything known about an object (it left the inventory)."""
        with self._lock:
            for key in [key for key in self._states if key[0] == object_id]:
                del self._states[key]
            self._last_restart.pop(object_id, None)

    def _apply_one(self, observation: Observation) -> Observation | None:
        if observation.kind == KIND_AGENT_RESTART:
            return self._apply_restart(observation)
        key = (observation.object_id, observation.kind)
        known = self._states.get(key)
        if known == observation.new:
            return None
        self._states[key] = observation.new
        if known == observation.old:
            return observation
        return replace(observation, old=known)

    def _apply_restart(self, observation: Observation) -> Observation | None:
        started = _restarted_at(observation)
        last = self._last_restart.get(observation.object_id)
        if last is not None and abs((started - last).total_seconds()) <= SAME_RESTART_S:
            return None
        self._last_restart[observation.object_id] = started
        return observation


def _restarted_at(observation: Observation) -> datetime:
    text = observation.detail.get("restarted_at")
    if isinstance(text, str):
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
    return observation.time
