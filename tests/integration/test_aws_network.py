"""
The network orchestration against a real moto_server: `salt-run state.orchestrate
orch.network` builds the seed's network (tightened), converges to no changes, writes nothing
in test mode, and `orch.network_teardown` leaves the account empty.
"""

import os
import pathlib

import pytest

from tests.fixtures.moto import ADMIN_CIDR
from tests.repo_pillar import rendered_pillar

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

PUBLIC = "10.0.5.0/24"
PRIVATE = "10.0.12.0/24"


def _orchestrate(salt_run_cli, sls, test=False):
    args = ["state.orchestrate", sls]
    if test:
        args.append("test=True")
    # The CLI factory copied the environment when the session started: pass moto's.
    ret = salt_run_cli.run(*args, env=dict(os.environ))
    states = ret.data["data"][next(iter(ret.data["data"]))] if ret.data else {}
    return ret, states


def _failures(states):
    return {key: value["comment"] for key, value in states.items() if value["result"] is False}


def _changes(states):
    return {key: value["changes"] for key, value in states.items() if value["changes"]}


def _account(ec2):
    """What exists in the simulated account, beyond the defaults AWS creates."""
    return {
        "vpcs": [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if not v["IsDefault"]],
        "subnets": [
            s["SubnetId"] for s in ec2.describe_subnets()["Subnets"] if not s["DefaultForAz"]
        ],
        "security_groups": [
            g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]
            if g["GroupName"] != "default"
        ],
        "internet_gateways": [
            g["InternetGatewayId"]
            for g in ec2.describe_internet_gateways()["InternetGateways"]
            if not any(a["VpcId"] in _default_vpcs(ec2) for a in g.get("Attachments", []))
        ],
        "addresses": ec2.describe_addresses()["Addresses"],
        "nat_gateways": [
            n for n in ec2.describe_nat_gateways()["NatGateways"] if n["State"] != "deleted"
        ],
        "key_pairs": ec2.describe_key_pairs()["KeyPairs"],
        "network_interfaces": ec2.describe_network_interfaces()["NetworkInterfaces"],
    }


def _default_vpcs(ec2):
    return {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v["IsDefault"]}


def _by_name(items):
    return {
        next(t["Value"] for t in item.get("Tags", []) if t["Key"] == "Name"): item
        for item in items
        if any(t["Key"] == "Name" for t in item.get("Tags", []))
    }


def _ingress(group, names):
    rules = set()
    for perm in group["IpPermissions"]:
        for protocol in [perm["IpProtocol"]]:
            for ip_range in perm.get("IpRanges", []):
                rules.add((protocol, perm["FromPort"], perm["ToPort"], ip_range["CidrIp"]))
            for pair in perm.get("UserIdGroupPairs", []):
                rules.add((protocol, perm["FromPort"], perm["ToPort"], names[pair["GroupId"]]))
    return rules


def _tcp(port, *sources, high=None):
    return {("tcp", port, high or port, source) for source in sources}


def _udp(port, *sources):
    return {("udp", port, port, source) for source in sources}


EXPECTED_INGRESS = {
    "kong_sg": _tcp(8000, "0.0.0.0/0")
    | _tcp(22, ADMIN_CIDR)
    | _tcp(8001, PRIVATE, ADMIN_CIDR),
    "master_sg": _tcp(22, "kong_sg")
    | _tcp(4505, "master_sg", "kong_sg", "slave_sg", high=4506)
    | _tcp(2181, PRIVATE)
    | _tcp(2888, PRIVATE)
    | _tcp(3888, PRIVATE)
    | set().union(*(_tcp(port, PRIVATE, PUBLIC) for port in (2379, 5050, 8080, 8182, 8500, 8600)))
    | _tcp(2380, PRIVATE)
    | _udp(8600, PRIVATE, PUBLIC)
    | _tcp(8400, PRIVATE)
    | _tcp(8300, PRIVATE)
    | _tcp(8301, PRIVATE)
    | _udp(8301, PRIVATE)
    | _tcp(6783, PRIVATE)
    | {("udp", 6783, 6784, PRIVATE)}
    | _tcp(10000, PUBLIC, high=11000),
    "slave_sg": _tcp(22, "kong_sg")
    | _tcp(6783, PRIVATE)
    | {("udp", 6783, 6784, PRIVATE)}
    | _tcp(8500, PRIVATE)
    | _tcp(8301, PRIVATE)
    | _udp(8301, PRIVATE)
    | _tcp(5051, PRIVATE, PUBLIC)
    | _tcp(50000, PRIVATE, high=60000),
}


