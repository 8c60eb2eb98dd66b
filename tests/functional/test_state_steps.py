"""
How wireguard.interface_present and sysctld.managed act, through Salt's state loader with the
execution functions they call replaced by recording fakes (nothing on this host is touched):
every change is computed before the first action, test mode predicts exactly what a run
changes, and a failing step reports what the steps before it changed.
"""

import copy

import pytest
import salt.loader
from salt.exceptions import CommandExecutionError

KEY_B = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0="
PEERS = [
    {
        "name": "pve-wro1",
        "public_key": KEY_B,
        "allowed_ips": ["10.2.0.1/32"],
        "endpoint": "wro.example.net:51820",
        "keepalive": 25,
    }
]
ACTIONS = {"genkey", "create", "configure_link", "syncconf", "persist", "assign", "write"}


class FakeWireGuard:
    """The wireguard execution functions the state calls, on an in-memory interface."""

    def __init__(self, calls):
        self.calls = calls
        self.failing = {}  # function name: the error it raises
        self.key = None
        self.link = None  # {"mtu", "up", "addresses"}
        self.live = None  # {"listen_port", "peers"}
        self.routes = []
        self.persisted = None

    def call(self, function, result=None):
        self.calls.append(function)
        if function in self.failing:
            raise self.failing[function]
        return result

    def functions(self):
        def persist(name, port, peers, address, mtu, test=False):
            wanted = (
                port,
                [(p["name"], p["public_key"], p["endpoint_name"], p["endpoint"]) for p in peers],
                address,
                mtu,
            )
            if test:
                return self.call("persist(test)", wanted != self.persisted)
            self.call("persist")
            changed, self.persisted = wanted != self.persisted, wanted
            return changed

        def syncconf(name, port, peers):
            self.call("syncconf")
            self.live = {
                "listen_port": port,
                "peers": {
                    p["public_key"]: {
                        "allowed_ips": p["allowed_ips"],
                        "keepalive": p["keepalive"],
                        "endpoint": p["endpoint"],
                    }
                    for p in peers
                },
            }

        def configure_link(name, address, mtu, remove_addresses=(), add_routes=(), remove_routes=()):
            self.call("configure_link")
            self.link = {"mtu": mtu, "up": True, "addresses": [address]}
            self.routes = sorted(set(self.routes) - set(remove_routes) | set(add_routes))

        return {
            "wireguard.show": lambda name: self.call("show", copy.deepcopy(self.live)),
            "wireguard.public_key": lambda name: self.call("public_key", self.key and "public"),
            "wireguard.genkey": lambda name: self.call("genkey") or setattr(self, "key", "private"),
            "wireguard.link": lambda name: self.call("link", copy.deepcopy(self.link)),
            "wireguard.create": lambda name: (
                self.call("create") or setattr(self, "link", {"mtu": 1500, "up": False, "addresses": []})
            ),
            "wireguard.routes": lambda name: self.call("routes", list(self.routes)),
            "wireguard.resolve": lambda endpoint: self.call("resolve", "198.51.100.12:51820"),
            "wireguard.configure_link": configure_link,
            "wireguard.syncconf": syncconf,
            "wireguard.persist": persist,
            "wireguard.configured_peers": lambda name: self.call(
                "configured_peers",
                [
                    {"name": n, "public_key": k, "endpoint_name": e, "endpoint": r}
                    for n, k, e, r in (self.persisted[1] if self.persisted else [])
                ],
            ),
        }


@pytest.fixture
def calls():
    return []


@pytest.fixture
def wireguard(calls):
    return FakeWireGuard(calls)


def _states(loaders, functions, test):
    opts = {**loaders.opts, "test": test}
    return salt.loader.states(opts, functions, loaders.utils, loaders.serializers)


def _present(loaders, wireguard, test=False):
    states = _states(loaders, wireguard.functions(), test)
    return states["wireguard.interface_present"]("wg0", "10.1.0.1/32", 51820, 1420, PEERS)


def test_a_fresh_node_changes_in_the_order_predicted(loaders, wireguard, calls):
    predicted = _present(loaders, wireguard, test=True)
    assert predicted["result"] is None
    assert not ACTIONS & set(calls), "test mode acted"
    assert predicted["changes"] == {
        "private_key": "generated",
        "interface": "created",
        "address": {"old": [], "new": "10.1.0.1/32"},
        "mtu": {"old": None, "new": 1420},
        "up": True,
        "listen_port": {"old": None, "new": 51820},
        "peers": {"added": ["pve-wro1"]},
        "routes": {"added": ["10.2.0.1/32"]},
        "config_file": "written",
    }
    calls.clear()
    done = _present(loaders, wireguard)
    assert (done["result"], done["changes"]) == (True, predicted["changes"])
    acted = [c for c in calls if c in ACTIONS]
    assert acted == ["genkey", "create", "configure_link", "syncconf", "persist"]
    assert calls.index("genkey") > max(i for i, c in enumerate(calls) if c not in ACTIONS), "acted while computing"
    calls.clear()
    again = _present(loaders, wireguard)
    assert (again["result"], again["changes"]) == (True, {})
    assert not ACTIONS & set(calls)


