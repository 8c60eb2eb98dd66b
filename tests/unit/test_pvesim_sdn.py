"""The emulator's SDN behaviour: PVE's object rules, pending versus running, apply, lock."""

import hashlib
import json
import re

import pytest

from pvesim.errors import PveError


def _evpn(cluster, peers="10.1.0.1,10.2.0.1"):
    cluster.call(
        "POST", "/cluster/sdn/controllers", {"controller": "evpnctl", "type": "evpn", "asn": "65000", "peers": peers}
    )
    cluster.call(
        "POST",
        "/cluster/sdn/zones",
        {
            "zone": "evpn",
            "type": "evpn",
            "controller": "evpnctl",
            "vrf-vxlan": "10000",
            "exitnodes": "pve1",
            "exitnodes-local-routing": 0,
            "mtu": "1370",
        },
    )
    cluster.call("POST", "/cluster/sdn/vnets", {"vnet": "roz1", "zone": "evpn", "tag": "11001"})
    cluster.call(
        "POST",
        "/cluster/sdn/vnets/roz1/subnets",
        {"subnet": "10.1.1.0/24", "type": "subnet", "gateway": "10.1.1.1", "snat": 1},
    )


def _fails(cluster, method, path, params=None):
    with pytest.raises(PveError) as err:
        cluster.call(method, path, params or {})
    return err.value.message


def _state(cluster, collection, ident, key):
    items = cluster.call("GET", collection, {"pending": 1})
    return next(item for item in items if item[key] == ident).get("state")


def test_objects_read_back_typed_with_the_file_digest(pve_cluster):
    _evpn(pve_cluster)
    (zone,) = pve_cluster.call("GET", "/cluster/sdn/zones")
    text = (pve_cluster.store.root / "sdn" / "zones.cfg").read_text()
    assert zone["vrf-vxlan"] == 10000 and zone["exitnodes-local-routing"] == 0 and zone["mtu"] == 1370
    assert re.fullmatch(r"BC:24:11(:[0-9A-F]{2}){3}", zone["mac"]), "PVE generates a zone MAC"
    assert zone["digest"] == hashlib.sha1(text.encode()).hexdigest()
    subnet = pve_cluster.call("GET", "/cluster/sdn/vnets/roz1/subnets/evpn-10.1.1.0-24")
    assert {k: subnet[k] for k in ("id", "cidr", "zone", "network", "mask", "vnet", "snat", "gateway")} == {
        "id": "evpn-10.1.1.0-24",
        "cidr": "10.1.1.0/24",
        "zone": "evpn",
        "network": "10.1.1.0",
        "mask": "24",
        "vnet": "roz1",
        "snat": 1,
        "gateway": "10.1.1.1",
    }


def test_pending_running_round_trip(pve_cluster):
    _evpn(pve_cluster)
    assert _state(pve_cluster, "/cluster/sdn/zones", "evpn", "zone") == "new"
    assert pve_cluster.call("GET", "/cluster/sdn/zones", {"running": 1}) == []
    upid, log = pve_cluster.call("PUT", "/cluster/sdn")
    assert upid.startswith("UPID:pve1:") and "reloadnetworkall" in upid
    assert log[0] == "pve1: reloading network config"
    assert _state(pve_cluster, "/cluster/sdn/zones", "evpn", "zone") is None
    running = json.loads((pve_cluster.store.root / "sdn" / ".running-config").read_text())
    assert running["version"] == 1
    assert running["zones"]["ids"]["evpn"]["exitnodes"] == {"pve1": 1}

    pve_cluster.call("PUT", "/cluster/sdn/zones/evpn", {"mtu": "1300", "delete": "exitnodes"})
    (zone,) = pve_cluster.call("GET", "/cluster/sdn/zones", {"pending": 1})
    assert zone["state"] == "changed"
    assert zone["pending"] == {"mtu": 1300, "exitnodes": "deleted"}
    assert zone["mtu"] == 1370, "top-level keys hold the running values"

    pve_cluster.call("DELETE", "/cluster/sdn/vnets/roz1/subnets/evpn-10.1.1.0-24")
    assert _state(pve_cluster, "/cluster/sdn/vnets/roz1/subnets", "evpn-10.1.1.0-24", "id") == "deleted"
    pve_cluster.call("PUT", "/cluster/sdn")
    assert pve_cluster.call("GET", "/cluster/sdn/vnets/roz1/subnets", {"pending": 1}) == []
    pve_cluster.call("PUT", "/cluster/sdn")
    assert json.loads((pve_cluster.store.root / "sdn" / ".running-config").read_text())["version"] == 3


