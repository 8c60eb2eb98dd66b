"""
The lab's topology (lab/topology.yaml, or a user's own file) read together with the pillar: what
the lab builds, checked before anything is made. The pillar says what the federation is (sites,
nodes, endpoints, vnets, exit nodes); the topology says only what the pillar cannot: how each site
reaches the internet (NAT routers in a row, or nodes holding public addresses), its LAN and each
node's LAN address, the PVE version of its cluster, the guests ("VMs") on each node, where DNS,
the salt-master and the internet host ``www`` sit, and the pillar entries that ``make lab-add``
writes for a node or a site that comes later.

Anything the lab cannot emulate is refused with a message naming the key (``topology:...`` or
``pillar:evpn:...``), before a namespace exists.
"""

import dataclasses
import importlib.util
import ipaddress
import logging
import pathlib
import re
import tempfile

import salt.config
import salt.pillar
import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_TOPOLOGY = REPO / "lab" / "topology.yaml"
# The lab's default federation: the checkout's top file and evpn/init.sls (links) with the two
# example sites roz and wro, kept here so that the checkout's pillar/ holds no site of its own.
DEFAULT_PILLAR = REPO / "lab" / "pillar"
# The emulated internet: documentation ranges only (RFC 5737), the first address of each is the
# internet's router. 192.0.2.0/24 is never used (it is this machine's real uplink).
INTERNET = (ipaddress.ip_network("203.0.113.0/24"), ipaddress.ip_network("198.51.100.0/24"))
PVE_VERSIONS = ("8.4", "9.1")


class TopologyError(Exception):
    """What the lab cannot build, each problem with the key it is about."""

    def __init__(self, problems):
        super().__init__("the lab cannot build this federation:\n  " + "\n  ".join(problems))
        self.problems = problems


def evpn_model():
    """The federation model (_modules/evpn.py), loaded as a plain module: its functions are pure
    functions of the pillar they are given."""
    spec = importlib.util.spec_from_file_location("evpn_model", REPO / "_modules" / "evpn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.__opts__, module.__context__, module.__pillar__ = {"id": None}, {}, {}
    return module


class _SaltMessages(logging.Handler):
    """Salt logs why a pillar file failed to render and returns only "see the log": keep it."""

    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage().split("\nTraceback")[0].strip())


def render_pillar(pillar_root):
    """The ``evpn`` pillar of the pillar tree at ``pillar_root``, rendered by Salt as a master
    renders it (its ``evpn`` SLS and what that includes, the top file aside). A file that does not
    render is refused with its path and Salt's message."""
    messages = _SaltMessages()
    logging.getLogger("salt.pillar").addHandler(messages)
    try:
        with tempfile.TemporaryDirectory(prefix="evpnlab-pillar-") as cache:
            opts = salt.config.minion_config(None)
            opts.update(
                id="evpnlab",
                file_client="local",
                pillar_roots={"base": [str(pillar_root)]},
                cachedir=cache,
                root_dir=cache,
                pki_dir=cache,
                extension_modules=cache,
            )
            data, errors = salt.pillar.Pillar(opts, {}, "evpnlab", "base").render_pillar({"base": ["evpn"]})
    finally:
        logging.getLogger("salt.pillar").removeHandler(messages)
    if errors:
        problems = []
        for message in messages.messages or errors:
            sls = re.search(r"Rendering SLS '([^']+)'", message)
            where = pathlib.Path(pillar_root, *sls.group(1).split(".")).with_suffix(".sls") if sls else pillar_root
            problem = f"pillar {where}: {message}"
            if problem not in problems:
                problems.append(problem)
        raise TopologyError(problems)
    if "evpn" not in data:
        raise TopologyError([f"pillar {pillar_root}: no evpn key (evpn/init.sls renders none)"])
    return data["evpn"]


@dataclasses.dataclass
class Router:
    namespace: str  # without the lab's prefix
    site: str
    wan: str  # address
    wan_prefix: int
    gateway: str
    lan: ipaddress.IPv4Network
    upstream: str  # the namespace whose bridge the WAN side joins ("inet" or the router before)
    dynamic: bool = False

    @property
    def lan_address(self):
        return str(next(self.lan.hosts()))


@dataclasses.dataclass
class Guest:
    node: str
    vnet: str
    address: str  # the VM's own, with the subnet's prefix length: 10.1.1.10/24
    gateway: str
    snat: bool  # its subnet is source-NATed on exit nodes

    @property
    def ip(self):
        return self.address.split("/")[0]

    @property
    def namespace(self):
        return f"vm-{self.ip}"


