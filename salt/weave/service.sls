# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import weave with context %}

include:
  - {{ tpldir }}.install
  - {{ tpldir }}.config
  - docker.service

Weave is running:
  service.running:
    - name: {{ weave.lookup.service }}
    - enable: True
    - require:
      - service: Docker is running
    - watch:
      - file: Weave script is installed
      - file: Weave peers are configured
      - file: Weave unit is installed
