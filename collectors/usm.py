"""SNMPv3's User-based Security Model (USM) for the own codec: keys, the signed and encrypted
message, engine discovery, time windows and report PDUs.

What SNMPv3 adds to v2c. The PDU (GET, GETBULK, Response: collectors.snmp_fast) travels in
a different envelope (RFC 3412), and the community is replaced by a user whose two passwords
sign (authentication) and encrypt (privacy) every message (RFC 3414)::

    SEQUENCE {
      msgVersion            INTEGER 3
      msgGlobalData         SEQUENCE { msgID, msgMaxSize, msgFlags (1 byte: 1 auth,
                                       2 priv, 4 reportable), msgSecurityModel (3 = USM) }
      msgSecurityParameters OCTET STRING holding SEQUENCE {
                              msgAuthoritativeEngineID, ...EngineBoots, ...EngineTime,
                              msgUserName, msgAuthenticationParameters (the MAC),
                              msgPrivacyParameters (the salt) }
      msgData               the scoped PDU SEQUENCE { contextEngineID, contextName, PDU },
                            or with privacy an OCTET STRING of it encrypted
    }

Keys are never the passwords. A password becomes a key by hashing 1 MiB of the password
repeated (RFC 3414 A.2.1, "password to key", Ku), then the key is *localised* to the agent
that will check it: Kul = H(Ku || snmpEngineID || Ku) (A.2.2), so a key stolen from one agent
opens no other. The hash is the authentication protocol's: MD5, SHA-1 (RFC 3414), SHA-224,
-256, -384, -512 (RFC 7860). The privacy key is the privacy password localised the same way,
with the same hash. Both cost a few milliseconds, once per (password, agent): cached.

Authentication: HMAC of the whole message with the MAC field zeroed, truncated (12 bytes for
MD5 and SHA-1, 16/24/32/48 for SHA-224/256/384/512), then written into that field.

Privacy: AES in CFB-128 mode (RFC 3826); the key is the first 16, 24 or 32 bytes of the
localised privacy key; the IV is engineBoots (4 bytes) || engineTime (4 bytes) || an 8-byte
salt that changes with every message and travels as msgPrivacyParameters. AES-192 and
AES-256 need more key than a SHA-1 or MD5 localised key holds, and two extensions exist:
Blumenthal's draft (draft-blumenthal-aes-usm-04, Net-SNMP's AES-192/AES-256: append
H(key so far) until long enough) and Reeder's "3DES-style" one (draft-reeder-snmpv3-usm-
3desede-00, Cisco's, pysnmp's and snmpsim's AES192/AES256, Net-SNMP's AES-256-C: append the
localisation of password-to-key(key so far)). Keyline names them as its inventory and
collectors.snmp do: "AES192"/"AES256" are Reeder's, "AES192B"/"AES256B" Blumenthal's. With a
hash as long as the key (SHA-256 and up for AES-256) there is nothing to extend and both agree.

Discovery and time (RFC 3414 section 4). The agent is *authoritative*: its snmpEngineID keys
the localisation, and its engineBoots/engineTime bound every message's freshness (150 s). A
manager first sends an empty unauthenticated request; the agent answers with a Report PDU
(usmStatsUnknownEngineIDs) carrying its engine id, boots and time. `EngineClock` keeps that,
per agent, and advances it with the local monotonic clock; an authenticated answer moves it
forward; a usmStatsNotInTimeWindows report (authenticated) resets it, and the request is
signed again.

Reports. An agent that rejects a message answers with a Report PDU naming a usmStats counter;
`decode_report` turns it into a `UsmReport` error whose text names the cause (unknown user
name, wrong digest, decryption error...) and never a key, a password or a MAC. An answer that
fails our own checks (bad MAC, stale time, wrong engine) is a `UsmError` as well. Reports
may come unauthenticated (the agent could not check us): those end a poll, or (unknown engine
id) start a new discovery; only an authenticated one resynchronises the clock. Which failures
a poller calls "the credential was rejected" is `UsmReport.auth`.

The primitives (HMAC, AES) come from hashlib/hmac and the `cryptography` package; everything
else is this module's: it encodes and decodes with snmp_fast's BER helpers, at a few
microseconds per message on top of the v2c cost.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from collectors.snmp_fast import (
    OCTET_STRING,
    SEQUENCE,
    BerError,
    Response,
    _extent,
    _header,
    _int,
    _integer,
    _tlv,
    decode_pdu,
    encode_pdu,
)

__all__ = [
    "AUTH_PROTOCOLS",
    "PRIV_PROTOCOLS",
    "AuthProtocol",
    "EngineClock",
    "Message",
    "PrivProtocol",
    "UsmError",
    "UsmKeys",
    "UsmReport",
    "UsmUser",
    "decode_message",
    "decode_report",
    "encode_discovery",
    "encode_message",
    "localize_key",
    "localized_keys",
    "open_message",
    "password_to_key",
]

SNMP_V3 = 3
USM_SECURITY_MODEL = 3
MAX_MESSAGE_SIZE = 65507
"""msgMaxSize we announce: the largest UDP payload over IPv4."""
TIME_WINDOW_S = 150
"""RFC 3414 2.2.3: a message more than this far behind the agent's clock is stale."""
MAX_ENGINE_BOOTS = 2**31 - 1
FLAG_AUTH, FLAG_PRIV, FLAG_REPORTABLE = 0x01, 0x02, 0x04
PDU_REPORT = 0xA8
PASSWORD_TO_KEY_BYTES = 1_048_576
"""RFC 3414 A.2.1: the password repeated to 1 MiB and hashed."""
MIN_PASSWORD_LENGTH = 8
"""RFC 3414 11.2: shorter passwords are refused (agents refuse them too)."""


