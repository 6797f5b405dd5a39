"""Importing an inventory into the store: added, changed, retired.

An import makes the store's inventory tables say what the files say, in one transaction:
an object whose key is new is added; one whose declared form (`spec`) differs is changed;
one whose key no longer appears is retired (its row stays, with `retired_at` set, so its
samples, alarms and SLA history stay readable); one that comes back is restored on its old
row and id. Running the same import twice changes nothing the second time. File positions
(`source`) are refreshed silently: moving a block of YAML is not a change to the network.
Passwords are not part of the inventory, so an import never touches them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from config.inventory.model import CreditStep, Inventory, Source
from store.events import publish
from store.users import cut_off_users, end_scope_changes, user_scopes

# Serialises concurrent imports (an arbitrary constant: "keyl" in ASCII).
IMPORT_LOCK_ID = 0x6B65796C

KINDS = (
    "customers", "sites", "credentials", "sla_contracts", "users", "devices", "ports",
    "links", "circuits", "vpns",
)


@dataclass
class KindSummary:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def touched(self) -> bool:
        return bool(self.added or self.changed or self.retired)


@dataclass
class ImportSummary:
    """What an import did, kind by kind."""

    kinds: dict[str, KindSummary] = field(default_factory=lambda: {k: KindSummary() for k in KINDS})

    @property
    def changed_anything(self) -> bool:
        return any(kind.touched for kind in self.kinds.values())

    def totals(self) -> dict[str, int]:
        return {
            "added": sum(len(k.added) for k in self.kinds.values()),
            "changed": sum(len(k.changed) for k in self.kinds.values()),
            "retired": sum(len(k.retired) for k in self.kinds.values()),
            "unchanged": sum(k.unchanged for k in self.kinds.values()),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            name: {"added": k.added, "changed": k.changed, "retired": k.retired,
                   "unchanged": k.unchanged}
            for name, k in self.kinds.items() if k.touched
        }

    def report(self) -> str:
        """A human summary: one line per kind that changed, and the totals."""
        totals = self.totals()
        if not self.changed_anything:
            return f"Inventory unchanged: {totals['unchanged']} objects, nothing to do."
        lines = []
        for name, kind in self.kinds.items():
            if not kind.touched:
                continue
            parts = []
            for verb, keys in (("added", kind.added), ("changed", kind.changed),
                               ("retired", kind.retired)):
                if keys:
                    more = f" and {len(keys) - 5} more" if len(keys) > 5 else ""
                    shown = ", ".join(keys[:5]) + more
                    parts.append(f"{len(keys)} {verb} ({shown})")
            lines.append(f"  {name}: " + "; ".join(parts))
        lines.append(
            f"Total: {totals['added']} added, {totals['changed']} changed, "
            f"{totals['retired']} retired, {totals['unchanged']} unchanged."
        )
        return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _jsonable(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not isinstance(getattr(value, f.name), Source)
        }
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, IPv4Address | IPv6Address):
        return str(value)
    return value


def spec_of(obj: Any, *, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """The declared form of an inventory object, without file positions, as compared by
    an import. `exclude` drops fields kept elsewhere (a device's ports are objects of their
    own)."""
    spec = _jsonable(obj)
    for name in exclude:
        spec.pop(name, None)
    return spec


def _sub_port(port_ids: Mapping[str, int], end: Any) -> int | None:
    """The id of a circuit end's named sub-interface (a port of the end's device)."""
    sub = getattr(end, "sub_interface", None)
    return port_ids[f"{end.device}:{sub}"] if sub else None


def _canonical(spec: Mapping[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class _Row:
    key: str
    columns: dict[str, Any]
    spec: dict[str, Any]
    source: str
    # columns that hold file positions (a calendar's dates' file:line): refreshed silently
    # like `source` when the spec is unchanged
    positions: tuple[str, ...] = ()


def _customer_spec(customer: Any) -> dict[str, Any]:
    """A customer's spec; one without a language keeps the spec it had before the field."""
    spec = spec_of(customer)
    if spec.get("language") is None:
        spec.pop("language", None)
    return spec


def stored_credits(steps: Iterable[CreditStep]) -> list[dict[str, float]]:
    """A contract's credit steps as `sla_contracts.credits` (and its spec) hold them, in the
    contract's wording: {"below_pct": x, "credit_pct": y} (strict: availability < x) or
    {"at_or_below_pct": x, "credit_pct": y} (availability <= x)."""
    return [{"at_or_below_pct" if step.inclusive else "below_pct": step.below_pct,
             "credit_pct": step.credit_pct} for step in steps]


