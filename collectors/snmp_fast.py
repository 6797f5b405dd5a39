"""A lean SNMPv2c / SNMPv1 codec and UDP exchange for the poller's hot path: GET, GETNEXT and
GETBULK only; SNMPv3 the same way, with collectors.usm's security around the same PDUs.

Why this exists. Polling is almost entirely *decoding*: one GETBULK answer carries a few
hundred variable bindings (varbinds), and a 60 s cycle over 2,000 devices is hundreds of
thousands of them. pysnmp decodes each through pyasn1, a general ASN.1 library that builds
and validates an object per tag, and spends about 0.2 CPU s per 1,000 varbinds doing it
(LAB-NOTES; three quarters of pysnmp's poll cost). An SNMPv2c (or v1) Response-PDU needs none of
that generality: it is a handful of nested BER type-length-value (TLV) triples whose types are
fixed by RFC 3416. Reading them straight from the bytes costs a few microseconds a varbind.

The wire format, as far as it is needed here (BER, X.690; SNMP message, RFC 3416)::

    SEQUENCE {                               30 len
      version      INTEGER (1 = v2c, 0 = v1) 02 01 01
      community    OCTET STRING              04 len ...
      pdu          [CONTEXT n] {             a0 get, a1 getnext, a5 getbulk, a2 response
        request-id      INTEGER
        error-status    INTEGER              (non-repeaters in a GETBULK)
        error-index     INTEGER              (max-repetitions in a GETBULK)
        varbinds        SEQUENCE OF SEQUENCE { name OID, value ANY } } }

A length is one byte below 0x80, else 0x81-0x84 followed by that many length bytes (the
indefinite form 0x80 is not allowed in SNMP). Values: INTEGER (02), OCTET STRING (04), NULL
(05), OBJECT IDENTIFIER (06), IpAddress (40), Counter32 (41), Gauge32 (42), TimeTicks (43),
Opaque (44), Counter64 (46), and the three exceptions a v2c agent puts in place of a value:
noSuchObject (80), noSuchInstance (81), endOfMibView (82).

SNMPv1 (RFC 1157) is the same message with version 0, no GETBULK (a walk goes by GETNEXT, one
row per request), no Counter64 and no exception values: a name the agent does not have, or the
end of its MIB in a GETNEXT, is error-status noSuchName (2) with error-index at that varbind, and
the varbinds echo the request (RFC 2576 section 4.1.2.2, what the poller relies on to drop an
ended column). The decoder is told which version to expect (None: either), and a session takes
only answers in the version it asked in.

Decoded values are plain Python: int for the integer types, bytes for strings, IpAddress and
Opaque, a tuple of ints for an OID, None for NULL, and the sentinels `NO_SUCH_OBJECT`,
`NO_SUCH_INSTANCE`, `END_OF_MIB_VIEW` for the exceptions. `collectors.snmp` turns pysnmp's
answers into the same values, so both engines feed one walker. A value's wire type is not kept
(the hot path has no use for it); `value_type_name` reads it back from the datagram for the rare
message that must name it (a cell of the wrong type).

Hostile input. Every length is checked against the TLV that encloses it, so a malformed or
truncated datagram raises `BerError` naming what was wrong and where: never IndexError,
never a loop (every step advances). The tests fuzz this with thousands of mutated and
truncated real answers.

The exchange (`V2cSession`, either version) is one connected UDP socket per device poll: the
kernel drops datagrams from any other source, so a reply can only be this device's; request-ids
match a reply to its request, and a retry reuses the request-id, so a late answer to the first
try is still taken. Being connected, the socket also hears the ICMP errors of its requests: a
"port unreachable" means no agent listens on that port, so the request fails at once with
`Refused` instead of waiting out every retry; other ICMP errors (host unreachable...) may be
transient and are only noted in `icmp_error`. The socket's receive buffer is raised
(SO_RCVBUF) so that a burst of large GETBULK answers is not dropped. Retries, backoff and
in-flight limits belong to the poller.

SNMPv3 (`V3Session`) exchanges the same PDUs (`encode_pdu`, `decode_pdu`) inside the USM
envelope of collectors.usm: signed, encrypted, matched by msgID instead of request-id, after an
engine discovery. Per message that adds one HMAC and one AES pass, both in C, so a v3 poll
costs about what a v2c poll does (bench/poll.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "END_OF_MIB_VIEW",
    "NO_SUCH_INSTANCE",
    "NO_SUCH_OBJECT",
    "BerError",
    "NoAnswer",
    "Refused",
    "Response",
    "SnmpException",
    "V2cSession",
    "V3Session",
    "decode_message",
    "decode_pdu",
    "decode_response",
    "encode_oid",
    "encode_pdu",
    "encode_request",
    "value_type_name",
]

# BER tags
SEQUENCE = 0x30
INTEGER = 0x02
OCTET_STRING = 0x04
NULL = 0x05
OBJECT_IDENTIFIER = 0x06
IP_ADDRESS = 0x40
COUNTER32 = 0x41
GAUGE32 = 0x42
TIMETICKS = 0x43
OPAQUE = 0x44
COUNTER64 = 0x46
PDU_GET = 0xA0
PDU_GETNEXT = 0xA1
PDU_RESPONSE = 0xA2
PDU_GETBULK = 0xA5
SNMP_V1 = 0
SNMP_V2C = 1
_VERSION_NAMES = {SNMP_V1: "SNMPv1", SNMP_V2C: "SNMPv2c"}

_UNSIGNED_MAX = {COUNTER32: 2**32 - 1, GAUGE32: 2**32 - 1, TIMETICKS: 2**32 - 1,
                 COUNTER64: 2**64 - 1}
_STRING_TAGS = frozenset({OCTET_STRING, IP_ADDRESS, OPAQUE})
TAG_NAMES = {INTEGER: "INTEGER", OCTET_STRING: "OCTET STRING", NULL: "NULL",
              OBJECT_IDENTIFIER: "OBJECT IDENTIFIER", IP_ADDRESS: "IpAddress",
              COUNTER32: "Counter32", GAUGE32: "Gauge32", TIMETICKS: "TimeTicks",
              OPAQUE: "Opaque", COUNTER64: "Counter64", SEQUENCE: "SEQUENCE",
              PDU_RESPONSE: "Response-PDU", 0x80: "noSuchObject", 0x81: "noSuchInstance",
              0x82: "endOfMibView"}
RCVBUF_BYTES = 4 * 1024 * 1024
"""Receive buffer asked for each socket (the kernel caps it at net.core.rmem_max)."""
MAX_DATAGRAM_BYTES = 65_536
"""Read size: the largest UDP datagram (IPv4 payload at most 65,507 bytes) fits whole."""


class SnmpException:
    """A v2c exception value (RFC 3416): the agent has no value for this name."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NO_SUCH_OBJECT = SnmpException("noSuchObject")
