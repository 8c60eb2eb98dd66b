"""
Watches the public DNS names of the federation's WireGuard endpoints from this node.

Every ``interval`` seconds the beacon resolves every endpoint name of the federation
(``evpn.endpoint_names``). When a name answers differently from its last answer, it

- re-points this node's own peers at once (``wireguard.refresh_endpoints``; with ``force``
  when the name is this node's own, so that it sends from its new address at once): the
  tunnels heal even when the master is unreachable;
- sends ``evpn/endpoint/changed`` to the master with ``event.send``, so that the reactor makes
  every other node re-resolve now instead of at its own next check. The event goes out through
  ``event.send`` and not as a beacon return: the master authenticates the sender of such an
  event (``data['id']``), while a beacon's return can claim any minion id.

A name's answer is the set of its addresses (``wireguard.addresses``, the resolution the
WireGuard state and ``wireguard.refresh_endpoints`` use too), so a round-robin reply in another
order is no change. Nothing is sent on a name's first answer (there is no earlier answer; the
node re-points its own peers, which changes nothing where their addresses hold), on unchanged
answers, or when a name does not resolve (a transient failure is not a change; the last good
answer is kept). When re-pointing fails (a persisted configuration wg-quick would refuse, say),
the beacon goes on and logs the problem once, not at every check. The
last answers are kept in the minion's cache folder, so a change that happens while the minion
restarts or reloads its beacons (a pillar refresh does) is still seen. The
beacon does nothing on a minion that is not a node of the federation, or before the node's
WireGuard interface exists.

A minion that boots while its master is away has no pillar. The evpn states write
``minion.d/evpn-beacon.conf`` (the pillar's beacon settings, the interface, and
``beacons_before_connect``), so that the beacon runs from boot, before and without a connection
to the master; without a pillar it watches the names of the node's persisted WireGuard
configuration (``wireguard.endpoint_names``), the peers it re-points. A name that does not
resolve yet (DNS not up) is tried again at every check.

Configured through pillar (``beacons`` key, see ``pillar/evpn/init.sls``):

.. code-block:: yaml

    beacons:
      evpn_endpoint:
        - interval: 5
        - enabled: False    # off (beacons.disable does not reach beacons from pillar)
        - interface: wg0    # read only without a pillar (from the pillar: evpn:wireguard:interface)
"""

import json
import logging
import os

import salt.utils.beacons
from salt.exceptions import SaltException, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "evpn_endpoint"
TAG = "evpn/endpoint/changed"
ANSWERS = "evpn_endpoint.json"  # in the cache folder: {name: addresses} of the last good answers


def __virtual__():
    return __virtualname__


def validate(config):
    if not isinstance(config, list):
        return False, "evpn_endpoint: the configuration must be a list"
    unknown = set(salt.utils.beacons.list_to_dict(config)) - {"interval", "enabled", "interface"}
    if unknown:
        return False, f"evpn_endpoint: unknown settings {sorted(unknown)} (only interval, enabled and interface)"
    return True, "Valid beacon configuration"


def _resolve(names):
    """Every name, one after the other, in this thread. Not in a thread pool: the minion forks
    its jobs from this process, and a fork while another thread is inside the resolver leaves
    the job with the resolver's lock held for ever (seen: a state job that never returned)."""
    return {name: __salt__["wireguard.addresses"](name) for name in names}


_last_problem = {"refresh": None, "pillar": None}  # what was logged last: a lasting problem is logged once


def _refreshed(interface, force):
    """Re-point this node's peers; a failure is logged (once while it lasts), never raised."""
    try:
        refreshed = __salt__["wireguard.refresh_endpoints"](interface, force=force)
    except SaltException as err:
        problem = f"evpn_endpoint: re-pointing the peers of {interface} failed: {err}"
        log.log(logging.DEBUG if problem == _last_problem["refresh"] else logging.WARNING, problem)
        _last_problem["refresh"] = problem
        return
    if _last_problem["refresh"]:
        log.warning("evpn_endpoint: re-pointing the peers of %s works again", interface)
        _last_problem["refresh"] = None
    log.info("evpn_endpoint: re-pointed %s", refreshed["changed"] or "nothing")


def _answers_path():
    return os.path.join(__opts__["cachedir"], ANSWERS)


def _last_answers():
    try:
        with open(_answers_path(), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def _keep_answers(answers):
    path = _answers_path()
    with open(f"{path}.tmp", "w", encoding="utf-8") as handle:
        json.dump(answers, handle)
    os.replace(f"{path}.tmp", path)


def _watched(config):
    """(interface, this node's own endpoint name, the names to watch), from the pillar; without
    a usable pillar (a minion that has not reached its master) from the persisted WireGuard
    configuration, with no own name. None on a minion that is not a node."""
    try:
        if __opts__["id"] not in __salt__["evpn.members"]():
            return None
        watched = (
            __salt__["evpn.config"]()["wireguard"]["interface"],
            __salt__["evpn.node"]()["endpoint_host"],
            __salt__["evpn.endpoint_names"](),
        )
        _last_problem["pillar"] = None
        return watched
    except SaltInvocationError as err:
        problem = f"evpn_endpoint: the evpn pillar is not usable ({err}): watching the persisted configuration"
        log.log(logging.DEBUG if problem == _last_problem["pillar"] else logging.INFO, problem)
        _last_problem["pillar"] = problem
    interface = salt.utils.beacons.list_to_dict(config).get("interface", "wg0")
    if "wireguard.endpoint_names" not in __salt__:  # wireguard-tools not installed
        return None
    try:
        return interface, None, __salt__["wireguard.endpoint_names"](interface)
    except SaltException as err:
        log.debug("evpn_endpoint: %s", err)
        return None


def beacon(config):
    watched = _watched(config)
    if watched is None:
        return []
    interface, own_name, names = watched
    if "wireguard.link" not in __salt__ or __salt__["wireguard.link"](interface) is None:
        return []
    last = _last_answers()
    answers = {name: addresses for name, addresses in _resolve(names).items() if addresses is not None}
    changed = sorted(name for name, addresses in answers.items() if name in last and last[name] != addresses)
    first = sorted(name for name in answers if name not in last)
    if not (changed or first):
        return []
    _keep_answers({**last, **answers})
    for names, what in ((first, "answered for the first time"), (changed, "answer(s) changed")):
        if names:
            log.info("evpn_endpoint: %s %s", ", ".join(names), what)
    _refreshed(interface, force=own_name in changed)
    if changed:
        __salt__["event.send"](TAG, {"names": changed})
    return []
