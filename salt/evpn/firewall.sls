{#- The PVE firewall of this node's site, written by the site's SDN leader (/etc/pve is
    cluster-wide): the federation's IP sets, our security groups, our rules at the top of the
    cluster rules (management access first), and the firewall switched on or off only when the
    pillar says so (evpn.validate refuses "on" without management networks), after each node's
    backend (nftables) where the pillar chooses it. The user's own rules, groups, IP sets and
    policies are left as they are. Forward rules are left out by the pvefw
    states where the cluster's PVE has none (before 8.3). #}
{%- from tpldir ~ "/map.jinja" import evpn, node, missing with context %}
{%- if missing %}

include:
  - .pve
{%- elif node is not none and node.is_sdn_leader %}
{%- set firewall = salt['evpn.firewall']() %}
{%- for name, ipset in firewall.ipsets | dictsort %}

evpn-firewall-ipset-{{ name }}:
  pvefw.ipset_present:
    - name: {{ name }}
    - cidrs: {{ ipset.cidrs | json }}
    - comment: {{ ipset.comment | json }}
{%- endfor %}
{%- for name, group in firewall.groups | dictsort %}

evpn-firewall-group-{{ name }}:
  pvefw.group_present:
    - name: {{ name }}
    - rules: {{ group.rules | json }}
    - comment: {{ group.comment | json }}
    - require:
      - pvefw: evpn-firewall-ipset-*
{%- endfor %}

evpn-firewall-rules:
  pvefw.rules_present:
    - name: cluster
    - rules: {{ firewall.rules | json }}
    - absent: {{ firewall.absent_rules | json }}
    - require:
      - pvefw: evpn-firewall-ipset-*
      - pvefw: evpn-firewall-group-*

{%- for pve_node, values in firewall.node_options | dictsort %}

evpn-firewall-node-options-{{ pve_node }}:
  pvefw.options:
    - name: {{ pve_node }}
    - node: {{ pve_node }}
    - values: {{ values | json }}
    - require:
      - pvefw: evpn-firewall-rules
{%- endfor %}
{%- if firewall.options %}

evpn-firewall-options:
  pvefw.options:
    - name: cluster
    - values: {{ firewall.options | json }}
    - require:
      - pvefw: evpn-firewall-rules
{%- for pve_node in firewall.node_options | sort %}
      - pvefw: evpn-firewall-node-options-{{ pve_node }}
{%- endfor %}
{%- endif %}
{%- endif %}
