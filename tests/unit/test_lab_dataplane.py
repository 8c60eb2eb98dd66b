"""What the lab changes in pve-network's output before loading it into a lab node (this kernel has
no VRF device: lab/dataplane.py), on pve-network's own expected files of both versions the
emulator renders (0.11.3 for PVE 8.4, 1.3.0 for 9.1)."""

import pathlib

import pytest

import dataplane

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
CASES = [
    DATA / version / "zones-evpn" / case / "expected_controller_config"
    for version in ("pve-network-0.11.3", "pve-network-1.3.0")
    for case in ("ipv4", "exitnode", "exitnode_primary", "advertise_subnets")
]


@pytest.mark.parametrize("expected", CASES, ids=lambda path: f"{path.parts[-4]}-{path.parts[-2]}")
def test_the_l3_vni_is_bound_to_the_default_vrf_and_nothing_is_imported_from_a_vrf(expected):
    text = expected.read_text()
    adapted = dataplane.adapt_frr(text)
    vni = next(line for line in text.splitlines() if line.startswith(" vni "))
    assert f"\n!\n{vni.strip()}\n!\n" in adapted  # as FRR shows the default VRF's VNI
    assert "vrf vrf_" not in adapted and "import vrf" not in adapted and "router bgp 65000 vrf" not in adapted
    assert "  advertise-all-vni\n  advertise ipv4 unicast\n" in adapted
    # Everything else of the default instance is kept: its peers, their address family.
    for line in text.splitlines():
        if line.startswith(" neighbor ") or line.startswith("  neighbor VTEP"):
            assert line in adapted.splitlines(), line


def test_the_router_mac_is_unique_per_node_address():
    assert dataplane.router_mac("10.1.0.1") == "02:00:0a:01:00:01"
    assert dataplane.router_mac("10.2.0.1") != dataplane.router_mac("10.1.0.2")


def test_vnet_bridges_keep_guest_ports_and_no_vrf_is_left():
    """On pve-network 1.3.0's expected file (the tests of 0.11.3 hold none)."""
    text = (DATA / "pve-network-1.3.0" / "zones-evpn" / "ipv4" / "expected_sdn_interfaces").read_text()
    adapted = dataplane.adapt_interfaces(text, "02:00:0a:01:00:01")
    stanzas = {s.splitlines()[0]: s for s in adapted.split("\n\n") if s.startswith("auto ")}
    vnets = [name for name, s in stanzas.items() if "\tbridge_ports " in s]
    assert vnets == ["auto myvnet"]
    for name in vnets:
        assert f"\tbridge-ports-condone-regex {dataplane.GUEST_PORT}" in stanzas[name].splitlines(), name
    assert "vrf-table" not in adapted and "\tvrf vrf_" not in adapted
    assert "\thwaddress 02:00:0a:01:00:01" in next(s for n, s in stanzas.items() if "vrfbr_" in n)
