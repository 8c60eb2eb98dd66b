"""
The Proxmox VE firewall of this node's cluster: the cluster's rules, security groups, IP sets,
aliases and options, and a node's rules and options; read from the files PVE keeps them in,
written through ``pvesh``.

Reads come from ``firewall/cluster.fw`` and ``nodes/<node>/host.fw`` in the cluster's
configuration folder (``/etc/pve``; see ``pvesh.config_dir``), parsed once per run the way
pve-firewall parses them, with the lists and digests ``pvesh get`` would give. A file that cannot
be read or parsed is read through ``pvesh`` instead (:func:`fallback_reason` says why), never
guessed. A converged cluster thus costs no pvesh call. After a write the files are read again.
Updates pass back the digest of the list as read, so a change made meanwhile by someone else
fails instead of being overwritten. pvesh's errors become ``CommandExecutionError``.

Rule lists are addressed by ``scope``: ``cluster``, ``group:<name>`` (a security group) or
``node:<name>`` (a node's host rules).

CLI Example:

.. code-block:: bash

    salt-call pvefw.rules cluster
    salt-call pvefw.ipset evpn-wireguard
"""

import json
import logging
import os

from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "pvefw"
CONTEXT = "pvefw"
# Keys PVE adds to what it returns; not parameters of the object.
READ_ONLY = {"digest", "pos", "ipversion", "errors"}
# The named objects of the cluster firewall: their list and the key that names them.
NAMED = {"groups": ("/cluster/firewall/groups", "group"), "ipsets": ("/cluster/firewall/ipset", "name")}
FORWARD_SINCE = (8, 3)  # pve-firewall 5.1.0: forward rules, enforced by proxmox-firewall (nftables)
CLUSTER_FW = "firewall/cluster.fw"


def __virtual__():
    if "pvesh.call" in __salt__:
        return __virtualname__
    return (False, "pvefw: pvesh is not installed (not a Proxmox VE node)")


def _pvesh(command, path, params=None, output=True):
    return __salt__["pvesh.call"](command, path, params, output)


def _context():
    return __context__.setdefault(CONTEXT, {"files": {}, "pvesh_reads": {}})


def _parsed(node=None):
    """cluster.fw, or ``node``'s host.fw, as pve-firewall parses it, once per run; or why it
    cannot be read."""
    files = _context()["files"]
    key = node or "cluster"
    if key not in files:
        try:
            files[key] = _parse(CLUSTER_FW, "cluster") if node is None else _parse_host(node)
        except (CommandExecutionError, ValueError) as err:
            files[key] = str(err)
    return files[key]


def _parse(path, env, cluster=None):
    return __utils__["pve_firewall_config.parse"](__salt__["pvesh.read_config"](path), env, cluster, path)


def _parse_host(node):
    cluster = _parsed()
    if isinstance(cluster, str):
        raise CommandExecutionError(cluster)  # host rules may name the cluster's aliases
    if not os.path.isdir(os.path.join(__salt__["pvesh.config_dir"](), "nodes", node)):
        raise CommandExecutionError(f"{node} is not a node of this cluster (no nodes/{node} folder)")
    return _parse(f"nodes/{node}/host.fw", "host", cluster)


def fallback_reason(node=None):
    """
    Why this run reads the cluster's firewall (or ``node``'s) through pvesh rather than from its
    file; None when it reads the file.

    CLI Example:

    .. code-block:: bash

        salt-call pvefw.fallback_reason
        salt-call pvefw.fallback_reason node=pve-roz1
    """
    problem = _parsed(node)
    return problem if isinstance(problem, str) else None


def _get(path, from_file, node=None):
    """What ``pvesh get path`` returns: ``from_file(parsed file)`` when the file can be read, else
    pvesh's answer, once per run."""
    parsed = _parsed(node)
    if not isinstance(parsed, str):
        try:
            return from_file(parsed)
        except KeyError as err:
            raise CommandExecutionError(f"{path}: no such object {err}") from err
    reads = _context()["pvesh_reads"]
    if path not in reads:
        log.info("pvefw: reading %s through pvesh: %s", path, parsed)
        reads[path] = json.loads(_pvesh("get", path) or "null")
    return reads[path]


