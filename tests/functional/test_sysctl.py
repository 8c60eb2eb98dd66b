"""
salt/evpn/sysctl.sls and sysctld.managed inside a lab node, whose network parameters and
/etc/sysctl.d are its own: test mode, a real run, a second run, the persisted file. The node
lives as long as the module; each test starts from the same node (``node`` puts it back).
"""

import json
import os

import pytest

from netns import Lab
from support.saltconfig import salt_call_in

pytestmark = pytest.mark.usefixtures("lab_host")
CONFIG = "/etc/sysctl.d/90-evpn.conf"


@pytest.fixture(scope="module")
def lab_node(tmp_path_factory):
    with Lab(tmp_path_factory.mktemp("lab"), prefix=f"s{os.getpid() % 100000}-") as lab:
        yield lab.node("a", "203.0.113.41")


@pytest.fixture
def node(lab_node):
    """The node with strict reverse-path filtering on eth0, no forwarding and no sysctl file."""
    lab_node.run("sysctl", "-qw", "net.ipv4.conf.eth0.rp_filter=1", "net.ipv4.ip_forward=0")
    lab_node.run("rm", "-f", CONFIG)
    return lab_node


def _settings(node):
    """The settings sysctl.sls computes for the node (rendered inside it)."""
    (state,) = [s for s in salt_call_in(node, "state.show_sls", "evpn.sysctl")[0].values() if "sysctld" in s]
    return next(arg["settings"] for arg in state["sysctld"] if isinstance(arg, dict) and "settings" in arg)


def _apply(node, settings, test=False):
    result, _ = salt_call_in(
        node,
        "state.single",
        "sysctld.managed",
        f"name={CONFIG}",
        f"settings={json.dumps(settings)}",
        *(["test=True"] if test else []),
    )
    (state,) = result.values()
    return state


def test_the_sls_covers_every_interface(node):
    settings = _settings(node)
    for interface in ("all", "default", "lo", "eth0"):
        assert settings[f"net.ipv4.conf.{interface}.rp_filter"] == 0
    assert settings["net.ipv4.ip_forward"] == 1
    assert settings["net.bridge.bridge-nf-call-iptables"] == 1


def test_test_mode_reports_and_changes_nothing(node):
    state = _apply(node, {"net.ipv4.conf.eth0.rp_filter": 0, "net.ipv4.ip_forward": 1}, test=True)
    assert state["result"] is None
    assert state["changes"] == {
        "live": {
            "net.ipv4.conf.eth0.rp_filter": {"old": "1", "new": "0"},
            "net.ipv4.ip_forward": {"old": "0", "new": "1"},
        },
        "file": "created",
    }
    assert node.run("sysctl", "-n", "net.ipv4.conf.eth0.rp_filter").stdout.strip() == "1"
    assert node.run("test", "-e", CONFIG, check=False).returncode == 1


def test_set_live_and_persisted_then_no_change(node):
    settings = {"net.ipv4.conf.eth0.rp_filter": 0, "net.ipv4.ip_forward": 1}
    state = _apply(node, settings)
    assert state["result"] is True and state["changes"]["file"] == "created"
    assert node.run("sysctl", "-n", "net.ipv4.conf.eth0.rp_filter").stdout.strip() == "0"
    assert node.run("cat", CONFIG).stdout == "net.ipv4.conf.eth0.rp_filter = 0\nnet.ipv4.ip_forward = 1\n"
    again = _apply(node, settings)
    assert (again["result"], again["changes"]) == (True, {})


def test_a_parameter_the_kernel_lacks_fails_by_name(node):
    state = _apply(node, {"net.ipv4.conf.nosuch0.rp_filter": 0})
    assert state["result"] is False
    assert state["comment"] == "The kernel has no net.ipv4.conf.nosuch0.rp_filter (is its module loaded?)"
