"""
The emulator's firewall compilers against upstream: proxmox-firewall's integration snapshot,
compared command by command, and the parse failures of each version (BEHAVIOR.md sections 1.3
and 5). pve-firewall's regression tests run in real netfilter: tests/functional/test_fwcompile_netfilter.py.
"""

import json
import pathlib
import shutil

import pytest

from pvesim.fwcompile import compile_node

DATA = pathlib.Path(__file__).parents[1] / "data"
# per PVE version: the upstream test of its proxmox-firewall, and how many commands of the
# snapshot full_host_fw() emits before it turns to guests (reset, SDN and IPAM sets in both
# tables, management and cluster sets, group, cluster, ct helper, option and host chains)
SNAPSHOTS = {"8.4": (DATA / "proxmox-firewall-0.7.1", 220, 306), "9.1": (DATA / "proxmox-firewall-1.2.2", 232, 341)}
SNAPSHOT = SNAPSHOTS["9.1"][0]


def _snapshot_root(tmp_path, snapshot=SNAPSHOT):
    root = tmp_path / "pve"
    for source, target in (
        ("cluster.fw", "firewall/cluster.fw"),
        ("host.fw", "nodes/node1/host.fw"),
        (".running-config.json", "sdn/.running-config"),
        ("ipam.db", "priv/ipam.db"),
    ):
        (root / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(snapshot / "input" / source, root / target)
    return root


def _snapshot_commands(snapshot):
    text = (snapshot / "snapshots" / "integration_tests__firewall.snap").read_text()
    return json.loads(text.split("\n---\n", 1)[1])["nftables"]


def _existing_chains(snapshot):
    listing = json.loads((snapshot / "input" / "chains.json").read_text())["nftables"]
    return [item["chain"] for item in listing if "chain" in item]


def _batch(result):
    steps = [step for step in result["load"] if step["argv"] == ["nft", "-j", "-f", "-"]]
    return json.loads(steps[-1]["stdin"])["nftables"]


@pytest.mark.parametrize("version", ["8.4", "9.1"])
def test_snapshot_host_table_is_reproduced_command_for_command(tmp_path, version):
    """From upstream's own test inputs (its chains.json as the node's existing chains), each
    version's compiler emits its proxmox-firewall snapshot's commands exactly, in order and
    with the same JSON, up to where full_host_fw() turns to guests (220 of 306 commands for
    0.7.1, 232 of 341 for 1.2.2). The rest build the bridge table for the test's two guests;
    the emulator has no guest firewall, so there it deletes that table, as proxmox-firewall
    does on a node without firewalled guests."""
    data, host_part, total = SNAPSHOTS[version]
    state = {"nft_chains": _existing_chains(data)}
    result = compile_node(_snapshot_root(tmp_path, data), "node1", version, state=state)
    snapshot, batch = _snapshot_commands(data), _batch(result)
    assert (result["backend"], result["outcome"]) == ("nftables", "load")
    assert len(snapshot) == total
    assert batch[:host_part] == snapshot[:host_part]
    assert json.dumps(batch[:host_part]) == json.dumps(snapshot[:host_part])  # key order too
    assert batch[host_part:] == [{"delete": {"table": {"family": "bridge", "name": "proxmox-firewall-guests"}}}]
    guest_part = snapshot[host_part:]
    assert {next(iter(next(iter(c.values())).values()))["family"] for c in guest_part} == {"bridge"}
    assert guest_part[0]["add"]["set"]["name"] == "v4-dc/management"


def test_snapshot_skeleton_is_the_upstream_file(tmp_path):
    result = compile_node(_snapshot_root(tmp_path), "node1", "9.1")
    skeleton = [step for step in result["load"] if step["argv"] == ["nft", "-f", "-"]]
    data = pathlib.Path(__file__).parents[2] / "lab" / "data" / "pve-firewall" / "proxmox-firewall-1.2.2.nft"
    assert skeleton == [{"argv": ["nft", "-f", "-"], "stdin": data.read_text()}]


def test_snapshot_inputs_are_refused_whole_by_pve_8_4(tmp_path):
    """proxmox-firewall 0.7.1 (proxmox-ve-config 0.2.3) knows no unscoped IP set names: the
    cluster.fw that 1.2.x compiles is refused whole, and nothing is loaded."""
    result = compile_node(_snapshot_root(tmp_path), "node1", "8.4")
    assert result["outcome"] == "refused-nothing"
    assert result["message"] == "error updating firewall rules: invalid IP specification: +network1"
    assert not any(step["argv"][0] == "nft" for step in result["load"])


def _compile(tmp_path, version, cluster_rules="", cluster_extra="", host_extra="", nftables=True, state=None):
    root = tmp_path / version
    (root / "firewall").mkdir(parents=True, exist_ok=True)
    (root / "nodes" / "pve1").mkdir(parents=True, exist_ok=True)
    (root / "firewall" / "cluster.fw").write_text(
        "[OPTIONS]\n\nenable: 1\n\n[ALIASES]\n\nlocal_network 192.168.2.0/24\nwg 10.9.0.0/24\n\n"
        f"[IPSET evpn]\n\n10.1.0.1\n\n{cluster_extra}[RULES]\n\n{cluster_rules}\n"
    )
    (root / "nodes" / "pve1" / "host.fw").write_text(f"[OPTIONS]\n\nnftables: {int(nftables)}\n{host_extra}")
    return compile_node(root, "pve1", version, FACTS, state)


FACTS = {"node_ip": "192.168.2.11", "host_ips": ["192.168.2.11"], "interface_cidrs": ["192.168.2.11/24"]}
PARSE_CASES = [
    # (what, cluster rules, extra cluster sections, {version: message or None (accepted)})
    (
        "unscoped IP set reference",
        "IN ACCEPT -source +evpn -p udp -dport 4789",
        "",
        {"8.4": "invalid IP specification: +evpn", "9.1": None},
    ),
    ("scoped IP set reference", "IN ACCEPT -source +dc/evpn -p udp -dport 4789", "", {"8.4": None, "9.1": None}),
    ("unscoped alias", "IN ACCEPT -source wg", "", {"8.4": "invalid IP specification: wg", "9.1": None}),
    (
        "[GROUP x] header",
        "GROUP g1",
        "[GROUP g1]\n\nIN ACCEPT -p tcp -dport 22\n\n",
        dict.fromkeys(("8.4", "9.1"), 'invalid section "[GROUP g1]"'),
    ),
    (
        "trailing comment on a section header",
        "IN ACCEPT -p tcp -dport 22",
        "[group g1] # fine here\n\nIN DROP\n\n[RULES] # not here\n\n",
        dict.fromkeys(("8.4", "9.1"), 'invalid section "[RULES] # not here"'),
    ),
    (
        "a second # in a rule comment",
        "IN ACCEPT -p tcp -dport 22 # ssh #1",
        "",
        dict.fromkeys(("8.4", "9.1"), "expected an option starting with '-'"),
    ),
    (
        "iptables ICMPv6 type name",
        "IN ACCEPT -p ipv6-icmp -icmp-type neighbor-solicitation",
        "",
        {"8.4": "supplied string is neither a valid icmpv6 type nor code", "9.1": None},
    ),
    (
        "lower-case direction keyword group",
        "group g1",
        "",
        dict.fromkeys(("8.4", "9.1"), "invalid direction: \"group\", expect 'IN', 'OUT' or 'FORWARD'"),
    ),
    ("unknown rule option", "IN ACCEPT -port 22", "", dict.fromkeys(("8.4", "9.1"), "unknown field `port`")),
]


@pytest.mark.parametrize("version", ["8.4", "9.1"])
@pytest.mark.parametrize(("what", "rules", "extra", "expected"), PARSE_CASES, ids=[c[0] for c in PARSE_CASES])
def test_proxmox_firewall_parser_refuses_what_its_version_refuses(tmp_path, version, what, rules, extra, expected):
    result = _compile(tmp_path, version, rules, extra)
    message = expected[version]
    if message is None:
        assert (result["outcome"], result["message"]) == ("load", None), what
    else:
        assert result["outcome"] == "refused-nothing", what
        assert result["message"].startswith(f"error updating firewall rules: {message}"), result["message"]
        assert [step["argv"][0] for step in result["load"]] == ["iptables-legacy-restore"] * 2 + [
            "ip6tables-legacy-restore"
        ] * 2


# what pve-firewall says about the same files (None: nothing, it takes them)
PERL_WARNINGS = {
    "trailing comment on a section header": "(line 18): unable to parse rule: [RULES]",
    "lower-case direction keyword group": "no such security group 'g1'",
    "unknown rule option": "(line 16): unable to parse rule parameters: -port 22",
}


@pytest.mark.parametrize(("what", "rules", "extra"), [c[:3] for c in PARSE_CASES], ids=[c[0] for c in PARSE_CASES])
def test_pve_firewall_parser_drops_at_most_the_line(tmp_path, what, rules, extra):
    """The same files on the iptables backend: pve-firewall never refuses a file; a line it
    cannot read is dropped with a message, and the rules around it are compiled."""
    result = _compile(tmp_path, "9.1", f"{rules}\nIN ACCEPT -p tcp -dport 2222", extra, nftables=False)
    assert (result["backend"], result["outcome"], result["message"]) == ("iptables", "load", None), what
    filter_rules = next(s["stdin"] for s in result["load"] if s["argv"][0] == "iptables-legacy-restore")
    assert "-A PVEFW-HOST-IN -p tcp --dport 2222 -j RETURN\n" in filter_rules
    expected = PERL_WARNINGS.get(what)
    if expected is None:
        assert result["warnings"] == []
    else:
        assert any(expected in warning for warning in result["warnings"]), result["warnings"]
