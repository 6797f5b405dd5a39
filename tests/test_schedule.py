"""The collectors' scheduler (collectors.schedule.Scheduler): phases kept, a run still going
makes the next turn skip (counted), one-off jobs, removal and replacement, a held-up loop that
catches up once, and no notice taken of the wall clock.

Most tests run an asyncio loop on a virtual clock: the loop's time advances by exactly what
it would have waited, so a minute of schedule takes no time and every run time is exact."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Iterator

import pytest

from collectors.schedule import Scheduler


class VirtualClock:
    """Makes `loop` keep virtual time: its clock starts at 1000 s and, instead of sleeping
    until the next timer, the loop's selector returns at once and the clock jumps there."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.now = 1000.0
        selector = loop._selector  # type: ignore[attr-defined]
        real_select = selector.select

        def select(timeout: float | None = None) -> list:
            if timeout is not None and timeout > 0:
                self.now += timeout
            return real_select(0)

        selector.select = select
        loop.time = lambda: self.now  # type: ignore[method-assign]


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.SelectorEventLoop()
    loop.clock = VirtualClock(loop)  # type: ignore[attr-defined]
    try:
        yield loop
    finally:  # runs still going are cancelled, as the service's stop does
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()

        async def cancelled() -> None:
            await asyncio.gather(*pending, return_exceptions=True)

        loop.run_until_complete(cancelled())
        loop.close()


def advance(loop: asyncio.AbstractEventLoop, seconds: float) -> None:
    """Run the loop for `seconds` of its (virtual) time."""
    loop.run_until_complete(asyncio.sleep(seconds))


def recorder(loop: asyncio.AbstractEventLoop, runs: list[float]):
    start = loop.time()
    return lambda *args: runs.append(round(loop.time() - start, 6))


def test_a_periodic_job_runs_at_its_phase_every_interval(
        loop: asyncio.AbstractEventLoop) -> None:
    scheduler = Scheduler(loop)
    runs: list[float] = []
    scheduler.every("poll:1", 10.0, recorder(loop, runs), first_delay_s=3.0)
    assert scheduler.next_run_at("poll:1") == pytest.approx(loop.time() + 3.0)
    advance(loop, 45.0)
    assert runs == pytest.approx([3.0, 13.0, 23.0, 33.0, 43.0])
    # by default the first run comes one interval after the job was added
    default: list[float] = []
    scheduler.every("flush", 2.0, recorder(loop, default))
    advance(loop, 7.0)
    assert default == pytest.approx([2.0, 4.0, 6.0])


def test_the_job_gets_its_arguments_and_coroutines_run_as_tasks(
        loop: asyncio.AbstractEventLoop) -> None:
    scheduler = Scheduler(loop)
    seen: list[tuple[int, str]] = []

    async def poll(device_id: int, what: str) -> None:
        await asyncio.sleep(1.0)
        seen.append((device_id, what))

    scheduler.every("poll:7", 10.0, poll, 7, "interfaces", first_delay_s=0.0)
    advance(loop, 0.5)
    assert scheduler.is_running("poll:7") and seen == []
    advance(loop, 1.0)
    assert not scheduler.is_running("poll:7") and seen == [(7, "interfaces")]


def test_a_run_still_going_when_the_next_is_due_skips_it_and_is_counted(
        loop: asyncio.AbstractEventLoop) -> None:
    skipped: list[str] = []
    scheduler = Scheduler(loop, on_skipped=skipped.append)
    starts: list[float] = []
    running = 0
    overlapped = False
    mark = recorder(loop, starts)

    async def slow_poll() -> None:  # 25 s on a 10 s interval
        nonlocal running, overlapped
        mark()
        running += 1
        overlapped |= running > 1
        await asyncio.sleep(25.0)
        running -= 1

    scheduler.every("poll:3", 10.0, slow_poll, first_delay_s=0.0)
    advance(loop, 65.0)
    # due at 0 10 20 30 40 50 60: 10, 20, 40 and 50 find the last run going
    assert starts == pytest.approx([0.0, 30.0, 60.0])
    assert not overlapped
    assert skipped == ["poll:3"] * 4
    assert scheduler.skipped["poll:3"] == 4


def test_a_one_off_job_runs_once_then_leaves(loop: asyncio.AbstractEventLoop) -> None:
    scheduler = Scheduler(loop)
    runs: list[float] = []
    scheduler.once("warmup:1:0", 2.5, recorder(loop, runs))
    scheduler.once("confirm:1", 4.0, recorder(loop, runs))
    assert sorted(scheduler.job_ids()) == ["confirm:1", "warmup:1:0"]
    advance(loop, 10.0)
    assert runs == pytest.approx([2.5, 4.0])
    assert scheduler.job_ids() == []
    assert scheduler.next_run_at("warmup:1:0") is None


def test_a_one_off_job_due_while_its_previous_run_goes_is_skipped_too(
        loop: asyncio.AbstractEventLoop) -> None:
    skipped: list[str] = []
    scheduler = Scheduler(loop, on_skipped=skipped.append)
    runs: list[float] = []
    mark = recorder(loop, runs)

    async def confirm() -> None:
        mark()
        await asyncio.sleep(5.0)

    scheduler.once("confirm:4", 1.0, confirm)
    advance(loop, 2.0)
    scheduler.once("confirm:4", 1.0, confirm)  # due at 3 s: the first still runs
    advance(loop, 10.0)
    assert runs == pytest.approx([1.0])
    assert skipped == ["confirm:4"]


