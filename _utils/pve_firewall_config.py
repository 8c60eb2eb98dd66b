"""
A PVE cluster's firewall configuration as pve-firewall keeps it, ``/etc/pve/firewall/cluster.fw``
and ``/etc/pve/nodes/<node>/host.fw``, read the way ``pvesh``'s handlers read it, so that a
client can answer from the files what ``pvesh get /cluster/firewall/...`` and
``/nodes/<node>/firewall/...`` print as JSON, digests included, without starting pvesh.

The source followed is proxmox/pve-firewall 6f1311f (PVE 9.1), ``src/PVE/Firewall.pm``:
``generic_fw_config_parser``, ``parse_fw_rule``, the part of ``verify_rule`` that changes what a
read returns (the preferred spelling of a macro, ``ipversion``), ``parse_alias``,
``parse_ip_or_cidr``, ``parse_clusterfw_option`` and ``parse_hostfw_option``, and the
``copy_list_with_digest`` / ``copy_opject_with_digest`` digests of the API handlers
(``API2/Firewall/{Rules,Groups,IPSet,Aliases,Cluster,Host}.pm``).

Pure functions of the files' text. Where pve-firewall would skip a line with a warning, or keep
a rule whose address this reader cannot judge as PVE's Net::IP would, they raise ``ValueError``
naming the file and line: the caller then asks pvesh instead of guessing. A rule that pve-firewall
keeps with ``errors`` (an unknown IP set, say) is read without them: they are not part of the
digest, and a client has no use for them.
"""

import hashlib
import ipaddress
import re
import time

# The macros of pve-firewall (Firewall.pm $pve_fw_macros at 6f1311f): a rule's macro reads back
# in this spelling whatever its case in the file.
MACROS = (
    "Amanda Auth BGP BitTorrent BitTorrent32 CVS Ceph Citrix DAAP DCC DHCPfwd DNS Distcc FTP Finger GNUnet"
    " GRE Git HKP HTTP HTTPS ICPV2 ICQ IMAP IMAPS IPIP IPsec IPsecah IPsecnat IRC Jetdirect L2TP LDAP LDAPS"
    " MDNS MSNP MSSQL Mail Munin MySQL NNTP NNTPS NTP OSPF OpenVPN PCA PMG POP3 POP3S PPtP Ping PostgreSQL"
    " Printer RDP RIP RNDC Razor Rdate Rsync SANE SMB SMBswat SMTP SMTPS SNMP SPAMD SPICEproxy SSH SVN SixXS"
    " Squid Submission Syslog TFTP Telnet Telnets Time Trcrt VNC VNCL Web Webcache Webmin Whois"
).split()
PREFERRED_MACRO = {name.lower(): name for name in MACROS}
NAME = r"[A-Za-z][A-Za-z0-9\-\_]+"
GROUP_HEADER = re.compile(r"^\[group\s+(\S+)\]\s*(?:#\s*(.*?)\s*)?$", re.IGNORECASE)
IPSET_HEADER = re.compile(r"^\[ipset\s+(\S+)\]\s*(?:#\s*(.*?)\s*)?$", re.IGNORECASE)
ALIAS_REFERENCE = re.compile(rf"^(guest/|dc/)?({NAME})$")
COMMENT_AT_END = re.compile(r"#\s*(.*?)\s*$")
RULE_START = re.compile(r"^(\S+)\s+(\S+)\s*")
MACRO_ACTION = re.compile(r"^(\S+)\((ACCEPT|DROP|REJECT)\)$")
# The options of a rule line, in the order parse_fw_rule tries them.
RULE_OPTIONS = (
    ("iface", re.compile(r"^-i (\S+)\s*")),
    ("proto", re.compile(r"^(?:-p|--?proto) (\S+)\s*")),
    ("dport", re.compile(r"^--?dport (\S+)\s*")),
    ("sport", re.compile(r"^--?sport (\S+)\s*")),
    ("source", re.compile(r"^--?source (\S+)\s*")),
    ("dest", re.compile(r"^--?dest (\S+)\s*")),
    ("log", re.compile(r"^--?log (emerg|alert|crit|err|warning|notice|info|debug|nolog)\s*")),
    ("icmp-type", re.compile(r"^--?icmp-type (\S+)\s*")),
)
LOG_LEVELS = "emerg|alert|crit|err|warning|notice|info|debug|nolog"
# (pattern, how the value is read) per option of cluster.fw and host.fw.
OPTIONS = {
    "cluster": (
        (re.compile(r"^(enable):\s*(\d+)\s*$", re.I), "enable"),
        (re.compile(r"^(ebtables):\s*(0|1)\s*$", re.I), int),
        (re.compile(r"^(policy_(?:in|out|forward)):\s*(ACCEPT|DROP|REJECT)\s*$", re.I), str.upper),
        (re.compile(r"^(log_ratelimit):\s*(\S+)\s*$"), str),
    ),
    "host": (
        (
            re.compile(
                r"^(enable|nosmurfs|tcpflags|ndp|log_nf_conntrack|nf_conntrack_allow_invalid|protection_synflood"
                r"|nftables):\s*(0|1)\s*$",
                re.I,
            ),
            int,
        ),
        (
            re.compile(
                rf"^(log_level_(?:in|out|forward)|tcp_flags_log_level|smurf_log_level):\s*(?:({LOG_LEVELS})\s*)?$", re.I
            ),
            lambda value: (value or "").lower(),
        ),
        (re.compile(r"^(nf_conntrack_helpers):\s*(((\S+)[,]?)+)\s*$", re.I), str.lower),
        (
            re.compile(
                r"^(nf_conntrack_max|nf_conntrack_tcp_timeout_established|nf_conntrack_tcp_timeout_syn_recv"
                r"|protection_synflood_rate|protection_synflood_burst|protection_limit):\s*(\d+)\s*$",
                re.I,
            ),
            int,
        ),
    ),
}
ENABLE_GRACE = 60  # seconds an "enable: <epoch>" stays on (the anti-lockout switch of the GUI)


