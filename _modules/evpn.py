"""
The federation model: what every node of every site must hold, computed from the ``evpn`` pillar.

This is the one place that knows the federation. Every function here is a pure function of the
pillar (and, where noted, data passed in); nothing is read from or written to the system. The
states and SLS files use it; the ``pvesdn``, ``pvefw`` and ``wireguard`` modules do the work.

Defaults live in one place, :data:`SCHEMA` below; ``pillar.example`` documents them and a test
keeps the two in step.

Every function takes an optional ``federation`` argument: the ``evpn`` pillar to use instead of
this minion's own (runners and tests pass it). Functions other than :func:`validate` raise
``SaltInvocationError`` listing every problem when the pillar is invalid.

CLI Example:

.. code-block:: bash

    salt-call evpn.validate
    salt-call evpn.node
    salt '*' evpn.wireguard_peers
    salt-call evpn.sdn roz
"""

import copy
import difflib
import ipaddress
import logging
import re

from salt.exceptions import SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "evpn"
CONTEXT = "evpn"  # the validation of the last pillar seen: (its repr, (config, report))

# PVE identifier rules (pve-network SDN id formats, pve-common pve-node).
PVE_ZONE_OR_VNET_ID = re.compile(r"^[a-z][a-z0-9]*[a-z0-9]$", re.IGNORECASE)
PVE_CONTROLLER_ID = re.compile(r"^[a-z][a-z0-9_-]*[a-z0-9]$", re.IGNORECASE)
PVE_NODE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$", re.IGNORECASE)
SITE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$", re.IGNORECASE)
INTERFACE_NAME = re.compile(r"^[a-z][a-z0-9_.-]{1,14}$", re.IGNORECASE)
HOSTNAME_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)

# pve-network gives exit nodes with exitnodes-local-routing this fixed veth pair.
LOCAL_ROUTING_NET = ipaddress.ip_network("10.255.255.0/30")
VXLAN_OVERHEAD = 50

# Names of the PVE firewall objects this federation owns.
IPSET_WIREGUARD = "evpn-wireguard"
IPSET_SDN = "evpn-sdn"
IPSET_MANAGEMENT = "evpn-management"
IPSET_GATEWAYS = "evpn-gateways"
GROUP_WIREGUARD = "evpn-wg"
GROUP_SDN = "evpn-sdn"
GROUP_ROUTED = "evpn-routed"
# Names of our cluster rules: each rule's comment starts with its name, which is how the
# firewall states find it among the user's rules.
RULE_MANAGEMENT = "evpn-management"
RULE_WIREGUARD = "evpn-wireguard"
RULE_GROUP_WIREGUARD = "evpn-wg"
RULE_GROUP_ROUTED = "evpn-routed"
RULE_GROUP_SDN_BLANKET = "evpn-sdn"  # the group's reference without -i of earlier versions; removed
RULE_GROUP_SDN_VNETS = f"{GROUP_SDN}-*"  # the references of the SDN group, one per vnet: evpn-sdn-<vnet>
BGP_PORT = 179
VXLAN_PORT = 4789
MANAGEMENT_PORTS = "22,8006"


def __virtual__():
    return __virtualname__


# --------------------------------------------------------------------------------------------
# Schema: key -> Key(check, default). REQUIRED marks keys without a default; a derived default
# (``None`` here) is filled in by _derive_defaults from other keys.
# --------------------------------------------------------------------------------------------

REQUIRED = object()


class Key:
    """A leaf of the schema: a check returning an error message (or None), and a default."""

    def __init__(self, check, default=REQUIRED):
        self.check = check
        self.default = default


class MapOf:
    """A mapping whose keys the user chooses (sites, nodes, vnets, subnets)."""

    def __init__(self, key_check, value_schema, required=False, min_items=0):
        self.key_check = key_check
        self.value_schema = value_schema
        self.required = required
        self.min_items = min_items


def _integer(low, high):
    def check(value):
        if not isinstance(value, int) or isinstance(value, bool):
            return f"must be an integer, got {value!r}"
        if not low <= value <= high:
            return f"must be between {low} and {high}, got {value}"
        return None

    return check


def _boolean(value):
    if not isinstance(value, bool):
        return f"must be true or false, got {value!r}"
    return None


def _string_matching(pattern, what, max_length=None):
    def check(value):
        if not isinstance(value, str):
            return f"must be a string, got {value!r}"
        if max_length and len(value) > max_length:
            return f"{value!r} is longer than {max_length} characters ({what})"
        if not pattern.match(value):
            return f"{value!r} is not valid ({what})"
        return None

    return check


def _pve_id(kind):
    return _string_matching(
        PVE_ZONE_OR_VNET_ID,
        f"PVE {kind} ids are 2-8 characters, a letter first, then letters and digits",
        max_length=8,
    )


def _host_address(value):
    if not isinstance(value, str):
        return f"must be an IP address string, got {value!r}"
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return f"{value!r} is not an IP address (no prefix length: the address of one host)"
    if address.is_unspecified or address.is_loopback or address.is_multicast:
        return f"{value} cannot be a host address"
    return None


def _network(value, min_prefix=0):
    if not isinstance(value, str) or "/" not in value:
        return f"{value!r} is not a network in CIDR notation (address/prefix length)"
    try:
        network = ipaddress.ip_network(value)
    except ValueError:
        try:
            return f"{value!r} has host bits set: did you mean {ipaddress.ip_network(value, strict=False)}?"
        except ValueError:
            return f"{value!r} is not a network in CIDR notation"
    if network.prefixlen < min_prefix:
        return f"{value} is too large: the prefix length must be at least {min_prefix}"
    return None


def _network_or_address(value):
    if isinstance(value, str) and "/" not in value:
        return _host_address(value)
    return _network(value)


def _sdn_subnet(value):
    # PVE accepts prefix lengths 8-32 (IPv4) and 8-128 (IPv6) for SDN subnets.
    return _network(value, min_prefix=8)


def _list_of(item_check):
    def check(value):
        if not isinstance(value, list):
            return f"must be a list, got {value!r}"
        problems = [f"item {i}: {err}" for i, item in enumerate(value) if (err := item_check(item))]
        return "; ".join(problems) or None

    return check


def _any_string(value):
    if not isinstance(value, str) or not value:
        return f"must be a non-empty string, got {value!r}"
    return None


def _optional(check):
    return lambda value: None if value is None else check(value)


def _hostname(host):
    if len(host) > 253:
        return False
    return all(HOSTNAME_LABEL.match(label) for label in host.rstrip(".").split("."))


