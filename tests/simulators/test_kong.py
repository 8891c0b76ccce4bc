"""The Kong simulator against reference §2: Admin API replies and the proxy's routing and auth."""

import base64
import socket

import pytest
import requests

from simulators import base
from simulators.base import Simulator, json_response, route
from simulators.kong import KongSimulator

JSON_UTF8 = "application/json; charset=utf-8"
MISSING_UUID = "00000000-0000-4000-8000-000000000000"


class Echo(Simulator):
    """A backend that answers every request with what it received."""

    name = "echo"

    def __init__(self, label):
        super().__init__()
        self.label = label

    @route("*", r"/.*")
    def echo(self, request):
        return json_response({
            "backend": self.label,
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "headers": dict(request.headers.items()),
            "body": request.body.decode(),
        })


@pytest.fixture(scope="module")
def backends():
    with Echo("one") as one, Echo("two") as two:
        yield one, two


@pytest.fixture
def admin(kong_clean):
    """call(method, path, body=None, **requests kwargs) against the Admin API (JSON bodies)."""
    session = requests.Session()

    def call(method, path, body=None, **kwargs):
        if body is not None:
            kwargs["json"] = body
        return session.request(method, f"{kong_clean.admin_url}{path}", timeout=10, **kwargs)

    return call


@pytest.fixture
def proxy(kong_clean):
    def call(path="/", host=None, method="GET", **kwargs):
        headers = kwargs.pop("headers", {})
        if host:
            headers["Host"] = host
        return requests.request(method, f"{kong_clean.proxy_url}{path}", headers=headers, timeout=10, **kwargs)

    return call


def created(reply, status=201):
    assert reply.status_code == status, reply.text
    assert reply.headers["Content-Type"] == JSON_UTF8
    return reply.json()


# -- entities and defaults --------------------------------------------------------------------------


def test_service_url_shorthand_and_defaults(admin):
    service = created(admin("POST", "/services", {"name": "web", "url": "https://example.test:8443/api"}))
    assert {k: service[k] for k in ("protocol", "host", "port", "path")} == {
        "protocol": "https", "host": "example.test", "port": 8443, "path": "/api"}
    assert {k: service[k] for k in ("retries", "connect_timeout", "read_timeout", "write_timeout", "enabled")} == {
        "retries": 5, "connect_timeout": 60000, "read_timeout": 60000, "write_timeout": 60000, "enabled": True}
    assert service["tags"] is None and service["tls_verify"] is None and "url" not in service
    assert isinstance(service["created_at"], int)
    plain = created(admin("POST", "/services", {"url": "http://other.test"}))
    assert (plain["port"], plain["path"], plain["name"]) == (80, None, None)


def test_route_defaults_and_nested_creation(admin):
    service = created(admin("POST", "/services", {"name": "web", "host": "web.service.consul"}))
    route_entity = created(admin("POST", "/services/web/routes", {"name": "web", "hosts": ["web.test"]}))
    assert route_entity["service"] == {"id": service["id"]}
    assert {k: route_entity[k] for k in ("protocols", "strip_path", "preserve_host", "regex_priority",
                                         "path_handling", "https_redirect_status_code", "paths", "methods")} == {
        "protocols": ["http", "https"], "strip_path": True, "preserve_host": False, "regex_priority": 0,
        "path_handling": "v0", "https_redirect_status_code": 426, "paths": None, "methods": None}
    assert admin("GET", f"/routes/{route_entity['id']}").json() == route_entity
    assert admin("GET", "/services/web/routes/web").json() == route_entity
    assert [r["id"] for r in admin("GET", "/services/web/routes").json()["data"]] == [route_entity["id"]]


def test_form_encoded_bodies(admin):
    created(admin("POST", "/services", data={"name": "web", "host": "web.test", "port": "8080"}))
    route_entity = created(admin("POST", "/services/web/routes", data={
        "hosts[]": ["a.test", "b.test"], "paths": "/v1", "strip_path": "false"}))
    assert (route_entity["hosts"], route_entity["paths"], route_entity["strip_path"]) == (
        ["a.test", "b.test"], ["/v1"], False)
    plugin = created(admin("POST", "/services/web/plugins", data={
        "name": "key-auth", "config.key_names[1]": "x-api-key", "config.hide_credentials": "true"}))
    assert plugin["config"]["key_names"] == ["x-api-key"]
    assert plugin["config"]["hide_credentials"] is True
    assert admin("GET", "/services/web").json()["port"] == 8080


