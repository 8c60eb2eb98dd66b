"""
The emulator's firewall compilers (lab/pvesim/fwcompile): which backend and outcome a node gets,
what pve-firewall compiles for the host and how it updates what is loaded, and the per-version
behaviour of proxmox-firewall's generator. Loading the results into netfilter:
tests/functional/test_fwcompile_netfilter.py.
"""

import json

import pytest

from pvesim.fwcompile import compile_node, pve_firewall
from pvesim.fwcompile.system import data_text

FACTS = {
    "node_ip": "192.168.2.11",
    "routes4": [["0.0.0.0", "0.0.0.0"], ["192.168.2.0", "255.255.255.0"]],
    "host_ips": ["192.168.2.11"],
    "interface_cidrs": ["127.0.0.1/8", "192.168.2.11/24", "::1/128"],
}
CLUSTER = """[OPTIONS]

enable: 1

[IPSET evpn-wireguard]

10.1.0.1
10.2.0.1

[RULES]

GROUP evpn -i wg0
IN ACCEPT -p udp -dport 51820 -log info
FORWARD DROP -source +dc/evpn-wireguard

[group evpn]

IN ACCEPT -source +dc/evpn-wireguard -p tcp -dport 179
"""


@pytest.fixture
def cluster(tmp_path):
    """A cluster folder with node pve1: write(cluster.fw text, host.fw text)."""

    def write(cluster_fw=CLUSTER, host_fw=""):
        (tmp_path / "firewall").mkdir(exist_ok=True)
        (tmp_path / "nodes" / "pve1").mkdir(parents=True, exist_ok=True)
        (tmp_path / "firewall" / "cluster.fw").write_text(cluster_fw)
        (tmp_path / "nodes" / "pve1" / "host.fw").write_text(host_fw)
        return tmp_path

    return write


def _step(result, *argv):
    return next(step["stdin"] for step in result["load"] if step["argv"] == list(argv))


# --- backend and outcome ---------------------------------------------------------------------


@pytest.mark.parametrize("version", ["8.4", "9.1"])
def test_disabled_cluster_firewall_removes_both_daemons_rulesets(cluster, version):
    state = {"iptables": "*filter\n:PVEFW-INPUT - [0:0]\n-A INPUT -j PVEFW-INPUT\nCOMMIT\n", "ipset": ""}
    result = compile_node(cluster(CLUSTER.replace("enable: 1", "enable: 0")), "pve1", version, FACTS, state)
    assert (result["backend"], result["outcome"]) == (None, "disabled")
    assert _step(result, "iptables-legacy-restore", "-T", "filter", "-n") == (
        "*filter\n-D INPUT -j PVEFW-INPUT\n-F PVEFW-INPUT\n-X PVEFW-INPUT\nCOMMIT\n"
    )
    removal = json.loads(_step(result, "nft", "-j", "-f", "-"))["nftables"]
    assert {"delete": {"table": {"family": "inet", "name": "proxmox-firewall"}}} in removal
    assert {"delete": {"table": {"family": "bridge", "name": "proxmox-firewall-guests"}}} in removal


def test_no_cluster_fw_means_disabled(tmp_path):
    assert compile_node(tmp_path, "pve1", "9.1", FACTS)["outcome"] == "disabled"


def test_cluster_enable_timestamp_older_than_a_minute_is_off_for_pve_firewall(cluster):
    result = compile_node(cluster(CLUSTER.replace("enable: 1", "enable: 1700000000")), "pve1", "9.1", FACTS)
    assert result["outcome"] == "disabled"


def test_iptables_backend_unless_host_says_nftables(cluster):
    iptables = compile_node(cluster(host_fw="[OPTIONS]\n\nnftables: 0\n"), "pve1", "9.1", FACTS)
    nftables = compile_node(cluster(host_fw="[OPTIONS]\n\nnftables: 1\n"), "pve1", "9.1", FACTS)
    assert (iptables["backend"], nftables["backend"]) == ("iptables", "nftables")
    assert [s["argv"][0] for s in iptables["load"]] == [
        "nft",
        "sysctl",
        "ipset",
        "iptables-legacy-restore",
        "iptables-legacy-restore",
        "ip6tables-legacy-restore",
        "ip6tables-legacy-restore",
    ]
    assert [s["argv"] for s in nftables["load"][-2:]] == [["nft", "-f", "-"], ["nft", "-j", "-f", "-"]]


