# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import vulcand with context %}
{%- from "platform/container.jinja" import service_running with context %}

include:
  - {{ tpldir }}.install
  - {{ tpldir }}.config
  - etcd.service
{{ service_running('vulcand', vulcand, requires=[{'service': 'etcd is running'}]) }}
