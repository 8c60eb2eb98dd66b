"""The lab's sites, as the pillar describes them (the checkout's pillar has roz and wro; KRK is
the third site's pillar file, which the lab, the tests and the benchmarks add)."""

# One node per site, as in the pillar (pillar/evpn/sites/ and KRK below): public address, DNS
# name, WireGuard address, and the VM on the site's vnet (vnet, address, gateway); the router
# MAC of the node's L3 VNI bridge.
SITES = {
    "roz": {
        "node": "pve-roz1",
        "public": "203.0.113.11",
        "name": "roz.example.net",
        "address": "10.1.0.1",
        "vm": ("roz1", "10.1.1.10/24", "10.1.1.1"),
        "router_mac": "02:00:00:00:01:01",
    },
    "wro": {
        "node": "pve-wro1",
        "public": "203.0.113.12",
        "name": "wro.dyndns.example.org",
        "address": "10.2.0.1",
        "vm": ("wro1", "10.2.1.10/24", "10.2.1.1"),
        "router_mac": "02:00:00:00:02:01",
    },
    "krk": {
        "node": "pve-krk1",
        "public": "203.0.113.13",
        "name": "krk.example.net",
        "address": "10.3.0.1",
        "vm": ("krk1", "10.3.1.10/24", "10.3.1.1"),
        "router_mac": "02:00:00:00:03:01",
    },
}
KRK = {
    "evpn": {
        "sites": {
            "krk": {
                "network": "10.3.0.0/24",
                "nodes": {"pve-krk1": {"address": "10.3.0.1", "endpoint": "krk.example.net"}},
                "vnets": {"krk1": {"tag": 13001, "subnets": {"10.3.1.0/24": {"gateway": "10.3.1.1", "snat": True}}}},
            }
        }
    }
}
