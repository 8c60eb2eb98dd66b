"""
The firewall of one site's cluster: salt/evpn/firewall.sls with the pvefw states, through Salt's
loaders, the emulator as pvesh, both PVE versions. The minion is pve-roz1, roz's SDN leader; the
example pillar gives roz the management network 192.168.2.0/24. It also switches roz's firewall on
with the nftables backend: these tests set both keys to null (left alone) unless they say otherwise.
"""

import pytest
from salt.exceptions import CommandExecutionError
from salt.utils.dictupdate import merge

from support.pve import pvesh, pvesh_calls, pvesh_writes

MANAGEMENT = (
    "IN ACCEPT -source +dc/evpn-management -p tcp -dport 22,8006 # evpn-management: management access (SSH, web UI)"
)
CLUSTER_FW = """[IPSET evpn-gateways] # evpn: gateways of this cluster's vnets

10.1.1.1

[IPSET evpn-management] # evpn: networks that manage this cluster

192.168.2.0/24

[IPSET evpn-sdn] # evpn: SDN subnets of the federation

10.1.1.0/24
10.2.1.0/24

[IPSET evpn-wireguard] # evpn: WireGuard addresses of the federation

10.1.0.1
10.1.0.2
10.2.0.1

[RULES]

IN ACCEPT -source +dc/evpn-management -p tcp -dport 22,8006 # evpn-management: management access (SSH, web UI)
IN ACCEPT -p udp -dport 51820 # evpn-wireguard: WireGuard underlay (peers may move)
GROUP evpn-wg -i wg0 # evpn-wg: federation traffic on the WireGuard interface
GROUP evpn-sdn -i roz1 # evpn-sdn-roz1: guests of vnet roz1
GROUP evpn-routed # evpn-routed: SDN subnets routed through this host

[group evpn-routed] # evpn: traffic routed for the SDN subnets (policy_forward DROP)

FORWARD ACCEPT -source +dc/evpn-sdn # evpn: routed from SDN subnets
FORWARD ACCEPT -dest +dc/evpn-sdn # evpn: routed to SDN subnets

[group evpn-sdn] # evpn: what guests may ask of the host: their gateway's answer

IN ACCEPT -dest +dc/evpn-gateways -p icmp # evpn: guests ping their gateway

[group evpn-wg] # evpn: overlay control and data plane between federation nodes

IN ACCEPT -source +dc/evpn-wireguard -p tcp -dport 179 # evpn: BGP EVPN sessions
IN ACCEPT -source +dc/evpn-wireguard -p udp -dport 4789 # evpn: VXLAN
IN ACCEPT -source +dc/evpn-wireguard -p icmp # evpn: nodes ping each other

"""


@pytest.fixture(autouse=True)
def version(monkeypatch, pve_version):
    monkeypatch.setenv("PVESIM_VERSION", pve_version)
    return pve_version


@pytest.fixture
def log(tmp_path):
    return tmp_path / "pvesh.log"


SWITCH_LEFT_ALONE = {"evpn": {"sites": {"roz": {"firewall": {"enable": None, "nftables": None}}}}}


def _apply(loaders, pillar=None, **kwargs):
    """state.apply evpn.firewall, the switch and backends left alone unless ``pillar`` sets them;
    {state id: state return}."""
    pillar = merge(SWITCH_LEFT_ALONE, pillar or {})
    return {s["__id__"]: s for s in loaders.modules.state.apply("evpn.firewall", pillar=pillar, **kwargs).raw.values()}


def _changes(states):
    return {state_id: state["changes"] for state_id, state in states.items()}


def _rule_lines(cluster):
    text = (cluster / "firewall" / "cluster.fw").read_text()
    return text.split("[RULES]\n\n", 1)[1].split("\n\n", 1)[0].splitlines()


def test_test_mode_writes_nothing_and_predicts_the_real_run(loaders, log):
    predicted = _apply(loaders, test=True)
    assert pvesh_writes(log) == []
    assert all(s["result"] is None for s in predicted.values()), predicted
    done = _apply(loaders)
    assert all(s["result"] is True for s in done.values()), done
    assert _changes(done) == _changes(predicted)


def test_the_cluster_firewall_holds_exactly_ours(loaders, cluster):
    _apply(loaders)
    assert (cluster / "firewall" / "cluster.fw").read_text() == CLUSTER_FW


def test_second_run_changes_nothing_and_calls_no_pvesh(loaders, log):
    _apply(loaders)
    log.unlink()
    again = _apply(loaders)
    assert all(s["result"] is True and s["changes"] == {} for s in again.values()), again
    assert pvesh_calls(log) == [], "a converged firewall is read from cluster.fw"


def test_an_unreadable_cluster_fw_is_read_through_pvesh_and_the_comments_say_so(loaders, cluster, log):
    _apply(loaders)
    cluster_fw = cluster / "firewall" / "cluster.fw"
    cluster_fw.write_text("a line in no section\n" + cluster_fw.read_text())
    log.unlink()
    again = _apply(loaders)
    assert all(s["result"] is True and s["changes"] == {} for s in again.values()), again
    for state in again.values():
        assert state["comment"].endswith(
            "(read through pvesh: firewall/cluster.fw line 1: a line before any section: 'a line in no section')"
        ), state
    paths = [c["path"] for c in pvesh_calls(log)]
    assert pvesh_writes(log) == [] and sorted(paths) == sorted(set(paths)), "each list read once"


