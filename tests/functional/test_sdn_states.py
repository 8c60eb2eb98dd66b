"""
SDN convergence of one site's cluster: salt/evpn/sdn.sls with the pvesdn states, through Salt's
loaders, the emulator as pvesh, both PVE versions. The minion is pve-roz1, roz's SDN leader.
"""

import hashlib
import json

import pytest
from salt.exceptions import CommandExecutionError

from support.pve import pvesh, pvesh_calls, pvesh_writes, sdn_objects

SDN_STATES = ("pvesdn_|-",)


@pytest.fixture
def version(monkeypatch, pve_version):
    monkeypatch.setenv("PVESIM_VERSION", pve_version)
    return pve_version


def _calls(tmp_path):
    return pvesh_calls(tmp_path / "pvesh.log")


def _writes(tmp_path):
    return pvesh_writes(tmp_path / "pvesh.log")


def _apply(loaders, **kwargs):
    """state.apply evpn.sdn; returns {state id: state return} of the SDN states."""
    ret = loaders.modules.state.apply("evpn.sdn", **kwargs)
    return {s["__id__"]: s for key, s in ret.raw.items() if key.startswith(SDN_STATES)}


def _changes(states):
    return {state_id: state["changes"] for state_id, state in states.items()}


def test_test_mode_writes_nothing_and_predicts_the_real_run(loaders, version, tmp_path, cluster):
    predicted = _apply(loaders, test=True)
    assert _writes(tmp_path) == []
    assert all(s["result"] is None for i, s in predicted.items() if i != "evpn-sdn-zone-evpn-pruned")
    done = _apply(loaders)
    assert all(s["result"] is True for s in done.values()), done
    assert _changes(done) == _changes(predicted)
    assert _changes(done)["evpn-sdn-zone-evpn"]["new"] == {
        "type": "evpn",
        "controller": "evpnctl",
        "vrf-vxlan": 10000,
        "exitnodes": "pve-roz1",
        "exitnodes-local-routing": 0,
        "advertise-subnets": 1,
        "mtu": 1370,
    }


def test_cluster_holds_exactly_the_pillar_applied(loaders, version, cluster):
    _apply(loaders)
    objects = sdn_objects()
    assert {c: sorted(o) for c, o in objects.items()} == {
        "controllers": ["evpnctl"],
        "zones": ["evpn"],
        "vnets": ["roz1"],
        "subnets": ["evpn-10.1.1.0-24"],
    }
    assert not any("state" in item for items in objects.values() for item in items.values()), "all applied"
    controller, zone = objects["controllers"]["evpnctl"], objects["zones"]["evpn"]
    assert (controller["asn"], controller["peers"]) == (65000, "10.1.0.1,10.1.0.2,10.2.0.1")
    assert (zone["exitnodes"], zone["exitnodes-local-routing"], zone["mtu"], zone["vrf-vxlan"]) == (
        "pve-roz1",
        0,
        1370,
        10000,
    )
    assert objects["vnets"]["roz1"]["tag"] == 11001
    subnet = objects["subnets"]["evpn-10.1.1.0-24"]
    assert (subnet["snat"], subnet["gateway"], subnet["vnet"]) == (1, "10.1.1.1", "roz1")
    assert not (cluster / "sdn" / ".lock").exists()


def test_second_run_changes_nothing_and_calls_no_pvesh(loaders, version, tmp_path):
    _apply(loaders)
    (tmp_path / "pvesh.log").unlink()
    again = _apply(loaders)
    assert all(s["result"] is True and s["changes"] == {} for s in again.values()), again
    assert _calls(tmp_path) == [], "a converged cluster is read from its files"


def test_an_unreadable_file_is_read_through_pvesh_and_the_comment_says_so(loaders, version, tmp_path, cluster):
    _apply(loaders)
    zones = cluster / "sdn" / "zones.cfg"
    zones.write_text(zones.read_text().replace("\tmtu 1370\n", "\tmtu 1370\n\tcolour blue\n"))
    (tmp_path / "pvesh.log").unlink()
    again = _apply(loaders)
    assert all(s["result"] is True and s["changes"] == {} for s in again.values()), again
    comment = again["evpn-sdn-zone-evpn"]["comment"]
    assert comment.startswith("SDN zone evpn is in the desired state\n(read through pvesh: ")
    assert "sdn/zones.cfg line" in comment and "unknown property 'colour'" in comment
    assert "read through pvesh" not in again["evpn-sdn-vnet-roz1"]["comment"]
    assert [(c["method"], c["path"]) for c in _calls(tmp_path)] == [("GET", "/cluster/sdn/zones")]


