"""
A thin client for the Proxmox VE firewall API through ``pvesh`` on the node: the cluster's rules,
security groups, IP sets, aliases and options, and a node's rules and options.

Each list is read once per run and cached in ``__context__``; a write to a list drops its cache
(positions and digests change), so only a run that changes something reads a list again.
Updates pass back the digest PVE returned with the list, so a change made meanwhile by someone
else fails instead of being overwritten. pvesh's errors become ``CommandExecutionError``.

Rule lists are addressed by ``scope``: ``cluster``, ``group:<name>`` (a security group) or
``node:<name>`` (a node's host rules).

CLI Example:

.. code-block:: bash

    salt-call pvefw.rules cluster
    salt-call pvefw.ipset evpn-wireguard
"""

import json

from salt.exceptions import SaltInvocationError

__virtualname__ = "pvefw"
CONTEXT = "pvefw"
# Keys PVE adds to what it returns; not parameters of the object.
READ_ONLY = {"digest", "pos", "ipversion"}
# The named objects of the cluster firewall: their list and the key that names them.
NAMED = {"groups": ("/cluster/firewall/groups", "group"), "ipsets": ("/cluster/firewall/ipset", "name")}
FORWARD_SINCE = (8, 3)  # pve-firewall 5.1.0: forward rules, enforced by proxmox-firewall (nftables)


def __virtual__():
    if "pvesh.call" in __salt__:
        return __virtualname__
    return (False, "pvefw: pvesh is not installed (not a Proxmox VE node)")


def _pvesh(command, path, params=None, output=True):
    return __salt__["pvesh.call"](command, path, params, output)


def _cache():
    return __context__.setdefault(CONTEXT, {})


def _get(path):
    """GET ``path`` once per run."""
    cache = _cache()
    if path not in cache:
        cache[path] = json.loads(_pvesh("get", path) or "null")
    return cache[path]


def _write(command, path, params, *changed_lists):
    _pvesh(command, path, params, output=False)
    for stale in (path, *changed_lists):
        _cache().pop(stale, None)


def _rules_path(scope):
    kind, _, name = scope.partition(":")
    if scope == "cluster":
        return "/cluster/firewall/rules"
    if kind == "group" and name:
        return f"/cluster/firewall/groups/{name}"
    if kind == "node" and name:
        return f"/nodes/{name}/firewall/rules"
    raise SaltInvocationError(f"scope: {scope!r} is not cluster, group:<name> or node:<name>")


def _options_path(node):
    return f"/nodes/{node}/firewall/options" if node else "/cluster/firewall/options"


def version():
    """
    The PVE release of this node as (major, minor).

    CLI Example:

    .. code-block:: bash

        salt-call pvefw.version
    """
    release = _get("/version")["release"]
    return tuple(int(part) for part in release.split(".")[:2])


def has_forward_rules():
    """
    Whether this PVE version has firewall rules of direction ``forward`` (8.3 and later).

    CLI Example:

    .. code-block:: bash

        salt-call pvefw.has_forward_rules
    """
    return version() >= FORWARD_SINCE


def rules(scope="cluster"):
    """
    A rule list in order: ``{"digest", "rules": [{param: value}]}`` (PVE's read-only keys left
    out).

    CLI Example:

    .. code-block:: bash

        salt-call pvefw.rules cluster
        salt-call pvefw.rules group:evpn-wg
    """
    items = _get(_rules_path(scope)) or []
    return {
        "digest": items[0]["digest"] if items else None,
        "rules": [{k: v for k, v in item.items() if k not in READ_ONLY} for item in items],
    }


def insert_rule(scope, rule):
    """
    Add a rule; PVE puts it at position 0.

    CLI Example:

    .. code-block:: bash

        salt-call pvefw.insert_rule cluster \
            '{"type": "in", "action": "ACCEPT", "proto": "udp", "dport": "51820", "enable": 1}'
    """
    _write("create", _rules_path(scope), rule)


