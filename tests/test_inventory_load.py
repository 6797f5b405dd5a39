"""Loading the inventory: the example inventory, merging files, defaults, positions, units."""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from config.inventory.loader import check_inventory, inventory_files, load_inventory
from config.inventory.model import (
    SERVICE_TYPES,
    CreditStep,
    Hop,
    Inventory,
    PortRef,
    PriorityTimes,
    SecretRef,
    Source,
    WeeklyHours,
)
from config.inventory.validate import parse_bps

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "example"


@pytest.fixture(scope="module")
def example() -> Inventory:
    return load_inventory([EXAMPLE])


def test_example_counts(example: Inventory):
    assert len(example.customers) >= 3
    assert len(example.devices) >= 12
    assert len(example.links) >= 25
    assert len(example.circuits) >= 20
    assert len(example.vpns) >= 2
    assert {"gold", "silver", "bronze"} <= set(example.sla_contracts)
    assert len(example.ports) == sum(len(d.ports) for d in example.devices.values())
    roles = Counter(device.role for device in example.devices.values())
    assert roles["P"] == 4 and 4 <= roles["PE"] <= 6 and roles["CE"] >= 3
    assert {"cisco_ios", "huawei_vrp", "hp_comware"} <= {
        device.platform for device in example.devices.values()}
    assert example.object_count() == (
        len(example.customers) + len(example.sites) + len(example.credentials)
        + len(example.devices) + len(example.ports) + len(example.links)
        + len(example.circuits) + len(example.vpns) + len(example.sla_contracts)
        + len(example.users))


def test_example_is_split_over_several_files(example: Inventory):
    files = {Path(obj.source.file).name for kind in (
        example.customers, example.devices, example.circuits, example.sla_contracts,
        example.users, example.credentials) for obj in kind.values()}
    assert files == {"customers.yaml", "network.yaml", "circuits.yaml", "sla.yaml",
                     "users.yaml", "credentials.yaml"}


def test_example_circuits_cover_every_service_type_with_and_without_path(example: Inventory):
    assert {c.service_type for c in example.circuits.values()} == set(SERVICE_TYPES)
    with_path = [c for c in example.circuits.values() if c.path]
    assert len(with_path) >= 5
    assert len(example.circuits) - len(with_path) >= 5


def test_example_devices_are_on_distinct_loopback_addresses(example: Inventory):
    addresses = [device.management_address for device in example.devices.values()]
    assert len(set(addresses)) == len(addresses)
    for address in addresses:
        assert isinstance(address, IPv4Address) and address.is_loopback
        assert str(address).startswith("127.0.1.")
    assert sorted(int(str(a).rsplit(".", 1)[1]) for a in addresses) == list(
        range(1, len(addresses) + 1))
    assert {device.snmp_port for device in example.devices.values()} == {1161}


def test_example_core_is_a_mesh_and_pes_are_dual_homed(example: Inventory):
    role = {key: device.role for key, device in example.devices.items()}
    neighbours: dict[str, set[str]] = defaultdict(set)
    for link in example.links.values():
        neighbours[link.a.device].add(link.z.device)
        neighbours[link.z.device].add(link.a.device)
    for device, device_role in role.items():
        if device_role == "P":
            assert sum(role[n] == "P" for n in neighbours[device]) >= 2
        if device_role == "PE":
            assert sum(role[n] == "P" for n in neighbours[device]) == 2
        if device_role == "CE":
            assert any(role[n] == "PE" for n in neighbours[device])


def test_example_circuit_ends_are_connected(example: Inventory):
    """Circuits without a declared path must have one to compute."""
    neighbours: dict[str, set[str]] = defaultdict(set)
    for link in example.links.values():
        neighbours[link.a.device].add(link.z.device)
        neighbours[link.z.device].add(link.a.device)
    for circuit in example.circuits.values():
        seen, queue = {circuit.a_end.device}, deque([circuit.a_end.device])
        while queue:
            for neighbour in neighbours[queue.popleft()] - seen:
                seen.add(neighbour)
                queue.append(neighbour)
        assert circuit.z_end.device in seen, circuit.key


