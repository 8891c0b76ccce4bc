"""
Pillar ``aws`` checked as a whole (awsnetworkutil.network): each problem named by its key
path, all reported at once, and the security groups resolved and ordered for orch.network.
"""

import copy
import pathlib

import awsnetworkutil
import pytest
import salt.utils.dictupdate
import salt.utils.yaml

from tests.repo_pillar import rendered_pillar

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def aws(tmp_path):
    """pillar/aws.sls with an admin CIDR and a readable public key."""
    key = tmp_path / "showcase.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKnownTestKeyOnly showcase\n")
    pillar = rendered_pillar("aws.sls")["aws"]
    pillar["admin_cidr"] = "198.51.100.7/32"
    pillar["key_pair"]["public_key_path"] = str(key)
    return pillar


def _problems(aws):
    with pytest.raises(awsnetworkutil.InvalidNetwork) as raised:
        awsnetworkutil.network(aws)
    assert str(raised.value).startswith("Invalid pillar aws (nothing was written): ")
    return raised.value.problems


def _set(aws, path, value):
    *parents, last = path.split(":")
    target = aws
    for key in parents:
        target = target[int(key) if isinstance(target, list) else key]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return aws


RULES = "security_groups:kong_sg:rules"


@pytest.mark.parametrize(
    "path,value,problem",
    [
        ("vpc:cidr", "10.0.0.0/8", "aws:vpc:cidr: 10.0.0.0/8: AWS allows /16 to /28 here"),
        ("vpc:cidr", "10.0.0.0", "aws:vpc:cidr: '10.0.0.0' has no prefix length (write 10.0.0.0/32)"),
        ("subnets:private:cidr", "10.0.300.0/24",
         "aws:subnets:private:cidr: '10.0.300.0/24' is not an IPv4 CIDR such as 10.0.0.0/16"),
        ("subnets:private:cidr", "10.0.5.0/24",
         "aws:subnets:public:cidr: 10.0.5.0/24 overlaps aws:subnets:private:cidr 10.0.5.0/24"),
        ("subnets:dmz", {"name": "dmz", "cidr": "10.0.7.0/24"},
         "aws:subnets:dmz: unknown key (allowed: private, public)"),
        ("admin_cidr", "admin_sg", "aws:admin_cidr: 'admin_sg' is not an IPv4 CIDR such as 10.0.0.0/16"),
        ("admin_cidr", "203.0.113.4", "aws:admin_cidr: '203.0.113.4' has no prefix length (write 203.0.113.4/32)"),
        ("admin_cidr", "203.0.113.4/24", "aws:admin_cidr: '203.0.113.4/24' has host bits set (the network is 203.0.113.0/24)"),
        ("admin_cidr", "0.0.0.0/0", "aws:admin_cidr: 0.0.0.0/0 opens SSH and the Kong admin API to the whole internet; give your own address (x.x.x.x/32), or set aws:allow_admin_from_anywhere: true"),
        ("allow_admin_from_anywhere", "true", "aws:allow_admin_from_anywhere: expected true or false, got str 'true'"),
        ("private_egress", "nat", "aws:private_egress: 'nat' is not one of nat_gateway, nat_instance, seed, none"),
        ("nat:image:owner", 137112412989, "aws:nat:image:owner: expected a string, got int 137112412989"),
        ("zone", "eu-central-1a", "aws:zone: eu-central-1a is not a zone of aws:region eu-west-1"),
        ("tags:Name", "mine", "aws:tags:Name: set by the network itself"),
        ("tags:Cost", 12, "aws:tags:Cost: expected a string of at most 256 characters, got 12"),
        ("key_pair:public_key_path", "/nonexistent.pub", "aws:key_pair:public_key_path: cannot read the public key file /nonexistent.pub"),
        (f"{RULES}:0", {"port": 8000, "sources": ["world"]}, f"aws:{RULES}:0:port: unknown key (allowed: ports, protocol, protocols, sources)"),
        (f"{RULES}:0", {"ports": 8000}, f"aws:{RULES}:0:sources: required"),
        (f"{RULES}:0", {"ports": True, "sources": ["world"]}, f"aws:{RULES}:0:ports: expected a port or a range such as 10000-11000, got True"),
        (f"{RULES}:0", {"ports": "11000-10000", "sources": ["world"]}, f"aws:{RULES}:0:ports: '11000-10000' is not a range of ports from 0 to 65535, low to high"),
        (f"{RULES}:0", {"protocol": "tcp", "protocols": ["udp"], "ports": 1, "sources": ["world"]}, f"aws:{RULES}:0: protocol and protocols are exclusive"),
        (f"{RULES}:0", {"protocols": ["tcp", "sctp"], "ports": 1, "sources": ["world"]}, f"aws:{RULES}:0:protocols:1: 'sctp' is not one of tcp, udp, icmp, -1"),
        (f"{RULES}:0", {"ports": 22, "sources": ["kong"]}, f"aws:{RULES}:0:sources:0: 'kong' is neither a CIDR, a group of aws:security_groups nor one of admin, private, public, self, world"),
        (f"{RULES}:0", {"ports": 22, "sources": "world"}, f"aws:{RULES}:0:sources: expected a non-empty list, got 'world'"),
        ("security_groups:world", {"description": "x", "rules": []}, "aws:security_groups:world: 'world' is a reserved name"),
        ("security_groups:kong_sg:descr", "typo", "aws:security_groups:kong_sg:descr: unknown key (allowed: description, rules)"),
    ],
)
def test_each_problem_is_named_by_its_key_path(aws, path, value, problem):
    problems = _problems(_set(aws, path, value))
    assert [found for found in problems if found.startswith(problem)] == problems


