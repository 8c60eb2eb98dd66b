"""
pve-firewall (Perl, iptables and ipset): its line-by-line parser and the host part of its
compiler, transcribed from src/PVE/Firewall.pm of proxmox/pve-firewall (6.0.4 at aadddcf, 5.1.1 at
acf164b; BEHAVIOR.md section 3). Function names follow the Perl subs they stand for, so each one
can be checked against its original.

Nothing in a file is fatal: a bad line is dropped, a rule with errors is kept but never compiled,
and each problem is reported the way ``pve-firewall compile`` prints it.
"""

import base64
import hashlib
import ipaddress
import re
import time

from pvesim.fwcompile.system import PerlDie, data_json, perl_protocols, perl_services

NAME = r"[A-Za-z][A-Za-z0-9\-\_]+"
OCTET = r"(?:25[0-5]|(?:2[0-4]|1[0-9]|[1-9])?[0-9])"
IPV4RE = rf"(?:(?:{OCTET}\.){{3}}{OCTET})"
LOG_LEVELS = {"debug": 7, "info": 6, "notice": 5, "warning": 4, "err": 3, "crit": 2, "alert": 1, "emerg": 0}
PROTOCOLS_WITH_PORTS = {"udp", "17", "udplite", "136", "tcp", "6", "dccp", "33", "sctp", "132"}
ACCEPT_MARK_ON = "0x80000000/0x80000000"
ACCEPT_MARK_OFF = "0x00000000/0x80000000"
RULE_ENV_IFACE = {"group": False, "vnet": False, "cluster": True, "host": True}
RULE_ENV_TYPES = {
    "group": ["in", "out", "forward"],
    "cluster": ["in", "out", "forward", "group"],
    "host": ["in", "out", "forward", "group"],
}
# parse_fw_rule's options after ``-i`` (a group rule takes only that one)
RULE_OPTIONS = [
    (r"(?:-p|--?proto) (\S+)", "proto"),
    (r"--?dport (\S+)", "dport"),
    (r"--?sport (\S+)", "sport"),
    (r"--?source (\S+)", "source"),
    (r"--?dest (\S+)", "dest"),
    (r"--?log (emerg|alert|crit|err|warning|notice|info|debug|nolog)", "log"),
    (r"--?icmp-type (\S+)", "icmp-type"),
]


def tables():
    return data_json("pve-firewall-tables.json")


def _ipv6(text):
    """$IPV6RE: a plain IPv6 address (no zone, no prefix)."""
    if "%" in text or "/" in text or not re.fullmatch(r"[0-9A-Fa-f:.]+", text):
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def ip_version_of(address):
    if re.fullmatch(IPV4RE, address):
        return 4
    return 6 if _ipv6(address) else None


def parse_ip_or_cidr(cidr):
    """parse_ip_or_cidr: (cidr without /32 or /128, version)."""
    address, slash, prefix = cidr.partition("/")
    if slash and not prefix.isdigit():
        raise PerlDie("value does not look like a valid IP address or CIDR network")
    version = ip_version_of(address)
    if version == 6:
        return re.sub(r"/128$", "", cidr), 6
    if version == 4:
        return re.sub(r"/32$", "", cidr), 4
    raise PerlDie("value does not look like a valid IP address or CIDR network")


def _net_ip(element):
    """What Net::IP->new accepts of an address-list element: an address, a network without host
    bits, or a range; returns its version."""
    if "-" in element:
        first, _, last = (part.strip() for part in element.partition("-"))
        try:
            start, end = ipaddress.ip_address(first), ipaddress.ip_address(last)
        except ValueError as err:
            raise PerlDie(f"invalid IP address: {err}") from None
        if start.version != end.version or start > end:
            raise PerlDie(f"invalid IP address: Invalid range {element}")
        return start.version
    try:
        return ipaddress.ip_network(element, strict=True).version
    except ValueError as err:
        raise PerlDie(f"invalid IP address: {err}") from None


def parse_address_list(value):
    if value.startswith("+"):
        if re.fullmatch(r"\+(\S+)", value) and len(value) > 65:
            raise PerlDie("ipset name too long")
        return None
    if re.fullmatch(rf"(dc/|guest/)?{NAME}", value):
        if len(value) > 64:
            raise PerlDie("alias name too long")
        return None
    elements = value.split(",")
    if any(not e for e in elements):
        raise PerlDie("extraneous commas in list")
    version = None
    for element in elements:
        found = _net_ip(element)
        if version and found != version:
            raise PerlDie(f"detected mixed ipv4/ipv6 addresses in address list '{value}'")
        version = found
    if len(elements) > 1 and any("-" in e for e in elements):
        raise PerlDie("you can't use a range in a list")
    return version


def parse_port_name_number_or_range(value, dport):
    """Returns whether the list has more than one element (a multiport match)."""
    services = perl_services()
    elements = value.split(",")
    if ",".join(e for e in elements if e) != value:
        raise PerlDie("extraneous commas in list")
    count, icmp_port = 0, False
    for item in elements:
        ports = re.fullmatch(r"([0-9]+):([0-9]+)", item)
        if ports:
            count += 2
            first, last = (int(p) for p in ports.groups())
            for port in (first, last):
                if port > 65535:
                    raise PerlDie(f"invalid port '{port}'")
            if first > last:
                raise PerlDie(f"backwards range '{first}:{last}' not allowed, did you mean '{last}:{first}'?")
        elif re.fullmatch(r"[0-9]+", item):
            count += 1
            if int(item) > 65535:
                raise PerlDie(f"invalid port '{item}'")
        elif dport and (item in tables()["icmp_type_names"] or item in tables()["icmpv6_type_names"]):
            icmp_port = True
        elif item not in services:
            raise PerlDie(f"invalid port '{item}'")
    if icmp_port and count > 0:
        raise PerlDie("ICMP ports not allowed in port range")
    if count > 15:
        raise PerlDie("too many entries in port list (> 15 numbers)")
    return len(elements) > 1


def _is_icmp(proto):
    return proto in ("icmp", "icmpv6", "ipv6-icmp")


def _valid_icmp_type(value, names):
    if re.fullmatch(r"\d+", value):
        if int(value) > 255:
            raise PerlDie(f"invalid icmp-type '{value}'")
    elif value not in names:
        raise PerlDie(f"unknown icmp-type '{value}'")


# --- macros ---------------------------------------------------------------------------------


