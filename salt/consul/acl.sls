# -*- coding: utf-8 -*-
# vim: ft=sls
{#- With pillar consul:dns_token set, the masters make sure that token exists in Consul and can
    only read what DNS answers from (the dns_policy rules); every agent answers DNS with it
    (map.jinja). Written through the local server with the bootstrap token, once ACLs answer. #}
{%- from tpldir ~ "/map.jinja" import consul with context %}
{%- import "platform/topology.jinja" as platform with context %}

include:
  - {{ tpldir }}.service
{%- if consul.dns_token and 'master' in platform.topology.roles %}
{%-   set connection = {'url': 'http://127.0.0.1:' ~ consul.http_port, 'token': consul.acl_token} %}

Consul policy {{ consul.dns_policy.name }} is present:
  consul_acl.policy_present:
    - name: {{ consul.dns_policy.name }}
    - description: {{ consul.dns_policy.description | json }}
    - rules: {{ consul.dns_policy.rules | json }}
    - url: {{ connection.url }}
    - token: {{ connection.token | json }}
    # ACL writes need an elected leader; on the ha map the masters race to create it first.
    - retry: {attempts: 20, interval: 3}
    - require:
      - service: Consul is running

Consul DNS token is present:
  consul_acl.token_present:
    - name: DNS lookups of the agents
    - secret_id: {{ consul.dns_token | json }}
    - policies: [{{ consul.dns_policy.name }}]
    - url: {{ connection.url }}
    - token: {{ connection.token | json }}
    - retry: {attempts: 20, interval: 3}
    - require:
      - consul_acl: Consul policy {{ consul.dns_policy.name }} is present
{%- endif %}
