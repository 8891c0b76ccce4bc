"""The `services` SLS and the `microservice` functions, through a real master and minion.

The registries are the simulators (or real servers, from CONSUL_HTTP_ADDR, KONG_ADMIN_URL,
VULCAND_URL; fault-injection tests then skip). The instances are real local HTTP servers, so a
request through Kong's proxy shows the whole path: Kong -> vulcand listener -> instance.
"""

import collections
import json
import time

import pytest
import requests

from simulators.etcd import free_port
from simulators.webapp import WebApps
from tests.fixtures.ports import listener_port

pytestmark = pytest.mark.slow

HOST = "web.service.consul"
OURS = {"managed-by": "salt", "cluster": "showcase", "source": "pillar"}


@pytest.fixture(scope="module")
def webapps():
    with WebApps() as apps:
        yield apps


@pytest.fixture
def instances(webapps):
    """Two running instances of the example app: {id: {address, port}}."""
    ports = {name: webapps.add(name) for name in ("web1", "web2")}
    yield {name: {"address": "127.0.0.1", "port": port} for name, port in ports.items()}
    for port in ports.values():
        webapps.remove(port)


class Platform:
    """The registries of one test, and the pillar that points the minion at them."""

    def __init__(self, consul, vulcand, kong, local_pillar, salt_call_cli):
        self.consul, self.vulcand, self.kong = consul, vulcand, kong
        self.local_pillar = local_pillar
        self.salt_call_cli = salt_call_cli
        self.settings = {
            "cluster": "showcase",
            "consul": {"url": consul.url, "token": consul.token or ""},
            "vulcand": vulcand.settings,
            "kong": {"admin_url": kong.admin_url},
        }

    def write_pillar(self, services, **platform):
        self.local_pillar.write({"platform": {**self.settings, **platform},
                                 "services": services})

    def apply(self, sls="services", test=False, **pillar):
        """The return of the SLS's one state (state.apply through salt-call)."""
        args = ["state.apply", sls]
        if pillar:
            args.append(f"pillar={json.dumps(pillar)}")
        if test:
            args.append("test=True")
        ret = self.salt_call_cli.run(*args)
        assert isinstance(ret.data, dict) and len(ret.data) == 1, ret
        return next(iter(ret.data.values()))

    def call(self, function, *args, **kwargs):
        return self.salt_call_cli.run(f"microservice.{function}", *args, **kwargs)

    # What the registries hold, read straight from their APIs (not through the product).
    def consul_services(self):
        return self.consul.request("GET", "/v1/agent/services").json()

    def vulcand_servers(self, backend="web"):
        reply = requests.get(f"{self.vulcand.url}/v2/backends/{backend}/servers", timeout=10)
        return {server["Id"]: server["URL"] for server in reply.json()["Servers"] or []}

    def vulcand_ids(self, collection, key="Id"):
        reply = requests.get(f"{self.vulcand.url}/v2/{collection}", timeout=10)
        return sorted(item[key] for item in reply.json()[collection.capitalize()] or [])

    def kong_names(self, collection):
        reply = requests.get(f"{self.kong.admin_url}/{collection}", timeout=10)
        return sorted(entity["name"] for entity in reply.json()["data"])

    def through_gateway(self, count, host=HOST):
        """Which instances answered ``count`` requests sent to Kong's proxy for ``host``."""
        answered = collections.Counter()
        for _ in range(count):
            reply = requests.get(f"{self.kong.proxy_url}/", headers={"Host": host}, timeout=10)
            assert reply.status_code == 200, reply.text
            answered[reply.json()["instance"]] += 1
        return answered


@pytest.fixture
def platform(consul_clean, vulcand_clean, kong_clean, local_pillar, salt_call_cli):
    return Platform(consul_clean, vulcand_clean, kong_clean, local_pillar, salt_call_cli)


def web_service(instances, port):
    return {"web": {"port": port, "instances": instances}}


