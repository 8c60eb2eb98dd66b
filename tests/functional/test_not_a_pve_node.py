"""
A node of the federation that is not a Proxmox VE node (no pvesh), or lacks what the states need
of one: ``state.apply evpn`` fails with one state saying what is missing and how to fix it, in
test mode too, and changes nothing (not even the packages or the WireGuard key).
"""

import os
import pathlib

import pytest


@pytest.fixture(scope="module")
def pve_node():
    return False  # no pvesh on PATH: the emulator is left out


@pytest.mark.parametrize("test_mode", [True, False])
def test_state_apply_fails_with_one_state_naming_pvesh(loaders, test_mode, tmp_path):
    key = pathlib.Path("/etc/wireguard/wg0.key")
    had_key = key.exists()
    ret = loaders.modules.state.apply("evpn", test=test_mode)
    (state,) = ret.raw.values()
    assert state["__id__"] == "evpn-pve-requirements"
    assert (state["result"], state["changes"]) == (False, {})
    assert state["name"] == "pve-roz1 lacks what the evpn states need of a Proxmox VE node, nothing was changed"
    assert state["comment"] == (
        "pvesh is not installed: this is not a Proxmox VE node. Install Proxmox VE 8.4 or 9.x on it, "
        "or take it out of evpn:sites:<site>:nodes"
    )
    assert key.exists() == had_key
    assert not (tmp_path / "pvesh.log").exists()


@pytest.mark.parametrize("sls", ["evpn.packages", "evpn.sysctl", "evpn.wireguard", "evpn.sdn", "evpn.firewall"])
def test_each_part_alone_gives_the_same_one_state(loaders, sls):
    """orch.evpn applies the parts one by one: each stops at the same one failed state."""
    ret = loaders.modules.state.apply(sls, test=True)
    assert [s["__id__"] for s in ret.raw.values()] == ["evpn-pve-requirements"]


def test_a_pve_node_that_lacks_the_interfaces_line_is_told_how_to_add_it(loaders, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    pvesh = tmp_path / "pvesh"
    pvesh.write_text("#!/bin/sh\nexit 1\n")
    pvesh.chmod(0o755)
    interfaces = tmp_path / "interfaces"
    interfaces.write_text("auto lo\niface lo inet loopback\n")
    monkeypatch.setitem(loaders.opts, "network_interfaces_file", str(interfaces))
    ret = loaders.modules.state.apply("evpn", test=True)
    (state,) = ret.raw.values()
    assert (state["result"], state["changes"]) == (False, {})
    assert state["comment"] == (
        f"{interfaces} does not source /etc/network/interfaces.d/*, where Proxmox VE's SDN writes its vnets: "
        "add the line 'source /etc/network/interfaces.d/*' at its end"
    )