@pytest.mark.parametrize(
    "plugin, expected_config",
    [
        ({"name": "key-auth"}, {"key_names": ["apikey"], "hide_credentials": False, "anonymous": None,
                                "key_in_header": True, "key_in_query": True, "key_in_body": False,
                                "run_on_preflight": True, "realm": None}),
        ({"name": "basic-auth"}, {"hide_credentials": False, "anonymous": None, "realm": "service"}),
    ],
)
def test_plugin_config_defaults(admin, plugin, expected_config):
    created(admin("POST", "/services", {"name": "web", "host": "web.test"}))
    entity = created(admin("POST", "/services/web/plugins", plugin))
    assert entity["config"] == expected_config
    assert (entity["enabled"], entity["route"], entity["consumer"]) == (True, None, None)


# -- errors -----------------------------------------------------------------------------------------


def schema_error(fields, message):
    return {"code": 2, "name": "schema violation", "message": message, "fields": fields}


@pytest.mark.parametrize(
    "path, body, status, reply",
    [
        ("/services", {}, 400, schema_error({"host": "required field missing"},
                                            "schema violation (host: required field missing)")),
        ("/services", {"host": "h", "port": 70000, "protocol": "ftp"}, 400, schema_error(
            {"port": "value should be between 0 and 65535",
             "protocol": "expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp, ws, wss"},
            "2 schema violations (port: value should be between 0 and 65535; protocol: expected one of: "
            "grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp, ws, wss)")),
        ("/services", {"host": "h", "colour": "red"}, 400, schema_error(
            {"colour": "unknown field"}, "schema violation (colour: unknown field)")),
        ("/services", {"host": "h", "port": "80"}, 400, schema_error(
            {"port": "expected an integer"}, "schema violation (port: expected an integer)")),
        ("/services", {"host": "h", "path": "api"}, 400, schema_error(
            {"path": "should start with: /"}, "schema violation (path: should start with: /)")),
        ("/services", {"host": "h", "protocol": "tcp", "path": "/x"}, 400, schema_error(
            {"path": "value must be null"}, "schema violation (path: value must be null)")),
        ("/routes", {"name": "r"}, 400, schema_error(
            {"@entity": ["must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'https'"]},
            "schema violation (must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' "
            "when 'protocols' is 'https')")),
        ("/routes", {"protocols": ["http"]}, 400, schema_error(
            {"@entity": ["must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http'"]},
            "schema violation (must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http')")),
        ("/routes", {"paths": ["v1"]}, 400, schema_error(
            {"paths": "should start with: / (fixed path) or ~/ (regex path)"},
            "schema violation (paths: should start with: / (fixed path) or ~/ (regex path))")),
        ("/routes", {"hosts": ["a"], "service": {"id": MISSING_UUID}}, 400, {
            "code": 4, "name": "foreign key violation",
            "message": f"the foreign key '{{id=\"{MISSING_UUID}\"}}' does not reference an existing 'services' entity.",
            "fields": {"service": {"id": MISSING_UUID}}}),
        ("/consumers", {}, 400, schema_error(
            {"@entity": ["at least one of these fields must be non-empty: 'custom_id', 'username'"]},
            "schema violation (at least one of these fields must be non-empty: 'custom_id', 'username')")),
        ("/plugins", {"name": "made-up"}, 400, schema_error(
            {"name": "plugin 'made-up' not enabled; add it to the 'plugins' configuration property"},
            "schema violation (name: plugin 'made-up' not enabled; add it to the 'plugins' configuration property)")),
        ("/plugins", {"name": "key-auth", "config": {"key_nams": ["k"]}}, 400, schema_error(
            {"config": {"key_nams": "unknown field"}}, "schema violation (config.key_nams: unknown field)")),
        ("/plugins", {"name": "rate-limiting"}, 400, schema_error(
            {"config": {"@entity": ["at least one of these fields must be non-empty: 'second', 'minute', "
                                    "'hour', 'day', 'month', 'year'"]}},
            "schema violation (at least one of these fields must be non-empty: 'second', 'minute', 'hour', "
            "'day', 'month', 'year')")),
        ("/services", {"host": "h", "tags": ["a,b"]}, 400, schema_error(
            {"tags": "invalid tag 'a,b': expected printable ascii (except `,` and `/`) or valid utf-8 sequences"},
            "schema violation (tags: invalid tag 'a,b': expected printable ascii (except `,` and `/`) or valid "
            "utf-8 sequences)")),
    ],
)
def test_validation_errors(admin, path, body, status, reply):
    answer = admin("POST", path, body)
    assert (answer.status_code, answer.json()) == (status, reply)


