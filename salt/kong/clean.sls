# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import kong with context %}

Kong is stopped:
  service.dead:
    - name: {{ kong.lookup.service }}
    - enable: False

Kong is removed:
  pkg.removed:
    - name: {{ kong.lookup.package }}
    - require:
      - service: Kong is stopped
  file.absent:
    - names:
      - {{ kong.lookup.unit_file }}
      - {{ kong.lookup.config_file }}
    - require:
      - service: Kong is stopped
