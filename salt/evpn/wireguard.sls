{#- This node's WireGuard interface: every other node of the federation as a peer, its public key
    from the mine (a peer whose key is not there yet is left out until a later run), its endpoint
    resolved by the state at run time. A key made here is published at once. On systemd
    hosts (every PVE node) wg-quick brings the persisted configuration back after a reboot. #}
{%- from tpldir ~ "/map.jinja" import evpn, node with context %}
{%- if node is not none %}

include:
  - .packages
{%- set keys = salt['mine.get'](salt['evpn.members']() | join(','), 'wireguard_public_key', tgt_type='list') %}
{%- set peers = [] %}
{%- for peer in salt['evpn.wireguard_peers']() %}
{%- do peers.append({
      'name': peer.name,
      'public_key': keys.get(peer.name),
      'allowed_ips': peer.allowed_ips,
      'endpoint_host': peer.endpoint_host,
      'endpoint_port': peer.endpoint_port,
      'keepalive': peer.keepalive,
    }) %}
{%- endfor %}

evpn-wireguard:
  wireguard.interface_present:
    - name: {{ evpn.wireguard.interface }}
    - address: {{ node.address ~ ('/128' if ':' in node.address else '/32') }}
    - port: {{ evpn.wireguard.port }}
    - mtu: {{ evpn.wireguard.mtu }}
    - peers: {{ peers | json }}
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
    - name: wg-quick@{{ evpn.wireguard.interface }}
    - require:
      - wireguard: evpn-wireguard
{%- endif %}
{%- endif %}
