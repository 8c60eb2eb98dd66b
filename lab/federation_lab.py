"""
A federation in a lab, built from a plan (lab/topology.py: the pillar and the topology file read
together): the emulated internet with its DNS server (dnsmasq answering every endpoint name), the
host ``www`` (lab/answer.py) and the salt-master (with the checkout's reactor), as a VPS would run it;
per site its NAT routers with the port forwards its nodes' endpoints need (or nodes on public
addresses), one emulated PVE cluster shared by the site's nodes (lab/bin/pvesh, the PVE version
of the topology); per node wireguard-go and a salt-minion whose ``pvesh`` is the emulator; after a
converge, what the SDN apply rendered for each node (lab/dataplane.py) and the guests.

``make lab`` (lab/evpnlab.py), the integration tests and the benchmarks all build through here.
Everything is recorded under the state folder, so that another process can change or close it.
"""

import contextlib
import ipaddress
import json
import os
import pathlib
import re
import shutil
import sys
import tempfile

import yaml

import dataplane
import firewalld
import topology
from emulated_pve import emulated_pve_environ, emulated_pve_files
from netns import Lab, internet_gateway, wait_until
from salt_daemons import SALT_BIN, SaltMaster, start_minion

LAB = pathlib.Path(__file__).resolve().parent
BEACON_INTERVAL = 1  # seconds, in the lab's pillar copy (5 in the checkout's)
STAND_IN_TCP = (22, 8006)  # sshd, pveproxy
STAND_IN_UDP = (5405,)  # corosync
# What PVE installs in /usr/lib/sysctl.d: pve-firewall.conf (proxmox/pve-firewall, src/pve-firewall-sysctl.conf
# at 0b14268; GPL-3.0, one line of settings).
PVE_SYSCTL_FILES = {"pve-firewall.conf": "# Enables source route verification\nnet.ipv4.conf.all.rp_filter = 2\n"}


def lab_pillar(source, destination, extra=None):
    """A copy of the pillar tree ``source`` for the lab, with the files of the tree ``extra``
    over it, the endpoint beacon every second."""
    shutil.copytree(source, destination, dirs_exist_ok=True)
    if extra is not None:
        shutil.copytree(extra, destination, dirs_exist_ok=True)
    init = pathlib.Path(destination) / "evpn" / "init.sls"
    text = init.read_text()
    if "- interval: 5" in text:
        init.write_text(text.replace("- interval: 5", f"- interval: {BEACON_INTERVAL}"))
    return pathlib.Path(destination)