def test_unique_violations_are_409(admin):
    created(admin("POST", "/services", {"name": "web", "host": "h"}))
    duplicate = admin("POST", "/services", {"name": "web", "host": "other"})
    assert (duplicate.status_code, duplicate.json()) == (409, {
        "code": 5, "name": "unique constraint violation",
        "message": "UNIQUE violation detected on '{name=\"web\"}'", "fields": {"name": "web"}})
    created(admin("POST", "/services/web/plugins", {"name": "key-auth"}))
    assert admin("POST", "/services/web/plugins", {"name": "key-auth"}).status_code == 409


@pytest.mark.parametrize(
    "method, path, status, reply",
    [
        ("GET", "/services/nope", 404, {"message": "Not found"}),
        ("GET", f"/services/{MISSING_UUID}", 404, {"message": "Not found"}),
        ("GET", "/services/nope/routes", 404, {"message": "Not found"}),
        ("GET", "/nothing", 404, {"message": "Not found"}),
        ("GET", "/services/x/consumers", 404, {"message": "Not found"}),
        ("DELETE", "/services/nope", 204, None),
        ("PATCH", "/services/nope", 404, {"code": 6, "name": "not found",
                                           "message": "could not find the entity with '{name=\"nope\"}'",
                                           "fields": {"name": "nope"}}),
        ("PATCH", f"/services/{MISSING_UUID}", 404, {
            "code": 6, "name": "not found",
            "message": f"could not find the entity with primary key '{{id=\"{MISSING_UUID}\"}}'",
            "fields": {"id": MISSING_UUID}}),
        ("GET", "/services?size=0", 400, {"code": 9, "name": "invalid size",
                                          "message": "size must be an integer between 1 and 1000"}),
        ("GET", "/services?size=x", 400, {"code": 9, "name": "invalid size", "message": "size must be a number"}),
        ("GET", "/services?offset=garbage", 400, {"code": 7, "name": "invalid offset",
                                                  "message": "'garbage' is not a valid offset: bad base64 encoding"}),
        ("GET", "/services?tags=a,b/c", 400, {"code": 11, "name": "invalid options",
                                              "message": "invalid option (tags: invalid filter syntax)",
                                              "options": {"tags": "invalid filter syntax"}}),
        ("GET", "/services?tags=a,b,c,d,e,f", 400, {"code": 11, "name": "invalid options",
                                                    "message": "invalid option (tags: cannot query more than 5 tags)",
                                                    "options": {"tags": "cannot query more than 5 tags"}}),
    ],
)
def test_lookup_and_query_errors(admin, method, path, status, reply):
    body = {"host": "h"} if method == "PATCH" else None
    answer = admin(method, path, body)
    assert answer.status_code == status
    assert (answer.json() if answer.content else None) == reply


def test_unsupported_content_type_is_415(admin):
    reply = admin("POST", "/services", data=b"host=h", headers={"Content-Type": "text/plain"})
    assert (reply.status_code, reply.json()) == (415, {"message": "Unsupported Media Type"})


def test_wrong_method_is_405(admin):
    reply = admin("POST", "/status")
    assert (reply.status_code, reply.json()) == (405, {"message": "Method not allowed"})


# -- PUT, PATCH, DELETE -----------------------------------------------------------------------------


def test_put_creates_then_replaces_wholesale(admin):
    first = created(admin("PUT", "/services/web", {"host": "a.test", "port": 8080, "retries": 1}), 200)
    assert first["name"] == "web"
    again = created(admin("PUT", "/services/web", {"host": "a.test", "port": 8080, "retries": 1}), 200)
    assert again == first
    replaced = created(admin("PUT", "/services/web", {"name": "ignored", "host": "b.test"}), 200)
    assert (replaced["id"], replaced["created_at"]) == (first["id"], first["created_at"])
    assert (replaced["name"], replaced["host"], replaced["port"], replaced["retries"]) == ("web", "b.test", 80, 5)
    assert len(admin("GET", "/services").json()["data"]) == 1


