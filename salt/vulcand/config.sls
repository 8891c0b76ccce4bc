# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import vulcand with context %}
{%- from "platform/container.jinja" import unit_configured with context %}
{{ unit_configured('vulcand', vulcand, 'vulcand HTTP router', 'https://github.com/vulcand/vulcand', after='etcd.service') }}
