"""
The cluster's AWS network through boto3: read-only lookups by tag (the "facts" the
``aws_network`` states converge from) and the individual writes those states apply.

Every resource carries a ``Name`` tag and the cluster tag ``showcase:cluster=<cluster>``;
lookups only ever match both, so several clusters (or unrelated resources) can share an
account. Connection arguments on every function: ``profile`` (shared-config profile, default
``showcase``; ``''`` for the default chain) and ``region`` (default: the profile's, else
eu-west-1). ``AWS_ENDPOINT_URL`` is honoured (see ``awsutil``).

:depends: boto3
"""

import os

import awsnetworkutil
import awsutil
from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "aws_network"

# kind -> (describe operation, result key, id key, tag-specification resource type)
KINDS = {
    "vpc": ("describe_vpcs", "Vpcs", "VpcId", "vpc"),
    "subnet": ("describe_subnets", "Subnets", "SubnetId", "subnet"),
    "internet_gateway": (
        "describe_internet_gateways",
        "InternetGateways",
        "InternetGatewayId",
        "internet-gateway",
    ),
    "route_table": ("describe_route_tables", "RouteTables", "RouteTableId", "route-table"),
    "security_group": ("describe_security_groups", "SecurityGroups", "GroupId", "security-group"),
    "nat_gateway": ("describe_nat_gateways", "NatGateways", "NatGatewayId", "natgateway"),
    "address": ("describe_addresses", "Addresses", "AllocationId", "elastic-ip"),
    "key_pair": ("describe_key_pairs", "KeyPairs", "KeyPairId", "key-pair"),
    "instance": ("describe_instances", "Reservations", "InstanceId", "instance"),
}

# NAT gateways stay listed for a while after deletion; only these count as existing.
LIVE_NAT_GATEWAY_STATES = ("pending", "available")
# Instances in these states still hold network interfaces in the VPC.
LIVE_INSTANCE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]

# Marks the instances the network itself owns (the NAT instance): teardown removes those,
# and refuses while any other instance runs.
ROLE_TAG = "showcase:role"
NAT_ROLE = "nat"

# The NAT instance forwards and masquerades the private subnet's traffic (Amazon Linux 2023).
NAT_USER_DATA = """#!/bin/sh
set -e
echo net.ipv4.ip_forward=1 > /etc/sysctl.d/90-nat.conf
sysctl -p /etc/sysctl.d/90-nat.conf
dnf install -y iptables-services
uplink=$(ip route show default | awk '{print $5; exit}')
iptables -t nat -A POSTROUTING -o "$uplink" -j MASQUERADE
iptables -F FORWARD
service iptables save
systemctl enable --now iptables
"""


def __virtual__():
    if not awsutil.HAS_BOTO3:
        return (False, "aws_network needs boto3")
    return __virtualname__


def _ec2(profile=None, region=None):
    return awsutil.client("ec2", profile=profile, region=region)


def _tags(name, cluster, tags=None):
    return {**(tags or {}), "Name": name, awsutil.CLUSTER_TAG: cluster}


