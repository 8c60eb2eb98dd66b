"""
The lab's own times (DESIGN.md section 8: a new site, cross-site ping, in under 2 minutes; the
original deployment's "success" was under 2 hours): build and converge two sites from nothing,
then add a third with one pillar file and one command, each proven by VM pings; then tear down.
Runs lab/evpnlab.py as make lab does, in a state folder and namespace prefix of its own. Root.
"""

import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
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
    done = re.search(r"done in .*", proc.stdout)
    return time.monotonic() - started, done.group(0) if done else ""


def main():
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("wireguard-go", "vtysh", "dnsmasq", "ifreload")):
        print("bench/lab.py: skipped, it needs root and the lab's packages (make lab installs them)")
        return
    try:
        up, up_detail = evpnlab("up")
        added, add_detail = evpnlab("add", "krk")
    finally:
        down, _ = evpnlab("down")
    print("The lab (2 sites, then a third; VMs ping across sites before a step counts as done)")
    print(f"make lab, from nothing: {up:.1f} s ({up_detail})")
    print(f"add a site (one pillar file, one command): {added:.1f} s ({add_detail}); target under 2 minutes")
    print(f"make lab-down: {down:.1f} s")


if __name__ == "__main__":
    main()
