"""
What the seed's Terraform printed after `apply`: the addresses of the cluster, read from
AWS through the same provider configuration salt-cloud uses (``cloud.providers.d/``), and
the line to add to ``/etc/hosts`` to reach the gateway by name.

.. code-block:: bash

    salt-run cluster.addresses
"""

import os

import awsutil
import salt.config
from salt.exceptions import SaltInvocationError

__virtualname__ = "cluster"

LIVE_STATES = ["pending", "running", "stopping", "stopped"]


def __virtual__():
    if not awsutil.HAS_BOTO3:
        return (False, "the cluster runner needs boto3")
    return __virtualname__


def _cloud_config(provider):
    """``(provider settings, profiles)`` of salt-cloud as configured next to the master config."""
    cloud_config_path = os.path.join(os.path.dirname(__opts__["conf_file"]), "cloud")
    cloud = salt.config.cloud_config(cloud_config_path)
    providers = cloud["providers"]
    if provider not in providers:
        raise SaltInvocationError(
            f"No salt-cloud provider {provider!r}; configured: {', '.join(sorted(providers))}"
        )
    (settings,) = providers[provider].values()
    return settings, cloud.get("profiles", {})


def _login_user(instance, settings, profiles):
    """The SSH user of ``instance``: its profile's, else its image alias's (``admin`` on Debian)."""
    profile = profiles.get(awsutil.tags_to_dict(instance.get("Tags")).get(awsutil.PROFILE_TAG), {})
    image = (settings.get("images") or {}).get(profile.get("image"), {})
    return profile.get("ssh_username") or image.get("ssh_username") or "root"


def addresses(provider="showcase", domain="service.consul"):
    """
    The kong gateway's public address (its elastic IP) and private address, the masters'
    private addresses, the salt-master (the node the map made it, else the provider's
    ``salt_master_node``: a private host)
    with the command that runs Salt on it through kong as SSH bastion, and the ``/etc/hosts``
    line that names the gateway (and the Mesos and Marathon UIs it routes by Host header).

    :param provider: the salt-cloud provider (``cloud.providers.d/aws.conf``)
    :param domain: the cluster's DNS domain (pillar ``platform:domain``)

    CLI Example:

    .. code-block:: bash

        salt-run cluster.addresses
    """
    settings, profiles = _cloud_config(provider)
    ec2 = awsutil.client(
        "ec2", profile=settings.get("aws_profile"), region=settings.get("region")
    )
    cluster = settings.get("cluster", "showcase")
    reservations = awsutil.paginate(
        ec2,
        "describe_instances",
        "Reservations",
        Filters=awsutil.tag_filters({awsutil.CLUSTER_TAG: cluster})
        + [{"Name": "instance-state-name", "Values": LIVE_STATES}],
    )
    nodes = {}
    for reservation in reservations:
        for instance in reservation["Instances"]:
            name = awsutil.tags_to_dict(instance.get("Tags")).get("Name")
            nodes[name] = instance
    kong = nodes.get("kong", {})
    kong_public = kong.get("PublicIpAddress")
    masters = sorted(
        (name, instance.get("PrivateIpAddress"))
        for name, instance in nodes.items()
        if name and name.startswith("master")
    )
    # The node a map made the salt-master (master0 in the ha map), else salt_master_node.
    salt_master_name = next(
        (
            name
            for name, instance in sorted(nodes.items(), key=lambda item: str(item[0]))
            if awsutil.SALT_MASTER_TAG in awsutil.tags_to_dict(instance.get("Tags"))
        ),
        settings.get("salt_master_node", "master"),
    )
    salt_master = nodes.get(salt_master_name, {})
    ret = {
        "kong_public_address": kong_public,
        "kong_private_address": kong.get("PrivateIpAddress"),
        "master_addresses": dict(masters),
        "salt_master": {
            "name": salt_master_name,
            "address": salt_master.get("PrivateIpAddress"),
            "ssh": None,
        },
        "etc_hosts": None,
    }
    if kong_public and salt_master.get("PrivateIpAddress"):
        ret["salt_master"]["ssh"] = (
            f"ssh -J {_login_user(kong, settings, profiles)}@{kong_public} "
            f"{_login_user(salt_master, settings, profiles)}@{salt_master['PrivateIpAddress']}"
        )
    if kong_public:
        names = " ".join(f"{host}.{domain}" for host in ("kong", "mesos", "marathon"))
        ret["etc_hosts"] = f"{kong_public}  {names}"
    return ret
