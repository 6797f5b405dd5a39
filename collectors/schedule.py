"""When each device is polled: poll groups, intervals, and start times spread over the interval.

Every device belongs to a *poll group* (the inventory's ``poller_group``) and the group sets its
interval: key accounts' edge devices every 10 s, the core every 60 s (settings ``[poll]``).
Each device is its own scheduled job, so a device that answers slowly, or not at all, holds
back only itself: its next poll is *skipped and counted* while the previous one still runs
(a cycle never overlaps itself), and every other device keeps its interval.

If every device of a group started at the same instant, the collector would send a burst of
requests each interval and the agents' and the machine's UDP buffers would drop some (see
LAB-NOTES). So each device gets a fixed *phase* inside its interval, derived from its id:
2,000 devices in a 60 s group are polled about 33 a second, evenly, and a device is polled at
the same phase each interval, which keeps its rate intervals regular. The phase comes from a
multiplicative hash rather than the id's position in a list, so adding a device does not move
everyone else's phase.

The jobs run on `Scheduler`, a small scheduler on the asyncio loop's own clock (``loop.time()``,
monotonic), never the wall clock: an NTP step of the wall clock, an hour back or forward,
neither stops polling nor makes it race. A periodic job is due at ``first_delay_s + n *
interval_s`` after it was added, so it keeps its phase; a job whose run is still going when
it is due again skips that turn, and the skip is counted and reported (``on_skipped``); a loop
held up past several turns runs the job once, then goes back to its grid (no burst of
catch-up runs). One-off jobs (warm-up and confirmation polls) run once after a delay. Adding a
job under an existing id replaces it; a run of the old job that is still going finishes, and
the new job does not start beside it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# Knuth's multiplicative hashing constant (2**32 / golden ratio): consecutive ids land far
# apart in [0, 1), so devices imported together do not bunch up.
_GOLDEN_32 = 2_654_435_769


def phase_fraction(device_id: int) -> float:
    """A stable number in [0, 1) for a device: where in its interval it is polled."""
    return ((device_id * _GOLDEN_32) & 0xFFFF_FFFF) / 2**32


def plan_poll(device_id: int, device_key: str, poll_group: str, interval_s: float,
              startup_spread_s: float) -> PollPlan:
    """The device's schedule: its regular polls at its phase of the interval and up to two
    *warm-up* polls within the first ``2 * startup_spread_s``.

    Rates need two readings: without warm-up, a 60 s device would show its first traffic
    numbers up to two minutes after the collector started; with it, within
    ``2.5 * startup_spread_s`` (25 s by default). A
    warm-up poll is kept only when it comes at least ``startup_spread_s / 2`` away from every
    other poll, so that every rate covers a real stretch of time, never a few milliseconds
    (and a short interval, whose regular polls come soon anyway, gets none)."""
    phase = phase_fraction(device_id)
    first_delay_s = phase * interval_s
    horizon_s = 2 * startup_spread_s + interval_s
    regular_s = [first_delay_s + n * interval_s
                 for n in range(int(horizon_s // interval_s) + 2)]
    warmups: list[float] = []
    for delay_s in (phase * startup_spread_s, (phase + 1) * startup_spread_s):
        if all(abs(delay_s - other_s) >= startup_spread_s / 2
               for other_s in (*regular_s, *warmups)):
            warmups.append(delay_s)
    return PollPlan(device_id, device_key, poll_group, interval_s, first_delay_s,
                    tuple(warmups))


@dataclass(frozen=True)
class PollPlan:
    """One device's schedule: its group's interval, the delay of its first regular poll (its
    phase), and the delays of its warm-up polls (none when the first poll comes soon)."""

    device_id: int
    device_key: str
    poll_group: str
    interval_s: float
    first_delay_s: float
    warmup_delays_s: tuple[float, ...]


@dataclass
class _Job:
    job_id: str
    function: Callable[..., Any]
    args: tuple[Any, ...]
    origin: float  # loop time of the first run
    interval_s: float | None  # None: a one-off job
    turn: int = 0  # the next run is due at origin + turn * interval_s
    handle: asyncio.TimerHandle | None = None

    def due(self) -> float:
        return self.origin + self.turn * (self.interval_s or 0.0)


class Scheduler:
    """Periodic and one-off jobs on an asyncio loop's monotonic clock (see the module
    docstring): `loop`, by default the running one. Every method is called on the loop's
    thread; jobs are known by their id (``poll:7``, ``warmup:7:0``, ``flush``...).

    A job is a function called with its ``args``: a coroutine function runs as a task of the
    loop and counts as running until it returns; a plain function runs in the loop's callback
    and is done when it returns. An exception of a job is logged, never raised into the loop.
    ``on_skipped(job_id)`` is called (and ``skipped[job_id]`` counted) each time a job is due
    while its previous run still goes.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, *,
                 on_skipped: Callable[[str], None] | None = None) -> None:
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._on_skipped = on_skipped
        self._jobs: dict[str, _Job] = {}
        self._running: set[str] = set()  # ids of the jobs with a run still going
        self._tasks: set[asyncio.Task[Any]] = set()
        self._shut_down = False
        self.skipped: Counter[str] = Counter()

    @property
    def running(self) -> bool:
        """True until `shutdown`."""
        return not self._shut_down

    def time(self) -> float:
        """The scheduler's clock: the loop's monotonic time, in seconds."""
        return self._loop.time()

    def every(self, job_id: str, interval_s: float, function: Callable[..., Any], *args: Any,
              first_delay_s: float | None = None) -> None:
        """Run ``function(*args)`` every ``interval_s``, the first time after
        ``first_delay_s`` (default: one interval), replacing the job of that id if any."""
        if not interval_s > 0 or not math.isfinite(interval_s):
            raise ValueError(f"interval_s must be a positive number of seconds, not {interval_s}")
        delay_s = interval_s if first_delay_s is None else max(first_delay_s, 0.0)
        self._add(_Job(job_id, function, args, self.time() + delay_s, float(interval_s)))

    def once(self, job_id: str, delay_s: float, function: Callable[..., Any],
             *args: Any) -> None:
        """Run ``function(*args)`` once after ``delay_s``, replacing the job of that id if
        any."""
        self._add(_Job(job_id, function, args, self.time() + max(delay_s, 0.0), None))

    def remove(self, job_id: str) -> bool:
        """Forget a job (a run of it still going finishes); False when there was none."""
        job = self._jobs.pop(job_id, None)
        if job is None:
            return False
        if job.handle is not None:
            job.handle.cancel()
        return True

    def job_ids(self) -> list[str]:
        """The ids of the jobs still to run (a one-off job leaves once it ran)."""
        return list(self._jobs)

    def next_run_at(self, job_id: str) -> float | None:
        """When the job is due next, on the scheduler's clock (`time`); None if no such job."""
        job = self._jobs.get(job_id)
        return job.due() if job is not None else None

    def is_running(self, job_id: str) -> bool:
        """Whether a run of the job is still going."""
        return job_id in self._running

    def shutdown(self, wait: bool = False) -> None:
        """Forget every job; runs still going are left to finish or to be cancelled with the
        loop's other tasks. ``wait`` is accepted for APScheduler's call shape and ignored: a
        call on the loop's thread cannot wait for the loop's own tasks. Later additions are
        ignored."""
        del wait
        self._shut_down = True
        for job_id in list(self._jobs):
            self.remove(job_id)

    # --- internals -------------------------------------------------------------------------

    def _add(self, job: _Job) -> None:
        if self._shut_down:
            log.debug("job %s not scheduled: the scheduler is shut down", job.job_id)
            return
        self.remove(job.job_id)
        self._jobs[job.job_id] = job
        self._arm(job)

    def _arm(self, job: _Job) -> None:
        job.handle = self._loop.call_at(job.due(), self._fire, job)

    def _fire(self, job: _Job) -> None:
        if self._jobs.get(job.job_id) is not job:  # removed or replaced meanwhile
            return
        if job.job_id in self._running:
            self.skipped[job.job_id] += 1
            if self._on_skipped is not None:
                try:
                    self._on_skipped(job.job_id)
                except Exception:
                    log.exception("skip handler of job %s failed", job.job_id)
        else:
            self._start(job)
        if job.interval_s is None:
            del self._jobs[job.job_id]
            return
        # the next turn on the job's grid; a loop held up past whole turns skips them
        # silently (they were never due while a run was going: nothing to count)
        now = self.time()
        job.turn += 1
        if job.due() <= now:
            job.turn = math.floor((now - job.origin) / job.interval_s) + 1
        self._arm(job)

    def _start(self, job: _Job) -> None:
        try:
            outcome = job.function(*job.args)
        except Exception:
            log.exception("job %s failed", job.job_id)
            return
        if inspect.isawaitable(outcome):
            self._running.add(job.job_id)
            task = self._loop.create_task(self._await(job.job_id, outcome))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _await(self, job_id: str, outcome: Any) -> None:
        try:
            await outcome
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %s failed", job_id)
        finally:
            self._running.discard(job_id)
