"""The SNMP data of one simulated device: system group, IF-MIB and LLDP-MIB, as records.

What a poller and a topology discovery read, and how this simulator fills it:

- SNMPv2-MIB system group (1.3.6.1.2.1.1): sysDescr and sysObjectID of the platform,
  sysUpTime counting from the planned boot, sysName = the inventory's device key.
- IF-MIB ifTable (1.3.6.1.2.1.2.2) and ifXTable (1.3.6.1.2.1.31.1.1): one row per inventory
  port, ifIndex as declared, ifName = ifDescr = the inventory port name, ifType 6
  (ethernetCsmacd), ifSpeed in bit/s (capped at 4294967295 as the MIB says; ifHighSpeed
  carries the real figure in Mbit/s), ifAdminStatus up, ifOperStatus up(1) or down(2),
  ifLastChange, the 32-bit counters of ifTable and the 64-bit ifHC* counters of ifXTable
  growing with the planned traffic (see traffic.py), ifCounterDiscontinuityTime 0 (no
  counter reset since boot).
- LLDP-MIB (1.0.8802.1.1.2, IEEE 802.1AB-2005):
  - lldpLocalSystemData: chassis ID subtype macAddress(4) and the chassis MAC; system name
    and description; capabilities; lldpLocPortTable with lldpLocPortNum = ifIndex and port
    ID subtype interfaceName(5), port ID = ifName; lldpLocManAddrTable with the management
    address.
  - lldpRemTable (1.0.8802.1.1.2.1.4.1.1), indexed by lldpRemTimeMark, lldpRemLocalPortNum
    (= the local ifIndex) and lldpRemIndex: for each port whose link is up, the neighbour's
    chassis ID (macAddress(4)), port ID (interfaceName(5): the neighbour's ifName, which is
    the inventory's port name, so discovery maps it to an inventory port with no lookup),
    port description, system name (the neighbour's device key), description and
    capabilities.
  - lldpRemManAddrTable (1.0.8802.1.1.2.1.4.2.1): the neighbour's management address. As in
    the MIB, the address itself is only in the row index (subtype 1 = IPv4, then the
    length-prefixed address: ...1.4.127.0.1.2); the readable columns are the interface
    subtype unknown(1), interface id 0 and OID 0.0.
  - lldpStatistics: when the remote table last changed, rows inserted and deleted, so a
    poller can skip re-walking an unchanged table.

Why interfaceName(5) for port IDs: it is what Cisco IOS/IOS XR, Huawei VRP and lldpd send by
default, and the inventory names ports by ifName. (Junos sends local(7) with the ifIndex as
text; a discovery meant for real networks should accept both.)
"""

from __future__ import annotations

from ipaddress import IPv4Address

from lab.sim import snmprec as rec
from lab.sim.plan import DevicePlan, Flow, NetworkPlan, PortPlan
from lab.sim.snmprec import Record
from lab.sim.state import NetworkState
from lab.sim.traffic import CounterSpec

COUNTER_MODULE = "keyline_counter"  # lab/sim/variation/keyline_counter.py

SYSTEM = "1.3.6.1.2.1.1"
IF_NUMBER = "1.3.6.1.2.1.2.1.0"
IF_ENTRY = "1.3.6.1.2.1.2.2.1"
IFX_ENTRY = "1.3.6.1.2.1.31.1.1.1"
LLDP_CONFIG = "1.0.8802.1.1.2.1.1"
LLDP_STATS = "1.0.8802.1.1.2.1.2"
LLDP_LOCAL = "1.0.8802.1.1.2.1.3"
LLDP_REM_ENTRY = "1.0.8802.1.1.2.1.4.1.1"
LLDP_REM_MAN_ADDR_ENTRY = "1.0.8802.1.1.2.1.4.2.1"

IF_TYPE_ETHERNET_CSMACD = 6
STATUS_UP, STATUS_DOWN = 1, 2
CHASSIS_ID_MAC_ADDRESS = 4
PORT_ID_INTERFACE_NAME = 5
ADDRESS_FAMILY_IPV4 = 1  # IANA address family numbers
MAN_ADDR_IF_UNKNOWN = 1
LLDP_TX_AND_RX = 3
TRUTH_TRUE, TRUTH_FALSE = 1, 2


