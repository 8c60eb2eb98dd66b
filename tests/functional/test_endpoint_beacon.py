"""
The evpn_endpoint beacon alone, through Salt's beacon loader on pve-roz1 of the checkout's
pillar. Name resolution is this test's table (socket.getaddrinfo replaced); the beacon's side
effects, re-pointing this node's peers and sending the event, are recorded.
"""

import logging
import socket

import pytest
import salt.loader
from salt.exceptions import CommandExecutionError, SaltInvocationError

CONFIG = [{"interval": 1}]
OWN, PEER = "roz.example.net", "wro.example.net"


@pytest.fixture
def dns(monkeypatch):
    """{name: address, list of addresses in the resolver's order, or None (does not resolve)}"""
    table = {OWN: "203.0.113.11", PEER: "203.0.113.12"}

    def getaddrinfo(host, port, *args, **kwargs):
        if table.get(host) is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        answers = table[host] if isinstance(table[host], list) else [table[host]]
        return [(socket.AF_INET, socket.SOCK_DGRAM, 17, "", (address, 0)) for address in answers]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


@pytest.fixture
def calls():
    return []


@pytest.fixture
def interface():
    """What wireguard.link answers: the node's interface exists."""
    return {"wg0": {"mtu": 1420, "up": True, "addresses": ["10.1.0.1/32"]}}


@pytest.fixture
def refresh_error():
    """What wireguard.refresh_endpoints raises ([]: nothing, it works)."""
    return []


@pytest.fixture
def functions(loaders, calls, interface, refresh_error):
    """The real evpn model on the checkout's pillar and the real resolution; the side effects
    recorded."""
    evpn = loaders.modules.evpn

    def refresh_endpoints(name, force=False):
        calls.append(("refresh", name, force))
        if refresh_error:
            raise refresh_error[0]
        return {"changed": {}, "unresolved": []}

    return {
        "evpn.members": evpn.members,
        "evpn.config": evpn.config,
        "evpn.node": evpn.node,
        "evpn.endpoint_names": evpn.endpoint_names,
        "wireguard.link": interface.get,
        "wireguard.addresses": loaders.utils["endpoints.addresses"],
        "wireguard.refresh_endpoints": refresh_endpoints,
        "event.send": lambda tag, data: calls.append(("event", tag, data)) or True,
    }


def _loader(loaders, functions, cachedir):
    return salt.loader.beacons({**loaders.opts, "cachedir": str(cachedir)}, functions)


@pytest.fixture
def beacon(loaders, functions, tmp_path):
    return _loader(loaders, functions, tmp_path)


def _check(beacons, config=CONFIG):
    assert beacons["evpn_endpoint.beacon"](config) == []


def _first_check(beacons, calls):
    """The first check: every name answers for the first time, the node re-points its own
    peers (which changes nothing where their addresses hold), nothing goes to the master."""
    _check(beacons)
    assert calls == [("refresh", "wg0", False)]
    calls.clear()


def test_fires_once_per_change_and_never_on_a_first_answer(beacon, dns, calls):
    _first_check(beacon, calls)
    _check(beacon)
    assert calls == []
    dns[PEER] = "198.51.100.12"
    _check(beacon)
    _check(beacon)
    assert calls == [("refresh", "wg0", False), ("event", "evpn/endpoint/changed", {"names": [PEER]})]


def test_a_failed_resolution_is_not_a_change(beacon, dns, calls):
    _first_check(beacon, calls)
    dns[PEER] = None
    _check(beacon)
    dns[PEER] = "203.0.113.12"
    _check(beacon)
    assert calls == []
    dns[PEER] = None
    _check(beacon)
    dns[PEER] = "198.51.100.12"
    _check(beacon)
    assert calls == [("refresh", "wg0", False), ("event", "evpn/endpoint/changed", {"names": [PEER]})]


def test_its_own_name_moving_resets_every_peer(beacon, dns, calls):
    _first_check(beacon, calls)
    dns[OWN] = "198.51.100.11"
    _check(beacon)
    assert calls == [("refresh", "wg0", True), ("event", "evpn/endpoint/changed", {"names": [OWN]})]


def test_a_change_while_the_beacon_was_reloaded_is_seen(beacon, loaders, functions, dns, calls, tmp_path):
    _first_check(beacon, calls)
    dns[PEER] = "198.51.100.12"
    _check(_loader(loaders, functions, tmp_path))
    assert calls == [("refresh", "wg0", False), ("event", "evpn/endpoint/changed", {"names": [PEER]})]


def test_a_round_robin_answer_in_another_order_is_not_a_change(beacon, dns, calls):
    dns[PEER] = ["203.0.113.12", "198.51.100.12"]
    _first_check(beacon, calls)
    dns[PEER] = ["198.51.100.12", "203.0.113.12"]
    _check(beacon)
    assert calls == []
    dns[PEER] = ["198.51.100.12"]
    _check(beacon)
    assert calls == [("refresh", "wg0", False), ("event", "evpn/endpoint/changed", {"names": [PEER]})]


