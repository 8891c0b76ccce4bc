# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import base with context %}

include:
  - {{ tpldir }}.install
{#- '' where the host's clock is not the node's to set (containers). #}
{%- if base.time_service %}

Base time is synchronised:
  service.running:
    - name: {{ base.time_service }}
    - enable: True
    - require:
      - pkg: Base packages are installed
{%- endif %}