def _macro_table():
    """init_firewall_macros: name -> rule templates, preferred names, IP version restrictions."""
    parsed, preferred, versions = {}, {}, {}
    for source, only in (("pve_fw_macros", 0), ("pve_ipv6fw_macros", 6)):
        for name, entries in tables()[source].items():
            if name in parsed:
                continue
            templates = [e for e in entries if isinstance(e, dict)]
            versions[name] = only
            for text in (e for e in entries if isinstance(e, str)):
                versions[name] = {"ipv4only": 4, "ipv6only": 6}.get(text, versions[name])
            preferred[name.lower()] = name
            parsed[name] = templates
    return parsed, preferred, versions


def apply_macro(name, param, ipversion):
    parsed, _, versions = _macro_table()
    templates = parsed[name]
    if ipversion == 6 and name in tables()["pve_ipv6fw_macros"]:
        templates = [e for e in tables()["pve_ipv6fw_macros"][name] if isinstance(e, dict)]
    if ipversion and versions[name] and ipversion != versions[name]:
        return []
    rules = []
    for template in templates:
        rule, used = {}, set()
        for key, template_value in template.items():
            value = template_value
            if value == "PARAM":
                value = param.get(key)
                used.add(key)
            if value is None:
                raise PerlDie(f"missing parameter '{key}' in macro '{name}'", "macro")
            rule[key] = value
        for key, value in param.items():
            if key == "macro" or value is None or key in used:
                continue
            if key in rule:
                if str(rule[key]) != str(value):
                    raise PerlDie(f"parameter '{key}' already define in macro (value = '{rule[key]}')", key)
            else:
                rule[key] = value
        rules.append(rule)
    return rules


# --- the config files -----------------------------------------------------------------------


def _option(line, rule_env):
    """parse_clusterfw_option / parse_hostfw_option."""
    levels = "emerg|alert|crit|err|warning|notice|info|debug|nolog"
    if rule_env == "cluster":
        patterns = [
            (r"(enable):\s*(\d+)\s*$", "enable"),
            (r"(ebtables):\s*(0|1)\s*$", "int"),
            (r"(policy_(?:in|out|forward)):\s*(ACCEPT|DROP|REJECT)\s*$", "upper"),
        ]
    else:
        patterns = [
            (
                r"(enable|nosmurfs|tcpflags|ndp|log_nf_conntrack|nf_conntrack_allow_invalid|protection_synflood"
                r"|nftables):\s*(0|1)\s*$",
                "int",
            ),
            (rf"(log_level_(?:in|out|forward)|tcp_flags_log_level|smurf_log_level):\s*(({levels})\s*)?$", "level"),
            (r"(nf_conntrack_helpers):\s*(((\S+)[,]?)+)\s*$", "helpers"),
            (
                r"(nf_conntrack_max|nf_conntrack_tcp_timeout_established|nf_conntrack_tcp_timeout_syn_recv"
                r"|protection_synflood_rate|protection_synflood_burst|protection_limit):\s*(\d+)\s*$",
                "int",
            ),
        ]
    for pattern, kind in patterns:
        match = re.match("^" + pattern, line, re.I)
        if not match:
            continue
        key, value = match.group(1).lower(), match.group(2)
        if kind == "enable":
            value = int(value)
            if value > 1 and time.time() - value > 60:
                value = 0
        elif kind == "int":
            value = int(value)
        elif kind == "upper":
            value = value.upper()
        elif kind == "level":
            value = match.group(3).lower() if value else ""
        elif kind == "helpers":
            value = value.lower()
            for helper in value.split(","):
                if helper not in tables()["pve_fw_helpers"]:
                    raise PerlDie(f"unknown helper {helper}")
        return key, value
    if rule_env == "cluster":
        match = re.match(r"^(log_ratelimit):\s*(\S+)\s*$", line)
        if match:
            return "log_ratelimit", match.group(2)
    raise PerlDie(f"can't parse option '{line}'")


def parse_alias(line):
    body = re.sub(r"\s*#\s*(.*?)\s*$", "", line)
    match = re.fullmatch(r"(\S+)\s(\S+)", body)
    if not match:
        return None
    name, cidr = match.groups()
    cidr, version = parse_ip_or_cidr(cidr)
    return {"name": name, "cidr": cidr, "ipversion": version}


def resolve_alias(cluster_conf, fw_conf, name, scope):
    cluster, local = (fw_conf, None) if cluster_conf is None else (cluster_conf, fw_conf)
    alias = name.lower()
    entry = None
    if scope != "dc/" and local is not None:
        entry = local.get("aliases", {}).get(alias)
    if scope != "guest/" and entry is None and cluster is not None:
        entry = cluster.get("aliases", {}).get(alias)
    if entry is None:
        raise PerlDie(f"no such alias '{name}'")
    return entry["cidr"], entry["ipversion"]


