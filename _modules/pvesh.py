"""
``pvesh``, the Proxmox VE API on the node's command line, as the ``pvesdn`` and ``pvefw``
modules call it: as root, ``--output-format json``, each value of a list parameter as its own
option, pvesh's own message in ``CommandExecutionError`` when it fails; and the files of the
cluster's configuration that pvesh's handlers read, for reads that need no pvesh (about a
second a call).

The configuration folder is ``/etc/pve``, or the minion option ``pve_config_dir``.

CLI Example:

.. code-block:: bash

    salt-call pvesh.call get /cluster/firewall/options
    salt-call pvesh.read_config sdn/zones.cfg
"""

import os

import salt.utils.path
from salt.exceptions import CommandExecutionError

__virtualname__ = "pvesh"
CONFIG_DIR = "/etc/pve"


def __virtual__():
    if salt.utils.path.which("pvesh"):
        return __virtualname__
    return (False, "pvesh: pvesh is not installed (not a Proxmox VE node)")


def call(command, path, params=None, output=True):
    """
    Run ``pvesh <command> <path>`` with ``params`` (``{name: value or [values]}``); returns its
    standard output, JSON unless ``output`` is False (for calls that print nothing to parse).

    CLI Example:

    .. code-block:: bash

        salt-call pvesh.call get /cluster/sdn/zones '{"pending": 1}'
        salt-call pvesh.call usage /cluster/sdn/lock output=False
    """
    args = ["pvesh", command, path]
    for key, value in (params or {}).items():
        for item in value if isinstance(value, list) else [value]:
            args += [f"--{key}", str(item)]
    if output:
        args += ["--output-format", "json"]
    result = __salt__["cmd.run_all"](
        args,
        python_shell=False,
        ignore_retcode=True,
        output_loglevel="debug",
    )
    if result["retcode"] != 0 or "TASK ERROR" in result["stderr"]:
        raise CommandExecutionError(result["stderr"].strip() or f"pvesh {command} {path} failed")
    return result["stdout"]


def config_dir():
    """
    The folder of the cluster's configuration that PVE's handlers read: ``pve_config_dir`` of
    the minion's configuration, else ``/etc/pve``.

    CLI Example:

    .. code-block:: bash

        salt-call pvesh.config_dir
    """
    return __opts__.get("pve_config_dir") or CONFIG_DIR


def read_config(path):
    """
    The text of a file of the cluster's configuration (``path`` relative to
    :func:`config_dir`), empty when the file does not exist, as PVE reads a missing file.
    Raises ``CommandExecutionError`` when the folder holds no cluster's configuration (PVE
    keeps a ``nodes`` folder there) or the file cannot be read.

    CLI Example:

    .. code-block:: bash

        salt-call pvesh.read_config sdn/zones.cfg
    """
    root = config_dir()
    if not os.path.isdir(os.path.join(root, "nodes")):
        raise CommandExecutionError(f"{root} holds no cluster configuration (no nodes folder; see pve_config_dir)")
    try:
        with open(os.path.join(root, path), encoding="utf-8", newline="") as handle:  # bytes as PVE digests them
            return handle.read()
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as err:
        raise CommandExecutionError(f"{os.path.join(root, path)}: {err}") from err


def list_config(path):
    """
    The names in a folder of the cluster's configuration (``path`` relative to
    :func:`config_dir`), sorted; empty when the folder does not exist. ``nodes`` lists the
    cluster's nodes (PVE keeps a folder per node). Raises ``CommandExecutionError`` as
    :func:`read_config` does.

    CLI Example:

    .. code-block:: bash

        salt-call pvesh.list_config nodes
        salt-call pvesh.list_config nodes/pve-roz1/qemu-server
    """
    root = config_dir()
    if not os.path.isdir(os.path.join(root, "nodes")):
        raise CommandExecutionError(f"{root} holds no cluster configuration (no nodes folder; see pve_config_dir)")
    try:
        return sorted(os.listdir(os.path.join(root, path)))
    except FileNotFoundError:
        return []
    except OSError as err:
        raise CommandExecutionError(f"{os.path.join(root, path)}: {err}") from err