@dataclasses.dataclass
class LabNode:
    id: str
    site: str
    pve_node: str
    address: str  # the node's own address on its LAN (NAT sites) or the internet (public sites)
    prefix: int
    gateway: str
    upstream: str  # the namespace whose bridge the node joins
    wireguard: str  # its WireGuard address, from the pillar
    public_port: int  # the UDP port its public endpoint names (forwarded to it behind NAT)
    exit_node: bool
    guests: list
    pillar: dict = None  # the node's pillar entry for make lab-add, when the pillar lacks it


@dataclasses.dataclass
class LabSite:
    name: str
    pve: str
    routers: list
    nodes: dict
    pillar: dict = None  # the site's pillar file for make lab-add SITE=


@dataclasses.dataclass
class Plan:
    """Everything the lab builds: internet hosts, sites with routers and nodes, DNS records."""

    internet: dict  # role -> address: dns, master, www
    sites: dict  # name -> LabSite, in pillar order; sites and nodes still to add included
    dns: dict  # endpoint name -> public address
    mtu: int
    wireguard_port: int

    def nodes(self, in_pillar=False):
        return {
            node.id: node
            for site in self.sites.values()
            for node in site.nodes.values()
            if not in_pillar or (node.pillar is None and site.pillar is None)
        }

    def guests(self, node_ids):
        return [guest for node_id in node_ids for guest in self.nodes()[node_id].guests]


def site_pillar(site, topology_file=DEFAULT_TOPOLOGY):
    """The pillar document of a site that the topology adds later (its ``pillar:`` key), as
    the site's file under evpn/sites holds it."""
    spec = (yaml.safe_load(pathlib.Path(topology_file).read_text())["sites"] or {}).get(site) or {}
    if spec.get("pillar") is None:
        raise TopologyError([f"topology:sites:{site}:pillar: {topology_file} has no pillar entry for this site"])
    return {"evpn": {"sites": {site: spec["pillar"]}}}


def load(topology_file, federation):
    """The plan for ``federation`` (the rendered ``evpn`` pillar) and the topology file. Raises
    TopologyError listing every problem."""
    path = pathlib.Path(topology_file)
    try:
        topology = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise TopologyError([f"topology {path}: {err}"]) from None
    return _Planner(topology, federation).plan()


def _network(value):
    return ipaddress.ip_network(value, strict=False)


