"""Where the PVE API reference lives (shared/pve-api, beside the checkout) and the versions
the emulator supports. Tests that need it skip cleanly when it is absent."""

import os
import pathlib
import sys

from support.federation import REPO

PVE_API = REPO.parent / "shared" / "pve-api"
PVE_VERSIONS = ("8.4", "9.1")


def emulator_path():
    """PATH with lab/bin first, so ``pvesh`` is the emulator, then this interpreter's folder, so
    its ``#!/usr/bin/env python3`` is not a pyenv shim (0.1 s a call)."""
    return os.pathsep.join([str(REPO / "lab" / "bin"), str(pathlib.Path(sys.executable).parent), os.environ["PATH"]])


def emulated_pve_environ(clusters_root, site, minion_id):
    """The environment of a minion whose pvesh is the emulator, in its site's cluster. The
    cluster's version is the one recorded in it."""
    root = clusters_root / site
    root.mkdir(exist_ok=True)
    environ = {key: value for key, value in os.environ.items() if not key.startswith("PVESIM_")}
    return {**environ, "PATH": emulator_path(), "PVESIM_ROOT": str(root), "PVESIM_NODE": minion_id.split(".")[0],
            "PVESIM_LOG": str(root / "pvesh.log")}


def emulated_pve_minion(salt_master, clusters_root, site, minion_id):
    """A minion factory whose pvesh is the emulator in its site's cluster (not started)."""
    factory = salt_master.salt_minion_daemon(minion_id)
    # A dict of its own: salt-factories hands every daemon the manager's shared environ.
    factory.environ = emulated_pve_environ(clusters_root, site, minion_id)
    return factory
