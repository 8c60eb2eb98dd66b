"""
wireguard.interface_present with real WireGuard: three lab nodes in network namespaces, each
running wireguard-go, the state run inside each node by salt-call (masterless, from the
checkout). Needs root, wireguard-go and wireguard-tools (.ci/run installs them).
"""

import json
import os

import pytest

from netns import Lab
from support.saltconfig import salt_call_in as salt_call

pytestmark = pytest.mark.usefixtures("lab_host")

NODES = {"a": ("203.0.113.21", "10.1.0.1"), "b": ("203.0.113.22", "10.2.0.1"), "c": ("203.0.113.23", "10.3.0.1")}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with Lab(tmp_path_factory.mktemp("lab"), prefix=f"t{os.getpid() % 100000}-") as made:
        for name, (public, _) in NODES.items():
            made.node(name, public).start_wireguard("wg0")
        yield made


def peers_of(keys, names, unresolvable=(), hosts=None):
    """Peer dicts for interface_present; ``hosts`` gives peers an endpoint name instead of
    their public address."""
    peers = []
    for peer in names:
        public, address = NODES[peer]
        peers.append(
            {
                "name": peer,
                "public_key": keys[peer],
                "allowed_ips": [f"{address}/32"],
                "endpoint_host": (hosts or {}).get(peer, public),
                "endpoint_port": 51820,
                "keepalive": 25,
            }
        )
    for host in unresolvable:
        peers.append(
            {
                "name": host,
                "public_key": "x" * 43 + "=",
                "allowed_ips": ["10.9.0.1/32"],
                "endpoint_host": host,
                "endpoint_port": 51820,
                "keepalive": 25,
            }
        )
    return peers


def converge(node, keys, names, test=False, unresolvable=(), hosts=None):
    address = NODES[node.name][1]
    args = [
        "state.single",
        "wireguard.interface_present",
        "name=wg0",
        f"address={address}/32",
        "port=51820",
        "mtu=1420",
        f"peers={json.dumps(peers_of(keys, names, unresolvable, hosts))}",
    ]
    result, stdout = salt_call(node, *args, *(["test=True"] if test else []))
    (state,) = result.values()
    return state, stdout


@pytest.fixture(scope="module")
def keys(lab):
    return {name: salt_call(node, "wireguard.genkey")[0] for name, node in lab.nodes.items()}


def _ping(node, peer):
    return node.run("ping", "-c1", "-W2", NODES[peer][1], check=False).returncode == 0


def _handshake(node, key):
    return salt_call(node, "wireguard.show")[0]["peers"][key]["latest_handshake"]


def test_test_mode_on_a_fresh_node_changes_nothing(lab, keys):
    state, _ = converge(lab.nodes["a"], keys, ["b"], test=True)
    assert state["result"] is None
    assert state["changes"]["peers"] == {"added": ["b"]}
    assert state["changes"]["address"] == {"old": [], "new": "10.1.0.1/32"}
    assert lab.nodes["a"].run("wg", "show", "wg0", "peers").stdout == ""


def test_two_nodes_handshake_and_ping(lab, keys):
    for name, peer in (("a", "b"), ("b", "a")):
        state, stdout = converge(lab.nodes[name], keys, [peer])
        assert state["result"] is True, state
        assert state["changes"]["peers"] == {"added": [peer]}
        private = lab.nodes[name].run("cat", "/etc/wireguard/wg0.key").stdout.strip()
        assert private and private not in stdout, "the private key left the node"
    assert _ping(lab.nodes["a"], "b") and _ping(lab.nodes["b"], "a")
    assert _handshake(lab.nodes["a"], keys["b"]) > 0
    persisted = lab.nodes["a"].run("stat", "-c", "%a", "/etc/wireguard/wg0.conf").stdout.strip()
    assert persisted == "600"
    conf = lab.nodes["a"].run("cat", "/etc/wireguard/wg0.conf").stdout
    assert "Address = 10.1.0.1/32" in conf and "Endpoint = 203.0.113.22:51820" in conf


def test_second_run_and_test_mode_report_no_change(lab, keys):
    for test in (False, True):
        state, _ = converge(lab.nodes["a"], keys, ["b"], test=test)
        assert (state["result"], state["changes"]) == (True, {}), state


def test_adding_a_peer_keeps_established_sessions(lab, keys):
    node_a = lab.nodes["a"]
    before = _handshake(node_a, keys["b"])
    ifindex = json.loads(node_a.run("ip", "-j", "link", "show", "wg0").stdout)[0]["ifindex"]
    for name, peers in (("a", ["b", "c"]), ("b", ["a", "c"]), ("c", ["a", "b"])):
        state, _ = converge(lab.nodes[name], keys, peers)
        assert state["result"] is True, state
    assert _ping(lab.nodes["c"], "a") and _ping(lab.nodes["c"], "b")
    assert _handshake(node_a, keys["b"]) == before, "the a-b session was renegotiated"
    assert json.loads(node_a.run("ip", "-j", "link", "show", "wg0").stdout)[0]["ifindex"] == ifindex


