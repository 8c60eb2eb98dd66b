"""
`make lab PILLAR=<dir> TOPOLOGY=<file>`: a federation other than the default, as a user would
rehearse theirs: three sites, ams with three nodes of one PVE 8.4 cluster behind a single NAT
router (three forwarded ports, two exit nodes, the first primary), ber behind a NAT router with
a dynamic address on PVE 9.1, cph a rented server on a public address, plus a stretched vnet.
It passes the same proof as the default (every guest to every other and to www), and a
topology the lab cannot emulate is refused before anything is made.
"""

import pytest
import yaml

from support.federation import REPO
from support.labrun import LabRun

pytestmark = pytest.mark.usefixtures("lab_host")
evpnlab = LabRun("lo")

PILLAR = {
    # The checkout's federation-wide file (include, mine, beacon) with this federation's settings.
    "init.sls": {
        **yaml.safe_load((REPO / "pillar" / "evpn" / "init.sls").read_text()),
        "evpn": {
            "asn": 65100,
            "controller": "fed",
            "zone": {"id": "fed", "vrf_vxlan": 20000, "advertise_subnets": True},
            "vnets": {"shared": {"tag": 29001, "subnets": {"10.99.0.0/24": {"gateway": "10.99.0.1"}}}},
        },
    },
    "sites/ams.sls": {
        "evpn": {
            "sites": {
                "ams": {
                    "network": "10.11.0.0/24",
                    "exit_nodes": ["pve-ams1", "pve-ams2"],
                    "primary_exit_node": "pve-ams1",
                    "nodes": {
                        f"pve-ams{i}": {
                            "address": f"10.11.0.{i}",
                            "endpoint": f"ams.example.net:{51820 + i - 1}",
                            "lan_endpoint": f"10.0.11.{10 + i}",
                        }
                        for i in (1, 2, 3)
                    },
                    "vnets": {
                        "ams1": {"tag": 21001, "subnets": {"10.11.1.0/24": {"gateway": "10.11.1.1", "snat": True}}}
                    },
                }
            }
        }
    },
    "sites/ber.sls": {
        "evpn": {
            "sites": {
                "ber": {
                    "network": "10.12.0.0/24",
                    "nodes": {"pve-ber1": {"address": "10.12.0.1", "endpoint": "ber.dyn.example.org"}},
                    "vnets": {
                        "ber1": {"tag": 22001, "subnets": {"10.12.1.0/24": {"gateway": "10.12.1.1", "snat": True}}}
                    },
                }
            }
        }
    },
    "sites/cph.sls": {
        "evpn": {
            "sites": {
                "cph": {
                    "network": "10.13.0.0/24",
                    "nodes": {"pve-cph1": {"address": "10.13.0.1", "endpoint": "198.51.100.40"}},
                    "vnets": {
                        "cph1": {"tag": 23001, "subnets": {"10.13.1.0/24": {"gateway": "10.13.1.1", "snat": True}}}
                    },
                }
            }
        }
    },
}
TOPOLOGY = {
    "internet": {"dns": "198.51.100.53", "master": "198.51.100.5", "www": "203.0.113.80"},
    "sites": {
        "ams": {
            "pve": "8.4",
            "routers": [{"wan": "203.0.113.40", "lan": "10.0.11.0/24"}],
            "nodes": {
                "pve-ams1": {"lan": "10.0.11.11", "guests": {"ams1": "10.11.1.10", "shared": "10.99.0.11"}},
                "pve-ams2": {"lan": "10.0.11.12", "guests": {"ams1": "10.11.1.11"}},
                "pve-ams3": {"lan": "10.0.11.13", "guests": {"ams1": "10.11.1.12"}},
            },
        },
        "ber": {
            "pve": "9.1",
            "routers": [{"wan": "198.51.100.41", "lan": "192.168.178.0/24", "dynamic": True}],
            "nodes": {"pve-ber1": {"lan": "192.168.178.20", "guests": {"ber1": "10.12.1.10", "shared": "10.99.0.21"}}},
        },
        "cph": {"pve": "9.1", "nodes": {"pve-cph1": {"public": "198.51.100.40", "guests": {"cph1": "10.13.1.10"}}}},
    },
}


def write(tmp_path, topology):
    pillar = tmp_path / "pillar"
    for name, document in PILLAR.items():
        path = pillar / "evpn" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(document))
    (pillar / "top.sls").write_text("base:\n  '*':\n    - evpn\n")
    (tmp_path / "topology.yaml").write_text(yaml.safe_dump(topology))
    return pillar, tmp_path / "topology.yaml"


def test_a_federation_of_three_sites_builds_and_passes_the_proof(tmp_path):
    pillar, topology = write(tmp_path, TOPOLOGY)
    try:
        up = evpnlab("up", "--pillar", str(pillar), "--topology", str(topology))
        assert up.returncode == 0, up.stdout + up.stderr
        assert "every check passed" in up.stdout
        matrix = [line for line in up.stdout.splitlines() if line.startswith(("10.11.", "10.12.", "10.13.", "10.99."))]
        assert len(matrix) == 7 and not any("FAIL" in line for line in matrix), matrix
        # Guests of SNAT subnets on exit nodes reach www as their site: ams's two exit nodes both
        # through its router.
        assert sum("ok (203.0.113.40)" in line for line in matrix) == 2
        assert any("ok (198.51.100.41)" in line for line in matrix)
        assert any("ok (198.51.100.40)" in line for line in matrix)
    finally:
        evpnlab.down_leaves_nothing()


def test_what_the_lab_cannot_emulate_is_refused_before_anything_is_made(tmp_path):
    topology = yaml.safe_load(yaml.safe_dump(TOPOLOGY))
    topology["sites"]["cph"]["nodes"]["pve-cph1"]["public"] = "198.51.100.44"
    pillar, path = write(tmp_path, topology)
    refused = evpnlab("up", "--pillar", str(pillar), "--topology", str(path))
    assert refused.returncode != 0
    assert (
        "pillar:evpn:sites:cph:nodes:pve-cph1:endpoint: 198.51.100.40 is not the public address this node has in "
        "the lab (198.51.100.44)" in refused.stderr
    )
    assert not evpnlab.state.exists()
    evpnlab.down_leaves_nothing()
