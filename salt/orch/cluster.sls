# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Builds the platform in dependency order:
      salt-run state.orchestrate orch.cluster
    The mine is refreshed first so every node sees the masters' addresses; then masters
    (Consul servers, ZooKeeper, Mesos, Marathon, etcd, vulcand); then, at once, the agents and
    the kong node (each needs only the masters); finally the gateway registrations (the
    `gateway` SLS) from the kong node. #}

Cluster mine holds every node's addresses:
  salt.function:
    - name: mine.update
    - tgt: '*'

Cluster masters are built:
  salt.state:
    - tgt: 'roles:master'
    - tgt_type: grain
    - highstate: True
    - require:
      - salt: Cluster mine holds every node's addresses

Cluster agents are built:
  salt.state:
    - tgt: 'roles:slave'
    - tgt_type: grain
    - highstate: True
    - parallel: True
    - require:
      - salt: Cluster masters are built

Cluster gateway node is built:
  salt.state:
    - tgt: 'roles:kong'
    - tgt_type: grain
    - highstate: True
    - parallel: True
    - require:
      - salt: Cluster masters are built

Cluster gateway registrations are applied:
  salt.state:
    - tgt: 'roles:kong'
    - tgt_type: grain
    - sls: gateway
    - require:
      - salt: Cluster agents are built
      - salt: Cluster gateway node is built
