# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from "mesos/map.jinja" import mesos with context %}

Mesos master is stopped:
  service.dead:
    - name: {{ mesos.lookup.master_service }}
    - enable: False

Mesos master files are removed:
  file.absent:
    - names:
      - {{ mesos.lookup.master_unit_file }}
      - {{ mesos.lookup.master_environment_file }}
    - require:
      - service: Mesos master is stopped
