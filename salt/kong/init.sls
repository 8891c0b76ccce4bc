# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Kong 3.x on the kong node, with its PostgreSQL database. #}
include:
  - .install
  - .config
  - .database
  - .service
