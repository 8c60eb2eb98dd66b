"""
salt/evpn/absent.sls (uninstall) on a lab node that stands for pve-krk1, the one node of a site
krk added to the example pillar, masterless: converged first (WireGuard, sysctl, SDN, firewall
in the emulated krk cluster, beside the user's own objects), then taken out of the pillar. Test
mode lists what goes and writes nothing; the run takes off exactly that; a second run changes
nothing; a guest on one of our vnets stops all of it; a node still in the pillar is refused.
"""

import functools
import os
import shutil

import pytest
import yaml

from netns import Lab
from pvesim.api import Api
from support.federation import PILLAR
from support.pve import PVE_VERSIONS, emulated_pve_node, pvesh_writes, sdn_objects
from support.saltconfig import salt_call_in

pytestmark = pytest.mark.usefixtures("lab_host")
KRK = {
    "evpn": {
        "sites": {
            "krk": {
                "network": "10.3.0.0/24",
                "nodes": {"pve-krk1": {"address": "10.3.0.1", "endpoint": "203.0.113.71"}},
                "vnets": {"krk1": {"tag": 13001, "subnets": {"10.3.1.0/24": {"gateway": "10.3.1.1", "snat": True}}}},
                "firewall": {"management": ["198.51.100.0/24"]},
            }
        }
    }
}
SYSCTL = "/etc/sysctl.d/zz-evpn.conf"
FORMER_SYSCTL = "/etc/sysctl.d/90-evpn.conf"  # where earlier releases kept it
# The user's own objects in the krk cluster, which uninstalling must leave as they are.
USER_RULE = "IN ACCEPT -source 198.51.100.7 -p tcp -dport 22 # my own ssh"


@pytest.fixture(scope="module", params=PVE_VERSIONS)
def version(request):
    return request.param


@pytest.fixture(scope="module")
def krk(version, tmp_path_factory):
    """The lab node pve-krk1 with wireguard-go, in an emulated cluster of that PVE version;
    (node, salt-call in it, the cluster folder, the pillar's krk file)."""
    folder = tmp_path_factory.mktemp("absent")
    pillar = folder / "pillar"
    shutil.copytree(PILLAR, pillar)
    with Lab(folder / "lab", prefix=f"x{os.getpid() % 100000}-") as lab:
        node = lab.node("pve-krk1", "203.0.113.71")
        node.start_wireguard("wg0")
        (folder / "clusters").mkdir()
        options, env = emulated_pve_node(node, folder / "clusters", "krk", version=version)
        (folder / "clusters" / "krk" / "pvesim-version").write_text(version)
        call = functools.partial(
            salt_call_in, node, options={**options, "pillar_roots": {"base": [str(pillar)]}}, env=env
        )
        yield node, call, folder / "clusters" / "krk", pillar / "evpn" / "sites" / "krk.sls"


@pytest.fixture
def removed(krk, version):
    """pve-krk1 converged with the user's own objects beside ours, then krk taken out of the
    pillar; the pvesh log emptied."""
    node, call, cluster, site_file = krk
    if node.run("ip", "link", "show", "wg0", check=False).returncode:
        node.start_wireguard("wg0")  # what `ip link add type wireguard` does where the kernel has it
    site_file.write_text(yaml.safe_dump(KRK))
    result, _ = call("state.apply", "evpn.sysctl,evpn.wireguard,evpn.sdn,evpn.firewall")
    assert all(s["result"] for s in result.values()), result
    user_objects(cluster, version)
    site_file.unlink()
    (cluster / "pvesh.log").unlink(missing_ok=True)
    yield krk
    for guest in cluster.glob("nodes/*/qemu-server/*.conf"):
        guest.unlink()


