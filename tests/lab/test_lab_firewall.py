"""
The firewall on, as Proxmox enforces it: each node's firewall daemon (lab/firewalld.py) loads
what the emulator compiles from the cluster's files (lab/pvesim/fwcompile), roz's nodes with
proxmox-firewall (nftables), wro's with pve-firewall (iptables), krk (added here, a rented server
on a public address) with nftables. Every check runs from outside the nodes, from the namespace
a packet would come from: guests, the site LAN (the routers' LAN side), the internet.
"""

import subprocess
import sys
import time

import pytest
import yaml

from support.federation import REPO
from support.labrun import bgp_peers, in_namespace, public_key
from support.labrun import default_lab as evpnlab

pytestmark = pytest.mark.usefixtures("lab_host")
PREFIX = evpnlab.prefix
PROBE = [sys.executable, str(REPO / "lab" / "probe.py")]
ANSWER = [sys.executable, str(REPO / "lab" / "answer.py")]
SERVICES = {22: "tcp", 8006: "tcp", 5405: "udp"}  # sshd, pveproxy, corosync


def run_in(namespace, *argv):
    return in_namespace(PREFIX + namespace, *argv)


def tcp(namespace, host, port, source=None):
    return run_in(namespace, *PROBE, "tcp", host, str(port), *(["--source", source] if source else [])).returncode == 0


def udp(namespace, host, port):
    return run_in(namespace, *ANSWER, "--ask", host, "--udp", str(port), "--timeout", "1").returncode == 0


def reaches(namespace, host, port):
    return udp(namespace, host, port) if SERVICES.get(port) == "udp" else tcp(namespace, host, port)


def ping(namespace, address, tries=10):
    return any(run_in(namespace, "ping", "-c1", "-W1", address).returncode == 0 for _ in range(tries))


def seen_by(lab, node_id, port, source):
    """Whether the node's stand-in on ``port`` logged a connection from ``source``."""
    log = lab.lab.nodes[node_id].root / "answers.log"
    return any(line.split()[2:] == [str(port), source] for line in log.read_text().splitlines())


def vxlan_delivered(lab, sender, sender_source, vtep, guest, marker):
    """One VXLAN frame from ``sender`` (a namespace, from ``sender_source``) to the VTEP address
    ``vtep``, for ``guest`` on its vnet: whether it reached the guest."""
    mac = run_in(guest.namespace, "cat", "/sys/class/net/eth0/address").stdout.strip()
    vni = {"roz1": 11001, "wro1": 12001, "krk1": 13001}[guest.vnet]
    with subprocess.Popen(
        ["ip", "netns", "exec", PREFIX + guest.namespace, *PROBE, "sniff", "eth0", marker, "--timeout", "4"]
    ) as sniffer:
        time.sleep(0.5)  # the sniffer's socket is open; then the frame
        run_in(sender, *PROBE, "vxlan", vtep, str(vni), mac, guest.ip, marker, "--source", sender_source)
        return sniffer.wait() == 0


def guest_on(lab, node_id):
    return next(g for g in lab.running_guests() if g.node == node_id)


def apply_firewall(lab, site):
    """evpn.firewall on the site's SDN leader; then every node of the site has loaded it."""
    leader = min(n for n in lab.built_nodes() if lab.plan.nodes()[n].site == site)
    ret = lab.master.salt(leader, "state.apply", "evpn.firewall")
    assert all(s["result"] for s in ret[leader].values()), ret
    return lab.wait_for_firewall([n for n in lab.built_nodes() if lab.plan.nodes()[n].site == site])


def set_site_firewall(lab, site, **settings):
    """Change the site's firewall keys in the lab's pillar copy and refresh its nodes' pillar."""
    for path in (lab.pillar_root / "evpn" / "sites").glob("*.sls"):
        document = yaml.safe_load(path.read_text())
        if site in document["evpn"]["sites"]:
            document["evpn"]["sites"][site].setdefault("firewall", {}).update(settings)
            path.write_text(yaml.safe_dump(document, sort_keys=False))
    lab.master.salt("*", "saltutil.refresh_pillar", "wait=True")


