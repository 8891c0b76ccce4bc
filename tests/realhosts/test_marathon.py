"""Marathon's tasks on the slave hosts, after the highstate: apps deployed to Marathon on
master (the Marathon stand-in) run on the Mesos agents of the slaves (lab stand-ins,
lab/standins/mesos.py), answer from the slaves' addresses and are health-checked across the
hosts; the Marathon engine in the real salt-master on master registers the labelled app
(specs/hello.json) in Consul, vulcand and Kong by itself and follows its scaling."""

import json

import pytest

from lab import image
from tests.fixtures import waiting

pytestmark = pytest.mark.slow

SPECS = image.REPO_ROOT / "specs"
AGENT_PORTS = range(50000, 60001)  # the agents' ports resource (mesos:agent:MESOS_RESOURCES)
WAIT_SECONDS = 90  # the engine repairs a missed event within its 30 s resync


def call(host, method, url, body=None, headers=()):
    """One HTTP request made with curl on ``host``: (status, decoded JSON body or None)."""
    argv = ["curl", "-sS", "-X", method, "-w", "\n%{http_code}", url]
    for header in headers:
        argv += ["-H", header]
    if body is not None:
        argv += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
    done = host.run(argv, input=None if body is None else json.dumps(body))
    text, _, status = done.stdout.rpartition("\n")
    return int(status), (json.loads(text) if text.strip() else None)


def wait_for(condition, what, timeout=WAIT_SECONDS):
    return waiting.wait_for(condition, what, timeout, interval=1)


class Platform:
    """The APIs as an operator on master reaches them."""

    def __init__(self, lab):
        self.lab, self.client = lab, lab.master
        self.marathon = f"http://{lab.master.address}:8080"
        self.consul_token = lab.pillar()["consul"]["acl_token"]

    def marathon_call(self, method, path, body=None):
        return call(self.client, method, self.marathon + path, body)

    def tasks(self, app_id):
        status, body = self.marathon_call("GET", f"/v2/apps/{app_id}")
        return body["app"]["tasks"] if status == 200 else []

    def settled(self, app_id, instances):
        """The app's tasks once it runs ``instances`` of them, healthy, with no deployment."""
        status, body = self.marathon_call("GET", f"/v2/apps/{app_id}")
        app = body["app"]
        checked = bool(app["healthChecks"])
        ready = (not app["deployments"] and app["tasksRunning"] == instances
                 and (not checked or app["tasksHealthy"] == instances))
        return app["tasks"] if ready else None

    def scale(self, app_id, instances):
        status, _ = self.marathon_call("PUT", f"/v2/apps/{app_id}", {"instances": instances})
        assert status == 200, status
        return wait_for(lambda: self.settled(app_id, instances), f"{app_id} runs {instances} healthy tasks")

    def consul_service(self, name):
        status, body = call(self.client, "GET", f"http://{self.lab.master.address}:8500/v1/catalog/service/{name}",
                            headers=[f"X-Consul-Token: {self.consul_token}"])
        assert status == 200, status
        return body

    def vulcand_servers(self, backend):
        """The backend's server URLs ([] for none, or no such backend)."""
        status, body = call(self.client, "GET", f"http://{self.lab.master.address}:8182/v2/backends/{backend}/servers")
        return sorted(server["URL"] for server in body["Servers"] or []) if status == 200 else []

    def kong(self, path):
        status, body = call(self.client, "GET", f"http://{self.lab['kong'].address}:8001{path}")
        return body if status == 200 else None

    def agent_tasks(self, slave):
        status, body = call(self.client, "GET", f"http://{slave.address}:5051/lab/tasks")
        assert status == 200, status
        return {task["id"]: task["ports"] for task in body}


def endpoints(tasks):
    return sorted(f"http://{task['host']}:{task['ports'][0]}" for task in tasks)


@pytest.fixture(scope="module")
def platform(default_lab, applied):
    platform = Platform(default_lab)
    yield platform
    # Leave the cluster as the highstate made it: the apps gone, their registrations and tasks
    # with them (later modules check the listeners and apply the highstate again).
    for app_id in ("hello", "web"):
        platform.marathon_call("DELETE", f"/v2/apps/{app_id}?force=true")
    wait_for(lambda: not platform.consul_service("hello") and not platform.vulcand_servers("hello")
             and platform.kong("/services/hello") is None, "hello is deregistered from Consul, vulcand and Kong")
    for slave in default_lab.by_role("slave"):
        wait_for(lambda slave=slave: not platform.agent_tasks(slave), f"{slave.name} runs no task")


