# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import marathon with context %}
{%- from "platform/container.jinja" import service_running with context %}

include:
  - {{ tpldir }}.install
  - {{ tpldir }}.config
{{ service_running('Marathon', marathon) }}
