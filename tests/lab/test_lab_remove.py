"""
Removing a node and a site, end to end, in a lab of its own (the shared one keeps its nodes):
`make lab`, `make lab-add SITE=krk`, then as docs/operations.md says: pve-roz2 out of the roz
site file, one orchestration naming it; then site krk's file deleted, one orchestration naming
pve-krk1. Afterwards nothing that remains mentions what left (every remaining cluster's /etc/pve,
`wg show`, FRR's running configuration, every loaded firewall set, the master's mine), the
remaining guests reach each other, a second run changes nothing; what left is clean, the user's
own objects in krk's cluster are as they were, and a guest still on krk's vnet stopped the first
attempt, naming it, with nothing of krk changed.
"""

import json
import shutil
import time

import pytest
import yaml

from federation_lab import Federation
from pvesim.api import Api
from salt_daemons import SALT_BIN
from support.labrun import LabRun, bgp_peers, in_namespace, public_key

pytestmark = pytest.mark.usefixtures("lab_host")
EVPNLAB = LabRun("rm")


@pytest.fixture(scope="module")
def lab():
    """`make lab` then `make lab-add SITE=krk`, in a state folder and prefix of its own."""
    try:
        started = time.monotonic()
        up = EVPNLAB("up")
        assert up.returncode == 0, up.stdout + up.stderr
        added = EVPNLAB("add", "--site", "krk")
        assert added.returncode == 0, added.stdout + added.stderr
        print(f"lab up and krk added in {time.monotonic() - started:.0f} s")
        yield Federation.load(EVPNLAB.state)
    finally:
        EVPNLAB.down_leaves_nothing()


def remove(federation, node_ids):
    """Federation.remove, timed: {step id: step} and the seconds the orchestration and the
    reloads took; the steps that failed printed."""
    started = time.monotonic()
    steps = federation.remove(node_ids)
    seconds = time.monotonic() - started
    for step in steps.values():
        if not step["result"]:
            print(f"{step['__id__']} failed: {step['comment']}\n{json.dumps(step['changes'], indent=1)}")
    return steps, seconds


def unsettled(federation):
    plan = federation.master.run("evpn.plan")
    return {node_id: node for node_id, node in plan["data"].items() if node["changes"] or node["problems"]}


def guests_reach_each_other(federation, timeout=90):
    """The pairs of remaining guests that did not answer a ping within ``timeout`` seconds (BGP
    sessions come back after FRR's reload, EVPN learns a guest's MAC from its first packets);
    the nodes' BGP sessions are printed when some did not."""
    guests = federation.running_guests()
    pending = {(a.namespace, b.ip) for a in guests for b in guests if a != b}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = {
            (ns, ip)
            for ns, ip in pending
            if in_namespace(EVPNLAB.prefix + ns, "ping", "-c1", "-W1", ip).returncode != 0
        }
    waited = timeout - (deadline - time.monotonic())
    print(f"remaining guests: {len(guests)}, pairs answering after {waited:.1f} s, {len(pending)} not")
    if pending:
        print({n: bgp_peers(federation.lab.nodes[n]) for n in federation.built_nodes()})
    return pending


def clean(federation, node):
    """What of ours the node still has: its WireGuard link and files, our sysctl file, the
    endpoint beacon's file in its minion's configuration."""
    beacon_file = federation.state / f"salt-minion-{node.name}" / "minion.d" / "evpn-beacon.conf"
    return [
        what
        for what, argv in (
            ("wg0", ["ip", "link", "show", "wg0"]),
            ("/etc/wireguard/wg0.conf", ["test", "-e", "/etc/wireguard/wg0.conf"]),
            ("/etc/wireguard/wg0.key", ["test", "-e", "/etc/wireguard/wg0.key"]),
            ("/etc/sysctl.d/zz-evpn.conf", ["test", "-e", "/etc/sysctl.d/zz-evpn.conf"]),
            ("minion.d/evpn-beacon.conf", ["test", "-e", str(beacon_file)]),
        )
        if node.run(*argv, check=False).returncode == 0
    ]


