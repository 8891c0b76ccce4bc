# AWS network and salt-cloud defaults (documented in pillar.example, section `aws`).
{%- import_yaml 'platform.sls' as platform %}
# The seed's values, tightened: SSH and the Kong admin API only from `admin_cidr` (empty:
# from nowhere on the internet), private subnet behind a NAT gateway.
aws:
  profile: showcase
  region: eu-west-1
  zone: eu-west-1a
  cluster: showcase
  admin_cidr: ''
  # admin_cidr 0.0.0.0/0 (SSH and the admin API open to the internet) is refused unless true.
  allow_admin_from_anywhere: false
  tags:
    Project: showcase
  key_pair:
    name: showcase
    public_key_path: ~/.ssh/showcase.pub
  vpc:
    name: showcase
    cidr: 10.0.0.0/16
  subnets:
    public:
      name: showcase-public
      cidr: 10.0.5.0/24
    private:
      name: showcase-private
      cidr: 10.0.12.0/24
  # How the private subnet (no public IPs) reaches the internet: nat_gateway (managed, paid
  # hourly), nat_instance (a t3.nano in the public subnet: cheaper, yours to patch);
  # seed: the 2016 layout (public IPs and the internet gateway in both subnets);
  # none: no egress from the private subnet at all.
  private_egress: nat_gateway
  nat:
    name: showcase-nat            # the NAT gateway and its EIP, or the NAT instance
    instance_type: t3.nano
    image:                        # Amazon Linux 2023 minimal, newest
      owner: '137112412989'
      name: al2023-ami-minimal-*-x86_64
  kong_eip: showcase-kong
  # Ingress per group (egress is open, as in the seed). Sources: a CIDR, a group name, or
  # one of world (0.0.0.0/0), admin (admin_cidr; skipped while empty), public, private
  # (the subnets' CIDRs).
  security_groups:
    kong_sg:
      description: Kong gateway (public subnet) and SSH bastion
      rules:
        - {ports: 8000, sources: [world]}
        - {ports: 22, sources: [admin]}
        - {ports: 8001, sources: [private, admin]}
    master_sg:
      description: Mesos/Marathon/Consul/vulcand masters and the salt-master (private subnet)
      rules:
        - {ports: 22, sources: [kong_sg]}
        # The salt-master (on master / master0): only the cluster's own minions reach it.
        - {ports: 4505-4506, sources: [self, kong_sg, slave_sg]}
        - {ports: 2181, sources: [private]}
        # ZooKeeper quorum and leader election between the masters of the ha map.
        - {ports: 2888, sources: [private]}
        - {ports: 3888, sources: [private]}
        - {ports: 5050, sources: [private, public]}
        - {ports: 8080, sources: [private, public]}
        - {ports: 8182, sources: [private, public]}
        # etcd: clients (vulcand; the registration code on kong reads vulcand's objects there)
        # and peers (the masters of the ha map form one etcd cluster).
        - {ports: 2379, sources: [private, public]}
        - {ports: 2380, sources: [private]}
        - {ports: 8500, sources: [private, public]}
        - {protocols: [tcp, udp], ports: 8600, sources: [private, public]}
        - {ports: 8400, sources: [private]}
        - {ports: 8300, sources: [private]}
        - {protocols: [tcp, udp], ports: 8301, sources: [private]}
        - {ports: 6783, sources: [private]}
        - {protocol: udp, ports: 6783-6784, sources: [private]}
        # Service ports (vulcand's listeners), for Kong only.
        - {ports: {{ platform.platform.listener_ports }}, sources: [public]}
    slave_sg:
      description: Mesos agents (private subnet)
      rules:
        - {ports: 22, sources: [kong_sg]}
        - {ports: 6783, sources: [private]}
        - {protocol: udp, ports: 6783-6784, sources: [private]}
        - {ports: 8500, sources: [private]}
        - {protocols: [tcp, udp], ports: 8301, sources: [private]}
        - {ports: 5051, sources: [private, public]}
        - {ports: 50000-60000, sources: [private]}
