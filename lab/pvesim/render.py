"""
What pve-network generates on a node when the SDN configuration is applied, for EVPN zones with
an EVPN controller: ``/etc/network/interfaces.d/sdn`` and ``/etc/frr/frr.conf`` (pve-network's
own golden files in tests/data are the reference). Pure functions of the running configuration
(``.running-config``) and the node's own facts (``node_facts``): its name, its VTEP address and
the interface and address it sends to the internet from (for SNAT), both chosen as pve-network
chooses them (``local_address``, ``route_get``).

pve-network as each emulated PVE version ships it, read in proxmox/pve-network: 9.1 ships 1.3.0
(commit 59b85b7), 8.4 ships 0.11.x (0.11.3, commit 2e32df1 on stable-bookworm; its EVPN test
cases are the same at 0.11.2, 8f4f5d2). Their frr.conf differs in two details only: before
1.2.5 every vrf stanza starts with a ``!`` (so one more ``!`` follows the header's) and the file
has no newline at its end (added in 3d94496, "sdn: add missing new-line at the end of frr
config").
"""

import ipaddress
import json
import pathlib
import re
import subprocess

FRR_VERSIONS = {"9.1": "10.4.1", "8.4": "8.5.2", "7.4": "8.5.2"}
FRR_LAYOUT_BEFORE_1_2_5 = {"8.4"}  # pve-network 0.11.x; 7.4's 0.7.x is not emulated in this detail
DEFAULT_MTU = 1450  # pve-network's assumption: VXLAN over a 1500-byte underlay
UNREACHABLE_METRIC = 4278198272
LOCAL_ROUTING = {
    4: ("10.255.255.1/30", "10.255.255.2/30", "10.255.255.2"),
    6: ("fe80::1/126", "fe80::2/126", "fe80::2"),
}


def _ids(config, kind):
    return (config.get(kind) or {}).get("ids") or {}


def subnet_cidr(subnet_id):
    """``<zone>-<network>-<prefix>`` -> ``<network>/<prefix>``, as PVE keeps it (not normalised)."""
    network, prefix = subnet_id.split("-", 1)[1].rsplit("-", 1)
    return f"{network}/{prefix}"


def _cidr_order(cidr):
    interface = ipaddress.ip_interface(cidr)
    return interface.version, int(interface.ip), interface.network.prefixlen


class Zone:
    """An EVPN zone seen from one node."""

    def __init__(self, name, zone, config, node):
        self.name = name
        self.zone = zone
        self.vrf = f"vrf_{name}"
        self.mtu = int(zone.get("mtu") or DEFAULT_MTU)
        self.exit_node = node in (zone.get("exitnodes") or {})
        primary = zone.get("exitnodes-primary")
        self.drops_other_defaults = self.exit_node and (not primary or primary == node)
        self.less_preferred = self.exit_node and bool(primary) and primary != node
        self.local_routing = self.exit_node and bool(int(zone.get("exitnodes-local-routing") or 0))
        self.vnets = {
            vnet_id: vnet for vnet_id, vnet in sorted(_ids(config, "vnets").items()) if vnet.get("zone") == name
        }
        self.subnets = {
            subnet_id: subnet
            for subnet_id, subnet in _ids(config, "subnets").items()
            if subnet.get("vnet") in self.vnets
        }


def evpn_zones(config, node):
    controllers = _ids(config, "controllers")
    return [
        Zone(name, zone, config, node)
        for name, zone in sorted(_ids(config, "zones").items())
        if zone.get("type") == "evpn" and controllers.get(zone.get("controller"), {}).get("type") == "evpn"
    ]


def _controller_peers(config):
    controller = next((c for c in _ids(config, "controllers").values() if c.get("type") == "evpn"), {})
    return [peer for peer in re.split(r"[\s,;]+", controller.get("peers") or "") if peer]


def local_address(config, facts):
    """
    The node's VTEP address as pve-network chooses it (Zones/Plugin.pm,
    ``find_local_ip_interface_peers``): the first controller peer, in the controller's order,
    that is the address of an interface in ``/etc/network/interfaces``; otherwise the source
    address of the route toward the first peer (``get_local_route_ip``: ``ip route get``),
    whatever interface that route leaves by. None where there is no such route (``ip route get``
    fails, and so does PVE's network reload).
    """
    peers = _controller_peers(config)
    configured = set((facts.get("interfaces") or {}).values())
    for peer in peers:
        if peer in configured:
            return peer
    route = route_get(facts, peers[0]) if peers else None
    return route and route[0]


