# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import postgresql with context %}

PostgreSQL is installed:
  pkg.installed:
    - name: {{ postgresql.package }}
