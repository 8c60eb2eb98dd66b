"""
The lab's host on the emulated internet (``www``): it answers TCP on port 80 with the source
address it sees, one line, and records every TCP source and every ping's (ICMP echo request)
source in a log, ``<time> <tcp|icmp> <address>`` a line; the kernel answers the pings. What a
guest behind SNAT and NAT routers looks like from the internet is then one connection away:

    ip netns exec <vm> python3 lab/www.py --ask 198.51.100.80

Run inside the ``www`` namespace: ``python3 lab/www.py --serve LOG``.
"""

import argparse
import socket
import socketserver
import sys
import threading
import time

PORT = 80


def log_line(log, kind, address):
    with open(log, "a") as handle:
        handle.write(f"{time.time():.3f} {kind} {address}\n")


def serve(log):
    class Seen(socketserver.BaseRequestHandler):
        def handle(self):
            address = self.client_address[0]
            log_line(log, "tcp", address)
            self.request.sendall(f"{address}\n".encode())

    def pings():
        # A raw ICMP socket sees a copy of every ICMP packet that reaches this host.
        with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as raw:
            while True:
                packet, (address, _) = raw.recvfrom(65535)
                header_length = (packet[0] & 0x0F) * 4
                if packet[header_length] == 8:  # echo request
                    log_line(log, "icmp", address)

    threading.Thread(target=pings, daemon=True).start()
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    with socketserver.ThreadingTCPServer(("0.0.0.0", PORT), Seen) as server:
        server.serve_forever()


def ask(address, timeout=3.0):
    """The source address ``www`` at ``address`` sees for a connection from here."""
    with socket.create_connection((address, PORT), timeout=timeout) as connection:
        return connection.makefile().readline().strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--serve", metavar="LOG", help="answer and record, logging to LOG")
    group.add_argument("--ask", metavar="ADDRESS", help="print the source address www at ADDRESS sees")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    try:
        print(ask(args.ask))
    except OSError as err:
        print(f"no answer from {args.ask}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
