"""
A lab host that answers and records what reaches it: the internet host ``www`` (TCP 80, and the
source of every ping) and, on each node, stand-ins for sshd (TCP 22), pveproxy (TCP 8006) and
corosync (UDP 5405), so that what a firewall lets through can be tested from anywhere.

Each TCP connection gets one line back, the source address it came from, then every line it
sends echoed (a session that stays open as long as the client keeps it); each UDP datagram is
answered with the source line; every one is logged as ``<time> <tcp|udp|icmp> <port> <address>``
(ICMP: echo requests, seen through a raw socket; the kernel answers them).

    python3 lab/answer.py --serve LOG --tcp 80 --icmp            # inside the www namespace
    python3 lab/answer.py --serve LOG --tcp 22,8006 --udp 5405   # inside a node
    python3 lab/answer.py --ask 198.51.100.80                    # what www sees of me (TCP 80)
    python3 lab/answer.py --ask 10.1.0.1 --udp 5405              # exit 0 when answered
"""

import argparse
import socket
import socketserver
import sys
import threading
import time

WWW_PORT = 80


def log_line(log, kind, port, address):
    with open(log, "a") as handle:
        handle.write(f"{time.time():.3f} {kind} {port} {address}\n")


def serve(log, tcp_ports, udp_ports, icmp):
    class Tcp(socketserver.StreamRequestHandler):
        def handle(self):
            address = self.client_address[0]
            log_line(log, "tcp", self.server.server_address[1], address)
            self.wfile.write(f"{address}\n".encode())
            for line in self.rfile:  # a session: each line sent is echoed until the client closes
                self.wfile.write(line)

    class Udp(socketserver.BaseRequestHandler):
        def handle(self):
            _, sock = self.request
            address = self.client_address[0]
            log_line(log, "udp", self.server.server_address[1], address)
            sock.sendto(f"{address}\n".encode(), self.client_address)

    def pings():
        # A raw ICMP socket sees a copy of every ICMP packet that reaches this host.
        with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as raw:
            while True:
                packet, (address, _) = raw.recvfrom(65535)
                if packet[(packet[0] & 0x0F) * 4] == 8:  # echo request
                    log_line(log, "icmp", "-", address)

    socketserver.TCPServer.allow_reuse_address = True
    servers = [socketserver.ThreadingTCPServer(("0.0.0.0", port), Tcp) for port in tcp_ports]
    servers += [socketserver.ThreadingUDPServer(("0.0.0.0", port), Udp) for port in udp_ports]
    threads = [threading.Thread(target=server.serve_forever, daemon=True) for server in servers]
    if icmp:
        threads.append(threading.Thread(target=pings, daemon=True))
    for thread in threads:
        thread.start()
    threading.Event().wait()


def ask(address, port=WWW_PORT, udp=False, timeout=3.0):
    """The source address the host at ``address`` sees for a connection (or a datagram) from
    here; OSError when nothing answers."""
    if udp:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.connect((address, port))
            sock.send(b"?")
            return sock.recv(256).decode().strip()
    with socket.create_connection((address, port), timeout=timeout) as connection:
        return connection.makefile().readline().strip()


def ports(text):
    return [int(port) for port in text.split(",") if port]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--serve", metavar="LOG", help="answer and record, logging to LOG")
    mode.add_argument("--ask", metavar="ADDRESS", help="print the source address the host at ADDRESS sees")
    parser.add_argument("--tcp", type=ports, default=[], help="serve: TCP ports; ask: the TCP port (default 80)")
    parser.add_argument("--udp", type=ports, default=[], help="serve: UDP ports; ask: ask over this UDP port")
    parser.add_argument("--icmp", action="store_true", help="serve: record pings")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.tcp, args.udp, args.icmp)
        return 0
    try:
        if args.udp:
            print(ask(args.ask, args.udp[0], udp=True, timeout=args.timeout))
        else:
            print(ask(args.ask, (args.tcp or [WWW_PORT])[0], timeout=args.timeout))
    except OSError as err:
        print(f"no answer from {args.ask}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
