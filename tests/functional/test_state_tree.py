"""The evpn state tree and module through Salt's own loaders, on the checkout's pillar."""

import json
import pathlib

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


def test_test_mode_predicts_every_part_and_changes_nothing(loaders, tmp_path):
    """The whole of `evpn` on this host, in test mode only: for real it would install packages
    and make a tunnel here (the real runs are in lab nodes: test_wireguard, test_orchestrate)."""
    key = pathlib.Path("/etc/wireguard/wg0.key")
    had_key = key.exists()
    ret = loaders.modules.state.apply("evpn", test=True)
    ids = {s["__id__"]: s for s in ret.raw.values()}
    assert {
        "evpn-packages",
        "evpn-frr",
        "evpn-sysctl",
        "evpn-wireguard",
        "evpn-sdn-zone-evpn",
        "evpn-sdn-applied",
        "evpn-node",
    } <= set(ids)
    assert all(s["result"] is not False for s in ids.values()), {i: s["comment"] for i, s in ids.items()}
    assert ids["evpn-wireguard"]["result"] is None and ids["evpn-sdn-zone-evpn"]["result"] is None
    assert ids["evpn-node"]["comment"].startswith("pve-roz1: site roz, PVE node pve-roz1, WireGuard 10.1.0.1")
    assert key.exists() == had_key
    calls = [json.loads(line) for line in (tmp_path / "pvesh.log").read_text().splitlines()]
    assert calls and all(c["method"] == "GET" for c in calls), "test mode wrote to the cluster"


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
    ret = loaders.modules.state.apply("evpn", pillar={"evpn": {"zone": {"exitnodes_local_routing": True}}}, test=True)
    state = _state(ret, "evpn-node")
    assert state["result"] is True
    assert state["warnings"][0].startswith("evpn:zone:exitnodes_local_routing: true is a known trap")
