"""Interface names as operators write them, matched to what real devices report.

Three sources of truth, none written by hand: the forms of `normalize` are checked against
the interface names of the shared folder's real walks (every ifName and ifDescr of every
`.snmprec`, read with lab.recordings) and against the CLI outputs of real devices
(`device-outputs/`, the ntc-templates test data: how `show interfaces`, `display interface`
and the LLDP neighbour commands write the same ports). `match_ports` is then run against
each walk's interface table, by ifName, by ifDescr, by the other vendor form of each name,
after an ifIndex renumbering, and on the problem cases (missing, ambiguous, an if_index that
points at another interface, two ports on one interface).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from collectors.model import InterfaceLabel
from collectors.port_names import (
    AMBIGUOUS,
    DUPLICATE,
    IF_INDEX_NAME_MISMATCH,
    IF_INDEX_STALE,
    MISSING,
    PortMatch,
    match_ports,
    normalize,
)
from lab.recordings import decoded, parse_snmprec, recording_names, recordings_dir, shared_dir
from store.topology import PortEntry

IF_NAME = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1)
IF_DESCR = (1, 3, 6, 1, 2, 1, 2, 2, 1, 2)
NO_RECORDINGS = "no SNMP recordings: the shared folder's snmp-recordings/ is missing"
NO_OUTPUTS = "no device outputs: the shared folder's device-outputs/ is missing"

# --- normalize -------------------------------------------------------------------------------

# Each group: spellings of one interface that must compare equal.
SAME = {
    "cisco gigabit": ["GigabitEthernet0/0/1", "Gi0/0/1", "Gig0/0/1", "gi0/0/1", "GI 0/0/1",
                      "Gig 0/0/1"],
    "cisco ten gigabit": ["TenGigabitEthernet1/1", "Te1/1", "Ten 1/1"],
    "cisco fast ethernet": ["FastEthernet0/1", "Fa0/1", "Fas 0/1"],
    "cisco port-channel": ["Port-channel1", "Po1", "port-channel 1"],
    "cisco svi": ["Vlan1", "Vl1"],
    "cisco loopback": ["Loopback0", "Lo0"],
    "cisco null": ["Null0", "Nu0"],
    "cisco 25G": ["TwentyFiveGigE1/0/1", "Twe1/0/1"],
    "cisco 40G": ["FortyGigabitEthernet1/0/49", "Fo1/0/49", "FortyGigE1/0/49"],
    "cisco 100G": ["HundredGigE0/0/0/0", "Hu0/0/0/0"],
    "cisco mGig 2.5G": ["TwoGigabitEthernet2/0/33", "Tw2/0/33"],
    "cisco ethernet": ["Ethernet0/1", "Et0/1", "Eth0/1"],
    "ios-xr ten gigabit": ["TenGigE0/0/0/0", "Te0/0/0/0"],
    "ios-xr bundle": ["Bundle-Ether1", "BE1", "bundle-ether1"],
    "ios-xr management": ["MgmtEth0/RSP0/CPU0/0", "Mg0/RSP0/CPU0/0", "mgmteth0/rsp0/cpu0/0"],
    "ios-xe service instance": ["Gi0/0/1.SI.10", "GigabitEthernet0/0/1.ServiceInstance.10"],
    "huawei gigabit": ["GigabitEthernet0/0/1", "GE0/0/1"],
    "huawei 10G": ["XGigabitEthernet0/0/1", "XGE0/0/1"],
    "huawei cloudengine 10G": ["10GE1/0/42", "10ge1/0/42"],
    "huawei 25G": ["25GE1/0/1", "25ge 1/0/1"],
    "huawei 40G": ["40GE0/0/1", "40ge0/0/1"],
    "huawei 100G": ["100GE0/1/0", "100ge0/1/0"],
    "huawei trunk": ["Eth-Trunk1", "eth-trunk1"],
    "huawei vlanif": ["Vlanif10", "vlanif10"],
    "huawei loopback": ["LoopBack0", "Loopback0"],
    "huawei management": ["MEth0/0/0", "meth0/0/0"],
    "h3c gigabit": ["GigabitEthernet1/0/1", "GE1/0/1"],
    "h3c 10G": ["Ten-GigabitEthernet1/0/49", "XGE1/0/49"],
    "h3c 25G": ["Twenty-FiveGigE1/0/1", "WGE1/0/1"],
    "h3c 40G": ["FortyGigE1/0/53", "FGE1/0/53"],
    "h3c 100G": ["HundredGigE1/0/1", "HGE1/0/1"],
    "h3c aggregation": ["Bridge-Aggregation1", "BAGG1"],
    "h3c route aggregation": ["Route-Aggregation1", "RAGG1"],
    "h3c vlan interface": ["Vlan-interface1", "Vlan1", "Vlan-interface 1"],
    "h3c loopback": ["LoopBack0", "Loop0"],
    "h3c management": ["M-GigabitEthernet0/0/0", "MGE0/0/0"],
    "juniper": ["ge-0/0/1", "GE-0/0/1"],
    "juniper unit": ["ge-0/0/1.0", "ge-0/0/1.0 "],
}

# Pairs that must stay apart.
DIFFERENT = [
    ("ge-0/0/1", "ge-0/0/1.0"),  # a Junos unit is its own interface
    ("xe-0/0/0", "xe-0/0/0.0"),
    ("et-0/0/0", "et-0/0/0.0"),
    ("ge-0/0/1", "GE0/0/1"),  # Junos ge- is no Huawei GE
    ("et-0/0/0", "Et0/0/0"),
    ("Vlan1", "VLAN-1"),  # IOS-XE: routed SVI vs layer-2 VLAN (both on iosxe_c3850)
    ("Vlan1", "unrouted VLAN 1"),
    ("Tw1/0/1", "Twe1/0/1"),  # TwoGigabitEthernet vs TwentyFiveGigE
    ("Fa0/1", "Fo0/1"),
    ("Gi0/0/2", "Gi0/0/2.1"),  # sub-interface
    ("Gi0/0/1", "Gi0/0/10"),
    ("Eth-Trunk1", "Eth1"),
    ("InLoopBack0", "LoopBack0"),
    ("MEth0/0/1", "Eth0/0/1"),
    ("ether1", "Eth1"),  # MikroTik ether1 is not a Cisco Ethernet
    ("1/1/1", "1/1/10"),
    ("lag-1", "lag-10"),
    ("TenGigabitEthernet0/0/26", "TenGigabitEthernet0/0/26-mpls layer"),
]

AS_THEY_ARE = ["1/1/1", "1/1/c33", "lag-1", "A/1", "system", "sfp-sfpplus1", "ether1",
               "bridge1", "shop-trunk", "re0:mgmt-0", "lsi", "irb", "HOUF_IXR_02"]


@pytest.mark.parametrize("group", sorted(SAME))
def test_vendor_forms_compare_equal(group: str) -> None:
    forms = SAME[group]
    assert len({normalize(form) for form in forms}) == 1, {f: normalize(f) for f in forms}


@pytest.mark.parametrize(("one", "other"), DIFFERENT)
def test_different_interfaces_stay_apart(one: str, other: str) -> None:
    assert normalize(one) != normalize(other)


def test_other_vendors_names_stay_as_they_are() -> None:
    for name in AS_THEY_ARE:
        assert normalize(name) == name.casefold()
        assert normalize(name.upper()) == normalize(name)


def test_unmatched_and_degenerate_names() -> None:
    assert normalize("") == ""
    assert normalize("   ") == ""
    assert normalize("Gi") == "gi"  # a type alone is no interface: left as written
    assert normalize("lo") == "lo"


# --- the real walks --------------------------------------------------------------------------


def _walk(name: str) -> dict[int, tuple[str | None, str | None]]:
    """ifIndex -> (ifName, ifDescr) of a recording, as an agent sends them."""
    names: dict[int, list[str | None]] = {}
    for record in parse_snmprec(recordings_dir() / f"{name}.snmprec"):
        for position, column in enumerate((IF_NAME, IF_DESCR)):
            if record.oid[:len(column)] == column and len(record.oid) == len(column) + 1:
                value = decoded(record)
                assert isinstance(value, bytes)
                names.setdefault(record.oid[-1], [None, None])[position] = value.decode()
    return {if_index: (pair[0], pair[1]) for if_index, pair in names.items()}


def _recordings() -> list[object]:
    return recording_names() or [pytest.param(None, marks=pytest.mark.skip(reason=NO_RECORDINGS))]


# The other form of a name, as each vendor's own CLI writes it (show interfaces status,
# display interface brief, show ip interface brief), longest prefix first.
CISCO_IOS = [("TenGigabitEthernet", "Te"), ("GigabitEthernet", "Gi"), ("FastEthernet", "Fa"),
             ("Port-channel", "Po"), ("Loopback", "Lo"), ("Vlan", "Vl"), ("Null", "Nu")]
CISCO_XR = [("TenGigE", "Te"), ("GigabitEthernet", "Gi"), ("MgmtEth", "Mg"),
            ("Bundle-Ether", "BE"), ("Loopback", "Lo"), ("Null", "Nu")]
HUAWEI = [("XGigabitEthernet", "XGE"), ("GigabitEthernet", "GE")]
H3C = [("Ten-GigabitEthernet", "XGE"), ("GigabitEthernet", "GE"), ("Vlan-interface", "Vlan")]
VENDOR_FORMS = {"ios_": CISCO_IOS, "iosxe_": CISCO_IOS, "iosxr_": CISCO_XR, "vrp_": HUAWEI,
                "comware_": H3C}


def _other_forms(recording: str, name: str) -> list[str]:
    """The name in other case and in the vendor's other form(s): what an operator may write."""
    forms = [name.upper(), name.lower()]
    vendor = max((p for p in VENDOR_FORMS if recording.startswith(p)), key=len, default="")
    for long, short in VENDOR_FORMS.get(vendor, []):
        for have, other in ((long, short), (short, long)):
            rest = name[len(have):]
            if name.startswith(have) and rest[:1].isdigit():
                forms.append(other + rest)
                if have == "Gi":
                    forms.append("Gig" + rest)
                return forms
    return forms


