# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Base system of every node: tools, time sync, hostname, sysctls. #}
include:
  - .install
  - .config
  - .service
