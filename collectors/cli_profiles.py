"""Device profiles for the CLI: which commands a CLI poll runs on a platform, how their output
is parsed, which figure each parsed field becomes, and where a running configuration keeps
its secrets.

A *CLI profile* is the `cli:` section of the health profile files in collectors/profiles/
(vendor knowledge is data, as for SNMP), keyed by inventory platform because one file may
serve several (cisco_ios.yaml holds cisco_ios and cisco_xr; generic.yaml holds linux). For
each platform it names the netmiko device type, the commands of a poll, the command that
prints the running configuration, which source wins per metric when SNMP and the CLI both
give it (`prefer`; SNMP unless the profile says `cli`), the device's answers that mean a
command was refused (`errors`: rejected, or not allowed at the user's privilege) and the
masking rules of its configuration (`mask`). A command is parsed by TextFSM: with the
ntc-templates template of the platform and command (`parser: ntc`, the community's parsers,
resolved when the profile loads) or with a template of ours in collectors/profiles/templates
(`parser: own`, where ntc-templates has none: Linux /proc/net/dev). ntc-templates' interface
templates keep the states but skip the traffic counters, so a command may name
`supplements`: our templates that read the counters of the same output, their records merged
into the parser's by interface name. `interfaces` says how a record becomes a
`CliInterface`: a status through an ordered map of regular expressions (case-insensitive,
the first rule whose field is filled and matches wins) to IF-MIB names (up, down...), a
number through a field and a `scale` (Comware prints bytes/sec: scale 8 gives bits/sec).

Parsing never guesses: output that is the device refusing the command, that the template
rejects, or that yields no interface from non-empty text raises `CliParseError`, whose
message names the command and the reason but never repeats the output (the collector keeps
the raw text, bounded, for the engineer). A field that is not a number gives no value and a
line in `problems`. Names are returned as the device prints them; collectors.port_names
matches them to inventory ports.

`mask_config` replaces each secret of a running configuration (Cisco `secret 9 $9$...`,
Huawei `cipher %^%#...%^%#`, Junos `## SECRET-DATA` values...) by a short fingerprint of it,
keeping the rest of the line: a diff of two masked versions still shows that a password
changed, never what it is. With the installation's masking key (store.configs.mask_key, what
the collector uses) the fingerprint is `<masked hmac:XXXXXXXX>`, the first 8 hex digits of
HMAC-SHA256(key, secret): nobody who reads the page can test guesses against it (a plain
hash of a weak secret, a community `public`, is found by trying a word list). Without a key
it is `<masked sha256:XXXXXXXX>` of the secret itself, for text that is never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import textfsm
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from collectors.health import PROFILES_DIR, ProfileError, _field_path, _line_of, _one_or_many

__all__ = [
    "INTERFACE_METRICS", "KNOWN_METRICS", "MASK_PREFIX", "PROFILES_DIR", "TEMPLATES_DIR",
    "CliCommand", "CliInterface", "CliParseError", "CliProfile", "CliProfileError",
    "CliReading", "FieldRule", "check_output", "cli_profile", "load_cli_profiles",
    "mask_config", "parse_output", "read_outputs",
]

TEMPLATES_DIR = PROFILES_DIR / "templates"
MASK_PREFIX = "<masked "  # then "hmac:" or "sha256:", 8 hex digits and ">"
Source = Literal["snmp", "cli"]
ErrorKind = Literal["unparseable", "rejected", "privilege"]

# The sample metrics a profile's `prefer` may name: the SNMP side's names (collectors.service
# RATE_METRICS and statuses, collectors.health DEVICE_METRICS and PORT_METRICS), one
# vocabulary for both sources.
KNOWN_METRICS = frozenset({
    "if_in_bps", "if_out_bps", "if_in_utilization_pct", "if_out_utilization_pct",
    "if_in_errors_per_s", "if_out_errors_per_s", "if_in_discards_per_s",
    "if_out_discards_per_s", "if_oper_status", "if_admin_status",
    "optical_rx_dbm", "optical_tx_dbm",
    "cpu_pct", "mem_pct", "temperature_c", "fan_failed_count", "psu_failed_count",
})
# CliInterface attribute -> the metric it gives (counters give it as a rate between polls)
INTERFACE_METRICS: Mapping[str, str] = {
    "oper_status": "if_oper_status", "admin_status": "if_admin_status",
    "in_octets": "if_in_bps", "out_octets": "if_out_bps",
    "in_bps": "if_in_bps", "out_bps": "if_out_bps",
    "in_errors": "if_in_errors_per_s", "out_errors": "if_out_errors_per_s",
    "optical_rx_dbm": "optical_rx_dbm", "optical_tx_dbm": "optical_tx_dbm",
}
_STATUS_ATTRIBUTES = ("oper_status", "admin_status")
_COUNTER_ATTRIBUTES = ("in_octets", "out_octets", "in_packets", "out_packets", "in_errors",
                       "out_errors")
InterfaceAttribute = Literal["oper_status", "admin_status", "in_octets", "out_octets",
                             "in_packets", "out_packets", "in_errors", "out_errors", "in_bps",
                             "out_bps", "optical_rx_dbm", "optical_tx_dbm"]
# IF-MIB ifOperStatus / ifAdminStatus names (collectors.observations)
IfStatus = Literal["up", "down", "testing", "unknown", "dormant", "notPresent",
                   "lowerLayerDown"]
_NO_VALUE = {"", "-", "--", "n/a"}
# the device's error answer is on its first lines (Cisco: the command's caret line, then
# "% Invalid input"); a configuration further down may quote such words in a banner
_ERROR_LINES = 4


# --- profiles as written -----------------------------------------------------------------


def _compile(pattern: str, *, secret: bool = False) -> re.Pattern[str]:
    try:
        compiled = re.compile(pattern, re.IGNORECASE)
    except re.error as error:
        raise ValueError(f"not a valid regular expression: {error}") from None
    if secret and "secret" not in compiled.groupindex:
        raise ValueError("a mask rule marks the secret with a group (?P<secret>...)")
    return compiled


def _pattern(pattern: str) -> str:
    _compile(pattern)
    return pattern


def _mask_pattern(pattern: str) -> str:
    _compile(pattern, secret=True)
    return pattern


Pattern = Annotated[str, AfterValidator(_pattern)]
MaskPattern = Annotated[str, AfterValidator(_mask_pattern)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _RuleSpec(_Spec):
    field: str
    map: dict[Pattern, IfStatus] | None = None
    scale: float = 1.0


_RuleSpecs = Annotated[tuple[_RuleSpec, ...], BeforeValidator(_one_or_many)]


class _CommandSpec(_Spec):
    command: str
    parser: Literal["ntc", "own"] = "ntc"
    template: str | None = None
    supplements: tuple[str, ...] = ()
    key: str = "interface"
    interfaces: dict[InterfaceAttribute, _RuleSpecs]

    @model_validator(mode="after")
    def _templates(self, info: ValidationInfo) -> _CommandSpec:
        context = info.context or {}
        if self.parser == "ntc" and self.template is not None:
            raise ValueError("an ntc parser finds its template by platform and command: "
                             "leave template out")
        if self.parser == "own" and self.template is None:
            raise ValueError("an own parser names its template (a file of templates/)")
        for name in (self.template, *self.supplements):
            if name is not None and (Path(name).name != name or not name.endswith(".textfsm")):
                raise ValueError(f"{name!r}: a template is a .textfsm file name of templates/")
        files = [_template_path(self, context["platform"], context["templates"])]
        files += [context["templates"] / name for name in self.supplements]
        for path in files:
            header = _template_header(path)
            if self.key not in header:
                raise ValueError(f"template {path.name} has no value {self.key!r} (the key)")
        fields = set().union(*(_template_header(path) for path in files))
        for attribute, rules in self.interfaces.items():
            for rule in rules:
                if rule.field not in fields:
                    raise ValueError(f"interfaces.{attribute}: no template of this command "
                                     f"has the field {rule.field!r}")
                is_status = attribute in _STATUS_ATTRIBUTES
                if is_status != (rule.map is not None):
                    raise ValueError(f"interfaces.{attribute}: "
                                     + ("a status needs a map" if is_status
                                        else "a number takes no map"))
        return self


class _ErrorsSpec(_Spec):
    rejected: tuple[Pattern, ...] = ()
    privilege: tuple[Pattern, ...] = ()


class _PlatformSpec(_Spec):
    title: str
    device_type: str
    commands: tuple[_CommandSpec, ...]
    config_command: str | None = None
    prefer: dict[str, Source] = {}
    errors: _ErrorsSpec = _ErrorsSpec()
    mask: tuple[MaskPattern, ...] = ()

    @field_validator("prefer")
    @classmethod
    def _metrics(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - KNOWN_METRICS)
        if unknown:
            raise ValueError(f"unknown metric {', '.join(unknown)} (one of "
                             f"{', '.join(sorted(KNOWN_METRICS))})")
        return value

    @model_validator(mode="after")
    def _commands(self) -> _PlatformSpec:
        if not self.commands:
            raise ValueError("a CLI profile runs at least one command")
        texts = [command.command for command in self.commands]
        if len(set(texts)) != len(texts):
            raise ValueError("a command is listed twice")
        return self


# --- templates -----------------------------------------------------------------------------


@cache
def _ntc_index() -> Any:
    import ntc_templates
    from textfsm import clitable

    folder = Path(ntc_templates.__file__).resolve().parent / "templates"
    return clitable.CliTable("index", str(folder)).index, folder


def _ntc_template(platform: str, command: str) -> Path:
    """ntc-templates' template for `command` on `platform`, as its index chooses it."""
    index, folder = _ntc_index()
    row = index.GetRowMatch({"Platform": platform, "Command": command})
    if not row:
        raise ValueError(f"ntc-templates has no template for {command!r} on {platform}: "
                         "write one in templates/ (parser: own)")
    names = index.index[row]["Template"].split(":")
    if len(names) != 1:
        raise ValueError(f"ntc-templates chains {len(names)} templates for {command!r}; "
                         "name them as own templates")
    return folder / names[0]