def test_every_problem_is_reported_at_once(aws):
    _set(aws, "admin_cidr", "kong_sg")
    _set(aws, "vpc:cidr", "10.0.0.1/16")
    del aws["kong_eip"]
    assert _problems(aws) == [
        "aws:kong_eip: required",
        "aws:admin_cidr: 'kong_sg' is not an IPv4 CIDR such as 10.0.0.0/16",
        "aws:vpc:cidr: '10.0.0.1/16' has host bits set (the network is 10.0.0.0/16)",
    ]


def test_admin_from_anywhere_is_an_explicit_opt_in(aws):
    _set(aws, "admin_cidr", "0.0.0.0/0")
    _set(aws, "allow_admin_from_anywhere", True)
    groups = {group["name"]: group for group in awsnetworkutil.network(aws)["groups"]}
    assert {"protocols": ["tcp"], "ports": "22-22", "sources": ["0.0.0.0/0"]} in groups[
        "kong_sg"
    ]["rules"]


def test_groups_come_resolved_and_after_the_groups_they_name(aws):
    plan = awsnetworkutil.network(aws)
    order = [group["name"] for group in plan["groups"]]
    for group in plan["groups"]:
        assert all(order.index(required) < order.index(group["name"]) for required in group["requires"])
    master = next(group for group in plan["groups"] if group["name"] == "master_sg")
    assert {"protocols": ["tcp", "udp"], "ports": "8600-8600",
            "sources": ["10.0.12.0/24", "10.0.5.0/24"]} in master["rules"]


def test_rules_only_from_an_empty_admin_cidr_are_left_out(aws):
    _set(aws, "admin_cidr", "")
    kong = next(g for g in awsnetworkutil.network(aws)["groups"] if g["name"] == "kong_sg")
    assert all(rule["ports"] != "22-22" for rule in kong["rules"])


def test_groups_that_refer_to_each_other_in_a_cycle_are_refused(aws):
    groups = aws["security_groups"]
    groups["a_sg"] = {"description": "a", "rules": [{"ports": 1, "sources": ["b_sg"]}]}
    groups["b_sg"] = {"description": "b", "rules": [{"ports": 1, "sources": ["a_sg"]}]}
    assert _problems(aws) == [
        "aws:security_groups: security groups refer to each other in a cycle: a_sg -> b_sg -> a_sg"
    ]


def test_normalised_rules_are_accepted_again_unchanged(aws):
    plan = awsnetworkutil.network(copy.deepcopy(aws))
    for group in plan["groups"]:
        assert awsnetworkutil.rules(group["rules"]) == group["rules"]


def test_pillar_example_is_a_valid_aws_pillar(aws):
    example = salt.utils.yaml.safe_load((REPO_ROOT / "pillar.example").read_text())["aws"]
    example["key_pair"]["public_key_path"] = aws["key_pair"]["public_key_path"]
    plan = awsnetworkutil.network(salt.utils.dictupdate.update(aws, example))
    assert {group["name"] for group in plan["groups"]} == {"kong_sg", "master_sg", "slave_sg"}
