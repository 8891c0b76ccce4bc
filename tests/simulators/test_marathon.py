"""The Marathon simulator against reference §4: apps, tasks, health checks and events."""

import http.client
import json
import pathlib
import re
import socket
import time
import urllib.parse

import pytest
import requests

from simulators.marathon import MarathonSimulator

SEED_APP = json.loads((pathlib.Path(__file__).resolve().parents[2] / "specs" / "app.json").read_text())
CMD_APP = {"id": "/cmd-app", "cmd": "serve", "instances": 1}
HEALTH_CHECKED = {**CMD_APP, "id": "/checked", "healthChecks": [{"protocol": "HTTP", "path": "/health", "gracePeriodSeconds": 0, "maxConsecutiveFailures": 0}]}


@pytest.fixture
def api(marathon_clean):
    session = requests.Session()

    def call(method, path, body=None, **kwargs):
        return session.request(method, f"{marathon_clean.url}{path}", json=body, timeout=10, **kwargs)

    return call


def deployed(sim, api, app):
    """POST ``app`` and wait for its deployment to finish."""
    assert api("POST", "/v2/apps", app).status_code == 201
    assert sim.wait_for_deployments()
    return api("GET", f"/v2/apps{app['id']}").json()["app"]


def answer_of(task):
    return requests.get(f"http://127.0.0.1:{task['ports'][0]}/", timeout=5).json()["instance"]


class EventStream:
    """A raw SSE connection, to check the exact bytes Marathon's framing puts on the wire."""

    def __init__(self, url, event_types=(), accept="text/event-stream"):
        parsed = urllib.parse.urlsplit(url)
        self.connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=5)
        query = urllib.parse.urlencode([("event_type", t) for t in event_types])
        self.connection.request("GET", "/v2/events" + (f"?{query}" if query else ""), headers={"Accept": accept})
        self.response = self.connection.getresponse()
        self.buffer = b""

    def frames(self, count):
        """The next ``count`` frames (an event, or b"\\r\\n" for a heartbeat), raw."""
        frames = []
        while len(frames) < count:
            if self.buffer.startswith(b"\r\n"):
                frames.append(b"\r\n")
                self.buffer = self.buffer[2:]
                continue
            head, separator, rest = self.buffer.partition(b"\r\n\r\n")
            if separator:
                frames.append(head + separator)
                self.buffer = rest
                continue
            chunk = self.response.read1(65536)
            if not chunk:
                raise EOFError(f"stream closed after {frames!r}")
            self.buffer += chunk
        return frames

    def events(self, count):
        """The next ``count`` events as (type, data), skipping heartbeats."""
        events = []
        while len(events) < count:
            frame = self.frames(1)[0]
            if frame != b"\r\n":
                event_line, data_line = frame.decode().split("\r\n")[:2]
                events.append((event_line[len("event: "):], json.loads(data_line[len("data: "):])))
        return events

    def close(self):
        self.connection.close()


@pytest.fixture
def stream(marathon_sim):
    streams = []

    def open_stream(*event_types, **kwargs):
        streams.append(EventStream(marathon_sim.url, event_types, **kwargs))
        if streams[-1].response.status == 200:
            assert streams[-1].events(1)[0][0] == "event_stream_attached"
        return streams[-1]

    yield open_stream
    for opened in streams:
        opened.close()


