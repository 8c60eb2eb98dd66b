"""
What the emulator's firewall compilers produce, loaded into real netfilter (iptables-legacy,
ipset, nft) in network namespaces made here, and probed with real packets:

- pve-firewall's own regression tests (tests/data/pve-firewall-6.0.4, one packet and its
  expected verdict per line) for every line whose packet stays on the host side;
- proxmox-firewall's base ruleset and batch, loaded and loaded again as its daemon does;
- switching backends and disabling, and the refusals the compiler predicts, checked against nft.
"""

import concurrent.futures
import json
import re
import shutil
import sys

import pytest

from pvesim.fwcompile import RELEASES, compile_node, proxmox_firewall
from pvesim.fwcompile.system import data_text
from support.federation import REPO
from support.netfilter import BridgedNode, Namespaces, load

REGRESSION = REPO / "tests" / "data" / "pve-firewall-6.0.4"
COMPILE = REPO / "lab" / "bin" / "pve-firewall-compile"
ZONES = ["host", "outside", "nfvm", "vm100", "ct200"]  # fwtester.pl's zones for a missing from/to


@pytest.fixture(autouse=True)
def _needs_root_and_tools(lab_host):
    """These tests make namespaces and load netfilter rules: root and the lab's packages."""


def regression_lines(directory):
    """The packets of a ``tests`` file, with fwtester.pl's expansion of a missing zone."""
    for raw in (directory / "tests").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        test = {
            key: text if number == "" else int(number)
            for key, text, number in re.findall(r"(\w+)\s*=>\s*(?:'([^']*)'|(\d+))", line)
        }
        source, dest = test.get("from"), test.get("to")
        if dest is None:
            pairs = [(source, zone) for zone in ZONES if zone != source]
        elif source is None:
            pairs = [(zone, dest) for zone in ZONES if zone != dest]
        else:
            pairs = [(source, dest)]
        for pair in pairs:
            yield line, dict(test, **{"from": pair[0], "to": pair[1]})


def _regression_directory(directory, version, root):
    """Compile one test directory as fwtester.pl does (host 172.16.1.2, local network
    172.16.1.0/24, its corosync.conf), load it into a node and probe every line that the host
    side can carry. Returns (lines run, failures, lines no real packet can be, guest lines)."""
    (root / "firewall").mkdir(parents=True)
    (root / "nodes" / "proxself").mkdir(parents=True)
    shutil.copy(directory / "cluster.fw", root / "firewall" / "cluster.fw")
    if (directory / "host.fw").exists():
        shutil.copy(directory / "host.fw", root / "nodes" / "proxself" / "host.fw")
    shutil.copy(REGRESSION / "corosync.conf", root / "corosync.conf")
    facts = {"node_ip": "172.16.1.2", "routes4": [["172.16.1.0", "255.255.255.0"]], "hosts": {}}
    result = compile_node(root, "proxself", version, facts)
    assert (result["backend"], result["outcome"]) == ("iptables", "load")
    run, failures, impossible, guests = 0, [], 0, 0
    with Namespaces() as namespaces:
        node = BridgedNode(namespaces)
        load(namespaces, node.host, result["load"])
        for line, test in regression_lines(directory):
            source_zone, dest_zone = ("outside" if z == "vmbr0/eth0" else z for z in (test["from"], test["to"]))
            if source_zone not in node.zones or dest_zone not in node.zones:
                guests += 1
                continue
            source = test.get("source") or (node.HOST_IP if source_zone == "host" else "100.100.1.2")
            dest = test.get("dest") or (node.HOST_IP if dest_zone == "host" else "100.200.3.4")
            # the simulator accepts packets no kernel sends: a multicast address as a unicast
            # destination, or 127.0.0.1 as the source of a packet that leaves the host
            if (test.get("dsttype") == "UNICAST" and dest.startswith("239.")) or source.startswith("127."):
                impossible += 1
                continue
            verdict = node.probe(source_zone, source, dest_zone, dest, test.get("proto", "tcp"), test.get("dport", 0))
            run += 1
            if verdict != test["action"]:
                failures.append(f"{directory.name}: {line} ({source_zone} -> {dest_zone}): got {verdict}")
    return run, failures, impossible, guests


@pytest.mark.parametrize("version", ["8.4", "9.1"])
def test_pve_firewall_regression_tests_in_real_netfilter(version, tmp_path):
    """Every line of pve-firewall's regression tests whose packet goes between the host, the
    outside (a port of vmbr0) and an unfirewalled guest port gives the verdict the test
    expects. Of the 244 packets (after fwtester.pl expands a missing zone) 67 are run; 173
    involve a firewalled guest (the emulator has no guest firewall) and 4 cannot exist as real
    packets."""
    directories = sorted(p for p in REGRESSION.iterdir() if p.is_dir())
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda d: _regression_directory(d, version, tmp_path / d.name), directories))
    failures = [failure for result in results for failure in result[1]]
    counts = [sum(result[i] for result in results) for i in (0, 2, 3)]
    print(f"PVE {version}: {counts[0]} packets run, {len(failures)} failed, {counts[1]} impossible, {counts[2]} guest")
    assert failures == []
    assert counts == [67, 4, 173]


