"""
Proxmox VE SDN objects through the ``pvesdn`` execution module.

Each state computes its changes first and, in test mode, reports them without writing. The
comparison normalises what PVE normalises (order of ``peers``/``exitnodes``/``nodes``, numbers
and strings, booleans that PVE leaves out when off), so a converged cluster shows no change.
Reads come from the cluster's files; where one cannot be read, the state's comment says so and
names what was read through pvesh instead. Any Salt error becomes ``result: False`` with its
message.

On PVE 9 the run's first write takes the cluster's SDN lock and ``pvesdn.applied`` releases it:
end every run that uses these states with ``pvesdn.applied`` (salt/evpn/sdn.sls does), or the
lock stays held. A failed write ends the run's SDN changes: on PVE 9 the configuration is rolled
back and the lock released at once; on PVE 8 the changes made so far stay pending, are reported,
and are not applied. Later SDN states of the run then change nothing, and ``pvesdn.applied``
(which requires them) does not run.

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

import functools

from salt.exceptions import SaltException

__virtualname__ = "pvesdn"

LIST_KEYS = {"peers", "exitnodes", "nodes"}
CONTEXT = "pvesdn_state"  # this state module's own: whether a write failed, what test mode would change


def __virtual__():
    if "pvesdn.read" in __salt__:
        return __virtualname__
    return (False, "pvesdn: the pvesdn execution module is not available (no pvesh)")


def _run():
    return __context__.setdefault(CONTEXT, {})


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


def _read(ret, notes, collection, vnet=None):
    """The collection as configured, or None with ``ret`` failed; adds to ``notes`` when it was
    read through pvesh."""
    try:
        objects = __salt__["pvesdn.read"](collection, vnet=vnet)
        reason = __salt__["pvesdn.fallback_reason"](collection)
    except SaltException as err:
        ret.update(result=False, comment=f"Reading the SDN {collection} failed: {err}")
        return None
    note = f"(read through pvesh: {reason})"
    if reason and note not in notes:
        notes.append(note)
    return objects


def _done(ret, comment, notes=()):
    ret["comment"] = "\n".join([comment, *notes])
    return ret


def _refuse_after_failure(ret):
    if _run().get("failed"):
        ret.update(result=False, changes={})
        _done(ret, "Not changed: an earlier SDN change of this run failed")
        return True
    return False


def _fail(ret, err, made):
    """A write failed: undo what can be undone and end this run's SDN changes. ``made`` is what
    this state changed before the failure, which stays pending when nothing can be undone."""
    _run()["failed"] = True
    try:
        rolled_back = __salt__["pvesdn.rollback"]()
        undo = (
            "the SDN configuration was rolled back and the lock released"
            if rolled_back
            else "changes made so far stay pending and were not applied"
        )
    except SaltException as rollback_err:
        rolled_back, undo = False, f"the rollback failed too: {rollback_err}"
    ret.update(result=False, changes={} if rolled_back else made)
    return _done(ret, f"{err}\n({undo})")


def _act(ret, changes, would, done, writes, notes):
    """Report ``changes``: in test mode say ``would``; otherwise run ``writes`` (``[(change
    made, write)]``) in order, unless an earlier SDN write of this run failed, and say ``done``."""
    if __opts__["test"]:
        _run()["would_change"] = True
        ret.update(result=None, changes=changes)
        return _done(ret, would, notes)
    if _refuse_after_failure(ret):
        return ret
    made = {}
    for made_now, write in writes:
        try:
            write()
        except SaltException as err:
            return _fail(ret, err, made)
        for key, value in made_now.items():
            made[key] = made.get(key, []) + value if isinstance(value, list) else value
    ret["changes"] = changes
    return _done(ret, done, notes)


def _converge(collection, name, params, kind, vnet=None, create_as=None):
    """Create or update one object; ``create_as`` is the id to create with when it differs
    from ``name`` (subnets: created by CIDR, addressed by id)."""
    ret, notes = _ret(name), []
    objects = _read(ret, notes, collection, vnet)
    if objects is None:
        return ret
    current = (objects.get(name) or {}).get("config")
    if current is None:
        changes = {"old": None, "new": {k: v for k, v in params.items() if v is not None}}
        verb = "created"
    elif params.get("type", current.get("type")) != current.get("type"):
        ret["result"] = False
        return _done(
            ret,
            f"SDN {kind} {name} exists with type {current['type']}; delete it to have it of type {params['type']}",
            notes,
        )
    else:
        changes = _diff(current, {k: v for k, v in params.items() if k != "type"})
        verb = "updated"
    if not changes:
        return _done(ret, f"SDN {kind} {name} is in the desired state", notes)

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
        ret,
        changes,
        f"SDN {kind} {name} would be {verb}",
        f"SDN {kind} {name} {verb} (pending until applied)",
        [(changes, write)],
        notes,
    )


def _remove(collection, name, kind, vnet=None):
    ret, notes = _ret(name), []
    objects = _read(ret, notes, collection, vnet)
    if objects is None:
        return ret
    current = (objects.get(name) or {}).get("config")
    if current is None:
        return _done(ret, f"SDN {kind} {name} is absent", notes)
    changes = {"old": current, "new": None}
    return _act(
        ret,
        changes,
        f"SDN {kind} {name} would be deleted",
        f"SDN {kind} {name} deleted (pending until applied)",
        [(changes, functools.partial(__salt__["pvesdn.delete"], collection, name, vnet=vnet))],
        notes,
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
    ret, notes = _ret(name), []
    vnets = _read(ret, notes, "vnets")
    if vnets is None:
        return ret
    unmanaged = []  # (collection, id, vnet), subnets before their vnet
    for vnet, entry in sorted(vnets.items()):
        config = entry["config"]
        if not config or config.get("zone") != name:
            continue
        subnets = _read(ret, notes, "subnets", vnet)
        if subnets is None:
            return ret
        for subnet, sub_entry in sorted(subnets.items()):
            if sub_entry["config"] and subnet not in keep.get(vnet, ()):
                unmanaged.append(("subnets", subnet, vnet))
        if vnet not in keep:
            unmanaged.append(("vnets", vnet, None))
    if not unmanaged:
        return _done(ret, f"SDN zone {name} holds no object the pillar does not name", notes)
    names = [f"{collection[:-1]} {ident}" for collection, ident, _ in unmanaged]
    if not prune:
        return _done(
            ret, f"Unmanaged in SDN zone {name}, left alone (set evpn:prune: true to remove): {', '.join(names)}", notes
        )

    return _act(
        ret,
        {"deleted": names},
        f"Would delete from SDN zone {name}: {', '.join(names)}",
        f"Deleted from SDN zone {name} (pending until applied): {', '.join(names)}",
        [
            ({"deleted": [shown]}, functools.partial(__salt__["pvesdn.delete"], collection, ident, vnet=vnet))
            for shown, (collection, ident, vnet) in zip(names, unmanaged, strict=True)
        ],
        notes,
    )


def zone_unused(name):
    """
    No guest (virtual machine or container, on any node of the cluster) has a network device on
    a vnet of zone ``name``; otherwise the state fails naming each, in test mode too. Require it
    before removing the zone: a vnet a guest uses is not deleted, and nothing else of the
    cluster's that requires this state changes.
    """
    ret, notes = _ret(name), []
    vnets = _read(ret, notes, "vnets")
    if vnets is None:
        return ret
    ours = [vnet for vnet, entry in sorted(vnets.items()) if (entry["config"] or {}).get("zone") == name]
    try:
        used = __salt__["pvesdn.guests"](ours)
    except SaltException as err:
        ret.update(result=False, comment=f"Reading the guests' configurations failed: {err}")
        return ret
    if used:
        ret["result"] = False
        listed = "; ".join(f"vnet {vnet}: {', '.join(guests)}" for vnet, guests in sorted(used.items()))
        return _done(
            ret,
            f"Guests are attached to SDN zone {name}, so nothing of it is removed: {listed}. "
            "Move them to another bridge or remove them, then run this again",
            notes,
        )
    return _done(ret, f"No guest is attached to a vnet of SDN zone {name} ({', '.join(ours) or 'no vnet'})", notes)


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
            if pending or _run().get("would_change"):
                ret.update(result=None, changes={"applied": True}, comment="The SDN configuration would be applied")
            else:
                ret["comment"] = "Nothing to apply"
            return ret
        if not pending:
            __salt__["pvesdn.release"]()
            ret["comment"] = "Nothing to apply"
            return ret
        upid = __salt__["pvesdn.apply"]()
    except SaltException as err:
        return _fail(ret, err, {})
    ret.update(changes={"applied": True}, comment=f"SDN configuration applied ({upid})")
    return ret