def test_nftables_yes_is_not_nftables_for_pve_firewall(cluster):
    """pve-firewall reads host options with 0|1 patterns only: ``nftables: yes`` is a bad line
    to it, so the node stays on iptables although proxmox-firewall would read it as true."""
    result = compile_node(cluster(host_fw="[OPTIONS]\n\nnftables: yes\n"), "pve1", "9.1", FACTS)
    assert result["backend"] == "iptables"
    assert "/etc/pve/nodes/pve1/host.fw (line 3): can't parse option 'nftables: yes'" in result["warnings"]


@pytest.mark.parametrize(
    ("state", "outcome"),
    [
        ({}, "refused-nothing"),
        ({"nft_chains": [{"family": "inet", "table": "proxmox-firewall", "name": "input"}]}, "refused-keep-previous"),
    ],
)
def test_refused_file_keeps_what_proxmox_firewall_loaded_before(cluster, state, outcome):
    nft = compile_node(cluster(CLUSTER + "\n[GROUP bad]\n", "[OPTIONS]\n\nnftables: 1\n"), "pve1", "9.1", FACTS, state)
    assert nft["outcome"] == outcome
    assert nft["message"] == 'error updating firewall rules: invalid section "[GROUP bad]"'
    assert all(step["argv"][0] != "nft" for step in nft["load"])  # pve-firewall still removes its own chains


@pytest.mark.parametrize(
    ("version", "rule", "message"),
    [
        ("9.1", "FORWARD ACCEPT -i wg0", "cannot define interfaces for forward direction"),
        ("8.4", "FORWARD ACCEPT -i wg0", "cannot define interfaces for forward direction"),
        ("9.1", "IN ACCEPT -source +dc/nosuch", "could not find ipset dc/nosuch"),
        ("9.1", "IN SSh(ACCEPT)", "cannot find macro SSh"),
        ("9.1", "GROUP nosuch", "cannot execute nftables commands"),
        ("8.4", "IN ACCEPT -source +dc/nosuch", "cannot execute nftables commands"),
    ],
)
def test_generation_errors_load_only_the_base_ruleset(cluster, version, rule, message):
    """Before 1.2.3 one rule that fails to generate aborts the update after the skeleton is
    loaded; a batch nft refuses (a jump to a chain or a lookup in a set nobody defines) ends
    the same way."""
    root = cluster(CLUSTER.replace("[RULES]\n", f"[RULES]\n\n{rule}\n"), "[OPTIONS]\n\nnftables: 1\n")
    result = compile_node(root, "pve1", version, FACTS)
    assert (result["outcome"], result["message"]) == ("refused-skeleton", f"error updating firewall rules: {message}")
    assert result["load"][-1]["argv"] == ["nft", "-f", "-"]


def test_missing_group_is_an_empty_chain_for_pve_firewall(cluster):
    result = compile_node(cluster(CLUSTER.replace("[RULES]\n", "[RULES]\n\nGROUP nosuch\n")), "pve1", "9.1", FACTS)
    rules = _step(result, "iptables-legacy-restore", "-T", "filter", "-n")
    assert "-A PVEFW-HOST-IN  -j GROUP-nosuch-IN" not in rules
    assert "-A PVEFW-HOST-IN -j GROUP-nosuch-IN\n" in rules
    assert "-A GROUP-nosuch-IN -j MARK --set-mark 0x00000000/0x80000000\n-A GROUP-nosuch-IN -m comment" in rules
    assert "no such security group 'nosuch'" in result["warnings"]


def test_perl_errors_on_one_option_fail_the_whole_pve_firewall_update(cluster):
    """log_ratelimit is checked against its format when cluster.fw is loaded: a bad one makes
    pve-firewall's update die, and nothing it loaded changes."""
    result = compile_node(cluster(CLUSTER.replace("enable: 1", "enable: 1\nlog_ratelimit: rate=fast")), "pve1", "9.1")
    assert (result["backend"], result["outcome"], result["load"]) == ("iptables", "refused-nothing", [])
    assert result["message"] == "pve-firewall: format error\nrate: value does not match the regex pattern"


# --- pve-firewall ----------------------------------------------------------------------------


def test_forward_rules_do_not_reach_iptables(cluster):
    result = compile_node(cluster(), "pve1", "9.1", FACTS)
    assert "+dc/evpn" not in json.dumps(result["load"])
    assert "PVEFW-0-evpn-wireguard-v4 src -j DROP" not in _step(result, "iptables-legacy-restore", "-T", "filter", "-n")