# --- proxmox-firewall in a node -------------------------------------------------------------------

CLUSTER = """[OPTIONS]

enable: 1

[ALIASES]

local_network 172.16.1.0/24

[IPSET wg]

198.51.100.0/24

[RULES]

GROUP web -i vmbr0
IN ACCEPT -source +dc/wg -p udp -dport 51820

[group web]

IN ACCEPT -source 100.100.1.0/24 -p tcp -dport 8080
"""


class Node:
    """A bridged node whose cluster folder is ``root``; compiles with the command, inside the
    namespace (its facts and its netfilter state read there), and loads the result."""

    def __init__(self, namespaces, root, version):
        self.ns, self.root, self.version = namespaces, root, version
        self.bridge = BridgedNode(namespaces)
        self.write(CLUSTER, "[OPTIONS]\n\nnftables: 1\n")

    def write(self, cluster_fw, host_fw):
        (self.root / "firewall").mkdir(parents=True, exist_ok=True)
        (self.root / "nodes" / "pve1").mkdir(parents=True, exist_ok=True)
        (self.root / "firewall" / "cluster.fw").write_text(cluster_fw)
        (self.root / "nodes" / "pve1" / "host.fw").write_text(host_fw)

    def command(self, *args):
        env = ["env", f"PVESIM_ROOT={self.root}", "PVESIM_NODE=pve1", f"PVESIM_VERSION={self.version}"]
        return self.ns.run(self.bridge.host, *env, sys.executable, str(COMPILE), *args)

    def compile(self):
        gathered = json.loads(self.command("--print-facts").stdout)
        facts = dict(gathered["facts"], host_ips=["172.16.1.2"], node_ip="172.16.1.2")
        facts_file = self.root / "facts.json"
        facts_file.write_text(json.dumps(facts))
        return json.loads(self.command("--facts", str(facts_file)).stdout)

    def apply(self):
        result = self.compile()
        load(self.ns, self.bridge.host, result["load"])
        return result

    def nft(self, *args):
        return self.ns.run(self.bridge.host, "nft", *args, check=False)

    def verdict(self, source, dport, proto="tcp"):
        return self.bridge.probe("outside", source, "host", self.bridge.HOST_IP, proto, dport)


@pytest.fixture
def namespaces():
    with Namespaces() as made:
        yield made


@pytest.mark.parametrize("version", ["8.4", "9.1"])
def test_proxmox_firewall_loads_and_reloads_cleanly(namespaces, tmp_path, version):
    node = Node(namespaces, tmp_path, version)
    first = node.apply()
    assert (first["backend"], first["outcome"]) == ("nftables", "load")
    listing = node.nft("list", "chain", "inet", "proxmox-firewall", "cluster-in").stdout
    second = node.apply()  # reads what is loaded: deletes and recreates the group chains
    delete = json.loads(second["load"][-1]["stdin"])["nftables"]
    assert {"delete": {"chain": {"family": "inet", "table": "proxmox-firewall", "name": "group-web-in"}}} in delete
    assert node.nft("list", "chain", "inet", "proxmox-firewall", "cluster-in").stdout == listing
    assert node.verdict("172.16.1.200", 22) == "ACCEPT"  # management network, before any rule
    assert node.verdict("100.100.1.2", 22) == "DROP"  # policy_in
    assert node.verdict("100.100.1.2", 8080) == "ACCEPT"  # the group, on vmbr0
    assert node.verdict("100.100.2.2", 8080) == "DROP"
    assert node.verdict("198.51.100.7", 51820, "udp") == "ACCEPT"
    assert node.verdict("203.0.113.7", 51820, "udp") == "DROP"


def test_switching_backends_and_disabling_leave_nothing_behind(namespaces, tmp_path):
    node = Node(namespaces, tmp_path, "9.1")
    node.apply()
    node.write(CLUSTER, "[OPTIONS]\n\nnftables: 0\n")
    assert node.apply()["backend"] == "iptables"
    assert node.nft("list", "tables").stdout == ""
    chains = namespaces.run(node.bridge.host, "iptables-legacy-save").stdout
    assert "-A INPUT -j PVEFW-INPUT" in chains and ":GROUP-web-IN" in chains
    assert node.verdict("100.100.1.2", 8080) == "ACCEPT" and node.verdict("100.100.1.2", 22) == "DROP"
    again = node.compile()
    assert all(s["stdin"] in ("", "*filter\nCOMMIT\n", "*raw\nCOMMIT\n") for s in again["load"][1:])
    node.write(CLUSTER, "[OPTIONS]\n\nnftables: 1\n")
    node.apply()
    assert "PVEFW" not in namespaces.run(node.bridge.host, "iptables-legacy-save").stdout
    assert namespaces.run(node.bridge.host, "ipset", "list", "-n").stdout == ""
    assert "table inet proxmox-firewall" in node.nft("list", "tables").stdout
    node.write(CLUSTER.replace("enable: 1", "enable: 0"), "[OPTIONS]\n\nnftables: 1\n")
    assert node.apply()["outcome"] == "disabled"
    assert node.nft("list", "tables").stdout == ""
    assert node.verdict("100.100.1.2", 22) == "ACCEPT"


