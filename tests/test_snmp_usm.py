"""SNMPv3 USM in the own codec (collectors.usm, snmp_fast.V3Session), checked three ways.

- Known answers: RFC 3414 A.3's key localisation vectors (MD5, SHA-1); the SHA-2 keys
  (RFC 7860 gives no vectors) and both AES-192/256 key extensions against pysnmp's own
  implementation.
- pysnmp decodes what we encode: our message parsed by pysnmp's ASN.1 types, its MAC checked
  and its PDU decrypted by pysnmp's USM services; and what pysnmp encodes (snmpsim, a pysnmp
  agent, one engine per protocol pair) we poll and decode, giving the same PollResult as
  pysnmp's own manager.
- Net-SNMP's snmpd on loopback with v3 users SHA/AES, SHA-256/AES-256 (Blumenthal: Net-SNMP's
  AES-256), SHA/AES-256 (Blumenthal with the key extended) and SHA/AES-256-C (Reeder, Cisco's):
  polls, engine discovery, the time-window resync, a changed engine id, and the reports for
  an unknown user, a wrong digest and an unsupported security level, whose texts carry no
  secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Iterator

# pysnmp's USM modules import each other in a cycle that only resolves from its top package:
# loaded here once, so the tests below can import the services they compare with
import pysnmp.hlapi.v3arch.asyncio  # noqa: F401
import pytest
from pydantic import SecretStr

from collectors import snmp_fast, usm
from collectors.model import PollResult, PollStatus, PollTarget, SnmpCredential
from collectors.snmp import SnmpPoller, usm_user
from tests.snmp_agents import (
    SYS_NAME,
    V3_AUTH_KEY,
    V3_PRIV_KEY,
    V3_USER,
    NetSnmpAgent,
    SnmpsimAgents,
    if_indexes,
    snmpsim_installed,
)
from tests.test_snmp_poller import comparable

SYS_NAME_OID = (1, 3, 6, 1, 2, 1, 1, 5, 0)
IF_DESCR = (1, 3, 6, 1, 2, 1, 2, 2, 1, 2)
INTERFACES = 12
AUTH_PASSWORD = "auth-pass-for-usm-1"
PRIV_PASSWORD = "priv-pass-for-usm-1"
WRONG_PASSWORD = "wrong-pass-for-usm-9"
SECRETS = (AUTH_PASSWORD, PRIV_PASSWORD, WRONG_PASSWORD, V3_AUTH_KEY, V3_PRIV_KEY)
RFC3414_ENGINE_ID = bytes.fromhex("000000000000000000000002")

# (user, Keyline auth, Keyline priv, snmpsim auth, snmpsim priv): every protocol of usm
SNMPSIM_USERS = (
    ("u-sha-aes", "SHA", "AES", "SHA", "AES"),
    ("u-md5-aes", "MD5", "AES", "MD5", "AES"),
    ("u-sha224-aes192", "SHA224", "AES192", "SHA224", "AES192"),
    ("u-sha256-aes", "SHA256", "AES", "SHA256", "AES"),
    ("u-sha384-aes256", "SHA384", "AES256", "SHA384", "AES256"),
    ("u-sha512-aes256b", "SHA512", "AES256B", "SHA512", "AES256BLMT"),
    ("u-sha-aes256", "SHA", "AES256", "SHA", "AES256"),
    ("u-sha-aes256b", "SHA", "AES256B", "SHA", "AES256BLMT"),
    ("u-md5-aes256", "MD5", "AES256", "MD5", "AES256"),
    ("u-md5-aes192b", "MD5", "AES192B", "MD5", "AES192BLMT"),
    ("u-sha256-nopriv", "SHA256", None, "SHA256", "NONE"),
    ("u-noauth", None, None, "NONE", "NONE"),
)
# (user, Keyline auth, Keyline priv, Net-SNMP auth, Net-SNMP priv)
NETSNMP_USERS = (
    ("n-sha-aes", "SHA", "AES", "SHA", "AES"),
    ("n-sha256-aes256", "SHA256", "AES256B", "SHA-256", "AES-256"),
    ("n-sha-aes256b", "SHA", "AES256B", "SHA", "AES-256"),
    ("n-sha-aes256c", "SHA", "AES256", "SHA", "AES-256-C"),
    ("n-sha512-aes192", "SHA512", "AES192B", "SHA-512", "AES-192"),
    ("n-authonly", "SHA256", None, "SHA-256", None),
)


def credential(name: str, auth: str | None, priv: str | None, *,
               auth_key: str = AUTH_PASSWORD, priv_key: str = PRIV_PASSWORD,
               level: str | None = None) -> SnmpCredential:
    return SnmpCredential(
        version="v3", username=name,
        security_level=level or ("authPriv" if priv else "authNoPriv" if auth
                                 else "noAuthNoPriv"),
        auth_protocol=auth, auth_key=SecretStr(auth_key) if auth else None,
        priv_protocol=priv, priv_key=SecretStr(priv_key) if priv else None)


def target(port: int, cred: SnmpCredential) -> PollTarget:
    return PollTarget(device_id=port, device_key="dev", host="127.0.0.1", port=port,
                      credential=cred, poller_group="test")


def assert_no_secret(text: str | None) -> None:
    assert not [secret for secret in SECRETS if secret in (text or "")], text


def run_poller(targets: list[PollTarget], **options: object) -> list[PollResult]:
    async def run() -> list[PollResult]:
        poller = SnmpPoller(**{"timeout_s": 1.0, "retries": 1, **options})  # type: ignore[arg-type]
        try:
            return await poller.poll_many(targets)
        finally:
            poller.close()

    return asyncio.run(run())


@pytest.fixture(scope="module")
def snmpsim() -> Iterator[SnmpsimAgents]:
    if not snmpsim_installed():
        pytest.skip("snmpsim is not installed (pip install snmpsim pysmi)")
    users = tuple((name, sim_auth, AUTH_PASSWORD, sim_priv, PRIV_PASSWORD)
                  for name, _, _, sim_auth, sim_priv in SNMPSIM_USERS)
    with SnmpsimAgents(interfaces=INTERFACES, v3_users=users) as running:
        yield running


@pytest.fixture(scope="module")
def netsnmp() -> Iterator[NetSnmpAgent]:
    if NetSnmpAgent.binary() is None:
        pytest.skip("Net-SNMP snmpd is not installed (apt-get install snmpd)")
    conf = "".join(
        f'createUser {name} {auth} "{AUTH_PASSWORD}"'
        + (f' {priv} "{PRIV_PASSWORD}"' if priv else "")
        + f"\nrouser {name} {'priv' if priv else 'auth'}\n"
        for name, _, _, auth, priv in NETSNMP_USERS)
    with NetSnmpAgent(extra_conf=conf) as agent:
        yield agent


# --- keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("hash_name", "ku", "kul"), [
    ("md5", "9faf3283884e92834ebc9847d8edd963", "526f5eed9fcce26f8964c2930787d82b"),
    ("sha1", "9fb5cc0381497b3793528939ff788d5d79145211",
     "6695febc9288e36282235fc7151f128497b38f3f"),
])
def test_rfc3414_a3_key_localisation_vectors(hash_name: str, ku: str, kul: str) -> None:
    key = usm.password_to_key(b"maplesyrup", hash_name)
    assert key.hex() == ku
    assert usm.localize_key(key, RFC3414_ENGINE_ID, hash_name).hex() == kul


def test_sha2_keys_and_both_aes_key_extensions_match_pysnmp() -> None:
    from pyasn1.type.univ import OctetString
    from pysnmp.proto.secmod.eso.priv import aes192, aes256
    from pysnmp.proto.secmod.rfc3414 import localkey
    from pysnmp.proto.secmod.rfc3414.auth import hmacmd5, hmacsha
    from pysnmp.proto.secmod.rfc3826.priv import aes
    from pysnmp.proto.secmod.rfc7860.auth import hmacsha2

    engine_id = bytes.fromhex("80001f8880e9630000d61ff449")
    pysnmp_auth = {"MD5": hmacmd5.HmacMd5.SERVICE_ID, "SHA": hmacsha.HmacSha.SERVICE_ID,
                   "SHA224": hmacsha2.HmacSha2.SHA224_SERVICE_ID,
                   "SHA256": hmacsha2.HmacSha2.SHA256_SERVICE_ID,
                   # usmHMAC256SHA384AuthProtocol (pysnmp spells it SAH384_SERVICE_ID)
                   "SHA384": (1, 3, 6, 1, 6, 3, 10, 1, 1, 6),
                   "SHA512": hmacsha2.HmacSha2.SHA512_SERVICE_ID}
    pysnmp_priv = {"AES": aes.Aes(), "AES192": aes192.Aes192(), "AES256": aes256.Aes256(),
                   "AES192B": aes192.AesBlumenthal192(),
                   "AES256B": aes256.AesBlumenthal256()}
    checked = 0
    for auth, service_id in pysnmp_auth.items():
        hash_function = getattr(hashlib, usm.AUTH_PROTOCOLS[auth].hash_name)
        theirs_auth = localkey.localize_key(
            localkey.hash_passphrase(AUTH_PASSWORD.encode(), hash_function),
            OctetString(engine_id), hash_function)
        for priv, service in pysnmp_priv.items():
            user = usm.UsmUser(b"u", auth, AUTH_PASSWORD.encode(), priv,
                               PRIV_PASSWORD.encode())
            keys = usm.localized_keys(user, engine_id)
            assert keys.auth_key == bytes(theirs_auth), auth
            ku = service.hash_passphrase(service_id, PRIV_PASSWORD.encode())
            theirs = bytes(service.localize_key(service_id, ku, OctetString(engine_id)))
            assert keys.priv_key == theirs[:usm.PRIV_PROTOCOLS[priv].key_bytes], (auth, priv)
            checked += 1
    assert checked == 30
    # the two extensions really differ where a key must be extended (SHA-1 for AES-256)
    reeder, blumenthal = (usm.localized_keys(usm.UsmUser(b"u", "SHA", b"12345678", name,
                                                         b"12345678"), engine_id).priv_key
                          for name in ("AES256", "AES256B"))
    assert reeder[:20] == blumenthal[:20] and reeder != blumenthal


def test_keys_and_users_never_show_a_password_or_key() -> None:
    user = usm.UsmUser(b"u", "SHA256", AUTH_PASSWORD.encode(), "AES", PRIV_PASSWORD.encode())
    keys = usm.localized_keys(user, b"\x80\x00\x01")
    for text in (repr(user), str(user), repr(keys), str(keys)):
        assert_no_secret(text)
        assert keys.auth_key.hex() not in text and str(keys.auth_key) not in text
    with pytest.raises(usm.UsmError, match="shorter than 8") as short:
        usm.UsmUser(b"u", "SHA", b"short", None)
    assert "short'" not in str(short.value)


# --- pysnmp decodes what we encode -----------------------------------------------------------


@pytest.mark.parametrize(("auth", "priv"), [("SHA", "AES"), ("SHA256", "AES256B"),
                                            ("SHA512", "AES192"), ("MD5", None)])
def test_pysnmp_verifies_and_decrypts_our_message(auth: str, priv: str | None) -> None:
    from pyasn1.codec.ber import decoder
    from pyasn1.type.univ import OctetString
    from pysnmp.proto.mpmod.rfc3412 import ScopedPDU, SNMPv3Message
    from pysnmp.proto.secmod.eso.priv import aes192, aes256
    from pysnmp.proto.secmod.rfc3414.auth import hmacmd5, hmacsha
    from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters
    from pysnmp.proto.secmod.rfc3826.priv import aes
    from pysnmp.proto.secmod.rfc7860.auth import hmacsha2

    engine_id, boots, time_s = bytes.fromhex("80001f8805aa00000000000002"), 7, 123_456
    user = usm.UsmUser(b"keyline", auth, AUTH_PASSWORD.encode(), priv,
                       PRIV_PASSWORD.encode() if priv else b"")
    keys = usm.localized_keys(user, engine_id)
    oids = [SYS_NAME_OID, IF_DESCR]
    datagram = usm.encode_message(user, keys, 4242, snmp_fast.encode_pdu(99, oids,
                                                                          max_repetitions=10),
                                  engine_id=engine_id, boots=boots, time_s=time_s)
    message, rest = decoder.decode(datagram, asn1Spec=SNMPv3Message())
    assert not rest and int(message["msgVersion"]) == 3
    header = message["msgGlobalData"]
    assert int(header["msgID"]) == 4242 and int(header["msgSecurityModel"]) == 3
    assert header["msgFlags"].asOctets()[0] == user.flags | usm.FLAG_REPORTABLE
    parameters, _ = decoder.decode(message["msgSecurityParameters"].asOctets(),
                                   asn1Spec=UsmSecurityParameters())
    assert parameters["msgAuthoritativeEngineId"].asOctets() == engine_id
    assert int(parameters["msgAuthoritativeEngineBoots"]) == boots
    assert int(parameters["msgAuthoritativeEngineTime"]) == time_s
    assert parameters["msgUserName"].asOctets() == b"keyline"
    service = {"MD5": hmacmd5.HmacMd5(), "SHA": hmacsha.HmacSha(),
               "SHA256": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SHA256_SERVICE_ID),
               "SHA512": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SHA512_SERVICE_ID)}[auth]
    # pysnmp raises StatusInformation(authenticationFailure) on a wrong MAC
    service.authenticate_incoming_message(OctetString(keys.auth_key),
                                          parameters["msgAuthenticationParameters"], datagram)
    data = message["msgData"]
    if priv is None:
        scoped = data["plaintext"]
    else:
        cipher = {"AES": aes.Aes(), "AES256B": aes256.AesBlumenthal256(),
                  "AES192": aes192.Aes192()}[priv]
        plain = cipher.decrypt_data(
            OctetString(keys.priv_key),
            (boots, time_s, list(parameters["msgPrivacyParameters"].asOctets())),
            data["encryptedPDU"])
        scoped, _ = decoder.decode(plain, asn1Spec=ScopedPDU())
    assert scoped["contextEngineId"].asOctets() == engine_id
    pdu = scoped["data"].getComponent()
    assert int(pdu["request-id"]) == 99 and int(pdu["max-repetitions"]) == 10
    assert [tuple(vb["name"]) for vb in pdu["variable-bindings"]] == oids


def test_salts_never_repeat_and_a_changed_byte_fails_the_mac() -> None:
    engine_id = bytes.fromhex("80001f8805aa00000000000002")
    user = usm.UsmUser(b"keyline", "SHA", AUTH_PASSWORD.encode(), "AES",
                       PRIV_PASSWORD.encode())
    keys = usm.localized_keys(user, engine_id)
    pdu = snmp_fast.encode_pdu(1, [SYS_NAME_OID])
    messages = [usm.decode_message(usm.encode_message(user, keys, 1, pdu, engine_id=engine_id,
                                                      boots=1, time_s=1))
                for _ in range(200)]
    assert len({message.salt for message in messages}) == 200
    # our own message opened by our own decoder: a request PDU, authenticated and decrypted
    tag, opened = usm.open_message(messages[0], user, keys)
    assert tag == snmp_fast.PDU_GET and opened.varbinds == [(SYS_NAME_OID, None)]
    data = bytearray(messages[0].data)
    data[-3] ^= 0x01  # inside the encrypted PDU
    with pytest.raises(usm.UsmError, match="MAC is wrong"):
        usm.open_message(usm.decode_message(bytes(data)), user, keys)


def test_hostile_bytes_are_ber_errors_never_crashes() -> None:
    engine_id = bytes.fromhex("80001f8805aa00000000000002")
    user = usm.UsmUser(b"keyline", "SHA", AUTH_PASSWORD.encode(), "AES",
                       PRIV_PASSWORD.encode())
    keys = usm.localized_keys(user, engine_id)
    good = usm.encode_message(user, keys, 5, snmp_fast.encode_pdu(5, [SYS_NAME_OID, IF_DESCR]),
                              engine_id=engine_id, boots=3, time_s=44)
    plain = usm.encode_message(usm.UsmUser(b"keyline"), usm.UsmKeys(None, b"", None, b""), 5,
                               snmp_fast.encode_pdu(5, [SYS_NAME_OID]), engine_id=engine_id,
                               boots=0, time_s=0)
    rng = random.Random(16)
    outcomes = {"ok": 0, "refused": 0}
    for _ in range(3000):
        data = bytearray(rng.choice((good, plain)))
        how = rng.randrange(3)
        if how == 0:
            data = data[:rng.randrange(len(data))]
        else:
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            usm.open_message(usm.decode_message(bytes(data)), user, keys)
            outcomes["ok"] += 1
        except snmp_fast.BerError as error:  # UsmError and UsmReport are BerErrors
            assert_no_secret(str(error))
            outcomes["refused"] += 1
    assert outcomes["refused"] > 2500


def test_engine_clock_moves_forward_and_refuses_stale_answers() -> None:
    now = [1000.0]
    clock = usm.EngineClock(monotonic=lambda: now[0])
    address = ("127.0.0.1", 161)
    assert clock.get(address) is None
    clock.learn(address, b"\x80\x01", 5, 100)
    now[0] += 30.4
    assert clock.get(address) == (b"\x80\x01", 5, 130)
    clock.check(address, 5, 140)  # ahead: taken
    assert clock.get(address) == (b"\x80\x01", 5, 140)
    clock.check(address, 5, 100)  # 40 s behind: within the window
    with pytest.raises(usm.UsmError, match="outside the time window"):
        clock.check(address, 5, 140 - usm.TIME_WINDOW_S - 1)
    with pytest.raises(usm.UsmError, match="outside the time window"):
        clock.check(address, 4, 10_000)  # an older boot: a replay
    clock.check(address, 6, 2)  # the agent rebooted: a new epoch
    assert clock.get(address) == (b"\x80\x01", 6, 2)


# --- against pysnmp (snmpsim) ------------------------------------------------------------------


def test_every_protocol_pair_polls_a_pysnmp_agent_like_pysnmp_does(
        snmpsim: SnmpsimAgents) -> None:
    targets = [target(port, credential(name, auth, priv))
               for (name, auth, priv, _, _), port in zip(SNMPSIM_USERS, snmpsim.v3_user_ports,
                                                         strict=True)]
    assert all(usm_user(t.credential) is not None for t in targets)
    fast = run_poller(targets)
    slow = run_poller(targets, v3_engine="pysnmp")
    for number, (ours, theirs) in enumerate(zip(fast, slow, strict=True)):
        name = SNMPSIM_USERS[number][0]
        assert ours.status is PollStatus.REACHABLE, (name, ours.reason)
        assert sorted(ours.interfaces) == if_indexes(INTERFACES), name
        assert ours.engine_id == SnmpsimAgents.v3_user_engine_id(number), name
        assert comparable(ours) == comparable(theirs), name


def test_rejections_by_a_pysnmp_agent_are_auth_failed_without_secrets(
        snmpsim: SnmpsimAgents) -> None:
    port = snmpsim.v3_user_ports[0]
    name, auth, priv = SNMPSIM_USERS[0][:3]
    wrong_auth, unknown, lower = run_poller([
        target(port, credential(name, auth, priv, auth_key=WRONG_PASSWORD)),
        target(port, credential("nobody-here", auth, priv)),
        target(port, credential(name, auth, None, level="authNoPriv"))])
    assert wrong_auth.status is PollStatus.AUTH_FAILED, wrong_auth.reason
    assert "wrongDigest" in (wrong_auth.reason or "")
    assert unknown.status is PollStatus.AUTH_FAILED and "unknownUserName" in (
        unknown.reason or "")
    assert lower.status is PollStatus.AUTH_FAILED and "unsupportedSecLevel" in (
        lower.reason or "")
    for result in (wrong_auth, unknown, lower):
        assert_no_secret(result.reason)


# --- against Net-SNMP ------------------------------------------------------------------------


def test_netsnmp_v3_users_poll_through_the_fast_path(netsnmp: NetSnmpAgent) -> None:
    targets = [target(netsnmp.port, credential(name, auth, priv))
               for name, auth, priv, _, _ in NETSNMP_USERS]
    targets.append(target(netsnmp.port, SnmpCredential(
        version="v3", username=V3_USER, security_level="authPriv", auth_protocol="SHA",
        auth_key=SecretStr(V3_AUTH_KEY), priv_protocol="AES", priv_key=SecretStr(V3_PRIV_KEY))))
    v2c = SnmpCredential(version="v2c", community=SecretStr("keyline-test-ro"))
    *v3_results, by_v2c = run_poller([*targets, target(netsnmp.port, v2c)])
    assert by_v2c.status is PollStatus.REACHABLE, by_v2c.reason
    engine_ids = set()
    for result in v3_results:
        assert result.status is PollStatus.REACHABLE, (result.target.credential.username,
                                                       result.reason)
        assert result.sys_name == SYS_NAME
        assert sorted(result.interfaces) == sorted(by_v2c.interfaces)
        engine_ids.add(result.engine_id)
    assert len(engine_ids) == 1 and None not in engine_ids


def test_netsnmp_variant_mismatch_is_silence_as_with_a_wrong_privacy_key(
        netsnmp: NetSnmpAgent) -> None:
    # n-sha-aes256c was created with Reeder's extension: Blumenthal's key decrypts to garbage,
    # snmpd drops it: the two AES-256 variants really are told apart
    (result,) = run_poller([target(netsnmp.port, credential("n-sha-aes256c", "SHA", "AES256B"))],
                           timeout_s=0.3, retries=0)
    assert result.status is PollStatus.UNREACHABLE, result.reason
    assert "wrong SNMPv3 privacy key also looks like this" in (result.reason or "")


def test_netsnmp_reports_are_clear_errors_without_secrets(netsnmp: NetSnmpAgent) -> None:
    name, auth, priv = NETSNMP_USERS[1][:3]
    wrong, unknown, unsupported = run_poller([
        target(netsnmp.port, credential(name, auth, priv, auth_key=WRONG_PASSWORD)),
        target(netsnmp.port, credential("nobody-here", auth, priv)),
        target(netsnmp.port, credential("n-authonly", "SHA256", "AES"))])
    assert wrong.status is PollStatus.AUTH_FAILED and "wrongDigest" in (wrong.reason or "")
    assert "usmStatsWrongDigests" in (wrong.reason or "")
    assert unknown.status is PollStatus.AUTH_FAILED and "unknownUserName" in (
        unknown.reason or "")
    # n-authonly has no privacy key at the agent: asking for authPriv is refused
    assert unsupported.status is PollStatus.AUTH_FAILED, unsupported.reason
    assert "unsupportedSecLevel" in (unsupported.reason or "")
    for result in (wrong, unknown, unsupported):
        assert_no_secret(result.reason)


def test_netsnmp_time_window_resync_and_a_changed_engine_id(netsnmp: NetSnmpAgent) -> None:
    name, auth, priv = NETSNMP_USERS[0][:3]
    user = usm_user(credential(name, auth, priv))
    assert user is not None
    address = ("127.0.0.1", netsnmp.port)
    clock = usm.EngineClock()

    async def get() -> tuple[snmp_fast.Response, int]:
        session = await snmp_fast.V3Session(*address, user, clock=clock).open()
        try:
            response = await session.request([SYS_NAME_OID], (1.0,))
            return response, session.sent
        finally:
            session.close()

    response, sent = asyncio.run(get())
    assert response.varbinds == [(SYS_NAME_OID, SYS_NAME.encode())]
    assert sent == 2  # the discovery, then the request
    engine_id, boots, time_s = clock.get(address)  # type: ignore[misc]
    response, sent = asyncio.run(get())
    assert sent == 1  # the clock is known: no discovery again
    # our clock 1,000 s ahead: snmpd answers usmStatsNotInTimeWindows (authenticated), the
    # clock takes its boots and time and the request goes again, signed anew
    clock.learn(address, engine_id, boots, time_s + 1000)
    response, sent = asyncio.run(get())
    assert response.varbinds == [(SYS_NAME_OID, SYS_NAME.encode())] and sent == 2
    assert time_s <= clock.get(address)[2] < time_s + 1000  # type: ignore[index]
    # an engine id the agent does not have (the device was replaced): rediscovered
    clock.learn(address, bytes.fromhex("80001f8880aaaaaaaaaaaaaaaa"), boots, time_s)
    response, sent = asyncio.run(get())
    assert response.varbinds == [(SYS_NAME_OID, SYS_NAME.encode())] and sent == 3
    assert clock.get(address)[0] == engine_id  # type: ignore[index]