def verify_rule(rule, cluster_conf, fw_conf, rule_env):
    """verify_rule(..., noerr=1): errors stay with the rule; ``PerlDie`` for the uncaught dies."""
    errors = rule.setdefault("errors", {})
    state = {"ipversion": None}

    def add_error(param, message):
        errors.setdefault(param, message.rstrip("\n"))

    def set_ip_version(version):
        if version:
            if state["ipversion"] and version != state["ipversion"]:
                raise PerlDie("detected mixed ipv4/ipv6 addresses in rule")
            state["ipversion"] = version

    def check_ipset_or_alias(name):
        value = rule.get(name)
        if not value:
            return
        if value.startswith("+"):
            match = re.fullmatch(rf"\+(guest/|dc/|sdn/)?({NAME})", value)
            if not match:
                add_error(name, f"invalid ipset name '{value}'")
            elif not (
                match.group(2) in cluster_conf.get("ipset", {})
                or (fw_conf and match.group(2) in fw_conf.get("ipset", {}))
                or match.group(2) in (cluster_conf.get("sdn") or {}).get("ipset", {})
            ):
                add_error(name, f"no such ipset '{match.group(2)}'")
            return
        match = re.fullmatch(rf"(guest/|dc/)?({NAME})", value)
        if match:
            scope, alias = match.group(1) or "", match.group(2).lower()
            local = (fw_conf or {}).get("aliases", {})
            if alias not in cluster_conf.get("aliases", {}) and alias not in local:
                add_error(name, f"no such alias '{value}'")
            entry = local.get(alias) if scope != "dc/" and fw_conf else None
            if scope != "guest/" and not entry:
                entry = cluster_conf.get("aliases", {}).get(alias)
            set_ip_version((entry or {}).get("ipversion"))

    kind, action = rule.get("type"), rule.get("action")
    if kind not in RULE_ENV_TYPES[rule_env]:
        add_error("type", f"invalid rule type '{kind}' for rule_env '{rule_env}'")
    if kind in ("in", "out", "forward"):
        if kind == "forward" and action == "REJECT":
            add_error("action", "cannot define REJECT rules on forward chain")
        if not re.fullmatch(r"ACCEPT|DROP|REJECT", action):
            add_error("action", f"unknown action '{action}'")
    elif kind == "group":
        if rule_env == "group":
            add_error("type", "security groups not allowed")
        if not re.fullmatch(NAME, action):
            add_error("action", "invalid characters in security group name")
    else:
        add_error("type", f"unknown rule type '{kind}'")
    if rule.get("iface"):
        if not RULE_ENV_IFACE[rule_env]:
            add_error("type", "parameter -i not allowed for this rule type")
        if not re.fullmatch(r"[a-z][a-z0-9_]{1,20}([:\.]\d+)?", rule["iface"], re.I):
            add_error("iface", f"invalid network interface name '{rule['iface']}'")
    if rule.get("macro"):
        preferred = _macro_table()[1].get(rule["macro"].lower())
        if preferred:
            rule["macro"] = preferred
        else:
            add_error("macro", f"unknown macro '{rule['macro']}'")
    proto = rule.get("proto")
    is_icmp = False
    if proto:
        if proto not in perl_protocols():
            add_error("proto", f"unknown protocol '{proto}'")
        set_ip_version({"icmp": 4, "icmpv6": 6, "ipv6-icmp": 6}.get(proto))
        is_icmp = _is_icmp(proto)

    def check_ports(key, icmp_allowed):
        try:
            parse_port_name_number_or_range(rule[key], icmp_allowed)
        except PerlDie as err:
            add_error(key, str(err))
        if not proto:
            add_error("proto", f"missing property - '{key}' requires this property")
        if proto not in PROTOCOLS_WITH_PORTS and not icmp_allowed:
            add_error(key, f"protocol '{proto or ''}' does not support ports")

    if rule.get("dport"):
        check_ports("dport", is_icmp)
    if rule.get("icmp-type"):
        icmp_type = rule["icmp-type"]
        if not is_icmp:
            add_error("proto", "missing property - 'icmp-type' requires this property")
        if rule.get("dport"):
            add_error("icmp-type", "'icmp-type' cannot be specified together with 'dport'")
        if proto == "icmp" and icmp_type not in tables()["icmp_type_names"]:
            add_error("icmp-type", f"invalid icmp-type '{icmp_type}' for proto 'icmp'")
        elif proto in ("icmpv6", "ipv6-icmp") and icmp_type not in tables()["icmpv6_type_names"]:
            add_error("icmp-type", f"invalid icmp-type '{icmp_type}' for proto '{proto}'")
    if rule.get("sport"):
        check_ports("sport", False)
    for key in ("source", "dest"):
        if rule.get(key):
            try:
                set_ip_version(parse_address_list(rule[key]))
            except PerlDie as err:
                add_error(key, str(err))
            check_ipset_or_alias(key)
    if state["ipversion"]:
        rule["ipversion"] = state["ipversion"]
    if rule.get("macro") and not errors:
        try:
            apply_macro(rule["macro"], rule, state["ipversion"])
        except PerlDie as err:
            add_error(err.args[1] if len(err.args) > 1 else "macro", str(err.args[0]))
    if not errors:
        del rule["errors"]
    return rule


def parse_fw_rule(prefix, line, cluster_conf, fw_conf, rule_env, messages):
    orig = line
    rule = {}
    comment = re.search(r"#\s*(.*?)\s*$", line)
    if comment:
        rule["comment"] = comment.group(1)
        line = line[: comment.start()]
    rule["enable"] = 0 if line.startswith("|") else 1
    line = line.removeprefix("|")
    head = re.match(r"^(\S+)\s+(\S+)\s*", line)
    if not head:
        raise PerlDie(f"unable to parse rule: {line}")
    rule["type"], rule["action"] = head.group(1).lower(), head.group(2)
    line = line[head.end() :]
    if rule["type"] in ("in", "out", "forward"):
        macro = re.fullmatch(r"(\S+)\((ACCEPT|DROP|REJECT)\)", rule["action"])
        if macro:
            rule["macro"], rule["action"] = macro.groups()
    while line:
        iface = re.match(r"^-i (\S+)\s*", line)
        if iface:
            rule["iface"], line = iface.group(1), line[iface.end() :]
            continue
        if rule["type"] == "group":
            break
        for pattern, key in RULE_OPTIONS:
            option = re.match(rf"^{pattern}\s*", line)
            if option:
                rule[key], line = option.group(1), line[option.end() :]
                break
        else:
            break
    if line:
        raise PerlDie(f"unable to parse rule parameters: {line}")
    rule = verify_rule(rule, cluster_conf, fw_conf, rule_env)
    if rule.get("errors"):
        messages.append(f"{prefix} - errors in rule parameters: {orig}")
        messages += [f"  {param}: {text}" for param, text in rule["errors"].items()]
    return rule


def generic_fw_config_parser(filename, text, cluster_conf, rule_env, messages, sdn=None):
    """load_clusterfw_conf / load_hostfw_conf: the file's sections, options, aliases, IP sets,
    rules and groups, with pve-firewall's messages appended to ``messages``."""
    if rule_env == "cluster":
        res = {"rules": [], "options": {}, "aliases": {}, "groups": {}, "ipset": {}, "sdn": sdn or {"ipset": {}}}
        cluster_conf = res
    else:
        res = {"rules": [], "options": {}}
    if not text:
        return res
    section = group = None
    group_keys = set()
    for linenr, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip(" \t")
        if line.startswith("#") or not line.strip():
            continue
        prefix = f"{filename} (line {linenr})"
        if re.fullmatch(r"\[options\]", line, re.I):
            section = "options"
            continue
        if "aliases" in res and re.fullmatch(r"\[aliases\]", line, re.I):
            section = "aliases"
            continue
        if re.fullmatch(r"\[rules\]", line, re.I):
            section = "rules"
            continue
        named = _named_section(line, res)
        if named:
            section, group, error = named
            if error:
                messages.append(f"{prefix}: {error}")
                section = group = None
            else:
                res[section][group] = []
                group_keys = set()
            continue
        if not section:
            messages.append(f"{prefix}: skip line - no section")
            continue
        try:
            if section == "options":
                key, value = _option(line, rule_env)
                res["options"][key] = value
            elif section == "aliases":
                alias = parse_alias(line)
                if alias:
                    res["aliases"][alias["name"].lower()] = alias
            elif section == "rules":
                res["rules"].append(parse_fw_rule(prefix, line, cluster_conf, res, rule_env, messages))
            elif section == "groups":
                res["groups"][group].append(parse_fw_rule(prefix, line, cluster_conf, None, "group", messages))
            else:
                res["ipset"][group].append(_ipset_entry(line, cluster_conf, res, group_keys))
        except PerlDie as err:
            messages.append(f"{prefix}: {err.args[0]}")
    return res


