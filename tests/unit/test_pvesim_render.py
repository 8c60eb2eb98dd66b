"""
The emulator's SDN apply renders what pve-network renders: /etc/network/interfaces.d/sdn and
frr.conf per node, byte for byte as pve-network's own golden files (tests/data, provenance in
tests/data/README.md): 1.3.0 for PVE 9.1, 0.11.3 for PVE 8.4. The VTEP address is chosen as
pve-network chooses it: an address of /etc/network/interfaces among the controller's peers,
otherwise the source of the route toward the first peer.
"""

import json
import pathlib

import pytest

from pvesim import render

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
FIXTURES = DATA / "pve-network-1.3.0" / "zones-evpn"
FRR_BY_VERSION = {"9.1": FIXTURES, "8.4": DATA / "pve-network-0.11.3" / "zones-evpn"}
SUPPORTED = [
    "ipv4",
    "exitnode",
    "exitnode_local_routing",
    "exitnode_primary",
    "exitnode_snat",
    "exitnodenullroute",
    "advertise_subnets",
    "disable_arp_nd_suppression",
    "multiplezones",
    "rt_import",
    "vxlanport",
    "ipv6",
    "ipv4ipv6",
    "ipv4ipv6nogateway",
]


def _case(name):
    """The case's running config and the node's facts: its /etc/network/interfaces (the vmbr0
    address there is a controller peer, so it is the VTEP address)."""
    folder = FIXTURES / name
    config = json.loads((folder / "sdn_config.json").read_text())
    facts = {"interfaces": render.interface_addresses((folder / "interfaces").read_text())}
    return folder, config, facts


@pytest.mark.parametrize("name", SUPPORTED)
def test_interfaces_as_pve_renders_them(name):
    folder, config, facts = _case(name)
    local_ip = render.local_address(config, facts)
    assert local_ip == facts["interfaces"]["vmbr0"]
    text = render.sdn_interfaces(config, "localhost", local_ip, outgoing=("vmbr0", local_ip))
    assert text == (folder / "expected_sdn_interfaces").read_text()


@pytest.mark.parametrize("version", sorted(FRR_BY_VERSION))
@pytest.mark.parametrize("name", SUPPORTED)
def test_frr_config_as_pve_renders_it(name, version):
    _, config, facts = _case(name)
    text = render.frr_config(config, "localhost", render.local_address(config, facts), version)
    assert text == (FRR_BY_VERSION[version] / name / "expected_controller_config").read_text()


def test_frr_config_of_8_4_has_one_more_bang_and_no_final_newline():
    _, config, facts = _case("ipv4")
    local_ip = render.local_address(config, facts)
    new, old = (render.frr_config(config, "localhost", local_ip, version) for version in ("9.1", "8.4"))
    assert new.endswith("line vty\n!\n") and old.endswith("line vty\n!")
    assert old.splitlines()[4:8] == ["service integrated-vtysh-config", "!", "!", "vrf vrf_myzone"]
    assert new.splitlines()[4:7] == ["service integrated-vtysh-config", "!", "vrf vrf_myzone"]


# A node as the lab and the example federation make it: pub0 to the internet (default route),
# wg0 with its WireGuard address and a route to each peer it has. Controller peers are sorted,
# so the first is pve-roz1's 10.1.0.1.
PEERS = {"controllers": {"ids": {"evpnctl": {"type": "evpn", "asn": 65000, "peers": "10.1.0.1,10.2.0.1"}}}}


def _facts(wg_address, public, wg_routes=(), interfaces=None):
    return {
        "interfaces": interfaces or {},
        "local": ["127.0.0.1", public, wg_address],
        "links": {"lo": [], "pub0": [f"{public}/24"], "wg0": [f"{wg_address}/32"]},
        "routes": [
            {"dst": "default", "gateway": "203.0.113.1", "dev": "pub0"},
            {"dst": "203.0.113.0/24", "dev": "pub0", "prefsrc": public},
            *({"dst": route, "dev": "wg0"} for route in wg_routes),
        ],
    }


def test_vtep_when_the_first_peer_is_reached_through_wg0():
    facts = _facts("10.2.0.1", "203.0.113.12", wg_routes=["10.1.0.1"])
    assert render.route_get(facts, "10.1.0.1") == ("10.2.0.1", "wg0")
    assert render.local_address(PEERS, facts) == "10.2.0.1"