def test_put_by_id_and_nested_put(admin):
    service = created(admin("PUT", f"/services/{MISSING_UUID}", {"host": "a.test"}), 200)
    assert service["id"] == MISSING_UUID
    route_entity = created(admin("PUT", f"/services/{MISSING_UUID}/routes/r1", {"paths": ["/"]}), 200)
    assert (route_entity["name"], route_entity["service"]) == ("r1", {"id": MISSING_UUID})


def test_patch_changes_only_given_fields(admin):
    created(admin("POST", "/services", {"name": "web", "host": "a.test", "port": 8080}))
    patched = created(admin("PATCH", "/services/web", {"port": 9090}), 200)
    assert (patched["host"], patched["port"]) == ("a.test", 9090)
    created(admin("POST", "/services/web/plugins", {"name": "key-auth", "instance_name": "auth",
                                                     "config": {"key_names": ["k"]}}))
    plugin = created(admin("PATCH", "/plugins/auth", {"config": {"hide_credentials": True}}), 200)
    assert (plugin["config"]["key_names"], plugin["config"]["hide_credentials"]) == (["k"], True)


def test_delete_service_referenced_by_routes_is_refused(admin):
    created(admin("POST", "/services", {"name": "web", "host": "h"}))
    created(admin("POST", "/services/web/routes", {"name": "r", "hosts": ["a"]}))
    refused = admin("DELETE", "/services/web")
    assert (refused.status_code, refused.json()) == (400, {
        "code": 4, "name": "foreign key violation",
        "message": "an existing 'routes' entity references this 'services' entity",
        "fields": {"@referenced_by": "routes"}})
    assert admin("DELETE", "/routes/r").status_code == 204
    assert admin("DELETE", "/services/web").status_code == 204
    assert admin("GET", "/services/web").status_code == 404


def test_deleting_a_consumer_removes_its_credentials(admin):
    created(admin("POST", "/consumers", {"username": "alice"}))
    credential = created(admin("POST", "/consumers/alice/key-auth", {"key": "secret"}))
    assert admin("GET", "/key-auths").json()["data"] == [credential]
    assert admin("DELETE", "/consumers/alice").status_code == 204
    assert admin("GET", "/key-auths").json()["data"] == []


def test_credentials(admin):
    consumer = created(admin("POST", "/consumers", {"username": "alice", "custom_id": "a-1"}))
    generated = created(admin("POST", "/consumers/alice/key-auth", {}))
    assert generated["key"] and generated["consumer"] == {"id": consumer["id"]}
    basic = created(admin("POST", "/consumers/alice/basic-auth", {"username": "alice", "password": "pw"}))
    assert basic["password"] != "pw"  # Kong stores and shows a hash
    assert admin("POST", "/consumers/alice/basic-auth", {"username": "alice", "password": "x"}).status_code == 409
    assert admin("GET", "/consumers/alice/basic-auth/alice").json() == basic


def test_upstreams_and_targets(admin):
    upstream = created(admin("POST", "/upstreams", {"name": "web.upstream"}))
    assert (upstream["algorithm"], upstream["slots"]) == ("round-robin", 10000)
    target = created(admin("POST", "/upstreams/web.upstream/targets", {"target": "127.0.0.1"}))
    assert (target["target"], target["weight"], target["upstream"]) == ("127.0.0.1:8000", 100, {"id": upstream["id"]})
    assert admin("POST", "/upstreams/web.upstream/targets", {"target": "127.0.0.1:8000"}).status_code == 409
    assert [t["id"] for t in admin("GET", "/upstreams/web.upstream/targets/all").json()["data"]] == [target["id"]]
    assert admin("DELETE", "/upstreams/web.upstream/targets/127.0.0.1:8000").status_code == 204
    assert admin("GET", "/upstreams/web.upstream/targets").json()["data"] == []


# -- listing: pagination and tags -------------------------------------------------------------------


