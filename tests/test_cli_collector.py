"""The CLI source (collectors/cli.py): targets, host keys trusted on first use and refused
when changed, the status of every failure, sessions reused and bounded, and the collection
service's CLI job, against the simulated CLI of lab/sim/ssh.py (real asyncssh servers,
real netmiko sessions)."""

from __future__ import annotations

import functools
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from collectors.cli import (
    CliSessions,
    CliStatus,
    CliTarget,
    HostKey,
    HostKeyBook,
    bounded,
    load_cli_targets,
)
from config.inventory.loader import load_inventory
from keyline.wiring import EXAMPLE_INVENTORY
from lab.sim.access import with_lab_defaults
from store.cli import (
    FIRST_USE,
    HostKeyError,
    accept_host_key,
    cli_statuses,
    host_keys,
    record_cli_status,
    record_offered_host_key,
    trust_first_host_key,
)
from store.inventory import apply_inventory

T = TypeVar("T")



def _ed25519_blob(fill: int) -> str:
    """An Ed25519 public key blob as known_hosts holds it (the key bytes made up)."""
    import base64

    name = b"ssh-ed25519"
    return base64.b64encode(len(name).to_bytes(4, "big") + name + (32).to_bytes(4, "big")
                            + bytes([fill]) * 32).decode()


KEY_A = HostKey("ssh-ed25519", _ed25519_blob(1))
KEY_B = HostKey("ssh-ed25519", _ed25519_blob(2))


def wait_for(predicate: Callable[[], T], timeout_s: float, interval_s: float = 0.05) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout_s} s")
        time.sleep(interval_s)


@pytest.fixture
def example(db: Any) -> Any:
    """The example inventory applied to the test's database."""
    inventory = load_inventory([EXAMPLE_INVENTORY])
    with db.pool.connection() as conn:
        apply_inventory(conn, inventory)
    return inventory


def device_id(db: Any, key: str) -> int:
    with db.pool.connection() as conn:
        return conn.execute("SELECT id FROM devices WHERE key = %s", [key]).fetchone()[0]


# --- targets ------------------------------------------------------------------------------


def test_cli_targets_resolve_the_ssh_credential_and_name_a_missing_secret(db, example):
    environ = with_lab_defaults(example, {})
    with_cli = {key for key, device in example.devices.items() if device.cli_credential}
    assert with_cli
    with db.pool.connection() as conn:
        targets, problems = load_cli_targets(conn, environ=environ, profiles={})
    assert problems == []
    assert {t.device_key for t in targets} == with_cli
    for target in targets:
        device = example.devices[target.device_key]
        credential = example.credentials[device.cli_credential]
        assert target.host == str(device.management_address)
        assert target.port == int(credential.params.get("port") or 22)
        assert target.username == credential.params["username"]
        assert target.password.get_secret_value() == environ[
            credential.secrets["password"].name]
        assert target.platform == device.platform
        assert target.device_type is None  # no profiles given: every run is no-profile
        assert {name for _, name, _ in target.ports} == {p.name for p in device.ports}
        assert target.password.get_secret_value() not in repr(target)

    del environ["KEYLINE_LAB_SSH_PASSWORD"]
    some = sorted(with_cli)[:1]
    with db.pool.connection() as conn:
        targets, problems = load_cli_targets(conn, environ=environ, profiles={},
                                             device_keys=[*some, "no-such-device"])
    assert targets == []
    assert [p.device_key for p in problems] == [*some, "no-such-device"]
    assert "KEYLINE_LAB_SSH_PASSWORD" in str(problems[0])
    assert "no such active device with a cli_credential" in str(problems[1])


# --- host keys in the store ------------------------------------------------------------------


