"""
Network namespaces for the firewall tests: a node with a bridge ``vmbr0`` and two neighbours on
it, commands run inside them, and packet probes that tell what the node's netfilter did with a
packet (accepted, dropped or rejected). Namespaces get unique names and are deleted, and every
process started here is killed by PID, when the context exits.
"""

import contextlib
import itertools
import os
import subprocess
import sys

PROBE = os.path.join(os.path.dirname(__file__), "netprobe.py")
_counter = itertools.count()


class Namespaces(contextlib.AbstractContextManager):
    def __init__(self):
        self.prefix = f"fwc{os.getpid()}-{next(_counter)}"
        self.created = []
        self.processes = []

    def add(self, name):
        namespace = f"{self.prefix}-{name}"
        subprocess.run(["ip", "netns", "add", namespace], check=True)
        self.created.append(namespace)
        self.run(namespace, "ip", "link", "set", "lo", "up")
        return namespace

    def run(self, namespace, *argv, stdin=None, check=True):
        return subprocess.run(
            ["ip", "netns", "exec", namespace, *argv], input=stdin, capture_output=True, text=True, check=check
        )

    def spawn(self, namespace, *argv):
        process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.processes.append(process)
        return process

    def __exit__(self, *exc):
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        for namespace in self.created:
            subprocess.run(["ip", "netns", "del", namespace], check=False)


def load(namespaces, namespace, steps):
    """Run a compile result's load steps in ``namespace``, in order, as the lab does."""
    for step in steps:
        namespaces.run(namespace, *step["argv"], stdin=step["stdin"])


class BridgedNode:
    """A PVE node ``host`` with bridge vmbr0 (172.16.1.2/24) and two namespaces on it:
    ``outside`` (port eth0) and ``nfvm`` (port tapXYZ, an unfirewalled guest), as
    pve-firewall's simulator places its zones."""

    HOST_IP = "172.16.1.2"

    def __init__(self, namespaces):
        self.ns = namespaces
        self.host = namespaces.add("node")
        run = namespaces.run
        run(self.host, "ip", "link", "add", "vmbr0", "type", "bridge", "mcast_snooping", "0")
        run(self.host, "ip", "addr", "add", f"{self.HOST_IP}/24", "dev", "vmbr0")
        run(self.host, "ip", "link", "set", "vmbr0", "up")
        self.zones = {"host": (self.host, "vmbr0")}
        for zone, port, address in (("outside", "eth0", "172.16.1.200"), ("nfvm", "tapXYZ", "172.16.1.201")):
            namespace = namespaces.add(zone)
            run(self.host, "ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", namespace)
            run(self.host, "ip", "link", "set", port, "master", "vmbr0", "up")
            run(namespace, "ip", "addr", "add", f"{address}/24", "dev", "eth0")
            run(namespace, "ip", "link", "set", "eth0", "up")
            run(namespace, "ip", "route", "add", "224.0.0.0/4", "dev", "eth0")
            self.zones[zone] = (namespace, "eth0")
        run(self.host, "ip", "route", "add", "224.0.0.0/4", "dev", "vmbr0")

    def place(self, zone, address):
        """``address`` belongs to ``zone`` and every other namespace reaches it on the link;
        returns the undo commands."""
        undo = []
        for other, (namespace, device) in self.zones.items():
            if other == zone:
                if address != self.HOST_IP or zone != "host":
                    self.ns.run(namespace, "ip", "addr", "add", f"{address}/32", "dev", device, check=False)
                    undo.append((namespace, "ip", "addr", "del", f"{address}/32", "dev", device))
            else:
                self.ns.run(namespace, "ip", "route", "replace", f"{address}/32", "dev", device)
                undo.append((namespace, "ip", "route", "del", f"{address}/32", "dev", device))
        return undo

    def probe(self, source_zone, source, dest_zone, dest, proto, dport, wait=1.5):
        """What happens to one new connection: "ACCEPT" (it reached a listener), "REJECT" (the
        sender got a reset or an ICMP error) or "DROP" (neither within ``wait`` seconds)."""
        multicast = dest.startswith("239.")
        undo = []
        if not multicast:
            undo += self.place(dest_zone, dest)
        if not (source_zone == "host" and source == self.HOST_IP):
            undo += self.place(source_zone, source)
        try:
            dst_ns, dst_dev = self.zones[dest_zone]
            src_ns, _ = self.zones[source_zone]
            listener = self.ns.spawn(
                dst_ns, sys.executable, PROBE, "listen", proto, dest, str(dport), str(wait + 1), dst_dev
            )
            ready = listener.stdout.readline().strip()
            if ready != "ready":
                raise RuntimeError(f"listener did not start: {ready} {listener.stderr.read()}")
            sent = self.ns.run(src_ns, sys.executable, PROBE, "send", proto, source, dest, str(dport), str(wait))
            sent = sent.stdout.strip()
            if sent not in ("ok", "sent"):  # the sender gave up or was refused: nothing arrives any more
                listener.kill()
            received = listener.communicate(timeout=wait + 5)[0].split()
        finally:
            for command in reversed(undo):
                self.ns.run(*command, check=False)
            for namespace, _ in self.zones.values():  # the next probe may place these addresses elsewhere
                self.ns.run(namespace, "ip", "neigh", "flush", "all")
        if "got" in received:
            return "ACCEPT"
        return "REJECT" if sent == "refused" else "DROP"
