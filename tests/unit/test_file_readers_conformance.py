"""
The file readers of pvesdn and pvefw (_utils/pve_sdn_config.py, _utils/pve_firewall_config.py)
against ``pvesh get``: on clusters built through the emulator, both PVE versions, every list
the readers answer for must be what pvesh prints as JSON (the emulator's library, which
lab/bin/pvesh runs, with its JSON round trip), digests included: SDN objects kind by kind in
every state (new, changed, deleted, unchanged) and view (configured, --pending, --running), with
objects the pillar does not name; and the firewall with the user's own rules, groups, IP sets,
aliases and options next to the federation's.
"""

import json

import pytest

import pve_firewall_config
import pve_sdn_config

KINDS = ("controllers", "zones", "vnets", "subnets")
VIEWS = (None, "pending", "running")


def _pvesh_get(cluster, path, params=None):
    """What ``pvesh get <path> --output-format json`` prints, parsed."""
    return json.loads(json.dumps(cluster.call("GET", path, params or {}), sort_keys=True))


@pytest.fixture
def sdn_cluster(pve_cluster):
    """A cluster whose SDN objects are in every state: applied once, then changed, added to and
    deleted from; a user's simple and VLAN zones, vnets and a DHCP subnet among the federation's."""
    call = pve_cluster.call
    call(
        "POST", "/cluster/sdn/controllers", {"controller": "evpnctl", "type": "evpn", "asn": 65000, "peers": "10.1.0.1"}
    )
    zone = {"type": "evpn", "controller": "evpnctl", "vrf-vxlan": 10000, "exitnodes": "pve2,pve1", "mtu": 1370}
    call("POST", "/cluster/sdn/zones", {"zone": "evpn", **zone, "advertise-subnets": 1})
    call("POST", "/cluster/sdn/zones", {"zone": "userzone", "type": "simple", "nodes": "pve3,pve1"})
    call("POST", "/cluster/sdn/zones", {"zone": "uservlan", "type": "vlan", "bridge": "vmbr0"})
    call("POST", "/cluster/sdn/zones", {"zone": "olduser", "type": "simple", "nodes": "pve2,pve1"})
    for vnet, params in (
        ("roz1", {"zone": "evpn", "tag": 11001}),
        ("roz2", {"zone": "evpn", "tag": 11002, "alias": "to be deleted"}),
        ("uservn", {"zone": "userzone"}),
        ("vlan10", {"zone": "uservlan", "tag": 10}),
    ):
        call("POST", "/cluster/sdn/vnets", {"vnet": vnet, **params})
    for vnet, cidr, params in (
        ("roz1", "10.1.1.0/24", {"gateway": "10.1.1.1", "snat": 1}),
        ("roz2", "10.1.2.0/24", {"gateway": "10.1.2.1"}),
        ("uservn", "192.168.50.0/24", {"dhcp-range": ["start-address=192.168.50.10,end-address=192.168.50.20"]}),
    ):
        call("POST", f"/cluster/sdn/vnets/{vnet}/subnets", {"subnet": cidr, "type": "subnet", **params})
    call("PUT", "/cluster/sdn")
    call("PUT", "/cluster/sdn/controllers/evpnctl", {"peers": "10.2.0.1,10.1.0.1"})
    call("PUT", "/cluster/sdn/zones/evpn", {"mtu": 1300, "exitnodes": "pve1", "delete": "advertise-subnets"})
    call("PUT", "/cluster/sdn/zones/userzone", {"nodes": "pve1,pve3"})  # the same set: unchanged
    call("PUT", "/cluster/sdn/vnets/roz1/subnets/evpn-10.1.1.0-24", {"snat": 0})
    call("DELETE", "/cluster/sdn/vnets/roz2/subnets/evpn-10.1.2.0-24")
    call("DELETE", "/cluster/sdn/vnets/roz2")
    call("DELETE", "/cluster/sdn/zones/olduser")
    call("POST", "/cluster/sdn/vnets", {"vnet": "roz3", "zone": "evpn", "tag": 11003})
    call("POST", "/cluster/sdn/vnets/roz3/subnets", {"subnet": "10.1.3.0/24", "type": "subnet", "gateway": "10.1.3.1"})
    call("POST", "/cluster/sdn/zones", {"zone": "newuser", "type": "simple"})
    return pve_cluster


