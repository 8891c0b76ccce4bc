# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir ~ "/map.jinja" import vulcand with context %}
{%- from "platform/container.jinja" import image_pulled with context %}

include:
  - docker.service
{{ image_pulled('vulcand', vulcand) }}
