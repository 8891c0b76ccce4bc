# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import docker with context %}

Docker is installed:
  pkg.installed:
    - name: {{ docker.lookup.package }}
    - version: '{{ docker.version }}'
