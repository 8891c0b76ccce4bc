# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import marathon with context %}
{%- from "platform/container.jinja" import unit_configured with context %}
{{ unit_configured('Marathon', marathon, 'Marathon scheduler', 'https://mesosphere.github.io/marathon/docs/', after='mesos-master.service') }}
