"""The vulcand simulator against reference §3: API replies, etcd layout, and the proxy."""

import json
import socket
import time

import pytest
import requests

from simulators.etcd import free_port
from simulators.vulcand import VulcandSimulator
from simulators.webapp import WebApps

BACKEND = {"Backend": {"Id": "b1", "Type": "http"}}
FRONTEND = {"Frontend": {"Id": "f1", "Type": "http", "BackendId": "b1", "Route": 'Host("web.service.consul") && PathRegexp("/.*")'}}
JSON_UTF8 = "application/json; charset=utf-8"


@pytest.fixture
def api(vulcand_clean):
    session = requests.Session()

    def call(method, path, body=None):
        return session.request(method, f"{vulcand_clean.url}{path}", json=body, timeout=10)

    return call


@pytest.fixture(scope="module")
def webapps():
    with WebApps() as apps:
        yield apps


def server(server_id, port, ttl=None):
    body = {"Server": {"Id": server_id, "URL": f"http://127.0.0.1:{port}"}}
    return {**body, "TTL": ttl} if ttl else body


def listener(listener_id, port):
    return {"Listener": {"Id": listener_id, "Protocol": "http", "Address": {"Network": "tcp", "Address": f"0.0.0.0:{port}"}}}


@pytest.mark.parametrize(
    "setup, method, path, body, status, reply",
    [
        ([], "GET", "/v2/status", None, 200, {"Status": "ok"}),
        ([], "GET", "/v1/status", None, 200, {"Status": "ok"}),
        ([], "GET", "/v2/nothing", None, 404, {"message": "Object not found"}),
        ([], "PUT", "/v2/backends", BACKEND, 404, {"message": "Object not found"}),
        ([], "GET", "/v2/backends/b1", None, 404, {"message": "Key not found"}),
        ([], "POST", "/v2/backends", {"Backend": {"Id": "", "Type": "http"}}, 400, {"message": "backend id can not be empty"}),
        ([], "POST", "/v2/backends", {"Id": "b1"}, 500, {"message": "Missing mandatory parameter: Backend"}),
        ([], "POST", "/v2/backends", {"Backend": {"Id": "b1", "Type": "tcp"}}, 500, {"message": "Unsupported backend type tcp"}),
        ([], "POST", "/v2/backends", {"Backend": {"Id": "b1"}}, 500, {"message": "Unsupported backend type "}),
        ([], "POST", "/v2/backends/b1/servers", server("s1", 80), 404, {"message": "Key not found"}),
        ([BACKEND], "POST", "/v2/backends/b1/servers", {"Server": {"Id": "s1", "URL": "not a url"}}, 500,
         {"message": "endpoint url 'not a url' is not valid"}),
        ([BACKEND], "POST", "/v2/backends/b1/servers", {"Server": {"Id": "", "URL": "http://127.0.0.1:1"}}, 400,
         {"message": "backend id and server id can not be empty"}),
        ([BACKEND], "POST", "/v2/backends/b1/servers", server("s1", 1, ttl="soon"), 500, {"message": 'time: invalid duration "soon"'}),
        ([], "POST", "/v2/frontends", FRONTEND, 404, {"message": "Key not found"}),
        ([BACKEND], "POST", "/v2/frontends", {"Frontend": {**FRONTEND["Frontend"], "Route": 'Host("x") &&'}}, 500,
         {"message": 'route should be a valid route expression: Host("x") &&'}),
        ([BACKEND], "POST", "/v2/frontends", {"Frontend": {**FRONTEND["Frontend"], "Id": ""}}, 500,
         {"message": "supply valid  route, id, and backendId"}),
        ([BACKEND, FRONTEND], "DELETE", "/v2/backends/b1", None, 500, {"message": (
            "can not delete backend 'b1', it is in use by [{f1 Host(\"web.service.consul\") && PathRegexp(\"/.*\") http b1 <nil> "
            "{{%!s(int64=0) %!s(int64=0)}   %!s(bool=false) %!s(bool=false) %!s(bool=false) %!s(int64=0)}}]")}),
        ([], "POST", "/v2/hosts", {"Host": {"Name": ""}}, 500, {"message": "Hostname can not be empty"}),
        ([], "POST", "/v2/listeners", {"Listener": {"Id": "l1", "Protocol": "ftp", "Address": {"Network": "tcp", "Address": "0.0.0.0:1"}}},
         500, {"message": "unsupported protocol 'ftp', supported protocols are http and https"}),
        ([], "DELETE", "/v2/backends/b1/servers/s9", None, 200, {"message": "Server deleted"}),
        ([], "GET", "/v2/backends/none/servers", None, 200, {"Servers": []}),
        ([], "GET", "/v2/top/frontends", None, 200, {"Frontends": []}),
        ([BACKEND], "POST", "/v2/backends", BACKEND, 200,
         {"Id": "b1", "Type": "http", "Settings": {"Timeouts": {"Read": "", "Dial": "", "TLSHandshake": ""},
                                                  "KeepAlive": {"Period": "", "MaxIdleConnsPerHost": 0}}}),
        ([BACKEND], "GET", "/v2/backends", None, 200,
         {"Backends": [{"Id": "b1", "Type": "http", "Settings": {"Timeouts": {"Read": "", "Dial": "", "TLSHandshake": ""},
                                                                 "KeepAlive": {"Period": "", "MaxIdleConnsPerHost": 0}}}]}),
        ([BACKEND], "POST", "/v2/backends/b1/servers", server("s1", 8080), 200, {"Id": "s1", "URL": "http://127.0.0.1:8080"}),
        ([BACKEND, FRONTEND], "DELETE", "/v2/frontends/f1", None, 200, {"message": "Frontend deleted"}),
        ([{"Host": {"Name": "web.service.consul"}}], "DELETE", "/v2/hosts/web.service.consul", None, 200,
         {"message": "Host 'web.service.consul' deleted"}),
        ([], "POST", "/v2/hosts", {"Host": {"Name": "web.service.consul"}}, 200,
         {"Name": "web.service.consul", "Settings": {"Default": False, "KeyPair": None, "AutoCert": None, "OCSP": {
             "Enabled": False, "Period": "", "Responders": None, "SkipSignatureCheck": False}}}),
    ],
)
def test_api_replies(api, setup, method, path, body, status, reply):
    for step in setup:
        collection = {"Backend": "backends", "Frontend": "frontends", "Host": "hosts"}[next(iter(step))]
        assert api("POST", f"/v2/{collection}", step).status_code == 200
    response = api(method, path, body)
    assert (response.status_code, response.json()) == (status, reply)
    assert response.headers["Content-Type"] == JSON_UTF8


