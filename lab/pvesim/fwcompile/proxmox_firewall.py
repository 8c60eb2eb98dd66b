"""
proxmox-firewall (Rust, nftables): the firewall parser of proxmox-ve-config and the host part of
``Firewall::full_host_fw``, transcribed from proxmox/proxmox-ve-rs (proxmox-ve-config 0.2.3 at
1811e05 and 0.5.0 at c163e9e) and proxmox/proxmox-firewall (0.7.1 at 0a60fbd, 1.2.2 at ceff8ad);
BEHAVIOR.md sections 1.3, 1.4 and 4. Names follow the Rust types and functions.

The parser is all or nothing: any error refuses the whole file (``ParseError``). The generator
raises ``GenerationError`` where full_host_fw returns an error; before 1.2.3 (both versions here)
one rule that fails to generate aborts the whole update.
"""

import functools
import ipaddress
import re

from pvesim.fwcompile.system import data_json, rust_services

NAME_CHARS = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
INET, BRIDGE = ("inet", "proxmox-firewall"), ("bridge", "proxmox-firewall-guests")
LOG_LEVELS = {
    "nolog": None,
    "emerg": 0,
    "alert": 1,
    "crit": 2,
    "err": 3,
    "warn": 4,
    "warning": 4,
    "notice": 5,
    "info": 6,
    "debug": 7,
}
ICMP_TYPES = {
    "address-mask-reply": 18,
    "address-mask-request": 17,
    "destination-unreachable": 3,
    "echo-reply": 0,
    "echo-request": 8,
    "info-reply": 16,
    "info-request": 15,
    "parameter-problem": 12,
    "redirect": 5,
    "router-advertisement": 9,
    "router-solicitation": 10,
    "source-quench": 4,
    "time-exceeded": 11,
    "timestamp-reply": 14,
    "timestamp-request": 13,
}
ICMP_CODES = {
    "admin-prohibited",
    "host-prohibited",
    "host-unreachable",
    "net-prohibited",
    "net-unreachable",
    "port-unreachable",
    "prot-unreachable",
}
ICMPV6_TYPES = {
    "destination-unreachable",
    "echo-reply",
    "echo-request",
    "ind-neighbor-advert",
    "ind-neighbor-solicit",
    "mld-listener-done",
    "mld-listener-query",
    "mld-listener-reduction",
    "mld-listener-report",
    "mld2-listener-report",
    "nd-neighbor-advert",
    "nd-neighbor-solicit",
    "nd-redirect",
    "nd-router-advert",
    "nd-router-solicit",
    "packet-too-big",
    "parameter-problem",
    "router-renumbering",
    "time-exceeded",
}
ICMPV6_CODES = {"addr-unreachable", "admin-prohibited", "no-route", "policy-fail", "port-unreachable", "reject-route"}
# IPTABLES_ICMP(V6)_TYPES_MAPPING (proxmox-ve-config 0.4.6, cfd2a9d and 884930e): a name, or (type, code)
ICMP_MAPPING = {
    "network-unreachable": (3, 0),
    "host-unreachable": (3, 1),
    "protocol-unreachable": (3, 2),
    "port-unreachable": (3, 3),
    "fragmentation-needed": (3, 4),
    "source-route-failed": (3, 5),
    "network-unknown": (3, 6),
    "host-unknown": (3, 7),
    "network-prohibited": (3, 9),
    "host-prohibited": (3, 10),
    "TOS-network-unreachable": (3, 11),
    "TOS-host-unreachable": (3, 12),
    "communication-prohibited": (3, 13),
    "host-precedence-violation": (3, 14),
    "precedence-cutoff": (3, 15),
    "network-redirect": (5, 0),
    "host-redirect": (5, 1),
    "TOS-network-redirect": (5, 2),
    "TOS-host-redirect": (5, 3),
    "ttl-zero-during-transit": (11, 0),
    "ttl-zero-during-reassembly": (11, 1),
    "ip-header-bad": (12, 0),
    "required-option-missing": (12, 1),
}
ICMPV6_MAPPING = {
    "no-route": (1, 0),
    "communication-prohibited": (1, 1),
    "beyond-scope": (1, 2),
    "address-unreachable": (1, 3),
    "port-unreachable": (1, 4),
    "failed-policy": (1, 5),
    "reject-route'": (1, 6),  # sic: upstream's key has a stray quote, so "reject-route" is not mapped
    "ttl-zero-during-transit": (3, 0),
    "ttl-zero-during-reassembly": (3, 1),
    "bad-header": (4, 0),
    "unknown-header-type": (4, 1),
    "unknown-option": (4, 2),
    "router-solicitation": "nd-router-solicit",
    "router-advertisement": "nd-router-advert",
    "neighbor-solicitation": "nd-neighbor-solicit",
    "neighbour-solicitation": "nd-neighbor-solicit",
    "neighbor-advertisement": "nd-neighbor-advert",
    "neighbour-advertisement": "nd-neighbor-advert",
    "redirect": "nd-redirect",
}
CLUSTER_OPTIONS = {"enable": "bool", "ebtables": "bool", "log_ratelimit": "ratelimit"}
CLUSTER_OPTIONS.update({f"policy_{d}": "verdict" for d in ("in", "out", "forward")})
HOST_OPTIONS = dict.fromkeys(
    ("enable", "nftables", "log_nf_conntrack", "ndp", "nf_conntrack_allow_invalid", "nosmurfs")
    + ("protection_synflood", "tcpflags"),
    "bool",
)
HOST_OPTIONS.update({f"log_level_{d}": "level" for d in ("in", "out", "forward")})
HOST_OPTIONS.update({"smurf_log_level": "level", "tcp_flags_log_level": "level", "nf_conntrack_helpers": "helpers"})
HOST_OPTIONS.update(
    dict.fromkeys(
        ("nf_conntrack_max", "nf_conntrack_tcp_timeout_established", "nf_conntrack_tcp_timeout_syn_recv")
        + ("protection_synflood_burst", "protection_synflood_rate"),
        "int",
    )
)
RULE_OPTION_FIELDS = ["proto", "p", "dport", "sport", "dest", "source", "iface", "i", "log", "icmp-type"]


