# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import vulcand with context %}

include:
  - {{ tpldir }}.install
  - {{ tpldir }}.config
  - etcd.service

vulcand is running:
  service.running:
    - name: {{ vulcand.lookup.service }}
    - enable: True
    - require:
      - user: vulcand user exists
      - service: etcd is running
    - watch:
      - archive: vulcand release is unpacked
      - file: vulcand options are configured
      - file: vulcand unit is installed
