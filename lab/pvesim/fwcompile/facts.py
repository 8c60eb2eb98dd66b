"""
What the firewall daemons read from the running node, gathered where the command runs (inside a
lab node: its network namespace and /etc): addresses, routes, name resolution, and the netfilter
state both daemons update relative to.
"""

import ipaddress
import json
import re
import socket
import subprocess

from pvesim.fwcompile import read_cluster
from pvesim.fwcompile.proxmox_firewall import without_bridge_table
from pvesim.fwcompile.system import data_text, parse_corosync


def _run(*argv, stdin=None):
    try:
        result = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    except OSError as err:
        return 127, "", str(err)
    return result.returncode, result.stdout, result.stderr


def _resolve(name):
    try:
        infos = socket.getaddrinfo(name, 0, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return list(dict.fromkeys(info[4][0] for info in infos))


def _proc_ipv4(field):
    """An address of /proc/net/route: hex in host byte order (little-endian here)."""
    return str(ipaddress.IPv4Address(int(field, 16).to_bytes(4, "little")))


def _proc_routes():
    """/proc/net/route and /proc/net/ipv6_route, in file order, as PVE::ProcFSTools reads them."""
    routes4, routes6 = [], []
    try:
        with open("/proc/net/route") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) < 8 or fields[0] == "Iface":
                    continue
                routes4.append([_proc_ipv4(fields[1]), _proc_ipv4(fields[7])])
        with open("/proc/net/ipv6_route") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) >= 2:
                    routes6.append([str(ipaddress.IPv6Address(bytes.fromhex(fields[0]))), int(fields[1], 16)])
    except OSError:
        pass
    return routes4, routes6


def gather(node, root=None):
    """The node's facts: ``node_ip`` (pve-firewall's local_network: the first non-loopback
    address the node name resolves to), ``host_ips`` (proxmox-firewall's management IPs: every
    address it resolves to), ``interface_cidrs`` (getifaddrs order: IPv4, then IPv6),
    ``altnames``, ``routes4``/``routes6``, ``hosts`` (the corosync.conf names resolved) and
    ``nft_bridge`` (whether this kernel's nftables takes proxmox-firewall's bridge table)."""
    _, out, _ = _run("ip", "-j", "addr", "show")
    links = json.loads(out or "[]")
    cidrs = {4: [], 6: []}
    altnames = {}
    for link in links:
        for alt in link.get("altnames", []):
            altnames[alt] = link["ifname"]
        for addr in link.get("addr_info", []):
            version = 6 if addr.get("family") == "inet6" else 4
            cidrs[version].append(f"{addr['local']}/{addr['prefixlen']}")
    host_ips = _resolve(node)
    routes4, routes6 = _proc_routes()
    hosts = {node: host_ips}
    corosync = read_cluster(root, node)["corosync.conf"] if root else None
    if corosync:
        for entry in parse_corosync(corosync)["nodes"].values():
            for key, value in entry.items():
                if re.fullmatch(r"(ring|link)\d+_addr", key):
                    hosts.setdefault(value, _resolve(value))
    facts = {
        "node_ip": next((ip for ip in host_ips if not re.match(r"^127\.|^::1$", ip)), None),
        "host_ips": host_ips,
        "interface_cidrs": cidrs[4] + cidrs[6],
        "altnames": altnames,
        "routes4": routes4,
        "routes6": routes6,
        "hosts": hosts,
    }
    facts.update(nft_bridge_support())
    return facts


def nft_bridge_support():
    """Whether nft takes the bridge table of proxmox-firewall's base ruleset on this kernel:
    ``nft -c`` checks it against the kernel without changing anything."""
    skeleton = data_text("proxmox-firewall-1.2.2.nft")
    inet_only, _ = without_bridge_table(skeleton, None)
    code, _, err = _run("nft", "-c", "-f", "-", stdin=skeleton)
    if code == 0:
        return {"nft_bridge": True}
    inet_code, _, _ = _run("nft", "-c", "-f", "-", stdin=inet_only)
    if inet_code != 0:
        return {"nft_bridge": True}
    return {"nft_bridge": False, "nft_bridge_error": " ".join(err.split())[:300]}


def netfilter_state():
    """What is loaded now, as the daemons read it: ``iptables-save`` and ``ip6tables-save`` (the
    legacy tables pve-firewall uses), ``ipset save``, and the chains of ``nft -j list chains``."""
    state = {}
    for key, argv in (
        ("iptables", ["iptables-legacy-save"]),
        ("ip6tables", ["ip6tables-legacy-save"]),
        ("ipset", ["ipset", "save"]),
    ):
        state[key] = _run(*argv)[1]
    code, out, _ = _run("nft", "-j", "list", "chains")
    listing = json.loads(out) if code == 0 and out.strip() else {"nftables": []}
    state["nft_chains"] = [
        {key: item["chain"][key] for key in ("family", "table", "name")}
        for item in listing["nftables"]
        if "chain" in item
    ]
    return state
