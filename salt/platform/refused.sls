# -*- coding: utf-8 -*-
# vim: ft=sls
{#- The whole highstate of a node that cannot run the platform (salt/top.sls): one failing
    state per problem, so the operator reads each sentence and nothing else is attempted. #}
{%- import "platform/checks.jinja" as checks with context %}
{%- for problem in checks.problems %}

Platform refuses this node ({{ loop.index }} of {{ loop.length }}):
  test.fail_without_changes:
    - name: {{ problem | json }}
{%- endfor %}