def _describe(kind, tags, profile=None, region=None):
    """Every resource of ``kind`` carrying all of ``tags``."""
    operation, result_key, _, _ = KINDS[kind]
    ec2 = _ec2(profile, region)
    filters = awsutil.tag_filters(tags)
    if kind == "nat_gateway":
        filters.append({"Name": "state", "Values": list(LIVE_NAT_GATEWAY_STATES)})
        return awsutil.paginate(ec2, operation, result_key, Filter=filters)
    if kind == "instance":
        filters.append({"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES})
        reservations = awsutil.paginate(ec2, operation, result_key, Filters=filters)
        return [instance for reservation in reservations for instance in reservation["Instances"]]
    if kind == "address":  # not paginated
        return awsutil.call(ec2, operation, Filters=filters)[result_key]
    if kind == "key_pair":
        # Not paginated, and moto ignores tag filters on key pairs: match the tags here.
        return [
            item
            for item in awsutil.call(ec2, operation)[result_key]
            if tags.items() <= awsutil.tags_to_dict(item.get("Tags")).items()
        ]
    return awsutil.paginate(ec2, operation, result_key, Filters=filters)


def find(kind, name, cluster="showcase", profile=None, region=None):
    """
    The resource of ``kind`` tagged ``Name=name`` in ``cluster``, as AWS describes it, or
    ``None``. Raises when the tags match more than one resource (the state cannot pick one).

    :param kind: one of vpc, subnet, internet_gateway, route_table, security_group,
        nat_gateway, address, key_pair, instance
    :param name: the ``Name`` tag
    :param cluster: the cluster tag value

    CLI Example:

    .. code-block:: bash

        salt-call aws_network.find subnet showcase-private
    """
    if kind not in KINDS:
        raise SaltInvocationError(f"Unknown AWS network kind {kind!r}; one of {sorted(KINDS)}")
    found = _describe(kind, {"Name": name, awsutil.CLUSTER_TAG: cluster}, profile, region)
    if len(found) > 1:
        ids = ", ".join(item[KINDS[kind][2]] for item in found)
        raise CommandExecutionError(f"{len(found)} {kind}s are tagged Name={name}: {ids}")
    return found[0] if found else None


def list_cluster(kind, cluster="showcase", profile=None, region=None):
    """
    Every resource of ``kind`` carrying the cluster tag.

    CLI Example:

    .. code-block:: bash

        salt-call aws_network.list_cluster security_group
    """
    return _describe(kind, {awsutil.CLUSTER_TAG: cluster}, profile, region)


def create_vpc(name, cidr_block, cluster="showcase", tags=None, profile=None, region=None):
    """
    Create a VPC with DNS support and hostnames (Consul's recursor is the VPC resolver).

    CLI Example:

    .. code-block:: bash

        salt-call aws_network.create_vpc showcase 10.0.0.0/16
    """
    ec2 = _ec2(profile, region)
    vpc = awsutil.call(
        ec2,
        "create_vpc",
        CidrBlock=cidr_block,
        TagSpecifications=awsutil.tag_specification("vpc", _tags(name, cluster, tags)),
    )["Vpc"]
    awsutil.wait(ec2, "vpc_available", VpcIds=[vpc["VpcId"]])
    for attribute in ("EnableDnsSupport", "EnableDnsHostnames"):
        awsutil.call(
            ec2, "modify_vpc_attribute", VpcId=vpc["VpcId"], **{attribute: {"Value": True}}
        )
    return vpc


def create_internet_gateway(name, vpc_id, cluster="showcase", tags=None, profile=None, region=None):
    """
    Create an internet gateway and attach it to ``vpc_id``.

    CLI Example:

    .. code-block:: bash

        salt-call aws_network.create_internet_gateway showcase vpc-0123
    """
    ec2 = _ec2(profile, region)
    gateway = awsutil.call(
        ec2,
        "create_internet_gateway",
        TagSpecifications=awsutil.tag_specification(
            "internet-gateway", _tags(name, cluster, tags)
        ),
    )["InternetGateway"]
    attach_internet_gateway(gateway["InternetGatewayId"], vpc_id, profile, region)
    return gateway


def attach_internet_gateway(gateway_id, vpc_id, profile=None, region=None):
    """
    Attach an existing internet gateway to a VPC.

    CLI Example:

    .. code-block:: bash

        salt-call aws_network.attach_internet_gateway igw-0123 vpc-0123
    """
    awsutil.call(
        _ec2(profile, region),
        "attach_internet_gateway",
        InternetGatewayId=gateway_id,
        VpcId=vpc_id,
    )


def create_subnet(
    name,
    vpc_id,
    cidr_block,
    availability_zone,
    map_public_ip_on_launch=False,
    cluster="showcase",
    tags=None,
    profile=None,
    region=None,
):
    """
    Create a subnet in one availability zone.

    CLI Example:

    .. code-block:: bash

        salt-call aws_network.create_subnet showcase-public vpc-0123 10.0.5.0/24 eu-west-1a True
    """
    ec2 = _ec2(profile, region)
    subnet = awsutil.call(
        ec2,
        "create_subnet",
        VpcId=vpc_id,
        CidrBlock=cidr_block,
        AvailabilityZone=availability_zone,
        TagSpecifications=awsutil.tag_specification("subnet", _tags(name, cluster, tags)),
    )["Subnet"]
    set_map_public_ip(subnet["SubnetId"], map_public_ip_on_launch, profile, region)
    return subnet


def set_map_public_ip(subnet_id, enabled, profile=None, region=None):
    """
    Set whether instances launched in the subnet get a public IP.

    CLI Example:

    .. code-block:: bash

        salt-call aws_network.set_map_public_ip subnet-0123 False
    """
    awsutil.call(
        _ec2(profile, region),
        "modify_subnet_attribute",
        SubnetId=subnet_id,
        MapPublicIpOnLaunch={"Value": bool(enabled)},
    )


def allocate_address(name, cluster="showcase", tags=None, profile=None, region=None):
    """
    Allocate a VPC elastic IP tagged ``name``.

    CLI Example:

    .. code-block:: bash

        salt-call aws_network.allocate_address showcase-kong
    """
    return awsutil.call(
        _ec2(profile, region),
        "allocate_address",
        Domain="vpc",
        TagSpecifications=awsutil.tag_specification("elastic-ip", _tags(name, cluster, tags)),
    )


def create_nat_gateway(
    name, subnet_id, allocation_id, cluster="showcase", tags=None, profile=None, region=None
):
    """
    Create a NAT gateway in ``subnet_id`` with the elastic IP ``allocation_id``, and wait
    until it is available (routes to a pending NAT gateway blackhole).

    CLI Example:

    .. code-block:: bash

        salt-call aws_network.create_nat_gateway showcase-nat subnet-0123 eipalloc-0123
    """
    ec2 = _ec2(profile, region)
    gateway = awsutil.call(
        ec2,
        "create_nat_gateway",
        SubnetId=subnet_id,
        AllocationId=allocation_id,
        TagSpecifications=awsutil.tag_specification("natgateway", _tags(name, cluster, tags)),
    )["NatGateway"]
    awsutil.wait(ec2, "nat_gateway_available", NatGatewayIds=[gateway["NatGatewayId"]])
    return gateway


def launch_nat_instance(
    name,
    subnet_id,
    group_id,
    image_owner,
    image_name,
    instance_type="t3.nano",
    cluster="showcase",
    tags=None,
    profile=None,
    region=None,
):
    """
    Launch the NAT instance of the private subnet in the public ``subnet_id``: the newest AMI
    of ``image_owner`` named like ``image_name``, source/destination check off, forwarding
    and masquerading set up by its user data. Waits until it runs.

    CLI Example:

    .. code-block:: bash

        salt-call aws_network.launch_nat_instance showcase-nat subnet-0123 sg-0123 \
            137112412989 'al2023-ami-minimal-*-x86_64'
    """
    ec2 = _ec2(profile, region)
    images = awsutil.matching_images(ec2, image_owner, image_name)
    if not images:
        raise CommandExecutionError(
            f"No AMI for the NAT instance: owner {image_owner}, name {image_name}, "
            f"region {ec2.meta.region_name}"
        )
    instance = awsutil.call(
        ec2,
        "run_instances",
        ImageId=images[0]["ImageId"],
        InstanceType=instance_type,
        MinCount=1,
        MaxCount=1,
        NetworkInterfaces=[
            {
                "DeviceIndex": 0,
                "SubnetId": subnet_id,
                "Groups": [group_id],
                "AssociatePublicIpAddress": True,
            }
        ],
        UserData=NAT_USER_DATA,
        TagSpecifications=awsutil.tag_specification(
            "instance", _tags(name, cluster, {**(tags or {}), ROLE_TAG: NAT_ROLE})
        ),
    )["Instances"][0]
    awsutil.wait(ec2, "instance_running", InstanceIds=[instance["InstanceId"]])
    # A NAT forwards packets that are neither from nor to itself.
    awsutil.call(
        ec2,
        "modify_instance_attribute",
        InstanceId=instance["InstanceId"],
        SourceDestCheck={"Value": False},
    )
    return instance


def create_route_table(name, vpc_id, cluster="showcase", tags=None, profile=None, region=None):
    """
    Create an (empty) route table in ``vpc_id``.

    CLI Example:

    .. code-block:: bash

        salt-call aws_network.create_route_table showcase-public vpc-0123
    """
    return awsutil.call(
        _ec2(profile, region),
        "create_route_table",
        VpcId=vpc_id,
        TagSpecifications=awsutil.tag_specification("route-table", _tags(name, cluster, tags)),
    )["RouteTable"]


def _route_target_key(target_id):
    """The boto3 route argument for a target id (igw-..., nat-..., i-...)."""
    for prefix, key in (("igw-", "GatewayId"), ("nat-", "NatGatewayId"), ("i-", "InstanceId")):
        if target_id.startswith(prefix):
            return key
    raise SaltInvocationError(f"Unsupported route target {target_id!r}")


def set_route(route_table_id, destination, target_id, replace=False, profile=None, region=None):
    """
    Create (or, with ``replace``, change) the route to ``destination`` through ``target_id``.

    CLI Example:

    .. code-block:: bash

        salt-call aws_network.set_route rtb-0123 0.0.0.0/0 igw-0123
    """
    awsutil.call(
        _ec2(profile, region),
        "replace_route" if replace else "create_route",
        RouteTableId=route_table_id,
        DestinationCidrBlock=destination,
        **{_route_target_key(target_id): target_id},
    )


def delete_route(route_table_id, destination, profile=None, region=None):
    """
    Delete the route to ``destination``.

    CLI Example:

    .. code-block:: bash

        salt-call aws_network.delete_route rtb-0123 0.0.0.0/0
    """
    awsutil.call(
        _ec2(profile, region),
        "delete_route",
        RouteTableId=route_table_id,
        DestinationCidrBlock=destination,
    )


def associate_route_table(route_table_id, subnet_id, profile=None, region=None):
    """
    Make ``route_table_id`` the route table of ``subnet_id``, replacing a previous explicit
    association of that subnet.

    CLI Example:

    .. code-block:: bash

        salt-call aws_network.associate_route_table rtb-0123 subnet-0123
    """
    ec2 = _ec2(profile, region)
    current = awsutil.call(
        ec2,
        "describe_route_tables",
        Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}],
    )["RouteTables"]
    for table in current:
        for association in table.get("Associations", []):
            if association.get("SubnetId") == subnet_id:
                awsutil.call(
                    ec2,
                    "replace_route_table_association",
                    AssociationId=association["RouteTableAssociationId"],
                    RouteTableId=route_table_id,
                )
                return
    awsutil.call(ec2, "associate_route_table", RouteTableId=route_table_id, SubnetId=subnet_id)


