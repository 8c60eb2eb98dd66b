"""The federation model on the checkout's example pillar: what each node and site gets."""

import copy

import pytest
import yaml
from salt.exceptions import SaltInvocationError

import evpn
from support.federation import REPO, generated_federation


@pytest.fixture
def configure_loader_modules(federation):
    return {evpn: {"__opts__": {"id": "pve-roz1"}, "__pillar__": {"evpn": federation}}}


def test_example_pillar_is_valid():
    assert evpn.validate() == {"errors": [], "warnings": []}


def test_missing_pillar_is_an_error():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(evpn, "__pillar__", {}, raising=False)
        assert evpn.validate()["errors"] == ["evpn: is required (this minion has no evpn pillar)"]


def test_node_defaults_to_this_minion():
    assert evpn.node() == {
        "id": "pve-roz1",
        "site": "roz",
        "pve_node": "pve-roz1",
        "address": "10.1.0.1",
        "endpoint": "roz.example.net:51820",
        "endpoint_host": "roz.example.net",
        "endpoint_port": 51820,
        "lan_endpoint": "192.168.2.11",
        "sdn_leader": "pve-roz1",
        "is_sdn_leader": True,
        "is_exit_node": True,
        "is_primary_exit_node": False,
    }


def test_node_of_another_minion():
    node = evpn.node("pve-wro1")
    assert (node["site"], node["address"], node["endpoint"]) == (
        "wro",
        "10.2.0.1",
        "wro.example.net:51820",
    )


def test_unknown_minion_names_the_argument():
    with pytest.raises(SaltInvocationError, match=r"^minion_id: 'pve-xyz1' is not a node"):
        evpn.node("pve-xyz1")


def test_members_sorted():
    assert evpn.members() == ["pve-roz1", "pve-roz2", "pve-wro1"]


def test_wireguard_peers_are_every_other_node():
    assert evpn.wireguard_peers() == [
        {
            "name": "pve-roz2",
            "site": "roz",
            "address": "10.1.0.2",
            "allowed_ips": ["10.1.0.2/32"],
            "endpoint": "192.168.2.12:51820",
            "endpoint_host": "192.168.2.12",
            "endpoint_port": 51820,
            "keepalive": 25,
        },
        {
            "name": "pve-wro1",
            "site": "wro",
            "address": "10.2.0.1",
            "allowed_ips": ["10.2.0.1/32"],
            "endpoint": "wro.example.net:51820",
            "endpoint_host": "wro.example.net",
            "endpoint_port": 51820,
            "keepalive": 25,
        },
    ]
    assert [p["name"] for p in evpn.wireguard_peers("pve-wro1")] == ["pve-roz1", "pve-roz2"]


def test_peers_of_the_same_site_use_the_lan_endpoint_others_the_public_one():
    """Two nodes behind one public address with a forwarded port each: peers at other sites
    use the public name and port, the node's own site its LAN address (no hairpin NAT)."""
    endpoints = {p["name"]: p["endpoint"] for p in evpn.wireguard_peers("pve-wro1")}
    assert endpoints == {"pve-roz1": "roz.example.net:51820", "pve-roz2": "roz.example.net:51821"}
    assert [p["endpoint"] for p in evpn.wireguard_peers("pve-roz2") if p["site"] == "roz"] == ["192.168.2.11:51820"]


def test_a_site_node_without_lan_endpoint_uses_the_public_one_and_validation_warns(federation):
    fed = copy.deepcopy(federation)
    fed["sites"]["roz"]["nodes"]["pve-roz1"].pop("lan_endpoint")
    assert [p["endpoint"] for p in evpn.wireguard_peers("pve-roz2", federation=fed) if p["site"] == "roz"] == [
        "roz.example.net:51820"
    ]
    assert evpn.validate(federation=fed)["warnings"] == [
        "evpn:sites:roz:nodes:pve-roz1:lan_endpoint: is not set, so the other nodes behind roz.example.net reach "
        "this node through that public address, which needs hairpin NAT on the router: set the node's LAN address"
    ]


def test_sdn_of_a_site_in_pve_parameter_names():
    assert evpn.sdn("roz") == {
        "controllers": {"evpnctl": {"type": "evpn", "asn": 65000, "peers": "10.1.0.1,10.1.0.2,10.2.0.1"}},
        "zones": {
            "evpn": {
                "type": "evpn",
                "controller": "evpnctl",
                "vrf-vxlan": 10000,
                "exitnodes": "pve-roz1",
                "exitnodes-primary": None,
                "exitnodes-local-routing": 0,
                "advertise-subnets": 1,
                "mtu": 1370,
            }
        },
        "vnets": {"roz1": {"zone": "evpn", "tag": 11001}},
        "subnets": {
            "evpn-10.1.1.0-24": {
                "type": "subnet",
                "vnet": "roz1",
                "subnet": "10.1.1.0/24",
                "gateway": "10.1.1.1",
                "snat": 1,
            }
        },
    }


