"""Where the topology page draws each device: tiers by role, sites together, no hidden fault.

A drawing of a network hides a fault when a link's line runs through a device it does not
end at, when three devices stand on one line so two links overlap, or when a link's middle
(where the eye checks its colour) lies under another link. `device_positions` is a
deterministic layout, from the inventory alone, that avoids all three:

1. **Tiers by role on concentric rings**: P (core) routers on the inner ring, PE routers on
   the next, every other device (CE, customer switches, firewalls, servers) on the outer
   ring. A straight line meets a circle in at most two points, so no three devices of one
   tier are ever on one line, and the core's full mesh is drawn as chords that pass through
   no core router.
2. **Sites together, next to what they hang from**: on each ring the devices of one site
   stand side by side, spread to keep a minimum gap. A device stands beside its site-mates
   on inner rings (a PE beside its site's P), turned part of the way towards the other
   devices it links to, so its links to them do not run back through its own site; a device
   with no site-mate inside stands at the mean angle of what it links to (a CE outside its
   PE). The inner ring is a little uneven: with opposite routers exactly opposite, the
   core's diagonals would cross at their middles.
3. **Repair**: what the rings cannot rule out (a line from an inner ring to an outer one
   through a device on a ring between; one link's middle on another link) is then found and
   mended by turning one device along its ring (the outermost first), a step at a time,
   until none is left. Several unevennesses of the inner ring are tried, the fewest
   conflicts first, until one repairs to none (else the best is kept).
   `layout_conflicts` is the check, used by the repair and by the tests.

Being computed, not stored, the positions are the same at every visit, in every view (a
customer's, a VPN's or a circuit's view uses the whole network's coordinates) and for every
user. Dragging a node in the page is allowed but not saved.

A check costs O(links x (devices + links)), pure Python: beyond `CHECK_BUDGET` only one
inner ring is tried, and the repair stops after `REPAIR_BUDGET` distances measured, so the
first drawing of a large, dense network takes a second or two and may keep a few conflicts
(the example network has none; tests/test_portal_layout.py). The result is
cached per topology (devices, roles, sites, links; keyed by device key, so the same
inventory is drawn the same in every database).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import networkx as nx

from topology.graph import TopologySnapshot

# Ring of each role (any other role: the outer ring).
TIER_OF_ROLE = {"P": 0, "PE": 1}
OUTER_TIER = 2

FIRST_RING_PX = 180.0  # radius of the innermost ring in use
RING_GAP_PX = 190.0  # between one ring and the next
DEVICE_GAP_PX = 80.0  # arc between neighbouring devices of one site on a ring
SITE_GAP_PX = 120.0  # arc between neighbouring devices of different sites on a ring
SHIFT_MAX_RAD = 0.45  # how far a device turns from its site-mates towards its other links

# What the repair keeps apart (model px; nodes are 26-34 px wide, links 2-12 px).
NODE_CLEARANCE_PX = 26.0  # a device's centre from a link (or a line of two others) through it
MIDPOINT_CLEARANCE_PX = 16.0  # a link's midpoint from another link's line (links: up to 12 px wide)
NODE_SPACING_PX = 48.0  # two devices' centres
STEP_PX = 14.0  # one repair move, along the device's ring
MAX_ROUNDS = 20
UNEVEN = 0.4  # the inner ring's spacings vary by up to this share of a spacing
GOLDEN = (math.sqrt(5) - 1) / 2  # steps through [0, 1) without repeating a pattern
UNEVEN_TRIES = 16  # inner rings tried, each repaired, until one leaves no conflict
CHECK_BUDGET = 20_000  # links x (devices + links) up to which all of them are tried
TURN_STEPS = 8  # the most steps one move may take, either way
# Distances (device to line) the repair may measure in all, a few seconds of pure Python at
# most: the layout's time is bounded whatever the network (a large one is repaired less).
REPAIR_BUDGET = 400_000

Point = tuple[float, float]
Node = int | str  # a device: its id, or (inside this module) its key
Signature = tuple[tuple[tuple[str, str, int], ...], tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class Conflict:
    """One way a drawing hides something: `kind` is "through" (link `edge` passes through
    device `device`, which it does not end at: three devices on one line, two of them linked
    across the third), "midpoint" (the middle of link `edge` lies on link `other`) or
    "overlap" (the two devices `edge` stand on each other)."""

    kind: str
    device: Node | None
    edge: tuple[Node, Node]
    other: tuple[Node, Node] | None = None


def device_positions(snapshot: TopologySnapshot, graph: nx.MultiGraph
                     ) -> dict[int, tuple[float, float]]:
    """Device id -> (x, y): the layout of the module docstring."""
    # By key, not id: the same inventory is drawn the same in every database.
    key = {d.id: d.key for d in snapshot.devices.values()}
    signature: Signature = (
        tuple(sorted((d.key, d.role, d.site_id or 0) for d in snapshot.devices.values())),
        tuple(sorted({(min(key[a], key[b]), max(key[a], key[b])) for a, b in graph.edges()
                      if a != b and a in key and b in key})),
    )
    found = dict(_layout(signature))
    return {device_id: found[device_key] for device_id, device_key in key.items()}


def segment_distance(p: Point, a: Point, b: Point) -> tuple[float, float]:
    """(distance from `p` to segment a-b, where along it: 0 at a, 1 at b)."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    length2 = dx * dx + dy * dy
    if length2 == 0:
        return math.dist(p, a), 0.0
    t = ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / length2
    t_clamped = min(1.0, max(0.0, t))
    return math.dist(p, (a[0] + t_clamped * dx, a[1] + t_clamped * dy)), t


