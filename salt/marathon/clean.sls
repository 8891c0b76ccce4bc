# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import marathon with context %}

Marathon is stopped:
  service.dead:
    - name: {{ marathon.lookup.service }}
    - enable: False

Marathon is removed:
  pkg.removed:
    - name: {{ marathon.lookup.package }}
    - require:
      - service: Marathon is stopped
  file.absent:
    - names:
      - {{ marathon.lookup.unit_file }}
      - {{ marathon.lookup.environment_file }}
    - require:
      - service: Marathon is stopped