def _write(command, path, params, *changed_lists):
    try:
        _pvesh(command, path, params, output=False)
    finally:  # read again after a write, or a refused one: the list changed
        context = _context()
        context["files"].clear()
        for stale in (path, *changed_lists):
            context["pvesh_reads"].pop(stale, None)


def _rules_path(scope):
    kind, _, name = scope.partition(":")
    if scope == "cluster":
        return "/cluster/firewall/rules", None, None
    if kind == "group" and name:
        return f"/cluster/firewall/groups/{name}", name, None
    if kind == "node" and name:
        return f"/nodes/{name}/firewall/rules", None, name
    raise SaltInvocationError(f"scope: {scope!r} is not cluster, group:<name> or node:<name>")


def _options_path(node):
    return f"/nodes/{node}/firewall/options" if node else "/cluster/firewall/options"


def version():
    """
    The PVE release of this node as (major, minor), asked of pvesh once per run.

    CLI Example:

    .. code-block:: bash

        salt-call pvefw.version
    """
    context = _context()
    if "version" not in context:
        context["version"] = json.loads(_pvesh("get", "/version"))["release"]
    return tuple(int(part) for part in context["version"].split(".")[:2])


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
    path, group, node = _rules_path(scope)
    items = _get(path, lambda parsed: __utils__["pve_firewall_config.rules"](parsed, group), node) or []
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
    _write("create", _rules_path(scope)[0], rule)


def update_rule(scope, pos, params, delete=(), digest=None):
    """
    Change the rule at ``pos``: set ``params``, remove the fields in ``delete``.

    CLI Example:

    .. code-block:: bash

        salt-call pvefw.update_rule cluster 0 '{"dport": "51821"}'
    """
    path = _rules_path(scope)[0]
    params = {**params, **({"delete": ",".join(delete)} if delete else {}), **({"digest": digest} if digest else {})}
    _write("set", f"{path}/{pos}", params, path)


def move_rule(scope, pos, moveto, digest=None):
    """
    Move the rule at ``pos`` before the rule that is at ``moveto`` now (to the end when
    ``moveto`` is the length of the list).

    CLI Example:

    .. code-block:: bash

        salt-call pvefw.move_rule cluster 3 0
    """
    path = _rules_path(scope)[0]
    _write("set", f"{path}/{pos}", {"moveto": moveto, **({"digest": digest} if digest else {})}, path)


def delete_rule(scope, pos, digest=None):
    """
    Delete the rule at ``pos``; the rules after it move up.

    CLI Example:

    .. code-block:: bash

        salt-call pvefw.delete_rule cluster 3
    """
    path = _rules_path(scope)[0]
    _write("delete", f"{path}/{pos}", {"digest": digest} if digest else {}, path)


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
    items = _get(path, __utils__[f"pve_firewall_config.{kind}"]) or []
    return {item[key]: item.get("comment") for item in items}


def create(kind, name, comment=None):
    """
    Create an empty security group (``kind`` ``groups``) or IP set (``ipsets``).

    CLI Example:

    .. code-block:: bash

        salt-call pvefw.create ipsets evpn-wireguard comment='evpn: WireGuard addresses'
    """
    path, key = _kind(kind)
    _write("create", path, {key: name, **({"comment": comment} if comment else {})})


def delete(kind, name):
    """
    Delete an empty security group (``kind`` ``groups``) or IP set (``ipsets``): PVE refuses
    one that still holds rules or entries.

    CLI Example:

    .. code-block:: bash

        salt-call pvefw.delete ipsets evpn-wireguard
    """
    path, _ = _kind(kind)
    _write("delete", f"{path}/{name}", {}, path)


def ipset(name):
    """
    The entries of an IP set, as PVE stores them (``{cidr: {"comment", "nomatch"}}``).

    CLI Example:

    .. code-block:: bash

        salt-call pvefw.ipset evpn-wireguard
    """
    path = f"/cluster/firewall/ipset/{name}"
    items = _get(path, lambda parsed: __utils__["pve_firewall_config.ipset"](parsed, name)) or []
    return {item["cidr"]: {k: v for k, v in item.items() if k not in READ_ONLY | {"cidr"}} for item in items}


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
    current = dict(_get(_options_path(node), __utils__["pve_firewall_config.options"], node) or {})
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
