"""Inventory errors: every kind of problem, with its file, line, field, message and hint.

Each case adds one small file (more.yaml) to a small valid inventory (base.yaml) and checks
the exact problems reported. Line numbers are those of more.yaml, 1-based.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from config.inventory.loader import check_inventory, load_inventory
from config.inventory.model import InventoryError, InventoryProblem

BASE = """\
customers:
  - {id: acme, name: ACME Bank, account_manager: am.li}
  - {id: globex, name: Globex Retail, account_manager: am.li}
sites:
  - {id: pop1, name: POP 1}
  - {id: acme-hq, name: ACME HQ, customer: acme}
  - {id: globex-hq, name: Globex HQ, customer: globex}
credentials:
  - {id: v2c, kind: snmp_v2c, community: {env: KEYLINE_TEST_COMMUNITY}}
  - {id: ssh, kind: ssh, username: keyline, password: {env: KEYLINE_TEST_SSH}}
devices:
  - name: ce1
    site: acme-hq
    role: CE
    platform: cisco_ios
    management_address: 127.0.1.1
    snmp_credential: v2c
    ports:
      - {name: Gi0/0/0}
      - {name: Gi0/0/1}
  - name: pe1
    site: pop1
    role: PE
    platform: huawei_vrp
    management_address: 127.0.1.2
    snmp_credential: v2c
    cli_credential: ssh
    ports:
      - {name: GE0/0/0}
      - {name: GE0/0/1}
      - {name: Eth-Trunk1}
  - name: p1
    site: pop1
    role: P
    platform: hp_comware
    management_address: 127.0.1.3
    snmp_credential: v2c
    ports:
      - {name: Ten-GigabitEthernet1/0/1}
      - {name: Ten-GigabitEthernet1/0/2}
links:
  - {a: {device: ce1, port: Gi0/0/0}, z: {device: pe1, port: GE0/0/0}}
  - {a: {device: pe1, port: Eth-Trunk1}, z: {device: p1, port: Ten-GigabitEthernet1/0/1}}
sla_contracts:
  - id: gold
    name: Gold
    availability_target_pct: 99.9
    calendar: {timezone: Asia/Shanghai}
    priorities:
      P1: {response_min: 15, resolution_min: 240}
      P2: {response_min: 30, resolution_min: 480}
      P3: {response_min: 60, resolution_min: 960}
      P4: {response_min: 240, resolution_min: 2880}
    monthly_charge: 10000
    currency: CNY
  - id: globex-special
    name: Globex special
    customer: globex
    availability_target_pct: 99.5
    calendar: {timezone: Asia/Shanghai}
    priorities:
      P1: {response_min: 15, resolution_min: 240}
      P2: {response_min: 30, resolution_min: 480}
      P3: {response_min: 60, resolution_min: 960}
      P4: {response_min: 240, resolution_min: 2880}
    monthly_charge: 8000
    currency: CNY
circuits:
  - id: ACME-1
    customer: acme
    service_type: leased_line
    bandwidth_bps: 100M
    a_end: {device: ce1, port: Gi0/0/1}
    z_end: {device: p1, port: Ten-GigabitEthernet1/0/2}
    sla_contract: gold
users:
  - {login: am.li, role: account_manager}
  - {login: noc.wu, role: noc}
  - {login: acme.ops, role: customer, customer: acme}
"""

# A valid SLA contract to break one field at a time (as more.yaml: line 1 is sla_contracts:).
SLA = """\
sla_contracts:
  - id: silver
    name: Silver
    availability_target_pct: 99.5
    latency_target_ms: 50
    jitter_target_ms: 10
    loss_target_pct: 0.5
    calendar:
      timezone: Asia/Shanghai
      hours:
        - {days: [mon-fri], start: "08:00", end: "18:00"}
      holidays: [2025-10-01]
    priorities:
      P1: {response_min: 30, resolution_min: 240}
      P2: {response_min: 60, resolution_min: 480}
      P3: {response_min: 120, resolution_min: 960}
      P4: {response_min: 240, resolution_min: 2880}
    credits:
      - {below_pct: 99.5, credit_pct: 10}
      - {below_pct: 99.0, credit_pct: 25}
    monthly_charge: 5000
    currency: CNY
"""

# A circuit over ce1 -> pe1 -> p1 with a declared path, to break one hop at a time.
PATH = """\
circuits:
  - id: ACME-2
    customer: acme
    service_type: mpls_l3vpn
    bandwidth_bps: 10M
    a_end: {device: ce1, port: Gi0/0/1}
    z_end: {device: p1, port: Ten-GigabitEthernet1/0/2}
    path:
      - {device: ce1, in_port: Gi0/0/1, out_port: Gi0/0/0}
      - {device: pe1, in_port: GE0/0/0, out_port: Eth-Trunk1}
      - {device: p1, in_port: Ten-GigabitEthernet1/0/1, out_port: Ten-GigabitEthernet1/0/2}
