# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Removes whichever Mesos role this node runs, then the package. #}
{%- from "mesos/map.jinja" import mesos, topology with context %}

include:
{%- if 'master' in topology.roles %}
  - .master.clean
{%- endif %}
{%- if 'slave' in topology.roles %}
  - .agent.clean
{%- endif %}

Mesos is removed:
  pkg.removed:
    - name: {{ mesos.package }}