def test_an_update_is_refused_when_the_file_changed_since_it_was_read(loaders, version):
    _apply(loaders, pillar={"evpn": {"sites": {"roz": {"primary_exit_node": "pve-roz1"}}}})
    pvesdn = loaders.modules.pvesdn
    assert pvesdn.read("zones")["evpn"]["config"]["mtu"] == 1370
    pvesh("set", "/cluster/sdn/zones/evpn", "--mtu", "1360")  # someone else, meanwhile
    with pytest.raises(CommandExecutionError, match="detected modified configuration"):
        pvesdn.update("zones", "evpn", {"mtu": 1300})
    assert pvesdn.read("zones")["evpn"]["config"]["mtu"] == 1360, "read again after the failed write"
    pvesdn.update("zones", "evpn", {"mtu": 1300})
    assert sdn_objects()["zones"]["evpn"]["pending"]["mtu"] == 1300


def test_a_change_sends_only_what_differs_with_the_digest_it_read(loaders, version, tmp_path, cluster):
    _apply(loaders, pillar={"evpn": {"sites": {"roz": {"primary_exit_node": "pve-roz1"}}}})
    zones_read = hashlib.sha1((cluster / "sdn" / "zones.cfg").read_bytes()).hexdigest()
    (tmp_path / "pvesh.log").unlink()
    states = _apply(loaders, pillar={"evpn": {"zone": {"mtu": 1300}}})
    assert states["evpn-sdn-zone-evpn"]["changes"] == {
        "mtu": {"old": 1370, "new": 1300},
        "exitnodes-primary": {"old": "pve-roz1", "new": None},
    }
    calls = [(c["argv"][0], c["path"] or c["argv"][1]) for c in _calls(tmp_path)]
    # The lock taken on PVE 9, asked for on PVE 8 (which has none), the write, one apply.
    lock = [("create", "/cluster/sdn/lock")]
    assert calls == [*lock, ("set", "/cluster/sdn/zones/evpn"), ("set", "/cluster/sdn")]
    update = _calls(tmp_path)[len(lock)]
    assert {k: v for k, v in update["params"].items() if k != "lock-token"} == {
        "mtu": "1300",
        "delete": "exitnodes-primary",
        "digest": zones_read,
    }


WRITE_STEPS = [
    "POST:/cluster/sdn/controllers:1",
    "POST:/cluster/sdn/zones:1",
    "POST:/cluster/sdn/vnets:1",
    "POST:/cluster/sdn/vnets/roz1/subnets:1",
    "PUT:/cluster/sdn:1",
]


@pytest.mark.parametrize("rule", WRITE_STEPS)
def test_a_failed_write_applies_nothing_and_the_next_run_converges(loaders, version, cluster, monkeypatch, rule):
    monkeypatch.setenv("PVESIM_FAIL", rule)
    states = _apply(loaders)
    failed = [s for s in states.values() if s["result"] is False]
    assert failed, states
    assert "injected failure" in failed[0]["comment"]
    assert states["evpn-sdn-applied"]["result"] is False
    assert not (cluster / "sdn" / ".running-config").exists(), "nothing may be applied"
    if version == "9.1":
        assert failed[0]["comment"].endswith("(the SDN configuration was rolled back and the lock released)")
        assert not (cluster / "sdn" / ".lock").exists(), "the lock must be released"
        assert not any((cluster / "sdn").glob("*.cfg")), "the changes must be rolled back"
    else:
        assert "stay pending and were not applied" in failed[0]["comment"]
    monkeypatch.delenv("PVESIM_FAIL")
    (cluster / ".pvesim-fail-counts.json").unlink()
    again = _apply(loaders)
    assert all(s["result"] is True for s in again.values()), again
    assert json.loads((cluster / "sdn" / ".running-config").read_text())["version"] == 1


def _usersdn_objects():
    pvesh("create", "/cluster/sdn/zones", "--zone", "userzone", "--type", "simple")
    pvesh("create", "/cluster/sdn/vnets", "--vnet", "uservn", "--zone", "userzone")


