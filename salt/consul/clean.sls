# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Stops Consul and removes its files. The data dir (Raft state) is removed only with
    pillar `consul:remove_data: true`. #}
{%- from tpldir ~ "/map.jinja" import consul with context %}

Consul is stopped:
  service.dead:
    - name: {{ consul.lookup.service }}
    - enable: False

Consul files are removed:
  file.absent:
    - names:
      - {{ consul.lookup.unit_file }}
      - {{ consul.lookup.config_dir }}
      - {{ consul.lookup.binary }}
      - {{ consul.lookup.install_dir }}
{%- if consul.remove_data %}
      - {{ consul.lookup.data_dir }}
{%- endif %}
    - require:
      - service: Consul is stopped
