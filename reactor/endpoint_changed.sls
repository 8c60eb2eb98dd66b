{#- evpn/endpoint/changed, sent by a node's evpn_endpoint beacon with event.send. The sender is
    data['id'], which the master authenticated for such an event (cmd _minion_event); the tag
    and the payload are never read, so an event, forged or malformed, can at most make the
    federation's nodes re-resolve their peers' names. The runner checks that the sender is a
    node of the federation, gathers a burst of events into one refresh per node, and runs it. #}
{%- if data.get('cmd') == '_minion_event' and data.get('id') is string %}

evpn-endpoint-refresh:
  runner.evpn.endpoint_changed:
    - args:
      - sender: {{ data['id'] | json }}
{%- endif %}
