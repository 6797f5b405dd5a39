"""The collection service: polls on schedule, traps as they come, everything into the store.

This is the collectors' running process. It joins the pieces that each do one thing:

    schedule (collectors.schedule) -> poll (collectors.snmp) -> rates (collectors.counters)
        -> samples -> SpooledStore (collectors.spool: on disk first) -> store
    poll -> observe_poll (collectors.observations) -> StateTracker -> observations -> sink
    poll (+ ICMP when it got no answer) -> verdict (collectors.reachability) -> tracker
    trap (collectors.traps) -----------------------> StateTracker -> observations -> sink
    poll -> device poll status (store.observations.record_poll_status)
    CLI poll (collectors.cli, its own worker threads) -> rates -> samples -> SpooledStore
        -> device CLI status (store.cli.record_cli_statuses)

Devices with a CLI credential and a CLI profile are also read over SSH every
`cli_interval_s` (collectors.cli): the same samples as SNMP's, for the metrics the profile
gives to the CLI, and a CLI status per device. The sessions run on the CliSessions' worker
threads, never on the loop, so a CLI device that hangs holds back neither SNMP polling nor
another device; their running configurations are fetched every `cli_config_interval_s`
(collectors.config_history).

A device's reachability is a verdict, not a poll's status: it is down only after
`down_after_failures` polls in a row got no answer and an ICMP echo check failed too
(collectors.icmp); answering ping it is SNMP-unresponsive, with a hint naming what to check
(and, for a v2c agent that answers SNMPv1 only, saying so). The first failed poll of a
device that answered before brings a confirmation poll `confirm_after_s` later, so a dead
device is known within seconds, not after two full intervals.

One `StateTracker` sits between both sources and the store, so a link seen down by a trap
and then by the next poll is reported once; it is seeded from the store's last states, so a
restarted collector does not announce every port again (the store's last states, with what
the spool still holds on top). Observations are written as soon as they are seen (an alarm
is waiting for them); samples and poll statuses are buffered and written once a second as
one batch, which is what keeps 2,000 devices' samples cheap. Every write goes to the spool
on disk first and is forwarded to the store in order by the spool's own thread
(collectors.spool.SpooledStore), so "port down" is never stored after the "port up" that
followed it, a store that is away or hangs never holds up polling, and a collector killed at
any moment loses at most the last few milliseconds; `stop()` returns within seconds whatever
the store does.

Everything asynchronous runs on one asyncio event loop on the service's own thread (the
caller, typically the portal or a CLI command, keeps its own): collectors.schedule's
`Scheduler` fires each device's poll job on the loop's monotonic clock, so a step of the wall
clock (NTP, an operator, an hour either way) neither stops polling nor makes it race, and
rates and restarts are judged on that clock too; a step is detected (the wall clock's elapsed
time against the monotonic one's, every flush interval), logged once and counted
(`CollectorStats.clock_steps`), and samples are stamped with the new time. The trap
receiver's socket lives on the same loop. Jobs that are not polls keep the store in shape:
spool replay, 5-minute rollups, retention, pruning old events, and reloading the targets when
an inventory import changed them.

    service = CollectionService.from_settings(settings, database)
    service.start()          # returns once the trap receiver listens and jobs are scheduled
    ...
    service.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from collectors.cli import (
    STATE_METRICS,
    CliResult,
    CliSessions,
    CliStatus,
    CliTarget,
    cli_observations,
    cli_samples,
    poll_cli,
)
from collectors.counters import InterfaceRates, SkipCode, compute_rates
from collectors.health import (
    HealthProfile,
    choose_profile,
    health_samples,
    interface_names_from_labels,
    load_profiles,
    poll_health,
    read_sys_object_id,
)
from collectors.icmp import IcmpChecker, IcmpUnavailable
from collectors.model import Observation, PollResult, PollStatus, PollTarget, Sample
from collectors.observations import (
    KIND_AGENT_RESTART,
    KIND_PORT_MATCH,
    KIND_REACHABILITY,
    StateTracker,
    observe_poll_counted,
    verdict_observation,
)
from collectors.port_names import match_ports
from collectors.reachability import REACHABLE, Verdict, judge
from collectors.schedule import PollPlan, Scheduler, phase_fraction, plan_poll
from collectors.snmp import SnmpPoller
from collectors.spool import DEFAULT_MAX_BYTES, SpooledStore, SpoolStats
from collectors.targets import TargetProblem, load_poll_targets
from collectors.traps import RECEIVE_BUFFER_BYTES as TRAP_RECEIVE_BUFFER_BYTES
from collectors.traps import TrapReceiver, V3TrapUser
from store.leases import (
    CollectorInstance,
    LeaseError,
    LeaseRound,
    register_instance,
    release_leases,
    renew_leases,
    retire_instance,
)
from store.observations import (
    PortMatchRow,
    latest_states,
)

log = logging.getLogger(__name__)

# InterfaceRates attribute -> metric name of the samples it becomes.
RATE_METRICS = {
    "in_bps": "if_in_bps",
    "out_bps": "if_out_bps",
    "in_utilization_pct": "if_in_utilization_pct",
    "out_utilization_pct": "if_out_utilization_pct",
    "in_errors_per_s": "if_in_errors_per_s",
    "out_errors_per_s": "if_out_errors_per_s",
    "in_discards_per_s": "if_in_discards_per_s",
    "out_discards_per_s": "if_out_discards_per_s",
}
OPER_STATUS_METRIC = "if_oper_status"  # IF-MIB value: 1 up, 2 down, ...
ADMIN_STATUS_METRIC = "if_admin_status"
# every interface of every poll: the rates read in one call, in RATE_METRICS' order
_rate_values = attrgetter(*RATE_METRICS)
_RATE_METRIC_NAMES = tuple(RATE_METRICS.values())
RESPONSE_TIME_METRIC = "snmp_response_ms"  # device: how long one full poll took
# port: an interval whose rates were withheld, the value its reason (collectors.counters
# SkipCode): a gap with a reason on the port's chart, not a silent hole
RATE_GAP_METRIC = "if_rate_gap"
HEARTBEAT_INTERVAL_S = 5.0  # how often the collector tells the store how it is
DEFAULT_LEASE_S = 30.0  # [collector] lease_s unset, unless twice the poll budget is longer
# skipped polls are logged in one line at most this often (CollectionService._count_skip)
SKIP_LOG_INTERVAL_S = 60.0
# the most first polls a second a start asks (CollectionService.startup_spread_s): about
# half a core at the ~10 ms of CPU a first poll costs with its first states
STARTUP_POLLS_PER_S = 50.0
# threshold-metric samples kept for judging until the SLA tiers are first read (at start)
UNJUDGED_MAX_SAMPLES = 200_000
_NOT_READ = object()

def rate_samples(rates: InterfaceRates, port_id: int, time: datetime) -> list[Sample]:
    """The samples one interface's interval gives: each rate that could be computed, and the
    oper/admin status (which a withheld interval still reports: it is a reading, not a rate)."""
    samples = [Sample(time, port_id, metric, value)
               for metric, value in zip(_RATE_METRIC_NAMES, _rate_values(rates), strict=True)
               if value is not None]
    if rates.oper_status is not None:
        samples.append(Sample(time, port_id, OPER_STATUS_METRIC, float(rates.oper_status)))
    if rates.admin_status is not None:
        samples.append(Sample(time, port_id, ADMIN_STATUS_METRIC, float(rates.admin_status)))
    return samples


@dataclass
class CollectorStats:
    """What the service has done since it started; read it with `CollectionService.stats()`."""

    polls: Counter[str] = field(default_factory=Counter)  # by PollStatus value
    device_polls: Counter[str] = field(default_factory=Counter)  # by device key
    skipped_polls: Counter[str] = field(default_factory=Counter)  # by device key
    withheld_intervals: int = 0  # interface intervals judged untrustworthy (no rates)
    unmapped_interfaces: int = 0  # interfaces polled that the inventory does not know
    health_polls: int = 0  # health readings taken (collectors.health)
    samples: int = 0  # handed to the sink
    observations: int = 0  # changes handed to the sink (poll and trap)
    trap_observations: int = 0
    traps_not_held: int = 0  # trap observations of devices another collector holds
    write_errors: int = 0
    target_problems: list[str] = field(default_factory=list)
    reloads: int = 0
    clock_steps: int = 0  # steps of the wall clock seen (collectors keep their schedule)
    cli_polls: Counter[str] = field(default_factory=Counter)  # by CliStatus value
    cli_device_polls: Counter[str] = field(default_factory=Counter)  # by device key
    cli_skipped_polls: Counter[str] = field(default_factory=Counter)  # by device key
    cli_target_problems: list[str] = field(default_factory=list)


@dataclass
class _DeviceState:
    target: PollTarget
    plan: PollPlan
    last_result: PollResult | None = None
    last_readings: dict = field(default_factory=dict)  # port id -> InterfaceReading
    busy: bool = False
    verdict: str | None = None  # collectors.reachability
    failures: int = 0  # polls in a row with no answer
    alive_in_row: int = 0  # of those, followed by an ICMP echo reply
    first_failure_at: datetime | None = None
    gaps: dict[int, Any] = field(default_factory=dict)  # port id -> SkipCode of its gap
    poll_problems: frozenset[str] = frozenset()  # what the last poll skipped, logged
    health_profile: HealthProfile | None = None  # chosen at the first health poll
    health_busy: bool = False
    health_problems: frozenset[str] = frozenset()  # already logged
    # (ports, interface labels) of the last poll whose ports all matched: the same again
    # needs no new match (collectors.port_names), the poll's hot path skips it
    matched: tuple[Any, Any] | None = None


@dataclass
class _CliDeviceState:
    target: CliTarget
    profile: Any  # collectors.cli_profiles.CliProfile, or None: no-profile
    busy: bool = False
    config_busy: bool = False
    last_readings: dict = field(default_factory=dict)  # port id -> InterfaceReading
    last_status: str | None = None


class SampleJudge(Protocol):
    """The rules that judge samples as they are written, as the service sees them: the
    metrics they judge, which objects are devices and each object's SLA tier (read from the
    store when an import changed them), and the observations of the series that samples move
    across a level. The composition root (keyline.wiring) hands in
    alarms.thresholds.ThresholdStage: collectors know nothing of alarms."""

    metrics: frozenset[str]

    def set_objects(self, is_device: Callable[[int], bool],
                    tiers: Mapping[int, str]) -> None: ...

    def crossings(self, samples: Sequence[Sample]) -> list[Observation]: ...


# how the service builds its judge: from its StateTracker's `state(object_id, kind)`, so a
# series' state has one keeper (seeded from the store: a restarted collector's too)
SampleJudgeFactory = Callable[[Callable[[int, str], str | None]], SampleJudge]


class CollectionService:
    """Polls every active device of the store on its group's interval and receives traps;
    see the module docstring. Thread-safe start/stop; everything else runs on its loop."""

    def __init__(
        self,
        pool: ConnectionPool,
        *,
        spool_dir: Path,
        interval_s_for: Callable[[str], float],
        environ: Mapping[str, str] | None = None,
        timeout_s: float = 2.0,
        retries: int = 2,
        max_in_flight: int = 64,
        traps_enabled: bool = True,
        trap_host: str = "127.0.0.1",
        trap_port: int = 1162,
        trap_receive_buffer_bytes: int = TRAP_RECEIVE_BUFFER_BYTES,
        spool_max_bytes: int = DEFAULT_MAX_BYTES,
        spool_when_full: str = "drop_newest",
        startup_spread_s: float = 10.0,
        flush_interval_s: float = 1.0,
        reload_interval_s: float = 30.0,
        replay_interval_s: float = 2.0,
        raw_retention_days: int = 90,
        retention: Any | None = None,  # StoreSettings: every resolution's retention
        event_retention_days: int = 7,
        down_after_failures: int = 2,
        confirm_after_s: float = 5.0,
        icmp_check: bool = True,
        icmp_count: int = 3,
        icmp_timeout_s: float = 1.0,
        health_interval_s: float | None = 300.0,
        health_profiles: Sequence[HealthProfile] | None = None,
        wall_clock: Callable[[], float] = time.time,
        clock_step_tolerance_s: float = 1.0,
        cli_sessions: CliSessions | None = None,
        cli_interval_s: float | None = None,
        cli_config_interval_s: float | None = None,
        cli_profiles: Mapping[str, Any] | None = None,
        thresholds: SampleJudgeFactory | None = None,
        instance: CollectorInstance | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        upkeep_gate: Callable[[], bool] | None = None,
        heartbeat_name: str = "collector",
    ) -> None:
        self._pool = pool
        self._environ = environ
        self._interval_s_for = interval_s_for
        self.timeout_s = timeout_s
        self.retries = retries
        self.max_in_flight = max_in_flight
        self.traps_enabled = traps_enabled
        self.trap_host = trap_host
        self.trap_port = trap_port
        self.trap_receive_buffer_bytes = trap_receive_buffer_bytes
        self._startup_spread_s = startup_spread_s
        self.flush_interval_s = flush_interval_s
        self.reload_interval_s = reload_interval_s
        self.replay_interval_s = replay_interval_s
        self.raw_retention_days = raw_retention_days
        self.retention = retention
        self.event_retention_days = event_retention_days
        self.down_after_failures = down_after_failures
        self.confirm_after_s = confirm_after_s
        self.icmp_check = icmp_check
        self.icmp_count = icmp_count
        self.icmp_timeout_s = icmp_timeout_s
        self._icmp: IcmpChecker | None = None
        self._started_at = datetime.now(UTC)
        # device health (collectors.health) at its own interval; None: not polled
        self.health_interval_s = health_interval_s
        self._health_profiles = list(health_profiles) if health_profiles is not None else None
        # every write: to the spool on disk first, then forwarded to the store in order
        self._sink = SpooledStore(pool.conninfo, spool_dir, max_bytes=spool_max_bytes,
                                  when_full=spool_when_full, device_of=self._device_of_object)
        self._object_device: dict[int, int] | None = None  # port/device id -> device id
        self._tracker = StateTracker()
        self._devices: dict[int, _DeviceState] = {}
        self._stats = CollectorStats()
        self._stats_lock = threading.Lock()
        self._pending_samples: list[Sample] = []
        # threshold rules judged on the samples as they are written (given by the caller,
        # keyline.wiring), on the tracker's states; the SLA tiers that choose a rule are
        # read from the store. None: samples are not judged.
        self._thresholds = thresholds(self._tracker.state) if thresholds is not None else None
        self._tiers_read: Future | None = None
        self._tiers_for: object = _NOT_READ  # the import the tiers are of
        self._unjudged: list[Sample] = []  # until the tiers are first read
        self._first_sights: list[Observation] = []  # written at the next flush
        self._unlogged_skips: Counter[str] = Counter()  # skipped polls not logged yet
        self._next_skip_log = 0.0  # time.monotonic() of the next skip log line
        self._skips_logged = False
        self._pending_statuses: dict[int, tuple[str, str | None, datetime]] = {}
        self._pending_matches: dict[int, PortMatchRow] = {}
        self._written_matches: dict[int, tuple[object, ...]] = {}
        # One thread for the store's reads and upkeep (targets, rollups, retention): never
        # in the write path, which is the spool's
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="keyline-store")
        self._last_import_id: int | None = None
        # v3 agents' trap users, by device: registered once a poll has told the engine id
        self._v3_trap_users: dict[int, V3TrapUser] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._scheduler: Scheduler | None = None
        # the wall clock (epoch seconds) that polls and samples are stamped with; intervals
        # are the loop's monotonic clock. Injectable: a test steps it.
        self._wall_clock = wall_clock
        self.clock_step_tolerance_s = clock_step_tolerance_s
        self._clock_mark: tuple[float, float] | None = None  # (wall, monotonic) last checked
        self._poller: SnmpPoller | None = None
        self._in_flight: asyncio.Semaphore | None = None
        self.trap_receiver: TrapReceiver | None = None
        # the CLI source (collectors.cli): given by the caller, which closes it; None or no
        # interval: no CLI polling
        self._cli_sessions = cli_sessions
        self.cli_interval_s = cli_interval_s if cli_sessions is not None else None
        self.cli_config_interval_s = (cli_config_interval_s if cli_sessions is not None
                                      else None)
        self._cli_profiles = dict(cli_profiles) if cli_profiles is not None else None
        self._cli_devices: dict[int, _CliDeviceState] = {}
        self._pending_cli_statuses: dict[int, tuple[str, str | None, datetime,
                                                    str | None]] = {}
        self._config_unavailable_logged = False
        # Several collectors on one store (store.leases): with an `instance`, this one polls
        # only the devices of its groups whose leases it holds, renewed every lease_s / 3
        # on a thread of their own (never behind a long rollup on the store thread).
        self._instance = instance
        self.lease_s = lease_s
        self._lease_thread = ThreadPoolExecutor(max_workers=1,
                                                thread_name_prefix="keyline-leases")
        self._lease_valid_until: float | None = None  # scheduler time; None: not leasing
        # the lease thread's own connection: a pool busy with an alarm pipeline's start
        # must not make this collector miss a renewal
        self._lease_conn: psycopg.Connection | None = None
        self._lease_problem_logged = False
        self._group_targets: dict[int, PollTarget] = {}  # every device of the groups served
        self._held_ids: set[int] | None = None  # devices whose leases this one holds
        self._target_problems: list[TargetProblem] = []
        self._group_cli_targets: list[CliTarget] = []
        self._cli_problems: list[TargetProblem] = []
        # rollups and retention run only while this gate says so (the fleet's singleton
        # lease, keyline.wiring); None: always
        self._upkeep_gate = upkeep_gate
        self._heartbeat_name = heartbeat_name

    @property
    def startup_spread_s(self) -> float:
        """How far apart the first polls of the devices are spread (collectors.schedule's
        warm-up polls): the configured spread, longer for many devices, so that a start
        asks at most STARTUP_POLLS_PER_S polls a second (2,000 devices in 10 s were 200 a
        second on top of their first states, and polls were skipped)."""
        devices = len(self._group_targets) or len(self._devices)
        return max(self._startup_spread_s, devices / STARTUP_POLLS_PER_S)

    def poll_budget_s(self) -> float:
        """The longest a poll takes from its start to its last write reaching the store: the
        tries, the ICMP check of a silent device, two flushes. A collector stops polling a
        device this long before its lease can expire (store.leases)."""
        icmp_s = self.icmp_count * self.icmp_timeout_s if self.icmp_check else 0.0
        return (self.timeout_s * (self.retries + 1) + icmp_s + 2 * self.flush_interval_s
                + self._fence_check_s())

    def _fence_check_s(self) -> float:
        return min(1.0, self.lease_s / 10)

    @property
    def leasing(self) -> bool:
        return self._instance is not None

    @classmethod
    def from_settings(cls, settings: Any, pool: ConnectionPool,
                      environ: Mapping[str, str] | None = None, *,
                      cli_sessions: CliSessions | None = None,
                      instance: CollectorInstance | None = None,
                      upkeep_gate: Callable[[], bool] | None = None,
                      thresholds: SampleJudgeFactory | None = None) -> CollectionService:
        """A service configured by `settings` (config.settings.Settings); with
        `cli_sessions` (collectors.cli.CliSessions.from_settings) and `[cli] enabled`, the
        devices with a CLI credential are read over SSH too. With an `instance`
        (store.leases), it polls only the devices it holds leases on ([collector]). The
        samples are judged by `thresholds` (keyline.wiring.threshold_judge: the `[alarms]`
        rules), none when it is None."""
        cli = settings.cli
        service = cls(
            pool,
            spool_dir=settings.spool_dir,
            interval_s_for=settings.poll.interval_s_for,
            environ=environ,
            timeout_s=settings.poll.timeout_s,
            retries=settings.poll.retries,
            traps_enabled=settings.traps.enabled,
            trap_host=settings.traps.host,
            trap_port=settings.traps.port,
            trap_receive_buffer_bytes=settings.traps.receive_buffer_bytes,
            spool_max_bytes=settings.spool.max_bytes,
            spool_when_full=settings.spool.when_full,
            raw_retention_days=settings.store.raw_retention_days,
            retention=settings.store,
            down_after_failures=settings.poll.down_after_failures,
            confirm_after_s=settings.poll.confirm_after_s,
            icmp_check=settings.poll.icmp_check,
            icmp_count=settings.poll.icmp_count,
            icmp_timeout_s=settings.poll.icmp_timeout_s,
            health_interval_s=settings.health.interval_s if settings.health.enabled else None,
            cli_sessions=cli_sessions if cli.enabled else None,
            cli_interval_s=cli.interval_s, cli_config_interval_s=cli.config_interval_s,
            thresholds=thresholds,
            instance=instance, lease_s=settings.collector.lease_s or DEFAULT_LEASE_S,
            upkeep_gate=upkeep_gate,
            heartbeat_name=(f"collector:{settings.collector.name}" if settings.collector.name
                            else "collector"),
        )
        if settings.collector.lease_s is None:  # long poll timeouts: a longer lease
            service.lease_s = max(DEFAULT_LEASE_S, 2 * service.poll_budget_s())
        return service

    # --- lifetime (any thread) -----------------------------------------------------------------

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the service's thread; return once it polls and listens for traps, or raise
        what stopped it from starting (the trap port taken, the store away...)."""
        if self._thread is not None:
            raise RuntimeError("collection service already started")
        self._sink.start()
        self._thread = threading.Thread(target=self._run, name="keyline-collector",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"collection service did not start within {timeout_s} s")
        if self._start_error is not None:
            self._thread.join()
            self._sink.close()
            raise self._start_error

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop polling and receiving, put what is buffered on disk, and return within about
        `timeout_s` whatever the store does (what it has not taken stays in the spool for the
        next start). Idempotent."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        deadline = time.monotonic() + timeout_s
        if thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(max(0.5, deadline - time.monotonic() - 2.0))
        self._thread = None
        self._sink.close(max(0.5, deadline - time.monotonic()))
        # a read or upkeep stuck on a dead store is abandoned, not waited for
        self._writer.shutdown(wait=False, cancel_futures=True)
        self._lease_thread.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> CollectionService:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stats(self) -> CollectorStats:
        """A copy of the counters (safe to read from any thread)."""
        with self._stats_lock:
            return CollectorStats(
                polls=Counter(self._stats.polls),
                device_polls=Counter(self._stats.device_polls),
                skipped_polls=Counter(self._stats.skipped_polls),
                withheld_intervals=self._stats.withheld_intervals,
                unmapped_interfaces=self._stats.unmapped_interfaces,
                health_polls=self._stats.health_polls,
                samples=self._stats.samples, observations=self._stats.observations,
                trap_observations=self._stats.trap_observations,
                traps_not_held=self._stats.traps_not_held,
                write_errors=self._stats.write_errors,
                target_problems=list(self._stats.target_problems),
                reloads=self._stats.reloads,
                clock_steps=self._stats.clock_steps,
                cli_polls=Counter(self._stats.cli_polls),
                cli_device_polls=Counter(self._stats.cli_device_polls),
                cli_skipped_polls=Counter(self._stats.cli_skipped_polls),
                cli_target_problems=list(self._stats.cli_target_problems),
            )

    def plans(self) -> list[PollPlan]:
        """Every scheduled device's plan (group, interval, phase), by device key."""
        return sorted((state.plan for state in list(self._devices.values())),
                      key=lambda plan: plan.device_key)

    def schedule_blocking(self, name: str, interval_s: float, function: Callable[[], Any], *,
                          first_delay_s: float = 0.0) -> None:
        """Run `function` every `interval_s` on a thread of its own, never two at once (a run
        still going when the next is due skips it): periodic work of the engines above the
        collectors (topology discovery, say) that the wiring schedules on this service's
        clock. Call after start()."""
        loop, scheduler = self._loop, self._scheduler
        if loop is None or scheduler is None:
            raise RuntimeError("start the collection service before scheduling on it")

        async def run() -> None:
            try:
                await asyncio.to_thread(function)
            except Exception:
                log.exception("%s failed", name)

        def add() -> None:
            assert self._scheduler is not None
            self._scheduler.every(f"blocking:{name}", interval_s, run,
                                  first_delay_s=first_delay_s)

        loop.call_soon_threadsafe(add)

    def flush(self, timeout_s: float = 10.0) -> None:
        """Write what is buffered now: on disk when this returns, and in the store too
        while the store takes writes (waiting at most `timeout_s` in all; for tests and a
        clean stop)."""
        loop = self._loop
        if loop is None or not loop.is_running():
            return
        deadline = time.monotonic() + timeout_s
        done = asyncio.run_coroutine_threadsafe(self._flush_and_wait(), loop)
        done.result(timeout_s)
        if self._sink.stats().store_available:
            self._sink.drain(max(0.0, deadline - time.monotonic()))

    # --- the loop thread ---------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(drop_late_snmp_answers)
        self._loop = loop
        try:
            loop.run_until_complete(self._start_async())
        except BaseException as error:  # handed to start()'s caller
            self._start_error = error
            loop.run_until_complete(self._stop_async())
            loop.close()
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._stop_async())
            loop.close()

    async def _start_async(self) -> None:
        self._in_flight = asyncio.Semaphore(self.max_in_flight)
        if self.health_interval_s is not None and self._health_profiles is None:
            self._health_profiles = await asyncio.to_thread(load_profiles)
        self._poller = SnmpPoller(timeout_s=self.timeout_s, retries=self.retries,
                                  wall_clock=self._wall_clock)
        if self.icmp_check:
            try:
                self._icmp = IcmpChecker.open(count=self.icmp_count,
                                              timeout_s=self.icmp_timeout_s)
            except IcmpUnavailable as error:
                log.error("%s. Until then no device is called down: one whose SNMP is "
                          "silent is reported SNMP-unresponsive", error)
        targets, problems, import_id = await self._in_writer(self._read_targets)
        self._group_targets = {target.device_id: target for target in targets}
        self._target_problems = list(problems)
        first_round: LeaseRound | None = None
        if self._instance is not None:
            await self._in_leases(self._register)
            renewed_at = asyncio.get_running_loop().time()  # the Scheduler's clock
            first_round = await self._in_leases(self._renew)
            self._lease_valid_until = renewed_at + self.lease_s - self.poll_budget_s()
            self._held_ids = set(first_round.held)
        states = await self._in_writer(self._read_latest_states, self._objects_of(
            [target for target in targets if self._holds(target.device_id)]))
        self._tracker.seed(states)
        self._last_import_id = import_id
        if self.traps_enabled:
            self.trap_receiver = TrapReceiver(
                _by_address(targets), host=self.trap_host, port=self.trap_port,
                communities=_communities(targets),
                on_observations=self._on_trap_observations,
                receive_buffer_bytes=self.trap_receive_buffer_bytes)
            try:
                await self.trap_receiver.start()
            except OSError as error:
                self.trap_receiver = None
                raise OSError(error.errno, f"trap receiver cannot listen on {self.trap_host}:"
                              f"{self.trap_port} ({error.strerror}); set [traps] port, or"
                              " enabled = false") from None
        scheduler = Scheduler(asyncio.get_running_loop(), on_skipped=self._on_skipped)
        self._scheduler = scheduler
        self._apply_targets(self._held_targets(), problems,
                            first_poll_after_s=first_round.taken if first_round else None)
        if self.cli_interval_s is not None:
            self._group_cli_targets, self._cli_problems = await self._in_writer(
                self._read_cli_targets)
            self._apply_cli_targets(*self._held_cli_targets())
        scheduler.every("flush", self.flush_interval_s, self._flush)
        scheduler.every("reload-targets", self.reload_interval_s, self._reload_if_changed)
        if self._instance is not None:
            scheduler.every("leases", self.lease_s / 3, self._lease_round)
            scheduler.every("lease-fence", self._fence_check_s(), self._check_fence)
        scheduler.every("rollup-5min", 300.0, self._gated(self._maintain_rollups))
        scheduler.every("retention", 6 * 3600.0, self._gated(self._maintain_retention),
                        first_delay_s=60.0)
        scheduler.every("heartbeat", HEARTBEAT_INTERVAL_S, self._heartbeat, first_delay_s=1.0)
        self._clock_mark = (self._wall_clock(), scheduler.time())
        scheduler.every("clock-check", self.flush_interval_s, self._check_clock)
        log.info("collecting from %d devices%s%s", len(self._devices),
                 f"; traps on {self.trap_host}:{self.trap_receiver.port}"
                 if self.trap_receiver else "; traps disabled",
                 f"; {len(self._cli_devices)} over the CLI" if self._cli_devices else "")

    async def _stop_async(self) -> None:
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        if self.trap_receiver is not None:
            await self.trap_receiver.stop()
        running = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        with contextlib.suppress(RuntimeError):  # the writer is already shut down
            await self._flush_and_wait()
        if self._instance is not None and self._lease_valid_until is not None:
            # hand every device over now rather than when the lease expires
            wait_s = {device_id: self._next_poll_due_s(state)
                      for device_id, state in self._devices.items()}
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._in_leases(self._retire, wait_s), 3.0)
        if self._poller is not None:
            self._poller.close()

    # --- targets and jobs --------------------------------------------------------------------

    def _read_targets(self) -> tuple[list[PollTarget], list[TargetProblem], int | None]:
        """The targets of the groups this collector serves (all groups without leases)."""
        with self._pool.connection() as conn:
            targets, problems = load_poll_targets(conn, environ=self._environ)
            import_id = conn.execute("SELECT max(id) FROM import_runs").fetchone()[0]
        return ([target for target in targets if self._serves(target.poller_group)],
                problems, import_id)

    def _read_latest_states(self, object_ids: Sequence[int] | None = None,
                            conn: psycopg.Connection | None = None
                            ) -> dict[tuple[int, str], str]:
        """The store's last states (of these objects: the devices this collector holds and
        their ports), with what the spool still holds on top: a restarted collector, or one
        that takes a device over, must start from what was recorded last."""
        if conn is None:
            with self._pool.connection() as pooled:
                return self._read_latest_states(object_ids, pooled)
        states = latest_states(conn, object_ids)
        wanted = set(object_ids) if object_ids is not None else None
        for observation in self._sink.pending_observations():
            if observation.kind != KIND_AGENT_RESTART and (
                    wanted is None or observation.object_id in wanted):
                states[(observation.object_id, observation.kind)] = observation.new
        return states

    # --- leases: several collectors on one store (store.leases) -------------------------------

    def _serves(self, poller_group: str) -> bool:
        instance = self._instance
        return instance is None or instance.groups is None or poller_group in instance.groups

    def _holds(self, device_id: int) -> bool:
        return self._held_ids is None or device_id in self._held_ids

    def _held_targets(self) -> list[PollTarget]:
        return [target for device_id, target in self._group_targets.items()
                if self._holds(device_id)]

    def _held_cli_targets(self) -> tuple[list[CliTarget], list[TargetProblem]]:
        return ([target for target in self._group_cli_targets if self._holds(target.device_id)],
                self._cli_problems)

    def _objects_of(self, targets: Sequence[PollTarget]) -> list[int] | None:
        """The devices' and their ports' ids (None: everything, without leases)."""
        if self._instance is None:
            return None
        return [object_id for target in targets
                for object_id in (target.device_id, *(port[0] for port in target.ports))]

    def _gated(self, job: Callable[[], Any]) -> Callable[[], Any]:
        """`job`, run only while the upkeep gate (the fleet's singleton lease) is open."""
        async def run() -> None:
            if self._upkeep_gate is None or self._upkeep_gate():
                await job()

        return run

    async def _in_leases(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.wrap_future(self._lease_thread.submit(function, *args))

    def _with_lease_conn(self, function: Callable[..., Any], *args: Any) -> Any:
        """`function(conn, *args)` on the lease thread's own connection (opened again after
        an error)."""
        if self._lease_conn is None or self._lease_conn.closed:
            timeout_s = max(1, round(self.lease_s / 3))
            self._lease_conn = psycopg.connect(
                self._pool.conninfo, autocommit=True, connect_timeout=timeout_s, keepalives=1,
                keepalives_idle=timeout_s, keepalives_interval=timeout_s,
                keepalives_count=2, tcp_user_timeout=int(self.lease_s * 1000))
        try:
            return function(self._lease_conn, *args)
        except psycopg.Error:
            conn, self._lease_conn = self._lease_conn, None
            with contextlib.suppress(psycopg.Error):
                conn.close()
            raise

    def _register(self) -> None:
        """Register this collector instance; a live one of the same name (a process killed
        a moment ago, whose lease has not expired yet) is waited for, up to two leases."""
        assert self._instance is not None
        deadline = time.monotonic() + 2 * self.lease_s
        waited = False
        while True:
            in_use = self._with_lease_conn(register_instance, self._instance, self.lease_s)
            if in_use is None:
                return
            if time.monotonic() > deadline:
                raise LeaseError(f"{in_use}: give each collector its own [collector] name"
                                 " (keyline collect --name)")
            if not waited:
                log.warning("%s: waiting for it to stop renewing (at most %.0f s)", in_use,
                            2 * self.lease_s)
                waited = True
            time.sleep(min(1.0, self.lease_s / 10))

    def _renew(self) -> LeaseRound:
        assert self._instance is not None
        return self._with_lease_conn(
            lambda conn: renew_leases(conn, self._instance, lease_s=self.lease_s,
                                      interval_s_for=self._interval_s_for,
                                      poll_budget_s=self.poll_budget_s()))

    def _release(self, wait_s: Mapping[int, float]) -> int:
        return self._with_lease_conn(release_leases, self._instance, wait_s)

    def _retire(self, wait_s: Mapping[int, float]) -> None:
        try:
            self._with_lease_conn(retire_instance, self._instance, wait_s)
        finally:
            if self._lease_conn is not None:
                self._lease_conn.close()

    async def _lease_round(self) -> None:
        """Renew this collector's leases; then poll what it holds now: drop the devices
        another collector took, take up the ones it got (their states from the store), and
        hand back those beyond its fair share once it stopped polling them."""
        assert self._scheduler is not None and self._instance is not None
        renewed_at = self._scheduler.time()
        try:
            lease_round = await self._in_leases(self._renew)
        except (psycopg.Error, PoolTimeout) as error:
            if not self._lease_problem_logged:
                log.warning("leases not renewed, store unavailable (%s): polling stops %.0f s"
                            " after the last renewal unless the store answers", error,
                            self.lease_s - self.poll_budget_s())
                self._lease_problem_logged = True
            return
        except LeaseError as error:  # its name was taken meanwhile: tried again each round
            if not self._lease_problem_logged:
                log.error("leases not renewed: %s", error)
                self._lease_problem_logged = True
            return
        self._lease_problem_logged = False
        self._lease_valid_until = renewed_at + self.lease_s - self.poll_budget_s()
        before = set(self._devices)
        self._held_ids = set(lease_round.held)
        for device_id in [d for d in self._devices if d not in lease_round.held]:
            self._drop_device(device_id, "its lease went to another collector")
        new = [self._group_targets[d] for d in lease_round.held
               if d not in self._devices and d in self._group_targets]
        # a device held again after a lapse of this collector's own: a full interval first
        wait_s = {target.device_id: lease_round.taken.get(
                      target.device_id, float(self._interval_s_for(target.poller_group)))
                  for target in new}
        if new:
            try:  # on the lease thread: never behind a long rollup on the store thread
                states = await self._in_leases(
                    self._with_lease_conn,
                    lambda conn: self._read_latest_states(self._objects_of(new), conn))
            except (psycopg.Error, PoolTimeout) as error:
                log.info("devices not taken up yet, store unavailable: %s", error)
                self._held_ids -= {target.device_id for target in new}
                return
            self._tracker.seed(states)
        self._apply_targets(self._held_targets(), self._target_problems,
                            first_poll_after_s=wait_s)
        if self.cli_interval_s is not None:
            self._apply_cli_targets(*self._held_cli_targets())
        if lease_round.surplus:
            await self._hand_back(lease_round)
        self._object_device = None
        if set(self._devices) != before:
            log.info("now polling %d devices (%d taken up, %d gone to other collectors)",
                     len(self._devices), len(set(self._devices) - before),
                     len(before - set(self._devices)))

    async def _hand_back(self, lease_round: LeaseRound) -> None:
        """Stop polling the devices beyond this collector's fair share, then release their
        leases, each with the time left until its next poll was due."""
        assert self._held_ids is not None
        wait_s: dict[int, float] = {}
        for group, count in lease_round.surplus.items():
            mine = sorted((d for d, g in lease_round.held.items()
                           if g == group and d in self._devices), reverse=True)[:count]
            for device_id in mine:
                wait_s[device_id] = self._next_poll_due_s(self._devices[device_id])
                self._drop_device(device_id, None)
                self._held_ids.discard(device_id)
        if self.cli_interval_s is not None:
            self._apply_cli_targets(*self._held_cli_targets())
        try:
            released = await self._in_leases(self._release, wait_s)
        except (psycopg.Error, PoolTimeout) as error:  # they lapse back to this one
            log.info("leases not handed back, store unavailable: %s", error)
            return
        log.info("handed %d devices over to the other collectors of their groups", released)

    def _next_poll_due_s(self, state: _DeviceState) -> float:
        """Seconds until this device's next poll would be due: the next holder of its lease
        waits that long, so no interval sees two polls of it."""
        interval_s = state.plan.interval_s
        if state.busy:
            return interval_s
        if state.last_result is None:
            return 0.0
        since_s = self._wall_clock() - state.last_result.started_at.timestamp()
        return min(interval_s, max(0.0, interval_s - since_s))

    async def _check_fence(self) -> None:
        """Stop polling every device once the leases may expire before a poll starting now
        has written its last word (the store has not renewed them in time)."""
        assert self._scheduler is not None
        until = self._lease_valid_until
        if until is None or self._scheduler.time() <= until or not self._held_ids:
            return
        log.warning("leases not renewed in time: this collector stops polling its %d devices"
                    " (the other collectors of their groups take them over)",
                    len(self._devices))
        self._held_ids = set()
        for device_id in list(self._devices):
            self._drop_device(device_id, None)
        if self.cli_interval_s is not None:
            self._apply_cli_targets(*self._held_cli_targets())
        self._object_device = None

    def _trap_targets(self) -> list[PollTarget]:
        """Whom traps are taken from: every device of the groups served (a device's trap
        for a device another collector holds is counted and left to that one), with the
        ports the polls of the held ones matched."""
        known = {**self._group_targets,
                 **{device_id: state.target for device_id, state in self._devices.items()}}
        return list(known.values())

    def _apply_targets(self, targets: Sequence[PollTarget],
                       problems: Sequence[TargetProblem], *,
                       first_poll_after_s: Mapping[int, float] | None = None) -> None:
        """Schedule new devices, reschedule changed ones, drop retired ones. A device in
        `first_poll_after_s` (taken over from another collector) is polled no sooner than
        that, and gets no warm-up polls."""
        assert self._scheduler is not None
        described = [str(problem) for problem in problems]
        with self._stats_lock:
            said, self._stats.target_problems = self._stats.target_problems, described
        if described != said:  # every lease round applies them again: said once
            for problem in problems:
                log.warning("%s: not polled", problem)
        wanted = {target.device_id: target for target in targets}
        for device_id in [d for d in self._devices if d not in wanted]:
            self._drop_device(device_id)
        for device_id, target in wanted.items():
            interval_s = float(self._interval_s_for(target.poller_group))
            state = self._devices.get(device_id)
            if state is not None and state.target.ports == target.ports:
                # the same ports: keep what the last poll matched until the next one
                target = replace(target, ports_by_if_index=state.target.ports_by_if_index)
            if state is not None and state.plan.interval_s == interval_s:
                state.target = target  # new credential or ports: next poll uses them
                continue
            plan = plan_poll(device_id, target.device_key, target.poller_group, interval_s,
                             self.startup_spread_s)
            after_s = (first_poll_after_s or {}).get(device_id, 0.0)
            if after_s > 0:  # at once when allowed: a takeover is not held to the phase
                plan = replace(plan, first_delay_s=after_s, warmup_delays_s=())
            if state is None:
                self._devices[device_id] = _DeviceState(
                    target, plan, verdict=self._tracker.state(device_id, KIND_REACHABILITY))
            else:
                state.target, state.plan = target, plan
            self._scheduler.every(f"poll:{device_id}", interval_s, self._poll_job, device_id,
                                  first_delay_s=plan.first_delay_s)
            for number, delay_s in enumerate(plan.warmup_delays_s):
                self._scheduler.once(f"warmup:{device_id}:{number}", delay_s, self._poll_job,
                                     device_id)
            if self.health_interval_s is not None:
                # at the device's phase, after its first interface poll has named its ports
                first_s = plan.first_delay_s % self.startup_spread_s + self.startup_spread_s
                self._scheduler.every(f"health:{device_id}", self.health_interval_s,
                                      self._health_job, device_id, first_delay_s=first_s)
        if self.trap_receiver is not None:  # with the ports matched so far
            self.trap_receiver.targets_by_address = _by_address(self._trap_targets())

    def _drop_device(self, device_id: int,
                     why: str | None = "is no longer in the inventory") -> None:
        assert self._scheduler is not None
        state = self._devices.pop(device_id)
        self._v3_trap_users.pop(device_id, None)
        for job_id in self._scheduler.job_ids():
            if (_device_of_job(job_id) == device_id
                    and not job_id.startswith(("cli:", "config:"))):  # the CLI's own
                self._scheduler.remove(job_id)
        self._tracker.forget(device_id)
        for port_id in {*state.target.ports_by_if_index.values(),
                        *(port[0] for port in state.target.ports)}:
            self._tracker.forget(port_id)
        if why is not None:
            log.info("%s %s: not polled any more", state.target.device_key, why)

    async def _reload_if_changed(self) -> None:
        """Re-read the targets when an inventory import happened since the last read."""
        def latest_import() -> int | None:
            with self._pool.connection(timeout=5) as conn:
                return conn.execute("SELECT max(id) FROM import_runs").fetchone()[0]

        try:
            import_id = await self._in_writer(latest_import)
            if import_id == self._last_import_id:
                return
            targets, problems, import_id = await self._in_writer(self._read_targets)
            cli_targets = (await self._in_writer(self._read_cli_targets)
                           if self.cli_interval_s is not None else None)
        except (psycopg.OperationalError, PoolTimeout) as error:
            log.debug("targets not reloaded, store unavailable: %s", error)
            return
        if cli_targets is not None:
            self._group_cli_targets, self._cli_problems = cli_targets
            self._apply_cli_targets(*self._held_cli_targets())
        old_communities = (_communities(self._group_targets.values())
                           if self.trap_receiver else None)
        self._last_import_id = import_id
        self._group_targets = {target.device_id: target for target in targets}
        self._target_problems = list(problems)
        self._apply_targets(self._held_targets(), problems)
        self._object_device = None
        with self._stats_lock:
            self._stats.reloads += 1
        if self.trap_receiver is not None and _communities(targets) != old_communities:
            await self._restart_trap_receiver(targets)
        log.info("inventory changed: now collecting from %d devices", len(self._devices))

    async def _restart_trap_receiver(self, targets: Sequence[PollTarget]) -> None:
        assert self.trap_receiver is not None
        stats = self.trap_receiver.stats
        await self.trap_receiver.stop()
        self.trap_receiver = TrapReceiver(
            _by_address(self._trap_targets()),
            host=self.trap_host, port=self.trap_receiver.port,
            communities=_communities(targets), v3_users=list(self._v3_trap_users.values()),
            on_observations=self._on_trap_observations,
            receive_buffer_bytes=self.trap_receive_buffer_bytes)
        self.trap_receiver.stats = stats
        await self.trap_receiver.start()

    # --- polls and traps ---------------------------------------------------------------------

    async def _poll_job(self, device_id: int) -> None:
        state = self._devices.get(device_id)
        if state is None:
            return
        if state.busy:  # a warm-up poll and a regular one met: the later one waits a turn
            self._count_skip(state.target.device_key)
            return
        assert self._poller is not None and self._in_flight is not None
        state.busy = True
        try:
            async with self._in_flight:
                result = await self._poller.poll(state.target)
            verdict = await self._judge(state, result)
            if self._devices.get(device_id) is state:  # not dropped by a reload meanwhile
                self._take(state, result, verdict)
        except asyncio.CancelledError:  # the service stops: the poll is abandoned, not failed
            return
        finally:
            state.busy = False

    async def _health_job(self, device_id: int) -> None:
        """Poll the device's health (collectors.health) and hand its samples to the sink.
        A device that does not answer its interface polls is left alone: its verdict says
        what is wrong."""
        state = self._devices.get(device_id)
        if (state is None or state.health_busy or state.verdict != REACHABLE
                or self._health_profiles is None):
            return
        assert self._poller is not None and self._in_flight is not None
        state.health_busy = True
        try:
            async with self._in_flight:
                target = state.target
                if state.health_profile is None:
                    sys_object_id = await read_sys_object_id(self._poller, target)
                    state.health_profile = choose_profile(self._health_profiles, sys_object_id,
                                                          target.platform)
                labels = state.last_result.interface_labels if state.last_result else {}
                reading = await poll_health(self._poller, target, state.health_profile,
                                            interface_names_from_labels(labels) or None)
        except asyncio.CancelledError:
            return
        finally:
            state.health_busy = False
        if self._devices.get(device_id) is not state:
            return
        if reading.status is not PollStatus.REACHABLE:
            log.debug("health poll of %s: %s", target.device_key, reading.reason)
            return
        new_problems = frozenset(reading.problems) - state.health_problems
        if new_problems:  # said once per device and problem, not every interval
            log.info("health poll of %s (profile %s): %s", target.device_key,
                     state.health_profile.name, "; ".join(sorted(new_problems)))
            state.health_problems |= new_problems
        samples = health_samples(reading, device_id, state.target.ports_by_if_index,
                                 datetime.fromtimestamp(self._wall_clock(), UTC))
        self._pending_samples.extend(self._snmp_wins(device_id, samples))
        with self._stats_lock:
            self._stats.health_polls += 1

    # --- the CLI source (collectors.cli) ------------------------------------------------------

    def _read_cli_targets(self) -> tuple[list[CliTarget], list[TargetProblem]]:
        from collectors.cli import load_cli_targets

        if self._cli_profiles is None:
            from collectors.cli_profiles import load_cli_profiles

            self._cli_profiles = load_cli_profiles()
        with self._pool.connection() as conn:
            return load_cli_targets(conn, environ=self._environ, profiles=self._cli_profiles)

    def _apply_cli_targets(self, targets: Sequence[CliTarget],
                           problems: Sequence[TargetProblem]) -> None:
        """Schedule the CLI poll (and configuration fetch) of new CLI devices, update changed
        ones, drop those gone. A device whose platform has no CLI profile keeps a status
        (no-profile) and no job."""
        assert self._scheduler is not None and self.cli_interval_s is not None
        for problem in problems:
            log.warning("%s: not read over the CLI", problem)
        with self._stats_lock:
            self._stats.cli_target_problems = [str(problem) for problem in problems]
        wanted = {target.device_id: target for target in targets}
        for device_id in [d for d in self._cli_devices if d not in wanted]:
            self._cli_devices.pop(device_id)
            for job_id in (f"cli:{device_id}", f"config:{device_id}"):
                self._scheduler.remove(job_id)
        now = datetime.fromtimestamp(self._wall_clock(), UTC)
        profiles = self._cli_profiles or {}
        for device_id, target in wanted.items():
            profile = profiles.get(target.platform or "")
            state = self._cli_devices.get(device_id)
            if state is not None:
                state.target, state.profile = target, profile
                continue
            self._cli_devices[device_id] = _CliDeviceState(target, profile)
            if profile is None:
                self._pending_cli_statuses[device_id] = (
                    CliStatus.NO_PROFILE.value,
                    f"no CLI profile for platform {target.platform or '(none)'}", now, None)
                continue
            spread_s = min(self.startup_spread_s, self.cli_interval_s)
            self._scheduler.every(f"cli:{device_id}", self.cli_interval_s, self._cli_job,
                                  device_id,
                                  first_delay_s=phase_fraction(device_id) * spread_s)
            if self.cli_config_interval_s is not None and profile.config_command:
                # after the first poll has opened the session the fetch then reuses
                self._scheduler.every(
                    f"config:{device_id}", self.cli_config_interval_s, self._config_job,
                    device_id, first_delay_s=spread_s + phase_fraction(device_id) * spread_s)

    async def _cli_job(self, device_id: int) -> None:
        """One CLI poll of the device on the sessions' workers, its result into samples and
        the device's CLI status."""
        state = self._cli_devices.get(device_id)
        if state is None or self._cli_sessions is None:
            return
        if state.busy:
            self._count_cli_skip(state.target.device_key)
            return
        state.busy = True
        try:
            result = await asyncio.wrap_future(self._cli_sessions.submit(
                state.target, poll_cli, self._cli_sessions, state.target, state.profile))
        except asyncio.CancelledError:  # the service stops
            return
        except Exception:  # a bug, not the device: this device's poll only
            log.exception("CLI poll of %s failed", state.target.device_key)
            return
        finally:
            state.busy = False
        if self._cli_devices.get(device_id) is state:
            self._take_cli(state, result)

    def _take_cli(self, state: _CliDeviceState, result: CliResult) -> None:
        target = state.target
        if result.status is CliStatus.OK:
            samples, state.last_readings = cli_samples(result, state.profile,
                                                       state.last_readings, time.monotonic())
            self._pending_samples.extend(samples)
            changes = self._tracker.apply(cli_observations(result, state.profile))
            if changes:
                self._write_observations(changes)
        if result.status.value != state.last_status:  # said once per change, not per poll
            level = logging.INFO if result.status is CliStatus.OK else logging.WARNING
            log.log(level, "CLI of %s: %s%s", target.device_key, result.status.value,
                    f" - {result.reason}" if result.reason else "")
            state.last_status = result.status.value
        self._pending_cli_statuses[target.device_id] = (
            result.status.value, result.reason, result.started_at,
            result.raw_output if result.status is not CliStatus.OK else None)
        with self._stats_lock:
            self._stats.cli_polls[result.status.value] += 1
            self._stats.cli_device_polls[target.device_key] += 1

    def _cli_reports(self, device_id: int) -> _CliDeviceState | None:
        """The device's CLI state when its CLI reports what its profile gives to the CLI:
        its last CLI poll was ok. Until then, and while its CLI fails, SNMP reports
        everything, so that a device whose CLI is broken keeps its figures."""
        state = self._cli_devices.get(device_id)
        if state is None or state.profile is None or state.last_status != CliStatus.OK:
            return None
        return state

    def _snmp_observes(self, device_id: int,
                       observations: list[Observation]) -> list[Observation]:
        """A device's SNMP observations without the port states its CLI profile gives to
        the CLI (cli_observations reports those)."""
        state = self._cli_reports(device_id)
        if state is None:
            return observations
        return [observation for observation in observations
                if STATE_METRICS.get(observation.kind) is None
                or state.profile.wins(STATE_METRICS[observation.kind]) != "cli"]

    def _snmp_wins(self, device_id: int, samples: list[Sample]) -> list[Sample]:
        """The SNMP samples of a device without those of the metrics its CLI profile gives
        to the CLI (one source per metric: the profile's `prefer`)."""
        state = self._cli_reports(device_id)
        if state is None:
            return samples
        return [sample for sample in samples if state.profile.wins(sample.metric) != "cli"]

    async def _config_job(self, device_id: int) -> None:
        """Fetch and record the device's running configuration (collectors.config_history),
        on the sessions' workers after the device's CLI poll, if one is running."""
        state = self._cli_devices.get(device_id)
        if state is None or self._cli_sessions is None or state.config_busy:
            return
        try:
            from collectors.config_history import fetch_and_record
        except ImportError as error:
            if not self._config_unavailable_logged:
                log.warning("configuration history is not available: %s", error)
                self._config_unavailable_logged = True
            return
        state.config_busy = True
        try:
            await asyncio.wrap_future(self._cli_sessions.submit(
                state.target, fetch_and_record, self._cli_sessions, state.target,
                state.profile, self._pool))
        except asyncio.CancelledError:
            return
        except Exception:
            log.exception("configuration fetch of %s failed", state.target.device_key)
        finally:
            state.config_busy = False

    def _count_cli_skip(self, device_key: str) -> None:
        with self._stats_lock:
            self._stats.cli_skipped_polls[device_key] += 1
            skipped = self._stats.cli_skipped_polls[device_key]
        if skipped & (skipped - 1) == 0:  # a power of two: said without repeating itself
            log.warning("CLI poll of %s skipped: the previous one still runs (%d skipped so"
                        " far)", device_key, skipped)

    def _write_cli_statuses(self, rows: list[tuple[int, str, str | None, datetime,
                                                   str | None]]) -> None:
        """The CLI statuses of the last flush, into the store (the current picture: one
        lost while the store is away is rewritten by the next poll)."""
        from store.cli import record_cli_statuses

        try:
            with self._pool.connection(timeout=2) as conn:
                record_cli_statuses(conn, rows)
        except (psycopg.OperationalError, PoolTimeout) as error:
            log.debug("CLI statuses not written, store unavailable: %s", error)

    async def _judge(self, state: _DeviceState, result: PollResult) -> Verdict | None:
        """The device's verdict after this poll (collectors.reachability), None while the
        evidence is not enough to change it; an ICMP check when the poll got no answer."""
        if result.status is not PollStatus.UNREACHABLE:
            state.failures, state.alive_in_row, state.first_failure_at = 0, 0, None
            return judge(state.verdict, 0, result, None,
                         down_after_failures=self.down_after_failures,
                         icmp_enabled=self.icmp_check)
        state.failures += 1
        if state.first_failure_at is None:
            state.first_failure_at = result.started_at
        echo = None
        if state.failures >= self.down_after_failures and self._icmp is not None:
            echo = await self._icmp.check(state.target.host)
        state.alive_in_row = state.alive_in_row + 1 if echo is not None and echo.alive else 0
        verdict = judge(state.verdict, state.failures, result, echo,
                        down_after_failures=self.down_after_failures,
                        icmp_enabled=self.icmp_check,
                        extra_hint=await self._diagnose(state.target, echo),
                        alive_in_row=state.alive_in_row)
        if verdict is None and ((state.failures == 1 and state.verdict in (None, REACHABLE))
                                or state.alive_in_row == 1):
            self._confirm_soon(state)
        return verdict

    async def _diagnose(self, target: PollTarget, echo: Any) -> str | None:
        """A specific hint for a device alive but silent on SNMP (an agent that speaks
        SNMPv1 only), or None."""
        if echo is None or not echo.alive or target.credential.version != "v2c":
            return None
        diagnose = getattr(self._poller, "diagnose_silence", None)
        if diagnose is None:
            return None
        try:
            return await diagnose(target)
        except Exception:  # a diagnosis is a courtesy: never let it fail a poll
            log.debug("diagnosis of %s failed", target.device_key, exc_info=True)
            return None

    def _confirm_soon(self, state: _DeviceState) -> None:
        """A confirmation poll of a device whose poll just failed, before its next turn."""
        delay_s = min(self.confirm_after_s, state.plan.interval_s / 2)
        if self._scheduler is None or delay_s < 0.5:
            return
        self._scheduler.once(f"confirm:{state.target.device_id}", delay_s, self._poll_job,
                             state.target.device_id)

    def _take(self, state: _DeviceState, result: PollResult,
              verdict: Verdict | None = None) -> None:
        """Turn one poll result (and the device's verdict) into samples, a poll status and
        observations."""
        now = result.started_at
        matched: list[Observation] = []
        if result.status is PollStatus.REACHABLE and state.target.ports:
            result, matched = self._match_ports(state, result)
        target = result.target
        observed = observe_poll_counted(state.last_result, result, now)
        observed.observations.extend(matched)
        if verdict is not None and verdict.state != state.verdict:
            # down or silent since the first poll that got no answer: the outage began then;
            # back when the answer came, not when a request that waited through it was sent
            if verdict.state != REACHABLE and result.status is PollStatus.UNREACHABLE:
                began = state.first_failure_at or now
            elif verdict.state == REACHABLE and state.verdict is not None:
                began = now + timedelta(seconds=result.duration_s)
            else:
                began = now
            observed.observations.insert(0, verdict_observation(
                target.device_id, state.verdict, verdict.state, began, reason=verdict.reason,
                hint=verdict.hint, detail=verdict.detail))
            state.verdict = verdict.state
        changes = self._tracker.apply(self._snmp_observes(target.device_id,
                                                          observed.observations))
        samples: list[Sample] = []
        withheld = 0
        if result.status is PollStatus.REACHABLE:
            readings: dict[int, Any] = {}
            for if_index, reading in result.interfaces.items():
                port_id = target.ports_by_if_index.get(if_index)
                if port_id is None:
                    continue
                # by port, not ifIndex: an interface renumbered by a reboot is withheld one
                # interval (another ifIndex), never mixed with another port's counters
                rates = compute_rates(state.last_readings.get(port_id), reading)
                readings[port_id] = reading
                samples.extend(rate_samples(rates, port_id, now))
                if self._note_gap(state, port_id, rates):
                    withheld += 1
                    samples.append(Sample(now, port_id, RATE_GAP_METRIC,
                                          float(rates.skipped_code)))
            samples.append(Sample(now, target.device_id, RESPONSE_TIME_METRIC,
                                  result.duration_s * 1000.0))
            state.last_readings = readings
            new_problems = frozenset(result.problems) - state.poll_problems
            if new_problems:  # said once per device and problem, not every poll
                log.info("poll of %s skipped what it could not read: %s", target.device_key,
                         "; ".join(sorted(new_problems)))
            state.poll_problems = frozenset(result.problems)
        state.last_result = result
        if result.engine_id is not None:
            self._learn_v3_trap_user(target, result.engine_id)
        self._pending_samples.extend(self._snmp_wins(target.device_id, samples))
        self._pending_statuses[target.device_id] = (result.status.value, result.reason, now)
        with self._stats_lock:
            self._stats.polls[result.status.value] += 1
            self._stats.device_polls[target.device_key] += 1
            self._stats.withheld_intervals += withheld
            self._stats.unmapped_interfaces += len(observed.unmapped_if_indexes)
        if changes:
            self._write_observations(changes)

    def _match_ports(self, state: _DeviceState,
                     result: PollResult) -> tuple[PollResult, list[Observation]]:
        """Match the inventory ports to the interfaces this poll found, by if_index or by
        name as operators write them (collectors.port_names): an ifIndex renumbered by a
        reboot is followed at the next poll, and the traps of the device follow too. Ports
        that cannot be matched become "port_match" observations (a configuration alarm), and
        the match of every port is recorded for `keyline topology diff`, `keyline poll
        --once` and the admin page."""
        target, now = state.target, result.started_at
        seen = (target.ports, result.interface_labels)
        if state.matched == seen:  # the same interfaces, every port matched: nothing new
            return (result if result.target is target
                    else replace(result, target=target)), []
        match = match_ports(target.ports, result.interface_labels)
        if match.by_if_index != target.ports_by_if_index:
            target = replace(target, ports_by_if_index=dict(match.by_if_index))
            state.target = target
            if (self.trap_receiver is not None
                    and self.trap_receiver.targets_by_address.get(target.host) is not None):
                self.trap_receiver.targets_by_address[target.host] = target
        problems: dict[int, list[Any]] = {}
        for problem in match.problems:
            problems.setdefault(problem.port_id, []).append(problem)
        by_port = match.by_port_id
        observations = []
        for port_id, _name, _if_index in target.ports:
            found = problems.get(port_id, [])
            kind = found[0].kind if found else None
            message = "; ".join(p.message for p in found) if found else None
            known = self._tracker.state(port_id, KIND_PORT_MATCH)
            if kind is not None or known not in (None, "ok"):
                observations.append(Observation(
                    now, port_id, KIND_PORT_MATCH, known, kind or "ok", "poll",
                    {"device_id": target.device_id,
                     **({"message": message} if message else {})}))
            if_index = by_port.get(port_id)
            row = PortMatchRow(port_id, target.device_id, if_index,
                               match.how.get(port_id) if if_index is not None else None,
                               kind, message, now)
            written = (row.if_index, row.matched_by, row.problem, row.message)
            if self._written_matches.get(port_id) != written:
                self._pending_matches[port_id] = row
        state.matched = seen if not match.problems else None
        return replace(result, target=target), observations

    def _note_gap(self, state: _DeviceState, port_id: int, rates: InterfaceRates) -> bool:
        """Whether this interval of the port is a gap to store (its rates withheld for a
        reason other than having no previous reading); logged at INFO once per port and
        episode, with the reason."""
        code = rates.skipped_code
        if code is None or code is SkipCode.NO_PREVIOUS_READING:
            state.gaps.pop(port_id, None)
            return False
        if state.gaps.get(port_id) != code:
            log.info("%s port %d: rates withheld (%s) until the counters can be trusted again",
                     state.target.device_key, port_id, rates.skipped_reason)
            state.gaps[port_id] = code
        return True

    def _learn_v3_trap_user(self, target: PollTarget, engine_id: bytes) -> None:
        """Accept v3 traps from the agent the poll just reached: a v3 trap is signed with the
        agent's own engine id, which only a poll (or the inventory) can tell."""
        credential = target.credential
        user = V3TrapUser(credential.username or "", engine_id,
                          credential.auth_protocol, credential.auth_key,
                          credential.priv_protocol, credential.priv_key)
        if self._v3_trap_users.get(target.device_id) == user:
            return
        self._v3_trap_users[target.device_id] = user
        if self.trap_receiver is not None:
            self.trap_receiver.add_v3_user(user)
            log.debug("accepting v3 traps from %s (engine id %s)", target.device_key,
                      engine_id.hex())

    def _on_trap_observations(self, observations: list[Observation]) -> None:
        if self._held_ids is not None:
            # a trap of a device another collector of the group holds: that one receives
            # it too (devices send traps to every collector of their group, docs/scaling.md)
            held = [o for o in observations if self._device_of_object(o.object_id) is not None]
            if len(held) != len(observations):
                with self._stats_lock:
                    self._stats.traps_not_held += len(observations) - len(held)
                observations = held
        changes = self._tracker.apply(observations)
        if changes:
            with self._stats_lock:
                self._stats.trap_observations += len(changes)
            self._write_observations(changes)

    def _on_skipped(self, job_id: str) -> None:
        """The scheduler's word that a job was due while its last run still went: a device's
        poll is counted (skipped_polls); upkeep and blocking work just wait their next turn."""
        if job_id.startswith(("health:", "config:")):
            return  # a health poll still running: it runs again at its next interval
        if job_id.startswith("cli:"):
            cli_state = self._cli_devices.get(_device_of_job(job_id) or -1)
            if cli_state is not None:
                self._count_cli_skip(cli_state.target.device_key)
            return
        device_id = _device_of_job(job_id)
        state = self._devices.get(device_id) if device_id is not None else None
        if state is not None:
            self._count_skip(state.target.device_key)

    def _count_skip(self, device_key: str) -> None:
        """Count a skipped poll; say so in one line for every device at most every
        SKIP_LOG_INTERVAL_S: a saturated collector skips hundreds of polls a minute, and a
        line for each would drown the log (the counts per device are in the stats)."""
        with self._stats_lock:
            self._stats.skipped_polls[device_key] += 1
        self._unlogged_skips[device_key] += 1
        now = time.monotonic()
        if now < self._next_skip_log:
            return
        self._next_skip_log = now + SKIP_LOG_INTERVAL_S
        skips, self._unlogged_skips = self._unlogged_skips, Counter()
        shown = ", ".join(key for key, _ in skips.most_common(5))
        log.warning("%d polls of %d devices skipped%s: their previous polls still ran (the "
                    "agents answer slowly, or the collector cannot keep up: see keyline "
                    "status); %s%s", sum(skips.values()), len(skips),
                    f" in the last {SKIP_LOG_INTERVAL_S:.0f} s" if self._skips_logged else "",
                    shown, ", ..." if len(skips) > 5 else "")
        self._skips_logged = True

    def _check_clock(self) -> None:
        """Compare the wall clock's elapsed time with the monotonic clock's since the last
        check: a difference beyond `clock_step_tolerance_s` is a step of the wall clock,
        logged once (the next check measures from the new time) and counted. Nothing else
        to do: schedules, rates and restarts run on the monotonic clock."""
        assert self._scheduler is not None
        wall_s, monotonic_s = self._wall_clock(), self._scheduler.time()
        mark, self._clock_mark = self._clock_mark, (wall_s, monotonic_s)
        if mark is None:
            return
        step_s = (wall_s - mark[0]) - (monotonic_s - mark[1])
        if abs(step_s) <= self.clock_step_tolerance_s:
            return
        with self._stats_lock:
            self._stats.clock_steps += 1
        log.warning("the wall clock stepped by %+.0f s; polling continues on schedule; samples "
                    "are stamped with the new time", step_s)

    # --- writes: to the spool (collectors.spool), which forwards them ------------------------

    def _write_observations(self, observations: list[Observation]) -> None:
        """Hand state changes to the sink now: an alarm may be waiting for them. A first
        sight of a state (old None: a new device or port, and every port at a collector's
        first start) waits for the next flush with the others, so 2,000 devices' 42,000
        initial states are a few batches, not 2,000; what waits goes out before any later
        change, so the store keeps their order."""
        with self._stats_lock:
            self._stats.observations += len(observations)
        changes = [observation for observation in observations if observation.old is not None]
        if len(changes) != len(observations):
            self._first_sights.extend(observation for observation in observations
                                      if observation.old is None)
        if changes:
            self._write_first_sights()
            self._sink.write_observations(changes)

    def _write_first_sights(self) -> None:
        if self._first_sights:
            first_sights, self._first_sights = self._first_sights, []
            self._sink.write_observations(first_sights)

    async def _flush(self) -> None:
        samples, self._pending_samples = self._pending_samples, []
        statuses, self._pending_statuses = self._pending_statuses, {}
        matches, self._pending_matches = self._pending_matches, {}
        if matches:
            self._sink.write_port_matches(list(matches.values()))
            for port_id, row in matches.items():  # on disk now, the store gets it in order
                self._written_matches[port_id] = (row.if_index, row.matched_by, row.problem,
                                                  row.message)
        if samples:
            with self._stats_lock:
                self._stats.samples += len(samples)
            self._sink.write_samples(samples)
            self._judge_thresholds(samples)
        self._write_first_sights()
        if statuses:
            self._sink.write_poll_statuses([(device_id, status, reason, at) for device_id,
                                            (status, reason, at) in statuses.items()])
        cli_statuses, self._pending_cli_statuses = self._pending_cli_statuses, {}
        if cli_statuses:
            self._submit(self._write_cli_statuses, [
                (device_id, *row) for device_id, row in cli_statuses.items()])

    def _judge_thresholds(self, samples: list[Sample]) -> None:
        """Offer the samples just written to the threshold rules (the caller's SampleJudge);
        the series that crossed a level become observations. The SLA tiers are read on the
        store thread when an import changed them; until the first read the samples wait
        (a few seconds at start), after it they are judged with the tiers known."""
        stage = self._thresholds
        if stage is None or not stage.metrics:
            return
        reading = self._tiers_read
        if reading is not None and reading.done():
            self._tiers_read = None
            error = reading.exception()
            if error is None:
                tiers, import_id = reading.result()
                stage.set_objects(self._is_device, tiers)
                self._tiers_for = import_id
            else:
                log.debug("SLA tiers of the threshold rules not read: %s", error)
        if self._tiers_read is None and self._tiers_for != self._last_import_id:
            with contextlib.suppress(RuntimeError):  # the store thread is shut down: stopping
                self._tiers_read = self._writer.submit(self._read_tiers, self._last_import_id)
        if self._tiers_for is _NOT_READ:
            if len(self._unjudged) < UNJUDGED_MAX_SAMPLES:
                self._unjudged.extend(sample for sample in samples
                                      if sample.metric in stage.metrics)
            return
        if self._unjudged:
            samples, self._unjudged = self._unjudged + samples, []
        changes = self._tracker.apply(stage.crossings(samples))
        if changes:
            self._write_observations(changes)

    def _is_device(self, object_id: int) -> bool:
        return object_id in self._devices or object_id in self._cli_devices

    def _read_tiers(self, import_id: int | None) -> tuple[dict[int, str], int | None]:
        from store.alarms import sla_tiers

        with self._pool.connection(timeout=5) as conn:
            return sla_tiers(conn), import_id

    async def _flush_and_wait(self) -> None:
        await self._flush()
        await asyncio.to_thread(self._sink.flush)

    def drain(self, timeout_s: float = 30.0) -> bool:
        """Write what is buffered and wait until the store has all of it, however long
        the store takes to come back (within `timeout_s`; tests, benches)."""
        self.flush(min(timeout_s, 10.0))
        return self._sink.drain(timeout_s)

    def spool_stats(self) -> SpoolStats:
        return self._sink.stats()

    def _device_of_object(self, object_id: int) -> int | None:
        """The device a sample's object is (a device) or belongs to (a port): for counting
        what a full spool drops per device."""
        mapping = self._object_device
        if mapping is None:
            mapping = {}
            for device_id, state in list(self._devices.items()):
                mapping[device_id] = device_id
                for port_id, _name, _if_index in state.target.ports:
                    mapping[port_id] = device_id
            self._object_device = mapping
        return mapping.get(object_id)

    def health(self) -> dict[str, Any]:
        """What this collector tells `keyline status` (store.collection): its spool, polls
        and traps."""
        stats, spool = self.stats(), self._sink.stats()
        overdue = [state.target.device_key for state in list(self._devices.values())
                   if state.last_result is not None and (
                       datetime.now(UTC) - state.last_result.started_at).total_seconds()
                   > 3 * state.plan.interval_s]
        traps: dict[str, Any] = {}
        if self.trap_receiver is not None:
            trap_stats = self.trap_receiver.stats
            traps = {"received": trap_stats.received,
                     "kernel_drops": getattr(trap_stats, "kernel_drops", 0),
                     "undecodable": sum(getattr(trap_stats, "undecodable", {}).values()),
                     "wrong_community": sum(trap_stats.wrong_community.values()),
                     "unknown_source": sum(trap_stats.unknown_source.values())}
        return {
            "devices": len(self._devices),
            "polls": dict(stats.polls), "skipped_polls": sum(stats.skipped_polls.values()),
            "devices_overdue": len(overdue), "overdue": sorted(overdue)[:20],
            "clock_steps": getattr(stats, "clock_steps", 0),
            "spool": {"bytes": spool.spool_bytes, "oldest_s": spool.oldest_spooled_s,
                      "store_available": spool.store_available, "dropped": spool.dropped,
                      "outages": spool.outages, "forwarded_batches": spool.forwarded_batches,
                      "rejected_batches": spool.rejected_batches},
            "traps": traps,
            "cli": {"devices": len(self._cli_devices), "polls": dict(stats.cli_polls),
                    "skipped_polls": sum(stats.cli_skipped_polls.values())},
        }

    async def _heartbeat(self) -> None:
        from store.collection import record_heartbeat

        detail = self.health()

        def write() -> None:
            with self._pool.connection(timeout=2) as conn:
                record_heartbeat(conn, self._heartbeat_name, self._started_at, detail)

        try:
            await self._in_writer(write)
        except (psycopg.OperationalError, PoolTimeout) as error:
            log.debug("heartbeat not written, store unavailable: %s", error)

    async def _maintain_rollups(self) -> None:
        from store.timeseries import refresh_rollups

        await self._in_writer_quietly(refresh_rollups, self._pool, datetime.now(UTC))

    async def _maintain_retention(self) -> None:
        from store.events import prune_events
        from store.timeseries import apply_retention

        def prune() -> int:
            with self._pool.connection() as conn:
                return prune_events(conn, self.event_retention_days)

        def prune_batches() -> int:
            from store.collection import prune_spool_batches

            with self._pool.connection() as conn:
                return prune_spool_batches(conn)

        from config.settings import StoreSettings

        retention = self.retention or StoreSettings(raw_retention_days=self.raw_retention_days)
        await self._in_writer_quietly(apply_retention, self._pool, retention)
        await self._in_writer_quietly(prune)
        await self._in_writer_quietly(prune_batches)

    def _submit(self, function: Callable[..., Any], *args: Any) -> Future:
        future = self._writer.submit(function, *args)
        future.add_done_callback(self._check_write)
        return future

    def _check_write(self, future: Future) -> None:
        error = future.exception()
        if error is not None:
            with self._stats_lock:
                self._stats.write_errors += 1
            log.error("write failed: %s: %s", type(error).__name__, error)

    async def _in_writer(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.wrap_future(self._writer.submit(function, *args))

    async def _in_writer_quietly(self, function: Callable[..., Any], *args: Any) -> None:
        try:
            await self._in_writer(function, *args)
        except (psycopg.OperationalError, PoolTimeout) as error:
            log.info("%s postponed, store unavailable: %s", function.__name__, error)


def _by_address(targets: Sequence[PollTarget]) -> dict[str, PollTarget]:
    return {target.host: target for target in targets}


def _communities(targets: Any) -> set[str]:
    """The v1 and v2c communities of the targets: a device sends traps with the one it is
    polled with (pysnmp's receiver turns a v1 Trap-PDU into its v2 form, RFC 3584)."""
    return {target.credential.community.get_secret_value() for target in targets
            if target.credential.version in ("v1", "v2c")
            and target.credential.community is not None}


def _device_of_job(job_id: str) -> int | None:
    kind, _, rest = job_id.partition(":")
    device_id = rest.partition(":")[0]
    return (int(device_id) if kind in ("poll", "warmup", "confirm", "health", "cli", "config")
            and device_id.isdigit() else None)


def drop_late_snmp_answers(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The collector loop's exception handler. A datagram that reached a pysnmp engine just
    before the engine was closed (at stop) is handed to the closed dispatcher, which raises
    CarrierError "Unregistered transport": an answer nobody waits for, not an error worth a
    traceback. Everything else goes to asyncio's default handler."""
    from pysnmp.carrier.error import CarrierError

    error = context.get("exception")
    if isinstance(error, CarrierError) and "Unregistered transport" in str(error):
        log.debug("dropped an SNMP datagram that arrived after its engine was closed")
        return
    loop.default_exception_handler(context)
