# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import dnsmasq with context %}

dnsmasq is installed:
  pkg.installed:
    - name: {{ dnsmasq.lookup.package }}
    - version: '{{ dnsmasq.version }}'
