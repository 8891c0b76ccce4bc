# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Registers the microservices of pillar `services` into vulcand, Consul and Kong.

    salt kong state.apply services                               every service in pillar
    salt kong state.apply services pillar='{"service": "web"}'   only `web` (a list works too)

    One state for all services: the registries are listed once, whatever their number. #}
{%- set only = salt['pillar.get']('service', '') %}

Microservices from pillar are registered:
  microservice.converged:
    - name: services
    - services: {{ salt['pillar.get']('services', {}) | json }}
    {%- if only %}
    - only: {{ only | json }}
    {%- endif %}
