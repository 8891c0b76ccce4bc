"""
awsutil against a scripted EC2 endpoint on 127.0.0.1 (through AWS_ENDPOINT_URL, as the
real code path): throttling is retried, auth errors are reported plainly and not retried,
other errors name the operation and region, a missing profile says how to fix it.
"""

import http.server
import threading
from unittest import mock

import botocore.retries.standard
import pytest


import awsutil

ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{code}</Code>'
    "<Message>{message}</Message></Error></Errors><RequestID>r</RequestID></Response>"
)
NO_VPCS = (
    '<?xml version="1.0" encoding="UTF-8"?><DescribeVpcsResponse '
    'xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId>'
    "<vpcSet/></DescribeVpcsResponse>"
)


class ScriptedEC2(http.server.ThreadingHTTPServer):
    """Answers each request with the next (status, body) of ``script``, then success."""

    def __init__(self, script):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = list(script)
        self.requests = 0


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests += 1
        status, body = self.server.script.pop(0) if self.server.script else (200, NO_VPCS)
        payload = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def ec2_endpoint(monkeypatch):
    servers = []

    def start(*script):
        server = ScriptedEC2(script)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        awsutil.reset_clients()
        return server

    # Backoff is botocore's; the tests only count attempts, without sleeping.
    backoff = botocore.retries.standard.ExponentialBackoff
    with mock.patch.object(backoff, "delay_amount", return_value=0):
        yield start
    for server in servers:
        server.shutdown()
        server.server_close()
    awsutil.reset_clients()


def _describe_vpcs():
    return awsutil.call(awsutil.client("ec2", profile="", region="eu-west-1"), "describe_vpcs")


def test_throttling_is_retried_until_it_passes(ec2_endpoint):
    throttled = (503, ERROR.format(code="RequestLimitExceeded", message="Request limit exceeded."))
    server = ec2_endpoint(throttled, throttled, throttled)
    assert _describe_vpcs()["Vpcs"] == []
    assert server.requests == 4


def test_throttling_that_never_ends_fails_after_the_attempt_budget(ec2_endpoint):
    throttled = (503, ERROR.format(code="RequestLimitExceeded", message="Request limit exceeded."))
    server = ec2_endpoint(*[throttled] * 20)
    with pytest.raises(awsutil.AwsError, match="describe_vpcs failed in eu-west-1: RequestLimit"):
        _describe_vpcs()
    assert server.requests == awsutil.RETRY_CONFIG["total_max_attempts"]


def test_auth_errors_are_reported_plainly_and_not_retried(ec2_endpoint):
    server = ec2_endpoint(
        (
            401,
            ERROR.format(
                code="AuthFailure",
                message="AWS was not able to validate the provided access credentials",
            ),
        )
    )
    with pytest.raises(awsutil.AwsAuthError) as error:
        _describe_vpcs()
    assert error.value.code == "AuthFailure"
    assert str(error.value) == (
        "AWS describe_vpcs failed in eu-west-1: AuthFailure: AWS was not able to validate the "
        "provided access credentials (check the credentials and IAM permissions)"
    )
    assert server.requests == 1


def test_other_errors_name_the_operation_and_keep_the_code(ec2_endpoint):
    message = "Value (eu-west-1z) for parameter availabilityZone is invalid."
    ec2_endpoint((400, ERROR.format(code="InvalidParameterValue", message=message)))
    with pytest.raises(awsutil.AwsError) as error:
        _describe_vpcs()
    assert not isinstance(error.value, awsutil.AwsAuthError)
    assert error.value.code == "InvalidParameterValue"
    assert "eu-west-1z" in str(error.value)


def test_missing_profile_says_how_to_fix_it(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    awsutil.reset_clients()
    with pytest.raises(awsutil.AwsAuthError, match=r"profile 'showcase' .*aws configure --profile"):
        awsutil.client("ec2")


def test_tag_helpers_round_trip():
    tags = {"Name": "kong", awsutil.CLUSTER_TAG: "showcase"}
    assert awsutil.tags_to_dict(awsutil.dict_to_tags(tags)) == tags
    assert awsutil.tag_filters(tags) == [
        {"Name": "tag:Name", "Values": ["kong"]},
        {"Name": f"tag:{awsutil.CLUSTER_TAG}", "Values": ["showcase"]},
    ]