def _owner(walk: dict[int, tuple[str | None, str | None]], if_index: int) -> int | None:
    """Which interface the walk's ifName of `if_index` designates: itself, unless another
    interface has the same ifName (IOS-XE's MPLS sub-layers), then the one whose ifDescr
    carries the name too; None if that does not single one out."""
    name = walk[if_index][0]
    sharing = [i for i, (other, _) in walk.items() if other == name]
    if len(sharing) == 1:
        return if_index
    both = [i for i in sharing if walk[i][1] and normalize(walk[i][1]) == normalize(name or "")]
    return both[0] if len(both) == 1 else None


@pytest.mark.parametrize("recording", _recordings())
def test_normalized_names_are_unique_on_every_device(recording: str) -> None:
    """No two interfaces of a real device fold to one key, except where the device itself
    gives two the same ifName (iosxe_asr920: a port and its MPLS layer)."""
    walk = _walk(recording)
    assert walk
    by_key: dict[str, list[int]] = {}
    for if_index, (if_name, _) in walk.items():
        if if_name:
            by_key.setdefault(normalize(if_name), []).append(if_index)
    for indexes in by_key.values():
        if len(indexes) > 1:
            assert len({walk[i][0] for i in indexes}) == 1, [walk[i] for i in indexes]


@pytest.mark.parametrize("recording", _recordings())
def test_every_if_name_and_its_other_forms_match_their_interface(recording: str) -> None:
    walk = _walk(recording)
    checked = 0
    for if_index, (if_name, _) in sorted(walk.items()):
        if not if_name:
            continue
        expected = _owner(walk, if_index)
        for form in [if_name, *_other_forms(recording, if_name)]:
            found = match_ports([(1, form, None)], walk)
            if expected is None:
                assert [p.kind for p in found.problems] == [AMBIGUOUS], (form, found)
            else:
                assert found.by_if_index == {expected: 1}, (form, found.problems)
                assert not found.problems
            checked += 1
    assert checked >= 2 * len(walk)


