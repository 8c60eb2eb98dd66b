"""
Proxmox VE SDN objects through the ``pvesdn`` execution module.

Each state computes its changes first and, in test mode, reports them without writing. The
comparison normalises what PVE normalises (order of ``peers``/``exitnodes``/``nodes``, numbers
and strings, booleans that PVE leaves out when off), so a converged cluster shows no change.

On PVE 9 the run's first write takes the cluster's SDN lock and ``pvesdn.applied`` releases it:
end every run that uses these states with ``pvesdn.applied`` (salt/evpn/sdn.sls does), or the
lock stays held. A failed write ends the run's SDN changes: on PVE 9 the configuration is rolled
back and the lock released at once; on PVE 8 the changes made so far stay pending and are not applied. Later SDN
states of the run then change nothing, and ``pvesdn.applied`` (which requires them) does not run.

.. code-block:: yaml

    evpn-zone:
      pvesdn.zone_present:
        - name: evpn
        - params: {type: evpn, controller: evpnctl, vrf-vxlan: 10000, mtu: 1370}

    evpn-sdn-applied:
      pvesdn.applied:
        - require:
          - pvesdn: evpn-zone
"""

from salt.exceptions import CommandExecutionError

__virtualname__ = "pvesdn"

LIST_KEYS = {"peers", "exitnodes", "nodes"}
CONTEXT = "pvesdn"


def __virtual__():
    if "pvesdn.read" in __salt__:
        return __virtualname__
    return (False, "pvesdn: the pvesdn execution module is not available (no pvesh)")


def _run_state():
    return __context__.setdefault(CONTEXT, {"reads": {}})


def _same(key, current, desired):
    if desired is None:
        return current is None
    if current is None:
        return desired in (0, False)  # PVE leaves an unset boolean out
    if key in LIST_KEYS:
        return sorted(str(current).split(",")) == sorted(str(desired).split(","))
    return str(current) == str(desired)


def _diff(current, desired):
    """{param: {"old", "new"}} for each parameter that differs; "new" None means unset."""
    return {
        key: {"old": current.get(key), "new": value}
        for key, value in desired.items()
        if not _same(key, current.get(key), value)
    }


def _ret(name):
    return {"name": name, "changes": {}, "result": True, "comment": ""}


def _refuse_after_failure(ret):
    if _run_state().get("failed"):
        ret.update(result=False, changes={}, comment="Not changed: an earlier SDN change of this run failed")
        return True
    return False


def _fail(ret, err):
    """A write failed: undo what can be undone and end this run's SDN changes."""
    run = _run_state()
    run["failed"] = True
    try:
        rolled_back = __salt__["pvesdn.rollback"]()
        undo = (
            "the SDN configuration was rolled back and the lock released"
            if rolled_back
            else "changes made so far stay pending and were not applied"
        )
    except CommandExecutionError as rollback_err:
        undo = f"the rollback failed too: {rollback_err}"
    ret.update(result=False, changes={}, comment=f"{err}\n({undo})")
    return ret


def _act(ret, changes, would, done, write):
    """Report ``changes``: in test mode say ``would``; otherwise run ``write`` (unless an
    earlier SDN write of this run failed) and say ``done``."""
    ret["changes"] = changes
    if __opts__["test"]:
        _run_state()["would_change"] = True
        ret.update(result=None, comment=would)
        return ret
    if _refuse_after_failure(ret):
        return ret
    try:
        write()
    except CommandExecutionError as err:
        return _fail(ret, err)
    ret["comment"] = done
    return ret


def _converge(collection, name, params, kind, vnet=None, create_as=None):
    """Create or update one object; ``create_as`` is the id to create with when it differs
    from ``name`` (subnets: created by CIDR, addressed by id)."""
    ret = _ret(name)
    try:
        objects = __salt__["pvesdn.read"](collection, vnet=vnet)
    except CommandExecutionError as err:
        ret.update(result=False, comment=str(err))
        return ret
    current = (objects.get(name) or {}).get("config")
    if current is None:
        changes = {"old": None, "new": {k: v for k, v in params.items() if v is not None}}
        verb = "created"
    elif params.get("type", current.get("type")) != current.get("type"):
        ret.update(
            result=False,
            comment=f"SDN {kind} {name} exists with type {current['type']}; "
            f"delete it to have it of type {params['type']}",
        )
        return ret
    else:
        changes = _diff(current, {k: v for k, v in params.items() if k != "type"})
        verb = "updated"
    if not changes:
        ret["comment"] = f"SDN {kind} {name} is in the desired state"
        return ret

    def write():
        if current is None:
            __salt__["pvesdn.create"](collection, create_as or name, changes["new"], vnet=vnet)
        else:
            __salt__["pvesdn.update"](
                collection,
                name,
                {k: c["new"] for k, c in changes.items() if c["new"] is not None},
                delete=[k for k, c in changes.items() if c["new"] is None],
                vnet=vnet,
            )

    return _act(
        ret, changes, f"SDN {kind} {name} would be {verb}", f"SDN {kind} {name} {verb} (pending until applied)", write
    )


