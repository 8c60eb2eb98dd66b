"""
The wg-quick configuration parser (_utils/wgquick.py): every layout wg-quick accepts reads the
same; what wg(8) would refuse is an error naming the line; an edit keeps every key it is not
given; what wg(8) gets of a file (``strip``) is what ``wg-quick strip`` prints. Files as wg-quick
users write them: the examples of wg(8) and wg-quick(8) (wireguard-tools), a PVE host's own, and
every mix of spacing, case, blank lines, comments and split AllowedIPs lines.
"""

import itertools
import pathlib
import shutil
import subprocess

import pytest

import wgquick

KEY_A = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
KEY_B = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0="
KEY_C = "gN65BkIKy1eCE9pP1wdc8ROUtkHLF2PfAqYdyYBz6EA="
PRIVATE = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="

# wg(8), CONFIGURATION FILE FORMAT EXAMPLE.
WG_MAN = f"""\
[Interface]
PrivateKey = {PRIVATE}
ListenPort = 51820

[Peer]
PublicKey = {KEY_A}
Endpoint = 192.95.5.67:1234
AllowedIPs = 10.192.122.3/32, 10.192.124.1/24

[Peer]
PublicKey = {KEY_B}
Endpoint = [2607:5300:60:6b0::c05f:543]:2468
AllowedIPs = 10.192.122.4/32, 192.168.0.0/16

[Peer]
PublicKey = {KEY_C}
Endpoint = test.wireguard.com:18981
AllowedIPs = 10.10.10.230/32
"""

# wg-quick(8), EXAMPLES: a client with DNS, a preshared key and the "kill-switch" lines.
WG_QUICK_MAN = f"""\
[Interface]
Address = 10.200.100.8/24
DNS = 10.200.100.1
PrivateKey = {PRIVATE}
PostUp = iptables -I OUTPUT ! -o %i -m mark ! --mark $(wg show %i fwmark) -m addrtype ! --dst-type LOCAL -j REJECT
PreDown = iptables -D OUTPUT ! -o %i -m mark ! --mark $(wg show %i fwmark) -m addrtype ! --dst-type LOCAL -j REJECT

[Peer]
PublicKey = {KEY_A}
PresharedKey = /UwcSPg38hW/D9Y3tcS1FOV0K1wuURMbS0sesJEP5ak=
AllowedIPs = 0.0.0.0/0
Endpoint = demo.wireguard.com:51820
"""

# What this project writes (wireguard.persist), as on pve-roz1 of the example federation.
OURS = f"""\
[Interface]
Address = 10.1.0.1/32
MTU = 1420
ListenPort = 51820
PrivateKey = {PRIVATE}

# pve-wro1 at wro.dyndns.example.org:51820
[Peer]
PublicKey = {KEY_A}
AllowedIPs = 10.2.0.1/32
Endpoint = 203.0.113.12:51820
PersistentKeepalive = 25
"""

# Hand-written, compact: lower case, no spaces, no blank lines, comments everywhere, a key
# repeated, AllowedIPs over two lines, a '#' inside a PostUp command.
COMPACT = f"""\
# wg0 on pve-roz1, by hand
[interface]
privatekey={PRIVATE}
listenport=51820 # the port forward on the router
address=10.1.0.1/32
table=off
postup=logger "wg0 up" # a comment wg-quick hands to bash
[PEER]
# wro
publickey={KEY_A}
allowedips=10.2.0.1/32
AllowedIPs=10.2.1.0/24,10.2.2.0/24
endpoint=wro.dyndns.example.org:51820
persistentkeepalive=10
PersistentKeepalive = 25
[peer]
PublicKey=  {KEY_B}
AllowedIPs=10.3.0.1/32
"""

COMPACT_INTERFACE = {
    "privatekey": [PRIVATE],
    "listenport": ["51820"],
    "address": ["10.1.0.1/32"],
    "table": ["off"],
    "postup": ['logger "wg0 up" # a comment wg-quick hands to bash'],
}

# Tabs, blank lines inside sections, a second [Interface] (wg reads its keys as the first's).
SCATTERED = f"""\
[Interface]
\tListenPort\t=\t51820

\tPrivateKey = {PRIVATE}
[Peer]
\tPublicKey = {KEY_C}

\tAllowedIPs = 10.4.0.1/32
[Interface]
FwMark = 0x1234
"""


