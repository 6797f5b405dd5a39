"""Inventory ports matched to the interfaces a device reports, by name as operators write them.

An operator writes a port the way the device shows it on its console, and usually without an
ifIndex: `{name: GigabitEthernet0/0/1}`, or `Gi0/0/1`, or `GE0/0/1`. A poll, though, reports
interfaces by *ifIndex*, a number the agent assigns and is free to reassign: many devices
renumber after a reboot, a line-card swap or a software upgrade, so an ifIndex written in the
inventory goes stale without anyone noticing, and the samples of one port start landing on
another. What stays put is the name, and the agent gives two: *ifName* (IF-MIB ifXTable, the
name the CLI uses, often the short form: Cisco `Gi1/0/1`, `Po1`, `Vl1`) and *ifDescr* (ifTable,
a free description that is usually the long name, `GigabitEthernet1/0/1`, but can hold
more: Nokia writes `1/1/1, 10-Gig Ethernet, "to PE1"`, IOS-XE has an MPLS sub-layer whose
ifName equals its parent's and whose ifDescr ends in `-mpls layer`). Each vendor also has
long and short spellings of the same interface type (Cisco `TenGigabitEthernet`/`Te`, Huawei
`XGigabitEthernet`/`XGE`, H3C `Ten-GigabitEthernet`/`XGE`, `Bridge-Aggregation`/`BAGG`),
which `normalize` folds into one key, case and spaces ignored; Juniper units (`ge-0/0/1.0`),
sub-interfaces and names of other vendors (Nokia `1/1/1`, MikroTik `sfp-sfpplus1`) stay as
they are, so a unit is never its physical port.

The rule of `match_ports`: a port with an `if_index` is that interface when the interface
carries the port's name (or no name at all); otherwise, and for every port without one, the
name decides: ifName exactly, ifName normalized, ifDescr exactly, ifDescr normalized, the
first level that finds anything wins; when it finds several interfaces, the one whose other
label (ifDescr for an ifName match and the reverse) also carries the name wins, else the
port is ambiguous and left unmatched. An `if_index` that points at an interface of another
name, or at none, is reported, and the name is followed when it finds exactly one interface:
the ifIndex is what renumbers, the name is what the operator checked on the device (with no
interface of that name, the declared if_index is kept). Nothing is guessed silently: every
port that is not matched, or matched against what the inventory says, comes back as a
`PortProblem` that names it and says what to change; one interface is never given to two
ports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "AMBIGUOUS", "DUPLICATE", "IF_INDEX_NAME_MISMATCH", "IF_INDEX_STALE", "MISSING",
    "DeclaredPort", "PortMatch", "PortProblem", "match_ports", "normalize",
]

# --- names -----------------------------------------------------------------------------------

# Canonical interface type -> every spelling vendors use for it (lower case, spaces removed).
# Aliases only apply when the interface number follows directly (`Gi0/0/1`, `Po1`), so a
# word that happens to start like one (`ether1` on MikroTik, `lo` alone) is left alone, and
# Juniper's `ge-`/`xe-`/`et-` keep their hyphen, which no alias has.
INTERFACE_TYPES: dict[str, tuple[str, ...]] = {
    "fa": ("fastethernet", "fa", "fas"),
    "gi": ("gigabitethernet", "gi", "gig", "gige", "ge"),  # GE: Huawei and H3C short form
    "tw": ("twogigabitethernet", "tw"),  # Cisco mGig 2.5G; not Twe (25G)
    "te": ("tengigabitethernet", "tengige", "te", "ten",  # Cisco IOS / IOS XR
           "xgigabitethernet", "xge", "10ge",  # Huawei (10GE on CloudEngine)
           "ten-gigabitethernet"),  # H3C, short XGE
    "twe": ("twentyfivegige", "twentyfivegigabitethernet", "twe", "25ge",
            "twenty-fivegige", "wge"),  # H3C Twenty-FiveGigE / WGE
    "fo": ("fortygigabitethernet", "fortygige", "fo", "for", "40ge", "fge"),
    "hu": ("hundredgigabitethernet", "hundredgige", "hu", "hun", "100ge", "hge"),
    "fh": ("fourhundredgige", "fourhundredgigabitethernet", "fh", "400ge"),
    "eth": ("ethernet", "eth", "et"),
    "po": ("port-channel", "portchannel", "po"),
    "be": ("bundle-ether", "be"),  # IOS XR
    "bagg": ("bridge-aggregation", "bagg"),  # H3C
    "ragg": ("route-aggregation", "ragg"),  # H3C
    # Cisco Vlan/Vl, Huawei Vlanif, H3C Vlan-interface (short Vlan): the routed VLAN
    # interface. IOS-XE's layer-2 `VLAN-1` / `unrouted VLAN 1` is another interface and
    # keeps its hyphen.
    "vlan": ("vlan", "vl", "vlanif", "vlan-interface"),
    "lo": ("loopback", "lo", "loop"),  # H3C short Loop
    "inloop": ("inloopback", "inloop"),  # Huawei, H3C
    "null": ("null", "nu"),
    "tu": ("tunnel", "tu", "tun"),
    "se": ("serial", "se"),
    "vt": ("virtual-template", "vt"),
    "mgmteth": ("mgmteth", "mg"),  # IOS XR MgmtEth0/RSP0/CPU0/0
    "mge": ("m-gigabitethernet", "mge"),  # H3C management port
}
_CANONICAL_TYPE = {alias: canonical for canonical, aliases in INTERFACE_TYPES.items()
                   for alias in aliases}
# Huawei's 25GE/40GE/100GE start with digits; every other type is letters and hyphens.
_TYPED_NAME = re.compile(r"(?P<type>\d+ge|[a-z][a-z-]*)(?P<number>\d.*)")
_SPACE = re.compile(r"\s+")
# Cisco service instances: ifName `Gi0/0/1.SI.10`, ifDescr `GigabitEthernet0/0/1.ServiceInstance.10`
_SUFFIXES = ((".serviceinstance.", ".si."),)


def normalize(name: str) -> str:
    """A key under which the long and short vendor forms of one interface name are equal
    (`GigabitEthernet0/0/1`, `Gi0/0/1`, `GE0/0/1`, `gi 0/0/1` -> "gi0/0/1"): case and spaces
    ignored, the interface type folded by `INTERFACE_TYPES`, the rest as written. A key to
    compare, not a name to show."""
    folded = _SPACE.sub("", name).casefold()
    # A type has no digit, so it runs up to the first one: `port-channel1` is port-channel
    # + 1, Juniper's `ge-0/0/1` is ge- + 0/0/1 (no alias), Nokia's `1/1/1` has no type.
    typed = _TYPED_NAME.fullmatch(folded)
    if typed is None:
        return folded
    canonical = _CANONICAL_TYPE.get(typed["type"])
    if canonical is None:
        return folded
    number = typed["number"]
    for long, short in _SUFFIXES:
        number = number.replace(long, short)
    return canonical + number


# --- matching --------------------------------------------------------------------------------

MISSING = "missing"
"""No interface has the port's name (nor its if_index)."""
AMBIGUOUS = "ambiguous"
"""The port's name finds several interfaces at the same level; the port is left unmatched."""
IF_INDEX_NAME_MISMATCH = "if_index_name_mismatch"
"""The port's if_index is an interface with another name."""
IF_INDEX_STALE = "if_index_stale"
"""The port's if_index is no interface of the device; its name found one."""
DUPLICATE = "duplicate"
"""Another declared port is matched to the same interface, and keeps it."""