@pytest.fixture(scope="module")
def deployed(platform):
    for spec in ("app.json", "hello.json"):
        status, body = platform.marathon_call("POST", "/v2/apps", json.loads((SPECS / spec).read_text()))
        assert status == 201, (spec, status, body)
    return {
        "web": wait_for(lambda: platform.settled("web", 1), "web runs its task"),
        "hello": wait_for(lambda: platform.settled("hello", 2), "hello runs two healthy tasks"),
    }


def test_tasks_run_on_the_slaves_and_answer_from_their_addresses(default_lab, platform, deployed):
    slaves = {slave.address: slave for slave in default_lab.by_role("slave")}
    _, body = call(platform.client, "GET", f"http://{default_lab.master.address}:5050/master/slaves")
    agent_ids = {agent["hostname"]: agent["id"] for agent in body["slaves"] if agent["active"]}
    assert set(agent_ids) == set(slaves), agent_ids
    tasks = deployed["web"] + deployed["hello"]
    # Two instances of hello land on two agents.
    assert len({task["host"] for task in deployed["hello"]}) == 2, deployed["hello"]
    for task in tasks:
        slave = slaves.get(task["host"])
        assert slave is not None, f"{task['id']} runs on {task['host']}, not on a slave"
        assert task["slaveId"] == agent_ids[task["host"]]
        port = task["ports"][0]
        assert port in AGENT_PORTS, task
        assert platform.agent_tasks(slave)[task["id"]] == task["ports"]
        listening = slave.run(["ss", "-H", "-ltn", f"sport = :{port}"]).stdout.split()
        assert f"{slave.address}:{port}" in listening, (slave.name, listening)
        # Answered across the hosts (from kong) by that task.
        status, answer = call(default_lab["kong"], "GET", f"http://{task['host']}:{port}/")
        assert status == 200 and answer["instance"] == task["id"], answer
    for task in deployed["hello"]:
        assert [result["alive"] for result in task["healthCheckResults"]] == [True], task


def test_the_engine_registers_hello_by_itself(platform, deployed):
    wanted = endpoints(deployed["hello"])
    assert wait_for(lambda: platform.vulcand_servers("hello") == wanted, "vulcand has hello's tasks")
    consul = platform.consul_service("hello")
    assert [(entry["ServicePort"], entry["Address"]) for entry in consul] == [(10001, platform.lab.master.address)]
    route_hosts = [route["hosts"] for route in platform.kong("/services/hello/routes")["data"]]
    assert route_hosts == [["hello.service.consul"]], route_hosts
    # web has no registry labels: left alone.
    assert platform.consul_service("web") == [] and platform.kong("/services/web") is None


def test_health_checks_probe_the_tasks_on_the_slaves(platform, deployed):
    sick = deployed["hello"][0]
    slave = next(host for host in platform.lab.by_role("slave") if host.address == sick["host"])

    def set_failing(failing):
        status, _ = call(platform.client, "PUT", f"http://{slave.address}:5051/lab/tasks/{sick['id']}/failing",
                         {"failing": failing})
        assert status == 204, status

    set_failing(True)
    # Marathon's next probe (every 10 s) finds it failing on the slave; the engine drops it.
    healthy = [task for task in deployed["hello"] if task is not sick]
    wait_for(lambda: platform.vulcand_servers("hello") == endpoints(healthy), "vulcand drops the failing task")
    results = {task["id"]: task.get("healthCheckResults") for task in platform.tasks("hello")}
    assert results[sick["id"]][0]["alive"] is False, results
    set_failing(False)
    # Passing again (or, had its failures reached maxConsecutiveFailures, replaced): registered.
    wait_for(lambda: (tasks := platform.settled("hello", 2)) and platform.vulcand_servers("hello") == endpoints(tasks),
             "vulcand has hello's two healthy tasks again")


def test_registrations_follow_scaling(platform, deployed):
    for instances in (3, 1):
        tasks = platform.scale("hello", instances)
        assert {task["host"] for task in tasks} <= {slave.address for slave in platform.lab.by_role("slave")}
        wait_for(lambda tasks=tasks: platform.vulcand_servers("hello") == endpoints(tasks),
                 f"vulcand has hello's {instances} tasks")