@pytest.mark.parametrize("recording", _recordings())
def test_every_if_descr_matches_its_interface(recording: str) -> None:
    walk = _walk(recording)
    declared = [(if_index, if_descr, None) for if_index, (_, if_descr) in walk.items()
                if if_descr]
    found = match_ports(declared, walk)
    assert found.by_if_index == {port_id: port_id for port_id, _, _ in declared}
    assert not found.problems


@pytest.mark.parametrize("recording", _recordings())
def test_a_whole_device_in_short_and_long_forms(recording: str) -> None:
    """All of a device's ports at once, each in its other vendor form (Huawei GE..., Cisco
    GigabitEthernet..., H3C XGE...), port id = the ifIndex it must land on."""
    walk = _walk(recording)
    declared = []
    for if_index, (if_name, _) in walk.items():
        if if_name and _owner(walk, if_index) == if_index:
            forms = _other_forms(recording, if_name)
            declared.append((if_index, forms[-1] if len(forms) > 2 else if_name, None))
    found = match_ports(declared, walk)
    assert found.by_if_index == {port_id: port_id for port_id, _, _ in declared}
    assert not found.problems
    assert set(found.how.values()) <= {"ifName", "ifName (normalized)"}


@pytest.mark.parametrize("recording", _recordings())
def test_renumbered_if_indexes_are_followed(recording: str) -> None:
    """The same declared names against a second poll after the device renumbered every
    interface (as after a reboot): each port follows its interface."""
    walk = _walk(recording)
    declared = [(port_id, if_name, None)
                for port_id, (if_index, (if_name, _)) in enumerate(sorted(walk.items()), 1)
                if if_name and _owner(walk, if_index) == if_index]
    first = match_ports(declared, walk)
    shuffled = sorted(walk)
    random.Random(recording).shuffle(shuffled)
    renumber = {old: 100_000 + new for old, new in zip(sorted(walk), shuffled, strict=True)}
    second = match_ports(declared, {renumber[i]: names for i, names in walk.items()})
    assert not first.problems and not second.problems
    assert len(first.by_if_index) == len(declared)
    assert second.by_if_index == {renumber[i]: port for i, port in first.by_if_index.items()}


