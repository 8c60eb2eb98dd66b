"""
A thin client for the Proxmox VE SDN API through ``pvesh`` on the node (root, JSON output).

``pvesh`` costs about a second per call, so each collection is read once per run (with
``--pending 1``: one read gives both the configured objects and whether anything waits to be
applied) and cached in ``__context__``; this module's own writes update the cache, an apply or a
failed write drops it. Writes send only what they are given. On PVE 9 the first write of a run
takes the cluster's SDN lock; every later write, the apply and the rollback pass its token. pvesh's errors become
``CommandExecutionError`` with pvesh's own message.

CLI Example:

.. code-block:: bash

    salt-call pvesdn.read zones
    salt-call pvesdn.pending
"""

import ipaddress
import json
import pathlib

from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "pvesdn"

COLLECTIONS = {
    "controllers": "/cluster/sdn/controllers",
    "zones": "/cluster/sdn/zones",
    "vnets": "/cluster/sdn/vnets",
    "subnets": "/cluster/sdn/vnets/{vnet}/subnets",
}
ID_KEYS = {"controllers": "controller", "zones": "zone", "vnets": "vnet", "subnets": "subnet"}
# Keys PVE adds to what it returns; not parameters of the object.
READ_ONLY = {"digest", "state", "pending", "id", "cidr", "network", "mask", "zone-type"}
CONTEXT = "pvesdn"


def __virtual__():
    if "pvesh.call" in __salt__:
        return __virtualname__
    return (False, "pvesdn: pvesh is not installed (not a Proxmox VE node)")


def _context():
    return __context__.setdefault(CONTEXT, {"reads": {}})


def _pvesh(command, path, params=None, output=True):
    return __salt__["pvesh.call"](command, path, params, output)


def _path(collection, vnet=None):
    if collection not in COLLECTIONS:
        raise SaltInvocationError(f"collection: {collection!r} is not one of {', '.join(COLLECTIONS)}")
    if collection == "subnets" and not vnet:
        raise SaltInvocationError("vnet: subnets are read per vnet")
    return COLLECTIONS[collection].format(vnet=vnet)


def _configured(item):
    """An object as configured (pending included), from PVE's --pending view."""
    if item.get("state") == "deleted":
        return None
    config = {k: v for k, v in item.items() if k not in READ_ONLY}
    for key, value in (item.get("pending") or {}).items():
        if value == "deleted":
            config.pop(key, None)
        else:
            config[key] = value
    return config


def read(collection, vnet=None):
    """
    The objects of a collection as configured, pending changes included, keyed by id, read once
    per run: ``{id: {"config": {param: value}, "pending": bool}}``. Deleted-but-not-applied
    objects have ``config`` None.

    collection
        ``controllers``, ``zones``, ``vnets`` or ``subnets``.

    vnet
        For ``subnets``: the vnet whose subnets to read.

    CLI Example:

    .. code-block:: bash

        salt-call pvesdn.read zones
        salt-call pvesdn.read subnets vnet=roz1
    """
    path = _path(collection, vnet)
    reads = _context()["reads"]
    if path not in reads:
        items = json.loads(_pvesh("get", path, {"pending": 1}) or "[]")
        key = ID_KEYS[collection]
        reads[path] = {item[key]: {"config": _configured(item), "pending": "state" in item} for item in items}
    return reads[path]


def pending():
    """
    Whether anything in the cluster's SDN configuration waits to be applied.

    CLI Example:

    .. code-block:: bash

        salt-call pvesdn.pending
    """
    collections = [read(c) for c in ("controllers", "zones", "vnets")]
    collections += [read("subnets", vnet=v) for v, o in read("vnets").items() if o["config"]]
    return any(entry["pending"] for objects in collections for entry in objects.values())


def supports_lock():
    """
    Whether this PVE has the global SDN lock (PVE 9 and later).

    CLI Example:

    .. code-block:: bash

        salt-call pvesdn.supports_lock
    """
    context = _context()
    if "supports_lock" not in context:
        result = __salt__["cmd.run_all"](
            ["pvesh", "usage", "/cluster/sdn/lock"],
            python_shell=False,
            ignore_retcode=True,
            output_loglevel="quiet",
        )
        context["supports_lock"] = result["retcode"] == 0
    return context["supports_lock"]


def _token_file():
    return pathlib.Path(__opts__["cachedir"], "pvesdn-lock-token")


def _forget_token():
    _context().pop("lock_token", None)
    _token_file().unlink(missing_ok=True)