def test_host_rules_come_before_cluster_rules_and_groups_use_the_accept_mark(cluster):
    host = "[RULES]\n\nIN DROP -p udp -dport 51820\n"
    result = compile_node(cluster(host_fw=host), "pve1", "9.1", FACTS)
    rules = _step(result, "iptables-legacy-restore", "-T", "filter", "-n").splitlines()
    host_in = [line for line in rules if line.startswith("-A PVEFW-HOST-IN")]
    assert host_in[4:10] == [
        "-A PVEFW-HOST-IN -p igmp -j RETURN",
        "-A PVEFW-HOST-IN -p udp --dport 51820 -j DROP",
        "-A PVEFW-HOST-IN -i wg0 -j GROUP-evpn-IN",
        "-A PVEFW-HOST-IN -m mark --mark 0x80000000/0x80000000 -j RETURN",
        "-A PVEFW-HOST-IN -p udp --dport 51820 -m limit --limit 1/sec -j NFLOG"
        ' --nflog-prefix ":0:6:PVEFW-HOST-IN: ACCEPT: "',
        "-A PVEFW-HOST-IN -p udp --dport 51820 -j RETURN",
    ]
    assert (
        "-A GROUP-evpn-IN -m set --match-set PVEFW-0-evpn-wireguard-v4 src -p tcp --dport 179 -g PVEFW-SET-ACCEPT-MARK"
        in rules
    )
    assert "-A PVEFW-HOST-IN -m set --match-set PVEFW-0-management-v4 src -p tcp --dport 8006 -j RETURN" in rules


def test_ipv6_log_prefix_carries_the_substituted_action(cluster):
    """The rule objects are shared between the IPv4 and IPv6 compile and the action is replaced
    in place: in the IPv6 ruleset the log prefix of an ACCEPT rule says RETURN."""
    result = compile_node(cluster(), "pve1", "9.1", FACTS)
    v6 = _step(result, "ip6tables-legacy-restore", "-T", "filter", "-n")
    assert '--nflog-prefix ":0:6:PVEFW-HOST-IN: RETURN: "' in v6
    assert '--nflog-prefix ":0:6:PVEFW-HOST-IN: ACCEPT: "' in _step(
        result, "iptables-legacy-restore", "-T", "filter", "-n"
    )


def test_management_set_is_the_local_network_plus_the_management_ipset(cluster):
    text = CLUSTER.replace("[RULES]", "[IPSET management]\n\n203.0.113.7\n\n[RULES]")
    result = compile_node(cluster(text), "pve1", "9.1", FACTS)
    ipsets = _step(result, "ipset", "restore")
    assert "add PVEFW-0-management-v4 192.168.2.0/24\nadd PVEFW-0-management-v4 203.0.113.7\n" in ipsets
    assert "create PVEFW-0-evpn-wireguard-v6 hash:net family inet6 hashsize 64 maxelem 64 bucketsize 12\n" in ipsets


def test_local_network_falls_back_to_loopback_without_a_node_address(cluster):
    result = compile_node(cluster(), "pve1", "9.1", {})
    assert "add PVEFW-0-management-v4 127.0.0.0/8\n" in _step(result, "ipset", "restore")


def test_bad_lines_are_dropped_with_pve_firewall_messages(cluster):
    text = CLUSTER.replace("[RULES]\n", "[RULES]\n\nIN ACCEPT -dport 80\nin accept -p tcp\n")
    result = compile_node(cluster(text), "pve1", "9.1", FACTS)
    assert result["warnings"][:4] == [
        "/etc/pve/firewall/cluster.fw (line 12) - errors in rule parameters: IN ACCEPT -dport 80",
        "  proto: missing property - 'dport' requires this property",
        "  dport: protocol '' does not support ports",
        "/etc/pve/firewall/cluster.fw (line 13) - errors in rule parameters: in accept -p tcp",
    ]
    assert "--dport 80 " not in _step(result, "iptables-legacy-restore", "-T", "filter", "-n")


def test_group_header_in_capitals_is_a_group_for_pve_firewall(cluster):
    text = CLUSTER.replace("[group evpn]", "[GROUP EVPN]")
    result = compile_node(cluster(text), "pve1", "9.1", FACTS)
    assert "-A GROUP-evpn-IN -m set" in _step(result, "iptables-legacy-restore", "-T", "filter", "-n")