def test_the_mpls_layer_shares_its_ports_if_name() -> None:
    """iosxe_asr920: ifIndex 27 is Te0/0/26 / TenGigabitEthernet0/0/26, ifIndex 37 is
    Te0/0/26 / TenGigabitEthernet0/0/26-mpls layer. The port name is the port; the layer is
    reached by its ifDescr, or by if_index."""
    if "iosxe_asr920" not in recording_names():
        pytest.skip(NO_RECORDINGS)
    walk = _walk("iosxe_asr920")
    assert walk[27] == ("Te0/0/26", "TenGigabitEthernet0/0/26")
    assert walk[37] == ("Te0/0/26", "TenGigabitEthernet0/0/26-mpls layer")
    found = match_ports([(1, "Te0/0/26", None), (2, "TenGigabitEthernet0/0/26-mpls layer", None),
                         (3, "Gi0/0/1.SI.10", None),
                         (4, "GigabitEthernet0/0/3.ServiceInstance.1", None)], walk)
    assert found.by_if_index == {27: 1, 37: 2, 52: 3, 75: 4} and not found.problems
    assert found.how == {1: "ifName", 2: "ifDescr", 3: "ifName", 4: "ifName (normalized)"}
    by_index = match_ports([(1, "Te0/0/26", 37)], walk)
    assert by_index.by_if_index == {37: 1} and by_index.how == {1: "if_index"}
    # With no ifDescr to tell them apart the name is ambiguous, and says between which.
    bare = {i: (if_name, None) for i, (if_name, _) in walk.items()}
    ambiguous = match_ports([(1, "TenGigabitEthernet0/0/26", None)], bare)
    assert not ambiguous.by_if_index
    [problem] = ambiguous.problems
    assert (problem.kind, problem.port_id, problem.port_name) == (
        AMBIGUOUS, 1, "TenGigabitEthernet0/0/26")
    assert "matches ifIndex 27 (Te0/0/26) and ifIndex 37 (Te0/0/26)" in problem.message
    assert "give the port's if_index" in problem.message