def create_security_group(
    name, vpc_id, description, cluster="showcase", tags=None, profile=None, region=None
):
    """
    Create a security group (its default egress rule allows everything, as in the seed).

    CLI Example:

    .. code-block:: bash

        salt-call aws_network.create_security_group kong_sg vpc-0123 "Kong gateway"
    """
    return awsutil.call(
        _ec2(profile, region),
        "create_security_group",
        GroupName=name,
        VpcId=vpc_id,
        Description=description,
        TagSpecifications=awsutil.tag_specification("security-group", _tags(name, cluster, tags)),
    )["GroupId"]


def ingress_rules(group):
    """
    A security group's ingress rules (from a ``describe_security_groups`` item) as a sorted
    list of flat ``[protocol, from_port, to_port, source]`` rules; ``source`` is a CIDR or
    a group id. This is the form the states compare desired rules in.

    CLI Example:

    .. code-block:: bash

        salt-call aws_network.ingress_rules \
            "$(salt-call --out=json aws_network.find security_group kong_sg)"
    """
    rules = set()
    for permission in group.get("IpPermissions", []):
        key = (
            permission["IpProtocol"],
            permission.get("FromPort", -1),
            permission.get("ToPort", -1),
        )
        for ip_range in permission.get("IpRanges", []):
            rules.add((*key, ip_range["CidrIp"]))
        for pair in permission.get("UserIdGroupPairs", []):
            rules.add((*key, pair["GroupId"]))
    return [list(rule) for rule in sorted(rules)]


