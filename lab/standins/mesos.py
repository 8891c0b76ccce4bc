"""``mesos-master`` / ``mesos-agent``: stand-ins for Clusterd's (aventer-mesos) daemons, on
``MESOS_IP``:``MESOS_PORT`` as the unit's environment file sets them; and the task launcher
the lab's Marathon stand-in uses to run its tasks on the agents (:class:`MesosTasks`).

Both answer the health endpoint (``GET /health``, 200) and the version (``GET /version``).
Mesos has no simulator in this project: what else they do is the least that puts Marathon's
tasks on the slave hosts, and the paths under ``/lab/`` are the lab's own, not Mesos':

- an agent registers with every master of ``MESOS_MASTER`` (``zk://host:port,.../mesos``: the
  stand-in takes the masters to be those ZooKeeper hosts, at Mesos' port 5050, where a real
  agent reads the leading master from ZooKeeper) with ``POST /lab/agents``, again every
  ``REGISTER_INTERVAL`` seconds, as a real agent re-registers after a master restart;
- the master lists them as Mesos does, ``GET /master/slaves`` (id, pid, ``hostname`` from
  ``MESOS_HOSTNAME``, the ``ports`` resource of ``MESOS_RESOURCES``; ``active`` while the agent
  was heard from within ``AGENT_TIMEOUT`` seconds);
- an agent runs tasks: ``POST /lab/tasks`` ``{"id", "ports": N}`` starts the project's example
  web app (simulators/webapp.py, answering with the task id) on N free ports of its ``ports``
  resource, bound to ``MESOS_IP``, and answers ``{"id", "ports"}`` (409 for a known id, 503 when
  the range is used up); ``DELETE /lab/tasks/<id>`` kills it; ``PUT /lab/tasks/<id>/failing``
  ``{"failing": true}`` makes it answer 503 to every request (a task up but broken, whatever
  its health check probes); ``GET /lab/tasks`` lists them. A
  real agent runs the app's Docker image through its executor; here the task lives in the
  agent's process and ends with it.
"""

import json
import os
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from lab.standins import notify_ready
from simulators.base import Abort, Simulator, empty_response, json_response, route, serve_forever_on
from simulators.marathon import NoOffer, Placement
from simulators.webapp import WebApps

VERSION = "1.11.0"
MASTER_PORT = 5050
AGENT_PORT = 5051
REGISTER_INTERVAL = 5
AGENT_TIMEOUT = 3 * REGISTER_INTERVAL
REQUEST_TIMEOUT = 5
AGENTS_CACHE_SECONDS = 1.0  # how long the launcher trusts a listing of the agents
PORTS_RESOURCE = re.compile(r"ports(?:\([^)]*\))?:\[([^\]]*)\]")
DEFAULT_PORTS = [(31000, 32000)]  # Mesos' when MESOS_RESOURCES names none


def _call(method, url, body=None):
    """One JSON request (the stand-ins use the standard library alone); the decoded reply."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
        return json.loads(response.read() or b"null")


def masters_of(zk_url):
    """The masters' base URLs for ``zk://host:port,host:port/mesos`` (see the module docstring)."""
    hosts = urllib.parse.urlsplit(zk_url).netloc.split(",")
    return [f"http://{host.rsplit(':', 1)[0]}:{MASTER_PORT}" for host in hosts if host]


def port_ranges(resources):
    """``[(first, last)]`` of the ``ports`` resource in a ``MESOS_RESOURCES`` string (Mesos'
    default range when it names none)."""
    found = PORTS_RESOURCE.search(resources or "")
    if not found:
        return DEFAULT_PORTS
    return [tuple(int(end) for end in span.strip().split("-")) for span in found.group(1).split(",") if span.strip()]


class _Daemon(Simulator):
    @route("GET", r"/health")
    def health(self, request):
        return empty_response()

    @route("GET", r"/version")
    def version(self, request):
        return json_response({"version": VERSION, "build_user": "lab stand-in"})


class Master(_Daemon):
    name = "mesos-master"

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()
        self._run_id = str(uuid.uuid4())
        self._agents = {}  # pid -> the agent's registration, its id and when it was last heard

    @route("POST", r"/lab/agents")
    def register(self, request):
        agent = request.json()
        pid = f"slave(1)@{agent['address']}:{agent['port']}"
        with self._lock:
            known = self._agents.get(pid) or {"id": f"{self._run_id}-S{len(self._agents)}",
                                              "registered_time": time.time()}
            self._agents[pid] = {**known, **agent, "pid": pid, "seen": time.monotonic()}
            return json_response({"id": self._agents[pid]["id"]})

    @route("GET", r"/master/slaves")
    def slaves(self, request):
        now = time.monotonic()
        with self._lock:
            agents = list(self._agents.values())
        return json_response({"slaves": [{
            "id": agent["id"], "pid": agent["pid"], "hostname": agent["hostname"], "port": agent["port"],
            "resources": {"ports": agent["ports"]}, "registered_time": agent["registered_time"],
            "active": now - agent["seen"] < AGENT_TIMEOUT, "version": VERSION,
        } for agent in agents]})


