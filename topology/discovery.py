"""Neighbour discovery: ask every device who its neighbours are (LLDP and CDP) and place them
in the inventory.

LLDP (IEEE 802.1AB) has every port announce, every 30 s or so, who it is: the *chassis ID*
of its device (usually a MAC address), its own *port ID* (usually the interface name), the
device's system name and management address. Each device keeps what it heard in its
LLDP-MIB *remote table* (lldpRemTable, indexed by timeMark, the local port number and an
index), and describes itself in the *local* tables: lldpLocChassisId, lldpLocSysName and
lldpLocPortTable (local port number -> port ID). Cisco devices often speak only their own
CDP, kept in CISCO-CDP-MIB's cdpCacheTable, indexed by the local ifIndex and a device index,
each row with the neighbour's *device ID* (its hostname, often with its domain, or a serial
number with the hostname in parentheses), its port (`GigabitEthernet1/0/3`), platform and
addresses. Discovery walks both, with the walked device's ifName and ifDescr, on every device
and turns each remote row into a link between two inventory ports; a link that both
protocols, or both ends, report is one link.

That takes two resolutions. The *neighbour device*: by chassis ID (learned from each walked
device's own lldpLocChassisId), else by name (lldpRemSysName, or each name a CDP device ID
holds, against the inventory key or a name a device was seen answering with,
case-insensitively, with or without its domain), else by address (lldpRemManAddrTable, the
address in the row index, or cdpCacheAddress, against devices.management_address). The
*neighbour port*, by name (interfaceName(5) port IDs and CDP ports), compared as
`collectors.port_names.normalize` does, so that `GigabitEthernet1/0/1` finds an inventory
`Gi1/0/1`, then against the neighbour's own walked ifName/ifDescr when it was walked; a
local(7) port ID is a number (Junos: the ifIndex) or a name; any subtype (macAddress(3)
included) also matches the neighbour's own lldpLocPortTable entry with the same ID, whose
port number is its ifIndex. The *local port* of an LLDP row is the walked device's
lldpLocPortTable entry for lldpRemLocalPortNum (by name, Huawei numbering its LLDP ports
apart from its ifIndexes), else that number as an ifIndex; of a CDP row, its ifIndex. An
ifIndex is an inventory port through `collectors.port_names.match_ports` against the walked
ifName/ifDescr (inventories rarely carry ifIndexes, and they renumber), else through the
port's declared if_index when the device gave no names. RouterOS indexes its LLDP rows by a
neighbour number alone and names the local interface in MIKROTIK-MIB
(mtxrNeighborInterfaceID, an ifIndex), and announces a bridged port as `bridge/vlan/port`,
whose last part is the port. A neighbour that cannot be placed is reported with the reason,
never guessed; a device whose sysName, lldpLocSysName or cdpGlobalDeviceId is not its
inventory key is reported too ("answers with another name"), and so is a walked device that
answers neither protocol's tables, apart from one whose tables answer and hold no neighbour.

`parse_neighbours` and `resolve` are pure (unit-testable on hand-made rows); `discover` walks
the devices with `collectors.snmp.SnmpPoller.walk`; `run_discovery` does the whole round from
the store and records it (store/topology.py).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from collectors.model import PollStatus, PollTarget
from collectors.port_names import match_ports, normalize
from collectors.snmp import SnmpPoller, WalkResult
from store.topology import DeviceEntry, PortEntry

__all__ = [
    "CDP_COLUMNS", "DISCOVERY_COLUMNS", "LLDP_COLUMNS", "CdpNeighbour", "DeviceFailure",
    "DiscoveredLink", "Discovery", "LldpNeighbour", "LldpSnapshot", "NeighbourSnapshot",
    "NeighbourTables", "RenamedDevice", "UnresolvedNeighbour", "discover", "parse_lldp",
    "parse_neighbours", "resolve", "run_discovery", "save_discovery",
]

Oid = tuple[int, ...]
Progress = Callable[[int, int], None]  # (devices done, devices in all)

SYS_NAME: Oid = (1, 3, 6, 1, 2, 1, 1, 5)
LLDP_LOCAL: Oid = (1, 0, 8802, 1, 1, 2, 1, 3)
LLDP_LOC_CHASSIS_ID_SUBTYPE: Oid = (*LLDP_LOCAL, 1)
LLDP_LOC_CHASSIS_ID: Oid = (*LLDP_LOCAL, 2)
LLDP_LOC_SYS_NAME: Oid = (*LLDP_LOCAL, 3)
LLDP_LOC_PORT_ID_SUBTYPE: Oid = (*LLDP_LOCAL, 7, 1, 2)
LLDP_LOC_PORT_ID: Oid = (*LLDP_LOCAL, 7, 1, 3)
LLDP_REM_ENTRY: Oid = (1, 0, 8802, 1, 1, 2, 1, 4, 1, 1)
LLDP_REM_CHASSIS_ID_SUBTYPE: Oid = (*LLDP_REM_ENTRY, 4)
LLDP_REM_CHASSIS_ID: Oid = (*LLDP_REM_ENTRY, 5)
LLDP_REM_PORT_ID_SUBTYPE: Oid = (*LLDP_REM_ENTRY, 6)
LLDP_REM_PORT_ID: Oid = (*LLDP_REM_ENTRY, 7)
LLDP_REM_SYS_NAME: Oid = (*LLDP_REM_ENTRY, 9)
LLDP_REM_MAN_ADDR_IF_SUBTYPE: Oid = (1, 0, 8802, 1, 1, 2, 1, 4, 2, 1, 3)

LLDP_COLUMNS: tuple[Oid, ...] = (
    SYS_NAME, LLDP_LOC_CHASSIS_ID_SUBTYPE, LLDP_LOC_CHASSIS_ID, LLDP_LOC_SYS_NAME,
    LLDP_LOC_PORT_ID_SUBTYPE, LLDP_LOC_PORT_ID, LLDP_REM_CHASSIS_ID_SUBTYPE,
    LLDP_REM_CHASSIS_ID, LLDP_REM_PORT_ID_SUBTYPE, LLDP_REM_PORT_ID, LLDP_REM_SYS_NAME,
    LLDP_REM_MAN_ADDR_IF_SUBTYPE,
)
"""The LLDP-MIB columns discovery reads (and sysName)."""

# CISCO-CDP-MIB: cdpCacheTable, indexed by cdpCacheIfIndex.cdpCacheDeviceIndex, and two
# scalars of cdpGlobal that tell a CDP agent with an empty cache from a device without CDP.
CDP_CACHE_ENTRY: Oid = (1, 3, 6, 1, 4, 1, 9, 9, 23, 1, 2, 1, 1)
CDP_CACHE_ADDRESS_TYPE: Oid = (*CDP_CACHE_ENTRY, 3)
CDP_CACHE_ADDRESS: Oid = (*CDP_CACHE_ENTRY, 4)
CDP_CACHE_DEVICE_ID: Oid = (*CDP_CACHE_ENTRY, 6)
CDP_CACHE_DEVICE_PORT: Oid = (*CDP_CACHE_ENTRY, 7)
CDP_CACHE_PLATFORM: Oid = (*CDP_CACHE_ENTRY, 8)
CDP_GLOBAL_RUN: Oid = (1, 3, 6, 1, 4, 1, 9, 9, 23, 1, 3, 1)
CDP_GLOBAL_DEVICE_ID: Oid = (1, 3, 6, 1, 4, 1, 9, 9, 23, 1, 3, 4)

CDP_COLUMNS: tuple[Oid, ...] = (
    CDP_CACHE_ADDRESS_TYPE, CDP_CACHE_ADDRESS, CDP_CACHE_DEVICE_ID, CDP_CACHE_DEVICE_PORT,
    CDP_CACHE_PLATFORM, CDP_GLOBAL_RUN, CDP_GLOBAL_DEVICE_ID,
)
"""The CISCO-CDP-MIB columns discovery reads."""

IF_NAME: Oid = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1)
IF_DESCR: Oid = (1, 3, 6, 1, 2, 1, 2, 2, 1, 2)
# MIKROTIK-MIB mtxrNeighborInterfaceID: the ifIndex each RouterOS neighbour was heard on,
# indexed like RouterOS's own lldpRemTable rows (a neighbour number alone).
MTXR_NEIGHBOR_INTERFACE_ID: Oid = (1, 3, 6, 1, 4, 1, 14988, 1, 1, 11, 1, 1, 8)

DISCOVERY_COLUMNS: tuple[Oid, ...] = (*LLDP_COLUMNS, *CDP_COLUMNS, IF_NAME, IF_DESCR,
                                      MTXR_NEIGHBOR_INTERFACE_ID)
"""Every column discovery reads, walked together in one GETBULK walk per device."""

# LldpChassisIdSubtype / LldpPortIdSubtype (LLDP-MIB)
CHASSIS_MAC_ADDRESS = 4
PORT_INTERFACE_ALIAS, PORT_MAC_ADDRESS, PORT_NETWORK_ADDRESS = 1, 3, 4
PORT_INTERFACE_NAME, PORT_LOCAL = 5, 7
PORT_SUBTYPE_NAMES = {1: "interfaceAlias", 2: "portComponent", 3: "macAddress",
                      4: "networkAddress", 5: "interfaceName", 6: "agentCircuitId", 7: "local"}
CHASSIS_SUBTYPE_NAMES = {1: "chassisComponent", 2: "interfaceAlias", 3: "portComponent",
                         4: "macAddress", 5: "networkAddress", 6: "interfaceName", 7: "local"}
ADDRESS_FAMILY_IPV4, ADDRESS_FAMILY_IPV6 = 1, 2
# CiscoNetworkProtocol (CISCO-TC) of cdpCacheAddressType
CDP_ADDRESS_IP, CDP_ADDRESS_IPV6 = 1, 20
# RouterOS writes a MAC-typed chassis or port ID as text ("64:D1:54:F2:A4:16"), not 6 octets
_TEXT_MAC = re.compile(rb"[0-9A-Fa-f]{2}([:-]?)(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}")


# --- what a device said --------------------------------------------------------------------


@dataclass(frozen=True)
class LldpNeighbour:
    """One lldpRemTable row: what the walked device heard on its local port number (RouterOS:
    on the interface `local_if_index`, its rows carrying no local port number)."""

    local_port_num: int | None
    chassis_id_subtype: int | None
    chassis_id: bytes | None
    port_id_subtype: int | None
    port_id: bytes | None
    sys_name: str | None = None
    management_addresses: tuple[str, ...] = ()
    local_if_index: int | None = None

    def describe(self) -> str:
        """The neighbour as a person identifies it: name, chassis, port."""
        parts = []
        if self.sys_name:
            parts.append(f"system name {self.sys_name!r}")
        if self.chassis_id is not None:
            parts.append(f"chassis {_show_id(self.chassis_id_subtype, self.chassis_id, True)}")
        if self.management_addresses:
            parts.append(f"address {', '.join(self.management_addresses)}")
        if self.port_id is not None:
            parts.append(f"port {_show_id(self.port_id_subtype, self.port_id, False)}")
        return ", ".join(parts) or "an empty LLDP row"


@dataclass(frozen=True)
class CdpNeighbour:
    """One cdpCacheTable row: what the walked device heard over CDP on its interface
    `if_index`."""

    if_index: int
    device_index: int
    device_id: str | None
    device_port: str | None
    platform: str | None = None
    addresses: tuple[str, ...] = ()

    def describe(self) -> str:
        """The neighbour as a person identifies it: CDP device ID, platform, address, port."""
        parts = []
        if self.device_id:
            parts.append(f"CDP device id {self.device_id!r}")
        if self.platform:
            parts.append(f"platform {self.platform!r}")
        if self.addresses:
            parts.append(f"address {', '.join(self.addresses)}")
        if self.device_port:
            parts.append(f"port {self.device_port!r}")
        return ", ".join(parts) or "an empty CDP row"

    def names(self) -> list[str]:
        """The names the device ID holds: itself and, for `A(B)` (Nexus `host(serial)`,
        others `serial(host)`), A and B."""
        if not self.device_id:
            return []
        names = [self.device_id.strip()]
        parts = re.fullmatch(r"(.+?)\s*\((.+)\)", names[0])
        if parts:
            names += [parts[1].strip(), parts[2].strip()]
        return [name for name in names if name]


@dataclass(frozen=True)
class NeighbourSnapshot:
    """A device's neighbour tables as walked: who it says it is, its ports (LLDP's, and
    ifIndex -> (ifName, ifDescr)), what it heard over LLDP and over CDP."""

    device: str  # inventory key of the walked device
    sys_name: str | None = None
    lldp_sys_name: str | None = None
    chassis_id_subtype: int | None = None
    chassis_id: bytes | None = None
    local_ports: dict[int, tuple[int | None, bytes | None]] = field(default_factory=dict)
    neighbours: tuple[LldpNeighbour, ...] = ()
    cdp_neighbours: tuple[CdpNeighbour, ...] = ()
    cdp_device_id: str | None = None
    cdp_run: int | None = None  # cdpGlobalRun: 1 true, 2 false
    interfaces: dict[int, tuple[str | None, str | None]] = field(default_factory=dict)

    @property
    def answers_lldp(self) -> bool:
        """The agent has an LLDP-MIB: its local data or remote rows answered."""
        return bool(self.chassis_id or self.lldp_sys_name or self.local_ports
                    or self.neighbours)

    @property
    def answers_cdp(self) -> bool:
        """The agent has a CISCO-CDP-MIB: its cache or global scalars answered."""
        return bool(self.cdp_neighbours or self.cdp_device_id or self.cdp_run is not None)


LldpSnapshot = NeighbourSnapshot  # the name before CDP joined; kept for callers


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return None if value is None else str(value) if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def _bytes(value: Any) -> bytes | None:
    return value if isinstance(value, bytes) else None


def _mac(subtype: int | None, mac_subtype: int, value: bytes | None) -> bytes | None:
    """A MAC-typed ID as its 6 octets, also when the agent wrote it as text."""
    if subtype == mac_subtype and value is not None and _TEXT_MAC.fullmatch(value):
        return bytes.fromhex(re.sub(rb"[:-]", b"", value).decode("ascii"))
    return value


def _scalar(rows: Mapping[Oid, Mapping[Oid, Any]], column: Oid) -> Any:
    return rows.get(column, {}).get((0,))


def _address(index: Oid) -> str | None:
    """An lldpManAddr from a table index: subtype, length, then the address bytes."""
    if len(index) < 2:
        return None
    family, length, octets = index[0], index[1], index[2:]
    if length != len(octets) or any(not 0 <= o <= 255 for o in octets):
        return None
    if family == ADDRESS_FAMILY_IPV4 and length == 4:
        return str(ipaddress.IPv4Address(bytes(octets)))
    if family == ADDRESS_FAMILY_IPV6 and length == 16:
        return str(ipaddress.IPv6Address(bytes(octets)))
    return None


def _cdp_address(kind: int | None, value: bytes | None) -> str | None:
    if value is None:
        return None
    if kind == CDP_ADDRESS_IP and len(value) == 4:
        return str(ipaddress.IPv4Address(value))
    if kind == CDP_ADDRESS_IPV6 and len(value) == 16:
        return str(ipaddress.IPv6Address(value))
    return None


def _lldp_neighbour(rows: Mapping[Oid, Mapping[Oid, Any]], index: Oid,
                    local_port_num: int | None, addresses: tuple[str, ...] = (),
                    local_if_index: int | None = None) -> LldpNeighbour:
    def value(column: Oid) -> Any:
        return rows.get(column, {}).get(index)

    chassis_subtype = _int(value(LLDP_REM_CHASSIS_ID_SUBTYPE))
    port_subtype = _int(value(LLDP_REM_PORT_ID_SUBTYPE))
    return LldpNeighbour(
        local_port_num=local_port_num,
        chassis_id_subtype=chassis_subtype,
        chassis_id=_mac(chassis_subtype, CHASSIS_MAC_ADDRESS, _bytes(value(LLDP_REM_CHASSIS_ID))),
        port_id_subtype=port_subtype,
        port_id=_mac(port_subtype, PORT_MAC_ADDRESS, _bytes(value(LLDP_REM_PORT_ID))),
        sys_name=_text(value(LLDP_REM_SYS_NAME)) or None,
        management_addresses=addresses,
        local_if_index=local_if_index,
    )


def parse_neighbours(device: str, rows: Mapping[Oid, Mapping[Oid, Any]]) -> NeighbourSnapshot:
    """A device's walked columns ({column OID: {index suffix: value}}, as `SnmpPoller.walk`
    gives them for `DISCOVERY_COLUMNS`, or any part of them) as a `NeighbourSnapshot`."""
    local_ports: dict[int, tuple[int | None, bytes | None]] = {}
    for column in (LLDP_LOC_PORT_ID_SUBTYPE, LLDP_LOC_PORT_ID):
        for index in rows.get(column, {}):
            if len(index) == 1:
                subtype = _int(rows.get(LLDP_LOC_PORT_ID_SUBTYPE, {}).get(index))
                local_ports[index[0]] = (subtype, _mac(
                    subtype, PORT_MAC_ADDRESS, _bytes(rows.get(LLDP_LOC_PORT_ID, {}).get(index))))
    addresses: dict[Oid, list[str]] = {}
    for index in rows.get(LLDP_REM_MAN_ADDR_IF_SUBTYPE, {}):
        address = _address(index[3:])
        if len(index) > 3 and address is not None:
            addresses.setdefault(index[:3], []).append(address)
    remote_indexes: set[Oid] = set()
    for column in (LLDP_REM_CHASSIS_ID, LLDP_REM_PORT_ID, LLDP_REM_SYS_NAME):
        remote_indexes.update(index for index in rows.get(column, {}) if len(index) in (1, 3))
    # A neighbour can appear under several timeMarks; keep the newest row of each.
    newest: dict[tuple[int, int], Oid] = {}
    for index in sorted(i for i in remote_indexes if len(i) == 3):
        newest[(index[1], index[2])] = index
    neighbours = [_lldp_neighbour(rows, index, local_port_num, tuple(addresses.get(index, ())))
                  for (local_port_num, _), index in sorted(newest.items())]
    # RouterOS: rows indexed by a neighbour number alone, the interface in MIKROTIK-MIB
    heard_on = rows.get(MTXR_NEIGHBOR_INTERFACE_ID, {})
    neighbours += [_lldp_neighbour(rows, index, None,
                                   local_if_index=_int(heard_on.get(index)))
                   for index in sorted(i for i in remote_indexes if len(i) == 1)]

    cdp_indexes = sorted({index for column in (CDP_CACHE_DEVICE_ID, CDP_CACHE_DEVICE_PORT,
                                               CDP_CACHE_ADDRESS)
                          for index in rows.get(column, {}) if len(index) == 2})
    cdp_neighbours = []
    for index in cdp_indexes:
        def cdp(column: Oid, index: Oid = index) -> Any:
            return rows.get(column, {}).get(index)

        address = _cdp_address(_int(cdp(CDP_CACHE_ADDRESS_TYPE)), _bytes(cdp(CDP_CACHE_ADDRESS)))
        cdp_neighbours.append(CdpNeighbour(
            if_index=index[0], device_index=index[1],
            device_id=(_text(cdp(CDP_CACHE_DEVICE_ID)) or "").strip() or None,
            device_port=(_text(cdp(CDP_CACHE_DEVICE_PORT)) or "").strip() or None,
            platform=(_text(cdp(CDP_CACHE_PLATFORM)) or "").strip() or None,
            addresses=(address,) if address else ()))

    interfaces: dict[int, tuple[str | None, str | None]] = {}
    for position, column in enumerate((IF_NAME, IF_DESCR)):
        for index, value in rows.get(column, {}).items():
            if len(index) == 1:
                pair = list(interfaces.get(index[0], (None, None)))
                pair[position] = _text(value) or None
                interfaces[index[0]] = (pair[0], pair[1])
    return NeighbourSnapshot(
        device=device,
        sys_name=_text(_scalar(rows, SYS_NAME)),
        lldp_sys_name=_text(_scalar(rows, LLDP_LOC_SYS_NAME)) or None,
        chassis_id_subtype=_int(_scalar(rows, LLDP_LOC_CHASSIS_ID_SUBTYPE)),
        chassis_id=_mac(_int(_scalar(rows, LLDP_LOC_CHASSIS_ID_SUBTYPE)), CHASSIS_MAC_ADDRESS,
                        _bytes(_scalar(rows, LLDP_LOC_CHASSIS_ID)) or None),
        local_ports=local_ports,
        neighbours=tuple(neighbours),
        cdp_neighbours=tuple(cdp_neighbours),
        cdp_device_id=(_text(_scalar(rows, CDP_GLOBAL_DEVICE_ID)) or "").strip() or None,
        cdp_run=_int(_scalar(rows, CDP_GLOBAL_RUN)),
        interfaces=interfaces,
    )


parse_lldp = parse_neighbours  # the name before CDP joined; kept for callers


# --- what discovery concluded --------------------------------------------------------------


@dataclass(frozen=True, order=True)
class DiscoveredLink:
    """Two inventory ports LLDP or CDP shows adjacent; `a_port_id` < `z_port_id`; `a` and
    `z` are "device:port"; `seen_by` the walked devices that reported it (one or both ends);
    `protocols` the protocols that did ("cdp", "lldp")."""

    a_port_id: int
    z_port_id: int
    a: str
    z: str
    seen_by: tuple[str, ...] = ()
    protocols: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.a} -- {self.z}"


@dataclass(frozen=True)
class UnresolvedNeighbour:
    """An LLDP or CDP neighbour of `device` heard on `local_port` that discovery could not
    place."""

    device: str
    local_port: str
    neighbour: str
    reason: str

    def __str__(self) -> str:
        return f"{self.device} {self.local_port}: {self.neighbour}: {self.reason}"


@dataclass(frozen=True)
class RenamedDevice:
    """A device that answers with a name other than its inventory key; `source` says
    where the name was read (sysName, lldpLocSysName, cdpGlobalDeviceId, or a neighbour's
    lldpRemSysName or cdpCacheDeviceId)."""

    device: str
    name: str
    source: str

    def __str__(self) -> str:
        return f"{self.device} answers as {self.name!r} ({self.source})"


@dataclass(frozen=True)
class DeviceFailure:
    """A device whose neighbour tables could not be read, and why (never a secret)."""

    device: str
    status: str
    reason: str

    def __str__(self) -> str:
        return f"{self.device}: {self.status}: {self.reason}"


@dataclass(frozen=True)
class NeighbourTables:
    """Which neighbour tables a walked device answers, and how many neighbours they hold:
    a device with neither protocol is blind to discovery, which is not the same as a device
    whose LLDP answers with no neighbour (nothing cabled, or the far ends speak no LLDP)."""

    device: str
    lldp: bool
    cdp: bool
    neighbours: int

    def __str__(self) -> str:
        if not (self.lldp or self.cdp):
            return f"{self.device}: no LLDP or CDP neighbours table (neither protocol answers)"
        protocols = " and ".join(name for name, on in (("LLDP", self.lldp), ("CDP", self.cdp))
                                 if on)
        verb = "answer" if self.lldp and self.cdp else "answers"
        heard = f"{self.neighbours} neighbour(s)" if self.neighbours else "no neighbour heard"
        return f"{self.device}: {protocols} {verb}, {heard}"


@dataclass(frozen=True)
class Discovery:
    """One discovery round: the links found, what could not be placed, who answered."""

    links: tuple[DiscoveredLink, ...]
    unresolved: tuple[UnresolvedNeighbour, ...] = ()
    renamed: tuple[RenamedDevice, ...] = ()
    failures: tuple[DeviceFailure, ...] = ()
    walked: tuple[str, ...] = ()  # device keys whose tables were read
    devices_asked: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    run_id: int | None = None
    tables: tuple[NeighbourTables, ...] = ()  # one per walked inventory device

    @property
    def silent(self) -> tuple[str, ...]:
        """Walked devices that answer neither LLDP nor CDP."""
        return tuple(t.device for t in self.tables if not (t.lldp or t.cdp))

    def summary(self) -> list[str]:
        """What the round found, as lines for a person."""
        both = sum(1 for link in self.links if len(link.seen_by) > 1)
        lines = [f"Discovery: {len(self.walked)} of {self.devices_asked} device(s) walked,"
                 f" {len(self.links)} link(s) found ({both} seen from both ends),"
                 f" {len(self.unresolved)} neighbour(s) unresolved,"
                 f" {len(self.failures)} device(s) failed."]
        lines += [f"  failed: {failure}" for failure in self.failures]
        # Blind devices first, then those whose tables answer empty: two different fixes
        # (enable LLDP or CDP, or look at the cabling and the far ends).
        lines += [f"  {tables}" for tables in self.tables if not (tables.lldp or tables.cdp)]
        lines += [f"  {tables}" for tables in self.tables
                  if (tables.lldp or tables.cdp) and not tables.neighbours]
        lines += [f"  unresolved: {item}" for item in self.unresolved]
        lines += [f"  other name: {item}" for item in self.renamed]
        return lines


# --- resolution ----------------------------------------------------------------------------


def _show_id(subtype: int | None, value: bytes, chassis: bool) -> str:
    names = CHASSIS_SUBTYPE_NAMES if chassis else PORT_SUBTYPE_NAMES
    kind = names.get(subtype or 0, f"subtype {subtype}")
    mac = (CHASSIS_MAC_ADDRESS if chassis else PORT_MAC_ADDRESS) == subtype
    if mac or not value.isascii() or not value.decode("ascii").isprintable():
        shown = ":".join(f"{octet:02x}" for octet in value)
    else:
        shown = repr(value.decode("ascii"))
    return f"{shown} ({kind})"


def _short(name: str) -> str:
    return name.split(".", 1)[0].casefold()


def _bridge_port(name: str) -> str | None:
    """RouterOS announces a bridged port as `bridge1/vlan/ether6`: the last part is the
    port. Only when every part starts with a letter: `Gi1/0/1` or Nokia's `1/1/c33` are
    names of their own."""
    parts = name.split("/")
    if len(parts) > 1 and all(part[:1].isalpha() for part in parts):
        return parts[-1]
    return None


class _Directory:
    """The inventory indexed for resolution, plus what the walked devices said of
    themselves (their chassis IDs, names, local port tables and interfaces)."""

    def __init__(self, devices: Sequence[DeviceEntry],
                 snapshots: Mapping[str, NeighbourSnapshot]) -> None:
        self.devices = {device.key: device for device in devices}
        self.snapshots = snapshots
        self.by_chassis: dict[tuple[int | None, bytes], set[str]] = {}
        for key, snapshot in snapshots.items():
            if snapshot.chassis_id:
                chassis = (snapshot.chassis_id_subtype, snapshot.chassis_id)
                self.by_chassis.setdefault(chassis, set()).add(key)
        self.by_name: dict[str, set[str]] = {}
        self.by_short_name: dict[str, set[str]] = {}
        for key in self.devices:
            names = {key}
            snapshot = snapshots.get(key)
            if snapshot is not None:
                names.update(n for n in (snapshot.sys_name, snapshot.lldp_sys_name,
                                         snapshot.cdp_device_id) if n)
            for name in names:
                self.by_name.setdefault(name.casefold(), set()).add(key)
                self.by_short_name.setdefault(_short(name), set()).add(key)
        self.by_address: dict[str, set[str]] = {}
        for device in devices:
            address = str(ipaddress.ip_address(device.management_address))
            self.by_address.setdefault(address, set()).add(device.key)
        # ifIndex -> inventory port of each walked device that gave its interface names:
        # matched by name, as the poller does, since the inventory's ifIndexes are rare and
        # go stale. A device that gave none falls back to the ports' declared if_index.
        self.if_ports: dict[str, dict[int, PortEntry]] = {}
        for key, snapshot in snapshots.items():
            device = self.devices.get(key)
            if device is not None and snapshot.interfaces:
                by_id = {port.id: port for port in device.ports}
                matched = match_ports(device.ports, snapshot.interfaces)
                self.if_ports[key] = {if_index: by_id[port_id]
                                      for if_index, port_id in matched.by_if_index.items()}

    def _by_names(self, names: Sequence[str]) -> str | None:
        for name in names:
            if name in self.devices:
                return name
            for index, wanted in ((self.by_name, name.casefold()),
                                  (self.by_short_name, _short(name))):
                found = index.get(wanted)
                if found and len(found) == 1:
                    return next(iter(found))
        return None

    def _by_addresses(self, addresses: Sequence[str]) -> str | None:
        for address in addresses:
            found = self.by_address.get(address)
            if found and len(found) == 1:
                return next(iter(found))
        return None

    def device_of(self, neighbour: LldpNeighbour) -> tuple[str | None, str]:
        """(device key, how it was found) or (None, why not)."""
        if neighbour.chassis_id:
            found = self.by_chassis.get((neighbour.chassis_id_subtype, neighbour.chassis_id))
            if found and len(found) == 1:
                return next(iter(found)), "chassis id"
        if neighbour.sys_name and (key := self._by_names([neighbour.sys_name.strip()])):
            return key, "system name"
        if key := self._by_addresses(neighbour.management_addresses):
            return key, "management address"
        return None, "matches no inventory device by chassis id, system name or management address"

    def cdp_device_of(self, neighbour: CdpNeighbour) -> tuple[str | None, str]:
        """(device key, how it was found) or (None, why not)."""
        if key := self._by_names(neighbour.names()):
            return key, "CDP device id"
        if key := self._by_addresses(neighbour.addresses):
            return key, "address"
        return None, "matches no inventory device by CDP device id or address"

    def port_named(self, device: str, name: str) -> PortEntry | None:
        """The port of `device` called `name`: exactly, else case-insensitively, else in
        another vendor form (normalize), else through the device's own walked ifName and
        ifDescr, else, for a RouterOS bridge path, by its last part."""
        name = name.strip()
        if not name:
            return None
        ports = self.devices[device].ports
        exact = [port for port in ports if port.name == name]
        if exact:
            return exact[0]
        for key in (str.casefold, normalize):
            found = [port for port in ports if key(port.name) == key(name)]
            if found:
                return found[0] if len(found) == 1 else None
        if_index = self.if_index_named(device, name)
        if if_index is not None:
            return self.port_at_if_index(device, if_index)
        bridged = _bridge_port(name)
        return self.port_named(device, bridged) if bridged else None

    def if_index_named(self, device: str, name: str) -> int | None:
        """The ifIndex of the walked device's interface called `name` (its ifName or
        ifDescr, as `match_ports` finds it), None if not walked or no such interface."""
        snapshot = self.snapshots.get(device)
        if snapshot is None or not snapshot.interfaces:
            return None
        matched = match_ports([(0, name, None)], snapshot.interfaces)
        return next(iter(matched.by_if_index), None)

    def port_at_if_index(self, device: str, if_index: int) -> PortEntry | None:
        walked = self.if_ports.get(device)
        if walked is not None:
            return walked.get(if_index)
        return next((p for p in self.devices[device].ports if p.if_index == if_index), None)

    def local_port(self, device: str, port_num: int) -> PortEntry | None:
        """The port of `device` its LLDP agent numbers `port_num` (lldpLocPortNum)."""
        snapshot = self.snapshots.get(device)
        subtype, port_id = (snapshot.local_ports.get(port_num, (None, None)) if snapshot
                            else (None, None))
        if port_id is not None:
            text = port_id.decode("utf-8", errors="replace")
            # A port ID without its subtype (vrp_5720 walks lldpLocPortId alone) is tried
            # as a name: Huawei numbers its LLDP ports apart from its ifIndexes.
            if subtype in (PORT_INTERFACE_NAME, None):
                if port := self.port_named(device, text):
                    return port
                if self.if_index_named(device, text) is not None:
                    return None  # the device has it, the inventory does not: no fallback
            if (subtype == PORT_LOCAL and text.isdigit()
                    and (port := self.port_at_if_index(device, int(text)))):
                return port
        return self.port_at_if_index(device, port_num)

    def remote_port(self, device: str, subtype: int | None,
                    port_id: bytes | None) -> PortEntry | None:
        """The port of `device` a neighbour's LLDP port ID names."""
        if port_id is None:
            return None
        text = port_id.decode("utf-8", errors="replace")
        if subtype in (PORT_INTERFACE_NAME, None) and (port := self.port_named(device, text)):
            return port
        snapshot = self.snapshots.get(device)
        if snapshot is not None:  # the neighbour's own lldpLocPortTable, any subtype
            for port_num, (local_subtype, local_id) in sorted(snapshot.local_ports.items()):
                if (local_id == port_id and local_subtype == subtype
                        and (port := self.local_port(device, port_num))):
                    return port
        if subtype == PORT_LOCAL:
            if text.isdigit():
                return self.port_at_if_index(device, int(text))
            return self.port_named(device, text)
        return None

    def lldp_port_name(self, device: str, port_num: int) -> str:
        """How the walked device names its LLDP port `port_num`, for messages."""
        snapshot = self.snapshots.get(device)
        _, port_id = (snapshot.local_ports.get(port_num, (None, None)) if snapshot
                      else (None, None))
        text = port_id.decode("utf-8", errors="replace") if port_id else ""
        shown = f" ({text})" if text.isprintable() and text else ""
        return f"port number {port_num}{shown}"

    def if_name(self, device: str, if_index: int) -> str:
        """How the walked device names ifIndex `if_index`, for messages."""
        snapshot = self.snapshots.get(device)
        if_name, if_descr = (snapshot.interfaces.get(if_index, (None, None)) if snapshot
                             else (None, None))
        shown = if_name or if_descr
        return f"ifIndex {if_index} ({shown})" if shown else f"ifIndex {if_index}"


