# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from "mesos/map.jinja" import mesos with context %}

Mesos agent is stopped:
  service.dead:
    - name: {{ mesos.lookup.agent_service }}
    - enable: False

Mesos agent files are removed:
  file.absent:
    - names:
      - {{ mesos.lookup.agent_unit_file }}
      - {{ mesos.lookup.agent_environment_file }}
    - require:
      - service: Mesos agent is stopped
