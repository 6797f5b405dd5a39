"""The SNMP poller: one device's system group and interface counters, many devices at once.

What one poll does. GETBULK walks of the IF-MIB columns a rate needs: the ifTable columns,
then the ifXTable columns, one request at a time (side by side within a poll would cost the
collector tasks and loop turns for a poll that is short anyway; many polls run at once). The first
request also asks the system group (sysDescr, sysUpTime, sysName) as its non-repeaters, each
by GETNEXT of its object; an agent without one answers the next OID it has, which reads as
noSuchInstance. Once every interface of a device had both 64-bit ifHC octet counters, its
next polls leave the 32-bit ifInOctets/ifOutOctets out (rates come from the 64-bit ones);
one interface without them and the next poll asks for all again. A walk asks for all of its
columns in every request (RFC 3416: the answer is row after row, column i of each row at
position i), follows each column from where its last answer stopped, and drops a column once
its answers leave the column (the agent has moved on to the next one) or say endOfMibView.
The readings of every ifTable row become `InterfaceReading`s for `collectors.counters`. OIDs
are numeric tuples resolved here once: there are no MIB lookups while polling.

SNMPv1. The same walker, by GETNEXT (v1 has no GETBULK): one row of every column per
request. A v1 agent has no endOfMibView: a column that runs off the end of its MIB comes
back as error-status noSuchName at that column's position, so the walker drops that column
and asks for the others again (RFC 1157, RFC 2576 section 4.1.2.2); a name missing from the
system-group GET (v1 asks it by GET, before the walks) is dropped the same way. v1 cannot
carry Counter64, so the ifHC columns are not asked for and rates come from the 32-bit
counters.

Two engines, one walker. SNMPv2c and SNMPv1 go by default through `collectors.snmp_fast`, a
lean codec over a plain asyncio UDP socket, because pysnmp costs about 0.19 CPU s per 1,000
varbinds (most of it pyasn1 decoding) and the fast path 0.017, level with Net-SNMP's
snmpbulkwalk (bench/poll_engine.py measures all three; 10 snmpsim agents x 52 interfaces).
SNMPv3 goes the same way (snmp_fast.V3Session over collectors.usm) when its protocols are the
own codec's (`usm_user`: MD5, SHA-1 and SHA-2 authentication, AES-128/192/256 privacy in both
key extensions, or none): about the v2c cost (bench/poll.py) instead of pysnmp's 0.14. The
engine ids and clocks of v3 agents are learnt once per poller (usm.EngineClock), not per poll.
DES and 3DES privacy stay with pysnmp; `v3_engine="pysnmp"` forces pysnmp for all of v3.
pysnmp is driven under its hlapi (its command generators directly,
numeric ObjectNames, no MIB resolution of requests or answers), which saves a quarter of its
cost; one pysnmp engine per distinct credential, since an engine holds one key set per USM
user name. Both engines hand the walker the same plain values
(ints, bytes, OID tuples, the noSuchObject / noSuchInstance / endOfMibView sentinels), so a
device gives the same PollResult whichever engine read it; `v2c_engine="pysnmp"` forces
pysnmp for v1 and v2c too.

A bad cell is not a bad poll. Real agents serve an ifName as INTEGER, a counter out of its
range, no sysUpTime.0 at all (some IOS-XE releases), a sysName of "<private>". Each value the
poller cannot use (wrong kind for its column, out of its field's range, a system object
missing) is left out, None, and named in `PollResult.problems` ("ifName.7: INTEGER where
OCTET STRING expected; skipped"); the rest of the poll stands. Without sysUpTime the readings
carry None and `collectors.counters` judges intervals by the wall clock alone.

Limits. Requests in flight are bounded overall (`max_in_flight`: a burst of large answers
must fit the socket receive buffers) and per device (`max_in_flight_per_device`: the two
table walks of one device, and no more, so a small agent is not flooded). `poll_many` polls
at most `max_in_flight` devices at a time. Each request is tried 1 + `retries` times, the
n-th try waiting `timeout_s * backoff_factor ** n`.

What a poll can end in (`PollStatus`), per device and never at another device's expense:

    reachable     every answer arrived and was a well-formed answer to its request (cells
                  it could not use are in `problems`);
    unreachable   a request got no answer after every try (an SNMPv1/v2c agent stays silent
                  on a wrong community, so that case lands here too), or the host answered
                  ICMP port unreachable: no agent listens, so the poll ends at once, without
                  waiting out the retries;
    auth-failed   an SNMPv3 agent rejected the credential (unknown user, wrong digest, a
                  decryption error, unsupported security level...);
    error         a protocol answer that cannot be used: an error-status, a malformed or
                  truncated datagram, an answer that does not fit its request, a walk that
                  does not advance (an agent loop).

Silence explained, where it can be. A v1-only agent polled as v2c is silent exactly as a dead
device or a wrong community is. `diagnose_silence(target)`, for the collector to run after a
v1/v2c poll got no answer, sends one GET of sysUpTime.0 in each community version and, when
only the other one answers, says which kind the credential should be. A wrong community
cannot be told from an ACL: both stay silent.

Walking any table. `walk(target, columns)` runs the same walker over arbitrary numeric
columns (LLDP-MIB for topology discovery, for instance) and returns every row of each column
keyed by its index suffix: the OID after the column, a tuple, since many tables have
multi-part indexes (lldpRemTable: timeMark, localPortNum, index). A scalar is walked as the
column of its parent (sysName 1.3.6.1.2.1.1.5 gives the row (0,)). Its `WalkResult` carries
the same status and reason as a poll; it never raises for what a device does.

The SNMPv3 engine id. A v3 trap is signed with keys localized to the sending agent's
snmpEngineID, so the trap receiver needs each agent's (collectors.traps). The poller learns
it for free: both engines discover it (RFC 3414 section 4) before the first request to an
agent, and every authenticated answer carries it as msgAuthoritativeEngineID. The fast
engine's session keeps it as `engine_id`; for pysnmp, an observer on each pysnmp engine
("rfc3412.prepareDataElements:response", called for every answer that passed the USM checks
and matched its request) records it by agent address. A v3 poll's result
carries it as `PollResult.engine_id`. No snmpEngineID.0 GET: not every agent serves it
(snmpsim does not), and the discovered id is the one the agent signs with. v1 and v2c polls
leave it None and pay nothing for it.

Readings are stamped with the monotonic clock (`time.monotonic()`, seconds) taken when the
answer carrying the system group came, the same moment as their sysUpTime (not when its
request went: a retry in between would stretch the interval against the agent's clock):
rates and restarts are judged on intervals of that clock, which a step of the wall clock
does not touch. A result's `started_at`, what samples and observations are stamped with, is
the wall clock (`wall_clock`, `time.time` unless a test steps it). Counters are the agent's
raw values. `requests_sent` counts every request datagram sent (each try), for statistics.

Every non-reachable result carries a reason in words. Reasons never contain a community or a
key: secrets stay pydantic SecretStr until the engine needs them, and every reason is scrubbed
of them before it leaves.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, TypeVar

from collectors import snmp_fast, usm
from collectors.counters import TIMETICKS_MODULUS, InterfaceReading, field_out_of_range
from collectors.model import InterfaceLabel, PollResult, PollStatus, PollTarget, SnmpCredential
from collectors.snmp_fast import END_OF_MIB_VIEW, SnmpException

__all__ = ["IF_TABLE_COLUMNS", "IF_X_TABLE_COLUMNS", "SYSTEM_OIDS", "Column", "SnmpPoller",
           "WalkResult"]

Oid = tuple[int, ...]
VarBind = tuple[Oid, Any]
T = TypeVar("T")

SYS_DESCR: Oid = (1, 3, 6, 1, 2, 1, 1, 1, 0)
SYS_UPTIME: Oid = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SYS_NAME: Oid = (1, 3, 6, 1, 2, 1, 1, 5, 0)
SYSTEM_OIDS: tuple[tuple[str, Oid], ...] = (
    ("sysDescr.0", SYS_DESCR), ("sysUpTime.0", SYS_UPTIME), ("sysName.0", SYS_NAME))
# asked by GETNEXT (a GETBULK's non-repeaters), each scalar's object gives its instance .0
_SYSTEM_NEXT: tuple[tuple[str, Oid], ...] = tuple((name, oid[:-1]) for name, oid in SYSTEM_OIDS)

IF_ENTRY: Oid = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IF_X_ENTRY: Oid = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)

_RESPONSE_POINT = "rfc3412.prepareDataElements:response"
"""pysnmp's observer point for an SNMPv3 answer that passed the security checks."""

