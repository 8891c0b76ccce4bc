"""Marathon 1.x: apps, tasks, deployments, health checks and the SSE event stream.

The REST API follows reference §4.1-4.4. Every task is real: an instance of the example web app
(:mod:`simulators.webapp`), which answers with its task id, so traffic routed to a task shows
which one served it. Where it runs is the task launcher's choice (``launcher``, see
:class:`LocalTasks`): by default on 127.0.0.1 with a free port; the lab's Marathon stand-in places
tasks on its Mesos agents (lab/standins/mesos.py). A scheduler thread moves the state along as
Marathon and Mesos would: deployments stage tasks, which run ``staging_seconds`` later; tasks
killed, scaled down or deleted with their app are killed by the launcher; a killed task that is
still wanted is replaced; deployments succeed once the app has its instances running (and
healthy, when it has health checks). Health checks probe ``GET <path>`` on the task's host and
port for real.

For tests there are controls Marathon lacks: :meth:`MarathonSimulator.set_task_healthy`,
:attr:`MarathonSimulator.event_faults` (drop, duplicate, reorder and delay events, seeded),
:meth:`MarathonSimulator.cut_streams`, :meth:`MarathonSimulator.leader_change` and
:meth:`MarathonSimulator.set_standby`. ``backed_tasks=False`` gives tasks fake ports and no server
(:class:`UnbackedTasks`), for benchmarks with thousands of tasks.
"""

import copy
import datetime
import functools
import http.client
import itertools
import json
import random
import re
import socket
import threading
import time
import urllib.parse
import uuid
from collections import deque
from dataclasses import dataclass, field

from simulators.base import (
    Abort, BodyError, Response, Simulator, collector_paused, json_response, route, text_response,
)
from simulators.webapp import LOOPBACK, WebApps

APP_ID = r"(?P<app_id>/?[^?]+?)"
ID_SEGMENT = re.compile(r"^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])$")
RESERVED_ID_ENDINGS = ("restart", "tasks", "versions")
FIRST_SERVICE_PORT = 10000
FIRST_FAKE_HOST_PORT = 31000
SSE_TYPE = "text/event-stream"
TICK_SECONDS = 0.02
PROBE_TIMEOUT = 2.0
APP_DEFAULTS = {
    "cmd": None, "args": None, "container": None, "instances": 1, "cpus": 1.0, "mem": 128.0, "disk": 0.0,
    "env": {}, "labels": {}, "constraints": [], "healthChecks": [], "dependencies": [], "requirePorts": False,
    "upgradeStrategy": {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0},
}
HEALTH_CHECK_DEFAULTS = {
    "protocol": "HTTP", "path": "/", "portIndex": 0, "gracePeriodSeconds": 300, "intervalSeconds": 60,
    "timeoutSeconds": 20, "maxConsecutiveFailures": 3, "ignoreHttp1xx": False,
}
CONDITIONS = {
    "TASK_STAGING": "Staging", "TASK_RUNNING": "Running", "TASK_KILLING": "Killing",
    "TASK_KILLED": "Killed", "TASK_FAILED": "Failed",
}
STANDBY_EVENTS_PAGE = "<html><body><h2>HTTP ERROR 405</h2><p>Method Not Allowed</p></body></html>"


def timestamp(at=None):
    """Marathon's time format: ISO 8601, milliseconds, UTC."""
    return _timestamp(time.time() if at is None else at)


