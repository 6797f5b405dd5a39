"""Topology in the store: discovery runs, discovered links, accepted links, declared links.

Two pictures of the same network meet here. The *declared* one is what people wrote down:
the inventory's active links (table `links`, rewritten by every inventory import) plus the
links an operator *accepted* from discovery (table `accepted_links`, which imports never
touch, so an accepted link does not flap away when the files are imported again). The
*discovered* one is what the devices themselves say over LLDP: each discovery run records
the port pairs it saw (`discovered_links`, one row per pair whichever end reported it, the
lower port id first) and the run itself (`discovery_runs`: when, which devices answered,
which failed, what could not be placed, which devices answer with another name).

A discovered link is *current* until a later run walks one of its end devices and does not
see it again: a run over a few devices says nothing about links between the others, so a
partial `keyline topology discover pe-sh1` does not make the rest of the network vanish.
Links are given as `StoredLink`s, whose ends name both the port id and "device:port".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from store.events import publish

# Published when discovery or an operator changed the links the topology is built from.
TOPOLOGY_CHANGED = "topology.changed"

__all__ = [
    "DeviceEntry", "DiscoveryRun", "LinkEnd", "PortEntry", "StoredLink", "accept_link",
    "current_discovered_links", "declared_links", "find_port", "latest_run",
    "load_device_directory", "record_discovery_run", "walked_device_keys",
]


@dataclass(frozen=True)
class PortEntry:
    """An active inventory port as discovery matches it: by name (ifName) or ifIndex."""

    id: int
    name: str
    if_index: int | None


@dataclass(frozen=True)
class DeviceEntry:
    """An active inventory device: its key (hostname), management address and ports."""

    id: int
    key: str
    management_address: str
    ports: tuple[PortEntry, ...] = ()


@dataclass(frozen=True, order=True)
class LinkEnd:
    port_id: int
    device: str
    port: str

    def __str__(self) -> str:
        return f"{self.device}:{self.port}"


@dataclass(frozen=True)
class StoredLink:
    """A link between two ports, `a` the end with the lower port id.

    `origin` is "inventory" (declared in the files; `key` is its inventory key), "accepted"
    (accepted from discovery by `accepted_by` at `accepted_at`) or "discovered"
    (`first_seen`, `last_seen`, and the device keys that reported it last, `seen_by`)."""

    a: LinkEnd
    z: LinkEnd
    origin: str
    key: str | None = None
    id: int | None = None
    accepted_by: str | None = None
    accepted_at: datetime | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    seen_by: tuple[str, ...] = ()

    @property
    def port_ids(self) -> tuple[int, int]:
        return (self.a.port_id, self.z.port_id)

    @property
    def devices(self) -> frozenset[str]:
        return frozenset((self.a.device, self.z.device))

    def __str__(self) -> str:
        return f"{self.a} -- {self.z}"


@dataclass(frozen=True)
class DiscoveryRun:
    id: int
    started_at: datetime
    finished_at: datetime
    devices_asked: int
    walked_device_ids: tuple[int, ...]
    failures: list[dict[str, Any]] = field(default_factory=list)
    unresolved: list[dict[str, Any]] = field(default_factory=list)
    renamed: list[dict[str, Any]] = field(default_factory=list)


def _ordered(a_port_id: int, z_port_id: int) -> tuple[int, int]:
    if a_port_id == z_port_id:
        raise ValueError(f"a link needs two different ports (port {a_port_id} twice)")
    return (a_port_id, z_port_id) if a_port_id < z_port_id else (z_port_id, a_port_id)


def load_device_directory(conn: psycopg.Connection) -> list[DeviceEntry]:
    """Every active device with its active ports, by key."""
    rows = conn.execute(
        """SELECT d.id, d.key, host(d.management_address),
                  coalesce(jsonb_agg(jsonb_build_array(p.id, p.name, p.if_index)
                                     ORDER BY p.id) FILTER (WHERE p.id IS NOT NULL), '[]')
             FROM devices d
             LEFT JOIN ports p ON p.device_id = d.id AND p.retired_at IS NULL
            WHERE d.retired_at IS NULL
            GROUP BY d.id
            ORDER BY d.key""").fetchall()
    return [DeviceEntry(device_id, key, address,
                        tuple(PortEntry(int(p[0]), p[1], p[2]) for p in ports))
            for device_id, key, address, ports in rows]


def find_port(conn: psycopg.Connection, device: str, port: str) -> LinkEnd | None:
    """The active port `port` of the active device `device`, or None."""
    row = conn.execute(
        """SELECT p.id, d.key, p.name FROM ports p JOIN devices d ON d.id = p.device_id
            WHERE d.key = %s AND p.name = %s
              AND p.retired_at IS NULL AND d.retired_at IS NULL""", [device, port]).fetchone()
    return LinkEnd(*row) if row else None


def record_discovery_run(
    conn: psycopg.Connection,
    *,
    started_at: datetime,
    finished_at: datetime,
    devices_asked: int,
    walked_device_ids: Iterable[int],
    links: Iterable[tuple[int, int, Iterable[str]]],
    failures: Sequence[dict[str, Any]] = (),
    unresolved: Sequence[dict[str, Any]] = (),
    renamed: Sequence[dict[str, Any]] = (),
) -> int:
    """Record one discovery run and the links it saw ((port id, port id, device keys that
    reported it)), in one transaction; returns the run's id."""
    with conn.transaction():
        run_id = conn.execute(
            """INSERT INTO discovery_runs (started_at, finished_at, devices_asked,
                                           walked_device_ids, failures, unresolved, renamed)
               VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id""",
            [started_at, finished_at, devices_asked, sorted(set(walked_device_ids)),
             Jsonb(list(failures)), Jsonb(list(unresolved)), Jsonb(list(renamed))],
        ).fetchone()[0]
        rows = []
        for a_port_id, z_port_id, seen_by in links:
            a, z = _ordered(a_port_id, z_port_id)
            rows.append((a, z, finished_at, finished_at, run_id, run_id, sorted(set(seen_by))))
        if rows:
            with conn.cursor() as cur:
                cur.executemany(
                    """INSERT INTO discovered_links (a_port_id, z_port_id, first_seen, last_seen,
                                                     first_run_id, last_run_id, seen_by)
                       VALUES (%s, %s, %s, %s, %s, %s, %s)
                       ON CONFLICT (a_port_id, z_port_id) DO UPDATE
                          SET last_seen = EXCLUDED.last_seen,
                              last_run_id = EXCLUDED.last_run_id,
                              seen_by = EXCLUDED.seen_by""", rows)
        # What the live topology and the alarm pipeline draw from may have changed.
        publish(conn, TOPOLOGY_CHANGED, {"discovery_run": run_id})
    return run_id