def layout_conflicts(positions: dict[Node, Point], edges: Iterable[tuple[Node, Node]],
                     involving: Node | None = None) -> list[Conflict]:
    """Every conflict (see `Conflict`) in a drawing: devices at `positions`, straight links
    `edges` (pairs of device ids; parallel links count once, the page curves them apart).
    With `involving`, only the conflicts that device takes part in."""
    links = sorted({(min(a, b), max(a, b)) for a, b in edges
                    if a != b and a in positions and b in positions})
    devices = sorted(positions)
    mine = links if involving is None else [link for link in links if involving in link]
    found: list[Conflict] = []
    pairs = ([(a, b) for i, a in enumerate(devices) for b in devices[i + 1:]] if involving is None
             else [(min(d, involving), max(d, involving)) for d in devices if d != involving])  # type: ignore[type-var]
    for a, b in pairs:
        if math.dist(positions[a], positions[b]) < NODE_SPACING_PX:
            found.append(Conflict("overlap", b, (a, b)))
    for a, b in links:
        near = devices if involving is None or (a, b) in mine else [involving]
        for m in near:
            if m in (a, b):
                continue
            distance, t = segment_distance(positions[m], positions[a], positions[b])
            if distance < NODE_CLEARANCE_PX and 0.0 < t < 1.0:
                found.append(Conflict("through", m, (a, b)))
    for a, b in links:
        middle = ((positions[a][0] + positions[b][0]) / 2, (positions[a][1] + positions[b][1]) / 2)
        for c, d in (links if involving is None or (a, b) in mine else mine):
            if (c, d) == (a, b):
                continue
            distance, _ = segment_distance(middle, positions[c], positions[d])
            if distance < MIDPOINT_CLEARANCE_PX:
                found.append(Conflict("midpoint", None, (a, b), (c, d)))
    return found


@lru_cache(maxsize=8)
def _layout(signature: Signature) -> tuple[tuple[str, tuple[float, float]], ...]:
    devices, edges = signature
    names = [device_key for device_key, _, _ in devices]
    site = {device_key: (f"s{site_id}" if site_id else f"d{device_key}")
            for device_key, _, site_id in devices}
    used_tiers = sorted({TIER_OF_ROLE.get(role, OUTER_TIER) for _, role, _ in devices})
    tier = {device_key: used_tiers.index(TIER_OF_ROLE.get(role, OUTER_TIER))
            for device_key, role, _ in devices}
    neighbours: dict[str, set[str]] = {name: set() for name in names}
    for a, b in edges:
        if a in neighbours and b in neighbours:
            neighbours[a].add(b)
            neighbours[b].add(a)

    # Several inner rings, the ones with the fewest conflicts before repair first; a large
    # network (where one check costs much) gets one.
    work = len(edges) * (len(names) + len(edges))
    tries = UNEVEN_TRIES if work <= CHECK_BUDGET else 1
    starts = []
    for pattern in range(1, tries + 1):
        angle, radius = _rings(names, tier, site, neighbours, pattern)
        positions: dict[Node, Point] = {d: _point(radius[d], angle[d]) for d in names}
        starts.append((len(layout_conflicts(positions, edges)), pattern, angle, radius, positions))
    best: tuple[int, dict[Node, Point]] | None = None
    budget = [REPAIR_BUDGET]
    for _, _, angle, radius, positions in sorted(starts, key=lambda start: start[:2]):
        _repair(positions, edges, tier, radius, angle, budget)
        left = len(layout_conflicts(positions, edges))
        if best is None or left < best[0]:
            best = (left, positions)
        if not left:
            break
    assert best is not None
    return tuple(sorted((str(d), (round(x, 1), round(y, 1))) for d, (x, y) in best[1].items()))


