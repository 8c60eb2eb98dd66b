"""
WireGuard on this node, through ``wg`` and ``ip``.

The private key is made on the node (``/etc/wireguard/<interface>.key``, mode 0600) and never
leaves it: no function returns it, and the configurations handed to ``wg`` go through files of
mode 0600, never through arguments, logs or return values. Only the public key is published
(``wireguard.public_key`` is the mine function).

CLI Example:

.. code-block:: bash

    salt-call wireguard.public_key
    salt-call wireguard.show
"""

import json
import os
import pathlib
import socket
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
        CONFIG_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        private = _run(["wg", "genkey"])
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(private + "\n")
    return public_key(interface)


def public_key(interface="wg0"):
    """
    The interface's public key, or None before ``genkey`` (the mine function).

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.public_key
    """
    path = _key_path(interface)
    if not path.exists():
        return None
    return _run(["wg", "pubkey"], stdin=path.read_text()).strip()


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


def _render(interface, port, peers, address=None, mtu=None):
    """
    A configuration in wg(8) form (``address``/``mtu`` None) or wg-quick form. ``peers`` are
    dicts with ``public_key``, ``allowed_ips``, ``endpoint`` (may be None), ``keepalive`` and
    ``name`` and ``endpoint_name`` (the configured ``host:port``), kept as a comment that
    ``configured_peers`` reads back. The private key is read from the key file here and only
    ever written to files of mode 0600.
    """
    head = ["[Interface]"]
    head += [f"Address = {address}"] if address else []
    head += [f"MTU = {mtu}"] if mtu else []
    head += [f"ListenPort = {port}", f"PrivateKey = {_key_path(interface).read_text().strip()}"]
    blocks = ["\n".join(head)]
    for peer in peers:
        comment = " at ".join(filter(None, (peer.get("name"), peer.get("endpoint_name"))))
        block = [f"# {comment}"] if comment else []
        block += ["[Peer]", f"PublicKey = {peer['public_key']}", f"AllowedIPs = {', '.join(peer['allowed_ips'])}"]
        block += [f"Endpoint = {peer['endpoint']}"] if peer.get("endpoint") else []
        block += [f"PersistentKeepalive = {peer['keepalive']}"] if peer.get("keepalive") else []
        blocks.append("\n".join(block))
    return "\n\n".join(blocks) + "\n"


def _private_file(text):
    """A new file of mode 0600 beside the key holding ``text``; returns its path."""
    CONFIG_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=CONFIG_DIR, prefix=".tmp-")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return name


def syncconf(interface, port, peers):
    """
    Make the live interface hold exactly this port and these peers with one ``wg syncconf``:
    only what differs changes, established sessions are kept, nothing is restarted.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.syncconf wg0 51820 '[]'
    """
    path = _private_file(_render(interface, port, peers))
    try:
        _run(["wg", "syncconf", interface, path])
    finally:
        os.unlink(path)


def persist(interface, port, peers, address, mtu, test=False):
    """
    Make ``/etc/wireguard/<interface>.conf`` (wg-quick form, mode 0600) hold this configuration,
    so the tunnel comes back after a reboot. Returns whether the file changed (or would, with
    ``test``); its content, which holds the private key, is never returned.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.persist wg0 51820 '[]' 10.1.0.1/32 1420 test=True
    """
    text = _render(interface, port, peers, address=address, mtu=mtu)
    path = _config_path(interface)
    if path.exists() and path.read_text() == text:
        return False
    if not test:
        os.replace(_private_file(text), path)
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


def remove_peer(interface, peer_public_key):
    """
    Remove a peer, live and from the persisted configuration.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.remove_peer wg0 <public key>
    """
    _run(["wg", "set", interface, "peer", peer_public_key, "remove"])
    path = _config_path(interface)
    if path.exists():
        blocks = path.read_text().rstrip("\n").split("\n\n")
        kept = [b for b in blocks if f"PublicKey = {peer_public_key}" not in b.splitlines()]
        os.replace(_private_file("\n\n".join(kept) + "\n"), path)


def set_peer_endpoint(interface, peer_public_key, endpoint):
    """
    Point one peer at a new endpoint (``host:port``), live.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.set_peer_endpoint wg0 <public key> 198.51.100.12:51820
    """
    _run(["wg", "set", interface, "peer", peer_public_key, "endpoint", endpoint])


def resolve(endpoint_name):
    """
    ``host:port`` (``[v6]:port`` too) with the host resolved now, as WireGuard takes it, or None
    when the name does not resolve.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.resolve wro.example.net:51820
    """
    host, _, port = endpoint_name.rpartition(":")
    try:
        info = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_DGRAM)
    except OSError:
        return None
    address = info[0][4][0]
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def configured_peers(interface="wg0"):
    """
    The peers of the persisted configuration: ``[{"name", "public_key", "endpoint_name",
    "endpoint"}]`` (``endpoint_name`` is the configured ``host:port``, ``endpoint`` what it
    resolved to when written); empty when nothing is persisted.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.configured_peers
    """
    path = _config_path(interface)
    if not path.exists():
        return []
    peers = []
    for block in path.read_text().rstrip("\n").split("\n\n")[1:]:
        lines = block.splitlines()
        fields = dict(line.split(" = ", 1) for line in lines if " = " in line and not line.startswith("#"))
        comment = next((line[2:] for line in lines if line.startswith("# ")), "")
        name, _, endpoint_name = comment.partition(" at ")
        peers.append(
            {
                "name": name or None,
                "public_key": fields["PublicKey"],
                "endpoint_name": endpoint_name or None,
                "endpoint": fields.get("Endpoint"),
            }
        )
    return peers


def _persist_endpoints(interface, endpoints):
    """Rewrite the Endpoint lines of these peers ({public key: endpoint}) in the persisted file."""
    path = _config_path(interface)
    blocks = path.read_text().rstrip("\n").split("\n\n")
    for index, block in enumerate(blocks):
        lines = block.splitlines()
        key = next((line.split(" = ", 1)[1] for line in lines if line.startswith("PublicKey = ")), None)
        if key in endpoints:  # where _render puts it: after AllowedIPs
            lines = [line for line in lines if not line.startswith("Endpoint = ")]
            allowed = next(i for i, line in enumerate(lines) if line.startswith("AllowedIPs = "))
            lines.insert(allowed + 1, f"Endpoint = {endpoints[key]}")
            blocks[index] = "\n".join(lines)
    os.replace(_private_file("\n\n".join(blocks) + "\n"), path)


def refresh_endpoints(interface="wg0", force=False, test=False):
    """
    Resolve every peer's configured endpoint name again and point the peers whose live endpoint
    differs at the new answer, with one ``wg set`` and the persisted file updated (so neither a
    reboot nor a later ``syncconf`` brings the old address back). A name that does not resolve
    now leaves its peer as it is. ``force`` sets every resolved endpoint, even unchanged ones:
    a node whose own public address changed sends from the new one at once. Returns
    ``{"changed": {peer: {"old", "new"}}, "unresolved": [peer]}``.

    CLI Example:

    .. code-block:: bash

        salt-call wireguard.refresh_endpoints
        salt-call wireguard.refresh_endpoints force=True
    """
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
        if resolved != current:
            changed[label] = {"old": current, "new": resolved}
        if resolved != current or force:
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