@pytest.mark.parametrize(
    ("version", "rule", "refused"),
    [
        ("9.1", "GROUP nosuch", "chain group-nosuch-in"),
        ("8.4", "IN ACCEPT -source +dc/nosuch", "set v4-dc/nosuch"),
    ],
)
def test_predicted_refusals_are_what_nft_refuses(namespaces, tmp_path, version, rule, refused):
    """The compiler reports these batches as refused; loaded anyway after the base ruleset,
    nft refuses them too, so the daemon's update fails where the emulator says it does."""
    node = Node(namespaces, tmp_path, version)
    node.write(CLUSTER.replace("[RULES]\n", f"[RULES]\n\n{rule}\n"), "[OPTIONS]\n\nnftables: 1\n")
    result = node.apply()
    assert result["outcome"] == "refused-skeleton"
    assert any(w.startswith(f"nft refuses the batch: {refused}") for w in result["warnings"]), result["warnings"]
    parser = proxmox_firewall.ConfigParser(RELEASES[version]["proxmox-ve-config"])
    cluster = parser.config((tmp_path / "firewall" / "cluster.fw").read_text(), "cluster")
    host = parser.config((tmp_path / "nodes" / "pve1" / "host.fw").read_text(), "host")
    facts = {"host_ips": ["172.16.1.2"], "interface_cidrs": ["172.16.1.2/24"]}
    batch = proxmox_firewall.Generator(RELEASES[version], cluster, host, facts, {}, None, None).full_host_fw()
    if result["adaptations"]:
        _, batch = proxmox_firewall.without_bridge_table(data_text("proxmox-firewall-1.2.2.nft"), batch)
    attempt = namespaces.run(node.bridge.host, "nft", "-j", "-f", "-", stdin=json.dumps(batch), check=False)
    assert attempt.returncode != 0, attempt.stdout
    assert "No such file or directory" in attempt.stderr


def test_base_ruleset_alone_lets_through_what_default_in_does_not_drop(namespaces, tmp_path):
    """On a node that had no proxmox-firewall tables, a generation error leaves the base
    ruleset alone: its input chain's policy is accept and cluster-in is empty, so everything
    default-in does not drop gets in."""
    node = Node(namespaces, tmp_path, "9.1")
    node.write(CLUSTER.replace("[RULES]\n", "[RULES]\n\nFORWARD ACCEPT -i vmbr0\n"), "[OPTIONS]\n\nnftables: 1\n")
    assert node.apply()["outcome"] == "refused-skeleton"
    assert "policy accept" in node.nft("list", "chain", "inet", "proxmox-firewall", "input").stdout
    assert node.verdict("100.100.2.2", 8080) == "ACCEPT"
    assert node.verdict("100.100.2.2", 445) == "REJECT"  # default-in's SMB noise rule


def test_bridge_support_is_probed_without_changing_the_node(namespaces):
    node = namespaces.add("probe")
    before = namespaces.run(node, "nft", "list", "ruleset").stdout
    env = ["env", "PVESIM_ROOT=/nonexistent", "PVESIM_NODE=probe"]
    gathered = namespaces.run(node, *env, sys.executable, str(COMPILE), "--print-facts")
    facts = json.loads(gathered.stdout)["facts"]
    assert isinstance(facts["nft_bridge"], bool)
    assert namespaces.run(node, "nft", "list", "ruleset").stdout == before
    works = namespaces.run(node, "nft", "-c", "-f", "-", stdin=data_text("proxmox-firewall-1.2.2.nft"), check=False)
    assert facts["nft_bridge"] == (works.returncode == 0)


@pytest.mark.parametrize(
    ("version", "snapshot"), [("8.4", "proxmox-firewall-0.7.1"), ("9.1", "proxmox-firewall-1.2.2")]
)
def test_upstream_test_inputs_load_into_nft(namespaces, tmp_path, version, snapshot):
    """The batch compiled from proxmox-firewall's own test inputs (conntrack helpers, synflood
    protection, SDN and IPAM sets with ranges, macros, logging) loads, twice."""
    node = Node(namespaces, tmp_path, version)
    inputs = REPO / "tests" / "data" / snapshot / "input"
    for source, target in (
        ("cluster.fw", "firewall/cluster.fw"),
        ("host.fw", "nodes/pve1/host.fw"),
        (".running-config.json", "sdn/.running-config"),
        ("ipam.db", "priv/ipam.db"),
    ):
        (tmp_path / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(inputs / source, tmp_path / target)
    for _ in range(2):
        result = node.apply()
        assert (result["outcome"], result["message"]) == ("load", None)
    helpers = node.nft("list", "chain", "inet", "proxmox-firewall", "ct-in").stdout
    assert 'tcp dport 21 ct helper set "helper-ftp-tcp"' in helpers
    elements = node.nft("list", "set", "inet", "proxmox-firewall", "v4-sdn/public-dhcp").stdout
    assert "10.101.99.100-10.101.99.200" in elements
