"""
`salt '*' state.apply evpn.sdn,evpn.firewall` from a real master builds the overlay and its
firewall in every cluster: one emulated cluster per site, both PVE versions; then a third site
added by one pillar file and one run. (These minions run on the test host, so only the cluster
parts of `evpn` are applied; the whole of it runs in lab nodes, test_orchestrate.py.)
"""

import contextlib
import shutil

import pytest
import yaml

import topology
from support.pve import emulated_pve_minion, pvesh, pvesh_writes, sdn_objects


def _apply(salt_cli, minion_ids):
    for minion_id in minion_ids:
        ret = salt_cli.run("state.apply", "evpn.sdn,evpn.firewall", minion_tgt=minion_id)
        assert ret.returncode == 0, ret.data or ret.stderr


def test_two_sites_converge_and_stay_converged(synced_example_minions, salt_cli, fresh_clusters):
    _apply(salt_cli, synced_example_minions)
    for site, vnet, subnet, gateway in (
        ("roz", "roz1", "10.1.1.0", "10.1.1.1"),
        ("wro", "wro1", "10.2.1.0", "10.2.1.1"),
    ):
        objects = sdn_objects(fresh_clusters[site])
        assert {c: sorted(o) for c, o in objects.items()} == {
            "controllers": ["evpnctl"],
            "zones": ["evpn"],
            "vnets": [vnet],
            "subnets": [f"evpn-{subnet}-24"],
        }
        assert not any("state" in i for items in objects.values() for i in items.values()), f"{site}: not applied"
        assert objects["controllers"]["evpnctl"]["peers"] == "10.1.0.1,10.1.0.2,10.2.0.1"
        zone = objects["zones"]["evpn"]
        assert (zone["exitnodes"], zone["exitnodes-local-routing"], zone["mtu"], zone["vrf-vxlan"]) == (
            f"pve-{site}1",
            0,
            1370,
            10000,
        )
        assert (
            objects["subnets"][f"evpn-{subnet}-24"]["snat"],
            objects["subnets"][f"evpn-{subnet}-24"]["gateway"],
        ) == (1, gateway)
        (fresh_clusters[site] / "pvesh.log").unlink()
    _apply(salt_cli, synced_example_minions)
    assert {site: pvesh_writes(fresh_clusters[site] / "pvesh.log") for site in ("roz", "wro")} == {"roz": [], "wro": []}


@pytest.fixture(scope="module")
def krk_minion(salt_master, clusters_root):
    """The minion of the third site's node, made once: a second factory would bring new keys."""
    return emulated_pve_minion(salt_master, clusters_root, "krk", "pve-krk1")


@contextlib.contextmanager
def krk_site(salt_master, salt_cli, members, clusters_root, minion):
    """A third site, krk: one pillar file on the master and a minion for its node."""
    (clusters_root / "krk" / "pvesim-version").write_text((clusters_root / "roz" / "pvesim-version").read_text())
    with (
        salt_master.pillar_tree.base.temp_file("evpn/sites/krk.sls", yaml.safe_dump(topology.site_pillar("krk"))),
        minion.started(),
    ):
        assert salt_cli.run("saltutil.sync_all", minion_tgt="pve-krk1").returncode == 0
        for minion_id in [*members, "pve-krk1"]:
            salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=minion_id)
        yield [*members, "pve-krk1"]
    for minion_id in members:
        salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=minion_id)
    shutil.rmtree(clusters_root / "krk")
    (clusters_root / "krk").mkdir()


def test_a_third_site_updates_the_existing_clusters(
    salt_master, synced_example_minions, salt_cli, fresh_clusters, clusters_root, krk_minion
):
    _apply(salt_cli, synced_example_minions)
    for root in fresh_clusters.values():
        (root / "pvesh.log").unlink(missing_ok=True)
    with krk_site(salt_master, salt_cli, list(synced_example_minions), clusters_root, krk_minion) as members:
        _apply(salt_cli, members)
        for site in ("roz", "wro", "krk"):
            objects = sdn_objects(clusters_root / site)
            assert objects["controllers"]["evpnctl"]["peers"] == "10.1.0.1,10.1.0.2,10.2.0.1,10.3.0.1", site
            assert not any("state" in i for items in objects.values() for i in items.values()), f"{site}: not applied"
        krk = sdn_objects(clusters_root / "krk")
        assert sorted(krk["vnets"]) == ["krk1"] and sorted(krk["subnets"]) == ["evpn-10.3.1.0-24"]
        for site in ("roz", "wro", "krk"):
            entries = pvesh("get", "/cluster/firewall/ipset/evpn-wireguard", root=clusters_root / site)
            assert sorted(e["cidr"] for e in entries) == ["10.1.0.1", "10.1.0.2", "10.2.0.1", "10.3.0.1"], site
            entries = pvesh("get", "/cluster/firewall/ipset/evpn-sdn", root=clusters_root / site)
            assert sorted(e["cidr"] for e in entries) == ["10.1.1.0/24", "10.2.1.0/24", "10.3.1.0/24"], site
        # The existing clusters got one controller update and one apply each, nothing else but
        # the new IP set entries.
        for site in ("roz", "wro"):
            assert [w for w in pvesh_writes(fresh_clusters[site] / "pvesh.log") if w[0] != "POST"] == [
                ("PUT", "/cluster/sdn/controllers/evpnctl"),
                ("PUT", "/cluster/sdn"),
            ], site