def credits_of(stored: Iterable[Mapping[str, Any]]) -> tuple[CreditStep, ...]:
    """The credit steps of a stored `sla_contracts.credits` (see `stored_credits`); a step
    written before the wording existed has `below_pct` only and is strict."""
    return tuple(
        CreditStep(float(step["at_or_below_pct"]), float(step["credit_pct"]), inclusive=True)
        if "at_or_below_pct" in step else
        CreditStep(float(step["below_pct"]), float(step["credit_pct"]))
        for step in stored)


def _contract_spec(contract: Any) -> dict[str, Any]:
    """A contract's spec: its calendar's date sources are positions, not part of it, its
    credit steps are in the contract's wording (`stored_credits`), and a contract without
    working dates, official days, a degraded rule, an unknown rule or escalation levels
    keeps the spec it had before those fields existed."""
    spec = spec_of(contract)
    spec["credits"] = stored_credits(contract.credits)
    calendar = spec["calendar"]
    calendar.pop("sources", None)
    if not calendar.get("working_dates"):
        calendar.pop("working_dates", None)
    if calendar.get("official_days") is None:
        calendar.pop("official_days", None)
    for name, default in (("degraded_counts_as_down", False), ("unknown_counts_as", "excluded"),
                          ("escalation", None)):
        if spec.get(name) == default:
            spec.pop(name, None)
    return spec


def _sync_table(
    cur: psycopg.Cursor,
    table: str,
    rows: Sequence[_Row],
    summary: KindSummary,
    now: datetime,
    on_written: Callable[[str, int], None] | None = None,
    advance: Callable[[], None] | None = None,
    managed_only: bool = False,
) -> dict[str, int]:
    """Make `table` hold `rows`: insert, update, restore, retire. Returns key -> id for the
    active rows. `on_written` is called for every inserted, changed or restored row (for
    child tables that must be rewritten). `managed_only` leaves alone the rows an import does
    not own (local users), unless the files now declare their key."""
    scope = " WHERE origin = 'inventory'" if managed_only else ""
    existing = {
        key: (object_id, spec, retired, source)
        for key, object_id, spec, retired, source in cur.execute(
            f"SELECT key, id, spec, retired_at IS NOT NULL, source FROM {table}{scope}"
        )
    }
    if managed_only:
        # A local row whose key the files now declare becomes the inventory's.
        wanted_keys = [row.key for row in rows if row.key not in existing]
        for key, object_id, _spec, retired, source in cur.execute(
            f"UPDATE {table} SET origin = 'inventory' WHERE origin <> 'inventory'"
            " AND key = ANY(%s) RETURNING key, id, spec, retired_at IS NOT NULL, source",
            [wanted_keys],
        ).fetchall():
            existing[key] = (object_id, {"adopted": True}, retired, source)
    ids: dict[str, int] = {}
    for row in rows:
        columns = dict(row.columns, spec=Jsonb(row.spec), source=row.source)
        before = existing.get(row.key)
        if before is None:
            names = ["key", *columns]
            placeholders = ", ".join(["%s"] * len(names))
            object_id = cur.execute(
                f"INSERT INTO {table} ({', '.join(names)}) VALUES ({placeholders}) RETURNING id",
                [row.key, *columns.values()],
            ).fetchone()[0]
            summary.added.append(row.key)
            if on_written:
                on_written(row.key, object_id)
        else:
            object_id, old_spec, retired, old_source = before
            if retired or _canonical(old_spec) != _canonical(row.spec):
                assignments = ", ".join(f"{name} = %s" for name in columns)
                cur.execute(
                    f"UPDATE {table} SET {assignments}, updated_at = %s, retired_at = NULL"
                    " WHERE id = %s",
                    [*columns.values(), now, object_id],
                )
                (summary.added if retired else summary.changed).append(row.key)
                if on_written:
                    on_written(row.key, object_id)
            else:
                if old_source != row.source:
                    cur.execute(f"UPDATE {table} SET source = %s WHERE id = %s",
                                [row.source, object_id])
                for name in row.positions:
                    cur.execute(f"UPDATE {table} SET {name} = %s WHERE id = %s"
                                f" AND {name} IS DISTINCT FROM %s",
                                [row.columns[name], object_id, row.columns[name]])
                summary.unchanged += 1
        ids[row.key] = object_id
        if advance:
            advance()
    wanted = {row.key for row in rows}
    for key, (object_id, _spec, retired, _source) in existing.items():
        if key not in wanted and not retired:
            cur.execute(f"UPDATE {table} SET retired_at = %s WHERE id = %s", [now, object_id])
            summary.retired.append(key)
    return ids


