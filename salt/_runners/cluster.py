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


def _provider_settings(provider):
    """The salt-cloud provider ``provider`` as configured next to the master config."""
    cloud_config_path = os.path.join(os.path.dirname(__opts__["conf_file"]), "cloud")
    providers = salt.config.cloud_config(cloud_config_path)["providers"]
    if provider not in providers:
        raise SaltInvocationError(
            f"No salt-cloud provider {provider!r}; configured: {', '.join(sorted(providers))}"
        )
    (settings,) = providers[provider].values()
    return settings


def addresses(provider="showcase", domain="service.consul"):
    """
    The kong gateway's public address (its elastic IP) and private address, the masters'
    private addresses, and the ``/etc/hosts`` line that names the gateway (and the Mesos and
    Marathon UIs it routes by Host header).

    :param provider: the salt-cloud provider (``cloud.providers.d/aws.conf``)
    :param domain: the cluster's DNS domain (pillar ``platform:domain``)

    CLI Example:

    .. code-block:: bash

        salt-run cluster.addresses
    """
    settings = _provider_settings(provider)
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
    ret = {
        "kong_public_address": kong_public,
        "kong_private_address": kong.get("PrivateIpAddress"),
        "master_addresses": dict(masters),
        "etc_hosts": None,
    }
    if kong_public:
        names = " ".join(f"{host}.{domain}" for host in ("kong", "mesos", "marathon"))
        ret["etc_hosts"] = f"{kong_public}  {names}"
    return ret
