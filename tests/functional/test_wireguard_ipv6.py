"""
A site reached over IPv6 in the emulated internet: its ISP gives it IPv4 only through NAT with no
port forward (CGNAT: nothing reaches in over IPv4) and IPv6 without NAT; each node's endpoint
name has an AAAA record only (the lab's DNS server, dnsmasq). wireguard.interface_present makes
the tunnel over IPv6, and when the ISP hands out a new IPv6 address and the name follows,
wireguard.refresh_endpoints re-points the peer. (Were the other node's name dual-stack, the
CGNAT node would reach it over IPv4, IPv4 coming first, and the other node would follow that
NAT mapping as WireGuard roams: the tunnel holds either way.) Lab safety: IPv6 from
2001:db8::/32 only, between lab namespaces.
"""

import json
import os
import subprocess

import pytest

from netns import Lab
from support.saltconfig import salt_call_in as salt_call

pytestmark = pytest.mark.usefixtures("lab_host")

A_PUBLIC, A_PUBLIC6 = "203.0.113.61", "2001:db8::61"  # a rented server: public IPv4 and IPv6
CGNAT_WAN, ROUTER6, SITE6 = "198.51.100.62", "2001:db8::62", "2001:db8:7::"
B_LAN, B6, B6_NEW = "192.168.7.11", "2001:db8:7::11", "2001:db8:7::12"
A_NAME, B_NAME = "a.v6.example", "b.v6.example"
WG = {"a": "10.61.0.1", "b": "10.62.0.1"}


def ip(namespace, *argv):
    subprocess.run(["ip", "-n", namespace, *argv], check=True, capture_output=True, text=True)


def forward_ipv6(namespace):
    subprocess.run(["ip", "netns", "exec", namespace, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"], check=True)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with Lab(tmp_path_factory.mktemp("lab"), prefix=f"v{os.getpid() % 100000}-") as made:
        # The internet routes 2001:db8::/64 on its bridge and the site's prefix to its router.
        ip(made.internet, "addr", "add", "2001:db8::1/64", "dev", "br0", "nodad")
        forward_ipv6(made.internet)
        a = made.node("a", A_PUBLIC)
        ip(a.namespace, "addr", "add", f"{A_PUBLIC6}/64", "dev", "eth0", "nodad")
        ip(a.namespace, "-6", "route", "add", "default", "via", "2001:db8::1")
        router = made.router("rtr-b", "b", "inet", f"{CGNAT_WAN}/24", "198.51.100.1", "192.168.7.0/24")
        ip(router.namespace, "addr", "add", f"{ROUTER6}/64", "dev", "wan0", "nodad")
        ip(router.namespace, "addr", "add", f"{SITE6}1/64", "dev", "lan0", "nodad")
        ip(router.namespace, "-6", "route", "add", "default", "via", "2001:db8::1")
        forward_ipv6(router.namespace)
        ip(made.internet, "-6", "route", "add", f"{SITE6}/64", "via", ROUTER6)
        b = made.node("b", f"{B_LAN}/24", "192.168.7.1", "rtr-b", site="b")
        ip(b.namespace, "addr", "add", f"{B6}/64", "dev", "eth0", "nodad")
        ip(b.namespace, "-6", "route", "add", "default", "via", f"{SITE6}1")
        made.start_dns({A_NAME: A_PUBLIC6, B_NAME: B6})
        for node in (a, b):
            node.start_wireguard("wg0")
        yield made


def converge(node, peer, endpoint, key):
    state = salt_call(
        node,
        "state.single",
        "wireguard.interface_present",
        "name=wg0",
        f"address={WG[node.name]}/32",
        "port=51820",
        "mtu=1420",
        "peers="
        + json.dumps(
            [
                {
                    "name": peer,
                    "public_key": key,
                    "allowed_ips": [f"{WG[peer]}/32"],
                    "endpoint": endpoint,
                    "keepalive": 25,
                }
            ]
        ),
    )[0]
    (result,) = state.values()
    assert result["result"] is True, result


def endpoint_of(node, key):
    return salt_call(node, "wireguard.show")[0]["peers"][key]["endpoint"]


def ping(node, address):
    return node.run("ping", "-c1", "-W2", address, check=False).returncode == 0


def test_a_site_reached_over_ipv6_only(lab):
    a, b = lab.nodes["a"], lab.nodes["b"]
    assert salt_call(a, "wireguard.addresses", B_NAME)[0] == [B6]  # AAAA only, through the lab's DNS
    keys = {name: salt_call(node, "wireguard.genkey")[0] for name, node in (("a", a), ("b", b))}
    converge(a, "b", f"{B_NAME}:51820", keys["b"])
    converge(b, "a", f"{A_NAME}:51820", keys["a"])
    assert ping(a, WG["b"]) and ping(b, WG["a"])
    assert endpoint_of(a, keys["b"]) == f"[{B6}]:51820"
    assert f"# b at {B_NAME}:51820\n" in a.run("cat", "/etc/wireguard/wg0.conf").stdout
    assert f"Endpoint = [{B6}]:51820\n" in a.run("cat", "/etc/wireguard/wg0.conf").stdout
    assert endpoint_of(b, keys["a"]) == f"[{A_PUBLIC6}]:51820"

    # The ISP hands out a new IPv6 address and the name follows it: a refresh re-points the peer.
    ip(b.namespace, "addr", "add", f"{B6_NEW}/64", "dev", "eth0", "nodad")
    ip(b.namespace, "addr", "del", f"{B6}/64", "dev", "eth0")
    lab.set_dns({A_NAME: A_PUBLIC6, B_NAME: B6_NEW})
    refreshed = salt_call(a, "wireguard.refresh_endpoints")[0]
    assert refreshed == {"changed": {"b": {"old": f"[{B6}]:51820", "new": f"[{B6_NEW}]:51820"}}, "unresolved": []}
    assert endpoint_of(a, keys["b"]) == f"[{B6_NEW}]:51820"
    assert ping(a, WG["b"])
