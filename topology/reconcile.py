"""Reconciliation: the declared topology against the discovered one, difference by difference.

The inventory says which ports are cabled together; LLDP says which ports hear each other.
Where they disagree, one of them is wrong, and an operator must know which links to check:

- *declared but not seen*: a declared link (inventory or accepted) that no current discovery
  shows, although at least one of its end devices was walked: a cable moved or down, or a
  typo in the files;
- *seen but not declared*: a discovered link nobody declared: a new cable, or a link missing
  from the files (accept it with `keyline topology accept`, or add it to the files);
- *different ports*: the same two devices are linked, but on other ports than declared
  (paired from the two lists above: a declared and a discovered link between the same device
  pair, preferring pairs that share a port);
- *devices answering with another name*: sysName / lldpLocSysName not the inventory key;
- *not checked*: declared links neither of whose devices any discovery walked, so silence
  says nothing about them.

`reconcile()` is pure; `load_diff()` reads both pictures from the store. A `TopologyDiff`
prints as readable lines (`report()`) and serialises for the portal (`as_dict()`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg

from store.topology import StoredLink

__all__ = ["PortsDiffer", "TopologyDiff", "load_diff", "reconcile"]


@dataclass(frozen=True)
class PortsDiffer:
    """A declared link whose devices LLDP shows linked on other ports."""

    declared: StoredLink
    seen: StoredLink

    def __str__(self) -> str:
        return f"declared {self.declared}, seen {self.seen}"


@dataclass(frozen=True)
class TopologyDiff:
    declared_not_seen: tuple[StoredLink, ...] = ()
    seen_not_declared: tuple[StoredLink, ...] = ()
    different_ports: tuple[PortsDiffer, ...] = ()
    renamed: tuple[dict[str, Any], ...] = ()  # {"device", "name", "source"}
    not_checked: tuple[StoredLink, ...] = ()
    unresolved: tuple[dict[str, Any], ...] = ()  # of the latest run, for context
    failures: tuple[dict[str, Any], ...] = ()  # of the latest run, for context
    declared_count: int = 0
    discovered_count: int = 0
    run: dict[str, Any] | None = None  # the latest run: id, started_at, finished_at
    agreeing: tuple[StoredLink, ...] = field(default=(), repr=False)
    # inventory ports the collector's last poll could not match on their device
    # (store.observations.port_match_problems): {"device", "port", "problem", "message"}
    port_problems: tuple[dict[str, Any], ...] = ()

    @property
    def in_agreement(self) -> bool:
        """True when nothing differs (unchecked links and unresolved neighbours aside)."""
        return not (self.declared_not_seen or self.seen_not_declared or self.different_ports
                    or self.renamed)

    def report(self) -> str:
        """The diff as lines a person reads, one difference a line."""
        lines: list[str] = []
        if self.run is None:
            lines.append("No discovery has run yet: `keyline topology discover` first.")
        else:
            lines.append(f"Declared {self.declared_count} link(s), discovered"
                         f" {self.discovered_count} (latest discovery run {self.run['id']},"
                         f" finished {self.run['finished_at']:%Y-%m-%d %H:%M:%S %Z}).")
        sections: list[tuple[str, Sequence[Any], Any]] = [
            ("Declared but not seen", self.declared_not_seen, _declared_line),
            ("Seen but not declared", self.seen_not_declared, _seen_line),
            ("Linked on other ports than declared", self.different_ports, str),
            ("Devices answering with another name", self.renamed,
             lambda r: f"{r['device']} answers as {r['name']!r} ({r['source']})"),
            ("Not checked (no end device walked)", self.not_checked, _declared_line),
            ("Neighbours not placed in the inventory", self.unresolved,
             lambda u: f"{u['device']} {u['local_port']}: {u['neighbour']}: {u['reason']}"),
            ("Devices not walked in the latest run", self.failures,
             lambda f: f"{f['device']}: {f['status']}: {f['reason']}"),
            ("Inventory ports not matched on their device (last poll)", self.port_problems,
             lambda p: f"{p['device']}:{p['port']}: {p['problem']}: {p['message']}"),
        ]
        for title, items, show in sections:
            if items:
                lines.append(f"{title} ({len(items)}):")
                lines.extend(f"  {show(item)}" for item in items)
        if self.run is not None and self.in_agreement:
            lines.append(f"Declared and discovered topology agree ({len(self.agreeing)}"
                         " link(s) confirmed).")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (strings, numbers, lists, dicts only) for the portal."""
        return {
            "in_agreement": self.in_agreement,
            "declared_count": self.declared_count,
            "discovered_count": self.discovered_count,
            "confirmed_count": len(self.agreeing),
            "run": None if self.run is None else {
                key: value.isoformat() if hasattr(value, "isoformat") else value
                for key, value in self.run.items()},
            "declared_not_seen": [_link_dict(link) for link in self.declared_not_seen],
            "seen_not_declared": [_link_dict(link) for link in self.seen_not_declared],
            "different_ports": [{"declared": _link_dict(d.declared), "seen": _link_dict(d.seen)}
                                for d in self.different_ports],
            "renamed": [dict(item) for item in self.renamed],
            "not_checked": [_link_dict(link) for link in self.not_checked],
            "unresolved": [dict(item) for item in self.unresolved],
            "failures": [dict(item) for item in self.failures],
            "port_problems": [dict(item) for item in self.port_problems],
        }