class UsmError(BerError):
    """An SNMPv3 message fails a USM check (ours or, as `UsmReport`, the agent's). The text
    names the check, never a key or a password."""


class UsmReport(UsmError):
    """The agent answered with a Report PDU: `counter` is the usmStats (or other) counter's
    name. `auth`: the agent rejected the credential (as opposed to a clock or engine matter
    that a new discovery or a resync fixes)."""

    def __init__(self, counter: str, message: str, *, auth: bool) -> None:
        super().__init__(message)
        self.counter = counter
        self.auth = auth


@dataclass(frozen=True, slots=True)
class AuthProtocol:
    name: str
    hash_name: str  # hashlib's
    mac_bytes: int  # the truncated HMAC carried in msgAuthenticationParameters


@dataclass(frozen=True, slots=True)
class PrivProtocol:
    name: str
    key_bytes: int
    extension: str  # "none", "blumenthal" or "reeder"


AUTH_PROTOCOLS: dict[str, AuthProtocol] = {
    name: AuthProtocol(name, hash_name, mac_bytes) for name, hash_name, mac_bytes in (
        ("MD5", "md5", 12), ("SHA", "sha1", 12), ("SHA1", "sha1", 12),
        ("SHA224", "sha224", 16), ("SHA256", "sha256", 24), ("SHA384", "sha384", 32),
        ("SHA512", "sha512", 48))}
PRIV_PROTOCOLS: dict[str, PrivProtocol] = {
    name: PrivProtocol(name, key_bytes, extension) for name, key_bytes, extension in (
        ("AES", 16, "none"), ("AES128", 16, "none"),
        ("AES192", 24, "reeder"), ("AES256", 32, "reeder"),
        ("AES192B", 24, "blumenthal"), ("AES256B", 32, "blumenthal"))}

USM_STATS = (1, 3, 6, 1, 6, 3, 15, 1, 1)
# usmStats counters (RFC 3414 5): (counter, short name as pysnmp's error indications say it,
# what it means to the operator, whether it rejects the credential)
_USM_REPORTS: dict[int, tuple[str, str, str, bool]] = {
    1: ("usmStatsUnsupportedSecLevels", "unsupportedSecLevel",
        "the agent does not support this security level for the user", True),
    2: ("usmStatsNotInTimeWindows", "notInTimeWindow",
        "the message was outside the agent's time window", False),
    3: ("usmStatsUnknownUserNames", "unknownUserName",
        "the agent does not know this user name", True),
    4: ("usmStatsUnknownEngineIDs", "unknownEngineID",
        "the message named an engine id the agent does not have", False),
    5: ("usmStatsWrongDigests", "wrongDigest", "the authentication password or protocol "
        "differs from the agent's", True),
    6: ("usmStatsDecryptionErrors", "decryptionError", "the agent could not decrypt the "
        "message: the privacy password or protocol differs from the agent's", True),
}
_OTHER_REPORTS: dict[tuple[int, ...], str] = {
    (1, 3, 6, 1, 6, 3, 11, 2, 1, 1): "snmpUnknownSecurityModels",
    (1, 3, 6, 1, 6, 3, 11, 2, 1, 2): "snmpInvalidMsgs",
    (1, 3, 6, 1, 6, 3, 11, 2, 1, 3): "snmpUnknownPDUHandlers",
    (1, 3, 6, 1, 6, 3, 12, 1, 4): "snmpUnavailableContexts",
    (1, 3, 6, 1, 6, 3, 12, 1, 5): "snmpUnknownContexts",
}


