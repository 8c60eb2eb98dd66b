{#- Forwarding and no reverse-path filtering (traffic through
    exit nodes is asymmetric), live and persisted (evpn.sysctl_settings). rp_filter is set on
    `all` and `default` and, through a wildcard, on every interface: live on those that exist,
    and at boot and as each appears (systemd-sysctl), so interfaces that SDN applies and guests
    add and remove change nothing here. The file of an earlier release goes once ours is written. #}
{%- from tpldir ~ "/map.jinja" import host, missing with context %}
{%- if missing %}

include:
  - .pve
{%- else %}

{%- set settings = salt['evpn.sysctl_settings']() %}

evpn-sysctl:
  sysctld.managed:
    - name: {{ host.sysctl_file }}
    - settings: {{ settings | json }}
{%- for former in host.former_sysctl_files %}

evpn-sysctl-former-{{ former }}:
  sysctld.absent:
    - name: {{ former }}
    - settings: {{ settings | json }}
    - require:
      - sysctld: evpn-sysctl
{%- endfor %}
{%- endif %}