def test_removing_a_devices_jobs_stops_them_and_leaves_the_others(
        loop: asyncio.AbstractEventLoop) -> None:
    scheduler = Scheduler(loop)
    runs: list[str] = []
    for job_id in ("poll:1", "health:1", "poll:2"):
        scheduler.every(job_id, 1.0, runs.append, job_id)
    scheduler.once("warmup:1:0", 0.5, runs.append, "warmup:1:0")
    for job_id in scheduler.job_ids():
        if job_id.partition(":")[2].partition(":")[0] == "1":
            assert scheduler.remove(job_id)
    assert scheduler.job_ids() == ["poll:2"]
    assert not scheduler.remove("poll:1")  # already gone
    advance(loop, 3.5)
    assert runs == ["poll:2"] * 3


def test_a_run_going_when_its_job_is_removed_finishes_and_none_follows(
        loop: asyncio.AbstractEventLoop) -> None:
    scheduler = Scheduler(loop)
    finished: list[float] = []
    mark = recorder(loop, finished)

    async def poll() -> None:
        await asyncio.sleep(3.0)
        mark()

    scheduler.every("poll:9", 5.0, poll, first_delay_s=0.0)
    advance(loop, 1.0)
    scheduler.remove("poll:9")
    advance(loop, 20.0)
    assert finished == pytest.approx([3.0])


def test_replacing_a_job_changes_its_interval_without_a_second_run_beside_the_first(
        loop: asyncio.AbstractEventLoop) -> None:
    skipped: list[str] = []
    scheduler = Scheduler(loop, on_skipped=skipped.append)
    starts: list[float] = []
    mark = recorder(loop, starts)

    async def poll() -> None:
        mark()
        await asyncio.sleep(1.5)

    scheduler.every("poll:5", 60.0, poll, first_delay_s=0.0)
    advance(loop, 1.0)  # the first run goes until 1.5 s
    scheduler.every("poll:5", 2.0, poll, first_delay_s=0.0)  # the interval changed
    advance(loop, 6.0)
    # due at 1 (the old run still goes: skipped), then 3, 5, 7 on the new interval
    assert starts == pytest.approx([0.0, 3.0, 5.0, 7.0])
    assert skipped == ["poll:5"]
    assert scheduler.job_ids() == ["poll:5"]


def test_a_held_up_loop_runs_a_late_job_once_then_keeps_its_phase(
        loop: asyncio.AbstractEventLoop) -> None:
    clock: VirtualClock = loop.clock  # type: ignore[attr-defined]
    skipped: list[str] = []
    scheduler = Scheduler(loop, on_skipped=skipped.append)
    runs: list[float] = []
    scheduler.every("poll:1", 10.0, recorder(loop, runs), first_delay_s=0.0)

    def hold_up_the_loop() -> None:  # a blocking call on the loop: 35 s
        clock.now += 35.0

    scheduler.once("blocker", 12.0, hold_up_the_loop)
    advance(loop, 65.0)
    # 20, 30 and 40 came due while the loop was held: one run at 47, then 50 and 60
    assert runs == pytest.approx([0.0, 10.0, 47.0, 50.0, 60.0])
    assert skipped == []  # nothing was running: no poll was skipped for a poll


def test_a_failing_job_is_logged_and_runs_again_at_its_next_turn(
        loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture) -> None:
    scheduler = Scheduler(loop)
    calls: list[str] = []

    def broken() -> None:
        calls.append("sync")
        raise RuntimeError("sync boom")

    async def broken_async() -> None:
        calls.append("async")
        raise RuntimeError("async boom")

    scheduler.every("sync", 1.0, broken)
    scheduler.every("async", 1.0, broken_async)
    with caplog.at_level(logging.ERROR, logger="collectors.schedule"):
        advance(loop, 2.5)
    assert calls.count("sync") == 2 and calls.count("async") == 2
    failed = [record.getMessage() for record in caplog.records]
    assert failed.count("job sync failed") == 2 and failed.count("job async failed") == 2
    assert not scheduler.is_running("async")


def test_shutdown_forgets_every_job_and_ignores_new_ones(
        loop: asyncio.AbstractEventLoop) -> None:
    scheduler = Scheduler(loop)
    runs: list[str] = []
    scheduler.every("poll:1", 1.0, runs.append, "poll:1")
    assert scheduler.running
    advance(loop, 1.5)
    scheduler.shutdown()
    scheduler.once("confirm:1", 0.1, runs.append, "confirm:1")
    advance(loop, 5.0)
    assert runs == ["poll:1"]
    assert not scheduler.running and scheduler.job_ids() == []


def test_an_interval_must_be_positive(loop: asyncio.AbstractEventLoop) -> None:
    scheduler = Scheduler(loop)
    for interval_s in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="interval_s"):
            scheduler.every("poll:1", interval_s, print)


def test_a_wall_clock_stepped_back_an_hour_does_not_stop_the_schedule(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """On a real loop and the real monotonic clock, with time.time() an hour behind from the
    first run on: the job keeps its interval (APScheduler's wall-clock triggers stopped)."""
    real_time = time.time
    runs: list[float] = []

    def run() -> None:
        runs.append(time.monotonic())
        if len(runs) == 1:
            monkeypatch.setattr(time, "time", lambda: real_time() - 3600.0)

    async def main() -> None:
        scheduler = Scheduler()
        scheduler.every("poll:1", 0.05, run, first_delay_s=0.0)
        await asyncio.sleep(0.5)
        scheduler.shutdown()

    asyncio.run(main())
    assert time.time() < real_time() - 3000  # the step took effect
    assert len(runs) >= 8, runs
    assert all(b - a < 0.2 for a, b in itertools.pairwise(runs))
