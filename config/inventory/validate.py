"""Validating an inventory: from parsed YAML documents to model objects, or to a list of problems.

An inventory is written by people, so validation is about telling them, in one run, every
line they have to fix and how. It runs in three passes:

1. Shape. Each object is read field by field against its kind's schema (the `*_FIELDS`
   tables below): unknown fields (with the closest known name as a hint), missing required
   fields, wrong types (a text where a number is expected), values outside their allowed
   set or range, secrets written in clear. A field that fails is marked INVALID and the
   object's other fields are still read.
2. Identity. Each object's key (`id`, a device's `name`, a user's `login`) is registered per
   kind across all files; a second declaration is reported with the first one's file:line.
   Ports are keyed by name within their device, links by their two ends (either order).
3. References. Circuits, devices, links, VPNs, sites, users and customers name other
   objects. Each name must resolve to an object of the right kind (and of the right customer,
   credential kind or user role), each port must exist on its device, and a declared circuit
   path must run from the A end to the Z end over declared links. A check whose input already
   failed in pass 1 is skipped, so one typo gives one problem, not a cascade.

Only when no pass found anything are the model's frozen dataclasses built (`build_inventory`).

Positions: every problem names the file, the 1-based line of the offending field (or of the
object when the field is missing) and a field path such as `circuits[3].a_end.port`, where
`[3]` is the 0-based position of the object in that file's section.

Secrets: a credential's secrets are references (`{env: NAME}` or `{file: /abs/path}`). A
secret written as a literal value is an error, and no message ever repeats it.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
import zoneinfo
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from ipaddress import ip_address
from typing import Any

from config.inventory import official_days as official
from config.inventory.model import (
    CREDENTIAL_KINDS,
    DEVICE_ROLES,
    ESCALATION_CLOCKS,
    LANGUAGES,
    OFFICIAL_DAY_SOURCES,
    PLATFORMS,
    PRIORITIES,
    SERVICE_TYPES,
    SNMP_AUTH_PROTOCOLS,
    SNMP_PRIV_PROTOCOLS,
    UNKNOWN_COUNTS,
    USER_ROLES,
    WEEKDAYS,
    Circuit,
    CircuitEnd,
    Credential,
    CreditStep,
    Customer,
    Device,
    EscalationStep,
    Hop,
    Inventory,
    InventoryProblem,
    Link,
    OfficialDays,
    Port,
    PortRef,
    PriorityTimes,
    SecretRef,
    ServiceCalendar,
    Site,
    SlaContract,
    Source,
    User,
    Vpn,
    WeeklyHours,
    recipient_problem,
)

# The top-level sections a file may hold, in the order objects depend on each other.
SECTIONS = (
    "customers", "sites", "credentials", "devices", "links", "circuits", "vpns",
    "sla_contracts", "users",
)
SNMP_SECURITY_LEVELS = ("noAuthNoPriv", "authNoPriv", "authPriv")
# Same rule as the store's local users (store/users.py LOGIN_NAME).
LOGIN_NAME = re.compile(r"^[a-z][a-z0-9._-]{1,62}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CURRENCY = re.compile(r"^[A-Z]{3}$")
TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Bits per second: a whole number, or a decimal number with an SI suffix (k=10^3, M=10^6,
# G=10^9, T=10^12), optionally followed by "bps": 1000000000, "1G", "2.5G", "100Mbps".
BPS_TEXT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKMGT]?)(?:bps)?\s*$")
BPS_MULTIPLIERS = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
DEFAULT_POLLER_GROUP = "default"
DEFAULT_SNMP_PORT = 161
DEFAULT_LINK_COST = 10
ALWAYS = "24x7"
SECRET_HINT = (
    "secrets are referenced, never written in inventory files:"
    " write {env: VARIABLE_NAME} or {file: /absolute/path/readable/by/keyline/only}"
)


class _Invalid:
    """The value of a field that failed to read (its problem is already reported)."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = _Invalid()


def _ok(*values: Any) -> bool:
    """True when every value was given and read without a problem."""
    return all(value is not None and value is not INVALID for value in values)


# --- positions -----------------------------------------------------------------------------

_SEGMENT = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def _key_line(mapping: Any, key: Any) -> int | None:
    try:
        return mapping.lc.key(key)[0] + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return None  # a key brought in by a merge (<<: *anchor) has no position of its own


def _item_line(sequence: Any, index: int) -> int | None:
    try:
        return sequence.lc.item(index)[0] + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return None


@dataclass(frozen=True)
class Loc:
    """A YAML node being read: its file, its field path, the node and its 1-based line.

    `report(name, ...)` records a problem about a field below this node; `name` is a
    relative path ("a_end.port", "path[2].in_port") whose line is found by walking the node,
    falling back to the nearest enclosing node that exists (the object, for a missing field).
    """

    file: str
    path: str
    node: Any
    line: int
    problems: list[InventoryProblem]

    def field_path(self, name: str = "") -> str:
        if not name:
            return self.path
        if name.startswith("[") or not self.path:
            return f"{self.path}{name}"
        return f"{self.path}.{name}"

    def _walk(self, name: str) -> tuple[Any, int, bool]:
        node, line = self.node, self.line
        for index, key in _SEGMENT.findall(name):
            if index:
                position = int(index)
                if not isinstance(node, list) or not 0 <= position < len(node):
                    return node, line, False
                line = _item_line(node, position) or line
                node = node[position]
            else:
                if not isinstance(node, Mapping) or key not in node:
                    return node, line, False
                line = _key_line(node, key) or line
                node = node[key]
        return node, line, True

    def line_of(self, name: str = "") -> int:
        return self._walk(name)[1]

    def report(self, name: str, message: str, hint: str | None = None) -> None:
        self.problems.append(
            InventoryProblem(self.file, self.line_of(name), self.field_path(name), message, hint)
        )

    def child(self, name: str) -> Loc:
        node, line, _found = self._walk(name)
        return Loc(self.file, self.field_path(name), node, line, self.problems)

    def source(self) -> Source:
        return Source(self.file, self.line)


def _leaf(name: str) -> str:
    parts = [key for _index, key in _SEGMENT.findall(name) if key]
    return parts[-1] if parts else name