# --- the CLI outputs -------------------------------------------------------------------------


def _outputs(folder: str) -> Iterator[dict[str, str]]:
    """Every parsed record of the ntc-templates expectations under device-outputs/FOLDER."""
    root = shared_dir() / "device-outputs" / folder
    if not root.is_dir():
        pytest.skip(NO_OUTPUTS)
    yaml = YAML(typ="safe")
    for path in sorted(Path(root).rglob("*.yml")):
        yield from (yaml.load(path.read_text()) or {}).get("parsed_sample") or []


# Short forms the vendors' brief commands print, for the long names `display interface` /
# `show interfaces` print (display interface brief, show interfaces status).
BRIEF = {
    "cisco_ios": {"GigabitEthernet": "Gi", "TenGigabitEthernet": "Te", "FastEthernet": "Fa",
                  "TwentyFiveGigE": "Twe", "Port-channel": "Po", "Vlan": "Vl",
                  "Loopback": "Lo", "Tunnel": "Tu"},
    "huawei_vrp": {"GigabitEthernet": "GE", "XGigabitEthernet": "XGE", "Vlanif": "Vlanif",
                   "LoopBack": "LoopBack", "NULL": "NULL", "Eth-Trunk": "Eth-Trunk",
                   "MEth": "MEth", "Ethernet": "Eth", "40GE": "40GE", "Tunnel": "Tun"},
    "hp_comware": {"GigabitEthernet": "GE", "Ten-GigabitEthernet": "XGE",
                   "FortyGigE": "FGE", "HundredGigE": "HGE", "M-GigabitEthernet": "MGE",
                   "Bridge-Aggregation": "BAGG", "Vlan-interface": "Vlan",
                   "InLoopBack": "InLoop", "NULL": "NULL", "Tunnel": "Tun"},
}


@pytest.mark.parametrize("vendor", sorted(BRIEF))
def test_interface_names_of_real_cli_outputs(vendor: str) -> None:
    """Every interface `show interfaces` / `display interface` printed, against the short
    form the vendor's brief commands print for it."""
    folder = {"cisco_ios": "cisco_ios/show_interfaces",
              "huawei_vrp": "huawei_vrp/display_interface",
              "hp_comware": "hp_comware/display_interface"}[vendor]
    names = {record["interface"] for record in _outputs(folder) if record.get("interface")}
    checked = set()
    for name in sorted(names):
        long = next((t for t in sorted(BRIEF[vendor], key=len, reverse=True)
                     if name.startswith(t) and name[len(t):][:1].isdigit()), None)
        if long is None:
            continue  # Dialer, Cellular, Wlan-Radio, Aux...: one form only
        short = BRIEF[vendor][long] + name[len(long):]
        assert normalize(short) == normalize(name), (name, short)
        assert normalize(name.upper()) == normalize(name)
        checked.add(long)
    assert len(checked) >= 5, checked


def test_lldp_neighbour_port_ids_and_descriptions() -> None:
    """`show lldp neighbors detail` / `display lldp neighbor`: a Cisco neighbour announces
    its port ID short (Gi1/0/2) and its port description long (GigabitEthernet1/0/2); a
    Junos neighbour announces its ifIndex as port ID and a unit as description."""
    pairs = set()
    for folder in ("cisco_ios/show_lldp_neighbors_detail", "huawei_vrp/display_lldp_neighbor"):
        for record in _outputs(folder):
            pairs.add((record.get("neighbor_port_id", ""), record.get("neighbor_interface", "")))
    same = {("Gi1/0/1", "GigabitEthernet1/0/1"), ("Gi1/0/2", "GigabitEthernet1/0/2"),
            ("Gi1/0/3", "GigabitEthernet1/0/3"), ("Gi2/0/10", "GigabitEthernet2/0/10"),
            ("Gi3/0/2", "GigabitEthernet3/0/2"), ("Gi0", "GigabitEthernet0"),
            ("Et0/1", "Ethernet0/1"), ("XGigabitEthernet0/0/1", "XGigabitEthernet0/0/1")}
    assert same <= pairs
    for port_id, description in same:
        assert normalize(port_id) == normalize(description)
    assert ("502", "ge-0/0/0.0") in pairs
    # The local interfaces of those outputs, as each device writes its own ports
    local = {record.get("local_interface", "")
             for folder in ("cisco_ios/show_lldp_neighbors_detail",
                            "huawei_vrp/display_lldp_neighbor")
             for record in _outputs(folder)}
    for short, long in (("Gi1/0/22", "GigabitEthernet1/0/22"),
                        ("Te1/1/1", "TenGigabitEthernet1/1/1"),
                        ("Tw2/0/33", "TwoGigabitEthernet2/0/33"),
                        ("GE1/0/25", "GigabitEthernet1/0/25"), ("Et0/0", "Ethernet0/0")):
        assert short in local
        assert normalize(short) == normalize(long)


