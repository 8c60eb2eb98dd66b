# The federation-wide settings. Each site is one file in evpn/sites/: adding a site is adding
# a file there (it is picked up by the include below, no other file changes).
include:
  - evpn.sites.*

evpn:
  asn: 65000
  controller: evpnctl
  zone:
    id: evpn
    vrf_vxlan: 10000
    advertise_subnets: true
