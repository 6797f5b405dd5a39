"""Queries that several packages share: the inventory as the portal and the engines read it.

Every function that returns customer-owned objects takes the customer to scope to; `None`
means the caller is operator staff and sees every customer. Retired objects are left out
unless asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg


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


def list_customers(
    conn: psycopg.Connection, *, customer_id: int | None = None
) -> list[CustomerRow]:
    rows = conn.execute(
        """SELECT c.id, c.key, c.name, c.account_manager,
                  count(ci.id) FILTER (WHERE ci.retired_at IS NULL)
             FROM customers c LEFT JOIN circuits ci ON ci.customer_id = c.id
            WHERE c.retired_at IS NULL AND (%(customer)s::bigint IS NULL OR c.id = %(customer)s)
            GROUP BY c.id ORDER BY c.name""",
        {"customer": customer_id},
    )
    return [CustomerRow(*row) for row in rows]


def list_circuits(conn: psycopg.Connection, *, customer_id: int | None = None) -> list[CircuitRow]:
    rows = conn.execute(
        """SELECT ci.id, ci.key, cu.key, cu.name, ci.service_type, ci.bandwidth_bps,
                  ad.key || ':' || ap.name, zd.key || ':' || zp.name, sc.name,
                  (SELECT count(*) FROM circuit_hops h WHERE h.circuit_id = ci.id),
                  ci.description, ci.a_port_id
             FROM circuits ci
             JOIN customers cu ON cu.id = ci.customer_id
             JOIN ports ap ON ap.id = ci.a_port_id JOIN devices ad ON ad.id = ap.device_id
             JOIN ports zp ON zp.id = ci.z_port_id JOIN devices zd ON zd.id = zp.device_id
             LEFT JOIN sla_contracts sc ON sc.id = ci.sla_contract_id
            WHERE ci.retired_at IS NULL
              AND (%(customer)s::bigint IS NULL OR ci.customer_id = %(customer)s)
            ORDER BY cu.name, ci.key""",
        {"customer": customer_id},
    )
    return [CircuitRow(*row) for row in rows]


def inventory_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Active objects per kind, for status pages and the command line."""
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


def device_reachability(conn: psycopg.Connection) -> dict[str, int]:
    """How many active devices the collectors last found in each poll status
    ("reachable", "unreachable", ...; "not polled" for those without a status yet)."""
    rows = conn.execute(
        """SELECT coalesce(s.status, 'not polled'), count(*)
             FROM devices d LEFT JOIN device_poll_status s ON s.device_id = d.id
            WHERE d.retired_at IS NULL GROUP BY 1 ORDER BY 1"""
    ).fetchall()
    return dict(rows)