def lock_token():
    """
    The SDN lock token this node holds, taking the lock first on PVE 9 (None on PVE 8). The
    token is kept in the minion's cache until an apply or a rollback releases the lock, so a
    later run (or a run killed between lock and apply) goes on with its own lock.

    CLI Example:

    .. code-block:: bash

        salt-call pvesdn.lock_token
    """
    context = _context()
    if context.get("lock_token") is None and supports_lock():
        path = _token_file()
        if path.exists():
            context["lock_token"] = path.read_text().strip()
        else:
            context["lock_token"] = json.loads(_pvesh("create", "/cluster/sdn/lock", {"allow-pending": 1}))
            path.write_text(context["lock_token"])
    return context.get("lock_token")


def _held_token():
    """The token of the lock this node holds, without taking one."""
    return lock_token() if _context().get("lock_token") or _token_file().exists() else None


def _write(command, path, params, retry=True):
    token = lock_token()
    try:
        _pvesh(command, path, {**params, "lock-token": token} if token else params, output=False)
    except CommandExecutionError as err:
        _context()["reads"].clear()  # what PVE holds now is unknown
        if token and retry and "invalid lock token" in str(err):
            _forget_token()  # a kept token whose lock someone released: take a new lock, once
            return _write(command, path, params, retry=False)
        raise
    return None


def _remember(collection, ident, config, vnet=None):
    """Keep a collection read this run in step with a write of ours: ``config`` None for a
    deleted object. A vnet created now has no subnets, so they need no read."""
    reads = _context()["reads"]
    objects = reads.get(_path(collection, vnet))
    if collection == "vnets" and config is not None and ident not in (objects or {}):
        reads[_path("subnets", ident)] = {}
    if objects is not None:
        objects[ident] = {"config": config, "pending": True}


def _subnet_id(cidr, vnet):
    """PVE's id of a subnet: <zone>-<network>-<prefixlen>."""
    network = ipaddress.ip_network(cidr, strict=False)
    zone = read("vnets")[vnet]["config"]["zone"]
    return f"{zone}-{network.network_address}-{network.prefixlen}"


def create(collection, ident, params, vnet=None):
    """
    Create an SDN object with ``params`` (PVE parameter names). Subnets are created by their
    CIDR (``ident``) in ``vnet``; PVE names them ``<zone>-<network>-<prefixlen>``.

    CLI Example:

    .. code-block:: bash

        salt-call pvesdn.create vnets roz1 '{"zone": "evpn", "tag": 11001}'
    """
    _write("create", _path(collection, vnet), {ID_KEYS[collection]: ident, **params})
    cached_id = _subnet_id(ident, vnet) if collection == "subnets" else ident
    _remember(collection, cached_id, dict(params, **({"vnet": vnet} if vnet else {})), vnet)


def update(collection, ident, params, delete=None, vnet=None):
    """
    Change the given parameters of an SDN object and remove those in ``delete``.

    CLI Example:

    .. code-block:: bash

        salt-call pvesdn.update zones evpn '{"mtu": 1370}' delete='["exitnodes-primary"]'
    """
    _write("set", f"{_path(collection, vnet)}/{ident}", {**params, "delete": ",".join(delete)} if delete else params)
    objects = _context()["reads"].get(_path(collection, vnet), {})
    if (objects.get(ident) or {}).get("config") is not None:
        config = {k: v for k, v in objects[ident]["config"].items() if k not in (delete or ())}
        _remember(collection, ident, {**config, **params}, vnet)


def delete(collection, ident, vnet=None):
    """
    Delete an SDN object.

    CLI Example:

    .. code-block:: bash

        salt-call pvesdn.delete vnets roz1
    """
    _write("delete", f"{_path(collection, vnet)}/{ident}", {})
    _remember(collection, ident, None, vnet)


def apply():
    """
    Apply the pending SDN configuration (``pvesh set /cluster/sdn``), releasing the lock this
    node holds. Returns the task's UPID.

    CLI Example:

    .. code-block:: bash

        salt-call pvesdn.apply
    """
    token = _held_token()
    output = _pvesh("set", "/cluster/sdn", {"lock-token": token} if token else {})
    _forget_token()  # released by the apply; kept until here for a rollback on failure
    _context()["reads"].clear()
    return json.loads(output.strip().splitlines()[-1])


def rollback():
    """
    Undo the changes not applied yet: on PVE 9 roll the configuration back to the running one
    and release the lock this node holds; on PVE 8 nothing can be undone and the changes stay
    pending. Returns whether a rollback happened.

    CLI Example:

    .. code-block:: bash

        salt-call pvesdn.rollback
    """
    token = _held_token()
    _context()["reads"].clear()
    if token is None:
        return False
    _pvesh("create", "/cluster/sdn/rollback", {"lock-token": token}, output=False)
    _forget_token()
    return True


def release():
    """
    Release the lock this node holds without applying (nothing was changed).

    CLI Example:

    .. code-block:: bash

        salt-call pvesdn.release
    """
    token = _held_token()
    if token:
        _pvesh("delete", "/cluster/sdn/lock", {"lock-token": token}, output=False)
        _forget_token()
