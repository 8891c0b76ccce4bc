"""
A salt-cloud driver for EC2 on boto3 (Salt 3008 ships none), made for the cluster's network
of ``orch.network``: subnets, security groups, key pair and elastic IPs are referred to by
their ``Name`` tags within the cluster, never by id.

Provider configuration (``cloud.providers.d/aws.conf``):

.. code-block:: yaml

    showcase:
      driver: aws_ec2
      aws_profile: showcase      # shared-config profile ('' for the default chain)
      region: eu-west-1
      cluster: showcase          # cluster tag of the network (pillar aws:cluster)
      keyname: showcase          # the imported key pair
      ssh_keyfile: ~/.ssh/showcase
      images:                    # image aliases: newest AMI matching owner + name
        debian12: {owner: '136693071363', name: 'debian-12-amd64-*', ssh_username: admin}

Profile (or map) settings: ``image`` (an alias above or an ``ami-`` id), ``size``,
``subnet``, ``security_groups``, ``eip`` (an elastic IP's Name tag), ``root_volume_size``
(GiB), ``userdata``, ``ssh_interface`` (``public_ips``/``private_ips``),
``ssh_gateway_node`` (reach the host through that node's public address: the bastion for
private subnets), ``ssh_gateway_profile`` (the profile that node is created from),
``salt_master_node`` (minions' ``master`` is that node's private address unless
``minion: master`` is set), and everything salt-cloud's bootstrap understands.

A map creates its ``make_master`` node before every other. When that salt-master is a
private host reached through a bastion that does not exist yet, the bastion's instance is
launched first from ``ssh_gateway_profile`` (without Salt), and the map's create of the
bastion then deploys that very instance rather than launching a second one.

Every failure after the instance was launched terminates it again, so a failed create
leaves nothing behind; if even that fails the error names the instance left over.
"""

import contextlib
import copy
import datetime
import logging
import os
import uuid

import awsutil
import salt.config as config
from salt.exceptions import SaltCloudConfigError
from salt.exceptions import SaltCloudException
from salt.exceptions import SaltCloudNotFound
from salt.exceptions import SaltCloudSystemExit

log = logging.getLogger(__name__)

__virtualname__ = "aws_ec2"

# States in which an instance still exists under its name (terminated ones linger in
# describe results for an hour).
LIVE_STATES = ["pending", "running", "stopping", "stopped"]
# Marks an SSH gateway launched, not yet deployed, ahead of the salt-master it leads to; the
# map's own create of that node adopts it (and drops the tag) instead of launching another.
GATEWAY_TAG = "salt-cloud:ssh-gateway-for"
# Root volume size (GiB) when neither the profile nor the image says.
DEFAULT_ROOT_SIZE = 10


def __virtual__():
    if not awsutil.HAS_BOTO3:
        return (False, "the aws_ec2 cloud driver needs boto3")
    if get_configured_provider() is False:
        return False
    return __virtualname__


def _get_active_provider_name():
    try:
        return __active_provider_name__.value()
    except AttributeError:
        return __active_provider_name__


def get_configured_provider():
    """The first provider configured with this driver (no network access)."""
    return config.is_provider_configured(
        __opts__, _get_active_provider_name() or __virtualname__, ("region",)
    )


def _setting(name, vm_=None, default=None):
    """A setting of the VM/profile, falling back to the provider's."""
    return config.get_cloud_config_value(
        name, vm_ or get_configured_provider(), __opts__, default=default, search_global=False
    )


def _ec2(vm_=None):
    return awsutil.client(
        "ec2", profile=_setting("aws_profile", vm_), region=_setting("region", vm_)
    )


def _cluster(vm_=None):
    return _setting("cluster", vm_, default="showcase")


@contextlib.contextmanager
def _salt_cloud_errors():
    """AWS failures (already named by awsutil) as the errors salt-cloud reports per node."""
    try:
        yield
    except awsutil.AwsError as err:
        raise SaltCloudSystemExit(str(err)) from err


def _call(operation, vm_=None, **params):
    with _salt_cloud_errors():
        return awsutil.call(_ec2(vm_), operation, **params)


