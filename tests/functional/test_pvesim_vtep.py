"""
The emulator chooses a node's VTEP address as pve-network does, inside lab nodes: pve-roz1 is
the controller's first peer itself, pve-wro1 reaches it through wg0. What the emulator reads of
a node (``node_facts``) gives the answers ``ip route get`` gives there, and an SDN apply through
``lab/bin/pvesh`` renders each node's files with its own VTEP address; before the WireGuard
routes exist, PVE's choice (and so the emulator's) is the public address. wg0 is wireguard-go's
interface, as in the lab, without peers: routing is all this is about.
"""

import json
import os
import sys

import pytest

from netns import Lab
from support.federation import REPO

pytestmark = pytest.mark.usefixtures("lab_host")
# node: (public address, WireGuard address, the other node's WireGuard address)
NODES = {"pve-roz1": ("203.0.113.61", "10.1.0.1", "10.2.0.1"), "pve-wro1": ("203.0.113.62", "10.2.0.1", "10.1.0.1")}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with Lab(tmp_path_factory.mktemp("lab"), prefix=f"v{os.getpid() % 100000}-") as made:
        for name, (public, address, _) in NODES.items():
            node = made.node(name, public)
            node.start_wireguard("wg0")
            node.run("ip", "address", "add", f"{address}/32", "dev", "wg0")
            node.run("ip", "link", "set", "wg0", "up")
        yield made


@pytest.fixture
def tunnels(lab):
    """Each node routes the other's WireGuard address through wg0 (and puts it back after)."""
    for name, (_, _, other) in NODES.items():
        lab.nodes[name].run("ip", "route", "replace", f"{other}/32", "dev", "wg0")
    yield lab.nodes
    for name, (_, _, other) in NODES.items():
        lab.nodes[name].run("ip", "route", "replace", f"{other}/32", "dev", "wg0")


def _facts(node):
    script = "import json; from pvesim.render import node_facts; print(json.dumps(node_facts()))"
    return json.loads(node.run(sys.executable, "-c", script, cwd=REPO / "lab").stdout)


def _ip_route_get(node, target):
    (route,) = json.loads(node.run("ip", "-j", "route", "get", target).stdout)
    return route["prefsrc"], route["dev"]


@pytest.mark.parametrize("name", sorted(NODES))
def test_the_emulator_reads_routes_as_ip_route_get_answers(tunnels, name):
    from pvesim import render

    node = tunnels[name]
    facts = _facts(node)
    for target in ("10.1.0.1", "10.2.0.1", "203.0.113.1", "203.0.113.99", "8.8.8.8"):
        assert render.route_get(facts, target) == _ip_route_get(node, target), target


def _pvesh(node, root, *args):
    environ = {**os.environ, "PVESIM_ROOT": str(root), "PVESIM_NODE": node.name}
    environ.pop("PVESIM_LOG", None)
    proc = node.run(sys.executable, str(REPO / "lab" / "bin" / "pvesh"), *args, env=environ, check=False)
    assert proc.returncode == 0, f"pvesh {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def _apply(nodes, root):
    """Each node records its facts (any pvesh call does), then pve-roz1 applies: {node: VTEP}."""
    for node in nodes.values():
        _pvesh(node, root, "get", "/cluster/sdn/zones")
    _pvesh(nodes["pve-roz1"], root, "set", "/cluster/sdn")
    vteps = {}
    for name in nodes:
        interfaces = (root / "nodes" / name / "etc" / "network" / "interfaces.d" / "sdn").read_text()
        vteps[name] = {line.split()[1] for line in interfaces.splitlines() if "vxlan-local-tunnelip" in line}
    return vteps


@pytest.fixture
def cluster(tmp_path, lab):
    root = tmp_path / "cluster"
    roz = lab.nodes["pve-roz1"]
    controller = ["--controller", "evpnctl", "--type", "evpn", "--asn", "65000", "--peers", "10.1.0.1,10.2.0.1"]
    _pvesh(roz, root, "create", "/cluster/sdn/controllers", *controller)
    zone = ["--zone", "evpn", "--type", "evpn", "--controller", "evpnctl", "--vrf-vxlan", "10000"]
    _pvesh(roz, root, "create", "/cluster/sdn/zones", *zone)
    _pvesh(roz, root, "create", "/cluster/sdn/vnets", "--vnet", "roz1", "--zone", "evpn", "--tag", "11001")
    return root


def test_each_node_renders_with_its_own_vtep_address(tunnels, cluster):
    vteps = _apply(tunnels, cluster)
    assert vteps == {"pve-roz1": {"10.1.0.1"}, "pve-wro1": {"10.2.0.1"}}
    frr = (cluster / "nodes" / "pve-wro1" / "etc" / "frr" / "frr.conf").read_text()
    assert " bgp router-id 10.2.0.1\n" in frr and " neighbor 10.1.0.1 peer-group VTEP\n" in frr


def test_before_the_tunnel_routes_exist_the_vtep_is_the_public_address(tunnels, cluster):
    tunnels["pve-wro1"].run("ip", "route", "del", "10.1.0.1/32", "dev", "wg0")
    vteps = _apply(tunnels, cluster)
    assert vteps == {"pve-roz1": {"10.1.0.1"}, "pve-wro1": {"203.0.113.62"}}
