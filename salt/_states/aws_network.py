"""
The cluster's AWS network as idempotent states (boto3, through the ``aws_network`` execution
module).

Each ``*_present`` state finds its resource by its ``Name`` tag and the cluster tag,
computes what differs from the arguments, reports it (``test=True`` stops there) and only
then writes. Resources refer to each other by name (``vpc: showcase``), never by id, so the
same SLS converges a fresh account and an existing network. ``absent`` removes the whole
cluster network in dependency order.

Common arguments: ``cluster`` (the cluster tag, default ``showcase``), ``profile`` and
``region`` (see ``awsutil``), ``tags`` (extra tags on creation).

.. code-block:: yaml

    showcase VPC:
      aws_network.vpc_present:
        - name: showcase
        - cidr_block: 10.0.0.0/16
"""

import awsnetworkutil
from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "aws_network"

ANY_PORT = -1


def __virtual__():
    if "aws_network.find" not in __salt__:
        return (False, "the aws_network execution module is not available (boto3 missing?)")
    return __virtualname__


class _ToBeCreated(dict):
    """
    In test mode, a resource this one needs that an earlier state would create: every id
    read from it is a placeholder naming it, so the plan (and its report) goes on as if it
    existed, and ``test=True`` predicts each creation in full.
    """

    def __init__(self, kind, name):
        super().__init__()
        self.placeholder = f"<{kind} {name}>"

    def __missing__(self, key):
        return self.placeholder


def _conn(cluster, profile, region):
    return {"cluster": cluster, "profile": profile, "region": region}


def _find(kind, name, conn):
    return __salt__["aws_network.find"](kind, name, **conn)


def _require(kind, name, conn):
    """The resource ``name`` this state depends on; in test mode it may not exist yet."""
    found = _find(kind, name, conn)
    if found is None:
        if __opts__["test"]:
            return _ToBeCreated(kind, name)
        raise CommandExecutionError(f"The {kind.replace('_', ' ')} {name!r} does not exist")
    return found


def _converge(name, what, plan):
    """
    The shape every state here shares: ``plan()`` returns ``(changes, apply)``; nothing to
    change -> True; test mode -> report; else ``apply()`` and report. ``changes`` with an
    ``old`` of ``None`` at the top level means a creation.
    """
    ret = {
        "name": name,
        "result": True,
        "changes": {},
        "comment": f"{what} is in the correct state",
    }
    try:
        changes, apply = plan()
        if not changes:
            return ret
        verb = "created" if changes.get("old", True) is None else "updated"
        if __opts__["test"]:
            ret.update(result=None, changes=changes, comment=f"{what} would be {verb}")
            return ret
        apply()
        ret.update(changes=changes, comment=f"{what} has been {verb}")
    except (CommandExecutionError, SaltInvocationError) as err:
        ret.update(result=False, changes={}, comment=f"{what}: {err}")
    return ret


def _field_changes(current, desired):
    """``{field: {old, new}}`` for every field of ``desired`` that differs in ``current``."""
    return {
        field: {"old": current.get(field), "new": value}
        for field, value in desired.items()
        if current.get(field) != value
    }


def vpc_present(name, cidr_block, cluster="showcase", tags=None, profile=None, region=None):
    """
    A VPC tagged ``name`` with ``cidr_block`` (DNS support and hostnames on).

    The CIDR of an existing VPC cannot change: a difference fails the state rather than
    replacing the VPC under running instances.
    """
    conn = _conn(cluster, profile, region)

    def plan():
        current = _find("vpc", name, conn)
        if current is None:
            return {"old": None, "new": {"cidr_block": cidr_block}}, lambda: __salt__[
                "aws_network.create_vpc"
            ](name, cidr_block, tags=tags, **conn)
        if current["CidrBlock"] != cidr_block:
            raise CommandExecutionError(
                f"exists with CIDR {current['CidrBlock']}, not {cidr_block}; a VPC's CIDR "
                "cannot change (tear the network down to rebuild it)"
            )
        return {}, None

    return _converge(name, f"VPC {name}", plan)


def internet_gateway_present(
    name, vpc, cluster="showcase", tags=None, profile=None, region=None
):
    """An internet gateway tagged ``name``, attached to the VPC tagged ``vpc``."""
    conn = _conn(cluster, profile, region)

    def plan():
        vpc_id = _require("vpc", vpc, conn)["VpcId"]
        current = _find("internet_gateway", name, conn)
        if current is None:
            return {"old": None, "new": {"vpc": vpc}}, lambda: __salt__[
                "aws_network.create_internet_gateway"
            ](name, vpc_id, tags=tags, **conn)
        attached = [item["VpcId"] for item in current.get("Attachments", [])]
        if vpc_id in attached:
            return {}, None
        if attached:
            raise CommandExecutionError(f"is attached to {attached[0]}, not to VPC {vpc}")
        return {"vpc": {"old": None, "new": vpc}}, lambda: __salt__[
            "aws_network.attach_internet_gateway"
        ](current["InternetGatewayId"], vpc_id, profile=profile, region=region)

    return _converge(name, f"Internet gateway {name}", plan)