def test_long_ipset_names_are_hashed_as_pve_firewall_does():
    # FNV-1a (32 bit) of "a" is 0xe40c292c; pve-firewall keeps 31 bits
    assert pve_firewall.fnv31a_hex("a") == "640C292C"
    assert pve_firewall.compute_ipset_chain_name(0, "salt-mgmt-hosts", 4) == "PVEFW-0-salt-mgmt-hosts-v4"
    long_name = pve_firewall.compute_ipset_chain_name(0, "salt-managed-hosts", 4)
    assert long_name == "PVEFW-" + pve_firewall.fnv31a_hex("0-salt-managed-hosts-v4")


def test_second_update_rewrites_only_what_changed():
    ruleset = {"PVEFW-INPUT": ["-A PVEFW-INPUT -j PVEFW-HOST-IN"], "PVEFW-HOST-IN": ["-A PVEFW-HOST-IN -j DROP"]}
    sig = pve_firewall.b64digest(ruleset["PVEFW-INPUT"])
    save = (
        "*filter\n:INPUT ACCEPT [0:0]\n:PVEFW-INPUT - [0:0]\n:PVEFW-HOST-IN - [0:0]\n:PVEFW-blacklist - [0:0]\n"
        "-A INPUT -j PVEFW-INPUT\n-A PVEFW-INPUT -j PVEFW-HOST-IN\n"
        f'-A PVEFW-INPUT -m comment --comment "PVESIG:{sig}"\n'
        '-A PVEFW-HOST-IN -m comment --comment "PVESIG:stale"\nCOMMIT\n'
    )
    new_sig = pve_firewall.b64digest(ruleset["PVEFW-HOST-IN"])
    assert pve_firewall.ruleset_cmdlist(ruleset, save, "filter") == (
        "*filter\n-F PVEFW-HOST-IN\n-A PVEFW-HOST-IN -j DROP\n"
        f'-A PVEFW-HOST-IN -m comment --comment "PVESIG:{new_sig}"\n'
        "-F PVEFW-blacklist\n-X PVEFW-blacklist\nCOMMIT\n"
    )


def test_changed_ipset_is_swapped_and_unused_ones_destroyed():
    ipsets = {"PVEFW-0-a-v4": ["create PVEFW-0-a-v4 hash:net family inet hashsize 64 maxelem 64 bucketsize 12"]}
    save = (
        "create PVEFW-0-a-v4 hash:net family inet hashsize 64 maxelem 64 bucketsize 12 initval 0x1234abcd\n"
        "add PVEFW-0-a-v4 10.0.0.1\ncreate PVEFW-0-old-v4 hash:net family inet hashsize 64 maxelem 64\n"
    )
    create, delete = pve_firewall.ipset_cmdlist(ipsets, save)
    assert create == (
        "create PVEFW-0-a-v4_swap hash:net family inet hashsize 64 maxelem 64 bucketsize 12\n"
        "swap PVEFW-0-a-v4_swap PVEFW-0-a-v4\nflush PVEFW-0-a-v4_swap\ndestroy PVEFW-0-a-v4_swap\n"
    )
    assert delete == "flush PVEFW-0-old-v4\ndestroy PVEFW-0-old-v4\n"
    unchanged = "create PVEFW-0-a-v4 hash:net family inet hashsize 64 maxelem 64 bucketsize 12 initval 0x1\n"
    assert pve_firewall.ipset_cmdlist(ipsets, unchanged) == ("", "")


def test_corosync_peers_on_the_same_ring_only(cluster, tmp_path):
    root = cluster()
    (root / "corosync.conf").write_text(
        "nodelist {\n  node {\n    name: pve1\n    ring0_addr: 10.0.0.1\n    ring1_addr: pve1-r1\n  }\n"
        "  node {\n    name: pve2\n    ring0_addr: 10.0.0.2\n  }\n}\ntotem {\n  ip_version: ipv4\n}\n"
    )
    result = compile_node(root, "pve1", "9.1", dict(FACTS, hosts={"pve1-r1": ["10.5.0.1"]}))
    rules = _step(result, "iptables-legacy-restore", "-T", "filter", "-n")
    assert "-A PVEFW-HOST-IN -d 10.0.0.1 -s 10.0.0.2 -p udp --dport 5404:5405 -j RETURN" in rules
    assert "-A PVEFW-HOST-OUT -s 10.0.0.1 -d 10.0.0.2 -p udp --dport 5404:5405 -j RETURN" in rules
    assert "10.5.0.1" not in rules
    assert "MULTICAST -p udp" not in rules  # no multicast rule without ``transport: udp``


