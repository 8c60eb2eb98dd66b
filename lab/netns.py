"""
Lab hosts in Linux namespaces, for the lab and the tests.

The emulated internet is a namespace (``inet``) holding a bridge with 203.0.113.1/24 and
198.51.100.1/24, the internet's router. Everything else hangs off a bridge: hosts and routers on
the internet's, nodes and routers behind a NAT router on that router's LAN bridge (``lan0``).

- A router (``Lab.router``): ``wan0`` on its upstream bridge, ``lan0`` a bridge for its LAN,
  forwarding, masquerade out of ``wan0`` and UDP port forwards (``Router.forward``) into its LAN,
  all in nftables of its own namespace; no hairpin NAT, as most ISP routers.
- A node (``Lab.node``): a network namespace plus a persistent private mount namespace and a UTS
  namespace: its own /run (wireguard-go's, FRR's and Salt's sockets are per node), a fresh sysfs,
  its own /etc/resolv.conf (the lab's DNS server, never the host's) and /etc/hosts
  (``Node.hosts_file``), and per-node folders bind-mounted over /etc/wireguard, /etc/sysctl.d,
  /etc/frr and /etc/network. Every tool then runs unmodified inside it (``Node.run``).
- A VM (``Lab.vm``): a namespace whose eth0 is a port of a bridge in a node.

Safety: veths are created directly inside the lab's namespaces, nothing appears in the host's
network namespace, nothing is routed or NATed to it; NAT happens only between lab namespaces.
``Lab.close`` kills every process the lab started, by recorded PID (checked against its start
time), then unmounts and deletes every namespace it made; ``lab.json`` in the state folder
records all of it (and each namespace's role, site, node and addresses), so another process can
inspect or close the lab.
"""

import contextlib
import ipaddress
import json
import os
import pathlib
import shutil
import signal
import subprocess
import time

INTERNET_ADDRESSES = ("203.0.113.1/24", "198.51.100.1/24")
DNS_SERVER = "203.0.113.1"  # where nodes send DNS queries unless the lab says otherwise
NODE_PRIVATE_DIRS = ("/etc/wireguard", "/etc/sysctl.d", "/etc/frr", "/etc/network")  # seeded from the host's
UPLINK = "eth0"  # a node's or host's interface toward its router
LAB_BIN = pathlib.Path(__file__).resolve().parent / "bin"
NAT_TABLE = "evpnlab"


def _run(*argv, check=True, **kwargs):
    return subprocess.run(argv, check=check, capture_output=True, text=True, **kwargs)


def _start_time(pid):
    """A live process's start time in clock ticks (a PID is only ours while this still
    matches); None once it is gone or a zombie waiting to be reaped."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]


def alive(pid, start):
    """Whether the process recorded as (``pid``, ``start``) still runs."""
    return start is not None and _start_time(pid) == start


def internet_gateway(address):
    """The internet's router for a public address (the .1 of its documentation range)."""
    ip = ipaddress.ip_address(address)
    return next(
        str(ipaddress.ip_interface(a).ip) for a in INTERNET_ADDRESSES if ip in ipaddress.ip_interface(a).network
    )


