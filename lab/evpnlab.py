"""
The local federation in network namespaces: the make lab targets.

    python lab/evpnlab.py up [--pillar DIR] [--topology FILE]   # make lab [PILLAR=] [TOPOLOGY=]
    python lab/evpnlab.py add --node ID | --site SITE           # make lab-add NODE= / SITE=
    python lab/evpnlab.py move SITE [--master-down]             # make lab-move SITE= [MASTER=down]
    python lab/evpnlab.py remove --node ID | --site SITE        # make lab-remove NODE= / SITE=
    python lab/evpnlab.py rotate NODE                           # make lab-rotate NODE=
    python lab/evpnlab.py reboot NODE [--master-down] [--dns-away S]  # make lab-reboot NODE= [MASTER=down] [DNS_AWAY=]
    python lab/evpnlab.py status                                # make lab-status
    python lab/evpnlab.py shell NAME                            # make lab-shell NODE=
    python lab/evpnlab.py down                                  # make lab-down

``up`` reads the pillar (default: lab/pillar, the example sites roz and wro) with the topology (default:
lab/topology.yaml; lab/topology.py says what it holds), refuses what the lab cannot emulate, then
builds the federation (lab/federation_lab.py), converges it with ``salt-run state.orchestrate
orch.evpn``, loads what each cluster's SDN apply rendered for each node, starts the guests and
proves it: a ping from every guest to every other guest and to the internet host ``www`` (with the
source address ``www`` saw), then ``salt-run evpn.status``. The lab's state (its pillar copy, the
emulated clusters, Salt's folders, ``lab/lab.json``) lives in /tmp/evpn-lab (``EVPN_LAB_STATE``);
every namespace's name starts with ``evpnlab-`` (``EVPN_LAB_PREFIX``).
"""

import argparse
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import topology
from dataplane import bgp_established, bgp_sessions
from federation_lab import Federation, lab_pillar
from netns import UPLINK, Lab

REPO = pathlib.Path(__file__).resolve().parents[1]
STATE = pathlib.Path(os.environ.get("EVPN_LAB_STATE", "/tmp/evpn-lab"))  # short: Salt's sockets live here
PREFIX = os.environ.get("EVPN_LAB_PREFIX", "evpnlab-")  # of every namespace the lab makes
STARTED = time.monotonic()
NOT_EMULATED = "not emulated (no VRF: lab/README.md)"
NO_SNAT = "no SNAT on its subnet: nothing routes it back"


def step(message):
    print(f"[{time.monotonic() - STARTED:6.1f} s] {message}", flush=True)


def report(message):
    print(f"           {message}", flush=True)


def up(pillar_source, topology_file):
    if (STATE / "lab" / "lab.json").exists():
        raise SystemExit(f"a lab is already running (state in {STATE}): make lab-down first")
    STATE.mkdir(parents=True, exist_ok=True)
    try:
        pillar = lab_pillar(pillar_source, STATE / "pillar")
        shutil.copy(topology_file, STATE / "topology.yaml")
        plan = topology.load(STATE / "topology.yaml", topology.render_pillar(pillar))
    except topology.TopologyError as err:
        shutil.rmtree(STATE, ignore_errors=True)
        raise SystemExit(str(err)) from None
    step(f"pillar {pillar_source} and topology {topology_file}: sites {', '.join(plan.sites)}")
    lab = Lab(STATE / "lab", PREFIX, dns_server=plan.internet["dns"]).__enter__()
    try:
        federation = Federation(lab, STATE, STATE / "topology.yaml", pillar)
        step("namespaces, routers, DNS, www, salt-master, nodes with wireguard-go and a salt-minion each")
        federation.build()
        built = time.monotonic() - STARTED
        nodes = federation.built_nodes()
        converged = converge_and_load(federation, nodes, new_nodes=nodes)
    except BaseException:
        step("failed: tearing the lab down")
        lab.close()
        shutil.rmtree(STATE, ignore_errors=True)
        raise
    return prove(federation, build=built, converge=converged)


