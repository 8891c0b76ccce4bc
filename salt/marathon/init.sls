# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Marathon on the masters. #}
include:
  - .install
  - .config
  - .service
