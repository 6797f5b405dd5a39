"""SLA clock benchmark: deadline computations per second on a service calendar.

The calendars are the example inventory's bronze contract (Asia/Shanghai business hours,
Monday to Friday 08:30-18:00 and Saturday 09:00-12:00, with its 2025 holidays and make-up
working days, and 2026's official days filled from chinesecalendar) and gold (24x7), read as
the ticket service reads them: from the stored calendar JSON through sla.calendar.calendar_of.

Each computation is the deadline of a running ticket clock (sla.clocks.due_at): a random
start instant over 2025 and 2026 (seeded), a random priority P1..P4, the response or the
resolution target of that priority, and a random share of it already used (a clock that was
paused and resumed). The calendar's year tables are built on the first computation that
needs them: the first round is printed on its own, and the figure is the median of the
following `--rounds` rounds. The same is measured for the business time used so far
(sla.clocks.used), which the portal's queue computes for every open ticket.

    python bench/sla_clocks.py                    # 100,000 clocks, 5 rounds
    python bench/sla_clocks.py --clocks 20000 --rounds 9
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and its neighbours are named
# like the packages they measure (bench/alarms.py): take the folder off.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

from config.inventory.loader import load_inventory
from keyline.wiring import EXAMPLE_INVENTORY
from sla.calendar import Calendar, calendar_of
from sla.clocks import Clock, due_at, used
from store.inventory import _jsonable


def clocks(contract: object, count: int, seed: int) -> list[tuple[Clock, datetime]]:
    """Running clocks on random instants, each with the instant 'now' at which its use is
    asked (up to three weeks later)."""
    rng = random.Random(seed)
    origin = datetime(2025, 1, 1, tzinfo=UTC)
    span_s = 2 * 365 * 86400 - 30 * 86400
    priorities = list(contract.priorities.values())  # type: ignore[attr-defined]
    result = []
    for _ in range(count):
        times = rng.choice(priorities)
        target_s = 60 * rng.choice((times.response_min, times.resolution_min))
        start = origin + timedelta(seconds=rng.uniform(0, span_s))
        clock = Clock(target_s=target_s, used_s=rng.uniform(0, 0.9) * target_s,
                      running_since=start)
        result.append((clock, start + timedelta(seconds=rng.uniform(0, 21 * 86400))))
    return result


def rate(work: Callable[[], None], count: int) -> float:
    begin = time.perf_counter()
    work()
    return count / (time.perf_counter() - begin)


def measure(name: str, calendar: Calendar, sample: list[tuple[Clock, datetime]],
            rounds: int) -> float:
    """Print the rates; return the median deadline rate."""
    count = len(sample)

    def deadlines() -> None:
        for clock, _now in sample:
            due_at(clock, calendar)

    def uses() -> None:
        for clock, now in sample:
            used(clock, calendar, now)

    first = rate(deadlines, count)
    deadline_rates = [rate(deadlines, count) for _ in range(rounds)]
    use_rates = [rate(uses, count) for _ in range(rounds)]
    print(f"{name:<28} deadlines (due_at):    {statistics.median(deadline_rates):>12,.0f}/s"
          f"   (first round, cold: {first:,.0f}/s)")
    print(f"{'':<28} time used (used):      {statistics.median(use_rates):>12,.0f}/s")
    return statistics.median(deadline_rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clocks", type=int, default=100_000, help="clocks per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds after the first")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    inventory = load_inventory([EXAMPLE_INVENTORY])
    print(f"{args.clocks:,} running clocks per round, median of {args.rounds} rounds"
          " (goal: >= 50,000 deadlines/s on a business-hours calendar)")
    for key, label in (("bronze", "bronze (business hours)"), ("gold", "gold (24x7)")):
        contract = inventory.sla_contracts[key]
        calendar = calendar_of(_jsonable(contract.calendar))
        measure(label, calendar, clocks(contract, args.clocks, args.seed), args.rounds)


if __name__ == "__main__":
    main()
