# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import kong with context %}

include:
  - {{ tpldir }}.database

Kong is running:
  service.running:
    - name: {{ kong.lookup.service }}
    - enable: True
    - require:
      - cmd: Kong schema is bootstrapped
    - watch:
      - pkg: Kong is installed
      - file: Kong is configured
      - file: Kong unit is installed
