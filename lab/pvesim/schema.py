"""
The PVE API schema of one version, and parameter checking the way pve-common's JSONSchema.pm
does it (messages included). The schema files are upstream data shipped unchanged in lab/data/pve-api
(provenance and licence in lab/data/README.md), or read from PVESIM_SCHEMA_DIR.
"""

import ipaddress
import json
import os
import pathlib
import re

from pvesim.errors import PveError

SCHEMA_FILES = {
    "9.1": "schema-sdn-firewall.json",
    "8.4": "schema-sdn-firewall.pve8.4.json",
    "7.4": "schema-sdn-firewall.pve7.4.json",
}
DEFAULT_SCHEMA_DIR = pathlib.Path(__file__).resolve().parents[1] / "data" / "pve-api"


def schema_dir():
    return pathlib.Path(os.environ.get("PVESIM_SCHEMA_DIR") or DEFAULT_SCHEMA_DIR)


class Schema:
    """The paths and methods of one PVE version."""

    def __init__(self, version):
        if version not in SCHEMA_FILES:
            raise PveError(f"PVESIM_VERSION must be one of {', '.join(SCHEMA_FILES)}, not {version!r}")
        path = schema_dir() / SCHEMA_FILES[version]
        if not path.is_file():
            raise PveError(
                f"pvesim: the PVE {version} API schema is missing at {path} "
                "(lab/data/pve-api of the checkout, or PVESIM_SCHEMA_DIR)"
            )
        self.version = version
        self.paths = json.loads(path.read_text())["paths"]

    def resolve(self, path):
        """(template, {placeholder: value}) for a concrete path, or (None, {}) when none fits.
        A trailing ``{cidr}`` takes the rest of the path: ipset entries hold a '/'."""
        parts = [p for p in path.strip("/").split("/") if p]
        for template in self.paths:
            names = template.strip("/").split("/")
            if len(names) > len(parts) or (len(names) < len(parts) and names[-1] != "{cidr}"):
                continue
            values = {}
            for i, name in enumerate(names):
                value = "/".join(parts[i:]) if name == "{cidr}" else parts[i]
                if name.startswith("{"):
                    values[name[1:-1]] = value
                elif name != value:
                    break
            else:
                return template, values
        return None, {}

    def method(self, template, method):
        return self.paths.get(template, {}).get("methods", {}).get(method)


# --- formats (pve-common JSONSchema.pm verifiers and the SDN/firewall ones) -----------------

CONFIGID = re.compile(r"^[a-z][a-z0-9_-]+$", re.IGNORECASE)
NODE = re.compile(r"^(?=.{1,63}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?$", re.IGNORECASE)
ZONE_OR_VNET = re.compile(r"^[a-z][a-z0-9]*[a-z0-9]$", re.IGNORECASE)
CONTROLLER = re.compile(r"^[a-z][a-z0-9_-]*[a-z0-9]$", re.IGNORECASE)
IFACE = re.compile(r"^[a-z][a-z0-9_.:-]*$", re.IGNORECASE)
MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$", re.IGNORECASE)
DNS_NAME = re.compile(r"^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]*[a-z0-9])?$", re.IGNORECASE)
ALIAS = re.compile(r"^(dc/|guest/)?[a-z][a-z0-9_-]+$", re.IGNORECASE)
IPSET_REF = re.compile(r"^\+((dc|guest|sdn)/)?[a-z][a-z0-9_-]+$", re.IGNORECASE)
PORT = re.compile(r"^(\d+|[a-z][a-z0-9-]*)$", re.IGNORECASE)
PROTOCOLS = {"tcp", "udp", "icmp", "icmpv6", "ipv6-icmp", "sctp", "gre", "esp", "ah", "ospf", "igmp", "vrrp", "udplite"}


def _ip(value, version=None):
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return version is None or address.version == version


def _cidr(value):
    try:
        network = ipaddress.ip_interface(value)
    except ValueError:
        return False
    if "/" not in value:
        return False
    low = 8
    return low <= network.network.prefixlen <= network.max_prefixlen


def _subnet_id(value):
    if _cidr(value):
        return True
    match = re.match(r"^[a-z][a-z0-9]*-(.+)-(\d+)$", value, re.IGNORECASE)
    return bool(match) and _cidr(f"{match.group(1)}/{match.group(2)}")


def _bgp_rt(value):
    match = re.match(r"^(\d+):(\d+)$", value)
    return bool(match) and all(int(part) <= 4294967295 for part in match.groups())