def _named_section(line, res):
    """A ``[group name]`` or ``[ipset name]`` header (for the files that have them):
    (section, lower-cased name, error or None), or None for another line."""
    for section, keyword, longest, what in (("groups", "group", 18, "security group"), ("ipset", "ipset", 64, "ipset")):
        header = section in res and re.fullmatch(rf"\[{keyword}\s+(\S+)\]\s*(?:#\s*(.*?)\s*)?", line, re.I)
        if header:
            name = header.group(1).lower()
            if len(name) > longest:
                return section, name, f"{what} name too long"
            if not re.fullmatch(NAME, name):
                return section, name, f"invalid {what} name '{name}'"
            return section, name, None
    return None


def _ipset_entry(line, cluster_conf, res, group_keys):
    comment = re.search(r"#\s*(.*?)\s*$", line)
    if comment:
        line = line[: comment.start()]
    match = re.fullmatch(r"(\!)?\s*(\S+)\s*", line)
    nomatch, cidr = match.groups() if match else (None, line.strip())
    errors = {}
    try:
        alias = re.fullmatch(rf"(dc/|guest/)?({NAME})", cidr)
        if alias:
            resolve_alias(cluster_conf, res, alias.group(2), alias.group(1) or "")
        else:
            cidr = parse_ip_or_cidr(cidr)[0]
        if cidr in group_keys:
            raise PerlDie(f"duplicate ipset entry for '{cidr}'")
    except PerlDie as err:
        errors["cidr"] = str(err)
    if re.search(r"/0+$", cidr):
        errors["cidr"] = "a zero prefix is not allowed in ipset entries"
    group_keys.add(cidr)
    entry = {"cidr": cidr}
    if nomatch:
        entry["nomatch"] = 1
    if errors:
        entry["errors"] = errors
    return entry


def log_ratelimit(options):
    """$set_global_log_ratelimit: the iptables limit of log rules (None: no limit). A value that
    does not fit its format dies, and with it the whole update."""
    value = options.get("log_ratelimit")
    if value is None:
        return "--limit 1/sec"
    limit, default_key = {}, False
    for part in value.split(","):
        if not part.strip():
            continue
        keyed = re.fullmatch(r"([^=]+)=(.+)", part)
        if keyed:
            key, val = keyed.groups()
            if key in limit:
                raise PerlDie(f"duplicate key in comma-separated list property: {key}")
            if key not in ("enable", "rate", "burst"):
                raise PerlDie(f"invalid key in comma-separated list property: {key}")
            if key == "enable":
                val = {"1": 1, "on": 1, "yes": 1, "true": 1, "0": 0, "off": 0, "no": 0, "false": 0}.get(
                    val.lower(), val
                )
            limit[key] = val
        elif "=" not in part:
            if default_key or limit.get("enable"):
                raise PerlDie("duplicate key in comma-separated list property: enable")
            default_key = True
            limit["enable"] = part
        else:
            raise PerlDie("missing key in comma-separated list property")
    problems = []
    if "enable" in limit and str(limit["enable"]) not in ("0", "1"):
        problems.append(f"enable: type check ('boolean') failed - got '{limit['enable']}'")
    if "rate" in limit and not re.fullmatch(r"[1-9][0-9]*\/(second|minute|hour|day)", limit["rate"]):
        problems.append("rate: value does not match the regex pattern")
    if "burst" in limit and not re.fullmatch(r"\d+", str(limit["burst"])):
        problems.append(f"burst: type check ('integer') failed - got '{limit['burst']}'")
    if problems:
        raise PerlDie("format error\n" + "\n".join(problems))
    if not limit.get("enable") or limit["enable"] == "0":
        return None
    result = f"--limit {limit['rate']}" if limit.get("rate") else "--limit 1/sec"
    if limit.get("burst") and limit["burst"] != "0":
        result += f" --limit-burst {limit['burst']}"
    return result


# --- compiling ------------------------------------------------------------------------------


def fnv31a_hex(text):
    value = 0x811C9DC5
    for byte in text.encode():
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return f"{value & 0x7FFFFFFF:X}"


def compute_ipset_chain_name(vmid, name, version):
    ident = f"{vmid or 0}-{name}-v{version}"
    if len(ident) > 31 - len("PVEFW-") - len("_swap"):
        ident = fnv31a_hex(ident)
    return f"PVEFW-{ident}"


