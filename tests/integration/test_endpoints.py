"""
Endpoints that move, end to end: the lab's default topology with a third site (lab/federation_lab.py),
dnsmasq as the public DNS, the evpn_endpoint beacon at a 1 s interval, the master's reactor.
Forged and malformed events change no endpoint and leave the master working; a burst of events
gives at most two refreshes; a site whose WAN address and DNS record change is followed by every
peer (the time from the DNS update is printed).
"""

import json
import os
import time

import pytest
import yaml

import topology
from federation_lab import lab_federation
from salt_daemons import SALT_BIN
from support.federation import PILLAR

pytestmark = pytest.mark.usefixtures("lab_host")
TAG = "evpn/endpoint/changed"
SETTLE = 60  # seconds: a moved node's minion reconnects in about ten (tcp_keepalive in the lab)


@pytest.fixture(scope="module")
def endpoints_lab(tmp_path_factory):
    """The lab's default topology with its example pillar plus its third site (krk, on a public
    address), converged, and a minion that is not a node of the federation (backup-server)."""
    pillar = tmp_path_factory.mktemp("pillar")
    (pillar / "evpn" / "sites").mkdir(parents=True)
    (pillar / "evpn" / "sites" / "krk.sls").write_text(yaml.safe_dump(topology.site_pillar("krk")))
    with lab_federation(PILLAR, extra_pillar=pillar, prefix="e", guests=["backup-server"]) as federation:
        steps = next(iter(federation.master.run("state.orchestrate", "orch.evpn")["data"].values()))
        assert all(s["result"] is True for s in steps.values()), {k: s["comment"] for k, s in steps.items()}
        nodes = {node_id: federation.lab.nodes[node_id] for node_id in federation.built_nodes()}
        lab = {
            "federation": federation,
            "lab": federation.lab,
            "master": federation.master,
            "nodes": nodes,
            "events": federation.events,
            "state": federation.state,
            "keys": {m: n.run("wg", "show", "wg0", "public-key").stdout.strip() for m, n in nodes.items()},
        }
        yield lab


def _beacon_answers(lab, minion_id):
    """The names a node's beacon has a last answer for (its baseline, in the minion's cache)."""
    path = lab["state"] / f"salt-minion-{minion_id}" / "var" / "cache" / "salt" / "minion" / "evpn_endpoint.json"
    try:
        return set(json.loads(path.read_text()))
    except (OSError, ValueError):
        return set()


@pytest.fixture
def lab(endpoints_lab):
    """The lab as every test starts from it: every minion answers the master (a node that moved
    has reconnected), every beacon has its baseline answers, the master's bus is quiet."""
    endpoints_lab["master"].wait_for([*endpoints_lab["nodes"], "backup-server"], timeout=SETTLE)
    names = set(endpoints_lab["federation"].plan.dns)
    deadline = time.monotonic() + SETTLE
    while not all(names <= _beacon_answers(endpoints_lab, m) for m in endpoints_lab["nodes"]):
        assert time.monotonic() < deadline, f"a beacon has no answers after {SETTLE} s"
        time.sleep(0.2)
    _quiet(endpoints_lab)
    return endpoints_lab


def _endpoints(lab):
    """{node: {peer: live endpoint}}"""
    names = {key: minion_id for minion_id, key in lab["keys"].items()}
    result = {}
    for minion_id, node in lab["nodes"].items():
        lines = node.run("wg", "show", "wg0", "endpoints").stdout.split("\n")
        result[minion_id] = {names[k]: e for k, e in (line.split("\t") for line in lines if line)}
    return result


def _events(lab, offset):
    """(tag, data) of every master event logged after ``offset`` bytes."""
    with open(lab["events"], "rb") as log:
        log.seek(offset)
        lines = log.read().decode().splitlines()
    return [(tag, json.loads(data)) for tag, data in (line.split("\t", 1) for line in lines if "\t" in line)]


def _refresh_jobs(events):
    return [d["jid"] for tag, d in events if tag.endswith("/new") and d.get("fun") == "wireguard.refresh_endpoints"]


def _refresh_returns(events):
    jobs = _refresh_jobs(events)
    return [d for tag, d in events if tag.startswith("salt/job/") and "/ret/" in tag and d.get("jid") in jobs]


def _reactions(events):
    """What the runner answered to each event."""
    return [
        d["return"]
        for tag, d in events
        if tag.startswith("salt/run/") and tag.endswith("/ret") and d.get("fun") == "runner.evpn.endpoint_changed"
    ]


def _quiet(lab, seconds=2.0, timeout=30):
    """Wait until the master's bus has been silent for ``seconds`` (reactions done)."""
    deadline = time.monotonic() + timeout
    size, since = lab["events"].stat().st_size, time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if lab["events"].stat().st_size != size:
            size, since = lab["events"].stat().st_size, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return
    raise AssertionError("the master's event bus did not go quiet")


