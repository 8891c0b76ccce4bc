# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import weave with context %}

Weave is stopped:
  service.dead:
    - name: {{ weave.lookup.service }}
    - enable: False

Weave files are removed:
  file.absent:
    - names:
      - {{ weave.lookup.unit_file }}
      - {{ weave.lookup.environment_file }}
      - {{ weave.lookup.script }}
    - require:
      - service: Weave is stopped
