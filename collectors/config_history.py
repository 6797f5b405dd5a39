"""Configuration history: fetch each device's running configuration, keep it as a version
when it changed, show what changed between two versions, and which changes precede a fault.

The Oxidized way, inside Keyline: on a schedule (the collection service's `config:{device}`
job) and on demand (`keyline config fetch`), the CLI source (collectors/cli.py
`fetch_running_config`) runs the profile's configuration command. The text is normalised
first, so a fetch of an unchanged device gives the same text: line ends, trailing blanks,
and the lines a platform rewrites at every look ("! Last configuration change at ...",
Junos' "## Last commit: ...", an XR timestamp) are dropped. Then every secret is masked by
the platform's rules (collectors/cli_profiles.py `mask_config`: a secret becomes
`<masked sha256:...>` of itself, so a changed password still shows as a changed line without
its value) BEFORE the text reaches the store, which keeps a version only when the text
differs from the device's latest (store/configs.py) and announces it ("config.changed").

`diff_configs` is a unified diff of two texts; `config_diff` the diff of a stored version
against the one before it (or any other). `what_changed` answers an alarm's "what changed?":
the configuration changes made on the devices of its impact path (its object's device, and
the devices on the paths of the circuits it impacts) in the hour before it was raised.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Protocol

from store import configs as config_store
from store.configs import ConfigChange, ConfigStoreError, ConfigVersion

log = logging.getLogger(__name__)

# How long before an alarm was raised a configuration change is shown as a suspect.
WHAT_CHANGED_WINDOW = timedelta(hours=1)
DIFF_CONTEXT_LINES = 3
OK = "ok"
STORE_REFUSED = "store-refused"
EMPTY = "empty-configuration"

# Lines a platform rewrites at every look, which are no change of configuration (by
# platform; "*" for every one). Anchored on whole lines of the normalised text.
VOLATILE_LINES: Mapping[str, tuple[str, ...]] = {
    "*": (),
    "cisco_ios": (r"Building configuration\.\.\.", r"Current configuration ?: ?\d+ bytes",
                  r"! Last configuration change at .*", r"! NVRAM config last updated at .*",
                  r"! No configuration change since last restart.*",
                  r"ntp clock-period \d+"),
    "cisco_xr": (r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov"
                 r"|Dec) +\d+ \d\d:\d\d:\d\d(\.\d+)? \S+", r"Building configuration\.\.\.",
                 r"!! Last configuration change at .*"),
    "huawei_vrp": (r"!Last configuration was (updated|saved) at .*",),
    "hp_comware": (),
    "juniper_junos": (r"## Last commit: .*", r"## Last changed: .*"),
}


class ConfigHistoryError(Exception):
    """A device, version or time the history does not have."""


class Pool(Protocol):
    def connection(self) -> Any: ...


@dataclass(frozen=True)
class FetchOutcome:
    """What one fetch came to: `status` "ok" or why not (a CLI status such as
    "auth-failed" or "no-profile", "store-refused"), with the reason in words; for "ok"
    the version in force, whether it is new and the one it replaced."""

    device_id: int
    device_key: str
    status: str
    reason: str | None = None
    version: int | None = None
    changed: bool = False
    previous_version: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK


@dataclass(frozen=True)
class ConfigDiff:
    """Version `new` against `old` (None: against nothing, for a first version)."""

    old: ConfigVersion | None
    new: ConfigVersion
    lines: list[str]


def utc_now() -> datetime:
    return datetime.now(UTC)


def normalize_config(platform: str, text: str) -> str:
    """The text as stored: "\\n" line ends, no trailing blanks, no blank lines at either
    end, the platform's volatile lines (VOLATILE_LINES) dropped, one final newline."""
    patterns = _volatile(platform)
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n")
             .split("\n")]
    kept = [line for line in lines if not any(p.fullmatch(line) for p in patterns)]
    while kept and not kept[0]:
        kept.pop(0)
    while kept and not kept[-1]:
        kept.pop()
    return "\n".join(kept) + "\n" if kept else ""


@cache
def _volatile(platform: str) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p) for p in (*VOLATILE_LINES["*"], *VOLATILE_LINES.get(platform, ())))


def diff_configs(old: str, new: str, *, old_label: str = "", new_label: str = "",
                 context_lines: int = DIFF_CONTEXT_LINES) -> list[str]:
    """The unified diff from `old` to `new`, one line per item, without line ends; empty
    when the texts are equal."""
    return list(difflib.unified_diff(old.splitlines(), new.splitlines(), old_label,
                                     new_label, n=context_lines, lineterm=""))


def version_label(version: ConfigVersion | None) -> str:
    """How a diff names a version: "pe-sh1 v3 (2026-12-07 03:00:00 UTC)"."""
    if version is None:
        return "(nothing)"
    at = version.fetched_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{version.device_key} v{version.version} ({at})"


def config_diff(conn: Any, device_id: int, *, version: int | None = None,
                at: datetime | None = None, against: int | None = None) -> ConfigDiff:
    """The diff of one stored version (`version`; else the one in force at `at`; else the
    latest) against `against` (default: the version before it; nothing for version 1).
    ConfigHistoryError when there is no such version."""
    if version is not None:
        new = config_store.get_version(conn, device_id, version)
        if new is None:
            raise ConfigHistoryError(f"no configuration version {version}")
    else:
        new = config_store.config_at(conn, device_id, at)
        if new is None:
            raise ConfigHistoryError(
                "no configuration fetched" + (f" by {at.isoformat()}" if at else ""))
    before = new.version - 1 if against is None else against
    old = None
    if before >= 1:
        old = config_store.get_version(conn, device_id, before)
        if old is None:
            raise ConfigHistoryError(f"no configuration version {before}")
    lines = diff_configs(old.text or "" if old else "", new.text or "",
                         old_label=version_label(old), new_label=version_label(new))
    return ConfigDiff(old, new, lines)