# --- keys ----------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def password_to_key(password: bytes, hash_name: str) -> bytes:
    """Ku: the hash of `password` repeated to 1 MiB (RFC 3414 A.2.1; RFC 7860 for SHA-2)."""
    if not password:
        raise UsmError("an SNMPv3 password is empty")
    repeated = password * (PASSWORD_TO_KEY_BYTES // len(password) + 1)
    return hashlib.new(hash_name, repeated[:PASSWORD_TO_KEY_BYTES]).digest()


def localize_key(key: bytes, engine_id: bytes, hash_name: str) -> bytes:
    """Kul = H(Ku || snmpEngineID || Ku) (RFC 3414 A.2.2)."""
    return hashlib.new(hash_name, key + engine_id + key).digest()


def _extend(key: bytes, engine_id: bytes, hash_name: str, wanted: int, extension: str
            ) -> bytes:
    """`key` lengthened to `wanted` bytes by the privacy protocol's extension (module
    docstring): Blumenthal appends H(key so far), Reeder the localisation of
    password-to-key(key so far)."""
    while len(key) < wanted:
        if extension == "blumenthal":
            key += hashlib.new(hash_name, key).digest()
        elif extension == "reeder":
            key += localize_key(password_to_key(key, hash_name), engine_id, hash_name)
        else:
            raise UsmError(f"the privacy key is {len(key)} bytes, {wanted} needed")
    return key[:wanted]


@dataclass(frozen=True, slots=True)
class UsmUser:
    """An SNMPv3 user as the codec needs it. `auth`/`priv` are protocol names of
    AUTH_PROTOCOLS/PRIV_PROTOCOLS (None: that service is off); passwords as bytes (the
    caller reveals its SecretStr here and nowhere else). repr() shows no password."""

    name: bytes
    auth: str | None = None
    auth_password: bytes = b""
    priv: str | None = None
    priv_password: bytes = b""

    def __post_init__(self) -> None:
        if self.auth is not None and self.auth not in AUTH_PROTOCOLS:
            raise UsmError(f"unsupported SNMPv3 auth protocol {self.auth!r}")
        if self.priv is not None and self.priv not in PRIV_PROTOCOLS:
            raise UsmError(f"unsupported SNMPv3 privacy protocol {self.priv!r}")
        if self.priv is not None and self.auth is None:
            raise UsmError("SNMPv3 privacy needs authentication (authPriv)")
        for what, password, on in (("auth", self.auth_password, self.auth),
                                   ("privacy", self.priv_password, self.priv)):
            if on is not None and len(password) < MIN_PASSWORD_LENGTH:
                raise UsmError(f"the SNMPv3 {what} password is shorter than "
                               f"{MIN_PASSWORD_LENGTH} characters (RFC 3414 11.2)")

    def __repr__(self) -> str:
        return f"UsmUser(name={self.name!r}, auth={self.auth!r}, priv={self.priv!r})"

    @property
    def flags(self) -> int:
        return ((FLAG_AUTH if self.auth else 0) | (FLAG_PRIV if self.priv else 0))


@dataclass(frozen=True, slots=True)
class UsmKeys:
    """A user's keys localised to one agent's engine id. repr() shows no key."""

    auth: AuthProtocol | None
    auth_key: bytes
    priv: PrivProtocol | None
    priv_key: bytes

    def __repr__(self) -> str:
        return (f"UsmKeys(auth={self.auth and self.auth.name!r}, "
                f"priv={self.priv and self.priv.name!r})")


@lru_cache(maxsize=4096)
def localized_keys(user: UsmUser, engine_id: bytes) -> UsmKeys:
    """`user`'s keys for the agent `engine_id` (cached: a few ms of hashing each)."""
    if user.auth is None:
        return UsmKeys(None, b"", None, b"")
    auth = AUTH_PROTOCOLS[user.auth]
    auth_key = localize_key(password_to_key(user.auth_password, auth.hash_name), engine_id,
                            auth.hash_name)
    if user.priv is None:
        return UsmKeys(auth, auth_key, None, b"")
    priv = PRIV_PROTOCOLS[user.priv]
    priv_key = localize_key(password_to_key(user.priv_password, auth.hash_name), engine_id,
                            auth.hash_name)
    return UsmKeys(auth, auth_key, priv,
                   _extend(priv_key, engine_id, auth.hash_name, priv.key_bytes, priv.extension))


# --- the agent's clock ---------------------------------------------------------------------


@dataclass(slots=True)
class _Engine:
    engine_id: bytes
    boots: int
    time_s: int
    learned_at_s: float  # monotonic


class EngineClock:
    """What a manager knows of each agent (by address): its snmpEngineID, engineBoots and
    engineTime, advanced with the local monotonic clock (RFC 3414 2.3, the non-authoritative
    side). One per poller: a discovery is paid once per agent, not once per poll."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._engines: dict[tuple[str, int], _Engine] = {}

    def get(self, address: tuple[str, int]) -> tuple[bytes, int, int] | None:
        """(engine id, boots, time now) of the agent at `address`, None before discovery."""
        engine = self._engines.get(address)
        if engine is None:
            return None
        elapsed_s = int(self._monotonic() - engine.learned_at_s)
        return engine.engine_id, engine.boots, engine.time_s + elapsed_s

    def learn(self, address: tuple[str, int], engine_id: bytes, boots: int, time_s: int
              ) -> None:
        """Set the agent's engine id and clock (discovery, a NotInTimeWindows report)."""
        self._engines[address] = _Engine(engine_id, boots, time_s, self._monotonic())

    def forget(self, address: tuple[str, int]) -> None:
        self._engines.pop(address, None)

    def check(self, address: tuple[str, int], boots: int, time_s: int) -> None:
        """An authenticated answer's boots and time: move the clock forward if it is ahead
        (RFC 3414 3.2.7 b), `UsmError` if it is stale (a replay or a rebooted clock)."""
        engine = self._engines.get(address)
        if engine is None:
            return
        _, local_boots, local_time = self.get(address)  # type: ignore[misc]
        if boots == MAX_ENGINE_BOOTS or boots < local_boots or (
                boots == local_boots and time_s < local_time - TIME_WINDOW_S):
            raise UsmError(f"the answer is outside the time window (engine boots {boots}, "
                           f"time {time_s}; expected boots {local_boots}, time near "
                           f"{local_time})")
        if boots > local_boots or time_s > local_time:
            self.learn(address, engine.engine_id, boots, time_s)


# --- encoding ------------------------------------------------------------------------------

_salts = itertools.count(int.from_bytes(os.urandom(8), "big"))
"""The AES salt: a 64-bit counter from a random start (RFC 3826 3.1.2.1): never one IV twice
under one key in this process."""


def _aes(key: bytes, boots: int, time_s: int, salt: bytes, data: bytes, *, encrypt: bool
         ) -> bytes:
    iv = boots.to_bytes(4, "big") + time_s.to_bytes(4, "big") + salt
    cipher = Cipher(algorithms.AES(key), CFB(iv))
    context = cipher.encryptor() if encrypt else cipher.decryptor()
    return context.update(data) + context.finalize()


def encode_message(user: UsmUser, keys: UsmKeys, msg_id: int, pdu: bytes, *,
                   engine_id: bytes, boots: int, time_s: int, context_name: bytes = b"",
                   reportable: bool = True) -> bytes:
    """A signed (and, with privacy, encrypted) SNMPv3 message carrying `pdu`
    (snmp_fast.encode_pdu) to the agent `engine_id` whose clock reads `boots`, `time_s`."""
    scoped = _tlv(SEQUENCE, _tlv(OCTET_STRING, engine_id) + _tlv(OCTET_STRING, context_name)
                  + pdu)
    flags = user.flags | (FLAG_REPORTABLE if reportable else 0)
    salt = b""
    if keys.priv is not None:
        salt = (next(_salts) % 2**64).to_bytes(8, "big")
        data = _tlv(OCTET_STRING, _aes(keys.priv_key, boots, time_s, salt, scoped,
                                       encrypt=True))
    else:
        data = scoped
    mac_bytes = keys.auth.mac_bytes if keys.auth is not None else 0
    head = (_tlv(OCTET_STRING, engine_id) + _integer(boots) + _integer(time_s)
            + _tlv(OCTET_STRING, user.name))
    tail = _tlv(OCTET_STRING, salt)
    auth_field = _tlv(OCTET_STRING, bytes(mac_bytes))
    security = _tlv(OCTET_STRING, _tlv(SEQUENCE, head + auth_field + tail))
    front = (_integer(SNMP_V3)
             + _tlv(SEQUENCE, _integer(msg_id) + _integer(MAX_MESSAGE_SIZE)
                    + _tlv(OCTET_STRING, bytes((flags,))) + _integer(USM_SECURITY_MODEL)))
    message = _tlv(SEQUENCE, front + security + data)
    if keys.auth is None:
        return message
    # the MAC field sits right before the salt field, at the end of the security parameters
    mac_at = len(message) - len(data) - len(tail) - mac_bytes
    mac = hmac.digest(keys.auth_key, message, keys.auth.hash_name)[:mac_bytes]
    return message[:mac_at] + mac + message[mac_at + mac_bytes:]


def encode_discovery(msg_id: int, request_id: int) -> bytes:
    """The engine discovery request (RFC 3414 4): unauthenticated, reportable, no engine id,
    no user, an empty GET. The agent answers with a usmStatsUnknownEngineIDs report."""
    return encode_message(UsmUser(b""), UsmKeys(None, b"", None, b""), msg_id,
                          encode_pdu(request_id, ()), engine_id=b"", boots=0, time_s=0)


# --- decoding ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    """An SNMPv3 message as parsed, before any check: `open_message` checks and opens it."""

    data: bytes
    msg_id: int
    flags: int
    engine_id: bytes
    boots: int
    time_s: int
    user_name: bytes
    mac_at: int  # where msgAuthenticationParameters' content starts in `data`
    mac: bytes
    salt: bytes
    payload_at: int  # msgData: the scoped PDU SEQUENCE, or the encrypted OCTET STRING


def decode_message(data: bytes) -> Message:
    """Parse an SNMPv3/USM message's envelope (no check of MAC or time: `open_message`);
    `BerError` naming what is wrong and where when it is not one."""
    try:
        return _decode_message(data)
    except IndexError as error:
        raise BerError(f"truncated or malformed SNMPv3 message ({error})") from None


def _decode_message(data: bytes) -> Message:
    size = len(data)
    pos, end = _header(data, 0, size, SEQUENCE, "message")
    if end != size:
        raise BerError(f"{size - end} byte(s) after the end of the message")
    version, pos = _int(data, pos, size, "version")
    if version != SNMP_V3:
        raise BerError(f"version {version}, expected 3 (SNMPv3)")
    start, global_end = _header(data, pos, size, SEQUENCE, "msgGlobalData")
    msg_id, pos = _int(data, start, global_end, "msgID")
    _, pos = _int(data, pos, global_end, "msgMaxSize")
    start, pos = _header(data, pos, global_end, OCTET_STRING, "msgFlags")
    if pos - start != 1:
        raise BerError(f"msgFlags of {pos - start} bytes at offset {start}")
    flags = data[start]
    model, pos = _int(data, pos, global_end, "msgSecurityModel")
    if model != USM_SECURITY_MODEL:
        raise BerError(f"msgSecurityModel {model}, expected 3 (USM)")
    if pos != global_end:
        raise BerError("bytes after msgSecurityModel")
    start, security_end = _header(data, global_end, size, OCTET_STRING,
                                  "msgSecurityParameters")
    pos, parameters_end = _header(data, start, security_end, SEQUENCE, "UsmSecurityParameters")
    if parameters_end != security_end:
        raise BerError("bytes after UsmSecurityParameters")
    start, pos = _header(data, pos, security_end, OCTET_STRING, "msgAuthoritativeEngineID")
    engine_id = data[start:pos]
    boots, pos = _int(data, pos, security_end, "msgAuthoritativeEngineBoots")
    time_s, pos = _int(data, pos, security_end, "msgAuthoritativeEngineTime")
    if not 0 <= boots <= MAX_ENGINE_BOOTS or not 0 <= time_s <= MAX_ENGINE_BOOTS:
        raise BerError("engine boots or time out of range 0..2147483647")
    start, pos = _header(data, pos, security_end, OCTET_STRING, "msgUserName")
    user_name = data[start:pos]
    mac_at, pos = _header(data, pos, security_end, OCTET_STRING, "msgAuthenticationParameters")
    mac = data[mac_at:pos]
    start, pos = _header(data, pos, security_end, OCTET_STRING, "msgPrivacyParameters")
    salt = data[start:pos]
    if pos != security_end:
        raise BerError("bytes after msgPrivacyParameters")
    if security_end >= size:
        raise BerError(f"truncated: msgData missing at offset {security_end}")
    tag = data[security_end]
    if tag not in (SEQUENCE, OCTET_STRING):
        raise BerError(f"msgData: expected a scoped PDU or an encrypted one, found tag "
                       f"0x{tag:02x} at offset {security_end}")
    if _extent(data, security_end, size, "msgData")[1] != size:
        raise BerError("msgData does not end where the message ends")
    return Message(data, msg_id, flags, engine_id, boots, time_s, user_name, mac_at, mac,
                   salt, security_end)


def open_message(message: Message, user: UsmUser, keys: UsmKeys | None) -> tuple[int, Response]:
    """Check `message` as an answer for `user` and open it: (PDU tag, fields). `keys`:
    `user`'s for the message's engine id (None for an unauthenticated report).

    A message flagged authenticated must carry the right MAC; one flagged private is
    decrypted. A Report PDU may come with less protection than asked (the agent could not
    check us); any other PDU must have exactly the user's security level."""
    data = message.data
    if message.flags & FLAG_AUTH:
        if keys is None or keys.auth is None:
            raise UsmError("an authenticated answer to an unauthenticated user")
        if len(message.mac) != keys.auth.mac_bytes:
            raise UsmError(f"the answer's MAC is {len(message.mac)} bytes, "
                           f"{keys.auth.mac_bytes} expected for {keys.auth.name}")
        zeroed = (data[:message.mac_at] + bytes(len(message.mac))
                  + data[message.mac_at + len(message.mac):])
        digest = hmac.digest(keys.auth_key, zeroed, keys.auth.hash_name)
        if not hmac.compare_digest(digest[:len(message.mac)], message.mac):
            raise UsmError("the answer's MAC is wrong: not signed with this user's key "
                           "(a wrong authentication password or protocol, or a forgery)")
        if message.user_name != user.name:
            raise UsmError("the answer is for another user name")
    pos, end = message.payload_at, len(data)
    if message.flags & FLAG_PRIV:
        if not message.flags & FLAG_AUTH or keys is None or keys.priv is None:
            raise UsmError("an encrypted answer to a user without privacy")
        start, end = _header(data, pos, end, OCTET_STRING, "encryptedPDU")
        if len(message.salt) != 8:
            raise UsmError(f"msgPrivacyParameters of {len(message.salt)} bytes, 8 expected "
                           f"for AES")
        data = _aes(keys.priv_key, message.boots, message.time_s, message.salt,
                    data[start:end], encrypt=False)
        pos, end = 0, len(data)
        if not data or data[0] != SEQUENCE:
            raise UsmError("the answer does not decrypt to a scoped PDU: a wrong privacy "
                           "password or protocol")
    elif data[pos] != SEQUENCE:
        raise UsmError("an encrypted answer not flagged as encrypted")
    start, scoped_end = _header(data, pos, end, SEQUENCE, "scopedPDU")
    if scoped_end != end:
        raise BerError("bytes after the scoped PDU")
    _, pos = _header(data, start, end, OCTET_STRING, "contextEngineID")
    _, pos = _header(data, pos, end, OCTET_STRING, "contextName")
    pdu_tag, response = decode_pdu(data, pos, end)
    if pdu_tag != PDU_REPORT and message.flags & (FLAG_AUTH | FLAG_PRIV) != user.flags:
        raise UsmError(f"the answer's security level (flags {message.flags & 3}) differs "
                       f"from the request's ({user.flags})")
    return pdu_tag, response


def decode_report(response: Response) -> UsmReport:
    """The error a Report PDU stands for (its first varbind names a counter)."""
    if not response.varbinds:
        return UsmReport("report", "the agent answered with an empty report", auth=False)
    oid = response.varbinds[0][0]
    if oid[:len(USM_STATS)] == USM_STATS and len(oid) == len(USM_STATS) + 2:
        known = _USM_REPORTS.get(oid[len(USM_STATS)])
        if known is not None:
            counter, short, meaning, auth = known
            return UsmReport(counter, f"{short}: {meaning} ({counter})", auth=auth)
    counter = _OTHER_REPORTS.get(oid[:-1]) or _OTHER_REPORTS.get(oid) or ".".join(
        map(str, oid))
    return UsmReport(counter, f"the agent answered with a report ({counter})", auth=False)

