"""
The federation seen from the master.

The federation model is the ``evpn`` execution module, which the master loads from the checkout
(``module_dirs`` in etc/master); the pillar is the one the master rendered for the minion in
question, from the master's cache (no rendering per event).

``validate``, ``status`` and ``plan`` return data: ``{"data": ..., "outputter": ..., "retcode":
...}``, as ``state.orchestrate`` does. ``salt-run`` prints ``data`` through the project's outputter
(``_output/``, loaded through ``module_dirs`` like the model) and exits with ``retcode``: 1 when a
problem is listed, so each can serve as a check in scripts and monitoring. ``--out=json`` prints
the whole of it.

CLI Example:

.. code-block:: bash

    salt-run evpn.validate
    salt-run evpn.status
    salt-run evpn.status --out=json
    salt-run evpn.plan
    salt-run evpn.endpoint_changed pve-wro1
"""

import json
import logging
import os
import pathlib
import re
import time

import salt.client
import salt.loader
import salt.pillar
import salt.wheel
from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

PENDING = "evpn-endpoint-refresh.pending"  # in the master's cachedir while a refresh gathers
STALE_AFTER = 60  # seconds: a marker this old was left by a master that stopped mid-burst
HANDSHAKE_FRESH = 180  # seconds: WireGuard drops a session not renewed within this
BGP_SUMMARY = "vtysh -c 'show bgp l2vpn evpn summary json'"


def _model(pillar=None):
    """The evpn execution module, on the master; with ``pillar`` as the pillar it reads."""
    opts = __opts__ if pillar is None else {**__opts__, "pillar": pillar}
    functions = salt.loader.minion_mods(opts, whitelist=["evpn"])
    if "evpn.members" not in functions:
        raise CommandExecutionError(
            "the evpn execution module is not on the master: add the checkout to module_dirs (etc/master)"
        )
    return functions


def _first_of_burst(debounce, longest):
    """
    True for the event that opens a burst, once no other event has come for ``debounce``
    seconds (or ``longest`` seconds have passed); False for the events that come meanwhile: they
    only push the end of the burst back, and the refresh that follows resolves after they were
    sent, so it covers them. A marker file, whose time each event touches, makes this hold
    across the reactor's workers.
    """
    marker = pathlib.Path(__opts__["cachedir"]) / PENDING
    while True:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            break
        except FileExistsError:
            try:
                if time.time() - marker.stat().st_mtime < STALE_AFTER:
                    os.utime(marker)
                    return False
                marker.unlink()
            except FileNotFoundError:
                pass  # the burst just ended: open the next one
    opened = time.monotonic()
    try:
        while time.monotonic() - opened < longest:
            quiet = time.time() - marker.stat().st_mtime
            if quiet >= debounce:
                break
            time.sleep(debounce - quiet)
    finally:
        marker.unlink(missing_ok=True)
    return True


def endpoint_changed(sender, debounce=0.5, longest=5):
    """
    The reaction to ``evpn/endpoint/changed`` (reactor/endpoint_changed.sls): when ``sender``,
    the minion id the master authenticated, is a node of the federation, every node re-resolves
    its peers' endpoint names and re-points the ones that moved (``wireguard.refresh_endpoints``,
    which sets nothing where nothing differs). A burst of events, each within ``debounce``
    seconds of the one before, becomes one refresh per node, sent when the burst ends (or after
    ``longest`` seconds of a burst that does not end). Returns what was done.

    CLI Example:

    .. code-block:: bash

        salt-run evpn.endpoint_changed pve-wro1
    """
    cached = __salt__["cache.pillar"]([sender], tgt_type="list")
    federation = (cached.get(sender) or {}).get("evpn")
    model = _model()
    try:
        if not federation:
            raise SaltInvocationError("no evpn pillar")
        members = model["evpn.members"](federation=federation)
        interface = model["evpn.config"](federation=federation)["wireguard"]["interface"]
    except SaltInvocationError as err:
        log.warning("evpn/endpoint/changed from %s ignored: %s", sender, err)
        return {"sender": sender, "refreshed": [], "comment": f"no valid evpn pillar for {sender}"}
    if sender not in members:
        log.warning("evpn/endpoint/changed from %s ignored: not a node of the federation", sender)
        return {"sender": sender, "refreshed": [], "comment": f"{sender} is not a node of the federation"}
    if not _first_of_burst(debounce, longest):
        return {"sender": sender, "refreshed": [], "comment": "gathered into the refresh under way"}
    with salt.client.get_local_client(mopts=__opts__) as client:
        jid = client.cmd_async(members, "wireguard.refresh_endpoints", arg=[interface], tgt_type="list")
    log.info("evpn/endpoint/changed from %s: refreshing %s (job %s)", sender, ", ".join(members), jid)
    return {"sender": sender, "refreshed": members, "jid": jid, "comment": "refresh sent to every node"}


