{#- What every node runs: WireGuard's tools, FRR and the frr-reload.py that PVE's SDN apply
    uses. Modules are reloaded so that states later in the same run find `wg`. #}
{%- from tpldir ~ "/map.jinja" import host, missing with context %}
{%- if missing %}

include:
  - .pve
{%- else %}

evpn-packages:
  pkg.installed:
    - pkgs: {{ host.packages | json }}
    - reload_modules: True
{%- endif %}