class ParseError(Exception):
    """proxmox-ve-config refused a file: no ruleset is generated this round."""


class GenerationError(Exception):
    """full_host_fw returned an error: the skeleton is loaded, the batch is not."""


def debug_str(value):
    """Rust's ``{:?}`` of a &str."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t")
    return f'"{escaped}"'


# --- proxmox-ve-config: small parsers ---------------------------------------------------------


def match_name(line):
    match = NAME_CHARS.match(line)
    return (match.group(0), line[match.end() :]) if match else None


def match_non_whitespace(line):
    text = re.match(r"\S*", line).group(0)
    return (text, line[len(text) :].lstrip()) if text else None


def parse_bool(value):
    lowered = value.lower()
    if value == "1" or lowered in ("true", "on", "yes"):
        return True
    if value == "0" or lowered in ("false", "off", "no"):
        return False
    return None


def _rust_ip(text, version):
    """Ipv4Addr / Ipv6Addr::from_str."""
    if "%" in text or not text or text != text.strip():
        return None
    try:
        address = ipaddress.IPv4Address(text) if version == 4 else ipaddress.IPv6Address(text)
    except ValueError:
        return None
    return address


def parse_cidr(text):
    """Cidr::from_str: (version, address as written, prefix length), the address keeps its host
    bits; None when it is not one."""
    for version, bits in ((4, 32), (6, 128)):
        address, slash, mask = text.partition("/")
        ip = _rust_ip(address, version)
        if ip is None:
            continue
        if not slash:
            return version, ip, bits
        if re.fullmatch(r"\+?\d+", mask) and int(mask) <= bits:
            return version, ip, int(mask)
    return None


def parse_range(text):
    first, dash, last = text.partition("-")
    if not dash:
        return None
    for version in (4, 6):
        start, end = _rust_ip(first, version), _rust_ip(last, version)
        if start is not None and end is not None and start <= end:
            return version, start, end
    return None


def rust_ip_text(ip):
    """Rust's Display of an IP address (IPv4-mapped IPv6 keeps its dotted tail)."""
    if ip.version == 6 and ip.ipv4_mapped:
        return f"::ffff:{ip.ipv4_mapped}"
    return str(ip)