class DeclaredPort(Protocol):
    """An inventory port as matching needs it (store.topology.PortEntry is one)."""

    @property
    def id(self) -> int: ...

    @property
    def name(self) -> str: ...

    @property
    def if_index(self) -> int | None: ...


class _Labelled(Protocol):  # collectors.model.InterfaceLabel
    @property
    def if_name(self) -> str | None: ...

    @property
    def if_descr(self) -> str | None: ...


InterfaceNames = tuple[str | None, str | None]  # (ifName, ifDescr)


@dataclass(frozen=True)
class PortProblem:
    """Why a declared port is not matched, or matched against what the inventory says.

    `kind` is one of MISSING, AMBIGUOUS, IF_INDEX_NAME_MISMATCH, IF_INDEX_STALE, DUPLICATE;
    `message` names the port and the interfaces and says what to change."""

    port_id: int
    port_name: str
    kind: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class PortMatch:
    """What `match_ports` concluded for one device and one poll.

    `by_if_index`: ifIndex -> port id, for every matched port (the shape of
    `PollTarget.ports_by_if_index`); `how`: port id -> how it was matched ("if_index",
    "ifName", "ifName (normalized)", "ifDescr", "ifDescr (normalized)"); `problems`, sorted by
    port id."""

    by_if_index: dict[int, int] = field(default_factory=dict)
    problems: tuple[PortProblem, ...] = ()
    how: dict[int, str] = field(default_factory=dict)

    @property
    def by_port_id(self) -> dict[int, int]:
        """Port id -> ifIndex."""
        return {port_id: if_index for if_index, port_id in self.by_if_index.items()}

    def problems_of(self, port_id: int) -> list[PortProblem]:
        return [problem for problem in self.problems if problem.port_id == port_id]


