"""The evpn state tree and module through Salt's own loaders, on the checkout's pillar."""

import pytest


def _only_state(ret):
    (state,) = ret.raw.values()
    return state


def _state(ret, state_id):
    (state,) = [s for s in ret.raw.values() if s["__id__"] == state_id]
    return state


def test_pillar_includes_every_site_file(loaders):
    assert sorted(loaders.pillar["evpn"]["sites"]) == ["roz", "wro"]


def test_module_reads_the_compiled_pillar(loaders):
    node = loaders.modules.evpn.node()
    assert (node["id"], node["site"], node["is_sdn_leader"]) == ("pve-roz1", "roz", True)
    assert loaders.modules.evpn.validate() == {"errors": [], "warnings": []}


@pytest.mark.parametrize("test_mode", [True, False])
def test_apply_reports_the_node(loaders, test_mode):
    ret = loaders.modules.state.apply("evpn", test=test_mode)
    state = _state(ret, "evpn-node")
    assert state["result"] is True
    assert state["changes"] == {}
    assert state["comment"].startswith("pve-roz1: site roz, PVE node pve-roz1, WireGuard 10.1.0.1")


@pytest.mark.parametrize("test_mode", [True, False])
def test_invalid_pillar_fails_before_anything_runs(loaders, test_mode):
    broken = {"evpn": {"asn": "65000", "zone": {"vrf_vxlan": 11001}}}
    ret = loaders.modules.state.apply("evpn", pillar=broken, test=test_mode)
    state = _only_state(ret)
    assert state["__id__"] == "evpn-pillar-invalid"
    assert state["result"] is False
    assert state["comment"].splitlines() == [
        "evpn:asn: must be an integer, got '65000'",
        "evpn:sites:roz:vnets:roz1:tag: 11001 is the zone's vrf_vxlan (the L3 VNI)",
    ]


def test_pillar_warnings_reach_the_state_output(loaders):
    ret = loaders.modules.state.apply(
        "evpn", pillar={"evpn": {"zone": {"exitnodes_local_routing": True}}}
    )
    state = _state(ret, "evpn-node")
    assert state["result"] is True
    assert state["warnings"][0].startswith("evpn:zone:exitnodes_local_routing: true is a known trap")
