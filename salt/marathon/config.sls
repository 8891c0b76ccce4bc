# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import marathon with context %}

Marathon is configured:
  file.managed:
    - name: {{ marathon.lookup.environment_file }}
    - source: salt://platform/files/environment.jinja
    - template: jinja
    - mode: '0644'
    - context:
        environment: {{ marathon.environment | json }}

Marathon unit is installed:
  file.managed:
    - name: {{ marathon.lookup.unit_file }}
    - source: salt://{{ tpldir }}/files/marathon.service.jinja
    - template: jinja
    - mode: '0644'
    - context:
        binary: {{ marathon.lookup.binary }}
        environment_file: {{ marathon.lookup.environment_file }}
