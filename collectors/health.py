"""Device health from SNMP, read through health profiles: CPU, memory, temperature, fans, power
supplies and per-port optical power.

A *health profile* says, for one family of devices, which SNMP table columns hold its health
and how a cell becomes a number: the unit and scale, the values that mean "nothing here"
(sentinels), which rows count, how a row is named, and how it is tied to a port. Profiles
are data, one YAML file each in collectors/profiles/ (the LibreNMS and NOC Project way):
supporting a vendor means adding a file, not code, and each vendor's quirks are written down
where they are used (Huawei's hwEntityOpticalRxPower is microwatts on VRP 5 and hundredths
of a dBm on VRP 8, so that profile reads the lane columns, text in 0.01 dBm on both). A
device gets the profile whose sysObjectID prefix is the longest match of its sysObjectID
(1.3.6.1.4.1.2011 is Huawei, .9 Cisco...), else the profile that lists its inventory
platform, else `generic` (standard MIBs only). IOS, IOS-XE and IOS-XR share Cisco's prefix,
so `cisco_ios` reads all three (both memory-pool MIBs, the enhanced one winning).

What a reading gives, per device: `cpu_pct` (%, 0-100) is the average of the CPUs the device
lists, each as the vendor averages it (Cisco: cpmCPUTotal5minRev, the 5-minute average, with
the 5-second and 1-minute figures kept beside it); where a profile marks the main route
processor (`main`: Junos "Routing Engine" rows) the figure is the average of those rows
only, not of the line cards. `mem_pct` (%) is used / (used + free) summed over the processor
memory pools where the device counts bytes (Cisco, HOST-RESOURCES RAM, SR OS), else the
average of the per-board percentages it reports (Huawei, H3C, Junos). `temperature_c` (°C)
is the hottest chassis sensor; every sensor is kept with its entity index and name, and
transceiver sensors that belong to a port keep their ifIndex but do not count for the device
figure (optics run hotter and have limits of their own). Fans and power supplies are each
`ok`, `failed`, `absent` or `unknown`, with the raw value kept; the samples count the failed
ones (`fan_failed_count`, `psu_failed_count`), and only for devices that report any. Per
port: `optical_rx_dbm` and `optical_tx_dbm` (dBm; milliwatt, microwatt and watt readings are
converted, 10·log10(mW); a multi-lane module's figure is its weakest lane, the lanes kept).

Never a fake reading. A cell that is missing, NULL, a profile's sentinel (Huawei 0 on boards
without the feature, optics at or below -40 dBm, Juniper DOM 0, Cisco -32768, H3C 65535 and
2147483647, SR OS -128...) or filtered out by the profile gives no value; a cell that cannot
be read (text where a number belongs, a percentage over 100...) gives no value and a line in
`problems`, and the rest of the reading stands. Per-port values name the interface: a row
indexed by ifIndex (H3C transceivers, JUNIPER-DOM, SR OS DDM, MikroTik) is that port; a row
indexed by entPhysicalIndex is tied to a port through ENTITY-MIB, from the entity up through
entPhysicalContainedIn to its port: entAliasMappingIdentifier first, else an
entPhysicalName or entPhysicalDescr equal to the interface's ifName or ifDescr. Optics that
no interface claims (a module in a port the ifTable does not list) are kept without ifIndex
and give no sample.

`poll_health` walks a profile's columns in one GETBULK walk with the existing poller and
never raises for what a device does: like `WalkResult`, the reading has a status and a
reason. `parse_health` is the same mapping on rows already walked, and `health_samples`
turns a reading into `Sample`s.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from collectors.model import InterfaceLabel, PollStatus, PollTarget, Sample
from collectors.snmp import SnmpPoller
from collectors.snmp_fast import SnmpException

__all__ = [
    "DEVICE_METRICS", "PORT_METRICS", "PROFILES_DIR", "ComponentState", "HealthProfile",
    "HealthReading", "MemoryPool", "PortOptics", "ProfileError", "SensorReading",
    "choose_profile", "health_samples", "interface_names_from_labels",
    "interface_names_from_rows", "load_profiles",
    "parse_health", "poll_health", "read_sys_object_id",
]

Oid = tuple[int, ...]
InterfaceNames = Mapping[int, tuple[str | None, str | None]]  # ifIndex -> (ifName, ifDescr)

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
GENERIC = "generic"

SYS_OBJECT_ID: Oid = (1, 3, 6, 1, 2, 1, 1, 2)  # walked as a column: the row (0,)
IF_INDEX: Oid = (1, 3, 6, 1, 2, 1, 2, 2, 1, 1)
IF_DESCR: Oid = (1, 3, 6, 1, 2, 1, 2, 2, 1, 2)
IF_NAME: Oid = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1)
ENT_PHYSICAL_DESCR: Oid = (1, 3, 6, 1, 2, 1, 47, 1, 1, 1, 1, 2)
ENT_PHYSICAL_CONTAINED_IN: Oid = (1, 3, 6, 1, 2, 1, 47, 1, 1, 1, 1, 4)
ENT_PHYSICAL_CLASS: Oid = (1, 3, 6, 1, 2, 1, 47, 1, 1, 1, 1, 5)
ENT_PHYSICAL_NAME: Oid = (1, 3, 6, 1, 2, 1, 47, 1, 1, 1, 1, 7)
ENT_ALIAS_MAPPING_IDENTIFIER: Oid = (1, 3, 6, 1, 2, 1, 47, 1, 3, 2, 1, 2)
ENTITY_COLUMNS = (ENT_PHYSICAL_DESCR, ENT_PHYSICAL_CONTAINED_IN, ENT_PHYSICAL_CLASS,
                  ENT_PHYSICAL_NAME, ENT_ALIAS_MAPPING_IDENTIFIER)

# ENTITY-MIB PhysicalClass
ENTITY_CLASSES = {"other": 1, "unknown": 2, "chassis": 3, "backplane": 4, "container": 5,
                  "powerSupply": 6, "fan": 7, "sensor": 8, "module": 9, "port": 10, "stack": 11,
                  "cpu": 12}
EntityClass = Literal["other", "unknown", "chassis", "backplane", "container", "powerSupply",
                      "fan", "sensor", "module", "port", "stack", "cpu"]
# ENTITY-SENSOR-MIB EntitySensorDataType (and CISCO-ENTITY-SENSOR-MIB's dBm, 14): the kinds
# a profile may ask for
SENSOR_TYPES = {8: "celsius", 14: "dbm", 6: "watts"}
SensorType = Literal["celsius", "dbm", "watts"]
SENSOR_STATUS_OK = 1  # entPhySensorOperStatus / entSensorStatus ok(1)
# climbing from an entity towards its port stops after this many levels, and at these classes
MAX_ENTITY_CLIMB = 4
_STOP_CLASSES = {ENTITY_CLASSES["chassis"], ENTITY_CLASSES["stack"], ENTITY_CLASSES["port"]}

Metric = Literal["cpu", "memory", "temperature", "fan", "psu", "optical_rx", "optical_tx"]
State = Literal["ok", "failed", "absent", "unknown"]
Unit = Literal["percent", "celsius", "dbm", "milliwatts", "microwatts", "watts"]
_OPTICAL_UNITS = {"dbm", "milliwatts", "microwatts", "watts"}
# what the metric's figures are in, and the readings that cannot be true (a problem, not a value)
_METRIC_UNIT = {"cpu": "percent", "memory": "percent", "temperature": "celsius",
                "optical_rx": "dbm", "optical_tx": "dbm"}
_PLAUSIBLE = {"percent": (0.0, 100.0), "celsius": (-60.0, 200.0), "dbm": (-60.0, 40.0)}
_DEFAULT_LABELS = {"cpu": "CPU", "memory": "memory", "temperature": "sensor", "fan": "fan",
                   "psu": "power supply", "optical_rx": "optics", "optical_tx": "optics"}

# sample metric names
CPU_PCT, MEM_PCT, TEMPERATURE_C = "cpu_pct", "mem_pct", "temperature_c"
FAN_FAILED_COUNT, PSU_FAILED_COUNT = "fan_failed_count", "psu_failed_count"
OPTICAL_RX_DBM, OPTICAL_TX_DBM = "optical_rx_dbm", "optical_tx_dbm"
DEVICE_METRICS = (CPU_PCT, MEM_PCT, TEMPERATURE_C, FAN_FAILED_COUNT, PSU_FAILED_COUNT)
PORT_METRICS = (OPTICAL_RX_DBM, OPTICAL_TX_DBM)


# --- profiles ------------------------------------------------------------------------------


def _parse_oid(value: object) -> Oid:
    if isinstance(value, tuple) and value and all(isinstance(part, int) for part in value):
        return value
    if not isinstance(value, str):
        raise ValueError(f"an OID is dotted text such as 1.3.6.1.2.1.1.2, not "
                         f"{type(value).__name__} {value!r} (quote it in YAML)")
    parts = value.strip().lstrip(".").split(".")
    if len(parts) < 2 or not all(part.isdigit() for part in parts):
        raise ValueError(f"not a numeric OID: {value!r}")
    return tuple(int(part) for part in parts)


OidField = Annotated[tuple[int, ...], BeforeValidator(_parse_oid)]


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, Mapping) else value


def _check_regex(pattern: str | None) -> str | None:
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"not a valid regular expression: {error}") from None
    return pattern


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ValueSpec(_Spec):
    """One column read as a number. `encoding`: `integer` (raw x `scale`), `decimal_text`
    (text such as "-270.19", comma-separated per lane, x `scale`) or `entity_sensor`
    (ENTITY-SENSOR-MIB style: the unit from `sensor_type`, raw x 10^(3·(scale-9)) /
    10^precision). `absent`: raw values that mean "no value"; `above` / `below`: a value not
    strictly between them (in the metric's unit, after conversion) is "no value" too."""

    column: OidField
    encoding: Literal["integer", "decimal_text", "entity_sensor"] = "integer"
    unit: Unit | None = None
    scale: float = 1.0
    absent: tuple[int | str, ...] = ()
    above: float | None = None
    below: float | None = None
    sensor_type: OidField | None = None
    sensor_scale: OidField | None = None
    sensor_precision: OidField | None = None
    sensor_status: OidField | None = None
    sensor_types: tuple[SensorType, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> ValueSpec:
        sensor_fields = (self.sensor_type, self.sensor_scale, self.sensor_precision,
                         self.sensor_status)
        if self.encoding == "entity_sensor":
            if self.sensor_type is None or not self.sensor_types:
                raise ValueError("an entity_sensor value needs sensor_type and sensor_types")
            if self.unit is not None:
                raise ValueError("an entity_sensor value takes its unit from sensor_type: "
                                 "leave unit out")
        elif any(f is not None for f in sensor_fields) or self.sensor_types:
            raise ValueError("sensor_* fields belong to entity_sensor values only")
        if self.scale == 0 or not math.isfinite(self.scale):
            raise ValueError("scale must be a finite number other than 0")
        return self

    def columns(self) -> set[Oid]:
        return {c for c in (self.column, self.sensor_type, self.sensor_scale,
                            self.sensor_precision, self.sensor_status) if c is not None}

    def units(self) -> set[str]:
        return set(self.sensor_types) if self.encoding == "entity_sensor" else {self.unit or ""}


ValueSpecs = Annotated[tuple[ValueSpec, ...], BeforeValidator(_one_or_many)]


class RowFilter(_Spec):
    """One condition on a row: a column's value `in` / `not_in` a list or `matches` a regular
    expression (searched in its text); or the row's entity has an `entity_class`; or its
    entity's entPhysicalName or entPhysicalDescr `entity_matches`. A missing cell fails `in`
    and `matches` and passes `not_in`."""

    column: OidField | None = None
    in_: tuple[int | str, ...] | None = Field(default=None, alias="in")
    not_in: tuple[int | str, ...] | None = None
    matches: str | None = None
    entity_class: tuple[EntityClass, ...] | None = None
    entity_matches: str | None = None

    _regexes = field_validator("matches", "entity_matches")(_check_regex)

    @model_validator(mode="after")
    def _one_condition(self) -> RowFilter:
        kinds = [self.column is not None, self.entity_class is not None,
                 self.entity_matches is not None]
        if sum(kinds) != 1:
            raise ValueError("a condition has exactly one of column, entity_class, "
                             "entity_matches")
        tests = [self.in_ is not None, self.not_in is not None, self.matches is not None]
        if self.column is not None and sum(tests) != 1:
            raise ValueError("a column condition has exactly one of in, not_in, matches")
        if self.column is None and any(tests):
            raise ValueError("in, not_in and matches go with column")
        return self


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_WORDS = {"entity", "port", "index", "label"}


def _template_columns(template: str) -> set[Oid]:
    columns = set()
    for word in _PLACEHOLDER.findall(template):
        if word not in _WORDS:
            columns.add(_parse_oid(word))
    return columns


class Source(_Spec):
    """One table (or scalar) a profile reads for one metric; see the profiles' files.

    `index`: what the row index is: `entity` (an entPhysicalIndex), `if_index` or `plain`;
    `index_part` picks one part of a multi-part index. `entity_column`: a column whose value
    is the row's entPhysicalIndex (0 for none). `name`: templates tried in order, the first
    whose placeholders ({entity}, {port}, {index}, {label}, {<column OID>}) all have text
    wins. `where`: conditions every counted row meets. `unless`: ids of earlier sources; this
    one is skipped when any of them gave a value. `main` (cpu, memory): rows whose name
    matches are the route processor: when any does, the device figure is theirs alone."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    metric: Metric
    mib: str
    index: Literal["plain", "entity", "if_index"] = "plain"
    index_part: int | None = None
    entity_column: OidField | None = None
    label: str | None = None
    name: tuple[str, ...] = ()
    value: ValueSpecs = ()
    extras: dict[str, ValueSpec] = Field(default_factory=dict)
    used: ValueSpecs = ()
    free: ValueSpecs = ()
    total: ValueSpecs = ()
    allocation_units: OidField | None = None  # memory: a column of bytes per unit
    states: dict[int, State] = Field(default_factory=dict)
    absent_when: tuple[RowFilter, ...] = ()
    where: tuple[RowFilter, ...] = ()
    unless: tuple[str, ...] = ()
    main: str | None = None

    _main_regex = field_validator("main")(_check_regex)

    @field_validator("name")
    @classmethod
    def _templates(cls, templates: tuple[str, ...]) -> tuple[str, ...]:
        for template in templates:
            _template_columns(template)  # raises on a placeholder that is neither word nor OID
        return templates

    @model_validator(mode="after")
    def _fits_metric(self) -> Source:
        metric = self.metric
        if self.index_part is not None and self.index == "plain":
            raise ValueError("index_part needs index: entity or if_index")
        if self.entity_column is not None and self.index != "plain":
            raise ValueError("entity_column is for plain-indexed rows (the index is not an "
                             "entity)")
        if self.main is not None and metric not in ("cpu", "memory"):
            raise ValueError("main is for cpu and memory sources")
        if self.extras and metric != "cpu":
            raise ValueError("extras are for cpu sources")
        if (self.states or self.absent_when) and metric not in ("fan", "psu"):
            raise ValueError("states and absent_when are for fan and psu sources")
        byte_fields = bool(self.used or self.free or self.total
                           or self.allocation_units is not None)
        if metric == "memory":
            percent_form = bool(self.value) and not byte_fields
            bytes_form = (not self.value and bool(self.used)
                          and bool(self.free) != bool(self.total))
            if not (percent_form or bytes_form):
                raise ValueError("a memory source has either value (percent) or used with "
                                 "exactly one of free and total")
        elif byte_fields:
            raise ValueError("used, free, total and allocation_units are for memory sources")
        elif not self.value:
            raise ValueError("value is required")
        if metric in ("fan", "psu"):
            if not self.states or len(self.value) != 1:
                raise ValueError("a fan or psu source maps the raw values of one column to "
                                 "states")
            if any(spec.encoding != "integer" or spec.unit is not None for spec in self.value):
                raise ValueError("a state value is a plain integer (no unit)")
            return self
        allowed = _OPTICAL_UNITS if metric.startswith("optical") else {_METRIC_UNIT[metric]}
        if metric == "memory":
            specs: tuple[ValueSpec, ...] = self.value
            for spec in self.used + self.free + self.total:
                if spec.encoding != "integer" or spec.unit is not None:
                    raise ValueError("used, free and total are plain integers (bytes: "
                                     "raw x scale x allocation units), without unit")
        else:
            specs = self.value + tuple(self.extras.values())
        for spec in specs:
            units = spec.units()
            if not units <= allowed:
                raise ValueError(f"a {metric} value must be in {', '.join(sorted(allowed))}, "
                                 f"not {', '.join(sorted(u or '(no unit)' for u in units))}")
        return self

    def columns(self) -> set[Oid]:
        columns: set[Oid] = set()
        for spec in self.value + self.used + self.free + self.total + tuple(
                self.extras.values()):
            columns |= spec.columns()
        for condition in self.where + self.absent_when:
            if condition.column is not None:
                columns.add(condition.column)
        for template in self.name:
            columns |= _template_columns(template)
        columns |= {c for c in (self.entity_column, self.allocation_units) if c is not None}
        return columns

    @property
    def uses_entities(self) -> bool:
        return (self.index == "entity" or self.entity_column is not None
                or any(c.entity_class or c.entity_matches for c in self.where + self.absent_when)
                or any("{entity}" in template for template in self.name))


class Match(_Spec):
    """How a device is given this profile: sysObjectID prefixes (the longest matching prefix
    of all profiles wins), then inventory platforms."""

    sys_object_ids: tuple[OidField, ...] = ()
    platforms: tuple[str, ...] = ()


class HealthProfile(_Spec):
    """One profile file: name, title, match and sources (see the module docstring)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    match: Match = Match()
    sources: tuple[Source, ...]
    file: str | None = None  # where it was loaded from (set by load_profiles)

    @model_validator(mode="after")
    def _references(self) -> HealthProfile:
        if not self.sources:
            raise ValueError("a profile has at least one source")
        seen: set[str] = set()
        for source in self.sources:
            if source.id in seen:
                raise ValueError(f"two sources with id {source.id!r}")
            for other in source.unless:
                if other not in seen:
                    raise ValueError(f"source {source.id!r}: unless names {other!r}, which is "
                                     "not an earlier source")
            seen.add(source.id)
        return self

    @property
    def uses_entities(self) -> bool:
        """Whether reading it needs ENTITY-MIB (names, classes, entity-to-port mapping)."""
        return any(source.uses_entities for source in self.sources)

    @property
    def uses_ports(self) -> bool:
        """Whether its rows are tied to ports (then interface names are needed)."""
        return any(source.index != "plain" or source.entity_column is not None
                   or "{port}" in "".join(source.name) for source in self.sources)

    def columns(self, *, interface_names: bool = False) -> list[Oid]:
        """Every column to walk, sorted: the sources', ENTITY-MIB's when needed, and ifName
        and ifDescr when `interface_names` (the caller has none at hand)."""
        columns: set[Oid] = set()
        for source in self.sources:
            columns |= source.columns()
        if self.uses_entities:
            columns |= set(ENTITY_COLUMNS)
        if interface_names and self.uses_ports:
            columns |= {IF_DESCR, IF_NAME}
        return sorted(columns)


class ProfileError(ValueError):
    """Profile files that cannot be used; `problems` has one line each, naming the file, the
    line when known and the field."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("health profiles have problems:\n" + "\n".join(self.problems))


def _line_of(root: object, location: Sequence[int | str]) -> int | None:
    """The 1-based line of the deepest YAML node along a pydantic error location."""
    node, line = root, None
    for part in location:
        try:
            if isinstance(node, CommentedMap) and part in node:
                line = node.lc.key(part)[0] + 1
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
                line = node.lc.item(part)[0] + 1
                node = node[part]
            elif isinstance(node, CommentedMap | CommentedSeq):
                continue  # a pydantic-internal step (union member, validator name)
            else:
                break
        except (AttributeError, KeyError, IndexError, TypeError):
            break
    return line


def _field_path(location: Sequence[int | str], root: object) -> str:
    """The field as written in the file: `sources[2].value.column`. Steps pydantic adds
    (a single mapping read as a one-item list, union members) are left out."""
    path = ""
    node: object = root
    for part in location:
        if isinstance(part, int) and ((isinstance(node, Sequence) and not isinstance(
                node, str)) or (isinstance(node, Mapping) and part in node)):
            path += f"[{part}]"
        elif isinstance(part, str) and (isinstance(node, Mapping) or node is None):
            path += ("." if path else "") + part
        else:
            continue
        try:
            node = node[part] if node is not None else None  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            node = None
    return path or "(file)"


def load_profile(path: Path) -> HealthProfile:
    """Read and validate one profile file (raises ProfileError)."""
    file = str(path)
    try:
        root = YAML(typ="rt").load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ProfileError([f"{file}: cannot read the file ({error.strerror})"]) from None
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ProfileError([f"{file}{line}: YAML syntax error: {error.problem}"]) from None
    except (YAMLError, UnicodeDecodeError, ValueError) as error:
        raise ProfileError([f"{file}: not readable YAML ({type(error).__name__})"]) from None
    if not isinstance(root, Mapping):
        raise ProfileError([f"{file}: a profile is a mapping (name, title, match, sources)"])
    try:
        # the `cli` section is the CLI's part of the profile (collectors.cli_profiles reads it)
        profile = HealthProfile.model_validate({k: v for k, v in root.items() if k != "cli"})
    except ValidationError as error:
        problems = []
        for detail in error.errors():
            location = detail["loc"]
            line = _line_of(root, location)
            where = f"{file}:{line}" if line else file
            message = detail["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {_field_path(location, root)}: {message}")
        raise ProfileError(problems) from None
    if path.stem != profile.name:
        raise ProfileError([f"{file}: name: {profile.name!r} differs from the file name "
                            f"{path.stem!r}"])
    return profile.model_copy(update={"file": file})


def load_profiles(directory: str | Path | None = None) -> list[HealthProfile]:
    """Every `*.yaml` profile of `directory` (default: collectors/profiles), validated and
    sorted by name. Raises ProfileError listing every problem of every file; among them, two
    profiles claiming one sysObjectID prefix or one platform, and a missing `generic`."""
    folder = Path(directory) if directory is not None else PROFILES_DIR
    problems: list[str] = []
    profiles: list[HealthProfile] = []
    files = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
    if not files:
        raise ProfileError([f"{folder}: no *.yaml health profiles"])
    for path in files:
        try:
            profiles.append(load_profile(path))
        except ProfileError as error:
            problems.extend(error.problems)
    claims: dict[object, str] = {}
    for profile in profiles:
        keys: list[object] = [("name", profile.name)]
        keys += [("sysObjectID prefix", _oid_text(prefix))
                 for prefix in profile.match.sys_object_ids]
        keys += [("platform", p.lower()) for p in profile.match.platforms]
        for key in keys:
            if key in claims:
                problems.append(f"{profile.file}: {key[0]} {key[1]!r} is claimed by "
                                f"{claims[key]} too")
            claims[key] = str(profile.file)
    if not problems and not any(profile.name == GENERIC for profile in profiles):
        problems.append(f"{folder}: no {GENERIC}.yaml, the profile of devices nobody claims")
    if problems:
        raise ProfileError(problems)
    return sorted(profiles, key=lambda profile: profile.name)


def choose_profile(profiles: Iterable[HealthProfile], sys_object_id: Sequence[int] | None,
                   platform: str | None) -> HealthProfile:
    """The profile for a device: the longest sysObjectID prefix that matches, else the one
    listing `platform` (case-insensitive), else `generic`."""
    profiles = list(profiles)
    if sys_object_id:
        oid = tuple(sys_object_id)
        best: tuple[int, HealthProfile] | None = None
        for profile in profiles:
            for prefix in profile.match.sys_object_ids:
                if oid[:len(prefix)] == prefix and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), profile)
        if best is not None:
            return best[1]
    if platform:
        wanted = platform.strip().lower()
        for profile in profiles:
            if wanted in (p.lower() for p in profile.match.platforms):
                return profile
    for profile in profiles:
        if profile.name == GENERIC:
            return profile
    raise ValueError(f"no {GENERIC!r} profile among the profiles given")


# --- readings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SensorReading:
    """One CPU or temperature sensor: its row (`index`, dotted), entity and port when known."""

    source: str
    index: str
    name: str
    value: float  # % for a CPU, °C for a temperature
    entity_index: int | None = None
    if_index: int | None = None  # a transceiver's sensor: the port it belongs to
    extra: Mapping[str, float] = field(default_factory=dict)  # cpu: pct_5s, pct_1min...
    main: bool = False  # the vendor's route processor (a profile's `main`)


@dataclass(frozen=True)
class MemoryPool:
    """One memory pool (Cisco), storage area (HOST-RESOURCES) or board (a percentage)."""

    source: str
    index: str
    name: str
    used_pct: float
    used_bytes: float | None = None  # None where the device reports a percentage only
    total_bytes: float | None = None
    entity_index: int | None = None
    main: bool = False


@dataclass(frozen=True)
class ComponentState:
    """A fan or a power supply: normalised state and the raw value it came from."""

    source: str
    index: str
    name: str
    state: State
    raw: int | None
    entity_index: int | None = None


@dataclass(frozen=True)
class PortOptics:
    """A port's transceiver power; `if_index` None when no interface could be matched."""

    if_index: int | None
    name: str
    rx_dbm: float | None = None
    tx_dbm: float | None = None
    rx_lanes_dbm: tuple[float, ...] = ()  # multi-lane modules only
    tx_lanes_dbm: tuple[float, ...] = ()
    entity_index: int | None = None


@dataclass(frozen=True)
class HealthReading:
    """What one health poll of one device gave (see the module docstring). Like
    `WalkResult`: a status and, for every status but reachable, a reason; the figures are
    None and the lists empty then."""

    profile: str
    status: PollStatus
    reason: str | None = None
    cpu_pct: float | None = None
    mem_pct: float | None = None
    temperature_c: float | None = None
    cpus: tuple[SensorReading, ...] = ()
    memory_pools: tuple[MemoryPool, ...] = ()
    temperatures: tuple[SensorReading, ...] = ()
    fans: tuple[ComponentState, ...] = ()
    psus: tuple[ComponentState, ...] = ()
    optics: tuple[PortOptics, ...] = ()
    problems: tuple[str, ...] = ()
    started_at: datetime | None = None
    duration_s: float = 0.0
    varbind_count: int = 0

    @property
    def fan_failed_count(self) -> int | None:
        return sum(f.state == "failed" for f in self.fans) if self.fans else None

    @property
    def psu_failed_count(self) -> int | None:
        return sum(p.state == "failed" for p in self.psus) if self.psus else None

    @property
    def is_empty(self) -> bool:
        """No health data at all (a device without the profile's tables)."""
        return not (self.cpus or self.memory_pools or self.temperatures or self.fans
                    or self.psus or self.optics)

    def optics_by_if_index(self) -> dict[int, PortOptics]:
        return {o.if_index: o for o in self.optics if o.if_index is not None}


# --- parsing -------------------------------------------------------------------------------


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").replace("\x00", "").strip()
    if isinstance(value, tuple):
        return ".".join(map(str, value))
    if value is None or isinstance(value, SnmpException):
        return ""
    return str(value).strip()


def _same(value: object, candidates: Iterable[int | str]) -> bool:
    text = _text(value)
    return any(text == _text(candidate) for candidate in candidates)


def interface_names_from_rows(rows: Mapping[Oid, Mapping[Oid, Any]]) -> dict[int, tuple[
        str | None, str | None]]:
    """ifIndex -> (ifName, ifDescr) from walked IF-MIB columns (rows as `WalkResult.rows`)."""
    names: dict[int, tuple[str | None, str | None]] = {}
    for column, position in ((IF_NAME, 0), (IF_DESCR, 1)):
        for index, value in rows.get(column, {}).items():
            if len(index) == 1 and isinstance(value, bytes):
                pair = list(names.get(index[0], (None, None)))
                pair[position] = _text(value) or None
                names[index[0]] = (pair[0], pair[1])
    return names


def interface_names_from_labels(labels: Mapping[int, InterfaceLabel]) -> dict[int, tuple[
        str | None, str | None]]:
    """ifIndex -> (ifName, ifDescr) from an interface poll's `PollResult.interface_labels`."""
    return {if_index: (label.if_name, label.if_descr) for if_index, label in labels.items()}


class _Entities:
    """ENTITY-MIB as walked, and the way from an entity to the port it belongs to."""

    def __init__(self, rows: Mapping[Oid, Mapping[Oid, Any]], interfaces: InterfaceNames) -> None:
        def column(oid: Oid) -> dict[int, Any]:
            return {index[0]: value for index, value in rows.get(oid, {}).items()
                    if len(index) == 1}

        self.names = {k: _text(v) for k, v in column(ENT_PHYSICAL_NAME).items()}
        self.descrs = {k: _text(v) for k, v in column(ENT_PHYSICAL_DESCR).items()}
        self.parents = {k: v for k, v in column(ENT_PHYSICAL_CONTAINED_IN).items()
                        if type(v) is int}
        self.classes = {k: v for k, v in column(ENT_PHYSICAL_CLASS).items() if type(v) is int}
        self.aliases: dict[int, int] = {}
        for index, value in sorted(rows.get(ENT_ALIAS_MAPPING_IDENTIFIER, {}).items(),
                                   key=lambda item: (item[0][:1], item[0][1:] != (0,))):
            if (len(index) >= 1 and isinstance(value, tuple) and len(value) == len(IF_INDEX) + 1
                    and value[:-1] == IF_INDEX):
                self.aliases.setdefault(index[0], value[-1])
        found: dict[str, set[int]] = defaultdict(set)
        for if_index, (if_name, if_descr) in interfaces.items():
            for text in (if_name, if_descr):
                if text and text.strip():
                    found[text.strip().lower()].add(if_index)
        self.interfaces = {text: next(iter(indexes)) for text, indexes in found.items()
                           if len(indexes) == 1}
        self.interface_names = interfaces
        self._ports: dict[int, int | None] = {}

    def label(self, entity: int | None) -> str:
        if entity is None:
            return ""
        return self.names.get(entity) or self.descrs.get(entity) or ""

    def port(self, entity: int) -> int | None:
        """The ifIndex of the port `entity` is (or belongs to), or None."""
        if entity not in self._ports:
            self._ports[entity] = self._climb(entity)
        return self._ports[entity]

    def _climb(self, entity: int) -> int | None:
        current: int | None = entity
        seen: set[int] = set()
        for _ in range(MAX_ENTITY_CLIMB + 1):
            if current is None or current <= 0 or current in seen:
                return None
            seen.add(current)
            if current in self.aliases:
                return self.aliases[current]
            for text in (self.names.get(current), self.descrs.get(current)):
                if text and text.lower() in self.interfaces:
                    return self.interfaces[text.lower()]
            if self.classes.get(current) in _STOP_CLASSES:
                return None
            current = self.parents.get(current)
        return None


class _Problems:
    """Bad cells, gathered per source and message: one line each, with the rows."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], list[str]] = defaultdict(list)

    def add(self, source: Source, index: str, message: str) -> None:
        self._rows[(source.id, message)].append(index)

    def lines(self) -> tuple[str, ...]:
        lines = []
        for (source, message), indexes in self._rows.items():
            if len(indexes) == 1:
                lines.append(f"{source} row {indexes[0]}: {message}")
            else:
                shown = ", ".join(indexes[:5]) + (", ..." if len(indexes) > 5 else "")
                lines.append(f"{source}: {message} ({len(indexes)} rows: {shown})")
        return tuple(lines)


class _Skip(Exception):
    """This row gives no value (absent, sentinel, filtered); `problem` when it is bad data."""

    def __init__(self, problem: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem


def _cell(rows: Mapping[Oid, Mapping[Oid, Any]], column: Oid, index: Oid) -> Any:
    value = rows.get(column, {}).get(index)
    return None if isinstance(value, SnmpException) else value


def _oid_text(oid: Oid) -> str:
    return ".".join(map(str, oid))


def _to_dbm(value: float, unit: str) -> float:
    milliwatts = {"dbm": None, "milliwatts": value, "microwatts": value / 1000.0,
                  "watts": value * 1000.0}[unit]
    if milliwatts is None:
        return value
    if milliwatts <= 0:
        raise _Skip()
    return 10.0 * math.log10(milliwatts)


def _read(spec: ValueSpec, wanted: str | None, rows: Mapping[Oid, Mapping[Oid, Any]],
          index: Oid) -> list[float]:
    """One cell's value(s), one per lane, converted to the unit `wanted` (percent, celsius,
    dbm; None: as scaled); raises _Skip."""
    cell = _cell(rows, spec.column, index)
    if cell is None:
        raise _Skip()
    unit: str | None = spec.unit
    if spec.encoding == "decimal_text":
        if not isinstance(cell, bytes):
            raise _Skip(f"{_oid_text(spec.column)}: text expected, got {type(cell).__name__}")
        text = _text(cell)
        if not text or _same(text, spec.absent):
            raise _Skip()
        try:
            raw = [float(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise _Skip(f"{_oid_text(spec.column)}: not a number: {text[:40]!r}") from None
        if not raw or not all(math.isfinite(number) for number in raw):
            raise _Skip()
        values = [number * spec.scale for number in raw]
    else:
        if type(cell) is not int:
            raise _Skip(f"{_oid_text(spec.column)}: not a number ({type(cell).__name__})")
        if _same(cell, spec.absent):
            raise _Skip()
        factor = spec.scale
        if spec.encoding == "entity_sensor":
            assert spec.sensor_type is not None
            kind = _cell(rows, spec.sensor_type, index)
            if type(kind) is not int:
                raise _Skip("no sensor type, so no unit: skipped")
            unit = SENSOR_TYPES.get(kind)
            if unit not in spec.sensor_types:
                raise _Skip()  # another kind of sensor
            if spec.sensor_status is not None:
                status = _cell(rows, spec.sensor_status, index)
                if type(status) is int and status != SENSOR_STATUS_OK:
                    raise _Skip()
            scale = _cell(rows, spec.sensor_scale, index) if spec.sensor_scale else None
            precision = (_cell(rows, spec.sensor_precision, index)
                         if spec.sensor_precision else None)
            exponent = ((3 * (scale - 9) if type(scale) is int else 0)
                        - (precision if type(precision) is int else 0))
            factor *= 10.0 ** exponent
        values = [cell * factor]
    out = []
    for number in values:
        value = _to_dbm(number, unit or "dbm") if wanted == "dbm" else number
        value = round(value, 6)
        if (spec.above is not None and value <= spec.above) or (
                spec.below is not None and value >= spec.below):
            raise _Skip()
        low, high = _PLAUSIBLE.get(wanted or "", (-math.inf, math.inf))
        if not low <= value <= high:
            raise _Skip(f"{_oid_text(spec.column)}: implausible {value:g} {wanted}")
        out.append(value)
    return out


def _read_first(specs: Sequence[ValueSpec], wanted: str | None,
                rows: Mapping[Oid, Mapping[Oid, Any]], index: Oid) -> list[float]:
    """The first of alternative columns that has a value (a problem only if none has)."""
    problem: _Skip | None = None
    for spec in specs:
        try:
            return _read(spec, wanted, rows, index)
        except _Skip as skip:
            if skip.problem and problem is None:
                problem = skip
    raise problem or _Skip()


def _passes(condition: RowFilter, rows: Mapping[Oid, Mapping[Oid, Any]], index: Oid,
            entity: int | None, entities: _Entities) -> bool:
    if condition.column is not None:
        cell = _cell(rows, condition.column, index)
        if condition.not_in is not None:
            return cell is None or not _same(cell, condition.not_in)
        if cell is None:
            return False
        if condition.in_ is not None:
            return _same(cell, condition.in_)
        return re.search(condition.matches or "", _text(cell)) is not None
    if entity is None:
        return False
    if condition.entity_class is not None:
        wanted = {ENTITY_CLASSES[name] for name in condition.entity_class}
        return entities.classes.get(entity) in wanted
    text = f"{entities.names.get(entity, '')}\n{entities.descrs.get(entity, '')}"
    return re.search(condition.entity_matches or "", text) is not None


@dataclass(frozen=True)
class _Row:
    source: Source
    index: Oid
    dotted: str
    entity: int | None
    port: int | None
    name: str


def _index_part(source: Source, index: Oid) -> int | None:
    if source.index_part is None:
        return index[0] if len(index) == 1 else None
    try:
        return index[source.index_part]
    except IndexError:
        return None


def _render(template: str, words: Mapping[str, str], rows: Mapping[Oid, Mapping[Oid, Any]],
            index: Oid) -> str | None:
    """The template filled in, or None when a placeholder has no text."""
    missing = False

    def fill(match: re.Match[str]) -> str:
        nonlocal missing
        word = match.group(1)
        text = words[word] if word in words else _text(_cell(rows, _parse_oid(word), index))
        missing = missing or not text
        return text

    text = _PLACEHOLDER.sub(fill, template)
    return None if missing else " ".join(text.split())


def _row(source: Source, index: Oid, rows: Mapping[Oid, Mapping[Oid, Any]],
         entities: _Entities) -> _Row:
    entity: int | None = None
    port: int | None = None
    if source.index == "entity":
        entity = _index_part(source, index)
    elif source.entity_column is not None:
        value = _cell(rows, source.entity_column, index)
        entity = value if type(value) is int else None
    if entity is not None and entity <= 0:
        entity = None
    if source.index == "if_index":
        port = _index_part(source, index)
    elif entity is not None:
        port = entities.port(entity)
    dotted = _oid_text(index)
    if_name, if_descr = entities.interface_names.get(port, (None, None)) if port else (None,
                                                                                      None)
    label = source.label or _DEFAULT_LABELS[source.metric]
    words = {"entity": entities.label(entity), "port": if_name or if_descr or "",
             "index": dotted, "label": label}
    templates = source.name or ("{entity}", "{port}")
    name = next((text for template in templates
                 if (text := _render(template, words, rows, index))), f"{label} {dotted}")
    return _Row(source, index, dotted, entity, port, name)


def _key(metric: Metric, row: _Row) -> tuple[object, ...]:
    """What two sources of one metric must not both count: one port (optics), one entity,
    else one row of one source."""
    if metric.startswith("optical") and row.port is not None:
        return ("port", row.port)
    if row.entity is not None:
        return ("entity", row.entity)
    if row.port is not None:
        return ("port", row.port)
    return (row.source.id, row.index)


def _row_indexes(source: Source, rows: Mapping[Oid, Mapping[Oid, Any]]) -> list[Oid]:
    indexes: set[Oid] = set()
    for spec in source.value or source.used:
        indexes.update(rows.get(spec.column, {}))
    return sorted(indexes)


def _average(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 6) if values else None


class _Collector:
    """What the rows of a profile give, metric by metric, while they are read."""

    def __init__(self, rows: Mapping[Oid, Mapping[Oid, Any]], entities: _Entities) -> None:
        self.rows = rows
        self.entities = entities
        self.problems = _Problems()
        self.cpus: list[SensorReading] = []
        self.pools: list[MemoryPool] = []
        self.temperatures: list[SensorReading] = []
        self.states: dict[str, list[ComponentState]] = {"fan": [], "psu": []}
        self.optics: dict[tuple[object, ...], dict[str, Any]] = {}

    def take(self, row: _Row) -> None:
        """Read one row; raises _Skip when it gives nothing."""
        source, rows, index = row.source, self.rows, row.index
        metric = source.metric
        is_main = bool(source.main and re.search(source.main, row.name))
        if metric in ("fan", "psu"):
            column = source.value[0].column
            cell = _cell(rows, column, index)
            if cell is None:
                raise _Skip()
            if type(cell) is not int:
                raise _Skip(f"{_oid_text(column)}: not a number ({type(cell).__name__})")
            state: State = source.states.get(cell, "unknown")
            if any(_passes(c, rows, index, row.entity, self.entities)
                   for c in source.absent_when):
                state = "absent"
            self.states[metric].append(ComponentState(source.id, row.dotted, row.name, state,
                                                      cell, row.entity))
        elif metric == "memory":
            self.pools.append(self._pool(row, is_main))
        elif metric == "cpu":
            value = _read_first(source.value, "percent", rows, index)[0]
            extra = {}
            for name, spec in source.extras.items():
                try:
                    extra[name] = _read(spec, "percent", rows, index)[0]
                except _Skip as skip:
                    if skip.problem:
                        self.problems.add(source, row.dotted, skip.problem)
            self.cpus.append(SensorReading(source.id, row.dotted, row.name, value, row.entity,
                                           None, extra, is_main))
        elif metric == "temperature":
            value = _read_first(source.value, "celsius", rows, index)[0]
            self.temperatures.append(SensorReading(source.id, row.dotted, row.name, value,
                                                   row.entity, row.port))
        else:
            lanes = _read_first(source.value, "dbm", rows, index)
            direction = "rx" if metric == "optical_rx" else "tx"
            entry = self.optics.setdefault(_key(metric, row), {
                "if_index": row.port, "name": row.name, "entity_index": row.entity})
            if row.port is not None:
                if_name, if_descr = self.entities.interface_names.get(row.port, (None, None))
                entry["name"] = if_name or if_descr or entry["name"]
            entry[f"{direction}_dbm"] = min(lanes)  # the weakest lane
            if len(lanes) > 1:
                entry[f"{direction}_lanes_dbm"] = tuple(lanes)

    def _pool(self, row: _Row, is_main: bool) -> MemoryPool:
        source, rows, index = row.source, self.rows, row.index
        if source.value:
            pct = _read_first(source.value, "percent", rows, index)[0]
            return MemoryPool(source.id, row.dotted, row.name, pct, entity_index=row.entity,
                              main=is_main)
        used = _read_first(source.used, None, rows, index)[0]
        other = _read_first(source.free or source.total, None, rows, index)[0]
        units = (_cell(rows, source.allocation_units, index)
                 if source.allocation_units is not None else 1)
        if type(units) is not int or units <= 0:
            raise _Skip("allocation units missing or not a positive number")
        total = used + other if source.free else other
        if total <= 0:
            raise _Skip()  # an empty pool
        if used < 0 or used > total:
            raise _Skip(f"used {used:g} outside 0..{total:g}")
        return MemoryPool(source.id, row.dotted, row.name, round(100.0 * used / total, 6),
                          used * units, total * units, row.entity, is_main)

    def reading(self, profile: HealthProfile) -> HealthReading:
        main_cpus = [c.value for c in self.cpus if c.main]
        pools = [p for p in self.pools if p.main] or self.pools
        counted = [p for p in pools if p.total_bytes is not None]
        if counted:
            total = sum(p.total_bytes or 0.0 for p in counted)
            mem_pct = round(100.0 * sum(p.used_bytes or 0.0 for p in counted) / total, 6)
        else:
            mem_pct = _average([p.used_pct for p in pools])
        chassis = [t.value for t in self.temperatures if t.if_index is None]
        return HealthReading(
            profile=profile.name, status=PollStatus.REACHABLE,
            cpu_pct=_average(main_cpus or [c.value for c in self.cpus]), mem_pct=mem_pct,
            temperature_c=max(chassis) if chassis else None, cpus=tuple(self.cpus),
            memory_pools=tuple(self.pools), temperatures=tuple(self.temperatures),
            fans=tuple(self.states["fan"]), psus=tuple(self.states["psu"]),
            optics=tuple(PortOptics(**entry) for entry in self.optics.values()),
            problems=self.problems.lines())


def parse_health(profile: HealthProfile, rows: Mapping[Oid, Mapping[Oid, Any]],
                 interface_names: InterfaceNames | None = None) -> HealthReading:
    """The reading that walked `rows` (as `WalkResult.rows`: column -> index suffix -> value)
    give under `profile`. `interface_names` (ifIndex -> (ifName, ifDescr)) names the ports
    and lets entities be matched to them; without it, ifName and ifDescr are taken from
    `rows` when walked. Sources are read in the profile's order; a row whose entity (or, for
    optics, port) an earlier source of the same metric already gave is not counted twice."""
    if interface_names is None:
        interface_names = interface_names_from_rows(rows)
    collector = _Collector(rows, _Entities(rows, interface_names))
    produced: set[str] = set()
    taken: dict[Metric, set[tuple[object, ...]]] = defaultdict(set)
    for source in profile.sources:
        if produced.intersection(source.unless):
            continue
        for index in _row_indexes(source, rows):
            row = _row(source, index, rows, collector.entities)
            if not all(_passes(c, rows, index, row.entity, collector.entities)
                       for c in source.where):
                continue
            key = _key(source.metric, row)
            if key in taken[source.metric]:
                continue
            try:
                collector.take(row)
            except _Skip as skip:
                if skip.problem:
                    collector.problems.add(source, row.dotted, skip.problem)
                continue
            taken[source.metric].add(key)
            produced.add(source.id)
    return collector.reading(profile)


# --- polling -------------------------------------------------------------------------------


async def read_sys_object_id(poller: SnmpPoller, target: PollTarget) -> Oid | None:
    """The device's sysObjectID.0 (walked as the column 1.3.6.1.2.1.1.2, one request), or None
    when the device does not answer or has none."""
    result = await poller.walk(target, [SYS_OBJECT_ID])
    value = result.rows.get(SYS_OBJECT_ID, {}).get((0,))
    return value if isinstance(value, tuple) and value else None


async def poll_health(poller: SnmpPoller, target: PollTarget, profile: HealthProfile,
                      interface_names: InterfaceNames | None = None) -> HealthReading:
    """Walk `profile`'s columns on one device (one GETBULK walk of all of them together) and
    read them. `interface_names` (ifIndex -> (ifName, ifDescr), from the interface poll's
    labels) names ports; when None, ifName and ifDescr are walked too if the profile ties
    rows to ports. Never raises for what the device does: the status and reason are the
    walk's, and a row that cannot be read is a line in `problems`."""
    walk_names = interface_names is None and profile.uses_ports
    result = await poller.walk(target, profile.columns(interface_names=walk_names))
    timing = {"started_at": result.started_at, "duration_s": result.duration_s,
              "varbind_count": result.varbind_count}
    if result.status is not PollStatus.REACHABLE:
        return HealthReading(profile=profile.name, status=result.status, reason=result.reason,
                             **timing)
    try:
        reading = parse_health(profile, result.rows, interface_names)
    except Exception as error:  # a bug, not the device: this device's reading only
        return HealthReading(profile=profile.name, status=PollStatus.ERROR,
                             reason=f"reading the health tables failed: "
                                    f"{type(error).__name__}: {error}", **timing)
    return replace(reading, **timing)


