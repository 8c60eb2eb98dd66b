{#- salt-run state.orchestrate orch.evpn: the whole federation in the safe order, complete in one
    run: every node makes its WireGuard key (evpn-keys: the WireGuard state with the peers the
    mine has so far) and publishes it to the mine before the WireGuard state runs again with
    every key; then the SDN and firewall of each site (on its leader; the other nodes skip them);
    then every node must see recent handshakes with every peer. A step that fails stops the
    steps after it. The nodes are the minion ids under evpn:sites:*:nodes. The master gets the
    evpn module too: the endpoint reaction's runner uses it. #}
{%- set nodes = [] %}
{%- for site in (pillar.get('evpn', {}).get('sites') or {}).values() %}
{%- do nodes.extend((site.get('nodes') or {}).keys()) %}
{%- endfor %}
{%- if not nodes %}

evpn-orch-no-nodes:
  test.fail_without_changes:
    - name: the pillar the master renders for itself names no nodes under evpn:sites:*:nodes
{%- else %}
{%- set target = {'tgt': nodes | sort | join(','), 'tgt_type': 'list'} %}

evpn-sync-master:
  salt.runner:
    - name: saltutil.sync_modules

evpn-sync:
  salt.function:
    - name: saltutil.sync_all
    - tgt: {{ target.tgt }}
    - tgt_type: {{ target.tgt_type }}
    - require:
      - salt: evpn-sync-master

evpn-host:
  salt.state:
    - tgt: {{ target.tgt }}
    - tgt_type: {{ target.tgt_type }}
    - sls: [evpn.packages, evpn.frr, evpn.sysctl]
    - require:
      - salt: evpn-sync

evpn-keys:
  salt.state:
    - sls: evpn.wireguard
    - tgt: {{ target.tgt }}
    - tgt_type: {{ target.tgt_type }}
    - require:
      - salt: evpn-host

evpn-mine:
  salt.function:
    - name: mine.update
    - tgt: {{ target.tgt }}
    - tgt_type: {{ target.tgt_type }}
    - require:
      - salt: evpn-keys

evpn-wireguard:
  salt.state:
    - tgt: {{ target.tgt }}
    - tgt_type: {{ target.tgt_type }}
    - sls: evpn.wireguard
    - require:
      - salt: evpn-mine

evpn-sdn:
  salt.state:
    - tgt: {{ target.tgt }}
    - tgt_type: {{ target.tgt_type }}
    - sls: [evpn.sdn, evpn.firewall]
    - require:
      - salt: evpn-wireguard

evpn-verify:
  salt.state:
    - tgt: {{ target.tgt }}
    - tgt_type: {{ target.tgt_type }}
    - sls: evpn.verify
    - require:
      - salt: evpn-sdn
{%- endif %}
