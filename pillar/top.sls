# Every minion sees the federation: node roles are computed from it (evpn execution module).
base:
  '*':
    - evpn
