"""The shared simulator server: dispatch, bodies, faults, counters, lifecycle and the CLI."""

import ipaddress
import json
import pathlib
import socket
import subprocess
import sys

import pytest
import requests

from simulators import base
from simulators.base import (
    Abort,
    BodyError,
    Simulator,
    json_response,
    parse_duration,
    reachable_address,
    route,
    text_response,
)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


class Toy(Simulator):
    name = "toy"

    @route("PUT", r"/items/special")
    def special(self, request):
        return text_response("special")

    @route("GET", r"/items/(?P<item>[^/]+)")
    @route("DELETE", r"/items/(?P<item>[^/]+)")
    def item(self, request, item):
        return json_response({"item": item, "method": request.method, "query": request.query})

    @route("POST", r"/echo")
    def echo(self, request):
        try:
            body = request.json() if request.content_type == "application/json" else request.form()
        except BodyError as err:
            raise Abort(text_response(f"bad body: {err}", 400)) from err
        return json_response(body)

    @route("GET", r"/crash")
    def crash(self, request):
        raise RuntimeError("boom")


@pytest.fixture(scope="module")
def toy():
    with Toy() as sim:
        yield sim


@pytest.fixture
def call(toy):
    toy.reset()
    session = requests.Session()

    def request(method, path, **kwargs):
        return session.request(method, f"{toy.url}{path}", timeout=10, **kwargs)

    return request


@pytest.mark.parametrize(
    "method, path, status, body",
    [
        ("GET", "/items/a%2Fb?x&y=1", 200, {"item": "a/b", "method": "GET", "query": {"x": [""], "y": ["1"]}}),
        ("DELETE", "/items/z", 200, {"item": "z", "method": "DELETE", "query": {}}),
        ("POST", "/items/z", 405, {"message": "Method not allowed"}),
        ("GET", "/nowhere", 404, {"message": "Not found"}),
        # The first pattern matching a path owns it, as in the servers' routers.
        ("GET", "/items/special", 405, {"message": "Method not allowed"}),
        ("GET", "/crash", 500, {"message": "simulator internal error"}),
    ],
)
def test_dispatch(call, method, path, status, body):
    reply = call(method, path)
    assert (reply.status_code, reply.json()) == (status, body)


def test_replies_carry_length_and_type(call):
    reply = call("PUT", "/items/special")
    assert (reply.text, reply.headers["Content-Type"], reply.headers["Content-Length"]) == (
        "special", "text/plain; charset=utf-8", "7")


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"json": {"a": [1, 2]}}, {"a": [1, 2]}),
        ({"data": {"a": ["1", "2"], "b": "x"}}, {"a": ["1", "2"], "b": ["x"]}),
        ({"files": {"a": (None, "1"), "b": (None, "x")}}, {"a": ["1"], "b": ["x"]}),
    ],
)
def test_body_decoding(call, kwargs, expected):
    assert call("POST", "/echo", **kwargs).json() == expected


def test_bad_json_body(call):
    reply = call("POST", "/echo", data=b"{nope", headers={"Content-Type": "application/json"})
    assert reply.status_code == 400
    assert reply.text.startswith("bad body: ")


def test_request_counts_by_method_and_handler(toy, call):
    before = toy.request_counts.copy()
    call("GET", "/items/a")
    call("GET", "/items/b")
    call("GET", "/nowhere")
    assert toy.request_counts[("GET", "item")] - before[("GET", "item")] == 2
    assert toy.request_counts[("GET", None)] - before[("GET", None)] == 1


def test_fail_fault_counts_down_and_matches_paths(toy, call):
    toy.faults.fail(2, status=503, path="^/items/")
    assert call("GET", "/nowhere").status_code == 404  # other paths are untouched
    assert [call("GET", "/items/a").status_code for _ in range(3)] == [503, 503, 200]


def test_fail_fault_until_cleared(toy, call):
    toy.faults.fail(None, status=502)
    assert [call("GET", "/items/a").status_code for _ in range(3)] == [502, 502, 502]
    toy.faults.clear()
    assert call("GET", "/items/a").status_code == 200


def test_drop_fault_closes_the_connection(toy, call):
    toy.faults.drop(1)
    with pytest.raises(requests.ConnectionError):
        call("GET", "/items/a")
    assert call("GET", "/items/a").status_code == 200


def test_delay_fault_still_answers(toy, call):
    toy.faults.delay(0.01, count=1)
    assert call("GET", "/items/a").status_code == 200
    assert toy.faults.take("/items/a") == (0.0, None)  # the one-shot rule was used up


def test_stop_closes_kept_alive_connections():
    session = requests.Session()
    with Toy() as sim:
        url = sim.url
        assert session.get(f"{url}/items/a", timeout=10).status_code == 200
    with pytest.raises(requests.ConnectionError):
        session.get(f"{url}/items/a", timeout=10)


def test_binds_loopback_on_a_free_port(toy):
    assert toy.url.startswith("http://127.0.0.1:") and toy.port > 0


LAB_NETWORK = ipaddress.ip_network("10.0.0.0/16")
# What the system resolver answers in these tests (no name is looked up for real).
RESOLVED = {"web.service.consul": ["198.51.100.7", "10.0.12.11"], "far.example": ["198.51.100.7"]}


@pytest.fixture
def resolver(monkeypatch):
    """The system resolver as the proxies' opt-in sees it; records the names looked up."""
    asked = []

    def getaddrinfo(host, port, *args):
        asked.append(host)
        if host not in RESOLVED:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0)) for address in RESOLVED[host]]

    monkeypatch.setattr(base.socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.mark.parametrize(
    "host, networks, address, looked_up",
    [
        ("localhost", [], "127.0.0.1", False),
        ("127.0.0.5", [], "127.0.0.5", False),
        ("10.0.12.11", [], None, False),
        ("web.service.consul", [], None, False),  # loopback only: no name is ever looked up
        ("10.0.12.11", [LAB_NETWORK], "10.0.12.11", False),
        ("10.1.0.1", [LAB_NETWORK], None, False),
        ("web.service.consul", [LAB_NETWORK], "10.0.12.11", True),  # the first address allowed
        ("far.example", [LAB_NETWORK], None, True),
        ("no.such.name", [LAB_NETWORK], None, True),
        (None, [LAB_NETWORK], None, False),
    ],
)
def test_reachable_address_is_loopback_unless_opted_in_to_networks(resolver, host, networks, address, looked_up):
    assert reachable_address(host, networks) == address
    assert resolver == ([host] if looked_up else [])


@pytest.mark.parametrize(
    "text, seconds",
    [("0", 0.0), ("10s", 10.0), ("1m30s", 90.0), ("250ms", 0.25), ("1.5h", 5400.0), ("-2s", -2.0)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "soon", "1m x", "s"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    "arguments, probes",
    [
        (["consul"], [("url", "/v1/status/leader", 200)]),
        (["kong", "--resolve", "*.service.consul=127.0.0.1"],
         [("admin_url", "/status", 200), ("proxy_url", "/", 404)]),
    ],
)
def test_standalone_entry_point(arguments, probes):
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators", *arguments],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        announced = json.loads(process.stdout.readline())
        assert announced["name"] == arguments[0]
        for key, path, status in probes:
            assert requests.get(f"{announced[key]}{path}", timeout=10).status_code == status
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