def test_apply_registers_only_the_named_service_and_is_idempotent(platform, instances):
    port = listener_port()
    platform.write_pillar({**web_service(instances, port), "api": {"port": listener_port()}})

    ret = platform.apply(service="web")
    assert ret["result"] is True, ret["comment"]
    assert list(ret["changes"]) == ["web"]
    assert sorted(ret["changes"]["web"]) == sorted([
        "consul service web", "vulcand host web.service.consul", "vulcand backend web",
        "vulcand server web/web1", "vulcand server web/web2", "vulcand frontend web",
        "vulcand listener web", "kong service web", "kong route web",
    ])
    services = platform.consul_services()
    assert list(services) == ["web"]
    assert services["web"]["Port"] == port and services["web"]["Meta"] == OURS
    assert platform.vulcand_servers() == {
        name: f"http://127.0.0.1:{instance['port']}" for name, instance in instances.items()
    }
    assert platform.kong_names("routes") == ["web"]

    # Kong -> vulcand listener -> each instance in turn.
    assert platform.through_gateway(4) == {"web1": 2, "web2": 2}

    again = platform.apply(service="web")
    assert (again["result"], again["changes"]) == (True, {})


def test_apply_without_a_service_converges_every_service(platform, instances):
    platform.write_pillar({**web_service(instances, listener_port()),
                           "api": {"port": listener_port(), "gateway": False}})
    ret = platform.apply()
    assert ret["result"] is True, ret["comment"]
    assert sorted(ret["changes"]) == ["api", "web"]
    assert sorted(platform.consul_services()) == ["api", "web"]
    assert platform.kong_names("services") == ["web"]


def test_test_mode_predicts_a_pillar_change_exactly_and_writes_nothing(
    platform, instances, webapps
):
    port = listener_port()
    platform.write_pillar(web_service(instances, port))
    assert platform.apply()["result"] is True

    web3_port = webapps.add("web3")
    try:
        grown = {**instances, "web3": {"address": "127.0.0.1", "port": web3_port}}
        platform.write_pillar(web_service(grown, port))
        expected = {"web": {"vulcand server web/web3": {
            "old": None, "new": {"URL": f"http://127.0.0.1:{web3_port}"}}}}

        predicted = platform.apply(test=True)
        assert (predicted["result"], predicted["changes"]) == (None, expected)
        assert sorted(platform.vulcand_servers()) == ["web1", "web2"]

        applied = platform.apply()
        assert (applied["result"], applied["changes"]) == (True, expected)
        assert sorted(platform.through_gateway(6)) == ["web1", "web2", "web3"]
    finally:
        webapps.remove(web3_port)


def test_removing_an_instance_removes_exactly_that_server(platform, instances):
    port = listener_port()
    platform.write_pillar(web_service(instances, port))
    assert platform.apply()["result"] is True

    platform.write_pillar(web_service({"web1": instances["web1"]}, port))
    ret = platform.apply()
    assert ret["result"] is True, ret["comment"]
    assert ret["changes"] == {"web": {"vulcand server web/web2": {
        "old": {"URL": f"http://127.0.0.1:{instances['web2']['port']}"}, "new": None}}}
    assert list(platform.vulcand_servers()) == ["web1"]
    assert platform.through_gateway(3) == {"web1": 3}


def test_microservice_functions_behave_like_the_seed_scripts(platform, instances):
    platform.write_pillar({})
    port = listener_port()

    ret = platform.call("register_service", "web", port)
    assert ret.returncode == 0, ret
    assert "kong route web" in ret.data["web"]
    assert platform.call("register_service", "web", port).data == {}

    for name, instance in instances.items():
        ret = platform.call("register_instance", "web", name, instance["address"],
                            instance["port"])
        assert ret.data == {"web": {f"vulcand server web/{name}": {
            "old": None, "new": {"URL": f"http://127.0.0.1:{instance['port']}"}}}}, ret
    assert platform.call("register_instance", "web", "web1", "127.0.0.1",
                         instances["web1"]["port"]).data == {}
    assert platform.through_gateway(2) == {"web1": 1, "web2": 1}

    assert list(platform.call("deregister_instance", "web", "web1").data["web"]) == [
        "vulcand server web/web1"]
    assert platform.call("deregister_instance", "web", "web1").data == {}
    assert list(platform.vulcand_servers()) == ["web2"]

    ret = platform.call("deregister_service", "web")
    assert ret.returncode == 0, ret
    assert len(ret.data["web"]) == 8
    assert platform.consul_services() == {} and platform.kong_names("services") == []
    assert platform.vulcand_ids("backends") == [] and platform.vulcand_ids("listeners") == []
    assert platform.call("deregister_service", "web").data == {}