def _checked(data, outputter, problems):
    """A runner's return: the data, the project's outputter for it, exit code 1 on problems."""
    return {"data": data, "outputter": outputter, "retcode": 1 if problems else 0}


class _RenderFailures(logging.Handler):
    """Salt puts only "see the master log" into the pillar for a file it could not render; the
    message itself goes to its log: keep it, by SLS."""

    # The cause is the text up to Salt's excerpt of the file (---) or the traceback.
    FAILED = re.compile(r"^Rendering SLS '([^']+)' failed, render error:\n(.*?)(?:\n\n---|\nTraceback|$)", re.DOTALL)

    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.messages = {}

    def emit(self, record):
        found = self.FAILED.match(record.getMessage())
        if found:
            self.messages[found.group(1)] = " ".join(found.group(2).split())


def _own_pillar():
    """The pillar the master renders for itself (the one orch.evpn validates and targets), and
    Salt's messages for the files it could not render, each with the cause from Salt's log."""
    failures = _RenderFailures()
    logger = logging.getLogger("salt.pillar")
    logger.addHandler(failures)
    try:
        grains = salt.loader.grains(__opts__)
        pillar = salt.pillar.get_pillar(__opts__, grains, __opts__["id"], saltenv="base").compile_pillar()
    finally:
        logger.removeHandler(failures)
    return pillar, [_with_cause(message, failures.messages) for message in pillar.get("_errors", [])]


def _with_cause(message, causes):
    sls = re.match(r"Rendering SLS '([^']+)' failed", message)
    if sls and sls.group(1) in causes:
        return f"Rendering SLS '{sls.group(1)}' failed: {causes[sls.group(1)]}"
    return message


def _federation():
    """The evpn pillar the master renders for itself (the one orch.evpn targets), and the model;
    refused with every error when it is not valid."""
    pillar, render_errors = _own_pillar()
    model = _model(pillar)
    errors = model["evpn.validate"](render_errors=render_errors)["errors"]
    if errors:
        raise CommandExecutionError(
            "the evpn pillar the master renders is invalid (salt-run evpn.validate):\n  " + "\n  ".join(errors)
        )
    return pillar["evpn"], model


def _key_warnings(members):
    keys = salt.wheel.WheelClient(__opts__).cmd("key.list_all", print_event=False)
    warnings = []
    for member in members:
        if member in keys.get("minions", []):
            continue
        if member in keys.get("minions_pre", []):
            how = f"its key waits: check it with salt-key -f {member}, then salt-key -a {member}"
        else:
            how = "no key from it yet: install and start its salt-minion"
        warnings.append(f"{member}: not an accepted minion of this master ({how})")
    return warnings


def validate():
    """
    The master's view of the whole federation, before any minion is touched: the pillar the
    master renders for itself (the one ``orch.evpn`` validates and targets) checked by
    ``evpn.validate``, with every pillar file Salt could not render named with Salt's own message;
    and, as warnings, nodes whose minion key this master has not accepted. Exit code 1 on errors.

    CLI Example:

    .. code-block:: bash

        salt-run evpn.validate
        salt-run evpn.validate --out=json
    """
    pillar, render_errors = _own_pillar()
    model = _model(pillar)
    report = model["evpn.validate"](render_errors=render_errors)
    if not report["errors"]:
        report["warnings"] += _key_warnings(model["evpn.members"]())
    return _checked(report, "evpn_validate", report["errors"])


def _peer_records(show, configured, expected, now):
    """The node's WireGuard peers: {name, endpoint, handshake_age (s, None: never)}, and the
    problems among them (a node of the federation not configured, a stale handshake)."""
    if not show:
        return [], ["WireGuard: no interface"]
    names = {p["public_key"]: p["name"] for p in configured}
    records, problems = [], []
    for key, peer in show["peers"].items():
        name = names.get(key) or key[:8]
        age = round(now - peer["latest_handshake"]) if peer["latest_handshake"] else None
        records.append({"name": name, "endpoint": peer["endpoint"], "handshake_age": age})
        if age is None or age > HANDSHAKE_FRESH:
            problems.append(f"{name}: {'no handshake' if age is None else f'last handshake {age} s ago'}")
    seen = {record["name"] for record in records}
    problems += [f"{name}: not a WireGuard peer" for name in expected if name not in seen]
    return sorted(records, key=lambda record: record["name"]), problems