def converge_and_load(federation, nodes, new_nodes):
    """orch.evpn, then every node loads what was rendered for it, the new nodes' guests start.
    Returns the seconds the orchestration took."""
    step("salt-run state.orchestrate orch.evpn")
    started = time.monotonic()
    if not federation.converge(report=report, progress=lambda line: step(f"orch.evpn: {line}")):
        raise SystemExit("orch.evpn failed: see above")
    seconds = time.monotonic() - started
    step(f"converged in {seconds:.1f} s; each node loads what its cluster's SDN apply rendered for it")
    federation.load_dataplane(nodes, report=report)
    step("guests")
    federation.start_guests(new_nodes, report=report)
    return seconds


def prove(federation, **times):
    """Sessions, then every guest to every other and to www; the status table; the times.
    Returns the exit code: 0 when everything that the lab emulates passed."""
    lab, plan = federation.lab, federation.plan
    nodes = federation.built_nodes()
    step("waiting for every BGP l2vpn evpn session to be Established")
    established = wait(lambda: all(len(bgp_established(lab.nodes[n])) == len(nodes) - 1 for n in nodes), 90)
    if not established:
        report("BGP sessions NOT all Established: " + str({n: bgp_established(lab.nodes[n]) for n in nodes}))
    guests = federation.running_guests()
    step(f"ping matrix: {len(guests)} guests to each other and to www ({plan.internet['www']})")
    exits = [g for g in guests if reaches_www(plan, g)]
    reached = ping_matrix(lab, guests, exits, plan.internet["www"])
    seen = {g.namespace: seen_by_www(lab, g, plan.internet["www"]) for g in guests}
    print(matrix_table(plan, federation, guests, reached, seen), flush=True)
    step("salt-run evpn.status")
    print(federation.master.run("evpn.status", out=None), flush=True)
    failures = [f"{a} -> {b}" for (a, b), ok in reached.items() if not ok and b != "www"]
    failures += [
        f"{g.namespace} -> www: saw {seen[g.namespace]}, expected {public_address(federation, g)}"
        for g in guests
        if reaches_www(plan, g) and seen[g.namespace] != public_address(federation, g)
    ]
    parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in times.items())
    step(
        f"done ({parts}); {'every check passed' if established and not failures else 'FAILED: ' + '; '.join(failures)}"
    )
    return 0 if established and not failures else 1


def reaches_www(plan, guest):
    """A guest reaches the internet through its node's SNAT: on an exit node, in a subnet with
    snat (in the lab only there: lab/dataplane.py)."""
    return plan.nodes()[guest.node].exit_node and guest.snat