def route_get(facts, target):
    """
    What ``ip route get <target>`` answers on the node, the (source address, device) that
    pve-network's ``get_local_route_ip`` reads, from the node's recorded links and main IPv4
    routing table (``node_facts``), as the kernel picks them: a local address is reached
    through ``lo`` from itself; otherwise the most specific route (then the lowest metric), its
    ``src`` if it has one, else the first primary address on its device (one in the gateway's
    network first), else the first on any device. None where no route matches or it is
    unreachable, blackhole or prohibit.
    """
    target = ipaddress.ip_address(target)
    if str(target) in (facts.get("local") or []):
        return str(target), "lo"
    best = None
    for route in facts.get("routes") or []:
        dst = route.get("dst", "")
        network = ipaddress.ip_network("0.0.0.0/0" if dst == "default" else dst, strict=False)
        if network.version == target.version and target in network:
            rank = (network.prefixlen, -route.get("metric", 0))
            if best is None or rank > best[0]:
                best = (rank, route)
    if best is None or best[1].get("type", "unicast") != "unicast":
        return None
    route = best[1]
    if route.get("prefsrc"):
        return route["prefsrc"], route["dev"]
    links = facts.get("links") or {}
    own = [ipaddress.ip_interface(cidr) for cidr in links.get(route["dev"], [])]
    gateway = ipaddress.ip_address(route["gateway"]) if route.get("gateway") else None
    matching = [address for address in own if gateway is not None and gateway in address.network]
    anywhere = [ipaddress.ip_interface(cidr) for cidrs in links.values() for cidr in cidrs]
    chosen = (matching or own or anywhere or [None])[0]
    return (str(chosen.ip), route["dev"]) if chosen else None


# --- /etc/network/interfaces.d/sdn --------------------------------------------------------------


def _stanza(name, lines):
    return f"auto {name}\niface {name}\n" + "".join(f"\t{line}\n" for line in lines)


def _vxlan(vni, local_ip, zone):
    lines = [f"vxlan-id {vni}", f"vxlan-local-tunnelip {local_ip}"]
    if zone.zone.get("vxlan-port"):
        lines.append(f"vxlan-port {zone.zone['vxlan-port']}")
    lines.append("bridge-learning off")
    if not int(zone.zone.get("disable-arp-nd-suppression") or 0):
        lines.append("bridge-arp-nd-suppress on")
    return lines + [f"mtu {zone.mtu}"]


def _snat(cidr, outgoing):
    interface, address = outgoing
    tables = "ip6tables" if ipaddress.ip_interface(cidr).version == 6 else "iptables"
    network = ipaddress.ip_interface(cidr).network
    rule = f"-s '{network}' -o {interface} -j SNAT --to-source {address}"
    return [
        f"post-up {tables} -t nat -A POSTROUTING {rule}",
        f"post-down {tables} -t nat -D POSTROUTING {rule}",
        f"post-up {tables} -t raw -I PREROUTING -i fwbr+ -j CT --zone 1",
        f"post-down {tables} -t raw -D PREROUTING -i fwbr+ -j CT --zone 1",
    ]


def _vnet_bridge(vnet_id, zone, outgoing):
    subnets = sorted((subnet_cidr(i), s) for i, s in zone.subnets.items() if s["vnet"] == vnet_id)
    lines, routed = [], set()  # routed: the IP versions with a gateway here
    for cidr, subnet in subnets:
        network = ipaddress.ip_interface(cidr).network
        address = f"address {subnet['gateway']}/{network.prefixlen}" if subnet.get("gateway") else None
        if address and address not in lines:
            routed.add(network.version)
            lines.append(address)
            if int(subnet.get("snat") or 0) and zone.exit_node and outgoing:
                lines += _snat(cidr, outgoing)
    if zone.zone.get("mac"):
        lines.append(f"hwaddress {zone.zone['mac']}")
    lines += [f"bridge_ports vxlan_{vnet_id}", "bridge_stp off", "bridge_fd 0", f"mtu {zone.mtu}"]
    lines += ["ip-forward on"] * (4 in routed) + ["ip6-forward on"] * (6 in routed)
    lines += ["arp-accept on"] * bool(subnets)
    return lines + [f"vrf {zone.vrf}"]


