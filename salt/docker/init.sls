# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Docker from Debian's archive, resolving through the host's dnsmasq. #}
include:
  - .install
  - .config
  - .service