class Lab:
    """Namespaces and processes made for one lab or test, all removed by ``close``."""

    def __init__(self, state_dir, prefix, dns_server=DNS_SERVER):
        self.state = pathlib.Path(state_dir)
        self.prefix = prefix  # keeps namespace names apart from anything else on the host
        self.mounts = self.state / "mnt"
        self.dns_server = dns_server
        self.namespaces = []
        self.hosts = {}  # namespace -> {"role", "site", "node", "addresses": {interface: [CIDR]}}
        self.processes = []  # (pid, start time, label)
        self.nodes = {}
        self.routers = {}
        self.bridges = {}  # namespace -> the bridge that downstream hosts join
        self.internet = f"{prefix}inet"
        self.dns_records = self.dns_pid = None  # start_dns

    def __enter__(self):
        self.mounts.mkdir(parents=True, exist_ok=True)
        # unshare --mount=FILE refuses a file on a shared mount: give the folder its own mount.
        _run("mount", "--bind", str(self.mounts), str(self.mounts))
        _run("mount", "--make-private", str(self.mounts))
        self._namespace("inet", "internet")
        self._bridge(self.internet, "br0", INTERNET_ADDRESSES)
        return self

    def __exit__(self, *exc):
        self.close()

    def _namespace(self, name, role, site=None, node=None):
        namespace = f"{self.prefix}{name}"
        _run("ip", "netns", "add", namespace)
        self.namespaces.append(namespace)
        self.hosts[namespace] = {"role": role, "site": site, "node": node, "addresses": {}}
        self.save()
        _run("ip", "-n", namespace, "link", "set", "lo", "up")
        return namespace

    def _bridge(self, namespace, bridge, addresses):
        _run("ip", "-n", namespace, "link", "add", bridge, "type", "bridge")
        _run("ip", "-n", namespace, "link", "set", bridge, "up")
        for address in addresses:
            _run("ip", "-n", namespace, "addr", "add", address, "dev", bridge)
        _run("ip", "netns", "exec", namespace, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.bridges[namespace] = bridge
        self.hosts[namespace]["addresses"][bridge] = list(addresses)

    def _uplink(self, namespace, upstream, ifname, address, gateway):
        """``ifname`` in ``namespace``, a veth whose other end is a port of ``upstream``'s bridge,
        with ``address`` (CIDR) and the default route through ``gateway``."""
        upstream = f"{self.prefix}{upstream}"
        veth = f"v{len(self.namespaces)}"
        _run("ip", "-n", upstream, "link", "add", veth, "type", "veth", "peer", "name", ifname, "netns", namespace)
        _run("ip", "-n", upstream, "link", "set", veth, "master", self.bridges[upstream], "up")
        _run("ip", "-n", namespace, "addr", "add", address, "dev", ifname)
        _run("ip", "-n", namespace, "link", "set", ifname, "up")
        _run("ip", "-n", namespace, "route", "add", "default", "via", gateway)
        self.hosts[namespace]["addresses"][ifname] = [address]
        self.save()

    def host(self, name, role, address, gateway=None):
        """A plain host on the internet at ``address`` (a /24): the lab's DNS server, ``www``."""
        namespace = self._namespace(name, role)
        self._uplink(namespace, "inet", UPLINK, f"{address}/24", gateway or internet_gateway(address))
        return namespace

    def router(self, name, site, upstream, wan, gateway, lan):
        """A NAT router: ``wan0`` at ``wan`` (CIDR) on ``upstream``'s bridge, ``lan0`` a bridge
        for ``lan`` (its first address is the router's), masquerade out of ``wan0``."""
        lan = ipaddress.ip_network(lan)
        namespace = self._namespace(name, "router", site=site)
        self._bridge(namespace, "lan0", [f"{next(lan.hosts())}/{lan.prefixlen}"])
        self._uplink(namespace, upstream, "wan0", wan, gateway)
        nft = (
            f"table ip {NAT_TABLE} {{\n"
            "  chain prerouting { type nat hook prerouting priority dstnat; policy accept; }\n"
            "  chain postrouting { type nat hook postrouting priority srcnat; policy accept;\n"
            '    oifname "wan0" masquerade; }\n'
            "}\n"
        )
        _run("ip", "netns", "exec", namespace, "nft", "-f", "-", input=nft)
        router = Router(self, name, namespace)
        self.routers[name] = router
        self.save()
        return router

    def node(self, name, address, gateway=None, upstream="inet", site=None, role="node"):
        """A node with ``eth0`` at ``address`` (CIDR, or an address on the internet: /24) on
        ``upstream``'s bridge. ``role`` says what it stands for in lab.json (the master runs in
        a node too: Salt wants a /run of its own)."""
        cidr = address if "/" in address else f"{address}/24"
        namespace = self._namespace(name, role, site=site, node=name if role == "node" else None)
        self._uplink(namespace, upstream, UPLINK, cidr, gateway or internet_gateway(cidr.split("/")[0]))
        node = Node(self, name, namespace)
        node.setup(cidr.split("/")[0])
        self.nodes[name] = node
        self.save()
        return node

    def start_dns(self, records, namespace=None):
        """
        dnsmasq, the DNS server of every node (in ``namespace``, default the internet's): it
        answers ``records`` ({name: address}) and nothing else (no upstream, so no query leaves
        the lab), with TTL 0. ``set_dns`` changes the records.
        """
        namespace = namespace or self.internet
        self.dns_records = self.state / "dns-records"
        self._write_dns(records)
        interface = "br0" if namespace == self.internet else UPLINK
        process = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                namespace,
                "dnsmasq",
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--no-poll",
                f"--addn-hosts={self.dns_records}",
                "--user=root",
                f"--interface={interface}",
                "--bind-interfaces",
                "--local-ttl=0",
                f"--pid-file={self.state / 'dnsmasq.pid'}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        self.record(process.pid, "dnsmasq")
        self.dns_pid = process.pid
        self.save()
        wait_until(
            lambda: (
                _run("ip", "netns", "exec", namespace, "ss", "-lun", "sport = :53", check=False).stdout.count("\n") > 1
            ),
            "dnsmasq did not start",
        )

    def _write_dns(self, records):
        self.dns_records.write_text("".join(f"{address} {name}\n" for name, address in sorted(records.items())))

    def dns(self):
        """The DNS records: {name: address}."""
        return dict(line.split()[::-1] for line in self.dns_records.read_text().splitlines())

    def set_dns(self, records):
        """Replace the DNS records; dnsmasq re-reads them at once (SIGHUP)."""
        self._write_dns(records)
        os.kill(self.dns_pid, signal.SIGHUP)

    def spawn(self, namespace, *argv, label, log_path=None, **kwargs):
        """Start a long-running program in a plain namespace; recorded for teardown."""
        log = open(log_path or os.devnull, "ab")
        process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, *argv], stdout=log, stderr=log, stdin=subprocess.DEVNULL, **kwargs
        )
        log.close()
        self.record(process.pid, label)
        return process

    def record(self, pid, label):
        self.processes.append((pid, _start_time(pid), label))
        self.save()

    def vm(self, node, name, bridge, address, gateway, mtu, site=None):
        """A "VM": a namespace whose eth0 (``address``, a CIDR) is a port of ``bridge`` in
        ``node``, with its default route through ``gateway``."""
        namespace = self._namespace(name, "vm", site=site, node=node.name)
        self.hosts[namespace].update(
            port=f"vm{sum(1 for h in self.hosts.values() if h['role'] == 'vm')}",
            bridge=bridge,
            guest={"address": address, "gateway": gateway, "mtu": mtu},
        )
        self.start_vm(namespace)
        return namespace

    def start_vm(self, namespace):
        """The VM's eth0 plugged into its bridge (as PVE makes a VM's tap at its start), its
        address and route, and its talk to its gateway."""
        host = self.hosts[namespace]
        node, guest, port = self.nodes[host["node"]], host["guest"], host["port"]
        mtu = str(guest["mtu"])
        _run(
            "ip",
            "-n",
            namespace,
            "link",
            "add",
            "eth0",
            "mtu",
            mtu,
            "type",
            "veth",
            "peer",
            "name",
            port,
            "netns",
            node.namespace,
        )
        _run("ip", "-n", node.namespace, "link", "set", port, "mtu", mtu, "master", host["bridge"], "up")
        _run("ip", "-n", namespace, "addr", "add", guest["address"], "dev", "eth0")
        host["addresses"]["eth0"] = [guest["address"]]
        _run("ip", "-n", namespace, "link", "set", "eth0", "up")
        _run("ip", "-n", namespace, "route", "add", "default", "via", guest["gateway"])
        # A VM talks now and then: its node's answers keep the guest's neighbour entry, from which
        # FRR advertises the guest's MAC-IP route. A silent guest loses that entry to the kernel's
        # neighbour gc (one table for all namespaces, past gc_thresh1) and, with no subnet route
        # in the lab (no VRF), becomes unreachable from other sites.
        self.spawn(namespace, "ping", "-q", "-i", "15", guest["gateway"], label=f"{namespace}: talks to its gateway")

    def kill_rest(self, namespace, timeout=5):
        """SIGKILL to every process left inside one of our namespaces (ours too: a child of a
        recorded one), until none is left, not even as a zombie still to be reaped (a new
        salt-minion takes one for the old instance), or ``timeout`` seconds passed."""
        deadline = time.monotonic() + timeout
        killed = set()
        while True:
            pids = {int(pid) for pid in _run("ip", "netns", "pids", namespace, check=False).stdout.split()}
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):  # it may end on its own meanwhile
                    os.kill(pid, signal.SIGKILL)
            killed |= pids
            if not any(pathlib.Path(f"/proc/{pid}").exists() for pid in killed) or time.monotonic() > deadline:
                return
            time.sleep(0.05)

    def stop(self, labels):
        """Kill the recorded processes whose label starts with one of ``labels`` (SIGTERM, then
        SIGKILL after 5 s)."""
        _kill(
            [
                (pid, start)
                for pid, start, label in self.processes
                if label.startswith(tuple(labels)) and alive(pid, start)
            ]
        )

    def save(self):
        """lab.json: what ``load`` needs to inspect or tear down the lab from another process."""
        state = {
            "prefix": self.prefix,
            "namespaces": self.namespaces,
            "hosts": self.hosts,
            "processes": self.processes,
            "nodes": {name: node.namespace for name, node in self.nodes.items()},
            "routers": {name: router.namespace for name, router in self.routers.items()},
            "bridges": self.bridges,
            "dns_server": self.dns_server,
            "dns_records": str(self.dns_records) if self.dns_records else None,
            "dns_pid": self.dns_pid,
        }
        if self.state.is_dir():
            (self.state / "lab.json").write_text(json.dumps(state, indent=1))

    @classmethod
    def load(cls, state_dir):
        """The lab recorded in ``state_dir``, to inspect, change or close."""
        state = json.loads((pathlib.Path(state_dir) / "lab.json").read_text())
        lab = cls(state_dir, state["prefix"], state["dns_server"])
        lab.namespaces = state["namespaces"]
        lab.hosts = state["hosts"]
        lab.processes = [tuple(process) for process in state["processes"]]
        lab.nodes = {name: Node(lab, name, namespace) for name, namespace in state["nodes"].items()}
        lab.routers = {name: Router(lab, name, namespace) for name, namespace in state["routers"].items()}
        lab.bridges = state["bridges"]
        lab.dns_records = pathlib.Path(state["dns_records"]) if state["dns_records"] else None
        lab.dns_pid = state["dns_pid"]
        return lab

    def close(self):
        """Kill our processes (SIGTERM, then SIGKILL), unmount, delete our namespaces."""
        _kill([(pid, start) for pid, start, _ in self.processes if alive(pid, start)])
        for namespace in self.namespaces:
            self.kill_rest(namespace)
        for node in self.nodes.values():
            for path in (node.mount_ns, node.uts_ns):
                _run("umount", str(path), check=False)
        if self.mounts.exists():
            _run("umount", str(self.mounts), check=False)
        for namespace in self.namespaces:
            _run("ip", "netns", "del", namespace, check=False)
        self.namespaces.clear()
        shutil.rmtree(self.state, ignore_errors=True)


