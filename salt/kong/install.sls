# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import kong with context %}
{%- from "platform/aptrepo.jinja" import apt_repository with context %}

include:
  - platform.aptkey
{{ apt_repository('Kong', 'kong-gateway-39', kong.repo, 'kong:repo') }}

Kong is installed:
  pkg.installed:
    - name: {{ kong.lookup.package }}
    - version: '{{ kong.version }}'
    - require:
      - cmd: Kong package index is current
      - file: Kong repository is configured
