"""
A federation's life in the lab (docs/operations.md sections 11, 14, 15), each measured by
lab/evpnlab.py as make does it, in a state folder and namespace prefix of its own (root):
make lab and make lab-add SITE=krk, then

- make lab-rotate NODE=pve-wro1: seconds from the command to every peer's handshake with the
  new key, pings lost between a roz guest and the wro guest (one every 0.1 s) and the slowest
  answer, BGP sessions of pve-wro1 that started over;
- make lab-reboot NODE=pve-wro1 MASTER=down DNS_AWAY=20: seconds from the boot's start to its
  guests reaching every other site;
- make lab-remove SITE=krk: seconds from the orchestration's start to nothing of krk left
  anywhere (every remaining cluster's files, wg show, FRR, the loaded firewall, the mine);

then make lab-down.
"""

import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "lab")]

import host  # noqa: E402

ENVIRON = {
    **os.environ,
    "EVPN_LAB_STATE": f"/tmp/evpn-life{os.getpid() % 100000}",
    "EVPN_LAB_PREFIX": f"lf{os.getpid() % 100000}-",
}


def evpnlab(*args):
    """lab/evpnlab.py ``args``; the ``result {...}`` it prints last, or None."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "lab" / "evpnlab.py"), *args],
        env=ENVIRON,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"evpnlab {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    results = [line.removeprefix("result ") for line in proc.stdout.splitlines() if line.startswith("result ")]
    return json.loads(results[-1]) if results else None


def main():
    if host.missing():
        raise SystemExit(f"bench/lifecycle.py {host.missing()}")
    try:
        evpnlab("up")
        evpnlab("add", "--site", "krk")
        rotated = evpnlab("rotate", "pve-wro1")
        rebooted = evpnlab("reboot", "pve-wro1", "--master-down", "--dns-away", "20")
        removed = evpnlab("remove", "--site", "krk")
    finally:
        evpnlab("down")
    print("A federation's life (default topology plus site krk)")
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
    print(f"make lab-remove SITE=krk: nothing of krk left anywhere {removed['removed_s']} s after the command")


if __name__ == "__main__":
    main()
