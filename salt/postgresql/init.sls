# -*- coding: utf-8 -*-
# vim: ft=sls
{#- PostgreSQL server for Kong, on loopback. #}
include:
  - .install
  - .config
  - .service
