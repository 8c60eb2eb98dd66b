"""
Kernel parameters set live and persisted in one file of /etc/sysctl.d.

Salt's own ``sysctl.present`` reports no changes in test mode; this state reports exactly what
it would change, reads every live value with one ``sysctl -a`` and writes only those that
differ. Keys use sysctl's notation: an interface name with a dot is written with a slash
(``net.ipv4.conf.eth0/100.rp_filter``).

.. code-block:: yaml

    /etc/sysctl.d/90-evpn.conf:
      sysctld.managed:
        - settings:
            net.ipv4.ip_forward: 1
            net.ipv4.conf.all.rp_filter: 0
"""

import os

from salt.exceptions import CommandExecutionError

__virtualname__ = "sysctld"


def __virtual__():
    if "sysctl.show" in __salt__ and "sysctl.assign" in __salt__:
        return __virtualname__
    return (False, "sysctld: the sysctl execution module is not available")


def _content(settings):
    return "".join(f"{key} = {settings[key]}\n" for key in sorted(settings))


def managed(name, settings):
    """
    The file ``name`` holds exactly ``settings`` ({key: value}) and the running kernel has them.
    A key the kernel does not have (its module not loaded) fails the state, naming the key.
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    salt = __salt__
    live = salt["sysctl.show"]()
    missing = sorted(key for key in settings if key not in live)
    if missing and not __opts__["test"]:
        ret.update(result=False, comment=f"The kernel has no {', '.join(missing)} (is its module loaded?)")
        return ret
    differing = {
        key: {"old": live.get(key), "new": str(value)}
        for key, value in sorted(settings.items())
        if str(live.get(key)) != str(value)
    }
    current = None
    if os.path.exists(name):
        with open(name, encoding="utf-8") as handle:
            current = handle.read()
    if differing:
        ret["changes"]["live"] = differing
    if current != _content(settings):
        ret["changes"]["file"] = "created" if current is None else "updated"
    if not ret["changes"]:
        ret["comment"] = f"{len(settings)} kernel parameters are set and persisted in {name}"
        return ret
    if __opts__["test"]:
        ret.update(result=None, comment=f"Kernel parameters would be set and persisted in {name}")
        return ret
    try:
        for key, change in differing.items():
            salt["sysctl.assign"](key, change["new"])
    except CommandExecutionError as err:
        ret.update(result=False, comment=str(err))
        return ret
    if "file" in ret["changes"]:
        with open(name, "w", encoding="utf-8") as handle:
            handle.write(_content(settings))
    ret["comment"] = f"Kernel parameters set and persisted in {name}"
    return ret
