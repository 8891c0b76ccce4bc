# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import consul with context %}

include:
  - {{ tpldir }}.config

Consul is running:
  service.running:
    - name: {{ consul.lookup.service }}
    - enable: True
    - watch:
      - file: Consul binary is linked
      - file: Consul agent is configured
      - file: Consul unit is installed
{%- for name in consul.service_definitions | sort %}
      - file: Consul service {{ name }} is defined
{%- endfor %}
