{#- FRR enabled and running: PVE's SDN apply only reloads it (and turns bgpd on in
    /etc/frr/daemons), it never starts it. #}
{%- from tpldir ~ "/map.jinja" import host, missing with context %}
{%- if missing %}

include:
  - .pve
{%- else %}

include:
  - .packages

evpn-frr:
  service.running:
    - name: {{ host.frr_service }}
    - enable: True
    - require:
      - pkg: evpn-packages
{%- endif %}
