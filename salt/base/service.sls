# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import base with context %}

include:
  - {{ tpldir }}.install

Base time is synchronised:
  service.running:
    - name: {{ base.time_service }}
    - enable: True
    - require:
      - pkg: Base packages are installed
