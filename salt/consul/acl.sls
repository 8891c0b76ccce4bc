# -*- coding: utf-8 -*-
# vim: ft=sls
{#- The per-purpose tokens whose secrets pillar sets (consul:dns_token, agent_token,
    registrar_token): the masters make sure each exists in Consul carrying exactly its policy of
    consul:acl_policies. Written through the local server with the bootstrap token once ACLs
    answer; the agents use the dns and agent tokens (map.jinja). #}
{%- from tpldir ~ "/map.jinja" import consul, topology with context %}

include:
  - {{ tpldir }}.service
{%- if 'master' in topology.roles %}
{%-   set connection = {'url': 'http://127.0.0.1:' ~ consul.http_port, 'token': consul.acl_token} %}
{%-   for name, policy in consul.acl_policies | dictsort if consul.get(policy.token) %}

Consul policy {{ name }} is present:
  consul_acl.policy_present:
    - name: {{ name }}
    - description: {{ policy.description | json }}
    - rules: {{ policy.rules | json }}
    - url: {{ connection.url }}
    - token: {{ connection.token | json }}
    # ACL writes need an elected leader; on the ha map the masters race to create it first.
    - retry: {attempts: 20, interval: 3}
    - require:
      - service: Consul is running

Consul token {{ policy.token }} is present:
  consul_acl.token_present:
    - name: {{ policy.description | json }}
    - secret_id: {{ consul[policy.token] | json }}
    - policies: [{{ name }}]
    - url: {{ connection.url }}
    - token: {{ connection.token | json }}
    - retry: {attempts: 20, interval: 3}
    - require:
      - consul_acl: Consul policy {{ name }} is present
{%-   endfor %}
{%- endif %}
