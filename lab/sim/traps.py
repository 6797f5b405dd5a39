"""linkDown / linkUp notifications, as a simulated device sends them when a port changes.

An SNMPv2c trap is one UDP datagram to the manager's trap port (162; the lab uses 1162 so
it needs no privilege), carrying a community and a list of variable bindings that RFC 3416
fixes in its first two places and IF-MIB (RFC 2863) in the rest:

    sysUpTime.0     when it happened, in the agent's uptime (TimeTicks)
    snmpTrapOID.0   1.3.6.1.6.3.1.1.5.3 linkDown or 1.3.6.1.6.3.1.1.5.4 linkUp
    ifIndex.N       the port, ifAdminStatus.N and ifOperStatus.N its new state

A trap carries no sender name: a receiver knows the device by the datagram's source
address. The simulator therefore sends each device's traps from that device's management
address (the socket is bound to 127.0.1.N before sending), exactly as a receiver would see a
real device's trap arrive. The message is built with pysnmp's protocol API and sent from a
plain socket: no SNMP engine or event loop is needed to send one datagram.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from ipaddress import ip_address

from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import rfc1902
from pysnmp.proto.api import v2c

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
LINK_UP = "1.3.6.1.6.3.1.1.5.4"
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"
IF_ADMIN_STATUS = "1.3.6.1.2.1.2.2.1.7"
IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.8"
DEFAULT_TRAP_RECEIVER = ("127.0.0.1", 1162)


@dataclass(frozen=True)
class ReceivedTrap:
    """A decoded SNMPv2c trap: what a receiver needs to raise or clear a link alarm."""

    community: str = field(repr=False)
    uptime_ticks: int
    trap_oid: str
    varbinds: dict[str, object]  # dotted OID -> int or str, in the order received

    def value(self, column: str, if_index: int) -> object:
        """A varbind by column OID and ifIndex, e.g. value(IF_OPER_STATUS, 3)."""
        return self.varbinds[f"{column}.{if_index}"]


def encode_link_trap(*, community: str, up: bool, uptime_ticks: int, if_index: int,
                     admin_status: int = 1, request_id: int = 0) -> bytes:
    """The datagram of a linkUp (`up`) or linkDown trap for port `if_index`."""
    pdu = v2c.SNMPv2TrapPDU()
    v2c.apiTrapPDU.set_defaults(pdu)
    v2c.apiTrapPDU.set_request_id(pdu, request_id)
    v2c.apiTrapPDU.set_varbinds(pdu, [
        (v2c.ObjectIdentifier(SYS_UPTIME), v2c.TimeTicks(uptime_ticks % 2**32)),
        (v2c.ObjectIdentifier(SNMP_TRAP_OID), v2c.ObjectIdentifier(LINK_UP if up else LINK_DOWN)),
        (v2c.ObjectIdentifier(f"{IF_INDEX}.{if_index}"), v2c.Integer(if_index)),
        (v2c.ObjectIdentifier(f"{IF_ADMIN_STATUS}.{if_index}"), v2c.Integer(admin_status)),
        (v2c.ObjectIdentifier(f"{IF_OPER_STATUS}.{if_index}"), v2c.Integer(1 if up else 2)),
    ])
    message = v2c.Message()
    v2c.apiMessage.set_defaults(message)
    v2c.apiMessage.set_community(message, community)
    v2c.apiMessage.set_pdu(message, pdu)
    return encoder.encode(message)


def check_loopback(address: tuple[str, int], what: str) -> None:
    """The lab sends to and from loopback addresses only."""
    if not ip_address(address[0]).is_loopback:
        raise ValueError(f"{what} {address[0]} is not a loopback address")


def send_datagram(payload: bytes, *, source_host: str,
                  receiver: tuple[str, int] = DEFAULT_TRAP_RECEIVER) -> None:
    """Send `payload` to `receiver` from `source_host` (any free source port)."""
    check_loopback(receiver, "trap receiver")
    check_loopback((source_host, 0), "trap source")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source_host, 0))
        sock.sendto(payload, receiver)


def _plain(value: object) -> object:
    if isinstance(value, rfc1902.ObjectIdentifier):
        return str(value)
    if isinstance(value, rfc1902.OctetString):
        return value.asOctets().decode("utf-8", "replace")
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return str(value)


def decode_trap(datagram: bytes) -> ReceivedTrap:
    """Decode an SNMPv2c trap datagram; ValueError if it is not one."""
    try:
        message, _ = decoder.decode(datagram, asn1Spec=v2c.Message())
    except Exception as error:  # pyasn1 raises several kinds
        raise ValueError(f"not an SNMPv2c message: {error}") from None
    pdu = v2c.apiMessage.get_pdu(message)
    if not pdu.isSameTypeWith(v2c.SNMPv2TrapPDU()):
        raise ValueError(f"not an SNMPv2c trap but a {pdu.__class__.__name__}")
    varbinds = {str(name): _plain(value)
                for name, value in v2c.apiTrapPDU.get_varbinds(pdu)}
    return ReceivedTrap(
        community=str(v2c.apiMessage.get_community(message)),
        uptime_ticks=int(varbinds.get(SYS_UPTIME, 0)),  # type: ignore[call-overload]
        trap_oid=str(varbinds.get(SNMP_TRAP_OID, "")),
        varbinds=varbinds,
    )