def _instances(name=None, vm_=None):
    """The cluster's live instances (optionally only the one named ``name``)."""
    tags = {awsutil.CLUSTER_TAG: _cluster(vm_)}
    if name is not None:
        tags["Name"] = name
    filters = awsutil.tag_filters(tags) + [{"Name": "instance-state-name", "Values": LIVE_STATES}]
    with _salt_cloud_errors():
        reservations = awsutil.paginate(
            _ec2(vm_), "describe_instances", "Reservations", Filters=filters
        )
    return [instance for reservation in reservations for instance in reservation["Instances"]]


def _node(instance):
    """salt-cloud's view of an instance: the standard fields plus AWS's own."""
    tags = awsutil.tags_to_dict(instance.get("Tags"))
    public_ip = instance.get("PublicIpAddress")
    return {
        "id": instance["InstanceId"],
        "name": tags.get("Name", instance["InstanceId"]),
        "image": instance.get("ImageId"),
        "size": instance.get("InstanceType"),
        "state": instance["State"]["Name"],
        "private_ips": [instance["PrivateIpAddress"]] if instance.get("PrivateIpAddress") else [],
        "public_ips": [public_ip] if public_ip else [],
        "subnet": instance.get("SubnetId"),
        "security_groups": [group["GroupName"] for group in instance.get("SecurityGroups", [])],
        "tags": tags,
    }


def _the_instance(name, vm_=None):
    found = _instances(name, vm_)
    if not found:
        raise SaltCloudNotFound(f"No instance named {name} in cluster {_cluster(vm_)}")
    if len(found) > 1:
        ids = ", ".join(instance["InstanceId"] for instance in found)
        raise SaltCloudSystemExit(f"Several instances are named {name}: {ids}")
    return found[0]


def list_nodes(call=None):
    """
    The cluster's instances with the standard fields.

    CLI Example:

    .. code-block:: bash

        salt-cloud -Q
    """
    if call == "action":
        raise SaltCloudSystemExit("The list_nodes function must be called with -f or --function.")
    fields = ("id", "image", "size", "state", "private_ips", "public_ips")
    return {
        node["name"]: {field: node[field] for field in fields}
        for node in map(_node, _instances())
    }


def list_nodes_full(call=None):
    """
    The cluster's instances with every field AWS reports.

    CLI Example:

    .. code-block:: bash

        salt-cloud -F
    """
    if call == "action":
        raise SaltCloudSystemExit(
            "The list_nodes_full function must be called with -f or --function."
        )
    return {
        node["name"]: _plain({**instance, **node})
        for instance, node in ((instance, _node(instance)) for instance in _instances())
    }


def list_nodes_select(call=None):
    """
    The cluster's instances with the fields of ``query.selection``.

    CLI Example:

    .. code-block:: bash

        salt-cloud -S
    """
    return __utils__["cloud.list_nodes_select"](
        list_nodes_full("function"), __opts__["query.selection"], call
    )


def show_instance(name, call=None):
    """
    One instance, every field.

    CLI Example:

    .. code-block:: bash

        salt-cloud -a show_instance kong
    """
    if call != "action":
        raise SaltCloudSystemExit("The show_instance action must be called with -a or --action.")
    instance = _the_instance(name)
    return _plain({**instance, **_node(instance)})