def test_registering_an_instance_of_an_unknown_service_is_an_error(platform):
    platform.write_pillar({})
    ret = platform.call("register_instance", "nope", "n1", "127.0.0.1", 8080)
    assert ret.returncode != 0
    assert "service 'nope' is not registered by showcase/pillar" in ret.stderr


@pytest.mark.parametrize(
    "services, pillar, message",
    [
        ({"web": {"port": 10000}}, {"service": "nope"},
         "unknown service(s) 'nope': not in pillar services (known: web)"),
        ({"web": {"port": 70000}}, {},
         "services:web:port: expected an integer from 1 to 65535, not 70000"),
        ({"web_1": {"port": 10000}}, {}, "services:web_1: expected a DNS label"),
        ({"web": {"port": 10000, "instances": {"w1": {"address": "0.0.0.0", "port": 1}}}}, {},
         "services:web:instances:w1:address: '0.0.0.0' is not a routable address"),
        # Ports of platform daemons (Marathon's API, etcd) are outside the listener range.
        ({"web": {"port": 8080}}, {}, "services:web:port: 8080 is outside the platform's "
                                      "listener ports 10000-11000 (platform:listener_ports)"),
        ({"web": {"port": 2379}}, {}, "services:web:port: 2379 is outside the platform's "
                                      "listener ports 10000-11000"),
        ({"kong": {"port": 10000}}, {}, "services:kong: 'kong' is reserved for the platform's "
                                        "own services (reserved: consul, "),
        ({"consul": {"port": 10000}}, {}, "services:consul: 'consul' is reserved"),
        ({"web": {"port": 10000, "gateway": "false"}}, {},
         "services:web:gateway: expected a boolean (true or false), not the string 'false'"),
        ({"web": {"port": "10000"}}, {},
         "services:web:port: expected an integer from 1 to 65535, not the string '10000'"),
        ({"web": [10000]}, {}, "services:web: expected a mapping, not [10000]"),
        (["web"], {}, "services: expected a mapping, not ['web']"),
        ({"web": {"port": 10000, "instances": ["127.0.0.1:80"]}}, {},
         "services:web:instances: expected a mapping, not ['127.0.0.1:80']"),
        ({"web": {"port": 10000, "instances": {"w1": {"address": "127.0.0.1", "port": 80,
                                                      "weight": 1}}}}, {},
         "services:web:instances:w1: unknown key(s) weight (allowed: address, port)"),
        ({"web": {"port": 10000, "instances": {"w1": {"address": "web..local", "port": 80}}}},
         {}, "services:web:instances:w1:address: expected an IP address or a host name"),
        # The whole pillar is checked, even for one service.
        ({"web": {"port": 10000}, "api": {"port": 10001, "prot": 1}}, {"service": "web"},
         "services:api: unknown key(s) prot (allowed: absent, gateway, instances, "
         "marathon_app, port)"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(platform, services, pillar, message):
    platform.write_pillar(services)
    ret = platform.apply(**pillar)
    assert ret["result"] is False
    assert message in ret["comment"]
    assert ret["changes"] == {}
    assert_nothing_registered(platform)


def assert_nothing_registered(platform):
    assert platform.consul_services() == {} and platform.vulcand_ids("backends") == []
    assert platform.vulcand_ids("listeners") == [] and platform.kong_names("services") == []


def test_absent_false_as_a_string_deregisters_nothing(platform, instances):
    port = listener_port()
    platform.write_pillar(web_service(instances, port))
    assert platform.apply()["result"] is True

    platform.write_pillar({"web": {"absent": "false", "port": port}})
    ret = platform.apply()
    assert (ret["result"], ret["changes"]) == (False, {})
    assert ret["comment"] == ("services:web:absent: expected a boolean (true or false), "
                              "not the string 'false'")
    assert sorted(platform.consul_services()) == ["web"]
    assert sorted(platform.vulcand_servers()) == ["web1", "web2"]
    assert platform.through_gateway(2) == {"web1": 1, "web2": 1}


@pytest.fixture
def register_elsewhere(platform):
    """``register_elsewhere(name, port, node)``: a service on another node of the cluster, in
    the catalog and not on the agent; the nodes are removed afterwards (a real Consul keeps
    them)."""
    nodes = []

    def register(name, port, node):
        nodes.append(node)
        reply = platform.consul.request("PUT", "/v1/catalog/register", json={
            "Node": node, "Address": "127.0.0.2", "Service": {"Service": name, "Port": port}})
        assert reply.status_code == 200, reply.text

    yield register
    for node in nodes:
        platform.consul.request("PUT", "/v1/catalog/deregister", json={"Node": node})


@pytest.mark.parametrize(
    "elsewhere, port, platform_pillar, message",
    [
        # A name registered on another node of the cluster is not free.
        (("web", 10500, "slave0"), 10600, {},
         "service 'web': the name is taken in Consul's catalog: Consul service on node slave0 "
         "(port 10500, not registered by Salt)"),
        # An operator widened the range over Marathon's port: its Consul service still holds it.
        (("marathon", 8080, "master"), 8080, {"listener_ports": "8000-11000"},
         "service 'web': port 8080 is already the port of marathon (Consul service on node "
         "master (port 8080, not registered by Salt))"),
    ],
)
def test_names_and_ports_held_anywhere_in_the_cluster_are_refused(
    platform, register_elsewhere, elsewhere, port, platform_pillar, message
):
    register_elsewhere(*elsewhere)
    platform.write_pillar({"web": {"port": port}}, **platform_pillar)
    ret = platform.apply()
    assert (ret["result"], ret["changes"]) == (False, {})
    assert message in ret["comment"]
    assert_nothing_registered(platform)


def test_microservice_plan_reads_the_pillar_on_salt_3008(platform, instances):
    """Salt 3008 masks what pillar.get returns to a module: the plan must still see ports."""
    port = listener_port()
    platform.write_pillar(web_service(instances, port))
    ret = platform.call("plan")
    assert ret.returncode == 0, ret
    assert ret.data["web"]["consul service web"]["new"]["Port"] == port
    assert ret.data["web"]["vulcand server web/web1"] == {
        "old": None, "new": {"URL": f"http://127.0.0.1:{instances['web1']['port']}"}}
    assert ret.data == platform.call("plan", "web").data
    assert_nothing_registered(platform)

    platform.write_pillar({"web": {"port": 8080}})
    ret = platform.call("plan")
    assert ret.returncode != 0
    assert "services:web:port: 8080 is outside the platform's listener ports" in ret.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (("register_service", "kong", 10000), "name: 'kong' is reserved for the platform's"),
        (("register_service", "web", 8080),
         "port: 8080 is outside the platform's listener ports 10000-11000"),
        (("register_service", "web", 10000, 'gateway="false"'),
         "gateway: expected a boolean (true or false), not the string 'false'"),
        (("register_service", "web", '"10000"'),
         "port: expected an integer from 1 to 65535, not the string '10000'"),
        (("register_instance", "web", "w1", "10.0.0.999", 80),
         "address: expected an IP address or a host name, not '10.0.0.999'"),
    ],
)
def test_bad_arguments_of_the_functions_are_refused_and_nothing_is_written(
    platform, args, message
):
    platform.write_pillar({})
    ret = platform.call(*args)
    assert ret.returncode != 0
    assert message in ret.stderr
    assert_nothing_registered(platform)


def test_a_registry_answering_500_gives_a_clear_error_and_the_next_run_converges(
    platform, instances, kong_sim
):
    platform.write_pillar(web_service(instances, listener_port()))
    kong_sim.faults.fail(count=None, status=500, path=r"^/services/web/routes")
    ret = platform.apply()
    assert ret["result"] is False
    assert f"kong: PUT {platform.kong.admin_url}/services/web/routes/web HTTP 500: " \
           "injected fault 500" in ret["comment"]
    assert "create kong route web failed" in ret["comment"]
    # What was done before the failure is reported as changed.
    assert "kong service web" in ret["changes"]["web"]
    assert "kong route web" not in ret["changes"]["web"]

    kong_sim.faults.clear()
    ret = platform.apply()
    assert ret["result"] is True, ret["comment"]
    assert list(ret["changes"]["web"]) == ["kong route web"]


def test_a_registry_that_is_down_gives_a_clear_error(platform, instances):
    down = f"http://127.0.0.1:{free_port()}"
    platform.write_pillar(web_service(instances, listener_port()), vulcand={"url": down})
    ret = platform.apply()
    assert ret["result"] is False
    assert f"vulcand: GET {down}/v2/" in ret["comment"] and "failed" in ret["comment"]
    assert platform.consul_services() == {}


def test_objects_not_created_by_the_project_survive_every_clean_up(platform, instances):
    # Someone else's objects: a Consul service of the formulas, a hand-made vulcand backend
    # and Kong service, and a service the Marathon engine registered.
    platform.consul.request("PUT", "/v1/agent/service/register",
                            json={"Name": "mesos", "Port": 5050})
    platform.consul.request("PUT", "/v1/agent/service/register", json={
        "Name": "shop", "Port": 10005, "Meta": {**OURS, "source": "marathon"}})
    requests.post(f"{platform.vulcand.url}/v2/backends",
                  json={"Backend": {"Id": "legacy", "Type": "http"}}, timeout=10)
    requests.put(f"{platform.kong.admin_url}/services/legacy",
                 json={"url": "http://legacy.example:80"}, timeout=10)

    services = {**web_service(instances, listener_port()), "shop": {"port": 10005},
                "legacy": {"port": 10006}, "mesos": {"absent": True}}
    platform.write_pillar(services)
    ret = platform.apply()
    assert ret["result"] is False
    assert ret["changes"] == {}
    assert "service 'shop': refusing to take over objects that are not ours: " \
           "consul service shop exists and is registered by showcase/marathon" in ret["comment"]
    assert "kong service legacy exists and is not registered by Salt" in ret["comment"]
    assert "vulcand backend legacy exists and is not registered by showcase/pillar" \
        in ret["comment"]

    platform.write_pillar({**web_service(instances, listener_port()), "mesos": {"absent": True}})
    assert platform.apply()["result"] is True
    services.pop("mesos")
    platform.write_pillar(services)
    ret = platform.apply("services.clean")
    assert ret["result"] is True, ret["comment"]
    assert list(ret["changes"]) == ["web"]
    assert sorted(platform.consul_services()) == ["mesos", "shop"]
    assert platform.vulcand_ids("backends") == ["legacy"]
    assert platform.kong_names("services") == ["legacy"]


def wait_for_running_tasks(marathon, app_id, count):
    """The app's tasks once ``count`` of them run (Marathon deploys asynchronously)."""
    for _ in range(200):
        app = requests.get(f"{marathon.url}/v2/apps{app_id}", timeout=10).json()["app"]
        running = [task for task in app["tasks"] if task["state"] == "TASK_RUNNING"]
        if len(running) == count:
            return running
        time.sleep(0.05)
    raise AssertionError(f"{app_id} never had {count} running tasks: {app['tasks']}")


def test_marathon_app_tasks_are_the_instances(platform, marathon_clean):
    reply = requests.post(f"{marathon_clean.url}/v2/apps", timeout=10,
                          json={"id": "/web", "cmd": "serve", "instances": 2})
    assert reply.status_code == 201, reply.text
    tasks = wait_for_running_tasks(marathon_clean, "/web", 2)

    platform.write_pillar({"web": {"port": listener_port(), "marathon_app": "/web"}},
                          marathon={"url": marathon_clean.url})
    ret = platform.apply()
    assert ret["result"] is True, ret["comment"]
    assert sorted(platform.vulcand_servers().values()) == sorted(
        f"http://{task['host']}:{task['ports'][0]}" for task in tasks)
    assert len(platform.through_gateway(4)) == 2