# (what, table entry, column, bits): each pair of a 32-bit ifTable/ifXTable counter and its
# 64-bit ifHC* twin counts the same traffic.
INBOUND_COUNTERS = (
    ("octets", IF_ENTRY, 10, 32), ("octets", IFX_ENTRY, 6, 64),  # ifInOctets, ifHCInOctets
    ("ucast", IF_ENTRY, 11, 32), ("ucast", IFX_ENTRY, 7, 64),  # ifIn/ifHCInUcastPkts
    ("mcast", IFX_ENTRY, 2, 32), ("mcast", IFX_ENTRY, 8, 64),  # ifIn/ifHCInMulticastPkts
    ("bcast", IFX_ENTRY, 3, 32), ("bcast", IFX_ENTRY, 9, 64),  # ifIn/ifHCInBroadcastPkts
    ("discards", IF_ENTRY, 13, 32), ("errors", IF_ENTRY, 14, 32),  # ifInDiscards, ifInErrors
)
OUTBOUND_COUNTERS = (
    ("octets", IF_ENTRY, 16, 32), ("octets", IFX_ENTRY, 10, 64),  # ifOutOctets, ifHCOut...
    ("ucast", IF_ENTRY, 17, 32), ("ucast", IFX_ENTRY, 11, 64),  # ifOut/ifHCOutUcastPkts
    ("mcast", IFX_ENTRY, 4, 32), ("mcast", IFX_ENTRY, 12, 64),  # ifOut/ifHCOutMulticastPkts
    ("bcast", IFX_ENTRY, 5, 32), ("bcast", IFX_ENTRY, 13, 64),  # ifOut/ifHCOutBroadcastPkts
    ("discards", IF_ENTRY, 19, 32),  # ifOutDiscards
)


def ticks_since(boot_epoch_s: float, epoch_s: float) -> int:
    """TimeTicks (hundredths of a second) from boot to `epoch_s`; 0 if before boot."""
    return max(int((epoch_s - boot_epoch_s) * 100), 0)


def man_addr_index(address: IPv4Address) -> tuple[int, ...]:
    """lldpManAddrSubtype and the length-prefixed lldpManAddr, as a table index."""
    return (ADDRESS_FAMILY_IPV4, *rec.octets_index(address.packed))


def system_records(device: DevicePlan) -> list[Record]:
    uptime = CounterSpec(rate_per_s=100.0, boot_epoch_s=device.boot_epoch_s, bits=32)
    return [
        rec.octet_string(rec.oid(SYSTEM, 1, 0), device.sys_descr),
        rec.object_identifier(rec.oid(SYSTEM, 2, 0), device.sys_object_id),
        rec.varied(rec.oid(SYSTEM, 3, 0), rec.TIMETICKS, COUNTER_MODULE, uptime.encode()),
        rec.octet_string(rec.oid(SYSTEM, 4, 0), "Keyline lab NOC <noc@lab.invalid>"),
        rec.octet_string(rec.oid(SYSTEM, 5, 0), device.key),
        rec.octet_string(rec.oid(SYSTEM, 6, 0), device.sys_location),
        rec.integer(rec.oid(SYSTEM, 7, 0), device.role_facts.sys_services),
    ]


def counter_spec(bits: int, rate_per_s: float, flow: Flow, device: DevicePlan,
                 state: NetworkState, port: PortPlan) -> CounterSpec:
    """The counter of `port` growing at `rate_per_s` with `flow`'s wobble, paused with its
    segment: what the SNMP agent serves, and what the simulated CLI prints (lab.sim.ssh)."""
    segment = state.segment(port.key)
    return CounterSpec(
        rate_per_s=rate_per_s,
        boot_epoch_s=device.boot_epoch_s,
        bits=bits,
        jitter_ratio=flow.jitter_ratio,
        period_s=flow.period_s,
        phase_rad=flow.phase_rad,
        paused_s=segment.paused_s,
        paused_since_epoch_s=segment.down_since_epoch_s,
    )


def _counter(oid_: tuple[int, ...], bits: int, rate_per_s: float, flow: Flow,
             device: DevicePlan, state: NetworkState, port: PortPlan) -> Record:
    """A counter record (see counter_spec); a counter that never grows is a plain 0."""
    tag = rec.COUNTER32 if bits == 32 else rec.COUNTER64
    if rate_per_s <= 0:
        return Record(oid_, tag, "0")
    spec = counter_spec(bits, rate_per_s, flow, device, state, port)
    return rec.varied(oid_, tag, COUNTER_MODULE, spec.encode())


