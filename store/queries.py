"""Queries that several packages share: the inventory as the portal and the engines read it.

Every function that returns customer-owned objects takes the customer to scope to; `None`
means the caller is operator staff and sees every customer. Retired objects are left out
unless asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

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
                  ci.description
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
