"""
The API of one node of one cluster: a call is (method, concrete path, parameters). Parameters
are checked against the real schema of the selected PVE version before any handler runs; the
handlers then apply PVE's semantic rules. This is the library that lab/bin/pvesh wraps.
"""

import fnmatch
import json
import os

from pvesim.errors import PveError
from pvesim.firewall import Firewall
from pvesim.schema import Schema, check_parameters
from pvesim.sdn import Sdn
from pvesim.store import Store

# PVE's own methods outside the SDN and firewall schema that the emulator answers:
# GET /version, and PUT /nodes/{node}/network (pve-manager API2/Network.pm reload_network_config:
# what an SDN apply runs on every node of the cluster, here also what the lab runs on each node).
OWN_METHODS = {
    ("GET", "/version"): {"parameters": {"properties": {}}, "returns": {"type": "object"}},
    ("PUT", "/nodes/{node}/network"): {
        "parameters": {
            "properties": {
                "node": {"type": "string", "format": "pve-node"},
                "regenerate-frr": {"type": "boolean", "optional": 1},
            }
        },
        "returns": {"type": "string"},
    },
}


class Api:
    def __init__(self, root, node, version="9.1", facts=None):
        self.schema = Schema(version)
        self.facts = facts  # the node's addresses and default route (pvesh reads them; tests may not)
        self.store = Store(root)
        self.node = node
        self.sdn = Sdn(self)
        sdn = self.sdn
        kinds = sdn.kinds
        self.routes = {
            ("GET", "/cluster/sdn"): lambda p: [{"id": i} for i in self._sdn_index()],
            ("PUT", "/cluster/sdn"): sdn.apply,
            ("POST", "/cluster/sdn/lock"): sdn.lock,
            ("DELETE", "/cluster/sdn/lock"): sdn.unlock,
            ("POST", "/cluster/sdn/rollback"): sdn.rollback,
            ("GET", "/cluster/sdn/vnets/{vnet}/subnets"): lambda p: sdn.listing(kinds["subnets"], p, vnet=p["vnet"]),
            ("POST", "/cluster/sdn/vnets/{vnet}/subnets"): lambda p: sdn.create(kinds["subnets"], p, vnet=p["vnet"]),
            ("GET", "/cluster/sdn/vnets/{vnet}/subnets/{subnet}"): lambda p: sdn.get(
                kinds["subnets"], p["subnet"], p, vnet=p["vnet"]
            ),
            ("PUT", "/cluster/sdn/vnets/{vnet}/subnets/{subnet}"): lambda p: sdn.update(
                kinds["subnets"], p["subnet"], p
            ),
            ("DELETE", "/cluster/sdn/vnets/{vnet}/subnets/{subnet}"): lambda p: sdn.delete(
                kinds["subnets"], p["subnet"], p
            ),
        }
        for plural in ("controllers", "zones", "vnets"):
            kind = kinds[plural]
            item = f"/cluster/sdn/{plural}/{{{kind.id_key}}}"
            self.routes.update(
                {
                    ("GET", f"/cluster/sdn/{plural}"): lambda p, k=kind: sdn.listing(k, p),
                    ("POST", f"/cluster/sdn/{plural}"): lambda p, k=kind: sdn.create(k, p),
                    ("GET", item): lambda p, k=kind: sdn.get(k, p[k.id_key], p),
                    ("PUT", item): lambda p, k=kind: sdn.update(k, p[k.id_key], p),
                    ("DELETE", item): lambda p, k=kind: sdn.delete(k, p[k.id_key], p),
                }
            )
        self.firewall = Firewall(self)
        self.routes.update(self._firewall_routes())
        # Only what this version's API has (no lock or rollback on 8.4).
        self.routes = {key: handler for key, handler in self.routes.items() if self.schema.method(key[1], key[0])}
        self.routes[("GET", "/version")] = lambda p: {
            "release": self.schema.version,
            "version": f"{self.schema.version}.0",
            "repoid": "pvesim",
        }
        self.routes[("PUT", "/nodes/{node}/network")] = lambda p: sdn.reload_network(p["node"])

    def _firewall_routes(self):
        fw = self.firewall
        routes = {
            ("GET", "/cluster/firewall/groups"): fw.list_groups,
            ("POST", "/cluster/firewall/groups"): fw.create_group,
            ("DELETE", "/cluster/firewall/groups/{group}"): lambda p: fw.delete_group(p["group"]),
            ("GET", "/cluster/firewall/ipset"): fw.list_ipsets,
            ("POST", "/cluster/firewall/ipset"): fw.create_ipset,
            ("GET", "/cluster/firewall/ipset/{name}"): lambda p: fw.list_entries(p["name"]),
            ("POST", "/cluster/firewall/ipset/{name}"): lambda p: fw.add_entry(p["name"], p),
            ("DELETE", "/cluster/firewall/ipset/{name}"): lambda p: fw.delete_ipset(p["name"], p),
            ("GET", "/cluster/firewall/ipset/{name}/{cidr}"): lambda p: fw.get_entry(p["name"], p["cidr"]),
            ("PUT", "/cluster/firewall/ipset/{name}/{cidr}"): lambda p: fw.update_entry(p["name"], p["cidr"], p),
            ("DELETE", "/cluster/firewall/ipset/{name}/{cidr}"): lambda p: fw.delete_entry(p["name"], p["cidr"], p),
            ("GET", "/cluster/firewall/aliases"): fw.list_aliases,
            ("POST", "/cluster/firewall/aliases"): fw.create_alias,
            ("GET", "/cluster/firewall/aliases/{name}"): lambda p: fw.get_alias(p["name"]),
            ("PUT", "/cluster/firewall/aliases/{name}"): lambda p: fw.update_alias(p["name"], p),
            ("DELETE", "/cluster/firewall/aliases/{name}"): lambda p: fw.delete_alias(p["name"]),
            ("GET", "/cluster/firewall/options"): lambda p: fw.get_options(),
            ("PUT", "/cluster/firewall/options"): fw.set_options,
            ("GET", "/nodes/{node}/firewall/options"): lambda p: fw.get_options(p["node"]),
            ("PUT", "/nodes/{node}/firewall/options"): lambda p: fw.set_options(p, p["node"]),
        }
        # The three rule lists share one set of handlers: (collection, scope, where).
        for collection, scope, where in (
            ("/cluster/firewall/rules", "cluster", lambda p: {}),
            ("/cluster/firewall/groups/{group}", "group", lambda p: {"group": p["group"]}),
            ("/nodes/{node}/firewall/rules", "host", lambda p: {"node": p["node"]}),
        ):
            item = "/cluster/firewall/groups/{group}/{pos}" if scope == "group" else f"{collection}/{{pos}}"
            routes.update(
                {
                    ("GET", collection): lambda p, s=scope, w=where: fw.list_rules(s, **w(p)),
                    ("POST", collection): lambda p, s=scope, w=where: fw.create_rule(s, p, **w(p)),
                    ("GET", item): lambda p, s=scope, w=where: fw.get_rule(s, p["pos"], **w(p)),
                    ("PUT", item): lambda p, s=scope, w=where: fw.update_rule(s, p["pos"], p, **w(p)),
                    ("DELETE", item): lambda p, s=scope, w=where: fw.delete_rule(s, p["pos"], p, **w(p)),
                }
            )
        return routes

    def _sdn_index(self):
        names = ["vnets", "zones", "controllers", "ipams", "dns"]
        return names + (["fabrics"] if "/cluster/sdn/fabrics" in self.schema.paths else [])

    def endpoint(self, method, path):
        """(template, path parameters, method schema); PveError exit 1 when PVE has none."""
        for (own_method, template), method_schema in OWN_METHODS.items():
            names = template.strip("/").split("/")
            parts = path.strip("/").split("/")
            if own_method == method and len(names) == len(parts):
                values = {n[1:-1]: v for n, v in zip(names, parts, strict=True) if n.startswith("{")}
                if all(n == v for n, v in zip(names, parts, strict=True) if not n.startswith("{")):
                    return template, values, method_schema
        template, path_params = self.schema.resolve(path)
        method_schema = self.schema.method(template, method) if template else None
        if method_schema is None:
            command = {"GET": "get", "PUT": "set", "POST": "create", "DELETE": "delete"}[method]
            raise PveError(f"No '{command}' handler defined for '{path}'", exit_code=1)
        return template, path_params, method_schema

    def call(self, method, path, params=None):
        """Run one call; returns the handler's result. Raises PveError as pvesh would fail."""
        template, path_params, method_schema = self.endpoint(method, path)
        params = check_parameters(method_schema, {**(params or {}), **path_params})
        handler = self.routes.get((method, template))
        if handler is None:
            raise PveError(f"pvesim does not emulate {method} {template}")
        with self.store.locked():
            self.store.join(self.node, self.facts)
            inject_failure(self.store, method, path)
            return handler(params)


def inject_failure(store, method, path, spec=None):
    """
    PVESIM_FAIL: comma-separated ``METHOD:PATH:N`` rules; the Nth call (counted across
    processes, per rule) whose method matches and whose path matches PATH (a glob) fails like a
    PVE handler error. Example: ``POST:/cluster/sdn/vnets:2,PUT:/cluster/sdn:1``.
    """
    spec = os.environ.get("PVESIM_FAIL", "") if spec is None else spec
    if not spec:
        return
    counts = store.read_json(".pvesim-fail-counts.json", {})
    failing = None
    for rule in filter(None, spec.split(",")):
        rule_method, rest = rule.split(":", 1)
        rule_path, nth = rest.rsplit(":", 1)
        if rule_method.upper() == method and fnmatch.fnmatchcase(path, rule_path):
            counts[rule] = counts.get(rule, 0) + 1
            if counts[rule] == int(nth):
                failing = rule
    store.write_text(".pvesim-fail-counts.json", json.dumps(counts))
    if failing:
        raise PveError(f"pvesim: injected failure of {method} {path} (PVESIM_FAIL rule {failing})")
