{#- The SDN objects of this node's site, written by the site's SDN leader only (/etc/pve is
    cluster-wide), then one apply, only when something is pending and every SDN state before it
    succeeded. #}
{%- from tpldir ~ "/map.jinja" import evpn, node, missing with context %}
{%- if missing %}

include:
  - .pve
{%- elif node is not none and not node.is_sdn_leader %}

evpn-sdn:
  test.show_notification:
    - text: {{ ("The SDN configuration of site " ~ node.site ~ " is written by its leader " ~ node.sdn_leader) | json }}

{%- elif node is not none %}
{%- set sdn = salt['evpn.sdn']() %}
{%- set zone = evpn.zone.id %}
{%- set written = [] %}
{%- for id, params in sdn.controllers | dictsort %}

evpn-sdn-controller-{{ id }}:
  pvesdn.controller_present:
    - name: {{ id }}
    - params: {{ params | json }}
{%- do written.append("evpn-sdn-controller-" ~ id) %}
{%- endfor %}

evpn-sdn-zone-{{ zone }}:
  pvesdn.zone_present:
    - name: {{ zone }}
    - params: {{ sdn.zones[zone] | json }}
    - require:
      - pvesdn: evpn-sdn-controller-{{ evpn.controller }}
{%- do written.append("evpn-sdn-zone-" ~ zone) %}
{%- for id, params in sdn.vnets | dictsort %}

evpn-sdn-vnet-{{ id }}:
  pvesdn.vnet_present:
    - name: {{ id }}
    - params: {{ params | json }}
    - require:
      - pvesdn: evpn-sdn-zone-{{ zone }}
{%- do written.append("evpn-sdn-vnet-" ~ id) %}
{%- endfor %}
{%- for id, params in sdn.subnets | dictsort %}

evpn-sdn-subnet-{{ id }}:
  pvesdn.subnet_present:
    - name: {{ id }}
    - params: {{ params | json }}
    - require:
      - pvesdn: evpn-sdn-vnet-{{ params.vnet }}
{%- do written.append("evpn-sdn-subnet-" ~ id) %}
{%- endfor %}

evpn-sdn-zone-{{ zone }}-pruned:
  pvesdn.zone_pruned:
    - name: {{ zone }}
    - keep: {{ salt['evpn.sdn_keep']() | json }}
    - prune: {{ evpn.prune | json }}
    - require:
{%- for id in written %}
      - pvesdn: {{ id }}
{%- endfor %}
{%- do written.append("evpn-sdn-zone-" ~ zone ~ "-pruned") %}

evpn-sdn-applied:
  pvesdn.applied:
    - name: {{ node.site }}
    - require:
{%- for id in written %}
      - pvesdn: {{ id }}
{%- endfor %}
{%- endif %}