MAX_ROWS_PER_COLUMN = 100_000
"""A column longer than this is an agent that never stops (increasing OIDs forever)."""

ERROR_STATUS_NAMES = {
    1: "tooBig", 2: "noSuchName", 3: "badValue", 4: "readOnly", 5: "genErr", 6: "noAccess",
    7: "wrongType", 8: "wrongLength", 9: "wrongEncoding", 10: "wrongValue", 11: "noCreation",
    12: "inconsistentValue", 13: "resourceUnavailable", 14: "commitFailed", 15: "undoFailed",
    16: "authorizationError", 17: "notWritable", 18: "inconsistentName",
}


@dataclass(frozen=True, slots=True)
class Column:
    """One column to walk: its MIB name, numeric OID, where its value goes, and its syntax.

    `field` is an `InterfaceReading` field (a number) or, for the labels, "label:<name>".
    `syntax` is the SMI type the column has ("OCTET STRING", "Counter64"...): a cell of
    another kind (a string where a number belongs, or the reverse) is skipped and named in
    the poll's problems. Any integer type passes for a numeric column (agents serve Counter32
    for Counter64 and the like; the value's range is checked by `InterfaceReading`). An empty
    syntax accepts anything (`walk` of arbitrary columns)."""

    name: str
    oid: Oid
    field: str = ""
    syntax: str = ""

    @property
    def kind(self) -> type | None:
        """The Python type of a good value (bytes or int), None for any."""
        return None if not self.syntax else bytes if self.syntax == "OCTET STRING" else int


_TEXT = "OCTET STRING"
IF_TABLE_COLUMNS: tuple[Column, ...] = (
    Column("ifIndex", (*IF_ENTRY, 1), "label:if_index", "INTEGER"),
    Column("ifDescr", (*IF_ENTRY, 2), "label:if_descr", _TEXT),
    Column("ifType", (*IF_ENTRY, 3), "label:if_type", "INTEGER"),
    Column("ifSpeed", (*IF_ENTRY, 5), "if_speed_bps", "Gauge32"),
    Column("ifAdminStatus", (*IF_ENTRY, 7), "if_admin_status", "INTEGER"),
    Column("ifOperStatus", (*IF_ENTRY, 8), "if_oper_status", "INTEGER"),
    Column("ifInOctets", (*IF_ENTRY, 10), "if_in_octets", "Counter32"),
    Column("ifInDiscards", (*IF_ENTRY, 13), "if_in_discards", "Counter32"),
    Column("ifInErrors", (*IF_ENTRY, 14), "if_in_errors", "Counter32"),
    Column("ifOutOctets", (*IF_ENTRY, 16), "if_out_octets", "Counter32"),
    Column("ifOutDiscards", (*IF_ENTRY, 19), "if_out_discards", "Counter32"),
    Column("ifOutErrors", (*IF_ENTRY, 20), "if_out_errors", "Counter32"),
)
IF_X_TABLE_COLUMNS: tuple[Column, ...] = (
    Column("ifName", (*IF_X_ENTRY, 1), "label:if_name", _TEXT),
    Column("ifHCInOctets", (*IF_X_ENTRY, 6), "if_hc_in_octets", "Counter64"),
    Column("ifHCOutOctets", (*IF_X_ENTRY, 10), "if_hc_out_octets", "Counter64"),
    Column("ifHighSpeed", (*IF_X_ENTRY, 15), "if_high_speed_mbps", "Gauge32"),
    Column("ifCounterDiscontinuityTime", (*IF_X_ENTRY, 19), "if_counter_discontinuity_time_cs",
           "TimeTicks"),
)

_IF_TABLE_BESIDE_HC: tuple[Column, ...] = tuple(
    column for column in IF_TABLE_COLUMNS if column.name not in ("ifInOctets", "ifOutOctets"))
"""The ifTable columns a device whose interfaces all have 64-bit octet counters is asked:
rates come from the ifHC counters then (collectors.counters), the 32-bit ones go unread."""

MAX_PROBLEMS = 100
"""Problems listed per poll; beyond that they are counted in one last line."""


