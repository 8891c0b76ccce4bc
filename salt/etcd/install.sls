# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import etcd with context %}

etcd is installed:
  pkg.installed:
    - name: {{ etcd.package }}
    - version: '{{ etcd.version }}'

etcd data directory exists:
  file.directory:
    - name: {{ etcd.lookup.data_dir }}
    - user: {{ etcd.lookup.user }}
    - group: {{ etcd.lookup.group }}
    - mode: '0700'
    - require:
      - pkg: etcd is installed
