{#- Uninstall: what this project made on a node that is no longer a node of the federation
    (evpn.absent: found by the names it gives its objects). On the node: the WireGuard
    interface, its key and persisted configuration, its start at boot, the endpoint beacon's
    minion configuration, our sysctl files. When the
    node's whole site left (no node of its PVE cluster is in the pillar any more), its first node
    also removes from the cluster our firewall rules, security groups and IP sets, our zone with
    every vnet and subnet in it, our controller, and applies. A guest on one of those vnets stops
    all of it, naming the guests. The user's own objects, the firewall switch and backend, the
    packages and the live kernel values (they return with the next boot) are left as they are.
    A node the pillar still names is refused, nothing changed. #}
{%- import_yaml tpldir ~ "/defaults.yaml" as host %}
{%- set pve = 'pvesdn.read' in salt %}
{%- set absent = salt['evpn.absent'](cluster_nodes=salt['pvesh.list_config']('nodes') if pve else [],
                                     pve_node=grains.host) %}
{%- if absent.errors %}

evpn-absent-refused:
  test.configurable_test_state:
    - name: nothing of the evpn federation was removed
    - changes: False
    - result: False
    - allow_test_mode_failure: True
    - comment: {{ absent.errors | join("\n") | json }}
{%- else %}
{%- set zone = absent.sdn.zone %}
{%- set guard = ("pvesdn: evpn-absent-zone-" ~ zone ~ "-unused") if absent.cluster else none %}
{%- if absent.cluster %}

evpn-absent-zone-{{ zone }}-unused:
  pvesdn.zone_unused:
    - name: {{ zone }}

evpn-absent-firewall-rules:
  pvefw.rules_present:
    - name: cluster
    - rules: []
    - absent: {{ absent.firewall.rules | json }}
    - require:
      - {{ guard }}
{%- for group in absent.firewall.groups %}

evpn-absent-firewall-group-{{ group }}:
  pvefw.group_absent:
    - name: {{ group }}
    - require:
      - pvefw: evpn-absent-firewall-rules
{%- endfor %}
{%- for ipset in absent.firewall.ipsets %}

evpn-absent-firewall-ipset-{{ ipset }}:
  pvefw.ipset_absent:
    - name: {{ ipset }}
    - require:
      - pvefw: evpn-absent-firewall-group-*
{%- endfor %}

evpn-absent-zone-{{ zone }}-emptied:
  pvesdn.zone_pruned:
    - name: {{ zone }}
    - keep: {}
    - prune: True
    - require:
      - {{ guard }}

evpn-absent-zone-{{ zone }}:
  pvesdn.zone_absent:
    - name: {{ zone }}
    - require:
      - pvesdn: evpn-absent-zone-{{ zone }}-emptied

evpn-absent-controller-{{ absent.sdn.controller }}:
  pvesdn.controller_absent:
    - name: {{ absent.sdn.controller }}
    - require:
      - pvesdn: evpn-absent-zone-{{ zone }}

evpn-absent-sdn-applied:
  pvesdn.applied:
    - name: {{ zone }}
    - require:
      - pvesdn: evpn-absent-controller-{{ absent.sdn.controller }}
{%- elif absent.cluster_note %}

evpn-absent-cluster:
  test.show_notification:
    - text: {{ absent.cluster_note | json }}
{%- endif %}
{%- set systemd = grains.get('init') == 'systemd' %}
{%- if systemd %}

evpn-absent-wireguard-at-boot:
  service.dead:
    - name: wg-quick@{{ absent.interface }}
    - enable: False
{%- if guard %}
    - require:
      - {{ guard }}
{%- endif %}
{%- endif %}

evpn-absent-wireguard:
  wireguard.interface_absent:
    - name: {{ absent.interface }}
{%- if guard or systemd %}
    - require:
{%- if guard %}
      - {{ guard }}
{%- endif %}
{%- if systemd %}
      - service: evpn-absent-wireguard-at-boot
{%- endif %}
{%- endif %}

evpn-absent-unpublish-key:
  module.run:
    - mine.update: []
    - onchanges:
      - wireguard: evpn-absent-wireguard

evpn-absent-endpoint-beacon-at-boot:
  file.absent:
    - name: {{ salt['file.join'](salt['file.dirname'](opts.conf_file), host.minion_beacon_file) }}
{%- if guard %}
    - require:
      - {{ guard }}
{%- endif %}
{%- for sysctl_file in [host.sysctl_file] + host.former_sysctl_files %}

evpn-absent-sysctl{{ "" if loop.first else "-former-" ~ sysctl_file }}:
  sysctld.absent:
    - name: {{ sysctl_file }}
    - settings: {{ salt['evpn.sysctl_settings']() | json }}
{%- if guard %}
    - require:
      - {{ guard }}
{%- endif %}
{%- endfor %}
{%- endif %}
