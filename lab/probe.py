"""
Probes for what a lab node's firewall lets through, run inside any lab namespace
(``ip netns exec <namespace> python3 lab/probe.py ...``); each exits 0 when the probe got through.

    probe.py tcp HOST PORT [--source ADDR]          # a TCP connection is accepted
    probe.py vxlan HOST VNI MAC IP [--source ADDR]  # sends one VXLAN frame: a UDP datagram to IP
                                                    # (inner destination MAC and IP) with a marker
    probe.py sniff IFACE MARKER [--timeout S]       # a frame holding MARKER arrives on IFACE

``--source`` sends from another address than the namespace's own (it must be configured on one of
its interfaces): a spoofed sender, whose answers go elsewhere. A TCP probe from such a source
counts as through when the listener saw it, which is what ``lab/answer.py``'s log says: so the
spoofed case is judged by the listener's log, and this probe only sends the SYN.
"""

import argparse
import socket
import struct
import sys
import time

VXLAN_PORT = 4789


def tcp(host, port, source=None, timeout=2.0):
    """Whether a TCP connection to ``host:port`` is accepted (from ``source``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        if source:
            sock.bind((source, 0))
        try:
            sock.connect((host, port))
        except OSError:
            return False
    return True


def _checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def vxlan_frame(vni, mac, ip, marker):
    """A VXLAN payload: an Ethernet frame to ``mac`` holding an IPv4 UDP datagram to ``ip``:9."""
    payload = marker.encode()
    udp = struct.pack("!HHHH", 40000, 9, 8 + len(payload), 0) + payload
    source_ip, dest_ip = socket.inet_aton("10.255.0.1"), socket.inet_aton(ip)
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, source_ip, dest_ip)
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    ethernet = bytes.fromhex(mac.replace(":", "")) + bytes.fromhex("020000ff0001") + b"\x08\x00"
    return struct.pack("!II", 0x08000000, vni << 8) + ethernet + header + udp


def vxlan(host, vni, mac, ip, marker, source=None):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        if source:
            sock.bind((source, 0))
        sock.sendto(vxlan_frame(vni, mac, ip, marker), (host, VXLAN_PORT))


def sniff(interface, marker, timeout=3.0):
    """Whether a frame holding ``marker`` arrives on ``interface`` within ``timeout`` seconds."""
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003)) as sock:
        sock.bind((interface, 0))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                frame = sock.recv(65535)
            except TimeoutError:
                return False
            if marker.encode() in frame:
                return True
    return False


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    tcp_parser = commands.add_parser("tcp")
    tcp_parser.add_argument("host")
    tcp_parser.add_argument("port", type=int)
    tcp_parser.add_argument("--source")
    vxlan_parser = commands.add_parser("vxlan")
    for name in ("host", "vni", "mac", "ip", "marker"):
        vxlan_parser.add_argument(name, type=int if name == "vni" else str)
    vxlan_parser.add_argument("--source")
    sniff_parser = commands.add_parser("sniff")
    sniff_parser.add_argument("interface")
    sniff_parser.add_argument("marker")
    sniff_parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args()
    if args.command == "tcp":
        return 0 if tcp(args.host, args.port, args.source) else 1
    if args.command == "vxlan":
        vxlan(args.host, args.vni, args.mac, args.ip, args.marker, args.source)
        return 0
    return 0 if sniff(args.interface, args.marker, args.timeout) else 1


if __name__ == "__main__":
    sys.exit(main())
