# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import zookeeper with context %}

ZooKeeper is installed:
  pkg.installed:
    - name: {{ zookeeper.package }}
    - version: '{{ zookeeper.version }}'

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
      - pkg: ZooKeeper is installed