class ConfigParser:
    """The proxmox-ve-config firewall parser of one version (a tuple like (0, 5, 0))."""

    def __init__(self, version):
        self.version = version
        self.legacy_names = version >= (0, 4, 4)
        self.icmp_mapping = version >= (0, 4, 6)
        self.perl_serde = version >= (0, 3, 0)

    # names

    def alias_name(self, text):
        """RuleAliasName (AliasName only before 0.4.4): ("dc"|"guest"|None, lower-cased name)."""
        scope, slash, name = text.partition("/")
        if slash and name and scope in ("dc", "guest"):
            return (scope, name.lower())
        if self.legacy_names:
            found = match_name(text)
            if found and found[1] == "":
                return (None, found[0].lower())
        return None

    def ipset_name(self, text):
        """RuleIpsetName (IpsetName only before 0.4.4): ("dc"|"guest"|"sdn"|None, name)."""
        scope, slash, name = text.partition("/")
        if slash and name and scope in ("+dc", "+guest", "+sdn"):
            return (scope[1:], name)
        if self.legacy_names and text.startswith("+"):
            found = match_name(text[1:])
            if found and found[1] == "":
                return (None, found[0])
        return None

    def ip_list(self, text):
        entries, family = [], None
        for element in text.split(","):
            cidr, ip_range = parse_cidr(element), parse_range(element)
            if cidr:
                entry = ("cidr", *cidr)
            elif ip_range:
                entry = ("range", *ip_range)
            else:
                raise ParseError(f"Invalid IP entry: {element}")
            if family and family != entry[1]:
                raise ParseError("Incompatible families in IPList!")
            family = entry[1]
            entries.append(entry)
        return {"family": family, "entries": entries}

    def ip_addr_match(self, value):
        if not value:
            raise ParseError("empty IP specification")
        try:
            return ("ip", self.ip_list(value))
        except ParseError:
            pass
        name = self.ipset_name(value)
        if name:
            return ("set", name)
        name = self.alias_name(value)
        if name:
            return ("alias", name)
        raise ParseError(f"invalid IP specification: {value}")

    def ports(self, text):
        if not text:
            raise ParseError("empty port specification")
        entries = []
        for entry in text.strip().split(","):
            first, colon, last = entry.strip().partition(":")
            if colon:
                start, end = self.port(first), self.port(last)
                if start > end:
                    raise ParseError("start port is greater than end port!")
                entries.append((start, end))
            else:
                entries.append(self.port(entry))
        return entries

    @staticmethod
    def port(text):
        if re.fullmatch(r"\+?\d+", text) and int(text) <= 65535:
            return int(text)
        named = rust_services().get(text)
        if named is None:
            raise ParseError(f"invalid port specification: {text}")
        return named

    def icmp(self, text, v6):
        """Icmp / Icmpv6 FromStr: {"type": ..., "code": ...} (names, numbers or "any")."""
        if v6:
            mapping, types, codes = ICMPV6_MAPPING, ICMPV6_TYPES, ICMPV6_CODES
        else:
            mapping, types, codes = ICMP_MAPPING, ICMP_TYPES, ICMP_CODES
        if self.icmp_mapping and text in mapping:
            mapped = mapping[text]
            return {"type": mapped} if isinstance(mapped, str) else {"type": mapped[0], "code": mapped[1]}
        if text.lower() == "any":
            return {"type": "any"}
        if re.fullmatch(r"\+?\d+", text.strip()) and int(text) <= 255:
            return {"type": int(text)}
        if text in types:
            return {"type": text}
        if not self.icmp_mapping:
            if text in codes:
                return {"code": text}
            raise ParseError(f"supplied string is neither a valid icmp{'v6' if v6 else ''} type nor code")
        if v6:
            raise ParseError("supplied string is not a valid icmpv6 type")
        raise ParseError("supplied string is neither a valid icmp type nor code")

    def protocol(self, options):
        """Protocol::from_options: ports only for the protocols that have them, ICMP types only
        from ``icmp-type``."""
        proto = options.get("proto")
        if proto is None:
            return None
        kinds = {"dccp": "dccp", "33": "dccp", "sctp": "sctp", "132": "sctp", "tcp": "tcp", "6": "tcp"}
        kinds.update({"udp": "udp", "17": "udp", "udplite": "udplite", "136": "udplite", "icmp": "icmp", "1": "icmp"})
        kinds.update({"ipv6-icmp": "icmpv6", "icmpv6": "icmpv6", "58": "icmpv6"})
        kind = kinds.get(proto)
        if kind in ("icmp", "icmpv6"):
            icmp_type = options.get("icmp-type")
            return {"kind": kind, **(self.icmp(icmp_type, kind == "icmpv6") if icmp_type is not None else {})}
        if kind:
            return {
                "kind": kind,
                "sport": self.ports(options["sport"]) if options.get("sport") is not None else None,
                "dport": self.ports(options["dport"]) if options.get("dport") is not None else None,
            }
        if re.fullmatch(r"\+?\d+", proto) and int(proto) <= 255:
            return {"kind": "numeric", "number": int(proto)}
        return {"kind": "named", "name": proto}

    def log_level(self, value):
        if value not in LOG_LEVELS:
            if self.perl_serde:
                raise ParseError(f"invalid log level {debug_str(value)}")
            raise ParseError(f"invalid value: string {debug_str(value)}, expected valid log level")
        return value

    def rule_options(self, line):
        """RuleOptions::from_str: ``-name value`` pairs, then serde with deny_unknown_fields."""
        options = {}
        while True:
            line = line.lstrip()
            if not line:
                break
            if not line.startswith("-"):
                raise ParseError("expected an option starting with '-'")
            line = line[1:]
            line = line.removeprefix("-")
            found = match_name(line)
            if not found:
                raise ParseError("expected a parameter name after '-'")
            param, line = found
            value = match_non_whitespace(line.lstrip())
            if not value:
                raise ParseError(f"expected a value for {debug_str(param)}")
            if param in options:
                raise ParseError(f"duplicate option in rule: {param}")
            options[param], line = value
        typed = {}
        for param, value in options.items():
            if param not in RULE_OPTION_FIELDS:
                fields = ", ".join(f"`{f}`" for f in RULE_OPTION_FIELDS)
                raise ParseError(f"unknown field `{param}`, expected one of {fields}")
            key = {"p": "proto", "i": "iface"}.get(param, param)
            if key in typed:
                raise ParseError(f"duplicate field `{key}`")
            typed[key] = self.log_level(value) if key == "log" else value
        return typed

    def rule(self, line):
        """Rule::from_str: the comment is everything after the last ``#`` (before 0.6.0)."""
        if "\n" in line or "\r" in line:
            raise ParseError("rule must not contain any newlines!")
        head, hashsign, comment = line.rpartition("#")
        if hashsign and comment:
            line, comment = head.strip(), comment.strip()
        else:
            line, comment = line.strip(), None
        disabled = line.startswith("|")
        if disabled:
            line = line[1:].lstrip()
        rule = {"disabled": disabled, "comment": comment}
        return {**rule, **(self.rule_group(line) if line.startswith("GROUP") else self.rule_match(line))}

    def rule_group(self, line):
        found = match_name(line)
        if not found:
            raise ParseError("expected a leading keyword in rule group")
        if found[0].lower() != "group":
            raise ParseError("Expected keyword GROUP")
        named = match_name(found[1].strip())
        if not named:
            raise ParseError("expected a name for rule group")
        options = self.rule_options(named[1].lstrip())
        if set(options) - {"iface"}:
            raise ParseError("only interface parameter is permitted for group rules")
        return {"kind": "group", "group": named[0], "iface": options.get("iface")}

    def rule_match(self, line):
        found = match_name(line)
        if not found:
            raise ParseError("expected a direction")
        direction, rest = found
        if direction.upper() not in ("IN", "OUT", "FORWARD"):
            raise ParseError(f"invalid direction: {debug_str(direction)}, expect 'IN', 'OUT' or 'FORWARD'")
        found = match_name(rest.lstrip())
        if not found:
            raise ParseError("expected a verdict or macro name")
        verdict, rest = found
        macro = None
        if rest.startswith("("):
            macro, found = verdict, match_name(rest[1:])
            if not found:
                raise ParseError("expected a verdict")
            verdict, rest = found
            if not rest.startswith(")"):
                raise ParseError("expected closing ')' after verdict")
            rest = rest[1:]
        if verdict.upper() not in ("ACCEPT", "REJECT", "DROP"):
            raise ParseError(f"invalid verdict {debug_str(verdict)}, expected one of 'ACCEPT', 'REJECT' or 'DROP'")
        options = self.rule_options(rest.lstrip())
        if options.get("dport") is not None and options.get("icmp-type") is not None:
            raise ParseError("dport and icmp-type are mutually exclusive")
        ip = {}
        for key, option in (("src", "source"), ("dst", "dest")):
            if option in options:
                ip[key] = self.ip_addr_match(options[option])
        if "src" in ip and "dst" in ip and ip["src"][0] == ip["dst"][0] == "ip":
            if ip["src"][1]["family"] != ip["dst"][1]["family"]:
                raise ParseError("src and dst family must be equal")
        return {
            "kind": "match",
            "dir": direction.lower(),
            "verdict": verdict.upper(),
            "macro": macro,
            "iface": options.get("iface"),
            "log": options.get("log"),
            "ip": ip or None,
            "proto": self.protocol(options),
        }

    # sections

    def alias(self, line):
        found = match_name(line.lstrip())
        if not found:
            raise ParseError("expected an alias name")
        name, rest = found
        value = match_non_whitespace(rest.lstrip())
        if not value:
            raise ParseError(f"expected a value for alias {debug_str(name)}")
        address, rest = value
        cidr = parse_cidr(address)
        if cidr is None:
            raise ParseError(f"invalid ip address or CIDR: {debug_str(address)}")
        if rest and not rest.startswith("#"):
            raise ParseError(f"trailing characters in alias: {debug_str(rest)}")
        return name.lower(), cidr

    def ipset_entry(self, line):
        line = line.lstrip()
        nomatch = line.startswith("!")
        value = match_non_whitespace(line.removeprefix("!").lstrip())
        if not value:
            raise ParseError("missing value")
        address, rest = value
        cidr = parse_cidr(address)
        if cidr:
            entry = {"nomatch": nomatch, "cidr": cidr}
        else:
            name = self.alias_name(address)
            if name is None:
                raise ParseError(f"Invalid address in IPSet: {address}")
            entry = {"nomatch": nomatch, "alias": name}
        if rest and not rest.startswith("#"):
            raise ParseError(f"trailing characters in ipset entry: {debug_str(rest)}")
        return entry

    @staticmethod
    def section_tail(kind, line):
        if not line or not line[0].isspace():
            raise ParseError(f"incomplete {kind} section")
        line = line.lstrip()
        found = match_name(line)
        if not found:
            raise ParseError(f"expected a name for the {kind} at {debug_str(line)}")
        name, rest = found
        if not rest.startswith("]"):
            raise ParseError(f"expected closing ']' in {kind} section header")
        rest = rest[1:].lstrip()
        if rest and not rest.startswith("#"):
            raise ParseError(f"trailing characters after {kind} section: {debug_str(rest)}")
        return name

    def config(self, text, kind):
        """common::Config::parse plus cluster/host Config::parse."""
        config = {"options": {}, "rules": [], "aliases": {}, "ipsets": {}, "groups": {}}
        section = None
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.upper() in ("[OPTIONS]", "[ALIASES]", "[RULES]"):
                section = (line[1:-1].lower(), None)
            elif line.startswith("[IPSET"):
                name = self.section_tail("ipset", line[len("[IPSET") :])
                if kind != "cluster":
                    raise ParseError("IPSET in config, but no scope set in parser config")
                section = self._open(config, "ipsets", name)
            elif line.startswith("[group"):
                section = self._open(config, "groups", self.section_tail("group", line[len("[group") :]))
            elif line.startswith("["):
                raise ParseError(f"invalid section {debug_str(line)}")
            elif section is None:
                raise ParseError(f"config line with no section: {debug_str(line)}")
            else:
                self._line(config, section, line)
        if kind == "host":
            for key, what in (("groups", "groups"), ("aliases", "aliases"), ("ipsets", "ipsets")):
                if config[key]:
                    raise ParseError(f"host firewall config cannot declare {what}")
        config["options"] = self.options(config["options"], kind)
        return config

    @staticmethod
    def _open(config, key, name):
        if name in config[key]:
            raise ParseError(f"duplicate {key[:-1]}: {debug_str(name)}")
        config[key][name] = []
        return (key, name)

    def _line(self, config, section, line):
        what, name = section
        if what == "options":
            key, colon, value = line.partition(":")
            if not colon:
                raise ParseError(f"expected colon separated key and value, found {debug_str(line)}")
            if key.strip() in config["options"]:
                raise ParseError(f"duplicate option {debug_str(key.strip())}")
            config["options"][key.strip()] = value.strip()
        elif what == "aliases":
            alias, cidr = self.alias(line)
            if alias in config["aliases"]:
                raise ParseError(f"duplicate alias: {line}")
            config["aliases"][alias] = cidr
        elif what == "rules":
            config["rules"].append(self.rule(line))
        elif what == "ipsets":
            config["ipsets"][name].append(self.ipset_entry(line))
        else:
            config["groups"][name].append(self.rule(line))

    # options

    def options(self, raw, kind):
        """The Options struct of cluster.rs or host.rs: known keys typed, unknown keys ignored."""
        fields = CLUSTER_OPTIONS if kind == "cluster" else HOST_OPTIONS
        typed = {}
        for key, value in raw.items():
            kind_of = fields.get(key)
            if kind_of == "bool":
                typed[key] = self._bool(value)
            elif kind_of == "int":
                typed[key] = self._int(value)
            elif kind_of == "verdict":
                if value.upper() not in ("ACCEPT", "REJECT", "DROP"):
                    raise ParseError(self._fromstr_error(value, "valid verdict", "invalid verdict"))
                typed[key] = value.upper()
            elif kind_of == "level":
                typed[key] = self.log_level(value)
            elif kind_of == "ratelimit":
                typed[key] = log_ratelimit(value)
            elif kind_of == "helpers":
                typed[key] = value.split(",") if value else None
        return typed

    def _fromstr_error(self, value, expectation, message):
        if self.perl_serde:
            return f"{message} {debug_str(value)}, expected one of 'ACCEPT', 'REJECT' or 'DROP'"
        return f"invalid value: string {debug_str(value)}, expected {expectation}"

    def _bool(self, value):
        parsed = parse_bool(value)
        if parsed is None:
            if self.perl_serde:
                raise ParseError(f"invalid value: string {debug_str(value)}, expected a boolean-like value")
            raise ParseError(f"not a boolean: {debug_str(value)}")
        return parsed

    def _int(self, value):
        if re.fullmatch(r"[+-]?\d+", value):
            return int(value)
        if self.perl_serde:
            raise ParseError(f"invalid value: string {debug_str(value)}, expected a i64-ish...")
        raise ParseError("invalid digit found in string")


