"""
wireguard.interface_present with real WireGuard: lab nodes in network namespaces, each running
wireguard-go, the state run inside each node by salt-call (masterless, from the checkout). Needs
root, wireguard-go and wireguard-tools (.ci/run installs them). The nodes live as long as the
module; every test first brings the nodes it uses to the state it starts from, so the tests pass
alone and in any order.
"""

import contextlib
import functools
import json
import os

import pytest

from netns import Lab, internet_gateway
from support.federation import PILLAR
from support.pve import emulated_pve_node
from support.saltconfig import salt_call_in as salt_call

pytestmark = pytest.mark.usefixtures("lab_host")

# a, b, c: the mesh; d: the node that moves (the endpoint tests), its name d.lab.example.
NODES = {
    "a": ("203.0.113.21", "10.1.0.1"),
    "b": ("203.0.113.22", "10.2.0.1"),
    "c": ("203.0.113.23", "10.3.0.1"),
    "d": ("203.0.113.24", "10.4.0.1"),
}
D_NAME = "d.lab.example"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with Lab(tmp_path_factory.mktemp("lab"), prefix=f"t{os.getpid() % 100000}-") as made:
        for name, (public, _) in NODES.items():
            made.node(name, public).start_wireguard("wg0")
        yield made


def peers_of(keys, names, unresolvable=(), endpoints=None):
    """Peer dicts for interface_present; ``endpoints`` gives peers another endpoint
    (``host:port``) than their public address and port 51820."""
    peers = []
    for peer in names:
        public, address = NODES[peer]
        peers.append(
            {
                "name": peer,
                "public_key": keys[peer],
                "allowed_ips": [f"{address}/32"],
                "endpoint": (endpoints or {}).get(peer, f"{public}:51820"),
                "keepalive": 25,
            }
        )
    for host in unresolvable:
        peers.append(
            {
                "name": host,
                "public_key": "x" * 43 + "=",
                "allowed_ips": ["10.9.0.1/32"],
                "endpoint": f"{host}:51820",
                "keepalive": 25,
            }
        )
    return peers


def converge(node, keys, names, test=False, unresolvable=(), endpoints=None):
    """interface_present on ``node`` with ``names`` as peers; a peer whose key is None in
    ``keys`` comes without one (not in the mine)."""
    address = NODES[node.name][1]
    args = [
        "state.single",
        "wireguard.interface_present",
        "name=wg0",
        f"address={address}/32",
        "port=51820",
        "mtu=1420",
        f"peers={json.dumps(peers_of(keys, names, unresolvable, endpoints))}",
    ]
    result, stdout = salt_call(node, *args, *(["test=True"] if test else []))
    (state,) = result.values()
    return state, stdout


def mesh(lab, keys, names):
    """Each of ``names`` converged with the others as its peers."""
    for name in names:
        state, _ = converge(lab.nodes[name], keys, [peer for peer in names if peer != name])
        assert state["result"] is True, state


def fresh(node):
    """The node's wg0 as wireguard-go makes it (its key file kept): no peer, address, route or
    persisted configuration, down."""
    for key in node.run("wg", "show", "wg0", "peers").stdout.split():
        node.run("wg", "set", "wg0", "peer", key, "remove")
    node.run("ip", "route", "flush", "dev", "wg0")
    node.run("ip", "address", "flush", "dev", "wg0")
    node.run("ip", "link", "set", "wg0", "down")
    node.run("rm", "-f", "/etc/wireguard/wg0.conf")


@pytest.fixture(scope="module")
def keys(lab):
    return {name: salt_call(node, "wireguard.genkey")[0] for name, node in lab.nodes.items()}


def _ping(node, peer):
    return node.run("ping", "-c1", "-W2", NODES[peer][1], check=False).returncode == 0


def _handshake(node, key):
    return salt_call(node, "wireguard.show")[0]["peers"][key]["latest_handshake"]


def test_test_mode_on_a_fresh_node_changes_nothing(lab, keys):
    fresh(lab.nodes["a"])
    state, _ = converge(lab.nodes["a"], keys, ["b"], test=True)
    assert state["result"] is None
    assert state["changes"]["peers"] == {"added": ["b"]}
    assert state["changes"]["address"] == {"old": [], "new": "10.1.0.1/32"}
    assert state["changes"]["config_file"] == "updated"
    assert lab.nodes["a"].run("wg", "show", "wg0", "peers").stdout == ""
    assert lab.nodes["a"].run("test", "-e", "/etc/wireguard/wg0.conf", check=False).returncode == 1


