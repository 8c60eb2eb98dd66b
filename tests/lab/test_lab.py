"""
`make lab` end to end on the default topology (lab/topology.yaml with the lab's example pillar), as
the Makefile runs it (lab/evpnlab.py, in a state folder and namespace prefix of its own): roz
behind two NAT routers with two nodes of one PVE 9.1 cluster, wro behind one with a dynamic WAN
address on PVE 8.4. Every check runs from outside the nodes (``ip netns exec``, lab.json). Each test
sets up what it asserts on, so they hold in any order; tear-down is checked when the session ends
(tests/lab/conftest.py).
"""

import ipaddress
import json
import subprocess
import sys
import time

import pytest

from federation_lab import Federation
from salt_daemons import SALT_BIN
from support.federation import REPO
from support.labrun import addresses_held_for, bgp_peers, in_namespace, public_key, wg_endpoints
from support.labrun import default_lab as evpnlab
from support.pve import pvesh, pvesh_writes

pytestmark = pytest.mark.usefixtures("lab_host")
STATE, PREFIX = evpnlab.state, evpnlab.prefix


def ping(source, target_ip, *options, tries=10):
    """One packet at a time until one answers (a guest's first packets teach EVPN its MAC)."""
    return any(
        in_namespace(PREFIX + source.namespace, "ping", "-c1", "-W1", *options, target_ip).returncode == 0
        for _ in range(tries)
    )


def udp_probe(node, address, port):
    """'refused' when an ICMP port unreachable comes back for a UDP packet, else 'silent'."""
    script = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)\n"
        "s.connect((sys.argv[1], int(sys.argv[2]))); s.send(b'probe')\n"
        "try:\n    s.recv(1); print('answered')\n"
        "except ConnectionRefusedError:\n    print('refused')\n"
        "except OSError:\n    print('silent')\n"
    )
    return node.run(sys.executable, "-c", script, address, str(port)).stdout.strip()


def test_every_guest_reaches_every_other_across_nodes_and_sites(lab):
    placed = lab.running_guests()
    assert {g.node for g in placed} >= {"pve-roz1", "pve-roz2", "pve-wro1"}
    unreachable = [(a.ip, b.ip) for a in placed for b in placed if a != b and not ping(a, b.ip)]
    assert unreachable == []


def test_a_guest_on_the_exit_node_reaches_the_internet_as_its_site(lab):
    """SNAT on the exit node, then the two NAT routers: www sees roz's public address."""
    (guest,) = [g for g in lab.running_guests() if g.node == "pve-roz1"]
    seen = in_namespace(
        PREFIX + guest.namespace, sys.executable, str(REPO / "lab" / "answer.py"), "--ask", lab.plan.internet["www"]
    )
    assert seen.returncode == 0, seen.stderr
    assert seen.stdout.strip() == lab.lab.routers["rtr-roz-0"].wan() == "203.0.113.10"
    log = (STATE / "www.log").read_text()
    assert " tcp 80 203.0.113.10\n" in log and " tcp 80 10.1.1." not in log


def test_the_roz_nodes_hold_a_handshake_over_their_lan(lab):
    """The routers do no hairpin NAT: pve-roz1 reaches pve-roz2 at its LAN address only."""
    roz1, roz2 = lab.lab.nodes["pve-roz1"], lab.lab.nodes["pve-roz2"]
    assert wg_endpoints(roz1)[public_key(roz2)] == "192.168.2.12:51820"
    assert wg_endpoints(roz2)[public_key(roz1)] == "192.168.2.11:51820"
    assert roz1.run("ping", "-c1", "-W2", "10.1.0.2", check=False).returncode == 0
    handshakes = dict(
        line.split("\t") for line in roz1.run("wg", "show", "wg0", "latest-handshakes").stdout.splitlines()
    )
    assert int(handshakes[public_key(roz2)]) > 0
    # Through the site's public address the second node is out of reach from inside: the ISP's
    # router answers for the forwarded port itself (port unreachable); with hairpin NAT the
    # packet would reach pve-roz2's WireGuard, which drops it without a word.
    assert udp_probe(roz1, "203.0.113.10", 51821) == "refused"


