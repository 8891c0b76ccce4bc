# -*- coding: utf-8 -*-
# vim: ft=sls
# The platform's rules for the services it registers (documented in pillar.example, section
# `platform`). Connection settings stay at their defaults (salt/_utils/registrationutil.py).
platform:
  # Service ports: vulcand listens on them on the masters, and the security groups open them
  # to kong (pillar/aws.sls reads this value). Never a port of a platform daemon.
  listener_ports: 10000-11000
