# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import consul with context %}
{%- set config_file = consul.lookup.config_dir ~ '/consul.json' %}

include:
  - {{ tpldir }}.install

Consul agent is configured:
  file.serialize:
    - name: {{ config_file }}
    - serializer: json
    - dataset: {{ consul.agent_config | json }}
    - user: {{ consul.lookup.user }}
    - group: {{ consul.lookup.group }}
    - mode: '0640'
    # It holds the gossip key and the tokens: never in the state output.
    - show_changes: False
    - require:
      - file: Consul directories exist

{%- for name, definition in consul.service_definitions | dictsort %}

Consul service {{ name }} is defined:
  file.serialize:
    - name: {{ consul.lookup.config_dir }}/service-{{ name }}.json
    - serializer: json
    - dataset: {{ definition | json }}
    - user: {{ consul.lookup.user }}
    - group: {{ consul.lookup.group }}
    - mode: '0640'
    - require:
      - file: Consul directories exist
{%- endfor %}

Consul unit is installed:
  file.managed:
    - name: {{ consul.lookup.unit_file }}
    - source: salt://{{ tpldir }}/files/consul.service.jinja
    - template: jinja
    - mode: '0644'
    - context:
        binary: {{ consul.lookup.binary }}
        config_dir: {{ consul.lookup.config_dir }}
        config_file: {{ config_file }}
        user: {{ consul.lookup.user }}
        group: {{ consul.lookup.group }}
