"""httpclientutil: retries, error messages and counters, with the network replaced by a script."""

import json

import pytest
import requests


import httpclientutil
from httpclientutil import HTTPClient, HTTPRequestError, NotFoundError, UnreachableError

URL = "http://registry.test:8500"


def reply(status, body=b"", content_type="application/json", headers=None):
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode() if not isinstance(body, bytes) else body
    response.headers.update({"Content-Type": content_type, **(headers or {})})
    return response


@pytest.fixture
def scripted(monkeypatch):
    """A client whose requests get the next scripted answer (a Response or an exception)."""
    monkeypatch.setattr(httpclientutil.time, "sleep", lambda seconds: None)
    httpclientutil.REQUEST_COUNTER.reset()
    client = HTTPClient("consul", URL, headers={"X-Consul-Token": "secret"}, attempts=3)
    client.script, client.sent = [], []

    def request(method, url, **kwargs):
        client.sent.append((method, url, kwargs))
        answer = client.script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(client.session, "request", request)
    return client


def test_json_replies_are_decoded_and_empty_ones_are_none(scripted):
    scripted.script = [reply(200, {"web": {"ID": "web"}}), reply(200, b"")]
    assert scripted.get("/v1/agent/services") == {"web": {"ID": "web"}}
    assert scripted.put("/v1/agent/service/register", json={"Name": "web"}) is None
    assert scripted.sent[1][2]["json"] == {"Name": "web"}
    assert scripted.session.headers["X-Consul-Token"] == "secret"


@pytest.mark.parametrize("first", [reply(503, b"busy"), reply(429, b"slow down"),
                                   requests.ConnectionError("refused"), requests.Timeout()])
def test_idempotent_requests_are_retried(scripted, first):
    scripted.script = [first, reply(200, {"ok": True})]
    assert scripted.get("/v1/agent/services") == {"ok": True}
    assert len(scripted.sent) == 2
    assert httpclientutil.REQUEST_COUNTER.snapshot() == {("consul", "GET"): 2}


def test_post_is_not_retried_unless_marked_idempotent(scripted):
    scripted.script = [reply(502, {"message": "bad gateway"})]
    with pytest.raises(HTTPRequestError):
        scripted.post("/v2/backends", json={})
    scripted.script = [reply(502, {"message": "bad gateway"}), reply(200, {"Id": "b1"})]
    assert scripted.post("/v2/backends", json={}, idempotent=True) == {"Id": "b1"}
    assert len(scripted.sent) == 3


def test_backoff_doubles_between_attempts(monkeypatch, scripted):
    pauses = []
    monkeypatch.setattr(httpclientutil.time, "sleep", pauses.append)
    scripted.script = [reply(500, b"a"), reply(500, b"b"), reply(500, b"c")]
    with pytest.raises(HTTPRequestError):
        scripted.get("/x")
    assert pauses == [0.1, 0.2]


@pytest.mark.parametrize(
    "response, error_type, message",
    [
        (reply(500, b"Missing service name", "text/plain"), HTTPRequestError,
         "consul: PUT http://registry.test:8500/x HTTP 500: Missing service name"),
        (reply(404, b"", "text/plain"), NotFoundError,
         "consul: PUT http://registry.test:8500/x HTTP 404"),
        (reply(400, {"code": 2, "message": "schema violation (host: required field missing)",
                     "fields": {"host": "required field missing"}}), HTTPRequestError,
         "HTTP 400: schema violation (host: required field missing) "
         '(fields: {"host": "required field missing"})'),
        (reply(500, {"message": "can not delete backend 'b1', it is in use"}), HTTPRequestError,
         "HTTP 500: can not delete backend 'b1', it is in use"),
        (requests.ConnectionError("Connection refused"), UnreachableError,
         "consul: PUT http://registry.test:8500/x failed: Connection refused"),
    ],
)
def test_errors_name_system_method_url_status_and_the_servers_message(
    scripted, response, error_type, message
):
    scripted.script = [response] * 3
    with pytest.raises(error_type) as err:
        scripted.put("/x")
    assert message in str(err.value)
    assert err.type is error_type


def test_request_counter_counts_per_system():
    counter = httpclientutil.RequestCounter()
    for system, method in [("kong", "GET"), ("kong", "PUT"), ("consul", "GET")]:
        counter.add(system, method)
    assert counter.by_system() == {"kong": 2, "consul": 1}