def describe(value: Any) -> str:
    """A short description of a YAML value for a "got ..." message."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return f"the text {text!r}"
    if isinstance(value, date):
        return f"the date {value.isoformat()}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def _quote_hint(value: Any) -> str | None:
    if isinstance(value, bool | int | float):
        return f'quote it: "{value}"'
    if isinstance(value, date):
        return f'quote it: "{value.isoformat()}"'
    return None


def closest_first(word: str, names: Iterable[str]) -> list[str]:
    """`names` ordered from the most to the least similar to `word`."""
    return sorted(names, key=lambda name: -difflib.SequenceMatcher(None, word, name).ratio())


def _listing(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def did_you_mean(word: Any, known: Iterable[str], what: str) -> str:
    """A hint naming the closest known name, else listing the known names."""
    known = list(known)
    close = difflib.get_close_matches(str(word), known, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"known {what}: {_listing(known)}"


# --- field readers -------------------------------------------------------------------------
#
# A reader takes the object's Loc, the field name and the raw YAML value, and returns the
# value to keep, or INVALID after reporting a problem.

Reader = Callable[[Loc, str, Any], Any]


@dataclass(frozen=True)
class Field:
    """One field of an object: how to read it, whether it must be given, its default."""

    read: Reader
    required: bool = False
    default: Any = None


def read_fields(
    loc: Loc, fields: Mapping[str, Field], what: str, *, skip: Iterable[str] = ()
) -> dict[str, Any] | None:
    """Read a mapping against `fields`: report unknown and missing fields, read the others.

    Returns every field's value (its default when absent, INVALID when it failed), or None
    when the node is not a mapping at all. Keys in `skip` were handled by the caller.
    """
    node = loc.node
    if not isinstance(node, Mapping):
        loc.report("", f"expected a mapping ({what}), got {describe(node)}")
        return None
    skipped = set(skip)
    for key in node:
        if key not in fields and key not in skipped:
            loc.report(str(key), f"unknown field {str(key)!r} in {what}",
                       did_you_mean(key, fields, "fields"))
    values: dict[str, Any] = {}
    for name, spec in fields.items():
        raw = node.get(name)
        if raw is None:
            if spec.required:
                loc.report(name, f"missing required field {name!r}")
                values[name] = INVALID
            else:
                values[name] = spec.default
        else:
            values[name] = spec.read(loc, name, raw)
    return values


def invisible_character(text: str) -> tuple[int, str] | None:
    """The first control or format character of `text` (Unicode categories Cc and Cf: NUL,
    ESC, the zero-width space U+200B, the right-to-left override U+202E...) as (1-based
    position, character); None when there is none. Line breaks and tabs are allowed: free
    text may span lines, and an identifier refuses all whitespace anyway (read_key)."""
    for position, char in enumerate(text, start=1):
        if char not in "\n\t" and unicodedata.category(char) in ("Cc", "Cf"):
            return position, char
    return None


def read_text(loc: Loc, name: str, value: Any) -> Any:
    """Text, not empty, without invisible characters: a zero-width space or an RTL override
    makes a name that looks like another one (`pe1` and `pe1\u200b`), an ESC rewrites the
    terminal that prints it, and PostgreSQL refuses a NUL."""
    if isinstance(value, str):
        found = invisible_character(value)
        if found is not None:
            position, char = found
            label = unicodedata.name(char, "a control character")
            loc.report(name, f"{_leaf(name)} contains the invisible character U+{ord(char):04X}"
                             f" ({label}) at character {position}",
                       "retype the text without it: control and format characters are not"
                       " allowed")
            return INVALID
        if value.strip():
            return str(value)
        loc.report(name, f"{_leaf(name)} is empty")
        return INVALID
    loc.report(name, f"expected text, got {describe(value)}", _quote_hint(value))
    return INVALID


def read_bool(loc: Loc, name: str, value: Any) -> Any:
    """true or false (YAML booleans only: "yes" in quotes is text, a mistake worth naming)."""
    if isinstance(value, bool):
        return value
    loc.report(name, f"expected true or false, got {describe(value)}")
    return INVALID


def read_key(loc: Loc, name: str, value: Any) -> Any:
    """An identifier: text without spaces."""
    text = read_text(loc, name, value)
    if text is not INVALID and re.search(r"\s", text):
        loc.report(name, f"{_leaf(name)} {text!r} contains a space",
                   "identifiers may not contain spaces: use - or _")
        return INVALID
    return text


def read_device_name(loc: Loc, name: str, value: Any) -> Any:
    text = read_key(loc, name, value)
    if text is not INVALID and ":" in text:
        loc.report(name, f"device name {text!r} contains ':'",
                   "':' separates a device from its port (pe1:GigabitEthernet0/0/1)")
        return INVALID
    return text


def read_port_name(loc: Loc, name: str, value: Any) -> Any:
    text = read_text(loc, name, value)
    if text is not INVALID and text != text.strip():
        loc.report(name, f"port name {text!r} has spaces around it")
        return INVALID
    return text


def read_login(loc: Loc, name: str, value: Any) -> Any:
    text = read_text(loc, name, value)
    if text is not INVALID and not LOGIN_NAME.match(text):
        loc.report(name, f"{text!r} is not a valid login name",
                   "2 to 63 characters: lowercase letters, digits, '.', '_' or '-',"
                   " starting with a letter (e.g. zhang.wei)")
        return INVALID
    return text


def read_email(loc: Loc, name: str, value: Any) -> Any:
    text = read_text(loc, name, value)
    if text is not INVALID and not EMAIL.match(text):
        loc.report(name, f"{text!r} is not an email address", "e.g. noc@example.com")
        return INVALID
    return text


def read_choice(choices: Sequence[str], what: str) -> Reader:
    """A reader for a value from a fixed set; the hint lists the allowed values."""

    def read(loc: Loc, name: str, value: Any) -> Any:
        if isinstance(value, str) and value in choices:
            return str(value)
        allowed = "allowed: " + ", ".join(choices)
        if not isinstance(value, str):
            loc.report(name, f"expected a {what}, got {describe(value)}", allowed)
            return INVALID
        by_case = {choice.lower(): choice for choice in choices}
        prefixes = sorted((c for c in choices if value.lower().startswith(c.lower())), key=len)
        if value.lower() in by_case:
            close = [by_case[value.lower()]]
        elif prefixes:  # SHA1 -> SHA, AES128 -> AES, cisco_iosxe -> cisco_ios
            close = [prefixes[-1]]
        else:
            close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? {allowed}" if close else allowed
        loc.report(name, f"unknown {what} {value!r}", hint)
        return INVALID

    return read


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def read_int_at_least(low: int, high: int | None = None) -> Reader:
    """A reader for a whole number in low..high."""

    def read(loc: Loc, name: str, value: Any) -> Any:
        if not (_is_number(value) and float(value).is_integer()):
            hint = "write it without quotes" if isinstance(value, str) else None
            loc.report(name, f"expected a whole number, got {describe(value)}", hint)
            return INVALID
        number = int(value)
        if number < low or (high is not None and number > high):
            if low == 1 and high is None:
                message = f"{_leaf(name)} must be a positive integer, got {number}"
            else:
                message = f"{_leaf(name)} must be between {low} and {high}, got {number}"
            loc.report(name, message)
            return INVALID
        return number

    return read


read_positive_int = read_int_at_least(1)
read_ip_port = read_int_at_least(1, 65535)


def parse_bps(value: Any) -> int | None:
    """Bits per second from a YAML value: 1000000000, "1G", "2.5G", "100M", "10k", "1Gbps".

    Suffixes are decimal (SI) as in networking, so "1G" is 10^9, not 2^30. Returns None
    when the value is not of that form or not a whole number of bits.
    """
    if _is_number(value):
        return int(value) if float(value).is_integer() else None
    if not isinstance(value, str):
        return None
    match = BPS_TEXT.match(value)
    if not match:
        return None
    try:
        amount = Decimal(match.group(1)) * BPS_MULTIPLIERS[match.group(2)]
    except InvalidOperation:  # pragma: no cover - the pattern only lets digits through
        return None
    return int(amount) if amount == amount.to_integral_value() else None


def read_bps(loc: Loc, name: str, value: Any) -> Any:
    bps = parse_bps(value)
    if bps is None:
        loc.report(name, f"expected bits per second, got {describe(value)}",
                   'a whole number (1000000000) or one with a k, M, G or T suffix ("1G", "100M")')
        return INVALID
    if bps <= 0:
        loc.report(name, f"{_leaf(name)} must be a positive integer, got {bps}")
        return INVALID
    return bps


def read_number(
    low: float | None = None, high: float | None = None, *, low_open: bool = False
) -> Reader:
    """A reader for a number (whole or decimal) within [low, high] ((low, high] if low_open)."""
    if low is not None and high is not None and not low_open:
        wanted = f"between {low:g} and {high:g}"
    elif low is not None and high is not None:
        wanted = f"greater than {low:g} and at most {high:g}"
    elif low is not None:
        wanted = f"{'greater than' if low_open else 'at least'} {low:g}"
    else:
        wanted = f"at most {high:g}"

    def read(loc: Loc, name: str, value: Any) -> Any:
        if not _is_number(value):
            hint = "write it without quotes" if isinstance(value, str) else None
            loc.report(name, f"expected a number, got {describe(value)}", hint)
            return INVALID
        number = float(value)
        too_low = low is not None and (number <= low if low_open else number < low)
        too_high = high is not None and number > high
        if too_low or too_high:
            loc.report(name, f"{_leaf(name)} must be {wanted}, got {value}")
            return INVALID
        return number

    return read


def read_ip(loc: Loc, name: str, value: Any) -> Any:
    hint = "an IPv4 (192.0.2.1) or IPv6 (2001:db8::1) address, without prefix length or port"
    if not isinstance(value, str):
        loc.report(name, f"expected an IP address, got {describe(value)}", hint)
        return INVALID
    try:
        address = ip_address(value.strip())
    except ValueError:
        loc.report(name, f"{value!r} is not a valid IP address", hint)
        return INVALID
    if address.is_unspecified or address.is_multicast:
        loc.report(name, f"{value!r} is not a host address", hint)
        return INVALID
    return address


def read_currency(loc: Loc, name: str, value: Any) -> Any:
    text = read_text(loc, name, value)
    if text is not INVALID and not CURRENCY.match(text):
        loc.report(name, f"{text!r} is not a 3-letter currency code",
                   "an ISO 4217 code in capitals: CNY, HKD, USD, EUR")
        return INVALID
    return text


def read_timezone(loc: Loc, name: str, value: Any) -> Any:
    text = read_text(loc, name, value)
    if text is INVALID:
        return INVALID
    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        known = sorted(zoneinfo.available_timezones())
        close = difflib.get_close_matches(text, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "an IANA time zone, e.g. Asia/Shanghai"
        loc.report(name, f"unknown time zone {text!r}", hint)
        return INVALID
    return text


def read_list(item: Reader, what: str) -> Reader:
    """A reader for a list whose items are read by `item` (named "field[i]")."""

    def read(loc: Loc, name: str, value: Any) -> Any:
        if not isinstance(value, list):
            loc.report(name, f"expected a list of {what}, got {describe(value)}")
            return INVALID
        return tuple(item(loc, f"{name}[{index}]", entry) for index, entry in enumerate(value))

    return read


def read_secret(loc: Loc, name: str, value: Any) -> Any:
    """A secret reference {env: NAME} or {file: /path}. The value itself is never echoed."""
    if not isinstance(value, Mapping):
        loc.report(name, f"{_leaf(name)} is written as a literal value", SECRET_HINT)
        return INVALID
    keys = list(value)
    if len(keys) != 1 or keys[0] not in ("env", "file"):
        loc.report(name, f"{_leaf(name)} must have exactly one of env or file", SECRET_HINT)
        return INVALID
    source = str(keys[0])
    reference = value[source]
    where = f"{name}.{source}"
    if not isinstance(reference, str) or not reference.strip():
        loc.report(where, f"expected {'a variable name' if source == 'env' else 'a path'}")
        return INVALID
    if source == "env" and not ENV_NAME.match(reference):
        loc.report(where, "not a valid environment variable name",
                   "letters, digits and _, not starting with a digit (KEYLINE_SNMP_COMMUNITY)")
        return INVALID
    if source == "file" and not reference.startswith("/"):
        loc.report(where, "a secret file must be given by its absolute path",
                   "the poller's working directory is not the inventory's (/etc/keyline/...)")
        return INVALID
    return SecretRef(source, str(reference))


def read_file_path(loc: Loc, name: str, value: Any) -> Any:
    text = read_text(loc, name, value)
    if text is not INVALID and not text.startswith("/"):
        loc.report(name, f"{_leaf(name)} must be an absolute path, got {text!r}")
        return INVALID
    return text


# --- object readers ------------------------------------------------------------------------


@dataclass
class Entry:
    """One object as read in pass 1: where it is, its key and its field values."""

    kind: str
    loc: Loc
    key: str | None
    values: dict[str, Any]
    ports: list[Entry] = field(default_factory=list)  # a device's ports


END_FIELDS = {
    "device": Field(read_text, required=True),
    "port": Field(read_port_name, required=True),
}


def read_end(loc: Loc, name: str, value: Any) -> Any:
    """A port reference {device, port}."""
    values = read_fields(loc.child(name), END_FIELDS, "a port reference {device, port}")
    if values is None or not _ok(values["device"], values["port"]):
        return INVALID
    return PortRef(values["device"], values["port"])


CIRCUIT_END_FIELDS = {**END_FIELDS, "sub_interface": Field(read_port_name)}


def read_circuit_end(loc: Loc, name: str, value: Any) -> Any:
    """A circuit end {device, port, sub_interface (optional: a port of the same device)}."""
    values = read_fields(loc.child(name), CIRCUIT_END_FIELDS,
                         "a circuit end {device, port, sub_interface}")
    if (values is None or not _ok(values["device"], values["port"])
            or values["sub_interface"] is INVALID):
        return INVALID
    return CircuitEnd(values["device"], values["port"], values["sub_interface"])


HOP_FIELDS = {
    "device": Field(read_text, required=True),
    "in_port": Field(read_port_name, required=True),
    "out_port": Field(read_port_name, required=True),
}


def read_path(loc: Loc, name: str, value: Any) -> Any:
    """A declared path: a list of hops {device, in_port, out_port}; a failed hop is INVALID."""
    if not isinstance(value, list):
        loc.report(name, f"expected a list of hops, got {describe(value)}")
        return INVALID
    hops = []
    for index in range(len(value)):
        hop = loc.child(f"{name}[{index}]")
        values = read_fields(hop, HOP_FIELDS, "a hop {device, in_port, out_port}")
        if values is None or not _ok(*values.values()):
            hops.append(INVALID)
        else:
            hops.append(Hop(values["device"], values["in_port"], values["out_port"],
                            hop.source()))
    return tuple(hops)


CUSTOMER_FIELDS = {
    "id": Field(read_key, required=True),
    "name": Field(read_text, required=True),
    "account_manager": Field(read_text),
    "contact_email": Field(read_email),
    "language": Field(read_choice(LANGUAGES, "language")),
}
SITE_FIELDS = {
    "id": Field(read_key, required=True),
    "name": Field(read_text, required=True),
    "customer": Field(read_text),
    "address": Field(read_text),
    "city": Field(read_text),
}
CREDENTIAL_COMMON_FIELDS = {
    "id": Field(read_key, required=True),
    "kind": Field(read_choice(CREDENTIAL_KINDS, "credential kind"), required=True),
}
CREDENTIAL_KIND_FIELDS: dict[str, dict[str, Field]] = {
    "snmp_v1": {"community": Field(read_secret, required=True)},
    "snmp_v2c": {"community": Field(read_secret, required=True)},
    "snmp_v3": {
        "username": Field(read_text, required=True),
        "security_level": Field(read_choice(SNMP_SECURITY_LEVELS, "security level"),
                                required=True),
        "auth_protocol": Field(read_choice(SNMP_AUTH_PROTOCOLS, "auth protocol")),
        "auth_key": Field(read_secret),
        "priv_protocol": Field(read_choice(SNMP_PRIV_PROTOCOLS, "priv protocol")),
        "priv_key": Field(read_secret),
    },
    "ssh": {
        "username": Field(read_text, required=True),
        "password": Field(read_secret),
        "key_file": Field(read_file_path),
        "enable_secret": Field(read_secret),
        "port": Field(read_ip_port),
    },
}
SECRET_FIELDS = ("community", "auth_key", "priv_key", "password", "enable_secret")
PORT_FIELDS = {
    "name": Field(read_port_name, required=True),
    "if_index": Field(read_positive_int),
    "speed_bps": Field(read_bps),
    "description": Field(read_text),
    "monitor": Field(read_bool),
}


def read_ports(loc: Loc, name: str, value: Any) -> Any:
    """A device's ports: a list of Entry (kind "ports"), keyed by port name."""
    if not isinstance(value, list):
        loc.report(name, f"expected a list of ports, got {describe(value)}")
        return INVALID
    ports = []
    for index in range(len(value)):
        port = loc.child(f"{name}[{index}]")
        values = read_fields(port, PORT_FIELDS, "a port")
        if values is not None:
            key = values["name"] if _ok(values["name"]) else None
            ports.append(Entry("ports", port, key, values))
    return ports


