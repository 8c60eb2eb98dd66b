# Minions that are not nodes of the federation get a notice from evpn and nothing else.
base:
  '*':
    - evpn
