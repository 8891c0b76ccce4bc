"""Sync benchmark of the Marathon registrar engine: ``python -m bench.sync``.

Starts the Consul, Kong and vulcand (on a real etcd) simulators on loopback, each in a process
of its own as the real servers are, and the Marathon simulator, and runs the engine
(``salt/_engines/marathon_registrar.py``) in a process of its own too (``bench/engine.py``), as
Salt does, so that the CPU time and memory printed are the engine's alone. It prints:

1. latency from a task becoming healthy (Marathon's ``firstSuccess``) to the end of the write
   that registered it in all three registries: for the first task of each of ``--latency-apps``
   new apps created one at a time (the whole service is created), for ``--tasks`` more tasks
   each app then scales up by (one vulcand server each), and for ``--burst-apps`` new apps
   created at once; real web servers, HTTP health checks;
2. time to repair after a scale-up whose events were 20 % dropped, against the resync period;
3. events per second the engine follows: ``--event-rate`` status updates a second for the
   latency apps, from a stand-in event stream (the simulator cannot be driven that fast), and
   how far behind the engine was when the last one was sent;
4. the engine's CPU time in each of those phases;
5. for each of ``--apps`` (1,000 and 10,000), a full resync of that many apps x ``--tasks``
   (tasks without servers) when everything changed (empty registries: one write per object)
   and when nothing changed, twice (the first reads whole what the full one wrote, the second
   is as every later periodic resync): wall time, the engine's CPU time (and per write), HTTP
   requests per system, the CPU time of each process (the engine, each simulator, etcd),
   ``--resync-runs`` times on fresh registries, with the medians, and the engine's peak
   resident memory.
"""

import argparse
import contextlib
import datetime
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import registrationutil
import requests
import validationutil

from bench import REPO_ROOT
from bench.common import (RegistryProcesses, cpu_seconds, cpu_summary, request_summary,
                          simulator_process)
from sandbox.ports import PortAllocator
from simulators.base import JSON_TYPE, Response, Simulator, route
from simulators.marathon import MarathonSimulator

TIMEOUT = 30
LISTENER_PORTS = validationutil.PortRange.parse(
    registrationutil.SETTINGS["platform:listener_ports"])
SERVICE_PORTS = LISTENER_PORTS.first
SERVER_CHANGE = "vulcand server "
# Service ports of the apps created one by one: each a different one, as two services sharing
# a port are both refused.
APP_PORTS = PortAllocator()


class Registries(RegistryProcesses):
    """Consul, Kong and vulcand simulators in processes of their own."""

    def platform(self, marathon_url, listener_ports=None):
        """The engine's ``platform:`` settings; ``listener_ports`` (a range) replaces the
        platform's default service ports."""
        ports = {"platform:listener_ports": f"{listener_ports.start}-{listener_ports.stop - 1}"
                 } if listener_ports else {}
        return {**self.settings(), "platform:marathon:url": marathon_url, **ports}

    def servers(self, service):
        reply = requests.get(f"{self.vulcand['url']}/v2/backends/{service}/servers",
                             timeout=TIMEOUT)
        return {server["Id"] for server in reply.json().get("Servers") or []} if reply.ok else set()


class EngineProcess:
    """The engine in a process of its own (``bench/engine.py``), as Salt runs it: its CPU time
    and memory are read from /proc, apart from the benchmark's and the simulators'."""

    def __init__(self, settings, mode, **options):
        config = {"settings": settings, "options": options, "mode": mode}
        self.child = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, "-m", "bench.engine", json.dumps(config)], cwd=REPO_ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )

    def cpu(self):
        """CPU seconds the engine has used so far (user + system, all its threads)."""
        return cpu_seconds({"engine": self.child.pid})["engine"]

    def stop(self):
        if self.child.poll() is None:
            self.child.stdin.close()
            self.child.wait(TIMEOUT)


