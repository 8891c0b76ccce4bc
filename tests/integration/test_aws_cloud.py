"""
`salt-cloud -m cloud.maps.d/default.map -P --no-deploy`, run from the repository root with
the repository's configuration, against a real moto_server on the network of orch.network.

moto runs no operating system: nothing answers SSH, so the minion deploy itself cannot run
here (--no-deploy); its argument building and the bastion path are unit-tested
(tests/unit/test_aws_ec2_cloud.py).
"""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

SALT_BIN = os.path.dirname(sys.executable)


@pytest.fixture
def network(aws_env, aws_pillar, salt_run_cli):
    """The cluster network of orch.network, torn down (and checked gone) afterwards."""
    aws_pillar()
    ret = salt_run_cli.run("state.orchestrate", "orch.network", env=dict(os.environ))
    assert ret.returncode == 0, ret
    yield aws_env
    ret = salt_run_cli.run("state.orchestrate", "orch.network_teardown", env=dict(os.environ))
    assert ret.returncode == 0, ret


def salt_cloud(repo_root, *args):
    """The real salt-cloud, from the repository root (Saltfile -> etc/salt), JSON output."""
    return _run(repo_root, "salt-cloud", "--assume-yes", *args)


def _run(repo_root, command, *args):
    result = subprocess.run(
        [os.path.join(SALT_BIN, command), "--out=json", *args],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result
    return json.loads(result.stdout) if result.stdout.strip() else {}


def _live_instances(ec2):
    reservations = ec2.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    )["Reservations"]
    return {
        next(t["Value"] for t in instance["Tags"] if t["Key"] == "Name"): instance
        for reservation in reservations
        for instance in reservation["Instances"]
    }


def _named(ec2, describe, key):
    items = getattr(ec2, describe)()[key]
    return {
        next(t["Value"] for t in item.get("Tags", []) if t["Key"] == "Name"): item
        for item in items
        if any(t["Key"] == "Name" for t in item.get("Tags", []))
    }


def test_map_creates_the_cluster_once_and_destroys_it(network, repo_root, salt_run_cli):
    ec2 = network.client("ec2")
    created = salt_cloud(repo_root, "-m", "cloud.maps.d/default.map", "-P", "--no-deploy")
    assert sorted(created) == ["kong", "master", "slave0", "slave1", "slave2"], created

    instances = _live_instances(ec2)
    assert sorted(instances) == ["kong", "master", "slave0", "slave1", "slave2"]
    subnets = {
        subnet["SubnetId"]: name
        for name, subnet in _named(ec2, "describe_subnets", "Subnets").items()
    }
    groups = {
        g["GroupId"]: g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]
    }
    placement = {
        name: (
            subnets[instance["SubnetId"]],
            sorted(groups[g["GroupId"]] for g in instance["SecurityGroups"]),
            instance["InstanceType"],
        )
        for name, instance in instances.items()
    }
    private = ("showcase-private", ["slave_sg"], "t2.medium")
    assert placement == {
        "kong": ("showcase-public", ["kong_sg"], "t2.medium"),
        "master": ("showcase-private", ["master_sg"], "t2.medium"),
        "slave0": private,
        "slave1": private,
        "slave2": private,
    }
    eip = _named(ec2, "describe_addresses", "Addresses")["showcase-kong"]
    assert eip["InstanceId"] == instances["kong"]["InstanceId"]
    assert instances["kong"]["PublicIpAddress"] == eip["PublicIp"]
    for name in ("master", "slave0", "slave1", "slave2"):
        assert "PublicIpAddress" not in instances[name], f"{name} must have no public address"
    image = ec2.describe_images(ImageIds=[instances["kong"]["ImageId"]])["Images"][0]
    assert image["Name"].startswith("debian-12-amd64-")
    assert image["OwnerId"] == "136693071363"
    assert {i["KeyName"] for i in instances.values()} == {"showcase"}
    volume = instances["kong"]["BlockDeviceMappings"][0]["Ebs"]
    assert volume["DeleteOnTermination"] is True

    again = salt_cloud(repo_root, "-m", "cloud.maps.d/default.map", "-P", "--no-deploy")
    assert sorted(_live_instances(ec2)) == sorted(instances), again
    assert {i["InstanceId"] for i in _live_instances(ec2).values()} == {
        i["InstanceId"] for i in instances.values()
    }, "a second run creates nothing"

    queried = salt_cloud(repo_root, "-Q")
    nodes = queried["showcase"]["aws_ec2"]
    assert nodes["kong"]["public_ips"] == [eip["PublicIp"]]

    # salt-run without a running master needs the job cache directory a master start makes.
    (repo_root / ".salt" / "var" / "cache" / "salt" / "master" / "proc").mkdir(
        parents=True, exist_ok=True
    )
    printed = _run(repo_root, "salt-run", "cluster.addresses")
    assert printed == {
        "kong_public_address": eip["PublicIp"],
        "kong_private_address": instances["kong"]["PrivateIpAddress"],
        "master_addresses": {"master": instances["master"]["PrivateIpAddress"]},
        "salt_master": {
            "name": "master",
            "address": instances["master"]["PrivateIpAddress"],
            "ssh": f"ssh -J admin@{eip['PublicIp']} admin@{instances['master']['PrivateIpAddress']}",
        },
        "etc_hosts": f"{eip['PublicIp']}  kong.service.consul mesos.service.consul "
        "marathon.service.consul",
    }

    # With deploy, the driver tags the node the map made the salt-master (master0 in the ha
    # map); that node wins over salt_master_node.
    ec2.create_tags(
        Resources=[instances["slave0"]["InstanceId"]],
        Tags=[{"Key": "salt-cloud:salt-master", "Value": "true"}],
    )
    salt_master = _run(repo_root, "salt-run", "cluster.addresses")["salt_master"]
    assert salt_master["name"] == "slave0"
    assert salt_master["address"] == instances["slave0"]["PrivateIpAddress"]

    ret = salt_run_cli.run("state.orchestrate", "orch.network_teardown", env=dict(os.environ))
    assert ret.returncode != 0, "the network cannot go while instances run in it"
    assert instances["kong"]["InstanceId"] in ret.stdout

    salt_cloud(repo_root, "-m", "cloud.maps.d/default.map", "-d")
    assert _live_instances(ec2) == {}
    eip = _named(ec2, "describe_addresses", "Addresses")["showcase-kong"]
    assert not eip.get("InstanceId"), "the EIP stays allocated, but detached"
