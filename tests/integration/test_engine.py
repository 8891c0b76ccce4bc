"""The Marathon registrar engine, run in-process against the simulators (or real servers).

Each test starts the engine (:class:`marathon_registrar.Registrar`) in a thread, drives Marathon
through its API, and waits for Consul, vulcand and Kong to hold exactly the running (healthy)
tasks. Waits poll with a generous deadline: these tests check correctness, not speed (that is
bench/sync.py's job).
"""

import functools
import pathlib
import threading
import time

import pytest
import requests

from simulators.marathon import MarathonSimulator
from tests.fixtures.marathon import MarathonHandle
from tests.fixtures import waiting
from tests.fixtures.ports import listener_port

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

import marathon_registrar
import registrationutil

pytestmark = pytest.mark.slow

TIMEOUT = 10
WAIT = 30  # seconds before a convergence wait gives up
RESYNC = 2.0  # resync period of the engines under test


def engine_platform(consul, kong, vulcand, marathon_url):
    """The engine's settings, pointed at the test registries and ``marathon_url``."""
    settings = {
        "platform:consul:url": consul.url,
        "platform:consul:token": consul.token or "",
        **vulcand.flat_settings(),
        "platform:kong:admin_url": kong.admin_url,
        "platform:marathon:url": marathon_url,
        "platform:cluster": "enginetest",
    }
    return registrationutil.configured(lambda key, default=None: settings.get(key, default),
                                       marathon_registrar.SOURCE)


@pytest.fixture
def platform(consul_clean, kong_clean, vulcand_clean, marathon_clean):
    return engine_platform(consul_clean, kong_clean, vulcand_clean, marathon_clean.url)


class Engine:
    """One registrar running in a thread, with the Salt events it fired."""

    def __init__(self, platform, lock=None, **options):
        self.settings = marathon_registrar.Settings(**{"resync_interval": RESYNC, **options})
        self.events = []  # (tag, data)
        self.registrar = marathon_registrar.Registrar(
            self.settings, platform, lambda data, tag: self.events.append((tag, data)), lock
        )
        self.thread = threading.Thread(target=self.registrar.run, daemon=True)
        self.thread.start()

    def stop(self):
        self.registrar.stop()
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "the engine did not stop"

    def tags(self, prefix=""):
        wanted = f"marathon/registrar/{prefix}"
        return [tag for tag, _ in list(self.events) if tag.startswith(wanted)]


@pytest.fixture
def start_engine(platform):
    engines = []

    def start(**options):
        engine = Engine(platform, **options)
        engines.append(engine)
        return engine

    yield start
    for engine in engines:
        if engine.thread.is_alive():
            engine.stop()


# -- Marathon ---------------------------------------------------------------------------------


class Apps:
    """Marathon driven through its REST API, as an operator would."""

    def __init__(self, marathon):
        self.url = marathon.url
        self.sim = marathon.sim

    def create(self, app_id, instances, port, health_checks=True, **labels):
        definition = {
            "id": app_id,
            "cmd": "python3 -m simulators.webapp",
            "instances": instances,
            "labels": {"registry.service": app_id.strip("/"), "registry.port": str(port), **labels},
            "healthChecks": [{"protocol": "HTTP", "path": "/health"}] if health_checks else [],
        }
        requests.post(f"{self.url}/v2/apps", json=definition, timeout=TIMEOUT).raise_for_status()

    def scale(self, app_id, instances):
        requests.put(f"{self.url}/v2/apps{app_id}", params={"force": "true"},
                     json={"instances": instances}, timeout=TIMEOUT).raise_for_status()

    def kill(self, app_id, task_id):
        requests.delete(f"{self.url}/v2/apps{app_id}/tasks/{task_id}",
                        timeout=TIMEOUT).raise_for_status()

    def delete(self, app_id):
        requests.delete(f"{self.url}/v2/apps{app_id}", params={"force": "true"},
                        timeout=TIMEOUT).raise_for_status()

    def tasks(self, app_id):
        reply = requests.get(f"{self.url}/v2/apps{app_id}/tasks", timeout=TIMEOUT)
        reply.raise_for_status()
        return reply.json()["tasks"]

    def serving(self, app_id):
        """{instance id: server URL} of the running tasks that pass every health check."""
        serving = {}
        for task in self.tasks(app_id):
            results = task.get("healthCheckResults")  # absent when the app has no checks
            healthy = results is None or (results and all(result["alive"] for result in results))
            if task["state"] == "TASK_RUNNING" and healthy:
                instance_id = task["id"].rsplit(".", 2)[0]  # <app>.instance-<uuid>._app.<n>
                serving[instance_id] = f"http://{task['host']}:{task['ports'][0]}"
        return serving

    def settle(self):
        if self.sim is not None:
            assert self.sim.wait_for_deployments(WAIT)


