"""
From a WAN move to every peer re-pointed (docs/architecture.md, Targets: under 3 s with the beacon at a 1 s
interval), on the lab's default topology with its third site (wro behind a NAT router with a
dynamic WAN address; roz behind two routers; krk on a public address), converged by orch.evpn.
The ISP renumbers wro's router and the DNS record follows; the time runs from the DNS update until
every peer at another site has the new address as pve-wro1's live endpoint.

First with the beacons off: what WireGuard does alone. The moved side is the one that stays put
in this deployment: pve-wro1's own address does not change, only the router's. Its next packet
to each peer (a BGP keepalive over wg0 every 3 s, a persistent keepalive every 25 s) leaves with
the new source, and WireGuard roams the peer's endpoint to it on receipt. So this measures how
soon the moved node talks to each peer, not DNS; it would not help if the peers had to initiate
(a node whose tunnel was idle, or both ends moving). Then with the beacons on, five moves.
Needs root and the lab's packages (make packages).
"""

import argparse
import pathlib
import statistics
import sys
import tempfile
import time

import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "lab")]

import host  # noqa: E402
import topology  # noqa: E402
from federation_lab import lab_federation  # noqa: E402

MOVING = "pve-wro1"


def set_beacon(federation, enabled):
    """The beacon at a 1 s interval, or off; in the lab's pillar, where it is configured (Salt's
    beacons.disable does not reach beacons from pillar), refreshed on every node."""
    init = federation.pillar_root / "evpn" / "init.sls"
    text = init.read_text().replace("    - enabled: False\n", "")
    init.write_text(
        text.replace("    - interval: 1\n", "    - interval: 1\n" + ("" if enabled else "    - enabled: False\n"))
    )
    nodes = federation.built_nodes()
    refreshed = federation.master.salt("-L", ",".join(nodes), "saltutil.refresh_pillar", "wait=True")
    if set(refreshed) != set(nodes):
        raise SystemExit(f"the pillar refresh did not reach every node: {refreshed}")


def peers_follow(federation, key, address, timeout):
    """Seconds until every node of another site has ``address`` as the live endpoint of ``key``."""
    peers = [n for n in federation.built_nodes() if federation.plan.nodes()[n].site != "wro"]
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if all(
            f"{key}\t{address}:51820" in federation.lab.nodes[n].run("wg", "show", "wg0", "endpoints").stdout
            for n in peers
        ):
            return time.monotonic() - start
        time.sleep(0.02)
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--moves", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=40, help="seconds to wait for a move to be followed")
    args = parser.parse_args()
    if host.missing():
        raise SystemExit(f"bench/endpoints.py {host.missing()}")
    with tempfile.TemporaryDirectory() as tmp:
        extra = pathlib.Path(tmp) / "pillar"
        (extra / "evpn" / "sites").mkdir(parents=True)
        (extra / "evpn" / "sites" / "krk.sls").write_text(yaml.safe_dump(topology.site_pillar("krk")))
        with lab_federation(topology.DEFAULT_PILLAR, extra_pillar=extra, prefix="b") as federation:
            if not federation.converge(report=lambda line: None):
                raise SystemExit("orch.evpn failed")
            key = federation.lab.nodes[MOVING].run("wg", "show", "wg0", "public-key").stdout.strip()
            set_beacon(federation, enabled=False)
            _, address, _ = federation.renumber("wro")
            roaming = peers_follow(federation, key, address, args.timeout)
            set_beacon(federation, enabled=True)
            time.sleep(3)  # every beacon has its baseline
            followed = []
            for _ in range(args.moves):
                start = time.monotonic()
                _, address, _ = federation.renumber("wro")
                followed.append(peers_follow(federation, key, address, args.timeout))
                time.sleep(max(0.0, 3 - (time.monotonic() - start)))  # every beacon has the new answer

    def shown(seconds):
        return f"{seconds:.2f} s" if seconds is not None else f"not within {args.timeout:.0f} s"

    done = [s for s in followed if s is not None]
    print("WAN moves (default lab topology + krk, wireguard-go; wro's router renumbered, its DNS record follows)")
    print(
        f"beacon every 1 s + reactor: median {shown(statistics.median(done) if done else None)} "
        f"over {args.moves} moves ({', '.join(shown(s) for s in followed)}); target under 3 s"
    )
    print(f"beacons off, WireGuard roaming alone (the moved node's own packets): {shown(roaming)}")


if __name__ == "__main__":
    main()
