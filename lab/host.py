"""What the machine running the lab (and the tests that build lab nodes) must have: root and the
programs of a few Debian packages. ``make lab`` and ``make test`` install the packages
(``make packages``); this only says what is missing."""

import os
import shutil

# program -> the Debian package that ships it
PROGRAMS = {
    "wg": "wireguard-tools",
    "wireguard-go": "wireguard-go",
    "vtysh": "frr",
    "dnsmasq": "dnsmasq-base",
    "ifreload": "ifupdown2",
    "nft": "nftables",
    "iptables": "iptables",
    "iptables-legacy-restore": "iptables",
    "ipset": "ipset",
    "conntrack": "conntrack",
    "ip": "iproute2",
    "nsenter": "util-linux",
    "ping": "iputils-ping",
    "sysctl": "procps",
}


def missing():
    """What this machine lacks to run lab nodes, as one sentence, or None."""
    problems = []
    if os.geteuid() != 0:
        problems.append("root (lab nodes are network namespaces)")
    packages = sorted({package for program, package in PROGRAMS.items() if not shutil.which(program)})
    if packages:
        problems.append(f"the Debian packages {', '.join(packages)}")
    return f"needs {' and '.join(problems)}: run `make packages` as root" if problems else None
