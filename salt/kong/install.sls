# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import kong with context %}

Kong repository is configured:
  pkgrepo.managed:
    - name: kong-gateway
    - humanname: Kong Gateway
    - baseurl: {{ kong.repo.baseurl }}
    - gpgcheck: 1
    - gpgkey: {{ kong.repo.gpgkey }}

Kong is installed:
  pkg.installed:
    - name: {{ kong.lookup.package }}
    - version: '{{ kong.version }}*'
    - require:
      - pkgrepo: Kong repository is configured