def test_host_keys_trust_on_first_use_refuse_a_change_until_accepted(db, example):
    device = device_id(db, sorted(example.devices)[0])
    at = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    with db.pool.connection() as conn:
        first = trust_first_host_key(conn, device, KEY_A.key_type, KEY_A.base64,
                                     KEY_A.fingerprint, at)
        assert (first.key_base64, first.state, first.trusted_by) == (
            KEY_A.base64, "trusted", FIRST_USE)
        # a second first contact (another collector) gets the key trusted already
        again = trust_first_host_key(conn, device, KEY_B.key_type, KEY_B.base64,
                                     KEY_B.fingerprint, at + timedelta(seconds=1))
        assert again.key_base64 == KEY_A.base64
        with pytest.raises(HostKeyError, match="no host key offered"):
            accept_host_key(conn, device, "alice", at)

        record_offered_host_key(conn, device, KEY_B.key_type, KEY_B.base64,
                                KEY_B.fingerprint, at + timedelta(minutes=1))
        record_offered_host_key(conn, device, KEY_B.key_type, KEY_B.base64,
                                KEY_B.fingerprint, at + timedelta(minutes=2))
        rows = host_keys(conn, [device])
        assert [(r.key_base64, r.state) for r in rows] == [
            (KEY_A.base64, "trusted"), (KEY_B.base64, "offered")]
        assert rows[1].first_seen_at == at + timedelta(minutes=1)
        assert rows[1].last_seen_at == at + timedelta(minutes=2)

        with pytest.raises(HostKeyError, match="fingerprint SHA256:nope"):
            accept_host_key(conn, device, "alice", at, fingerprint="SHA256:nope")
        with pytest.raises(HostKeyError, match="must be named"):
            accept_host_key(conn, device, " ", at)
        accepted = accept_host_key(conn, device, "alice", at + timedelta(minutes=3),
                                   fingerprint=KEY_B.fingerprint)
        assert (accepted.key_base64, accepted.trusted_by) == (KEY_B.base64, "alice")
        rows = host_keys(conn, [device])
        assert [(r.key_base64, r.state) for r in rows] == [
            (KEY_B.base64, "trusted"), (KEY_A.base64, "retired")]
        # the old key offered again (a device swapped back) waits for an engineer too
        record_offered_host_key(conn, device, KEY_A.key_type, KEY_A.base64,
                                KEY_A.fingerprint, at + timedelta(minutes=4))
        assert {(r.key_base64, r.state) for r in host_keys(conn, [device])} == {
            (KEY_B.base64, "trusted"), (KEY_A.base64, "offered")}


def test_fingerprints_are_openssh_sha256() -> None:
    import base64
    import hashlib

    digest = hashlib.sha256(base64.b64decode(KEY_A.base64)).digest()
    assert KEY_A.fingerprint == "SHA256:" + base64.b64encode(digest).decode().rstrip("=")
    assert KEY_A.fingerprint != KEY_B.fingerprint


def test_cli_status_rows_move_changed_at_only_on_a_change(db):
    at = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    with db.pool.connection() as conn:
        record_cli_status(conn, 7, "timeout", "no banner", at)
        record_cli_status(conn, 7, "timeout", "no banner", at + timedelta(minutes=5))
        row = cli_statuses(conn, [7])[7]
        assert (row.changed_at, row.last_run_at) == (at, at + timedelta(minutes=5))
        record_cli_status(conn, 7, "unparseable-output", "no records", at + timedelta(
            minutes=10), "garbage")
        row = cli_statuses(conn)[7]
        assert (row.status, row.changed_at, row.raw_output) == (
            "unparseable-output", at + timedelta(minutes=10), "garbage")


def test_bounded_raw_output_says_what_was_left_out() -> None:
    assert bounded("short", 100) == "short"
    text = "\u5149" * 1000  # 3 bytes each in UTF-8
    cut = bounded(text, 1024)
    assert len(cut.encode("utf-8")) <= 1024
    assert cut.startswith("\u5149" * 100) and "bytes left out" in cut


# --- failures without a server ---------------------------------------------------------------


