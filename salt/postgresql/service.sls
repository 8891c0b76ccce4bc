# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import postgresql with context %}

include:
  - {{ tpldir }}.config

PostgreSQL is running:
  service.running:
    - name: {{ postgresql.lookup.service }}
    - enable: True
    - reload: True
    - watch:
      - file: PostgreSQL client authentication is configured
