"""
The outputter of ``salt-run evpn.plan``: per node the states a converge would change, with
their changes and comment, and the node's problems, then a summary.

CLI Example:

.. code-block:: bash

    salt-run evpn.plan
"""

import salt.utils.yaml


def output(data, **kwargs):
    nodes = data.get("data", data)  # the runner's return, or its data alone
    lines, changing = [], 0
    for node_id, node in sorted(nodes.items()):
        changing += bool(node["changes"])
        summary = f"{len(node['changes'])} state(s) would change" if node["changes"] else "no change"
        lines.append(f"{node_id}: {summary}")
        for state_id, state in node["changes"].items():
            lines.append(f"  {state_id}: {state['comment']}")
            changes = salt.utils.yaml.safe_dump(state["changes"], default_flow_style=False).rstrip()
            lines += [f"      {line}" for line in changes.splitlines()]
        lines += [f"  ! {problem}" for problem in node["problems"]]
    problems = sum(len(node["problems"]) for node in nodes.values())
    lines.append(f"{changing} node(s) would change, {problems} problem(s)")
    return "\n".join(lines)