def _plain(data):
    """AWS's answer with its datetimes as ISO strings, fit for salt-cloud's outputters."""
    if isinstance(data, dict):
        return {key: _plain(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_plain(value) for value in data]
    if isinstance(data, datetime.datetime):
        return data.isoformat()
    return data


def _image_aliases(vm_=None):
    return _setting("images", vm_, default={}) or {}


def avail_images(call=None):
    """
    The AMIs of the configured image aliases' owners and name patterns, newest first.

    CLI Example:

    .. code-block:: bash

        salt-cloud --list-images showcase
    """
    if call == "action":
        raise SaltCloudSystemExit("The avail_images function must be called with -f or --function.")
    images = {}
    for alias, spec in _image_aliases().items():
        for image in _matching_images(spec):
            images[image["ImageId"]] = {
                "alias": alias,
                "name": image.get("Name"),
                "owner": image.get("OwnerId"),
                "created": image.get("CreationDate"),
            }
    return images


def avail_locations(call=None):
    """
    The availability zones of the provider's region.

    CLI Example:

    .. code-block:: bash

        salt-cloud --list-locations showcase
    """
    if call == "action":
        raise SaltCloudSystemExit(
            "The avail_locations function must be called with -f or --function."
        )
    zones = _call("describe_availability_zones")["AvailabilityZones"]
    return {
        zone["ZoneName"]: {"state": zone.get("State"), "region": zone.get("RegionName")}
        for zone in zones
    }


def avail_sizes(call=None):
    """
    The instance types offered in the region, with vCPUs and memory.

    CLI Example:

    .. code-block:: bash

        salt-cloud --list-sizes showcase
    """
    if call == "action":
        raise SaltCloudSystemExit("The avail_sizes function must be called with -f or --function.")
    with _salt_cloud_errors():
        types = awsutil.paginate(_ec2(), "describe_instance_types", "InstanceTypes")
    return {
        item["InstanceType"]: {
            "vcpus": item.get("VCpuInfo", {}).get("DefaultVCpus"),
            "memory_mib": item.get("MemoryInfo", {}).get("SizeInMiB"),
        }
        for item in types
    }


def _matching_images(spec, vm_=None):
    with _salt_cloud_errors():
        return awsutil.matching_images(
            _ec2(vm_), spec["owner"], spec["name"], spec.get("architecture")
        )


def resolve_image(vm_):
    """
    ``(image dict, ssh_username)`` for the VM's ``image``: an ``ami-`` id as is, or an alias
    of the provider's ``images`` resolved to the newest AMI matching its owner and name.
    """
    image = _setting("image", vm_)
    if not image:
        raise SaltCloudConfigError(f"{vm_['name']}: no 'image' set in the profile")
    if str(image).startswith("ami-"):
        found = _call("describe_images", vm_, ImageIds=[image])["Images"]
        spec = {}
    else:
        aliases = _image_aliases(vm_)
        if image not in aliases:
            raise SaltCloudConfigError(
                f"{vm_['name']}: image {image!r} is neither an ami- id nor one of the "
                f"provider's images ({', '.join(sorted(aliases))})"
            )
        spec = aliases[image]
        found = _matching_images(spec, vm_)
    if not found:
        raise SaltCloudNotFound(
            f"{vm_['name']}: no available AMI for image {image!r} "
            f"(owner {spec.get('owner')}, name {spec.get('name')}) in {_setting('region', vm_)}"
        )
    return found[0], spec.get("ssh_username")


def _find_tagged(kind, name, vm_):
    operation, result_key, filter_key = {
        "subnet": ("describe_subnets", "Subnets", "Filters"),
        "security_group": ("describe_security_groups", "SecurityGroups", "Filters"),
        "address": ("describe_addresses", "Addresses", "Filters"),
    }[kind]
    filters = awsutil.tag_filters({"Name": name, awsutil.CLUSTER_TAG: _cluster(vm_)})
    found = _call(operation, vm_, **{filter_key: filters})[result_key]
    if not found:
        raise SaltCloudNotFound(
            f"{vm_['name']}: no {kind.replace('_', ' ')} named {name} in cluster "
            f"{_cluster(vm_)} (run `salt-run state.orchestrate orch.network` first)"
        )
    return found[0]


def _image_root_size(image):
    """The size (GiB) of the image's root volume: the smallest the instance may get."""
    for mapping in image.get("BlockDeviceMappings", []):
        if mapping.get("DeviceName") == image.get("RootDeviceName") and "Ebs" in mapping:
            return mapping["Ebs"].get("VolumeSize", DEFAULT_ROOT_SIZE)
    return DEFAULT_ROOT_SIZE


def launch_parameters(vm_, image, extra_tags=None):
    """The ``run_instances`` arguments for ``vm_`` (network objects resolved by name)."""
    subnet_name = _setting("subnet", vm_)
    if not subnet_name:
        raise SaltCloudConfigError(f"{vm_['name']}: no 'subnet' set in the profile")
    group_ids = [
        _find_tagged("security_group", group, vm_)["GroupId"]
        for group in _setting("security_groups", vm_, default=[])
    ]
    tags = awsutil.dict_to_tags(
        {
            "Name": vm_["name"],
            awsutil.CLUSTER_TAG: _cluster(vm_),
            awsutil.PROFILE_TAG: vm_.get("profile") or "",
            **({awsutil.SALT_MASTER_TAG: "true"} if vm_.get("make_master") is True else {}),
            **(_setting("tags", vm_, default={}) or {}),
            **(extra_tags or {}),
        }
    )
    root_device = image.get("RootDeviceName", "/dev/sda1")
    root_volume = {
        "DeleteOnTermination": True,
        "VolumeType": "gp3",
        "VolumeSize": int(_setting("root_volume_size", vm_) or _image_root_size(image)),
    }
    params = {
        "ImageId": image["ImageId"],
        "InstanceType": _setting("size", vm_, default="t2.medium"),
        "MinCount": 1,
        "MaxCount": 1,
        "SubnetId": _find_tagged("subnet", subnet_name, vm_)["SubnetId"],
        "SecurityGroupIds": group_ids,
        "BlockDeviceMappings": [
            {"DeviceName": root_device, "Ebs": root_volume}
        ],
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": tags},
            {"ResourceType": "volume", "Tags": tags},
        ],
        # Makes a retried request (throttling, timeouts) launch one instance, not two.
        "ClientToken": f"{vm_['name']}-{uuid.uuid4().hex}",
    }
    if _setting("keyname", vm_):
        params["KeyName"] = _setting("keyname", vm_)
    if _setting("userdata", vm_):
        params["UserData"] = _setting("userdata", vm_)
    return params


