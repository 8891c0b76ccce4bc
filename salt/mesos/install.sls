# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import mesos with context %}

Mesos repository is configured:
  pkgrepo.managed:
    - name: mesos
    - humanname: Mesos and Marathon packages
    - baseurl: {{ mesos.repo.baseurl }}
    - gpgcheck: 1
    - gpgkey: {{ mesos.repo.gpgkey }}

Mesos is installed:
  pkg.installed:
    - name: {{ mesos.lookup.package }}
    - version: '{{ mesos.version }}*'
    - require:
      - pkgrepo: Mesos repository is configured
