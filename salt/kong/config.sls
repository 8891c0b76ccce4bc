# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import kong with context %}
{%- from "platform/libmap.jinja" import unit_reloaded with context %}

Kong is configured:
  file.managed:
    - name: {{ kong.lookup.config_file }}
    - source: salt://{{ tpldir }}/files/kong.conf.jinja
    - template: jinja
    - makedirs: True
    - mode: '0600'
    # It holds the database password: never in the state output.
    - show_changes: False
    - context:
        config: {{ kong.kong_conf | json }}

Kong unit is installed:
  file.managed:
    - name: {{ kong.lookup.unit_file }}
    - source: salt://{{ tpldir }}/files/kong.service.jinja
    - template: jinja
    - mode: '0644'
    - context:
        binary: {{ kong.lookup.binary }}
        config_file: {{ kong.lookup.config_file }}
        limit_nofile: {{ kong.limit_nofile }}
{{ unit_reloaded('Kong') }}
