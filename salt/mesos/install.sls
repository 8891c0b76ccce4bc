# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import mesos with context %}
{%- from "platform/aptrepo.jinja" import apt_repository with context %}

include:
  - platform.aptkey
{{ apt_repository('Mesos', 'aventer-mesos', mesos.repo, 'mesos:repo') }}

Mesos is installed:
  pkg.installed:
    - name: {{ mesos.package }}
    - version: '{{ mesos.version }}'
    - require:
      - cmd: Mesos package index is current
      - file: Mesos repository is configured
