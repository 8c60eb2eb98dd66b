"""
A PVE cluster's SDN configuration as PVE keeps it under ``/etc/pve/sdn``, read the way
``pvesh``'s handlers read it, so that a client can answer from the files what
``pvesh get /cluster/sdn/<kind> [--pending 1 | --running 1] --output-format json`` prints,
digests included, without starting pvesh (about a second a call).

The sources followed, by commit: proxmox/pve-common f665029 ``SectionConfig.pm``
(``parse_config``, ``check_value``, ``check_config``; the digest is the SHA-1 of the raw file);
proxmox/pve-network ecf98c5 (PVE 9.1) and 8f4f5d2 (PVE 8.4): the plugins' ``options`` and
``parse_section_header``, ``Zones/Plugin.pm`` ``decode_value``, ``SDN.pm`` ``pending_config``,
``encode_value`` and the ``.running-config`` parser, and the ``api_sdn_*_config`` helpers of
``API2/Network/SDN/*.pm`` that shape each listed object.

Pure functions of the files' text. Whatever PVE would accept but this reader does not know
(a section type, a key, a value not of its type, a line that is neither a header nor a
property) raises ``ValueError`` naming the file and line: the caller then asks pvesh instead of
guessing. Values are checked for their type, not for their format (PVE drops a malformed value
with a warning; files written through PVE's API hold none).
"""

import hashlib
import json
import re

# The kinds of SDN objects (each in sdn/<kind>.cfg): their id key, and per section type its keys (PVE 8.4 and 9.1
# together; required ones first, then a ``|``, then optional ones).
KINDS = {
    "controllers": {
        "id": "controller",
        "lowercase_type": True,
        "types": {
            "evpn": "asn | peers fabric",
            "bgp": "asn node peers | bgp-multipath-as-path-relax ebgp ebgp-multihop loopback",
            "isis": "isis-domain isis-ifaces isis-net node | loopback",
        },
    },
    "zones": {
        "id": "zone",
        "lowercase_type": True,
        "types": {
            "evpn": "controller vrf-vxlan | nodes exitnodes exitnodes-local-routing exitnodes-primary"
            " advertise-subnets disable-arp-nd-suppression bridge-disable-mac-learning rt-import"
            " vxlan-port mtu mac dns reversedns dnszone ipam",
            "simple": "| nodes mtu dns reversedns dnszone ipam dhcp",
            "vlan": "bridge | nodes bridge-disable-mac-learning mtu dns reversedns dnszone ipam",
            "qinq": "tag bridge | nodes bridge-disable-mac-learning mtu vlan-protocol dns reversedns dnszone ipam",
            "vxlan": "| nodes peers fabric vxlan-port mtu dns reversedns dnszone ipam",
        },
    },
    "vnets": {
        "id": "vnet",
        "lowercase_type": False,
        "types": {"vnet": "zone | tag alias vlanaware isolate-ports"},
    },
    "subnets": {
        "id": "subnet",
        "lowercase_type": False,
        "types": {"subnet": "vnet | gateway snat dnszoneprefix dhcp-range dhcp-dns-server"},
    },
}
# Value types of the API schema (the same in 8.4 and 9.1); every other key is a string.
INTEGER_KEYS = {"asn", "ebgp-multihop", "mtu", "tag", "vrf-vxlan", "vxlan-port"}
BOOLEAN_KEYS = {
    "advertise-subnets",
    "bgp-multipath-as-path-relax",
    "bridge-disable-mac-learning",
    "disable-arp-nd-suppression",
    "ebgp",
    "exitnodes-local-routing",
    "isolate-ports",
    "snat",
    "vlanaware",
}
ARRAY_KEYS = {"dhcp-range"}
NODE_SET_KEYS = {"nodes", "exitnodes"}  # decoded into sets of node names (Zones/Plugin.pm)
ENCODED_KEYS = NODE_SET_KEYS | {"dhcp-range", "interfaces"}  # compared sorted (SDN.pm encode_value)
HEADER = re.compile(r"^(\S+):\s*(\S+)\s*$")
PROPERTY = re.compile(r"^\s+(\S+)(\s+(.*\S))?\s*$")
COMMENT = re.compile(r"^\s*#")
NODE_NAME = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$")
INTEGER = re.compile(r"^[+-]?\d+$")
RANGE_PART = re.compile(r"^(start-address|end-address)=(\S+)$")