def _run(row: Sequence[Any]) -> DiscoveryRun:
    return DiscoveryRun(row[0], row[1], row[2], row[3], tuple(row[4]), row[5], row[6], row[7])


def latest_run(conn: psycopg.Connection) -> DiscoveryRun | None:
    """The most recent discovery run, or None if there was none."""
    row = conn.execute(
        """SELECT id, started_at, finished_at, devices_asked, walked_device_ids,
                  failures, unresolved, renamed
             FROM discovery_runs ORDER BY id DESC LIMIT 1""").fetchone()
    return _run(row) if row else None


def walked_device_keys(conn: psycopg.Connection) -> set[str]:
    """Keys of the active devices that any discovery run walked (whose LLDP tables were
    read): only links touching one of them were checked."""
    rows = conn.execute(
        """SELECT DISTINCT d.key FROM discovery_runs r, unnest(r.walked_device_ids) AS w(id)
             JOIN devices d ON d.id = w.id WHERE d.retired_at IS NULL""").fetchall()
    return {key for (key,) in rows}


_ENDS = """JOIN ports pa ON pa.id = l.a_port_id JOIN devices da ON da.id = pa.device_id
           JOIN ports pz ON pz.id = l.z_port_id JOIN devices dz ON dz.id = pz.device_id"""
