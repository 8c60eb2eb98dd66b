"""
The lab's own times (DESIGN.md section 8: a new site or node, pings everywhere, in under 2 minutes):
make lab on the default topology from nothing, then make lab-add NODE=pve-roz3, then
make lab-add SITE=krk, each proven by the ping matrix before it counts as done. Then a
federation's life (docs/operations.md sections 11, 14, 15):

- make lab-rotate NODE=pve-wro1: seconds from the command to every peer's handshake with the
  new key, pings lost between a roz guest and the wro guest (one every 0.1 s) and the slowest
  answer, BGP sessions of pve-wro1 that started over;
- make lab-reboot NODE=pve-wro1 MASTER=down DNS_AWAY=20: seconds from the boot's start to its
  guests reaching every other site;
- make lab-remove SITE=krk: seconds to krk removed, then checked: nothing of it left anywhere
  (every remaining cluster's files, wg show, FRR, the loaded firewall, the mine);

then make lab-down. Runs lab/evpnlab.py as make does, in a state folder and namespace prefix of
its own. Root. (The WAN move times are bench/endpoints.py's, on the same topology.)
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "lab")]

import host  # noqa: E402

ENVIRON = {
    **os.environ,
    "EVPN_LAB_STATE": f"/tmp/evpn-bench{os.getpid() % 100000}",
    "EVPN_LAB_PREFIX": f"lb{os.getpid() % 100000}-",
}


def evpnlab(*args):
    """lab/evpnlab.py ``args``: (seconds, what its last "done (...)" line says, the ``result
    {...}`` it prints last or None)."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(REPO / "lab" / "evpnlab.py"), *args],
        env=ENVIRON,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"evpnlab {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    done = re.search(r"done \((.*)\)", proc.stdout)
    results = [line.removeprefix("result ") for line in proc.stdout.splitlines() if line.startswith("result ")]
    return time.monotonic() - started, done.group(1) if done else "", json.loads(results[-1]) if results else None


def main():
    if host.missing():
        raise SystemExit(f"bench/lab.py {host.missing()}")
    try:
        up = evpnlab("up")
        node = evpnlab("add", "--node", "pve-roz3")
        site = evpnlab("add", "--site", "krk")
        *_, rotated = evpnlab("rotate", "pve-wro1")
        *_, rebooted = evpnlab("reboot", "pve-wro1", "--master-down", "--dns-away", "20")
        *_, removed = evpnlab("remove", "--site", "krk")
    finally:
        down, *_ = evpnlab("down")
    print("The lab (default topology; every guest pings every other and www before a step counts as done)")
    print(f"make lab, from nothing: {up[0]:.1f} s ({up[1]})")
    print(f"make lab-add NODE=pve-roz3: {node[0]:.1f} s ({node[1]}); target under 2 minutes")
    print(f"make lab-add SITE=krk: {site[0]:.1f} s ({site[1]}); target under 2 minutes")
    print(
        f"make lab-rotate NODE=pve-wro1: every peer handshaked with the new key {rotated['handshaked_s']} s after "
        f"the command (orchestration {rotated['orchestration_s']} s); {rotated['pings_lost']} of "
        f"{rotated['pings_sent']} pings lost, slowest answer {rotated['slowest_answer_s']:.2f} s; "
        f"BGP sessions reset: {len(rotated['bgp_resets'])}"
    )
    print(
        f"make lab-reboot NODE=pve-wro1 MASTER=down DNS_AWAY=20: guests reach every site {rebooted['recovered_s']} s "
        f"after the boot started (wg0 up {rebooted['wg0 up']} s, BGP {rebooted['every BGP session Established']} s)"
    )
    print(f"make lab-remove SITE=krk: removed in {removed['removed_s']} s, then nothing of krk found anywhere")
    print(f"make lab-down: {down:.1f} s")


if __name__ == "__main__":
    main()