@pytest.mark.parametrize("prune", [False, True])
def test_objects_the_pillar_does_not_name(loaders, version, prune):
    _apply(loaders)
    _usersdn_objects()
    pvesh("create", "/cluster/sdn/vnets", "--vnet", "extra", "--zone", "evpn", "--tag", "19999")
    pvesh("create", "/cluster/sdn/vnets/roz1/subnets", "--subnet", "10.1.9.0/24", "--type", "subnet")
    states = _apply(loaders, pillar={"evpn": {"prune": prune}})
    pruned = states["evpn-sdn-zone-evpn-pruned"]
    objects = sdn_objects()
    assert "userzone" in objects["zones"] and "uservn" in objects["vnets"]
    if prune:
        assert pruned["changes"] == {"deleted": ["vnet extra", "subnet evpn-10.1.9.0-24"]}
        assert "extra" not in objects["vnets"] and "evpn-10.1.9.0-24" not in objects["subnets"]
    else:
        assert pruned["result"] is True and pruned["changes"] == {}
        assert pruned["comment"] == (
            "Unmanaged in SDN zone evpn, left alone (set evpn:prune: true to remove): "
            "vnet extra, subnet evpn-10.1.9.0-24"
        )
        assert "extra" in objects["vnets"] and "evpn-10.1.9.0-24" in objects["subnets"]


def test_invalid_pillar_writes_nothing(loaders, version, tmp_path):
    states = loaders.modules.state.apply("evpn", pillar={"evpn": {"zone": {"mtu": 9000}}}).raw
    assert [s["__id__"] for s in states.values()] == ["evpn-pillar-invalid"]
    assert _calls(tmp_path) == []


def test_only_the_sites_leader_writes(loaders, version, tmp_path):
    other = {"address": "10.1.0.2", "endpoint": "roz2.example.net"}
    ret = loaders.modules.state.apply(
        "evpn.sdn", pillar={"evpn": {"sites": {"roz": {"nodes": {"pve-roz2": other}, "sdn_leader": "pve-roz2"}}}}
    ).raw
    (state,) = [s for s in ret.values() if s["__id__"] == "evpn-sdn"]
    assert state["comment"] == "The SDN configuration of site roz is written by its leader pve-roz2"
    assert _calls(tmp_path) == []


def test_absent_states(loaders, version, cluster):
    _apply(loaders)
    states = loaders.states.pvesdn
    subnet = {"name": "evpn-10.1.1.0-24", "vnet": "roz1"}
    predicted = states.subnet_absent(**subnet, test=True)
    assert predicted.result is None and predicted.changes["new"] is None
    assert "evpn-10.1.1.0-24" in sdn_objects()["subnets"]
    done = states.subnet_absent(**subnet)
    assert done.result is True and done.changes == predicted.changes
    assert sdn_objects()["subnets"]["evpn-10.1.1.0-24"]["state"] == "deleted"
    assert states.subnet_absent(**subnet).changes == {}
    for state, name in (
        (states.vnet_absent, "roz1"),
        (states.zone_absent, "evpn"),
        (states.controller_absent, "evpnctl"),
    ):
        assert state(name=name).result is True
    assert states.applied(name="roz").changes == {"applied": True}
    assert not (cluster / "sdn" / ".lock").exists()
    assert all(not items for items in sdn_objects().values())


def test_a_kept_lock_token_is_reused_or_replaced(loaders, version, cluster):
    if version != "9.1":
        pytest.skip("PVE 8.4 has no SDN lock")
    states = loaders.states.pvesdn
    assert states.controller_present(name="evpnctl", params={"type": "evpn", "asn": 65000, "peers": "10.1.0.1"}).result
    held = (cluster / "sdn" / ".lock").read_text()
    # A later run (a run killed before its apply) goes on with the same lock.
    assert states.controller_present(name="evpnctl", params={"type": "evpn", "asn": 65001, "peers": "10.1.0.1"}).result
    assert (cluster / "sdn" / ".lock").read_text() == held
    # Someone force-released it: the next write takes a new lock.
    pvesh("delete", "/cluster/sdn/lock", "--force", "1")
    assert states.controller_present(name="evpnctl", params={"type": "evpn", "asn": 65002, "peers": "10.1.0.1"}).result
    assert (cluster / "sdn" / ".lock").read_text() not in ("", held)
    assert states.applied(name="roz").result is True
    assert not (cluster / "sdn" / ".lock").exists()
