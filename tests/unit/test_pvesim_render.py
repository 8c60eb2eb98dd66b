"""
The emulator's SDN apply renders what pve-network renders: /etc/network/interfaces.d/sdn and
frr.conf per node, compared with pve-network's own golden files (tests/data,
provenance in tests/data/README.md; whitespace at line ends and blank lines at the ends ignored).
"""

import json
import pathlib
import re

import pytest

from pvesim import render

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "data" / "pve-network-1.3.0" / "zones-evpn"
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


def _normal(text):
    return [line.rstrip() for line in text.strip("\n").splitlines()]


def _case(name):
    folder = FIXTURES / name
    config = json.loads((folder / "sdn_config.json").read_text())
    vmbr0 = re.search(r"iface vmbr0 inet6? static\n\s+address (\S+)/", (folder / "interfaces").read_text())
    return folder, config, vmbr0.group(1)


@pytest.mark.parametrize("name", SUPPORTED)
def test_interfaces_as_pve_renders_them(name):
    folder, config, address = _case(name)
    local_ip = render.local_address(config, {address})
    text = render.sdn_interfaces(config, "localhost", local_ip, outgoing=("vmbr0", address))
    assert _normal(text) == _normal((folder / "expected_sdn_interfaces").read_text())


@pytest.mark.parametrize("name", SUPPORTED)
def test_frr_config_as_pve_renders_it(name):
    folder, config, address = _case(name)
    local_ip = render.local_address(config, {address})
    text = render.frr_config(config, "localhost", local_ip, "9.1")
    assert _normal(text) == _normal((folder / "expected_controller_config").read_text())


def test_apply_renders_for_every_node_with_a_peer_address(tmp_path):
    """Each node that ran pvesh left its facts; the apply renders for those among the peers and
    says so in the task log for the others."""
    from pvesim.api import Api

    facts = {
        "pve1": {"addresses": ["10.1.0.1", "203.0.113.11"], "outgoing": ["pub0", "203.0.113.11"]},
        "pve2": {"addresses": ["198.51.100.9"], "outgoing": None},
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
        "pve2: none of its addresses is a peer of the EVPN controller, nothing rendered",
        "TASK OK",
    ]
    interfaces = (tmp_path / "nodes/pve1/etc/network/interfaces.d/sdn").read_text()
    assert "\tvxlan-local-tunnelip 10.1.0.1\n" in interfaces and "\tmtu 1370\n" in interfaces
    assert "-s '10.1.1.0/24' -o pub0 -j SNAT --to-source 203.0.113.11" in interfaces
    frr = (tmp_path / "nodes/pve1/etc/frr/frr.conf").read_text()
    assert " neighbor 10.2.0.1 peer-group VTEP\n" in frr and " bgp router-id 10.1.0.1\n" in frr
    assert not (tmp_path / "nodes/pve2/etc").exists()


def test_a_node_reloading_its_network_renders_from_its_own_facts_now(tmp_path):
    """PUT /nodes/{node}/network (what the apply's task runs on each node): a node that had no
    peer address at apply time renders once it has one; a node outside the cluster is refused."""
    from pvesim.api import Api
    from pvesim.errors import PveError

    early = {"addresses": ["192.168.2.12"], "outgoing": ["eth0", "192.168.2.12"]}
    Api(tmp_path, "pve2", "8.4", early).call("GET", "/version")
    leader = Api(tmp_path, "pve1", "8.4", {"addresses": ["10.1.0.1"], "outgoing": ["eth0", "192.168.2.11"]})
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
    now = {"addresses": ["192.168.2.12", "10.1.0.2"], "outgoing": ["eth0", "192.168.2.12"]}
    upid, log = Api(tmp_path, "pve2", "8.4", now).call("PUT", "/nodes/pve2/network", {})
    assert upid.startswith("UPID:pve2:") and ":srvreload:" in upid and log == ["TASK OK"]
    assert " bgp router-id 10.1.0.2\n" in (tmp_path / "nodes/pve2/etc/frr/frr.conf").read_text()
    with pytest.raises(PveError, match="no such cluster node 'pve9'"):
        leader.call("PUT", "/nodes/pve9/network", {})
