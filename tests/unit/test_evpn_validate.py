"""evpn.validate on malformed pillars: every rule, each error at its exact key path."""

import copy

import pytest

import evpn
from support.federation import example_federation

EXAMPLE = example_federation()


@pytest.fixture
def configure_loader_modules():
    return {evpn: {}}


def _set(path, value):
    """A mutation that sets the ':'-separated ``path`` (under evpn) to ``value``."""

    def mutate(fed):
        *parents, last = path.split(":")
        for key in parents:
            fed = fed.setdefault(key, {})
        fed[last] = value

    return mutate


def _pop(path):
    def mutate(fed):
        *parents, last = path.split(":")
        for key in parents:
            fed = fed[key]
        fed.pop(last)

    return mutate


WRO_NODE = "sites:wro:nodes:pve-wro1"
ROZ_NODE = "sites:roz:nodes:pve-roz1"
ROZ2_NODE = "sites:roz:nodes:pve-roz2"
ROZ_SUBNET = "sites:roz:vnets:roz1:subnets:10.1.1.0/24"

# (case, mutations, [(error path, message fragment), ...]): the exact set of errors expected.
CASES = [
    (
        "duplicate address",
        [_set(f"{WRO_NODE}:address", "10.1.0.1"), _pop("sites:wro:network")],
        [(f"{WRO_NODE}:address", "10.1.0.1 is already the address of evpn:sites:roz:nodes:pve-roz1")],
    ),
    (
        "malformed address",
        [_set(f"{ROZ_NODE}:address", "10.1.0.300")],
        [(f"{ROZ_NODE}:address", "'10.1.0.300' is not an IP address")],
    ),
    (
        "address with a prefix length",
        [_set(f"{ROZ_NODE}:address", "10.1.0.1/24")],
        [(f"{ROZ_NODE}:address", "'10.1.0.1/24' is not an IP address")],
    ),
    (
        "IPv6 WireGuard address",
        [_pop("sites:roz:network"), _set(f"{ROZ_NODE}:address", "fd00:1::1")],
        [(f"{ROZ_NODE}:address", "fd00:1::1 is IPv6, and the underlay is IPv4 only")],
    ),
    (
        "IPv6 site network",
        [_set("sites:roz:network", "fd00:1::/64")],
        [("sites:roz:network", "fd00:1::/64 is IPv6, and the underlay is IPv4 only")],
    ),
    (
        "address outside its site",
        [_set(f"{ROZ_NODE}:address", "10.1.5.1")],
        [(f"{ROZ_NODE}:address", "10.1.5.1 is outside this site's network 10.1.0.0/24")],
    ),
    (
        "address in another site",
        [_pop("sites:wro:network"), _set(f"{WRO_NODE}:address", "10.1.0.7")],
        [(f"{WRO_NODE}:address", "10.1.0.7 lies in the network of site 'roz'")],
    ),
    (
        "address outside every site",
        [_set(f"{ROZ_NODE}:address", "172.16.0.1")],
        [(f"{ROZ_NODE}:address", "172.16.0.1 is outside this site's network 10.1.0.0/24")],
    ),
    (
        "overlapping site networks",
        [_set("sites:wro:network", "10.1.0.128/25"), _set(f"{WRO_NODE}:address", "10.1.0.130")],
        [("sites:wro:network", "10.1.0.128/25 overlaps 10.1.0.0/24 at evpn:sites:roz:network")],
    ),
    (
        "overlapping subnets across sites",
        [_set("sites:wro:vnets:wro1:subnets", {"10.1.1.0/25": {"gateway": "10.1.1.2"}})],
        [
            (
                "sites:wro:vnets:wro1:subnets:10.1.1.0/25",
                "10.1.1.0/25 overlaps 10.1.1.0/24 at evpn:sites:roz:vnets:roz1:subnets:10.1.1.0/24",
            )
        ],
    ),
    (
        "subnet overlapping a WireGuard network",
        [_set("vnets", {"shared": {"tag": 13001, "subnets": {"10.2.0.128/25": {}}}})],
        [("vnets:shared:subnets:10.2.0.128/25", "10.2.0.128/25 overlaps 10.2.0.0/24 at evpn:sites:wro:network")],
    ),
    (
        "subnet holding a node address",
        [
            _pop("sites:roz:network"),
            _set(ROZ_SUBNET.replace("10.1.1.0/24", "10.1.0.0/24"), {"gateway": "10.1.0.254"}),
            _pop(ROZ_SUBNET),
        ],
        [
            (
                "sites:roz:vnets:roz1:subnets:10.1.0.0/24",
                "10.1.0.0/24 overlaps 10.1.0.1/32 at evpn:sites:roz:nodes:pve-roz1:address",
            ),
            (
                "sites:roz:vnets:roz1:subnets:10.1.0.0/24",
                "10.1.0.0/24 overlaps 10.1.0.2/32 at evpn:sites:roz:nodes:pve-roz2:address",
            ),
        ],
    ),
    (
        "subnet with host bits",
        [_set("sites:roz:vnets:roz1:subnets", {"10.1.1.1/24": {}})],
        [("sites:roz:vnets:roz1:subnets:10.1.1.1/24", "has host bits set: did you mean 10.1.1.0/24?")],
    ),
    (
        "gateway outside its subnet",
        [_set(f"{ROZ_SUBNET}:gateway", "10.1.2.1")],
        [(f"{ROZ_SUBNET}:gateway", "10.1.2.1 is outside its subnet 10.1.1.0/24")],
    ),
    (
        "gateway on the network address",
        [_set(f"{ROZ_SUBNET}:gateway", "10.1.1.0")],
        [(f"{ROZ_SUBNET}:gateway", "10.1.1.0 is the network or broadcast address of 10.1.1.0/24")],
    ),
    (
        "duplicate VNI",
        [_set("sites:wro:vnets:wro1:tag", 11001)],
        [("sites:wro:vnets:wro1:tag", "VNI 11001 is already the tag of evpn:sites:roz:vnets:roz1")],
    ),
    (
        "duplicate vnet id",
        [_set("vnets", {"roz1": {"tag": 13001}})],
        [("sites:roz:vnets:roz1", "vnet id is already used at evpn:vnets:roz1")],
    ),
    (
        "vrf_vxlan equal to a vnet tag",
        [_set("zone:vrf_vxlan", 12001)],
        [("sites:wro:vnets:wro1:tag", "12001 is the zone's vrf_vxlan (the L3 VNI)")],
    ),
    ("zone id too long", [_set("zone:id", "evpnzone1")], [("zone:id", "'evpnzone1' is longer than 8 characters")]),
    (
        "zone id with a bad character",
        [_set("zone:id", "evpn_1")],
        [("zone:id", "'evpn_1' is not valid (PVE zone ids are 2-8 characters")],
    ),
    (
        "vnet id starting with a digit",
        [_set("sites:roz:vnets", {"1roz": {"tag": 11001}})],
        [("sites:roz:vnets:1roz", "'1roz' is not valid (PVE vnet ids")],
    ),
    (
        "controller id PVE refuses",
        [_set("controller", "evpn ctl")],
        [("controller", "'evpn ctl' is not valid (PVE controller ids")],
    ),
    (
        "exit node of another site",
        [_set("sites:roz:exit_nodes", ["pve-roz1", "pve-wro1"])],
        [("sites:roz:exit_nodes:1", "'pve-wro1' is not a node of this site")],
    ),
    (
        "primary exit node not an exit node",
        [_set("sites:roz:exit_nodes", []), _set("sites:roz:primary_exit_node", "pve-roz1")],
        [("sites:roz:primary_exit_node", "'pve-roz1' is not one of this site's exit nodes")],
    ),
    (
        "SDN leader not a node of the site",
        [_set("sites:roz:sdn_leader", "pve-wro1")],
        [("sites:roz:sdn_leader", "'pve-wro1' is not a node of this site")],
    ),
    (
        "zone MTU larger than the tunnel allows",
        [_set("zone:mtu", 1380)],
        [("zone:mtu", "1380 does not fit: VXLAN needs 50 bytes inside the WireGuard MTU of 1420, so at most 1370")],
    ),
    (
        "WireGuard MTU lowered under the zone MTU",
        [_set("zone:mtu", 1370), _set("wireguard:mtu", 1400)],
        [("zone:mtu", "1370 does not fit: VXLAN needs 50 bytes inside the WireGuard MTU of 1400, so at most 1350")],
    ),
    (
        "typo in a top-level key",
        [_set("contoller", "evpnctl"), _pop("controller")],
        [("contoller", "unknown key 'contoller': did you mean 'controller'?"), ("controller", "is required")],
    ),
    (
        "typo in a node key",
        [_set(f"{ROZ_NODE}:adress", "10.1.0.1"), _pop(f"{ROZ_NODE}:address")],
        [
            (f"{ROZ_NODE}:adress", "unknown key 'adress': did you mean 'address'?"),
            (f"{ROZ_NODE}:address", "is required"),
        ],
    ),
    (
        "typo in a site key",
        [_set("sites:roz:exit_node", ["pve-roz1"])],
        [("sites:roz:exit_node", "unknown key 'exit_node': did you mean 'exit_nodes'?")],
    ),
    (
        "unknown key with no close match",
        [_set("wireguard:table", "off")],
        [("wireguard:table", "unknown key 'table' (known keys: interface, keepalive, mtu, port)")],
    ),
    (
        "WireGuard port out of range",
        [_set("wireguard:port", 70000)],
        [("wireguard:port", "must be between 1 and 65535, got 70000")],
    ),
    (
        "endpoint port out of range",
        [_set(f"{ROZ_NODE}:endpoint", "roz.example.net:0")],
        [(f"{ROZ_NODE}:endpoint", "port '0' of 'roz.example.net:0' is not between 1 and 65535")],
    ),
    (
        "malformed endpoint",
        [_set(f"{ROZ_NODE}:endpoint", "roz example.net")],
        [(f"{ROZ_NODE}:endpoint", "'roz example.net' is neither an IP address nor a DNS name")],
    ),
    (
        "duplicate endpoint",
        [_set(f"{WRO_NODE}:endpoint", "roz.example.net:51820")],
        [(f"{WRO_NODE}:endpoint", "'roz.example.net:51820' is already the endpoint of evpn:sites:roz:nodes:pve-roz1")],
    ),
    (
        "WireGuard range on the local-routing veth",
        [
            _set("zone:exitnodes_local_routing", True),
            _set("sites:roz:network", "10.255.255.0/24"),
            _set(f"{ROZ_NODE}:address", "10.255.255.9"),
            _set(f"{ROZ2_NODE}:address", "10.255.255.10"),
        ],
        [("sites:roz:network", "10.255.255.0/24 collides with 10.255.255.0/30")],
    ),
    (
        "WireGuard address on the local-routing veth",
        [
            _set("zone:exitnodes_local_routing", True),
            _pop("sites:roz:network"),
            _set(f"{ROZ_NODE}:address", "10.255.255.2"),
        ],
        [(f"{ROZ_NODE}:address", "10.255.255.2/32 collides with 10.255.255.0/30, which PVE uses on exit nodes")],
    ),
    (
        "duplicate minion id across sites",
        [_set("sites:wro:nodes:pve-roz1", {"address": "10.2.0.2", "endpoint": "wro2.example.net"})],
        [("sites:wro:nodes:pve-roz1", "minion id is already a node of site 'roz'")],
    ),
    (
        "default PVE node name invalid",
        [
            _set("sites:roz:nodes", {"pve_roz1": {"address": "10.1.0.1", "endpoint": "roz.example.net"}}),
            _pop("sites:roz:exit_nodes"),
        ],
        [
            (
                "sites:roz:nodes:pve_roz1:pve_node",
                "the default 'pve_roz1' (the minion id up to the first dot) is not a PVE node name",
            )
        ],
    ),
    (
        "firewall enabled without management",
        [_set("sites:roz:firewall", {"enable": True})],
        [("sites:roz:firewall:management", "is empty while firewall:enable is true")],
    ),
    (
        "management entry malformed",
        [_set("sites:roz:firewall", {"management": ["192.168.2.0/33"]})],
        [("sites:roz:firewall:management", "item 0: '192.168.2.0/33' is not a network")],
    ),
    ("string where an integer belongs", [_set("asn", "65000")], [("asn", "must be an integer, got '65000'")]),
    (
        "string where a boolean belongs",
        [_set(f"{ROZ_SUBNET}:snat", "yes")],
        [(f"{ROZ_SUBNET}:snat", "must be true or false, got 'yes'")],
    ),
    (
        "boolean where an integer belongs",
        [_set("wireguard:keepalive", True)],
        [("wireguard:keepalive", "must be an integer, got True")],
    ),
    (
        "list where a mapping belongs",
        [_set("sites:roz:nodes", ["pve-roz1"]), _pop("sites:roz:exit_nodes")],
        [("sites:roz:nodes", "must be a mapping, got list")],
    ),
    (
        "VNI out of range",
        [_set("sites:roz:vnets:roz1:tag", 16777216)],
        [("sites:roz:vnets:roz1:tag", "must be between 1 and 16777215, got 16777216")],
    ),
    (
        "LAN endpoint shared by two nodes of a site",
        [_set(f"{ROZ2_NODE}:lan_endpoint", "192.168.2.11:51820")],
        [
            (
                f"{ROZ2_NODE}:lan_endpoint",
                "'192.168.2.11:51820' is already the lan_endpoint of evpn:sites:roz:nodes:pve-roz1",
            )
        ],
    ),
    (
        "LAN endpoint malformed",
        [_set(f"{ROZ2_NODE}:lan_endpoint", "192.168.2.12:99999")],
        [(f"{ROZ2_NODE}:lan_endpoint", "port '99999' of '192.168.2.12:99999' is not between 1 and 65535")],
    ),
    ("no sites", [_set("sites", {})], [("sites", "must hold at least 1 entry")]),
    ("site without nodes", [_set("sites:wro:nodes", None)], [("sites:wro:nodes", "is required")]),
]