def _permissions(rules):
    permissions = []
    for protocol, from_port, to_port, source in sorted(tuple(rule) for rule in rules):
        permission = {"IpProtocol": protocol, "FromPort": from_port, "ToPort": to_port}
        if source.startswith("sg-"):
            permission["UserIdGroupPairs"] = [{"GroupId": source}]
        else:
            permission["IpRanges"] = [{"CidrIp": source}]
        permissions.append(permission)
    return permissions


def _change_ingress(operation, group_id, rules, profile, region):
    if rules:
        awsutil.call(
            _ec2(profile, region), operation, GroupId=group_id, IpPermissions=_permissions(rules)
        )


def authorize_ingress(group_id, rules, profile=None, region=None):
    """
    Add ingress rules, given as ``(protocol, from_port, to_port, source)`` tuples.

    CLI Example:

    .. code-block:: bash

        salt-call aws_network.authorize_ingress sg-0123 '[["tcp", 22, 22, "198.51.100.7/32"]]'
    """
    _change_ingress("authorize_security_group_ingress", group_id, rules, profile, region)


def revoke_ingress(group_id, rules, profile=None, region=None):
    """
    Remove ingress rules, given as ``(protocol, from_port, to_port, source)`` tuples.

    CLI Example:

    .. code-block:: bash

        salt-call aws_network.revoke_ingress sg-0123 '[["tcp", 22, 22, "0.0.0.0/0"]]'
    """
    _change_ingress("revoke_security_group_ingress", group_id, rules, profile, region)