@functools.lru_cache(maxsize=100_000)  # task times are formatted again for every listing
def _timestamp(at):
    moment = datetime.datetime.fromtimestamp(at, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _invalid(details, message="Object is not valid"):
    raise Abort(json_response({"message": message, "details": details}, 422))


def _invalid_json(path, error):
    raise Abort(json_response({"message": "Invalid JSON", "details": [{"path": path, "errors": [error]}]}, 400))


def _not_found(message):
    raise Abort(json_response({"message": message}, 404))


def absolute_id(app_id):
    return "/" + app_id.strip("/")


@dataclass
class HealthState:
    """One task's result for one health check, in Marathon's healthCheckResults form."""

    instance_id: str
    alive: bool = False
    consecutive_failures: int = 0
    first_success: str = None
    last_success: str = None
    last_failure: str = None
    last_failure_cause: str = None

    def view(self):
        return {
            "alive": self.alive, "consecutiveFailures": self.consecutive_failures,
            "firstSuccess": self.first_success, "lastSuccess": self.last_success,
            "lastFailure": self.last_failure, "lastFailureCause": self.last_failure_cause,
            "instanceId": self.instance_id,
        }


@dataclass
class Placement:
    """Where a launcher started a task: the agent's host name (Marathon's task ``host``), its
    Mesos agent id and the host ports the task listens on there."""

    host: str
    agent_id: str
    ports: list


class NoOffer(Exception):
    """No agent offers what a task needs now: it waits to be launched, as in Marathon's queue."""


class LocalTasks:
    """The default launcher: each task one example web app per port on 127.0.0.1, in this
    process. A launcher starts and kills tasks and sets what their health endpoint answers;
    ``probed`` says whether health checks reach its tasks over the network."""

    probed = True
    agent_id = "sim-agent-0"

    def __init__(self):
        self._webapps = WebApps()

    def start(self):
        self._webapps.start()

    def stop(self):
        self._webapps.stop()

    def launch(self, task_id, port_count):
        """Start the task; its :class:`Placement`. OSError when it cannot start (a port to bind);
        :class:`NoOffer` when it must wait."""
        ports = []
        try:
            for _ in range(port_count):
                ports.append(self._webapps.add(task_id))
        except OSError:
            for port in ports:
                self._webapps.remove(port)
            raise
        return Placement(LOOPBACK, self.agent_id, ports)

    def kill(self, task):
        for port in task.ports:
            self._webapps.remove(port)

    def set_healthy(self, task, healthy):
        self._webapps.set_healthy(task.ports[0], healthy)


class UnbackedTasks:
    """Tasks with fake ports and no server (benchmarks): probes read ``Task.healthy_flag``."""

    probed = False

    def __init__(self):
        self._fake_ports = itertools.count(FIRST_FAKE_HOST_PORT)

    def start(self):
        pass

    def stop(self):
        pass

    def launch(self, task_id, port_count):
        return Placement(LOOPBACK, LocalTasks.agent_id, [next(self._fake_ports) for _ in range(port_count)])

    def kill(self, task):
        pass

    def set_healthy(self, task, healthy):
        pass


@dataclass
class Task:
    id: str
    instance_id: str
    app_id: str
    version: str
    placement: Placement
    staged_at: float  # wall clock, for stagedAt
    staged_at_monotonic: float  # for the staging delay
    state: str = "TASK_STAGING"
    started_at: float = None
    healthy_flag: bool = True  # unbacked tasks: what a probe would find
    health: list = None  # one HealthState per health check once probed, else None
    next_probe: float = 0.0

    @property
    def ports(self):
        return self.placement.ports

    @property
    def host(self):
        return self.placement.host

    def view(self, app, blackout):
        view = {
            "id": self.id, "appId": self.app_id, "host": self.host, "ports": list(self.ports),
            "servicePorts": app.service_ports(), "slaveId": self.placement.agent_id,
            "ipAddresses": [{"ipAddress": self.host, "protocol": "IPv4"}],
            "state": self.state, "stagedAt": timestamp(self.staged_at), "version": self.version,
            "localVolumes": [],
        }
        if self.started_at is not None:
            view["startedAt"] = timestamp(self.started_at)
        if app.definition["healthChecks"]:
            view["healthCheckResults"] = [] if blackout or self.health is None else [h.view() for h in self.health]
        return view

    @property
    def active(self):
        return self.state in ("TASK_STAGING", "TASK_RUNNING")

    def is_healthy(self):
        return self.health is not None and all(h.alive for h in self.health)


@dataclass
class App:
    definition: dict
    version: str
    last_scaling_at: str
    last_config_change_at: str
    tasks: dict = field(default_factory=dict)  # task id -> Task
    deployment_id: str = None
    deleted: bool = False

    @property
    def id(self):
        return self.definition["id"]

    def port_specs(self):
        container = self.definition.get("container") or {}
        return container.get("portMappings") or self.definition.get("portDefinitions") or []

    def service_ports(self):
        return [spec.get("servicePort", spec.get("port", 0)) for spec in self.port_specs()]


@dataclass
class EventFaults:
    """Ways to spoil the event stream, each a probability per event (delay: seconds per event)."""

    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0
    seed: int = 0


class _Subscriber:
    """One SSE client: a queue of (due time, frame) and the state of its connection."""

    def __init__(self, event_types, client):
        self.event_types = event_types
        self.client = client
        self.queue = deque()
        self.condition = threading.Condition()
        self.closed = False
        self.cut_after = None  # events still to send before a scheduled cut

    def push(self, due, frame, max_outstanding):
        """Queue a frame; False when the client lags too far behind and must be disconnected."""
        with self.condition:
            if len(self.queue) >= max_outstanding:
                self.closed = True  # Marathon 1.8+ disconnects slow consumers
            else:
                self.queue.append((due, frame))
            self.condition.notify()
            return not self.closed

    def close(self):
        with self.condition:
            self.closed = True
            self.condition.notify()


class MarathonSimulator(Simulator):
    """Marathon's REST API and event stream over real (or, for benchmarks, fake) tasks."""

    name = "marathon"

    def __init__(
        self, port=0, staging_seconds=0.05, heartbeat_seconds=10.0, task_id_format="instance",
        backed_tasks=True, max_outstanding_events=1024, health_interval_seconds=None, launcher=None,
    ):
        super().__init__(port=port)
        if task_id_format not in ("instance", "legacy"):
            raise ValueError(f"task_id_format must be 'instance' or 'legacy', not {task_id_format!r}")
        self.staging_seconds = staging_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.task_id_format = task_id_format
        self.backed_tasks = backed_tasks
        self.max_outstanding_events = max_outstanding_events
        self.health_interval_seconds = health_interval_seconds  # overrides each check's interval
        self.event_faults = EventFaults()
        self.leader_url = None  # None: this instance leads; else standby for that leader
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._apps = {}
        self._deployments = {}  # id -> {"id", "app", "version", "action"}
        self._subscribers = set()
        self._held_event = None  # an event kept back by the reorder fault
        self._random = random.Random(0)
        self._service_ports = itertools.count(FIRST_SERVICE_PORT)
        self._health_blackout_until = 0.0
        # Some app may need scheduling work: set by every API write and kept while any app has
        # not settled; ticks skip the apps otherwise (a thousand idle apps cost nothing).
        self._unsettled = True
        self._probed_apps = None  # the apps a tick probes, while none is unsettled
        self._launcher = launcher or (LocalTasks() if backed_tasks else UnbackedTasks())
        self._scheduler = None
        self._stopping = threading.Event()

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--staging-seconds", type=float, default=0.05)
        parser.add_argument("--heartbeat-seconds", type=float, default=10.0)
        parser.add_argument("--task-id-format", choices=("instance", "legacy"), default="instance")
        parser.add_argument("--health-interval-seconds", type=float, default=None)
        parser.add_argument("--unbacked-tasks", dest="backed_tasks", action="store_false")

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self):
        self._launcher.start()
        self._stopping.clear()
        self._scheduler = threading.Thread(target=self._schedule, name="marathon-scheduler", daemon=True)
        self._scheduler.start()
        return super().start()

    def stop(self):
        self._stopping.set()
        self.cut_streams()
        super().stop()
        if self._scheduler is not None:
            self._scheduler.join()
            self._scheduler = None
        with self._lock:
            for app in self._apps.values():
                for task in app.tasks.values():
                    self._launcher.kill(task)
            self._apps.clear()
        self._launcher.stop()

    def reset(self):
        """Forget every app (stopping its tasks), deployment, fault and stream."""
        super().reset()
        self.cut_streams()
        with self._lock:
            for app in self._apps.values():
                for task in app.tasks.values():
                    self._launcher.kill(task)
            self._apps.clear()
            self._probed_apps = None
            self._deployments.clear()
            self._held_event = None
            self._health_blackout_until = 0.0
            self.event_faults = EventFaults()
            self.leader_url = None

    # -- test controls ---------------------------------------------------------------------------

    def set_task_healthy(self, task_id, healthy):
        """Make the task's health endpoint pass or fail from now on (probes then notice)."""
        with self._lock:
            task = self._find_task(task_id)
            task.healthy_flag = healthy
            self._launcher.set_healthy(task, healthy)

    def set_event_faults(self, **faults):
        """Replace the event faults (see :class:`EventFaults`) and reseed their randomness."""
        with self._lock:
            self.event_faults = EventFaults(**faults)
            self._random = random.Random(self.event_faults.seed)

    def cut_streams(self, after_events=0):
        """Close every open event stream, at once or after ``after_events`` more events each."""
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            if after_events:
                with subscriber.condition:
                    subscriber.cut_after = after_events
            else:
                subscriber.close()

    def leader_change(self, health_blackout_seconds=5.0):
        """What clients see when leadership moves: streams close and health results go empty."""
        self.cut_streams()
        with self._lock:
            self._health_blackout_until = time.monotonic() + health_blackout_seconds
            for app in self._apps.values():
                for task in app.tasks.values():
                    task.health = None
                    task.next_probe = self._health_blackout_until

    def set_standby(self, leader_url):
        """Act as a standby of ``leader_url`` (None: lead again); streams are cut either way."""
        self.leader_url = leader_url.rstrip("/") if leader_url else None
        self.cut_streams()

    def wait_for_deployments(self, timeout=10.0):
        """Block until no deployment is running; False if some still are after ``timeout``."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._deployments, timeout)

    def tasks_of(self, app_id):
        """Task views of the app (a convenience for tests; the API gives the same)."""
        with self._lock:
            app = self._get_app(absolute_id(app_id))
            return [task.view(app, self._in_blackout()) for task in app.tasks.values()]

    # -- the API: apps -------------------------------------------------------------------------

    @route("GET", r"/v2/leader")
    def get_leader(self, request):
        leader = self.leader_url or self.url
        return json_response({"leader": leader.split("://", 1)[1]})

    @route("GET", r"/v2/apps")
    def list_apps(self, request):
        embed = set(request.query.get("embed", []))
        with self._lock, collector_paused():
            apps = [app for app in self._apps.values() if self._selected(app, request)]
            return json_response({"apps": [self._app_view(app, "apps.tasks" in embed) for app in apps]})

    @route("POST", r"/v2/apps")
    def create_app(self, request):
        definition = self._definition(request)
        with self._lock:
            if definition["id"] in self._apps:
                raise Abort(json_response({"message": f"An app with id [{definition['id']}] already exists."}, 409))
            app = self._create(definition, request)
            view = self._app_view(app, tasks=False)
        headers = {"Location": f"{self.url}/v2/apps{app.id}", "Marathon-Deployment-Id": app.deployment_id}
        return json_response(view, 201, headers=headers)

    @route("DELETE", r"/v2/apps/" + APP_ID + r"/tasks/(?P<task_id>[^/]+)")
    def kill_app_task(self, request, app_id, task_id):
        with self._lock:
            app = self._get_app(absolute_id(app_id))
            if task_id not in app.tasks:
                _not_found(f"Task '{task_id}' does not exist")
            return self._kill(app, [app.tasks[task_id]], request)

    @route("GET", r"/v2/apps/" + APP_ID + r"/tasks")
    def list_app_tasks(self, request, app_id):
        with self._lock:
            app = self._get_app(absolute_id(app_id))
            return self._tasks_response(request, [(app, task) for task in app.tasks.values()])

    @route("GET", r"/v2/apps/" + APP_ID)
    def get_app(self, request, app_id):
        with self._lock:
            return json_response({"app": self._app_view(self._get_app(absolute_id(app_id)), tasks=True)})

    @route("PUT", r"/v2/apps/" + APP_ID)
    @route("PATCH", r"/v2/apps/" + APP_ID)
    def update_app(self, request, app_id):
        app_id = absolute_id(app_id)
        partial = request.method == "PATCH" or request.arg("partialUpdate", "true") != "false"
        with self._lock:
            app = self._apps.get(app_id)
            if app is None and request.method == "PATCH":
                _not_found(f"App '{app_id}' does not exist")
            body = self._body_object(request)
            if app is None:
                app = self._create(self._definition(request, {**body, "id": app_id}), request)
                return json_response({"version": app.version, "deploymentId": app.deployment_id}, 201,
                                     headers={"Marathon-Deployment-Id": app.deployment_id})
            self._check_unlocked(app, request)
            base = copy.deepcopy(app.definition) if partial else {}
            merged = {**base, **body, "id": app_id}
            definition = self._definition(request, merged)
            scale_only = {k: v for k, v in definition.items() if k != "instances"} == {
                k: v for k, v in app.definition.items() if k != "instances"}
            now = timestamp()
            app.definition, app.version = definition, now
            if scale_only:
                app.last_scaling_at = now
            else:
                app.last_config_change_at = now
                app.last_scaling_at = now
                for task in app.tasks.values():
                    if task.active:
                        self._set_state(app, task, "TASK_KILLING")
            self._api_post_event(request, app)
            self._start_deployment(app, "ScaleApplication" if scale_only else "RestartApplication")
            return json_response({"version": app.version, "deploymentId": app.deployment_id},
                                 headers={"Marathon-Deployment-Id": app.deployment_id})

    @route("DELETE", r"/v2/apps/" + APP_ID)
    def delete_app(self, request, app_id):
        with self._lock:
            app = self._get_app(absolute_id(app_id))
            self._check_unlocked(app, request)
            del self._apps[app.id]
            app.deleted = True
            app.definition["instances"] = 0
            app.version = timestamp()
            self._api_post_event(request, app)
            self._start_deployment(app, "StopApplication")
            return json_response({"version": app.version, "deploymentId": app.deployment_id},
                                 headers={"Marathon-Deployment-Id": app.deployment_id})

    # -- the API: tasks and deployments --------------------------------------------------------

    @route("GET", r"/v2/tasks")
    def list_tasks(self, request):
        wanted = {f"TASK_{status.upper()}" for status in request.query.get("status", [])}
        with self._lock:
            pairs = [(app, task) for app in self._apps.values() for task in app.tasks.values()
                     if not wanted or task.state in wanted]
            return self._tasks_response(request, pairs)

    @route("POST", r"/v2/tasks/delete")
    def kill_tasks(self, request):
        body = self._body_object(request)
        with self._lock:
            by_app = {}
            for task_id in body.get("ids") or []:
                task = self._find_task(task_id)
                by_app.setdefault(task.app_id, []).append(task)
            responses = [self._kill(self._apps[app_id], tasks, request) for app_id, tasks in by_app.items()]
        if request.arg("scale") == "true":
            return responses[-1] if responses else json_response({"version": timestamp(), "deploymentId": None})
        return json_response({"tasks": [t for r in responses for t in json.loads(r.body)["tasks"]]})

    @route("GET", r"/v2/deployments")
    def list_deployments(self, request):
        with self._lock:
            return json_response([self._deployment_view(d) for d in self._deployments.values()])

    # -- the API: events -----------------------------------------------------------------------

    @route("GET", r"/v2/events")
    def events(self, request):
        if self.leader_url is not None:
            query = urllib.parse.urlencode(request.query, doseq=True)
            target = f"{self.leader_url}/v2/events" + (f"?{query}" if query else "")
            return Response(302, b"", {"Location": target, "X-Marathon-Leader": self.leader_url})
        if SSE_TYPE not in (request.headers.get("Accept") or ""):
            return Response(405, STANDBY_EVENTS_PAGE.encode(), {"Content-Type": "text/html;charset=iso-8859-1"})
        subscriber = _Subscriber(set(request.query.get("event_type", [])), request.client)
        attached = {"remoteAddress": request.client[0], "eventType": "event_stream_attached", "timestamp": timestamp()}
        subscriber.push(time.monotonic(), _frame(attached), self.max_outstanding_events)
        with self._lock:
            self._subscribers.add(subscriber)
        headers = {"Content-Type": SSE_TYPE, "Cache-Control": "no-cache", "X-Marathon-Leader": self.url}
        return Response(200, headers=headers, stream=self._stream(subscriber))

    def _stream(self, subscriber):
        """The frames of one SSE connection: events as they come, a bare CRLF when idle."""
        try:
            while True:
                frame = self._next_frame(subscriber)
                if frame is None:
                    return
                yield frame
        finally:
            with self._lock:
                self._subscribers.discard(subscriber)
            self._disconnect(subscriber)

    def _next_frame(self, subscriber):
        with subscriber.condition:
            deadline = time.monotonic() + self.heartbeat_seconds
            while True:
                if subscriber.closed or self._stopping.is_set():
                    return None
                now = time.monotonic()
                if subscriber.queue and subscriber.queue[0][0] <= now:
                    _, frame = subscriber.queue.popleft()
                    if subscriber.cut_after is not None:
                        subscriber.cut_after -= 1
                        subscriber.closed = subscriber.cut_after <= 0
                    return frame
                if now >= deadline:
                    return b"\r\n"
                wake = min(deadline, subscriber.queue[0][0]) if subscriber.queue else deadline
                subscriber.condition.wait(wake - now)

    def _disconnect(self, subscriber):
        """Close the client's socket: a slow consumer may be blocked in a write to it."""
        server = self._server
        if server is None:
            return
        with server.connections_lock:
            for connection in list(server.connections):
                try:
                    if connection.getpeername() == tuple(subscriber.client):
                        connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _publish(self, event_type, **fields):
        event = {"eventType": event_type, "timestamp": timestamp(), **fields}
        faults = self.event_faults
        if faults.drop and self._random.random() < faults.drop:
            return
        copies = 2 if faults.duplicate and self._random.random() < faults.duplicate else 1
        if faults.reorder and self._held_event is None and self._random.random() < faults.reorder:
            self._held_event = event  # goes out after the next event
            return
        events = [event] * copies
        if self._held_event is not None:
            events.append(self._held_event)
            self._held_event = None
        due = time.monotonic() + faults.delay
        for subscriber in list(self._subscribers):
            for item in events:
                if not subscriber.event_types or item["eventType"] in subscriber.event_types:
                    if not subscriber.push(due, _frame(item), self.max_outstanding_events):
                        self._disconnect(subscriber)  # its writer may be blocked on a full socket
                        break

    # -- replies ---------------------------------------------------------------------------------

    def handle(self, request):
        response = super().handle(request)
        if request.method != "GET":
            self._unsettled = True  # after the write: a tick before it had nothing new to do
        response.headers.setdefault("X-Marathon-Leader", self.leader_url or self.url)
        return response

    # -- app definitions -------------------------------------------------------------------------

    @staticmethod
    def _body_object(request):
        try:
            body = request.json()
        except BodyError:
            _invalid_json("/", "error.expected.jsobject")
        if not isinstance(body, dict):
            _invalid_json("/", "error.expected.jsobject")
        return body

    def _definition(self, request, body=None):
        """The normalised AppDefinition of the request body (reference §4.2), or 400/422."""
        body = self._body_object(request) if body is None else body
        if not isinstance(body.get("id"), str):
            if "id" in body:
                _invalid_json("/id", "error.expected.jsstring")
            _invalid([{"path": "/id", "errors": ["error.path.missing"]}])
        definition = {**copy.deepcopy(APP_DEFAULTS), **copy.deepcopy(body)}
        definition["id"] = absolute_id(body["id"])
        segments = definition["id"].strip("/").split("/")
        if not all(ID_SEGMENT.match(segment) for segment in segments):
            _invalid([{"path": "/id", "errors": ["must fully match regular expression "
                                                 f"'{ID_SEGMENT.pattern}'"]}])
        if definition["id"].endswith(RESERVED_ID_ENDINGS):
            _invalid([{"path": "/id", "errors": [f"must not end with {', '.join(RESERVED_ID_ENDINGS)}"]}])
        if not (definition["cmd"] or definition["args"] is not None or definition["container"]):
            _invalid([{"path": "/", "errors": ["AppDefinition must either contain one of 'cmd' or 'args', "
                                               "and/or a 'container'."]}])
        if not isinstance(definition["instances"], int) or definition["instances"] < 0:
            _invalid([{"path": "/instances", "errors": [f"got {definition['instances']}, expected 0 or more"]}])
        if not isinstance(definition["labels"], dict) or not all(isinstance(v, str) for v in definition["labels"].values()):
            _invalid_json("/labels", "error.expected.jsstring")
        self._normalise_ports(definition)
        definition["healthChecks"] = [{**HEALTH_CHECK_DEFAULTS, **check} for check in definition["healthChecks"]]
        return definition

    def _normalise_ports(self, definition):
        """Turn 1.4-style ``container.docker.network/portMappings`` into the 1.5+ canonical form."""
        container = definition.get("container")
        if container:
            docker = container.setdefault("docker", {}) if container.get("type", "DOCKER") == "DOCKER" else {}
            network = docker.pop("network", None)
            mappings = container.get("portMappings") or docker.pop("portMappings", None) or []
            docker.pop("portMappings", None)
            docker.setdefault("forcePullImage", False)
            docker.setdefault("privileged", False)
            docker.setdefault("parameters", [])
            container.setdefault("volumes", [])
            if network or "networks" not in definition:
                mode = {"HOST": "host", "USER": "container"}.get(network or "HOST", "container/bridge")
                definition["networks"] = [{"mode": mode}]
            if mappings:
                container["portMappings"] = [
                    {"containerPort": 0, "hostPort": 0, "protocol": "tcp", "labels": {}, **mapping,
                     "servicePort": mapping.get("servicePort") or next(self._service_ports)}
                    for mapping in mappings
                ]
                definition.pop("portDefinitions", None)
                return
        definitions = definition.get("portDefinitions")
        if definitions is None:
            definitions = [{"port": 0}]
        definition["portDefinitions"] = [
            {"protocol": "tcp", "labels": {}, **spec, "port": spec.get("port") or next(self._service_ports)}
            for spec in definitions
        ]
        definition.setdefault("networks", [{"mode": "host"}])

    # -- app state -------------------------------------------------------------------------------

    def _get_app(self, app_id):
        app = self._apps.get(app_id)
        if app is None:
            _not_found(f"App '{app_id}' does not exist")
        return app

    def _find_task(self, task_id):
        for app in self._apps.values():
            if task_id in app.tasks:
                return app.tasks[task_id]
        return _not_found(f"Task '{task_id}' does not exist")

    def _create(self, definition, request):
        now = timestamp()
        app = App(definition, now, now, now)
        self._apps[app.id] = app
        self._api_post_event(request, app)
        self._publish("group_change_success", groupId="/", version=now)
        self._start_deployment(app, "StartApplication")
        return app

    def _check_unlocked(self, app, request):
        if app.deployment_id is None:
            return
        if request.arg("force") != "true":
            raise Abort(json_response({
                "message": "App is locked by one or more deployments. Override with the option '?force=true'. "
                           "View details at '/v2/deployments/<DEPLOYMENT_ID>'.",
                "deployments": [{"id": app.deployment_id}],
            }, 409))
        deployment = self._deployments.pop(app.deployment_id, None)
        if deployment is not None:
            self._publish("deployment_failed", id=deployment["id"], plan=self._plan(deployment),
                          reason="overridden by a forced update")

    def _api_post_event(self, request, app):
        self._publish("api_post_event", clientIp=request.client[0], uri=request.path,
                      appDefinition=self._definition_view(app))

    def _start_deployment(self, app, action):
        deployment = {"id": str(uuid.uuid4()), "app": app, "version": app.version, "action": action}
        self._deployments[deployment["id"]] = deployment
        app.deployment_id = deployment["id"]
        plan = self._plan(deployment)
        self._publish("deployment_info", plan=plan, currentStep=plan["steps"][0])
        self._changed.notify_all()

    @staticmethod
    def _plan(deployment):
        step = {"actions": [{"action": deployment["action"], "app": deployment["app"].id}]}
        return {"id": deployment["id"], "version": deployment["version"], "steps": [step],
                "original": {"id": "/"}, "target": {"id": "/"}}

    def _deployment_view(self, deployment):
        step = self._plan(deployment)["steps"][0]
        return {"id": deployment["id"], "version": deployment["version"], "affectedApps": [deployment["app"].id],
                "steps": [step], "currentActions": step["actions"], "currentStep": 1, "totalSteps": 1}

    def _kill(self, app, tasks, request):
        """Kill ``tasks`` of ``app``; with ``?scale=true`` lower its instances accordingly."""
        blackout = self._in_blackout()
        views = [task.view(app, blackout) for task in tasks]
        for task in tasks:
            if task.active:
                self._set_state(app, task, "TASK_KILLING")
        if request.arg("scale") == "true":
            app.definition["instances"] = max(0, app.definition["instances"] - len(tasks))
            app.version = app.last_scaling_at = timestamp()
            self._start_deployment(app, "ScaleApplication")
            return json_response({"version": app.version, "deploymentId": app.deployment_id},
                                 headers={"Marathon-Deployment-Id": app.deployment_id})
        self._changed.notify_all()
        if request.path.startswith("/v2/apps/"):
            return json_response({"task": views[0]} if len(views) == 1 else {"tasks": views})
        return json_response({"tasks": views})

    def _in_blackout(self):
        return time.monotonic() < self._health_blackout_until

    # -- views -----------------------------------------------------------------------------------

    def _selected(self, app, request):
        if request.arg("id") and request.arg("id") not in app.id:
            return False
        if request.arg("cmd") and request.arg("cmd") not in (app.definition.get("cmd") or ""):
            return False
        labels = app.definition["labels"]
        for selector in request.query.get("label", []):
            for term in selector.split(","):
                key, operator, value = re.match(r"^\s*([^=!]+?)\s*(?:(==|!=)\s*(.*?))?\s*$", term).groups()
                if operator is None and key not in labels:
                    return False
                if operator == "==" and labels.get(key) != value:
                    return False
                if operator == "!=" and labels.get(key) == value:
                    return False
        return True

    @staticmethod
    def _definition_view(app):
        return {**copy.deepcopy(app.definition), "version": app.version}

    def _app_view(self, app, tasks):
        blackout = self._in_blackout()
        active = [task for task in app.tasks.values() if task.active]
        # Serialised at once, under the lock: no copy of the definition needed (a deep one per
        # app made a listing of 10,000 apps take seconds).
        view = {**app.definition, "version": app.version}
        checked = app.definition["healthChecks"] and not blackout
        view.update({
            "versionInfo": {"lastScalingAt": app.last_scaling_at, "lastConfigChangeAt": app.last_config_change_at},
            "tasksStaged": sum(task.state == "TASK_STAGING" for task in active),
            "tasksRunning": sum(task.state == "TASK_RUNNING" for task in active),
            "tasksHealthy": sum(bool(checked) and task.is_healthy() for task in active),
            "tasksUnhealthy": sum(bool(checked) and task.health is not None and not task.is_healthy() for task in active),
            "deployments": [{"id": app.deployment_id}] if app.deployment_id else [],
        })
        if tasks:
            view["tasks"] = [task.view(app, blackout) for task in app.tasks.values()]
        return view

    def _tasks_response(self, request, pairs):
        if "text/plain" in (request.headers.get("Accept") or ""):
            lines = []
            for app in {id(app): app for app, _ in pairs}.values():
                endpoints = [f"{task.host}:{task.ports[0]}" for owner, task in pairs if owner is app and task.ports]
                for service_port in app.service_ports():
                    lines.append("\t".join([app.id.strip("/").replace("/", "_"), str(service_port), *endpoints]))
            return text_response("".join(line + "\n" for line in lines))
        blackout = self._in_blackout()
        return json_response({"tasks": [task.view(app, blackout) for app, task in pairs]})

    # -- the scheduler ---------------------------------------------------------------------------

    def _schedule(self):
        while not self._stopping.wait(TICK_SECONDS):
            with self._lock:
                self._tick()

    def _tick(self):
        now = time.monotonic()
        for deployment in list(self._deployments.values()):
            if deployment["app"].deleted:
                self._converge(deployment["app"], now)
        busy, self._unsettled = self._unsettled or bool(self._deployments), False
        if busy or self._probed_apps is None:
            for app in list(self._apps.values()):
                if busy and not self._converge(app, now):
                    self._unsettled = True
            # Every write marks the apps unsettled: until the next one, the apps with health
            # checks are the same, and a tick of 10,000 apps without any need not visit them all
            # (50 times a second, a quarter of a core).
            self._probed_apps = [app for app in self._apps.values() if app.definition["healthChecks"]]
        for app in self._probed_apps:
            self._probe(app, now)
        for deployment_id, deployment in list(self._deployments.items()):
            app = deployment["app"]
            if self._deployment_done(app):
                del self._deployments[deployment_id]
                if app.deployment_id == deployment_id:
                    app.deployment_id = None
                plan = self._plan(deployment)
                self._publish("deployment_step_success", plan=plan, currentStep=plan["steps"][0])
                self._publish("deployment_success", id=deployment_id, plan=plan)
                if app.deleted:
                    self._publish("app_terminated_event", appId=app.id)
                self._changed.notify_all()

    def _deployment_done(self, app):
        tasks = list(app.tasks.values())
        running = [t for t in tasks if t.state == "TASK_RUNNING"]
        if any(not t.active for t in tasks) or len(running) != len(tasks):
            return False
        if len(running) != app.definition["instances"]:
            return False
        return not app.definition["healthChecks"] or all(t.is_healthy() for t in running)

    def _converge(self, app, now):
        """One step towards ``instances`` running tasks: finish kills, start staged tasks,
        launch. Whether the app was settled already (nothing to do)."""
        if len(app.tasks) == app.definition["instances"] and all(
            task.state == "TASK_RUNNING" for task in app.tasks.values()
        ):
            return True
        for task in list(app.tasks.values()):
            if task.state == "TASK_KILLING":
                self._set_state(app, task, "TASK_KILLED")
                self._launcher.kill(task)
                del app.tasks[task.id]
            elif task.state == "TASK_STAGING" and now >= task.staged_at_monotonic + self.staging_seconds:
                task.started_at = time.time()
                task.next_probe = now
                self._set_state(app, task, "TASK_RUNNING")
        active = [task for task in app.tasks.values() if task.active]
        wanted = app.definition["instances"]
        for task in sorted(active, key=lambda t: (t.state != "TASK_STAGING", -t.staged_at))[: max(0, len(active) - wanted)]:
            self._set_state(app, task, "TASK_KILLING")
        for _ in range(wanted - len(active)):
            self._launch(app, now)
        return False

    def _launch(self, app, now):
        instance_uuid = uuid.uuid4()
        name = app.id.strip("/").replace("/", "_")
        if self.task_id_format == "instance":
            instance_id = f"{name}.instance-{instance_uuid}"
            task_id = f"{instance_id}._app.1"
        else:
            instance_id = task_id = f"{name}.{instance_uuid}"
        try:
            placement = self._launcher.launch(task_id, max(1, len(app.port_specs())))
        except NoOffer:
            return  # launched on a later tick, once an agent offers
        except OSError as err:
            self._publish("status_update_event", slaveId=LocalTasks.agent_id, taskId=task_id,
                          taskStatus="TASK_FAILED", message=f"could not start the task: {err}", appId=app.id,
                          host=LOOPBACK, ports=[], ipAddresses=[], version=app.version)
            return
        task = Task(task_id, instance_id, app.id, app.version, placement, time.time(), now)
        app.tasks[task_id] = task
        self._set_state(app, task, "TASK_STAGING", announce_only=True)

    def _set_state(self, app, task, state, announce_only=False):
        if not announce_only:
            task.state = state
        agent_id = task.placement.agent_id
        self._publish("status_update_event", slaveId=agent_id, taskId=task.id, taskStatus=state, message="",
                      appId=app.id, host=task.host, ports=list(task.ports),
                      ipAddresses=[{"ipAddress": task.host, "protocol": "IPv4"}], version=task.version)
        self._publish("instance_changed_event", instanceId=task.instance_id, condition=CONDITIONS[state],
                      runSpecId=app.id, agentId=agent_id, host=task.host, runSpecVersion=task.version)

    # -- health checks ---------------------------------------------------------------------------

    def _probe(self, app, now):
        checks = app.definition["healthChecks"]
        if not checks or now < self._health_blackout_until:
            return
        for task in [t for t in app.tasks.values() if t.state == "TASK_RUNNING" and now >= t.next_probe]:
            interval = self.health_interval_seconds or min(c["intervalSeconds"] for c in checks)
            task.next_probe = now + interval
            was = task.is_healthy() if task.health is not None else None
            if task.health is None:
                task.health = [HealthState(task.instance_id) for _ in checks]
            for check, state in zip(checks, task.health):
                self._record(task, check, state)
            healthy = task.is_healthy()
            if healthy != was:
                self._publish("health_status_changed_event", appId=app.id, instanceId=task.instance_id,
                              version=task.version, alive=healthy)
                self._publish("instance_health_changed_event", instanceId=task.instance_id, runSpecId=app.id,
                              runSpecVersion=task.version, healthy=healthy)
            limit = max(c["maxConsecutiveFailures"] for c in checks)
            in_grace = time.time() - task.started_at < min(c["gracePeriodSeconds"] for c in checks)
            if limit and not in_grace and any(s.consecutive_failures >= limit for s in task.health):
                self._publish("unhealthy_instance_kill_event", appId=app.id, taskId=task.id,
                              instanceId=task.instance_id, version=task.version, reason="health check failed",
                              host=task.host, slaveId=task.placement.agent_id)
                self._set_state(app, task, "TASK_KILLING")
                self._unsettled = True

    def _record(self, task, check, state):
        cause = self._check_failure(task, check)
        now = timestamp()
        if cause is None:
            state.alive, state.consecutive_failures, state.last_success = True, 0, now
            state.first_success = state.first_success or now
        else:
            state.alive = False
            state.consecutive_failures += 1
            state.last_failure, state.last_failure_cause = now, cause

    def _check_failure(self, task, check):
        """Why the check fails on ``task`` now, or None if it passes."""
        if not self._launcher.probed or check["protocol"] in ("COMMAND",):
            return None if task.healthy_flag else "marked unhealthy"
        port = task.ports[min(check.get("portIndex") or 0, len(task.ports) - 1)]
        connection = http.client.HTTPConnection(task.host, port, timeout=min(PROBE_TIMEOUT, check["timeoutSeconds"]))
        try:
            if check["protocol"].endswith("TCP"):
                connection.connect()
                return None
            connection.request("GET", check["path"])
            status = connection.getresponse().status
        except OSError as err:
            return f"{type(err).__name__}: {err}"
        finally:
            connection.close()
        return None if 200 <= status < 400 else f"{status}"


def _frame(event):
    """One SSE frame as Marathon's Jetty writes it."""
    return f"event: {event['eventType']}\r\ndata: {json.dumps(event, separators=(',', ':'))}\r\n\r\n".encode()