class Agent(_Daemon):
    name = "mesos-agent"

    def __init__(self, address, port, hostname, resources, masters):
        super().__init__()
        self.address, self.agent_port, self.hostname, self.masters = address, port, hostname, masters
        self.ranges = port_ranges(resources)
        self._lock = threading.Lock()
        self._tasks = {}  # task id -> its ports
        self._webapps = WebApps(address)
        self._stopped = threading.Event()

    def run(self):
        self._webapps.start()
        threading.Thread(target=self._register_forever, name="register", daemon=True).start()

    def stop(self):
        """Stop registering (an agent run inside a test process, not as the daemon)."""
        self._stopped.set()

    def _register_forever(self):
        spans = ",".join(f"{first}-{last}" for first, last in self.ranges)
        registration = {"address": self.address, "port": self.agent_port, "hostname": self.hostname,
                        "ports": f"[{spans}]"}
        while True:
            for master in self.masters:
                try:
                    _call("POST", f"{master}/lab/agents", registration)
                except OSError:
                    pass  # that master is not up (yet): the next round tries again
            if self._stopped.wait(REGISTER_INTERVAL):
                return

    @route("GET", r"/lab/tasks")
    def list_tasks(self, request):
        with self._lock:
            return json_response([{"id": task_id, "ports": ports} for task_id, ports in self._tasks.items()])

    @route("POST", r"/lab/tasks")
    def launch(self, request):
        task = request.json()
        with self._lock:
            if task["id"] in self._tasks:
                raise Abort(json_response({"message": f"task {task['id']} exists"}, 409))
            ports = []
            for port in self._free_ports():
                if len(ports) == task["ports"]:
                    break
                try:
                    ports.append(self._webapps.add(task["id"], port))
                except OSError:
                    continue  # taken by something else on the host
            if len(ports) < task["ports"]:
                for port in ports:
                    self._webapps.remove(port)
                raise Abort(json_response({"message": "no free ports in the agent's ports resource"}, 503))
            self._tasks[task["id"]] = ports
        return json_response({"id": task["id"], "ports": ports}, 201)

    def _free_ports(self):
        used = {port for ports in self._tasks.values() for port in ports}
        for first, last in self.ranges:
            yield from (port for port in range(first, last + 1) if port not in used)

    @route("DELETE", r"/lab/tasks/(?P<task_id>[^/]+)")
    def kill(self, request, task_id):
        with self._lock:
            ports = self._tasks.pop(task_id, None)
        if ports is None:
            raise Abort(json_response({"message": f"no task {task_id}"}, 404))
        for port in ports:
            self._webapps.remove(port)
        return empty_response(204)

    @route("PUT", r"/lab/tasks/(?P<task_id>[^/]+)/failing")
    def set_failing(self, request, task_id):
        with self._lock:
            ports = self._tasks.get(task_id)
        if ports is None:
            raise Abort(json_response({"message": f"no task {task_id}"}, 404))
        for port in ports:
            self._webapps.set_failing(port, bool(request.json()["failing"]))
        return empty_response(204)


class MesosTasks:
    """The Marathon stand-in's task launcher (simulators/marathon.py): each task on the active
    agent of the listing of ``masters`` (base URLs, see :func:`masters_of`) that runs the fewest
    of its tasks, through the agent's ``/lab/tasks``; the task's ``host`` is the agent's
    ``hostname``, as Marathon reports it. Health checks reach the tasks on the agents over the
    network; a task marked unhealthy fails every request there."""

    probed = True

    def __init__(self, masters):
        self.masters = masters
        self._agents, self._listed_at = [], None
        self._agent_of = {}  # task id -> the agent's base URL

    def start(self):
        pass

    def stop(self):
        for task_id in list(self._agent_of):
            self._delete(task_id)

    def _active_agents(self):
        now = time.monotonic()
        if self._listed_at is None or now - self._listed_at > AGENTS_CACHE_SECONDS:
            self._listed_at, self._agents = now, []
            for master in self.masters:
                try:
                    self._agents = [agent for agent in _call("GET", f"{master}/master/slaves")["slaves"]
                                    if agent["active"]]
                    break
                except OSError:
                    continue
        return self._agents

    def launch(self, task_id, port_count):
        load = {}
        for url in self._agent_of.values():
            load[url] = load.get(url, 0) + 1
        agents = sorted(self._active_agents(), key=lambda agent: load.get(self._url(agent), 0))
        for agent in agents:
            try:
                started = _call("POST", f"{self._url(agent)}/lab/tasks", {"id": task_id, "ports": port_count})
            except OSError:
                continue  # that agent is gone or full: the next one
            self._agent_of[task_id] = self._url(agent)
            return Placement(agent["hostname"], agent["id"], started["ports"])
        raise NoOffer(task_id)

    def kill(self, task):
        self._delete(task.id)

    def _delete(self, task_id):
        url = self._agent_of.pop(task_id, None)
        if url is None:
            return
        try:
            _call("DELETE", f"{url}/lab/tasks/{urllib.parse.quote(task_id)}")
        except OSError:
            pass  # the agent is gone, and its tasks with it

    def set_healthy(self, task, healthy):
        _call("PUT", f"{self._agent_of[task.id]}/lab/tasks/{urllib.parse.quote(task.id)}/failing",
              {"failing": not healthy})

    @staticmethod
    def _url(agent):
        return f"http://{agent['pid'].split('@', 1)[1]}"


def _serve(daemon, address, port):
    serve_forever_on(daemon, address, port)
    notify_ready()
    threading.Event().wait()


def master():
    _serve(Master(), os.environ.get("MESOS_IP", "127.0.0.1"), int(os.environ.get("MESOS_PORT", MASTER_PORT)))


def agent():
    address = os.environ.get("MESOS_IP", "127.0.0.1")
    port = int(os.environ.get("MESOS_PORT", AGENT_PORT))
    daemon = Agent(address, port, os.environ.get("MESOS_HOSTNAME") or socket.gethostname(),
                   os.environ.get("MESOS_RESOURCES", ""), masters_of(os.environ.get("MESOS_MASTER", "")))
    daemon.run()
    _serve(daemon, address, port)


if __name__ == "__main__":
    sys.exit({"master": master, "agent": agent}[sys.argv[1]]())