def test_vtep_when_the_first_peer_is_the_node_itself():
    facts = _facts("10.1.0.1", "203.0.113.11", wg_routes=["10.2.0.1"])
    assert render.route_get(facts, "10.1.0.1") == ("10.1.0.1", "lo")
    assert render.local_address(PEERS, facts) == "10.1.0.1"


def test_vtep_before_the_tunnel_has_its_routes_is_the_public_address():
    """pve-network takes the source of whatever route leads to the first peer: without the
    WireGuard routes that is the default route, and the VTEP is the public address, not the
    node's own peer address on wg0."""
    facts = _facts("10.2.0.1", "203.0.113.12")
    assert render.local_address(PEERS, facts) == "203.0.113.12"


def test_an_address_of_etc_network_interfaces_among_the_peers_comes_first():
    interfaces = render.interface_addresses(
        "auto lo\niface lo inet loopback\n\nauto wg0\niface wg0 inet static\n\taddress 10.2.0.1/32\n"
        "\tpre-up ip link add wg0 type wireguard\n\nsource /etc/network/interfaces.d/*\n"
    )
    assert interfaces == {"wg0": "10.2.0.1"}
    facts = _facts("10.2.0.1", "203.0.113.12", interfaces=interfaces)
    assert render.local_address(PEERS, facts) == "10.2.0.1"


def test_interfaces_are_read_as_pve_common_reads_them():
    text = (
        "# a comment\nauto vmbr0\niface vmbr0 inet static\n  address 192.168.0.1/24\n  gateway 192.168.0.254\n"
        "iface vmbr0 inet6 static\n  address fd00::1/64\n"
        "iface vmbr1 inet manual\n  address 10.0.0.1\n  address 10.0.0.2/24\n"
        "iface vmbr2\n  address fd00:2::1/64\n"
    )
    assert render.interface_addresses(text) == {"vmbr0": "192.168.0.1", "vmbr1": "10.0.0.2"}


@pytest.mark.parametrize(
    "routes, expected",
    [
        ([{"dst": "10.0.0.0/8", "dev": "eth1"}, {"dst": "10.1.0.0/16", "dev": "eth2"}], ("10.1.9.9", "eth2")),
        ([{"dst": "10.1.0.0/16", "dev": "eth1", "prefsrc": "10.1.5.5"}], ("10.1.5.5", "eth1")),
        ([{"dst": "10.1.0.0/16", "gateway": "10.1.200.1", "dev": "eth1"}], ("10.1.200.2", "eth1")),
        (
            [{"dst": "10.1.0.0/16", "metric": 100, "dev": "eth1"}, {"dst": "10.1.0.0/16", "dev": "eth2"}],
            ("10.1.9.9", "eth2"),
        ),
        ([{"type": "unreachable", "dst": "10.1.0.0/16"}, {"dst": "default", "dev": "eth1"}], None),
        ([{"dst": "10.1.0.0/16", "dev": "eth3"}], ("10.0.0.1", "eth3")),
        ([], None),
    ],
    ids=[
        "longest-prefix",
        "src",
        "address-in-the-gateway-network",
        "lowest-metric",
        "unreachable",
        "no-address-on-dev",
        "no-route",
    ],
)
def test_route_get_picks_the_route_and_source_as_the_kernel(routes, expected):
    facts = {
        "local": ["10.0.0.1"],
        "links": {"eth1": ["10.0.0.1/24", "10.1.200.2/24"], "eth2": ["10.1.9.9/16"], "eth3": []},
        "routes": routes,
    }
    assert render.route_get(facts, "10.1.2.3") == expected


