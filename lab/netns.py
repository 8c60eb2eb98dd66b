"""
Lab nodes in Linux namespaces, for the lab and the tests.

A node is a network namespace plus a persistent private mount namespace and a UTS namespace:
its own /run (so wireguard-go's /run/wireguard/<if>.sock, FRR's and Salt's sockets are per
node), a fresh sysfs, its own /etc/resolv.conf (the internet namespace's DNS, never the
host's) and /etc/hosts (``Node.hosts_file``: names a test resolves without a DNS server), and
per-node folders bind-mounted over /etc/wireguard and /etc/sysctl.d.
Every tool then runs unmodified inside it (``Node.run``).

Safety (DEVELOPERS.md): nodes reach each other only through an "internet" namespace holding a
bridge with 203.0.113.1/24 and 198.51.100.1/24; veths are created directly inside the
namespaces, nothing appears in the host's network namespace, nothing is routed or NATed to it.
``Lab.close`` kills every process the lab started, by recorded PID (checked against its start
time), then unmounts and deletes every namespace it made. It runs even when a test fails.
"""

import contextlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import time

INTERNET_ADDRESSES = ("203.0.113.1/24", "198.51.100.1/24")
DNS_SERVER = "203.0.113.1"  # the internet namespace: the lab's DNS server, when it runs one
NODE_PRIVATE_DIRS = ("/etc/wireguard", "/etc/sysctl.d", "/etc/frr", "/etc/network")  # seeded from the host's


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


