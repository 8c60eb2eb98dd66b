"""The PVE versions the emulator supports, and helpers for tests that call it."""

import json
import os
import pathlib
import subprocess
import sys

from dataplane import INTERFACES
from emulated_pve import emulated_pve_environ, emulated_pve_files
from support.federation import REPO

PVE_VERSIONS = ("8.4", "9.1")


def emulated_pve_minion(salt_master, clusters_root, site, minion_id):
    """A minion factory whose pvesh is the emulator in its site's cluster, which is also the
    folder it reads as /etc/pve (pve_config_dir), with PVE's version file and an interfaces file
    of its own beside the clusters (emulated_pve_files); not started. The node is a member of
    its cluster from the start, as PVE lists its nodes."""
    environ = emulated_pve_environ(clusters_root, site, minion_id)
    pathlib.Path(environ["PVESIM_ROOT"], "nodes", environ["PVESIM_NODE"]).mkdir(parents=True, exist_ok=True)
    host_files = emulated_pve_files(pathlib.Path(clusters_root).parent / f"pve-host-{minion_id}", "9.1")
    overrides = {"pve_config_dir": environ["PVESIM_ROOT"], **host_files}
    factory = salt_master.salt_minion_daemon(minion_id, overrides=overrides)
    # A dict of its own: salt-factories hands every daemon the manager's shared environ.
    factory.environ = environ
    return factory


def emulated_pve_node(node, clusters_root, site, version="9.1"):
    """A lab node as a PVE node of its site's emulated cluster (``clusters_root/<site>``): the
    interfaces file a PVE node has, PVE's version file, the emulator as its pvesh. Returns (the
    minion options, the environment) for ``salt_call_in``. The node is a member of its cluster
    from the start, as PVE lists its nodes."""
    node.run("sh", "-c", "cat > /etc/network/interfaces", input=INTERFACES)
    environ = emulated_pve_environ(clusters_root, site, node.name)
    pathlib.Path(environ["PVESIM_ROOT"], "nodes", environ["PVESIM_NODE"]).mkdir(parents=True, exist_ok=True)
    options = {"pve_config_dir": environ["PVESIM_ROOT"], **emulated_pve_files(node.root, version, interfaces=False)}
    return options, environ


def pvesh(*args, root=None):
    """The emulator's pvesh, JSON output parsed; in cluster ``root`` (default: PVESIM_ROOT)."""
    environ = {**os.environ, **({"PVESIM_ROOT": str(root), "PVESIM_NODE": "reader"} if root else {})}
    environ.pop("PVESIM_LOG", None)  # a test's own reads are not the states' calls
    proc = subprocess.run(
        [sys.executable, str(REPO / "lab" / "bin" / "pvesh"), *args, "--output-format", "json"],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout or "null")


def pvesh_calls(log):
    """The calls recorded in a PVESIM_LOG file."""
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def pvesh_writes(log):
    """(method, path) of the recorded calls that are not reads."""
    return [(c["method"], c["path"]) for c in pvesh_calls(log) if c["method"] not in ("GET", None)]


def sdn_objects(root=None):
    """A cluster's SDN objects as PVE shows them (pending view): {collection: {id: item}}."""
    objects = {
        c: {i[k]: i for i in pvesh("get", f"/cluster/sdn/{c}", "--pending", "1", root=root)}
        for c, k in (("controllers", "controller"), ("zones", "zone"), ("vnets", "vnet"))
    }
    objects["subnets"] = {
        i["id"]: i
        for v in objects["vnets"]
        for i in pvesh("get", f"/cluster/sdn/vnets/{v}/subnets", "--pending", "1", root=root)
    }
    return objects