@dataclass(frozen=True)
class _Port:
    id: int
    name: str
    if_index: int | None

    @property
    def shown(self) -> str:
        return f"port {self.name!r} (id {self.id})"


@dataclass(frozen=True)
class _Interface:
    if_index: int
    if_name: str | None
    if_descr: str | None

    @property
    def shown(self) -> str:
        return self.if_name or self.if_descr or "no name"

    @property
    def labelled(self) -> str:
        """ifIndex and names, ifDescr too when it says something ifName does not."""
        text = f"ifIndex {self.if_index} ({self.shown}"
        if self.if_name and self.if_descr and self.if_descr != self.if_name:
            text += f", ifDescr {self.if_descr!r}"
        return text + ")"


# (label, exact?) in the order the rule tries them; the position is the match's rank, the
# if_index itself ranking before all (rank 0).
_LEVELS = (("ifName", True), ("ifName", False), ("ifDescr", True), ("ifDescr", False))
_HOW = ("if_index", "ifName", "ifName (normalized)", "ifDescr", "ifDescr (normalized)")


def _label(interface: _Interface, which: str) -> str | None:
    return interface.if_name if which == "ifName" else interface.if_descr


def _key(text: str, exact: bool) -> str:
    return text.strip() if exact else normalize(text)


class _Names:
    """The interfaces of one poll indexed by every level of the rule."""

    def __init__(self, interfaces: Mapping[int, _Interface]) -> None:
        self.interfaces = interfaces
        self.levels: list[dict[str, list[int]]] = []
        for which, exact in _LEVELS:
            index: dict[str, list[int]] = {}
            for if_index in sorted(interfaces):
                label = _label(interfaces[if_index], which)
                if label and label.strip():
                    index.setdefault(_key(label, exact), []).append(if_index)
            self.levels.append(index)

    def carries(self, interface: _Interface, name: str) -> bool:
        """Whether `name` is one of the interface's labels, exactly or normalized."""
        wanted = normalize(name)
        return any(label and normalize(label) == wanted
                   for label in (interface.if_name, interface.if_descr))

    def find(self, name: str) -> tuple[int | None, int, list[int]]:
        """(ifIndex, rank, []) for a name that finds one interface; (None, rank, hits) for
        one that finds several; (None, 0, []) for one that finds none."""
        if not name.strip():
            return None, 0, []
        for rank, ((which, exact), index) in enumerate(zip(_LEVELS, self.levels, strict=True),
                                                        start=1):
            hits = index.get(_key(name, exact), [])
            if len(hits) == 1:
                return hits[0], rank, []
            if hits:
                # The IOS-XE MPLS sub-layer shares its parent's ifName: the interface whose
                # other label names the port too is the one meant.
                other = "ifDescr" if which == "ifName" else "ifName"
                wanted = normalize(name)
                both = [i for i in hits
                        if (label := _label(self.interfaces[i], other))
                        and normalize(label) == wanted]
                if len(both) == 1:
                    return both[0], rank, []
                return None, rank, hits
        return None, 0, []


def _declared(port: DeclaredPort | tuple[int, str, int | None]) -> _Port:
    if isinstance(port, tuple) and not hasattr(port, "id"):
        port_id, name, if_index = port
        return _Port(int(port_id), str(name), if_index)
    return _Port(port.id, port.name, port.if_index)  # type: ignore[union-attr]


def _interface(if_index: int, names: InterfaceNames | _Labelled) -> _Interface:
    if isinstance(names, tuple):
        if_name, if_descr = names
    else:
        if_name, if_descr = names.if_name, names.if_descr
    return _Interface(if_index, if_name or None, if_descr or None)