@pytest.mark.parametrize("mutations,expected", [pytest.param(m, e, id=name) for name, m, e in CASES])
def test_malformed_pillar(mutations, expected):
    federation = copy.deepcopy(EXAMPLE)
    for mutate in mutations:
        mutate(federation)
    errors = evpn.validate(federation=federation)["errors"]
    paths = sorted(error.split(": ", 1)[0] for error in errors)
    assert paths == sorted(f"evpn:{path}" for path, _ in expected), errors
    for path, fragment in expected:
        assert any(error.startswith(f"evpn:{path}: ") and fragment in error for error in errors), (
            f"no error at evpn:{path} saying {fragment!r}: {errors}"
        )


def test_every_error_reported_at_once():
    federation = copy.deepcopy(EXAMPLE)
    for mutate in (
        _set("asn", 0),
        _set("zone:id", "x"),
        _set(f"{ROZ_NODE}:address", "10.1.0.300"),
        _set(f"{ROZ_SUBNET}:gateway", "10.9.9.9"),
        _set("sites:wro:vnets:wro1:tag", 11001),
    ):
        mutate(federation)
    assert len(evpn.validate(federation=federation)["errors"]) == 5


def test_local_routing_is_a_warning_not_an_error():
    federation = copy.deepcopy(EXAMPLE)
    _set("zone:exitnodes_local_routing", True)(federation)
    report = evpn.validate(federation=federation)
    assert report["errors"] == []
    assert report["warnings"][0].startswith("evpn:zone:exitnodes_local_routing: true is a known trap")


def test_cases_cover_twenty_malformed_pillars():
    assert len(CASES) >= 20


def test_lan_endpoints_may_repeat_across_sites():
    """Sites' LANs may overlap (two ISP routers hand out 192.168.1.0/24): a LAN endpoint is
    unique within its site only."""
    federation = copy.deepcopy(EXAMPLE)
    _set(f"{WRO_NODE}:lan_endpoint", "192.168.2.11")(federation)
    assert evpn.validate(federation=federation)["errors"] == []