def test_two_nodes_handshake_and_ping(lab, keys):
    for name in ("a", "b"):
        fresh(lab.nodes[name])
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
    mesh(lab, keys, ["a", "b"])
    for test in (False, True):
        state, _ = converge(lab.nodes["a"], keys, ["b"], test=test)
        assert (state["result"], state["changes"]) == (True, {}), state


def test_adding_a_peer_keeps_established_sessions(lab, keys):
    for name in ("a", "b"):
        fresh(lab.nodes[name])  # a session of this test's own: none rekeys while it runs
    mesh(lab, keys, ["a", "b"])
    node_a = lab.nodes["a"]
    assert _ping(node_a, "b")
    before = _handshake(node_a, keys["b"])
    ifindex = json.loads(node_a.run("ip", "-j", "link", "show", "wg0").stdout)[0]["ifindex"]
    for name, peers in (("a", ["b", "c"]), ("b", ["a", "c"]), ("c", ["a", "b"])):
        state, _ = converge(lab.nodes[name], keys, peers)
        assert state["result"] is True, state
    assert _ping(lab.nodes["c"], "a") and _ping(lab.nodes["c"], "b")
    assert _handshake(node_a, keys["b"]) == before, "the a-b session was renegotiated"
    assert json.loads(node_a.run("ip", "-j", "link", "show", "wg0").stdout)[0]["ifindex"] == ifindex


def test_an_unresolvable_endpoint_is_left_out_and_the_tunnel_stays(lab, keys):
    mesh(lab, keys, ["a", "b", "c"])
    state, _ = converge(lab.nodes["a"], keys, ["b", "c"], unresolvable=["gone.example.invalid"])
    assert state["result"] is True and state["changes"] == {}, state
    assert "peers left out for now: gone.example.invalid (gone.example.invalid does not resolve)" in state["comment"]
    assert _ping(lab.nodes["a"], "b")


def test_removing_a_peer(lab, keys):
    mesh(lab, keys, ["a", "b", "c"])
    state, _ = converge(lab.nodes["a"], keys, ["b"])
    assert state["changes"]["peers"] == {"removed": [keys["c"]]}
    assert state["changes"]["routes"] == {"removed": ["10.3.0.1/32"]}
    assert keys["c"] not in lab.nodes["a"].run("wg", "show", "wg0", "peers").stdout
    assert keys["c"] not in lab.nodes["a"].run("cat", "/etc/wireguard/wg0.conf").stdout
    assert _ping(lab.nodes["a"], "b")


def test_a_peer_the_mine_forgets_stays_up(lab, keys):
    mesh(lab, keys, ["a", "b"])
    state, _ = converge(lab.nodes["a"], {**keys, "b": None}, ["b"])
    assert (state["result"], state["changes"]) == (True, {}), state
    assert keys["b"] in lab.nodes["a"].run("wg", "show", "wg0", "peers").stdout
    assert _ping(lab.nodes["a"], "b")


def test_what_the_user_added_to_the_file_is_kept(lab, keys):
    """A PostUp command and a peer's preshared key written by hand, in wg-quick's compact
    layout, survive a converge; the preshared key goes live too."""
    mesh(lab, keys, ["a", "b"])
    node_a = lab.nodes["a"]
    psk = node_a.run("wg", "genpsk").stdout.strip()
    conf = node_a.run("cat", "/etc/wireguard/wg0.conf").stdout
    conf = conf.replace("[Interface]\n", "[Interface]\npostup=logger wg0 is up # by hand\n")
    conf = conf.replace(f"PublicKey = {keys['b']}\n", f"PublicKey = {keys['b']}\npresharedkey={psk}\n")
    node_a.run("sh", "-c", "cat > /etc/wireguard/wg0.conf", input=conf)
    try:
        state, _ = converge(node_a, keys, ["b"])
        assert (state["result"], state["changes"]) == (True, {}), "a hand-made addition counted as a change"
        state, _ = converge(node_a, keys, ["b", "c"])
        assert state["result"] is True and state["changes"]["config_file"] == "updated", state
        kept = node_a.run("cat", "/etc/wireguard/wg0.conf").stdout.splitlines()
        assert "postup=logger wg0 is up # by hand" in kept and f"presharedkey={psk}" in kept
        live = node_a.run("wg", "show", "wg0", "preshared-keys").stdout
        assert f"{keys['b']}\t{psk}" in live.splitlines()
    finally:
        fresh(node_a)  # b has no preshared key: the tunnel would stay down for the next test


