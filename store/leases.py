"""Leases: how several collector processes share one store without doing anything twice.

Two kinds, both kept by PostgreSQL alone (no broker):

*Device leases* split the devices. Every running collector registers an *instance* row
(`collector_instances`: name, the poller groups it serves, alive until `expires_at`) and
renews it every `lease_s / 3`; each device has one `device_leases` row naming the instance
that polls it, live while that instance is alive, so one UPDATE renews all of a
collector's leases. At each renewal a collector takes its fair share of every group it
serves (the group's active devices divided by the live instances serving it, rounded up)
from the free leases (released, or held by a dead instance) and reports how many it holds
beyond that share; it hands those back with `release_leases` once it has stopped polling
them. A taken device carries the time from which the new holder may poll it
(`poll_after`): the old holder's last poll plus the interval when it handed the device
over, or its expiry plus the interval minus the poll budget when it died. A collector that
cannot renew stops polling before its lease can expire (collectors/service.py fences by the
poll budget), so one device is never polled by two collectors in the same interval.

*The fleet singleton* is a PostgreSQL session advisory lock (`FleetSingleton`): the jobs
that must run once across the fleet (rollups, retention, discovery, the alarm pipeline,
the ticket service, the notifier) run in the one process whose dedicated connection holds
it; the others try again every few seconds, and take over when the holder's session ends
(its process died, its connection broke).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import psycopg

log = logging.getLogger(__name__)

# Session advisory lock of the fleet's singleton jobs ("kflt" in ASCII; migrations use
# "kmig", store/migrate.py).
FLEET_LOCK_ID = 0x6B666C74
# Dead instances' rows are kept this long, so a collector taking over their devices knows
# when they stopped; then pruned.
DEAD_INSTANCE_KEPT_S = 3600.0


class LeaseError(RuntimeError):
    """A collector cannot join the fleet, or join it again after a long absence: its name is
    taken by a live one."""


@dataclass(frozen=True)
class CollectorInstance:
    """One running collector process: `name` from its settings (unique among the live
    ones), `groups` the poller groups it serves (None: every group)."""

    name: str
    groups: tuple[str, ...] | None = None
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)


@dataclass(frozen=True)
class NameInUse:
    """A live instance that already has the name another one asked for."""

    name: str
    host: str
    pid: int
    age_s: float  # since its last renewal

    def __str__(self) -> str:
        return (f"collector name {self.name!r} is in use by pid {self.pid} on {self.host}"
                f" (renewed {self.age_s:.0f} s ago)")


@dataclass(frozen=True)
class LeaseRound:
    """What one renewal found: the devices this instance holds now (by poller group), the
    ones it just took with the seconds to wait before their first poll, how many it holds
    beyond its fair share per group, and whether its instance had lapsed (expired before
    this renewal: every lease it held may have been taken meanwhile)."""

    held: dict[int, str]  # device id -> poller group
    taken: dict[int, float]  # device id -> seconds before it may be polled
    surplus: dict[str, int]  # poller group -> devices to hand back
    lapsed: bool


def register_instance(conn: psycopg.Connection, instance: CollectorInstance,
                      lease_s: float) -> NameInUse | None:
    """Record `instance` as alive for `lease_s`, unless a live instance has its name (that
    one is returned, nothing is recorded)."""
    with conn.transaction():
        # one registration at a time: two processes started with one name both see the other
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [FLEET_LOCK_ID + 1])
        row = conn.execute(
            """SELECT host, pid, extract(epoch FROM now() - renewed_at)
                 FROM collector_instances
                WHERE name = %s AND expires_at > now() AND id <> %s
                ORDER BY renewed_at DESC LIMIT 1""", [instance.name, instance.id]).fetchone()
        if row is not None:
            return NameInUse(instance.name, row[0], row[1], float(row[2]))
        conn.execute(
            """INSERT INTO collector_instances (id, name, poller_groups, host, pid, expires_at)
               VALUES (%s, %s, %s, %s, %s, now() + make_interval(secs => %s))
               ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at,
                   renewed_at = now()""",
            [instance.id, instance.name,
             list(instance.groups) if instance.groups is not None else None,
             instance.host, instance.pid, lease_s])
        conn.execute("DELETE FROM collector_instances WHERE expires_at < now() -"
                     " make_interval(secs => %s)", [DEAD_INSTANCE_KEPT_S])
    return None


def renew_leases(conn: psycopg.Connection, instance: CollectorInstance, *, lease_s: float,
                 interval_s_for: Callable[[str], float], poll_budget_s: float) -> LeaseRound:
    """Renew the instance (and so all its leases) for `lease_s`, take its fair share of
    the free leases of every group it serves, and say what it holds; one transaction."""
    with conn.transaction():
        row = conn.execute(
            """WITH old AS (SELECT expires_at FROM collector_instances WHERE id = %(id)s
                             FOR UPDATE)
               UPDATE collector_instances c
                  SET renewed_at = now(), expires_at = now() + make_interval(secs => %(s)s)
                 FROM old WHERE c.id = %(id)s
               RETURNING old.expires_at <= now()""",
            {"id": instance.id, "s": lease_s}).fetchone()
        if row is None:  # pruned (dead for an hour): alive again, as a lapsed instance
            in_use = register_instance(conn, instance, lease_s)
            if in_use is not None:
                raise LeaseError(
                    f"{in_use}: this collector was away for more than"
                    f" {DEAD_INSTANCE_KEPT_S / 3600:g} h and another one was started with its"
                    " name; it polls nothing while that one runs (give each collector its own"
                    " [collector] name: keyline collect --name)")
        lapsed = row is None or bool(row[0])
        groups = list(instance.groups) if instance.groups is not None else None
        # every active device of the groups served has a lease row (free when new)
        conn.execute(
            """INSERT INTO device_leases (device_id)
               SELECT d.id FROM devices d
                WHERE d.retired_at IS NULL
                  AND (%(groups)s::text[] IS NULL OR d.poller_group = ANY(%(groups)s))
                  AND NOT EXISTS (SELECT 1 FROM device_leases l WHERE l.device_id = d.id)
               ON CONFLICT (device_id) DO NOTHING""", {"groups": groups})
        counts = dict(conn.execute(
            """SELECT d.poller_group, count(*) FROM devices d
                WHERE d.retired_at IS NULL
                  AND (%(groups)s::text[] IS NULL OR d.poller_group = ANY(%(groups)s))
                GROUP BY d.poller_group""", {"groups": groups}).fetchall())
        held: dict[int, str] = dict(conn.execute(
            """SELECT l.device_id, d.poller_group FROM device_leases l
                 JOIN devices d ON d.id = l.device_id
                WHERE l.holder = %(id)s AND d.retired_at IS NULL
                  AND (%(groups)s::text[] IS NULL OR d.poller_group = ANY(%(groups)s))""",
            {"id": instance.id, "groups": groups}).fetchall())
        taken: dict[int, float] = {}
        surplus: dict[str, int] = {}
        for group, count in sorted(counts.items()):
            members = conn.execute(
                """SELECT count(*) FROM collector_instances
                    WHERE expires_at > now()
                      AND (poller_groups IS NULL OR %s = ANY(poller_groups))""",
                [group]).fetchone()[0]  # type: ignore[index]
            share = math.ceil(count / max(1, members))
            mine = sum(1 for g in held.values() if g == group)
            if mine > share:
                surplus[group] = mine - share
            elif mine < share:
                for device_id, wait_s in _take_free(
                        conn, instance, group, share - mine,
                        after_expiry_s=max(0.0, interval_s_for(group) - poll_budget_s)):
                    held[device_id] = group
                    taken[device_id] = wait_s
    return LeaseRound(held, taken, surplus, lapsed)


def _take_free(conn: psycopg.Connection, instance: CollectorInstance, group: str,
               wanted: int, *, after_expiry_s: float) -> list[tuple[int, float]]:
    """Take up to `wanted` free leases of `group` (released, or of a dead holder), skipping
    those another collector is taking at the same moment; each with the seconds to wait
    before its first poll."""
    return [(int(device_id), float(wait_s)) for device_id, wait_s in conn.execute(
        """WITH free AS (
               SELECT l.device_id,
                      coalesce(l.poll_after,
                               m.expires_at + make_interval(secs => %(after)s)) AS poll_after
                 FROM device_leases l
                 JOIN devices d ON d.id = l.device_id
                 LEFT JOIN collector_instances m ON m.id = l.holder
                WHERE d.retired_at IS NULL AND d.poller_group = %(group)s
                  AND (l.holder IS NULL OR m.expires_at <= now())
                ORDER BY l.device_id
                LIMIT %(wanted)s
                  FOR UPDATE OF l SKIP LOCKED)
           UPDATE device_leases l
              SET holder = %(id)s, acquired_at = now(), poll_after = NULL
             FROM free WHERE l.device_id = free.device_id
           RETURNING l.device_id,
                     greatest(0, coalesce(extract(epoch FROM free.poll_after - now()), 0))""",
        {"after": after_expiry_s, "group": group, "wanted": wanted,
         "id": instance.id}).fetchall()]


def release_leases(conn: psycopg.Connection, instance: CollectorInstance,
                   wait_s: Mapping[int, float]) -> int:
    """Hand back these devices' leases (the caller stopped polling them): each may be
    polled by its next holder `wait_s[device]` seconds from now; how many were released."""
    if not wait_s:
        return 0
    with conn.transaction():
        return conn.execute(
            """UPDATE device_leases l
                  SET holder = NULL, poll_after = now() + make_interval(secs => w.wait_s)
                 FROM unnest(%(ids)s::bigint[], %(waits)s::float8[]) AS w(device_id, wait_s)
                WHERE l.device_id = w.device_id AND l.holder = %(id)s""",
            {"ids": list(wait_s), "waits": [max(0.0, s) for s in wait_s.values()],
             "id": instance.id}).rowcount


def retire_instance(conn: psycopg.Connection, instance: CollectorInstance,
                    wait_s: Mapping[int, float]) -> None:
    """A clean stop: hand back every lease (see `release_leases`) and end the instance."""
    with conn.transaction():
        release_leases(conn, instance, wait_s)
        conn.execute("UPDATE device_leases SET holder = NULL, poll_after = now()"
                     " WHERE holder = %s", [instance.id])
        conn.execute("UPDATE collector_instances SET expires_at = now() WHERE id = %s",
                     [instance.id])


def lease_holders(conn: psycopg.Connection) -> dict[str, list[str]]:
    """Which live collector holds which devices (by name, device keys sorted): for
    `keyline status` and tests."""
    rows = conn.execute(
        """SELECT m.name, d.key FROM device_leases l
             JOIN collector_instances m ON m.id = l.holder
             JOIN devices d ON d.id = l.device_id
            WHERE m.expires_at > now() AND d.retired_at IS NULL
            ORDER BY m.name, d.key""").fetchall()
    holders: dict[str, list[str]] = {}
    for name, key in rows:
        holders.setdefault(name, []).append(key)
    return holders


class FleetSingleton:
    """Run what must run once across the fleet while this process holds the fleet's
    advisory lock, on a dedicated connection of its own (see the module docstring).

    `on_acquired` is called (on this object's thread) when the lock is taken, `on_lost` when
    it is lost (the connection broke) or given up at `stop()`. `start()` makes the first
    attempt before it returns, so a lone process starts its singletons at once; then a
    thread checks the connection (holding) or tries again (not holding) every `retry_s`.
    TCP keepalives bound how long a dead server goes unnoticed."""

    def __init__(self, conninfo: str, *, on_acquired: Callable[[], None],
                 on_lost: Callable[[], None], retry_s: float = 5.0,
                 lock_id: int = FLEET_LOCK_ID, connect_timeout_s: float = 10.0) -> None:
        self._conninfo = conninfo
        self._on_acquired = on_acquired
        self._on_lost = on_lost
        self.retry_s = retry_s
        self._lock_id = lock_id
        self._connect_timeout_s = connect_timeout_s
        self._conn: psycopg.Connection | None = None
        self._held = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unavailable_logged = False

    @property
    def held(self) -> bool:
        return self._held

    def start(self) -> None:
        self._step()
        self._thread = threading.Thread(target=self._run, name="keyline-fleet-lease",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._held:
            self._lose("this process stops", logging.INFO)
        self._close()

    def _run(self) -> None:
        while not self._stop.wait(self.retry_s):
            self._step()

    def _step(self) -> None:
        try:
            if self._conn is None:
                self._conn = psycopg.connect(
                    self._conninfo, autocommit=True,
                    connect_timeout=max(1, round(self._connect_timeout_s)),
                    keepalives=1, keepalives_idle=max(1, round(self.retry_s)),
                    keepalives_interval=max(1, round(self.retry_s)), keepalives_count=2,
                    tcp_user_timeout=int(3 * self.retry_s * 1000))
            if self._held:
                self._conn.execute("SELECT 1")
                return
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)",
                                     [self._lock_id]).fetchone()
            self._unavailable_logged = False
        except psycopg.Error as error:
            if self._held:
                self._lose(f"its connection broke ({error.__class__.__name__})")
            elif not self._unavailable_logged:
                log.info("fleet singleton jobs wait: store unavailable (%s)", error)
                self._unavailable_logged = True
            self._close()
            return
        if not (row and row[0]):
            return
        self._held = True
        log.info("this process runs the fleet's singleton jobs (rollups, retention, discovery,"
                 " alarms, tickets, notifications)")
        try:
            self._on_acquired()
        except Exception:
            log.exception("starting the fleet's singleton jobs failed: giving the lock back")
            self._lose("they could not start")
            self._close()

    def _lose(self, why: str, level: int = logging.WARNING) -> None:
        self._held = False
        log.log(level, "this process no longer runs the fleet's singleton jobs: %s", why)
        try:
            self._on_lost()
        except Exception:
            log.exception("stopping the fleet's singleton jobs failed")

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()  # the session ends: its advisory lock is released
