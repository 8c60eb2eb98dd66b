{#- This node's WireGuard interface (evpn.wireguard_interface): every other node of the federation
    as a peer, its public key from the mine (a peer whose key is not there yet is left out until a
    later run), its endpoint resolved by the state at run time. A key made here is published at
    once. On systemd hosts (every PVE node) wg-quick brings the persisted configuration back after
    a reboot. #}
{%- from tpldir ~ "/map.jinja" import host, node, missing with context %}
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
{%- if opts.file_client == 'remote' %}
{#- A minion that boots while its master is away has no pillar: this file runs the endpoint
    beacon from boot anyway (a pillar, once there, overrides it; _beacons/evpn_endpoint.py). #}
{%- set beacon = salt['pillar.get']('beacons:evpn_endpoint') %}
{%- set beacon_file = salt['file.join'](salt['file.dirname'](opts.conf_file), host.minion_beacon_file) %}

evpn-endpoint-beacon-at-boot:
{%- if beacon %}
  file.managed:
    - name: {{ beacon_file }}
    - makedirs: True
    - mode: '0644'
    - contents: {{ ("# Written by the evpn states from the pillar (beacons:evpn_endpoint).\n"
                   ~ ({'beacons_before_connect': True,
                       'beacons': {'evpn_endpoint': beacon + [{'interface': wireguard.interface}]}}
                      | yaml(False))) | json }}
{%- else %}
  file.absent:
    - name: {{ beacon_file }}
{%- endif %}
{%- endif %}
{%- if grains.get('init') == 'systemd' %}

evpn-wireguard-at-boot:
  service.enabled:
    - name: wg-quick@{{ wireguard.interface }}
    - require:
      - wireguard: evpn-wireguard
{%- endif %}
{%- endif %}
