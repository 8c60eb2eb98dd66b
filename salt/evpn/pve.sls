{#- The one state a node gets, instead of all others, when it lacks what they need of a Proxmox
    VE node (pvesh and /etc/pve, version 8.4 or 9.x, FRR, interfaces.d sourced): it fails, in
    test mode too, saying what is missing and how to fix it; nothing is changed. #}
{%- from tpldir ~ "/map.jinja" import node, missing with context %}
{%- if missing %}

evpn-pve-requirements:
  test.configurable_test_state:
    - name: {{ (node.id ~ " lacks what the evpn states need of a Proxmox VE node, nothing was changed") | json }}
    - changes: False
    - result: False
    - allow_test_mode_failure: True
    - comment: {{ missing | join("\n") | json }}
{%- endif %}
