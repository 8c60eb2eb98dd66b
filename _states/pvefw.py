"""
The Proxmox VE firewall objects a federation needs, converged through the ``pvefw`` module.

Each state reads what it needs once, computes every change, and in test mode reports them
without writing; otherwise it writes them in order, and if a write fails it reports what it
changed before the failure. Any Salt error becomes ``result: False`` with its message. Reads
come from the cluster's files; where one cannot be read, the state's comment says so.

``ipset_present`` and ``group_present`` own their object entirely (exact entries, exact ordered
rules, few moves). In the cluster's or a node's rule list, which the user shares with us,
``rules_present`` finds each of our rules by its name, which starts its comment
(``evpn-wireguard: ...``), never by position alone, and keeps our rules at the top in order;
the user's rules are never changed, moved or deleted. One state holds all of our rules of a
list, so that test mode predicts a whole run from one read.

Rules of direction ``forward`` exist from PVE 8.3 (and take effect with the nftables
``proxmox-firewall`` only): where the cluster's PVE is older, they are left out, and the comment
says so. The version is asked of pvesh only when such a rule would be written.

.. code-block:: yaml

    evpn-firewall-rules:
      pvefw.rules_present:
        - name: cluster
        - rules:
          - name: evpn-wireguard
            rule: {type: in, action: ACCEPT, proto: udp, dport: "51820", enable: 1,
                   comment: "evpn-wireguard: WireGuard underlay"}
        - absent: [evpn-management]
"""

import fnmatch
import functools

from salt.exceptions import SaltException

__virtualname__ = "pvefw"
# The fields of a rule in the order pve-firewall writes them, for readable change reports.
RULE_FIELDS = ("type", "action", "macro", "iface", "source", "dest", "proto", "dport", "sport", "icmp-type", "log")
NO_FORWARD = "forward rules left out: this PVE has none (they exist from 8.3)"


def __virtual__():
    if "pvefw.rules" in __salt__:
        return __virtualname__
    return (False, "pvefw: the pvefw execution module is not available (no pvesh)")


def _ret(name):
    return {"name": name, "changes": {}, "result": True, "comment": ""}


def _normal(rule):
    """A rule as comparable values: strings, empty fields left out."""
    return {key: str(value) for key, value in rule.items() if value not in (None, "")}


def _key(rule):
    return tuple(sorted(rule.items()))


def _line(rule):
    """A rule as pve-firewall writes it, e.g. ``IN ACCEPT -p udp -dport 51820 # comment``."""
    words = [("" if str(rule.get("enable", 0)) != "0" else "|") + rule["type"].upper(), rule["action"]]
    for key in RULE_FIELDS[2:]:
        if key in rule:
            words += [{"iface": "-i", "proto": "-p"}.get(key, f"-{key}"), str(rule[key])]
    return " ".join(words) + (f" # {rule['comment']}" if rule.get("comment") else "")


def _notes(node=None):
    """Where this run reads the firewall through pvesh, why (for the comment)."""
    reason = __salt__["pvefw.fallback_reason"](node)
    return [f"(read through pvesh: {reason})"] if reason else []


def _is_forward(rule):
    return rule.get("type") == "forward"


def _carry_out(ret, what, changes, writes, notes, verb="updated", settled="in the desired state"):
    """Report ``changes`` of ``what``: in test mode as predicted; otherwise run ``writes``
    (``[(change made, write)]``) in order, reporting on failure what was changed before it."""
    comment = [*notes]
    if __opts__["test"] and changes:
        ret.update(result=None, changes=changes)
        ret["comment"] = "\n".join([f"{what} would be {verb}", *comment])
        return ret
    made = {}
    for made_now, write in [] if __opts__["test"] else writes:
        try:
            write()
        except SaltException as err:
            ret.update(result=False, changes=made)
            ret["comment"] = "\n".join(
                [f"{what}: {err}", *(["(changed before the failure: see changes)"] if made else []), *comment]
            )
            return ret
        for key, value in made_now.items():
            made[key] = made.get(key, []) + value if isinstance(value, list) else value
    ret["changes"] = changes
    ret["comment"] = "\n".join([f"{what} {'was ' + verb if changes else 'is ' + settled}", *comment])
    return ret


def _failed(ret, err):
    ret.update(result=False, comment=str(err), changes={})
    return ret


def ipset_present(name, cidrs, comment=None):
    """
    The cluster IP set ``name`` holds exactly ``cidrs`` (written as PVE stores them: host bits
    cleared, ``/32`` left out), created with ``comment`` when missing.
    """
    ret = _ret(name)
    salt = __salt__
    try:
        exists = name in salt["pvefw.named"]("ipsets")
        current = set(salt["pvefw.ipset"](name)) if exists else set()
        notes = _notes()
    except SaltException as err:
        return _failed(ret, err)
    added, removed = sorted(set(cidrs) - current), sorted(current - set(cidrs))
    changes = {k: v for k, v in (("created", not exists), ("added", added), ("removed", removed)) if v}
    writes = (
        [({"created": True}, functools.partial(salt["pvefw.create"], "ipsets", name, comment))] if not exists else []
    )
    writes += [({"added": [c]}, functools.partial(salt["pvefw.add_ipset_entry"], name, c)) for c in added]
    writes += [({"removed": [c]}, functools.partial(salt["pvefw.remove_ipset_entry"], name, c)) for c in removed]
    return _carry_out(ret, f"IP set {name}", changes, writes, notes)