def test_a_file_wg_quick_would_refuse_fails_the_state_and_changes_nothing(lab, keys):
    mesh(lab, keys, ["a", "b"])
    node_a = lab.nodes["a"]
    broken = node_a.run("cat", "/etc/wireguard/wg0.conf").stdout.replace("[Peer]", "[Peers]")
    node_a.run("sh", "-c", "cat > /etc/wireguard/wg0.conf", input=broken)
    peers_before = node_a.run("wg", "show", "wg0", "peers").stdout
    try:
        state, _ = converge(node_a, keys, ["b", "c"])
        assert state["result"] is False and state["changes"] == {}, state
        assert "/etc/wireguard/wg0.conf: line" in state["comment"] and "[Peers]" in state["comment"], state
        assert "nothing was changed" in state["comment"]
        assert node_a.run("wg", "show", "wg0", "peers").stdout == peers_before
        assert node_a.run("cat", "/etc/wireguard/wg0.conf").stdout == broken
    finally:
        fresh(node_a)


def _endpoint(node, key):
    return salt_call(node, "wireguard.show")[0]["peers"][key]["endpoint"]


def _point_name(node, address, name=D_NAME):
    """``name`` resolves to ``address`` on ``node`` (None: it does not resolve)."""
    lines = [line for line in node.hosts_file.read_text().splitlines() if not line.endswith(f" {name}")]
    node.hosts_file.write_text("\n".join(lines + ([f"{address} {name}"] if address else [])) + "\n")


@pytest.fixture
def a_and_d_by_name(lab, keys):
    """a and d peers from fresh, a reaching d by its name; d at its first public address."""
    node_a, node_d = lab.nodes["a"], lab.nodes["d"]
    for node in (node_a, node_d):
        fresh(node)
    node_d.move(NODES["d"][0], "203.0.113.1")
    _point_name(node_a, NODES["d"][0])
    for node, peer, endpoints in ((node_a, "d", {"d": f"{D_NAME}:51820"}), (node_d, "a", None)):
        state, _ = converge(node, keys, [peer], endpoints=endpoints)
        assert state["result"] is True, state
    assert _ping(node_a, "d")
    assert f"# d at {D_NAME}:51820" in node_a.run("cat", "/etc/wireguard/wg0.conf").stdout
    return node_a, node_d


def test_refresh_endpoints_follows_a_moved_peer(a_and_d_by_name, keys):
    """d gets a new public address and its name a new answer: refresh_endpoints on a re-points
    a's peer live and in the persisted file; nothing else moves, and a second refresh sets
    nothing."""
    node_a, node_d = a_and_d_by_name
    assert salt_call(node_a, "wireguard.refresh_endpoints")[0] == {"changed": {}, "unresolved": []}

    node_d.move("198.51.100.24", "198.51.100.1")
    _point_name(node_a, "198.51.100.24")
    predicted = salt_call(node_a, "wireguard.refresh_endpoints", "test=True")[0]
    assert _endpoint(node_a, keys["d"]) == "203.0.113.24:51820", "test mode changed the endpoint"
    refreshed = salt_call(node_a, "wireguard.refresh_endpoints")[0]
    assert (
        refreshed
        == predicted
        == {"changed": {"d": {"old": "203.0.113.24:51820", "new": "198.51.100.24:51820"}}, "unresolved": []}
    )
    assert _endpoint(node_a, keys["d"]) == "198.51.100.24:51820"
    assert "Endpoint = 198.51.100.24:51820" in node_a.run("cat", "/etc/wireguard/wg0.conf").stdout
    assert _ping(node_a, "d") and _ping(node_d, "a")
    assert salt_call(node_a, "wireguard.refresh_endpoints")[0] == {"changed": {}, "unresolved": []}
    state, _ = converge(node_a, keys, ["d"], endpoints={"d": f"{D_NAME}:51820"})
    assert state["changes"] == {}, "the state and the refresh disagree on the persisted file"


