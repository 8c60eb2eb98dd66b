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
from support.federation import REPO
from support.pve import pvesh_writes

pytestmark = pytest.mark.usefixtures("lab_host")
# minion id: (site, public address, endpoint name, WireGuard address)
NODES = {
    "pve-roz1": ("roz", "203.0.113.11", "roz.example.net", "10.1.0.1"),
    "pve-wro1": ("wro", "203.0.113.12", "wro.dyndns.example.org", "10.2.0.1"),
}


@pytest.fixture(scope="module")
def federation_lab():
    with lab_federation(NODES, REPO / "pillar", prefix="o") as lab:
        yield {**lab, "orchestrate": lab["master"].run("state.orchestrate", "orch.evpn")}


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
    nodes = federation_lab["nodes"]
    for minion_id, node in nodes.items():
        (peer,) = [p for p in NODES if p != minion_id]
        assert node.run("ping", "-c1", "-W2", NODES[peer][3], check=False).returncode == 0
        assert node.run("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"
        assert f"# {peer} at {NODES[peer][2]}:51820" in node.run("cat", "/etc/wireguard/wg0.conf").stdout
    for site, vnet in (("roz", "roz1"), ("wro", "wro1")):
        log = federation_lab["clusters"] / site / "pvesh.log"
        writes = pvesh_writes(log)
        assert ("POST", f"/cluster/sdn/vnets/{vnet}/subnets") in writes and ("PUT", "/cluster/sdn") in writes
        assert writes[-1] == ("POST", "/cluster/firewall/rules"), "the firewall's rules come last"
    # The apply rendered what PVE would run on the node, from the node's own address (wg0).
    rendered = federation_lab["clusters"] / "roz" / "nodes" / "pve-roz1" / "etc"
    frr = (rendered / "frr" / "frr.conf").read_text()
    assert " bgp router-id 10.1.0.1\n" in frr and " neighbor 10.2.0.1 peer-group VTEP\n" in frr
    interfaces = (rendered / "network" / "interfaces.d" / "sdn").read_text()
    assert "\tvxlan-local-tunnelip 10.1.0.1\n" in interfaces and "\tmtu 1370\n" in interfaces
    assert "-s '10.1.1.0/24' -o pub0 -j SNAT --to-source 203.0.113.11" in interfaces


def test_a_following_highstate_changes_nothing(federation_lab):
    ret = federation_lab["master"].salt("*", "state.apply", "evpn")
    assert set(ret) == set(NODES)
    changed = {
        m: {s["__id__"]: s["changes"] for s in states.values() if s["changes"] or s["result"] is not True}
        for m, states in ret.items()
    }
    assert changed == {m: {} for m in NODES}


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