def _option(env, line, where, now):
    for pattern, read in OPTIONS[env]:
        match = pattern.match(line)
        if match:
            key, value = match.group(1).lower(), match.group(2)
            if read == "enable":
                value = int(value)
                return key, 0 if value > 1 and now - value > ENABLE_GRACE else value
            return key, read(value)
    raise ValueError(f"{where}: can't parse option {line!r}")


def _address_version(text):
    """The IP version of an address list as parse_address_list finds it (None for an IP set or
    an alias); ``ValueError`` for what this reader cannot judge as Net::IP would."""
    if text.startswith("+") or ALIAS_REFERENCE.match(text):
        return None
    versions = set()
    elements = text.split(",")
    if len(elements) > 1 and "-" in text:
        return None  # a range in a list: an error in PVE, no version
    for element in elements:
        try:
            ends = element.split("-") if "-" in element else [element.split("/")[0]]
            if "-" not in element:
                ipaddress.ip_network(element)  # Net::IP refuses host bits, as strict parsing does
            versions.update(ipaddress.ip_address(end.strip()).version for end in ends)
        except ValueError:
            raise ValueError(f"address {text!r}: {element!r} is not an address, a network or a range") from None
    return versions.pop() if len(versions) == 1 else None  # mixed: an error in PVE, no version


def _alias_version(text, aliases, env):
    """The version of the alias a rule names: the cluster's aliases, which a ``guest/`` alias
    reaches only from the cluster's own rules (check_ipset_or_alias_property)."""
    match = ALIAS_REFERENCE.match(text)
    if not match or (match.group(1) == "guest/" and env != "cluster"):
        return None
    alias = aliases.get(match.group(2).lower())
    return alias["ipversion"] if alias else None


