"""What a simulated device prints on its CLI: prompts, errors and command outputs per platform.

A collector that reads a router's CLI meets text made for people: `show interfaces` on Cisco
IOS, `display interface` on Huawei VRP, each in its vendor's layout, parsed by TextFSM
templates (ntc-templates) that were written against real devices and break on a line they
do not expect. So the simulated CLI prints each platform's real layout - line by line the
shapes of real captured outputs - filled from the simulated network: every inventory port,
its status as the SNMP agent serves it (lab.sim.state), its counters from the same counter
functions as the agent's ifTable (lab.sim.traffic, via lab.sim.agent.counter_spec), so that
the CLI and SNMP agree on a port's octets at the same moment. Rates ("5 minute input rate",
"Last 300 seconds input rate") are the counters' growth over the last 300 s.

The platform facts the SSH shell (lab.sim.ssh) needs are data here too (`PLATFORMS`): the
prompt, the session commands netmiko sends before the first real command (paging, width)
and what the device answers to them, the profile commands, and the words a device uses to
refuse a command it does not know or may not run.

Each device also has a running configuration, generated here (hostname, interfaces with
their descriptions, a local user with a hashed password, an SNMP community: secrets a
configuration history must mask) and then edited line by line through the control socket.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lab.sim.agent import counter_spec, rates_per_s
from lab.sim.plan import NetworkPlan, unit
from lab.sim.state import NetworkState

RATE_WINDOW_S = 300.0  # "5 minute input rate", "Last 300 seconds input rate"


# --- what a device shows -----------------------------------------------------------------


@dataclass(frozen=True)
class PortView:
    """One interface as its CLI shows it at one moment."""

    name: str
    if_index: int
    description: str
    speed_bps: int
    mtu_bytes: int
    mac: bytes
    up: bool
    last_change_epoch_s: float
    in_octets: int
    out_octets: int
    in_ucast: int
    in_mcast: int
    in_bcast: int
    out_ucast: int
    out_mcast: int
    out_bcast: int
    in_errors: int
    in_discards: int
    out_discards: int
    in_bps: int
    out_bps: int
    in_pps: int
    out_pps: int

    @property
    def in_packets(self) -> int:
        return self.in_ucast + self.in_mcast + self.in_bcast

    @property
    def out_packets(self) -> int:
        return self.out_ucast + self.out_mcast + self.out_bcast


@dataclass(frozen=True)
class DeviceView:
    """A device's interfaces and identity at `now_epoch_s`, taken under the network's lock
    (device_view) and rendered outside it."""

    key: str
    platform: str
    role: str
    address: str
    boot_epoch_s: float
    chassis_mac: bytes
    sys_descr: str
    now_epoch_s: float
    ports: tuple[PortView, ...]


def device_view(plan: NetworkPlan, state: NetworkState, device_key: str,
                now_epoch_s: float) -> DeviceView:
    """Read one device's ports from the network's plan and state at `now_epoch_s`."""
    device = plan.devices[device_key]
    ports = []
    for port in device.ports:
        values: dict[str, int] = {}
        rates: dict[str, float] = {}
        for direction, flow in (("in", port.inbound), ("out", port.outbound)):
            for what, rate in rates_per_s(flow).items():
                name = f"{direction}_{what}"
                if rate <= 0:
                    values[name], rates[name] = 0, 0.0
                    continue
                spec = counter_spec(64, rate, flow, device, state, port)
                now_value = spec.value(now_epoch_s)
                before = spec.value(now_epoch_s - RATE_WINDOW_S)
                values[name] = now_value
                rates[name] = max(now_value - before, 0) / RATE_WINDOW_S
        in_pps = rates["in_ucast"] + rates["in_mcast"] + rates["in_bcast"]
        out_pps = rates["out_ucast"] + rates["out_mcast"] + rates["out_bcast"]
        ports.append(PortView(
            name=port.name, if_index=port.if_index, description=port.description,
            speed_bps=port.speed_bps, mtu_bytes=device.role_facts.mtu_bytes, mac=port.mac,
            up=state.oper_up[port.key],
            last_change_epoch_s=state.last_change_epoch_s[port.key],
            in_octets=values["in_octets"], out_octets=values["out_octets"],
            in_ucast=values["in_ucast"], in_mcast=values["in_mcast"],
            in_bcast=values["in_bcast"], out_ucast=values["out_ucast"],
            out_mcast=values["out_mcast"], out_bcast=values["out_bcast"],
            in_errors=values["in_errors"], in_discards=values["in_discards"],
            out_discards=values["out_discards"],
            in_bps=round(rates["in_octets"] * 8), out_bps=round(rates["out_octets"] * 8),
            in_pps=round(in_pps), out_pps=round(out_pps),
        ))
    return DeviceView(
        key=device.key, platform=device.platform, role=device.role,
        address=str(device.address), boot_epoch_s=device.boot_epoch_s,
        chassis_mac=device.chassis_mac, sys_descr=device.sys_descr,
        now_epoch_s=now_epoch_s, ports=tuple(ports),
    )


# --- formatting helpers --------------------------------------------------------------------


def _mac_dotted(mac: bytes) -> str:
    """Cisco's 0011.2233.4455."""
    text = mac.hex()
    return f"{text[0:4]}.{text[4:8]}.{text[8:12]}"