def ipset_absent(name):
    """
    No cluster IP set ``name``: its entries are removed, then the set.
    """
    ret = _ret(name)
    salt = __salt__
    try:
        exists = name in salt["pvefw.named"]("ipsets")
        entries = sorted(salt["pvefw.ipset"](name)) if exists else []
        notes = _notes()
    except SaltException as err:
        return _failed(ret, err)
    changes = {"deleted": True, **({"entries": entries} if entries else {})} if exists else {}
    writes = [({"entries": [c]}, functools.partial(salt["pvefw.remove_ipset_entry"], name, c)) for c in entries]
    writes += [({"deleted": True}, functools.partial(salt["pvefw.delete"], "ipsets", name))] if exists else []
    return _carry_out(ret, f"IP set {name}", changes, writes, notes, "deleted", "absent")


def group_absent(name):
    """
    No security group ``name``: its rules are deleted, then the group. Delete the rules that
    reference it first (``rules_present`` with ``absent``): PVE keeps references to a group that
    is gone, and compiles nothing for them.
    """
    ret = _ret(name)
    salt = __salt__
    scope = f"group:{name}"
    try:
        exists = name in salt["pvefw.named"]("groups")
        current = salt["pvefw.rules"](scope) if exists else {"digest": None, "rules": []}
        notes = _notes()
    except SaltException as err:
        return _failed(ret, err)
    changes = {"deleted": True} if exists else {}
    if current["rules"]:
        changes["rules"] = [_line(rule) for rule in current["rules"]]
    # From the last rule up, so that each position stays valid; the digest guards the first.
    positions = range(len(current["rules"]) - 1, -1, -1)
    writes = [
        (
            {"rules": [_line(current["rules"][pos])]},
            functools.partial(salt["pvefw.delete_rule"], scope, pos, digest=None if i else current["digest"]),
        )
        for i, pos in enumerate(positions)
    ]
    writes += [({"deleted": True}, functools.partial(salt["pvefw.delete"], "groups", name))] if exists else []
    return _carry_out(ret, f"Security group {name}", changes, writes, notes, "deleted", "absent")


def _plan_writes(scope, plan, rule_of, digest):
    """The writes of a plan; PVE checks ``digest`` on the first write, the later ones follow
    from it. Each reports itself as ``{"done": [what it did]}``."""
    salt = __salt__
    writes = []
    for operation, where, moveto in plan:
        if operation == "delete":
            done = f"deleted the rule at {where}"
            write = functools.partial(salt["pvefw.delete_rule"], scope, where, digest=digest)
        elif operation == "insert":
            done = f"inserted {_line(rule_of[where])}"
            write = functools.partial(salt["pvefw.insert_rule"], scope, rule_of[where])
        else:
            done = f"moved the rule at {where} to {moveto}"
            write = functools.partial(salt["pvefw.move_rule"], scope, where, moveto, digest=digest)
        writes.append(({"done": [done]}, write))
        digest = None
    return writes


def _forward_supported(rules, changing):
    """Whether ``rules`` may keep their forward rules: asked of pvesh only when ``changing``."""
    if not changing or not any(_is_forward(rule) for rule in rules):
        return True
    return __salt__["pvefw.has_forward_rules"]()


def group_present(name, rules, comment=None):
    """
    The security group ``name`` holds exactly ``rules``, in this order (created with ``comment``
    when missing), with as few moves as the rules already in order allow; its forward rules only
    where this PVE has them.
    """
    ret = _ret(name)
    salt = __salt__
    wanted = [_normal(rule) for rule in rules]
    if len({_key(rule) for rule in wanted}) != len(wanted):
        ret.update(result=False, comment="rules: the same rule is listed twice")
        return ret
    scope = f"group:{name}"
    try:
        exists = name in salt["pvefw.named"]("groups")
        current = salt["pvefw.rules"](scope) if exists else {"digest": None, "rules": []}
        notes = _notes()
        current_keys = [_key(_normal(rule)) for rule in current["rules"]]
        plan = __utils__["rule_order.plan"](current_keys, [_key(rule) for rule in wanted])
        if not _forward_supported(wanted, plan or not exists):
            wanted = [rule for rule in wanted if not _is_forward(rule)]
            plan = __utils__["rule_order.plan"](current_keys, [_key(rule) for rule in wanted])
            notes.insert(0, f"({NO_FORWARD})")
    except SaltException as err:
        return _failed(ret, err)
    changes = {"created": True} if not exists else {}
    if plan:
        changes["rules"] = {"old": [_line(r) for r in current["rules"]], "new": [_line(r) for r in wanted]}
    writes = (
        [({"created": True}, functools.partial(salt["pvefw.create"], "groups", name, comment))] if not exists else []
    )
    writes += _plan_writes(scope, plan, {_key(rule): rule for rule in wanted}, current["digest"])
    return _carry_out(ret, f"Security group {name}", changes, writes, notes)