def port_records(device: DevicePlan, port: PortPlan, state: NetworkState) -> list[Record]:
    """The ifTable and ifXTable columns of one port."""
    i = port.if_index
    up = state.oper_up[port.key]
    last_change = ticks_since(device.boot_epoch_s, state.last_change_epoch_s[port.key])
    records = [
        rec.integer(rec.oid(IF_ENTRY, 1, i), i),
        rec.octet_string(rec.oid(IF_ENTRY, 2, i), port.name),
        rec.integer(rec.oid(IF_ENTRY, 3, i), IF_TYPE_ETHERNET_CSMACD),
        rec.integer(rec.oid(IF_ENTRY, 4, i), device.role_facts.mtu_bytes),
        rec.gauge32(rec.oid(IF_ENTRY, 5, i), port.speed_bps),
        rec.octet_string(rec.oid(IF_ENTRY, 6, i), port.mac),
        rec.integer(rec.oid(IF_ENTRY, 7, i), STATUS_UP),
        rec.integer(rec.oid(IF_ENTRY, 8, i), STATUS_UP if up else STATUS_DOWN),
        rec.timeticks(rec.oid(IF_ENTRY, 9, i), last_change),
        rec.counter32(rec.oid(IF_ENTRY, 15, i), 0),  # ifInUnknownProtos
        rec.counter32(rec.oid(IF_ENTRY, 20, i), 0),  # ifOutErrors
        rec.octet_string(rec.oid(IFX_ENTRY, 1, i), port.name),
        rec.integer(rec.oid(IFX_ENTRY, 14, i), 1),  # ifLinkUpDownTrapEnable: enabled
        rec.gauge32(rec.oid(IFX_ENTRY, 15, i), port.speed_bps // 1_000_000),
        rec.integer(rec.oid(IFX_ENTRY, 16, i), TRUTH_FALSE),  # ifPromiscuousMode
        rec.integer(rec.oid(IFX_ENTRY, 17, i), TRUTH_TRUE),  # ifConnectorPresent
        rec.octet_string(rec.oid(IFX_ENTRY, 18, i), port.description),  # ifAlias
        rec.timeticks(rec.oid(IFX_ENTRY, 19, i), 0),  # ifCounterDiscontinuityTime
    ]

    for flow, columns in ((port.inbound, INBOUND_COUNTERS), (port.outbound, OUTBOUND_COUNTERS)):
        rates = rates_per_s(flow)
        for what, entry, column, bits in columns:
            records.append(_counter(rec.oid(entry, column, i), bits, rates[what], flow,
                                    device, state, port))
    return records


def rates_per_s(flow: Flow) -> dict[str, float]:
    """Mean growth per second of each kind of counter for one direction of traffic."""
    packets = flow.rate_bytes_per_s / flow.packet_size_bytes
    return {
        "octets": flow.rate_bytes_per_s,
        "ucast": packets * (1 - flow.multicast_ratio - flow.broadcast_ratio),
        "mcast": packets * flow.multicast_ratio,
        "bcast": packets * flow.broadcast_ratio,
        "errors": packets * flow.error_ratio,
        "discards": packets * flow.discard_ratio,
    }


def lldp_local_records(device: DevicePlan) -> list[Record]:
    facts = device.role_facts
    records = [
        rec.integer(rec.oid(LLDP_CONFIG, 1, 0), 30),  # lldpMessageTxInterval (s)
        rec.integer(rec.oid(LLDP_CONFIG, 2, 0), 4),  # lldpMessageTxHoldMultiplier
        rec.integer(rec.oid(LLDP_LOCAL, 1, 0), CHASSIS_ID_MAC_ADDRESS),
        rec.octet_string(rec.oid(LLDP_LOCAL, 2, 0), device.chassis_mac),
        rec.octet_string(rec.oid(LLDP_LOCAL, 3, 0), device.key),
        rec.octet_string(rec.oid(LLDP_LOCAL, 4, 0), device.sys_descr),
        rec.octet_string(rec.oid(LLDP_LOCAL, 5, 0), bytes((facts.caps_supported, 0))),
        rec.octet_string(rec.oid(LLDP_LOCAL, 6, 0), bytes((facts.caps_enabled, 0))),
    ]
    for port in device.ports:
        n = port.if_index  # lldpLocPortNum
        records += [
            rec.integer(rec.oid(LLDP_CONFIG, 6, 1, 2, n), LLDP_TX_AND_RX),
            rec.integer(rec.oid(LLDP_LOCAL, 7, 1, 2, n), PORT_ID_INTERFACE_NAME),
            rec.octet_string(rec.oid(LLDP_LOCAL, 7, 1, 3, n), port.name),
            rec.octet_string(rec.oid(LLDP_LOCAL, 7, 1, 4, n), port.description or port.name),
        ]
    man = man_addr_index(device.address)
    records += [
        rec.integer(rec.oid(LLDP_LOCAL, 8, 1, 3, *man), 1 + len(device.address.packed)),
        rec.integer(rec.oid(LLDP_LOCAL, 8, 1, 4, *man), MAN_ADDR_IF_UNKNOWN),
        rec.integer(rec.oid(LLDP_LOCAL, 8, 1, 5, *man), 0),
        rec.object_identifier(rec.oid(LLDP_LOCAL, 8, 1, 6, *man), "0.0"),
    ]
    return records


def lldp_remote_records(plan: NetworkPlan, state: NetworkState,
                        device: DevicePlan) -> list[Record]:
    stats = state.lldp_stats[device.key]
    records = [
        rec.timeticks(rec.oid(LLDP_STATS, 1, 0),
                      ticks_since(device.boot_epoch_s, stats.last_change_epoch_s)),
        rec.gauge32(rec.oid(LLDP_STATS, 2, 0), stats.inserts),
        rec.gauge32(rec.oid(LLDP_STATS, 3, 0), stats.deletes),
        rec.gauge32(rec.oid(LLDP_STATS, 4, 0), 0),  # drops
        rec.gauge32(rec.oid(LLDP_STATS, 5, 0), 0),  # ageouts
    ]
    for port in device.ports:
        row = state.neighbours.get(port.key)
        if row is None:
            continue
        peer_port = plan.port(plan.peer_of[port.key])
        peer = plan.device_of(peer_port.key)
        index = (ticks_since(device.boot_epoch_s, row.learned_epoch_s), port.if_index,
                 row.rem_index)
        facts = peer.role_facts
        records += [
            rec.integer(rec.oid(LLDP_REM_ENTRY, 4, *index), CHASSIS_ID_MAC_ADDRESS),
            rec.octet_string(rec.oid(LLDP_REM_ENTRY, 5, *index), peer.chassis_mac),
            rec.integer(rec.oid(LLDP_REM_ENTRY, 6, *index), PORT_ID_INTERFACE_NAME),
            rec.octet_string(rec.oid(LLDP_REM_ENTRY, 7, *index), peer_port.name),
            rec.octet_string(rec.oid(LLDP_REM_ENTRY, 8, *index),
                             peer_port.description or peer_port.name),
            rec.octet_string(rec.oid(LLDP_REM_ENTRY, 9, *index), peer.key),
            rec.octet_string(rec.oid(LLDP_REM_ENTRY, 10, *index), peer.sys_descr),
            rec.octet_string(rec.oid(LLDP_REM_ENTRY, 11, *index),
                             bytes((facts.caps_supported, 0))),
            rec.octet_string(rec.oid(LLDP_REM_ENTRY, 12, *index),
                             bytes((facts.caps_enabled, 0))),
        ]
        man = (*index, *man_addr_index(peer.address))
        records += [
            rec.integer(rec.oid(LLDP_REM_MAN_ADDR_ENTRY, 3, *man), MAN_ADDR_IF_UNKNOWN),
            rec.integer(rec.oid(LLDP_REM_MAN_ADDR_ENTRY, 4, *man), 0),
            rec.object_identifier(rec.oid(LLDP_REM_MAN_ADDR_ENTRY, 5, *man), "0.0"),
        ]
    return records


def device_records(plan: NetworkPlan, state: NetworkState, device_key: str) -> list[Record]:
    """Every record of one device's data file, in any order (snmprec.render sorts)."""
    device = plan.devices[device_key]
    records = system_records(device)
    records.append(rec.integer(rec.oid(IF_NUMBER), len(device.ports)))
    for port in device.ports:
        records += port_records(device, port, state)
    records += lldp_local_records(device)
    records += lldp_remote_records(plan, state, device)
    return records
