# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Exposes the Mesos and Marathon UIs through Kong (`mesos.<domain>`, `marathon.<domain>` on
    the proxy port), behind an authentication plugin with the consumers of pillar `gateway`.
    Without consumers the UIs are not opened, unless pillar says `gateway:auth: false`.
    Applied to the kong minion: salt kong state.apply gateway #}
{%- set domain = salt['config.get']('platform:domain', 'service.consul') %}
{%- set gateway = salt['pillar.get']('gateway', {}) %}
{%- set auth = gateway.get('auth', 'basic-auth') %}
{%- set consumers = gateway.get('consumers', {}) %}
{%- set uis = gateway.get('uis', {'mesos': 5050, 'marathon': 8080}) %}
{%- set secret = {'basic-auth': 'password', 'key-auth': 'key'} %}
{%- if auth is not false and auth not in secret %}
{{- raise("pillar gateway:auth must be basic-auth, key-auth or false, not " ~ auth) }}
{%- endif %}
{%- if auth and not consumers %}
{{- raise("pillar gateway:consumers is empty: the Mesos and Marathon UIs would be open to "
          "anyone. Add consumers with credentials, or set gateway:auth: false explicitly.") }}
{%- endif %}

{%- for ui, port in uis | dictsort %}

Kong service {{ ui }} is present:
  kong.entity_present:
    - name: {{ ui }}
    - collection: services
    - fields:
        url: http://{{ ui }}.{{ domain }}:{{ port }}

Kong route {{ ui }} is present:
  kong.entity_present:
    - name: {{ ui }}
    - collection: services/{{ ui }}/routes
    - fields:
        hosts: [{{ ui }}.{{ domain }}]
        preserve_host: true
    - require:
      - Kong service {{ ui }} is present
{%- if auth %}

Kong route {{ ui }} requires {{ auth }}:
  kong.entity_present:
    - name: {{ ui }}-{{ auth }}
    - collection: routes/{{ ui }}/plugins
    - fields:
        name: {{ auth }}
        config: {hide_credentials: true}
    - require:
      - Kong route {{ ui }} is present
{%- endif %}
{%- endfor %}
{%- if auth %}
{%- for consumer, credentials in consumers | dictsort %}
{%- if not (credentials or {}).get(secret[auth]) %}
{{- raise("pillar gateway:consumers:" ~ consumer ~ ":" ~ secret[auth] ~ " is required for "
          ~ auth) }}
{%- endif %}

Kong consumer {{ consumer }} is present:
  kong.entity_present:
    - name: {{ consumer }}
    - collection: consumers
    - fields:
        username: {{ consumer }}

Kong consumer {{ consumer }} has its {{ auth }} credential:
  kong.entity_present:
{%- if auth == 'basic-auth' %}
    - name: {{ consumer }}
    - collection: consumers/{{ consumer }}/basic-auth
    - fields:
        username: {{ consumer }}
        password: {{ credentials.password | json }}
    - secret_fields: [password]
{%- else %}
    - name: {{ credentials.key | json }}
    - collection: consumers/{{ consumer }}/key-auth
    - fields:
        key: {{ credentials.key | json }}
{%- endif %}
    - require:
      - Kong consumer {{ consumer }} is present
{%- endfor %}
{%- endif %}
