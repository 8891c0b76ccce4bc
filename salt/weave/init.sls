# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Weave Net overlay: masters peer with each other, agents with the masters. #}
include:
  - .install
  - .config
  - .service
