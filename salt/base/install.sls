# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import base with context %}

Base packages are installed:
  pkg.installed:
    - pkgs: {{ base.packages | json }}