"""


def sla(old: str, new: str) -> str:
    assert old in SLA, old
    return SLA.replace(old, new, 1)


def path(old: str, new: str) -> str:
    assert old in PATH, old
    return PATH.replace(old, new, 1)


def problems_for(tmp_path: Path, text: str) -> list[InventoryProblem]:
    (tmp_path / "base.yaml").write_text(BASE, encoding="utf-8")
    (tmp_path / "more.yaml").write_text(text, encoding="utf-8")
    inventory, problems = check_inventory([tmp_path])
    assert (inventory is None) == bool(problems)
    return problems


def test_base_inventory_is_valid(tmp_path: Path):
    assert problems_for(tmp_path, "") == []
    assert problems_for(tmp_path, SLA) == []
    assert problems_for(tmp_path, PATH) == []


# (line in more.yaml, field, message, hint or None when the hint is not checked)
Expected = tuple[int, str, str, str | None]

CASES: list = [
    # --- structure ---------------------------------------------------------------------------
    pytest.param("customer:\n  - {id: x, name: X}\n", [
        (1, "customer", "unknown section 'customer'", "did you mean 'customers'?"),
    ], id="unknown-section"),
    pytest.param("sites:\n  id: x\n", [
        (1, "sites", "expected a list of sites, got a mapping", None),
    ], id="section-not-a-list"),
    pytest.param("sites:\n  - {id: s9, name: S9, cuty: Beijing}\n", [
        (2, "sites[0].cuty", "unknown field 'cuty' in a site", "did you mean 'city'?"),
    ], id="unknown-field"),
    pytest.param("sites:\n  - {id: s9, name: S9, zzz: 1}\n", [
        (2, "sites[0].zzz", "unknown field 'zzz' in a site",
         "known fields: id, name, customer, address, city"),
    ], id="unknown-field-no-close-match"),
    pytest.param("sites:\n  - id: s9\n    city: Beijing\n", [
        (2, "sites[0].name", "missing required field 'name'", None),
    ], id="missing-field"),
    pytest.param("sites:\n  - id: s9\n    name:\n", [
        (3, "sites[0].name", "missing required field 'name'", None),
    ], id="empty-required-field"),
    pytest.param("sites:\n  - s9\n", [
        (2, "sites[0]", "expected a mapping (a site), got the text 's9'", None),
    ], id="object-not-a-mapping"),
    # --- wrong types ---------------------------------------------------------------------------
    pytest.param("sites:\n  - id: 1001\n    name: S\n", [
        (2, "sites[0].id", "expected text, got the number 1001", 'quote it: "1001"'),
    ], id="number-for-text"),
    pytest.param(PATH.replace("bandwidth_bps: 10M", "bandwidth_bps: fast"), [
        (5, "circuits[0].bandwidth_bps", "expected bits per second, got the text 'fast'",
         'a whole number (1000000000) or one with a k, M, G or T suffix ("1G", "100M")'),
    ], id="text-for-bps"),
    pytest.param(sla("monthly_charge: 5000", 'monthly_charge: "5000"'), [
        (21, "sla_contracts[0].monthly_charge", "expected a number, got the text '5000'",
         "write it without quotes"),
    ], id="text-for-number"),
    pytest.param("links:\n  - a: {device: pe1, port: GE0/0/1}\n    z: {device: p1, port: "
                 "Ten-GigabitEthernet1/0/2}\n    cost: 1.5\n", [
        (4, "links[0].cost", "expected a whole number, got the number 1.5", None),
    ], id="fraction-for-integer"),
    pytest.param("vpns:\n  - {id: v, customer: acme, name: V, sites: acme-hq}\n", [
        (2, "vpns[0].sites", "expected a list of site ids, got the text 'acme-hq'", None),
    ], id="text-for-list"),
    # --- positive quantities -------------------------------------------------------------------
    pytest.param(PATH.replace("bandwidth_bps: 10M", "bandwidth_bps: 0"), [
        (5, "circuits[0].bandwidth_bps", "bandwidth_bps must be a positive integer, got 0", None),
    ], id="bandwidth-zero"),
    pytest.param(PATH.replace("bandwidth_bps: 10M", 'bandwidth_bps: "2.5k5"'), [
        (5, "circuits[0].bandwidth_bps", "expected bits per second, got the text '2.5k5'", None),
    ], id="bandwidth-bad-suffix"),
    pytest.param(PATH.replace("bandwidth_bps: 10M", "bandwidth_bps: 0.5"), [
        (5, "circuits[0].bandwidth_bps", "expected bits per second, got the number 0.5", None),
    ], id="bandwidth-fraction"),
    pytest.param("devices:\n  - name: ce9\n    role: CE\n    platform: cisco_ios\n"
                 "    management_address: 127.0.1.9\n    snmp_credential: v2c\n"
                 "    ports:\n      - {name: Gi0/0/0, speed_bps: -1000}\n", [
        (8, "devices[0].ports[0].speed_bps", "speed_bps must be a positive integer, got -1000",
         None),
    ], id="speed-negative"),
    pytest.param("links:\n  - a: {device: pe1, port: GE0/0/1}\n    z: {device: p1, port: "
                 "Ten-GigabitEthernet1/0/2}\n    cost: 0\n", [
        (4, "links[0].cost", "cost must be a positive integer, got 0", None),
    ], id="cost-zero"),
    # --- duplicates ----------------------------------------------------------------------------
    pytest.param("customers:\n  - {id: initech, name: A}\n  - {id: initech, name: B}\n", [
        (3, "customers[1].id", "duplicate customer 'initech': first declared at {dir}/more.yaml:2",
         None),
    ], id="duplicate-in-file"),
    pytest.param("devices:\n  - name: ce9\n    role: CE\n    platform: cisco_ios\n"
                 "    management_address: 127.0.1.9\n    snmp_credential: v2c\n"
                 "    ports:\n      - {name: Gi0/0/0, if_index: 1}\n"
                 "      - {name: Gi0/0/1, if_index: 1}\n      - {name: Gi0/0/0}\n", [
        (9, "devices[0].ports[1].if_index", "if_index 1 is already used by port Gi0/0/0 (line 8)",
         None),
        (10, "devices[0].ports[2].name",
         "port Gi0/0/0 is declared twice on this device (first at {dir}/more.yaml:8)", None),
    ], id="duplicate-port"),
    pytest.param("links:\n  - {a: {device: p1, port: Ten-GigabitEthernet1/0/1},"
                 " z: {device: pe1, port: Eth-Trunk1}}\n", [
        (2, "links[0].a",
         "link p1:Ten-GigabitEthernet1/0/1 -- pe1:Eth-Trunk1 is declared twice"
         " (first at {dir}/base.yaml:43)", None),
    ], id="duplicate-link-reversed"),
    pytest.param("devices:\n  - name: ce9\n    role: CE\n    platform: cisco_ios\n"
                 "    management_address: 127.0.1.1\n    snmp_credential: v2c\n", [
        (5, "devices[0].management_address", "127.0.1.1 port 161 is already the address of"
         " device ce1 ({dir}/base.yaml:12)", None),
    ], id="duplicate-management-address"),
    # --- values from a fixed set ---------------------------------------------------------------
    pytest.param(PATH.replace("service_type: mpls_l3vpn", "service_type: l3vpn"), [
        (4, "circuits[0].service_type", "unknown service type 'l3vpn'",
         "did you mean 'mpls_l3vpn'? allowed: leased_line, mpls_l3vpn, e_line, internet_access"),
    ], id="service-type"),
    pytest.param("devices:\n  - name: ce9\n    role: pe\n    platform: cisco_ios\n"
                 "    management_address: 127.0.1.9\n    snmp_credential: v2c\n", [
        (3, "devices[0].role", "unknown device role 'pe'",
         "did you mean 'PE'? allowed: PE, P, CE, switch, firewall, server"),
    ], id="device-role"),
    pytest.param("devices:\n  - name: ce9\n    role: CE\n    platform: cisco_iosxe\n"
                 "    management_address: 127.0.1.9\n    snmp_credential: v2c\n", [
        (4, "devices[0].platform", "unknown platform 'cisco_iosxe'",
         "did you mean 'cisco_ios'? allowed: cisco_ios, cisco_xr, huawei_vrp, hp_comware,"
         " juniper_junos, linux"),
    ], id="platform"),
    pytest.param("credentials:\n  - {id: t, kind: telnet, username: u}\n", [
        (2, "credentials[0].kind", "unknown credential kind 'telnet'",
         "allowed: snmp_v1, snmp_v2c, snmp_v3, ssh"),
    ], id="credential-kind"),
    pytest.param("credentials:\n  - id: v3\n    kind: snmp_v3\n    username: u\n"
                 "    security_level: authPriv\n    auth_protocol: SHA1\n"
                 "    auth_key: {env: A}\n    priv_protocol: AES128\n    priv_key: {env: P}\n", [
        (6, "credentials[0].auth_protocol", "unknown auth protocol 'SHA1'",
         "did you mean 'SHA'? allowed: MD5, SHA, SHA224, SHA256, SHA384, SHA512"),
        (8, "credentials[0].priv_protocol", "unknown priv protocol 'AES128'",
         "did you mean 'AES'? allowed: DES, AES, AES192, AES256, AES192B, AES256B"),
    ], id="snmp-protocols"),
    pytest.param("credentials:\n  - id: v3\n    kind: snmp_v3\n    username: u\n"
                 "    security_level: authpriv\n", [
        (5, "credentials[0].security_level", "unknown security level 'authpriv'",
         "did you mean 'authPriv'? allowed: noAuthNoPriv, authNoPriv, authPriv"),
    ], id="security-level"),
    pytest.param("users:\n  - {login: bob, role: operator}\n", [
        (2, "users[0].role", "unknown user role 'operator'",
         "allowed: noc, engineer, account_manager, customer, admin"),
    ], id="user-role"),
    pytest.param(sla("      P4: {response_min: 240", "      P5: {response_min: 240"), [
        (13, "sla_contracts[0].priorities.P4", "missing priority P4", None),
        (17, "sla_contracts[0].priorities.P5", "unknown priority 'P5'",
         "allowed: P1, P2, P3, P4"),
    ], id="priority"),
    pytest.param(sla("days: [mon-fri]", "days: [mon, tues]"), [
        (11, "sla_contracts[0].calendar.hours[0].days[1]", "unknown weekday 'tues'",
         'allowed: mon, tue, wed, thu, fri, sat, sun (or a range such as "mon-fri")'),
    ], id="weekday"),
    pytest.param(sla("days: [mon-fri]", "days: [fri-mon]"), [
        (11, "sla_contracts[0].calendar.hours[0].days[0]", "weekday range 'fri-mon' runs"
         " backwards", None),
    ], id="weekday-range-backwards"),
    # --- addresses -----------------------------------------------------------------------------
    pytest.param("devices:\n  - name: ce9\n    role: CE\n    platform: cisco_ios\n"
                 "    management_address: 10.0.0.256\n    snmp_credential: v2c\n", [
        (5, "devices[0].management_address", "'10.0.0.256' is not a valid IP address", None),
    ], id="bad-ip"),
    pytest.param("devices:\n  - name: ce9\n    role: CE\n    platform: cisco_ios\n"
                 "    management_address: 127.0.1.9/32\n    snmp_credential: v2c\n"
                 "    snmp_port: 70000\n", [
        (5, "devices[0].management_address", "'127.0.1.9/32' is not a valid IP address",
         "an IPv4 (192.0.2.1) or IPv6 (2001:db8::1) address, without prefix length or port"),
        (7, "devices[0].snmp_port", "snmp_port must be between 1 and 65535, got 70000", None),
    ], id="ip-with-prefix-and-bad-port"),
    # --- references ----------------------------------------------------------------------------
    pytest.param(PATH.replace("customer: acme", "customer: acmee"), [
        (3, "circuits[0].customer", "unknown customer 'acmee'", "did you mean 'acme'?"),
    ], id="circuit-customer"),
    pytest.param(PATH.replace("    bandwidth_bps: 10M\n",
                              "    bandwidth_bps: 10M\n    sla_contract: platinum\n"), [
        (6, "circuits[0].sla_contract", "unknown SLA contract 'platinum'",
         "declare it under sla_contracts: (none is named so)"),
    ], id="circuit-sla-contract"),
    pytest.param(PATH.replace("    bandwidth_bps: 10M\n",
                              "    bandwidth_bps: 10M\n    sla_contract: globex-special\n"), [
        (6, "circuits[0].sla_contract",
         "SLA contract globex-special belongs to customer globex, not acme", None),
    ], id="circuit-sla-contract-of-another-customer"),
    pytest.param("circuits:\n  - id: C9\n    customer: acme\n    service_type: e_line\n"
                 "    bandwidth_bps: 1G\n    a_end: {device: ce2, port: Gi0/0/1}\n"
                 "    z_end: {device: pe1, port: GE0/0/2}\n", [
        (6, "circuits[0].a_end.device", "unknown device 'ce2'", "did you mean 'ce1'?"),
        (7, "circuits[0].z_end.port", "device pe1 has no port 'GE0/0/2'",
         "ports of pe1, closest first: GE0/0/0, GE0/0/1, Eth-Trunk1"),
    ], id="circuit-device-and-port"),
    pytest.param("circuits:\n  - id: C9\n    customer: acme\n    service_type: e_line\n"
                 "    bandwidth_bps: 1G\n    a_end:\n      device: ce1\n      port: Gi0/0/1\n"
                 "    z_end:\n      device: ce1\n      port: Gi0/0/1\n", [
        (9, "circuits[0].z_end", "the Z end is the A end (ce1:Gi0/0/1)",
         "a circuit joins two different ports"),
    ], id="circuit-a-end-is-z-end"),
    pytest.param("devices:\n  - name: ce9\n    site: acme-branch\n    role: CE\n"
                 "    platform: cisco_ios\n    management_address: 127.0.1.9\n"
                 "    snmp_credential: ssh\n    cli_credential: v2c\n", [
        (3, "devices[0].site", "unknown site 'acme-branch'", "did you mean 'acme-hq'?"),
        (7, "devices[0].snmp_credential",
         "credential ssh is ssh, but snmp_credential must be snmp_v1, snmp_v2c or snmp_v3", None),
        (8, "devices[0].cli_credential", "credential v2c is snmp_v2c, but cli_credential must"
         " be ssh", None),
    ], id="device-site-and-credential-kinds"),
    pytest.param("devices:\n  - name: ce9\n    role: CE\n    platform: cisco_ios\n"
                 "    management_address: 127.0.1.9\n    snmp_credential: snmp\n", [
        (6, "devices[0].snmp_credential", "unknown credential 'snmp'", None),
    ], id="device-unknown-credential"),
    pytest.param("links:\n  - a: {device: pe1, port: GE0/0/9}\n"
                 "    z: {device: p2, port: Ten-GigabitEthernet1/0/2}\n", [
        (2, "links[0].a.port", "device pe1 has no port 'GE0/0/9'",
         "ports of pe1, closest first: GE0/0/0, GE0/0/1, Eth-Trunk1"),
        (3, "links[0].z.device", "unknown device 'p2'", "did you mean 'p1'?"),
    ], id="link-device-and-port"),
    pytest.param("links:\n  - a: {device: pe1, port: GE0/0/1}\n"
                 "    z: {device: p1, port: Ten-GigabitEthernet1/0/1}\n", [
        (3, "links[0].z.port", "port p1:Ten-GigabitEthernet1/0/1 is already used by the link"
         " at {dir}/base.yaml:43", "a port joins at most one link"),
    ], id="port-in-two-links"),
    pytest.param("links:\n  - a: {device: pe1, port: GE0/0/1}\n"
                 "    z: {device: pe1, port: GE0/0/1}\n", [
        (3, "links[0].z", "link from port pe1:GE0/0/1 to itself", None),
    ], id="link-to-itself"),
    pytest.param("vpns:\n  - id: acme-vpn\n    customer: acme\n    name: ACME VPN\n"
                 "    sites: [acme-hq, globex-hq, acme-dc]\n    circuits: [ACME-1, ACME-9]\n", [
        (5, "vpns[0].sites[1]",
         "site globex-hq belongs to customer globex, not to the VPN's customer acme", None),
        (5, "vpns[0].sites[2]", "unknown site 'acme-dc'", None),
        (6, "vpns[0].circuits[1]", "unknown circuit 'ACME-9'", "did you mean 'ACME-1'?"),
    ], id="vpn-members"),
    pytest.param("vpns:\n  - id: globex-vpn\n    customer: globex\n    name: Globex VPN\n"
                 "    sites: [pop1]\n    circuits: [ACME-1]\n", [
        (5, "vpns[0].sites[0]",
         "site pop1 belongs to no customer, not to the VPN's customer globex", None),
        (6, "vpns[0].circuits[0]",
         "circuit ACME-1 belongs to customer acme, not to the VPN's customer globex", None),
    ], id="vpn-members-of-other-customer"),
    pytest.param("vpns:\n  - {id: v, customer: initech, name: V}\n", [
        (2, "vpns[0].customer", "unknown customer 'initech'", None),
    ], id="vpn-customer"),
    pytest.param("sites:\n  - {id: s9, name: S9, customer: globx}\n", [
        (2, "sites[0].customer", "unknown customer 'globx'", "did you mean 'globex'?"),
    ], id="site-customer"),
    pytest.param("users:\n  - {login: bob, role: customer, customer: initech}\n", [
        (2, "users[0].customer", "unknown customer 'initech'", None),
    ], id="user-customer"),
    pytest.param("customers:\n  - {id: c1, name: C1, account_manager: am.lee}\n"
                 "  - {id: c2, name: C2, account_manager: noc.wu}\n", [
        (2, "customers[0].account_manager", "unknown user 'am.lee'", "did you mean 'am.li'?"),
        (3, "customers[1].account_manager", "user noc.wu has role noc, not account_manager",
         None),
    ], id="account-manager"),
    pytest.param(sla("    name: Silver\n", "    name: Silver\n    customer: initech\n"), [
        (4, "sla_contracts[0].customer", "unknown customer 'initech'", None),
    ], id="sla-customer"),
    # --- circuit paths -------------------------------------------------------------------------
    pytest.param(path("{device: ce1, in_port: Gi0/0/1", "{device: pe1, in_port: Gi0/0/1"), [
        (9, "circuits[0].path[0].device",
         "the path must start at the A end device ce1, not pe1", None),
        (9, "circuits[0].path[0].in_port", "device pe1 has no port 'Gi0/0/1'", None),
        (9, "circuits[0].path[0].out_port", "device pe1 has no port 'Gi0/0/0'", None),
    ], id="path-first-device"),
    pytest.param(path("{device: ce1, in_port: Gi0/0/1", "{device: ce1, in_port: Gi0/0/0"), [
        (9, "circuits[0].path[0].in_port",
         "the first hop must enter on the A end port Gi0/0/1, not Gi0/0/0", None),
    ], id="path-first-in-port"),
    pytest.param(path("out_port: Ten-GigabitEthernet1/0/2}", "out_port: Eth-Trunk1}")
                 .replace("{device: p1, in_port: Ten", "{device: pe1, in_port: Ten"), [
        (11, "circuits[0].path[2].device", "the path must end at the Z end device p1, not pe1",
         None),
        (11, "circuits[0].path[2].in_port",
         "device pe1 has no port 'Ten-GigabitEthernet1/0/1'", None),
    ], id="path-last-device"),
    pytest.param(path("out_port: Ten-GigabitEthernet1/0/2}",
                      "out_port: Ten-GigabitEthernet1/0/1}"), [
        (11, "circuits[0].path[2].out_port", "the last hop must leave on the Z end port"
         " Ten-GigabitEthernet1/0/2, not Ten-GigabitEthernet1/0/1", None),
    ], id="path-last-out-port"),
    pytest.param(path("out_port: Eth-Trunk1}", "out_port: Eth-Trunk2}"), [
        (10, "circuits[0].path[1].out_port", "device pe1 has no port 'Eth-Trunk2'",
         "ports of pe1, closest first: Eth-Trunk1, GE0/0/0, GE0/0/1"),
    ], id="path-hop-port"),
    pytest.param(path("{device: pe1, in_port: GE0/0/0,", "{device: pe1, in_port: GE0/0/1,"), [
        (10, "circuits[0].path[1].in_port",
         "hop sequence not contiguous: no link joins ce1:Gi0/0/0 to pe1:GE0/0/1",
         "ce1:Gi0/0/0 (path[0].out_port) links to pe1:GE0/0/0"),
    ], id="path-not-contiguous"),
    pytest.param(path("out_port: Gi0/0/0}", "out_port: Gi0/0/1}").replace(
        "a_end: {device: ce1, port: Gi0/0/1}", "a_end: {device: ce1, port: Gi0/0/0}").replace(
        "in_port: Gi0/0/1", "in_port: Gi0/0/0"), [
        (10, "circuits[0].path[1].in_port",
         "hop sequence not contiguous: no link joins ce1:Gi0/0/1 to pe1:GE0/0/0",
         "ce1:Gi0/0/1 (path[0].out_port) is not joined to any port by a link"),
    ], id="path-not-contiguous-unlinked-port"),
    pytest.param(path("      - {device: ce1, in_port: Gi0/0/1, out_port: Gi0/0/0}\n",
                      "      - {device: ce1, in_port: Gi0/0/1}\n"), [
        (9, "circuits[0].path[0].out_port", "missing required field 'out_port'", None),
    ], id="path-hop-missing-port"),
    # --- SLA contracts -------------------------------------------------------------------------
    pytest.param(sla("availability_target_pct: 99.5", "availability_target_pct: 101"), [
        (4, "sla_contracts[0].availability_target_pct",
         "availability_target_pct must be greater than 0 and at most 100, got 101", None),
    ], id="availability-above-100"),
    pytest.param(sla("availability_target_pct: 99.5", "availability_target_pct: 0")
                 .replace("      - {below_pct: 99.5, credit_pct: 10}\n"
                          "      - {below_pct: 99.0, credit_pct: 25}\n", "      []\n"), [
        (4, "sla_contracts[0].availability_target_pct",
         "availability_target_pct must be greater than 0 and at most 100, got 0", None),
    ], id="availability-zero"),
    pytest.param(sla("loss_target_pct: 0.5", "loss_target_pct: 100.5")
                 .replace("latency_target_ms: 50", "latency_target_ms: -1")
                 .replace("jitter_target_ms: 10", "jitter_target_ms: -0.5"), [
        (5, "sla_contracts[0].latency_target_ms", "latency_target_ms must be at least 0, got -1",
         None),
        (6, "sla_contracts[0].jitter_target_ms", "jitter_target_ms must be at least 0, got -0.5",
         None),
        (7, "sla_contracts[0].loss_target_pct",
         "loss_target_pct must be between 0 and 100, got 100.5", None),
    ], id="latency-jitter-loss"),
    pytest.param(sla("timezone: Asia/Shanghai", "timezone: Asia/Beijing"), [
        (9, "sla_contracts[0].calendar.timezone", "unknown time zone 'Asia/Beijing'", None),
    ], id="timezone"),
    pytest.param(sla('start: "08:00", end: "18:00"', 'start: "8am", end: "25:00"'), [
        (11, "sla_contracts[0].calendar.hours[0].end", "'25:00' is not a valid time",
         "HH:MM on a 24-hour clock, 00:00 to 23:59 (24:00 only as an end)"),
        (11, "sla_contracts[0].calendar.hours[0].start", "'8am' is not a valid time", None),
    ], id="time-of-day"),
    pytest.param(sla('start: "08:00", end: "18:00"', 'start: "18:00", end: "18:00"'), [
        (11, "sla_contracts[0].calendar.hours[0].end", "end 18:00 is not after start 18:00",
         "a period cannot cross midnight: split it into two entries"),
    ], id="start-not-before-end"),
    pytest.param(sla("holidays: [2025-10-01]", "holidays: [2025-10-01, 2025-02-30, 1 May]"), [
        (12, "sla_contracts[0].calendar.holidays[1]", "the text '2025-02-30' is not an ISO date",
         "YYYY-MM-DD, e.g. 2025-10-01"),
        (12, "sla_contracts[0].calendar.holidays[2]", "the text '1 May' is not an ISO date",
         None),
    ], id="holidays"),
    pytest.param(sla("holidays: [2025-10-01]",
                     "holidays: [2025-10-01, 2025-10-02, 2025-10-01]\n"
                     "      working_dates:\n"
                     "        - 2025-09-28\n"
                     "        - 2025-09-28\n"
                     "        - 2025-10-02"), [
        (12, "sla_contracts[0].calendar.holidays[2]",
         "holiday 2025-10-01 is listed twice (also at line 12)", None),
        (15, "sla_contracts[0].calendar.working_dates[1]",
         "working date 2025-09-28 is listed twice (also at line 14)", None),
        (16, "sla_contracts[0].calendar.working_dates[2]",
         "2025-10-02 is both a holiday (line 12) and a working date",
         "a date is either off or worked: remove one of them"),
    ], id="dates-twice-or-in-both-lists"),
    pytest.param(sla("holidays: [2025-10-01]",
                     "holidays: [2025-10-01]\n"
                     "      official_days: {source: chinesecalendar, years: [2026, 2027]}"), [
        (13, "sla_contracts[0].calendar.official_days.years[1]",
         "chinesecalendar 1.11.0 has no official days for 2027 (it carries 2004-2026)",
         "list that year's holidays and working_dates by hand, or use a newer package"),
    ], id="official-days-year-not-carried"),
    pytest.param(sla("holidays: [2025-10-01]",
                     "holidays: [2026-10-10]\n"
                     "      working_dates: [2026-10-01]\n"
                     "      official_days: {source: chinesecalendar, years: [2026]}"), [
        # chinesecalendar 1.11.0: 2026-10-10 (a Saturday) is worked, 2026-10-01 is off
        (12, "sla_contracts[0].calendar.holidays[0]",
         "2026-10-10 is listed as a holiday but is a working date in chinesecalendar 1.11.0",
         "remove it, or take 2026 out of official_days.years and list that year's dates by"
         " hand"),
        (13, "sla_contracts[0].calendar.working_dates[0]",
         "2026-10-01 is listed as a working date but is a holiday in chinesecalendar 1.11.0",
         None),
    ], id="official-days-contradict-written-dates"),
    pytest.param(sla("holidays: [2025-10-01]",
                     "holidays: [2025-10-01]\n"
                     "      official_days: {source: holidays, years: [2026, 2026]}"), [
        (13, "sla_contracts[0].calendar.official_days.country",
         "missing required field 'country'", "the holidays package needs a country code, e.g. CN"),
        (13, "sla_contracts[0].calendar.official_days.years[1]", "year 2026 is listed twice",
         None),
    ], id="official-days-shape"),
    pytest.param(sla("holidays: [2025-10-01]",
                     "holidays: [2025-10-01]\n"
                     "      official_days: {source: holiday, country: CN, years: [2026]}"), [
        (13, "sla_contracts[0].calendar.official_days.source",
         "unknown source of official days 'holiday'",
         "did you mean 'holidays'? allowed: chinesecalendar, holidays"),
    ], id="official-days-source"),
    # lines: 22 is currency, the fields added follow it
    pytest.param(sla("    currency: CNY\n",
                     "    currency: CNY\n"
                     "    degraded_counts_as_down: \"yes\"\n"
                     "    escalation:\n"
                     "      - {at_pct: 50, notify: [role:nocs]}\n"
                     "      - {at_pct: 75, notify: [pager]}\n"
                     "      - {at_pct: 100, clock: reply, notify: [customer]}\n"), [
        (23, "sla_contracts[0].degraded_counts_as_down",
         "expected true or false, got the text 'yes'", None),
        (25, "sla_contracts[0].escalation[0].notify[0]",
         "unknown role 'nocs' (roles: noc, engineer, account_manager, customer, admin)", None),
        (26, "sla_contracts[0].escalation[1].notify[0]",
         "unknown recipient 'pager': use customer, account_manager, role:NAME, user:LOGIN or"
         " webhook:NAME", None),
        (27, "sla_contracts[0].escalation[2].clock", "unknown clock 'reply'",
         "allowed: response, resolution, both"),
    ], id="escalation-recipients-and-clock"),
    pytest.param(sla("    currency: CNY\n",
                     "    currency: CNY\n"
                     "    escalation:\n"
                     "      - {at_pct: 80, notify: [role:noc]}\n"
                     "      - {at_pct: 50, notify: []}\n"), [
        (25, "sla_contracts[0].escalation[1].at_pct",
         "at_pct 50 is not above the level before (80)", "list the levels from the lowest up"),
        (25, "sla_contracts[0].escalation[1].notify", "name at least one recipient", None),
    ], id="escalation-order-and-empty"),
    pytest.param(sla("holidays: [2025-10-01]",
                     "holidays: [2025-10-01]\n"
                     "      official_days: {source: holidays, country: CN, years: [2027]}"), [
        (13, "sla_contracts[0].calendar.official_days.years[0]",
         "holidays 0.108 has no official make-up working days of CN for 2027: its dates for"
         " that year are computed by rule, not the published schedule", None),
    ], id="official-days-holidays-year-not-published"),
    pytest.param(sla("P1: {response_min: 30, resolution_min: 240}",
                     "P1: {response_min: 300, resolution_min: 240}")
                 .replace("P2: {response_min: 60", "P2: {response_min: 0"), [
        (14, "sla_contracts[0].priorities.P1.resolution_min",
         "resolution_min 240 is shorter than response_min 300", None),
        (15, "sla_contracts[0].priorities.P2.response_min",
         "response_min must be a positive integer, got 0", None),
    ], id="priority-times"),
    pytest.param(sla("{below_pct: 99.0, credit_pct: 25}", "{below_pct: 99.7, credit_pct: 25}"), [
        (20, "sla_contracts[0].credits[1].below_pct",
         "credit steps are not sorted: below_pct 99.7 comes after 99.5",
         "list the steps from the highest below_pct down"),
    ], id="credits-unsorted"),
    pytest.param(sla("{below_pct: 99.0, credit_pct: 25}", "{below_pct: 99.5, credit_pct: 25}"), [
        (20, "sla_contracts[0].credits[1].below_pct", "below_pct 99.5 is listed twice", None),
    ], id="credits-duplicate"),
    pytest.param(sla("{below_pct: 99.0, credit_pct: 25}", "{below_pct: 99.0, credit_pct: 5}"), [
        (20, "sla_contracts[0].credits[1].credit_pct",
         "credit_pct 5 is less than the 10 of the step above", None),
    ], id="credits-decreasing"),
    pytest.param(sla("{below_pct: 99.5, credit_pct: 10}", "{below_pct: 99.9, credit_pct: 10}"), [
        (19, "sla_contracts[0].credits[0].below_pct",
         "below_pct 99.9 is above the availability target 99.5",
         "a credit is owed only when the target is missed"),
    ], id="credits-above-target"),
    pytest.param(sla("{below_pct: 99.0, credit_pct: 25}", "{below_pct: -1, credit_pct: 125}"), [
        (20, "sla_contracts[0].credits[1].below_pct",
         "below_pct must be between 0 and 100, got -1", None),
        (20, "sla_contracts[0].credits[1].credit_pct",
         "credit_pct must be between 0 and 100, got 125", None),
    ], id="credits-range"),
    # a step's threshold is worded "below" (strict) or "at or below", exactly one of them
    pytest.param(sla("{below_pct: 99.0, credit_pct: 25}",
                     "{below_pct: 99.0, at_or_below_pct: 99.0, credit_pct: 25}"), [
        (20, "sla_contracts[0].credits[1].at_or_below_pct",
         "a credit step gives below_pct or at_or_below_pct, not both",
         "below_pct applies when availability < the value, at_or_below_pct when"
         " availability <= the value; give one of them"),
    ], id="credits-both-wordings"),
    pytest.param(sla("{below_pct: 99.0, credit_pct: 25}", "{credit_pct: 25}"), [
        (20, "sla_contracts[0].credits[1].below_pct",
         "missing the step's threshold: below_pct or at_or_below_pct",
         "below_pct applies when availability < the value, at_or_below_pct when"
         " availability <= the value; give one of them"),
    ], id="credits-no-threshold"),
    pytest.param(sla("{below_pct: 99.0, credit_pct: 25}",
                     "{at_or_below_pct: 99.7, credit_pct: 25}"), [
        (20, "sla_contracts[0].credits[1].at_or_below_pct",
         "credit steps are not sorted: at_or_below_pct 99.7 comes after 99.5",
         "list the steps from the highest at_or_below_pct down"),
    ], id="credits-inclusive-unsorted"),
    pytest.param(sla("{below_pct: 99.0, credit_pct: 25}",
                     "{at_or_below_pct: 99.5, credit_pct: 25}"), [
        (20, "sla_contracts[0].credits[1].at_or_below_pct",
         "at_or_below_pct 99.5 repeats the threshold of the step above (below_pct 99.5)", None),
    ], id="credits-same-threshold-two-wordings"),
    pytest.param(sla("{below_pct: 99.0, credit_pct: 25}", "{at_or_below_pct: 99.0, credit_pct: 25}")
                 .replace("{below_pct: 99.5, credit_pct: 10}",
                          "{at_or_below_pct: 99.0, credit_pct: 10}"), [
        (20, "sla_contracts[0].credits[1].at_or_below_pct",
         "at_or_below_pct 99 is listed twice", None),
    ], id="credits-inclusive-duplicate"),
    # the target 99.5 is met at exactly 99.5: "below 99.5" may sit on it (credits-above-target
    # shows the limit), "at or below 99.5" would credit a month that met its target
    pytest.param(sla("{below_pct: 99.5, credit_pct: 10}",
                     "{at_or_below_pct: 99.5, credit_pct: 10}"), [
        (19, "sla_contracts[0].credits[0].at_or_below_pct",
         "at_or_below_pct 99.5 is at the availability target 99.5",
         "a credit is owed only when the target is missed"),
    ], id="credits-inclusive-at-target"),
    pytest.param(sla("    currency: CNY\n", "    currency: CNY\n    unknown_counts_as: downn\n"), [
        (23, "sla_contracts[0].unknown_counts_as", "unknown rule for unknown time 'downn'",
         "did you mean 'down'? allowed: excluded, down, up"),
    ], id="unknown-counts-as-typo"),
    pytest.param(sla("    currency: CNY\n", "    currency: CNY\n    unknown_counts_as: 0\n"), [
        (23, "sla_contracts[0].unknown_counts_as",
         "expected a rule for unknown time, got the number 0", "allowed: excluded, down, up"),
    ], id="unknown-counts-as-not-text"),
    pytest.param(sla("monthly_charge: 5000", "monthly_charge: -1").replace(
        "currency: CNY", "currency: RMB¥"), [
        (21, "sla_contracts[0].monthly_charge", "monthly_charge must be at least 0, got -1", None),
        (22, "sla_contracts[0].currency", "'RMB¥' is not a 3-letter currency code",
         "an ISO 4217 code in capitals: CNY, HKD, USD, EUR"),
    ], id="charge-and-currency"),
    pytest.param(PATH.replace("    bandwidth_bps: 10M\n",
                              "    bandwidth_bps: 10M\n    monthly_charge: -5\n"), [
        (6, "circuits[0].monthly_charge", "monthly_charge must be at least 0, got -5", None),
    ], id="circuit-charge"),
    # --- users ---------------------------------------------------------------------------------
    pytest.param("users:\n  - {login: bob, role: customer}\n"
                 "  - {login: eve, role: noc, customer: acme}\n"
                 "  - {login: carol, role: account_manager, customer: acme}\n", [
        (2, "users[0].customer", "a user with role customer must name its customer", None),
        (3, "users[1].customer", "a user with role noc cannot belong to a customer",
         "remove customer, or give the user role customer"),
        (4, "users[2].customer", "a user with role account_manager cannot belong to a customer",
         "remove customer; an account manager is named on the customer (account_manager)"),
    ], id="user-customer-rule"),
    pytest.param("users:\n  - {login: Zhang Wei, role: noc}\n  - {login: 9lives, role: noc}\n", [
        (2, "users[0].login", "'Zhang Wei' is not a valid login name",
         "2 to 63 characters: lowercase letters, digits, '.', '_' or '-', starting with a"
         " letter (e.g. zhang.wei)"),
        (3, "users[1].login", "'9lives' is not a valid login name", None),
    ], id="login-name"),
    # --- credentials ---------------------------------------------------------------------------
    pytest.param("credentials:\n  - id: v3\n    kind: snmp_v3\n    username: u\n"
                 "    security_level: authPriv\n    auth_protocol: SHA\n"
                 "    auth_key: {env: A}\n", [
        (2, "credentials[0].priv_key", "security_level authPriv needs priv_key", None),
        (2, "credentials[0].priv_protocol", "security_level authPriv needs priv_protocol", None),
    ], id="snmp-v3-authpriv-incomplete"),
    pytest.param("credentials:\n  - id: v3\n    kind: snmp_v3\n    username: u\n"
                 "    security_level: noAuthNoPriv\n    auth_key: {env: A}\n", [
        (6, "credentials[0].auth_key", "auth_key is not used with security_level noAuthNoPriv",
         "remove it, or raise security_level to authNoPriv"),
    ], id="snmp-v3-key-not-used"),
    pytest.param("credentials:\n  - {id: s2, kind: ssh, username: u}\n", [
        (2, "credentials[0].password", "an ssh credential needs password or key_file", None),
    ], id="ssh-without-password-or-key"),
    pytest.param("credentials:\n  - id: s2\n    kind: ssh\n    username: u\n"
                 "    key_file: keys/id_ed25519\n    port: 0\n", [
        (5, "credentials[0].key_file", "key_file must be an absolute path, got 'keys/id_ed25519'",
         None),
        (6, "credentials[0].port", "port must be between 1 and 65535, got 0", None),
    ], id="ssh-key-file-and-port"),
    pytest.param("credentials:\n  - id: c\n    kind: snmp_v2c\n    community: {vault: x}\n"
                 "  - id: d\n    kind: snmp_v2c\n    community: {env: 1COMMUNITY}\n"
                 "  - id: e\n    kind: snmp_v2c\n    community: {file: secrets/community}\n", [
        (4, "credentials[0].community", "community must have exactly one of env or file", None),
        (7, "credentials[1].community.env", "not a valid environment variable name", None),
        (10, "credentials[2].community.file", "a secret file must be given by its absolute path",
         None),
    ], id="secret-reference-shape"),
    pytest.param("credentials:\n  - id: v1\n    kind: snmp_v1\n"
                 "  - id: v1b\n    kind: snmp_v1\n    community: {env: X}\n    username: u\n", [
        (2, "credentials[0].community", "missing required field 'community'", None),
        (7, "credentials[1].username", "unknown field 'username' in a snmp_v1 credential",
         "known fields: id, kind, community"),
    ], id="snmp-v1-credential"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_error(tmp_path: Path, text: str, expected: list[Expected]):
    problems = problems_for(tmp_path, text)
    more = str(tmp_path / "more.yaml")
    assert [p.file for p in problems] == [more] * len(problems), problems
    got = [(p.line, p.field, p.message) for p in problems]
    want = [(line, field, message.replace("{dir}", str(tmp_path)))
            for line, field, message, _hint in expected]
    assert got == want
    for problem, (_line, _field, _message, hint) in zip(problems, expected, strict=True):
        if hint is not None:
            assert problem.hint == hint


def test_snmp_v1_credential_for_a_device(tmp_path: Path):
    text = ("credentials:\n  - {id: v1, kind: snmp_v1, community: {env: KEYLINE_TEST_V1}}\n"
            "devices:\n  - name: ce9\n    role: CE\n    platform: cisco_ios\n"
            "    management_address: 127.0.1.9\n    snmp_credential: v1\n")
    assert problems_for(tmp_path, text) == []
    inventory = load_inventory([tmp_path])
    credential = inventory.credentials["v1"]
    assert credential.kind == "snmp_v1"
    assert {name: str(ref) for name, ref in credential.secrets.items()} == {
        "community": "env:KEYLINE_TEST_V1"}
    assert credential.params == {}
    assert inventory.devices["ce9"].snmp_credential == "v1"


# --- secrets -----------------------------------------------------------------------------------

LITERAL_SECRETS = """\
credentials:
  - id: c
    kind: snmp_v2c
    community: Sup3r-S3cret-Community
  - id: v3
    kind: snmp_v3
    username: u
    security_level: authNoPriv
    auth_protocol: SHA
    auth_key: 8675309-auth-key
  - id: s
    kind: ssh
    username: u
    password: hunter2-ssh-pass
