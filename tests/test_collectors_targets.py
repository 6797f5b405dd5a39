"""Poll targets built from the store: addresses, resolved credentials, ifIndex -> port id."""

from __future__ import annotations

from collectors.targets import load_poll_targets
from config.inventory.loader import load_inventory
from keyline.wiring import EXAMPLE_INVENTORY
from lab.sim.access import with_lab_defaults
from store.inventory import apply_inventory


def test_targets_for_the_example(db):
    inventory = load_inventory([EXAMPLE_INVENTORY])
    environ = with_lab_defaults(inventory, {})
    with db.pool.connection() as conn:
        apply_inventory(conn, inventory)
        targets, problems = load_poll_targets(conn, environ=environ)
    assert problems == []
    assert {t.device_key for t in targets} == set(inventory.devices)
    for target in targets:
        device = inventory.devices[target.device_key]
        assert (target.host, target.port) == (str(device.management_address), device.snmp_port)
        assert target.poller_group == device.poller_group
        declared = {p.if_index for p in device.ports if p.if_index is not None}
        assert set(target.ports_by_if_index) == declared
        credential = inventory.credentials[device.snmp_credential]
        if credential.kind == "snmp_v2c":
            assert target.credential.version == "v2c"
            assert target.credential.community.get_secret_value() == environ[
                credential.secrets["community"].name]
        else:
            assert target.credential.version == "v3"
            assert target.credential.username == credential.params["username"]
            assert target.credential.priv_key is not None
        assert "keyline-lab" not in repr(target)  # secrets stay masked


def test_missing_secret_leaves_one_device_out_with_a_reason(db):
    inventory = load_inventory([EXAMPLE_INVENTORY])
    environ = with_lab_defaults(inventory, {})
    del environ["KEYLINE_LAB_SNMP_AUTH_KEY"]
    with db.pool.connection() as conn:
        apply_inventory(conn, inventory)
        targets, problems = load_poll_targets(conn, environ=environ)
        v3_devices = {d.key for d in inventory.devices.values()
                      if inventory.credentials[d.snmp_credential].kind == "snmp_v3"}
        assert v3_devices
        assert {p.device_key for p in problems} == v3_devices
        assert all("KEYLINE_LAB_SNMP_AUTH_KEY" in str(p) for p in problems)
        assert {t.device_key for t in targets} == set(inventory.devices) - v3_devices

        some = sorted(inventory.devices)[:2]
        targets, problems = load_poll_targets(conn, environ=with_lab_defaults(inventory, {}),
                                              device_keys=[*some, "no-such-device"])
        assert [t.device_key for t in targets] == some
        assert [str(p) for p in problems] == [
            "device no-such-device: no such active device in the inventory"]


def _with_snmp_v1(inventory, device_key: str):
    """The inventory with `device_key` polled through a new snmp_v1 credential."""
    from dataclasses import replace

    from config.inventory.model import Credential, SecretRef

    device = inventory.devices[device_key]
    v1 = Credential("old-cpe-v1", "snmp_v1", {},
                    {"community": SecretRef("env", "KEYLINE_TEST_V1_COMMUNITY")}, device.source)
    return replace(inventory, credentials={**inventory.credentials, v1.key: v1},
                   devices={**inventory.devices,
                            device_key: replace(device, snmp_credential=v1.key)})


def test_snmp_v1_credential_becomes_a_v1_target():
    """The mapping alone (the store's credential kinds are checked below)."""
    from collectors.targets import _credential

    credential = _credential(
        "snmp_v1", {"secrets": {"community": {"source": "env", "name": "V1_COMMUNITY"}}},
        {"V1_COMMUNITY": "old-cpe-community"})
    assert credential.version == "v1"
    assert credential.community.get_secret_value() == "old-cpe-community"
    assert credential.username is None and credential.auth_key is None


def test_snmp_v1_device_from_the_store(db):
    inventory = load_inventory([EXAMPLE_INVENTORY])
    key = sorted(inventory.devices)[0]
    inventory = _with_snmp_v1(inventory, key)
    environ = {**with_lab_defaults(inventory, {}), "KEYLINE_TEST_V1_COMMUNITY": "cpe-v1"}
    with db.pool.connection() as conn:
        apply_inventory(conn, inventory)
        targets, problems = load_poll_targets(conn, environ=environ, device_keys=[key])
    assert problems == []
    assert targets[0].credential.version == "v1"
    assert targets[0].credential.community.get_secret_value() == "cpe-v1"