def _rings(names: list[str], tier: dict[str, int], site: dict[str, str],
           neighbours: dict[str, set[str]], pattern: int
           ) -> tuple[dict[str, float], dict[str, float]]:
    """Each device's angle and ring radius before repair: rings from the inside out, the
    inner one uneven after `pattern` (`_uneven_ring`), each outer one by `_wanted_angle`."""
    angle: dict[str, float] = {}
    radius: dict[str, float] = {}
    previous_radius = FIRST_RING_PX - RING_GAP_PX
    for level in range(max(tier.values(), default=-1) + 1):
        ring = [d for d in names if tier[d] == level]
        wanted = {d: _wanted_angle(d, neighbours, site, angle) for d in ring}
        order = _ring_order(ring, wanted, site)
        arcs = [DEVICE_GAP_PX if site[order[i]] == site[order[i - 1]] else SITE_GAP_PX
                for i in range(len(order))] if len(order) > 1 else [0.0]
        r = max(previous_radius + RING_GAP_PX, sum(arcs) / (2 * math.pi))
        gaps = [arc / r for arc in arcs]
        for device_id, value in zip(order, _spread(order, wanted, gaps, pattern), strict=True):
            angle[device_id], radius[device_id] = value, r
        previous_radius = r
    return angle, radius


def _repair(positions: dict[Node, Point], edges: tuple[tuple[str, str], ...],
            tier: dict[str, int], radius: dict[str, float], angle: dict[str, float],
            budget: list[int]) -> None:
    """Mend the conflicts, in place: for each, turn one of the devices in it along its ring,
    by the smallest number of steps that leaves that device in less conflict (the outermost
    device first: the core stays where it is if it can).
    Stops when no conflict is left, when a round mends nothing, after `MAX_ROUNDS`, or when
    `budget` (distances left to measure, shared by every try) is spent."""

    for _ in range(MAX_ROUNDS):
        budget[0] -= len(edges) * (len(positions) + len(edges))
        conflicts = layout_conflicts(positions, edges)
        if not conflicts:
            return
        mended = False
        for conflict in conflicts:
            involved = {*conflict.edge, *(conflict.other or ())}
            if conflict.device is not None:
                involved.add(str(conflict.device))
            for device in sorted(involved, key=lambda d: (tier[d], d), reverse=True):
                if budget[0] <= 0:
                    return
                if _turn(device, positions, edges, radius[device], angle, budget):
                    mended = True
                    break
        if not mended:
            return


def _uneven_ring(gaps: list[float], pattern: int) -> list[float]:
    """The inner ring: round the ring at spacings a little uneven, so that no two devices
    face each other across the centre (the lines between opposite pairs would all cross at
    one point, their middles). `pattern` (1, 2...) picks one of many such unevennesses: the
    layout tries them in turn until one repairs to no conflict."""
    total = sum(gaps) or 1.0
    found, at = [], 0.0
    for i, gap in enumerate(gaps):
        share = gaps[(i + 1) % len(gaps)] / total * 2 * math.pi
        jitter = ((i + 1) * pattern * GOLDEN) % 1 - 0.5
        found.append(at * 2 * math.pi / total + UNEVEN * share * jitter)
        at += gap
    return found


def _turn(device: str, positions: dict[Node, Point], edges: tuple[tuple[str, str], ...],
          r: float, angle: dict[str, float], budget: list[int]) -> bool:
    """Turn `device` along its ring by the fewest steps (either way) that leave it in less
    conflict (`_shortfall`); False when it is in none or no turn helps."""
    cost = (1 + sum(device in edge for edge in edges)) * (len(positions) + len(edges))
    before = _shortfall(layout_conflicts(positions, edges, involving=device), positions)
    if not before:
        return False
    at = positions[device]
    for steps in range(1, TURN_STEPS + 1):
        for sign in (1, -1):
            candidate = angle[device] + sign * steps * STEP_PX / r
            positions[device] = _point(r, candidate)
            budget[0] -= cost
            after = layout_conflicts(positions, edges, involving=device)
            if _shortfall(after, positions) < before - 1e-6:
                angle[device] = candidate
                return True
    positions[device] = at
    return False


