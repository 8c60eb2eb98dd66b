"""
Runs in a lab node what the emulator's SDN apply rendered for it (PVESIM_ROOT/nodes/<node>/etc),
as PVE's reload would: FRR started with the rendered frr.conf, then ifupdown2's ``ifreload -a``
for the rendered interfaces.d/sdn.

The deviations from PVE's output are made here and nowhere else (lab-recipe.md section 7):

- This kernel has no VRF device. The zone's VRF is dropped and its L3 VNI is bound to FRR's
  default VRF (``vrf default`` / `` vni <vrf-vxlan>``): the vnet bridges and the L3 VNI bridge
  live in the global table, the router MAC of the L3 VNI bridge is set per node, and the L3 VNI
  bridge forwards (in a VRF the VRF device is the ingress that forwards; here it is the bridge,
  which ifupdown2 leaves with forwarding off). Without a
  tenant VRF nothing may be leaked into EVPN from the global table, so the per-zone
  ``router bgp ... vrf`` instance (redistribute connected, default-originate on exit nodes),
  the ``import vrf`` lines and the null routes for other zones are left out; routing between
  sites uses the type-2 MAC/IP routes with the router MAC (symmetric IRB).
- SNAT lines are left out: lab safety forbids NAT, and the emulated internet leads nowhere.
"""

import json
import re
import time

FRR_DAEMONS = ("zebra", "bgpd")
INTERFACES = "auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n"


def adapt_interfaces(text, router_mac):
    """interfaces.d/sdn without VRF devices, SNAT lines, with a router MAC per node."""
    stanzas = []
    for stanza in text.split("\n\n"):
        name = re.search(r"^iface (\S+)", stanza, re.M)
        if name and name.group(1).startswith("vrf_"):
            continue
        lines = [
            line
            for line in stanza.splitlines()
            if not re.match(r"\s*vrf vrf_", line) and "SNAT" not in line and "CT --zone" not in line
        ]
        if name and name.group(1).startswith("vrfbr_"):
            # ifupdown2 applies ip-forward only to interfaces with an address
            lines += [f"\thwaddress {router_mac}", f"\tpost-up sysctl -qw net.ipv4.conf.{name.group(1)}.forwarding=1"]
        stanzas.append("\n".join(lines))
    return "\n\n".join(stanzas) + "\n"


def adapt_frr(text):
    """frr.conf with the L3 VNI in the default VRF and no per-zone VRF instance."""
    stanzas = text.split("\n!\n")
    kept = []
    for stanza in stanzas:
        first = stanza.splitlines()[0] if stanza else ""
        if first.startswith("vrf vrf_"):
            vni = re.search(r"^ vni \d+$", stanza, re.M)
            kept.append(f"vrf default\n{vni.group(0)}\nexit-vrf")
        elif re.match(r"router bgp \d+ vrf ", first) or re.match(r"ipv6? route \S+ \S+ xvrf_", first):
            continue
        elif re.match(r"router bgp \d+$", first):
            without_imports = re.sub(
                r" !\n address-family ipv6? unicast\n(  import vrf \S+\n)+ exit-address-family\n", "", stanza
            )
            kept.append(
                without_imports.replace("  advertise-all-vni\n", "  advertise-all-vni\n  advertise ipv4 unicast\n")
            )
        else:
            kept.append(stanza)
    return "\n!\n".join(kept)


def start_frr(node):
    """zebra and bgpd in the node (their PIDs recorded) unless they run, then the configuration
    pushed (added to what runs: how a new peer reaches a running node)."""
    if node.run("test", "-S", "/run/frr/bgpd.vty", check=False).returncode == 0:
        node.run("vtysh", "-b", check=False)
        return
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
    for _ in range(100):
        if node.run("test", "-S", "/run/frr/bgpd.vty", check=False).returncode == 0:
            break
        time.sleep(0.05)
    node.run("vtysh", "-b", check=False)


def load(node, rendered, router_mac):
    """The node runs what was rendered for it (``rendered``: its etc folder under
    PVESIM_ROOT/nodes/<node>); FRR first, so that the L3 VNI is known before its devices."""
    frr = adapt_frr((rendered / "frr" / "frr.conf").read_text())
    node.run("sh", "-c", "cat > /etc/frr/frr.conf", input=frr)
    start_frr(node)
    sdn = adapt_interfaces((rendered / "network" / "interfaces.d" / "sdn").read_text(), router_mac)
    if node.run("cat", "/etc/network/interfaces.d/sdn", check=False).stdout == sdn:
        # PVE's ifupdown2 keeps the guests' ports on a reload; Debian's removes every bridge port
        # the file does not name (the lab's VMs), so an unchanged file is not reloaded.
        return None
    node.run("mkdir", "-p", "/etc/network/interfaces.d", "/run/network")
    node.run("sh", "-c", "cat > /etc/network/interfaces", input=INTERFACES)
    node.run("sh", "-c", "cat > /etc/network/interfaces.d/sdn", input=sdn)
    return node.run("ifreload", "-a", check=False)


def bgp_established(node):
    """The l2vpn evpn peers of the node whose session is Established."""
    output = node.run("vtysh", "-c", "show bgp l2vpn evpn summary json", check=False).stdout
    try:
        peers = json.loads(output or "{}").get("peers", {})
    except ValueError:
        return []
    return sorted(address for address, peer in peers.items() if peer.get("state") == "Established")
