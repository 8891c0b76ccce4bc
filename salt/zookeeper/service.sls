# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import zookeeper with context %}

include:
  - {{ tpldir }}.config

ZooKeeper is running:
  service.running:
    - name: {{ zookeeper.lookup.service }}
    - enable: True
    - require:
      - pkg: ZooKeeper runtime is installed
    - watch:
      - archive: ZooKeeper release is unpacked
      - file: ZooKeeper is configured
      - file: ZooKeeper knows its id
      - file: ZooKeeper unit is installed
