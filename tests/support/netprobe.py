"""
One end of a packet probe, run inside a namespace (tests/support/netfilter.py):

    netprobe.py listen tcp|udp ADDRESS PORT TIMEOUT DEVICE   prints "ready", then "got" or "nothing"
    netprobe.py send tcp|udp SOURCE DEST PORT TIMEOUT        prints ok, refused, timeout, eperm or sent
"""

import socket
import struct
import sys


def listen(proto, address, port, timeout, device):
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if address.startswith("239."):
        sock.bind(("", port))
        membership = struct.pack("4s4si", socket.inet_aton(address), bytes(4), socket.if_nametoindex(device))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    else:
        sock.bind((address, port))
    if proto == "tcp":
        sock.listen(4)
    sock.settimeout(timeout)
    print("ready", flush=True)
    try:
        if proto == "tcp":
            sock.accept()[0].close()
        else:
            _, peer = sock.recvfrom(2048)
            if not address.startswith("239."):
                sock.sendto(b"pong", peer)
        print("got", flush=True)
    except TimeoutError:
        print("nothing", flush=True)


def send(proto, source, dest, port, timeout):
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, kind)
    sock.bind((source, 0))
    sock.settimeout(timeout)
    try:
        if proto == "tcp":
            sock.connect((dest, port))
        elif dest.startswith("239."):
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(source))
            sock.sendto(b"ping", (dest, port))
            print("sent")
            return
        else:
            sock.connect((dest, port))
            sock.send(b"ping")
            sock.recv(2048)
        print("ok")
    except ConnectionRefusedError:
        print("refused")
    except TimeoutError:
        print("timeout")
    except PermissionError:
        print("eperm")


if __name__ == "__main__":
    mode, proto = sys.argv[1], sys.argv[2]
    if mode == "listen":
        listen(proto, sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), sys.argv[6])
    else:
        send(proto, sys.argv[3], sys.argv[4], int(sys.argv[5]), float(sys.argv[6]))