class Compiler:
    """One compile of pve-firewall: ``ruleset(version)`` and ``ipsets()``, as ``compile`` returns
    them, for the host only (no guests)."""

    def __init__(self, cluster_conf, host_conf, node, facts, corosync, release):
        self.cluster = cluster_conf
        self.host = host_conf
        self.node = node
        self.facts = facts
        self.corosync = corosync
        self.altnames = release >= (6, 0, 2)
        self.log_limit = log_ratelimit(cluster_conf.get("options", {}))
        self.messages = []
        if "local_network" in cluster_conf["aliases"]:
            localnet = cluster_conf["aliases"]["local_network"]["cidr"]
        else:
            localnet, version = parse_ip_or_cidr(local_network(facts) or "127.0.0.0/8")
            cluster_conf["aliases"]["local_network"] = {"name": "local_network", "cidr": localnet, "ipversion": version}
        # compile and compile_ipsets each append the local network once
        cluster_conf["ipset"].setdefault("management", []).extend([{"cidr": localnet}, {"cidr": localnet}])
        self.std_chains = {4: tables()["pve_std_chains_conf_4"], 6: tables()["pve_std_chains_conf_6"]}

    def warn(self, err):
        self.messages.append(str(err.args[0]).rstrip("\n"))

    # ruleset helpers

    def create_chain(self, ruleset, chain):
        if len(chain) > 28:
            raise PerlDie(f"Invalid chain name '{chain}' (28 char max)")
        if ":" in chain:
            raise PerlDie("chain name may not contain collons")
        if chain in ruleset:
            raise PerlDie(f"chain '{chain}' already exists")
        ruleset[chain] = []

    def log_rule_base(self, chain, vmid, message, level):
        limit = f"-m limit {self.log_limit} " if self.log_limit is not None else ""
        return f'{limit}-j NFLOG --nflog-prefix ":{vmid or 0}:{level}:{chain}: {message or ""}"'

    def addrule(self, ruleset, chain, match, action, log=None, logmsg=None, vmid=None):
        if chain not in ruleset:
            raise PerlDie(f"no such chain '{chain}'")
        if log:
            ruleset[chain].append(f"-A {chain} {match} {self.log_rule_base(chain, vmid, logmsg, LOG_LEVELS[log])}")
        ruleset[chain].append(f"-A {chain} {match + ' ' if match else ''}{action}")

    def src_or_dst_match(self, address, direction, version, fw_conf):
        srcdst = {"s": "src", "d": "dst"}[direction]
        if address.startswith("+"):
            match = re.fullmatch(rf"\+(guest/|dc/|sdn/)?({NAME})", address)
            if not match:
                raise PerlDie(f"invalid security group name '{address}'")
            scope, name = match.group(1) or "", match.group(2)
            if scope in ("", "dc/") and name in self.cluster.get("ipset", {}):
                chain = compute_ipset_chain_name(0, name, version)
            elif scope in ("", "sdn/") and name in self.cluster["sdn"].get("ipset", {}):
                chain = compute_ipset_chain_name(0, name, version)
            else:
                raise PerlDie(f"no such ipset '{name}'")
            return f"-m set --match-set {chain} {srcdst}"
        alias = re.fullmatch(rf"(dc/|guest/)?({NAME})", address)
        if alias:
            scope, name = alias.group(1) or "", alias.group(2).lower()
            entry = (fw_conf or {}).get("aliases", {}).get(name) if scope != "dc/" and fw_conf else None
            if scope != "guest/" and not entry:
                entry = self.cluster.get("aliases", {}).get(name)
            if not entry:
                raise PerlDie(f"no such alias '{address}'")
            return f"-{direction} {entry['cidr']}"
        if "-" in address:
            return f"-m iprange --{srcdst}-range {address}"
        return f"-{direction} {address}"

    def ipt_rule_to_cmds(self, rule, chain, version, fw_conf, vmid):
        match = []
        if rule.get("match") is not None:
            match.append(rule["match"])
        else:
            if rule.get("iface_in"):
                match.append(f"-i {rule['iface_in']}")
            if rule.get("iface_out"):
                match.append(f"-o {rule['iface_out']}")
            if rule.get("source"):
                match.append(self.src_or_dst_match(rule["source"], "s", version, fw_conf))
            if rule.get("dest"):
                match.append(self.src_or_dst_match(rule["dest"], "d", version, fw_conf))
            proto = rule.get("proto")
            if proto:
                match.append(f"-p {proto}")
                self._ports(rule, proto, match)
            elif rule.get("dport"):
                raise PerlDie(f"destination port '{rule['dport']}', but no protocol specified")
            elif rule.get("sport"):
                raise PerlDie(f"source port '{rule['sport']}', but no protocol specified")
            if rule.get("dsttype"):
                match.append(f"-m addrtype --dst-type {rule['dsttype']}")
        matchstr = " ".join(match)
        if rule.get("target") is not None:
            target = rule["target"]
        else:
            action = rule.get("action") or ""
            target = f"-g {action}" if action == "PVEFW-SET-ACCEPT-MARK" else f"-j {action}"
        commands = []
        if rule.get("log") not in (None, "nolog"):
            base = self.log_rule_base(chain, vmid, rule.get("logmsg"), LOG_LEVELS[rule["log"]])
            commands.append(f"-A {chain} {matchstr} {base}")
        commands.append(f"-A {chain} {matchstr} {target}")
        return commands

    @staticmethod
    def _ports(rule, proto, match):
        is_icmp = _is_icmp(proto)
        dport, sport = rule.get("dport"), rule.get("sport")
        multidport = dport is not None and parse_port_name_number_or_range(str(dport), is_icmp)
        multisport = sport is not None and parse_port_name_number_or_range(str(sport), False)

        def add_dport():
            if dport is None:
                return
            if proto == "icmp":
                _valid_icmp_type(str(dport), tables()["icmp_type_names"])
                match.append(f"-m icmp --icmp-type {dport}")
            elif proto == "icmpv6":
                _valid_icmp_type(str(dport), tables()["icmpv6_type_names"])
                match.append(f"-m icmpv6 --icmpv6-type {dport}")
            elif proto not in PROTOCOLS_WITH_PORTS:
                raise PerlDie(f"protocol {proto} does not have ports")
            elif multidport:
                match.extend(["--match multiport", f"--dports {dport}"])
            elif dport and str(dport) != "0":
                match.append(f"--dport {dport}")

        def add_sport():
            if not sport or str(sport) == "0":
                return
            if proto not in PROTOCOLS_WITH_PORTS:
                raise PerlDie(f"protocol {proto} does not have ports")
            match.extend(["--match multiport", f"--sports {sport}"] if multisport else [f"--sport {sport}"])

        icmp_type = rule.get("icmp-type")
        if icmp_type not in (None, ""):
            if not is_icmp:
                raise PerlDie("'icmp-type' can only be set if 'icmp', 'icmpv6' or 'ipv6-icmp' is specified")
            kind = "icmp-type" if proto == "icmp" else "icmpv6-type"
            match.append(f"-m {proto} --{kind} {icmp_type}")
        if multisport:
            add_dport()
        add_sport()
        if not multisport:
            add_dport()

    def generate_rule(self, ruleset, chain, version, rule, fw_conf=None, vmid=None):
        """ruleset_generate_rule: all of a rule's commands or none."""
        rules = apply_macro(rule["macro"], rule, version) if rule.get("macro") else [rule]
        commands = [c for r in rules for c in self.ipt_rule_to_cmds(r, chain, version, fw_conf, vmid)]
        if chain not in ruleset:
            raise PerlDie(f"no such chain '{chain}'")
        ruleset[chain] += commands

    def add_chain_policy(self, ruleset, chain, version, policy, loglevel, accept_action):
        if policy == "ACCEPT":
            self.generate_rule(ruleset, chain, version, {"action": accept_action})
        elif policy == "DROP":
            self.addrule(ruleset, chain, "", "-j PVEFW-Drop")
            self.addrule(ruleset, chain, "", "-j DROP", loglevel, f"policy {policy}: ", 0)
        else:
            self.addrule(ruleset, chain, "", "-j PVEFW-Reject")
            self.addrule(ruleset, chain, "", "-g PVEFW-reject", loglevel, f"policy {policy}: ", 0)

    def add_ndp(self, ruleset, chain, version, options, direction, accept):
        if version != 6 or ("ndp" in options and not options["ndp"]):
            return
        self.addrule(ruleset, chain, "-p icmpv6 --icmpv6-type router-solicitation", accept)
        if direction != "OUT" or options.get("radv"):
            self.addrule(ruleset, chain, "-p icmpv6 --icmpv6-type router-advertisement", accept)
        self.addrule(ruleset, chain, "-p icmpv6 --icmpv6-type neighbor-solicitation", accept)
        self.addrule(ruleset, chain, "-p icmpv6 --icmpv6-type neighbor-advertisement", accept)

    def add_conn_filters(self, ruleset, chain, allow_invalid, accept):
        if not allow_invalid:
            self.addrule(ruleset, chain, "-m conntrack --ctstate INVALID", "-j DROP")
        self.addrule(ruleset, chain, "-m conntrack --ctstate RELATED,ESTABLISHED", f"-j {accept}")

    def add_input_filters(self, ruleset, chain, version, options, loglevel):
        if "blacklist" in self.cluster["ipset"]:
            if "PVEFW-blacklist" not in ruleset:
                self.create_chain(ruleset, "PVEFW-blacklist")
                self.addrule(ruleset, "PVEFW-blacklist", "", "-j DROP", loglevel, "DROP: ", 0)
            name = compute_ipset_chain_name(0, "blacklist", version)
            self.addrule(ruleset, chain, f"-m set --match-set {name} src", "-j PVEFW-blacklist")
        if options.get("nosmurfs", 1) != 0 and version == 4:
            self.addrule(ruleset, chain, "-m conntrack --ctstate INVALID,NEW", "-j PVEFW-smurfs")
        if options.get("tcpflags"):
            self.addrule(ruleset, chain, "-p tcp", "-j PVEFW-tcpflags")

    def std_chains_for(self, ruleset, options, version):
        chains = {name: [dict(rule) for rule in rules] for name, rules in self.std_chains[version].items()}
        for chain, option in (("PVEFW-smurflog", "smurf_log_level"), ("PVEFW-logflags", "tcp_flags_log_level")):
            for rule in chains.get(chain, []):
                rule["log"] = option_log_level(options, option, self.messages)
        for chain, rules in chains.items():
            self.create_chain(ruleset, chain)
            for rule in rules:
                self.generate_rule(ruleset, chain, version, rule)

    # the host chains

    def group_rules(self, ruleset, group, version):
        rules = self.cluster["groups"].get(group)
        if rules is None:
            self.messages.append(f"no such security group '{group}'")
            rules = []
        for direction in ("in", "out"):
            chain = f"GROUP-{group}-{direction.upper()}"
            self.create_chain(ruleset, chain)
            self.addrule(ruleset, chain, "", f"-j MARK --set-mark {ACCEPT_MARK_OFF}")
            for rule in rules:
                if rule["type"] != direction or not rule["enable"] or rule.get("errors"):
                    continue
                if rule.get("ipversion") and rule["ipversion"] != version:
                    continue
                _substitute(rule, {"ACCEPT": "PVEFW-SET-ACCEPT-MARK", "REJECT": "PVEFW-reject"})
                self.generate_rule(ruleset, chain, version, rule)

    def add_group_rule(self, ruleset, chain, rule, direction, action, version):
        group_chain = f"GROUP-{rule['action']}-{direction}"
        if group_chain not in ruleset:
            self.group_rules(ruleset, rule["action"], version)
        iface = rule.get("iface_out") if direction == "OUT" else rule.get("iface_in")
        flag = "-o" if direction == "OUT" else "-i"
        self.addrule(ruleset, chain, f"{flag} {iface}" if iface else "", f"-j {group_chain}")
        self.addrule(ruleset, chain, f"-m mark --mark {ACCEPT_MARK_ON}", f"-j {action}")

    def iface_name(self, iface):
        if self.altnames:
            return self.facts.get("altnames", {}).get(iface, iface)
        return iface

    def host_chain(self, ruleset, version, direction):
        """enable_host_firewall, one direction: HOST-IN or HOST-OUT."""
        options = self.host.get("options", {})
        chain = f"PVEFW-HOST-{direction}"
        kind, iface_key = direction.lower(), "iface_in" if direction == "IN" else "iface_out"
        self.create_chain(ruleset, chain)
        loglevel = option_log_level(options, f"log_level_{kind}", self.messages)
        self.addrule(ruleset, chain, "-i lo" if direction == "IN" else "-o lo", "-j ACCEPT")
        self.add_conn_filters(ruleset, chain, False, "ACCEPT")
        self.add_ndp(ruleset, chain, version, options, direction, "-j RETURN")
        if direction == "IN":
            self.add_input_filters(ruleset, chain, version, options, loglevel)
        self.addrule(ruleset, chain, "-p igmp", "-j RETURN")
        for rule in self.host.get("rules", []) + self.cluster.get("rules", []):
            if not rule["enable"] or rule.get("errors"):
                continue
            if rule.get("ipversion") and rule["ipversion"] != version:
                continue
            if rule.get("iface"):
                rule[iface_key] = self.iface_name(rule["iface"])
            try:
                rule["logmsg"] = f"{rule['action']}: "
                if rule["type"] == "group":
                    self.add_group_rule(ruleset, chain, rule, direction, "RETURN", version)
                elif rule["type"] == kind:
                    _substitute(rule, {"ACCEPT": "RETURN", "REJECT": "PVEFW-reject"})
                    self.generate_rule(ruleset, chain, version, rule, self.host, 0)
            except PerlDie as err:
                self.warn(err)
            rule.pop(iface_key, None)
        if direction == "IN":
            source = f"-m set --match-set {compute_ipset_chain_name(0, 'management', version)} src"
            for ports in ("8006", "5900:5999", "3128", "22", "60000:60050"):
                self.addrule(ruleset, chain, f"{source} -p tcp --dport {ports}", "-j RETURN")
        else:
            localnet = self.cluster["aliases"]["local_network"]
            if localnet["cidr"] and version == localnet["ipversion"]:
                for ports in ("8006", "22", "5900:5999", "3128"):
                    self.addrule(ruleset, chain, f"-d {localnet['cidr']} -p tcp --dport {ports}", "-j RETURN")
        self.corosync_rules(ruleset, chain, version, direction)
        policy = self.cluster["options"].get(f"policy_{kind}") or ("DROP" if direction == "IN" else "ACCEPT")
        self.add_chain_policy(ruleset, chain, version, policy, loglevel, "RETURN")

    def corosync_rules(self, ruleset, chain, version, direction):
        if self.corosync is None:
            return
        rule = "-p udp --dport 5404:5405"
        if self.corosync["totem"].get("transport") == "udp":
            self.addrule(ruleset, chain, f"-m addrtype --dst-type MULTICAST {rule}", "-j RETURN")
        addresses = list(self.corosync_addresses(version))
        local = {key: ip for name, ip, key in addresses if name == self.node}
        for name, ip, key in addresses:
            if name != self.node and key in local:
                pair = f"-d {local[key]} -s {ip}" if direction == "IN" else f"-s {local[key]} -d {ip}"
                self.addrule(ruleset, chain, f"{pair} {rule}", "-j RETURN")

    def corosync_addresses(self, version):
        """PVE::Corosync::for_all_corosync_addresses for one IP version."""
        strategy = (self.corosync["totem"].get("ip_version") or "ipv6-4").lower()
        for name in sorted(self.corosync["nodes"]):
            node = self.corosync["nodes"][name]
            for key in sorted(node):
                if not re.fullmatch(r"(ring|link)\d+_addr", key):
                    continue
                ip = resolve_like_corosync(node[key], strategy, self.facts.get("hosts", {}))
                if ip and ip_version_of(ip) == version:
                    yield name, ip, key

    def ruleset(self, version):
        """compile_iptables_filter for the host, then compile_iptables_raw."""
        options = self.host.get("options", {})
        ruleset = {}
        for chain in ("PVEFW-INPUT", "PVEFW-OUTPUT", "PVEFW-FORWARD"):
            self.create_chain(ruleset, chain)
        loglevel = option_log_level(options, "log_level_out", self.messages)
        self.add_conn_filters(ruleset, "PVEFW-FORWARD", options.get("nf_conntrack_allow_invalid", 0), "ACCEPT")
        self.create_chain(ruleset, "PVEFW-FWBR-IN")
        self.add_input_filters(ruleset, "PVEFW-FWBR-IN", version, options, loglevel)
        self.addrule(ruleset, "PVEFW-FORWARD", "-m physdev --physdev-is-bridged --physdev-in fwln+", "-j PVEFW-FWBR-IN")
        self.create_chain(ruleset, "PVEFW-FWBR-OUT")
        self.addrule(
            ruleset, "PVEFW-FORWARD", "-m physdev --physdev-is-bridged --physdev-out fwln+", "-j PVEFW-FWBR-OUT"
        )
        self.std_chains_for(ruleset, options, version)
        if options.get("enable") != 0:
            try:
                self.host_chain(ruleset, version, "IN")
                self.host_chain(ruleset, version, "OUT")
                self.addrule(ruleset, "PVEFW-OUTPUT", "", "-j PVEFW-HOST-OUT")
                self.addrule(ruleset, "PVEFW-INPUT", "", "-j PVEFW-HOST-IN")
            except PerlDie as err:
                self.warn(err)
        return {"filter": ruleset, "raw": self.raw(version)}

    def raw(self, version):
        options = self.host.get("options", {})
        ruleset = {}
        synflood, helpers = options.get("protection_synflood") or 0, options.get("nf_conntrack_helpers") or ""
        if synflood or helpers:
            self.create_chain(ruleset, "PVEFW-PREROUTING")
        if synflood:
            rate = options.get("protection_synflood_rate") or 200
            burst = options.get("protection_synflood_burst") or 1000
            expire = (options.get("nf_conntrack_tcp_timeout_syn_recv") or 60) * 1000
            mask = 32 if version == 4 else 64
            self.addrule(
                ruleset,
                "PVEFW-PREROUTING",
                "-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m hashlimit --hashlimit-above "
                f"{rate}/sec --hashlimit-burst {burst} --hashlimit-mode srcip --hashlimit-name syn "
                f"--hashlimit-htable-size 2097152 --hashlimit-srcmask {mask} --hashlimit-htable-expire {expire}",
                "-j DROP",
            )
        for name in helpers.split(","):
            helper = tables()["pve_fw_helpers"].get(name)
            if helper and helper.get(f"v{version}"):
                self.addrule(
                    ruleset,
                    "PVEFW-PREROUTING",
                    f"-p {helper['proto']} -m {helper['proto']} --dport {helper['dport']} -j CT",
                    f"--helper {name}",
                )
        return ruleset

    def ipsets(self):
        """compile_ipsets for the cluster's and the SDN's sets: chain name -> restore lines."""
        ipsets = {}
        for sets in (self.cluster["ipset"], self.cluster["sdn"].get("ipset", {})):
            self.ipset_chains(ipsets, sets)
        return ipsets

    def ipset_chains(self, ipsets, sets):
        """generate_ipset_chains."""
        for name, entries in sets.items():
            nets = {4: {}, 6: {}}
            for entry in entries:
                if entry.get("errors"):
                    continue
                try:
                    alias = re.fullmatch(rf"(dc/|guest/)?({NAME})", entry["cidr"])
                    if alias:
                        cidr, version = resolve_alias(None, self.cluster, alias.group(2), alias.group(1) or "")
                    else:
                        cidr, version = parse_ip_or_cidr(entry["cidr"])
                    if version == 6:
                        address, slash, prefix = cidr.partition("/")
                        cidr = re.sub(r"/128$", "", str(ipaddress.IPv6Address(address)) + slash + prefix)
                    else:
                        cidr = re.sub(r"/32$", "", cidr)
                    nets[version][cidr] = entry.get("nomatch")
                except PerlDie as err:
                    self.warn(err)
            for version in (4, 6):
                chain = compute_ipset_chain_name(0, name, version)
                size = 64 if len(entries) <= 64 else 1 << (len(entries) - 1).bit_length()
                family = "inet6" if version == 6 else "inet"
                lines = [f"create {chain} hash:net family {family} hashsize {size} maxelem {size} bucketsize 12"]
                for cidr in sorted(nets[version]):
                    lines.append(f"add {chain} {cidr}" + (" nomatch" if nets[version][cidr] else ""))
                ipsets[chain] = lines