users:
  - login: bob
    role: noc
    password: bobs-own-password
"""


def test_literal_secrets_are_errors_and_never_echoed(tmp_path: Path):
    problems = problems_for(tmp_path, LITERAL_SECRETS)
    assert [(p.line, p.field, p.message) for p in problems] == [
        (4, "credentials[0].community", "community is written as a literal value"),
        (10, "credentials[1].auth_key", "auth_key is written as a literal value"),
        (14, "credentials[2].password", "password is written as a literal value"),
        (18, "users[0].password", "passwords are not kept in inventory files"),
    ]
    for problem in problems[:3]:
        assert problem.hint is not None
        assert problem.hint.startswith("secrets are referenced, never written in inventory files")
    assert problems[3].hint == "remove it; set the password with `keyline user passwd bob`"
    with pytest.raises(InventoryError) as caught:
        load_inventory([tmp_path])
    shown = caught.value.report() + str(caught.value) + repr(caught.value.problems)
    for secret in ("Sup3r-S3cret-Community", "8675309-auth-key", "hunter2-ssh-pass",
                   "bobs-own-password"):
        assert secret not in shown


def test_secret_repeated_in_a_duplicate_key_is_not_echoed(tmp_path: Path):
    text = "credentials:\n  - id: c\n    kind: snmp_v2c\n    community: {env: A}\n" \
           "    community: Sup3r-S3cret-Community\n"
    problems = problems_for(tmp_path, text)
    assert [(p.line, p.field, p.message) for p in problems] == [
        (5, "(yaml)", "key 'community' appears twice in the same mapping"),
    ]
    assert "Sup3r" not in str(problems[0])


# --- YAML syntax, files ------------------------------------------------------------------------


def test_yaml_syntax_error_has_file_and_line(tmp_path: Path):
    problems = problems_for(tmp_path, "sites:\n  - id: s9\n    name: [S9\n  - id: s10\n")
    assert len(problems) == 1
    problem = problems[0]
    assert (problem.file, problem.line, problem.field) == (str(tmp_path / "more.yaml"), 4,
                                                           "(yaml)")
    assert problem.message == ("YAML syntax error: expected ',' or ']', but got ':'"
                               " (while parsing a flow sequence that starts at line 3)")


def test_tab_indentation_is_explained(tmp_path: Path):
    problems = problems_for(tmp_path, "sites:\n\t- {id: s9, name: S9}\n")
    assert [(p.line, p.field, p.hint) for p in problems] == [
        (2, "(yaml)", "indent with spaces, not tabs")]


def test_syntax_error_in_one_file_does_not_hide_the_others(tmp_path: Path):
    (tmp_path / "broken.yaml").write_text("customers:\n  - id: [x\n")
    # Its customers are unknown, so names are not reported, but shape errors are.
    problems = problems_for(tmp_path, "sites:\n  - {id: s9, name: S9, customer: initech,"
                                      " cty: x}\n")
    assert [(Path(p.file).name, p.line, p.field) for p in problems] == [
        ("broken.yaml", 3, "(yaml)"),
        ("more.yaml", 2, "sites[0].cty"),
    ]
    assert problems[0].hint == "names used elsewhere were not checked while this file cannot" \
                               " be read"


def test_file_that_is_not_a_mapping(tmp_path: Path):
    problems = problems_for(tmp_path, "- customers\n- sites\n")
    assert [(p.line, p.field, p.message) for p in problems] == [
        (1, "(file)", "expected a mapping of sections, got a list")]


def test_missing_path_and_empty_folder(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    inventory, problems = check_inventory([tmp_path / "nope.yaml", tmp_path / "empty"])
    assert inventory is None
    assert [(p.file, p.line, p.field, p.message) for p in problems] == [
        (str(tmp_path / "empty"), 0, "(file)", "no .yaml or .yml files in this folder"),
        (str(tmp_path / "nope.yaml"), 0, "(file)", "no such file or folder"),
    ]


def test_not_utf8(tmp_path: Path):
    (tmp_path / "base.yaml").write_bytes("sites:\n  - {id: s, name: 上海}\n".encode("gb18030"))
    _inventory, problems = check_inventory([tmp_path])
    assert [(p.line, p.message) for p in problems] == [(0, "the file is not UTF-8 text")]


# --- many problems at once, across files -------------------------------------------------------


def test_every_problem_is_reported_in_one_run(tmp_path: Path):
    (tmp_path / "customers.yaml").write_text(
        "customers:\n  - {id: acme, name: Again}\n  - {id: initech, nme: Initech}\n")
    (tmp_path / "network.yaml").write_text(
        "devices:\n  - name: ce9\n    role: CE\n    platform: ios\n"
        "    management_address: 300.1.1.1\n    snmp_credential: nope\n")
    problems = problems_for(tmp_path, PATH.replace("bandwidth_bps: 10M", "bandwidth_bps: -1")
                            .replace("customer: acme", "customer: initch"))
    assert [(Path(p.file).name, p.line, p.field) for p in problems] == [
        ("customers.yaml", 2, "customers[0].id"),
        ("customers.yaml", 3, "customers[1].name"),
        ("customers.yaml", 3, "customers[1].nme"),
        ("more.yaml", 3, "circuits[0].customer"),
        ("more.yaml", 5, "circuits[0].bandwidth_bps"),
        ("network.yaml", 4, "devices[0].platform"),
        ("network.yaml", 5, "devices[0].management_address"),
        ("network.yaml", 6, "devices[0].snmp_credential"),
    ]
    assert problems[0].message == (
        f"duplicate customer 'acme': first declared at {tmp_path / 'base.yaml'}:2")
    assert problems[3].hint == "did you mean 'initech'?"
    with pytest.raises(InventoryError) as caught:
        load_inventory([tmp_path])
    assert str(caught.value) == "8 problems in the inventory"
    first_line = caught.value.report().splitlines()[0]
    assert first_line == (f"{tmp_path / 'customers.yaml'}:2: customers[0].id: duplicate"
                          f" customer 'acme': first declared at {tmp_path / 'base.yaml'}:2")


def test_one_typo_gives_one_problem(tmp_path: Path):
    # A device with a bad field is still known by name and ports: the circuit that uses it
    # is not reported as well.
    text = """\
