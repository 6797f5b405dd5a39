"""The inventory: what the operator says its network and its contracts are.

An inventory is a set of YAML files. It names the operator's customers (tenants, each looked
after by an account manager), their sites, the devices at those sites with their ports, the
links that join two ports, and the circuits leased to customers. A circuit runs from an A end
port to a Z end port, may declare the path of hops it takes across the operator's network,
and is held to an SLA contract: an availability target over a service calendar, latency,
jitter and loss targets, response and resolution times per priority, a credit schedule and a
monthly charge. A VPN groups a customer's sites and circuits. Credentials are named here but
their secrets are only referenced (an environment variable or an owner-only file), and users
are named with their roles while their passwords are set with `keyline user passwd`.

Every object carries the file and line it came from, so that a later error (a path that no
longer fits the discovered topology, say) can still point at the line to fix. The natural key
of each object (`key`) is what an import matches on: the same key in the next import is the
same object, changed or not; a key that disappears retires the object, it is never deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Any

SERVICE_TYPES = ("leased_line", "mpls_l3vpn", "e_line", "internet_access")
DEVICE_ROLES = ("PE", "P", "CE", "switch", "firewall", "server")
PLATFORMS = ("cisco_ios", "cisco_xr", "huawei_vrp", "hp_comware", "juniper_junos", "linux")
CREDENTIAL_KINDS = ("snmp_v1", "snmp_v2c", "snmp_v3", "ssh")
SNMP_AUTH_PROTOCOLS = ("MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512")
# AES192/AES256 extend a short key as Cisco does (Reeder's draft; pysnmp's, snmpsim's and
# Net-SNMP's AES-256-C), AES192B/AES256B as Net-SNMP's AES-192/AES-256 do (Blumenthal's draft)
SNMP_PRIV_PROTOCOLS = ("DES", "AES", "AES192", "AES256", "AES192B", "AES256B")
USER_ROLES = ("noc", "engineer", "account_manager", "customer", "admin")
PRIORITIES = ("P1", "P2", "P3", "P4")
LANGUAGES = ("zh_CN", "en")  # of a customer's messages
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
OFFICIAL_DAY_SOURCES = ("chinesecalendar", "holidays")
# how time in the `unknown` service state (a monitoring gap) counts in a contract's
# availability: left out of it (and reported as a gap), as downtime, or as uptime
UNKNOWN_COUNTS = ("excluded", "down", "up")


@dataclass(frozen=True)
class Source:
    """Where an object was declared: file path (as given) and 1-based line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class SecretRef:
    """A pointer to a secret, never the secret itself: `env` names an environment variable,
    `file` a path that must be readable by its owner only."""

    source: str  # "env" or "file"
    name: str  # variable name or file path

    def __str__(self) -> str:
        return f"{self.source}:{self.name}"


@dataclass(frozen=True)
class Customer:
    """A key account: the tenant every circuit, alarm and report is scoped to."""

    key: str  # short id, e.g. "acme"
    name: str
    account_manager: str | None  # a user key with role account_manager
    contact_email: str | None
    source: Source
    # the language its contact is written to in (ticket notifications); None: the `[sla]
    # customer_language` setting
    language: str | None = None


@dataclass(frozen=True)
class Site:
    """A place: a customer premises or one of the operator's points of presence (no customer)."""

    key: str
    name: str
    customer: str | None
    address: str | None
    city: str | None
    source: Source


@dataclass(frozen=True)
class Credential:
    """How to talk to a device. `params` holds the non-secret settings (username, protocols,
    security level); `secrets` maps a parameter name (community, auth_key, priv_key,
    password) to where its value is found."""

    key: str
    kind: str  # one of CREDENTIAL_KINDS
    params: dict[str, Any]
    secrets: dict[str, SecretRef]
    source: Source


@dataclass(frozen=True)
class Port:
    """An interface of a device, named as the device names it (ifName or ifDescr, long or
    short form: the collector matches it by name when `if_index` is not given). `monitor`
    asks for its alarms although it ends no circuit and no link."""

    device: str
    name: str
    if_index: int | None
    speed_bps: int | None
    description: str | None
    source: Source
    monitor: bool = False

    @property
    def key(self) -> str:
        return f"{self.device}:{self.name}"