def test_seed_app_is_accepted_and_normalised(api, marathon_sim):
    response = api("POST", "/v2/apps", SEED_APP)
    assert response.status_code == 201
    assert response.headers["Location"].endswith("/v2/apps/web")
    app = response.json()
    assert response.headers["Marathon-Deployment-Id"] == app["deployments"][0]["id"]
    assert app["container"]["docker"] == {"image": "lawouach/cherrypy-docker-hello-world", "forcePullImage": False, "privileged": False,
                                          "parameters": [{"key": "hostname", "value": "web.service.consul"}]}
    assert [(m["containerPort"], m["hostPort"], m["protocol"]) for m in app["container"]["portMappings"]] == [(8080, 0, "tcp")]
    assert app["container"]["portMappings"][0]["servicePort"] >= 10000
    assert app["networks"] == [{"mode": "container/bridge"}]
    assert (app["tasksStaged"], app["tasksRunning"], app["tasksHealthy"], app["tasksUnhealthy"]) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    "setup, method, path, body, status, reply",
    [
        ([CMD_APP], "POST", "/v2/apps", CMD_APP, 409, {"message": "An app with id [/cmd-app] already exists."}),
        ([], "POST", "/v2/apps", {"id": "/x"}, 422, {"message": "Object is not valid", "details": [{"path": "/", "errors": [
            "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."]}]}),
        ([], "POST", "/v2/apps", {"id": 5, "cmd": "x"}, 400, {"message": "Invalid JSON", "details": [{"path": "/id", "errors": ["error.expected.jsstring"]}]}),
        ([], "POST", "/v2/apps", {"id": "/x", "cmd": "x", "instances": -1}, 422, {"message": "Object is not valid", "details": [
            {"path": "/instances", "errors": ["got -1, expected 0 or more"]}]}),
        ([], "GET", "/v2/apps/missing", None, 404, {"message": "App '/missing' does not exist"}),
        ([], "DELETE", "/v2/apps/missing", None, 404, {"message": "App '/missing' does not exist"}),
        ([], "PATCH", "/v2/apps/missing", {"instances": 2}, 404, {"message": "App '/missing' does not exist"}),
        ([CMD_APP], "DELETE", "/v2/apps/cmd-app/tasks/nope", None, 404, {"message": "Task 'nope' does not exist"}),
        ([], "GET", "/v2/apps/missing/tasks", None, 404, {"message": "App '/missing' does not exist"}),
    ],
)
def test_error_replies(api, marathon_sim, setup, method, path, body, status, reply):
    for app in setup:
        deployed(marathon_sim, api, app)
    response = api(method, path, body)
    assert (response.status_code, response.json()) == (status, reply)


def test_invalid_id_is_a_validation_error(api):
    response = api("POST", "/v2/apps", {"id": "/Bad_Id", "cmd": "x"})
    assert response.status_code == 422
    assert response.json()["details"][0]["path"] == "/id"


def test_put_creates_a_missing_app(api, marathon_sim):
    response = api("PUT", "/v2/apps/new-app", {"cmd": "x"})
    assert response.status_code == 201
    assert response.headers["Marathon-Deployment-Id"] == response.json()["deploymentId"]
    assert marathon_sim.wait_for_deployments()
    assert api("GET", "/v2/apps/new-app").json()["app"]["tasksRunning"] == 1


def test_scaling_runs_real_tasks_and_stops_them(api, marathon_sim):
    deployed(marathon_sim, api, CMD_APP)
    assert api("PUT", "/v2/apps/cmd-app", {"instances": 3}).status_code == 200
    assert marathon_sim.wait_for_deployments()
    tasks = api("GET", "/v2/apps/cmd-app/tasks").json()["tasks"]
    assert sorted(answer_of(task) for task in tasks) == sorted(task["id"] for task in tasks)
    assert {task["state"] for task in tasks} == {"TASK_RUNNING"}
    api("PUT", "/v2/apps/cmd-app", {"instances": 1})
    assert marathon_sim.wait_for_deployments()
    remaining = api("GET", "/v2/apps/cmd-app/tasks").json()["tasks"]
    assert len(remaining) == 1
    for stopped in [task for task in tasks if task["id"] != remaining[0]["id"]]:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", stopped["ports"][0]), timeout=2).close()


def test_update_during_a_deployment_is_locked_unless_forced(api, marathon_sim):
    api("POST", "/v2/apps", CMD_APP)
    locked = api("PUT", "/v2/apps/cmd-app", {"instances": 2})
    assert locked.status_code == 409
    assert locked.json()["deployments"] == api("GET", "/v2/apps/cmd-app").json()["app"]["deployments"]
    assert api("PUT", "/v2/apps/cmd-app", {"instances": 2}, params={"force": "true"}).status_code == 200
    assert marathon_sim.wait_for_deployments()
    assert api("GET", "/v2/apps/cmd-app").json()["app"]["tasksRunning"] == 2


@pytest.mark.parametrize(
    "selector, expected",
    [("team==a", ["/one"]), ("team!=a", ["/two"]), ("team", ["/one", "/two"]), ("team==a,tier==web", ["/one"]), ("tier==db", [])],
)
def test_label_selector(api, marathon_sim, selector, expected):
    api("POST", "/v2/apps", {**CMD_APP, "id": "/one", "labels": {"team": "a", "tier": "web"}})
    api("POST", "/v2/apps", {**CMD_APP, "id": "/two", "labels": {"team": "b"}})
    apps = api("GET", "/v2/apps", params={"label": selector}).json()["apps"]
    assert sorted(app["id"] for app in apps) == expected


