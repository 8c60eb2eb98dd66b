{#- salt-run state.orchestrate orch.evpn: the whole federation in the safe order, complete in one
    run: every node makes its WireGuard key (evpn-keys: the WireGuard state with the peers the
    mine has so far) and publishes it to the mine before the WireGuard state runs again with
    every key; then the SDN and firewall of each site (on its leader; the other nodes skip them);
    then every node must see recent handshakes with every peer. A step that fails stops the
    steps after it. The nodes are evpn.members of the pillar the master renders for itself (the
    master loads the checkout's modules, module_dirs in etc/master); an invalid pillar stops
    the orchestration before anything runs, with every error.
    Removing nodes or sites: take them out of the pillar and name their minion ids,
    `pillar='{"removed": [pve-roz2]}'`: once the federation is converged without them, each runs
    evpn.absent (on its node, and for its cluster when its whole site left), and the master's
    mine forgets them. A name the pillar still holds stops the orchestration, nothing changed. #}
{%- set removed = pillar.get('removed', []) %}
{%- set report = salt['evpn.validate']() %}
{%- if removed is string or removed is not sequence or removed is mapping %}

evpn-orch-removed-invalid:
  test.configurable_test_state:
    - name: removed must be a list of minion ids, nothing was changed
    - changes: False
    - result: False
    - comment: {{ ("removed: got " ~ removed) | json }}
{%- elif report.errors %}

evpn-orch-pillar-invalid:
  test.configurable_test_state:
    - name: the evpn pillar the master renders for itself is invalid, nothing was changed
    - changes: False
    - result: False
    - comment: {{ report.errors | join("\n") | json }}
{%- elif removed | select('in', salt['evpn.members']()) | list %}

evpn-orch-removed-still-members:
  test.configurable_test_state:
    - name: the nodes to remove are still in the pillar, nothing was changed
    - changes: False
    - result: False
    - comment: {{ ("removed: " ~ (removed | select('in', salt['evpn.members']()) | join(', '))
                   ~ " still in evpn:sites:*:nodes: take them out of the pillar first") | json }}
{%- else %}
{%- set target = {'tgt': salt['evpn.members']() | join(','), 'tgt_type': 'list'} %}

evpn-sync:
  salt.function:
    - name: saltutil.sync_all
    - tgt: {{ target.tgt }}
    - tgt_type: {{ target.tgt_type }}

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
{%- if removed %}

evpn-removed-sync:
  salt.function:
    - name: saltutil.sync_all
    - tgt: {{ removed | join(',') }}
    - tgt_type: list
    - require:
      - salt: evpn-sdn

evpn-removed:
  salt.state:
    - tgt: {{ removed | join(',') }}
    - tgt_type: list
    - sls: evpn.absent
    - require:
      - salt: evpn-removed-sync

evpn-removed-mine:
  salt.runner:
    - name: cache.clear_mine
    - tgt: {{ removed | join(',') }}
    - tgt_type: list
    - require:
      - salt: evpn-sdn
{%- endif %}
{%- endif %}