class _Planner:
    def __init__(self, topology, federation):
        self.topology = topology
        self.problems = []
        self.model = evpn_model()
        self.federation = federation
        self.public = {}  # public address -> what holds it

    def problem(self, path, message):
        self.problems.append(f"{path}: {message}")

    def plan(self):
        report = self.model.validate(federation=self.federation)
        if report["errors"]:
            raise TopologyError([f"pillar:{error}" for error in report["errors"]])
        unknown = set(self.topology) - {"internet", "sites"}
        for key in sorted(unknown):
            self.problem(f"topology:{key}", "unknown key (known: internet, sites)")
        internet = self._internet(self.topology.get("internet") or {})
        # Sites and nodes still to add are planned with their pillar entries merged in.
        federation = self._with_additions()
        config = None
        if not self.problems:
            report = self.model.validate(federation=federation)
            if report["errors"]:
                raise TopologyError([f"pillar (with the topology's additions):{e}" for e in report["errors"]])
            config = self.model.config(federation=federation)
            sites = {name: self._site(name, config) for name in config["sites"]}
            dns = self._dns(config, sites)
        if self.problems:
            raise TopologyError(self.problems)
        return Plan(internet, sites, dns, config["zone"]["mtu"], config["wireguard"]["port"])

    def _internet(self, internet):
        addresses = {}
        for role in ("dns", "master", "www"):
            path = f"topology:internet:{role}"
            if role not in internet:
                self.problem(path, "is required: an address on the emulated internet")
                continue
            if self._claim_public(str(internet[role]), path):
                addresses[role] = str(internet[role])
        for key in sorted(set(internet) - {"dns", "master", "www"}):
            self.problem(f"topology:internet:{key}", "unknown key (known: dns, master, www)")
        return addresses

    def _claim_public(self, address, path):
        """An address on the emulated internet, once."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            self.problem(path, f"{address!r} is not an IP address")
            return False
        if not any(ip in net for net in INTERNET) or ip in (net[1] for net in INTERNET) or ip.packed[-1] in (0, 255):
            self.problem(
                path,
                f"{address} is not a host of the emulated internet (203.0.113.2-254 or 198.51.100.2-254)",
            )
            return False
        if address in self.public:
            self.problem(path, f"{address} is already the address of {self.public[address]}")
            return False
        self.public[address] = path
        return True

    def _with_additions(self):
        """The pillar with the topology's ``pillar:`` entries of sites and nodes to add."""
        federation = dict(self.federation, sites=dict(self.federation.get("sites") or {}))
        for name, site_spec in (self.topology.get("sites") or {}).items():
            site = site_spec or {}
            if name not in federation["sites"]:
                if site.get("pillar") is None:
                    self.problem(f"topology:sites:{name}", "is not a site of the pillar and has no pillar entry to add")
                    continue
                federation["sites"][name] = site["pillar"]
                continue
            pillar_site = dict(federation["sites"][name])
            pillar_site["nodes"] = dict(pillar_site.get("nodes") or {})
            for node_id, node in (site.get("nodes") or {}).items():
                if node_id not in pillar_site["nodes"] and (node or {}).get("pillar") is not None:
                    pillar_site["nodes"][node_id] = node["pillar"]
            federation["sites"][name] = pillar_site
        for name in federation["sites"]:
            if name not in (self.topology.get("sites") or {}):
                self.problem(f"topology:sites:{name}", "is missing: the pillar has this site")
        return federation

    def _site(self, name, config):
        path = f"topology:sites:{name}"
        spec = self.topology["sites"][name] or {}
        for key in sorted(set(spec) - {"pve", "routers", "nodes", "pillar"}):
            self.problem(f"{path}:{key}", "unknown key (known: pve, routers, nodes, pillar)")
        pve = str(spec.get("pve", ""))
        if pve not in PVE_VERSIONS:
            self.problem(f"{path}:pve", f"{pve!r} is not a PVE version the emulator has ({', '.join(PVE_VERSIONS)})")
        routers = self._routers(name, spec.get("routers") or [], config)
        site_conf = config["sites"][name]
        added_site = name not in self.federation["sites"]
        nodes = {}
        for node_id, node_conf in site_conf["nodes"].items():
            node_spec = (spec.get("nodes") or {}).get(node_id)
            if node_spec is None:
                self.problem(f"{path}:nodes:{node_id}", "is missing: the pillar has this node")
                continue
            node = self._node(name, node_id, node_spec, node_conf, routers, config)
            if node and not added_site and node_id not in self.federation["sites"][name]["nodes"]:
                node.pillar = node_spec["pillar"]
            if node:
                nodes[node_id] = node
        for node_id in sorted(set(spec.get("nodes") or {}) - set(site_conf["nodes"])):
            self.problem(f"{path}:nodes:{node_id}", "is not a node of the pillar and has no pillar entry to add")
        return LabSite(name, pve, routers, nodes, spec.get("pillar") if added_site else None)

    def _routers(self, site, specs, config):
        routers = []
        upstream, gateway = "inet", None
        for index, router_spec in enumerate(specs):
            path = f"topology:sites:{site}:routers:{index}"
            spec = router_spec or {}
            for key in sorted(set(spec) - {"wan", "lan", "dynamic"}):
                self.problem(f"{path}:{key}", "unknown key (known: wan, lan, dynamic)")
            wan, lan = str(spec.get("wan", "")), spec.get("lan")
            try:
                lan = ipaddress.ip_network(str(lan))
            except ValueError:
                self.problem(f"{path}:lan", f"{lan!r} is not a network (CIDR)")
                continue
            if not lan.is_private or lan.version != 4 or lan.prefixlen > 29:
                self.problem(f"{path}:lan", f"{lan} is not a private IPv4 network of at least 8 addresses")
            self._not_in_federation(lan, f"{path}:lan", config)
            if index == 0:
                if not self._claim_public(wan, f"{path}:wan"):
                    continue
                prefix, gateway = 24, str(next(net for net in INTERNET if ipaddress.ip_address(wan) in net)[1])
            else:
                previous = routers[-1].lan if routers else None
                if previous is None or ipaddress.ip_address(wan) not in previous or wan == routers[-1].lan_address:
                    self.problem(f"{path}:wan", f"{wan} is not a host of the LAN of the router before ({previous})")
                    continue
                prefix, gateway = previous.prefixlen, routers[-1].lan_address
            if spec.get("dynamic") and index:
                self.problem(f"{path}:dynamic", "only the router on the internet has a WAN address the ISP changes")
            routers.append(
                Router(f"rtr-{site}-{index}", site, wan, prefix, gateway, lan, upstream, bool(spec.get("dynamic")))
            )
            upstream = f"rtr-{site}-{index}"
        return routers

    def _not_in_federation(self, lan, path, config):
        for site_name, site in config["sites"].items():
            networks = [site["network"]] if site.get("network") else []
            networks += [n["address"] for n in site["nodes"].values()]
            networks += [c for vnet in site["vnets"].values() for c in vnet["subnets"]]
            networks += [c for vnet in config["vnets"].values() for c in vnet["subnets"]]
            clash = [n for n in networks if _network(n).overlaps(lan)]
            if clash:
                self.problem(path, f"{lan} overlaps {clash[0]} of the federation (site {site_name})")
                return

    def _node(self, site, node_id, spec, node_conf, routers, config):
        path = f"topology:sites:{site}:nodes:{node_id}"
        pillar_path = f"pillar:evpn:sites:{site}:nodes:{node_id}"
        for key in sorted(set(spec) - {"lan", "public", "guests", "pillar"}):
            self.problem(f"{path}:{key}", "unknown key (known: lan, public, guests, pillar)")
        port = config["wireguard"]["port"]
        host, public_port = self.model.split_endpoint(node_conf["endpoint"], port)
        if routers:
            if "public" in spec:
                self.problem(f"{path}:public", "the site's nodes sit behind its routers: give their lan address")
                return None
            lan = routers[-1].lan
            address = str(spec.get("lan", ""))
            if (
                not _is_address(address)
                or ipaddress.ip_address(address) not in lan
                or address == routers[-1].lan_address
            ):
                self.problem(f"{path}:lan", f"{address!r} is not a host of the site's LAN {lan}")
                return None
            prefix, gateway, upstream = lan.prefixlen, routers[-1].lan_address, routers[-1].namespace
            public_address = routers[0].wan
        else:
            address = str(spec.get("public", ""))
            if not self._claim_public(address, f"{path}:public"):
                return None
            prefix, upstream = 24, "inet"
            gateway = str(next(net for net in INTERNET if ipaddress.ip_address(address) in net)[1])
            public_address = address
            if public_port != port:
                self.problem(
                    f"{pillar_path}:endpoint",
                    f"port {public_port}: a node on a public address is reached on its listen port {port}",
                )
        if _is_address(host) and host != public_address:
            self.problem(
                f"{pillar_path}:endpoint",
                f"{host} is not the public address this node has in the lab ({public_address}): "
                "give a DNS name or that address",
            )
        if node_conf["lan_endpoint"] is not None:
            lan_host, lan_port = self.model.split_endpoint(node_conf["lan_endpoint"], port)
            if lan_host != address or lan_port != port:
                self.problem(
                    f"{pillar_path}:lan_endpoint",
                    f"{node_conf['lan_endpoint']!r} is not the node's address and listen port in the lab "
                    f"({address}:{port})",
                )
        return LabNode(
            id=node_id,
            site=site,
            pve_node=node_conf["pve_node"],
            address=address,
            prefix=prefix,
            gateway=gateway,
            upstream=upstream,
            wireguard=node_conf["address"],
            public_port=public_port,
            exit_node=node_id in config["sites"][site]["exit_nodes"],
            guests=self._guests(site, node_id, spec.get("guests") or {}, config),
        )

    def _guests(self, site, node_id, spec, config):
        path = f"topology:sites:{site}:nodes:{node_id}:guests"
        vnets = {**config["vnets"], **config["sites"][site]["vnets"]}
        guests = []
        for vnet_id, addresses in spec.items():
            if vnet_id not in vnets:
                self.problem(f"{path}:{vnet_id}", f"is not a vnet of site {site} (nor a stretched one)")
                continue
            for address in addresses if isinstance(addresses, list) else [addresses]:
                subnet = next(
                    (
                        (cidr, s)
                        for cidr, s in vnets[vnet_id]["subnets"].items()
                        if _is_address(str(address)) and ipaddress.ip_address(str(address)) in _network(cidr)
                    ),
                    None,
                )
                if subnet is None or subnet[1]["gateway"] in (None, str(address)):
                    self.problem(
                        f"{path}:{vnet_id}",
                        f"{address!r} is not a guest address in a subnet of {vnet_id} that has a gateway",
                    )
                    continue
                prefix = _network(subnet[0]).prefixlen
                guests.append(Guest(node_id, vnet_id, f"{address}/{prefix}", subnet[1]["gateway"], subnet[1]["snat"]))
        return guests

    def _dns(self, config, sites):
        """Every endpoint name -> the public address its node has in the lab."""
        records = {}
        for site_name, site in sites.items():
            for node in site.nodes.values():
                node_conf = config["sites"][site_name]["nodes"][node.id]
                host, _ = self.model.split_endpoint(node_conf["endpoint"], config["wireguard"]["port"])
                public = site.routers[0].wan if site.routers else node.address
                if _is_address(host):
                    continue
                name = host.rstrip(".").lower()
                if records.setdefault(name, public) != public:
                    self.problem(
                        f"pillar:evpn:sites:{site_name}:nodes:{node.id}:endpoint",
                        f"{name} names {public} here and {records[name]} for another node",
                    )
        return records


def _is_address(value):
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
