"""The environment of a program whose ``pvesh`` is the emulator (lab/bin/pvesh)."""

import os
import pathlib
import sys

from dataplane import INTERFACES

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


# What a Proxmox VE node has besides pvesh and /etc/pve that the evpn states check before they
# change anything (_modules/pvenode.py): pve-manager's PVE/pvecfg.pm, where `pvesh get /version`
# reads the release, and an /etc/network/interfaces that sources interfaces.d, where SDN writes
# (dataplane.INTERFACES, what a lab node holds).
PVECFG = "package PVE::pvecfg;\n\nuse strict;\nuse warnings;\n\nsub release {\n    return '{release}';\n}\n\n1;\n"


def emulated_pve_files(folder, version, interfaces=True):
    """The PVE version file for ``version`` and, with ``interfaces``, an interfaces file (for a
    minion that does not run in a lab node, whose /etc/network is the host's), written into
    ``folder``; returns the minion options that point pvenode at them."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pvecfg.pm").write_text(PVECFG.replace("{release}", version))
    options = {"pve_version_file": str(folder / "pvecfg.pm")}
    if interfaces:
        (folder / "interfaces").write_text(INTERFACES)
        options["network_interfaces_file"] = str(folder / "interfaces")
    return options