@dataclass(frozen=True)
class _Heard:
    """One neighbour row of either protocol, resolved as far as it goes."""

    protocol: str  # "lldp" or "cdp"
    local: PortEntry | None
    local_name: str  # the local port as a person finds it on the device
    no_local: str  # why `local` is None
    neighbour: str  # the row as a person identifies the neighbour
    peer: str | None
    how: str  # how the peer was found, or why it was not
    name: str | None  # the name the neighbour goes by, if it gave one
    name_source: str
    port_shown: str | None  # the neighbour's port as announced; None: it announced none
    remote: Callable[[str], PortEntry | None]  # peer key -> its port the row names


def _heard_lldp(directory: _Directory, key: str, neighbour: LldpNeighbour) -> _Heard:
    if neighbour.local_port_num is not None:
        local = directory.local_port(key, neighbour.local_port_num)
        where = directory.lldp_port_name(key, neighbour.local_port_num)
        no_local = (f"local port number {neighbour.local_port_num} is no port of {key}"
                    " in the inventory")
    elif neighbour.local_if_index is not None:
        local = directory.port_at_if_index(key, neighbour.local_if_index)
        where = directory.if_name(key, neighbour.local_if_index)
        no_local = f"local {where} is no port of {key} in the inventory"
    else:
        local, where = None, "an unknown port"
        no_local = ("the row names no local port (RouterOS without MIKROTIK-MIB"
                    " mtxrNeighborInterfaceID)")
    peer, how = directory.device_of(neighbour)
    port_id = neighbour.port_id
    return _Heard(
        "lldp", local, local.name if local else where, no_local, neighbour.describe(), peer,
        how, neighbour.sys_name, "lldpRemSysName",
        _show_id(neighbour.port_id_subtype, port_id, False) if port_id else None,
        lambda peer: directory.remote_port(peer, neighbour.port_id_subtype, port_id))


