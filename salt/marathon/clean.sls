# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import marathon with context %}
{%- from "platform/container.jinja" import service_removed with context %}
{{ service_removed('Marathon', marathon) }}
