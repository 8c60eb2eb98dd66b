"""
`salt-run state.orchestrate orch.evpn` through a real master, on the example federation: master
and minions run as plain processes inside lab nodes (salt-factories' daemons would need a link
to the host's namespace, which lab safety forbids), wireguard-go in each node, the emulator as
each node's pvesh with one cluster per site, dnsmasq answering the endpoint names.
One run converges everything (keys reach the mine before peers are configured); a following
`state.apply evpn` changes nothing; no private key reaches the master: not its job cache, mine,
logs or event bus, nor any pillar. (FRR's service state cannot act here: systemd is not PID 1
in a lab node, so Salt's service module runs "offline"; the lab starts FRR itself.)
"""

import pytest

from federation_lab import lab_federation
from support.federation import PILLAR
from support.pve import pvesh_calls, pvesh_writes

pytestmark = pytest.mark.usefixtures("lab_host")


@pytest.fixture(scope="module")
def federation_lab():
    """The lab's example pillar on its default topology (roz: two nodes behind NAT routers,
    wro: one), built, then one orchestration."""
    with lab_federation(PILLAR, prefix="o") as federation:
        nodes = {node_id: federation.lab.nodes[node_id] for node_id in federation.built_nodes()}
        yield {
            "federation": federation,
            "master": federation.master,
            "nodes": nodes,
            "clusters": federation.clusters,
            "events": federation.events,
            "orchestrate": federation.master.run("state.orchestrate", "orch.evpn"),
        }


def _steps(orchestrate):
    (states,) = orchestrate["data"].values()
    return {s["__id__"]: s for s in states.values()}


def test_one_orchestration_converges_the_federation(federation_lab):
    steps = _steps(federation_lab["orchestrate"])
    assert list(steps) == [
        "evpn-sync",
        "evpn-host",
        "evpn-keys",
        "evpn-mine",
        "evpn-wireguard",
        "evpn-sdn",
        "evpn-verify",
    ]
    assert all(s["result"] is True for s in steps.values()), {i: s["comment"] for i, s in steps.items()}
    nodes, plan = federation_lab["nodes"], federation_lab["federation"].plan
    assert sorted(nodes) == ["pve-roz1", "pve-roz2", "pve-wro1"]
    for minion_id, synced in steps["evpn-sync"]["changes"]["ret"].items():
        assert "utils.rule_order" in synced["utils"], f"{minion_id}: _utils not synced"
    for minion_id, node in nodes.items():
        for peer in (p for p in nodes if p != minion_id):
            assert node.run("ping", "-c1", "-W2", plan.nodes()[peer].wireguard, check=False).returncode == 0
        assert node.run("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"
    # Peers of the same site through their LAN endpoint, the others through the public one.
    conf = nodes["pve-roz2"].run("cat", "/etc/wireguard/wg0.conf").stdout
    assert "# pve-roz1 at 192.168.2.11:51820" in conf and "# pve-wro1 at wro.example.net:51820" in conf
    assert "# pve-roz2 at roz.example.net:51821" in nodes["pve-wro1"].run("cat", "/etc/wireguard/wg0.conf").stdout
    for site, vnet in (("roz", "roz1"), ("wro", "wro1")):
        log = federation_lab["clusters"] / site / "pvesh.log"
        writes = pvesh_writes(log)
        assert ("POST", f"/cluster/sdn/vnets/{vnet}/subnets") in writes and ("PUT", "/cluster/sdn") in writes
        # The site's firewall switch goes on last, after our rules (the lab's pillar enables it).
        assert writes[-1] == ("PUT", "/cluster/firewall/options"), "the firewall's switch comes last"
        assert ("POST", "/cluster/firewall/rules") in writes
    # The apply rendered what PVE would run on the leader, from its own address (wg0); the exit
    # node's SNAT goes out of its uplink with its LAN address.
    rendered = federation_lab["clusters"] / "roz" / "nodes" / "pve-roz1" / "etc"
    frr = (rendered / "frr" / "frr.conf").read_text()
    assert " bgp router-id 10.1.0.1\n" in frr and " neighbor 10.2.0.1 peer-group VTEP\n" in frr
    assert " neighbor 10.1.0.2 peer-group VTEP\n" in frr
    interfaces = (rendered / "network" / "interfaces.d" / "sdn").read_text()
    assert "\tvxlan-local-tunnelip 10.1.0.1\n" in interfaces and "\tmtu 1370\n" in interfaces
    assert "-s '10.1.1.0/24' -o eth0 -j SNAT --to-source 192.168.2.11" in interfaces


def test_a_following_highstate_changes_nothing_and_calls_no_pvesh(federation_lab):
    """DESIGN.md section 8: a converged node re-run makes no change and no pvesh call (the
    leaders read their cluster's files)."""
    logs = [federation_lab["clusters"] / site / "pvesh.log" for site in ("roz", "wro")]
    calls = [len(pvesh_calls(log)) for log in logs]
    ret = federation_lab["master"].salt("*", "state.apply", "evpn")
    assert set(ret) == set(federation_lab["nodes"])
    changed = {
        m: {s["__id__"]: s["changes"] for s in states.values() if s["changes"] or s["result"] is not True}
        for m, states in ret.items()
    }
    assert changed == {m: {} for m in federation_lab["nodes"]}
    assert [len(pvesh_calls(log)) for log in logs] == calls


def test_private_keys_never_reach_the_master(federation_lab):
    master, nodes = federation_lab["master"], federation_lab["nodes"]
    master.salt("*", "pillar.items")
    master.salt("*", "mine.update")
    private = {m: n.run("cat", "/etc/wireguard/wg0.key").stdout.strip() for m, n in nodes.items()}
    public = {m: n.run("wg", "show", "wg0", "public-key").stdout.strip() for m, n in nodes.items()}
    assert all(private.values()) and all(public.values())
    master_files = [p for p in master.config_dir.rglob("*") if p.is_file()]
    haystack = b"".join(p.read_bytes() for p in master_files) + federation_lab["events"].read_bytes()
    haystack += str(master.salt("*", "pillar.items")).encode()
    # The search looks where the keys would be: the public keys are there (mine cache, events).
    assert all(key.encode() in haystack for key in public.values())
    leaked = [m for m, key in private.items() if key.encode() in haystack]
    assert leaked == [], f"private key of {leaked} found on the master"
