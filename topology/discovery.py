"""LLDP discovery: ask every device who its neighbours are and place them in the inventory.

LLDP (IEEE 802.1AB) has every port announce, every 30 s or so, who it is: the *chassis ID*
of its device (usually a MAC address), its own *port ID* (usually the interface name), the
device's system name and management address. Each device keeps what it heard in its
LLDP-MIB *remote table* (lldpRemTable, indexed by timeMark, the local port number and an
index), and describes itself in the *local* tables: lldpLocChassisId, lldpLocSysName and
lldpLocPortTable (local port number -> port ID). Discovery walks these tables on every
device and turns each remote row into a link between two inventory ports.

That takes two resolutions. The *neighbour device*: by chassis ID (learned from each walked
device's own lldpLocChassisId), else by system name (the inventory key, or a name a device
was seen answering with, case-insensitively, with or without its domain), else by management
address (lldpRemManAddrTable, the address being in the row index, against
devices.management_address). The *neighbour port*, by its port ID subtype: interfaceName(5)
is the port name; local(7) is a number (Junos: the ifIndex) or a name; any subtype
(macAddress(3) included) also matches the neighbour's own lldpLocPortTable entry with the same
ID, whose port number is its ifIndex. The *local port* of a row is the walked device's
lldpLocPortTable entry for lldpRemLocalPortNum, else that number as an ifIndex. A link seen
from both ends is one link (the lower port id first). A neighbour that cannot be placed is
reported with the reason, never guessed; a device whose sysName or lldpLocSysName is not its
inventory key is reported too ("answers with another name").

`parse_lldp` and `resolve` are pure (unit-testable on hand-made rows); `discover` walks the
devices with `collectors.snmp.SnmpPoller.walk`; `run_discovery` does the whole round from
the store and records it (store/topology.py).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from collectors.model import PollStatus, PollTarget
from collectors.snmp import SnmpPoller, WalkResult
from store.topology import DeviceEntry, PortEntry

__all__ = [
    "LLDP_COLUMNS", "DeviceFailure", "DiscoveredLink", "Discovery", "LldpNeighbour",
    "LldpSnapshot", "RenamedDevice", "UnresolvedNeighbour", "discover", "parse_lldp",
    "resolve", "run_discovery", "save_discovery",
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


# --- what a device said --------------------------------------------------------------------


@dataclass(frozen=True)
class LldpNeighbour:
    """One lldpRemTable row: what the walked device heard on its local port number."""

    local_port_num: int
    chassis_id_subtype: int | None
    chassis_id: bytes | None
    port_id_subtype: int | None
    port_id: bytes | None
    sys_name: str | None = None
    management_addresses: tuple[str, ...] = ()

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
class LldpSnapshot:
    """A device's LLDP-MIB as walked: who it says it is, its ports, what it heard."""

    device: str  # inventory key of the walked device
    sys_name: str | None = None
    lldp_sys_name: str | None = None
    chassis_id_subtype: int | None = None
    chassis_id: bytes | None = None
    local_ports: dict[int, tuple[int | None, bytes | None]] = field(default_factory=dict)
    neighbours: tuple[LldpNeighbour, ...] = ()


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return None if value is None else str(value) if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def _bytes(value: Any) -> bytes | None:
    return value if isinstance(value, bytes) else None


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


def parse_lldp(device: str, rows: Mapping[Oid, Mapping[Oid, Any]]) -> LldpSnapshot:
    """A device's walked LLDP columns ({column OID: {index suffix: value}}, as
    `SnmpPoller.walk` gives them for `LLDP_COLUMNS`) as an `LldpSnapshot`."""
    local_ports: dict[int, tuple[int | None, bytes | None]] = {}
    for column in (LLDP_LOC_PORT_ID_SUBTYPE, LLDP_LOC_PORT_ID):
        for index in rows.get(column, {}):
            if len(index) == 1:
                local_ports[index[0]] = (
                    _int(rows.get(LLDP_LOC_PORT_ID_SUBTYPE, {}).get(index)),
                    _bytes(rows.get(LLDP_LOC_PORT_ID, {}).get(index)))
    addresses: dict[Oid, list[str]] = {}
    for index in rows.get(LLDP_REM_MAN_ADDR_IF_SUBTYPE, {}):
        address = _address(index[3:])
        if len(index) > 3 and address is not None:
            addresses.setdefault(index[:3], []).append(address)
    remote_indexes: set[Oid] = set()
    for column in (LLDP_REM_CHASSIS_ID, LLDP_REM_PORT_ID, LLDP_REM_SYS_NAME):
        remote_indexes.update(index for index in rows.get(column, {}) if len(index) == 3)
    # A neighbour can appear under several timeMarks; keep the newest row of each.
    newest: dict[tuple[int, int], Oid] = {}
    for index in sorted(remote_indexes):
        newest[(index[1], index[2])] = index
    neighbours = []
    for (local_port_num, _), index in sorted(newest.items()):
        def value(column: Oid, index: Oid = index) -> Any:
            return rows.get(column, {}).get(index)
        neighbours.append(LldpNeighbour(
            local_port_num=local_port_num,
            chassis_id_subtype=_int(value(LLDP_REM_CHASSIS_ID_SUBTYPE)),
            chassis_id=_bytes(value(LLDP_REM_CHASSIS_ID)),
            port_id_subtype=_int(value(LLDP_REM_PORT_ID_SUBTYPE)),
            port_id=_bytes(value(LLDP_REM_PORT_ID)),
            sys_name=_text(value(LLDP_REM_SYS_NAME)) or None,
            management_addresses=tuple(addresses.get(index, ())),
        ))
    return LldpSnapshot(
        device=device,
        sys_name=_text(_scalar(rows, SYS_NAME)),
        lldp_sys_name=_text(_scalar(rows, LLDP_LOC_SYS_NAME)) or None,
        chassis_id_subtype=_int(_scalar(rows, LLDP_LOC_CHASSIS_ID_SUBTYPE)),
        chassis_id=_bytes(_scalar(rows, LLDP_LOC_CHASSIS_ID)) or None,
        local_ports=local_ports,
        neighbours=tuple(neighbours),
    )