def test_example_vpns_credentials_users_and_contracts(example: Inventory):
    for vpn in example.vpns.values():
        assert vpn.circuits and vpn.sites
        assert all(example.circuits[c].customer == vpn.customer for c in vpn.circuits)
    kinds = {c.kind: c for c in example.credentials.values()}
    assert kinds["snmp_v2c"].secrets == {
        "community": SecretRef("env", "KEYLINE_LAB_SNMP_COMMUNITY")}
    assert kinds["snmp_v3"].params["security_level"] == "authPriv"
    assert (kinds["snmp_v3"].params["auth_protocol"], kinds["snmp_v3"].params["priv_protocol"]
            ) == ("SHA", "AES")
    assert set(kinds["snmp_v3"].secrets) == {"auth_key", "priv_key"}
    assert all(ref.source == "env" for ref in kinds["snmp_v3"].secrets.values())
    assert "ssh" in kinds
    roles = Counter(user.role for user in example.users.values())
    assert roles["admin"] >= 1 and roles["noc"] >= 1 and roles["engineer"] >= 1
    assert roles["account_manager"] >= 1
    assert {u.customer for u in example.users.values() if u.role == "customer"} == set(
        example.customers)
    for customer in example.customers.values():
        assert example.users[customer.account_manager].role == "account_manager"
    gold, silver, bronze = (example.sla_contracts[k] for k in ("gold", "silver", "bronze"))
    assert gold.availability_target_pct > silver.availability_target_pct > (
        bronze.availability_target_pct)
    assert gold.monthly_charge > silver.monthly_charge > bronze.monthly_charge
    assert gold.calendar.hours == () and bronze.calendar.timezone == "Asia/Shanghai"
    assert bronze.calendar.hours[0] == WeeklyHours(("mon", "tue", "wed", "thu", "fri"),
                                                   "08:30", "18:00")
    assert "2025-10-01" in bronze.calendar.holidays
    # 2025's National Day make-up days are written in the file, 2026's filled from the
    # chinesecalendar package; each date says where it came from
    assert bronze.calendar.working_dates[:2] == ("2025-09-28", "2025-10-11")
    assert bronze.calendar.sources["2025-09-28"].endswith("sla.yaml:109")
    assert bronze.calendar.sources["2026-10-10"] == "chinesecalendar 1.11.0"
    assert "2026-10-10" in bronze.calendar.working_dates
    assert "2026-10-01" in bronze.calendar.holidays
    assert gold.priorities["P1"] == PriorityTimes(15, 240)
    assert [step.below_pct for step in silver.credits] == [99.9, 99.5, 99.0]


def test_example_loads_the_same_from_files_or_folder(example: Inventory):
    files = inventory_files([EXAMPLE])
    assert [f.name for f in files] == sorted(f.name for f in files)
    assert load_inventory([str(f) for f in reversed(files)]).object_count() == (
        example.object_count())
    # A file reached twice (folder and file) is read once: no duplicates.
    assert load_inventory([EXAMPLE, files[0]]).object_count() == example.object_count()


# --- a small inventory, positions and defaults -------------------------------------------------

NETWORK = """\
credentials:
  - {id: v2c, kind: snmp_v2c, community: {env: KEYLINE_TEST_COMMUNITY}}
  - id: v3
    kind: snmp_v3
    username: poller
    security_level: authNoPriv
    auth_protocol: SHA256
    auth_key: {file: /etc/keyline/auth-key}
devices:
  - name: r1
    role: PE
    platform: cisco_xr
    management_address: "2001:db8::1"
    snmp_credential: v3
    ports:
      - {name: Gi0/0/0/0, if_index: 7, speed_bps: 10G, description: core}
      - {name: Gi0/0/0/1, speed_bps: 2.5G}
      - {name: Gi0/0/0/2, speed_bps: 100000000}
  - name: r2
    role: P
    platform: juniper_junos
    management_address: 127.0.1.2
    snmp_credential: v2c
    ports: [{name: xe-0/0/0}]
links:
  - a: {device: r2, port: xe-0/0/0}
    z: {device: r1, port: Gi0/0/0/0}
"""