def log_ratelimit(value):
    """LogRateLimit::from_str: {enabled, rate, per, burst}."""
    limit = {"enabled": True, "rate": 1, "per": "second", "burst": 5}
    for element in value.split(","):
        key, eq, val = element.partition("=")
        if not eq:
            parsed = parse_bool(element)
            if parsed is None:
                raise ParseError(f"not a boolean: {debug_str(element)}")
            limit["enabled"] = parsed
        elif not key or not val:
            raise ParseError("invalid value in log_ratelimit")
        elif key == "enable":
            parsed = parse_bool(val)
            if parsed is None:
                raise ParseError(f"not a boolean: {debug_str(val)}")
            limit["enabled"] = parsed
        elif key == "burst":
            limit["burst"] = _i64(val)
        elif key == "rate":
            rate, slash, unit = val.partition("/")
            if slash and not unit:
                raise ParseError("empty unit specification")
            limit["rate"] = _i64(rate)
            if slash:
                if unit not in ("second", "minute", "hour", "day"):
                    raise ParseError("Invalid time scale provided")
                limit["per"] = unit
        else:
            raise ParseError("Invalid value for Key found in log_ratelimit!")
    return limit


def _i64(text):
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ParseError("invalid digit found in string")
    return int(text)


# --- nft JSON ---------------------------------------------------------------------------------


