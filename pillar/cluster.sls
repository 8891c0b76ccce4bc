# -*- coding: utf-8 -*-
# vim: ft=sls
# Cluster-wide pillar applied to every node. Formula defaults live in each formula's
# parameters/defaults.yaml; only what must be shared or published is set here.
#
# Secrets are NOT kept in this repository: the operator supplies them in pillar/local.sls
# (gitignored) or an extra pillar root; rendering fails and names the key when one is missing.
# Required (cluster:required_pillar in salt/platform/parameters/defaults.yaml says where):
# consul:encrypt, consul:acl_token, consul:agent_token, consul:dns_token,
# kong:database:password, weave:source_hash (see pillar.example).

# Every node publishes its private addresses; the formulas find the masters through them.
mine_functions:
  cluster_addresses:
    mine_function: network.ip_addrs
    cidr: 10.0.0.0/16