def sdn_interfaces(config, node, local_ip, outgoing=None):
    """The node's ``/etc/network/interfaces.d/sdn``; ``outgoing`` is (interface, address) of its
    default route, used by SNAT on exit nodes."""
    stanzas = {}
    for zone in evpn_zones(config, node):
        for vnet_id, vnet in zone.vnets.items():
            stanzas[vnet_id] = _vnet_bridge(vnet_id, zone, outgoing)
            stanzas[f"vxlan_{vnet_id}"] = _vxlan(vnet["tag"], local_ip, zone)
        verb = "del" if zone.exit_node else "add"
        stanzas[zone.vrf] = [
            "vrf-table auto",
            f"post-up ip route {verb} vrf {zone.vrf} unreachable default metric {UNREACHABLE_METRIC}",
        ]
        stanzas[f"vrfbr_{zone.name}"] = [
            f"bridge-ports vrfvx_{zone.name}",
            "bridge_stp off",
            "bridge_fd 0",
            f"mtu {zone.mtu}",
            f"vrf {zone.vrf}",
        ]
        stanzas[f"vrfvx_{zone.name}"] = _vxlan(zone.zone["vrf-vxlan"], local_ip, zone)
        if zone.local_routing:
            versions = {ipaddress.ip_interface(subnet_cidr(i)).version for i in zone.subnets} or {4}
            ends = [LOCAL_ROUTING[v] for v in sorted(versions)]
            peer = f"xvrfp_{zone.name}"
            stanzas[f"xvrf_{zone.name}"] = (
                ["link-type veth"]
                + [f"address {e[0]}" for e in ends]
                + [f"veth-peer-name {peer}", f"mtu {zone.mtu + 50}"]
            )
            stanzas[peer] = (
                ["link-type veth"]
                + [f"address {e[1]}" for e in ends]
                + [f"veth-peer-name xvrf_{zone.name}", f"vrf {zone.vrf}", f"mtu {zone.mtu + 50}"]
            )
    return "#version:1\n\n" + "\n".join(_stanza(name, lines) for name, lines in sorted(stanzas.items()))


# --- /etc/frr/frr.conf -----------------------------------------------------------------------


def _address_families(blocks):
    """`` !`` / `` address-family <name>`` / lines / `` exit-address-family`` for each block."""
    lines = []
    for family, body in blocks:
        if body:
            lines += [" !", f" address-family {family}", *[f"  {line}" for line in body], " exit-address-family"]
    return lines


def _route_map(name, entries):
    lines = []
    for number, (action, body) in enumerate(entries, start=1):
        lines += [f"route-map {name} {action} {number}", *[f" {line}" for line in body], "exit", "!"]
    return lines


