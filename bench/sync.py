"""Sync benchmark of the Marathon registrar engine: ``python -m bench.sync``.

Starts the Consul, Kong and vulcand (on a real etcd) simulators on loopback, each in a process
of its own as the real servers are, and the Marathon simulator, and runs the engine
(``salt/_engines/marathon_registrar.py``) against them in this process, as Salt would.
It prints:

1. latency from a task becoming healthy (Marathon's ``firstSuccess``) to the end of the write
   that registered it in all three registries: for the first task of each of ``--latency-apps``
   new apps (the whole service is created), and for ``--tasks`` more tasks each app then
   scales up by (one vulcand server each); real web servers, HTTP health checks;
2. a full resync of ``--apps`` x ``--tasks`` (tasks without servers) when everything changed
   (empty registries) and when nothing changed: wall time, the engine's own CPU time (the rest
   of the machine runs the simulators) and HTTP requests per system, ``--resync-runs`` times
   on fresh registries, with the medians;
3. time to repair after a scale-up whose events were 20 % dropped, against the resync period;
4. events per second the engine follows: ``--event-rate`` status updates a second for the
   latency apps, from a stand-in event stream (the simulator cannot be driven that fast), and
   how far behind the engine was when the last one was sent.
"""

import argparse
import contextlib
import datetime
import json
import statistics
import threading
import time

import httpclientutil
import marathon_registrar
import registrationutil
import requests
import validationutil

from bench.common import RegistryProcesses, request_summary, simulator_process
from sandbox.ports import free_port
from simulators.base import JSON_TYPE, Response, Simulator, route
from simulators.marathon import MarathonSimulator

TIMEOUT = 30
LISTENER_PORTS = validationutil.PortRange.parse(
    registrationutil.SETTINGS["platform:listener_ports"])
SERVICE_PORTS = LISTENER_PORTS.first
SERVER_CHANGE = "vulcand server "


class Registries(RegistryProcesses):
    """Consul, Kong and vulcand simulators in processes of their own."""

    def platform(self, marathon_url):
        settings = {**self.settings(), "platform:marathon:url": marathon_url}
        return registrationutil.configured(
            lambda key, default=None: settings.get(key, default), marathon_registrar.SOURCE
        )

    def servers(self, service):
        reply = requests.get(f"{self.vulcand['url']}/v2/backends/{service}/servers",
                             timeout=TIMEOUT)
        return {server["Id"] for server in reply.json().get("Servers") or []} if reply.ok else set()


class RunningEngine:
    """The engine in a thread; notes when each vulcand server was written (end of its apply)."""

    def __init__(self, platform, **options):
        self.registered_at = {}  # instance id -> wall clock
        self.disconnects = 0
        self.registrar = marathon_registrar.Registrar(
            marathon_registrar.Settings(**options), platform, self._on_event
        )
        self.thread = threading.Thread(target=self.registrar.run, daemon=True)
        self.thread.start()

    def _on_event(self, data, tag):
        now = time.time()
        if "/change/" in tag:
            for change, values in data["changes"].items():
                if change.startswith(SERVER_CHANGE) and values["old"] is None:
                    instance_id = change[len(SERVER_CHANGE):].split("/", 1)[1]
                    self.registered_at.setdefault(instance_id, now)
        elif tag.endswith("/disconnected"):
            self.disconnects += 1

    def stop(self):
        self.registrar.stop()
        self.thread.join(TIMEOUT)


def create_app(marathon_url, app_id, instances, health_checks, port=None):
    """A labelled app; ``port`` (default: a free one of the platform's listener range) is its
    service port, a vulcand listener."""
    definition = {
        "id": app_id,
        "cmd": "python3 -m simulators.webapp",
        "instances": instances,
        "labels": {"registry.service": app_id.strip("/"),
                   "registry.port": str(port or free_port(LISTENER_PORTS.ports))},
        "healthChecks": [{"protocol": "HTTP", "path": "/health"}] if health_checks else [],
    }
    requests.post(f"{marathon_url}/v2/apps", json=definition, timeout=TIMEOUT).raise_for_status()


def scale(marathon, app_id, instances):
    requests.put(f"{marathon.url}/v2/apps{app_id}", params={"force": "true"},
                 json={"instances": instances}, timeout=TIMEOUT).raise_for_status()


def serving(marathon, app_id):
    """Instance ids of the app's running, healthy tasks."""
    tasks = requests.get(f"{marathon.url}/v2/apps{app_id}/tasks", timeout=TIMEOUT).json()["tasks"]
    return {
        task["id"].rsplit(".", 2)[0]
        for task in tasks
        if task["state"] == "TASK_RUNNING"
        and task.get("healthCheckResults")
        and all(result["alive"] for result in task["healthCheckResults"])
    }


