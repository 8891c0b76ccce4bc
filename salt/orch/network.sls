{#- The cluster's AWS network from pillar `aws` (pillar/aws.sls, pillar.example):
    salt-run state.orchestrate orch.network [test=True]
    Runs on the master, through boto3; instances come afterwards from salt-cloud.
    The whole pillar is checked first (aws_network.validate_network): one invalid key stops
    the render with every problem named by its key path, before any state reads or creates
    anything, in test mode alike. #}
{%- set aws = salt['aws_network.validate_network'](salt['pillar.get']('aws')) %}
{%- set public = aws.subnets.public %}
{%- set private = aws.subnets.private %}
{%- macro connection() %}
    - cluster: {{ aws.cluster }}
    - profile: {{ aws.profile | json }}
    - region: {{ aws.region }}
    - tags: {{ aws.tags | json }}
{%- endmacro %}

aws-network-vpc:
  aws_network.vpc_present:
    - name: {{ aws.vpc.name }}
    - cidr_block: {{ aws.vpc.cidr }}
    {{- connection() }}

aws-network-internet-gateway:
  aws_network.internet_gateway_present:
    - name: {{ aws.vpc.name }}
    - vpc: {{ aws.vpc.name }}
    {{- connection() }}
    - require:
      - aws_network: aws-network-vpc

{%- for role, subnet in (('public', public), ('private', private)) %}

aws-network-subnet-{{ role }}:
  aws_network.subnet_present:
    - name: {{ subnet.name }}
    - vpc: {{ aws.vpc.name }}
    - cidr_block: {{ subnet.cidr }}
    - availability_zone: {{ aws.zone }}
    - map_public_ip_on_launch: {{ role == 'public' or aws.private_egress == 'seed' }}
    {{- connection() }}
    - require:
      - aws_network: aws-network-vpc
{%- endfor %}

aws-network-kong-eip:
  aws_network.address_present:
    - name: {{ aws.kong_eip }}
    {{- connection() }}

{%- set private_routes = {} %}
{%- if aws.private_egress == 'nat_gateway' %}
{%- do private_routes.update({'0.0.0.0/0': {'nat_gateway': aws.nat.name}}) %}

aws-network-nat-eip:
  aws_network.address_present:
    - name: {{ aws.nat.name }}
    {{- connection() }}

aws-network-nat-gateway:
  aws_network.nat_gateway_present:
    - name: {{ aws.nat.name }}
    - subnet: {{ public.name }}
    - address: {{ aws.nat.name }}
    {{- connection() }}
    - require:
      - aws_network: aws-network-subnet-public
      - aws_network: aws-network-nat-eip
      - aws_network: aws-network-internet-gateway
    - require_in:
      - aws_network: aws-network-route-table-private
{%- elif aws.private_egress == 'nat_instance' %}
{%- do private_routes.update({'0.0.0.0/0': {'nat_instance': aws.nat.name}}) %}

aws-network-nat-security-group:
  aws_network.security_group_present:
    - name: nat_sg
    - vpc: {{ aws.vpc.name }}
    - description: NAT instance of the private subnet
    - rules: [{protocol: '-1', sources: [{{ private.cidr }}]}]
    {{- connection() }}
    - require:
      - aws_network: aws-network-vpc

aws-network-nat-instance:
  aws_network.nat_instance_present:
    - name: {{ aws.nat.name }}
    - subnet: {{ public.name }}
    - security_group: nat_sg
    - image_owner: {{ aws.nat.image.owner | json }}
    - image_name: {{ aws.nat.image.name | json }}
    - instance_type: {{ aws.nat.instance_type }}
    {{- connection() }}
    - require:
      - aws_network: aws-network-subnet-public
      - aws_network: aws-network-nat-security-group
      - aws_network: aws-network-route-table-public
    - require_in:
      - aws_network: aws-network-route-table-private
{%- elif aws.private_egress == 'seed' %}
{%- do private_routes.update({'0.0.0.0/0': {'internet_gateway': aws.vpc.name}}) %}
{%- endif %}

{%- for role, subnet, routes in (('public', public, {'0.0.0.0/0': {'internet_gateway': aws.vpc.name}}),
                                  ('private', private, private_routes)) %}

aws-network-route-table-{{ role }}:
  aws_network.route_table_present:
    - name: {{ subnet.name }}
    - vpc: {{ aws.vpc.name }}
    - routes: {{ routes | json }}
    - subnets: [{{ subnet.name }}]
    {{- connection() }}
    - require:
      - aws_network: aws-network-subnet-{{ role }}
      - aws_network: aws-network-internet-gateway
{%- endfor %}

{#- In the order validate_network gives: each group after the groups its rules name. #}
{%- for group in aws.groups %}

aws-network-security-group-{{ group.name }}:
  aws_network.security_group_present:
    - name: {{ group.name }}
    - vpc: {{ aws.vpc.name }}
    - description: {{ group.description | json }}
    - rules: {{ group.rules | json }}
    {{- connection() }}
    - require:
      - aws_network: aws-network-vpc
{%- for required in group.requires %}
      - aws_network: aws-network-security-group-{{ required }}
{%- endfor %}
{%- endfor %}

aws-network-key-pair:
  aws_network.key_pair_present:
    - name: {{ aws.key_pair.name }}
    - public_key_path: {{ aws.key_pair.public_key_path | json }}
    {{- connection() }}
