"""
WireGuard on this node, through ``wg`` and ``ip``.

The private key is made on the node (``/etc/wireguard/<interface>.key``, mode 0600) and never
leaves it: no function returns it, and the configurations handed to ``wg`` go through files of
mode 0600, never through arguments, logs or return values. Only public keys are published
(``wireguard.public_keys`` is the mine function).

The persisted configuration is read and written with one wg-quick parser (``_utils/wgquick.py``):
a file in any layout wg-quick accepts is understood, what this module does not manage in it is
kept, and a file wg-quick would refuse is an error naming the file and the line.

CLI Example:

.. code-block:: bash

    salt-call wireguard.public_key
    salt-call wireguard.show
"""

import ipaddress
import json
import os
import pathlib
import tempfile

import salt.utils.path
from salt.exceptions import CommandExecutionError

__virtualname__ = "wireguard"

CONFIG_DIR = pathlib.Path("/etc/wireguard")


def __virtual__():
    if salt.utils.path.which("wg"):
        return __virtualname__
    return (False, "wireguard: wg (wireguard-tools) is not installed")


def _run(args, stdin=None):
    result = __salt__["cmd.run_all"](
        args,
        python_shell=False,
        stdin=stdin,
        ignore_retcode=True,
        output_loglevel="quiet",
    )
    if result["retcode"] != 0:
        raise CommandExecutionError(f"{' '.join(args)}: {result['stderr'].strip()}")
    return result["stdout"]


def _key_path(interface="wg0"):
    return CONFIG_DIR / f"{interface}.key"


def _config_path(interface="wg0"):
    return CONFIG_DIR / f"{interface}.conf"


def genkey(interface="wg0"):
    """
    Make the interface's private key on this node if it has none. Returns the public key.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.genkey
    """
    path = _key_path(interface)
    if not path.exists():
        private = _run(["wg", "genkey"])
        try:
            CONFIG_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(private + "\n")
        except OSError as err:
            raise CommandExecutionError(f"{path}: {err.strerror}") from None
    return public_key(interface)


def rotate_key(interface="wg0"):
    """
    Replace the interface's private key with a new one made here: the key file first (the
    mine's source, and what a later state run applies), then the live interface (every session
    starts over with the new key), then the persisted configuration. Returns
    ``{"public_key": new, "previous_public_key": old}``; no private key leaves the node. The
    peers hold the old public key until they are updated (orch.rotate_key does it at once).

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.rotate_key
    """
    previous = public_key(interface)
    if previous is None:
        raise CommandExecutionError(f"{_key_path(interface)} does not exist: wireguard.genkey makes the first key")
    private = _run(["wg", "genkey"]).strip()
    _write_private(_key_path(interface), private + "\n")
    if show(interface) is not None:
        _run(["wg", "set", interface, "private-key", str(_key_path(interface))])
    sections = _sections(interface)
    if sections:
        utils = __utils__
        _write_private(
            _config_path(interface),
            utils["wgquick.render"](
                [
                    utils["wgquick.with_values"](section, {"PrivateKey": private})
                    if section["name"] == "Interface"
                    else section
                    for section in sections
                ]
            ),
        )
    return {"public_key": public_key(interface), "previous_public_key": previous}


def public_key(interface="wg0"):
    """
    The interface's public key, or None before ``genkey``.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.public_key
    """
    path = _key_path(interface)
    if not path.exists():
        return None
    return _run(["wg", "pubkey"], stdin=path.read_text()).strip()


def public_keys():
    """
    ``{interface: public key}`` for every ``/etc/wireguard/<interface>.key`` (where ``genkey``
    keeps the keys it makes): the mine function. Its answer names the interface, so the model
    picks the key of the interface the pillar configures (``evpn:wireguard:interface``) and the
    mine needs no setting of its own.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.public_keys
    """
    if not CONFIG_DIR.is_dir():
        return {}
    return {path.stem: public_key(path.stem) for path in sorted(CONFIG_DIR.glob("*.key"))}