def digest(text):
    """The digest PVE gives a section-config file: the SHA-1 of its bytes."""
    return hashlib.sha1(text.encode()).hexdigest()


def _type_keys(spec):
    required, _, optional = spec.partition("|")
    return set(required.split()), set(optional.split())


def _value(key, value, where):
    if key in BOOLEAN_KEYS:
        if value is None:
            return 1  # a bare boolean flag
        if value not in ("0", "1"):
            raise ValueError(f"{where}: {key} {value!r} is not 0 or 1")
        return int(value)
    if value is None:
        raise ValueError(f"{where}: {key} has no value")
    if key in INTEGER_KEYS:
        if not INTEGER.match(value):
            raise ValueError(f"{where}: {key} {value!r} is not an integer")
        return int(value)
    if key in NODE_SET_KEYS:
        nodes = value.replace(",", " ").replace(";", " ").split()
        if not all(NODE_NAME.match(node) for node in nodes):
            raise ValueError(f"{where}: {key} {value!r} holds a name that is not a node name")
        return dict.fromkeys(nodes, 1)
    return value


def parse(kind, text, filename=None):
    """
    The objects of ``kind`` (``controllers``, ``zones``, ``vnets`` or ``subnets``) in the text
    of its file, as PVE parses them: ``{id: {"type": ..., key: value}}`` with integers
    and booleans as numbers, ``nodes``/``exitnodes`` as ``{node: 1}``, ``dhcp-range`` as a list.
    """
    spec = KINDS[kind]
    filename = filename or f"sdn/{kind}.cfg"
    sections = {}
    ident = None  # of the section being read; an empty line ends it, comments are skipped
    for number, line in enumerate(text.split("\n"), start=1):
        where = f"{filename} line {number}"
        if COMMENT.match(line):
            continue
        if line == "":
            ident = None
        elif ident is None:
            ident = _header(spec, line, where)
            sections[ident] = {"type": _header_type(spec, line)}
        else:
            _property(spec, sections[ident], ident, line, where)
    for ident, section in sections.items():
        required, _ = _type_keys(spec["types"][section["type"]])
        missing = sorted(required - set(section))
        if missing:
            raise ValueError(f"{filename}: {section['type']} {ident}: missing {', '.join(missing)}")
    return sections


def _header_type(spec, line):
    kind_type = HEADER.match(line).group(1)
    return kind_type.lower() if spec["lowercase_type"] else kind_type


def _header(spec, line, where):
    header = HEADER.match(line)
    if not header:
        raise ValueError(f"{where}: neither a section header nor a comment: {line!r}")
    if _header_type(spec, line) not in spec["types"]:
        raise ValueError(f"{where}: section type {header.group(1)!r} is not one this reader knows")
    return header.group(2)


def _property(spec, section, ident, line, where):
    prop = PROPERTY.match(line)
    if not prop:
        raise ValueError(f"{where}: not a property line: {line!r}")
    key, value = prop.group(1), prop.group(3)
    required, optional = _type_keys(spec["types"][section["type"]])
    if key not in required | optional:
        raise ValueError(f"{where}: {section['type']} {ident}: unknown property {key!r}")
    if key in ARRAY_KEYS:
        section.setdefault(key, []).append(_value(key, value, where))
    elif key in section:
        raise ValueError(f"{where}: {section['type']} {ident}: {key} given twice")
    else:
        section[key] = _value(key, value, where)


def parse_running(text):
    """``.running-config`` as PVE reads it: its JSON, or nothing when empty or not JSON."""
    try:
        running = json.loads(text) if text else {}
    except ValueError:
        return {}
    return running if isinstance(running, dict) else {}


