# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Docker CE, resolving through the host's dnsmasq. #}
include:
  - .install
  - .config
  - .service
