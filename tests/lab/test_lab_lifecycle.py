"""
A federation's life after its first converge, on the lab tier's shared lab, as
docs/operations.md tells an operator: a key rotated (make lab-rotate), a node reinstalled with
an empty /etc/wireguard, a node power-cycled with the master down and DNS away for the first
20 s of its boot (make lab-reboot), a WAN move with the master down (make lab-move MASTER=down).
"""

import json

import pytest

from evpnlab import guest_ping, wait
from support.labrun import addresses_held_for, public_key
from support.labrun import default_lab as evpnlab

pytestmark = pytest.mark.usefixtures("lab_host")

# docs/operations.md, "Rotate a node's key": what a rotation may cost the guests' traffic
MOST_PINGS_LOST = 10  # 1 s of pings every 0.1 s (none were lost in the lab)
BGP_HOLD_TIME = 9  # seconds: PVE's FRR runs the datacenter profile


def result(proc):
    """The ``result {...}`` line that lab/evpnlab.py's measured commands print last."""
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(line for line in proc.stdout.splitlines() if line.startswith("result "))
    return json.loads(line.removeprefix("result "))


def everywhere(lab, text):
    """Where the federation still holds ``text``: every node's live interface and persisted
    configuration, the master's mine."""
    found = []
    for node_id in lab.built_nodes():
        node = lab.lab.nodes[node_id]
        for what, argv in (
            ("wg show", ["wg", "show", "wg0", "dump"]),
            ("wg0.conf", ["cat", "/etc/wireguard/wg0.conf"]),
        ):
            if text in node.run(*argv).stdout:
                found.append(f"{node_id}: {what}")
    if text in json.dumps(lab.master.run("cache.mine")):
        found.append("the master's mine")
    return found


def test_a_rotated_key_reaches_every_peer_without_a_bgp_reset(lab):
    wro = lab.lab.nodes["pve-wro1"]
    old = public_key(wro)
    measured = result(evpnlab("rotate", "pve-wro1"))
    print(f"rotation of pve-wro1: {measured}")
    new = public_key(wro)
    assert new != old
    assert everywhere(lab, old) == []
    # its own wg show, every peer's wg show and wg0.conf, the mine (its wg0.conf holds the private key)
    assert len(everywhere(lab, new)) == 2 * len(lab.built_nodes())
    assert measured["bgp_resets"] == [] and measured["failed"] == []
    assert measured["pings_lost"] <= MOST_PINGS_LOST
    assert measured["slowest_answer_s"] < BGP_HOLD_TIME


def test_rotation_refuses_what_is_not_a_node_and_plans_every_node_one_after_the_other(lab):
    for nodes, refusal in ((["pve-nope"], '["pve-nope"]'), ([], "[]"), ("pve-wro1", '"pve-wro1"')):
        ret = lab.master.run("state.orchestrate", "orch.rotate_key", f"pillar={json.dumps({'nodes': nodes})}")
        ((step,),) = [list(steps.values()) for steps in ret["data"].values()]
        assert step["result"] is False and step["comment"].startswith(f"nodes: got {refusal}; the nodes are ")
    # "all": every node, each rotation waiting for the checks after the one before it
    (plan,) = lab.master.run("state.orchestrate_show_sls", "orch.rotate_key", 'pillar={"nodes": "all"}').values()
    requires = {
        step_id: [r["salt"] for arg in body["salt"] if isinstance(arg, dict) for r in arg.get("require", [])]
        for step_id, body in plan.items()
        if step_id.startswith("evpn-rotate-pve")
    }
    chain, previous = [], "evpn-rotate-sync"
    while len(chain) < len(requires):
        (step_id,) = [step_id for step_id, required in requires.items() if required == [previous]]
        chain.append(step_id.removeprefix("evpn-rotate-"))
        previous = f"evpn-verify-{chain[-1]}"
    assert sorted(chain) == lab.built_nodes()


def test_a_reinstalled_node_is_healed_by_one_orchestration(lab):
    """pve-wro1 comes back from a reinstall: its WireGuard interface without key, peers or
    address, /etc/wireguard empty. One orch.evpn makes its new key and hands it to every peer."""
    wro = lab.lab.nodes["pve-wro1"]
    old = public_key(wro)
    for peer in wro.run("wg", "show", "wg0", "peers").stdout.split():
        wro.run("wg", "set", "wg0", "peer", peer, "remove")
    wro.run("ip", "address", "flush", "dev", "wg0")
    wro.run("sh", "-c", "rm -f /etc/wireguard/*")
    assert lab.converge()
    assert public_key(wro) not in ("", old)
    assert everywhere(lab, old) == []
    guests = lab.running_guests()
    theirs = [g for g in guests if g.node == "pve-wro1"]
    others = [g for g in guests if g.node != "pve-wro1"]
    assert theirs and wait(lambda: all(guest_ping(lab.lab, a, b) for a in theirs for b in others), 60)


def test_a_reboot_with_the_master_down_and_dns_away(lab):
    """pve-wro1 loses power; the master is down, and DNS unreachable for the first 20 s of its
    boot. It comes back from what it persisted (wg-quick@wg0, FRR and ifupdown2 from PVE's
    files, our sysctl file), its guests reach every site; its endpoint beacon, started before
    and without the master, keeps trying its names and gets their first answers once DNS is
    back (its earlier answers are gone, as on a node whose names never resolved)."""
    wro = lab.lab.nodes["pve-wro1"]
    minion_log = lab.state / "salt-minion-pve-wro1" / "minion.log"
    seen = len(minion_log.read_text())
    beacon_cache = lab.state / "salt-minion-pve-wro1" / "var" / "cache" / "salt" / "minion" / "evpn_endpoint.json"
    beacon_cache.unlink()
    measured = result(evpnlab("reboot", "pve-wro1", "--master-down", "--dns-away", "20"))
    print(f"reboot of pve-wro1 with the master down: {measured}")
    assert measured["recovered_s"] is not None
    assert wro.run("sysctl", "-n", "net.ipv4.ip_forward", "net.ipv4.conf.all.rp_filter").stdout.split() == ["1", "0"]
    boot = minion_log.read_text()[seen:]
    without_master = boot[: boot.index("Added mine.update to scheduler")]  # until it reached the master
    assert "watching the persisted configuration" in without_master
    assert "answered for the first time" in without_master


def test_a_wan_move_with_the_master_down(lab):
    moved = evpnlab("move", "wro", "--master-down")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    after = lab.lab.routers["rtr-wro-0"].wan()
    assert set(addresses_held_for(lab, "pve-wro1").values()) == {after}
    print(next(line for line in moved.stdout.splitlines() if "every peer re-pointed" in line))
    assert "traffic to wro's guests back" in moved.stdout