def test_sdn_defaults_to_this_minions_site():
    assert evpn.sdn() == evpn.sdn("roz")


def test_unknown_site_names_the_argument():
    with pytest.raises(SaltInvocationError, match=r"^site: 'krk' is not a site"):
        evpn.sdn("krk")


def test_controller_peers_sorted_numerically_across_the_federation():
    big = generated_federation(12, 1)  # 10.1.0.1 ... 10.12.0.1: a string sort would misorder
    peers = evpn.sdn("s000", federation=big)["controllers"]["evpnctl"]["peers"].split(",")
    assert peers == [f"10.{i}.0.1" for i in range(1, 13)]


def test_stretched_vnets_in_every_cluster_and_roles_mapped_to_pve_names(federation):
    fed = copy.deepcopy(federation)
    fed["vnets"] = {"shared": {"tag": 13001, "subnets": {"10.3.1.0/24": {"gateway": "10.3.1.1"}}}}
    fed["sites"]["roz"]["nodes"]["pve-roz3.lan"] = {"address": "10.1.0.3", "endpoint": "203.0.113.7"}
    fed["sites"]["roz"]["exit_nodes"] = ["pve-roz1", "pve-roz3.lan"]
    fed["sites"]["roz"]["primary_exit_node"] = "pve-roz3.lan"
    for site in ("roz", "wro"):
        sdn = evpn.sdn(site, federation=fed)
        assert sdn["vnets"]["shared"] == {"zone": "evpn", "tag": 13001}
        assert sdn["subnets"]["evpn-10.3.1.0-24"] == {
            "type": "subnet",
            "vnet": "shared",
            "subnet": "10.3.1.0/24",
            "gateway": "10.3.1.1",
            "snat": 0,
        }
    zone = evpn.sdn("roz", federation=fed)["zones"]["evpn"]
    assert (zone["exitnodes"], zone["exitnodes-primary"]) == ("pve-roz1,pve-roz3", "pve-roz3")
    assert evpn.node("pve-roz3.lan", federation=fed)["is_primary_exit_node"] is True


def test_derived_defaults(federation):
    fed = copy.deepcopy(federation)
    fed["wireguard"] = {"mtu": 1412}
    fed["sites"]["roz"]["nodes"]["aaa.example"] = {"address": "10.1.0.9", "endpoint": "aaa.example:5000"}
    fed["sites"]["roz"].pop("exit_nodes")
    config = evpn.config(federation=fed)
    assert config["zone"]["mtu"] == 1362
    roz = config["sites"]["roz"]
    assert roz["sdn_leader"] == "aaa.example"  # first in sorted order, not in file order
    assert roz["exit_nodes"] == ["aaa.example", "pve-roz1", "pve-roz2"]
    assert roz["nodes"]["aaa.example"]["pve_node"] == "aaa"
    assert evpn.node("aaa.example", federation=fed)["endpoint_port"] == 5000
    assert evpn.node("pve-roz1", federation=fed)["is_sdn_leader"] is False


def test_ipv6_endpoints(federation):
    fed = copy.deepcopy(federation)
    fed["sites"]["roz"]["nodes"]["pve-roz1"]["endpoint"] = "[2001:db8::1]:51900"
    peer = evpn.wireguard_peers("pve-wro1", federation=fed)[0]
    assert (peer["endpoint"], peer["endpoint_host"], peer["endpoint_port"]) == (
        "[2001:db8::1]:51900",
        "2001:db8::1",
        51900,
    )
    fed["sites"]["roz"]["nodes"]["pve-roz1"]["endpoint"] = "2001:db8::1"
    assert evpn.wireguard_peers("pve-wro1", federation=fed)[0]["endpoint"] == "[2001:db8::1]:51820"


