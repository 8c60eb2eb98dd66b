"""
The federation seen from the master.

The federation model is the ``evpn`` execution module, synced to the master with
``salt-run saltutil.sync_modules`` (orch.evpn does it); the pillar is the one the master
rendered for the minion in question, from the master's cache (no rendering per event).

CLI Example:

.. code-block:: bash

    salt-run evpn.endpoint_changed pve-wro1
"""

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


def _model():
    functions = salt.loader.minion_mods(__opts__, whitelist=["evpn"])  # pylint: disable=undefined-variable
    if "evpn.members" not in functions:
        raise CommandExecutionError(
            "the evpn execution module is not on the master: run salt-run saltutil.sync_modules")
    return functions


def _first_of_burst(debounce, longest):
    """
    True for the event that opens a burst, once no other event has come for ``debounce``
    seconds (or ``longest`` seconds have passed); False for the events that come meanwhile: they
    only push the end of the burst back, and the refresh that follows resolves after they were
    sent, so it covers them. A marker file, whose time each event touches, makes this hold
    across the reactor's workers.
    """
    marker = pathlib.Path(__opts__["cachedir"]) / PENDING  # pylint: disable=undefined-variable
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
    cached = __salt__["cache.pillar"]([sender], tgt_type="list")  # pylint: disable=undefined-variable
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
    with salt.client.get_local_client(mopts=__opts__) as client:  # pylint: disable=undefined-variable
        jid = client.cmd_async(members, "wireguard.refresh_endpoints", arg=[interface], tgt_type="list")
    log.info("evpn/endpoint/changed from %s: refreshing %s (job %s)", sender, ", ".join(members), jid)
    return {"sender": sender, "refreshed": members, "jid": jid, "comment": "refresh sent to every node"}