def _substitute(rule, actions):
    if rule.get("action") in actions:
        rule["action"] = actions[rule["action"]]


def option_log_level(options, key, messages):
    value = options.get(key, "nolog")
    if value in ("", "nolog"):
        return None
    if value in LOG_LEVELS:
        return value
    messages.append(f"unknown log level ({key} = '{value}')")
    return None


def resolve_like_corosync(address, strategy, hosts):
    """resolve_hostname_like_corosync: an address as is, a name through ``hosts``."""
    if ip_version_of(address):
        return address
    resolved = hosts.get(address) or []
    ip4 = next((ip for ip in resolved if ip_version_of(ip) == 4), None)
    ip6 = next((ip for ip in resolved if ip_version_of(ip) == 6), None)
    return {"ipv4": ip4, "ipv6": ip6, "ipv6-4": ip6 or ip4, "ipv4-6": ip4 or ip6}.get(strategy)


def local_network(facts):
    """local_network(): the first route (of /proc/net/route or ipv6_route, in that order) whose
    network contains the node's IP; None when there is none."""
    node_ip = facts.get("node_ip")
    if not node_ip:
        return None
    ip = ipaddress.ip_address(node_ip)
    if ip.version == 6:
        routes = [(dest, prefix) for dest, prefix in facts.get("routes6", []) if prefix]
    else:
        routes = [(dest, _mask_length(mask)) for dest, mask in facts.get("routes4", [])]
    for dest, length in routes:
        if length is None:
            continue
        network = ipaddress.ip_network(f"{dest}/{length}", strict=False)
        if ip in network:
            return f"{dest}/{length}"
    return None