def user_objects(cluster, version):
    """The user's own SDN zone with a vnet, security group, IP set and cluster rule (made once),
    through the emulator as a library, as pve-krk1."""
    call = Api(cluster, "pve-krk1", version).call
    if "mine" not in {z["zone"] for z in call("GET", "/cluster/sdn/zones")}:
        call("POST", "/cluster/sdn/zones", {"zone": "mine", "type": "simple"})
        call("POST", "/cluster/sdn/vnets", {"vnet": "myvnet", "zone": "mine"})
        call("PUT", "/cluster/sdn")
    if "mine" not in {g["group"] for g in call("GET", "/cluster/firewall/groups")}:
        call("POST", "/cluster/firewall/groups", {"group": "mine"})
        call("POST", "/cluster/firewall/groups/mine", {"type": "in", "action": "ACCEPT", "proto": "icmp"})
        call("POST", "/cluster/firewall/ipset", {"name": "myset"})
        call("POST", "/cluster/firewall/ipset/myset", {"cidr": "198.51.100.7"})
        rule = {"type": "in", "action": "ACCEPT", "source": "198.51.100.7", "proto": "tcp", "dport": "22"}
        call("POST", "/cluster/firewall/rules", {**rule, "comment": "my own ssh"})


def firewall_file(cluster):
    return (cluster / "firewall" / "cluster.fw").read_text()


def node_files(node):
    return (
        node.run("ls", "-A", "/etc/wireguard", check=False).stdout,
        [path for path in (SYSCTL, FORMER_SYSCTL) if node.run("test", "-e", path, check=False).returncode == 0],
        node.run("ip", "link", "show", "wg0", check=False).returncode,
    )


def changes(result):
    return {s["__id__"]: s["changes"] for s in result.values() if s["changes"]}


def write_former_sysctl(node, call):
    """The sysctl file as the earlier release wrote it: its settings, no marker."""
    settings = call("evpn.sysctl_settings")[0]
    text = "".join(f"{key} = {settings[key]}\n" for key in sorted(settings))
    node.run("sh", "-c", f"cat > {FORMER_SYSCTL}", input=text)


def test_test_mode_lists_what_goes_the_run_takes_exactly_that_then_nothing(removed):
    node, call, cluster, _ = removed
    write_former_sysctl(node, call)
    before = (firewall_file(cluster), sdn_objects(cluster), node_files(node))
    assert node_files(node)[1] == [SYSCTL, FORMER_SYSCTL]
    predicted, _ = call("state.apply", "evpn.absent", "test=True")
    assert pvesh_writes(cluster / "pvesh.log") == []
    assert (firewall_file(cluster), sdn_objects(cluster), node_files(node)) == before
    assert changes(predicted)["evpn-absent-wireguard"] == {
        "interface": "deleted",
        "files": ["/etc/wireguard/wg0.conf", "/etc/wireguard/wg0.key"],
    }
    assert changes(predicted)["evpn-absent-zone-evpn-emptied"] == {"deleted": ["subnet evpn-10.3.1.0-24", "vnet krk1"]}
    assert changes(predicted)["evpn-absent-sysctl"] == {"file": "removed"}
    assert changes(predicted)[f"evpn-absent-sysctl-former-{FORMER_SYSCTL}"] == {"file": "removed"}

    (unpublish,) = [s for s in predicted.values() if s["__id__"] == "evpn-absent-unpublish-key"]
    assert unpublish["result"] is None, unpublish  # module.run shows no changes in test mode

    done, stdout = call("state.apply", "evpn.absent")
    assert all(s["result"] for s in done.values()), done
    assert changes(done) == {**changes(predicted), "evpn-absent-unpublish-key": {"mine.update": True}}
    assert "PrivateKey" not in stdout
    assert node_files(node) == ("", [], 1)
    objects = sdn_objects(cluster)
    assert {c: sorted(o) for c, o in objects.items()} == {
        "controllers": [],
        "zones": ["mine"],
        "vnets": ["myvnet"],
        "subnets": [],
    }
    assert not any("state" in item for items in objects.values() for item in items.values()), "applied"
    fw = firewall_file(cluster)
    assert "evpn" not in fw
    assert USER_RULE in fw and "[group mine]" in fw and "[IPSET myset]" in fw and "198.51.100.7" in fw

    again, _ = call("state.apply", "evpn.absent")
    assert changes(again) == {}
    assert all(s["result"] for s in again.values()), again