@pytest.fixture
def krk(lab):
    """The lab with krk, the rented server on a public address (added once, by make lab-add)."""
    if "pve-krk1" not in lab.built_nodes():
        added = evpnlab("add", "--site", "krk")
        assert added.returncode == 0, added.stdout + added.stderr
    return type(lab).load(evpnlab.state)


def test_each_node_loads_its_backend_with_the_firewall_on(lab):
    rounds = lab.wait_for_firewall(lab.built_nodes())
    backends = {node_id: (r["backend"], r["outcome"], r.get("failed")) for node_id, r in rounds.items()}
    assert backends == {
        "pve-roz1": ("nftables", "load", None),
        "pve-roz2": ("nftables", "load", None),
        "pve-wro1": ("iptables", "load", None),
        **({"pve-roz3": ("nftables", "load", None)} if "pve-roz3" in rounds else {}),
        **({"pve-krk1": ("nftables", "load", None)} if "pve-krk1" in rounds else {}),
    }
    roz1 = lab.lab.nodes["pve-roz1"]
    assert "table inet proxmox-firewall" in roz1.run("nft", "list", "tables").stdout
    assert "PVEFW-HOST-IN" in lab.lab.nodes["pve-wro1"].run("iptables-legacy-save").stdout


def test_what_the_federation_needs_passes(lab):
    roz1, roz2, wro1 = (guest_on(lab, n) for n in ("pve-roz1", "pve-roz2", "pve-wro1"))
    # Guest to guest across nodes and sites; the exit node's guest to the internet, SNATed.
    for source, target in ((roz1, roz2), (roz1, wro1), (wro1, roz2)):
        assert ping(source.namespace, target.ip), (source.ip, target.ip)
    seen = run_in(roz1.namespace, *ANSWER, "--ask", lab.plan.internet["www"]).stdout.strip()
    assert seen == lab.lab.routers["rtr-roz-0"].wan()
    # BGP and VXLAN between members over wg0.
    for node_id in lab.built_nodes():
        assert all(p["state"] == "Established" for p in bgp_peers(lab.lab.nodes[node_id]).values()), node_id
    assert tcp("pve-wro1", "10.1.0.1", 179, source="10.2.0.1")
    assert vxlan_delivered(lab, "pve-wro1", "10.2.0.1", "10.1.0.1", roz1, "member-vxlan")
    # The site LAN to SSH and the web UI of its nodes.
    for router, node_address in (
        ("rtr-roz-1", "192.168.2.11"),
        ("rtr-roz-1", "192.168.2.12"),
        ("rtr-wro-0", "192.168.1.11"),
    ):
        assert tcp(router, node_address, 22) and tcp(router, node_address, 8006), node_address


@pytest.mark.parametrize("node_id", ["pve-roz2", "pve-wro1"])
def test_wireguard_from_the_internet_through_the_forwarded_port(lab, node_id):
    """A peer at another site starts a new handshake with the node at its public endpoint (the
    site's address and the node's forwarded port): the routers forward it, the firewall lets it
    in, the handshake completes."""
    target = lab.lab.nodes[node_id]
    source_id = "pve-wro1" if node_id.startswith("pve-roz") else "pve-roz1"
    source, key = lab.lab.nodes[source_id], public_key(target)
    node = lab.plan.nodes()[node_id]
    endpoint = f"{lab.lab.routers[lab.plan.sites[node.site].routers[0].namespace].wan()}:{node.public_port}"
    peer = next(
        line.split("\t")
        for line in source.run("wg", "show", "wg0", "dump").stdout.splitlines()[1:]
        if line.startswith(key)
    )
    source.run("wg", "set", "wg0", "peer", key, "remove")
    source.run(
        "wg", "set", "wg0", "peer", key, "endpoint", endpoint, "allowed-ips", peer[3], "persistent-keepalive", peer[7]
    )
    assert source.run("ping", "-c3", "-W2", node.wireguard, check=False).returncode == 0
    handshakes = dict(
        line.split("\t") for line in source.run("wg", "show", "wg0", "latest-handshakes").stdout.splitlines()
    )
    assert time.time() - int(handshakes[key]) < 30


