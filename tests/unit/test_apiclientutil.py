"""apiclientutil against a loopback server that answers from a script: what each API's replies
mean beyond their status."""

import json

import pytest
from apiclientutil import ConsulAPI, KongAPI, MarathonAPI, VulcandAPI
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


APPS = [{"id": "/web", "labels": {"registry.service": "web"}, "tasks": [{"id": "web.1"}]},
        {"id": "/api", "tasks": []}]


@pytest.mark.parametrize("body", [
    json.dumps({"apps": APPS}).encode(),
    json.dumps({"apps": APPS}, indent=2).encode(),
    json.dumps({"version": 1, "apps": APPS}).encode(),  # another shape: decoded whole
], ids=["compact", "indented", "other keys first"])
def test_marathon_apps_are_decoded_one_by_one_from_the_listing(scripted_server, body):
    scripted_server.script = [reply(200, body)]
    apps = MarathonAPI(scripted_server.url).iter_apps(label="registry.service")
    assert scripted_server.received[0]["path"] == "/v2/apps?embed=apps.tasks&label=registry.service"
    assert next(apps) == APPS[0]
    assert list(apps) == APPS[1:]


def test_each_app_comes_with_its_text_in_the_listing_when_asked(scripted_server):
    body = json.dumps({"apps": APPS}, indent=2)
    scripted_server.script = [reply(200, body.encode()),
                              reply(200, json.dumps({"version": 1, "apps": APPS}).encode())]
    pairs = list(MarathonAPI(scripted_server.url).iter_apps(with_text=True))
    assert [app for app, _ in pairs] == APPS
    assert [json.loads(text) for _, text in pairs] == APPS
    assert all(text in body for _, text in pairs)
    # A body decoded whole has no text of each app.
    assert list(MarathonAPI(scripted_server.url).iter_apps(with_text=True)) == [
        (app, None) for app in APPS]


@pytest.mark.parametrize("body, count", [(b'{"apps": [ ]}', 0), (b"", 0)])
def test_an_empty_marathon_listing_has_no_apps(scripted_server, body, count):
    scripted_server.script = [reply(200, body)]
    assert len(MarathonAPI(scripted_server.url).list_apps()) == count


def test_a_listing_that_is_not_json_is_a_marathon_error(scripted_server):
    scripted_server.script = [reply(200, b'{"apps": [{"id": "/web"} {"id": "/api"}]}')]
    apps = MarathonAPI(scripted_server.url).iter_apps()
    assert next(apps) == {"id": "/web"}
    with pytest.raises(CommandExecutionError, match="marathon: GET .*/v2/apps: the reply is not"):
        next(apps)


def test_writes_return_the_servers_object_unless_no_reply_is_asked_for(scripted_server):
    entity = {"id": "s1", "name": "web"}
    scripted_server.script = [reply(200, entity), reply(200, entity),
                              reply(200, {"Id": "b1"}), reply(200, {"Id": "b1"})]
    kong, vulcand = KongAPI(scripted_server.url), VulcandAPI(scripted_server.url)
    assert kong.upsert("services", "web", {"name": "web"}) == entity
    assert kong.upsert("services", "web", {"name": "web"}, reply=False) is None
    assert vulcand.upsert("backends", {"Id": "b1"}) == {"Id": "b1"}
    assert vulcand.upsert_server("b1", {"Id": "s1", "URL": "http://127.0.0.1:1"},
                                 reply=False) is None
    assert [request["path"] for request in scripted_server.received] == [
        "/services/web", "/services/web", "/v2/backends", "/v2/backends/b1/servers"]