def test_a_failed_write_reports_what_was_changed_before_it(loaders, monkeypatch, log):
    monkeypatch.setenv("PVESIM_FAIL", "POST:/cluster/firewall/ipset/evpn-sdn:2")
    state = _apply(loaders)["evpn-firewall-ipset-evpn-sdn"]
    assert state["result"] is False and "injected failure" in state["comment"]
    assert state["changes"] == {"created": True, "added": ["10.1.1.0/24"]}
    assert pvesh("get", "/cluster/firewall/ipset/evpn-sdn") == [
        {"cidr": "10.1.1.0/24", "digest": pvesh("get", "/cluster/firewall/ipset/evpn-sdn")[0]["digest"]}
    ]


def test_a_rule_write_is_refused_when_the_list_changed_since_it_was_read(loaders):
    _apply(loaders)
    pvefw = loaders.modules.pvefw
    digest = pvefw.rules("cluster")["digest"]
    pvesh("set", "/cluster/firewall/rules/1", "--comment", "evpn-wireguard: edited meanwhile")
    with pytest.raises(CommandExecutionError, match="detected modified configuration"):
        pvefw.delete_rule("cluster", 1, digest=digest)
    assert pvefw.rules("cluster")["rules"][1]["comment"] == "evpn-wireguard: edited meanwhile"


def test_the_users_rules_groups_and_ipsets_keep_their_place(loaders, cluster):
    pvesh("create", "/cluster/firewall/ipset", "--name", "office")
    pvesh("create", "/cluster/firewall/ipset/office", "--cidr", "192.0.2.0/28")
    pvesh("create", "/cluster/firewall/groups", "--group", "web")
    pvesh(
        "create",
        "/cluster/firewall/groups/web",
        "--type",
        "in",
        "--action",
        "ACCEPT",
        "--proto",
        "tcp",
        "--dport",
        "443",
        "--enable",
        "1",
    )
    for comment, action in (("user: last", "DROP"), ("user: second", "ACCEPT"), ("user: first", "ACCEPT")):
        pvesh(
            "create",
            "/cluster/firewall/rules",
            "--type",
            "in",
            "--action",
            action,
            "--source",
            "+office",
            "--enable",
            "1",
            "--comment",
            comment,
        )
    pvesh("create", "/cluster/firewall/rules", "--type", "group", "--action", "web", "--enable", "1")
    states = _apply(loaders)
    assert all(s["result"] is True for s in states.values()), states
    assert _rule_lines(cluster) == [
        MANAGEMENT,
        "IN ACCEPT -p udp -dport 51820 # evpn-wireguard: WireGuard underlay (peers may move)",
        "GROUP evpn-wg -i wg0 # evpn-wg: federation traffic on the WireGuard interface",
        "GROUP evpn-sdn -i roz1 # evpn-sdn-roz1: guests of vnet roz1",
        "GROUP evpn-routed # evpn-routed: SDN subnets routed through this host",
        "GROUP web",
        "IN ACCEPT -source +office # user: first",
        "IN ACCEPT -source +office # user: second",
        "IN DROP -source +office # user: last",
    ]
    text = (cluster / "firewall" / "cluster.fw").read_text()
    assert "[group web]\n\nIN ACCEPT -p tcp -dport 443\n" in text and "[IPSET office]\n\n192.0.2.0/28\n" in text


def test_a_rule_edited_or_moved_by_hand_is_put_back(loaders, cluster, log):
    _apply(loaders)
    pvesh(
        "create",
        "/cluster/firewall/rules",
        "--type",
        "in",
        "--action",
        "DROP",
        "--enable",
        "1",
        "--comment",
        "user: drop all",
    )
    pvesh("set", "/cluster/firewall/rules/2", "--dport", "51999")  # ours, now at 2
    pvesh("set", "/cluster/firewall/rules/1", "--moveto", "5")  # management to the end
    log.unlink()
    states = _apply(loaders)
    changes = states["evpn-firewall-rules"]["changes"]
    assert changes["updated"] == [
        {
            "old": "IN ACCEPT -p udp -dport 51999 # evpn-wireguard: WireGuard underlay (peers may move)",
            "new": "IN ACCEPT -p udp -dport 51820 # evpn-wireguard: WireGuard underlay (peers may move)",
        }
    ]
    assert changes["rules"]["old"][4].endswith("# evpn-management: management access (SSH, web UI)")
    # One update and five moves: ours go back above the user's rule, which is not moved itself.
    assert [w[0] for w in pvesh_writes(log)] == ["PUT"] * 6
    assert _rule_lines(cluster)[0].endswith("# evpn-management: management access (SSH, web UI)")
    assert _rule_lines(cluster)[5] == "IN DROP # user: drop all"
    assert (cluster / "firewall" / "cluster.fw").read_text().replace("IN DROP # user: drop all\n", "") == CLUSTER_FW