def test_what_the_firewall_blocks(lab):
    roz, wro = guest_on(lab, "pve-roz1"), guest_on(lab, "pve-wro1")
    # A guest reaches no hypervisor's SSH or web UI: not its gateway, not a node's LAN or
    # WireGuard address, here or at another site; its gateway answers pings only.
    hypervisors = ["10.1.1.1", "192.168.2.11", "10.1.0.1", "10.1.0.2", "10.2.0.1"]
    for guest in (roz, wro):
        gateway = guest.gateway
        assert ping(guest.namespace, gateway)
        for address in [gateway, *hypervisors]:
            for port in (22, 8006):
                assert not tcp(guest.namespace, address, port), (guest.ip, address, port)
    # What PVE decides (README, the firewall): the exit node SNATs its guest to its LAN address,
    # which PVE's own management set (the node's local network) admits on the other roz node.
    assert tcp(roz.namespace, "192.168.2.12", 22) and seen_by(lab, "pve-roz2", 22, "192.168.2.11")
    # Corosync: pve-firewall (wro) opens it to the cluster's ring addresses only; proxmox-firewall
    # (roz) accepts UDP 5405-5412 from any source in its base ruleset (default-in, before every
    # rule), which no cluster rule can close.
    assert not udp(wro.namespace, wro.gateway, 5405)
    assert udp(roz.namespace, roz.gateway, 5405)
    # BGP and VXLAN from an address that is not a member: the site's router routes to the node's
    # WireGuard address over the LAN, not over wg0.
    run_in("rtr-roz-1", "ip", "route", "replace", "10.1.0.1/32", "via", "192.168.2.11")
    try:
        assert not tcp("rtr-roz-1", "10.1.0.1", 179)
        assert not vxlan_delivered(lab, "rtr-roz-1", "192.168.2.1", "10.1.0.1", roz, "outsider-vxlan")
    finally:
        run_in("rtr-roz-1", "ip", "route", "del", "10.1.0.1/32")
    # A packet from the LAN that claims an SDN source address (rp_filter is off on the nodes).
    run_in("rtr-roz-1", "ip", "addr", "add", "10.1.1.250/32", "dev", "lan0")
    try:
        tcp("rtr-roz-1", "192.168.2.11", 8006, source="10.1.1.250")
        assert not seen_by(lab, "pve-roz1", 8006, "10.1.1.250")
        tcp("rtr-roz-1", "192.168.2.11", 22)  # from the LAN's own address: in (management)
        assert seen_by(lab, "pve-roz1", 22, "192.168.2.1")
    finally:
        run_in("rtr-roz-1", "ip", "addr", "del", "10.1.1.250/32", "dev", "lan0")


def test_a_node_on_a_public_address_is_closed_to_the_internet(krk):
    lab = krk
    assert tcp("master", "203.0.113.30", 22) and tcp("master", "203.0.113.30", 8006)  # management
    for port in (22, 8006):
        assert not tcp("www", "203.0.113.30", port)
    # PVE's own management set is the node's local network: here the "provider's" /24, where dns
    # lives (README, the firewall; test_the_users_own_policy_and_group_keep_working closes it).
    assert tcp("dns", "203.0.113.30", 22)
    run_in("www", "ip", "addr", "add", "10.1.1.251/32", "dev", "eth0")
    try:
        tcp("www", "203.0.113.30", 8006, source="10.1.1.251")
        assert not seen_by(lab, "pve-krk1", 8006, "10.1.1.251")
    finally:
        run_in("www", "ip", "addr", "del", "10.1.1.251/32", "dev", "eth0")
    krk_guest, roz_guest = guest_on(lab, "pve-krk1"), guest_on(lab, "pve-roz1")
    assert ping(krk_guest.namespace, roz_guest.ip)
    assert run_in(krk_guest.namespace, *ANSWER, "--ask", lab.plan.internet["www"]).stdout.strip() == "203.0.113.30"


def test_without_our_rules_the_overlay_stops(lab):
    """Negative control: our rules out of cluster.fw, the firewall still on: the overlay's own
    traffic is dropped (the compiled firewall is in the path); the next run puts them back."""
    roz, wro = guest_on(lab, "pve-roz1"), guest_on(lab, "pve-wro1")
    assert ping(roz.namespace, wro.ip)
    for site in ("roz", "wro"):
        leader = min(n for n in lab.built_nodes() if lab.plan.nodes()[n].site == site)
        rules = lab.master.salt(leader, "pvefw.rules", "cluster")[leader]["rules"]
        for pos in reversed([pos for pos, r in enumerate(rules) if str(r.get("comment", "")).startswith("evpn-")]):
            lab.master.salt(leader, "pvefw.delete_rule", "cluster", str(pos))
    try:
        lab.wait_for_firewall(lab.built_nodes())
        assert not ping(roz.namespace, wro.ip, tries=3)
    finally:
        for site in ("roz", "wro"):
            apply_firewall(lab, site)
    assert ping(roz.namespace, wro.ip)


