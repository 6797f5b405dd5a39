"""Garbage collection in a long-running server process: full collections that scan only
what is new.

CPython frees most objects by reference counting, the moment the last reference goes. Its
cyclic garbage collector exists for objects that refer to each other in a ring, which
reference counts never bring to zero. It sorts the objects it tracks into three
generations: new objects are scanned often, those that survived twice (generation 2,
"old") only in a *full collection*, which runs once the objects promoted into generation 2
since the last one exceed a quarter of those it held then, and scans every object of it
while the process does nothing else. In the portal server process (one OS thread, gevent)
that is every request and every socket waiting: with 2,000 live sockets generation 2 held
about 250,000 objects (some 125 a socket) and a full collection paused the process for
about 170 ms, roughly once a minute at 200 requests/s (bench/portal.py, measured with
gc.callbacks), which alone took REST's 99th percentile from 5-50 ms to 208 ms in the
10-second window it fell in. Yet nearly everything generation 2 holds in a server lives
for hours (modules, the topology, the sockets' objects): re-scanning it every minute finds
next to nothing (720 objects of 250,000 in that collection).

`gc.freeze()` moves every tracked object into a permanent generation that collections
skip. `LongLivedFreezer` freezes what exists once the application is built, and then what
survives each full collection, right after it: every full collection scans only what
became old since the previous one. Frozen objects are still freed by reference counting;
only a ring of them that became garbage after it was frozen (say a disconnected socket's
objects that refer to each other) stays until the next *reclaim*: unfreeze, collect
everything, freeze the survivors again. A reclaim costs what a full collection cost
before, and is due only once the frozen set has grown by `reclaim_growth` (half, by
default) since the last one: so uncollected rings are bounded to that share of the
long-lived objects, as CPython's own rule bounds them to a quarter, while a process whose
long-lived objects stay put (the same sockets connected for hours) is never paused for
them. (Tried before and worse: freezing only at start-up left the sockets' objects to be
rescanned, 45-180 ms a pause; a higher young-generation threshold, 500 ms for generation 1.)
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

# Growth of the frozen set since the last reclaim that makes the next one due: a half
# keeps the rings that wait for it to at most a third of the frozen objects.
RECLAIM_GROWTH = 0.5


class LongLivedFreezer:
    """Freezes the survivors of each full collection (see the module docstring); the
    process calls `reclaim_if_due()` now and then (the portal server process: every
    `RECLAIM_CHECK_INTERVAL_S`)."""

    def __init__(self, reclaim_growth: float = RECLAIM_GROWTH) -> None:
        if reclaim_growth <= 0:
            raise ValueError(f"reclaim_growth must be above 0, not {reclaim_growth!r}")
        self.reclaim_growth = reclaim_growth
        self.frozen_after_reclaim = 0  # gc.get_freeze_count() right after the last reclaim
        self.full_collections = 0  # full collections seen since install (reclaims included)
        self.reclaims = 0
        self.installed = False

    def install(self) -> None:
        """Collect and freeze what exists now, and freeze after every full collection."""
        if self.installed:
            return
        self.installed = True
        gc.callbacks.append(self._after_collection)
        self.reclaim()

    def uninstall(self) -> None:
        """Stop freezing, and hand every frozen object back to the collector."""
        if not self.installed:
            return
        self.installed = False
        gc.callbacks.remove(self._after_collection)
        gc.unfreeze()

    def _after_collection(self, phase: str, info: dict[str, Any]) -> None:
        # Called by CPython around every collection. At the end of a full one, generation 2
        # holds exactly its survivors (the younger generations were merged into it).
        if phase == "stop" and info["generation"] == 2:
            self.full_collections += 1
            gc.freeze()

    def reclaim_due(self) -> bool:
        return gc.get_freeze_count() > self.frozen_after_reclaim * (1 + self.reclaim_growth)

    def reclaim(self) -> int:
        """Unfreeze, collect everything, freeze the survivors; how many objects the
        collection found unreachable."""
        started = time.perf_counter()
        before = gc.get_freeze_count()
        gc.unfreeze()
        unreachable = gc.collect()
        gc.freeze()
        self.frozen_after_reclaim = gc.get_freeze_count()
        self.reclaims += 1
        log.debug("garbage collection: reclaim of %d frozen objects took %.0f ms, %d"
                  " unreachable, %d frozen after it", before,
                  (time.perf_counter() - started) * 1000, unreachable,
                  self.frozen_after_reclaim)
        return unreachable

    def reclaim_if_due(self) -> bool:
        """Reclaim when the frozen set has grown enough (see `reclaim_due`); whether it did."""
        if not self.reclaim_due():
            return False
        self.reclaim()
        return True
