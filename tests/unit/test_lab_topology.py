"""The lab's topology read with the pillar (lab/topology.py): what the default one builds, and
what the lab refuses to emulate, each refusal naming the key."""

import copy

import pytest
import yaml

import topology
from support.federation import REPO, example_federation

DEFAULT = yaml.safe_load(topology.DEFAULT_TOPOLOGY.read_text())


def plan(federation=None, changes=None):
    spec = copy.deepcopy(DEFAULT)
    if changes:
        changes(spec)
    return topology._Planner(spec, federation or example_federation()).plan()


def problems(federation=None, changes=None):
    with pytest.raises(topology.TopologyError) as err:
        plan(federation, changes)
    return err.value.problems


def test_the_default_topology_builds_the_deployment_of_the_design():
    built = plan()
    assert built.internet == {"dns": "203.0.113.53", "master": "203.0.113.5", "www": "198.51.100.80"}
    assert built.dns == {
        "roz.example.net": "203.0.113.10",
        "wro.example.net": "198.51.100.20",
        "krk.example.net": "203.0.113.30",
    }
    roz, wro, krk = built.sites["roz"], built.sites["wro"], built.sites["krk"]
    assert (roz.pve, wro.pve) == ("9.1", "8.4")
    assert [(r.wan, str(r.lan), r.upstream) for r in roz.routers] == [
        ("203.0.113.10", "192.168.1.0/24", "inet"),
        ("192.168.1.2", "192.168.2.0/24", "rtr-roz-0"),
    ]
    assert [r.dynamic for r in wro.routers] == [True]
    nodes = built.nodes()
    assert [(n, nodes[n].address, nodes[n].public_port, nodes[n].exit_node) for n in ("pve-roz1", "pve-roz2")] == [
        ("pve-roz1", "192.168.2.11", 51820, True),
        ("pve-roz2", "192.168.2.12", 51821, False),
    ]
    # Built by make lab: what the pillar has; pve-roz3 and krk wait for make lab-add.
    assert sorted(built.nodes(in_pillar=True)) == ["pve-roz1", "pve-roz2", "pve-wro1"]
    assert nodes["pve-roz3"].pillar == {
        "address": "10.1.0.3",
        "endpoint": "roz.example.net:51822",
        "lan_endpoint": "192.168.2.13",
    }
    assert krk.pillar["nodes"] == {"pve-krk1": {"address": "10.3.0.1", "endpoint": "krk.example.net"}}
    assert not krk.routers and nodes["pve-krk1"].address == "203.0.113.30"
    assert [(g.address, g.gateway) for g in built.guests(["pve-roz2"])] == [("10.1.1.11/24", "10.1.1.1")]


def _set(path, value):
    def change(spec):
        *parents, last = path.split(":")
        for key in parents:
            spec = spec[int(key) if isinstance(spec, list) else key]
        spec[last] = value

    return change


def _pillar(path, value):
    federation = example_federation()
    _set(path, value)(federation)
    return federation