def _port_spec(value):
    items = value.split(",")
    count = 0
    for item in items:
        bounds = item.split(":")
        if len(bounds) > 2 or not all(PORT.match(b) for b in bounds):
            return False
        count += len(bounds)
    return count <= 15


def _addr_spec(value):
    if IPSET_REF.match(value) or ALIAS.match(value):
        return True
    for item in value.split(","):
        for part in item.split("-") if "-" in item and "," not in value else [item]:
            if not (_ip(part) or _cidr(part)):
                return False
    return True


# format -> (check, message after "invalid format - ")
FORMATS = {
    "ip": (_ip, "value does not look like a valid IP address"),
    "ipv4": (lambda v: _ip(v, 4), "value does not look like a valid IPv4 address"),
    "ipv6": (lambda v: _ip(v, 6), "value does not look like a valid IPv6 address"),
    "CIDR": (_cidr, "value does not look like a valid CIDR network"),
    "IPorCIDR": (lambda v: _ip(v) or _cidr(v), "value does not look like a valid IP address or CIDR network"),
    "IPorCIDRorAlias": (
        lambda v: _ip(v) or _cidr(v) or bool(ALIAS.match(v)),
        "value does not look like a valid IP address, CIDR network or alias",
    ),
    "mac-addr": (
        lambda v: bool(MAC.match(v)) and int(v[:2], 16) & 1 == 0,
        "value does not look like a valid unicast MAC address",
    ),
    "pve-configid": (lambda v: bool(CONFIGID.match(v)), "invalid configuration ID '{v}'"),
    "pve-node": (lambda v: bool(NODE.match(v)), "value does not look like a valid node name"),
    "pve-iface": (lambda v: bool(IFACE.match(v)) and 2 <= len(v) <= 20, "invalid network interface name '{v}'"),
    "dns-name": (lambda v: bool(DNS_NAME.match(v)), "value does not look like a valid DNS name"),
    "pve-vmid": (lambda v: v.isdigit() and 100 <= int(v) <= 999999999, "value does not look like a valid VM ID"),
    "pve-sdn-ipam-id": (lambda v: bool(CONTROLLER.match(v)), "ipam ID '{v}' contains illegal characters"),
    "pve-sdn-dns-id": (lambda v: bool(CONTROLLER.match(v)), "dns ID '{v}' contains illegal characters"),
    "pve-sdn-fabric-id": (
        lambda v: bool(re.match(r"^[a-z][a-z0-9]{0,7}$", v, re.I)),
        "fabric ID '{v}' contains illegal characters",
    ),
    "pve-sdn-subnet-id": (_subnet_id, "value does not look like a valid CIDR network"),
    "pve-sdn-bgp-rt": (_bgp_rt, "value does not look like a valid bgp route-target"),
    "pve-sdn-isis-net": (
        lambda v: bool(re.match(r"^[a-f0-9]{2}(\.[a-f0-9]{4}){3,9}\.[a-f0-9]{2}$", v, re.I)),
        "value does not look like a valid ISIS net",
    ),
    "pve-sdn-dhcp-range": (
        lambda v: bool(re.match(r"^start-address=[^,]+,end-address=[^,]+$", v)),
        "invalid dhcp-range",
    ),
    "pve-fw-addr-spec": (_addr_spec, "value does not look like a valid address specification"),
    "pve-fw-dport-spec": (_port_spec, "invalid port '{v}'"),
    "pve-fw-sport-spec": (_port_spec, "invalid port '{v}'"),
    "pve-fw-protocol-spec": (lambda v: v.lower() in PROTOCOLS or v.isdigit(), "unknown protocol '{v}'"),
    "pve-fw-icmp-type-spec": (lambda v: bool(re.match(r"^[a-z0-9/-]+$", v, re.I)), "invalid icmp-type '{v}'"),
    "pve-fw-conntrack-helper": (
        lambda v: all(
            h in {"amanda", "ftp", "irc", "netbios-ns", "pptp", "sane", "sip", "snmp", "tftp"} for h in v.split(",")
        ),
        "invalid conntrack helper",
    ),
}


def split_list(value):
    """PVE splits ``-list`` formats on ',', ';' and white space."""
    return [item for item in re.split(r"[,;\s]+", value) if item]