def _bgp_records(output, expected):
    """The node's BGP l2vpn evpn sessions: {peer, state, uptime (s), routes}, and the problems
    among them (an expected session missing or not Established)."""
    try:
        peers = json.loads(output or "{}").get("peers", {})
    except (TypeError, ValueError):
        return [], ["BGP: FRR does not answer"]
    records = [
        {
            "peer": address,
            "state": peer.get("state"),
            "uptime": round(peer["peerUptimeMsec"] / 1000) if peer.get("peerUptimeMsec") else None,
            "routes": peer.get("pfxRcd", 0),
        }
        for address, peer in sorted(peers.items())
    ]
    problems = [f"BGP {r['peer']}: {r['state']}" for r in records if r["state"] != "Established"]
    problems += [f"BGP {address}: no session" for address in expected if address not in peers]
    return records, problems


def _node_record(member, node, answer, expected_peers, expected_sessions, now):
    record = {"site": node["site"], "wireguard": [], "bgp": [], "evpn_routes": None, "sdn": None, "problems": []}
    if not isinstance(answer, dict):  # no answer, or Salt's message instead of one
        record["problems"].append(f"no answer: {answer}" if answer else "no answer")
        return record
    record["wireguard"], wireguard_problems = _peer_records(
        answer["wireguard.show"], answer["wireguard.configured_peers"], expected_peers, now
    )
    record["bgp"], bgp_problems = _bgp_records(answer["cmd.run"], expected_sessions)
    record["evpn_routes"] = sum(session["routes"] for session in record["bgp"])
    if node["is_sdn_leader"]:
        pending = answer["pvesdn.pending"]
        record["sdn"] = {True: "pending", False: "applied"}.get(pending, "unknown")
        if record["sdn"] != "applied":
            wireguard_problems.append(f"SDN: {record['sdn']} (state.apply evpn on {member} applies it)")
    record["problems"] = wireguard_problems + bgp_problems
    return record


def status():
    """
    The federation at a glance, one record per node: its WireGuard peers with their endpoint and
    the age of their last handshake, its BGP l2vpn evpn sessions with their state, uptime and the
    EVPN routes received (and their sum), whether SDN changes wait on its site's leader, and the
    problems found (a peer or session missing, a handshake older than WireGuard keeps a session, a
    session not Established, pending SDN changes, a node that does not answer). Printed as a
    table; exit code 1 when any problem is listed.

    CLI Example:

    .. code-block:: bash

        salt-run evpn.status
        salt-run evpn.status --out=json
    """
    federation, model = _federation()
    members = model["evpn.members"](federation=federation)
    interface = model["evpn.config"](federation=federation)["wireguard"]["interface"]
    with salt.client.get_local_client(mopts=__opts__) as client:
        answers = client.cmd(
            members,
            ["wireguard.show", "wireguard.configured_peers", "cmd.run", "pvesdn.pending"],
            [[interface], [interface], [BGP_SUMMARY], []],
            tgt_type="list",
            timeout=15,
        )
    now = time.time()
    nodes = {}
    for member in members:
        peers = model["evpn.wireguard_peers"](member, federation=federation)
        nodes[member] = _node_record(
            member,
            model["evpn.node"](member, federation=federation),
            answers.get(member),
            [peer["name"] for peer in peers],
            [peer["address"] for peer in peers],
            now,
        )
    return _checked(nodes, "evpn_status", any(node["problems"] for node in nodes.values()))


def plan():
    """
    What a converge would change, federation-wide, touching nothing: ``state.apply evpn`` in
    test mode on every node; for each node the states that would change (their changes and
    comment), and its problems: a state that would fail, a node that does not answer. Exit code
    1 when any problem is listed.

    CLI Example:

    .. code-block:: bash

        salt-run evpn.plan
        salt-run evpn.plan --out=json
    """
    federation, model = _federation()
    members = model["evpn.members"](federation=federation)
    with salt.client.get_local_client(mopts=__opts__) as client:
        answers = client.cmd(members, "state.apply", ["evpn"], kwarg={"test": True}, tgt_type="list", timeout=120)
    nodes = {}
    for member in members:
        states = answers.get(member)
        if not isinstance(states, dict):  # no answer, or Salt's message (a pillar that does not render)
            reason = "; ".join(states) if isinstance(states, list) else states
            nodes[member] = {"changes": {}, "problems": [f"no plan: {reason or 'no answer'}"]}
            continue
        ordered = sorted(states.values(), key=lambda state: state.get("__run_num__", 0))
        nodes[member] = {
            "changes": {
                state["__id__"]: {"changes": state["changes"], "comment": state["comment"]}
                for state in ordered
                if state.get("changes")
            },
            "problems": [f"{state['__id__']}: {state['comment']}" for state in ordered if state.get("result") is False],
        }
    return _checked(nodes, "evpn_plan", any(node["problems"] for node in nodes.values()))
