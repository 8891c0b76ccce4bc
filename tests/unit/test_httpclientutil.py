"""httpclientutil against a loopback scripted_server that answers from a script: retries, timeouts,
error messages, proxies and counters."""

import json
import socket
import threading

import httpclientutil
import pytest
from httpclientutil import HTTPClient, HTTPRequestError, NotFoundError, UnreachableError

from simulators.etcd import free_port
from tests.fixtures.scripted import DROP, reply


@pytest.fixture
def client(scripted_server, monkeypatch):
    monkeypatch.setattr(httpclientutil.time, "sleep", lambda seconds: None)
    httpclientutil.REQUEST_COUNTER.reset()
    return HTTPClient("consul", scripted_server.url, headers={"X-Consul-Token": "secret"}, attempts=3,
                      timeout=(1, 0.5))


def test_json_replies_are_decoded_and_empty_ones_are_none(scripted_server, client):
    scripted_server.script = [reply(200, {"web": {"ID": "web"}}), reply(200, b""), reply(200, b"plain", "text/plain")]
    assert client.get("/v1/agent/services", params={"filter": "Service == web"}) == {"web": {"ID": "web"}}
    assert client.put("/v1/agent/service/register", json={"Name": "web"}) is None
    assert client.get("/v1/status/leader") == "plain"
    first, second = scripted_server.received[:2]
    assert first["path"] == "/v1/agent/services?filter=Service+%3D%3D+web"
    assert first["headers"]["X-Consul-Token"] == "secret"
    assert json.loads(second["body"]) == {"Name": "web"}
    assert second["headers"]["Content-Type"] == "application/json"


@pytest.mark.parametrize("first", [reply(503, b"busy"), reply(429, b"slow down"), DROP,
                                   reply(200, {"late": True}, delay=1.0)],
                         ids=["503", "429", "connection dropped", "read timeout"])
def test_idempotent_requests_are_retried(scripted_server, client, first):
    scripted_server.script = [first, reply(200, {"ok": True})]
    assert client.get("/v1/agent/services") == {"ok": True}
    assert len(scripted_server.received) == 2
    assert httpclientutil.REQUEST_COUNTER.snapshot() == {("consul", "GET"): 2}


def test_post_is_not_retried_unless_marked_idempotent(scripted_server, client):
    scripted_server.script = [reply(502, {"message": "bad gateway"})]
    with pytest.raises(HTTPRequestError):
        client.post("/v2/backends", json={})
    scripted_server.script = [reply(502, {"message": "bad gateway"}), reply(200, {"Id": "b1"})]
    assert client.post("/v2/backends", json={}, idempotent=True) == {"Id": "b1"}
    assert len(scripted_server.received) == 3


def test_a_connection_the_server_closed_while_idle_is_not_used(scripted_server, client):
    scripted_server.script = [reply(200, {"n": 1}, close=True), reply(200, {"n": 2})]
    assert client.post("/v2/backends", json={}) == {"n": 1}
    # POSTs are sent once: this one succeeds only if it goes on a new connection.
    assert client.post("/v2/backends", json={}) == {"n": 2}
    assert len(scripted_server.received) == 2


def test_backoff_doubles_between_attempts_and_honours_retry_after(scripted_server, client, monkeypatch):
    pauses = []
    monkeypatch.setattr(httpclientutil.time, "sleep", pauses.append)
    scripted_server.script = [reply(500, b"a"), reply(500, b"b"), reply(500, b"c")]
    with pytest.raises(HTTPRequestError):
        client.get("/x")
    assert pauses == [0.1, 0.2]
    scripted_server.script = [reply(429, b"later", headers={"Retry-After": "2"}), reply(200, b"")]
    client.get("/x")
    assert pauses[2:] == [2.0]