def closed_port() -> int:
    """A loopback TCP port nobody listens on (bound, so nobody else takes it meanwhile)."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    holder.close()
    return port


def a_target(device: int, port: int, **changes: Any) -> CliTarget:
    from pydantic import SecretStr

    target = CliTarget(device_id=device, device_key="dev", host="127.0.0.1", port=port,
                       platform="cisco_ios", device_type="cisco_ios", username="keyline",
                       password=SecretStr("not-the-password-1"), credential_key="lab-ssh")
    return replace(target, **changes)


def test_a_refused_connection_is_unreachable_and_no_profile_is_said(db, example):
    device = device_id(db, sorted(example.devices)[0])
    with CliSessions(HostKeyBook(db.pool), workers=2, connect_timeout_s=2.0) as sessions:
        run = sessions.run(a_target(device, closed_port()), ["show interfaces"])
        assert run.status is CliStatus.UNREACHABLE, run
        assert "refused" in run.reason
        assert sessions.run(a_target(device, 22, device_type=None, platform="vax"),
                            ["show"]).status is CliStatus.NO_PROFILE
    with db.pool.connection() as conn:
        assert host_keys(conn, [device]) == []


def test_one_device_at_a_time_holds_one_worker(db, example):
    """Work for a busy device waits for it, on its worker: the other workers stay free."""
    import threading

    release = threading.Event()
    started: list[str] = []
    with CliSessions(HostKeyBook(db.pool), workers=2) as sessions:
        slow = a_target(1, 1)
        other = a_target(2, 1)

        def hold(name: str) -> str:
            started.append(name)
            release.wait(10)
            return name

        first = sessions.submit(slow, hold, "slow-1")
        second = sessions.submit(slow, hold, "slow-2")
        wait_for(lambda: started == ["slow-1"], 5)
        # the second worker is free for another device, not taken by slow-2
        assert sessions.submit(other, lambda: "other").result(5) == "other"
        assert started == ["slow-1"] and not second.done()
        wait_for(lambda: sessions.busy_devices() == 1, 5)
        release.set()
        assert (first.result(5), second.result(5)) == ("slow-1", "slow-2")
        assert started == ["slow-1", "slow-2"]


# --- against the simulated CLI (lab/sim/ssh.py) ------------------------------------------------

COPIES = 45  # more devices, so that 50 healthy ones keep their schedule beside the faulty
INTERFACES_COMMAND = {"cisco_ios": "show interfaces", "huawei_vrp": "display interface",
                      "hp_comware": "display interface"}


def with_copies(inventory: Any, count: int) -> Any:
    """`inventory` and `count` more devices with a CLI: copies of its PE and CE devices
    that have one, each on its own loopback address (127.0.2.N), linked to nothing."""
    from ipaddress import IPv4Address

    originals = sorted((d for d in inventory.devices.values()
                        if d.cli_credential and d.role in ("PE", "CE")), key=lambda d: d.key)
    devices = dict(inventory.devices)
    for number in range(count):
        device = originals[number % len(originals)]
        key = f"{device.key}-copy{number + 1}"
        devices[key] = replace(device, key=key,
                               management_address=IPv4Address(f"127.0.2.{number + 1}"),
                               ports=tuple(replace(port, device=key) for port in device.ports))
    return replace(inventory, devices=devices)


@pytest.fixture(scope="module")
def cli_inventory() -> Any:
    from lab.sim.ssh import free_tcp_port_on, with_cli_port
    from tests.snmp_agents import free_udp_port_on

    inventory = with_copies(load_inventory([EXAMPLE_INVENTORY]), COPIES)
    addresses = [str(d.management_address) for d in inventory.devices.values()]
    snmp_port = free_udp_port_on(addresses)
    inventory = replace(inventory, devices={
        key: replace(device, snmp_port=snmp_port) for key, device in inventory.devices.items()})
    return with_cli_port(inventory, free_tcp_port_on(addresses))


@pytest.fixture(scope="module")
def cli_environ(cli_inventory: Any) -> dict[str, str]:
    return with_lab_defaults(cli_inventory, {})


@pytest.fixture(scope="module")
def network(cli_inventory: Any, cli_environ: dict[str, str],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from lab.sim.network import SimulatedNetwork, snmpsim_available

    if not snmpsim_available():
        pytest.skip("snmpsim is not importable: run python3 dev.py test, which installs it")
    simulated = SimulatedNetwork(cli_inventory, tmp_path_factory.mktemp("sim"),
                                 environ=cli_environ, control_socket=False, cli=True)
    simulated.start()
    yield simulated
    simulated.stop()


@pytest.fixture
def store(db: Any, cli_inventory: Any) -> Any:
    with db.pool.connection() as conn:
        apply_inventory(conn, cli_inventory)
    return db


@pytest.fixture
def faults(network: Any) -> Iterator[Callable[..., None]]:
    """Put devices' CLIs in fault modes for one test; normal again afterwards."""
    touched: list[str] = []

    def fault(device_key: str, mode: str, delay_s: float | None = None) -> None:
        touched.append(device_key)
        network.cli_mode(device_key, mode, delay_s)

    yield fault
    for device_key in touched:
        network.cli_mode(device_key, "normal")


def targets_of(store: Any, environ: dict[str, str], *keys: str) -> dict[str, CliTarget]:
    """CLI targets with netmiko's device type of each platform (without the profiles)."""
    with store.pool.connection() as conn:
        targets, problems = load_cli_targets(conn, environ=environ, device_keys=keys,
                                             profiles={})
    assert problems == []
    device_types = {"huawei_vrp": "huawei"}
    return {t.device_key: replace(t, device_type=device_types.get(t.platform, t.platform))
            for t in targets}


def sessions_for(store: Any, **settings: Any) -> CliSessions:
    """Sessions with timeouts a loaded machine keeps (the simulated devices answer in
    milliseconds; these bound the faulty ones)."""
    return CliSessions(HostKeyBook(store.pool), **{
        "workers": 4, "connect_timeout_s": 5.0, "banner_timeout_s": 3.0,
        "auth_timeout_s": 5.0, "read_timeout_s": 5.0, **settings})


def copies(network: Any, platform: str) -> list[str]:
    """The keys of the copied devices of a platform (with_copies), in order."""
    return sorted(key for key, device in network.inventory.devices.items()
                  if "-copy" in key and device.platform == platform)


def public_key(line: str) -> HostKey:
    key_type, blob = line.split()[:2]
    return HostKey(key_type, blob)


