"""Queries that several packages share: the inventory as the portal and the engines read it.

Every function that returns customer-owned objects takes the customer to scope to; `None`
means the caller is operator staff and sees every customer. An account manager is staff
narrowed to the customers whose `account_manager` is them (`manager=` their login name).
Retired objects are left out unless asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from psycopg import sql

from store.timeseries import Resolution, resolution_for, series_source, stored_retention


@dataclass(frozen=True)
class CustomerRow:
    id: int
    key: str
    name: str
    account_manager: str | None
    circuit_count: int


@dataclass(frozen=True)
class CircuitRow:
    id: int
    key: str
    customer_key: str
    customer_name: str
    service_type: str
    bandwidth_bps: int
    a_end: str
    z_end: str
    sla_contract: str | None
    hop_count: int
    description: str | None
    a_port_id: int
    z_port_id: int
    # the per-circuit sub-interfaces the inventory names at each end (None: none named)
    a_sub_port_id: int | None = None
    z_sub_port_id: int | None = None


def list_customers(
    conn: psycopg.Connection, *, customer_id: int | None = None, manager: str | None = None
) -> list[CustomerRow]:
    rows = conn.execute(
        """SELECT c.id, c.key, c.name, c.account_manager,
                  count(ci.id) FILTER (WHERE ci.retired_at IS NULL)
             FROM customers c LEFT JOIN circuits ci ON ci.customer_id = c.id
            WHERE c.retired_at IS NULL AND (%(customer)s::bigint IS NULL OR c.id = %(customer)s)
              AND (%(manager)s::text IS NULL OR c.account_manager = %(manager)s)
            GROUP BY c.id ORDER BY c.name""",
        {"customer": customer_id, "manager": manager},
    )
    return [CustomerRow(*row) for row in rows]


def list_circuits(
    conn: psycopg.Connection, *, customer_id: int | None = None, manager: str | None = None
) -> list[CircuitRow]:
    rows = conn.execute(
        """SELECT ci.id, ci.key, cu.key, cu.name, ci.service_type, ci.bandwidth_bps,
                  ad.key || ':' || ap.name, zd.key || ':' || zp.name, sc.name,
                  (SELECT count(*) FROM circuit_hops h WHERE h.circuit_id = ci.id),
                  ci.description, ci.a_port_id, ci.z_port_id, ci.a_sub_port_id, ci.z_sub_port_id
             FROM circuits ci
             JOIN customers cu ON cu.id = ci.customer_id
             JOIN ports ap ON ap.id = ci.a_port_id JOIN devices ad ON ad.id = ap.device_id
             JOIN ports zp ON zp.id = ci.z_port_id JOIN devices zd ON zd.id = zp.device_id
             LEFT JOIN sla_contracts sc ON sc.id = ci.sla_contract_id
            WHERE ci.retired_at IS NULL
              AND (%(customer)s::bigint IS NULL OR ci.customer_id = %(customer)s)
              AND (%(manager)s::text IS NULL OR cu.account_manager = %(manager)s)
            ORDER BY cu.name, ci.key""",
        {"customer": customer_id, "manager": manager},
    )
    return [CircuitRow(*row) for row in rows]


def inventory_counts(conn: psycopg.Connection, *, manager: str | None = None
                     ) -> dict[str, int]:
    """Active objects per kind, for status pages and the command line. With `manager` (an
    account manager's login name), only the objects of the customers they manage: their
    customers, those customers' sites, the devices at those sites, their circuits and VPNs
    (the operator's own network, shared by every customer, is not theirs to count)."""
    if manager is not None:
        found = dict(conn.execute(
            """WITH mine AS (SELECT id FROM customers
                              WHERE retired_at IS NULL AND account_manager = %(manager)s),
                    my_sites AS (SELECT id FROM sites
                                  WHERE retired_at IS NULL AND customer_id IN (SELECT id FROM mine))
               SELECT 'customers', count(*) FROM mine
               UNION ALL SELECT 'sites', count(*) FROM my_sites
               UNION ALL SELECT 'devices', count(*) FROM devices
                          WHERE retired_at IS NULL AND site_id IN (SELECT id FROM my_sites)
               UNION ALL SELECT 'circuits', count(*) FROM circuits
                          WHERE retired_at IS NULL AND customer_id IN (SELECT id FROM mine)
               UNION ALL SELECT 'vpns', count(*) FROM vpns
                          WHERE retired_at IS NULL AND customer_id IN (SELECT id FROM mine)""",
            {"manager": manager}).fetchall())
        return {kind: found[kind] for kind in ("customers", "sites", "devices", "circuits", "vpns")}
    counts = {}
    for table in ("customers", "sites", "devices", "ports", "links", "circuits", "vpns",
                  "sla_contracts", "users"):
        counts[table] = conn.execute(
            f"SELECT count(*) FROM {table} WHERE retired_at IS NULL"
        ).fetchone()[0]
    return counts


@dataclass(frozen=True)
class PortTraffic:
    """The latest rates of one port, from its most recent poll (None: not measured yet)."""

    in_bps: float | None
    out_bps: float | None
    measured_at: datetime | None


def latest_port_traffic(
    conn: psycopg.Connection, port_ids: Sequence[int], *, max_age_s: int = 600
) -> dict[int, PortTraffic]:
    """In/out bit/s of each port at its latest poll within `max_age_s`: older figures are
    not "current traffic" any more and the port has none here. Callers scope `port_ids`
    (a customer's circuits' ports); this function reads nothing else."""
    rows = conn.execute(
        """SELECT DISTINCT ON (s.object_id, s.metric_id) s.object_id, m.name, s.value, s.time
             FROM samples s JOIN metrics m ON m.id = s.metric_id
            WHERE s.object_id = ANY(%(ports)s) AND m.name IN ('if_in_bps', 'if_out_bps')
              AND s.time > now() - make_interval(secs => %(age)s)
            ORDER BY s.object_id, s.metric_id, s.time DESC""",
        {"ports": list(port_ids), "age": max_age_s},
    ).fetchall()
    found: dict[int, dict[str, object]] = {}
    for port_id, metric, value, time in rows:
        entry = found.setdefault(port_id, {})
        entry[metric] = value
        entry["time"] = max(time, entry.get("time", time))  # type: ignore[type-var]
    return {port_id: PortTraffic(entry.get("if_in_bps"), entry.get("if_out_bps"),  # type: ignore[arg-type]
                                 entry["time"])  # type: ignore[arg-type]
            for port_id, entry in found.items()}


def device_reachability(conn: psycopg.Connection, *, manager: str | None = None
                        ) -> dict[str, int]:
    """How many active devices the collectors last found in each poll status
    ("reachable", "unreachable", ...; "not polled" for those without a status yet). With
    `manager`, only the devices at the sites of the customers they manage."""
    rows = conn.execute(
        """SELECT coalesce(s.status, 'not polled'), count(*)
             FROM devices d LEFT JOIN device_poll_status s ON s.device_id = d.id
            WHERE d.retired_at IS NULL
              AND (%(manager)s::text IS NULL OR d.site_id IN (
                   SELECT si.id FROM sites si JOIN customers cu ON cu.id = si.customer_id
                    WHERE si.retired_at IS NULL AND cu.retired_at IS NULL
                      AND cu.account_manager = %(manager)s))
            GROUP BY 1 ORDER BY 1""",
        {"manager": manager},
    ).fetchall()
    return dict(rows)


# --- the portal's viewer-scoped reads ------------------------------------------------------
#
# Everything below takes a `Viewer`: who is asking. Staff (noc, engineer, account_manager,
# admin) have `customer_id` None and see every customer, except that an account manager sees
# only the customers whose `account_manager` names them (`Viewer.manager`); a customer user is
# bound to one customer and every query filters on both in SQL, so another tenant's object is
# simply "not found" (the portal answers 404, never "forbidden", so ids cannot be probed). The
# filters live here, next to the SQL, not in the views: a new page cannot forget them.

STAFF_ROLES = ("noc", "engineer", "account_manager", "admin")


@dataclass(frozen=True)
class Viewer:
    """The person (or API client) a request is served for: the user's login name and role,
    and for a customer user the customer it is bound to."""

    user_key: str
    role: str
    customer_id: int | None = None
    customer_key: str | None = None
    full_name: str | None = None

    def __post_init__(self) -> None:
        if (self.role == "customer") != (self.customer_id is not None):
            raise ValueError("a customer viewer needs its customer; staff must have none")

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def scope(self) -> int | None:
        """The customer id to filter on, None for staff (every customer)."""
        return self.customer_id

    @property
    def manager(self) -> str | None:
        """For an account manager, the login name that `customers.account_manager` must
        equal (they see only their own accounts); None for every other role."""
        return self.user_key if self.role == "account_manager" else None


@dataclass(frozen=True)
class DeviceRow:
    id: int
    key: str
    role: str
    platform: str
    site_key: str | None
    customer_key: str | None
    management_address: str
    poll_status: str


@dataclass(frozen=True)
class PortRow:
    id: int
    key: str
    device_key: str
    name: str
    if_index: int | None
    speed_bps: int | None
    description: str | None


def customers_for(conn: psycopg.Connection, viewer: Viewer) -> list[CustomerRow]:
    return list_customers(conn, customer_id=viewer.scope, manager=viewer.manager)


def get_customer(conn: psycopg.Connection, viewer: Viewer, customer_id: int) -> CustomerRow | None:
    for row in list_customers(conn, customer_id=customer_id, manager=viewer.manager):
        if viewer.scope is None or row.id == viewer.scope:
            return row
    return None


def circuits_for(
    conn: psycopg.Connection, viewer: Viewer, *, customer_id: int | None = None
) -> list[CircuitRow]:
    """The viewer's circuits; staff may narrow to one customer with `customer_id`."""
    if viewer.scope is not None:
        if customer_id is not None and customer_id != viewer.scope:
            return []
        customer_id = viewer.scope
    return list_circuits(conn, customer_id=customer_id, manager=viewer.manager)


def get_circuit(conn: psycopg.Connection, viewer: Viewer, circuit_id: int) -> CircuitRow | None:
    for row in circuits_for(conn, viewer):
        if row.id == circuit_id:
            return row
    return None


# A customer sees the devices at its own sites (its CPEs), never the operator's shared PEs:
# their port lists would name other tenants' circuits. An account manager, likewise, the
# devices at their customers' sites.
_DEVICES = """
    SELECT d.id, d.key, d.role, d.platform, s.key, c.key, host(d.management_address),
           coalesce(ps.status, 'not polled')
      FROM devices d
      LEFT JOIN sites s ON s.id = d.site_id
      LEFT JOIN customers c ON c.id = s.customer_id
      LEFT JOIN device_poll_status ps ON ps.device_id = d.id
     WHERE d.retired_at IS NULL
       AND (%(customer)s::bigint IS NULL OR s.customer_id = %(customer)s)
       AND (%(manager)s::text IS NULL OR c.account_manager = %(manager)s)
"""


def devices_for(conn: psycopg.Connection, viewer: Viewer) -> list[DeviceRow]:
    rows = conn.execute(_DEVICES + " ORDER BY d.key",
                        {"customer": viewer.scope, "manager": viewer.manager})
    return [DeviceRow(*row) for row in rows]


def get_device(conn: psycopg.Connection, viewer: Viewer, device_id: int) -> DeviceRow | None:
    row = conn.execute(_DEVICES + " AND d.id = %(device)s",
                       {"customer": viewer.scope, "manager": viewer.manager,
                        "device": device_id}).fetchone()
    return DeviceRow(*row) if row else None


def ports_for_device(
    conn: psycopg.Connection, viewer: Viewer, device_id: int
) -> list[PortRow] | None:
    """The active ports of a device the viewer may see; None when it may not (or none such)."""
    device = get_device(conn, viewer, device_id)
    if device is None:
        return None
    rows = conn.execute(
        """SELECT p.id, p.key, d.key, p.name, p.if_index, p.speed_bps, p.description
             FROM ports p JOIN devices d ON d.id = p.device_id
            WHERE p.device_id = %s AND p.retired_at IS NULL ORDER BY p.if_index, p.name""",
        [device_id],
    )
    return [PortRow(*row) for row in rows]


# The viewer's own circuits, and "another viewer's circuit" (an active circuit of a customer
# outside the viewer's scope), as SQL conditions on a circuits row `ci` joined to `cu`.
_MINE = """(%(customer)s::bigint IS NULL OR ci.customer_id = %(customer)s)
           AND (%(manager)s::text IS NULL OR cu.account_manager = %(manager)s)"""
_NOT_MINE = """((%(customer)s::bigint IS NOT NULL AND o.customer_id <> %(customer)s)
               OR (%(manager)s::text IS NOT NULL
                   AND ocu.account_manager IS DISTINCT FROM %(manager)s))"""


def object_visible(conn: psycopg.Connection, viewer: Viewer, object_id: int) -> bool:
    """Whether the viewer may read samples of `object_id` (ids come from one sequence, so the
    id alone says which object): staff any active inventory object; a customer its circuits,
    its devices and their ports, and its circuits' end ports and named sub-interfaces
    unless a circuit of another customer ends there too (a PE port shared by two customers'
    circuits carries both's traffic: its samples are staff-only, and the customer's figures
    come from its own end or its sub-interface, `traffic_ports`); an account manager the
    same for each of their customers."""
    return bool(conn.execute(
        """SELECT EXISTS (
             SELECT 1 FROM circuits ci JOIN customers cu ON cu.id = ci.customer_id
              WHERE ci.id = %(obj)s AND ci.retired_at IS NULL
                AND (%(customer)s::bigint IS NULL OR ci.customer_id = %(customer)s)
                AND (%(manager)s::text IS NULL OR cu.account_manager = %(manager)s)
             UNION ALL
             SELECT 1 FROM circuits ci JOIN customers cu ON cu.id = ci.customer_id
              WHERE ci.retired_at IS NULL
                AND %(obj)s IN (ci.a_port_id, ci.z_port_id, ci.a_sub_port_id, ci.z_sub_port_id)
                AND """ + _MINE + """
                AND NOT EXISTS (
                    SELECT 1 FROM circuits o JOIN customers ocu ON ocu.id = o.customer_id
                     WHERE o.retired_at IS NULL
                       AND %(obj)s IN (o.a_port_id, o.z_port_id, o.a_sub_port_id,
                                       o.z_sub_port_id)
                       AND """ + _NOT_MINE + """)
             UNION ALL
             SELECT 1 FROM devices d LEFT JOIN sites s ON s.id = d.site_id
                  LEFT JOIN customers cu ON cu.id = s.customer_id
              WHERE d.id = %(obj)s AND d.retired_at IS NULL
                AND (%(customer)s::bigint IS NULL OR s.customer_id = %(customer)s)
                AND (%(manager)s::text IS NULL OR cu.account_manager = %(manager)s)
             UNION ALL
             SELECT 1 FROM ports p JOIN devices d ON d.id = p.device_id
                  LEFT JOIN sites s ON s.id = d.site_id
                  LEFT JOIN customers cu ON cu.id = s.customer_id
              WHERE p.id = %(obj)s AND p.retired_at IS NULL
                AND (%(customer)s::bigint IS NULL OR s.customer_id = %(customer)s)
                AND (%(manager)s::text IS NULL OR cu.account_manager = %(manager)s))""",
        {"obj": object_id, "customer": viewer.scope, "manager": viewer.manager},
    ).fetchone()[0])


def traffic_ports(conn: psycopg.Connection, viewer: Viewer, circuit: CircuitRow
                  ) -> tuple[int | None, int | None]:
    """The ports whose samples are the circuit's traffic at its A and Z end for this viewer:
    the end's named sub-interface, else the end port when the viewer may read it
    (`object_visible`: not a port shared with another customer's circuit), else None (the
    page says the figure is the operator's)."""
    ends = []
    for port, sub in ((circuit.a_port_id, circuit.a_sub_port_id),
                      (circuit.z_port_id, circuit.z_sub_port_id)):
        chosen = sub if sub is not None else port
        ends.append(chosen if object_visible(conn, viewer, chosen) else None)
    return ends[0], ends[1]


def metric_names(conn: psycopg.Connection) -> list[str]:
    return [row[0] for row in conn.execute("SELECT name FROM metrics ORDER BY name")]


@dataclass(frozen=True)
class SeriesPoint:
    time: datetime
    value: float
    min_value: float
    max_value: float


@dataclass(frozen=True)
class Series:
    """A series as a chart reads it: its points, and the resolution they were computed
    from (store.timeseries.resolution_for: raw samples or a rollup)."""

    resolution: Resolution
    points: list[SeriesPoint]


def sample_series(
    conn: psycopg.Connection,
    viewer: Viewer,
    object_id: int,
    metric: str,
    start: datetime,
    end: datetime,
    points: int,
) -> Series | None:
    """One object's metric over [start, end), averaged into at most `points` equal time
    buckets (each point: the bucket's start, mean, min and max), oldest first, read from
    the coarsest resolution that still gives `points` buckets and holds `start` (a 400-day
    chart reads daily rollups). None when the viewer may not see the object."""
    if not object_visible(conn, viewer, object_id):
        return None
    resolution = resolution_for(start, end, now=datetime.now(UTC),
                                retention=stored_retention(conn), points=points)
    # a rollup's bucket counts with its samples: the mean of means weighted by count. In
    # exact numeric seconds: a rollup bucket on a point's boundary must not fall into the
    # point before by a rounding error.
    rows = conn.execute(sql.SQL(
        """SELECT %(start)s + make_interval(secs => (b - 1) * (extract(epoch FROM %(end)s)
                                        - extract(epoch FROM %(start)s)) / %(n)s),
                  sum(v * c) / sum(c), min(lo), max(hi)
             FROM (SELECT width_bucket(extract(epoch FROM s.bucket),
                                       extract(epoch FROM %(start)s),
                                       extract(epoch FROM %(end)s), %(n)s) AS b,
                          s.avg_value AS v, s.sample_count AS c, s.min_value AS lo,
                          s.max_value AS hi
                     FROM {source} s JOIN metrics m ON m.id = s.metric_id
                    WHERE s.object_id = %(obj)s AND m.name = %(metric)s
                      AND s.bucket >= %(start)s AND s.bucket < %(end)s) AS bucketed
            GROUP BY b ORDER BY b""").format(source=series_source(resolution)),
        {"n": points, "obj": object_id, "metric": metric, "start": start, "end": end},
    ).fetchall()
    return Series(resolution, [SeriesPoint(*row) for row in rows])


# --- a device's page (portal/devices.py) ---------------------------------------------------
#
# One viewer-scoped read for everything a device's page shows, and one for the raw samples of
# a port's withheld intervals (their values are reason codes: averaging them into buckets,
# as sample_series does, would make up codes).

from store.observations import (  # noqa: E402
    DevicePollStatus,
    PortMatchRow,
    StoredObservation,
)


@dataclass(frozen=True)
class DeviceDetail:
    """A device as its page shows it, read for one viewer: the device and its active ports;
    its poll status row (None: never polled); the latest observation of each state kind
    asked for, of the device and of its ports, by (object id, kind); how each port matched
    an interface of the device at the last poll (by port id; a port never matched has
    none); the latest sample of each metric asked for no older than the age asked (object
    id -> metric -> (time, value)); and how many samples of the counted metric each port
    has since the time asked (ports with none are absent)."""

    device: DeviceRow
    ports: list[PortRow]
    poll: DevicePollStatus | None
    states: dict[tuple[int, str], StoredObservation]
    matches: dict[int, PortMatchRow]
    latest: dict[int, dict[str, tuple[datetime, float]]]
    counts: dict[int, int]


def device_detail(
    conn: psycopg.Connection,
    viewer: Viewer,
    device_id: int,
    *,
    state_kinds: Sequence[str],
    device_metrics: Sequence[str],
    port_metrics: Sequence[str],
    max_age_s: float,
    count_metric: str,
    count_since: datetime,
) -> DeviceDetail | None:
    """The device's page data (see DeviceDetail); None when the viewer may not see the
    device (object_visible, the same rule as its samples) or `device_id` is no device."""
    if not object_visible(conn, viewer, device_id):
        return None
    device = get_device(conn, viewer, device_id)
    ports = ports_for_device(conn, viewer, device_id) if device is not None else None
    if device is None or ports is None:
        return None
    port_ids = [port.id for port in ports]
    objects = [device_id, *port_ids]
    row = conn.execute(
        """SELECT device_id, status, reason, changed_at, last_poll_at
             FROM device_poll_status WHERE device_id = %s""", [device_id]).fetchone()
    poll = DevicePollStatus(*row) if row else None
    states = {
        (obs.object_id, obs.kind): obs
        for obs in (StoredObservation(*r) for r in conn.execute(
            """SELECT DISTINCT ON (object_id, kind)
                      id, time, object_id, kind, old, new, source, detail
                 FROM observations
                WHERE object_id = ANY(%(objects)s) AND kind = ANY(%(kinds)s)
                ORDER BY object_id, kind, time DESC, id DESC""",
            {"objects": objects, "kinds": list(state_kinds)}))}
    matches = {
        r[0]: PortMatchRow(*r) for r in conn.execute(
            """SELECT port_id, device_id, if_index, matched_by, problem, message, seen_at
                 FROM port_matches WHERE port_id = ANY(%s)""", [port_ids])}
    pairs = [(device_id, metric) for metric in device_metrics] + [
        (port_id, metric) for port_id in port_ids for metric in port_metrics]
    latest: dict[int, dict[str, tuple[datetime, float]]] = {}
    for object_id, metric, time, value in conn.execute(
        """SELECT o.object_id, m.name, s.time, s.value
             FROM unnest(%(objects)s::bigint[], %(metrics)s::text[]) AS o(object_id, metric)
             JOIN metrics m ON m.name = o.metric
             CROSS JOIN LATERAL (
                 SELECT time, value FROM samples
                  WHERE object_id = o.object_id AND metric_id = m.id
                    AND time > now() - make_interval(secs => %(age)s)
                  ORDER BY time DESC LIMIT 1) AS s""",
        {"objects": [p[0] for p in pairs], "metrics": [p[1] for p in pairs],
         "age": max_age_s}):
        latest.setdefault(object_id, {})[metric] = (time, value)
    counts = dict(conn.execute(
        """SELECT s.object_id, count(*) FROM samples s JOIN metrics m ON m.id = s.metric_id
            WHERE s.object_id = ANY(%(ports)s) AND m.name = %(metric)s
              AND s.time >= %(since)s
            GROUP BY s.object_id""",
        {"ports": port_ids, "metric": count_metric, "since": count_since}).fetchall())
    return DeviceDetail(device, ports, poll, states, matches, latest, counts)


def sample_values(
    conn: psycopg.Connection,
    viewer: Viewer,
    object_id: int,
    metric: str,
    start: datetime,
    end: datetime,
    limit: int,
) -> list[tuple[datetime, float]] | None:
    """One object's raw samples of `metric` in [start, end) as (time, value), oldest first:
    the newest `limit` of them when there are more. None when the viewer may not see the
    object."""
    if not object_visible(conn, viewer, object_id):
        return None
    rows = conn.execute(
        """SELECT time, value FROM (
               SELECT s.time, s.value FROM samples s JOIN metrics m ON m.id = s.metric_id
                WHERE s.object_id = %(obj)s AND m.name = %(metric)s
                  AND s.time >= %(start)s AND s.time < %(end)s
                ORDER BY s.time DESC LIMIT %(limit)s) AS newest
            ORDER BY time""",
        {"obj": object_id, "metric": metric, "start": start, "end": end, "limit": limit},
    ).fetchall()
    return [(time, value) for time, value in rows]


def contract_calendars(conn: psycopg.Connection) -> dict[str, tuple[str, dict[str, object]]]:
    """Every active SLA contract's key -> (name, stored service calendar JSON, which
    sla.calendar.calendar_of reads). Contracts are operator data: staff only."""
    return {key: (name, calendar) for key, name, calendar in conn.execute(
        "SELECT key, name, calendar FROM sla_contracts WHERE retired_at IS NULL ORDER BY key")}