def test_a_group_is_put_back_in_order_with_one_move(loaders, log):
    _apply(loaders)
    pvesh("set", "/cluster/firewall/groups/evpn-wg/0", "--moveto", "2")  # BGP to the end
    log.unlink()
    states = _apply(loaders)
    assert states["evpn-firewall-group-evpn-wg"]["result"] is True
    assert pvesh_writes(log) == [("PUT", "/cluster/firewall/groups/evpn-wg/0")]


def test_a_new_site_and_a_removed_management_network(loaders, cluster, log):
    _apply(loaders)
    log.unlink()
    krk = {"network": "10.3.0.0/24", "nodes": {"pve-krk1": {"address": "10.3.0.1", "endpoint": "krk.example.net"}}}
    states = _apply(loaders, pillar={"evpn": {"sites": {"krk": krk, "roz": {"firewall": {"management": []}}}}})
    assert states["evpn-firewall-ipset-evpn-wireguard"]["changes"] == {"added": ["10.3.0.1"]}
    assert states["evpn-firewall-rules"]["changes"]["rules"]["old"][0] == (MANAGEMENT)
    assert pvesh_writes(log).count(("DELETE", "/cluster/firewall/rules/0")) == 1
    assert _rule_lines(cluster)[0].startswith("IN ACCEPT -p udp -dport 51820")


def test_the_reference_for_a_vnet_that_left_the_cluster_goes(loaders, cluster):
    """A vnet taken out of the pillar (a removed site's stretched vnet, a site's own) leaves its
    rule evpn-sdn-<vnet> behind unless the pattern evpn-sdn-* of absent_rules takes it."""
    _apply(loaders)
    stale = {"type": "group", "action": "evpn-sdn", "iface": "gone1", "enable": 1, "comment": "evpn-sdn-gone1: x"}
    pvesh("create", "/cluster/firewall/rules", *[f"--{k}={v}" for k, v in stale.items()])
    assert (cluster / "firewall" / "cluster.fw").read_text() != CLUSTER_FW
    states = _apply(loaders)
    assert "GROUP evpn-sdn -i gone1 # evpn-sdn-gone1: x" in (states["evpn-firewall-rules"]["changes"]["rules"]["old"])
    assert (cluster / "firewall" / "cluster.fw").read_text() == CLUSTER_FW


def test_enabling_without_management_fails_before_any_write(loaders, log):
    pillar = {"evpn": {"sites": {"roz": {"firewall": {"enable": True, "management": []}}}}}
    states = loaders.modules.state.apply("evpn", pillar=pillar).raw
    (state,) = states.values()
    assert state["result"] is False
    assert "evpn:sites:roz:firewall" in state["comment"] and "management" in state["comment"]
    assert pvesh_calls(log) == []


def test_the_switch_is_set_only_when_the_pillar_says_so(loaders, cluster, log):
    _apply(loaders)
    assert "[OPTIONS]" not in (cluster / "firewall" / "cluster.fw").read_text()
    states = _apply(loaders, pillar={"evpn": {"sites": {"roz": {"firewall": {"enable": True}}}}})
    assert states["evpn-firewall-options"]["changes"] == {"enable": {"old": None, "new": 1}}
    assert (cluster / "firewall" / "cluster.fw").read_text().startswith("[OPTIONS]\n\nenable: 1\n")


@pytest.mark.parametrize("pve_version", ["7.4"])
def test_without_forward_rules_the_routed_group_stays_empty(loaders, cluster):
    """PVE before 8.3 has no forward direction (the emulator's 7.4 API refuses it)."""
    states = _apply(loaders)
    assert all(s["result"] is True for s in states.values()), states
    assert states["evpn-firewall-group-evpn-routed"]["comment"].endswith(
        "(forward rules left out: this PVE has none (they exist from 8.3))"
    )
    text = (cluster / "firewall" / "cluster.fw").read_text()
    assert "[group evpn-routed] # evpn: traffic routed for the SDN subnets (policy_forward DROP)\n\n[" in text
    assert "IN ACCEPT -dest +dc/evpn-gateways -p icmp # evpn: guests ping their gateway\n" in text
    assert "FORWARD" not in text


def test_the_backend_is_set_on_each_node_before_the_switch(loaders, cluster):
    """firewall:nftables chooses each node's backend (host option nftables), before the
    cluster's switch goes on; without the key, the nodes' options are left alone."""
    _apply(loaders)
    assert not (cluster / "nodes" / "pve-roz2" / "host.fw").exists()
    pillar = {"evpn": {"sites": {"roz": {"firewall": {"enable": True, "nftables": True}}}}}
    states = _apply(loaders, pillar=pillar)
    for node in ("pve-roz1", "pve-roz2"):
        state = states[f"evpn-firewall-node-options-{node}"]
        assert state["changes"] == {"nftables": {"old": None, "new": 1}}, state
        assert state["__run_num__"] < states["evpn-firewall-options"]["__run_num__"]
        assert (cluster / "nodes" / node / "host.fw").read_text() == "[OPTIONS]\n\nnftables: 1\n\n"
    assert all(s["changes"] == {} for s in _apply(loaders, pillar=pillar).values())
