"""
/cluster/firewall and /nodes/{node}/firewall: cluster.fw and host.fw in PVE's file format,
rules with PVE's position semantics (POST inserts at 0, --moveto, disabled unless --enable 1),
list digests, security groups, IP sets with normalised entries, aliases and options.
BEHAVIOR.md section 4 is the reference; error texts are PVE's.
"""

import hashlib
import ipaddress
import re

from pvesim.errors import MODIFIED, PveError
from pvesim.schema import split_list

RULE_OPTIONS = [
    ("-i", "iface"),
    ("-source", "source"),
    ("-dest", "dest"),
    ("-p", "proto"),
    ("-dport", "dport"),
    ("-sport", "sport"),
    ("-log", "log"),
    ("-icmp-type", "icmp-type"),
]
RULE_FIELDS = ["type", "action", "macro", "enable", "comment"] + [key for _, key in RULE_OPTIONS]
DIRECTIONS = {
    "cluster": {"in", "out", "forward", "group"},
    "host": {"in", "out", "forward", "group"},
    "group": {"in", "out", "forward"},
}
PORT_PROTOCOLS = {"tcp", "udp", "sctp", "udplite", "dccp", "6", "17", "132", "136", "33"}
MACROS = {m.lower(): m for m in ("SSH", "HTTP", "HTTPS", "DNS", "Ping", "NTP", "SMTP", "BGP", "Ceph")}
SECTION = re.compile(r"^\[(OPTIONS|ALIASES|RULES|IPSET\s+(\S+)|group\s+(\S+))\]\s*(#\s*(.*))?$", re.I)
RULE_LINE = re.compile(r"^(\|)?\s*(IN|OUT|FORWARD|GROUP)\s+(\S+)\s*(.*?)\s*(#\s*(.*))?$", re.I)


def list_digest(entries):
    """pve-firewall's copy_list_with_digest: SHA-1 over each entry's sorted ``k:v\\n``."""
    sha = hashlib.sha1()
    for entry in entries:
        for key in sorted(entry):
            if entry[key] is not None and not isinstance(entry[key], (dict, list)):
                sha.update(f"{key}:{entry[key]}\n".encode())
    return sha.hexdigest()


def normalise_cidr(value):
    """An IP set entry as PVE stores it: host bits cleared, /32 and /128 stripped."""
    prefix = ""
    if value.startswith("!"):
        prefix, value = "!", value[1:]
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return prefix + value  # an alias name
    if network.prefixlen == 0:
        raise PveError("a zero prefix is not allowed in ipset entries")
    if network.prefixlen == network.max_prefixlen:
        return prefix + str(network.network_address)
    return prefix + str(network)


def ip_version(rule, aliases):
    """The ipversion pve-firewall's verify_rule gives a rule: 4 or 6 from an ICMP protocol, else
    from the first source or dest that is an address, a network, a range or an alias."""
    version = {"icmp": 4, "icmpv6": 6, "ipv6-icmp": 6}.get(rule.get("proto"))
    for key in ("source", "dest"):
        value = str(rule.get(key) or "")
        if version or not value or value.startswith("+"):
            continue
        alias = aliases.get(value.split("/")[-1].lower()) if re.match(r"^[a-z]", value, re.I) else None
        first = alias["cidr"] if alias else value.split(",")[0].split("-")[0]
        version = ipaddress.ip_network(first, strict=False).version
    return version


# --- file format ------------------------------------------------------------------------------


def parse_rule(line):
    match = RULE_LINE.match(line)
    if not match:
        return None
    disabled, direction, action, options, _, comment = match.groups()
    rule = {"type": direction.lower(), "enable": 0 if disabled else 1}
    macro = re.match(r"^(\w+)\((\w+)\)$", action)
    if macro:
        rule["macro"], rule["action"] = macro.groups()
    else:
        rule["action"] = action
    tokens = options.split()
    names = dict(RULE_OPTIONS)
    for flag, value in zip(tokens[::2], tokens[1::2], strict=False):
        if flag in names:
            rule[names[flag]] = value
    if comment:
        rule["comment"] = comment
    return rule