def test_first_contact_trusts_the_key_and_sessions_are_reused(network, store, cli_environ):
    targets = targets_of(store, cli_environ, "pe-sh2", "pe-sh1")
    with sessions_for(store) as sessions:
        for key, target in targets.items():
            command = INTERFACES_COMMAND[target.platform]
            first = sessions.run(target, [command])
            assert first.status is CliStatus.OK, first
            assert not first.reused and key in first.prompt
            assert first.outputs[command].strip()
            again = sessions.run(target, [command])
            assert again.ok and again.reused
        assert sessions.sessions_opened == 2
    with store.pool.connection() as conn:
        rows = host_keys(conn)
    assert {(r.device_key, r.key_type, r.key_base64, r.state, r.trusted_by) for r in rows} == {
        (key, *public_key(network.cli_host_key(key)).__dict__.values(), "trusted", FIRST_USE)
        for key in targets}


def test_a_changed_host_key_is_refused_before_login_until_an_engineer_accepts_it(
        network, store, cli_environ, caplog):
    import logging

    from collectors.cli import accept_host_key as accept

    key = copies(network, "cisco_ios")[-1]
    target = targets_of(store, cli_environ, key)[key]
    command = INTERFACES_COMMAND[target.platform]
    with sessions_for(store, max_open_sessions=0) as sessions:
        assert sessions.run(target, [command]).ok
        old = public_key(network.cli_host_key(key))
        new = public_key(network.rotate_host_key(key))
        assert new != old
        with caplog.at_level(logging.INFO, logger="asyncssh"):
            caplog.clear()
            refused = sessions.run(target, [command])
            auth_lines = [r.getMessage() for r in caplog.records if "auth" in
                          r.getMessage().lower()]
        assert refused.status is CliStatus.HOST_KEY_CHANGED, refused
        assert refused.offered_key == new
        assert new.fingerprint in refused.reason and old.fingerprint in refused.reason
        assert "accept-host-key" in refused.reason
        assert auth_lines == []  # no password was offered to the new key
        # still refused at the next try: nothing changes without an engineer
        assert sessions.run(target, [command]).status is CliStatus.HOST_KEY_CHANGED
        with store.pool.connection() as conn:
            states = {(r.key_base64, r.state) for r in host_keys(conn)}
            assert states == {(old.base64, "trusted"), (new.base64, "offered")}
            accepted = accept(conn, key, "eng.liu")  # an engineer of the inventory
        assert (accepted.key_base64, accepted.trusted_by) == (new.base64, "eng.liu")
        assert sessions.run(target, [command]).ok
    with store.pool.connection() as conn:
        assert {(r.key_base64, r.state) for r in host_keys(conn)} == {
            (old.base64, "retired"), (new.base64, "trusted")}


def test_every_failure_has_its_status(network, store, cli_environ, faults):
    cisco, huawei = copies(network, "cisco_ios"), copies(network, "huawei_vrp")
    keys = {"auth-fail": huawei[0], "hang": cisco[0], "slow": huawei[1],
            "unexpected-prompt": cisco[1], "low-privilege": cisco[2]}
    targets = targets_of(store, cli_environ, *keys.values())
    read_timeout_s = 2.0  # netmiko waits up to this for each read of a login's preparation
    for mode, key in keys.items():
        faults(key, mode, 3 * read_timeout_s if mode == "slow" else None)
    with sessions_for(store, workers=len(keys), read_timeout_s=read_timeout_s) as sessions:
        futures = {mode: sessions.submit(targets[key], functools.partial(
            sessions.run, targets[key], [INTERFACES_COMMAND[targets[key].platform]],
            privileged=mode == "low-privilege")) for mode, key in keys.items()}
        runs = {mode: future.result(60) for mode, future in futures.items()}
    password = cli_environ["KEYLINE_LAB_SSH_PASSWORD"]
    for run in runs.values():
        assert password not in repr(run)
    assert runs["auth-fail"].status is CliStatus.AUTH_FAILED, runs["auth-fail"]
    assert runs["hang"].status is CliStatus.TIMEOUT, runs["hang"]
    assert "banner" in runs["hang"].reason
    assert runs["slow"].status is CliStatus.TIMEOUT, runs["slow"]
    assert "read timeout" in runs["slow"].reason
    assert runs["unexpected-prompt"].status is CliStatus.UNEXPECTED_PROMPT, runs[
        "unexpected-prompt"]
    assert "boot-loader" in runs["unexpected-prompt"].raw_output
    assert runs["low-privilege"].status is CliStatus.PRIVILEGE_TOO_LOW, runs["low-privilege"]


def test_a_session_that_failed_is_rebuilt_at_the_next_run(network, store, cli_environ,
                                                          faults):
    key = copies(network, "huawei_vrp")[10]
    target = targets_of(store, cli_environ, key)[key]
    command = INTERFACES_COMMAND[target.platform]
    with sessions_for(store, read_timeout_s=2.0) as sessions:
        assert sessions.run(target, [command]).ok
        faults(key, "hang")  # the kept session stops answering
        stuck = sessions.run(target, [command])
        assert stuck.status is CliStatus.TIMEOUT and stuck.reused, stuck
        assert command in stuck.reason
        network.cli_mode(key, "normal")
        again = sessions.run(target, [command])
        assert again.ok and not again.reused, again
        assert sessions.sessions_opened == 2