def test_embed_tasks_in_the_app_list(api, marathon_sim):
    deployed(marathon_sim, api, CMD_APP)
    assert "tasks" not in api("GET", "/v2/apps").json()["apps"][0]
    embedded = api("GET", "/v2/apps", params={"embed": "apps.tasks"}).json()["apps"][0]["tasks"]
    assert embedded == api("GET", "/v2/tasks").json()["tasks"]


def test_killed_task_is_replaced_unless_scaled(api, marathon_sim):
    first = deployed(marathon_sim, api, {**CMD_APP, "instances": 2})["tasks"][0]["id"]
    killed = api("DELETE", f"/v2/apps/cmd-app/tasks/{first}")
    assert killed.json()["task"]["id"] == first
    assert wait_for_app(api, "/cmd-app", lambda app: app["tasksRunning"] == 2 and first not in task_ids(app))
    second = api("GET", "/v2/apps/cmd-app/tasks").json()["tasks"][0]["id"]
    scaled = api("DELETE", f"/v2/apps/cmd-app/tasks/{second}", params={"scale": "true"})
    assert set(scaled.json()) == {"version", "deploymentId"}
    assert marathon_sim.wait_for_deployments()
    app = api("GET", "/v2/apps/cmd-app").json()["app"]
    assert app["instances"] == 1
    assert second not in [task["id"] for task in app["tasks"]]


def test_delete_app_stops_its_tasks(api, marathon_sim, stream):
    task = deployed(marathon_sim, api, CMD_APP)["tasks"][0]
    events = stream("app_terminated_event")
    assert set(api("DELETE", "/v2/apps/cmd-app").json()) == {"version", "deploymentId"}
    ((event_type, data),) = events.events(1)
    assert (event_type, data["eventType"], data["appId"]) == ("app_terminated_event", "app_terminated_event", "/cmd-app")
    assert api("GET", "/v2/apps").json() == {"apps": []}
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", task["ports"][0]), timeout=2).close()


@pytest.mark.parametrize("task_id_format, pattern", [("instance", r"^app-x\.instance-[0-9a-f-]{36}\._app\.1$"), ("legacy", r"^app-x\.[0-9a-f-]{36}$")])
def test_task_id_formats(task_id_format, pattern):
    with MarathonSimulator(task_id_format=task_id_format, backed_tasks=False) as sim:
        requests.post(f"{sim.url}/v2/apps", json={**CMD_APP, "id": "/app-x"}, timeout=5)
        assert sim.wait_for_deployments()
        (task,) = requests.get(f"{sim.url}/v2/tasks", timeout=5).json()["tasks"]
    assert re.match(pattern, task["id"])


def test_health_check_results(api, marathon_sim):
    assert "healthCheckResults" not in deployed(marathon_sim, api, CMD_APP)["tasks"][0]
    task = deployed(marathon_sim, api, HEALTH_CHECKED)["tasks"][0]
    (result,) = task["healthCheckResults"]
    assert (result["alive"], result["consecutiveFailures"], result["instanceId"]) == (True, 0, task["id"].rsplit("._app.1", 1)[0])
    marathon_sim.set_task_healthy(task["id"], False)
    assert wait_for_app(api, "/checked", lambda app: app["tasksUnhealthy"] == 1)
    (result,) = api("GET", "/v2/apps/checked/tasks").json()["tasks"][0]["healthCheckResults"]
    assert (result["alive"], result["lastFailureCause"]) == (False, "503")


def test_health_checks_added_to_a_settled_app_are_run(api, marathon_sim):
    # Ticks probe only the apps that had health checks when the apps last settled.
    deployed(marathon_sim, api, {**CMD_APP, "id": "/checked"})
    assert api("PUT", "/v2/apps/checked", {"healthChecks": HEALTH_CHECKED["healthChecks"]},
               params={"force": "true"}).status_code == 200
    assert marathon_sim.wait_for_deployments()
    assert wait_for_app(api, "/checked", lambda app: app["tasksHealthy"] == 1)
    (task,) = api("GET", "/v2/apps/checked/tasks").json()["tasks"]
    assert [result["alive"] for result in task["healthCheckResults"]] == [True]


def test_health_results_are_empty_after_a_leader_change(api, marathon_sim):
    deployed(marathon_sim, api, HEALTH_CHECKED)
    marathon_sim.leader_change(health_blackout_seconds=60)
    app = api("GET", "/v2/apps/checked").json()["app"]
    assert app["tasks"][0]["healthCheckResults"] == []
    assert (app["tasksHealthy"], app["tasksUnhealthy"]) == (0, 0)


def wait_for_app(api, app_id, condition, attempts=250):
    """Poll the app until ``condition`` holds (changes outside deployments are asynchronous)."""
    for _ in range(attempts):
        if condition(api("GET", f"/v2/apps{app_id}").json()["app"]):
            return True
        time.sleep(0.02)
    return False


