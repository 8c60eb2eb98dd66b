"""
WireGuard endpoint names resolved one way everywhere: by the WireGuard state and its refresh
(``wireguard.resolve``) and by the endpoint beacon (``wireguard.addresses``).

A name stands for the set of addresses it resolves to now. The endpoint WireGuard is given is
the first of them in a fixed order, IPv4 before IPv6 and numeric within each: a round-robin
answer (the same records in another order on every query) neither moves a tunnel nor looks like
a change to the beacon, and a dual-stack name is reached over IPv4, which is where ISP routers
forward the WireGuard port.

Use (a utility module, loaded by Salt as ``__utils__``):

.. code-block:: python

    __utils__["endpoints.resolve"]("wro.example.net:51820")  # '198.51.100.12:51820' or None
"""

import ipaddress
import socket


def addresses(host):
    """The addresses ``host`` resolves to now, without duplicates, IPv4 first and in numeric
    order; None when it does not resolve. An IP address resolves to itself."""
    try:
        answers = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError):
        return None
    found = {ipaddress.ip_address(answer[4][0]) for answer in answers}
    return [str(address) for address in sorted(found, key=lambda address: (address.version, address))] or None


def join(host, port):
    """``host:port``, with an IPv6 address in brackets as WireGuard writes it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split(endpoint):
    """``host:port`` or ``[IPv6]:port`` -> (host, port)."""
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)


def resolve(endpoint):
    """``host:port`` (``[IPv6]:port`` too) with the host resolved now to the first of its
    addresses, as WireGuard takes an endpoint; None when the host does not resolve."""
    host, port = split(endpoint)
    found = addresses(host)
    return join(found[0], port) if found else None