def test_bgp_sessions_are_established_between_all_nodes(lab):
    nodes = {n: lab.lab.nodes[n] for n in lab.built_nodes()}
    addresses = {n: lab.plan.nodes()[n].wireguard for n in nodes}
    for node_id, node in nodes.items():
        peers = bgp_peers(node)
        expected = sorted(a for n, a in addresses.items() if n != node_id)
        assert sorted(a for a, p in peers.items() if p["state"] == "Established") == expected, node_id


def test_the_zone_mtu_holds_across_sites(lab):
    (roz,) = [g for g in lab.running_guests() if g.node == "pve-roz1"]
    (wro,) = [g for g in lab.running_guests() if g.node == "pve-wro1"]
    assert ping(roz, wro.ip, "-M", "do", "-s", "1342")  # 1370 bytes
    too_big = in_namespace(PREFIX + roz.namespace, "ping", "-c1", "-W1", "-M", "do", "-s", "1343", wro.ip)
    assert too_big.returncode != 0 and "mtu=1370" in too_big.stdout + too_big.stderr


def unsettled(plan):
    """The nodes of an evpn.plan answer that would change or have a problem."""
    return {node_id: node for node_id, node in plan["data"].items() if node["changes"] or node["problems"]}


def test_the_plan_after_a_converge_touches_nothing(lab):
    """The SDN apply and the guests added interfaces after the converge: nothing to change."""
    logs = [STATE / "clusters" / site / "pvesh.log" for site in ("roz", "wro")]
    writes_before = [pvesh_writes(log) for log in logs]
    plan = lab.master.run("evpn.plan")
    assert set(plan["data"]) >= {"pve-roz1", "pve-roz2", "pve-wro1"}
    assert (unsettled(plan), plan["retcode"]) == ({}, 0)
    assert [pvesh_writes(log) for log in logs] == writes_before


def test_a_vnet_and_a_guest_that_come_and_go_change_nothing(lab):
    """What PVE adds on a node for a new vnet (its bridge and VXLAN device) and a VM start (a tap
    port on that bridge), then removes again: a run reports no change meanwhile or after."""
    node = lab.lab.nodes["pve-roz1"]
    node.run("ip", "link", "add", "vnettst", "type", "bridge")
    node.run(
        "ip", "link", "add", "vxlan_vnettst", "type", "vxlan", "id", "19999", "dstport", "4789", "local", "10.1.0.1"
    )
    node.run("ip", "tuntap", "add", "dev", "tap900i0", "mode", "tap")
    try:
        for device in ("vxlan_vnettst", "tap900i0"):
            node.run("ip", "link", "set", device, "master", "vnettst", "up")
        assert unsettled(lab.master.run("evpn.plan")) == {}
    finally:
        for device in ("tap900i0", "vxlan_vnettst", "vnettst"):
            node.run("ip", "link", "del", device)
    assert unsettled(lab.master.run("evpn.plan")) == {}


def salt_run(federation, *args):
    """salt-run on the lab's master as a user runs it: (exit code, stdout)."""
    master = federation.master
    proc = master.node.run(str(SALT_BIN / "salt-run"), "-c", str(master.config_dir), *args, check=False)
    return proc.returncode, proc.stdout


def test_status_is_data_and_a_peer_down_fails_it(lab):
    """salt-run evpn.status --out=json: one record per node; exit code 0 while all is well, 1 once
    a tunnel is gone (pve-wro1 drops its peer pve-roz1), 0 again once a run puts it back."""
    code, out = salt_run(lab, "evpn.status", "--out=json")
    status = json.loads(out)
    assert (code, status["retcode"]) == (0, 0), out
    nodes = status["data"]
    assert sorted(nodes) == Federation.load(STATE).built_nodes()  # pve-roz3 too, once added
    for node_id, node in nodes.items():
        others = sorted(n for n in nodes if n != node_id)
        assert [peer["name"] for peer in node["wireguard"]] == others, node_id
        assert all(isinstance(peer["handshake_age"], int) for peer in node["wireguard"]), node_id
        assert {session["state"] for session in node["bgp"]} == {"Established"}, node_id
        assert node["evpn_routes"] == sum(session["routes"] for session in node["bgp"]) > 0, node_id
        assert node["problems"] == [], node_id
    wro = lab.lab.nodes["pve-wro1"]
    wro.run("wg", "set", "wg0", "peer", public_key(lab.lab.nodes["pve-roz1"]), "remove")
    try:
        code, out = salt_run(lab, "evpn.status", "--out=json")
        assert code == 1
        assert "pve-roz1: not a WireGuard peer" in json.loads(out)["data"]["pve-wro1"]["problems"]
    finally:
        put_back = lab.master.salt("pve-wro1", "state.apply", "evpn.wireguard")
        assert all(s["result"] for s in put_back["pve-wro1"].values()), put_back
    deadline = time.monotonic() + 90
    while salt_run(lab, "evpn.status", "--out=json")[0] != 0:  # BGP's session comes back on its own
        assert time.monotonic() < deadline, "the federation did not come back within 90 s"
        time.sleep(2)


