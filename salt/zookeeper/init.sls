# -*- coding: utf-8 -*-
# vim: ft=sls
{#- ZooKeeper ensemble on the masters (Mesos and Marathon state, leader election). #}
include:
  - .install
  - .config
  - .service
