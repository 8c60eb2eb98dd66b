{#- Forwarding and no reverse-path filtering (traffic through
    exit nodes is asymmetric), live and persisted (evpn.sysctl_settings). rp_filter is set on
    `all` and `default` and, through a wildcard, on every interface: live on those that exist,
    and at boot and as each appears (systemd-sysctl), so interfaces that SDN applies and guests
    add and remove change nothing here. #}
{%- from tpldir ~ "/map.jinja" import host, missing with context %}
{%- if missing %}

include:
  - .pve
{%- else %}

evpn-sysctl:
  sysctld.managed:
    - name: {{ host.sysctl_file }}
    - settings: {{ salt['evpn.sysctl_settings']() | json }}
{%- endif %}