def _table(table):
    return {"family": table[0], "table": table[1]}


def chain_cmd(op, table, name):
    return {op: {"chain": {**_table(table), "name": name}}}


def rule_cmd(table, chain, expr):
    return {"add": {"rule": {**_table(table), "chain": chain, "expr": expr}}}


def match(left, right, op="=="):
    return {"match": {"op": op, "left": left, "right": right}}


def meta(key):
    return {"meta": {"key": key}}


def payload(protocol, field):
    return {"payload": {"protocol": protocol, "field": field}}


def prefix(ip, length):
    return {"prefix": {"addr": rust_ip_text(ip), "len": length}}


def port_expr(ports):
    def one(entry):
        return {"range": list(entry)} if isinstance(entry, tuple) else entry

    return one(ports[0]) if len(ports) == 1 else {"set": [one(p) for p in ports]}


def ip_entry_expr(entry):
    if entry[0] == "cidr":
        return prefix(entry[2], entry[3])
    return {"range": [rust_ip_text(entry[2]), rust_ip_text(entry[3])]}


def icmp_value(value):
    return {"range": [0, 255]} if value == "any" else value


def verdict_statement(verdict):
    """generate_verdict for the host table."""
    if verdict == "REJECT":
        return {"jump": {"target": "do-reject"}}
    return {"accept": None} if verdict == "ACCEPT" else {"drop": None}


def log_statements(limit, vmid, level, chain, verdict):
    statements = [{"limit": {"rate": limit["rate"], "per": limit["per"], "burst": limit["burst"]}}] if limit else []
    return statements + [{"log": {"prefix": f":{vmid}:{LOG_LEVELS[level]}:{chain}: {verdict}: ", "group": 0}}]


# --- the generator ----------------------------------------------------------------------------


class NftRule:
    def __init__(self, terminal, family=None):
        self.family = family
        self.statements = []
        self.terminal = terminal

    def clone(self, family=None):
        rule = NftRule(list(self.terminal), family or self.family)
        rule.statements = list(self.statements)
        return rule

    def expr(self):
        return self.statements + self.terminal