def health_samples(reading: HealthReading, device_id: int,
                   port_ids_by_if_index: Mapping[int, int], time: datetime) -> list[Sample]:
    """The samples of a reading: cpu_pct, mem_pct, temperature_c, fan_failed_count and
    psu_failed_count on the device (each only when the device gave it: no fans listed is no
    sample, not 0 failed), optical_rx_dbm and optical_tx_dbm on the ports that
    `port_ids_by_if_index` knows. No samples from a reading that is not reachable."""
    if reading.status is not PollStatus.REACHABLE:
        return []
    samples = [Sample(time, device_id, metric, float(value)) for metric, value in (
        (CPU_PCT, reading.cpu_pct), (MEM_PCT, reading.mem_pct),
        (TEMPERATURE_C, reading.temperature_c), (FAN_FAILED_COUNT, reading.fan_failed_count),
        (PSU_FAILED_COUNT, reading.psu_failed_count)) if value is not None]
    for optics in reading.optics:
        port_id = (port_ids_by_if_index.get(optics.if_index)
                   if optics.if_index is not None else None)
        if port_id is None:
            continue
        for metric, value in ((OPTICAL_RX_DBM, optics.rx_dbm), (OPTICAL_TX_DBM, optics.tx_dbm)):
            if value is not None:
                samples.append(Sample(time, port_id, metric, float(value)))
    return samples