def model(sections):
    """What a configuration means: [Interface] keys (lower case, blanks removed) and each
    peer's key, AllowedIPs and the values of its other keys."""
    interface = wgquick.interface(sections) or {"entries": []}
    interface_keys = {}
    for key, value, _ in interface["entries"]:
        if key is not None:
            interface_keys.setdefault("".join(key.split()).lower(), []).append(value)
    peers = []
    for section in wgquick.peers(sections):
        keys = {"".join(k.split()).lower() for k, _, _ in section["entries"] if k is not None}
        peers.append(
            {
                "public_key": wgquick.public_key(section),
                "allowed_ips": wgquick.allowed_ips(section),
                **{key: wgquick.value(section, key) for key in sorted(keys - {"publickey", "allowedips"})},
            }
        )
    return {"interface": interface_keys, "peers": peers}


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            WG_MAN,
            {
                "interface": {"privatekey": [PRIVATE], "listenport": ["51820"]},
                "peers": [
                    {
                        "public_key": KEY_A,
                        "allowed_ips": ["10.192.122.3/32", "10.192.124.1/24"],
                        "endpoint": "192.95.5.67:1234",
                    },
                    {
                        "public_key": KEY_B,
                        "allowed_ips": ["10.192.122.4/32", "192.168.0.0/16"],
                        "endpoint": "[2607:5300:60:6b0::c05f:543]:2468",
                    },
                    {"public_key": KEY_C, "allowed_ips": ["10.10.10.230/32"], "endpoint": "test.wireguard.com:18981"},
                ],
            },
        ),
        (
            COMPACT,
            {
                "interface": COMPACT_INTERFACE,
                "peers": [
                    {
                        "public_key": KEY_A,
                        "allowed_ips": ["10.2.0.1/32", "10.2.1.0/24", "10.2.2.0/24"],
                        "endpoint": "wro.dyndns.example.org:51820",
                        "persistentkeepalive": "25",
                    },
                    {"public_key": KEY_B, "allowed_ips": ["10.3.0.1/32"]},
                ],
            },
        ),
        (
            SCATTERED,
            {
                "interface": {"listenport": ["51820"], "privatekey": [PRIVATE], "fwmark": ["0x1234"]},
                "peers": [{"public_key": KEY_C, "allowed_ips": ["10.4.0.1/32"]}],
            },
        ),
    ],
    ids=["wg-man-page", "compact-by-hand", "scattered"],
)
def test_layouts_read_as_wg_reads_them(text, expected):
    assert model(wgquick.parse(text)) == expected


def test_comments_stay_with_what_they_describe():
    sections = wgquick.parse(COMPACT)
    assert sections[0]["comments"] == ["# wg0 on pve-roz1, by hand"]
    assert [s["comments"] for s in wgquick.peers(sections)] == [[], []]
    assert (None, None, "# wro") in wgquick.peers(sections)[0]["entries"]
    assert wgquick.peers(wgquick.parse(OURS))[0]["comments"] == ["# pve-wro1 at wro.dyndns.example.org:51820"]


@pytest.mark.parametrize("text", [OURS, WG_MAN, WG_QUICK_MAN])
def test_a_file_is_written_back_as_it_was(text):
    assert wgquick.render(wgquick.parse(text)) == text


# Every combination of the ways people write the same configuration.
SEPARATORS = ["=", " = ", "= ", "\t=  "]
CASES = [str, str.lower, str.upper]


def _variant(separator, case, blank, comments, split_allowed):
    def entry(key, value):
        return f"{case(key)}{separator}{value}" + (" # why" if comments else "")

    lines = ["# header comment"] if comments else []
    lines += [case("[Interface]"), entry("PrivateKey", PRIVATE), entry("ListenPort", "51820")]
    lines += [entry("Address", "10.1.0.1/32"), entry("MTU", "1420")]
    for key, allowed in ((KEY_A, ["10.2.0.1/32", "10.2.1.0/24"]), (KEY_B, ["10.3.0.1/32"])):
        lines += [""] * blank + ["# a peer"] * comments + [case("[Peer]"), entry("PublicKey", key)]
        if split_allowed:
            lines += [entry("AllowedIPs", ip) for ip in allowed]
        else:
            lines.append(entry("AllowedIPs", ", ".join(allowed)))
        lines.append(entry("Endpoint", "peer.example.net:51820"))
    return "\n".join(lines) + "\n"


VARIANTS = list(itertools.product(SEPARATORS, CASES, [0, 1], [False, True], [False, True]))


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(str(i) for i in v).replace("\t", "tab"))
def test_every_spelling_of_one_configuration_reads_the_same(variant):
    canonical = model(wgquick.parse(_variant(" = ", str, 1, False, False)))
    assert model(wgquick.parse(_variant(*variant))) == canonical


@pytest.mark.parametrize(
    "text, message",
    [
        ("[Interface]\nPrivateKey = x\nListenPort 51820\n", "line 3: 'ListenPort 51820' is neither"),
        ("PrivateKey = x\n[Interface]\n", "line 1: PrivateKey comes before the first section"),
        ("[Interface]\n[Peers]\nPublicKey = x\n", "line 2: '[Peers]' is not a section wg-quick knows"),
        (f"[Interface]\n\n[Peer]\nAllowedIPs = 10.0.0.1/32\n\n[Peer]\nPublicKey={KEY_A}\n", "line 3: [Peer] has no"),
    ],
)
def test_what_wg_refuses_is_an_error_naming_the_line(text, message):
    with pytest.raises(ValueError, match="^" + message.replace("[", r"\[").replace("]", r"\]")):
        wgquick.parse(text)


