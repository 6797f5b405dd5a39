"""AlarmService: the alarm pipeline as a running service, fed by the store's events.

The collectors record observations and announce them as "observation" events
(store.observations); the service follows them with the store's one event consumer
(store.consumer.Consumer, named "alarms:<pipeline>"): each batch of events runs through the
pipeline, and what the pipeline decided (alarms, their timeline, circuit states, the
"alarm." and "circuit.state" events: alarms.pipeline.store_publisher) is saved in the
consumer's transaction, together with the id of the last event of the batch. It also ticks
the pipeline on the consumer's timer (debounce delays, maintenance windows that begin or
end). Threshold rules cost it nothing extra: the collectors judge them on their samples as
they write them and record the crossings as observations (alarms.thresholds), which
arrive here like every other state change.

The consumer's worker thread owns the pipeline; the subscriber's thread only queues events
for it. Besides observations the worker hears "alarm." events that people caused (a manual
clear: the pipeline forgets that alarm), "maintenance.changed" (reload the windows),
"inventory.changed" and "topology.changed" (an import, an accepted link, a discovery run:
reload the topology and its impact index).

*Topology.* The service loads the network as it is now (topology.current.load_topology:
the inventory, links accepted from discovery, links discovery currently sees) and hands it
to the pipeline, which keeps it live with the observations it processes (alarms.pipeline):
a circuit whose computed path reroutes around a failure is in service, one that cannot
reroute is not (alarms.service_state says the rule). The latest states start from the
store's at recovery, and a reload after "inventory.changed" keeps the pipeline's own states,
so the topology always reflects exactly the observations the pipeline has seen.

*Recovery.* On start, and after any failure (the consumer's `recover`), the service rebuilds
the pipeline from the store: the topology, the maintenance windows, the active alarms, and
the last observed state of every object (AlarmPipeline.restore); then the consumer reads the
events recorded after its saved position. Since the position is saved in the same
transaction as the alarms it led to, a service killed at any moment restarts with exactly
the alarms it had, raises no duplicate, and clears nothing that is still true; a step that
failed was rolled back whole, and its events come again to the rebuilt pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from alarms.pipeline import KEPT_KINDS, AlarmPipeline, store_publisher, verdict_of
from alarms.rules import AlarmSettings
from collectors.model import Observation
from store import alarms as alarm_store
from store.circuit_states import current_states
from store.collection import record_heartbeat
from store.consumer import Consumer
from store.events import Event
from store.observations import latest_states_timed
from topology.current import Topology, load_topology

OBSERVATION_TOPIC = "observation"
TOPICS = (OBSERVATION_TOPIC, "alarm.", "maintenance.", "inventory.", "topology.")
BATCH_EVENTS = 200  # events per pipeline step (one transaction)
HEARTBEAT_INTERVAL_S = 5.0


def utc_now() -> datetime:
    return datetime.now(UTC)


def observations_of(event: Event) -> list[Observation]:
    """The observations an "observation" event carries (store.observations payload)."""
    return [Observation(datetime.fromisoformat(o["time"]), o["object_id"], o["kind"], o["old"],
                        o["new"], o["source"], {**(o.get("detail") or {}),
                                                "observation_id": o["id"]})
            for o in event.payload.get("observations", ())]


@dataclass
class AlarmServiceStats:
    observations: int = 0
    events: int = 0
    steps: int = 0
    recoveries: int = 0
    errors: int = 0
    last_error: str | None = None


class AlarmService:
    """See the module docstring. `start()` returns once the pipeline is restored and the
    consumer listens; `stop()` ends it."""

    def __init__(self, pool: ConnectionPool, url: str, settings: AlarmSettings | None = None,
                 *, name: str = alarm_store.DEFAULT_PIPELINE,
                 clock: Callable[[], datetime] = utc_now):
        self.pool = pool
        self.url = url
        self.settings = settings or AlarmSettings()
        self.name = name
        self.clock = clock
        # The connection of the consumer's transaction while the worker is in a step: the
        # pipeline's publisher saves into it, so a step's alarms commit with its position.
        self._conn: psycopg.Connection | None = None
        self.pipeline = AlarmPipeline(self.settings,
                                      publisher=store_publisher(self._step_connection, name))
        self.consumer = Consumer(pool, url, alarm_store.consumer_name(name), TOPICS,
                                 handle=self._handle, recover=self._recover, tick=self._tick,
                                 tick_interval_s=self.settings.tick_interval_s,
                                 batch_max=BATCH_EVENTS)
        self._observations = 0
        self._steps = 0
        self._started_at = datetime.now(UTC)
        self._next_heartbeat = 0.0
        # Called on the worker with each step's changes, inside the step's transaction (before
        # it commits: read the changes given, not the store); for benches and tests.
        self.on_step: Callable[[list[Any]], None] | None = None

    # --- lifetime ----------------------------------------------------------------------------

    def start(self, timeout_s: float = 30.0) -> None:
        self.consumer.start(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        self.consumer.stop(timeout_s)

    def __enter__(self) -> AlarmService:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def idle(self) -> bool:
        """Whether every event received so far has been processed."""
        return self.consumer.idle()

    @property
    def stats(self) -> AlarmServiceStats:
        """The pipeline's counts and the consumer's (events handled, recoveries, errors)."""
        consumer = self.consumer.stats
        return AlarmServiceStats(self._observations, consumer.events, self._steps,
                                 consumer.recoveries, consumer.errors, consumer.last_error)

    def _step_connection(self) -> psycopg.Connection:
        assert self._conn is not None, "the pipeline publishes only inside a consumer step"
        return self._conn

    # --- recovery ----------------------------------------------------------------------------

    @property
    def topology(self) -> Topology | None:
        """The live topology the pipeline judges on."""
        return self.pipeline.topology

    def _recover(self, conn: psycopg.Connection) -> None:
        """Rebuild the pipeline from the store (the consumer's recover, in its transaction)."""
        self._conn = conn
        try:
            states = latest_states_timed(conn, sorted(KEPT_KINDS))
            self.pipeline.states.clear()
            self._load_topology(conn)
            self.pipeline.set_windows(alarm_store.list_windows(
                conn, not_ended_before=self.clock() - timedelta(seconds=1)))
            latest = [Observation(time, object_id, kind, None, state, "poll", {})
                      for (object_id, kind), (time, state) in states.items()]
            # breached threshold series, with the rule their crossing carried
            latest += [Observation(time, object_id, kind, None, state, "poll", detail or {})
                       for object_id, kind, time, state, detail
                       in alarm_store.latest_threshold_states(conn)]
            stored = [(circuit, row.time, verdict_of(row))
                      for circuit, row in current_states(conn).items()]
            self.pipeline.restore(alarm_store.active_alarms(conn), latest, self.clock(),
                                  stored)
            self.pipeline.tick(self.clock())
        finally:
            self._conn = None

    def _load_topology(self, conn: Any) -> None:
        """Load the topology (inventory, accepted and discovered links) and give it to the
        pipeline, which makes it live with its own latest states."""
        self.pipeline.set_topology(load_topology(conn))

    # --- the consumer's steps (its worker thread) ----------------------------------------------

    def _handle(self, conn: psycopg.Connection, events: list[Event]) -> None:
        """One batch of events, in the consumer's transaction (which saves the position)."""
        self._conn = conn
        try:
            observations: list[Observation] = []
            for event in events:
                if event.topic == OBSERVATION_TOPIC:
                    observations += observations_of(event)
                elif event.topic.startswith("alarm.") and event.payload.get("manual"):
                    if event.payload.get("action") == "cleared":
                        self.pipeline.forget_id(int(event.payload["id"]), self.clock())
                elif event.topic.startswith("maintenance."):
                    self.pipeline.set_windows(alarm_store.list_windows(
                        conn, not_ended_before=self.clock() - timedelta(seconds=1)))
                elif event.topic.startswith(("inventory.", "topology.")):
                    self._load_topology(conn)
            if observations:
                self._observations += len(observations)
                self._emit(self.pipeline.process(observations, self.clock()))
        finally:
            self._conn = None

    def _tick(self, conn: psycopg.Connection) -> None:
        """The consumer's tick: time passes for the pipeline; a heartbeat every
        HEARTBEAT_INTERVAL_S."""
        if time.monotonic() >= self._next_heartbeat:
            self._next_heartbeat = time.monotonic() + HEARTBEAT_INTERVAL_S
            self._heartbeat()
        self._conn = conn
        try:
            self._emit(self.pipeline.tick(self.clock()))
        finally:
            self._conn = None

    def _heartbeat(self) -> None:
        # Its own short transaction: a heartbeat tells the errors of steps that fail too.
        stats = self.stats
        with self.pool.connection(timeout=2) as conn:
            record_heartbeat(conn, f"alarms:{self.name}", self._started_at, {
                "observations": stats.observations, "events": stats.events,
                "steps": stats.steps, "recoveries": stats.recoveries,
                "errors": stats.errors, "last_error": stats.last_error,
                "active_alarms": len(self.pipeline.active)})

    def _emit(self, changes: list[Any]) -> None:
        self._steps += 1
        if changes and self.on_step is not None:
            self.on_step(changes)
