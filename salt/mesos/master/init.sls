# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Mesos master. #}
include:
  - mesos.install
  - .config
  - .service