def _kill(processes):
    """SIGTERM to each (pid, start time), SIGKILL to those alive 5 s later."""
    for pid, _ in processes:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(alive(pid, start) for pid, start in processes):
        time.sleep(0.05)
    for pid, start in processes:
        if alive(pid, start):
            os.kill(pid, signal.SIGKILL)


def wait_until(condition, failure, timeout=5.0, interval=0.05):
    """Poll ``condition`` until it is true; RuntimeError(``failure``) after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise RuntimeError(failure)


class Router:
    """A NAT router of the lab: port forwards into its LAN, a WAN address that can change."""

    def __init__(self, lab, name, namespace):
        self.lab = lab
        self.name = name
        self.namespace = namespace

    def forward(self, port, address, to_port):
        """UDP ``port`` arriving on ``wan0`` for the router's own address goes to
        ``address``:``to_port`` on the LAN."""
        rule = (
            f'add rule ip {NAT_TABLE} prerouting iifname "wan0" fib daddr type local '
            f"udp dport {port} dnat to {address}:{to_port}\n"
        )
        _run("ip", "netns", "exec", self.namespace, "nft", "-f", "-", input=rule)

    def wan(self):
        """The WAN address, without its prefix length."""
        output = _run("ip", "-4", "-o", "-n", self.namespace, "addr", "show", "dev", "wan0").stdout
        return output.split()[3].split("/")[0]

    def renumber(self, address, gateway):
        """A new WAN address (a /24 on the internet), as when the ISP reconnects the line: the
        router's connection tracking starts over (masquerade and port forwards use the new one)."""
        _run("ip", "-n", self.namespace, "addr", "flush", "dev", "wan0", "scope", "global")
        _run("ip", "-n", self.namespace, "addr", "add", f"{address}/24", "dev", "wan0")
        _run("ip", "-n", self.namespace, "route", "replace", "default", "via", gateway)
        _run("ip", "netns", "exec", self.namespace, "conntrack", "-F")
        # Nobody answers for the old address any more: the internet forgets where it was.
        for old in self.lab.hosts[self.namespace]["addresses"]["wan0"]:
            _run("ip", "-n", self.lab.internet, "neigh", "flush", "to", old.split("/")[0], check=False)
        self.lab.hosts[self.namespace]["addresses"]["wan0"] = [f"{address}/24"]
        self.lab.save()


