{#- Removes the cluster's AWS network, in dependency order, leaving nothing behind:
    salt-run state.orchestrate orch.network_teardown [test=True]
    Destroy the instances first: salt-cloud -m cloud.maps.d/default.map -d #}
{%- set aws = salt['pillar.get']('aws') %}

aws-network-absent:
  aws_network.absent:
    - name: {{ aws.cluster }}
    - profile: {{ aws.profile | json }}
    - region: {{ aws.region }}