def ssh_key_file(vm_):
    """The private key salt-cloud logs in with (``~`` expanded); it must exist."""
    key_filename = _setting("ssh_keyfile", vm_) or _setting("key_filename", vm_)
    if not key_filename:
        return None
    key_filename = os.path.expanduser(key_filename)
    if not os.path.isfile(key_filename):
        raise SaltCloudConfigError(f"{vm_['name']}: the SSH key file {key_filename} does not exist")
    return key_filename


def deploy_settings(vm_, instance, ssh_username=None):
    """
    What salt-cloud's bootstrap needs, set on ``vm_``: the SSH host for ``ssh_interface``,
    ``salt_host`` (the private address: minions and a master made by the map talk over the
    VPC), the bastion (``gateway``) for ``ssh_gateway_node``, the expanded key file, the
    image's login user, and the minion's ``master`` from ``salt_master_node``.
    """
    interface = _setting("ssh_interface", vm_, default="public_ips")
    private_ip = instance.get("PrivateIpAddress")
    if interface == "private_ips":
        ssh_host = private_ip
    else:
        ssh_host = instance.get("PublicIpAddress")
        if not ssh_host:
            raise SaltCloudConfigError(
                f"{vm_['name']} has no public address; use ssh_interface: private_ips "
                "with an ssh_gateway_node to reach it"
            )
    vm_["ssh_host"] = ssh_host
    vm_["salt_host"] = private_ip
    vm_.setdefault("ssh_username", _setting("ssh_username", vm_) or ssh_username or "root")

    key_filename = ssh_key_file(vm_)
    if key_filename:
        vm_["key_filename"] = vm_["ssh_keyfile"] = key_filename

    gateway_node = _setting("ssh_gateway_node", vm_)
    if gateway_node and interface == "private_ips":
        gateway_address = _the_instance(gateway_node, vm_).get("PublicIpAddress")
        if not gateway_address:
            raise SaltCloudSystemExit(f"The SSH gateway {gateway_node} has no public address")
        vm_["gateway"] = {
            "ssh_gateway": gateway_address,
            "ssh_gateway_user": _setting("ssh_gateway_username", vm_) or vm_["ssh_username"],
            "ssh_gateway_key": _setting("ssh_gateway_private_key", vm_) or key_filename,
            "ssh_gateway_command": _setting("ssh_gateway_command", vm_, default="nc -q0 %h %p"),
        }

    master_node = _setting("salt_master_node", vm_)
    minion = vm_.setdefault("minion", {})
    if master_node and "master" not in minion:
        if master_node == vm_["name"]:
            minion["master"] = private_ip
        else:
            minion["master"] = _the_instance(master_node, vm_)["PrivateIpAddress"]
    return vm_


