"""
Kernel parameters set live and persisted in one file of /etc/sysctl.d.

Salt's own ``sysctl.present`` reports no changes in test mode; this state reports exactly what
it would change, reads every live value with one ``sysctl -a`` and writes only those that
differ. Keys use sysctl's notation: an interface name with a dot is written with a slash
(``net.ipv4.conf.eth0/100.rp_filter``). A key may be a glob, as sysctl.d(5) allows
(``net.ipv4.conf.*.rp_filter``): it is persisted as written, so systemd-sysctl applies it at boot
and to every interface as it appears, and set live on every key the running kernel has that it
matches (a key of its own in ``settings`` wins over it). The file is therefore the same whatever
interfaces exist when the state runs.

systemd-sysctl reads the files of /etc/sysctl.d, /run/sysctl.d and /usr/lib/sysctl.d in the order
of their names, a later file winning: name the file so that it sorts after those whose keys it
must override. The file starts with ``MARKER``; ``absent`` removes only such a file, or one that
holds exactly what ``managed`` wrote before it marked its files.

.. code-block:: yaml

    /etc/sysctl.d/zz-evpn.conf:
      sysctld.managed:
        - settings:
            net.ipv4.ip_forward: 1
            net.ipv4.conf.all.rp_filter: 0
            net.ipv4.conf.*.rp_filter: 0

    /etc/sysctl.d/90-evpn.conf:
      sysctld.absent:
        - settings: {net.ipv4.ip_forward: 1, ...}
"""

import fnmatch
import os

import salt.utils.atomicfile
from salt.exceptions import SaltException

__virtualname__ = "sysctld"
MARKER = "# Written by Salt (sysctld.managed): edits here are overwritten.\n"


def __virtual__():
    if "sysctl.show" in __salt__ and "sysctl.assign" in __salt__:
        return __virtualname__
    return (False, "sysctld: the sysctl execution module is not available")


def _lines(settings):
    return "".join(f"{key} = {settings[key]}\n" for key in sorted(settings))


def _content(settings):
    return MARKER + _lines(settings)


def _read(name):
    try:
        with open(name, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _live_settings(settings, live):
    """``settings`` for the running kernel: each glob replaced by the live keys it matches, and
    the globs that match none (as keys the kernel lacks)."""
    exact = {key: value for key, value in settings.items() if not _is_glob(key)}
    expanded, unmatched = dict(exact), []
    for pattern, value in settings.items():
        if not _is_glob(pattern):
            continue
        matches = [key for key in live if fnmatch.fnmatchcase(key, pattern) and key not in exact]
        expanded.update(dict.fromkeys(matches, value))
        if not matches:
            unmatched.append(pattern)
    return expanded, unmatched


def _is_glob(key):
    return any(char in key for char in "*?[")


def managed(name, settings):
    """
    The file ``name`` holds exactly ``settings`` ({key: value}) and the running kernel has them
    (a glob key: every live key it matches). A key the kernel does not have (its module not
    loaded), or a glob that matches none, fails the state, naming the key. Every change is
    computed first; when setting a value or writing the file fails, the changes made before are
    reported.
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    try:
        live = __salt__["sysctl.show"]()
        current = _read(name)
    except (SaltException, OSError) as err:
        ret.update(result=False, comment=f"Nothing was changed: {err}")
        return ret
    wanted, unmatched = _live_settings(settings, live)
    missing = sorted([key for key in wanted if key not in live] + unmatched)
    if missing and not __opts__["test"]:
        ret.update(result=False, comment=f"The kernel has no {', '.join(missing)} (is its module loaded?)")
        return ret
    differing = {
        key: {"old": live.get(key), "new": str(value)}
        for key, value in sorted(wanted.items())
        if str(live.get(key)) != str(value)
    }
    changes = {}
    if differing:
        changes["live"] = differing
    if current != _content(settings):
        changes["file"] = "created" if current is None else "updated"
    if not changes:
        ret["comment"] = f"{len(settings)} kernel parameters are set and persisted in {name}"
        return ret
    ret["changes"] = changes
    if __opts__["test"]:
        ret.update(result=None, comment=f"Kernel parameters would be set and persisted in {name}")
        return ret
    done = {}
    try:
        for key, change in differing.items():
            __salt__["sysctl.assign"](key, change["new"])
            done.setdefault("live", {})[key] = change
        if "file" in changes:
            with salt.utils.atomicfile.atomic_open(name, "w") as handle:
                handle.write(_content(settings))
            done["file"] = changes["file"]
    except (SaltException, OSError) as err:
        made = "" if done else "; nothing was changed"
        ret.update(result=False, changes=done, comment=f"Setting the kernel parameters of {name} failed: {err}{made}")
        return ret
    ret["comment"] = f"Kernel parameters set and persisted in {name}"
    return ret


def absent(name, settings=None):
    """
    No file ``name`` of ours: it is removed when ``managed`` wrote it, that is when it starts
    with ``MARKER`` or, written before ``managed`` marked its files, holds exactly ``settings``
    as ``managed`` wrote them. A file of someone else by that name is left as it is, and the
    comment says so. The live values stay as they are (the next boot applies what the other
    files say).
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    try:
        current = _read(name)
    except OSError as err:
        ret.update(result=False, comment=f"Nothing was changed: {name}: {err.strerror}")
        return ret
    if current is None:
        ret["comment"] = f"{name} is absent"
        return ret
    if not (current.startswith(MARKER) or (settings is not None and current == _lines(settings))):
        ret["comment"] = f"{name} was not written by sysctld.managed: left as it is"
        return ret
    ret["changes"] = {"file": "removed"}
    if __opts__["test"]:
        ret.update(result=None, comment=f"{name} would be removed")
        return ret
    try:
        os.unlink(name)
    except OSError as err:
        ret.update(result=False, changes={}, comment=f"Removing {name} failed: {err.strerror}; nothing was changed")
        return ret
    ret["comment"] = f"{name} was removed"
    return ret
