"""apiclientutil against a loopback server that answers from a script: what each API's replies
mean beyond their status."""

import pytest
from apiclientutil import ConsulAPI
from httpclientutil import NotFoundError
from salt.exceptions import CommandExecutionError

from tests.fixtures.scripted import reply


def test_an_unknown_consul_service_is_not_found(scripted_server):
    scripted_server.script = [reply(404, b"unknown service ID: web", "text/plain")]
    with pytest.raises(NotFoundError):
        ConsulAPI(scripted_server.url).get_service("web")
    assert scripted_server.received[0]["path"] == "/v1/agent/service/web"


def test_a_consul_without_the_service_endpoint_is_named_not_taken_for_not_registered(scripted_server):
    """Consul 1.0 (before 1.3) has no GET /v1/agent/service/<id>: a bare 404 for any id."""
    scripted_server.script = [reply(404, b"", "text/plain")]
    with pytest.raises(CommandExecutionError) as err:
        ConsulAPI(scripted_server.url).get_service("web")
    assert not isinstance(err.value, NotFoundError)
    assert "Consul 1.3 or newer is needed" in str(err.value)
    assert f"{scripted_server.url}/v1/agent/service/web" in str(err.value)