class Generator:
    """Firewall::full_host_fw of proxmox-firewall ``release`` for one node, without guests and
    vnet firewalls (none are configured in the emulator)."""

    def __init__(self, releases, cluster, host, facts, nft_chains, sdn_sets, ipam_sets):
        self.release = release = releases["proxmox-firewall"]
        self.ve_config = releases["proxmox-ve-config"]
        self.lookup = release >= (1, 2, 0)
        self.cluster = cluster
        self.host = host
        self.facts = facts
        self.nft_chains = nft_chains
        self.sdn_sets = sdn_sets
        self.ipam_sets = ipam_sets
        limit = cluster["options"].get("log_ratelimit") or log_ratelimit("1")
        self.log_limit = limit if limit["enabled"] else None

    # lookups

    def alias(self, name):
        scope, alias = name
        return self.cluster["aliases"].get(alias) if scope in ("dc", None) else None

    def ipset(self, name):
        """FirewallConfig::ipset -> (scope of the set, its entries), or None."""
        scope, ipset = name
        if scope == "sdn":
            if ipset in self.sdn_sets:
                return "sdn", self.sdn_sets[ipset]
            if ipset in self.ipam_sets and self.release >= (1, 2, 2):
                return "sdn", self.ipam_sets[ipset]
            return None
        if scope in ("dc", None) and ipset in self.cluster["ipsets"]:
            return "dc", self.cluster["ipsets"][ipset]
        return None

    def host_option(self, key, default):
        value = self.host["options"].get(key)
        return default if value is None else value

    # objects

    def ipset_commands(self, table, scope, name, entries):
        """Ipset::to_nft_objects."""
        commands = []
        for family in (4, 6):
            elements, nomatch = [], []
            for entry in entries:
                if "alias" in entry:
                    alias = self.alias(entry["alias"])
                    if alias is None:
                        raise GenerationError(f"could not find alias {_name(entry['alias'])} in environment")
                    version, ip, length = alias
                    expression = prefix(ip, length) if version == family else None
                elif "range" in entry:
                    version, start, end = entry["range"]
                    expression = {"range": [rust_ip_text(start), rust_ip_text(end)]} if version == family else None
                else:
                    version, ip, length = entry["cidr"]
                    expression = prefix(ip, length) if version == family else None
                if expression is not None:
                    (nomatch if entry["nomatch"] else elements).append(expression)
            set_type = "ipv4_addr" if family == 4 else "ipv6_addr"
            for suffix in ("", "-nomatch"):
                set_name = f"v{family}-{scope}/{name}{suffix}"
                config = {**_table(table), "name": set_name, "type": set_type, "flags": ["interval"]}
                if self.lookup:
                    config["auto-merge"] = True
                commands += [{"add": {"set": config}}, {"flush": {"set": {**_table(table), "name": set_name}}}]
            for suffix, content in (("", elements), ("-nomatch", nomatch)):
                if content:
                    set_name = f"v{family}-{scope}/{name}{suffix}"
                    commands.append({"add": {"element": {**_table(table), "name": set_name, "elem": content}}})
        return commands

    def create_ipsets(self, table, scope, ipsets):
        commands = []
        for name in sorted(ipsets):
            if self.lookup and name == "management":
                continue
            commands += self.ipset_commands(table, scope, name, ipsets[name])
        return commands

    def management_ipset(self, table):
        """create_management_ipset: 1.2.0 merges the cluster's [IPSET management] and the
        local_network alias (or the node's own networks); 0.7.x generates it from the node's
        networks only when the cluster has no management set."""
        if self.lookup:
            entries = list(self.cluster["ipsets"].get("management", []))
            local_network = self.cluster["aliases"].get("local_network")
            if local_network:
                entries.append({"nomatch": False, "cidr": local_network})
            else:
                entries += [{"nomatch": False, "cidr": cidr} for cidr in management_ips(self.facts)]
            return self.ipset_commands(table, "dc", "management", entries)
        if "management" in self.cluster["ipsets"]:
            return []
        entries = [{"nomatch": False, "cidr": cidr} for cidr in management_ips(self.facts)]
        return self.ipset_commands(table, "dc", "management", entries)

    # rules

    def rule_to_nft(self, rule, chain, direction):
        """NftRule::from_config_rule for the host table (no vmid)."""
        if rule["disabled"]:
            return []
        if rule["kind"] == "group":
            if direction == "forward" and rule["iface"]:
                return []
            rules = [NftRule([{"jump": {"target": f"group-{rule['group']}-{direction}"}}])]
            if rule["iface"]:
                self.handle_iface(rules, direction, rule["iface"])
            return rules
        if rule["dir"] != direction:
            return []
        rules = []
        if rule["log"] and LOG_LEVELS[rule["log"]] is not None:
            rules.append(NftRule(log_statements(self.log_limit, 0, rule["log"], chain, rule["verdict"])))
        rules.append(NftRule([verdict_statement(rule["verdict"])]))
        if rule["iface"]:
            self.handle_iface(rules, direction, rule["iface"])
        if rule["proto"]:
            self.protocol(rules, rule["proto"])
        if rule["macro"]:
            self.fw_macro(rules, rule["macro"])
        if rule["ip"]:
            for key, field in (("src", "saddr"), ("dst", "daddr")):
                if key in rule["ip"]:
                    rules = self.handle_match(rules, rule["ip"][key], field)
        return rules

    def handle_iface(self, rules, direction, name):
        if direction == "forward":
            raise GenerationError("cannot define interfaces for forward direction")
        key = "iifname" if direction == "in" else "oifname"
        if self.release >= (1, 0, 1):
            name = self.facts.get("altnames", {}).get(name, name)
        for rule in rules:
            rule.statements.append(match(meta(key), name))

    def protocol(self, rules, proto):
        kind = proto["kind"]
        if kind in ("tcp", "udp", "sctp", "dccp", "udplite"):
            for rule in rules:
                rule.statements.append(match(meta("l4proto"), kind))
            for rule in rules:
                for key in ("sport", "dport"):
                    if proto.get(key):
                        rule.statements.append(match(payload("th", key), port_expr(proto[key])))
        elif kind in ("icmp", "icmpv6"):
            family = 4 if kind == "icmp" else 6
            for rule in rules:
                if rule.family not in (None, family):
                    continue
                if self.release >= (1, 2, 1):
                    if "type" in proto:
                        rule.statements.append(match(payload(kind, "type"), icmp_value(proto["type"])))
                    if "code" in proto:
                        rule.statements.append(match(payload(kind, "code"), proto["code"]))
                elif "code" in proto:
                    rule.statements.append(match(payload(kind, "code"), proto["code"]))
                elif "type" in proto:
                    rule.statements.append(match(payload(kind, "type"), icmp_value(proto["type"])))
                if "type" not in proto and "code" not in proto:
                    rule.statements.append(match(meta("l4proto"), kind))
                rule.family = family
        else:
            value = proto["name"] if kind == "named" else proto["number"]
            for rule in rules:
                rule.statements.append(match(meta("l4proto"), value))

    def fw_macro(self, rules, name):
        code = macros(self.ve_config).get(name)
        if code is None:
            raise GenerationError(f"cannot find macro {name}")
        initial = [rule.clone() for rule in rules]
        rules.clear()
        for proto in code:
            new = [rule.clone() for rule in initial]
            self.protocol(new, proto)
            rules += new

    def handle_match(self, rules, address, field):
        kind, value = address
        if kind == "set":
            return self.handle_set(rules, value, field)
        if kind == "alias":
            alias = self.alias(value)
            if alias is None:
                raise GenerationError(f"could not find alias {_name(value)}")
            family, expression = alias[0], prefix(alias[1], alias[2])
        else:
            family = value["family"]
            entries = value["entries"]
            expression = (
                ip_entry_expr(entries[0]) if len(entries) == 1 else {"set": [ip_entry_expr(e) for e in entries]}
            )
        protocol = "ip" if family == 4 else "ip6"
        for rule in rules:
            if rule.family in (None, family):
                rule.statements.append(match(payload(protocol, field), expression))
                rule.family = family
        return rules

    def handle_set(self, rules, name, field):
        if self.lookup:
            found = self.ipset(name)
            if found is None:
                raise GenerationError(f"could not find ipset {_name(name)}")
            scope = found[0]
        else:
            scope = name[0]
        result = []
        for rule in rules:
            for family, protocol in ((4, "ip"), (6, "ip6")):
                if rule.family not in (None, family):
                    continue
                clone = rule.clone(family)
                base = f"@v{family}-{scope}/{name[1]}"
                clone.statements += [
                    match(payload(protocol, field), base),
                    match(payload(protocol, field), f"{base}-nomatch", "!="),
                ]
                result.append(clone)
        return result

    # chains

    def reset_firewall(self):
        commands = [chain_cmd("flush", INET, f"cluster-{d}") for d in ("in", "out", "forward")]
        commands += [
            chain_cmd("add", INET, "host-in"),
            chain_cmd("flush", INET, "host-in"),
            chain_cmd("flush", INET, "option-in"),
            chain_cmd("add", INET, "host-out"),
            chain_cmd("flush", INET, "host-out"),
            chain_cmd("flush", INET, "option-out"),
            chain_cmd("flush", INET, "host-forward"),
            chain_cmd("flush", BRIDGE, "invalid-conntrack"),
            chain_cmd("flush", INET, "invalid-conntrack"),
            {"flush": {"map": {**_table(BRIDGE), "name": "vm-map-in"}}},
            {"flush": {"map": {**_table(BRIDGE), "name": "vm-map-out"}}},
            {"flush": {"map": {**_table(BRIDGE), "name": "bridge-map"}}},
            {"flush": {"map": {**_table(INET), "name": "bridge-map"}}},
            chain_cmd("flush", INET, "ct-in"),
            chain_cmd("flush", INET, "ratelimit-synflood"),
            chain_cmd("flush", INET, "log-invalid-tcp"),
            chain_cmd("flush", INET, "log-smurfs"),
        ]
        for start in ("guest-", "bridge-", "group-"):
            for name in sorted(self.nft_chains):
                if name.startswith(start):
                    family, table = self.nft_chains[name]
                    commands.append({"delete": {"chain": {"family": family, "table": table, "name": name}}})
        return commands

    def chain_rules(self, rules, chain, direction):
        commands = []
        for rule in rules:
            commands += [rule_cmd(INET, chain, r.expr()) for r in self.rule_to_nft(rule, chain, direction)]
        return commands

    def log_rule(self, chain, level, verdict):
        if level is None or LOG_LEVELS[level] is None:
            return []
        return [rule_cmd(INET, chain, log_statements(self.log_limit, 0, level, chain, verdict))]

    def cluster_rules(self, direction):
        chain = f"cluster-{direction}"
        default = {"in": "DROP", "out": "ACCEPT", "forward": "ACCEPT"}[direction]
        policy = self.cluster["options"].get(f"policy_{direction}") or default
        commands = self.chain_rules(self.cluster["rules"], chain, direction)
        commands += self.log_rule(chain, self.host["options"].get(f"log_level_{direction}"), policy)
        return commands + [rule_cmd(INET, chain, [verdict_statement(policy)])]

    def ct_helpers(self):
        commands = []
        for name in self.host["options"].get("nf_conntrack_helpers") or []:
            helper = next((h for h in data_json("ct_helper.json") if h["name"] == name), None)
            if helper is None:
                continue
            family = None if helper.get("v4") and helper.get("v6") else "ip" if helper.get("v4") else "ip6"
            for proto in ("tcp", "udp"):
                if proto in helper:
                    commands.append(
                        {
                            "add": {
                                "ct helper": {
                                    **_table(INET),
                                    "name": f"helper-{name}-{proto}",
                                    "type": name,
                                    "protocol": proto,
                                    "l3proto": family,
                                }
                            }
                        }
                    )
            for proto in ("tcp", "udp"):
                if proto not in helper:
                    continue
                base = NftRule([match({"ct": {"key": "state"}}, ["new", "established"]), {"accept": None}])
                helper_rule = NftRule([{"ct helper": f"helper-{name}-{proto}"}])
                rules = [base, helper_rule]
                self.protocol(rules, {"kind": proto, "sport": None, "dport": [helper[proto]]})
                commands += [rule_cmd(INET, "ct-in", r.expr()) for r in rules]
            ct_key = {"key": "helper", **({"family": family} if family else {})}
            commands.append(rule_cmd(INET, "ct-in", [match({"ct": ct_key}, name), {"accept": None}]))
        return commands

    def host_options(self):
        option_in, option_out = "option-in", "option-out"
        ndp = "allow" if self.host_option("ndp", True) else "block"
        commands = [
            rule_cmd(INET, option_in, [{"jump": {"target": f"{ndp}-ndp-in"}}]),
            rule_cmd(INET, option_out, [{"jump": {"target": f"{ndp}-ndp-out"}}]),
        ]
        if self.host_option("protection_synflood", False):
            limit = {
                "rate": self.host_option("protection_synflood_rate", 200),
                "per": "second",
                "burst": self.host_option("protection_synflood_burst", 1000),
                "inv": True,
            }
            commands.append(rule_cmd(INET, option_in, [{"jump": {"target": "block-synflood"}}]))
            for family, protocol in ((4, "ip"), (6, "ip6")):
                statement = {
                    "set": {
                        "op": "update",
                        "elem": payload(protocol, "saddr"),
                        "set": f"@v{family}-synflood-limit",
                        "stmt": {"limit": dict(limit)},
                    }
                }
                commands.append(rule_cmd(INET, "ratelimit-synflood", [statement, {"drop": None}]))
        if self.host_option("tcpflags", False):
            commands.append(rule_cmd(INET, option_in, [{"jump": {"target": "block-invalid-tcp"}}]))
            commands += self.log_rule("log-invalid-tcp", self.host["options"].get("tcp_flags_log_level"), "DROP")
        if self.host_option("nosmurfs", True):
            commands.append(rule_cmd(INET, option_in, [{"jump": {"target": "block-smurfs"}}]))
            commands += self.log_rule("log-smurfs", self.host["options"].get("smurf_log_level"), "DROP")
        if not self.host_option("nf_conntrack_allow_invalid", False):
            commands.append(rule_cmd(BRIDGE, "invalid-conntrack", [{"drop": None}]))
            commands.append(rule_cmd(INET, "invalid-conntrack", [{"drop": None}]))
        return commands

    def full_host_fw(self):
        commands = self.reset_firewall()
        for sets in (self.sdn_sets, self.ipam_sets):
            if sets is not None:
                commands += self.create_ipsets(INET, "sdn", sets)
                commands += self.create_ipsets(BRIDGE, "sdn", sets)
        if self.host_option("enable", True):
            commands += self.management_ipset(INET)
            commands += self.create_ipsets(INET, "dc", self.cluster["ipsets"])
            for name in sorted(self.cluster["groups"]):
                for direction in ("in", "out", "forward"):
                    chain = f"group-{name}-{direction}"
                    commands += [chain_cmd("add", INET, chain), chain_cmd("flush", INET, chain)]
                    commands += self.chain_rules(self.cluster["groups"][name], chain, direction)
            for direction in ("in", "out", "forward"):
                commands += self.cluster_rules(direction)
            commands += self.ct_helpers()
            commands += self.host_options()
            for direction in ("in", "out", "forward"):
                commands += self.chain_rules(self.host["rules"], f"host-{direction}", direction)
        else:
            commands.append({"delete": {"table": {"family": INET[0], "name": INET[1]}}})
        commands.append({"delete": {"table": {"family": BRIDGE[0], "name": BRIDGE[1]}}})
        return {"nftables": commands}