# --- fetching ------------------------------------------------------------------------------


def fetch_and_record(sessions: Any, target: Any, profile: Any, pool: Pool, *,
                     by: str = "schedule", clock: Any = utc_now) -> FetchOutcome:
    """Fetch `target`'s running configuration through the CLI source (collectors.cli
    `fetch_running_config`, which masks it), and record it (a new version only if it
    changed; its "config.changed" event in the same transaction), with the attempt's
    outcome. Never raises for a device's failure: the outcome says it (and the attempt is
    recorded), so one device never stops the others."""
    from collectors.cli import fetch_running_config

    at = clock()
    with pool.connection() as conn:
        key = config_store.mask_key(conn)
    run, masked = fetch_running_config(sessions, target, profile, mask_key=key)
    if not run.ok or masked is None:
        outcome = FetchOutcome(target.device_id, target.device_key, str(run.status),
                               run.reason)
        _record_attempt(pool, outcome, at)
        return outcome
    return record_fetched(pool, target.device_id, target.device_key, target.platform or "",
                          masked, at=at, by=by, key=key)


def mask(platform: str, text: str, key: bytes | None) -> str:
    """The text with its secrets masked by the platform's rules, fingerprinted with the
    installation's masking key (collectors.cli_profiles.mask_config)."""
    from collectors.cli_profiles import mask_config

    return mask_config(platform, text, key=key)


def record_fetched(pool: Pool, device_id: int, device_key: str, platform: str, text: str, *,
                   at: datetime, by: str = "schedule", key: bytes | None = None) -> FetchOutcome:
    """Normalise and mask a fetched configuration text (masked again: the store must never
    see a secret, whoever fetched the text; masking twice changes nothing), store it as a
    version if it changed, and record the attempt: one transaction. A text the store
    refuses (a NUL byte, too large) is an outcome "store-refused", an empty one
    "empty-configuration": nothing of them stored."""
    if key is None:
        with pool.connection() as conn:
            key = config_store.mask_key(conn)
    stored = mask(platform, normalize_config(platform, text), key)
    if not stored:  # an answer with no configuration in it is no version of one
        outcome = FetchOutcome(device_id, device_key, EMPTY,
                               "the device answered the configuration command with nothing")
        _record_attempt(pool, outcome, at)
        return outcome
    try:
        with pool.connection() as conn, conn.transaction():
            version, changed = config_store.record_config(conn, device_id, stored, at=at,
                                                          by=by)
            config_store.record_fetch(conn, device_id, at=at, status=OK,
                                      version=version.version)
    except ConfigStoreError as refused:
        outcome = FetchOutcome(device_id, device_key, STORE_REFUSED, str(refused))
        _record_attempt(pool, outcome, at)
        return outcome
    if changed and version.version == 1:
        log.info("configuration of %s kept for the first time: version 1", device_key)
    elif changed:
        log.info("configuration of %s changed: version %d", device_key, version.version)
    return FetchOutcome(device_id, device_key, OK, None, version.version, changed,
                        version.version - 1 if changed and version.version > 1 else None)


def _record_attempt(pool: Pool, outcome: FetchOutcome, at: datetime) -> None:
    with pool.connection() as conn:
        config_store.record_fetch(conn, outcome.device_id, at=at, status=outcome.status,
                                  reason=outcome.reason, version=outcome.version)


# --- what changed before a fault -------------------------------------------------------------


def impact_path_devices(conn: Any, alarm: Any,
                        paths: Mapping[int, Any] | None = None) -> set[int]:
    """The devices of an alarm's impact path: its object's device(s), and the devices on the
    paths of the circuits it impacts (the alarmed circuit's too): their ends and declared
    hops from the store, and the hops of `paths` (topology.paths.CircuitPath by circuit
    id: the nominal paths, every link up, where the change that broke a circuit was made)."""
    object_id = alarm.key.object_id
    circuits = {object_id, *alarm.impacted_circuits}
    devices = config_store.path_devices(conn, object_id, alarm.impacted_circuits)
    for circuit_id in circuits:
        path = (paths or {}).get(circuit_id)
        if path is not None:
            devices.update(hop.device_id for hop in path.hops)
    return devices


def nominal_paths(conn: Any, topology: Any = None, *,
                  alarm: Any = None) -> Mapping[int, Any]:
    """The circuits' paths with every link up (topology.paths.compute_paths ignoring
    status): where a change that broke a circuit was made, even once the circuit was
    rerouted around the fault. Every circuit's, or only those of `alarm` (its object and
    the circuits it impacts: an alarm page must not route the whole network). Of `topology`
    (topology.current.Topology), else of the network as the store has it now."""
    from topology.current import load_topology
    from topology.paths import compute_paths

    topology = topology if topology is not None else load_topology(conn)
    circuit_ids = (None if alarm is None
                   else {alarm.key.object_id, *alarm.impacted_circuits})
    return compute_paths(topology.graph, topology.snapshot, ignore_status=True,
                         circuit_ids=circuit_ids)


def what_changed(conn: Any, alarm: Any, *, paths: Mapping[int, Any] | None = None,
                 window: timedelta = WHAT_CHANGED_WINDOW) -> list[ConfigChange]:
    """The configuration changes on the devices of the alarm's impact path that may have
    been made in `window` before it was raised (store.configs.config_changes). Staff-only
    knowledge: the callers show it to the operator's roles alone."""
    devices = impact_path_devices(conn, alarm, paths)
    raised = alarm.first_seen
    return config_store.config_changes(conn, devices, raised - window, raised)