class Federation:
    """The lab's federation: ``build`` it, then ``converge``, ``load_dataplane``, ``start_guests``;
    ``add_node`` and ``add_site`` grow it. ``Federation.load(state)`` finds a running one."""

    def __init__(self, lab, state, topology_file, pillar_root):
        self.lab = lab
        self.state = pathlib.Path(state)
        self.topology_file = pathlib.Path(topology_file)
        self.pillar_root = pathlib.Path(pillar_root)
        self.clusters = self.state / "clusters"
        self.plan = topology.load(self.topology_file, topology.render_pillar(self.pillar_root))
        self.master = None
        self.events = self.state / "events.log"

    @classmethod
    def load(cls, state):
        """The federation recorded in ``state`` by a ``build`` of another process."""
        recorded = json.loads((pathlib.Path(state) / "federation.json").read_text())
        federation = cls(Lab.load(pathlib.Path(state) / "lab"), state, recorded["topology"], recorded["pillar"])
        federation.master = federation._master_of(federation.lab.nodes["master"])
        return federation

    def _master_of(self, node):
        return SaltMaster(node, self.plan.internet["master"], self.state, pillar_root=self.pillar_root)

    def refresh_plan(self):
        """The plan again, after the lab's pillar changed."""
        self.plan = topology.load(self.topology_file, topology.render_pillar(self.pillar_root))

    def built_nodes(self):
        """The ids of the federation's nodes (the pillar's) that the lab has built, sorted: a
        node taken out of the pillar is no longer one, though its namespace stays."""
        return sorted(self.lab.nodes.keys() & self.plan.nodes(in_pillar=True).keys())

    def running_guests(self):
        """The guests of the plan whose namespace the lab has made."""
        return [g for g in self.plan.guests(self.built_nodes()) if self.lab.prefix + g.namespace in self.lab.hosts]

    # --- building -----------------------------------------------------------------------------

    def build(self, guests=()):
        """Internet hosts, master, sites with their routers, nodes, wireguard-go and minions, for
        every site and node the pillar has; ``guests``: extra minions (not nodes of the
        federation) next to the master. Returns when every minion answers."""
        (self.state / "federation.json").write_text(
            json.dumps({"topology": str(self.topology_file), "pillar": str(self.pillar_root)})
        )
        self.clusters.mkdir(parents=True, exist_ok=True)
        internet = self.plan.internet
        dns = self.lab.host("dns", "dns", internet["dns"])
        self.lab.start_dns(self.plan.dns, namespace=dns)
        www = self.lab.host("www", "www", internet["www"])
        self.lab.spawn(
            www,
            sys.executable,
            str(LAB / "answer.py"),
            "--serve",
            str(self.www_log),
            "--tcp",
            "80",
            "--icmp",
            label="www",
        )
        master_node = self.lab.node("master", internet["master"], role="master")
        self.master = self._master_of(master_node)
        self.master.start()
        nodes = self.plan.nodes(in_pillar=True)
        for site in self.plan.sites.values():
            if any(node.site == site.name for node in nodes.values()):
                self._routers(site)
        for node in nodes.values():
            self._node(node)
        for guest in guests:
            start_minion(master_node, guest, internet["master"], self.state)
        self.master.wait_for([*nodes, *guests])
        master_node.spawn(
            str(SALT_BIN / "salt-run"),
            "-c",
            str(self.master.config_dir),
            "state.event",
            "pretty=False",
            label="event listener",
            log_path=self.events,
        )

    @property
    def www_log(self):
        return self.state / "www.log"

    def _routers(self, site):
        cluster = self.clusters / site.name
        cluster.mkdir(exist_ok=True)
        (cluster / "pvesim-version").write_text(site.pve)
        for router in site.routers:
            self.lab.router(
                router.namespace,
                site.name,
                router.upstream,
                f"{router.wan}/{router.wan_prefix}",
                router.gateway,
                router.lan,
            )

    def _node(self, node):
        """A lab node for ``node`` of the plan: on its LAN (port forwards through its site's
        routers) or the internet, wireguard-go, a minion whose pvesh is its site's cluster."""
        site = self.plan.sites[node.site]
        made = self.lab.node(node.id, f"{node.address}/{node.prefix}", node.gateway, node.upstream, site.name)
        # A member of its site's cluster from the start, as `pvecm add` makes it: /etc/pve/nodes/<node>.
        (self.clusters / node.site / "nodes" / node.pve_node).mkdir(parents=True, exist_ok=True)
        routers = site.routers
        for index, router in enumerate(routers):
            target = routers[index + 1].wan if index + 1 < len(routers) else node.address
            to_port = node.public_port if index + 1 < len(routers) else self.plan.wireguard_port
            self.lab.routers[router.namespace].forward(node.public_port, target, to_port)
        made.start_wireguard("wg0")
        made.run("sh", "-c", "cat > /etc/network/interfaces", input=dataplane.INTERFACES)
        self._start_services(node, made)
        return made

    def _start_services(self, node, made):
        """What runs on a PVE node besides FRR and WireGuard: stand-ins for sshd, pveproxy and
        corosync (what the firewall lets through answers), the salt-minion, whose pvesh is the
        emulator and whose /etc/pve is its site's cluster folder (as on PVE, pve-manager tells
        the version), and the firewall daemon (what pve-firewall or proxmox-firewall does: load
        the compiled firewall on change)."""
        made.spawn(
            sys.executable,
            str(LAB / "answer.py"),
            "--serve",
            str(made.root / "answers.log"),
            "--tcp",
            ",".join(map(str, STAND_IN_TCP)),
            "--udp",
            ",".join(map(str, STAND_IN_UDP)),
            label="sshd, pveproxy and corosync stand-ins",
        )
        options = {
            "pve_config_dir": str(self.clusters / node.site),
            **emulated_pve_files(made.root, self.plan.sites[node.site].pve, False),
        }
        start_minion(made, node.id, self.plan.internet["master"], self.state, self.environ(node), options)
        made.spawn(
            sys.executable,
            str(LAB / "firewalld.py"),
            "--log",
            str(made.root / "firewall.log"),
            label="firewall daemon",
            env=self.environ(node),
        )

    def environ(self, node):
        return emulated_pve_environ(self.clusters, node.site, node.pve_node)

    # --- converging ---------------------------------------------------------------------------

    def converge(self, report=print, progress=None):
        """``salt-run state.orchestrate orch.evpn``; ``progress`` gets each step as it starts and
        completes, ``report`` one line per step at the end. Returns whether every step succeeded."""
        ret = self.master.run("state.orchestrate", "orch.evpn", progress=progress)
        steps = next(iter(ret.get("data", {}).values()), {})
        if not isinstance(steps, dict):
            report(f"FAIL orch.evpn: {steps}")
            return False
        for step in sorted(steps.values(), key=lambda s: s.get("__run_num__", 0)):
            seconds = step.get("duration", 0) / 1000
            outcome = "ok  " if step["result"] else "FAIL"
            report(f"{outcome} {step['__id__']} ({seconds:.1f} s): {step['comment'].splitlines()[0]}")
        return bool(steps) and all(step["result"] for step in steps.values())

    def load_dataplane(self, node_ids=None, report=print):
        """Each node renders and runs what its cluster's running SDN configuration holds for it,
        as PVE's per-node network reload does (lab/dataplane.py)."""
        nodes = self.plan.nodes()
        for node_id in node_ids or self.built_nodes():
            node = nodes[node_id]
            made = self.lab.nodes[node_id]
            made.run("pvesh", "set", f"/nodes/{node.pve_node}/network", env=self.environ(node))
            rendered = self.clusters / node.site / "nodes" / node.pve_node / "etc"
            result = dataplane.load(made, rendered, dataplane.router_mac(node.wireguard))
            report(f"{node_id}: FRR and ifupdown2 loaded what the SDN apply rendered for it")
            if result is not None and result.returncode != 0:
                report(f"{node_id}: ifreload -a: {result.stderr.strip()}")

    def start_guests(self, node_ids, report=print):
        for guest in self.plan.guests(node_ids):
            self.lab.vm(
                self.lab.nodes[guest.node],
                guest.namespace,
                guest.vnet,
                guest.address,
                guest.gateway,
                self.plan.mtu,
                site=self.plan.nodes()[guest.node].site,
            )
            report(f"{guest.namespace}: {guest.address} on {guest.node}'s {guest.vnet}, gateway {guest.gateway}")

    def firewall_rounds(self, node_id):
        """What the node's firewall daemon did, oldest first (lab/firewalld.py's log)."""
        log = self.lab.nodes[node_id].root / "firewall.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []

    def wait_for_firewall(self, node_ids, timeout=30):
        """Until every node's firewall daemon has loaded (or unloaded) what its cluster's files
        hold now; returns {node: that round}."""
        nodes = self.plan.nodes()
        wanted = {n: firewalld.watched(self.clusters / nodes[n].site, nodes[n].pve_node) for n in node_ids}

        def loaded():
            return all(self.firewall_rounds(n) and self.firewall_rounds(n)[-1]["digest"] == wanted[n] for n in node_ids)

        wait_until(loaded, f"the firewall daemons of {node_ids} did not load their files within {timeout} s", timeout)
        return {n: self.firewall_rounds(n)[-1] for n in node_ids}

    # --- growing ------------------------------------------------------------------------------

    def add_node(self, node_id):
        """The node's pillar entry from the topology into the lab's pillar copy (one new entry
        in its site's file), then the node itself. Returns the site file written."""
        node = self.plan.nodes()[node_id]
        if node_id in self.lab.nodes:
            raise topology.TopologyError([f"{node_id}: the lab has this node already"])
        site_file = self._site_file(node.site)
        if node.pillar is not None:
            document = yaml.safe_load(site_file.read_text())
            document["evpn"]["sites"][node.site]["nodes"][node_id] = node.pillar
            site_file.write_text(yaml.safe_dump(document, sort_keys=False))
        self._grow([node_id])
        return site_file

    def add_site(self, site_name):
        """The site's pillar file from the topology into the lab's pillar copy, then its routers
        and nodes. Returns the site file written."""
        site = self.plan.sites[site_name]
        if any(self.plan.nodes()[n].site == site_name for n in self.lab.nodes if n in self.plan.nodes()):
            raise topology.TopologyError([f"{site_name}: the lab has this site already"])
        site_file = self.pillar_root / "evpn" / "sites" / f"{site_name}.sls"
        if site.pillar is not None:
            site_file.write_text(yaml.safe_dump({"evpn": {"sites": {site_name: site.pillar}}}, sort_keys=False))
        self.refresh_plan()
        self._routers(self.plan.sites[site_name])
        self._grow(list(self.plan.sites[site_name].nodes))
        return site_file

    def _site_file(self, site_name):
        for path in sorted((self.pillar_root / "evpn" / "sites").glob("*.sls")):
            document = yaml.safe_load(path.read_text()) or {}
            if site_name in ((document.get("evpn") or {}).get("sites") or {}):
                return path
        raise topology.TopologyError([f"no file of {self.pillar_root}/evpn/sites holds site {site_name}"])

    def _grow(self, node_ids):
        self.refresh_plan()
        self.lab.set_dns({**self.plan.dns, **self.lab.dns()})  # names that moved keep their address
        for node_id in node_ids:
            self._node(self.plan.nodes()[node_id])
        members = list(self.plan.nodes(in_pillar=True))
        self.master.wait_for(members)
        self.master.salt("-L", ",".join(members), "saltutil.refresh_pillar", "wait=True")

    # --- removing -----------------------------------------------------------------------------

    def take_out(self, node_id=None, site_name=None):
        """A node's entry out of its site's file in the lab's pillar copy, or a site's whole
        file, as an operator removes them. Returns the ids of the nodes taken out."""
        if site_name is not None:
            node_ids = [n for n in self.built_nodes() if self.plan.nodes()[n].site == site_name]
            self._site_file(site_name).unlink()
        else:
            node_ids = [node_id]
            site_file = self._site_file(self.plan.nodes()[node_id].site)
            document = yaml.safe_load(site_file.read_text())
            del document["evpn"]["sites"][self.plan.nodes()[node_id].site]["nodes"][node_id]
            site_file.write_text(yaml.safe_dump(document, sort_keys=False))
        return node_ids

    def remove(self, node_ids):
        """The orchestration of docs/operations.md for nodes already out of the pillar, then what
        a PVE node does after an SDN apply (reload FRR and the network) and its firewall daemon.
        Returns the orchestration's steps by id."""
        ret = self.master.run("state.orchestrate", "orch.evpn", f"pillar={json.dumps({'removed': node_ids})}")
        self.refresh_plan()
        (steps,) = ret["data"].values()
        remaining = self.built_nodes()
        self.load_dataplane(remaining, report=lambda line: None)
        self.wait_for_firewall(remaining)
        return {step["__id__"]: step for step in steps.values()}

    def mentions(self, needles):
        """Where anything of the federation mentions one of ``needles`` (addresses, keys, as
        whole words): every file of the remaining clusters, each remaining node's ``wg show``,
        FRR's running configuration, loaded nftables, ipsets and iptables, the master's mine.
        Returns ``[(where, line)]``."""
        found = re.compile("|".join(rf"(?<![\w.+/]){re.escape(n)}(?![\w/])" for n in needles))
        texts = {}
        for site in sorted({self.plan.nodes()[n].site for n in self.built_nodes()}):
            for path in sorted((self.clusters / site).rglob("*")):
                if path.is_file() and path.name != "pvesh.log":  # the emulator's call log, not /etc/pve
                    texts[str(path.relative_to(self.clusters))] = path.read_text(errors="replace")
        for node_id in self.built_nodes():
            node = self.lab.nodes[node_id]
            for what, argv in (
                ("wg show", ["wg", "show", "wg0", "dump"]),
                ("FRR", ["vtysh", "-c", "show running-config"]),
                ("nftables", ["nft", "list", "ruleset"]),
                ("ipset", ["ipset", "list"]),
                ("iptables", ["iptables-save"]),
            ):
                texts[f"{node_id}: {what}"] = node.run(*argv, check=False).stdout
        texts["the master's mine"] = json.dumps(self.master.run("cache.mine"))
        return [(where, line) for where, text in texts.items() for line in text.splitlines() if found.search(line)]

    # --- power and the master -----------------------------------------------------------------

    def stop_master(self):
        """The salt-master stopped (its recorded process)."""
        self.lab.stop(["master: salt-master"])

    def start_master(self):
        """The salt-master started again; returns when every node's minion answers it."""
        self.master.start()
        self.master.wait_for(self.built_nodes())

    def power_off(self, node_id):
        """What a power cut leaves of a node: its programs and its guests stopped, every link
        but its uplink gone, /run and /var/tmp empty, forwarding off and rp_filter at 2 (the
        kernel's and PVE's values before our sysctl file is read). Its disks (/etc, the
        cluster's /etc/pve) keep what they hold. Returns the guests that ran on it."""
        made = self.lab.nodes[node_id]
        guests = [g for g in self.running_guests() if g.node == node_id]
        for namespace in (made.namespace, *(self.lab.prefix + g.namespace for g in guests)):
            self.lab.kill_rest(namespace)
        made.flush_links()
        made.run("sh", "-c", "rm -rf /run/* /var/tmp/* && mkdir -p /run/wireguard /run/salt /run/network")
        made.run(
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=0",
            "net.ipv4.conf.all.rp_filter=2",
            "net.ipv4.conf.default.rp_filter=2",
        )
        return guests

    def boot(self, node_id, guests):
        """The node's boot, from what it persisted, in the order of its systemd units:
        systemd-sysctl (the files of /etc/sysctl.d and PVE's of /usr/lib/sysctl.d, in the
        order of their names; only their net. keys, the rest is the host's kernel), frr with
        PVE's frr.conf, networking (ifupdown2 with PVE's interfaces.d/sdn), wg-quick@wg0 with
        the persisted configuration, pve-guests (the ``guests`` power_off returned), then
        pve-firewall, sshd, pveproxy, corosync and the salt-minion. Returns wg-quick's result."""
        node, made = self.plan.nodes()[node_id], self.lab.nodes[node_id]
        names = made.run("sh", "-c", "ls /etc/sysctl.d/*.conf", check=False).stdout.split()
        sysctl_files = {path.split("/")[-1]: made.run("cat", path, check=False).stdout for path in names}
        sysctl_files.update(PVE_SYSCTL_FILES)
        lines = [line for name in sorted(sysctl_files) for line in sysctl_files[name].splitlines()]
        made.run("sysctl", "-q", "-p", "-", input="".join(f"{line}\n" for line in lines if line.startswith("net.")))
        dataplane.start_frr(made)
        made.run("ifup", "-a", check=False)
        wg_quick = made.wg_quick_up("wg0")
        for guest in guests:
            self.lab.start_vm(self.lab.prefix + guest.namespace)
        self._start_services(node, made)
        return wg_quick

    # --- moving -------------------------------------------------------------------------------

    def renumber(self, site_name):
        """The ISP gives the site's router a new WAN address and the DNS records of the site's
        names follow it. Returns (old address, new address, the names changed)."""
        site = self.plan.sites[site_name]
        router = self.lab.routers[site.routers[0].namespace]
        old = router.wan()
        network = next(net for net in topology.INTERNET if ipaddress.ip_address(old) in net)
        taken = {a.split("/")[0] for h in self.lab.hosts.values() for cidrs in h["addresses"].values() for a in cidrs}
        new = next(str(a) for a in network.hosts() if str(a) not in taken and a > ipaddress.ip_address(old))
        router.renumber(new, internet_gateway(new))
        names = sorted(name for name, address in self.lab.dns().items() if address == old)
        self.lab.set_dns({**self.lab.dns(), **dict.fromkeys(names, new)})
        return old, new, names


@contextlib.contextmanager
def lab_federation(pillar_root, topology_file=topology.DEFAULT_TOPOLOGY, prefix="f", guests=(), extra_pillar=None):
    """A federation built in a lab of its own (a copy of ``pillar_root`` with the files of
    ``extra_pillar`` over it, beacon every second), torn down on leaving, also when the body
    fails. Yields the Federation."""
    # Short: Salt's unix sockets live under it, and pytest's temporary paths are too long.
    state = pathlib.Path(tempfile.mkdtemp(prefix="evpn-"))
    try:
        pillar = lab_pillar(pillar_root, state / "pillar", extra_pillar)
        plan = topology.load(topology_file, topology.render_pillar(pillar))
        with Lab(state / "lab", prefix=f"{prefix}{os.getpid() % 100000}-", dns_server=plan.internet["dns"]) as lab:
            federation = Federation(lab, state, topology_file, pillar)
            federation.build(guests)
            yield federation
    finally:
        shutil.rmtree(state, ignore_errors=True)
