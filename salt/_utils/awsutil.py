"""
boto3 clients the way every AWS tool builds them, shared by the network modules, the
salt-cloud driver and the cluster runner.

- Credentials and region come from the standard chain (environment, shared config and
  credentials files, instance profile). ``profile`` names a profile of the shared files
  (the seed used ``showcase``); an empty profile means the default chain.
- ``AWS_ENDPOINT_URL`` (and the per-service ``AWS_ENDPOINT_URL_EC2``) are honoured by botocore
  itself, which is how the tests point the very same code at a local ``moto_server``.
- Throttling and transient errors are retried by botocore's ``standard`` retry mode
  (exponential backoff with jitter); what still fails is raised as :class:`AwsError`, or
  :class:`AwsAuthError` when AWS rejected the credentials, naming the operation that failed.

Import it directly (``import awsutil``); the loader puts ``salt/_utils`` on ``sys.path``.
"""

import functools

from salt.exceptions import CommandExecutionError

try:
    import boto3
    import botocore.config
    import botocore.exceptions

    HAS_BOTO3 = True
except ImportError:
    HAS_BOTO3 = False

DEFAULT_PROFILE = "showcase"
DEFAULT_REGION = "eu-west-1"

# Tag that marks every resource of one cluster, so lookups and teardown only ever touch ours.
CLUSTER_TAG = "showcase:cluster"
# The salt-cloud profile an instance was created from (set by the aws_ec2 cloud driver).
PROFILE_TAG = "salt-cloud:profile"
# Marks the instance a salt-cloud map made the cluster's salt-master (make_master).
SALT_MASTER_TAG = "salt-cloud:salt-master"

# Error codes meaning "these credentials are not accepted"; retrying cannot help.
AUTH_ERROR_CODES = frozenset(
    {
        "AuthFailure",
        "UnauthorizedOperation",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "RequestExpired",
        "AccessDenied",
        "OptInRequired",
    }
)

# The "standard" mode retries throttling (RequestLimitExceeded, Throttling...) and 5xx with
# exponential backoff; 8 attempts in all ride out a burst of parallel salt-cloud creations.
RETRY_CONFIG = {"mode": "standard", "total_max_attempts": 8}


class AwsError(CommandExecutionError):
    """An AWS call failed; ``code`` is AWS's error code (or the botocore error class)."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


class AwsAuthError(AwsError):
    """AWS rejected the credentials or their permissions."""


def _profile_or_default(profile):
    # ``None`` means "not configured": use the project's default profile, as the seed did.
    # An explicit empty string means the default chain (environment, instance profile...).
    return DEFAULT_PROFILE if profile is None else (profile or None)


@functools.lru_cache(maxsize=None)
def _session(profile, region):
    try:
        return boto3.session.Session(profile_name=profile, region_name=region)
    except botocore.exceptions.ProfileNotFound as err:
        raise AwsAuthError(
            f"AWS profile {profile!r} is not in the shared config/credentials files: {err}. "
            "Create it (`aws configure --profile NAME`) or set the profile to '' to use the "
            "default credential chain.",
            code="ProfileNotFound",
        ) from err


def client(service, profile=None, region=None):
    """
    A boto3 client for ``service`` (cached per service, profile and region).

    :param profile: shared-config profile name; ``None`` -> ``showcase``, ``""`` -> default chain
    :param region: region name; ``None`` -> the profile's region, else ``eu-west-1``
    """
    profile = _profile_or_default(profile)
    return _client(service, profile, region)


@functools.lru_cache(maxsize=None)
def _client(service, profile, region):
    session = _session(profile, region)
    region = region or session.region_name or DEFAULT_REGION
    # A copy: botocore rewrites the dict it is given.
    config = botocore.config.Config(retries=dict(RETRY_CONFIG), user_agent_extra="salt-showcase")
    return session.client(service, region_name=region, config=config)


def reset_clients():
    """Forget cached sessions and clients (after credentials or endpoints changed)."""
    _session.cache_clear()
    _client.cache_clear()


def _translated(err, operation, region):
    """The :class:`AwsError` to raise for a botocore exception ``err``."""
    if isinstance(err, botocore.exceptions.ClientError):
        error = err.response.get("Error", {})
        code = error.get("Code", "Unknown")
        message = f"AWS {operation} failed in {region}: {code}: {error.get('Message', err)}"
        if code in AUTH_ERROR_CODES:
            return AwsAuthError(f"{message} (check the credentials and IAM permissions)", code)
        return AwsError(message, code)
    if isinstance(err, botocore.exceptions.NoCredentialsError):
        return AwsAuthError(
            f"AWS {operation} in {region}: no credentials found (profile, environment or "
            "instance profile)",
            code="NoCredentials",
        )
    return AwsError(f"AWS {operation} failed in {region}: {err}", type(err).__name__)


def call(aws_client, operation, **params):
    """
    Call ``aws_client.<operation>(**params)`` and translate failures into :class:`AwsError`.

    botocore has already retried throttling and transient errors with backoff when this
    raises, so the message says what finally failed and where.
    """
    try:
        return getattr(aws_client, operation)(**params)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as err:
        raise _translated(err, operation, aws_client.meta.region_name) from err


def paginate(aws_client, operation, result_key, **params):
    """Every item of a paginated describe call, as one list."""
    try:
        return [
            item
            for page in aws_client.get_paginator(operation).paginate(**params)
            for item in page.get(result_key, [])
        ]
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as err:
        raise _translated(err, operation, aws_client.meta.region_name) from err


def wait(aws_client, waiter_name, delay=2, max_attempts=150, **params):
    """Block on a boto3 waiter, raising :class:`AwsError` naming the waiter on failure."""
    try:
        aws_client.get_waiter(waiter_name).wait(
            WaiterConfig={"Delay": delay, "MaxAttempts": max_attempts}, **params
        )
    except botocore.exceptions.WaiterError as err:
        raise AwsError(f"AWS waiter {waiter_name} gave up: {err}", "WaiterError") from err


def matching_images(ec2, owner, name, architecture=None):
    """
    The available AMIs of ``owner`` whose name matches the pattern ``name``, newest first:
    images are chosen by owner + name, never by ids that differ per region and expire.
    """
    filters = [
        {"Name": "name", "Values": [name]},
        {"Name": "state", "Values": ["available"]},
    ]
    if architecture:
        filters.append({"Name": "architecture", "Values": [architecture]})
    images = call(ec2, "describe_images", Owners=[str(owner)], Filters=filters)["Images"]
    # Names carry the build date, which breaks ties between images made the same second.
    return sorted(
        images,
        key=lambda image: (image.get("CreationDate", ""), image.get("Name", "")),
        reverse=True,
    )


def tags_to_dict(tags):
    """``[{"Key": k, "Value": v}, ...]`` -> ``{k: v}``."""
    return {tag["Key"]: tag["Value"] for tag in tags or ()}


def dict_to_tags(tags):
    """``{k: v}`` -> ``[{"Key": k, "Value": v}, ...]`` (sorted, for stable requests)."""
    return [{"Key": key, "Value": str(value)} for key, value in sorted(tags.items())]


def tag_filters(tags):
    """EC2 ``Filters`` selecting resources that carry every tag of ``tags``."""
    return [{"Name": f"tag:{key}", "Values": [str(value)]} for key, value in sorted(tags.items())]


def tag_specification(resource_type, tags):
    """The ``TagSpecifications`` argument that tags a resource at creation time."""
    return [{"ResourceType": resource_type, "Tags": dict_to_tags(tags)}]
