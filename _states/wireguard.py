"""
A WireGuard interface and its peers, converged live without a restart.

``interface_present`` computes every change first (key, interface, address, MTU, port, peers,
routes, the persisted wg-quick file) and in test mode reports them without acting; then it acts
step by step, and when a step fails it reports the changes the steps before it made. Peers
change with one ``wg syncconf``, so established sessions are kept; a peer that is not in
``peers`` is removed, live and from the file. A peer is left out, and named in the comment, while
its public key is not in the mine yet or its endpoint name does not resolve: the interface never
goes down for it, and the next run picks it up; a peer the mine has no key for while the
persisted file has one keeps that key. An existing peer keeps the endpoint WireGuard has roamed
to while its configured endpoint is the one persisted and the roamed address is the one the name
resolves to (behind a NAT router only the port differs); otherwise it is pointed at the resolved
endpoint, reported under ``peers: endpoints``. No change or comment ever holds the private key.

.. code-block:: yaml

    wg0:
      wireguard.interface_present:
        - address: 10.1.0.1/32
        - port: 51820
        - mtu: 1420
        - peers:
          - {name: pve-wro1, public_key: ..., allowed_ips: [10.2.0.1/32],
             endpoint: wro.example.net:51820, keepalive: 25}
"""

import time

from salt.exceptions import SaltException

__virtualname__ = "wireguard"


def __virtual__():
    # Loads without wg, so that a node where evpn-packages has yet to install wireguard-tools
    # gets a clear answer (and a test run a prediction) instead of "state not found".
    return __virtualname__


def _without_wg(ret, what):
    if __opts__["test"]:
        ret.update(result=None, comment=f"wg (wireguard-tools) is not installed yet; once it is, {what}")
    else:
        ret.update(result=False, comment="wg (wireguard-tools) is not installed")
    return ret


def _live_endpoint(roamed, resolved, configured_unchanged):
    """
    The endpoint the live peer gets. WireGuard roams to where a peer's packets come from, which
    behind a NAT router may be another port than the forwarded one (two nodes behind one router
    cannot both keep their source port): that roamed endpoint stays while the configured
    ``host:port`` is the persisted one and the name still answers the roamed address. A changed
    configuration (a new name, port or address) or a new answer gets the resolved endpoint; a
    name that does not resolve now leaves the roamed endpoint as it is.
    """
    if not roamed or not resolved:
        return roamed or resolved
    split = __utils__["endpoints.split"]
    if configured_unchanged and split(roamed)[0] == split(resolved)[0]:
        return roamed
    return resolved


def _wanted_peers(peers, live_peers, persisted):
    """
    (peers for the live interface, the same for the persisted file, skipped descriptions).
    ``persisted`` is ``{name: peer}`` of the persisted file (``wireguard.configured_peers``). A
    peer whose key the mine does not give (yet, or any more: a mine that lost its data) keeps
    the key persisted for its name, so a tunnel that is up stays up. Live, a peer gets the
    endpoint of ``_live_endpoint``; the file holds the endpoint resolved from the pillar, so
    roaming alone changes nothing.
    """
    live_config, persisted_config, skipped = [], [], []
    for peer in peers:
        before = persisted.get(peer["name"]) or {}
        key = peer.get("public_key") or before.get("public_key")
        if not key:
            skipped.append(f"{peer['name']} (no public key in the mine yet)")
            continue
        roamed = (live_peers.get(key) or {}).get("endpoint")
        resolved = __salt__["wireguard.resolve"](peer["endpoint"])
        if not (roamed or resolved):
            host, _ = __utils__["endpoints.split"](peer["endpoint"])
            skipped.append(f"{peer['name']} ({host} does not resolve)")
            continue
        common = {
            "name": peer["name"],
            "public_key": key,
            "endpoint_name": peer["endpoint"],
            "allowed_ips": sorted(peer["allowed_ips"]),
            "keepalive": peer.get("keepalive", 0),
        }
        unchanged = before.get("endpoint_name") == peer["endpoint"]
        live_config.append({**common, "endpoint": _live_endpoint(roamed, resolved, unchanged)})
        persisted_config.append({**common, "endpoint": resolved or roamed})
    return live_config, persisted_config, skipped