def wait(condition, timeout, interval=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False


def ping_matrix(lab, guests, exits, www, timeout=45):
    """{(guest namespace, target namespace or "www"): reached}, each pair tried (in parallel,
    one packet a round) until it answers or ``timeout`` passes: EVPN learns a guest's MAC and
    address from its first packets. Only guests on exit nodes (``exits``) are expected to reach
    www; the others get one round."""
    targets = [(g.namespace, g.ip) for g in guests] + [("www", www)]
    pending = {(g.namespace, name): address for g in guests for name, address in targets if name != g.namespace}
    reached = dict.fromkeys(pending, False)
    once = {(g.namespace, "www") for g in guests if g not in exits}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        probes = {
            pair: subprocess.Popen(
                ["ip", "netns", "exec", f"{lab.prefix}{pair[0]}", "ping", "-c1", "-W1", address],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for pair, address in pending.items()
        }
        for pair, probe in probes.items():
            if probe.wait() == 0:
                reached[pair] = True
            if reached[pair] or pair in once:
                del pending[pair]
    return reached


def seen_by_www(lab, guest, www):
    """The source address www saw for a TCP connection from ``guest``, or None."""
    proc = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            f"{lab.prefix}{guest.namespace}",
            sys.executable,
            str(REPO / "lab" / "answer.py"),
            "--ask",
            www,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return proc.stdout.strip() or None


def public_address(federation, guest):
    """What the internet sees of a guest on an exit node: its site's public address."""
    site = federation.plan.sites[federation.plan.nodes()[guest.node].site]
    if site.routers:
        return federation.lab.routers[site.routers[0].namespace].wan()
    return federation.plan.nodes()[guest.node].address


def matrix_table(plan, federation, guests, reached, seen):
    names = [g.namespace for g in guests]
    header = ["from \\ to", *[g.ip for g in guests], "www (source seen)"]
    rows = [header]
    for guest in guests:
        cells = [f"{guest.ip} ({guest.node})"]
        cells += [
            "-" if name == guest.namespace else ("ok" if reached[guest.namespace, name] else "FAIL") for name in names
        ]
        if seen[guest.namespace]:
            www = f"ok ({seen[guest.namespace]})"
        elif reaches_www(plan, guest):
            www = "FAIL"
        else:
            www = NOT_EMULATED if guest.snat else NO_SNAT
        rows.append([*cells, www])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def add(node_id, site):
    federation = Federation.load(STATE)
    try:
        if site:
            step(f"site {site}: its pillar file into the lab's pillar copy, its routers and nodes")
            written = federation.add_site(site)
        else:
            step(f"node {node_id}: its entry into its site's file of the lab's pillar copy, the node")
            written = federation.add_node(node_id)
    except (topology.TopologyError, KeyError) as err:
        raise SystemExit(f"add: {err}") from None
    report(f"pillar: {written}")
    nodes = federation.built_nodes()
    new = [site_node for site_node in nodes if site_node == node_id or federation.plan.nodes()[site_node].site == site]
    converged = converge_and_load(federation, nodes, new_nodes=new)
    return prove(federation, converge=converged)


def move(site, master_down=False):
    federation = Federation.load(STATE)
    plan, lab = federation.plan, federation.lab
    if site not in plan.sites or not plan.sites[site].routers or not plan.sites[site].routers[0].dynamic:
        dynamic = [name for name, s in plan.sites.items() if s.routers and s.routers[0].dynamic]
        raise SystemExit(f"move: {site!r} has no dynamic WAN address in the topology (these do: {dynamic})")
    moved = [n for n in plan.nodes().values() if n.site == site and n.id in lab.nodes]
    keys = {n.id: public_key(lab.nodes[n.id]) for n in moved}
    peers = {n: lab.nodes[n] for n in federation.built_nodes() if plan.nodes()[n].site != site}
    if master_down:
        federation.stop_master()
        step("salt-master stopped: each node's beacon re-points its own peers")
    old, new, names = federation.renumber(site)
    changed = time.monotonic()
    step(f"{site}: the ISP renumbered the WAN address {old} -> {new}; DNS {', '.join(names)} -> {new}")
    for peer, node in peers.items():
        expected = {f"{keys[n.id]}\t{new}:{n.public_port}" for n in moved}
        if wait(lambda node=node, expected=expected: expected <= endpoints(node), 60, interval=0.05):
            report(f"{peer}: re-pointed {time.monotonic() - changed:.2f} s after the DNS change")
        else:
            report(f"{peer}: NOT re-pointed within 60 s")
    last = time.monotonic() - changed
    step(f"every peer re-pointed {last:.2f} s after the DNS change; waiting for the guests' traffic")
    guests = federation.running_guests()
    pairs = [
        (a, b)
        for a in guests
        for b in guests
        if plan.nodes()[a.node].site != site and plan.nodes()[b.node].site == site
    ]
    recovered = wait(lambda: all(guest_ping(lab, a, b) for a, b in pairs), 60, interval=0.2)
    outcome = "back" if recovered else "NOT back"
    step(f"traffic to {site}'s guests {outcome} {time.monotonic() - changed:.2f} s after the DNS change")
    if master_down:
        federation.start_master()
        step("salt-master started again; every minion answers it")
    return 0 if recovered else 1


class Pings:
    """A guest pinging another every 0.1 s while the block runs (a lab process, recorded);
    ``sent``, ``lost`` and ``slowest`` (seconds) afterwards, from ping's summary."""

    def __init__(self, lab, source, target):
        self.lab, self.source, self.target = lab, source, target
        self.log = lab.state / f"pings-{source.namespace}.log"
        self.sent = self.lost = None

    def __enter__(self):
        self.log.unlink(missing_ok=True)
        namespace = f"{self.lab.prefix}{self.source.namespace}"
        argv = ["ping", "-q", "-i", "0.1", "-W", "1", "-w", "900", self.target.ip]
        self.process = self.lab.spawn(namespace, *argv, label=f"{namespace}: pings {self.target.ip}", log_path=self.log)
        return self

    def __exit__(self, *exc):
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=10)
        text = self.log.read_text()
        summary = re.search(r"(\d+) packets transmitted, (\d+) received", text)
        self.sent, received = (int(n) for n in summary.groups())
        self.lost = self.sent - received
        rtt = re.search(r"rtt min/avg/max/mdev = [\d.]+/[\d.]+/([\d.]+)/", text)
        self.slowest = float(rtt.group(1)) / 1000 if rtt else None

    def __str__(self):
        return (
            f"{self.lost} of {self.sent} pings lost ({self.lost * 0.1:.1f} s) from {self.source.ip} to "
            f"{self.target.ip}; the slowest answer took {self.slowest:.2f} s"
            " (WireGuard holds back what waits for a handshake)"
        )


def rotate(node_id):
    """orch.rotate_key for one node while a guest of another site pings one of the node's every
    0.1 s; prints the seconds from the command to every peer's handshake with the new key, the
    pings lost, the node's BGP sessions whose uptime started over."""
    federation = Federation.load(STATE)
    plan, lab = federation.plan, federation.lab
    if node_id not in federation.built_nodes():
        raise SystemExit(f"rotate: {node_id!r} is not a node of the lab ({', '.join(federation.built_nodes())})")
    node = lab.nodes[node_id]
    peers = [lab.nodes[n] for n in federation.built_nodes() if n != node_id]
    guests = federation.running_guests()
    target = next(g for g in guests if g.node == node_id)
    source = next(g for g in guests if plan.nodes()[g.node].site != plan.nodes()[node_id].site)
    old_key, sessions_before = public_key(node), bgp_sessions(node)
    handshaked = {}

    def watch():
        while not handshaked:
            key = public_key(node)
            if key != old_key and all(handshake_with(peer, key) for peer in peers):
                handshaked["seconds"] = time.monotonic() - started
            time.sleep(0.05)

    with Pings(lab, source, target) as pings:
        step(f'salt-run state.orchestrate orch.rotate_key pillar=\'{{"nodes": ["{node_id}"]}}\'')
        started = time.monotonic()
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        ret = federation.master.run(
            "state.orchestrate", "orch.rotate_key", f"pillar={json.dumps({'nodes': [node_id]})}"
        )
        seconds = time.monotonic() - started
        watcher.join(timeout=30)
        time.sleep(1)  # a ping sent just before the end gets its answer
    steps = next(iter(ret.get("data", {}).values()), {})
    failed = (
        [f"{s['__id__']}: {s['comment']}" for s in steps.values() if not s["result"]]
        if isinstance(steps, dict)
        else [str(steps)]
    )
    resets = sorted(peer for peer, epoch in bgp_sessions(node).items() if epoch > sessions_before.get(peer, 0) + 2)
    resets += sorted(set(sessions_before) - set(bgp_sessions(node)))
    result = {
        "orchestration_s": round(seconds, 1),
        "handshaked_s": round(handshaked["seconds"], 2) if handshaked else None,
        "pings_sent": pings.sent,
        "pings_lost": pings.lost,
        "slowest_answer_s": pings.slowest,
        "bgp_resets": resets,
        "failed": failed,
    }
    report(
        f"orchestration {seconds:.1f} s; every peer handshaked with the new key "
        + (f"{handshaked['seconds']:.2f} s after the command" if handshaked else "NOT within 30 s of its end")
    )
    report(str(pings))
    report(f"BGP sessions of {node_id} that started over: {', '.join(resets) or 'none'}")
    for failure in failed:
        report(f"FAIL {failure}")
    print(f"result {json.dumps(result)}", flush=True)
    return 0 if handshaked and not resets and not failed else 1


def handshake_with(node, key):
    """Whether ``node`` has a peer ``key`` with a handshake."""
    for line in node.run("wg", "show", "wg0", "latest-handshakes").stdout.splitlines():
        peer, _, when = line.partition("\t")
        if peer == key:
            return when.strip() not in ("", "0")
    return False


def public_key(node):
    return node.run("wg", "show", "wg0", "public-key", check=False).stdout.strip()


def reboot(node_id, master_down, dns_away):
    """Power-cycle a node (lab/federation_lab.py: power_off, boot), with the salt-master stopped
    first (``master_down``) and its DNS server unreachable for the first ``dns_away`` seconds of
    its boot; prints the seconds from the boot's start to wg0 up, every peer's handshake, every
    BGP session Established and its guests reaching a guest at every other site. The master is
    started again afterwards, once DNS is back."""
    federation = Federation.load(STATE)
    plan, lab = federation.plan, federation.lab
    if node_id not in federation.built_nodes():
        raise SystemExit(f"reboot: {node_id!r} is not a node of the lab ({', '.join(federation.built_nodes())})")
    node = lab.nodes[node_id]
    others = [n for n in federation.built_nodes() if n != node_id]
    if master_down:
        federation.stop_master()
        step("salt-master stopped")
    guests = federation.power_off(node_id)
    step(f"{node_id}: powered off (programs and guests stopped, links but {UPLINK} gone, /run emptied)")
    dns_back = threading.Timer(dns_away, lambda: node.run("ip", "route", "del", "blackhole", lab.dns_server))
    if dns_away:
        node.run("ip", "route", "add", "blackhole", lab.dns_server)
        dns_back.start()
    started = time.monotonic()
    step(f"{node_id}: boot" + (f", DNS unreachable for {dns_away} s" if dns_away else ""))
    wg_quick = federation.boot(node_id, guests)
    report(f"wg-quick up wg0: {'ok' if wg_quick.returncode == 0 else wg_quick.stderr.strip()}")
    times = {}
    remote = [g for g in federation.running_guests() if plan.nodes()[g.node].site != plan.nodes()[node_id].site]
    checks = {
        "wg0 up": lambda: node.run("ip", "link", "show", "wg0", check=False).returncode == 0,
        "every peer handshaked": lambda: all(handshake_with(node, public_key(lab.nodes[n])) for n in others),
        "every BGP session Established": lambda: len(bgp_established(node)) == len(others),
        "its guests reach every other site": lambda: all(guest_ping(lab, g, r) for g in guests for r in remote),
    }
    for name, check in checks.items():
        if wait(check, 120 - (time.monotonic() - started), interval=0.2):
            times[name] = time.monotonic() - started
            report(f"{name}: {times[name]:.1f} s after the boot started")
        else:
            report(f"{name}: NOT within 120 s")
            break
    recovered = len(times) == len(checks)
    if dns_away:
        dns_back.join()
        step(f"{node_id}: DNS reachable again")
    if master_down:
        step("salt-master started again")
        federation.start_master()
        step("every minion answers the master again")
    result = {
        "recovered_s": round(max(times.values()), 1) if recovered else None,
        **{k: round(v, 1) for k, v in times.items()},
    }
    print(f"result {json.dumps(result)}", flush=True)
    return 0 if recovered and wg_quick.returncode == 0 else 1


def remove(node_id, site):
    """A node or a site out of the lab's pillar, then the orchestration of docs/operations.md
    naming it; prints the seconds to the orchestration's end (with FRR, the network and the
    firewall reloaded after it) and whether anything that remains still mentions the removed
    nodes' WireGuard addresses or keys."""
    federation = Federation.load(STATE)
    known = federation.built_nodes()
    if (site or node_id) not in ({federation.plan.nodes()[n].site for n in known} if site else known):
        raise SystemExit(f"remove: {site or node_id!r} is not a {'site' if site else 'node'} of the lab")
    leaving = [n for n in known if n == node_id or federation.plan.nodes()[n].site == site]
    needles = [federation.plan.nodes()[n].wireguard for n in leaving]
    needles += [public_key(federation.lab.nodes[n]) for n in leaving]
    removed = federation.take_out(node_id, site)
    pillar = json.dumps({"removed": removed})
    step(f"{', '.join(removed)} out of the pillar; salt-run state.orchestrate orch.evpn pillar='{pillar}'")
    started = time.monotonic()
    steps = federation.remove(removed)
    seconds = time.monotonic() - started
    failed = [f"{i}: {s['comment']}" for i, s in steps.items() if not s["result"]]
    left = federation.mentions(needles)
    for where, line in left:
        report(f"still mentioned: {where}: {line.strip()}")
    for failure in failed:
        report(f"FAIL {failure}")
    step(f"removed in {seconds:.1f} s; " + ("nothing left anywhere" if not left else f"{len(left)} mentions left"))
    print(f"result {json.dumps({'removed_s': round(seconds, 1), 'mentions_left': len(left), 'failed': failed})}")
    return 0 if not left and not failed else 1


def endpoints(node):
    return set(node.run("wg", "show", "wg0", "endpoints").stdout.splitlines())


def guest_ping(lab, source, target):
    return (
        subprocess.run(
            ["ip", "netns", "exec", f"{lab.prefix}{source.namespace}", "ping", "-c1", "-W1", target.ip],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )


def status():
    federation = Federation.load(STATE)
    print(federation.master.run("evpn.status", out=None))
    return 0


def shell(name):
    lab = Lab.load(STATE / "lab")
    if name in lab.nodes:
        os.execvp("nsenter", lab.nodes[name].command("bash", "-i"))
    namespace = name if name in lab.hosts else f"{lab.prefix}{name}"
    if namespace not in lab.hosts:
        known = sorted(lab.nodes) + sorted(ns.removeprefix(lab.prefix) for ns in lab.hosts if ns not in lab.nodes)
        raise SystemExit(f"shell: no {name!r} in the lab (nodes and namespaces: {', '.join(known)})")
    os.execvp("ip", ["ip", "netns", "exec", namespace, "bash", "-i"])


def down():
    if not (STATE / "lab" / "lab.json").exists():
        print(f"no lab recorded in {STATE}")
        shutil.rmtree(STATE, ignore_errors=True)
        return 0
    Lab.load(STATE / "lab").close()
    shutil.rmtree(STATE, ignore_errors=True)
    step("lab removed: processes killed by PID, mounts and namespaces gone")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="build, converge and prove the federation")
    up_parser.add_argument(
        "--pillar", type=pathlib.Path, default=topology.DEFAULT_PILLAR, help="a pillar tree (top.sls, evpn/...)"
    )
    up_parser.add_argument("--topology", type=pathlib.Path, default=topology.DEFAULT_TOPOLOGY)
    add_parser = commands.add_parser("add", help="a node or a site of the topology that the lab does not have yet")
    which = add_parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--node")
    which.add_argument("--site")
    move_parser = commands.add_parser("move", help="the ISP renumbers a site's dynamic WAN address")
    move_parser.add_argument("site")
    move_parser.add_argument("--master-down", action="store_true", help="with the salt-master stopped")
    remove_parser = commands.add_parser("remove", help="a node or a site out of the pillar, then orch.evpn naming it")
    which_removed = remove_parser.add_mutually_exclusive_group(required=True)
    which_removed.add_argument("--node")
    which_removed.add_argument("--site")
    rotate_parser = commands.add_parser("rotate", help="a node's new WireGuard key (orch.rotate_key), measured")
    rotate_parser.add_argument("node")
    reboot_parser = commands.add_parser("reboot", help="power-cycle a node, measured")
    reboot_parser.add_argument("node")
    reboot_parser.add_argument("--master-down", action="store_true", help="with the salt-master stopped")
    reboot_parser.add_argument(
        "--dns-away", type=int, default=0, metavar="SECONDS", help="no DNS for the boot's first seconds"
    )
    commands.add_parser("status", help="salt-run evpn.status")
    commands.add_parser("shell", help="a shell inside a node (or any lab namespace)").add_argument("name")
    commands.add_parser("down", help="tear everything down")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the lab makes network namespaces: run it as root")
    if args.command == "up":
        return up(args.pillar.resolve(), args.topology.resolve())
    if args.command == "add":
        return add(args.node, args.site)
    if args.command == "move":
        return move(args.site, args.master_down)
    if args.command == "remove":
        return remove(args.node, args.site)
    if args.command == "rotate":
        return rotate(args.node)
    if args.command == "reboot":
        return reboot(args.node, args.master_down, args.dns_away)
    if args.command == "shell":
        return shell(args.name)
    return {"down": down, "status": status}[args.command]()


if __name__ == "__main__":
    sys.exit(main())
