# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import dnsmasq, topology with context %}

include:
  - {{ tpldir }}.config

dnsmasq is running:
  service.running:
    - name: {{ dnsmasq.lookup.service }}
    - enable: True
    - watch:
      - file: dnsmasq forwards the consul domain

# Only once dnsmasq answers, so the states after this one still resolve.
dnsmasq is the host resolver:
  file.managed:
    - name: {{ dnsmasq.lookup.resolv_conf }}
    - mode: '0644'
    - follow_symlinks: False
    - contents: |
        # Managed by Salt (dnsmasq formula).
        search {{ topology.service_domain }}
        nameserver 127.0.0.1
    - require:
      - service: dnsmasq is running
      - file: dnsmasq stays the resolver across DHCP renewals