def subnet_present(
    name,
    vpc,
    cidr_block,
    availability_zone,
    map_public_ip_on_launch=False,
    cluster="showcase",
    tags=None,
    profile=None,
    region=None,
):
    """
    A subnet tagged ``name`` in the VPC tagged ``vpc``. ``map_public_ip_on_launch`` is
    converged; a different CIDR or zone fails (a subnet cannot move).
    """
    conn = _conn(cluster, profile, region)

    def plan():
        vpc_id = _require("vpc", vpc, conn)["VpcId"]
        current = _find("subnet", name, conn)
        if current is None:
            # A wrong zone (or region) fails here with the zones that exist, not mid-create.
            __salt__["aws_network.check_zone"](availability_zone, profile=profile, region=region)
            new = {
                "vpc": vpc,
                "cidr_block": cidr_block,
                "availability_zone": availability_zone,
                "map_public_ip_on_launch": map_public_ip_on_launch,
            }
            return {"old": None, "new": new}, lambda: __salt__["aws_network.create_subnet"](
                name,
                vpc_id,
                cidr_block,
                availability_zone,
                map_public_ip_on_launch,
                tags=tags,
                **conn,
            )
        fixed = {"VpcId": vpc_id, "CidrBlock": cidr_block, "AvailabilityZone": availability_zone}
        moved = _field_changes(current, fixed)
        if moved:
            raise CommandExecutionError(f"cannot be changed in place: {moved}")
        changes = _field_changes(
            {"map_public_ip_on_launch": current.get("MapPublicIpOnLaunch", False)},
            {"map_public_ip_on_launch": map_public_ip_on_launch},
        )
        return changes, lambda: __salt__["aws_network.set_map_public_ip"](
            current["SubnetId"], map_public_ip_on_launch, profile=profile, region=region
        )

    return _converge(name, f"Subnet {name}", plan)


def address_present(name, cluster="showcase", tags=None, profile=None, region=None):
    """An elastic IP tagged ``name`` (kept across instance re-creation)."""
    conn = _conn(cluster, profile, region)

    def plan():
        if _find("address", name, conn) is not None:
            return {}, None
        return {"old": None, "new": {"domain": "vpc"}}, lambda: __salt__[
            "aws_network.allocate_address"
        ](name, tags=tags, **conn)

    return _converge(name, f"Elastic IP {name}", plan)


def nat_gateway_present(
    name, subnet, address, cluster="showcase", tags=None, profile=None, region=None
):
    """
    A NAT gateway tagged ``name`` in the (public) subnet tagged ``subnet``, using the
    elastic IP tagged ``address``.
    """
    conn = _conn(cluster, profile, region)

    def plan():
        subnet_id = _require("subnet", subnet, conn)["SubnetId"]
        allocation_id = _require("address", address, conn)["AllocationId"]
        current = _find("nat_gateway", name, conn)
        if current is None:
            return {"old": None, "new": {"subnet": subnet, "address": address}}, lambda: __salt__[
                "aws_network.create_nat_gateway"
            ](name, subnet_id, allocation_id, tags=tags, **conn)
        if current["SubnetId"] != subnet_id:
            raise CommandExecutionError(f"is in {current['SubnetId']}, not in subnet {subnet}")
        return {}, None

    return _converge(name, f"NAT gateway {name}", plan)


def nat_instance_present(
    name,
    subnet,
    security_group,
    image_owner,
    image_name,
    instance_type="t3.nano",
    cluster="showcase",
    tags=None,
    profile=None,
    region=None,
):
    """
    The NAT instance tagged ``name`` in the (public) subnet tagged ``subnet``, in the
    security group ``security_group``: the cheap alternative to a NAT gateway. The image is
    the newest of ``image_owner`` named like ``image_name`` (Amazon Linux 2023 by default in
    pillar). An existing instance is kept (replacing it would cut the private subnet off).
    """
    conn = _conn(cluster, profile, region)

    def plan():
        subnet_id = _require("subnet", subnet, conn)["SubnetId"]
        group_id = _require("security_group", security_group, conn)["GroupId"]
        current = _find("instance", name, conn)
        if current is None:
            new = {"subnet": subnet, "instance_type": instance_type, "image_name": image_name}
            return {"old": None, "new": new}, lambda: __salt__[
                "aws_network.launch_nat_instance"
            ](
                name,
                subnet_id,
                group_id,
                image_owner,
                image_name,
                instance_type,
                tags=tags,
                **conn,
            )
        if current["SubnetId"] != subnet_id:
            raise CommandExecutionError(f"is in {current['SubnetId']}, not in subnet {subnet}")
        return {}, None

    return _converge(name, f"NAT instance {name}", plan)


