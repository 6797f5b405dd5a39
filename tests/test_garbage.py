"""keyline/garbage.py: survivors of a full collection frozen out of later scans, and rings
that became garbage while frozen reclaimed once the frozen set has grown.

Each case runs in a fresh interpreter: freezing objects changes the collector of the whole
process, and pytest's own objects must stay out of it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PRELUDE = """
import gc, json, weakref
from keyline.garbage import LongLivedFreezer

class Ring:
    def __init__(self):
        self.me = self  # a ring: reference counting never frees it

def old_rings(count):
    rings = [Ring() for _ in range(count)]
    gc.collect()  # a full collection: they survive it, and are frozen after it
    return rings
"""


def run(body: str) -> dict:
    script = PRELUDE + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_what_survives_a_full_collection_is_frozen_and_no_longer_scanned() -> None:
    result = run("""
        freezer = LongLivedFreezer()
        freezer.install()
        at_start = gc.get_freeze_count()
        rings = old_rings(20_000)
        print(json.dumps({"at_start": at_start, "after": gc.get_freeze_count(),
                          "old_scanned": len(gc.get_objects(2)),
                          "full_collections": freezer.full_collections}))
    """)
    assert result["at_start"] > 0  # what existed at install
    assert result["after"] >= result["at_start"] + 20_000
    assert result["old_scanned"] < 1_000  # generation 2 is (nearly) empty: nothing to rescan
    assert result["full_collections"] >= 2  # install's own, and the rings'


def test_a_frozen_ring_that_became_garbage_waits_for_the_reclaim_when_due() -> None:
    result = run("""
        freezer = LongLivedFreezer(reclaim_growth=0.5)
        freezer.install()
        rings = old_rings(5_000)
        watch = weakref.ref(rings[0])
        del rings
        gc.collect()
        alive_after_full_collection = watch() is not None
        due_before_growth = freezer.reclaim_due()
        keep = old_rings(gc.get_freeze_count())  # the frozen set doubles
        due = freezer.reclaim_due()
        reclaimed = freezer.reclaim_if_due()
        print(json.dumps({"alive_after_full_collection": alive_after_full_collection,
                          "due_before_growth": due_before_growth, "due": due,
                          "reclaimed": reclaimed, "alive_after_reclaim": watch() is not None,
                          "due_after": freezer.reclaim_due(), "reclaims": freezer.reclaims}))
    """)
    assert result["alive_after_full_collection"], "a frozen ring is not collected"
    assert not result["due_before_growth"]
    assert result["due"] and result["reclaimed"]
    assert not result["alive_after_reclaim"]
    assert not result["due_after"]
    assert result["reclaims"] == 2  # install's and this one


def test_a_ring_garbage_before_it_was_frozen_is_collected_as_usual() -> None:
    result = run("""
        freezer = LongLivedFreezer()
        freezer.install()
        ring = Ring()
        watch = weakref.ref(ring)
        del ring
        gc.collect()
        print(json.dumps({"alive": watch() is not None}))
    """)
    assert result == {"alive": False}


def test_uninstall_hands_the_frozen_objects_back() -> None:
    result = run("""
        freezer = LongLivedFreezer()
        freezer.install()
        rings = old_rings(1_000)
        freezer.uninstall()
        print(json.dumps({"frozen": gc.get_freeze_count(),
                          "callbacks": len(gc.callbacks)}))
    """)
    assert result == {"frozen": 0, "callbacks": 0}


def test_reclaim_growth_must_be_positive() -> None:
    from keyline.garbage import LongLivedFreezer

    with pytest.raises(ValueError, match="reclaim_growth"):
        LongLivedFreezer(reclaim_growth=0)
