# -*- coding: utf-8 -*-
# vim: ft=sls
# Roles come from the `roles` grain the cloud map sets (kong / master / slave); what each role
# runs follows the seed (see the README, "Hosts and what each runs").
base:
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
