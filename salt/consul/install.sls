# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import consul with context %}
{%- set release_dir = consul.lookup.install_dir ~ '/' ~ consul.version %}

Consul user exists:
  group.present:
    - name: {{ consul.lookup.group }}
    - system: True
  user.present:
    - name: {{ consul.lookup.user }}
    - gid: {{ consul.lookup.group }}
    - system: True
    - home: {{ consul.lookup.data_dir }}
    - createhome: False
    - shell: /usr/sbin/nologin
    - require:
      - group: Consul user exists

Consul release is unpacked:
  archive.extracted:
    - name: {{ release_dir }}
    - source: {{ consul.source }}
    - source_hash: {{ consul.source_hash }}
    - enforce_toplevel: False
    - if_missing: {{ release_dir }}/consul

Consul binary is linked:
  file.symlink:
    - name: {{ consul.lookup.binary }}
    - target: {{ release_dir }}/consul
    - require:
      - archive: Consul release is unpacked

Consul directories exist:
  file.directory:
    - names:
      - {{ consul.lookup.config_dir }}:
        - mode: '0750'
      - {{ consul.lookup.data_dir }}:
        - mode: '0750'
    - user: {{ consul.lookup.user }}
    - group: {{ consul.lookup.group }}
    - require:
      - user: Consul user exists