def _declared_line(link: StoredLink) -> str:
    if link.origin == "accepted":
        return f"{link} (accepted by {link.accepted_by})"
    return f"{link} (inventory {link.key})" if link.key else str(link)


def _seen_line(link: StoredLink) -> str:
    return f"{link} (reported by {', '.join(link.seen_by)})" if link.seen_by else str(link)


def _link_dict(link: StoredLink) -> dict[str, Any]:
    out: dict[str, Any] = {
        "a": {"port_id": link.a.port_id, "device": link.a.device, "port": link.a.port},
        "z": {"port_id": link.z.port_id, "device": link.z.device, "port": link.z.port},
        "origin": link.origin,
    }
    for name in ("key", "id", "accepted_by", "accepted_at", "first_seen", "last_seen"):
        value = getattr(link, name)
        if value is not None:
            out[name] = value.isoformat() if hasattr(value, "isoformat") else value
    if link.seen_by:
        out["seen_by"] = list(link.seen_by)
    return out


def _pair_ports(declared: list[StoredLink], seen: list[StoredLink]
                ) -> tuple[list[PortsDiffer], list[StoredLink], list[StoredLink]]:
    """Pair declared and seen links between the same two devices (those sharing a port
    first); returns the pairs and what is left of each list."""
    candidates = []
    for i, d in enumerate(declared):
        for j, s in enumerate(seen):
            if d.devices == s.devices:
                shared = len(set(d.port_ids) & set(s.port_ids))
                candidates.append((-shared, i, j))
    pairs: list[PortsDiffer] = []
    used_d: set[int] = set()
    used_s: set[int] = set()
    for _, i, j in sorted(candidates):
        if i not in used_d and j not in used_s:
            used_d.add(i)
            used_s.add(j)
            pairs.append(PortsDiffer(declared[i], seen[j]))
    return (pairs, [d for i, d in enumerate(declared) if i not in used_d],
            [s for j, s in enumerate(seen) if j not in used_s])


def reconcile(declared: Iterable[StoredLink], discovered: Iterable[StoredLink], *,
              walked_devices: Iterable[str] | None = None,
              renamed: Iterable[dict[str, Any]] = (),
              unresolved: Iterable[dict[str, Any]] = (),
              failures: Iterable[dict[str, Any]] = (),
              run: dict[str, Any] | None = None) -> TopologyDiff:
    """Compare the declared links with the discovered ones (see the module docstring).

    `walked_devices`: device keys discovery has walked (None: all of them); a declared link
    with neither end among them is "not checked" rather than "not seen"."""
    declared = list(declared)
    discovered = list(discovered)
    walked = None if walked_devices is None else set(walked_devices)
    seen_pairs = {link.port_ids for link in discovered}
    declared_pairs = {link.port_ids for link in declared}
    agreeing = [link for link in declared if link.port_ids in seen_pairs]
    missing, not_checked = [], []
    for link in declared:
        if link.port_ids in seen_pairs:
            continue
        if walked is not None and not (link.devices & walked):
            not_checked.append(link)
        else:
            missing.append(link)
    extra = [link for link in discovered if link.port_ids not in declared_pairs]
    pairs, missing, extra = _pair_ports(missing, extra)
    return TopologyDiff(
        declared_not_seen=tuple(missing), seen_not_declared=tuple(extra),
        different_ports=tuple(pairs), renamed=tuple(renamed), not_checked=tuple(not_checked),
        unresolved=tuple(unresolved), failures=tuple(failures),
        declared_count=len(declared), discovered_count=len(discovered), run=run,
        agreeing=tuple(agreeing))


def load_diff(conn: psycopg.Connection) -> TopologyDiff:
    """The diff between the store's declared links (inventory + accepted) and its current
    discovered links, with the latest run's renamed devices, unresolved neighbours and
    failures."""
    from store.observations import port_match_problems
    from store.topology import (
        current_discovered_links,
        declared_links,
        latest_run,
        walked_device_keys,
    )

    ports = tuple({"device": device, "port": port, "problem": problem, "message": message}
                  for device, port, problem, message in port_match_problems(conn))
    run = latest_run(conn)
    declared = declared_links(conn)
    if run is None:
        return TopologyDiff(declared_count=len(declared), not_checked=tuple(declared),
                            port_problems=ports)
    return replace(reconcile(
        declared, current_discovered_links(conn), walked_devices=walked_device_keys(conn),
        renamed=run.renamed, unresolved=run.unresolved, failures=run.failures,
        run={"id": run.id, "started_at": run.started_at, "finished_at": run.finished_at,
             "devices_asked": run.devices_asked,
             "devices_walked": len(run.walked_device_ids)}), port_problems=ports)