DEVICE_FIELDS = {
    "name": Field(read_device_name, required=True),
    "site": Field(read_text),
    "role": Field(read_choice(DEVICE_ROLES, "device role"), required=True),
    "platform": Field(read_choice(PLATFORMS, "platform"), required=True),
    "management_address": Field(read_ip, required=True),
    "snmp_credential": Field(read_text, required=True),
    "cli_credential": Field(read_text),
    "poller_group": Field(read_key, default=DEFAULT_POLLER_GROUP),
    "snmp_port": Field(read_ip_port, default=DEFAULT_SNMP_PORT),
    "ports": Field(read_ports, default=()),
}
LINK_FIELDS = {
    "a": Field(read_end, required=True),
    "z": Field(read_end, required=True),
    "cost": Field(read_positive_int, default=DEFAULT_LINK_COST),
}
CIRCUIT_FIELDS = {
    "id": Field(read_key, required=True),
    "customer": Field(read_text, required=True),
    "service_type": Field(read_choice(SERVICE_TYPES, "service type"), required=True),
    "bandwidth_bps": Field(read_bps, required=True),
    "a_end": Field(read_circuit_end, required=True),
    "z_end": Field(read_circuit_end, required=True),
    "path": Field(read_path, default=()),
    "sla_contract": Field(read_text),
    "monthly_charge": Field(read_number(0)),
    "description": Field(read_text),
}
VPN_FIELDS = {
    "id": Field(read_key, required=True),
    "customer": Field(read_text, required=True),
    "name": Field(read_text, required=True),
    "sites": Field(read_list(read_text, "site ids"), default=()),
    "circuits": Field(read_list(read_text, "circuit ids"), default=()),
}
USER_FIELDS = {
    "login": Field(read_login, required=True),
    "role": Field(read_choice(USER_ROLES, "user role"), required=True),
    "customer": Field(read_text),
    "full_name": Field(read_text),
    "email": Field(read_email),
}


