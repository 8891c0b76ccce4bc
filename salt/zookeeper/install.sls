# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import zookeeper with context %}

ZooKeeper runtime is installed:
  pkg.installed:
    - name: {{ zookeeper.java_package }}

ZooKeeper user exists:
  group.present:
    - name: {{ zookeeper.lookup.group }}
    - system: True
  user.present:
    - name: {{ zookeeper.lookup.user }}
    - gid: {{ zookeeper.lookup.group }}
    - system: True
    - home: {{ zookeeper.lookup.data_dir }}
    - createhome: False
    - shell: /sbin/nologin
    - require:
      - group: ZooKeeper user exists

ZooKeeper release is unpacked:
  archive.extracted:
    - name: {{ zookeeper.lookup.install_dir }}
    - source: {{ zookeeper.source }}
    - source_hash: {{ zookeeper.source_hash }}
    - if_missing: {{ zookeeper.release_dir }}

ZooKeeper directories exist:
  file.directory:
    - names:
      - {{ zookeeper.lookup.config_dir }}
      - {{ zookeeper.lookup.data_dir }}
      - {{ zookeeper.lookup.log_dir }}
    - user: {{ zookeeper.lookup.user }}
    - group: {{ zookeeper.lookup.group }}
    - mode: '0750'
    - require:
      - user: ZooKeeper user exists