SERVICES = """\
customers:
  - {id: acme, name: ACME 银行}
sites:
  - {id: acme-hq, name: HQ, customer: acme}
sla_contracts:
  - id: basic
    name: Basic
    availability_target_pct: 99
    calendar:
      timezone: UTC
      hours:
        - {days: [mon-wed, fri], start: "00:00", end: "24:00"}
    priorities:
      P1: {response_min: 1, resolution_min: 1}
      P2: {response_min: 2, resolution_min: 2}
      P3: {response_min: 3, resolution_min: 3}
      P4: {response_min: 4, resolution_min: 4}
    monthly_charge: 0
    currency: USD
circuits:
  - id: ACME-1
    customer: acme
    service_type: internet_access
    bandwidth_bps: 1.5M
    a_end: {device: r1, port: Gi0/0/0/1}
    z_end: {device: r2, port: xe-0/0/0}
    sla_contract: basic
    monthly_charge: 99.5
    path:
      - {device: r1, in_port: Gi0/0/0/1, out_port: Gi0/0/0/0}
      - {device: r2, in_port: xe-0/0/0, out_port: xe-0/0/0}
vpns:
  - {id: acme-vpn, customer: acme, name: ACME, sites: [acme-hq], circuits: [ACME-1]}
users:
  - {login: acme.ops, role: customer, customer: acme, full_name: 张伟, email: a@acme.example}
"""


