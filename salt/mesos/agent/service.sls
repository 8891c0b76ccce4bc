# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from "mesos/map.jinja" import mesos with context %}

include:
  - .config

Mesos agent is running:
  service.running:
    - name: {{ mesos.lookup.agent_service }}
    - enable: True
    - watch:
      - pkg: Mesos is installed
      - file: Mesos agent is configured
      - file: Mesos agent unit is installed
