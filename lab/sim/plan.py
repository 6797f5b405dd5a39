"""The plan of a simulated network: what each simulated device is, derived from an inventory.

A simulated device must look like the real one a poller would meet: a sysDescr in its
vendor's words (Huawei VRP, Cisco IOS...), a sysObjectID under its vendor's enterprise
number, an uptime of some days, a chassis MAC address for LLDP, and on each port a traffic
level of its own. None of that is in the inventory, so it is made up here - but
deterministically, from the device and port keys, so that the same inventory always gives
the same network (a test can rely on it, a demo looks the same every time).

Traffic is planned per direction of a link, not per port: what leaves pe1:Gi0/0/1 is what
arrives on p1:Gi0/0/0, so ifOutOctets at one end and ifInOctets at the other grow at the same
rate, as they do on a real link. A port without a link gets traffic of its own (an access
port facing a customer LAN, say). Rates are 10-60 % of the slower end's speed on average,
wobbling by 10-30 % around that with a period of 20-120 s.

Nothing here changes while the network runs; what does (a port going down) is in state.py.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from ipaddress import IPv4Address

from config.inventory.model import Device, Inventory

DEFAULT_SPEED_BPS = 1_000_000_000  # a port whose inventory entry names no speed

# LLDP system capabilities are BITS: bit 0 is the most significant bit of the first byte.
CAP_BRIDGE = 0x20  # bit 2
CAP_ROUTER = 0x08  # bit 4
CAP_STATION_ONLY = 0x01  # bit 7


@dataclass(frozen=True)
class Platform:
    """How a platform describes itself: sysDescr (with {name} for the host name) and
    sysObjectID, for a core/edge router (P, PE, switch) and for a customer-premises one (CE,
    firewall, server). Product numbers are illustrative, under the vendor's real enterprise
    arc (9 Cisco, 2011 Huawei, 25506 H3C, 2636 Juniper, 8072 Net-SNMP)."""

    sys_descr: str
    sys_object_id: str
    cpe_sys_descr: str
    cpe_sys_object_id: str


PLATFORMS: dict[str, Platform] = {
    "cisco_ios": Platform(
        "Cisco IOS Software [Dublin], ASR1000 Software (X86_64_LINUX_IOSD-UNIVERSALK9-M), "
        "Version 17.12.2, RELEASE SOFTWARE (fc3)\r\n"
        "Technical Support: http://www.cisco.com/techsupport\r\n"
        "Copyright (c) 1986-2023 by Cisco Systems, Inc.\r\n"
        "Compiled Thu 19-Oct-23 06:44 by mcpre",
        "1.3.6.1.4.1.9.1.1861",
        "Cisco IOS Software [Dublin], ISR Software (X86_64_LINUX_IOSD-UNIVERSALK9-M), "
        "Version 17.12.2, RELEASE SOFTWARE (fc3)\r\n"
        "Technical Support: http://www.cisco.com/techsupport\r\n"
        "Copyright (c) 1986-2023 by Cisco Systems, Inc.\r\n"
        "Compiled Thu 19-Oct-23 06:44 by mcpre",
        "1.3.6.1.4.1.9.1.2068",
    ),
    "cisco_xr": Platform(
        "Cisco IOS XR Software (ASR9K), Version 7.9.2\r\n"
        "Copyright (c) 2013-2023 by Cisco Systems, Inc.",
        "1.3.6.1.4.1.9.1.1017",
        "Cisco IOS XR Software (NCS540), Version 7.9.2\r\n"
        "Copyright (c) 2013-2023 by Cisco Systems, Inc.",
        "1.3.6.1.4.1.9.1.2984",
    ),
    "huawei_vrp": Platform(
        "Huawei Versatile Routing Platform Software\r\n"
        "VRP (R) software, Version 8.210 (NE40E V800R013C00SPC100)\r\n"
        "Copyright (C) 2012-2022 Huawei Technologies Co., Ltd.\r\n"
        "HUAWEI NE40E-X8A",
        "1.3.6.1.4.1.2011.2.62.2.9",
        "Huawei Versatile Routing Platform Software\r\n"
        "VRP (R) software, Version 5.170 (AR6100 V300R022C00SPC100)\r\n"
        "Copyright (C) 2011-2022 HUAWEI TECH CO., LTD\r\n"
        "Huawei AR6140-16G4XG Router",
        "1.3.6.1.4.1.2011.2.224.279",
    ),
    "hp_comware": Platform(
        "H3C Comware Platform Software, Software Version 7.1.064, Release 8307P03\r\n"
        "H3C SR6608\r\n"
        "Copyright (c) 2004-2023 New H3C Technologies Co., Ltd. All rights reserved.",
        "1.3.6.1.4.1.25506.1.1227",
        "H3C Comware Platform Software, Software Version 7.1.064, Release 0821P16\r\n"
        "H3C MSR36-20\r\n"
        "Copyright (c) 2004-2023 New H3C Technologies Co., Ltd. All rights reserved.",
        "1.3.6.1.4.1.25506.1.1554",
    ),
    "juniper_junos": Platform(
        "Juniper Networks, Inc. mx480 internet router, kernel JUNOS 22.4R3-S2.11, "
        "Build date: 2024-01-15 02:41:08 UTC Copyright (c) 1996-2024 Juniper Networks, Inc.",
        "1.3.6.1.4.1.2636.1.1.1.2.25",
        "Juniper Networks, Inc. srx345 internet router, kernel JUNOS 22.4R3-S2.11, "
        "Build date: 2024-01-15 02:41:08 UTC Copyright (c) 1996-2024 Juniper Networks, Inc.",
        "1.3.6.1.4.1.2636.1.1.1.2.135",
    ),
    "linux": Platform(
        "Linux {name} 6.1.0-28-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22) "
        "x86_64",
        "1.3.6.1.4.1.8072.3.2.10",
        "Linux {name} 6.1.0-28-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22) "
        "x86_64",
        "1.3.6.1.4.1.8072.3.2.10",
    ),
}
CPE_ROLES = ("CE", "firewall", "server")


@dataclass(frozen=True)
class Role:
    """What a device role means to SNMP: sysServices (OSI layers offered, RFC 1213), LLDP
    capabilities supported and enabled, and the interfaces' MTU."""

    sys_services: int
    caps_supported: int
    caps_enabled: int
    mtu_bytes: int


