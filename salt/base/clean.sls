# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Removes the files this formula added; packages and the hostname stay. #}
{%- from tpldir ~ "/map.jinja" import base with context %}

Base platform files are removed:
  file.absent:
    - names:
      - {{ base.lookup.sysctl_file }}
      - {{ base.lookup.cloud_init_hostname_file }}
