"""
What the evpn states need of a Proxmox VE node, checked before anything is changed on it.

``pvenode.missing`` lists what this node lacks, each item saying how to fix it: ``pvesh`` (a
Proxmox VE node), a version the tree supports (8.4 and 9.x), FRR installed or available from the
apt sources, and an ``/etc/network/interfaces`` that sources ``/etc/network/interfaces.d/*``,
where PVE's SDN writes the vnets. It reads files only (the version from pve-manager's
``/usr/share/perl5/PVE/pvecfg.pm``, where ``pvesh get /version`` takes it from), so salt/evpn asks
it while rendering, at no pvesh call, and renders one failed state instead of anything else on a
node that lacks something.

Minion options, for emulated nodes (the lab): ``pve_version_file`` (default
``/usr/share/perl5/PVE/pvecfg.pm``) and ``network_interfaces_file`` (default
``/etc/network/interfaces``).

CLI Example:

.. code-block:: bash

    salt-call pvenode.missing
    salt-call pvenode.release
"""

import fnmatch
import re

import salt.utils.path
from salt.exceptions import CommandExecutionError

__virtualname__ = "pvenode"

VERSION_FILE = "/usr/share/perl5/PVE/pvecfg.pm"
INTERFACES_FILE = "/etc/network/interfaces"
SDN_INTERFACES = "/etc/network/interfaces.d/sdn"  # the file pve-network writes on every node
SOURCE_LINE = "source /etc/network/interfaces.d/*"
OLDEST = (8, 4)  # the releases the states are built and tested for: 8.4 up to the last 9.x
NEWEST_MAJOR = 9
RELEASE = re.compile(r"^sub release \{\s*return '([^']+)';", re.MULTILINE)


def __virtual__():
    # Loads everywhere: its job is to say what a node that is not (yet) fit lacks.
    return __virtualname__


def release():
    """
    The Proxmox VE release of this node (``"9.1"``), from pve-manager's ``PVE/pvecfg.pm``, the
    answer of ``pvesh get /version`` without a pvesh call. Raises ``CommandExecutionError`` when
    the file cannot be read or holds no release.

    CLI Example:

    .. code-block:: bash

        salt-call pvenode.release
    """
    path = __opts__.get("pve_version_file") or VERSION_FILE
    try:
        with open(path, encoding="utf-8") as handle:
            found = RELEASE.search(handle.read())
    except OSError as err:
        raise CommandExecutionError(f"{path}: {err.strerror}") from None
    if not found:
        raise CommandExecutionError(f"{path}: no 'sub release' (is this pve-manager's pvecfg.pm?)")
    return found.group(1)


def _release_problem():
    try:
        text = release()
    except CommandExecutionError as err:
        return f"the Proxmox VE version cannot be read ({err}): reinstall pve-manager"
    try:
        version = tuple(int(part) for part in text.split(".")[:2])
    except ValueError:
        return f"Proxmox VE release {text!r} is not a version number (read from pvecfg.pm)"
    if version < OLDEST:
        return (
            f"Proxmox VE {text} is older than this tree supports (8.4 and 9.x): upgrade the node to 8.4 "
            "(apt update && apt full-upgrade), or on to 9.x (pve8to9 --full, then Proxmox's upgrade guide)"
        )
    if version[0] > NEWEST_MAJOR:
        return f"Proxmox VE {text} is newer than this tree supports (8.4 and 9.x): use a release of it made for {text}"
    return None


def _sources_sdn_interfaces(path):
    """Whether a ``source`` line of ``path`` makes ifupdown2 read interfaces.d/sdn (it globs the
    pattern); None when the file cannot be read."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    for line in lines:
        words = line.split()
        if len(words) == 2 and words[0] == "source" and fnmatch.fnmatch(SDN_INTERFACES, words[1]):
            return True
    return False


def _frr_problem():
    try:
        if __salt__["pkg.version"]("frr") or __salt__["pkg.latest_version"]("frr", refresh=False):
            return None
    except CommandExecutionError as err:
        return f"whether FRR is installed cannot be told: {err}"
    return (
        "FRR is neither installed nor available from the apt sources: enable a Proxmox VE package "
        "repository (enterprise or pve-no-subscription), run apt update, then run this again"
    )


def missing():
    """
    What this node lacks for the evpn states, one sentence each saying how to fix it; empty when
    it has everything. A node without ``pvesh`` is not a Proxmox VE node, and that is the one
    thing said about it.

    CLI Example:

    .. code-block:: bash

        salt-call pvenode.missing
    """
    if not salt.utils.path.which("pvesh"):
        return [
            "pvesh is not installed: this is not a Proxmox VE node. Install Proxmox VE 8.4 or 9.x on it, "
            "or take it out of evpn:sites:<site>:nodes"
        ]
    problems = [_release_problem()]
    interfaces = __opts__.get("network_interfaces_file") or INTERFACES_FILE
    sourced = _sources_sdn_interfaces(interfaces)
    if not sourced:
        why = "cannot be read" if sourced is None else "does not source /etc/network/interfaces.d/*"
        problems.append(
            f"{interfaces} {why}, where Proxmox VE's SDN writes its vnets: add the line '{SOURCE_LINE}' at its end"
        )
    problems.append(_frr_problem())
    return [problem for problem in problems if problem]