# --- what discovery concluded --------------------------------------------------------------


@dataclass(frozen=True, order=True)
class DiscoveredLink:
    """Two inventory ports LLDP shows adjacent; `a_port_id` < `z_port_id`; `a` and `z`
    are "device:port"; `seen_by` the walked devices that reported it (one or both ends)."""

    a_port_id: int
    z_port_id: int
    a: str
    z: str
    seen_by: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.a} -- {self.z}"


@dataclass(frozen=True)
class UnresolvedNeighbour:
    """An LLDP neighbour of `device` heard on `local_port` that discovery could not place."""

    device: str
    local_port: str
    neighbour: str
    reason: str

    def __str__(self) -> str:
        return f"{self.device} {self.local_port}: {self.neighbour}: {self.reason}"


@dataclass(frozen=True)
class RenamedDevice:
    """A device that answers with a name other than its inventory key; `source` says
    where the name was read (sysName, lldpLocSysName, or a neighbour's lldpRemSysName)."""

    device: str
    name: str
    source: str

    def __str__(self) -> str:
        return f"{self.device} answers as {self.name!r} ({self.source})"


@dataclass(frozen=True)
class DeviceFailure:
    """A device whose LLDP tables could not be read, and why (never a secret)."""

    device: str
    status: str
    reason: str

    def __str__(self) -> str:
        return f"{self.device}: {self.status}: {self.reason}"


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

    def summary(self) -> list[str]:
        """What the round found, as lines for a person."""
        both = sum(1 for link in self.links if len(link.seen_by) > 1)
        lines = [f"Discovery: {len(self.walked)} of {self.devices_asked} device(s) walked,"
                 f" {len(self.links)} link(s) found ({both} seen from both ends),"
                 f" {len(self.unresolved)} neighbour(s) unresolved,"
                 f" {len(self.failures)} device(s) failed."]
        lines += [f"  failed: {failure}" for failure in self.failures]
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


class _Directory:
    """The inventory indexed for resolution, plus what the walked devices said of
    themselves (their chassis IDs, names and local port tables)."""

    def __init__(self, devices: Sequence[DeviceEntry],
                 snapshots: Mapping[str, LldpSnapshot]) -> None:
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
                names.update(n for n in (snapshot.sys_name, snapshot.lldp_sys_name) if n)
            for name in names:
                self.by_name.setdefault(name.casefold(), set()).add(key)
                self.by_short_name.setdefault(_short(name), set()).add(key)
        self.by_address: dict[str, set[str]] = {}
        for device in devices:
            address = str(ipaddress.ip_address(device.management_address))
            self.by_address.setdefault(address, set()).add(device.key)

    def device_of(self, neighbour: LldpNeighbour) -> tuple[str | None, str]:
        """(device key, how it was found) or (None, why not)."""
        if neighbour.chassis_id:
            found = self.by_chassis.get((neighbour.chassis_id_subtype, neighbour.chassis_id))
            if found and len(found) == 1:
                return next(iter(found)), "chassis id"
        if neighbour.sys_name:
            name = neighbour.sys_name.strip()
            if name in self.devices:
                return name, "system name"
            for index, wanted in ((self.by_name, name.casefold()),
                                  (self.by_short_name, _short(name))):
                found = index.get(wanted)
                if found and len(found) == 1:
                    return next(iter(found)), "system name"
        for address in neighbour.management_addresses:
            found = self.by_address.get(address)
            if found and len(found) == 1:
                return next(iter(found)), "management address"
        return None, "matches no inventory device by chassis id, system name or management address"

    def port_named(self, device: str, name: str) -> PortEntry | None:
        ports = self.devices[device].ports
        exact = [port for port in ports if port.name == name]
        if exact:
            return exact[0]
        folded = [port for port in ports if port.name.casefold() == name.casefold()]
        return folded[0] if len(folded) == 1 else None

    def port_at_if_index(self, device: str, if_index: int) -> PortEntry | None:
        return next((p for p in self.devices[device].ports if p.if_index == if_index), None)

    def local_port(self, device: str, port_num: int) -> PortEntry | None:
        """The port of `device` its LLDP agent numbers `port_num` (lldpLocPortNum)."""
        snapshot = self.snapshots.get(device)
        subtype, port_id = (snapshot.local_ports.get(port_num, (None, None)) if snapshot
                            else (None, None))
        if port_id is not None:
            text = port_id.decode("utf-8", errors="replace")
            if subtype == PORT_INTERFACE_NAME and (port := self.port_named(device, text)):
                return port
            if (subtype == PORT_LOCAL and text.isdigit()
                    and (port := self.port_at_if_index(device, int(text)))):
                return port
        return self.port_at_if_index(device, port_num)

    def remote_port(self, device: str, subtype: int | None,
                    port_id: bytes | None) -> PortEntry | None:
        """The port of `device` a neighbour's port ID names."""
        if port_id is None:
            return None
        text = port_id.decode("utf-8", errors="replace")
        if subtype == PORT_INTERFACE_NAME and (port := self.port_named(device, text)):
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