class RunningEngine(EngineProcess):
    """The engine following Marathon; notes when each vulcand server was written (the change
    event that follows the write)."""

    def __init__(self, settings, **options):
        super().__init__(settings, "run", **options)
        self.registered_at = {}  # instance id -> wall clock
        self.disconnects = self.resyncs = self.events_received = 0
        self.threads = {}  # thread name -> CPU seconds, once stopped
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.child.stdout:
            event = json.loads(line)
            tag, data = event["tag"], event["data"]
            if "/change/" in tag:
                for change, values in data["changes"].items():
                    if change.startswith(SERVER_CHANGE) and values["old"] is None:
                        instance_id = change[len(SERVER_CHANGE):].split("/", 1)[1]
                        self.registered_at.setdefault(instance_id, event["at"])
            elif tag.endswith("/disconnected"):
                self.disconnects += 1
            elif tag == "bench/stats":
                self.resyncs, self.events_received = data["resyncs"], data["events_received"]
            elif tag == "bench/threads":
                self.threads = data

    def stop(self):
        super().stop()
        self.reader.join(TIMEOUT)


class ResyncingEngine(EngineProcess):
    """The engine doing one full resync when asked."""

    def __init__(self, settings, **options):
        super().__init__(settings, "resync", **options)

    def resync(self):
        self.child.stdin.write("resync\n")
        self.child.stdin.flush()
        result = json.loads(self.child.stdout.readline())
        result["requests"] = {(system, method): n for system, method, n in result["requests"]}
        return result


def create_app(marathon_url, app_id, instances, health_checks, port=None, session=requests):
    """A labelled app; ``port`` (default: a free one of the platform's listener range, none
    handed out before) is its service port, a vulcand listener."""
    definition = {
        "id": app_id,
        "cmd": "python3 -m simulators.webapp",
        "instances": instances,
        "labels": {"registry.service": app_id.strip("/"),
                   "registry.port": str(port or APP_PORTS.take(LISTENER_PORTS.ports))},
        "healthChecks": [{"protocol": "HTTP", "path": "/health"}] if health_checks else [],
    }
    session.post(f"{marathon_url}/v2/apps", json=definition, timeout=TIMEOUT).raise_for_status()


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


# -- phases ---------------------------------------------------------------------------------


def latencies(marathon, engine, app_ids, kinds):
    """Healthy -> registered (ms) of every task of ``app_ids``, by ``kinds(instance_id)``."""
    samples = {}
    for app_id in app_ids:
        listed = requests.get(f"{marathon.url}/v2/apps{app_id}/tasks", timeout=TIMEOUT).json()
        for task in listed["tasks"]:
            instance_id = task["id"].rsplit(".", 2)[0]
            healthy = epoch(task["healthCheckResults"][0]["firstSuccess"])
            samples.setdefault(kinds(instance_id), []).append(
                (engine.registered_at[instance_id] - healthy) * 1000)
    return samples


def print_latency(kind, millis):
    print(f"latency healthy -> registered in consul+vulcand+kong, {kind} "
          f"({len(millis)} tasks): median {statistics.median(millis):.1f} ms, "
          f"p99 {percentile(millis, 0.99):.1f} ms, max {max(millis):.1f} ms")


def wait_registered(engine, count):
    # The change event follows the write that a poll may already have seen.
    wait_for(lambda: len(engine.registered_at) >= count, "change events")


def latency(marathon, registries, engine, app_ids, tasks):
    """Healthy -> registered, for the tasks of new apps and for tasks added by a scale-up."""
    for app_id in app_ids:
        create_app(marathon.url, app_id, 1, health_checks=True)
        time.sleep(0.25)  # one new app at a time: this phase measures latency, not throughput
    wait_for(lambda: converged(marathon, registries, app_ids, 1), "the new apps' tasks")
    wait_registered(engine, len(app_ids))
    first = set(engine.registered_at)
    for app_id in app_ids:
        scale(marathon, app_id, 1 + tasks)
        time.sleep(0.25)  # one scale-up at a time: this phase measures latency, not throughput
    wait_for(lambda: converged(marathon, registries, app_ids, 1 + tasks), "the added tasks")
    wait_registered(engine, len(app_ids) * (1 + tasks))
    samples = latencies(marathon, engine, app_ids, lambda instance_id: (
        "task of a new app" if instance_id in first else "task added to a service"))
    for kind, millis in samples.items():
        print_latency(kind, millis)


