# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Hostname kept across reboots (cloud-init would reset it) and the seed's sysctls. #}
{%- from tpldir ~ "/map.jinja" import base, topology with context %}

Base hostname survives cloud-init:
  file.managed:
    - name: {{ base.lookup.cloud_init_hostname_file }}
    - makedirs: True
    - mode: '0644'
    - contents: |
        # Managed by Salt: the hostname is set from the node's minion id.
        preserve_hostname: true

Base hostname is set:
  cmd.run:
    - name: hostnamectl set-hostname {{ topology.hostname }}
    - unless: test "$(hostname)" = {{ topology.hostname }}

Base hostname resolves to the private address:
  host.only:
    - name: {{ topology.address }}
    - hostnames: [{{ topology.hostname }}, {{ grains['id'] }}]

Base sysctls are persisted:
  file.managed:
    - name: {{ base.lookup.sysctl_file }}
    - mode: '0644'
    - contents: |
        # Managed by Salt (base formula).
{%- for key, value in base.sysctl | dictsort %}
        {{ key }} = {{ value }}
{%- endfor %}


Base sysctls are applied:
  cmd.run:
    - name: sysctl -p {{ base.lookup.sysctl_file }}
    - onchanges:
      - file: Base sysctls are persisted