def test_endpoint_names_are_the_dns_names_only(federation):
    fed = copy.deepcopy(federation)
    roz = fed["sites"]["roz"]["nodes"]
    roz["pve-roz3"] = {"address": "10.1.0.3", "endpoint": "ROZ.example.net.:51900"}  # same name
    roz["pve-roz4"] = {"address": "10.1.0.4", "endpoint": "198.51.100.7"}  # an address cannot move
    roz["pve-roz5"] = {"address": "10.1.0.5", "endpoint": "[2001:db8::4]:51820", "lan_endpoint": "roz5.lan:51820"}
    assert evpn.endpoint_names(federation=fed) == ["roz.example.net", "roz5.lan", "wro.example.net"]


def test_firewall_of_a_site(federation):
    fed = copy.deepcopy(federation)
    fed["sites"]["roz"]["firewall"] = {
        "enable": True,
        "management": ["192.168.2.0/24", "198.51.100.7/32"],
        "nftables": True,
    }
    fed["vnets"] = {"shared": {"tag": 13001, "subnets": {"10.3.1.0/24": {"gateway": "10.3.1.1"}}}}
    fw = evpn.firewall("roz", federation=fed)
    assert fw["ipsets"] == {
        "evpn-wireguard": {
            "comment": "evpn: WireGuard addresses of the federation",
            "cidrs": ["10.1.0.1", "10.1.0.2", "10.2.0.1"],
        },
        "evpn-sdn": {
            "comment": "evpn: SDN subnets of the federation",
            "cidrs": ["10.1.1.0/24", "10.2.1.0/24", "10.3.1.0/24"],
        },
        "evpn-gateways": {"comment": "evpn: gateways of this cluster's vnets", "cidrs": ["10.1.1.1", "10.3.1.1"]},
        "evpn-management": {
            "comment": "evpn: networks that manage this cluster",
            "cidrs": ["192.168.2.0/24", "198.51.100.7"],
        },
    }
    # Management first; BGP and VXLAN only on the WireGuard interface; guests only on their vnet's
    # interface; routed traffic in a group referenced without an interface.
    rules = [r["rule"] for r in fw["rules"]]
    assert [(r["type"], r["action"], r.get("iface"), r.get("dport"), r.get("source")) for r in rules] == [
        ("in", "ACCEPT", None, "22,8006", "+dc/evpn-management"),
        ("in", "ACCEPT", None, "51820", None),
        ("group", "evpn-wg", "wg0", None, None),
        ("group", "evpn-sdn", "roz1", None, None),
        ("group", "evpn-sdn", "shared", None, None),
        ("group", "evpn-routed", None, None, None),
    ]
    assert [r["name"] for r in fw["rules"]] == [
        "evpn-management",
        "evpn-wireguard",
        "evpn-wg",
        "evpn-sdn-roz1",
        "evpn-sdn-shared",
        "evpn-routed",
    ]
    assert all(r["rule"]["enable"] == 1 and r["rule"]["comment"].startswith(r["name"] + ": ") for r in fw["rules"])
    wg_rules = fw["groups"]["evpn-wg"]["rules"]
    assert [(r["proto"], r.get("dport"), r["source"]) for r in wg_rules] == [
        ("tcp", "179", "+dc/evpn-wireguard"),
        ("udp", "4789", "+dc/evpn-wireguard"),
        ("icmp", None, "+dc/evpn-wireguard"),
    ]
    # Guests get their gateway's answer and nothing else of the host: no blanket IN.
    assert [(r["type"], r["proto"], r.get("source"), r["dest"]) for r in fw["groups"]["evpn-sdn"]["rules"]] == [
        ("in", "icmp", None, "+dc/evpn-gateways")
    ]
    assert [(r["type"], r.get("source"), r.get("dest")) for r in fw["groups"]["evpn-routed"]["rules"]] == [
        ("forward", "+dc/evpn-sdn", None),
        ("forward", None, "+dc/evpn-sdn"),
    ]
    # PVE refuses an interface inside security-group rules; every IP set is named with its scope.
    group_rules = [r for g in fw["groups"].values() for r in g["rules"]]
    assert not any("iface" in r for r in group_rules)
    references = [v for r in group_rules + rules for k, v in r.items() if k in ("source", "dest") and v]
    assert references and all(v.startswith("+dc/") for v in references)
    assert fw["options"] == {"enable": 1}
    assert fw["node_options"] == {"pve-roz1": {"nftables": 1}, "pve-roz2": {"nftables": 1}}
    assert fw["absent_rules"] == ["evpn-sdn", "evpn-sdn-*"]