def _rule(line, where, env, aliases):
    """parse_fw_rule and what verify_rule changes in a rule that PVE keeps."""
    rule = {}
    comment = COMMENT_AT_END.search(line)
    if comment:
        rule["comment"] = comment.group(1)
        line = line[: comment.start()]
    rule["enable"] = 0 if line.startswith("|") else 1
    line = line.removeprefix("|")
    start = RULE_START.match(line)
    if not start:
        raise ValueError(f"{where}: unable to parse rule: {line!r}")
    rule["type"], rule["action"] = start.group(1).lower(), start.group(2)
    line = line[start.end() :]
    macro = MACRO_ACTION.match(rule["action"])
    if rule["type"] in ("in", "out", "forward") and macro:
        rule["macro"], rule["action"] = macro.groups()
    while line:
        for key, pattern in RULE_OPTIONS if rule["type"] != "group" else RULE_OPTIONS[:1]:
            option = pattern.match(line)
            if option:
                rule[key] = option.group(1)
                line = line[option.end() :]
                break
        else:
            raise ValueError(f"{where}: unable to parse rule parameters: {line!r}")
    if rule.get("macro"):
        rule["macro"] = PREFERRED_MACRO.get(rule["macro"].lower(), rule["macro"])
    version = {"icmp": 4, "icmpv6": 6, "ipv6-icmp": 6}.get(rule.get("proto"))
    for key in ("source", "dest"):
        if not rule.get(key):
            continue
        address_version = _address_version(rule[key])
        version = version or address_version  # a second, different version is an error in PVE
        alias_version = _alias_version(rule[key], aliases, env)
        if alias_version and version and alias_version != version:
            raise ValueError(f"{where}: mixed IPv4 and IPv6 through alias {rule[key]!r} (PVE drops the rule)")
        version = version or alias_version
    if version:
        rule["ipversion"] = version
    return rule


def _ip_or_cidr(text):
    """parse_ip_or_cidr: (the address as PVE keeps it, its version); None when not one."""
    address, _, prefix = text.partition("/")
    try:
        version = ipaddress.ip_address(address).version
    except ValueError:
        return None
    if prefix and not prefix.isdigit():
        return None
    full = "32" if version == 4 else "128"
    return (address if prefix == full else text), version


def _perl_true(text):
    return text not in (None, "", "0")


def _alias(line, where):
    comment = re.search(r"\s*#\s*(.*?)\s*$", line)
    words = re.match(r"^(\S+)\s(\S+)$", line[: comment.start()] if comment else line)
    parsed = _ip_or_cidr(words.group(2)) if words else None
    if parsed is None:
        raise ValueError(f"{where}: not an alias (name, address or network): {line!r}")
    alias = {"name": words.group(1), "cidr": parsed[0], "ipversion": parsed[1]}
    if comment and _perl_true(comment.group(1)):
        alias["comment"] = comment.group(1)
    return alias


def _ipset_entry(line, where):
    comment = COMMENT_AT_END.search(line)
    body = line[: comment.start()] if comment else line
    match = re.match(r"^(!)?\s*(\S+)\s*$", body)
    if not match:
        raise ValueError(f"{where}: not an IP set entry: {line!r}")
    cidr = match.group(2)
    if not ALIAS_REFERENCE.match(cidr):
        parsed = _ip_or_cidr(cidr)
        if parsed is None:
            raise ValueError(f"{where}: IP set entry {cidr!r} is neither an address, a network nor an alias")
        cidr = parsed[0]
    entry = {"cidr": cidr}
    if match.group(1):
        entry["nomatch"] = 1
    if comment and _perl_true(comment.group(1)):
        entry["comment"] = comment.group(1)
    return entry


