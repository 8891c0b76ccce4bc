# -*- coding: utf-8 -*-
# vim: ft=sls
{#- etcd (v3 API) on the masters, vulcand's backend. #}
include:
  - .install
  - .config
  - .service
