"""
The firewall daemon of a lab node: what pve-firewall and proxmox-firewall do on a PVE node, as a
loop run inside the node (``Node.spawn``). Whenever the cluster's ``firewall/cluster.fw`` or the
node's ``host.fw`` changes, and every ``--every`` seconds anyway (pve-firewall's timer is 10 s,
proxmox-firewall's 5 s), it asks the emulator's compiler what the node loads now
(``lab/bin/pve-firewall-compile``, in its environment: PVESIM_ROOT, PVESIM_NODE) and runs the load
steps in order. Each round that loads or refuses is logged, one JSON line a round (``--log``):
time, backend, outcome, message, and whether the steps ran, and the digest of the files it read (``watched``).

    python3 lab/firewalld.py --log LOG [--every 10]
"""

import argparse
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import time

COMPILE = pathlib.Path(__file__).resolve().parent / "bin" / "pve-firewall-compile"


def watched(root, node):
    """A digest of what the daemons read from the cluster's files for ``node``."""
    digest = hashlib.sha256()
    for path in (root / "firewall" / "cluster.fw", root / "nodes" / node / "host.fw", root / "corosync.conf"):
        digest.update(path.read_bytes() if path.is_file() else b"-")
    return digest.hexdigest()


def round_once(log, digest):
    """Compile and load once (``digest``: of the files read); returns the compiler's outcome."""
    proc = subprocess.run([sys.executable, str(COMPILE)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        record = {"outcome": "compile-failed", "message": proc.stderr.strip()}
    else:
        result = json.loads(proc.stdout)
        record = {k: result.get(k) for k in ("backend", "outcome", "message", "warnings")}
        for step in result["load"]:
            done = subprocess.run(step["argv"], input=step.get("stdin"), capture_output=True, text=True, check=False)
            if done.returncode != 0:
                record["failed"] = {"argv": step["argv"], "stderr": done.stderr.strip()}
                break
    with open(log, "a") as handle:
        handle.write(json.dumps({"time": round(time.time(), 3), "digest": digest, **record}) + "\n")
    return record.get("outcome")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log", required=True)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between rounds without a change")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between looks at the files")
    args = parser.parse_args()
    root, node = pathlib.Path(os.environ["PVESIM_ROOT"]), os.environ["PVESIM_NODE"]
    seen, last = None, 0.0
    while True:
        now = watched(root, node)
        if now != seen or time.monotonic() - last >= args.every:
            round_once(args.log, now)
            seen, last = now, time.monotonic()
        time.sleep(args.poll)


if __name__ == "__main__":
    sys.exit(main())