# Route targets are named in SLS by kind, resolved to ids here.
_ROUTE_TARGET_KINDS = {
    "internet_gateway": "InternetGatewayId",
    "nat_gateway": "NatGatewayId",
    "nat_instance": "InstanceId",
}


def _route_target_id(target, conn):
    if not isinstance(target, dict) or len(target) != 1:
        raise SaltInvocationError(
            f"A route target is one of {sorted(_ROUTE_TARGET_KINDS)} with a name, got {target!r}"
        )
    ((kind, target_name),) = target.items()
    if kind not in _ROUTE_TARGET_KINDS:
        raise SaltInvocationError(f"Unsupported route target kind {kind!r}")
    resource_kind = "instance" if kind == "nat_instance" else kind
    return _require(resource_kind, target_name, conn)[_ROUTE_TARGET_KINDS[kind]]


def _route_target_of(route):
    # A route through an instance also names its interface: the instance id comes first.
    for key in ("InstanceId", "GatewayId", "NatGatewayId"):
        if route.get(key):
            return route[key]
    return None


def route_table_present(
    name,
    vpc,
    routes=None,
    subnets=(),
    cluster="showcase",
    tags=None,
    profile=None,
    region=None,
):
    """
    A route table tagged ``name`` in the VPC tagged ``vpc``, with exactly ``routes`` (besides
    the VPC's local route) and explicitly associated with the subnets tagged ``subnets``.

    .. code-block:: yaml

        routes:
          0.0.0.0/0: {internet_gateway: showcase}
        subnets: [showcase-public]
    """
    conn = _conn(cluster, profile, region)
    routes = routes or {}

    def plan():
        vpc_id = _require("vpc", vpc, conn)["VpcId"]
        wanted_routes = {dest: _route_target_id(target, conn) for dest, target in routes.items()}
        wanted_subnets = {
            subnet: _require("subnet", subnet, conn)["SubnetId"] for subnet in subnets
        }
        current = _find("route_table", name, conn)
        if current is None:
            table_id = None
            current_routes, current_subnets = {}, set()
        else:
            table_id = current["RouteTableId"]
            current_routes = {
                route["DestinationCidrBlock"]: _route_target_of(route)
                for route in current.get("Routes", [])
                if route.get("GatewayId") != "local" and "DestinationCidrBlock" in route
            }
            current_subnets = {
                item["SubnetId"] for item in current.get("Associations", []) if item.get("SubnetId")
            }
        changes = {}
        if current_routes != wanted_routes:
            changes["routes"] = {"old": current_routes, "new": wanted_routes}
        missing_subnets = {
            subnet: subnet_id
            for subnet, subnet_id in wanted_subnets.items()
            if subnet_id not in current_subnets
        }
        if missing_subnets:
            changes["subnets"] = {"old": None, "new": sorted(missing_subnets)}
        if current is None:
            changes = {"old": None, "new": {"vpc": vpc, **changes}}

        def apply():
            nonlocal table_id
            aws = {"profile": profile, "region": region}
            if table_id is None:
                table_id = __salt__["aws_network.create_route_table"](
                    name, vpc_id, tags=tags, **conn
                )["RouteTableId"]
            for destination in set(current_routes) - set(wanted_routes):
                __salt__["aws_network.delete_route"](table_id, destination, **aws)
            for destination, target_id in wanted_routes.items():
                if current_routes.get(destination) != target_id:
                    __salt__["aws_network.set_route"](
                        table_id, destination, target_id, destination in current_routes, **aws
                    )
            for subnet_id in missing_subnets.values():
                __salt__["aws_network.associate_route_table"](table_id, subnet_id, **aws)

        return changes, apply

    return _converge(name, f"Route table {name}", plan)


def _desired_rules(rules, own_group_id, conn):
    """
    Flatten normalised rules (``awsnetworkutil.rules``) into ``(protocol, from, to, source)``
    tuples; sources are CIDRs or security group names (``self`` for the group itself),
    resolved to ids. Returns the rules and the group names by id, for the report.
    """
    flat, names = set(), {}
    for rule in rules:
        from_port, to_port = (
            awsnetworkutil.port_range(rule["ports"]) if "ports" in rule else (ANY_PORT, ANY_PORT)
        )
        for source in rule["sources"]:
            if "/" in source:
                source_id = source
            elif source == "self":
                source_id = own_group_id
            else:
                source_id = _require("security_group", source, conn)["GroupId"]
                names[source_id] = source
            for protocol in rule["protocols"]:
                flat.add((protocol, from_port, to_port, source_id))
    return flat, names


