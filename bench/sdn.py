"""
pvesh calls and time of converging one site's SDN and firewall (docs/architecture.md, Targets): a
site with 20 vnets, its leader's ``state.apply evpn.sdn,evpn.firewall`` run masterless from the
checkout, the emulator as pvesh with PVESIM_DELAY=1 (real pvesh takes about a second to start),
PVE 9.1 unless --version says otherwise. Three ways of reading, each through a first converge,
a no-op converge and a converge that changes one vnet's tag:

- files: what pvesdn and pvefw do, reading the cluster's files (pve_config_dir);
- collections: one pvesh read per collection and list, as the modules did before and still do
  when the files cannot be read (forced here by pointing pve_config_dir at an empty folder);
  they read a collection again after each write to it;
- objects: one pvesh read per object (each SDN object, each IP set, group, rule list and the
  options), as the original playbook read them, run here against the cluster before each
  converge of the files way; its writes and applies are that converge's.

pvesh s is the time of the pvesh calls (their logged durations); wall s is the whole salt-call.
Then the model: how often one ``state.apply evpn`` (test mode, on a 100-site x 3-node
federation) asks the model for the validated pillar, which it validated at every ask before it
kept the result, and how often it validates now; and the model's share of rendering that
state, measured under cProfile (which slows Python code, so an upper bound).
"""

import argparse
import contextlib
import io
import json
import os
import pathlib
import pstats
import subprocess
import sys
import tempfile
import time

import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "lab"), str(REPO / "_modules")]

import evpn  # noqa: E402
from checkout_config import checkout_config  # noqa: E402
from emulated_pve import emulated_pve_files, emulator_path  # noqa: E402
from pvesim.cli import main as pvesh  # noqa: E402
from support.federation import generated_federation  # noqa: E402

evpn.__context__ = {}  # the model outside Salt's loader, as bench/federation.py uses it

SALT_CALL = pathlib.Path(sys.executable).parent / "salt-call"
SITE, NODE = "s000", "pve-s000-0"
STATES = "evpn.sdn,evpn.firewall"
MODEL_FUNCTIONS = {"validate", "config", "members", "node", "wireguard_peers", "endpoint_names", "sdn", "firewall"}


def minion_config(folder, pillar_root, pve_config_dir, version="9.1"):
    """A config folder for masterless salt-call: the checkout's etc/minion, this pillar, this
    cluster folder, PVE's version and interfaces files (what the states check first)."""
    config = checkout_config(
        "minion",
        pillar_roots={"base": [str(pillar_root)]},
        pve_config_dir=str(pve_config_dir),
        **emulated_pve_files(folder / "pve-host", version),
    )
    (folder / "etc").mkdir(parents=True, exist_ok=True)
    (folder / "etc" / "minion").write_text(yaml.safe_dump({**config, "root_dir": str(folder / "root")}))
    return folder / "etc"


def write_pillar(pillar_root, federation):
    (pillar_root / "evpn").mkdir(parents=True, exist_ok=True)
    (pillar_root / "top.sls").write_text("base:\n  '*':\n    - evpn\n")
    (pillar_root / "evpn" / "init.sls").write_text(yaml.safe_dump({"evpn": federation}))


def salt_call(config_dir, *args, log_file=None, profile=None):
    command = [str(SALT_CALL), "--local", f"--config-dir={config_dir}", f"--id={NODE}", "--out=json"]
    command += [f"--log-file={log_file}", "--log-file-level=debug"] if log_file else ["--log-level=quiet"]
    if profile:
        command = [sys.executable, "-m", "cProfile", "-o", str(profile), *command]
    proc = subprocess.run([*command, *args], capture_output=True, text=True, check=False, cwd=config_dir)
    if not proc.stdout:
        sys.exit(f"salt-call {' '.join(args)} printed nothing: {proc.stderr}")
    return json.loads(proc.stdout)["local"]


def pvesh_counts(log):
    """Reads (get and usage), writes, applies and the seconds of the calls in a PVESIM_LOG, and
    of the writes and applies alone."""
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    log.unlink(missing_ok=True)
    reads = [c for c in calls if c["method"] in ("GET", None)]
    applies = [c for c in calls if (c["method"], c["path"]) == ("PUT", "/cluster/sdn")]
    return {
        "reads": len(reads),
        "writes": len(calls) - len(reads) - len(applies),
        "applies": len(applies),
        "pvesh s": sum(c["duration"] for c in calls),
        "write s": sum(c["duration"] for c in calls if c not in reads),
    }


def converge(config_dir, log):
    start = time.monotonic()
    states = salt_call(config_dir, "state.apply", STATES)
    wall = time.monotonic() - start
    failed = [s["comment"] for s in states.values() if s["result"] is False]
    if failed:
        sys.exit(f"converge failed: {failed}")
    return {**pvesh_counts(log), "wall s": wall}


def object_paths(federation):
    """One read per object of the site: the playbook's way."""
    sdn, firewall = evpn.sdn(SITE, federation=federation), evpn.firewall(SITE, federation=federation)
    paths = [f"/cluster/sdn/{kind}/{ident}" for kind in ("controllers", "zones", "vnets") for ident in sdn[kind]]
    paths += [f"/cluster/sdn/vnets/{s['vnet']}/subnets/{ident}" for ident, s in sdn["subnets"].items()]
    paths += [f"/cluster/firewall/ipset/{name}" for name in firewall["ipsets"]]
    paths += [f"/cluster/firewall/groups/{name}" for name in firewall["groups"]]
    return paths + ["/cluster/firewall/rules", "/cluster/firewall/options"]