def rule_line(rule):
    action = f"{rule['macro']}({rule['action']})" if rule.get("macro") else rule["action"]
    parts = [("" if rule.get("enable") else "|") + rule["type"].upper(), action]
    for flag, key in RULE_OPTIONS:
        if rule.get(key) not in (None, "") and (rule["type"] != "group" or key == "iface"):
            parts += [flag, str(rule[key])]
    line = " ".join(parts)
    return f"{line} # {rule['comment']}" if rule.get("comment") else line


def _ipset_entry(line):
    body, _, comment = line.partition("#")
    cidr = body.strip()
    entry = {"cidr": cidr.lstrip("!")}
    if cidr.startswith("!"):
        entry["nomatch"] = 1
    if comment.strip():
        entry["comment"] = comment.strip()
    return entry


def parse_fw(text):
    """cluster.fw or host.fw; group and IP set names read back lower-cased, as PVE does."""
    config = {"options": {}, "aliases": {}, "ipsets": {}, "rules": [], "groups": {}}
    kind, bucket = None, None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        section = SECTION.match(line)
        if section:
            name, ipset, group, _, comment = section.groups()
            if ipset:
                kind = "IPSET"
                bucket = config["ipsets"].setdefault(ipset.lower(), {"comment": comment, "entries": []})["entries"]
            elif group:
                kind = "GROUP"
                bucket = config["groups"].setdefault(group.lower(), {"comment": comment, "rules": []})["rules"]
            else:
                kind = name.upper()
                bucket = config["rules"] if kind == "RULES" else None
        elif kind == "OPTIONS":
            key, _, value = line.partition(":")
            config["options"][key.strip()] = value.strip()
        elif kind == "ALIASES":
            body, _, comment = line.partition("#")
            name, cidr = body.split()[:2]
            config["aliases"][name.lower()] = {
                "name": name,
                "cidr": cidr,
                **({"comment": comment.strip()} if comment else {}),
            }
        elif kind == "IPSET":
            bucket.append(_ipset_entry(line))
        elif kind in ("RULES", "GROUP"):
            rule = parse_rule(line)
            if rule:
                bucket.append(rule)
    return config


def write_fw(config):
    out = []

    def section(header, lines):
        out.append(f"{header}\n\n" + "".join(f"{line}\n" for line in lines) + ("\n" if lines else ""))

    if config["options"]:
        section("[OPTIONS]", [f"{k}: {v}" for k, v in config["options"].items()])
    if config["aliases"]:
        section(
            "[ALIASES]",
            [
                f"{a['name']} {a['cidr']}" + (f" # {a['comment']}" if a.get("comment") else "")
                for _, a in sorted(config["aliases"].items())
            ],
        )
    for name, ipset in sorted(config["ipsets"].items()):
        header = f"[IPSET {name}]" + (f" # {ipset['comment']}" if ipset.get("comment") else "")
        entries = sorted(ipset["entries"], key=lambda e: e["cidr"])
        section(
            header,
            [
                ("!" if e.get("nomatch") else "") + e["cidr"] + (f" # {e['comment']}" if e.get("comment") else "")
                for e in entries
            ],
        )
    if config["rules"]:
        section("[RULES]", [rule_line(r) for r in config["rules"]])
    for name, group in sorted(config["groups"].items()):
        header = f"[group {name}]" + (f" # {group['comment']}" if group.get("comment") else "")
        section(header, [rule_line(r) for r in group["rules"]])
    return "".join(out)


# --- the API ----------------------------------------------------------------------------------


