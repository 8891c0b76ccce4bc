# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Stops etcd and removes its files; the data dir only with `etcd:remove_data`. #}
{%- from tpldir ~ "/map.jinja" import etcd with context %}

etcd is stopped:
  service.dead:
    - name: {{ etcd.lookup.service }}
    - enable: False

etcd files are removed:
  file.absent:
    - names:
      - {{ etcd.lookup.unit_file }}
      - {{ etcd.lookup.config_file }}
{%- if etcd.remove_data %}
      - {{ etcd.lookup.data_dir }}
{%- endif %}
    - require:
      - service: etcd is stopped
