# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import vulcand with context %}

vulcand is stopped:
  service.dead:
    - name: {{ vulcand.lookup.service }}
    - enable: False

vulcand files are removed:
  file.absent:
    - names:
      - {{ vulcand.lookup.unit_file }}
      - {{ vulcand.lookup.environment_file }}
      - {{ vulcand.lookup.install_dir }}
    - require:
      - service: vulcand is stopped