def test_apply_renders_for_every_node_with_a_vtep_address(tmp_path):
    """Each node that ran pvesh left its facts; the apply renders for every node with a route
    toward the first controller peer (pve1 is that peer, pve3 reaches it through wg0) and says
    so in the task log for the others (pve2 has no route at all)."""
    from pvesim.api import Api

    facts = {
        "pve1": _facts("10.1.0.1", "203.0.113.11", wg_routes=["10.2.0.1"]),
        "pve2": {"local": ["198.51.100.9"], "links": {"eth0": ["198.51.100.9/24"]}, "routes": []},
        "pve3": _facts("10.2.0.1", "203.0.113.12", wg_routes=["10.1.0.1"]),
    }
    for node, node_facts in facts.items():
        Api(tmp_path, node, "9.1", node_facts).call("GET", "/cluster/sdn/zones", {})
    api = Api(tmp_path, "pve1", "9.1", facts["pve1"])
    api.call(
        "POST",
        "/cluster/sdn/controllers",
        {"controller": "evpnctl", "type": "evpn", "asn": 65000, "peers": "10.1.0.1,10.2.0.1"},
    )
    api.call(
        "POST",
        "/cluster/sdn/zones",
        {"zone": "evpn", "type": "evpn", "controller": "evpnctl", "vrf-vxlan": 10000, "exitnodes": "pve1", "mtu": 1370},
    )
    api.call("POST", "/cluster/sdn/vnets", {"vnet": "roz1", "zone": "evpn", "tag": 11001})
    api.call(
        "POST",
        "/cluster/sdn/vnets/roz1/subnets",
        {"subnet": "10.1.1.0/24", "type": "subnet", "gateway": "10.1.1.1", "snat": 1},
    )
    _, log = api.call("PUT", "/cluster/sdn", {})
    assert log == [
        "pve1: reloading network config",
        "pve2: reloading network config",
        "pve2: no VTEP address (no route toward the first EVPN controller peer), nothing rendered",
        "pve3: reloading network config",
        "TASK OK",
    ]
    interfaces = (tmp_path / "nodes/pve1/etc/network/interfaces.d/sdn").read_text()
    assert "\tvxlan-local-tunnelip 10.1.0.1\n" in interfaces and "\tmtu 1370\n" in interfaces
    assert "-s '10.1.1.0/24' -o pub0 -j SNAT --to-source 203.0.113.11" in interfaces
    frr = (tmp_path / "nodes/pve1/etc/frr/frr.conf").read_text()
    assert " neighbor 10.2.0.1 peer-group VTEP\n" in frr and " bgp router-id 10.1.0.1\n" in frr
    assert not (tmp_path / "nodes/pve2/etc").exists()
    interfaces = (tmp_path / "nodes/pve3/etc/network/interfaces.d/sdn").read_text()
    assert "\tvxlan-local-tunnelip 10.2.0.1\n" in interfaces and "SNAT" not in interfaces  # not an exit node
    frr = (tmp_path / "nodes/pve3/etc/frr/frr.conf").read_text()
    assert " neighbor 10.1.0.1 peer-group VTEP\n" in frr and " bgp router-id 10.2.0.1\n" in frr


def test_a_node_reloading_its_network_renders_from_its_own_facts_now(tmp_path):
    """PUT /nodes/{node}/network (what the apply's task runs on each node): a node that had no
    peer address at apply time renders once it has one; a node outside the cluster is refused."""
    from pvesim.api import Api
    from pvesim.errors import PveError

    early = {"local": ["198.51.100.12"], "links": {"eth0": ["198.51.100.12/24"]}, "routes": []}
    Api(tmp_path, "pve2", "8.4", early).call("GET", "/version")
    leader = Api(tmp_path, "pve1", "8.4", _facts("10.1.0.1", "203.0.113.11", wg_routes=["10.1.0.2"]))
    leader.call(
        "POST",
        "/cluster/sdn/controllers",
        {"controller": "evpnctl", "type": "evpn", "asn": 65000, "peers": "10.1.0.1,10.1.0.2"},
    )
    leader.call(
        "POST", "/cluster/sdn/zones", {"zone": "evpn", "type": "evpn", "controller": "evpnctl", "vrf-vxlan": 10000}
    )
    leader.call("PUT", "/cluster/sdn", {})
    assert not (tmp_path / "nodes/pve2/etc").exists()
    now = _facts("10.1.0.2", "203.0.113.12", wg_routes=["10.1.0.1"])
    upid, log = Api(tmp_path, "pve2", "8.4", now).call("PUT", "/nodes/pve2/network", {})
    assert upid.startswith("UPID:pve2:") and ":srvreload:" in upid and log == ["TASK OK"]
    assert " bgp router-id 10.1.0.2\n" in (tmp_path / "nodes/pve2/etc/frr/frr.conf").read_text()
    with pytest.raises(PveError, match="no such cluster node 'pve9'"):
        leader.call("PUT", "/nodes/pve9/network", {})