def test_pagination_walks_every_entity_once(admin):
    ids = {created(admin("POST", "/services", {"name": f"s{n}", "host": "h", "tags": ["paged"]}))["id"]
           for n in range(5)}
    seen, path, pages = [], "/services?size=2&tags=paged", []
    while path:
        page = admin("GET", path).json()
        pages.append(page)
        seen += [s["id"] for s in page["data"]]
        path = page["next"]
    assert sorted(seen) == sorted(ids)
    assert [len(p["data"]) for p in pages] == [2, 2, 1]
    assert pages[0]["next"].startswith("/services?offset=")
    assert "tags=paged" in pages[0]["next"] and "size=2" in pages[0]["next"]
    assert pages[0]["offset"] and "offset" not in pages[-1] and pages[-1]["next"] is None


def test_empty_collection_page(admin):
    assert admin("GET", "/services").json() == {"data": [], "next": None}


@pytest.mark.parametrize(
    "query, expected",
    [
        ("tags=a", ["ab", "a"]),
        ("tags=a,b", ["ab"]),
        ("tags=b/c", ["ab", "c"]),
        ("tags=z", []),
    ],
)
def test_tag_filters(admin, query, expected):
    for name, tags in (("ab", ["a", "b"]), ("a", ["a"]), ("c", ["c"])):
        created(admin("POST", "/services", {"name": name, "host": "h", "tags": tags}))
    names = {s["name"] for s in admin("GET", f"/services?{query}").json()["data"]}
    assert names == set(expected)


def test_tags_endpoint_lists_every_tagged_entity(admin):
    service = created(admin("POST", "/services", {"name": "web", "host": "h", "tags": ["team-a"]}))
    rows = admin("GET", "/tags/team-a").json()["data"]
    assert rows == [{"entity_name": "services", "entity_id": service["id"], "tag": "team-a"}]


def test_root_and_status(admin):
    root = admin("GET", "/").json()
    assert root["version"].startswith("3.") and "key-auth" in root["plugins"]["available_on_server"]
    assert admin("GET", "/status").json()["database"] == {"reachable": True}


# -- proxy ------------------------------------------------------------------------------------------


def expose(admin, name, backend, route_body):
    url = f"http://{name}.service.consul:{backend.port}"
    created(admin("POST", "/services", {"name": name, "url": url}))
    return created(admin("POST", f"/services/{name}/routes", {"name": name, **route_body}))


def test_proxy_routes_by_host_to_each_backend(admin, proxy, backends):
    one, two = backends
    expose(admin, "one", one, {"hosts": ["one.service.consul"]})
    expose(admin, "two", two, {"hosts": ["two.service.consul"]})
    for host, label, port in (("one.service.consul", "one", one.port), ("two.service.consul", "two", two.port)):
        reply = proxy("/hello?x=1", host=host)
        assert reply.status_code == 200
        echoed = reply.json()
        assert (echoed["backend"], echoed["path"], echoed["query"]) == (label, "/hello", {"x": ["1"]})
        assert echoed["headers"]["Host"] == f"{label}.service.consul:{port}"
        assert echoed["headers"]["X-Forwarded-Host"] == host
        assert reply.headers["Via"].startswith("1.1 kong/")


def test_proxy_preserve_host(admin, proxy, backends):
    expose(admin, "one", backends[0], {"hosts": ["public.test"], "preserve_host": True})
    assert proxy("/", host="public.test:8000").json()["headers"]["Host"] == "public.test:8000"


@pytest.mark.parametrize(
    "strip_path, service_path, request_path, upstream_path",
    [
        (True, None, "/api/users", "/users"),
        (True, None, "/api", "/"),
        (False, None, "/api/users", "/api/users"),
        (True, "/v2", "/api/users", "/v2/users"),
        (False, "/v2", "/api/users", "/v2/api/users"),
    ],
)
def test_proxy_strip_path(admin, proxy, backends, strip_path, service_path, request_path, upstream_path):
    one = backends[0]
    created(admin("POST", "/services", {"name": "one", "host": "one.service.consul", "port": one.port,
                                        "path": service_path}))
    created(admin("POST", "/services/one/routes", {"paths": ["/api"], "strip_path": strip_path}))
    assert proxy(request_path, host="any.test").json()["path"] == upstream_path