def _associate_address(vm_, instance_id):
    eip_name = _setting("eip", vm_)
    if not eip_name:
        return None
    address = _find_tagged("address", eip_name, vm_)
    if address.get("InstanceId") == instance_id:  # an adopted gateway has it already
        return address["PublicIp"]
    _call(
        "associate_address",
        vm_,
        AllocationId=address["AllocationId"],
        InstanceId=instance_id,
        AllowReassociation=False,
    )
    return address["PublicIp"]


def _terminate(instance_id, vm_=None):
    _call("terminate_instances", vm_, InstanceIds=[instance_id])
    with _salt_cloud_errors():
        awsutil.wait(_ec2(vm_), "instance_terminated", InstanceIds=[instance_id])


def _fire(vm_, what, tag_suffix, args):
    __utils__["cloud.fire_event"](
        "event",
        f"{what} instance",
        f"salt/cloud/{vm_['name']}/{tag_suffix}",
        args=__utils__["cloud.filter_event"](tag_suffix, args, list(args)),
        sock_dir=__opts__["sock_dir"],
        transport=__opts__["transport"],
    )


def _deploys(vm_):
    # Global search: `salt-cloud --no-deploy` sets the option in the main configuration.
    return config.get_cloud_config_value("deploy", vm_, __opts__, default=True) is not False


def _gateway_to_launch_first(vm_):
    """
    The bastion ``vm_`` needs for its deploy, as a VM to launch now, when ``vm_`` is the map's
    salt-master (created before every other node) and the bastion does not exist yet.
    """
    gateway_node = _setting("ssh_gateway_node", vm_)
    if (
        not gateway_node
        or vm_.get("make_master") is not True
        or _setting("ssh_interface", vm_, default="public_ips") != "private_ips"
        or _instances(gateway_node, vm_)
    ):
        return None
    profile = _setting("ssh_gateway_profile", vm_)
    if profile not in __opts__["profiles"]:
        raise SaltCloudConfigError(
            f"{vm_['name']} is deployed through {gateway_node}, which does not exist yet: "
            "set ssh_gateway_profile to the profile it is created from"
        )
    # As salt-cloud's map makes a node's settings: the provider's, then the profile's.
    profile_data = __opts__["profiles"][profile]
    alias, driver = profile_data["provider"].split(":")
    provider = {
        key: value for key, value in __opts__["providers"][alias][driver].items() if key != "profiles"
    }
    return {
        **copy.deepcopy(provider),
        **copy.deepcopy(profile_data),
        "name": gateway_node,
        "profile": profile,
        "driver": f"{alias}:{driver}",
        "deploy": False,
    }


def _adoptable(vm_):
    """The instance launched ahead as the SSH gateway named like ``vm_``, if there is one."""
    for instance in _instances(vm_["name"], vm_):
        if GATEWAY_TAG in awsutil.tags_to_dict(instance.get("Tags")):
            instance_id = instance["InstanceId"]
            _call("delete_tags", vm_, Resources=[instance_id], Tags=[{"Key": GATEWAY_TAG}])
            log.info("Deploying %s on %s, launched ahead as SSH gateway", vm_["name"], instance_id)
            return instance_id
    return None