def test_new_objects_in_the_pending_view_are_shaped_as_pve_network_shapes_them(pve_cluster):
    """SDN.pm pending_config (pve-network ecf98c5): a new object has its type (a subnet also its
    vnet) at the top and every other key pending; the merged view has no digest; a subnet's
    dhcp-range is always listed, parsed (api_sdn_subnets_config)."""
    _evpn(pve_cluster)
    (vnet,) = pve_cluster.call("GET", "/cluster/sdn/vnets", {"pending": 1})
    assert vnet == {
        "vnet": "roz1",
        "type": "vnet",
        "state": "new",
        "pending": {"zone": "evpn", "tag": 11001},
        "digest": None,
    }
    (subnet,) = pve_cluster.call("GET", "/cluster/sdn/vnets/roz1/subnets", {"pending": 1})
    assert (subnet["vnet"], subnet["pending"], subnet["dhcp-range"]) == (
        "roz1",
        {"gateway": "10.1.1.1", "snat": 1},
        [],
    )
    pve_cluster.call(
        "PUT",
        "/cluster/sdn/vnets/roz1/subnets/evpn-10.1.1.0-24",
        {"dhcp-range": ["start-address=10.1.1.10,end-address=10.1.1.20"]},
    )
    pve_cluster.call("PUT", "/cluster/sdn")
    for view in ({}, {"pending": 1}, {"running": 1}):
        (subnet,) = pve_cluster.call("GET", "/cluster/sdn/vnets/roz1/subnets", view)
        assert subnet["dhcp-range"] == [{"start-address": "10.1.1.10", "end-address": "10.1.1.20"}], view


def test_digest_conflict(pve_cluster):
    _evpn(pve_cluster)
    (zone,) = pve_cluster.call("GET", "/cluster/sdn/zones")
    pve_cluster.call("PUT", "/cluster/sdn/vnets/roz1", {"alias": "changed"})  # another file
    pve_cluster.call("PUT", "/cluster/sdn/zones/evpn", {"mtu": "1360", "digest": zone["digest"]})
    message = _fails(pve_cluster, "PUT", "/cluster/sdn/zones/evpn", {"mtu": "1350", "digest": zone["digest"]})
    assert message == (
        "update sdn zone object failed: detected modified configuration - file changed by other user? Try again."
    )


@pytest.mark.parametrize(
    "method,path,params,expected",
    [
        (
            "POST",
            "/cluster/sdn/controllers",
            {"controller": "second", "type": "evpn", "asn": "1", "peers": "10.9.9.9"},
            "create sdn controller object failed: only 1 global evpn controller can be defined at ",
        ),
        (
            "POST",
            "/cluster/sdn/zones",
            {"zone": "other", "type": "evpn", "controller": "evpnctl", "vrf-vxlan": "10000"},
            "create sdn zone object failed: vrf-vxlan 10000 is already declared in evpn",
        ),
        (
            "POST",
            "/cluster/sdn/zones",
            {"zone": "other", "type": "evpn", "controller": "nope", "vrf-vxlan": "1"},
            "create sdn zone object failed: controller nope don't exist at ",
        ),
        (
            "POST",
            "/cluster/sdn/zones",
            {"zone": "other", "type": "evpn", "controller": "evpnctl"},
            "missing value for required option 'vrf-vxlan'",
        ),
        (
            "POST",
            "/cluster/sdn/zones",
            {"zone": "other", "type": "simple", "exitnodes": "pve1"},
            "unexpected property 'exitnodes'",
        ),
        (
            "POST",
            "/cluster/sdn/zones",
            {"zone": "evpn", "type": "simple"},
            "create sdn zone object failed: sdn zone object ID 'evpn' already defined",
        ),
        (
            "POST",
            "/cluster/sdn/vnets",
            {"vnet": "other", "zone": "evpn", "tag": "11001"},
            "create sdn vnet object failed: 400 Parameter verification failed.\n"
            "tag: vxlan tag 11001 already exist in vnet roz1 in zone evpn ",
        ),
        (
            "POST",
            "/cluster/sdn/vnets",
            {"vnet": "other", "zone": "evpn"},
            "create sdn vnet object failed: 400 Parameter verification failed.\ntag: missing vxlan tag",
        ),
        (
            "POST",
            "/cluster/sdn/vnets/roz1/subnets",
            {"subnet": "10.1.2.0/24", "type": "subnet", "gateway": "10.1.3.1"},
            "create sdn subnet object failed: 10.1.3.1 is not in subnet 10.1.2.0/24",
        ),
        (
            "POST",
            "/cluster/sdn/vnets/nope/subnets",
            {"subnet": "10.1.2.0/24", "type": "subnet"},
            "create sdn subnet object failed: nope don't exist",
        ),
        ("DELETE", "/cluster/sdn/zones/evpn", {}, "delete sdn zone object failed: zone evpn is used by vnet roz1 at "),
        (
            "DELETE",
            "/cluster/sdn/controllers/evpnctl",
            {},
            "delete sdn controller object failed: controller evpnctl is used by evpn at ",
        ),
        (
            "DELETE",
            "/cluster/sdn/vnets/roz1",
            {},
            "delete sdn vnet object failed: 400 Parameter verification failed.\n"
            "vnet: Can't delete vnet if subnets exists",
        ),
        (
            "PUT",
            "/cluster/sdn/zones/evpn",
            {"delete": "controller"},
            "update sdn zone object failed: unable to delete required option 'controller'",
        ),
        (
            "PUT",
            "/cluster/sdn/zones/evpn",
            {"delete": "mtu", "mtu": "1300"},
            "update sdn zone object failed: cannot set and delete property 'mtu' at the same time!",
        ),
        ("PUT", "/cluster/sdn/zones/evpn", {"delete": "dhcp"}, "update sdn zone object failed: no such option 'dhcp'"),
        ("GET", "/cluster/sdn/zones/nope", {}, "sdn 'nope' does not exist"),
        ("GET", "/cluster/sdn/vnets/nope", {}, "sdn vnet 'nope' does not exist"),
    ],
)
def test_pve_refuses(pve_cluster, method, path, params, expected):
    _evpn(pve_cluster)
    before = {p.name: p.read_text() for p in (pve_cluster.store.root / "sdn").glob("*.cfg")}
    assert _fails(pve_cluster, method, path, params).startswith(expected)
    after = {p.name: p.read_text() for p in (pve_cluster.store.root / "sdn").glob("*.cfg")}
    assert after == before, "a refused call changed the configuration"