@pytest.fixture
def apps(platform, marathon_clean):
    return Apps(marathon_clean)


# -- registries -------------------------------------------------------------------------------


class Registered:
    """What the three registries hold for a service, read through their APIs."""

    def __init__(self, consul, vulcand, kong):
        self.consul, self.vulcand, self.kong = consul, vulcand, kong

    def servers(self, service):
        reply = requests.get(f"{self.vulcand.url}/v2/backends/{service}/servers", timeout=TIMEOUT)
        reply.raise_for_status()
        return {server["Id"]: server["URL"] for server in reply.json().get("Servers") or []}

    def consul_services(self):
        headers = {"X-Consul-Token": self.consul.token} if self.consul.token else {}
        reply = requests.get(f"{self.consul.url}/v1/agent/services", headers=headers,
                             timeout=TIMEOUT)
        reply.raise_for_status()
        return reply.json()

    def kong_names(self, collection):
        reply = requests.get(f"{self.kong.admin_url}/{collection}", timeout=TIMEOUT)
        reply.raise_for_status()
        return [entity["name"] for entity in reply.json()["data"]]

    def service_everywhere(self, service):
        """Whether Consul, vulcand (backend, frontend, listener) and Kong all have ``service``."""
        consul = any(entry["Service"] == service for entry in self.consul_services().values())
        vulcand = all(
            requests.get(f"{self.vulcand.url}/v2/{kind}/{service}", timeout=TIMEOUT).ok
            for kind in ("backends", "frontends", "listeners")
        )
        kong = service in self.kong_names("services") and service in self.kong_names("routes")
        return consul, vulcand, kong

    def route_through_kong(self, service, requests_count):
        """The task ids that answered ``requests_count`` requests sent through Kong's proxy."""
        answered = set()
        for _ in range(requests_count):
            reply = requests.get(f"{self.kong.proxy_url}/", timeout=TIMEOUT,
                                 headers={"Host": f"{service}.service.consul"})
            assert reply.status_code == 200, reply.text
            answered.add(reply.headers["X-Instance"])
        return answered


@pytest.fixture
def registered(consul, vulcand, kong):
    return Registered(consul, vulcand, kong)


wait_for = functools.partial(waiting.wait_for, timeout=WAIT)


def wait_converged(apps, registered, app_id, service, expected_count=None):
    """Wait until vulcand's servers of ``service`` are exactly the app's serving tasks."""

    def converged():
        serving = apps.serving(app_id)
        if expected_count is not None and len(serving) != expected_count:
            return None
        return serving if registered.servers(service) == serving else None

    return wait_for(converged, f"{service} to have exactly the serving tasks of {app_id}")


# -- the done-criteria of the issue -----------------------------------------------------------