class Node:
    def __init__(self, lab, name, namespace):
        self.lab = lab
        self.name = name
        self.namespace = namespace
        self.mount_ns = lab.mounts / name
        self.uts_ns = lab.mounts / f"{name}.uts"
        self.root = lab.state / "nodes" / name  # the node's private folders
        self.hosts_file = self.root / "hosts"  # the node's /etc/hosts, rewritable from outside

    def setup(self, address):
        """The node's mount and UTS namespaces, made from the host's mount namespace."""
        resolv = self.root / "resolv.conf"
        resolv.parent.mkdir(parents=True, exist_ok=True)
        resolv.write_text(f"nameserver {self.lab.dns_server}\noptions timeout:1 attempts:1\n")
        # The node's name resolves to its own address, as PVE's installer writes /etc/hosts (the
        # firewall daemons take the node's network from it).
        self.hosts_file.write_text(f"127.0.0.1 localhost\n{address} {self.name}\n")
        commands = [f"mount --bind {resolv} /etc/resolv.conf", f"mount --bind {self.hosts_file} /etc/hosts"]
        for target in NODE_PRIVATE_DIRS:
            source = self.root / target.strip("/").replace("/", "-")
            if pathlib.Path(target).is_dir():
                shutil.copytree(target, source, symlinks=True, copy_function=shutil.copy)
                shutil.copystat(target, source)
                stat = pathlib.Path(target).stat()
                for path in (source, *source.rglob("*")):
                    os.lchown(path, stat.st_uid, stat.st_gid)
            else:
                source.mkdir(parents=True, exist_ok=True)
                pathlib.Path(target).mkdir(parents=True, exist_ok=True)
            commands.append(f"mount --bind {source} {target}")
        self.mount_ns.touch()
        self.uts_ns.touch()
        script = "; ".join(
            [
                "set -e",
                f"hostname {self.name}",
                "umount -l /sys",
                "mount -t sysfs sysfs /sys",
                f"mount -t tmpfs -o mode=755,size=64m tmpfs-{self.name} /run",
                f"mount -t tmpfs -o mode=1777,size=64m tmpfs-{self.name} /var/tmp",
                "mkdir -p /run/wireguard /run/salt /run/network",
                *commands,
            ]
        )
        _run(
            "nsenter",
            f"--net=/run/netns/{self.namespace}",
            "unshare",
            f"--mount={self.mount_ns}",
            f"--uts={self.uts_ns}",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
        )

    def move(self, public_address, gateway):
        """A new public address (a /24 on the internet bridge), as when the ISP hands one out."""
        _run("ip", "-n", self.namespace, "addr", "flush", "dev", UPLINK, "scope", "global")
        _run("ip", "-n", self.namespace, "addr", "add", f"{public_address}/24", "dev", UPLINK)
        _run("ip", "-n", self.namespace, "route", "replace", "default", "via", gateway)

    def command(self, *argv, cwd="/"):
        """argv run inside the node, in ``cwd`` (nsenter execs it: a background PID is the
        program's)."""
        return [
            "nsenter",
            f"--net=/run/netns/{self.namespace}",
            f"--mount={self.mount_ns}",
            f"--uts={self.uts_ns}",
            f"--wd={cwd}",
            "--",
            *argv,
        ]

    def run(self, *argv, check=True, cwd="/", **kwargs):
        return _run(*self.command(*argv, cwd=cwd), check=check, **kwargs)

    def spawn(self, *argv, label, log_path=None, **kwargs):
        """Start a long-running program inside the node; the lab records it for teardown."""
        log = open(log_path or os.devnull, "ab")
        process = subprocess.Popen(self.command(*argv), stdout=log, stderr=log, stdin=subprocess.DEVNULL, **kwargs)
        log.close()
        self.lab.record(process.pid, f"{self.name}: {label}")
        return process

    def flush_links(self):
        """Every link but the loopback and the uplink deleted, as a power cycle leaves a node:
        WireGuard, the SDN's bridges and VXLAN devices, the guests' ports (and with them the
        guests' eth0)."""
        links = json.loads(_run("ip", "-n", self.namespace, "-j", "link", "show").stdout)
        for link in links:
            if link["ifname"] not in ("lo", UPLINK):
                _run("ip", "-n", self.namespace, "link", "del", link["ifname"], check=False)

    def wg_quick_up(self, interface="wg0"):
        """``wg-quick up``, as wg-quick@<interface> does at boot, from the persisted
        configuration; its wireguard-go (lab/bin/wireguard-go-background) recorded. Returns
        wg-quick's result."""
        env = {**os.environ, "WG_QUICK_USERSPACE_IMPLEMENTATION": str(LAB_BIN / "wireguard-go-background")}
        result = self.run("wg-quick", "up", interface, check=False, env=env)
        pid = self.run("cat", f"/run/wireguard/{interface}.pid", check=False).stdout.strip()
        if pid:
            self.lab.record(int(pid), f"{self.name}: wireguard-go {interface}")
        return result

    def start_wireguard(self, interface="wg0"):
        """wireguard-go in the foreground (so its PID is known), once its UAPI socket exists.
        The kernel here has no WireGuard module; real PVE nodes use the kernel's."""
        self.spawn(
            "wireguard-go",
            "-f",
            interface,
            label=f"wireguard-go {interface}",
            log_path=self.root / f"wireguard-go-{interface}.log",
        )
        wait_until(
            lambda: self.run("test", "-S", f"/run/wireguard/{interface}.sock", check=False).returncode == 0,
            f"{self.name}: wireguard-go did not create {interface}",
        )
