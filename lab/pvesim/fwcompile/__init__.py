"""
The firewall one node of an emulated cluster loads, compiled the way its PVE version does:
pve-firewall (iptables and ipset) unless the node's host.fw says ``nftables: 1``, then
proxmox-firewall (nftables). ``compile_node`` returns what the node's firewall daemons would run,
as commands a lab node executes in order (lab/README.md, "pvesim: the firewall compiler").

Inputs: the cluster folder (PVESIM_ROOT: firewall/cluster.fw, nodes/<node>/host.fw,
sdn/.running-config, the IPAM state, corosync.conf), the node's facts (``facts.gather``) and the
netfilter state it currently has (``facts.netfilter_state``), because both daemons update
relative to what is loaded: pve-firewall rewrites only the chains and sets that changed,
proxmox-firewall deletes the group chains it finds.
"""

import json
import pathlib

from pvesim.fwcompile import proxmox_firewall, pve_firewall, sdn_ipsets
from pvesim.fwcompile.system import PerlDie, data_text, parse_corosync

# The firewall packages of each emulated PVE release (debian/changelog dates against the
# pve-manager X.Y.0 bump; SOURCE.md section 6): pve-firewall, proxmox-firewall, and the
# proxmox-ve-config its Cargo.toml pins.
RELEASES = {
    "8.4": {"pve-firewall": (5, 1, 1), "proxmox-firewall": (0, 7, 1), "proxmox-ve-config": (0, 2, 3)},
    "9.1": {"pve-firewall": (6, 0, 4), "proxmox-firewall": (1, 2, 2), "proxmox-ve-config": (0, 5, 0)},
}
NFT_TABLES = ("inet", "proxmox-firewall"), ("bridge", "proxmox-firewall-guests")
BRIDGE_SYSCTLS = ["net.bridge.bridge-nf-call-iptables=1", "net.bridge.bridge-nf-call-ip6tables=1"]


def _text(version):
    return ".".join(str(part) for part in version)


def read_cluster(root, node):
    """The files both daemons read, as text: "" for an absent cluster.fw or host.fw, None for
    the others."""
    root = pathlib.Path(root)

    def read(*relative):
        for path in relative:
            if (root / path).is_file():
                return (root / path).read_text()
        return None

    return {
        "cluster.fw": read("firewall/cluster.fw") or "",
        "host.fw": read(f"nodes/{node}/host.fw") or "",
        "running-config": read("sdn/.running-config"),
        "ipam": read("sdn/pve-ipam-state.json", "priv/ipam.db"),
        "corosync.conf": read("corosync.conf"),
    }


def compile_node(root, node, version, facts=None, state=None):
    """What ``node`` of the cluster at ``root``, running PVE ``version``, loads. ``facts`` and
    ``state`` as ``facts.gather`` and ``facts.netfilter_state`` return them (absent: a node that
    knows nothing and has nothing loaded). The result:

    - ``backend``: "iptables", "nftables", or None while the cluster firewall is off
    - ``outcome``: "load", "disabled", "refused-keep-previous" (the parser refused; what the node
      had stays), "refused-nothing" (refused, and the node has no ruleset of that backend) or
      "refused-skeleton" (proxmox-firewall parsed but could not generate: only its base ruleset
      is reloaded, generated chains keep their previous content)
    - ``message``: the daemon's error for a refusal, else None
    - ``warnings``: pve-firewall's per-line messages (lines and rules it dropped)
    - ``adaptations``: what differs from PVE because of this machine's kernel, and why
    - ``versions``: the emulated pve-firewall and proxmox-firewall versions
    - ``load``: [{"argv": [...], "stdin": "..."}], to run in order
    """
    if version not in RELEASES:
        raise ValueError(f"no firewall compiler for PVE {version!r} (known: {', '.join(RELEASES)})")
    release = RELEASES[version]
    facts, state = facts or {}, state or {}
    files = read_cluster(root, node)
    result = {
        "backend": None,
        "outcome": "load",
        "message": None,
        "warnings": [],
        "adaptations": [],
        "versions": {name: _text(release[name]) for name in ("pve-firewall", "proxmox-firewall")},
        "load": [],
    }
    warnings = result["warnings"]
    sdn = perl_sdn_sets(files, warnings)
    cluster = pve_firewall.generic_fw_config_parser(
        "/etc/pve/firewall/cluster.fw", files["cluster.fw"], None, "cluster", warnings, sdn
    )
    host = pve_firewall.generic_fw_config_parser(
        f"/etc/pve/nodes/{node}/host.fw", files["host.fw"], cluster, "host", warnings
    )
    enabled = cluster["options"].get("enable")
    nftables = host.get("options", {}).get("nftables")
    try:
        pve_firewall.log_ratelimit(cluster["options"])
    except PerlDie as err:
        # load_clusterfw_conf dies: pve-firewall's whole update fails, proxmox-firewall goes on
        if not (enabled and nftables):
            return _refused(result, "iptables" if enabled else None, f"pve-firewall: {err}", state)
        warnings.append(f"pve-firewall: {err}")
        result["backend"] = "nftables"
        return proxmox_firewall_load(result, files, facts, state, release)
    if not enabled:
        result["outcome"] = "disabled"
        result["load"] = remove_pve_firewall(state) + remove_proxmox_firewall()
        return result
    if not nftables:
        result["backend"] = "iptables"
        result["load"] = remove_proxmox_firewall() + pve_firewall_load(
            cluster, host, node, facts, files, release["pve-firewall"], state, warnings
        )
        return result
    result["backend"] = "nftables"
    result["load"] = remove_pve_firewall(state)
    return proxmox_firewall_load(result, files, facts, state, release)