@pytest.mark.parametrize(
    "hosts, request_host, matched",
    [
        (["*.example.test"], "api.example.test", True),
        (["*.example.test"], "example.test", False),
        (["api.example.*"], "api.example.org", True),
        (["api.example.test"], "API.example.test", True),
        (["api.example.test"], "other.example.test", False),
    ],
)
def test_proxy_host_matching(admin, proxy, backends, hosts, request_host, matched):
    expose(admin, "one", backends[0], {"hosts": hosts})
    reply = proxy("/", host=request_host)
    if matched:
        assert reply.json()["backend"] == "one"
    else:
        assert (reply.status_code, reply.json()) == (404, {"message": "no Route matched with those values"})


def test_proxy_prefers_exact_host_and_longest_path(admin, proxy, backends):
    one, two = backends
    expose(admin, "one", one, {"hosts": ["*.example.test"]})
    expose(admin, "two", two, {"hosts": ["api.example.test"]})
    assert proxy("/", host="api.example.test").json()["backend"] == "two"
    assert proxy("/", host="www.example.test").json()["backend"] == "one"
    created(admin("POST", "/services/one/routes", {"hosts": ["paths.test"], "paths": ["/"]}))
    created(admin("POST", "/services/two/routes", {"hosts": ["paths.test"], "paths": ["/deep"]}))
    assert proxy("/deep/x", host="paths.test").json()["backend"] == "two"
    assert proxy("/shallow", host="paths.test").json()["backend"] == "one"


def test_proxy_method_restriction(admin, proxy, backends):
    expose(admin, "one", backends[0], {"hosts": ["m.test"], "methods": ["POST"]})
    assert proxy("/", host="m.test", method="POST", data=b"payload").json()["body"] == "payload"
    assert proxy("/", host="m.test").status_code == 404


def test_proxy_through_upstream_targets_round_robin(admin, proxy, backends):
    one, two = backends
    created(admin("POST", "/upstreams", {"name": "pool"}))
    for backend in backends:
        created(admin("POST", "/upstreams/pool/targets", {"target": f"127.0.0.1:{backend.port}"}))
    created(admin("POST", "/services", {"name": "pooled", "host": "pool"}))
    created(admin("POST", "/services/pooled/routes", {"hosts": ["pool.test"]}))
    labels = {proxy("/", host="pool.test").json()["backend"] for _ in range(4)}
    assert labels == {"one", "two"}


def test_proxy_unreachable_upstream_is_502(admin, proxy, kong_sim):
    with Echo("gone") as gone:
        port = gone.port
    created(admin("POST", "/services", {"name": "dead", "url": f"http://127.0.0.1:{port}"}))
    created(admin("POST", "/services/dead/routes", {"hosts": ["dead.test"]}))
    reply = proxy("/", host="dead.test")
    assert reply.status_code == 502
    assert reply.json() == {"message": "An invalid response was received from the upstream server"}


def test_proxy_never_resolves_names_outside_its_map(admin, proxy, kong_sim):
    created(admin("POST", "/services", {"name": "far", "url": "http://example.com"}))
    created(admin("POST", "/services/far/routes", {"hosts": ["far.test"]}))
    reply = proxy("/", host="far.test")
    assert (reply.status_code, reply.json()) == (503, {"message": "name resolution failed"})


def test_proxy_opted_in_to_networks_resolves_names_through_the_system_resolver(backends, monkeypatch):
    asked, system_getaddrinfo = [], socket.getaddrinfo

    def getaddrinfo(host, port, *args):
        if host != "web.service.consul":
            return system_getaddrinfo(host, port, *args)
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port or 0))]

    monkeypatch.setattr(base.socket, "getaddrinfo", getaddrinfo)
    with KongSimulator(upstream_networks=["10.0.0.0/16"]) as kong:
        url = f"http://web.service.consul:{backends[0].port}"
        created(requests.post(f"{kong.admin_url}/services", json={"name": "web", "url": url}, timeout=10))
        created(requests.post(f"{kong.admin_url}/services/web/routes", json={"hosts": ["web.test"]}, timeout=10))
        reply = requests.get(kong.proxy_url, headers={"Host": "web.test"}, timeout=10)
    assert (reply.status_code, reply.json()["backend"]) == (200, "one")
    assert asked == ["web.service.consul"]


# -- proxy authentication ---------------------------------------------------------------------------


