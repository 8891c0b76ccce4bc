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

{%- if dnsmasq.resolver_guard == 'dhclient' %}

dnsmasq stays first across DHCP renewals:
  file.managed:
    - name: {{ dnsmasq.lookup.dhclient_conf }}
    - mode: '0644'
    - contents: |
        # Managed by Salt: the local dnsmasq answers first.
        prepend domain-name-servers 127.0.0.1;
{%- elif dnsmasq.resolver_guard == 'networkmanager' %}

dnsmasq stays first across DHCP renewals:
  file.managed:
    - name: {{ dnsmasq.lookup.networkmanager_conf }}
    - makedirs: True
    - mode: '0644'
    - contents: |
        # Managed by Salt: resolv.conf belongs to the platform, not to DHCP.
        [main]
        dns=none

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
      - file: dnsmasq stays first across DHCP renewals
{%- else %}
{{- raise('pillar `dnsmasq:resolver_guard` is ' ~ dnsmasq.resolver_guard ~ '; expected dhclient or networkmanager') }}
{%- endif %}
