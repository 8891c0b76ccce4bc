# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import vulcand with context %}

vulcand options are configured:
  file.managed:
    - name: {{ vulcand.lookup.environment_file }}
    - source: salt://platform/files/environment.jinja
    - template: jinja
    - mode: '0644'
    - context:
        environment: {{ vulcand.environment | json }}

vulcand unit is installed:
  file.managed:
    - name: {{ vulcand.lookup.unit_file }}
    - source: salt://{{ tpldir }}/files/vulcand.service.jinja
    - template: jinja
    - mode: '0644'
    - context:
        release_dir: {{ vulcand.release_dir }}
        environment_file: {{ vulcand.lookup.environment_file }}
        user: {{ vulcand.lookup.user }}
        group: {{ vulcand.lookup.group }}