def _heard_cdp(directory: _Directory, key: str, neighbour: CdpNeighbour) -> _Heard:
    local = directory.port_at_if_index(key, neighbour.if_index)
    where = directory.if_name(key, neighbour.if_index)
    peer, how = directory.cdp_device_of(neighbour)
    port = neighbour.device_port
    return _Heard(
        "cdp", local, local.name if local else where,
        f"local {where} is no port of {key} in the inventory", neighbour.describe(), peer,
        how, neighbour.device_id, "cdpCacheDeviceId", repr(port) if port else None,
        lambda peer: directory.port_named(peer, port or ""))


def resolve(devices: Sequence[DeviceEntry], snapshots: Mapping[str, NeighbourSnapshot],
            failures: Sequence[DeviceFailure] = ()) -> Discovery:
    """Place every neighbour (LLDP and CDP) of every snapshot in the inventory `devices`
    (see the module docstring): links, unresolved neighbours, devices that answer with
    another name, and which tables each walked device answers."""
    directory = _Directory(devices, snapshots)
    links: dict[tuple[int, int], tuple[str, str, set[str], set[str]]] = {}
    unresolved: list[UnresolvedNeighbour] = []
    renamed: dict[tuple[str, str], RenamedDevice] = {}
    tables: list[NeighbourTables] = []
    walked = [(key, snapshot) for key, snapshot in sorted(snapshots.items())
              if key in directory.devices]
    for key, snapshot in walked:
        for source, name in (("sysName", snapshot.sys_name),
                             ("lldpLocSysName", snapshot.lldp_sys_name),
                             ("cdpGlobalDeviceId", snapshot.cdp_device_id)):
            if name and name != key and (key, name) not in renamed:
                renamed[(key, name)] = RenamedDevice(key, name, source)
        tables.append(NeighbourTables(
            key, snapshot.answers_lldp, snapshot.answers_cdp,
            len(snapshot.neighbours) + len(snapshot.cdp_neighbours)))
    for key, snapshot in walked:
        heard = [*(_heard_lldp(directory, key, n) for n in snapshot.neighbours),
                 *(_heard_cdp(directory, key, n) for n in snapshot.cdp_neighbours)]
        for row in heard:
            def unplaced(reason: str, row: _Heard = row, key: str = key) -> None:
                unresolved.append(UnresolvedNeighbour(key, row.local_name, row.neighbour,
                                                      reason))

            if row.local is None:
                unplaced(row.no_local)
                continue
            if row.peer is None:
                unplaced(row.how)
                continue
            # What a walked device calls itself was read above; a neighbour's name for a
            # device that was not walked is the only word on it.
            if (row.name and row.name != row.peer and row.peer not in snapshots
                    and (row.peer, row.name) not in renamed):
                renamed[(row.peer, row.name)] = RenamedDevice(
                    row.peer, row.name, f"{row.name_source} seen by {key}")
            if row.port_shown is None:
                unplaced(f"device {row.peer} (by {row.how}) is heard, but the neighbour"
                         " announces no port")
                continue
            remote = row.remote(row.peer)
            if remote is None:
                unplaced(f"device {row.peer} (by {row.how}) has no port matching port id"
                         f" {row.port_shown}")
                continue
            if remote.id == row.local.id:
                unplaced("the neighbour is this very port (a loop)")
                continue
            ends = sorted(((row.local.id, f"{key}:{row.local.name}"),
                           (remote.id, f"{row.peer}:{remote.name}")))
            # Keyed by the port pair: the same cable reported by both ends, or over LLDP
            # and CDP, is one link.
            entry = links.setdefault((ends[0][0], ends[1][0]),
                                     (ends[0][1], ends[1][1], set(), set()))
            entry[2].add(key)
            entry[3].add(row.protocol)
    found = tuple(DiscoveredLink(a_id, z_id, a, z, tuple(sorted(seen)), tuple(sorted(protocols)))
                  for (a_id, z_id), (a, z, seen, protocols) in sorted(links.items()))
    return Discovery(links=found, unresolved=tuple(unresolved),
                     renamed=tuple(renamed[k] for k in sorted(renamed)),
                     failures=tuple(failures), walked=tuple(sorted(snapshots)),
                     devices_asked=len(snapshots) + len(failures), tables=tuple(tables))


