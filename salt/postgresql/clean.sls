# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Stops PostgreSQL; its data stays unless `postgresql:remove_data` is true. #}
{%- from tpldir ~ "/map.jinja" import postgresql with context %}

PostgreSQL is stopped:
  service.dead:
    - name: {{ postgresql.lookup.service }}
    - enable: False
{%- if postgresql.remove_data %}

PostgreSQL data is removed:
  file.absent:
    - name: {{ postgresql.lookup.data_root }}/{{ postgresql.version }}/{{ postgresql.lookup.cluster }}
    - require:
      - service: PostgreSQL is stopped
{%- endif %}
