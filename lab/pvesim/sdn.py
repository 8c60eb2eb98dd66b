"""
/cluster/sdn: controllers, zones, vnets and subnets (pending in the .cfg files), the running
config (.running-config) that an apply writes, and on PVE 9 the global lock and rollback.
BEHAVIOR.md sections 2 and 3 are the reference; error texts are PVE's.
"""

import ipaddress
import os
import random
import time
import uuid

from pvesim import render
from pvesim.errors import MODIFIED, PveError
from pvesim.schema import split_list
from pvesim.store import digest, parse_section_config, write_section_config

COMMON_ZONE = ["nodes", "mtu", "dns", "reversedns", "dnszone", "ipam"]
LIST_KEYS = ("nodes", "exitnodes")  # stored as sets, returned sorted


def zone_types(version):
    pve9 = version.startswith("9")
    return {
        "evpn": {
            "required": ["controller", "vrf-vxlan"],
            "optional": COMMON_ZONE
            + [
                "exitnodes",
                "exitnodes-local-routing",
                "exitnodes-primary",
                "advertise-subnets",
                "disable-arp-nd-suppression",
                "bridge-disable-mac-learning",
                "rt-import",
                "vxlan-port",
                "mac",
            ],
        },
        "simple": {"required": [], "optional": COMMON_ZONE + ["dhcp"]},
        "vlan": {"required": ["bridge"], "optional": COMMON_ZONE + ["bridge-disable-mac-learning"]},
        "vxlan": {
            "required": [] if pve9 else ["peers"],
            "optional": COMMON_ZONE
            + ["vxlan-port", "bridge-disable-mac-learning"]
            + (["peers", "fabric"] if pve9 else []),
        },
    }


def controller_types(version):
    pve9 = version.startswith("9")
    return {
        "evpn": {"required": ["asn"] + ([] if pve9 else ["peers"]), "optional": ["peers", "fabric"] if pve9 else []},
        "bgp": {
            "required": ["asn", "node", "peers"],
            "optional": ["ebgp", "ebgp-multihop", "loopback", "bgp-multipath-as-path-relax"],
        },
        "isis": {"required": ["isis-domain", "isis-ifaces", "isis-net", "node"], "optional": ["loopback"]},
    }


VNET_TYPES = {"vnet": {"required": ["zone"], "optional": ["tag", "alias", "vlanaware", "isolate-ports"]}}
SUBNET_TYPES = {
    "subnet": {
        "required": ["vnet"],
        "optional": ["gateway", "snat", "dnszoneprefix", "dhcp-range", "dhcp-dns-server"],
        "arrays": ["dhcp-range"],
    }
}


class Kind:
    """One SDN object collection: its file, id key and section types."""

    def __init__(self, name, plural, id_key, types):
        self.name = name  # as PVE's messages say it: zone, vnet, subnet, controller
        self.plural = plural
        self.id_key = id_key
        self.types = types
        self.file = f"sdn/{plural}.cfg"

    def missing(self, ident):
        """PVE's message for an id that does not exist (zones and controllers name no kind)."""
        if self.plural in ("vnets", "subnets"):
            return f"sdn {self.name} '{ident}' does not exist"
        return f"sdn '{ident}' does not exist"


def perl_die(message, module="Network/SDN.pm"):
    """A pve-network die string without a trailing newline: Perl appends where it died."""
    return f"{message} at /usr/share/perl5/PVE/{module} line 0."