def _template_path(spec: _CommandSpec, platform: str, templates: Path) -> Path:
    if spec.parser == "ntc":
        return _ntc_template(platform, spec.command)
    return templates / str(spec.template)


@cache
def _template_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _fsm(path: Path) -> textfsm.TextFSM:
    return textfsm.TextFSM(io.StringIO(_template_text(path)))


def _template_header(path: Path) -> set[str]:
    try:
        return {name.lower() for name in _fsm(path).header}
    except OSError as error:
        raise ValueError(f"cannot read the template {path.name} "
                         f"({error.strerror or error})") from None
    except textfsm.TextFSMTemplateError as error:
        raise ValueError(f"template {path.name} is not valid TextFSM: {error}") from None


# --- profiles as used ----------------------------------------------------------------------


@dataclass(frozen=True)
class FieldRule:
    """How one record field becomes a `CliInterface` attribute: for a status, the first
    pattern of `values` that matches the field's text gives the IF-MIB name; for a number,
    the field's value times `scale`."""

    field: str
    values: tuple[tuple[re.Pattern[str], str], ...] = ()
    scale: float = 1.0


@dataclass(frozen=True)
class CliCommand:
    """One command of a poll: parsed by `parser` ("ntc": ntc-templates' template for the
    platform and command; "own": `template` in collectors/profiles/templates), whose records
    receive the fields of each of the `supplements` (own templates) record of the same `key`
    (the interface name); `fields` turns a merged record into a CliInterface."""

    command: str
    parser: Literal["ntc", "own"]
    template: str | None
    supplements: tuple[str, ...]
    key: str
    fields: Mapping[str, tuple[FieldRule, ...]]
    source: str  # file:line
    template_path: Path
    supplement_paths: tuple[Path, ...]

    def __hash__(self) -> int:  # `fields` is a mapping
        return hash((self.command, self.source))


