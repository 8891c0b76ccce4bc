# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import etcd with context %}

include:
  - {{ tpldir }}.config

etcd is running:
  service.running:
    - name: {{ etcd.lookup.service }}
    - enable: True
    - require:
      - file: etcd data directory exists
    - watch:
      - file: etcd program etcd is linked
      - file: etcd is configured
      - file: etcd unit is installed