@pytest.mark.parametrize(
    "answer, error_type, message",
    [
        (reply(500, b"Missing service name", "text/plain"), HTTPRequestError,
         "consul: PUT {url}/x HTTP 500: Missing service name"),
        (reply(404, b"", "text/plain"), NotFoundError, "consul: PUT {url}/x HTTP 404"),
        (reply(400, {"code": 2, "message": "schema violation (host: required field missing)",
                     "fields": {"host": "required field missing"}}), HTTPRequestError,
         "HTTP 400: schema violation (host: required field missing) "
         '(fields: {"host": "required field missing"})'),
        (reply(500, {"message": "can not delete backend 'b1', it is in use"}), HTTPRequestError,
         "HTTP 500: can not delete backend 'b1', it is in use"),
        (reply(307, b"", headers={"Location": "/elsewhere"}), HTTPRequestError,
         "consul: PUT {url}/x HTTP 307"),
        (reply(200, b"", delay=1.0), UnreachableError, "consul: PUT {url}/x failed: timed out"),
    ],
)
def test_errors_name_system_method_url_status_and_the_servers_message(
    scripted_server, client, answer, error_type, message
):
    scripted_server.script = [answer] * 3
    with pytest.raises(error_type) as err:
        client.put("/x")
    assert message.replace("{url}", scripted_server.url) in str(err.value)
    assert err.type is error_type


def test_an_unreachable_server_is_named_with_the_reason():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(UnreachableError) as err:
        HTTPClient("kong", url, attempts=1).get("/services")
    assert str(err.value).startswith(f"kong: GET {url}/services failed: ")
    assert "refused" in str(err.value)
    assert "object at 0x" not in str(err.value)


def test_the_proxy_from_the_environment_is_used_unless_no_proxy_names_the_host(scripted_server, monkeypatch):
    """The scripted scripted_server stands in for the proxy: a proxied request carries the full URL."""
    monkeypatch.setenv("http_proxy", scripted_server.url)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    scripted_server.script = [reply(200, {"via": "proxy"})]
    assert HTTPClient("kong", "http://kong.service.consul:8001").get("/services") == {"via": "proxy"}
    assert scripted_server.received[0]["path"] == "http://kong.service.consul:8001/services"
    monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")
    with pytest.raises(UnreachableError, match="refused"):
        HTTPClient("kong", f"http://127.0.0.1:{free_port()}", attempts=1).get("/services")
    assert len(scripted_server.received) == 1


def test_request_counter_counts_per_system():
    counter = httpclientutil.RequestCounter()
    for system, method in [("kong", "GET"), ("kong", "PUT"), ("consul", "GET")]:
        counter.add(system, method)
    assert counter.by_system() == {"kong": 2, "consul": 1}


class RawServer:
    """Answers each connection's requests with canned bytes, one answer per request, and
    records how many connections it accepted."""

    def __init__(self, answers):
        self.answers, self.connections = list(answers), 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while self.answers:
            connection, _ = self.listener.accept()
            self.connections += 1
            with connection, connection.makefile("rb") as requests:
                while self.answers:
                    while requests.readline() not in (b"\r\n", b""):
                        pass  # the request line and headers; these requests have no body
                    answer = self.answers.pop(0)
                    connection.sendall(answer)
                    if b"Connection: close" in answer or b"Content-Length" not in answer \
                            and b"chunked" not in answer:
                        break


@pytest.mark.parametrize("answer, reused", [
    (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"7\r\n{\"n\": 1\r\n1;ext=1\r\n}\r\n0\r\nTrailer: x\r\n\r\n", True),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\n{\"n\": 1}", False),
    (b"HTTP/1.0 200 OK\r\n\r\n{\"n\": 1}", False),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{\"n\": 1}", True),
], ids=["chunked", "connection close", "until closed", "interim reply"])
def test_replies_are_read_however_they_are_framed(answer, reused):
    second = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{\"n\": 2}"
    server = RawServer([answer, second])
    client = HTTPClient("kong", server.url, attempts=1)
    assert client.get("/a") == {"n": 1}
    assert client.get("/b") == {"n": 2}
    assert server.connections == (1 if reused else 2)


def test_a_reply_cut_short_is_an_error_not_a_shorter_body():
    server = RawServer([b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\nConnection: close\r\n\r\n{}"])
    with pytest.raises(UnreachableError, match="IncompleteRead|bytes read"):
        HTTPClient("kong", server.url, attempts=1).get("/a")