@dataclass(frozen=True)
class CliProfile:
    """A platform's CLI profile (see the module docstring). `source` is file:line."""

    platform: str
    device_type: str  # netmiko's
    title: str
    commands: tuple[CliCommand, ...]
    config_command: str | None
    prefer: Mapping[str, Source]
    source: str
    rejected: tuple[re.Pattern[str], ...] = ()
    privilege: tuple[re.Pattern[str], ...] = ()
    mask_rules: tuple[re.Pattern[str], ...] = ()

    def __hash__(self) -> int:  # its mappings are not hashable; where it came from is
        return hash((self.platform, self.source))

    def __repr__(self) -> str:
        return f"CliProfile({self.platform!r}, {self.device_type!r}, source={self.source!r})"

    @property
    def command_texts(self) -> tuple[str, ...]:
        """The commands a poll runs, in order."""
        return tuple(command.command for command in self.commands)

    def command(self, text: str) -> CliCommand:
        for command in self.commands:
            if command.command == text:
                return command
        raise KeyError(f"{self.platform}: no command {text!r} in the profile")

    def wins(self, metric: str, *, has_snmp: bool = True) -> Source:
        """Which source's figure a device keeps: the profile's `prefer`, else SNMP; the CLI
        for a device that is not polled by SNMP (a managed CE that answers none)."""
        if not has_snmp:
            return "cli"
        return self.prefer.get(metric, "snmp")