def test_evpn_controller_peers_required_on_8_and_peers_or_fabric_on_9(pve_cluster, pve_version):
    params = {"controller": "evpnctl", "type": "evpn", "asn": "65000"}
    message = _fails(pve_cluster, "POST", "/cluster/sdn/controllers", params)
    if pve_version == "8.4":
        assert message == "missing value for required option 'peers'"
    else:
        assert message == "create sdn controller object failed: must have exactly one of peers / fabric defined"


def test_lock_token_on_9(pve_cluster, pve_version):
    if pve_version != "9.1":
        pytest.skip("PVE 8.4 has no SDN lock")
    token = pve_cluster.call("POST", "/cluster/sdn/lock")
    assert (pve_cluster.store.root / "sdn" / ".lock").read_text() == token
    message = _fails(pve_cluster, "POST", "/cluster/sdn/vnets", {"vnet": "v1", "zone": "evpn", "tag": "1"})
    assert message.startswith("create sdn vnet object failed: invalid lock token provided! at ")
    assert _fails(
        pve_cluster,
        "POST",
        "/cluster/sdn/controllers",
        {"controller": "ctl", "type": "evpn", "asn": "1", "peers": "10.0.0.1", "lock-token": "wrong"},
    ).startswith("create sdn controller object failed: invalid lock token provided!")
    pve_cluster.call(
        "POST",
        "/cluster/sdn/controllers",
        {"controller": "ctl", "type": "evpn", "asn": "1", "peers": "10.0.0.1", "lock-token": token},
    )
    assert _fails(pve_cluster, "PUT", "/cluster/sdn", {}).startswith("could not commit SDN config: invalid lock token")
    pve_cluster.call("PUT", "/cluster/sdn", {"lock-token": token})
    assert not (pve_cluster.store.root / "sdn" / ".lock").exists(), "apply releases the lock by default"


def test_lock_refused_with_pending_changes_unless_allowed(pve_cluster, pve_version):
    if pve_version != "9.1":
        pytest.skip("PVE 8.4 has no SDN lock")
    _evpn(pve_cluster)
    assert _fails(pve_cluster, "POST", "/cluster/sdn/lock").endswith("configuration has pending changes")
    token = pve_cluster.call("POST", "/cluster/sdn/lock", {"allow-pending": 1})
    assert _fails(pve_cluster, "DELETE", "/cluster/sdn/lock", {"lock-token": "x"}).startswith(
        "could not release lock: invalid lock token provided!"
    )
    pve_cluster.call("DELETE", "/cluster/sdn/lock", {"lock-token": token})
    pve_cluster.call("POST", "/cluster/sdn/lock", {"allow-pending": 1})
    pve_cluster.call("DELETE", "/cluster/sdn/lock", {"force": 1})


