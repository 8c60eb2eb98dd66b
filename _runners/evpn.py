"""
The federation seen from the master.

The federation model is the ``evpn`` execution module, which the master loads from the checkout
(``module_dirs`` in etc/master); the pillar is the one the master rendered for the minion in
question, from the master's cache (no rendering per event).

CLI Example:

.. code-block:: bash

    salt-run evpn.status
    salt-run evpn.endpoint_changed pve-wro1
"""

import json
import logging
import os
import pathlib
import time

import salt.client
import salt.loader
from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

PENDING = "evpn-endpoint-refresh.pending"  # in the master's cachedir while a refresh gathers
STALE_AFTER = 60  # seconds: a marker this old was left by a master that stopped mid-burst
HANDSHAKE_FRESH = 180  # seconds: WireGuard drops a session not renewed within this
BGP_SUMMARY = "vtysh -c 'show bgp l2vpn evpn summary json'"


def _model():
    functions = salt.loader.minion_mods(__opts__, whitelist=["evpn"])
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


def _federation():
    """The evpn pillar as the master last rendered it for a minion, and the model."""
    model = _model()
    for pillar in __salt__["cache.pillar"]("*").values():
        if (pillar or {}).get("evpn"):
            return pillar["evpn"], model
    raise CommandExecutionError("no minion has an evpn pillar in the master's cache")


def _wireguard_cell(show, peers, now):
    if not show:
        return "no interface", True
    names = {p["public_key"]: p["name"] for p in peers}
    cells, problem = [], False
    for key, peer in sorted(show["peers"].items(), key=lambda item: names.get(item[0], item[0])):
        age = now - peer["latest_handshake"] if peer["latest_handshake"] else None
        stale = age is None or age > HANDSHAKE_FRESH
        problem |= stale
        cells.append(f"{names.get(key, key[:8])} {'never' if age is None else f'{age:.0f}s'}{' !' if stale else ''}")
    return ", ".join(cells) or "no peers", problem or not cells


def _bgp_cell(output):
    try:
        peers = json.loads(output or "{}").get("peers", {})
    except ValueError:
        return "FRR not answering", True
    if not peers:
        return "no sessions", True
    cells = [f"{address} {peer.get('state')} {peer.get('pfxRcd', 0)} routes" for address, peer in sorted(peers.items())]
    return ", ".join(cells), any(peer.get("state") != "Established" for peer in peers.values())


def status():
    """
    The federation at a glance, one row per node: WireGuard peers with the age of their last
    handshake, BGP l2vpn evpn sessions with their state and the EVPN routes received, and
    whether SDN changes wait to be applied on the site's leader. Problems are marked ``!``.

    CLI Example:

    .. code-block:: bash

        salt-run evpn.status
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
    rows = [("node", "site", "WireGuard peers (last handshake)", "BGP l2vpn evpn", "SDN")]
    problems = 0
    for member in members:
        node = model["evpn.node"](member, federation=federation)
        answer = answers.get(member)
        if not isinstance(answer, dict):  # no answer, or Salt's message instead of one
            rows.append((member, node["site"], "no answer !", "", ""))
            problems += 1
            continue
        wireguard, wg_problem = _wireguard_cell(answer["wireguard.show"], answer["wireguard.configured_peers"], now)
        bgp, bgp_problem = _bgp_cell(answer["cmd.run"])
        pending = answer["pvesdn.pending"] if node["is_sdn_leader"] else None
        sdn = "-" if pending is None else ("pending !" if pending is True else "applied" if pending is False else "?")
        problems += wg_problem + bgp_problem + (pending is True)
        rows.append((member, node["site"], wireguard, bgp + (" !" if bgp_problem else ""), sdn))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(map(str, row), widths, strict=True)).rstrip() for row in rows
    ]
    lines.append(f"{problems} problem(s)" if problems else "no problems")
    return "\n".join(lines)


def plan():
    """
    What a converge would change, federation-wide, touching nothing: ``state.apply evpn``
    in test mode on every node, and for each node the states that would change and how.

    CLI Example:

    .. code-block:: bash

        salt-run evpn.plan
    """
    federation, model = _federation()
    members = model["evpn.members"](federation=federation)
    with salt.client.get_local_client(mopts=__opts__) as client:
        answers = client.cmd(members, "state.apply", ["evpn"], kwarg={"test": True}, tgt_type="list", timeout=120)
    result = {}
    for member in members:
        states = answers.get(member)
        if not isinstance(states, dict):
            result[member] = {"error": states or "no answer"}
            continue
        result[member] = {
            state["__id__"]: {"changes": state["changes"], "comment": state["comment"]}
            for state in states.values()
            if state.get("changes") or state.get("result") is False
        }
    return result
