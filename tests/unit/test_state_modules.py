"""
The per-object API states (``consul``, ``vulcand``, ``kong``) and their shared skeleton
``statediffutil``, loader-mocked: (what the API holds, arguments) -> (result, changes, comment,
writes), each case in a real run and in test mode.
"""

import copy
import hashlib
import importlib.util
import pathlib
import urllib.parse

import pytest

import registrationutil
import statediffutil
import validationutil
from httpclientutil import NotFoundError

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CLUSTER = "showcase"
RULES = validationutil.PlatformRules(validationutil.PortRange(10000, 11000))
MARK = {"managed-by": "salt", "cluster": CLUSTER, "source": "state"}
PILLAR_MARK = {**MARK, "source": "pillar"}
GATEWAY_TAGS = ["cluster:showcase", "managed-by:salt", "source:gateway"]
CONSUMER_ID = "uuid-consumer-ops"


def _load(name):
    spec = importlib.util.spec_from_file_location(
        f"state_{name}", REPO_ROOT / "salt" / "_states" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


STATES = {name: _load(name) for name in ("consul", "vulcand", "kong")}


def _missing(system, path):
    return NotFoundError(system, "GET", f"http://127.0.0.1{path}", 404, "not found")


class FakeConsul:
    """The agent's services and checks; registrations fill in what the agent would."""

    def __init__(self, services=None, checks=None):
        self.services = copy.deepcopy(services or {})
        self.checks = copy.deepcopy(checks or {})
        self.writes = []

    def get_service(self, service_id):
        if service_id not in self.services:
            raise _missing("consul", f"/v1/agent/service/{service_id}")
        return copy.deepcopy(self.services[service_id])

    def deregister_service(self, service_id):
        self.writes.append(("deregister", service_id))
        self.services.pop(service_id, None)

    def list_checks(self):
        return copy.deepcopy(self.checks)

    def register_service(self, definition, replace_existing_checks=False):
        self.writes.append(("register", definition, replace_existing_checks))
        self.services[definition["ID"]] = consul_service(**{
            key: value for key, value in definition.items() if key not in ("ID", "Name", "Checks")})
        if replace_existing_checks:
            self.checks = {key: check for key, check in self.checks.items()
                           if check["ServiceID"] != definition["ID"]}
        for check in definition.get("Checks") or []:
            self.checks[check["CheckID"]] = consul_check(**check)


def consul_service(**fields):
    """An agent service ``web`` as the agent reports it, defaults included."""
    return {"ID": "web", "Service": "web", "Tags": [], "Meta": {}, "Port": 0, "Address": "",
            "Weights": {"Passing": 1, "Warning": 1}, "EnableTagOverride": False, **fields}


def consul_check(CheckID, Status=None, **definition):  # noqa: N803 (Consul's field names)
    return {"CheckID": CheckID, "Name": "Service 'web' check", "Notes": "",
            "Status": Status or "critical", "ServiceID": "web", "ServiceName": "web",
            "Definition": {"Timeout": "10s", **definition}}


class FakeVulcand:
    """vulcand's objects by collection and id; upserts fill in default settings."""

    DEFAULT_SETTINGS = {"Timeouts": {"Read": "", "Dial": ""},
                        "KeepAlive": {"MaxIdleConnsPerHost": 2}}

    def __init__(self, objects=None, servers=None):
        self.objects = copy.deepcopy(objects or {})
        self.servers = copy.deepcopy(servers or {})
        self.writes = []

    def list(self, collection):
        return copy.deepcopy(list(self.objects.get(collection, {}).values()))

    def get(self, collection, key):
        try:
            return copy.deepcopy(self.objects[collection][key])
        except KeyError:
            raise _missing("vulcand", f"/v2/{collection}/{key}") from None

    def upsert(self, collection, entity):
        self.writes.append(("upsert", collection, entity))
        key = entity["Name"] if collection == "hosts" else entity["Id"]
        stored = statediffutil.merged({"Settings": self.DEFAULT_SETTINGS}, entity)
        self.objects.setdefault(collection, {})[key] = stored

    def delete(self, collection, key):
        self.writes.append(("delete", collection, key))
        self.objects[collection].pop(key)

    def list_servers(self, backend_id):
        if backend_id not in self.objects.get("backends", {}):
            raise _missing("vulcand", f"/v2/backends/{backend_id}/servers")
        return copy.deepcopy(list(self.servers.get(backend_id, {}).values()))

    def upsert_server(self, backend_id, server):
        self.writes.append(("upsert_server", backend_id, server))
        self.servers.setdefault(backend_id, {})[server["Id"]] = dict(server)

    def delete_server(self, backend_id, server_id):
        self.writes.append(("delete_server", backend_id, server_id))
        self.servers[backend_id].pop(server_id)


class FakeKong:
    """Kong entities by collection and key; PUT fills in what Kong would."""

    def __init__(self, entities=None):
        self.entities = copy.deepcopy(entities or {})
        self.writes = []

    def get(self, collection, key):
        try:
            return copy.deepcopy(self.entities[(collection, key)])
        except KeyError:
            raise _missing("kong", f"/{collection}/{key}") from None

    def upsert(self, collection, key, entity):
        self.writes.append(("upsert", collection, key, entity))
        stored = {"id": "uuid-1", "created_at": 1, **entity}
        if collection.endswith("/basic-auth"):  # Kong links it to the consumer, hashes the password
            stored["consumer"] = {"id": CONSUMER_ID}
            stored["password"] = hashlib.sha1((entity["password"] + CONSUMER_ID).encode()).hexdigest()
        if "url" in stored:  # a write-only shorthand
            url = urllib.parse.urlsplit(stored.pop("url"))
            stored.update(protocol=url.scheme, host=url.hostname, port=url.port,
                          path=url.path or None)
        self.entities[(collection, key)] = stored

    def delete(self, collection, key):
        self.writes.append(("delete", collection, key))
        self.entities.pop((collection, key), None)


@pytest.fixture(params=(False, True), ids=("real", "test"))
def testmode(request):
    return request.param


def run(monkeypatch, testmode, registries, module, function, **kwargs):
    """Run the state ``module.function`` against ``registries`` (fakes); returns its ret."""
    state = STATES[module]

    def configured(config_get, source, cache=None):
        assert config_get is state.__salt__["config.get"]
        return registrationutil.Settings(registries, registrationutil.Owner(CLUSTER, source),
                                         registrationutil.DEFAULT_DOMAIN, RULES)

    monkeypatch.setattr(registrationutil, "configured", configured)
    monkeypatch.setattr(state, "__opts__", {"test": testmode}, raising=False)
    monkeypatch.setattr(state, "__salt__", {"config.get": lambda key, default=None: default},
                        raising=False)
    monkeypatch.setattr(state, "__context__", {}, raising=False)
    return getattr(state, function)(**kwargs)


def writes_of(registries):
    return [write for client in (registries.consul, registries.vulcand, registries.kong)
            for write in client.writes]


def registries(consul=None, vulcand=None, kong=None):
    return registrationutil.Registries(consul=consul or FakeConsul(),
                                       vulcand=vulcand or FakeVulcand(), kong=kong or FakeKong())


def check_case(monkeypatch, testmode, expected):
    """Run one table row and check it: in test mode, the same changes, result None when
    something would change, and nothing written."""
    regs = registries(**expected["given"]())
    ret = run(monkeypatch, testmode, regs, expected["module"], expected["function"],
              **expected["kwargs"])
    changing = bool(expected["changes"]) and expected["result"] is True
    assert ret["result"] is (None if testmode and changing else expected["result"]), ret
    assert ret["changes"] == expected["changes"]
    comment = expected["comment"]
    if changing:
        comment = comment.format(done="would be" if testmode else "has been")
    assert ret["comment"] == comment
    assert writes_of(regs) == ([] if testmode else expected["writes"])
    return regs


def case(id, module, function, kwargs, given, result, changes, comment, writes=()):  # noqa: A002
    """One table row; ``comment`` may hold ``{done}`` ("has been" / "would be")."""
    return pytest.param(
        {"module": module, "function": function, "kwargs": kwargs, "given": given,
         "result": result, "changes": changes, "comment": comment, "writes": list(writes)},
        id=id)


# -- consul -----------------------------------------------------------------------------------

OURS = consul_service(Port=10000, Tags=["http"], Meta={**MARK, "team": "web"})
HTTP_CHECK = {"HTTP": "http://127.0.0.1:10000/health", "Interval": "10s"}

CONSUL_CASES = [
    case("registers-a-new-service", "consul", "service_registered",
         {"name": "web", "port": 10000, "tags": ["http"], "meta": {"team": "web"}},
         lambda: {}, True,
         {"old": None, "new": {"Meta": {"team": "web", **MARK}, "Port": 10000, "Tags": ["http"]}},
         "Consul service web {done} created",
         [("register", {"ID": "web", "Name": "web", "Meta": {"team": "web", **MARK},
                        "Port": 10000, "Tags": ["http"]}, False)]),
    case("agent-defaults-and-other-fields-are-no-drift", "consul", "service_registered",
         {"name": "web", "port": 10000},
         lambda: {"consul": FakeConsul({"web": OURS})}, True, {},
         "Consul service web is in the correct state"),
    case("updates-only-the-given-fields-and-keeps-the-rest", "consul", "service_registered",
         {"name": "web", "port": 10001, "meta": {"version": "2"}},
         lambda: {"consul": FakeConsul({"web": OURS})}, True,
         {"Port": {"old": 10000, "new": 10001},
          "Meta": {"old": {"version": None}, "new": {"version": "2"}}},
         "Consul service web {done} updated",
         [("register", {"ID": "web", "Name": "web", "Tags": ["http"],
                        "Meta": {**MARK, "team": "web", "version": "2"}, "Port": 10001,
                        "Address": "", "Weights": {"Passing": 1, "Warning": 1},
                        "EnableTagOverride": False}, False)]),
    case("adds-checks-and-drops-unlisted-ones", "consul", "service_registered",
         {"name": "web", "checks": [{**HTTP_CHECK, "Status": "passing"}]},
         lambda: {"consul": FakeConsul({"web": OURS}, {
             "service:web:2": consul_check("service:web:2", TTL="15s")})}, True,
         {"Checks": {"old": [None, {"CheckID": "service:web:2", "Name": "Service 'web' check",
                                    "Notes": "", "Timeout": "10s", "TTL": "15s"}],
                     "new": [{"CheckID": "service:web", **HTTP_CHECK}]}},
         "Consul service web {done} updated",
         [("register", {"ID": "web", "Name": "web", "Tags": ["http"],
                        "Meta": {**MARK, "team": "web"}, "Port": 10000, "Address": "",
                        "Weights": {"Passing": 1, "Warning": 1}, "EnableTagOverride": False,
                        "Checks": [{"CheckID": "service:web", **HTTP_CHECK, "Status": "passing"}]},
           True)]),
    case("checks-compare-on-given-fields-without-status", "consul", "service_registered",
         {"name": "web", "checks": [{**HTTP_CHECK, "Status": "passing"}, {"TTL": "15s"}]},
         lambda: {"consul": FakeConsul({"web": OURS}, {
             "service:web:1": consul_check("service:web:1", **HTTP_CHECK),
             "service:web:2": consul_check("service:web:2", TTL="15s")})}, True, {},
         "Consul service web is in the correct state"),
    case("durations-compare-as-the-agent-reports-them", "consul", "service_registered",
         {"name": "web", "checks": [{**HTTP_CHECK, "Interval": "60s", "Timeout": "1m"}]},
         lambda: {"consul": FakeConsul({"web": OURS}, {
             "service:web": consul_check("service:web", **{**HTTP_CHECK, "Interval": "1m0s",
                                                          "Timeout": "1m0s"})})}, True, {},
         "Consul service web is in the correct state"),
    case("refuses-a-service-salt-did-not-register", "consul", "service_registered",
         {"name": "web", "port": 10000},
         lambda: {"consul": FakeConsul({"web": consul_service(Port=10000)})}, False, {},
         "Consul service web exists and is not registered by Salt: refusing to take it over"),
    case("refuses-a-service-of-another-source", "consul", "service_registered",
         {"name": "web", "port": 10000},
         lambda: {"consul": FakeConsul({"web": consul_service(Meta=PILLAR_MARK)})}, False, {},
         "Consul service web exists and is registered by showcase/pillar: refusing to take it over"),
    case("the-ownership-mark-is-reserved", "consul", "service_registered",
         {"name": "web", "meta": {"source": "me"}}, lambda: {}, False, {},
         "meta of Consul service 'web': source carry the ownership mark and cannot be set"),
    case("rejects-a-bad-port-before-reading", "consul", "service_registered",
         {"name": "web", "port": "http"}, lambda: {}, False, {},
         "port: expected an integer from 1 to 65535, not the string 'http'"),
    case("deregisters-its-own-service", "consul", "service_absent", {"name": "web"},
         lambda: {"consul": FakeConsul({"web": OURS})}, True, {"old": OURS, "new": None},
         "Consul service web {done} deleted", [("deregister", "web")]),
    case("an-absent-service-is-fine", "consul", "service_absent", {"name": "web"},
         lambda: {}, True, {}, "Consul service web is already absent"),
    case("refuses-to-deregister-another-sources-service", "consul", "service_absent",
         {"name": "web"}, lambda: {"consul": FakeConsul({"web": consul_service(Meta=PILLAR_MARK)})},
         False, {},
         "Consul service web exists and is registered by showcase/pillar: refusing to delete it"),
]


# -- vulcand ----------------------------------------------------------------------------------

def vulcand_with(owner_meta=MARK, **objects):
    """A Consul service ``web`` with ``owner_meta`` (None: none) and vulcand ``objects``."""
    services = {"web": consul_service(Meta=owner_meta)} if owner_meta is not None else {}
    servers = objects.pop("servers", {})
    return {"consul": FakeConsul(services), "vulcand": FakeVulcand(objects, servers)}


BACKEND = {"Id": "web", "Type": "http", "Settings": FakeVulcand.DEFAULT_SETTINGS}
FRONTEND = {"Id": "web", "Type": "http", "BackendId": "web",
            "Settings": {"Hostname": "web.service.consul"}}
HOST = {"Name": "web.service.consul", "Settings": {"Default": False}}
SERVER = {"Id": "web1", "URL": "http://10.0.12.223:53769"}

VULCAND_CASES = [
    case("creates-a-backend-of-an-owned-service", "vulcand", "object_present",
         {"name": "web", "collection": "backends", "fields": {"Type": "http"}},
         vulcand_with, True, {"old": None, "new": {"Type": "http"}},
         "vulcand backend web {done} created",
         [("upsert", "backends", {"Type": "http", "Id": "web"})]),
    case("server-filled-settings-are-no-drift", "vulcand", "object_present",
         {"name": "web", "collection": "backends", "fields": {"Type": "http"}},
         lambda: vulcand_with(backends={"web": BACKEND}), True, {},
         "vulcand backend web is in the correct state"),
    case("updates-nested-settings-on-the-given-keys", "vulcand", "object_present",
         {"name": "web", "collection": "backends",
          "fields": {"Settings": {"Timeouts": {"Read": "5s"}}}},
         lambda: vulcand_with(backends={"web": BACKEND}), True,
         {"Settings": {"old": {"Timeouts": {"Read": ""}}, "new": {"Timeouts": {"Read": "5s"}}}},
         "vulcand backend web {done} updated",
         [("upsert", "backends", {"Id": "web", "Type": "http", "Settings": {
             "Timeouts": {"Read": "5s", "Dial": ""}, "KeepAlive": {"MaxIdleConnsPerHost": 2}}})]),
    case("refuses-an-object-without-a-consul-service", "vulcand", "object_present",
         {"name": "web", "collection": "listeners", "fields": {"Protocol": "http"}},
         lambda: vulcand_with(owner_meta=None), False, {},
         "vulcand listener web would belong to the owner of Consul service web, which is not "
         "registered (register it first): refusing to create it"),
    case("refuses-an-object-of-another-source", "vulcand", "object_present",
         {"name": "web", "collection": "frontends", "fields": {"Type": "http"}},
         lambda: vulcand_with(owner_meta=PILLAR_MARK, frontends={"web": FRONTEND}), False, {},
         "vulcand frontend web belongs to the owner of Consul service web, which is "
         "registered by showcase/pillar: refusing to take it over"),
    case("creates-a-host-an-owned-frontend-names", "vulcand", "object_present",
         {"name": "web.service.consul", "collection": "hosts"},
         lambda: vulcand_with(frontends={"web": FRONTEND}), True, {"old": None, "new": {}},
         "vulcand host web.service.consul {done} created",
         [("upsert", "hosts", {"Name": "web.service.consul"})]),
    case("refuses-a-host-no-frontend-names", "vulcand", "object_present",
         {"name": "web.service.consul", "collection": "hosts"}, vulcand_with, False, {},
         "vulcand host web.service.consul would belong to the owner of a frontend naming it, "
         "and there is none (create the frontend first): refusing to create it"),
    case("refuses-a-host-named-by-a-foreign-frontend", "vulcand", "object_absent",
         {"name": "web.service.consul", "collection": "hosts"},
         lambda: vulcand_with(owner_meta={}, frontends={"web": FRONTEND},
                              hosts={"web.service.consul": HOST}), False, {},
         "vulcand host web.service.consul is named by no frontend of ours: frontend web "
         "belongs to the owner of Consul service web, which is not registered by Salt: "
         "refusing to delete it"),
    case("deletes-an-owned-object", "vulcand", "object_absent",
         {"name": "web", "collection": "backends"},
         lambda: vulcand_with(backends={"web": BACKEND}), True, {"old": BACKEND, "new": None},
         "vulcand backend web {done} deleted", [("delete", "backends", "web")]),
    case("an-unknown-collection-is-an-error", "vulcand", "object_present",
         {"name": "web", "collection": "servers"}, vulcand_with, False, {},
         "unknown vulcand collection 'servers' (expected one of backends, frontends, hosts, "
         "listeners)"),
    case("adds-a-server-to-an-owned-backend", "vulcand", "server_present",
         {"name": "web1", "backend": "web", "url": SERVER["URL"]},
         lambda: vulcand_with(backends={"web": BACKEND}), True,
         {"old": None, "new": {"URL": SERVER["URL"]}}, "vulcand server web/web1 {done} created",
         [("upsert_server", "web", SERVER)]),
    case("moves-a-server", "vulcand", "server_present",
         {"name": "web1", "backend": "web", "url": "http://10.0.12.224:41000"},
         lambda: vulcand_with(backends={"web": BACKEND}, servers={"web": {"web1": SERVER}}),
         True, {"URL": {"old": SERVER["URL"], "new": "http://10.0.12.224:41000"}},
         "vulcand server web/web1 {done} updated",
         [("upsert_server", "web", {"Id": "web1", "URL": "http://10.0.12.224:41000"})]),
    case("refuses-a-server-of-a-foreign-backend", "vulcand", "server_absent",
         {"name": "web1", "backend": "web"},
         lambda: vulcand_with(owner_meta=PILLAR_MARK, backends={"web": BACKEND},
                              servers={"web": {"web1": SERVER}}), False, {},
         "vulcand server web/web1 belongs to the owner of Consul service web, which is "
         "registered by showcase/pillar: refusing to delete it"),
    case("removes-a-server", "vulcand", "server_absent", {"name": "web1", "backend": "web"},
         lambda: vulcand_with(backends={"web": BACKEND}, servers={"web": {"web1": SERVER}}),
         True, {"old": SERVER, "new": None}, "vulcand server web/web1 {done} deleted",
         [("delete_server", "web", "web1")]),
    case("a-server-of-a-missing-backend-is-absent", "vulcand", "server_absent",
         {"name": "web1", "backend": "web"}, vulcand_with, True, {},
         "vulcand server web/web1 is already absent"),
]


# -- kong -------------------------------------------------------------------------------------

MESOS = {"protocol": "http", "host": "mesos.service.consul", "port": 5050, "path": None}
BASIC_AUTH_OPS = {"id": "uuid-2", "username": "ops", "consumer": {"id": CONSUMER_ID}, "tags": GATEWAY_TAGS,
                  "password": hashlib.sha1(("s3cret" + CONSUMER_ID).encode()).hexdigest()}
STORED_MESOS = {"id": "uuid-1", "name": "mesos", "retries": 5, **MESOS, "tags": GATEWAY_TAGS}

KONG_CASES = [
    case("creates-an-entity-from-the-url-shorthand", "kong", "entity_present",
         {"name": "mesos", "collection": "services",
          "fields": {"name": "mesos", "url": "http://mesos.service.consul:5050"}},
         lambda: {}, True, {"old": None, "new": {"name": "mesos", **MESOS, "tags": GATEWAY_TAGS}},
         "Kong services/mesos {done} created",
         [("upsert", "services", "mesos", {"name": "mesos",
                                           "url": "http://mesos.service.consul:5050",
                                           "tags": GATEWAY_TAGS})]),
    case("kong-defaults-are-no-drift", "kong", "entity_present",
         {"name": "mesos", "collection": "services",
          "fields": {"url": "http://mesos.service.consul:5050"}},
         lambda: {"kong": FakeKong({("services", "mesos"): STORED_MESOS})}, True, {},
         "Kong services/mesos is in the correct state"),
    case("a-password-is-sent-and-never-reported", "kong", "entity_present",
         {"name": "ops", "collection": "consumers/ops/basic-auth",
          "fields": {"username": "ops", "password": "s3cret"}, "secret_fields": ["password"]},
         lambda: {}, True,
         {"old": None, "new": {"username": "ops", "password": "<as given>", "tags": GATEWAY_TAGS}},
         "Kong consumers/ops/basic-auth/ops {done} created",
         [("upsert", "consumers/ops/basic-auth", "ops",
           {"username": "ops", "password": "s3cret", "tags": GATEWAY_TAGS})]),
    case("a-changed-password-is-found-through-kongs-hash-and-rewritten", "kong", "entity_present",
         {"name": "ops", "collection": "consumers/ops/basic-auth",
          "fields": {"username": "ops", "password": "n3w"}, "secret_fields": ["password"]},
         lambda: {"kong": FakeKong({("consumers/ops/basic-auth", "ops"): BASIC_AUTH_OPS})}, True,
         {"password": {"old": "<another value>", "new": "<as given>"}},
         "Kong consumers/ops/basic-auth/ops {done} updated",
         [("upsert", "consumers/ops/basic-auth", "ops",
           {"username": "ops", "password": "n3w", "tags": GATEWAY_TAGS})]),
    case("the-same-password-is-no-change", "kong", "entity_present",
         {"name": "ops", "collection": "consumers/ops/basic-auth",
          "fields": {"username": "ops", "password": "s3cret"}, "secret_fields": ["password"]},
         lambda: {"kong": FakeKong({("consumers/ops/basic-auth", "ops"): BASIC_AUTH_OPS})}, True,
         {}, "Kong consumers/ops/basic-auth/ops is in the correct state"),
    case("a-deleted-credential-reports-its-password-hidden", "kong", "entity_absent",
         {"name": "ops", "collection": "consumers/ops/basic-auth"},
         lambda: {"kong": FakeKong({("consumers/ops/basic-auth", "ops"): BASIC_AUTH_OPS})}, True,
         {"old": {**BASIC_AUTH_OPS, "password": "<hidden>"}, "new": None},
         "Kong consumers/ops/basic-auth/ops {done} deleted",
         [("delete", "consumers/ops/basic-auth", "ops")]),
    case("refuses-an-untagged-entity", "kong", "entity_absent",
         {"name": "mesos", "collection": "services"},
         lambda: {"kong": FakeKong({("services", "mesos"): {**STORED_MESOS, "tags": None}})},
         False, {},
         "Kong services/mesos exists and is not registered by Salt: refusing to delete it"),
    case("deletes-its-own-entity", "kong", "entity_absent",
         {"name": "mesos", "collection": "services"},
         lambda: {"kong": FakeKong({("services", "mesos"): STORED_MESOS})}, True,
         {"old": STORED_MESOS, "new": None}, "Kong services/mesos {done} deleted",
         [("delete", "services", "mesos")]),
]


@pytest.mark.parametrize("values", CONSUL_CASES + VULCAND_CASES + KONG_CASES)
def test_state(monkeypatch, testmode, values):
    check_case(monkeypatch, testmode, values)


def test_a_second_run_after_a_real_one_changes_nothing(monkeypatch):
    """What a real run writes is what the next run reads as correct, checks included."""
    regs = registries()
    kwargs = {"name": "web", "port": 10000, "checks": [HTTP_CHECK, {"TTL": "15s"}]}
    first = run(monkeypatch, False, regs, "consul", "service_registered", **kwargs)
    assert first["result"] is True and first["changes"]["old"] is None
    again = run(monkeypatch, False, regs, "consul", "service_registered", **kwargs)
    assert (again["result"], again["changes"]) == (True, {})


# -- statediffutil ----------------------------------------------------------------------------

def test_differences_compare_the_given_keys_only():
    current = {"a": 1, "b": {"x": 1, "y": 2}, "server": "filled"}
    assert statediffutil.differences(current, {"a": 1, "b": {"x": 1}}) == {}
    assert statediffutil.differences(current, {"b": {"x": 3, "y": 2}, "c": None}) == {
        "b": {"old": {"x": 1}, "new": {"x": 3}}}
    assert statediffutil.differences(current, {"b": {"x": {"deep": 1}}, "c": [1]}) == {
        "b": {"old": {"x": 1}, "new": {"x": {"deep": 1}}}, "c": {"old": None, "new": [1]}}


def test_selected_and_merged_follow_nested_mappings():
    current = {"a": 1, "b": {"x": 1, "y": 2}}
    assert statediffutil.selected(current, {"b": {"x": 0}, "c": 0}) == {"b": {"x": 1}, "c": None}
    assert statediffutil.merged(current, {"b": {"x": 3}, "c": 4}) == {
        "a": 1, "b": {"x": 3, "y": 2}, "c": 4}
    assert current == {"a": 1, "b": {"x": 1, "y": 2}}  # not modified


@pytest.mark.parametrize(("stored", "comment"), [
    ({"a": 1}, "thing was updated but still differs in a"),
    (None, "thing was written but cannot be read back"),
], ids=("still-differs", "vanished"))
def test_a_write_that_does_not_take_fails(stored, comment):
    target = statediffutil.Target(what="thing", read=lambda: stored, foreign=lambda _: None,
                                  wanted={"a": 2}, write=lambda current: None)
    reads = iter([{"a": 1}, stored])
    target.read = lambda: next(reads)
    ret = statediffutil.present("x", lambda: target, test=False)
    assert ret["result"] is False and ret["comment"] == comment


def test_a_deletion_that_does_not_take_fails():
    target = statediffutil.Target(what="thing", read=lambda: {"a": 1}, foreign=lambda _: None,
                                  delete=lambda current: None)
    ret = statediffutil.absent("x", lambda: target, test=False)
    assert ret == {"name": "x", "result": False, "changes": {},
                   "comment": "thing was deleted but still exists"}


@pytest.mark.parametrize(("given", "reported"), [
    ("10s", "10s"), ("1m", "1m0s"), ("90s", "1m30s"), ("1h", "1h0m0s"), ("2h30m", "2h30m0s"),
    ("0.5s", "500ms"), ("1500us", "1.5ms"), ("1.5s", "1.5s"), ("0s", "0s"),
    ("soon", "soon"), (10, 10),
])
def test_check_durations_take_the_form_consul_reports(given, reported):
    assert STATES["consul"].go_duration(given) == reported