def _encoded(key, value):
    if key in ENCODED_KEYS and isinstance(value, (dict, list)):
        return ",".join(sorted(value))
    return value


def _text(value):
    """A value as Perl's ``ne`` compares it: numbers and strings alike."""
    return None if value is None else str(value)


def pending_config(running_objects, config_objects):
    """pve-network's ``pending_config``: every object of the running or the current
    configuration, as the running one with ``state`` (new, changed, deleted) and ``pending``
    (what the current configuration changes) where they differ."""
    pending = {}
    for ident in sorted(running_objects):
        running_object, config_object = running_objects[ident], config_objects.get(ident) or {}
        entry = pending.setdefault(ident, {})
        for key in sorted(running_object):
            entry[key] = running_object[key]
            if not config_object:
                entry["state"] = "deleted"
            elif config_object.get(key) is None:
                entry.setdefault("pending", {})[key] = "deleted"
                entry["state"] = "changed"
            elif _text(_encoded(key, running_object[key])) != _text(_encoded(key, config_object[key])):
                entry["state"] = "changed"
        if "state" in entry:
            entry.setdefault("pending", {})
    for ident in sorted(config_objects):
        running_object, config_object = running_objects.get(ident) or {}, config_objects[ident]
        entry = pending.setdefault(ident, {})
        for key in sorted(config_object):
            config_value = _encoded(key, config_object[key])
            running_value = _encoded(key, running_object.get(key))
            if key in ("type", "vnet"):
                entry[key] = config_value
            elif running_value is None or _text(config_value) != _text(running_value):
                entry.setdefault("pending", {})[key] = config_object[key]
            if not running_object:
                entry["state"] = "new"
            elif running_value is None and config_value is not None:
                entry["state"] = "changed"
        if "state" in entry:
            entry.setdefault("pending", {})
    return pending


def _dhcp_ranges(ranges):
    """``dhcp-range`` as the API returns it: each range a ``{start-address, end-address}``."""
    parsed = []
    for element in ranges or []:
        parts = [RANGE_PART.match(part) for part in element.split(",")]
        if not all(parts):
            raise ValueError(f"dhcp-range {element!r} is not start-address=...,end-address=...")
        parsed.append(dict(part.groups() for part in parts))
    return parsed


def _api_item(kind, ident, obj, file_digest):
    """One object as the ``api_sdn_*_config`` helper of its API shapes it."""
    item = json.loads(json.dumps(obj))  # PVE hands out a deep copy (dclone)
    item[KINDS[kind]["id"]] = ident
    item["digest"] = file_digest
    if kind == "zones":
        for holder in (item, item.get("pending") or {}):
            for key in NODE_SET_KEYS & set(holder):
                holder[key] = _encoded(key, holder[key])
    elif kind == "subnets":
        zone, network, mask = (ident.split("-") + [None, None])[:3]
        item.update(id=ident, cidr=f"{network}/{mask}", zone=zone, network=network, mask=mask)
        item["dhcp-range"] = _dhcp_ranges(item.get("dhcp-range"))
    return item


def listing(kind, config_objects, config_digest, running, view=None):
    """
    What ``pvesh get /cluster/sdn/<kind>`` prints as JSON, sorted by id: the current
    configuration with its file digest (``view`` None), ``--pending 1`` (``"pending"``) or
    ``--running 1`` (``"running"``), both without a digest, as PVE gives none there. Subnets are
    all of them; PVE lists those of one vnet (``item["vnet"]``).
    """
    running_objects = (running.get(kind) or {}).get("ids") or {}
    if view == "pending":
        objects, file_digest = pending_config(running_objects, config_objects), None
    elif view == "running":
        objects, file_digest = running_objects, None
    else:
        objects, file_digest = config_objects, config_digest
    return [_api_item(kind, ident, objects[ident], file_digest) for ident in sorted(objects)]
