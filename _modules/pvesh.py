"""
``pvesh``, the Proxmox VE API on the node's command line, as the ``pvesdn`` and ``pvefw``
modules call it: as root, ``--output-format json``, each value of a list parameter as its own
option, pvesh's own message in ``CommandExecutionError`` when it fails.

CLI Example:

.. code-block:: bash

    salt-call pvesh.call get /cluster/firewall/options
"""

import salt.utils.path
from salt.exceptions import CommandExecutionError

__virtualname__ = "pvesh"


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
