# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import vulcand with context %}
{%- from "platform/container.jinja" import service_removed with context %}
{{ service_removed('vulcand', vulcand) }}