def task_ids(app):
    return [task["id"] for task in app["tasks"]]


def test_events_require_the_event_stream_accept_header(stream):
    assert stream(accept="application/json").response.status == 405


def test_event_stream_framing_and_lifecycle_events(api, marathon_sim, stream):
    events = stream()
    assert events.response.getheader("Content-Type") == "text/event-stream"
    api("POST", "/v2/apps", CMD_APP)
    frame = events.frames(1)[0]
    assert frame.startswith(b"event: api_post_event\r\ndata: {") and frame.endswith(b"}\r\n\r\n")
    received = events.events(8)
    assert [event_type for event_type, _ in received] == [
        "group_change_success", "deployment_info", "status_update_event", "instance_changed_event",
        "status_update_event", "instance_changed_event", "deployment_step_success", "deployment_success",
    ]
    assert [data["eventType"] for _, data in received] == [event_type for event_type, _ in received]
    staging, running = received[2][1], received[4][1]
    assert (staging["taskStatus"], running["taskStatus"]) == ("TASK_STAGING", "TASK_RUNNING")
    assert staging["appId"] == "/cmd-app" and staging["ports"] == running["ports"]
    assert (received[3][1]["condition"], received[5][1]["condition"]) == ("Staging", "Running")


def test_event_type_filter_and_heartbeat(api, marathon_sim, stream):
    events = stream("status_update_event")
    api("POST", "/v2/apps", CMD_APP)
    received = events.events(2)
    assert [(t, d["taskStatus"]) for t, d in received] == [("status_update_event", "TASK_STAGING"), ("status_update_event", "TASK_RUNNING")]
    assert events.frames(1) == [b"\r\n"]  # nothing else is sent, so the next frame is a heartbeat


def test_standby_redirects_the_event_stream_to_the_leader(marathon_sim):
    marathon_sim.set_standby("http://127.0.0.1:1")
    response = requests.get(f"{marathon_sim.url}/v2/events?event_type=app_terminated_event", allow_redirects=False,
                            headers={"Accept": "text/event-stream"}, timeout=5)
    assert response.status_code == 302
    assert response.headers["Location"] == "http://127.0.0.1:1/v2/events?event_type=app_terminated_event"
    assert response.headers["X-Marathon-Leader"] == "http://127.0.0.1:1"


def test_cut_streams_closes_every_stream(marathon_sim, stream):
    events = stream()
    marathon_sim.cut_streams()
    with pytest.raises(EOFError):
        events.frames(1)


def test_cut_streams_mid_burst(api, marathon_sim, stream):
    events = stream()
    marathon_sim.cut_streams(after_events=2)
    api("POST", "/v2/apps", CMD_APP)
    assert len(events.events(2)) == 2
    with pytest.raises(EOFError):
        events.frames(1)


@pytest.mark.parametrize("faults, expected", [
    ({"drop": 1.0}, []),
    ({"duplicate": 1.0}, ["api_post_event", "api_post_event"]),
])
def test_event_faults(api, marathon_sim, stream, faults, expected):
    events = stream("api_post_event")
    marathon_sim.set_event_faults(**faults)
    api("POST", "/v2/apps", CMD_APP)
    received = [t for t, _ in events.events(len(expected))] if expected else []
    assert received == expected
    assert events.frames(1) == [b"\r\n"]


def test_reordered_events_arrive_after_the_next_one(api, marathon_sim, stream):
    events = stream("api_post_event", "group_change_success")
    marathon_sim.set_event_faults(reorder=1.0)
    api("POST", "/v2/apps", CMD_APP)
    assert [t for t, _ in events.events(2)] == ["group_change_success", "api_post_event"]


def test_slow_consumer_is_disconnected(api, marathon_sim, stream):
    marathon_sim.max_outstanding_events = 3
    try:
        events = stream("api_post_event")
        # Each api_post_event carries the definition: megabytes soon fill the socket buffers.
        big_app = {**CMD_APP, "env": {"PAD": "x" * 300_000}}
        for instances in range(30):
            api("PUT", "/v2/apps/cmd-app", {**big_app, "instances": instances % 2}, params={"force": "true"})
        with pytest.raises(EOFError):
            events.frames(10_000)
    finally:
        marathon_sim.max_outstanding_events = 1024


def test_leader_endpoint(api, marathon):
    assert api("GET", "/v2/leader").json() == {"leader": urllib.parse.urlsplit(marathon.url).netloc}
