{#- Forwarding, netfilter on bridged traffic, and loose reverse-path filtering (traffic through
    exit nodes is asymmetric), live and persisted: evpn.sysctl_settings for the interfaces that
    exist now. #}
{%- from tpldir ~ "/map.jinja" import host with context %}
evpn-sysctl-br-netfilter:
  kmod.present:
    - name: br_netfilter
    - unless: test -d /proc/sys/net/bridge

evpn-sysctl:
  sysctld.managed:
    - name: {{ host.sysctl_file }}
    - settings: {{ salt['evpn.sysctl_settings'](salt['file.readdir']('/proc/sys/net/ipv4/conf')) | json }}
    - require:
      - kmod: evpn-sysctl-br-netfilter