# --- the rule on the problem cases -----------------------------------------------------------

# vrp_5720's first ports, as a poll gives them
HUAWEI_PORTS = {6: ("GigabitEthernet0/0/1", "GigabitEthernet0/0/1"),
                7: ("GigabitEthernet0/0/2", "GigabitEthernet0/0/2"),
                8: ("GigabitEthernet0/0/3", "GigabitEthernet0/0/3"),
                10: ("GigabitEthernet0/0/5", "GigabitEthernet0/0/5"),
                54: ("XGigabitEthernet0/0/1", "XGigabitEthernet0/0/1"),
                61: ("GigabitEthernet0/0/2.1", "GigabitEthernet0/0/2.1")}


def _kinds(found: PortMatch) -> list[tuple[int, str]]:
    return [(problem.port_id, problem.kind) for problem in found.problems]


def test_a_port_the_device_does_not_have() -> None:
    found = match_ports([(1, "GE0/0/9", None), (2, "GE0/0/1", None)], HUAWEI_PORTS)
    assert found.by_if_index == {6: 2}
    [problem] = found.problems
    assert (problem.port_id, problem.port_name, problem.kind) == (1, "GE0/0/9", MISSING)
    assert problem.message.startswith("port 'GE0/0/9' (id 1) not found on the device")
    assert "write the name as the device shows it" in problem.message
    assert str(problem) == problem.message


def test_swapped_if_indexes_follow_the_names() -> None:
    """The inventory swapped the ifIndexes of two ports: both are reported, and each port
    gets the interface that carries its name."""
    found = match_ports([(1, "GigabitEthernet0/0/3", 10), (2, "GigabitEthernet0/0/5", 8)],
                        HUAWEI_PORTS)
    assert found.by_if_index == {8: 1, 10: 2}
    assert _kinds(found) == [(1, IF_INDEX_NAME_MISMATCH), (2, IF_INDEX_NAME_MISMATCH)]
    first, second = found.problems
    assert ("if_index 10 is GigabitEthernet0/0/5 on the device, the inventory says"
            " GigabitEthernet0/0/3") in first.message
    assert "matched by name to ifIndex 8 (GigabitEthernet0/0/3)" in first.message
    assert "correct the if_index in the inventory" in first.message
    assert ("if_index 8 is GigabitEthernet0/0/3 on the device, the inventory says"
            " GigabitEthernet0/0/5") in second.message


def test_an_if_index_with_another_name_and_no_match_by_name_is_kept() -> None:
    found = match_ports([(1, "uplink to PE1", 7)], HUAWEI_PORTS)
    assert found.by_if_index == {7: 1} and found.how == {1: "if_index"}
    [problem] = found.problems
    assert problem.kind == IF_INDEX_NAME_MISMATCH
    assert "if_index 7 is GigabitEthernet0/0/2 on the device" in problem.message
    assert "so if_index 7 is kept" in problem.message


