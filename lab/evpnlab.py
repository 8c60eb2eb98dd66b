"""
The local federation (make lab, lab-down, lab-status, lab-move): one lab node per site in
network namespaces (lab/netns.py), dnsmasq as the public DNS, wireguard-go, a salt-master and a
minion per node from the checkout's configuration, the emulator as each node's pvesh (one
cluster per site); converged by ``salt-run state.orchestrate orch.evpn``; then each node runs
what the emulator's SDN apply rendered for it (lab/dataplane.py) and a "VM" namespace sits on
each site's vnet. Everything is recorded under STATE, so that another command can tear it down.

    python lab/evpnlab.py up [--sites 2|3]    # build, converge, prove with a ping
    python lab/evpnlab.py add krk             # a third site: one pillar file, one orchestration
    python lab/evpnlab.py status
    python lab/evpnlab.py move wro            # the node's public address and DNS record change
    python lab/evpnlab.py down
"""

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import time

import yaml
from sites import KRK, SITES

from dataplane import bgp_established, load
from federation_lab import add_nodes, start_federation
from netns import Lab
from salt_daemons import SaltMaster

REPO = pathlib.Path(__file__).resolve().parents[1]
STATE = pathlib.Path(os.environ.get("EVPN_LAB_STATE", "/tmp/evpn-lab"))  # short: Salt's sockets live here
PREFIX = os.environ.get("EVPN_LAB_PREFIX", "evpnlab-")  # of every namespace the lab makes
MOVED = {"203.0.113.": ("198.51.100.", "198.51.100.1"), "198.51.100.": ("203.0.113.", "203.0.113.1")}
MTU = 1370


