"""The environment of a program whose ``pvesh`` is the emulator (lab/bin/pvesh)."""

import os
import pathlib
import sys

LAB = pathlib.Path(__file__).resolve().parent


def emulator_path():
    """PATH with lab/bin first, so ``pvesh`` is the emulator, then this interpreter's folder, so
    its ``#!/usr/bin/env python3`` is not a pyenv shim (0.1 s a call)."""
    return os.pathsep.join([str(LAB / "bin"), str(pathlib.Path(sys.executable).parent), os.environ["PATH"]])


def emulated_pve_environ(clusters_root, site, minion_id):
    """The environment of a minion whose pvesh is the emulator, in its site's cluster
    (``clusters_root/<site>``), as the PVE node the minion id names (up to its first dot). The
    cluster's version is the one recorded in it."""
    root = pathlib.Path(clusters_root) / site
    root.mkdir(exist_ok=True)
    environ = {key: value for key, value in os.environ.items() if not key.startswith("PVESIM_")}
    return {
        **environ,
        "PATH": emulator_path(),
        "PVESIM_ROOT": str(root),
        "PVESIM_NODE": minion_id.split(".")[0],
        "PVESIM_LOG": str(root / "pvesh.log"),
    }