def test_rollback_restores_the_running_config(pve_cluster, pve_version):
    if pve_version != "9.1":
        pytest.skip("PVE 8.4 has no SDN rollback")
    _evpn(pve_cluster)
    pve_cluster.call("PUT", "/cluster/sdn")
    applied = (pve_cluster.store.root / "sdn" / "zones.cfg").read_text()
    token = pve_cluster.call("POST", "/cluster/sdn/lock")
    pve_cluster.call("PUT", "/cluster/sdn/zones/evpn", {"mtu": "1200", "lock-token": token})
    pve_cluster.call("POST", "/cluster/sdn/vnets", {"vnet": "extra", "zone": "evpn", "tag": "5", "lock-token": token})
    pve_cluster.call("POST", "/cluster/sdn/rollback", {"lock-token": token})
    assert (pve_cluster.store.root / "sdn" / "zones.cfg").read_text() == applied
    assert [v["vnet"] for v in pve_cluster.call("GET", "/cluster/sdn/vnets")] == ["roz1"]
    assert not (pve_cluster.store.root / "sdn" / ".lock").exists()


# The section-config layout of BEHAVIOR.md 2.2 (from pve-common SectionConfig.pm): one blank line
# after each section, a tab before each property.
EXAMPLE_FILES = (
    "evpn: evpnctl\n\tasn 65000\n\tpeers 10.0.0.1,10.0.0.2,10.0.0.3\n\n"
    "bgp: bgppve1\n\tasn 65001\n\tnode pve1\n\tpeers 198.51.100.1\n\tebgp 1\n\n",
    "evpn: zevpn\n\tcontroller evpnctl\n\tvrf-vxlan 10000\n\texitnodes pve1,pve2\n\tipam pve\n"
    "\tmac BC:24:11:5A:3C:01\n\tmtu 1450\n\nsimple: zsimple\n\tdhcp dnsmasq\n\tipam pve\n\n",
    "vnet: vnet1\n\tzone zevpn\n\talias my vnet\n\ttag 11000\n\n",
    "subnet: zevpn-10.1.1.0-24\n\tvnet vnet1\n\tdhcp-range start-address=10.1.1.100,end-address=10.1.1.200\n"
    "\tgateway 10.1.1.1\n\tsnat 1\n\n",
)


def test_files_written_byte_for_byte_as_pve_writes_them(pve_cluster):
    controllers, zones, vnets, subnets = EXAMPLE_FILES
    cluster = pve_cluster
    cluster.call(
        "POST",
        "/cluster/sdn/controllers",
        {"controller": "evpnctl", "type": "evpn", "asn": "65000", "peers": "10.0.0.1,10.0.0.2,10.0.0.3"},
    )
    cluster.call(
        "POST",
        "/cluster/sdn/controllers",
        {"controller": "bgppve1", "type": "bgp", "asn": "65001", "node": "pve1", "peers": "198.51.100.1", "ebgp": 1},
    )
    cluster.call(
        "POST",
        "/cluster/sdn/zones",
        {
            "zone": "zevpn",
            "type": "evpn",
            "controller": "evpnctl",
            "vrf-vxlan": "10000",
            "exitnodes": "pve1,pve2",
            "ipam": "pve",
            "mac": "BC:24:11:5A:3C:01",
            "mtu": "1450",
        },
    )
    cluster.call("POST", "/cluster/sdn/zones", {"zone": "zsimple", "type": "simple", "dhcp": "dnsmasq", "ipam": "pve"})
    cluster.call("POST", "/cluster/sdn/vnets", {"vnet": "vnet1", "zone": "zevpn", "alias": "my vnet", "tag": "11000"})
    cluster.call(
        "POST",
        "/cluster/sdn/vnets/vnet1/subnets",
        {
            "subnet": "10.1.1.0/24",
            "type": "subnet",
            "gateway": "10.1.1.1",
            "snat": 1,
            "dhcp-range": ["start-address=10.1.1.100,end-address=10.1.1.200"],
        },
    )
    root = cluster.store.root / "sdn"
    assert (root / "controllers.cfg").read_text() == controllers
    assert (root / "zones.cfg").read_text() == zones
    assert (root / "vnets.cfg").read_text() == vnets
    assert (root / "subnets.cfg").read_text() == subnets