_ACTIVE_ENDS = """pa.retired_at IS NULL AND pz.retired_at IS NULL
                  AND da.retired_at IS NULL AND dz.retired_at IS NULL"""


def _link(a: tuple[int, str, str], z: tuple[int, str, str], **extra: Any) -> StoredLink:
    first, second = sorted((LinkEnd(*a), LinkEnd(*z)))
    return StoredLink(first, second, **extra)


def current_discovered_links(conn: psycopg.Connection) -> list[StoredLink]:
    """The discovered links no later run contradicts (see the module docstring), between
    active ports, in port id order."""
    rows = conn.execute(
        f"""SELECT l.a_port_id, da.key, pa.name, l.z_port_id, dz.key, pz.name,
                   l.first_seen, l.last_seen, l.seen_by
              FROM discovered_links l {_ENDS}
             WHERE {_ACTIVE_ENDS}
               AND NOT EXISTS (
                   SELECT 1 FROM discovery_runs r
                    WHERE r.id > l.last_run_id
                      AND (pa.device_id = ANY(r.walked_device_ids)
                           OR pz.device_id = ANY(r.walked_device_ids)))
             ORDER BY l.a_port_id, l.z_port_id""").fetchall()
    return [_link(row[0:3], row[3:6], origin="discovered", first_seen=row[6],
                  last_seen=row[7], seen_by=tuple(row[8])) for row in rows]


def declared_links(conn: psycopg.Connection) -> list[StoredLink]:
    """The declared topology: active inventory links, then accepted links that the
    inventory does not also declare, all between active ports."""
    inventory = [
        _link(row[1:4], row[4:7], origin="inventory", key=row[7], id=row[0])
        for row in conn.execute(
            f"""SELECT l.id, l.a_port_id, da.key, pa.name, l.z_port_id, dz.key, pz.name, l.key
                  FROM links l {_ENDS}
                 WHERE l.retired_at IS NULL AND {_ACTIVE_ENDS}
                 ORDER BY l.key""").fetchall()]
    declared = {link.port_ids for link in inventory}
    accepted = [
        _link(row[1:4], row[4:7], origin="accepted", id=row[0], accepted_by=row[7],
              accepted_at=row[8])
        for row in conn.execute(
            f"""SELECT l.id, l.a_port_id, da.key, pa.name, l.z_port_id, dz.key, pz.name,
                       l.accepted_by, l.accepted_at
                  FROM accepted_links l {_ENDS}
                 WHERE {_ACTIVE_ENDS}
                 ORDER BY l.id""").fetchall()]
    return inventory + [link for link in accepted if link.port_ids not in declared]


def accept_link(conn: psycopg.Connection, a_port_id: int, z_port_id: int,
                accepted_by: str) -> tuple[StoredLink, bool]:
    """Record that `accepted_by` accepts the link between two ports as declared; returns
    the accepted link and whether it is new (False: it had been accepted before, and the
    first acceptance stands)."""
    if not accepted_by.strip():
        raise ValueError("who accepts the link must be named")
    a, z = _ordered(a_port_id, z_port_id)
    with conn.transaction():
        inserted = conn.execute(
            """INSERT INTO accepted_links (a_port_id, z_port_id, accepted_by)
               VALUES (%s, %s, %s) ON CONFLICT (a_port_id, z_port_id) DO NOTHING
               RETURNING id""", [a, z, accepted_by.strip()]).fetchone()
        if inserted is not None:
            publish(conn, TOPOLOGY_CHANGED, {"accepted_link": [a, z]})
        row = conn.execute(
            f"""SELECT l.id, l.a_port_id, da.key, pa.name, l.z_port_id, dz.key, pz.name,
                       l.accepted_by, l.accepted_at
                  FROM accepted_links l {_ENDS}
                 WHERE l.a_port_id = %s AND l.z_port_id = %s""", [a, z]).fetchone()
    link = _link(row[1:4], row[4:7], origin="accepted", id=row[0], accepted_by=row[7],
                 accepted_at=row[8])
    return link, inserted is not None
