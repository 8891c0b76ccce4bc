# -*- coding: utf-8 -*-
# vim: ft=sls
{#- vulcand on the masters: routes service ports to Marathon tasks, configured in etcd. #}
include:
  - .install
  - .config
  - .service
