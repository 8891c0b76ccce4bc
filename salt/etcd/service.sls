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
      - pkg: etcd is installed
      - file: etcd is configured
      - file: etcd unit is installed