class Sdn:
    def __init__(self, api):
        self.api = api
        self.store = api.store
        version = api.schema.version
        self.pve9 = version.startswith("9")
        self.kinds = {
            "controllers": Kind("controller", "controllers", "controller", controller_types(version)),
            "zones": Kind("zone", "zones", "zone", zone_types(version)),
            "vnets": Kind("vnet", "vnets", "vnet", VNET_TYPES),
            "subnets": Kind("subnet", "subnets", "subnet", SUBNET_TYPES),
        }
        self.value_types = self._value_types()

    def _value_types(self):
        """integer/boolean properties, from the create methods of the schema."""
        types = {}
        for template in (
            "/cluster/sdn/zones",
            "/cluster/sdn/controllers",
            "/cluster/sdn/vnets",
            "/cluster/sdn/vnets/{vnet}/subnets",
        ):
            method = self.api.schema.method(template, "POST")
            for name, spec in method["parameters"]["properties"].items():
                types[name] = spec.get("type")
        return types

    # --- files ---------------------------------------------------------------------------

    def read(self, kind):
        text = self.store.read_text(kind.file)
        return parse_section_config(text, kind.types), digest(text)

    def write(self, kind, sections):
        self.store.write_text(kind.file, write_section_config(sections, kind.types))

    def typed(self, section):
        """Values as PVE returns them: integers and booleans become numbers."""
        out = {}
        for key, text in section.items():
            value = text
            if self.value_types.get(key) in ("integer", "boolean") and isinstance(value, str):
                value = int(value) if value.lstrip("-").isdigit() else value
            if key in LIST_KEYS and isinstance(value, str):
                value = ",".join(sorted(split_list(value)))
            if key == "dhcp-range" and isinstance(value, str):
                value = [dict(p.split("=", 1) for p in r.split(",")) for r in value.split("\n")]
            out[key] = value
        return out

    def running(self):
        return self.store.read_json("sdn/.running-config", {})

    def running_ids(self, kind):
        return self.running().get(kind.plural, {}).get("ids", {})

    # --- lock (PVE 9) --------------------------------------------------------------------

    def check_lock(self, params):
        """Every modifying call: with a lock held, only its token may change anything."""
        if not self.pve9:
            return
        held = self.store.read_text("sdn/.lock").strip()
        token = params.get("lock-token")
        if (held or token) and token != held:
            raise PveError(perl_die("invalid lock token provided!"))

    def in_lock(self, context, params, action):
        """PVE's lock_sdn_config: errors inside come back as '<context>: <error>'."""
        try:
            self.check_lock(params)
            return action()
        except PveError as err:
            raise err.wrapped(context) from None

    def lock(self, params):
        if self.store.read_text("sdn/.lock"):
            raise PveError("could not acquire lock for SDN config: " + perl_die("global SDN lock is already held"))
        if not params.get("allow-pending") and self.pending_changes():
            raise PveError("could not acquire lock for SDN config: configuration has pending changes")
        token = _uuid7()
        self.store.write_text("sdn/.lock", token)
        return token

    def unlock(self, params):
        held = self.store.read_text("sdn/.lock").strip()
        if not params.get("force") and params.get("lock-token") != held:
            raise PveError("could not release lock: " + perl_die("invalid lock token provided!"))
        self.store.write_text("sdn/.lock", "")

    def rollback(self, params):
        def restore():
            running = self.running()
            for kind in self.kinds.values():
                ids = running.get(kind.plural, {}).get("ids", {})
                sections = {ident: self._from_running(conf) for ident, conf in ids.items()}
                self.write(kind, sections)
            if params.get("lock-token") and params.get("release-lock", 1):
                self.store.write_text("sdn/.lock", "")

        return self.in_lock("could not rollback SDN configuration", params, restore)

    # --- pending versus running ----------------------------------------------------------

    def _to_running(self, kind, section):
        entry = self.typed(section)
        for key in LIST_KEYS:
            if key in entry:
                entry[key] = dict.fromkeys(split_list(entry[key]), 1)
        if kind.plural == "subnets":
            entry.pop("dhcp-range", None)
            if "dhcp-range" in section:
                entry["dhcp-range"] = section["dhcp-range"].split("\n")
        return entry

    def _from_running(self, conf):
        section = {}
        for key, value in conf.items():
            if isinstance(value, dict):
                section[key] = ",".join(sorted(value))
            elif isinstance(value, list):
                section[key] = "\n".join(value)
            else:
                section[key] = str(value)
        return section

    @staticmethod
    def _comparable(value):
        if isinstance(value, dict):
            return ",".join(sorted(value))
        if isinstance(value, list):
            return ",".join(str(v) for v in value)
        return str(value)

    def pending_changes(self):
        for kind in self.kinds.values():
            sections, _ = self.read(kind)
            if self._pending_view(kind, sections, self.running_ids(kind), only_changed=True):
                return True
        return False

    def _pending_view(self, kind, sections, running, only_changed=False):
        items = {}
        for ident in list(sections) + [i for i in running if i not in sections]:
            current = self._to_running(kind, sections[ident]) if ident in sections else None
            old = running.get(ident)
            if old is None:  # type (and a subnet's vnet) at the top, every other key pending
                top = {k: v for k, v in current.items() if k in ("type", "vnet")}
                pending = {k: self._pending_value(sections[ident], k) for k in sections[ident] if k not in top}
                item = dict(top, state="new", pending=pending)
            elif current is None:
                item = dict(self._running_item(old), state="deleted", pending={})
            else:
                pending = {}
                for key in set(current) | set(old):
                    if key not in current:
                        pending[key] = "deleted"
                    elif key not in old or self._comparable(current[key]) != self._comparable(old[key]):
                        pending[key] = self._pending_value(sections[ident], key)
                item = self._running_item(old)
                if pending:
                    item.update(state="changed", pending=pending)
            if only_changed and "state" not in item:
                continue
            items[ident] = item
        return items

    def _pending_value(self, section, key):
        """A configured value as the pending view shows it: typed, dhcp-range as its lines."""
        return section[key].split("\n") if key == "dhcp-range" else self.typed(section)[key]

    def _running_item(self, conf):
        return {k: (",".join(sorted(v)) if isinstance(v, dict) else v) for k, v in conf.items()}

    # --- reads ---------------------------------------------------------------------------

    def _item(self, kind, ident, conf, file_digest):
        """An object as the API lists it; no digest (null) in the pending and running views, and a
        subnet's dhcp-range always, parsed (pve-network's api_sdn_*_config helpers)."""
        item = dict(conf, **{kind.id_key: ident}, digest=file_digest)
        if kind.plural == "subnets":
            zone, network, mask = ident.rsplit("-", 2)[0], *ident.rsplit("-", 2)[1:]
            item.update(id=ident, subnet=ident, cidr=f"{network}/{mask}", zone=zone, network=network, mask=mask)
            item["dhcp-range"] = [
                dict(p.split("=", 1) for p in r.split(",")) if isinstance(r, str) else r
                for r in item.get("dhcp-range", [])
            ]
        return item

    def listing(self, kind, params, vnet=None):
        if params.get("running"):
            entries = {i: self._running_item(c) for i, c in self.running_ids(kind).items()}
            file_digest = None
        else:
            sections, file_digest = self.read(kind)
            if params.get("pending"):  # a merged view: PVE gives it no digest
                entries = self._pending_view(kind, sections, self.running_ids(kind))
                file_digest = None
            else:
                entries = {i: self.typed(s) for i, s in sections.items()}
        items = [self._item(kind, i, c, file_digest) for i, c in sorted(entries.items())]
        if params.get("type"):
            items = [i for i in items if i.get("type") == params["type"]]
        if vnet is not None:
            items = [i for i in items if i.get("vnet") == vnet]
        return items

    def get(self, kind, ident, params, vnet=None):
        for item in self.listing(kind, params):
            if item[kind.id_key] == ident:
                if vnet is not None and item.get("vnet") != vnet:
                    raise PveError.parameters({"vnet": "wrong vnet"})
                return item
        raise PveError(kind.missing(ident))

    # --- writes --------------------------------------------------------------------------

    def _check_type(self, kind, kind_type, params, create):
        if kind_type not in kind.types:
            raise PveError(f"pvesim: {kind.name} type '{kind_type}' is not emulated")
        spec = kind.types[kind_type]
        for key in params:
            if key not in spec["required"] and key not in spec["optional"]:
                raise PveError(f"unexpected property '{key}'")
        if create:
            for key in spec["required"]:
                if key not in params:
                    raise PveError(f"missing value for required option '{key}'")

    @staticmethod
    def _as_text(params):
        return {k: "\n".join(v) if isinstance(v, list) else str(v) for k, v in params.items()}

    def create(self, kind, params, vnet=None):
        params = dict(params)
        token = {"lock-token": params.pop("lock-token", None)}
        kind_type = params.pop("type", "vnet" if kind.plural == "vnets" else None)
        if kind.plural == "subnets":
            params["vnet"] = vnet
            ident = params.pop("subnet")
        else:
            ident = params.pop(kind.id_key)
        early = kind.plural in ("zones", "controllers")
        if early:  # checked before the lock: no context prefix
            self._check_type(kind, kind_type, params, create=True)

        def action():
            if not early:
                self._check_type(kind, kind_type, params, create=True)
            sections, _ = self.read(kind)
            final_id = self._subnet_id(ident, vnet) if kind.plural == "subnets" else ident
            if final_id in sections:
                raise PveError(f"sdn {kind.name} object ID '{final_id}' already defined")
            section = {"type": kind_type, **self._as_text(params)}
            self._on_update(kind, final_id, section, sections)
            sections[final_id] = section
            self.write(kind, sections)

        self.in_lock(f"create sdn {kind.name} object failed", token, action)

    def update(self, kind, ident, params):
        params = dict(params)
        token = {"lock-token": params.pop("lock-token", None)}
        params.pop(kind.id_key, None)
        if kind.plural == "subnets":
            params.pop("vnet", None)
        given_digest = params.pop("digest", None)
        deletes = split_list(params.pop("delete", ""))

        def action():
            sections, file_digest = self.read(kind)
            if ident not in sections:
                raise PveError(kind.missing(ident))
            if given_digest and given_digest != file_digest:
                raise PveError(MODIFIED)
            section = dict(sections[ident])
            spec = kind.types[section["type"]]
            self._check_type(kind, section["type"], params, create=False)
            for key in deletes:
                if key in params:
                    raise PveError(f"cannot set and delete property '{key}' at the same time!")
                if key in spec["required"]:
                    raise PveError(f"unable to delete required option '{key}'")
                if key not in spec["optional"]:
                    raise PveError(f"no such option '{key}'")
                section.pop(key, None)
            if kind.plural == "vnets" and "zone" in params and params["zone"] != section["zone"]:
                if any(s.get("vnet") == ident for s in self.read(self.kinds["subnets"])[0].values()):
                    raise PveError("can't change zone if subnets exist")
            section.update(self._as_text(params))
            self._on_update(kind, ident, section, sections)
            sections[ident] = section
            self.write(kind, sections)

        self.in_lock(f"update sdn {kind.name} object failed", token, action)

    def delete(self, kind, ident, params):
        def action():
            sections, _ = self.read(kind)
            if ident not in sections:
                raise PveError(kind.missing(ident))
            self._check_unused(kind, ident)
            del sections[ident]
            self.write(kind, sections)

        self.in_lock(f"delete sdn {kind.name} object failed", params, action)

    def _subnet_id(self, cidr, vnet):
        vnets, _ = self.read(self.kinds["vnets"])
        if vnet not in vnets:
            raise PveError(f"{vnet} don't exist")
        if "-" in cidr and "/" not in cidr:
            return cidr
        network = ipaddress.ip_interface(cidr)
        return f"{vnets[vnet]['zone']}-{network.ip}-{network.network.prefixlen}"

    def _check_unused(self, kind, ident):
        if kind.plural == "zones":
            for vnet_id, vnet in self.read(self.kinds["vnets"])[0].items():
                if vnet.get("zone") == ident:
                    raise PveError(perl_die(f"zone {ident} is used by vnet {vnet_id}"))
        elif kind.plural == "controllers":
            for zone_id, zone in self.read(self.kinds["zones"])[0].items():
                if zone.get("controller") == ident:
                    raise PveError(perl_die(f"controller {ident} is used by {zone_id}"))
        elif kind.plural == "vnets":
            if any(s.get("vnet") == ident for s in self.read(self.kinds["subnets"])[0].values()):
                raise PveError.parameters({"vnet": "Can't delete vnet if subnets exists"})

    # --- semantic checks (the plugins' on_update hooks) -----------------------------------

    def _on_update(self, kind, ident, section, sections):
        getattr(self, f"_check_{kind.plural}")(ident, section, sections)

    def _check_controllers(self, ident, section, sections):
        if section["type"] != "evpn":
            return
        others = [i for i, s in sections.items() if s["type"] == "evpn" and i != ident]
        if others:
            raise PveError(perl_die("only 1 global evpn controller can be defined"))
        if self.pve9 and ("peers" in section) == ("fabric" in section):
            raise PveError("must have exactly one of peers / fabric defined")

    def _check_zones(self, ident, section, sections):
        if section["type"] != "evpn":
            return
        controllers, _ = self.read(self.kinds["controllers"])
        controller = section["controller"]
        if controller not in controllers:
            raise PveError(perl_die(f"controller {controller} don't exist"))
        if controllers[controller]["type"] != "evpn":
            raise PveError(f"{controller} is not a evpn controller type")
        for other_id, other in sections.items():
            if other_id != ident and other.get("vrf-vxlan") == section["vrf-vxlan"]:
                raise PveError(f"vrf-vxlan {section['vrf-vxlan']} is already declared in {other_id}")
        if "mac" not in section:
            section["mac"] = "BC:24:11:" + ":".join(f"{random.randrange(256):02X}" for _ in range(3))

    def _check_vnets(self, ident, section, sections):
        zones, _ = self.read(self.kinds["zones"])
        zone = zones.get(section["zone"])
        if zone is None:
            raise PveError("unknown section type ''")
        tag = section.get("tag")
        if zone["type"] in ("evpn", "vxlan"):
            if tag is None:
                raise PveError.parameters({"tag": "missing vxlan tag"})
            if int(tag) > 16777216:
                raise PveError.parameters({"tag": "vxlan tag max value is 16777216"})
            if zone["type"] == "evpn" and section.get("vlanaware") in ("1",):
                raise PveError("vlan-aware option can't be enabled with evpn")
            for other_id, other in sections.items():
                other_zone = zones.get(other.get("zone"), {})
                if other_id != ident and other.get("tag") == tag and other_zone.get("type") in ("evpn", "vxlan"):
                    raise PveError.parameters(
                        {"tag": f"vxlan tag {tag} already exist in vnet {other_id} in zone {other['zone']} "}
                    )
        elif zone["type"] == "vlan":
            if tag is None:
                raise PveError.parameters({"tag": "missing vlan tag"})
            if int(tag) > 4096:
                raise PveError.parameters({"tag": "vlan tag max value is 4096"})
            for other_id, other in sections.items():
                if other_id != ident and other.get("zone") == section["zone"] and other.get("tag") == tag:
                    raise PveError.parameters({"tag": f"tag {tag} already exist in vnet {other_id}"})
        elif zone["type"] == "simple" and tag is not None:
            raise PveError.parameters({"tag": "vlan tag is not allowed on simple zone"})

    def _check_subnets(self, ident, section, sections):
        vnets, _ = self.read(self.kinds["vnets"])
        vnet = vnets.get(section["vnet"])
        if vnet is None:
            raise PveError(f"{section['vnet']} don't exist")
        if vnet.get("vlanaware") == "1":
            raise PveError("vlanaware vnet is not compatible with subnets")
        _, network, mask = ident.rsplit("-", 2)
        cidr = ipaddress.ip_network(f"{network}/{mask}", strict=False)
        gateway = section.get("gateway")
        if gateway and not (cidr.version == 4 and cidr.prefixlen == 32):
            if ipaddress.ip_address(gateway) not in cidr:
                raise PveError(f"{gateway} is not in subnet {network}/{mask}")

    # --- apply ---------------------------------------------------------------------------

    def apply(self, params):
        def commit():
            running = self.running()
            version = running.get("version", 0) + 1
            config = {"version": version}
            for kind in self.kinds.values():
                sections, _ = self.read(kind)
                config[kind.plural] = {"ids": {i: self._to_running(kind, s) for i, s in sections.items()}}
            if self.pve9:
                config["fabrics"] = {"ids": {}}
            self.store.write_json("sdn/.running-config", config)
            if params.get("lock-token") and params.get("release-lock", 1):
                self.store.write_text("sdn/.lock", "")
            return version

        self.in_lock("could not commit SDN config", params, commit)
        log = []
        for member in self.store.nodes():
            log.append(f"{member}: reloading network config")
            log += self._render(member)
        return self._upid("reloadnetworkall"), log + ["TASK OK"]

    def reload_network(self, node):
        """``PUT /nodes/{node}/network``: the node writes its interfaces.d/sdn and frr.conf from
        the running configuration and its own facts (what the apply's task runs on each node)."""
        if node not in self.store.nodes():
            raise PveError(f"no such cluster node '{node}'", exit_code=255)
        return self._upid("srvreload"), self._render(node) + ["TASK OK"]

    def _upid(self, task):
        node = self.api.node
        ticks = int(time.monotonic() * 100) & 0xFFFFFFFF
        return f"UPID:{node}:{os.getpid():08X}:{ticks:08X}:{int(time.time()):08X}:{task}::root@pam:"

    def _render(self, node):
        """What pve-network would write on ``node``: nodes/<node>/etc/network/interfaces.d/sdn
        and nodes/<node>/etc/frr/frr.conf under PVESIM_ROOT. Returns warnings for the task log."""
        config = self.running()
        if not render.evpn_zones(config, node):
            return []
        facts = self.store.read_json(f"nodes/{node}/network.json", {})
        local_ip = render.local_address(config, facts)
        if local_ip is None:
            return [f"{node}: no VTEP address (no route toward the first EVPN controller peer), nothing rendered"]
        route = render.route_get(facts, "8.8.8.8")  # pve-network's probe for the SNAT source
        outgoing = (route[1], route[0]) if route else None
        self.store.write_text(
            f"nodes/{node}/etc/network/interfaces.d/sdn", render.sdn_interfaces(config, node, local_ip, outgoing)
        )
        self.store.write_text(
            f"nodes/{node}/etc/frr/frr.conf", render.frr_config(config, node, local_ip, self.api.schema.version)
        )
        return []


def _uuid7():
    """A UUIDv7 (time-ordered), as PVE's lock token."""
    millis = int(time.time() * 1000)
    rand = uuid.uuid4().int & ((1 << 74) - 1)
    value = (millis << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))
