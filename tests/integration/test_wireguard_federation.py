"""
The WireGuard underlay of the example federation through a real master: master and minions run
as plain processes inside lab nodes (salt-factories' daemons would need a link to the host's
namespace, which lab safety forbids), wireguard-go in each node. Two passes converge (keys
reach the mine in the first), the tunnel carries traffic, and no private key reaches the master:
not its job cache, mine, logs or event bus, nor any pillar.
"""

import os
import pathlib
import shutil
import tempfile

import pytest
from netns import Lab
from salt_daemons import SALT_BIN, SaltMaster, start_minion
from support.federation import REPO

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("wg", "wireguard-go", "ip", "nsenter", "ping")),
    reason="needs root, wireguard-go, wireguard-tools, iproute2 and ping",
)
PUBLIC = {"pve-roz1": ("203.0.113.11", "roz.example.net", "10.1.0.1"),
          "pve-wro1": ("203.0.113.12", "wro.dyndns.example.org", "10.2.0.1")}


@pytest.fixture(scope="module")
def federation_lab():
    # Short: Salt's unix sockets live under it, and pytest's temporary paths are too long.
    state = pathlib.Path(tempfile.mkdtemp(prefix="evpn-wg-"))
    try:
        pillar = state / "pillar"
        shutil.copytree(REPO / "pillar", pillar)
        for site in ("roz", "wro"):  # no DNS in this lab: the endpoints by address
            path = pillar / "evpn" / "sites" / f"{site}.sls"
            text = path.read_text()
            for public, name, _ in PUBLIC.values():
                text = text.replace(name, public)
            path.write_text(text)
        with Lab(state / "lab", prefix=f"w{os.getpid() % 100000}-") as lab:
            nodes = {minion_id: lab.node(minion_id, public) for minion_id, (public, _, _) in PUBLIC.items()}
            for node in nodes.values():
                node.start_wireguard("wg0")
            roz = nodes["pve-roz1"]
            master = SaltMaster(roz, PUBLIC["pve-roz1"][0], state, pillar_root=pillar)
            master.start()
            events = state / "events.log"
            for minion_id, node in nodes.items():
                start_minion(node, minion_id, PUBLIC["pve-roz1"][0], state)
            master.wait_for(list(nodes))
            roz.spawn(str(SALT_BIN / "salt-run"), "-c", str(master.config_dir), "state.event", "pretty=False",
                      label="event listener", log_path=events)
            assert set(master.salt("*", "saltutil.sync_all")) == set(nodes)
            yield {"lab": lab, "master": master, "nodes": nodes, "state": state, "events": events}
    finally:
        shutil.rmtree(state)


def _apply(master):
    ret = master.salt("*", "state.apply", "evpn.wireguard")
    return {minion_id: {s["__id__"]: s for s in states.values()} for minion_id, states in ret.items()}


def test_two_passes_converge_and_the_tunnel_carries_traffic(federation_lab):
    master, nodes = federation_lab["master"], federation_lab["nodes"]
    first = _apply(master)
    for minion_id, states in first.items():
        assert states["evpn-wireguard"]["result"] is True
        assert "no public key in the mine yet" in states["evpn-wireguard"]["comment"]
        assert states["evpn-wireguard-publish-key"]["changes"] == {"mine.update": True}
    second = _apply(master)
    for minion_id, states in second.items():
        (peer,) = [p for p in PUBLIC if p != minion_id]
        assert states["evpn-wireguard"]["changes"]["peers"] == {"added": [peer]}, states
    assert nodes["pve-roz1"].run("ping", "-c1", "-W2", PUBLIC["pve-wro1"][2], check=False).returncode == 0
    assert nodes["pve-wro1"].run("ping", "-c1", "-W2", PUBLIC["pve-roz1"][2], check=False).returncode == 0
    third = _apply(master)
    assert all(s["changes"] == {} for states in third.values() for s in states.values()), third


def test_private_keys_never_reach_the_master(federation_lab):
    master, nodes = federation_lab["master"], federation_lab["nodes"]
    master.salt("*", "pillar.items")
    master.salt("*", "mine.update")
    private = {m: n.run("cat", "/etc/wireguard/wg0.key").stdout.strip() for m, n in nodes.items()}
    public = {m: n.run("wg", "show", "wg0", "public-key").stdout.strip() for m, n in nodes.items()}
    assert all(private.values()) and all(public.values())
    master_files = [p for p in master.config_dir.rglob("*") if p.is_file()]
    haystack = b"".join(p.read_bytes() for p in master_files) + federation_lab["events"].read_bytes()
    haystack += str(master.salt("*", "pillar.items")).encode()
    # The search looks where the keys would be: the public keys are there (mine cache, events).
    assert all(key.encode() in haystack for key in public.values())
    leaked = [m for m, key in private.items() if key.encode() in haystack]
    assert leaked == [], f"private key of {leaked} found on the master"