class Lab:
    """Namespaces and processes made for one lab or test, all removed by ``close``."""

    def __init__(self, state_dir, prefix):
        self.state = pathlib.Path(state_dir)
        self.prefix = prefix  # keeps namespace names apart from anything else on the host
        self.mounts = self.state / "mnt"
        self.namespaces = []
        self.processes = []  # (pid, start time, label)
        self.nodes = {}
        self.internet = None
        self.dns_records = self.dns_pid = None  # start_dns

    def __enter__(self):
        self.mounts.mkdir(parents=True, exist_ok=True)
        # unshare --mount=FILE refuses a file on a shared mount: give the folder its own mount.
        _run("mount", "--bind", str(self.mounts), str(self.mounts))
        _run("mount", "--make-private", str(self.mounts))
        self.internet = self._namespace("inet")
        _run("ip", "-n", self.internet, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", self.internet, "link", "set", "br0", "up")
        for address in INTERNET_ADDRESSES:
            _run("ip", "-n", self.internet, "addr", "add", address, "dev", "br0")
        _run("ip", "netns", "exec", self.internet, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        return self

    def __exit__(self, *exc):
        self.close()

    def _namespace(self, name):
        namespace = f"{self.prefix}{name}"
        _run("ip", "netns", "add", namespace)
        self.namespaces.append(namespace)
        self.save()
        _run("ip", "-n", namespace, "link", "set", "lo", "up")
        return namespace

    def node(self, name, public_address, gateway="203.0.113.1"):
        """A node with ``pub0`` on the internet bridge at ``public_address`` (a /24)."""
        namespace = self._namespace(name)
        veth = f"v{len(self.nodes)}"
        _run("ip", "-n", self.internet, "link", "add", veth, "type", "veth", "peer", "name", "pub0", "netns", namespace)
        _run("ip", "-n", self.internet, "link", "set", veth, "master", "br0", "up")
        _run("ip", "-n", namespace, "addr", "add", f"{public_address}/24", "dev", "pub0")
        _run("ip", "-n", namespace, "link", "set", "pub0", "up")
        _run("ip", "-n", namespace, "route", "add", "default", "via", gateway)
        node = Node(self, name, namespace)
        node.setup()
        self.nodes[name] = node
        self.save()
        return node

    def start_dns(self, records):
        """
        dnsmasq in the internet namespace, the DNS server of every node: it answers ``records``
        ({name: address}) and nothing else (no upstream, so no query leaves the lab), with TTL 0.
        ``set_dns`` changes the records.
        """
        self.dns_records = self.state / "dns-records"
        self._write_dns(records)
        process = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.internet,
                "dnsmasq",
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--no-poll",
                f"--addn-hosts={self.dns_records}",
                "--user=root",
                "--interface=br0",
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
        for _ in range(100):
            if (
                _run("ip", "netns", "exec", self.internet, "ss", "-lun", "sport = :53", check=False).stdout.count("\n")
                > 1
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("dnsmasq did not start")

    def _write_dns(self, records):
        self.dns_records.write_text("".join(f"{address} {name}\n" for name, address in sorted(records.items())))

    def dns(self):
        """The DNS records: {name: address}."""
        return dict(line.split()[::-1] for line in self.dns_records.read_text().splitlines())

    def set_dns(self, records):
        """Replace the DNS records; dnsmasq re-reads them at once (SIGHUP)."""
        self._write_dns(records)
        os.kill(self.dns_pid, signal.SIGHUP)

    def record(self, pid, label):
        self.processes.append((pid, _start_time(pid), label))
        self.save()

    def vm(self, node, name, bridge, address, gateway, mtu):
        """A "VM": a namespace whose eth0 (``address``, a CIDR) is a port of ``bridge`` in
        ``node``, with its default route through ``gateway``."""
        namespace = self._namespace(name)
        port = f"vm{len([n for n in self.namespaces if n.startswith(self.prefix + 'vm')])}"
        _run(
            "ip",
            "-n",
            namespace,
            "link",
            "add",
            "eth0",
            "mtu",
            str(mtu),
            "type",
            "veth",
            "peer",
            "name",
            port,
            "netns",
            node.namespace,
        )
        _run("ip", "-n", node.namespace, "link", "set", port, "mtu", str(mtu), "master", bridge, "up")
        _run("ip", "-n", namespace, "addr", "add", address, "dev", "eth0")
        _run("ip", "-n", namespace, "link", "set", "eth0", "up")
        _run("ip", "-n", namespace, "route", "add", "default", "via", gateway)
        self.save()
        return namespace

    def save(self):
        """What ``load`` needs to tear the lab down from another process (make lab-down)."""
        state = {
            "prefix": self.prefix,
            "namespaces": self.namespaces,
            "processes": self.processes,
            "nodes": {name: node.namespace for name, node in self.nodes.items()},
            "dns_records": str(self.dns_records) if self.dns_records else None,
            "dns_pid": self.dns_pid,
        }
        if self.state.is_dir():
            (self.state / "lab.json").write_text(json.dumps(state))

    @classmethod
    def load(cls, state_dir):
        """The lab recorded in ``state_dir``, to inspect, change or close."""
        state = json.loads((pathlib.Path(state_dir) / "lab.json").read_text())
        lab = cls(state_dir, state["prefix"])
        lab.namespaces = state["namespaces"]
        lab.processes = [tuple(process) for process in state["processes"]]
        lab.internet = f"{lab.prefix}inet"
        lab.nodes = {name: Node(lab, name, namespace) for name, namespace in state["nodes"].items()}
        lab.dns_records = pathlib.Path(state["dns_records"]) if state["dns_records"] else None
        lab.dns_pid = state["dns_pid"]
        return lab

    def close(self):
        """Kill our processes (SIGTERM, then SIGKILL), unmount, delete our namespaces."""
        ours = [(pid, start) for pid, start, _ in self.processes if alive(pid, start)]
        for pid, _ in ours:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(alive(pid, start) for pid, start in ours):
            time.sleep(0.05)
        for pid, start in ours:
            if alive(pid, start):
                os.kill(pid, signal.SIGKILL)
        for namespace in self.namespaces:  # a process left inside our namespaces is ours too
            for pid in _run("ip", "netns", "pids", namespace, check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError):  # it may end on its own meanwhile
                    os.kill(int(pid), signal.SIGKILL)
        for node in self.nodes.values():
            for path in (node.mount_ns, node.uts_ns):
                _run("umount", str(path), check=False)
        if self.mounts.exists():
            _run("umount", str(self.mounts), check=False)
        for namespace in self.namespaces:
            _run("ip", "netns", "del", namespace, check=False)
        self.namespaces.clear()
        shutil.rmtree(self.state, ignore_errors=True)


class Node:
    def __init__(self, lab, name, namespace):
        self.lab = lab
        self.name = name
        self.namespace = namespace
        self.mount_ns = lab.mounts / name
        self.uts_ns = lab.mounts / f"{name}.uts"
        self.root = lab.state / "nodes" / name  # the node's private folders
        self.hosts_file = self.root / "hosts"  # the node's /etc/hosts, rewritable from outside

    def setup(self):
        """The node's mount and UTS namespaces, made from the host's mount namespace."""
        resolv = self.root / "resolv.conf"
        resolv.parent.mkdir(parents=True, exist_ok=True)
        resolv.write_text(f"nameserver {DNS_SERVER}\noptions timeout:1 attempts:1\n")
        self.hosts_file.write_text(f"127.0.0.1 localhost\n127.0.1.1 {self.name}\n")
        binds = [f"mount --bind {resolv} /etc/resolv.conf", f"mount --bind {self.hosts_file} /etc/hosts"]
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
            binds.append(f"mount --bind {source} {target}")
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
                *binds,
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
        _run("ip", "-n", self.namespace, "addr", "flush", "dev", "pub0", "scope", "global")
        _run("ip", "-n", self.namespace, "addr", "add", f"{public_address}/24", "dev", "pub0")
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
        process = subprocess.Popen(
            self.command(*argv),
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            **kwargs,
        )
        log.close()
        self.lab.record(process.pid, f"{self.name}: {label}")
        return process

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
        for _ in range(100):
            if self.run("test", "-S", f"/run/wireguard/{interface}.sock", check=False).returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: wireguard-go did not create {interface}")
