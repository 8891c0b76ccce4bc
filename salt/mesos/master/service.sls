# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from "mesos/map.jinja" import mesos with context %}

include:
  - .config

Mesos master is running:
  service.running:
    - name: {{ mesos.lookup.master_service }}
    - enable: True
    - watch:
      - pkg: Mesos is installed
      - file: Mesos master is configured
      - file: Mesos master unit is installed