def read_public_key(public_key_path):
    """
    The OpenSSH public key in ``public_key_path`` (``~`` expanded), with a clear error when
    the file is missing.

    CLI Example:

    .. code-block:: bash

        salt-call aws_network.read_public_key ~/.ssh/showcase.pub
    """
    problem = awsnetworkutil.public_key_problem(public_key_path)
    if problem:
        raise CommandExecutionError(problem[0].upper() + problem[1:])
    with open(os.path.expanduser(public_key_path), encoding="utf-8") as handle:
        return handle.read().strip()


def import_key_pair(name, public_key, cluster="showcase", tags=None, profile=None, region=None):
    """
    Import an OpenSSH public key as the key pair ``name``.

    CLI Example:

    .. code-block:: bash

        salt-call aws_network.import_key_pair showcase "$(cat ~/.ssh/showcase.pub)"
    """
    return awsutil.call(
        _ec2(profile, region),
        "import_key_pair",
        KeyName=name,
        PublicKeyMaterial=public_key.encode(),
        TagSpecifications=awsutil.tag_specification("key-pair", _tags(name, cluster, tags)),
    )


def validate_network(aws):
    """
    Pillar ``aws`` checked before anything is created (``orch.network`` calls this first):
    every key, type, CIDR, rule, the admin CIDR, the public key file, and the availability
    zone against the region's (one read). Returns it normalised (see
    ``awsnetworkutil.network``); raises one error listing every problem by key path.

    CLI Example:

    .. code-block:: bash

        salt-call aws_network.validate_network "$(salt-call --out=json pillar.get aws)"
    """
    plan = awsnetworkutil.network(aws)
    try:
        check_zone(plan["zone"], profile=plan["profile"], region=plan["region"])
    except awsutil.AwsError:
        raise
    except CommandExecutionError as err:
        raise awsnetworkutil.InvalidNetwork("pillar aws", [f"aws:zone: {err}"]) from err
    return plan


