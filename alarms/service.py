"""AlarmService: the alarm pipeline as a running service, fed by the store's events.

The collectors record observations and announce them as "observation" events
(store.observations); the service listens for them (store.events.Subscriber), runs each
batch through the pipeline and saves the result together with the id of the last event it
processed. It also ticks the pipeline on a timer (debounce delays, maintenance windows that
begin or end) and evaluates the threshold rules against the newest samples every
`threshold_interval_s`.

One worker thread owns the pipeline; the subscriber's thread only queues events for it.
Besides observations the worker hears "alarm." events that people caused (a manual clear:
the pipeline forgets that alarm), "maintenance.changed" (reload the windows),
"inventory.changed" and "topology.changed" (an import, an accepted link, a discovery run:
reload the topology and its impact index).

*Topology.* The service loads the network as it is now (topology.current.load_topology:
the inventory, links accepted from discovery, links discovery currently sees) and hands it
to the pipeline, which keeps it live with the observations it processes (alarms.pipeline):
a circuit whose computed path reroutes around a failure is in service, one that cannot
reroute is not (alarms.service_state says the rule). The latest states start from the
store's at recovery, and a reload after "inventory.changed" keeps the pipeline's own states,
so the topology always reflects exactly the observations the pipeline has seen.

*Recovery.* On start, and after any failure, the service rebuilds the pipeline from the
store: the topology, the maintenance windows, the active alarms, and the last observed state
of every object (AlarmPipeline.restore); then it reads the observation events recorded after
its saved position. Since the position is saved in the same transaction as the alarms it
led to, a service killed at any moment restarts with exactly the alarms it had, raises no
duplicate, and clears nothing that is still true.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from alarms.pipeline import KEPT_KINDS, AlarmPipeline, store_publisher, verdict_of
from alarms.rules import AlarmSettings, metrics_of
from collectors.model import Observation
from store import alarms as alarm_store
from store.circuit_states import current_states
from store.events import Event, Subscriber, last_event_id
from store.observations import latest_states_timed
from topology.current import Topology, load_topology

log = logging.getLogger(__name__)

OBSERVATION_TOPIC = "observation"
BATCH_EVENTS = 200  # events taken from the queue per pipeline step
RECOVER_DELAY_S = 1.0
HEARTBEAT_INTERVAL_S = 5.0
# what "the store is away" looks like: the connection or the pool failing
STORE_UNAVAILABLE = (psycopg.OperationalError, PoolTimeout)


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
    subscriber listens; `stop()` ends both threads."""

    def __init__(self, pool: ConnectionPool, url: str, settings: AlarmSettings | None = None,
                 *, name: str = alarm_store.DEFAULT_PIPELINE,
                 clock: Callable[[], datetime] = utc_now):
        self.pool = pool
        self.url = url
        self.settings = settings or AlarmSettings()
        self.name = name
        self.clock = clock
        self.pipeline = AlarmPipeline(self.settings, publisher=store_publisher(pool, name))
        self.stats = AlarmServiceStats()
        self._started_at = datetime.now(UTC)
        self._store_lost_at: float | None = None
        self._queue: queue.Queue[Event] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._subscriber: Subscriber | None = None
        self._ready = threading.Event()
        self._next_threshold = 0.0
        self.on_step: Callable[[list[Any]], None] | None = None  # for benches and tests

    # --- lifetime ----------------------------------------------------------------------------

    def start(self, timeout_s: float = 30.0) -> None:
        if self._thread is not None:
            raise RuntimeError("alarm service already started")
        after = self._recover()
        self._subscriber = Subscriber(self.url, after_id=after)
        for prefix in (OBSERVATION_TOPIC, "alarm.", "maintenance.", "inventory.", "topology."):
            self._subscriber.subscribe(prefix, self._queue.put)
        self._subscriber.start(timeout_s=timeout_s)
        self._thread = threading.Thread(target=self._run, name="keyline-alarms", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._subscriber is not None:
            self._subscriber.stop()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> AlarmService:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def idle(self) -> bool:
        """Whether every event received so far has been processed."""
        return self._queue.unfinished_tasks == 0

    # --- recovery ----------------------------------------------------------------------------

    @property
    def topology(self) -> Topology | None:
        """The live topology the pipeline judges on."""
        return self.pipeline.topology

    def _recover(self) -> int:
        """Rebuild the pipeline from the store; return the event id to read on from."""
        with self.pool.connection() as conn:
            states = latest_states_timed(conn, sorted(KEPT_KINDS))
            self.pipeline.states.clear()
            self._load_topology(conn)
            self.pipeline.set_windows(alarm_store.list_windows(
                conn, not_ended_before=self.clock() - timedelta(seconds=1)))
            latest = [Observation(time, object_id, kind, None, state, "poll", {})
                      for (object_id, kind), (time, state) in states.items()]
            stored = [(circuit, row.time, verdict_of(row))
                      for circuit, row in current_states(conn).items()]
            self.pipeline.restore(alarm_store.active_alarms(conn), latest, self.clock(),
                                  stored)
            after = alarm_store.position(conn, self.name)
            if after is None:  # first run: the latest states are the starting picture
                after = last_event_id(conn)
        self.stats.recoveries += 1
        self.pipeline.tick(self.clock())
        return after

    def _load_topology(self, conn: Any) -> None:
        """Load the topology (inventory, accepted and discovered links) and give it to the
        pipeline, which makes it live with its own latest states; and the SLA tiers the
        threshold rules are chosen by."""
        topology = load_topology(conn)
        self.pipeline.set_topology(topology)
        tiers: dict[int, str] = {}
        devices: dict[int, str] = {}
        for circuit_id, a_port, z_port, tier in conn.execute(
                """SELECT c.id, c.a_port_id, c.z_port_id, s.key FROM circuits c
                     JOIN sla_contracts s ON s.id = c.sla_contract_id
                    WHERE c.retired_at IS NULL ORDER BY c.id"""):
            tiers[circuit_id] = tiers[a_port] = tiers[z_port] = tier
            for port_id in (a_port, z_port):  # a device takes the tier of a circuit on it
                port = topology.snapshot.ports.get(port_id)
                if port is not None:
                    devices.setdefault(port.device_id, tier)
        self.pipeline.tier_of = {**devices, **tiers}

    # --- the worker --------------------------------------------------------------------------

    def _run(self) -> None:
        next_tick = next_heartbeat = time.monotonic()
        while not self._stop.is_set():
            try:
                timeout = max(0.0, next_tick - time.monotonic())
                events = self._take(timeout)
                if events:
                    self._handle(events)
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + self.settings.tick_interval_s
                    self._emit(self.pipeline.tick(self.clock()))
                    self._thresholds()
                if time.monotonic() >= next_heartbeat:
                    next_heartbeat = time.monotonic() + HEARTBEAT_INTERVAL_S
                    self._heartbeat()
                if self._store_lost_at is not None:
                    log.info("alarm pipeline working again after %.1f s without the store",
                             time.monotonic() - self._store_lost_at)
                    self._store_lost_at = None
            except STORE_UNAVAILABLE as error:
                # the store went away: said once an outage, no traceback; rebuilt when back
                self.stats.errors += 1
                self.stats.last_error = f"{type(error).__name__}: {error}"
                if self._store_lost_at is None:
                    self._store_lost_at = time.monotonic()
                    log.warning("alarm pipeline waits for the store (%s); it rebuilds from the"
                                " store when it is back", " ".join(str(error).split())[:200])
                self._stop.wait(RECOVER_DELAY_S)
                self._recover_quietly()
            except Exception as error:  # a bug: start again clean
                self.stats.errors += 1
                self.stats.last_error = f"{type(error).__name__}: {error}"
                log.exception("alarm pipeline step failed; rebuilding from the store")
                self._stop.wait(RECOVER_DELAY_S)
                self._recover_quietly()

    def _recover_quietly(self) -> None:
        try:
            self._recover()
        except STORE_UNAVAILABLE as error:
            log.debug("alarm pipeline recovery postponed, store unavailable: %s", error)
        except Exception:
            log.exception("alarm pipeline recovery failed; retrying")

    def _heartbeat(self) -> None:
        from store.collection import record_heartbeat

        with self.pool.connection(timeout=2) as conn:
            record_heartbeat(conn, f"alarms:{self.name}", self._started_at, {
                "observations": self.stats.observations, "events": self.stats.events,
                "steps": self.stats.steps, "recoveries": self.stats.recoveries,
                "errors": self.stats.errors, "last_error": self.stats.last_error,
                "active_alarms": len(self.pipeline.active)})

    def _take(self, timeout_s: float) -> list[Event]:
        try:
            events = [self._queue.get(timeout=timeout_s)]
        except queue.Empty:
            return []
        while len(events) < BATCH_EVENTS:
            try:
                events.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return events

    def _handle(self, events: list[Event]) -> None:
        try:
            observations: list[Observation] = []
            last_id: int | None = None
            for event in events:
                self.stats.events += 1
                if event.topic == OBSERVATION_TOPIC:
                    observations += observations_of(event)
                    last_id = event.id if last_id is None else max(last_id, event.id)
                elif event.topic.startswith("alarm.") and event.payload.get("manual"):
                    if event.payload.get("action") == "cleared":
                        self.pipeline.forget_id(int(event.payload["id"]), self.clock())
                elif event.topic.startswith("maintenance."):
                    with self.pool.connection() as conn:
                        self.pipeline.set_windows(alarm_store.list_windows(
                            conn, not_ended_before=self.clock() - timedelta(seconds=1)))
                elif event.topic.startswith(("inventory.", "topology.")):
                    with self.pool.connection() as conn:
                        self._load_topology(conn)
            if observations or last_id is not None:
                self.stats.observations += len(observations)
                self._emit(self.pipeline.process(observations, self.clock(),
                                                 last_event_id=last_id))
        finally:
            for _ in events:
                self._queue.task_done()

    def _thresholds(self) -> None:
        now = time.monotonic()
        if now < self._next_threshold or not self.settings.thresholds:
            return
        self._next_threshold = now + self.settings.threshold_interval_s
        since = self.clock() - timedelta(seconds=self.settings.threshold_lookback_s)
        with self.pool.connection() as conn:
            samples = alarm_store.latest_samples(conn, metrics_of(self.settings.thresholds),
                                                 since)
        self._emit(self.pipeline.evaluate_thresholds(samples, self.clock()))

    def _emit(self, changes: list[Any]) -> None:
        self.stats.steps += 1
        if changes and self.on_step is not None:
            self.on_step(changes)
