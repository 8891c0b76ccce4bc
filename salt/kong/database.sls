# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Kong's PostgreSQL role and database, then its schema migrations. #}
{%- from tpldir ~ "/map.jinja" import kong with context %}

include:
  - {{ tpldir }}.install
  - {{ tpldir }}.config
  - postgresql.service

Kong database user exists:
  postgres_user.present:
    - name: {{ kong.database.user }}
    - password: {{ kong.database.password | json }}
    - encrypted: scram-sha-256
    - db_user: postgres
    - require:
      - service: PostgreSQL is running

Kong database exists:
  postgres_database.present:
    - name: {{ kong.database.name }}
    - owner: {{ kong.database.user }}
    - db_user: postgres
    - require:
      - postgres_user: Kong database user exists

Kong schema is bootstrapped:
  cmd.run:
    - name: {{ kong.lookup.binary }} migrations bootstrap -c {{ kong.lookup.config_file }}
    - unless: {{ kong.lookup.binary }} migrations list -c {{ kong.lookup.config_file }}
    - require:
      - postgres_database: Kong database exists
      - pkg: Kong is installed
      - file: Kong is configured

Kong schema follows the package:
  cmd.run:
    - name: >-
        {{ kong.lookup.binary }} migrations up -c {{ kong.lookup.config_file }} &&
        {{ kong.lookup.binary }} migrations finish -c {{ kong.lookup.config_file }}
    - onchanges:
      - pkg: Kong is installed
    - require:
      - cmd: Kong schema is bootstrapped