def wait_for(condition, what, timeout=120):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def converged(marathon, registries, app_ids, tasks):
    """Whether every app has ``tasks`` healthy tasks, and exactly those are registered."""
    for app_id in app_ids:
        healthy = serving(marathon, app_id)
        if len(healthy) != tasks or healthy != registries.servers(app_id.strip("/")):
            return False
    return True


def epoch(marathon_time):
    return datetime.datetime.strptime(marathon_time, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


# -- phases -----------------------------------------------------------------------------------


def latency(marathon, registries, engine, app_ids, tasks):
    """Healthy -> registered, for the tasks of new apps and for tasks added by a scale-up."""
    for app_id in app_ids:
        create_app(marathon.url, app_id, 1, health_checks=True)
        time.sleep(0.25)  # one new app at a time: this phase measures latency, not throughput
    wait_for(lambda: converged(marathon, registries, app_ids, 1), "the new apps' tasks")
    first = set(engine.registered_at)
    for app_id in app_ids:
        scale(marathon, app_id, 1 + tasks)
        time.sleep(0.25)  # one scale-up at a time: this phase measures latency, not throughput
    wait_for(lambda: converged(marathon, registries, app_ids, 1 + tasks), "the added tasks")
    # The change event follows the write that a poll may already have seen.
    wait_for(lambda: len(engine.registered_at) == len(app_ids) * (1 + tasks), "change events")
    samples = {"task of a new app": [], "task added to a service": []}
    for app_id in app_ids:
        listed = requests.get(f"{marathon.url}/v2/apps{app_id}/tasks", timeout=TIMEOUT).json()
        for task in listed["tasks"]:
            instance_id = task["id"].rsplit(".", 2)[0]
            healthy = epoch(task["healthCheckResults"][0]["firstSuccess"])
            kind = "task of a new app" if instance_id in first else "task added to a service"
            samples[kind].append((engine.registered_at[instance_id] - healthy) * 1000)
    for kind, millis in samples.items():
        print(f"latency healthy -> registered in consul+vulcand+kong, {kind} "
              f"({len(millis)} tasks): median {statistics.median(millis):.1f} ms, "
              f"p99 {percentile(millis, 0.99):.1f} ms, max {max(millis):.1f} ms")


def repair(marathon, registries, app_ids, tasks, resync_interval):
    """Scale every app from ``tasks`` to ``tasks + 2`` while 20 % of events are dropped."""
    marathon.set_event_faults(drop=0.2, seed=42)
    for app_id in app_ids:
        scale(marathon, app_id, tasks + 2)
    marathon.wait_for_deployments(TIMEOUT)
    wait_for(lambda: all(len(serving(marathon, app_id)) == tasks + 2 for app_id in app_ids),
             "the new tasks to be healthy")
    settled = time.monotonic()
    wait_for(lambda: converged(marathon, registries, app_ids, tasks + 2), "repair")
    marathon.set_event_faults()
    print(f"repair after a scale-up with 20 % of events dropped: "
          f"{time.monotonic() - settled:.2f} s after Marathon settled "
          f"(resync period {resync_interval:.0f} s)")


class EventFirehose(Simulator):
    """Marathon's REST API (forwarded to the simulator) with an event stream at a set rate.

    Marathon itself cannot be driven to thousands of events a second here, so the stream of
    this stand-in sends ``status_update_event`` for the given apps, ``rate`` a second for
    ``seconds`` once :meth:`fire` is called; every other request goes to the real simulator.
    """

    name = "marathon-firehose"

    def __init__(self, marathon, app_ids):
        super().__init__()
        self.marathon = marathon
        self.app_ids = app_ids
        self.sent = 0
        self._go = threading.Event()
        self._stop_streams = threading.Event()
        self._session = requests.Session()
        self.rate = self.seconds = 0

    def fire(self, rate, seconds):
        self.rate, self.seconds = rate, seconds
        self._go.set()

    def stop(self):
        self._stop_streams.set()
        self._go.set()
        super().stop()

    @route("GET", r"/v2/events")
    def events(self, request):
        return Response(200, headers={"Content-Type": "text/event-stream"}, stream=self._stream())

    @route("*", r"/v2/(?!events).*")
    def forward(self, request):
        reply = self._session.request(
            request.method, f"{self.marathon.url}{request.path}", params=request.query,
            data=request.body, headers={"Content-Type": JSON_TYPE}, timeout=TIMEOUT,
        )
        return Response(reply.status_code, reply.content, {"Content-Type": JSON_TYPE})

    def _stream(self):
        yield b"event: event_stream_attached\r\ndata: {}\r\n\r\n"
        self._go.wait()
        started, total = time.monotonic(), int(self.rate * self.seconds)
        while not self._stop_streams.is_set() and self.sent < total:
            due = min(total, int((time.monotonic() - started) * self.rate))
            frames = []
            while self.sent < due:
                app_id = self.app_ids[self.sent % len(self.app_ids)]
                payload = json.dumps({"eventType": "status_update_event", "appId": app_id,
                                      "taskStatus": "TASK_RUNNING"})
                frames.append(f"event: status_update_event\r\ndata: {payload}\r\n\r\n".encode())
                self.sent += 1
            if frames:
                yield b"".join(frames)
            time.sleep(0.001)
        while not self._stop_streams.wait(1.0):
            yield b"\r\n"


def event_rate(marathon, registries, app_ids, rate, seconds, workers):
    """Events per second the engine follows: all received, and the work they ask for done."""
    with EventFirehose(marathon, app_ids) as firehose:
        engine = RunningEngine(registries.platform(firehose.url), max_workers=workers)
        wait_for(lambda: engine.registrar.resyncs, "the engine's first resync")
        httpclientutil.REQUEST_COUNTER.reset()
        firehose.fire(rate, seconds)
        started = time.monotonic()
        wait_for(lambda: firehose.sent >= int(rate * seconds), "the firehose", timeout=seconds * 5)
        sent_in = time.monotonic() - started
        wait_for(lambda: engine.registrar.stream.events_received >= firehose.sent + 1,
                 "the engine to read every event")
        behind = time.monotonic() - started - sent_in
        engine.stop()
    reads = httpclientutil.REQUEST_COUNTER.by_system()["marathon"]
    print(f"events: {firehose.sent} sent at {firehose.sent / sent_in:.0f}/s, all read "
          f"{behind * 1000:.0f} ms after the last was sent, slow-consumer disconnects "
          f"{engine.disconnects}, coalesced into {reads} Marathon reads")


def full_resync(app_count, tasks, workers, runs):
    """Resyncs of ``app_count`` apps against empty, then unchanged registries; ``runs`` times,
    each on fresh registries, and the medians."""
    elapsed = {"everything changed": [], "nothing changed": []}
    with simulator_process("marathon", "--unbacked-tasks", "--staging-seconds", "0.01") as urls:
        marathon = urls["url"]
        for index in range(app_count):
            # Service ports in the platform's listener range (10000-11000, as the seed's), below
            # the ephemeral ports that free ones would often collide with.
            create_app(marathon, f"/app{index}", tasks, health_checks=False,
                       port=SERVICE_PORTS + index)
        wait_for(lambda: not requests.get(f"{marathon}/v2/deployments", timeout=TIMEOUT).json(),
                 "the apps' deployments")
        for _ in range(runs):
            with contextlib.ExitStack() as stack:
                registrar = marathon_registrar.Registrar(
                    marathon_registrar.Settings(max_workers=workers),
                    Registries(stack).platform(marathon), lambda data, tag: None,
                )
                for label, seconds in elapsed.items():
                    httpclientutil.REQUEST_COUNTER.reset()
                    started, cpu_started = time.perf_counter(), time.process_time()
                    if not registrar.resync():
                        raise SystemExit(f"resync failed ({label})")
                    seconds.append(time.perf_counter() - started)
                    cpu = time.process_time() - cpu_started
                    summary = request_summary(httpclientutil.REQUEST_COUNTER.snapshot())
                    print(f"full resync, {app_count} apps x {tasks} tasks, {label}: "
                          f"{seconds[-1]:.2f} s (engine CPU {cpu:.2f} s), {summary}")
    for label, seconds in elapsed.items():
        print(f"full resync, {label}: median {statistics.median(seconds):.2f} s over {runs} runs "
              f"(min {min(seconds):.2f}, max {max(seconds):.2f})")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.sync", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-apps", type=int, default=20,
                        help="apps of the latency phase; each gets 1 task, then --tasks more")
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--resync-interval", type=float, default=5.0)
    parser.add_argument("--event-rate", type=int, default=1000)
    parser.add_argument("--event-seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--resync-runs", type=int, default=3,
                        help="full resyncs measured, each on fresh registries")
    options = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        registries = Registries(stack)
        marathon = stack.enter_context(
            MarathonSimulator(health_interval_seconds=0.05, heartbeat_seconds=1.0)
        )
        engine = RunningEngine(registries.platform(marathon.url),
                               resync_interval=options.resync_interval, max_workers=options.workers)
        stack.callback(engine.stop)
        app_ids = [f"/lat{index}" for index in range(options.latency_apps)]
        latency(marathon, registries, engine, app_ids, options.tasks)
        repair(marathon, registries, app_ids, 1 + options.tasks, options.resync_interval)
        engine.stop()
        event_rate(marathon, registries, app_ids, options.event_rate, options.event_seconds,
                   options.workers)
    full_resync(options.apps, options.tasks, options.workers, options.resync_runs)


if __name__ == "__main__":
    main()