def test_a_guest_on_our_vnet_stops_everything_and_is_named(removed):
    node, call, cluster, _ = removed
    guests = cluster / "nodes" / "pve-krk1" / "qemu-server"
    guests.mkdir(parents=True, exist_ok=True)
    (guests / "105.conf").write_text(
        "name: web\nnet0: virtio=BC:24:11:00:00:01,bridge=krk1,firewall=1\n\n[before]\nnet0: virtio=x,bridge=vmbr0\n"
    )
    before = (firewall_file(cluster), sdn_objects(cluster), node_files(node))
    for test in (["test=True"], []):
        result, _ = call("state.apply", "evpn.absent", *test)
        (check,) = [s for s in result.values() if s["__id__"] == "evpn-absent-zone-evpn-unused"]
        assert check["result"] is False
        assert "vnet krk1: 105 (web) on pve-krk1" in check["comment"]
        assert changes(result) == {}
        assert pvesh_writes(cluster / "pvesh.log") == []
        assert (firewall_file(cluster), sdn_objects(cluster), node_files(node)) == before


def test_a_node_still_in_the_pillar_is_refused(krk):
    node, call, _, site_file = krk
    site_file.write_text(yaml.safe_dump(KRK))
    try:
        before = node_files(node)
        result, _ = call("state.apply", "evpn.absent")
        (state,) = result.values()
        assert state["result"] is False and state["changes"] == {}
        assert state["comment"].startswith("evpn:sites:krk:nodes:pve-krk1: pve-krk1 is still a node of the federation")
        assert node_files(node) == before
    finally:
        site_file.unlink()


def test_a_node_whose_cluster_stays_in_the_federation_leaves_the_cluster_alone(removed):
    """pve-krk1 as if it were a node of a cluster that still has a node of the pillar (pve-roz1):
    only the node itself is cleaned."""
    node, call, cluster, _ = removed
    (cluster / "nodes" / "pve-roz1").mkdir()
    try:
        before = (firewall_file(cluster), sdn_objects(cluster))
        done, _ = call("state.apply", "evpn.absent")
        assert all(s["result"] for s in done.values()), done
        assert sorted(changes(done)) == ["evpn-absent-sysctl", "evpn-absent-unpublish-key", "evpn-absent-wireguard"]
        (note,) = [s for s in done.values() if s["__id__"] == "evpn-absent-cluster"]
        assert note["comment"] == (
            "the PVE cluster still holds nodes of the federation (pve-roz1): its SDN and firewall stay"
        )
        assert (firewall_file(cluster), sdn_objects(cluster)) == before
        assert pvesh_writes(cluster / "pvesh.log") == []
        assert node_files(node) == ("", [], 1)
    finally:
        (cluster / "nodes" / "pve-roz1").rmdir()


def test_the_sysctl_sls_removes_the_former_file_of_ours_once_ours_is_written(krk):
    """A node converged by an earlier release has 90-evpn.conf, which sorts before PVE's
    pve-firewall.conf: evpn.sysctl writes zz-evpn.conf and then removes the former file; test
    mode predicts both and writes nothing."""
    node, call, _, site_file = krk
    site_file.write_text(yaml.safe_dump(KRK))
    try:
        node.run("rm", "-f", SYSCTL)
        write_former_sysctl(node, call)
        former = f"evpn-sysctl-former-{FORMER_SYSCTL}"
        predicted, _ = call("state.apply", "evpn.sysctl", "test=True")
        assert changes(predicted)["evpn-sysctl"]["file"] == "created"
        assert changes(predicted)[former] == {"file": "removed"}
        assert node_files(node)[1] == [FORMER_SYSCTL]
        done, _ = call("state.apply", "evpn.sysctl")
        assert all(s["result"] for s in done.values()), done
        assert changes(done) == changes(predicted)
        assert node_files(node)[1] == [SYSCTL]
        again, _ = call("state.apply", "evpn.sysctl")
        assert changes(again) == {}
    finally:
        site_file.unlink()