def _peer_changes(wanted, live_peers):
    names = {p["public_key"]: p["name"] for p in wanted}
    changes = {}
    added = sorted(names[k] for k in names if k not in live_peers)
    removed = sorted(k for k in live_peers if k not in names)
    changed = sorted(
        p["name"]
        for p in wanted
        if p["public_key"] in live_peers
        and (
            live_peers[p["public_key"]]["allowed_ips"] != p["allowed_ips"]
            or live_peers[p["public_key"]]["keepalive"] != p["keepalive"]
        )
    )
    endpoints = {
        p["name"]: {"old": live_peers[p["public_key"]]["endpoint"], "new": p["endpoint"]}
        for p in sorted(wanted, key=lambda p: p["name"])
        if p["public_key"] in live_peers and live_peers[p["public_key"]]["endpoint"] != p["endpoint"]
    }
    for key, value in (("added", added), ("removed", removed), ("changed", changed), ("endpoints", endpoints)):
        if value:
            changes[key] = value
    return changes


def _plan(name, address, port, mtu, peers):
    """
    What ``interface_present`` would change, computed without touching anything: (changes,
    steps, skipped peers). ``steps`` are (description, the change keys it makes, action) in the
    order they must run.
    """
    salt = __salt__
    changes = {}
    has_key = salt["wireguard.public_key"](name) is not None
    if not has_key:
        changes["private_key"] = "generated"
    current = salt["wireguard.link"](name)
    if current is None:
        changes["interface"] = "created"
    live = salt["wireguard.show"](name) if current is not None else None
    live_peers = live["peers"] if live else {}
    persisted_peers = {p["name"]: p for p in salt["wireguard.configured_peers"](name) if p["name"]}
    wanted, persisted, skipped = _wanted_peers(peers, live_peers, persisted_peers)

    addresses = current["addresses"] if current else []
    if addresses != [address]:
        changes["address"] = {"old": addresses, "new": address}
    if current is None or current["mtu"] != mtu:
        changes["mtu"] = {"old": current and current["mtu"], "new": mtu}
    if current is None or not current["up"]:
        changes["up"] = True
    if live is None or live["listen_port"] != port:
        changes["listen_port"] = {"old": live and live["listen_port"], "new": port}
    peer_changes = _peer_changes(wanted, live_peers)
    if peer_changes:
        changes["peers"] = peer_changes

    wanted_routes = sorted({ip for p in wanted for ip in p["allowed_ips"]})
    live_routes = salt["wireguard.routes"](name) if current is not None else []
    routes = {
        k: v
        for k, v in (
            ("added", [r for r in wanted_routes if r not in live_routes]),
            ("removed", [r for r in live_routes if r not in wanted_routes]),
        )
        if v
    }
    if routes:
        changes["routes"] = routes

    # Without a key the file cannot hold it yet: it is written once the key exists.
    if not has_key:
        changes["config_file"] = "written"
    elif salt["wireguard.persist"](name, port, persisted, address, mtu, test=True):
        changes["config_file"] = "updated"

    steps = [
        ("making the private key", ["private_key"], lambda: salt["wireguard.genkey"](name)),
        ("creating the interface", ["interface"], lambda: salt["wireguard.create"](name)),
        (
            "setting the address, MTU and routes",
            ["address", "mtu", "up", "routes"],
            lambda: salt["wireguard.configure_link"](
                name,
                address,
                mtu,
                remove_addresses=[a for a in addresses if a != address],
                add_routes=routes.get("added", []),
                remove_routes=routes.get("removed", []),
            ),
        ),
        (
            "setting the key, port and peers (wg syncconf)",
            ["private_key", "listen_port", "peers"],
            lambda: salt["wireguard.syncconf"](name, port, wanted),
        ),
        (
            "persisting the configuration",
            ["config_file"],
            lambda: salt["wireguard.persist"](name, port, persisted, address, mtu),
        ),
    ]
    return changes, [step for step in steps if any(key in changes for key in step[1])], skipped