def test_a_new_labelled_app_becomes_routable_through_kong(apps, registered, start_engine):
    engine = start_engine()
    apps.create("/web", 3, listener_port())
    serving = wait_converged(apps, registered, "/web", "web", expected_count=3)

    assert registered.service_everywhere("web") == (True, True, True)
    answered = registered.route_through_kong("web", 12)
    assert {task_id.rsplit(".", 2)[0] for task_id in answered} == set(serving)
    assert engine.tags("change/web"), "each change is announced as a Salt event"


def test_scaling_up_and_down_registers_exactly_the_running_tasks(apps, registered, start_engine):
    start_engine()
    apps.create("/web", 3, listener_port())
    wait_converged(apps, registered, "/web", "web", expected_count=3)

    apps.scale("/web", 5)
    five = wait_converged(apps, registered, "/web", "web", expected_count=5)
    apps.scale("/web", 2)
    two = wait_converged(apps, registered, "/web", "web", expected_count=2)
    assert set(two) < set(five)


def test_a_killed_task_is_removed(apps, registered, start_engine):
    start_engine()
    apps.create("/web", 3, listener_port())
    before = wait_converged(apps, registered, "/web", "web", expected_count=3)
    victim = next(task["id"] for task in apps.tasks("/web"))

    apps.kill("/web", victim)
    wait_for(lambda: victim.rsplit(".", 2)[0] not in registered.servers("web"),
             "the killed task to be deregistered")
    after = wait_converged(apps, registered, "/web", "web", expected_count=3)  # its replacement
    assert set(after) & set(before) == set(before) - {victim.rsplit(".", 2)[0]}


def test_an_unhealthy_task_is_removed_and_comes_back_when_healthy(
    apps, registered, start_engine, marathon_sim
):
    start_engine()
    apps.create("/web", 3, listener_port())
    wait_converged(apps, registered, "/web", "web", expected_count=3)
    sick = apps.tasks("/web")[0]["id"]
    instance = sick.rsplit(".", 2)[0]

    marathon_sim.set_task_healthy(sick, False)
    wait_for(lambda: instance not in registered.servers("web"), "the unhealthy task to go")


def test_apps_without_health_checks_register_their_running_tasks(apps, registered, start_engine):
    start_engine()
    apps.create("/web", 2, listener_port(), health_checks=False)
    wait_converged(apps, registered, "/web", "web", expected_count=2)


def test_unlabelled_apps_are_left_alone(apps, registered, start_engine):
    engine = start_engine()
    requests.post(f"{apps.url}/v2/apps", json={"id": "/plain", "cmd": "x", "instances": 1},
                  timeout=TIMEOUT).raise_for_status()
    apps.create("/web", 1, listener_port())
    wait_converged(apps, registered, "/web", "web", expected_count=1)
    assert "plain" not in registered.consul_services()
    assert not engine.tags("change/plain")


def test_a_deleted_app_is_deregistered_everywhere(apps, registered, start_engine):
    start_engine()
    apps.create("/web", 2, listener_port())
    wait_converged(apps, registered, "/web", "web", expected_count=2)

    apps.delete("/web")
    wait_for(lambda: registered.service_everywhere("web") == (False, False, False),
             "web to be gone from Consul, vulcand and Kong")


def test_with_a_fifth_of_events_dropped_everything_converges_within_a_resync_period(
    apps, registered, start_engine, marathon_sim
):
    marathon_sim.set_event_faults(drop=0.2, duplicate=0.1, reorder=0.1, seed=7)
    start_engine()
    apps.create("/web", 3, listener_port())
    apps.create("/api", 2, listener_port())
    apps.settle()
    apps.scale("/web", 6)
    apps.scale("/api", 1)
    apps.settle()
    settled = time.monotonic()
    wait_converged(apps, registered, "/web", "web", expected_count=6)
    wait_converged(apps, registered, "/api", "api", expected_count=1)
    # One resync period after Marathon settled, plus the resync's own duration.
    assert time.monotonic() - settled < RESYNC + 5


