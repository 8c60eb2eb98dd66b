"""
pvesh calls and wall time of an SDN converge (docs/architecture.md, Targets): a site with 20 vnets, its
leader's `state.apply evpn.sdn` run masterless from the checkout, the emulator as pvesh with
PVESIM_DELAY=1 (real pvesh takes about a second to start). First converge, then a no-op converge,
then the naive way: one `pvesh get` per object, in the same cluster.
"""

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "lab"), str(REPO / "_modules")]

import yaml  # noqa: E402

import evpn  # noqa: E402
from emulated_pve import emulator_path  # noqa: E402
from pvesim.cli import main as pvesh  # noqa: E402
from support.federation import generated_federation  # noqa: E402
from support.saltconfig import salt_call  # noqa: E402


def counts(log):
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    log.unlink(missing_ok=True)
    return {
        "reads": sum(c["method"] == "GET" for c in calls),
        "writes": sum(c["method"] in ("POST", "PUT", "DELETE") and c["path"] != "/cluster/sdn" for c in calls),
        "applies": sum(c["method"] == "PUT" and c["path"] == "/cluster/sdn" for c in calls),
        "calls": len(calls),
    }


def converge(node, pillar_root, cachedir):
    start = time.monotonic()
    proc = salt_call("--id", node, f"--pillar-root={pillar_root}", "state.apply", "evpn.sdn", cachedir=cachedir)
    seconds = time.monotonic() - start
    states = json.loads(proc.stdout)["local"]
    failed = [s["comment"] for s in states.values() if s["result"] is False]
    if failed:
        sys.exit(f"converge failed: {failed}")
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vnets", type=int, default=20)
    parser.add_argument("--delay", type=float, default=1.0)
    args = parser.parse_args()
    federation = generated_federation(2, 1, vnets_per_site=args.vnets)
    site, node = "s000", "pve-s000-0"
    with tempfile.TemporaryDirectory(prefix="evpn-bench-") as tmp_dir:
        tmp = pathlib.Path(tmp_dir)
        (tmp / "pillar" / "evpn").mkdir(parents=True)
        (tmp / "pillar" / "top.sls").write_text("base:\n  '*':\n    - evpn\n")
        (tmp / "pillar" / "evpn" / "init.sls").write_text(yaml.safe_dump({"evpn": federation}))
        log = tmp / "pvesh.log"
        os.environ.update(
            PATH=emulator_path(),
            PVESIM_ROOT=str(tmp / "cluster"),
            PVESIM_NODE=node,
            PVESIM_LOG=str(log),
            PVESIM_DELAY=str(args.delay),
        )
        cachedir = f"/var/cache/salt/bench-{os.getpid()}"
        rows = []
        for name in ("first converge", "no-op converge"):
            seconds = converge(node, tmp / "pillar", cachedir)
            rows.append((name, counts(log), seconds))

        # The naive way: one pvesh get per object of the site.
        sdn = evpn.sdn(site, federation=federation)
        paths = [f"/cluster/sdn/controllers/{c}" for c in sdn["controllers"]]
        paths += [f"/cluster/sdn/zones/{z}" for z in sdn["zones"]]
        paths += [f"/cluster/sdn/vnets/{v}" for v in sdn["vnets"]]
        paths += [f"/cluster/sdn/vnets/{s['vnet']}/subnets/{i}" for i, s in sdn["subnets"].items()]
        start = time.monotonic()
        for path in paths:
            with open(os.devnull, "w") as devnull:
                saved, sys.stdout = sys.stdout, devnull
                try:
                    assert pvesh(["get", path, "--output-format", "json"]) == 0, path
                finally:
                    sys.stdout = saved
        rows.append(("naive: one get per object", counts(log), time.monotonic() - start))

    print(f"site with {args.vnets} vnets ({len(paths)} SDN objects), PVESIM_DELAY={args.delay}")
    print(f"{'run':<28}{'reads':>7}{'writes':>8}{'applies':>9}{'seconds':>10}")
    for name, c, seconds in rows:
        print(f"{name:<28}{c['reads']:>7}{c['writes']:>8}{c['applies']:>9}{seconds:>10.1f}")
    noop, naive = rows[1], rows[2]
    print(
        f"no-op converge vs naive reads: {naive[1]['reads']} / {noop[1]['reads']} reads, "
        f"{naive[2] / noop[2]:.1f}x faster ({noop[2]:.1f} s vs {naive[2]:.1f} s)"
    )


if __name__ == "__main__":
    main()