def profile_targets(store: Any, environ: dict[str, str], *keys: str) -> dict[str, CliTarget]:
    with store.pool.connection() as conn:
        targets, problems = load_cli_targets(conn, environ=environ, device_keys=keys)
    assert problems == []
    return {target.device_key: target for target in targets}


def test_a_poll_reads_every_inventory_port_and_a_port_set_down_shows_down(
        network, store, cli_environ):
    from collectors.cli import cli_readings, poll_cli
    from collectors.cli_profiles import cli_profile

    keys = [copies(network, platform)[3]
            for platform in ("cisco_ios", "huawei_vrp", "hp_comware")]
    targets = profile_targets(store, cli_environ, *keys)
    with sessions_for(store) as sessions:
        for key in keys:
            target, profile = targets[key], cli_profile(targets[key].platform)
            assert target.device_type == profile.device_type
            result = poll_cli(sessions, target, profile)
            assert result.status is CliStatus.OK, result
            readings, printed, problems = cli_readings(result.reading, target.ports, 0.0)
            assert problems == ()
            assert set(readings) == {port_id for port_id, _, _ in target.ports}
            assert {printed[p].oper_status for p in printed} == {"up"}
            port_id, name, _ = target.ports[0]
            assert network.set_port_status(key, name, "down")
            try:
                again = poll_cli(sessions, target, profile)
            finally:
                network.set_port_status(key, name, "up")
            assert again.status is CliStatus.OK, again
            _readings, printed, _problems = cli_readings(again.reading, target.ports, 0.0)
            assert printed[port_id].oper_status == "down"
            assert {printed[p].oper_status for p in printed if p != port_id} == {"up"}
        assert sessions.sessions_opened == len(keys)  # each device's session reused


def test_garbage_is_unparseable_with_the_raw_output_kept_and_bounded(
        network, store, cli_environ, faults):
    from collectors.cli import poll_cli
    from collectors.cli_profiles import cli_profile

    key = copies(network, "cisco_ios")[4]
    target = profile_targets(store, cli_environ, key)[key]
    faults(key, "garbage")
    with sessions_for(store, raw_output_max_bytes=2048) as sessions:
        result = poll_cli(sessions, target, cli_profile(target.platform))
    assert result.status is CliStatus.UNPARSEABLE, result
    assert result.reading is None and result.raw_output.strip()
    assert len(result.raw_output.encode("utf-8")) <= 2048
    assert "show interfaces" in result.raw_output  # which command said what
    assert cli_environ["KEYLINE_LAB_SSH_PASSWORD"] not in result.raw_output


def test_running_config_comes_masked_and_low_privilege_is_said(
        network, store, cli_environ, faults):
    from collectors.cli import fetch_running_config
    from collectors.cli_profiles import cli_profile, mask_config
    from lab.sim.cli_outputs import planted_secrets

    keys = [copies(network, platform)[5]
            for platform in ("cisco_ios", "huawei_vrp", "hp_comware")]
    targets = profile_targets(store, cli_environ, *keys)
    with sessions_for(store) as sessions:
        for key in keys:
            target, profile = targets[key], cli_profile(targets[key].platform)
            run, text = fetch_running_config(sessions, target, profile)
            assert run.status is CliStatus.OK, run
            assert key in text and "<masked sha256:" in text
            # the whole configuration, neither the command's echo nor a prompt
            assert text.strip() == mask_config(profile, network.cli_config(key)).strip()
            for secret in planted_secrets(key):
                assert secret not in text and secret not in repr(run)
            faults(key, "low-privilege")
    # a session's privilege is settled at its login: new sessions meet the low privilege
    with sessions_for(store) as sessions:
        for key in keys:
            target, profile = targets[key], cli_profile(targets[key].platform)
            run, text = fetch_running_config(sessions, target, profile)
            assert run.status is CliStatus.PRIVILEGE_TOO_LOW, (key, run)
            assert text is None


# --- the collection service's CLI job -------------------------------------------------------


