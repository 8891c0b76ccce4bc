# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Deregisters the microservices of pillar `services` (or only pillar `service`) from Kong,
    vulcand and Consul. Objects this cluster did not register from pillar are left alone. #}
{%- set only = salt['pillar.get']('service', '') %}

Microservices from pillar are deregistered:
  microservice.converged:
    - name: services
    - services: {{ salt['pillar.get']('services', {}) | json }}
    - deregister: true
    {%- if only %}
    - only: {{ only | json }}
    {%- endif %}
