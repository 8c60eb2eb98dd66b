"""
`make lab` end to end (lab/evpnlab.py, as the Makefile runs it, in a state folder and namespace
prefix of its own): two sites converge from nothing, BGP l2vpn evpn sessions come up over
WireGuard, a VM at one site pings a VM at the other across subnets, the zone MTU holds, a node
whose public address moves keeps its traffic and its BGP session, a third site comes in with
one pillar file and one command, and tear-down leaves nothing.
"""

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

from netns import Lab, alive
from salt_daemons import SaltMaster
from support.federation import REPO
from support.pve import pvesh_writes

pytestmark = pytest.mark.usefixtures("lab_host")
STATE = pathlib.Path(f"/tmp/evpn-lt{os.getpid() % 100000}")
PREFIX = f"lt{os.getpid() % 100000}-"
ENVIRON = {**os.environ, "EVPN_LAB_STATE": str(STATE), "EVPN_LAB_PREFIX": PREFIX}


def evpnlab(*args, timeout=300):
    return subprocess.run(
        [sys.executable, str(REPO / "lab" / "evpnlab.py"), *args],
        env=ENVIRON,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def vm_ping(source, address, *args):
    return subprocess.run(
        ["ip", "netns", "exec", f"{PREFIX}vm-{source}", "ping", "-c1", "-W1", *args, address],
        capture_output=True,
        text=True,
        check=False,
    )


def bgp_peer(node, address):
    output = node.run("vtysh", "-c", "show bgp l2vpn evpn summary json").stdout
    return json.loads(output)["peers"][address]


@pytest.fixture(scope="module")
def lab():
    try:
        up = evpnlab("up")
        yield {"up": up, "lab": Lab.load(STATE / "lab") if (STATE / "lab" / "lab.json").exists() else None}
    finally:
        evpnlab("down")


def test_two_sites_converge_and_vms_ping_across_sites(lab):
    up = lab["up"]
    assert up.returncode == 0, up.stdout + up.stderr
    assert "BGP and routes established" in up.stdout
    pings = [line for line in up.stdout.splitlines() if "ping vm-" in line]
    assert len(pings) == 2 and all("3 received" in line for line in pings), pings
    for node, peer in (("pve-roz1", "10.2.0.1"), ("pve-wro1", "10.1.0.1")):
        assert bgp_peer(lab["lab"].nodes[node], peer)["state"] == "Established"
    assert "no problems" in up.stdout, "evpn.status flagged a problem"


def test_the_zone_mtu_holds(lab):
    assert vm_ping("roz", "10.2.1.10", "-M", "do", "-s", "1342").returncode == 0  # 1370 bytes
    too_big = vm_ping("roz", "10.2.1.10", "-M", "do", "-s", "1343")
    assert too_big.returncode != 0 and "mtu=1370" in too_big.stdout + too_big.stderr


def test_the_plan_after_a_converge_touches_nothing(lab):
    master = SaltMaster(lab["lab"].nodes["pve-roz1"], "203.0.113.11", STATE, pillar_root=STATE / "pillar")
    logs = [STATE / "clusters" / site / "pvesh.log" for site in ("roz", "wro")]
    writes_before = [pvesh_writes(log) for log in logs]
    plan = master.run("evpn.plan")
    assert set(plan) == {"pve-roz1", "pve-wro1"}
    # Only the interfaces the SDN made since the converge: their rp_filter joins the sysctl file.
    assert all(set(changes) <= {"evpn-sysctl"} for changes in plan.values()), plan
    assert [pvesh_writes(log) for log in logs] == writes_before


def test_a_third_site_by_one_pillar_file_and_one_command(lab):
    added = evpnlab("add", "krk")
    assert added.returncode == 0, added.stdout + added.stderr
    pings = [line for line in added.stdout.splitlines() if "ping vm-" in line]
    assert len(pings) == 3 and all("3 received" in line for line in pings), pings
    print(next(line for line in added.stdout.splitlines() if "done in" in line))
    assert (STATE / "pillar" / "evpn" / "sites" / "krk.sls").exists()


def test_a_moved_node_keeps_traffic_and_its_bgp_session(lab):
    roz = lab["lab"].nodes["pve-roz1"]
    before = bgp_peer(roz, "10.2.0.1")["peerUptimeMsec"]
    moved = evpnlab("move", "wro")
    assert moved.returncode == 0, moved.stderr
    started = time.monotonic()
    while vm_ping("roz", "10.2.1.10").returncode != 0:
        assert time.monotonic() - started < 30, "traffic did not recover within 30 s"
    print(f"traffic recovered {time.monotonic() - started:.2f} s after the move")
    peer = bgp_peer(roz, "10.2.0.1")
    assert peer["state"] == "Established" and peer["peerUptimeMsec"] > before, "the BGP session was reset"


def test_tear_down_leaves_nothing(lab):
    recorded = Lab.load(STATE / "lab")
    down = evpnlab("down")
    assert down.returncode == 0, down.stderr
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert PREFIX not in namespaces
    assert str(STATE) not in pathlib.Path("/proc/mounts").read_text()
    assert [label for pid, start, label in recorded.processes if alive(pid, start)] == []
    assert not STATE.exists()
