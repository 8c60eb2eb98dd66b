{#- Converges this node: packages, FRR, sysctls, the WireGuard underlay, then (on the site's SDN
    leader) the SDN overlay and the firewall. A pillar with errors renders nothing but one failed state listing
    them, so nothing is changed; so does a node that lacks what the states need of a Proxmox VE node
    (pve.sls). A minion that is not a node gets a notice and nothing else.
    On a fresh federation the peers' keys reach the mine during the first run, so a second run
    completes the mesh (orch.evpn does both in one go). #}
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
{%- from tpldir ~ "/map.jinja" import node, missing with context %}
{%- if missing %}

include:
  - .pve
{%- else %}
{%- if node is not none %}

include:
  - .packages
  - .frr
  - .sysctl
  - .wireguard
  - .sdn
  - .firewall
{%- endif %}

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

{%- endif %}
