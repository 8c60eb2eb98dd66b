"""
sysctld.managed with the settings of salt/evpn/sysctl.sls (evpn.sysctl_settings) inside a lab
node, whose network parameters and /etc/sysctl.d are its own: test mode, a real run, a second
run, the persisted file, interfaces that come and go. The node lives as long as the module; each
test starts from the same node (``node`` puts it back).
"""

import json
import os

import pytest
import yaml

from netns import Lab
from support.federation import REPO
from support.saltconfig import salt_call_in

pytestmark = pytest.mark.usefixtures("lab_host")
DEFAULTS = yaml.safe_load((REPO / "salt" / "evpn" / "defaults.yaml").read_text())
CONFIG = DEFAULTS["sysctl_file"]
(FORMER,) = DEFAULTS["former_sysctl_files"]
MARKER = "# Written by Salt (sysctld.managed): edits here are overwritten.\n"


@pytest.fixture(scope="module")
def lab_node(tmp_path_factory):
    with Lab(tmp_path_factory.mktemp("lab"), prefix=f"s{os.getpid() % 100000}-") as lab:
        yield lab.node("a", "203.0.113.41")


@pytest.fixture
def node(lab_node):
    """The node with strict reverse-path filtering (all, default, eth0), no forwarding and no
    sysctl file."""
    lab_node.run(
        "sysctl",
        "-qw",
        "net.ipv4.conf.all.rp_filter=1",
        "net.ipv4.conf.default.rp_filter=1",
        "net.ipv4.conf.eth0.rp_filter=1",
        "net.ipv4.ip_forward=0",
    )
    lab_node.run("rm", "-f", CONFIG, FORMER)
    return lab_node


def _rp_filter(node, interface):
    return node.run("sysctl", "-n", f"net.ipv4.conf.{interface}.rp_filter").stdout.strip()


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


def test_runs_settle_while_interfaces_come_and_go(node):
    """The kernel filters an interface with the higher of all and its own rp_filter, and gives a
    new one the value of default: with all, default and the wildcard at 0, an SDN apply's bridge
    and a VM's tap interface come and go and a run changes nothing, live or in the file."""
    settings = salt_call_in(node, "evpn.sysctl_settings")[0]
    first = _apply(node, settings)
    assert first["result"] is True, first
    assert first["changes"]["live"]["net.ipv4.conf.eth0.rp_filter"] == {"old": "1", "new": "0"}
    assert first["changes"]["file"] == "created"
    persisted = node.run("cat", CONFIG).stdout
    assert "net.ipv4.conf.*.rp_filter = 0\n" in persisted and "eth0" not in persisted
    node.run("ip", "link", "add", "vnetx", "type", "bridge")  # what an SDN apply brings
    node.run("ip", "tuntap", "add", "dev", "tap100i0", "mode", "tap")  # what a VM start brings
    try:
        assert (_rp_filter(node, "vnetx"), _rp_filter(node, "tap100i0")) == ("0", "0")
        during = _apply(node, settings)
        assert (during["result"], during["changes"]) == (True, {}), during
    finally:
        node.run("ip", "link", "del", "vnetx")
        node.run("ip", "link", "del", "tap100i0")
    after = _apply(node, settings)
    assert (after["result"], after["changes"]) == (True, {}), after
    assert node.run("cat", CONFIG).stdout == persisted


def test_an_interface_set_strict_by_someone_else_is_put_back_live_only(node):
    settings = salt_call_in(node, "evpn.sysctl_settings")[0]
    _apply(node, settings)
    node.run("ip", "link", "add", "strict0", "type", "bridge")
    try:
        node.run("sysctl", "-qw", "net.ipv4.conf.strict0.rp_filter=2")
        state = _apply(node, settings)
        assert state["changes"] == {"live": {"net.ipv4.conf.strict0.rp_filter": {"old": "2", "new": "0"}}}
        assert _rp_filter(node, "strict0") == "0"
    finally:
        node.run("ip", "link", "del", "strict0")


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
    assert node.run("cat", CONFIG).stdout == MARKER + "net.ipv4.conf.eth0.rp_filter = 0\nnet.ipv4.ip_forward = 1\n"
    again = _apply(node, settings)
    assert (again["result"], again["changes"]) == (True, {})