def _read_time(loc: Loc, name: str, value: Any, *, is_end: bool) -> Any:
    if not isinstance(value, str):
        loc.report(name, f"expected a time HH:MM, got {describe(value)}", 'quote it: "08:00"')
        return INVALID
    if TIME_OF_DAY.match(value) or (is_end and value == "24:00"):
        return str(value)
    loc.report(name, f"{value!r} is not a valid time",
               "HH:MM on a 24-hour clock, 00:00 to 23:59 (24:00 only as an end)")
    return INVALID


def _read_days(loc: Loc, name: str, value: Any) -> Any:
    """Weekdays: a list of mon..sun, where an item may be a range "mon-fri"."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        loc.report(name, f"expected a list of weekdays, got {describe(value)}",
                   "e.g. [mon, tue, wed, thu, fri] or [mon-fri]")
        return INVALID
    allowed = "allowed: " + ", ".join(WEEKDAYS) + ' (or a range such as "mon-fri")'
    days: set[str] = set()
    failed = False
    for index, item in enumerate(items):
        where = name if isinstance(value, str) else f"{name}[{index}]"
        bounds = item.split("-") if isinstance(item, str) else [None]
        if len(bounds) > 2 or not all(day in WEEKDAYS for day in bounds):
            loc.report(where, f"unknown weekday {item!r}" if isinstance(item, str)
                       else f"expected a weekday, got {describe(item)}", allowed)
            failed = True
            continue
        first, last = WEEKDAYS.index(bounds[0]), WEEKDAYS.index(bounds[-1])
        if first > last:
            loc.report(where, f"weekday range {item!r} runs backwards",
                       "a range runs from mon towards sun (e.g. mon-fri)")
            failed = True
            continue
        days.update(WEEKDAYS[first:last + 1])
    if failed:
        return INVALID
    return tuple(day for day in WEEKDAYS if day in days)


HOURS_FIELDS = {
    "days": Field(_read_days, required=True),
    "start": Field(lambda loc, name, value: _read_time(loc, name, value, is_end=False),
                   required=True),
    "end": Field(lambda loc, name, value: _read_time(loc, name, value, is_end=True),
                 required=True),
}


def _read_hours(loc: Loc, name: str, value: Any) -> Any:
    if value == ALWAYS:
        return ()
    if not isinstance(value, list):
        loc.report(name, f"expected {ALWAYS!r} or a list of {{days, start, end}},"
                   f" got {describe(value)}")
        return INVALID
    periods = []
    for index in range(len(value)):
        period = loc.child(f"{name}[{index}]")
        values = read_fields(period, HOURS_FIELDS, "service hours {days, start, end}")
        if values is None or not _ok(*values.values()):
            periods.append(INVALID)
            continue
        if values["start"] >= values["end"]:
            period.report("end", f"end {values['end']} is not after start {values['start']}",
                          "a period cannot cross midnight: split it into two entries")
            periods.append(INVALID)
            continue
        periods.append(WeeklyHours(values["days"], values["start"], values["end"]))
    return INVALID if INVALID in periods else tuple(periods)


def _read_holiday(loc: Loc, name: str, value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and ISO_DATE.match(value):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    loc.report(name, f"{describe(value)} is not an ISO date", "YYYY-MM-DD, e.g. 2025-10-01")
    return INVALID


def _read_official_days(loc: Loc, name: str, value: Any) -> Any:
    """`{source: chinesecalendar, years: [2025, 2026]}` or `{source: holidays, country: CN,
    years: [...]}`: which years' official days to fill (config/inventory/official_days.py)."""
    request = loc.child(name)
    values = read_fields(request, OFFICIAL_DAYS_FIELDS, "official days {source, years, country}")
    if values is None:
        return INVALID
    source, years, country = values["source"], values["years"], values["country"]
    if not _ok(source, years) or INVALID in years or country is INVALID:
        return INVALID
    failed = False
    if source == official.HOLIDAYS and country is None:
        request.report("country", "missing required field 'country'",
                       "the holidays package needs a country code, e.g. CN")
        failed = True
    if source == official.CHINESECALENDAR and country not in (None, "CN"):
        request.report("country", f"chinesecalendar has official days of CN only, not {country}",
                       "omit country, or use source: holidays")
        failed = True
    if not years:
        request.report("years", "years is empty", "name the years to fill, e.g. [2026]")
        failed = True
    for index, year in enumerate(years):
        if year in years[:index]:
            request.report(f"years[{index}]", f"year {year} is listed twice")
            failed = True
    return INVALID if failed else OfficialDays(source, tuple(years), country)


CALENDAR_FIELDS = {
    "timezone": Field(read_timezone, required=True),
    "hours": Field(_read_hours, default=()),
    "holidays": Field(read_list(_read_holiday, "ISO dates"), default=()),
    "working_dates": Field(read_list(_read_holiday, "ISO dates"), default=()),
    "official_days": Field(_read_official_days),
}
OFFICIAL_DAYS_FIELDS = {
    "source": Field(read_choice(OFFICIAL_DAY_SOURCES, "source of official days"), required=True),
    "years": Field(read_list(read_int_at_least(1900, 2200), "years"), required=True),
    "country": Field(read_text),
}
_LIST_WHAT = {"holidays": "holiday", "working_dates": "working date"}


def _written_dates(calendar: Loc, name: str, dates: tuple[Any, ...],
                   sources: dict[str, str]) -> dict[str, int]:
    """The dates of one list by line, their sources recorded; a date listed twice reported."""
    lines: dict[str, int] = {}
    for index, day in enumerate(dates):
        if day is INVALID:
            continue
        line = calendar.line_of(f"{name}[{index}]")
        if day in lines:
            calendar.report(f"{name}[{index}]", f"{_LIST_WHAT[name]} {day} is listed twice"
                            f" (also at line {lines[day]})")
            continue
        lines[day] = line
        sources[day] = str(Source(calendar.file, line))
    return lines


