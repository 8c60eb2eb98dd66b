"""
The IP sets PVE generates from the SDN (``+sdn/<vnet>-all|-gateway|-no-gateway|-dhcp``) and from
its IPAM (``+sdn/guest-ipam-<vmid>``), as proxmox-ve-config builds them (sdn/config.rs
``SdnConfig::ipsets``, sdn/ipam.rs ``Ipam::ipsets``) for both compilers: proxmox-firewall reads
them directly, pve-firewall through PVE::RS::Firewall::SDN (proxmox-perl-rs), which turns a DHCP
range into the CIDRs that cover it.

Entries are {"nomatch": bool, "cidr": (version, address, prefix length)} or
{"nomatch": bool, "range": (version, first, last)}.
"""

import ipaddress
import json
import re

ZONE_TYPES = ("simple", "vlan", "qinq", "vxlan", "evpn")


class SdnError(Exception):
    """The SDN configuration or IPAM state does not parse."""


def _sdn_name(name):
    if not name:
        raise SdnError("invalid name: name is empty")
    if len(name) > 8:
        raise SdnError("invalid name: name too long")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", name):
        raise SdnError("invalid name: invalid symbols in name")
    return name


def _subnet_name(name):
    """SubnetName::from_str: ``<zone>-<address>-<prefix length>``."""
    zone, dash, rest = name.partition("-")
    address, dash2, length = rest.partition("-")
    if not dash or not dash2:
        raise SdnError("invalid name: invalid format for subnet name")
    _sdn_name(zone)
    try:
        ip = ipaddress.ip_address(address)
        if not re.fullmatch(r"\d+", length) or int(length) > ip.max_prefixlen:
            raise ValueError
    except ValueError:
        raise SdnError("invalid name: invalid cidr in name") from None
    return zone, (ip.version, ip, int(length))


def _ip(value, what):
    if not isinstance(value, str):
        raise SdnError(f"invalid type: {what} is not a string")
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise SdnError(f"invalid IP address syntax: {value}") from None


def _dhcp_range(text):
    fields = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
    start, end = _ip(fields.get("start-address"), "start-address"), _ip(fields.get("end-address"), "end-address")
    if start.version != end.version:
        raise SdnError("invalid dhcp range: mismatched ip address families")
    if start > end:
        raise SdnError("invalid dhcp range: start address is greater than last address")
    return (start.version, start, end)


def _cidr_key(cidr):
    version, ip, length = cidr
    return (version, int(ip), length)


def vnet_ipsets(running_config_text):
    """SdnConfig::try_from(RunningConfig) and SdnConfig::ipsets: set name -> entries."""
    try:
        running = json.loads(running_config_text)
    except ValueError as err:
        raise SdnError(str(err)) from None
    zones, vnets = {}, {}
    for name, zone in ((running.get("zones") or {}).get("ids") or {}).items():
        if zone.get("type") not in ZONE_TYPES:
            raise SdnError("invalid zone type")
        if zone.get("dhcp") not in (None, "dnsmasq"):
            raise SdnError("invalid dhcp type")
        zones[_sdn_name(name)] = {}
    for name, vnet in ((running.get("vnets") or {}).get("ids") or {}).items():
        if not isinstance(vnet.get("tag", 0), int) and vnet.get("tag") is not None:
            raise SdnError(f"invalid type: string {vnet['tag']!r}, expected u32")
        if vnet.get("zone") not in zones:
            raise SdnError("zone not found")
        if any(_sdn_name(name) in other for zone, other in zones.items() if zone != vnet["zone"]):
            raise SdnError("vnet name occurs in multiple zones")
        zones[vnet["zone"]][name] = {}
        vnets[name] = vnet["zone"]
    for name, subnet in ((running.get("subnets") or {}).get("ids") or {}).items():
        zone, cidr = _subnet_name(name)
        gateway = _ip(subnet["gateway"], "gateway") if subnet.get("gateway") is not None else None
        ranges = [_dhcp_range(text) for text in subnet.get("dhcp-range") or []]
        if gateway and gateway.version != cidr[0]:
            raise SdnError("mismatched ip address family for gateway and CIDR")
        if zone not in zones:
            raise SdnError("zone not found")
        if subnet.get("vnet") not in zones[zone]:
            raise SdnError("vnet not found")
        zones[zone][subnet["vnet"]][_cidr_key(cidr)] = (cidr, gateway, ranges)
    ipsets = {}
    for zone in sorted(zones):
        for vnet in sorted(zones[zone]):
            sets = {f"{vnet}-{kind}": [] for kind in ("all", "gateway", "no-gateway", "dhcp")}
            for key in sorted(zones[zone][vnet]):
                cidr, gateway, ranges = zones[zone][vnet][key]
                sets[f"{vnet}-all"].append({"nomatch": False, "cidr": cidr})
                sets[f"{vnet}-no-gateway"].append({"nomatch": False, "cidr": cidr})
                if gateway:
                    single = (gateway.version, gateway, gateway.max_prefixlen)
                    sets[f"{vnet}-no-gateway"].append({"nomatch": True, "cidr": single})
                    sets[f"{vnet}-gateway"].append({"nomatch": False, "cidr": single})
                sets[f"{vnet}-dhcp"] += [{"nomatch": False, "range": r} for r in ranges]
            ipsets.update(sets)
    return ipsets


def ipam_ipsets(ipam_text):
    """Ipam::try_from(IpamJson) and Ipam::ipsets: ``guest-ipam-<vmid>`` -> entries."""
    try:
        ipam = json.loads(ipam_text)
    except ValueError as err:
        raise SdnError(str(err)) from None
    entries = []
    for zone, subnets in sorted((ipam.get("zones") or {}).items()):
        _sdn_name(zone)
        for cidr_text, ips in (subnets.get("subnets") or {}).items():
            network = ipaddress.ip_network(cidr_text, strict=False)
            cidr = (network.version, ipaddress.ip_address(cidr_text.split("/")[0]), network.prefixlen)
            addresses = [(ipaddress.ip_address(ip), data) for ip, data in (ips.get("ips") or {}).items()]
            for ip, data in sorted(addresses, key=_ip_key):
                if ip not in network:
                    raise SdnError("ip address out of bounds")
                entries.append(((zone, _cidr_key(cidr)), ip, data))
    ipsets = {}
    for _, ip, data in sorted(entries, key=lambda e: e[0]):
        if "vmid" in data and "mac" in data:
            name = f"guest-ipam-{int(data['vmid'])}"
            ipsets.setdefault(name, []).append({"nomatch": False, "cidr": (ip.version, ip, ip.max_prefixlen)})
    return dict(sorted(ipsets.items()))


def _ip_key(pair):
    return (pair[0].version, int(pair[0]))


def range_cidrs(version, first, last):
    """IpRange::to_cidrs: the fewest CIDRs that cover the range."""
    return [(version, net.network_address, net.prefixlen) for net in ipaddress.summarize_address_range(first, last)]


def perl_entries(entries):
    """PVE::RS::Firewall::SDN's LegacyIpsetEntry list: {"cidr": "<address>/<len>", "nomatch"}."""
    result = []
    for entry in entries:
        cidrs = range_cidrs(*entry["range"]) if "range" in entry else [entry["cidr"]]
        result += [{"cidr": f"{ip}/{length}", "nomatch": int(entry["nomatch"])} for _, ip, length in cidrs]
    return result