def test_a_failing_refresh_is_logged_once_and_the_beacon_goes_on(beacon, dns, calls, refresh_error, caplog):
    """A persisted configuration wg-quick would refuse makes every refresh fail: the beacon
    still tells the master, and says so in the log once, not at every change."""
    _first_check(beacon, calls)
    refresh_error.append(CommandExecutionError("/etc/wireguard/wg0.conf: line 7: '[Peers]' is not a section"))
    with caplog.at_level(logging.DEBUG, logger="salt.loaded.ext.beacons.evpn_endpoint"):
        for address in ("198.51.100.12", "198.51.100.13", "198.51.100.14"):
            dns[PEER] = address
            _check(beacon)
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert warnings == [
            "evpn_endpoint: re-pointing the peers of wg0 failed: /etc/wireguard/wg0.conf: line 7: "
            "'[Peers]' is not a section"
        ]
        assert [c[0] for c in calls] == ["refresh", "event"] * 3
        refresh_error.clear()
        dns[PEER] = "198.51.100.15"
        _check(beacon)
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert warnings[1:] == ["evpn_endpoint: re-pointing the peers of wg0 works again"]


def test_a_name_that_did_not_resolve_yet_is_tried_at_every_check(beacon, dns, calls):
    """DNS not up yet at boot: the name is tried again at every check; its first answer
    re-points this node's peers, and nothing goes to the master (no answer changed)."""
    dns[PEER] = None
    _first_check(beacon, calls)
    _check(beacon)
    assert calls == []
    dns[PEER] = "198.51.100.12"
    _check(beacon)
    _check(beacon)
    assert calls == [("refresh", "wg0", False)]


@pytest.fixture
def without_pillar(functions):
    """A minion that booted while its master is away: no evpn pillar; the names of its
    persisted WireGuard configuration (wireguard.endpoint_names of the interface asked)."""

    def no_pillar(*args, **kwargs):
        raise SaltInvocationError("the evpn pillar is invalid, nothing was changed: evpn: missing")

    functions.update(
        {
            "evpn.members": no_pillar,
            "wireguard.endpoint_names": lambda interface: [PEER] if interface == "wg0" else [],
        }
    )


def test_without_a_pillar_it_watches_the_persisted_configuration(without_pillar, beacon, dns, calls):
    _first_check(beacon, calls)
    dns[OWN] = "198.51.100.11"  # not in the persisted configuration: not watched
    _check(beacon)
    assert calls == []
    dns[PEER] = "198.51.100.12"
    _check(beacon)
    assert calls == [("refresh", "wg0", False), ("event", "evpn/endpoint/changed", {"names": [PEER]})]


def test_without_a_pillar_the_interface_is_the_configured_one(without_pillar, beacon, dns, calls, interface):
    interface["wg1"] = interface["wg0"]
    _check(beacon, [{"interval": 1}, {"interface": "wg1"}])
    assert calls == []  # wg1's persisted configuration has no names


def test_without_a_pillar_or_wireguard_tools_it_does_nothing(without_pillar, functions, loaders, tmp_path, calls):
    for name in [f for f in functions if f.startswith("wireguard.")]:
        del functions[name]
    _check(_loader(loaders, functions, tmp_path))
    assert calls == []


def test_idle_without_the_interface(beacon, interface, dns, calls):
    interface.clear()
    _check(beacon)
    dns[PEER] = "198.51.100.12"
    _check(beacon)
    assert calls == []


@pytest.mark.parametrize(
    "config, valid",
    [
        ([{"interval": 5}], True),
        ([{"interval": 5}, {"enabled": False}], True),
        ([{"interval": 5}, {"interface": "wg1"}], True),
        ([], True),
        ([{"names": ["x.example.net"]}], False),
        ({"interval": 5}, False),
    ],
)
def test_validate(beacon, config, valid):
    assert beacon["evpn_endpoint.validate"](config)[0] is valid


def test_it_validates_the_pillar_only_when_the_pillar_changes(beacon, loaders, dns, caplog, monkeypatch):
    """The model keeps its validation in the minion's module context, which lives as long as the
    beacon's modules: ticks on one pillar validate it once, a changed pillar once more."""
    caplog.set_level("DEBUG")

    def validations():
        return sum(r.getMessage() == "evpn: validating the pillar" for r in caplog.records)

    for _ in range(3):
        _check(beacon)
    assert validations() == 1
    monkeypatch.setitem(loaders.opts["pillar"]["evpn"], "asn", 65001)  # a refreshed pillar
    assert loaders.modules.evpn.config()["asn"] == 65001
    for _ in range(3):
        _check(beacon)
    assert validations() == 2