def read_calendar(loc: Loc, name: str, value: Any) -> Any:
    """A service calendar. Each date keeps its source (file:line, or the package that filled
    it); a date both a holiday and a working date, from the files or from a package, and a
    year the package does not carry are errors."""
    calendar = loc.child(name)
    values = read_fields(calendar, CALENDAR_FIELDS, "a service calendar")
    if values is None:
        return INVALID
    holidays, working, request = (values["holidays"], values["working_dates"],
                                  values["official_days"])
    if not _ok(values["timezone"], values["hours"], holidays, working) or request is INVALID:
        return INVALID
    problems_before = len(calendar.problems)
    sources: dict[str, str] = {}
    holiday_lines = _written_dates(calendar, "holidays", holidays, sources)
    working_lines = _written_dates(calendar, "working_dates", working, sources)
    for index, day in enumerate(working):
        if day in holiday_lines and working.index(day) == index:
            calendar.report(f"working_dates[{index}]", f"{day} is both a holiday (line"
                            f" {holiday_lines[day]}) and a working date",
                            "a date is either off or worked: remove one of them")
    filled_holidays: set[str] = set()
    filled_working: set[str] = set()
    years = request.years if request else ()
    if request:
        try:
            official.source_label(request.source)
        except official.OfficialDaysError as error:  # not installed: once, not per year
            calendar.report("official_days.source", error.message, error.hint)
            years = ()
    for index, year in enumerate(years):
        try:
            days = official.year_days(request.source, year, request.country)
        except official.OfficialDaysError as error:
            calendar.report(f"official_days.years[{index}]", error.message, error.hint)
            continue
        for kind, filled, written, other, other_name in (
                ("holiday", days.holidays, holiday_lines, working_lines, "working_dates"),
                ("working date", days.working_dates, working_lines, holiday_lines, "holidays")):
            other_kind = _LIST_WHAT[other_name]
            for day in sorted(filled):
                text = day.isoformat()
                if text in other:
                    calendar.report(f"{other_name}[{values[other_name].index(text)}]",
                                    f"{text} is listed as a {other_kind} but is a {kind} in"
                                    f" {days.source}",
                                    f"remove it, or take {year} out of official_days.years and"
                                    " list that year's dates by hand")
                elif text not in written:  # a date also written keeps its file:line
                    (filled_holidays if kind == "holiday" else filled_working).add(text)
                    sources[text] = days.source
    if INVALID in holidays or INVALID in working or len(calendar.problems) > problems_before:
        return INVALID
    return ServiceCalendar(
        values["timezone"], values["hours"],
        tuple(holiday_lines) + tuple(sorted(filled_holidays)),
        tuple(working_lines) + tuple(sorted(filled_working)),
        request, dict(sorted(sources.items())))


PRIORITY_FIELDS = {
    "response_min": Field(read_positive_int, required=True),
    "resolution_min": Field(read_positive_int, required=True),
}


def read_priorities(loc: Loc, name: str, value: Any) -> Any:
    """The priority matrix: P1..P4, each {response_min, resolution_min}; all four required."""
    matrix = loc.child(name)
    if not isinstance(value, Mapping):
        loc.report(name, f"expected a mapping of priorities P1..P4, got {describe(value)}")
        return INVALID
    result: dict[str, PriorityTimes] = {}
    failed = False
    for key in value:
        if key not in PRIORITIES:
            matrix.report(str(key), f"unknown priority {str(key)!r}",
                          "allowed: " + ", ".join(PRIORITIES))
            failed = True
    for priority in PRIORITIES:
        if priority not in value:
            matrix.report(priority, f"missing priority {priority}",
                          "a contract gives response and resolution times for P1, P2, P3, P4")
            failed = True
            continue
        times = matrix.child(priority)
        values = read_fields(times, PRIORITY_FIELDS, "priority times")
        if values is None or not _ok(*values.values()):
            failed = True
            continue
        if values["resolution_min"] < values["response_min"]:
            times.report("resolution_min",
                         f"resolution_min {values['resolution_min']} is shorter than"
                         f" response_min {values['response_min']}")
            failed = True
            continue
        result[priority] = PriorityTimes(values["response_min"], values["resolution_min"])
    return INVALID if failed else result


# A step's threshold is worded as the contract words it: "below" (strict) or "at or below".
CREDIT_FIELDS = {
    "below_pct": Field(read_number(0, 100)),
    "at_or_below_pct": Field(read_number(0, 100)),
    "credit_pct": Field(read_number(0, 100), required=True),
}
CREDIT_WORDING_HINT = ("below_pct applies when availability < the value, at_or_below_pct when"
                       " availability <= the value; give one of them")


def threshold_key(step: CreditStep) -> str:
    """The field a credit step's threshold is written in: below_pct or at_or_below_pct."""
    return "at_or_below_pct" if step.inclusive else "below_pct"


def read_credits(loc: Loc, name: str, value: Any) -> Any:
    """Credit steps, from the highest threshold down; a lower band credits no less."""
    if not isinstance(value, list):
        loc.report(name, f"expected a list of credit steps, got {describe(value)}")
        return INVALID
    steps: list[Any] = []
    previous: CreditStep | None = None
    for index in range(len(value)):
        step = loc.child(f"{name}[{index}]")
        values = read_fields(step, CREDIT_FIELDS,
                             "a credit step {below_pct or at_or_below_pct, credit_pct}")
        if values is None:
            steps.append(INVALID)
            continue
        strict, inclusive = values["below_pct"], values["at_or_below_pct"]
        if strict is not None and inclusive is not None:
            step.report("at_or_below_pct", "a credit step gives below_pct or at_or_below_pct,"
                        " not both", CREDIT_WORDING_HINT)
            steps.append(INVALID)
            continue
        if strict is None and inclusive is None:
            step.report("below_pct", "missing the step's threshold: below_pct or"
                        " at_or_below_pct", CREDIT_WORDING_HINT)
            steps.append(INVALID)
            continue
        if any(v is INVALID for v in values.values()):
            steps.append(INVALID)
            continue
        current = CreditStep(inclusive if strict is None else strict, values["credit_pct"],
                             inclusive=strict is None)
        key = threshold_key(current)
        steps.append(current)
        if previous is not None:
            if current.below_pct == previous.below_pct:
                twice = (f"{key} {current.below_pct:g} is listed twice"
                         if previous.inclusive == current.inclusive else
                         f"{key} {current.below_pct:g} repeats the threshold of the step above"
                         f" ({threshold_key(previous)} {previous.below_pct:g})")
                step.report(key, twice)
                steps[-1] = INVALID
            elif current.below_pct > previous.below_pct:
                step.report(key,
                            f"credit steps are not sorted: {key} {current.below_pct:g}"
                            f" comes after {previous.below_pct:g}",
                            f"list the steps from the highest {key} down")
                steps[-1] = INVALID
            elif current.credit_pct < previous.credit_pct:
                step.report("credit_pct",
                            f"credit_pct {current.credit_pct:g} is less than the"
                            f" {previous.credit_pct:g} of the step above",
                            "a lower availability earns at least the same credit")
                steps[-1] = INVALID
        previous = current
    return INVALID if INVALID in steps else tuple(steps)


ESCALATION_FIELDS = {
    "at_pct": Field(read_number(0, 1000, low_open=True), required=True),
    "clock": Field(read_choice(ESCALATION_CLOCKS, "clock"), default="both"),
    "notify": Field(read_list(read_text, "recipients"), required=True),
}