def apply_inventory(
    conn: psycopg.Connection,
    inventory: Inventory,
    *,
    files: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Write `inventory` to the store in one transaction and return what changed.

    `progress`, if given, is called with 1 for every object processed (for a progress bar
    over `inventory.object_count()` objects). If anything fails, nothing is written.
    """
    summary = ImportSummary()
    advance = (lambda: progress(1)) if progress else None
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [IMPORT_LOCK_ID])
        now = cur.execute("SELECT now()").fetchone()[0]

        def sync(table: str, rows: Sequence[_Row], **kwargs: Any) -> dict[str, int]:
            return _sync_table(cur, table, rows, summary.kinds[table], now,
                               advance=advance, **kwargs)

        customer_ids = sync("customers", [
            _Row(c.key, {"name": c.name, "account_manager": c.account_manager,
                         "contact_email": c.contact_email, "language": c.language},
                 _customer_spec(c), str(c.source))
            for c in inventory.customers.values()
        ])
        site_ids = sync("sites", [
            _Row(s.key, {"name": s.name, "customer_id": customer_ids.get(s.customer or ""),
                         "address": s.address, "city": s.city}, spec_of(s), str(s.source))
            for s in inventory.sites.values()
        ])
        credential_ids = sync("credentials", [
            _Row(c.key, {"kind": c.kind,
                         "params": Jsonb(dict(c.params, secrets=_jsonable(c.secrets)))},
                 spec_of(c), str(c.source))
            for c in inventory.credentials.values()
        ])
        contract_ids = sync("sla_contracts", [
            _Row(s.key, {
                "name": s.name, "customer_id": customer_ids.get(s.customer or ""),
                "availability_target_pct": s.availability_target_pct,
                "latency_target_ms": s.latency_target_ms, "jitter_target_ms": s.jitter_target_ms,
                "loss_target_pct": s.loss_target_pct, "calendar": Jsonb(_jsonable(s.calendar)),
                "priorities": Jsonb(_jsonable(s.priorities)),
                "credits": Jsonb(stored_credits(s.credits)), "monthly_charge": s.monthly_charge,
                "currency": s.currency,
            }, _contract_spec(s), str(s.source), positions=("calendar",))
            for s in inventory.sla_contracts.values()
        ])
        scopes = user_scopes(conn)
        sync("users", [
            _Row(u.key, {"role": u.role, "customer_id": customer_ids.get(u.customer or ""),
                         "full_name": u.full_name, "email": u.email}, spec_of(u), str(u.source))
            for u in inventory.users.values()
        ], managed_only=True)
        if summary.kinds["users"].retired:  # their sessions and API tokens end with them
            cut_off_users(conn, [row[0] for row in cur.execute(
                "SELECT id FROM users WHERE key = ANY(%s)",
                [summary.kinds["users"].retired]).fetchall()])
        # a user whose role or customer changed: its sessions and tokens end (store/users.py)
        end_scope_changes(conn, scopes)
        device_ids = sync("devices", [
            _Row(d.key, {
                "site_id": site_ids.get(d.site or ""), "role": d.role, "platform": d.platform,
                "management_address": str(d.management_address), "snmp_port": d.snmp_port,
                "snmp_credential_id": credential_ids[d.snmp_credential],
                "cli_credential_id": credential_ids.get(d.cli_credential or ""),
                "poller_group": d.poller_group,
            }, spec_of(d, exclude=("ports",)), str(d.source))
            for d in inventory.devices.values()
        ])
        port_ids = sync("ports", [
            _Row(p.key, {"device_id": device_ids[p.device], "name": p.name,
                         "if_index": p.if_index, "speed_bps": p.speed_bps,
                         "description": p.description, "monitor": p.monitor},
                 # a port without `monitor` keeps the spec it had before the field existed
                 spec_of(p, exclude=() if p.monitor else ("monitor",)), str(p.source))
            for p in inventory.ports.values()
        ])
        sync("links", [
            _Row(link.key, {"a_port_id": port_ids[str(link.a)], "z_port_id": port_ids[str(link.z)],
                            "cost": link.cost}, spec_of(link), str(link.source))
            for link in inventory.links.values()
        ])

        def write_hops(key: str, circuit_id: int) -> None:
            cur.execute("DELETE FROM circuit_hops WHERE circuit_id = %s", [circuit_id])
            hops = inventory.circuits[key].path
            if hops:
                cur.executemany(
                    "INSERT INTO circuit_hops (circuit_id, seq, device_id, in_port_id, out_port_id)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    [(circuit_id, seq, device_ids[h.device], port_ids[f"{h.device}:{h.in_port}"],
                      port_ids[f"{h.device}:{h.out_port}"]) for seq, h in enumerate(hops, 1)],
                )

        circuit_ids = sync("circuits", [
            _Row(c.key, {
                "customer_id": customer_ids[c.customer], "service_type": c.service_type,
                "bandwidth_bps": c.bandwidth_bps, "a_port_id": port_ids[str(c.a_end)],
                "z_port_id": port_ids[str(c.z_end)],
                "a_sub_port_id": _sub_port(port_ids, c.a_end),
                "z_sub_port_id": _sub_port(port_ids, c.z_end),
                "sla_contract_id": contract_ids.get(c.sla_contract or ""),
                "monthly_charge": c.monthly_charge, "description": c.description,
            }, spec_of(c), str(c.source))
            for c in inventory.circuits.values()
        ], on_written=write_hops)

        def write_members(key: str, vpn_id: int) -> None:
            vpn = inventory.vpns[key]
            cur.execute("DELETE FROM vpn_sites WHERE vpn_id = %s", [vpn_id])
            cur.execute("DELETE FROM vpn_circuits WHERE vpn_id = %s", [vpn_id])
            cur.executemany("INSERT INTO vpn_sites (vpn_id, site_id) VALUES (%s, %s)",
                            [(vpn_id, site_ids[s]) for s in vpn.sites])
            cur.executemany("INSERT INTO vpn_circuits (vpn_id, circuit_id) VALUES (%s, %s)",
                            [(vpn_id, circuit_ids[c]) for c in vpn.circuits])

        sync("vpns", [
            _Row(v.key, {"customer_id": customer_ids[v.customer], "name": v.name},
                 spec_of(v), str(v.source))
            for v in inventory.vpns.values()
        ], on_written=write_members)

        if summary.changed_anything:
            cur.execute(
                "INSERT INTO import_runs (files, summary) VALUES (%s, %s)",
                [list(files), Jsonb(summary.as_dict())],
            )
            publish(conn, "inventory.changed", {"totals": summary.totals()})
    return summary


# --- the retire guard ----------------------------------------------------------------------


class RetireNotConfirmed(Exception):
    """An import would retire more of the inventory than allowed without a confirmation;
    nothing was stored. `summary` says what it would have done (its `retired` keys are
    what would go)."""

    def __init__(self, summary: ImportSummary, share: float, max_share: float) -> None:
        super().__init__(f"this import would retire {summary.totals()['retired']} objects"
                         f" ({share:.0%} of the inventory; more than {max_share:.0%} needs"
                         " a confirmation)")
        self.summary = summary
        self.share = share
        self.max_share = max_share


def retired_share(summary: ImportSummary) -> float:
    """The share of the objects the store held before the import that it retires."""
    totals = summary.totals()
    before = totals["retired"] + totals["changed"] + totals["unchanged"]
    return totals["retired"] / before if before else 0.0


def needs_retire_confirmation(summary: ImportSummary, max_share: float) -> bool:
    """An import that retires more than `max_share` of the inventory, or every object
    of it (an empty or truncated file set), must be confirmed first: a mistake there
    takes customers' circuits out of monitoring."""
    retired = summary.totals()["retired"]
    return retired > 0 and (retired_share(summary) > max_share or retired_share(summary) == 1)


def apply_inventory_guarded(
    conn: psycopg.Connection, inventory: Inventory, *, files: Sequence[str] = (),
    max_retire_share: float, allow_retire: bool = False, dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """apply_inventory, the one way the command line and the portal import: in a
    transaction that is rolled back when `dry_run` (what an import would do: the caller
    asks needs_retire_confirmation of it), or when it would retire more than
    `max_retire_share` without `allow_retire` (raising RetireNotConfirmed, having stored
    nothing)."""
    with conn.transaction(force_rollback=dry_run):
        summary = apply_inventory(conn, inventory, files=files, progress=progress)
        if (not allow_retire and not dry_run
                and needs_retire_confirmation(summary, max_retire_share)):
            raise RetireNotConfirmed(summary, retired_share(summary), max_retire_share)
    return summary