def _shortfall(conflicts: list[Conflict], positions: dict[Node, Point]) -> float:
    """How far the conflicts fall short of their clearances, in px, summed: a measure that
    moves a little with every step, where a count of conflicts would not."""
    total = 0.0
    for conflict in conflicts:
        a, b = (positions[end] for end in conflict.edge)
        if conflict.kind == "overlap":
            total += NODE_SPACING_PX - math.dist(a, b)
        elif conflict.kind == "through":
            total += NODE_CLEARANCE_PX - segment_distance(positions[conflict.device], a, b)[0]  # type: ignore[index]
        else:
            c, d = (positions[end] for end in conflict.other)  # type: ignore[union-attr]
            middle = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
            total += MIDPOINT_CLEARANCE_PX - segment_distance(middle, c, d)[0]
    return total


def _point(r: float, a: float) -> Point:
    return (r * math.cos(a), r * math.sin(a))


def _wanted_angle(device: str, neighbours: dict[str, set[str]], site: dict[str, str],
                  placed: dict[str, float]) -> float | None:
    """Beside its placed site-mates (a PE beside its site's P), turned part of the way
    towards the other devices it links to (at most `SHIFT_MAX_RAD`), so that its links to
    them do not run back through its own site's device; without placed site-mates, the mean
    angle of the devices it links to (a CE outside its PE); else None (no preference)."""
    mates = [a for d, a in placed.items() if site[d] == site[device]]
    others = [placed[n] for n in neighbours[device] if n in placed and site[n] != site[device]]
    if not mates:
        return _mean_angle(others)
    here = _mean_angle(mates)
    there = _mean_angle(others)
    if here is None or there is None:
        return here
    towards = (there - here + math.pi) % (2 * math.pi) - math.pi  # in (-pi, pi]
    return (here + max(-SHIFT_MAX_RAD, min(SHIFT_MAX_RAD, towards / 2))) % (2 * math.pi)


def _mean_angle(angles: list[float]) -> float | None:
    if not angles:
        return None
    x, y = sum(map(math.cos, angles)), sum(map(math.sin, angles))
    if abs(x) < 1e-9 and abs(y) < 1e-9:
        return angles[0] % (2 * math.pi)
    return math.atan2(y, x) % (2 * math.pi)


def _ring_order(ring: list[str], wanted: dict[str, float | None], site: dict[str, str]
                ) -> list[str]:
    """The ring's devices in angle order, each site's devices together: sites by the mean of
    their devices' wanted angles (those without one after, by key), devices of a site by
    their own wanted angle, then key."""
    members: dict[str, list[str]] = {}
    for device in ring:
        members.setdefault(site[device], []).append(device)
    unplaced = 2 * math.pi + 1  # sorts after every angle

    def site_angle(unit: str) -> float:
        found = _mean_angle([a for a in (wanted[d] for d in members[unit]) if a is not None])
        return unplaced if found is None else found

    units = sorted(members, key=lambda u: (site_angle(u), min(members[u])))
    order: list[str] = []
    for unit in units:
        order += sorted(members[unit], key=lambda d: (wanted[d] if wanted[d] is not None
                                                      else unplaced, d))
    return order


def _spread(order: list[str], wanted: dict[str, float | None], gaps: list[float],
            pattern: int) -> list[float]:
    """Angles for `order` (its sequence kept), each at least its gap after the one before
    (`gaps[i]`: before device i; `gaps[0]` also closes the ring), as near their wanted
    angles as that allows. With no wanted angle at all (the inner ring), `_uneven_ring`."""
    if not any(wanted[d] is not None for d in order):
        return _uneven_ring(gaps, pattern)
    found = []
    for i, device in enumerate(order):
        value = wanted[device]
        if found:
            floor = found[-1] + gaps[i]
            value = floor if value is None or value < floor else value
        elif value is None:
            value = 0.0
        found.append(value)
    # the last must stay a gap short of the first, once round the ring: shift all back
    overflow = found[-1] + gaps[0] - (found[0] + 2 * math.pi)
    if overflow > 0 and len(found) > 1:
        found = [found[0] - overflow, *found[1:]]
        for i in range(1, len(found)):
            found[i] = max(found[i] - overflow, found[i - 1] + gaps[i])
    return [value % (2 * math.pi) for value in found]
