# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import zookeeper with context %}
{%- set config_file = zookeeper.lookup.config_dir ~ '/zoo.cfg' %}

include:
  - {{ tpldir }}.install

ZooKeeper is configured:
  file.managed:
    - name: {{ config_file }}
    - source: salt://{{ tpldir }}/files/zoo.cfg.jinja
    - template: jinja
    - user: {{ zookeeper.lookup.user }}
    - group: {{ zookeeper.lookup.group }}
    - mode: '0640'
    - context:
        config: {{ zookeeper.zoo_cfg | json }}
    - require:
      - file: ZooKeeper directories exist

ZooKeeper knows its id:
  file.managed:
    - name: {{ zookeeper.lookup.data_dir }}/myid
    - contents: '{{ zookeeper.myid }}'
    - user: {{ zookeeper.lookup.user }}
    - group: {{ zookeeper.lookup.group }}
    - mode: '0640'
    - require:
      - file: ZooKeeper directories exist

ZooKeeper unit is installed:
  file.managed:
    - name: {{ zookeeper.lookup.unit_file }}
    - source: salt://{{ tpldir }}/files/zookeeper.service.jinja
    - template: jinja
    - mode: '0644'
    - context:
        config_file: {{ config_file }}
        home: {{ zookeeper.lookup.home }}
        log_dir: {{ zookeeper.lookup.log_dir }}
        user: {{ zookeeper.lookup.user }}
        group: {{ zookeeper.lookup.group }}
