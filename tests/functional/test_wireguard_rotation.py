"""
wireguard.rotate_key and wireguard.endpoint_names with real WireGuard: two lab nodes running
wireguard-go, the functions and the state run inside them by salt-call (masterless, from the
checkout), as in test_wireguard.py.
"""

import json
import os
import re

import pytest

from netns import Lab
from support.saltconfig import salt_call_in as salt_call

pytestmark = pytest.mark.usefixtures("lab_host")

NODES = {"a": ("203.0.113.31", "10.1.0.1"), "b": ("203.0.113.32", "10.2.0.1")}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with Lab(tmp_path_factory.mktemp("lab"), prefix=f"r{os.getpid() % 100000}-") as made:
        for name, (public, _) in NODES.items():
            made.node(name, public).start_wireguard("wg0")
        yield made


def converge(node, keys, endpoint_hosts=None):
    """interface_present on ``node`` with the other node as its peer (by ``endpoint_hosts``'s
    name for it, else its address)."""
    (peer,) = set(NODES) - {node.name}
    host = (endpoint_hosts or {}).get(peer, NODES[peer][0])
    peers = [
        {
            "name": peer,
            "public_key": keys[peer],
            "allowed_ips": [f"{NODES[peer][1]}/32"],
            "endpoint": f"{host}:51820",
            "keepalive": 25,
        }
    ]
    result, _ = salt_call(
        node,
        "state.single",
        "wireguard.interface_present",
        "name=wg0",
        f"address={NODES[node.name][1]}/32",
        "port=51820",
        "mtu=1420",
        f"peers={json.dumps(peers)}",
    )
    (state,) = result.values()
    assert state["result"] is True, state
    return state


@pytest.fixture
def mesh(lab):
    """a and b with keys, each the other's peer; returns their public keys."""
    keys = {name: salt_call(node, "wireguard.genkey")[0] for name, node in lab.nodes.items()}
    for node in lab.nodes.values():
        converge(node, keys)
    return keys


def ping(node, peer):
    return node.run("ping", "-c1", "-W2", NODES[peer][1], check=False).returncode == 0


def test_a_rotated_key_is_live_persisted_and_only_its_public_half_leaves(lab, mesh):
    node_a, node_b = lab.nodes["a"], lab.nodes["b"]
    assert ping(node_a, "b")
    rotated, stdout = salt_call(node_a, "wireguard.rotate_key")
    private = node_a.run("cat", "/etc/wireguard/wg0.key").stdout.strip()
    assert rotated["previous_public_key"] == mesh["a"]
    assert rotated["public_key"] != mesh["a"]
    assert rotated["public_key"] == node_a.run("wg", "show", "wg0", "public-key").stdout.strip()
    assert rotated["public_key"] == node_a.run("wg", "pubkey", input=private + "\n").stdout.strip()
    assert f"PrivateKey = {private}" in node_a.run("cat", "/etc/wireguard/wg0.conf").stdout
    assert node_a.run("stat", "-c", "%a", "/etc/wireguard/wg0.key").stdout.strip() == "600"
    assert private not in stdout, "the private key left the node"
    assert not ping(node_a, "b"), "b still takes a's old key"
    state = converge(node_b, {**mesh, "a": rotated["public_key"]})
    assert state["changes"]["peers"] == {"added": ["a"], "removed": [mesh["a"]]}
    assert ping(node_a, "b") and ping(node_b, "a")
    assert mesh["a"] not in node_b.run("wg", "show", "wg0", "dump").stdout
    assert mesh["a"] not in node_b.run("cat", "/etc/wireguard/wg0.conf").stdout
    assert converge(node_a, {**mesh, "a": rotated["public_key"]})["changes"] == {}


def test_without_a_key_there_is_nothing_to_rotate(lab, mesh):
    node_a = lab.nodes["a"]
    node_a.run("mv", "/etc/wireguard/wg0.key", "/etc/wireguard/wg0.key.kept")
    try:
        with pytest.raises(
            AssertionError, match=re.escape("/etc/wireguard/wg0.key does not exist: wireguard.genkey makes")
        ):
            salt_call(node_a, "wireguard.rotate_key")  # nothing on stdout: the error on stderr
        assert node_a.run("wg", "show", "wg0", "public-key").stdout.strip() == mesh["a"]
    finally:
        node_a.run("mv", "/etc/wireguard/wg0.key.kept", "/etc/wireguard/wg0.key")


def test_the_names_of_the_persisted_configuration(lab, mesh):
    node_a = lab.nodes["a"]
    assert salt_call(node_a, "wireguard.endpoint_names")[0] == []
    node_a.hosts_file.write_text(node_a.hosts_file.read_text() + f"{NODES['b'][0]} B.Lab.Example.\n")
    converge(node_a, mesh, endpoint_hosts={"b": "B.Lab.Example."})
    assert salt_call(node_a, "wireguard.endpoint_names")[0] == ["b.lab.example"]
