# The federation-wide settings. Each site is one file in evpn/sites/: adding a site is adding
# a file there (it is picked up by the include below, no other file changes).
include:
  - evpn.sites.*

# Each node publishes its WireGuard public keys (never a private one) for its peers, by
# interface: the model takes the key of evpn:wireguard:interface, so nothing here names it.
mine_functions:
  wireguard_public_keys:
    - mine_function: wireguard.public_keys

# Endpoints that move: every node resolves the federation's endpoint names every `interval`
# seconds, re-points its own peers when an answer changes, and tells the master, whose reactor
# has every other node do the same at once (_beacons/evpn_endpoint.py, reactor/). The beacon
# does nothing on minions that are not nodes. Lower the interval to heal faster, at the cost of
# one DNS query per name per interval on every node.
beacons:
  evpn_endpoint:
    - interval: 5

evpn:
  asn: 65000
  controller: evpnctl
  zone:
    id: evpn
    vrf_vxlan: 10000
    advertise_subnets: true