def _listed(interfaces: Iterable[_Interface]) -> str:
    shown = [i.labelled for i in interfaces]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def match_ports(declared: Iterable[DeclaredPort | tuple[int, str, int | None]],
                interfaces: Mapping[int, InterfaceNames | _Labelled]) -> PortMatch:
    """Match the inventory ports of one device (`declared`: objects with id, name, if_index,
    or (id, name, if_index) tuples) to the interfaces one poll found (`interfaces`: ifIndex ->
    (ifName, ifDescr), either None, or an object with if_name and if_descr). The rule is the
    module docstring's. Deterministic: the same input gives the same result whatever its
    order."""
    ports = sorted((_declared(port) for port in declared), key=lambda p: (p.id, p.name))
    table = {if_index: _interface(if_index, names) for if_index, names in interfaces.items()}
    names = _Names(table)
    problems: list[PortProblem] = []
    claims: dict[int, list[tuple[int, _Port]]] = {}  # ifIndex -> (rank, port)

    def problem(port: _Port, kind: str, message: str) -> None:
        problems.append(PortProblem(port.id, port.name, kind, message))

    for port in ports:
        found, rank, hits = names.find(port.name)
        if port.if_index is not None:
            at = table.get(port.if_index)
            if at is not None and (not (at.if_name or at.if_descr) or not port.name.strip()
                                   or names.carries(at, port.name)):
                claims.setdefault(at.if_index, []).append((0, port))
                continue
            if at is None:
                if found is not None:
                    problem(port, IF_INDEX_STALE,
                            f"{port.shown}: if_index {port.if_index} is no interface of the"
                            f" device (renumbered?); matched by name to"
                            f" {table[found].labelled}: correct the if_index in the inventory"
                            " or remove it and let the name match")
                    claims.setdefault(found, []).append((rank, port))
                else:
                    also = (f"; its name matches {_listed(table[i] for i in hits)}" if hits
                            else "")
                    problem(port, MISSING,
                            f"{port.shown} not found on the device: no ifIndex"
                            f" {port.if_index} and no interface named {port.name!r}{also}:"
                            " correct the port's name and if_index, or retire the port")
                continue
            mismatch = (f"{port.shown}: if_index {port.if_index} is {at.shown} on the device,"
                        f" the inventory says {port.name}")
            if found is not None:
                problem(port, IF_INDEX_NAME_MISMATCH,
                        f"{mismatch}; matched by name to {table[found].labelled}: correct the"
                        " if_index in the inventory or remove it and let the name match")
                claims.setdefault(found, []).append((rank, port))
            else:
                problem(port, IF_INDEX_NAME_MISMATCH,
                        f"{mismatch}; no interface carries that name, so if_index"
                        f" {port.if_index} is kept: correct the port's name, or its if_index")
                claims.setdefault(at.if_index, []).append((0, port))
            continue
        if found is not None:
            claims.setdefault(found, []).append((rank, port))
        elif hits:
            problem(port, AMBIGUOUS,
                    f"{port.shown} is ambiguous: matches {_listed(table[i] for i in hits)}:"
                    " give the port's if_index in the inventory to choose one")
        else:
            problem(port, MISSING,
                    f"{port.shown} not found on the device: no interface has that ifName or"
                    " ifDescr, in its long or short form: write the name as the device shows"
                    " it (show interfaces / display interface brief) or give its if_index")

    by_if_index: dict[int, int] = {}
    how: dict[int, str] = {}
    for if_index, claimants in sorted(claims.items()):
        # The strongest match keeps the interface (the if_index, then an exact name...), the
        # lowest port id among equals: one interface's samples go to one port.
        claimants.sort(key=lambda claim: (claim[0], claim[1].id))
        (rank, winner), losers = claimants[0], claimants[1:]
        by_if_index[if_index] = winner.id
        how[winner.id] = _HOW[rank]
        for _, port in losers:
            problem(port, DUPLICATE,
                    f"{port.shown} is the same interface as {winner.shown}:"
                    f" {table[if_index].labelled}, which stays with port {winner.id}: remove"
                    " one of the two ports from the inventory or correct its name")
    problems.sort(key=lambda p: (p.port_id, p.kind, p.message))
    return PortMatch(by_if_index=by_if_index, problems=tuple(problems), how=how)