ROLES: dict[str, Role] = {
    "PE": Role(78, CAP_BRIDGE | CAP_ROUTER, CAP_ROUTER, 9000),
    "P": Role(78, CAP_BRIDGE | CAP_ROUTER, CAP_ROUTER, 9000),
    "CE": Role(78, CAP_BRIDGE | CAP_ROUTER, CAP_ROUTER, 1500),
    "firewall": Role(78, CAP_ROUTER, CAP_ROUTER, 1500),
    "switch": Role(6, CAP_BRIDGE | CAP_ROUTER, CAP_BRIDGE, 9000),
    "server": Role(72, CAP_STATION_ONLY, CAP_STATION_ONLY, 1500),
}


@dataclass(frozen=True)
class Flow:
    """Traffic in one direction across a port: mean rate, wobble, and packet sizes."""

    rate_bytes_per_s: float
    jitter_ratio: float
    period_s: float
    phase_rad: float
    packet_size_bytes: float
    multicast_ratio: float  # of packets
    broadcast_ratio: float  # of packets
    error_ratio: float  # of packets, counted as errors where the flow is received
    discard_ratio: float  # of packets


@dataclass(frozen=True)
class PortPlan:
    key: str  # "device:port", as the inventory's Port.key
    name: str  # ifName, ifDescr, LLDP port ID
    if_index: int
    speed_bps: int
    description: str  # ifAlias, LLDP port description
    mac: bytes
    inbound: Flow
    outbound: Flow


@dataclass(frozen=True)
class DevicePlan:
    key: str  # sysName, LLDP system name
    platform: str
    role: str
    address: IPv4Address
    snmp_port: int
    boot_epoch_s: float
    chassis_mac: bytes
    sys_descr: str
    sys_object_id: str
    sys_location: str
    role_facts: Role
    ports: tuple[PortPlan, ...]

    def port(self, name: str) -> PortPlan:
        for port in self.ports:
            if port.name == name:
                return port
        raise KeyError(f"device {self.key} has no port {name!r}")


@dataclass(frozen=True)
class LinkPlan:
    key: str
    a: str  # port key
    z: str  # port key


@dataclass(frozen=True)
class NetworkPlan:
    devices: dict[str, DevicePlan]
    links: dict[str, LinkPlan]
    peer_of: dict[str, str]  # port key -> port key at the other end of its link
    link_of: dict[str, str]  # port key -> link key

    def port(self, port_key: str) -> PortPlan:
        device, _, name = port_key.partition(":")
        return self.devices[device].port(name)

    def device_of(self, port_key: str) -> DevicePlan:
        return self.devices[port_key.partition(":")[0]]