class Firewall:
    def __init__(self, api):
        self.api = api
        self.store = api.store

    def _file(self, node=None):
        if node is None:
            return "firewall/cluster.fw"
        if node not in self.store.nodes():  # the calling node joined before any handler runs
            raise PveError(f"no such cluster node '{node}'")
        return f"nodes/{node}/host.fw"

    def load(self, node=None):
        return parse_fw(self.store.read_text(self._file(node)))

    def save(self, config, node=None):
        self.store.write_text(self._file(node), write_fw(config))

    # rules: scope is "cluster", "host" or "group"

    def _rules(self, config, scope, group):
        if scope == "group":
            if group.lower() not in config["groups"]:
                raise PveError(f"no such security group '{group}'")
            return config["groups"][group.lower()]["rules"]
        return config["rules"]

    def _as_read(self, rules):
        """Rules as pve-firewall reads them back: with the ipversion its verify_rule derives."""
        aliases = self.load()["aliases"]
        return [dict(rule, **({"ipversion": v} if (v := ip_version(rule, aliases)) else {})) for rule in rules]

    def list_rules(self, scope, node=None, group=None):
        rules = self._as_read(self._rules(self.load(node), scope, group))
        digest = list_digest(rules)
        return [dict(rule, pos=i, digest=digest) for i, rule in enumerate(rules)]

    def get_rule(self, scope, pos, node=None, group=None):
        rules = self.list_rules(scope, node, group)
        if not 0 <= int(pos) < len(rules):
            raise PveError(f"no rule at position {pos}")
        return rules[int(pos)]

    def _check_digest(self, given, actual):
        if given and given != actual:
            raise PveError(MODIFIED)

    def _check_rule(self, rule, scope):
        cluster = self.load()  # groups, IP sets and aliases are the cluster's, also for host rules
        errors = {}
        if rule["type"] not in DIRECTIONS[scope]:
            errors["type"] = f"invalid rule type '{rule['type']}' for rule_env '{scope}'"
        elif rule.get("iface") and scope == "group":
            errors["type"] = "parameter -i not allowed for this rule type"
        if rule["type"] == "forward" and rule["action"] == "REJECT":
            errors["action"] = "cannot define REJECT rules on forward chain"
        if rule["type"] == "group":
            if rule["action"].lower() not in cluster["groups"]:
                errors["action"] = f"security group '{rule['action']}' does not exist"
        elif rule["action"] not in ("ACCEPT", "DROP", "REJECT"):
            errors["action"] = f"unknown action '{rule['action']}'"
        if rule.get("macro"):
            if rule["macro"].lower() not in MACROS:
                errors["macro"] = f"unknown macro '{rule['macro']}'"
            else:
                rule["macro"] = MACROS[rule["macro"].lower()]
        for key in ("dport", "sport"):
            if rule.get(key) and str(rule.get("proto", "")).lower() not in PORT_PROTOCOLS:
                errors["proto"] = (
                    f"missing property - '{key}' requires this property"
                    if not rule.get("proto")
                    else f"protocol '{rule['proto']}' does not support ports"
                )
        for key in ("source", "dest"):
            value = rule.get(key) or ""
            if value.startswith("+"):
                name = value[1:].split("/")[-1].lower()
                if name not in cluster["ipsets"]:
                    errors[key] = f"no such ipset '{name}'"
            elif value and re.match(r"^[a-z]", value, re.I) and value.split("/")[-1].lower() not in cluster["aliases"]:
                errors[key] = f"no such alias '{value}'"
        if errors:
            raise PveError.parameters(errors)

    def create_rule(self, scope, params, node=None, group=None):
        config = self.load(node)
        rules = self._rules(config, scope, group)
        self._check_digest(params.get("digest"), list_digest(self._as_read(rules)))
        rule = {k: params[k] for k in RULE_FIELDS if params.get(k) not in (None, "")}
        rule["enable"] = int(params.get("enable") or 0)
        self._check_rule(rule, scope)
        rules.insert(0, rule)
        self.save(config, node)

    def update_rule(self, scope, pos, params, node=None, group=None):
        config = self.load(node)
        rules = self._rules(config, scope, group)
        self._check_digest(params.get("digest"), list_digest(self._as_read(rules)))
        pos = int(pos)
        if not 0 <= pos < len(rules):
            raise PveError(f"no rule at position {pos}")
        if params.get("moveto") is not None:
            target = int(params["moveto"])
            rule = rules[pos]
            rules.insert(target, rule) if target < len(rules) else rules.append(rule)
            del rules[pos + 1 if target <= pos else pos]
        else:
            rule = dict(rules[pos])
            for key in split_list(params.get("delete", "")):
                if key in ("type", "action"):
                    raise PveError.parameters({"delete": f"unable to delete required property '{key}'"})
                rule.pop(key, None)
            for key in RULE_FIELDS:
                if key in params:
                    if params[key] in ("", "-"):
                        rule.pop(key, None)
                    else:
                        rule[key] = params[key]
            self._check_rule(rule, scope)
            rules[pos] = rule
        self.save(config, node)

    def delete_rule(self, scope, pos, params, node=None, group=None):
        config = self.load(node)
        rules = self._rules(config, scope, group)
        self._check_digest(params.get("digest"), list_digest(self._as_read(rules)))
        if not 0 <= int(pos) < len(rules):
            raise PveError(f"no rule at position {pos}")
        del rules[int(pos)]
        self.save(config, node)

    # groups

    def list_groups(self, params):
        config = self.load()
        digest = list_digest([{"group": n, "comment": g.get("comment")} for n, g in sorted(config["groups"].items())])
        return [
            {"group": n, "digest": digest, **({"comment": g["comment"]} if g.get("comment") else {})}
            for n, g in sorted(config["groups"].items())
        ]

    def create_group(self, params):
        config = self.load()
        name, rename = params["group"], params.get("rename")
        if rename:
            if rename.lower() not in config["groups"]:
                raise PveError(f"Security group '{rename}' does not exist")
            group = config["groups"].pop(rename.lower())
            group["comment"] = params.get("comment", group.get("comment"))
            config["groups"][name] = group
            for rule in config["rules"]:
                if rule["type"] == "group" and rule["action"].lower() == rename.lower():
                    rule["action"] = name
        else:
            if name.lower() in config["groups"]:
                raise PveError(f"Security group '{name}' already exists")
            config["groups"][name] = {"comment": params.get("comment"), "rules": []}
        self.save(config)

    def delete_group(self, group):
        config = self.load()
        if group.lower() not in config["groups"]:
            raise PveError(f"no such security group '{group}'")
        if config["groups"][group.lower()]["rules"]:
            raise PveError(f"Security group '{group}' is not empty")
        del config["groups"][group.lower()]
        self.save(config)

    # IP sets

    def list_ipsets(self, params):
        config = self.load()
        items = [
            {"name": n, **({"comment": s["comment"]} if s.get("comment") else {})}
            for n, s in sorted(config["ipsets"].items())
        ]
        digest = list_digest(items)
        return [dict(item, digest=digest) for item in items]

    def create_ipset(self, params):
        config = self.load()
        name, rename = params["name"], params.get("rename")
        if rename:
            if rename.lower() not in config["ipsets"]:
                raise PveError(f"IPSet '{rename}' does not exist")
            if name.lower() in config["ipsets"] and name.lower() != rename.lower():
                raise PveError(f"IPSet '{name}' does already exist")
            ipset = config["ipsets"].pop(rename.lower())
            ipset["comment"] = params.get("comment", ipset.get("comment"))
            config["ipsets"][name] = ipset
        else:
            if name.lower() in config["ipsets"]:
                raise PveError(f"IPSet '{name}' already exists")
            config["ipsets"][name] = {"comment": params.get("comment"), "entries": []}
        self.save(config)

    def _ipset(self, config, name):
        if name.lower() not in config["ipsets"]:
            raise PveError(f"no such IPSet '{name}'")
        return config["ipsets"][name.lower()]["entries"]

    def list_entries(self, name):
        entries = sorted(self._ipset(self.load(), name), key=lambda e: e["cidr"])
        digest = list_digest(entries)
        return [dict(e, digest=digest) for e in entries]

    def add_entry(self, name, params):
        config = self.load()
        entries = self._ipset(config, name)
        cidr = normalise_cidr(params["cidr"])
        if any(e["cidr"] == cidr for e in entries):
            raise PveError(f"address '{cidr}' already exists")
        entry = {"cidr": cidr}
        if params.get("nomatch"):
            entry["nomatch"] = 1
        if params.get("comment"):
            entry["comment"] = params["comment"]
        entries.insert(0, entry)
        self.save(config)

    def _entry(self, entries, cidr):
        cidr = normalise_cidr(cidr)
        for entry in entries:
            if entry["cidr"] == cidr:
                return entry
        raise PveError("no such IP/Network")

    def get_entry(self, name, cidr):
        return self._entry(self._ipset(self.load(), name), cidr)

    def update_entry(self, name, cidr, params):
        config = self.load()
        entry = self._entry(self._ipset(config, name), cidr)
        for key in ("comment", "nomatch"):
            if key in params:
                entry[key] = params[key]
        if not entry.get("nomatch"):
            entry.pop("nomatch", None)
        self.save(config)

    def delete_entry(self, name, cidr, params):
        config = self.load()
        entries = self._ipset(config, name)
        self._check_digest(params.get("digest"), list_digest(entries))
        entries.remove(self._entry(entries, cidr))
        self.save(config)

    def delete_ipset(self, name, params):
        config = self.load()
        if self._ipset(config, name) and not params.get("force"):
            raise PveError(f"IPSet '{name}' is not empty")
        del config["ipsets"][name.lower()]
        self.save(config)

    # aliases

    def list_aliases(self, params):
        items = [
            dict(a, ipversion=ipaddress.ip_network(a["cidr"], strict=False).version)
            for _, a in sorted(self.load()["aliases"].items())
        ]
        digest = list_digest(items)
        return [dict(item, digest=digest) for item in items]

    def create_alias(self, params):
        config = self.load()
        if params["name"].lower() in config["aliases"]:
            raise PveError(f"alias '{params['name']}' already exists")
        config["aliases"][params["name"].lower()] = {
            "name": params["name"],
            "cidr": params["cidr"],
            **({"comment": params["comment"]} if params.get("comment") else {}),
        }
        self.save(config)

    def get_alias(self, name):
        alias = self.load()["aliases"].get(name.lower())
        if alias is None:
            raise PveError(f"no such alias '{name}'")
        return alias

    def update_alias(self, name, params):
        config = self.load()
        if name.lower() not in config["aliases"]:
            raise PveError(f"no such alias '{name}'")
        alias = config["aliases"].pop(name.lower())
        alias.update({k: params[k] for k in ("cidr", "comment") if k in params})
        alias["name"] = params.get("rename") or alias["name"]
        config["aliases"][alias["name"].lower()] = alias
        self.save(config)

    def delete_alias(self, name):
        config = self.load()
        if config["aliases"].pop(name.lower(), None) is None:
            raise PveError(f"no such alias '{name}'")
        self.save(config)

    # options

    def get_options(self, node=None):
        options = {k: _typed(v) for k, v in self.load(node)["options"].items()}
        sha = hashlib.sha1("".join(f"{k}:{options[k]}\n" for k in sorted(options)).encode())
        return dict(options, digest=sha.hexdigest())

    def set_options(self, params, node=None):
        config = self.load(node)
        current = self.get_options(node)
        self._check_digest(params.get("digest"), current["digest"])
        for key in split_list(params.get("delete", "")):
            if key not in config["options"] and key not in self._option_names(node):
                raise PveError(f"no such option '{key}'")
            config["options"].pop(key, None)
        for key, value in params.items():
            if key not in ("digest", "delete", "node"):
                config["options"][key] = value
        self.save(config, node)

    def _option_names(self, node):
        template = "/nodes/{node}/firewall/options" if node else "/cluster/firewall/options"
        return set(self.api.schema.method(template, "PUT")["parameters"]["properties"])


def _typed(value):
    return int(value) if re.fullmatch(r"-?\d+", value) else value