def read_escalation(loc: Loc, name: str, value: Any) -> Any:
    """Escalation levels {at_pct, clock, notify}: percent of a deadline, from the lowest up."""
    if not isinstance(value, list) or not value:
        loc.report(name, f"expected a list of escalation levels, got {describe(value)}",
                   "e.g. - {at_pct: 50, notify: [role:noc]}")
        return INVALID
    steps: list[Any] = []
    for index in range(len(value)):
        level = loc.child(f"{name}[{index}]")
        values = read_fields(level, ESCALATION_FIELDS, "an escalation level {at_pct, notify}")
        if values is None or not _ok(*values.values()):
            steps.append(INVALID)
            continue
        bad = False
        for position, recipient in enumerate(values["notify"]):
            problem = recipient_problem(recipient) if recipient is not INVALID else "invalid"
            if problem:
                level.report(f"notify[{position}]", problem)
                bad = True
        if not values["notify"]:
            level.report("notify", "name at least one recipient")
            bad = True
        if steps and _ok(steps[-1]) and values["at_pct"] <= steps[-1].at_pct:
            level.report("at_pct", f"at_pct {values['at_pct']:g} is not above the level"
                         f" before ({steps[-1].at_pct:g})", "list the levels from the lowest up")
            bad = True
        steps.append(INVALID if bad else EscalationStep(values["at_pct"], values["clock"],
                                                        tuple(values["notify"])))
    return INVALID if INVALID in steps else tuple(steps)


SLA_FIELDS = {
    "id": Field(read_key, required=True),
    "name": Field(read_text, required=True),
    "customer": Field(read_text),
    "availability_target_pct": Field(read_number(0, 100, low_open=True), required=True),
    "latency_target_ms": Field(read_number(0)),
    "jitter_target_ms": Field(read_number(0)),
    "loss_target_pct": Field(read_number(0, 100)),
    "calendar": Field(read_calendar, required=True),
    "priorities": Field(read_priorities, required=True),
    "credits": Field(read_credits, default=()),
    "monthly_charge": Field(read_number(0), required=True),
    "currency": Field(read_currency, required=True),
    "degraded_counts_as_down": Field(read_bool, default=False),
    "unknown_counts_as": Field(read_choice(UNKNOWN_COUNTS, "rule for unknown time"),
                               default="excluded"),
    "escalation": Field(read_escalation),
}


def _key_of(values: dict[str, Any] | None, name: str) -> str | None:
    return values[name] if values is not None and _ok(values[name]) else None


def read_simple(
    kind: str, fields: Mapping[str, Field], key_field: str | None, what: str
) -> Callable[[Loc], Entry | None]:
    """A reader for a kind with no rule beyond its fields' own."""

    def read(loc: Loc) -> Entry | None:
        values = read_fields(loc, fields, what)
        if values is None:
            return None
        return Entry(kind, loc, _key_of(values, key_field) if key_field else None, values)

    return read


def read_credential(loc: Loc) -> Entry | None:
    node = loc.node
    kind = node.get("kind") if isinstance(node, Mapping) else None
    kind = kind if isinstance(kind, str) else None
    if kind in CREDENTIAL_KIND_FIELDS:
        fields = {**CREDENTIAL_COMMON_FIELDS, **CREDENTIAL_KIND_FIELDS[kind]}
    else:  # unknown kind: accept any credential field, require none, so one problem shows
        fields = dict(CREDENTIAL_COMMON_FIELDS)
        for kind_fields in CREDENTIAL_KIND_FIELDS.values():
            fields.update({name: Field(spec.read) for name, spec in kind_fields.items()})
    values = read_fields(loc, fields, f"a {kind} credential" if kind in CREDENTIAL_KINDS
                         else "a credential")
    if values is None:
        return None
    if kind == "snmp_v3" and _ok(values["security_level"]):
        level = values["security_level"]
        needed = {"noAuthNoPriv": (), "authNoPriv": ("auth_protocol", "auth_key"),
                  "authPriv": ("auth_protocol", "auth_key", "priv_protocol", "priv_key")}[level]
        for name in ("auth_protocol", "auth_key", "priv_protocol", "priv_key"):
            given = node.get(name) is not None
            if name in needed and not given:
                loc.report(name, f"security_level {level} needs {name}")
                values[name] = INVALID
            elif name not in needed and given:
                loc.report(name, f"{name} is not used with security_level {level}",
                           f"remove it, or raise security_level to "
                           f"{'authPriv' if name.startswith('priv') else 'authNoPriv'}")
                values[name] = INVALID
    if kind == "ssh" and node.get("password") is None and node.get("key_file") is None:
        loc.report("password", "an ssh credential needs password or key_file",
                   "password: {env: NAME} or key_file: /path/to/private/key")
        values["password"] = INVALID
    return Entry("credentials", loc, _key_of(values, "id"), values)


def read_device(loc: Loc) -> Entry | None:
    values = read_fields(loc, DEVICE_FIELDS, "a device")
    if values is None:
        return None
    device = Entry("devices", loc, _key_of(values, "name"), values)
    if _ok(values["ports"]):
        device.ports = list(values["ports"])
        seen_names: dict[str, Entry] = {}
        seen_indexes: dict[int, Entry] = {}
        for port in device.ports:
            if port.key is not None:
                first = seen_names.setdefault(port.key, port)
                if first is not port:
                    port.loc.report("name", f"port {port.key} is declared twice on this device"
                                    f" (first at {first.loc.file}:{first.loc.line})")
                    port.key = None
            if_index = port.values["if_index"]
            if _ok(if_index):
                first = seen_indexes.setdefault(if_index, port)
                if first is not port:
                    port.loc.report("if_index", f"if_index {if_index} is already used by port"
                                    f" {first.key} (line {first.loc.line})")
    return device


def read_sla_contract(loc: Loc) -> Entry | None:
    values = read_fields(loc, SLA_FIELDS, "an SLA contract")
    if values is None:
        return None
    target, steps = values["availability_target_pct"], values["credits"]
    if _ok(target, steps):
        for index, step in enumerate(steps):
            # the target is met at exactly the target, so an "at or below" step must lie
            # below it and a "below" step may sit on it
            key = threshold_key(step)
            if step.below_pct > target or (step.inclusive and step.below_pct == target):
                where = "above" if step.below_pct > target else "at"
                loc.report(f"credits[{index}].{key}",
                           f"{key} {step.below_pct:g} is {where} the availability target"
                           f" {target:g}", "a credit is owed only when the target is missed")
                values["credits"] = INVALID
    return Entry("sla_contracts", loc, _key_of(values, "id"), values)


def read_user(loc: Loc) -> Entry | None:
    node = loc.node
    refused = [key for key in node if "pass" in str(key).lower()] if isinstance(
        node, Mapping) else []
    login = node.get("login") if isinstance(node, Mapping) else None
    login = login if isinstance(login, str) else "LOGIN"
    for key in refused:
        loc.report(str(key), "passwords are not kept in inventory files",
                   f"remove it; set the password with `keyline user passwd {login}`")
    values = read_fields(loc, USER_FIELDS, "a user", skip=refused)
    if values is None:
        return None
    role, customer = values["role"], values["customer"]
    if role == "customer" and customer is None:
        loc.report("customer", "a user with role customer must name its customer")
    elif _ok(role) and role != "customer" and customer is not None:
        loc.report("customer", f"a user with role {role} cannot belong to a customer",
                   "remove customer; an account manager is named on the customer"
                   " (account_manager)" if role == "account_manager"
                   else "remove customer, or give the user role customer")
    return Entry("users", loc, _key_of(values, "login"), values)


READERS: dict[str, Callable[[Loc], Entry | None]] = {
    "customers": read_simple("customers", CUSTOMER_FIELDS, "id", "a customer"),
    "sites": read_simple("sites", SITE_FIELDS, "id", "a site"),
    "credentials": read_credential,
    "devices": read_device,
    "links": read_simple("links", LINK_FIELDS, None, "a link"),
    "circuits": read_simple("circuits", CIRCUIT_FIELDS, "id", "a circuit"),
    "vpns": read_simple("vpns", VPN_FIELDS, "id", "a VPN"),
    "sla_contracts": read_sla_contract,
    "users": read_user,
}
KEY_FIELDS = {
    "customers": "id", "sites": "id", "credentials": "id", "devices": "name", "links": "a",
    "circuits": "id", "vpns": "id", "sla_contracts": "id", "users": "login",
}
KIND_NAMES = {
    "customers": "customer", "sites": "site", "credentials": "credential", "devices": "device",
    "links": "link", "circuits": "circuit", "vpns": "VPN", "sla_contracts": "SLA contract",
    "users": "user",
}


