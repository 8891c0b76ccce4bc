# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import dnsmasq with context %}

dnsmasq is stopped:
  service.dead:
    - name: {{ dnsmasq.lookup.service }}
    - enable: False

dnsmasq platform files are removed:
  file.absent:
    - names:
      - {{ dnsmasq.lookup.config_file }}
      - {{ dnsmasq.lookup.networkmanager_conf }}
    - require:
      - service: dnsmasq is stopped
