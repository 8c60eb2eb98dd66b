{#- The last step of orch.evpn: this node's tunnels to every other node carry handshakes. Not
    part of `evpn` itself, which converges without waiting for the other nodes. #}
{%- from tpldir ~ "/map.jinja" import evpn, node, missing with context %}
{%- if missing %}

include:
  - .pve
{%- elif node is not none %}

evpn-verify-wireguard:
  wireguard.handshakes_recent:
    - name: {{ evpn.wireguard.interface }}
    - peers: {{ salt['evpn.wireguard_peers']() | map(attribute='name') | list | json }}
{%- endif %}
