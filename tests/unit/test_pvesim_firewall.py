"""The emulator's firewall: cluster.fw/host.fw as PVE writes them, rule positions, digests."""

import pytest

from pvesim.errors import PveError


def _rule(cluster, path, **params):
    cluster.call("POST", path, {k.replace("_", "-"): str(v) for k, v in params.items()})


def _actions(cluster, path="/cluster/firewall/rules"):
    return [r.get("comment") for r in cluster.call("GET", path)]


def _fails(cluster, method, path, params=None):
    with pytest.raises(PveError) as err:
        cluster.call(method, path, params or {})
    return err.value.message


@pytest.fixture
def cluster(pve_cluster):
    pve_cluster.call("POST", "/cluster/firewall/ipset", {"name": "evpn-wireguard", "comment": "evpn: WireGuard"})
    for cidr in ("10.2.0.1/32", "10.1.0.0/16", "10.0.0.5/24"):
        pve_cluster.call("POST", "/cluster/firewall/ipset/evpn-wireguard", {"cidr": cidr})
    pve_cluster.call("POST", "/cluster/firewall/groups", {"group": "evpn-wg", "comment": "evpn: overlay"})
    _rule(
        pve_cluster,
        "/cluster/firewall/groups/evpn-wg",
        type="in",
        action="ACCEPT",
        proto="udp",
        dport=4789,
        source="+evpn-wireguard",
        enable=1,
        comment="vxlan",
    )
    _rule(
        pve_cluster,
        "/cluster/firewall/groups/evpn-wg",
        type="in",
        action="ACCEPT",
        proto="tcp",
        dport=179,
        source="+evpn-wireguard",
        enable=1,
        comment="bgp",
    )
    _rule(pve_cluster, "/cluster/firewall/rules", type="group", action="evpn-wg", iface="wg0", enable=1, comment="C")
    _rule(pve_cluster, "/cluster/firewall/rules", type="in", action="ACCEPT", proto="udp", dport=51820, comment="B")
    _rule(pve_cluster, "/cluster/firewall/rules", type="in", action="DROP", source="10.9.9.9", enable=1, comment="A")
    pve_cluster.call("PUT", "/cluster/firewall/options", {"enable": "1"})
    return pve_cluster


def test_cluster_fw_written_as_pve_writes_it(cluster):
    assert (cluster.store.root / "firewall" / "cluster.fw").read_text() == (
        "[OPTIONS]\n\nenable: 1\n\n"
        "[IPSET evpn-wireguard] # evpn: WireGuard\n\n10.0.0.0/24\n10.1.0.0/16\n10.2.0.1\n\n"
        "[RULES]\n\n"
        "IN DROP -source 10.9.9.9 # A\n"
        "|IN ACCEPT -p udp -dport 51820 # B\n"
        "GROUP evpn-wg -i wg0 # C\n\n"
        "[group evpn-wg] # evpn: overlay\n\n"
        "IN ACCEPT -source +evpn-wireguard -p tcp -dport 179 # bgp\n"
        "IN ACCEPT -source +evpn-wireguard -p udp -dport 4789 # vxlan\n\n"
    )


def test_post_inserts_at_the_top_and_defaults_to_disabled(cluster):
    rules = cluster.call("GET", "/cluster/firewall/rules")
    assert [(r["pos"], r["comment"], r["enable"]) for r in rules] == [(0, "A", 1), (1, "B", 0), (2, "C", 1)]
    assert len({r["digest"] for r in rules}) == 1


def test_moveto_inserts_before_the_rule_originally_there(cluster):
    cluster.call("PUT", "/cluster/firewall/rules/0", {"moveto": "2"})
    assert _actions(cluster) == ["B", "A", "C"]
    cluster.call("PUT", "/cluster/firewall/rules/0", {"moveto": "9"})
    assert _actions(cluster) == ["A", "C", "B"]


def test_rule_update_delete_and_stale_digest(cluster):
    digest = cluster.call("GET", "/cluster/firewall/rules")[0]["digest"]
    cluster.call("PUT", "/cluster/firewall/rules/1", {"enable": "1", "comment": "-", "digest": digest})
    assert cluster.call("GET", "/cluster/firewall/rules/1")["enable"] == 1
    assert "comment" not in cluster.call("GET", "/cluster/firewall/rules/1")
    message = _fails(cluster, "DELETE", "/cluster/firewall/rules/0", {"digest": digest})
    assert message == "detected modified configuration - file changed by other user? Try again."
    cluster.call("DELETE", "/cluster/firewall/rules/0")
    assert _actions(cluster) == [None, "C"]
    assert _fails(cluster, "GET", "/cluster/firewall/rules/5") == "no rule at position 5"


def test_ipset_entries_normalised_sorted_and_unique(cluster):
    entries = cluster.call("GET", "/cluster/firewall/ipset/evpn-wireguard")
    assert [e["cidr"] for e in entries] == ["10.0.0.0/24", "10.1.0.0/16", "10.2.0.1"]
    assert (
        _fails(cluster, "POST", "/cluster/firewall/ipset/evpn-wireguard", {"cidr": "10.2.0.1"})
        == "address '10.2.0.1' already exists"
    )
    assert cluster.call("GET", "/cluster/firewall/ipset/evpn-wireguard/10.1.0.0/16")["cidr"] == "10.1.0.0/16"
    cluster.call("DELETE", "/cluster/firewall/ipset/evpn-wireguard/10.1.0.0/16")
    assert _fails(cluster, "DELETE", "/cluster/firewall/ipset/evpn-wireguard") == "IPSet 'evpn-wireguard' is not empty"