def _launch(vm_, extra_tags=None):
    """
    Launch (or adopt the gateway launched ahead), wait for running, attach the EIP; on any
    failure terminate what was made, the gateway launched ahead for it included.
    """
    image, ssh_username = resolve_image(vm_)
    params = launch_parameters(vm_, image, extra_tags)
    deploy = _deploys(vm_)
    if deploy:
        ssh_key_file(vm_)  # before launching: a missing key must not cost an instance
    launched = []
    gateway_vm = _gateway_to_launch_first(vm_) if deploy else None
    if gateway_vm is not None:
        launched.append(_launch(gateway_vm, {GATEWAY_TAG: vm_["name"]})["InstanceId"])
        log.info("Launched the SSH gateway %s ahead of %s", gateway_vm["name"], vm_["name"])
    try:
        instance_id = _adoptable(vm_)
        if instance_id is None:
            instance_id = _call("run_instances", vm_, **params)["Instances"][0]["InstanceId"]
            log.info("Launched %s as %s", vm_["name"], instance_id)
        launched.append(instance_id)
        awsutil.wait(_ec2(vm_), "instance_running", InstanceIds=[instance_id])
        _associate_address(vm_, instance_id)
        instance = _call("describe_instances", vm_, InstanceIds=[instance_id])
        instance = instance["Reservations"][0]["Instances"][0]
        if deploy:
            deploy_settings(vm_, instance, ssh_username)
        return instance
    except (SaltCloudException, awsutil.AwsError) as err:
        if not launched:
            raise
        instances = f"instance{'s' if len(launched) > 1 else ''} {', '.join(launched)}"
        try:
            for launched_id in launched:
                _terminate(launched_id, vm_)
        except SaltCloudException as cleanup_err:
            raise SaltCloudSystemExit(
                f"Creating {vm_['name']} failed ({err}) and terminating its {instances} "
                f"failed too ({cleanup_err}): left over"
            ) from err
        raise SaltCloudSystemExit(
            f"Creating {vm_['name']} failed, {instances} terminated: {err}"
        ) from err


def create(vm_):
    """
    Create one instance from a profile and deploy the minion on it (unless ``--no-deploy``).

    CLI Example:

    .. code-block:: bash

        salt-cloud -p kong kong
    """
    if vm_.get("profile") and not config.is_profile_configured(
        __opts__, _get_active_provider_name() or __virtualname__, vm_["profile"], vm_=vm_
    ):
        return False
    _fire(
        vm_,
        "starting create",
        "creating",
        {"name": vm_["name"], "profile": vm_.get("profile"), "provider": vm_.get("driver")},
    )
    instance = _launch(vm_)
    ret = show_instance(vm_["name"], call="action")
    if _deploys(vm_):
        try:
            ret.update(__utils__["cloud.bootstrap"](vm_, __opts__))
        except SaltCloudException as err:
            # The instance is sound; keep it, so the deploy can be retried, and say so.
            raise SaltCloudSystemExit(
                f"{vm_['name']} ({instance['InstanceId']}) is running but deploying the "
                f"minion failed: {err}. Retry the deploy, or remove it: salt-cloud -d "
                f"{vm_['name']}"
            ) from err
    _fire(
        vm_,
        "created",
        "created",
        {"name": vm_["name"], "profile": vm_.get("profile"), "instance_id": instance["InstanceId"]},
    )
    return ret


def destroy(name, call=None):
    """
    Terminate an instance (its elastic IP stays allocated for the next one: it belongs to
    the network).

    CLI Example:

    .. code-block:: bash

        salt-cloud -d kong
    """
    if call == "function":
        raise SaltCloudSystemExit(
            "The destroy action must be called with -d, --destroy, -a or --action."
        )
    instance = _the_instance(name)
    vm_ = {"name": name}
    _fire(vm_, "destroying", "destroying", {"name": name, "instance_id": instance["InstanceId"]})
    for address in _call(
        "describe_addresses",
        Filters=[{"Name": "instance-id", "Values": [instance["InstanceId"]]}],
    )["Addresses"]:
        _call("disassociate_address", AssociationId=address["AssociationId"])
    _terminate(instance["InstanceId"])
    _fire(vm_, "destroyed", "destroyed", {"name": name, "instance_id": instance["InstanceId"]})
    if __opts__.get("update_cachedir", False):
        __utils__["cloud.delete_minion_cachedir"](
            name, _get_active_provider_name().split(":")[0], __opts__
        )
    return {name: {"id": instance["InstanceId"], "state": "terminated"}}
