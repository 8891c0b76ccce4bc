"""
The aws_ec2 salt-cloud driver against moto's in-process EC2: what it hands salt-cloud's
bootstrap (SSH host, bastion, key, login user, minion master), the deploy arguments the real
``salt.utils.cloud.bootstrap`` builds from that, image selection, and cleanup when a create
fails half way. SSH itself is never attempted (``deploy_script`` is replaced).
"""

import copy
import importlib.util
import pathlib
from unittest import mock

import boto3
import pytest
import salt.config
import salt.utils.cloud
from moto import mock_aws
from salt.exceptions import SaltCloudConfigError, SaltCloudNotFound, SaltCloudSystemExit

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

import awsutil

CLUSTER = "showcase"
# Images registered in moto are owned by its default account.
IMAGE_OWNER = "123456789012"

PROVIDER = {
    "driver": "aws_ec2",
    "aws_profile": "",
    "region": "eu-west-1",
    "cluster": CLUSTER,
    "keyname": "showcase",
    "salt_master_node": "master",
    "images": {
        "debian12": {"owner": IMAGE_OWNER, "name": "debian-12-amd64-*", "ssh_username": "admin"}
    },
}
PROFILES = {
    "kong": {
        "provider": "showcase",
        "image": "debian12",
        "size": "t2.medium",
        "subnet": "showcase-public",
        "security_groups": ["kong_sg"],
        "eip": "showcase-kong",
        "ssh_interface": "public_ips",
    },
    "master": {
        "provider": "showcase",
        "image": "debian12",
        "size": "t2.medium",
        "subnet": "showcase-private",
        "security_groups": ["master_sg"],
        "ssh_interface": "private_ips",
        "ssh_gateway_node": "kong",
        "ssh_gateway_profile": "kong",
    },
    "slave": {
        "provider": "showcase",
        "image": "debian12",
        "size": "t2.medium",
        "subnet": "showcase-private",
        "security_groups": ["slave_sg"],
        "ssh_interface": "private_ips",
        "ssh_gateway_node": "kong",
    },
}