class _Problems:
    """What a poll skipped, in words (see `PollResult.problems`)."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self.count = 0

    def add(self, line: str) -> None:
        self.count += 1
        if len(self._lines) < MAX_PROBLEMS:
            self._lines.append(line)

    def lines(self) -> tuple[str, ...]:
        more = self.count - len(self._lines)
        return (*self._lines, f"... and {more} more skipped") if more else tuple(self._lines)


@dataclass(frozen=True)
class WalkResult:
    """What `SnmpPoller.walk` found on one device: `rows[column][index suffix] = value` for
    every column asked (a column the agent does not have is an empty dict), with values as
    the engines give them (int, bytes, OID tuple, None). Like `PollResult`, a status and, for
    every status but reachable, a reason in words (never a secret); `rows` is empty then."""

    target: PollTarget
    status: PollStatus
    reason: str | None
    started_at: datetime
    duration_s: float
    rows: dict[Oid, dict[Oid, Any]] = field(default_factory=dict)
    varbind_count: int = 0


# --- outcomes ------------------------------------------------------------------------------


class _PollFailed(Exception):
    status = PollStatus.ERROR


class _Unreachable(_PollFailed):
    status = PollStatus.UNREACHABLE


class _AuthFailed(_PollFailed):
    status = PollStatus.AUTH_FAILED


class _BadAnswer(_PollFailed):
    status = PollStatus.ERROR


# --- engines -------------------------------------------------------------------------------
# A session is one device poll's conversation. request() sends a GET (max_repetitions None)
# or a GETBULK with all retries, and returns (error_status, error_index, varbinds) with plain
# values; it raises snmp_fast.NoAnswer, _AuthFailed or _BadAnswer.


_VERSION_FIELDS = {"v1": snmp_fast.SNMP_V1, "v2c": snmp_fast.SNMP_V2C}
_VERSION_NAMES = {"v1": "SNMPv1", "v2c": "SNMPv2c", "v3": "SNMPv3"}


class _FastSession:
    """The own codec's session: v1/v2c (snmp_fast.V2cSession), or SNMPv3 with the protocols
    collectors.usm has (snmp_fast.V3Session; `usm_user` says which credentials)."""

    def __init__(self, target: PollTarget, timeouts_s: Sequence[float],
                 clock: usm.EngineClock | None = None) -> None:
        credential = target.credential
        version = credential.version
        self.bulk = version != "v1"  # SNMPv1 has no GETBULK: walks go by GETNEXT
        self.note = ""
        self._session: snmp_fast.V2cSession | snmp_fast.V3Session
        if version == "v3":
            user = usm_user(credential)
            if user is None:
                raise _BadAnswer("the SNMPv3 credential's protocols are not in the fast "
                                 "codec")
            self._session = snmp_fast.V3Session(target.host, target.port, user, clock=clock)
            if user.priv is not None:
                self.note = _PRIV_SILENCE_NOTE
        else:
            community = credential.community
            if community is None:
                raise _BadAnswer(f"the {_VERSION_NAMES[version]} credential has no community")
            self._session = snmp_fast.V2cSession(target.host, target.port,
                                                 community.get_secret_value().encode(),
                                                 version=_VERSION_FIELDS[version])
        self._timeouts_s = timeouts_s

    @property
    def engine_id(self) -> bytes | None:
        """The SNMPv3 agent's engine id once it answered (v1 and v2c have none)."""
        return getattr(self._session, "engine_id", None)

    async def open(self) -> _FastSession:
        await self._session.open()
        return self

    @property
    def sent(self) -> int:
        return self._session.sent

    @property
    def icmp_note(self) -> str:
        error = self._session.icmp_error
        return f"; ICMP: {error.strerror or error}" if isinstance(error, OSError) else ""

    async def request(self, oids: Sequence[Oid], max_repetitions: int | None,
                      non_repeaters: int = 0
                      ) -> tuple[int, int, list[VarBind], Callable[[int], str]]:
        """GET (max_repetitions None), else GETBULK (its first `non_repeaters` OIDs asked
        once), or GETNEXT when the version has no bulk; (error-status, error-index, varbinds,
        the wire type name of varbind i)."""
        try:
            if self.bulk or max_repetitions is None:
                response = await self._session.request(oids, self._timeouts_s,
                                                       max_repetitions=max_repetitions,
                                                       non_repeaters=non_repeaters)
            else:
                response = await self._session.request(oids, self._timeouts_s, get_next=True)
        except usm.UsmReport as report:
            raise _AuthFailed(f"SNMPv3 agent rejected the credential: {report}") from None
        except usm.UsmError as error:
            raise _BadAnswer(f"SNMPv3 answer refused: {error}") from None
        except snmp_fast.BerError as error:
            raise _BadAnswer(f"malformed answer: {error}") from None
        datagram, pdu_offset = response.datagram, response.pdu_offset
        return (response.error_status, response.error_index, response.varbinds,
                lambda index: snmp_fast.value_type_name(datagram, index, pdu_offset))

    def close(self) -> None:
        self._session.close()


_AUTH_PROTOCOLS = {
    "MD5": "USM_AUTH_HMAC96_MD5", "SHA": "USM_AUTH_HMAC96_SHA", "SHA1": "USM_AUTH_HMAC96_SHA",
    "SHA224": "USM_AUTH_HMAC128_SHA224", "SHA256": "USM_AUTH_HMAC192_SHA256",
    "SHA384": "USM_AUTH_HMAC256_SHA384", "SHA512": "USM_AUTH_HMAC384_SHA512",
}
# AES192/AES256 follow pysnmp, snmpsim and Cisco (the "Reeder" key extension); Net-SNMP's
# own AES192/AES256 use Blumenthal's and are reachable as AES192B/AES256B.
_PRIV_PROTOCOLS = {
    "DES": "USM_PRIV_CBC56_DES", "3DES": "USM_PRIV_CBC168_3DES",
    "AES": "USM_PRIV_CFB128_AES", "AES128": "USM_PRIV_CFB128_AES",
    "AES192": "USM_PRIV_CFB192_AES", "AES256": "USM_PRIV_CFB256_AES",
    "AES192B": "USM_PRIV_CFB192_AES_BLUMENTHAL", "AES256B": "USM_PRIV_CFB256_AES_BLUMENTHAL",
}
_PRIV_SILENCE_NOTE = ("; a wrong SNMPv3 privacy key also looks like this: agents drop what "
                      "they cannot decrypt")


def usm_user(credential: SnmpCredential) -> usm.UsmUser | None:
    """The own codec's SNMPv3 user for `credential`, or None when its protocols are not
    among collectors.usm's (DES, 3DES: pysnmp polls those). The one place the fast path
    reveals SNMPv3 secrets."""
    if credential.version != "v3" or not credential.username:
        return None
    level = credential.security_level or (
        "authPriv" if credential.priv_key else "authNoPriv" if credential.auth_key
        else "noAuthNoPriv")
    auth = priv = None
    auth_password = priv_password = b""
    if level in ("authNoPriv", "authPriv"):
        auth = (credential.auth_protocol or "SHA").upper().replace("-", "")
        if auth not in usm.AUTH_PROTOCOLS or credential.auth_key is None:
            return None
        auth_password = credential.auth_key.get_secret_value().encode()
    if level == "authPriv":
        priv = (credential.priv_protocol or "AES").upper().replace("-", "")
        if priv not in usm.PRIV_PROTOCOLS or credential.priv_key is None:
            return None
        priv_password = credential.priv_key.get_secret_value().encode()
    elif level not in ("noAuthNoPriv", "authNoPriv"):
        return None
    try:
        return usm.UsmUser(credential.username.encode(), auth, auth_password, priv,
                           priv_password)
    except usm.UsmError:
        return None  # pysnmp says what is wrong with it, in its words