def test_altnames_are_mapped_from_pve_firewall_6_0_2(cluster):
    root = cluster(CLUSTER.replace("-i wg0", "-i wireguard"))
    facts = dict(FACTS, altnames={"wireguard": "wg0"})
    assert "-i wg0 -j GROUP-evpn-IN" in _step(
        compile_node(root, "pve1", "9.1", facts), "iptables-legacy-restore", "-T", "filter", "-n"
    )
    assert "-i wireguard -j GROUP-evpn-IN" in _step(
        compile_node(root, "pve1", "8.4", facts), "iptables-legacy-restore", "-T", "filter", "-n"
    )


# --- proxmox-firewall ------------------------------------------------------------------------


def _rules(batch, chain):
    return [
        c["add"]["rule"]["expr"] for c in batch if "rule" in c.get("add", {}) and c["add"]["rule"]["chain"] == chain
    ]


@pytest.fixture
def nft_cluster(cluster):
    def write(cluster_fw=CLUSTER, host_fw="[OPTIONS]\n\nnftables: 1\n"):
        return cluster(cluster_fw, host_fw)

    return write


def _batch(root, version, facts=FACTS):
    result = compile_node(root, "pve1", version, facts)
    assert result["outcome"] == "load", result["message"]
    return json.loads(_step(result, "nft", "-j", "-f", "-"))["nftables"]


def test_forward_rules_and_groups_with_an_interface(nft_cluster):
    """A GROUP with -i is left out of the forward chain (0.7.0 and later); FORWARD rules go to
    cluster-forward, ahead of the policy."""
    for version in ("8.4", "9.1"):
        batch = _batch(nft_cluster(), version)
        forward = _rules(batch, "cluster-forward")
        assert {"jump": {"target": "group-evpn-forward"}} not in [e[-1] for e in forward]
        assert forward[-1] == [{"accept": None}]
        assert forward[0][-1] == {"drop": None}
        assert _rules(batch, "cluster-in")[0] == [
            {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "wg0"}},
            {"jump": {"target": "group-evpn-in"}},
        ]


def test_management_set_per_version(nft_cluster):
    """0.7.1 builds the management set from the node's own networks and ignores local_network;
    1.2.0 merges [IPSET management] and local_network as pve-firewall does."""
    text = CLUSTER.replace(
        "[IPSET", "[ALIASES]\n\nlocal_network 10.77.0.0/16\n\n[IPSET management]\n\n10.66.0.1\n\n[IPSET"
    )
    root = nft_cluster(text)

    def elements(batch):
        return [
            c["add"]["element"]["elem"]
            for c in batch
            if "element" in c.get("add", {}) and c["add"]["element"]["name"] == "v4-dc/management"
        ]

    assert elements(_batch(root, "9.1")) == [
        [{"prefix": {"addr": "10.66.0.1", "len": 32}}, {"prefix": {"addr": "10.77.0.0", "len": 16}}]
    ]
    assert elements(_batch(root, "8.4")) == [[{"prefix": {"addr": "10.66.0.1", "len": 32}}]]
    assert elements(_batch(nft_cluster(), "8.4")) == [[{"prefix": {"addr": "192.168.2.11", "len": 24}}]]


def test_icmp_type_and_code_per_version(nft_cluster):
    root = nft_cluster(CLUSTER.replace("[RULES]\n", "[RULES]\n\nIN ACCEPT -p icmp -icmp-type host-unreachable\n"))
    new, old = _rules(_batch(root, "9.1"), "cluster-in"), _rules(_batch(root, "8.4"), "cluster-in")
    assert new[0][:2] == [
        {"match": {"op": "==", "left": {"payload": {"protocol": "icmp", "field": "type"}}, "right": 3}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "icmp", "field": "code"}}, "right": 1}},
    ]
    assert old[0][0] == {
        "match": {"op": "==", "left": {"payload": {"protocol": "icmp", "field": "code"}}, "right": "host-unreachable"}
    }


def test_ports_without_protocol_are_dropped_by_proxmox_firewall(nft_cluster):
    root = nft_cluster(CLUSTER.replace("[RULES]\n", "[RULES]\n\nIN ACCEPT -dport 80\n"))
    assert _rules(_batch(root, "9.1"), "cluster-in")[0] == [{"accept": None}]


def test_sets_have_auto_merge_from_1_2_0(nft_cluster):
    def flags(batch):
        return {json.dumps(c["add"]["set"], sort_keys=True) for c in batch if "set" in c.get("add", {})}

    assert all('"auto-merge": true' in s for s in flags(_batch(nft_cluster(), "9.1")))
    assert not any("auto-merge" in s for s in flags(_batch(nft_cluster(), "8.4")))


