"""The firewall file reader (_utils/pve_firewall_config.py): pve-firewall's parse of cluster.fw and
host.fw, what its verify_rule changes in a rule, the API's digests, and what it refuses to guess."""

import hashlib

import pytest

import pve_firewall_config as fw

CLUSTER_FW = """[OPTIONS]

enable: 1
Policy_In: drop

[ALIASES]

Office 192.0.2.0/28 # the office
v6net 2001:db8::/64

[IPSET office] # office nets

192.0.2.9/32
!office # not the alias
10.0.0.0/8

[RULES]

|IN ssh(ACCEPT) -source office -log info # user: büro
IN ACCEPT -p icmp #
GROUP web -i vmbr0
OUT ACCEPT -dest 2001:db8::1 -p udp -dport 53
IN DROP -source +office -dest dc/v6net

[group WEB] # web servers

IN ACCEPT -p tcp -dport 443
"""


@pytest.fixture
def cluster():
    return fw.parse(CLUSTER_FW, "cluster")


def test_rules_as_pve_firewall_reads_them(cluster):
    assert fw.rules(cluster)[0] == {
        "type": "in",
        "action": "ACCEPT",
        "macro": "SSH",  # its preferred spelling
        "source": "office",
        "log": "info",
        "enable": 0,
        "comment": "user: büro",
        "ipversion": 4,  # from the alias
        "pos": 0,
        "digest": fw.rules(cluster)[0]["digest"],
    }
    rules = [{k: v for k, v in r.items() if k not in ("pos", "digest")} for r in fw.rules(cluster)[1:]]
    assert rules == [
        {"type": "in", "action": "ACCEPT", "proto": "icmp", "enable": 1, "comment": "", "ipversion": 4},
        {"type": "group", "action": "web", "iface": "vmbr0", "enable": 1},
        {
            "type": "out",
            "action": "ACCEPT",
            "dest": "2001:db8::1",
            "proto": "udp",
            "dport": "53",
            "enable": 1,
            "ipversion": 6,
        },
        {"type": "in", "action": "DROP", "source": "+office", "dest": "dc/v6net", "enable": 1, "ipversion": 6},
    ]


def test_the_list_digest_covers_every_field_of_every_rule(cluster):
    lines = "".join(
        f"{key}:{value}\n"
        for rule in fw.rules(cluster)
        for key, value in sorted(rule.items())
        if key not in ("pos", "digest")
    )
    assert {r["digest"] for r in fw.rules(cluster)} == {hashlib.sha1(lines.encode()).hexdigest()}


def test_groups_ipsets_aliases_and_options(cluster):
    assert [{k: v for k, v in g.items() if k != "digest"} for g in fw.groups(cluster)] == [
        {"group": "web", "comment": "web servers"}
    ]
    assert [e["cidr"] for e in fw.ipset(cluster, "office")] == ["192.0.2.9", "office", "10.0.0.0/8"], "file order"
    assert fw.ipset(cluster, "office")[1]["nomatch"] == 1
    assert [(a["name"], a["ipversion"]) for a in fw.aliases(cluster)] == [("Office", 4), ("v6net", 6)]
    options = fw.options(cluster)
    assert options == {
        "enable": 1,
        "policy_in": "DROP",
        "digest": hashlib.sha1(b"enable:1\npolicy_in:DROP\n").hexdigest(),
    }


def test_an_enable_switch_older_than_a_minute_reads_off():
    text = "[OPTIONS]\n\nenable: 1700000000\n"
    assert fw.parse(text, now=1700000030)["options"]["enable"] == 1700000000
    assert fw.parse(text, now=1700000061)["options"]["enable"] == 0


def test_host_rules_name_the_clusters_aliases(cluster):
    host = fw.parse(
        "[OPTIONS]\n\nnftables: 1\nlog_level_in: INFO\n\n[RULES]\n\nIN ACCEPT -dest v6net\n", "host", cluster
    )
    assert host["options"] == {"nftables": 1, "log_level_in": "info"}
    assert fw.rules(host)[0]["ipversion"] == 6
    assert fw.rules(fw.parse("[RULES]\n\nIN ACCEPT -dest guest/v6net\n", "host", cluster))[0].get("ipversion") is None


@pytest.mark.parametrize(
    ("env", "text", "message"),
    [
        ("cluster", "IN ACCEPT\n", "line 1: a line before any section"),
        ("cluster", "[RULES]\n\nIN ACCEPT -p tcp -flag x\n", "line 3: unable to parse rule parameters: '-flag x'"),
        ("cluster", "[RULES]\n\nIN\n", "unable to parse rule"),
        ("cluster", "[OPTIONS]\n\ncolour: blue\n", "can't parse option 'colour: blue'"),
        ("cluster", "[group 1web]\n", "'1web' is not a valid group name"),
        ("cluster", "[IPSET xs]\n\nnot/an/address\n", "neither an address, a network nor an alias"),
        ("cluster", "[ALIASES]\n\nlan 10.0.0.0/8 extra\n", "not an alias"),
        ("cluster", "[RULES]\n\nIN ACCEPT -source 10.0.0.300\n", "is not an address, a network or a range"),
        ("host", "[IPSET x]\n\n10.0.0.1\n", "line 1: a line before any section"),  # host.fw has none
        (
            "cluster",
            "[ALIASES]\n\nv6 2001:db8::/64\n\n[RULES]\n\nIN ACCEPT -p icmp -source v6\n",
            "mixed IPv4 and IPv6 through alias",
        ),
    ],
)
def test_what_pve_firewall_would_skip_is_not_guessed(env, text, message):
    with pytest.raises(ValueError, match=message):
        fw.parse(text, env, {"aliases": {}}, f"{env}.fw")


def test_an_empty_file_is_an_empty_firewall():
    empty = fw.parse("", "cluster")
    assert (fw.rules(empty), fw.groups(empty), fw.ipsets(empty)) == ([], [], [])
    assert fw.options(empty) == {"digest": "da39a3ee5e6b4b0d3255bfef95601890afd80709"}
