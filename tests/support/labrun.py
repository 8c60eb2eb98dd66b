"""lab/evpnlab.py as the Makefile runs it, in a state folder and namespace prefix of its own, and
the check that tear-down leaves nothing of it behind."""

import json
import os
import pathlib
import subprocess
import sys

from netns import Lab, alive
from support.federation import REPO


class LabRun:
    def __init__(self, name):
        self.state = pathlib.Path(f"/tmp/evpn-{name}{os.getpid() % 100000}")
        self.prefix = f"{name}{os.getpid() % 100000}-"
        self.environ = {**os.environ, "EVPN_LAB_STATE": str(self.state), "EVPN_LAB_PREFIX": self.prefix}
        self.recorded = None

    def __call__(self, *args, timeout=600):
        """``python lab/evpnlab.py *args``; its output is printed (pytest shows it on failure)."""
        proc = subprocess.run(
            [sys.executable, str(REPO / "lab" / "evpnlab.py"), *args],
            env=self.environ,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        print(proc.stdout, proc.stderr)
        if (self.state / "lab" / "lab.json").exists():
            self.recorded = Lab.load(self.state / "lab")
        return proc

    def down_leaves_nothing(self):
        """``down``, then: no namespace of ours, no mount, no process we recorded, no state."""
        down = self("down")
        namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
        assert down.returncode == 0, down.stderr
        assert self.prefix not in namespaces
        assert str(self.state) not in pathlib.Path("/proc/mounts").read_text()
        assert not self.state.exists()
        if self.recorded:
            assert [label for pid, start, label in self.recorded.processes if alive(pid, start)] == []


# The default lab of the lab tier (tests/lab/conftest.py builds it once per session).
default_lab = LabRun("lt")


def in_namespace(namespace, *argv, timeout=30):
    """A command in a lab namespace (``ip netns exec``), its output captured."""
    return subprocess.run(
        ["ip", "netns", "exec", namespace, *argv], capture_output=True, text=True, check=False, timeout=timeout
    )


def wg_endpoints(node):
    """{public key: endpoint} of the node's live WireGuard peers."""
    return dict(line.split("\t") for line in node.run("wg", "show", "wg0", "endpoints").stdout.splitlines())


def addresses_held_for(federation, node_id):
    """{node of another site: the address of the endpoint its live WireGuard peer for
    ``node_id`` holds}. Only the address: behind a NAT router the port is the one the router
    maps the node's packets to, and WireGuard roams to it."""
    key = public_key(federation.lab.nodes[node_id])
    site = federation.plan.nodes()[node_id].site
    return {
        peer: wg_endpoints(federation.lab.nodes[peer]).get(key, "").rpartition(":")[0]
        for peer in federation.built_nodes()
        if federation.plan.nodes()[peer].site != site
    }


def public_key(node):
    return node.run("wg", "show", "wg0", "public-key").stdout.strip()


def bgp_peers(node):
    return json.loads(node.run("vtysh", "-c", "show bgp l2vpn evpn summary json").stdout)["peers"]
