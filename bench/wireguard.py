"""
Converging a WireGuard interface with 300 peers (docs/architecture.md, Targets: one `wg syncconf`,
not 300 calls): one lab node in its own namespaces running wireguard-go, wireguard.interface_present
run inside it by salt-call, first run and no-op run; wall time and the `wg` and `ip` invocations
(counted by wrappers first on PATH). Needs root, wireguard-go and wireguard-tools.
"""

import argparse
import base64
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "lab")]

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey  # noqa: E402
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat  # noqa: E402

from netns import Lab  # noqa: E402


def public_keys(count):
    return [
        base64.b64encode(X25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
        for _ in range(count)
    ]


def counting_wrappers(folder, log):
    """`wg` and `ip` that append their name to ``log`` and run the real program."""
    folder.mkdir()
    for tool in ("wg", "ip"):
        real = shutil.which(tool)
        wrapper = folder / tool
        wrapper.write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\nexec {real} "$@"\n')
        wrapper.chmod(0o755)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--peers", type=int, default=300)
    args = parser.parse_args()
    if os.geteuid() != 0 or not shutil.which("wireguard-go"):
        print("bench/wireguard.py: skipped, it needs root and wireguard-go (see .ci/run)")
        return
    peers = [
        {
            "name": f"peer{i}",
            "public_key": key,
            "allowed_ips": [f"10.{100 + i // 250}.{i % 250}.1/32"],
            "endpoint": f"198.51.100.{1 + i % 250}:51820",
            "keepalive": 25,
        }
        for i, key in enumerate(public_keys(args.peers))
    ]
    with tempfile.TemporaryDirectory(prefix="evpn-bench-wg-") as tmp_dir:
        tmp = pathlib.Path(tmp_dir)
        log = tmp / "calls.log"
        counting_wrappers(tmp / "bin", log)
        with Lab(tmp / "lab", prefix=f"b{os.getpid() % 100000}-") as lab:
            node = lab.node("bench", "203.0.113.31")
            node.start_wireguard("wg0")
            salt_call = os.path.join(os.path.dirname(sys.executable), "salt-call")
            path = f"{tmp / 'bin'}:{os.path.dirname(sys.executable)}:{os.environ['PATH']}"
            peers_file = tmp / "peers.json"
            peers_file.write_text(json.dumps(peers))
            rows = []
            for run in ("first run", "no-op run"):
                log.unlink(missing_ok=True)
                start = time.monotonic()
                proc = node.run(
                    "env",
                    f"PATH={path}",
                    salt_call,
                    "--local",
                    "--id=bench",
                    "--out=json",
                    "--log-level=quiet",
                    f"--cachedir=/var/cache/salt/bench-{os.getpid()}",
                    "state.single",
                    "wireguard.interface_present",
                    "name=wg0",
                    "address=10.99.0.1/32",
                    "port=51820",
                    "mtu=1420",
                    f"peers={peers_file.read_text()}",
                    cwd=REPO,
                    check=False,
                )
                seconds = time.monotonic() - start
                (state,) = json.loads(proc.stdout)["local"].values()
                # Salt's own network grains call ip too: count the calls about the interface.
                calls = [line.split() for line in log.read_text().splitlines()] if log.exists() else []
                ours = [c for c in calls if c[0] == "wg" or "wg0" in c or "-batch" in c]
                rows.append(
                    (
                        run,
                        seconds,
                        state["duration"] / 1000,
                        sum(c[0] == "wg" for c in ours),
                        sum(c[0] == "ip" for c in ours),
                        sorted(state["changes"]),
                    )
                )
            live = len(node.run("wg", "show", "wg0", "peers").stdout.split())
    print(f"WireGuard interface with {args.peers} peers (wireguard-go in a lab node; {live} peers live)")
    print("seconds: the whole salt-call; state: the state function alone (Salt's duration)")
    print(f"{'run':<12}{'seconds':>9}{'state':>8}{'wg calls':>10}{'ip calls':>10}  changes")
    for run, seconds, state_seconds, wg_calls, ip_calls, changes in rows:
        print(f"{run:<12}{seconds:>9.2f}{state_seconds:>8.2f}{wg_calls:>10}{ip_calls:>10}  {', '.join(changes) or '-'}")


if __name__ == "__main__":
    main()