# pysnmp error indications that mean "the agent does not accept this credential"
_AUTH_INDICATIONS = frozenset({
    "UnknownUserName", "WrongDigest", "DecryptionError", "UnsupportedSecurityLevel",
    "AuthenticationFailure", "AuthenticationError", "UnknownSecurityName",
    "UnsupportedAuthProtocol", "UnsupportedPrivProtocol", "UnknownCommunityName",
    "NoAuthentication", "NoEncryption", "NotInTimeWindow",
})


def _lower_camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def pysnmp_auth_data(credential: SnmpCredential) -> Any:
    """The pysnmp CommunityData / UsmUserData for a credential (the one place secrets are
    revealed for pysnmp)."""
    from pysnmp.hlapi.v3arch.asyncio import CommunityData, UsmUserData
    from pysnmp.hlapi.v3arch.asyncio import auth as protocols

    if credential.version in ("v1", "v2c"):
        if credential.community is None:
            raise _BadAnswer(f"the {_VERSION_NAMES[credential.version]} credential has no "
                             f"community")
        return CommunityData(credential.community.get_secret_value(),
                             mpModel=0 if credential.version == "v1" else 1)
    if credential.version != "v3":
        raise _BadAnswer(f"unsupported SNMP version {credential.version!r}")
    if not credential.username:
        raise _BadAnswer("the SNMPv3 credential has no user name")
    level = credential.security_level or (
        "authPriv" if credential.priv_key else "authNoPriv" if credential.auth_key
        else "noAuthNoPriv")
    options: dict[str, Any] = {}
    if level in ("authNoPriv", "authPriv"):
        name = (credential.auth_protocol or "SHA").upper().replace("-", "")
        if name not in _AUTH_PROTOCOLS or credential.auth_key is None:
            raise _BadAnswer(f"unsupported or incomplete SNMPv3 auth protocol {name!r}")
        options["authProtocol"] = getattr(protocols, _AUTH_PROTOCOLS[name])
        options["authKey"] = credential.auth_key.get_secret_value()
    if level == "authPriv":
        name = (credential.priv_protocol or "AES").upper().replace("-", "")
        if name not in _PRIV_PROTOCOLS or credential.priv_key is None:
            raise _BadAnswer(f"unsupported or incomplete SNMPv3 privacy protocol {name!r}")
        options["privProtocol"] = getattr(protocols, _PRIV_PROTOCOLS[name])
        options["privKey"] = credential.priv_key.get_secret_value()
    elif level not in ("noAuthNoPriv", "authNoPriv"):
        raise _BadAnswer(f"unknown SNMPv3 security level {level!r}")
    return UsmUserData(credential.username, **options)


class _PysnmpValues:
    """pyasn1 values -> the plain values of snmp_fast (cached by class)."""

    def __init__(self) -> None:
        from pyasn1.type import univ
        from pysnmp.proto import rfc1902, rfc1905

        self._exceptions = {rfc1905.NoSuchObject: snmp_fast.NO_SUCH_OBJECT,
                            rfc1905.NoSuchInstance: snmp_fast.NO_SUCH_INSTANCE,
                            rfc1905.EndOfMibView: snmp_fast.END_OF_MIB_VIEW}
        self._univ = univ
        self._rfc1902 = rfc1902
        self._by_class: dict[type, Any] = {}

    def plain(self, value: Any) -> Any:
        convert = self._by_class.get(type(value))
        if convert is None:
            convert = self._by_class[type(value)] = self._converter(type(value))
        return convert(value)

    @staticmethod
    def type_name(value: Any) -> str:
        """The wire type of a pyasn1 value, named as `snmp_fast.value_type_name` does."""
        try:
            tag = value.tagSet[-1]
            number = tag.tagClass | tag.tagFormat | tag.tagId
        except (AttributeError, IndexError, TypeError):
            return type(value).__name__
        return snmp_fast.TAG_NAMES.get(number, f"tag 0x{number:02x}")

    def _converter(self, cls: type) -> Any:
        for exception_class, sentinel in self._exceptions.items():
            if issubclass(cls, exception_class):
                return lambda _value, sentinel=sentinel: sentinel
        univ = self._univ
        if issubclass(cls, univ.Null):
            return lambda _value: None
        if issubclass(cls, univ.OctetString):
            return lambda value: bytes(value.asOctets())
        if issubclass(cls, univ.ObjectIdentifier):
            return tuple
        if issubclass(cls, univ.Integer):
            return int
        return lambda value: value


class _PysnmpSession:
    def __init__(self, poller: SnmpPoller, target: PollTarget,
                 timeouts_s: Sequence[float]) -> None:
        self._poller = poller
        self._target = target
        self._timeouts_s = timeouts_s
        self._auth = pysnmp_auth_data(target.credential)
        self._transports: dict[float, Any] = {}
        self.engine_id: bytes | None = None  # v3: the agent's, once it has answered
        self.bulk = target.credential.version != "v1"  # SNMPv1: walks go by GETNEXT
        self.sent = 0
        credential = target.credential
        self.note = (_PRIV_SILENCE_NOTE if credential.version == "v3" and credential.priv_key
                     and credential.security_level in (None, "authPriv") else "")
        self.icmp_note = ""

    async def open(self) -> _PysnmpSession:
        from pysnmp.hlapi.v3arch.asyncio import UdpTransportTarget

        for timeout_s in set(self._timeouts_s):
            self._transports[timeout_s] = await UdpTransportTarget.create(
                (self._target.host, self._target.port), timeout=timeout_s, retries=0)
        return self

    async def request(self, oids: Sequence[Oid], max_repetitions: int | None,
                      non_repeaters: int = 0
                      ) -> tuple[int, int, list[VarBind], Callable[[int], str]]:
        # pysnmp's command generators directly, under its hlapi: the hlapi would resolve
        # every request OID through the MIB tree; these OIDs are numeric already. An SNMPv1
        # answer reaches us converted to v2c's form (RFC 2576: noSuchName keeps its
        # error-status and error-index), as the fast engine reports it.
        from pysnmp.entity.rfc3413 import cmdgen
        from pysnmp.hlapi.v3arch.asyncio.cmdgen import LCD
        from pysnmp.proto import errind
        from pysnmp.proto.rfc1902 import Null, ObjectName

        engine, values = self._poller._pysnmp(self._target.credential)
        loop = asyncio.get_running_loop()
        for timeout_s in self._timeouts_s:
            target_name, _ = LCD.configure(engine, self._auth, self._transports[timeout_s], b"")
            future: asyncio.Future[tuple[Any, Any, Any, Any]] = loop.create_future()

            def done(_engine: Any, _handle: Any, indication: Any, error_status: Any,
                     error_index: Any, varbinds: Any, _context: Any,
                     future: asyncio.Future[tuple[Any, Any, Any, Any]] = future) -> None:
                if not future.done():
                    future.set_result((indication, error_status, error_index, varbinds))

            request = [(ObjectName(oid), Null("")) for oid in oids]
            self.sent += 1
            if max_repetitions is None:
                cmdgen.GetCommandGenerator().send_varbinds(
                    engine, target_name, None, b"", request, done)
            elif not self.bulk:
                cmdgen.NextCommandGeneratorSingleRun().send_varbinds(
                    engine, target_name, None, b"", request, done)
            else:
                cmdgen.BulkCommandGenerator().send_varbinds(
                    engine, target_name, None, b"", non_repeaters, max_repetitions, request,
                    done)
            indication, error_status, error_index, varbinds = await future
            if indication:
                kind = type(indication).__name__
                if isinstance(indication, errind.RequestTimedOut):
                    continue
                if kind in _AUTH_INDICATIONS:
                    raise _AuthFailed(f"SNMPv3 agent rejected the credential: "
                                      f"{_lower_camel(kind)} ({indication})")
                raise _BadAnswer(f"{_lower_camel(kind)}: {indication}")
            if self._target.credential.version == "v3":
                address = self._transports[timeout_s].transport_address
                self.engine_id = self._poller._peer_engine_ids.get(
                    (address[0], address[1]), self.engine_id)
            plain = values.plain
            return (int(error_status), int(error_index),
                    [(tuple(name), plain(value)) for name, value in varbinds],
                    lambda index, varbinds=varbinds: values.type_name(varbinds[index][1]))
        raise snmp_fast.NoAnswer()

    def close(self) -> None:
        self._transports.clear()