NO_SUCH_INSTANCE = SnmpException("noSuchInstance")
END_OF_MIB_VIEW = SnmpException("endOfMibView")
_EXCEPTIONS = {0x80: NO_SUCH_OBJECT, 0x81: NO_SUCH_INSTANCE, 0x82: END_OF_MIB_VIEW}


class BerError(ValueError):
    """The datagram is not a well-formed SNMP Response: the message says what and where."""


class NoAnswer(Exception):
    """No reply within the timeout of every try."""


class Refused(NoAnswer):
    """The host answered the request with ICMP port unreachable: no agent listens there."""


@dataclass(frozen=True, slots=True)
class Response:
    request_id: int
    error_status: int
    error_index: int
    varbinds: list[tuple[tuple[int, ...], Any]]
    datagram: bytes = b""
    """The message as received, for `value_type_name` (no copy: the bytes the socket gave;
    for SNMPv3 the decrypted scoped PDU)."""
    pdu_offset: int = -1
    """Where the PDU starts in `datagram` (-1: not known)."""


# --- encoding ------------------------------------------------------------------------------


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + _length(len(content)) + content


def _integer(value: int) -> bytes:
    return _tlv(INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def encode_oid(oid: Sequence[int]) -> bytes:
    """The BER encoding (tag, length, content) of a numeric OID."""
    if len(oid) < 2 or not 0 <= oid[0] <= 2 or (oid[0] < 2 and not 0 <= oid[1] < 40):
        raise ValueError(f"not a valid OID: {oid}")
    first = oid[0] * 40 + oid[1]
    rest = oid[2:]
    if first < 0x80 and (not rest or (max(rest) < 0x80 and min(rest) >= 0)):
        content = bytes((first, *rest))  # every sub-identifier in one byte: the common case
        if len(content) < 0x80:
            return bytes((OBJECT_IDENTIFIER, len(content))) + content
        return _tlv(OBJECT_IDENTIFIER, content)
    out = bytearray()
    for subid in (first, *rest):
        if subid < 0:
            raise ValueError(f"negative sub-identifier in {oid}")
        chunk = [subid & 0x7F]
        subid >>= 7
        while subid:
            chunk.append(0x80 | (subid & 0x7F))
            subid >>= 7
        out += bytes(reversed(chunk))
    return _tlv(OBJECT_IDENTIFIER, bytes(out))


_VARBIND_CACHE: dict[tuple[int, ...], bytes] = {}
_VARBIND_CACHE_SIZE = 200_000
"""Encoded request varbinds by OID: a poll cycle asks for the same OIDs as the last one."""


def encode_request(community: bytes, request_id: int, oids: Sequence[Sequence[int]], *,
                   max_repetitions: int | None = None, get_next: bool = False,
                   version: int = SNMP_V2C, non_repeaters: int = 0) -> bytes:
    """A GET (max_repetitions None), GETNEXT (`get_next`) or GETBULK (max_repetitions given;
    its first `non_repeaters` OIDs asked once, as by GETNEXT) request datagram of `version`
    (SNMP_V2C, or SNMP_V1: no GETBULK)."""
    if version not in _VERSION_NAMES:
        raise ValueError(f"unsupported SNMP version field {version}")
    if max_repetitions is not None and version == SNMP_V1:
        raise ValueError("GETBULK is SNMPv2c only and excludes get_next")
    pdu = encode_pdu(request_id, oids, max_repetitions=max_repetitions, get_next=get_next,
                     non_repeaters=non_repeaters)
    return _tlv(SEQUENCE, _integer(version) + _tlv(OCTET_STRING, community) + pdu)


def encode_pdu(request_id: int, oids: Sequence[Sequence[int]], *,
               max_repetitions: int | None = None, get_next: bool = False,
               non_repeaters: int = 0) -> bytes:
    """The PDU alone (what an SNMPv3 scoped PDU carries, collectors.usm): GET, GETNEXT
    (`get_next`) or GETBULK (max_repetitions given; the first `non_repeaters` OIDs asked
    once: RFC 3416 4.2.3)."""
    if non_repeaters and (max_repetitions is None or not 0 <= non_repeaters <= len(oids)):
        raise ValueError("non-repeaters are a GETBULK's, at most as many as its OIDs")
    parts = []
    for oid in oids:
        key = tuple(oid)
        varbind = _VARBIND_CACHE.get(key)
        if varbind is None:
            if len(_VARBIND_CACHE) >= _VARBIND_CACHE_SIZE:
                _VARBIND_CACHE.clear()
            varbind = _VARBIND_CACHE[key] = _tlv(SEQUENCE, encode_oid(oid) + b"\x05\x00")
        parts.append(varbind)
    varbinds = b"".join(parts)
    if max_repetitions is not None:
        if get_next:
            raise ValueError("GETBULK is SNMPv2c only and excludes get_next")
        tag, second, third = PDU_GETBULK, non_repeaters, max_repetitions
    else:
        tag, second, third = (PDU_GETNEXT if get_next else PDU_GET), 0, 0
    return _tlv(tag, _integer(request_id) + _integer(second) + _integer(third)
                + _tlv(SEQUENCE, varbinds))


# --- decoding ------------------------------------------------------------------------------


def _header(data: bytes, pos: int, limit: int, expected: int, what: str) -> tuple[int, int]:
    """(content start, content end) of the TLV at `pos`, which must have tag `expected` and
    end within `limit`."""
    if pos >= limit:
        raise BerError(f"truncated: {what} missing at offset {pos}")
    tag = data[pos]
    if tag != expected:
        raise BerError(f"{what}: expected tag 0x{expected:02x}, found 0x{tag:02x} at offset {pos}")
    return _extent(data, pos, limit, what)


def _extent(data: bytes, pos: int, limit: int, what: str) -> tuple[int, int]:
    if pos + 1 >= limit:
        raise BerError(f"truncated: {what} has no length at offset {pos}")
    first = data[pos + 1]
    if first < 0x80:
        start = pos + 2
        end = start + first
    else:
        count = first & 0x7F
        if count == 0 or count > 4:
            raise BerError(f"{what}: unsupported length form 0x{first:02x} at offset {pos + 1}")
        start = pos + 2 + count
        if start > limit:
            raise BerError(f"truncated: {what} length runs past its container at offset {pos}")
        end = start + int.from_bytes(data[pos + 2:start], "big")
    if end > limit:
        raise BerError(f"truncated: {what} at offset {pos} needs {end - limit} more byte(s) "
                       f"than its container holds")
    return start, end


def _int(data: bytes, pos: int, limit: int, what: str) -> tuple[int, int]:
    start, end = _header(data, pos, limit, INTEGER, what)
    if start == end or end - start > 8:
        raise BerError(f"{what}: INTEGER of {end - start} bytes at offset {pos}")
    return int.from_bytes(data[start:end], "big", signed=True), end


_OID_CACHE: dict[bytes, tuple[int, ...]] = {}
_OID_CACHE_SIZE = 100_000
"""Decoded OIDs by their content bytes: every poll of every device names the same columns
and mostly the same ifIndexes, so after the first cycle a name is one dict lookup, not a
decode (the largest part of decoding an answer). Cleared when full, like _VARBIND_CACHE."""


def _oid(data: bytes, start: int, end: int) -> tuple[int, ...]:
    chunk = data[start:end]
    oid = _OID_CACHE.get(chunk)
    if oid is None:
        oid = _decode_oid(chunk, start, end)
        if len(_OID_CACHE) >= _OID_CACHE_SIZE:
            _OID_CACHE.clear()
        _OID_CACHE[chunk] = oid
    return oid


def _decode_oid(chunk: bytes, start: int, end: int) -> tuple[int, ...]:
    """The OID whose content bytes `chunk` are, found at data[start:end]."""
    if not chunk:
        raise BerError(f"empty OBJECT IDENTIFIER at offset {start}")
    if max(chunk) < 0x80:  # every sub-identifier below 128: the common case, in C
        first = chunk[0]
        head = (first // 40, first % 40) if first < 80 else (2, first - 80)
        return head + tuple(chunk[1:])
    if chunk[-1] & 0x80:
        raise BerError(f"OBJECT IDENTIFIER ends inside a sub-identifier at offset {end - 1}")
    subids: list[int] = []
    value = 0
    fresh = True
    for byte in chunk:
        if fresh and byte == 0x80:
            raise BerError(f"OBJECT IDENTIFIER sub-identifier with a leading 0x80 near {start}")
        value = (value << 7) | (byte & 0x7F)
        fresh = byte < 0x80
        if fresh:
            subids.append(value)
            value = 0
    first = subids[0]
    head = (first // 40, first % 40) if first < 80 else (2, first - 80)
    return head + tuple(subids[1:])


def decode_response(data: bytes, community: bytes | None = None,
                    version: int | None = SNMP_V2C) -> Response:
    """Decode an SNMP Response-PDU datagram of `version` (SNMP_V2C by default, SNMP_V1, or
    None for either); `BerError` when it is not one.

    `community`, when given, must match the reply's (an agent echoes the request's)."""
    pdu_tag, response = decode_message(data, community, version)
    if pdu_tag != PDU_RESPONSE:
        raise BerError(f"PDU: expected a Response-PDU (0xa2), found 0x{pdu_tag:02x}")
    return response


def decode_message(data: bytes, community: bytes | None = None,
                   version: int | None = SNMP_V2C) -> tuple[int, Response]:
    """Decode any SNMP message of `version` (None: v1 or v2c) with a request/response PDU:
    (PDU tag, fields). For a GETBULK the error-status and error-index fields hold
    non-repeaters and max-repetitions."""
    try:
        return _decode_message(data, community, version)
    except IndexError as error:  # a guard was missed: still a clear error, never a crash
        raise BerError(f"truncated or malformed datagram ({error})") from None


def _decode_message(data: bytes, community: bytes | None,
                    expected_version: int | None) -> tuple[int, Response]:
    size = len(data)
    pos, message_end = _header(data, 0, size, SEQUENCE, "message")
    if message_end != size:
        raise BerError(f"{size - message_end} byte(s) after the end of the message")
    version, pos = _int(data, pos, size, "version")
    if version != expected_version and (expected_version is not None
                                        or version not in _VERSION_NAMES):
        expected = (f"{expected_version} ({_VERSION_NAMES[expected_version]})"
                    if expected_version is not None else "0 (SNMPv1) or 1 (SNMPv2c)")
        raise BerError(f"version {version}, expected {expected}")
    start, pos = _header(data, pos, size, OCTET_STRING, "community")
    if community is not None and data[start:pos] != community:
        raise BerError("the reply's community differs from the request's")
    return decode_pdu(data, pos, size)


def decode_pdu(data: bytes, pos: int, size: int) -> tuple[int, Response]:
    """The request/response PDU at `pos`, which must end at `size`: (PDU tag, fields), with
    `Response.pdu_offset` = `pos`. The v1/v2c message and the SNMPv3 scoped PDU
    (collectors.usm) both end in one."""
    if pos >= size:
        raise BerError(f"truncated: PDU missing at offset {pos}")
    pdu_tag = data[pos]
    pdu_offset = pos
    if pdu_tag & 0xE0 != 0xA0:
        raise BerError(f"PDU: expected a context-specific constructed tag, found "
                       f"0x{pdu_tag:02x} at offset {pos}")
    start, pdu_end = _extent(data, pos, size, "PDU")
    if pdu_end != size:
        raise BerError("the PDU does not end where the message ends")
    request_id, pos = _int(data, start, pdu_end, "request-id")
    error_status, pos = _int(data, pos, pdu_end, "error-status")
    error_index, pos = _int(data, pos, pdu_end, "error-index")
    pos, list_end = _header(data, pos, pdu_end, SEQUENCE, "varbind list")
    if list_end != pdu_end:
        raise BerError("bytes after the varbind list")
    varbinds: list[tuple[tuple[int, ...], Any]] = []
    append = varbinds.append
    oids = _OID_CACHE
    while pos < list_end:
        # varbind SEQUENCE
        if data[pos] != SEQUENCE:
            raise BerError(f"varbind {len(varbinds)}: expected SEQUENCE at offset {pos}, "
                           f"found 0x{data[pos]:02x}")
        length = data[pos + 1] if pos + 1 < list_end else 0x80
        if length < 0x80:  # short-form lengths inline: the common case
            vb_start = pos + 2
            vb_end = vb_start + length
            if vb_end > list_end:
                raise BerError(f"truncated: varbind at offset {pos} needs {vb_end - list_end} "
                               f"more byte(s) than the varbind list holds")
        else:
            vb_start, vb_end = _extent(data, pos, list_end, "varbind")
        # name
        if vb_start + 1 >= vb_end or data[vb_start] != OBJECT_IDENTIFIER:
            raise BerError(f"varbind {len(varbinds)}: name is not an OBJECT IDENTIFIER "
                           f"at offset {vb_start}")
        length = data[vb_start + 1]
        if length < 0x80:
            start = vb_start + 2
            end = start + length
            if end > vb_end:
                raise BerError(f"truncated: varbind name at offset {vb_start} runs past its "
                               f"varbind")
        else:
            start, end = _extent(data, vb_start, vb_end, "varbind name")
        name = oids.get(data[start:end]) or _oid(data, start, end)
        # value
        if end >= vb_end:
            raise BerError(f"varbind {len(varbinds)}: value missing at offset {end}")
        tag = data[end]
        length = data[end + 1] if end + 1 < vb_end else 0x80
        if length < 0x80 and end + 2 + length == vb_end:  # short form, filling the varbind
            start, value_end = end + 2, vb_end
        else:
            start, value_end = _extent(data, end, vb_end, "varbind value")
            if value_end != vb_end:
                raise BerError(f"varbind {len(varbinds)}: bytes after the value at "
                               f"{value_end}")
        if tag in _UNSIGNED_MAX:
            if start == value_end or value_end - start > 9:
                raise BerError(f"varbind {len(varbinds)}: {TAG_NAMES[tag]} of "
                               f"{value_end - start} bytes at offset {end}")
            value: Any = int.from_bytes(data[start:value_end], "big")
            if value > _UNSIGNED_MAX[tag]:
                raise BerError(f"varbind {len(varbinds)}: {TAG_NAMES[tag]} out of range "
                               f"at offset {end}")
        elif tag in _STRING_TAGS:
            value = data[start:value_end]
        elif tag == INTEGER:
            if start == value_end or value_end - start > 4:
                raise BerError(f"varbind {len(varbinds)}: INTEGER of {value_end - start} bytes "
                               f"at offset {end}")
            value = int.from_bytes(data[start:value_end], "big", signed=True)
        elif tag == OBJECT_IDENTIFIER:
            value = _oid(data, start, value_end)
        elif tag == NULL or tag in _EXCEPTIONS:
            if start != value_end:
                raise BerError(f"varbind {len(varbinds)}: non-empty NULL at offset {end}")
            value = _EXCEPTIONS.get(tag)
        else:
            raise BerError(f"varbind {len(varbinds)}: unknown value tag 0x{tag:02x} "
                           f"at offset {end}")
        append((name, value))
        pos = vb_end
    return pdu_tag, Response(request_id, error_status, error_index, varbinds, data, pdu_offset)


def value_type_name(data: bytes, index: int, pdu_offset: int = -1) -> str:
    """The wire type of varbind `index` of a message `decode_message` accepted ("INTEGER",
    "Counter32", "noSuchInstance"...): for messages about a value of the wrong type, off the
    hot path (the decoder keeps no types). `pdu_offset`: where the PDU starts, when `data`
    is not a v1/v2c message (`Response.pdu_offset` of an SNMPv3 answer)."""
    try:
        size = len(data)
        pos = pdu_offset
        if pos < 0:
            pos, _ = _header(data, 0, size, SEQUENCE, "message")
            _, pos = _int(data, pos, size, "version")
            _, pos = _header(data, pos, size, OCTET_STRING, "community")
        pos, pdu_end = _extent(data, pos, size, "PDU")
        for what in ("request-id", "error-status", "error-index"):
            _, pos = _int(data, pos, pdu_end, what)
        pos, list_end = _header(data, pos, pdu_end, SEQUENCE, "varbind list")
        for _ in range(index):
            pos = _extent(data, pos, list_end, "varbind")[1]
        start, _ = _header(data, pos, list_end, SEQUENCE, "varbind")
        value_at = _extent(data, start, list_end, "varbind name")[1]
        tag = data[value_at]
    except (BerError, IndexError):
        return "an unknown type"
    return TAG_NAMES.get(tag, f"tag 0x{tag:02x}")


# --- the exchange --------------------------------------------------------------------------


class _UdpSession:
    """The connected UDP socket of one device poll, and the requests waiting on it by id
    (what V2cSession and V3Session share; see the module docstring).

    The socket is the loop's directly (add_reader, send, recv), not through an asyncio
    datagram transport: every request of every poll comes through here, and the transport's
    layers (its protocol callbacks, the loop steps of opening and closing it, the sender's
    address made for each datagram received) cost more than the exchange itself. What the
    transport did that matters is done the same: one datagram read per readiness, an
    OSError of a send or a receive (an ICMP error, on a connected socket) handed to
    `_icmp`."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self.icmp_error: Exception | None = None
        self.stale_replies = 0
        self.sent = 0

    async def open(self) -> Any:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
            sock.connect((self.host, self.port))
            loop.add_reader(sock.fileno(), self._readable)
        except BaseException:
            sock.close()
            raise
        self._sock, self._loop = sock, loop
        return self

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(sock.fileno())
            sock.close()
        for future in self._pending.values():
            if not future.done():
                future.cancel()
        self._pending.clear()

    def _readable(self) -> None:
        """One datagram from the device (the loop calls this again while more wait)."""
        if self._sock is None:
            return
        try:
            data = self._sock.recv(MAX_DATAGRAM_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self._icmp(error)
            return
        self._received(data)

    def _send(self, datagram: bytes) -> None:
        """Send one try. A full send buffer loses this try, as the network could (the next
        try, or the timeout, follows); an ICMP error the kernel kept for the socket is
        handed to `_icmp`."""
        if self._sock is None:
            raise RuntimeError("session is not open")
        try:
            self._sock.send(datagram)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as error:
            self._icmp(error)

    def _new_id(self) -> int:
        key = random.randrange(1, 2**31 - 1)
        while key in self._pending:
            key = random.randrange(1, 2**31 - 1)
        return key

    async def _exchange(self, key: int, datagram: bytes, timeouts_s: Sequence[float]) -> Any:
        """Send `datagram`, again after each timeout, until the answer with id `key` comes:
        what `_received` matched to it. A retry sends the same bytes, so a late answer to
        the first try is still taken."""
        if self._sock is None:
            raise RuntimeError("session is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending[key] = future
        tries = iter(timeouts_s)
        timer: asyncio.TimerHandle | None = None

        # Each try is a send and a timer that sends the next one (or gives up): the poll
        # awaits one future, with no waiter and callbacks per try as asyncio.wait makes
        # (every request of every poll comes through here).
        def send() -> None:
            nonlocal timer
            if future.done():  # answered (or failed) while this timer was due
                return
            timeout_s = next(tries, None)
            if timeout_s is None:
                future.set_exception(NoAnswer())
                return
            try:
                self._send(datagram)
            except Exception as error:  # handed to the request, as if raised there
                future.set_exception(error)
                return
            self.sent += 1
            timer = loop.call_later(timeout_s, send)

        send()
        try:
            return await future
        finally:
            if timer is not None:
                timer.cancel()
            self._pending.pop(key, None)
            if not future.done():
                future.cancel()

    def _icmp(self, error: Exception) -> None:
        """An ICMP error for this socket's requests (the kernel reports it on the connected
        socket). Port unreachable fails what waits at once; anything else may pass (a route
        coming back) and is only remembered for the reason text."""
        self.icmp_error = error
        if isinstance(error, ConnectionRefusedError):
            self._fail_all(Refused(str(error)))

    def _fail_all(self, error: Exception) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)

    def _answer(self, key: int, answer: Any) -> None:
        future = self._pending.get(key)
        if future is None or future.done():
            self.stale_replies += 1
            return
        future.set_result(answer)

    def _received(self, data: bytes) -> None:
        raise NotImplementedError


class V2cSession(_UdpSession):
    """One device's SNMPv2c (or, with `version=SNMP_V1`, SNMPv1) conversation over its own
    connected UDP socket.

    `request()` sends one GET, GETNEXT or GETBULK and returns the decoded `Response`, trying
    again with the same request-id after each of `timeouts_s` runs out; `NoAnswer` when none
    arrives; `Refused` at once when the host answers ICMP port unreachable (nothing listens
    there: waiting longer cannot help); `BerError` when the reply is malformed. One request
    at a time per session is the poller's use, but several may be in flight (they are matched
    by request-id). `sent` counts the datagrams sent, every try of every request.
    """

    def __init__(self, host: str, port: int, community: bytes, *,
                 version: int = SNMP_V2C) -> None:
        if version not in _VERSION_NAMES:
            raise ValueError(f"unsupported SNMP version field {version}")
        super().__init__(host, port)
        self.version = version
        self._community = community

    async def request(self, oids: Sequence[Sequence[int]], timeouts_s: Sequence[float], *,
                      max_repetitions: int | None = None, get_next: bool = False,
                      non_repeaters: int = 0) -> Response:
        if self._sock is None:
            raise RuntimeError("session is not open")
        request_id = self._new_id()
        datagram = encode_request(self._community, request_id, oids,
                                  max_repetitions=max_repetitions, get_next=get_next,
                                  version=self.version, non_repeaters=non_repeaters)
        return await self._exchange(request_id, datagram, timeouts_s)

    def _received(self, data: bytes) -> None:
        try:
            response = decode_response(data, self._community, self.version)
        except BerError as error:
            # The socket is connected: this came from the device. Fail what waits on it.
            self._fail_all(BerError(str(error)))
            return
        self._answer(response.request_id, response)


class V3Session(_UdpSession):
    """One device's SNMPv3 (USM, collectors.usm) conversation: the same `request()` as
    V2cSession, signed and encrypted for `user`.

    Before its first request to an agent it discovers the agent's engine id, boots and time
    (`clock`, an `usm.EngineClock` shared by a poller's sessions, so that is paid once per
    agent); a usmStatsNotInTimeWindows report resynchronises the clock and the request is
    sent again, a usmStatsUnknownEngineIDs report (the agent's engine id changed) runs the
    discovery again, once each. Any other report is raised as `usm.UsmReport`, an answer
    failing our checks (MAC, time, security level) as `usm.UsmError`, both `BerError`s.
    `engine_id` is the agent's, once known (for the trap receiver, collectors.traps)."""

    def __init__(self, host: str, port: int, user: usm.UsmUser, *,
                 clock: usm.EngineClock | None = None, context_name: bytes = b"") -> None:
        super().__init__(host, port)
        self._user = user
        self._clock = clock if clock is not None else usm.EngineClock()
        self._context_name = context_name
        self.engine_id: bytes | None = None

    async def request(self, oids: Sequence[Sequence[int]], timeouts_s: Sequence[float], *,
                      max_repetitions: int | None = None, get_next: bool = False,
                      non_repeaters: int = 0) -> Response:
        if self._sock is None:
            raise RuntimeError("session is not open")
        address = (self.host, self.port)
        request_id = self._new_id()
        pdu = encode_pdu(request_id, oids, max_repetitions=max_repetitions, get_next=get_next,
                         non_repeaters=non_repeaters)
        resynced = rediscovered = False
        while True:
            engine = self._clock.get(address)
            if engine is None:
                await self._discover(timeouts_s)
                continue
            engine_id, boots, time_s = engine
            keys = usm.localized_keys(self._user, engine_id)
            msg_id = self._new_id()
            datagram = usm.encode_message(self._user, keys, msg_id, pdu, engine_id=engine_id,
                                          boots=boots, time_s=time_s,
                                          context_name=self._context_name)
            message: usm.Message = await self._exchange(msg_id, datagram, timeouts_s)
            if message.engine_id != engine_id and message.flags & usm.FLAG_AUTH:
                raise usm.UsmError("the answer is signed for another engine id")
            pdu_tag, response = usm.open_message(
                message, self._user, keys if message.flags & usm.FLAG_AUTH else None)
            if pdu_tag == usm.PDU_REPORT:
                report = usm.decode_report(response)
                if (report.counter == "usmStatsNotInTimeWindows" and not resynced
                        and message.flags & usm.FLAG_AUTH):
                    resynced = True  # authenticated: its boots and time are the agent's
                    self._clock.learn(address, engine_id, message.boots, message.time_s)
                    continue
                if report.counter == "usmStatsUnknownEngineIDs" and not rediscovered:
                    rediscovered = True
                    self._clock.forget(address)
                    continue
                raise report
            if pdu_tag != PDU_RESPONSE:
                raise BerError(f"PDU: expected a Response-PDU (0xa2), found 0x{pdu_tag:02x}")
            if response.request_id != request_id:
                raise BerError(f"the answer's request-id {response.request_id} is not the "
                               f"request's")
            if message.flags & usm.FLAG_AUTH:
                self._clock.check(address, message.boots, message.time_s)
            self.engine_id = engine_id
            return response

    async def _discover(self, timeouts_s: Sequence[float]) -> None:
        """RFC 3414 4: an empty unauthenticated request; the report names the engine."""
        msg_id = self._new_id()
        message: usm.Message = await self._exchange(
            msg_id, usm.encode_discovery(msg_id, self._new_id()), timeouts_s)
        pdu_tag, _ = usm.open_message(message, usm.UsmUser(b""), None)
        if pdu_tag != usm.PDU_REPORT or not message.engine_id:
            raise usm.UsmError("the agent did not announce its engine id (engine discovery, "
                               "RFC 3414 section 4)")
        self._clock.learn((self.host, self.port), message.engine_id, message.boots,
                          message.time_s)

    def _received(self, data: bytes) -> None:
        try:
            message = usm.decode_message(data)
        except BerError as error:
            self._fail_all(BerError(str(error)))
            return
        self._answer(message.msg_id, message)


# SNMPv3's security model builds on this module's BER codec: imported last, once everything
# it takes from here exists (the sessions above use it only when called).
from collectors import usm  # noqa: E402
