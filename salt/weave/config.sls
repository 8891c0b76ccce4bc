# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import weave with context %}

Weave peers are configured:
  file.managed:
    - name: {{ weave.lookup.environment_file }}
    - source: salt://platform/files/environment.jinja
    - template: jinja
    - mode: '0644'
    - context:
        environment: {{ weave.environment | json }}

Weave unit is installed:
  file.managed:
    - name: {{ weave.lookup.unit_file }}
    - source: salt://{{ tpldir }}/files/weave.service.jinja
    - template: jinja
    - mode: '0644'
    - context:
        script: {{ weave.lookup.script }}
        environment_file: {{ weave.lookup.environment_file }}