def test_a_stream_cut_mid_burst_still_ends_converged(
    apps, registered, start_engine, marathon_sim
):
    engine = start_engine()
    apps.create("/web", 2, listener_port())
    wait_converged(apps, registered, "/web", "web", expected_count=2)

    marathon_sim.cut_streams(after_events=3)
    apps.scale("/web", 7)
    wait_converged(apps, registered, "/web", "web", expected_count=7)
    assert len(engine.tags("connected")) >= 2, "the engine reconnected"


def test_a_restarted_engine_leaves_no_duplicates_and_no_leaks(apps, registered, start_engine):
    first = start_engine()
    apps.create("/web", 3, listener_port())
    apps.create("/api", 1, listener_port())
    wait_converged(apps, registered, "/web", "web", expected_count=3)
    wait_converged(apps, registered, "/api", "api", expected_count=1)
    first.stop()

    # Changes while no engine runs: a scale-up, a kill, and an app deleted.
    apps.scale("/web", 4)
    apps.kill("/web", apps.tasks("/web")[0]["id"])
    apps.delete("/api")
    apps.settle()

    start_engine()
    wait_converged(apps, registered, "/web", "web", expected_count=4)
    wait_for(lambda: registered.service_everywhere("api") == (False, False, False),
             "the deleted app's service to be removed")
    services = [entry["Service"] for entry in registered.consul_services().values()]
    assert services.count("web") == 1
    assert registered.kong_names("services").count("web") == 1
    assert registered.kong_names("routes").count("web") == 1


def test_a_leader_change_does_not_deregister_healthy_tasks(
    apps, registered, start_engine, marathon_sim
):
    engine = start_engine(health_grace=30)
    apps.create("/web", 3, listener_port())
    serving = wait_converged(apps, registered, "/web", "web", expected_count=3)
    resyncs = engine.registrar.resyncs

    marathon_sim.leader_change(health_blackout_seconds=3)
    # During the blackout every task has empty health results; the engine reconnects and
    # resyncs, and must keep the tasks it knows healthy.
    wait_for(lambda: engine.registrar.resyncs > resyncs, "a resync during the blackout")
    assert all(not task.get("healthCheckResults") for task in apps.tasks("/web"))
    assert registered.servers("web") == serving
    wait_converged(apps, registered, "/web", "web", expected_count=3)


def test_services_from_pillar_and_from_the_engine_never_fight(
    apps, registered, start_engine, platform
):
    pillar_owner = registrationutil.Owner(platform.owner.cluster, "pillar")
    pillar_port = listener_port()
    legacy = registrationutil.ServiceSpec(
        "legacy", pillar_port, instances={"one": ("127.0.0.1", 9)}
    )
    outcome = registrationutil.converge(platform.registries, pillar_owner, {"legacy": legacy})
    assert outcome.result, outcome.comment()

    engine = start_engine()
    apps.create("/web", 1, listener_port())
    apps.create("/legacy", 1, listener_port())  # claims the pillar service's name
    wait_converged(apps, registered, "/web", "web", expected_count=1)
    wait_for(lambda: any("refusing" in data["error"] for tag, data in engine.events
                         if tag.endswith("/error")), "the conflict to be reported")
    assert registered.servers("legacy") == {"one": "http://127.0.0.1:9"}
    assert registered.service_everywhere("legacy") == (True, True, True)
    # Reported when it appeared, not again on every resync; each resync counts it.
    resyncs = engine.registrar.resyncs
    wait_for(lambda: engine.registrar.resyncs >= resyncs + 2, "two more resyncs")
    conflicts = [data for tag, data in list(engine.events)
                 if tag.endswith("/error") and "refusing" in data["error"]]
    assert len(conflicts) == 1
    assert [data["conflicts"] for tag, data in list(engine.events)
            if tag.endswith("/resync")][-2:] == [1, 1]