def _load_driver():
    spec = importlib.util.spec_from_file_location(
        "aws_ec2", REPO_ROOT / "salt" / "_clouds" / "aws_ec2.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def opts(tmp_path):
    opts = {**salt.config.DEFAULT_MASTER_OPTS, **salt.config.DEFAULT_CLOUD_OPTS}
    # Built by salt's own config functions, as salt-cloud builds them from the .conf files.
    providers = salt.config.apply_cloud_providers_config({"showcase": copy.deepcopy(PROVIDER)})
    opts.update(
        providers=providers,
        profiles=salt.config.apply_vm_profiles_config(providers, copy.deepcopy(PROFILES)),
        pki_dir=str(tmp_path / "pki"),
        sock_dir=str(tmp_path / "sock"),
        cachedir=str(tmp_path / "cache"),
        conf_file=str(tmp_path / "cloud"),
        transport="zeromq",
        deploy=True,
        # What the salt-cloud command line sets.
        parallel=False,
        start_action=None,
        keep_tmp=False,
        **{"query.selection": ["id", "state"]},
    )
    (tmp_path / "pki" / "minions").mkdir(parents=True)
    return opts


@pytest.fixture
def ec2(monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    awsutil.reset_clients()
    with mock_aws():
        yield boto3.client("ec2", region_name="eu-west-1")
    awsutil.reset_clients()


def _tags(name):
    return [{"Key": "Name", "Value": name}, {"Key": awsutil.CLUSTER_TAG, "Value": CLUSTER}]


def _spec(resource_type, name):
    return [{"ResourceType": resource_type, "Tags": _tags(name)}]


@pytest.fixture
def network(ec2):
    """The slice of orch.network the profiles refer to, two Debian 12 images and a newer
    arm64 one that the amd64 alias must not pick."""
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = {
        name: ec2.create_subnet(
            VpcId=vpc, CidrBlock=cidr, TagSpecifications=_spec("subnet", name)
        )["Subnet"]["SubnetId"]
        for name, cidr in (("showcase-public", "10.0.5.0/24"), ("showcase-private", "10.0.12.0/24"))
    }
    ec2.modify_subnet_attribute(
        SubnetId=subnets["showcase-public"], MapPublicIpOnLaunch={"Value": True}
    )
    for group in ("kong_sg", "master_sg", "slave_sg"):
        ec2.create_security_group(
            GroupName=group, Description=group, VpcId=vpc,
            TagSpecifications=_spec("security-group", group),
        )
    ec2.allocate_address(Domain="vpc", TagSpecifications=_spec("elastic-ip", "showcase-kong"))
    images = {}
    for name, architecture in (
        ("debian-12-amd64-20240717-1811", "x86_64"),
        ("debian-12-amd64-20250428-2096", "x86_64"),
        ("debian-12-arm64-20250601-2130", "arm64"),
    ):
        images[name] = ec2.register_image(
            Name=name, Architecture=architecture, RootDeviceName="/dev/xvda",
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
        )["ImageId"]
    return {"vpc": vpc, "subnets": subnets, "images": images}


@pytest.fixture
def driver(opts):
    module = _load_driver()
    module.__opts__ = opts
    module.__active_provider_name__ = "showcase:aws_ec2"
    module.__utils__ = {
        "cloud.fire_event": mock.Mock(),
        "cloud.filter_event": lambda tag, data, keys: data,
        "cloud.bootstrap": mock.Mock(return_value={"deployed": True}),
        "cloud.list_nodes_select": salt.utils.cloud.list_nodes_select,
    }
    return module


def _vm(name, profile, **overrides):
    return {
        "name": name,
        "profile": profile,
        "provider": "showcase:aws_ec2",
        "driver": "showcase:aws_ec2",
        **overrides,
    }


@pytest.fixture
def key_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    key = tmp_path / ".ssh" / "showcase"
    key.write_text("not used: deploy_script is replaced\n")
    return key


def _live(ec2):
    reservations = ec2.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    )["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


def test_public_node_is_reached_on_its_elastic_ip_and_points_at_the_private_salt_master(
    driver, network, ec2, key_file
):
    driver.create(_vm("master", "master", deploy=False))
    master = driver.show_instance("master", call="action")
    vm_ = _vm("kong", "kong", ssh_keyfile="~/.ssh/showcase")
    driver.create(vm_)

    bootstrapped = driver.__utils__["cloud.bootstrap"].call_args.args[0]
    kong = driver.show_instance("kong", call="action")
    eip = ec2.describe_addresses()["Addresses"][0]
    assert eip["InstanceId"] == kong["InstanceId"]
    assert bootstrapped["ssh_host"] == eip["PublicIp"]
    assert bootstrapped["salt_host"] == kong["PrivateIpAddress"]
    assert bootstrapped["ssh_username"] == "admin"
    assert bootstrapped["key_filename"] == str(key_file)
    assert bootstrapped["minion"] == {"master": master["PrivateIpAddress"]}
    assert "gateway" not in bootstrapped
    assert kong["ImageId"] == network["images"]["debian-12-amd64-20250428-2096"]


def test_private_node_goes_through_the_bastion_and_points_at_the_private_salt_master(
    driver, network, ec2, key_file
):
    driver.create(_vm("kong", "kong", deploy=False))
    driver.create(_vm("master", "master", deploy=False))
    kong = driver.show_instance("kong", call="action")
    master = driver.show_instance("master", call="action")
    vm_ = _vm("slave0", "slave", ssh_keyfile=str(key_file))

    driver.create(vm_)

    bootstrapped = driver.__utils__["cloud.bootstrap"].call_args.args[0]
    slave = driver.show_instance("slave0", call="action")
    assert slave["public_ips"] == []
    assert bootstrapped["ssh_host"] == slave["PrivateIpAddress"]
    assert bootstrapped["gateway"] == {
        "ssh_gateway": kong["PublicIpAddress"],
        "ssh_gateway_user": "admin",
        "ssh_gateway_key": str(key_file),
        "ssh_gateway_command": "nc -q0 %h %p",
    }
    assert bootstrapped["minion"] == {"master": master["PrivateIpAddress"]}


def _salt_master_vm(key_file):
    """The map's salt-master as salt-cloud's run_map hands it to the driver: created first,
    its own minion on 127.0.0.1."""
    return _vm(
        "master", "master", ssh_keyfile=str(key_file), make_master=True,
        minion={"master": "127.0.0.1"},
    )


@pytest.mark.parametrize("as_the_map_makes_it", [False, True], ids=["profile", "map"])
def test_the_salt_master_is_deployed_through_a_bastion_launched_ahead_then_adopted(
    driver, network, ec2, key_file, opts, as_the_map_makes_it
):
    salt_master = _salt_master_vm(key_file)
    if as_the_map_makes_it:
        # salt-cloud's map hands the driver the provider's settings merged into the node's,
        # with the bare driver name.
        provider = {key: value for key, value in opts["providers"]["showcase"]["aws_ec2"].items()
                    if key != "profiles"}
        salt_master = {**provider, **opts["profiles"]["master"], **salt_master, "driver": "aws_ec2"}
    driver.create(salt_master)

    bootstrapped = driver.__utils__["cloud.bootstrap"].call_args.args[0]
    kong = driver.show_instance("kong", call="action")
    master = driver.show_instance("master", call="action")
    eip = ec2.describe_addresses()["Addresses"][0]
    assert kong["public_ips"] == [eip["PublicIp"]], "the bastion has its elastic IP"
    assert kong["tags"]["salt-cloud:ssh-gateway-for"] == "master"
    assert kong["tags"]["salt-cloud:profile"] == "kong"
    assert master["tags"]["salt-cloud:salt-master"] == "true"
    assert "salt-cloud:salt-master" not in kong["tags"]
    assert bootstrapped["name"] == "master"
    assert bootstrapped["gateway"]["ssh_gateway"] == eip["PublicIp"]
    assert bootstrapped["minion"] == {"master": "127.0.0.1"}
    assert driver.__utils__["cloud.bootstrap"].call_count == 1, "the bastion is not deployed"

    # The map then creates kong: the bastion's instance is deployed, not a second one launched.
    driver.create(_vm("kong", "kong", ssh_keyfile=str(key_file)))
    assert sorted(driver.list_nodes()) == ["kong", "master"]
    adopted = driver.show_instance("kong", call="action")
    assert adopted["InstanceId"] == kong["InstanceId"]
    assert "salt-cloud:ssh-gateway-for" not in adopted["tags"], "adopted once"
    bootstrapped = driver.__utils__["cloud.bootstrap"].call_args.args[0]
    assert bootstrapped["name"] == "kong"
    assert bootstrapped["ssh_host"] == eip["PublicIp"]
    assert bootstrapped["minion"] == {"master": master["PrivateIpAddress"]}


def test_an_existing_bastion_is_used_as_is(driver, network, ec2, key_file):
    driver.create(_vm("kong", "kong", deploy=False))
    driver.create(_salt_master_vm(key_file))
    assert len(_live(ec2)) == 2
    assert "salt-cloud:ssh-gateway-for" not in driver.show_instance("kong", call="action")["tags"]


def test_a_failed_salt_master_terminates_the_bastion_launched_for_it(
    driver, network, ec2, key_file
):
    with mock.patch.object(
        driver, "deploy_settings", side_effect=SaltCloudSystemExit("no route")
    ), pytest.raises(SaltCloudSystemExit, match=r"master failed, instances i-\w+, i-\w+ terminated"):
        driver.create(_salt_master_vm(key_file))
    assert _live(ec2) == []


def test_a_master_chosen_by_the_map_wins_over_salt_master_node(driver, network, key_file):
    driver.create(_vm("kong", "kong", deploy=False))
    vm_ = _vm("slave0", "slave", ssh_keyfile=str(key_file), minion={"master": "10.0.5.99"})
    driver.create(vm_)
    bootstrapped = driver.__utils__["cloud.bootstrap"].call_args.args[0]
    assert bootstrapped["minion"] == {"master": "10.0.5.99"}


def test_bootstrap_builds_deploy_arguments_through_the_gateway(
    driver, network, opts, key_file
):
    """The real salt.utils.cloud.bootstrap, fed by the driver, up to the SSH step."""
    driver.create(_vm("kong", "kong", deploy=False))
    driver.create(_vm("master", "master", deploy=False))
    kong = driver.show_instance("kong", call="action")
    master = driver.show_instance("master", call="action")
    with mock.patch.object(salt.utils.cloud, "deploy_script", return_value=True) as deploy, \
            mock.patch.object(salt.utils.cloud, "fire_event"), \
            mock.patch.object(salt.utils.cloud, "__opts__", opts, create=True):
        driver.__utils__["cloud.bootstrap"] = lambda vm_, opts_: salt.utils.cloud.bootstrap(
            vm_, opts_
        )
        driver.create(
            _vm("slave0", "slave", ssh_keyfile=str(key_file), grains={"roles": ["slave"]})
        )

    (), kwargs = deploy.call_args
    slave = driver.show_instance("slave0", call="action")
    assert kwargs["host"] == slave["PrivateIpAddress"]
    assert kwargs["salt_host"] == slave["PrivateIpAddress"]
    assert kwargs["username"] == "admin"
    assert kwargs["sudo"] is True
    assert kwargs["key_filename"] == str(key_file)
    assert kwargs["gateway"]["ssh_gateway"] == kong["PublicIpAddress"]
    assert kwargs["minion_conf"]["master"] == master["PrivateIpAddress"]
    assert kwargs["minion_conf"]["id"] == "slave0"
    assert kwargs["minion_conf"]["grains"] == {"roles": ["slave"]}
    assert (pathlib.Path(opts["pki_dir"]) / "minions" / "slave0").is_file(), "key accepted"


def test_gateway_arguments_reach_the_ssh_command_line():
    """salt-cloud turns the gateway the driver sets into an SSH ProxyCommand."""
    gateway = {
        "ssh_gateway": "203.0.113.10",
        "ssh_gateway_user": "admin",
        "ssh_gateway_key": "/keys/showcase",
        "ssh_gateway_command": "nc -q0 %h %p",
    }
    arguments = getattr(salt.utils.cloud, "__ssh_gateway_arguments")(gateway)
    assert "ProxyCommand" in arguments
    assert "admin@203.0.113.10" in arguments
    assert "-i /keys/showcase" in arguments


def test_missing_key_file_fails_before_an_instance_is_launched(driver, network, ec2, tmp_path):
    with pytest.raises(SaltCloudConfigError, match="key file .*/absent does not exist"):
        driver.create(_vm("kong", "kong", ssh_keyfile=str(tmp_path / "absent")))
    assert _live(ec2) == []


def test_missing_bastion_fails_and_terminates_the_new_instance(driver, network, ec2, key_file):
    message = r"slave0 failed, instance i-\w+ terminated.*kong"
    with pytest.raises(SaltCloudSystemExit, match=message):
        driver.create(_vm("slave0", "slave", ssh_keyfile=str(key_file)))
    assert _live(ec2) == []


def test_a_failed_cleanup_names_the_instance_left_over(driver, network, ec2, key_file):
    with mock.patch.object(
        driver, "_terminate", side_effect=SaltCloudSystemExit("AWS TerminateInstances failed")
    ), pytest.raises(SaltCloudSystemExit, match=r"terminating its instance i-\w+ failed too"):
        driver.create(_vm("slave0", "slave", ssh_keyfile=str(key_file)))


def test_missing_network_object_fails_before_launch(driver, network, ec2):
    with pytest.raises(SaltCloudNotFound, match="no subnet named nowhere .*orch.network"):
        driver.create(_vm("kong", "kong", deploy=False, subnet="nowhere"))
    assert _live(ec2) == []


@pytest.mark.parametrize(
    "image,error,message",
    [
        ("centos7", SaltCloudConfigError, "neither an ami- id nor one of the provider's images"),
        ("ami-00000000", SaltCloudSystemExit, "DescribeImages|describe_images"),
    ],
)
def test_images_that_do_not_resolve_are_reported(driver, network, image, error, message):
    with pytest.raises(error, match=message):
        driver.resolve_image(_vm("kong", "kong", image=image))


def test_no_ami_matching_the_alias_is_reported_with_owner_and_name(driver, network, opts):
    opts["providers"]["showcase"]["aws_ec2"]["images"]["debian12"]["name"] = "debian-13-amd64-*"
    with pytest.raises(SaltCloudNotFound, match=f"owner {IMAGE_OWNER}, name debian-13-amd64-"):
        driver.resolve_image(_vm("kong", "kong"))


def test_launch_parameters_follow_the_profile(driver, network):
    image, _ = driver.resolve_image(_vm("kong", "kong"))
    params = driver.launch_parameters(
        _vm("kong", "kong", root_volume_size=30, userdata="#cloud-config\n"), image
    )
    assert params["SubnetId"] == network["subnets"]["showcase-public"]
    assert params["InstanceType"] == "t2.medium"
    assert params["KeyName"] == "showcase"
    assert params["UserData"] == "#cloud-config\n"
    assert params["BlockDeviceMappings"] == [
        {
            "DeviceName": image["RootDeviceName"],
            "Ebs": {"DeleteOnTermination": True, "VolumeType": "gp3", "VolumeSize": 30},
        }
    ]
    tags = {t["Key"]: t["Value"] for t in params["TagSpecifications"][0]["Tags"]}
    assert tags == {"Name": "kong", awsutil.CLUSTER_TAG: CLUSTER, "salt-cloud:profile": "kong"}


def test_list_destroy_and_call_guards(driver, network, ec2):
    driver.create(_vm("kong", "kong", deploy=False))
    nodes = driver.list_nodes()
    assert list(nodes) == ["kong"] and nodes["kong"]["state"] == "running"
    assert driver.list_nodes_select() == {"kong": {"id": nodes["kong"]["id"], "state": "running"}}
    with pytest.raises(SaltCloudSystemExit, match="-f or --function"):
        driver.list_nodes(call="action")
    with pytest.raises(SaltCloudSystemExit, match="-a or --action"):
        driver.show_instance("kong")

    assert driver.destroy("kong") == {"kong": {"id": nodes["kong"]["id"], "state": "terminated"}}
    assert driver.list_nodes() == {}
    assert not ec2.describe_addresses()["Addresses"][0].get("InstanceId")


def test_avail_functions_list_images_zones_and_sizes(driver, network):
    images = driver.avail_images()
    assert {image["name"] for image in images.values()} == {
        name for name in network["images"] if "amd64" in name
    }
    assert {image["alias"] for image in images.values()} == {"debian12"}
    assert "eu-west-1a" in driver.avail_locations()
    sizes = driver.avail_sizes()
    assert sizes["t2.medium"] == {"vcpus": 2, "memory_mib": 4096}
    with pytest.raises(SaltCloudSystemExit, match="-f or --function"):
        driver.avail_images(call="action")


def test_a_failed_deploy_reports_the_instance_it_leaves_running(driver, network, ec2, key_file):
    driver.create(_vm("master", "master", deploy=False))
    driver.__utils__["cloud.bootstrap"].side_effect = SaltCloudSystemExit("ssh: timed out")
    with pytest.raises(SaltCloudSystemExit, match=r"kong \(i-\w+\) is running but deploying"):
        driver.create(_vm("kong", "kong", ssh_keyfile=str(key_file)))
    assert [i["State"]["Name"] for i in _live(ec2)] == ["running", "running"]
