# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import postgresql with context %}

include:
  - {{ tpldir }}.install

PostgreSQL client authentication is configured:
  file.managed:
    - name: {{ postgresql.config_dir }}/pg_hba.conf
    - user: postgres
    - group: postgres
    - mode: '0640'
    - contents: |
        # Managed by Salt (postgresql formula, pillar postgresql:hba).
{%- for entry in postgresql.hba %}
        {{ entry | select | join(' ') }}
{%- endfor %}
    - require:
      - pkg: PostgreSQL is installed
