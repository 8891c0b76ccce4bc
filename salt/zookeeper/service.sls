# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import zookeeper with context %}

include:
  - {{ tpldir }}.config

ZooKeeper is running:
  service.running:
    - name: {{ zookeeper.lookup.service }}
    - enable: True
    - watch:
      - pkg: ZooKeeper is installed
      - file: ZooKeeper is configured
      - file: ZooKeeper knows its id
      - file: ZooKeeper unit is installed
