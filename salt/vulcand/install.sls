# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import vulcand with context %}

vulcand user exists:
  group.present:
    - name: {{ vulcand.lookup.group }}
    - system: True
  user.present:
    - name: {{ vulcand.lookup.user }}
    - gid: {{ vulcand.lookup.group }}
    - system: True
    - createhome: False
    - shell: /sbin/nologin
    - require:
      - group: vulcand user exists

vulcand release is unpacked:
  archive.extracted:
    - name: {{ vulcand.lookup.install_dir }}
    - source: {{ vulcand.source }}
    - source_hash: {{ vulcand.source_hash }}
    - if_missing: {{ vulcand.release_dir }}