def _name(name):
    """Display of RuleAliasName / RuleIpsetName."""
    scope, value = name
    return f"{scope}/{value}" if scope else value


@functools.cache
def macros(ve_config):
    """fw_macros::macros: name -> protocols; a macro with an entry that does not parse is left
    out, as upstream does."""
    parser = ConfigParser(ve_config)
    table = {}
    for name, data in data_json("macros.json").items():
        code = []
        try:
            for entry in data["code"]:
                proto = parser.protocol(entry)
                if proto is None:
                    break
                code.append(proto)
            else:
                table[name] = code
        except ParseError:
            continue
    return table


def management_ips(facts):
    """HostConfig::management_ips: every interface CIDR that contains an address the node name
    resolves to. Upstream panics when the name does not resolve."""
    host_ips = facts.get("host_ips")
    if not host_ips:
        raise GenerationError("local hostname is resolvable")
    found = []
    for host_ip in host_ips:
        ip = ipaddress.ip_address(host_ip)
        for cidr in facts.get("interface_cidrs", []):
            parsed = parse_cidr(cidr)
            if parsed and parsed[0] == ip.version:
                if ip in ipaddress.ip_network(f"{parsed[1]}/{parsed[2]}", strict=False):
                    found.append(parsed)
    return found


def _skeleton_objects(skeleton):
    """The chains and sets of the inet table that the base ruleset declares."""
    chains, sets, table = set(), set(), None
    for line in skeleton.splitlines():
        words = line.split()
        if words[:4] == ["add", "chain", "inet", INET[1]]:
            chains.add(words[4])
        elif words[:2] == ["table", "inet"]:
            table = "inet"
        elif words[:2] == ["table", "bridge"]:
            table = "bridge"
        elif table == "inet" and len(words) >= 2 and words[0] in ("chain", "set", "map"):
            (chains if words[0] == "chain" else sets).add(words[1])
    return chains, sets