def update_rule(scope, pos, params, delete=(), digest=None):
    """
    Change the rule at ``pos``: set ``params``, remove the fields in ``delete``.

    CLI Example:

    .. code-block:: bash

        salt-call pvefw.update_rule cluster 0 '{"dport": "51821"}'
    """
    params = {**params, **({"delete": ",".join(delete)} if delete else {}), **({"digest": digest} if digest else {})}
    _write("set", f"{_rules_path(scope)}/{pos}", params, _rules_path(scope))


def move_rule(scope, pos, moveto, digest=None):
    """
    Move the rule at ``pos`` before the rule that is at ``moveto`` now (to the end when
    ``moveto`` is the length of the list).

    CLI Example:

    .. code-block:: bash

        salt-call pvefw.move_rule cluster 3 0
    """
    params = {"moveto": moveto, **({"digest": digest} if digest else {})}
    _write("set", f"{_rules_path(scope)}/{pos}", params, _rules_path(scope))


def delete_rule(scope, pos, digest=None):
    """
    Delete the rule at ``pos``; the rules after it move up.

    CLI Example:

    .. code-block:: bash

        salt-call pvefw.delete_rule cluster 3
    """
    _write("delete", f"{_rules_path(scope)}/{pos}", {"digest": digest} if digest else {}, _rules_path(scope))


def _kind(kind):
    if kind not in NAMED:
        raise SaltInvocationError(f"kind: {kind!r} is not one of {', '.join(NAMED)}")
    return NAMED[kind]


def named(kind):
    """
    The cluster's security groups (``kind`` ``groups``) or IP sets (``ipsets``):
    ``{name: comment}``.

    CLI Example:

    .. code-block:: bash

        salt-call pvefw.named groups
        salt-call pvefw.named ipsets
    """
    path, key = _kind(kind)
    return {item[key]: item.get("comment") for item in _get(path) or []}


def create(kind, name, comment=None):
    """
    Create an empty security group (``kind`` ``groups``) or IP set (``ipsets``).

    CLI Example:

    .. code-block:: bash

        salt-call pvefw.create ipsets evpn-wireguard comment='evpn: WireGuard addresses'
    """
    path, key = _kind(kind)
    _write("create", path, {key: name, **({"comment": comment} if comment else {})})


def ipset(name):
    """
    The entries of an IP set, as PVE stores them (``{cidr: {"comment", "nomatch"}}``).

    CLI Example:

    .. code-block:: bash

        salt-call pvefw.ipset evpn-wireguard
    """
    return {
        item["cidr"]: {k: v for k, v in item.items() if k not in READ_ONLY | {"cidr"}}
        for item in _get(f"/cluster/firewall/ipset/{name}") or []
    }


def add_ipset_entry(name, cidr, comment=None):
    """
    Add an entry to an IP set.

    CLI Example:

    .. code-block:: bash

        salt-call pvefw.add_ipset_entry evpn-wireguard 10.3.0.1
    """
    _write("create", f"/cluster/firewall/ipset/{name}", {"cidr": cidr, **({"comment": comment} if comment else {})})


def remove_ipset_entry(name, cidr):
    """
    Remove an entry from an IP set.

    CLI Example:

    .. code-block:: bash

        salt-call pvefw.remove_ipset_entry evpn-wireguard 10.3.0.1
    """
    _write("delete", f"/cluster/firewall/ipset/{name}/{cidr}", {}, f"/cluster/firewall/ipset/{name}")


def options(node=None):
    """
    The firewall options of the cluster, or of ``node``: ``{"digest", "options": {...}}``.

    CLI Example:

    .. code-block:: bash

        salt-call pvefw.options
        salt-call pvefw.options node=pve-roz1
    """
    current = dict(_get(_options_path(node)) or {})
    return {"digest": current.pop("digest", None), "options": current}


def set_options(values, delete=(), node=None, digest=None):
    """
    Set firewall options of the cluster, or of ``node``.

    CLI Example:

    .. code-block:: bash

        salt-call pvefw.set_options '{"enable": 1}'
    """
    params = {**values, **({"delete": ",".join(delete)} if delete else {}), **({"digest": digest} if digest else {})}
    _write("set", _options_path(node), params)
