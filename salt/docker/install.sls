# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import docker with context %}

Docker repository is configured:
  pkgrepo.managed:
    - name: docker-ce-stable
    - humanname: Docker CE stable
    - baseurl: {{ docker.repo.baseurl }}
    - gpgcheck: 1
    - gpgkey: {{ docker.repo.gpgkey }}

Docker is installed:
  pkg.installed:
    - name: {{ docker.lookup.package }}
    - version: '{{ docker.version }}*'
    - require:
      - pkgrepo: Docker repository is configured