def split_endpoint(endpoint, default_port):
    """
    Split ``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address into (host, port).
    Raises ValueError with a message saying what is wrong.
    """
    if not isinstance(endpoint, str) or not endpoint:
        raise ValueError(f"must be a DNS name or IP address, got {endpoint!r}")
    host, port = endpoint, default_port
    if endpoint.startswith("["):
        host, bracket, rest = endpoint[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{endpoint!r} is not [IPv6]:port")
        if rest:
            port = rest[1:]
    elif endpoint.count(":") == 1:
        host, port = endpoint.split(":")
    if isinstance(port, str):
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"port {port!r} of {endpoint!r} is not between 1 and 65535")
        port = int(port)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if ":" in host or not _hostname(host):
            raise ValueError(f"{host!r} is neither an IP address nor a DNS name") from None
    return host, port


def _endpoint(value):
    try:
        split_endpoint(value, 1)
    except ValueError as err:
        return str(err)
    return None


SUBNET_SCHEMA = {
    "gateway": Key(_optional(_host_address), None),
    "snat": Key(_boolean, False),
}

VNET_SCHEMA = {
    "tag": Key(_integer(1, 16777215)),
    "subnets": MapOf(_sdn_subnet, SUBNET_SCHEMA),
}


IPV4_UNDERLAY = (
    "is IPv6, and the underlay is IPv4 only (the WireGuard routes, the firewall's IP sets, FRR's BGP "
    "peers and PVE's VTEP address are built and tested for IPv4): use an IPv4 address here; "
    "endpoints may be IPv6"
)


def _underlay(check):
    """``check``, then: an IPv4 address or network (the WireGuard addresses, the underlay)."""

    def checked(value):
        problem = check(value)
        if problem is None and ipaddress.ip_network(value, strict=False).version == 6:
            return f"{value} {IPV4_UNDERLAY}"
        return problem

    return checked


def _pve_node_name(value):
    return _string_matching(PVE_NODE_NAME, "a PVE node name is a host name label", 63)(value)


NODE_SCHEMA = {
    "pve_node": Key(_optional(_pve_node_name), None),  # default: minion id up to the first dot
    "address": Key(_underlay(_host_address)),
    "endpoint": Key(_endpoint),
    "lan_endpoint": Key(_optional(_endpoint), None),  # what peers of the same site use instead
}

SITE_SCHEMA = {
    "network": Key(_optional(_underlay(_network)), None),
    "sdn_leader": Key(_optional(_any_string), None),  # default: first node id, sorted
    "exit_nodes": Key(_optional(_list_of(_any_string)), None),  # default: every node
    "primary_exit_node": Key(_optional(_any_string), None),
    "nodes": MapOf(_any_string, NODE_SCHEMA, required=True, min_items=1),
    "vnets": MapOf(_pve_id("vnet"), VNET_SCHEMA),
    "firewall": {
        "enable": Key(_optional(_boolean), None),  # None: leave the cluster firewall switch alone
        "management": Key(_list_of(_network_or_address), []),
        "nftables": Key(_optional(_boolean), None),  # None: leave each node's backend alone
    },
}

SCHEMA = {
    "asn": Key(_integer(1, 4294967295)),
    "prune": Key(_boolean, False),
    "controller": Key(
        _string_matching(
            PVE_CONTROLLER_ID,
            "PVE controller ids start with a letter and hold letters, digits, '-' and '_'",
            max_length=64,
        )
    ),
    "zone": {
        "id": Key(_pve_id("zone")),
        "vrf_vxlan": Key(_integer(1, 16777215)),
        "mtu": Key(_optional(_integer(576, 65535)), None),  # default: wireguard.mtu - 50
        "advertise_subnets": Key(_boolean, False),
        "exitnodes_local_routing": Key(_boolean, False),
    },
    "wireguard": {
        "interface": Key(_string_matching(INTERFACE_NAME, "an interface name of 2-15 characters"), "wg0"),
        "port": Key(_integer(1, 65535), 51820),
        "mtu": Key(_integer(1280, 9000), 1420),
        "keepalive": Key(_integer(0, 65535), 25),
    },
    "vnets": MapOf(_pve_id("vnet"), VNET_SCHEMA),
    "sites": MapOf(
        _string_matching(SITE_NAME, "letters, digits, '-' and '_'"),
        SITE_SCHEMA,
        required=True,
        min_items=1,
    ),
}


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


class _Report:
    """Errors and warnings, each prefixed with the pillar key path it is about."""

    def __init__(self):
        self.errors = []
        self.warnings = []

    def error(self, path, message):
        self.errors.append(f"{':'.join(path)}: {message}")

    def warn(self, path, message):
        self.warnings.append(f"{':'.join(path)}: {message}")


def _unknown_key_message(key, known):
    message = f"unknown key {key!r}"
    close = difflib.get_close_matches(str(key), known, n=1)
    if close:
        return f"{message}: did you mean {close[0]!r}?"
    return f"{message} (known keys: {', '.join(sorted(known))})"


