# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import docker with context %}

include:
  - {{ tpldir }}.config

Docker is running:
  service.running:
    - name: {{ docker.lookup.service }}
    - enable: True
    - watch:
      - file: Docker daemon is configured
      - pkg: Docker is installed