def _read_sdn(root):
    running = pve_sdn_config.parse_running(_text(root / "sdn" / ".running-config"))
    files = {}
    for kind in KINDS:
        text = _text(root / "sdn" / f"{kind}.cfg")
        files[kind] = (pve_sdn_config.parse(kind, text), pve_sdn_config.digest(text))
    return files, running


def _text(path):
    return path.read_text() if path.exists() else ""


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("kind", KINDS)
def test_sdn_reader_agrees_with_pvesh(sdn_cluster, kind, view):
    files, running = _read_sdn(sdn_cluster.store.root)
    read = pve_sdn_config.listing(kind, *files[kind], running, view)
    params = {"pending": 1} if view == "pending" else {"running": 1} if view == "running" else {}
    if kind == "subnets":  # pvesh lists the subnets of one vnet
        vnets = {item["vnet"] for item in _pvesh_get(sdn_cluster, "/cluster/sdn/vnets", {"pending": 1})}
        for vnet in sorted(vnets):
            expected = _pvesh_get(sdn_cluster, f"/cluster/sdn/vnets/{vnet}/subnets", params)
            assert [item for item in read if item["vnet"] == vnet] == expected, vnet
        assert {item["vnet"] for item in read} <= vnets
    else:
        assert read == _pvesh_get(sdn_cluster, f"/cluster/sdn/{kind}", params)


def test_the_sdn_cluster_holds_every_state_of_every_kind(sdn_cluster):
    """What the agreement above covers: per kind, the states of its objects in the pending view."""
    files, running = _read_sdn(sdn_cluster.store.root)
    states = {
        kind: sorted(
            {item.get("state", "unchanged") for item in pve_sdn_config.listing(kind, *files[kind], running, "pending")}
        )
        for kind in KINDS
    }
    assert states == {
        "controllers": ["changed"],
        "zones": ["changed", "deleted", "new", "unchanged"],
        "vnets": ["deleted", "new", "unchanged"],
        "subnets": ["changed", "deleted", "new", "unchanged"],
    }