def resolve(devices: Sequence[DeviceEntry], snapshots: Mapping[str, LldpSnapshot],
            failures: Sequence[DeviceFailure] = ()) -> Discovery:
    """Place every neighbour of every snapshot in the inventory `devices` (see the module
    docstring): links, unresolved neighbours and devices that answer with another name."""
    directory = _Directory(devices, snapshots)
    links: dict[tuple[int, int], tuple[str, str, set[str]]] = {}
    unresolved: list[UnresolvedNeighbour] = []
    renamed: dict[tuple[str, str], RenamedDevice] = {}
    for key, snapshot in sorted(snapshots.items()):
        if key not in directory.devices:
            continue
        for source, name in (("sysName", snapshot.sys_name),
                             ("lldpLocSysName", snapshot.lldp_sys_name)):
            if name and name != key and (key, name) not in renamed:
                renamed[(key, name)] = RenamedDevice(key, name, source)
    for key, snapshot in sorted(snapshots.items()):
        if key not in directory.devices:
            continue
        for neighbour in snapshot.neighbours:
            local = directory.local_port(key, neighbour.local_port_num)
            local_name = local.name if local else f"port number {neighbour.local_port_num}"

            def unplaced(reason: str, local_name: str = local_name,
                         neighbour: LldpNeighbour = neighbour, key: str = key) -> None:
                unresolved.append(UnresolvedNeighbour(key, local_name, neighbour.describe(),
                                                      reason))

            if local is None:
                unplaced(f"local port number {neighbour.local_port_num} is no port of {key}"
                         " in the inventory")
                continue
            peer, how = directory.device_of(neighbour)
            if peer is None:
                unplaced(how)
                continue
            name = neighbour.sys_name
            if (name and name != peer and peer not in snapshots
                    and (peer, name) not in renamed):
                renamed[(peer, name)] = RenamedDevice(peer, name, f"lldpRemSysName seen by {key}")
            remote = directory.remote_port(peer, neighbour.port_id_subtype, neighbour.port_id)
            if remote is None:
                shown = (_show_id(neighbour.port_id_subtype, neighbour.port_id, False)
                         if neighbour.port_id is not None else "(none)")
                unplaced(f"device {peer} (by {how}) has no port matching port id {shown}")
                continue
            if remote.id == local.id:
                unplaced("the neighbour is this very port (a loop)")
                continue
            ends = sorted(((local.id, f"{key}:{local.name}"), (remote.id, f"{peer}:{remote.name}")))
            pair = (ends[0][0], ends[1][0])
            links.setdefault(pair, (ends[0][1], ends[1][1], set()))[2].add(key)
    found = tuple(DiscoveredLink(a_id, z_id, a, z, tuple(sorted(seen)))
                  for (a_id, z_id), (a, z, seen) in sorted(links.items()))
    return Discovery(links=found, unresolved=tuple(unresolved),
                     renamed=tuple(renamed[k] for k in sorted(renamed)),
                     failures=tuple(failures), walked=tuple(sorted(snapshots)),
                     devices_asked=len(snapshots) + len(failures))


# --- walking the network -------------------------------------------------------------------


async def discover(targets: Sequence[PollTarget], devices: Sequence[DeviceEntry],
                   poller: SnmpPoller, *, progress: Progress | None = None,
                   failures: Sequence[DeviceFailure] = ()) -> Discovery:
    """Walk the LLDP-MIB of every target (at most `poller.max_in_flight` at a time) and
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
            result = await poller.walk(target, LLDP_COLUMNS)
        done += 1
        if progress:
            progress(done, total)
        return result

    results = await asyncio.gather(*(one(target) for target in targets))
    snapshots: dict[str, LldpSnapshot] = {}
    failed = list(failures)
    for result in results:
        key = result.target.device_key
        if result.status is PollStatus.REACHABLE:
            snapshots[key] = parse_lldp(key, result.rows)
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