def test_a_node_added_to_a_site_is_in_every_cluster_and_reaches_every_site(lab):
    added = evpnlab("add", "--node", "pve-roz3")
    assert added.returncode == 0, added.stdout + added.stderr
    federation = Federation.load(STATE)
    assert "pve-roz3" in (STATE / "pillar" / "evpn" / "sites" / "roz.sls").read_text()
    for site in ("roz", "wro"):
        (controller,) = pvesh("get", "/cluster/sdn/controllers", root=STATE / "clusters" / site)
        assert "10.1.0.3" in controller["peers"].split(","), site
        entries = pvesh("get", "/cluster/firewall/ipset/evpn-wireguard", root=STATE / "clusters" / site)
        assert "10.1.0.3" in [e["cidr"] for e in entries], site
    for node_id in ("pve-roz1", "pve-roz2", "pve-wro1"):
        peers = bgp_peers(federation.lab.nodes[node_id])
        assert peers["10.1.0.3"]["state"] == "Established", node_id
    (new,) = [g for g in federation.running_guests() if g.node == "pve-roz3"]
    assert [g.ip for g in federation.running_guests() if g != new and not ping(new, g.ip)] == []
    # Nothing else changed: a second run has nothing to do.
    logs = [STATE / "clusters" / site / "pvesh.log" for site in ("roz", "wro")]
    writes_before = [pvesh_writes(log) for log in logs]
    assert unsettled(federation.master.run("evpn.plan")) == {}
    assert [pvesh_writes(log) for log in logs] == writes_before


def test_a_renumbered_wan_address_is_followed_by_every_peer(lab):
    """The ISP renumbers wro's router; the DNS record follows; the nodes keep their own
    addresses, every peer is re-pointed and the guests' traffic comes back."""
    wro = lab.lab.nodes["pve-wro1"]
    before = lab.lab.routers["rtr-wro-0"].wan()
    moved = evpnlab("move", "wro")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    after = lab.lab.routers["rtr-wro-0"].wan()
    assert after != before and ipaddress.ip_address(after) in ipaddress.ip_network("198.51.100.0/24")
    assert "192.168.1.11/24" in wro.run("ip", "-4", "-o", "addr", "show", "dev", "eth0").stdout
    assert "10.2.0.1/32" in wro.run("ip", "-4", "-o", "addr", "show", "dev", "wg0").stdout
    assert set(addresses_held_for(lab, "pve-wro1").values()) == {after}
    print(next(line for line in moved.stdout.splitlines() if "every peer re-pointed" in line))
    assert "traffic to wro's guests back" in moved.stdout


def test_lab_status_and_a_shell_inside_a_node(lab):
    """make lab-status prints evpn.status; make lab-shell NODE= is a shell in the node's own
    namespaces: wg shows that node's interface (its key), not the host's."""
    status = evpnlab("status")
    assert status.returncode == 0 and "pve-roz1" in status.stdout and "no problems" in status.stdout
    shell = subprocess.run(
        [sys.executable, str(REPO / "lab" / "evpnlab.py"), "shell", "pve-roz2"],
        env=evpnlab.environ,
        input="wg show wg0 public-key\nhostname\nexit\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert shell.stdout.split() == [public_key(lab.lab.nodes["pve-roz2"]), "pve-roz2"], shell.stdout + shell.stderr