def test_a_form_encoded_body_is_consumed_before_it_is_read_as_json(vulcand_clean):
    reply = requests.post(f"{vulcand_clean.url}/v2/backends", data=json.dumps(BACKEND),
                          headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
    assert (reply.status_code, reply.json()) == (500, {"message": "unexpected end of JSON input"})


def test_frontend_reply_fills_default_settings(api):
    api("POST", "/v2/backends", BACKEND)
    reply = api("POST", "/v2/frontends", FRONTEND).json()
    assert reply["Settings"] == {
        "Limits": {"MaxMemBodyBytes": 0, "MaxBodyBytes": 0}, "FailoverPredicate": "", "Hostname": "",
        "TrustForwardHeader": False, "PassHostHeader": False, "Stream": False, "StreamFlushIntervalNanoSecs": 0,
    }
    assert api("GET", "/v2/frontends").json()["Frontends"] == [reply]


def test_objects_are_stored_in_the_etcd_v3_layout(api, etcd, vulcand_sim):
    api("POST", "/v2/backends", BACKEND)
    api("POST", "/v2/backends/b1/servers", server("s1", 8080))
    api("POST", "/v2/frontends", FRONTEND)
    api("POST", "/v2/listeners", listener("l1", free_port()))
    _, stored = etcd.client.get_prefix("/vulcand/")
    assert sorted(stored) == ["/vulcand/backends/b1/backend", "/vulcand/backends/b1/servers/s1",
                              "/vulcand/frontends/f1/frontend", "/vulcand/listeners/l1"]
    assert json.loads(stored["/vulcand/backends/b1/servers/s1"]) == {"Id": "s1", "URL": "http://127.0.0.1:8080"}
    assert json.loads(stored["/vulcand/backends/b1/backend"])["Id"] == "b1"
    assert json.loads(stored["/vulcand/listeners/l1"])["ProxyProtocol"] == ""
    assert json.loads(stored["/vulcand/frontends/f1/frontend"])["BackendId"] == "b1"


def test_deleting_a_backend_removes_its_servers_and_those_of_backends_sharing_the_prefix(api, etcd, vulcand_sim):
    for backend_id in ("b1", "b10"):
        api("POST", "/v2/backends", {"Backend": {"Id": backend_id, "Type": "http"}})
        api("POST", f"/v2/backends/{backend_id}/servers", server("s1", 8080))
    assert api("DELETE", "/v2/backends/b1").json() == {"message": "Backend deleted"}
    assert etcd.client.get_prefix("/vulcand/backends/")[1] == {}


def proxy_ready(vulcand, port):
    """Wait for the listener on ``port``: vulcand applies each change when its etcd watch
    delivers it, milliseconds after the API replied (the simulator before it replies); a real
    one gets a moment more for the frontend and servers written before the listener."""
    assert wait_until(lambda: accepts(port)), f"nothing listens on {port}"
    if vulcand.sim is None:
        time.sleep(0.2)


def accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_round_robin_through_a_listener(api, vulcand_clean, webapps):
    ports = [webapps.add(f"web-{n}") for n in range(3)]
    api("POST", "/v2/backends", BACKEND)
    for n, port in enumerate(ports):
        api("POST", "/v2/backends/b1/servers", server(f"s{n}", port))
    api("POST", "/v2/frontends", FRONTEND)
    proxy_port = free_port()
    api("POST", "/v2/listeners", listener("l1", proxy_port))
    proxy_ready(vulcand_clean, proxy_port)
    answers = [
        requests.get(f"http://127.0.0.1:{proxy_port}/any", headers={"Host": "web.service.consul"}, timeout=5).json()["instance"]
        for _ in range(6)
    ]
    assert answers == ["web-0", "web-1", "web-2"] * 2
    for port in ports:
        webapps.remove(port)


@pytest.mark.parametrize(
    "servers, host, status",
    [
        ("none", "web.service.consul", 500),
        ("dead", "web.service.consul", 502),
        ("remote", "web.service.consul", 502),
        ("live", "other.service.consul", 404),
        ("live", "web.service.consul", 200),
    ],
)
def test_proxy_statuses(api, vulcand_clean, webapps, servers, host, status):
    live_port = webapps.add("web")
    urls = {"none": [], "dead": [f"http://127.0.0.1:{free_port()}"], "remote": ["http://192.0.2.1:80"],
            "live": [f"http://127.0.0.1:{live_port}"]}[servers]
    api("POST", "/v2/backends", BACKEND)
    for n, url in enumerate(urls):
        assert api("POST", "/v2/backends/b1/servers", {"Server": {"Id": f"s{n}", "URL": url}}).status_code == 200
    api("POST", "/v2/frontends", FRONTEND)
    proxy_port = free_port()
    api("POST", "/v2/listeners", listener("l1", proxy_port))
    proxy_ready(vulcand_clean, proxy_port)
    response = requests.get(f"http://127.0.0.1:{proxy_port}/", headers={"Host": host}, timeout=5)
    assert response.status_code == status
    webapps.remove(live_port)


@pytest.mark.parametrize(
    "route, method, path, matches",
    [
        ('Path("/")', "GET", "/", True),
        ('Path("/")', "GET", "/x", False),
        ('Path("/users/<id>")', "GET", "/users/7", True),
        ('PathRegexp("/v1/.*")', "GET", "/api/v1/x", True),
        ('Method("POST") && Path("/")', "GET", "/", False),
        ('Method("POST") && Path("/")', "POST", "/", True),
        ('Host("<sub>.service.consul") && Path("/")', "GET", "/", True),
    ],
)
def test_route_expressions(api, vulcand_clean, webapps, route, method, path, matches):
    port = webapps.add("web")
    api("POST", "/v2/backends", BACKEND)
    api("POST", "/v2/backends/b1/servers", server("s1", port))
    assert api("POST", "/v2/frontends", {"Frontend": {**FRONTEND["Frontend"], "Route": route}}).status_code == 200
    proxy_port = free_port()
    api("POST", "/v2/listeners", listener("l1", proxy_port))
    proxy_ready(vulcand_clean, proxy_port)
    response = requests.request(method, f"http://127.0.0.1:{proxy_port}{path}", headers={"Host": "web.service.consul"}, timeout=5)
    assert response.status_code == (200 if matches else 404)
    if not matches:
        assert response.json() == {"error": "not found"}
    webapps.remove(port)


def test_configuration_written_to_etcd_directly_is_picked_up(etcd, vulcand_sim, webapps):
    port = webapps.add("direct")
    proxy_port = free_port()
    etcd.client.put("/vulcand/backends/b1/backend", json.dumps({"Type": "http"}))
    etcd.client.put("/vulcand/backends/b1/servers/s1", json.dumps({"URL": f"http://127.0.0.1:{port}"}))
    etcd.client.put("/vulcand/frontends/f1/frontend", json.dumps({"Type": "http", "BackendId": "b1", "Route": 'Path("/")'}))
    etcd.client.put("/vulcand/listeners/l1", json.dumps({"Protocol": "http", "Address": {"Network": "tcp", "Address": f"0.0.0.0:{proxy_port}"}}))
    listing = requests.get(f"{vulcand_sim.url}/v2/backends/b1/servers", timeout=5).json()
    assert listing == {"Servers": [{"Id": "s1", "URL": f"http://127.0.0.1:{port}"}]}
    assert wait_until(lambda: vulcand_sim.listener_ports() == {"l1": proxy_port})
    assert requests.get(f"http://127.0.0.1:{proxy_port}/", timeout=5).json()["instance"] == "direct"
    webapps.remove(port)


def test_opted_in_to_networks_it_listens_on_the_stored_address(etcd, vulcand_clean, webapps):
    port = webapps.add("web-0")
    with VulcandSimulator(etcd_url=etcd.url, upstream_networks=["10.0.0.0/16"]) as opted_in:
        session = requests.Session()
        session.post(f"{opted_in.url}/v2/backends", json=BACKEND, timeout=10)
        session.post(f"{opted_in.url}/v2/backends/b1/servers", json=server("s1", port), timeout=10)
        session.post(f"{opted_in.url}/v2/frontends", json=FRONTEND, timeout=10)
        proxy_port = free_port()
        stored = listener("l1", proxy_port)
        stored["Listener"]["Address"]["Address"] = f"127.0.0.2:{proxy_port}"
        session.post(f"{opted_in.url}/v2/listeners", json=stored, timeout=10)
        reply = requests.get(f"http://127.0.0.2:{proxy_port}/", headers={"Host": "web.service.consul"}, timeout=5)
        assert reply.json()["instance"] == "web-0"
        assert not accepts(proxy_port)  # not on 127.0.0.1: only where the listener says
        vulcand_clean.reset()
    webapps.remove(port)


def test_deleted_listener_closes_its_socket(api, vulcand_sim):
    proxy_port = free_port()
    api("POST", "/v2/listeners", listener("l1", proxy_port))
    assert vulcand_sim.listener_ports() == {"l1": proxy_port}
    assert api("DELETE", "/v2/listeners/l1").json() == {"message": "Listener deleted"}
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy_port), timeout=2).close()


def test_server_with_ttl_expires(api, vulcand_sim, etcd):
    api("POST", "/v2/backends", BACKEND)
    assert api("POST", "/v2/backends/b1/servers", server("s1", 8080, ttl="1s")).status_code == 200
    key = "/vulcand/backends/b1/servers/s1"
    watch = etcd.client.watch_prefix(key, etcd.client.get_prefix(key)[0] + 1)
    try:
        _, keys = next(iter(watch))  # etcd deletes the key when the lease runs out
        assert keys == [key]
    finally:
        watch.close()
    assert api("GET", "/v2/backends/b1/servers").json() == {"Servers": []}


def wait_until(condition, attempts=200, pause=0.02):
    """Poll ``condition`` while an asynchronous change (the etcd watch) takes effect."""
    for _ in range(attempts):
        if condition():
            return True
        time.sleep(pause)
    return condition()