def _remove(collection, name, kind, vnet=None):
    ret = _ret(name)
    objects = __salt__["pvesdn.read"](collection, vnet=vnet)
    if (objects.get(name) or {}).get("config") is None:
        ret["comment"] = f"SDN {kind} {name} is absent"
        return ret
    return _act(
        ret,
        {"old": objects[name]["config"], "new": None},
        f"SDN {kind} {name} would be deleted",
        f"SDN {kind} {name} deleted (pending until applied)",
        lambda: __salt__["pvesdn.delete"](collection, name, vnet=vnet),
    )


def controller_present(name, params):
    """
    An SDN controller with these parameters (PVE names: ``type``, ``asn``, ``peers``, ...).
    """
    return _converge("controllers", name, params, "controller")


def zone_present(name, params):
    """
    An SDN zone with these parameters (PVE names: ``type``, ``controller``, ``vrf-vxlan``, ...).
    """
    return _converge("zones", name, params, "zone")


def vnet_present(name, params):
    """
    An SDN vnet with these parameters (``zone``, ``tag``, ...).
    """
    return _converge("vnets", name, params, "vnet")


def subnet_present(name, params):
    """
    An SDN subnet, ``name`` in PVE's id form ``<zone>-<network>-<prefixlen>``; ``params`` hold
    ``vnet``, ``subnet`` (the CIDR) and ``type: subnet`` besides ``gateway``, ``snat``, ...
    """
    params = dict(params)
    vnet = params.pop("vnet")
    cidr = params.pop("subnet")  # the id is made from it when created, and fixed after
    return _converge("subnets", name, params, "subnet", vnet=vnet, create_as=cidr)


def controller_absent(name):
    """No SDN controller ``name``."""
    return _remove("controllers", name, "controller")


def zone_absent(name):
    """No SDN zone ``name``."""
    return _remove("zones", name, "zone")


def vnet_absent(name):
    """No SDN vnet ``name``."""
    return _remove("vnets", name, "vnet")


def subnet_absent(name, vnet):
    """No SDN subnet ``name`` (id form) in ``vnet``."""
    return _remove("subnets", name, "subnet", vnet=vnet)


def zone_pruned(name, keep, prune=False):
    """
    The vnets of zone ``name`` and their subnets that ``keep`` (``{vnet: [subnet ids]}``) does not
    name are deleted when ``prune`` is true; otherwise they are reported as unmanaged and left
    alone. Objects of other zones are never looked at.
    """
    ret = _ret(name)
    vnets = __salt__["pvesdn.read"]("vnets")
    unmanaged = []  # (collection, id, vnet), subnets before their vnet
    for vnet, entry in sorted(vnets.items()):
        config = entry["config"]
        if not config or config.get("zone") != name:
            continue
        subnets = __salt__["pvesdn.read"]("subnets", vnet=vnet)
        for subnet, sub_entry in sorted(subnets.items()):
            if sub_entry["config"] and subnet not in keep.get(vnet, ()):
                unmanaged.append(("subnets", subnet, vnet))
        if vnet not in keep:
            unmanaged.append(("vnets", vnet, None))
    if not unmanaged:
        ret["comment"] = f"SDN zone {name} holds no object the pillar does not name"
        return ret
    names = [f"{collection[:-1]} {ident}" for collection, ident, _ in unmanaged]
    if not prune:
        ret["comment"] = f"Unmanaged in SDN zone {name}, left alone (set evpn:prune: true to remove): " + ", ".join(
            names
        )
        return ret

    def write():
        for collection, ident, vnet in unmanaged:
            __salt__["pvesdn.delete"](collection, ident, vnet=vnet)

    return _act(
        ret,
        {"deleted": names},
        f"Would delete from SDN zone {name}: {', '.join(names)}",
        f"Deleted from SDN zone {name} (pending until applied): {', '.join(names)}",
        write,
    )


def applied(name):
    """
    Apply the SDN configuration (``pvesh set /cluster/sdn``) once, only when something is
    pending. Require every SDN state of the run: it must not apply after a failed one.
    """
    ret = _ret(name)
    if _refuse_after_failure(ret):
        return ret
    try:
        pending = __salt__["pvesdn.pending"]()
        if __opts__["test"]:
            if pending or _run_state().get("would_change"):
                ret.update(result=None, changes={"applied": True}, comment="The SDN configuration would be applied")
            else:
                ret["comment"] = "Nothing to apply"
            return ret
        if not pending:
            __salt__["pvesdn.release"]()
            ret["comment"] = "Nothing to apply"
            return ret
        upid = __salt__["pvesdn.apply"]()
    except CommandExecutionError as err:
        return _fail(ret, err)
    ret.update(changes={"applied": True}, comment=f"SDN configuration applied ({upid})")
    return ret