def undefined_references(skeleton, batch):
    """What nft refuses in a batch: a jump or goto to a chain, or a lookup in a set, that neither
    the base ruleset nor the batch defines (checked against nft in tests/functional)."""
    chains, sets = _skeleton_objects(skeleton)
    missing = []
    for command in batch["nftables"]:
        for op, objects in command.items():
            for kind, obj in objects.items():
                if obj.get("family") != INET[0]:
                    continue
                if op == "add" and kind == "chain":
                    chains.add(obj["name"])
                elif op == "add" and kind == "set":
                    sets.add(obj["name"])
                elif op == "add" and kind == "rule":
                    missing += _rule_references(obj["expr"], chains, sets)
    return ", ".join(dict.fromkeys(missing))


def _rule_references(value, chains, sets):
    missing = []
    if isinstance(value, dict):
        for key, inner in value.items():
            if key in ("jump", "goto") and inner["target"] not in chains:
                missing.append(f"chain {inner['target']}")
            else:
                missing += _rule_references(inner, chains, sets)
    elif isinstance(value, list):
        for inner in value:
            missing += _rule_references(inner, chains, sets)
    elif isinstance(value, str) and value.startswith("@") and value[1:] not in sets:
        missing.append(f"set {value[1:]}")
    return missing


def without_bridge_table(skeleton, batch):
    """The base ruleset and the batch without the bridge table, for a kernel whose nftables has
    no bridge reject, conntrack or ibrname/obrname (lab/README.md)."""
    lines, depth = [], 0
    for line in skeleton.splitlines(keepends=True):
        words = line.split()
        if depth == 0 and words[:2] == ["table", "bridge"]:
            depth = 1
            continue
        if depth:
            depth += line.count("{") - line.count("}")
            continue
        if words[1:3] in (["table", "bridge"], ["chain", "bridge"]):
            continue
        lines.append(line)
    if batch is not None:
        commands = [
            command
            for command in batch["nftables"]
            if not any(obj.get("family") == BRIDGE[0] for objects in command.values() for obj in objects.values())
        ]
        batch = {"nftables": commands}
    return "".join(lines), batch