def parse(text, env="cluster", cluster=None, filename=None, now=None):
    """
    ``cluster.fw`` (``env`` ``cluster``) or a ``host.fw`` (``env`` ``host``, whose rules may
    name the aliases of ``cluster``, the parsed cluster.fw) as pve-firewall parses it:
    ``{"options", "aliases", "ipsets", "ipset_comments", "rules", "groups", "group_comments"}``.
    """
    filename = filename or ("cluster.fw" if env == "cluster" else "host.fw")
    now = time.time() if now is None else now
    config = {"options": {}, "rules": []}
    if env == "cluster":
        config.update(aliases={}, ipsets={}, ipset_comments={}, groups={}, group_comments={})
    aliases = config["aliases"] if env == "cluster" else (cluster or {}).get("aliases", {})
    section, name = None, None
    for number, raw_line in enumerate(text.split("\n"), start=1):
        line = raw_line.strip(" \t")
        where = f"{filename} line {number}"
        if not line.strip() or line.startswith("#"):
            continue
        header = _section_header(env, line)
        if header:
            section, name, comment = header
            if section in ("groups", "ipsets"):
                _check_name(section, name, where)
                config[section][name] = []
                if _perl_true(comment):
                    config["group_comments" if section == "groups" else "ipset_comments"][name] = comment
            continue
        if section is None:
            raise ValueError(f"{where}: a line before any section: {line!r}")
        if section == "options":
            key, value = _option(env, line, where, now)
            config["options"][key] = value
        elif section == "aliases":
            alias = _alias(line, where)
            config["aliases"][alias["name"].lower()] = alias
        elif section == "rules":
            config["rules"].append(_rule(line, where, env, aliases))
        elif section == "groups":
            config["groups"][name].append(_rule(line, where, "group", aliases))
        else:
            config["ipsets"][name].append(_ipset_entry(line, where))
    return config


def _section_header(env, line):
    """(section, name, comment) of a header line this file may hold, else None."""
    for section, pattern in (("options", r"^\[options\]$"), ("rules", r"^\[rules\]$"), ("aliases", r"^\[aliases\]$")):
        if re.match(pattern, line, re.IGNORECASE) and (env == "cluster" or section != "aliases"):
            return section, None, None
    if env != "cluster":
        return None
    for section, pattern in (("groups", GROUP_HEADER), ("ipsets", IPSET_HEADER)):
        match = pattern.match(line)
        if match:
            return section, match.group(1).lower(), match.group(2)
    return None


def _check_name(section, name, where):
    longest = 18 if section == "groups" else 64
    if len(name) > longest or not re.fullmatch(NAME, name):
        raise ValueError(f"{where}: {name!r} is not a valid {section[:-1]} name (PVE skips the section)")


def _digest_lines(entries):
    sha = hashlib.sha1()
    for entry in entries:
        for key in sorted(entry):
            value = entry[key]
            if value is not None and not isinstance(value, (dict, list)):
                sha.update(f"{key}:{value}\n".encode())
    return sha.hexdigest()


def with_digest(entries):
    """copy_list_with_digest: each entry with the digest of the whole list."""
    list_digest = _digest_lines(entries)
    return [{**entry, "digest": list_digest} for entry in entries]


def rules(config, group=None):
    """``GET .../rules`` (of the file's own list, or of security ``group``): with ``pos``."""
    listed = config["groups"][group] if group is not None else config["rules"]
    return [dict(rule, pos=pos) for pos, rule in enumerate(with_digest(listed))]


def groups(config):
    """``GET /cluster/firewall/groups``."""
    return with_digest(
        [
            {"group": name, **({"comment": config["group_comments"][name]} if name in config["group_comments"] else {})}
            for name in sorted(config["groups"])
        ]
    )


def ipsets(config):
    """``GET /cluster/firewall/ipset``."""
    return with_digest(
        [
            {"name": name, **({"comment": config["ipset_comments"][name]} if name in config["ipset_comments"] else {})}
            for name in sorted(config["ipsets"])
        ]
    )


def ipset(config, name):
    """``GET /cluster/firewall/ipset/<name>``: its entries in file order (``KeyError`` if none)."""
    return with_digest(config["ipsets"][name])


def aliases(config):
    """``GET /cluster/firewall/aliases``."""
    return with_digest([config["aliases"][key] for key in sorted(config["aliases"])])


def options(config):
    """``GET .../firewall/options``: the options and the digest of copy_opject_with_digest."""
    values = {key: value for key, value in config["options"].items() if value is not None}
    sha = hashlib.sha1("".join(f"{key}:{values[key]}\n" for key in sorted(values)).encode())
    return {**values, "digest": sha.hexdigest()}
