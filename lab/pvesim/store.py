"""
One cluster's /etc/pve (PVESIM_ROOT): section-config files written byte for byte as PVE's
SectionConfig writes them, their digests, and one lock serializing every call as pmxcfs does.

Layout under the root: sdn/{zones,vnets,subnets,controllers}.cfg, sdn/.running-config,
sdn/.lock (PVE 9), firewall/cluster.fw, nodes/<node>/ (one folder per node that has called).
"""

import contextlib
import fcntl
import hashlib
import json
import os
import pathlib
import re

EMPTY_DIGEST = hashlib.sha1(b"").hexdigest()
HEADER = re.compile(r"^(\S+):\s*(\S+)\s*$")
PROPERTY = re.compile(r"^\s+(\S+)(\s+(.*\S))?\s*$")


class Store:
    def __init__(self, root):
        self.root = pathlib.Path(root)

    @contextlib.contextmanager
    def locked(self):
        """Serialize calls on this cluster, across processes."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".pvesim.lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def path(self, relative):
        return self.root / relative

    def read_text(self, relative):
        try:
            return self.path(relative).read_text()
        except FileNotFoundError:
            return ""

    def write_text(self, relative, text):
        """Replace a file atomically; an empty content removes it, as PVE does."""
        target = self.path(relative)
        if not text:
            target.unlink(missing_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp.{os.getpid()}")
        temporary.write_text(text)
        os.replace(temporary, target)

    def read_json(self, relative, default):
        text = self.read_text(relative)
        return json.loads(text) if text else default

    def write_json(self, relative, data):
        self.write_text(relative, json.dumps(data, sort_keys=True))

    def nodes(self):
        """The cluster's nodes: every node that has run pvesh on this root."""
        folder = self.path("nodes")
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def join(self, node, facts=None):
        """A node takes part in the cluster; ``facts`` (its addresses and default route, what
        the SDN apply renders with) are kept up to date in nodes/<node>/network.json."""
        self.path(f"nodes/{node}").mkdir(parents=True, exist_ok=True)
        if facts is not None and self.read_json(f"nodes/{node}/network.json", None) != facts:
            self.write_json(f"nodes/{node}/network.json", facts)


def digest(text):
    return hashlib.sha1(text.encode()).hexdigest()


def parse_section_config(text, types):
    """
    {id: {"type": t, key: value}} in file order. Unknown section types and unknown keys are
    skipped, as PVE's parser skips them with a warning; values stay strings here.
    """
    sections = {}
    current = None
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            current = None if not line.strip() else current
            continue
        header = HEADER.match(line)
        if header and not line[0].isspace():
            kind, ident = header.group(1).lower(), header.group(2)
            current = {"type": kind} if kind in types else None
            if current is not None:
                sections[ident] = current
            continue
        prop = PROPERTY.match(line)
        if prop and current is not None:
            key, value = prop.group(1), prop.group(3) or ""
            allowed = types[current["type"]]
            if key == "disable" or key in allowed["required"] or key in allowed["optional"]:
                if key in current and key in allowed.get("arrays", ()):
                    current[key] = f"{current[key]}\n{value}"
                else:
                    current[key] = value
    return sections


def write_section_config(sections, types, id_keys=()):
    """
    PVE's writer: ``type: id``, then one TAB-indented ``key value`` line each: comment first,
    disable as a bare flag, required keys sorted, optional keys sorted; arrays one line per
    element; empty values left out; every section ends with a blank line.
    """
    out = []
    for ident, section in sections.items():
        kind = section["type"]
        spec = types[kind]
        lines = [f"{kind}: {ident}"]
        ordered = (
            (["comment"] if "comment" in section else [])
            + sorted(k for k in spec["required"] if k in section)
            + sorted(k for k in spec["optional"] if k in section and k != "comment")
        )
        if section.get("disable"):
            lines.insert(1 + ("comment" in section), "\tdisable")
        for key in ordered:
            if key in id_keys or key == "type":
                continue
            value = section[key]
            if value is None or value == "":
                continue
            if "\n" in str(value) and key not in spec.get("arrays", ()):
                raise ValueError(f"property '{key}' contains a line feed")
            for element in str(value).split("\n"):
                lines.append(f"\t{key} {element}")
        out.append("\n".join(lines) + "\n\n")
    return "".join(out)