def test_an_ipv6_gateway_gets_its_icmpv6_rule(federation):
    fed = copy.deepcopy(federation)
    fed["sites"]["roz"]["vnets"]["roz1"]["subnets"]["fd00:11::/64"] = {"gateway": "fd00:11::1"}
    fw = evpn.firewall("roz", federation=fed)
    assert fw["ipsets"]["evpn-gateways"]["cidrs"] == ["10.1.1.1", "fd00:11::1"]
    assert [r["proto"] for r in fw["groups"]["evpn-sdn"]["rules"]] == ["icmp", "ipv6-icmp"]


def test_firewall_switch_and_backend_left_alone_unless_the_pillar_sets_them(federation):
    fed = copy.deepcopy(federation)
    del fed["sites"]["wro"]["firewall"]
    fw = evpn.firewall("wro", federation=fed)
    assert fw["options"] == {} and fw["node_options"] == {}
    assert "evpn-management" not in fw["ipsets"]
    assert fw["absent_rules"] == ["evpn-management", "evpn-sdn", "evpn-sdn-*"]
    assert fw["rules"][0]["rule"]["dport"] == "51820"
    fed["sites"]["wro"]["firewall"] = {"enable": False, "nftables": False}
    fw = evpn.firewall("wro", federation=fed)
    assert fw["options"] == {"enable": 0} and fw["node_options"] == {"pve-wro1": {"nftables": 0}}


def test_invalid_pillar_raises_with_every_error(federation):
    fed = copy.deepcopy(federation)
    fed["asn"] = "65000"
    fed["zone"]["vrf_vxlan"] = 11001
    with pytest.raises(SaltInvocationError) as err:
        evpn.node("pve-roz1", federation=fed)
    message = str(err.value)
    assert message.startswith("the evpn pillar is invalid, nothing was changed:")
    assert "evpn:asn: must be an integer, got '65000'" in message
    assert "evpn:sites:roz:vnets:roz1:tag: 11001 is the zone's vrf_vxlan" in message


def _schema_paths(schema, document, path=()):
    """
    Yield (path, spec, documented value) for every schema key, walking pillar.example. A value
    schema used in several places (vnets of a site and stretched ones) documents its defaults at
    its first place; later places are free examples, so their documented value is None.
    """
    seen = set()

    def walk(schema, document, path):
        for key, spec in schema.items():
            value = document.get(key) if isinstance(document, dict) else None
            if isinstance(spec, evpn.Key):
                yield path + (key,), spec, None if id(spec) in seen else value
                seen.add(id(spec))
            elif isinstance(spec, evpn.MapOf):
                assert value, f"pillar.example shows no entry of {':'.join(path + (key,))}"
                for entry_key, entry in value.items():
                    yield from walk(spec.value_schema, entry, path + (key, entry_key))
            else:
                yield from walk(spec, value, path + (key,))

    yield from walk(schema, document, path)


def test_pillar_example_documents_every_key_with_its_default():
    example = yaml.safe_load((REPO / "pillar.example").read_text())["evpn"]
    assert evpn.validate(federation=example) == {"errors": [], "warnings": []}
    config = evpn.config(federation=example)
    for path, spec, documented in _schema_paths(evpn.SCHEMA, example):
        where = ":".join(("evpn",) + path)
        if spec.default is evpn.REQUIRED:
            continue
        # Without the key the model must apply the default; where the default is a value (not
        # "none" or an empty list, which the example replaces by a useful one), the example
        # must show exactly that value.
        stripped = copy.deepcopy(example)
        parent = stripped
        for key in path[:-1]:
            parent = parent[key]
        if path[-1] in parent and spec.default not in (None, []):
            parent.pop(path[-1])
            derived = evpn.config(federation=stripped)
            for key in path:
                derived = derived[key]
            assert derived == spec.default, f"{where}: default {spec.default!r} not applied"
            if documented is not None:
                assert documented == spec.default, (
                    f"pillar.example shows {where}: {documented!r}, the default is {spec.default!r}"
                )
    assert config["zone"]["mtu"] == config["wireguard"]["mtu"] - evpn.VXLAN_OVERHEAD


def test_firewall_entries_normalised_like_pve():
    assert evpn._ipset_entry("10.0.0.5/32") == "10.0.0.5"
    assert evpn._ipset_entry("2001:db8::1/128") == "2001:db8::1"
    assert evpn._ipset_entry("10.0.0.0/24") == "10.0.0.0/24"
    assert evpn._ipset_entry("192.168.2.9") == "192.168.2.9"


def _validations(caplog):
    return [r for r in caplog.records if r.getMessage() == "evpn: validating the pillar"]