def frr_config(config, node, local_ip, pve_version="9.1"):
    """The node's ``/etc/frr/frr.conf`` for its EVPN zones (without a frr.conf.local), as the
    pve-network of ``pve_version`` writes it."""
    zones = evpn_zones(config, node)
    controller = next(c for c in _ids(config, "controllers").values() if c.get("type") == "evpn")
    asn = controller["asn"]
    peers = [p for p in (controller.get("peers") or "").split(",") if p and p != local_ip]
    lines = [
        f"frr version {FRR_VERSIONS[pve_version]}",
        "frr defaults datacenter",
        f"hostname {node}",
        "log syslog informational",
        "service integrated-vtysh-config",
        "!",
    ]
    before_1_2_5 = pve_version in FRR_LAYOUT_BEFORE_1_2_5
    if before_1_2_5 and zones:
        lines.append("!")  # generate_frr_vrf pushed "!" before each vrf; the first follows the header's
    all_subnets = {subnet_id: zone.name for zone in zones for subnet_id in zone.subnets}
    for zone in zones:
        lines += [f"vrf {zone.vrf}", f" vni {zone.zone['vrf-vxlan']}"]
        if zone.exit_node:
            others = sorted((subnet_cidr(i) for i, owner in all_subnets.items() if owner != zone.name), key=_cidr_order)
            lines += [f" {'ipv6' if ':' in cidr else 'ip'} route {cidr} null0" for cidr in others]
        lines += ["exit-vrf", "!"]
    router_id = [f" bgp router-id {local_ip}", " no bgp hard-administrative-reset"]
    lines += [
        f"router bgp {asn}",
        *router_id,
        " no bgp default ipv4-unicast",
        " coalesce-time 1000",
        " no bgp graceful-restart notification",
        " neighbor VTEP peer-group",
        f" neighbor VTEP remote-as {asn}",
        " neighbor VTEP bfd",
        *[f" neighbor {peer} peer-group VTEP" for peer in peers],
    ]
    imports = [f"import vrf {zone.vrf}" for zone in zones if zone.exit_node and not zone.local_routing]
    lines += _address_families(
        [
            ("ipv4 unicast", imports),
            ("ipv6 unicast", imports),
            (
                "l2vpn evpn",
                [
                    "neighbor VTEP activate",
                    "neighbor VTEP route-map MAP_VTEP_IN in",
                    "neighbor VTEP route-map MAP_VTEP_OUT out",
                    "advertise-all-vni",
                ],
            ),
        ]
    )
    lines += ["exit", "!"]
    for zone in zones:
        advertise = bool(int(zone.zone.get("advertise-subnets") or 0)) and not zone.exit_node
        connected = ["redistribute connected"] if (zone.exit_node and not zone.local_routing) or advertise else []
        evpn = []
        if zone.exit_node:
            evpn += ["default-originate ipv4", "default-originate ipv6"]
        elif advertise:
            evpn += ["advertise ipv4 unicast", "advertise ipv6 unicast"]
        evpn += [f"route-target import {rt}" for rt in (zone.zone.get("rt-import") or "").split(",") if rt]
        lines += [f"router bgp {asn} vrf {zone.vrf}", *router_id, " no bgp graceful-restart notification"]
        lines += _address_families([("ipv4 unicast", connected), ("ipv6 unicast", connected), ("l2vpn evpn", evpn)])
        lines += ["exit", "!"]
    if any(zone.exit_node for zone in zones):
        lines += [
            "ip prefix-list only_default seq 1 permit 0.0.0.0/0",
            "!",
            "ipv6 prefix-list only_default_v6 seq 1 permit ::/0",
            "!",
        ]
    match = [" ip address prefix-list only_default", " ipv6 address prefix-list only_default_v6"]
    vtep_in, vtep_out = [], []
    for zone in zones:
        if zone.drops_other_defaults:
            vtep_in += [("deny", [f"match{m}"]) for m in match]
        if zone.less_preferred:
            vtep_out += [("permit", [f"match{m}", "set metric 200"]) for m in match]
    lines += _route_map("MAP_VTEP_IN", vtep_in + [("permit", [])])
    lines += _route_map("MAP_VTEP_OUT", vtep_out + [("permit", [])])
    for zone in zones:
        if zone.local_routing:
            for cidr in sorted((subnet_cidr(i) for i in zone.subnets), key=_cidr_order):
                version = ipaddress.ip_interface(cidr).version
                family = "ipv6" if version == 6 else "ip"
                lines += [f"{family} route {cidr} {LOCAL_ROUTING[version][2]} xvrf_{zone.name}", "!"]
    text = "\n".join(lines + ["line vty", "!"])
    return text if before_1_2_5 else text + "\n"


# --- the node's own facts, as pve-network reads them -------------------------------------------


def _ip_json(*args):
    try:
        result = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=False)
        return json.loads(result.stdout or "[]")
    except (OSError, ValueError):
        return []


def interface_addresses(text):
    """
    ``{interface: IPv4 address}`` of an ``/etc/network/interfaces`` as pve-common reads it
    (PVE::Network::Interfaces, what find_local_ip_interface_peers looks at): the ``address`` of
    each ``iface`` stanza, the last one if several, without its prefix length; IPv6 addresses
    are another key there and not looked at; ``source`` lines are not followed.
    """
    addresses, interface, family = {}, None, None
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "iface" and len(words) > 1:
            interface, family = words[1], (words[2] if len(words) > 2 else None)
        elif words[0] in ("mapping", "auto", "source", "source-directory") or words[0].startswith("allow-"):
            interface = None
        elif interface and words[0] == "address" and len(words) > 1:
            value = words[1]
            if family != "inet6" and not (family is None and ":" in value):
                addresses[interface] = value.split("/")[0]
    return addresses


def node_facts():
    """
    What pve-network reads on this node to choose its VTEP and SNAT addresses: the addresses of
    ``/etc/network/interfaces`` (``interfaces``) and what ``ip route get`` decides with: every
    local address (``local``), each link's primary global IPv4 addresses in the kernel's order
    (``links``) and the main IPv4 routing table (``routes``).
    """
    try:
        interfaces = interface_addresses(pathlib.Path("/etc/network/interfaces").read_text())
    except OSError:
        interfaces = {}
    links = _ip_json("addr", "show")
    routes = _ip_json("-4", "route", "show")
    return {
        "interfaces": interfaces,
        "local": sorted({a["local"] for link in links for a in link.get("addr_info", []) if "local" in a}),
        "links": {
            link["ifname"]: [
                f"{a['local']}/{a['prefixlen']}"
                for a in link.get("addr_info", [])
                if a.get("family") == "inet" and a.get("scope") == "global" and not a.get("secondary")
            ]
            for link in links
        },
        "routes": [
            {key: route[key] for key in ("type", "dst", "gateway", "dev", "prefsrc", "metric") if key in route}
            for route in routes
        ],
    }
