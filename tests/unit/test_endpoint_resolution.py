"""
Endpoint resolution (_utils/endpoints.py), the one semantics the WireGuard state, its refresh
and the endpoint beacon share: a name is the set of its addresses, the endpoint the first of
them (IPv4 first, numeric order). Name resolution is this test's table.
"""

import socket

import pytest

import endpoints


@pytest.fixture
def dns(monkeypatch):
    """{name: [addresses] in the order the resolver answers, or None (does not resolve)}"""
    table = {}

    def getaddrinfo(host, port, *args, **kwargs):
        if host in table and table[host] is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        answers = table.get(host, [host])
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_DGRAM, 17, "", (a, port or 0))
            for a in answers
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


def test_a_round_robin_answer_is_one_set_and_one_endpoint(dns):
    dns["rr.example.net"] = ["203.0.113.20", "198.51.100.7", "203.0.113.3"]
    first = (endpoints.addresses("rr.example.net"), endpoints.resolve("rr.example.net:51820"))
    dns["rr.example.net"] = ["203.0.113.3", "203.0.113.20", "198.51.100.7", "203.0.113.3"]
    assert (endpoints.addresses("rr.example.net"), endpoints.resolve("rr.example.net:51820")) == first
    assert first == (["198.51.100.7", "203.0.113.3", "203.0.113.20"], "198.51.100.7:51820")


def test_ipv4_comes_before_ipv6(dns):
    dns["dual.example.net"] = ["2001:db8::5", "203.0.113.5"]
    assert endpoints.addresses("dual.example.net") == ["203.0.113.5", "2001:db8::5"]
    assert endpoints.resolve("dual.example.net:51821") == "203.0.113.5:51821"
    dns["v6.example.net"] = ["2001:db8::10", "2001:db8::9"]
    assert endpoints.resolve("v6.example.net:51820") == "[2001:db8::9]:51820"


def test_a_name_that_does_not_resolve_is_none(dns):
    dns["gone.example.invalid"] = None
    assert endpoints.addresses("gone.example.invalid") is None
    assert endpoints.resolve("gone.example.invalid:51820") is None


def test_addresses_resolve_to_themselves():
    assert endpoints.resolve("203.0.113.10:51820") == "203.0.113.10:51820"
    assert endpoints.resolve("[2001:db8::1]:51820") == "[2001:db8::1]:51820"
    assert endpoints.addresses("2001:db8::1") == ["2001:db8::1"]


@pytest.mark.parametrize(
    "endpoint, parts",
    [("wro.example.net:51820", ("wro.example.net", 51820)), ("[2001:db8::1]:51821", ("2001:db8::1", 51821))],
)
def test_split_and_join_are_inverse(endpoint, parts):
    assert endpoints.split(endpoint) == parts
    assert endpoints.join(*parts) == endpoint
