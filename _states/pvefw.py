"""
The Proxmox VE firewall objects a federation needs, converged through the ``pvefw`` module.

Each state reads what it needs once, computes every change, and in test mode reports them
without writing. ``ipset_present`` and ``group_present`` own their object entirely (exact
entries, exact ordered rules, few moves). In the cluster's or a node's rule list, which the
user shares with us, ``rules_present`` finds each of our rules by its name, which starts its
comment (``evpn-wireguard: ...``), never by position alone, and keeps our rules at the top in
order; the user's rules are never changed, moved or deleted. One state holds all of our rules
of a list, so that test mode predicts a whole run from one read.

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

from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "pvefw"
# The fields of a rule in the order pve-firewall writes them, for readable change reports.
RULE_FIELDS = ("type", "action", "macro", "iface", "source", "dest", "proto", "dport", "sport", "icmp-type", "log")


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


def _finish(ret, changes, what, test):
    ret["changes"] = changes
    if test and changes:
        ret.update(result=None, comment=f"{what} would be updated")
    else:
        ret["comment"] = f"{what} {'was updated' if changes else 'is in the desired state'}"
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
    test = __opts__["test"]
    try:
        exists = name in salt["pvefw.named"]("ipsets")
        current = set(salt["pvefw.ipset"](name)) if exists else set()
        changes = {
            k: v
            for k, v in (
                ("created", not exists),
                ("added", sorted(set(cidrs) - current)),
                ("removed", sorted(current - set(cidrs))),
            )
            if v
        }
        if not test:
            if not exists:
                salt["pvefw.create"]("ipsets", name, comment)
            for cidr in changes.get("added", []):
                salt["pvefw.add_ipset_entry"](name, cidr)
            for cidr in changes.get("removed", []):
                salt["pvefw.remove_ipset_entry"](name, cidr)
    except (CommandExecutionError, SaltInvocationError) as err:
        return _failed(ret, err)
    return _finish(ret, changes, f"IP set {name}", test)


def _run_plan(scope, plan, rule_of, digest):
    """Carry out a plan; PVE checks ``digest`` on the first write, the later ones follow from it."""
    salt = __salt__
    for operation, where, moveto in plan:
        if operation == "delete":
            salt["pvefw.delete_rule"](scope, where, digest=digest)
        elif operation == "insert":
            salt["pvefw.insert_rule"](scope, rule_of[where])
        else:
            salt["pvefw.move_rule"](scope, where, moveto, digest=digest)
        digest = None


def group_present(name, rules, comment=None):
    """
    The security group ``name`` holds exactly ``rules``, in this order (created with ``comment``
    when missing), with as few moves as the rules already in order allow.
    """
    ret = _ret(name)
    salt = __salt__
    test = __opts__["test"]
    wanted = [_normal(rule) for rule in rules]
    if len({_key(rule) for rule in wanted}) != len(wanted):
        ret.update(result=False, comment="rules: the same rule is listed twice")
        return ret
    scope = f"group:{name}"
    try:
        exists = name in salt["pvefw.named"]("groups")
        current = salt["pvefw.rules"](scope) if exists else {"digest": None, "rules": []}
        keys = [_key(rule) for rule in wanted]
        plan = __utils__["rule_order.plan"]([_key(_normal(rule)) for rule in current["rules"]], keys)
        changes = {}
        if not exists:
            changes["created"] = True
        if plan:
            changes["rules"] = {"old": [_line(r) for r in current["rules"]], "new": [_line(r) for r in wanted]}
        if not test:
            if not exists:
                salt["pvefw.create"]("groups", name, comment)
            _run_plan(scope, plan, dict(zip(keys, wanted, strict=True)), current["digest"])
    except (CommandExecutionError, SaltInvocationError) as err:
        return _failed(ret, err)
    return _finish(ret, changes, f"Security group {name}", test)


def _is_named(rule, name):
    comment = str(rule.get("comment", ""))
    return comment == name or comment.startswith(f"{name}: ")


def rules_present(name, rules, absent=(), node=None):
    """
    Our rules at the top of the cluster's rule list (``name: cluster``) or of ``node``'s, in the
    order of ``rules`` (``[{"name", "rule"}]``; each rule's comment starts with its name, which
    is how it is found again), with exactly their fields; our rules named in ``absent`` removed.
    The user's rules are never changed, deleted or moved: ours are added, updated, moved or
    deleted around them.
    """
    ret = _ret(name)
    salt = __salt__
    test = __opts__["test"]
    wanted = {item["name"]: _normal(item["rule"]) for item in rules}
    misnamed = [n for n, rule in wanted.items() if not _is_named(rule, n)]
    if misnamed:
        ret.update(result=False, comment=f"rules: the comment of {', '.join(misnamed)} must start with its name")
        return ret
    scope = f"node:{node}" if node else "cluster"
    try:
        current = salt["pvefw.rules"](scope)
        owners = [next((n for n in (*wanted, *absent) if _is_named(item, n)), None) for item in current["rules"]]
        keys = [("ours", owner) if owner else ("user", pos) for pos, owner in enumerate(owners)]
        updates = {}
        for pos, key in enumerate(keys):
            if key[0] == "ours" and key[1] in wanted and keys.index(key) == pos:
                have = _normal(current["rules"][pos])
                if have != wanted[key[1]]:
                    updates[pos] = (have, wanted[key[1]])
        order = [("ours", n) for n in wanted] + [key for key in keys if key[0] == "user"]
        plan = __utils__["rule_order.plan"](keys, order, fixed={key for key in keys if key[0] == "user"})
        changes = {}
        if updates:
            changes["updated"] = [{"old": _line(old), "new": _line(new)} for old, new in updates.values()]
        if plan:
            changes["rules"] = {
                "old": [_line(rule) for rule in current["rules"]],
                "new": [
                    _line(wanted[key[1]]) if key[0] == "ours" else _line(current["rules"][key[1]]) for key in order
                ],
            }
        if not test:
            digest = current["digest"]
            for pos, (old, new) in updates.items():
                salt["pvefw.update_rule"](
                    scope,
                    pos,
                    {k: v for k, v in new.items() if old.get(k) != v},
                    delete=sorted(set(old) - set(new)),
                    digest=digest,
                )
                digest = None
            _run_plan(scope, plan, {("ours", n): rule for n, rule in wanted.items()}, digest)
    except (CommandExecutionError, SaltInvocationError) as err:
        return _failed(ret, err)
    return _finish(ret, changes, f"Our rules in the {scope} firewall", test)


def options(name, values, node=None):
    """
    The firewall options ``values`` of the cluster (``name: cluster``) or of ``node``; options
    not named are left as they are.
    """
    ret = _ret(name)
    salt = __salt__
    test = __opts__["test"]
    try:
        current = salt["pvefw.options"](node)
        differing = {k: v for k, v in values.items() if str(current["options"].get(k)) != str(v)}
        changes = {k: {"old": current["options"].get(k), "new": v} for k, v in differing.items()}
        if differing and not test:
            salt["pvefw.set_options"](differing, node=node, digest=current["digest"])
    except (CommandExecutionError, SaltInvocationError) as err:
        return _failed(ret, err)
    return _finish(ret, changes, f"Firewall options of {node or 'the cluster'}", test)
