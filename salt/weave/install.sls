# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import weave with context %}

Weave script is installed:
  file.managed:
    - name: {{ weave.lookup.script }}
    - source: {{ weave.source }}
    - source_hash: {{ weave.source_hash }}
    - mode: '0755'