@pytest.fixture
def small(tmp_path: Path) -> tuple[Path, Inventory]:
    (tmp_path / "network.yaml").write_text(NETWORK, encoding="utf-8")
    (tmp_path / "services.yml").write_text(SERVICES, encoding="utf-8")
    (tmp_path / ".draft.yaml").write_text("not: [valid", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("ignored", encoding="utf-8")
    return tmp_path, load_inventory([tmp_path])


def test_files_merge_and_keep_their_positions(small: tuple[Path, Inventory]):
    folder, inventory = small
    network, services = str(folder / "network.yaml"), str(folder / "services.yml")
    assert inventory.credentials["v3"].source == Source(network, 3)
    assert inventory.devices["r1"].source == Source(network, 10)
    assert inventory.devices["r1"].ports[1].source == Source(network, 17)
    assert inventory.devices["r2"].ports[0].source == Source(network, 24)
    assert next(iter(inventory.links.values())).source == Source(network, 26)
    assert inventory.customers["acme"].source == Source(services, 2)
    circuit = inventory.circuits["ACME-1"]
    assert circuit.source == Source(services, 21)
    assert circuit.path == (
        Hop("r1", "Gi0/0/0/1", "Gi0/0/0/0", Source(services, 30)),
        Hop("r2", "xe-0/0/0", "xe-0/0/0", Source(services, 31)),
    )
    assert inventory.users["acme.ops"].source == Source(services, 35)


def test_values_and_defaults(small: tuple[Path, Inventory]):
    _folder, inventory = small
    r1, r2 = inventory.devices["r1"], inventory.devices["r2"]
    assert str(r1.management_address) == "2001:db8::1"
    assert (r1.poller_group, r1.snmp_port, r1.cli_credential, r1.site) == (
        "default", 161, None, None)
    assert [(p.name, p.if_index, p.speed_bps, p.description) for p in r1.ports] == [
        ("Gi0/0/0/0", 7, 10_000_000_000, "core"),
        ("Gi0/0/0/1", None, 2_500_000_000, None),
        ("Gi0/0/0/2", None, 100_000_000, None),
    ]
    assert r2.ports[0].key == "r2:xe-0/0/0"
    (link,) = inventory.links.values()
    assert (link.a, link.z, link.cost) == (PortRef("r2", "xe-0/0/0"),
                                           PortRef("r1", "Gi0/0/0/0"), 10)
    assert link.key == "r1:Gi0/0/0/0--r2:xe-0/0/0"
    v3 = inventory.credentials["v3"]
    assert v3.params == {"username": "poller", "security_level": "authNoPriv",
                         "auth_protocol": "SHA256"}
    assert v3.secrets == {"auth_key": SecretRef("file", "/etc/keyline/auth-key")}
    circuit = inventory.circuits["ACME-1"]
    assert (circuit.bandwidth_bps, circuit.monthly_charge, circuit.description) == (
        1_500_000, 99.5, None)
    contract = inventory.sla_contracts["basic"]
    assert contract.calendar.hours == (
        WeeklyHours(("mon", "tue", "wed", "fri"), "00:00", "24:00"),)
    assert contract.credits == () and contract.latency_target_ms is None
    assert inventory.customers["acme"].account_manager is None
    assert inventory.users["acme.ops"].full_name == "张伟"


def test_a_section_may_span_files(tmp_path: Path):
    (tmp_path / "a.yaml").write_text("customers:\n  - {id: one, name: One}\n")
    (tmp_path / "b.yaml").write_text("customers:\n  - {id: two, name: Two}\n"
                                     "sites:\n  - {id: s, name: S, customer: one}\n")
    (tmp_path / "c.yaml").write_text("# nothing yet\n")
    inventory = load_inventory([tmp_path / "b.yaml", tmp_path / "a.yaml", tmp_path / "c.yaml"])
    assert list(inventory.customers) == ["two", "one"]
    assert inventory.sites["s"].customer == "one"


def test_yaml_anchors_and_merge_keys(tmp_path: Path):
    (tmp_path / "devices.yaml").write_text("""\
credentials:
  - {id: v2c, kind: snmp_v2c, community: {env: C}}
devices:
  - &ce
    name: ce1
    role: CE
    platform: hp_comware
    management_address: 127.0.1.1
    snmp_credential: v2c
    snmp_port: 1161
  - <<: *ce
    name: ce2
    management_address: 127.0.1.2
""")
    inventory = load_inventory([tmp_path])
    assert inventory.devices["ce2"].platform == "hp_comware"
    assert inventory.devices["ce2"].snmp_port == 1161
    assert inventory.devices["ce2"].source.line == 11


def test_empty_inventory(tmp_path: Path):
    assert load_inventory([]).object_count() == 0
    (tmp_path / "empty.yaml").write_text("")
    assert check_inventory([tmp_path]) == (Inventory(), [])


@pytest.mark.parametrize(("value", "bps"), [
    (1_000_000_000, 1_000_000_000),
    ("1000", 1000),
    ("10k", 10_000),
    ("10K", 10_000),
    ("100M", 100_000_000),
    ("1G", 1_000_000_000),
    ("2.5G", 2_500_000_000),
    ("100Mbps", 100_000_000),
    ("1T", 1_000_000_000_000),
    (1e9, 1_000_000_000),
    ("1.0000000001k", None),
    ("1 Gig", None),
    ("G", None),
    (True, None),
    (None, None),
    (1.5, None),
])
def test_parse_bps(value: object, bps: int | None):
    assert parse_bps(value) == bps


def test_credit_wording_and_unknown_rule(tmp_path: Path):
    (tmp_path / "sla.yaml").write_text("""\
sla_contracts:
  - id: worded
    name: Worded
    availability_target_pct: 99.9
    calendar: {timezone: Europe/Berlin}
    priorities:
      P1: {response_min: 15, resolution_min: 240}
      P2: {response_min: 30, resolution_min: 480}
      P3: {response_min: 60, resolution_min: 960}
      P4: {response_min: 240, resolution_min: 2880}
    credits:
      - {below_pct: 99.9, credit_pct: 10}
      - {at_or_below_pct: 99.5, credit_pct: 25}
    monthly_charge: 100
    currency: EUR
    unknown_counts_as: down
  - id: plain
    name: Plain
    availability_target_pct: 99.9
    calendar: {timezone: Europe/Berlin}
    priorities:
      P1: {response_min: 15, resolution_min: 240}
      P2: {response_min: 30, resolution_min: 480}
      P3: {response_min: 60, resolution_min: 960}
      P4: {response_min: 240, resolution_min: 2880}
    monthly_charge: 100
    currency: EUR
""")
    inventory = load_inventory([tmp_path])
    worded, plain = inventory.sla_contracts["worded"], inventory.sla_contracts["plain"]
    assert worded.credits == (CreditStep(99.9, 10, inclusive=False),
                              CreditStep(99.5, 25, inclusive=True))
    assert worded.unknown_counts_as == "down"
    # not said: unknown time is left out of availability, never silently counted as up
    assert plain.unknown_counts_as == "excluded"
