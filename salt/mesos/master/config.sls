# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from "mesos/map.jinja" import mesos with context %}
{%- from "platform/libmap.jinja" import unit_reloaded with context %}

include:
  - mesos.install

Mesos master is configured:
  file.managed:
    - name: {{ mesos.lookup.master_environment_file }}
    - source: salt://platform/files/environment.jinja
    - template: jinja
    - mode: '0644'
    - context:
        environment: {{ mesos.master_environment | json }}
    - require:
      - pkg: Mesos is installed

Mesos master unit is installed:
  file.managed:
    - name: {{ mesos.lookup.master_unit_file }}
    - source: salt://mesos/files/mesos.service.jinja
    - template: jinja
    - mode: '0644'
    - context:
        role: master
        after: zookeeper.service
        binary: {{ mesos.lookup.master_binary }}
        environment_file: {{ mesos.lookup.master_environment_file }}
{{ unit_reloaded('Mesos master') }}