def unit(*parts: str) -> float:
    """A number in [0, 1) that depends only on `parts`: the simulator's only randomness."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def between(low: float, high: float, *parts: str) -> float:
    return low + (high - low) * unit(*parts)


def _flow(source_key: str, speed_bps: int) -> Flow:
    """Traffic planned for the direction named by `source_key`."""
    utilisation = between(0.10, 0.60, source_key, "utilisation")
    errors = (0.0, 0.0, 0.0, 1e-6, 1e-5)[int(unit(source_key, "errors") * 5)]
    return Flow(
        rate_bytes_per_s=speed_bps / 8 * utilisation,
        jitter_ratio=between(0.10, 0.30, source_key, "jitter"),
        period_s=between(20.0, 120.0, source_key, "period"),
        phase_rad=between(0.0, 2 * math.pi, source_key, "phase"),
        packet_size_bytes=between(400.0, 1100.0, source_key, "packet size"),
        multicast_ratio=between(0.0005, 0.003, source_key, "multicast"),
        broadcast_ratio=between(0.0001, 0.0005, source_key, "broadcast"),
        error_ratio=errors,
        discard_ratio=1e-5 if utilisation > 0.5 else 0.0,
    )


def _chassis_macs(devices: list[Device]) -> dict[str, bytes]:
    """Locally administered MAC addresses 02:4b:4c:xx:xx:xx, unique within the network and
    with room after each for its ports' MACs (chassis + ifIndex)."""
    taken: set[int] = set()
    macs: dict[str, bytes] = {}
    for device in sorted(devices, key=lambda d: d.key):
        attempt = 0
        while True:
            low = int(unit(device.key, "mac", str(attempt)) * 2**24) & 0xFFF000
            if low not in taken:
                break
            attempt += 1
        taken.add(low)
        macs[device.key] = bytes((0x02, 0x4B, 0x4C)) + low.to_bytes(3, "big")
    return macs


def _with_if_indexes(device: Device) -> list[tuple[int, str, int | None, str | None]]:
    """(ifIndex, name, speed, description) of each port; ports without an if_index get the
    next free numbers after the highest one declared, in declaration order."""
    used = {port.if_index for port in device.ports if port.if_index is not None}
    next_free = max(used, default=0) + 1
    ports = []
    for port in device.ports:
        if_index = port.if_index
        if if_index is None:
            if_index, next_free = next_free, next_free + 1
        ports.append((if_index, port.name, port.speed_bps, port.description))
    return ports


def check_simulable(inventory: Inventory) -> None:
    """Refuse what the simulator cannot serve safely: it listens on, and sends traps from,
    each device's management address, so every one must be an IPv4 loopback address."""
    problems = []
    for device in inventory.devices.values():
        address = device.management_address
        if not (isinstance(address, IPv4Address) and address.is_loopback):
            problems.append(f"{device.key} ({address})")
    if problems:
        raise ValueError(
            "the simulated network serves IPv4 loopback addresses (127.0.0.0/8) only; "
            "these devices have others: " + ", ".join(sorted(problems))
        )


def build_plan(inventory: Inventory, start_epoch_s: float) -> NetworkPlan:
    """Plan every device, port and link of `inventory`; the devices booted 5-60 days before
    `start_epoch_s`."""
    check_simulable(inventory)
    devices = list(inventory.devices.values())
    macs = _chassis_macs(devices)
    speeds = {
        port.key: port.speed_bps or DEFAULT_SPEED_BPS
        for device in devices
        for port in device.ports
    }
    peer_of: dict[str, str] = {}
    link_of: dict[str, str] = {}
    links: dict[str, LinkPlan] = {}
    for link in inventory.links.values():
        a, z = str(link.a), str(link.z)
        if a not in speeds or z not in speeds or a in peer_of or z in peer_of:
            continue  # a dangling or second link on a port: the loader reports those
        links[link.key] = LinkPlan(link.key, a, z)
        peer_of[a], peer_of[z] = z, a
        link_of[a] = link_of[z] = link.key

    planned: dict[str, DevicePlan] = {}
    for device in devices:
        platform = PLATFORMS.get(device.platform, PLATFORMS["linux"])
        site = inventory.sites.get(device.site) if device.site else None
        location = ", ".join(part for part in (site.name, site.city) if part) if site else ""
        base_mac = int.from_bytes(macs[device.key], "big")
        ports = []
        for if_index, name, speed, description in _with_if_indexes(device):
            key = f"{device.key}:{name}"
            peer = peer_of.get(key)
            link_speed = min(speeds[key], speeds[peer]) if peer else speeds[key]
            ports.append(PortPlan(
                key=key,
                name=name,
                if_index=if_index,
                speed_bps=speed or DEFAULT_SPEED_BPS,
                description=description or "",
                mac=(base_mac + if_index).to_bytes(6, "big"),
                outbound=_flow(key, link_speed),
                inbound=_flow(peer if peer else key + "<-", link_speed),
            ))
        cpe = device.role in CPE_ROLES
        uptime_s = between(5 * 86400, 60 * 86400, device.key, "uptime")
        planned[device.key] = DevicePlan(
            key=device.key,
            platform=device.platform,
            role=device.role,
            address=device.management_address,  # type: ignore[arg-type]  # checked above
            snmp_port=device.snmp_port,
            boot_epoch_s=round(start_epoch_s - uptime_s, 2),
            chassis_mac=macs[device.key],
            sys_descr=(platform.cpe_sys_descr if cpe else platform.sys_descr).format(
                name=device.key),
            sys_object_id=platform.cpe_sys_object_id if cpe else platform.sys_object_id,
            sys_location=location,
            role_facts=ROLES.get(device.role, ROLES["CE"]),
            ports=tuple(sorted(ports, key=lambda p: p.if_index)),
        )
    return NetworkPlan(planned, links, peer_of, link_of)
