# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import marathon with context %}

include:
  - {{ tpldir }}.install
  - {{ tpldir }}.config

Marathon is running:
  service.running:
    - name: {{ marathon.lookup.service }}
    - enable: True
    - watch:
      - pkg: Marathon is installed
      - file: Marathon is configured
      - file: Marathon unit is installed
