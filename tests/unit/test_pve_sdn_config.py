"""The SDN file reader (_utils/pve_sdn_config.py): PVE's section-config parse, its pending view and
digests, and what it refuses to guess (the caller then asks pvesh)."""

import hashlib

import pytest

import pve_sdn_config

ZONES = """evpn: evpn
\tcontroller evpnctl
\tvrf-vxlan 10000
\tadvertise-subnets 1
\texitnodes pve2,pve1
\tmtu 1370

# a comment between sections
simple: userzone
\tnodes pve1
\tipam pve

"""


def test_sections_are_read_typed_as_pve_reads_them():
    assert pve_sdn_config.parse("zones", ZONES) == {
        "evpn": {
            "type": "evpn",
            "controller": "evpnctl",
            "vrf-vxlan": 10000,
            "advertise-subnets": 1,
            "exitnodes": {"pve2": 1, "pve1": 1},
            "mtu": 1370,
        },
        "userzone": {"type": "simple", "nodes": {"pve1": 1}, "ipam": "pve"},
    }
    subnets = "subnet: z-10.0.0.0-24\n\tvnet v1\n\tdhcp-range start-address=10.0.0.5,end-address=10.0.0.9\n"
    subnets += "\tdhcp-range start-address=10.0.0.20,end-address=10.0.0.29\n\tsnat\n"
    assert pve_sdn_config.parse("subnets", subnets)["z-10.0.0.0-24"] == {
        "type": "subnet",
        "vnet": "v1",
        "dhcp-range": ["start-address=10.0.0.5,end-address=10.0.0.9", "start-address=10.0.0.20,end-address=10.0.0.29"],
        "snat": 1,
    }


def test_the_digest_is_the_sha1_of_the_file():
    assert pve_sdn_config.digest(ZONES) == hashlib.sha1(ZONES.encode()).hexdigest()
    assert pve_sdn_config.digest("") == "da39a3ee5e6b4b0d3255bfef95601890afd80709"


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        ("zones", "qinq2: z\n\ttag 5\n", "line 1: section type 'qinq2' is not one this reader knows"),
        (
            "zones",
            "evpn: z\n\tcontroller c\n\tvrf-vxlan 1\n\tcolour blue\n",
            "line 4: evpn z: unknown property 'colour'",
        ),
        ("zones", "evpn: z\n\tcontroller c\n\tvrf-vxlan ten\n", "line 3: vrf-vxlan 'ten' is not an integer"),
        ("zones", "evpn: z\n\tcontroller c\n\tvrf-vxlan 1\n\tadvertise-subnets yes\n", "'yes' is not 0 or 1"),
        ("zones", "evpn: z\n\tcontroller c\n", "evpn z: missing vrf-vxlan"),
        ("zones", "evpn: z\ncontroller c\n", "line 2: not a property line"),
        ("zones", "  evpn: z\n", "line 1: neither a section header nor a comment"),
        ("vnets", "vnet: v\n\tzone a\n\tzone b\n", "line 3: vnet v: zone given twice"),
        ("vnets", "VNET: v\n\tzone a\n", "section type 'VNET'"),  # vnets keep the case of their type
        ("zones", "simple: z\n\tnodes pve1,-bad\n", "holds a name that is not a node name"),
    ],
)
def test_what_pve_would_skip_or_refuse_is_not_guessed(kind, text, message):
    with pytest.raises(ValueError, match=message):
        pve_sdn_config.parse(kind, text, f"sdn/{kind}.cfg")


def test_zone_and_controller_types_are_case_blind():
    assert pve_sdn_config.parse("zones", "Simple: z\n")["z"] == {"type": "simple"}


def test_the_running_config_is_its_json_or_nothing():
    assert pve_sdn_config.parse_running('{"version": 3}') == {"version": 3}
    assert pve_sdn_config.parse_running("") == {}
    assert pve_sdn_config.parse_running("{not json") == {}, "PVE reads a broken file as never applied"


RUNNING = {
    "zones": {
        "ids": {
            "evpn": {"type": "evpn", "controller": "c", "vrf-vxlan": 10000, "exitnodes": {"pve1": 1, "pve2": 1}},
            "gone": {"type": "simple", "nodes": {"pve1": 1}},
            "same": {"type": "simple", "mtu": 1400},
        }
    }
}


def test_pending_view_of_new_changed_deleted_and_unchanged_objects():
    config = {
        "evpn": {"type": "evpn", "controller": "c", "vrf-vxlan": 10000, "exitnodes": {"pve1": 1}, "mtu": 1300},
        "same": {"type": "simple", "mtu": 1400},
        "fresh": {"type": "simple", "nodes": {"pve2": 1}},
    }
    view = {item["zone"]: item for item in pve_sdn_config.listing("zones", config, "d", RUNNING, "pending")}
    assert view["evpn"] == {
        "zone": "evpn",
        "digest": None,
        "type": "evpn",
        "controller": "c",
        "vrf-vxlan": 10000,
        "exitnodes": "pve1,pve2",
        "state": "changed",
        "pending": {"exitnodes": "pve1", "mtu": 1300},
    }
    assert view["gone"] == {
        "zone": "gone",
        "digest": None,
        "type": "simple",
        "nodes": "pve1",
        "state": "deleted",
        "pending": {},
    }
    assert view["same"] == {"zone": "same", "digest": None, "type": "simple", "mtu": 1400}
    assert view["fresh"] == {
        "zone": "fresh",
        "digest": None,
        "type": "simple",
        "state": "new",
        "pending": {"nodes": "pve2"},
    }


def test_a_removed_key_is_pending_deleted_and_a_reordered_list_is_no_change():
    running = {"zones": {"ids": {"z": {"type": "simple", "nodes": {"b": 1, "a": 1}, "mtu": 1400}}}}
    (item,) = pve_sdn_config.listing(
        "zones", {"z": {"type": "simple", "nodes": {"a": 1, "b": 1}}}, "d", running, "pending"
    )
    assert (item["state"], item["pending"], item["mtu"]) == ("changed", {"mtu": "deleted"}, 1400)


def test_a_new_subnet_has_its_vnet_at_the_top_and_its_derived_keys():
    config = {"evpn-10.1.1.0-24": {"type": "subnet", "vnet": "roz1", "gateway": "10.1.1.1"}}
    (item,) = pve_sdn_config.listing("subnets", config, "d", {}, "pending")
    assert item == {
        "subnet": "evpn-10.1.1.0-24",
        "id": "evpn-10.1.1.0-24",
        "cidr": "10.1.1.0/24",
        "zone": "evpn",
        "network": "10.1.1.0",
        "mask": "24",
        "digest": None,
        "type": "subnet",
        "vnet": "roz1",
        "state": "new",
        "pending": {"gateway": "10.1.1.1"},
        "dhcp-range": [],
    }


def test_the_configured_view_carries_the_file_digest_and_the_running_view_none():
    config = {"v1": {"type": "vnet", "zone": "evpn", "tag": 11001}}
    (configured,) = pve_sdn_config.listing("vnets", config, "abc", {}, None)
    assert configured == {"vnet": "v1", "type": "vnet", "zone": "evpn", "tag": 11001, "digest": "abc"}
    running = {"vnets": {"ids": {"v1": {"type": "vnet", "zone": "evpn", "tag": 11001}}}}
    assert pve_sdn_config.listing("vnets", {}, "abc", running, "running")[0]["digest"] is None