def step(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def lab_pillar(sites):
    """The checkout's pillar, the beacon every second, and the sites beyond roz and wro."""
    pillar = STATE / "pillar"
    shutil.copytree(REPO / "pillar", pillar, dirs_exist_ok=True)
    init = pillar / "evpn" / "init.sls"
    init.write_text(init.read_text().replace("- interval: 5", "- interval: 1"))
    if "krk" in sites:
        (pillar / "evpn" / "sites" / "krk.sls").write_text(yaml.safe_dump(KRK))
    return pillar


def federation_nodes(sites):
    return {SITES[s]["node"]: (s, SITES[s]["public"], SITES[s]["name"], SITES[s]["address"]) for s in sites}


def master_of(lab, sites):
    first = SITES[sites[0]]
    return SaltMaster(lab.nodes[first["node"]], first["public"], STATE, pillar_root=STATE / "pillar")


def converge(federation, sites):
    step("salt-run state.orchestrate orch.evpn")
    started = time.monotonic()
    ret = federation["master"].run("state.orchestrate", "orch.evpn")
    steps = next(iter(ret.get("data", {}).values()), {})
    for state in sorted(steps.values(), key=lambda s: s.get("__run_num__", 0)):
        print(f"    {'ok  ' if state['result'] else 'FAIL'} {state['__id__']}: {state['comment'].splitlines()[0]}")
    if not steps or not all(s["result"] for s in steps.values()):
        raise SystemExit("orch.evpn failed: see above")
    return time.monotonic() - started


def run_dataplane(lab, federation, sites, new_sites=None):
    """Every node loads what was rendered for it; the new sites' nodes also get their VM."""
    for site in sites:
        node_id = SITES[site]["node"]
        rendered = federation["clusters"] / site / "nodes" / node_id / "etc"
        step(f"{node_id}: FRR and ifreload -a with what the SDN apply rendered ({rendered})")
        result = load(lab.nodes[node_id], rendered, SITES[site]["router_mac"])
        if result is not None and result.returncode != 0:
            print(result.stderr.strip())
        if site in (sites if new_sites is None else new_sites):
            vnet, address, gateway = SITES[site]["vm"]
            lab.vm(lab.nodes[node_id], f"vm-{site}", vnet, address, gateway, MTU)
            step(f"vm-{site}: {address} on {vnet}, gateway {gateway}, mtu {MTU}")


def wait_for_bgp(lab, sites, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(len(bgp_established(lab.nodes[SITES[s]["node"]])) == len(sites) - 1 for s in sites):
            return True
        time.sleep(0.5)
    return False


def announce_vms(lab, sites, timeout=30):
    """Each VM talks to its gateway, so that its node learns it and announces it (EVPN type-2),
    until every node has a route to every other site's VM."""
    for site in sites:
        subprocess.run(
            ["ip", "netns", "exec", f"{PREFIX}vm-{site}", "ping", "-c1", "-W1", SITES[site]["vm"][2]],
            capture_output=True,
            check=False,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        routes = {site: lab.nodes[SITES[site]["node"]].run("ip", "route").stdout for site in sites}
        if all(
            f"{SITES[other]['vm'][1].split('/')[0]} " in routes[site]
            for site in sites
            for other in sites
            if other != site
        ):
            return True
        time.sleep(0.2)
    return False


def vm_ping(source, target):
    args = ["ip", "netns", "exec", f"{PREFIX}vm-{source}", "ping", "-c", "3", "-i", "0.3", "-W", "2"]
    return subprocess.run([*args, SITES[target]["vm"][1].split("/")[0]], capture_output=True, text=True, check=False)


def up(sites):
    if (STATE / "lab" / "lab.json").exists():
        raise SystemExit(f"a lab is already running (state in {STATE}): make lab-down first")
    started = time.monotonic()
    STATE.mkdir(parents=True, exist_ok=True)
    pillar = lab_pillar(sites)
    lab = Lab(STATE / "lab", PREFIX).__enter__()
    try:
        step(f"namespaces, DNS, wireguard-go, salt-master and minions for {', '.join(sites)}")
        federation = start_federation(lab, STATE, federation_nodes(sites), pillar)
        built = time.monotonic() - started
        converged = converge(federation, sites)
        run_dataplane(lab, federation, sites)
    except BaseException:
        step("failed: tearing the lab down")
        lab.close()
        raise
    return prove(lab, sites, started, build=built, converge=converged)


def prove(lab, sites, started, **times):
    """Sessions, routes and pings across the sites; the status table; the times."""
    step("waiting for the BGP l2vpn evpn sessions and the VMs' routes")
    established = wait_for_bgp(lab, sites) and announce_vms(lab, sites)
    print(status_table(lab, sites))
    for source, target in zip(sites, sites[1:] + sites[:1], strict=True):
        proc = vm_ping(source, target)
        summary = [line for line in proc.stdout.splitlines() if "transmitted" in line]
        step(
            f"ping vm-{source} -> vm-{target} ({SITES[target]['vm'][1]}): "
            f"{summary[0] if summary else proc.stderr.strip()}"
        )
    parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in times.items())
    step(
        f"done in {time.monotonic() - started:.1f} s ({parts}); BGP and routes "
        f"{'established' if established else 'NOT established'}"
    )
    return 0 if established else 1


def add(site):
    """A new site in the running lab: its pillar file, its node, one orchestration."""
    lab = Lab.load(STATE / "lab")
    sites = recorded_sites(lab)
    if site in sites or site != "krk":
        raise SystemExit(f"add: the lab has {', '.join(sites)}; the site it can add is krk")
    started = time.monotonic()
    (STATE / "pillar" / "evpn" / "sites" / "krk.sls").write_text(yaml.safe_dump(KRK))
    step(f"pillar: {STATE / 'pillar' / 'evpn' / 'sites' / 'krk.sls'}")
    lab.set_dns({**lab.dns(), SITES[site]["name"]: SITES[site]["public"]})
    master = master_of(lab, sites)
    add_nodes(lab, STATE, federation_nodes([site]), master.address)
    sites = [*sites, site]
    master.wait_for(list(federation_nodes(sites)))
    master.salt("*", "saltutil.refresh_pillar", "wait=True")
    federation = {"master": master, "clusters": STATE / "clusters"}
    converged = converge(federation, sites)
    run_dataplane(lab, federation, sites, new_sites=[site])
    return prove(lab, sites, started, converge=converged)


def recorded_sites(lab):
    return [site for site, spec in SITES.items() if spec["node"] in lab.nodes]


def status_table(lab, sites):
    return master_of(lab, sites).run("evpn.status", out="txt")


def status():
    lab = Lab.load(STATE / "lab")
    print(status_table(lab, recorded_sites(lab)))
    return 0


def move(site):
    lab = Lab.load(STATE / "lab")
    node = lab.nodes[SITES[site]["node"]]
    current = node.run("ip", "-4", "-o", "addr", "show", "dev", "pub0").stdout.split()[3].split("/")[0]
    prefix = current.rsplit(".", 1)[0] + "."
    new_prefix, gateway = MOVED[prefix]
    address = new_prefix + current.rsplit(".", 1)[1]
    node.move(address, gateway)
    lab.set_dns({**lab.dns(), SITES[site]["name"]: address})
    step(f"{SITES[site]['node']}: public address {current} -> {address}, {SITES[site]['name']} updated")
    return 0


def down():
    if not (STATE / "lab" / "lab.json").exists():
        print(f"no lab recorded in {STATE}")
        shutil.rmtree(STATE, ignore_errors=True)
        return 0
    lab = Lab.load(STATE / "lab")
    lab.close()
    shutil.rmtree(STATE, ignore_errors=True)
    step("lab removed: processes killed by PID, mounts and namespaces gone")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "add", "down", "status", "move"])
    parser.add_argument("site", nargs="?", help="for move: roz, wro or krk; for add: krk")
    parser.add_argument("--sites", type=int, default=int(os.environ.get("SITES") or 2), choices=[2, 3])
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the lab makes network namespaces: run it as root")
    sites = list(SITES)[: args.sites]
    if args.command == "up":
        return up(sites)
    if args.command == "add":
        return add(args.site)
    if args.command == "move":
        if args.site not in SITES:
            raise SystemExit("move: name a site: roz, wro or krk")
        return move(args.site)
    return {"down": down, "status": status}[args.command]()


if __name__ == "__main__":
    sys.exit(main())