@pytest.fixture
def firewall_cluster(pve_cluster):
    """The federation's firewall objects next to a user's own: aliases (v4, v6), IP sets with a
    negated entry and an alias, a group with a macro rule, cluster rules of every shape (disabled,
    ICMP, IPv6, an alias, logging, a non-ASCII comment), options; a host's rules and options."""
    call = pve_cluster.call
    call("POST", "/cluster/firewall/aliases", {"name": "Office", "cidr": "192.0.2.0/28", "comment": "the office"})
    call("POST", "/cluster/firewall/aliases", {"name": "v6net", "cidr": "2001:db8::/64"})
    for name, comment, cidrs in (
        ("evpn-wireguard", "evpn: WireGuard addresses of the federation", ["10.1.0.1", "10.2.0.1/32"]),
        ("office", "office nets", ["192.0.2.9/32", "198.51.100.0/24"]),
    ):
        call("POST", "/cluster/firewall/ipset", {"name": name, "comment": comment})
        for cidr in cidrs:
            call("POST", f"/cluster/firewall/ipset/{name}", {"cidr": cidr})
    call("POST", "/cluster/firewall/ipset/office", {"cidr": "office", "nomatch": 1, "comment": "not the alias"})
    call("POST", "/cluster/firewall/groups", {"group": "evpn-wg", "comment": "evpn: overlay"})
    call("POST", "/cluster/firewall/groups", {"group": "web"})
    wg = {"type": "in", "action": "ACCEPT", "source": "+evpn-wireguard", "enable": 1}
    call("POST", "/cluster/firewall/groups/evpn-wg", {**wg, "proto": "udp", "dport": "4789", "comment": "evpn: VXLAN"})
    call("POST", "/cluster/firewall/groups/evpn-wg", {**wg, "proto": "tcp", "dport": "179", "comment": "evpn: BGP"})
    call("POST", "/cluster/firewall/groups/web", {"type": "in", "action": "ACCEPT", "macro": "ssh", "source": "Office"})
    call("POST", "/cluster/firewall/groups/web", {"type": "in", "action": "ACCEPT", "proto": "tcp", "dport": "443"})
    for rule in (
        {"type": "in", "action": "DROP", "source": "dc/office", "enable": 1, "comment": "user: büro"},
        {"type": "in", "action": "ACCEPT", "proto": "icmp", "enable": 1, "comment": ""},
        {"type": "group", "action": "web", "iface": "vmbr0", "enable": 1},
        {"type": "out", "action": "ACCEPT", "dest": "2001:db8::1", "proto": "udp", "dport": "53", "log": "info"},
        {"type": "in", "action": "ACCEPT", "source": "+office", "dest": "10.0.0.0/8,10.9.0.1"},
        {"type": "group", "action": "evpn-wg", "iface": "wg0", "enable": 1, "comment": "evpn-wg: federation"},
        {
            "type": "in",
            "action": "ACCEPT",
            "proto": "udp",
            "dport": "51820",
            "enable": 1,
            "comment": "evpn-wireguard: x",
        },
    ):
        call("POST", "/cluster/firewall/rules", rule)
    call("PUT", "/cluster/firewall/options", {"enable": 1, "policy_in": "DROP", "ebtables": 0})
    call("PUT", "/nodes/pve1/firewall/options", {"enable": 1, "nftables": 1, "log_level_in": "info"})
    call("POST", "/nodes/pve1/firewall/rules", {"type": "in", "action": "ACCEPT", "source": "2001:db8::5", "enable": 1})
    call("POST", "/nodes/pve1/firewall/rules", {"type": "in", "action": "ACCEPT", "source": "+office", "proto": "tcp"})
    return pve_cluster


FIREWALL_LISTS = {
    "/cluster/firewall/rules": lambda cluster, host: pve_firewall_config.rules(cluster),
    "/cluster/firewall/groups": lambda cluster, host: pve_firewall_config.groups(cluster),
    "/cluster/firewall/groups/evpn-wg": lambda cluster, host: pve_firewall_config.rules(cluster, "evpn-wg"),
    "/cluster/firewall/groups/web": lambda cluster, host: pve_firewall_config.rules(cluster, "web"),
    "/cluster/firewall/ipset": lambda cluster, host: pve_firewall_config.ipsets(cluster),
    "/cluster/firewall/ipset/office": lambda cluster, host: pve_firewall_config.ipset(cluster, "office"),
    "/cluster/firewall/ipset/evpn-wireguard": lambda cluster, host: pve_firewall_config.ipset(
        cluster, "evpn-wireguard"
    ),
    "/cluster/firewall/aliases": lambda cluster, host: pve_firewall_config.aliases(cluster),
    "/cluster/firewall/options": lambda cluster, host: pve_firewall_config.options(cluster),
    "/nodes/pve1/firewall/rules": lambda cluster, host: pve_firewall_config.rules(host),
    "/nodes/pve1/firewall/options": lambda cluster, host: pve_firewall_config.options(host),
}


@pytest.mark.parametrize("path", FIREWALL_LISTS)
def test_firewall_reader_agrees_with_pvesh(firewall_cluster, path):
    root = firewall_cluster.store.root
    cluster = pve_firewall_config.parse((root / "firewall" / "cluster.fw").read_text(), "cluster")
    host = pve_firewall_config.parse((root / "nodes" / "pve1" / "host.fw").read_text(), "host", cluster)
    read = FIREWALL_LISTS[path](cluster, host)
    assert read == _pvesh_get(firewall_cluster, path)
    assert read, "a list with something in it"