def burst(marathon, registries, engine, app_ids):
    """Healthy -> registered for the first task of each of ``app_ids``, new apps created at
    once (one request after the other, no pause)."""
    known = len(engine.registered_at)
    for app_id in app_ids:
        create_app(marathon.url, app_id, 1, health_checks=True)
    wait_for(lambda: converged(marathon, registries, app_ids, 1), "the burst's tasks")
    wait_registered(engine, known + len(app_ids))
    millis = latencies(marathon, engine, app_ids, lambda _: "burst")["burst"]
    print_latency(f"burst of {len(app_ids)} new apps", millis)


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
    """Events per second the engine follows: all received, and the work they ask for done.
    Returns the engine's CPU seconds while it followed them."""
    with EventFirehose(marathon, app_ids) as firehose:
        engine = RunningEngine(registries.platform(firehose.url), max_workers=workers)
        wait_for(lambda: engine.resyncs, "the engine's first resync")
        firehose.request_counts.clear()
        cpu_started = engine.cpu()
        firehose.fire(rate, seconds)
        started = time.monotonic()
        wait_for(lambda: firehose.sent >= int(rate * seconds), "the firehose", timeout=seconds * 5)
        sent_in = time.monotonic() - started
        wait_for(lambda: engine.events_received >= firehose.sent + 1,
                 "the engine to read every event")
        behind = time.monotonic() - started - sent_in
        cpu = engine.cpu() - cpu_started
        engine.stop()
    reads = sum(n for (_, handler), n in firehose.request_counts.items() if handler == "forward")
    print(f"events: {firehose.sent} sent at {firehose.sent / sent_in:.0f}/s, all read "
          f"{behind * 1000:.0f} ms after the last was sent, slow-consumer disconnects "
          f"{engine.disconnects}, coalesced into {reads} Marathon reads")
    print_threads("events", engine.threads)
    return cpu


def print_threads(phases, threads):
    """The engine's CPU time by thread: its event stream's, its registrar loop's (reads of
    single apps, facts, plans), its pool's (reads and writes)."""
    print(f"engine CPU by thread, {phases} (the engine's whole run): " + ", ".join(
        f"{name} {seconds:.2f} s" for name, seconds in
        sorted(threads.items(), key=lambda item: -item[1]) if seconds >= 0.005))


# The full resyncs of one run, in order: into empty registries; with nothing changed, the first
# look at what the first one wrote (vulcand's store read whole); and again (the store read for
# what changed since the last resync, as every periodic resync of a running engine).
RESYNCS = ("everything changed", "nothing changed", "nothing changed, again")