def test_a_peer_the_mine_forgets_keeps_its_persisted_key(loaders, wireguard, calls):
    """The mine lost its data (a master rebuilt, say): the peer stays, with the key persisted for
    it, instead of being removed from a working tunnel."""
    _present(loaders, wireguard)
    forgotten = [{**PEERS[0], "public_key": None}]
    calls.clear()
    states = _states(loaders, wireguard.functions(), False)
    ret = states["wireguard.interface_present"]("wg0", "10.1.0.1/32", 51820, 1420, forgotten)
    assert (ret["result"], ret["changes"]) == (True, {}), ret
    assert "left out" not in ret["comment"]
    assert not ACTIONS & set(calls)
    assert list(wireguard.live["peers"]) == [KEY_B]


def test_a_failing_step_reports_what_the_steps_before_it_made(loaders, wireguard, calls):
    wireguard.failing["syncconf"] = CommandExecutionError("wg syncconf wg0: Unable to modify interface")
    ret = _present(loaders, wireguard)
    assert ret["result"] is False
    assert ret["changes"] == {
        "private_key": "generated",
        "interface": "created",
        "address": {"old": [], "new": "10.1.0.1/32"},
        "mtu": {"old": None, "new": 1420},
        "up": True,
        "routes": {"added": ["10.2.0.1/32"]},
    }
    assert ret["comment"] == (
        "WireGuard interface wg0: setting the key, port and peers (wg syncconf) failed: wg syncconf wg0: "
        "Unable to modify interface; made before it: private_key, interface, address, mtu, up, routes"
    )
    assert "persist" not in calls


def test_a_failure_while_computing_changes_nothing(loaders, wireguard, calls):
    wireguard.key = "private"
    wireguard.failing["persist(test)"] = CommandExecutionError("/etc/wireguard/wg0.conf: line 7: '[Peers]' is not")
    ret = _present(loaders, wireguard)
    assert (ret["result"], ret["changes"]) == (False, {})
    assert ret["comment"] == (
        "WireGuard interface wg0: nothing was changed: /etc/wireguard/wg0.conf: line 7: '[Peers]' is not"
    )
    assert not ACTIONS & set(calls)


@pytest.fixture
def kernel(calls):
    """sysctl.show and sysctl.assign on an in-memory kernel; ``failing`` keys fail to set."""
    values = {"net.ipv4.ip_forward": "0", "net.ipv4.conf.all.rp_filter": "1", "net.ipv4.conf.pub0.rp_filter": "1"}
    failing = set()

    def assign(key, value):
        calls.append("assign")
        if key in failing:
            raise CommandExecutionError(f"sysctl -w {key}={value}: permission denied")
        values[key] = value

    return failing, {"sysctl.show": lambda: dict(values), "sysctl.assign": assign}


def test_sysctl_reports_the_values_set_before_a_failure(loaders, kernel, calls, tmp_path):
    failing, functions = kernel
    failing.add("net.ipv4.conf.pub0.rp_filter")
    settings = {"net.ipv4.ip_forward": 1, "net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.pub0.rp_filter": 0}
    path = tmp_path / "zz-evpn.conf"
    predicted = _states(loaders, functions, True)["sysctld.managed"](str(path), settings)
    assert predicted["result"] is None and set(predicted["changes"]["live"]) == set(settings)
    assert calls == []
    ret = _states(loaders, functions, False)["sysctld.managed"](str(path), settings)
    assert ret["result"] is False
    # Keys are set in sorted order: all.rp_filter was set, pub0 failed, ip_forward was not tried.
    assert ret["changes"] == {"live": {"net.ipv4.conf.all.rp_filter": {"old": "1", "new": "0"}}}
    assert "net.ipv4.conf.pub0.rp_filter=0: permission denied" in ret["comment"]
    assert not path.exists(), "the file was written though the kernel does not hold its values"
    failing.clear()
    ret = _states(loaders, functions, False)["sysctld.managed"](str(path), settings)
    assert ret["result"] is True and ret["changes"] == {
        "live": {
            "net.ipv4.conf.pub0.rp_filter": {"old": "1", "new": "0"},
            "net.ipv4.ip_forward": {"old": "0", "new": "1"},
        },
        "file": "created",
    }
    assert path.read_text() == (
        "# Written by Salt (sysctld.managed): edits here are overwritten.\n"
        "net.ipv4.conf.all.rp_filter = 0\nnet.ipv4.conf.pub0.rp_filter = 0\nnet.ipv4.ip_forward = 1\n"
    )
