# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import dnsmasq with context %}

include:
  - {{ tpldir }}.config

dnsmasq is running:
  service.running:
    - name: {{ dnsmasq.lookup.service }}
    - enable: True
    - watch:
      - file: dnsmasq forwards the consul domain