def test_fifty_devices_keep_their_cli_schedule_while_faulty_ones_fail_with_their_status(
        network, store, cli_environ, faults, tmp_path):
    from collectors.cli_profiles import load_cli_profiles
    from collectors.service import CollectionService

    interval_s, read_timeout_s = 4.0, 2.0
    cisco, huawei = copies(network, "cisco_ios"), copies(network, "huawei_vrp")
    faulty = {"auth-fail": huawei[6], "hang": cisco[6], "garbage": cisco[7],
              "slow": huawei[7], "host-key": cisco[8]}
    # the host-key device was met before; then its key changes
    changed = faulty["host-key"]
    target = targets_of(store, cli_environ, changed)[changed]
    with sessions_for(store) as sessions:
        assert sessions.run(target, [INTERFACES_COMMAND[target.platform]]).ok
    network.rotate_host_key(changed)
    for mode, key in faulty.items():
        if mode != "host-key":
            faults(key, mode, 5 * read_timeout_s if mode == "slow" else None)
    # the CLI wins the in/out rates and the oper status on every platform here
    profiles = {platform: replace(profile, prefer={
        **profile.prefer, "if_in_bps": "cli", "if_out_bps": "cli", "if_oper_status": "cli"})
        for platform, profile in load_cli_profiles().items()}
    cli_sessions = sessions_for(store, workers=8, read_timeout_s=read_timeout_s,
                                banner_timeout_s=read_timeout_s)
    # SNMP polls every device at the same interval, beside the CLI. Every agent answers
    # (the faults are the CLI's): the timeout is for agents that answer, as in
    # test_collection_service. With 1 s, the simulated agents starved of CPU on a loaded
    # machine timed out, and the faulty devices got no SNMP rates to fall back on.
    service = CollectionService(
        store.pool, spool_dir=tmp_path / "spool", interval_s_for=lambda group: interval_s,
        environ=cli_environ, timeout_s=3.0, retries=1, traps_enabled=False,
        startup_spread_s=2.0, flush_interval_s=0.2, health_interval_s=None,
        cli_sessions=cli_sessions, cli_interval_s=interval_s, cli_profiles=profiles)
    watched = huawei[9]  # a healthy device whose port goes down meanwhile
    watched_port = network.inventory.devices[watched].ports[0].name
    try:
        with service:
            started = time.monotonic()
            time.sleep(2 * interval_s)
            network.set_port_status(watched, watched_port, "down")
            time.sleep(2 * interval_s)
            elapsed_s = time.monotonic() - started
            service.flush()
            stats = service.stats()
    finally:
        cli_sessions.close()
        network.set_port_status(watched, watched_port, "up")
    cli_devices = {key for key, device in network.inventory.devices.items()
                   if device.cli_credential}
    healthy = cli_devices - set(faulty.values())
    assert len(healthy) >= 50
    expected_polls = int(elapsed_s / interval_s) - 1
    for key in healthy:
        assert stats.cli_device_polls[key] >= expected_polls, (key, stats.cli_device_polls)
        assert key not in stats.cli_skipped_polls, stats.cli_skipped_polls
    with store.pool.connection() as conn:
        rows = dict(conn.execute(
            "SELECT d.key, s.status FROM device_cli_status s JOIN devices d ON d.id = s.device_id"
        ).fetchall())
        raw = conn.execute(
            "SELECT s.raw_output FROM device_cli_status s JOIN devices d ON d.id = s.device_id"
            " WHERE d.key = %s", [faulty["garbage"]]).fetchone()[0]
        cli_rates = conn.execute(
            """SELECT count(DISTINCT s.object_id) FROM samples s
                 JOIN metrics m ON m.id = s.metric_id JOIN ports p ON p.id = s.object_id
                 JOIN devices d ON d.id = p.device_id
                WHERE m.name = 'if_in_bps' AND d.key = ANY(%s)""", [sorted(healthy)]
        ).fetchone()[0]
        fallback_rates = conn.execute(
            """SELECT count(DISTINCT s.object_id) FROM samples s
                 JOIN metrics m ON m.id = s.metric_id JOIN ports p ON p.id = s.object_id
                 JOIN devices d ON d.id = p.device_id
                WHERE m.name = 'if_in_bps' AND d.key = ANY(%s)""", [sorted(faulty.values())]
        ).fetchone()[0]
        down = conn.execute(
            """SELECT o.old, o.new, o.detail->>'via' FROM observations o
                 JOIN ports p ON p.id = o.object_id JOIN devices d ON d.id = p.device_id
                WHERE d.key = %s AND p.name = %s AND o.kind = 'oper_status'""",
            [watched, watched_port]).fetchall()
        response = dict(conn.execute(
            """SELECT d.key, count(*) FROM samples s JOIN metrics m ON m.id = s.metric_id
                 JOIN devices d ON d.id = s.object_id WHERE m.name = 'cli_response_ms'
                GROUP BY d.key""").fetchall())
    assert {key: rows[key] for key in healthy} == dict.fromkeys(healthy, "ok")
    assert {mode: rows[key] for mode, key in faulty.items()} == {
        "auth-fail": "auth-failed", "hang": "timeout", "garbage": "unparseable-output",
        "slow": "timeout", "host-key": "host-key-changed"}
    assert raw and raw.strip()
    # rates on every port of the healthy devices: from two CLI readings, the CLI winning
    # that metric once its first poll was ok
    assert cli_rates == sum(len(network.inventory.devices[key].ports) for key in healthy)
    assert set(response) == healthy
    # a device whose CLI fails keeps its rates: SNMP reports them meanwhile
    assert fallback_rates == sum(len(network.inventory.devices[key].ports)
                                 for key in faulty.values())
    # the CLI, which wins the oper status here, saw the port go down (no trap receiver
    # listens; SNMP leaves this device's port states to its CLI)
    assert ("up", "down", "cli") in down, down
    assert not any(old == "up" and new == "down" and via is None for old, new, via in down)