def _mask_length(mask):
    """$ipv4_mask_hash_localnet: /8 to /32 only."""
    bits = bin(int(ipaddress.IPv4Address(mask)))[2:].zfill(32)
    length = bits.find("0") if "0" in bits else 32
    return length if length >= 8 and "1" not in bits[length:] else None


# --- what pve-firewall hands to the restore tools -------------------------------------------


def b64digest(lines, sort=False):
    sha = hashlib.sha1()
    for line in sorted(lines) if sort else lines:
        sha.update(line.encode())
    return base64.b64encode(sha.digest()).decode().rstrip("=")


def is_pvefw_chain(name):
    return bool(
        re.fullmatch(r"PVEFW-\S+", name)
        or re.fullmatch(r"(tap|veth)\d+i\d+-(?:IN|OUT)", name)
        or re.fullmatch(r"fwbr\d+(v\d+)?-(?:FW|IN|OUT|IPS)", name)
        or re.fullmatch(rf"GROUP-(?:{NAME})-(?:IN|OUT)", name)
    )


def iptables_get_chains(save_output, table):
    """iptables_get_chains: the PVE chains of ``table`` with their signature, and the hooks."""
    chains, hooks, current = {}, set(), ""
    for line in (save_output or "").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        header = re.fullmatch(r"\*(\S+)", line)
        if header:
            current = header.group(1)
            continue
        if current != table:
            continue
        declared = re.match(r"^:(\S+)\s", line)
        signed = re.match(r'^-A\s+(\S+)\s.*--comment\s+"PVESIG:(\S+)"', line)
        hook = re.fullmatch(r"-A\s+(INPUT|OUTPUT|FORWARD|PREROUTING)\s+-j\s+PVEFW-(\S+)", line)
        if declared and is_pvefw_chain(declared.group(1)):
            chains[declared.group(1)] = "unknown"
        elif signed and is_pvefw_chain(signed.group(1)):
            chains[signed.group(1)] = signed.group(2)
        elif hook and hook.group(1) == hook.group(2):
            hooks.add(hook.group(1))
    return chains, hooks