def test_the_users_own_policy_and_group_keep_working(krk):
    """A user's policy_forward DROP, own security group and `local_network` alias on krk's
    cluster: our run keeps them, they act (www reaches the web UI through the user's group; the
    alias narrows PVE's management set from the node's /24 to the master), and the overlay still
    passes (our routed group accepts the SDN subnets)."""
    lab = krk
    node = lab.lab.nodes["pve-krk1"]
    for args in (
        ("set", "/cluster/firewall/options", "--policy_forward", "DROP"),
        ("create", "/cluster/firewall/aliases", "--name", "local_network", "--cidr", "203.0.113.5"),
        ("create", "/cluster/firewall/groups", "--group", "webui"),
        (
            "create",
            "/cluster/firewall/groups/webui",
            "--type",
            "in",
            "--action",
            "ACCEPT",
            "--proto",
            "tcp",
            "--dport",
            "8006",
            "--source",
            "198.51.100.80",
            "--enable",
            "1",
        ),
        ("create", "/cluster/firewall/rules", "--type", "group", "--action", "webui", "--enable", "1"),
    ):
        node.run("pvesh", *args, env=lab.environ(lab.plan.nodes()["pve-krk1"]))
    try:
        apply_firewall(lab, "krk")
        text = (lab.clusters / "krk" / "firewall" / "cluster.fw").read_text()
        assert "policy_forward: DROP" in text and "GROUP webui" in text and "[group webui]" in text
        assert "local_network 203.0.113.5" in text
        assert tcp("www", "203.0.113.30", 8006) and tcp("master", "203.0.113.30", 22)
        assert not tcp("dns", "203.0.113.30", 8006) and not tcp("dns", "203.0.113.30", 22)
        krk_guest, wro_guest = guest_on(lab, "pve-krk1"), guest_on(lab, "pve-wro1")
        assert ping(krk_guest.namespace, wro_guest.ip)
    finally:
        for args in (
            ("set", "/cluster/firewall/options", "--delete", "policy_forward"),
            ("delete", f"/cluster/firewall/rules/{_position(lab, 'pve-krk1', 'webui')}"),
            ("delete", "/cluster/firewall/aliases/local_network"),
        ):
            node.run("pvesh", *args, env=lab.environ(lab.plan.nodes()["pve-krk1"]))
        lab.wait_for_firewall(["pve-krk1"])


def _position(lab, node_id, group):
    rules = lab.master.salt(node_id, "pvefw.rules", "cluster")[node_id]["rules"]
    return next(pos for pos, r in enumerate(rules) if r.get("type") == "group" and r.get("action") == group)


def test_switching_the_firewall_on_keeps_an_open_management_session(lab):
    set_site_firewall(lab, "roz", enable=False)
    apply_firewall(lab, "roz")
    session = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            PREFIX + "rtr-roz-1",
            sys.executable,
            "-c",
            "import socket, sys\n"
            "s = socket.create_connection(('192.168.2.12', 22), timeout=10); f = s.makefile('rw')\n"
            "print(f.readline().strip(), flush=True)\n"
            "for line in sys.stdin:\n    f.write(line); f.flush(); print(f.readline().strip(), flush=True)\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert session.stdout.readline().strip() == "192.168.2.1"
        session.stdin.write("before\n")
        session.stdin.flush()
        assert session.stdout.readline().strip() == "before"
        set_site_firewall(lab, "roz", enable=True)
        rounds = apply_firewall(lab, "roz")
        assert rounds["pve-roz2"]["outcome"] == "load"
        session.stdin.write("after\n")
        session.stdin.flush()
        assert session.stdout.readline().strip() == "after", "the management session was cut"
    finally:
        session.kill()
        session.wait()
        set_site_firewall(lab, "roz", enable=True)
