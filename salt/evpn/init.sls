{#- Converges this node. A pillar with errors renders nothing but one failed state listing them,
    so nothing is changed; the sub-states are included below as they land. #}
{%- set report = salt['evpn.validate']() %}
{%- if report.errors %}

evpn-pillar-invalid:
  test.configurable_test_state:
    - name: the evpn pillar is invalid, nothing was changed
    - changes: False
    - result: False
    - allow_test_mode_failure: True
    - comment: {{ report.errors | join("\n") | json }}

{%- else %}
{%- from tpldir ~ "/map.jinja" import node with context %}

include:
  - .sdn

evpn-node:
  test.configurable_test_state:
    - changes: False
    - result: True
{%- if report.warnings %}
    - warnings: {{ report.warnings | json }}
{%- endif %}
{%- if node is none %}
    - comment: {{ (grains.id ~ " is not a node of the evpn federation (evpn:sites:*:nodes): nothing to do") | json }}
{%- else %}
    - comment: {{ (node.id ~ ": site " ~ node.site ~ ", PVE node " ~ node.pve_node ~ ", WireGuard "
                  ~ node.address ~ ", endpoint " ~ node.endpoint
                  ~ (", SDN leader" if node.is_sdn_leader else ", SDN leader is " ~ node.sdn_leader)
                  ~ (", exit node" if node.is_exit_node else "")) | json }}
{%- endif %}

{%- endif %}
