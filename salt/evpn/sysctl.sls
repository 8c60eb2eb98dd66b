{#- Forwarding, netfilter on bridged traffic, and loose reverse-path filtering (traffic through
    exit nodes is asymmetric), live and persisted. rp_filter is set on every interface that exists
    now as well as on all and default: the kernel uses the higher of "all" and the interface's
    own value. #}
{%- from tpldir ~ "/map.jinja" import host with context %}
{%- set interfaces = salt['file.readdir']('/proc/sys/net/ipv4/conf') | reject('in', ['.', '..']) | list %}
{%- set settings = {
      'net.ipv4.ip_forward': 1,
      'net.bridge.bridge-nf-call-iptables': 1,
      'net.bridge.bridge-nf-call-ip6tables': 1,
    } %}
{%- for interface in interfaces %}
{%- do settings.update({'net.ipv4.conf.' ~ (interface | replace('.', '/')) ~ '.rp_filter': 0}) %}
{%- endfor %}

evpn-sysctl-br-netfilter:
  kmod.present:
    - name: br_netfilter
    - unless: test -d /proc/sys/net/bridge

evpn-sysctl:
  sysctld.managed:
    - name: {{ host.sysctl_file }}
    - settings: {{ settings | json }}
    - require:
      - kmod: evpn-sysctl-br-netfilter