def show(interface="wg0"):
    """
    The live state of an interface (``wg show <if> dump``), without the private key:
    ``{"public_key", "listen_port", "fwmark", "peers": {public key: {endpoint, allowed_ips,
    latest_handshake, transfer_rx, transfer_tx, keepalive}}}``; None when it does not exist.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.show
    """
    result = __salt__["cmd.run_all"](
        ["wg", "show", interface, "dump"],
        python_shell=False,
        ignore_retcode=True,
        output_loglevel="quiet",
    )
    if result["retcode"] != 0:
        return None
    lines = result["stdout"].splitlines()
    _, public, port, fwmark = lines[0].split("\t")
    peers = {}
    for line in lines[1:]:
        key, _, endpoint, allowed, handshake, rx, tx, keepalive = line.split("\t")
        peers[key] = {
            "endpoint": None if endpoint == "(none)" else endpoint,
            "allowed_ips": [] if allowed == "(none)" else sorted(allowed.split(",")),
            "latest_handshake": int(handshake),
            "transfer_rx": int(rx),
            "transfer_tx": int(tx),
            "keepalive": 0 if keepalive == "off" else int(keepalive),
        }
    return {
        "public_key": public,
        "listen_port": int(port),
        "fwmark": None if fwmark == "off" else fwmark,
        "peers": peers,
    }


def _private_key(interface):
    try:
        return _key_path(interface).read_text().strip()
    except OSError as err:
        raise CommandExecutionError(f"{_key_path(interface)}: {err.strerror} (wireguard.genkey makes it)") from None


def _sections(interface):
    """The persisted configuration, parsed (wgquick); [] when there is none. A file that
    wg-quick would refuse is an error naming the file and the line."""
    path = _config_path(interface)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    except OSError as err:
        raise CommandExecutionError(f"{path}: {err.strerror}") from None
    try:
        return __utils__["wgquick.parse"](text)
    except ValueError as err:
        raise CommandExecutionError(f"{path}: {err}") from None


def _configuration(interface, port, peers, address=None, mtu=None):
    """
    The configuration in wgquick's form: the persisted file with this port, address, MTU and
    exactly these peers (dicts with ``public_key``, ``allowed_ips``, ``endpoint`` (may be
    None), ``keepalive``, and ``name`` and ``endpoint_name``, the configured ``host:port``, kept
    as a comment that ``configured_peers`` reads back). Whatever else the file holds (wg-quick
    keys such as ``PostUp`` or ``Table``, ``FwMark``, a peer's ``PresharedKey``, comments) is
    kept. The private key is read from the key file and only ever written to files of mode 0600.
    """
    settings = []
    for peer in peers:
        comment = " at ".join(filter(None, (peer.get("name"), peer.get("endpoint_name"))))
        settings.append(
            {
                "comments": [f"# {comment}"] if comment else None,
                "settings": {
                    "PublicKey": peer["public_key"],
                    "AllowedIPs": ", ".join(peer["allowed_ips"]),
                    "Endpoint": peer.get("endpoint"),
                    "PersistentKeepalive": peer.get("keepalive") or None,
                },
            }
        )
    interface_settings = {"Address": address, "MTU": mtu, "ListenPort": port, "PrivateKey": _private_key(interface)}
    return __utils__["wgquick.update"](_sections(interface), interface_settings, settings)


def _private_file(text):
    """A new file of mode 0600 beside the key holding ``text``; returns its path."""
    try:
        CONFIG_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=CONFIG_DIR, prefix=".tmp-")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
    except OSError as err:
        raise CommandExecutionError(f"{CONFIG_DIR}: {err.strerror}") from None
    return name


def _write_private(path, text):
    """``path`` replaced at once by a file of mode 0600 holding ``text``."""
    temporary = _private_file(text)
    try:
        os.replace(temporary, path)
    except OSError as err:
        os.unlink(temporary)
        raise CommandExecutionError(f"{path}: {err.strerror}") from None


def syncconf(interface, port, peers):
    """
    Make the live interface hold exactly this port and these peers with one ``wg syncconf``:
    only what differs changes, established sessions are kept, nothing is restarted. What the
    persisted file adds for wg (``FwMark``, a kept peer's ``PresharedKey``) goes live too, as
    wg-quick would set it at boot.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.syncconf wg0 51820 '[]'
    """
    utils = __utils__
    path = _private_file(utils["wgquick.render"](utils["wgquick.strip"](_configuration(interface, port, peers))))
    try:
        _run(["wg", "syncconf", interface, path])
    finally:
        os.unlink(path)


