# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from "mesos/map.jinja" import mesos with context %}
{%- from "platform/libmap.jinja" import unit_reloaded with context %}

include:
  - mesos.install

Mesos agent is configured:
  file.managed:
    - name: {{ mesos.lookup.agent_environment_file }}
    - source: salt://platform/files/environment.jinja
    - template: jinja
    - mode: '0644'
    - context:
        environment: {{ mesos.agent_environment | json }}
    - require:
      - pkg: Mesos is installed

Mesos agent unit is installed:
  file.managed:
    - name: {{ mesos.lookup.agent_unit_file }}
    - source: salt://mesos/files/mesos.service.jinja
    - template: jinja
    - mode: '0644'
    - context:
        role: agent
        after: weave.service
        binary: {{ mesos.lookup.agent_binary }}
        environment_file: {{ mesos.lookup.agent_environment_file }}
{{ unit_reloaded('Mesos agent') }}
