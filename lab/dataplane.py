"""
Runs in a lab node what the emulator's SDN apply rendered for it (PVESIM_ROOT/nodes/<node>/etc),
as PVE's per-node network reload does: FRR with the rendered frr.conf (started, or reloaded with
frr-reload.py as PVE reloads it), then ifupdown2's ``ifreload -a`` for the rendered
interfaces.d/sdn.

The deviations from PVE's output are made here and nowhere else (this kernel has no VRF device):

- The zone's VRF is dropped and its L3 VNI is bound to FRR's default VRF (a global
  ``vni <vrf-vxlan>``, as FRR shows it): the vnet bridges and the L3 VNI bridge live in the global table, the
  router MAC of the L3 VNI bridge is set per node, and the L3 VNI bridge forwards (in a VRF the
  VRF device is the ingress that forwards; here it is the bridge, which ifupdown2 leaves with
  forwarding off). Routing between sites uses the type-2 MAC/IP routes with the router MAC
  (symmetric IRB).
- Without a tenant VRF nothing may be leaked into EVPN from the global table, so the per-zone
  ``router bgp ... vrf`` instance (redistribute connected, default-originate on exit nodes), the
  ``import vrf`` lines and the null routes for other zones are left out. What this costs: a guest
  on a node that is not an exit node has no default route through an exit node (on PVE the exit
  nodes announce one as type-5 into the zone's VRF), so it reaches guests everywhere but not the
  internet; a guest on an exit node reaches the internet through the exit node's SNAT line and its
  uplink, as on PVE.
- SNAT lines are kept: the emulated internet is the lab's own namespace.
"""

import json
import re

from netns import wait_until

FRR_DAEMONS = ("zebra", "bgpd")
INTERFACES = "auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n"


def router_mac(wireguard_address):
    """The router MAC of a node's L3 VNI bridge, unique in the federation: from its address."""
    octets = [int(part) for part in wireguard_address.split(".")]
    return "02:00:" + ":".join(f"{octet:02x}" for octet in octets)


GUEST_PORT = "^vm[0-9]+$"  # the lab's guest ports (lab/netns.py, Lab.vm)


def adapt_interfaces(text, mac):
    """interfaces.d/sdn without VRF devices, with a router MAC per node; vnet bridges keep
    their guest ports on a reload, as PVE's ifupdown2 keeps VM ports (Debian's removes every
    port the file does not name, unless it matches bridge-ports-condone-regex)."""
    stanzas = []
    for stanza in text.split("\n\n"):
        name = re.search(r"^iface (\S+)", stanza, re.M)
        if name and name.group(1).startswith("vrf_"):
            continue
        lines = [line for line in stanza.splitlines() if not re.match(r"\s*vrf vrf_", line)]
        if name and name.group(1).startswith("vrfbr_"):
            # ifupdown2 applies ip-forward only to interfaces with an address
            lines += [f"\thwaddress {mac}", f"\tpost-up sysctl -qw net.ipv4.conf.{name.group(1)}.forwarding=1"]
        elif re.search(r"^\s*bridge[-_]ports ", stanza, re.M):
            lines.append(f"\tbridge-ports-condone-regex {GUEST_PORT}")
        stanzas.append("\n".join(lines))
    return "\n\n".join(stanzas) + "\n"


def adapt_frr(text):
    """frr.conf with the L3 VNI in the default VRF and no per-zone VRF instance. Stanzas are
    what lies between lines of ``!`` (pve-network 0.11.x, PVE 8.4, writes two after the header)."""
    stanzas = [s for s in re.split(r"\n(?:!\n)+", text.rstrip("\n")) if s]
    kept = []
    for stanza in stanzas:
        first = stanza.splitlines()[0] if stanza else ""
        if first.startswith("vrf vrf_"):
            # the default VRF's L3 VNI, written as FRR shows it (a global ``vni``): in a
            # ``vrf default`` block frr-reload.py reads it as changed and re-adds it on every
            # reload, and zebra forgets the router MACs of the routes it already had
            vni = re.search(r"^ vni (\d+)$", stanza, re.M)
            kept.append(f"vni {vni.group(1)}")
        elif re.match(r"router bgp \d+ vrf ", first) or re.match(r"ipv6? route \S+ \S+ xvrf_", first):
            continue
        elif re.match(r"router bgp \d+$", first):
            without_imports = re.sub(
                r" !\n address-family ipv[46] unicast\n(  import vrf \S+\n)+ exit-address-family\n", "", stanza
            )
            kept.append(
                without_imports.replace("  advertise-all-vni\n", "  advertise-all-vni\n  advertise ipv4 unicast\n")
            )
        else:
            kept.append(stanza)
    return "\n!\n".join(kept) + "\n"


def start_frr(node):
    """zebra and bgpd in the node (their PIDs recorded) with the configuration loaded; when they
    run already, the configuration reloaded as PVE reloads it (frr-reload.py)."""
    if node.run("test", "-S", "/run/frr/bgpd.vty", check=False).returncode == 0:
        return node.run("/usr/lib/frr/frr-reload.py", "--reload", "/etc/frr/frr.conf", check=False)
    node.run("install", "-d", "-o", "frr", "-g", "frr", "-m", "755", "/run/frr")
    node.run("sh", "-c", "printf 'service integrated-vtysh-config\\n' > /etc/frr/vtysh.conf")
    for daemon in FRR_DAEMONS:
        extra = ["-s", "90000000"] if daemon == "zebra" else []
        node.spawn(
            f"/usr/lib/frr/{daemon}",
            "-A",
            "127.0.0.1",
            *extra,
            label=f"frr {daemon}",
            log_path=node.root / f"frr-{daemon}.log",
        )
    wait_until(
        lambda: node.run("test", "-S", "/run/frr/bgpd.vty", check=False).returncode == 0,
        f"{node.name}: bgpd did not start",
    )
    return node.run("vtysh", "-b", check=False)


def load(node, rendered, mac):
    """The node runs what was rendered for it (``rendered``: its etc folder under
    PVESIM_ROOT/nodes/<node>); FRR first, so that the L3 VNI is known before its devices.
    Returns ifreload's result, or None when the interfaces file did not change."""
    frr = adapt_frr((rendered / "frr" / "frr.conf").read_text())
    node.run("sh", "-c", "cat > /etc/frr/frr.conf", input=frr)
    start_frr(node)
    sdn = adapt_interfaces((rendered / "network" / "interfaces.d" / "sdn").read_text(), mac)
    if node.run("cat", "/etc/network/interfaces.d/sdn", check=False).stdout == sdn:
        return None
    node.run("mkdir", "-p", "/etc/network/interfaces.d", "/run/network")
    node.run("sh", "-c", "cat > /etc/network/interfaces", input=INTERFACES)
    node.run("sh", "-c", "cat > /etc/network/interfaces.d/sdn", input=sdn)
    return node.run("ifreload", "-a", check=False)


def bgp_sessions(node):
    """{peer: when its session was established (epoch seconds)} of the node's Established l2vpn
    evpn sessions."""
    output = node.run("vtysh", "-c", "show bgp l2vpn evpn summary json", check=False).stdout
    try:
        peers = json.loads(output or "{}").get("peers", {})
    except ValueError:
        return {}
    return {a: p["peerUptimeEstablishedEpoch"] for a, p in peers.items() if p.get("state") == "Established"}


def bgp_established(node):
    """The l2vpn evpn peers of the node whose session is Established."""
    return sorted(bgp_sessions(node))
