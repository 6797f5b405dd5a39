"""Poll targets: the store's active devices as the poller needs them.

A target joins a device's management address and SNMP port, its SNMP credential with the
secrets resolved (from the environment or an owner-only file, at the moment the targets are
built, never stored), and its inventory ports as declared (id, name, if_index or none): the
collection service matches them to the interfaces each poll finds, by if_index or by name as
operators write them (collectors.port_names), which turns an interface reading into a sample
of a port. Before the first poll, the declared if_index values are the map. A device whose
credential cannot be resolved is left out with a problem that says which variable or file is
missing; the other devices are polled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psycopg

from collectors.model import PollTarget, SnmpCredential
from config.inventory.model import SecretRef
from config.secrets import SecretError, resolve_secret


@dataclass(frozen=True)
class TargetProblem:
    device_key: str
    message: str

    def __str__(self) -> str:
        return f"device {self.device_key}: {self.message}"


def _credential(kind: str, params: Mapping[str, object],
                environ: Mapping[str, str] | None) -> SnmpCredential:
    refs = {name: SecretRef(ref["source"], ref["name"])
            for name, ref in dict(params.get("secrets") or {}).items()}

    def secret(name: str):
        return resolve_secret(refs[name], environ) if name in refs else None

    if kind in ("snmp_v1", "snmp_v2c"):
        return SnmpCredential(version=kind.removeprefix("snmp_"), community=secret("community"))
    return SnmpCredential(
        version="v3",
        username=str(params.get("username")),
        security_level=str(params.get("security_level", "authPriv")),
        auth_protocol=_text(params.get("auth_protocol")),
        auth_key=secret("auth_key"),
        priv_protocol=_text(params.get("priv_protocol")),
        priv_key=secret("priv_key"),
    )


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def load_poll_targets(
    conn: psycopg.Connection,
    *,
    environ: Mapping[str, str] | None = None,
    device_keys: Sequence[str] | None = None,
) -> tuple[list[PollTarget], list[TargetProblem]]:
    """Targets for the active devices (all, or those named), and the devices left out."""
    rows = conn.execute(
        """SELECT d.id, d.key, host(d.management_address), d.snmp_port, d.poller_group,
                  c.key, c.kind, c.params,
                  coalesce(jsonb_agg(jsonb_build_array(p.id, p.name, p.if_index)
                                     ORDER BY p.id) FILTER (WHERE p.id IS NOT NULL), '[]'),
                  d.platform
             FROM devices d
             JOIN credentials c ON c.id = d.snmp_credential_id
             LEFT JOIN ports p ON p.device_id = d.id AND p.retired_at IS NULL
            WHERE d.retired_at IS NULL
              AND (%(keys)s::text[] IS NULL OR d.key = ANY(%(keys)s))
            GROUP BY d.id, c.id
            ORDER BY d.key""",
        {"keys": list(device_keys) if device_keys is not None else None},
    ).fetchall()
    targets: list[PollTarget] = []
    problems: list[TargetProblem] = []
    found = set()
    for (device_id, key, host, port, group, credential_key, kind, params, ports,
         platform) in rows:
        found.add(key)
        try:
            credential = _credential(kind, params, environ)
        except SecretError as error:
            problems.append(TargetProblem(key, f"credential {credential_key}: {error}"))
            continue
        declared = tuple((int(port_id), str(name), None if if_index is None else int(if_index))
                         for port_id, name, if_index in ports)
        targets.append(PollTarget(
            device_id=device_id, device_key=key, host=host, port=port, credential=credential,
            poller_group=group,
            # until a poll matches the ports by name, the if_index the inventory gives
            ports_by_if_index={if_index: port_id for port_id, _, if_index in declared
                               if if_index is not None},
            ports=declared, platform=platform,
        ))
    for key in device_keys or ():
        if key not in found:
            problems.append(TargetProblem(key, "no such active device in the inventory"))
    return targets, problems