def read_each_object(paths, log):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for path in paths:
            pvesh(["get", path, "--output-format", "json"])  # a missing object is a read too
    return pvesh_counts(log)


def sdn_table(args, tmp):
    federation = generated_federation(2, 1, vnets_per_site=args.vnets)
    changed = json.loads(json.dumps(federation))
    first_vnet = next(iter(changed["sites"][SITE]["vnets"].values()))
    first_vnet["tag"] += 9000
    log = tmp / "pvesh.log"
    rows = {"objects": [], "collections": [], "files": []}
    for way in ("files", "collections"):
        cluster, pillar_root = tmp / way / "cluster", tmp / way / "pillar"
        (cluster / "nodes" / NODE).mkdir(parents=True)  # as PVE keeps its nodes there
        (cluster / "pvesim-version").write_text(args.version)
        empty = tmp / way / "not-a-cluster"
        empty.mkdir()
        config_dir = minion_config(tmp / way, pillar_root, cluster if way == "files" else empty, args.version)
        os.environ.update(PVESIM_ROOT=str(cluster), PVESIM_NODE=NODE, PVESIM_LOG=str(log))
        for scenario, pillar in (
            ("first converge", federation),
            ("no-op converge", federation),
            ("one vnet changed", changed),
        ):
            write_pillar(pillar_root, pillar)
            if way == "files":  # the playbook's reads, on the cluster as this converge finds it
                reads = read_each_object(object_paths(pillar), log)
            done = converge(config_dir, log)
            rows[way].append((scenario, done))
            if way == "files":  # with this converge's writes and applies
                writes = {"writes": done["writes"], "applies": done["applies"]}
                objects = {**reads, **writes, "pvesh s": reads["pvesh s"] + done["write s"]}
                rows["objects"].append((scenario, {k: v for k, v in objects.items() if k != "wall s"}))
    return [(way, scenario, counts) for way, done in rows.items() for scenario, counts in done]


def model_counts(tmp):
    """Asks and validations of the model in one state.apply evpn (test mode), and its share of a
    state.show_sls evpn render under cProfile, on a 100-site x 3-node federation."""
    federation = generated_federation(100, 3)
    pillar_root, cluster = tmp / "model" / "pillar", tmp / "model" / "cluster"
    cluster.mkdir(parents=True)
    write_pillar(pillar_root, federation)
    config_dir = minion_config(tmp / "model", pillar_root, cluster)
    os.environ.update(PVESIM_ROOT=str(cluster), PVESIM_DELAY="0")
    log_file = tmp / "model" / "salt.log"
    salt_call(config_dir, "state.apply", "evpn", "test=True", log_file=log_file)
    lines = log_file.read_text().splitlines()
    validated = sum(line.endswith("evpn: validating the pillar") for line in lines)
    reused = sum(line.endswith("evpn: the pillar's validation reused") for line in lines)
    profile = tmp / "model" / "render.prof"
    start = time.monotonic()
    salt_call(config_dir, "state.show_sls", "evpn", profile=profile)
    render = time.monotonic() - start
    stats = pstats.Stats(str(profile))
    model = sum(
        entry[3]  # cumulative time
        for (filename, _, function), entry in stats.stats.items()
        if filename.endswith(os.path.join("_modules", "evpn.py")) and function in MODEL_FUNCTIONS
    )
    return {"asks": validated + reused, "validations": validated, "render s": render, "model s": model}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vnets", type=int, default=20)
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--version", default="9.1", choices=("8.4", "9.1"))
    args = parser.parse_args()
    os.environ.update(PATH=emulator_path(), PVESIM_DELAY=str(args.delay))
    with tempfile.TemporaryDirectory(prefix="evpn-bench-") as tmp_dir:
        tmp = pathlib.Path(tmp_dir)
        rows = sdn_table(args, tmp)
        model = model_counts(tmp)
    print(
        f"site with {args.vnets} vnets and the firewall, PVE {args.version}, PVESIM_DELAY={args.delay} s per pvesh call"
    )
    columns = ("reads", "writes", "applies", "pvesh s", "wall s")
    print(f"{'reads per':<13}{'converge':<18}" + "".join(f"{c:>9}" for c in columns))
    for way, scenario, counts in rows:
        cells = [
            f"{counts[c]:>9.1f}" if c.endswith(" s") and c in counts else f"{counts.get(c, '-'):>9}" for c in columns
        ]
        print(f"{way:<13}{scenario:<18}" + "".join(cells))
    print(
        f"model, one state.apply evpn (test mode) on 100 sites x 3 nodes: asked {model['asks']} times for the "
        f"validated pillar (each ask validated it before), validated {model['validations']} time(s) now"
    )
    print(
        f"model, one state.show_sls evpn on 100 sites x 3 nodes under cProfile: {model['model s']:.2f} s in the model "
        f"of {model['render s']:.1f} s (target: under 1 s)"
    )


if __name__ == "__main__":
    main()