def _mac_dashed(mac: bytes) -> str:
    """Huawei's and H3C's 0011-2233-4455."""
    text = mac.hex()
    return f"{text[0:4]}-{text[4:8]}-{text[8:12]}"


def _mac_colons(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def _cisco_age(seconds: float) -> str:
    """How IOS prints an age: hh:mm:ss under a day, then 1d02h, then 3w2d."""
    seconds = max(int(seconds), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days == 0:
        return f"{hours:02d}:{minutes:02d}:{secs:02d}"
    if days < 7:
        return f"{days}d{hours:02d}h"
    weeks, days = divmod(days, 7)
    return f"{weeks}w{days}d"


def _clock(epoch_s: float, pattern: str = "%Y-%m-%d %H:%M:%S") -> str:
    return time.strftime(pattern, time.gmtime(epoch_s))


def _speed_words(speed_bps: int) -> str:
    if speed_bps >= 1_000_000_000 and speed_bps % 1_000_000_000 == 0:
        return f"{speed_bps // 1_000_000_000}G"
    return f"{speed_bps // 1_000_000}M"


# --- Cisco IOS / IOS XE ----------------------------------------------------------------------


def _ios_hardware(name: str, speed_bps: int) -> str:
    if name.startswith("Port-channel"):
        return "10GEChannel" if speed_bps >= 10_000_000_000 else "GEChannel"
    if name.startswith(("TenGig", "Te")):
        return "SPA-1X10GE-L-V2"
    return "BUILT-IN-4x1GE"


def render_cisco_ios_interfaces(view: DeviceView) -> str:
    """`show interfaces` as IOS XE prints it (one block per interface)."""
    out: list[str] = []
    for port in view.ports:
        state = "up" if port.up else "down"
        age = _cisco_age(view.now_epoch_s - port.last_change_epoch_s)
        last_input = "00:00:00" if port.up else age
        load_in = min(255, max(1, round(255 * port.in_bps / port.speed_bps)))
        load_out = min(255, max(1, round(255 * port.out_bps / port.speed_bps)))
        mac = _mac_dotted(port.mac)
        out += [
            f"{port.name} is {state}, line protocol is {state} ",
            f"  Hardware is {_ios_hardware(port.name, port.speed_bps)}, address is {mac} "
            f"(bia {mac})",
        ]
        if port.description:
            out.append(f"  Description: {port.description}")
        out += [
            f"  MTU {port.mtu_bytes} bytes, BW {port.speed_bps // 1000} Kbit/sec, "
            "DLY 10 usec, ",
            f"     reliability 255/255, txload {load_out}/255, rxload {load_in}/255",
            "  Encapsulation ARPA, loopback not set",
            "  Keepalive not supported ",
        ]
        if not port.name.startswith("Port-channel"):
            speed = f"{port.speed_bps // 1_000_000}Mbps"
            out += [
                f"  Full Duplex, {speed}, link type is force-up, media type is SFP-LR",
                "  output flow-control is on, input flow-control is on",
            ]
        out += [
            "  ARP type: ARPA, ARP Timeout 04:00:00",
            f"  Last input {last_input}, output {last_input}, output hang never",
            '  Last clearing of "show interface" counters never',
            "  Input queue: 0/375/0/0 (size/max/drops/flushes); Total output drops: "
            f"{port.out_discards}",
            "  Queueing strategy: fifo",
            "  Output queue: 0/40 (size/max)",
            f"  5 minute input rate {port.in_bps} bits/sec, {port.in_pps} packets/sec",
            f"  5 minute output rate {port.out_bps} bits/sec, {port.out_pps} packets/sec",
            f"     {port.in_packets} packets input, {port.in_octets} bytes, 0 no buffer",
            f"     Received {port.in_bcast} broadcasts ({port.in_mcast} IP multicasts)",
            "     0 runts, 0 giants, 0 throttles ",
            f"     {port.in_errors} input errors, 0 CRC, 0 frame, 0 overrun, 0 ignored",
            f"     0 watchdog, {port.in_mcast} multicast, 0 pause input",
            f"     {port.out_packets} packets output, {port.out_octets} bytes, 0 underruns",
            f"     Output {port.out_bcast} broadcasts ({port.out_mcast} IP multicasts)",
            "     0 output errors, 0 collisions, 0 interface resets",
            "     0 unknown protocol drops",
            "     0 babbles, 0 late collision, 0 deferred",
            "     0 lost carrier, 0 no carrier, 0 pause output",
            "     0 output buffer failures, 0 output buffers swapped out",
        ]
    return "\n".join(out) + "\n"


# --- Huawei VRP --------------------------------------------------------------------------------


def render_huawei_vrp_interfaces(view: DeviceView) -> str:
    """`display interface` as VRP prints it (one block per interface, blank line between)."""
    out: list[str] = []
    now = _clock(view.now_epoch_s)
    for port in view.ports:
        state = "UP" if port.up else "DOWN"
        changed = _clock(port.last_change_epoch_s)
        speed_mbps = port.speed_bps // 1_000_000
        in_bytes_s = port.in_bps // 8
        out_bytes_s = port.out_bps // 8
        out += [
            f"{port.name} current state : {state}",
            f"Line protocol current state : {state}",
            f"Last line protocol up time : {changed if port.up else '-'}",
            f"Description:{port.description}",
            f"Route Port,The Maximum Transmit Unit is {port.mtu_bytes}",
            "Internet protocol processing : disabled",
            "IP Sending Frames' Format is PKTFMT_ETHNT_2, Hardware address is "
            f"{_mac_dashed(port.mac)}",
            f"Last physical up time   : {changed if port.up else '-'}",
            f"Last physical down time : {'-' if port.up else changed}",
            f"Current system time: {now}",
        ]
        if not port.name.startswith("Eth-Trunk"):
            out += [
                "Port Mode: COMMON FIBER",
                f"Speed : {speed_mbps},  Loopback: NONE",
                "Duplex: FULL,  Negotiation: DISABLE",
                "Mdi   : -,  Clock   : -",
            ]
        out += [
            f"Last 300 seconds input rate {in_bytes_s} bytes/sec {port.in_bps} bits/sec "
            f"{port.in_pps} packets/sec",
            f"Last 300 seconds output rate {out_bytes_s} bytes/sec {port.out_bps} bits/sec "
            f"{port.out_pps} packets/sec",
            f"Input peak rate {port.in_bps} bits/sec,Record time: {now}",
            f"Output peak rate {port.out_bps} bits/sec,Record time: {now}",
            "",
            f"Input:  {port.in_packets} packets, {port.in_octets} bytes",
            f"  Unicast:{port.in_ucast:>23},  Multicast:{port.in_mcast:>20}",
            f"  Broadcast:{port.in_bcast:>21},  Jumbo:{0:>24}",
            f"  Discard:{port.in_discards:>23},  Total Error:{port.in_errors:>18}",
            "",
            f"  CRC:{0:>27},  Giants:{0:>23}",
            f"  Jabbers:{0:>23},  Throttles:{0:>20}",
            f"  Runts:{0:>25},  Symbols:{0:>22}",
            f"  Ignoreds:{0:>22},  Frames:{0:>23}",
            "",
            f"Output:  {port.out_packets} packets, {port.out_octets} bytes",
            f"  Unicast:{port.out_ucast:>23},  Multicast:{port.out_mcast:>20}",
            f"  Broadcast:{port.out_bcast:>21},  Jumbo:{0:>24}",
            f"  Discard:{port.out_discards:>23},  Total Error:{0:>18}",
            "",
            f"  Collisions:{0:>20},  ExcessiveCollisions:{0:>10}",
            f"  Late Collisions:{0:>15},  Deferreds:{0:>20}",
            "",
            "    Input bandwidth utilization threshold : 100.00%",
            "    Output bandwidth utilization threshold: 100.00%",
            f"    Input bandwidth utilization  : {100 * port.in_bps / port.speed_bps:6.2f}%",
            f"    Output bandwidth utilization : {100 * port.out_bps / port.speed_bps:6.2f}%",
            "",
        ]
    return "\n".join(out) + "\n"


# --- Cisco IOS XR ----------------------------------------------------------------------------


def _xr_timestamp(epoch_s: float) -> str:
    """The line IOS XR prints before every show command's output."""
    seconds = time.gmtime(epoch_s)
    millis = int((epoch_s % 1) * 1000)
    return (time.strftime("%a %b ", seconds) + f"{seconds.tm_mday:2d} "
            + time.strftime("%H:%M:%S", seconds) + f".{millis:03d} UTC")


def _xr_hardware(name: str) -> str:
    if name.startswith("Bundle-Ether"):
        return "Aggregated Ethernet interface(s)"
    for prefix in ("HundredGigE", "FortyGigE", "TenGigE", "GigabitEthernet"):
        if name.startswith(prefix):
            return prefix
    return "GigabitEthernet"


def render_cisco_xr_interfaces(view: DeviceView) -> str:
    """`show interfaces` as IOS XR prints it: a timestamp, then one block per interface."""
    out = [_xr_timestamp(view.now_epoch_s)]
    for port in view.ports:
        state = "up" if port.up else "down"
        age = _cisco_age(view.now_epoch_s - port.last_change_epoch_s)
        kbit = port.speed_bps // 1000
        mac = _mac_dotted(port.mac)
        load_in = min(255, round(255 * port.in_bps / port.speed_bps))
        load_out = min(255, round(255 * port.out_bps / port.speed_bps))
        out += [
            f"{port.name} is {state}, line protocol is {state}",
            "  Interface state transitions: 1",
            f"  Hardware is {_xr_hardware(port.name)}, address is {mac} (bia {mac})",
        ]
        if port.description:
            out.append(f"  Description: {port.description}")
        out += [
            "  Internet address is Unknown",
            f"  MTU {port.mtu_bytes + 14} bytes, BW {kbit} Kbit (Max: {kbit} Kbit)",
            f"     reliability 255/255, txload {load_out}/255, rxload {load_in}/255",
            "  Encapsulation ARPA,",
            f"  Full-duplex, {port.speed_bps // 1_000_000}Mb/s, link type is force-up",
            "  output flow control is off, input flow control is off",
            "  loopback not set,",
            f"  Last link flapped {age}",
            "  ARP type ARPA, ARP timeout 04:00:00",
            f"  Last input {'00:00:00' if port.up else age}, "
            f"output {'00:00:00' if port.up else age}",
            '  Last clearing of "show interface" counters never',
            f"  5 minute input rate {port.in_bps} bits/sec, {port.in_pps} packets/sec",
            f"  5 minute output rate {port.out_bps} bits/sec, {port.out_pps} packets/sec",
            f"     {port.in_packets} packets input, {port.in_octets} bytes, "
            f"{port.in_discards} total input drops",
            "     0 drops for unrecognized upper-level protocol",
            f"     Received {port.in_bcast} broadcast packets, {port.in_mcast} multicast packets",
            "              0 runts, 0 giants, 0 throttles, 0 parity",
            f"     {port.in_errors} input errors, 0 CRC, 0 frame, 0 overrun, 0 ignored, 0 abort",
            f"     {port.out_packets} packets output, {port.out_octets} bytes, "
            f"{port.out_discards} total output drops",
            f"     Output {port.out_bcast} broadcast packets, {port.out_mcast} multicast packets",
            "     0 output errors, 0 underruns, 0 applique, 0 resets",
            "     0 output buffer failures, 0 output buffers swapped out",
            "     1 carrier transitions",
            "",
        ]
    return "\n".join(out) + "\n"


# --- H3C Comware 7 ------------------------------------------------------------------------------


def _comware_speed(speed_bps: int) -> str:
    if speed_bps >= 10_000_000_000:
        return f"{speed_bps // 1_000_000_000}Gbps"
    return f"{speed_bps // 1_000_000}Mbps"


def render_hp_comware_interfaces(view: DeviceView) -> str:
    """`display interface` as Comware 7 prints it (one block per interface, blank line
    between)."""
    out: list[str] = []
    now = _clock(view.now_epoch_s)
    for port in view.ports:
        state = "UP" if port.up else "DOWN"
        changed = _clock(port.last_change_epoch_s)
        mac = _mac_dashed(port.mac)
        in_share = f"{100 * port.in_bps / port.speed_bps:.2f}%"
        out_share = f"{100 * port.out_bps / port.speed_bps:.2f}%"
        out += [
            port.name,
            f"Current state: {state}",
            f"Line protocol state: {state}",
            f"Description: {port.description or port.name + ' Interface'}",
            f"Bandwidth: {port.speed_bps // 1000} kbps",
            f"Maximum transmission unit: {port.mtu_bytes}",
            "Internet protocol processing: Disabled",
            f"IP packet frame type: Ethernet II, hardware address: {mac}",
            f"IPv6 packet frame type: Ethernet II, hardware address: {mac}",
            "Loopback is not set",
        ]
        if not port.name.startswith(("Route-Aggregation", "Bridge-Aggregation")):
            out += [
                "Media type is optical fiber, port hardware type is "
                f"{_speed_words(port.speed_bps)}_BASE_LR_SFP",
                f"{_comware_speed(port.speed_bps)}-speed mode, full-duplex mode",
                "Link speed type is autonegotiation, link duplex type is autonegotiation",
                "Flow-control is not enabled",
            ]
        out += [
            f"Maximum frame length: {port.mtu_bytes + 18}",
            f"Last link flapping: {_cisco_age(view.now_epoch_s - port.last_change_epoch_s)}",
            "Last clearing of counters: Never",
            f"Current system time:{now}",
            f"Last time when physical state changed to up:{changed if port.up else '-'}",
            f"Last time when physical state changed to down:{'-' if port.up else changed}",
            f" Peak input rate: {port.in_bps // 8} bytes/sec, at {now}",
            f" Peak output rate: {port.out_bps // 8} bytes/sec, at {now}",
            f" Last 300 second input: {port.in_pps} packets/sec {port.in_bps // 8} bytes/sec "
            f"{in_share}",
            f" Last 300 second output: {port.out_pps} packets/sec {port.out_bps // 8} "
            f"bytes/sec {out_share}",
            f" Input (total):  {port.in_packets} packets, {port.in_octets} bytes",
            f"         {port.in_ucast} unicasts, {port.in_bcast} broadcasts, "
            f"{port.in_mcast} multicasts, 0 pauses",
            f" Input (normal):  {port.in_packets} packets, - bytes",
            f"         {port.in_ucast} unicasts, {port.in_bcast} broadcasts, "
            f"{port.in_mcast} multicasts, 0 pauses",
            f" Input:  {port.in_errors} input errors, 0 runts, 0 giants, 0 throttles",
            "         0 CRC, 0 frame, - overruns, 0 aborts",
            "         - ignored, - parity errors",
            f" Output (total): {port.out_packets} packets, {port.out_octets} bytes",
            f"         {port.out_ucast} unicasts, {port.out_bcast} broadcasts, "
            f"{port.out_mcast} multicasts, 0 pauses",
            f" Output (normal): {port.out_packets} packets, - bytes",
            f"         {port.out_ucast} unicasts, {port.out_bcast} broadcasts, "
            f"{port.out_mcast} multicasts, 0 pauses",
            " Output: 0 output errors, - underruns, - buffer failures",
            "         0 aborts, 0 deferred, 0 collisions, 0 late collisions",
            "         0 lost carrier, - no carrier",
            "",
        ]
    return "\n".join(out) + "\n"


# --- Juniper Junos ------------------------------------------------------------------------------


def _junos_speed(speed_bps: int) -> str:
    if speed_bps >= 1_000_000_000 and speed_bps % 1_000_000_000 == 0 \
            and speed_bps > 1_000_000_000:
        return f"{speed_bps // 1_000_000_000}Gbps"
    return f"{speed_bps // 1_000_000}mbps"


def render_juniper_junos_interfaces(view: DeviceView) -> str:
    """`show interfaces` (the default, not `extensive`) as Junos prints it: rates, no
    counters."""
    out: list[str] = []
    for port in view.ports:
        link = "Up" if port.up else "Down"
        flags = "Present Running" if port.up else "Present Running Down"
        changed = _clock(port.last_change_epoch_s)
        age = _cisco_age(view.now_epoch_s - port.last_change_epoch_s)
        mac = _mac_colons(port.mac)
        out += [
            f"Physical interface: {port.name}, Enabled, Physical link is {link}",
            f"  Interface index: {port.if_index + 128}, SNMP ifIndex: {port.if_index}",
        ]
        if port.description:
            out.append(f"  Description: {port.description}")
        out += [
            f"  Link-level type: Ethernet, MTU: {port.mtu_bytes + 14}, LAN-PHY mode, "
            f"Speed: {_junos_speed(port.speed_bps)}, BPDU Error: None, Loop Detect PDU "
            "Error: None, MAC-REWRITE Error: None, Loopback: None, Source filtering: "
            "Disabled, Flow control: Enabled",
            "  Pad to minimum frame size: Disabled",
            f"  Device flags   : {flags}",
            "  Interface flags: SNMP-Traps Internal: 0x4000",
            "  Link flags     : None",
            "  CoS queues     : 8 supported, 8 maximum usable queues",
            "  Schedulers     : 0",
            f"  Current address: {mac}, Hardware address: {mac}",
            f"  Last flapped   : {changed} UTC ({age} ago)",
            f"  Input rate     : {port.in_bps if port.up else 0} bps "
            f"({port.in_pps if port.up else 0} pps)",
            f"  Output rate    : {port.out_bps if port.up else 0} bps "
            f"({port.out_pps if port.up else 0} pps)",
            "  Active alarms  : None" if port.up else "  Active alarms  : LINK",
            "  Active defects : None" if port.up else "  Active defects : LINK",
            "  Interface transmit statistics: Disabled",
            "",
        ]
    return "\n".join(out) + "\n"


# --- Linux ------------------------------------------------------------------------------------


def render_linux_interfaces(view: DeviceView) -> str:
    """`cat /proc/net/dev` (the kernel's own layout, from net/core/net-procfs.c)."""
    out = [
        "Inter-|   Receive                                                |  Transmit",
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets "
        "errs drop fifo colls carrier compressed",
    ]
    for port in view.ports:
        out.append(
            f"{port.name:>6}: {port.in_octets:7d} {port.in_packets:7d} {port.in_errors:4d} "
            f"{port.in_discards:4d} {0:4d} {0:5d} {0:10d} {port.in_mcast:9d} "
            f"{port.out_octets:8d} {port.out_packets:7d} {0:4d} {port.out_discards:4d} "
            f"{0:4d} {0:5d} {0:7d} {0:10d}")
    return "\n".join(out) + "\n"


# --- running configurations --------------------------------------------------------------------


def _hash_text(*parts: str, alphabet: str = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
               "abcdefghijklmnopqrstuvwxyz", length: int = 43) -> str:
    """Deterministic text that looks like a password hash (crypt alphabet)."""
    digest = hashlib.sha512("\x1f".join(parts).encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest)[:length]


def planted_secrets(device_key: str) -> tuple[str, ...]:
    """The secret values planted in a device's generated running configuration (two
    password hashes or ciphers and an SNMP community, none of them a lab credential; no
    configuration on linux): a configuration history must mask each."""
    return (
        _hash_text(device_key, "user"),
        _hash_text(device_key, "enable"),
        _hash_text(device_key, "community", length=16),
    )


def _cisco_ios_config(view: DeviceView) -> list[str]:
    user, enable, community = planted_secrets(view.key)
    lines = [
        "version 17.12",
        "service timestamps debug datetime msec",
        "service timestamps log datetime msec",
        "service password-encryption",
        "!",
        f"hostname {view.key}",
        "!",
        "boot-start-marker",
        "boot-end-marker",
        "!",
        f"enable secret 9 $9${enable[:14]}${enable[14:]}",
        "!",
        "no aaa new-model",
        "!",
        f"username keyline privilege 15 secret 9 $9${user[:14]}${user[14:]}",
        "!",
    ]
    for port in view.ports:
        lines.append(f"interface {port.name}")
        if port.description:
            lines.append(f" description {port.description}")
        lines += [f" mtu {port.mtu_bytes}", " no ip address", "!"]
    lines += [
        f"snmp-server community {community} RO",
        "snmp-server ifindex persist",
        "!",
        "line vty 0 4",
        " login local",
        " transport input ssh",
        "!",
        "end",
    ]
    return lines


def _huawei_vrp_config(view: DeviceView) -> list[str]:
    user, noc, community = planted_secrets(view.key)
    lines = [
        "#",
        f"sysname {view.key}",
        "#",
        "aaa",
        f" local-user keyline password irreversible-cipher $1c${user}$",
        " local-user keyline service-type ssh",
        " local-user keyline level 3",
        f" local-user noc password cipher %^%#{noc}%^%#",
        " local-user noc level 1",
        "#",
    ]
    for port in view.ports:
        lines.append(f"interface {port.name}")
        if port.description:
            lines.append(f" description {port.description}")
        lines += [" undo shutdown", "#"]
    lines += [
        "snmp-agent",
        f"snmp-agent community read cipher %^%#{community}%^%#",
        "#",
        "stelnet server enable",
        "ssh user keyline authentication-type password",
        "#",
        "return",
    ]
    return lines


def _cisco_xr_config(view: DeviceView) -> list[str]:
    user, noc, community = planted_secrets(view.key)
    lines = [
        f"hostname {view.key}",
        "username keyline",
        " group root-lr",
        " group cisco-support",
        f" secret 10 $6${user[:16]}${user[16:]}",
        "!",
        "username noc",
        " group operator",
        f" secret 10 $6${noc[:16]}${noc[16:]}",
        "!",
    ]
    for port in view.ports:
        lines.append(f"interface {port.name}")
        if port.description:
            lines.append(f" description {port.description}")
        lines += [f" mtu {port.mtu_bytes + 14}", "!"]
    lines += [
        f"snmp-server community {community} RO",
        "ssh server v2",
        "ssh server vrf default",
        "end",
    ]
    return lines


def _hp_comware_config(view: DeviceView) -> list[str]:
    user, noc, community = planted_secrets(view.key)
    lines = [
        "#",
        " version 7.1.064, Release 8307P03",
        "#",
        f" sysname {view.key}",
        "#",
    ]
    for port in view.ports:
        lines.append(f"interface {port.name}")
        if port.description:
            lines.append(f" description {port.description}")
        lines += [f" mtu {port.mtu_bytes}", "#"]
    lines += [
        f" snmp-agent community read cipher $c$3${community}",
        " ssh server enable",
        "#",
        f" super password role network-admin hash $h$6${noc[:16]}${noc[16:]}",
        "#",
        "local-user keyline class manage",
        f" password hash $h$6${user[:16]}${user[16:]}",
        " service-type ssh",
        " authorization-attribute user-role network-admin",
        "#",
        "return",
    ]
    return lines


def _juniper_junos_config(view: DeviceView) -> list[str]:
    user, enable, community = planted_secrets(view.key)
    lines = [
        "version 22.4R3-S2.11;",
        "system {",
        f"    host-name {view.key};",
        "    root-authentication {",
        f'        encrypted-password "$6${enable[:16]}${enable[16:]}"; ## SECRET-DATA',
        "    }",
        "    login {",
        "        user keyline {",
        "            uid 2001;",
        "            class super-user;",
        "            authentication {",
        f'                encrypted-password "$6${user[:16]}${user[16:]}"; ## SECRET-DATA',
        "            }",
        "        }",
        "    }",
        "    services {",
        "        ssh;",
        "    }",
        "}",
        "interfaces {",
    ]
    for port in view.ports:
        lines.append(f"    {port.name} {{")
        if port.description:
            lines.append(f'        description "{port.description}";')
        lines += [f"        mtu {port.mtu_bytes + 14};", "    }"]
    lines += [
        "}",
        "snmp {",
        f"    community {community} {{",
        "        authorization read-only;",
        "    }",
        "}",
    ]
    return lines


ConfigBuilder = Callable[[DeviceView], list[str]]


def initial_config(view: DeviceView) -> list[str]:
    """The running configuration a device boots with, as lines (no header)."""
    builder = CONFIG_BUILDERS.get(view.platform)
    return builder(view) if builder else []


def render_config(platform: str, lines: list[str], changed_epoch_s: float) -> str:
    """The configuration command's output: the platform's header, then the lines."""
    body = "\n".join(lines) + "\n"
    if platform == "cisco_ios":
        when = _clock(changed_epoch_s, "%H:%M:%S UTC %a %b %d %Y")
        return ("Building configuration...\n\n"
                f"Current configuration : {len(body)} bytes\n!\n"
                f"! Last configuration change at {when} by keyline\n!\n" + body)
    if platform == "huawei_vrp":
        when = _clock(changed_epoch_s)
        return ("!Software Version V800R013C00SPC100\n"
                f"!Last configuration was updated at {when}+00:00 by keyline\n" + body)
    if platform == "cisco_xr":
        when = _clock(changed_epoch_s, "%a %b %d %H:%M:%S %Y")
        return (f"{_xr_timestamp(time.time())}\nBuilding configuration...\n"
                f"!! IOS XR Configuration 7.9.2\n!! Last configuration change at {when} by "
                "keyline\n!\n" + body)
    if platform == "juniper_junos":
        return f"## Last commit: {_clock(changed_epoch_s)} UTC by keyline\n" + body
    return body


CONFIG_BUILDERS: dict[str, ConfigBuilder] = {
    "cisco_ios": _cisco_ios_config,
    "cisco_xr": _cisco_xr_config,
    "huawei_vrp": _huawei_vrp_config,
    "hp_comware": _hp_comware_config,
    "juniper_junos": _juniper_junos_config,
}


# --- platforms --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CliPlatform:
    """How one platform's CLI behaves, for the simulated shell.

    `prompt` (and `low_prompt`, the unprivileged one) take {host} and {user}. `session`
    maps the commands netmiko's driver sends while preparing the session to the device's
    answer. `unknown` (a command the device does not know) and `denied` (one the user may
    not run) are the error texts: {caret} becomes the line holding `^` under the word the
    device stumbled on (its column counts the prompt), {word} the command's first word.
    """

    name: str
    prompt: str
    interfaces_command: str
    config_command: str | None
    unknown: str
    denied: str
    low_prompt: str | None = None
    session: dict[str, str] = field(default_factory=dict)
    render_interfaces: Callable[[DeviceView], str] | None = None


PLATFORMS: dict[str, CliPlatform] = {
    "cisco_ios": CliPlatform(
        name="cisco_ios",
        prompt="{host}#",
        low_prompt="{host}>",
        interfaces_command="show interfaces",
        config_command="show running-config",
        unknown="{caret}\n% Invalid input detected at '^' marker.\n",
        denied="{caret}\n% Invalid input detected at '^' marker.\n",
        session={"terminal length 0": "", "terminal width 511": ""},
        render_interfaces=render_cisco_ios_interfaces,
    ),
    "huawei_vrp": CliPlatform(
        name="huawei_vrp",
        prompt="<{host}>",
        interfaces_command="display interface",
        config_command="display current-configuration",
        unknown="{caret}\nError: Unrecognized command found at '^' position.\n",
        denied="Error: You do not have permission to run the command or the command is "
               "incomplete.\n",
        session={"screen-length 0 temporary":
                 "Info: The configuration takes effect on the current user terminal "
                 "interface only.\n"},
        render_interfaces=render_huawei_vrp_interfaces,
    ),
    "cisco_xr": CliPlatform(
        name="cisco_xr",
        prompt="RP/0/RSP0/CPU0:{host}#",
        interfaces_command="show interfaces",
        config_command="show running-config",
        unknown="{caret}\n% Invalid input detected at '^' marker.\n",
        # a command outside the user's task groups is not there at all
        denied="{caret}\n% Invalid input detected at '^' marker.\n",
        session={"terminal length 0": "", "terminal width 511": ""},
        render_interfaces=render_cisco_xr_interfaces,
    ),
    "hp_comware": CliPlatform(
        name="hp_comware",
        prompt="<{host}>",
        interfaces_command="display interface",
        config_command="display current-configuration",
        unknown="{caret}\n % Unrecognized command found at '^' position.\n",
        denied=" % Permission denied.\n",
        session={"screen-length disable": ""},
        render_interfaces=render_hp_comware_interfaces,
    ),
    "juniper_junos": CliPlatform(
        name="juniper_junos",
        prompt="{user}@{host}> ",
        interfaces_command="show interfaces",
        config_command="show configuration",
        unknown="{caret}\nunknown command.\n",
        denied="error: permission denied\n",
        session={"set cli screen-width 511": "Screen width set to 511\n",
                 "set cli complete-on-space off": "Disabling complete-on-space\n",
                 "set cli screen-length 0": "Screen length set to 0\n"},
        render_interfaces=render_juniper_junos_interfaces,
    ),
    "linux": CliPlatform(
        name="linux",
        prompt="{user}@{host}:~$ ",
        interfaces_command="cat /proc/net/dev",
        config_command=None,
        unknown="-bash: {word}: command not found\n",
        denied="-bash: {word}: Permission denied\n",
        render_interfaces=render_linux_interfaces,
    ),
}


def garbage(device_key: str, command: str, count: int) -> str:
    """Text no parser makes sense of, the same for the same device, command and count: what a
    device with a broken line card driver or a wrong terminal type may print."""
    alphabet = "qwxzjkv0123456789 ~*+=.,:;-_"
    lines = []
    for number in range(12):
        seed = unit(device_key, command, str(count), str(number))
        digest = hashlib.sha256(f"{seed}".encode()).digest()
        lines.append("".join(alphabet[b % len(alphabet)] for b in digest))
    return "\n".join(lines) + "\n"
