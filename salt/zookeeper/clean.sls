# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Stops ZooKeeper and removes its files; the data dir only with `zookeeper:remove_data`. #}
{%- from tpldir ~ "/map.jinja" import zookeeper with context %}

ZooKeeper is stopped:
  service.dead:
    - name: {{ zookeeper.lookup.service }}
    - enable: False

ZooKeeper files are removed:
  file.absent:
    - names:
      - {{ zookeeper.lookup.unit_file }}
      - {{ zookeeper.lookup.config_dir }}
{%- if zookeeper.remove_data %}
      - {{ zookeeper.lookup.data_dir }}
{%- endif %}
    - require:
      - service: ZooKeeper is stopped