def test_bridge_table_left_out_where_the_kernel_refuses_it(nft_cluster):
    result = compile_node(nft_cluster(), "pve1", "9.1", dict(FACTS, nft_bridge=False, nft_bridge_error="no reject"))
    skeleton = _step(result, "nft", "-f", "-")
    batch = json.loads(_step(result, "nft", "-j", "-f", "-"))["nftables"]
    assert "table bridge" not in skeleton and "chain bridge" not in skeleton
    assert "table inet proxmox-firewall {" in skeleton
    assert skeleton.count("add chain inet") == data_text("proxmox-firewall-1.2.2.nft").count("add chain inet")
    assert not [c for c in batch if '"family": "bridge"' in json.dumps(c)]
    assert {"flush": {"map": {"family": "inet", "table": "proxmox-firewall", "name": "bridge-map"}}} in batch
    assert result["adaptations"] and "no reject" in result["adaptations"][0]


@pytest.mark.parametrize("nftables", [0, 1])
def test_host_firewall_off_keeps_only_the_cluster_wide_parts(cluster, nftables):
    result = compile_node(cluster(host_fw=f"[OPTIONS]\n\nenable: 0\nnftables: {nftables}\n"), "pve1", "9.1", FACTS)
    assert result["outcome"] == "load"
    if nftables:
        batch = json.loads(_step(result, "nft", "-j", "-f", "-"))["nftables"]
        assert {"delete": {"table": {"family": "inet", "name": "proxmox-firewall"}}} in batch
        assert not _rules(batch, "cluster-in")
    else:
        rules = _step(result, "iptables-legacy-restore", "-T", "filter", "-n")
        assert "PVEFW-HOST-IN" not in rules and "-A PVEFW-FORWARD -m conntrack" in rules


@pytest.mark.parametrize("version", ["8.4", "9.1"])
@pytest.mark.parametrize("nftables", [0, 1])
def test_sdn_sets_from_the_emulators_own_running_config(tmp_path, version, nftables):
    """What pvesim's SDN apply writes is read by both compilers: +sdn/<vnet>-... sets."""
    from pvesim.api import Api

    api = Api(tmp_path, "pve1", version)
    api.call(
        "POST",
        "/cluster/sdn/controllers",
        {"controller": "evpnctl", "type": "evpn", "asn": "65000", "peers": "10.0.0.1"},
    )
    api.call(
        "POST", "/cluster/sdn/zones", {"zone": "evpn", "type": "evpn", "controller": "evpnctl", "vrf-vxlan": "10000"}
    )
    api.call("POST", "/cluster/sdn/vnets", {"vnet": "roz1", "zone": "evpn", "tag": "11001"})
    api.call(
        "POST", "/cluster/sdn/vnets/roz1/subnets", {"subnet": "10.1.1.0/24", "type": "subnet", "gateway": "10.1.1.1"}
    )
    api.call("PUT", "/cluster/sdn")
    # written as a file: pvesim's rule API knows no +sdn/ sets (PVE has them since 8.3)
    (tmp_path / "firewall").mkdir()
    (tmp_path / "firewall" / "cluster.fw").write_text(
        "[OPTIONS]\n\nenable: 1\n\n[RULES]\n\nIN ACCEPT -source +sdn/roz1-all\n"
    )
    (tmp_path / "nodes" / "pve1" / "host.fw").write_text(f"[OPTIONS]\n\nnftables: {nftables}\n")
    result = compile_node(tmp_path, "pve1", version, FACTS)
    assert (result["outcome"], result["message"]) == ("load", None)
    if nftables:
        batch = json.loads(_step(result, "nft", "-j", "-f", "-"))["nftables"]
        gateway = {"prefix": {"addr": "10.1.1.1", "len": 32}}
        assert {
            "add": {
                "element": {
                    "family": "inet",
                    "table": "proxmox-firewall",
                    "name": "v4-sdn/roz1-no-gateway-nomatch",
                    "elem": [gateway],
                }
            }
        } in batch
        assert _rules(batch, "cluster-in")[0][0]["match"]["right"] == "@v4-sdn/roz1-all"
    else:
        assert "add PVEFW-0-roz1-no-gateway-v4 10.1.1.1 nomatch\n" in _step(result, "ipset", "restore")
        assert "-m set --match-set PVEFW-0-roz1-all-v4 src -j RETURN" in _step(
            result, "iptables-legacy-restore", "-T", "filter", "-n"
        )
