"""
The aws_network states' decisions, loader-mocked: (current AWS object, arguments) ->
(changes, writes, comment), in normal and test mode; and the CIDR plan checks.
"""

import importlib.util
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def _load(kind):
    spec = importlib.util.spec_from_file_location(
        f"aws_network_{kind}", REPO_ROOT / "salt" / f"_{kind}" / "aws_network.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


execution = _load("modules")
CONN = {"cluster": "showcase", "profile": None, "region": None}
VPC = {"VpcId": "vpc-1", "CidrBlock": "10.0.0.0/16"}
KONG_SG = {"GroupId": "sg-kong", "IpPermissions": []}


# What the recorded creations return.
CREATED = {"create_security_group": "sg-new", "create_route_table": {"RouteTableId": "rtb-new"}}


class FakeAccount:
    """``aws_network.find`` over a dict of existing resources; every write is recorded."""

    def __init__(self, existing=None):
        self.existing = existing or {}
        self.writes = []

    def find(self, kind, name, **conn):
        assert conn == CONN
        return self.existing.get((kind, name))

    def salt(self):
        functions = {
            "aws_network.find": self.find,
            "aws_network.ingress_rules": execution.ingress_rules,
            "aws_network.check_zone": lambda zone, **conn: True,
        }
        for write in (
            "create_vpc",
            "create_subnet",
            "set_map_public_ip",
            "create_security_group",
            "authorize_ingress",
            "revoke_ingress",
            "create_route_table",
            "set_route",
            "delete_route",
            "associate_route_table",
        ):
            functions[f"aws_network.{write}"] = self._recorder(write)
        return functions

    def _recorder(self, name):
        def record(*args, **kwargs):
            self.writes.append((name, args))
            return CREATED.get(name)

        return record


@pytest.fixture(params=(False, True), ids=("apply", "test"))
def testmode(request):
    return request.param


def _state(account, testmode):
    module = _load("states")
    module.__salt__ = account.salt()
    module.__opts__ = {"test": testmode}
    return module


def test_vpc_is_created_when_missing(testmode):
    account = FakeAccount()
    ret = _state(account, testmode).vpc_present("showcase", "10.0.0.0/16")
    assert ret == {
        "name": "showcase",
        "result": None if testmode else True,
        "changes": {"old": None, "new": {"cidr_block": "10.0.0.0/16"}},
        "comment": f"VPC showcase {'would be' if testmode else 'has been'} created",
    }
    assert account.writes == ([] if testmode else [("create_vpc", ("showcase", "10.0.0.0/16"))])


def test_vpc_with_another_cidr_fails_instead_of_being_replaced(testmode):
    account = FakeAccount({("vpc", "showcase"): {**VPC, "CidrBlock": "10.9.0.0/16"}})
    ret = _state(account, testmode).vpc_present("showcase", "10.0.0.0/16")
    assert ret["result"] is False and ret["changes"] == {}
    assert "exists with CIDR 10.9.0.0/16, not 10.0.0.0/16" in ret["comment"]
    assert account.writes == []


def test_subnet_in_a_vpc_that_test_mode_has_not_created_yet_is_predicted_in_full():
    ret = _state(FakeAccount(), True).subnet_present(
        "showcase-public", "showcase", "10.0.5.0/24", "eu-west-1a", True
    )
    assert ret["result"] is None
    assert ret["comment"] == "Subnet showcase-public would be created"
    assert ret["changes"] == {
        "old": None,
        "new": {
            "vpc": "showcase",
            "cidr_block": "10.0.5.0/24",
            "availability_zone": "eu-west-1a",
            "map_public_ip_on_launch": True,
        },
    }


def test_test_mode_names_the_groups_a_new_group_refers_to_before_they_exist():
    ret = _state(FakeAccount(), True).security_group_present(
        "master_sg", "showcase", "masters", MASTER_RULES
    )
    assert ret["result"] is None
    assert ret["changes"]["new"]["ingress"] == [
        "tcp 10000-11000 from 10.0.5.0/24",
        "tcp 22-22 from kong_sg",
        "tcp 8600-8600 from 10.0.12.0/24",
        "udp 8600-8600 from 10.0.12.0/24",
    ]


def test_subnet_missing_its_vpc_outside_test_mode_fails_by_name():
    ret = _state(FakeAccount(), False).subnet_present(
        "showcase-public", "showcase", "10.0.5.0/24", "eu-west-1a"
    )
    assert ret["result"] is False
    assert ret["comment"] == "Subnet showcase-public: The vpc 'showcase' does not exist"


@pytest.mark.parametrize(
    "current_public_ip,wanted,changes",
    [
        (False, False, {}),
        (True, False, {"map_public_ip_on_launch": {"old": True, "new": False}}),
        (False, True, {"map_public_ip_on_launch": {"old": False, "new": True}}),
    ],
)
def test_subnet_public_ip_mapping_converges(testmode, current_public_ip, wanted, changes):
    subnet = {
        "SubnetId": "subnet-1",
        "VpcId": "vpc-1",
        "CidrBlock": "10.0.12.0/24",
        "AvailabilityZone": "eu-west-1a",
        "MapPublicIpOnLaunch": current_public_ip,
    }
    account = FakeAccount({("vpc", "showcase"): VPC, ("subnet", "showcase-private"): subnet})
    ret = _state(account, testmode).subnet_present(
        "showcase-private", "showcase", "10.0.12.0/24", "eu-west-1a", wanted
    )
    assert ret["changes"] == changes
    assert ret["result"] is (None if testmode and changes else True)
    applied = changes and not testmode
    assert account.writes == ([("set_map_public_ip", ("subnet-1", wanted))] if applied else [])


def _group(*rules):
    permissions = []
    for protocol, low, high, source in rules:
        permission = {"IpProtocol": protocol, "FromPort": low, "ToPort": high}
        if source.startswith("sg-"):
            permission["UserIdGroupPairs"] = [{"GroupId": source}]
        else:
            permission["IpRanges"] = [{"CidrIp": source}]
        permissions.append(permission)
    return {"GroupId": "sg-master", "IpPermissions": permissions}


MASTER_RULES = [
    {"ports": 22, "sources": ["kong_sg"]},
    {"protocols": ["tcp", "udp"], "ports": 8600, "sources": ["10.0.12.0/24"]},
    {"ports": "10000-11000", "sources": ["10.0.5.0/24"]},
]
CONVERGED = [
    ("tcp", 22, 22, "sg-kong"),
    ("tcp", 8600, 8600, "10.0.12.0/24"),
    ("udp", 8600, 8600, "10.0.12.0/24"),
    ("tcp", 10000, 11000, "10.0.5.0/24"),
]


@pytest.mark.parametrize(
    "current,changes,writes",
    [
        pytest.param(_group(*CONVERGED), {}, [], id="converged"),
        pytest.param(
            _group(*CONVERGED, ("tcp", 22, 22, "0.0.0.0/0")),
            {"revoked": ["tcp 22-22 from 0.0.0.0/0"]},
            [("revoke_ingress", ("sg-master", {("tcp", 22, 22, "0.0.0.0/0")}))],
            id="seed-ssh-from-anywhere-is-revoked",
        ),
        pytest.param(
            _group(*CONVERGED[1:]),
            {"authorized": ["tcp 22-22 from kong_sg"]},
            [("authorize_ingress", ("sg-master", {("tcp", 22, 22, "sg-kong")}))],
            id="bastion-rule-added",
        ),
    ],
)
def test_security_group_rules_converge_exactly(testmode, current, changes, writes):
    account = FakeAccount(
        {
            ("vpc", "showcase"): VPC,
            ("security_group", "kong_sg"): KONG_SG,
            ("security_group", "master_sg"): current,
        }
    )
    ret = _state(account, testmode).security_group_present(
        "master_sg", "showcase", "masters", MASTER_RULES
    )
    assert ret["changes"] == changes
    assert ret["result"] is (None if testmode and changes else True)
    assert account.writes == ([] if testmode else writes)


def test_new_security_group_refers_to_itself_by_its_new_id():
    account = FakeAccount({("vpc", "showcase"): VPC})
    ret = _state(account, False).security_group_present(
        "weave_sg", "showcase", "weave", [{"ports": 6783, "sources": ["self"]}]
    )
    assert ret["changes"] == {
        "old": None,
        "new": {"vpc": "showcase", "ingress": ["tcp 6783-6783 from weave_sg"]},
    }
    assert account.writes == [
        ("create_security_group", ("weave_sg", "vpc-1", "weave")),
        ("authorize_ingress", ("sg-new", {("tcp", 6783, 6783, "sg-new")})),
    ]


def test_route_table_replaces_a_changed_default_route_and_associates_the_subnet(testmode):
    table = {
        "RouteTableId": "rtb-1",
        "Routes": [
            {"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local"},
            {"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-1"},
        ],
        "Associations": [],
    }
    account = FakeAccount(
        {
            ("vpc", "showcase"): VPC,
            ("nat_gateway", "showcase-nat"): {"NatGatewayId": "nat-1"},
            ("subnet", "showcase-private"): {"SubnetId": "subnet-2"},
            ("route_table", "showcase-private"): table,
        }
    )
    ret = _state(account, testmode).route_table_present(
        "showcase-private",
        "showcase",
        routes={"0.0.0.0/0": {"nat_gateway": "showcase-nat"}},
        subnets=["showcase-private"],
    )
    assert ret["changes"] == {
        "routes": {"old": {"0.0.0.0/0": "igw-1"}, "new": {"0.0.0.0/0": "nat-1"}},
        "subnets": {"old": None, "new": ["showcase-private"]},
    }
    assert account.writes == ([] if testmode else [
        ("set_route", ("rtb-1", "0.0.0.0/0", "nat-1", True)),
        ("associate_route_table", ("rtb-1", "subnet-2")),
    ])


@pytest.mark.parametrize(
    "existing,result,changes,comment",
    [
        ({}, True, {}, "Network showcase is already absent"),
        (
            {"vpc": ["vpc-1"], "subnet": ["subnet-1"]},
            "applied",
            {"deleted": {"vpc": ["vpc-1"], "subnet": ["subnet-1"]}},
            "deleted",
        ),
        (
            {"instance": ["i-1"], "vpc": ["vpc-1"]},
            False,
            {},
            "Network showcase: instances still run in it (i-1); destroy them first "
            "(salt-cloud -m <map> -d)",
        ),
    ],
)
def test_absent(testmode, existing, result, changes, comment):
    module = _load("states")
    teardown = []
    module.__salt__ = {
        "aws_network.find": None,
        "aws_network.cluster_resource_ids": lambda cluster, **conn: dict(existing),
        "aws_network.teardown": lambda cluster, **conn: teardown.append(cluster) or existing,
    }
    module.__opts__ = {"test": testmode}
    ret = module.absent("showcase")
    if result == "applied":
        result = None if testmode else True
        verb = "would be" if testmode else "has been"
        comment = f"Network showcase {verb} deleted"
    assert ret == {"name": "showcase", "result": result, "changes": changes, "comment": comment}
    assert teardown == (["showcase"] if result is True and changes else [])


@pytest.mark.parametrize(
    "rule,problem",
    [
        pytest.param(
            {"port": 22, "sources": ["10.0.0.0/16"]},
            "rules:0:port: unknown key (allowed: ports, protocol, protocols, sources)",
            id="mistyped-key",
        ),
        pytest.param(
            {"sources": ["0.0.0.0/0"]},
            "rules:0:ports: required for tcp and udp",
            id="no-ports-is-not-every-port",
        ),
        pytest.param(
            {"protocol": "-1", "ports": 22, "sources": ["10.0.0.0/16"]},
            "rules:0:ports: protocol '-1' covers every port: drop ports",
            id="ports-with-every-protocol",
        ),
        pytest.param(
            {"ports": 22, "sources": ["10.0.0.1/16"]},
            "rules:0:sources:0: '10.0.0.1/16' has host bits set (the network is 10.0.0.0/16)",
            id="host-bits",
        ),
    ],
)
def test_security_group_with_an_invalid_rule_fails_before_reading_or_writing(
    testmode, rule, problem
):
    account = FakeAccount()
    account.find = None  # any read would fail the test
    ret = _state(account, testmode).security_group_present(
        "kong_sg", "showcase", "Kong", [rule]
    )
    assert ret["result"] is False and ret["changes"] == {}
    assert ret["comment"].startswith(
        "Security group kong_sg: Invalid security group rules (nothing was written): "
    )
    assert problem in ret["comment"]
    assert account.writes == []


def test_missing_public_key_file_is_named(tmp_path):
    with pytest.raises(execution.CommandExecutionError, match=f"{tmp_path}/showcase.pub"):
        execution.read_public_key(str(tmp_path / "showcase.pub"))
