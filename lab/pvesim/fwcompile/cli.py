"""
``pve-firewall-compile``: prints, as JSON, what this node's firewall daemons would load now
(``compile_node``). PVESIM_ROOT, PVESIM_NODE and PVESIM_VERSION as for ``pvesh``; the node's
facts and netfilter state are read where the command runs, unless given as files.
"""

import argparse
import json
import os
import socket
import sys

from pvesim.cli import cluster_version
from pvesim.fwcompile import RELEASES, compile_node, facts


def _json_file(path):
    with open(path) as handle:
        return json.load(handle)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="pve-firewall-compile",
        description="Print what pve-firewall or proxmox-firewall would load on this node (JSON).",
    )
    parser.add_argument("--facts", type=_json_file, help="the node's facts as JSON, instead of reading them here")
    parser.add_argument("--state", type=_json_file, help="the loaded netfilter state as JSON, instead of reading it")
    parser.add_argument("--print-facts", action="store_true", help="print the facts and state read here, then exit")
    args = parser.parse_args(argv)
    root = os.environ.get("PVESIM_ROOT")
    if not root:
        sys.stderr.write("pve-firewall-compile: PVESIM_ROOT is not set (the folder that stands for /etc/pve)\n")
        return 2
    node = os.environ.get("PVESIM_NODE") or socket.gethostname()
    version = cluster_version(root)
    if version not in RELEASES:
        known = ", ".join(RELEASES)
        sys.stderr.write(f"pve-firewall-compile: PVESIM_VERSION {version!r} has no firewall compiler ({known})\n")
        return 2
    node_facts = args.facts if args.facts is not None else facts.gather(node, root)
    state = args.state if args.state is not None else facts.netfilter_state()
    if args.print_facts:
        result = {"facts": node_facts, "state": state}
    else:
        result = compile_node(root, node, version, node_facts, state)
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0