def check_zone(zone, profile=None, region=None):
    """
    Raise a clear error unless ``zone`` is an available zone of the region.

    CLI Example:

    .. code-block:: bash

        salt-call aws_network.check_zone eu-west-1a
    """
    ec2 = _ec2(profile, region)
    zones = awsutil.call(ec2, "describe_availability_zones")["AvailabilityZones"]
    names = sorted(item["ZoneName"] for item in zones if item.get("State") == "available")
    if zone not in names:
        raise CommandExecutionError(
            f"Availability zone {zone!r} is not available in region "
            f"{ec2.meta.region_name}; available: {', '.join(names)}"
        )
    return True


def cluster_resources(cluster="showcase", profile=None, region=None):
    """
    Every network resource of the cluster, by kind, in the order a teardown deletes them.
    The NAT instance is a ``nat_instance``; other instances still in the cluster's VPCs
    (salt-cloud's) are listed under ``instance``.

    CLI Example:

    .. code-block:: bash

        salt-call aws_network.cluster_resources
    """
    ec2 = _ec2(profile, region)
    vpcs = list_cluster("vpc", cluster, profile, region)
    vpc_ids = [vpc["VpcId"] for vpc in vpcs]
    resources = {
        "instance": [],
        "nat_instance": [],
        "nat_gateway": list_cluster("nat_gateway", cluster, profile, region),
        "address": list_cluster("address", cluster, profile, region),
        "network_interface": [],
        "security_group": list_cluster("security_group", cluster, profile, region),
        "route_table": list_cluster("route_table", cluster, profile, region),
        "subnet": list_cluster("subnet", cluster, profile, region),
        "internet_gateway": list_cluster("internet_gateway", cluster, profile, region),
        "vpc": vpcs,
        "key_pair": list_cluster("key_pair", cluster, profile, region),
    }
    if vpc_ids:
        vpc_filter = [{"Name": "vpc-id", "Values": vpc_ids}]
        reservations = awsutil.paginate(
            ec2,
            "describe_instances",
            "Reservations",
            Filters=vpc_filter + [{"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES}],
        )
        for reservation in reservations:
            for instance in reservation["Instances"]:
                kind = "nat_instance" if _is_nat_instance(instance) else "instance"
                resources[kind].append(instance)
        # Interfaces left behind by deleted instances or services (status "available") would
        # keep the subnets from being deleted.
        resources["network_interface"] = awsutil.paginate(
            ec2,
            "describe_network_interfaces",
            "NetworkInterfaces",
            Filters=vpc_filter + [{"Name": "status", "Values": ["available"]}],
        )
    return resources


def _is_nat_instance(instance):
    return awsutil.tags_to_dict(instance.get("Tags")).get(ROLE_TAG) == NAT_ROLE


def _resource_ids(resources):
    """``{kind: [id, ...]}`` for the output of :func:`cluster_resources` (empty kinds omitted)."""
    id_keys = {kind: spec[2] for kind, spec in KINDS.items()}
    id_keys.update(nat_instance="InstanceId", network_interface="NetworkInterfaceId")
    return {
        kind: [item[id_keys[kind]] for item in items] for kind, items in resources.items() if items
    }


def cluster_resource_ids(cluster="showcase", profile=None, region=None):
    """
    The ids of :func:`cluster_resources`, by kind (kinds with nothing left are omitted).

    CLI Example:

    .. code-block:: bash

        salt-call aws_network.cluster_resource_ids showcase
    """
    return _resource_ids(cluster_resources(cluster, profile, region))


def teardown(cluster="showcase", profile=None, region=None):
    """
    Delete every network resource of the cluster in dependency order: the NAT instance and
    NAT gateways (waiting until gone), elastic IPs (disassociated first), orphaned network
    interfaces, security group rules referring to other groups, security groups, route
    tables, subnets, internet gateways (detached first), VPCs, key pairs. Refuses while
    instances run in the VPC: destroy them first (``salt-cloud -m cloud.maps.d/default.map -d``).

    Returns ``{kind: [deleted id, ...]}``.

    CLI Example:

    .. code-block:: bash

        salt-call aws_network.teardown showcase
    """
    ec2 = _ec2(profile, region)
    resources = cluster_resources(cluster, profile, region)
    if resources["instance"]:
        names = ", ".join(
            awsutil.tags_to_dict(item.get("Tags")).get("Name", item["InstanceId"])
            for item in resources["instance"]
        )
        raise CommandExecutionError(
            f"Instances still run in the {cluster} VPC ({names}); destroy them first "
            "(salt-cloud -d or salt-cloud -m <map> -d)"
        )
    nat_instance_ids = [item["InstanceId"] for item in resources["nat_instance"]]
    if nat_instance_ids:
        awsutil.call(ec2, "terminate_instances", InstanceIds=nat_instance_ids)
        awsutil.wait(ec2, "instance_terminated", InstanceIds=nat_instance_ids)
    nat_ids = [item["NatGatewayId"] for item in resources["nat_gateway"]]
    for nat_id in nat_ids:
        awsutil.call(ec2, "delete_nat_gateway", NatGatewayId=nat_id)
    if nat_ids:
        awsutil.wait(ec2, "nat_gateway_deleted", NatGatewayIds=nat_ids)
    for address in resources["address"]:
        if address.get("AssociationId"):
            awsutil.call(ec2, "disassociate_address", AssociationId=address["AssociationId"])
        awsutil.call(ec2, "release_address", AllocationId=address["AllocationId"])
    for interface in resources["network_interface"]:
        awsutil.call(
            ec2, "delete_network_interface", NetworkInterfaceId=interface["NetworkInterfaceId"]
        )
    # A group cannot be deleted while another group's rule refers to it: drop those first.
    for group in resources["security_group"]:
        referring = [rule for rule in ingress_rules(group) if rule[3].startswith("sg-")]
        revoke_ingress(group["GroupId"], referring, profile, region)
    for group in resources["security_group"]:
        awsutil.call(ec2, "delete_security_group", GroupId=group["GroupId"])
    for table in resources["route_table"]:
        for association in table.get("Associations", []):
            if not association.get("Main"):
                awsutil.call(
                    ec2,
                    "disassociate_route_table",
                    AssociationId=association["RouteTableAssociationId"],
                )
        awsutil.call(ec2, "delete_route_table", RouteTableId=table["RouteTableId"])
    for subnet in resources["subnet"]:
        awsutil.call(ec2, "delete_subnet", SubnetId=subnet["SubnetId"])
    for gateway in resources["internet_gateway"]:
        for attachment in gateway.get("Attachments", []):
            awsutil.call(
                ec2,
                "detach_internet_gateway",
                InternetGatewayId=gateway["InternetGatewayId"],
                VpcId=attachment["VpcId"],
            )
        awsutil.call(
            ec2, "delete_internet_gateway", InternetGatewayId=gateway["InternetGatewayId"]
        )
    for vpc in resources["vpc"]:
        awsutil.call(ec2, "delete_vpc", VpcId=vpc["VpcId"])
    for key_pair in resources["key_pair"]:
        awsutil.call(ec2, "delete_key_pair", KeyName=key_pair["KeyName"])
    return _resource_ids(resources)
