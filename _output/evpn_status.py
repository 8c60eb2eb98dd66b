"""
The outputter of ``salt-run evpn.status``: one row per node (its WireGuard peers with the age of
their last handshake, its BGP l2vpn evpn sessions with the routes received, its site's SDN),
problems marked ``!`` and listed under the table, then their count.

CLI Example:

.. code-block:: bash

    salt-run evpn.status
"""


def _age(seconds):
    return "never" if seconds is None else f"{seconds}s"


def _row(node_id, node):
    problems = node["problems"]
    wireguard = ", ".join(f"{peer['name']} {_age(peer['handshake_age'])}" for peer in node["wireguard"])
    bgp = ", ".join(f"{session['peer']} {session['state']} {session['routes']} routes" for session in node["bgp"])
    return [
        node_id + (" !" if problems else ""),
        node["site"],
        wireguard or "-",
        bgp or "-",
        node["sdn"] or "-",
    ]


def output(data, **kwargs):
    nodes = data.get("data", data)  # the runner's return, or its data alone
    rows = [["node", "site", "WireGuard peers (last handshake)", "BGP l2vpn evpn", "SDN"]]
    rows += [_row(node_id, node) for node_id, node in sorted(nodes.items())]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    problems = [f"{node_id}: {problem}" for node_id, node in sorted(nodes.items()) for problem in node["problems"]]
    lines += [f"! {problem}" for problem in problems]
    lines.append(f"{len(problems)} problem(s)" if problems else "no problems")
    return "\n".join(lines)
