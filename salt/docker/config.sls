# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import docker with context %}

include:
  - {{ tpldir }}.install

Docker daemon is configured:
  file.serialize:
    - name: {{ docker.lookup.daemon_file }}
    - serializer: json
    - dataset: {{ docker.daemon | json }}
    - makedirs: True
    - mode: '0644'
    - require:
      - pkg: Docker is installed

Docker group holds its users:
  group.present:
    - name: {{ docker.lookup.group }}
    - addusers: {{ docker.users | json }}
    - require:
      - pkg: Docker is installed