def test_refresh_endpoints_leaves_a_peer_roamed_to_another_port_of_its_address(a_and_d_by_name, keys):
    """Behind a NAT router a peer's packets may leave from another port than the forwarded one
    (two nodes behind one router cannot both keep theirs), and WireGuard roams to it: the name
    still answers that address, so nothing moved and the refresh leaves the peer alone."""
    node_a, _ = a_and_d_by_name
    # Nothing from d reaches a meanwhile, so WireGuard cannot roam the endpoint back by itself.
    quiet = ["INPUT", "-s", NODES["d"][0], "-p", "udp", "-j", "DROP"]
    node_a.run("iptables", "-I", *quiet)
    try:
        node_a.run("wg", "set", "wg0", "peer", keys["d"], "endpoint", "203.0.113.24:40123")
        assert salt_call(node_a, "wireguard.refresh_endpoints")[0] == {"changed": {}, "unresolved": []}
        assert _endpoint(node_a, keys["d"]) == "203.0.113.24:40123"
    finally:
        node_a.run("iptables", "-D", *quiet)


def test_refresh_endpoints_leaves_a_peer_whose_name_fails(a_and_d_by_name, keys):
    node_a, _ = a_and_d_by_name
    _point_name(node_a, None)
    assert salt_call(node_a, "wireguard.refresh_endpoints")[0] == {"changed": {}, "unresolved": ["d"]}
    assert _endpoint(node_a, keys["d"]) == "203.0.113.24:51820"
    assert _ping(node_a, "d")


@contextlib.contextmanager
def _nothing_from(node, addresses):
    """Nothing of ``addresses`` reaches ``node`` meanwhile: WireGuard cannot roam an endpoint by
    itself, so what the live peer holds is what the state set."""
    rule = ["INPUT", "-s", ",".join(addresses), "-p", "udp", "-j", "DROP"]
    node.run("iptables", "-I", *rule)
    try:
        yield
    finally:
        node.run("iptables", "-D", *rule)


@contextlib.contextmanager
def _forwarded(node, port):
    """UDP ``port`` of the node's public address goes to its WireGuard port 51820, as a router's
    port forward does (None: no forward)."""
    rule = ["PREROUTING", "-p", "udp", "--dport", str(port), "-j", "REDIRECT", "--to-ports", "51820"]
    if port:
        node.run("iptables", "-t", "nat", "-A", *rule)
    try:
        yield
    finally:
        if port:
            node.run("iptables", "-t", "nat", "-D", *rule)


D_MOVED = "198.51.100.24"  # d's public address after it moved


def test_the_state_leaves_a_peer_roamed_to_another_port_of_its_address(a_and_d_by_name, keys):
    """The endpoint configured is the one persisted and its name still answers the roamed
    address: the roamed port (a NAT router's mapping) stays, and the run reports no change."""
    node_a, _ = a_and_d_by_name
    with _nothing_from(node_a, [NODES["d"][0]]):
        node_a.run("wg", "set", "wg0", "peer", keys["d"], "endpoint", "203.0.113.24:40123")
        for test in (True, False):
            state, _ = converge(node_a, keys, ["d"], test=test, endpoints={"d": f"{D_NAME}:51820"})
            assert (state["result"], state["changes"]) == (True, {}), state
        assert _endpoint(node_a, keys["d"]) == "203.0.113.24:40123"