# --- the command line ------------------------------------------------------------------------


def keyline(url: str, *args: str) -> Any:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYLINE_")}
    return subprocess.run([sys.executable, "-m", "keyline", "--database-url", url, *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_poll_once_via_cli_and_the_host_key_commands(network, store):
    key = copies(network, "huawei_vrp")[8]
    device = network.inventory.devices[key]
    result = keyline(store.url, "poll", "--once", key, "no-such-device", "--via", "cli")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert ("no such active device with a cli_credential in the inventory: no-such-device"
            in result.stderr)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("device no-such-device: no such active device")
    assert lines[1].startswith(f"{key} ({device.management_address}:")
    assert "via cli: ok in " in lines[1], lines
    for port in device.ports:
        line = next(line for line in lines if line.strip().startswith(f"port {port.name}:"))
        assert "admin up, oper up" in line and "in_octets " in line, line

    listed = keyline(store.url, "cli", "host-keys", key)
    assert listed.returncode == 0, listed.stderr
    first = public_key(network.cli_host_key(key))
    assert listed.stdout.split("\n")[0].split()[:3] == [key, first.key_type, first.fingerprint]
    assert "trusted by first-use" in listed.stdout

    refused_nothing = keyline(store.url, "cli", "accept-host-key", key, "--by", "eng.liu")
    assert refused_nothing.returncode == 2
    assert "no host key offered: nothing to accept" in refused_nothing.stderr

    new = public_key(network.rotate_host_key(key))
    changed = keyline(store.url, "poll", "--once", key, "--via", "cli")
    assert changed.returncode == 0, changed.stderr
    assert "via cli: host-key-changed" in changed.stdout and new.fingerprint in changed.stdout
    listed = keyline(store.url, "cli", "host-keys", key)
    assert f"{new.fingerprint}  offered, refused" in listed.stdout

    accepted = keyline(store.url, "cli", "accept-host-key", key, "--by", "eng.liu")
    assert accepted.returncode == 0, accepted.stderr
    assert f"{new.fingerprint} trusted, accepted by eng.liu" in accepted.stdout
    again = keyline(store.url, "poll", "--once", key, "--via", "cli")
    assert "via cli: ok in " in again.stdout, again.stdout


def test_the_service_fetches_every_running_configuration_masked(network, store, cli_environ,
                                                                tmp_path):
    from collectors.service import CollectionService
    from lab.sim.cli_outputs import planted_secrets

    cli_devices = {key for key, device in network.inventory.devices.items()
                   if device.cli_credential}
    cli_sessions = sessions_for(store, workers=8)
    service = CollectionService(
        store.pool, spool_dir=tmp_path / "spool", interval_s_for=lambda group: 300.0,
        environ=cli_environ, timeout_s=3.0, retries=1, traps_enabled=False,
        startup_spread_s=2.0, flush_interval_s=0.2, health_interval_s=None,
        cli_sessions=cli_sessions, cli_interval_s=300.0, cli_config_interval_s=300.0)

    def fetched() -> dict[str, str]:
        with store.pool.connection() as conn:
            return dict(conn.execute(
                "SELECT d.key, c.text FROM device_configs c JOIN devices d ON d.id = c.device_id"
            ).fetchall())

    try:
        with service:
            configs = wait_for(lambda: (found := fetched()) and set(found) == cli_devices
                               and found, timeout_s=120, interval_s=0.5)
    finally:
        cli_sessions.close()
    for key, text in configs.items():
        assert key in text
        for secret in planted_secrets(key):
            assert secret not in text, key


# --- a key instead of a password, and an enable secret ---------------------------------------


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, dict]]:
    """The example network with the `lab-ssh` credential logging in with a key file (no
    password) and an enable secret: (network, inventory, environ)."""
    import asyncssh

    from config.inventory.model import SecretRef
    from lab.sim.network import SimulatedNetwork, snmpsim_available
    from lab.sim.ssh import free_tcp_port_on, with_cli_port
    from tests.snmp_agents import free_udp_port_on

    if not snmpsim_available():
        pytest.skip("snmpsim is not importable: run python3 dev.py test, which installs it")
    folder = tmp_path_factory.mktemp("keyed")
    key_file = folder / "id_ed25519"
    key_file.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    key_file.chmod(0o600)
    inventory = load_inventory([EXAMPLE_INVENTORY])
    credential = inventory.credentials["lab-ssh"]
    credential = replace(
        credential, params={**credential.params, "key_file": str(key_file)},
        secrets={"enable_secret": SecretRef("env", "KEYLINE_LAB_SSH_ENABLE_SECRET")})
    addresses = [str(d.management_address) for d in inventory.devices.values()]
    snmp_port = free_udp_port_on(addresses)
    inventory = replace(
        inventory, credentials={**inventory.credentials, "lab-ssh": credential},
        devices={key: replace(device, snmp_port=snmp_port)
                 for key, device in inventory.devices.items()})
    inventory = with_cli_port(inventory, free_tcp_port_on(addresses))
    environ = with_lab_defaults(inventory, {})
    with SimulatedNetwork(inventory, folder / "sim", environ=environ, control_socket=False,
                          cli=True) as simulated:
        yield simulated, inventory, environ