def perl_sdn_sets(files, warnings):
    """load_sdn_conf: the SDN and IPAM sets as pve-firewall sees them; an error is a warning."""
    ipset = {}
    try:
        if files["running-config"] is not None:
            ipset.update(sdn_ipsets.vnet_ipsets(files["running-config"]))
        if files["ipam"] is not None:
            ipset.update(sdn_ipsets.ipam_ipsets(files["ipam"]))
    except sdn_ipsets.SdnError as err:
        warnings.append(str(err))
        return {"ipset": {}}
    return {"ipset": {name: sdn_ipsets.perl_entries(entries) for name, entries in ipset.items()}}


def pve_firewall_load(cluster, host, node, facts, files, release, state, warnings):
    """``update`` of pve-firewall: compile, then the restore commands apply_ruleset runs."""
    corosync = parse_corosync(files["corosync.conf"]) if files["corosync.conf"] else None
    compiler = pve_firewall.Compiler(cluster, host, node, facts, corosync, release)
    rulesets = {version: compiler.ruleset(version) for version in (4, 6)}
    ipsets = compiler.ipsets()
    warnings += compiler.messages
    create, delete = pve_firewall.ipset_cmdlist(ipsets, state.get("ipset"))
    steps = [
        {"argv": ["sysctl", "-q", "-w", *BRIDGE_SYSCTLS, "net.ipv4.tcp_syncookies=1"], "stdin": ""},
        {"argv": ["ipset", "restore"], "stdin": create},
    ]
    for version, tool in ((4, "iptables"), (6, "ip6tables")):
        for table in ("filter", "raw"):
            save = state.get(tool)
            stdin = pve_firewall.ruleset_cmdlist(rulesets[version][table], save, table)
            steps.append({"argv": [f"{tool}-legacy-restore", "-T", table, "-n"], "stdin": stdin})
    if delete:
        steps.append({"argv": ["ipset", "restore"], "stdin": delete})
    return steps


def remove_pve_firewall(state):
    """remove_pvefw_chains: what pve-firewall runs while it is not the active backend."""
    steps = [
        {
            "argv": [f"{tool}-legacy-restore", "-T", table, "-n"],
            "stdin": pve_firewall.remove_chains_cmdlist(state.get(tool), table),
        }
        for tool in ("iptables", "ip6tables")
        for table in ("filter", "raw")
    ]
    ipsets = pve_firewall.remove_ipsets_cmdlist(state.get("ipset"))
    if ipsets:
        steps.append({"argv": ["ipset", "restore"], "stdin": ipsets})
    return steps


def remove_proxmox_firewall():
    """remove_firewall of proxmox-firewall (deleting both tables, errors ignored) as one batch
    that also succeeds when they do not exist."""
    commands = []
    for family, name in NFT_TABLES:
        table = {"table": {"family": family, "name": name}}
        commands += [{"add": table}, {"delete": table}]
    return [{"argv": ["nft", "-j", "-f", "-"], "stdin": _nft_json({"nftables": commands})}]


def proxmox_firewall_load(result, files, facts, state, release):
    parser = proxmox_firewall.ConfigParser(release["proxmox-ve-config"])
    try:
        cluster = parser.config(files["cluster.fw"], "cluster")
        host = parser.config(files["host.fw"], "host")
        sdn = sdn_ipsets.vnet_ipsets(files["running-config"]) if files["running-config"] is not None else None
        ipam = sdn_ipsets.ipam_ipsets(files["ipam"]) if files["ipam"] is not None else None
    except (proxmox_firewall.ParseError, sdn_ipsets.SdnError) as err:
        return _refused(result, "nftables", f"error updating firewall rules: {err}", state)
    if not (cluster["options"].get("enable") and host["options"].get("nftables")):
        result["outcome"] = "disabled"
        result["load"] += remove_proxmox_firewall()
        return result
    base = data_text(f"proxmox-firewall-{_text(release['proxmox-firewall'])}.nft")
    chains = {c["name"]: (c["family"], c["table"]) for c in state.get("nft_chains", [])}
    generator = proxmox_firewall.Generator(release, cluster, host, facts, chains, sdn, ipam)
    try:
        batch = generator.full_host_fw()
        undefined = proxmox_firewall.undefined_references(base, batch)
        if undefined:
            result["warnings"].append(f"nft refuses the batch: {undefined}")
            raise proxmox_firewall.GenerationError("cannot execute nftables commands")
    except proxmox_firewall.GenerationError as err:
        result["outcome"] = "refused-keep-previous" if _has_tables(state) else "refused-skeleton"
        result["message"] = f"error updating firewall rules: {err}"
        batch = None
    if facts.get("nft_bridge", True) is False:
        base, batch = proxmox_firewall.without_bridge_table(base, batch)
        result["adaptations"].append(
            "the bridge table proxmox-firewall-guests (guest and vnet firewalls) is left out: this kernel's "
            f"nftables refuses it ({facts.get('nft_bridge_error', 'no bridge reject, conntrack or meta')})"
        )
    result["load"].append({"argv": ["nft", "-f", "-"], "stdin": base})
    if batch is not None:
        result["load"].append({"argv": ["nft", "-j", "-f", "-"], "stdin": _nft_json(batch)})
    return result


def _refused(result, backend, message, state):
    result["backend"] = backend
    if backend == "nftables":
        previous = _has_tables(state)
    else:
        previous = bool(pve_firewall.iptables_get_chains(state.get("iptables"), "filter")[0])
    result["outcome"] = "refused-keep-previous" if previous else "refused-nothing"
    result["message"] = message
    return result


def _has_tables(state):
    return any(chain.get("table") == NFT_TABLES[0][1] for chain in state.get("nft_chains", []))


def _nft_json(batch):
    """serde_json::to_vec of the Commands: compact JSON."""
    return json.dumps(batch, separators=(",", ":"))
