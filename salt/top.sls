# -*- coding: utf-8 -*-
# vim: ft=sls
# Roles come from the `roles` grain the cloud map sets (kong / master / slave); what each role
# runs follows the seed (see the README, "Hosts and what each runs"). A node that cannot run
# the platform (its OS, a missing pillar key, its topology) gets only platform.refused, which
# names each problem in one sentence: nothing else renders or runs there.
{%- import "platform/checks.jinja" as checks with context %}
base:
{%- if checks.problems %}
  '{{ grains['id'] }}':
    - platform.refused
{%- else %}
  '*':
    - base
    - dnsmasq
    - consul
  'roles:master':
    - match: grain
    - docker
    - weave
    - zookeeper
    - mesos.master
    - marathon
    - etcd
    - vulcand
  'roles:slave':
    - match: grain
    - docker
    - weave
    - mesos.agent
  'roles:kong':
    - match: grain
    - postgresql
    - kong
{%- endif %}
