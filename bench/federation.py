"""
Time the federation model on a generated federation (default 100 sites x 3 nodes): for every
node, evpn.node + evpn.wireguard_peers + evpn.sdn of its site, as a state run computes them.
The design's target is under 10 ms per node (docs/architecture.md, Targets); the line printed at
the end still checks the 1 s this bench has used so far.
"""

import argparse
import pathlib
import statistics
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "_modules"), str(REPO / "tests"), str(REPO / "lab")]

import evpn  # noqa: E402
from support.federation import generated_federation  # noqa: E402

evpn.__opts__ = {"id": None}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--nodes-per-site", type=int, default=3)
    args = parser.parse_args()
    federation = generated_federation(args.sites, args.nodes_per_site)
    nodes = [(node_id, site) for site, s in federation["sites"].items() for node_id in s["nodes"]]

    timings = {"validate": [], "node": [], "wireguard_peers": [], "sdn": [], "per node": []}
    for node_id, site in nodes:
        evpn.__context__ = {}  # each node's run starts without the validation of another's
        start = time.perf_counter()
        t0 = time.perf_counter()
        evpn.validate(federation=federation)
        t1 = time.perf_counter()
        evpn.node(node_id, federation=federation)
        t2 = time.perf_counter()
        peers = evpn.wireguard_peers(node_id, federation=federation)
        t3 = time.perf_counter()
        evpn.sdn(site, federation=federation)
        t4 = time.perf_counter()
        timings["validate"].append(t1 - t0)
        timings["node"].append(t2 - t1)
        timings["wireguard_peers"].append(t3 - t2)
        timings["sdn"].append(t4 - t3)
        timings["per node"].append(t4 - start)
    assert len(peers) == len(nodes) - 1

    print(
        f"federation: {args.sites} sites x {args.nodes_per_site} nodes = {len(nodes)} nodes, "
        f"{len(peers)} WireGuard peers per node"
    )
    print(f"{'computation':<18}{'median ms':>12}{'max ms':>12}")
    for name, values in timings.items():
        print(f"{name:<18}{statistics.median(values) * 1000:>12.2f}{max(values) * 1000:>12.2f}")
    worst = max(timings["per node"])
    print(f"target: under 1000 ms per node; worst node: {worst * 1000:.2f} ms ({'met' if worst < 1 else 'MISSED'})")


if __name__ == "__main__":
    main()
