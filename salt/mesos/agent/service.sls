# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from "mesos/map.jinja" import mesos with context %}

include:
  - .config
  - weave.service

Mesos agent is running:
  service.running:
    - name: {{ mesos.lookup.agent_service }}
    - enable: True
    # Its docker socket is Weave's proxy.
    - require:
      - service: Weave is running
    - watch:
      - pkg: Mesos is installed
      - file: Mesos agent is configured
      - file: Mesos agent unit is installed