def interface_present(name, address, port, mtu, peers):
    """
    The WireGuard interface ``name`` with this address (``a.b.c.d/32``), listen port, MTU and
    exactly these peers (dicts: ``name``, ``public_key`` (None until the mine has it),
    ``allowed_ips``, ``endpoint`` (``host:port``, resolved at run time), ``keepalive``), each
    peer's AllowedIPs routed through it, persisted in ``/etc/wireguard/<name>.conf``.
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    if "wireguard.show" not in __salt__:
        return _without_wg(ret, f"{name} would be configured with {len(peers)} peers")
    try:
        changes, steps, skipped = _plan(name, address, port, mtu, peers)
    except SaltException as err:
        ret.update(result=False, comment=f"WireGuard interface {name}: nothing was changed: {err}")
        return ret
    left_out = "; peers left out for now: " + ", ".join(skipped) if skipped else ""
    return _carry_out(ret, changes, steps, "updated", "is in the desired state", left_out)


def _carry_out(ret, changes, steps, verb, settled, note=""):
    """Report ``changes``: in test mode as predicted; otherwise run ``steps`` ((description,
    the change keys it makes, action)) in order, reporting on failure what was made before it."""
    what = f"WireGuard interface {ret['name']}"
    if not changes:
        ret["comment"] = f"{what} {settled}{note}"
        return ret
    ret["changes"] = changes
    if __opts__["test"]:
        ret.update(result=None, comment=f"{what} would be {verb}{note}")
        return ret
    done = {}
    for description, keys, action in steps:
        try:
            action()
        except SaltException as err:
            made = f"; made before it: {', '.join(done)}" if done else "; nothing was changed"
            ret.update(result=False, changes=done, comment=f"{what}: {description} failed: {err}{made}")
            return ret
        done.update({key: changes[key] for key in keys if key in changes})
    ret["comment"] = f"{what} was {verb}{note}"
    return ret


def interface_absent(name):
    """
    No WireGuard interface ``name`` and none of its files: the link is deleted (its peers,
    addresses and routes with it), then the persisted configuration and the private key.
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    salt = __salt__
    if "wireguard.files" not in salt:
        ret["comment"] = f"wg (wireguard-tools) is not installed: there is no WireGuard interface {name}"
        return ret
    try:
        exists = salt["wireguard.link"](name) is not None
        files = salt["wireguard.files"](name)
    except SaltException as err:
        ret.update(result=False, comment=f"WireGuard interface {name}: nothing was changed: {err}")
        return ret
    changes = {k: v for k, v in (("interface", "deleted" if exists else None), ("files", files)) if v}
    steps = [
        ("deleting the interface", ["interface"], lambda: salt["wireguard.delete"](name)),
        ("removing its files", ["files"], lambda: salt["wireguard.remove_files"](name)),
    ]
    return _carry_out(ret, changes, [step for step in steps if step[1][0] in changes], "removed", "is absent")


def handshakes_recent(name, peers, within=180, timeout=60):
    """
    Every peer named in ``peers`` (names as in the persisted configuration) is configured on
    interface ``name`` and completed a handshake in the last ``within`` seconds (180 s is when
    WireGuard drops a session that was not renewed); waits up to ``timeout`` seconds for that.
    A check that changes nothing: orch.evpn ends with it. In test mode it does not wait.
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    salt = __salt__
    test = __opts__["test"]
    if "wireguard.show" not in salt:
        return _without_wg(ret, f"the handshakes on {name} would be checked")
    try:
        keys = {p["name"]: p["public_key"] for p in salt["wireguard.configured_peers"](name)}
    except SaltException as err:
        ret.update(result=False, comment=f"{name}: {err}")
        return ret
    deadline = time.monotonic() + (0 if test else timeout)
    while True:
        live = salt["wireguard.show"](name) or {"peers": {}}
        now = time.time()
        problems = []
        for peer in sorted(peers):
            state = live["peers"].get(keys.get(peer))
            if state is None:
                problems.append(f"{peer} (not a peer of {name})")
            elif not state["latest_handshake"]:
                problems.append(f"{peer} (no handshake yet)")
            elif now - state["latest_handshake"] > within:
                problems.append(f"{peer} (last handshake {int(now - state['latest_handshake'])} s ago)")
        if not problems or time.monotonic() >= deadline:
            break
        time.sleep(1)
    if not problems:
        ret["comment"] = f"{name}: every peer ({len(peers)}) had a handshake within {within} s"
    elif test:
        ret.update(result=None, comment=f"{name}: would wait for " + ", ".join(problems))
    else:
        ret.update(result=False, comment=f"{name}: after {timeout} s, no recent handshake with " + ", ".join(problems))
    return ret