def _is_named(rule, name):
    """Whether the rule's comment starts with ``name`` (a glob in ``absent``), then ``: ``."""
    return fnmatch.fnmatchcase(str(rule.get("comment", "")).partition(": ")[0], name)


def rules_present(name, rules, absent=(), node=None):
    """
    Our rules at the top of the cluster's rule list (``name: cluster``) or of ``node``'s, in the
    order of ``rules`` (``[{"name", "rule"}]``; each rule's comment starts with its name, which
    is how it is found again), with exactly their fields; our rules named in ``absent`` (names or
    globs such as ``evpn-sdn-*``; a name in ``rules`` wins) removed.
    The user's rules are never changed, deleted or moved: ours are added, updated, moved or
    deleted around them.
    """
    ret = _ret(name)
    salt = __salt__
    wanted = {item["name"]: _normal(item["rule"]) for item in rules}
    misnamed = [n for n, rule in wanted.items() if not _is_named(rule, n)]
    if misnamed:
        ret.update(result=False, comment=f"rules: the comment of {', '.join(misnamed)} must start with its name")
        return ret
    scope = f"node:{node}" if node else "cluster"
    try:
        current = salt["pvefw.rules"](scope)
        notes = _notes(node)
        updates, plan, order = _rules_plan(current["rules"], wanted, absent)
        if not _forward_supported(wanted.values(), updates or plan):
            dropped = [n for n, rule in wanted.items() if _is_forward(rule)]
            wanted = {n: rule for n, rule in wanted.items() if n not in dropped}
            updates, plan, order = _rules_plan(current["rules"], wanted, [*absent, *dropped])
            notes.insert(0, f"({NO_FORWARD})")
    except SaltException as err:
        return _failed(ret, err)
    changes = {}
    if updates:
        changes["updated"] = [{"old": _line(old), "new": _line(new)} for old, new in updates.values()]
    if plan:
        changes["rules"] = {
            "old": [_line(rule) for rule in current["rules"]],
            "new": [_line(wanted[key[1]]) if key[0] == "ours" else _line(current["rules"][key[1]]) for key in order],
        }
    writes, digest = [], current["digest"]
    for pos, (old, new) in updates.items():
        update = {k: v for k, v in new.items() if old.get(k) != v}
        delete = sorted(set(old) - set(new))
        write = functools.partial(salt["pvefw.update_rule"], scope, pos, update, delete=delete, digest=digest)
        writes.append(({"done": [f"updated the rule at {pos}"]}, write))
        digest = None
    writes += _plan_writes(scope, plan, {("ours", n): rule for n, rule in wanted.items()}, digest)
    return _carry_out(ret, f"Our rules in the {scope} firewall", changes, writes, notes)


def _rules_plan(current, wanted, absent):
    """The updates of our rules in place (``{pos: (old, new)}``), the plan that puts ours at the
    top in order (the user's rules fixed), and the resulting order of keys."""
    owners = [next((n for n in (*wanted, *absent) if _is_named(item, n)), None) for item in current]
    keys = [("ours", owner) if owner else ("user", pos) for pos, owner in enumerate(owners)]
    updates = {}
    for pos, key in enumerate(keys):
        if key[0] == "ours" and key[1] in wanted and keys.index(key) == pos:
            have = _normal(current[pos])
            if have != wanted[key[1]]:
                updates[pos] = (have, wanted[key[1]])
    order = [("ours", n) for n in wanted] + [key for key in keys if key[0] == "user"]
    plan = __utils__["rule_order.plan"](keys, order, fixed={key for key in keys if key[0] == "user"})
    return updates, plan, order


def options(name, values, node=None):
    """
    The firewall options ``values`` of the cluster (``name: cluster``) or of ``node``; options
    not named are left as they are.
    """
    ret = _ret(name)
    salt = __salt__
    try:
        current = salt["pvefw.options"](node)
        notes = _notes(node)
    except SaltException as err:
        return _failed(ret, err)
    differing = {k: v for k, v in values.items() if str(current["options"].get(k)) != str(v)}
    changes = {k: {"old": current["options"].get(k), "new": v} for k, v in differing.items()}
    write = (changes, functools.partial(salt["pvefw.set_options"], differing, node=node, digest=current["digest"]))
    return _carry_out(ret, f"Firewall options of {node or 'the cluster'}", changes, [write] if differing else [], notes)
