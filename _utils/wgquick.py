"""
wg-quick configuration files (``/etc/wireguard/<interface>.conf``): read as wg-quick(8) and
wg(8) read them, edited, written back.

Every layout wg-quick accepts is read: section headers and keys in any case, spaces around
``=`` or none, blank lines between sections or none, comments on their own line or after a
value (``#`` to the end of the line; wg-quick keeps it in ``PreUp``, ``PostUp``, ``PreDown``
and ``PostDown``, which are shell commands), a key given more than once (``AllowedIPs`` lines
add up; for the other keys the last one counts), a second ``[Interface]`` (its keys are the
first one's). What wg(8) would refuse raises ValueError naming the line: a line that is no
section, no ``key = value`` and no comment, a key before the first section, a section other
than ``[Interface]`` and ``[Peer]``, a ``[Peer]`` without ``PublicKey``.

A configuration is its list of sections, ``[Interface]`` first, each a dict: ``{"name":
"Interface" | "Peer", "comments": [the comment lines right before its header], "entries":
[(key, value, line)]}``; ``line`` is the entry as it was written (None once edited), a comment
line inside a section is ``(None, None, line)``. Editing (``with_values``, ``update``) only
touches the keys it is given: every other entry and comment is written back as it was.

Use (a utility module, loaded by Salt as ``__utils__``; the wireguard execution module uses it):

.. code-block:: python

    sections = __utils__["wgquick.parse"](text)
    text = __utils__["wgquick.render"](__utils__["wgquick.update"](sections, interface, peers))
"""

INTERFACE = "Interface"
PEER = "Peer"
SECTIONS = {"[interface]": INTERFACE, "[peer]": PEER}
# [Interface] keys wg-quick handles itself and does not hand to wg(8) (wg-quick(8), linux.bash).
WG_QUICK_KEYS = frozenset({"address", "dns", "mtu", "table", "preup", "predown", "postup", "postdown", "saveconfig"})
# Shell commands: wg-quick takes the whole rest of the line, a '#' included.
VERBATIM_KEYS = frozenset({"preup", "predown", "postup", "postdown"})


def _canonical(key):
    # wg(8) drops every blank of a line before it matches keys, case-insensitively.
    return "".join(key.split()).lower()


def _section(name, comments=()):
    return {"name": name, "comments": list(comments), "entries": []}


def parse(text):
    """
    The sections of a wg-quick configuration (see the module's docstring). Raises ValueError
    naming the line for what wg-quick would refuse.
    """
    sections, pending, current, headers = [], [], None, {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        content = line.split("#", 1)[0].strip()
        if not content:
            if line:
                pending.append(line)
            continue
        if content.startswith("["):
            name = SECTIONS.get(_canonical(content))
            if name is None:
                raise ValueError(f"line {number}: {content!r} is not a section wg-quick knows ([Interface] or [Peer])")
            interface = next((s for s in sections if s["name"] == INTERFACE), None)
            if name == INTERFACE and interface is not None:
                current = interface
                current["entries"] += [(None, None, comment) for comment in pending]
            else:
                current = _section(name, pending)
                sections.append(current)
                headers[id(current)] = number
            pending = []
            continue
        if "=" not in content:
            raise ValueError(f"line {number}: {content!r} is neither a [section], a key = value nor a comment")
        key, value = (part.strip() for part in content.split("=", 1))
        if current is None:
            raise ValueError(f"line {number}: {key} comes before the first section ([Interface])")
        if _canonical(key) in VERBATIM_KEYS:
            value = line.split("=", 1)[1].strip()
        current["entries"] += [(None, None, comment) for comment in pending] + [(key, value, line)]
        pending = []
    if current is not None:
        current["entries"] += [(None, None, comment) for comment in pending]
    for section in sections:
        if section["name"] == PEER and public_key(section) is None:
            raise ValueError(f"line {headers[id(section)]}: [Peer] has no PublicKey")
    # wg reads [Interface] wherever it is; it is written first.
    return sorted(sections, key=lambda section: section["name"] != INTERFACE)


def values(section, key):
    """Every value of ``key`` in the section, in file order."""
    wanted = _canonical(key)
    return [value for name, value, _ in section["entries"] if name is not None and _canonical(name) == wanted]


def value(section, key):
    """The value of ``key`` that counts (the last one), or None."""
    found = values(section, key)
    return found[-1] if found else None


def public_key(section):
    """A peer's public key, blanks removed as wg(8) removes them; None when it has none."""
    found = value(section, "PublicKey")
    return "".join(found.split()) if found is not None else None


def allowed_ips(section):
    """A peer's AllowedIPs, every line's together."""
    return [ip.strip() for line in values(section, "AllowedIPs") for ip in line.split(",") if ip.strip()]


def interface(sections):
    """The [Interface] section, or None."""
    return next((section for section in sections if section["name"] == INTERFACE), None)


def peers(sections):
    """The [Peer] sections, in file order."""
    return [section for section in sections if section["name"] == PEER]


def with_values(section, settings):
    """
    The section with each key of ``settings`` ({key: value}) set: its first entry replaced where
    it stands (the key's later entries dropped), or appended after the others when the section
    has none. A value of None removes the key. Every other entry is kept as it was.
    """
    wanted = {_canonical(key): (key, setting) for key, setting in settings.items()}
    entries, placed = [], set()
    for key, current, line in section["entries"]:
        canonical = None if key is None else _canonical(key)
        if canonical not in wanted:
            entries.append((key, current, line))
            continue
        name, setting = wanted[canonical]
        if canonical not in placed and setting is not None:
            entries.append((name, str(setting), None))
        placed.add(canonical)
    entries += [
        (name, str(setting), None) for c, (name, setting) in wanted.items() if c not in placed and setting is not None
    ]
    return {**section, "entries": entries}


def update(sections, interface_settings, peer_settings):
    """
    ``sections`` holding the [Interface] keys of ``interface_settings`` ({key: value or None})
    and exactly the peers of ``peer_settings`` (``[{"comments": [lines] or None, "settings":
    {key: value or None}}]``, ``settings`` with the peer's ``PublicKey``), in that order. A peer
    that is already there keeps the keys its ``settings`` do not name (``PresharedKey``, ...),
    and its comments when ``comments`` is None; so does [Interface] (``PostUp``, ``Table``,
    ``FwMark``, ...). Peers that ``peer_settings`` does not name are left out.
    """
    existing = {}
    for section in peers(sections):
        existing.setdefault(public_key(section), section)
    result = [with_values(interface(sections) or _section(INTERFACE), interface_settings)]
    for peer in peer_settings:
        key = "".join(str(peer["settings"]["PublicKey"]).split())
        section = with_values(existing.get(key) or _section(PEER), peer["settings"])
        if peer.get("comments") is not None:
            section["comments"] = list(peer["comments"])
        result.append(section)
    return result


def strip(sections):
    """What wg(8) reads of a wg-quick configuration (``wg-quick strip``): the [Interface] keys
    that wg-quick handles itself left out, and the comments."""
    return [
        {
            **section,
            "comments": [],
            "entries": [
                entry
                for entry in section["entries"]
                if entry[0] is not None and not (section["name"] == INTERFACE and _canonical(entry[0]) in WG_QUICK_KEYS)
            ],
        }
        for section in sections
    ]


def render(sections):
    """The text of a configuration: one blank line between sections, entries as they were
    written, edited ones as ``Key = value``."""
    blocks = []
    for section in sections:
        lines = [*section["comments"], f"[{section['name']}]"]
        lines += [line if line is not None else f"{key} = {value}" for key, value, line in section["entries"]]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
