"""
The lab's own times (DESIGN.md section 8: a new site or node, pings everywhere, in under 2 minutes):
make lab on the default topology from nothing, then make lab-add NODE=pve-roz3, then
make lab-add SITE=krk, each proven by the ping matrix before it counts as done; then make lab-down.
Runs lab/evpnlab.py as make does, in a state folder and namespace prefix of its own. Root.
(The WAN move times are bench/endpoints.py's, on the same topology.)
"""

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
    return time.monotonic() - started, done.group(1) if done else ""


def main():
    if host.missing():
        raise SystemExit(f"bench/lab.py {host.missing()}")
    try:
        up = evpnlab("up")
        node = evpnlab("add", "--node", "pve-roz3")
        site = evpnlab("add", "--site", "krk")
    finally:
        down, _ = evpnlab("down")
    print("The lab (default topology; every guest pings every other and www before a step counts as done)")
    print(f"make lab, from nothing: {up[0]:.1f} s ({up[1]})")
    print(f"make lab-add NODE=pve-roz3: {node[0]:.1f} s ({node[1]}); target under 2 minutes")
    print(f"make lab-add SITE=krk: {site[0]:.1f} s ({site[1]}); target under 2 minutes")
    print(f"make lab-down: {down:.1f} s")


if __name__ == "__main__":
    main()