# --- pass 1 and 2: read every document, register keys -------------------------------------


@dataclass(frozen=True)
class Document:
    """One parsed inventory file: its path as given and its round-trip YAML root (or None)."""

    file: str
    root: Any


@dataclass
class Registry:
    """Every object read, by kind and key, plus the links' port usage."""

    entries: dict[str, dict[str, Entry]] = field(
        default_factory=lambda: {kind: {} for kind in SECTIONS})
    links: dict[str, Entry] = field(default_factory=dict)

    def get(self, kind: str, key: Any) -> Entry | None:
        return self.entries[kind].get(key) if isinstance(key, str) else None


def _register(registry: Registry, entry: Entry) -> None:
    kind = entry.kind
    if kind == "links":
        a, z = entry.values["a"], entry.values["z"]
        if not _ok(a, z):
            return
        entry.key = Link(a, z, 1, entry.loc.source()).key
        first = registry.links.get(entry.key)
        if first is not None:
            entry.loc.report("a", f"link {a} -- {z} is declared twice"
                             f" (first at {first.loc.file}:{first.loc.line})")
            return
        registry.links[entry.key] = entry
        return
    if entry.key is None:
        return
    first = registry.entries[kind].get(entry.key)
    if first is not None:
        entry.loc.report(KEY_FIELDS[kind], f"duplicate {KIND_NAMES[kind]} {entry.key!r}:"
                         f" first declared at {first.loc.file}:{first.loc.line}")
        return
    registry.entries[kind][entry.key] = entry


def read_documents(documents: Sequence[Document], problems: list[InventoryProblem]) -> Registry:
    """Passes 1 and 2: read every object of every document and register it by key."""
    registry = Registry()
    for document in documents:
        root = document.root
        if root is None:
            continue
        if not isinstance(root, Mapping):
            problems.append(InventoryProblem(
                document.file, 1, "(file)",
                f"expected a mapping of sections, got {describe(root)}",
                "a file holds sections such as customers:, devices:, circuits:"))
            continue
        top = Loc(document.file, "", root, 1, problems)
        for section, items in root.items():
            if section not in READERS:
                top.report(str(section), f"unknown section {str(section)!r}",
                           did_you_mean(section, SECTIONS, "sections"))
                continue
            if items is None:
                continue
            if not isinstance(items, list):
                top.report(section, f"expected a list of {section}, got {describe(items)}",
                           f"each item of {section}: starts with '- '")
                continue
            for index in range(len(items)):
                entry = READERS[section](top.child(f"{section}[{index}]"))
                if entry is not None:
                    _register(registry, entry)
    return registry


# --- pass 3: references --------------------------------------------------------------------


@dataclass
class _Checker:
    registry: Registry
    report_unknown: bool  # False while a file could not be read: its objects are missing

    def ref(self, loc: Loc, name: str, kind: str, key: Any) -> Entry | None:
        """The object `key` of `kind` named by field `name`, reporting it when unknown."""
        if not _ok(key):
            return None
        entry = self.registry.get(kind, key)
        if entry is None and self.report_unknown:
            known = self.registry.entries[kind]
            # Keys are short (p1, pe2): a lower cutoff than for field names.
            close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.5)
            hint = (f"did you mean {close[0]!r}?" if close
                    else f"declare it under {kind}: (none is named so)")
            loc.report(name, f"unknown {KIND_NAMES[kind]} {key!r}", hint)
        return entry

    def port(self, loc: Loc, port_field: str, device: Entry | None, port: Any) -> bool:
        """Whether `port` exists on the (known) `device`, reporting it when it does not."""
        if device is None or not _ok(port):
            return False
        names = [p.key for p in device.ports if p.key is not None]
        if port in names:
            return True
        if not _ok(device.values["ports"]):
            return False  # its ports list failed to read: already reported
        hint = (f"ports of {device.key}, closest first: "
                f"{_listing(closest_first(port, names), 8)}"
                if names else f"device {device.key} declares no ports")
        loc.report(port_field, f"device {device.key} has no port {port!r}", hint)
        return False

    def end(self, loc: Loc, name: str, end: Any) -> bool:
        """Whether a port reference {device, port} resolves, reporting what does not."""
        if not _ok(end):
            return False
        device = self.ref(loc, f"{name}.device", "devices", end.device)
        return self.port(loc, f"{name}.port", device, end.port)


def _check_customers(check: _Checker, registry: Registry) -> None:
    for entry in registry.entries["customers"].values():
        manager = check.ref(entry.loc, "account_manager", "users",
                            entry.values["account_manager"])
        if manager is not None and manager.values["role"] not in (INVALID, "account_manager"):
            entry.loc.report("account_manager",
                             f"user {manager.key} has role {manager.values['role']},"
                             " not account_manager",
                             f"give {manager.key} role account_manager, or name another user")


def _check_sites_users_contracts(check: _Checker, registry: Registry) -> None:
    for kind in ("sites", "users", "sla_contracts"):
        for entry in registry.entries[kind].values():
            check.ref(entry.loc, "customer", "customers", entry.values["customer"])


def _check_devices(check: _Checker, registry: Registry) -> None:
    addresses: dict[tuple[Any, Any], Entry] = {}
    for entry in registry.entries["devices"].values():
        values = entry.values
        check.ref(entry.loc, "site", "sites", values["site"])
        for name, kinds in (("snmp_credential", ("snmp_v1", "snmp_v2c", "snmp_v3")),
                            ("cli_credential", ("ssh",))):
            credential = check.ref(entry.loc, name, "credentials", values[name])
            kind = credential.values["kind"] if credential is not None else None
            if _ok(kind) and kind not in kinds:
                allowed = " or ".join(filter(None, (", ".join(kinds[:-1]), kinds[-1])))
                entry.loc.report(name, f"credential {credential.key} is {kind},"
                                 f" but {name} must be {allowed}")
        if _ok(values["management_address"], values["snmp_port"]):
            where = (values["management_address"], values["snmp_port"])
            first = addresses.setdefault(where, entry)
            if first is not entry:
                entry.loc.report("management_address",
                                 f"{values['management_address']} port {values['snmp_port']}"
                                 f" is already the address of device {first.key}"
                                 f" ({first.loc.file}:{first.loc.line})",
                                 "each device needs its own management address (or SNMP port)")


def _check_links(check: _Checker, registry: Registry) -> dict[str, PortRef]:
    """Check links; return each linked port ("dev:port") mapped to the port at the far end."""
    far_end: dict[str, PortRef] = {}
    used_by: dict[str, Entry] = {}
    for entry in registry.links.values():
        a, z = entry.values["a"], entry.values["z"]
        if a == z:
            entry.loc.report("z", f"link from port {a} to itself")
            continue
        ends_ok = [check.end(entry.loc, name, end) for name, end in (("a", a), ("z", z))]
        for name, end, other in (("a", a, z), ("z", z, a)):
            first = used_by.setdefault(str(end), entry)
            if first is not entry:
                entry.loc.report(f"{name}.port", f"port {end} is already used by the link"
                                 f" at {first.loc.file}:{first.loc.line}",
                                 "a port joins at most one link")
            elif all(ends_ok):
                far_end[str(end)] = other
    return far_end