# --- the poller ----------------------------------------------------------------------------


class SnmpPoller:
    """Polls devices over SNMP v1 / v2c / v3 with bounded concurrency; see the module
    docstring.

    Use it from one event loop; `close()` when done (it releases pysnmp's engine).
    `requests_sent` counts the request datagrams sent (every try), for statistics."""

    def __init__(self, *, timeout_s: float = 2.0, retries: int = 2, max_in_flight: int = 32,
                 max_in_flight_per_device: int = 2, max_repetitions: int = 25,
                 backoff_factor: float = 1.0,
                 v2c_engine: Literal["fast", "pysnmp"] = "fast",
                 v3_engine: Literal["fast", "pysnmp"] = "fast",
                 wall_clock: Callable[[], float] = time.time) -> None:
        if timeout_s <= 0 or retries < 0 or max_in_flight < 1 or max_in_flight_per_device < 1:
            raise ValueError("timeout_s > 0, retries >= 0 and in-flight limits >= 1, please")
        if not 1 <= max_repetitions <= 1000 or backoff_factor < 1:
            raise ValueError("max_repetitions must be 1..1000 and backoff_factor >= 1")
        if v2c_engine not in ("fast", "pysnmp") or v3_engine not in ("fast", "pysnmp"):
            raise ValueError(f"v2c_engine and v3_engine must be 'fast' or 'pysnmp', not "
                             f"{v2c_engine!r}, {v3_engine!r}")
        self.timeout_s = timeout_s
        self.retries = retries
        self.max_in_flight = max_in_flight
        self.max_in_flight_per_device = max_in_flight_per_device
        self.max_repetitions = max_repetitions
        self.backoff_factor = backoff_factor
        self.v2c_engine = v2c_engine
        self.v3_engine = v3_engine
        # the SNMPv3 agents' engine ids and clocks, learnt once for all of the fast path's polls
        self._usm_clock = usm.EngineClock()
        self._wall_clock = wall_clock  # epoch seconds, for the results' started_at
        self.timeouts_s = tuple(timeout_s * backoff_factor ** n for n in range(retries + 1))
        self._in_flight: asyncio.Semaphore | None = None
        self._device_slots: dict[tuple[str, int], tuple[asyncio.Semaphore, int]] = {}
        # (address, port) of the devices whose every interface had 64-bit octet counters at
        # their last poll (see `_poll`)
        self._hc_devices: set[tuple[str, int]] = set()
        self._engines: dict[str, Any] = {}
        self._values: _PysnmpValues | None = None
        # (address, port) -> the SNMPv3 agent's authoritative engine id, from its answers
        self._peer_engine_ids: dict[tuple[str, int], bytes] = {}
        self.requests_sent = 0

    # -- public -----------------------------------------------------------------------------

    async def poll(self, target: PollTarget) -> PollResult:
        """Poll one device. Never raises for anything the device does: see `PollResult`."""
        started_at = datetime.fromtimestamp(self._wall_clock(), UTC)
        started_s = time.monotonic()
        device = (target.host, target.port)
        status, reason, fields = await self._converse(
            target, lambda session, slot: self._poll(session, slot, device))
        return PollResult(target=target, status=status, reason=reason, started_at=started_at,
                          duration_s=time.monotonic() - started_s, **(fields or {}))

    async def walk(self, target: PollTarget, columns: Sequence[Oid]) -> WalkResult:
        """Walk the numeric OID `columns` of one device together (GETBULK; GETNEXT for an
        SNMPv1 agent; see the module docstring): rows {column: {index suffix: value}}. Never
        raises for anything the device does: a failure is a status and a reason, as for
        `poll`."""
        wanted = tuple(dict.fromkeys(tuple(int(part) for part in column) for column in columns))
        if not wanted or any(len(column) < 2 for column in wanted):
            raise ValueError("walk needs at least one column OID of two or more parts")
        started_at = datetime.fromtimestamp(self._wall_clock(), UTC)
        started_s = time.monotonic()

        async def work(session: Any, slot: asyncio.Semaphore) -> dict[Oid, dict[Oid, Any]]:
            named = [Column(_dotted(column), column) for column in wanted]
            found = (await self._walk_columns(session, slot, named, _Problems(),
                                              single_index=False)).rows
            return {column: found[_dotted(column)] for column in wanted}

        status, reason, rows = await self._converse(target, work)
        rows = rows or {}
        return WalkResult(target=target, status=status, reason=reason, started_at=started_at,
                          duration_s=time.monotonic() - started_s, rows=rows,
                          varbind_count=sum(len(values) for values in rows.values()))

    async def poll_many(self, targets: Iterable[PollTarget]) -> list[PollResult]:
        """Poll every target concurrently (at most `max_in_flight` devices at a time); the
        results are in the targets' order."""
        devices = asyncio.Semaphore(self.max_in_flight)

        async def one(target: PollTarget) -> PollResult:
            async with devices:
                return await self.poll(target)

        return list(await asyncio.gather(*(one(target) for target in targets)))

    async def diagnose_silence(self, target: PollTarget) -> str | None:
        """After a v1 or v2c poll of `target` got no answer: a hint when the agent answers the
        other community-based SNMP version and not the configured one, else None.

        One GET of sysUpTime.0 in each version at once, same community, one try of
        `timeout_s`. A v1-only agent (or one whose access rules admit only SNMPv1) is silent
        to v2c exactly as a dead device or a wrong community is; this tells it apart. A wrong
        community cannot be told from an ACL or a dead device: both stay silent (None)."""
        credential = target.credential
        if credential.version not in _VERSION_FIELDS or credential.community is None:
            return None
        other = "v1" if credential.version == "v2c" else "v2c"
        community = credential.community.get_secret_value().encode()
        if self._in_flight is None:
            self._in_flight = asyncio.Semaphore(self.max_in_flight)

        async def answers(version: str) -> bool:
            session = snmp_fast.V2cSession(target.host, target.port, community,
                                           version=_VERSION_FIELDS[version])
            try:
                async with self._in_flight:
                    await session.open()
                    await session.request([SYS_UPTIME], (self.timeout_s,))
                return True
            except (snmp_fast.NoAnswer, snmp_fast.BerError, OSError):
                return False
            finally:
                self.requests_sent += session.sent
                session.close()

        configured, alternative = await asyncio.gather(answers(credential.version),
                                                       answers(other))
        if alternative and not configured:
            return (f"the agent answers {_VERSION_NAMES[other]} only: set the credential's "
                    f"kind to snmp_{other}")
        return None

    def close(self) -> None:
        """Release pysnmp's engines (their sockets and timers), if any was started."""
        for engine in self._engines.values():
            engine.observer.unregister_observer(self._on_response)
            engine.close_dispatcher()
        self._engines.clear()

    # -- internals --------------------------------------------------------------------------

    async def _converse(
        self, target: PollTarget,
        work: Callable[[Any, asyncio.Semaphore], Awaitable[T]],
    ) -> tuple[PollStatus, str | None, T | None]:
        """Open a session to `target`, run `work(session, slot)` in it and turn every way it
        can fail into a status and a (scrubbed) reason: (status, reason, work's result or
        None). The device's slot bounds its requests in flight across concurrent calls."""
        key = (target.host, target.port)
        slot, users = self._device_slots.get(key) or (
            asyncio.Semaphore(self.max_in_flight_per_device), 0)
        self._device_slots[key] = (slot, users + 1)
        session: Any = None
        result: T | None = None
        try:
            session = await self._session(target)
            result = await work(session, slot)
            status, reason = PollStatus.REACHABLE, None
        except _PollFailed as failure:
            status, reason = failure.status, str(failure)
        except snmp_fast.Refused:
            status = PollStatus.UNREACHABLE
            reason = (f"{target.host}:{target.port} refused: no SNMP agent listening "
                      f"(ICMP port unreachable)")
        except snmp_fast.NoAnswer:
            tries = len(self.timeouts_s)
            each = (f"{self.timeout_s} s each" if len(set(self.timeouts_s)) == 1
                    else ", ".join(f"{t:g}" for t in self.timeouts_s) + " s")
            note = session.note + session.icmp_note if session is not None else ""
            status = PollStatus.UNREACHABLE
            reason = (f"no answer from {target.host}:{target.port} after {tries} "
                      f"{'try' if tries == 1 else 'tries'} ({each}{note})")
        except Exception as error:  # a bug or an engine failure: this device only
            status, reason = PollStatus.ERROR, f"{type(error).__name__}: {error}"
        finally:
            if session is not None:
                session.close()
                self.requests_sent += session.sent
            slot, users = self._device_slots[key]
            if users <= 1:
                del self._device_slots[key]
            else:
                self._device_slots[key] = (slot, users - 1)
        return status, _scrub(reason, target.credential), result

    def _pysnmp(self, credential: SnmpCredential) -> tuple[Any, _PysnmpValues]:
        """The pysnmp engine for `credential`: one per distinct credential, because an engine
        keeps one key set per USM user name (two devices with the same user name and other
        keys would overwrite each other's in a shared engine)."""
        material = "\0".join(
            "" if part is None else part.get_secret_value() if hasattr(part, "get_secret_value")
            else str(part) for part in (
                credential.version, credential.community, credential.username,
                credential.security_level, credential.auth_protocol, credential.auth_key,
                credential.priv_protocol, credential.priv_key))
        fingerprint = hashlib.sha256(material.encode()).hexdigest()
        engine = self._engines.get(fingerprint)
        if engine is None:
            from pysnmp.hlapi.v3arch.asyncio import SnmpEngine

            engine = self._engines[fingerprint] = SnmpEngine()
            engine.observer.register_observer(self._on_response, _RESPONSE_POINT)
        if self._values is None:
            self._values = _PysnmpValues()
        return engine, self._values

    def _on_response(self, _engine: Any, _point: str, variables: dict[str, Any],
                     _context: Any) -> None:
        """pysnmp observer: an SNMPv3 answer passed the USM checks; note its sender's
        authoritative engine id (msgAuthoritativeEngineID) by the sender's address."""
        address = variables.get("transportAddress")
        engine_id = variables.get("securityEngineId")
        if address is not None and engine_id is not None and variables.get(
                "securityModel") == 3:
            engine_id = bytes(engine_id.asOctets())
            if engine_id:
                self._peer_engine_ids[(str(address[0]), int(address[1]))] = engine_id

    async def _session(self, target: PollTarget) -> Any:
        credential = target.credential
        if credential.version in _VERSION_FIELDS and self.v2c_engine == "fast":
            return await _FastSession(target, self.timeouts_s).open()
        if self.v3_engine == "fast" and usm_user(credential) is not None:
            return await _FastSession(target, self.timeouts_s, self._usm_clock).open()
        return await _PysnmpSession(self, target, self.timeouts_s).open()

    async def _request(self, session: Any, slot: asyncio.Semaphore, oids: Sequence[Oid],
                       max_repetitions: int | None, non_repeaters: int = 0
                       ) -> tuple[int, int, list[VarBind], Callable[[int], str]]:
        if self._in_flight is None:
            self._in_flight = asyncio.Semaphore(self.max_in_flight)
        async with slot, self._in_flight:
            return await session.request(oids, max_repetitions, non_repeaters)

    async def _poll(self, session: Any, slot: asyncio.Semaphore,
                    device: tuple[str, int]) -> dict[str, Any]:
        problems = _Problems()
        tables = (IF_TABLE_COLUMNS, IF_X_TABLE_COLUMNS)
        lead: Sequence[tuple[str, Oid]] = ()
        if session.bulk:
            # the system group rides in the ifTable walk's first GETBULK as non-repeaters
            # (GETNEXT of each scalar's object): one request less per poll, every poll
            lead = _SYSTEM_NEXT
            if device in self._hc_devices:
                tables = (_IF_TABLE_BESIDE_HC, IF_X_TABLE_COLUMNS)
        else:
            system, system_count = await self._system(session, slot, problems)
            # SNMPv1 cannot carry Counter64 (RFC 2576 4.1.2.1): not asked
            tables = tuple(tuple(c for c in columns if c.syntax != "Counter64")
                           for columns in tables)
        # The tables one after the other: a request at a time per poll costs the collector
        # the least (no tasks, no extra loop turns), and a silent or refusing device gets one
        # request's tries. The counters count as read when the answer carrying sysUpTime
        # came (monotonic: never stepped, collectors.counters), not when the request went: a
        # retry waited out in between would put the interval and the agent's clock apart.
        read_at_s = time.monotonic()  # after the system group's GET (SNMPv1)
        walked: dict[str, dict[int, Any]] = {}
        for number, columns in enumerate(tables):
            table = await self._walk_columns(session, slot, columns, problems,
                                             single_index=True, lead=lead if number == 0 else ())
            walked.update(table.rows)
            if number == 0 and lead:
                read_at_s = table.first_answer_s
                system = _system_values(SYSTEM_OIDS, table.lead, table.lead_type_name,
                                        problems, next_of=True)
                system_count = len(table.lead)
        interfaces, labels, count = _readings(walked, system["sysUpTime.0"], read_at_s,
                                              problems)
        # Every interface with both ifHC octet counters: the next poll leaves the 32-bit
        # ones out (fewer varbinds, and on an agent that caps its answers, a request less).
        # One without them (a new interface, an agent changed): the next poll asks all again.
        if session.bulk and interfaces and all(
                reading.if_hc_in_octets is not None and reading.if_hc_out_octets is not None
                for reading in interfaces.values()):
            self._hc_devices.add(device)
        else:
            self._hc_devices.discard(device)
        return {"sys_uptime_cs": system["sysUpTime.0"], "sys_name": system["sysName.0"],
                "sys_descr": system["sysDescr.0"], "interfaces": interfaces,
                "interface_labels": labels, "varbind_count": count + system_count,
                "engine_id": session.engine_id, "problems": problems.lines()}

    async def _system(self, session: Any, slot: asyncio.Semaphore, problems: _Problems
                      ) -> tuple[dict[str, Any], int]:
        """The system group by GET (SNMPv1's way: a bulk session asks it with the first
        GETBULK, see `_poll`): ({name: value or None}, varbinds received). An object the
        agent does not serve, or serves with the wrong type, is a problem and None; an
        answer that does not fit the request is a failed poll."""
        wanted = list(SYSTEM_OIDS)
        while True:
            oids = [oid for _, oid in wanted]
            error_status, error_index, varbinds, type_name = await self._request(
                session, slot, oids, None)
            if error_status == 2 and 1 <= error_index <= len(wanted):
                # noSuchName: SNMPv1's word for a name the agent does not serve (the whole
                # GET fails; RFC 1157 4.1.2): drop that name and ask for the others again
                name, _ = wanted.pop(error_index - 1)
                problems.add(f"{name}: noSuchName; {_SYSTEM_SKIPPED[name]}")
                if not wanted:
                    return {name: None for name, _ in SYSTEM_OIDS}, 0
                continue
            _check_error_status(error_status, error_index, [name for name, _ in wanted])
            break
        if len(varbinds) != len(oids):
            raise _BadAnswer(f"system group: {len(varbinds)} values for {len(oids)} names")
        return _system_values(wanted, varbinds, type_name, problems), len(varbinds)

    async def _walk_columns(self, session: Any, slot: asyncio.Semaphore,
                            columns: Sequence[Column], problems: _Problems, *,
                            single_index: bool,
                            lead: Sequence[tuple[str, Oid]] = ()) -> _Walked:
        """Walk `columns` together: rows {name: {index: value}} (see `_Walked`). With
        `single_index` every row must have a one-part index, the key (an int), and a cell
        with another index is a problem; otherwise the key is the whole index suffix (a
        tuple). A cell whose value is not of its column's kind is skipped and named in
        `problems`.

        GETBULK, or, for a session without it (SNMPv1), GETNEXT: one row per request, and a
        column that has run off the end of the agent's MIB comes back as error-status
        noSuchName at its position (RFC 2576 4.1.2.2.1): that column is done, the others
        are asked again. `lead` (GETBULK only): (name, OID)s the first request also asks
        once, as its non-repeaters."""
        found: dict[str, dict[Any, Any]] = {column.name: {} for column in columns}
        pending: list[tuple[Column, Oid]] = [(column, column.oid) for column in columns]
        first_answer_s: float | None = None
        max_repetitions = self.max_repetitions
        bulk = session.bulk
        if lead and not bulk:
            raise ValueError("lead OIDs need GETBULK")
        lead_answer: tuple[list[VarBind], Callable[[int], str]] = ([], _no_type_name)
        pdu = "GETBULK" if bulk else "GETNEXT"
        while pending:
            width = len(pending)
            ahead = len(lead)
            error_status, error_index, varbinds, type_name = await self._request(
                session, slot, [*(oid for _, oid in lead), *(last for _, last in pending)],
                max_repetitions, ahead)
            answer_s = time.monotonic()
            if bulk:
                if error_status == 1 and max_repetitions > 1:  # tooBig: ask for fewer rows
                    max_repetitions = max(1, max_repetitions // 2)
                    continue
                per_column = max_repetitions
            else:
                if error_status == 2 and 1 <= error_index <= width:
                    del pending[error_index - 1]  # that column has ended (see above)
                    continue
                per_column = 1
            _check_error_status(error_status, error_index,
                                [*(name for name, _ in lead),
                                 *(c.name for c, _ in pending)])
            if ahead:
                if len(varbinds) < ahead:
                    raise _BadAnswer(f"{pdu} answer has {len(varbinds)} values, fewer than "
                                     f"its {ahead} non-repeaters")
                lead_answer = (varbinds[:ahead], type_name)
                varbinds = varbinds[ahead:]
                type_name = _shifted(type_name, ahead)
                lead = ()
            if not varbinds:
                raise _BadAnswer(f"empty {pdu} answer walking {pending[0][0].name}")
            if len(varbinds) > width * per_column:
                raise _BadAnswer(f"{pdu} answer has {len(varbinds)} values, more than the "
                                 f"{width} x {per_column} asked for")
            still: list[tuple[Column, Oid]] = []
            for position, (column, last) in enumerate(pending):
                name, prefix, kind = column.name, column.oid, column.kind
                size = len(prefix)
                rows = found[name]
                ended = False
                for oid, value in varbinds[position::width]:
                    if value is END_OF_MIB_VIEW or oid[:size] != prefix:
                        ended = True
                        break
                    if oid <= last:
                        raise _BadAnswer(f"{name}: OID not increasing ({_dotted(last)} "
                                         f"then {_dotted(oid)}): the agent loops")
                    last = oid
                    if single_index:
                        if len(oid) != size + 1:
                            problems.add(f"{name}.{_dotted(oid[size:])}: not a one-part index"
                                         f"; skipped")
                            continue
                        index: Any = oid[-1]
                    else:
                        index = oid[size:]
                    if kind is not None and type(value) is not kind:
                        where = varbinds.index((oid, value), position)
                        problems.add(f"{name}.{_dotted(oid[size:])}: {type_name(where)} where "
                                     f"{column.syntax} expected; skipped")
                        continue
                    rows[index] = value
                if not ended:
                    if len(rows) > MAX_ROWS_PER_COLUMN or problems.count > MAX_ROWS_PER_COLUMN:
                        raise _BadAnswer(f"{name}: more than {MAX_ROWS_PER_COLUMN} rows")
                    still.append((column, last))
            if still and [last for _, last in still] == [last for _, last in pending]:
                raise _BadAnswer(f"{pdu} answer did not advance {still[0][0].name}")
            pending = still
            if first_answer_s is None:
                first_answer_s = answer_s
        return _Walked(found, *lead_answer, first_answer_s or time.monotonic())


class _Walked(NamedTuple):
    """What `SnmpPoller._walk_columns` found: `rows` {column name: {index: value}}; the lead
    OIDs' answer (`lead` varbinds, GETNEXT's: each the next OID after the one asked, and
    the wire type name of varbind i of them); when the first answer that passed its checks
    came (monotonic seconds)."""

    rows: dict[str, dict[Any, Any]]
    lead: list[VarBind]
    lead_type_name: Callable[[int], str]
    first_answer_s: float


def _system_values(wanted: Sequence[tuple[str, Oid]], varbinds: Sequence[VarBind],
                   type_name: Callable[[int], str], problems: _Problems, *,
                   next_of: bool = False) -> dict[str, Any]:
    """The system group's values from an answer to `wanted` ({name: value or None}): by GET,
    or, `next_of`, by GETNEXT of each one's object (an agent without the instance answers
    the next OID it has: that one is not served, as a GET's noSuchInstance says). A value
    of the wrong type is a problem and None; a GET answering other names fails the poll."""
    values: dict[str, Any] = {name: None for name, _ in SYSTEM_OIDS}
    for position, ((name, oid), (got_oid, value)) in enumerate(
            zip(wanted, varbinds, strict=True)):
        if got_oid != oid:
            if not next_of:
                raise _BadAnswer(f"system group: asked for {name}, got {_dotted(got_oid)}")
            problems.add(f"{name}: noSuchInstance; {_SYSTEM_SKIPPED[name]}")
            continue
        if isinstance(value, SnmpException):
            problems.add(f"{name}: {value.name}; {_SYSTEM_SKIPPED[name]}")
            continue
        if name == "sysUpTime.0":
            if type(value) is not int:
                problems.add(f"sysUpTime.0: {type_name(position)} where TimeTicks "
                             f"expected; {_SYSTEM_SKIPPED[name]}")
                continue
            if not 0 <= value < TIMETICKS_MODULUS:
                problems.add(f"sysUpTime.0: {value} out of range 0..{TIMETICKS_MODULUS - 1}"
                             f"; {_SYSTEM_SKIPPED[name]}")
                continue
        elif type(value) is bytes:
            value = value.decode("utf-8", errors="replace")
        else:
            problems.add(f"{name}: {type_name(position)} where OCTET STRING expected; "
                         f"{_SYSTEM_SKIPPED[name]}")
            continue
        values[name] = value
    return values


def _shifted(type_name: Callable[[int], str], by: int) -> Callable[[int], str]:
    return lambda index: type_name(index + by)


def _no_type_name(index: int) -> str:
    raise IndexError(index)


def _check_error_status(error_status: int, error_index: int, names: Sequence[str]) -> None:
    if not error_status:
        return
    status = ERROR_STATUS_NAMES.get(error_status, "unknown")
    where = (f" at {names[error_index - 1]}" if 1 <= error_index <= len(names)
             else f" (error-index {error_index})" if error_index else "")
    raise _BadAnswer(f"agent answered error-status {status} ({error_status}){where}")


_COLUMNS = {column.name: column for column in IF_TABLE_COLUMNS + IF_X_TABLE_COLUMNS}
_MIB_NAMES = {column.field: column.name for column in _COLUMNS.values()}
_SYSTEM_SKIPPED = {
    "sysUpTime.0": "skipped: agent restarts go unseen and rates are judged by the wall clock alone",
    "sysName.0": "skipped",
    "sysDescr.0": "skipped",
}


def _readings(walked: dict[str, dict[int, Any]], sys_uptime_cs: int | None, read_at_s: float,
              problems: _Problems
              ) -> tuple[dict[int, InterfaceReading], dict[int, InterfaceLabel], int]:
    """An `InterfaceReading` and an `InterfaceLabel` for every ifTable row the walk found
    (values already of their column's kind); a value out of its field's range is a problem
    and left out, the rest of the row stands."""
    indexes: set[int] = set()
    for column in IF_TABLE_COLUMNS:
        indexes.update(walked.get(column.name, ()))
    count = sum(len(rows) for rows in walked.values())
    numeric: list[tuple[str, dict[int, Any]]] = []
    texts: list[tuple[str, dict[int, Any]]] = []
    for name, rows in walked.items():
        field = _COLUMNS[name].field
        if field in ("label:if_name", "label:if_descr"):
            texts.append((field[6:], rows))
        elif not field.startswith("label:"):
            numeric.append((field, rows))
    if_types = walked.get("ifType", {})
    interfaces: dict[int, InterfaceReading] = {}
    labels: dict[int, InterfaceLabel] = {}
    for index in sorted(indexes):
        numbers = {field: rows[index] for field, rows in numeric if index in rows}
        try:
            interfaces[index] = InterfaceReading(if_index=index, sys_uptime_cs=sys_uptime_cs,
                                                 read_at_s=read_at_s, **numbers)
        except ValueError:
            for field, value in list(numbers.items()):
                limit = field_out_of_range(field, value)
                if limit is not None:
                    problems.add(f"{_MIB_NAMES[field]}.{index}: {value} out of range {limit}; "
                                 f"skipped")
                    del numbers[field]
            try:
                interfaces[index] = InterfaceReading(
                    if_index=index, sys_uptime_cs=sys_uptime_cs, read_at_s=read_at_s, **numbers)
            except ValueError as error:
                raise _BadAnswer(f"ifIndex {index}: {error}") from None
        labels[index] = InterfaceLabel(
            if_type=if_types.get(index),
            **{name: rows[index].decode("utf-8", errors="replace")
               for name, rows in texts if index in rows})
    return interfaces, labels, count


def _dotted(oid: Oid) -> str:
    return ".".join(map(str, oid))


def _scrub(reason: str | None, credential: SnmpCredential) -> str | None:
    """The reason with any secret of `credential` masked (belt and braces)."""
    if reason is None:
        return None
    for secret in (credential.community, credential.auth_key, credential.priv_key):
        if secret is not None:
            value = secret.get_secret_value()
            if value and value in reason:
                reason = reason.replace(value, "***")
    return reason