class CliProfileError(ProfileError):
    """CLI profile sections that cannot be used; `problems` names file:line and field."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__(problems)
        self.args = ("CLI profiles have problems:\n" + "\n".join(self.problems),)


def _field_rules(rules: Sequence[_RuleSpec]) -> tuple[FieldRule, ...]:
    return tuple(FieldRule(rule.field, tuple((_compile(pattern), value) for pattern, value in
                                             (rule.map or {}).items()), rule.scale)
                 for rule in rules)


def _read_yaml(path: Path) -> Any:
    file = str(path)
    try:
        return YAML(typ="rt").load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise CliProfileError([f"{file}: cannot read the file ({error.strerror})"]) from None
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise CliProfileError([f"{file}{line}: YAML syntax error: {error.problem}"]) from None
    except (YAMLError, UnicodeDecodeError, ValueError) as error:
        raise CliProfileError([f"{file}: not readable YAML ({type(error).__name__})"]) from None


def _profiles_of_file(path: Path, templates: Path) -> tuple[list[CliProfile], list[str]]:
    root = _read_yaml(path)
    file = str(path)
    section = root.get("cli") if isinstance(root, Mapping) else None
    if section is None:
        return [], []
    if not isinstance(section, Mapping):
        line = _line_of(root, ["cli"])
        return [], [f"{file}:{line}: cli: a mapping of platform to its CLI profile"]
    profiles: list[CliProfile] = []
    problems: list[str] = []
    for platform, data in section.items():
        location = ["cli", platform]
        where = f"{file}:{_line_of(root, location)}"
        try:
            spec = _PlatformSpec.model_validate(
                data, context={"platform": str(platform), "templates": templates})
        except ValidationError as error:
            for detail in error.errors():
                full = [*location, *detail["loc"]]
                line = _line_of(root, full)
                message = detail["msg"].removeprefix("Value error, ")
                problems.append(f"{file}:{line or '?'}: {_field_path(full, root)}: {message}")
            continue
        commands = []
        for number, command in enumerate(spec.commands):
            line = _line_of(root, [*location, "commands", number])
            commands.append(CliCommand(
                command=command.command, parser=command.parser, template=command.template,
                supplements=command.supplements, key=command.key,
                fields={attribute: _field_rules(rules)
                        for attribute, rules in command.interfaces.items()},
                source=f"{file}:{line}",
                template_path=_template_path(command, str(platform), templates),
                supplement_paths=tuple(templates / name for name in command.supplements)))
        profiles.append(CliProfile(
            platform=str(platform), device_type=spec.device_type, title=spec.title,
            commands=tuple(commands), config_command=spec.config_command,
            prefer=dict(spec.prefer), source=where,
            rejected=tuple(_compile(p) for p in spec.errors.rejected),
            privilege=tuple(_compile(p) for p in spec.errors.privilege),
            mask_rules=tuple(_compile(p, secret=True) for p in spec.mask)))
    return profiles, problems


def load_cli_profiles(directory: str | Path | None = None) -> dict[str, CliProfile]:
    """The CLI profiles of every `*.yaml` of `directory` (default collectors/profiles; own
    templates in its `templates/`), by platform. Raises CliProfileError listing every
    problem, each naming file:line and field; a platform in two files is one of them."""
    folder = Path(directory) if directory is not None else PROFILES_DIR
    files = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
    if not files:
        raise CliProfileError([f"{folder}: no *.yaml profiles"])
    profiles: dict[str, CliProfile] = {}
    problems: list[str] = []
    for path in files:
        try:
            found, file_problems = _profiles_of_file(path, folder / "templates")
        except CliProfileError as error:
            problems.extend(error.problems)
            continue
        problems.extend(file_problems)
        for profile in found:
            if profile.platform in profiles:
                problems.append(f"{profile.source}: platform {profile.platform!r} has a CLI "
                                f"profile in {profiles[profile.platform].source} too")
            profiles[profile.platform] = profile
    if problems:
        raise CliProfileError(problems)
    return profiles


@cache
def _default_profiles() -> dict[str, CliProfile]:
    return load_cli_profiles()


def cli_profile(platform: str | None) -> CliProfile | None:
    """The CLI profile of an inventory platform from collectors/profiles (loaded once), or
    None when the platform has none."""
    if not platform:
        return None
    return _default_profiles().get(platform.strip().lower())


# --- parsing -------------------------------------------------------------------------------


class CliParseError(Exception):
    """A command's output that yields nothing usable. `kind`: "rejected" (the device refused
    the command: unknown, incomplete), "privilege" (not allowed at the user's privilege) or
    "unparseable" (the template rejects it, or no interface from non-empty text). The message
    never contains the output itself."""

    def __init__(self, command: str, message: str,
                 kind: ErrorKind = "unparseable") -> None:
        super().__init__(f"{command}: {message}")
        self.command = command
        self.message = message
        self.kind: ErrorKind = kind


@dataclass(frozen=True)
class CliInterface:
    """One interface as a CLI poll read it; None where the platform does not print it.
    Statuses are IF-MIB names ("up", "down"...); counters as the device prints them."""

    name: str
    oper_status: str | None = None
    admin_status: str | None = None
    in_octets: int | None = None
    out_octets: int | None = None
    in_packets: int | None = None
    out_packets: int | None = None
    in_errors: int | None = None
    out_errors: int | None = None
    in_bps: float | None = None
    out_bps: float | None = None
    optical_rx_dbm: float | None = None
    optical_tx_dbm: float | None = None


@dataclass(frozen=True)
class CliReading:
    """What one CLI poll's outputs gave: interfaces by name as printed, device metrics, and a
    line per field that could not be read."""

    interfaces: dict[str, CliInterface] = field(default_factory=dict)
    device: dict[str, float] = field(default_factory=dict)
    problems: tuple[str, ...] = ()


def check_output(profile: CliProfile, command: str, text: str) -> None:
    """Raise CliParseError when `text` is the device refusing `command` (the profile's
    `errors`, looked for on the first lines): kind "privilege" or "rejected"."""
    lines = [line.strip() for line in text.splitlines() if line.strip()][:_ERROR_LINES]
    for kind, patterns in (("privilege", profile.privilege), ("rejected", profile.rejected)):
        for pattern in patterns:
            if any(pattern.search(line) for line in lines):
                reason = ("the device does not allow it at this user's privilege"
                          if kind == "privilege" else "the device refused the command")
                raise CliParseError(command, f"{reason} ({profile.platform} error answer "
                                             f"matching {pattern.pattern!r})", kind)


def _records(path: Path, command: str, text: str) -> list[dict[str, Any]]:
    fsm = _fsm(path)
    try:
        rows = fsm.ParseText(text)
    except textfsm.TextFSMError as error:
        # TextFSM's message quotes the input line: keep only where the template stopped
        rule = re.search(r"Rule Line: \d+", str(error))
        raise CliParseError(command, f"the output does not follow the template {path.name} "
                                     f"({rule.group(0) if rule else 'state error'})") from None
    header = [name.lower() for name in fsm.header]
    return [dict(zip(header, row, strict=True)) for row in rows]


def parse_output(profile: CliProfile, command: str, text: str) -> list[dict[str, Any]]:
    """The records of `command`'s output under `profile` (keys lower case, as ntc-templates
    gives them; a `List` value is a list): the parser's records, each given the fields of
    the supplements' record with the same key; a supplement's record whose key the parser
    did not give is appended. Raises CliParseError for an error answer or a rejected
    output; returns [] for empty output."""
    spec = profile.command(command)
    check_output(profile, command, text)
    if not text.strip():
        return []
    records = _records(spec.template_path, command, text)
    by_key = {str(record.get(spec.key, "")): record for record in records}
    for path in spec.supplement_paths:
        for extra in _records(path, command, text):
            key = str(extra.get(spec.key, ""))
            if key in by_key:
                for name, value in extra.items():
                    if value not in ("", []) or name not in by_key[key]:
                        by_key[key][name] = value
            else:
                records.append(extra)
                by_key[key] = extra
    return records


def _status(rules: Sequence[FieldRule], record: Mapping[str, Any], attribute: str,
            name: str, problems: list[str]) -> str | None:
    for rule in rules:
        text = str(record.get(rule.field) or "").strip()
        if not text:
            continue
        for pattern, value in rule.values:
            if pattern.search(text):
                return value
        problems.append(f"{name}: {attribute}: {rule.field} {text!r} is not a known state")
    return None


def _number(rules: Sequence[FieldRule], record: Mapping[str, Any], attribute: str,
            name: str, problems: list[str]) -> int | float | None:
    """The first rule's number; an integer stays exact (a 64-bit counter exceeds a float's
    precision) unless the rule scales it."""
    for rule in rules:
        value = record.get(rule.field)
        text = value.strip().replace(",", "") if isinstance(value, str) else ""
        if text.lower() in _NO_VALUE:
            continue
        try:
            number: int | float = int(text) if text.isdigit() else float(text)
        except ValueError:
            problems.append(f"{name}: {attribute}: {rule.field} {text!r} is not a number")
            continue
        if not math.isfinite(number):
            problems.append(f"{name}: {attribute}: {rule.field} {text!r} is not a number")
            continue
        return number if rule.scale == 1 else number * rule.scale
    return None


def _interface(spec: CliCommand, record: Mapping[str, Any], name: str,
               problems: list[str]) -> CliInterface:
    values: dict[str, Any] = {}
    for attribute, rules in spec.fields.items():
        if attribute in _STATUS_ATTRIBUTES:
            values[attribute] = _status(rules, record, attribute, name, problems)
            continue
        number = _number(rules, record, attribute, name, problems)
        if number is None:
            values[attribute] = None
        elif attribute in _COUNTER_ATTRIBUTES:
            values[attribute] = number if isinstance(number, int) else round(number)
        else:
            values[attribute] = float(number)
    return CliInterface(name=name, **values)


def read_outputs(profile: CliProfile, outputs: Mapping[str, str]) -> CliReading:
    """The reading of one poll: every command of `profile` parsed from `outputs` (command
    text -> output) and its records turned into interfaces. Raises CliParseError for the
    first command whose output is missing, refused, rejected by its template or without any
    interface although not empty."""
    interfaces: dict[str, CliInterface] = {}
    problems: list[str] = []
    for spec in profile.commands:
        if spec.command not in outputs:
            raise CliParseError(spec.command, "no output for this command")
        text = outputs[spec.command]
        records = parse_output(profile, spec.command, text)
        if not records:
            raise CliParseError(spec.command, "no interface in the output"
                                if text.strip() else "the output is empty")
        for record in records:
            name = str(record.get(spec.key) or "").strip()
            if not name or name.endswith(":"):
                # a heading the template took for a name (ntc's Comware template reads a
                # lone "Output:" line as one)
                problems.append(f"{spec.command}: {name!r} is not an interface name; its "
                                "record is left out")
                continue
            if name in interfaces:
                problems.append(f"{spec.command}: {name} is printed twice; the last kept")
            interfaces[name] = _interface(spec, record, name, problems)
    return CliReading(interfaces=interfaces, problems=tuple(problems))


# --- configuration masking -----------------------------------------------------------------


_MASK_TOKEN = re.compile(re.escape(MASK_PREFIX) + r"(?:hmac|sha256):[0-9a-f]{8}>")


def _masked(secret: str, key: bytes | None) -> str:
    data = secret.encode("utf-8")
    if key is None:
        return f"{MASK_PREFIX}sha256:{hashlib.sha256(data).hexdigest()[:8]}>"
    return f"{MASK_PREFIX}hmac:{hmac.new(key, data, hashlib.sha256).hexdigest()[:8]}>"


def _mask_line(line: str, rules: Sequence[re.Pattern[str]], key: bytes | None = None) -> str:
    """Every rule looks at the line as the device printed it; the secrets they find (spans
    that overlap are one) are replaced together, so one rule masking a keyword cannot hide
    the secret from another, and a mask already there is never a secret."""
    done = [match.span() for match in _MASK_TOKEN.finditer(line)]
    spans = sorted({match.span("secret") for rule in rules for match in rule.finditer(line)
                    if match.group("secret")})
    merged: list[list[int]] = []
    for start, end in spans:
        if any(start < done_end and done_start < end for done_start, done_end in done):
            continue
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    for start, end in reversed(merged):
        line = line[:start] + _masked(line[start:end], key) + line[end:]
    return line


def mask_config(profile_or_platform: CliProfile | str | None, text: str, *,
                key: bytes | None = None) -> str:
    """`text` (a running configuration) with every secret the platform's `mask` rules find
    replaced by its fingerprint (see the module docstring: keyed with `key`, the
    installation's masking key, for everything stored), line by line, the rest kept byte for
    byte. An unknown platform (or None) gets every profile's rules: a secret must not survive
    because the platform was mistyped. Masking twice changes nothing."""
    if isinstance(profile_or_platform, CliProfile):
        rules = profile_or_platform.mask_rules
    else:
        profile = cli_profile(profile_or_platform)
        rules = profile.mask_rules if profile is not None else _all_mask_rules()
    return "".join(_mask_line(line, rules, key) for line in text.splitlines(keepends=True))


@cache
def _all_mask_rules() -> tuple[re.Pattern[str], ...]:
    rules: dict[str, re.Pattern[str]] = {}
    for profile in _default_profiles().values():
        for rule in profile.mask_rules:
            rules.setdefault(rule.pattern, rule)
    return tuple(rules.values())