def _apply_schema(data, schema, path, report):
    """
    Check ``data`` against ``schema`` and return a copy with defaults filled in. Values that
    fail their check are left out of the copy, so later checks only see well-formed values.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        report.error(path, f"must be a mapping, got {type(data).__name__}")
        return {}
    result = {}
    for key in data:
        if key not in schema:
            report.error(path + (str(key),), _unknown_key_message(key, list(schema)))
    for key, spec in schema.items():
        key_path = path + (key,)
        if isinstance(spec, Key):
            value = data.get(key)
            if value is None:
                if spec.default is REQUIRED:
                    report.error(key_path, "is required")
                    continue
                value = spec.default
            message = spec.check(value)
            if message:
                report.error(key_path, message)
            else:
                result[key] = value
        elif isinstance(spec, MapOf):
            result[key] = _apply_map_schema(data.get(key), spec, key_path, report)
        else:
            result[key] = _apply_schema(data.get(key), spec, key_path, report)
    return result


def _apply_map_schema(data, spec, path, report):
    if data is None:
        data = {}
        if spec.required:
            report.error(path, "is required")
            return {}
    if not isinstance(data, dict):
        report.error(path, f"must be a mapping, got {type(data).__name__}")
        return {}
    if len(data) < spec.min_items:
        report.error(path, f"must hold at least {spec.min_items} entry")
    result = {}
    for key, value in data.items():
        key_path = path + (str(key),)
        message = spec.key_check(key)
        if message:
            report.error(key_path, message)
            continue
        result[key] = _apply_schema(value, spec.value_schema, key_path, report)
    return result


def _derive_defaults(config, report):
    """Fill in the defaults that depend on other keys."""
    if config["zone"].get("mtu") is None and "mtu" in config["wireguard"]:
        config["zone"]["mtu"] = config["wireguard"]["mtu"] - VXLAN_OVERHEAD
    for site_name, site in config["sites"].items():
        node_ids = sorted(site["nodes"])
        for node_id, node_conf in site["nodes"].items():
            if node_conf.get("pve_node") is None:
                node_conf["pve_node"] = node_id.split(".")[0]
                if _pve_node_name(node_conf["pve_node"]):
                    report.error(
                        ("evpn", "sites", site_name, "nodes", node_id, "pve_node"),
                        f"the default {node_conf['pve_node']!r} (the minion id up to the first "
                        "dot) is not a PVE node name: set pve_node",
                    )
        if site.get("sdn_leader") is None and node_ids:
            site["sdn_leader"] = node_ids[0]
        if site.get("exit_nodes") is None:
            site["exit_nodes"] = node_ids


def _check_federation(config, report):
    """The rules that span keys: uniqueness, overlaps, membership, MTU."""
    zone = config["zone"]
    wireguard = config["wireguard"]
    if "mtu" in wireguard and zone.get("mtu") is not None:
        if zone["mtu"] > wireguard["mtu"] - VXLAN_OVERHEAD:
            report.error(
                ("evpn", "zone", "mtu"),
                f"{zone['mtu']} does not fit: VXLAN needs {VXLAN_OVERHEAD} bytes inside the "
                f"WireGuard MTU of {wireguard['mtu']}, so at most "
                f"{wireguard['mtu'] - VXLAN_OVERHEAD}",
            )
    if zone.get("exitnodes_local_routing"):
        report.warn(
            ("evpn", "zone", "exitnodes_local_routing"),
            "true is a known trap: PVE gives every exit node a veth pair with the fixed "
            f"addresses {LOCAL_ROUTING_NET} and stops importing the zone's routes into the "
            "default VRF there; only use it to reach guests from the exit node itself",
        )

    site_networks = _site_networks(config)
    _report_overlaps([(net, path, "site") for net, _, path in site_networks], report)
    underlay = _check_nodes(config, site_networks, report)
    overlay = _check_vnets(config, report)
    # SDN subnets must not overlap each other, a site network or a node address; the error is
    # reported at the subnet.
    _report_overlaps(
        [(net, path, "site") for net, _, path in site_networks]
        + [(net, path, "node") for net, path in underlay]
        + [(net, path, "sdn") for net, path in overlay],
        report,
        involving="sdn",
    )
    if zone.get("exitnodes_local_routing"):
        networks = underlay + overlay + [(net, path) for net, _, path in site_networks]
        for network, path in networks:
            if network.version == 4 and network.overlaps(LOCAL_ROUTING_NET):
                report.error(
                    path,
                    f"{network} collides with {LOCAL_ROUTING_NET}, which PVE uses on exit "
                    "nodes when exitnodes_local_routing is true",
                )


def _site_networks(config):
    return [
        (ipaddress.ip_network(site["network"]), site_name, ("evpn", "sites", site_name, "network"))
        for site_name, site in config["sites"].items()
        if site.get("network")
    ]


def _check_nodes(config, site_networks, report):
    """Unique minion ids, PVE node names, addresses and endpoints; roles of each site.
    Returns the node addresses as (host network, path)."""
    owner_of_minion = {}
    owner_of_address = {}
    owner_of_endpoint = {}
    underlay = []
    for site_name, site in config["sites"].items():
        site_path = ("evpn", "sites", site_name)
        own_network = site.get("network") and ipaddress.ip_network(site["network"])
        pve_names = {}
        site_lan_endpoints = {}
        for node_id, node_conf in site["nodes"].items():
            node_path = site_path + ("nodes", node_id)
            if node_id in owner_of_minion:
                report.error(node_path, f"minion id is already a node of site {owner_of_minion[node_id]!r}")
            owner_of_minion.setdefault(node_id, site_name)

            pve_node = node_conf["pve_node"]
            if pve_node in pve_names:
                report.error(
                    node_path + ("pve_node",),
                    f"{pve_node!r} is already the PVE node name of {pve_names[pve_node]!r}",
                )
            pve_names.setdefault(pve_node, node_id)

            for key in ("endpoint", "lan_endpoint"):
                if node_conf.get(key) is None:
                    continue
                # A public endpoint is one for the whole federation; a LAN endpoint one per site.
                endpoint = split_endpoint(node_conf[key], config["wireguard"].get("port"))
                owner = owner_of_endpoint if key == "endpoint" else site_lan_endpoints
                if endpoint in owner:
                    report.error(
                        node_path + (key,),
                        f"{node_conf[key]!r} is already the {key} of {':'.join(owner[endpoint])}",
                    )
                owner.setdefault(endpoint, node_path)

            if "address" not in node_conf:
                continue
            address_path = node_path + ("address",)
            address = ipaddress.ip_address(node_conf["address"])
            if address in owner_of_address:
                report.error(
                    address_path,
                    f"{address} is already the address of {':'.join(owner_of_address[address])}",
                )
                continue
            owner_of_address[address] = node_path
            underlay.append((ipaddress.ip_network(address), address_path))
            elsewhere = [name for net, name, _ in site_networks if name != site_name and _contains(net, address)]
            if own_network:
                if not _contains(own_network, address):
                    report.error(address_path, f"{address} is outside this site's network {own_network}")
            elif elsewhere:
                report.error(address_path, f"{address} lies in the network of site {elsewhere[0]!r}")

        _check_site_roles(site, site_path, report)
        _check_firewall(site, site_path, report)
        _check_hairpin(config, site, site_path, report)
    return underlay


def _check_hairpin(config, site, site_path, report):
    """Nodes behind one public address (one router, a forwarded port each) reach each other
    through it only if the router does hairpin NAT, which most ISP routers do not."""
    hosts = {}
    for node_id, node_conf in site["nodes"].items():
        if "endpoint" in node_conf:
            host, _ = split_endpoint(node_conf["endpoint"], config["wireguard"].get("port"))
            hosts.setdefault(host, []).append(node_id)
    for host, node_ids in hosts.items():
        for node_id in node_ids if len(node_ids) > 1 else ():
            if site["nodes"][node_id].get("lan_endpoint") is None:
                report.warn(
                    site_path + ("nodes", node_id, "lan_endpoint"),
                    f"is not set, so the other nodes behind {host} reach this node through that public "
                    "address, which needs hairpin NAT on the router: set the node's LAN address",
                )


def _check_vnets(config, report):
    """Unique vnet ids and VNIs, gateways inside subnets. Returns the subnets as
    (network, path)."""
    owner_of_vnet = {}
    owner_of_tag = {}
    overlay = []
    for vnet_id, vnet, vnet_path in _all_vnets(config):
        if vnet_id in owner_of_vnet:
            report.error(vnet_path, f"vnet id is already used at {':'.join(owner_of_vnet[vnet_id])}")
        owner_of_vnet.setdefault(vnet_id, vnet_path)
        tag = vnet.get("tag")
        if tag is not None:
            if tag == config["zone"].get("vrf_vxlan"):
                report.error(vnet_path + ("tag",), f"{tag} is the zone's vrf_vxlan (the L3 VNI)")
            elif tag in owner_of_tag:
                report.error(
                    vnet_path + ("tag",),
                    f"VNI {tag} is already the tag of {':'.join(owner_of_tag[tag])}",
                )
            owner_of_tag.setdefault(tag, vnet_path)
        for cidr, subnet in vnet["subnets"].items():
            subnet_path = vnet_path + ("subnets", cidr)
            network = ipaddress.ip_network(cidr)
            overlay.append((network, subnet_path))
            if subnet.get("gateway") is not None:
                _check_gateway(ipaddress.ip_address(subnet["gateway"]), network, subnet_path, report)
    return overlay


def _contains(network, address):
    return network.version == address.version and address in network


def _check_site_roles(site, site_path, report):
    nodes = site["nodes"]
    leader = site.get("sdn_leader")
    if leader is not None and nodes and leader not in nodes:
        report.error(site_path + ("sdn_leader",), f"{leader!r} is not a node of this site")
    exit_nodes = site.get("exit_nodes") or []
    for i, exit_node in enumerate(exit_nodes):
        if exit_node not in nodes:
            report.error(site_path + ("exit_nodes", str(i)), f"{exit_node!r} is not a node of this site")
    primary = site.get("primary_exit_node")
    if primary is not None and primary not in exit_nodes:
        report.error(site_path + ("primary_exit_node",), f"{primary!r} is not one of this site's exit nodes")


def _check_firewall(site, site_path, report):
    firewall = site["firewall"]
    if firewall.get("enable") and not firewall.get("management"):
        report.error(
            site_path + ("firewall", "management"),
            "is empty while firewall:enable is true: the firewall would lock out SSH and the web "
            "UI; list the networks you manage the cluster from",
        )


def _check_gateway(gateway, network, subnet_path, report):
    path = subnet_path + ("gateway",)
    if not _contains(network, gateway):
        report.error(path, f"{gateway} is outside its subnet {network}")
    elif (
        network.version == 4
        and network.prefixlen < 31
        and gateway
        in (
            network.network_address,
            network.broadcast_address,
        )
    ):
        report.error(path, f"{gateway} is the network or broadcast address of {network}")


def _report_overlaps(entries, report, involving=None):
    """
    Report every (network, path, kind) entry that overlaps an entry earlier in the pillar,
    at the later one's path; with ``involving``, only pairs where one side is of that kind.
    """
    ordered = sorted(enumerate(entries), key=lambda e: (e[1][0].version, e[1][0].network_address, e[0]))
    reaching = []  # entries that may still cover the next start address
    for index, entry in ordered:
        network = entry[0]
        reaching = [
            (i, other)
            for i, other in reaching
            if other[0].version == network.version and other[0].broadcast_address >= network.network_address
        ]
        for other_index, other in reaching:
            if involving and involving not in (entry[2], other[2]):
                continue
            (later, earlier) = (entry, other) if index > other_index else (other, entry)
            report.error(later[1], f"{later[0]} overlaps {earlier[0]} at {':'.join(earlier[1])}")
        reaching.append((index, entry))


def _all_vnets(config):
    """Every vnet of the federation: (id, vnet, pillar path), stretched ones first."""
    for vnet_id, vnet in config["vnets"].items():
        yield vnet_id, vnet, ("evpn", "vnets", vnet_id)
    for site_name, site in config["sites"].items():
        for vnet_id, vnet in site["vnets"].items():
            yield vnet_id, vnet, ("evpn", "sites", site_name, "vnets", vnet_id)


def _check(federation):
    """The pillar completed and checked: (config, report), computed once per pillar. The result
    is kept in ``__context__`` with the pillar it came from (its repr: a changed pillar is
    validated again), for the run, and in a minion's own process for as long as its modules
    stay loaded (the endpoint beacon's every tick). Callers must not change what it returns."""
    key = repr(federation)
    kept = __context__.get(CONTEXT)
    if kept is not None and kept[0] == key:
        log.debug("evpn: the pillar's validation reused")
        return kept[1]
    log.debug("evpn: validating the pillar")
    report = _Report()
    config = _apply_schema(federation, SCHEMA, ("evpn",), report)
    _derive_defaults(config, report)
    _check_federation(config, report)
    __context__[CONTEXT] = (key, (config, report))
    return config, report


def _pillar(federation):
    if federation is not None:
        return federation
    return __pillar__.get("evpn")


def _valid_config(federation):
    config, report = _check(_pillar(federation))
    if report.errors:
        raise SaltInvocationError("the evpn pillar is invalid, nothing was changed:\n  " + "\n  ".join(report.errors))
    return config


# --------------------------------------------------------------------------------------------
# Pillar files Salt could not render: it leaves them out of the pillar and lists its messages
# under ``_errors``; validate names each file instead of checking the federation without it.
# --------------------------------------------------------------------------------------------

SLS_IN_MESSAGE = re.compile(r"SLS '([^']+)'")


def _render_errors(messages):
    errors = []
    for message in dict.fromkeys(messages):  # Salt repeats a message for every include of the file
        sls = SLS_IN_MESSAGE.search(message)
        if sls is None:
            errors.append(f"pillar: {message}")
            continue
        name = sls.group(1)
        where = f"pillar file {name.replace('.', '/')}.sls (SLS {name})"
        if "*" in name:  # an include that matches no file: an empty sites folder
            where = f"pillar files {name.replace('.', '/')}.sls (include {name}): none exists yet, add one per site"
        hint = (
            " (the cause is in Salt's log; salt-run evpn.validate on a master shows it)"
            if "master log" in message
            else ""
        )
        errors.append(f"{where}: {message}{hint}")
    return errors


# --------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------


def validate(federation=None, render_errors=None):
    """
    Check the ``evpn`` pillar against every rule of the federation: types, unknown keys, PVE id
    rules, unique and well-formed addresses, VNIs and vnet ids, overlapping networks anywhere,
    gateways inside their subnets, exit nodes and leaders that are nodes of their site, MTU and
    port ranges. Every problem is reported, each prefixed with its pillar key path. A pillar file
    that Salt could not render is an error too, naming the file and Salt's message: Salt leaves
    what it holds out of the pillar, so a broken site file would otherwise just vanish from the
    federation.

    Returns ``{"errors": [...], "warnings": [...]}``; the pillar is usable when ``errors`` is
    empty. With errors, the exit code of ``salt-call`` (and ``salt``) is 1.

    federation
        The ``evpn`` pillar to check instead of this minion's own.

    render_errors
        Salt's messages for the pillar files it could not render, instead of those of this
        minion's pillar (its ``_errors``).

    CLI Example:

    .. code-block:: bash

        salt-call evpn.validate
    """
    if render_errors is None and federation is None:
        render_errors = __pillar__.get("_errors") or []
    errors, warnings = _render_errors(render_errors or []), []
    if _pillar(federation) is None:
        errors.append("evpn: is required (this minion has no evpn pillar)")
    else:
        _, report = _check(_pillar(federation))
        errors += report.errors
        warnings += report.warnings
    if errors:
        __context__["retcode"] = 1
    return {"errors": errors, "warnings": warnings}


def config(federation=None):
    """
    The ``evpn`` pillar with every default filled in (the map SLS files read).

    federation
        The ``evpn`` pillar to use instead of this minion's own.

    CLI Example:

    .. code-block:: bash

        salt-call evpn.config
    """
    return copy.deepcopy(_valid_config(federation))


def members(federation=None):
    """
    The minion ids of every node of the federation, sorted: the targets of the ``evpn`` states
    and the only minions whose events the endpoint reactor accepts.

    federation
        The ``evpn`` pillar to use instead of this minion's own.

    CLI Example:

    .. code-block:: bash

        salt-call evpn.members
    """
    config_ = _valid_config(federation)
    return sorted(node_id for site in config_["sites"].values() for node_id in site["nodes"])


def _find_node(config_, minion_id):
    for site_name, site in config_["sites"].items():
        if minion_id in site["nodes"]:
            return site_name, site, site["nodes"][minion_id]
    raise SaltInvocationError(f"minion_id: {minion_id!r} is not a node of the federation (evpn:sites:*:nodes)")


def _endpoint_view(endpoint, port):
    host, port = split_endpoint(endpoint, port)
    shown_host = f"[{host}]" if ":" in host else host
    return {"endpoint": f"{shown_host}:{port}", "endpoint_host": host, "endpoint_port": port}


def _this_minion(minion_id):
    return minion_id or __opts__["id"]


def node(minion_id=None, federation=None):
    """
    This node's place in the federation: its site, PVE node name, WireGuard address, public
    endpoint, its site's SDN leader and whether it is that leader, and whether it is an exit
    node (or the primary one).

    minion_id
        The node to describe; default: this minion.

    federation
        The ``evpn`` pillar to use instead of this minion's own.

    CLI Example:

    .. code-block:: bash

        salt-call evpn.node
        salt-call evpn.node pve-wro1
    """
    config_ = _valid_config(federation)
    minion_id = _this_minion(minion_id)
    site_name, site, node_conf = _find_node(config_, minion_id)
    return {
        "id": minion_id,
        "site": site_name,
        "pve_node": node_conf["pve_node"],
        "address": node_conf["address"],
        **_endpoint_view(node_conf["endpoint"], config_["wireguard"]["port"]),
        "lan_endpoint": node_conf["lan_endpoint"],
        "sdn_leader": site["sdn_leader"],
        "is_sdn_leader": site["sdn_leader"] == minion_id,
        "is_exit_node": minion_id in site["exit_nodes"],
        "is_primary_exit_node": site.get("primary_exit_node") == minion_id,
    }


def wireguard_peers(minion_id=None, federation=None):
    """
    The WireGuard peers of a node: every other node of the federation, sorted by minion id,
    each with its address, AllowedIPs (its address alone), endpoint and keepalive. The endpoint
    of a peer in the node's own site is the peer's ``lan_endpoint`` where it has one (routers
    rarely do hairpin NAT), else its public ``endpoint``. Public keys come from the mine and are
    added by the wireguard state.

    minion_id
        The node whose peers to list; default: this minion.

    federation
        The ``evpn`` pillar to use instead of this minion's own.

    CLI Example:

    .. code-block:: bash

        salt-call evpn.wireguard_peers
    """
    config_ = _valid_config(federation)
    minion_id = _this_minion(minion_id)
    own_site, _, _ = _find_node(config_, minion_id)
    wireguard = config_["wireguard"]
    peers = []
    for site_name, site in config_["sites"].items():
        for peer_id, peer in site["nodes"].items():
            if peer_id == minion_id:
                continue
            address = ipaddress.ip_address(peer["address"])
            endpoint = peer["lan_endpoint"] if site_name == own_site and peer["lan_endpoint"] else peer["endpoint"]
            peers.append(
                {
                    "name": peer_id,
                    "site": site_name,
                    "address": peer["address"],
                    "allowed_ips": [f"{address}/{address.max_prefixlen}"],
                    **_endpoint_view(endpoint, wireguard["port"]),
                    "keepalive": wireguard["keepalive"],
                }
            )
    return sorted(peers, key=lambda peer: peer["name"])


def endpoint_names(federation=None):
    """
    The DNS names among the endpoints (public and LAN) of every node, sorted (IP literals cannot
    move): what the ``evpn_endpoint`` beacon watches on every node.

    federation
        The ``evpn`` pillar to use instead of this minion's own.

    CLI Example:

    .. code-block:: bash

        salt-call evpn.endpoint_names
    """
    config_ = _valid_config(federation)
    names = set()
    for site in config_["sites"].values():
        for node_conf in site["nodes"].values():
            for endpoint in filter(None, (node_conf["endpoint"], node_conf["lan_endpoint"])):
                host, _ = split_endpoint(endpoint, config_["wireguard"]["port"])
                try:
                    ipaddress.ip_address(host)
                except ValueError:
                    names.add(host.rstrip(".").lower())
    return sorted(names)


def _federation_addresses(config_):
    addresses = [
        ipaddress.ip_address(node_conf["address"])
        for site in config_["sites"].values()
        for node_conf in site["nodes"].values()
    ]
    return [str(a) for a in sorted(addresses, key=lambda a: (a.version, a))]


def _site(config_, site_name):
    if site_name is None:
        site_name, _, _ = _find_node(config_, _this_minion(None))
    if site_name not in config_["sites"]:
        raise SaltInvocationError(
            f"site: {site_name!r} is not a site of the federation (known: {', '.join(config_['sites'])})"
        )
    return site_name, config_["sites"][site_name]


def _flag(value):
    return 1 if value else 0


def sdn(site=None, federation=None):
    """
    The PVE SDN objects a site's cluster must hold, keyed by PVE id, with the exact parameter
    names of the PVE API: the EVPN controller (peers: every WireGuard address of the
    federation, sorted), the zone, the vnets (the site's own and the stretched ones) and their
    subnets (ids ``<zone>-<network>-<prefixlen>``, as PVE names them). A parameter the pillar
    leaves unset is ``None``, so the state removes it from PVE.

    site
        The site; default: this minion's site.

    federation
        The ``evpn`` pillar to use instead of this minion's own.

    CLI Example:

    .. code-block:: bash

        salt-call evpn.sdn
        salt-call evpn.sdn wro
    """
    config_ = _valid_config(federation)
    _, site_conf = _site(config_, site)
    zone = config_["zone"]
    pve_name = {node_id: n["pve_node"] for node_id, n in site_conf["nodes"].items()}

    primary = site_conf.get("primary_exit_node")
    zone_params = {
        "type": "evpn",
        "controller": config_["controller"],
        "vrf-vxlan": zone["vrf_vxlan"],
        "exitnodes": ",".join(sorted(pve_name[n] for n in site_conf["exit_nodes"])) or None,
        "exitnodes-primary": pve_name[primary] if primary else None,
        "exitnodes-local-routing": _flag(zone["exitnodes_local_routing"]),
        "advertise-subnets": _flag(zone["advertise_subnets"]),
        "mtu": zone["mtu"],
    }

    vnets = {}
    subnets = {}
    for vnet_id, vnet in list(config_["vnets"].items()) + list(site_conf["vnets"].items()):
        vnets[vnet_id] = {"zone": zone["id"], "tag": vnet["tag"]}
        for cidr, subnet in vnet["subnets"].items():
            network = ipaddress.ip_network(cidr)
            subnet_id = f"{zone['id']}-{network.network_address}-{network.prefixlen}"
            subnets[subnet_id] = {
                "type": "subnet",
                "vnet": vnet_id,
                "subnet": str(network),
                "gateway": subnet["gateway"],
                "snat": _flag(subnet["snat"]),
            }

    return {
        "controllers": {
            config_["controller"]: {
                "type": "evpn",
                "asn": config_["asn"],
                "peers": ",".join(_federation_addresses(config_)),
            }
        },
        "zones": {zone["id"]: zone_params},
        "vnets": vnets,
        "subnets": subnets,
    }


def _ipset_entry(cidr):
    # PVE stores entries with host bits cleared and /32 (/128) stripped.
    network = ipaddress.ip_network(cidr, strict=False)
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def _rule(direction, action, comment, **params):
    return {"type": direction, "action": action, **params, "enable": 1, "comment": comment}


def _named_rule(name, direction, action, description, **params):
    """A cluster rule and the name that marks it as ours: its comment starts with the name."""
    return {"name": name, "rule": _rule(direction, action, f"{name}: {description}", **params)}


def _scoped(ipset):
    """An IP set reference with its scope: proxmox-firewall before 1.2.0 (every PVE 8 node on
    nftables) refuses a whole file that names a cluster IP set without it, and pve-firewall
    takes the scope since 5.0.1 (PVE 8.0)."""
    return f"+dc/{ipset}"


def firewall(site=None, federation=None):
    """
    The PVE firewall objects a site's cluster must hold, each rule as narrow as the federation
    needs:

    - IP sets: the federation's WireGuard addresses, its SDN subnets, the gateways of this
      cluster's vnets, and the site's management networks; always referenced with their scope
      (``+dc/<name>``).
    - Security groups: ``evpn-wg`` (BGP and VXLAN from federation nodes), referenced with
      ``-i <WireGuard interface>`` since PVE forbids ``-i`` inside a group; ``evpn-sdn`` (guests
      may ping their gateway: ICMP to the gateway addresses, nothing else of the host),
      referenced once per vnet of this cluster with ``-i <vnet>``, so an SDN source address
      arriving on any other interface (spoofed: rp_filter is off) matches nothing of ours;
      ``evpn-routed`` (FORWARD for the SDN subnets, which only proxmox-firewall honours, and only
      with ``policy_forward: DROP``), referenced without ``-i``: a group referenced with ``-i``
      holding forward rules made proxmox-firewall 0.6.0 abort its forward pass.
    - The cluster rules in order (management access first, the WireGuard port from anywhere,
      then the groups), each as ``{"name", "rule"}`` where the rule's comment starts with its name
      (what marks it as ours among the user's rules); ``absent_rules``: names of ours that must
      go (management access once no management network is left; ``evpn-sdn``, the blanket
      reference of earlier versions; ``evpn-sdn-*``, the references for vnets no longer in the
      cluster).
    - ``options``: ``enable`` only when the pillar sets it; ``node_options``: per PVE node name,
      ``nftables`` (the backend) only when the pillar sets it.

    The pvefw states leave FORWARD rules out where the cluster's PVE has none (before 8.3).

    site
        The site; default: this minion's site.

    federation
        The ``evpn`` pillar to use instead of this minion's own.

    CLI Example:

    .. code-block:: bash

        salt-call evpn.firewall
        salt-call evpn.firewall roz
    """
    config_ = _valid_config(federation)
    _, site_conf = _site(config_, site)
    wireguard = config_["wireguard"]
    settings = site_conf["firewall"]
    management = settings["management"]
    sdn_subnets = [cidr for _, vnet, _ in _all_vnets(config_) for cidr in vnet["subnets"]]
    cluster_vnets = {**config_["vnets"], **site_conf["vnets"]}
    gateways = sorted(
        {s["gateway"] for vnet in cluster_vnets.values() for s in vnet["subnets"].values() if s["gateway"]},
        key=lambda a: (ipaddress.ip_address(a).version, ipaddress.ip_address(a)),
    )

    ipsets = {
        IPSET_WIREGUARD: {
            "comment": "evpn: WireGuard addresses of the federation",
            "cidrs": sorted(_ipset_entry(a) for a in _federation_addresses(config_)),
        },
        IPSET_SDN: {
            "comment": "evpn: SDN subnets of the federation",
            "cidrs": sorted(_ipset_entry(c) for c in sdn_subnets),
        },
        IPSET_GATEWAYS: {
            "comment": "evpn: gateways of this cluster's vnets",
            "cidrs": sorted(_ipset_entry(g) for g in gateways),
        },
    }
    from_federation = _scoped(IPSET_WIREGUARD)
    ping = [_rule("in", "ACCEPT", "evpn: guests ping their gateway", proto="icmp", dest=_scoped(IPSET_GATEWAYS))]
    if any(ipaddress.ip_address(g).version == 6 for g in gateways):
        ping.append(
            _rule("in", "ACCEPT", "evpn: guests ping their gateway", proto="ipv6-icmp", dest=_scoped(IPSET_GATEWAYS))
        )
    groups = {
        GROUP_WIREGUARD: {
            "comment": "evpn: overlay control and data plane between federation nodes",
            "rules": [
                _rule(
                    "in", "ACCEPT", "evpn: BGP EVPN sessions", proto="tcp", dport=str(BGP_PORT), source=from_federation
                ),
                _rule("in", "ACCEPT", "evpn: VXLAN", proto="udp", dport=str(VXLAN_PORT), source=from_federation),
                _rule("in", "ACCEPT", "evpn: nodes ping each other", proto="icmp", source=from_federation),
            ],
        },
        GROUP_SDN: {"comment": "evpn: what guests may ask of the host: their gateway's answer", "rules": ping},
        GROUP_ROUTED: {
            "comment": "evpn: traffic routed for the SDN subnets (policy_forward DROP)",
            "rules": [
                _rule("forward", "ACCEPT", "evpn: routed from SDN subnets", source=_scoped(IPSET_SDN)),
                _rule("forward", "ACCEPT", "evpn: routed to SDN subnets", dest=_scoped(IPSET_SDN)),
            ],
        },
    }
    rules = []
    if management:
        ipsets[IPSET_MANAGEMENT] = {
            "comment": "evpn: networks that manage this cluster",
            "cidrs": sorted(_ipset_entry(c) for c in management),
        }
        rules.append(
            _named_rule(
                RULE_MANAGEMENT,
                "in",
                "ACCEPT",
                "management access (SSH, web UI)",
                proto="tcp",
                dport=MANAGEMENT_PORTS,
                source=_scoped(IPSET_MANAGEMENT),
            )
        )
    rules.append(
        _named_rule(
            RULE_WIREGUARD,
            "in",
            "ACCEPT",
            "WireGuard underlay (peers may move)",
            proto="udp",
            dport=str(wireguard["port"]),
        )
    )
    rules.append(
        _named_rule(
            RULE_GROUP_WIREGUARD,
            "group",
            GROUP_WIREGUARD,
            "federation traffic on the WireGuard interface",
            iface=wireguard["interface"],
        )
    )
    rules += [
        _named_rule(f"{GROUP_SDN}-{vnet_id}", "group", GROUP_SDN, f"guests of vnet {vnet_id}", iface=vnet_id)
        for vnet_id in sorted(cluster_vnets)
    ]
    rules.append(_named_rule(RULE_GROUP_ROUTED, "group", GROUP_ROUTED, "SDN subnets routed through this host"))
    options = {}
    if settings["enable"] is not None:
        options["enable"] = _flag(settings["enable"])
    node_options = {}
    if settings["nftables"] is not None:
        node_options = {n["pve_node"]: {"nftables": _flag(settings["nftables"])} for n in site_conf["nodes"].values()}
    # Ours, but not wanted now: management access without management networks, the blanket
    # reference of the SDN group of earlier versions, and the references for vnets that are gone
    # (a name in ``rules`` wins over this pattern).
    absent_rules = ([] if management else [RULE_MANAGEMENT]) + [RULE_GROUP_SDN_BLANKET, RULE_GROUP_SDN_VNETS]
    return {
        "ipsets": ipsets,
        "groups": groups,
        "rules": rules,
        "absent_rules": absent_rules,
        "options": options,
        "node_options": node_options,
    }


# --------------------------------------------------------------------------------------------
# Ready for the SLS files: each function returns what one SLS file maps to its states.
# --------------------------------------------------------------------------------------------


def wireguard_interface(public_keys=None, minion_id=None, federation=None):
    """
    A node's WireGuard interface as ``wireguard.interface_present`` takes it: ``interface``,
    ``address`` (with its host prefix, ``/32`` or ``/128``), ``port``, ``mtu`` and ``peers``
    (every other node, sorted by minion id: ``name``, ``public_key``, ``allowed_ips``,
    ``endpoint`` as ``host:port``, ``keepalive``).

    public_keys
        The mine's answer for ``wireguard_public_keys`` (``wireguard.public_keys`` on every
        node): ``{minion id: {interface: public key}}``. A peer whose key for
        ``evpn:wireguard:interface`` is not there has ``public_key`` None (the state leaves it
        out until a later run).

    minion_id
        The node; default: this minion.

    federation
        The ``evpn`` pillar to use instead of this minion's own.

    CLI Example:

    .. code-block:: bash

        salt-call evpn.wireguard_interface
    """
    config_ = _valid_config(federation)
    this = node(minion_id, federation)
    interface = config_["wireguard"]["interface"]
    address = ipaddress.ip_address(this["address"])

    def key_of(peer_id):
        published = (public_keys or {}).get(peer_id)
        return published.get(interface) if isinstance(published, dict) else None

    return {
        "interface": interface,
        "address": f"{address}/{address.max_prefixlen}",
        "port": config_["wireguard"]["port"],
        "mtu": config_["wireguard"]["mtu"],
        "peers": [
            {
                "name": peer["name"],
                "public_key": key_of(peer["name"]),
                "allowed_ips": peer["allowed_ips"],
                "endpoint": peer["endpoint"],
                "keepalive": peer["keepalive"],
            }
            for peer in wireguard_peers(this["id"], federation)
        ],
    }


def sdn_keep(site=None, federation=None):
    """
    What ``pvesdn.zone_pruned`` keeps in the zone: ``{vnet id: [subnet ids]}`` for every vnet of
    ``evpn.sdn`` (the site's own and the stretched ones).

    site
        The site; default: this minion's site.

    federation
        The ``evpn`` pillar to use instead of this minion's own.

    CLI Example:

    .. code-block:: bash

        salt-call evpn.sdn_keep
    """
    objects = sdn(site, federation)
    keep = {vnet_id: [] for vnet_id in objects["vnets"]}
    for subnet_id, subnet in sorted(objects["subnets"].items()):
        keep[subnet["vnet"]].append(subnet_id)
    return keep


def sysctl_settings():
    """
    The kernel parameters every node gets, the same on every run whatever interfaces come and go:
    forwarding and no reverse-path filtering (traffic through exit nodes is asymmetric). No
    ``bridge-nf-call-*``: the overlay is routed, not bridged, and the firewall backend decides
    (pve-firewall sets them itself every round; proxmox-firewall filters guests in its bridge
    table, and with them on every bridged frame, vmbr0's included, would cross its inet forward
    chain). The kernel filters an interface with the higher of ``all`` and the
    interface's own rp_filter, and gives a new interface the value of ``default``; so rp_filter is
    0 on ``all``, on ``default``, and on every interface through the wildcard
    ``net.ipv4.conf.*.rp_filter``: ``sysctld.managed`` sets it on the interfaces that exist and
    persists it as a wildcard, which systemd-sysctl applies at boot and to each interface as it
    appears (its udev rule).

    CLI Example:

    .. code-block:: bash

        salt-call evpn.sysctl_settings
    """
    return {
        "net.ipv4.conf.*.rp_filter": 0,
        "net.ipv4.conf.all.rp_filter": 0,
        "net.ipv4.conf.default.rp_filter": 0,
        "net.ipv4.ip_forward": 1,
    }


# The federation-wide keys that name what this project made on a node and in its cluster, with
# the checks of SCHEMA: uninstalling needs them, and none of the sites.
OWNED_KEYS = (("controller",), ("zone", "id"), ("wireguard", "interface"))


def _schema_key(path):
    spec = SCHEMA
    for key in path:
        spec = spec[key]
    return spec


def _mapping(value):
    return value if isinstance(value, dict) else {}


def _raw_members(pillar, report):
    """{minion id: (pillar key path, PVE node name)} of the nodes the pillar names, read as
    written: a pillar with no site left is one to uninstall, not an invalid one."""
    sites = pillar.get("sites") or {}
    if not isinstance(sites, dict):
        report.error(("evpn", "sites"), f"must be a mapping, got {type(sites).__name__}")
        return {}
    members = {}
    for site_name, site in sites.items():
        for node_id, node_conf in _mapping(_mapping(site).get("nodes")).items():
            pve_node = _mapping(node_conf).get("pve_node") or str(node_id).split(".")[0]
            members[node_id] = (("evpn", "sites", str(site_name), "nodes", str(node_id)), pve_node)
    return members


def absent(cluster_nodes=(), pve_node=None, minion_id=None, federation=None):
    """
    What uninstalling takes off a node that is no longer a node of the federation, found by the
    names this project gives its objects (never by "the pillar does not name it"):

    - ``interface``: the WireGuard interface (its link, key and persisted configuration);
    - ``cluster``: whether this node removes the objects of ours from its PVE cluster: when none
      of ``cluster_nodes`` (the PVE node names of the cluster, from ``/etc/pve/nodes``) is the
      PVE node of a node the pillar still names (the whole site left the federation), and this
      node (``pve_node``) is the first of them, so that the cluster-wide configuration has one
      writer; ``cluster_note`` says why not otherwise;
    - ``sdn``: our ``controller`` and ``zone`` (with every vnet and subnet in it);
    - ``firewall``: our cluster ``rules`` (names, ``evpn-sdn-*`` for the per-vnet references),
      security ``groups`` and ``ipsets``;
    - ``errors``: why nothing may be removed: the minion is still a node of the pillar (remove
      it there first, or the next converge brings it back and its peers keep it), a key naming
      our objects is invalid, or a pillar file did not render (the node could be in it). Only
      the keys above are read; the sites may be gone.

    cluster_nodes
        The PVE node names of this node's cluster (``pvesh.list_config nodes``); none on a
        minion that is not a PVE node.

    pve_node
        This node's PVE node name (its host name).

    minion_id
        The node; default: this minion.

    federation
        The ``evpn`` pillar to use instead of this minion's own.

    CLI Example:

    .. code-block:: bash

        salt-call evpn.absent '["pve-krk1"]' pve-krk1
    """
    pillar = _pillar(federation) or {}
    report = _Report()
    if not isinstance(pillar, dict):
        report.error(("evpn",), f"must be a mapping, got {type(pillar).__name__}")
        pillar = {}
    names = {}
    for path in OWNED_KEYS:
        value = pillar
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        spec = _schema_key(path)
        if value is None and spec.default is not REQUIRED:
            value = spec.default
        problem = "is required: it names what to remove" if value is None else spec.check(value)
        if problem:
            report.error(("evpn", *path), problem)
        names[path] = value
    members = _raw_members(pillar, report)
    minion_id = _this_minion(minion_id)
    if minion_id in members:
        report.error(
            members[minion_id][0],
            f"{minion_id} is still a node of the federation: remove it from the pillar first "
            "(else the next converge brings it back and every peer keeps it)",
        )
    cluster_nodes = sorted(cluster_nodes)
    kept_for = [name for name in cluster_nodes if name in {pve for _, pve in members.values()}]
    note = None
    if kept_for:
        note = f"the PVE cluster still holds nodes of the federation ({', '.join(kept_for)}): its SDN and firewall stay"
    elif cluster_nodes and cluster_nodes[0] != pve_node:
        note = f"the SDN and firewall of this PVE cluster are removed by its first node, {cluster_nodes[0]}"
    return {
        "errors": (_render_errors(__pillar__.get("_errors") or []) if federation is None else []) + report.errors,
        "interface": names[("wireguard", "interface")],
        "cluster": bool(cluster_nodes) and note is None,
        "cluster_note": note,
        "sdn": {"controller": names[("controller",)], "zone": names[("zone", "id")]},
        "firewall": {
            "rules": [
                RULE_MANAGEMENT,
                RULE_WIREGUARD,
                RULE_GROUP_WIREGUARD,
                RULE_GROUP_SDN_BLANKET,
                RULE_GROUP_SDN_VNETS,
                RULE_GROUP_ROUTED,
            ],
            "groups": [GROUP_WIREGUARD, GROUP_SDN, GROUP_ROUTED],
            "ipsets": [IPSET_MANAGEMENT, IPSET_WIREGUARD, IPSET_SDN, IPSET_GATEWAYS],
        },
    }
