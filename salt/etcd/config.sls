# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import etcd with context %}
{%- from "platform/libmap.jinja" import unit_reloaded with context %}

include:
  - {{ tpldir }}.install

etcd is configured:
  file.serialize:
    - name: {{ etcd.lookup.config_file }}
    - serializer: yaml
    - dataset: {{ etcd.member_config | json }}
    - makedirs: True
    - user: root
    - group: {{ etcd.lookup.group }}
    - mode: '0640'
    - require:
      - pkg: etcd is installed

etcd unit is installed:
  file.managed:
    - name: {{ etcd.lookup.unit_file }}
    - source: salt://{{ tpldir }}/files/etcd.service.jinja
    - template: jinja
    - mode: '0644'
    - context:
        binary: {{ etcd.lookup.binary }}
        config_file: {{ etcd.lookup.config_file }}
        user: {{ etcd.lookup.user }}
        group: {{ etcd.lookup.group }}
{{ unit_reloaded('etcd') }}
