# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Local DNS on every node: forwards the consul domain to Consul, resolver order kept. #}
include:
  - .install
  - .config
  - .service