def _check_path(check: _Checker, entry: Entry, far_end: Mapping[str, PortRef]) -> None:
    loc, values = entry.loc, entry.values
    hops, a_end, z_end = values["path"], values["a_end"], values["z_end"]
    if not _ok(hops) or not hops:
        return
    known = []
    for index, hop in enumerate(hops):
        if hop is INVALID:
            known.append(False)
            continue
        name = f"path[{index}]"
        device = check.ref(loc, f"{name}.device", "devices", hop.device)
        in_ok = check.port(loc, f"{name}.in_port", device, hop.in_port)
        out_ok = check.port(loc, f"{name}.out_port", device, hop.out_port)
        known.append(in_ok and out_ok)
    first, last = hops[0], hops[-1]
    if first is not INVALID and _ok(a_end):
        if first.device != a_end.device:
            loc.report("path[0].device", f"the path must start at the A end device"
                       f" {a_end.device}, not {first.device}")
        elif first.in_port != a_end.port:
            loc.report("path[0].in_port", f"the first hop must enter on the A end port"
                       f" {a_end.port}, not {first.in_port}")
    last_index = len(hops) - 1
    if last is not INVALID and _ok(z_end):
        if last.device != z_end.device:
            loc.report(f"path[{last_index}].device", f"the path must end at the Z end device"
                       f" {z_end.device}, not {last.device}")
        elif last.out_port != z_end.port:
            loc.report(f"path[{last_index}].out_port", f"the last hop must leave on the Z end"
                       f" port {z_end.port}, not {last.out_port}")
    for index in range(last_index):
        if not (known[index] and known[index + 1]):
            continue
        here = PortRef(hops[index].device, hops[index].out_port)
        there = PortRef(hops[index + 1].device, hops[index + 1].in_port)
        if far_end.get(str(here)) != there:
            linked = far_end.get(str(here))
            hint = (f"{here} (path[{index}].out_port) links to {linked}" if linked
                    else f"{here} (path[{index}].out_port) is not joined to any port by a link")
            loc.report(f"path[{index + 1}].in_port",
                       f"hop sequence not contiguous: no link joins {here} to {there}", hint)


def _check_circuits(check: _Checker, registry: Registry, far_end: Mapping[str, PortRef]) -> None:
    for entry in registry.entries["circuits"].values():
        loc, values = entry.loc, entry.values
        check.ref(loc, "customer", "customers", values["customer"])
        contract = check.ref(loc, "sla_contract", "sla_contracts", values["sla_contract"])
        owner = contract.values["customer"] if contract is not None else None
        if _ok(owner, values["customer"]) and owner != values["customer"]:
            loc.report("sla_contract", f"SLA contract {contract.key} belongs to customer"
                       f" {owner}, not {values['customer']}")
        a_end, z_end = values["a_end"], values["z_end"]
        if _ok(a_end, z_end) and a_end == z_end:
            loc.report("z_end", f"the Z end is the A end ({a_end})",
                       "a circuit joins two different ports")
        check.end(loc, "a_end", a_end)
        if not (_ok(a_end, z_end) and a_end == z_end):
            check.end(loc, "z_end", z_end)
        for name, end in (("a_end", a_end), ("z_end", z_end)):
            _check_sub_interface(check, loc, name, end)
        _check_path(check, entry, far_end)


def _check_sub_interface(check: _Checker, loc: Loc, name: str, end: Any) -> None:
    """A circuit end's sub-interface: a declared port of the end's device, not the port."""
    if not _ok(end) or end.sub_interface is None:
        return
    if end.sub_interface == end.port:
        loc.report(f"{name}.sub_interface", f"the sub-interface is the port itself"
                   f" ({end.port})", "name the per-circuit sub-interface, e.g."
                   f" {end.port}.100, or leave sub_interface out")
        return
    device = check.registry.get("devices", end.device)
    check.port(loc, f"{name}.sub_interface", device, end.sub_interface)


def _check_vpns(check: _Checker, registry: Registry) -> None:
    for entry in registry.entries["vpns"].values():
        loc, values = entry.loc, entry.values
        owner = values["customer"]
        check.ref(loc, "customer", "customers", owner)
        for member_field, kind in (("sites", "sites"), ("circuits", "circuits")):
            members = values[member_field]
            if not _ok(members):
                continue
            for index, key in enumerate(members):
                name = f"{member_field}[{index}]"
                member = check.ref(loc, name, kind, key)
                member_owner = member.values["customer"] if member is not None else None
                if member is not None and _ok(owner) and member_owner is not INVALID and (
                        member_owner != owner):
                    whose = f"customer {member_owner}" if member_owner else "no customer"
                    loc.report(name, f"{KIND_NAMES[kind]} {key} belongs to {whose},"
                               f" not to the VPN's customer {owner}")


def check_references(registry: Registry, *, report_unknown: bool = True) -> None:
    """Pass 3: every name must resolve, with the right kind, owner and ports."""
    check = _Checker(registry, report_unknown)
    _check_customers(check, registry)
    _check_sites_users_contracts(check, registry)
    _check_devices(check, registry)
    far_end = _check_links(check, registry)
    _check_circuits(check, registry, far_end)
    _check_vpns(check, registry)


# --- building the model --------------------------------------------------------------------


def _build(registry: Registry) -> Inventory:
    inventory = Inventory()
    entries = registry.entries
    for key, e in entries["customers"].items():
        v = e.values
        inventory.customers[key] = Customer(key, v["name"], v["account_manager"],
                                            v["contact_email"], e.loc.source(), v["language"])
    for key, e in entries["sites"].items():
        v = e.values
        inventory.sites[key] = Site(key, v["name"], v["customer"], v["address"], v["city"],
                                    e.loc.source())
    for key, e in entries["credentials"].items():
        v = e.values
        secrets = {name: v[name] for name in SECRET_FIELDS if v.get(name) is not None}
        params = {name: value for name, value in v.items()
                  if name not in ("id", "kind", *SECRET_FIELDS) and value is not None}
        inventory.credentials[key] = Credential(key, v["kind"], params, secrets, e.loc.source())
    for key, e in entries["devices"].items():
        v = e.values
        ports = tuple(
            Port(key, p.key, p.values["if_index"], p.values["speed_bps"],
                 p.values["description"], p.loc.source(), bool(p.values["monitor"]))
            for p in e.ports if p.key is not None
        )
        inventory.devices[key] = Device(
            key, v["site"], v["role"], v["platform"], v["management_address"],
            v["snmp_credential"], v["cli_credential"], v["poller_group"], v["snmp_port"],
            ports, e.loc.source())
    for key, e in registry.links.items():
        inventory.links[key] = Link(e.values["a"], e.values["z"], e.values["cost"],
                                    e.loc.source())
    for key, e in entries["circuits"].items():
        v = e.values
        inventory.circuits[key] = Circuit(
            key, v["customer"], v["service_type"], v["bandwidth_bps"], v["a_end"], v["z_end"],
            tuple(v["path"]), v["sla_contract"], v["monthly_charge"], v["description"],
            e.loc.source())
    for key, e in entries["vpns"].items():
        v = e.values
        inventory.vpns[key] = Vpn(key, v["customer"], v["name"], tuple(v["sites"]),
                                  tuple(v["circuits"]), e.loc.source())
    for key, e in entries["sla_contracts"].items():
        v = e.values
        inventory.sla_contracts[key] = SlaContract(
            key, v["name"], v["customer"], v["availability_target_pct"],
            v["latency_target_ms"], v["jitter_target_ms"], v["loss_target_pct"], v["calendar"],
            v["priorities"], tuple(v["credits"]), v["monthly_charge"], v["currency"],
            e.loc.source(), degraded_counts_as_down=v["degraded_counts_as_down"],
            unknown_counts_as=v["unknown_counts_as"], escalation=v["escalation"])
    for key, e in entries["users"].items():
        v = e.values
        inventory.users[key] = User(key, v["role"], v["customer"], v["full_name"], v["email"],
                                    e.loc.source())
    return inventory


def build_inventory(
    documents: Sequence[Document], *, complete: bool = True
) -> tuple[Inventory | None, list[InventoryProblem]]:
    """Validate parsed documents and build the inventory.

    `complete` is False when some file could not be parsed: then a name that resolves to
    nothing is not reported (its object may be in that file), but everything else is.
    Returns (inventory, []) when valid, else (None, problems) sorted by file and line.
    """
    problems: list[InventoryProblem] = []
    registry = read_documents(documents, problems)
    check_references(registry, report_unknown=complete)
    if problems or not complete:
        return None, sorted(problems, key=lambda p: (p.file, p.line, p.field))
    return _build(registry), []