def test_forged_and_malformed_events_change_no_endpoint(lab):
    master = lab["master"]
    before, offset = _endpoints(lab), lab["events"].stat().st_size
    forged = [
        ("backup-server", {"id": "pve-roz1", "names": ["wro.example.net"]}),  # not a node
        ("pve-wro1", {"id": "pve-krk1", "cmd": "_minion_event", "names": ["krk.example.net"]}),
        ("pve-wro1", {"names": "evil:\n  cmd.run: [touch /tmp/evpn-pwned]", "id": "x\nevil: {cmd.run: id}"}),
        ("pve-wro1", {"names": [{"nested": ["a", 1]}], "unexpected": None}),
        ("pve-wro1", {}),
    ]
    for sender, payload in forged:
        ret = master.salt(sender, "event.send", TAG, f"data={json.dumps(payload)}")
        assert ret == {sender: True}, ret
    _quiet(lab)
    events = _events(lab, offset)
    reactions = _reactions(events)
    assert {r["sender"] for r in reactions} == {"backup-server", "pve-wro1"}, "a payload chose the sender"
    assert [r["comment"] for r in reactions if r["sender"] == "backup-server"] == [
        "backup-server is not a node of the federation"
    ]
    # The member's events are triggers like any other (each its own burst here, a second apart):
    # every node re-resolves and finds nothing to move.
    returns = _refresh_returns(events)
    assert returns and all(d["return"] == {"changed": {}, "unresolved": []} for d in returns), returns
    assert _endpoints(lab) == before
    assert not os.path.exists("/tmp/evpn-pwned")
    assert set(master.salt("*", "test.ping")) == {*lab["nodes"], "backup-server"}, "the master stopped answering"


def test_a_burst_of_events_gives_at_most_two_refreshes(lab):
    """50 events sent as the beacon sends them (through the minion daemon), within milliseconds."""
    config_dir = lab["state"] / "salt-minion-pve-wro1"
    burst = (
        "import salt.config, salt.utils.event, sys\n"
        "opts = salt.config.minion_config(sys.argv[1])\n"
        "with salt.utils.event.MinionEvent(opts, listen=False) as bus:\n"
        f"    for i in range(50): bus.fire_event({{'data': {{'n': i}}, 'tag': {TAG!r}, 'events': None,"
        " 'pretag': None}, 'fire_master')\n"
    )
    offset = lab["events"].stat().st_size
    lab["nodes"]["pve-wro1"].run(str(SALT_BIN / "python3"), "-c", burst, str(config_dir / "minion"))
    _quiet(lab)
    events = _events(lab, offset)
    assert len([tag for tag, _ in events if tag == TAG]) == 50
    jobs = _refresh_jobs(events)
    assert 1 <= len(jobs) <= 2, f"{len(jobs)} refreshes for one burst"
    returns = _refresh_returns(events)
    assert sorted(d["id"] for d in returns) == sorted(list(lab["nodes"]) * len(jobs))
    assert all(d["return"]["changed"] == {} for d in returns), "a refresh moved an endpoint nobody moved"


def test_every_peer_follows_a_moved_node(lab):
    """The ISP renumbers wro's router and the DNS record follows: every node of the other sites
    is re-pointed, live and in its persisted file, and the reactor refreshed the federation."""
    peers = [n for n in lab["nodes"] if not n.startswith("pve-wro")]
    offset = lab["events"].stat().st_size
    _, new, names = lab["federation"].renumber("wro")
    updated = time.monotonic()
    assert names == ["wro.example.net"]
    while time.monotonic() - updated < 30:
        endpoints = _endpoints(lab)
        if all(endpoints[peer]["pve-wro1"] == f"{new}:51820" for peer in peers):
            break
        time.sleep(0.05)
    elapsed = time.monotonic() - updated
    print(f"DNS update to every peer re-pointed: {elapsed:.2f} s")
    assert all(endpoints[peer]["pve-wro1"] == f"{new}:51820" for peer in peers), endpoints
    for peer in peers:
        assert lab["nodes"][peer].run("ping", "-c1", "-W2", "10.2.0.1", check=False).returncode == 0
        conf = lab["nodes"][peer].run("cat", "/etc/wireguard/wg0.conf").stdout
        assert f"Endpoint = {new}:51820" in conf, "the persisted file still has the old address"
    _quiet(lab)
    events = _events(lab, offset)
    changed = [d for tag, d in events if tag == TAG]
    assert changed and all(d["data"] == {"names": ["wro.example.net"]} for d in changed), changed
    assert {d["id"] for d in changed} <= set(lab["nodes"]), "the beacon fired on a minion that is not a node"
    assert _refresh_jobs(events), "the reactor did not refresh the federation"