@pytest.fixture
def guarded(admin, backends):
    """Service "one" behind a route, with consumer alice holding a key and a password."""
    expose(admin, "one", backends[0], {"hosts": ["guarded.test"]})
    consumer = created(admin("POST", "/consumers", {"username": "alice"}))
    created(admin("POST", "/consumers/alice/key-auth", {"key": "alice-key"}))
    created(admin("POST", "/consumers/alice/basic-auth", {"username": "alice", "password": "open-sesame"}))
    return consumer


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "config, headers, path, status, message",
    [
        ({}, {}, "/", 401, "No API key found in request"),
        ({}, {"apikey": "wrong"}, "/", 401, "Unauthorized"),
        ({}, {"apikey": "alice-key"}, "/", 200, None),
        ({}, {}, "/?apikey=alice-key", 200, None),
        ({"key_in_query": False}, {}, "/?apikey=alice-key", 401, "No API key found in request"),
        ({"key_names": ["x-key"]}, {"x-key": "alice-key"}, "/", 200, None),
    ],
)
def test_key_auth(admin, proxy, guarded, config, headers, path, status, message):
    created(admin("POST", "/services/one/plugins", {"name": "key-auth", "config": config}))
    reply = proxy(path, host="guarded.test", headers=headers)
    assert reply.status_code == status
    if message:
        assert reply.json() == {"message": message}
        assert reply.headers["WWW-Authenticate"] == 'Key realm="kong"'
    else:
        assert reply.json()["headers"]["X-Consumer-Username"] == "alice"
        assert reply.json()["headers"]["X-Consumer-ID"] == guarded["id"]


def test_key_auth_hide_credentials(admin, proxy, guarded):
    created(admin("POST", "/routes/one/plugins", {"name": "key-auth", "config": {"hide_credentials": True}}))
    echoed = proxy("/?apikey=alice-key&keep=1", host="guarded.test").json()
    assert echoed["query"] == {"keep": ["1"]}


@pytest.mark.parametrize(
    "authorization, status",
    [
        (None, 401),
        (basic("alice", "wrong"), 401),
        (basic("bob", "open-sesame"), 401),
        (basic("alice", "open-sesame"), 200),
    ],
)
def test_basic_auth(admin, proxy, guarded, authorization, status):
    created(admin("POST", "/plugins", {"name": "basic-auth"}))  # global
    headers = {"Authorization": authorization} if authorization else {}
    reply = proxy("/", host="guarded.test", headers=headers)
    assert reply.status_code == status
    if status == 401:
        assert reply.json() == {"message": "Unauthorized"}
        assert reply.headers["WWW-Authenticate"] == 'Basic realm="service"'
    else:
        assert reply.json()["headers"]["Authorization"] == authorization


def test_disabled_plugin_is_not_enforced(admin, proxy, guarded):
    created(admin("POST", "/services/one/plugins", {"name": "key-auth", "enabled": False}))
    assert proxy("/", host="guarded.test").status_code == 200


# -- simulator controls -----------------------------------------------------------------------------


def test_proxy_fault_injection_is_separate_from_admin(admin, proxy, kong_sim, backends):
    expose(admin, "one", backends[0], {"hosts": ["f.test"]})
    kong_sim.proxy.faults.fail(1, status=503)
    assert proxy("/", host="f.test").status_code == 503
    assert proxy("/", host="f.test").status_code == 200
    kong_sim.faults.fail(1)
    failed = admin("GET", "/services")
    assert (failed.status_code, failed.headers["Content-Type"]) == (500, JSON_UTF8)



def test_a_renamed_entity_frees_its_old_name_and_is_found_by_the_new_one(admin):
    created = admin("PUT", "/services/old", {"url": "http://127.0.0.1:1"}).json()
    assert admin("PATCH", "/services/old", {"name": "new"}).status_code == 200
    assert admin("GET", "/services/old").status_code == 404
    assert admin("GET", "/services/new").json()["id"] == created["id"]
    assert admin("POST", "/services", {"name": "old", "url": "http://127.0.0.1:2"}).status_code == 201
    reply = admin("POST", "/services", {"name": "new", "url": "http://127.0.0.1:3"})
    assert (reply.status_code, reply.json()["name"]) == (409, "unique constraint violation")
    assert admin("DELETE", "/services/new").status_code == 204
    assert admin("POST", "/services", {"name": "new", "url": "http://127.0.0.1:3"}).status_code == 201
