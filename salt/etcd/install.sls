# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import etcd with context %}

etcd user exists:
  group.present:
    - name: {{ etcd.lookup.group }}
    - system: True
  user.present:
    - name: {{ etcd.lookup.user }}
    - gid: {{ etcd.lookup.group }}
    - system: True
    - home: {{ etcd.lookup.data_dir }}
    - createhome: False
    - shell: /sbin/nologin
    - require:
      - group: etcd user exists

etcd release is unpacked:
  archive.extracted:
    - name: {{ etcd.lookup.install_dir }}
    - source: {{ etcd.source }}
    - source_hash: {{ etcd.source_hash }}
    - if_missing: {{ etcd.release_dir }}

{%- for program in ['etcd', 'etcdctl'] %}

etcd program {{ program }} is linked:
  file.symlink:
    - name: {{ etcd.lookup.binary_dir }}/{{ program }}
    - target: {{ etcd.release_dir }}/{{ program }}
    - require:
      - archive: etcd release is unpacked
{%- endfor %}

etcd data directory exists:
  file.directory:
    - name: {{ etcd.lookup.data_dir }}
    - user: {{ etcd.lookup.user }}
    - group: {{ etcd.lookup.group }}
    - mode: '0700'
    - require:
      - user: etcd user exists