@dataclass(frozen=True)
class Device:
    """A managed network element: a PE, P or CE router or a switch, reached on its
    management address by SNMP (and CLI where a CLI credential is named)."""

    key: str  # hostname
    site: str | None
    role: str  # one of DEVICE_ROLES
    platform: str  # one of PLATFORMS
    management_address: IPv4Address | IPv6Address
    snmp_credential: str
    cli_credential: str | None
    poller_group: str
    snmp_port: int
    ports: tuple[Port, ...]
    source: Source


@dataclass(frozen=True)
class PortRef:
    device: str
    port: str

    def __str__(self) -> str:
        return f"{self.device}:{self.port}"


@dataclass(frozen=True)
class CircuitEnd(PortRef):
    """A circuit's end: its port, and optionally the per-circuit sub-interface of that port
    (a port of the same device, e.g. "GigabitEthernet0/0/1.101") whose counters are this
    circuit's own traffic. A customer is shown the traffic of its end from the
    sub-interface when one is named: the physical port of a shared PE carries other
    customers' circuits too (store.queries.traffic_ports)."""

    sub_interface: str | None = None


@dataclass(frozen=True)
class Link:
    """A physical or logical adjacency between two ports. Its key is the two ends in sorted
    order, so declaring it from either side names the same link."""

    a: PortRef
    z: PortRef
    cost: int  # routing cost used when a circuit's path is computed
    source: Source

    @property
    def key(self) -> str:
        first, second = sorted((str(self.a), str(self.z)))
        return f"{first}--{second}"


@dataclass(frozen=True)
class Hop:
    """One device on a circuit's declared path, entered on in_port and left on out_port."""

    device: str
    in_port: str
    out_port: str
    source: Source


@dataclass(frozen=True)
class Circuit:
    """A service leased to a customer from the A end port to the Z end port."""

    key: str  # circuit id, e.g. "ACME-LL-0001"
    customer: str
    service_type: str  # one of SERVICE_TYPES
    bandwidth_bps: int
    a_end: CircuitEnd
    z_end: CircuitEnd
    path: tuple[Hop, ...]  # empty: the path is computed from the topology
    sla_contract: str | None
    monthly_charge: float | None  # overrides the contract's charge for this circuit
    description: str | None
    source: Source


@dataclass(frozen=True)
class Vpn:
    """A customer's set of sites and circuits that make one private network."""

    key: str
    customer: str
    name: str
    sites: tuple[str, ...]
    circuits: tuple[str, ...]
    source: Source


@dataclass(frozen=True)
class WeeklyHours:
    """Part of a service calendar: these weekdays, from start to end (local "HH:MM")."""

    days: tuple[str, ...]
    start: str
    end: str


@dataclass(frozen=True)
class OfficialDays:
    """A calendar's request to fill some years' public holidays and make-up working days
    (China's 调休) from a package: `chinesecalendar`, or `holidays` with a country code."""

    source: str  # one of OFFICIAL_DAY_SOURCES
    years: tuple[int, ...]
    country: str | None = None  # ISO 3166 code, for the holidays package


@dataclass(frozen=True)
class ServiceCalendar:
    """When the SLA clock runs: weekly hours in a time zone, minus holidays, plus extra
    working dates (make-up days, which open with the first working weekday's hours; see
    sla/calendar.py). `hours` empty means around the clock (24x7). `holidays` and
    `working_dates` hold the dates written in the files and those filled by
    `official_days`; `sources` says where each came from ("sla.yaml:87",
    "chinesecalendar 1.11.0"), for display."""

    timezone: str
    hours: tuple[WeeklyHours, ...]
    holidays: tuple[str, ...]  # ISO dates
    working_dates: tuple[str, ...] = ()  # ISO dates
    official_days: OfficialDays | None = None
    sources: dict[str, str] = field(default_factory=dict)  # ISO date -> where it came from


@dataclass(frozen=True)
class PriorityTimes:
    response_min: int
    resolution_min: int


