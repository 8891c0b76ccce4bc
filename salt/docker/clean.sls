# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import docker with context %}

Docker is stopped:
  service.dead:
    - name: {{ docker.lookup.service }}
    - enable: False

Docker is removed:
  pkg.removed:
    - name: {{ docker.lookup.package }}
    - require:
      - service: Docker is stopped
  file.absent:
    - name: {{ docker.lookup.daemon_file }}
