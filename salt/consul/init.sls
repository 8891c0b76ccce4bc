# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Consul: server on masters, agent on every other node, service definitions per role. #}
include:
  - .install
  - .config
  - .service
  - .acl
