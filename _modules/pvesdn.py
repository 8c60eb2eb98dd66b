"""
The Proxmox VE SDN objects of this node's cluster: read from the files PVE keeps them in,
written through ``pvesh``.

Reads come from ``sdn/{controllers,zones,vnets,subnets}.cfg`` (the pending configuration) and
``sdn/.running-config`` (the running one) in the cluster's configuration folder (``/etc/pve``;
see ``pvesh.config_dir``), parsed once per run the way PVE parses them, with the pending view
``pvesh get ... --pending 1`` would give and the digest of each file. A file that cannot be read
or parsed is read through ``pvesh`` instead (:func:`fallback_reason` says why), never guessed.
A converged cluster thus costs no pvesh call.

Writes, the lock, the apply and the rollback are ``pvesh`` calls; after a write the files are
read again. An update passes the digest of the file as this run read it, so a change made
meanwhile by someone else is refused. On PVE 9 the first write of a run takes the cluster's SDN
lock; every later write, the apply and the rollback pass its token. pvesh's errors become
``CommandExecutionError`` with pvesh's own message.

CLI Example:

.. code-block:: bash

    salt-call pvesdn.read zones
    salt-call pvesdn.pending
"""

import json
import logging
import pathlib
import re

from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

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
RUNNING_CONFIG = "sdn/.running-config"
NO_LOCK = "No 'create' handler defined for '/cluster/sdn/lock'"  # pvesh on PVE 8: no SDN lock
CONTEXT = "pvesdn"
GUEST_CONFIGS = {"qemu-server": "name", "lxc": "hostname"}  # guest config folder: the key naming the guest
NETWORK_DEVICE = re.compile(r"^net\d+:\s*(\S+)", re.MULTILINE)


def __virtual__():
    if "pvesh.call" in __salt__:
        return __virtualname__
    return (False, "pvesdn: pvesh is not installed (not a Proxmox VE node)")


def _context():
    return __context__.setdefault(CONTEXT, {"pvesh_reads": {}})


def _pvesh(command, path, params=None, output=True):
    return __salt__["pvesh.call"](command, path, params, output)


def _known(collection):
    if collection not in COLLECTIONS:
        raise SaltInvocationError(f"collection: {collection!r} is not one of {', '.join(COLLECTIONS)}")
    return collection


def _path(collection, vnet=None):
    _known(collection)
    if collection == "subnets" and not vnet:
        raise SaltInvocationError("vnet: subnets are read per vnet")
    return COLLECTIONS[collection].format(vnet=vnet)


def _read_files():
    """Every SDN file as PVE reads it: {collection: {"items": its --pending 1 view, "digest"}}, or
    for a collection whose file (or the running configuration) cannot be read, why not."""
    read_config, sdn = __salt__["pvesh.read_config"], __utils__
    try:
        running = sdn["pve_sdn_config.parse_running"](read_config(RUNNING_CONFIG))
    except CommandExecutionError as err:
        return dict.fromkeys(COLLECTIONS, str(err))
    files = {}
    for collection in COLLECTIONS:
        name = f"sdn/{collection}.cfg"
        try:
            text = read_config(name)
            objects = sdn["pve_sdn_config.parse"](collection, text, name)
            digest = sdn["pve_sdn_config.digest"](text)
            items = sdn["pve_sdn_config.listing"](collection, objects, digest, running, "pending")
        except (CommandExecutionError, ValueError) as err:
            files[collection] = str(err)
            continue
        files[collection] = {"items": items, "digest": digest}
    return files


def _files():
    context = _context()
    if "files" not in context:
        context["files"] = _read_files()
    return context["files"]


def fallback_reason(collection):
    """
    Why this run reads ``collection`` through pvesh rather than from its file; None when it
    reads the file.

    CLI Example:

    .. code-block:: bash

        salt-call pvesdn.fallback_reason zones
    """
    problem = _files()[_known(collection)]
    return problem if isinstance(problem, str) else None


def _pending_items(collection, vnet=None):
    """PVE's ``--pending 1`` view of a collection (subnets: of one vnet, or of all when read
    from the file)."""
    from_files = _files()[collection]
    if isinstance(from_files, dict):
        return [item for item in from_files["items"] if vnet is None or item.get("vnet") == vnet]
    path = _path(collection, vnet)
    reads = _context()["pvesh_reads"]
    if path not in reads:
        log.info("pvesdn: reading %s through pvesh: %s", path, from_files)
        reads[path] = json.loads(_pvesh("get", path, {"pending": 1}) or "[]")
    return reads[path]


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
    The objects of a collection as configured, pending changes included, keyed by id:
    ``{id: {"config": {param: value}, "pending": bool}}``. Deleted-but-not-applied objects have
    ``config`` None.

    collection
        ``controllers``, ``zones``, ``vnets`` or ``subnets``.

    vnet
        For ``subnets``: the vnet whose subnets to read.

    CLI Example:

    .. code-block:: bash

        salt-call pvesdn.read zones
        salt-call pvesdn.read subnets vnet=roz1
    """
    _path(collection, vnet)
    key = ID_KEYS[collection]
    return {
        item[key]: {"config": _configured(item), "pending": "state" in item}
        for item in _pending_items(collection, vnet)
    }


def _guest_bridges(text, name_key):
    """The bridges a guest configuration attaches its network devices to, in its current and
    pending sections (not its snapshots), and the guest's name (``name_key``)."""
    sections = re.split(r"^\[([^\]]*)\]\s*$", text, flags=re.MULTILINE)
    kept = "".join(
        sections[:1] + [body for title, body in zip(sections[1::2], sections[2::2], strict=True) if title == "PENDING"]
    )
    bridges = set()
    for device in NETWORK_DEVICE.findall(kept):
        options = dict(part.partition("=")[::2] for part in device.split(","))
        bridges.add(options.get("bridge"))
    name = re.search(rf"^{name_key}:\s*(\S+)", sections[0], re.MULTILINE)
    return bridges - {None}, name and name.group(1)