def test_network_orchestration_builds_converges_and_tears_down(
    aws_env, aws_pillar, salt_run_cli
):
    aws_pillar()
    ec2 = aws_env.client("ec2")
    empty = _account(ec2)

    ret, states = _orchestrate(salt_run_cli, "orch.network", test=True)
    assert ret.returncode == 0, _failures(states) or ret
    assert states and all(state["result"] is None for state in states.values()), states
    assert _account(ec2) == empty, "test mode must write nothing"

    ret, states = _orchestrate(salt_run_cli, "orch.network")
    assert ret.returncode == 0, _failures(states) or ret
    assert all(state["result"] is True for state in states.values()), states
    assert len(_changes(states)) == len(states), "a fresh account: every state creates"

    vpcs = _by_name(ec2.describe_vpcs()["Vpcs"])
    assert vpcs["showcase"]["CidrBlock"] == "10.0.0.0/16"
    subnets = _by_name(ec2.describe_subnets()["Subnets"])
    assert subnets["showcase-public"]["CidrBlock"] == PUBLIC
    assert subnets["showcase-public"]["MapPublicIpOnLaunch"] is True
    assert subnets["showcase-private"]["CidrBlock"] == PRIVATE
    assert subnets["showcase-private"]["MapPublicIpOnLaunch"] is False
    assert {s["AvailabilityZone"] for s in subnets.values()} == {"eu-west-1a"}

    tables = _by_name(ec2.describe_route_tables()["RouteTables"])
    igw = _by_name(ec2.describe_internet_gateways()["InternetGateways"])["showcase"]
    nat = _by_name(
        n for n in ec2.describe_nat_gateways()["NatGateways"] if n["State"] == "available"
    )["showcase-nat"]
    default_routes = {
        name: next(r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0")
        for name, table in tables.items()
    }
    assert default_routes["showcase-public"]["GatewayId"] == igw["InternetGatewayId"]
    assert default_routes["showcase-private"]["NatGatewayId"] == nat["NatGatewayId"]
    assert nat["SubnetId"] == subnets["showcase-public"]["SubnetId"]
    for name in ("showcase-public", "showcase-private"):
        associated = {a.get("SubnetId") for a in tables[name]["Associations"]}
        assert subnets[name]["SubnetId"] in associated

    groups = {
        g["GroupName"]: g
        for g in ec2.describe_security_groups()["SecurityGroups"]
        if g["GroupName"] != "default"
    }
    names = {g["GroupId"]: name for name, g in groups.items()}
    ingress = {name: _ingress(g, names) for name, g in groups.items()}
    assert ingress == EXPECTED_INGRESS
    salt_master_sources = {
        source for rules in ingress.values() for _, low, _, source in rules if low == 4505
    }
    assert salt_master_sources == {"master_sg", "kong_sg", "slave_sg"}, "no CIDR reaches Salt"

    addresses = _by_name(ec2.describe_addresses()["Addresses"])
    assert sorted(addresses) == ["showcase-kong", "showcase-nat"]
    assert [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]] == ["showcase"]

    ret, states = _orchestrate(salt_run_cli, "orch.network")
    assert ret.returncode == 0, _failures(states) or ret
    assert all(state["result"] is True for state in states.values()), states
    assert _changes(states) == {}, "a second run changes nothing"

    ret, states = _orchestrate(salt_run_cli, "orch.network_teardown", test=True)
    assert ret.returncode == 0, ret
    (state,) = states.values()
    assert state["result"] is None and state["changes"]["deleted"]["vpc"], state

    ret, states = _orchestrate(salt_run_cli, "orch.network_teardown")
    assert ret.returncode == 0, ret
    (state,) = states.values()
    assert state["result"] is True, state
    assert _account(ec2) == empty

    ret, states = _orchestrate(salt_run_cli, "orch.network_teardown")
    (state,) = states.values()
    assert state["result"] is True and not state["changes"], state


def test_seed_layout_gives_the_private_subnet_public_ips_and_the_internet_gateway(
    aws_env, aws_pillar, salt_run_cli
):
    aws_pillar(private_egress="seed")
    ret, states = _orchestrate(salt_run_cli, "orch.network")
    assert ret.returncode == 0, _failures(states) or ret
    ec2 = aws_env.client("ec2")
    private = _by_name(ec2.describe_subnets()["Subnets"])["showcase-private"]
    assert private["MapPublicIpOnLaunch"] is True
    table = _by_name(ec2.describe_route_tables()["RouteTables"])["showcase-private"]
    assert any(r.get("GatewayId", "").startswith("igw-") for r in table["Routes"])
    assert ec2.describe_nat_gateways()["NatGateways"] == []
    _orchestrate(salt_run_cli, "orch.network_teardown")


DEFAULT_GROUPS = rendered_pillar("aws.sls")["aws"]["security_groups"]
# The key path of a rule added after kong_sg's default rules.
NEW_KONG_RULE = f"aws:security_groups:kong_sg:rules:{len(DEFAULT_GROUPS['kong_sg']['rules'])}"


def _with_kong_rule(rule):
    """The security_groups override that adds ``rule`` after kong_sg's default rules."""
    return {"security_groups": {"kong_sg": {"rules": [*DEFAULT_GROUPS["kong_sg"]["rules"], rule]}}}


