# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import dnsmasq, topology with context %}

include:
  - {{ tpldir }}.install

dnsmasq forwards the consul domain:
  file.managed:
    - name: {{ dnsmasq.lookup.config_file }}
    - source: salt://{{ tpldir }}/files/dnsmasq.conf.jinja
    - template: jinja
    - makedirs: True
    - mode: '0644'
    - context:
        address: {{ topology.address }}
        consul_domain: {{ topology.cluster.consul_domain }}
        consul_dns: {{ dnsmasq.consul_dns | json }}
        upstream_dns: {{ topology.cluster.upstream_dns }}
        cache_size: {{ dnsmasq.cache_size }}
    - require:
      - pkg: dnsmasq is installed

dnsmasq stays the resolver across DHCP renewals:
  file.managed:
    - name: {{ dnsmasq.lookup.dhclient_hook }}
    - makedirs: True
    - mode: '0644'
    - contents: |
        # Managed by Salt (dnsmasq formula): resolv.conf belongs to the platform, whose
        # dnsmasq forwards to the VPC resolver; dhclient keeps its lease but not the file.
        make_resolv_conf() { :; }