def guests(vnets):
    """
    The guests (virtual machines and containers of every node of the cluster) with a network
    device on one of ``vnets``, as their configurations in ``nodes/<node>/qemu-server`` and
    ``nodes/<node>/lxc`` say, pending changes included: ``{vnet: ["<vmid> (<name>) on <node>"]}``,
    only the vnets that have any.

    CLI Example:

    .. code-block:: bash

        salt-call pvesdn.guests '[roz1]'
    """
    found = {}
    for node in __salt__["pvesh.list_config"]("nodes"):
        for folder, name_key in GUEST_CONFIGS.items():
            for file in __salt__["pvesh.list_config"](f"nodes/{node}/{folder}"):
                if not file.endswith(".conf"):
                    continue
                text = __salt__["pvesh.read_config"](f"nodes/{node}/{folder}/{file}")
                bridges, name = _guest_bridges(text, name_key)
                guest = f"{file[: -len('.conf')]}{f' ({name})' if name else ''} on {node}"
                for vnet in sorted(bridges & set(vnets)):
                    found.setdefault(vnet, []).append(guest)
    return found


def pending():
    """
    Whether anything in the cluster's SDN configuration waits to be applied.

    CLI Example:

    .. code-block:: bash

        salt-call pvesdn.pending
    """
    views = [_pending_items(c) for c in ("controllers", "zones", "vnets")]
    if isinstance(_files()["subnets"], dict):
        views.append(_pending_items("subnets"))
    else:  # through pvesh, per vnet
        views += [_pending_items("subnets", vnet) for vnet, entry in read("vnets").items() if entry["config"]]
    return any("state" in item for items in views for item in items)


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
    if context.get("lock_token") is None and context.get("has_lock", True):
        path = _token_file()
        if path.exists():
            context["lock_token"] = path.read_text().strip()
        else:
            try:
                context["lock_token"] = json.loads(_pvesh("create", "/cluster/sdn/lock", {"allow-pending": 1}))
            except CommandExecutionError as err:
                if NO_LOCK not in str(err):
                    raise
                context["has_lock"] = False  # PVE 8: asking costs the same call as taking it on 9
                return None
            path.write_text(context["lock_token"])
    return context.get("lock_token")


def _held_token():
    """The token of the lock this node holds, without taking one."""
    return lock_token() if _context().get("lock_token") or _token_file().exists() else None


def _forget_reads(*paths):
    """After a write: the files are read again; of the pvesh reads, those of ``paths`` (all of
    them when no path is given: what PVE holds then is unknown)."""
    context = _context()
    context.pop("files", None)
    reads = context["pvesh_reads"]
    for path in paths or list(reads):
        reads.pop(path, None)


def _write(command, path, params, collection_path, retry=True):
    token = lock_token()
    try:
        _pvesh(command, path, {**params, "lock-token": token} if token else params, output=False)
    except CommandExecutionError as err:
        _forget_reads()
        if token and retry and "invalid lock token" in str(err):
            _forget_token()  # a kept token whose lock someone released: take a new lock, once
            return _write(command, path, params, collection_path, retry=False)
        raise
    _forget_reads(collection_path)
    return None


def _digest_as_read(collection):
    """The digest of the collection's file as this run last read it (None when read through
    pvesh, whose pending view has none, or not read since the last write)."""
    from_files = _context().get("files", {}).get(collection)
    return from_files["digest"] if isinstance(from_files, dict) else None


def create(collection, ident, params, vnet=None):
    """
    Create an SDN object with ``params`` (PVE parameter names). Subnets are created by their
    CIDR (``ident``) in ``vnet``; PVE names them ``<zone>-<network>-<prefixlen>``.

    CLI Example:

    .. code-block:: bash

        salt-call pvesdn.create vnets roz1 '{"zone": "evpn", "tag": 11001}'
    """
    path = _path(collection, vnet)
    _write("create", path, {ID_KEYS[collection]: ident, **params}, path)


def update(collection, ident, params, delete=None, vnet=None):
    """
    Change the given parameters of an SDN object and remove those in ``delete``; refused by
    PVE when the collection's file changed since this run read it.

    CLI Example:

    .. code-block:: bash

        salt-call pvesdn.update zones evpn '{"mtu": 1370}' delete='["exitnodes-primary"]'
    """
    path = _path(collection, vnet)
    digest = _digest_as_read(collection)
    params = {**params, **({"delete": ",".join(delete)} if delete else {}), **({"digest": digest} if digest else {})}
    _write("set", f"{path}/{ident}", params, path)


def delete(collection, ident, vnet=None):
    """
    Delete an SDN object.

    CLI Example:

    .. code-block:: bash

        salt-call pvesdn.delete vnets roz1
    """
    path = _path(collection, vnet)
    _write("delete", f"{path}/{ident}", {}, path)


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
    _forget_reads()
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
    _forget_reads()
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