@pytest.mark.parametrize(
    "before, after",
    [
        # (d's endpoint in the pillar, d's public address, the port its router forwards, a's
        # live endpoint roamed to a NAT mapping of that address or None)
        pytest.param(
            (f"{D_NAME}:51820", NODES["d"][0], None, None),
            (f"{D_NAME}:51821", NODES["d"][0], 51821),
            id="a-new-forwarded-port",
        ),
        pytest.param(
            (f"{D_NAME}:51820", NODES["d"][0], None, None),
            (f"d2.{D_NAME}:51820", D_MOVED, None),
            id="a-new-name-elsewhere",
        ),
        pytest.param(
            (f"nat.{D_NAME}:51830", NODES["d"][0], 51830, 40123),
            (f"{D_NAME}:51820", D_MOVED, None),
            id="from-nat-to-a-public-address",
        ),
    ],
)
def test_an_endpoint_changed_in_the_pillar_is_followed_in_one_run(lab, keys, before, after):
    """A site's endpoint changes in the pillar (a new forwarded port, a new DDNS name answering
    another address, a site whose node was behind a NAT router with a forwarded port, and
    roamed to the router's mapping, now on a public address of its own): one run points the
    live peer at the new endpoint and persists it; test mode predicts exactly that and changes
    nothing; a second run changes nothing. Nothing reaches a from d meanwhile, so WireGuard
    cannot re-point the peer by itself."""
    node_a, node_d = lab.nodes["a"], lab.nodes["d"]
    (old_endpoint, old_address, old_forward, roamed_port), (new_endpoint, new_address, new_forward) = before, after
    names = {endpoint.rpartition(":")[0] for endpoint in (old_endpoint, new_endpoint)}
    for node in (node_a, node_d):
        fresh(node)
    node_d.move(old_address, internet_gateway(old_address))
    _point_name(node_a, old_address, old_endpoint.rpartition(":")[0])
    with _forwarded(node_d, old_forward):
        for node, peer, endpoints in ((node_a, "d", {"d": old_endpoint}), (node_d, "a", None)):
            state, _ = converge(node, keys, [peer], endpoints=endpoints)
            assert state["result"] is True, state
        assert _ping(node_a, "d")
    try:
        with _nothing_from(node_a, [old_address, new_address]), _forwarded(node_d, new_forward):
            if roamed_port:
                node_a.run("wg", "set", "wg0", "peer", keys["d"], "endpoint", f"{old_address}:{roamed_port}")
            live_before = _endpoint(node_a, keys["d"])
            node_d.move(new_address, internet_gateway(new_address))
            _point_name(node_a, new_address, new_endpoint.rpartition(":")[0])
            new_live = f"{new_address}:{new_endpoint.rpartition(':')[2]}"
            expected = {"peers": {"endpoints": {"d": {"old": live_before, "new": new_live}}}, "config_file": "updated"}
            conf_before = node_a.run("cat", "/etc/wireguard/wg0.conf").stdout

            predicted, _ = converge(node_a, keys, ["d"], test=True, endpoints={"d": new_endpoint})
            assert (predicted["result"], predicted["changes"]) == (None, expected), predicted
            assert _endpoint(node_a, keys["d"]) == live_before, "test mode re-pointed the peer"
            assert node_a.run("cat", "/etc/wireguard/wg0.conf").stdout == conf_before

            done, _ = converge(node_a, keys, ["d"], endpoints={"d": new_endpoint})
            assert (done["result"], done["changes"]) == (True, expected), done
            assert _endpoint(node_a, keys["d"]) == new_live
            conf = node_a.run("cat", "/etc/wireguard/wg0.conf").stdout
            assert f"# d at {new_endpoint}" in conf and f"Endpoint = {new_live}" in conf

            again, _ = converge(node_a, keys, ["d"], endpoints={"d": new_endpoint})
            assert (again["result"], again["changes"]) == (True, {}), again
        with _forwarded(node_d, new_forward):
            assert _ping(node_a, "d") and _ping(node_d, "a")
    finally:
        for name in names:
            _point_name(node_a, None, name)


def test_the_sls_configures_the_node_and_waits_for_peer_keys(tmp_path):
    """salt/evpn/wireguard.sls on pve-roz1 of the example pillar, masterless, on a lab node that
    stands for a PVE node: the mine holds no peer key yet, so the interface comes up alone and
    says whom it waits for."""
    with Lab(tmp_path / "lab", prefix=f"u{os.getpid() % 100000}-") as lab:
        node = lab.node("pve-roz1", "203.0.113.51")
        node.start_wireguard("wg0")
        options, env = emulated_pve_node(node, tmp_path, "roz")
        sls = functools.partial(salt_call, node, options={**options, "pillar_roots": {"base": [str(PILLAR)]}}, env=env)
        first, stdout = sls("state.apply", "evpn.wireguard")
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
        again, _ = sls("state.apply", "evpn.wireguard")
        assert all(s["changes"] == {} for s in again.values()), again
