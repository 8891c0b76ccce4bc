# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Exposes the Mesos and Marathon UIs through Kong (`mesos.<domain>`, `marathon.<domain>` on
    the proxy port), behind an authentication plugin with the consumers of pillar `gateway`.
    Without consumers the UIs are not opened, unless pillar says `gateway:auth: false`.
    The whole of pillar `gateway` is checked first (microservice.gateway_settings): a wrong
    key or type fails the render, naming the key, and nothing is written.
    Applied to the kong minion: salt kong state.apply gateway #}
{%- set domain = salt['config.get']('platform:domain', 'service.consul') %}
{%- set gateway = salt['microservice.gateway_settings']() %}
{%- set auth = gateway.auth %}
{%- set credentials = salt['pillar.get']('gateway:consumers', {}) %}

{%- for ui, port in gateway.uis | dictsort %}

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
{%- for consumer, credential_id in gateway.consumers | dictsort %}

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
        password: {{ credentials[consumer].password | json }}
    - secret_fields: [password]
{%- else %}
    - name: {{ credential_id }}
    - collection: consumers/{{ consumer }}/key-auth
    - fields:
        key: {{ credentials[consumer].key | json }}
    - secret_fields: [key]
{%- endif %}
    - require:
      - Kong consumer {{ consumer }} is present
{%- endfor %}
{%- endif %}
