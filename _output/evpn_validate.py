"""
The outputter of ``salt-run evpn.validate``: every error, then every warning, one a line with its
pillar key path, then a count.

CLI Example:

.. code-block:: bash

    salt-run evpn.validate
"""


def output(data, **kwargs):
    report = data.get("data", data)  # the runner's return, or its data alone
    lines = [f"error: {error}" for error in report["errors"]]
    lines += [f"warning: {warning}" for warning in report["warnings"]]
    errors, warnings = len(report["errors"]), len(report["warnings"])
    lines.append(f"{errors} error(s), {warnings} warning(s)" if errors or warnings else "the evpn pillar is valid")
    return "\n".join(lines)