def test_a_stale_if_index_is_followed_by_name_or_reported() -> None:
    found = match_ports([(1, "GE0/0/1", 999), (2, "GE0/0/8", 998)], HUAWEI_PORTS)
    assert found.by_if_index == {6: 1}
    assert _kinds(found) == [(1, IF_INDEX_STALE), (2, MISSING)]
    stale, missing = found.problems
    assert "if_index 999 is no interface of the device" in stale.message
    assert "matched by name to ifIndex 6 (GigabitEthernet0/0/1)" in stale.message
    assert "no ifIndex 998 and no interface named 'GE0/0/8'" in missing.message


def test_an_if_index_that_agrees_wins_and_an_unnamed_interface_is_trusted() -> None:
    found = match_ports([(1, "GE0/0/1", 6), (2, "Gi0/0/2", 7), (3, "GE0/0/3", 8)],
                        {**HUAWEI_PORTS, 8: (None, None)})
    assert found.by_if_index == {6: 1, 7: 2, 8: 3} and not found.problems
    assert set(found.how.values()) == {"if_index"}


def test_two_declared_ports_on_one_interface() -> None:
    """The exact name keeps the interface; the other port is reported and left out."""
    found = match_ports([(1, "GE0/0/1", None), (2, "GigabitEthernet0/0/1", None),
                         (3, "GigabitEthernet0/0/2", 7), (4, "GE0/0/2", None)], HUAWEI_PORTS)
    assert found.by_if_index == {6: 2, 7: 3}
    assert _kinds(found) == [(1, DUPLICATE), (4, DUPLICATE)]
    assert found.problems[0].message.startswith(
        "port 'GE0/0/1' (id 1) is the same interface as port 'GigabitEthernet0/0/1' (id 2):"
        " ifIndex 6 (GigabitEthernet0/0/1), which stays with port 2")
    assert "remove one of the two ports" in found.problems[0].message


def test_sub_interfaces_and_units_are_not_their_parent() -> None:
    found = match_ports([(1, "GE0/0/2.1", None), (2, "GE0/0/2", None)], HUAWEI_PORTS)
    assert found.by_if_index == {61: 1, 7: 2} and not found.problems
    junos = {507: ("et-0/0/0", "et-0/0/0"), 508: ("et-0/0/0.0", "et-0/0/0.0")}
    unit = match_ports([(1, "et-0/0/0.0", None), (2, "ET-0/0/0", None)], junos)
    assert unit.by_if_index == {508: 1, 507: 2} and not unit.problems
    assert _kinds(match_ports([(1, "et-0/0/0.1", None)], junos)) == [(1, MISSING)]


def test_input_shapes_and_determinism() -> None:
    """Ports as store.topology.PortEntry or tuples, interfaces as (ifName, ifDescr) or
    collectors.model.InterfaceLabel; the result does not depend on the order of either."""
    ports = [PortEntry(4, "GE0/0/2", None), PortEntry(1, "XGE0/0/1", None),
             PortEntry(2, "GE0/0/1", None), PortEntry(3, "Gi0/0/1", None),
             PortEntry(5, "GE0/0/7", None)]
    labels = {i: InterfaceLabel(if_name=n, if_descr=d) for i, (n, d) in HUAWEI_PORTS.items()}
    first = match_ports(ports, labels)
    assert first.by_if_index == {54: 1, 6: 2, 7: 4}
    assert _kinds(first) == [(3, DUPLICATE), (5, MISSING)]
    assert first.by_port_id == {1: 54, 2: 6, 4: 7}
    assert [p.kind for p in first.problems_of(5)] == [MISSING]
    generator = random.Random(7)
    for _ in range(5):
        shuffled = ports[:]
        generator.shuffle(shuffled)
        interfaces = list(HUAWEI_PORTS.items())
        generator.shuffle(interfaces)
        again = match_ports([(p.id, p.name, p.if_index) for p in shuffled], dict(interfaces))
        assert again == first


def test_nothing_polled() -> None:
    found = match_ports([(1, "GE0/0/1", None), (2, "GE0/0/2", 7)], {})
    assert not found.by_if_index
    assert _kinds(found) == [(1, MISSING), (2, MISSING)]
    assert match_ports([], HUAWEI_PORTS) == PortMatch()
