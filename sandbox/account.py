"""What the (moto) AWS account holds, looked at independently of the product's own code.

The sandbox checks the account the way a user would with ``aws ec2 describe-*``: every
resource of the region, whatever its tags, so a resource the product forgot to tag is still
seen as left over. moto's default VPC (and its subnets, route table, security group, internet
gateway) is part of every fresh account and is not counted.
"""

import boto3
import salt.config
import salt.utils.templates
import salt.utils.yaml

_LIVE_INSTANCE = ("pending", "running", "stopping", "stopped", "shutting-down")


def _outside(default_vpcs):
    return lambda item: item.get("VpcId") not in default_vpcs


def _kinds(default_vpcs):
    """kind -> (describe call, result key, id key, counts(resource) -> bool)."""
    outside = _outside(default_vpcs)
    return {
        "instances": (
            "describe_instances",
            "Reservations",
            "InstanceId",
            lambda item: item["State"]["Name"] in _LIVE_INSTANCE,
        ),
        "vpcs": ("describe_vpcs", "Vpcs", "VpcId", outside),
        "subnets": ("describe_subnets", "Subnets", "SubnetId", outside),
        "route_tables": ("describe_route_tables", "RouteTables", "RouteTableId", outside),
        "security_groups": ("describe_security_groups", "SecurityGroups", "GroupId", outside),
        "internet_gateways": (
            "describe_internet_gateways",
            "InternetGateways",
            "InternetGatewayId",
            lambda item: not {a["VpcId"] for a in item.get("Attachments", [])} & default_vpcs,
        ),
        "nat_gateways": (
            "describe_nat_gateways",
            "NatGateways",
            "NatGatewayId",
            lambda item: item["State"] in ("pending", "available"),
        ),
        "addresses": ("describe_addresses", "Addresses", "AllocationId", lambda item: True),
        "key_pairs": ("describe_key_pairs", "KeyPairs", "KeyName", lambda item: True),
    }


def _name(item, id_key):
    tags = {tag["Key"]: tag["Value"] for tag in item.get("Tags", [])}
    return f"{item[id_key]} ({tags['Name']})" if "Name" in tags else item[id_key]


def client(env):
    """An EC2 client of the account (moto_server's endpoint, its test credentials)."""
    session = boto3.session.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name=env["AWS_DEFAULT_REGION"],
    )
    return session.client("ec2", endpoint_url=env["AWS_ENDPOINT_URL"])


def inventory(env):
    """``{kind: [description, ...]}`` of what was created in the account (see module doc).

    Instances are described as ``{"name", "id", "private_ip", "public_ip", "subnet"}``, the
    other resources as ``"<id> (<Name tag>)"``.
    """
    ec2 = client(env)
    default_vpcs = {vpc["VpcId"] for vpc in ec2.describe_vpcs()["Vpcs"] if vpc.get("IsDefault")}
    found = {}
    for kind, (call, key, id_key, counts) in _kinds(default_vpcs).items():
        items = getattr(ec2, call)()[key]
        if kind == "instances":
            items = [instance for reservation in items for instance in reservation["Instances"]]
        items = [item for item in items if counts(item)]
        describe = _instance if kind == "instances" else lambda item, id_key=id_key: _name(item, id_key)
        found[kind] = [describe(item) for item in items]
    return found


def _instance(item):
    tags = {tag["Key"]: tag["Value"] for tag in item.get("Tags", [])}
    return {
        "name": tags.get("Name", item["InstanceId"]),
        "id": item["InstanceId"],
        "private_ip": item.get("PrivateIpAddress"),
        "public_ip": item.get("PublicIpAddress"),
        "subnet": item.get("SubnetId"),
    }


def map_nodes(repo_root, map_path, created):
    """``{node: grains}`` for each node of a cloud map, as its minion would report them.

    Roles come from the map (or the node's profile), the address from the instance created.
    Maps are Jinja + YAML, rendered as salt-cloud renders them for ``--no-deploy``.
    """
    opts = {**salt.config.DEFAULT_MASTER_OPTS, "deploy": False}
    rendered = salt.utils.templates.render_jinja_tmpl(
        (repo_root / map_path).read_text(), {"opts": opts, "saltenv": "base"}
    )
    cloud_map = salt.utils.yaml.safe_load(rendered) or {}
    profiles = _profiles(repo_root)
    addresses = {instance["name"]: instance["private_ip"] for instance in created.get("instances", [])}
    nodes = {}
    for profile, entries in cloud_map.items():
        for entry in entries:
            node, overrides = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
            grains = {**profiles.get(profile, {}).get("grains", {}), **(overrides or {}).get("grains", {})}
            if addresses.get(node):
                grains["ipv4"] = ["127.0.0.1", addresses[node]]
            nodes[node] = grains
    return nodes


def _profiles(repo_root):
    profiles = {}
    for path in sorted((repo_root / "cloud.profiles.d").glob("*.conf")):
        profiles.update(salt.utils.yaml.safe_load(path.read_text()) or {})
    return profiles