@pytest.mark.parametrize(
    "path,params,expected",
    [
        (
            "/cluster/firewall/groups/evpn-wg",
            {"type": "in", "action": "ACCEPT", "iface": "wg0"},
            "type: parameter -i not allowed for this rule type",
        ),
        (
            "/cluster/firewall/rules",
            {"type": "forward", "action": "REJECT"},
            "action: cannot define REJECT rules on forward chain",
        ),
        (
            "/cluster/firewall/rules",
            {"type": "in", "action": "ACCEPT", "source": "+nope"},
            "source: no such ipset 'nope'",
        ),
        (
            "/cluster/firewall/rules",
            {"type": "in", "action": "ACCEPT", "dport": "22"},
            "proto: missing property - 'dport' requires this property",
        ),
        (
            "/cluster/firewall/rules",
            {"type": "group", "action": "nogroup"},
            "action: security group 'nogroup' does not exist",
        ),
    ],
)
def test_rules_pve_refuses(cluster, path, params, expected):
    before = (cluster.store.root / "firewall" / "cluster.fw").read_text()
    message = _fails(cluster, "POST", path, params)
    assert message.startswith("400 Parameter verification failed.\n") and expected in message
    assert (cluster.store.root / "firewall" / "cluster.fw").read_text() == before


def test_groups_and_names(cluster):
    assert (
        _fails(cluster, "POST", "/cluster/firewall/groups", {"group": "evpn-wg"})
        == "Security group 'evpn-wg' already exists"
    )
    assert _fails(cluster, "DELETE", "/cluster/firewall/groups/evpn-wg") == "Security group 'evpn-wg' is not empty"
    cluster.call("POST", "/cluster/firewall/ipset", {"name": "WebSrv"})
    assert "websrv" in [s["name"] for s in cluster.call("GET", "/cluster/firewall/ipset")]
    cluster.call("POST", "/cluster/firewall/groups", {"group": "evpn-fed", "rename": "evpn-wg"})
    assert [r["action"] for r in cluster.call("GET", "/cluster/firewall/rules") if r["type"] == "group"] == ["evpn-fed"]


def test_host_firewall_has_options_and_rules_only(cluster):
    _rule(
        cluster,
        "/nodes/pve1/firewall/rules",
        type="in",
        action="ACCEPT",
        iface="vmbr0",
        proto="tcp",
        dport=22,
        enable=1,
    )
    cluster.call("PUT", "/nodes/pve1/firewall/options", {"enable": "1", "nftables": "1"})
    assert (cluster.store.root / "nodes" / "pve1" / "host.fw").read_text() == (
        "[OPTIONS]\n\nenable: 1\nnftables: 1\n\n[RULES]\n\nIN ACCEPT -i vmbr0 -p tcp -dport 22\n\n"
    )
    options = cluster.call("GET", "/nodes/pve1/firewall/options")
    assert (options["enable"], options["nftables"]) == (1, 1)
    assert _fails(cluster, "GET", "/nodes/pve9/firewall/rules") == "no such cluster node 'pve9'"


def test_options_digest_and_delete(cluster):
    options = cluster.call("GET", "/cluster/firewall/options")
    cluster.call("PUT", "/cluster/firewall/options", {"policy_in": "DROP", "digest": options["digest"]})
    assert _fails(cluster, "PUT", "/cluster/firewall/options", {"enable": "0", "digest": options["digest"]}).startswith(
        "detected modified configuration"
    )
    cluster.call("PUT", "/cluster/firewall/options", {"delete": "policy_in"})
    assert "policy_in" not in cluster.call("GET", "/cluster/firewall/options")


def test_rules_and_aliases_read_back_with_their_ip_version(cluster):
    """verify_rule (pve-firewall 6f1311f) gives a rule the IP version of its ICMP protocol, addresses
    or alias, and the list digest covers it; an alias keeps the case of its name in cluster.fw."""
    cluster.call("POST", "/cluster/firewall/aliases", {"name": "Office6", "cidr": "2001:db8::/64"})
    _rule(cluster, "/cluster/firewall/rules", type="in", action="ACCEPT", dest="dc/office6", comment="D")
    _rule(cluster, "/cluster/firewall/rules", type="in", action="ACCEPT", proto="icmp", comment="E")
    rules = {r["comment"]: r.get("ipversion") for r in cluster.call("GET", "/cluster/firewall/rules")}
    assert rules == {"E": 4, "D": 6, "A": 4, "B": None, "C": None}
    (alias,) = cluster.call("GET", "/cluster/firewall/aliases")
    assert (alias["name"], alias["ipversion"]) == ("Office6", 6)
    assert "\nOffice6 2001:db8::/64\n" in (cluster.store.root / "firewall" / "cluster.fw").read_text()
    digest = cluster.call("GET", "/cluster/firewall/rules")[0]["digest"]
    cluster.call("PUT", "/cluster/firewall/rules/0", {"comment": "E2", "digest": digest})
