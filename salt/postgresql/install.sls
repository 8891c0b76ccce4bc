# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import postgresql with context %}
{%- if postgresql.repo %}

PostgreSQL repository is configured:
  pkgrepo.managed:
    - name: pgdg
    - humanname: PostgreSQL Global Development Group
    - baseurl: {{ postgresql.repo.baseurl }}
    - gpgcheck: 1
    - gpgkey: {{ postgresql.repo.gpgkey }}
    - require_in:
      - pkg: PostgreSQL is installed
{%- endif %}

PostgreSQL is installed:
  pkg.installed:
    - pkgs: {{ postgresql.lookup.packages | json }}

PostgreSQL cluster is initialised:
  cmd.run:
    - name: {{ postgresql.lookup.setup_command }}
    - creates: {{ postgresql.lookup.data_dir }}/PG_VERSION
    - require:
      - pkg: PostgreSQL is installed
