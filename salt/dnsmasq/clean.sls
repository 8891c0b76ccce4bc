# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Stops dnsmasq and removes its platform files; DHCP writes resolv.conf again at the next
    lease (or `dhclient -r; dhclient` at once). #}
{%- from tpldir ~ "/map.jinja" import dnsmasq with context %}

dnsmasq is stopped:
  service.dead:
    - name: {{ dnsmasq.lookup.service }}
    - enable: False

dnsmasq platform files are removed:
  file.absent:
    - names:
      - {{ dnsmasq.lookup.config_file }}
      - {{ dnsmasq.lookup.dhclient_hook }}
    - require:
      - service: dnsmasq is stopped
