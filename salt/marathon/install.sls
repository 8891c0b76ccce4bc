# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import marathon with context %}

include:
  - mesos.install

Marathon is installed:
  pkg.installed:
    - name: {{ marathon.lookup.package }}
    - version: '{{ marathon.version }}*'
    - require:
      - pkgrepo: Mesos repository is configured