devices:
  - name: ce7
    role: CE
    platform: cisco
    management_address: 127.0.1.7
    snmp_credential: v2c
    ports: [{name: Gi0/0/0, speed_bps: fast}]
circuits:
  - id: C7
    customer: acme
    service_type: e_line
    bandwidth_bps: 10M
    a_end: {device: ce7, port: Gi0/0/0}
    z_end: {device: pe1, port: GE0/0/1}
"""
    problems = problems_for(tmp_path, text)
    assert [(p.line, p.field) for p in problems] == [
        (4, "devices[0].platform"),
        (7, "devices[0].ports[0].speed_bps"),
    ]


def test_official_days_from_the_holidays_package_keep_their_source(tmp_path: Path):
    text = sla("holidays: [2025-10-01]",
               "holidays: [2025-10-01]\n"
               "      official_days: {source: holidays, country: CN, years: [2025]}")
    (tmp_path / "base.yaml").write_text(BASE, encoding="utf-8")
    (tmp_path / "more.yaml").write_text(text, encoding="utf-8")
    calendar = load_inventory([tmp_path]).sla_contracts["silver"].calendar
    # the date written at line 12 keeps its line; the package's 2025 make-up Sunday of
    # National Day (28 Sep) and a bridged weekday off (8 Oct) come from the package
    assert calendar.sources["2025-10-01"] == f"{tmp_path / 'more.yaml'}:12"
    assert calendar.sources["2025-09-28"] == "holidays 0.108"
    assert "2025-09-28" in calendar.working_dates and "2025-10-08" in calendar.holidays
