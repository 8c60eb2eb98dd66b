"""Federations for tests and benchmarks: the lab's example pillar (lab/pillar), and generated ones."""

import pathlib

import salt.utils.dictupdate
import yaml

from topology import DEFAULT_PILLAR as PILLAR

REPO = pathlib.Path(__file__).resolve().parents[2]


def example_federation():
    """The ``evpn`` pillar of the lab's example federation (lab/pillar/evpn: sites roz and wro),
    merged as Salt merges its includes."""
    merged = {}
    for sls in [PILLAR / "evpn" / "init.sls", *sorted((PILLAR / "evpn" / "sites").glob("*.sls"))]:
        data = yaml.safe_load(sls.read_text())
        data.pop("include", None)
        merged = salt.utils.dictupdate.merge(merged, data)
    return merged["evpn"]


def generated_federation(sites, nodes_per_site, vnets_per_site=1):
    """
    A valid federation of ``sites`` sites (at most 250) with ``nodes_per_site`` nodes and
    ``vnets_per_site`` vnets (at most 99) each: site i has WireGuard range 10.<i+1>.0.0/24 and
    vnets ``v<i><j>`` with VNI 20000+100*i+j and SDN subnet 10.<i+1>.<j+1>.0/24.
    """
    federation = {
        "asn": 65000,
        "controller": "evpnctl",
        "zone": {"id": "evpn", "vrf_vxlan": 10000},
        "sites": {},
    }
    for i in range(sites):
        octet = i + 1
        federation["sites"][f"s{i:03d}"] = {
            "network": f"10.{octet}.0.0/24",
            "nodes": {
                f"pve-s{i:03d}-{k}": {
                    "address": f"10.{octet}.0.{k + 1}",
                    "endpoint": f"n{k}.s{i:03d}.example.net",
                }
                for k in range(nodes_per_site)
            },
            "vnets": {
                f"v{i:03d}{j:02d}": {
                    "tag": 20000 + 100 * i + j,
                    "subnets": {f"10.{octet}.{j + 1}.0/24": {"gateway": f"10.{octet}.{j + 1}.1", "snat": True}},
                }
                for j in range(vnets_per_site)
            },
        }
    return federation