def persist(interface, port, peers, address, mtu, test=False):
    """
    Make ``/etc/wireguard/<interface>.conf`` (wg-quick form, mode 0600) hold this configuration,
    so the tunnel comes back after a reboot; what else the file holds is kept (see
    ``syncconf``). Returns whether the file changed (or would, with ``test``); its content,
    which holds the private key, is never returned.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.persist wg0 51820 '[]' 10.1.0.1/32 1420 test=True
    """
    text = __utils__["wgquick.render"](_configuration(interface, port, peers, address=address, mtu=mtu))
    path = _config_path(interface)
    if path.exists() and path.read_text() == text:
        return False
    if not test:
        _write_private(_config_path(interface), text)
    return True


def link(interface="wg0"):
    """
    The interface as ``ip`` shows it: ``{"mtu", "up", "addresses": [address/prefix]}``, or None
    when it does not exist.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.link
    """
    result = __salt__["cmd.run_all"](
        ["ip", "-j", "addr", "show", "dev", interface],
        python_shell=False,
        ignore_retcode=True,
        output_loglevel="quiet",
    )
    if result["retcode"] != 0:
        return None
    (info,) = json.loads(result["stdout"])
    return {
        "mtu": info["mtu"],
        "up": "UP" in info.get("flags", []),
        "addresses": sorted(
            f"{a['local']}/{a['prefixlen']}" for a in info.get("addr_info", []) if a.get("scope") == "global"
        ),
    }


def create(interface="wg0"):
    """
    Create the interface (kernel WireGuard).

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.create wg0
    """
    _run(["ip", "link", "add", "dev", interface, "type", "wireguard"])


def delete(interface="wg0"):
    """
    Delete the interface (its peers, addresses and routes go with it).

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.delete wg0
    """
    _run(["ip", "link", "del", "dev", interface])


def files(interface="wg0"):
    """
    The files this module keeps for the interface that exist: its persisted configuration and
    its private key (paths only, never their content).

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.files
    """
    return [str(path) for path in (_config_path(interface), _key_path(interface)) if path.exists()]


def remove_files(interface="wg0"):
    """
    Remove the interface's persisted configuration and private key (:func:`files`): the key is
    gone for good, a later ``genkey`` makes a new one.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.remove_files wg0
    """
    for path in files(interface):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as err:
            raise CommandExecutionError(f"{path}: {err.strerror}") from None


def routes(interface="wg0"):
    """
    The destinations routed through the interface.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.routes
    """
    output = _run(["ip", "-j", "route", "show", "dev", interface])
    return sorted(
        route["dst"] if "/" in route["dst"] else f"{route['dst']}/32"
        for route in json.loads(output or "[]")
        if route.get("protocol") != "kernel"
    )


def configure_link(interface, address, mtu, remove_addresses=(), add_routes=(), remove_routes=()):
    """
    One ``ip -batch``: the interface has ``address`` (and no longer ``remove_addresses``), has
    ``mtu``, is up, and routes ``add_routes`` through itself instead of ``remove_routes``.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.configure_link wg0 10.1.0.1/32 1420 add_routes='["10.2.0.1/32"]'
    """
    commands = [f"address del {old} dev {interface}" for old in remove_addresses]
    commands.append(f"address replace {address} dev {interface}")
    commands.append(f"link set dev {interface} mtu {mtu} up")
    commands += [f"route del {dst} dev {interface}" for dst in remove_routes]
    commands += [f"route replace {dst} dev {interface}" for dst in add_routes]
    _run(["ip", "-batch", "-"], stdin="\n".join(commands) + "\n")


def resolve(endpoint_name):
    """
    ``host:port`` (``[v6]:port`` too) with the host resolved now, as WireGuard takes it, or None
    when the name does not resolve. A name with several addresses gives the first of them,
    IPv4 first and in numeric order (``wireguard.addresses``), so the answer does not change
    with the order of a round-robin reply.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.resolve wro.example.net:51820
    """
    return __utils__["endpoints.resolve"](endpoint_name)