# --- walking the network -------------------------------------------------------------------


async def discover(targets: Sequence[PollTarget], devices: Sequence[DeviceEntry],
                   poller: SnmpPoller, *, progress: Progress | None = None,
                   failures: Sequence[DeviceFailure] = ()) -> Discovery:
    """Walk the neighbour tables of every target (LLDP-MIB, CISCO-CDP-MIB and the interface
    names: `DISCOVERY_COLUMNS`; at most `poller.max_in_flight` devices at a time) and
    resolve what they said against `devices` (all the inventory's, not only the targets).
    `failures` are devices already known not to be walkable (a missing credential).
    `progress(done, total)` is called before the first walk and after each one."""
    started_at = datetime.now(UTC)
    total = len(targets)
    done = 0
    if progress:
        progress(0, total)
    gate = asyncio.Semaphore(poller.max_in_flight)

    async def one(target: PollTarget) -> WalkResult:
        nonlocal done
        async with gate:
            result = await poller.walk(target, DISCOVERY_COLUMNS)
        done += 1
        if progress:
            progress(done, total)
        return result

    results = await asyncio.gather(*(one(target) for target in targets))
    snapshots: dict[str, NeighbourSnapshot] = {}
    failed = list(failures)
    for result in results:
        key = result.target.device_key
        if result.status is PollStatus.REACHABLE:
            snapshots[key] = parse_neighbours(key, result.rows)
        else:
            failed.append(DeviceFailure(key, result.status.value, result.reason or ""))
    return replace(resolve(devices, snapshots, failed), started_at=started_at,
                   finished_at=datetime.now(UTC))