def test_the_engine_starts_with_one_resync(apps, registered, start_engine):
    apps.create("/web", 1, listener_port())
    engine = start_engine(resync_interval=60)
    wait_converged(apps, registered, "/web", "web", expected_count=1)
    assert engine.tags("connected")
    time.sleep(1.0)  # a second resync would follow the first at once
    assert engine.registrar.resyncs == 1


def test_an_app_with_a_reserved_name_or_a_platform_port_is_registered_nowhere(
    apps, registered, start_engine
):
    engine = start_engine()
    apps.create("/kong", 1, listener_port())  # registry.service: kong
    apps.create("/api", 1, 8080, **{"registry.service": "api"})  # Marathon's own port
    apps.create("/web", 1, listener_port())
    wait_converged(apps, registered, "/web", "web", expected_count=1)

    def reported_invalid():
        return {data["app"]: data for tag, data in list(engine.events)
                if tag == "marathon/registrar/invalid"}

    wait_for(lambda: reported_invalid().keys() >= {"/kong", "/api"}, "both apps reported")
    invalid = reported_invalid()
    assert invalid["/kong"]["reason"].startswith(
        "app /kong: label registry.service: 'kong' is reserved for the platform's own services")
    assert invalid["/api"]["reason"] == (
        "app /api: label registry.port: 8080 is outside the platform's listener ports "
        "10000-11000 (platform:listener_ports)")
    assert sorted(registered.consul_services()) == ["web"]
    assert sorted(registered.kong_names("services")) == ["web"]
    for kind in ("backends", "listeners"):
        ids = [item["Id"] for item in requests.get(
            f"{registered.vulcand.url}/v2/{kind}", timeout=TIMEOUT).json()[kind.capitalize()] or []]
        assert ids == ["web"], (kind, ids)
    assert not [tag for tag in engine.tags("change/") if not tag.endswith("/web")]


def test_a_registry_answering_5xx_is_retried_until_converged(
    apps, registered, start_engine, vulcand_sim
):
    engine = start_engine()
    vulcand_sim.faults.fail(count=None, status=503, path="/servers")
    apps.create("/web", 2, listener_port())
    wait_for(lambda: engine.tags("error"), "the failure to be reported")
    vulcand_sim.faults.clear()
    wait_converged(apps, registered, "/web", "web", expected_count=2)


def test_only_the_lock_holder_acts(apps, registered, start_engine, platform):
    def locked_engine():
        settings = marathon_registrar.Settings(lock_key="registrar-test/leader", lock_ttl=10)
        lock = marathon_registrar.ConsulLock(platform.registries.consul, settings)
        return start_engine(lock=lock)

    first = locked_engine()
    wait_for(lambda: first.tags("lock/acquired"), "the first engine to take the lock")
    second = locked_engine()
    apps.create("/web", 2, listener_port())
    wait_converged(apps, registered, "/web", "web", expected_count=2)
    assert not second.tags(), "the standby engine must not act"

    first.stop()
    wait_for(lambda: second.tags("lock/acquired"), "the standby to take over")
    apps.scale("/web", 3)
    wait_converged(apps, registered, "/web", "web", expected_count=3)


def test_legacy_task_ids_are_registered_too(consul_clean, kong_clean, vulcand_clean, registered):
    """Marathon <= 1.3 task ids (``web.<uuid>``) register like instance ids do."""
    with MarathonSimulator(task_id_format="legacy", health_interval_seconds=0.1) as legacy:
        engine = Engine(engine_platform(consul_clean, kong_clean, vulcand_clean, legacy.url))
        try:
            apps = Apps(MarathonHandle(legacy.url, legacy))
            apps.create("/web", 2, listener_port())
            wait_for(lambda: len(apps.tasks("/web")) == 2, "two tasks")
            expected = {
                task["id"]: f"http://{task['host']}:{task['ports'][0]}"
                for task in apps.tasks("/web")
            }
            assert all(".instance-" not in task_id for task_id in expected)
            wait_for(lambda: registered.servers("web") == expected, "the legacy tasks registered")
        finally:
            engine.stop()