def _readable_rules(rules, names):
    return sorted(
        f"{protocol} {low}-{high} from {names.get(source, source)}"
        for protocol, low, high, source in rules
    )


def security_group_present(
    name,
    vpc,
    description,
    rules=None,
    cluster="showcase",
    tags=None,
    profile=None,
    region=None,
):
    """
    A security group named and tagged ``name`` in the VPC tagged ``vpc`` whose ingress rules
    are exactly ``rules`` (rules not listed are revoked). Egress stays AWS's default (all
    open), as in the seed. ``rules`` are checked before anything is read or written (see
    ``awsnetworkutil.rules``): an unknown key, a tcp/udp rule without ports or a bad CIDR
    fails the state, naming the rule.

    .. code-block:: yaml

        rules:
          - {protocol: tcp, ports: 8000, sources: [0.0.0.0/0]}
          - {protocols: [tcp, udp], ports: 8600, sources: [10.0.12.0/24, 10.0.5.0/24]}
          - {protocol: tcp, ports: 22, sources: [kong_sg]}   # another group, by name
    """
    conn = _conn(cluster, profile, region)

    def plan():
        checked = awsnetworkutil.rules([] if rules is None else rules)
        vpc_id = _require("vpc", vpc, conn)["VpcId"]
        current = _find("security_group", name, conn)
        group_id = current["GroupId"] if current else "self"
        wanted, names = _desired_rules(checked, group_id, conn)
        present = (
            {tuple(rule) for rule in __salt__["aws_network.ingress_rules"](current)}
            if current
            else set()
        )
        to_add, to_remove = wanted - present, present - wanted
        names[group_id] = name
        if current is None:
            changes = {"old": None, "new": {"vpc": vpc, "ingress": _readable_rules(wanted, names)}}
        else:
            changes = {}
            if to_add:
                changes["authorized"] = _readable_rules(to_add, names)
            if to_remove:
                changes["revoked"] = _readable_rules(to_remove, names)

        def apply():
            aws = {"profile": profile, "region": region}
            target_id = group_id
            if current is None:
                target_id = __salt__["aws_network.create_security_group"](
                    name, vpc_id, description, tags=tags, **conn
                )
            if to_remove:
                __salt__["aws_network.revoke_ingress"](target_id, to_remove, **aws)
            if to_add:
                resolve = {"self": target_id}
                __salt__["aws_network.authorize_ingress"](
                    target_id,
                    {(proto, low, high, resolve.get(src, src)) for proto, low, high, src in to_add},
                    **aws,
                )

        return changes, apply

    return _converge(name, f"Security group {name}", plan)


def key_pair_present(
    name, public_key_path, cluster="showcase", tags=None, profile=None, region=None
):
    """
    The key pair ``name`` imported from the OpenSSH public key file ``public_key_path``
    (as the seed's ``key_name``/``public_key_path``). An existing key pair is left as is:
    replacing it would lock out instances that use it.
    """
    conn = _conn(cluster, profile, region)

    def plan():
        public_key = __salt__["aws_network.read_public_key"](public_key_path)
        if _find("key_pair", name, conn) is not None:
            return {}, None
        return {"old": None, "new": {"public_key_path": public_key_path}}, lambda: __salt__[
            "aws_network.import_key_pair"
        ](name, public_key, tags=tags, **conn)

    return _converge(name, f"Key pair {name}", plan)


def absent(name, profile=None, region=None):
    """
    No network resource of cluster ``name`` left: see ``aws_network.teardown`` for the order.
    Fails, naming them, while instances still run in the cluster's VPC.
    """
    ret = {
        "name": name,
        "result": True,
        "changes": {},
        "comment": f"Network {name} is already absent",
    }
    try:
        existing = __salt__["aws_network.cluster_resource_ids"](
            name, profile=profile, region=region
        )
        if not existing:
            return ret
        if existing.get("instance"):
            raise CommandExecutionError(
                f"instances still run in it ({', '.join(existing['instance'])}); destroy "
                "them first (salt-cloud -m <map> -d)"
            )
        if __opts__["test"]:
            ret.update(
                result=None,
                changes={"deleted": existing},
                comment=f"Network {name} would be deleted",
            )
            return ret
        deleted = __salt__["aws_network.teardown"](name, profile=profile, region=region)
        ret.update(changes={"deleted": deleted}, comment=f"Network {name} has been deleted")
    except (CommandExecutionError, SaltInvocationError) as err:
        ret.update(result=False, changes={}, comment=f"Network {name}: {err}")
    return ret