@pytest.mark.timeout(1500)
def test_remove_a_node_then_a_site(lab):
    roz2, krk1 = lab.lab.nodes["pve-roz2"], lab.lab.nodes["pve-krk1"]
    roz2_left = ("10.1.0.2", public_key(roz2))
    krk_left = ("10.3.0.1", public_key(krk1), "203.0.113.30", "10.3.1.0/24", "10.3.1.1")
    assert lab.mentions(roz2_left) and lab.mentions(krk_left), "the needles are found while they are members"

    # Naming a node the pillar still holds, or no list: refused before anything runs.
    for removed, refusal in (
        (["pve-roz2"], "removed: pve-roz2 still in evpn:sites:*:nodes: take them out of the pillar first"),
        ("pve-roz2", "removed: got pve-roz2"),
    ):
        ret = lab.master.run("state.orchestrate", "orch.evpn", f"pillar={json.dumps({'removed': removed})}")
        ((step,),) = [list(steps.values()) for steps in ret["data"].values()]
        assert (step["result"], step["comment"]) == (False, refusal)

    # pve-roz2 out of roz's file (the lab's topology keeps it as a node `make lab-add` could add
    # again); PVE's own `pvecm delnode pve-roz2` afterwards takes its folder.
    roz_file = lab.pillar_root / "evpn" / "sites" / "roz.sls"
    document = yaml.safe_load(roz_file.read_text())
    entry = document["evpn"]["sites"]["roz"]["nodes"].pop("pve-roz2")
    roz_file.write_text(yaml.safe_dump(document, sort_keys=False))
    topology = yaml.safe_load(lab.topology_file.read_text())
    topology["sites"]["roz"]["nodes"]["pve-roz2"]["pillar"] = entry
    lab.topology_file.write_text(yaml.safe_dump(topology, sort_keys=False))
    steps, seconds = remove(lab, ["pve-roz2"])
    print(f"pve-roz2 removed in {seconds:.1f} s")
    assert all(s["result"] for s in steps.values()), [i for i, s in steps.items() if not s["result"]]
    assert clean(lab, roz2) == []
    shutil.rmtree(lab.clusters / "roz" / "nodes" / "pve-roz2")
    assert lab.mentions(roz2_left) == []
    assert guests_reach_each_other(lab) == set()
    assert unsettled(lab) == {}

    # Site krk: the user's own objects beside ours, a VM still on our vnet krk1.
    krk = lab.clusters / "krk"
    api = Api(krk, "pve-krk1", "9.1")
    api.call("POST", "/cluster/sdn/zones", {"zone": "mine", "type": "simple"})
    api.call("POST", "/cluster/sdn/vnets", {"vnet": "myvnet", "zone": "mine"})
    api.call("PUT", "/cluster/sdn")
    api.call("POST", "/cluster/firewall/rules", {"type": "in", "action": "ACCEPT", "source": "198.51.100.7"})
    user_running = json.loads((krk / "sdn" / ".running-config").read_text())
    user_running = {kind: {i: c for i, c in user_running[kind]["ids"].items() if i in ("mine", "myvnet")}
                    for kind in ("zones", "vnets")}  # fmt: skip
    vm = krk / "nodes" / "pve-krk1" / "qemu-server" / "110.conf"
    vm.parent.mkdir(parents=True, exist_ok=True)
    vm.write_text("name: krk-vm\nnet0: virtio=BC:24:11:00:03:10,bridge=krk1\n")
    (lab.pillar_root / "evpn" / "sites" / "krk.sls").unlink()
    before = {p: p.read_text() for p in (krk / "firewall" / "cluster.fw", krk / "sdn" / "vnets.cfg")}
    steps, _ = remove(lab, ["pve-krk1"])
    assert steps["evpn-removed"]["result"] is False
    assert "vnet krk1: 110 (krk-vm) on pve-krk1" in json.dumps(steps["evpn-removed"]["changes"])
    assert {p: p.read_text() for p in before} == before
    assert clean(lab, krk1) == [
        "wg0",
        "/etc/wireguard/wg0.conf",
        "/etc/wireguard/wg0.key",
        "/etc/sysctl.d/zz-evpn.conf",
        "minion.d/evpn-beacon.conf",
    ]
    assert guests_reach_each_other(lab) == set(), "the federation has dropped krk all the same"

    vm.unlink()  # the VM moved away
    steps, seconds = remove(lab, ["pve-krk1"])
    print(f"site krk removed in {seconds:.1f} s")
    assert all(s["result"] for s in steps.values()), [i for i, s in steps.items() if not s["result"]]
    assert clean(lab, krk1) == []
    # What krk's firewall loads now: no rule of ours, no rule using one of our sets. (The load
    # of proxmox-firewall, as the emulator compiles it, flushes its chains and refills the sets it
    # makes: a set it no longer makes stays loaded, used by no rule.)
    lab.wait_for_firewall(["pve-krk1"])
    ruleset = krk1.run("nft", "list", "ruleset").stdout.splitlines()
    assert [line for line in ruleset if "evpn" in line and "set " not in line] == []
    assert lab.mentions(krk_left + roz2_left) == []
    cluster_fw = (krk / "firewall" / "cluster.fw").read_text()
    assert "evpn" not in cluster_fw and "IN ACCEPT -source 198.51.100.7" in cluster_fw
    running = json.loads((krk / "sdn" / ".running-config").read_text())
    assert {kind: running[kind]["ids"] for kind in ("zones", "vnets")} == user_running
    assert running["controllers"]["ids"] == {} and running["subnets"]["ids"] == {}
    assert guests_reach_each_other(lab, timeout=30) == set()

    again, _ = remove(lab, ["pve-krk1"])
    assert all(s["result"] for s in again.values()), [i for i, s in again.items() if not s["result"]]
    assert again["evpn-removed"]["changes"] == {} and again["evpn-sdn"]["changes"] == {}
    assert unsettled(lab) == {}

    for node_id in ("pve-roz2", "pve-krk1"):  # their minion keys, last
        lab.master.node.run(str(SALT_BIN / "salt-key"), "-c", str(lab.master.config_dir), "-y", "-d", node_id)
    assert sorted(lab.master.salt("*", "test.ping", timeout=5)) == ["pve-roz1", "pve-wro1"]
