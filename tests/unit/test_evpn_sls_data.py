"""
The model's answers made for the SLS files (evpn.wireguard_interface, sdn_keep,
sysctl_settings), on the checkout's example pillar: what an SLS maps to its states as it is.
"""

import copy

import pytest

import evpn

KEY_ROZ = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
KEY_WRO = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0="


@pytest.fixture
def configure_loader_modules(federation):
    return {evpn: {"__opts__": {"id": "pve-roz1"}, "__pillar__": {"evpn": federation}}}


def test_wireguard_interface_is_the_state_arguments():
    mine = {"pve-roz1": {"wg0": KEY_ROZ}, "pve-wro1": {"wg0": KEY_WRO}, "backup-server": {"wg0": "x"}}
    assert evpn.wireguard_interface(public_keys=mine) == {
        "interface": "wg0",
        "address": "10.1.0.1/32",
        "port": 51820,
        "mtu": 1420,
        "peers": [
            {
                "name": "pve-roz2",
                "public_key": None,
                "allowed_ips": ["10.1.0.2/32"],
                "endpoint": "192.168.2.12:51820",
                "keepalive": 25,
            },
            {
                "name": "pve-wro1",
                "public_key": KEY_WRO,
                "allowed_ips": ["10.2.0.1/32"],
                "endpoint": "wro.example.net:51820",
                "keepalive": 25,
            },
        ],
    }


@pytest.mark.parametrize(
    "mine",
    [None, {}, {"pve-wro1": {}}, {"pve-wro1": {"wg1": KEY_WRO}}, {"pve-wro1": KEY_WRO}],
    ids=["no-mine", "empty", "no-key-yet", "another-interface", "not-by-interface"],
)
def test_a_peer_without_a_key_for_the_configured_interface_has_none(mine):
    (peer,) = [p for p in evpn.wireguard_interface(public_keys=mine)["peers"] if p["name"] == "pve-wro1"]
    assert peer["public_key"] is None


def test_the_key_follows_the_configured_interface(federation):
    """evpn:wireguard:interface chooses the key the mine published for that interface: the
    mine itself is not told which interface to publish."""
    other = copy.deepcopy(federation)
    other["wireguard"] = {"interface": "wgevpn"}
    mine = {"pve-wro1": {"wg0": "old" + KEY_WRO[3:], "wgevpn": KEY_WRO}}
    wireguard = evpn.wireguard_interface(public_keys=mine, federation=other)
    assert wireguard["interface"] == "wgevpn"
    assert [p["public_key"] for p in wireguard["peers"]] == [None, KEY_WRO]  # pve-roz2 published none


def test_sdn_keep_names_each_vnet_and_its_subnets(federation):
    assert evpn.sdn_keep("roz") == {"roz1": ["evpn-10.1.1.0-24"]}
    other = copy.deepcopy(federation)
    other["vnets"] = {"shared": {"tag": 13001, "subnets": {"10.3.1.0/24": {}, "10.3.2.0/24": {}}}}
    other["sites"]["wro"]["vnets"]["empty"] = {"tag": 12002}
    assert evpn.sdn_keep("wro", federation=other) == {
        "shared": ["evpn-10.3.1.0-24", "evpn-10.3.2.0-24"],
        "wro1": ["evpn-10.2.1.0-24"],
        "empty": [],
    }


def test_sysctl_settings_do_not_depend_on_the_interfaces():
    """rp_filter on all, default and, through a wildcard, every interface: the same settings
    (and so the same persisted file) whatever interfaces come and go."""
    assert evpn.sysctl_settings() == {
        "net.ipv4.conf.*.rp_filter": 0,
        "net.ipv4.conf.all.rp_filter": 0,
        "net.ipv4.conf.default.rp_filter": 0,
        "net.ipv4.ip_forward": 1,
    }