@pytest.mark.parametrize(
    "overrides,problem",
    [
        pytest.param(
            {"subnets": {"private": {"cidr": "10.0.5.128/25"}}},
            "aws:subnets:public:cidr: 10.0.5.0/24 overlaps aws:subnets:private:cidr 10.0.5.128/25",
            id="overlapping-subnets",
        ),
        pytest.param(
            {"subnets": {"public": {"cidr": "10.1.5.0/24"}}},
            "aws:subnets:public:cidr: 10.1.5.0/24 is outside the VPC 10.0.0.0/16 (aws:vpc:cidr)",
            id="subnet-outside-the-vpc",
        ),
        pytest.param(
            {"admin_cidr": "kong_sg"},
            "aws:admin_cidr: 'kong_sg' is not an IPv4 CIDR such as 10.0.0.0/16",
            id="admin-cidr-that-names-a-group",
        ),
        pytest.param(
            {"admin_cidr": "0.0.0.0/0"},
            "aws:admin_cidr: 0.0.0.0/0 opens SSH and the Kong admin API to the whole internet",
            id="admin-cidr-world",
        ),
        pytest.param(
            _with_kong_rule({"port": 22, "sources": ["world"]}),
            f"{NEW_KONG_RULE}:port: unknown key (allowed: ports, protocol, protocols, sources)",
            id="mistyped-rule-key",
        ),
        pytest.param(
            _with_kong_rule({"ports": "8000-70000", "sources": ["world"]}),
            f"{NEW_KONG_RULE}:ports: '8000-70000' is not a range of ports from 0 to 65535",
            id="port-out-of-range",
        ),
        pytest.param(
            _with_kong_rule({"protocol": "tpc", "ports": 8443, "sources": ["world"]}),
            f"{NEW_KONG_RULE}:protocol: 'tpc' is not one of tcp, udp, icmp, -1",
            id="unknown-protocol",
        ),
        pytest.param(
            {"key_pair": {"public_key_path": "/nonexistent/showcase.pub"}},
            "aws:key_pair:public_key_path: cannot read the public key file "
            "/nonexistent/showcase.pub",
            id="unreadable-key-file",
        ),
        pytest.param(
            {"zone": "eu-west-1z"},
            "aws:zone: Availability zone 'eu-west-1z' is not available in region eu-west-1; "
            "available: eu-west-1a",
            id="zone-outside-the-region",
        ),
    ],
)
def test_invalid_pillar_is_refused_whole_before_anything_is_created(
    aws_env, aws_pillar, salt_run_cli, overrides, problem
):
    ec2 = aws_env.client("ec2")
    empty = _account(ec2)
    aws_pillar(**overrides)
    for test in (True, False):
        ret, _ = _orchestrate(salt_run_cli, "orch.network", test=test)
        assert ret.returncode != 0
        output = str(ret.data)
        assert "Invalid pillar aws (nothing was written): " in output
        assert problem in output, output
        assert _account(ec2) == empty, "nothing may be created"


def test_admin_from_anywhere_needs_the_explicit_opt_in(aws_env, aws_pillar, salt_run_cli):
    aws_pillar(admin_cidr="0.0.0.0/0", allow_admin_from_anywhere=True)
    ret, states = _orchestrate(salt_run_cli, "orch.network", test=True)
    assert ret.returncode == 0, _failures(states) or ret
    kong_sg = states[next(key for key in states if "aws-network-security-group-kong_sg" in key)]
    assert "tcp 22-22 from 0.0.0.0/0" in kong_sg["changes"]["new"]["ingress"]


def test_nat_instance_egress_routes_the_private_subnet_through_an_instance(
    aws_env, aws_pillar, salt_run_cli
):
    aws_pillar(private_egress="nat_instance")
    ret, states = _orchestrate(salt_run_cli, "orch.network")
    assert ret.returncode == 0, _failures(states) or ret
    ec2 = aws_env.client("ec2")
    reservations = ec2.describe_instances(
        Filters=[{"Name": "tag:Name", "Values": ["showcase-nat"]}]
    )["Reservations"]
    (nat,) = [i for r in reservations for i in r["Instances"]]
    subnets = _by_name(ec2.describe_subnets()["Subnets"])
    assert nat["SubnetId"] == subnets["showcase-public"]["SubnetId"]
    assert nat["SourceDestCheck"] is False
    assert nat.get("PublicIpAddress")
    table = _by_name(ec2.describe_route_tables()["RouteTables"])["showcase-private"]
    default = next(r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0")
    assert default["InstanceId"] == nat["InstanceId"]
    assert subnets["showcase-private"]["MapPublicIpOnLaunch"] is False
    assert ec2.describe_nat_gateways()["NatGateways"] == []

    ret, states = _orchestrate(salt_run_cli, "orch.network")
    assert _changes(states) == {}, "a second run changes nothing"

    ret, states = _orchestrate(salt_run_cli, "orch.network_teardown")
    assert ret.returncode == 0, _failures(states) or ret
    state = ec2.describe_instances(InstanceIds=[nat["InstanceId"]])["Reservations"][0]
    assert state["Instances"][0]["State"]["Name"] == "terminated"
    assert not [v for v in ec2.describe_vpcs()["Vpcs"] if not v["IsDefault"]]