@dataclass(frozen=True)
class CreditStep:
    """If monthly availability falls below `below_pct`, credit `credit_pct` of the charge.

    `below_pct` is the threshold whatever the contract's wording: "below" is strict
    (availability < below_pct), "at or below" (`inclusive`, written `at_or_below_pct`)
    also applies at exactly the threshold."""

    below_pct: float
    credit_pct: float
    inclusive: bool = False


ESCALATION_CLOCKS = ("response", "resolution", "both")


def recipient_problem(value: str) -> str | None:
    """What is wrong with a notification recipient's name (None: nothing): `customer` (its
    contact), `account_manager`, `role:NAME`, `user:LOGIN` or `webhook:NAME`."""
    if value in ("customer", "account_manager"):
        return None
    kind, sep, name = value.partition(":")
    if sep and kind in ("role", "user", "webhook") and name.strip():
        if kind == "role" and name not in USER_ROLES:
            return f"unknown role {name!r} (roles: {', '.join(USER_ROLES)})"
        return None
    return (f"unknown recipient {value!r}: use customer, account_manager, role:NAME,"
            " user:LOGIN or webhook:NAME")


@dataclass(frozen=True)
class EscalationStep:
    """When a ticket's clock has used `at_pct` of its time, tell `notify`."""

    at_pct: float
    clock: str  # one of ESCALATION_CLOCKS
    notify: tuple[str, ...]


@dataclass(frozen=True)
class SlaContract:
    """What the operator promises for a circuit, and what it pays when it fails."""

    key: str  # e.g. "gold"
    name: str
    customer: str | None  # None: a tier any customer's circuit may use
    availability_target_pct: float
    latency_target_ms: float | None
    jitter_target_ms: float | None
    loss_target_pct: float | None
    calendar: ServiceCalendar
    priorities: dict[str, PriorityTimes]  # keys from PRIORITIES
    credits: tuple[CreditStep, ...]
    monthly_charge: float
    currency: str
    source: Source
    # whether `degraded` is an outage under this contract (tickets, SLA figures)
    degraded_counts_as_down: bool = False
    # how `unknown` time counts in availability: one of UNKNOWN_COUNTS
    unknown_counts_as: str = "excluded"
    # the contract's own escalation levels (None: the `[sla] escalation` settings)
    escalation: tuple[EscalationStep, ...] | None = None


@dataclass(frozen=True)
class User:
    """A person who logs in to the portal. Customers' users are bound to one customer."""

    key: str  # login name
    role: str  # one of USER_ROLES
    customer: str | None
    full_name: str | None
    email: str | None
    source: Source


@dataclass
class Inventory:
    """Every object of a valid inventory, by kind and key."""

    customers: dict[str, Customer] = field(default_factory=dict)
    sites: dict[str, Site] = field(default_factory=dict)
    credentials: dict[str, Credential] = field(default_factory=dict)
    devices: dict[str, Device] = field(default_factory=dict)
    links: dict[str, Link] = field(default_factory=dict)
    circuits: dict[str, Circuit] = field(default_factory=dict)
    vpns: dict[str, Vpn] = field(default_factory=dict)
    sla_contracts: dict[str, SlaContract] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)

    @property
    def ports(self) -> dict[str, Port]:
        return {port.key: port for device in self.devices.values() for port in device.ports}

    def object_count(self) -> int:
        return (
            len(self.customers) + len(self.sites) + len(self.credentials) + len(self.devices)
            + len(self.ports) + len(self.links) + len(self.circuits) + len(self.vpns)
            + len(self.sla_contracts) + len(self.users)
        )


@dataclass(frozen=True)
class InventoryProblem:
    """One thing wrong with the inventory files, with where and how to fix it."""

    file: str
    line: int
    field: str  # dotted path inside the object, e.g. "circuits[3].a_end.port"
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}: {self.field}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


class InventoryError(Exception):
    """The inventory is not valid; `problems` lists every error found, in file order."""

    def __init__(self, problems: list[InventoryProblem]):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.field))
        count = len(self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the inventory")

    def report(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)
