{#- salt-run state.orchestrate orch.rotate_key pillar='{"nodes": ["pve-wro1"]}': a new WireGuard
    key for each node named ("all": every node of the federation), one node after the other. Per
    node: it makes its new private key (wireguard.rotate_key: key file, live interface, persisted
    file), publishes the public key to the mine, every other node takes it (the evpn.wireguard
    state, as in orch.evpn), and every node must then see recent handshakes (evpn.verify) before
    the next node rotates. The tunnels of the rotating node are down from its new key until its
    peers hold it (seconds; BGP's hold time is 9 s). A name that is not a node of the federation,
    or an invalid pillar, stops it before anything runs. #}
{%- set members = salt['evpn.members']() %}
{%- set report = salt['evpn.validate']() %}
{%- set nodes = pillar.get('nodes') %}
{%- set nodes = members if nodes == 'all' else nodes %}
{%- if report.errors %}

evpn-rotate-pillar-invalid:
  test.configurable_test_state:
    - name: the evpn pillar the master renders for itself is invalid, nothing was changed
    - changes: False
    - result: False
    - comment: {{ report.errors | join("\n") | json }}
{%- elif nodes is string or nodes is not sequence or nodes is mapping or not nodes
         or nodes | reject('in', members) | list %}

evpn-rotate-nodes-invalid:
  test.configurable_test_state:
    - name: nodes must be "all" or a list of nodes of the federation, nothing was changed
    - changes: False
    - result: False
    - comment: {{ ("nodes: got " ~ (nodes | tojson) ~ "; the nodes are " ~ (members | join(', '))) | json }}
{%- else %}
{%- set interface = salt['evpn.config']()['wireguard']['interface'] %}

evpn-rotate-sync:
  salt.function:
    - name: saltutil.sync_all
    - tgt: {{ members | join(',') }}
    - tgt_type: list
{%- for node in nodes %}
{%- set others = members | reject('equalto', node) | list %}

evpn-rotate-{{ node }}:
  salt.function:
    - name: wireguard.rotate_key
    - tgt: {{ node }}
    - arg: [{{ interface }}]
    - require:
      - salt: {{ 'evpn-rotate-sync' if loop.first else 'evpn-verify-' ~ loop.previtem }}

evpn-publish-{{ node }}:
  salt.function:
    - name: mine.update
    - tgt: {{ node }}
    - require:
      - salt: evpn-rotate-{{ node }}
{%- if others %}

evpn-peers-of-{{ node }}:
  salt.state:
    - tgt: {{ others | join(',') }}
    - tgt_type: list
    - sls: evpn.wireguard
    - require:
      - salt: evpn-publish-{{ node }}
{%- endif %}

evpn-verify-{{ node }}:
  salt.state:
    - tgt: {{ members | join(',') }}
    - tgt_type: list
    - sls: evpn.verify
    - require:
      - salt: evpn-publish-{{ node }}
{%- if others %}
      - salt: evpn-peers-of-{{ node }}
{%- endif %}
{%- endfor %}
{%- endif %}