def test_a_parameter_the_kernel_lacks_fails_by_name(node):
    state = _apply(node, {"net.ipv4.conf.nosuch0.rp_filter": 0})
    assert state["result"] is False
    assert state["comment"] == "The kernel has no net.ipv4.conf.nosuch0.rp_filter (is its module loaded?)"


def test_our_file_comes_after_what_pve_and_debian_ship():
    """systemd-sysctl (and ``sysctl --system``) apply the files of /etc/sysctl.d, /run/sysctl.d
    and /usr/lib/sysctl.d in the order of their names, the last one winning: ours comes after
    PVE's pve-firewall.conf (``net.ipv4.conf.all.rp_filter = 2``), which the former name
    90-evpn.conf did not, and after Debian's numbered files."""
    shipped = {
        "pve-firewall.conf",  # pve-firewall: rp_filter 2 on all
        "50-pid-max.conf",  # systemd (Debian 12)
        "50-default.conf",  # systemd upstream (not in Debian 12): rp_filter 2 on all
        "99-protect-links.conf",  # procps
        "99-sysctl.conf",  # procps: the link to /etc/sysctl.conf
    }
    ours = CONFIG.rpartition("/")[2]
    assert sorted(shipped | {ours})[-1] == ours
    assert sorted({"pve-firewall.conf", FORMER.rpartition("/")[2]})[-1] == "pve-firewall.conf"


def _absent(node, name, settings, test=False):
    result, _ = salt_call_in(
        node,
        "state.single",
        "sysctld.absent",
        f"name={name}",
        f"settings={json.dumps(settings)}",
        *(["test=True"] if test else []),
    )
    (state,) = result.values()
    return state


def test_the_former_file_goes_when_it_is_ours(node):
    """The former file as the earlier release wrote it (its settings, no marker) goes: test mode
    predicts it and leaves it; a second run finds nothing. Our marked file goes too."""
    settings = salt_call_in(node, "evpn.sysctl_settings")[0]
    former = "".join(f"{key} = {settings[key]}\n" for key in sorted(settings))
    node.run("sh", "-c", f"cat > {FORMER}", input=former)
    predicted = _absent(node, FORMER, settings, test=True)
    assert (predicted["result"], predicted["changes"]) == (None, {"file": "removed"}), predicted
    assert node.run("cat", FORMER).stdout == former
    done = _absent(node, FORMER, settings)
    assert (done["result"], done["changes"]) == (True, {"file": "removed"}), done
    assert node.run("test", "-e", FORMER, check=False).returncode == 1
    again = _absent(node, FORMER, settings)
    assert (again["result"], again["changes"], again["comment"]) == (True, {}, f"{FORMER} is absent")

    _apply(node, settings)
    assert node.run("cat", CONFIG).stdout.startswith(MARKER)
    done = _absent(node, CONFIG, settings)
    assert (done["result"], done["changes"]) == (True, {"file": "removed"}), done
    assert node.run("test", "-e", CONFIG, check=False).returncode == 1


def test_a_file_of_someone_else_by_that_name_stays(node):
    settings = salt_call_in(node, "evpn.sysctl_settings")[0]
    mine = "# my own router settings\nnet.ipv4.ip_forward = 1\nnet.ipv6.conf.all.forwarding = 1\n"
    node.run("sh", "-c", f"cat > {FORMER}", input=mine)
    for test in (True, False):
        state = _absent(node, FORMER, settings, test=test)
        assert (state["result"], state["changes"]) == (True, {}), state
        assert state["comment"] == f"{FORMER} was not written by sysctld.managed: left as it is"
    assert node.run("cat", FORMER).stdout == mine