def test_a_key_file_logs_in_and_the_enable_secret_reaches_the_privileged_mode(keyed, db):
    network, inventory, environ = keyed
    with db.pool.connection() as conn:
        apply_inventory(conn, inventory)
    cisco = sorted(key for key, device in inventory.devices.items()
                   if device.cli_credential and device.platform == "cisco_ios")
    targets = targets_of(db, environ, *cisco[:2])
    target = targets[cisco[0]]
    assert target.password is None and target.key_file and target.enable_secret
    with sessions_for(db) as sessions:
        run = sessions.run(target, ["show running-config"], privileged=True)
        assert run.status is CliStatus.OK, run
        assert run.privileged and run.prompt.endswith("#")
        assert "hostname " + cisco[0] in run.outputs["show running-config"]
        network.cli_mode(cisco[1], "low-privilege")
        try:
            refused = sessions.run(targets[cisco[1]], ["show running-config"],
                                   privileged=True)
        finally:
            network.cli_mode(cisco[1], "normal")
    assert refused.status is CliStatus.PRIVILEGE_TOO_LOW, refused
    assert "enable refused" in refused.reason
    assert environ["KEYLINE_LAB_SSH_ENABLE_SECRET"] not in repr(refused)


# --- readings into samples (no device) -------------------------------------------------------


def test_cli_readings_become_the_samples_of_the_metrics_the_cli_wins() -> None:
    from collectors.cli import CliResult, cli_samples
    from collectors.cli_profiles import CliInterface, CliReading, load_cli_profiles

    profile = load_cli_profiles()["cisco_ios"]
    profile = replace(profile, prefer={**profile.prefer, "if_in_bps": "cli",
                                       "if_oper_status": "cli", "optical_rx_dbm": "cli",
                                       "if_out_bps": "snmp"})
    target = replace(a_target(9, 22), ports=((101, "TenGigabitEthernet0/1/0", None),
                                              (102, "Gi0/0/1", 7)))
    at = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)

    def result(in_octets: int, rx_dbm: float) -> CliResult:
        reading = CliReading(interfaces={
            "TenGigabitEthernet0/1/0": CliInterface(
                "TenGigabitEthernet0/1/0", oper_status="up", admin_status="up",
                in_octets=in_octets, out_octets=in_octets, optical_rx_dbm=rx_dbm),
            # short name in the inventory, long on the device; no counters, a printed rate
            "GigabitEthernet0/0/1": CliInterface("GigabitEthernet0/0/1", oper_status="down",
                                                 admin_status="up", in_bps=1234.0),
            "Loopback0": CliInterface("Loopback0", oper_status="up")})
        return CliResult(target, CliStatus.OK, None, reading, None, at, 0.25)

    first, readings = cli_samples(result(1_000_000, -3.5), profile, {}, read_at_s=100.0)
    second, _ = cli_samples(result(2_250_000, -3.6), profile, readings, read_at_s=110.0)
    values = {(s.object_id, s.metric): s.value for s in second}
    assert values[(101, "if_in_bps")] == (2_250_000 - 1_000_000) * 8 / 10.0
    assert values[(101, "if_oper_status")] == 1.0 and values[(102, "if_oper_status")] == 2.0
    assert values[(101, "optical_rx_dbm")] == -3.6
    assert values[(102, "if_in_bps")] == 1234.0  # no counters: the rate the device prints
    assert values[(9, "cli_response_ms")] == 250.0
    # SNMP wins the rest; the interface the inventory does not name gives nothing
    assert not any(metric in ("if_out_bps", "if_admin_status") for _, metric in values)
    assert {object_id for object_id, _ in values} == {9, 101, 102}
    assert (101, "if_in_bps") not in {(s.object_id, s.metric) for s in first}