def test_the_pillar_is_validated_once_per_pillar(caplog, monkeypatch):
    caplog.set_level("DEBUG", logger=evpn.log.name)
    monkeypatch.setitem(evpn.__pillar__, "evpn", copy.deepcopy(evpn.__pillar__["evpn"]))
    evpn.validate()
    evpn.node()
    evpn.wireguard_peers()
    evpn.sdn()
    evpn.firewall()
    evpn.endpoint_names()
    assert len(_validations(caplog)) == 1
    evpn.__pillar__["evpn"]["zone"]["mtu"] = 1300  # changed in place: a different pillar
    assert evpn.sdn()["zones"]["evpn"]["mtu"] == 1300
    broken = copy.deepcopy(evpn.__pillar__["evpn"])
    broken["asn"] = "many"
    assert evpn.validate(federation=broken)["errors"] == ["evpn:asn: must be an integer, got 'many'"]
    assert len(_validations(caplog)) == 3


def test_what_callers_get_cannot_change_the_kept_validation():
    evpn.config()["zone"]["mtu"] = 1
    evpn.validate()["errors"].append("a caller's own")
    assert evpn.config()["zone"]["mtu"] == 1370
    assert evpn.validate() == {"errors": [], "warnings": []}


def test_absent_names_our_objects_and_removes_the_cluster_part_once_the_site_is_gone(federation):
    fed = copy.deepcopy(federation)
    del fed["sites"]["roz"]["nodes"]["pve-roz2"]
    gone = evpn.absent(["pve-roz1", "pve-roz2"], "pve-roz2", minion_id="pve-roz2", federation=fed)
    assert gone["errors"] == [] and gone["interface"] == "wg0"
    assert gone["cluster"] is False
    assert gone["cluster_note"] == (
        "the PVE cluster still holds nodes of the federation (pve-roz1): its SDN and firewall stay"
    )
    del fed["sites"]["roz"]
    site_gone = evpn.absent(["pve-roz1", "pve-roz2"], "pve-roz2", minion_id="pve-roz2", federation=fed)
    assert site_gone["cluster"] is False
    assert (
        site_gone["cluster_note"] == "the SDN and firewall of this PVE cluster are removed by its first node, pve-roz1"
    )
    first = evpn.absent(["pve-roz1", "pve-roz2"], "pve-roz1", minion_id="pve-roz1", federation=fed)
    assert (first["cluster"], first["cluster_note"]) == (True, None)
    assert first["sdn"] == {"controller": "evpnctl", "zone": "evpn"}
    assert "evpn-sdn-*" in first["firewall"]["rules"] and "evpn-wg" in first["firewall"]["groups"]
    assert evpn.absent([], None, minion_id="pve-roz1", federation=fed)["cluster"] is False  # not a PVE node


def test_absent_works_without_any_site_and_refuses_a_node_still_in_the_pillar(federation):
    everything_gone = {k: v for k, v in federation.items() if k != "sites"}
    assert evpn.validate(federation=everything_gone)["errors"]
    assert evpn.absent(["pve-wro1"], "pve-wro1", minion_id="pve-wro1", federation=everything_gone)["errors"] == []
    still = evpn.absent(["pve-wro1"], "pve-wro1", minion_id="pve-wro1", federation=federation)
    assert still["errors"] == [
        "evpn:sites:wro:nodes:pve-wro1: pve-wro1 is still a node of the federation: remove it from the pillar "
        "first (else the next converge brings it back and every peer keeps it)"
    ]


def test_absent_needs_the_keys_that_name_our_objects(federation):
    fed = {"zone": {"id": "x"}, "wireguard": {"interface": 7}}
    assert evpn.absent(["pve-krk1"], "pve-krk1", minion_id="pve-krk1", federation=fed)["errors"] == [
        "evpn:controller: is required: it names what to remove",
        "evpn:zone:id: 'x' is not valid (PVE zone ids are 2-8 characters, a letter first, then letters and digits)",
        "evpn:wireguard:interface: must be a string, got 7",
    ]


def test_absent_refuses_while_a_pillar_file_did_not_render(federation):
    """The node could be in the file Salt left out: nothing may be removed."""
    everything_gone = {k: v for k, v in federation.items() if k != "sites"}
    message = "Rendering SLS 'evpn.sites.krk' failed, render error: mapping values are not allowed here"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(evpn, "__pillar__", {"evpn": everything_gone, "_errors": [message]}, raising=False)
        assert evpn.absent(["pve-krk1"], "pve-krk1", minion_id="pve-krk1")["errors"] == [
            f"pillar file evpn/sites/krk.sls (SLS evpn.sites.krk): {message}"
        ]
