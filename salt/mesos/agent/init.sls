# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Mesos agent. #}
include:
  - mesos.install
  - .config
  - .service