def addresses(host):
    """
    The addresses ``host`` resolves to now, IPv4 first and in numeric order, or None when it
    does not resolve: what ``resolve`` picks from, and what the endpoint beacon watches.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.addresses wro.example.net
    """
    return __utils__["endpoints.addresses"](host)


def configured_peers(interface="wg0"):
    """
    The peers of the persisted configuration: ``[{"name", "public_key", "endpoint_name",
    "endpoint"}]`` (``endpoint_name`` is the configured ``host:port``, ``endpoint`` what it
    resolved to when written; both read from the comment ``# <name> at <host:port>`` right
    before the peer); empty when nothing is persisted.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.configured_peers
    """
    utils = __utils__
    peers = []
    for section in utils["wgquick.peers"](_sections(interface)):
        comment = section["comments"][-1].lstrip("#").strip() if section["comments"] else ""
        name, _, endpoint_name = comment.partition(" at ")
        peers.append(
            {
                "name": name or None,
                "public_key": utils["wgquick.public_key"](section),
                "endpoint_name": endpoint_name or None,
                "endpoint": utils["wgquick.value"](section, "Endpoint"),
            }
        )
    return peers


def endpoint_names(interface="wg0"):
    """
    The DNS names among the configured endpoints of the persisted configuration's peers (IP
    literals cannot move), sorted: what the endpoint beacon watches while the minion has no
    pillar.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.endpoint_names
    """
    names = set()
    for peer in configured_peers(interface):
        if peer["endpoint_name"]:
            host, _ = __utils__["endpoints.split"](peer["endpoint_name"])
            try:
                ipaddress.ip_address(host)
            except ValueError:
                names.add(host.rstrip(".").lower())
    return sorted(names)


def _persist_endpoints(interface, endpoints):
    """Set the Endpoint of these peers ({public key: endpoint}) in the persisted file, where
    the line stands; the rest of the file is written back as it was."""
    utils = __utils__
    sections = [
        utils["wgquick.with_values"](section, {"Endpoint": endpoints[key]})
        if section["name"] == "Peer" and (key := utils["wgquick.public_key"](section)) in endpoints
        else section
        for section in _sections(interface)
    ]
    _write_private(_config_path(interface), utils["wgquick.render"](sections))


def refresh_endpoints(interface="wg0", force=False, test=False):
    """
    Resolve every peer's configured endpoint name again and point the peers whose live endpoint
    has another address than the new answer at it, with one ``wg set`` and the persisted file
    updated (so neither a reboot nor a later ``syncconf`` brings the old address back). A live
    endpoint on the answer's address with another port is left alone: WireGuard roamed to what
    the peer's NAT router maps its packets to (two nodes behind one router cannot both keep their
    source port). A name that does not resolve now leaves its peer as it is. ``force`` sets every
    resolved endpoint, even unchanged ones: a node whose own public address changed sends from the
    new one at once. Returns
    ``{"changed": {peer: {"old", "new"}}, "unresolved": [peer]}``.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.refresh_endpoints
        salt-call wireguard.refresh_endpoints force=True
    """
    utils = __utils__
    live = show(interface)
    if live is None:
        raise CommandExecutionError(f"WireGuard interface {interface} does not exist")
    changed, unresolved, wanted, persisted = {}, [], {}, {}
    for peer in configured_peers(interface):
        if not peer["endpoint_name"] or peer["public_key"] not in live["peers"]:
            continue
        label = peer["name"] or peer["public_key"]
        resolved = resolve(peer["endpoint_name"])
        if resolved is None:
            unresolved.append(label)
            continue
        current = live["peers"][peer["public_key"]]["endpoint"]
        moved = current is None or utils["endpoints.split"](resolved)[0] != utils["endpoints.split"](current)[0]
        if moved:
            changed[label] = {"old": current, "new": resolved}
        if moved or force:
            wanted[peer["public_key"]] = resolved
        if resolved != peer["endpoint"]:
            persisted[peer["public_key"]] = resolved
    if test:
        return {"changed": changed, "unresolved": sorted(unresolved)}
    if wanted:
        args = ["wg", "set", interface]
        for key, endpoint in wanted.items():
            args += ["peer", key, "endpoint", endpoint]
        _run(args)
    if persisted:
        _persist_endpoints(interface, persisted)
    return {"changed": changed, "unresolved": sorted(unresolved)}
