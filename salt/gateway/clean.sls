# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Removes what the `gateway` SLS created: the UI routes with their plugins, the services and
    the consumers with their credentials. Entities this cluster's gateway did not create stay. #}
{%- set gateway = salt['pillar.get']('gateway', {}) %}
{%- set uis = gateway.get('uis', {'mesos': 5050, 'marathon': 8080}) %}

{%- for ui in uis | sort %}

Kong route {{ ui }} is absent:
  kong.entity_absent:
    - name: {{ ui }}
    - collection: routes

Kong service {{ ui }} is absent:
  kong.entity_absent:
    - name: {{ ui }}
    - collection: services
    - require:
      - Kong route {{ ui }} is absent
{%- endfor %}
{%- for consumer in gateway.get('consumers', {}) | sort %}

Kong consumer {{ consumer }} is absent:
  kong.entity_absent:
    - name: {{ consumer }}
    - collection: consumers
{%- endfor %}
