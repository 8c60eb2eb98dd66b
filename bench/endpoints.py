"""
From a DNS update to every peer re-pointed (docs/architecture.md, Targets: under 3 s with the
beacon at a 1 s interval). Three nodes in lab nodes with master, reactor and minions (lab/federation_lab.py),
converged by orch.evpn. First, with the beacons off, pve-wro1 moves to 198.51.100.12 and its
DNS record follows: what WireGuard's roaming and keepalive alone give. Then, beacons on, it
moves back and forth; the time runs from the DNS update until every peer's live endpoint for it
is the new address. Needs root, wireguard-go, wireguard-tools, frr (the packages state) and dnsmasq.
"""

import argparse
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "lab")]

import yaml  # noqa: E402
from sites import KRK  # noqa: E402

from federation_lab import lab_federation  # noqa: E402

NODES = {
    "pve-roz1": ("roz", "203.0.113.11", "roz.example.net", "10.1.0.1"),
    "pve-wro1": ("wro", "203.0.113.12", "wro.dyndns.example.org", "10.2.0.1"),
    "pve-krk1": ("krk", "203.0.113.13", "krk.example.net", "10.3.0.1"),
}
MOVING, NAME = "pve-wro1", "wro.dyndns.example.org"
ADDRESSES = [("198.51.100.12", "198.51.100.1"), ("203.0.113.12", "203.0.113.1")]


def make_pillar(folder):
    shutil.copytree(REPO / "pillar", folder)
    (folder / "evpn" / "sites" / "krk.sls").write_text(yaml.safe_dump(KRK))
    set_beacon(folder, enabled=True)


def set_beacon(pillar, enabled, master=None, minions=tuple(NODES)):
    """The beacon at a 1 s interval, or off; in the pillar, where it is configured (Salt's
    beacons.disable does not reach beacons from pillar), refreshed on ``minions``."""
    init = pillar / "evpn" / "init.sls"
    text = init.read_text().replace("    - enabled: False\n", "")
    text = text.replace("- interval: 5", "- interval: 1").replace(
        "    - interval: 1\n", "    - interval: 1\n" + ("" if enabled else "    - enabled: False\n")
    )
    init.write_text(text)
    if master is not None:
        refreshed = master.salt("-L", ",".join(minions), "saltutil.refresh_pillar", "wait=True")
        if set(refreshed) != set(minions):
            raise SystemExit(f"the pillar refresh did not reach every node: {refreshed}")


def peers_follow(lab, key, address, timeout):
    """Seconds until every other node's live endpoint for ``key`` is ``address``, or None."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if all(
            f"{key}\t{address}:51820" in node.run("wg", "show", "wg0", "endpoints").stdout
            for minion_id, node in lab["nodes"].items()
            if minion_id != MOVING
        ):
            return time.monotonic() - start
        time.sleep(0.02)
    return None


def move(lab, index):
    address, gateway = ADDRESSES[index % 2]
    lab["nodes"][MOVING].move(address, gateway)
    records = {name: public for _, public, name, _ in NODES.values()}
    lab["lab"].set_dns({**records, NAME: address})
    return address


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--moves", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=40, help="seconds to wait for a move to be followed")
    args = parser.parse_args()
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("wireguard-go", "wg", "dnsmasq", "vtysh")):
        print(
            "bench/endpoints.py: skipped, it needs root, wireguard-go, wireguard-tools, frr and dnsmasq (see .ci/run)"
        )
        return
    with tempfile.TemporaryDirectory() as tmp:
        pillar = pathlib.Path(tmp) / "pillar"
        make_pillar(pillar)
        with lab_federation(NODES, pillar, prefix="b") as lab:
            steps = next(iter(lab["master"].run("state.orchestrate", "orch.evpn")["data"].values()))
            if not all(s["result"] is True for s in steps.values()):
                raise SystemExit(f"orch.evpn failed: { {k: s['comment'] for k, s in steps.items()} }")
            key = lab["nodes"][MOVING].run("wg", "show", "wg0", "public-key").stdout.strip()
            set_beacon(pillar, enabled=False, master=lab["master"])
            offset = lab["events"].stat().st_size
            roaming = peers_follow(lab, key, move(lab, 0), args.timeout)
            time.sleep(2)
            with open(lab["events"], "rb") as log:
                log.seek(offset)
                beacon_events = log.read().count(b"evpn/endpoint/changed\t")
            # The moved node's minion has lost its connection to the master for now; the peers
            # are the ones that must follow.
            set_beacon(pillar, enabled=True, master=lab["master"], minions=[m for m in NODES if m != MOVING])
            time.sleep(3)  # the beacons see the new answer, the peers follow it
            followed = []
            for index in range(1, args.moves + 1):
                start = time.monotonic()
                followed.append(peers_follow(lab, key, move(lab, index), args.timeout))
                time.sleep(max(0.0, 3 - (time.monotonic() - start)))  # every beacon has the new answer

    def shown(seconds):
        return f"{seconds:.2f} s" if seconds is not None else f"not within {args.timeout:.0f} s"

    done = [s for s in followed if s is not None]
    print("Endpoint moves (3 nodes in lab nodes, wireguard-go; pve-wro1's address and DNS record change)")
    print(
        f"beacon every 1 s + reactor: median {shown(statistics.median(done) if done else None)} "
        f"over {args.moves} moves ({', '.join(shown(s) for s in followed)}); target under 3 s"
    )
    print(
        f"WireGuard roaming and keepalive 25 s alone (beacons off, {beacon_events} change events seen): "
        f"{shown(roaming)}"
    )


if __name__ == "__main__":
    main()