def _ours(peer_settings, port=51820):
    interface = {"Address": "10.1.0.1/32", "MTU": 1420, "ListenPort": port, "PrivateKey": PRIVATE}
    return interface, peer_settings


def _peer(key, allowed, endpoint, name=None, keepalive=25):
    return {
        "comments": [f"# {name}"] if name else None,
        "settings": {"PublicKey": key, "AllowedIPs": allowed, "Endpoint": endpoint, "PersistentKeepalive": keepalive},
    }


def test_an_update_with_what_a_file_holds_changes_nothing():
    settings = _ours([_peer(KEY_A, "10.2.0.1/32", "203.0.113.12:51820", "pve-wro1 at wro.dyndns.example.org:51820")])
    assert wgquick.render(wgquick.update(wgquick.parse(OURS), *settings)) == OURS
    assert wgquick.render(wgquick.update([], *settings)) == OURS


def test_an_update_keeps_every_key_it_is_not_given_and_drops_peers_not_named():
    settings = _ours(
        [_peer(KEY_A, "10.2.0.1/32", "198.51.100.12:51820", "pve-wro1"), _peer(KEY_C, "10.4.0.1/32", None)]
    )
    sections = wgquick.update(wgquick.parse(COMPACT), *settings)
    text = wgquick.render(sections)
    assert model(wgquick.parse(text)) == {
        "interface": {**COMPACT_INTERFACE, "mtu": ["1420"]},
        "peers": [
            {
                "public_key": KEY_A,
                "allowed_ips": ["10.2.0.1/32"],
                "endpoint": "198.51.100.12:51820",
                "persistentkeepalive": "25",
            },
            {"public_key": KEY_C, "allowed_ips": ["10.4.0.1/32"], "persistentkeepalive": "25"},
        ],
    }
    assert KEY_B not in text
    # The user's lines are written back as they were, with their comments.
    for line in (
        "# wg0 on pve-roz1, by hand",
        "table=off",
        'postup=logger "wg0 up" # a comment wg-quick hands to bash',
    ):
        assert line in text.splitlines()
    assert wgquick.render(wgquick.update(wgquick.parse(text), *settings)) == text, "a second update changed the file"


def test_an_update_keeps_a_peer_preshared_key_and_sets_only_what_it_is_given():
    sections = wgquick.update(wgquick.parse(WG_QUICK_MAN), {"ListenPort": 51821}, [_peer(KEY_A, "10.9.0.1/32", None)])
    (peer,) = wgquick.peers(sections)
    assert wgquick.value(peer, "PresharedKey") == "/UwcSPg38hW/D9Y3tcS1FOV0K1wuURMbS0sesJEP5ak="
    assert (wgquick.allowed_ips(peer), wgquick.value(peer, "Endpoint")) == (["10.9.0.1/32"], None)
    interface = wgquick.interface(sections)
    assert wgquick.value(interface, "ListenPort") == "51821"
    assert wgquick.values(interface, "DNS") == ["10.200.100.1"]


def test_with_values_replaces_in_place():
    (peer,) = wgquick.peers(wgquick.parse(OURS))
    moved = wgquick.with_values(peer, {"Endpoint": "198.51.100.12:51820"})
    assert [e[0] for e in moved["entries"]] == [e[0] for e in peer["entries"]]
    assert wgquick.value(moved, "Endpoint") == "198.51.100.12:51820"


def _wg_quick_strip(tmp_path, text):
    """What wg-quick itself hands to wg(8) for this file."""
    wg_quick = shutil.which("wg-quick")
    if wg_quick is None:
        pytest.fail("wg-quick (wireguard-tools) is not installed: make packages installs it", pytrace=False)
    path = pathlib.Path(tmp_path) / "wg0.conf"
    path.write_text(text)
    path.chmod(0o600)
    return subprocess.run([wg_quick, "strip", str(path)], capture_output=True, text=True, check=True).stdout


def _wg_view(sections):
    """What wg(8) makes of a stripped configuration: (section, key, value) with every blank
    removed and the comments gone, as wg's own reader does."""
    view = []
    for section in sections:
        view.append(section["name"])
        view += [("".join(k.split()).lower(), "".join(v.split())) for k, v, _ in section["entries"] if k is not None]
    return view


@pytest.mark.parametrize(
    "text", [WG_MAN, WG_QUICK_MAN, OURS, COMPACT], ids=["wg-man", "wg-quick-man", "ours", "compact"]
)
def test_strip_hands_wg_what_wg_quick_hands_it(tmp_path, text):
    ours = _wg_view(wgquick.strip(wgquick.parse(text)))
    assert ours == _wg_view(wgquick.parse(_wg_quick_strip(tmp_path, text)))
    keys = {item[0] for item in ours if isinstance(item, tuple)}
    assert not keys & {"address", "mtu", "dns", "table", "postup", "predown"}