def _sdn_id(kind, pattern, max_length):
    """pve-network's id verifiers: the length message first, then the character one."""

    def check(value):
        if len(value) > max_length:
            return f"{kind} ID '{value}' can't be more length than {max_length} characters"
        if not pattern.match(value):
            return f"{kind} ID '{value}' contains illegal characters"
        return None

    return check


SDN_IDS = {
    "pve-sdn-zone-id": _sdn_id("zone", ZONE_OR_VNET, 8),
    "pve-sdn-vnet-id": _sdn_id("vnet", ZONE_OR_VNET, 8),
    "pve-sdn-controller-id": _sdn_id("controller", CONTROLLER, 64),
}


def _check_format(fmt, value):
    if isinstance(fmt, dict):  # a property string: key=value,... (log_ratelimit)
        for part in value.split(","):
            key = part.split("=", 1)[0]
            if "=" in part and key not in fmt:
                return f"invalid format - {key}: property is not defined in schema"
        return None
    if fmt in SDN_IDS:
        message = SDN_IDS[fmt](value)
        return message and f"invalid format - {message}"
    base, is_list = (fmt[:-5], True) if fmt.endswith("-list") else (fmt, False)
    if base not in FORMATS:
        return None
    check, message = FORMATS[base]
    for item in split_list(value) if is_list else [value]:
        if not check(item):
            return "invalid format - " + message.format(v=item)
    return None


def perl_regex(pattern):
    """A schema pattern as Python's re reads it: Perl writes qr//i as (?^i:...)."""
    return re.sub(r"\(\?\^(\w*):", lambda m: f"(?{m.group(1)}:" if m.group(1) else "(?:", pattern)


BOOLEANS = {"1": 1, "on": 1, "yes": 1, "true": 1, "0": 0, "off": 0, "no": 0, "false": 0}


def parse_boolean(value):
    if value is True or value is None:
        return 1
    parsed = BOOLEANS.get(str(value).lower())
    if parsed is None:
        raise PveError("400 unable to parse boolean option", exit_code=255, usage=True)
    return parsed


def check_value(spec, value):
    """The message of the first check ``value`` fails, as JSONSchema.pm orders them, or None.
    Returns (message, value converted to its type)."""
    kind = spec.get("type", "string")
    if kind == "integer":
        if not re.match(r"^[+-]?\d+$", str(value)):
            return f"type check ('integer') failed - got '{value}'", value
        value = int(value)
    elif kind == "number":
        if not re.match(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$", str(value)):
            return f"type check ('number') failed - got '{value}'", value
        value = float(value)
    elif kind == "boolean":
        return None, value
    elif kind == "array":
        items = value if isinstance(value, list) else [value]
        for item in items:
            message, _ = check_value(spec.get("items", {}), item)
            if message:
                return message, value
        return None, items
    if kind in ("integer", "number"):
        if "minimum" in spec and value < spec["minimum"]:
            return f"value must have a minimum value of {spec['minimum']}", value
        if "maximum" in spec and value > spec["maximum"]:
            return f"value must have a maximum value of {spec['maximum']}", value
        return None, value
    if "enum" in spec and value not in spec["enum"]:
        return f"value '{value}' does not have a value in the enumeration '{', '.join(spec['enum'])}'", value
    if "format" in spec:
        message = _check_format(spec["format"], value)
        if message:
            return message, value
    if "pattern" in spec and not re.fullmatch(perl_regex(spec["pattern"]), value):
        return "value does not match the regex pattern", value
    if "maxLength" in spec and len(value) > spec["maxLength"]:
        return f"value may only be {spec['maxLength']} characters long", value
    if "minLength" in spec and len(value) < spec["minLength"]:
        return f"value must be at least {spec['minLength']} characters long", value
    return None, value


def check_parameters(method_schema, params):
    """
    Check ``params`` (path placeholders included) against a method's parameter schema. Returns
    the converted parameters; raises a 400 PveError listing every failing parameter.
    """
    properties = method_schema.get("parameters", {}).get("properties", {})
    errors = {}
    converted = {}
    for name, value in params.items():
        spec = properties.get(name)
        if spec is None:
            errors[name] = "property is not defined in schema and the schema does not allow additional properties"
            continue
        message, converted[name] = check_value(spec, value)
        if message:
            errors[name] = message
    for name, spec in properties.items():
        if not spec.get("optional") and name not in params:
            errors[name] = "property is missing and it is not optional"
    if errors:
        raise PveError.parameters(errors)
    return converted
