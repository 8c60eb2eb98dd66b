{#- This node's WireGuard interface (evpn.wireguard_interface): every other node of the federation
    as a peer, its public key from the mine (a peer whose key is not there yet is left out until a
    later run), its endpoint resolved by the state at run time. A key made here is published at
    once. On systemd hosts (every PVE node) wg-quick brings the persisted configuration back after
    a reboot. #}
{%- from tpldir ~ "/map.jinja" import node, missing with context %}
{%- if missing %}

include:
  - .pve
{%- elif node is not none %}
{%- set wireguard = salt['evpn.wireguard_interface'](public_keys=salt['mine.get']('*', 'wireguard_public_keys')) %}

include:
  - .packages

evpn-wireguard:
  wireguard.interface_present:
    - name: {{ wireguard.interface }}
    - address: {{ wireguard.address }}
    - port: {{ wireguard.port }}
    - mtu: {{ wireguard.mtu }}
    - peers: {{ wireguard.peers | json }}
    - require:
      - pkg: evpn-packages

evpn-wireguard-publish-key:
  module.run:
    - mine.update: []
    - onchanges:
      - wireguard: evpn-wireguard
{%- if grains.get('init') == 'systemd' %}

evpn-wireguard-at-boot:
  service.enabled:
    - name: wg-quick@{{ wireguard.interface }}
    - require:
      - wireguard: evpn-wireguard
{%- endif %}
{%- endif %}