def full_resync(app_count, tasks, workers, runs):
    """Resyncs of ``app_count`` apps against empty, then unchanged registries; ``runs`` times,
    each on fresh registries, and the medians."""
    figures = {label: {"seconds": [], "cpu": []} for label in RESYNCS}
    peak_rss = []
    with simulator_process("marathon", "--unbacked-tasks", "--staging-seconds", "0.01") as urls:
        marathon = urls["url"]
        with requests.Session() as session:
            for index in range(app_count):
                # Service ports from 10000 up, as the seed's, below the ephemeral ports that
                # free ones would often collide with; the platform's listener range (1,001
                # ports by default) widened to hold them all.
                create_app(marathon, f"/app{index}", tasks, health_checks=False,
                           port=SERVICE_PORTS + index, session=session)
        listener_ports = range(SERVICE_PORTS, max(LISTENER_PORTS.ports.stop,
                                                  SERVICE_PORTS + app_count))
        wait_for(lambda: not requests.get(f"{marathon}/v2/deployments", timeout=TIMEOUT).json(),
                 "the apps' deployments", timeout=600)
        for _ in range(runs):
            with contextlib.ExitStack() as stack:
                registries = Registries(stack)
                engine = ResyncingEngine(registries.platform(marathon, listener_ports),
                                         max_workers=workers)
                stack.callback(engine.stop)
                processes = {"engine": engine.child.pid, "marathon": urls["pid"],
                             **registries.pids()}
                for label, measured in figures.items():
                    cpu_before = cpu_seconds(processes)
                    result = engine.resync()
                    cpu_used = cpu_summary(cpu_before, cpu_seconds(processes))
                    if not result["ok"]:
                        raise SystemExit(f"resync failed ({label}): "
                                         + "; ".join(map(str, result["errors"])))
                    measured["seconds"].append(result["seconds"])
                    measured["cpu"].append(result["cpu"])
                    writes = sum(n for (system, method), n in result["requests"].items()
                                 if method != "GET" and system != "etcd")
                    per_write = (f", {result['cpu'] / writes * 1000:.2f} ms CPU per write"
                                 if writes else "")
                    print(f"full resync, {app_count} apps x {tasks} tasks, {label}: "
                          f"{result['seconds']:.2f} s (sources read in "
                          f"{result['read_seconds']:.2f} s; engine CPU {result['cpu']:.2f} s"
                          f"{per_write}), {request_summary(result['requests'])}; {cpu_used}; "
                          f"engine memory {result['rss_mb']:.0f} MB, peak so far "
                          f"{result['peak_rss_mb']:.0f} MB")
                peak_rss.append(result["peak_rss_mb"])
    for label, measured in figures.items():
        seconds = measured["seconds"]
        print(f"full resync, {app_count} apps, {label}: median {statistics.median(seconds):.2f} s"
              f" (min {min(seconds):.2f}, max {max(seconds):.2f}), engine CPU median "
              f"{statistics.median(measured['cpu']):.2f} s, over {runs} runs")
    print(f"engine resident memory at {app_count} apps x {tasks} tasks: peak "
          f"{statistics.median(peak_rss):.0f} MB (median over {runs} runs)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.sync", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-apps", type=int, default=20,
                        help="apps of the latency phase; each gets 1 task, then --tasks more")
    parser.add_argument("--burst-apps", type=int, default=20,
                        help="new apps created at once in the burst phase")
    parser.add_argument("--apps", type=int, nargs="+", default=[1000, 10000],
                        help="app counts of the full resyncs")
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--resync-interval", type=float, default=5.0)
    parser.add_argument("--event-rate", type=int, default=1000)
    parser.add_argument("--event-seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--resync-runs", type=int, default=3,
                        help="full resyncs measured, each on fresh registries")
    parser.add_argument("--skip-events", action="store_true",
                        help="only the full resyncs")
    options = parser.parse_args(argv)

    if not options.skip_events:
        events(options)
    for app_count in options.apps:
        full_resync(app_count, options.tasks, options.workers, options.resync_runs)


def events(options):
    """The phases driven by Marathon's events, and the engine's CPU time in each."""
    cpu = {}
    with contextlib.ExitStack() as stack:
        registries = Registries(stack)
        marathon = stack.enter_context(
            MarathonSimulator(health_interval_seconds=0.05, heartbeat_seconds=1.0)
        )
        engine = RunningEngine(registries.platform(marathon.url),
                               resync_interval=options.resync_interval, max_workers=options.workers)
        stack.callback(engine.stop)
        wait_for(lambda: engine.resyncs, "the engine's first resync")
        app_ids = [f"/lat{index}" for index in range(options.latency_apps)]
        burst_ids = [f"/burst{index}" for index in range(options.burst_apps)]
        for phase, run in (
            ("latency", lambda: latency(marathon, registries, engine, app_ids, options.tasks)),
            ("burst", lambda: burst(marathon, registries, engine, burst_ids)),
            ("repair", lambda: repair(marathon, registries, app_ids, 1 + options.tasks,
                                      options.resync_interval)),
        ):
            started = engine.cpu()
            run()
            cpu[phase] = engine.cpu() - started
        engine.stop()
        print_threads("latency, burst and repair", engine.threads)
        cpu["events"] = event_rate(marathon, registries, app_ids, options.event_rate,
                                   options.event_seconds, options.workers)
    print("engine CPU, event phases: " + ", ".join(
        f"{phase} {seconds:.2f} s" for phase, seconds in cpu.items())
        + f"; total {sum(cpu.values()):.2f} s")


if __name__ == "__main__":
    main()