def ruleset_cmdlist(ruleset, save_output, table):
    """get_ruleset_cmdlist: iptables-restore input that brings ``table`` to ``ruleset``."""
    active, hooks = iptables_get_chains(save_output, table)
    status = {}
    for chain in sorted(ruleset):
        sig = b64digest(ruleset[chain])
        old = active.get(chain)
        status[chain] = (sig, "create" if old is None else "exists" if old == sig else "update")
    deleted = sorted(set(active) - set(ruleset))
    out = [f"*{table}"]
    out += [f":{chain} - [0:0]" for chain in sorted(ruleset) if status[chain][1] == "create"]
    for hook in ("INPUT", "OUTPUT", "FORWARD", "PREROUTING"):
        if f"PVEFW-{hook}" in ruleset and hook not in hooks:
            out.append(f"-A {hook} -j PVEFW-{hook}")
    for chain in sorted(ruleset):
        sig, action = status[chain]
        if action in ("create", "update"):
            out += [f"-F {chain}", *ruleset[chain], f'-A {chain} -m comment --comment "PVESIG:{sig}"']
    out += [f"-F {chain}" for chain in deleted]
    hook_chains = {"PVEFW-INPUT", "PVEFW-OUTPUT", "PVEFW-FORWARD", "PVEFW-PREROUTING"}
    out += [f"-X {chain}" for chain in deleted if chain not in hook_chains]
    return "\n".join([*out, "COMMIT"]) + "\n"


def ipset_get_chains(save_output):
    chains = {}
    for line in (save_output or "").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        match = re.match(r"^(?:\S+)\s(PVEFW-\S+)\s(?:\S+).*", line)
        if match:
            chains.setdefault(match.group(1), []).append(re.sub(r"\binitval 0x[0-9a-f]+", "", line).rstrip())
    return {chain: b64digest(lines, sort=True) for chain, lines in chains.items()}


def ipset_cmdlist(ipsets, save_output):
    """get_ipset_cmdlist: (create/update input, delete input) for ``ipset restore``."""
    active = ipset_get_chains(save_output)
    create, delete = [], []
    create += [f"destroy {chain}" for chain in sorted(active) if re.fullmatch(r"PVEFW-\S+_swap", chain)]
    for chain in sorted(ipsets):
        if chain not in active:
            create += ipsets[chain]
    for chain in sorted(ipsets):
        if chain in active and active[chain] != b64digest(ipsets[chain], sort=True):
            swap = f"{chain}_swap"
            create += [line.replace(chain, swap, 1) for line in ipsets[chain]]
            create += [f"swap {swap} {chain}", f"flush {swap}", f"destroy {swap}"]
    for chain in sorted(set(active) - set(ipsets)):
        delete += [f"flush {chain}", f"destroy {chain}"]
    return "".join(f"{line}\n" for line in create), "".join(f"{line}\n" for line in delete)


def remove_chains_cmdlist(save_output, table):
    """remove_pvefw_chains_iptables: detach the hooks, flush and delete every PVE chain."""
    chains, hooks = iptables_get_chains(save_output, table)
    out = [f"*{table}"]
    out += [f"-D {hook} -j PVEFW-{hook}" for hook in ("INPUT", "OUTPUT", "FORWARD", "PREROUTING") if hook in hooks]
    out += [f"-F {chain}" for chain in sorted(chains)]
    out += [f"-X {chain}" for chain in sorted(chains)]
    return "\n".join([*out, "COMMIT"]) + "\n"


def remove_ipsets_cmdlist(save_output):
    return "".join(f"flush {chain}\ndestroy {chain}\n" for chain in sorted(ipset_get_chains(save_output)))
