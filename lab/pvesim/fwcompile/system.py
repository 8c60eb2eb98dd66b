"""
What the firewall compilers read besides the cluster's files: the upstream tables that ship in
lab/data/pve-firewall/ (lab/data/README.md), the node's /etc/services and /etc/protocols, and
corosync.conf.
"""

import functools
import json
import pathlib
import re

DATA_DIR = pathlib.Path(__file__).resolve().parents[2] / "data" / "pve-firewall"


class PerlDie(Exception):
    """A Perl ``die``: the message, as pve-firewall prints it."""


@functools.cache
def data_text(name):
    return (DATA_DIR / name).read_text()


@functools.cache
def data_json(name):
    return json.loads(data_text(name))


@functools.cache
def etc_file(path):
    try:
        return pathlib.Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return []


def perl_services(path="/etc/services"):
    """pve-firewall's get_etc_services: the first name of each tcp/udp/sctp line (no aliases)."""
    names = {}
    for line in etc_file(path):
        if line.startswith("#") or not line.strip():
            continue
        match = re.match(r"^(\S+)\s+(\S+)/(tcp|udp|sctp).*$", line)
        if match:
            names[match.group(1)] = match.group(2)
    return names


def rust_services(path="/etc/services"):
    """proxmox-ve-config's NamedPorts: every name and alias of a line, the last line winning."""
    names = {}
    for line in etc_file(path):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) < 2:
            continue
        number = parts[1].split("/")[0]
        if not number.isdigit() or int(number) > 65535:
            continue
        names[parts[0]] = int(number)
        for alias in parts[2:]:
            if alias.startswith("#"):
                break
            names[alias] = int(number)
    return names


def perl_protocols(path="/etc/protocols"):
    """pve-firewall's get_etc_protocols: names and numbers, plus ``icmpv6``."""
    known = {"icmpv6"}
    for line in etc_file(path):
        if line.startswith("#") or not line.strip():
            continue
        match = re.match(r"^(\S+)\s+(\d+)(?:\s+.*)?$", line)
        if match:
            known.update(match.groups())
    return known


def parse_corosync(text):
    """PVE::Corosync::parse_conf, as far as the firewall reads it: ``totem`` and the nodelist
    keyed by node name."""
    root, stack = {}, []
    current = root
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("{"):
            section = {}
            current.setdefault(line[:-1].strip(), []).append(section)
            stack.append(current)
            current = section
        elif line == "}":
            current = stack.pop()
        elif ":" in line:
            key, _, value = line.partition(":")
            current[key.strip()] = value.strip()
    nodes = {}
    for nodelist in root.get("nodelist", []):
        for node in nodelist.get("node", []):
            nodes[node.get("name") or node.get("ring0_addr")] = node
    totem = (root.get("totem") or [{}])[0]
    return {"totem": totem, "nodes": nodes}