def test_an_unresolvable_endpoint_is_left_out_and_the_tunnel_stays(lab, keys):
    state, _ = converge(lab.nodes["a"], keys, ["b", "c"], unresolvable=["gone.example.invalid"])
    assert state["result"] is True and state["changes"] == {}, state
    assert "peers left out for now: gone.example.invalid (gone.example.invalid does not resolve)" in state["comment"]
    assert _ping(lab.nodes["a"], "b")


def test_removing_a_peer(lab, keys):
    state, _ = converge(lab.nodes["a"], keys, ["b"])
    assert state["changes"]["peers"] == {"removed": [keys["c"]]}
    assert state["changes"]["routes"] == {"removed": ["10.3.0.1/32"]}
    assert keys["c"] not in lab.nodes["a"].run("wg", "show", "wg0", "peers").stdout
    assert keys["c"] not in lab.nodes["a"].run("cat", "/etc/wireguard/wg0.conf").stdout
    assert _ping(lab.nodes["a"], "b")


def _endpoint(node, key):
    return salt_call(node, "wireguard.show")[0]["peers"][key]["endpoint"]


def test_refresh_endpoints_follows_a_moved_peer(lab, keys):
    """b gets a new public address and its name a new answer: refresh_endpoints on a re-points
    a's peer live and in the persisted file; nothing else moves, and a second refresh sets
    nothing."""
    node_a, node_b = lab.nodes["a"], lab.nodes["b"]
    node_a.hosts_file.write_text(node_a.hosts_file.read_text() + "203.0.113.22 b.lab.example\n")
    state, _ = converge(node_a, keys, ["b"], hosts={"b": "b.lab.example"})
    assert state["result"] is True and state["changes"] == {"config_file": "updated"}, state
    assert "# b at b.lab.example:51820" in node_a.run("cat", "/etc/wireguard/wg0.conf").stdout
    assert salt_call(node_a, "wireguard.refresh_endpoints")[0] == {"changed": {}, "unresolved": []}

    node_b.move("198.51.100.22", "198.51.100.1")
    node_a.hosts_file.write_text(node_a.hosts_file.read_text().replace("203.0.113.22 b", "198.51.100.22 b"))
    predicted = salt_call(node_a, "wireguard.refresh_endpoints", "test=True")[0]
    assert _endpoint(node_a, keys["b"]) == "203.0.113.22:51820", "test mode changed the endpoint"
    refreshed = salt_call(node_a, "wireguard.refresh_endpoints")[0]
    assert (
        refreshed
        == predicted
        == {"changed": {"b": {"old": "203.0.113.22:51820", "new": "198.51.100.22:51820"}}, "unresolved": []}
    )
    assert _endpoint(node_a, keys["b"]) == "198.51.100.22:51820"
    assert "Endpoint = 198.51.100.22:51820" in node_a.run("cat", "/etc/wireguard/wg0.conf").stdout
    assert _ping(node_a, "b") and _ping(node_b, "a")
    assert salt_call(node_a, "wireguard.refresh_endpoints")[0] == {"changed": {}, "unresolved": []}
    state, _ = converge(node_a, keys, ["b"], hosts={"b": "b.lab.example"})
    assert state["changes"] == {}, "the state and the refresh disagree on the persisted file"


def test_refresh_endpoints_leaves_a_peer_whose_name_fails(lab, keys):
    node_a = lab.nodes["a"]
    node_a.hosts_file.write_text(node_a.hosts_file.read_text().replace("198.51.100.22 b.lab.example\n", ""))
    assert salt_call(node_a, "wireguard.refresh_endpoints")[0] == {"changed": {}, "unresolved": ["b"]}
    assert _endpoint(node_a, keys["b"]) == "198.51.100.22:51820"
    assert _ping(node_a, "b")


def test_the_sls_configures_the_node_and_waits_for_peer_keys(tmp_path):
    """salt/evpn/wireguard.sls on pve-roz1 of the example pillar, masterless: the mine holds
    no peer key yet, so the interface comes up alone and says whom it waits for."""
    with Lab(tmp_path / "lab", prefix=f"u{os.getpid() % 100000}-") as lab:
        node = lab.node("pve-roz1", "203.0.113.51")
        node.start_wireguard("wg0")
        first, stdout = salt_call(node, "state.apply", "evpn.wireguard")
        (interface,) = [s for s in first.values() if s["__id__"] == "evpn-wireguard"]
        assert interface["result"] is True
        assert interface["changes"]["private_key"] == "generated"
        assert interface["changes"]["address"] == {"old": [], "new": "10.1.0.1/32"}
        assert interface["comment"].endswith(
            "peers left out for now: pve-roz2 (no public key in the mine yet), pve-wro1 (no public key in the mine yet)"
        )
        assert node.run("cat", "/etc/wireguard/wg0.key").stdout.strip() not in stdout
        (publish,) = [s for s in first.values() if s["__id__"] == "evpn-wireguard-publish-key"]
        assert publish["changes"] == {"mine.update": True}
        again, _ = salt_call(node, "state.apply", "evpn.wireguard")
        assert all(s["changes"] == {} for s in again.values()), again