@pytest.mark.parametrize(
    "federation,changes,expected",
    [
        pytest.param(
            _pillar("sites:wro:nodes:pve-wro1:endpoint", "8.8.8.8"),
            None,
            "pillar:evpn:sites:wro:nodes:pve-wro1:endpoint: 8.8.8.8 is not the public address this node has "
            "in the lab (198.51.100.20): give a DNS name or that address",
            id="an endpoint given as an address outside the lab",
        ),
        pytest.param(
            _pillar("sites:roz:nodes:pve-roz2:lan_endpoint", "192.168.2.99"),
            None,
            "pillar:evpn:sites:roz:nodes:pve-roz2:lan_endpoint: '192.168.2.99' is not the node's address and "
            "listen port in the lab (192.168.2.12:51820)",
            id="a LAN endpoint that is not the node's LAN address",
        ),
        pytest.param(
            None,
            lambda spec: spec["sites"].pop("wro"),
            "topology:sites:wro: is missing: the pillar has this site",
            id="a site of the pillar missing",
        ),
        pytest.param(
            None,
            lambda spec: spec["sites"]["roz"]["nodes"].pop("pve-roz2"),
            "topology:sites:roz:nodes:pve-roz2: is missing: the pillar has this node",
            id="a node of the pillar missing",
        ),
        pytest.param(
            None,
            _set("sites:krk:nodes:pve-krk1:public", "192.0.2.30"),
            "topology:sites:krk:nodes:pve-krk1:public: 192.0.2.30 is not a host of the emulated internet "
            "(203.0.113.2-254 or 198.51.100.2-254)",
            id="a public address outside the emulated internet",
        ),
        pytest.param(
            None,
            _set("internet:www", "203.0.113.10"),
            "topology:sites:roz:routers:0:wan: 203.0.113.10 is already the address of topology:internet:www",
            id="one public address twice",
        ),
        pytest.param(
            None,
            _set("sites:wro:routers:0:lan", "10.2.1.0/24"),
            "topology:sites:wro:routers:0:lan: 10.2.1.0/24 overlaps 10.2.1.0/24 of the federation (site wro)",
            id="a LAN overlapping an SDN subnet",
        ),
        pytest.param(
            None,
            _set("sites:wro:nodes:pve-wro1:guests", {"wro1": "10.9.9.9"}),
            "topology:sites:wro:nodes:pve-wro1:guests:wro1: '10.9.9.9' is not a guest address in a subnet of "
            "wro1 that has a gateway",
            id="a guest outside its vnet",
        ),
        pytest.param(
            None,
            _set("sites:wro:pve", "7.4"),
            "topology:sites:wro:pve: '7.4' is not a PVE version the emulator has (8.4, 9.1)",
            id="a PVE version the emulator lacks",
        ),
        pytest.param(
            None,
            _set("sites:wro:nodes:pve-wro1:lna", "192.168.1.11"),
            "topology:sites:wro:nodes:pve-wro1:lna: unknown key (known: lan, public, guests, pillar)",
            id="a typo",
        ),
        pytest.param(
            None,
            _set("sites:roz:routers:1:dynamic", True),
            "topology:sites:roz:routers:1:dynamic: only the router on the internet has a WAN address the ISP changes",
            id="a dynamic address behind another router",
        ),
        pytest.param(
            _pillar("sites:wro:nodes:pve-wro1:endpoint", "roz.example.net:51823"),
            None,
            "pillar:evpn:sites:wro:nodes:pve-wro1:endpoint: roz.example.net names 198.51.100.20 here and "
            "203.0.113.10 for another node",
            id="one name for two sites",
        ),
    ],
)
def test_what_the_lab_cannot_emulate_is_refused_naming_the_key(federation, changes, expected):
    assert expected in problems(federation, changes)


def test_an_invalid_pillar_is_refused_with_the_models_errors():
    federation = _pillar("sites:roz:nodes:pve-roz2:address", "10.1.0.1")
    assert problems(federation) == [
        "pillar:evpn:sites:roz:nodes:pve-roz2:address: 10.1.0.1 is already the address of evpn:sites:roz:nodes:pve-roz1"
    ]


def test_the_pillar_is_rendered_as_salt_renders_it(tmp_path):
    pillar = tmp_path / "pillar"
    (pillar / "evpn" / "sites").mkdir(parents=True)
    (pillar / "evpn" / "init.sls").write_text((REPO / "pillar" / "evpn" / "init.sls").read_text())
    (pillar / "evpn" / "sites" / "roz.sls").write_text(
        "{% set octet = 7 %}\nevpn:\n  sites:\n    roz:\n      network: 10.{{ octet }}.0.0/24\n"
    )
    assert topology.render_pillar(pillar)["sites"]["roz"]["network"] == "10.7.0.0/24"
    (pillar / "evpn" / "sites" / "wro.sls").write_text("evpn:\n  sites: [unclosed\n")
    with pytest.raises(topology.TopologyError) as err:
        topology.render_pillar(pillar)
    (problem,) = err.value.problems
    assert problem.startswith(f"pillar {pillar / 'evpn' / 'sites' / 'wro.sls'}: Rendering SLS 'evpn.sites.wro' failed")
    assert "did not find expected ',' or ']'" in problem


def test_a_later_site_is_read_from_the_topology():
    assert topology.site_pillar("krk")["evpn"]["sites"]["krk"]["network"] == "10.3.0.0/24"
    with pytest.raises(topology.TopologyError, match="topology:sites:roz:pillar"):
        topology.site_pillar("roz")