def save_discovery(conn: Any, discovery: Discovery, devices: Sequence[DeviceEntry]) -> int:
    """Record a discovery round in the store (store.topology); returns its run id."""
    from store.topology import record_discovery_run

    ids = {device.key: device.id for device in devices}
    now = datetime.now(UTC)
    return record_discovery_run(
        conn,
        started_at=discovery.started_at or now,
        finished_at=discovery.finished_at or now,
        devices_asked=discovery.devices_asked,
        walked_device_ids=[ids[key] for key in discovery.walked if key in ids],
        links=[(link.a_port_id, link.z_port_id, link.seen_by) for link in discovery.links],
        failures=[asdict(failure) for failure in discovery.failures],
        unresolved=[asdict(item) for item in discovery.unresolved],
        renamed=[asdict(item) for item in discovery.renamed],
    )


def run_discovery(database: Any, *, environ: Mapping[str, str] | None = None,
                  device_keys: Sequence[str] | None = None, timeout_s: float = 2.0,
                  retries: int = 1, progress: Progress | None = None) -> Discovery:
    """One whole round from the store: the targets (all active devices, or those named),
    walk, resolve against the whole inventory, record the run. Returns the `Discovery`
    with its `run_id`. `environ` resolves the credentials' secrets (default: os.environ)."""
    from collectors.targets import load_poll_targets
    from store.topology import load_device_directory

    with database.pool.connection() as conn:
        targets, problems = load_poll_targets(conn, environ=environ,
                                              device_keys=list(device_keys or ()) or None)
        devices = load_device_directory(conn)
    failures = [DeviceFailure(problem.device_key, "not-walked", problem.message)
                for problem in problems]

    async def walk_all() -> Discovery:
        poller = SnmpPoller(timeout_s=timeout_s, retries=retries)
        try:
            return await discover(targets, devices, poller, progress=progress,
                                  failures=failures)
        finally:
            poller.close()

    discovery = asyncio.run(walk_all())
    with database.pool.connection() as conn:
        run_id = save_discovery(conn, discovery, devices)
    return replace(discovery, run_id=run_id)
