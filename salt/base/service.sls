# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import base with context %}

Base time is synchronised:
  service.running:
    - name: {{ base.time_service }}
    - enable: True

{%- if base.firewall.enabled %}

Base host firewall is running:
  service.running:
    - name: {{ base.firewall.service }}
    - enable: True
{%- else %}

Base host firewall is off (security groups filter):
  service.dead:
    - name: {{ base.firewall.service }}
    - enable: False
{%- endif %}
